/* lib/proxy/h2.c: HTTP/2 towards the client, an nghttp2 server session per connection. A
 * connection becomes HTTP/2 where its protocol is decided: its first bytes are the client
 * preface (h2c by prior knowledge), or a bodiless HTTP/1.1 request asks for `Upgrade: h2c`
 * (RFC 7540 §3.2; the request is stream 1). Each stream is an exchange of its own (h2stream.c)
 * towards the app in HTTP/1.1 (h2up.c) or h2c (h2c.c).
 *
 * Limits, advertised in SETTINGS and enforced: concurrent streams, header list size (431 past
 * it; a block decoding to H2_BOMB_FACTOR times more is an HPACK bomb: GOAWAY
 * ENHANCE_YOUR_CALM), frame size, stream and connection windows (given back only when the
 * bytes went on: flow control is the backpressure). Attacks: client resets are counted per
 * connection with a token bucket (rapid reset, CVE-2023-44487: GOAWAY ENHANCE_YOUR_CALM);
 * nghttp2 bounds CONTINUATION frames per header block, SETTINGS entries, and the ACKs a peer
 * that does not read may queue (SETTINGS and PING floods). */
#include "proxy/h2_int.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN (sizeof(PREFACE) - 1)

static h2s *stream_of(h2conn *hc, int32_t id)
{
    return hc->ns ? nghttp2_session_get_stream_user_data(hc->ns, id) : NULL;
}

/* GOAWAY ENHANCE_YOUR_CALM: the peer misbehaves; streams in flight are cut. `reason` is the
 * metric label. */
static void calm(h2conn *hc, const char *reason, const char *why)
{
    if (hc->calm)
        return;
    hc->calm = true;
    mm_metric_add(hc->c->w->p->met.h2_refused, (const char *const[]){reason}, 1);
    mm_log(MM_LOG_WARN, "http2 connection refused", "reason", why, NULL);
    nghttp2_session_terminate_session(hc->ns, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* One client reset: the bucket refills H2_RESET_RATE per second up to H2_RESET_BURST. */
static void count_reset(h2conn *hc)
{
    uint64_t now = hc->c->w->now;

    hc->reset_tokens += (double)(now - hc->reset_at) / 1e9 * H2_RESET_RATE;
    if (hc->reset_tokens > H2_RESET_BURST)
        hc->reset_tokens = H2_RESET_BURST;
    hc->reset_at = now;
    if ((hc->reset_tokens -= 1) < 0)
        calm(hc, "rapid_reset", "too many stream resets (rapid reset)");
}

static void rq_note(void *ctx, const char *why)
{
    h2s *s = ctx;

    mm_metric_add(s->hc->c->w->p->met.parse_errors, (const char *const[]){"request"}, 1);
    mm_log(MM_LOG_WARN, "request body could not be masked", "error", why, "protocol", "h2",
           NULL);
}

static void rq_failed(h2s *s)
{
    s->rq_failed = true;
    switch (s->rq.err) {
    case BODY_ELIMIT:
        h2s_reply(s, 413, "request body too large");
        break;
    case BODY_EMASK:
        if (s->grpc)
            h2s_grpc_fail(s, "request message could not be masked");
        else
            h2s_reply(s, 400, "request body could not be masked");
        break;
    default:
        h2s_reply(s, 500, "out of memory");
        break;
    }
}

/* The client's request body ended (END_STREAM). */
static void req_end(h2s *s)
{
    if (s->req_done || s->rq_failed)
        return;
    if (s->rq_piped) {
        body_res r = body_end(&s->rq);
        if (r != BODY_DONE) {
            rq_failed(s);
            return;
        }
        if (s->rq_chunked && !out_put(&s->uout, "0\r\n\r\n", 5)) {
            h2s_reply(s, 500, "out of memory");
            return;
        }
    }
    s->req_done = true;
    if (s->ops)
        s->ops->req_more(s);
}

/* The request head is complete: the exchange starts. */
static void begin(h2s *s)
{
    h2conn *hc = s->hc;
    mm_proxy *p = hc->c->w->p;
    http_hdr hd[H2_MAX_HDRS], h;
    http_framing f;
    size_t n = 0;

    s->started = true;
    s->t_start = hc->c->w->now;
    if (s->too_large) {
        h2s_reply(s, 431, "request header too large");
        return;
    }
    if (s->method_f < 0 || s->path_f < 0) { /* CONNECT has no :path */
        h2s_reply(s, 405, "CONNECT is not supported");
        return;
    }
    h2s_field(s, (size_t)s->method_f, &h);
    s->is_head = http_token_eq(h.value, h.value_len, "HEAD");
    if (!(s->sn = config_current(p))) {
        h2s_reply(s, 503, "no valid configuration loaded");
        return;
    }
    for (size_t i = 0; i < s->nf; i++) {
        h2s_field(s, i, &h);
        if (h.name_len && h.name[0] != ':')
            hd[n++] = h;
        if (p->cfg.identity_xfcc && h2s_field_is(s, i, "x-forwarded-client-cert"))
            s->has_principal =
                http_xfcc_uri(h.value, h.value_len, s->principal, sizeof(s->principal));
    }
    h2_framing(hd, n, !s->end_stream, &f);
    s->grpc = f.content_type && h2_grpc_type(f.content_type, f.content_type_len);
    if (!s->end_stream) {
        mm_body_kind kind = MM_BODY_OPAQUE;
        bool every_way = false;
        h2_grpc g = {.kind = MM_BODY_OPAQUE};
        if (s->sn->req && s->sn->masker && s->grpc) {
            /* message by message; a message that cannot be masked never reaches the app */
            if (!h2s_grpc_setup(s, MM_DIR_REQUEST, hd, n, &f, &g))
                return;
            kind = g.kind;
        } else if (s->sn->req &&
                   !body_kind_for(s->sn->masker, MM_DIR_REQUEST, &f, &kind, &every_way)) {
            h2s_reply(s, 415, "request content type refused by policy");
            return;
        }
        if (kind != MM_BODY_OPAQUE && f.content_encoding != 0) {
            h2s_reply(s, 415, "compressed request bodies cannot be masked");
            return;
        }
        if (s->cl_f >= 0 && f.length > p->cfg.max_body) {
            h2s_reply(s, 413, "request body too large");
            return;
        }
        body_opts o = {.frame = BODY_FRAME_EOF,
                       .max = p->cfg.max_body,
                       .masker = kind != MM_BODY_OPAQUE ? s->sn->masker : NULL,
                       .gen = s->sn->gen,
                       .kind = kind,
                       .every_way = every_way,
                       .dir = MM_DIR_REQUEST,
                       .principal = s->has_principal ? s->principal : NULL,
                       .max_value = p->cfg.max_value,
                       .on_error = MM_ONERR_BLOCK,
                       .on_finding = h2_finding,
                       .finding_ctx = s,
                       .proto = g.proto,
                       .grpc_method = g.proto ? g.method : NULL,
                       .grpc_encoding = g.has_encoding ? g.encoding : NULL,
                       .note = rq_note,
                       .sink = h2_rq_sink,
                       .ctx = s};
        if (body_begin(&s->rq, &o) != MM_OK) {
            h2s_reply(s, 500, "out of memory");
            return;
        }
        s->rq_piped = true;
        s->rq_chunked = p->cfg.upstream_proto == MM_UPSTREAM_H1 &&
                        (s->rq.masking || s->cl_f < 0);
    } else {
        s->req_done = true;
    }
    if (p->cfg.upstream_proto == MM_UPSTREAM_H2C)
        h2c_start(s);
    else
        h2up_start(s);
}

/* ---- nghttp2 server callbacks ----------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *ns, const nghttp2_frame *fr, void *ud)
{
    h2conn *hc = ud;
    h2s *s;

    if (fr->hd.type != NGHTTP2_HEADERS || fr->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (hc->calm || hc->goaway) /* nothing new starts on a connection that is going */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (!(s = h2s_new(hc, fr->hd.stream_id)))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(ns, fr->hd.stream_id, s);
    return 0;
}

static int on_header(nghttp2_session *ns, const nghttp2_frame *fr, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    h2conn *hc = ud;
    h2s *s = stream_of(hc, fr->hd.stream_id);
    size_t limit = hc->c->w->p->cfg.max_header;
    const char *n = (const char *)name;

    MM_UNUSED(ns);
    MM_UNUSED(flags);
    if (!s || fr->hd.type != NGHTTP2_HEADERS)
        return 0;
    s->hsize += nl + vl + 32; /* RFC 9113 §6.5.2's measure */
    if (s->hsize > limit * H2_BOMB_FACTOR) {
        calm(hc, "hpack_bomb", "header block far past the header list limit (HPACK bomb)");
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (fr->headers.cat != NGHTTP2_HCAT_REQUEST || s->too_large)
        return 0; /* request trailers are not passed on */
    if (s->hsize > limit || !h2s_field_add(s, n, nl, (const char *)value, vl)) {
        s->too_large = true;
        return 0;
    }
    size_t i = s->nf - 1;
    if (nl == 7 && memcmp(n, ":method", 7) == 0)
        s->method_f = (int)i;
    else if (nl == 5 && memcmp(n, ":path", 5) == 0)
        s->path_f = (int)i;
    else if (nl == 10 && memcmp(n, ":authority", 10) == 0)
        s->auth_f = (int)i;
    else if (nl == 14 && memcmp(n, "content-length", 14) == 0)
        s->cl_f = (int)i;
    return 0;
}

static int on_frame_recv(nghttp2_session *ns, const nghttp2_frame *fr, void *ud)
{
    h2conn *hc = ud;
    h2s *s = fr->hd.stream_id ? stream_of(hc, fr->hd.stream_id) : NULL;
    bool end = fr->hd.flags & NGHTTP2_FLAG_END_STREAM;

    MM_UNUSED(ns);
    if (fr->hd.type == NGHTTP2_RST_STREAM) {
        count_reset(hc);
        return 0;
    }
    if (!s)
        return 0;
    s->last_io = hc->c->w->now;
    if (fr->hd.type == NGHTTP2_HEADERS && fr->headers.cat == NGHTTP2_HCAT_REQUEST) {
        s->end_stream = end;
        begin(s);
    } else if ((fr->hd.type == NGHTTP2_HEADERS || fr->hd.type == NGHTTP2_DATA) && end) {
        req_end(s);
    }
    return 0;
}

static int on_data(nghttp2_session *ns, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *ud)
{
    h2conn *hc = ud;
    h2s *s = stream_of(hc, id);
    size_t used = 0;

    MM_UNUSED(flags);
    if (!s || !s->rq_piped || s->rq_failed || s->req_done || s->rs_done) {
        nghttp2_session_consume(ns, id, len); /* nobody takes it: the window goes back */
        return 0;
    }
    s->unconsumed += len;
    if (body_feed(&s->rq, (const char *)data, len, &used) == BODY_FAILED) {
        rq_failed(s);
        return 0;
    }
    h2s_consume(s);
    if (s->ops)
        s->ops->req_more(s);
    return 0;
}

/* Our answer ended while the client still sends its request (an error of ours, 413): a
 * RST_STREAM NO_ERROR after it tells the client to stop (RFC 9113 §8.1). */
static int on_frame_send(nghttp2_session *ns, const nghttp2_frame *fr, void *ud)
{
    h2conn *hc = ud;
    h2s *s;

    if ((fr->hd.type != NGHTTP2_DATA && fr->hd.type != NGHTTP2_HEADERS) ||
        !(fr->hd.flags & NGHTTP2_FLAG_END_STREAM) || !(s = stream_of(hc, fr->hd.stream_id)))
        return 0;
    if (!s->end_stream && !s->req_done && !s->reset) {
        s->reset = true;
        nghttp2_submit_rst_stream(ns, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_close(nghttp2_session *ns, int32_t id, uint32_t code, void *ud)
{
    h2conn *hc = ud;
    h2s *s = stream_of(hc, id);

    MM_UNUSED(code);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(ns, id, NULL);
    h2s_free(s);
    return 0;
}

/* ---- the connection ------------------------------------------------------------------------ */

static void untouch(h2conn *hc)
{
    worker *w = hc->c->w;

    if (!hc->touched)
        return;
    hc->touched = false;
    if (hc->tprev)
        hc->tprev->tnext = hc->tnext;
    else
        w->h2_touched = hc->tnext;
    if (hc->tnext)
        hc->tnext->tprev = hc->tprev;
    hc->tnext = hc->tprev = NULL;
}

bool h2_defer(conn *c)
{
    h2conn *hc = c->h2;
    worker *w = c->w;

    if (!hc)
        return false;
    if (hc->syncing) {
        hc->syncing = false;
        return false;
    }
    if (!hc->touched) {
        hc->touched = true;
        hc->tprev = NULL;
        hc->tnext = w->h2_touched;
        if (w->h2_touched)
            w->h2_touched->tprev = hc;
        w->h2_touched = hc;
    }
    return true;
}

conn *h2_deferred(worker *w)
{
    h2conn *hc = w->h2_touched;

    if (!hc)
        return NULL;
    untouch(hc);
    hc->syncing = true;
    return hc->c;
}

/* The HTTP/2 state goes; the socket stays with the caller. */
static void teardown(conn *c)
{
    h2conn *hc = c->h2;

    if (!hc)
        return;
    untouch(hc);
    c->h2 = NULL;
    c->on_close = NULL;
    for (h2s *s = hc->streams; s; s = s->next)
        if (s->up) { /* the app connection goes with the client's */
            s->up->h2s = NULL;
            up_close(s->up);
            s->up = NULL;
        }
    if (hc->h2u)
        h2c_close(hc->h2u);
    if (hc->h2u_old)
        h2c_close(hc->h2u_old);
    h2up_idle_drop(hc);
    nghttp2_session_del(hc->ns);
    hc->ns = NULL;
    while (hc->streams)
        h2s_free(hc->streams);
    h2s_spare_drop(hc);
    mm_free(hc);
}

static void on_conn_close(conn *c)
{
    teardown(c);
}

static mm_err session_new(h2conn *hc)
{
    const mm_proxy_config *cfg = &hc->c->w->p->cfg;
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    nghttp2_settings_entry set[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->h2_max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->h2_window},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, cfg->h2_max_frame},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->max_header},
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 4096},
    };
    mm_err rc = MM_ENOMEM;

    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        goto out;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
    nghttp2_option_set_max_settings(opt, H2_MAX_SETTINGS);
    nghttp2_option_set_max_continuations(opt, H2_MAX_CONTINUATIONS);
    /* nghttp2's own reset limiter stays behind ours, which answers ENHANCE_YOUR_CALM */
    nghttp2_option_set_stream_reset_rate_limit(opt, 4 * H2_RESET_BURST, 4 * H2_RESET_RATE);
    if (nghttp2_session_server_new2(&hc->ns, cb, hc, opt) != 0)
        goto out;
    if (nghttp2_submit_settings(hc->ns, NGHTTP2_FLAG_NONE, set, MM_ARRAY_LEN(set)) != 0 ||
        nghttp2_session_set_local_window_size(hc->ns, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)cfg->h2_conn_window) != 0)
        goto out;
    rc = MM_OK;
out:
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    return rc;
}

/* The connection speaks HTTP/2 from here. */
static h2conn *take_over(conn *c)
{
    h2conn *hc = mm_calloc(1, sizeof(*hc));

    if (!hc)
        return NULL;
    hc->c = c;
    hc->reset_tokens = H2_RESET_BURST;
    hc->reset_at = hc->idle_since = c->w->now;
    if (session_new(hc) != MM_OK) {
        nghttp2_session_del(hc->ns);
        mm_free(hc);
        return NULL;
    }
    pool_drop(c); /* an HTTP/1.1 app connection kept from before */
    c->h2 = hc;
    c->on_close = on_conn_close;
    c->st = CS_H2;
    return hc;
}

/* Feeds client bytes to the session; false: the connection is to go. */
static bool input(h2conn *hc, const char *p, size_t n)
{
    ssize_t r = nghttp2_session_mem_recv(hc->ns, (const uint8_t *)p, n);

    if (r < 0) {
        /* floods (SETTINGS, PING, CONTINUATION) end here too, as nghttp2 detects them */
        mm_log(MM_LOG_INFO, "http2 connection failed", "error", nghttp2_strerror((int)r), NULL);
        if (r == NGHTTP2_ERR_FLOODED || r == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
            mm_metric_add(hc->c->w->p->met.h2_refused,
                          (const char *const[]){r == NGHTTP2_ERR_FLOODED ? "flood"
                                                                          : "continuation_flood"},
                          1);
        hc->dead = true;
        return false;
    }
    return true;
}

int h2_preface(conn *c)
{
    size_t n = c->in.len < PREFACE_LEN ? c->in.len : PREFACE_LEN;
    h2conn *hc;

    if (memcmp(c->in.data, PREFACE, n) != 0)
        return 0;
    if (n < PREFACE_LEN)
        return -1;
    if (!(hc = take_over(c))) {
        conn_close(c);
        return 1;
    }
    if (!input(hc, c->in.data, c->in.len))
        hc->dead = true;
    c->in.len = 0;
    return 1;
}

/* base64url (RFC 4648 §5) without padding, as HTTP2-Settings carries it. */
static bool b64url(const char *s, size_t n, uint8_t *out, size_t max, size_t *len)
{
    uint32_t acc = 0;
    int bits = 0;

    *len = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int v = ch >= 'A' && ch <= 'Z'   ? ch - 'A'
                : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                : ch >= '0' && ch <= '9' ? ch - '0' + 52
                : ch == '-' || ch == '+' ? 62
                : ch == '_' || ch == '/' ? 63
                : ch == '='              ? -2
                                         : -1;
        if (v == -2)
            break;
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            if (*len >= max)
                return false;
            out[(*len)++] = (uint8_t)(acc >> bits);
        }
    }
    return true;
}

bool h2_upgrade(conn *c, const http_req_head *rq, size_t head_len)
{
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: h2c\r\n\r\n";
    const http_hdr *settings = NULL;
    bool h2c = false;
    http_framing f;
    uint8_t raw[256];
    size_t rawlen = 0;
    h2conn *hc;
    h2s *s;

    for (size_t i = 0; i < rq->n_hdrs; i++) {
        const http_hdr *h = &rq->hdrs[i];
        if (http_token_eq(h->name, h->name_len, "upgrade") &&
            http_list_has(h->value, h->value_len, "h2c"))
            h2c = true;
        else if (http_token_eq(h->name, h->name_len, "http2-settings"))
            settings = settings ? rq->hdrs : h; /* twice: not an upgrade */
    }
    /* a request with a body stays HTTP/1.1 (RFC 7540 §3.2 lets the server choose) */
    if (!h2c || !settings || settings == rq->hdrs || rq->minor != 1 ||
        atomic_load(&c->w->p->draining) || http_request_framing(rq, &f) != 0 ||
        f.kind != HTTP_BODY_NONE ||
        !b64url(settings->value, settings->value_len, raw, sizeof(raw), &rawlen))
        return false;
    if (!(hc = take_over(c)))
        return false;
    if (nghttp2_session_upgrade2(hc->ns, raw, rawlen,
                                 http_token_eq(rq->method, rq->method_len, "HEAD"), NULL) != 0 ||
        !(s = h2s_new(hc, 1))) {
        hc->dead = true;
        return true;
    }
    nghttp2_session_set_stream_user_data(hc->ns, 1, s);
    /* stream 1 is the request as it came, in HTTP/2 terms */
    bool ok = h2s_field_add(s, ":method", 7, rq->method, rq->method_len) &&
              h2s_field_add(s, ":path", 5, rq->target, rq->target_len) &&
              h2s_field_add(s, ":scheme", 7, "http", 4);
    s->method_f = 0;
    s->path_f = 1;
    long extra = conn_extra(rq->hdrs, rq->n_hdrs);
    for (size_t i = 0; ok && i < rq->n_hdrs; i++) {
        const http_hdr *h = &rq->hdrs[i];
        if (hop_by_hop(h, rq->hdrs, extra) || http_token_eq(h->name, h->name_len, "http2-settings"))
            continue;
        if (http_token_eq(h->name, h->name_len, "host")) {
            s->auth_f = (int)s->nf;
            ok = h2s_field_add(s, ":authority", 10, h->value, h->value_len);
            continue;
        }
        ok = h2s_field_add(s, h->name, h->name_len, h->value, h->value_len);
    }
    if (!ok || !out_put(&c->out, sw, sizeof(sw) - 1)) {
        hc->dead = true;
        return true;
    }
    s->end_stream = true;
    begin(s);
    memmove(c->in.data, c->in.data + head_len, c->in.len - head_len);
    c->in.len -= head_len;
    if (c->in.len && !input(hc, c->in.data, c->in.len))
        hc->dead = true;
    c->in.len = 0;
    return true;
}

static void h2_read(conn *c)
{
    worker *w = c->w;
    h2conn *hc = c->h2;

    for (int round = 0; round < 4 && hc && !hc->dead; round++) {
        ssize_t n = recv(c->fd, w->scratch, READ_CHUNK, 0);
        if (n > 0) {
            c->last_io = w->now;
            if (!input(hc, w->scratch, (size_t)n) || (size_t)n < READ_CHUNK)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        c->client_eof = true;
        hc->dead = true;
        return;
    }
}

/* Frames for the client, as much as fits under the output bound. */
static void pump(h2conn *hc)
{
    conn *c = hc->c;

    while (!hc->dead && pending(&c->out, c->out_off) < OUT_HIGH) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(hc->ns, &d);
        if (n <= 0) {
            if (n < 0)
                hc->dead = true;
            return;
        }
        if (c->out_off > 0 && c->out_off == c->out.len)
            c->out.len = c->out_off = 0;
        if (mm_buf_append(&c->out, d, (size_t)n) != MM_OK) {
            hc->dead = true;
            return;
        }
    }
}

void h2_sync(conn *c)
{
    h2conn *hc = c->h2;
    worker *w = c->w;
    uint32_t want = 0;

    if (c->fd < 0 || !hc)
        return;
    pump(hc); /* first: DATA taken from the streams lets their app sides read again */
    for (h2s *s = hc->streams; s; s = s->next) {
        if (s->up)
            h2up_sync(s);
        else if (s->h2u)
            h2c_consume(s);
    }
    if (hc->h2u)
        h2c_sync(hc->h2u);
    if (hc->h2u_old)
        h2c_sync(hc->h2u_old);
    pump(hc);
    if (pending(&c->out, c->out_off) > 0 &&
        !flush_fd(c->fd, &c->out, &c->out_off, &c->last_io, w->now)) {
        conn_close(c);
        return;
    }
    bool open = !hc->dead && (nghttp2_session_want_read(hc->ns) ||
                              nghttp2_session_want_write(hc->ns));
    if (!open) {
        /* the session is over (GOAWAY sent, or it failed): a lingering close as on
         * HTTP/1.1, so a client still sending does not turn our GOAWAY into a reset */
        teardown(c);
        c->st = CS_CLOSING;
        c->close_after = true;
        return;
    }
    if (hc->n_streams > 0)
        hc->idle_since = w->now;
    if (open && !c->client_eof && nghttp2_session_want_read(hc->ns) &&
        pending(&c->out, c->out_off) < OUT_HIGH)
        want |= EPOLLIN;
    if (pending(&c->out, c->out_off) > 0)
        want |= EPOLLOUT;
    if (!ep_set(w, c->fd, c, &c->events, want))
        conn_close(c);
}

void h2_client_event(conn *c, uint32_t events)
{
    if (events & EPOLLOUT) {
        if (!flush_fd(c->fd, &c->out, &c->out_off, &c->last_io, c->w->now)) {
            conn_close(c);
            return;
        }
    }
    if (events & (EPOLLERR | EPOLLHUP)) {
        conn_close(c);
        return;
    }
    if (events & EPOLLIN)
        h2_read(c);
}

conn *h2_app_event(worker *w, void *tag, uint32_t events)
{
    if (*(int *)tag == EV_H2UP) {
        h2up *u = tag;
        if (u->fd < 0)
            return NULL;
        h2c_event(u, events);
        return u->hc->c;
    }
    upconn *u = tag;
    if (u->fd < 0)
        return NULL;
    if (!u->h2s) { /* kept idle and readable: the app closed it, or sent junk */
        conn *c = u->owner;
        h2conn *hc = c ? c->h2 : NULL;
        if (hc)
            h2up_idle_unlink(hc, u);
        u->owner = NULL;
        pool_readable(w, u); /* counts what came, closes */
        return c;
    }
    conn *c = u->h2s->hc->c;
    h2up_event(u->h2s, events);
    return c;
}

void h2_sweep(conn *c, bool draining)
{
    h2conn *hc = c->h2;
    worker *w = c->w;
    const mm_proxy_config *cfg = &w->p->cfg;

    if (!hc)
        return;
    if (draining && !hc->goaway) {
        hc->goaway = true;
        nghttp2_submit_goaway(hc->ns, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(hc->ns), NGHTTP2_NO_ERROR,
                              NULL, 0);
    }
    if ((draining || w->now - hc->idle_since > (uint64_t)cfg->idle_timeout_ms * 1000000ull) &&
        hc->n_streams == 0) {
        if (!hc->goaway)
            nghttp2_submit_goaway(hc->ns, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(hc->ns),
                                  NGHTTP2_NO_ERROR, NULL, 0);
        hc->goaway = true;
        hc->dead = true; /* the GOAWAY is pumped by h2_sync... */
        pump(hc);
        hc->dead = true; /* ...once, then the connection goes */
        if (pending(&c->out, c->out_off))
            (void)flush_fd(c->fd, &c->out, &c->out_off, &c->last_io, w->now);
        conn_close(c);
        return;
    }
    if (pending(&c->out, c->out_off) > 0 &&
        w->now - c->last_io > (uint64_t)cfg->io_timeout_ms * 1000000ull) {
        conn_close(c); /* the client stopped reading */
        return;
    }
    h2up_idle_sweep(hc);
    for (h2s *s = hc->streams; s; s = s->next) {
        bool connecting = (s->up && s->up->connecting) || (s->h2u && s->h2u->connecting);
        uint64_t t = connecting ? (uint64_t)cfg->connect_timeout_ms * 1000000ull
                                : (uint64_t)cfg->upstream_timeout_ms * 1000000ull;
        if (!s->started || s->rs_done || (!s->up && !s->h2u) || w->now - s->last_io <= t)
            continue;
        mm_metric_add(w->p->met.upstream_errors,
                      (const char *const[]){connecting ? "connect_timeout" : "timeout"}, 1);
        h2s_reply(s, 504, connecting ? "upstream connect timed out" : "upstream timed out");
    }
}
