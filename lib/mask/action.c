/* lib/mask: the actions — redact, mask, hash, tokenize, remove, replace — applied to one
 * value's raw bytes. The caller escapes the result for JSON.
 *
 * Keyed digests are HMAC-SHA256 (RFC 2104) with the key's inner and outer pad blocks hashed
 * once at compile time: a value then costs two SHA-256 blocks from copies of those states.
 * The states are OpenSSL's SHA256_CTX, copied by assignment: the EVP digest API can only
 * copy a context by allocating the provider's state anew (EVP_MD_CTX_copy_ex frees and
 * duplicates it), and with a context made and freed per value that was three allocations,
 * three frees and the EVP dispatch around two compression calls, a quarter of tokenize's
 * instructions (callgrind) and most of its time on a CPU with SHA extensions.
 * SHA256_Init/Update/Final are deprecated in OpenSSL 3 (not removed); the compression
 * function under them is the one the default provider runs. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init/Update/Final: see above */

#include "mask/crypt_int.h"
#include "mask/mask_int.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#define SHA256_LEN 32
#define SHA256_BLOCK 64
#define TOKEN_BYTES 20 /* tokenize keeps 160 bits of the HMAC: 32 base32 characters */

/* ---- UTF-8 ---------------------------------------------------------------------------- */

/* Length of the UTF-8 sequence at p, or 1 for a byte that does not start a well-formed one
 * (so malformed input still moves forward, one byte per character). *cp gets the code
 * point, or 0xFFFD for a malformed byte. */
static size_t u8dec(const unsigned char *p, size_t left, uint32_t *cp)
{
    size_t n;
    uint32_t v;

    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        n = 2;
        v = p[0] & 0x1F;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        n = 3;
        v = p[0] & 0x0F;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        n = 4;
        v = p[0] & 0x07;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    if (n > left)
        goto bad;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            goto bad;
        v = v << 6 | (p[i] & 0x3F);
    }
    /* overlong forms, surrogates and values past U+10FFFF are not characters */
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
        (v >= 0xD800 && v <= 0xDFFF))
        goto bad;
    *cp = v;
    return n;
bad:
    *cp = 0xFFFD;
    return 1;
}

static inline bool ascii_alnum(unsigned char c)
{
    return (unsigned char)(c - '0') < 10 || (unsigned char)((c | 0x20) - 'a') < 26;
}

/* Letters and digits are what preserveFormat masks. Outside ASCII, a code point counts as a
 * letter unless it is in a block of spaces, punctuation or symbols (Latin-1 punctuation,
 * General Punctuation, currency, arrows to dingbats, CJK punctuation, fullwidth punctuation,
 * emoji). Malformed bytes count as letters, so they are masked, never shown. */
static inline bool maskable(uint32_t c)
{
    if (c < 0x80)
        return ascii_alnum((unsigned char)c);
    if (c <= 0xBF) /* Latin-1 punctuation and symbols; ª ² ³ µ ¹ º ¼ ½ ¾ are letters/numbers */
        return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA ||
               (c >= 0xBC && c <= 0xBE);
    if (c == 0xD7 || c == 0xF7) /* × ÷ */
        return false;
    if ((c >= 0x2000 && c <= 0x206F) || (c >= 0x20A0 && c <= 0x20CF) ||
        (c >= 0x2190 && c <= 0x245F) || (c >= 0x2500 && c <= 0x2BFF))
        return false;
    if ((c >= 0x3000 && c <= 0x3004) || (c >= 0x3008 && c <= 0x3020) ||
        (c >= 0x3030 && c <= 0x303F))
        return false;
    if ((c >= 0xFE10 && c <= 0xFE1F) || (c >= 0xFE30 && c <= 0xFE6F) || c == 0xFEFF ||
        (c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
        (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65))
        return false;
    if (c >= 0x1F000 && c <= 0x1FAFF)
        return false;
    return true;
}

/* ---- compile -------------------------------------------------------------------------- */

/* The HMAC inner and outer states after absorbing key ^ ipad and key ^ opad. */
static mm_err hmac_prepare(act_t *a)
{
    unsigned char k[SHA256_BLOCK], pad[SHA256_BLOCK];
    mm_err rc = MM_ENOMEM;

    memset(k, 0, sizeof(k));
    if (a->key_len > SHA256_BLOCK) /* RFC 2104: a longer key is hashed first */
        SHA256(a->key, a->key_len, k);
    else
        memcpy(k, a->key, a->key_len);
    if (!(a->hmac = mm_calloc(2, sizeof(*a->hmac))))
        goto out;
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    if (!SHA256_Init(&a->hmac[0]) || !SHA256_Update(&a->hmac[0], pad, sizeof(pad)))
        goto out;
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        pad[i] = k[i] ^ 0x5C;
    if (!SHA256_Init(&a->hmac[1]) || !SHA256_Update(&a->hmac[1], pad, sizeof(pad)))
        goto out;
    rc = MM_OK;
out:
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    return rc;
}

mm_err act_compile(const mm_action *a, const mm_keys *keys, const char *where, act_t *out,
                   mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    const unsigned char *k = NULL;
    size_t klen = 0;
    const char *text = NULL;

    memset(out, 0, sizeof(*out));
    out->type = a->type;
    switch (a->type) {
    case MM_ACTION_REDACT:
        text = a->replacement ? a->replacement : "[REDACTED]";
        break;
    case MM_ACTION_REPLACE:
        text = a->value ? a->value : "";
        break;
    case MM_ACTION_MASK:
        if (a->keep_first < 0 || a->keep_last < 0 || a->keep_first > MM_POLICY_MAX_KEEP ||
            a->keep_last > MM_POLICY_MAX_KEEP) {
            rc = mm_errf(eb, MM_EINVAL, "%s: keepFirst and keepLast must be 0..%d", where,
                         MM_POLICY_MAX_KEEP);
            goto out;
        }
        out->keep_first = a->keep_first;
        out->keep_last = a->keep_last;
        out->preserve_format = a->preserve_format;
        if (a->mask_char && *a->mask_char) {
            size_t n = strlen(a->mask_char);
            uint32_t cp;
            if (n >= sizeof(out->mask_char) ||
                u8dec((const unsigned char *)a->mask_char, n, &cp) != n || cp == 0xFFFD) {
                rc = mm_errf(eb, MM_EINVAL, "%s: the mask char must be one UTF-8 character",
                             where);
                goto out;
            }
            memcpy(out->mask_char, a->mask_char, n);
            out->mask_char_len = n;
        } else {
            out->mask_char[0] = '*';
            out->mask_char_len = 1;
        }
        break;
    case MM_ACTION_HASH:
    case MM_ACTION_TOKENIZE:
        if (!a->key && a->type == MM_ACTION_TOKENIZE) {
            rc = mm_errf(eb, MM_EINVAL, "%s: tokenize needs a key", where);
            goto out;
        }
        if (a->key) {
            /* a versioned tokenize key is the entry <key>.v<N> (as encrypt's are) */
            char name[300];
            snprintf(name, sizeof(name), a->key_version ? "%s.v%d" : "%s", a->key,
                     a->key_version);
            if (!keys_get(keys, name, &k, &klen)) {
                /* the key's name is configuration, not a secret: naming it helps */
                rc = mm_errf(eb, MM_EINVAL, "%s: key \"%s\" is not in the keys (the Secret "
                             "maskmesh-keys, or --keys DIR)", where, name);
                goto out;
            }
            out->key_version = a->type == MM_ACTION_TOKENIZE ? a->key_version : 0;
        }
        /* versioned: tok_v<N>_<base32>; the unversioned tok_<base32> never holds '_' */
        out->tok_prefix_len = (size_t)snprintf(out->tok_prefix, sizeof(out->tok_prefix),
                                               out->key_version ? "tok_v%d_" : "tok_",
                                               out->key_version);
        if (a->key) {
            if (!(out->key = mm_memdup(k, klen)))
                goto nomem;
            out->key_len = klen;
            if (hmac_prepare(out) != MM_OK)
                goto nomem;
        }
        break;
    case MM_ACTION_ENCRYPT:
        if ((rc = enc_compile(a, keys, 0, where, &out->enc, eb)) != MM_OK)
            goto out;
        break;
    case MM_ACTION_REMOVE:
        break;
    default:
        rc = mm_errf(eb, MM_EINVAL, "%s: unknown action type %d", where, (int)a->type);
        goto out;
    }
    if (text) {
        out->text_len = strlen(text);
        if (!(out->text = mm_memdup(text, out->text_len + 1)))
            goto nomem;
    }
    goto out;
nomem:
    rc = mm_errf(eb, MM_ENOMEM, "%s: out of memory", where);
out:
    if (rc != MM_OK)
        act_clear(out);
    return rc;
}

void act_clear(act_t *a)
{
    mm_free(a->text);
    if (a->key)
        OPENSSL_cleanse(a->key, a->key_len);
    mm_free(a->key);
    if (a->hmac) /* key-derived */
        OPENSSL_cleanse(a->hmac, 2 * sizeof(*a->hmac));
    mm_free(a->hmac);
    enc_free(a->enc);
    memset(a, 0, sizeof(*a));
}

/* ---- apply ---------------------------------------------------------------------------- */

static bool all_ascii(const unsigned char *in, size_t n)
{
    uint64_t acc = 0, w;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        memcpy(&w, in + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= in[i];
    return !(acc & 0x8080808080808080ull);
}

#define ONES 0x0101010101010101ull
/* 0x01 in each byte of eight ASCII bytes that is a letter or digit: with every byte below
 * 0x80, adding 0x80 - lo to each sets its top bit exactly when it is lo or more, and no
 * byte carries into the next. */
static inline uint64_t alnum_word(uint64_t w)
{
#define GE(w, lo) (((w) + (0x80 - (lo)) * ONES) & 0x80 * ONES)
    uint64_t l = w | 0x20 * ONES; /* letters to lower case; no other byte lands in a-z */
    return ((GE(w, '0') & ~GE(w, '9' + 1)) | (GE(l, 'a') & ~GE(l, 'z' + 1))) >> 7;
#undef GE
}

/* The letters and digits among n ASCII bytes, eight at a time. */
static size_t alnum_count(const unsigned char *in, size_t n)
{
    size_t total = 0, i = 0;
    uint64_t w;

    for (; i + 8 <= n; i += 8) {
        memcpy(&w, in + i, 8);
        total += (size_t)((alnum_word(w) * ONES) >> 56); /* the bytes, summed in the top one */
    }
    for (; i < n; i++)
        total += ascii_alnum(in[i]);
    return total;
}

/* Bit i set when in[i] is an ASCII letter or digit, for n <= 64 ASCII bytes, and in *total
 * how many: alnum_word on each word, its bytes gathered into one by a multiplication (byte
 * k's bit lands on bit 56 + k; every other product bit is below 56 or past 63, so none
 * carries). */
static uint64_t alnum_bits(const unsigned char *in, size_t n, size_t *total)
{
    uint64_t bits = 0, w;
    *total = 0;
    for (size_t i = 0; i < n; i += 8) {
        if (n - i >= 8) {
            memcpy(&w, in + i, 8);
        } else if (n >= 8) { /* the last 8 bytes, those already seen shifted out */
            memcpy(&w, in + n - 8, 8);
            w >>= 8 * (8 - (n - i));
        } else { /* past the end: zero bytes, not letters or digits */
            w = 0;
            for (size_t j = 0; j < n; j++)
                w |= (uint64_t)in[j] << 8 * j;
        }
        w = alnum_word(w);
        bits |= ((w * 0x0102040810204080ull) >> 56) << i;
        *total += (size_t)((w * ONES) >> 56); /* as alnum_count sums them */
    }
    return bits;
}
#undef ONES

/* apply_mask for an ASCII value and a one-byte mask character, the usual case (cards,
 * phone numbers, ids): a byte is a character, so the value is copied whole and the masked
 * stretch overwritten, instead of deciding each character in turn. That cost ~50
 * instructions a byte (callgrind), 15% of the sidecar's time on 64 KB bodies of cards;
 * this, ~20. With preserveFormat, up to 64 bytes on a little-endian machine, the letters
 * and digits are one bit mask and the kept ones are cleared from its ends (-9% of this
 * function's instructions on cards, against three byte loops). */
static mm_err mask_ascii(const act_t *a, const unsigned char *in, size_t n, mm_buf *out)
{
    size_t lo = 0, hi = n, k, first = (size_t)a->keep_first, last = (size_t)a->keep_last;
    const char c = a->mask_char[0];
    mm_err rc;
    char *o;

    if ((rc = mm_buf_reserve(out, n)) != MM_OK)
        return rc;
    o = out->data + out->len;
    memcpy(o, in, n);
    if (!a->preserve_format) {
        if (n > first + last) /* else all of it: never show a value in full */
            lo = first, hi = n - last;
        memset(o + lo, c, hi - lo);
    } else if (n <= 64 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) { /* byte i: bits 8i.. */
        size_t total;
        uint64_t m = alnum_bits(in, n, &total);
        if (total > first + last) { /* else all of them: never a value in full */
            for (k = 0; k < first; k++)
                m &= m - 1; /* the lowest: kept */
            for (k = 0; k < last; k++)
                m &= ~(1ull << (63 - __builtin_clzll(m))); /* the highest: kept */
        }
        for (; m; m &= m - 1)
            o[__builtin_ctzll(m)] = c;
    } else {
        if (alnum_count(in, n) > first + last) {
            /* lo: past the first `first` letters and digits; hi: at the last `last` */
            for (k = 0; k < first; lo++)
                k += ascii_alnum(in[lo]);
            for (k = 0; k < last; hi--)
                k += ascii_alnum(in[hi - 1]);
        }
        for (size_t i = lo; i < hi; i++)
            o[i] = ascii_alnum(in[i]) ? c : (char)in[i];
    }
    out->len += n;
    out->data[out->len] = '\0'; /* mm_buf keeps its data NUL-terminated */
    return MM_OK;
}

static mm_err apply_mask(const act_t *a, const unsigned char *in, size_t n, mm_buf *out)
{
    size_t total = 0, idx = 0, i, k, first = (size_t)a->keep_first, last = (size_t)a->keep_last;
    uint32_t cp;
    mm_err rc;
    char *o;
    bool whole;

    if (n == 0)
        return MM_OK;
    if (a->mask_char_len == 1 && all_ascii(in, n))
        return mask_ascii(a, in, n, out);
    for (i = 0; i < n; i += k) {
        k = in[i] < 0x80 ? (cp = in[i], 1) : u8dec(in + i, n - i, &cp);
        if (!a->preserve_format || maskable(cp))
            total++;
    }
    /* never show a value in full: too short to keep anything means nothing is kept */
    whole = total <= first + last;
    /* a character of k bytes becomes k bytes or one mask char: at most n mask chars */
    if ((rc = mm_buf_reserve(out, n * a->mask_char_len)) != MM_OK)
        return rc;
    o = out->data + out->len;
    for (i = 0; i < n; i += k) {
        k = in[i] < 0x80 ? (cp = in[i], 1) : u8dec(in + i, n - i, &cp);
        bool keep;
        if (a->preserve_format && !maskable(cp)) {
            keep = true;
        } else {
            keep = !whole && (idx < first || idx >= total - last);
            idx++;
        }
        /* one byte stored as such: a memcpy call per character was most of a card's cost */
        if (keep && k == 1) {
            *o++ = (char)in[i];
        } else if (keep) {
            memcpy(o, in + i, k);
            o += k;
        } else if (a->mask_char_len == 1) {
            *o++ = a->mask_char[0];
        } else {
            memcpy(o, a->mask_char, a->mask_char_len);
            o += a->mask_char_len;
        }
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0'; /* mm_buf keeps its data NUL-terminated */
    return MM_OK;
}

/* SHA-256, or HMAC-SHA256 from the prepared pad states when the action has a key. */
static mm_err digest(const act_t *a, const char *in, size_t n, unsigned char md[SHA256_LEN])
{
    unsigned char inner[SHA256_LEN];
    SHA256_CTX c;
    bool ok;

    if (!a->hmac)
        return SHA256((const unsigned char *)in, n, md) ? MM_OK : MM_ENOMEM;
    c = a->hmac[0];
    ok = SHA256_Update(&c, in, n) && SHA256_Final(inner, &c);
    c = a->hmac[1];
    ok = ok && SHA256_Update(&c, inner, sizeof(inner)) && SHA256_Final(md, &c);
    OPENSSL_cleanse(&c, sizeof(c)); /* the copy began as key-derived state */
    return ok ? MM_OK : MM_ENOMEM;
}

size_t act_base32(const unsigned char *in, size_t n, char *out)
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = b32[(acc >> bits) & 31];
        }
    }
    if (bits > 0) /* the last partial group, zero-filled; no '=' padding */
        out[o++] = b32[(acc << (5 - bits)) & 31];
    return o;
}

mm_err act_apply(const act_t *a, const char *in, size_t n, mm_buf *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_LEN];
    char text[2 * SHA256_LEN + 16];
    size_t o;
    mm_err rc;

    switch (a->type) {
    case MM_ACTION_REDACT:
    case MM_ACTION_REPLACE:
        return mm_buf_append(out, a->text, a->text_len);
    case MM_ACTION_REMOVE:
        return MM_OK;
    case MM_ACTION_MASK:
        return apply_mask(a, (const unsigned char *)in, n, out);
    case MM_ACTION_HASH:
        if ((rc = digest(a, in, n, md)) != MM_OK)
            return rc;
        for (size_t i = 0; i < SHA256_LEN; i++) {
            text[2 * i] = hex[md[i] >> 4];
            text[2 * i + 1] = hex[md[i] & 15];
        }
        return mm_buf_append(out, text, 2 * SHA256_LEN);
    case MM_ACTION_TOKENIZE:
        if ((rc = digest(a, in, n, md)) != MM_OK)
            return rc;
        memcpy(text, a->tok_prefix, a->tok_prefix_len);
        o = a->tok_prefix_len + act_base32(md, TOKEN_BYTES, text + a->tok_prefix_len);
        return mm_buf_append(out, text, o);
    case MM_ACTION_ENCRYPT:
        return enc_encrypt(a->enc, in, n, out);
    }
    return MM_EINVAL;
}
