#!/usr/bin/env python3
"""Latency percentiles of one constant-rate vegeta attack, measured from each request's
INTENDED send time (no coordinated omission).

vegeta's pacer intends hit n (0-based) at began + (n + 1) / rate (ConstantPacer.Pace in
lib/pacer.go). A worker stamps a result's Timestamp when it takes the tick, under the lock
that hands out Seq, so Seq is the hit's place in the schedule; Latency runs from that stamp
to the end of the response, and includes waiting for one of the -max-connections
connections. With -max-workers unbounded (the default) vegeta starts a worker whenever all
are busy, so a slow server does not hold ticks back; what vegeta's own figure leaves out is
the pacer itself running late (its goroutine not scheduled on a busy machine): then
Timestamp is later than intended. Here latency = Timestamp + Latency - intended, with
`began` the latest anchor that puts no hit before its slot, so a late pacer counts against
the server under test, as a cluster's API server sending on time would see it.

Usage: openloop.py RATE WARMUP_S < results.csv   (vegeta encode --to csv)
Prints: "count errors p50 p99 p999 vegeta_p99 max_lag achieved" (ms; lag = pacer lateness;
achieved = the measured hits over the time from the first one's slot to the last response,
per second: at or near RATE when the generator held the rate and the server kept up).
Exits 1 on a malformed line.
"""
import csv, sys


def pct(sorted_ms, q):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_ms:
        return float("nan")
    k = max(0, min(len(sorted_ms) - 1, int(q * len(sorted_ms) + 0.999999) - 1))
    return sorted_ms[k]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: openloop.py RATE WARMUP_S < results.csv")
    rate, warmup = float(sys.argv[1]), float(sys.argv[2])
    interval = 1e9 / rate
    rows = []
    for lineno, rec in enumerate(csv.reader(sys.stdin), 1):
        try:
            ts, code, lat, seq = int(rec[0]), int(rec[1]), int(rec[2]), int(rec[8])
        except (IndexError, ValueError):
            sys.exit("openloop.py: line %d: not a vegeta CSV result" % lineno)
        rows.append((seq, ts, lat, code, rec[5]))
    if not rows:
        sys.exit("openloop.py: no results")
    # the anchor: the earliest began such that every hit was sent at or after its slot
    began = min(ts - (seq + 1) * interval for seq, ts, _, _, _ in rows)
    ours, theirs, errors, lag = [], [], 0, 0.0
    first, last_end = None, None
    for seq, ts, lat, code, err in rows:
        intended = began + (seq + 1) * interval
        if intended - began < warmup * 1e9:
            continue  # the 16 TLS handshakes of the start
        if code != 200 or err:
            errors += 1
        lag = max(lag, (ts - intended) / 1e6)
        first = intended if first is None else min(first, intended)
        last_end = ts + lat if last_end is None else max(last_end, ts + lat)
        ours.append((ts + lat - intended) / 1e6)
        theirs.append(lat / 1e6)
    ours.sort()
    theirs.sort()
    achieved = len(ours) / ((last_end - first) / 1e9) if ours and last_end > first else 0.0
    print("%d %d %.3f %.3f %.3f %.3f %.3f %.1f" % (len(ours), errors, pct(ours, 0.5), pct(ours, 0.99),
                                                  pct(ours, 0.999), pct(theirs, 0.99), lag, achieved))


if __name__ == "__main__":
    main()
