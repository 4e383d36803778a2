/* maskmesh-webhook: the admission webhook. Wires lib/admission's decisions to lib/httpd's
 * HTTPS server: /mutate-pods injects the sidecar, /validate-maskingpolicies refuses policies
 * lib/policy cannot honour; /healthz, /readyz, /metrics. Stateless: the one API read is the
 * list of Services in an injected pod's namespace, for their appProtocol (lib/k8s). */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission/admission.h"
#include "httpd/httpd.h"
#include "k8s/k8s.h"

#define SERVICES_TIMEOUT_MS 2000 /* the chart's webhook timeoutSeconds is 10 */

typedef struct {
    mm_adm_config cfg;
    mm_metric *admissions, *latency, *lookups;
    mm_k8s_client *k8s; /* NULL: Services are not read */
} app;

/* One review's Service lookup: the list of its namespace, for mm_adm_inject. */
typedef struct {
    app *a;
    const char *ns;
} lookup;

/* mm_adm_services_fn: GET /api/v1/namespaces/NS/services, one page, within the client's
 * request timeout and without Retry-After retries, so admission is never held past it. */
static json_object *list_services(void *ud, mm_buf *why)
{
    lookup *l = ud;
    mm_k8s_ref ref = {.version = "v1", .resource = "services", .ns = l->ns};
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    json_object *items = NULL;
    uint64_t t0 = mm_now_ns();
    char ms[24];

    if (mm_k8s_list(l->a->k8s, &ref, NULL, &res, &eb) != MM_OK) {
        snprintf(ms, sizeof(ms), "%.0f", (double)(mm_now_ns() - t0) / 1e6);
        mm_log(MM_LOG_WARN, "services not read: the upstream protocol follows the port name",
               "namespace", l->ns, "error", eb.msg, "ms", ms, NULL);
        mm_metric_add(l->a->lookups, (const char *const[]){"error"}, 1);
        if (mm_buf_puts(why, eb.msg) != MM_OK)
            mm_buf_reset(why);
        goto out;
    }
    if (res.body && json_object_object_get_ex(res.body, "items", &items) &&
        json_object_is_type(items, json_type_array)) {
        json_object_get(items);
    } else {
        items = NULL;
        mm_log(MM_LOG_WARN, "services not read: the list has no items", "namespace", l->ns, NULL);
        mm_metric_add(l->a->lookups, (const char *const[]){"error"}, 1);
        if (mm_buf_puts(why, "the ServiceList has no items array") != MM_OK)
            mm_buf_reset(why);
        goto out;
    }
    mm_metric_add(l->a->lookups, (const char *const[]){"ok"}, 1);
out:
    mm_k8s_result_clear(&res);
    return items;
}

static const char usage[] =
    "usage: maskmesh-webhook --cert FILE --key FILE [options]\n"
    "\n"
    "The maskmesh admission webhook (HTTPS, TLS 1.2+).\n"
    "  POST /mutate-pods                     inject the maskmesh-proxy sidecar into pods that\n"
    "                                        opted in with the label maskmesh.io/inject=\"true\"\n"
    "  POST /mutate-pods/namespace-opted-in  the same for a webhook entry whose namespaceSelector\n"
    "                                        selects namespaces labelled maskmesh.io/inject=true\n"
    "  POST /validate-maskingpolicies        deny MaskingPolicies lib/policy cannot honour\n"
    "  GET  /healthz /readyz /metrics\n"
    "\n"
    "options:\n"
    "  --listen ADDR:PORT     where to serve (default 0.0.0.0:8443)\n"
    "  --cert FILE            serving certificate chain (PEM); re-read when it changes\n"
    "  --key FILE             its private key (PEM); re-read when it changes\n"
    "  --sidecar-image IMAGE  the proxy image to inject (overrides --config)\n"
    "  --config FILE          sidecar defaults (YAML): image, initImage, imagePullPolicy, mode,\n"
    "                         nativeSidecar, holdApplicationUntilProxyStarts, runAsUser,\n"
    "                         resources {requests, limits}\n"
    "  --kubeconfig FILE      API access for the Service lookup (default: in-cluster when\n"
    "                         KUBERNETES_SERVICE_HOST is set, else no lookup)\n"
    "  --services-timeout MS  how long an injection may wait for the Services of the pod's\n"
    "                         namespace, whose appProtocol says whether the app speaks h2c\n"
    "                         (default 2000; 0: never read Services)\n"
    "  --threads N            server threads (default: one per CPU)\n"
    "  --log-level LEVEL      debug, info (default), warn, error\n"
    "  --help                 this text\n";

static const char *op_label(const mm_adm_review *rv)
{
    static const char *const ops[] = {"CREATE", "UPDATE", "DELETE", "CONNECT"};
    for (size_t i = 0; rv->operation && i < MM_ARRAY_LEN(ops); i++)
        if (strcmp(rv->operation, ops[i]) == 0)
            return ops[i];
    return "other";
}

static void count(app *a, const char *webhook, const char *op, const char *result,
                  const char *reason, uint64_t t0)
{
    mm_metric_add(a->admissions, (const char *const[]){webhook, op, result, reason}, 1);
    mm_metric_observe(a->latency, (const char *const[]){webhook}, (double)(mm_now_ns() - t0) / 1e9);
}

static void mutate(app *a, bool ns_opted_in, const mm_httpd_req *req, mm_httpd_resp *resp)
{
    uint64_t t0 = mm_now_ns();
    mm_adm_review rv;
    mm_adm_reason reason;
    mm_errbuf eb;
    mm_err rc;
    const char *result;
    lookup l = {.a = a};
    mm_adm_opts opts = {.namespace_opted_in = ns_opted_in};

    if ((rc = mm_adm_review_parse_pod(req->body, req->body_len, &rv, &eb)) != MM_OK) {
        mm_httpd_error(resp, rc == MM_ENOMEM ? 500 : 400, "%s", eb.msg);
        count(a, "mutate", "unknown", "error", "bad-request", t0);
        return;
    }
    if (a->k8s && rv.namespace_ && *rv.namespace_) {
        l.ns = rv.namespace_;
        opts.services = list_services;
        opts.services_ud = &l;
    }
    if ((rc = mm_adm_mutate_opts(&rv, &a->cfg, &opts, &resp->body, &reason, &eb)) != MM_OK) {
        mm_httpd_error(resp, rc == MM_ENOMEM ? 500 : 400, "%s", eb.msg);
        count(a, "mutate", op_label(&rv), "error", "bad-request", t0);
        mm_adm_review_clear(&rv);
        return;
    }
    result = reason == MM_ADM_INJECTED ? "injected" : reason == MM_ADM_INVALID ? "denied" : "skipped";
    count(a, "mutate", op_label(&rv), result, mm_adm_reason_name(reason), t0);
    mm_log(reason == MM_ADM_INVALID ? MM_LOG_WARN : MM_LOG_INFO, "admission", "uid", rv.uid,
           "namespace", rv.namespace_ ? rv.namespace_ : "", "operation", op_label(&rv), "result",
           result, "reason", mm_adm_reason_name(reason), "dryRun", rv.dry_run ? "true" : "false",
           NULL);
    mm_adm_review_clear(&rv);
}

static void h_mutate(void *ud, const mm_httpd_req *req, mm_httpd_resp *resp)
{
    mutate(ud, false, req, resp);
}

static void h_mutate_ns(void *ud, const mm_httpd_req *req, mm_httpd_resp *resp)
{
    mutate(ud, true, req, resp);
}

static void h_validate(void *ud, const mm_httpd_req *req, mm_httpd_resp *resp)
{
    app *a = ud;
    uint64_t t0 = mm_now_ns();
    mm_adm_review rv;
    mm_errbuf eb;
    mm_err rc;
    bool allowed;

    if ((rc = mm_adm_review_parse(req->body, req->body_len, &rv, &eb)) != MM_OK) {
        mm_httpd_error(resp, rc == MM_ENOMEM ? 500 : 400, "%s", eb.msg);
        count(a, "validate", "unknown", "error", "bad-request", t0);
        return;
    }
    if ((rc = mm_adm_validate_policy(&rv, &resp->body, &allowed, &eb)) != MM_OK) {
        mm_httpd_error(resp, rc == MM_ENOMEM ? 500 : 400, "%s", eb.msg);
        count(a, "validate", op_label(&rv), "error", "bad-request", t0);
    } else {
        count(a, "validate", op_label(&rv), allowed ? "allowed" : "denied",
              allowed ? "valid" : "invalid", t0);
    }
    mm_adm_review_clear(&rv);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"sidecar-image", required_argument, NULL, 'i'},
        {"config", required_argument, NULL, 'f'},
        {"threads", required_argument, NULL, 't'},
        {"kubeconfig", required_argument, NULL, 'K'},
        {"services-timeout", required_argument, NULL, 'T'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const adm_labels[] = {"webhook", "operation", "result", "reason", NULL};
    static const char *const lat_labels[] = {"webhook", NULL};
    static const char *const lookup_labels[] = {"result", NULL};
    const char *listen = "0.0.0.0:8443", *cert = NULL, *key = NULL, *image = NULL, *config = NULL;
    const char *kubeconfig = NULL;
    long threads = 0, services_ms = SERVICES_TIMEOUT_MS;
    mm_k8s_config *kcfg = NULL;
    app a = {0};
    mm_metrics *metrics = NULL;
    mm_httpd *h = NULL;
    mm_errbuf eb = {{0}};
    sigset_t sigs;
    int opt, sig, status = 1;
    char port[8];

    mm_log_set_component("maskmesh-webhook");
    if (mm_adm_config_init(&a.cfg) != MM_OK) {
        fputs("maskmesh-webhook: out of memory\n", stderr);
        return 1;
    }
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l': listen = optarg; break;
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'i': image = optarg; break;
        case 'f': config = optarg; break;
        case 't':
            if (!mm_parse_long(optarg, 1, 256, &threads)) {
                fprintf(stderr, "maskmesh-webhook: --threads: expected 1-256\n");
                goto usage_error;
            }
            break;
        case 'K': kubeconfig = optarg; break;
        case 'T':
            if (!mm_parse_long(optarg, 0, 30000, &services_ms)) {
                fprintf(stderr, "maskmesh-webhook: --services-timeout: expected 0-30000 (ms)\n");
                goto usage_error;
            }
            break;
        case 'v':
            if (!mm_log_set_level_name(optarg)) {
                fprintf(stderr, "maskmesh-webhook: --log-level: expected debug, info, warn or error\n");
                goto usage_error;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            mm_adm_config_clear(&a.cfg);
            return 0;
        default:
            goto usage_error;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "maskmesh-webhook: unexpected argument \"%s\"\n", argv[optind]);
        goto usage_error;
    }
    if (!cert || !key) {
        fprintf(stderr, "maskmesh-webhook: --cert and --key are required (the API server only "
                        "calls webhooks over HTTPS)\n");
        goto usage_error;
    }
    if (config && mm_adm_config_load(&a.cfg, config, &eb) != MM_OK) {
        fprintf(stderr, "maskmesh-webhook: --config: %s\n", eb.msg);
        goto out;
    }
    if (image && mm_adm_config_set(&a.cfg.image, image) != MM_OK)
        goto out;
    /* API access for the Service lookup: a --kubeconfig that does not load is an error; no
     * in-cluster credentials (the chart's serviceAppProtocol: false) only turns it off */
    if (services_ms > 0 && (kubeconfig || getenv("KUBERNETES_SERVICE_HOST"))) {
        mm_k8s_client_opts ko = {.connect_timeout_ms = services_ms, .request_timeout_ms = services_ms,
                                 .max_retries = -1, .user_agent = "maskmesh-webhook/" MM_ADM_VERSION};
        if ((kubeconfig ? mm_k8s_config_kubeconfig(kubeconfig, NULL, &kcfg, &eb)
                        : mm_k8s_config_incluster(NULL, &kcfg, &eb)) != MM_OK) {
            if (kubeconfig) {
                fprintf(stderr, "maskmesh-webhook: --kubeconfig: %s\n", eb.msg);
                goto out;
            }
            mm_log(MM_LOG_WARN, "no API access: Services are not read, the port name decides "
                                "the upstream protocol", "error", eb.msg, NULL);
        } else if (mm_k8s_client_new(kcfg, &ko, &a.k8s, &eb) != MM_OK) {
            fprintf(stderr, "maskmesh-webhook: API client: %s\n", eb.msg);
            goto out;
        }
    }

    /* signals are taken by sigwait below, never by a server thread */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (mm_metrics_new(&metrics) != MM_OK ||
        mm_metrics_counter(metrics, "maskmesh_webhook_admissions_total",
                           "AdmissionReviews answered, by webhook, operation, result and reason.",
                           adm_labels, &a.admissions) != MM_OK ||
        mm_metrics_histogram(metrics, "maskmesh_webhook_admission_duration_seconds",
                             "Time to decide one AdmissionReview, by webhook.", lat_labels,
                             mm_metrics_latency_buckets, mm_metrics_latency_buckets_len,
                             &a.latency) != MM_OK ||
        mm_metrics_counter(metrics, "maskmesh_webhook_service_lookups_total",
                           "Lists of an injected pod's Services for their appProtocol, by result "
                           "(error: the port name decided).", lookup_labels, &a.lookups) != MM_OK) {
        fputs("maskmesh-webhook: cannot set up metrics\n", stderr);
        goto out;
    }
    if (mm_httpd_new(&(mm_httpd_opts){.listen = listen, .cert_file = cert, .key_file = key,
                                      .body_max = MM_ADM_REVIEW_MAX, .threads = (unsigned)threads,
                                      .metrics = metrics},
                     &h, &eb) != MM_OK ||
        mm_httpd_route(h, "POST", "/mutate-pods", true, h_mutate, &a) != MM_OK ||
        mm_httpd_route(h, "POST", "/mutate-pods/namespace-opted-in", true, h_mutate_ns, &a) != MM_OK ||
        mm_httpd_route(h, "POST", "/validate-maskingpolicies", true, h_validate, &a) != MM_OK ||
        mm_httpd_start(h, &eb) != MM_OK) {
        fprintf(stderr, "maskmesh-webhook: %s\n", eb.msg[0] ? eb.msg : "out of memory");
        goto out;
    }
    mm_httpd_set_ready(h, true);
    snprintf(port, sizeof(port), "%u", (unsigned)mm_httpd_port(h));
    mm_log(MM_LOG_INFO, "serving", "listen", listen, "port", port, "image", a.cfg.image,
           "services", a.k8s ? mm_k8s_config_server(kcfg) : "not read", NULL);
    if (sigwait(&sigs, &sig) == 0)
        mm_log(MM_LOG_INFO, "stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    mm_httpd_stop(h);
    status = 0;
out:
    mm_httpd_free(h);
    mm_k8s_client_free(a.k8s);
    mm_k8s_config_free(kcfg);
    mm_metrics_free(metrics);
    mm_adm_config_clear(&a.cfg);
    return status;
usage_error:
    fputs(usage, stderr);
    mm_adm_config_clear(&a.cfg);
    return 2;
}
