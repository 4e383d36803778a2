/* Unit tests for the encrypt action's value formats (fpe.c) and versioned keys: round trips
 * over generated values of every built-in detector's shape and of every alphabet (radix 10,
 * 36 lower, 36 upper, 62), separators in place, the alphabet class kept; cards with the Luhn
 * digit made valid or invalid and the first six / last four kept; AES-SIV tokens
 * enc_v<N>_...; surrogate prefixes; versioned tokenize; and errors that name the key entry
 * but never hold key bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask/crypt_int.h"
#include "mask/mask_int.h"

static const char KEY1[] = "0123456789abcdef-first-version-key";
static const char KEY2[] = "fedcba9876543210-second-version-key";

static mm_keys *test_keys(void)
{
    mm_keys *k = NULL;
    assert_int_equal(mm_keys_new(&k), MM_OK);
    assert_int_equal(mm_keys_add(k, "payments.v1", KEY1, strlen(KEY1)), MM_OK);
    assert_int_equal(mm_keys_add(k, "payments.v2", KEY2, strlen(KEY2)), MM_OK);
    assert_int_equal(mm_keys_add(k, "short.v1", "tooshort", 8), MM_OK);
    return k;
}

static mm_action ff1_action(int keep_first, int keep_last, mm_luhn luhn)
{
    mm_action a = {.type = MM_ACTION_ENCRYPT, .enc_mode = MM_ENC_FF1, .key = "payments",
                   .key_version = 1, .keep_first = keep_first, .keep_last = keep_last,
                   .luhn = luhn, .tweak = "rule-card"};
    return a;
}

static char *run(const enc_t *e, const char *in, bool decrypt, mm_err want)
{
    mm_buf b;
    mm_buf_init(&b, 0);
    mm_err rc = decrypt ? enc_decrypt(e, in, strlen(in), &b) : enc_encrypt(e, in, strlen(in), &b);
    if (rc != want)
        fail_msg("%s of a %zu-byte value: %s, want %s", decrypt ? "decrypt" : "encrypt",
                 strlen(in), mm_strerror(rc), mm_strerror(want));
    if (rc != MM_OK) {
        mm_buf_free(&b);
        return NULL;
    }
    return mm_buf_steal(&b, NULL) ?: mm_strdup("");
}

static int cls(char c)
{
    return c >= '0' && c <= '9' ? 1 : c >= 'a' && c <= 'z' ? 2 : c >= 'A' && c <= 'Z' ? 4 : 0;
}

/* Encrypts, checks the shape (length, separators, alphabet class), decrypts back. */
static void round_trip(const enc_t *e, const char *in)
{
    char *ct = run(e, in, false, MM_OK), *pt;
    int in_cls = 0, ct_cls = 0;
    size_t n = strlen(in);

    assert_int_equal(strlen(ct), n);
    for (size_t i = 0; i < n; i++) {
        if (!cls(in[i]))
            assert_int_equal(ct[i], in[i]); /* separators stay in place */
        else if (!cls(ct[i]))
            fail_msg("shape: input class %d at %zu of %zu gave 0x%02x", cls(in[i]), i, n,
                     (unsigned char)ct[i]);
        in_cls |= cls(in[i]);
        ct_cls |= cls(ct[i]);
    }
    /* the alphabet class: digits stay digits; one letter case stays that case */
    if (in_cls == 1)
        assert_int_equal(ct_cls, 1);
    if (!(in_cls & 4))
        assert_false(ct_cls & 4);
    if (!(in_cls & 2))
        assert_false(ct_cls & 2);
    pt = run(e, ct, true, MM_OK);
    if (strcmp(pt, in) != 0)
        fail_msg("a %zu-byte value did not decrypt to itself", n);
    mm_free(ct);
    mm_free(pt);
}

static void gen(unsigned *seed, const char *shape, char *out)
{
    static const char *const sets[] = {"0123456789", "abcdefghijklmnopqrstuvwxyz",
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789abcdef",
                                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"};
    /* shape: 9 digit, a lower, A upper, x hex, * any alnum; other characters literal */
    for (; *shape; shape++) {
        int k = *shape == '9' ? 0 : *shape == 'a' ? 1 : *shape == 'A' ? 2 : *shape == 'x' ? 3
              : *shape == '*' ? 4 : -1;
        *out++ = k < 0 ? *shape : sets[k][rand_r(seed) % strlen(sets[k])];
    }
    *out = '\0';
}

static void ff1_shapes_round_trip(void **state)
{
    /* a shape per built-in detector, then per alphabet */
    static const char *const shapes[] = {
        "9999 9999 9999 9999", "9999-9999-9999-9999", "999999999999999",      /* credit_card */
        "999-99-9999",                                                       /* us_ssn */
        "aaaaaaa.aaa@aaaaaaa.aaa", "aaaaaa99@aaaaa.aa",                       /* email */
        "+9 (999) 999-9999", "+99 99 9999 9999",                             /* phone */
        "AA99AAAA99999999999999", "AA99 AAAA 9999 9999 9999 99",              /* iban */
        "999.999.99.9", "99.9.9.9",                                          /* ipv4 */
        "9xxx:xx9::9xxx:xxx:9xxx", "fe80::xxxx:xxxx:xxxx:xxxx",               /* ipv6 */
        "eyJ*****************.eyJ*****************._*-********",           /* jwt */
        "AKIA9AAAAAAAAAAAAAAA",                                              /* aws_access_key */
        "Bearer **********.******",                                          /* bearer_token */
        "99", "999", "aa", "AAA", "aA", "a9", "A9", "9aA", "***********************************",
    };
    mm_keys *keys = test_keys();
    unsigned seed = 7;
    char v[128];

    (void)state;
    for (int variant = 0; variant < 3; variant++) {
        mm_action a = ff1_action(variant == 1 ? 2 : 0, variant == 1 ? 2 : 0, MM_LUHN_NONE);
        enc_t *e = NULL;
        mm_errbuf eb;
        if (variant == 2)
            a.tweak = NULL;
        assert_int_equal(enc_compile(&a, keys, 0, "t", &e, &eb), MM_OK);
        for (size_t s = 0; s < MM_ARRAY_LEN(shapes); s++)
            for (int i = 0; i < 200; i++) {
                gen(&seed, shapes[s], v);
                size_t syms = 0;
                for (const char *c = v; *c; c++)
                    syms += cls(*c) != 0;
                if (variant == 1 && syms <= 6)
                    continue; /* too short with four kept: masked, covered below */
                round_trip(e, v);
            }
        enc_free(e);
    }
    mm_keys_free(keys);
}

static bool luhn_ok(const char *s)
{
    int sum = 0, k = 0;
    for (size_t i = strlen(s); i-- > 0;) {
        if (s[i] < '0' || s[i] > '9')
            continue;
        int v = s[i] - '0';
        if (k++ % 2 == 1 && (v *= 2) > 9)
            v -= 9;
        sum += v;
    }
    return sum % 10 == 0;
}

static void ff1_cards(void **state)
{
    static const char *const cards[] = {"4111 1111 1111 1111", "5555-5555-5555-4444",
                                        "378282246310005", "6011111111111117",
                                        "4111 1111 1111 1112" /* fails Luhn */};
    mm_keys *keys = test_keys();

    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        mm_action a = ff1_action(6, 4, mode ? MM_LUHN_VALID : MM_LUHN_INVALID);
        enc_t *e = NULL;
        mm_errbuf eb;
        assert_int_equal(enc_compile(&a, keys, 0, "t", &e, &eb), MM_OK);
        for (size_t i = 0; i < MM_ARRAY_LEN(cards); i++) {
            char *ct = run(e, cards[i], false, MM_OK);
            size_t n = strlen(ct);
            bool valid_in = luhn_ok(cards[i]);
            /* first six and the three digits before the check digit are kept */
            char din[20], dout[20];
            size_t nd = 0;
            for (size_t k = 0; k < n; k++)
                if (cards[i][k] >= '0' && cards[i][k] <= '9') {
                    din[nd] = cards[i][k];
                    dout[nd++] = ct[k];
                }
            assert_memory_equal(din, dout, 6);
            assert_memory_equal(din + nd - 4, dout + nd - 4, 3);
            assert_memory_not_equal(ct, cards[i], n);
            if (mode) /* valid: the Luhn status is kept */
                assert_int_equal(luhn_ok(ct), valid_in);
            else if (valid_in) /* invalid: a real card never comes out valid */
                assert_false(luhn_ok(ct));
            round_trip(e, cards[i]);
            mm_free(ct);
        }
        /* many generated cards: invalid mode never yields a Luhn-valid one */
        unsigned seed = 3;
        for (int k = 0; k < 2000; k++) {
            char v[20];
            gen(&seed, "999999999999999", v);
            v[15] = (char)('0' + (10 - 0) % 10);
            for (int d = 0; d < 10; d++) { /* make it valid */
                v[15] = (char)('0' + d);
                v[16] = '\0';
                if (luhn_ok(v))
                    break;
            }
            char *ct = run(e, v, false, MM_OK);
            assert_int_equal(luhn_ok(ct), mode == 1);
            round_trip(e, v);
            mm_free(ct);
        }
        enc_free(e);
    }
    mm_keys_free(keys);
}

static void ff1_masks_what_it_cannot_encrypt(void **state)
{
    mm_keys *keys = test_keys();
    mm_action a = ff1_action(6, 4, MM_LUHN_NONE);
    enc_t *e = NULL;
    mm_errbuf eb;
    char *ct;

    (void)state;
    assert_int_equal(enc_compile(&a, keys, 0, "t", &e, &eb), MM_OK);
    /* 11 digits with 10 kept: never shown in full, masked */
    ct = run(e, "123-4567-8901", false, MM_OK);
    assert_string_equal(ct, "***-****-****");
    mm_free(ct);
    /* non-ASCII: masked, one '*' per character */
    ct = run(e, "Jos\xc3\xa9 Garc\xc3\xad" "a", false, MM_OK);
    assert_string_equal(ct, "**** ******");
    mm_free(ct);
    /* bytes that are no UTF-8 character (stray continuation bytes, found by fuzz_encrypt):
     * one '*' each, never an empty value */
    ct = run(e, "\x9b\x9b\x9b" "a\xc3", false, MM_OK);
    assert_string_equal(ct, "*****");
    mm_free(ct);
    assert_null(run(e, "***-****-****", true, MM_EINVAL));
    enc_free(e);
    mm_keys_free(keys);
}

/* A surrogate names the version; each version decrypts its own values; the value names
 * the version that wrote it. */
static void ff1_surrogate_and_versions(void **state)
{
    mm_keys *keys = test_keys();
    mm_action a = ff1_action(0, 0, MM_LUHN_NONE);
    enc_t *e1 = NULL, *e2 = NULL;
    mm_errbuf eb;
    char *c1, *c2, *p;

    (void)state;
    a.surrogate = "SSN";
    assert_int_equal(enc_compile(&a, keys, 0, "t", &e1, &eb), MM_OK);
    assert_int_equal(enc_compile(&a, keys, 2, "t", &e2, &eb), MM_OK);
    assert_int_equal(enc_version(e2), 2);
    c1 = run(e1, "123-45-6789", false, MM_OK);
    c2 = run(e2, "123-45-6789", false, MM_OK);
    assert_memory_equal(c1, "SSN.v1:", 7);
    assert_memory_equal(c2, "SSN.v2:", 7);
    assert_string_not_equal(c1 + 7, c2 + 7);
    assert_int_equal(enc_value_version(&a, c1, strlen(c1)), 1);
    assert_int_equal(enc_value_version(&a, c2, strlen(c2)), 2);
    assert_int_equal(enc_value_version(&a, "123-45-6789", 11), -1);
    assert_string_equal(p = run(e2, c2, true, MM_OK), "123-45-6789");
    mm_free(p);
    assert_null(run(e2, c1, true, MM_EINVAL)); /* v1's prefix is not v2's */
    mm_free(c1);
    mm_free(c2);
    enc_free(e1);
    enc_free(e2);
    mm_keys_free(keys);
}

static void siv_tokens(void **state)
{
    mm_keys *keys = test_keys();
    mm_action a = {.type = MM_ACTION_ENCRYPT, .enc_mode = MM_ENC_SIV, .key = "payments",
                   .key_version = 2, .tweak = "people"};
    enc_t *e = NULL, *e1 = NULL;
    mm_errbuf eb;
    char *t, *t2, *p;

    (void)state;
    assert_int_equal(enc_compile(&a, keys, 0, "t", &e, &eb), MM_OK);
    t = run(e, "alice@example.com", false, MM_OK);
    t2 = run(e, "alice@example.com", false, MM_OK);
    assert_string_equal(t, t2); /* deterministic: joins work */
    assert_memory_equal(t, "enc_v2_", 7);
    /* 16-byte tag + 17 bytes = 33 bytes: 44 base64url characters, no padding */
    assert_int_equal(strlen(t), 7 + 44);
    assert_int_equal(strspn(t + 7, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     44);
    assert_int_equal(enc_value_version(&a, t, strlen(t)), 2);
    assert_string_equal(p = run(e, t, true, MM_OK), "alice@example.com");
    mm_free(p);
    /* a changed character, another version's key, another tweak: refused */
    t2[20] = t2[20] == 'A' ? 'B' : 'A';
    assert_null(run(e, t2, true, MM_EINVAL));
    assert_int_equal(enc_compile(&a, keys, 1, "t", &e1, &eb), MM_OK);
    assert_null(run(e1, t, true, MM_EINVAL));
    enc_free(e1);
    a.tweak = "other";
    assert_int_equal(enc_compile(&a, keys, 0, "t", &e1, &eb), MM_OK);
    assert_null(run(e1, t, true, MM_EINVAL));
    enc_free(e1);
    /* every shape round-trips; the empty value stays empty */
    p = run(e, "", false, MM_OK);
    assert_string_equal(p, "");
    mm_free(p);
    unsigned seed = 9;
    for (int i = 0; i < 500; i++) {
        char v[64], *c, *back;
        gen(&seed, i % 2 ? "aaaaaa.aaa@aaaa.aa" : "9999 9999 9999 9999", v);
        c = run(e, v, false, MM_OK);
        back = run(e, c, true, MM_OK);
        assert_string_equal(back, v);
        mm_free(c);
        mm_free(back);
    }
    /* values either side of siv_apply's stack buffer (240 bytes and the tag) and far past
     * it: the same token length rule, and each comes back */
    static const size_t lens[] = {1, 239, 240, 241, 5000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(*lens); i++) {
        char *v = mm_malloc(lens[i] + 1), *c, *back;
        assert_non_null(v);
        for (size_t j = 0; j < lens[i]; j++)
            v[j] = (char)('a' + (j * 7 + i) % 26);
        v[lens[i]] = '\0';
        c = run(e, v, false, MM_OK);
        assert_int_equal(strlen(c), 7 + ((lens[i] + SIV_TAG) * 4 + 2) / 3);
        back = run(e, c, true, MM_OK);
        assert_string_equal(back, v);
        mm_free(v);
        mm_free(c);
        mm_free(back);
    }
    mm_free(t);
    mm_free(t2);
    enc_free(e);
    mm_keys_free(keys);
}

/* Missing and short entries are named; no message holds key bytes. */
static void key_errors_never_hold_keys(void **state)
{
    mm_keys *keys = test_keys();
    mm_action a = ff1_action(0, 0, MM_LUHN_NONE);
    enc_t *e = NULL;
    mm_errbuf eb = {{0}};

    (void)state;
    a.key_version = 3;
    assert_int_equal(enc_compile(&a, keys, 0, "policy p rule r", &e, &eb), MM_EINVAL);
    assert_string_equal(eb.msg, "policy p rule r: key \"payments.v3\" is not in the keys (the "
                        "Secret maskmesh-keys, or --keys DIR)");
    a.key = "short";
    a.key_version = 1;
    assert_int_equal(enc_compile(&a, keys, 0, "policy p rule r", &e, &eb), MM_EINVAL);
    assert_string_equal(eb.msg, "policy p rule r: key \"short.v1\" is shorter than 16 bytes");
    assert_null(strstr(eb.msg, "tooshort"));
    mm_keys_free(keys);
}

/* Through the action: tokenize with keyVersion writes tok_v<N>_ from the entry <key>.v<N>;
 * without it, the old tok_<base32> form. */
static void tokenize_versions(void **state)
{
    mm_keys *keys = test_keys();
    mm_action a = {.type = MM_ACTION_TOKENIZE, .key = "payments", .key_version = 2};
    act_t act;
    mm_errbuf eb;
    mm_buf b;

    (void)state;
    assert_int_equal(mm_keys_add(keys, "payments", KEY1, strlen(KEY1)), MM_OK);
    mm_buf_init(&b, 0);
    assert_int_equal(act_compile(&a, keys, "t", &act, &eb), MM_OK);
    assert_int_equal(act_apply(&act, "4111", 4, &b), MM_OK);
    assert_int_equal(b.len, 7 + 32);
    assert_memory_equal(b.data, "tok_v2_", 7);
    act_clear(&act);
    mm_buf_reset(&b);
    a.key_version = 0;
    assert_int_equal(act_compile(&a, keys, "t", &act, &eb), MM_OK);
    assert_int_equal(act_apply(&act, "4111", 4, &b), MM_OK);
    assert_int_equal(b.len, 4 + 32);
    assert_null(memchr(b.data + 4, '_', 32));
    act_clear(&act);
    mm_buf_free(&b);
    mm_keys_free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ff1_shapes_round_trip),
        cmocka_unit_test(ff1_cards),
        cmocka_unit_test(ff1_masks_what_it_cannot_encrypt),
        cmocka_unit_test(ff1_surrogate_and_versions),
        cmocka_unit_test(siv_tokens),
        cmocka_unit_test(key_errors_never_hold_keys),
        cmocka_unit_test(tokenize_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
