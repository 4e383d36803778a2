/* maskmesh-stream: masks Kafka topics, topic to topic, exactly once (lib/kafka), with an
 * admin port for probes and Prometheus (lib/httpd, plain HTTP). Several replicas share the
 * input partitions as one consumer group. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "httpd/httpd.h"
#include "kafka/kafka.h"

static const char usage[] =
    "usage: maskmesh-stream --policy FILE [options]\n"
    "\n"
    "Masks the input topics of a MaskingPolicy's spec.streams into its output topic, in Kafka\n"
    "transactions that carry the consumed offsets (exactly once; read the output with\n"
    "isolation.level=read_committed). The policy and keys are re-read when their files change.\n"
    "\n"
    "options:\n"
    "  --policy FILE           the policy (YAML or JSON; a mounted ConfigMap)\n"
    "  --name NAME             which policy of the file (default: the only one with streams)\n"
    "  --keys DIR              the mounted maskmesh-keys Secret (hash and tokenize keys)\n"
    "  --credentials DIR       the mounted credentialsSecret: ca.crt, tls.crt, tls.key,\n"
    "                          username, password\n"
    "  --bootstrap HOST:PORT   overrides spec.streams.bootstrapServers\n"
    "  --transactional-id ID   default maskmesh-<group>-<hostname>; keep it stable across\n"
    "                          restarts of one replica so a restart fences its predecessor\n"
    "  --commit-ms N           commit a transaction after N ms (default 100)\n"
    "  --commit-records N      or after N records (default 10000)\n"
    "  --txn-timeout-ms N      transaction.timeout.ms (default 10000)\n"
    "  --admin ADDR:PORT       /healthz /readyz /metrics (default 0.0.0.0:15481; port 0 picks)\n"
    "  --log-level LEVEL       debug, info (default), warn, error\n"
    "  --help                  this text\n";

static mm_kafka *g_kafka; /* for the signal handler */

static void on_signal(int sig)
{
    (void)sig;
    if (g_kafka)
        mm_kafka_stop(g_kafka);
}

static bool number(const char *flag, const char *v, long max, unsigned *out)
{
    long n;
    if (!mm_parse_long(v, 1, max, &n)) {
        fprintf(stderr, "maskmesh-stream: %s: expected 1-%ld\n", flag, max);
        return false;
    }
    *out = (unsigned)n;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"name", required_argument, NULL, 'n'},
        {"keys", required_argument, NULL, 'k'},
        {"credentials", required_argument, NULL, 'c'},
        {"bootstrap", required_argument, NULL, 'b'},
        {"transactional-id", required_argument, NULL, 't'},
        {"commit-ms", required_argument, NULL, 'm'},
        {"commit-records", required_argument, NULL, 'r'},
        {"txn-timeout-ms", required_argument, NULL, 'x'},
        {"admin", required_argument, NULL, 'a'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    mm_kafka_opts ko = {0};
    const char *admin = "0.0.0.0:15481";
    mm_metrics *metrics = NULL;
    mm_httpd *h = NULL;
    mm_kafka *k = NULL;
    mm_errbuf eb = {{0}};
    struct sigaction sa;
    int opt, status = 1;
    char port[8];

    mm_log_set_component("maskmesh-stream");
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p': ko.policy_file = optarg; break;
        case 'n': ko.policy_name = optarg; break;
        case 'k': ko.keys_dir = optarg; break;
        case 'c': ko.credentials_dir = optarg; break;
        case 'b': ko.bootstrap = optarg; break;
        case 't': ko.transactional_id = optarg; break;
        case 'm': if (!number("--commit-ms", optarg, 600000, &ko.commit_ms)) goto usage_error; break;
        case 'r': if (!number("--commit-records", optarg, 10000000, &ko.commit_records)) goto usage_error; break;
        case 'x': if (!number("--txn-timeout-ms", optarg, 900000, &ko.txn_timeout_ms)) goto usage_error; break;
        case 'a': admin = optarg; break;
        case 'v':
            if (!mm_log_set_level_name(optarg)) {
                fprintf(stderr, "maskmesh-stream: --log-level: expected debug, info, warn or error\n");
                goto usage_error;
            }
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: goto usage_error;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "maskmesh-stream: unexpected argument \"%s\"\n", argv[optind]);
        goto usage_error;
    }
    if (!ko.policy_file) {
        fprintf(stderr, "maskmesh-stream: --policy is required\n");
        goto usage_error;
    }
    signal(SIGPIPE, SIG_IGN);
    if (mm_metrics_new(&metrics) != MM_OK) {
        fputs("maskmesh-stream: out of memory\n", stderr);
        goto out;
    }
    ko.metrics = metrics;
    if (mm_httpd_new(&(mm_httpd_opts){.listen = admin, .metrics = metrics}, &h,
                     &eb) != MM_OK ||
        mm_httpd_start(h, &eb) != MM_OK) {
        mm_log(MM_LOG_ERROR, "admin server failed", "error", eb.msg, NULL);
        goto out;
    }
    snprintf(port, sizeof(port), "%u", (unsigned)mm_httpd_port(h));
    mm_log(MM_LOG_INFO, "admin listening", "listen", admin, "port", port, NULL);
    if (mm_kafka_new(&ko, &k, &eb) != MM_OK) {
        mm_log(MM_LOG_ERROR, "cannot start", "error", eb.msg, NULL);
        goto out;
    }
    g_kafka = k;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* ready: the policy compiled and the transaction coordinator answered */
    mm_httpd_set_ready(h, true);
    if (mm_kafka_run(k, &eb) != MM_OK) {
        mm_log(MM_LOG_ERROR, "stopped on an error", "error", eb.msg, NULL);
        goto out;
    }
    mm_log(MM_LOG_INFO, "stopped", NULL);
    status = 0;
out:
    g_kafka = NULL;
    mm_kafka_free(k);
    mm_httpd_free(h);
    mm_metrics_free(metrics);
    return status;
usage_error:
    fputs(usage, stderr);
    return 2;
}
