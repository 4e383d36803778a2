#!/usr/bin/env python3
"""Controller benchmark (issues 6, 17): 10,000 MaskingPolicies in 1,000 namespaces.
Measures the time from the controller's start to all rendered (every namespace's ConfigMap
and every policy's NetworkPolicy present and matching its policies, as watches on the API
server see them, and checked again by listing them at the end) and to every status Ready
(observedGeneration current), the CPU time the
controller and the API server (when it is the local stand-in) spent on it, the controller's
peak RSS, the p50/p99 time from a policy change to its ConfigMap and NetworkPolicy being
written (steady state), and the writes made during an idle resync. Bars: peak RSS < 32 MB,
all rendered < 10 s from a cold start, p99 < 100 ms, zero idle writes. Exits 3 when it
measured and a bar is missed, 1 when the bench itself failed.

By default it runs against the API stand-in (e2e/apiserver) it starts. With
`--kubeconfig FILE` (or BENCH_KUBECONFIG) it runs against that cluster's API server instead
(token, client certificate or insecure-skip-tls-verify, as kubectl reads the file); it
creates the CRD and the namespaces ns-0000.. (which must not hold other MaskingPolicies),
and deletes those namespaces at the end unless BENCH_KEEP=1.
BENCH_NS / BENCH_PER_NS scale it down for a quick run. BENCH_MARKS=FILE: the wall-clock
times (epoch seconds) of the controller's start, all rendered and all Ready, for cutting an API
server's audit log to the cold start (bench/audit-writes.py --marks). To see where the memory
goes: BENCH_SMAPS=FILE saves the controller's /proc/PID/smaps at the end (which mappings'
pages count), BENCH_CTRL_PREFIX="valgrind --tool=massif ..." runs the controller under that
command (its RSS is then the tool's, not the controller's). BENCH_CTRL_KUBECONFIG=FILE: the
controller's own credentials (bench/controller-live.sh: the chart's ServiceAccount), the
bench's requests keep --kubeconfig's. BENCH_API_PROFILE=SECONDS (with
--kubeconfig): the API server's own CPU profile (/debug/pprof/profile) over that many seconds
from the controller's start, saved as bench/out/apiserver-cold.pprof, and its top functions
printed (`go tool pprof`), to see where the API server spends a cold start."""
import base64, http.client, json, os, re, shlex, signal, ssl, subprocess, sys, tempfile, threading, time
import urllib.request

from openloop import pct  # bench/, beside this script

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pylib"))
from procstat import cpu_s, status_kib  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MM_BIN", os.path.join(TOP, "bin"))
NS = int(os.environ.get("BENCH_NS", 1000))
PER = int(os.environ.get("BENCH_PER_NS", 10))
CHANGES = int(os.environ.get("BENCH_CHANGES", 100))
RESYNC = 10


class Api:
    def __init__(self, kubeconfig, d):
        """Connects as kubectl would with kubeconfig's current context (read through
        `kubectl config view --raw --minify`, so every form of the file is understood)."""
        v = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "config", "view", "--raw", "--minify",
                            "-o", "json"], capture_output=True, text=True)
        if v.returncode:
            sys.exit("bench: reading %s failed: %s" % (kubeconfig, v.stderr))
        cfg = json.loads(v.stdout)
        cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0].get("user", {})
        u = urllib.request.urlparse(cluster["server"])
        self.host, self.port = u.hostname, u.port or 443
        if cluster.get("insecure-skip-tls-verify"):
            self.ctx = ssl._create_unverified_context()
        elif cluster.get("certificate-authority-data"):
            self.ctx = ssl.create_default_context(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        else:
            self.ctx = ssl.create_default_context(cafile=cluster.get("certificate-authority"))
        cert, key = user.get("client-certificate"), user.get("client-key")
        if user.get("client-certificate-data"):
            cert, key = os.path.join(d, "client.pem"), os.path.join(d, "client-key.pem")
            open(cert, "wb").write(base64.b64decode(user["client-certificate-data"]))
            open(key, "wb").write(base64.b64decode(user["client-key-data"]))
        if cert:
            self.ctx.load_cert_chain(cert, key)
        self.token = user.get("token") or (open(user["tokenFile"]).read().strip() if user.get("tokenFile") else None)
        self.conn = None

    def connect(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def headers(self, ctype="application/json"):
        h = {"Content-Type": ctype, "Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        return h

    def items(self, path):
        """Every item of a list, a page of 500 at a time, and the list's resourceVersion."""
        out, cont = [], ""
        while True:
            sep = "&" if "?" in path else "?"
            s, body = self.req("GET", path + sep + "limit=500" + ("&continue=" + cont if cont else ""))
            if s != 200:
                sys.exit("bench: listing %s answered %d" % (path, s))
            out += body["items"]
            cont = body["metadata"].get("continue")
            if not cont:
                return out, body["metadata"]["resourceVersion"]

    def req(self, method, path, body=None, ctype="application/json"):
        for attempt in range(3):
            try:
                if not self.conn:
                    self.conn = self.connect()
                data = json.dumps(body) if isinstance(body, (dict, list)) else body
                self.conn.request(method, path, body=data, headers=self.headers(ctype))
                r = self.conn.getresponse()
                text = r.read()
                return r.status, json.loads(text) if text else None
            except (http.client.HTTPException, OSError):
                self.conn = None
        raise RuntimeError("request failed: %s %s" % (method, path))


def policy(ns, name, regex="EMP-[0-9]{6}", app=None):
    return {"apiVersion": "maskmesh.io/v1alpha1", "kind": "MaskingPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": app or name}},
                     "rules": [{"name": "card", "detectors": ["credit_card"], "action": {"type": "redact"}},
                               {"name": "ids", "patterns": [{"name": "emp", "regex": regex}],
                                "action": {"type": "redact"}}]}}


MANAGED = "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmaskmesh"
CM_PATH = "/api/v1/configmaps?" + MANAGED
NP_PATH = "/apis/networking.k8s.io/v1/networkpolicies?" + MANAGED
POL_PATH = "/apis/maskmesh.io/v1alpha1/maskingpolicies"


class Progress:
    """What the API server holds, from watches: which namespaces' ConfigMap, which policies'
    NetworkPolicy and which policies' Ready status are as the bench's policies want them,
    and when the last of each came. uids: (ns, name) -> the policy's uid."""

    def __init__(self, uids):
        self.uids, self.lock = uids, threading.Lock()
        self.cm, self.np, self.ready = {}, {}, {}
        self.want_cm = {}
        for ns, name in uids:
            self.want_cm.setdefault(ns, set()).add(name)
        self.rendered_at = self.ready_at = None
        self.errors = []

    def cm_ok(self, o):
        ns, md = o["metadata"]["namespace"], o["metadata"]
        want = self.want_cm.get(ns)
        if md["name"] != "maskmesh-policies" or not want:
            return None
        owners = {(r["name"], r["uid"]) for r in md.get("ownerReferences", [])}
        try:  # a JSON list of the policies (YAML's subset)
            named = {p["metadata"]["name"] for p in json.loads((o.get("data") or {}).get("policies.yaml", "[]"))}
        except (ValueError, TypeError, KeyError):
            named = None
        return ns, owners == {(n, self.uids[(ns, n)]) for n in want} and named == want

    def np_ok(self, o):
        md = o["metadata"]
        name = md["name"][len("maskmesh-"):]
        key = (md["namespace"], name)
        if not md["name"].startswith("maskmesh-") or key not in self.uids:
            return None
        sel = o["spec"]["podSelector"].get("matchLabels", {})
        return key, sel == {"app": name} and \
            [r["uid"] for r in md.get("ownerReferences", [])] == [self.uids[key]]

    def ready_ok(self, o):
        md = o["metadata"]
        key = (md["namespace"], md["name"])
        if key not in self.uids:
            return None
        conds = (o.get("status") or {}).get("conditions") or []
        return key, any(c.get("type") == "Ready" and c.get("status") == "True" and
                        c.get("observedGeneration") == md.get("generation") for c in conds)

    def see(self, table, check, etype, o):
        r = check(o)
        if r is None:
            return
        with self.lock:
            table[r[0]] = r[1] and etype != "DELETED"
            now = time.time()
            if self.rendered_at is None and len(self.cm) == len(self.want_cm) and \
                    len(self.np) == len(self.uids) and all(self.cm.values()) and all(self.np.values()):
                self.rendered_at = now
            if self.ready_at is None and len(self.ready) == len(self.uids) and all(self.ready.values()):
                self.ready_at = now

    def watch(self, api, path, table, check, rv, stop):
        """Follows path from rv until stop is set (reconnecting from the last version)."""
        while not stop.is_set():
            sep = "&" if "?" in path else "?"
            c = api.connect(timeout=5)
            try:
                c.request("GET", "%s%swatch=1&allowWatchBookmarks=true&resourceVersion=%s" % (path, sep, rv),
                          headers=api.headers())
                r = c.getresponse()
                if r.status != 200:
                    self.errors.append("watch %s answered %d" % (path, r.status))
                    return
                while not stop.is_set():
                    line = r.readline()
                    if not line:
                        break
                    ev = json.loads(line)
                    if ev["type"] == "ERROR":
                        self.errors.append("watch %s: %s" % (path, ev["object"].get("message")))
                        return
                    rv = ev["object"]["metadata"]["resourceVersion"]
                    if ev["type"] != "BOOKMARK":
                        self.see(table, check, ev["type"], ev["object"])
            except (OSError, http.client.HTTPException):
                pass  # a read timeout: look at stop, then resume from rv
            finally:
                c.close()

    def start(self, api):
        """Lists, then watches, the three kinds (threads end when the returned event is set)."""
        stop = threading.Event()
        for path, table, check in ((CM_PATH, self.cm, self.cm_ok), (NP_PATH, self.np, self.np_ok),
                                   (POL_PATH, self.ready, self.ready_ok)):
            items, rv = api.items(path)
            for o in items:
                self.see(table, check, "ADDED", o)
            threading.Thread(target=self.watch, args=(api, path, table, check, rv, stop), daemon=True).start()
        return stop

    def confirm(self, api):
        """The same checks over fresh lists: what is missing or wrong, as text (empty: none)."""
        bad = []
        for path, check, want, what in ((CM_PATH, self.cm_ok, self.want_cm, "ConfigMap"),
                                        (NP_PATH, self.np_ok, self.uids, "NetworkPolicy"),
                                        (POL_PATH, self.ready_ok, self.uids, "Ready status")):
            seen = dict(r for r in map(check, api.items(path)[0]) if r)
            n_bad = sum(1 for k in want if not seen.get(k))
            if n_bad:
                bad.append("%d of %d %s missing or not matching" % (n_bad, len(want), what))
        return "; ".join(bad)


def metric(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for m in re.finditer(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M):
        total += float(m.group(1))
    return total


def start_profile(kc):
    """The API server's CPU profile over BENCH_API_PROFILE seconds, from now (kubectl get
    --raw, as the kubeconfig's user: the profiling endpoint needs the rights an admin has)."""
    secs = int(os.environ.get("BENCH_API_PROFILE", "0") or 0)
    if secs <= 0:
        return None
    out = os.path.join(TOP, "bench", "out", "apiserver-cold.pprof")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    f = open(out, "wb")
    p = subprocess.Popen(["kubectl", "--kubeconfig", kc, "get", "--raw",
                          "/debug/pprof/profile?seconds=%d" % secs], stdout=f,
                         stderr=subprocess.PIPE)
    return p, f, out, secs


def print_profile(prof):
    """Waits for the profile and prints its top functions by flat and by cumulative time."""
    p, f, out, secs = prof
    _, err = p.communicate(timeout=secs + 60)
    f.close()
    if p.returncode:
        print("  API server profile: kubectl failed: %s" % err.decode().strip())
        return
    print("  API server CPU profile over the first %d s: %s" % (secs, out))
    for sort in ("-top", "-top -cum"):
        r = subprocess.run(["go", "tool", "pprof"] + sort.split() + ["-nodecount=25", out],
                           capture_output=True, text=True)
        if r.returncode:
            print("    go tool pprof failed: %s" % r.stderr.strip())
            return
        for line in r.stdout.splitlines():
            print("    " + line)


def main():
    given = os.environ.get("BENCH_KUBECONFIG")
    if len(sys.argv) == 3 and sys.argv[1] == "--kubeconfig":
        given = sys.argv[2]
    elif len(sys.argv) != 1:
        sys.exit("usage: bench/controller.py [--kubeconfig FILE]")
    d = tempfile.mkdtemp(prefix="mm-bench-ctrl-")
    kc = given or os.path.join(d, "kubeconfig")
    ctrl_kc = os.environ.get("BENCH_CTRL_KUBECONFIG") or kc
    procs = []
    api_p = None
    try:
        if not given:
            api_p = subprocess.Popen([os.path.join(TOP, "e2e/apiserver/run"), "--listen", "127.0.0.1:0",
                                      "--kubeconfig", kc], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
            procs.append(api_p)
            api_p.stdout.readline()  # "listening <url>": the kubeconfig is written
        api = Api(kc, d)
        crd = subprocess.run(["kubectl", "--kubeconfig", kc, "apply", "--server-side", "-f",
                              os.path.join(TOP, "crds/maskmesh.io_maskingpolicies.yaml")], capture_output=True)
        if crd.returncode:
            sys.exit("bench: creating the CRD failed: %s" % crd.stderr.decode())
        where = "API stand-in on this machine" if not given else "the API server of %s" % given

        t0 = time.time()
        uids = {}
        for i in range(NS):
            ns = "ns-%04d" % i
            s, _ = api.req("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": ns}})
            if s not in (201, 409):
                sys.exit("bench: creating namespace %s answered %d" % (ns, s))
            for j in range(PER):
                s, o = api.req("POST", "/apis/maskmesh.io/v1alpha1/namespaces/%s/maskingpolicies" % ns,
                               policy(ns, "p-%02d" % j))
                if s == 409:
                    s, o = api.req("GET", "/apis/maskmesh.io/v1alpha1/namespaces/%s/maskingpolicies/p-%02d" % (ns, j))
                if s not in (200, 201):
                    sys.exit("bench: creating a policy answered %d" % s)
                uids[(ns, "p-%02d" % j)] = o["metadata"]["uid"]
        seed_s = time.time() - t0
        prog = Progress(uids)
        stop_watches = prog.start(api)

        log = open(os.path.join(d, "ctrl.log"), "w+")
        api_cpu0 = cpu_s(api_p.pid) if api_p else None
        prof = start_profile(kc) if given else None
        t0 = time.time()
        prefix = shlex.split(os.environ.get("BENCH_CTRL_PREFIX", ""))
        ctrl = subprocess.Popen(prefix + [os.path.join(BIN, "maskmesh-controller"), "--kubeconfig", ctrl_kc,
                                 "--admin", "127.0.0.1:0", "--resync", str(RESYNC)], stdout=log, stderr=log)
        procs.append(ctrl)
        port = None
        while not port and time.time() - t0 < 30:
            log.seek(0)
            m = re.search(r'"admin_port":"(\d+)"', log.read())
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        total = NS * PER
        want_writes = NS + 2 * total  # a ConfigMap per namespace, a NetworkPolicy and a status per policy
        while time.time() - t0 < 1800:
            if prog.errors:
                sys.exit("bench: " + "; ".join(prog.errors))
            if prog.rendered_at and prog.ready_at and metric(port, "maskmesh_controller_queue_depth") == 0:
                break
            time.sleep(0.2)
        else:
            sys.exit("bench: not everything was rendered and Ready within 30 minutes")
        stop_watches.set()
        rendered_s, render_s = prog.rendered_at - t0, prog.ready_at - t0
        if os.environ.get("BENCH_MARKS"):
            with open(os.environ["BENCH_MARKS"], "w") as f:
                f.write("%.3f %.3f %.3f\n" % (t0, t0 + rendered_s, t0 + render_s))
        done_writes = metric(port, "maskmesh_controller_writes_total")
        done_reconciles = metric(port, "maskmesh_controller_reconciles_total")
        ctrl_cpu = cpu_s(ctrl.pid)
        api_cpu = cpu_s(api_p.pid) - api_cpu0 if api_p else None
        rss_rendered = status_kib(ctrl.pid, "VmRSS") / 1024
        failures = metric(port, 'maskmesh_controller_reconciles_total{result="error"}')
        wrong = prog.confirm(api)  # before the changes below move the selectors

        # steady state: one change at a time, timed until its ConfigMap and NetworkPolicy change
        lat = []
        for k in range(CHANGES):
            ns, name = "ns-%04d" % (k % NS), "p-00"
            st, cm = api.req("GET", "/api/v1/namespaces/%s/configmaps/maskmesh-policies" % ns)
            st, np = api.req("GET", "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies/maskmesh-%s" % (ns, name))
            cm_rv, np_rv = cm["metadata"]["resourceVersion"], np["metadata"]["resourceVersion"]
            patch = {"spec": {"selector": {"matchLabels": {"app": "v%d" % k}}}}
            t1 = time.time()
            api.req("PATCH", "/apis/maskmesh.io/v1alpha1/namespaces/%s/maskingpolicies/%s" % (ns, name),
                    json.dumps(patch), "application/merge-patch+json")
            done = set()
            while len(done) < 2 and time.time() - t1 < 10:
                if "cm" not in done:
                    _, cm = api.req("GET", "/api/v1/namespaces/%s/configmaps/maskmesh-policies" % ns)
                    if cm["metadata"]["resourceVersion"] != cm_rv:
                        done.add("cm")
                if "np" not in done:
                    _, np = api.req("GET", "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies/maskmesh-%s" % (ns, name))
                    if np["metadata"]["resourceVersion"] != np_rv:
                        done.add("np")
            if len(done) < 2:
                sys.exit("bench: a change did not reach its objects within 10 s")
            lat.append(time.time() - t1)
        lat.sort()
        # nearest rank: of 100 changes, the 99th (lat[99] had been taken, the slowest)
        p50, p99 = pct(lat, 0.5), pct(lat, 0.99)

        time.sleep(2)
        w0 = metric(port, "maskmesh_controller_writes_total")
        r0 = metric(port, "maskmesh_controller_reconciles_total")
        time.sleep(RESYNC + 3)
        idle_writes = metric(port, "maskmesh_controller_writes_total") - w0
        idle_reconciles = metric(port, "maskmesh_controller_reconciles_total") - r0
        rss = status_kib(ctrl.pid, "VmHWM") / 1024
        rss_end = status_kib(ctrl.pid, "VmRSS") / 1024
        if os.environ.get("BENCH_SMAPS"):
            with open("/proc/%d/smaps" % ctrl.pid) as f, open(os.environ["BENCH_SMAPS"], "w") as out:
                out.write(f.read())

        print("controller bench: %d policies in %d namespaces (%s), %d CPUs, load average %s" %
              (total, NS, where, os.cpu_count(), " ".join(open("/proc/loadavg").read().split()[:3])))
        print("  seeding the API server (not the controller)      %8.1f s" % seed_s)
        print("  start to all rendered (%d ConfigMaps, %d NetworkPolicies)%6.1f s" % (NS, total, rendered_s))
        print("  start to all statuses Ready (%d writes)        %8.1f s" % (want_writes, render_s))
        print("    controller CPU (user+sys) until then           %8.1f s" % ctrl_cpu)
        print("    reconciles / writes made until then        %6d / %d (%.0f writes/s)" %
              (done_reconciles, done_writes, done_writes / render_s))
        if api_cpu is not None:
            print("    API stand-in CPU (user+sys) meanwhile          %8.1f s" % api_cpu)
        print("  reconciles that failed and were retried          %8d" % failures)
        print("  peak RSS (VmHWM, the whole run)                  %8.1f MB" % rss)
        print("  RSS when all was rendered / at the end           %6.1f / %.1f MB" % (rss_rendered, rss_end))
        print("  change -> ConfigMap and NetworkPolicy, p50 / p99 %6.1f / %.1f ms (%d changes, slowest %.1f)" %
              (p50 * 1000, p99 * 1000, CHANGES, lat[-1] * 1000))
        print("  idle resync: %d reconciles, %d writes" % (idle_reconciles, idle_writes))
        print("  listed again at the end: %s" % (wrong or "every ConfigMap, NetworkPolicy and Ready status as wanted"))
        if prof:
            print_profile(prof)
        bars = [("peak RSS %.1f MB (bar < 32 MB)" % rss, rss < 32),
                ("all rendered in %.1f s from a cold start (bar < 10 s)" % rendered_s, rendered_s < 10),
                ("listed at the end: all there and matching", not wrong),
                ("p99 %.1f ms (bar < 100 ms)" % (p99 * 1000), p99 < 0.1),
                ("idle writes %d (bar 0)" % idle_writes, idle_writes == 0 and idle_reconciles > 0)]
        ok = True
        for text, passed in bars:
            print("  %s %s" % ("ok  " if passed else "MISS", text))
            ok &= passed
        return 0 if ok else 3
    finally:
        if given and os.environ.get("BENCH_KEEP") != "1":
            subprocess.run(["kubectl", "--kubeconfig", kc, "delete", "namespace", "--wait=false",
                            "--ignore-not-found"] + ["ns-%04d" % i for i in range(NS)], capture_output=True)
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    sys.exit(main())
