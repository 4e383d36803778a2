/* lib/proxy/h2_int.h: HTTP/2 in the sidecar, shared by the h2 files of lib/proxy. The client
 * side is an nghttp2 server session per connection (h2c by prior knowledge or by the HTTP/1.1
 * Upgrade); each of its streams is an exchange of its own, with its own request and response
 * body pipes, towards the app over HTTP/1.1 (a connection per stream, kept for the connection's
 * next streams) or h2c (one nghttp2 client session per client connection, a stream per stream).
 * The files, each calling only those listed before it:
 *   h2stream.c  a stream: its head and body towards the client, its end (done, reset, onError)
 *   h2up.c      a stream's HTTP/1.1 exchange with the app
 *   h2c.c       the h2c session with the app
 *   h2.c        the client's session: detection, Upgrade, limits, events, timeouts
 * Depends on: libnghttp2 (Debian's), the rest of lib/proxy. */
#ifndef MM_PROXY_H2_INT_H
#define MM_PROXY_H2_INT_H

#include "proxy/proxy_int.h"

#include <nghttp2/nghttp2.h>

#define H2_OUT_HIGH (64u * 1024)   /* a stream's bytes for the client past which its app side waits */
#define H2_UOUT_HIGH (64u * 1024)  /* a stream's bytes for the app past which window is kept back */
#define H2_MAX_HDRS HTTP_MAX_HEADERS
#define H2_BOMB_FACTOR 16          /* a header block decoding past this many times the limit:
                                    * an HPACK bomb, the connection goes (ENHANCE_YOUR_CALM) */
#define H2_RESET_BURST 200         /* client resets allowed at once ... */
#define H2_RESET_RATE 20           /* ... and refilled per second (rapid reset, CVE-2023-44487) */
#define H2_MAX_CONTINUATIONS 8     /* CONTINUATION frames after one HEADERS (CVE-2024-28182) */
#define H2_MAX_SETTINGS 32         /* entries in one SETTINGS frame */
#define H2_SPARE_MAX 64            /* finished streams a connection keeps for its next ones */
#define H2_MAX_OUTBOUND_ACK 1000   /* unsent SETTINGS/PING ACKs before the peer counts as a flood */

typedef struct h2conn h2conn;
typedef struct h2s h2s;
typedef struct h2up h2up;

/* Where a stream's request goes: set by h2up.c or h2c.c when the stream starts. */
typedef struct {
    void (*release)(h2s *s);     /* the stream ends: give its app side back or cut it */
    void (*req_more)(h2s *s);    /* request body bytes (or its end) are waiting in s->uout */
    void (*resp_taken)(h2s *s);  /* response bytes went into DATA frames (NULL: nothing to do) */
} h2_upops;

/* A field as received: offsets into a stream's hbuf (which may move while it grows). */
typedef struct {
    uint32_t no, nl, vo, vl;
} h2_field;

struct h2s {
    h2conn *hc;
    int32_t id;
    h2s *next, *prev;
    snap *sn;
    uint64_t t_start, last_io;
    /* the request head, then the response head while it is held */
    mm_buf hbuf;
    h2_field f[H2_MAX_HDRS];
    size_t nf;
    size_t hsize;     /* decoded header list size (RFC 9113 §6.5.2 counting) */
    bool too_large;   /* the request head went past a limit: 431 */
    bool started;     /* the exchange began (head complete) */
    bool end_stream;  /* the client's request ended */
    bool is_head, grpc;
    bool has_principal;
    char principal[PRINCIPAL_MAX];
    int method_f, path_f, auth_f, ct_f, cl_f, ce_f; /* field indexes, -1 when absent */

    /* request body: client DATA -> rq -> uout -> the app */
    body_pipe rq;
    bool rq_piped, req_done, rq_chunked, rq_failed;
    mm_buf uout;
    size_t uout_off;
    size_t unconsumed; /* DATA bytes whose window is kept until uout drains */

    /* the app side */
    const h2_upops *ops;
    upconn *up;       /* HTTP/1.1 */
    h2up *h2u;        /* h2c */
    int32_t up_id;    /* the app-side stream (h2c), 0 none */
    mm_buf uin;       /* HTTP/1.1 response head bytes; h2c: response fields as in rhead */
    size_t n_uin;
    mm_buf reqhead;   /* a bodiless request's head, for one retry on a stale kept connection */
    bool retried;
    size_t up_unconsumed; /* app DATA bytes whose window is kept until out drains (h2c) */

    /* response: the app -> rsp -> out -> client DATA */
    int status;
    http_framing rsf;
    body_pipe rsp;
    bool rs_piped, rs_mask, gz, rs_started, rs_done, head_sent, submitted, deferred;
    mm_on_error onerr;
    mm_buf rhead;     /* response fields, "name\0value\0" each, until submitted */
    size_t n_rhead;
    mm_buf trailers;  /* the app's trailers (h2c), the same layout */
    size_t n_trailers;
    bool grpc_fail;   /* the call ends with grpc-status 13 */
    mm_buf out;
    size_t out_off;
    bool reset;       /* RST_STREAM sent or received: nothing more goes out */
    bool counted;
};

struct h2conn {
    conn *c;
    nghttp2_session *ns;
    h2s *streams;
    int n_streams;
    /* HTTP/1.1 app connections kept for the next streams (linked by their next/prev), most
     * recently used first; at most h2_max_streams, so keeping them adds no descriptor to what
     * the connection's streams hold at their peak */
    upconn *idle;
    uint32_t n_idle;
    /* finished streams, linked by next, kept with their buffers and masking streams */
    h2s *spare;
    uint32_t n_spare;
    h2up *h2u;        /* the h2c session with the app, when upstream protocol is h2c */
    h2up *h2u_old;    /* one the app said GOAWAY to: its streams finish, new ones go to h2u */
    double reset_tokens;
    uint64_t reset_at;
    bool calm;        /* GOAWAY ENHANCE_YOUR_CALM sent: closing */
    bool goaway;      /* a drain GOAWAY was sent */
    bool dead;        /* the session failed: close once the output is written */
    uint64_t idle_since;
    h2conn *tnext, *tprev; /* on the worker's h2_touched list */
    bool touched, syncing;
};

/* The h2c session with the app (h2c.c): an EV_H2UP socket. */
struct h2up {
    int kind; /* EV_H2UP: the epoll tag */
    int fd;
    h2conn *hc;
    nghttp2_session *ns;
    mm_buf out;
    size_t out_off;
    bool connecting, failed;
    uint32_t events;
    uint64_t last_io;
    h2up *next; /* on the worker's dead list */
};

/* A gRPC body's masking: the kind (GRPC, or OPAQUE when onError lets an unmaskable call
 * pass unread), the call's descriptors, method and grpc-encoding, for body_opts. */
typedef struct {
    mm_body_kind kind;
    const mm_pbdesc *proto;
    char method[BODY_GRPC_METHOD_MAX];
    char encoding[16];
    bool has_encoding;
} h2_grpc;

/* h2stream.c */
bool h2_grpc_type(const char *ct, size_t n); /* application/grpc, +anything, ;params */
/* What the gRPC body of s in dir (fields hdrs[0..n), framing f) gets: the call's method from
 * :path and the descriptor set holding it. A method no set holds, a subtype other than proto
 * or a Content-Encoding follow onError for dir: passthrough gives OPAQUE, anything else
 * ends the call with grpc-status 13 and returns false. */
bool h2s_grpc_setup(h2s *s, mm_direction dir, const http_hdr *hdrs, size_t n,
                    const http_framing *f, h2_grpc *g);
h2s *h2s_new(h2conn *hc, int32_t id);
/* Releases the app side, the window it kept, the snap; the stream goes on hc's spare list
 * (h2s_new takes it from there), or is freed when the list is full or the session gone. */
void h2s_free(h2s *s);
void h2s_spare_drop(h2conn *hc);   /* frees the spare list */
bool h2s_field_add(h2s *s, const char *n, size_t nl, const char *v, size_t vl);
bool h2s_field_is(const h2s *s, size_t i, const char *name);
void h2s_field(const h2s *s, size_t i, http_hdr *out);
void h2_finding(void *ctx, const mm_finding *f);
/* The response head from the app: status and fields (hop-by-hop ones are dropped here),
 * the framing of what follows. Sets up the response pipe; false: the stream was answered
 * or reset already. */
bool h2s_resp_begin(h2s *s, int status, const http_hdr *hdrs, size_t n, const http_framing *f);
/* Response body bytes as the app framed them; *used as body_feed. */
void h2s_resp_feed(h2s *s, const char *p, size_t n, size_t *used);
void h2s_resp_end(h2s *s);         /* the app ended the body (close, END_STREAM) */
void h2s_reply(h2s *s, int status, const char *msg); /* an answer of our own, or a reset */
void h2s_reset(h2s *s, uint32_t code);
void h2s_grpc_fail(h2s *s, const char *why);
/* Request body bytes from the client went to the app: gives their window back while uout
 * is below H2_UOUT_HIGH. */
void h2s_consume(h2s *s);
void h2s_count(h2s *s);
bool h2_rq_sink(void *ctx, const char *p, size_t n, bool last);
bool h2_nv_put(mm_buf *b, size_t *n, const char *name, size_t nl, const char *v, size_t vl);
/* Up to max fields of a "name\0value\0" list as http_hdr; returns how many. */
size_t h2_nv_hdrs(const mm_buf *b, size_t n, http_hdr *out, size_t max);
/* The framing facts of a field list (type, coding, length) for the body pipe. */
void h2_framing(const http_hdr *h, size_t n, bool body, http_framing *f);

/* h2up.c */
bool h2up_start(h2s *s);   /* false: answered already (502 and the like) */
void h2up_event(h2s *s, uint32_t events);
void h2up_sync(h2s *s);
void h2up_idle_drop(h2conn *hc);
void h2up_idle_unlink(h2conn *hc, upconn *u);
void h2up_idle_sweep(h2conn *hc);  /* kept connections idle past pool_idle_ms close */
bool h2_upstream_head(h2s *s, mm_buf *b); /* the request head, in HTTP/1.1 */

/* h2c.c */
bool h2c_start(h2s *s);
void h2c_event(h2up *u, uint32_t events);
void h2c_sync(h2up *u);
void h2c_flush(h2up *u);
void h2c_close(h2up *u);   /* the session and its socket; the streams it carried fail */
void h2c_consume(h2s *s);  /* app DATA the client took: the app's window back */

#endif
