// mm-e2e-apps: the apps the e2e suite puts behind the sidecar on the real cluster
// (e2e/suite/protocols.sh), one static binary for one small image:
//
//	--grpc ADDR  shop.v1.Customers of tests/grpc (GetCustomer, unary; ListCustomers, server
//	             streaming) over h2c, with the same test people as tests/grpc/server.py. The
//	             messages are built from the FileDescriptorSet (--protoset), no generated code.
//	--ws ADDR    a WebSocket app at /ws: it sends a JSON and a text message holding card
//	             numbers, then logs each message it receives (so the suite can read what
//	             reached the app) and answers it with an ack; /healthz answers ok.
//
// It is a test fixture: it serves until SIGTERM and logs one JSON line per event to stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Luhn-valid test card numbers, as tests/grpc/server.py uses them
var cards = []string{"4111111111111111", "5500005555555559", "378282246310005", "6011111111111117"}

func event(kind string, kv ...any) {
	m := map[string]any{"time": time.Now().UTC().Format(time.RFC3339Nano), "event": kind}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, _ := json.Marshal(m)
	fmt.Println(string(b))
}

type shop struct {
	customer, getReq, listReq protoreflect.MessageDescriptor
}

func loadShop(path string) (*shop, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("%s: not a FileDescriptorSet: %w", path, err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := &shop{}
	for name, dst := range map[string]*protoreflect.MessageDescriptor{
		"shop.v1.Customer": &s.customer, "shop.v1.GetCustomerRequest": &s.getReq,
		"shop.v1.ListCustomersRequest": &s.listReq} {
		d, err := files.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		md, ok := d.(protoreflect.MessageDescriptor)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not a message", path, name)
		}
		*dst = md
	}
	return s, nil
}

// person i as tests/grpc/server.py's customer(): cards in nested, repeated and text fields
func (s *shop) person(i int, id string) (*dynamicpb.Message, error) {
	if id == "" {
		id = fmt.Sprintf("c%d", i)
	}
	doc := map[string]any{
		"id": id, "name": fmt.Sprintf("Customer %d", i), "email": fmt.Sprintf("user%d@example.com", i),
		"ssn": fmt.Sprintf("123-45-%04d", 6789+i), "phones": []string{fmt.Sprintf("+1 555 01%02d", i%100)},
		"note": fmt.Sprintf("paid with %s last week", cards[i%len(cards)]),
		"tier": i % 2, "vip": i%3 == 0,
		"labels":  map[string]string{"ssn": fmt.Sprintf("078-05-%04d", 1120+i), "team": "blue"},
		"address": map[string]string{"street": fmt.Sprintf("%d Main St", i), "zip": "12345"},
		"payments": []any{map[string]any{
			"card": map[string]any{"number": cards[i%len(cards)], "holder": fmt.Sprintf("Customer %d", i),
				"exp_month": 1 + i%12, "cvv": "123"},
			"card_number": cards[(i+1)%len(cards)], "amount_cents": 1000 + i}},
		"codes":    []int{i, i + 1},
		"referrer": map[string]string{"ssn": "111-22-3333"},
		"created":  time.Unix(int64(1700000000+i), 0).UTC().Format(time.RFC3339),
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	m := dynamicpb.NewMessage(s.customer)
	return m, protojson.Unmarshal(b, m)
}

func (s *shop) service() *grpc.ServiceDesc {
	get := func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		req := dynamicpb.NewMessage(s.getReq)
		if err := dec(req); err != nil {
			return nil, err
		}
		id := req.Get(s.getReq.Fields().ByName("id")).String()
		text, _ := protojson.Marshal(req)
		event("grpc", "method", "GetCustomer", "request", string(text))
		return s.person(0, id)
	}
	list := func(_ any, st grpc.ServerStream) error {
		req := dynamicpb.NewMessage(s.listReq)
		if err := st.RecvMsg(req); err != nil {
			return err
		}
		n := int(req.Get(s.listReq.Fields().ByName("count")).Int())
		event("grpc", "method", "ListCustomers", "count", n)
		for i := 0; i < n && i < 10000; i++ {
			m, err := s.person(i, "")
			if err != nil {
				return err
			}
			if err := st.SendMsg(m); err != nil {
				return err
			}
		}
		return nil
	}
	return &grpc.ServiceDesc{
		ServiceName: "shop.v1.Customers",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "GetCustomer", Handler: get}},
		Streams:     []grpc.StreamDesc{{StreamName: "ListCustomers", Handler: list, ServerStreams: true}},
	}
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func wsHandler(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		event("ws-error", "error", err.Error())
		return
	}
	defer c.Close()
	event("ws-open", "remote", r.RemoteAddr)
	hello := `{"event":"hello","payment":{"card_number":"4111 1111 1111 1111"},"customer":{"email":"ada.lovelace@example.com"}}`
	for _, msg := range []string{hello, "the backup card is 5500 0000 0000 0004"} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			event("ws-error", "error", err.Error())
			return
		}
	}
	for n := 1; ; n++ {
		kind, data, err := c.ReadMessage()
		if err != nil {
			event("ws-close", "error", err.Error())
			return
		}
		event("ws-received", "n", n, "binary", kind == websocket.BinaryMessage, "text", string(data))
		ack := fmt.Sprintf(`{"event":"ack","n":%d,"bytes":%d}`, n, len(data))
		if err := c.WriteMessage(websocket.TextMessage, []byte(ack)); err != nil {
			event("ws-error", "error", err.Error())
			return
		}
	}
}

func main() {
	grpcAddr := flag.String("grpc", "", "serve shop.v1.Customers over h2c on this address")
	wsAddr := flag.String("ws", "", "serve the WebSocket app on this address")
	protoset := flag.String("protoset", "/etc/mm-e2e/shop.protoset", "tests/grpc/shop.protoset")
	flag.Parse()
	if *grpcAddr == "" && *wsAddr == "" {
		log.Fatal("mm-e2e-apps: nothing to serve (--grpc ADDR, --ws ADDR)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *grpcAddr != "" {
		s, err := loadShop(*protoset)
		if err != nil {
			log.Fatalf("mm-e2e-apps: %v", err)
		}
		lis, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			log.Fatalf("mm-e2e-apps: %v", err)
		}
		srv := grpc.NewServer()
		srv.RegisterService(s.service(), struct{}{})
		go func() { <-ctx.Done(); srv.GracefulStop() }()
		go func() {
			if err := srv.Serve(lis); err != nil {
				log.Fatalf("mm-e2e-apps: grpc: %v", err)
			}
		}()
		event("listening", "grpc", lis.Addr().String())
	}
	if *wsAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/ws", wsHandler)
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		lis, err := net.Listen("tcp", *wsAddr)
		if err != nil {
			log.Fatalf("mm-e2e-apps: %v", err)
		}
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { <-ctx.Done(); _ = hs.Close() }()
		go func() {
			if err := hs.Serve(lis); err != http.ErrServerClosed {
				log.Fatalf("mm-e2e-apps: ws: %v", err)
			}
		}()
		event("listening", "ws", lis.Addr().String())
	}
	<-ctx.Done()
	event("stopping")
}
