/* lib/mask: the masking engine. Policies are compiled once into an immutable, shareable
 * mm_masker; bodies are then masked as streams (JSON, NDJSON/JSONL, server-sent events,
 * text, gRPC and protobuf messages) pushed in chunks of any size, with memory bounded by the
 * largest single value (gRPC: the largest message), never by the document. Bytes no rule
 * touches are written out unchanged.
 * Depends on: lib/policy (the model), lib/common, OpenSSL (SHA-256, HMAC, AES for FF1,
 * AES-SIV, HKDF), PCRE2 (patterns), json-c (reveal only), zlib (gzip gRPC messages). Knows nothing of HTTP or
 * Kubernetes. */
#ifndef MM_MASK_H
#define MM_MASK_H

#include "common/common.h"
#include "policy/policy.h"

/* Default bound on one buffered scalar value (JSON string or number, text line); a longer
 * one is an MM_ELIMIT error naming its offset. */
#define MM_MASK_MAX_VALUE (1u << 20)
/* Bound on JSON nesting depth. */
#define MM_MASK_MAX_DEPTH 512

/* ---- keys ----------------------------------------------------------------------------- */

/* Named secret keys for hash (HMAC), tokenize and encrypt (entries <key>.v<N>). */
typedef struct mm_keys mm_keys;

mm_err mm_keys_new(mm_keys **out);
/* Copies `key`. An existing name is replaced. */
mm_err mm_keys_add(mm_keys *k, const char *name, const void *key, size_t len);
/* A directory of files, one per key, as a mounted Secret is: the file name is the key name,
 * its bytes the key. Dot-files (kubelet's ..data links) are skipped; an empty key is an
 * error. */
mm_err mm_keys_load_dir(const char *dir, mm_keys **out, mm_errbuf *eb);
void mm_keys_free(mm_keys *k);

/* ---- the compiled masker -------------------------------------------------------------- */

typedef struct mm_masker mm_masker;

typedef struct {
    /* Scan mode (maskctl scan): every built-in detector runs on every value; findings say
     * which rule of the policies, if any, would mask them; nothing is changed. */
    bool scan;
} mm_masker_opts;

/* Compiles `n` policies (rules apply in policy name order, then rule order) with `keys`
 * (may be NULL when no rule needs one; a missing key is an error naming the rule). The
 * masker copies what it needs: policies and keys may be freed afterwards. */
mm_err mm_masker_new(const mm_policy *const *policies, size_t n, const mm_keys *keys,
                     const mm_masker_opts *opts, mm_masker **out, mm_errbuf *eb);
/* Reference counting, for hot reload: a stream holds a reference while it lives. */
mm_masker *mm_masker_ref(mm_masker *m);
void mm_masker_free(mm_masker *m); /* drops one reference; NULL is fine */

/* Whether any rule or header rule applies in this direction. */
bool mm_masker_applies(const mm_masker *m, mm_direction dir);
/* The strictest onError of the policies that apply in `dir` (block > redact-all >
 * passthrough). */
mm_on_error mm_masker_on_error(const mm_masker *m, mm_direction dir);
/* The strictest unlistedTypes of the policies that apply in `dir` (block > detect > pass). */
mm_unlisted mm_masker_unlisted(const mm_masker *m, mm_direction dir);
/* spec.websocket of the policies that apply in `dir`: binary messages pass only when every
 * one says pass; a masked text message's bound is the smallest maxMessageBytes. */
bool mm_masker_ws_binary_pass(const mm_masker *m, mm_direction dir);
uint64_t mm_masker_ws_max_message(const mm_masker *m, mm_direction dir);

/* Rules are numbered 0..count-1 across policies, in the order they apply. */
size_t mm_masker_rule_count(const mm_masker *m);
const char *mm_masker_rule_name(const mm_masker *m, size_t i);
const char *mm_masker_rule_policy(const mm_masker *m, size_t i);

/* The block classifier the JSON masker uses on this CPU: "avx512", "avx2" or "off" (the
 * portable path; also when MM_SIMD=off asks for it), for reports and benchmarks. */
const char *mm_mask_simd_path(void);

/* ---- built-in detectors --------------------------------------------------------------- */

/* The registry (lib/mask/detectors.def), for listings: i < mm_mask_detector_count(). */
size_t mm_mask_detector_count(void);
const char *mm_mask_detector_name(size_t i);
const char *mm_mask_detector_doc(size_t i);
/* Member names that are evidence for it ('|' between them, lowercase, without '_', '-' and
 * spaces); "" when it takes none. */
const char *mm_mask_detector_members(size_t i);

/* ---- protobuf descriptors (gRPC) ----------------------------------------------------- */

/* A FileDescriptorSet (protoc --descriptor_set_out --include_imports) read into the tables
 * protobuf bodies are masked by: fields addressed by their proto names with the JSON path
 * syntax. Immutable once made; shareable by threads (reference counted). */
typedef struct mm_pbdesc mm_pbdesc;

#define MM_PB_MAX_DESCRIPTORS (16u << 20) /* bytes of one descriptor set */
#define MM_GRPC_MAX_MESSAGE (4u << 20)    /* one gRPC message, as gRPC's own default */

/* Errors name the byte offset and the message or field being read. */
mm_err mm_pbdesc_parse(const void *data, size_t len, mm_pbdesc **out, mm_errbuf *eb);
mm_err mm_pbdesc_load(const char *path, mm_pbdesc **out, mm_errbuf *eb);
mm_pbdesc *mm_pbdesc_ref(mm_pbdesc *d);
void mm_pbdesc_free(mm_pbdesc *d); /* drops one reference; NULL is fine */
bool mm_pbdesc_has_message(const mm_pbdesc *d, const char *full);
bool mm_pbdesc_has_method(const mm_pbdesc *d, const char *path); /* "/pkg.Service/Method" */
size_t mm_pbdesc_method_count(const mm_pbdesc *d);
const char *mm_pbdesc_method_path(const mm_pbdesc *d, size_t i); /* "/pkg.Service/Method" */
/* The policy's `fields` paths (rules and defaultDeny.body) against the set: a path whose
 * named steps name no field of any message (a typo, a JSON-only path) is MM_EINVAL naming
 * the rule and the path. */
mm_err mm_pbdesc_check_policy(const mm_pbdesc *d, const mm_policy *p, mm_errbuf *eb);

/* ---- body kinds ----------------------------------------------------------------------- */

typedef enum {
    MM_BODY_JSON,   /* application/json, application/<x>+json */
    MM_BODY_NDJSON, /* application/x-ndjson, application/jsonl, application/json-seq: a JSON
                       value per line, blank lines kept */
    MM_BODY_SSE,    /* text/event-stream: `data:` lines are masked as JSON when they parse
                       as JSON, else as text; other lines pass */
    MM_BODY_TEXT,   /* text/<x>, and types a rule names in contentTypes: detectors over text */
    MM_BODY_OPAQUE, /* anything else: passes unchanged */
    MM_BODY_GRPC,   /* application/grpc[+proto]: length-prefixed protobuf messages (below) */
    MM_BODY_PROTOBUF, /* one protobuf message (maskctl; not chosen by a Content-Type) */
} mm_body_kind;

/* The body kind for a Content-Type header value (parameters ignored, case-insensitive).
 * NULL or empty gives OPAQUE. */
mm_body_kind mm_body_kind_for(const mm_masker *m, const char *content_type);
/* maskctl's guess when no type is given: ".ndjson"/".jsonl" names, else sniffs the first
 * bytes (a JSON value, and a second value on a later line, means NDJSON), else text. */
mm_body_kind mm_body_kind_sniff(const char *filename, const char *head, size_t len);
const char *mm_body_kind_name(mm_body_kind k);

/* ---- streams -------------------------------------------------------------------------- */

/* Output sink: called with masked bytes in order. An error stops the stream. */
typedef mm_err (*mm_write_fn)(void *ctx, const char *data, size_t len);
/* The mm_write_fn that appends to the mm_buf `ctx`. A stream given it hands its staged
 * output over whole when `ctx` is empty (mm_buf_take: the two swap storage), so `ctx`'s data
 * may move at any push or finish: keep offsets into it, not pointers. */
mm_err mm_stream_buf_write(void *ctx, const char *data, size_t len);

/* A value a rule (or, in scan mode, a detector) matched. Never holds the value itself. */
typedef struct {
    const char *rule;     /* the rule that transforms it; NULL in scan mode when none would */
    const char *policy;   /* that rule's policy */
    const char *detector; /* detector or pattern name; NULL when a `fields` path selected it */
    const char *path;     /* JSONPath of the value, e.g. $.items[3].card; NULL for text */
    uint64_t offset;      /* byte offset of the value (or match) in the input */
    uint64_t line;        /* 1-based line of that offset */
    bool applied;         /* false in audit mode, scan mode, or for an exempt caller */
} mm_finding;
typedef void (*mm_finding_fn)(void *ctx, const mm_finding *f);

typedef struct {
    mm_body_kind kind;
    mm_direction direction; /* only rules of policies that cover it apply; 0 = response */
    const char *principal;  /* trusted caller identity for exemptions; NULL: nobody exempt */
    size_t max_value;       /* 0: MM_MASK_MAX_VALUE */
    mm_finding_fn on_finding; /* optional */
    void *finding_ctx;
    /* on_finding's path stays NULL: for a caller that only counts findings (the sidecar).
     * Building a JSONPath costs a few hundred instructions per value (a printf per array
     * element); the output and the other fields of each finding stay the same. */
    bool no_finding_paths;
    /* GRPC and PROTOBUF bodies: the descriptors (borrowed: they must outlive the stream);
     * the message type by full name ("pkg.Msg"), else, for GRPC, the method's (:path
     * "/pkg.Service/Method") request or response type by `direction`. A type or method the
     * set does not hold fails the first push (MM_ENOTFOUND): the caller's onError decides. */
    const mm_pbdesc *proto;
    const char *proto_message;
    const char *grpc_method;
    const char *grpc_encoding; /* grpc-encoding: NULL or "identity", or "gzip" */
    bool proto_bytes;          /* detectors read bytes fields too (else only strings) */
    size_t max_message;        /* GRPC: one message's bound, 0: MM_GRPC_MAX_MESSAGE */
} mm_stream_opts;

typedef struct mm_stream mm_stream;

/* The stream takes a reference on `m`. */
mm_err mm_stream_new(mm_masker *m, const mm_stream_opts *opts, mm_write_fn write, void *wctx,
                     mm_stream **out);
/* Masks `len` more bytes. Values split across pushes are handled; output may lag the input
 * by at most one value (plus the member name before it). On error (malformed input, a value
 * over the bound) the message names the byte offset and what was expected, nothing of the
 * value in progress has been written, and the stream accepts no more input. */
mm_err mm_stream_push(mm_stream *s, const char *data, size_t len, mm_errbuf *eb);
/* End of input: flushes, and fails if the document is incomplete. */
mm_err mm_stream_finish(mm_stream *s, mm_errbuf *eb);
/* Ready for another body with the same options (keep-alive), keeping allocations. */
void mm_stream_reset(mm_stream *s);
/* A GRPC stream ready for another call of the same masker, direction and caller: reset,
 * with that call's descriptors, method and grpc-encoding (borrowed, as in mm_stream_opts),
 * keeping its tables. MM_EINVAL for a stream of another kind. */
mm_err mm_stream_reset_grpc(mm_stream *s, const mm_pbdesc *proto, const char *method,
                            const char *encoding);
void mm_stream_free(mm_stream *s);

typedef struct {
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t findings;      /* values matched */
    uint64_t applied;       /* values transformed */
} mm_stream_stats;
void mm_stream_stats_get(const mm_stream *s, mm_stream_stats *st);

/* One whole buffer through a stream into `out` (tests, small bodies). */
mm_err mm_mask_buffer(mm_masker *m, const mm_stream_opts *opts, const char *in, size_t len,
                      mm_buf *out, mm_errbuf *eb);

/* ---- headers -------------------------------------------------------------------------- */

typedef enum { MM_HDR_KEEP, MM_HDR_REMOVE, MM_HDR_REWRITE } mm_hdr_result;

/* Applies spec.headers to one header (name compared case-insensitively). REWRITE puts the
 * new value in `out`. Audit mode and exempt callers give KEEP (with a finding). */
mm_err mm_masker_header(const mm_masker *m, mm_direction dir, const char *principal,
                        const char *name, const char *value, size_t vlen, mm_buf *out,
                        mm_hdr_result *res, mm_finding_fn on_finding, void *finding_ctx);

/* ---- reveal (maskctl reveal) ---------------------------------------------------------- */

/* The inverse of the policies' encrypt rules, for an authorised person offline. Not for
 * the sidecar: it never decrypts. */
typedef struct mm_revealer mm_revealer;

/* Every encrypt rule of the policies; each decrypts with whichever version of its key a
 * value names (an siv token's enc_v<N>_, an ff1 surrogate's .v<N>:), else with
 * `ff1_version` when not 0, else with the rule's keyVersion. Keys are looked up when a
 * version is first needed. `keys` is borrowed and must outlive the revealer. */
mm_err mm_revealer_new(const mm_policy *const *policies, size_t n, const mm_keys *keys,
                       int ff1_version, mm_revealer **out, mm_errbuf *eb);
void mm_revealer_free(mm_revealer *r);

/* One value revealed: never the value itself. */
typedef struct {
    const char *rule;
    const char *policy;
    int key_version;
    const char *path;   /* JSONPath of the value; NULL for text */
    uint64_t line;      /* text: 1-based line; JSON: 0 */
} mm_reveal_event;
typedef void (*mm_reveal_fn)(void *ctx, const mm_reveal_event *ev);

/* Reveals one whole document. JSON (MM_BODY_JSON): values at an encrypt rule's fields are
 * decrypted whole; in every other string, tokens of detector rules are found by their
 * shape (enc_v<N>_..., <surrogate>.v<N>:..., a card-length digit run for ff1 card rules)
 * and decrypted in place; the document is written back as compact JSON. Text (any other
 * kind): the same token search line by line, other bytes unchanged. A value that does
 * not decrypt (another key, damaged) is left as it is and counted in *failed (optional);
 * `on_reveal` (optional) hears each value revealed. */
mm_err mm_reveal_buffer(mm_revealer *r, mm_body_kind kind, const char *in, size_t len,
                        mm_buf *out, mm_reveal_fn on_reveal, void *ctx, size_t *failed,
                        mm_errbuf *eb);

#endif
