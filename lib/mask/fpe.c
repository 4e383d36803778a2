/* lib/mask: what the encrypt action writes for one value.
 *
 * mode ff1 (format-preserving): ASCII letters and digits are the symbols; everything else
 * (spaces, '-', '.', '@', ...) stays where it was. The symbols to encrypt (after keepFirst,
 * before keepLast) pick the alphabet: digits only -> radix 10; digits and lowercase ->
 * radix 36 (0-9a-z); digits and uppercase -> radix 36 (0-9A-Z); both cases -> radix 62
 * (0-9a-zA-Z). So reveal can tell the alphabet from the ciphertext, the ciphertext must
 * fall in the same class as the plaintext (a lowercase value keeps at least one letter, a
 * mixed-case one both cases): FF1 is re-applied until it does (cycle walking, which keeps
 * the map a permutation of the class; about one round on average).
 * Card numbers (luhn valid/invalid, 12-19 digits): the last digit is the Luhn check digit
 * and is not encrypted; after the middle is, it is set from the new digits so the result
 * passes the check (valid) or fails it (invalid: the default, so a ciphertext is never
 * mistaken for a card, and a second sidecar's credit_card detector does not encrypt it
 * again). The check digit's distance from the correct one is kept (valid) or moved by 5
 * (invalid), so the map stays invertible for any input, Luhn-valid or not.
 * A value with too few symbols to encrypt (the domain radix^len must be at least 100; FF1
 * cannot be a safe permutation below that) or with non-ASCII characters is masked with '*'
 * instead: never shown, never reversible.
 * surrogate: "<surrogate>.v<N>:" before the ciphertext names the key version.
 *
 * mode siv: "enc_v<N>_" + base64url (no padding) of AES-SIV's V || C, with the tweak, if
 * any, as the one associated-data component. Deterministic: equal inputs, equal tokens. An
 * empty value stays empty. */
#include "mask/crypt_int.h"
#include "mask/mask_int.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#define ENC_MAX_VALUE 1024 /* bytes of one ff1 value; a longer one is masked */
#define SIV_PREFIX_MAX 16         /* "enc_v9999_" */

struct enc_t {
    mm_enc_mode mode;
    int version;
    ff1_key *ff1;
    siv_key *siv;
    unsigned char *tweak;
    size_t tweak_len;
    char *tweak_field; /* tweak: {field: NAME} (the caller finds the value); NULL none */
    int keep_first, keep_last;
    mm_luhn luhn;
    char *surrogate;
    char siv_prefix[SIV_PREFIX_MAX]; /* "enc_v<N>_", made once */
    size_t siv_prefix_len;
    char ff1_prefix[64]; /* "<surrogate>.v<N>:", made once; empty without a surrogate */
    size_t ff1_prefix_len;
};

/* ---- keys ----------------------------------------------------------------------------- */

mm_err enc_derive(const unsigned char *ikm, size_t len, const char *info, unsigned char *out,
                  size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[4];
    mm_err rc = MM_ENOMEM;

    if (!c)
        goto out;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info,
                                                  strlen(info));
    params[3] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(c, out, outlen, params) == 1)
        rc = MM_OK;
out:
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
    return rc;
}

mm_err enc_compile(const mm_action *a, const mm_keys *keys, int version, const char *where,
                   enc_t **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    enc_t *e = NULL;
    char name[300];
    const unsigned char *k;
    size_t klen;
    unsigned char dk[64];

    if (!version)
        version = a->key_version;
    snprintf(name, sizeof(name), "%s.v%d", a->key ? a->key : "", version);
    if (!a->key || !keys_get(keys, name, &k, &klen))
        return mm_errf(eb, MM_EINVAL, "%s: key \"%s\" is not in the keys (the Secret "
                       "maskmesh-keys, or --keys DIR)", where, name);
    if (klen < ENC_MIN_KEY)
        return mm_errf(eb, MM_EINVAL, "%s: key \"%s\" is shorter than %d bytes", where, name,
                       ENC_MIN_KEY);
    if (!(e = mm_calloc(1, sizeof(*e))))
        goto nomem;
    e->mode = a->enc_mode;
    e->version = version;
    e->keep_first = a->keep_first;
    e->keep_last = a->keep_last;
    e->luhn = a->luhn;
    {
        int pk = snprintf(e->siv_prefix, sizeof(e->siv_prefix), "enc_v%d_", version);
        e->siv_prefix_len = pk < 0 ? 0 : (size_t)pk < sizeof(e->siv_prefix) ? (size_t)pk
                                                                           : sizeof(e->siv_prefix) - 1;
    }
    if (a->tweak && *a->tweak) {
        e->tweak_len = strlen(a->tweak);
        if (!(e->tweak = mm_memdup(a->tweak, e->tweak_len)))
            goto nomem;
    }
    if (a->surrogate && !(e->surrogate = mm_strdup(a->surrogate)))
        goto nomem;
    if (e->surrogate) {
        int pk = snprintf(e->ff1_prefix, sizeof(e->ff1_prefix), "%s.v%d:", e->surrogate,
                          version);
        e->ff1_prefix_len = pk > 0 && (size_t)pk < sizeof(e->ff1_prefix) ? (size_t)pk : 0;
    }
    if (a->tweak_field && !(e->tweak_field = mm_strdup(a->tweak_field)))
        goto nomem;
    if (e->mode == MM_ENC_FF1) {
        if ((rc = enc_derive(k, klen, "maskmesh ff1", dk, 32)) != MM_OK ||
            (rc = ff1_key_new(dk, 32, &e->ff1)) != MM_OK)
            goto nomem;
    } else {
        if ((rc = enc_derive(k, klen, "maskmesh siv", dk, 64)) != MM_OK)
            goto nomem;
        if ((rc = siv_key_new(dk, 64, &e->siv)) != MM_OK) {
            rc = mm_errf(eb, rc, "%s: AES-SIV is not available from OpenSSL (3.0 or later)",
                         where);
            goto out;
        }
    }
    *out = e;
    e = NULL;
    goto out;
nomem:
    rc = mm_errf(eb, MM_ENOMEM, "%s: out of memory", where);
out:
    OPENSSL_cleanse(dk, sizeof(dk));
    enc_free(e);
    return rc;
}

void enc_free(enc_t *e)
{
    if (!e)
        return;
    ff1_key_free(e->ff1);
    siv_key_free(e->siv);
    mm_free(e->tweak);
    mm_free(e->tweak_field);
    mm_free(e->surrogate);
    mm_free(e);
}

int enc_version(const enc_t *e) { return e->version; }

/* ---- ff1 values ----------------------------------------------------------------------- */

enum { CL_DIGITS, CL_LOWER, CL_UPPER, CL_MIXED };
static const unsigned cl_radix[] = {10, 36, 36, 62};

static inline bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* The class of numerals x[0..n) in the class's own radix. */
static int num_class(int cl, const uint8_t *x, size_t n)
{
    bool lo = false, up = false;
    if (cl == CL_DIGITS)
        return CL_DIGITS;
    for (size_t i = 0; i < n; i++) {
        lo |= x[i] >= 10 && x[i] < 36;
        up |= x[i] >= 36;
    }
    if (cl == CL_MIXED)
        return lo && up ? CL_MIXED : -1;
    return lo ? cl : CL_DIGITS; /* radix 36: a letter or not */
}

static uint8_t to_num(int cl, unsigned char c)
{
    if (c <= '9')
        return (uint8_t)(c - '0');
    if (c >= 'a')
        return (uint8_t)(c - 'a' + 10);
    return (uint8_t)(c - 'A' + (cl == CL_MIXED ? 36 : 10));
}

static char to_char(int cl, uint8_t v)
{
    if (v < 10)
        return (char)('0' + v);
    if (cl == CL_UPPER)
        return (char)('A' + v - 10);
    return v < 36 ? (char)('a' + v - 10) : (char)('A' + v - 36);
}

/* The Luhn check digit that makes d[0..n) || digit valid. */
static int luhn_digit(const char *d, size_t n)
{
    /* the doubled digit's digit sum, by table: no branch per digit */
    static const unsigned char dbl[10] = {0, 2, 4, 6, 8, 1, 3, 5, 7, 9};
    unsigned sum = 0;
    size_t i = n;

    while (i >= 2) {
        sum += dbl[d[i - 1] - '0'] + (unsigned)(d[i - 2] - '0');
        i -= 2;
    }
    if (i)
        sum += dbl[d[0] - '0'];
    return (int)((10 - sum % 10) % 10);
}

/* Every symbol to '*', every other byte kept; a UTF-8 character becomes one '*', and so
 * does each byte that is not part of one (a stray continuation byte must not vanish: the
 * value would shrink to nothing). */
static mm_err mask_all(const char *in, size_t n, mm_buf *out)
{
    mm_err rc = MM_OK;
    unsigned pending = 0; /* continuation bytes the last lead byte announced */
    for (size_t i = 0; i < n && rc == MM_OK; i++) {
        unsigned char c = (unsigned char)in[i];
        if ((c & 0xC0) == 0x80 && pending) {
            pending--;
            continue; /* its character already gave its '*' */
        }
        pending = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
        rc = mm_buf_putc(out, is_alnum(c) || c >= 0x80 ? '*' : (char)c);
    }
    return rc;
}

/* One ff1 value taken apart: its symbols (sym, in order, as the Luhn check reads them) at
 * positions pos in the value, the m - first - last to encrypt as numerals x in radix
 * cl_radix[cl], and for a card the check digit's distance from the correct one. */
typedef struct {
    uint16_t *pos;
    char *sym;
    uint8_t *x;
    size_t m, first, len;
    int cl, check_off;
    bool card;
    bool plain; /* no byte JSON escapes */
} fv;

/* Takes v[0..n) apart into f (its arrays hold n entries); *masked when the value cannot be
 * encrypted and the caller should mask it instead. */
static void fv_split(const enc_t *e, const char *v, size_t n, fv *f, bool *masked)
{
    size_t m = 0, last;
    bool lo = false, up = false, dg = true, plain = true;

    *masked = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((unsigned)(c - '0') < 10) { /* most symbols are digits: they ask nothing else */
            f->sym[m] = (char)c;
            f->pos[m++] = (uint16_t)i;
            continue;
        }
        if (c >= 0x80) {
            *masked = true;
            return;
        }
        plain &= c >= 0x20 && c != '"' && c != '\\';
        if (is_alnum(c)) { /* a letter */
            f->sym[m] = (char)c;
            dg = false;
            f->pos[m++] = (uint16_t)i;
        }
    }
    f->m = m;
    f->plain = plain;
    f->first = (size_t)e->keep_first;
    last = (size_t)e->keep_last;
    f->card = e->luhn != MM_LUHN_NONE && dg && m >= 12 && m <= 19;
    if (f->card && last == 0)
        last = 1; /* the check digit is never encrypted: it is recomputed */
    if (m <= f->first + last) {
        *masked = true;
        return;
    }
    f->len = m - f->first - last;
    f->check_off = 0;
    if (f->card) /* the check digit's distance from the correct one */
        f->check_off = (f->sym[m - 1] - '0' - luhn_digit(f->sym, m - 1) + 10) % 10;
    for (size_t i = 0; i < f->len; i++) {
        char c = f->sym[f->first + i];
        lo |= c >= 'a';
        up |= c >= 'A' && c <= 'Z';
    }
    f->cl = lo && up ? CL_MIXED : lo ? CL_LOWER : up ? CL_UPPER : CL_DIGITS;
    {   /* FF1 needs radix^len >= 100 */
        uint64_t dom = 1;
        for (size_t i = 0; i < f->len && dom < 100; i++)
            dom *= cl_radix[f->cl];
        if (dom < 100) {
            *masked = true;
            return;
        }
    }
    for (size_t i = 0; i < f->len; i++)
        f->x[i] = to_num(f->cl, (unsigned char)f->sym[f->first + i]);
}

/* Writes f's numerals (encrypted or decrypted) back into v, and a card's check digit. */
static void fv_join(const enc_t *e, fv *f, char *v, bool decrypt)
{
    for (size_t i = 0; i < f->len; i++)
        v[f->pos[f->first + i]] = f->sym[f->first + i] = to_char(f->cl, f->x[i]);
    if (f->card) {
        /* encrypt: valid keeps the distance, invalid moves it by 5; decrypt undoes that */
        int shift = e->luhn == MM_LUHN_INVALID ? 5 : 0;
        int off = decrypt ? (f->check_off + 10 - shift) % 10 : (f->check_off + shift) % 10;
        v[f->pos[f->m - 1]] = (char)('0' + (luhn_digit(f->sym, f->m - 1) + off) % 10);
    }
}

/* Encrypts (or decrypts) the symbols of v[0..n) in place; *masked when the value cannot be
 * encrypted and the caller should mask it instead. */
static mm_err ff1_value(const enc_t *e, const unsigned char *tw, size_t twl, char *v, size_t n,
                        bool decrypt, bool *masked)
{
    uint16_t pos[ENC_MAX_VALUE];
    uint8_t x[ENC_MAX_VALUE];
    char sym[ENC_MAX_VALUE];
    fv f = {.pos = pos, .sym = sym, .x = x};
    mm_err rc;

    fv_split(e, v, n, &f, masked);
    if (*masked)
        return MM_OK;
    for (int walk = 0;; walk++) {
        if (walk == ENC_MAX_WALK)
            return MM_EINVAL;
        rc = decrypt ? ff1_decrypt(e->ff1, cl_radix[f.cl], tw, twl, f.x, f.len, f.x)
                     : ff1_encrypt(e->ff1, cl_radix[f.cl], tw, twl, f.x, f.len, f.x);
        if (rc != MM_OK)
            return rc;
        if (num_class(f.cl, f.x, f.len) == f.cl)
            break;
    }
    fv_join(e, &f, v, decrypt);
    return MM_OK;
}

static mm_err ff1_apply(const enc_t *e, const unsigned char *tw, size_t twl, const char *in,
                        size_t n, mm_buf *out, bool decrypt)
{
    char work[ENC_MAX_VALUE];
    const char *pre = e->ff1_prefix;
    size_t plen = e->ff1_prefix_len;
    bool masked;
    mm_err rc;

    if (decrypt && plen) {
        if (n < plen || memcmp(in, pre, plen) != 0)
            return MM_EINVAL;
        in += plen;
        n -= plen;
    }
    if (n > sizeof(work))
        return decrypt ? MM_EINVAL : mask_all(in, n, out);
    memcpy(work, in, n);
    if ((rc = ff1_value(e, tw, twl, work, n, decrypt, &masked)) != MM_OK)
        goto out;
    if (masked) {
        /* decrypt: a masked value holds nothing to reveal */
        rc = decrypt ? MM_EINVAL : mask_all(in, n, out);
        goto out;
    }
    if (!decrypt && plen && (rc = mm_buf_append(out, pre, plen)) != MM_OK)
        goto out;
    rc = mm_buf_append(out, work, n);
out:
    OPENSSL_cleanse(work, n < sizeof(work) ? n : sizeof(work));
    return rc;
}

/* ---- ff1 values in batches ------------------------------------------------------------ */

bool enc_defer(const enc_t *e, const char *in, size_t n, mm_buf *out, enc_job *job,
               mm_err *rc)
{
    fv f = {.pos = job->pos, .sym = job->sym, .x = job->x};
    bool masked;

    *rc = MM_OK;
    if (e->mode != MM_ENC_FF1 || n > ENC_JOB_MAX)
        return false;
    fv_split(e, in, n, &f, &masked);
    if (masked || f.cl != CL_DIGITS || !f.plain)
        return false;
    job->e = e;
    job->m = (uint8_t)f.m;
    job->first = (uint8_t)f.first;
    job->len = (uint8_t)f.len;
    job->check_off = (uint8_t)f.check_off;
    job->card = f.card;
    /* a surrogate is letters and '_' (policy/encrypt.c): its prefix needs no JSON escape */
    job->at = e->ff1_prefix_len;
    if ((*rc = mm_buf_append(out, e->ff1_prefix, e->ff1_prefix_len)) == MM_OK)
        *rc = mm_buf_append(out, in, n);
    return true;
}

mm_err enc_run(enc_job *jobs, size_t n, char *base)
{
    mm_err rc = MM_OK;
    ff1_lane lane[FF1_LANES];
    size_t idx[FF1_LANES], left = n;
    uint32_t done = 0; /* bit j: job j is in a batch run */

    if (n > 32)
        return MM_ELIMIT;
    while (rc == MM_OK && left) {
        const enc_t *e = NULL;
        size_t cnt = 0;
        for (size_t j = 0; j < n && cnt < FF1_LANES; j++) {
            if (done & (uint32_t)1 << j || (e && jobs[j].e->ff1 != e->ff1))
                continue;
            e = jobs[j].e;
            done |= (uint32_t)1 << j;
            left--;
            idx[cnt] = j;
            lane[cnt++] = (ff1_lane){.radix = 10, .tweak = jobs[j].e->tweak,
                                     .tlen = jobs[j].e->tweak_len, .x = jobs[j].x,
                                     .n = jobs[j].len};
        }
        if ((rc = ff1_encrypt_lanes(e->ff1, lane, cnt)) != MM_OK)
            break;
        for (size_t i = 0; i < cnt; i++) {
            enc_job *j = &jobs[idx[i]];
            fv f = {.pos = j->pos, .sym = j->sym, .x = j->x, .m = j->m, .first = j->first,
                    .len = j->len, .cl = CL_DIGITS, .check_off = j->check_off,
                    .card = j->card};
            fv_join(j->e, &f, base + j->at, false);
        }
    }
    explicit_bzero(jobs, n * sizeof(*jobs));
    return rc;
}

/* ---- siv tokens ----------------------------------------------------------------------- */

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Written straight into the room reserved: ceil(4n / 3) characters. */
static mm_err b64u_append(mm_buf *out, const unsigned char *in, size_t n)
{
    mm_err rc = mm_buf_reserve(out, (n * 4 + 2) / 3);
    uint32_t acc = 0;
    int bits = 0;
    char *o;

    if (rc != MM_OK)
        return rc;
    o = out->data + out->len;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *o++ = b64u[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        *o++ = b64u[(acc << (6 - bits)) & 63];
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0'; /* mm_buf keeps its data NUL-terminated */
    return MM_OK;
}

/* Decodes unpadded base64url; false on a character outside the alphabet or a bad length. */
static bool b64u_decode(const char *in, size_t n, unsigned char *out, size_t *outlen)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;

    if (n % 4 == 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *p = memchr(b64u, in[i], 64);
        if (!p || !in[i])
            return false;
        acc = acc << 6 | (uint32_t)(p - b64u);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits && (acc & ((1u << bits) - 1))) /* leftover bits must be zero: one encoding */
        return false;
    *outlen = o;
    return true;
}

/* "enc_v<N>_": the version and the prefix's length, or -1. */
static int siv_token_version(const char *in, size_t n, size_t *plen)
{
    int v = 0;
    size_t i = 5;

    if (n < 6 || memcmp(in, "enc_v", 5) != 0)
        return -1;
    for (; i < n && i < 9 && in[i] >= '0' && in[i] <= '9'; i++)
        v = v * 10 + (in[i] - '0');
    if (i == 5 || i >= n || in[i] != '_' || in[5] == '0')
        return -1;
    *plen = i + 1;
    return v;
}

static mm_err siv_apply(const enc_t *e, const unsigned char *tw, size_t twl, const char *in,
                        size_t n, mm_buf *out, bool decrypt)
{
    const unsigned char *ad[1] = {tw};
    size_t adl[1] = {twl}, plen, blen;
    unsigned char sbuf[256], *buf = sbuf; /* the heap only for a long value */
    mm_err rc = MM_ENOMEM;

    if (n == 0)
        return MM_OK;
    if (n > MM_MASK_MAX_VALUE)
        return MM_ELIMIT;
    if (n + SIV_TAG > sizeof(sbuf) && !(buf = mm_malloc(n + SIV_TAG)))
        return MM_ENOMEM;
    if (!decrypt) {
        if ((rc = siv_seal(e->siv, ad, adl, twl ? 1 : 0, (const unsigned char *)in, n,
                           buf)) == MM_OK &&
            (rc = mm_buf_append(out, e->siv_prefix, e->siv_prefix_len)) == MM_OK)
            rc = b64u_append(out, buf, n + SIV_TAG);
        goto out;
    }
    rc = MM_EINVAL;
    if (siv_token_version(in, n, &plen) != e->version ||
        !b64u_decode(in + plen, n - plen, buf, &blen) || blen <= SIV_TAG)
        goto out;
    if ((rc = siv_open(e->siv, ad, adl, twl ? 1 : 0, buf, blen, buf)) == MM_OK)
        rc = mm_buf_append(out, buf, blen - SIV_TAG);
out:
    OPENSSL_cleanse(buf, n + SIV_TAG);
    if (buf != sbuf)
        mm_free(buf);
    return rc;
}

/* ---- the surface ---------------------------------------------------------------------- */

mm_err enc_crypt_tweak(const enc_t *e, const void *tweak, size_t tlen, const char *in, size_t n,
                       mm_buf *out, bool decrypt)
{
    const unsigned char *tw = tweak;
    if (tlen > FF1_MAX_TWEAK)
        return MM_ELIMIT;
    return e->mode == MM_ENC_FF1 ? ff1_apply(e, tw, tlen, in, n, out, decrypt)
                                 : siv_apply(e, tw, tlen, in, n, out, decrypt);
}

mm_err enc_encrypt(const enc_t *e, const char *in, size_t n, mm_buf *out)
{
    return enc_crypt_tweak(e, e->tweak, e->tweak_len, in, n, out, false);
}

mm_err enc_decrypt(const enc_t *e, const char *in, size_t n, mm_buf *out)
{
    return enc_crypt_tweak(e, e->tweak, e->tweak_len, in, n, out, true);
}

const char *enc_tweak_field(const enc_t *e)
{
    return e->tweak_field;
}

int enc_value_version(const mm_action *a, const char *in, size_t n)
{
    size_t plen, sl;
    int v = 0;

    if (a->enc_mode == MM_ENC_SIV)
        return siv_token_version(in, n, &plen);
    if (!a->surrogate)
        return 0;
    sl = strlen(a->surrogate);
    if (n < sl + 4 || memcmp(in, a->surrogate, sl) != 0 || memcmp(in + sl, ".v", 2) != 0)
        return -1;
    for (plen = sl + 2; plen < n && plen < sl + 6 && in[plen] >= '0' && in[plen] <= '9'; plen++)
        v = v * 10 + (in[plen] - '0');
    return plen > sl + 2 && plen < n && in[plen] == ':' && v > 0 ? v : -1;
}
