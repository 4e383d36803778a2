#!/usr/bin/env python3
"""The test gRPC service of tests/grpc (Python grpcio from PyPI, messages from protoc's
descriptor set by Python's protobuf, no generated code): shop.v1.Customers with a unary
method (GetCustomer), a server-streaming one (ListCustomers) that return card numbers, SSNs
and emails, and a bidirectional one (UpdateCustomers: each customer sent comes back as the
service got it), for grpcurl and the sidecar's gRPC path.

Usage: tests/grpc/server.py [--port N] [--protoset FILE] [--gzip]
Prints `listening on PORT` once it serves (port 0: a free one); runs until killed.
--gzip compresses its responses (grpc-encoding gzip).

For the sidecar's tests (tests/integration/test_grpc_proxy):
- GetCustomer with an ssn in the request answers with name "asked with ssn <ssn>", so a
  test sees what reached the service;
- GetCustomer for id "garbled" answers bytes that are not a Customer (a length-delimited
  field longer than the message), and ListCustomers with count -N streams N customers and
  then such bytes: a message no masker can read;
- every call's request is logged to stdout as `got <method> <hex of the request message>`."""
import argparse, os, signal, sys, threading
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HERE = os.path.dirname(os.path.abspath(__file__))


def types(protoset):
    fds = descriptor_pb2.FileDescriptorSet.FromString(open(protoset, "rb").read())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


# deterministic test people: Luhn-valid test card numbers, SSNs of the 900/000 kind never issued
CARDS = ["4111111111111111", "5500005555555559", "378282246310005", "6011111111111117"]


def customer(T, i, ident=None):
    c = T("shop.v1.Customer")(
        id=ident or f"c{i}", name=f"Customer {i}", email=f"user{i}@example.com",
        ssn=f"123-45-{6789 + i:04d}", phones=[f"+1 555 01{i % 100:02d}"],
        note=f"paid with {CARDS[i % len(CARDS)]} last week", tier=i % 2, vip=i % 3 == 0)
    c.labels["ssn"] = f"078-05-{1120 + i:04d}"
    c.labels["team"] = "blue"
    c.address.street = f"{i} Main St"
    c.address.zip = "12345"
    p = c.payments.add()
    p.card.number = CARDS[i % len(CARDS)]
    p.card.holder = f"Customer {i}"
    p.card.exp_month = 1 + i % 12
    p.card.cvv = "123"
    p.card_number = CARDS[(i + 1) % len(CARDS)]
    p.amount_cents = 1000 + i
    c.codes.extend([i, i + 1])
    c.referrer.ssn = "111-22-3333"
    c.created.seconds = 1700000000 + i
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--protoset", default=os.path.join(HERE, "shop.protoset"))
    ap.add_argument("--gzip", action="store_true")
    a = ap.parse_args()
    T = types(a.protoset)
    Req, ListReq, Cust = (T("shop.v1.GetCustomerRequest"), T("shop.v1.ListCustomersRequest"),
                          T("shop.v1.Customer"))

    def seen(method, req):
        print(f"got {method} {req.SerializeToString().hex()}", flush=True)

    def get(req, ctx):
        seen("GetCustomer", req)
        if req.id == "missing":
            ctx.abort(grpc.StatusCode.NOT_FOUND, "no such customer")
        c = customer(T, 0, req.id)
        if req.ssn:
            c.name = "asked with ssn " + req.ssn
        return c

    def list_(req, ctx):
        seen("ListCustomers", req)
        for i in range(min(abs(req.count), 10000)):
            yield customer(T, i)
        if req.count < 0:
            yield customer(T, 0, "garbled")

    def update(reqs, ctx):
        for c in reqs:
            seen("UpdateCustomers", c)
            yield c

    def ser(c):  # "garbled": field 1 claims 127 bytes, 2 follow
        return b"\x0a\x7fab" if c.id == "garbled" else c.SerializeToString()

    handler = grpc.method_handlers_generic_handler("shop.v1.Customers", {
        "GetCustomer": grpc.unary_unary_rpc_method_handler(
            get, request_deserializer=Req.FromString, response_serializer=ser),
        "ListCustomers": grpc.unary_stream_rpc_method_handler(
            list_, request_deserializer=ListReq.FromString, response_serializer=ser),
        "UpdateCustomers": grpc.stream_stream_rpc_method_handler(
            update, request_deserializer=Cust.FromString, response_serializer=ser),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         compression=grpc.Compression.Gzip if a.gzip else None)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{a.port}")
    server.start()
    print(f"listening on {port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(0)


if __name__ == "__main__":
    sys.exit(main())
