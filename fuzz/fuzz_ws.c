/* libFuzzer target for the WebSocket frame codec (lib/proxy/ws_frame.c): the input, after
 * a first byte choosing the side (client or server frames) and a split point, is read as a
 * frame sequence the way the tunnel reads it: head, then payload unmasked in two pieces
 * (which must equal unmasking it whole), control payloads checked as close payloads, text
 * as UTF-8. Every head parsed is written back and must parse to the same fields. Errors are
 * fine; crashes, reads past the input, disagreements and hangs are not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ws_seq s = {0}, again;
    size_t pos = 2, split;
    uint8_t *a = NULL, *b = NULL;

    if (size < 2)
        return 0;
    s.from_client = data[0] & 1;
    split = data[1];
    if (!(a = malloc(size)) || !(b = malloc(size)))
        abort();
    while (pos < size) {
        ws_head h, h2;
        const char *why = NULL;
        unsigned code;
        uint8_t out[WS_HEAD_MAX];
        ws_seq before = s;
        int r = ws_parse_head(&s, data + pos, size - pos, &h, &why);
        if (r == 0)
            break;
        if (r < 0) {
            if (!why || r != -WS_CLOSE_PROTOCOL)
                abort();
            break;
        }
        if ((size_t)r > size - pos || (size_t)r > WS_HEAD_MAX)
            abort();
        /* the head written back parses the same from the same sequence state */
        size_t n = ws_write_head(out, h.fin, h.op, h.len, h.masked ? h.key : NULL);
        again = before;
        if (ws_parse_head(&again, out, n, &h2, &why) != (int)n || h2.fin != h.fin ||
            h2.op != h.op || h2.len != h.len || h2.masked != h.masked ||
            (h.masked && memcmp(h.key, h2.key, 4) != 0) || again.msg_op != s.msg_op ||
            again.closed != s.closed)
            abort();
        pos += (size_t)r;
        size_t k = size - pos < h.len ? size - pos : (size_t)h.len;
        memcpy(a, data + pos, k);
        memcpy(b, data + pos, k);
        if (h.masked) {
            size_t cut = split < k ? split : k;
            ws_mask(a, k, h.key, 0);
            ws_mask(b, cut, h.key, 0);
            ws_mask(b + cut, k - cut, h.key, cut);
            if (memcmp(a, b, k) != 0)
                abort();
        }
        if (h.op == WS_OP_CLOSE)
            (void)ws_close_payload_ok(a, k, &code, &why);
        else if (h.op == WS_OP_TEXT)
            (void)ws_utf8_ok(a, k);
        pos += k;
    }
    free(a);
    free(b);
    return 0;
}
