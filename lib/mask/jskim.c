/* lib/mask: skimming a JSON container that no rule can touch (json.c decides which), by the
 * tokens of simd_int.h's block masks instead of byte by byte: whitespace and string contents
 * are never looked at one byte at a time, only the structure, numbers, literals and escapes.
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

static inline uint64_t below(unsigned k)
{
    return k >= 64 ? ~0ull : (1ull << k) - 1;
}

void jskim(sk_classify_fn cls, const char *data, size_t i, size_t len, int js, char kind,
           size_t room, size_t keymax, sk_result *r)
{
    const unsigned char *d = (const unsigned char *)data;
    unsigned char pad[64];
    sk_carry c = {0, 0, 0};
    sk_block b;
    size_t depth = 0, base = i;
    bool obj = kind == '{';
    long values = 0;
    uint64_t lines = 0; /* newlines before the block at base */
    /* the last string token: where to stop when its content turns out unusual */
    size_t cp = i;
    int cp_js = js;
    long cp_values = 0;
    size_t pos = len;
    bool at_cp = false;

    memset(r->kinds, 0, sizeof(r->kinds));
    for (; base < len; base += 64) {
        const unsigned char *p = d + base;
        if (len - base < 64) { /* the end of the chunk: spaces after it, no token there */
            memcpy(pad, p, len - base);
            memset(pad + (len - base), ' ', 64 - (len - base));
            p = pad;
        }
        cls(p, &c, &b);
        /* inside strings: control bytes are errors, escapes are checked one by one */
        unsigned lim = 64;
        uint64_t odd = (b.ctl | b.esc) & b.in_str;
        while (odd) {
            unsigned k = (unsigned)__builtin_ctzll(odd);
            odd &= odd - 1;
            if ((b.ctl >> k & 1) || !escape_ok(d, base + k, len)) {
                lim = k;
                break;
            }
        }
        uint64_t t = b.tok & below(lim);
        while (t) {
            unsigned k = (unsigned)__builtin_ctzll(t);
            t &= t - 1;
            size_t at = base + k;
            unsigned char ch = p[k];
            switch (ch) {
            case '"':
                if (js == J_VALUE || js == J_ARR_FIRST) {
                    cp = at, cp_js = js, cp_values = values;
                    js = J_AFTER;
                    values += !depth;
                } else if (js == J_OBJ_FIRST || js == J_OBJ_KEY) {
                    cp = at, cp_js = js, cp_values = values;
                    js = J_COLON;
                } else {
                    goto stop;
                }
                continue;
            case ':':
                if (js != J_COLON)
                    goto stop;
                if (at - cp - 2 > keymax) { /* the name may be over the limit: json.c sees */
                    at_cp = true;
                    goto stop;
                }
                js = J_VALUE;
                continue;
            case ',':
                if (js != J_AFTER)
                    goto stop;
                js = obj ? J_OBJ_KEY : J_VALUE;
                continue;
            case '{':
            case '[':
                if ((js != J_VALUE && js != J_ARR_FIRST) || depth >= room || depth >= SK_MAX_DEPTH)
                    goto stop;
                depth++;
                obj = ch == '{';
                if (obj)
                    r->kinds[(depth - 1) / 64] |= 1ull << ((depth - 1) % 64);
                else
                    r->kinds[(depth - 1) / 64] &= ~(1ull << ((depth - 1) % 64));
                js = obj ? J_OBJ_FIRST : J_ARR_FIRST;
                continue;
            case '}':
            case ']':
                if ((ch == '}') != obj || !depth)
                    goto stop; /* a mismatch, or the skimmed container's own closer */
                if (js != J_AFTER && js != (obj ? J_OBJ_FIRST : J_ARR_FIRST))
                    goto stop;
                depth--;
                obj = depth ? r->kinds[(depth - 1) / 64] >> ((depth - 1) % 64) & 1 : kind == '{';
                js = J_AFTER;
                values += !depth;
                continue;
            default:
                if ((js != J_VALUE && js != J_ARR_FIRST) || !scalar_end(d, at, len))
                    goto stop;
                js = J_AFTER;
                values += !depth;
                continue;
            }
        stop:
            pos = at;
            lines += (uint64_t)__builtin_popcountll(b.nl & below(k));
            goto out;
        }
        if (lim < 64) { /* an unusual byte in the last string: json.c reads that string */
            pos = base + lim;
            lines += (uint64_t)__builtin_popcountll(b.nl & below(lim));
            at_cp = true;
            goto out;
        }
        lines += b.nls;
    }
    pos = len;
    if (c.in_str) /* the chunk ends in a string: json.c reads it */
        at_cp = true;
out:
    if (js == J_COLON && keymax != SIZE_MAX)
        at_cp = true; /* the name's length is not known here: json.c reads it */
    if (at_cp) {
        lines -= count_nl(d, cp, pos);
        pos = cp;
        js = cp_js;
        values = cp_values;
    }
    r->pos = pos;
    r->js = js;
    r->depth = depth;
    r->lines = lines;
    r->values = values;
}
