/* lib/mask: the actions — redact, mask, hash, tokenize, remove, replace — applied to one
 * value's raw bytes. The caller escapes the result for JSON. */
#include "mask/mask_int.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

mm_err act_compile(const mm_action *a, const mm_keys *keys, const char *where, act_t *out,
                   mm_errbuf *eb)
{
    const unsigned char *k;
    size_t klen;
    const char *text = NULL;

    memset(out, 0, sizeof(*out));
    out->type = a->type;
    out->keep_first = a->keep_first;
    out->keep_last = a->keep_last;
    out->preserve_format = a->preserve_format;
    out->mask_char[0] = '*';
    out->mask_char_len = 1;
    if (a->mask_char && *a->mask_char) {
        size_t n = strlen(a->mask_char);
        if (n >= sizeof(out->mask_char))
            return mm_errf(eb, MM_EINVAL, "%s: the mask char is not one character", where);
        memcpy(out->mask_char, a->mask_char, n);
        out->mask_char_len = n;
    }
    if (a->type == MM_ACTION_REDACT)
        text = a->replacement ? a->replacement : "[REDACTED]";
    else if (a->type == MM_ACTION_REPLACE)
        text = a->value ? a->value : "";
    if (text) {
        out->text_len = strlen(text);
        if (!(out->text = mm_memdup(text, out->text_len)))
            return mm_errf(eb, MM_ENOMEM, "%s: out of memory", where);
    }
    if ((a->type == MM_ACTION_HASH || a->type == MM_ACTION_TOKENIZE) && a->key) {
        if (!keys_get(keys, a->key, &k, &klen)) {
            act_clear(out);
            return mm_errf(eb, MM_EINVAL, "%s: key \"%s\" is not in the keys (the Secret "
                           "maskmesh-keys, or --keys DIR)", where, a->key);
        }
        if (!(out->key = mm_memdup(k, klen))) {
            act_clear(out);
            return mm_errf(eb, MM_ENOMEM, "%s: out of memory", where);
        }
        out->key_len = klen;
    } else if (a->type == MM_ACTION_TOKENIZE) {
        act_clear(out);
        return mm_errf(eb, MM_EINVAL, "%s: tokenize needs a key", where);
    }
    return MM_OK;
}

void act_clear(act_t *a)
{
    mm_free(a->text);
    if (a->key)
        memset(a->key, 0, a->key_len);
    mm_free(a->key);
    memset(a, 0, sizeof(*a));
}

/* Letters and digits; any non-ASCII code point counts as a letter. */
static bool maskable(const unsigned char *p)
{
    return *p >= 0x80 || (*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z');
}

/* Length of the UTF-8 sequence at p (1 for a stray byte, so malformed input still moves). */
static size_t u8len(const unsigned char *p, size_t left)
{
    size_t n = *p < 0x80 ? 1 : *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC0 ? 2 : 1;
    if (n > left)
        return 1;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 1;
    return n;
}

static mm_err apply_mask(const act_t *a, const unsigned char *in, size_t n, mm_buf *out)
{
    size_t total = 0, idx = 0, i, k;
    mm_err rc;
    bool whole;

    for (i = 0; i < n; i += k) {
        k = u8len(in + i, n - i);
        if (!a->preserve_format || maskable(in + i))
            total++;
    }
    whole = total <= (size_t)a->keep_first + (size_t)a->keep_last;
    if ((rc = mm_buf_reserve(out, n * a->mask_char_len)) != MM_OK)
        return rc;
    for (i = 0; i < n; i += k) {
        k = u8len(in + i, n - i);
        if (a->preserve_format && !maskable(in + i)) {
            rc = mm_buf_append(out, in + i, k);
        } else {
            bool keep = !whole && (idx < (size_t)a->keep_first || idx >= total - (size_t)a->keep_last);
            rc = keep ? mm_buf_append(out, in + i, k)
                      : mm_buf_append(out, a->mask_char, a->mask_char_len);
            idx++;
        }
        if (rc != MM_OK)
            return rc;
    }
    return MM_OK;
}

/* SHA-256, or HMAC-SHA256 with the action's key. */
static mm_err digest(const act_t *a, const char *in, size_t n, unsigned char md[32])
{
    unsigned int len = 0;
    if (a->key) {
        if (!HMAC(EVP_sha256(), a->key, (int)a->key_len, (const unsigned char *)in, n, md, &len))
            return MM_ENOMEM;
    } else if (!EVP_Digest(in, n, md, &len, EVP_sha256(), NULL)) {
        return MM_ENOMEM;
    }
    return len == 32 ? MM_OK : MM_EINVAL;
}

mm_err act_apply(const act_t *a, const char *in, size_t n, mm_buf *out)
{
    static const char hex[] = "0123456789abcdef";
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char md[32];
    char text[64];
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
        for (int i = 0; i < 32; i++) {
            text[2 * i] = hex[md[i] >> 4];
            text[2 * i + 1] = hex[md[i] & 15];
        }
        return mm_buf_append(out, text, 64);
    case MM_ACTION_TOKENIZE: {
        /* tok_ + RFC 4648 base32 (lowercase, no padding) of 20 bytes: 160 bits, 32 chars */
        size_t o = 0;
        if ((rc = digest(a, in, n, md)) != MM_OK)
            return rc;
        memcpy(text, "tok_", 4);
        o = 4;
        for (int i = 0; i < 20; i += 5) {
            uint64_t v = 0;
            for (int j = 0; j < 5; j++)
                v = v << 8 | md[i + j];
            for (int j = 7; j >= 0; j--)
                text[o++] = b32[(v >> (5 * j)) & 31];
        }
        return mm_buf_append(out, text, o);
    }
    }
    return MM_EINVAL;
}
