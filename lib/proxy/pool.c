/* lib/proxy/pool.c: connections to the app. An upstream connection is reused only by the
 * client connection that used it before (kept in conn.idle_up), never by another client:
 * bytes an app sends late, after a response was complete, can then at worst reach the
 * client whose exchange caused them, through the same masking, and never someone else.
 * It is kept only when its response was read to the end. Also the socket helpers the other
 * files share. */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

void set_nodelay(int fd)
{
    int one = 1;
    /* best effort: a proxy that batches small writes adds latency, but works without it */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool ep_set(worker *w, int fd, void *tag, uint32_t *cur, uint32_t want)
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

bool flush_fd(int fd, mm_buf *b, size_t *off, uint64_t *last_io, uint64_t now)
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

bool send_through(int fd, mm_buf *b, size_t *off, const struct iovec *v, int n,
                  uint64_t *last_io, uint64_t now)
{
    struct iovec iov[SEND_THROUGH_MAX + 1];
    bool queued = *off < b->len;
    int k = 0;
    ssize_t r;

    if (n > SEND_THROUGH_MAX)
        return false;
    if (queued)
        iov[k++] = (struct iovec){b->data + *off, b->len - *off};
    for (int i = 0; i < n; i++)
        if (v[i].iov_len)
            iov[k++] = v[i];
    if (!k)
        return true;
    do
        r = sendmsg(fd, &(struct msghdr){.msg_iov = iov, .msg_iovlen = (size_t)k}, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    /* on an error nothing went: all of it is queued, and flush_fd meets the error */
    size_t sent = r > 0 ? (size_t)r : 0;
    if (sent)
        *last_io = now;
    for (int i = 0; i < k; i++) {
        size_t take = sent < iov[i].iov_len ? sent : iov[i].iov_len;
        sent -= take;
        if (i == 0 && queued) {
            if ((*off += take) == b->len)
                b->len = *off = 0;
            continue;
        }
        if (take == iov[i].iov_len)
            continue;
        /* what waits is kept at the front: the buffer then stays near OUT_HIGH */
        if (*off > 0 && *off >= b->len / 2) {
            memmove(b->data, b->data + *off, b->len - *off);
            b->len -= *off;
            *off = 0;
        }
        if (mm_buf_append(b, (const char *)iov[i].iov_base + take, iov[i].iov_len - take) !=
            MM_OK)
            return false;
    }
    return true;
}

/* Closes now, frees after the event batch: a later event of the batch may still name it. */
void up_close(upconn *u)
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

void free_dead_up(worker *w)
{
    while (w->dead_up) {
        upconn *u = w->dead_up;
        w->dead_up = u->next;
        mm_free(u);
    }
}

void pool_put(conn *c, upconn *u)
{
    worker *w = u->w;

    if (atomic_load(&w->p->draining) || c->idle_up) {
        up_close(u);
        return;
    }
    u->c = NULL;
    u->owner = c;
    u->reused = true;
    u->idle_since = w->now;
    /* idle: readable means the app closed it (or sent garbage); either way it goes */
    if (!ep_set(w, u->fd, u, &u->events, EPOLLIN)) {
        up_close(u);
        return;
    }
    c->idle_up = u;
}

void pool_drop(conn *c)
{
    if (c->idle_up) {
        c->idle_up->owner = NULL;
        up_close(c->idle_up);
        c->idle_up = NULL;
    }
}

void count_unsolicited(worker *w, size_t n)
{
    mm_metric_add(w->p->met.upstream_errors, (const char *const[]){"unsolicited"}, 1);
    mm_metric_add(w->p->met.unsolicited, NULL, (double)n);
    mm_log(MM_LOG_WARN, "upstream sent bytes no request asked for; connection closed", NULL);
}

void pool_readable(worker *w, upconn *u)
{
    ssize_t n = recv(u->fd, w->scratch, READ_CHUNK, MSG_DONTWAIT);

    if (n > 0)
        count_unsolicited(w, (size_t)n);
    if (u->owner)
        pool_drop(u->owner);
    else
        up_close(u);
}

/* Whether a pooled connection is still clean: nothing unread, not closed. Bytes waiting
 * here would otherwise be read as the next request's response. */
static bool pool_clean(worker *w, upconn *u)
{
    char b;
    ssize_t n = recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return true;
    if (n > 0) {
        int avail = 0;
        (void)ioctl(u->fd, FIONREAD, &avail);
        count_unsolicited(w, avail > 0 ? (size_t)avail : 1);
    }
    return false;
}

/* A pooled connection, else a new one being connected; NULL when the connect failed at
 * once (refused, no descriptors). An idle connection has EPOLLIN registered, so bytes or a
 * close that came before this batch's epoll_wait are among its events: one that no event
 * of the batch named is taken without the peek (a syscall per request) when the request
 * can be retried on a fresh connection (a bodiless one, its head kept: up_failed), which
 * also covers a close that comes after epoll_wait. Otherwise it is peeked at as before. */
upconn *up_get(worker *w, conn *c, bool fresh)
{
    mm_proxy *p = w->p;
    upconn *u = c->idle_up;
    int fd;

    if (u) {
        c->idle_up = NULL;
        u->owner = NULL;
        if (!fresh && ((u->seen != w->batch && c->reqhead.len > 0) || pool_clean(w, u)))
            return u;
        up_close(u);
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

void pool_sweep(worker *w, bool all)
{
    for (conn *c = w->conns; c; c = c->next)
        if (c->idle_up && (all || w->now - c->idle_up->idle_since >
                                      (uint64_t)w->p->cfg.pool_idle_ms * 1000000ull))
            pool_drop(c);
}
