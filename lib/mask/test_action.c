/* Unit tests for lib/mask's actions: a row per case with the exact output, known SHA-256
 * and HMAC-SHA256 vectors (FIPS 180-2, RFC 4231), RFC 4648 base32 vectors, masking of
 * cards, emails and UTF-8 names with and without preserveFormat (ASCII values' fast path
 * against the general one), and the errors act_compile gives. Failure output names the
 * row, not the value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mask/mask_int.h"

static char *apply(const mm_action *a, const mm_keys *keys, const char *in, size_t n,
                   size_t row)
{
    act_t act;
    mm_buf out;
    mm_errbuf eb = {{0}};
    mm_buf_init(&out, 0);
    if (act_compile(a, keys, "test", &act, &eb) != MM_OK)
        fail_msg("row %zu: compile: %s", row, eb.msg);
    assert_int_equal(act_apply(&act, in, n, &out), MM_OK);
    act_clear(&act);
    char *s = mm_strndup(out.data ? out.data : "", out.len);
    assert_non_null(s);
    mm_buf_free(&out);
    return s;
}

#define K_JEFE "jefe"    /* "Jefe" (RFC 4231 test case 2) */
#define K_0B "0b20"      /* 20 bytes of 0x0b (case 1) */
#define K_AA "aa131"     /* 131 bytes of 0xaa (cases 6 and 7: longer than a block) */

static const char long_msg[] =
    "This is a test using a larger than block-size key and a larger than block-size data. "
    "The key needs to be hashed before being used by the HMAC algorithm.";

static mm_keys *test_keys(void)
{
    mm_keys *k = NULL;
    unsigned char b0[20], aa[131];
    memset(b0, 0x0b, sizeof(b0));
    memset(aa, 0xaa, sizeof(aa));
    assert_int_equal(mm_keys_new(&k), MM_OK);
    assert_int_equal(mm_keys_add(k, K_JEFE, "Jefe", 4), MM_OK);
    assert_int_equal(mm_keys_add(k, K_0B, b0, sizeof(b0)), MM_OK);
    assert_int_equal(mm_keys_add(k, K_AA, aa, sizeof(aa)), MM_OK);
    assert_int_equal(mm_keys_add(k, "k3y", "k3y", 3), MM_OK);
    return k;
}

#define REDACT(r) {.type = MM_ACTION_REDACT, .replacement = (r)}
#define MASK(f, l, c, pf)                                                                      \
    {.type = MM_ACTION_MASK, .keep_first = (f), .keep_last = (l), .mask_char = (c),            \
     .preserve_format = (pf)}
#define HASH(k) {.type = MM_ACTION_HASH, .key = (k)}
#define TOKEN(k) {.type = MM_ACTION_TOKENIZE, .key = (k)}

static const struct {
    mm_action a;
    const char *in;
    const char *want;
} rows[] = {
    /* redact, replace, remove */
    {REDACT("[REDACTED]"), "4111111111111111", "[REDACTED]"},
    {REDACT(NULL), "x", "[REDACTED]"},
    {REDACT("***"), "", "***"},
    {{.type = MM_ACTION_REPLACE, .value = "n/a"}, "secret", "n/a"},
    {{.type = MM_ACTION_REPLACE, .value = ""}, "secret", ""},
    {{.type = MM_ACTION_REMOVE}, "secret", ""},
    /* mask: cards, with and without preserveFormat */
    {MASK(6, 4, "*", true), "4111 1111 1111 1111", "4111 11** **** 1111"},
    {MASK(6, 4, "*", true), "4111-1111-1111-1111", "4111-11**-****-1111"},
    {MASK(6, 4, "*", true), "4111111111111111", "411111******1111"},
    {MASK(6, 4, "*", false), "4111 1111 1111 1111", "4111 1*********1111"},
    {MASK(0, 4, "X", true), "378282246310005", "XXXXXXXXXXX0005"},
    {MASK(0, 4, NULL, false), "123-45-6789", "*******6789"}, /* default char */
    /* mask: emails */
    {MASK(1, 0, "#", true), "ada@example.com", "a##@#######.###"},
    {MASK(2, 3, "*", false), "ada@example.com", "ad**********com"},
    {MASK(0, 0, "*", true), "a.b@c.io", "*.*@*.**"},
    /* mask: UTF-8 characters, not bytes; the mask char may be multi-byte */
    {MASK(1, 0, "•", false), "José", "J•••"},
    {MASK(1, 1, "*", false), "Zoë Ðrăgan", "Z********n"},
    {MASK(1, 1, "*", true), "Zoë Ðrăgan", "Z** *****n"},
    {MASK(1, 0, "*", true), "山田 太郎", "山* **"},
    {MASK(0, 2, "█", true), "Ana·María", "███·███ía" /* · is punctuation */},
    {MASK(1, 0, "*", true), "Ann—Lee’s €5", "A**—***’* €*"},
    {MASK(1, 0, "*", true), "a\xff" "b", "a**"}, /* a malformed byte is masked, not kept */
    {MASK(0, 0, "*", true), "\xe2\x82", "**"},   /* a truncated sequence: two bytes */
    /* mask: a value too short to keep anything is masked whole, never shown */
    {MASK(0, 4, "*", false), "1234", "****"},
    {MASK(0, 4, "*", false), "12345", "*2345"},
    {MASK(6, 4, "*", true), "4111-1111", "****-****"},
    {MASK(6, 4, "*", true), "41111-11111", "*****-*****"},
    {MASK(6, 4, "*", true), "41111-111111", "41111-1*1111"},
    {MASK(2, 2, "*", true), "--", "--"}, /* nothing maskable */
    {MASK(2, 2, "*", false), "", ""},
    /* hash: FIPS 180-2 SHA-256 vectors */
    {HASH(NULL), "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {HASH(NULL), "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {HASH(NULL), "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    /* hash with a key: RFC 4231 HMAC-SHA256 test cases 1, 2 and 7 */
    {HASH(K_0B), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    {HASH(K_JEFE), "what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    {HASH(K_AA), long_msg, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    /* tokenize: "tok_" + base32 of the first 20 bytes of those HMACs (RFC 4231 cases 1, 2,
     * 6 and 7) */
    {TOKEN(K_0B), "Hi There", "tok_wa2eyyoy3m4fgxfiv7hk6c7rfoeb3qqa"},
    {TOKEN(K_JEFE), "what do ya want for nothing?", "tok_lpomcrv7mb2u42qeeqtarflvy5naapyi"},
    {TOKEN(K_AA), "Test Using Larger Than Block-Size Key - Hash Key First",
     "tok_mdsdcwi64c3h6dmke2vmx5nxp6haxrrb"},
    {TOKEN(K_AA), long_msg, "tok_tme77jy3sqx4wj3dl66nlmhjis75yy3e"},
    {TOKEN("k3y"), "ada@example.com", "tok_tlsfbuyfi7h7nj6eyadohzirdfvsdrfe"},
};

static void test_action_rows(void **state)
{
    mm_keys *k = test_keys();
    (void)state;
    for (size_t r = 0; r < MM_ARRAY_LEN(rows); r++) {
        char *got = apply(&rows[r].a, k, rows[r].in, strlen(rows[r].in), r);
        if (strcmp(got, rows[r].want) != 0)
            fail_msg("row %zu: output differs from the expected one (%zu bytes, want %zu)", r,
                     strlen(got), strlen(rows[r].want));
        mm_free(got);
    }
    mm_keys_free(k);
}

/* Tokens are deterministic per key, differ between keys and between values, and an
 * embedded NUL is part of the value. */
static void test_tokenize_properties(void **state)
{
    mm_keys *k = test_keys();
    mm_action t1 = TOKEN("k3y"), t2 = TOKEN(K_JEFE);
    (void)state;
    char *a = apply(&t1, k, "ada@example.com", 15, 0), *b = apply(&t1, k, "ada@example.com", 15, 1),
         *c = apply(&t2, k, "ada@example.com", 15, 2), *d = apply(&t1, k, "ada@example.org", 15, 3),
         *e = apply(&t1, k, "a\0b", 3, 4), *f = apply(&t1, k, "a", 1, 5);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    assert_string_not_equal(e, f);
    assert_int_equal(strlen(a), 4 + 32);
    assert_memory_equal(a, "tok_", 4);
    for (size_t i = 4; a[i]; i++)
        assert_true((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= '2' && a[i] <= '7'));
    mm_free(a), mm_free(b), mm_free(c), mm_free(d), mm_free(e), mm_free(f);
    mm_keys_free(k);
}

/* RFC 4648 section 10, lowercase and without padding. */
static void test_base32_vectors(void **state)
{
    static const struct {
        const char *in, *want;
    } v[] = {
        {"", ""},           {"f", "my"},          {"fo", "mzxq"},         {"foo", "mzxw6"},
        {"foob", "mzxw6yq"}, {"fooba", "mzxw6ytb"}, {"foobar", "mzxw6ytboi"},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(v); i++) {
        char out[32];
        size_t n = act_base32((const unsigned char *)v[i].in, strlen(v[i].in), out);
        assert_int_equal(n, strlen(v[i].want));
        assert_memory_equal(out, v[i].want, n);
    }
}

static void test_compile_errors(void **state)
{
    mm_keys *k = test_keys();
    mm_errbuf eb = {{0}};
    act_t act;
    (void)state;

    /* a missing key names the rule and the key, never key bytes */
    assert_int_equal(act_compile(&(mm_action)TOKEN("nope"), k, "policy p rule r", &act, &eb),
                     MM_EINVAL);
    assert_non_null(strstr(eb.msg, "policy p rule r"));
    assert_non_null(strstr(eb.msg, "\"nope\""));
    assert_null(act.key);
    assert_int_equal(act_compile(&(mm_action)HASH("nope"), k, "w", &act, &eb), MM_EINVAL);
    /* no keys at all */
    assert_int_equal(act_compile(&(mm_action)HASH(K_JEFE), NULL, "w", &act, &eb), MM_EINVAL);
    /* tokenize without a key */
    assert_int_equal(act_compile(&(mm_action)TOKEN(NULL), k, "w", &act, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "needs a key"));
    /* the mask char is one UTF-8 character */
    assert_int_equal(act_compile(&(mm_action)MASK(0, 0, "ab", false), k, "w", &act, &eb),
                     MM_EINVAL);
    assert_non_null(strstr(eb.msg, "one UTF-8 character"));
    assert_int_equal(act_compile(&(mm_action)MASK(0, 0, "\xff", false), k, "w", &act, &eb),
                     MM_EINVAL);
    assert_int_equal(act_compile(&(mm_action)MASK(0, 0, "\xe2\x80", false), k, "w", &act, &eb),
                     MM_EINVAL);
    assert_int_equal(act_compile(&(mm_action)MASK(-1, 0, "*", false), k, "w", &act, &eb),
                     MM_EINVAL);
    assert_int_equal(act_compile(&(mm_action)MASK(0, MM_POLICY_MAX_KEEP + 1, "*", false), k,
                                 "w", &act, &eb), MM_EINVAL);
    assert_int_equal(act_compile(&(mm_action){.type = (mm_action_type)99}, k, "w", &act, &eb),
                     MM_EINVAL);
    /* a 4-byte mask char is fine */
    assert_int_equal(act_compile(&(mm_action)MASK(0, 0, "🔒", false), k, "w", &act, &eb), MM_OK);
    assert_int_equal(act.mask_char_len, 4);
    act_clear(&act);
    mm_keys_free(k);
}

/* The compiled action keeps its own copy of the key: freeing the keys, or replacing the
 * key under the same name, does not change what a compiled action produces. */
static void test_key_copied(void **state)
{
    mm_keys *k = test_keys();
    mm_errbuf eb;
    act_t act;
    mm_buf out;
    (void)state;
    mm_buf_init(&out, 0);
    assert_int_equal(act_compile(&(mm_action)HASH(K_JEFE), k, "w", &act, &eb), MM_OK);
    assert_int_equal(mm_keys_add(k, K_JEFE, "other", 5), MM_OK);
    mm_keys_free(k);
    assert_int_equal(act_apply(&act, "what do ya want for nothing?", 28, &out), MM_OK);
    assert_string_equal(mm_buf_cstr(&out),
                        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    act_clear(&act);
    mm_buf_free(&out);
}

/* act_apply appends: what is in the buffer stays. And a bounded buffer's limit is an
 * error, not an overflow. */
static void test_apply_appends_and_limits(void **state)
{
    mm_errbuf eb;
    act_t act;
    mm_buf out;
    (void)state;
    assert_int_equal(act_compile(&(mm_action)MASK(0, 0, "•", false), NULL, "w", &act, &eb), MM_OK);
    mm_buf_init(&out, 8);
    assert_int_equal(mm_buf_puts(&out, "x="), MM_OK);
    assert_int_equal(act_apply(&act, "ab", 2, &out), MM_OK);
    assert_string_equal(mm_buf_cstr(&out), "x=••");
    assert_int_equal(act_apply(&act, "abc", 3, &out), MM_ELIMIT);
    act_clear(&act);
    mm_buf_free(&out);
}

/* An ASCII value with a one-byte mask character takes apply_mask's fast path; with a
 * three-byte one ("\u2022") it takes the path that decides character by character. Both
 * must hide the same characters: ASCII values of 0-40 bytes (digits, letters, the bytes
 * beside their ranges, control bytes), every keepFirst/keepLast of 0-5, with and without
 * preserveFormat. */
static void test_mask_ascii_as_general(void **state)
{
    /* each range's ends and the bytes just outside them */
    static const char pool[] = "0189azAZmM /:@[`{_-.\x01\x7f";
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    char in[81];
    (void)state;
    /* 0-80 bytes: one word and over, the bit-mask path (up to 64) and the other */
    for (int row = 0; row < 8000; row++) {
        size_t n = (size_t)(row % 81);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            in[i] = pool[(seed >> 33) % (sizeof(pool) - 1)];
        }
        int f = row / 81 % 6, l = row / 486 % 6;
        bool pf = row & 1;
        mm_action fast = MASK(f, l, "*", pf), slow = MASK(f, l, "\xe2\x80\xa2", pf);
        char *a = apply(&fast, NULL, in, n, (size_t)row);
        char *b = apply(&slow, NULL, in, n, (size_t)row);
        size_t o = 0;
        for (size_t i = 0; b[i]; o++) /* the bullet back to '*' */
            if (strncmp(b + i, "\xe2\x80\xa2", 3) == 0) {
                b[o] = '*';
                i += 3;
            } else {
                b[o] = b[i++];
            }
        b[o] = '\0';
        if (strcmp(a, b) != 0)
            fail_msg("row %d (keep %d/%d, preserveFormat %d): fast \"%s\" general \"%s\"", row,
                     f, l, (int)pf, a, b);
        mm_free(a);
        mm_free(b);
    }
}

/* Every allocation act_compile makes, failed in turn: an error, nothing leaked. */
static void test_compile_alloc_failures(void **state)
{
    static const mm_action acts[] = {REDACT("[X]"), MASK(1, 1, "*", true), HASH(K_JEFE),
                                     TOKEN(K_AA), {.type = MM_ACTION_REPLACE, .value = "v"}};
    mm_keys *k = test_keys();
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(acts); i++) {
        for (long n = 0;; n++) {
            act_t act;
            mm_errbuf eb;
            mm_alloc_fail_after(n);
            mm_err rc = act_compile(&acts[i], k, "w", &act, &eb);
            mm_alloc_fail_after(-1);
            if (rc == MM_OK) {
                act_clear(&act);
                break;
            }
            assert_int_equal(rc, MM_ENOMEM);
            assert_null(act.text);
            assert_null(act.key);
            assert_true(n < 10);
        }
    }
    mm_keys_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_action_rows),
        cmocka_unit_test(test_tokenize_properties),
        cmocka_unit_test(test_base32_vectors),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_key_copied),
        cmocka_unit_test(test_apply_appends_and_limits),
        cmocka_unit_test(test_compile_alloc_failures),
        cmocka_unit_test(test_mask_ascii_as_general),
    };
    return cmocka_run_group_tests_name("mask-action", tests, NULL, NULL);
}
