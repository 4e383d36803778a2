/* lib/mask: JSON string content for the JSON masker — decoding escapes for the detectors
 * (with a map back onto the raw text) and writing a string with the matched spans
 * transformed and everything else as it was written. */
#include "mask/stream_int.h"

#include <string.h>

/* ---- strings: decoding for detection -------------------------------------------------- */

/* Decodes the content of a JSON string (already validated) into s->dec and, when `map` is
 * wanted, s->map[i] = the offset in `raw` of the escape or byte that gave decoded byte i
 * (s->map[dec.len] = n), so spans found in the decoded text map back onto the raw one. */
mm_err json_decode(mm_stream *s, const char *raw, size_t n, bool map)
{
    mm_err rc = MM_OK;
    mm_buf_reset(&s->dec);
    if (map && s->mapcap < n + 1) {
        size_t *m = mm_realloc(s->map, (n + 1) * sizeof(size_t));
        if (!m)
            return MM_ENOMEM;
        s->map = m;
        s->mapcap = n + 1;
    }
    for (size_t i = 0; i < n && rc == MM_OK;) {
        size_t from = i, before = s->dec.len;
        if (raw[i] != '\\') {
            const char *e = memchr(raw + i, '\\', n - i);
            size_t j = e ? (size_t)(e - raw) : n;
            rc = mm_buf_append(&s->dec, raw + i, j - i);
            if (map)
                for (size_t k = 0; k < j - i; k++)
                    s->map[before + k] = i + k;
            i = j;
            continue;
        }
        char e = raw[i + 1];
        unsigned long cp = 0;
        i += 2;
        switch (e) {
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'u':
            for (int k = 0; k < 4; k++)
                cp = cp * 16 + (unsigned long)st_hexv((unsigned char)raw[i + k]);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= n && raw[i] == '\\' && raw[i + 1] == 'u') {
                unsigned long lo = 0;
                for (int k = 0; k < 4; k++)
                    lo = lo * 16 + (unsigned long)st_hexv((unsigned char)raw[i + 2 + k]);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000)
                cp = 0xFFFD; /* a lone surrogate reads as the replacement character */
            break;
        default: cp = (unsigned char)e; /* \" \\ \/ */
        }
        rc = mm_buf_put_utf8(&s->dec, cp);
        if (map)
            for (size_t k = before; k < s->dec.len; k++)
                s->map[k] = from;
    }
    if (map && rc == MM_OK)
        s->map[s->dec.len] = n;
    return rc;
}

/* A JSON string literal: raw content outside the kept spans as written, spans transformed
 * and escaped. `dec`/`map` describe the decoded text the spans refer to (map NULL: the raw
 * text is the decoded one). */
mm_err json_build_string(mm_stream *s, const char *raw, size_t rawlen, const char *dec,
                                const size_t *map, mm_buf *out)
{
    mm_err rc;
    size_t at = 0;
    if (s->nsp == 1) { /* the whole value one constant (a detector's usual match): as is */
        const span *p = &s->sp[0];
        const mrule *r = &s->m->rules[p->rule];
        if (r->jconst && s->ract[p->rule] == &r->act && (map ? map[p->start] : p->start) == 0 &&
            (map ? map[p->end] : p->end) == rawlen)
            return mm_buf_append(out, r->jconst, r->jconst_len);
    }
    rc = mm_buf_putc(out, '"');
    for (size_t i = 0; i < s->nsp && rc == MM_OK; i++) {
        const span *p = &s->sp[i];
        size_t rs = map ? map[p->start] : p->start, re = map ? map[p->end] : p->end;
        const mrule *r = &s->m->rules[p->rule];
        if ((rc = mm_buf_append(out, raw + at, rs - at)) != MM_OK)
            break;
        at = re;
        if (r->jconst && s->ract[p->rule] == &r->act) { /* a constant, escaped at compile time */
            rc = mm_buf_append(out, r->jconst + 1, r->jconst_len - 2);
            continue;
        }
        mm_buf_reset(&s->abuf);
        if ((rc = act_apply(s->ract[p->rule], dec + p->start, p->end - p->start,
                            &s->abuf)) == MM_OK)
            rc = mm_buf_put_json_chars(out, s->abuf.data ? s->abuf.data : "", s->abuf.len);
    }
    if (rc == MM_OK)
        rc = mm_buf_append(out, raw + at, rawlen - at);
    return rc == MM_OK ? mm_buf_putc(out, '"') : rc;
}
