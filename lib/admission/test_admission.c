/* Unit tests for lib/admission: the injection on the sample AdmissionReview of
 * tests/k8s-samples/ and on variants of its pod (every case the webhook must handle),
 * with the JSON Patch applied and the result checked, re-injection, the AdmissionReview
 * envelope, policy validation, JSON Pointer escaping, YAML, the config file, and failure
 * paths under allocation faults. Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admission/admission.h"
#include "admission/admission_int.h"

#define SAMPLES "tests/k8s-samples/"

static char *slurp(const char *path, size_t *len)
{
    char *text = NULL;
    mm_errbuf eb;
    size_t n;
    if (mm_read_file(path, 8u << 20, &text, &n, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    if (len)
        *len = n;
    return text;
}

static json_object *load_json(const char *path)
{
    char *t = slurp(path, NULL);
    json_object *o = json_tokener_parse(t);
    mm_free(t);
    assert_non_null(o);
    return o;
}

/* The pod of the sample CREATE review (a fresh copy each call). */
static json_object *sample_pod(void)
{
    json_object *rv = load_json(SAMPLES "admissionreview-pod-create.json"), *req, *pod, *copy = NULL;
    assert_true(json_object_object_get_ex(rv, "request", &req));
    assert_true(json_object_object_get_ex(req, "object", &pod));
    assert_int_equal(json_object_deep_copy(pod, &copy, NULL), 0);
    json_object_put(rv);
    return copy;
}

static json_object *at(json_object *o, const char *ptr)
{
    json_object *v = NULL;
    if (json_pointer_get(o, ptr, &v) != 0)
        return NULL;
    return v;
}

static const char *str_at(json_object *o, const char *ptr)
{
    json_object *v = at(o, ptr);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* json-c's json_pointer_set does not unescape ~1 in the last segment: use our own add. */
static void set_at(json_object *o, const char *ptr, json_object *v)
{
    json_object *patch = json_object_new_array(), *op = json_object_new_object();
    mm_errbuf eb;
    json_object_object_add(op, "op", json_object_new_string("add"));
    json_object_object_add(op, "path", json_object_new_string(ptr));
    json_object_object_add(op, "value", v);
    json_object_array_add(patch, op);
    if (mm_adm_patch_apply(&o, patch, &eb) != MM_OK)
        fail_msg("set %s: %s", ptr, eb.msg);
    json_object_put(patch);
}

static mm_adm_config cfg_default(void)
{
    mm_adm_config c;
    assert_int_equal(mm_adm_config_init(&c), MM_OK);
    return c;
}

/* Injects, applies the patch to a copy and returns it; *res keeps the result. */
static json_object *inject_apply(json_object *pod, const mm_adm_config *cfg, const mm_adm_opts *opts,
                                 mm_adm_result *res)
{
    mm_errbuf eb;
    json_object *copy = NULL;
    assert_int_equal(mm_adm_inject(pod, cfg, opts, res, &eb), MM_OK);
    assert_non_null(res->explain);
    assert_int_equal(json_object_deep_copy(pod, &copy, NULL), 0);
    if (res->patch) {
        if (mm_adm_patch_apply(&copy, res->patch, &eb) != MM_OK)
            fail_msg("patch does not apply: %s\n%s", eb.msg,
                     json_object_to_json_string_ext(res->patch, JSON_C_TO_STRING_PRETTY));
    }
    return copy;
}

static size_t count_named(json_object *arr, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        const char *v = str_at(json_object_array_get_idx(arr, i), "/name");
        if (v && strcmp(v, name) == 0)
            n++;
    }
    return n;
}

static bool has_warning(const mm_adm_result *r, const char *needle)
{
    for (size_t i = 0; i < r->n_warnings; i++)
        if (strstr(r->warnings[i], needle))
            return true;
    return false;
}

/* Injecting the injected pod again must change nothing. */
static void assert_idempotent(json_object *injected, const mm_adm_config *cfg, const mm_adm_opts *opts)
{
    mm_adm_result r2;
    mm_adm_opts o = opts ? *opts : (mm_adm_opts){0};
    mm_errbuf eb;
    assert_int_equal(mm_adm_inject(injected, cfg, &o, &r2, &eb), MM_OK);
    assert_int_equal(r2.reason, MM_ADM_ALREADY_INJECTED);
    assert_null(r2.patch);
    mm_adm_result_clear(&r2);
    o.reinject = true; /* maskctl: same config, same hash: up to date */
    assert_int_equal(mm_adm_inject(injected, cfg, &o, &r2, &eb), MM_OK);
    assert_int_equal(r2.reason, MM_ADM_ALREADY_INJECTED);
    assert_null(r2.patch);
    mm_adm_result_clear(&r2);
}

static void test_sample_pod(void **state)
{
    mm_adm_config cfg = cfg_default();
    mm_adm_result r;
    json_object *pod = sample_pod(), *out, *status = NULL, *sc;
    (void)state;

    out = inject_apply(pod, &cfg, NULL, &r);
    assert_int_equal(r.reason, MM_ADM_INJECTED);
    assert_true(r.allowed);
    assert_non_null(r.patch);
    /* classic sidecar first, the app second */
    assert_string_equal(str_at(out, "/spec/containers/0/name"), "maskmesh-proxy");
    assert_string_equal(str_at(out, "/spec/containers/1/name"), "payments");
    assert_int_equal(json_object_array_length(at(out, "/spec/containers")), 2);
    assert_string_equal(str_at(out, "/spec/containers/0/image"), cfg.image);
    assert_string_equal(str_at(out, "/spec/containers/0/args/2"), "--upstream=127.0.0.1:8080");
    /* named-port: the sidecar took the name "http"; the app's port lost it, its probe kept
     * reaching the app by number */
    assert_string_equal(str_at(out, "/spec/containers/0/ports/0/name"), "http");
    assert_int_equal(json_object_get_int(at(out, "/spec/containers/0/ports/0/containerPort")), 15480);
    assert_int_equal(json_object_get_int(at(out, "/spec/containers/0/ports/1/containerPort")), 15481);
    assert_null(at(out, "/spec/containers/1/ports/0/name"));
    assert_int_equal(json_object_get_int(at(out, "/spec/containers/1/ports/0/containerPort")), 8080);
    assert_true(json_object_is_type(at(out, "/spec/containers/1/readinessProbe/httpGet/port"), json_type_int));
    assert_int_equal(json_object_get_int(at(out, "/spec/containers/1/readinessProbe/httpGet/port")), 8080);
    /* probes, hold-until-ready, resources, security */
    assert_int_equal(json_object_get_int(at(out, "/spec/containers/0/readinessProbe/httpGet/port")), 15481);
    assert_string_equal(str_at(out, "/spec/containers/0/livenessProbe/httpGet/path"), "/healthz");
    assert_string_equal(str_at(out, "/spec/containers/0/lifecycle/postStart/exec/command/1"), "--wait-ready");
    assert_string_equal(str_at(out, "/spec/containers/0/resources/requests/cpu"), "50m");
    assert_string_equal(str_at(out, "/spec/containers/0/resources/limits/memory"), "128Mi");
    sc = at(out, "/spec/containers/0/securityContext");
    assert_true(json_object_get_boolean(at(sc, "/runAsNonRoot")));
    assert_true(json_object_get_boolean(at(sc, "/readOnlyRootFilesystem")));
    assert_false(json_object_get_boolean(at(sc, "/allowPrivilegeEscalation")));
    assert_string_equal(str_at(sc, "/capabilities/drop/0"), "ALL");
    assert_string_equal(str_at(sc, "/seccompProfile/type"), "RuntimeDefault");
    assert_null(at(sc, "/capabilities/add"));
    /* volumes appended after the existing one */
    assert_int_equal(json_object_array_length(at(out, "/spec/volumes")), 4);
    assert_string_equal(str_at(out, "/spec/volumes/0/name"), "kube-api-access-7xk2p");
    assert_string_equal(str_at(out, "/spec/volumes/1/configMap/name"), "maskmesh-policies");
    assert_true(json_object_get_boolean(at(out, "/spec/volumes/1/configMap/optional")));
    assert_string_equal(str_at(out, "/spec/volumes/2/downwardAPI/items/0/fieldRef/fieldPath"), "metadata.labels");
    assert_string_equal(str_at(out, "/spec/volumes/3/secret/secretName"), "maskmesh-keys");
    assert_string_equal(str_at(out, "/spec/containers/0/volumeMounts/1/mountPath"), "/etc/maskmesh/podinfo");
    /* the status annotation is JSON with the version and a hash */
    status = json_tokener_parse(str_at(out, "/metadata/annotations/maskmesh.io~1status"));
    assert_non_null(status);
    assert_string_equal(str_at(status, "/version"), MM_ADM_VERSION);
    assert_memory_equal(str_at(status, "/hash"), "sha256:", 7);
    assert_string_equal(str_at(out, "/metadata/annotations/kubectl.kubernetes.io~1default-container"), "payments");
    assert_non_null(strstr(r.explain, "takes over the name \"http\""));
    assert_idempotent(out, &cfg, NULL);
    json_object_put(status);
    json_object_put(out);
    json_object_put(pod);
    mm_adm_result_clear(&r);
    mm_adm_config_clear(&cfg);
}

static void test_opt_in_out(void **state)
{
    mm_adm_config cfg = cfg_default();
    mm_adm_result r;
    mm_adm_opts ns = {.namespace_opted_in = true};
    mm_errbuf eb;
    json_object *pod = sample_pod(), *labels = at(pod, "/metadata/labels");
    (void)state;

    json_object_object_add(labels, "maskmesh.io/inject", json_object_new_string("false"));
    assert_int_equal(mm_adm_inject(pod, &cfg, &ns, &r, &eb), MM_OK);
    assert_int_equal(r.reason, MM_ADM_OPTED_OUT);
    assert_true(r.allowed);
    assert_null(r.patch);
    assert_non_null(strstr(r.message, "\"false\""));
    mm_adm_result_clear(&r);

    json_object_object_del(labels, "maskmesh.io/inject");
    assert_int_equal(mm_adm_inject(pod, &cfg, NULL, &r, &eb), MM_OK);
    assert_int_equal(r.reason, MM_ADM_NOT_OPTED_IN);
    assert_null(r.patch);
    mm_adm_result_clear(&r);
    /* the namespace opted in (the webhook's namespaceSelector vouches) */
    assert_int_equal(mm_adm_inject(pod, &cfg, &ns, &r, &eb), MM_OK);
    assert_int_equal(r.reason, MM_ADM_INJECTED);
    assert_non_null(r.patch);
    mm_adm_result_clear(&r);

    /* hostNetwork: skipped with a warning */
    set_at(pod, "/spec/hostNetwork", json_object_new_boolean(1));
    assert_int_equal(mm_adm_inject(pod, &cfg, &ns, &r, &eb), MM_OK);
    assert_int_equal(r.reason, MM_ADM_HOST_NETWORK);
    assert_true(has_warning(&r, "hostNetwork"));
    assert_null(r.patch);
    mm_adm_result_clear(&r);
    json_object_put(pod);
    mm_adm_config_clear(&cfg);
}

/* A bare pod: no ports, no volumes, no annotations, no init containers. */
static void test_bare_pod(void **state)
{
    mm_adm_config cfg = cfg_default();
    mm_adm_result r;
    json_object *pod = json_tokener_parse(
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\",\"labels\":"
        "{\"maskmesh.io/inject\":\"true\"}},\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"b\"}]}}");
    json_object *out;
    (void)state;

    out = inject_apply(pod, &cfg, NULL, &r);
    assert_int_equal(r.reason, MM_ADM_INJECTED);
    assert_int_equal(json_object_array_length(at(out, "/spec/volumes")), 3);
    assert_string_equal(str_at(out, "/spec/containers/0/ports/0/name"), "maskmesh");
    assert_string_equal(str_at(out, "/spec/containers/0/args/2"), "--upstream=127.0.0.1:8080");
    assert_true(has_warning(&r, "no container declares a TCP port"));
    assert_non_null(str_at(out, "/metadata/annotations/maskmesh.io~1status"));
    assert_idempotent(out, &cfg, NULL);
    json_object_put(out);
    mm_adm_result_clear(&r);

    /* no metadata at all (a template written by hand), namespace opted in */
    json_object_object_del(pod, "metadata");
    out = inject_apply(pod, &cfg, &(mm_adm_opts){.namespace_opted_in = true}, &r);
    assert_int_equal(r.reason, MM_ADM_INJECTED);
    assert_non_null(str_at(out, "/metadata/annotations/maskmesh.io~1status"));
    json_object_put(out);
    mm_adm_result_clear(&r);

    /* no containers: denied with a reason */
    set_at(pod, "/spec/containers", json_object_new_array());
    out = inject_apply(pod, &cfg, &(mm_adm_opts){.namespace_opted_in = true}, &r);
    assert_int_equal(r.reason, MM_ADM_INVALID);
    assert_false(r.allowed);
    json_object_put(out);
    mm_adm_result_clear(&r);
    json_object_put(pod);
    mm_adm_config_clear(&cfg);
}

/* Several containers, init containers, clashing volume names, the port named by annotation
 * in the second container, resources from annotations, a Job-style restartPolicy. */
static void test_crowded_pod(void **state)
{
    mm_adm_config cfg = cfg_default();
    mm_adm_result r;
    json_object *pod = json_tokener_parse(
        "{\"metadata\":{\"labels\":{\"maskmesh.io/inject\":\"true\"},\"annotations\":{"
        "\"maskmesh.io/port\":\"web\",\"maskmesh.io/proxy-cpu\":\"200m\",\"maskmesh.io/proxy-memory\":\"96Mi\","
        "\"a/b~c\":\"x\"}},"
        "\"spec\":{\"restartPolicy\":\"Never\",\"initContainers\":[{\"name\":\"migrate\",\"image\":\"m\"}],"
        "\"containers\":[{\"name\":\"log\",\"image\":\"l\",\"ports\":[{\"containerPort\":9000,\"name\":\"metrics\"}]},"
        "{\"name\":\"app\",\"image\":\"a\",\"ports\":[{\"containerPort\":53,\"protocol\":\"UDP\",\"name\":\"dns\"},"
        "{\"containerPort\":3000,\"name\":\"web\"}],"
        "\"livenessProbe\":{\"tcpSocket\":{\"port\":\"web\"}},\"startupProbe\":{\"httpGet\":{\"port\":\"web\",\"path\":\"/\"}},"
        "\"readinessProbe\":{\"httpGet\":{\"port\":\"metrics\",\"path\":\"/\"}},"
        "\"lifecycle\":{\"preStop\":{\"httpGet\":{\"port\":\"web\",\"path\":\"/stop\"}}}}],"
        "\"volumes\":[{\"name\":\"maskmesh-policies\",\"emptyDir\":{}},{\"name\":\"maskmesh-policies-2\",\"emptyDir\":{}}]}}");
    json_object *out;
    (void)state;

    assert_non_null(pod);
    out = inject_apply(pod, &cfg, NULL, &r);
    assert_int_equal(r.reason, MM_ADM_INJECTED);
    assert_string_equal(str_at(out, "/spec/containers/0/name"), "maskmesh-proxy");
    assert_string_equal(str_at(out, "/spec/containers/0/args/2"), "--upstream=127.0.0.1:3000");
    assert_string_equal(str_at(out, "/spec/containers/0/ports/0/name"), "web");
    assert_string_equal(str_at(out, "/spec/containers/0/resources/requests/cpu"), "200m");
    assert_string_equal(str_at(out, "/spec/containers/0/resources/requests/memory"), "96Mi");
    assert_string_equal(str_at(out, "/spec/containers/0/resources/limits/memory"), "96Mi");
    /* the app is now containers[2]: its port 3000 lost the name, probes naming it use 3000,
     * the probe naming another port is untouched */
    assert_string_equal(str_at(out, "/spec/containers/2/name"), "app");
    assert_null(at(out, "/spec/containers/2/ports/1/name"));
    assert_string_equal(str_at(out, "/spec/containers/2/ports/0/name"), "dns");
    assert_int_equal(json_object_get_int(at(out, "/spec/containers/2/livenessProbe/tcpSocket/port")), 3000);
    assert_int_equal(json_object_get_int(at(out, "/spec/containers/2/startupProbe/httpGet/port")), 3000);
    assert_int_equal(json_object_get_int(at(out, "/spec/containers/2/lifecycle/preStop/httpGet/port")), 3000);
    assert_string_equal(str_at(out, "/spec/containers/2/readinessProbe/httpGet/port"), "metrics");
    assert_string_equal(str_at(out, "/spec/containers/1/ports/0/name"), "metrics");
    /* clashing volume names: ours got free ones */
    assert_int_equal(count_named(at(out, "/spec/volumes"), "maskmesh-policies"), 1);
    assert_string_equal(str_at(out, "/spec/volumes/2/name"), "maskmesh-policies-3");
    assert_string_equal(str_at(out, "/spec/containers/0/volumeMounts/0/name"), "maskmesh-policies-3");
    assert_true(has_warning(&r, "already has volumes named"));
    /* Jobs: the quitquitquit contract is spelt out */
    assert_true(has_warning(&r, "quitquitquit"));
    /* existing annotations kept, escaped keys work */
    assert_string_equal(str_at(out, "/metadata/annotations/a~1b~0c"), "x");
    assert_string_equal(str_at(out, "/metadata/annotations/kubectl.kubernetes.io~1default-container"), "log");
    assert_int_equal(json_object_array_length(at(out, "/spec/initContainers")), 1);
    assert_idempotent(out, &cfg, NULL);
    json_object_put(out);
    mm_adm_result_clear(&r);
    json_object_put(pod);
    mm_adm_config_clear(&cfg);
}

static void test_iptables_native(void **state)
{
    mm_adm_config cfg = cfg_default();
    mm_adm_result r;
    json_object *pod = sample_pod(), *out, *cmd;
    (void)state;

    set_at(pod, "/metadata/annotations", json_object_new_object());
    set_at(pod, "/metadata/annotations/maskmesh.io~1mode", json_object_new_string("iptables"));
    out = inject_apply(pod, &cfg, NULL, &r);
    assert_int_equal(r.reason, MM_ADM_INJECTED);
    /* the init container redirects 8080 to 15480 with NET_ADMIN; the app keeps its port name */
    assert_string_equal(str_at(out, "/spec/initContainers/0/name"), "maskmesh-init");
    cmd = at(out, "/spec/initContainers/0/command");
    assert_non_null(strstr(json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                           "\"--dport\",\"8080\",\"-j\",\"REDIRECT\",\"--to-ports\",\"15480\""));
    assert_string_equal(str_at(out, "/spec/initContainers/0/securityContext/capabilities/add/0"), "NET_ADMIN");
    assert_string_equal(str_at(out, "/spec/containers/1/ports/0/name"), "http");
    assert_string_equal(str_at(out, "/spec/containers/0/ports/0/name"), "maskmesh");
    /* the app port again, named for the controller's NetworkPolicy (it sees 8080, not 15480) */
    assert_string_equal(str_at(out, "/spec/containers/0/ports/2/name"), MM_ADM_REDIRECT_PORT_NAME);
    assert_int_equal(json_object_get_int(at(out, "/spec/containers/0/ports/2/containerPort")), 8080);
    assert_string_equal(str_at(out, "/spec/containers/1/readinessProbe/httpGet/port"), "http");
    assert_true(has_warning(&r, "NET_ADMIN"));
    assert_idempotent(out, &cfg, NULL);
    json_object_put(out);
    mm_adm_result_clear(&r);

    /* native sidecar, with an init container already there */
    cfg.native = true;
    set_at(pod, "/metadata/annotations/maskmesh.io~1mode", json_object_new_string("named-port"));
    set_at(pod, "/spec/initContainers", json_tokener_parse("[{\"name\":\"setup\",\"image\":\"s\"}]"));
    set_at(pod, "/spec/restartPolicy", json_object_new_string("OnFailure"));
    out = inject_apply(pod, &cfg, NULL, &r);
    assert_int_equal(r.reason, MM_ADM_INJECTED);
    assert_string_equal(str_at(out, "/spec/initContainers/0/name"), "maskmesh-proxy");
    assert_string_equal(str_at(out, "/spec/initContainers/0/restartPolicy"), "Always");
    assert_string_equal(str_at(out, "/spec/initContainers/0/startupProbe/httpGet/path"), "/startz");
    assert_null(at(out, "/spec/initContainers/0/lifecycle"));
    assert_string_equal(str_at(out, "/spec/initContainers/1/name"), "setup");
    assert_string_equal(str_at(out, "/spec/containers/0/name"), "payments");
    assert_false(has_warning(&r, "quitquitquit"));
    assert_idempotent(out, &cfg, NULL);
    json_object_put(out);
    mm_adm_result_clear(&r);

    /* native sidecar with no initContainers, iptables: init first, then the sidecar */
    json_object_object_del(at(pod, "/spec"), "initContainers");
    set_at(pod, "/metadata/annotations/maskmesh.io~1mode", json_object_new_string("iptables"));
    out = inject_apply(pod, &cfg, NULL, &r);
    assert_string_equal(str_at(out, "/spec/initContainers/0/name"), "maskmesh-init");
    assert_string_equal(str_at(out, "/spec/initContainers/1/name"), "maskmesh-proxy");
    json_object_put(out);
    mm_adm_result_clear(&r);
    json_object_put(pod);
    mm_adm_config_clear(&cfg);
}

static void test_invalid_annotations(void **state)
{
    static const char *const bad[][2] = {
        {"maskmesh.io~1mode", "sidecarless"},      {"maskmesh.io~1proxy-cpu", "lots"},
        {"maskmesh.io~1proxy-memory", "12 Mi"},    {"maskmesh.io~1port", "99999"},
        {"maskmesh.io~1port", "nosuchport"},       {"maskmesh.io~1port", "15480"},
        {"maskmesh.io~1native-sidecar", "maybe"}, {"maskmesh.io~1upstream-protocol", "h3"},
    };
    mm_adm_config cfg = cfg_default();
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(bad); i++) {
        json_object *pod = sample_pod();
        mm_adm_result r;
        mm_errbuf eb;
        char ptr[128];
        set_at(pod, "/metadata/annotations", json_object_new_object());
        snprintf(ptr, sizeof(ptr), "/metadata/annotations/%s", bad[i][0]);
        set_at(pod, ptr, json_object_new_string(bad[i][1]));
        assert_int_equal(mm_adm_inject(pod, &cfg, NULL, &r, &eb), MM_OK);
        assert_int_equal(r.reason, MM_ADM_INVALID);
        assert_false(r.allowed);
        assert_null(r.patch);
        assert_non_null(r.message);
        mm_adm_result_clear(&r);
        json_object_put(pod);
    }
    /* a sidecar somebody added by hand, without our marker: never a second one */
    {
        json_object *pod = sample_pod();
        mm_adm_result r;
        mm_errbuf eb;
        json_object_array_add(at(pod, "/spec/containers"),
                              json_tokener_parse("{\"name\":\"maskmesh-proxy\",\"image\":\"x\"}"));
        assert_int_equal(mm_adm_inject(pod, &cfg, NULL, &r, &eb), MM_OK);
        assert_int_equal(r.reason, MM_ADM_ALREADY_INJECTED);
        assert_true(has_warning(&r, "left as is"));
        mm_adm_result_clear(&r);
        json_object_put(pod);
    }
    assert_true(mm_adm_quantity_valid("1.5"));
    assert_true(mm_adm_quantity_valid("1e3"));
    assert_true(mm_adm_quantity_valid("64Mi"));
    assert_false(mm_adm_quantity_valid("Mi"));
    assert_false(mm_adm_quantity_valid("-1"));
    mm_adm_config_clear(&cfg);
}

/* What the app speaks: the annotation wins, else the fronted port's name (Istio's grpc-*,
 * http2-*), else HTTP/1.1 (no flag, so pods injected before keep their template hash). */
static void test_upstream_protocol(void **state)
{
    static const struct {
        const char *port_name, *ann, *want; /* want: the 4th arg, NULL for none */
    } cases[] = {
        {"http", NULL, NULL},          {"grpc", NULL, "--upstream-protocol=h2c"},
        {"grpc-api", NULL, "--upstream-protocol=h2c"}, {"http2-web", NULL, "--upstream-protocol=h2c"},
        {"grpcx", NULL, NULL},         {"grpc-api", "h1", NULL},
        {"http", "h2c", "--upstream-protocol=h2c"},
    };
    mm_adm_config cfg = cfg_default();
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(cases); i++) {
        json_object *pod = sample_pod(), *out;
        mm_adm_result r;
        set_at(pod, "/spec/containers/0/ports/0/name", json_object_new_string(cases[i].port_name));
        if (cases[i].ann) {
            set_at(pod, "/metadata/annotations", json_object_new_object());
            set_at(pod, "/metadata/annotations/maskmesh.io~1upstream-protocol",
                   json_object_new_string(cases[i].ann));
        }
        out = inject_apply(pod, &cfg, NULL, &r);
        assert_int_equal(r.reason, MM_ADM_INJECTED);
        const char *a3 = str_at(out, "/spec/containers/0/args/3");
        if (cases[i].want)
            assert_string_equal(a3, cases[i].want);
        else
            assert_string_equal(a3, "--policies=/etc/maskmesh/policies/policies.yaml");
        mm_adm_result_clear(&r);
        json_object_put(out);
        json_object_put(pod);
    }
    mm_adm_config_clear(&cfg);
}

/* An older injection is recognised and replaced cleanly, never doubled. */
static void test_reinject(void **state)
{
    mm_adm_config cfg = cfg_default();
    mm_adm_opts re = {.reinject = true};
    mm_adm_result r;
    json_object *pod = sample_pod(), *v1, *v2, *old = NULL, *patch;
    mm_errbuf eb;
    (void)state;

    v1 = inject_apply(pod, &cfg, NULL, &r);
    mm_adm_result_clear(&r);
    assert_int_equal(mm_adm_config_set(&cfg.image, "registry.example.com/maskmesh/proxy:0.2.0"), MM_OK);
    v2 = inject_apply(v1, &cfg, &re, &r);
    assert_int_equal(r.reason, MM_ADM_REINJECTED);
    assert_int_equal(count_named(at(v2, "/spec/containers"), "maskmesh-proxy"), 1);
    assert_int_equal(json_object_array_length(at(v2, "/spec/volumes")), 4);
    assert_string_equal(str_at(v2, "/spec/containers/0/image"), "registry.example.com/maskmesh/proxy:0.2.0");
    assert_string_equal(str_at(v2, "/spec/containers/0/ports/0/name"), "http");
    assert_null(at(v2, "/spec/containers/1/ports/0/name"));
    mm_adm_result_clear(&r);
    /* the webhook never re-injects */
    assert_int_equal(mm_adm_inject(v1, &cfg, NULL, &r, &eb), MM_OK);
    assert_int_equal(r.reason, MM_ADM_ALREADY_INJECTED);
    mm_adm_result_clear(&r);
    assert_idempotent(v2, &cfg, NULL);

    /* the pod of the sample response: an old-format status ({"version","template"}) */
    patch = load_json(SAMPLES "admissionreview-pod-create-response.patch.json");
    assert_int_equal(json_object_deep_copy(pod, &old, NULL), 0);
    assert_int_equal(mm_adm_patch_apply(&old, patch, &eb), MM_OK);
    json_object_put(v2);
    v2 = inject_apply(old, &cfg, &re, &r);
    assert_int_equal(r.reason, MM_ADM_REINJECTED);
    assert_int_equal(count_named(at(v2, "/spec/containers"), "maskmesh-proxy"), 1);
    assert_int_equal(count_named(at(v2, "/spec/volumes"), "maskmesh-policies"), 1);
    assert_int_equal(json_object_array_length(at(v2, "/spec/volumes")), 4);
    assert_idempotent(v2, &cfg, NULL);
    mm_adm_result_clear(&r);

    json_object_put(patch);
    json_object_put(old);
    json_object_put(v1);
    json_object_put(v2);
    json_object_put(pod);
    mm_adm_config_clear(&cfg);
}

static json_object *decode_patch(json_object *resp)
{
    const char *b64 = str_at(resp, "/response/patch");
    unsigned char *raw;
    json_object *p;
    int n;
    assert_non_null(b64);
    raw = calloc(1, strlen(b64) + 4);
    n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)strlen(b64));
    assert_true(n > 0);
    p = json_tokener_parse((const char *)raw);
    free(raw);
    assert_non_null(p);
    return p;
}

static void test_review_mutate(void **state)
{
    mm_adm_config cfg = cfg_default();
    mm_adm_review rv;
    mm_adm_reason reason;
    mm_errbuf eb;
    mm_buf out;
    size_t len;
    char *body = slurp(SAMPLES "admissionreview-pod-create.json", &len);
    json_object *resp, *sample = load_json(SAMPLES "admissionreview-pod-create-response.json");
    json_object *patch, *pod = sample_pod();
    (void)state;

    mm_buf_init(&out, 0);
    assert_int_equal(mm_adm_review_parse(body, len, &rv, &eb), MM_OK);
    assert_string_equal(rv.uid, "0f4b7c2e-9a1d-4e6f-b8c3-2d5e7a9f1b64");
    assert_string_equal(rv.operation, "CREATE");
    assert_false(rv.dry_run);
    assert_int_equal(mm_adm_mutate(&rv, &cfg, false, &out, &reason, &eb), MM_OK);
    assert_int_equal(reason, MM_ADM_INJECTED);
    resp = json_tokener_parse(mm_buf_cstr(&out));
    assert_non_null(resp);
    /* the envelope matches the sample response */
    assert_string_equal(str_at(resp, "/kind"), str_at(sample, "/kind"));
    assert_string_equal(str_at(resp, "/apiVersion"), str_at(sample, "/apiVersion"));
    assert_string_equal(str_at(resp, "/response/uid"), str_at(sample, "/response/uid"));
    assert_true(json_object_get_boolean(at(resp, "/response/allowed")));
    assert_string_equal(str_at(resp, "/response/patchType"), "JSONPatch");
    assert_string_equal(str_at(resp, "/response/auditAnnotations/maskmesh.io~1injected"), "maskmesh-proxy");
    patch = decode_patch(resp);
    assert_int_equal(mm_adm_patch_apply(&pod, patch, &eb), MM_OK);
    assert_string_equal(str_at(pod, "/spec/containers/0/name"), "maskmesh-proxy");
    json_object_put(patch);
    json_object_put(resp);
    mm_adm_review_clear(&rv);

    /* dryRun: the same answer */
    {
        json_object *dr = json_tokener_parse(body);
        const char *s;
        mm_buf out2;
        mm_buf_init(&out2, 0);
        set_at(dr, "/request/dryRun", json_object_new_boolean(1));
        s = json_object_to_json_string(dr);
        assert_int_equal(mm_adm_review_parse(s, strlen(s), &rv, &eb), MM_OK);
        assert_true(rv.dry_run);
        assert_int_equal(mm_adm_mutate(&rv, &cfg, false, &out2, &reason, &eb), MM_OK);
        assert_string_equal(mm_buf_cstr(&out), mm_buf_cstr(&out2));
        mm_adm_review_clear(&rv);
        /* opted out: allowed, no patch, the reason in the warnings and audit annotations */
        set_at(dr, "/request/object/metadata/labels/maskmesh.io~1inject", json_object_new_string("false"));
        s = json_object_to_json_string(dr);
        assert_int_equal(mm_adm_review_parse(s, strlen(s), &rv, &eb), MM_OK);
        mm_buf_reset(&out2);
        assert_int_equal(mm_adm_mutate(&rv, &cfg, false, &out2, &reason, &eb), MM_OK);
        assert_int_equal(reason, MM_ADM_OPTED_OUT);
        resp = json_tokener_parse(mm_buf_cstr(&out2));
        assert_null(at(resp, "/response/patch"));
        assert_non_null(strstr(str_at(resp, "/response/warnings/0"), "maskmesh.io/inject"));
        assert_string_equal(str_at(resp, "/response/auditAnnotations/maskmesh.io~1injection"), "opted-out");
        json_object_put(resp);
        mm_adm_review_clear(&rv);
        /* invalid annotation: denied, with the message */
        set_at(dr, "/request/object/metadata/labels/maskmesh.io~1inject", json_object_new_string("true"));
        set_at(dr, "/request/object/metadata/annotations", json_object_new_object());
        set_at(dr, "/request/object/metadata/annotations/maskmesh.io~1mode", json_object_new_string("x"));
        s = json_object_to_json_string(dr);
        assert_int_equal(mm_adm_review_parse(s, strlen(s), &rv, &eb), MM_OK);
        mm_buf_reset(&out2);
        assert_int_equal(mm_adm_mutate(&rv, &cfg, false, &out2, &reason, &eb), MM_OK);
        assert_int_equal(reason, MM_ADM_INVALID);
        resp = json_tokener_parse(mm_buf_cstr(&out2));
        assert_false(json_object_get_boolean(at(resp, "/response/allowed")));
        assert_int_equal(json_object_get_int(at(resp, "/response/status/code")), 403);
        assert_non_null(strstr(str_at(resp, "/response/status/message"), "maskmesh.io/mode"));
        json_object_put(resp);
        mm_adm_review_clear(&rv);
        json_object_put(dr);
        mm_buf_free(&out2);
    }
    /* UPDATE: allowed unchanged, with a warning */
    {
        char *upd = slurp(SAMPLES "admissionreview-pod-update.json", &len);
        mm_buf_reset(&out);
        assert_int_equal(mm_adm_review_parse(upd, len, &rv, &eb), MM_OK);
        assert_int_equal(mm_adm_mutate(&rv, &cfg, false, &out, &reason, &eb), MM_OK);
        assert_int_equal(reason, MM_ADM_REASON_COUNT);
        resp = json_tokener_parse(mm_buf_cstr(&out));
        assert_true(json_object_get_boolean(at(resp, "/response/allowed")));
        assert_string_equal(str_at(resp, "/response/uid"), "7a2e9c14-5b3d-4f80-9e6a-c1d2b3a4f5e6");
        assert_null(at(resp, "/response/patch"));
        json_object_put(resp);
        mm_adm_review_clear(&rv);
        mm_free(upd);
    }
    json_object_put(pod);
    json_object_put(sample);
    mm_buf_free(&out);
    mm_free(body);
    mm_adm_config_clear(&cfg);
}

static void test_review_errors(void **state)
{
    static const struct {
        const char *body, *msg;
    } cases[] = {
        {"", "not JSON"},
        {"{\"kind\":", "not JSON"},
        {"[1,2]", "expected a JSON object"},
        {"{\"kind\":\"Pod\"}", "kind: expected"},
        {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1beta1\"}", "apiVersion"},
        {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\"}", "request: missing"},
        {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{}}", "request.uid"},
        {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\"}}",
         "request.operation"},
        {"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"u\","
         "\"operation\":\"CREATE\",\"object\":7}}", "request.object"},
        {"{} {}", "after the JSON value"},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(cases); i++) {
        mm_adm_review rv;
        mm_errbuf eb;
        assert_int_not_equal(mm_adm_review_parse(cases[i].body, strlen(cases[i].body), &rv, &eb), MM_OK);
        if (!strstr(eb.msg, cases[i].msg))
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, eb.msg, cases[i].msg);
        assert_null(rv.root);
    }
    /* a CREATE without an object is an error for mutate, not a crash */
    {
        const char *b = "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":"
                        "{\"uid\":\"u\",\"operation\":\"CREATE\",\"kind\":{\"kind\":\"Pod\"}}}";
        mm_adm_review rv;
        mm_adm_config cfg = cfg_default();
        mm_adm_reason reason;
        mm_errbuf eb;
        mm_buf out;
        mm_buf_init(&out, 0);
        assert_int_equal(mm_adm_review_parse(b, strlen(b), &rv, &eb), MM_OK);
        assert_int_equal(mm_adm_mutate(&rv, &cfg, false, &out, &reason, &eb), MM_EINVAL);
        mm_adm_review_clear(&rv);
        mm_buf_free(&out);
        mm_adm_config_clear(&cfg);
    }
}

static void validate(json_object *policy, bool *allowed, json_object **resp)
{
    json_object *rv = json_tokener_parse(
        "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"v1\","
        "\"kind\":{\"group\":\"maskmesh.io\",\"version\":\"v1alpha1\",\"kind\":\"MaskingPolicy\"},"
        "\"namespace\":\"shop\",\"operation\":\"CREATE\"}}");
    mm_adm_review r;
    mm_errbuf eb;
    mm_buf out;
    const char *s;
    mm_buf_init(&out, 0);
    set_at(rv, "/request/object", json_object_get(policy));
    s = json_object_to_json_string(rv);
    assert_int_equal(mm_adm_review_parse(s, strlen(s), &r, &eb), MM_OK);
    assert_int_equal(mm_adm_validate_policy(&r, &out, allowed, &eb), MM_OK);
    *resp = json_tokener_parse(mm_buf_cstr(&out));
    assert_non_null(*resp);
    assert_string_equal(str_at(*resp, "/response/uid"), "v1");
    mm_adm_review_clear(&r);
    mm_buf_free(&out);
    json_object_put(rv);
}

static void test_validate_policy(void **state)
{
    json_object *pol = load_json(SAMPLES "maskingpolicy.json"), *resp;
    bool allowed;
    const char *msg;
    (void)state;

    validate(pol, &allowed, &resp);
    assert_true(allowed);
    assert_true(json_object_get_boolean(at(resp, "/response/allowed")));
    json_object_put(resp);

    /* a regex that does not compile */
    set_at(pol, "/spec/rules/1/patterns",
           json_tokener_parse("[{\"name\":\"emp\",\"regex\":\"EMP-[0-9{6\"}]"));
    validate(pol, &allowed, &resp);
    assert_false(allowed);
    assert_false(json_object_get_boolean(at(resp, "/response/allowed")));
    msg = str_at(resp, "/response/status/message");
    assert_non_null(msg);
    if (!strstr(msg, "spec.rules[1].patterns[0]") || !strstr(msg, "shop/payments-api"))
        fail_msg("message does not name the place: %s", msg);
    assert_int_equal(json_object_get_int(at(resp, "/response/status/code")), 422);
    json_object_put(resp);

    /* a JSONPath that cannot parse */
    json_object_object_del(at(pol, "/spec/rules/1"), "patterns");
    set_at(pol, "/spec/rules/0/fields/0", json_object_new_string("$.card..[number"));
    validate(pol, &allowed, &resp);
    assert_false(allowed);
    msg = str_at(resp, "/response/status/message");
    if (!msg || !strstr(msg, "spec.rules[0].fields[0]"))
        fail_msg("message does not name the path: %s", msg ? msg : "(none)");
    json_object_put(resp);
    json_object_put(pol);
}

static void test_pointer_and_patch(void **state)
{
    mm_buf p;
    mm_errbuf eb;
    json_object *doc = json_tokener_parse("{\"a/b\":{\"~c\":[1,2,3]},\"k\":\"v\"}"), *patch;
    (void)state;

    mm_buf_init(&p, 0);
    assert_int_equal(mm_adm_ptr_append(&p, "a/b"), MM_OK);
    assert_int_equal(mm_adm_ptr_append(&p, "~c"), MM_OK);
    assert_string_equal(mm_buf_cstr(&p), "/a~1b/~0c");
    mm_buf_free(&p);

    patch = json_tokener_parse(
        "[{\"op\":\"add\",\"path\":\"/a~1b/~0c/1\",\"value\":9},"
        "{\"op\":\"remove\",\"path\":\"/a~1b/~0c/0\"},"
        "{\"op\":\"add\",\"path\":\"/a~1b/~0c/-\",\"value\":4},"
        "{\"op\":\"replace\",\"path\":\"/k\",\"value\":{\"x\":null}},"
        "{\"op\":\"copy\",\"from\":\"/k\",\"path\":\"/k2\"},"
        "{\"op\":\"move\",\"from\":\"/k2/x\",\"path\":\"/moved\"},"
        "{\"op\":\"test\",\"path\":\"/a~1b/~0c\",\"value\":[9,2,3,4]}]");
    assert_int_equal(mm_adm_patch_apply(&doc, patch, &eb), MM_OK);
    assert_string_equal(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                        "{\"a/b\":{\"~c\":[9,2,3,4]},\"k\":{\"x\":null},\"k2\":{},\"moved\":null}");
    json_object_put(patch);

    static const char *const bad[] = {
        "[{\"op\":\"remove\",\"path\":\"/nope\"}]",
        "[{\"op\":\"replace\",\"path\":\"/nope\",\"value\":1}]",
        "[{\"op\":\"add\",\"path\":\"/a~1b/~0c/9\",\"value\":1}]",
        "[{\"op\":\"add\",\"path\":\"/a~1b/~0c/01\",\"value\":1}]",
        "[{\"op\":\"add\",\"path\":\"/x/y\",\"value\":1}]",
        "[{\"op\":\"add\",\"path\":\"/x~2\",\"value\":1}]",
        "[{\"op\":\"test\",\"path\":\"/k\",\"value\":1}]",
        "[{\"op\":\"frob\",\"path\":\"/k\"}]",
        "[{\"op\":\"add\",\"path\":\"/k\"}]",
        "[{\"op\":\"move\",\"from\":\"/a~1b\",\"path\":\"/a~1b/z\"}]",
        "{}",
    };
    for (size_t i = 0; i < MM_ARRAY_LEN(bad); i++) {
        patch = json_tokener_parse(bad[i]);
        assert_non_null(patch);
        assert_int_not_equal(mm_adm_patch_apply(&doc, patch, &eb), MM_OK);
        assert_true(eb.msg[0] != '\0');
        json_object_put(patch);
    }
    json_object_put(doc);
}

static void test_yaml(void **state)
{
    const char *text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n"
                       "    a: \"true\"\n    b: \"8080\"\n    c: ''\n    d: yes\n    e: 1.5\n"
                       "    f: null\n    g: \"multi\\nline\"\nspec:\n  containers: [{name: a, image: b}]\n"
                       "---\n# a comment only\n---\nkind: List\nitems: []\n";
    json_object *docs, *again;
    mm_errbuf eb;
    mm_buf out;
    (void)state;

    assert_int_equal(mm_adm_yaml_parse(text, strlen(text), "t.yaml", &docs, &eb), MM_OK);
    assert_int_equal(json_object_array_length(docs), 2);
    assert_string_equal(str_at(docs, "/0/metadata/annotations/a"), "true");
    assert_string_equal(str_at(docs, "/0/metadata/annotations/b"), "8080");
    assert_string_equal(str_at(docs, "/0/metadata/annotations/c"), "");
    assert_true(json_object_is_type(at(docs, "/0/metadata/annotations/d"), json_type_boolean));
    assert_true(json_object_is_type(at(docs, "/0/metadata/annotations/e"), json_type_double));
    assert_null(at(docs, "/0/metadata/annotations/f"));
    mm_buf_init(&out, 0);
    assert_int_equal(mm_adm_yaml_emit(docs, &out, &eb), MM_OK);
    assert_int_equal(mm_adm_yaml_parse(out.data, out.len, "out", &again, &eb), MM_OK);
    if (!json_object_equal(docs, again))
        fail_msg("round trip changed the documents:\n%s", mm_buf_cstr(&out));
    json_object_put(again);
    json_object_put(docs);
    mm_buf_free(&out);

    assert_int_not_equal(mm_adm_yaml_parse("a: [1, 2", 8, "bad.yaml", &docs, &eb), MM_OK);
    assert_non_null(strstr(eb.msg, "bad.yaml:"));
    assert_int_not_equal(mm_adm_yaml_parse("a: &x 1\nb: *x\n", 14, "alias.yaml", &docs, &eb), MM_OK);
    assert_non_null(strstr(eb.msg, "aliases"));
}

static void test_config_and_templates(void **state)
{
    char path[] = "/tmp/mm-adm-cfg-XXXXXX";
    int fd = mkstemp(path);
    const char *good = "image: reg/proxy:9\nmode: iptables\nnativeSidecar: true\nresources:\n"
                       "  requests: {cpu: 10m, memory: 32Mi}\n  limits: {memory: 64Mi}\n";
    mm_adm_config cfg = cfg_default();
    mm_errbuf eb;
    json_object *docs;
    (void)state;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, good, strlen(good)), (ssize_t)strlen(good));
    close(fd);
    assert_int_equal(mm_adm_config_load(&cfg, path, &eb), MM_OK);
    assert_string_equal(cfg.image, "reg/proxy:9");
    assert_int_equal(cfg.mode, MM_ADM_MODE_IPTABLES);
    assert_true(cfg.native);
    assert_string_equal(cfg.memory_limit, "64Mi");
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "imagee: x\n", 10), 10);
    close(fd);
    assert_int_not_equal(mm_adm_config_load(&cfg, path, &eb), MM_OK);
    assert_non_null(strstr(eb.msg, "imagee: unknown key"));
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "resources: {requests: {cpu: lots}}\n", 35), 35);
    close(fd);
    assert_int_not_equal(mm_adm_config_load(&cfg, path, &eb), MM_OK);
    assert_non_null(strstr(eb.msg, "resources.requests.cpu"));
    unlink(path);
    mm_adm_config_clear(&cfg);

    const char *w = "kind: Deployment\nspec: {template: {metadata: {labels: {a: b}}, spec: {containers: []}}}\n"
                    "---\nkind: CronJob\nspec: {jobTemplate: {spec: {template: {spec: {}}}}}\n"
                    "---\nkind: Service\nspec: {}\n---\nkind: Pod\nspec: {}\n";
    assert_int_equal(mm_adm_yaml_parse(w, strlen(w), "w", &docs, &eb), MM_OK);
    assert_ptr_equal(mm_adm_pod_template(json_object_array_get_idx(docs, 0)), at(docs, "/0/spec/template"));
    assert_ptr_equal(mm_adm_pod_template(json_object_array_get_idx(docs, 1)),
                     at(docs, "/1/spec/jobTemplate/spec/template"));
    assert_null(mm_adm_pod_template(json_object_array_get_idx(docs, 2)));
    assert_ptr_equal(mm_adm_pod_template(json_object_array_get_idx(docs, 3)), at(docs, "/3"));
    json_object_put(docs);
}

/* Every allocation failing in turn: an error or a result, never a crash or a leak. */
static void test_alloc_failures(void **state)
{
    mm_adm_config cfg = cfg_default();
    json_object *pod = sample_pod(), *injected;
    mm_adm_result r;
    mm_errbuf eb;
    mm_adm_opts re = {.reinject = true};
    (void)state;

    injected = inject_apply(pod, &cfg, NULL, &r);
    mm_adm_result_clear(&r);
    assert_int_equal(mm_adm_config_set(&cfg.image, "other:1"), MM_OK);
    long n;
    for (n = 0; n < 5000; n++) {
        mm_err rc1, rc2;
        mm_alloc_fail_after(n);
        rc1 = mm_adm_inject(pod, &cfg, NULL, &r, &eb);
        mm_adm_result_clear(&r);
        rc2 = mm_adm_inject(injected, &cfg, &re, &r, &eb);
        mm_adm_result_clear(&r);
        mm_alloc_fail_after(-1);
        assert_true(rc1 == MM_OK || rc1 == MM_ENOMEM);
        assert_true(rc2 == MM_OK || rc2 == MM_ENOMEM);
        if (rc1 == MM_OK && rc2 == MM_OK)
            break;
    }
    assert_true(n > 10 && n < 5000); /* failures were injected, and success was reached */
    json_object_put(injected);
    json_object_put(pod);
    mm_adm_config_clear(&cfg);
}

/* adm_json_put writes what json-c writes (the status hash is taken over this text): the whole
 * sample review, a patch, and values with escapes, doubles, big numbers, nulls, empties. */
static void assert_writes_like_json_c(json_object *v)
{
    mm_buf b;
    const char *want = json_object_to_json_string_ext(
        v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    mm_buf_init(&b, 0);
    assert_int_equal(adm_json_put(&b, v), MM_OK);
    assert_string_equal(mm_buf_cstr(&b), want);
    mm_buf_free(&b);
}

static void test_json_writer(void **state)
{
    static const char *const docs[] = {
        "{}", "[]", "null", "true", "0", "-42", "9223372036854775807", "18446744073709551615",
        "-9223372036854775808", "1.5", "1e300", "-0.0", "\"\"",
        "\"a/b \\\\ \\\" \\n\\r\\t\\b\\f \\u0001 \\u001f \\u007f \\u00e9 \\ud83d\\ude00\"",
        "{\"k/\\\"\":[1,2.25,null,{},[],{\"x\":false}],\"n\":null,\"\":\"\"}",
        "[[[[[[[[1]]]]]]]]",
    };
    mm_adm_config cfg;
    mm_adm_result r;
    mm_adm_opts opts = {0};
    mm_errbuf eb;
    json_object *v;
    (void)state;

    for (size_t i = 0; i < MM_ARRAY_LEN(docs); i++) {
        v = json_tokener_parse(docs[i]);
        assert_true(v != NULL || strcmp(docs[i], "null") == 0);
        assert_writes_like_json_c(v);
        json_object_put(v);
    }
    v = load_json(SAMPLES "admissionreview-pod-create.json");
    assert_writes_like_json_c(v);
    assert_int_equal(mm_adm_config_init(&cfg), MM_OK);
    assert_int_equal(mm_adm_inject(jget(jget(v, "request"), "object"), &cfg, &opts, &r, &eb), MM_OK);
    assert_non_null(r.patch);
    assert_writes_like_json_c(r.patch);
    mm_adm_result_clear(&r);
    mm_adm_config_clear(&cfg);
    json_object_put(v);
}

/* The patch is written as text: the tree handed to maskctl is that text parsed, json-c writes
 * the tree back to the same bytes, and the webhook's text-only result carries the same text.
 * The status hash remembers the last input per thread: pods with different templates, one
 * after the other and on a fresh thread, each keep their own hash. */
static const char *status_hash(const mm_adm_result *r, char out[32])
{
    const char *ann = NULL;
    json_object *st;
    for (size_t i = 0; i < json_object_array_length(r->patch); i++) {
        json_object *op = json_object_array_get_idx(r->patch, i);
        const char *path = str_at(op, "/path");
        if (path && strcmp(path, "/metadata/annotations/maskmesh.io~1status") == 0)
            ann = str_at(op, "/value");
        else if (path && strcmp(path, "/metadata/annotations") == 0)
            ann = str_at(op, "/value/maskmesh.io~1status");
        else if (path && strcmp(path, "/metadata") == 0)
            ann = str_at(op, "/value/annotations/maskmesh.io~1status");
    }
    assert_non_null(ann);
    st = json_tokener_parse(ann);
    assert_non_null(str_at(st, "/hash"));
    snprintf(out, 32, "%s", str_at(st, "/hash"));
    json_object_put(st);
    return out;
}

typedef struct {
    json_object *pod;
    const mm_adm_config *cfg;
    char hash[32];
} hash_job;

static void *hash_on_thread(void *arg)
{
    hash_job *j = arg;
    mm_adm_result r;
    mm_errbuf eb;
    if (mm_adm_inject(j->pod, j->cfg, &(mm_adm_opts){0}, &r, &eb) == MM_OK && r.patch)
        status_hash(&r, j->hash);
    mm_adm_result_clear(&r);
    return NULL;
}

static void test_patch_text(void **state)
{
    json_object *rv = load_json(SAMPLES "admissionreview-pod-create.json");
    json_object *pod = jget(jget(rv, "request"), "object");
    mm_adm_config cfgs[3];
    char first[3][32], again[32];
    mm_errbuf eb;
    (void)state;

    for (int c = 0; c < 3; c++) {
        cfgs[c] = cfg_default();
        cfgs[c].mode = c == 1 ? MM_ADM_MODE_IPTABLES : MM_ADM_MODE_NAMED_PORT;
        cfgs[c].native = c == 2;
    }
    for (int round = 0; round < 2; round++) {
        for (int c = 0; c < 3; c++) {
            mm_adm_result r, t;
            mm_buf b;
            mm_buf_init(&b, 0);
            assert_int_equal(mm_adm_inject(pod, &cfgs[c], &(mm_adm_opts){0}, &r, &eb), MM_OK);
            assert_non_null(r.patch);
            assert_non_null(r.patch_json);
            assert_int_equal(adm_json_put(&b, r.patch), MM_OK);
            assert_int_equal(b.len, r.patch_len);
            assert_memory_equal(b.data, r.patch_json, r.patch_len);
            assert_int_equal(mm_adm_inject(pod, &cfgs[c], &(mm_adm_opts){.patch_text_only = true},
                                           &t, &eb), MM_OK);
            assert_null(t.patch);
            assert_int_equal(t.patch_len, r.patch_len);
            assert_memory_equal(t.patch_json, r.patch_json, r.patch_len);
            if (round == 0) {
                status_hash(&r, first[c]);
                for (int k = 0; k < c; k++)
                    assert_string_not_equal(first[k], first[c]);
            } else {
                assert_string_equal(status_hash(&r, again), first[c]);
            }
            mm_adm_result_clear(&r);
            mm_adm_result_clear(&t);
            mm_buf_free(&b);
        }
    }
    for (int c = 0; c < 3; c++) {
        hash_job j = {.pod = pod, .cfg = &cfgs[c]};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, hash_on_thread, &j), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_string_equal(j.hash, first[c]);
    }
    for (int c = 0; c < 3; c++)
        mm_adm_config_clear(&cfgs[c]);
    json_object_put(rv);
}

/* adm_ltoa writes what printf's %ld writes (the patch's numbers and indices). */
static void test_ltoa(void **state)
{
    static const long vals[] = {0, 1, -1, 9, 10, -10, 99, 100, 8080, 15480, 65535, 1000000007L,
                                -123456789L, LONG_MAX, LONG_MIN, LONG_MAX - 1, LONG_MIN + 1};
    char ours[24], want[24];
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(vals); i++) {
        size_t n = adm_ltoa(ours, vals[i]);
        snprintf(want, sizeof(want), "%ld", vals[i]);
        assert_string_equal(ours, want);
        assert_int_equal(n, strlen(want));
    }
    for (long v = -100000; v <= 100000; v += 7) {
        adm_ltoa(ours, v);
        snprintf(want, sizeof(want), "%ld", v);
        assert_string_equal(ours, want);
    }
}

/* The review reader: valid texts give json-c's own tree; invalid ones are refused naming the
 * byte; skipped members are checked but left out; nesting is bounded. */
static void test_json_reader(void **state)
{
    static const char *const good[] = {
        "{}", "[]", "null", "true", "false", "0", "-0", "-42", "1.5", "-1e5", "1E+2", "0.1e1",
        "9223372036854775807", "9223372036854775808", "12345678901234567890",
        "-12345678901234567890", "\"\"", "\"a\\/b\\\"\\\\\\b\\f\\n\\r\\t\"",
        "\"\\u00e9\\ud83d\\ude00\\uD834\\uDD1E\"", "\"\\ud800\"", "\"\\udc00x\\ud800\\u0041\"",
        "{\"a\":1,\"a\":2}", " \t\r\n{ \"x\" : [ 1 , { \"y\" : null } ] } \n",
        "{\"k\\u00e9y\":\"v\",\"\":[[],{}]}", "[\"caf\xc3\xa9\"]",
    };
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "at byte 0: unexpected end of input"},
        {"[1,]", "at byte 3: unexpected character"},
        {"{\"a\":1,}", "at byte 7: expected a string key"},
        {"{'a':1}", "at byte 1: expected a string key"},
        {"01", "after the JSON value at byte 1"},
        {"1.", "at byte 2: bad number"},
        {"-", "at byte 1: bad number"},
        {"[1e400]", "at byte 1: number out of range"},
        {"\"abc", "unexpected end of input in a string"},
        {"\"a\nb\"", "at byte 2: control character"},
        {"\"\\x\"", "at byte 1: bad escape"},
        {"\"\\u12\"", "at byte 1: bad \\u escape"},
        {"[1 2]", "at byte 3: expected ',' or ']'"},
        {"{\"a\" 1}", "at byte 5: expected ':'"},
        {"nul", "at byte 0: unexpected character"},
        {"truex", "after the JSON value at byte 4"},
        {"/* c */ {}", "at byte 0: unexpected character"},
    };
    static const char *const skip[] = {"a/b", "c", NULL};
    char deep[2 * ADM_JSON_DEPTH_MAX + 8];
    mm_errbuf eb;
    json_object *v, *want;
    size_t n = 0;
    (void)state;

    for (size_t i = 0; i < MM_ARRAY_LEN(good); i++) {
        v = NULL;
        if (adm_json_parse(good[i], strlen(good[i]), NULL, &v, &eb) != MM_OK)
            fail_msg("\"%s\": %s", good[i], eb.msg);
        want = json_tokener_parse(good[i]);
        if (!json_object_equal(v, want))
            fail_msg("\"%s\" read differently from json-c", good[i]);
        json_object_put(v);
        json_object_put(want);
    }
    for (size_t i = 0; i < MM_ARRAY_LEN(bad); i++) {
        v = NULL;
        assert_int_not_equal(adm_json_parse(bad[i].text, strlen(bad[i].text), NULL, &v, &eb), MM_OK);
        assert_null(v);
        if (!strstr(eb.msg, bad[i].msg))
            fail_msg("\"%s\": \"%s\" does not say \"%s\"", bad[i].text, eb.msg, bad[i].msg);
    }
    /* skipped members are left out, but must still be valid */
    {
        const char *t = "{\"a\":{\"b\":[1,{\"x\":2}],\"bb\":3},\"c\":{},\"d\":4}";
        assert_int_equal(adm_json_parse(t, strlen(t), skip, &v, &eb), MM_OK);
    }
    want = json_tokener_parse("{\"a\":{\"bb\":3},\"d\":4}");
    assert_true(json_object_equal(v, want));
    json_object_put(v);
    json_object_put(want);
    assert_int_equal(adm_json_parse("{\"c\":[1,}", 9, skip, &v, &eb), MM_EPARSE);
    /* nesting */
    for (size_t i = 0; i < ADM_JSON_DEPTH_MAX; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < ADM_JSON_DEPTH_MAX; i++)
        deep[n++] = ']';
    assert_int_equal(adm_json_parse(deep, n, NULL, &v, &eb), MM_OK);
    json_object_put(v);
    memmove(deep + 1, deep, n);
    deep[0] = '[';
    deep[++n] = ']';
    n++;
    assert_int_equal(adm_json_parse(deep, n, NULL, &v, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "nested too deep"));

    /* /mutate-pods reads less of the review and answers the same */
    {
        size_t len;
        char *body = slurp(SAMPLES "admissionreview-pod-create.json", &len);
        mm_adm_review full, pod;
        mm_adm_config cfg;
        mm_adm_reason r1, r2;
        mm_buf o1, o2;
        mm_buf_init(&o1, 0);
        mm_buf_init(&o2, 0);
        assert_int_equal(mm_adm_config_init(&cfg), MM_OK);
        assert_int_equal(mm_adm_review_parse(body, len, &full, &eb), MM_OK);
        assert_int_equal(mm_adm_review_parse_pod(body, len, &pod, &eb), MM_OK);
        assert_non_null(jget(jget(full.object, "metadata"), "managedFields"));
        assert_null(jget(jget(pod.object, "metadata"), "managedFields"));
        assert_null(jget(jget(pod.root, "request"), "userInfo"));
        assert_int_equal(mm_adm_mutate(&full, &cfg, false, &o1, &r1, &eb), MM_OK);
        assert_int_equal(mm_adm_mutate(&pod, &cfg, false, &o2, &r2, &eb), MM_OK);
        assert_int_equal(r1, MM_ADM_INJECTED);
        assert_int_equal(r2, MM_ADM_INJECTED);
        assert_string_equal(mm_buf_cstr(&o1), mm_buf_cstr(&o2));
        mm_buf_free(&o1);
        mm_buf_free(&o2);
        mm_adm_review_clear(&full);
        mm_adm_review_clear(&pod);
        mm_adm_config_clear(&cfg);
        mm_free(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_pod),        cmocka_unit_test(test_opt_in_out),
        cmocka_unit_test(test_bare_pod),          cmocka_unit_test(test_crowded_pod),
        cmocka_unit_test(test_iptables_native),   cmocka_unit_test(test_invalid_annotations),
        cmocka_unit_test(test_upstream_protocol),
        cmocka_unit_test(test_reinject),          cmocka_unit_test(test_review_mutate),
        cmocka_unit_test(test_review_errors),     cmocka_unit_test(test_validate_policy),
        cmocka_unit_test(test_pointer_and_patch), cmocka_unit_test(test_yaml),
        cmocka_unit_test(test_config_and_templates), cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_json_writer), cmocka_unit_test(test_json_reader),
        cmocka_unit_test(test_patch_text), cmocka_unit_test(test_ltoa),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
