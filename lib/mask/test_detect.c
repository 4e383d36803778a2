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

static char *apply(const mm_action *a, const mm_keys *keys, const char *in)
{
    act_t act;
    mm_buf out;
    mm_errbuf eb;
    mm_buf_init(&out, 0);
    if (act_compile(a, keys, "test", &act, &eb) != MM_OK)
        fail_msg("compile: %s", eb.msg);
    assert_int_equal(act_apply(&act, in, strlen(in), &out), MM_OK);
    act_clear(&act);
    return mm_buf_steal(&out, NULL);
}

static void expect(const mm_action *a, const mm_keys *k, const char *in, const char *want)
{
    char *got_s = apply(a, k, in);
    assert_string_equal(got_s, want);
    mm_free(got_s);
}

static void test_actions(void **state)
{
    mm_keys *k = NULL;
    mm_errbuf eb;
    act_t act;
    (void)state;
    assert_int_equal(mm_keys_new(&k), MM_OK);
    assert_int_equal(mm_keys_add(k, "jefe", "Jefe", 4), MM_OK);

    expect(&(mm_action){.type = MM_ACTION_REDACT, .replacement = "[REDACTED]"}, k, "x", "[REDACTED]");
    expect(&(mm_action){.type = MM_ACTION_REPLACE, .value = "n/a"}, k, "secret", "n/a");
    expect(&(mm_action){.type = MM_ACTION_REMOVE}, k, "secret", "");
    /* mask */
    mm_action m = {.type = MM_ACTION_MASK, .keep_first = 6, .keep_last = 4, .mask_char = "*",
                   .preserve_format = true};
    expect(&m, k, "4111 1111 1111 1111", "4111 11** **** 1111");
    expect(&m, k, "4111-1111-1111-1111", "4111-11**-****-1111");
    m.preserve_format = false;
    expect(&m, k, "4111 1111 1111 1111", "4111 1*********1111");
    m = (mm_action){.type = MM_ACTION_MASK, .keep_first = 1, .keep_last = 0, .mask_char = "•"};
    expect(&m, k, "José", "J•••");
    m = (mm_action){.type = MM_ACTION_MASK, .keep_first = 0, .keep_last = 4, .mask_char = "*"};
    expect(&m, k, "1234", "****");   /* never shown in full */
    expect(&m, k, "12345", "*2345");
    m = (mm_action){.type = MM_ACTION_MASK, .keep_first = 1, .keep_last = 0, .mask_char = "#",
                    .preserve_format = true};
    expect(&m, k, "ada@example.com", "a##@#######.###");
    /* hash: SHA-256("abc"), and HMAC-SHA256 RFC 4231 case 2 */
    expect(&(mm_action){.type = MM_ACTION_HASH}, k, "abc",
           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(&(mm_action){.type = MM_ACTION_HASH, .key = "jefe"}, k, "what do ya want for nothing?",
           "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* tokenize: tok_ + base32 of the first 20 bytes of that HMAC */
    expect(&(mm_action){.type = MM_ACTION_TOKENIZE, .key = "jefe"}, k,
           "what do ya want for nothing?", "tok_lpomcrv7mb2u42qeeqtarflvy5naapyi");
    /* a missing key names it */
    assert_int_equal(act_compile(&(mm_action){.type = MM_ACTION_TOKENIZE, .key = "nope"}, k,
                                 "policy p rule r", &act, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "policy p rule r"));
    assert_non_null(strstr(eb.msg, "\"nope\""));
    mm_keys_free(k);
}

static void test_keys_dir(void **state)
{
    char dir[] = "/tmp/mm-keys-XXXXXX", p[256];
    mm_keys *k = NULL;
    mm_errbuf eb;
    const unsigned char *key;
    size_t len;
    FILE *f;
    (void)state;
    assert_non_null(mkdtemp(dir));
    /* a mounted Secret: ..2026_11_24/payments, ..data -> it, payments -> ..data/payments */
    snprintf(p, sizeof(p), "%s/..2026_11_24", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/..2026_11_24/payments", dir);
    assert_non_null(f = fopen(p, "w"));
    fputs("k3y-bytes", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/..data", dir);
    assert_int_equal(symlink("..2026_11_24", p), 0);
    snprintf(p, sizeof(p), "%s/payments", dir);
    assert_int_equal(symlink("..data/payments", p), 0);
    assert_int_equal(mm_keys_load_dir(dir, &k, &eb), MM_OK);
    assert_true(keys_get(k, "payments", &key, &len));
    assert_int_equal(len, 9);
    assert_memory_equal(key, "k3y-bytes", 9);
    assert_false(keys_get(k, "..data", &key, &len));
    mm_keys_free(k);

    snprintf(p, sizeof(p), "%s/empty", dir);
    assert_non_null(f = fopen(p, "w"));
    fclose(f);
    assert_int_equal(mm_keys_load_dir(dir, &k, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "empty"));
    assert_non_null(strstr(eb.msg, "the key is empty"));
    unlink(p);
    snprintf(p, sizeof(p), "%s/big", dir);
    assert_non_null(f = fopen(p, "w"));
    for (int i = 0; i < 5000; i++)
        fputc('x', f);
    fclose(f);
    assert_int_equal(mm_keys_load_dir(dir, &k, &eb), MM_ELIMIT);
    unlink(p);
    assert_int_equal(mm_keys_load_dir("/nonexistent/keys", &k, &eb), MM_ENOTFOUND);

    snprintf(p, sizeof(p), "rm -rf '%s'", dir);
    assert_int_equal(system(p), 0);
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
        cmocka_unit_test(test_actions),       cmocka_unit_test(test_keys_dir),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("mask-detect", tests, NULL, NULL);
}
