/* lib/mask: skimming a JSON container that no rule can touch (json.c decides which), by the
 * tokens of simd_int.h's block masks instead of byte by byte: whitespace and string contents
 * are never looked at one byte at a time, only the structure, numbers, literals and escapes.
 * Where only detectors read values, it hands each string and number whole to them (jread.c
 * through sk_values) and the untouched stretches between go out as one run; where paths
 * reach members by name (or alike for all, as `..` and `*` do) it judges the names
 * (sk_names) and does both (jskim_judged, the same walk in a unit of its own).
 * It accepts exactly what json.c's machine accepts; at the first thing it is not sure of (an
 * error, an escape it cannot see the end of, a token cut by the end of the chunk, a member
 * name that may be over the limit, nesting at the limit) it stops before the token, and
 * json.c reads on from there, so every verdict, message and offset is json.c's own. */
#include "mask/simd_int.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Bytes that may follow a number or literal: whitespace and the structural characters. */
static const unsigned char delim[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1, [','] = 1, [':'] = 1,
    ['['] = 1, [']'] = 1, ['{'] = 1, ['}'] = 1,
};

static inline bool digit(unsigned char c)
{
    return (unsigned char)(c - '0') < 10;
}

/* The end of the number or literal at d[i], when it is valid and a delimiter follows it
 * within the chunk; 0 otherwise. */
static size_t scalar_end(const unsigned char *d, size_t i, size_t len)
{
    size_t e = i;
    unsigned char c = d[i];
    if (c == 't' || c == 'f' || c == 'n') {
        const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
        size_t n = c == 'f' ? 5 : 4;
        if (len - i <= n || memcmp(d + i, lit, n) != 0)
            return 0;
        e = i + n;
    } else {
        if (d[e] == '-' && ++e == len)
            return 0;
        if (d[e] == '0')
            e++;
        else if (digit(d[e]))
            while (++e < len && digit(d[e]))
                ;
        else
            return 0;
        if (e < len && d[e] == '.') {
            if (++e == len || !digit(d[e]))
                return 0;
            while (++e < len && digit(d[e]))
                ;
        }
        if (e < len && (d[e] | 0x20) == 'e') {
            if (++e < len && (d[e] == '+' || d[e] == '-'))
                e++;
            if (e >= len || !digit(d[e]))
                return 0;
            while (++e < len && digit(d[e]))
                ;
        }
    }
    return e < len && delim[d[e]] ? e : 0;
}

static inline int hexv(unsigned char c)
{
    c |= 0x20;
    return digit(c) || (c >= 'a' && c <= 'f');
}

/* Whether the escape whose character is d[a] is whole within the chunk and valid. */
static bool escape_ok(const unsigned char *d, size_t a, size_t len)
{
    if (a >= len)
        return false;
    switch (d[a]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return true;
    case 'u':
        return a + 4 < len && hexv(d[a + 1]) && hexv(d[a + 2]) && hexv(d[a + 3]) &&
               hexv(d[a + 4]);
    }
    return false;
}

static size_t count_nl(const unsigned char *d, size_t from, size_t to)
{
    size_t n = 0;
    for (size_t k = from; k < to; k++)
        n += d[k] == '\n';
    return n;
}

/* jskim runs only with a classifier (simd_classifier: AVX2 or AVX-512; simd_best asks
 * for popcnt, bmi and bmi2 beside them), so it is built for those though the file is built
 * for any x86-64: tzcnt and blsr take 5% off path rules (maskctl, bench/engine.py). */
#define SK_TARGET __attribute__((target("popcnt,bmi,bmi2")))

/* Set bits: one instruction. */
SK_TARGET static inline unsigned ones(uint64_t x)
{
    return (unsigned)__builtin_popcountll(x);
}

static inline uint64_t below(unsigned k)
{
    return k >= 64 ? ~0ull : (1ull << k) - 1;
}

/* The grammar as a table over the bytes that start tokens. States split json.c's by the
 * kind of the container they are in, so that a value's end and ',' need no look at the
 * stack. */
enum { S_VAL_O, S_VAL_A, S_ARR_FIRST, S_OBJ_FIRST, S_OBJ_KEY, S_COLON, S_AFTER_O, S_AFTER_A,
       S_N, /* actions: */ A_PUSH_O = S_N, A_PUSH_A, A_POP, A_SCALAR_O, A_SCALAR_A, A_COLON,
       A_KEY, A_VALUE, A_STR_O, A_STR_A, A_NAME, A_RCOLON, A_OPEN, A_STOP };
enum { C_OTHER, C_QUOTE, C_SCALAR, C_LBRACE, C_LBRACKET, C_RBRACE, C_RBRACKET, C_COLON, C_COMMA };
static const unsigned char tok_class[256] = {
    ['"'] = C_QUOTE, ['-'] = C_SCALAR, ['0' ... '9'] = C_SCALAR,
    ['t'] = C_SCALAR, ['f'] = C_SCALAR, ['n'] = C_SCALAR, ['{'] = C_LBRACE,
    ['['] = C_LBRACKET, ['}'] = C_RBRACE, [']'] = C_RBRACKET, [':'] = C_COLON, [','] = C_COMMA,
};
#define X A_STOP
/* One row per state: the next state or action for each byte that starts a token. */
#define ROW(other, quote, scalar, lbrace, lbracket, rbrace, rbracket, colon, comma)            \
    {[0 ... 255] = other, ['"'] = quote, ['-'] = scalar, ['0' ... '9'] = scalar,                \
     ['t'] = scalar, ['f'] = scalar, ['n'] = scalar, ['{'] = lbrace, ['['] = lbracket,          \
     ['}'] = rbrace, [']'] = rbracket, [':'] = colon, [','] = comma}
/* [1]: member names are bounded, so ':' is checked against the name before it; [2]: the
 * names of the skimmed object itself are judged (sk_names), or the containers of the skimmed
 * array opened (sk_names: every element alike), [0] or [1] serve inside; [3]:
 * strings and numbers are handed to sk_values, [4]: with their member names; [5]: sk_names
 * and sk_values together, at the depths sk_names judges ([3] or [4] serve inside) */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init" /* each row's default, then its tokens */
static const unsigned char next_state[6][S_N][256] = {
    /*            other quote scalar  {  [  }  ]  :  , */
  {
    [S_VAL_O] = ROW(X, S_AFTER_O, A_SCALAR_O, A_PUSH_O, A_PUSH_A, X, X, X, X),
    [S_VAL_A] = ROW(X, S_AFTER_A, A_SCALAR_A, A_PUSH_O, A_PUSH_A, X, X, X, X),
    [S_ARR_FIRST] = ROW(X, S_AFTER_A, A_SCALAR_A, A_PUSH_O, A_PUSH_A, X, A_POP, X, X),
    [S_OBJ_FIRST] = ROW(X, S_COLON, X, X, X, A_POP, X, X, X),
    [S_OBJ_KEY] = ROW(X, S_COLON, X, X, X, X, X, X, X),
    [S_COLON] = ROW(X, X, X, X, X, X, X, S_VAL_O, X),
    [S_AFTER_O] = ROW(X, X, X, X, X, A_POP, X, X, S_OBJ_KEY),
    [S_AFTER_A] = ROW(X, X, X, X, X, X, A_POP, X, S_VAL_A),
  },
  {
    [S_VAL_O] = ROW(X, S_AFTER_O, A_SCALAR_O, A_PUSH_O, A_PUSH_A, X, X, X, X),
    [S_VAL_A] = ROW(X, S_AFTER_A, A_SCALAR_A, A_PUSH_O, A_PUSH_A, X, X, X, X),
    [S_ARR_FIRST] = ROW(X, S_AFTER_A, A_SCALAR_A, A_PUSH_O, A_PUSH_A, X, A_POP, X, X),
    [S_OBJ_FIRST] = ROW(X, S_COLON, X, X, X, A_POP, X, X, X),
    [S_OBJ_KEY] = ROW(X, S_COLON, X, X, X, X, X, X, X),
    [S_COLON] = ROW(X, X, X, X, X, X, X, A_COLON, X),
    [S_AFTER_O] = ROW(X, X, X, X, X, A_POP, X, X, S_OBJ_KEY),
    [S_AFTER_A] = ROW(X, X, X, X, X, X, A_POP, X, S_VAL_A),
  },
  {
    [S_VAL_O] = ROW(X, S_AFTER_O, A_SCALAR_O, A_PUSH_O, A_PUSH_A, X, X, X, X),
    [S_VAL_A] = ROW(X, S_AFTER_A, A_SCALAR_A, A_OPEN, A_OPEN, X, X, X, X),
    [S_ARR_FIRST] = ROW(X, S_AFTER_A, A_SCALAR_A, A_OPEN, A_OPEN, X, A_POP, X, X),
    [S_OBJ_FIRST] = ROW(X, A_KEY, X, X, X, A_POP, X, X, X),
    [S_OBJ_KEY] = ROW(X, A_KEY, X, X, X, X, X, X, X),
    [S_COLON] = ROW(X, X, X, X, X, X, X, A_VALUE, X),
    [S_AFTER_O] = ROW(X, X, X, X, X, A_POP, X, X, S_OBJ_KEY),
    [S_AFTER_A] = ROW(X, X, X, X, X, X, A_POP, X, S_VAL_A),
  },
  {
    [S_VAL_O] = ROW(X, A_STR_O, A_SCALAR_O, A_PUSH_O, A_PUSH_A, X, X, X, X),
    [S_VAL_A] = ROW(X, A_STR_A, A_SCALAR_A, A_PUSH_O, A_PUSH_A, X, X, X, X),
    [S_ARR_FIRST] = ROW(X, A_STR_A, A_SCALAR_A, A_PUSH_O, A_PUSH_A, X, A_POP, X, X),
    [S_OBJ_FIRST] = ROW(X, S_COLON, X, X, X, A_POP, X, X, X),
    [S_OBJ_KEY] = ROW(X, S_COLON, X, X, X, X, X, X, X),
    [S_COLON] = ROW(X, X, X, X, X, X, X, A_RCOLON, X),
    [S_AFTER_O] = ROW(X, X, X, X, X, A_POP, X, X, S_OBJ_KEY),
    [S_AFTER_A] = ROW(X, X, X, X, X, X, A_POP, X, S_VAL_A),
  },
  {
    [S_VAL_O] = ROW(X, A_STR_O, A_SCALAR_O, A_PUSH_O, A_PUSH_A, X, X, X, X),
    [S_VAL_A] = ROW(X, A_STR_A, A_SCALAR_A, A_PUSH_O, A_PUSH_A, X, X, X, X),
    [S_ARR_FIRST] = ROW(X, A_STR_A, A_SCALAR_A, A_PUSH_O, A_PUSH_A, X, A_POP, X, X),
    [S_OBJ_FIRST] = ROW(X, A_NAME, X, X, X, A_POP, X, X, X),
    [S_OBJ_KEY] = ROW(X, A_NAME, X, X, X, X, X, X, X),
    [S_COLON] = ROW(X, X, X, X, X, X, X, A_RCOLON, X),
    [S_AFTER_O] = ROW(X, X, X, X, X, A_POP, X, X, S_OBJ_KEY),
    [S_AFTER_A] = ROW(X, X, X, X, X, X, A_POP, X, S_VAL_A),
  },
  {
    [S_VAL_O] = ROW(X, A_STR_O, A_SCALAR_O, A_OPEN, A_OPEN, X, X, X, X),
    [S_VAL_A] = ROW(X, A_STR_A, A_SCALAR_A, A_OPEN, A_OPEN, X, X, X, X),
    [S_ARR_FIRST] = ROW(X, A_STR_A, A_SCALAR_A, A_OPEN, A_OPEN, X, A_POP, X, X),
    [S_OBJ_FIRST] = ROW(X, A_KEY, X, X, X, A_POP, X, X, X),
    [S_OBJ_KEY] = ROW(X, A_KEY, X, X, X, X, X, X, X),
    [S_COLON] = ROW(X, X, X, X, X, X, X, A_VALUE, X),
    [S_AFTER_O] = ROW(X, X, X, X, X, A_POP, X, X, S_OBJ_KEY),
    [S_AFTER_A] = ROW(X, X, X, X, X, X, A_POP, X, S_VAL_A),
  },
};
#pragma GCC diagnostic pop
#undef ROW
#undef X

static int to_js(int st)
{
    static const int js[S_N] = {J_VALUE, J_VALUE, J_ARR_FIRST, J_OBJ_FIRST, J_OBJ_KEY, J_COLON,
                                J_AFTER, J_AFTER};
    return js[st];
}

static int from_js(int js, bool obj)
{
    switch (js) {
    case J_VALUE: return obj ? S_VAL_O : S_VAL_A;
    case J_ARR_FIRST: return S_ARR_FIRST;
    case J_OBJ_FIRST: return S_OBJ_FIRST;
    case J_OBJ_KEY: return S_OBJ_KEY;
    case J_COLON: return S_COLON;
    default: return obj ? S_AFTER_O : S_AFTER_A;
    }
}

/* The closing quote of a member name that starts at d[from] and goes on past its block:
 * the first byte that ends, escapes or breaks it must be that quote, within the chunk and
 * `max` bytes (the blocks after this one then see nothing unusual in it); SIZE_MAX when it
 * is not. Out of line: rare, and jskim's loop keeps its registers. */
__attribute__((noinline)) static size_t name_end(const unsigned char *d, size_t from, size_t len,
                                                 size_t max)
{
    size_t stop = len - from > max ? from + max + 1 : len;
    size_t q = str_scan((const char *)d, from, stop);
    return q == stop || d[q] != '"' ? SIZE_MAX : q;
}

/* The closing quote of the member name whose opening quote is bit k of block b (at
 * d + base), when json.c would take the name as it is written: before `lim` (no unusual
 * byte in it) or, when it goes on past the block, closed within the chunk (the byte
 * machine's scan finds its end), without escapes (json.c decodes those), not over `max`
 * bytes. SIZE_MAX when it is not. */
static inline __attribute__((always_inline)) size_t
name_close(const unsigned char *d, size_t base, size_t len, const sk_block *b, unsigned k,
           unsigned lim, size_t max)
{
    uint64_t after = ~b->in_str & ~below(k + 1); /* the closing quote is the first of them */
    size_t from = base + k + 1, q;
    if (after) {
        unsigned e = (unsigned)__builtin_ctzll(after);
        if (e >= lim || (b->esc & below(e) & ~below(k + 1)))
            return SIZE_MAX;
        q = base + e;
    } else if ((q = name_end(d, from, len, max)) == SIZE_MAX) {
        return SIZE_MAX;
    }
    return q - from > max ? SIZE_MAX : q;
}

/* The end of the value that starts at d[v]: a string closed within the chunk without an
 * escape or a control byte in it (the blocks after it see its rest as in a string), a
 * number, true or false followed by a delimiter within the chunk; 0 for any other (null
 * stays null: json.c says so). */
static inline __attribute__((always_inline)) size_t value_end(const unsigned char *d, size_t v,
                                                              size_t len)
{
    if (d[v] == '"') {
        size_t q = str_scan((const char *)d, v + 1, len);
        return q < len && d[q] == '"' ? q + 1 : 0;
    }
    if (tok_class[d[v]] != C_SCALAR || d[v] == 'n')
        return 0;
    return scalar_end(d, v, len);
}

/* jskim's walk; `judged`: names and vals together (a constant in each copy, so that the
 * other modes' loop keeps its registers) */
SK_TARGET static inline __attribute__((always_inline)) void
walk(sk_classify_fn cls, sk_cache *cache, const char *data, size_t i, size_t len, int js,
     char kind, size_t room, size_t keymax, const sk_names *names, const sk_values *vals,
     sk_result *r, const bool judged)
{
    const unsigned char *d = (const unsigned char *)data;
    unsigned char pad[64];
    sk_carry c = {0, 0, 0};
    /* blocks on the chunk's grid; the first is read from byte `first` (json.c read what
     * lies before it) */
    size_t depth = 0, base = i & ~(size_t)63, pos = len;
    unsigned first = (unsigned)(i - base);
    int st = from_js(js, kind == '{');
    uint64_t lines = 0; /* newlines before the block at base */
    /* the last token read: when a string's content turns out unusual, or a member name may
     * be over the limit, json.c reads on from that string (no token lies inside one) */
    size_t last = i;
    int last_st = st;
    bool at_last = false;
    int verdict = SK_PASS; /* of the name just judged */
    /* sk_values: the member name of the value to come (its quote stays `last` until the
     * value is read: json.c reads both when jskim stops between them) */
    const char *name = NULL;
    size_t nlen = 0;
    size_t opened = 0; /* containers opened by sk_names's open and not closed yet */
    char here = kind;  /* the kind of the container at depth 0 (skimmed, or opened) */

    /* `inner` inside the containers jskim opens, `tab` at the depth it is at */
    const unsigned char(*inner)[256] =
        next_state[vals ? 3 + vals->names : keymax != SIZE_MAX];
    const unsigned char(*outer)[256] = judged ? next_state[5] : names ? next_state[2] : inner;
    const unsigned char(*tab)[256] = outer;
    for (; base < len; base += 64, first = 0) {
        const unsigned char *p = d + base;
        if (len - base < 64) { /* the end of the chunk: spaces after it, no token there */
            memcpy(pad, p, len - base);
            memset(pad + (len - base), ' ', 64 - (len - base));
            p = pad;
        }
        const sk_block *b = &cache->b;
        uint64_t keep = ~0ull, force = 0;
        if (cache->data == data && cache->base == base && cache->first <= first) {
            c = cache->c;
            keep <<= first;
            /* the cached block may have taken the byte at i for the rest of a number or
             * literal json.c read: it starts a token (which json.c's grammar refuses) */
            if (p[first] != ' ' && p[first] != '\n' && p[first] != '\t' && p[first] != '\r')
                force = 1ull << first;
        } else {
            cls(p, first, &c, &cache->b);
            cache->data = data, cache->base = base, cache->first = first, cache->c = c;
        }
        const uint64_t nl = b->nl & keep;
        /* inside strings: control bytes are errors, escapes are checked one by one */
        unsigned lim = 64;
        uint64_t odd = (b->ctl | b->esc) & b->in_str & keep;
        while (odd) {
            unsigned k = (unsigned)__builtin_ctzll(odd);
            odd &= odd - 1;
            if ((b->ctl >> k & 1) || !escape_ok(d, base + k, len)) {
                lim = k;
                break;
            }
        }
        uint64_t t = ((b->tok & keep) | force) & below(lim);
        while (t) {
            unsigned k = (unsigned)__builtin_ctzll(t);
            t &= t - 1;
            size_t at = base + k;
            int nx = tab[st][p[k]];
            if (nx < S_N) {
                last = at, last_st = st, st = nx;
                continue;
            }
            switch (nx) {
            case A_COLON:
                if (at - last - 2 > keymax) {
                    at_last = true; /* after a name that may be over the limit: json.c sees */
                    goto stop;
                }
                last = at, last_st = st, st = S_VAL_O;
                continue;
            case A_PUSH_O:
            case A_PUSH_A:
            push:
                if (depth >= room || depth >= SK_MAX_DEPTH)
                    goto stop;
                if (nx == A_PUSH_O)
                    r->kinds[depth / 64] |= 1ull << (depth % 64);
                else
                    r->kinds[depth / 64] &= ~(1ull << (depth % 64));
                depth++;
                tab = inner;
                last = at, last_st = st;
                st = nx == A_PUSH_O ? S_OBJ_FIRST : S_ARR_FIRST;
                continue;
            case A_POP:
                if (!depth && opened) { /* a container sk_names opened: json.c closes it */
                    last = at + 1, last_st = st = S_AFTER_O;
                    opened--, room++;
                    int in = names->close(names->ctx, data, at);
                    if (in == '[')
                        last_st = st = S_AFTER_A;
                    here = (char)in;
                    if (!in) {
                        pos = at + 1;
                        goto out;
                    }
                    continue;
                }
                if (!depth)
                    goto stop; /* the skimmed container's own closer: json.c reads it */
                if (!--depth)
                    tab = outer;
                last = at, last_st = st;
                st = (depth ? r->kinds[(depth - 1) / 64] >> ((depth - 1) % 64) & 1 : here == '{')
                         ? S_AFTER_O : S_AFTER_A;
                continue;
            case A_KEY: { /* a name of the skimmed object: json.c reads those it cannot judge */
                size_t q = name_close(d, base, len, b, k, lim, names->max);
                if (q == SIZE_MAX ||
                    (verdict = names->judge(names->ctx, data + at + 1, q - at - 1)) < 0)
                    goto stop;
                if (judged) /* for vals */
                    name = data + at + 1, nlen = q - at - 1;
                last = at, last_st = st, st = S_COLON;
                continue;
            }
            case A_VALUE: /* after a touched name, json.c reads the value, or it is replaced */
                if (!judged) /* judged: json.c reads the name again (the detectors take it) */
                    last = at, last_st = st;
                st = S_VAL_O;
                if (verdict == SK_PASS || (judged && verdict == SK_OPEN))
                    continue; /* judged: a string or number is the detectors'; A_OPEN below */
                if ((verdict == SK_CONST || verdict == SK_READ) && t) {
                    size_t start = base + (unsigned)__builtin_ctzll(t);
                    size_t end = value_end(d, start, len);
                    if (end && end - start <= names->max) {
                        /* replaced, or decided by json.c in place (take); the output is
                         * written to end: json.c never reads before it */
                        const uint64_t vl = lines + ones(nl & below(start - base));
                        int done = verdict == SK_READ
                                       ? names->take(names->ctx, data, start, end, vl)
                                       : names->replace(names->ctx, data, start, end, vl);
                        if (done == -1)
                            goto read;
                        last = end, last_st = st = S_AFTER_O;
                        if (!done) {
                            pos = end; /* json.c gives up on the stream */
                            goto out;
                        }
                        t &= t - 1;
                        continue;
                    }
                }
            read:
                if ((verdict == SK_READ || (judged && verdict == SK_OPEN)) && t &&
                    p[__builtin_ctzll(t)] == '{') {
                    /* an object the name leads to: judged on here when json.c says so */
                    size_t o = base + (unsigned)__builtin_ctzll(t);
                    int op = names->open(names->ctx, data, o);
                    if (op >= 0) {
                        t &= t - 1;
                        last = o + 1, last_st = st = S_OBJ_FIRST;
                        if (op > 0) {
                            opened++, room--, here = '{';
                            continue;
                        }
                        pos = o + 1;
                        lines += ones(nl & below(o + 1 - base));
                        goto out;
                    }
                }
                pos = at + 1;
                lines += ones(nl & below(k));
                goto out;
            case A_SCALAR_O:
            case A_SCALAR_A: {
                size_t e = scalar_end(d, at, len);
                bool num = p[k] < 'a';
                if (!e || (vals && num && e - at > vals->max))
                    goto stop;
                int nst = nx == A_SCALAR_O ? S_AFTER_O : S_AFTER_A;
                if (!vals) {
                    last = at, last_st = st, st = nst;
                    continue;
                }
                /* read: json.c never reads before its end (detectors never read literals) */
                last = e, last_st = st = nst;
                if (num && !vals->value(vals->ctx, data, at, e, nx == A_SCALAR_O ? name : NULL,
                                        nlen, lines + ones(nl & below(k)))) {
                    pos = e; /* json.c gives up on the stream */
                    goto out;
                }
                continue;
            }
            case A_STR_O:
            case A_STR_A: { /* whole, without escapes, within the limit: read here */
                size_t e = str_scan(data, at + 1, len);
                if (e == len || d[e] != '"' || e + 1 - at > vals->max)
                    goto stop;
                e++;
                last = e, last_st = st = nx == A_STR_O ? S_AFTER_O : S_AFTER_A;
                if (!vals->value(vals->ctx, data, at, e, nx == A_STR_O ? name : NULL, nlen,
                                 lines + ones(nl & below(k)))) {
                    pos = e;
                    goto out;
                }
                continue;
            }
            case A_NAME: { /* a member name the detectors take as evidence */
                size_t q = name_close(d, base, len, b, k, lim, vals->max);
                if (q == SIZE_MAX)
                    goto stop;
                name = data + at + 1, nlen = q - at - 1;
                last = at, last_st = st, st = S_COLON;
                continue;
            }
            case A_RCOLON:
                st = S_VAL_O;
                continue;
            case A_OPEN: { /* a container at a judged depth, or an element of a by_name
                            array: opened as json.c would open it (sk_names) */
                if (judged && st == S_VAL_O && verdict == SK_PASS) { /* no path goes on in it */
                    nx = p[k] == '{' ? A_PUSH_O : A_PUSH_A;
                    goto push;
                }
                int op = names->open(names->ctx, data, at);
                if (op < 0)
                    goto stop;
                last = at + 1, last_st = st = p[k] == '{' ? S_OBJ_FIRST : S_ARR_FIRST;
                if (op > 0) {
                    opened++, room--, here = (char)p[k];
                    continue;
                }
                pos = at + 1;
                lines += ones(nl & below(k + 1));
                goto out;
            }
            }
        stop:
            pos = at;
            lines += ones(nl & below(k));
            goto out;
        }
        if (lim < 64) { /* an unusual byte in the last string: json.c reads that string */
            pos = base + lim;
            lines += ones(nl & below(lim));
            at_last = true;
            goto out;
        }
        lines += ~keep ? ones(nl) : b->nls;
    }
    if (c.in_str) /* the chunk ends in a string: json.c reads it */
        at_last = true;
out:
    if (st == S_COLON && keymax != SIZE_MAX)
        at_last = true; /* the name's length is not known here: json.c reads it */
    if (vals && (st == S_COLON || st == S_VAL_O))
        at_last = true; /* stopped before a member's value: json.c reads its name first */
    if (at_last) {
        lines -= count_nl(d, last, pos);
        pos = last;
        st = last_st;
    }
    r->pos = pos;
    r->js = to_js(st);
    r->depth = depth;
    r->lines = lines;
}

/* The two copies, each in a translation unit of its own (jskim_judged.c builds this file
 * again): in one unit, or behind one dispatch, the plain walk loses registers and costs
 * 1-2% more (callgrind, maskctl on mm-jsongen's records). */
#ifndef JSKIM_JUDGED
SK_TARGET void jskim(sk_classify_fn cls, sk_cache *cache, const char *data, size_t i, size_t len,
                     int js, char kind, size_t room, size_t keymax, const sk_names *names,
                     const sk_values *vals, sk_result *r)
{
    walk(cls, cache, data, i, len, js, kind, room, keymax, names, vals, r, false);
}
#else
SK_TARGET void jskim_judged(sk_classify_fn cls, sk_cache *cache, const char *data, size_t i,
                            size_t len, int js, char kind, size_t room, const sk_names *names,
                            const sk_values *vals, sk_result *r)
{
    walk(cls, cache, data, i, len, js, kind, room, SIZE_MAX, names, vals, r, true);
}
#endif
