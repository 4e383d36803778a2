#!/usr/bin/env python3
"""Engine benchmark (issues 3, 13, 17): maskctl mask throughput and peak RSS on generated JSON
of realistic shape (~30% of string values sensitive), beside the floor (cat, a parse-only
pass), fast-redact (Node: JSON.parse + redact + JSON.stringify) and a SIMD JSON parser's own
figures (Debian libsimdjson-dev: its DOM parse, and its On-Demand reads of the fields the path
rules mask), all in the same run. maskctl runs on
its best SIMD level and, for the SIMD-vs-portable ratio, with MM_SIMD=off. Every workload
runs once per round, in turn, for BENCH_ROUNDS rounds: each row shows its best round, each
ratio the median of the rounds' own ratios (with the lowest and highest), so that a slow spell
of the host weighs on both sides of a ratio.

Bars: path rules >= 5x fast-redact; all detectors >= 200 MB/s; peak RSS < 32 MB on 1 GB;
issue 17: path rules >= 1.5 GB/s and >= 20x fast-redact, all detectors >= 0.6 GB/s.
Prints a table and exits 1 when a bar is missed."""
import json, os, re, subprocess, sys, tempfile, time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MM_BIN", os.path.join(TOP, "bin"))
BUILD = os.environ.get("MM_BUILD", os.path.join(TOP, "build"))
OUT = os.path.join(TOP, "bench", "out")
SIZE = int(os.environ.get("BENCH_SIZE", 100_000_000))       # throughput corpus
BIG = int(os.environ.get("BENCH_BIG", 1_000_000_000))        # RSS corpus
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 5))

# 20 custom patterns of the kind policies carry (order, employee and ticket ids, API key
# prefixes); the order ids match every record, the rest are rare in the corpus, as in life
PATTERNS = [
    ("order_id", r"\bord_\d{8}\b"), ("employee_id", r"\bEMP-\d{6}\b"),
    ("contractor_id", r"\bCTR-\d{5}\b"), ("invoice", r"\bINV-\d{4}-\d{6}\b"),
    ("ticket", r"\bTKT-[A-Z]{3}-\d+"), ("medical_record", r"\bMRN-?\d{7}\b"),
    ("internal_id", r"(?i)internal[-_ ]?id[:=]\s*\d+"), ("stripe_live", r"\b[sr]k_live_[0-9A-Za-z]{24,}"),
    ("stripe_pub", r"\bpk_live_[0-9A-Za-z]{24,}"), ("stripe_webhook", r"\bwhsec_[0-9A-Za-z]{32}"),
    ("stripe_account", r"\bacct_[0-9A-Za-z]{16}\b"), ("stripe_customer", r"\bcus_[0-9A-Za-z]{14}\b"),
    ("slack_bot", r"\bxox[bpas]-[0-9A-Za-z-]{10,}"), ("github_pat", r"\bgh[pousr]_[0-9A-Za-z]{36}\b"),
    ("aws_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), ("gitlab_pat", r"\bglpat-[0-9A-Za-z_-]{20}\b"),
    ("npm_token", r"\bnpm_[0-9A-Za-z]{36}\b"), ("sendgrid", r"\bSG\.[\w-]{22}\.[\w-]{43}\b"),
    ("openai", r"\bsk-(?:proj-)?[0-9A-Za-z_-]{32,}"), ("db_password", r"(?i)\b(?:passwd|pwd)\s*[:=]\s*\S+"),
]
FIELDS = ["customer.name", "customer.email", "customer.phone", "customer.ssn",
          "payment.card_number", "payment.iban", "client_ip"]
def registry():
    """The built-in detectors, from lib/mask/detectors.def (the one list): every one is on."""
    names = []
    with open(os.path.join(TOP, "lib", "mask", "detectors.def")) as f:
        for m in re.finditer(r'^DETECTOR\(\w+, \w+, "(\w+)"', f.read(), re.M):
            names.append(m.group(1))
    return names


DETECTORS = registry()


def policy(name, rule):
    return {"apiVersion": "maskmesh.io/v1alpha1", "kind": "MaskingPolicy",
            "metadata": {"name": name}, "spec": {"selector": {}, "rules": [rule]}}


def write_policies():
    pols = {
        "parse-only": policy("parse-only", {"name": "none", "fields": ["$.no_such_member"],
                                            "action": {"type": "redact"}}),
        "path rules": policy("paths", {"name": "pii", "fields": ["$.records[*]." + f for f in FIELDS],
                                       "action": {"type": "redact"}}),
        "all detectors": policy("detectors", {"name": "pii", "detectors": DETECTORS,
                                              "action": {"type": "redact"}}),
        "20 patterns": policy("patterns", {"name": "ids", "patterns": [
            {"name": n, "regex": r} for n, r in PATTERNS], "action": {"type": "redact"}}),
    }
    paths = {}
    for k, v in pols.items():
        p = os.path.join(OUT, k.replace(" ", "-") + ".json")
        with open(p, "w") as f:
            json.dump(v, f)
        paths[k] = p
    # NDJSON lines are records themselves
    nd = policy("paths-ndjson", {"name": "pii", "fields": ["$." + f for f in FIELDS],
                                 "action": {"type": "redact"}})
    paths["ndjson path rules"] = os.path.join(OUT, "paths-ndjson.json")
    with open(paths["ndjson path rules"], "w") as f:
        json.dump(nd, f)
    return paths


def gen(path, size, ndjson=False):
    if os.path.exists(path) and os.path.getsize(path) >= size:
        return
    args = [os.path.join(BUILD, "tools", "mm-jsongen"), "--size", str(size)]
    if ndjson:
        args.append("--ndjson")
    with open(path + ".tmp", "wb") as f:
        subprocess.run(args, stdout=f, check=True)
    os.replace(path + ".tmp", path)


SIMD_PATHS = {}  # MM_SIMD ("" unset) -> the block classifier maskctl said it used


def run(args, env=None):
    """Runs a command with stdout to /dev/null; returns (seconds, peak RSS in KiB).
    maskctl reports its own peak (VmHWM): ru_maxrss of a child forked from Python counts
    the interpreter's pages too, since it survives exec."""
    with open(os.devnull, "wb") as null, open(os.devnull, "rb") as inp:
        t0 = time.perf_counter()
        p = subprocess.Popen(args, stdin=inp, stdout=null, stderr=subprocess.PIPE,
                             env=dict(os.environ, **(env or {})))
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t0
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(args)} failed: {err.strip()}")
    m = re.search(r"peak RSS (\d+) KiB", err)
    path = re.search(r"SIMD path (\w+)", err)
    if path:  # what maskctl chose on this CPU, by MM_SIMD
        SIMD_PATHS[(env or {}).get("MM_SIMD", "")] = path.group(1)
    return secs, int(m.group(1)) if m else None


SIMDJSON_H = "/usr/include/simdjson.h"  # Debian libsimdjson-dev: the reference rows

# In-process baselines (simdjson, fast-redact) take the best of this many passes inside each
# process, so that each round's figure is a warm one, as maskctl's runs are.
WARM = 2


def interleaved(work):
    """Runs every workload once per round, round after round (ROUNDS of them), so that the
    host's slow spells, which last minutes on this VM, fall on all of them alike instead of
    on whichever workload ran its rounds then. work: [(key, fn)], fn() -> (MB/s, peak KiB or
    None). Returns {key: [(MB/s, rss), ...]}, one entry per round."""
    series = {k: [] for k, _ in work}
    for _ in range(ROUNDS):
        for k, fn in work:
            series[k].append(fn())
    return series


def per_round(series, a, b):
    """The ratio a/b of each round (measured seconds apart): (median, lowest, highest)."""
    rs = sorted(x[0] / y[0] for x, y in zip(series[a], series[b]))
    n = len(rs)
    med = rs[n // 2] if n % 2 else (rs[n // 2 - 1] + rs[n // 2]) / 2
    return med, rs[0], rs[-1]


def sanity(policy_path, corpus):
    """The path policy really masks: every sensitive member of the first records is redacted."""
    head = os.path.join(OUT, "head.json")
    subprocess.run([os.path.join(BUILD, "tools", "mm-jsongen"), "--size", "20000"],
                   stdout=open(head, "wb"), check=True)
    out = subprocess.run([os.path.join(BIN, "maskctl"), "mask", "--policy", policy_path, head],
                         capture_output=True, check=True).stdout
    doc = json.loads(out)
    for r in doc["records"]:
        for f in FIELDS:
            obj = r
            for part in f.split("."):
                obj = obj[part]
            if obj != "[REDACTED]":
                sys.exit(f"bench: sanity check failed: {f} was not redacted")


def simdjson_figure(corpus, fields=()):
    """simdjson's own parse of the corpus (bench/simdjson-count.cpp, built here with g++ and
    the Debian package, when SIMDJSON_H is there), best of WARM passes: its DOM parse, or with
    `fields` its On-Demand reads of them in every record."""
    src = os.path.join(TOP, "bench", "simdjson-count.cpp")
    exe = os.path.join(BUILD, "tools", "simdjson-count")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        os.makedirs(os.path.dirname(exe), exist_ok=True)
        subprocess.run(["g++", "-O2", "-std=c++17", "-o", exe, src, "-lsimdjson"], check=True)
    out = subprocess.run([exe, corpus, str(WARM), *fields], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main():
    os.makedirs(OUT, exist_ok=True)
    maskctl = os.path.join(BIN, "maskctl")
    pols = write_policies()
    corpus = os.path.join(OUT, f"records-{SIZE}.json")
    big_json = os.path.join(OUT, f"records-{BIG}.json")
    big_nd = os.path.join(OUT, f"records-{BIG}.ndjson")
    gen(corpus, SIZE)
    gen(big_json, BIG)
    gen(big_nd, BIG, ndjson=True)
    sanity(pols["path rules"], corpus)
    mb = os.path.getsize(corpus) / 1e6

    def cmd(args, env=None):
        def fn():
            t, rss = run(args, env=env)
            return mb / t, rss
        return fn

    def mask(k, env=None):
        return cmd([maskctl, "mask", "--stats", "--policy", pols[k], corpus], env)

    sj_impl = []

    def simdjson(fields=()):
        def fn():
            sj = simdjson_figure(corpus, fields)
            if "implementation" in sj:
                sj_impl[:] = [sj["implementation"]]
            return sj["mbps"], None
        return fn

    node_paths = ",".join("records[*]." + f for f in FIELDS)
    npm_dir = os.path.join(TOP, "bench")
    if not os.path.isdir(os.path.join(npm_dir, "node_modules", "fast-redact")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-package-lock",
                        "--silent"], cwd=npm_dir, check=True)

    def fast_redact():
        fr = subprocess.run(["node", os.path.join(npm_dir, "fast-redact.js"), corpus, node_paths,
                             str(WARM)], capture_output=True, text=True, check=True)
        return json.loads(fr.stdout)["mbps"], None

    # (key, label, fn): the table's rows in order; the label None when the key says it
    off = {"MM_SIMD": "off"}  # the portable byte machine alone (lib/mask/simd_int.h)
    work = [
        ("cat", "floor: cat > /dev/null", cmd(["cat", corpus])),
        ("python", "floor: Python json.load (DOM parse only)",
         cmd(["python3", "-c", "import json,sys; json.load(open(sys.argv[1]))", corpus])),
        ("parse-only", None, mask("parse-only")),
        ("path rules", None, mask("path rules")),
        ("all detectors", None, mask("all detectors")),
        ("parse-only, portable path (MM_SIMD=off)", None, mask("parse-only", off)),
        ("path rules, portable path (MM_SIMD=off)", None, mask("path rules", off)),
        # custom patterns behind the one-pass prefilter, and each pattern on every value
        ("20 patterns", None, mask("20 patterns")),
        ("20 patterns, each on every value (no prefilter)", None,
         mask("20 patterns", {"MM_PATTERN_PREFILTER": "off"})),
    ]
    if os.path.exists(SIMDJSON_H):
        work += [("simdjson DOM", "simdjson 3 DOM parse ({impl}, in memory)", simdjson()),
                 # the same reads as the path rules, the way On-Demand makes them: no output,
                 # and the values it skips are not validated (a masker cannot skip that: a
                 # parser differential)
                 ("simdjson On-Demand", "simdjson 3 On-Demand reads of the 7 fields (in memory)",
                  simdjson(FIELDS))]
    work.append(("fast-redact", "fast-redact 3.5.0 (JSON.parse + redact + stringify)", fast_redact))
    series = interleaved([(k, fn) for k, _, fn in work])
    res = {k: max(m for m, _ in v) for k, v in series.items()}
    rows = []
    for k, label, _ in work:
        rss = [r for _, r in series[k] if r is not None]
        label = (label or f"maskctl mask: {k}").format(impl=sj_impl[0] if sj_impl else "?")
        rows.append((label, res[k], max(rss) if rss else None))

    big_rows = []
    big = f"{BIG / 1e9:g} GB" if BIG >= 1e9 else f"{BIG / 1e6:g} MB"
    for label, path, pol in ((f"{big} JSON, all detectors", big_json, pols["all detectors"]),
                             (f"{big} NDJSON, path rules", big_nd, pols["ndjson path rules"])):
        t, rss = run([maskctl, "mask", "--stats", "--policy", pol, path])
        big_rows.append((label, os.path.getsize(path) / 1e6 / t, rss))

    print(f"engine bench: {mb:.0f} MB of order records, {ROUNDS} rounds of every workload in "
          f"turn, best round shown, one core")
    print(f"  maskctl's block classifier on this CPU: {SIMD_PATHS.get('', '?')} "
          f"(with MM_SIMD=off: {SIMD_PATHS.get('off', '?')})")
    print(f"  {'workload':<56} {'MB/s':>9} {'peak RSS':>10}")
    for name, v, rss in rows + big_rows:
        r = f"{rss / 1024:.1f} MB" if rss else ""
        print(f"  {name:<56} {v:>9.1f} {r:>10}")
    print("  ratios: median of the rounds' own (the two figures of a round are seconds apart), "
          "lowest-highest")

    def show(text, a, b):
        med, lo, hi = per_round(series, a, b)
        print(f"  {text}: {med:.2f}x ({lo:.2f}-{hi:.2f})")
        return med

    for k in ("parse-only", "path rules"):
        show(f"SIMD vs portable path, {k}", k, f"{k}, portable path (MM_SIMD=off)")
    show("20 patterns, prefilter vs every pattern on every value", "20 patterns",
         "20 patterns, each on every value (no prefilter)")
    if "simdjson DOM" in series:
        show("parse-only vs simdjson's DOM parse", "parse-only", "simdjson DOM")
        show("path rules vs simdjson On-Demand reading the same fields", "path rules",
             "simdjson On-Demand")
    ratio = show("path rules vs fast-redact", "path rules", "fast-redact")
    pr, ad = res["path rules"], res["all detectors"]
    bars = [
        (f"path rules vs fast-redact: {ratio:.1f}x (bar >= 5x)", ratio >= 5),
        (f"all detectors: {ad:.0f} MB/s (bar >= 200 MB/s)", ad >= 200),
        (f"issue 17: path rules vs fast-redact: {ratio:.1f}x (bar >= 20x; "
         f"{20 / ratio:.2f}x short)" if ratio < 20 else
         f"issue 17: path rules vs fast-redact: {ratio:.1f}x (bar >= 20x)", ratio >= 20),
        (f"issue 17: path rules: {pr:.0f} MB/s (bar >= 1500 MB/s"
         + (f"; {1500 / pr:.2f}x short)" if pr < 1500 else ")"), pr >= 1500),
        (f"issue 17: all detectors: {ad:.0f} MB/s (bar >= 600 MB/s"
         + (f"; {600 / ad:.2f}x short)" if ad < 600 else ")"), ad >= 600),
    ]
    for label, _, rss in big_rows:
        bars.append((f"peak RSS, {label}: {rss / 1024:.1f} MB (bar < 32 MB)", rss / 1024 < 32))
    ok = True
    for text, passed in bars:
        print(f"  {'ok  ' if passed else 'MISS'} {text}")
        ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
