#!/usr/bin/env python3
"""Runs the real maskmesh-webhook binary the way the install runs it, on 127.0.0.1.

Takes the rendered objects (JSON, as hack/check-rendered.py reads them) and the serving
certificate files, writes the sidecar configuration from the rendered ConfigMap, starts
`maskmesh-webhook` with the Deployment's own arguments (only --listen moved to a free port on
127.0.0.1 and the mounted paths rewritten to local files), then checks, over TLS verified
against the CA with the Service's DNS name:
  * the probe paths of the Deployment answer 200;
  * every path of the rendered webhook configurations answers an AdmissionReview (the shared
    sample pod CREATE, or a MaskingPolicy CREATE for the validating path) with 200 and a
    response for the same uid.
Prints FAIL lines and `N passed, N failed` last; exit 1 on any failure.

Usage: check-webhook-live.py --bin BIN --objects R.json --cert C --key K --ca CA
                             [--review ADMISSIONREVIEW.json] [--policy POLICY.json]
"""
import argparse
import copy
import http.client
import json
import os
import re
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pylib"))
from mmcheck import check, load, summary  # noqa: E402


def request(port, host, ctx, method, path, body=None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    # SNI and certificate name check use the Service's DNS name, as the API server does
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=host)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--objects", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--review", default="")
    ap.add_argument("--policy", default="")
    ap.add_argument("--label", default="live webhook")
    a = ap.parse_args()

    objs = load(open(a.objects).read())
    dep = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-webhook"))
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-webhook-config"))
    svc = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == dep["metadata"]["name"])
    mwc = [o for o in objs if o["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")]
    host = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc"
    c = dep["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    print(f"-- {a.label}")

    with tempfile.TemporaryDirectory() as d:
        files = {"tls": {"tls.crt": a.cert, "tls.key": a.key}, "config": {}}
        for k, v in cm.get("data", {}).items():
            path = os.path.join(d, k)
            with open(path, "w") as f:
                f.write(v)
            files["config"][k] = path
        args = []
        for arg in c.get("args", []):
            if arg.startswith("--listen="):
                arg = "--listen=127.0.0.1:0"
            else:
                for mp, vol in mounts.items():
                    if "=" in arg and arg.split("=", 1)[1].startswith(mp + "/"):
                        fname = arg.split("=", 1)[1][len(mp) + 1:]
                        arg = arg.split("=", 1)[0] + "=" + files.get(vol, {}).get(fname, "/nonexistent")
            args.append(arg)
        proc = subprocess.Popen([a.bin] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        port, log, deadline = None, [], time.time() + 10
        try:
            while port is None and time.time() < deadline and proc.poll() is None:
                r, _, _ = select.select([proc.stdout], [], [], 0.5)
                if r:
                    line = proc.stdout.readline()
                    log.append(line)
                    m = re.search(r'"port":"(\d+)"', line)
                    if m and '"serving"' in line:
                        port = int(m.group(1))
            if not check(port is not None, f"maskmesh-webhook starts with the Deployment's arguments {args}: {''.join(log)[-500:]}"):
                return finish()
            ctx = ssl.create_default_context(cafile=a.ca)
            for probe in ("livenessProbe", "readinessProbe"):
                path = c[probe]["httpGet"]["path"]
                ok = False
                for _ in range(20):
                    try:
                        st, _ = request(port, host, ctx, "GET", path)
                        ok = st == 200
                    except (OSError, ssl.SSLError) as e:
                        st = str(e)
                    if ok:
                        break
                    time.sleep(0.25)
                check(ok, f"{probe} {path} answers 200 over TLS for {host} (got {st})")
            review = json.load(open(a.review)) if a.review else None
            for cfg in mwc:
                for w in cfg.get("webhooks", []):
                    path = w["clientConfig"]["service"]["path"]
                    if cfg["kind"] == "MutatingWebhookConfiguration":
                        if not review:
                            continue
                        body = copy.deepcopy(review)
                    else:
                        if not a.policy:
                            continue
                        pol = json.load(open(a.policy))
                        body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                "request": {"uid": "6d1b1c52-2b1e-4d0a-9f0e-4d5c3b2a1f00",
                                            "kind": {"group": "maskmesh.io", "version": "v1alpha1", "kind": "MaskingPolicy"},
                                            "resource": {"group": "maskmesh.io", "version": "v1alpha1", "resource": "maskingpolicies"},
                                            "requestKind": {"group": "maskmesh.io", "version": "v1alpha1", "kind": "MaskingPolicy"},
                                            "requestResource": {"group": "maskmesh.io", "version": "v1alpha1", "resource": "maskingpolicies"},
                                            "name": pol["metadata"]["name"], "namespace": pol["metadata"].get("namespace", "shop"),
                                            "operation": "CREATE", "userInfo": {"username": "admin"},
                                            "object": pol, "oldObject": None, "dryRun": False,
                                            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}}
                    try:
                        st, data = request(port, host, ctx, "POST", path, json.dumps(body).encode())
                        resp = json.loads(data)
                    except (OSError, ssl.SSLError, ValueError) as e:
                        st, resp = str(e), {}
                    uid = body["request"]["uid"]
                    check(st == 200 and resp.get("response", {}).get("uid") == uid,
                          f"{w['name']}: POST {path} answers an AdmissionReview for uid {uid} (status {st})")
                    if cfg["kind"] == "ValidatingWebhookConfiguration":
                        check(resp.get("response", {}).get("allowed") is True,
                              f"{w['name']}: the example policy is allowed ({resp.get('response', {}).get('status')})")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return finish()


def finish():
    return summary()


if __name__ == "__main__":
    sys.exit(main())
