/* maskmesh-controller: flags and wiring. The work is lib/controller's; this file connects it
 * to the API (kubeconfig or in-cluster), the admin port, leader election and signals. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller/controller.h"
#include "httpd/httpd.h"

static const char help[] =
    "usage: maskmesh-controller [options]\n"
    "\n"
    "Watches MaskingPolicy objects and keeps, per namespace, the ConfigMap maskmesh-policies the\n"
    "sidecars read and, per valid policy, the NetworkPolicy maskmesh-<policy> that lets traffic\n"
    "reach only the sidecar port; writes each policy's status (Ready, with the reason) and Events.\n"
    "\n"
    "options (environment in brackets):\n"
    "  --kubeconfig FILE        kubeconfig to use [KUBECONFIG]; default: in-cluster config\n"
    "  --namespace NS           watch only NS; repeatable [MASKMESH_NAMESPACES, comma-separated];\n"
    "                           default: every namespace\n"
    "  --admin ADDR:PORT        /healthz, /readyz, /metrics over HTTP (default 0.0.0.0:8080)\n"
    "  --leader-elect           run leader election on a Lease; only the leader reconciles\n"
    "  --lease-namespace NS     the Lease's namespace [POD_NAMESPACE] (default maskmesh)\n"
    "  --lease-name NAME        the Lease's name (default maskmesh-controller-leader)\n"
    "  --identity ID            this replica's identity [POD_NAME] (default hostname_random)\n"
    "  --resync SECONDS         reconcile every namespace this often (default 300)\n"
    "  --workers N              namespaces reconciled at once, 1 to 64 (default 4)\n"
    "  --kube-api-qps N         at most N requests a second to the API server, on average\n"
    "                           (client-go's token bucket); 0: no limit (default; the\n"
    "                           server's 429 and Retry-After are honoured either way)\n"
    "  --kube-api-burst N       up to N requests at once above that rate (default: N of qps)\n"
    "  --monitoring-from JSON   NetworkPolicyPeer list allowed to reach the sidecars' port 15481\n"
    "  --stream-image IMAGE     render policies with spec.streams into a maskmesh-stream\n"
    "                           Deployment of IMAGE (and watch Deployments); default: off\n"
    "  --stream-status SECONDS  read the stream pods' lag into status.stream this often\n"
    "                           (default 30)\n"
    "  --log-level LEVEL        debug, info (default), warn, error\n"
    "  -h, --help               this text\n"
    "\n"
    "SIGTERM and SIGINT stop it cleanly: a leader releases its Lease first.\n";

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    MM_UNUSED(sig);
    stop_flag = 1;
}

static void started(void *ud)
{
    mm_log(MM_LOG_INFO, "leading: reconciling", NULL);
    mm_ctrl_set_active(ud, true);
}

static void stopped(void *ud)
{
    mm_log(MM_LOG_WARN, "lost leadership: stopped reconciling", NULL);
    mm_ctrl_set_active(ud, false);
}

static void h_synced(void *ud, const mm_httpd_req *req, mm_httpd_resp *resp)
{
    MM_UNUSED(req);
    resp->content_type = "text/plain; charset=utf-8";
    if (mm_ctrl_synced(ud))
        mm_buf_puts(&resp->body, "synced\n");
    else {
        resp->status = 503;
        mm_buf_puts(&resp->body, "caches not synced\n");
    }
}

int main(int argc, char **argv)
{
    enum { O_KUBECONFIG = 1, O_NS, O_ADMIN, O_LEADER, O_LEASE_NS, O_LEASE_NAME, O_IDENTITY,
           O_RESYNC, O_MONITORING, O_LOGLEVEL, O_STREAM_IMAGE, O_WORKERS, O_STREAM_STATUS,
           O_QPS, O_BURST };
    static const struct option longopts[] = {
        {"kubeconfig", required_argument, NULL, O_KUBECONFIG},
        {"namespace", required_argument, NULL, O_NS},
        {"admin", required_argument, NULL, O_ADMIN},
        {"leader-elect", no_argument, NULL, O_LEADER},
        {"lease-namespace", required_argument, NULL, O_LEASE_NS},
        {"lease-name", required_argument, NULL, O_LEASE_NAME},
        {"identity", required_argument, NULL, O_IDENTITY},
        {"resync", required_argument, NULL, O_RESYNC},
        {"workers", required_argument, NULL, O_WORKERS},
        {"kube-api-qps", required_argument, NULL, O_QPS},
        {"kube-api-burst", required_argument, NULL, O_BURST},
        {"monitoring-from", required_argument, NULL, O_MONITORING},
        {"log-level", required_argument, NULL, O_LOGLEVEL},
        {"stream-image", required_argument, NULL, O_STREAM_IMAGE},
        {"stream-status", required_argument, NULL, O_STREAM_STATUS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *kubeconfig = getenv("KUBECONFIG"), *admin = "0.0.0.0:8080";
    const char *lease_ns = getenv("POD_NAMESPACE"), *lease_name = "maskmesh-controller-leader";
    const char *identity = getenv("POD_NAME"), *monitoring = NULL, *stream_image = NULL;
    const char *nsv[64];
    size_t nns = 0;
    bool leader_elect = false;
    long resync = 300, workers = 4, stream_status = 30, qps = 0, burst = 0;
    char *env_ns = NULL;
    int c, ret = 1;
    mm_errbuf eb = {{0}};
    mm_k8s_config *cfg = NULL;
    mm_k8s_client *client = NULL;
    mm_metrics *metrics = NULL;
    mm_httpd *httpd = NULL;
    mm_ctrl *ctrl = NULL;
    mm_k8s_leader *leader = NULL;

    mm_log_set_component("maskmesh-controller");
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_KUBECONFIG: kubeconfig = optarg; break;
        case O_NS:
            if (nns == MM_ARRAY_LEN(nsv) - 1) {
                fprintf(stderr, "maskmesh-controller: at most %zu --namespace\n", MM_ARRAY_LEN(nsv) - 1);
                return 2;
            }
            nsv[nns++] = optarg;
            break;
        case O_ADMIN: admin = optarg; break;
        case O_LEADER: leader_elect = true; break;
        case O_LEASE_NS: lease_ns = optarg; break;
        case O_LEASE_NAME: lease_name = optarg; break;
        case O_IDENTITY: identity = optarg; break;
        case O_RESYNC:
            if (!mm_parse_long(optarg, 1, 86400, &resync)) {
                fprintf(stderr, "maskmesh-controller: --resync takes seconds from 1 to 86400\n");
                return 2;
            }
            break;
        case O_WORKERS:
            if (!mm_parse_long(optarg, 1, MM_CTRL_WORKERS_MAX, &workers)) {
                fprintf(stderr, "maskmesh-controller: --workers takes a number from 1 to %d\n",
                        MM_CTRL_WORKERS_MAX);
                return 2;
            }
            break;
        case O_QPS:
        case O_BURST:
            if (!mm_parse_long(optarg, c == O_QPS ? 0 : 1, 1000000, c == O_QPS ? &qps : &burst)) {
                fprintf(stderr, "maskmesh-controller: --%s takes a number from %d to 1000000\n",
                        c == O_QPS ? "kube-api-qps" : "kube-api-burst", c == O_QPS ? 0 : 1);
                return 2;
            }
            break;
        case O_MONITORING: monitoring = optarg; break;
        case O_STREAM_IMAGE: stream_image = optarg; break;
        case O_STREAM_STATUS:
            if (!mm_parse_long(optarg, 1, 3600, &stream_status)) {
                fprintf(stderr, "maskmesh-controller: --stream-status takes seconds from 1 to 3600\n");
                return 2;
            }
            break;
        case O_LOGLEVEL:
            if (!mm_log_set_level_name(optarg)) {
                fprintf(stderr, "maskmesh-controller: --log-level: expected debug, info, warn or error\n");
                return 2;
            }
            break;
        case 'h': fputs(help, stdout); return 0;
        default: fputs(help, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "maskmesh-controller: unexpected argument %s\n\n%s", argv[optind], help);
        return 2;
    }
    if (!nns && getenv("MASKMESH_NAMESPACES") && *getenv("MASKMESH_NAMESPACES")) {
        env_ns = mm_strdup(getenv("MASKMESH_NAMESPACES"));
        for (char *save = NULL, *t = env_ns ? strtok_r(env_ns, ",", &save) : NULL;
             t && nns < MM_ARRAY_LEN(nsv) - 1; t = strtok_r(NULL, ",", &save))
            nsv[nns++] = t;
    }
    nsv[nns] = NULL;

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    if ((kubeconfig && *kubeconfig ? mm_k8s_config_kubeconfig(kubeconfig, NULL, &cfg, &eb)
                                   : mm_k8s_config_incluster(NULL, &cfg, &eb)) != MM_OK ||
        mm_k8s_client_new(cfg, &(mm_k8s_client_opts){.qps = (double)qps, .burst = (int)burst}, &client, &eb) != MM_OK || mm_metrics_new(&metrics) != MM_OK) {
        mm_log(MM_LOG_ERROR, "cannot reach the API server", "error", eb.msg, NULL);
        goto out;
    }
    mm_ctrl_opts co = {.client = client, .namespaces = nns ? nsv : NULL, .monitoring_from = monitoring,
                       .resync_s = resync, .identity = identity, .metrics = metrics,
                       .stream_image = stream_image, .workers = (int)workers,
                       .stream_status_s = stream_status};
    mm_httpd_opts ho = {.listen = admin, .metrics = metrics, .threads = 2};
    if (mm_ctrl_new(&co, &ctrl, &eb) != MM_OK || mm_httpd_new(&ho, &httpd, &eb) != MM_OK ||
        mm_httpd_route(httpd, "GET", "/synced", false, h_synced, ctrl) != MM_OK ||
        mm_httpd_start(httpd, &eb) != MM_OK || mm_ctrl_start(ctrl, &eb) != MM_OK) {
        mm_log(MM_LOG_ERROR, "cannot start", "error", eb.msg, NULL);
        goto out;
    }
    char port[16];
    snprintf(port, sizeof(port), "%u", (unsigned)mm_httpd_port(httpd));
    mm_log(MM_LOG_INFO, "started", "admin_port", port, "leader_elect", leader_elect ? "true" : "false", NULL);
    if (leader_elect) {
        mm_k8s_leader_opts lo = {.ns = lease_ns && *lease_ns ? lease_ns : "maskmesh", .name = lease_name,
                                 .identity = identity, .on_started_leading = started,
                                 .on_stopped_leading = stopped, .ud = ctrl};
        if (mm_k8s_leader_new(client, &lo, &leader, &eb) != MM_OK || mm_k8s_leader_start(leader, &eb) != MM_OK) {
            mm_log(MM_LOG_ERROR, "cannot start leader election", "error", eb.msg, NULL);
            goto out;
        }
    } else {
        mm_ctrl_set_active(ctrl, true);
    }
    bool ready = false;
    while (!stop_flag) {
        if (!ready && mm_ctrl_synced(ctrl)) {
            ready = true;
            mm_httpd_set_ready(httpd, true); /* /readyz: caches synced */
            mm_log(MM_LOG_INFO, "caches synced", NULL);
        }
        usleep(100 * 1000);
    }
    mm_log(MM_LOG_INFO, "stopping", NULL);
    ret = 0;
out:
    mm_k8s_leader_free(leader); /* a leader releases the Lease here */
    mm_ctrl_free(ctrl);
    mm_httpd_free(httpd);
    mm_metrics_free(metrics);
    mm_k8s_client_free(client);
    mm_k8s_config_free(cfg);
    mm_free(env_ns);
    return ret;
}
