/* Unit tests for the detectors, actions and keys of lib/mask: a row per case, including the
 * values that must NOT match (timestamps, order numbers, reserved SSN ranges, ...), exact
 * spans, known digest vectors, and allocation failures. Failure output names rows, never
 * the sensitive-looking inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mask/mask_int.h"

typedef struct {
    size_t n;
    det_match m[16];
} got;

static mm_err collect(void *ctx, const det_match *m)
{
    got *g = ctx;
    if (g->n < 16)
        g->m[g->n++] = *m;
    return MM_OK;
}

static const struct {
    const char *det;
    const char *text;
    long start, end; /* -1: no match */
} rows[] = {
    /* credit_card: Luhn + issuer prefix and length, boundaries */
    {"credit_card", "4111111111111111", 0, 16},
    {"credit_card", "card 4111 1111 1111 1111 ok", 5, 24},
    {"credit_card", "4111-1111-1111-1111", 0, 19},
    {"credit_card", "5555555555554444", 0, 16},
    {"credit_card", "378282246310005", 0, 15},      /* Amex, 15 */
    {"credit_card", "6011111111111117", 0, 16},     /* Discover */
    {"credit_card", "3530111333300000", 0, 16},     /* JCB */
    {"credit_card", "2221000000000009", 0, 16},     /* Mastercard 2-series */
    {"credit_card", "1700000000123", -1, -1},       /* a 13-digit millisecond timestamp */
    {"credit_card", "1700000000000", -1, -1},
    {"credit_card", "4111111111111112", -1, -1},    /* Luhn fails */
    {"credit_card", "9999999999999995", -1, -1},    /* Luhn-valid order number, no issuer */
    {"credit_card", "0000000000000000", -1, -1},
    {"credit_card", "37828224631000", -1, -1},      /* Amex prefix, wrong length */
    {"credit_card", "44111111111111111", -1, -1},   /* a card inside a longer digit run */
    {"credit_card", "x4111111111111111", -1, -1},   /* no boundary */
    {"credit_card", "4111 1111  1111 1111", -1, -1}, /* double separator breaks the run */
    /* us_ssn */
    {"us_ssn", "ssn 123-45-6789.", 4, 15},
    {"us_ssn", "123 45 6789", 0, 11},
    {"us_ssn", "123456789", 0, 9},                  /* bare: only as the whole value */
    {"us_ssn", "id 123456789", -1, -1},
    {"us_ssn", "000-12-3456", -1, -1},
    {"us_ssn", "666-12-3456", -1, -1},
    {"us_ssn", "900-12-3456", -1, -1},
    {"us_ssn", "123-00-4567", -1, -1},
    {"us_ssn", "123-45-0000", -1, -1},
    {"us_ssn", "123-45-67890", -1, -1},
    {"us_ssn", "123-45 6789", -1, -1},              /* mixed separators */
    /* email */
    {"email", "mail ada.lovelace+x@example.co.uk now", 5, 33},
    {"email", "<ada@example.com>", 1, 16},
    {"email", "ada@localhost", -1, -1},             /* no TLD */
    {"email", "ada@example.c", -1, -1},             /* one-letter TLD */
    {"email", "@example.com", -1, -1},
    {"email", "ada@.com", -1, -1},
    {"email", "a@b.c1", -1, -1},
    /* phone */
    {"phone", "+14155550123", 0, 12},
    {"phone", "call +44 20 7946 0958 now", 5, 21},
    {"phone", "(415) 555-0123", 0, 14},
    {"phone", "415-555-0123", 0, 12},
    {"phone", "415.555.0123", 0, 12},
    {"phone", "1-415-555-0123", 0, 14},
    {"phone", "+1 (415) 555-0123", 0, 17},
    {"phone", "4155550123", -1, -1},                /* bare 10 digits: an id as often as not */
    {"phone", "115-555-0123", -1, -1},              /* area code cannot start with 1 */
    {"phone", "415-155-0123", -1, -1},              /* exchange cannot start with 1 */
    {"phone", "+123", -1, -1},
    {"phone", "2026-11-24", -1, -1},                /* a date */
    /* iban */
    {"iban", "DE89370400440532013000", 0, 22},
    {"iban", "GB82 WEST 1234 5698 7654 32", 0, 27},
    {"iban", "DE89370400440532013001", -1, -1},     /* bad check digits */
    {"iban", "XX89370400440532013000", -1, -1},     /* unknown country */
    {"iban", "DE8937040044053201300", -1, -1},      /* wrong length */
    /* ipv4 */
    {"ipv4", "from 10.1.2.3:8080", 5, 13},
    {"ipv4", "255.255.255.255", 0, 15},
    {"ipv4", "256.1.1.1", -1, -1},
    {"ipv4", "1.2.3.4.5", -1, -1},                  /* a version, not an address */
    {"ipv4", "01.2.3.4", -1, -1},
    {"ipv4", "v1.2.3.4", -1, -1},
    /* ipv6 */
    {"ipv6", "addr 2001:db8::1 up", 5, 16},
    {"ipv6", "fe80::1ff:fe23:4567:890a", 0, 24},
    {"ipv6", "::1", 0, 3},
    {"ipv6", "at 10:30:00", -1, -1},                /* a time */
    {"ipv6", "aa:bb:cc:dd:ee:ff", -1, -1},          /* a MAC address */
    {"ipv6", "deadbeef", -1, -1},
    /* jwt: header {"alg":"HS256","typ":"JWT"} */
    {"jwt", "t eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.sig_-x end", 2, 61},
    {"jwt", "eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.sig", -1, -1}, /* header without alg */
    {"jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.onlytwo", -1, -1},
    /* aws_access_key */
    {"aws_access_key", "key=AKIAIOSFODNN7EXAMPLE;", 4, 24},
    {"aws_access_key", "AKIAIOSFODNN7EXAMPL", -1, -1},         /* 19 */
    {"aws_access_key", "AKIAIOSFODNN7EXAMPLEX", -1, -1},       /* 21 */
    {"aws_access_key", "AKIAiosfodnn7example", -1, -1},        /* lowercase */
    {"aws_access_key", "ZZZZIOSFODNN7EXAMPLE", -1, -1},
    /* bearer_token: the token only */
    {"bearer_token", "Authorization: Bearer abcdefghijklmnop1234", 22, 42},
    {"bearer_token", "bearer  abc.def-ghi_jkl~mno+/=", 8, 30},
    {"bearer_token", "Bearer short", -1, -1},
    {"bearer_token", "Bearerabcdefghijklmnopqrst", -1, -1},
};

static void test_detector_rows(void **state)
{
    (void)state;
    for (size_t r = 0; r < MM_ARRAY_LEN(rows); r++) {
        det_set *set = NULL;
        det_scratch *sc = NULL;
        got g = {0};
        int id = det_lookup(rows[r].det);
        assert_true(id >= 0);
        assert_int_equal(det_set_new(&set), MM_OK);
        assert_int_equal(det_set_add_builtin(set, (det_id)id, 7), MM_OK);
        assert_int_equal(det_set_compile(set, NULL), MM_OK);
        assert_int_equal(det_scratch_new(set, &sc), MM_OK);
        assert_int_equal(det_scan(set, sc, rows[r].text, strlen(rows[r].text), collect, &g), MM_OK);
        if (rows[r].start < 0) {
            if (g.n)
                fail_msg("row %zu (%s): matched [%zu,%zu) but must not", r, rows[r].det,
                         g.m[0].start, g.m[0].end);
        } else {
            if (g.n != 1)
                fail_msg("row %zu (%s): %zu matches, want 1", r, rows[r].det, g.n);
            if (g.m[0].start != (size_t)rows[r].start || g.m[0].end != (size_t)rows[r].end)
                fail_msg("row %zu (%s): span [%zu,%zu), want [%ld,%ld)", r, rows[r].det,
                         g.m[0].start, g.m[0].end, rows[r].start, rows[r].end);
            assert_int_equal(g.m[0].tag, 7);
            assert_string_equal(g.m[0].name, rows[r].det);
        }
        det_scratch_free(sc);
        det_set_free(set);
    }
}

/* All detectors and a pattern at once: matches come in start order, each tagged. */
static void test_all_and_patterns(void **state)
{
    det_set *set = NULL;
    det_scratch *sc = NULL;
    got g = {0};
    mm_errbuf eb;
    const char *t = "EMP-123456 mailed ada@example.com card 4111111111111111 x";
    (void)state;
    assert_int_equal(det_set_new(&set), MM_OK);
    for (int i = 0; i < DET_BUILTIN_COUNT; i++)
        assert_int_equal(det_set_add_builtin(set, (det_id)i, 1), MM_OK);
    assert_int_equal(det_set_add_pattern(set, "employee_id", "EMP-[0-9]{6}", 0, &eb), MM_OK);
    assert_int_equal(det_set_add_pattern(set, "empty", "q*", 2, &eb), MM_OK); /* only empty matches */
    assert_int_equal(det_set_add_pattern(set, "bad", "a[", 3, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "pattern bad"));
    assert_int_equal(det_set_compile(set, &eb), MM_OK);
    assert_int_equal(det_scratch_new(set, &sc), MM_OK);
    assert_int_equal(det_scan(set, sc, t, strlen(t), collect, &g), MM_OK);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.m[0].name, "employee_id");
    assert_int_equal(g.m[0].start, 0);
    assert_string_equal(g.m[1].name, "email");
    assert_string_equal(g.m[2].name, "credit_card");
    for (size_t i = 1; i < g.n; i++)
        assert_true(g.m[i - 1].start <= g.m[i].start);
    det_scratch_free(sc);
    det_set_free(set);

    /* first tag wins for a detector named twice */
    assert_int_equal(det_set_new(&set), MM_OK);
    assert_int_equal(det_set_add_builtin(set, DET_EMAIL, 4), MM_OK);
    assert_int_equal(det_set_add_builtin(set, DET_EMAIL, 9), MM_OK);
    assert_int_equal(det_scratch_new(set, &sc), MM_OK);
    g.n = 0;
    assert_int_equal(det_scan(set, sc, "a@b.cd", 6, collect, &g), MM_OK);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.m[0].tag, 4);
    det_scratch_free(sc);
    det_set_free(set);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    for (long n = 0;; n++) {
        det_set *set = NULL;
        det_scratch *sc = NULL;
        mm_errbuf eb;
        got g = {0};
        mm_alloc_fail_after(n);
        mm_err rc = det_set_new(&set);
        if (rc == MM_OK)
            rc = det_set_add_builtin(set, DET_EMAIL, 0);
        if (rc == MM_OK)
            rc = det_set_add_pattern(set, "p", "x+", 1, &eb);
        if (rc == MM_OK)
            rc = det_scratch_new(set, &sc);
        if (rc == MM_OK)
            rc = det_scan(set, sc, "a@b.cd xx", 9, collect, &g);
        mm_alloc_fail_after(-1);
        det_scratch_free(sc);
        det_set_free(set);
        if (rc == MM_OK) {
            assert_int_equal(g.n, 2);
            break;
        }
        assert_int_equal(rc, MM_ENOMEM);
        assert_true(n < 100);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detector_rows), cmocka_unit_test(test_all_and_patterns),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("mask-detect", tests, NULL, NULL);
}
