/* lib/proxy/exchange.c: what both sides of an exchange share. The header rules (hop-by-hop
 * fields go, spec.headers applies), the proxy's own error answers, cutting a response
 * midway, the end of an exchange (the upstream connection back to the pool or closed, the
 * counters), and a client connection's birth and death. */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

void count_code(worker *w, int code)
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
void flush_findings(worker *w)
{
    for (size_t i = 0; i < w->n_fcache; i++)
        if (w->fcache[i].pending) {
            mm_series_add(w->fcache[i].s, (double)w->fcache[i].pending);
            w->fcache[i].pending = 0;
        }
}

/* A finding whose (rule, detector, applied) this generation's cache holds no entry for (or
 * the first after a policy change, which empties the cache): its series is looked up, and
 * kept while the cache has room. Out of line, so that counting a cached finding saves no
 * registers. */
static __attribute__((noinline)) void count_new_finding(worker *w, uint64_t gen,
                                                        const mm_finding *f)
{
    const char *det = f->detector ? f->detector : "field";

    if (w->fcache_gen != gen) {
        flush_findings(w);
        w->n_fcache = 0;
        w->fcache_gen = gen;
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

void count_finding(worker *w, uint64_t gen, const mm_finding *f)
{
    if (w->fcache_gen == gen) {
        find_ent *e = w->fcache, *end = e + w->n_fcache;
        for (; e < end; e++)
            if (e->rule == f->rule && e->detector == f->detector && e->applied == f->applied) {
                e->pending++; /* no shared atomic per value on the hot path */
                return;
            }
    }
    count_new_finding(w, gen, f);
}

void on_finding(void *ctx, const mm_finding *f)
{
    conn *c = ctx;

    count_finding(c->w, c->sn ? c->sn->gen : 0, f);
}

bool out_put(mm_buf *b, const void *p, size_t n)
{
    return mm_buf_append(b, p, n) == MM_OK;
}

/* Appends "name: value\r\n" with one reservation (a head's lines are the most frequent
 * appends of an exchange). */
bool put_field(mm_buf *b, const char *n, size_t nl, const char *v, size_t vl)
{
    char *d;

    if (nl > SIZE_MAX / 2 || vl > SIZE_MAX / 2 || mm_buf_reserve(b, nl + vl + 4) != MM_OK)
        return false;
    d = b->data + b->len;
    memcpy(d, n, nl);
    d += nl;
    *d++ = ':';
    *d++ = ' ';
    if (vl)
        memcpy(d, v, vl);
    d += vl;
    *d++ = '\r';
    *d++ = '\n';
    *d = '\0';
    b->len = (size_t)(d - b->data);
    return true;
}

int body_iov(struct iovec v[3], char hdr[24], bool chunked, const char *p, size_t n)
{
    int k = 0;

    if (n == 0)
        return 0;
    if (chunked)
        v[k++] = (struct iovec){hdr, http_chunk_header(hdr, n)};
    v[k++] = (struct iovec){(void *)(uintptr_t)p, n};
    if (chunked)
        v[k++] = (struct iovec){"\r\n", 2};
    return k;
}

/* Appends one chunk (or, unchunked, the bytes) to b. */
bool put_body(mm_buf *b, bool chunked, const char *p, size_t n)
{
    char hdr[24];
    struct iovec v[3];
    int k = body_iov(v, hdr, chunked, p, n);

    for (int i = 0; i < k; i++)
        if (!out_put(b, v[i].iov_base, v[i].iov_len))
            return false;
    return true;
}

/* Appends a decimal number (no printf on the per-request path). */
bool put_u64(mm_buf *b, uint64_t v)
{
    char tmp[20];
    return mm_buf_append(b, tmp, mm_u64_dec(tmp, v)) == MM_OK;
}

/* Index of the Connection header when it names more than close/keep-alive (those extra
 * names are hop-by-hop too), else -1: found once per head, not once per field. */
long conn_extra(const http_hdr *hdrs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (http_token_eq(hdrs[i].name, hdrs[i].name_len, "connection") &&
            !http_token_eq(hdrs[i].value, hdrs[i].value_len, "close") &&
            !http_token_eq(hdrs[i].value, hdrs[i].value_len, "keep-alive"))
            return (long)i;
    return -1;
}

bool hop_by_hop(const http_hdr *h, const http_hdr *hdrs, long extra)
{
    const char *n = h->name;
    size_t l = h->name_len;

    /* literal names: the length is compared first, so most fields cost one comparison */
    if (http_token_eq(n, l, "connection") || http_token_eq(n, l, "keep-alive") ||
        http_token_eq(n, l, "proxy-connection") || http_token_eq(n, l, "te") ||
        http_token_eq(n, l, "trailer") || http_token_eq(n, l, "transfer-encoding") ||
        http_token_eq(n, l, "upgrade") || http_token_eq(n, l, "content-length"))
        return true;
    if (extra >= 0 && h->name_len < 128) {
        char name[128];
        memcpy(name, h->name, h->name_len);
        name[h->name_len] = '\0';
        return http_list_has(hdrs[extra].value, hdrs[extra].value_len, name);
    }
    return false;
}

/* spec.headers on one field: false drops it, else *v, *vl is the value to send (h's own, the
 * rewrite left in nv, or "[REDACTED]" when the rule cannot run). nv is the caller's, freed
 * by it. */
bool header_value(const snap *sn, const char *principal, mm_direction dir, const http_hdr *h,
                  mm_buf *nv, const char **v, size_t *vl, mm_finding_fn fn, void *ctx)
{
    char name[256];
    mm_hdr_result res = MM_HDR_KEEP;

    *v = h->value;
    *vl = h->value_len;
    if (!sn || !sn->masker || h->name_len >= sizeof(name))
        return true;
    memcpy(name, h->name, h->name_len);
    name[h->name_len] = '\0';
    if (mm_masker_header(sn->masker, dir, principal, name, h->value, h->value_len, nv, &res,
                         fn, ctx) != MM_OK) {
        /* a header rule that cannot run must not let the value through */
        *v = "[REDACTED]";
        *vl = 10;
        return true;
    }
    if (res == MM_HDR_REMOVE)
        return false;
    if (res == MM_HDR_REWRITE) {
        *v = nv->data ? nv->data : "";
        *vl = nv->len;
    }
    return true;
}

/* Copies one header into b, through spec.headers when a masker applies. */
bool put_header(conn *c, mm_buf *b, const http_hdr *h, mm_direction dir)
{
    mm_buf nv;
    const char *v;
    size_t vl;
    bool ok = true;

    mm_buf_init(&nv, 64 * 1024);
    if (header_value(c->sn, c->has_principal ? c->principal : NULL, dir, h, &nv, &v, &vl,
                     on_finding, c))
        ok = put_field(b, h->name, h->name_len, v, vl);
    mm_buf_free(&nv);
    return ok;
}

/* An error answer of our own, when nothing of the upstream response was sent. */
void reply_error(conn *c, int status, const char *msg, bool close_conn)
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

/* Cuts a response midway: a reset, not a FIN, so the client cannot take the truncated
 * body for a whole one and the kernel drops what it still buffered for a stalled reader. */
void resp_abort(conn *c, const char *why)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    mm_log(MM_LOG_WARN, "response aborted", "reason", why, NULL);
    count_code(c->w, c->status ? c->status : 502);
    if (c->fd >= 0 && setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
        mm_log(MM_LOG_DEBUG, "SO_LINGER failed", "error", strerror(errno), NULL);
    conn_close(c);
}

void exchange_finish(conn *c)
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
        if (c->up_extra)
            count_unsolicited(w, c->up_extra);
        /* after a bodiless response an app may still write the body it thinks it owes
         * (HEAD, 204, 304): such a connection is not reused, so those bytes cannot become
         * another request's response */
        if (c->rsf.keep_alive && c->req_done && pending(&c->uout, c->uout_off) == 0 &&
            c->rs == RS_DONE && c->status >= 200 && !c->up_extra && !c->is_head &&
            c->status != 204 && c->status != 304)
            pool_put(c, c->up);
        else
            up_close(c->up);
        c->up = NULL;
    }
    count_code(w, c->status);
    mm_series_observe(w->dur_s, (double)(w->now - c->t_start) / 1e9);
    mm_series_add(w->bytes_s[0], c->rq_piped ? (double)c->rq.in : 0);
    mm_series_add(w->bytes_s[1], c->rq_piped ? (double)c->rq.out : 0);
    mm_series_add(w->bytes_s[2], c->rs_piped ? (double)(c->rsp.in + c->spliced) : 0);
    mm_series_add(w->bytes_s[3], c->rs_piped ? (double)(c->rsp.out + c->spliced) : 0);
    if (c->spliced)
        mm_series_add(w->spliced_s, (double)c->spliced);
    c->spliced = 0;
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

void conn_close(conn *c)
{
    worker *w = c->w;

    if (c->fd < 0)
        return;
    if (c->on_close) /* another protocol took the connection over (HTTP/2) */
        c->on_close(c);
    pool_drop(c);
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

void conn_free(conn *c)
{
    if (c->on_free)
        c->on_free(c);
    mm_buf_free(&c->in);
    mm_buf_free(&c->out);
    mm_buf_free(&c->uout);
    mm_buf_free(&c->uin);
    mm_buf_free(&c->reqhead);
    mm_buf_free(&c->rhead);
    body_cleanup(&c->rq);
    body_cleanup(&c->rsp);
    if (c->spl[0] >= 0) {
        close(c->spl[0]);
        close(c->spl[1]);
    }
    if (c->ws) /* a WebSocket tunnel's buffers (ws.c) */
        for (int i = 0; i < 2; i++) {
            body_cleanup(&c->ws->d[i].pipe);
            mm_buf_free(&c->ws->d[i].msg);
        }
    mm_free(c->ws);
    mm_free(c);
}

/* A new client connection, registered with the worker; NULL when out of memory (the
 * caller closes fd). */
conn *conn_new(worker *w, int fd)
{
    conn *c = mm_calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->kind = EV_CLIENT;
    c->fd = fd;
    c->w = w;
    c->events = UINT32_MAX;
    c->st = CS_HEAD;
    c->spl[0] = c->spl[1] = -1;
    c->last_io = c->head_start = w->now;
    mm_buf_init(&c->in, 0);
    mm_buf_init(&c->out, 0);
    mm_buf_init(&c->uout, 0);
    mm_buf_init(&c->uin, 0);
    mm_buf_init(&c->reqhead, 0);
    mm_buf_init(&c->rhead, 0);
    body_init(&c->rq, w->ztmp);
    body_init(&c->rsp, w->ztmp);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->n_conns++;
    mm_series_add(w->conn_s, 1);
    return c;
}
