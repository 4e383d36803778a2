/* libFuzzer target for the custom patterns' prefilter (lib/mask/pattern.c): the input spells
 * up to 12 patterns of literal alternatives over a small alphabet (letters in both cases,
 * '-', '_', '.', '@', digits, space) and then a value. det_pf_scan must mark exactly the
 * patterns one of whose literals occurs in the value (ASCII case folded), det_pf_none may
 * only say "none" when it marks none, and det_scan must report the same matches, span for
 * span, as the same patterns run on every value (det_set_exhaustive). Failures name the
 * pattern number, never the value. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask/detect_int.h"
#include "mask/test_prefilter_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the patterns off the input into fast and slow; returns the bytes used. */
static size_t patterns(const uint8_t *d, size_t size, det_set *fast, det_set *slow)
{
    static const char alpha[] = "eEmMpP-_.@9aAx ";
    size_t at = 1, npat = size ? 1 + d[0] % 12 : 0;
    mm_errbuf eb;

    for (size_t p = 0; p < npat && at < size; p++) {
        char re[96];
        size_t n = 0, alts = 1 + (d[at] >> 6), len = 1 + (d[at] & 7);
        at++;
        memcpy(re, "(?:", 3);
        n = 3;
        for (size_t a = 0; a < alts; a++) {
            if (a)
                re[n++] = '|';
            for (size_t j = 0; j < len && at < size; j++, at++) {
                char c = alpha[d[at] % (sizeof(alpha) - 1)];
                if (c == '.')
                    re[n++] = '\\';
                re[n++] = c;
            }
        }
        memcpy(re + n, ")", 2);
        if (det_set_add_pattern(fast, "f", re, (int)p, &eb) != MM_OK ||
            det_set_add_pattern(slow, "f", re, (int)p, &eb) != MM_OK)
            abort(); /* every pattern spelled here compiles */
    }
    return at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    det_set *fast = NULL, *slow = NULL;
    det_scratch *sf = NULL, *ss = NULL;
    mm_errbuf eb;
    static got a, b;

    if (det_set_new(&fast) != MM_OK || det_set_new(&slow) != MM_OK)
        goto out;
    size_t at = patterns(data, size, fast, slow);
    det_set_exhaustive(slow);
    if (det_set_compile(fast, &eb) != MM_OK || det_set_compile(slow, &eb) != MM_OK ||
        det_scratch_new(fast, &sf) != MM_OK || det_scratch_new(slow, &ss) != MM_OK)
        goto out;
    const unsigned char *t = data + at;
    size_t n = size - at;
    if (fast->pf) {
        bool none;
        size_t matching;
        long bad = pf_ref_mismatch(fast, t, n, &none, &matching);
        if (bad >= 0) {
            fprintf(stderr, "pattern %ld: the prefilter (none %d) differs from the literals\n",
                    bad, none);
            abort();
        }
    }
    a.n = b.n = 0;
    mm_err ra = det_scan(fast, sf, (const char *)t, n, collect, &a);
    mm_err rb = det_scan(slow, ss, (const char *)t, n, collect, &b);
    if (ra != rb || a.n != b.n)
        abort();
    for (size_t k = 0; k < a.n; k++)
        if (a.m[k].start != b.m[k].start || a.m[k].end != b.m[k].end || a.m[k].tag != b.m[k].tag) {
            fprintf(stderr, "match %zu differs from the scan without the prefilter\n", k);
            abort();
        }
out:
    det_scratch_free(sf);
    det_scratch_free(ss);
    det_set_free(fast);
    det_set_free(slow);
    return 0;
}
