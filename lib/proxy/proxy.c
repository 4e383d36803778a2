/* lib/proxy/proxy.c: the proxy's life cycle: addresses, listeners, metric families,
 * worker and admin threads, the control loop that watches the config files and reloads,
 * and the drain on stop. */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <stdio.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

void mm_proxy_config_defaults(mm_proxy_config *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = "0.0.0.0:15480";
    c->admin = "0.0.0.0:15481";
    c->upstream = "127.0.0.1:8080";
    c->policies = "/etc/maskmesh/policies/policies.yaml";
    c->labels = "/etc/maskmesh/podinfo/labels";
    c->keys = "/etc/maskmesh/keys";
    c->max_header = 16 * 1024;
    c->max_body = 64ull << 20;
    c->max_conns = 16384;
    c->header_timeout_ms = 10000;
    c->idle_timeout_ms = 60000;
    c->io_timeout_ms = 30000;
    c->connect_timeout_ms = 5000;
    c->upstream_timeout_ms = 60000;
    c->drain_timeout_ms = 20000;
    c->pool_idle_ms = 30000;
    c->splice_min = 32768; /* below it the head's own write costs what splice saves */
    c->watch_interval_ms = 1000;
    c->upstream_proto = MM_UPSTREAM_H1;
    c->h2_max_streams = 128;
    c->h2_window = 65535;
    c->h2_conn_window = 1u << 20;
    c->h2_max_frame = 16384;
}

mm_err parse_hostport(const char *s, bool passive, struct sockaddr_storage *ss, socklen_t *len,
                      mm_errbuf *eb)
{
    char host[256];
    const char *colon, *h = s;
    size_t hl;
    long port;
    struct addrinfo hints = {0}, *ai = NULL;
    int e;

    if (s[0] == '[') { /* [v6]:port */
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return mm_errf(eb, MM_EINVAL, "%s: expected [ADDR]:PORT", s);
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        if (!(colon = strrchr(s, ':')))
            return mm_errf(eb, MM_EINVAL, "%s: expected ADDR:PORT", s);
        hl = (size_t)(colon - s);
    }
    if (hl >= sizeof(host))
        return mm_errf(eb, MM_EINVAL, "%s: host too long", s);
    if (!mm_parse_long(colon + 1, 0, 65535, &port))
        return mm_errf(eb, MM_EINVAL, "%s: port must be 0-65535", s);
    memcpy(host, h, hl);
    host[hl] = '\0';
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    if ((e = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai)) != 0 || !ai)
        return mm_errf(eb, MM_EINVAL, "%s: %s", s, gai_strerror(e));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return MM_OK;
}

static char *dup_or_empty(const char *s)
{
    return mm_strdup(s ? s : "");
}

static mm_err register_metrics(mm_proxy *p, mm_errbuf *eb)
{
    proxy_metrics *m = &p->met;
    mm_err rc;
    static const char *const l_code[] = {"code", NULL};
    static const char *const l_bytes[] = {"direction", "stage", NULL};
    static const char *const l_masked[] = {"policy", "rule", "detector", "applied", NULL};
    static const char *const l_dir[] = {"direction", NULL};
    static const char *const l_result[] = {"result", NULL};
    static const char *const l_reason[] = {"reason", NULL};

    if ((rc = mm_metrics_new(&m->reg)) != MM_OK ||
        (rc = mm_metrics_counter(m->reg, "maskmesh_proxy_requests_total",
                                 "Requests answered, by status code.", l_code,
                                 &m->requests)) != MM_OK ||
        (rc = mm_metrics_counter(m->reg, "maskmesh_proxy_body_bytes_total",
                                 "Body bytes by direction, before (in) and after (out) masking.",
                                 l_bytes, &m->bytes)) != MM_OK ||
        (rc = mm_metrics_counter(m->reg, "maskmesh_proxy_masked_values_total",
                                 "Values a rule matched; applied=false in audit mode or for "
                                 "exempt callers.",
                                 l_masked, &m->masked)) != MM_OK ||
        (rc = mm_metrics_counter(m->reg, "maskmesh_proxy_parse_errors_total",
                                 "Bodies that could not be parsed as their type says.", l_dir,
                                 &m->parse_errors)) != MM_OK ||
        (rc = mm_metrics_counter(m->reg, "maskmesh_proxy_reloads_total",
                                 "Configuration loads by result.", l_result, &m->reloads)) !=
            MM_OK ||
        (rc = mm_metrics_histogram(m->reg, "maskmesh_proxy_request_duration_seconds",
                                   "Time from request head to the end of the response.", NULL,
                                   mm_metrics_latency_buckets, mm_metrics_latency_buckets_len,
                                   &m->duration)) != MM_OK ||
        (rc = mm_metrics_counter(m->reg, "maskmesh_proxy_upstream_errors_total",
                                 "Failures talking to the app, by reason.", l_reason,
                                 &m->upstream_errors)) != MM_OK ||
        (rc = mm_metrics_counter(m->reg, "maskmesh_proxy_upstream_unsolicited_bytes_total",
                                 "Bytes the app sent that no request asked for (after a "
                                 "complete response, or to an idle connection): discarded, "
                                 "and the connection closed.",
                                 NULL, &m->unsolicited)) != MM_OK ||
        (rc = mm_metrics_counter(m->reg, "maskmesh_proxy_h2_refused_total",
                                 "HTTP/2 connections cut for abuse (rapid reset, HPACK bomb, "
                                 "floods), by reason.", l_reason, &m->h2_refused)) != MM_OK ||
        (rc = mm_metrics_gauge(m->reg, "maskmesh_proxy_connections",
                               "Open client connections.", NULL, &m->connections)) != MM_OK ||
        (rc = mm_metrics_gauge(m->reg, "maskmesh_proxy_config_generation",
                               "Generation of the loaded configuration (0: none).", NULL,
                               &m->config_gen)) != MM_OK)
        return mm_errf(eb, rc, "metrics: %s", mm_strerror(rc));
    static const char *const l_ws[] = {"direction", "result", NULL};
    if ((rc = mm_metrics_counter(m->reg, "maskmesh_proxy_websocket_messages_total",
                                 "WebSocket data messages by direction and result: masked, "
                                 "passed, refused (binary), too_big, failed.",
                                 l_ws, &m->ws_messages)) != MM_OK ||
        (rc = mm_metrics_counter(m->reg, "maskmesh_proxy_spliced_bytes_total",
                                 "Response body bytes of types no rule reads, moved from the "
                                 "app to the client by splice(2) without a copy through the "
                                 "proxy (also counted in maskmesh_proxy_body_bytes_total).",
                                 NULL, &m->spliced)) != MM_OK)
        return mm_errf(eb, rc, "metrics: %s", mm_strerror(rc));
    return MM_OK;
}

mm_err mm_proxy_new(const mm_proxy_config *cfg, mm_proxy **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_proxy *p = mm_calloc(1, sizeof(*p));
    mm_errbuf leb = {{0}};
    int one = 1;
    long ncpu;

    if (!p)
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    p->admin_fd = p->ctl_fd = -1;
    pthread_mutex_init(&p->snap_lock, NULL);
    pthread_mutex_init(&p->reload_lock, NULL);
    pthread_mutex_init(&p->files_lock, NULL);
    mm_buf_init(&p->pb_files, 0);
    p->cfg = *cfg;
    if (!(p->s_listen = dup_or_empty(cfg->listen)) || !(p->s_admin = dup_or_empty(cfg->admin)) ||
        !(p->s_upstream = dup_or_empty(cfg->upstream)) ||
        !(p->s_policies = dup_or_empty(cfg->policies)) ||
        !(p->s_labels = dup_or_empty(cfg->labels)) || !(p->s_keys = dup_or_empty(cfg->keys))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    p->cfg.listen = p->s_listen;
    p->cfg.admin = p->s_admin;
    p->cfg.upstream = p->s_upstream;
    p->cfg.policies = p->s_policies;
    p->cfg.labels = p->s_labels;
    p->cfg.keys = p->s_keys;
    if (p->cfg.workers <= 0) {
        ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        p->cfg.workers = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
    }
    if ((rc = parse_hostport(p->s_upstream, false, &p->up_addr, &p->up_addrlen, eb)) != MM_OK) {
        mm_errprefix(eb, "--upstream");
        goto out;
    }
    if ((rc = parse_hostport(p->s_listen, true, &p->listen_addr, &p->listen_addrlen, eb)) !=
        MM_OK) {
        mm_errprefix(eb, "--listen");
        goto out;
    }
    if ((rc = register_metrics(p, eb)) != MM_OK)
        goto out;
    if ((p->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rc = mm_errf(eb, MM_EIO, "eventfd: %s", strerror(errno));
        goto out;
    }
    if (!(p->workers = mm_calloc((size_t)p->cfg.workers, sizeof(*p->workers)))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < p->cfg.workers; i++) {
        if ((rc = worker_new(p, i, &p->workers[i], eb)) != MM_OK)
            goto out;
        p->n_workers++;
    }
    p->port = worker_listen_port(p->workers[0]);
    if (p->s_admin[0]) {
        struct sockaddr_storage ss;
        socklen_t len;
        if ((rc = parse_hostport(p->s_admin, true, &ss, &len, eb)) != MM_OK) {
            mm_errprefix(eb, "--admin");
            goto out;
        }
        if ((p->admin_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
            setsockopt(p->admin_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            bind(p->admin_fd, (struct sockaddr *)&ss, len) != 0 || listen(p->admin_fd, 64) != 0) {
            rc = mm_errf(eb, MM_EIO, "--admin %s: %s", p->s_admin, strerror(errno));
            goto out;
        }
        len = sizeof(ss);
        if (getsockname(p->admin_fd, (struct sockaddr *)&ss, &len) != 0) {
            rc = mm_errf(eb, MM_EIO, "--admin %s: %s", p->s_admin, strerror(errno));
            goto out;
        }
        p->admin_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    if (config_load(p, &leb) != MM_OK) {
        mm_metric_add(p->met.reloads, (const char *const[]){"failure"}, 1);
        mm_log(MM_LOG_ERROR, "configuration not loaded; unready until it is valid", "error",
               leb.msg, NULL);
    } else {
        mm_metric_add(p->met.reloads, (const char *const[]){"success"}, 1);
    }
    *out = p;
    p = NULL;
out:
    mm_proxy_free(p);
    return rc;
}

int mm_proxy_port(const mm_proxy *p)
{
    return p->port;
}

int mm_proxy_admin_port(const mm_proxy *p)
{
    return p->admin_port;
}

mm_err mm_proxy_reload(mm_proxy *p, mm_errbuf *eb)
{
    mm_err rc = config_load(p, eb);

    mm_metric_add(p->met.reloads,
                  (const char *const[]){rc == MM_OK ? "success" : "failure"}, 1);
    if (rc != MM_OK)
        mm_log(MM_LOG_ERROR, "configuration refused; the previous one stays", "error", eb->msg,
               NULL);
    return rc;
}

mm_err mm_proxy_run(mm_proxy *p, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    int started = 0, e;
    struct pollfd pfd = {.fd = p->ctl_fd, .events = POLLIN};
    char port[16];

    for (; started < p->n_workers; started++)
        if ((e = pthread_create(worker_thread(p->workers[started]), NULL, worker_main,
                                p->workers[started])) != 0) {
            rc = mm_errf(eb, MM_EIO, "pthread_create: %s", strerror(e));
            mm_proxy_stop(p);
            break;
        }
    if (rc == MM_OK && p->admin_fd >= 0) {
        if ((e = pthread_create(&p->admin_thread, NULL, admin_main, p)) != 0) {
            rc = mm_errf(eb, MM_EIO, "pthread_create: %s", strerror(e));
            mm_proxy_stop(p);
        } else {
            p->admin_started = true;
        }
    }
    snprintf(port, sizeof(port), "%d", p->port);
    mm_log(MM_LOG_INFO, "serving", "listen", p->s_listen, "port", port, "upstream",
           p->s_upstream, NULL);
    while (atomic_load(&p->stop_flag) == 0) {
        int n = poll(&pfd, 1, p->cfg.watch_interval_ms);
        uint64_t v;
        if (n < 0 && errno != EINTR) {
            rc = mm_errf(eb, MM_EIO, "poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && read(p->ctl_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            mm_log(MM_LOG_WARN, "eventfd read failed", "error", strerror(errno), NULL);
        if (atomic_load(&p->stop_flag))
            break;
        if (atomic_exchange(&p->reload_flag, 0) || config_signature(p) != p->watch_sig) {
            mm_errbuf leb = {{0}};
            mm_proxy_reload(p, &leb);
        }
    }
    mm_log(MM_LOG_INFO, "draining", NULL);
    atomic_store(&p->draining, 1);
    for (int i = 0; i < started; i++)
        worker_wake(p->workers[i]);
    for (int i = 0; i < started; i++)
        pthread_join(*worker_thread(p->workers[i]), NULL);
    atomic_store(&p->stop_flag, 2);
    if (p->admin_started) {
        pthread_join(p->admin_thread, NULL);
        p->admin_started = false;
    }
    mm_log(MM_LOG_INFO, "stopped", NULL);
    return rc;
}

void mm_proxy_free(mm_proxy *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_workers; i++)
        worker_free(p->workers[i]);
    mm_free(p->workers);
    if (p->admin_fd >= 0)
        close(p->admin_fd);
    if (p->ctl_fd >= 0)
        close(p->ctl_fd);
    snap_unref(p->cur);
    mm_metrics_free(p->met.reg);
    pthread_mutex_destroy(&p->snap_lock);
    pthread_mutex_destroy(&p->reload_lock);
    pthread_mutex_destroy(&p->files_lock);
    mm_buf_free(&p->pb_files);
    mm_free(p->s_listen);
    mm_free(p->s_admin);
    mm_free(p->s_upstream);
    mm_free(p->s_policies);
    mm_free(p->s_labels);
    mm_free(p->s_keys);
    mm_free(p);
}
