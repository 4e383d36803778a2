/* lib/proxy/conn.c: a worker's event loop and the per-connection state machine.
 * Each worker owns an epoll instance, a SO_REUSEPORT listener, its client connections and
 * a pool of idle upstream connections; nothing here is shared between workers except the
 * published config snapshot and the metrics registry (atomics). Sockets are non-blocking
 * and level-triggered; after every event conn_sync() recomputes what each socket waits
 * for, which keeps flow control (a slow reader stops the other side) in one place. */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zlib.h>

#define READ_CHUNK (16u * 1024)        /* one read from a socket */
#define HEAD_CHUNK (8u * 1024)         /* reads while a response head is awaited */
#define OUT_HIGH (32u * 1024)          /* pending output past which the source stops */
#define RESP_HEAD_MAX (64u * 1024)     /* an upstream response head */
#define POOL_MAX 64                    /* idle upstream connections kept per worker */
#define LINGER_NS (2ull * 1000000000ull)
#define SWEEP_NS (200ull * 1000000ull)
#define PRINCIPAL_MAX 512
#define FIND_CACHE 64

enum { EV_LISTEN = 1, EV_CLIENT, EV_UP, EV_WAKE };
enum { CS_HEAD, CS_EXCHANGE, CS_CLOSING };
enum { RS_NONE, RS_WAIT_HEAD, RS_BODY, RS_DONE };

typedef struct conn conn;

typedef struct upconn {
    int kind; /* EV_UP: first member, the epoll tag */
    int fd;
    worker *w;
    conn *c; /* the exchange using it; NULL while idle in the pool */
    struct upconn *next, *prev;
    bool connecting;
    bool reused;
    uint64_t idle_since;
    uint32_t events;
} upconn;

struct conn {
    int kind; /* EV_CLIENT */
    int fd;
    worker *w;
    conn *next, *prev;
    uint32_t events;
    int st;
    mm_buf in;  /* bytes from the client not yet consumed */
    mm_buf out; /* bytes for the client from out_off */
    size_t out_off;
    uint64_t last_io, head_start;
    bool close_after; /* close once the current response is written */
    bool client_eof;

    /* the exchange */
    snap *sn;
    uint64_t t_start;
    bool is_head;
    int req_minor;
    bool shut; /* our side shut down for a lingering close */
    bool mute_in; /* EPOLLIN fired while we did not want to read: now really drop it */
    http_framing rqf;
    uint64_t rq_remaining, rq_total;
    http_chunked rq_ch;
    bool req_done;
    bool rq_mask, rq_chunked_out;
    mm_stream *rq_ms;
    uint64_t rq_ms_gen;
    int rq_ms_kind;
    char rq_ms_principal[PRINCIPAL_MAX];
    mm_buf rq_stage;
    char principal[PRINCIPAL_MAX];
    bool has_principal;

    upconn *up;
    mm_buf uout; /* bytes for the upstream from uout_off */
    size_t uout_off;
    mm_buf uin;  /* response head bytes */
    mm_buf reqhead; /* the request head as sent, for one retry on a stale pooled connection */
    bool retried, resp_seen;

    int rs;
    int status;
    bool head_sent, hold;
    http_framing rsf;
    uint64_t rs_remaining;
    http_chunked rs_ch;
    bool rs_mask, out_chunked, raw_mode;
    mm_on_error onerr;
    mm_buf rhead; /* response head without framing lines, until sent */
    bool gz, gz_end, z_init;
    z_stream z;
    mm_stream *rs_ms;
    uint64_t rs_ms_gen;
    int rs_ms_kind;
    char rs_ms_principal[PRINCIPAL_MAX];
    mm_buf rs_stage;
    mm_buf raw;   /* body bytes while the head is held (onError passthrough) */
    bool raw_ok;
    uint64_t b_rq_in, b_rq_out, b_rs_in, b_rs_out;
};

typedef struct {
    uint64_t gen;
    const char *rule, *detector;
    bool applied;
    mm_series *s;
    uint64_t pending; /* counted here, added to the series at the next sweep */
} find_ent;

struct worker {
    mm_proxy *p;
    int idx;
    int ep, lfd, wfd;
    pthread_t th;
    bool listening;
    conn *conns;
    int n_conns;
    upconn *pool;
    int n_pool;
    upconn *dead_up; /* closed this batch, freed after it */
    uint64_t now, last_sweep;
    char *scratch; /* READ_CHUNK for reads */
    char *ztmp;    /* READ_CHUNK for inflate output */
    mm_series *code_s[600];
    mm_series *bytes_s[4];
    mm_series *dur_s, *conn_s;
    find_ent fcache[FIND_CACHE];
    size_t n_fcache;
    uint64_t fcache_gen;
    http_req_head rqh;  /* the head being handled (one at a time per worker) */
    http_resp_head rsh;
};

static void conn_close(conn *c);
static void conn_sync(conn *c);
static void client_process(conn *c);
static void up_process(conn *c);
static void exchange_finish(conn *c);
static void resp_abort(conn *c, const char *why);

static void set_nodelay(int fd)
{
    int one = 1;
    /* best effort: a proxy that batches small writes adds latency, but works without it */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static bool ep_set(worker *w, int fd, void *tag, uint32_t *cur, uint32_t want)
{
    struct epoll_event ev = {.events = want, .data.ptr = tag};
    int op;

    if (*cur == want)
        return true;
    op = *cur == UINT32_MAX ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(w->ep, op, fd, &ev) != 0)
        return false;
    *cur = want;
    return true;
}

/* ---- metrics helpers ------------------------------------------------------------------ */

static void count_code(worker *w, int code)
{
    char buf[8];
    const char *v[1] = {buf};

    if (code < 100 || code > 599)
        code = 599;
    if (!w->code_s[code]) {
        snprintf(buf, sizeof(buf), "%d", code);
        w->code_s[code] = mm_metric_series(w->p->met.requests, v);
    }
    mm_series_add(w->code_s[code], 1);
}

/* The per-worker finding counts go to the shared series (at most every SWEEP_NS). */
static void flush_findings(worker *w)
{
    for (size_t i = 0; i < w->n_fcache; i++)
        if (w->fcache[i].pending) {
            mm_series_add(w->fcache[i].s, (double)w->fcache[i].pending);
            w->fcache[i].pending = 0;
        }
}

static void on_finding(void *ctx, const mm_finding *f)
{
    conn *c = ctx;
    worker *w = c->w;
    uint64_t gen = c->sn ? c->sn->gen : 0;
    const char *det = f->detector ? f->detector : "field";
    size_t i;

    if (w->fcache_gen != gen) {
        flush_findings(w);
        w->n_fcache = 0;
        w->fcache_gen = gen;
    }
    for (i = 0; i < w->n_fcache; i++) {
        find_ent *e = &w->fcache[i];
        if (e->rule == f->rule && e->detector == f->detector && e->applied == f->applied) {
            e->pending++; /* no shared atomic per value on the hot path */
            return;
        }
    }
    const char *v[4] = {f->policy ? f->policy : "", f->rule ? f->rule : "", det,
                        f->applied ? "true" : "false"};
    mm_series *s = mm_metric_series(w->p->met.masked, v);
    if (w->n_fcache < FIND_CACHE)
        w->fcache[w->n_fcache++] =
            (find_ent){.gen = gen, .rule = f->rule, .detector = f->detector,
                       .applied = f->applied, .s = s};
    mm_series_add(s, 1);
}

static mm_err stage_write(void *ctx, const char *data, size_t len)
{
    return mm_buf_append(ctx, data, len);
}

/* A stream for this exchange, reusing the connection's previous one when the masker, kind
 * and caller are the same (keep-alive requests mostly are). */
static mm_err get_stream(conn *c, mm_direction dir, mm_body_kind kind, mm_stream **slot,
                         uint64_t *sgen, int *skind, char *sprin, mm_buf *stage)
{
    const char *prin = c->has_principal ? c->principal : "";
    mm_stream_opts o = {.kind = kind,
                        .direction = dir,
                        .principal = c->has_principal ? c->principal : NULL,
                        .max_value = c->w->p->cfg.max_value,
                        .on_finding = on_finding,
                        .finding_ctx = c};

    if (*slot && *sgen == c->sn->gen && *skind == (int)kind && strcmp(sprin, prin) == 0) {
        mm_stream_reset(*slot);
        return MM_OK;
    }
    mm_stream_free(*slot);
    *slot = NULL;
    if (mm_stream_new(c->sn->masker, &o, stage_write, stage, slot) != MM_OK)
        return MM_ENOMEM;
    *sgen = c->sn->gen;
    *skind = (int)kind;
    snprintf(sprin, PRINCIPAL_MAX, "%s", prin);
    return MM_OK;
}

/* ---- output helpers ------------------------------------------------------------------- */

static bool out_put(mm_buf *b, const void *p, size_t n)
{
    return mm_buf_append(b, p, n) == MM_OK;
}

/* Appends one chunk (or, unchunked, the bytes) to b. */
static bool put_body(mm_buf *b, bool chunked, const char *p, size_t n)
{
    char hdr[24];

    if (n == 0)
        return true;
    if (!chunked)
        return out_put(b, p, n);
    return out_put(b, hdr, http_chunk_header(hdr, n)) && out_put(b, p, n) &&
           out_put(b, "\r\n", 2);
}

static size_t pending(const mm_buf *b, size_t off)
{
    return b->len - off;
}

/* Writes what it can; false when the peer is gone. */
static bool flush_fd(int fd, mm_buf *b, size_t *off, uint64_t *last_io, uint64_t now)
{
    while (*off < b->len) {
        ssize_t n = send(fd, b->data + *off, b->len - *off, MSG_NOSIGNAL);
        if (n > 0) {
            *off += (size_t)n;
            *last_io = now;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        return false;
    }
    b->len = 0;
    *off = 0;
    return true;
}

/* ---- upstream connections ------------------------------------------------------------- */

/* Closes now, frees after the event batch: a later event of the batch may still name it. */
static void up_close(upconn *u)
{
    worker *w = u->w;

    if (u->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, u->fd, NULL);
        close(u->fd);
    }
    u->fd = -1;
    u->c = NULL;
    u->next = w->dead_up;
    w->dead_up = u;
}

static void free_dead_up(worker *w)
{
    while (w->dead_up) {
        upconn *u = w->dead_up;
        w->dead_up = u->next;
        mm_free(u);
    }
}

static void pool_remove(worker *w, upconn *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        w->pool = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->next = u->prev = NULL;
    w->n_pool--;
}

static void pool_put(worker *w, upconn *u)
{
    if (w->n_pool >= POOL_MAX || atomic_load(&w->p->draining)) {
        up_close(u);
        return;
    }
    u->c = NULL;
    u->reused = true;
    u->idle_since = w->now;
    /* idle: readable means the app closed it (or sent garbage); either way it goes */
    if (!ep_set(w, u->fd, u, &u->events, EPOLLIN)) {
        up_close(u);
        return;
    }
    u->prev = NULL;
    u->next = w->pool;
    if (w->pool)
        w->pool->prev = u;
    w->pool = u;
    w->n_pool++;
}

/* A pooled connection, else a new one being connected; NULL when the connect failed at
 * once (refused, no descriptors). */
static upconn *up_get(worker *w, bool fresh)
{
    mm_proxy *p = w->p;
    upconn *u;
    int fd;

    if (!fresh && (u = w->pool) != NULL) {
        pool_remove(w, u);
        return u;
    }
    fd = socket(p->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    set_nodelay(fd);
    if (connect(fd, (struct sockaddr *)&p->up_addr, p->up_addrlen) != 0 && errno != EINPROGRESS) {
        close(fd);
        return NULL;
    }
    if (!(u = mm_calloc(1, sizeof(*u)))) {
        close(fd);
        return NULL;
    }
    u->kind = EV_UP;
    u->fd = fd;
    u->w = w;
    u->connecting = true;
    u->events = UINT32_MAX;
    return u;
}

/* ---- proxy-made responses ------------------------------------------------------------- */

/* An error answer of our own, when nothing of the upstream response was sent. */
static void reply_error(conn *c, int status, const char *msg, bool close_conn)
{
    if (c->head_sent) {
        resp_abort(c, msg);
        return;
    }
    if (close_conn || !c->req_done || atomic_load(&c->w->p->draining))
        c->close_after = true;
    http_error_response(&c->out, status, msg, c->close_after);
    c->status = status;
    c->head_sent = true;
    c->rs = RS_DONE;
    if (c->up) { /* whatever the app was sending is not read to its end: not reusable */
        up_close(c->up);
        c->up = NULL;
    }
    exchange_finish(c);
}

/* ---- request side --------------------------------------------------------------------- */

/* Index of the Connection header when it names more than close/keep-alive (those extra
 * names are hop-by-hop too), else -1: found once per head, not once per field. */
static long conn_extra(const http_hdr *hdrs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (http_token_eq(hdrs[i].name, hdrs[i].name_len, "connection") &&
            !http_token_eq(hdrs[i].value, hdrs[i].value_len, "close") &&
            !http_token_eq(hdrs[i].value, hdrs[i].value_len, "keep-alive"))
            return (long)i;
    return -1;
}

static bool hop_by_hop(const http_hdr *h, const http_hdr *hdrs, long extra)
{
    static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "te",
                                      "trailer", "transfer-encoding", "upgrade",
                                      "content-length", NULL};
    char c0 = h->name_len ? (char)(h->name[0] | 0x20) : 0;

    if (c0 == 'c' || c0 == 'k' || c0 == 'p' || c0 == 't' || c0 == 'u')
        for (size_t i = 0; hop[i]; i++)
            if (http_token_eq(h->name, h->name_len, hop[i]))
                return true;
    if (extra >= 0 && h->name_len < 128) {
        char name[128];
        memcpy(name, h->name, h->name_len);
        name[h->name_len] = '\0';
        return http_list_has(hdrs[extra].value, hdrs[extra].value_len, name);
    }
    return false;
}

/* Appends a decimal number (no printf on the per-request path). */
static bool put_u64(mm_buf *b, uint64_t v)
{
    char tmp[24];
    size_t k = sizeof(tmp);

    do {
        tmp[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return mm_buf_append(b, tmp + k, sizeof(tmp) - k) == MM_OK;
}

/* Copies one header into b, through spec.headers when a masker applies. */
static bool put_header(conn *c, mm_buf *b, const http_hdr *h, mm_direction dir)
{
    char name[256];
    mm_hdr_result res = MM_HDR_KEEP;
    mm_buf nv;
    bool ok;

    if (c->sn && c->sn->masker && h->name_len < sizeof(name)) {
        memcpy(name, h->name, h->name_len);
        name[h->name_len] = '\0';
        mm_buf_init(&nv, 64 * 1024);
        if (mm_masker_header(c->sn->masker, dir, c->has_principal ? c->principal : NULL, name,
                             h->value, h->value_len, &nv, &res, on_finding, c) != MM_OK) {
            mm_buf_free(&nv);
            /* a header rule that cannot run must not let the value through */
            return out_put(b, h->name, h->name_len) && out_put(b, ": [REDACTED]\r\n", 14);
        }
        if (res == MM_HDR_REMOVE) {
            mm_buf_free(&nv);
            return true;
        }
        if (res == MM_HDR_REWRITE) {
            ok = out_put(b, h->name, h->name_len) && out_put(b, ": ", 2) &&
                 out_put(b, nv.data ? nv.data : "", nv.len) && out_put(b, "\r\n", 2);
            mm_buf_free(&nv);
            return ok;
        }
        mm_buf_free(&nv);
    }
    return out_put(b, h->name, h->name_len) && out_put(b, ": ", 2) &&
           out_put(b, h->value, h->value_len) && out_put(b, "\r\n", 2);
}

static bool build_upstream_head(conn *c, const http_req_head *rq)
{
    mm_buf *b = &c->uout;
    bool masking_resp = c->sn && c->sn->resp;
    long extra = conn_extra(rq->hdrs, rq->n_hdrs);
    bool ok = out_put(b, rq->method, rq->method_len) && out_put(b, " ", 1) &&
              out_put(b, rq->target, rq->target_len) && out_put(b, " HTTP/1.1\r\n", 11);

    for (size_t i = 0; ok && i < rq->n_hdrs; i++) {
        const http_hdr *h = &rq->hdrs[i];
        if (hop_by_hop(h, rq->hdrs, extra) || http_token_eq(h->name, h->name_len, "expect"))
            continue;
        /* masking needs whole, identity-coded bodies: no ranges, no compression */
        if (masking_resp && (http_token_eq(h->name, h->name_len, "accept-encoding") ||
                             http_token_eq(h->name, h->name_len, "range") ||
                             http_token_eq(h->name, h->name_len, "if-range")))
            continue;
        ok = put_header(c, b, h, MM_DIR_REQUEST);
    }
    if (ok && masking_resp)
        ok = out_put(b, "Accept-Encoding: identity\r\n", 27);
    if (ok && c->rqf.kind == HTTP_BODY_LENGTH && !c->rq_chunked_out)
        ok = out_put(b, "Content-Length: ", 16) && put_u64(b, c->rqf.length) &&
             out_put(b, "\r\n", 2);
    if (ok && (c->rq_chunked_out ||
               (c->rqf.kind == HTTP_BODY_CHUNKED)))
        ok = out_put(b, "Transfer-Encoding: chunked\r\n", 28);
    return ok && out_put(b, "\r\n", 2);
}

static void rq_mask_fail(conn *c, const mm_errbuf *eb)
{
    mm_metric_add(c->w->p->met.parse_errors, (const char *const[]){"request"}, 1);
    mm_log(MM_LOG_WARN, "request body could not be masked", "error", eb->msg, NULL);
    /* the app got a head and part of a chunked body: it must not see an end */
    reply_error(c, 400, "request body could not be masked", true);
}

/* Request body payload towards the app. */
static bool rq_payload(conn *c, const char *p, size_t n)
{
    mm_errbuf eb = {{0}};

    c->b_rq_in += n;
    if (!c->rq_mask) {
        c->b_rq_out += n;
        return put_body(&c->uout, c->rq_chunked_out, p, n);
    }
    c->rq_stage.len = 0;
    if (mm_stream_push(c->rq_ms, p, n, &eb) != MM_OK) {
        rq_mask_fail(c, &eb);
        return false;
    }
    c->b_rq_out += c->rq_stage.len;
    return put_body(&c->uout, true, c->rq_stage.data, c->rq_stage.len);
}

static bool rq_end(conn *c)
{
    mm_errbuf eb = {{0}};

    if (c->rq_mask) {
        c->rq_stage.len = 0;
        if (mm_stream_finish(c->rq_ms, &eb) != MM_OK) {
            rq_mask_fail(c, &eb);
            return false;
        }
        c->b_rq_out += c->rq_stage.len;
        if (!put_body(&c->uout, true, c->rq_stage.data, c->rq_stage.len))
            return false;
    }
    c->req_done = true;
    if (c->rq_chunked_out)
        return out_put(&c->uout, "0\r\n\r\n", 5);
    return true;
}

/* Feeds request body bytes from c->in; consumes what it used. */
static void rq_feed(conn *c)
{
    size_t used = 0;
    bool ok = true;

    while (ok && !c->req_done && used < c->in.len) {
        const char *p = c->in.data + used;
        size_t n = c->in.len - used;
        if (c->rqf.kind == HTTP_BODY_LENGTH) {
            if ((uint64_t)n > c->rq_remaining)
                n = (size_t)c->rq_remaining;
            used += n;
            c->rq_remaining -= n;
            ok = rq_payload(c, p, n) && (c->rq_remaining > 0 || rq_end(c));
        } else {
            const char *d = NULL;
            size_t dl = 0, u = 0;
            http_chunk_res r = http_chunked_step(&c->rq_ch, p, n, &u, &d, &dl);
            used += u;
            if (r == HTTP_CHUNK_ERROR) {
                reply_error(c, 400, "malformed chunked request body", true);
                return;
            }
            if (r == HTTP_CHUNK_DATA) {
                c->rq_total += dl;
                if (c->rq_total > c->w->p->cfg.max_body) {
                    reply_error(c, 413, "request body too large", true);
                    return;
                }
                ok = rq_payload(c, d, dl);
            } else if (r == HTTP_CHUNK_DONE) {
                ok = rq_end(c);
            }
        }
    }
    if (!ok) {
        if (c->st == CS_EXCHANGE && c->rs != RS_DONE)
            reply_error(c, 500, "out of memory", true);
        return;
    }
    if (used) {
        memmove(c->in.data, c->in.data + used, c->in.len - used);
        c->in.len -= used;
    }
}

static void begin_exchange(conn *c, const http_req_head *rq, size_t head_len)
{
    worker *w = c->w;
    mm_proxy *p = w->p;
    int rc;

    c->t_start = w->now;
    c->st = CS_EXCHANGE;
    c->req_done = false;
    c->rs = RS_NONE;
    c->head_sent = c->hold = c->raw_mode = false;
    c->status = 0;
    c->retried = c->resp_seen = false;
    c->rq_mask = c->rq_chunked_out = false;
    c->rq_total = 0;
    c->b_rq_in = c->b_rq_out = c->b_rs_in = c->b_rs_out = 0;
    c->uout.len = c->uout_off = 0;
    c->uin.len = 0;
    c->reqhead.len = 0;
    c->has_principal = false;

    c->req_minor = rq->minor;
    c->is_head = http_token_eq(rq->method, rq->method_len, "HEAD");
    c->sn = config_current(p);
    if ((rc = http_request_framing(rq, &c->rqf)) < 0) {
        c->req_done = true;
        reply_error(c, -rc, "malformed request framing", true);
        goto out;
    }
    if (!c->rqf.keep_alive)
        c->close_after = true;
    if (http_token_eq(rq->method, rq->method_len, "CONNECT")) {
        c->req_done = true;
        reply_error(c, 405, "CONNECT is not supported", true);
        goto out;
    }
    if (c->rqf.kind == HTTP_BODY_LENGTH && c->rqf.length > p->cfg.max_body) {
        c->req_done = true;
        reply_error(c, 413, "request body too large", true);
        goto out;
    }
    if (!c->sn) {
        c->req_done = c->rqf.kind == HTTP_BODY_NONE;
        reply_error(c, 503, "no valid configuration loaded", c->rqf.kind != HTTP_BODY_NONE);
        goto out;
    }
    if (p->cfg.identity_xfcc)
        for (size_t i = 0; i < rq->n_hdrs; i++)
            if (http_token_eq(rq->hdrs[i].name, rq->hdrs[i].name_len, "x-forwarded-client-cert"))
                c->has_principal = http_xfcc_uri(rq->hdrs[i].value, rq->hdrs[i].value_len,
                                            c->principal, sizeof(c->principal));
    if (c->sn->req && c->rqf.kind != HTTP_BODY_NONE) {
        char ct[256];
        size_t n = c->rqf.content_type_len < sizeof(ct) - 1 ? c->rqf.content_type_len
                                                            : sizeof(ct) - 1;
        memcpy(ct, c->rqf.content_type ? c->rqf.content_type : "", n);
        ct[n] = '\0';
        mm_body_kind kind = mm_body_kind_for(c->sn->masker, ct);
        if (kind != MM_BODY_OPAQUE) {
            if (c->rqf.content_encoding != 0) {
                c->req_done = true;
                reply_error(c, 415, "compressed request bodies cannot be masked", true);
                goto out;
            }
            if (get_stream(c, MM_DIR_REQUEST, kind, &c->rq_ms, &c->rq_ms_gen, &c->rq_ms_kind,
                           c->rq_ms_principal, &c->rq_stage) != MM_OK) {
                c->req_done = true;
                reply_error(c, 500, "out of memory", true);
                goto out;
            }
            c->rq_mask = true;
        }
    }
    c->rq_chunked_out = c->rq_mask || c->rqf.kind == HTTP_BODY_CHUNKED;
    c->rq_remaining = c->rqf.kind == HTTP_BODY_LENGTH ? c->rqf.length : 0;
    http_chunked_init(&c->rq_ch);
    if (!build_upstream_head(c, rq)) {
        c->req_done = true;
        reply_error(c, 500, "out of memory", true);
        goto out;
    }
    if (c->rqf.kind == HTTP_BODY_NONE) {
        c->req_done = true;
        /* kept for one retry when a pooled connection turns out to be closed */
        if (mm_buf_append(&c->reqhead, c->uout.data, c->uout.len) != MM_OK)
            c->reqhead.len = 0;
    }
    if (c->rqf.expect_continue && c->rqf.kind != HTTP_BODY_NONE &&
        !out_put(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25)) {
        reply_error(c, 500, "out of memory", true);
        goto out;
    }
    memmove(c->in.data, c->in.data + head_len, c->in.len - head_len);
    c->in.len -= head_len;
    head_len = 0;

    c->up = up_get(w, false);
    if (!c->up) {
        mm_metric_add(p->met.upstream_errors, (const char *const[]){"connect"}, 1);
        reply_error(c, 502, "upstream connection refused", false);
        goto out;
    }
    c->up->c = c;
    c->rs = RS_WAIT_HEAD;
    if (!c->req_done)
        rq_feed(c);
out:
    if (head_len && c->in.len >= head_len) { /* an error before the head was consumed */
        memmove(c->in.data, c->in.data + head_len, c->in.len - head_len);
        c->in.len -= head_len;
    }
}

/* ---- response side -------------------------------------------------------------------- */

static void rs_count_error(conn *c, const char *msg)
{
    mm_metric_add(c->w->p->met.parse_errors, (const char *const[]){"response"}, 1);
    mm_log(MM_LOG_WARN, "response body could not be masked", "error", msg, "status",
           c->status == 200 ? "200" : "other", NULL);
}

/* Cuts a response midway: a reset, not a FIN, so the client cannot take the truncated
 * body for a whole one and the kernel drops what it still buffered for a stalled reader. */
static void resp_abort(conn *c, const char *why)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    mm_log(MM_LOG_WARN, "response aborted", "reason", why, NULL);
    count_code(c->w, c->status ? c->status : 502);
    if (c->fd >= 0 && setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
        mm_log(MM_LOG_DEBUG, "SO_LINGER failed", "error", strerror(errno), NULL);
    conn_close(c);
}

/* Sends the held response head with its framing lines. `length` is the whole body when
 * known (the body ended while the head was held), else -1 for streamed framing. */
static bool send_head(conn *c, long long length)
{
    bool ok = out_put(&c->out, c->rhead.data, c->rhead.len);

    if (ok && c->rsf.kind == HTTP_BODY_NONE) {
        /* no body: HEAD keeps the app's length unless masking would change it */
    } else if (ok && length >= 0) {
        c->out_chunked = false;
        ok = out_put(&c->out, "Content-Length: ", 16) && put_u64(&c->out, (uint64_t)length) &&
             out_put(&c->out, "\r\n", 2);
    } else if (ok) {
        if (c->rsf.kind == HTTP_BODY_LENGTH && !c->rs_mask && !c->gz)
            ok = out_put(&c->out, "Content-Length: ", 16) && put_u64(&c->out, c->rsf.length) &&
                 out_put(&c->out, "\r\n", 2);
        else if (c->out_chunked)
            ok = out_put(&c->out, "Transfer-Encoding: chunked\r\n", 28);
    }
    if (ok && (c->close_after || atomic_load(&c->w->p->draining)))
        ok = out_put(&c->out, "Connection: close\r\n", 19);
    ok = ok && out_put(&c->out, "\r\n", 2);
    c->head_sent = true;
    c->hold = false;
    c->rhead.len = 0;
    return ok;
}

static bool emit(conn *c, const char *p, size_t n)
{
    /* keep the pending bytes at the front: the buffer then stays near OUT_HIGH */
    if (c->out_off > 0 && c->out_off >= c->out.len / 2) {
        memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    c->b_rs_out += n;
    return put_body(&c->out, c->out_chunked, p, n);
}

/* onError for a body the engine (or gzip) refused. Returns false when the exchange ended. */
static bool rs_mask_error(conn *c, const char *msg, const char *chunk, size_t n)
{
    rs_count_error(c, msg);
    c->rs_stage.len = 0; /* what the engine made of the failing push is dropped */
    if (c->onerr == MM_ONERR_PASSTHROUGH) {
        c->raw_mode = true;
        if (c->hold) {
            if (!c->raw_ok) {
                reply_error(c, 502, "response body could not be masked", false);
                return false;
            }
            if (!send_head(c, -1) || !emit(c, c->raw.data, c->raw.len)) {
                resp_abort(c, "out of memory");
                return false;
            }
            return true;
        }
        if (!emit(c, chunk, n)) {
            resp_abort(c, "out of memory");
            return false;
        }
        return true;
    }
    if (c->head_sent) { /* masked bytes left already; the rest must not: cut the stream */
        resp_abort(c, "response body could not be masked");
        return false;
    }
    if (c->onerr == MM_ONERR_REDACT_ALL) {
        static const char red[] = "\"[REDACTED]\"\n";
        c->rsf.keep_alive = false; /* the rest of the app's body is not read */
        c->close_after = c->close_after || !c->req_done;
        c->rs = RS_DONE;
        if (!send_head(c, (long long)sizeof(red) - 1) || !out_put(&c->out, red, sizeof(red) - 1)) {
            resp_abort(c, "out of memory");
            return false;
        }
        if (c->up) {
            up_close(c->up);
            c->up = NULL;
        }
        exchange_finish(c);
        return false;
    }
    reply_error(c, 502, "response body could not be masked", false);
    return false;
}

/* Masks or passes decoded payload. False when the exchange ended. */
static bool rs_payload(conn *c, const char *p, size_t n)
{
    mm_errbuf eb = {{0}};

    if (!c->rs_mask || c->raw_mode) {
        if (c->hold && !send_head(c, -1)) {
            resp_abort(c, "out of memory");
            return false;
        }
        if (!emit(c, p, n)) {
            resp_abort(c, "out of memory");
            return false;
        }
        return true;
    }
    if (c->hold && c->raw_ok && c->onerr == MM_ONERR_PASSTHROUGH) {
        if (c->raw.len + n > 2 * (c->w->p->cfg.max_value ? c->w->p->cfg.max_value
                                                         : MM_MASK_MAX_VALUE))
            c->raw_ok = false;
        else if (!out_put(&c->raw, p, n))
            c->raw_ok = false;
    }
    if (mm_stream_push(c->rs_ms, p, n, &eb) != MM_OK)
        return rs_mask_error(c, eb.msg, p, n);
    return true;
}

/* Moves staged masked output out (releasing the head once there is output). */
static bool rs_flush_stage(conn *c)
{
    if (c->rs_stage.len == 0)
        return true;
    if (c->hold && !send_head(c, -1)) {
        resp_abort(c, "out of memory");
        return false;
    }
    bool ok = emit(c, c->rs_stage.data, c->rs_stage.len);
    c->rs_stage.len = 0;
    if (!ok)
        resp_abort(c, "out of memory");
    return ok;
}

static bool rs_decoded(conn *c, const char *p, size_t n)
{
    c->b_rs_in += n;
    if (!c->gz)
        return rs_payload(c, p, n);
    c->z.next_in = (Bytef *)(uintptr_t)p;
    c->z.avail_in = (uInt)n;
    while (!c->gz_end && (c->z.avail_in > 0)) {
        c->z.next_out = (Bytef *)c->w->ztmp;
        c->z.avail_out = READ_CHUNK;
        int r = inflate(&c->z, Z_NO_FLUSH);
        size_t got = READ_CHUNK - c->z.avail_out;
        if (r == Z_STREAM_END)
            c->gz_end = true;
        else if (r != Z_OK && !(r == Z_BUF_ERROR && got == 0))
            return rs_mask_error(c, "gzip body does not decode", "", 0);
        if (got && !rs_payload(c, c->w->ztmp, got))
            return false;
        if (r == Z_BUF_ERROR)
            break;
    }
    return true;
}

static void rs_end(conn *c)
{
    mm_errbuf eb = {{0}};

    if (c->gz && !c->gz_end && !c->raw_mode) {
        if (!rs_mask_error(c, "gzip body ends early", "", 0))
            return;
    }
    if (c->rs_mask && !c->raw_mode) {
        if (mm_stream_finish(c->rs_ms, &eb) != MM_OK) {
            if (!rs_mask_error(c, eb.msg, "", 0))
                return;
        } else if (c->hold) {
            /* the whole body is known: a plain, corrected Content-Length */
            if (!send_head(c, (long long)c->rs_stage.len)) {
                resp_abort(c, "out of memory");
                return;
            }
        }
        if (!rs_flush_stage(c))
            return;
    }
    if (c->hold && !send_head(c, c->rs_mask ? 0 : -1)) {
        resp_abort(c, "out of memory");
        return;
    }
    if (c->out_chunked && !out_put(&c->out, "0\r\n\r\n", 5)) {
        resp_abort(c, "out of memory");
        return;
    }
    c->rs = RS_DONE;
    exchange_finish(c);
}

/* Response body bytes from the app (still framed). Returns false when the exchange ended. */
static bool rs_feed(conn *c, const char *p, size_t n)
{
    while (n > 0 && c->rs == RS_BODY) {
        if (c->rsf.kind == HTTP_BODY_LENGTH) {
            size_t k = (uint64_t)n > c->rs_remaining ? (size_t)c->rs_remaining : n;
            c->rs_remaining -= k;
            if (!rs_decoded(c, p, k))
                return false;
            p += k;
            n -= k;
            if (c->rs_remaining == 0) {
                if (n > 0)
                    c->rsf.keep_alive = false; /* bytes past the body: do not reuse */
                rs_end(c);
                return false;
            }
        } else if (c->rsf.kind == HTTP_BODY_CHUNKED) {
            const char *d = NULL;
            size_t dl = 0, u = 0;
            http_chunk_res r = http_chunked_step(&c->rs_ch, p, n, &u, &d, &dl);
            p += u;
            n -= u;
            if (r == HTTP_CHUNK_ERROR) {
                mm_metric_add(c->w->p->met.upstream_errors, (const char *const[]){"framing"}, 1);
                c->rsf.keep_alive = false;
                reply_error(c, 502, "malformed chunked response from upstream", false);
                return false;
            }
            if (r == HTTP_CHUNK_DATA && !rs_decoded(c, d, dl))
                return false;
            if (r == HTTP_CHUNK_DONE) {
                if (n > 0)
                    c->rsf.keep_alive = false;
                rs_end(c);
                return false;
            }
        } else { /* HTTP_BODY_CLOSE */
            if (!rs_decoded(c, p, n))
                return false;
            n = 0;
        }
    }
    /* one chunk per read; a body that ended within this read went out whole (rs_end) */
    return c->rs == RS_BODY && rs_flush_stage(c);
}

/* The app's response head arrived. */
static void rs_head(conn *c, const http_resp_head *h)
{
    mm_proxy *p = c->w->p;
    bool http10_client = false;
    mm_body_kind kind = MM_BODY_OPAQUE;
    char ct[256];

    c->status = h->status;
    if (http_response_framing(h, c->is_head, &c->rsf) < 0) {
        mm_metric_add(p->met.upstream_errors, (const char *const[]){"framing"}, 1);
        reply_error(c, 502, "malformed response from upstream", false);
        return;
    }
    http10_client = c->req_minor == 0;
    c->rs_remaining = c->rsf.length;
    http_chunked_init(&c->rs_ch);
    c->gz = c->gz_end = false;
    c->rs_mask = false;
    c->raw.len = 0;
    c->raw_ok = true;
    c->onerr = MM_ONERR_BLOCK;

    if (c->sn->resp) {
        size_t n = c->rsf.content_type_len < sizeof(ct) - 1 ? c->rsf.content_type_len
                                                           : sizeof(ct) - 1;
        memcpy(ct, c->rsf.content_type ? c->rsf.content_type : "", n);
        ct[n] = '\0';
        kind = mm_body_kind_for(c->sn->masker, ct);
        c->onerr = mm_masker_on_error(c->sn->masker, MM_DIR_RESPONSE);
    }
    if (kind != MM_BODY_OPAQUE && c->rsf.kind != HTTP_BODY_NONE) {
        if (c->rsf.content_encoding == 3) {
            rs_count_error(c, "a content coding that cannot be decoded");
            if (c->onerr != MM_ONERR_PASSTHROUGH) {
                c->rsf.keep_alive = false;
                reply_error(c, 502, "response body could not be masked", false);
                return;
            }
        } else {
            if (c->rsf.content_encoding) {
                if (!c->z_init) {
                    memset(&c->z, 0, sizeof(c->z));
                    if (inflateInit2(&c->z, 15 + 32) != Z_OK) {
                        reply_error(c, 500, "out of memory", false);
                        return;
                    }
                    c->z_init = true;
                } else if (inflateReset(&c->z) != Z_OK) {
                    reply_error(c, 500, "gzip state", false);
                    return;
                }
                c->gz = true;
            }
            if (get_stream(c, MM_DIR_RESPONSE, kind, &c->rs_ms, &c->rs_ms_gen, &c->rs_ms_kind,
                           c->rs_ms_principal, &c->rs_stage) != MM_OK) {
                reply_error(c, 500, "out of memory", false);
                return;
            }
            c->rs_mask = true;
        }
    }

    /* the head, without its framing lines */
    c->rhead.len = 0;
    long extra = conn_extra(h->hdrs, h->n_hdrs);
    bool ok = out_put(&c->rhead, "HTTP/1.1 ", 9) && put_u64(&c->rhead, (uint64_t)h->status) &&
              out_put(&c->rhead, " ", 1) && out_put(&c->rhead, h->reason, h->reason_len) &&
              out_put(&c->rhead, "\r\n", 2);
    for (size_t i = 0; ok && i < h->n_hdrs; i++) {
        const http_hdr *hd = &h->hdrs[i];
        if (hop_by_hop(hd, h->hdrs, extra)) {
            /* HEAD and 304 keep the app's length when no masking can change the body */
            if (http_token_eq(hd->name, hd->name_len, "content-length") &&
                c->rsf.kind == HTTP_BODY_NONE && kind == MM_BODY_OPAQUE)
                ok = out_put(&c->rhead, hd->name, hd->name_len) && out_put(&c->rhead, ": ", 2) &&
                     out_put(&c->rhead, hd->value, hd->value_len) &&
                     out_put(&c->rhead, "\r\n", 2);
            continue;
        }
        if (c->gz && http_token_eq(hd->name, hd->name_len, "content-encoding"))
            continue;
        ok = put_header(c, &c->rhead, hd, MM_DIR_RESPONSE);
    }
    if (!ok) {
        reply_error(c, 500, "out of memory", false);
        return;
    }
    if (c->rsf.kind == HTTP_BODY_CLOSE || !c->rsf.keep_alive)
        c->rsf.keep_alive = false;
    /* framing towards the client */
    if (c->rsf.kind == HTTP_BODY_NONE) {
        c->out_chunked = false;
    } else if (c->rsf.kind == HTTP_BODY_LENGTH && !c->rs_mask && !c->gz) {
        c->out_chunked = false;
    } else if (!http10_client) {
        c->out_chunked = true;
    } else {
        c->out_chunked = false; /* HTTP/1.0 client: the body runs to close */
        c->close_after = true;
    }
    c->rs = RS_BODY;
    c->hold = true;
    if (!c->rs_mask && !send_head(c, -1)) {
        resp_abort(c, "out of memory");
        return;
    }
    if (c->rsf.kind == HTTP_BODY_NONE)
        rs_end(c);
}

/* ---- exchange end --------------------------------------------------------------------- */

static void exchange_finish(conn *c)
{
    worker *w = c->w;
    mm_proxy *p = w->p;

    if (c->st != CS_EXCHANGE)
        return;
    if (!c->req_done) {
        c->close_after = true; /* the rest of the request cannot be told from a new one */
        if (c->up) {
            up_close(c->up);
            c->up = NULL;
        }
    }
    if (c->up) {
        if (c->rsf.keep_alive && c->req_done && pending(&c->uout, c->uout_off) == 0 &&
            c->rs == RS_DONE && c->status >= 200)
            pool_put(w, c->up);
        else
            up_close(c->up);
        c->up = NULL;
    }
    count_code(w, c->status);
    mm_series_observe(w->dur_s, (double)(w->now - c->t_start) / 1e9);
    mm_series_add(w->bytes_s[0], (double)c->b_rq_in);
    mm_series_add(w->bytes_s[1], (double)c->b_rq_out);
    mm_series_add(w->bytes_s[2], (double)c->b_rs_in);
    mm_series_add(w->bytes_s[3], (double)c->b_rs_out);
    snap_unref(c->sn);
    c->sn = NULL;
    c->rs = RS_NONE;
    c->rhead.len = 0;
    if (c->close_after || atomic_load(&p->draining)) {
        c->st = CS_CLOSING;
        c->close_after = true;
    } else {
        c->st = CS_HEAD;
        c->head_start = w->now;
        c->last_io = w->now;
    }
}

/* ---- client I/O ----------------------------------------------------------------------- */

static void client_process(conn *c)
{
    mm_proxy *p = c->w->p;

    for (;;) {
        if (c->st == CS_HEAD) {
            if (c->in.len == 0)
                return;
            /* pipelined requests wait while a response is still being written */
            if (pending(&c->out, c->out_off) > OUT_HIGH)
                return;
            int r = http_parse_request(c->in.data, c->in.len, p->cfg.max_header, &c->w->rqh);
            if (r == 0)
                return;
            if (r < 0) {
                c->st = CS_EXCHANGE;
                c->sn = NULL;
                c->req_done = false;
                c->head_sent = false;
                c->t_start = c->w->now;
                c->b_rq_in = c->b_rq_out = c->b_rs_in = c->b_rs_out = 0;
                c->in.len = 0;
                reply_error(c, -r, r == -431 ? "request header too large"
                                   : r == -414 ? "request target too long"
                                               : "malformed request", true);
                return;
            }
            begin_exchange(c, &c->w->rqh, (size_t)r);
            continue;
        }
        if (c->st == CS_EXCHANGE && !c->req_done && c->in.len > 0 &&
            pending(&c->uout, c->uout_off) < OUT_HIGH) {
            rq_feed(c);
            continue;
        }
        return;
    }
}

static void client_read(conn *c)
{
    mm_proxy *p = c->w->p;
    size_t limit = c->st == CS_HEAD ? p->cfg.max_header + 1 : READ_CHUNK;

    for (int round = 0; round < 4; round++) {
        if (c->in.len >= limit)
            break;
        size_t room = limit - c->in.len;
        if (room > READ_CHUNK)
            room = READ_CHUNK;
        if (mm_buf_reserve(&c->in, room) != MM_OK) {
            conn_close(c);
            return;
        }
        ssize_t n = recv(c->fd, c->in.data + c->in.len, room, 0);
        if (n > 0) {
            if (c->in.len == 0 && c->st == CS_HEAD)
                c->head_start = c->w->now;
            c->in.len += (size_t)n;
            c->last_io = c->w->now;
            if (c->st == CS_CLOSING) /* lingering close: read and drop */
                c->in.len = 0;
            if ((size_t)n < room)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* EOF or error */
        c->client_eof = true;
        if (c->st == CS_CLOSING || (c->st == CS_HEAD && c->in.len == 0)) {
            conn_close(c);
            return;
        }
        if (c->st == CS_HEAD) { /* half a request, then nothing: say so and go */
            c->close_after = true;
            break;
        }
        if (!c->req_done) { /* the client gave up on its own request */
            if (c->head_sent)
                resp_abort(c, "client closed");
            else
                conn_close(c);
            return;
        }
        break;
    }
    if (c->st == CS_HEAD && c->in.len > p->cfg.max_header) {
        client_process(c); /* parse says 431 */
        return;
    }
    client_process(c);
    if (c->client_eof && c->st == CS_HEAD && c->fd >= 0) {
        conn_close(c);
        return;
    }
}

/* ---- upstream I/O --------------------------------------------------------------------- */

/* The connection to the app failed before its response head: retry a bodiless request once
 * on a fresh connection when a pooled one was stale, else 502. */
static void up_failed(conn *c, const char *reason)
{
    worker *w = c->w;
    bool retry = c->up && c->up->reused && !c->resp_seen && !c->retried && c->reqhead.len > 0;
    int e = errno;

    mm_log(MM_LOG_DEBUG, "upstream connection failed", "reason", reason, "error", strerror(e),
           "pooled", c->up && c->up->reused ? "yes" : "no", "retry", retry ? "yes" : "no",
           NULL);

    if (c->up) {
        up_close(c->up);
        c->up = NULL;
    }
    if (retry) {
        c->retried = true;
        c->uout.len = c->uout_off = 0;
        c->uin.len = 0;
        if (mm_buf_append(&c->uout, c->reqhead.data, c->reqhead.len) == MM_OK &&
            (c->up = up_get(w, true)) != NULL) {
            c->up->c = c;
            return;
        }
    }
    mm_metric_add(w->p->met.upstream_errors, (const char *const[]){reason}, 1);
    if (c->rs == RS_BODY && c->head_sent) {
        resp_abort(c, "upstream closed mid-body");
        return;
    }
    reply_error(c, 502, strcmp(reason, "connect") == 0 ? "upstream connection refused"
                                                       : "upstream connection reset",
                false);
}

static void up_process(conn *c)
{
    http_resp_head *h = &c->w->rsh;

    while (c->rs == RS_WAIT_HEAD && c->uin.len > 0) {
        int r = http_parse_response(c->uin.data, c->uin.len, RESP_HEAD_MAX, h);
        if (r == 0) {
            return;
        }
        if (r < 0) {
            mm_metric_add(c->w->p->met.upstream_errors, (const char *const[]){"malformed"}, 1);
            reply_error(c, 502, "malformed response head from upstream", false);
            return;
        }
        if (h->status >= 100 && h->status < 200) {
            if (h->status == 101) {
                    reply_error(c, 502, "protocol upgrades are not supported", false);
                return;
            }
            /* interim responses are relayed, except a 100 we already sent ourselves */
            if (!(h->status == 100 && c->rqf.expect_continue) &&
                !out_put(&c->out, c->uin.data, (size_t)r)) {
                    reply_error(c, 500, "out of memory", false);
                return;
            }
            memmove(c->uin.data, c->uin.data + r, c->uin.len - (size_t)r);
            c->uin.len -= (size_t)r;
            continue;
        }
        rs_head(c, h);
        if (c->rs != RS_BODY) { /* ended (bodiless, or an error) */
            c->uin.len = 0;
            return;
        }
        size_t rest = c->uin.len - (size_t)r;
        if (rest > 0) {
            /* body bytes that came with the head: fed from a copy, uin is reused */
            memmove(c->uin.data, c->uin.data + r, rest);
            c->uin.len = 0;
            rs_feed(c, c->uin.data, rest);
        } else {
            c->uin.len = 0;
        }
        return;
    }
}

static void up_read(conn *c)
{
    worker *w = c->w;

    for (int round = 0; round < 4 && c->up && c->st == CS_EXCHANGE; round++) {
        ssize_t n;
        if (c->rs == RS_WAIT_HEAD) {
            if (c->uin.len >= RESP_HEAD_MAX) {
                reply_error(c, 502, "response head from upstream too large", false);
                return;
            }
            if (mm_buf_reserve(&c->uin, HEAD_CHUNK) != MM_OK) {
                reply_error(c, 500, "out of memory", false);
                return;
            }
            n = recv(c->up->fd, c->uin.data + c->uin.len, HEAD_CHUNK, 0);
        } else if (c->rs == RS_BODY) {
            if (pending(&c->out, c->out_off) >= OUT_HIGH)
                return;
            n = recv(c->up->fd, w->scratch, READ_CHUNK, 0);
        } else {
            /* bytes after the response (or before a request): the connection is unusable */
            n = -1;
            errno = EPROTO;
        }
        if (n > 0) {
            c->last_io = w->now;
            c->resp_seen = true;
            bool full = (size_t)n == (c->rs == RS_WAIT_HEAD ? HEAD_CHUNK : READ_CHUNK);
            if (c->rs == RS_WAIT_HEAD) {
                c->uin.len += (size_t)n;
                up_process(c);
            } else {
                rs_feed(c, w->scratch, (size_t)n);
            }
            if (!full)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n == 0 && c->rs == RS_BODY && c->rsf.kind == HTTP_BODY_CLOSE) {
            up_close(c->up);
            c->up = NULL;
            rs_end(c);
            return;
        }
        if (c->rs == RS_BODY) {
            mm_metric_add(w->p->met.upstream_errors, (const char *const[]){"reset"}, 1);
            if (c->head_sent)
                resp_abort(c, "upstream closed mid-body");
            else
                reply_error(c, 502, "upstream closed mid-body", false);
            return;
        }
        up_failed(c, "reset");
        return;
    }
}

static void up_write(conn *c)
{
    upconn *u = c->up;

    if (u->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            up_failed(c, "connect");
            return;
        }
        u->connecting = false;
    }
    if (!flush_fd(u->fd, &c->uout, &c->uout_off, &c->last_io, c->w->now)) {
        if (c->req_done || c->rs != RS_WAIT_HEAD)
            up_failed(c, "reset");
        else
            up_failed(c, "reset");
        return;
    }
    /* room again for request body bytes waiting in c->in */
    if (!c->req_done && c->in.len > 0)
        client_process(c);
}

/* ---- epoll interest, close, sweep ----------------------------------------------------- */

static void conn_sync(conn *c)
{
    worker *w = c->w;
    uint32_t ce = 0, ue = 0;

    if (c->fd < 0)
        return;
    if (c->st == CS_CLOSING && pending(&c->out, c->out_off) == 0) {
        /* lingering close: our FIN first, then read until theirs, so a pipelined request
         * in flight does not turn our last response into a reset */
        if (c->client_eof || (!c->shut && shutdown(c->fd, SHUT_WR) != 0)) {
            conn_close(c);
            return;
        }
        if (!c->shut) {
            c->shut = true;
            c->last_io = w->now;
            c->in.len = 0;
        }
        if (c->up) {
            up_close(c->up);
            c->up = NULL;
        }
        if (!ep_set(w, c->fd, c, &c->events, EPOLLIN))
            conn_close(c);
        return;
    }
    if (c->st == CS_HEAD && !c->client_eof)
        ce |= EPOLLIN;
    if (c->st == CS_EXCHANGE && !c->req_done && pending(&c->uout, c->uout_off) < OUT_HIGH &&
        !c->client_eof)
        ce |= EPOLLIN;
    if (pending(&c->out, c->out_off) > 0)
        ce |= EPOLLOUT;
    if (c->st == CS_HEAD && pending(&c->out, c->out_off) > OUT_HIGH)
        ce &= ~(uint32_t)EPOLLIN;
    /* Lazy interest: EPOLLIN stays registered through an exchange (saving two epoll_ctl
     * calls per request) until it fires when unwanted; then it goes for real. */
    if (ce & EPOLLIN)
        c->mute_in = false;
    else if (c->events != UINT32_MAX && (c->events & EPOLLIN) && !c->mute_in)
        ce |= EPOLLIN;
    if (!ep_set(w, c->fd, c, &c->events, ce)) {
        conn_close(c);
        return;
    }
    if (c->up) {
        upconn *u = c->up;
        if (u->connecting || pending(&c->uout, c->uout_off) > 0)
            ue |= EPOLLOUT;
        if (!u->connecting && (c->rs == RS_WAIT_HEAD ||
                               (c->rs == RS_BODY && pending(&c->out, c->out_off) < OUT_HIGH)))
            ue |= EPOLLIN;
        if (!ep_set(w, u->fd, u, &u->events, ue)) {
            up_failed(c, "connect");
            if (c->fd >= 0)
                conn_sync(c);
        }
    }
}

static void conn_close(conn *c)
{
    worker *w = c->w;

    if (c->fd < 0)
        return;
    if (c->up) {
        up_close(c->up);
        c->up = NULL;
    }
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    snap_unref(c->sn);
    c->sn = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->n_conns--;
    mm_series_add(w->conn_s, -1);
    /* freed at the end of the event batch: other events may still name it */
    c->next = NULL;
    c->prev = NULL;
}

static void conn_free(conn *c)
{
    mm_buf_free(&c->in);
    mm_buf_free(&c->out);
    mm_buf_free(&c->uout);
    mm_buf_free(&c->uin);
    mm_buf_free(&c->reqhead);
    mm_buf_free(&c->rq_stage);
    mm_buf_free(&c->rs_stage);
    mm_buf_free(&c->rhead);
    mm_buf_free(&c->raw);
    mm_stream_free(c->rq_ms);
    mm_stream_free(c->rs_ms);
    if (c->z_init)
        inflateEnd(&c->z);
    mm_free(c);
}

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    MM_UNUSED(opaque);
    return mm_calloc(items, size);
}

static void z_free(voidpf opaque, voidpf addr)
{
    MM_UNUSED(opaque);
    mm_free(addr);
}

static void accept_all(worker *w)
{
    mm_proxy *p = w->p;

    while (w->listening) {
        int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                mm_log(MM_LOG_WARN, "accept failed", "error", strerror(errno), NULL);
            return;
        }
        if (w->n_conns >= p->cfg.max_conns) {
            close(fd);
            continue;
        }
        conn *c = mm_calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        set_nodelay(fd);
        c->kind = EV_CLIENT;
        c->fd = fd;
        c->w = w;
        c->events = UINT32_MAX;
        c->st = CS_HEAD;
        c->last_io = c->head_start = w->now;
        mm_buf_init(&c->in, 0);
        mm_buf_init(&c->out, 0);
        mm_buf_init(&c->uout, 0);
        mm_buf_init(&c->uin, 0);
        mm_buf_init(&c->reqhead, 0);
        mm_buf_init(&c->rq_stage, 0);
        mm_buf_init(&c->rs_stage, 0);
        mm_buf_init(&c->rhead, 0);
        mm_buf_init(&c->raw, 0);
        c->z.zalloc = z_alloc;
        c->z.zfree = z_free;
        c->next = w->conns;
        if (w->conns)
            w->conns->prev = c;
        w->conns = c;
        w->n_conns++;
        mm_series_add(w->conn_s, 1);
        conn_sync(c);
        if (c->fd < 0)
            conn_free(c);
    }
}

static uint64_t conn_timeout_ns(const conn *c, const mm_proxy_config *cfg, uint64_t *since)
{
    *since = c->last_io;
    if (c->st == CS_CLOSING)
        return pending(&c->out, c->out_off) ? (uint64_t)cfg->io_timeout_ms * 1000000ull
                                            : LINGER_NS;
    if (c->st == CS_HEAD) {
        if (c->in.len == 0)
            return (uint64_t)cfg->idle_timeout_ms * 1000000ull;
        *since = c->head_start; /* a whole head in this time, however it trickles */
        return (uint64_t)cfg->header_timeout_ms * 1000000ull;
    }
    if (c->up && c->up->connecting)
        return (uint64_t)cfg->connect_timeout_ms * 1000000ull;
    if (pending(&c->out, c->out_off) > 0 || !c->req_done)
        return (uint64_t)cfg->io_timeout_ms * 1000000ull;
    return (uint64_t)cfg->upstream_timeout_ms * 1000000ull;
}

static void sweep(worker *w, conn **dead)
{
    mm_proxy *p = w->p;
    bool draining = atomic_load(&p->draining);
    conn *c, *next;

    for (c = w->conns; c; c = next) {
        uint64_t since, t = conn_timeout_ns(c, &p->cfg, &since);
        next = c->next;
        if (draining && c->st == CS_HEAD && c->in.len == 0 && pending(&c->out, c->out_off) == 0) {
            conn_close(c);
        } else if (w->now - since > t) {
            if (c->st == CS_HEAD && c->in.len == 0) {
                conn_close(c);
            } else if (c->st == CS_HEAD) {
                c->st = CS_EXCHANGE;
                c->req_done = false;
                c->head_sent = false;
                c->t_start = w->now;
                c->in.len = 0;
                reply_error(c, 408, "request head timed out", true);
            } else if (c->st == CS_CLOSING) {
                conn_close(c);
            } else if (!c->head_sent && !c->req_done) {
                reply_error(c, 408, "request body timed out", true);
            } else if (!c->head_sent && c->up && c->up->connecting) {
                mm_metric_add(p->met.upstream_errors, (const char *const[]){"connect_timeout"}, 1);
                reply_error(c, 504, "upstream connect timed out", false);
            } else if (!c->head_sent && pending(&c->out, c->out_off) == 0) {
                mm_metric_add(p->met.upstream_errors, (const char *const[]){"timeout"}, 1);
                reply_error(c, 504, "upstream timed out", false);
            } else {
                resp_abort(c, pending(&c->out, c->out_off) ? "client stopped reading"
                                                            : "upstream stalled mid-body");
            }
        }
        if (c->fd >= 0)
            conn_sync(c);
        if (c->fd < 0) {
            c->next = *dead;
            *dead = c;
        }
    }
    /* idle pooled upstream connections age out */
    for (upconn *u = w->pool, *un; u; u = un) {
        un = u->next;
        if (w->now - u->idle_since > (uint64_t)p->cfg.pool_idle_ms * 1000000ull || draining) {
            pool_remove(w, u);
            up_close(u);
        }
    }
}

static void handle_event(worker *w, struct epoll_event *ev, conn **dead)
{
    int kind = *(int *)ev->data.ptr;
    conn *c = NULL;

    if (kind == EV_LISTEN) {
        accept_all(w);
        return;
    }
    if (kind == EV_WAKE) {
        uint64_t v;
        if (read(w->wfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            mm_log(MM_LOG_WARN, "eventfd read failed", "error", strerror(errno), NULL);
        return;
    }
    if (kind == EV_UP) {
        upconn *u = ev->data.ptr;
        if (u->fd < 0)
            return;
        if (!u->c) { /* idle in the pool and readable: closed by the app, or junk */
            pool_remove(w, u);
            up_close(u);
            return;
        }
        c = u->c;
        if (c->fd < 0)
            return;
        if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            if (u->connecting || pending(&c->uout, c->uout_off) > 0)
                up_write(c);
        }
        if (c->fd >= 0 && c->up == u && !u->connecting && (ev->events & EPOLLERR) &&
            c->rs == RS_BODY && pending(&c->out, c->out_off) >= OUT_HIGH)
            up_failed(c, "reset"); /* reset while the client is slow: nothing more to read */
        else if (c->fd >= 0 && c->up == u && !u->connecting &&
                 (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            up_read(c);
    } else {
        c = ev->data.ptr;
        if (c->fd < 0)
            return;
        if (ev->events & EPOLLOUT) {
            if (!flush_fd(c->fd, &c->out, &c->out_off, &c->last_io, w->now)) {
                conn_close(c);
                goto done;
            }
            /* the client drained: the app side may read again, pipelined requests go on */
            if (c->up && c->rs == RS_BODY && pending(&c->out, c->out_off) < OUT_HIGH)
                up_read(c);
            if (c->fd >= 0 && c->st == CS_HEAD)
                client_process(c);
        }
        if (c->fd >= 0 && (ev->events & (EPOLLERR | EPOLLHUP))) {
            /* the client is gone both ways: nothing we write can arrive */
            if (c->st == CS_EXCHANGE)
                count_code(w, 499);
            conn_close(c);
        } else if (c->fd >= 0 && (ev->events & EPOLLIN)) {
            bool want = c->st == CS_HEAD || c->st == CS_CLOSING ||
                        (c->st == CS_EXCHANGE && !c->req_done &&
                         pending(&c->uout, c->uout_off) < OUT_HIGH);
            if (want && !c->client_eof)
                client_read(c);
            else
                c->mute_in = true;
        }
    }
done:
    if (c && c->fd >= 0) {
        /* write what this event produced now: one syscall saved per response */
        if (pending(&c->out, c->out_off) > 0 &&
            !flush_fd(c->fd, &c->out, &c->out_off, &c->last_io, w->now)) {
            conn_close(c);
        } else {
            if (c->up && pending(&c->uout, c->uout_off) > 0 && !c->up->connecting &&
                !flush_fd(c->up->fd, &c->uout, &c->uout_off, &c->last_io, w->now))
                up_failed(c, "reset");
            if (c->fd >= 0 && c->st == CS_HEAD && c->in.len > 0)
                client_process(c);
            if (c->fd >= 0)
                conn_sync(c);
        }
    }
    if (c && c->fd < 0 && c->kind == EV_CLIENT) {
        c->kind = 0; /* queued once */
        c->next = *dead;
        *dead = c;
    }
}

void *worker_main(void *arg)
{
    worker *w = arg;
    mm_proxy *p = w->p;
    struct epoll_event evs[128];
    uint64_t drain_deadline = 0;

    for (;;) {
        int n = epoll_wait(w->ep, evs, (int)MM_ARRAY_LEN(evs), 100);
        conn *dead = NULL;
        if (n < 0 && errno != EINTR) {
            mm_log(MM_LOG_ERROR, "epoll_wait failed", "error", strerror(errno), NULL);
            break;
        }
        w->now = mm_now_ns();
        for (int i = 0; i < n; i++)
            handle_event(w, &evs[i], &dead);
        if (atomic_load(&p->draining) && w->listening) {
            epoll_ctl(w->ep, EPOLL_CTL_DEL, w->lfd, NULL);
            close(w->lfd);
            w->lfd = -1;
            w->listening = false;
            drain_deadline = w->now + (uint64_t)p->cfg.drain_timeout_ms * 1000000ull;
            w->last_sweep = 0;
        }
        if (w->now - w->last_sweep >= SWEEP_NS) {
            w->last_sweep = w->now;
            sweep(w, &dead);
            flush_findings(w);
        }
        while (dead) {
            conn *d = dead;
            dead = d->next;
            conn_free(d);
        }
        free_dead_up(w);
        if (!w->listening && (w->n_conns == 0 || w->now >= drain_deadline))
            break;
    }
    /* drained, or out of time: whatever is left is cut */
    while (w->conns) {
        conn *c = w->conns;
        conn_close(c);
        conn_free(c);
    }
    while (w->pool) {
        upconn *u = w->pool;
        pool_remove(w, u);
        up_close(u);
    }
    free_dead_up(w);
    flush_findings(w);
    return NULL;
}

void worker_wake(worker *w)
{
    uint64_t one = 1;
    if (write(w->wfd, &one, sizeof(one)) < 0) {
        /* the counter is full: the worker is awake anyway */
    }
}

int worker_listen_port(const worker *w)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(w->lfd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

pthread_t *worker_thread(worker *w)
{
    return &w->th;
}

static int tag_listen = EV_LISTEN, tag_wake = EV_WAKE;

mm_err worker_new(mm_proxy *p, int idx, worker **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    worker *w = mm_calloc(1, sizeof(*w));
    int one = 1;
    struct epoll_event ev = {.events = EPOLLIN};
    const char *dir_labels[4][2] = {{"request", "in"}, {"request", "out"},
                                    {"response", "in"}, {"response", "out"}};

    if (!w)
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    w->p = p;
    w->idx = idx;
    w->ep = w->lfd = w->wfd = -1;
    if (!(w->scratch = mm_malloc(READ_CHUNK)) || !(w->ztmp = mm_malloc(READ_CHUNK))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    if ((w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (w->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rc = mm_errf(eb, MM_EIO, "epoll/eventfd: %s", strerror(errno));
        goto out;
    }
    w->lfd = socket(p->listen_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (w->lfd < 0 || setsockopt(w->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(w->lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        rc = mm_errf(eb, MM_EIO, "listen socket: %s", strerror(errno));
        goto out;
    }
    if (bind(w->lfd, (struct sockaddr *)&p->listen_addr, p->listen_addrlen) != 0 ||
        listen(w->lfd, 1024) != 0) {
        rc = mm_errf(eb, MM_EIO, "%s: bind/listen: %s", p->s_listen, strerror(errno));
        goto out;
    }
    /* port 0: the first worker's port is every worker's port */
    if (p->listen_addr.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&p->listen_addr;
        if (sin->sin_port == 0)
            sin->sin_port = htons((uint16_t)worker_listen_port(w));
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&p->listen_addr;
        if (sin6->sin6_port == 0)
            sin6->sin6_port = htons((uint16_t)worker_listen_port(w));
    }
    ev.data.ptr = &tag_listen;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev) != 0) {
        rc = mm_errf(eb, MM_EIO, "epoll_ctl: %s", strerror(errno));
        goto out;
    }
    ev.data.ptr = &tag_wake;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wfd, &ev) != 0) {
        rc = mm_errf(eb, MM_EIO, "epoll_ctl: %s", strerror(errno));
        goto out;
    }
    w->listening = true;
    for (int i = 0; i < 4; i++)
        w->bytes_s[i] = mm_metric_series(p->met.bytes, dir_labels[i]);
    w->dur_s = mm_metric_series(p->met.duration, NULL);
    w->conn_s = mm_metric_series(p->met.connections, NULL);
    *out = w;
    w = NULL;
out:
    worker_free(w);
    return rc;
}

void worker_free(worker *w)
{
    if (!w)
        return;
    if (w->lfd >= 0)
        close(w->lfd);
    if (w->wfd >= 0)
        close(w->wfd);
    if (w->ep >= 0)
        close(w->ep);
    mm_free(w->scratch);
    mm_free(w->ztmp);
    mm_free(w);
}
