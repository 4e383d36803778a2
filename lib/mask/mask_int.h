/* lib/mask internals shared by its files: detectors (detect.c), actions (action.c), keys
 * (keys.c), used by the compiler and the stream maskers (masker.c, json.c, text.c).
 * Not part of the public surface. */
#ifndef MM_MASK_INT_H
#define MM_MASK_INT_H

#include "mask/mask.h"

/* ---- detectors (detect.c) ------------------------------------------------------------- */

/* The built-in detectors, in the order of the registry (detectors.def). */
typedef enum {
#define DETECTOR(id, fn, name, words, bytes, keys, doc) DET_##id,
#include "mask/detectors.def"
#undef DETECTOR
    DET_BUILTIN_COUNT
} det_id;

/* -1 when `name` is not a built-in detector. Names are those of mm_detector_names. */
int det_lookup(const char *name);
const char *det_name(det_id id);

/* A compiled set of detectors and custom patterns. Each member carries a caller-chosen `tag`
 * (the stream code uses a detector slot, see mslot, and resolves precedence itself).
 * Immutable once compiled; shareable by threads. */
typedef struct det_set det_set;

mm_err det_set_new(det_set **out);
mm_err det_set_add_builtin(det_set *s, det_id id, int tag);
/* Lets built-in `id` (already added) take a JSON member name as evidence: a whole value under
 * one of its member names that its validator accepts is a match (det_scan_member). */
mm_err det_set_use_member_names(det_set *s, det_id id);
/* Whether some detector of the set reads member names (the stream then keeps them). */
bool det_set_wants_members(const det_set *s);
/* PCRE2 syntax; compiled with JIT when available. `name` appears in findings. */
mm_err det_set_add_pattern(det_set *s, const char *name, const char *regex, int tag,
                           mm_errbuf *eb);
mm_err det_set_compile(det_set *s, mm_errbuf *eb);
/* Before det_set_compile: compile without the scan loop's prefilters (word lengths, the
 * byte after a word, the room left in the value) and without the SIMD trigger filter: all
 * of those only save time; the tests compare a set made so with a normal one, match for
 * match. */
void det_set_exhaustive(det_set *s);
bool det_set_empty(const det_set *s);
/* Is built-in `id` on in the set? */
bool det_set_has(const det_set *s, det_id id);
void det_set_free(det_set *s);

typedef struct {
    size_t start, end; /* byte span in the scanned text, end exclusive */
    int tag;
    const char *name;  /* detector or pattern name (borrowed from the set) */
} det_match;

/* Called for every match, in order of start offset (ties: lower tag first). Overlapping
 * matches are all reported; the caller resolves them. A non-OK return stops the scan. */
typedef mm_err (*det_match_fn)(void *ctx, const det_match *m);

/* Scans `n` bytes of text (a decoded JSON string, a numeric literal's text, or a text body
 * line). Must be fast where nothing matches: this runs on every value. Per-thread scratch
 * (PCRE2 match data) lives in `scratch`, made by det_scratch_new for one thread/stream.
 * Errors: MM_EINVAL when the set was not compiled or the scratch was made for another set;
 * MM_ELIMIT when a pattern hits its match limit (catastrophic backtracking) or a value has
 * more than 65536 matches; MM_ENOMEM; or the callback's error. On error nothing more is
 * reported, and the caller should treat the value as not scannable (onError). What each
 * built-in accepts and refuses is in docs/detectors.md; the decisions on the hard cases at the
 * top of detect.c. */
typedef struct det_scratch det_scratch;
mm_err det_scratch_new(const det_set *s, det_scratch **out);
void det_scratch_free(det_scratch *sc);
mm_err det_scan(const det_set *s, det_scratch *sc, const char *text, size_t n, det_match_fn cb,
                void *ctx);
/* det_scan of a JSON member's value, with the member's (decoded) name as evidence for the
 * detectors that take it; `member` NULL is det_scan. */
mm_err det_scan_member(const det_set *s, det_scratch *sc, const char *text, size_t n,
                       const char *member, size_t mlen, det_match_fn cb, void *ctx);

/* ---- actions (action.c) --------------------------------------------------------------- */

/* An action with its key resolved (key bytes copied), ready to apply. */
typedef struct {
    mm_action_type type;
    char *text; /* redact: the replacement; replace: the value */
    size_t text_len;
    int keep_first, keep_last;
    char mask_char[8]; /* one UTF-8 character */
    size_t mask_char_len;
    bool preserve_format;
    unsigned char *key; /* hash (optional) / tokenize; NULL when unkeyed */
    size_t key_len;
    /* hash / tokenize, keyed: the SHA-256 states after the key's inner ([0]) and outer ([1])
     * pads (RFC 2104), made once by act_compile and only read (copied) by act_apply, so one
     * act_t serves every thread. NULL when unkeyed. Owned; wiped and freed by act_clear. */
    struct SHA256state_st *hmac;
    int key_version;     /* tokenize: tok_v<N>_ when the key is versioned; 0 not */
    char tok_prefix[24]; /* tokenize: "tok_v<N>_" or "tok_", made once */
    size_t tok_prefix_len;
    struct enc_t *enc;   /* encrypt (crypt_int.h); owned */
} act_t;

/* `where` names the rule in messages (e.g. "policy shop/payments-api rule card"). A key the
 * action names that `keys` does not hold is MM_EINVAL. */
mm_err act_compile(const mm_action *a, const mm_keys *keys, const char *where, act_t *out,
                   mm_errbuf *eb);
void act_clear(act_t *a);

/* Appends the transformed form of `in` (raw, unescaped bytes) to `out`, also raw: the caller
 * escapes it for JSON. remove appends nothing (the caller drops the member or match).
 * mask counts UTF-8 characters; with preserveFormat only letters and digits are masked and
 * counted for keepFirst/keepLast, other characters stay. A value with no more maskable
 * characters than keepFirst+keepLast is masked whole (never shown in full). */
mm_err act_apply(const act_t *a, const char *in, size_t n, mm_buf *out);

/* RFC 4648 base32 of `n` bytes, lowercase, without padding (tokenize's alphabet): writes
 * (8n + 4) / 5 characters to `out` (no NUL) and returns that count. */
size_t act_base32(const unsigned char *in, size_t n, char *out);

/* ---- keys (keys.c) -------------------------------------------------------------------- */

/* Borrowed view of a key; false when absent. */
bool keys_get(const mm_keys *k, const char *name, const unsigned char **key, size_t *len);

/* ---- the compiled masker (masker.c, path.c), read by the streams (stream.c, json.c,
 * text.c) ------------------------------------------------------------------------------ */

#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#define RULE_NONE INT_MAX /* "no rule": larger than every rule index */

/* Graded reveal (spec.reveal): these principals get `act` for the rule instead of its own,
 * or, with `clear`, the value unchanged (as an exemption gives). */
typedef struct {
    char **principals;
    size_t n_principals;
    bool clear;
    act_t act;
} mgrant;

typedef struct {
    char *name;
    char *policy;
    act_t act;
    mgrant *grants;
    size_t n_grants;
    bool audit;     /* the policy is in audit mode: findings only */
    unsigned dirs;  /* MM_DIR_* bits of its policy */
    char **exempt;  /* principals that see this rule's values unmasked */
    size_t n_exempt;
    char *jconst;   /* redact/replace: the whole-value output as a JSON string literal */
    size_t jconst_len;
    bool deny;      /* a policy's defaultDeny.body (named MM_DENY_RULE): its paths allow */
} mrule;

/* A detector slot: the tag its det_set reports. Built-in `id` is slot id; the k-th pattern
 * is slot DET_BUILTIN_COUNT + k. `rules` lists the rules that name it, ascending: a stream
 * gives a match to the first of them that applies to it (audit and exempt rules report but
 * do not shield the value from the next rule). */
typedef struct {
    int *rules;
    size_t n_rules;
} mslot;

/* The JSONPath automaton (path.c). A path of n steps owns the states first..first+n: state
 * first+k means "steps 0..k-1 matched", first+n that the path selects the node. A node's
 * active states are a bit set of `words` 64-bit words; a child's set is computed from its
 * parent's by the bit masks below (step k of a path leads from state first+k to first+k+1,
 * a shift by one bit), so matching costs a few word operations and, when some active state
 * waits for a member name, one hash lookup of the name. */
typedef struct {
    const char *name; /* borrowed from the step */
    size_t len;
    uint64_t hash;
    uint64_t *states; /* the states whose next step is this name */
} mpname;

typedef struct {
    size_t n_states;
    size_t words;
    uint64_t *root;  /* the first state of every path: active at the document root */
    uint64_t *any;   /* the next step is * */
    uint64_t *desc;  /* the next step is reached with "..": the state stays active below */
    uint64_t *named; /* the next step is a name */
    uint64_t *idx;   /* the next step is [N] */
    uint64_t *final; /* every step matched: the node is selected */
    int *rule;       /* per state: the rule of its path */
    long *index;     /* per state whose next step is [N]: N */
    uint64_t lens;   /* bit min(len, 63) set when a name step has that length */
    mpname *names;
    size_t n_names;
    uint32_t *table; /* open addressing over names: index + 1, 0 empty */
    size_t table_mask;
    uint64_t *pool;  /* the bit sets above live here */
} mpaths;

typedef struct {
    mm_step_kind kind;
    bool descendant;
    char *name;
    size_t name_len;
    long index;
} mstep;

typedef struct {
    mstep *steps;
    size_t n_steps;
    int rule;
    size_t first_state; /* states first_state .. first_state + n_steps */
} mpath;

typedef struct {
    char *name;
    char *policy;
    act_t act;
    bool audit;
    unsigned dirs;
} mhdr;

/* A policy's defaultDeny.headers: names that pass, the action for the rest. */
typedef struct {
    char *policy;
    act_t act;
    bool audit;
    unsigned dirs;
    char **names;
    size_t n_names;
    char **exempt; /* principals exempt from the policy's default deny */
    size_t n_exempt;
} mdhdr;

/* Default-deny rules are tracked per stream and per value as bit sets of one word. */
#define MAX_DENY 64

struct mm_masker {
    _Atomic long refs;
    bool scan;
    mrule *rules;
    size_t n_rules;
    size_t first_deny; /* rules first_deny.. are defaultDeny rules, after every explicit one */
    mpath *paths; /* copied steps, which pa's names point into */
    size_t n_paths;
    mpaths pa;
    det_set *det[2]; /* [0] response, [1] request; NULL when empty */
    mslot *slots;    /* DET_BUILTIN_COUNT + number of patterns */
    size_t n_slots;
    mhdr *hdrs;
    size_t n_hdrs;
    mdhdr *dhdrs; /* in policy order */
    size_t n_dhdrs;
    char **ctypes; /* contentTypes named by rules, lowercase */
    size_t n_ctypes;
    unsigned dirs_any;
    bool pb_bytes; /* some policy's spec.grpc.scanBytes: detectors read protobuf bytes */
    mm_on_error on_error[2];
    mm_unlisted unlisted[2];
    bool ws_binary_pass[2]; /* every policy of the direction lets binary messages pass */
    uint64_t ws_max_message[2]; /* the smallest maxMessageBytes of the direction */
};

/* path.c: builds m->pa from m->paths. */
mm_err paths_compile(mm_masker *m);
void paths_clear(mpaths *pa);
/* The hash of a member name, for the name table (inline: it runs on every member name a
 * path waits for). */
static inline uint64_t paths_hash(const char *p, size_t n)
{
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ull, w = 0;
    uint32_t a, b;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (i == n)
        return h;
    /* the rest in at most two loads that stay within the name (n is in the hash) */
    if (n >= 8) {
        memcpy(&w, p + n - 8, 8);
    } else if (n >= 4) {
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        w = a | (uint64_t)b << 32;
    } else {
        w = (unsigned char)p[0] | (uint64_t)(unsigned char)p[n / 2] << 8 |
            (uint64_t)(unsigned char)p[n - 1] << 16;
    }
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    return h ^ h >> 32;
}

/* Direction index for an mm_direction: 0 response, 1 request. */
static inline int dir_index(mm_direction d) { return d == MM_DIR_REQUEST ? 1 : 0; }

#endif
