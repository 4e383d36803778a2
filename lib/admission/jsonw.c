/* lib/admission: json-c trees written as compact JSON straight into an mm_buf. Byte for byte
 * what json_object_to_json_string_ext(v, PLAIN | NOSLASHESCAPE) gives (the status hash is
 * taken over this text, so it must not change), without json-c's per-object printbuf and
 * its growth: the webhook writes its patch and the injection's hash input with it. */
#include "admission/admission.h"
#include "admission/admission_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define WRITE_DEPTH_MAX 256 /* the trees written are built here, never this deep */

/* One character; mm_buf_putc's fast path, inlined (a patch has thousands of them). */
static inline mm_err put_c(mm_buf *out, char c)
{
    if (out->len + 1 < out->cap) {
        out->data[out->len++] = c;
        out->data[out->len] = '\0';
        return MM_OK;
    }
    return mm_buf_putc(out, c);
}

/* A string literal: most have nothing to escape, and those are copied in one piece; the
 * others (the status annotation's JSON is one) are mm_buf_put_json_str's. */
mm_err adm_json_str(mm_buf *out, const char *s, size_t n)
{
    size_t i = 0;
    mm_err rc;

    while (i < n && adm_json_plain[(unsigned char)s[i]])
        i++;
    if (i < n)
        return mm_buf_put_json_str(out, s, n);
    if ((rc = mm_buf_reserve(out, n + 2)) != MM_OK)
        return rc;
    out->data[out->len++] = '"';
    memcpy(out->data + out->len, s, n);
    out->len += n;
    out->data[out->len++] = '"';
    out->data[out->len] = '\0';
    return MM_OK;
}

static mm_err put(mm_buf *out, const json_object *v, unsigned depth)
{
    json_object *o = (json_object *)v; /* json-c getters are not const */
    mm_err rc;

    if (depth > WRITE_DEPTH_MAX)
        return MM_ELIMIT;
    switch (json_object_get_type(o)) {
    case json_type_null: return mm_buf_append(out, "null", 4);
    case json_type_boolean:
        return json_object_get_boolean(o) ? mm_buf_append(out, "true", 4)
                                          : mm_buf_append(out, "false", 5);
    case json_type_int: {
        int64_t n = json_object_get_int64(o);
        char num[24];
        int len;
        if (n == INT64_MAX) /* maybe a uint64 above it: json-c knows how it prints */
            break;
        len = snprintf(num, sizeof(num), "%" PRId64, n);
        return mm_buf_append(out, num, (size_t)len);
    }
    case json_type_string:
        return adm_json_str(out, json_object_get_string(o), (size_t)json_object_get_string_len(o));
    case json_type_object: {
        bool first = true;
        if ((rc = put_c(out, '{')) != MM_OK)
            return rc;
        json_object_object_foreach(o, key, val)
        {
            if ((!first && (rc = put_c(out, ',')) != MM_OK) ||
                (rc = adm_json_str(out, key, strlen(key))) != MM_OK ||
                (rc = put_c(out, ':')) != MM_OK || (rc = put(out, val, depth + 1)) != MM_OK)
                return rc;
            first = false;
        }
        return put_c(out, '}');
    }
    case json_type_array: {
        size_t n = json_object_array_length(o);
        if ((rc = put_c(out, '[')) != MM_OK)
            return rc;
        for (size_t i = 0; i < n; i++) {
            if ((i && (rc = put_c(out, ',')) != MM_OK) ||
                (rc = put(out, json_object_array_get_idx(o, i), depth + 1)) != MM_OK)
                return rc;
        }
        return put_c(out, ']');
    }
    case json_type_double:
        break; /* json-c's own formatting (and a parsed number's original text) */
    }
    {
        size_t len;
        const char *s = json_object_to_json_string_length(
            o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        return s ? mm_buf_append(out, s, len) : MM_ENOMEM;
    }
}

mm_err adm_json_put(mm_buf *out, const json_object *v)
{
    return put(out, v, 0);
}

void jw_str(jw *w, const char *s)
{
    if (w->rc == MM_OK)
        w->rc = adm_json_str(w->b, s, strlen(s));
}

size_t adm_ltoa(char out[24], long v)
{
    size_t len = 0;
    /* as unsigned, so LONG_MIN negates without overflow */
    unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;

    if (v < 0)
        out[len++] = '-';
    len += mm_u64_dec(out + len, u);
    out[len] = '\0';
    return len;
}

void jw_int(jw *w, long v)
{
    char num[24];
    jw_raw(w, num, adm_ltoa(num, v));
}

/* The base64 of every 12-bit value, two characters each: one lookup per 12 input bits
 * (the patch is the largest part of every response). Built once. */
static char b64_pairs[4096][2];
static pthread_once_t b64_once = PTHREAD_ONCE_INIT;
static const char b64_tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static void b64_init(void)
{
    for (unsigned v = 0; v < 4096; v++) {
        b64_pairs[v][0] = b64_tab[v >> 6];
        b64_pairs[v][1] = b64_tab[v & 63];
    }
}

/* RFC 4648 base64 with padding, as EVP_EncodeBlock writes it (OpenSSL's took twice the
 * instructions for the patch). */
size_t adm_base64(char *out, const unsigned char *in, size_t n)
{
    static const char *const tab = b64_tab;
    char *o = out;
    size_t i = 0;

    pthread_once(&b64_once, b64_init);
    /* six bytes (48 bits, four pairs) per step from one 8-byte load, while 8 can be read */
    for (; i + 8 <= n; i += 6) {
        uint64_t v;
        memcpy(&v, in + i, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v >>= 16; /* the six bytes, first one highest */
#else
        v = __builtin_bswap64(v) >> 16;
#endif
        memcpy(o, b64_pairs[v >> 36], 2);
        memcpy(o + 2, b64_pairs[(v >> 24) & 4095], 2);
        memcpy(o + 4, b64_pairs[(v >> 12) & 4095], 2);
        memcpy(o + 6, b64_pairs[v & 4095], 2);
        o += 8;
    }
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        memcpy(o, b64_pairs[v >> 12], 2);
        memcpy(o + 2, b64_pairs[v & 4095], 2);
        o += 4;
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return (size_t)(o - out);
}
