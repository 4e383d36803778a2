/* lib/mask: the helpers every detector file uses: character classes, reporting a match,
 * digit groups, Luhn. */
#include "mask/detect_int.h"

#include <pthread.h>
#include <string.h>

#define DET_MAX_MATCHES 65536 /* per scanned value: a bound, not a realistic count */

unsigned char det_cls[256];
uint32_t det_vcount[256];

static void init_classes(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char v = 0;
        if (c >= '0' && c <= '9')
            v |= C_DIGIT | C_HEX | C_LOCAL | C_B64U | C_TOKEN;
        if (c >= 'A' && c <= 'Z')
            v |= C_UPPER | C_LOCAL | C_B64U | C_TOKEN;
        if (c >= 'a' && c <= 'z')
            v |= C_LOWER | C_LOCAL | C_B64U | C_TOKEN;
        if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            v |= C_HEX;
        if (c == '.' || c == '_' || c == '%' || c == '+' || c == '-')
            v |= C_LOCAL;
        if (c == '-' || c == '_')
            v |= C_B64U;
        if (c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/')
            v |= C_TOKEN;
        if ((v & (C_DIGIT | C_UPPER | C_LOWER)) || (c && strchr("-._~!$&'()*+,;=%:", c)))
            v |= C_USERINFO; /* RFC 3986 userinfo: unreserved, sub-delims, '%', ':' */
        det_cls[c] = v;
        uint32_t k = 0;
        if (c >= '0' && c <= '9')
            k = 1u | 1u << 24;
        else if (c >= 'A' && c <= 'Z')
            k = 16u;
        else if (c == '.' || c == ':')
            k = (c == '.' ? 1u : 16u) << 8;
        else if (c == '@' || c == '=')
            k = (c == '@' ? 1u : 16u) << 16;
        else if (c == '+')
            k = 2u << 24;
        det_vcount[c] = k;
    }
}

static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

void det_init_tables(void)
{
    pthread_once(&classes_once, init_classes);
}

/* Room for one more match: false (and s->rc set) when there is none. */
static __attribute__((noinline)) bool grow(scan *s)
{
    det_scratch *sc = s->sc;
    size_t cap = sc->cap ? sc->cap * 2 : 16;
    det_match *m, *tmp;
    if (cap > DET_MAX_MATCHES) {
        s->rc = MM_ELIMIT;
        return false;
    }
    if (!(m = mm_realloc(sc->m, cap * sizeof(*m)))) {
        s->rc = MM_ENOMEM;
        return false;
    }
    sc->m = m;
    if (!(tmp = mm_realloc(sc->tmp, cap * sizeof(*tmp)))) {
        s->rc = MM_ENOMEM;
        return false;
    }
    sc->tmp = tmp;
    sc->cap = cap;
    return true;
}

static inline void add(scan *s, size_t start, size_t end, int tag, const char *name)
{
    det_scratch *sc = s->sc;
    if (s->rc != MM_OK || (sc->n == sc->cap && !grow(s)))
        return;
    sc->m[sc->n++] = (det_match){.start = start, .end = end, .tag = tag, .name = name};
}

void det_add(scan *s, size_t start, size_t end, int tag, const char *name)
{
    add(s, start, end, tag, name);
}

/* The names alone, from the same list as detect.c's registry: reading the registry here
 * would make det_base.c and detect.c depend on each other (detect.c's table points at the
 * family files, which call into this one). */
static const char *const det_names[DET_BUILTIN_COUNT] = {
#define DETECTOR(id, fn, nm, wd, by, ky, dc) [DET_##id] = nm,
#include "mask/detectors.def"
#undef DETECTOR
};

void det_found(scan *s, det_id id, size_t start, size_t end)
{
    add(s, start, end, s->set->tag[id], det_names[id]);
    s->next[id] = end;
    s->found |= 1u << id;
}

bool det_luhn(const unsigned char *d, size_t n)
{
    /* a doubled digit's digit sum, by the digit's byte (two digits a step, no branch) */
    static const unsigned char twice[256] = {['0'] = 0, ['1'] = 2, ['2'] = 4, ['3'] = 6,
                                             ['4'] = 8, ['5'] = 1, ['6'] = 3, ['7'] = 5,
                                             ['8'] = 7, ['9'] = 9};
    unsigned sum = 0;
    size_t i = n;
    for (; i >= 2; i -= 2)
        sum += (unsigned)(d[i - 1] - '0') + twice[d[i - 2]];
    if (i)
        sum += (unsigned)(d[0] - '0');
    return sum % 10 == 0;
}

size_t det_groups(const scan *s, size_t i, const char *seps, size_t maxg, unsigned char *d,
                  size_t cap, size_t *ends, size_t *counts, size_t maxgroups,
                  unsigned char *sep_out)
{
    const unsigned char *t = s->t;
    size_t ng = 0, nd = 0, j = i;
    unsigned char sep = 0;

    for (;;) {
        size_t k = j;
        while (k < s->n && is_digit(t[k]) && k - j <= maxg)
            k++;
        if (k == j || k - j > maxg || is_alnum(at(s, k)) || nd + (k - j) > cap)
            break;
        for (size_t q = j; q < k; q++) /* a few bytes: no call */
            d[nd++] = t[q];
        ends[ng] = k;
        counts[ng++] = nd;
        if (ng == maxgroups)
            break;
        if (!sep) {
            unsigned char c = at(s, k);
            if (!det_sep_in(seps, c) || !is_digit(at(s, k + 1)))
                break;
            sep = c;
        } else if (!continues(s, k, sep)) {
            break;
        }
        j = k + 1;
    }
    if (sep_out)
        *sep_out = sep;
    return ng;
}
