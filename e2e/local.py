#!/usr/bin/env python3
"""make e2e-local: the whole of maskmesh on one machine. The API stand-in plays the cluster;
the real maskmesh-controller, maskmesh-webhook and maskmesh-proxy run against it, with an app
behind the proxy. The policy is applied with kubectl; the ConfigMap the controller writes is
delivered to the proxy the way kubelet mounts it (a ..data symlink swapped atomically).

  e2e/local.py            assert every step (CI)
  e2e/local.py --narrate  the same, told for a person (make demo)
Every wait is bounded; everything started is stopped on every exit path."""
import base64, json, os, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MM_BIN", os.path.join(TOP, "bin"))
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
SVC = "maskmesh-webhook.maskmesh.svc"
NARRATE = "--narrate" in sys.argv
sys.path.insert(0, os.path.join(TOP, "tests", "pylib"))
from mmcheck import check, summary, verbose  # noqa: E402
verbose()


def say(*a):
    if NARRATE:
        print(*a, flush=True)


def step(title):
    if NARRATE:
        print("\n\033[1m== %s\033[0m" % title, flush=True)


def wait(fn, timeout, what):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Local:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="maskmesh-local-")
        self.procs, self.files = [], []

    def start(self, name, args, **kw):
        log = open(os.path.join(self.dir, name + ".log"), "w+")
        self.files.append(log)
        p = subprocess.Popen(args, stdout=kw.pop("stdout", log), stderr=log, **kw)
        self.procs.append(p)
        return p, log

    def kubectl(self, *args, stdin=None, check=True):
        r = subprocess.run([KUBECTL, "--kubeconfig", self.kc] + list(args), input=stdin,
                           capture_output=True, text=True, timeout=30)
        if check and r.returncode:
            raise RuntimeError("kubectl %s: %s" % (" ".join(args), r.stderr.strip()))
        return r

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if p.stdout and not isinstance(p.stdout, int):
                try:
                    p.stdout.close()
                except Exception:
                    pass
        for f in self.files:
            f.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def mount_configmap(self, cm):
        """Writes the ConfigMap's keys the way kubelet does: a fresh timestamped directory,
        then ..data swapped to it with one rename, and the key names linked through ..data."""
        base = os.path.join(self.dir, "policies")
        os.makedirs(base, exist_ok=True)
        stamp = os.path.join(base, "..%d" % time.time_ns())
        os.mkdir(stamp)
        for k, v in cm["data"].items():
            with open(os.path.join(stamp, k), "w") as f:
                f.write(v)
        tmp = os.path.join(base, "..data_tmp")
        os.symlink(os.path.basename(stamp), tmp)
        os.rename(tmp, os.path.join(base, "..data"))
        for k in cm["data"]:
            link = os.path.join(base, k)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", k), link)
        return os.path.join(base, "policies.yaml")


def main():
    env = Local()
    try:
        d = env.dir
        step("the cluster: the API stand-in, the CRD, namespaces")
        wport = free_port()
        env.kc = os.path.join(d, "kubeconfig")
        api, _ = env.start("apiserver", [os.path.join(TOP, "e2e/apiserver/run"), "--listen", "127.0.0.1:0",
                                         "--kubeconfig", env.kc, "--service-host", "%s=127.0.0.1:%d" % (SVC, wport)],
                           stdout=subprocess.PIPE, text=True)
        line = api.stdout.readline()
        check(line.startswith("ready "), "the API stand-in serves", line)
        env.kubectl("create", "-f", os.path.join(TOP, "crds/maskmesh.io_maskingpolicies.yaml"))
        env.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ("shop", "maskmesh")]}))
        say(env.kubectl("get", "crd").stdout)

        step("the webhook: a serving certificate for %s, registered with its caBundle" % SVC)
        for args in (["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", d + "/ca.key", "-out", d + "/ca.pem", "-days", "1", "-subj", "/CN=local CA"],
                     ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", d + "/tls.key", "-out", d + "/tls.csr", "-subj", "/CN=" + SVC]):
            subprocess.run(["openssl"] + args, check=True, capture_output=True)
        with open(d + "/ext", "w") as f:
            f.write("subjectAltName=DNS:%s\n" % SVC)
        subprocess.run(["openssl", "x509", "-req", "-in", d + "/tls.csr", "-CA", d + "/ca.pem", "-CAkey",
                        d + "/ca.key", "-CAcreateserial", "-out", d + "/tls.crt", "-days", "1", "-extfile",
                        d + "/ext"], check=True, capture_output=True)
        env.start("webhook", [os.path.join(BIN, "maskmesh-webhook"), "--listen", "127.0.0.1:%d" % wport,
                              "--cert", d + "/tls.crt", "--key", d + "/tls.key",
                              "--sidecar-image", "maskmesh-proxy:local"])
        wait(lambda: socket.create_connection(("127.0.0.1", wport), timeout=1).close() or True, 10, "the webhook")
        with open(d + "/ca.pem", "rb") as f:
            ca = base64.b64encode(f.read()).decode()
        svc = lambda path: {"service": {"name": "maskmesh-webhook", "namespace": "maskmesh", "path": path,
                                        "port": 443}, "caBundle": ca}
        common = {"admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
                  "timeoutSeconds": 10}
        env.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
             "metadata": {"name": "maskmesh-injector"},
             "webhooks": [dict(common, name="inject.maskmesh.io", clientConfig=svc("/mutate-pods"),
                               rules=[{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                       "resources": ["pods"]}],
                               objectSelector={"matchLabels": {"maskmesh.io/inject": "true"}},
                               namespaceSelector={"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                                                                        "operator": "NotIn",
                                                                        "values": ["kube-system", "maskmesh"]}]})]},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
             "metadata": {"name": "maskmesh-validator"},
             "webhooks": [dict(common, name="validate.maskmesh.io", clientConfig=svc("/validate-maskingpolicies"),
                               rules=[{"operations": ["CREATE", "UPDATE"], "apiGroups": ["maskmesh.io"],
                                       "apiVersions": ["v1alpha1"], "resources": ["maskingpolicies"]}])]}]}))

        step("the controller")
        ctrl, clog = env.start("controller", [os.path.join(BIN, "maskmesh-controller"), "--kubeconfig", env.kc,
                                              "--admin", "127.0.0.1:0", "--resync", "30"])

        step("kubectl apply -f examples/demo/policy.yaml")
        with open(os.path.join(TOP, "examples/demo/policy.yaml")) as f:
            policy_text = f.read()
        say(env.kubectl("apply", "-f", "-", stdin=policy_text).stdout.strip())
        ready = wait(lambda: "True" in env.kubectl("get", "mp", "payments-api", "-n", "shop", "-o",
                                                   "jsonpath={.status.conditions[0].status}").stdout, 15,
                     "the policy Ready")
        check(ready, "the policy is Ready")
        say(env.kubectl("get", "mp,cm,networkpolicy", "-n", "shop").stdout)
        cm = json.loads(env.kubectl("get", "cm", "maskmesh-policies", "-n", "shop", "-o", "json").stdout)
        check("payments-api" in cm["data"]["policies.yaml"], "the ConfigMap holds the policy")
        np = json.loads(env.kubectl("get", "networkpolicy", "maskmesh-payments-api", "-n", "shop", "-o",
                                    "json").stdout)
        # the sidecar port, and the app port of iptables-mode pods, named by their sidecar
        check(np["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 15480},
                                                    {"protocol": "TCP", "port": "maskmesh-redir"}],
              "the NetworkPolicy admits only the sidecar port (and maskmesh-redir)")

        step("a pod that opts in, created through the API: the webhook injects the sidecar")
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "payments-0", "namespace": "shop",
                            "labels": {"app": "payments", "maskmesh.io/inject": "true"}},
               "spec": {"containers": [{"name": "app", "image": "shop/payments:1",
                                        "ports": [{"name": "http", "containerPort": 8080}]}]}}
        env.kubectl("create", "-f", "-", stdin=json.dumps(pod))
        got = json.loads(env.kubectl("get", "pod", "payments-0", "-n", "shop", "-o", "json").stdout)
        names = [c["name"] for c in got["spec"]["containers"] + got["spec"].get("initContainers", [])]
        check("maskmesh-proxy" in names, "the pod was injected", names)
        say("containers:", names)

        step("the sidecar in front of the app, reading the ConfigMap as kubelet mounts it")
        app_port, proxy_port, admin_port = free_port(), free_port(), free_port()
        env.start("app", [sys.executable, "-m", "http.server", str(app_port), "--bind", "127.0.0.1",
                          "--directory", os.path.join(TOP, "examples/demo")])
        policies = env.mount_configmap(cm)
        with open(os.path.join(d, "labels"), "w") as f:
            f.write('app="payments"\nmaskmesh.io/inject="true"\n')
        env.start("proxy", [os.path.join(BIN, "maskmesh-proxy"), "--listen", "127.0.0.1:%d" % proxy_port,
                            "--admin", "127.0.0.1:%d" % admin_port, "--upstream", "127.0.0.1:%d" % app_port,
                            "--policies", policies, "--labels", os.path.join(d, "labels"),
                            "--keys", os.path.join(TOP, "examples/demo/keys"), "--watch-interval", "200"])
        r = subprocess.run([os.path.join(BIN, "maskmesh-proxy"), "--wait-ready", "--admin",
                            "127.0.0.1:%d" % admin_port, "--timeout", "20"])
        check(r.returncode == 0, "the sidecar has started (--wait-ready: its /startz)")

        def admin_ready():
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % admin_port, timeout=2) as resp:
                return resp.status == 200
        # /readyz also wants the app (started beside it here, not after it as by a kubelet)
        check(wait(admin_ready, 20, "the sidecar's /readyz"), "the sidecar is ready (the app answers)")

        def through(path):
            with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (proxy_port, path), timeout=5) as resp:
                return resp.read().decode()
        direct = urllib.request.urlopen("http://127.0.0.1:%d/response.json" % app_port, timeout=5).read().decode()
        masked = through("response.json")
        say("what the app sent:     ", json.loads(direct)["payment"]["card_number"], "|",
            json.loads(direct)["customer"]["email"])
        say("what the client gets:  ", json.loads(masked)["payment"]["card_number"], "|",
            json.loads(masked)["customer"]["email"])
        check('"4111 11** **** 1111"' in masked, "the card is masked through the sidecar")
        check('"email": "tok_' in masked, "the email is tokenized through the sidecar")
        check("4111 1111 1111 1111" not in masked, "nothing of the card passes unmasked")

        step("change the policy: show only the last four digits; it reaches the sidecar without a restart")
        env.kubectl("apply", "-f", "-", stdin=policy_text.replace("keepFirst: 6", "keepFirst: 0"))
        wait(lambda: "\"keepFirst\": 0" in json.loads(env.kubectl(
            "get", "cm", "maskmesh-policies", "-n", "shop", "-o", "json").stdout)["data"]["policies.yaml"],
             15, "the ConfigMap updated")
        env.mount_configmap(json.loads(env.kubectl("get", "cm", "maskmesh-policies", "-n", "shop", "-o",
                                                   "json").stdout))
        changed = wait(lambda: '"**** **** **** 1111"' in through("response.json"), 15,
                       "the proxy to reload")
        check(changed, "the change reached the sidecar without a restart")
        say("now the client gets:   ", json.loads(through("response.json"))["payment"]["card_number"])

        step("an invalid policy is refused by the webhook, with the reason")
        bad = policy_text.replace('regex: "EMP-[0-9]{6}"', 'regex: "EMP-[0-9"')
        r = env.kubectl("apply", "-f", "-", stdin=bad, check=False)
        check(r.returncode != 0 and "denied the request" in r.stderr, "an invalid policy is refused", r.stderr)
        say("kubectl: ..." + r.stderr[r.stderr.find('admission webhook'):].strip())
    except Exception as e:
        check(False, "the run completed", str(e))
        for f in env.files:
            f.flush()
            f.seek(0)
            tail = f.read()[-1500:]
            if tail.strip():
                print("---- %s\n%s" % (os.path.basename(f.name), tail))
    finally:
        env.close()
    return summary()


if __name__ == "__main__":
    sys.exit(main())
