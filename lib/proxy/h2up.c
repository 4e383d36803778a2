/* lib/proxy/h2up.c: an HTTP/2 stream's exchange with an app that speaks HTTP/1.1. Each stream
 * has a connection of its own while it runs; a connection whose response was read to its end
 * is kept for this client connection's next streams (never another client's, as pool.c does
 * for HTTP/1.1). The request goes as HTTP/1.1 (RFC 9113 §8.3.1: :authority becomes Host,
 * cookies are joined again); the response head is parsed by the HTTP/1.1 codec and its body
 * framed by the same pipe as on HTTP/1.1. */
#include "proxy/h2_int.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define H2UP_HEAD_MAX (64u * 1024) /* an app's response head */

bool h2_upstream_head(h2s *s, mm_buf *b)
{
    http_hdr h, cookie = {.name = "cookie", .name_len = 6};
    mm_buf nv, jar;
    const char *prin = s->has_principal ? s->principal : NULL;
    bool masking_resp = s->sn && s->sn->resp;
    bool ok = true;
    const char *v;
    size_t vl;

    h2s_field(s, (size_t)s->method_f, &h);
    ok = out_put(b, h.value, h.value_len) && out_put(b, " ", 1);
    h2s_field(s, (size_t)s->path_f, &h);
    ok = ok && out_put(b, h.value, h.value_len) && out_put(b, " HTTP/1.1\r\n", 11);
    if (ok && s->auth_f >= 0) {
        h2s_field(s, (size_t)s->auth_f, &h);
        ok = out_put(b, "Host: ", 6) && out_put(b, h.value, h.value_len) && out_put(b, "\r\n", 2);
    }
    mm_buf_init(&nv, 64 * 1024);
    mm_buf_init(&jar, 0);
    for (size_t i = 0; ok && i < s->nf; i++) {
        h2s_field(s, i, &h);
        if (h.name_len && h.name[0] == ':')
            continue;
        if (hop_by_hop(&h, NULL, -1) || (s->auth_f >= 0 && h2s_field_is(s, i, "host")))
            continue;
        if (masking_resp && (h2s_field_is(s, i, "accept-encoding") || h2s_field_is(s, i, "range") ||
                             h2s_field_is(s, i, "if-range")))
            continue;
        if (h2s_field_is(s, i, "cookie")) {
            ok = (jar.len == 0 || out_put(&jar, "; ", 2)) && out_put(&jar, h.value, h.value_len);
            continue;
        }
        nv.len = 0;
        if (header_value(s->sn, prin, MM_DIR_REQUEST, &h, &nv, &v, &vl, h2_finding, s))
            ok = put_field(b, h.name, h.name_len, v, vl);
    }
    if (ok && jar.len) {
        cookie.value = jar.data;
        cookie.value_len = jar.len;
        nv.len = 0;
        if (header_value(s->sn, prin, MM_DIR_REQUEST, &cookie, &nv, &v, &vl, h2_finding, s))
            ok = out_put(b, "Cookie: ", 8) && out_put(b, v, vl) && out_put(b, "\r\n", 2);
    }
    mm_buf_free(&nv);
    mm_buf_free(&jar);
    if (ok && masking_resp)
        ok = out_put(b, "Accept-Encoding: identity\r\n", 27);
    if (ok && !s->end_stream) {
        if (s->rq_chunked) {
            ok = out_put(b, "Transfer-Encoding: chunked\r\n", 28);
        } else {
            h2s_field(s, (size_t)s->cl_f, &h);
            ok = out_put(b, "Content-Length: ", 16) && out_put(b, h.value, h.value_len) &&
                 out_put(b, "\r\n", 2);
        }
    }
    return ok && out_put(b, "\r\n", 2);
}

/* Whether the connection can serve this client's next stream. */
static bool reusable(const h2s *s)
{
    return s->rs_done && !s->reset && s->rsf.keep_alive && s->req_done &&
           pending(&s->uout, s->uout_off) == 0 && s->rsp.res != BODY_FAILED &&
           s->status >= 200 && !s->is_head && s->status != 204 && s->status != 304 &&
           (!s->rs_piped || s->rsp.res == BODY_DONE);
}

static void drop_up(h2s *s)
{
    upconn *u = s->up;

    s->up = NULL;
    if (u) {
        u->h2s = NULL;
        up_close(u);
    }
}

static void idle_push(h2conn *hc, upconn *u)
{
    u->prev = NULL;
    u->next = hc->idle;
    if (hc->idle)
        hc->idle->prev = u;
    hc->idle = u;
    hc->n_idle++;
}

void h2up_idle_unlink(h2conn *hc, upconn *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        hc->idle = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->next = u->prev = NULL;
    u->owner = NULL;
    hc->n_idle--;
}

static void release(h2s *s)
{
    h2conn *hc = s->hc;
    upconn *u = s->up;

    if (!u)
        return;
    if (!reusable(s) || hc->n_idle >= hc->c->w->p->cfg.h2_max_streams ||
        atomic_load(&hc->c->w->p->draining)) {
        drop_up(s);
        return;
    }
    s->up = NULL;
    u->h2s = NULL;
    if (ep_set(hc->c->w, u->fd, u, &u->events, EPOLLIN)) {
        u->owner = hc->c;
        u->reused = true;
        u->idle_since = hc->c->w->now;
        idle_push(hc, u);
        return;
    }
    up_close(u);
}

static void req_more(h2s *s)
{
    MM_UNUSED(s); /* h2up_sync writes what waits in uout */
}

static const h2_upops h1_ops = {.release = release, .req_more = req_more, .resp_taken = NULL};

void h2up_idle_drop(h2conn *hc)
{
    while (hc->idle) {
        upconn *u = hc->idle;
        h2up_idle_unlink(hc, u);
        up_close(u);
    }
}

void h2up_idle_sweep(h2conn *hc)
{
    worker *w = hc->c->w;
    upconn *u = hc->idle, *next;

    for (; u; u = next) {
        next = u->next;
        if (w->now - u->idle_since > (uint64_t)w->p->cfg.pool_idle_ms * 1000000ull) {
            h2up_idle_unlink(hc, u);
            up_close(u);
        }
    }
}

/* An idle connection of this client's, still clean (nothing unread, not closed), or NULL.
 * The most recently used first: the oldest age out in h2up_idle_sweep. */
static upconn *idle_get(h2conn *hc)
{
    while (hc->idle) {
        upconn *u = hc->idle;
        char b;
        ssize_t n = recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        h2up_idle_unlink(hc, u);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return u;
        if (n > 0)
            count_unsolicited(hc->c->w, 1);
        up_close(u);
    }
    return NULL;
}

static bool connect_up(h2s *s, bool fresh)
{
    conn *c = s->hc->c;
    upconn *u = fresh ? NULL : idle_get(s->hc);

    if (!u) {
        u = up_get(c->w, c, true); /* c keeps no idle_up while it speaks HTTP/2 */
        if (!u)
            return false;
    }
    u->h2s = s;
    u->kind = EV_H2S;
    s->up = u;
    return true;
}

bool h2up_start(h2s *s)
{
    if (!h2_upstream_head(s, &s->uout)) {
        h2s_reply(s, 500, "out of memory");
        return false;
    }
    if (s->end_stream && mm_buf_append(&s->reqhead, s->uout.data, s->uout.len) != MM_OK)
        s->reqhead.len = 0;
    if (!connect_up(s, false)) {
        mm_metric_add(s->hc->c->w->p->met.upstream_errors, (const char *const[]){"connect"}, 1);
        h2s_reply(s, 502, "upstream connection refused");
        return false;
    }
    s->ops = &h1_ops;
    return true;
}

/* The connection failed before a response byte: a bodiless request goes once more on a new
 * connection when a kept one turned out stale; else 502. */
static void failed(h2s *s, const char *reason)
{
    bool retry = s->up && s->up->reused && !s->rs_started && !s->retried && s->reqhead.len > 0;

    drop_up(s);
    if (retry) {
        s->retried = true;
        s->uout.len = s->uout_off = 0;
        s->uin.len = 0;
        if (mm_buf_append(&s->uout, s->reqhead.data, s->reqhead.len) == MM_OK &&
            connect_up(s, true))
            return;
    }
    mm_metric_add(s->hc->c->w->p->met.upstream_errors, (const char *const[]){reason}, 1);
    s->ops = NULL;
    h2s_reply(s, 502, strcmp(reason, "connect") == 0 ? "upstream connection refused"
                                                     : "upstream connection reset");
}

/* Response head bytes: p is the worker's scratch (a head read whole, the common case: no copy)
 * or s->uin (a head that came in pieces, kept there until it is whole). */
static void head_arrived(h2s *s, const char *p, size_t n)
{
    worker *w = s->hc->c->w;
    http_resp_head *h = &w->rsh;
    bool kept = p == s->uin.data;

    while (s->up && !s->rs_started && n > 0) {
        http_framing f;
        int r = http_parse_response(p, n, H2UP_HEAD_MAX, h);
        if (r == 0) {
            if (kept) {
                memmove(s->uin.data, p, n);
                s->uin.len = n;
            } else if (mm_buf_append(&s->uin, p, n) != MM_OK) {
                h2s_reply(s, 500, "out of memory");
            }
            return;
        }
        s->uin.len = 0;
        if (r < 0 || h->status == 101) {
            mm_metric_add(w->p->met.upstream_errors, (const char *const[]){"malformed"}, 1);
            h2s_reply(s, 502, "malformed response head from upstream");
            return;
        }
        if (h->status < 200) { /* interim answers are not passed on over HTTP/2 here */
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (http_response_framing(h, s->is_head, &f) < 0) {
            mm_metric_add(w->p->met.upstream_errors, (const char *const[]){"framing"}, 1);
            h2s_reply(s, 502, "malformed response from upstream");
            return;
        }
        size_t rest = n - (size_t)r, used = 0;
        if (!h2s_resp_begin(s, h->status, h->hdrs, h->n_hdrs, &f))
            return;
        if (rest) {
            /* the body's first bytes came with the head: fed from the scratch */
            if (kept)
                memcpy(w->scratch, p + r, rest);
            h2s_resp_feed(s, kept ? w->scratch : p + r, rest, &used);
            if (used < rest && s->up)
                s->rsf.keep_alive = false; /* bytes past the body: not reused */
        }
        return;
    }
}

static void up_read_body(h2s *s)
{
    worker *w = s->hc->c->w;

    for (int round = 0; round < 4 && s->up && !s->rs_done; round++) {
        ssize_t n;
        bool head = !s->rs_started;
        if (head && s->uin.len >= H2UP_HEAD_MAX) {
            h2s_reply(s, 502, "response head from upstream too large");
            return;
        }
        if (!head && pending(&s->out, s->out_off) >= H2_OUT_HIGH)
            return;
        n = recv(s->up->fd, w->scratch, READ_CHUNK, 0);
        if (n > 0) {
            s->last_io = w->now;
            if (head && s->uin.len == 0) {
                head_arrived(s, w->scratch, (size_t)n);
            } else if (head) {
                if (mm_buf_append(&s->uin, w->scratch, (size_t)n) != MM_OK) {
                    h2s_reply(s, 500, "out of memory");
                    return;
                }
                head_arrived(s, s->uin.data, s->uin.len);
            } else {
                size_t used = 0;
                h2s_resp_feed(s, w->scratch, (size_t)n, &used);
                if (used < (size_t)n) {
                    count_unsolicited(w, (size_t)n - used);
                    s->rsf.keep_alive = false;
                }
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n == 0 && s->rs_started && s->rsf.kind == HTTP_BODY_CLOSE) {
            s->rsf.keep_alive = false;
            h2s_resp_end(s);
            return;
        }
        if (!s->rs_started) {
            failed(s, "reset");
            return;
        }
        mm_metric_add(w->p->met.upstream_errors, (const char *const[]){"reset"}, 1);
        h2s_reply(s, 502, "upstream closed mid-body");
        return;
    }
}

void h2up_event(h2s *s, uint32_t events)
{
    upconn *u = s->up;
    worker *w = s->hc->c->w;

    if (!u)
        return;
    if (u->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            failed(s, "connect");
            return;
        }
        u->connecting = false;
    }
    if (u->connecting)
        return;
    if (pending(&s->uout, s->uout_off) > 0 &&
        !flush_fd(u->fd, &s->uout, &s->uout_off, &s->last_io, w->now)) {
        failed(s, "reset");
        return;
    }
    h2s_consume(s);
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        up_read_body(s);
    if (s->up && s->rs_done)
        release(s); /* read to its end: kept for the next stream, or closed */
}

void h2up_sync(h2s *s)
{
    upconn *u = s->up;
    uint32_t want = 0;

    if (!u)
        return;
    if (!u->connecting && pending(&s->uout, s->uout_off) > 0)
        (void)flush_fd(u->fd, &s->uout, &s->uout_off, &s->last_io, s->hc->c->w->now);
    h2s_consume(s);
    if (u->connecting || pending(&s->uout, s->uout_off) > 0)
        want |= EPOLLOUT;
    if (!u->connecting && !s->rs_done &&
        (!s->rs_started || pending(&s->out, s->out_off) < H2_OUT_HIGH))
        want |= EPOLLIN;
    if (!ep_set(s->hc->c->w, u->fd, u, &u->events, want))
        failed(s, "connect");
}
