/* lib/proxy/h2c.c: the h2c session with an app that speaks HTTP/2 (gRPC servers, mostly).
 * One nghttp2 client session per client connection, opened with its first stream: the app
 * sees the same grouping of streams the client made, and nothing of one client's traffic
 * shares a connection with another's. Each client stream becomes an app stream; trailers
 * (grpc-status) come back as they are. Flow control is manual both ways: app DATA gives its
 * window back only once the client took the bytes, client DATA once the app's stream took them. */
#include "proxy/h2_int.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define H2C_CONN_WINDOW (1 << 20) /* the app may have this much unread towards us in all */

static void release(h2s *s)
{
    h2up *u = s->h2u;

    s->h2u = NULL;
    if (!u || !u->ns || !s->up_id)
        return;
    /* an exchange cut short: the app's stream goes too */
    if (!s->rs_done || !s->req_done || s->reset)
        nghttp2_submit_rst_stream(u->ns, NGHTTP2_FLAG_NONE, s->up_id, NGHTTP2_CANCEL);
    nghttp2_session_set_stream_user_data(u->ns, s->up_id, NULL);
    if (s->up_unconsumed)
        nghttp2_session_consume_connection(u->ns, s->up_unconsumed);
    s->up_unconsumed = 0;
    s->up_id = 0;
}

static void req_more(h2s *s)
{
    if (s->h2u && s->h2u->ns && s->up_id)
        nghttp2_session_resume_data(s->h2u->ns, s->up_id);
}

void h2c_consume(h2s *s)
{
    if (s->h2u && s->h2u->ns && s->up_unconsumed && pending(&s->out, s->out_off) < H2_OUT_HIGH) {
        if (s->up_id)
            nghttp2_session_consume(s->h2u->ns, s->up_id, s->up_unconsumed);
        else
            nghttp2_session_consume_connection(s->h2u->ns, s->up_unconsumed);
        s->up_unconsumed = 0;
    }
}

static const h2_upops h2c_ops = {.release = release, .req_more = req_more,
                                 .resp_taken = h2c_consume};

/* The request body for the app, from the stream's uout. */
static ssize_t req_read(nghttp2_session *ns, int32_t id, uint8_t *buf, size_t len,
                        uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    h2s *s = src->ptr;
    size_t n;

    MM_UNUSED(ns);
    MM_UNUSED(id);
    MM_UNUSED(ud);
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    n = pending(&s->uout, s->uout_off);
    if (n == 0 && !s->req_done)
        return NGHTTP2_ERR_DEFERRED;
    if (n > len)
        n = len;
    memcpy(buf, s->uout.data + s->uout_off, n);
    s->uout_off += n;
    if (s->uout_off == s->uout.len)
        s->uout.len = s->uout_off = 0;
    h2s_consume(s);
    if (s->req_done && pending(&s->uout, s->uout_off) == 0)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static h2s *stream_of(nghttp2_session *ns, int32_t id)
{
    return nghttp2_session_get_stream_user_data(ns, id);
}

static int on_header(nghttp2_session *ns, const nghttp2_frame *fr, const uint8_t *name,
                     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    h2s *s = stream_of(ns, fr->hd.stream_id);
    h2up *u = ud;
    mm_proxy *p = u->hc->c->w->p;

    MM_UNUSED(flags);
    if (!s || fr->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (fr->headers.cat == NGHTTP2_HCAT_HEADERS && s->rs_started) {
        if (s->trailers.len + nl + vl > p->cfg.max_header ||
            !h2_nv_put(&s->trailers, &s->n_trailers, (const char *)name, nl,
                       (const char *)value, vl))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return 0;
    }
    if (s->uin.len + nl + vl > p->cfg.max_header || s->n_uin >= H2_MAX_HDRS)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (!h2_nv_put(&s->uin, &s->n_uin, (const char *)name, nl, (const char *)value, vl))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static void resp_head(h2s *s, bool end)
{
    http_hdr h[H2_MAX_HDRS];
    http_framing f;
    const char *p = s->uin.data;
    int status = 0;
    size_t n;

    for (size_t i = 0; i < s->n_uin; i++) {
        size_t nl = strlen(p), vl = strlen(p + nl + 1);
        long v;
        if (strcmp(p, ":status") == 0 && mm_parse_long(p + nl + 1, 100, 999, &v))
            status = (int)v;
        p += nl + vl + 2;
    }
    if (status >= 100 && status < 200) { /* interim: not passed on */
        s->uin.len = s->n_uin = 0;
        return;
    }
    n = h2_nv_hdrs(&s->uin, s->n_uin, h, H2_MAX_HDRS);
    h2_framing(h, n, !end, &f);
    if (status < 200 || status > 599) {
        h2s_reply(s, 502, "malformed response head from upstream");
        return;
    }
    if (h2s_resp_begin(s, status, h, n, &f) && end)
        h2s_resp_end(s);
}

static int on_frame_recv(nghttp2_session *ns, const nghttp2_frame *fr, void *ud)
{
    h2s *s = fr->hd.stream_id ? stream_of(ns, fr->hd.stream_id) : NULL;
    bool end = fr->hd.flags & NGHTTP2_FLAG_END_STREAM;

    MM_UNUSED(ud);
    if (!s)
        return 0;
    s->last_io = s->hc->c->w->now;
    if (fr->hd.type == NGHTTP2_HEADERS) {
        if (!s->rs_started)
            resp_head(s, end);
        else if (end)
            h2s_resp_end(s); /* trailers */
    } else if (fr->hd.type == NGHTTP2_DATA && end) {
        h2s_resp_end(s);
    }
    return 0;
}

static int on_data(nghttp2_session *ns, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *ud)
{
    h2s *s = stream_of(ns, id);
    size_t used = 0;

    MM_UNUSED(flags);
    MM_UNUSED(ud);
    if (!s || s->rs_done || s->reset) {
        nghttp2_session_consume(ns, id, len);
        return 0;
    }
    s->up_unconsumed += len;
    h2s_resp_feed(s, (const char *)data, len, &used);
    if (s->h2u) /* still bound: the window goes back once the client took the bytes;
                 * else release gave it back already */
        h2c_consume(s);
    return 0;
}

static int on_close(nghttp2_session *ns, int32_t id, uint32_t code, void *ud)
{
    h2s *s = stream_of(ns, id);

    MM_UNUSED(ud);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(ns, id, NULL);
    if (s->up_unconsumed)
        nghttp2_session_consume_connection(ns, s->up_unconsumed);
    s->up_unconsumed = 0;
    s->up_id = 0;
    if (!s->rs_done && !s->reset) {
        mm_metric_add(s->hc->c->w->p->met.upstream_errors, (const char *const[]){"reset"}, 1);
        mm_log(MM_LOG_DEBUG, "app reset its stream", "code", nghttp2_http2_strerror(code), NULL);
        h2s_reply(s, 502, code ? "upstream reset the stream" : "upstream ended the stream early");
    }
    return 0;
}

static mm_err session_new(h2up *u)
{
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    nghttp2_settings_entry set[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
    mm_err rc = MM_ENOMEM;

    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        goto out;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
    nghttp2_option_set_max_settings(opt, H2_MAX_SETTINGS);
    nghttp2_option_set_max_continuations(opt, H2_MAX_CONTINUATIONS);
    if (nghttp2_session_client_new2(&u->ns, cb, u, opt) != 0)
        goto out;
    if (nghttp2_submit_settings(u->ns, NGHTTP2_FLAG_NONE, set, MM_ARRAY_LEN(set)) != 0 ||
        nghttp2_session_set_local_window_size(u->ns, NGHTTP2_FLAG_NONE, 0, H2C_CONN_WINDOW) != 0)
        goto out;
    rc = MM_OK;
out:
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    return rc;
}

static h2up *open_up(h2conn *hc)
{
    mm_proxy *p = hc->c->w->p;
    h2up *u = mm_calloc(1, sizeof(*u));

    if (!u)
        return NULL;
    u->kind = EV_H2UP;
    u->hc = hc;
    u->events = UINT32_MAX;
    u->connecting = true;
    u->last_io = hc->c->w->now;
    mm_buf_init(&u->out, 0);
    u->fd = socket(p->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0 || session_new(u) != MM_OK ||
        (connect(u->fd, (struct sockaddr *)&p->up_addr, p->up_addrlen) != 0 &&
         errno != EINPROGRESS)) {
        if (u->fd >= 0)
            close(u->fd);
        nghttp2_session_del(u->ns);
        mm_free(u);
        return NULL;
    }
    set_nodelay(u->fd);
    return u;
}

bool h2c_start(h2s *s)
{
    h2conn *hc = s->hc;
    h2up *u = hc->h2u;
    nghttp2_nv *nv = NULL;
    mm_buf list, mv;
    size_t n = 0;
    http_hdr h;
    const char *prin = s->has_principal ? s->principal : NULL;
    bool masking_resp = s->sn && s->sn->resp, ok = true;
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = req_read};
    int32_t id;

    if (u && !u->failed && !nghttp2_session_check_request_allowed(u->ns)) {
        /* the app said GOAWAY (a restart, a connection limit): what runs there finishes,
         * new streams go to a new connection */
        if (hc->h2u_old)
            h2c_close(hc->h2u_old);
        hc->h2u_old = u;
        hc->h2u = u = NULL;
    }
    if (!u || u->failed) {
        if (u)
            h2c_close(u);
        if (!(u = hc->h2u = open_up(hc))) {
            mm_metric_add(hc->c->w->p->met.upstream_errors, (const char *const[]){"connect"}, 1);
            h2s_reply(s, 502, "upstream connection refused");
            return false;
        }
    }
    mm_buf_init(&list, 0);
    mm_buf_init(&mv, 64 * 1024);
    for (size_t i = 0; ok && i < s->nf; i++) {
        const char *v;
        size_t vl;
        h2s_field(s, i, &h);
        if (h.name_len && h.name[0] == ':') {
            ok = h2_nv_put(&list, &n, h.name, h.name_len, h.value, h.value_len);
            continue;
        }
        if (h2s_field_is(s, i, "host") && s->auth_f >= 0)
            continue;
        if (masking_resp && (h2s_field_is(s, i, "accept-encoding") || h2s_field_is(s, i, "range") ||
                             h2s_field_is(s, i, "if-range")))
            continue;
        mv.len = 0;
        if (header_value(s->sn, prin, MM_DIR_REQUEST, &h, &mv, &v, &vl, h2_finding, s))
            ok = h2_nv_put(&list, &n, h.name, h.name_len, v, vl);
    }
    if (ok && masking_resp)
        ok = h2_nv_put(&list, &n, "accept-encoding", 15, "identity", 8);
    mm_buf_free(&mv);
    if (ok && n) {
        const char *p = list.data;
        if ((nv = mm_calloc(n, sizeof(*nv))) != NULL)
            for (size_t i = 0; i < n; i++) {
                size_t nl = strlen(p), vl = strlen(p + nl + 1);
                nv[i] = (nghttp2_nv){(uint8_t *)(uintptr_t)p, (uint8_t *)(uintptr_t)(p + nl + 1),
                                     nl, vl, NGHTTP2_NV_FLAG_NONE};
                p += nl + vl + 2;
            }
    }
    id = nv ? nghttp2_submit_request(u->ns, NULL, nv, n, s->end_stream ? NULL : &dp, s) : -1;
    mm_free(nv);
    mm_buf_free(&list);
    if (id < 0) {
        h2s_reply(s, id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? 503 : 500,
                  "cannot open a stream to upstream");
        return false;
    }
    s->up_id = id;
    s->h2u = u;
    s->ops = &h2c_ops;
    return true;
}

/* Frames for the app, as much as fits under the output bound, then written. */
void h2c_flush(h2up *u)
{
    worker *w = u->hc->c->w;

    while (!u->failed && pending(&u->out, u->out_off) < OUT_HIGH) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(u->ns, &d);
        if (n < 0) {
            u->failed = true;
            break;
        }
        if (n == 0)
            break;
        if (mm_buf_append(&u->out, d, (size_t)n) != MM_OK) {
            u->failed = true;
            break;
        }
    }
    if (!u->connecting && !u->failed &&
        !flush_fd(u->fd, &u->out, &u->out_off, &u->last_io, w->now))
        u->failed = true;
}

void h2c_close(h2up *u)
{
    h2conn *hc = u->hc;
    worker *w = hc->c->w;

    if (hc->h2u == u)
        hc->h2u = NULL;
    if (hc->h2u_old == u)
        hc->h2u_old = NULL;
    for (h2s *s = hc->streams, *next; s; s = next) {
        next = s->next;
        if (s->h2u != u)
            continue;
        s->h2u = NULL;
        s->up_id = 0;
        s->ops = NULL;
        if (!s->rs_done && !s->reset) {
            mm_metric_add(w->p->met.upstream_errors, (const char *const[]){"reset"}, 1);
            h2s_reply(s, 502, "upstream connection failed");
        }
    }
    if (u->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, u->fd, NULL);
        close(u->fd);
        u->fd = -1;
    }
    nghttp2_session_del(u->ns);
    u->ns = NULL;
    mm_buf_free(&u->out);
    u->next = w->dead_h2up;
    w->dead_h2up = u;
}

void h2c_free_dead(worker *w)
{
    while (w->dead_h2up) {
        h2up *u = w->dead_h2up;
        w->dead_h2up = u->next;
        mm_free(u);
    }
}

void h2c_event(h2up *u, uint32_t events)
{
    worker *w = u->hc->c->w;

    if (u->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            mm_metric_add(w->p->met.upstream_errors, (const char *const[]){"connect"}, 1);
            h2c_close(u);
            return;
        }
        u->connecting = false;
    }
    if (u->connecting)
        return;
    for (int round = 0; round < 4 && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)); round++) {
        ssize_t n = recv(u->fd, w->scratch, READ_CHUNK, 0);
        if (n > 0) {
            u->last_io = w->now;
            if (nghttp2_session_mem_recv(u->ns, (const uint8_t *)w->scratch, (size_t)n) < 0) {
                mm_metric_add(w->p->met.upstream_errors, (const char *const[]){"malformed"}, 1);
                h2c_close(u);
                return;
            }
            if ((size_t)n < READ_CHUNK)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        h2c_close(u); /* closed or reset by the app */
        return;
    }
    h2c_flush(u);
    if (u->failed)
        h2c_close(u);
}

void h2c_sync(h2up *u)
{
    uint32_t want = EPOLLIN;

    h2c_flush(u);
    if (u->failed || (!u->connecting && !nghttp2_session_want_read(u->ns) &&
                      !nghttp2_session_want_write(u->ns) && pending(&u->out, u->out_off) == 0)) {
        h2c_close(u);
        return;
    }
    if (u->connecting || pending(&u->out, u->out_off) > 0)
        want |= EPOLLOUT;
    if (!ep_set(u->hc->c->w, u->fd, u, &u->events, want))
        h2c_close(u);
}
