/* maskmesh-proxy: the masking sidecar. Parses flags, wires signals to lib/proxy, runs.
 * Prints one line on stdout once serving: `ready proxy=PORT admin=PORT` (useful with
 * port 0); logs are JSON lines on stderr. */
#include "proxy/proxy.h"
#include "waitready.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static mm_proxy *g_proxy;

static void on_stop(int sig)
{
    (void)sig;
    if (g_proxy)
        mm_proxy_stop(g_proxy);
}

static void on_hup(int sig)
{
    (void)sig;
    if (g_proxy)
        mm_proxy_request_reload(g_proxy);
}

static void usage(FILE *f)
{
    fputs("usage: maskmesh-proxy [flags]\n"
          "  --listen ADDR:PORT        proxy listener (0.0.0.0:15480; port 0: any free one)\n"
          "  --admin ADDR:PORT         /healthz /readyz /startz /metrics /quitquitquit (0.0.0.0:15481)\n"
          "  --upstream HOST:PORT      the app (127.0.0.1:8080)\n"
          "  --upstream-protocol h1|h2c  what the app speaks (h1); h2c: HTTP/2 clients only\n"
          "  --h2-max-streams N        HTTP/2 concurrent streams per connection (128)\n"
          "  --h2-window BYTES         HTTP/2 stream window, request bytes in flight (65535)\n"
          "  --h2-conn-window BYTES    HTTP/2 connection window (1048576)\n"
          "  --h2-max-frame BYTES      HTTP/2 largest frame accepted (16384)\n"
          "  --policies FILE           policies.yaml (/etc/maskmesh/policies/policies.yaml)\n"
          "  --labels FILE             pod labels, downward API (/etc/maskmesh/podinfo/labels)\n"
          "  --keys DIR                key files (/etc/maskmesh/keys; absent: no keys)\n"
          "  --identity none|xfcc      trust x-forwarded-client-cert for exemptions (none)\n"
          "  --workers N               worker threads (one per CPU, at most 8)\n"
          "  --max-value BYTES         longest value the engine buffers (1048576)\n"
          "  --max-header BYTES        request head limit, else 431 (16384)\n"
          "  --max-body BYTES          request body limit, else 413 (67108864)\n"
          "  --header-timeout MS       whole request head within, else 408 (10000)\n"
          "  --idle-timeout MS         idle keep-alive client connection (60000)\n"
          "  --io-timeout MS           client body read / response write stall (30000)\n"
          "  --connect-timeout MS      upstream connect (5000)\n"
          "  --upstream-timeout MS     upstream silence, else 504 (60000)\n"
          "  --drain-timeout MS        in-flight time allowed on SIGTERM (20000)\n"
          "  --pool-idle-timeout MS    idle pooled upstream connection lifetime (30000)\n"
          "  --splice-min BYTES        unread response bodies this long move by splice(2)\n"
          "                            without a copy through the proxy (32768; 0: never)\n"
          "  --watch-interval MS       config file check period (1000)\n"
          "  --log-level debug|info|warn|error (info)\n"
          "  --wait-ready [--admin ADDR:PORT] [--timeout S]  poll /startz, exit 0 when started\n"
          "                            (the classic sidecar's postStart hook)\n"
          "Signals: SIGTERM/SIGINT drain and exit, SIGHUP reloads.\n",
          f);
}

static bool num(const char *flag, const char *v, long min, long max, long *out)
{
    if (mm_parse_long(v, min, max, out))
        return true;
    fprintf(stderr, "maskmesh-proxy: %s: expected a number in [%ld, %ld]\n", flag, min, max);
    return false;
}

int main(int argc, char **argv)
{
    enum { O_LISTEN = 256, O_ADMIN, O_UPSTREAM, O_POLICIES, O_LABELS, O_KEYS, O_IDENTITY,
           O_WORKERS, O_MAXVALUE, O_MAXHEADER, O_MAXBODY, O_HTO, O_ITO, O_IOTO, O_CTO, O_UTO,
           O_DTO, O_PIT, O_SPLICE, O_WATCH, O_LOG, O_HELP, O_UPROTO, O_H2STREAMS, O_H2WIN, O_H2CWIN,
           O_H2FRAME };
    static const struct option opts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"admin", required_argument, NULL, O_ADMIN},
        {"upstream", required_argument, NULL, O_UPSTREAM},
        {"policies", required_argument, NULL, O_POLICIES},
        {"labels", required_argument, NULL, O_LABELS},
        {"keys", required_argument, NULL, O_KEYS},
        {"identity", required_argument, NULL, O_IDENTITY},
        {"workers", required_argument, NULL, O_WORKERS},
        {"max-value", required_argument, NULL, O_MAXVALUE},
        {"max-header", required_argument, NULL, O_MAXHEADER},
        {"max-body", required_argument, NULL, O_MAXBODY},
        {"header-timeout", required_argument, NULL, O_HTO},
        {"idle-timeout", required_argument, NULL, O_ITO},
        {"io-timeout", required_argument, NULL, O_IOTO},
        {"connect-timeout", required_argument, NULL, O_CTO},
        {"upstream-timeout", required_argument, NULL, O_UTO},
        {"drain-timeout", required_argument, NULL, O_DTO},
        {"pool-idle-timeout", required_argument, NULL, O_PIT},
        {"splice-min", required_argument, NULL, O_SPLICE},
        {"watch-interval", required_argument, NULL, O_WATCH},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP},
        {"upstream-protocol", required_argument, NULL, O_UPROTO},
        {"h2-max-streams", required_argument, NULL, O_H2STREAMS},
        {"h2-window", required_argument, NULL, O_H2WIN},
        {"h2-conn-window", required_argument, NULL, O_H2CWIN},
        {"h2-max-frame", required_argument, NULL, O_H2FRAME},
        {NULL, 0, NULL, 0},
    };
    mm_proxy_config cfg;
    mm_errbuf eb = {{0}};
    struct sigaction sa;
    int o, status = 1;
    long v;
    const long day = 86400000;

    mm_proxy_config_defaults(&cfg);
    mm_log_set_component("maskmesh-proxy");
    /* the sidecar's postStart hook: a mode of its own, before any other flag */
    if (argc > 1 && strcmp(argv[1], "--wait-ready") == 0)
        return proxy_wait_ready(argc, argv);
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *flag = optind > 1 ? argv[optind - 1] : "";
        switch (o) {
        case O_LISTEN: cfg.listen = optarg; break;
        case O_ADMIN: cfg.admin = optarg; break;
        case O_UPSTREAM: cfg.upstream = optarg; break;
        case O_UPROTO:
            if (strcmp(optarg, "h1") == 0)
                cfg.upstream_proto = MM_UPSTREAM_H1;
            else if (strcmp(optarg, "h2c") == 0)
                cfg.upstream_proto = MM_UPSTREAM_H2C;
            else {
                fprintf(stderr, "maskmesh-proxy: --upstream-protocol: expected h1 or h2c\n");
                return 2;
            }
            break;
        /* RFC 9113 §6.5.2 bounds the window and frame settings */
        case O_H2STREAMS: if (!num(flag, optarg, 1, 1 << 20, &v)) return 2; cfg.h2_max_streams = (uint32_t)v; break;
        case O_H2WIN: if (!num(flag, optarg, 1024, 2147483647, &v)) return 2; cfg.h2_window = (uint32_t)v; break;
        case O_H2CWIN: if (!num(flag, optarg, 65535, 2147483647, &v)) return 2; cfg.h2_conn_window = (uint32_t)v; break;
        case O_H2FRAME: if (!num(flag, optarg, 16384, 16777215, &v)) return 2; cfg.h2_max_frame = (uint32_t)v; break;
        case O_POLICIES: cfg.policies = optarg; break;
        case O_LABELS: cfg.labels = optarg; break;
        case O_KEYS: cfg.keys = optarg; break;
        case O_IDENTITY:
            if (strcmp(optarg, "xfcc") == 0)
                cfg.identity_xfcc = true;
            else if (strcmp(optarg, "none") == 0)
                cfg.identity_xfcc = false;
            else {
                fprintf(stderr, "maskmesh-proxy: --identity: expected none or xfcc\n");
                return 2;
            }
            break;
        case O_WORKERS:
            if (!num(flag, optarg, 1, 64, &v))
                return 2;
            cfg.workers = (int)v;
            break;
        case O_MAXVALUE:
            if (!num(flag, optarg, 64, 1L << 30, &v))
                return 2;
            cfg.max_value = (size_t)v;
            break;
        case O_MAXHEADER:
            if (!num(flag, optarg, 1024, 1L << 20, &v))
                return 2;
            cfg.max_header = (size_t)v;
            break;
        case O_MAXBODY:
            if (!num(flag, optarg, 0, 1L << 40, &v))
                return 2;
            cfg.max_body = (uint64_t)v;
            break;
        case O_HTO: if (!num(flag, optarg, 1, day, &v)) return 2; cfg.header_timeout_ms = (int)v; break;
        case O_ITO: if (!num(flag, optarg, 1, day, &v)) return 2; cfg.idle_timeout_ms = (int)v; break;
        case O_IOTO: if (!num(flag, optarg, 1, day, &v)) return 2; cfg.io_timeout_ms = (int)v; break;
        case O_CTO: if (!num(flag, optarg, 1, day, &v)) return 2; cfg.connect_timeout_ms = (int)v; break;
        case O_UTO: if (!num(flag, optarg, 1, day, &v)) return 2; cfg.upstream_timeout_ms = (int)v; break;
        case O_DTO: if (!num(flag, optarg, 0, day, &v)) return 2; cfg.drain_timeout_ms = (int)v; break;
        case O_PIT: if (!num(flag, optarg, 1, day, &v)) return 2; cfg.pool_idle_ms = (int)v; break;
        case O_SPLICE: if (!num(flag, optarg, 0, 1L << 40, &v)) return 2; cfg.splice_min = (uint64_t)v; break;
        case O_WATCH: if (!num(flag, optarg, 10, day, &v)) return 2; cfg.watch_interval_ms = (int)v; break;
        case O_LOG:
            if (!mm_log_set_level_name(optarg)) {
                fprintf(stderr, "maskmesh-proxy: --log-level: expected debug, info, warn or error\n");
                return 2;
            }
            break;
        case 'h':
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "maskmesh-proxy: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    if (mm_proxy_new(&cfg, &g_proxy, &eb) != MM_OK) {
        mm_log(MM_LOG_ERROR, "cannot start", "error", eb.msg, NULL);
        return 1;
    }
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    printf("ready proxy=%d admin=%d\n", mm_proxy_port(g_proxy), mm_proxy_admin_port(g_proxy));
    fflush(stdout);
    if (mm_proxy_run(g_proxy, &eb) != MM_OK)
        mm_log(MM_LOG_ERROR, "stopped on an error", "error", eb.msg, NULL);
    else
        status = 0;
    mm_proxy *p = g_proxy;
    g_proxy = NULL;
    mm_proxy_free(p);
    return status;
}
