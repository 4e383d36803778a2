/* lib/proxy/ws_frame.c: the WebSocket frame codec (ws.h). */
#include "proxy/ws.h"

#include <string.h>

static int bad(const char **why, const char *what)
{
    *why = what;
    return -WS_CLOSE_PROTOCOL;
}

int ws_parse_head(ws_seq *s, const uint8_t *p, size_t n, ws_head *h, const char **why)
{
    size_t need = 2;
    uint8_t len7;

    if (n < 2)
        return 0;
    if (s->closed)
        return bad(why, "a frame after the close frame");
    h->fin = (p[0] & 0x80) != 0;
    h->op = p[0] & 0x0f;
    h->masked = (p[1] & 0x80) != 0;
    len7 = p[1] & 0x7f;
    if (p[0] & 0x70)
        return bad(why, "reserved bits set (no extension was negotiated)");
    if ((h->op > WS_OP_BINARY && h->op < WS_OP_CLOSE) || h->op > WS_OP_PONG)
        return bad(why, "reserved opcode");
    if (h->masked != s->from_client)
        return bad(why, s->from_client ? "a client frame without a masking key"
                                       : "a server frame with a masking key");
    if (h->op >= WS_OP_CLOSE && (!h->fin || len7 > WS_CONTROL_MAX))
        return bad(why, !h->fin ? "a fragmented control frame"
                                : "a control frame longer than 125 bytes");
    need += len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    need += h->masked ? 4 : 0;
    if (n < need)
        return 0;
    p += 2;
    if (len7 == 126) {
        h->len = (uint64_t)p[0] << 8 | p[1];
        p += 2;
    } else if (len7 == 127) {
        h->len = 0;
        for (int i = 0; i < 8; i++)
            h->len = h->len << 8 | p[i];
        if (h->len >> 63)
            return bad(why, "a 64-bit length with its most significant bit set");
        p += 8;
    } else {
        h->len = len7;
    }
    if (h->masked)
        memcpy(h->key, p, 4);
    /* message state: continuations belong to a message, data frames do not nest */
    if (h->op == WS_OP_CONT) {
        if (!s->msg_op)
            return bad(why, "a continuation frame without a message");
        if (h->fin)
            s->msg_op = 0;
    } else if (h->op == WS_OP_TEXT || h->op == WS_OP_BINARY) {
        if (s->msg_op)
            return bad(why, "a new message before the previous one ended");
        if (!h->fin)
            s->msg_op = h->op;
    } else if (h->op == WS_OP_CLOSE) {
        s->closed = true;
    }
    return (int)need;
}

size_t ws_write_head(uint8_t *out, bool fin, uint8_t op, uint64_t len, const uint8_t *key)
{
    size_t k = 2;

    out[0] = (uint8_t)((fin ? 0x80 : 0) | (op & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        k = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        k = 10;
    }
    if (key) {
        out[1] |= 0x80;
        memcpy(out + k, key, 4);
        k += 4;
    }
    return k;
}

void ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t off)
{
    uint8_t k[4];
    size_t i = 0;

    for (int j = 0; j < 4; j++)
        k[j] = key[(off + (uint64_t)j) & 3];
    /* word at a time: the key repeats every 4 bytes, so a rotated copy covers 8 */
    if (n >= 8) {
        uint64_t w, kk;
        uint8_t k8[8];
        memcpy(k8, k, 4);
        memcpy(k8 + 4, k, 4);
        memcpy(&kk, k8, 8);
        for (; i + 8 <= n; i += 8) {
            memcpy(&w, p + i, 8);
            w ^= kk;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; i++)
        p[i] ^= k[i & 3];
}

/* Close codes a peer may put on the wire (§7.4): 1004-1006 and 1015 are reserved, below
 * 1000 and 1012-2999 beyond the registered ones are not allowed, 3000-4999 are free. */
static bool close_code_ok(unsigned c)
{
    if (c >= 3000 && c <= 4999)
        return true;
    if (c < 1000 || c > 1014)
        return false;
    return c != 1004 && c != 1005 && c != 1006;
}

bool ws_close_payload_ok(const uint8_t *p, size_t n, unsigned *code, const char **why)
{
    *code = 1005;
    if (n == 0)
        return true;
    if (n == 1) {
        *why = "a close frame with a 1-byte payload";
        return false;
    }
    *code = (unsigned)p[0] << 8 | p[1];
    if (!close_code_ok(*code)) {
        *why = "a close frame with a code peers may not send";
        return false;
    }
    if (!ws_utf8_ok(p + 2, n - 2)) {
        *why = "a close reason that is not UTF-8";
        return false;
    }
    return true;
}

bool ws_utf8_ok(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = p[i];
        uint32_t cp;
        size_t len;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}
