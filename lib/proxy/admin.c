/* lib/proxy/admin.c: the admin listener on its own thread: /healthz, /readyz, /metrics and
 * POST /quitquitquit. One request per connection, each socket with a short timeout, so a
 * stuck scraper delays the next one by at most that and never touches the data path. */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define ADMIN_HEAD_MAX 8192
#define ADMIN_IO_MS 2000

/* Whether the app accepts a TCP connection within timeout_ms. */
bool upstream_answers(const mm_proxy *p, int timeout_ms)
{
    int fd = socket(p->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    bool ok = false;
    struct pollfd pfd;
    int err = 0;
    socklen_t len = sizeof(err);

    if (fd < 0)
        return false;
    if (connect(fd, (const struct sockaddr *)&p->up_addr, p->up_addrlen) == 0) {
        ok = true;
        goto out;
    }
    if (errno != EINPROGRESS)
        goto out;
    pfd.fd = fd;
    pfd.events = POLLOUT;
    if (poll(&pfd, 1, timeout_ms) == 1 &&
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
        ok = true;
out:
    close(fd);
    return ok;
}

static void respond(int fd, int status, const char *ctype, const char *body, size_t blen)
{
    mm_buf b;
    size_t off = 0;

    mm_buf_init(&b, 0);
    if (mm_buf_printf(&b,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      status, http_status_reason(status), ctype, blen) != MM_OK ||
        mm_buf_append(&b, body, blen) != MM_OK)
        goto out;
    while (off < b.len) {
        ssize_t n = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the send timeout passed, or the scraper left */
        off += (size_t)n;
    }
out:
    mm_buf_free(&b);
}

static void handle(mm_proxy *p, int fd)
{
    char buf[ADMIN_HEAD_MAX];
    size_t len = 0;
    http_req_head *h = NULL;
    int r = 0;
    struct timeval tv = {.tv_sec = ADMIN_IO_MS / 1000, .tv_usec = (ADMIN_IO_MS % 1000) * 1000};
    mm_buf body;

    mm_buf_init(&body, 0);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
        goto out;
    if (!(h = mm_malloc(sizeof(*h))))
        goto out;
    while (r == 0 && len < sizeof(buf)) {
        ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        len += (size_t)n;
        r = http_parse_request(buf, len, sizeof(buf), h);
    }
    if (r <= 0) {
        respond(fd, r < 0 ? -r : 431, "application/json", "{\"error\":\"bad request\"}\n", 24);
        goto out;
    }
    bool get = http_token_eq(h->method, h->method_len, "GET") ||
               http_token_eq(h->method, h->method_len, "HEAD");
    size_t tl = h->target_len;
    for (size_t i = 0; i < h->target_len; i++)
        if (h->target[i] == '?') {
            tl = i;
            break;
        }
    if (get && http_token_eq(h->target, tl, "/healthz")) {
        respond(fd, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
    } else if (get && (http_token_eq(h->target, tl, "/readyz") ||
                       http_token_eq(h->target, tl, "/startz"))) {
        /* /startz: the sidecar can mask (a config, not draining); the app is not asked, as
         * the kubelet starts it only once the sidecar has started (postStart, startupProbe) */
        bool startz = http_token_eq(h->target, tl, "/startz");
        snap *s = config_current(p);
        const char *why = NULL;
        if (atomic_load(&p->draining))
            why = "draining";
        else if (!s)
            why = "no valid configuration loaded";
        else if (!startz && !upstream_answers(p, 500))
            why = "the app does not accept connections";
        snap_unref(s);
        if (why) {
            mm_buf_puts(&body, "{\"status\":\"unready\",\"reason\":");
            mm_buf_put_json_str(&body, why, strlen(why));
            mm_buf_puts(&body, "}\n");
            respond(fd, 503, "application/json", mm_buf_cstr(&body), body.len);
        } else {
            respond(fd, 200, "application/json", "{\"status\":\"ready\"}\n", 19);
        }
    } else if (get && http_token_eq(h->target, tl, "/metrics")) {
        if (mm_metrics_render(p->met.reg, &body) != MM_OK)
            respond(fd, 500, "application/json", "{\"error\":\"out of memory\"}\n", 26);
        else
            respond(fd, 200, MM_METRICS_CONTENT_TYPE, mm_buf_cstr(&body), body.len);
    } else if (http_token_eq(h->method, h->method_len, "POST") &&
               http_token_eq(h->target, tl, "/quitquitquit")) {
        respond(fd, 200, "application/json", "{\"status\":\"draining\"}\n", 22);
        mm_log(MM_LOG_INFO, "quitquitquit: draining", NULL);
        mm_proxy_stop(p);
    } else {
        respond(fd, 404, "application/json", "{\"error\":\"not found\"}\n", 22);
    }
out:
    mm_buf_free(&body);
    mm_free(h);
}

void *admin_main(void *arg)
{
    mm_proxy *p = arg;
    struct pollfd pfd = {.fd = p->admin_fd, .events = POLLIN};

    /* runs until the workers have drained: /readyz says "draining" meanwhile */
    while (atomic_load(&p->stop_flag) < 2) {
        int n = poll(&pfd, 1, 100);
        if (n < 0 && errno != EINTR) {
            mm_log(MM_LOG_ERROR, "admin poll failed", "error", strerror(errno), NULL);
            break;
        }
        if (n <= 0)
            continue;
        int fd = accept4(p->admin_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        handle(p, fd);
        close(fd);
    }
    return NULL;
}
