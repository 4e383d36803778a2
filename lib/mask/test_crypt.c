/* Unit tests for lib/mask's ciphers against published vectors:
 *   - FF1: the nine samples of NIST's FF1samples.pdf (SP 800-38G examples, AES-128/192/256,
 *     radix 10 and 36), as also used by capitalone/fpe's ff1/ff1_test.go; both arithmetic
 *     paths (64-bit and BIGNUM) must give them, and must agree with each other on random
 *     values of every length and radix the encrypt action uses.
 *   - AES-SIV: RFC 5297 appendix A.1 (deterministic, one AD component) and A.2 (two AD
 *     components and a nonce as the last component); a tampered tag, other AD, and a
 *     missing component must fail to open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask/crypt_int.h"

static size_t unhex(const char *h, unsigned char *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        assert_int_equal(sscanf(h, "%2x", &v), 1);
        out[n++] = (unsigned char)v;
    }
    return n;
}

static const char ALPHA[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

static size_t numerals(const char *s, uint8_t *out)
{
    size_t n = 0;
    for (; *s; s++)
        out[n++] = (uint8_t)(strchr(ALPHA, *s) - ALPHA);
    return n;
}

static void text_of(const uint8_t *x, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = ALPHA[x[i]];
    out[n] = '\0';
}

#define K128 "2B7E151628AED2A6ABF7158809CF4F3C"
#define K192 K128 "EF4359D8D580AA4F"
#define K256 K192 "7F036D6F04FC6A94"

static const struct {
    const char *key, *tweak;
    unsigned radix;
    const char *pt, *ct;
} ff1_samples[] = {
    {K128, "", 10, "0123456789", "2433477484"},
    {K128, "39383736353433323130", 10, "0123456789", "6124200773"},
    {K128, "3737373770717273373737", 36, "0123456789abcdefghi", "a9tv40mll9kdu509eum"},
    {K192, "", 10, "0123456789", "2830668132"},
    {K192, "39383736353433323130", 10, "0123456789", "2496655549"},
    {K192, "3737373770717273373737", 36, "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"},
    {K256, "", 10, "0123456789", "6657667009"},
    {K256, "39383736353433323130", 10, "0123456789", "1001623463"},
    {K256, "3737373770717273373737", 36, "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"},
};

static void ff1_nist_samples(void **state)
{
    (void)state;
    for (size_t s = 0; s < MM_ARRAY_LEN(ff1_samples); s++) {
        unsigned char key[32], tweak[32];
        uint8_t x[32], y[32];
        char text[40];
        size_t klen = unhex(ff1_samples[s].key, key), tlen = unhex(ff1_samples[s].tweak, tweak);
        size_t n = numerals(ff1_samples[s].pt, x);
        ff1_key *k = NULL;

        assert_int_equal(ff1_key_new(key, klen, &k), MM_OK);
        for (int pass = 0; pass < 3; pass++) { /* fast cold, fast cached, reference */
            bool bn = pass == 2;
            assert_int_equal(ff1_crypt(k, ff1_samples[s].radix, tweak, tlen, x, n, y, false, bn),
                             MM_OK);
            text_of(y, n, text);
            if (strcmp(text, ff1_samples[s].ct) != 0)
                fail_msg("sample %zu (pass %d): got %s, want %s", s + 1, pass, text,
                         ff1_samples[s].ct);
            assert_int_equal(ff1_crypt(k, ff1_samples[s].radix, tweak, tlen, y, n, y, true, bn),
                             MM_OK);
            text_of(y, n, text);
            assert_string_equal(text, ff1_samples[s].pt);
        }
        ff1_key_free(k);
    }
}

/* The fast path (64-bit arithmetic, CIPH(P) from the key's cache) and the reference path
 * (BIGNUM, CIPH(P) computed each call) agree, and decryption inverts, on random values for
 * every radix 2..62 and every length from the smallest domain of at least 100 to past the
 * point where the fast path gives way (radix^v beyond 64 bits), with no tweak, a tweak that
 * fits Q's block and one that does not. Every shape is encrypted twice on the fast path
 * (CIPH(P) computed, then read back from the cache); a few thousand shapes share the
 * cache's 64 slots, so shapes also meet a slot another one holds. */
static void ff1_paths_agree(void **state)
{
    unsigned char key[32], tweak[40];
    uint8_t x[140], a[140], a2[140], b[140];
    ff1_key *k = NULL;
    unsigned seed = 16;
    size_t shapes = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)rand_r(&seed);
    for (size_t i = 0; i < sizeof(tweak); i++)
        tweak[i] = (unsigned char)rand_r(&seed);
    assert_int_equal(ff1_key_new(key, sizeof(key), &k), MM_OK);
    for (unsigned radix = 2; radix <= 62; radix++) {
        size_t nmin = 2, lim = 0;
        for (uint64_t dom = radix * radix; dom < 100; dom *= radix)
            nmin++;
        /* first length whose larger half no longer fits 64 bits, and a few past it */
        for (double v = 1; v * log2(radix) <= 64; v++)
            lim = 2 * (size_t)v + 4;
        if (lim > sizeof(x))
            lim = sizeof(x);
        for (size_t n = nmin; n <= lim; n++)
            for (size_t tl = 0; tl <= sizeof(tweak); tl += 20, shapes++) {
                for (size_t i = 0; i < n; i++)
                    x[i] = (uint8_t)(rand_r(&seed) % radix);
                assert_int_equal(ff1_crypt(k, radix, tweak, tl, x, n, a, false, false), MM_OK);
                assert_int_equal(ff1_crypt(k, radix, tweak, tl, x, n, a2, false, false), MM_OK);
                assert_int_equal(ff1_crypt(k, radix, tweak, tl, x, n, b, false, true), MM_OK);
                if (memcmp(a, b, n) != 0 || memcmp(a2, b, n) != 0)
                    fail_msg("radix %u, n %zu, tweak %zu: the paths disagree", radix, n, tl);
                assert_int_equal(ff1_crypt(k, radix, tweak, tl, a, n, b, true, true), MM_OK);
                assert_memory_equal(x, b, n);
                assert_int_equal(ff1_decrypt(k, radix, tweak, tl, a, n, b), MM_OK);
                assert_memory_equal(x, b, n);
            }
    }
    assert_true(shapes > 64 * 20);
    /* a long value: BIGNUM only, S longer than one block */
    {
        uint8_t lx[300], la[300];
        for (size_t i = 0; i < sizeof(lx); i++)
            lx[i] = (uint8_t)(rand_r(&seed) % 62);
        assert_int_equal(ff1_encrypt(k, 62, NULL, 0, lx, sizeof(lx), la), MM_OK);
        assert_memory_not_equal(lx, la, sizeof(lx));
        assert_int_equal(ff1_decrypt(k, 62, NULL, 0, la, sizeof(la), la), MM_OK);
        assert_memory_equal(lx, la, sizeof(lx));
    }
    ff1_key_free(k);
}

/* ff1_encrypt_lanes gives each value what the reference path gives it alone: batches of 1
 * to FF1_LANES values of mixed radix, length (the 64-bit path and past it) and tweak (none,
 * in Q's last block, over several blocks), each NIST sample among random companions; and
 * one bad value fails the batch before anything is written. */
static void ff1_lanes_agree(void **state)
{
    unsigned char key[32], tweak[FF1_LANES][40];
    uint8_t x[FF1_LANES][40], want[FF1_LANES][40], orig[40];
    ff1_lane v[FF1_LANES + 1];
    ff1_key *k = NULL;
    unsigned seed = 33;

    (void)state;
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)rand_r(&seed);
    assert_int_equal(ff1_key_new(key, sizeof(key), &k), MM_OK);
    for (int round = 0; round < 400; round++) {
        size_t cnt = 1 + (size_t)round % FF1_LANES;
        for (size_t j = 0; j < cnt; j++) {
            unsigned radix = j % 3 == 0 ? 10 : 2 + rand_r(&seed) % 61;
            size_t n = 7 + rand_r(&seed) % 33, tl = rand_r(&seed) % 3 * 18;
            for (size_t i = 0; i < tl; i++)
                tweak[j][i] = (unsigned char)rand_r(&seed);
            for (size_t i = 0; i < n; i++)
                x[j][i] = (uint8_t)(rand_r(&seed) % radix);
            assert_int_equal(ff1_crypt(k, radix, tweak[j], tl, x[j], n, want[j], false, true),
                             MM_OK);
            v[j] = (ff1_lane){.radix = radix, .tweak = tweak[j], .tlen = tl, .x = x[j], .n = n};
        }
        assert_int_equal(ff1_encrypt_lanes(k, v, cnt), MM_OK);
        for (size_t j = 0; j < cnt; j++)
            if (memcmp(x[j], want[j], v[j].n) != 0)
                fail_msg("round %d: value %zu of %zu (radix %u, n %zu, tweak %zu) differs",
                         round, j, cnt, v[j].radix, v[j].n, v[j].tlen);
    }
    /* a numeral out of range anywhere: nothing is encrypted */
    for (size_t j = 0; j < 4; j++) {
        for (size_t i = 0; i < 10; i++)
            x[j][i] = (uint8_t)(i % 10);
        v[j] = (ff1_lane){.radix = 10, .x = x[j], .n = 10};
    }
    memcpy(orig, x[0], 10);
    x[3][5] = 10;
    assert_int_equal(ff1_encrypt_lanes(k, v, 4), MM_EINVAL);
    assert_memory_equal(x[0], orig, 10);
    assert_int_equal(ff1_encrypt_lanes(k, v, FF1_LANES + 1), MM_ELIMIT);
    ff1_key_free(k);

    /* the NIST samples, each in a batch of its key with two random values */
    for (size_t s = 0; s < MM_ARRAY_LEN(ff1_samples); s++) {
        unsigned char skey[32], stw[32];
        uint8_t sx[40], c1[12], c2[12], w1[12], w2[12];
        char text[64];
        size_t klen = unhex(ff1_samples[s].key, skey), tlen = unhex(ff1_samples[s].tweak, stw);
        size_t n = numerals(ff1_samples[s].pt, sx);
        unsigned radix = ff1_samples[s].radix;

        assert_int_equal(ff1_key_new(skey, klen, &k), MM_OK);
        for (size_t i = 0; i < sizeof(c1); i++) {
            c1[i] = (uint8_t)(rand_r(&seed) % radix);
            c2[i] = (uint8_t)(rand_r(&seed) % radix);
        }
        assert_int_equal(ff1_crypt(k, radix, NULL, 0, c1, sizeof(c1), w1, false, true), MM_OK);
        assert_int_equal(ff1_crypt(k, radix, stw, 3, c2, sizeof(c2), w2, false, true), MM_OK);
        v[0] = (ff1_lane){.radix = radix, .x = c1, .n = sizeof(c1)};
        v[1] = (ff1_lane){.radix = radix, .tweak = stw, .tlen = tlen, .x = sx, .n = n};
        v[2] = (ff1_lane){.radix = radix, .tweak = stw, .tlen = 3, .x = c2, .n = sizeof(c2)};
        assert_int_equal(ff1_encrypt_lanes(k, v, 3), MM_OK);
        text_of(sx, n, text);
        assert_string_equal(text, ff1_samples[s].ct);
        assert_memory_equal(c1, w1, sizeof(c1));
        assert_memory_equal(c2, w2, sizeof(c2));
        ff1_key_free(k);
    }
}

/* Threads sharing one key fill its CIPH(P) cache and borrow its contexts at once (two
 * pairs race on the same shapes); each result must equal the reference path's, which
 * computes CIPH(P) itself. */
#define TH_N 4
#define TH_SHAPES 200

typedef struct {
    const ff1_key *k;
    unsigned seed;
    bool ok;
} th_arg;

static void *th_run(void *p)
{
    th_arg *t = p;
    t->ok = true;
    for (int r = 0; r < 3; r++) /* the shapes again: cached CIPH(P) this time */
        for (int i = 0; i < TH_SHAPES; i++) {
            unsigned seed = t->seed + (unsigned)i, radix = 2 + rand_r(&seed) % 61;
            size_t n = 8 + rand_r(&seed) % 12, tl = rand_r(&seed) % 3 * 13;
            unsigned char tweak[26];
            uint8_t x[20], a[20], b[20];
            for (size_t j = 0; j < tl; j++)
                tweak[j] = (unsigned char)rand_r(&seed);
            for (size_t j = 0; j < n; j++)
                x[j] = (uint8_t)(rand_r(&seed) % radix);
            if (ff1_crypt(t->k, radix, tweak, tl, x, n, a, false, false) != MM_OK ||
                ff1_crypt(t->k, radix, tweak, tl, x, n, b, false, true) != MM_OK ||
                memcmp(a, b, n) != 0)
                t->ok = false;
        }
    return NULL;
}

static void ff1_threads_share_a_key(void **state)
{
    unsigned char key[32] = {7, 1, 6};
    ff1_key *k = NULL;
    pthread_t th[TH_N];
    th_arg args[TH_N];

    (void)state;
    assert_int_equal(ff1_key_new(key, sizeof(key), &k), MM_OK);
    for (int i = 0; i < TH_N; i++) {
        args[i] = (th_arg){.k = k, .seed = 1000u * (unsigned)(i % 2)};
        assert_int_equal(pthread_create(&th[i], NULL, th_run, &args[i]), 0);
    }
    for (int i = 0; i < TH_N; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_true(args[i].ok);
    }
    ff1_key_free(k);
}

/* Every two-digit decimal value (domain exactly 100) maps to a distinct one: a permutation. */
static void ff1_small_domain_is_permutation(void **state)
{
    unsigned char key[16] = {1};
    bool seen[100] = {false};
    ff1_key *k = NULL;

    (void)state;
    assert_int_equal(ff1_key_new(key, sizeof(key), &k), MM_OK);
    for (int v = 0; v < 100; v++) {
        uint8_t x[2] = {(uint8_t)(v / 10), (uint8_t)(v % 10)}, y[2];
        assert_int_equal(ff1_encrypt(k, 10, NULL, 0, x, 2, y), MM_OK);
        assert_false(seen[y[0] * 10 + y[1]]);
        seen[y[0] * 10 + y[1]] = true;
    }
    ff1_key_free(k);
}

static void ff1_rejects(void **state)
{
    unsigned char key[32] = {0};
    uint8_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8];
    ff1_key *k = NULL;

    (void)state;
    assert_int_equal(ff1_key_new(key, 20, &k), MM_EINVAL);
    assert_int_equal(ff1_key_new(key, 32, &k), MM_OK);
    assert_int_equal(ff1_encrypt(k, 10, NULL, 0, x, 1, y), MM_EINVAL); /* n < 2 */
    assert_int_equal(ff1_encrypt(k, 2, NULL, 0, x, 6, y), MM_EINVAL);  /* numeral >= radix */
    memset(x, 0, sizeof(x));
    assert_int_equal(ff1_encrypt(k, 2, NULL, 0, x, 6, y), MM_EINVAL);  /* 2^6 < 100 */
    assert_int_equal(ff1_encrypt(k, 2, NULL, 0, x, 7, y), MM_OK);      /* 2^7 >= 100 */
    assert_int_equal(ff1_encrypt(k, 63, NULL, 0, x, 7, y), MM_EINVAL);
    ff1_key_free(k);
}

/* ---- AES-SIV -------------------------------------------------------------------------- */

static void siv_rfc5297(void **state)
{
    unsigned char key[64], ad[3][64], pt[64], want[96], got[96], back[64];
    const unsigned char *adp[3] = {ad[0], ad[1], ad[2]};
    size_t adl[3], klen, plen, wlen;
    siv_key *k = NULL;

    (void)state;
    /* A.1 */
    klen = unhex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", key);
    adl[0] = unhex("101112131415161718191a1b1c1d1e1f2021222324252627", ad[0]);
    plen = unhex("112233445566778899aabbccddee", pt);
    wlen = unhex("85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c", want);
    assert_int_equal(siv_key_new(key, klen, &k), MM_OK);
    assert_int_equal(siv_seal(k, adp, adl, 1, pt, plen, got), MM_OK);
    assert_memory_equal(got, want, wlen);
    assert_int_equal(siv_open(k, adp, adl, 1, got, wlen, back), MM_OK);
    assert_memory_equal(back, pt, plen);
    /* a changed byte anywhere fails the tag; so does other associated data */
    got[20] ^= 1;
    assert_int_equal(siv_open(k, adp, adl, 1, got, wlen, back), MM_EINVAL);
    got[20] ^= 1;
    ad[0][0] ^= 1;
    assert_int_equal(siv_open(k, adp, adl, 1, got, wlen, back), MM_EINVAL);
    /* OpenSSL 3's EVP drops an empty update, so an empty plaintext cannot be sealed (the
     * encrypt action leaves empty strings empty); the call says so rather than misbehave */
    assert_int_equal(siv_seal(k, NULL, NULL, 0, pt, 0, got), MM_EINVAL);
    assert_int_equal(siv_open(k, NULL, NULL, 0, got, 16, back), MM_EINVAL);
    siv_key_free(k);

    /* A.2: AD1, AD2, then the nonce as the last component */
    klen = unhex("7f7e7d7c7b7a79787776757473727170404142434445464748494a4b4c4d4e4f", key);
    adl[0] = unhex("00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100",
                   ad[0]);
    adl[1] = unhex("102030405060708090a0", ad[1]);
    adl[2] = unhex("09f911029d74e35bd84156c5635688c0", ad[2]);
    plen = unhex("7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67"
                 "205349562d414553", pt);
    wlen = unhex("7bdb6e3b432667eb06f4d14bff2fbd0fcb900f2fddbe404326601965c889bf17dba77ceb094fa66"
                 "3b7a3f748ba8af829ea64ad544a272e9c485b62a3fd5c0d", want);
    assert_int_equal(siv_key_new(key, klen, &k), MM_OK);
    assert_int_equal(siv_seal(k, adp, adl, 3, pt, plen, got), MM_OK);
    assert_memory_equal(got, want, wlen);
    assert_int_equal(siv_open(k, adp, adl, 3, got, wlen, back), MM_OK);
    assert_memory_equal(back, pt, plen);
    assert_int_equal(siv_open(k, adp, adl, 2, got, wlen, back), MM_EINVAL);
    siv_key_free(k);
    assert_int_equal(siv_key_new(key, 16, &k), MM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ff1_nist_samples),
        cmocka_unit_test(ff1_paths_agree),
        cmocka_unit_test(ff1_lanes_agree),
        cmocka_unit_test(ff1_threads_share_a_key),
        cmocka_unit_test(ff1_small_domain_is_permutation),
        cmocka_unit_test(ff1_rejects),
        cmocka_unit_test(siv_rfc5297),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
