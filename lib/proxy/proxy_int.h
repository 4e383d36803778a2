/* lib/proxy/proxy_int.h: what the files of lib/proxy share. The HTTP/1.1 codec has its own
 * header (http1.h). */
#ifndef MM_PROXY_INT_H
#define MM_PROXY_INT_H

#include "proxy/body.h"
#include "proxy/http1.h"
#include "proxy/ws.h"

/* ---- the proxy's shared state --------------------------------------------------------- */

#include "common/common.h"
#include "mask/mask.h"
#include "metrics/metrics.h"
#include "proxy/proxy.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* One loaded configuration: immutable once published; a request holds a reference from
 * its head to the end of its response, so a reload never changes an exchange midway. */
typedef struct snap {
    atomic_long refs;
    uint64_t gen;
    mm_masker *masker; /* NULL: no policy selects this pod, bodies pass through */
    bool resp;         /* masking applies to responses */
    bool req;          /* ... to requests */
    mm_pbdesc **pb;    /* the selected policies' spec.grpc descriptor sets, in policy order */
    size_t n_pb;
} snap;

snap *snap_ref(snap *s);
void snap_unref(snap *s);
/* The descriptor set of the first selected policy whose set holds gRPC method `path`
 * ("/pkg.Service/Method"); NULL when none does (the method is unknown: onError). */
const mm_pbdesc *snap_grpc(const snap *s, const char *path, size_t len);

typedef struct worker worker;

/* Metric families, registered once in mm_proxy_new. */
typedef struct {
    mm_metrics *reg;
    mm_metric *requests;     /* {code} */
    mm_metric *bytes;        /* {direction, stage}: body bytes before (in) and after (out) */
    mm_metric *masked;       /* {policy, rule, detector, applied} */
    mm_metric *parse_errors; /* {direction} */
    mm_metric *reloads;      /* {result} */
    mm_metric *duration;     /* histogram */
    mm_metric *upstream_errors; /* {reason} */
    mm_metric *unsolicited;     /* bytes from the app no request asked for */
    mm_metric *h2_refused;      /* {reason}: HTTP/2 connections cut for abuse */
    mm_metric *connections;  /* gauge */
    mm_metric *config_gen;   /* gauge: generation of the loaded config, 0 none */
    mm_metric *ws_messages;  /* {direction, result}: WebSocket data messages */
    mm_metric *spliced;      /* response body bytes moved by splice(2), never copied to us */
} proxy_metrics;

struct mm_proxy {
    mm_proxy_config cfg; /* strings below are owned copies */
    char *s_listen, *s_admin, *s_upstream, *s_policies, *s_labels, *s_keys;
    struct sockaddr_storage up_addr;
    socklen_t up_addrlen;
    struct sockaddr_storage listen_addr;
    socklen_t listen_addrlen;
    int port, admin_port;
    int admin_fd;
    int ctl_fd;            /* eventfd waking the control loop (stop, reload) */
    atomic_int stop_flag;
    atomic_int reload_flag;
    atomic_int draining;

    pthread_mutex_t snap_lock; /* guards cur and gen */
    snap *cur;                 /* NULL until a configuration loads */
    uint64_t gen;
    uint64_t watch_sig;        /* a hash of what the watched files looked like when loaded */
    pthread_mutex_t files_lock; /* guards pb_files */
    mm_buf pb_files;           /* the descriptor set files the loaded policies name, each
                                  NUL-terminated: watched beside the policies */
    pthread_mutex_t reload_lock; /* one reload at a time */

    int n_workers;
    worker **workers;
    pthread_t admin_thread;
    bool admin_started;
    proxy_metrics met;
};

/* ---- workers, connections, exchanges ---------------------------------------------------
 * Each worker owns an epoll instance, a SO_REUSEPORT listener, its client connections and a
 * pool of idle upstream connections; nothing is shared between workers except the published
 * config snapshot and the metrics registry (atomics). The files, each calling only those
 * listed before it:
 *   http1.c     the HTTP/1.1 codec (http1.h)
 *   body.c      the body pipe: framing, decoding, masking (body.h)
 *   pool.c      upstream connections and the idle pool; epoll interest
 *   exchange.c  an exchange's shared steps: header rules, errors of our own, the end
 *   ws.c        WebSocket: the upgrade, then the tunnel (ws_frame.c is its frame codec)
 *   client.c    the client side: request heads, the request body pipe
 *   upstream.c  the upstream side: response heads, the response body pipe
 *   worker.c    the event loop, accept, timeouts, the worker's life
 * Beside them: config.c (loading and publishing snapshots), control.c (stop and reload
 * requests), admin.c (the admin listener), proxy.c (the whole, on top). */

#define READ_CHUNK (16u * 1024) /* one read from a socket */
/* One read of a response body from the app (into the worker's scratch): the engine's
 * per-push and the loop's per-event costs are paid per read. Per 1 MB masked response,
 * 16 KB reads made 122 syscalls, 32 KB 91, 64 KB 54; but each connection's output and
 * staging buffers grow with the read: VmHWM at 256 streaming connections 32, 43, 52 MB. */
#define BODY_READ (32u * 1024)
#define OUT_HIGH (32u * 1024)   /* pending output past which the source stops */
#define PRINCIPAL_MAX BODY_PRINCIPAL_MAX
#define FIND_CACHE 64

enum { EV_LISTEN = 1, EV_CLIENT, EV_UP, EV_WAKE, EV_H2UP, EV_H2S };
/* CS_TUNNEL: a WebSocket (ws.c); CS_H2: the connection speaks HTTP/2 (h2.c, c->h2) */
enum { CS_HEAD, CS_EXCHANGE, CS_CLOSING, CS_TUNNEL, CS_H2 };
enum { RS_NONE, RS_WAIT_HEAD, RS_BODY, RS_DONE };

typedef struct conn conn;

/* A WebSocket tunnel's state per direction (ws.c; here so conn_free can free it without
 * calling back into ws.c). */
enum { WS_M_NONE, WS_M_PASS, WS_M_MASK };
typedef struct {
    ws_seq seq;
    mm_direction dir; /* whose rules: MM_DIR_REQUEST for client to app */
    bool mask_text;   /* text messages are masked in this direction */
    bool refuse_binary;
    uint64_t max_msg;
    bool in_frame;
    ws_head h;
    uint64_t left, off; /* payload bytes of the current frame still to come, and seen */
    int mode;           /* WS_M_*, of the message in progress */
    uint8_t key[4];     /* masking key of the frame being passed to the app */
    uint64_t msg_len;
    body_pipe pipe;
    mm_buf msg;     /* the masked message */
    bool close_fwd; /* a close frame went out on this direction's output */
    bool eof;       /* this direction's input ended */
    uint8_t ctl[WS_CONTROL_MAX];
} ws_dir;
typedef struct ws_tunnel {
    ws_dir d[2]; /* 0: client to app, 1: app to client */
} ws_tunnel;

typedef struct upconn {
    int kind; /* EV_UP (EV_H2S for an HTTP/2 stream's): first member, the epoll tag */
    int fd;
    worker *w;
    conn *c;     /* the exchange using it; NULL while idle */
    conn *owner; /* while idle: the client connection it is kept for */
    struct h2s *h2s; /* EV_H2S: the HTTP/2 stream using it; NULL while idle */
    struct upconn *next, *prev;
    bool connecting;
    bool reused;
    uint64_t idle_since;
    uint64_t seen; /* the worker's batch in which an event last named it */
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
    bool shut;    /* our side shut down for a lingering close */
    bool mute_in; /* EPOLLIN fired while we did not want to read: now really drop it */
    http_framing rqf;
    bool req_done;
    bool rq_chunked_out;
    bool rq_piped; /* the request body runs through rq (its counters are this exchange's) */
    body_pipe rq;
    char principal[PRINCIPAL_MAX];
    bool has_principal;

    upconn *up;
    upconn *idle_up; /* the upstream connection kept for this client's next request */
    mm_buf uout; /* bytes for the upstream from uout_off */
    size_t uout_off;
    mm_buf uin;     /* response head bytes */
    mm_buf reqhead; /* the request head as sent, for one retry on a stale pooled connection */
    bool retried, resp_seen;
    size_t up_extra; /* bytes past the response: the connection is closed, not pooled */

    int rs;
    int status;
    bool head_sent, hold;
    http_framing rsf;
    bool rs_mask, gz, out_chunked, rs_piped;
    mm_on_error onerr;
    mm_buf rhead; /* response head without framing lines, until sent */
    body_pipe rsp;
    /* splice mode (upstream.c): an unmasked body moves app -> pipe -> client in the kernel */
    bool splicing;
    int spl[2];        /* the connection's pipe, made at its first spliced body; -1: none */
    size_t spl_n;      /* bytes in the pipe, not yet written to the client */
    uint64_t spl_left; /* body bytes still to come from the app */
    uint64_t spliced;  /* this response's bytes that went by splice */

    bool ws_req;   /* the request asks for a WebSocket upgrade */
    ws_tunnel *ws; /* CS_TUNNEL: in is the client's frames, uin the app's */

    /* another protocol on this connection (HTTP/2): its state and its end */
    struct h2conn *h2;
    void (*on_close)(conn *c);
    void (*on_free)(conn *c);
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
    upconn *dead_up; /* closed this batch, freed after it */
    struct h2up *dead_h2up; /* h2c app sessions closed this batch */
    struct h2conn *h2_touched; /* HTTP/2 connections to sync once this batch's events are in */
    uint64_t now, last_sweep;
    uint64_t batch; /* counts epoll_wait returns (upconn.seen) */
    char *scratch; /* BODY_READ for reads */
    char *ztmp;    /* BODY_ZTMP for inflate output */
    mm_series *code_s[600];
    mm_series *bytes_s[4];
    mm_series *dur_s, *conn_s, *spliced_s;
    find_ent fcache[FIND_CACHE];
    size_t n_fcache;
    uint64_t fcache_gen;
    http_req_head rqh; /* the head being handled (one at a time per worker) */
    http_resp_head rsh;
};

/* pool.c */
bool ep_set(worker *w, int fd, void *tag, uint32_t *cur, uint32_t want);
void set_nodelay(int fd);
/* Writes what it can; false when the peer is gone. */
bool flush_fd(int fd, mm_buf *b, size_t *off, uint64_t *last_io, uint64_t now);
/* Sends b's queued bytes and then v[0..n) (n <= SEND_THROUGH_MAX) with one sendmsg, and
 * queues in b what the socket did not take (the pending bytes moved to the front first when
 * they start past its middle): a piece that fits goes out without a copy into b. False when
 * queueing fails; a send error queues all, for flush_fd to meet. */
#define SEND_THROUGH_MAX 4
bool send_through(int fd, mm_buf *b, size_t *off, const struct iovec *v, int n,
                  uint64_t *last_io, uint64_t now);
static inline size_t pending(const mm_buf *b, size_t off)
{
    return b->len - off;
}
/* What the client still has to take: the buffer, and bytes in the splice pipe. */
static inline size_t client_pending(const conn *c)
{
    return pending(&c->out, c->out_off) + c->spl_n;
}
void up_close(upconn *u); /* closes now, frees after the event batch */
void free_dead_up(worker *w);
void pool_put(conn *c, upconn *u);  /* kept for c's next request */
void pool_drop(conn *c);            /* closes what c kept */
upconn *up_get(worker *w, conn *c, bool fresh);
void pool_sweep(worker *w, bool all); /* idle connections age out (all: every one) */
/* An idle pooled connection turned readable: the app closed it or sent bytes nobody asked
 * for (counted); either way it goes. */
void pool_readable(worker *w, upconn *u);
/* Counts n bytes the app sent unasked. */
void count_unsolicited(worker *w, size_t n);

/* exchange.c */
void count_code(worker *w, int code);
void flush_findings(worker *w);
void count_finding(worker *w, uint64_t gen, const mm_finding *f);
void on_finding(void *ctx, const mm_finding *f); /* ctx: the conn */
bool out_put(mm_buf *b, const void *p, size_t n);
bool put_field(mm_buf *b, const char *n, size_t nl, const char *v, size_t vl);
/* A body piece's framing as iovecs into v (the chunk header written into hdr): the bytes,
 * or one chunk; none for an empty piece. Returns how many. */
int body_iov(struct iovec v[3], char hdr[24], bool chunked, const char *p, size_t n);
bool put_body(mm_buf *b, bool chunked, const char *p, size_t n);
bool put_u64(mm_buf *b, uint64_t v);
long conn_extra(const http_hdr *hdrs, size_t n);
bool hop_by_hop(const http_hdr *h, const http_hdr *hdrs, long extra);
bool header_value(const snap *sn, const char *principal, mm_direction dir, const http_hdr *h,
                  mm_buf *nv, const char **v, size_t *vl, mm_finding_fn fn, void *ctx);
bool put_header(conn *c, mm_buf *b, const http_hdr *h, mm_direction dir);
void reply_error(conn *c, int status, const char *msg, bool close_conn);
void resp_abort(conn *c, const char *why);
void exchange_finish(conn *c);
conn *conn_new(worker *w, int fd);
void conn_close(conn *c);
void conn_free(conn *c);

/* ws.c: WebSocket upgrades and tunnels */
bool ws_upgrade_requested(const http_req_head *rq, const http_framing *f);
bool ws_request_header_dropped(const http_hdr *h); /* not passed to the app on an upgrade */
bool ws_put_upgrade(mm_buf *b);                     /* the upgrade's hop-by-hop lines */
/* The app answered 101 (the head is head_len bytes of c->uin): the tunnel starts, or the
 * client gets a 502. */
void ws_start(conn *c, const http_resp_head *h, size_t head_len);
void ws_event(conn *c, bool up_side, uint32_t events);
void ws_sync(conn *c); /* epoll interest of both sockets */
void ws_going_away(conn *c, const char *why); /* close 1001 both ways: idle, drain */

/* client.c */
void client_process(conn *c);
void client_read(conn *c);

/* upstream.c */
void up_failed(conn *c, const char *reason);
void up_read(conn *c);
void up_write(conn *c);

/* worker.c */
mm_err worker_new(mm_proxy *p, int idx, worker **out, mm_errbuf *eb);
void *worker_main(void *arg);
void worker_wake(worker *w);
void worker_free(worker *w);
int worker_listen_port(const worker *w);
pthread_t *worker_thread(worker *w);

/* config.c */
mm_err config_load(mm_proxy *p, mm_errbuf *eb); /* builds and publishes a new snap */
snap *config_current(mm_proxy *p);              /* a new reference, or NULL */
uint64_t config_signature(mm_proxy *p);

/* admin.c */
void *admin_main(void *arg);
bool upstream_answers(const mm_proxy *p, int timeout_ms);

/* h2.c: where a connection's protocol is decided (client.c) and its HTTP/2 life (worker.c) */
int h2_preface(conn *c);  /* 1: c speaks HTTP/2 now; 0: not a preface; -1: too few bytes */
bool h2_upgrade(conn *c, const http_req_head *rq, size_t head_len); /* Upgrade: h2c taken */
void h2_sync(conn *c);
/* The worker's HTTP/2 connections sync once per event batch, not once per event: frames of
 * many streams go out in one write, and the streams are looked over once. h2_defer: queued
 * (true), or false when c is to be synced now (it was just taken from the queue by
 * h2_deferred, which returns NULL once the queue is empty). */
bool h2_defer(conn *c);
conn *h2_deferred(worker *w);
void h2_client_event(conn *c, uint32_t events);
conn *h2_app_event(worker *w, void *tag, uint32_t events); /* EV_H2S, EV_H2UP; NULL: stale */
void h2_sweep(conn *c, bool draining);
void h2c_free_dead(worker *w);

/* proxy.c */
mm_err parse_hostport(const char *s, bool passive, struct sockaddr_storage *ss, socklen_t *len,
                      mm_errbuf *eb);

#endif
