/* What test_pattern.c and fuzz/fuzz_prefilter.c both hold the patterns' prefilter to: its
 * definition, checked the slow way (each literal looked for at every offset), and a sink for
 * det_scan's matches. Test code only. */
#ifndef MM_TEST_PREFILTER_REF_H
#define MM_TEST_PREFILTER_REF_H

#include "mask/detect_int.h"

#include <stdbool.h>
#include <stddef.h>

#define MAX_M 256

typedef struct {
    size_t n;
    det_match m[MAX_M];
} got;

static inline mm_err collect(void *ctx, const det_match *m)
{
    got *g = ctx;
    if (g->n < MAX_M)
        g->m[g->n++] = *m;
    return MM_OK;
}

/* Does t[0..n) hold literal l (lower case), ASCII case folded? */
static inline bool pf_holds(const unsigned char *t, size_t n, const unsigned char *l, size_t ln)
{
    for (size_t i = 0; i + ln <= n; i++) {
        size_t k = 0;
        while (k < ln && (is_upper(t[i + k]) ? t[i + k] + 32 : t[i + k]) == l[k])
            k++;
        if (k == ln)
            return true;
    }
    return false;
}

/* The first pattern of set (compiled, with a prefilter) for which det_pf_scan differs from
 * the definition (bit set when the pattern has no literal or one occurs), or det_pf_none says
 * none although it may match; -1 when there is none. *none and *matching: what det_pf_none
 * said, how many patterns may match. */
static inline long pf_ref_mismatch(const det_set *set, const unsigned char *t, size_t n,
                                   bool *none, size_t *matching)
{
    uint64_t maybe[DET_PF_WORDS];
    det_pf_scan(set->pf, t, n, maybe);
    *none = det_pf_none(set->pfq, t, n);
    *matching = 0;
    for (size_t p = 0; p < set->n_pats; p++) {
        const det_lits *l = set->pats[p].lits;
        bool want = !l;
        for (size_t k = 0; !want && k < det_lits_count(l); k++) {
            size_t ln;
            const unsigned char *b = det_lits_get(l, k, &ln);
            want = pf_holds(t, n, b, ln);
        }
        if (want != (bool)(maybe[p / 64] >> (p % 64) & 1) || (want && *none))
            return (long)p;
        *matching += want;
    }
    return -1;
}

#endif
