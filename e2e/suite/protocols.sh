# e2e suite, part of run.sh: what services speak besides HTTP/1.1, behind the sidecar on the
# real cluster (issue 15). Both apps are mm-e2e-apps (e2e/apps: Go, gorilla/websocket and
# grpc-go), image maskmesh.local/e2e-apps:dev; the clients are real ones no one here wrote,
# run on this machine against the Services' ClusterIPs (kube-proxy's rules for local traffic):
#   WebSocket: Python's `websockets` (Debian's python3-websockets). Text messages are masked
#   in both directions (the policy's direction: both), the app's log shows what reached it,
#   a binary message is refused with close code 1003 (spec.websocket.binary: refuse).
#   gRPC: grpcurl (tests/grpc/build.sh: built from the Go module proxy, cached) calls
#   shop.v1.Customers (tests/grpc/proto) unary and server-streaming. The sidecar speaks h2c to
#   the app because the app's port is named grpc-*. Two kinds of assertion, kept apart:
#     - transport: the calls go through the sidecar and answer OK with every message;
#     - masking: the fields the policy names (spec.grpc.descriptorSet: tests/grpc/shop.protoset
#       in a ConfigMap) come back masked. This needs the sidecar to receive the descriptor set
#       (the controller copies it into maskmesh-policies); a sidecar that cannot read gRPC
#       messages lets them through unread, as the policy's onError: passthrough says, and only
#       the masking checks fail.
#
# Sourced by run.sh after traffic.sh (APP_NS exists); uses run.sh's helpers.
# shellcheck shell=bash

APPS_IMAGE="${E2E_APPS_IMAGE:-maskmesh.local/e2e-apps:dev}"
# py: the Python that has Debian's websockets (a python3 of its own may come first in PATH)
py() { PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}/usr/lib/python3/dist-packages" python3 "$@"; }
# results N LINES: the "PASS what" / "FAIL what" lines of a client script into ok/bad; fewer
# than the N it should print (it died before them: an import, a crash) is a failure too
results() {
    local want=$1 line n=0
    while IFS= read -r line; do
        case "$line" in
            "PASS "*) ok "${line#PASS }"; n=$((n + 1)) ;;
            "FAIL "*) bad "${line#FAIL }"; n=$((n + 1)) ;;
            *) echo "     $line" ;;
        esac
    done <<<"$2"
    [ "$n" -ge "$want" ] || bad "the client script reported $n of its $want checks (output above)"
}
# app_deploy NAME PORTNAME PORT ARGS...: a Deployment of mm-e2e-apps, opted in, and its Service
app_deploy() {
    local name=$1 pname=$2 port=$3 probe=""
    shift 3
    [ "$pname" = http ] && probe="readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 3}"
    cat <<YAML | k apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: {name: $name, namespace: $APP_NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: $name}}
  template:
    metadata:
      labels: {app: $name, maskmesh.io/inject: "true"}
    spec:
      containers:
        - name: app
          image: $APPS_IMAGE
          imagePullPolicy: $PULL
          args: [$(printf '"%s",' "$@" | sed 's/,$//')]
          ports: [{name: $pname, containerPort: $port}]
          $probe
---
apiVersion: v1
kind: Service
metadata: {name: $name, namespace: $APP_NS}
spec:
  selector: {app: $name}
  ports: [{name: $pname, port: 80, targetPort: $pname}]
YAML
}

say "a WebSocket app behind the sidecar: text messages masked both ways, binary refused"
cat <<YAML | k apply -f - >/dev/null
apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata: {name: ws-app, namespace: $APP_NS}
spec:
  selector: {matchLabels: {app: ws-app}}
  port: 8080
  direction: both
  rules:
    - name: card
      fields: ["\$..card_number"]
      detectors: [credit_card]
      action: {type: mask, keepLast: 4, char: "*", preserveFormat: true}
    - name: email
      detectors: [email]
      action: {type: redact, replacement: "[email]"}
  websocket: {binary: refuse}
YAML
k -n "$APP_NS" wait --for=condition=Ready mp/ws-app --timeout=90s >/dev/null
app_deploy ws-app http 8080 --ws=:8080
check "ws-app rolled out behind the sidecar (its probe through the sidecar)" \
    k -n "$APP_NS" rollout status deploy/ws-app --timeout=180s
ws_ip="$(k -n "$APP_NS" get svc ws-app -o jsonpath='{.spec.clusterIP}')"
# kube-proxy programs the Service once the pod is among its endpoints: until then, refused
ws_svc_up() { curl -sf --max-time 3 -o /dev/null "http://$ws_ip/healthz"; }
check "the Service ws-app ($ws_ip) answers through the sidecar" eventually 60 ws_svc_up
ws_client() {
    py - "ws://$ws_ip/ws" <<'EOF'
import asyncio, json, sys
import websockets

CARD_A, CARD_B = "4111 1111 1111 1111", "5500 0000 0000 0004"


def check(what, cond, detail=""):
    print(("PASS " if cond else "FAIL ") + what + ("" if cond else ": " + str(detail)[:300]))


async def main():
    async with websockets.connect(sys.argv[1], open_timeout=10, close_timeout=5) as ws:
        hello = await asyncio.wait_for(ws.recv(), 10)
        doc = json.loads(hello)
        check("app to client, JSON: the card is **** **** **** 1111, the email [email]",
              doc["payment"]["card_number"] == "**** **** **** 1111" and
              doc["customer"]["email"] == "[email]" and CARD_A not in hello, hello)
        text = await asyncio.wait_for(ws.recv(), 10)
        check("app to client, text: the detector masks the card in a plain message",
              text == "the backup card is **** **** **** 0004", text)
        await ws.send(json.dumps({"payment": {"card_number": CARD_B}, "note": "mail ada@example.com"}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        check("client to app: the app acknowledges the message", ack.get("n") == 1, ack)
        await ws.send(b"\x00\xffbinary")
        try:
            while True:
                m = await asyncio.wait_for(ws.recv(), 10)
                print("after binary:", m)
        except websockets.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
            check("a binary message closes the connection with 1003 (binary: refuse)", code == 1003,
                  "close %s" % (e.rcvd,))


try:
    asyncio.run(main())
except Exception as e:  # the connection itself failed: one failure that names it
    check("the WebSocket session through the sidecar", False, repr(e))
EOF
}
ws_out="$(ws_client 2>&1 || true)"
results 4 "$ws_out"
ws_log() { k -n "$APP_NS" logs deploy/ws-app -c app 2>/dev/null; }
ws_got() { ws_log | grep '"ws-received"' | grep -q '"binary":false'; }
if eventually 20 ws_got; then
    got="$(ws_log | grep '"ws-received"')"
    if grep -qF '**** **** **** 0004' <<<"$got" && grep -qF '[email]' <<<"$got" &&
       ! grep -qF -e '5500 0000 0000 0004' -e 'ada@example.com' <<<"$got"; then
        ok "client to app: the app received the card and email masked"
    else
        bad "client to app: the app received $(head -c 300 <<<"$got")"
    fi
    grep -q '"binary":true' <<<"$got" && bad "the refused binary message reached the app" ||
        ok "the refused binary message never reached the app"
else
    bad "the app logged no message from the client: $(ws_log | tail -5)"
fi
k -n "$APP_NS" delete deploy/ws-app svc/ws-app mp/ws-app --wait=true >/dev/null

say "a gRPC service behind the sidecar (h2c to the app: its port is named grpc-shop), grpcurl"
GRPCURL="${E2E_GRPCURL:-$(tests/grpc/build.sh | tail -1)}"
k -n "$APP_NS" create configmap shop-protoset --from-file=shop.protoset=tests/grpc/shop.protoset \
    --dry-run=client -o yaml | k apply -f - >/dev/null
cat <<YAML | k apply -f - >/dev/null
apiVersion: maskmesh.io/v1alpha1
kind: MaskingPolicy
metadata: {name: grpc-shop, namespace: $APP_NS}
spec:
  selector: {matchLabels: {app: grpc-shop}}
  port: 9090
  # a sidecar that cannot read gRPC messages lets them through (see the file's head)
  onError: passthrough
  grpc:
    descriptorSet: {configMapKeyRef: {name: shop-protoset, key: shop.protoset}}
  rules:
    - name: card
      fields: ["\$.payments[*].card_number", "\$.payments[*].card.number"]
      action: {type: mask, keepLast: 4, char: "*"}
YAML
check "the controller checks spec.grpc.descriptorSet against the ConfigMap: the policy is Ready" \
    k -n "$APP_NS" wait --for=condition=Ready mp/grpc-shop --timeout=90s
app_deploy grpc-shop grpc-shop 9090 --grpc=:9090
check "grpc-shop rolled out behind the sidecar" k -n "$APP_NS" rollout status deploy/grpc-shop --timeout=180s
grpc_args="$(k -n "$APP_NS" get pod -l app=grpc-shop -o jsonpath='{.items[0].spec.containers[?(@.name=="maskmesh-proxy")].args}')"
[[ "$grpc_args" == *"--upstream-protocol=h2c"* ]] &&
    ok "the webhook set --upstream-protocol=h2c (the port name grpc-shop)" ||
    bad "the sidecar's args lack --upstream-protocol=h2c: $grpc_args"
grpc_ip="$(k -n "$APP_NS" get svc grpc-shop -o jsonpath='{.spec.clusterIP}')"
grpc_call() { # METHOD JSON: grpcurl through the Service, the answer as JSON lines in grpc_out
    grpc_out="$("$GRPCURL" -plaintext -max-time 10 -format-error -protoset tests/grpc/shop.protoset \
        -d "$2" "$grpc_ip:80" "shop.v1.Customers/$1" 2>&1)"
}
grpc_unary_ok() { grpc_call GetCustomer '{"id": "c42"}'; }
if eventually 60 grpc_unary_ok; then
    grpc_unary="$grpc_out"
    check_json() { # WHAT PYTHON-EXPR over the messages (a list of dicts) in TEXT
        py -c 'import json,sys
d=json.JSONDecoder(); t=sys.argv[2]; i=0; ms=[]
while True:
    while i < len(t) and t[i].isspace(): i += 1
    if i >= len(t): break
    m, i = d.raw_decode(t, i); ms.append(m)
sys.exit(0 if eval(sys.argv[1], {"ms": ms}) else 1)' "$2" "$3" 2>/dev/null && ok "$1" ||
            bad "$1: $(head -c 300 <<<"$3")"
    }
    # transport: these hold with or without gRPC masking
    check_json "gRPC unary through the sidecar: OK, the answer's id and name are the app's" \
        'len(ms) == 1 and ms[0]["id"] == "c42" and ms[0]["name"] == "Customer 0"' "$grpc_unary"
    if grpc_call ListCustomers '{"count": 5}'; then
        grpc_stream="$grpc_out"
        check_json "gRPC server streaming through the sidecar: OK, 5 messages in order" \
            '[m["id"] for m in ms] == ["c%d" % i for i in range(5)]' "$grpc_stream"
    else
        bad "gRPC server streaming through the sidecar failed: $(head -c 300 <<<"$grpc_out")"
        grpc_stream=""
    fi
    # masking by field name (spec.grpc.descriptorSet): needs the sidecar's gRPC masking
    check_json "gRPC masking (needs spec.grpc in the sidecar): payments[*].card_number and card.number masked to their last four in the unary answer" \
        'ms[0]["payments"][0]["cardNumber"] == "************5559" and ms[0]["payments"][0]["card"]["number"] == "************1111"' \
        "$grpc_unary"
    check_json "gRPC masking (needs spec.grpc in the sidecar): no clear card number in the 5 streamed messages" \
        'len(ms) == 5 and all(m["payments"][0]["cardNumber"].startswith("*") and m["payments"][0]["card"]["number"].startswith("*") for m in ms)' \
        "$grpc_stream"
    # what the sidecar said of the gRPC calls (shown, not asserted: it names why masking failed)
    k -n "$APP_NS" logs deploy/grpc-shop -c maskmesh-proxy 2>/dev/null | grep -i grpc | tail -3 | sed 's/^/     sidecar: /' || true
else
    bad "gRPC unary through the sidecar failed for 60 s: $(head -c 300 <<<"$grpc_out")"
fi
k -n "$APP_NS" delete deploy/grpc-shop svc/grpc-shop mp/grpc-shop configmap/shop-protoset --wait=true >/dev/null
