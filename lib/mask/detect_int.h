/* lib/mask: what the detector files share. detect.c owns sets, scratch, the scan loop and
 * the registry table; det_num.c (digit runs: cards, SSNs, phones, SINs, Aadhaar), det_net.c
 * (email, IP addresses), det_id.c (IBAN, NINO, passport MRZ) and det_secret.c (tokens,
 * keys, passwords) hold the detectors; det_base.c the helpers they all call. Calls go
 * detect.c -> det_*.c -> det_base.c, never back. */
#ifndef MM_DETECT_INT_H
#define MM_DETECT_INT_H

#include "mask/mask_int.h"
#include "mask/simd_int.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- character classes (det_base.c fills det_cls once) ------------------------------- */

enum { C_DIGIT = 1, C_UPPER = 2, C_LOWER = 4, C_HEX = 8, C_LOCAL = 16, C_B64U = 32,
       C_TOKEN = 64, C_USERINFO = 128 };
#define C_ALNUM (C_DIGIT | C_UPPER | C_LOWER)

extern unsigned char det_cls[256];
void det_init_tables(void); /* idempotent, thread-safe */

/* What a byte adds to a short value's census (detect.c's value filter), summed over its
 * bytes (fewer than 16, so no nibble overflows): byte 0 digits | capitals << 4, byte 1
 * '.' | ':' << 4, byte 2 '@' | '=' << 4, byte 3 digits + 2 per '+'. */
extern uint32_t det_vcount[256];

static inline bool is_digit(unsigned char c) { return (unsigned)(c - '0') < 10u; }
static inline bool is_alnum(unsigned char c) { return det_cls[c] & C_ALNUM; }
static inline bool is_upper(unsigned char c) { return (unsigned)(c - 'A') < 26u; }
static inline bool is_lower(unsigned char c) { return (unsigned)(c - 'a') < 26u; }

/* word classes a detector starts at (the registry's `words`) */
enum { W_DIGIT = 1, W_UPPER = 2, W_LOWER = 4 };

/* ---- sets and scratch (detect.c makes them; det_base.c adds matches) ----------------- */

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* The literals one of which a subject holds whenever a pattern matches (pattern.c). */
typedef struct det_lits det_lits;

typedef struct {
    char *name;
    pcre2_code *code;
    bool jit;
    bool utf;  /* (*UTF) or (*UTF8): matched through pcre2_match, which checks the subject */
    int tag;
    det_lits *lits; /* NULL: none known, the pattern runs on every value */
} det_pattern;

/* ---- the patterns' prefilter (pattern.c) ---------------------------------------------- */

#define DET_PF_WORDS 4 /* 64-bit words of a pattern bitmap: DET_MAX_PATTERNS (256) bits */

/* Reads a regex (already compiled by PCRE2) for its literals: *out NULL when it has none the
 * reader can vouch for. MM_ENOMEM is the only error. */
mm_err det_lits_extract(const char *regex, det_lits **out);
void det_lits_free(det_lits *l);
size_t det_lits_count(const det_lits *l);
/* Literal k (ASCII, lower case) and its length; borrowed from l. */
const unsigned char *det_lits_get(const det_lits *l, size_t k, size_t *len);

/* One automaton over the literals of n patterns (at most DET_PF_WORDS * 64). */
typedef struct det_pf det_pf;
mm_err det_pf_build(const det_pattern *pats, size_t n, det_pf **out);
void det_pf_free(det_pf *pf);
/* Sets bit p of maybe[] for each pattern p that may match t[0..n) (its literal occurs, case
 * folded, or it has none); one pass over t. */
void det_pf_scan(const det_pf *pf, const unsigned char *t, size_t n, uint64_t *maybe);

/* What det_pf_none reads of an automaton (pattern.c fills it): each literal holds one of the
 * rare bytes (its rarest, a letter in both cases) and has min_len bytes or more. */
typedef struct {
    bool any_always;    /* some pattern has no literal: it may match any value */
    bool rare[256];
    size_t n_rare;      /* distinct rare bytes (0: too many to look for) */
    unsigned char rare1; /* the rare byte when n_rare is 1 */
    size_t min_len;     /* the shortest literal */
} det_pf_quick;
const det_pf_quick *det_pf_quick_of(const det_pf *pf); /* borrowed from pf */

/* Does t[0..n) hold byte c? Short values without a call (two overlapping 8-byte words from 8
 * bytes on, tested for a zero byte the usual bit-trick way), longer ones by memchr. */
static inline bool det_has_byte(const unsigned char *t, size_t n, unsigned char c)
{
    if (n > 16)
        return memchr(t, c, n) != NULL;
    if (n < 8) {
        for (size_t i = 0; i < n; i++)
            if (t[i] == c)
                return true;
        return false;
    }
    const uint64_t ones = 0x0101010101010101ull, highs = ones << 7;
    uint64_t a, b;
    memcpy(&a, t, 8);
    memcpy(&b, t + n - 8, 8);
    a ^= ones * c;
    b ^= ones * c;
    return (((a - ones) & ~a) | ((b - ones) & ~b)) & highs;
}

/* True when det_pf_scan would mark no pattern (every pattern has literals and none occurs),
 * decided without the automaton: t is shorter than every literal, or lacks every rare byte. */
static inline bool det_pf_none(const det_pf_quick *q, const unsigned char *t, size_t n)
{
    if (q->any_always)
        return false;
    if (n < q->min_len)
        return true;
    if (q->n_rare == 1)
        return !det_has_byte(t, n, q->rare1);
    if (!q->n_rare)
        return false;
    for (size_t i = 0; i < n; i++)
        if (q->rare[t[i]])
            return false;
    return true;
}

#define DET_FIT_MAX 63
#define DET_VLEN_MAX 63 /* the longest value length the value filter tells apart */

/* what may start at a byte: its word class, or the detectors triggered by that byte */
enum { T_WORD = 1, T_BYTE = 2 };

struct det_set {
    bool on[DET_BUILTIN_COUNT];
    bool members[DET_BUILTIN_COUNT]; /* may use member names as evidence */
    bool any_members;
    int tag[DET_BUILTIN_COUNT];
    unsigned char trig[256];          /* T_* per byte, for the detectors that are on */
    bool any_words; /* some detector starts at words */
    uint32_t lens_ok[32];   /* bit id: detector id may start at a word this long (min(len, 31)) */
    uint32_t first_ok[256]; /* bit id: ... at a word that begins with this byte (its class) */
    uint32_t next_ok[256]; /* bit id: detector id may start at a word before this byte */
    /* bit id: a match of detector id may start min(r, DET_FIT_MAX) bytes before the end */
    uint32_t fit[DET_FIT_MAX + 1];
    bool exhaustive; /* det_set_exhaustive: no prefilter, no SIMD (the tests' reference) */
    uint32_t byte_ids[256]; /* bit id: detector id starts at this byte */
    uint32_t bfit[DET_FIT_MAX + 1]; /* fit, for a match at a trigger byte */
    unsigned char tbytes[8]; /* the distinct trigger bytes, for the SIMD filter */
    size_t n_tbytes;         /* more than 8: the filter is off */
    unsigned char ttab[32];  /* their nibble tables (det_ttab) */
    bool any_builtin;
    /* the value filter (detect.c): the detectors that fit in a value of min(n, DET_VLEN_MAX)
     * bytes, and those a short value's census allows, by its bytes 0-3 (det_vcount) */
    uint32_t v_len[DET_VLEN_MAX + 1];
    uint32_t v_census[4][256];
    det_pattern *pats;
    size_t n_pats;
    pcre2_general_context *gctx; /* PCRE2 allocates through mm_malloc */
    pcre2_compile_context *cctx;
    det_pf *pf; /* NULL: every pattern runs on every value (no patterns, or exhaustive) */
    const det_pf_quick *pfq; /* pf's, NULL without pf */
    bool pf_quick; /* det_pf_none is worth asking before the automaton (detect.c) */
    bool compiled;
};

struct det_scratch {
    const det_set *set;
    pcre2_match_data **md; /* one per pattern */
    size_t n_md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    det_mask_fn masks; /* the SIMD trigger filter (simd_int.h), NULL: bytes only */
    det_match *m;   /* matches of the value being scanned, sorted before reporting */
    det_match *tmp; /* merge-sort space, as large as m */
    size_t n, cap;
    uint32_t ids; /* the value filter's verdict on the value being scanned (detect.c) */
};

/* ---- the scan state ------------------------------------------------------------------- */

typedef struct {
    const det_set *set;
    det_scratch *sc;
    const unsigned char *t;
    size_t n;
    uint32_t ids; /* the detectors the value filter lets through: no other one can match */
    /* a detector is not tried before the end of its last match: next[id], valid only once
     * bit id of `found` is set (so a scan starts without clearing the array) */
    size_t next[DET_BUILTIN_COUNT];
    uint32_t found;
    mm_err rc;
} scan;

/* Where detector id may next start: the end of its last match, 0 before it has one. */
static inline size_t det_next(const scan *s, det_id id)
{
    return s->found >> id & 1 ? s->next[id] : 0;
}

/* Reports a match of built-in `id` over [start, end) and moves next[id] to end. */
void det_found(scan *s, det_id id, size_t start, size_t end);
/* Reports a match of a custom pattern. */
void det_add(scan *s, size_t start, size_t end, int tag, const char *name);

/* The byte at i, or 0 past the end. */
static inline unsigned char at(const scan *s, size_t i) { return i < s->n ? s->t[i] : 0; }

/* Is t[i - 1] a letter or digit (no boundary before i)? */
static inline bool alnum_before(const scan *s, size_t i) { return i > 0 && is_alnum(s->t[i - 1]); }

/* Does the text at i go on with "<sep><digit>"? */
static inline bool continues(const scan *s, size_t i, unsigned char sep)
{
    return i + 1 < s->n && s->t[i] == sep && is_digit(s->t[i + 1]);
}

/* k digits at i? */
static inline bool det_digits_at(const scan *s, size_t i, size_t k)
{
    if (i + k > s->n)
        return false;
    for (size_t j = 0; j < k; j++)
        if (!is_digit(s->t[i + j]))
            return false;
    return true;
}
/* The number that k digits at d spell. */
static inline unsigned det_num(const unsigned char *d, size_t k)
{
    unsigned v = 0;
    for (size_t i = 0; i < k; i++)
        v = v * 10 + (unsigned)(d[i] - '0');
    return v;
}

/* Is c one of the separators `seps` (never NUL)? strchr without the call. */
static inline bool det_sep_in(const char *seps, unsigned char c)
{
    for (; *seps; seps++)
        if ((unsigned char)*seps == c)
            return true;
    return false;
}
/* Luhn over n digits (d holds digits only: the callers check). */
bool det_luhn(const unsigned char *d, size_t n);

/* A run of digit groups starting at i: groups of 1..maxg digits joined by one separator
 * kind (the first one met among `seps`). Fills d with the digits (at most cap), ends[k] and
 * counts[k] with where group k ends and how many digits the groups 0..k hold. Returns the
 * number of groups (0 when i does not start with a digit). */
size_t det_groups(const scan *s, size_t i, const char *seps, size_t maxg, unsigned char *d,
                  size_t cap, size_t *ends, size_t *counts, size_t maxgroups,
                  unsigned char *sep_out);

/* ---- the registry --------------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *doc;
    unsigned words;     /* W_*: word classes where a match may start */
    const char *bytes;  /* other bytes where a match may start */
    const char *keys;   /* member names that are evidence ('|' between them), "" for none */
    /* a cheap check at a word [i, w) (or the byte i, w = i + 1): may a match start here? */
    bool (*shape)(const scan *s, size_t i, size_t w);
    /* reads from i, validates, reports each match with det_found */
    void (*find)(scan *s, size_t i, size_t w);
    /* the check of a whole value with separators removed (NULL: none) */
    bool (*valid)(const unsigned char *v, size_t n);
} det_entry;

extern const det_entry det_registry[DET_BUILTIN_COUNT];

#define DETECTOR(id, fn, name, words, bytes, keys, doc)                                     \
    bool fn##_shape(const scan *s, size_t i, size_t w);                                     \
    void fn##_find(scan *s, size_t i, size_t w);
#include "mask/detectors.def"
#undef DETECTOR

/* validators (the registry's `valid`, also used by the finders) */
bool card_valid(const unsigned char *d, size_t n);
bool ssn_valid(const unsigned char *d, size_t n);
bool phone_valid(const unsigned char *d, size_t n);
bool iban_valid(const unsigned char *d, size_t n);
bool github_valid(const unsigned char *d, size_t n);
bool nino_valid(const unsigned char *d, size_t n);
bool sin_valid(const unsigned char *d, size_t n);
bool aadhaar_valid(const unsigned char *d, size_t n);
bool mrz_valid(const unsigned char *d, size_t n);

#endif
