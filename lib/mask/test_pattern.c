/* Unit tests for the custom patterns' prefilter (pattern.c): the literals read from patterns
 * of every kind of syntax (and the patterns it must leave alone), and the proof that it only
 * saves time: a set with the prefilter and one without (det_set_exhaustive, every pattern run
 * on every value) report the same matches, span for span, on generated values made of the
 * patterns' own literals in both cases, near misses, UTF-8 and separators. Failure output
 * names the pattern or the input number, never more of the text than the test made up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mask/detect_int.h"
#include "mask/test_prefilter_ref.h"

/* Patterns and the literals the prefilter must find for them ("" between alternatives;
 * NULL: none, the pattern runs on every value). */
static const struct {
    const char *re;
    const char *lits[4];
} cases[] = {
    {"ORD-[0-9]{8}", {"ord-"}},
    {"(?i)emp[_-]?\\d{6}", {"emp"}},
    {"\\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}",
     {"sk_live_", "sk_test_", "rk_live_", "rk_test_"}},
    {"(?<=id=)\\d+", {"id="}},
    {"(?<!x)abc", {"abc"}},
    {"^ORD\\b", {"ord"}},
    {"foo$", {"foo"}},
    {"x*", {NULL}},
    {"(?:ab)?c", {"abc", "c"}},
    {"a|b|", {NULL}},
    {"[Qq][Xx]", {"qx"}},
    {"(?i:AKIA)[A-Z0-9]{4}", {"akia"}},
    {"\\Qa.b\\E", {"a.b"}},
    {"a{2}b", {"a"}},
    {"(ab){1,3}", {"ab"}},
    {"(?=.*secret)\\w+", {"secret"}},
    {"caf\\xc3\\xa9", {"caf"}},
    {"\\x41BC", {"abc"}},
    {"[[:alpha:]]+Z", {"z"}},
    {"(?#comment)tok", {"tok"}},
    {"a\\.b", {"a.b"}},
    {"(?x) a b", {NULL}},
    {"(*UTF)(?i)k", {NULL}},
    {"(?|(a)|(b))c", {"ac", "bc"}},
    {"(?>xy|x)z", {"xyz", "xz"}},
    {"\\d{3}-\\d{2}", {"-"}},
    {"tok(?=en)", {"tok"}},
    {"(?i)stra\xc3\x9f" "e", {"stra"}},
    {"[^a]bc", {"bc"}},
    {"(a)\\1x", {"a"}},
    {"[]a]q", {"]q", "aq"}},
    {"[a-c]{2}", {"a", "b", "c"}},
    {"\\w+@\\w+", {"@"}},
    {"#x{1,}", {"#"}},
    {"{x}", {"{x}"}},
    {"a{,2}", {NULL}},
    {"(?i)(?-i:AB)cd", {"abcd"}},
    {"x?+y*?z", {"z"}},
    {"(?P<n>ab)(?P=n)", {NULL}},
    {"[\\d.]+ms", {"ms"}},
    {"\\Qab\\E+", {NULL}},
    {"(?:a|b)(?:c|d)", {"ac", "ad", "bc", "bd"}},
    {"\\bEMP-\\d{6}\\b|\\bCTR-\\d{5}\\b", {"emp-", "ctr-"}},
    {"(?m)^key:\\s*\\S+$", {"key:"}},
    {"\\$\\{[a-z]+\\}", {"${"}},
};

static const char *const frags[] = {
    "ORD-", "ord-", "12345678", "EMP_", "emp-", "123456", "sk_live_", "rk_test_", "ABCdef12",
    "id=", "42", "xabc", "abc", "foo", "\n", "ab", "c", "qx", "QX", "AKIA", "akia", "a.b", "A.B",
    "aab", "secret", "en", "tok", "caf\xc3\xa9", "ABC", "Z", "stra\xc3\x9f" "e", "STRASSE",
    "\xe2\x84\xaa", "k", "xyz", "xz", "123-45", " ", "@", "]q", "a{,2}", "{x}", "#xx", "bc",
    "x", "y", "AB", "cd", "ms", "1.5", "key: v", "${abc}", "CTR-12345", "-", "ac", "abab", "\xff",
};

static void test_literals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        det_lits *l = (det_lits *)1;
        size_t want = 0;
        assert_int_equal(det_lits_extract(cases[i].re, &l), MM_OK);
        while (want < 4 && cases[i].lits[want])
            want++;
        if (det_lits_count(l) != want)
            fail_msg("pattern %zu (%s): %zu literals, want %zu", i, cases[i].re,
                     det_lits_count(l), want);
        for (size_t k = 0; k < want; k++) {
            size_t len;
            const unsigned char *b = det_lits_get(l, k, &len);
            if (len != strlen(cases[i].lits[k]) || memcmp(b, cases[i].lits[k], len) != 0)
                fail_msg("pattern %zu (%s): literal %zu is \"%.*s\", want \"%s\"", i,
                         cases[i].re, k, (int)len, (const char *)b, cases[i].lits[k]);
        }
        det_lits_free(l);
    }
}

static det_set *set_of_cases(bool exhaustive)
{
    det_set *set = NULL;
    mm_errbuf eb;
    assert_int_equal(det_set_new(&set), MM_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[16];
        /* (*UTF) on invalid UTF-8 (the cut values here) is an error for the interpreter
         * (MM_PCRE2_NO_JIT=1 under valgrind); it has no literals, so it runs either way */
        if (strncmp(cases[i].re, "(*UTF)", 6) == 0)
            continue;
        snprintf(name, sizeof(name), "p%zu", i);
        if (det_set_add_pattern(set, name, cases[i].re, (int)i, &eb) != MM_OK)
            fail_msg("pattern %zu: %s", i, eb.msg);
    }
    if (exhaustive)
        det_set_exhaustive(set);
    assert_int_equal(det_set_compile(set, &eb), MM_OK);
    return set;
}

static void same(const det_set *fast, det_scratch *sf, const det_set *slow, det_scratch *ss,
                 const char *t, size_t n, size_t input)
{
    static got a, b;
    a.n = b.n = 0;
    assert_int_equal(det_scan(fast, sf, t, n, collect, &a), MM_OK);
    assert_int_equal(det_scan(slow, ss, t, n, collect, &b), MM_OK);
    if (a.n != b.n)
        fail_msg("input %zu: %zu matches with the prefilter, %zu without", input, a.n, b.n);
    for (size_t k = 0; k < a.n; k++)
        if (a.m[k].start != b.m[k].start || a.m[k].end != b.m[k].end || a.m[k].tag != b.m[k].tag)
            fail_msg("input %zu, match %zu: [%zu,%zu) p%d with the prefilter, [%zu,%zu) p%d "
                     "without", input, k, a.m[k].start, a.m[k].end, a.m[k].tag, b.m[k].start,
                     b.m[k].end, b.m[k].tag);
}

static void test_prefilter_exact(void **state)
{
    det_set *fast = set_of_cases(false), *slow = set_of_cases(true);
    det_scratch *sf = NULL, *ss = NULL;
    char buf[256];
    uint32_t x = 2463534242u; /* xorshift32: the same inputs every run */
    size_t skipped = 0;
    (void)state;

    assert_int_equal(det_scratch_new(fast, &sf), MM_OK);
    assert_int_equal(det_scratch_new(slow, &ss), MM_OK);
    for (size_t r = 0; r < 30000; r++) {
        size_t n = 0, parts;
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        parts = x % 7;
        for (size_t k = 0; k < parts; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            const char *f = frags[x % (sizeof(frags) / sizeof(frags[0]))];
            size_t fn = strlen(f);
            if (n + fn + 1 > sizeof(buf))
                break;
            memcpy(buf + n, f, fn);
            n += fn;
            if (x >> 24 < 40) /* now and then a separator or a stray byte */
                buf[n++] = " -_x9"[(x >> 8) % 5];
        }
        for (size_t cut = 0; cut < 2; cut++) { /* the value, and its prefixes */
            size_t len = cut ? (n ? (x >> 4) % n : 0) : n;
            same(fast, sf, slow, ss, buf, len, r);
        }
    }
    /* the filter is on: a value holding no literal of a literal-bearing pattern skips it */
    uint64_t maybe[DET_PF_WORDS];
    det_pf_scan(fast->pf, (const unsigned char *)"nothing here", 12, maybe);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        skipped += !(maybe[i / 64] >> (i % 64) & 1);
    assert_true(skipped > 30);
    det_pf_scan(fast->pf, (const unsigned char *)"xx ORd-1", 8, maybe);
    assert_true(maybe[0] & 1); /* case folded, in the middle of the value */
    det_scratch_free(sf);
    det_scratch_free(ss);
    det_set_free(fast);
    det_set_free(slow);
}

/* Random patterns from pieces of every kind the reader knows (and some it refuses), each set
 * of them with and without the prefilter over random values of the same letters: the reader
 * must never claim a literal a match can do without. */
static uint32_t rnd(uint32_t *x, uint32_t n)
{
    *x ^= *x << 13, *x ^= *x >> 17, *x ^= *x << 5;
    return *x % n;
}

static void gen(uint32_t *x, char *b, size_t *n, size_t cap, int depth)
{
    static const char *const atoms[] = {
        "a", "b", "c", "A", "B", "ab", "-", "_", ".", "\\.", "[ab]", "[a-c]", "[^a]", "[Bb]",
        "\\d", "\\w", "\\s", "\\b", "\\B", "^", "$", "(?i)", "(?-i)", "x", "\\x41", "\\Qa.\\E",
        "\\K", "(?=b)", "(?<=a)", "(?<!c)", "(?!a)", "\\x{41}", "[]a]", "[-a]", "{", "}",
    };
    static const char *const quants[] = {"?", "*", "+", "{2}", "{1,3}", "{0,1}", "+?", "*+", "{1}"};
    size_t items = 1 + rnd(x, 4);
    for (size_t k = 0; k < items && *n + 40 < cap; k++) {
        uint32_t kind = depth < 3 ? rnd(x, 10) : 0;
        const char *open = kind == 6 ? "(?:" : kind == 7 ? "(?=" : kind == 8 ? "(?>" : "(";
        if (kind < 6) {
            const char *a = atoms[rnd(x, sizeof(atoms) / sizeof(atoms[0]))];
            memcpy(b + *n, a, strlen(a));
            *n += strlen(a);
        } else {
            memcpy(b + *n, open, strlen(open));
            *n += strlen(open);
            gen(x, b, n, cap, depth + 1);
            if (rnd(x, 2)) {
                b[(*n)++] = '|';
                gen(x, b, n, cap, depth + 1);
            }
            b[(*n)++] = ')';
        }
        if (rnd(x, 3) == 0) {
            const char *q = quants[rnd(x, sizeof(quants) / sizeof(quants[0]))];
            memcpy(b + *n, q, strlen(q));
            *n += strlen(q);
        }
    }
}

static void test_random_patterns(void **state)
{
    uint32_t x = 88172645u;
    char re[8][512], text[24];
    size_t checked = 0;
    (void)state;

    for (int round = 0; round < 300; round++) {
        det_set *fast = NULL, *slow = NULL;
        det_scratch *sf = NULL, *ss = NULL;
        mm_errbuf eb;
        int n = 0;
        assert_int_equal(det_set_new(&fast), MM_OK);
        assert_int_equal(det_set_new(&slow), MM_OK);
        for (int k = 0; k < 8; k++) {
            size_t len = 0;
            gen(&x, re[k], &len, sizeof(re[k]) - 1, 0);
            re[k][len] = '\0';
            if (det_set_add_pattern(slow, "r", re[k], k, &eb) != MM_OK)
                continue; /* PCRE2 refuses it (a lookbehind of no fixed length, ...) */
            assert_int_equal(det_set_add_pattern(fast, "r", re[k], k, &eb), MM_OK);
            n++;
        }
        det_set_exhaustive(slow);
        assert_int_equal(det_set_compile(fast, &eb), MM_OK);
        assert_int_equal(det_set_compile(slow, &eb), MM_OK);
        assert_int_equal(det_scratch_new(fast, &sf), MM_OK);
        assert_int_equal(det_scratch_new(slow, &ss), MM_OK);
        for (int v = 0; v < 300 && n; v++) {
            static const char alpha[] = "aAbBcCx-_.19 \n{}";
            size_t len = rnd(&x, sizeof(text));
            for (size_t i = 0; i < len; i++)
                text[i] = alpha[rnd(&x, sizeof(alpha) - 1)];
            same(fast, sf, slow, ss, text, len, (size_t)round * 1000 + (size_t)v);
            checked++;
        }
        det_scratch_free(sf);
        det_scratch_free(ss);
        det_set_free(fast);
        det_set_free(slow);
    }
    assert_true(checked > 50000);
}

/* det_pf_scan against its definition: bit p set exactly when pattern p has no literal or one
 * of its literals occurs in the value, ASCII case folded. Sets of 1 to 12 patterns of literal
 * alternatives over a small alphabet (one rare byte, a letter's two cases, several, too many
 * for the rare-byte skip), values of the same bytes: literals near each other, cut short, a
 * rare byte at either end or far from the literal's start, repeats that restart the search. */
static void test_prefilter_definition(void **state)
{
    static const char alpha[] = "eEmMpP-_x9aA";
    uint32_t x = 2654435761u;
    size_t hits = 0, misses = 0, nones = 0;
    (void)state;

    for (int round = 0; round < 400; round++) {
        det_set *set = NULL;
        mm_errbuf eb;
        char re[12][64], lit[12][3][8];
        size_t nlit[12], llen[12][3], npat = 1 + rnd(&x, round < 100 ? 1 : 12);
        assert_int_equal(det_set_new(&set), MM_OK);
        for (size_t p = 0; p < npat; p++) {
            size_t n = 0;
            nlit[p] = 1 + rnd(&x, 3);
            for (size_t k = 0; k < nlit[p]; k++) {
                llen[p][k] = 1 + rnd(&x, 6);
                for (size_t j = 0; j < llen[p][k]; j++) /* no regex metacharacters among them */
                    lit[p][k][j] = alpha[rnd(&x, round % 3 ? 6 : sizeof(alpha) - 1)];
                if (k)
                    re[p][n++] = '|';
                memcpy(re[p] + n, lit[p][k], llen[p][k]);
                n += llen[p][k];
            }
            re[p][n] = '\0';
            if (nlit[p] > 1) { /* (?:a|b) keeps the alternation whole */
                memmove(re[p] + 3, re[p], n + 1);
                memcpy(re[p], "(?:", 3);
                memcpy(re[p] + n + 3, ")", 2);
            }
            if (det_set_add_pattern(set, "d", re[p], (int)p, &eb) != MM_OK)
                fail_msg("round %d: pattern %zu: %s", round, p, eb.msg);
        }
        assert_int_equal(det_set_compile(set, &eb), MM_OK);
        assert_non_null(set->pf);
        for (int v = 0; v < 200; v++) {
            unsigned char t[48];
            size_t n = rnd(&x, sizeof(t));
            for (size_t i = 0; i < n; i++)
                t[i] = (unsigned char)alpha[rnd(&x, sizeof(alpha) - 1)];
            if (n > 8 && rnd(&x, 2)) { /* a literal (perhaps cut) somewhere in it */
                size_t p = rnd(&x, (uint32_t)npat), k = rnd(&x, (uint32_t)nlit[p]);
                size_t at = rnd(&x, (uint32_t)n), ln = llen[p][k] - rnd(&x, 2);
                for (size_t j = 0; j < ln && at + j < n; j++) { /* either case */
                    unsigned char c = (unsigned char)lit[p][k][j];
                    bool letter = is_upper(c) || is_lower(c);
                    t[at + j] = (unsigned char)(c ^ (letter && rnd(&x, 2) ? 0x20 : 0));
                }
            }
            bool none;
            size_t matching;
            long bad = pf_ref_mismatch(set, t, n, &none, &matching);
            if (bad >= 0)
                fail_msg("round %d, value %d (%zu bytes), pattern %ld: the prefilter (none %d) "
                         "differs from the literals", round, v, n, bad, none);
            nones += none;
            hits += matching;
            misses += set->n_pats - matching;
        }
        det_set_free(set);
    }
    assert_true(hits > 10000 && misses > 10000 && nones > 2000);
}

/* A UTF pattern on a value that is not UTF-8: an error (the value fails closed), never a
 * match run on it unchecked (pcre2_jit_match does not check). */
static void test_utf_pattern_checks_value(void **state)
{
    (void)state;
    det_set *set = NULL;
    det_scratch *sc = NULL;
    mm_errbuf eb;
    static got g;
    assert_int_equal(det_set_new(&set), MM_OK);
    assert_int_equal(det_set_add_pattern(set, "u", "(*UTF)caf\\x{e9}", 1, &eb), MM_OK);
    assert_int_equal(det_set_compile(set, &eb), MM_OK);
    assert_int_equal(det_scratch_new(set, &sc), MM_OK);
    g.n = 0;
    assert_int_equal(det_scan(set, sc, "a caf\xc3\xa9", 7, collect, &g), MM_OK);
    assert_int_equal(g.n, 1);
    g.n = 0;
    assert_int_not_equal(det_scan(set, sc, "\xff caf\xc3\xa9", 7, collect, &g), MM_OK);
    det_scratch_free(sc);
    det_set_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_prefilter_exact),
        cmocka_unit_test(test_random_patterns),
        cmocka_unit_test(test_prefilter_definition),
        cmocka_unit_test(test_utf_pattern_checks_value),
    };
    return cmocka_run_group_tests_name("mask-pattern", tests, NULL, NULL);
}
