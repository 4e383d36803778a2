/* lib/proxy/worker.c: a worker's event loop. Sockets are non-blocking and level-triggered;
 * after every event conn_sync() recomputes what each socket waits for, which keeps flow
 * control (a slow reader stops the other side) in one place. Also accept, the timeouts
 * (sweep) and the worker's birth, drain and death. */
#include "proxy/proxy_int.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define LINGER_NS (2ull * 1000000000ull)
#define SWEEP_NS (200ull * 1000000ull)

static void conn_sync(conn *c)
{
    worker *w = c->w;
    uint32_t ce = 0, ue = 0;

    if (c->fd < 0)
        return;
    if (c->st == CS_TUNNEL) {
        ws_sync(c);
        return;
    }
    if (c->st == CS_H2) {
        if (h2_defer(c)) /* once per batch: sync_h2 */
            return;
        h2_sync(c);
        if (c->st == CS_H2 || c->fd < 0) /* else its session ended: a lingering close */
            return;
    }
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
    if (client_pending(c) > 0)
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
                               (c->rs == RS_BODY && pending(&c->out, c->out_off) < OUT_HIGH &&
                                c->spl_n == 0)))
            ue |= EPOLLIN;
        if (!ep_set(w, u->fd, u, &u->events, ue)) {
            up_failed(c, "connect");
            if (c->fd >= 0)
                conn_sync(c);
        }
    }
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
        conn *c = conn_new(w, fd);
        if (!c) {
            close(fd);
            continue;
        }
        set_nodelay(fd);
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
    if (c->st == CS_TUNNEL) /* quiet both ways (peers that ping are never) or stalled */
        return (uint64_t)(pending(&c->out, c->out_off) ? cfg->io_timeout_ms
                                                       : cfg->idle_timeout_ms) * 1000000ull;
    if (c->st == CS_HEAD) {
        if (c->in.len == 0)
            return (uint64_t)cfg->idle_timeout_ms * 1000000ull;
        *since = c->head_start; /* a whole head in this time, however it trickles */
        return (uint64_t)cfg->header_timeout_ms * 1000000ull;
    }
    if (c->up && c->up->connecting)
        return (uint64_t)cfg->connect_timeout_ms * 1000000ull;
    if (client_pending(c) > 0 || !c->req_done)
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
        if (c->st == CS_H2) {
            h2_sweep(c, draining);
        } else if (draining && c->st == CS_HEAD && c->in.len == 0 && pending(&c->out, c->out_off) == 0) {
            conn_close(c);
        } else if (draining && c->st == CS_TUNNEL) {
            ws_going_away(c, "proxy shutting down"); /* a tunnel never ends on its own */
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
            } else if (c->st == CS_TUNNEL) {
                ws_going_away(c, "idle timeout");
            } else if (!c->head_sent && !c->req_done) {
                reply_error(c, 408, "request body timed out", true);
            } else if (!c->head_sent && c->up && c->up->connecting) {
                mm_metric_add(p->met.upstream_errors, (const char *const[]){"connect_timeout"}, 1);
                reply_error(c, 504, "upstream connect timed out", false);
            } else if (!c->head_sent && pending(&c->out, c->out_off) == 0) {
                mm_metric_add(p->met.upstream_errors, (const char *const[]){"timeout"}, 1);
                reply_error(c, 504, "upstream timed out", false);
            } else {
                resp_abort(c, client_pending(c) ? "client stopped reading"
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
    pool_sweep(w, draining); /* idle pooled upstream connections age out */
}

/* The HTTP/2 connections this batch touched, synced once each after its events. */
static void sync_h2(worker *w, conn **dead)
{
    conn *c;

    while ((c = h2_deferred(w))) {
        conn_sync(c);
        if (c->fd < 0 && c->kind == EV_CLIENT) {
            c->kind = 0; /* queued once, as in handle_event */
            c->next = *dead;
            *dead = c;
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
    if (kind == EV_H2S || kind == EV_H2UP) { /* an HTTP/2 client's app side */
        c = h2_app_event(w, ev->data.ptr, ev->events);
        goto done;
    }
    if (kind == EV_UP) {
        upconn *u = ev->data.ptr;
        if (u->fd < 0)
            return;
        if (!u->c) { /* idle in the pool and readable: closed by the app, or junk */
            pool_readable(w, u);
            return;
        }
        c = u->c;
        if (c->fd < 0)
            return;
        if (c->st == CS_TUNNEL) {
            ws_event(c, true, ev->events); /* reads, writes, and the tunnel's end */
            conn_sync(c);
            goto queue;
        }
        if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            if (u->connecting || pending(&c->uout, c->uout_off) > 0)
                up_write(c);
        }
        if (c->fd >= 0 && c->up == u && !u->connecting && (ev->events & EPOLLERR) &&
            c->rs == RS_BODY && (pending(&c->out, c->out_off) >= OUT_HIGH || c->spl_n > 0))
            up_failed(c, "reset"); /* reset while the client is slow: nothing more to read */
        else if (c->fd >= 0 && c->up == u && !u->connecting &&
                 (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            up_read(c);
    } else {
        c = ev->data.ptr;
        if (c->fd < 0)
            return;
        if (c->st == CS_TUNNEL) {
            ws_event(c, false, ev->events);
            conn_sync(c);
            goto queue;
        }
        if (c->st == CS_H2) {
            h2_client_event(c, ev->events);
            goto done;
        }
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
queue:
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
        w->batch++;
        for (int i = 0; i < n; i++) /* app connections with news in this batch (up_get) */
            if (*(int *)evs[i].data.ptr == EV_UP)
                ((upconn *)evs[i].data.ptr)->seen = w->batch;
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
        sync_h2(w, &dead);
        while (dead) {
            conn *d = dead;
            dead = d->next;
            conn_free(d);
        }
        free_dead_up(w);
        h2c_free_dead(w);
        if (!w->listening && (w->n_conns == 0 || w->now >= drain_deadline))
            break;
    }
    /* drained, or out of time: whatever is left is cut */
    while (w->conns) {
        conn *c = w->conns;
        conn_close(c);
        conn_free(c);
    }
    free_dead_up(w);
    h2c_free_dead(w);
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
    if (!(w->scratch = mm_malloc(BODY_READ > READ_CHUNK ? BODY_READ : READ_CHUNK)) ||
        !(w->ztmp = mm_malloc(READ_CHUNK))) {
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
    w->spliced_s = mm_metric_series(p->met.spliced, NULL);
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
