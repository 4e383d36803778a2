#!/usr/bin/env python3
"""Writes per client and resource in a kube-apiserver audit log (bench/controller-live.sh,
issue 17: which writes a cold start makes). Reads the ResponseComplete entries after the
first --skip lines; a client is the user agent's first word (maskmesh/.., kubectl/..,
kube-controller-manager/.., "-" for the bench's own requests). For the controller it also
prints the span from its first to its last write and the writes per second over it.
--marks FILE (bench/controller.py's BENCH_MARKS: the times of the start, all rendered and all
Ready; two marks: start and end) counts only the cold start, the requests completed from the
first to the last mark, and with three how many of each came before all was rendered."""
import collections, datetime, json, sys


def when(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def main(argv):
    skip, path, marks = 0, None, None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--skip" and args:
            skip = int(args.pop(0))
        elif a == "--marks" and args:
            m = args.pop(0)
            try:
                marks = [float(x) for x in open(m).read().split()][:3]
            except (OSError, ValueError) as e:
                sys.exit("bench/audit-writes.py: %s: %s" % (m, e))
        elif path is None:
            path = a
        else:
            sys.exit("usage: bench/audit-writes.py [--skip LINES] [--marks FILE] AUDIT_LOG")
    if path is None:
        sys.exit("usage: bench/audit-writes.py [--skip LINES] [--marks FILE] AUDIT_LOG")
    counts, early = collections.Counter(), collections.Counter()
    ctrl_times = []
    with open(path) as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            try:
                e = json.loads(line)
            except ValueError:
                sys.exit("%s:%d: not a JSON audit event" % (path, i + 1))
            if e.get("stage") != "ResponseComplete":
                continue
            t = when(e["stageTimestamp"])
            if marks and not marks[0] <= t <= marks[-1]:
                continue
            ref = e.get("objectRef") or {}
            client = (e.get("userAgent") or "-").split("/")[0].split(" ")[0]
            res = ref.get("resource", "?") + ("/" + ref["subresource"] if ref.get("subresource") else "")
            code = (e.get("responseStatus") or {}).get("code", 0)
            counts[(client, res, e.get("verb", "?"), code)] += 1
            if len(marks or ()) == 3 and t <= marks[1]:
                early[(client, res, e.get("verb", "?"), code)] += 1
            if client.startswith("maskmesh"):
                ctrl_times.append(t)
    print("  writes in the API server's audit log%s (client, resource, verb, code: count%s)" %
          (", from the controller's start to all Ready" if marks else "",
           ", of them before all was rendered" if len(marks or ()) == 3 else ""))
    for k, n in sorted(counts.items()):
        print("    %-24s %-32s %-7s %3d %7d%s" % (k + (n, " %7d" % early[k] if len(marks or ()) == 3 else "")))
    if ctrl_times:
        span = max(ctrl_times) - min(ctrl_times)
        print("  controller: %d writes from its first to its last in %.1f s: %.0f writes/s%s" %
              (len(ctrl_times), span, len(ctrl_times) / span if span else 0,
               "" if marks else " (the whole run: steady-state changes and teardown too)"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
