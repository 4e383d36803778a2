#!/usr/bin/env python3
"""What one write costs kube-apiserver and etcd, by the kind of request (issue 17: is the
controller's 10 s cold start at 10,000 policies within this machine's reach?). Run by
bench/apiserver-writes.sh against the real kube-apiserver; no controller is involved.

Each kind creates N objects in a namespace of its own, from THREADS kept-alive HTTPS
connections with a bearer token (as a ServiceAccount's would be), and reads the CPU time
(user + system, /proc) kube-apiserver and etcd spent over it:

  apply      server-side apply of the NetworkPolicy the controller renders (PATCH,
             application/apply-patch+yaml, force, fieldValidation=Ignore): what the
             controller sends for each policy
  apply-pb   the same, its response asked for as protobuf
  create     POST of the same NetworkPolicy as JSON
  create-pb  the same, its response asked for as protobuf
  create-min POST of the smallest object there is (a ConfigMap with only a name), response
             as protobuf: the floor of a write, whatever the client sends

The kinds run in turn, ROUNDS times, so a slow spell of the host falls on all of them.
usage: apiserver-writes.py KUBECONFIG APISERVER_PID ETCD_PID [N] [ROUNDS] [THREADS]"""
import json
import os
import sys
import tempfile
import threading
import time

from controller import Api  # bench/, beside this script: reads the kubeconfig as kubectl does

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pylib"))
from procstat import cpu_s  # noqa: E402

KINDS = ("apply", "apply-pb", "create", "create-pb", "create-min")
PB = "application/vnd.kubernetes.protobuf"
NP = "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies"


def netpol(ns, name):
    """The NetworkPolicy maskctl render writes for a policy (ports: the sidecar's and the
    redirected app port's name)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"app.kubernetes.io/managed-by": "maskmesh",
                                    "maskmesh.io/policy": name}},
            "spec": {"podSelector": {"matchLabels": {"app": name}}, "policyTypes": ["Ingress"],
                     "ingress": [{"ports": [{"protocol": "TCP", "port": 15480},
                                            {"protocol": "TCP", "port": "maskmesh-redir"}]}]}}


def request(kind, ns, i):
    """(method, path, body, content type, accept) of object i of a kind."""
    name = "maskmesh-p%d" % i
    q = "?fieldManager=bench&fieldValidation=Ignore"
    body = json.dumps(netpol(ns, name))
    if kind in ("apply", "apply-pb"):
        return ("PATCH", NP % ns + "/" + name + q + "&force=true", body,
                "application/apply-patch+yaml", PB if kind == "apply-pb" else "application/json")
    if kind in ("create", "create-pb"):
        return ("POST", NP % ns + q, body, "application/json",
                PB if kind == "create-pb" else "application/json")
    return ("POST", "/api/v1/namespaces/%s/configmaps" % ns + q,
            json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}),
            "application/json", PB)


def send(api, conn, method, path, body, ctype, accept="application/json"):
    """One request on a kept-alive connection; the answer's body is not parsed (it may be
    protobuf). RuntimeError when it was refused."""
    conn.request(method, path, body=body, headers=dict(api.headers(ctype), Accept=accept))
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise RuntimeError("%s %s: HTTP %d %s" % (method, path, r.status, data[:300]))


def run_kind(api, kind, ns, n, threads, pids):
    """Creates n objects of a kind in ns; returns (seconds, {pid: CPU ms per write})."""
    errors = []

    def work(t):
        try:
            c = api.connect()
            for i in range(t, n, threads):
                send(api, c, *request(kind, ns, i))
        except Exception as e:  # noqa: BLE001 (reported below, the run fails)
            errors.append(e)

    before, t0 = {p: cpu_s(p) for p in pids}, time.monotonic()
    ths = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    secs = time.monotonic() - t0
    if errors:
        raise SystemExit("apiserver-writes.py: %s" % errors[0])
    return secs, {p: 1000 * (cpu_s(p) - before[p]) / n for p in pids}


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__.rsplit("usage: ", 1)[1])
    with tempfile.TemporaryDirectory() as d:  # Api's client certificate files, if any
        try:
            api = Api(argv[0], d)
        except LookupError as e:
            sys.exit("apiserver-writes.py: %s: no cluster or user in its current context (%r)"
                     % (argv[0], e))
    api_pid, etcd_pid = int(argv[1]), int(argv[2])
    n = int(argv[3]) if len(argv) > 3 else 2000
    rounds = int(argv[4]) if len(argv) > 4 else 2
    threads = int(argv[5]) if len(argv) > 5 else 4
    c = api.connect()
    plan = [(k, "%s-%d" % (k, r)) for r in range(rounds) for k in KINDS]
    for _, ns in plan:
        send(api, c, "POST", "/api/v1/namespaces", json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}), "application/json")
    print("%d writes of each kind per round, %d rounds, %d connections; CPU ms per write"
          % (n, rounds, threads))
    print("  %-11s %6s %9s %12s %7s %7s" % ("kind", "round", "writes/s", "kube-apiserver",
                                           "etcd", "both"))
    best = {}
    for kind, ns in plan:
        secs, ms = run_kind(api, kind, ns, n, threads, (api_pid, etcd_pid))
        both = ms[api_pid] + ms[etcd_pid]
        best[kind] = min(best.get(kind, both), both)
        print("  %-11s %6s %9.0f %12.2f %7.2f %7.2f" % (kind, ns.rsplit("-", 1)[1], n / secs,
                                                       ms[api_pid], ms[etcd_pid], both),
              flush=True)
    cpus = os.cpu_count() or 1
    floor = min(best.values())
    print("  the cheapest kind's best round: %.2f ms of CPU per write; 11,000 writes (10,000 "
          "policies in 1,000 namespaces) need %.0f CPU-seconds, and 10 s on this machine's %d "
          "CPUs hold %d" % (floor, 11 * floor, cpus, 10 * cpus))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (RuntimeError, OSError) as e:  # a refused request, or the API server gone
        sys.exit("apiserver-writes.py: %s" % e)
