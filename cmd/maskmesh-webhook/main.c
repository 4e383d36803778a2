/* maskmesh-webhook: the admission webhook. Wires lib/admission's decisions to lib/httpd's
 * HTTPS server: /mutate-pods injects the sidecar, /validate-maskingpolicies refuses policies
 * lib/policy cannot honour; /healthz, /readyz, /metrics. Stateless. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "admission/admission.h"
#include "httpd/httpd.h"

typedef struct {
    mm_adm_config cfg;
    mm_metric *admissions, *latency;
} app;

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

    if ((rc = mm_adm_review_parse_pod(req->body, req->body_len, &rv, &eb)) != MM_OK) {
        mm_httpd_error(resp, rc == MM_ENOMEM ? 500 : 400, "%s", eb.msg);
        count(a, "mutate", "unknown", "error", "bad-request", t0);
        return;
    }
    if ((rc = mm_adm_mutate(&rv, &a->cfg, ns_opted_in, &resp->body, &reason, &eb)) != MM_OK) {
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
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const adm_labels[] = {"webhook", "operation", "result", "reason", NULL};
    static const char *const lat_labels[] = {"webhook", NULL};
    const char *listen = "0.0.0.0:8443", *cert = NULL, *key = NULL, *image = NULL, *config = NULL;
    long threads = 0;
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
                             &a.latency) != MM_OK) {
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
    mm_log(MM_LOG_INFO, "serving", "listen", listen, "port", port, "image", a.cfg.image, NULL);
    if (sigwait(&sigs, &sig) == 0)
        mm_log(MM_LOG_INFO, "stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    mm_httpd_stop(h);
    status = 0;
out:
    mm_httpd_free(h);
    mm_metrics_free(metrics);
    mm_adm_config_clear(&a.cfg);
    return status;
usage_error:
    fputs(usage, stderr);
    mm_adm_config_clear(&a.cfg);
    return 2;
}
