/* lib/proxy/body.h: the body pipe, one per direction of an exchange. It takes a message
 * body as it arrives on the wire and hands the payload to its caller's sink: framing
 * (a length, the chunked coding, or "until the end": a closing connection, or a front end
 * whose own frames delimit the body, as HTTP/2's DATA frames do), gzip/deflate decoding, the
 * masking stream, staging and byte counters. Requests and responses use the same pipe; a
 * protocol front end only decides the framing and what to do when the pipe reports done or
 * failed. Depends on: lib/mask, the HTTP/1.1 chunked decoder (http1.h), zlib. */
#ifndef MM_PROXY_BODY_H
#define MM_PROXY_BODY_H

#include "mask/mask.h"
#include "proxy/http1.h"

#include <zlib.h>

#define BODY_PRINCIPAL_MAX 512
#define BODY_GRPC_METHOD_MAX 256 /* a longer :path names no method: the call is unknown */
#define BODY_ZTMP (16u * 1024) /* inflate output per step: the scratch given to body_init */
/* A body of ambiguous type is held up to this, then read whole as JSON or else as text;
 * a longer one is read as a stream, as JSON when its first byte says so, else as text. */
#define BODY_EVERY_WAY_MAX (1024u * 1024)

/* The pipe's output, in order: decoded and (when a masker applies) masked payload. `last`
 * says the body ends with these bytes, so a caller still holding its head can send an exact
 * length. Returning false stops the pipe (the caller ended the exchange, or ran out of
 * memory): the feed then reports BODY_ESINK. */
typedef bool (*body_sink_fn)(void *ctx, const char *p, size_t n, bool last);
/* Told each time the engine (or the decoder) refuses the body, before onError applies. */
typedef void (*body_note_fn)(void *ctx, const char *why);

typedef enum {
    BODY_FRAME_LENGTH,  /* exactly `length` bytes */
    BODY_FRAME_CHUNKED, /* the HTTP/1.1 chunked coding (trailers are dropped) */
    BODY_FRAME_EOF,     /* every byte fed, until body_end */
} body_frame;

typedef enum { BODY_MORE, BODY_DONE, BODY_FAILED } body_res;

typedef enum {
    BODY_OK,
    BODY_EFRAMING, /* malformed chunked coding, or the body ended before its length */
    BODY_ELIMIT,   /* more payload than opts.max */
    BODY_EMASK,    /* the engine or the decoder refused the body and onError is not passthrough */
    BODY_ESINK,    /* the sink said stop */
} body_err;

typedef struct {
    body_frame frame;
    uint64_t length;        /* BODY_FRAME_LENGTH */
    uint64_t max;           /* payload bound, 0 for none */
    bool decode;            /* a gzip or deflate content coding to undo before masking */
    mm_masker *masker;      /* NULL: payload passes unchanged (borrowed for the body) */
    uint64_t gen;           /* the masker's configuration generation (stream reuse) */
    mm_body_kind kind;
    bool every_way;         /* the type is ambiguous: read the body the most inclusive way */
    mm_direction dir;
    const char *principal;  /* the caller, for exemptions; NULL for none (copied) */
    size_t max_value;       /* 0: the engine's default */
    mm_on_error on_error;   /* PASSTHROUGH: a refused body goes on unmasked when it still can */
    mm_finding_fn on_finding;
    void *finding_ctx;
    const mm_pbdesc *proto; /* MM_BODY_GRPC: the call's descriptors (borrowed: the snap's) */
    const char *grpc_method; /* ... its :path, and grpc-encoding (NULL: identity); copied */
    const char *grpc_encoding;
    body_note_fn note;      /* optional */
    body_sink_fn sink;
    void *ctx;              /* for sink and note */
} body_opts;

/* Fields are the pipe's own; callers read only the ones under "state". */
typedef struct {
    body_opts o;
    char principal[BODY_PRINCIPAL_MAX];
    uint64_t remaining, total;
    http_chunked ch;
    z_stream z;
    bool z_init, gz_end, gz_broken;
    char *ztmp; /* BODY_ZTMP bytes, borrowed */
    mm_stream *ms;
    uint64_t ms_gen;
    int ms_kind;
    char ms_principal[BODY_PRINCIPAL_MAX];
    char grpc_method[BODY_GRPC_METHOD_MAX], grpc_encoding[16];
    mm_buf stage; /* the stream's output, handed on once per feed */
    mm_buf raw;   /* payload kept while nothing was sent, for onError passthrough */
    bool raw_ok;
    bool held; /* every_way: the body is in raw until it ends or outgrows the bound */
    /* state */
    bool masking;  /* a masking stream runs */
    bool raw_mode; /* masking failed and onError let the rest pass unmasked */
    bool emitted;  /* the sink has received something */
    body_res res;
    body_err err;
    const char *why; /* static text naming the failure */
    uint64_t in, out; /* payload bytes before decoding and masking, and given to the sink */
} body_pipe;

/* ztmp: BODY_ZTMP bytes of scratch, borrowed for the pipe's life (a worker's). */
void body_init(body_pipe *b, char *ztmp);
/* The state as body_init leaves it, keeping the stream, zlib state and buffers for the
 * next body_begin (a pipe recycled with its owner, as HTTP/2 streams are). */
void body_rewind(body_pipe *b);
/* Frees what the pipe keeps between bodies (streams, zlib state, buffers). */
void body_cleanup(body_pipe *b);
/* Starts a body; a masking stream of the previous body is reused when masker generation,
 * kind and principal are the same. MM_ENOMEM when a stream or the decoder cannot start. */
mm_err body_begin(body_pipe *b, const body_opts *o);
/* What a body with framing f gets under masker m (NULL: none applies) in dir: the kind and
 * whether it is read every way, for body_opts. False when the policy refuses the type
 * (unlistedTypes: block). A missing, repeated, listed or unparseable type is ambiguous; an
 * unlisted one is read with the text detectors unless the policy says pass. */
bool body_kind_for(const mm_masker *m, mm_direction dir, const http_framing *f,
                   mm_body_kind *kind, bool *every_way);
/* Consumes framed bytes; *used says how many (bytes past the end of the body are left for
 * the caller). DONE: the body ended and its last output went to the sink. */
body_res body_feed(body_pipe *b, const char *p, size_t n, size_t *used);
/* The input ended (connection closed, end of stream): DONE for BODY_FRAME_EOF, else a
 * BODY_EFRAMING failure (the body is short). Idempotent once DONE or FAILED. */
body_res body_end(body_pipe *b);

#endif
