/* mm-loadgen: a constant-rate (open-loop) HTTP/1.1 load generator, over TLS or plain TCP,
 * for bench/webhook.sh's figures at a fixed arrival rate (issue 17).
 *
 * Why our own: on a 2-CPU machine that also runs the server under test, vegeta's pacer (a
 * goroutine among its workers, with Go's scheduler and GC beside it) runs late by more
 * than a millisecond at its 99th percentile, which bench/openloop.py rightly counts against
 * the server; nginx serving a static file then "misses" a 1 ms bar too. This is one thread,
 * an epoll loop and a timerfd armed at each hit's slot, with the timer slack at 1 ns.
 *
 * What it measures is what vegeta measures: hit n (0-based) is due at t0 + (n + 1) / rate;
 * when the loop takes the tick it stamps the hit, and the hit goes out on the first idle one
 * of the --connections kept-alive connections (waiting for one counts in its latency, which
 * runs from the stamp to the response's last byte; responses are read by lib/proxy's HTTP/1.1
 * codec, the sidecar's own). Connections are opened (and TLS
 * handshaken) before t0, within --timeout; one request is in flight on each. The results go to stdout as
 * `vegeta encode --to csv` lines (timestamp ns, code, latency ns, bytes out, bytes in,
 * error, body, attack, seq, method, url, headers), so bench/openloop.py reads either tool.
 *
 *   mm-loadgen --url URL --rate N --duration S [--connections C] [--body FILE]
 *              [--method M] [--header 'Name: value']... [--insecure | --cacert FILE]
 *              [--timeout S]
 * Exit: 0 when the run completed (errors are in the results), 1 when it could not start
 * (no connection, TLS refused), 2 on bad arguments. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "proxy/http1.h"

#define HEAD_MAX (64 * 1024) /* response head */
#define BUF_SZ (HEAD_MAX + 16384) /* a connection's read buffer: a head, or body bytes read at once */
#define HITS_MAX 50000000L
#define CONNS_MAX 1024
#define RETRY_NS (100 * 1000000ull)   /* between attempts to reopen a connection */

enum { E_NONE, E_CONNECT, E_TLS, E_CLOSED, E_RESPONSE, E_TIMEOUT, E_IO };
static const char *const err_text[] = {"",           "connect failed", "TLS handshake failed",
                                       "connection closed", "bad response", "timeout",
                                       "read or write failed"};

typedef struct {
    uint64_t ts;  /* when the pacer took the tick (CLOCK_MONOTONIC ns); 0: not yet */
    uint64_t lat; /* from ts to the response's last byte, or to the error */
    uint64_t in;  /* response body bytes */
    int code;     /* HTTP status; 0 on error */
    int err;      /* E_* */
} hit;

typedef enum { C_DOWN, C_CONNECTING, C_HANDSHAKE, C_IDLE, C_WRITING, C_READING } cstate;

typedef struct {
    int fd;
    SSL *ssl;
    cstate st;
    long hit;           /* in flight; -1: none */
    size_t sent;        /* of the request (plain TCP) */
    uint64_t retry_at;  /* C_DOWN: when to connect again */
    uint32_t ev;        /* epoll interest */
    char *buf;          /* bytes read and not yet parsed */
    size_t len;
    bool head;          /* the head is parsed */
    bool close_after;   /* the server ends the connection after this response */
    http_body mode;     /* how the body is delimited (lib/proxy's HTTP/1.1 codec) */
    http_chunked ck;    /* HTTP_BODY_CHUNKED */
    uint64_t left;      /* HTTP_BODY_LENGTH: body bytes still to come */
    uint64_t got;       /* body bytes so far */
    int code;
} conn;

typedef struct {
    /* target */
    bool tls;
    char host[256];     /* as in the URL (brackets off) */
    char authority[300];
    char port[8];
    char *path;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    SSL_CTX *ctx;
    /* request */
    char *req;
    size_t req_len, body_len;
    const char *method, *url;
    /* schedule */
    long rate, total;
    uint64_t t0, timeout;
    hit *hits;
    long next;          /* the next tick to take */
    long queued;        /* the oldest taken hit not yet sent (hits [queued, next) wait) */
    long done;
    int epfd, tfd;
    conn *conns;
    int nconns;
    int last_err;       /* why the last connection attempt failed (setup's message) */
    char last_detail[256];
} lg;

static void usage(void)
{
    fputs("usage: mm-loadgen --url URL --rate N --duration S [--connections C] [--body FILE]\n"
          "                  [--method M] [--header 'Name: value']... [--insecure | --cacert FILE]\n"
          "                  [--timeout S]\n",
          stderr);
}

/* ---- the target --------------------------------------------------------------------- */

static bool parse_url(lg *g, const char *url)
{
    const char *p, *auth, *slash, *host, *hend, *port = NULL;
    size_t n;

    if (!strncmp(url, "https://", 8))
        g->tls = true, auth = url + 8;
    else if (!strncmp(url, "http://", 7))
        g->tls = false, auth = url + 7;
    else
        return fprintf(stderr, "mm-loadgen: --url %s: the scheme must be http:// or https://\n", url), false;
    slash = strchr(auth, '/');
    n = slash ? (size_t)(slash - auth) : strlen(auth);
    if (!n || n >= sizeof(g->authority))
        return fprintf(stderr, "mm-loadgen: --url %s: no host, or a host too long\n", url), false;
    memcpy(g->authority, auth, n);
    g->authority[n] = '\0';
    host = g->authority;
    if (*host == '[') {
        hend = strchr(host, ']');
        if (!hend)
            return fprintf(stderr, "mm-loadgen: --url %s: an IPv6 address without ']'\n", url), false;
        p = hend + 1;
        host++;
    } else {
        hend = strchr(host, ':');
        p = hend ? hend : host + n;
    }
    if (*p == ':')
        port = p + 1;
    else if (*p)
        return fprintf(stderr, "mm-loadgen: --url %s: unexpected '%c' after the host\n", url, *p), false;
    if ((size_t)(hend ? hend - host : (long)n) >= sizeof(g->host) || hend == host)
        return fprintf(stderr, "mm-loadgen: --url %s: no host\n", url), false;
    n = hend ? (size_t)(hend - host) : strlen(host);
    memcpy(g->host, host, n);
    g->host[n] = '\0';
    long pn;
    if (port && !mm_parse_long(port, 1, 65535, &pn))
        return fprintf(stderr, "mm-loadgen: --url %s: the port must be 1-65535\n", url), false;
    snprintf(g->port, sizeof(g->port), "%s", port ? port : g->tls ? "443" : "80");
    if (slash && strpbrk(slash, " \t\r\n"))
        return fprintf(stderr, "mm-loadgen: --url %s: white space in the path\n", url), false;
    g->path = mm_strdup(slash ? slash : "/");
    if (!g->path)
        return fprintf(stderr, "mm-loadgen: out of memory\n"), false;

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(g->host, g->port, &hints, &ai);
    if (rc)
        return fprintf(stderr, "mm-loadgen: --url %s: %s: %s\n", url, g->host, gai_strerror(rc)), false;
    memcpy(&g->addr, ai->ai_addr, ai->ai_addrlen);
    g->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return true;
}

static bool tls_setup(lg *g, bool insecure, const char *cacert)
{
    g->ctx = SSL_CTX_new(TLS_client_method());
    if (!g->ctx || !SSL_CTX_set_min_proto_version(g->ctx, TLS1_2_VERSION))
        return fprintf(stderr, "mm-loadgen: TLS: cannot create a context\n"), false;
    if (insecure) {
        SSL_CTX_set_verify(g->ctx, SSL_VERIFY_NONE, NULL);
        return true;
    }
    SSL_CTX_set_verify(g->ctx, SSL_VERIFY_PEER, NULL);
    if (cacert ? !SSL_CTX_load_verify_locations(g->ctx, cacert, NULL)
               : !SSL_CTX_set_default_verify_paths(g->ctx)) {
        fprintf(stderr, "mm-loadgen: --cacert %s: cannot load it: %s\n", cacert ? cacert : "(system)",
                ERR_reason_error_string(ERR_get_error()));
        return false;
    }
    return true;
}

static bool build_request(lg *g, const char *method, char **headers, int nheaders,
                          const char *body_file)
{
    mm_buf b;
    mm_errbuf eb = {{0}};
    char *body = NULL;
    size_t blen = 0;
    bool ok = false;

    mm_buf_init(&b, 0);
    if (body_file && mm_read_file(body_file, 64u << 20, &body, &blen, &eb) != MM_OK) {
        fprintf(stderr, "mm-loadgen: --body: %s\n", eb.msg);
        goto out;
    }
    g->method = method ? method : body_file ? "POST" : "GET";
    if (mm_buf_printf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", g->method, g->path, g->authority) != MM_OK)
        goto oom;
    for (int i = 0; i < nheaders; i++) {
        const char *colon = strchr(headers[i], ':');
        if (!colon || colon == headers[i] || strpbrk(headers[i], "\r\n")) {
            fprintf(stderr, "mm-loadgen: --header '%s': not 'Name: value'\n", headers[i]);
            goto out;
        }
        if (mm_buf_printf(&b, "%s\r\n", headers[i]) != MM_OK)
            goto oom;
    }
    if ((body_file || !strcmp(g->method, "POST") || !strcmp(g->method, "PUT")) &&
        mm_buf_printf(&b, "Content-Length: %zu\r\n", blen) != MM_OK)
        goto oom;
    if (mm_buf_append(&b, "\r\n", 2) != MM_OK || mm_buf_append(&b, body, blen) != MM_OK)
        goto oom;
    g->body_len = blen;
    g->req_len = b.len;
    g->req = mm_buf_steal(&b, NULL);
    ok = g->req != NULL;
    if (!ok)
        goto oom;
    goto out;
oom:
    fputs("mm-loadgen: out of memory\n", stderr);
out:
    mm_free(body);
    mm_buf_free(&b);
    return ok;
}

/* ---- connections ---------------------------------------------------------------------- */

static void watch(lg *g, conn *c, uint32_t ev)
{
    if (c->ev == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(g->epfd, c->ev ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e);
    c->ev = ev;
}

static void conn_close(lg *g, conn *c, uint64_t now)
{
    if (c->ssl)
        SSL_free(c->ssl); /* no close_notify: the peer sees the socket close */
    if (c->fd >= 0) {
        epoll_ctl(g->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->ssl = NULL;
    c->fd = -1;
    c->ev = 0;
    c->st = C_DOWN;
    c->len = 0;
    c->retry_at = now;
}

static void finish(lg *g, conn *c, int err, uint64_t now)
{
    hit *h = &g->hits[c->hit];
    h->lat = now - h->ts;
    h->err = err;
    h->code = err ? 0 : c->code;
    h->in = c->got;
    c->hit = -1;
    g->done++;
}

/* A connection failed: its hit (if any) gets `err`, it reopens after a pause when it never
 * came up (a refusing server is not hammered), at once otherwise. */
static void conn_fail(lg *g, conn *c, int err, uint64_t now)
{
    bool was_up = c->st >= C_IDLE;
    if (c->hit >= 0)
        finish(g, c, err, now);
    conn_close(g, c, now);
    c->retry_at = was_up ? now : now + RETRY_NS;
    g->last_err = err;
}

static void handshake(lg *g, conn *c, uint64_t now)
{
    ERR_clear_error();
    int rc = SSL_connect(c->ssl);
    if (rc == 1) {
        c->st = C_IDLE;
        watch(g, c, EPOLLIN); /* a close or stray bytes while idle */
        return;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        watch(g, c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
        return;
    }
    long v = SSL_get_verify_result(c->ssl);
    snprintf(g->last_detail, sizeof(g->last_detail), "%s",
             v != X509_V_OK ? X509_verify_cert_error_string(v)
             : ERR_peek_error() ? ERR_reason_error_string(ERR_peek_error())
                                : "the peer closed the connection");
    conn_fail(g, c, E_TLS, now);
}

static void connected(lg *g, conn *c, uint64_t now)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
        snprintf(g->last_detail, sizeof(g->last_detail), "%s", strerror(soerr ? soerr : errno));
        conn_fail(g, c, E_CONNECT, now);
        return;
    }
    if (!g->tls) {
        c->st = C_IDLE;
        watch(g, c, EPOLLIN);
        return;
    }
    unsigned char a6[16];
    c->ssl = SSL_new(g->ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
        snprintf(g->last_detail, sizeof(g->last_detail), "out of memory");
        conn_fail(g, c, E_TLS, now);
        return;
    }
    /* the name or address the certificate must carry; SNI for a name only (RFC 6066) */
    if (inet_pton(AF_INET, g->host, a6) == 1 || inet_pton(AF_INET6, g->host, a6) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), g->host);
    } else {
        SSL_set_tlsext_host_name(c->ssl, g->host);
        SSL_set1_host(c->ssl, g->host);
    }
    c->st = C_HANDSHAKE;
    handshake(g, c, now);
}

static void conn_open(lg *g, conn *c, uint64_t now)
{
    int one = 1;
    c->fd = socket(g->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(g->last_detail, sizeof(g->last_detail), "socket: %s", strerror(errno));
        conn_fail(g, c, E_CONNECT, now);
        return;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->st = C_CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&g->addr, g->addrlen) == 0) {
        connected(g, c, now);
    } else if (errno == EINPROGRESS) {
        watch(g, c, EPOLLOUT);
    } else {
        snprintf(g->last_detail, sizeof(g->last_detail), "%s", strerror(errno));
        conn_fail(g, c, E_CONNECT, now);
    }
}

/* ---- requests and responses ----------------------------------------------------------- */

/* Writes what is left of the request; false when the connection failed. */
static bool send_more(lg *g, conn *c, uint64_t now)
{
    if (g->tls) {
        ERR_clear_error();
        int rc = SSL_write(c->ssl, g->req, (int)g->req_len); /* all of it, or a retry */
        if (rc > 0) {
            c->sent = g->req_len;
        } else {
            int e = SSL_get_error(c->ssl, rc);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                watch(g, c, e == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN);
                return true;
            }
            conn_fail(g, c, E_IO, now);
            return false;
        }
    } else {
        while (c->sent < g->req_len) {
            ssize_t w = send(c->fd, g->req + c->sent, g->req_len - c->sent, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && errno == EAGAIN) {
                watch(g, c, EPOLLOUT);
                return true;
            }
            if (w <= 0) {
                conn_fail(g, c, E_IO, now);
                return false;
            }
            c->sent += (size_t)w;
        }
    }
    c->st = C_READING;
    watch(g, c, EPOLLIN);
    return true;
}

static void dispatch(lg *g, conn *c, uint64_t now)
{
    c->hit = g->queued++;
    c->sent = 0;
    c->len = 0;
    c->head = false;
    c->got = 0;
    c->code = 0;
    c->st = C_WRITING;
    send_more(g, c, now);
}

/* Parses what c->buf holds with lib/proxy's HTTP/1.1 codec (the sidecar's own, fuzzed by
 * fuzz_http_response); 1: the response is complete, 0: more to come, -1: malformed. */
static int parse(lg *g, conn *c)
{
    size_t at = 0;
    if (!c->head) {
        http_resp_head h;
        http_framing f;
        int end = http_parse_response(c->buf, c->len, HEAD_MAX, &h);
        if (end <= 0)
            return end < 0 ? -1 : 0;
        /* no Expect was sent: an interim answer is not expected */
        if (h.status < 200 || http_response_framing(&h, !strcmp(g->method, "HEAD"), &f) < 0)
            return -1;
        at = (size_t)end;
        c->head = true;
        c->code = h.status;
        c->mode = f.kind;
        c->left = f.length;
        c->close_after = !f.keep_alive;
        if (f.kind == HTTP_BODY_CHUNKED)
            http_chunked_init(&c->ck);
    }
    int done = 0;
    switch (c->mode) {
    case HTTP_BODY_NONE:
        done = 1;
        break;
    case HTTP_BODY_LENGTH: {
        uint64_t take = c->len - at < c->left ? c->len - at : c->left;
        at += take, c->left -= take, c->got += take;
        done = c->left == 0;
        break;
    }
    case HTTP_BODY_CLOSE:
        c->got += c->len - at;
        at = c->len;
        break;
    case HTTP_BODY_CHUNKED:
        for (;;) {
            const char *data;
            size_t used = 0, dlen = 0;
            http_chunk_res r = http_chunked_step(&c->ck, c->buf + at, c->len - at, &used,
                                                 &data, &dlen);
            at += used;
            if (r == HTTP_CHUNK_ERROR)
                return -1;
            if (r == HTTP_CHUNK_DATA) {
                c->got += dlen;
                continue;
            }
            done = r == HTTP_CHUNK_DONE;
            break;
        }
        break;
    }
    if (done && at < c->len)
        return -1; /* bytes after the response: nothing else was asked */
    memmove(c->buf, c->buf + at, c->len - at);
    c->len -= at;
    return done;
}

static void on_readable(lg *g, conn *c, uint64_t now)
{
    for (;;) {
        ssize_t r;
        char *dst = c->buf + c->len;
        size_t room = BUF_SZ - c->len; /* parse keeps at most HEAD_MAX: never 0 */
        if (g->tls) {
            ERR_clear_error();
            int rc = SSL_read(c->ssl, dst, (int)room);
            if (rc <= 0) {
                int e = SSL_get_error(c->ssl, rc);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    if (c->st == C_READING || c->st == C_IDLE)
                        watch(g, c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT | EPOLLIN);
                    return;
                }
                r = e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? 0 : -1;
            } else {
                r = rc;
            }
        } else {
            r = recv(c->fd, dst, room, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && errno == EAGAIN)
                return;
        }
        if (r <= 0) { /* closed */
            if (c->st == C_READING && c->head && c->mode == HTTP_BODY_CLOSE) {
                finish(g, c, E_NONE, now);
                conn_close(g, c, now);
            } else if (c->hit >= 0) {
                conn_fail(g, c, r == 0 ? E_CLOSED : E_IO, now);
            } else {
                conn_close(g, c, now); /* an idle keep-alive connection the server ended */
            }
            return;
        }
        if (c->st != C_READING) { /* bytes nobody asked for */
            conn_fail(g, c, E_RESPONSE, now);
            return;
        }
        c->len += (size_t)r;
        int p = parse(g, c);
        if (p < 0) {
            conn_fail(g, c, E_RESPONSE, now);
            return;
        }
        if (p > 0) {
            finish(g, c, E_NONE, now);
            if (c->close_after) {
                conn_close(g, c, now);
            } else {
                c->st = C_IDLE;
                watch(g, c, EPOLLIN);
            }
            return;
        }
    }
}

static void on_event(lg *g, conn *c, uint32_t ev, uint64_t now)
{
    switch (c->st) {
    case C_CONNECTING:
        connected(g, c, now);
        break;
    case C_HANDSHAKE:
        handshake(g, c, now);
        break;
    case C_WRITING:
        send_more(g, c, now);
        break;
    case C_IDLE:
    case C_READING:
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP) || (g->tls && c->st == C_READING))
            on_readable(g, c, now);
        break;
    case C_DOWN:
        break;
    }
}

/* ---- the run ------------------------------------------------------------------------- */

static uint64_t due(const lg *g, long n)
{
    uint64_t k = (uint64_t)n + 1, r = (uint64_t)g->rate;
    return g->t0 + k / r * 1000000000u + k % r * 1000000000u / r; /* exact to the ns */
}

static void arm(lg *g, uint64_t at)
{
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(at / 1000000000u),
                                          .tv_nsec = (long)(at % 1000000000u)}};
    timerfd_settime(g->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* One pass of the loop's bookkeeping: ticks taken, hits sent, timeouts, connections
 * reopened. Returns the next time it must run by (0: when an event comes). */
static uint64_t step(lg *g, uint64_t now, bool pacing)
{
    uint64_t wake = 0;
    if (pacing) {
        while (g->next < g->total && due(g, g->next) <= now)
            g->hits[g->next++].ts = now;
        /* hits that waited for a connection past the timeout */
        while (g->queued < g->next && now - g->hits[g->queued].ts >= g->timeout) {
            hit *h = &g->hits[g->queued++];
            h->lat = now - h->ts, h->err = E_TIMEOUT, h->code = 0;
            g->done++;
        }
    }
    for (int i = 0; i < g->nconns; i++) {
        conn *c = &g->conns[i];
        if (c->st == C_DOWN && c->retry_at <= now)
            conn_open(g, c, now);
        if (c->st == C_DOWN)
            wake = !wake || c->retry_at < wake ? c->retry_at : wake;
        if (c->hit >= 0 && now - g->hits[c->hit].ts >= g->timeout)
            conn_fail(g, c, E_TIMEOUT, now);
        else if (c->hit >= 0) {
            uint64_t t = g->hits[c->hit].ts + g->timeout;
            wake = !wake || t < wake ? t : wake;
        }
        if (pacing && c->st == C_IDLE && g->queued < g->next)
            dispatch(g, c, now);
    }
    if (pacing && g->queued < g->next) {
        uint64_t t = g->hits[g->queued].ts + g->timeout;
        wake = !wake || t < wake ? t : wake;
    }
    return wake;
}

static int wait_events(lg *g, uint64_t wake, uint64_t now, bool *tick)
{
    struct epoll_event ev[64];
    int ms = !wake ? -1 : wake <= now ? 0 : (int)((wake - now + 999999) / 1000000);
    int n = epoll_wait(g->epfd, ev, 64, ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    now = mm_now_ns();
    for (int i = 0; i < n; i++) {
        if (!ev[i].data.ptr) {
            uint64_t x;
            if (read(g->tfd, &x, sizeof(x)) < 0 && errno != EAGAIN)
                return -1;
            *tick = true;
            continue;
        }
        on_event(g, ev[i].data.ptr, ev[i].events, now);
    }
    return 0;
}

static bool setup(lg *g)
{
    uint64_t start = mm_now_ns();
    for (;;) {
        uint64_t now = mm_now_ns();
        int up = 0;
        uint64_t wake = step(g, now, false);
        /* every connection opened within --timeout, even from a server that never answers */
        if (!wake || wake > start + g->timeout + 1)
            wake = start + g->timeout + 1;
        for (int i = 0; i < g->nconns; i++)
            up += g->conns[i].st == C_IDLE;
        if (up == g->nconns)
            return true;
        if (now - start > g->timeout || g->last_err) {
            int hs = 0;
            for (int i = 0; i < g->nconns; i++)
                hs += g->conns[i].st == C_HANDSHAKE;
            if (!g->last_err)
                snprintf(g->last_detail, sizeof(g->last_detail),
                         "no answer (%d still connecting, %d in the TLS handshake)",
                         g->nconns - up - hs, hs);
            fprintf(stderr, "mm-loadgen: %s:%s: %d of %d connections up after %.1f s: %s%s%s\n",
                    g->host, g->port, up, g->nconns, (double)(now - start) / 1e9,
                    g->last_err ? err_text[g->last_err] : "",
                    g->last_err && g->last_detail[0] ? ": " : "", g->last_detail);
            return false;
        }
        bool tick = false;
        if (wait_events(g, wake, now, &tick) < 0) {
            perror("mm-loadgen: epoll_wait");
            return false;
        }
    }
}

/* A CSV field, quoted when it must be (RFC 4180). */
static void csv_field(const char *v)
{
    if (!strpbrk(v, ",\"\r\n")) {
        fputs(v, stdout);
        return;
    }
    putchar('"');
    for (; *v; v++) {
        if (*v == '"')
            putchar('"');
        putchar(*v);
    }
    putchar('"');
}

static void print_results(const lg *g)
{
    uint64_t off; /* CLOCK_MONOTONIC to Unix time, for timestamps like vegeta's */
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    off = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec - mm_now_ns();
    for (long n = 0; n < g->total; n++) {
        const hit *h = &g->hits[n];
        printf("%llu,%d,%llu,%zu,%llu,%s,,,%ld,%s,", (unsigned long long)(h->ts + off),
               h->code, (unsigned long long)h->lat, g->body_len, (unsigned long long)h->in,
               err_text[h->err], n, g->method);
        csv_field(g->url);
        fputs(",\n", stdout);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},     {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 'd'}, {"connections", required_argument, NULL, 'c'},
        {"body", required_argument, NULL, 'b'},    {"method", required_argument, NULL, 'm'},
        {"header", required_argument, NULL, 'H'},  {"insecure", no_argument, NULL, 'k'},
        {"cacert", required_argument, NULL, 'C'},  {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    lg g = {.epfd = -1, .tfd = -1};
    const char *body = NULL, *cacert = NULL, *method = NULL;
    char *headers[64];
    int nheaders = 0, opt, status = 2;
    long duration = 0, conns = 16, timeout = 10;
    bool insecure = false;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'u': g.url = optarg; break;
        case 'r':
            if (!mm_parse_long(optarg, 1, 1000000, &g.rate))
                return fprintf(stderr, "mm-loadgen: --rate %s: a whole number of requests per second, 1-1000000\n", optarg), 2;
            break;
        case 'd':
            if (!mm_parse_long(optarg, 1, 86400, &duration))
                return fprintf(stderr, "mm-loadgen: --duration %s: whole seconds, 1-86400\n", optarg), 2;
            break;
        case 'c':
            if (!mm_parse_long(optarg, 1, CONNS_MAX, &conns))
                return fprintf(stderr, "mm-loadgen: --connections %s: 1-%d\n", optarg, CONNS_MAX), 2;
            break;
        case 't':
            if (!mm_parse_long(optarg, 1, 3600, &timeout))
                return fprintf(stderr, "mm-loadgen: --timeout %s: whole seconds, 1-3600\n", optarg), 2;
            break;
        case 'b': body = optarg; break;
        case 'm': method = optarg; break;
        case 'H':
            if (nheaders == (int)MM_ARRAY_LEN(headers))
                return fprintf(stderr, "mm-loadgen: --header: at most %zu\n", MM_ARRAY_LEN(headers)), 2;
            headers[nheaders++] = optarg;
            break;
        case 'k': insecure = true; break;
        case 'C': cacert = optarg; break;
        default: usage(); return 2;
        }
    }
    if (optind < argc || !g.url || !g.rate || !duration) {
        if (optind < argc)
            fprintf(stderr, "mm-loadgen: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "mm-loadgen: --url, --rate and --duration are required\n");
        usage();
        return 2;
    }
    if (insecure && cacert)
        return fprintf(stderr, "mm-loadgen: --insecure and --cacert: one or the other\n"), 2;
    if (method && (!*method || strpbrk(method, " \r\n")))
        return fprintf(stderr, "mm-loadgen: --method '%s': one word\n", method), 2;
    if (g.rate * duration > HITS_MAX)
        return fprintf(stderr, "mm-loadgen: --rate x --duration: at most %ld hits\n", HITS_MAX), 2;
    g.total = g.rate * duration;
    g.timeout = (uint64_t)timeout * 1000000000u;
    if (!parse_url(&g, g.url) || !build_request(&g, method, headers, nheaders, body))
        goto out;
    status = 1;
    if (g.tls && !tls_setup(&g, insecure, cacert))
        goto out;
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL); /* the timer fires at the slot, not up to 50 us after */
    g.hits = mm_calloc((size_t)g.total, sizeof(*g.hits));
    g.conns = mm_calloc((size_t)conns, sizeof(*g.conns));
    if (!g.hits || !g.conns) {
        fputs("mm-loadgen: out of memory\n", stderr);
        goto out;
    }
    g.nconns = (int)conns;
    for (int i = 0; i < g.nconns; i++) {
        g.conns[i] = (conn){.fd = -1, .hit = -1, .st = C_DOWN};
        if (!(g.conns[i].buf = mm_malloc(BUF_SZ))) {
            fputs("mm-loadgen: out of memory\n", stderr);
            goto out;
        }
    }
    g.epfd = epoll_create1(EPOLL_CLOEXEC);
    g.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event te = {.events = EPOLLIN, .data.ptr = NULL};
    if (g.epfd < 0 || g.tfd < 0 || epoll_ctl(g.epfd, EPOLL_CTL_ADD, g.tfd, &te) < 0) {
        perror("mm-loadgen: epoll/timerfd");
        goto out;
    }
    if (!setup(&g))
        goto out;

    g.t0 = mm_now_ns();
    uint64_t armed = 0;
    while (g.done < g.total) {
        uint64_t now = mm_now_ns();
        uint64_t wake = step(&g, now, true);
        if (g.next < g.total && due(&g, g.next) != armed)
            arm(&g, armed = due(&g, g.next));
        bool tick = false;
        if (wait_events(&g, wake, now, &tick) < 0) {
            perror("mm-loadgen: epoll_wait");
            goto out;
        }
    }
    print_results(&g);
    if (fflush(stdout) || ferror(stdout)) {
        perror("mm-loadgen: stdout");
        goto out;
    }
    status = 0;
out:
    for (int i = 0; g.conns && i < g.nconns; i++) {
        if (g.conns[i].ssl)
            SSL_free(g.conns[i].ssl);
        if (g.conns[i].fd >= 0)
            close(g.conns[i].fd);
        mm_free(g.conns[i].buf);
    }
    if (g.epfd >= 0)
        close(g.epfd);
    if (g.tfd >= 0)
        close(g.tfd);
    SSL_CTX_free(g.ctx);
    mm_free(g.conns);
    mm_free(g.hits);
    mm_free(g.req);
    mm_free(g.path);
    return status;
}
