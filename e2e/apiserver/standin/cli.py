"""The command line of e2e/apiserver/run."""
import argparse
import shutil
import signal
import threading

from . import server  # noqa: F401 - attaches serve/stop/restart/write_kubeconfig to StandIn
from . import wire
from .core import StandIn


def main(argv=None):
    ap = argparse.ArgumentParser(prog="e2e/apiserver/run", description="In-memory Kubernetes API server stand-in for maskmesh tests")
    ap.add_argument("--listen", default="127.0.0.1:0", help="ADDR:PORT to serve on (port 0: any free port)")
    ap.add_argument("--kubeconfig", help="write a kubeconfig (admin context, bearer token, server CA) to FILE")
    ap.add_argument("--token", help="the admin bearer token (default: random)")
    ap.add_argument("--readonly-token", "--token-readonly", dest="readonly_token",
                    help="a second bearer token that may only get/list/watch")
    ap.add_argument("--tokens", help='file: one "TOKEN USER VERBS [RESOURCES]" per line (VERBS, RESOURCES: '
                                     'comma lists or *); more users with limited rights')
    ap.add_argument("--ca-out", help="also write the CA certificate (PEM) to this file")
    ap.add_argument("--client-ca-file", action="append", metavar="FILE",
                    help="also accept client certificates signed by the CAs in FILE (PEM; repeatable); "
                         "the stand-in's own CA is always accepted")
    ap.add_argument("--client-cert", action="append", metavar="USER[:GROUP,...]",
                    help="issue a client certificate (CN=USER, O=each GROUP) and add kubeconfig contexts "
                         "USER (client-certificate-data) and USER-files (client-certificate files); repeatable")
    ap.add_argument("--history", type=int, default=wire.HISTORY_MAX, help="watch events kept for resuming (default 20000)")
    ap.add_argument("--max-body", type=int, default=wire.MAX_BODY, help="request body limit in bytes (default 3 MiB)")
    ap.add_argument("--service-host", action="append", metavar="NAME.NS.svc=HOST:PORT",
                    help="where webhook clientConfig.service NAME.NS.svc is reached (repeatable)")
    ap.add_argument("--bookmark-interval", type=float, default=5.0,
                    help="seconds between BOOKMARK events on watches with allowWatchBookmarks=true (default 5)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        port = int(port)
    except ValueError:
        ap.error("--listen must be ADDR:PORT")
    wire.HISTORY_MAX = max(10, args.history)
    wire.MAX_BODY = max(1024, args.max_body)
    si = StandIn(args)
    if args.ca_out:
        with open(args.ca_out, "wb") as f:
            f.write(si.ca_pem)

    def on_term(signum, frame):
        threading.Thread(target=si.stop, daemon=True).start()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        si.serve(host or "127.0.0.1", port)
    finally:
        shutil.rmtree(si.tmp, ignore_errors=True)
    return 0
