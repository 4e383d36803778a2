#!/usr/bin/env python3
"""gRPC masking benchmark: `maskctl mask --format grpc` throughput (MB/s, messages/s) on a
stream of shop.v1.Customer responses (tests/grpc/proto, ~250 bytes each, built by Python's
protobuf), beside baselines measured in the same run: cat (the floor), parse-only (every
message walked field by field through `$..no_such_field`, nothing changed) and Python's
protobuf (upb, C) parsing and re-serialising the same messages. Prints a table with ratios;
no bar (a figure for issue 15), so it exits 0 unless a run fails."""
import os, struct, subprocess, sys, tempfile, time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MM_BIN", os.path.join(TOP, "bin"))
sys.path.insert(0, os.path.join(TOP, "tests", "grpc"))
N = int(os.environ.get("BENCH_GRPC_MESSAGES", 200_000))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))

import server  # noqa: E402  (the test service's customers)

PROTOSET = os.path.join(TOP, "tests", "grpc", "shop.protoset")
METHOD = "/shop.v1.Customers/ListCustomers"


def policy(rule):
    return ("apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: b}\n"
            "spec:\n  selector: {}\n  rules:\n    - " + rule + "\n")


POLICIES = {
    "parse-only": policy('{name: none, fields: ["$..no_such_field"], action: {type: redact}}'),
    "path rules": policy('{name: pii, fields: ["$..ssn", "$.payments[*].card.number", '
                         '"$..card_number", "$.labels.ssn", "$..cvv"], action: {type: redact}}'),
    "detectors": policy('{name: pii, detectors: [credit_card, email, us_ssn], '
                        'action: {type: redact}}'),
}


def best(cmd, stdin_path):
    t = None
    for _ in range(ROUNDS):
        with open(stdin_path, "rb") as f:
            s = time.perf_counter()
            subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, check=True)
            d = time.perf_counter() - s
        t = d if t is None else min(t, d)
    return t


def main():
    T = server.types(PROTOSET)
    msgs = [server.customer(T, i).SerializeToString() for i in range(1000)]
    tmp = tempfile.mkdtemp(prefix="mm-bench-grpc-")
    data = os.path.join(tmp, "stream.grpc")
    with open(data, "wb") as f:
        for i in range(N):
            m = msgs[i % len(msgs)]
            f.write(struct.pack(">BI", 0, len(m)) + m)
    size = os.path.getsize(data)
    rows = [("cat (floor)", best(["cat"], data))]
    for name, text in POLICIES.items():
        p = os.path.join(tmp, name.replace(" ", "-") + ".yaml")
        open(p, "w").write(text)
        rows.append((name, best([os.path.join(BIN, "maskctl"), "mask", "-p", p, "--format",
                                 "grpc", "--descriptors", PROTOSET, "--method", METHOD,
                                 "--response"], data)))
    Cust = T("shop.v1.Customer")
    s = time.perf_counter()
    for i in range(N):  # the same messages through a real implementation: parse + serialise
        Cust.FromString(msgs[i % len(msgs)]).SerializeToString()
    rows.append(("python protobuf parse+serialise", time.perf_counter() - s))
    base = rows[1][1]
    print(f"{N} messages, {size / 1e6:.1f} MB, best of {ROUNDS}"
          " (the machine is shared: compare ratios, not absolutes)")
    print(f"{'':34} {'MB/s':>8} {'msgs/s':>10} {'time/parse-only':>16}")
    for name, t in rows:
        print(f"{name:34} {size / t / 1e6:8.1f} {N / t:10.0f} {t / base:16.2f}")


if __name__ == "__main__":
    main()
