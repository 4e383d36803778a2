/* lib/mask: SIMD structural scanning of JSON, the way simdjson's first stage works, for the
 * JSON masker (json.c). A 64-byte block is classified into bit masks (quotes, backslashes,
 * whitespace, structural characters by table lookup, control bytes), escaped quotes are
 * resolved with the odd/even carry trick and the bytes inside strings found by a prefix XOR
 * (carry-less multiplication); state carries from block to block. jskim.c walks the tokens
 * these masks give over a container that no rule can touch, or only detectors read, or
 * where paths go on by member names beside them (validating it exactly as json.c would,
 * without a byte-by-byte state machine) and hands anything unusual back to json.c.
 * Not part of the public surface. */
#ifndef MM_SIMD_INT_H
#define MM_SIMD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The JSON machine's states (json.c), shared with jskim.c. */
enum {
    J_VALUE,     /* a value must start */
    J_ARR_FIRST, /* after '[': a value or ']' */
    J_OBJ_FIRST, /* after '{': a member name or '}' */
    J_OBJ_KEY,   /* after ',' in an object: a member name */
    J_KEY,       /* in a member name */
    J_COLON,     /* after a member name */
    J_AFTER,     /* after a value in a container: ',' or the closer */
    J_STR,       /* in a string value */
    J_NUM,       /* in a number */
    J_LIT,       /* in true, false or null */
    J_END,       /* after the top-level value */
    J_NEXT,      /* NDJSON: after a newline, a value may start */
};

/* What one block's classification carries into the next. All zero at a token boundary
 * outside a string. */
typedef struct {
    uint64_t in_str;  /* all ones when the previous block ended inside a string */
    uint64_t esc;     /* 1 when the previous block ended in an odd run of backslashes */
    uint64_t scalar;  /* 1 when its last byte was part of a number or literal */
} sk_carry;

/* A block's bit masks (bit k: byte k of the block). */
typedef struct {
    uint64_t tok;    /* token starts outside strings: {}[]:, and the first byte of every
                        string, number or literal (simdjson's structural and pseudo-structural
                        characters) */
    uint64_t in_str; /* inside a string: the opening quote and the content, not the closer */
    uint64_t esc;    /* bytes that a backslash escapes */
    uint64_t ctl;    /* bytes below 0x20 */
    uint64_t nl;     /* newlines */
    unsigned nls;    /* how many */
} sk_block;

/* Classifies the 64 bytes at p, of which those before byte `first` are not looked at: they
 * count as whitespace (byte `first` is at a token boundary outside strings, after the
 * carry *c). */
typedef void (*sk_classify_fn)(const unsigned char *p, unsigned first, sk_carry *c,
                               sk_block *b);

/* The classifiers this build has, and which one runs: MM_SIMD=off|avx2|avx512 in the
 * environment chooses (read each time a stream starts; unknown or unsupported values fall
 * back to the best the CPU has, `off` to json.c's byte machine alone). NULL: off. */
typedef enum { SIMD_OFF, SIMD_AVX2, SIMD_AVX512 } simd_level;
simd_level simd_best(void);       /* what the CPU supports */
simd_level simd_chosen(void);     /* simd_best, or less when MM_SIMD says so */
sk_classify_fn simd_classifier(simd_level l);
const char *simd_name(simd_level l);

void sk_classify_avx2(const unsigned char *p, unsigned first, sk_carry *c, sk_block *b);
void sk_classify_avx512(const unsigned char *p, unsigned first, sk_carry *c, sk_block *b);

/* The detectors' trigger filter (detect.c) over the min(n, 64) bytes at p (n >= 1; nothing
 * past them is read): *alnum the ASCII letters and digits (where a word may start), *hits
 * the trigger bytes (det_ttab); no bit at or above n. NULL: off. */
#define DET_MASK_BYTES 8
typedef void (*det_mask_fn)(const unsigned char *p, size_t n, const unsigned char *ttab,
                            uint64_t *alnum, uint64_t *hits);
det_mask_fn simd_det_masks(simd_level l);
void det_masks_avx2(const unsigned char *p, size_t n, const unsigned char *ttab,
                    uint64_t *alnum, uint64_t *hits);
void det_masks_avx512(const unsigned char *p, size_t n, const unsigned char *ttab,
                      uint64_t *alnum, uint64_t *hits);
/* The lookup tables of up to DET_MASK_BYTES trigger bytes: ttab[0..16) by low nibble,
 * ttab[16..32) by high nibble, bit k set at the nibbles of bytes[k]; a byte is a trigger
 * exactly when its two entries share a bit (each bit belongs to one byte). */
static inline void det_ttab(const unsigned char *bytes, size_t nb, unsigned char ttab[32])
{
    for (size_t k = 0; k < 32; k++)
        ttab[k] = 0;
    for (size_t k = 0; k < nb && k < DET_MASK_BYTES; k++) {
        ttab[bytes[k] & 15] |= (unsigned char)(1u << k);
        ttab[16 + (bytes[k] >> 4)] |= (unsigned char)(1u << k);
    }
}

/* The ISA-independent part of a classification, from the raw byte masks. `pxor` is the
 * prefix XOR of its argument (carry-less multiplication by all ones). */
static inline void sk_finish(uint64_t quote, uint64_t bs, uint64_t ws, uint64_t op,
                             uint64_t ctl, uint64_t nl, unsigned first,
                             uint64_t (*pxor)(uint64_t), sk_carry *c, sk_block *b)
{
    /* the bytes before `first` as whitespace */
    const uint64_t keep = ~0ull << first;
    quote &= keep, bs &= keep, op &= keep, ctl &= keep, nl &= keep, ws |= ~keep;

    /* escaped bytes: odd-length runs of backslashes escape the byte after them */
    const uint64_t even = 0x5555555555555555ull;
    bs &= ~c->esc;
    uint64_t follows = bs << 1 | c->esc;
    uint64_t odd_starts = bs & ~even & ~follows;
    uint64_t even_runs;
    c->esc = __builtin_add_overflow(odd_starts, bs, &even_runs);
    uint64_t esc = (even ^ (even_runs << 1)) & follows;

    quote &= ~esc;
    uint64_t in_str = pxor(quote) ^ c->in_str;
    c->in_str = (uint64_t)((int64_t)in_str >> 63);
    uint64_t scalar = ~(op | ws);
    uint64_t nq = scalar & ~quote;
    uint64_t follows_nq = nq << 1 | c->scalar;
    c->scalar = nq >> 63;
    uint64_t tail = in_str ^ quote; /* the content and the closing quote */
    b->tok = (op | (scalar & ~follows_nq)) & ~tail;
    b->in_str = in_str;
    b->esc = esc;
    b->ctl = ctl;
    b->nl = nl;
    b->nls = (unsigned)__builtin_popcountll(nl); /* the caller's target has popcnt */
}

/* The last block jskim classified, kept across its calls within one chunk (json.c reads a
 * few bytes between them; the block's masks stay true for what follows, being what json.c
 * read): blocks lie on a grid of 64 bytes from the chunk's start. data NULL: none. */
typedef struct {
    const char *data;
    size_t base;     /* the block: data[base..base + 64) */
    unsigned first;  /* classified from this byte of it */
    sk_block b;
    sk_carry c;      /* the carry after it */
} sk_cache;

/* What jskim did: it stopped before data[pos] in state js (a state between tokens), `depth`
 * containers deeper than where it started, or than the last object sk_names's open opened
 * (their kinds in kinds[]: bit k set for an object at relative depth k + 1), after `lines`
 * newlines. When depth is 0 and pos < len,
 * data[pos] closes that container or is a token json.c must read itself. (It does not count
 * the container's elements: an untouched array's index is never read.) */
#define SK_MAX_DEPTH 512
typedef struct {
    size_t pos;
    int js;
    size_t depth;
    uint64_t kinds[SK_MAX_DEPTH / 64];
    uint64_t lines;
} sk_result;

/* The member names of an object in which rules may touch some members' values, only ever
 * through their names (json.c: no wildcard or descendant path is active there): judge(ctx,
 * name, n) takes in a name, as written and without escapes, as json.c would on reading it,
 * and says what becomes of its value: SK_PASS, skimmed; SK_CONST, replaced by a constant
 * when it is a string, number, true or false that jskim sees whole and valid, not longer
 * than max (replace(ctx, data, start, end, lines) writes the output up to data[end), false
 * when that fails; `lines`: the newlines jskim skimmed before data[start] in this call, for
 * the finding's line); SK_READ, a value replace could take handed to take(ctx, data, start,
 * end, lines), which decides it as json.c would (1; 0: that failed; -1: json.c must read
 * it); otherwise jskim stops after the ':' and json.c reads the value, but for an object
 * whose '{' it sees in the same block: open(ctx, data, at) opens it as json.c would at
 * data[at] and says whether jskim goes on judging its names in the same way (1; close(ctx,
 * data, at) then closes it at its '}', as json.c would, 0 when that fails), stops after the
 * '{' (0: json.c reads the object) or stops before it (-1: not opened; json.c reads it, or
 * gives up on the stream when that failed).
 * jskim stops before a name it cannot judge in place (escaped, crossing a block, longer
 * than max: json.c's limit error) and before one judge gives a negative verdict for (it
 * could not take the name in: json.c reads it and says why). SK_OPEN is SK_READ here but
 * with `vals` (below).
 * With `vals` too (json.c's judged frames: paths may go on below any member, detectors read
 * the values), the skimmed container may be an array as well, and at its own depth and that
 * of every container open opened: a name's value is SK_PASS, read as vals says (strings and
 * numbers to value, containers skimmed with vals); SK_OPEN, a string or number read as for
 * SK_PASS, a container opened with open(ctx, data, at) (an array's element containers are
 * always opened so); SK_CONST and SK_READ as above, but where json.c must read the value,
 * and for an object open does not take on, stopped before the member's name (json.c reads
 * the name again, and the value). Close then returns the kind ('{' or '[') of the
 * container the closed one was in, 0 when closing failed. */
enum { SK_PASS, SK_READ, SK_CONST, SK_OPEN };
typedef struct {
    int (*judge)(void *ctx, const char *name, size_t n);
    bool (*replace)(void *ctx, const char *data, size_t start, size_t end, uint64_t lines);
    int (*open)(void *ctx, const char *data, size_t at);
    int (*close)(void *ctx, const char *data, size_t at);
    int (*take)(void *ctx, const char *data, size_t start, size_t end, uint64_t lines);
    void *ctx;
    size_t max;
} sk_names;

/* The strings and numbers of a container that only detectors read (json.c: no path,
 * default deny, tweak, removal or findings path there), at every depth: value(ctx, data,
 * start, end, name, nlen, lines) takes the value data[start..end) (a string with its quotes,
 * without escapes or control bytes) whole within the chunk and not longer than max, as
 * json.c would at its end; name[0..nlen) is its member name as written (NULL in an array;
 * read only when `names`: then names are bounded by max and jskim stops before an escaped
 * one); `lines` the newlines jskim skimmed before data[start] in this call; false when that
 * fails (jskim stops after the value). Any other value jskim stops before, or before its
 * member name in an object, and json.c reads it. Literals are skimmed (detectors never
 * read them). */
typedef struct {
    bool (*value)(void *ctx, const char *data, size_t start, size_t end, const char *name,
                  size_t nlen, uint64_t lines);
    void *ctx;
    size_t max;
    bool names;
} sk_values;

/* Walks the tokens of data[i..len) from state js inside a container of kind `kind` ('{' or
 * '['), with `room` more levels of nesting allowed, validating as json.c would; member
 * names longer than `keymax` bytes as written (SIZE_MAX: no limit) are left to json.c.
 * `names` (NULL: nothing in the container is touched) judges an object's own names;
 * `vals` (NULL: none) reads its values instead (not with `names`). jskim_judged: with both
 * (sk_names says how), member names not bounded but by `names`. */
void jskim(sk_classify_fn cls, sk_cache *cache, const char *data, size_t i, size_t len, int js,
           char kind, size_t room, size_t keymax, const sk_names *names, const sk_values *vals,
           sk_result *r);
void jskim_judged(sk_classify_fn cls, sk_cache *cache, const char *data, size_t i, size_t len,
                  int js, char kind, size_t room, const sk_names *names, const sk_values *vals,
                  sk_result *r);

/* ---- json.c's byte machine: the next byte that ends or escapes a string ------------- */

/* Bytes that cannot appear unescaped in a string, and the two that end or escape it. */
static const unsigned char str_stop[256] = {
    [0 ... 31] = 1, ['"'] = 1, ['\\'] = 1,
};

/* Index of the first byte at or after i that ends or escapes a string (or is a control
 * byte), or len. Sixteen bytes at a time where SSE2 is there (every x86-64). */
static inline size_t str_scan(const char *p, size_t i, size_t len)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  ctl = _mm_set1_epi8(0x1f);
    while (i + 16 <= len) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                   _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
        int mask = _mm_movemask_epi8(hit);
        if (mask)
            return i + (size_t)__builtin_ctz((unsigned)mask);
        i += 16;
    }
#endif
    while (i < len && !str_stop[(unsigned char)p[i]])
        i++;
    return i;
}

#endif
