/* lib/proxy/ws.h: the WebSocket frame codec (RFC 6455 §5), free of sockets and policy so the
 * unit tests and the fuzzer drive it alone. A ws_seq follows one direction's frames and
 * refuses what the RFC forbids: reserved bits (no extension is ever negotiated through us),
 * reserved opcodes, fragmented or oversized control frames, a continuation without a
 * message or a new message inside one, client frames without a mask and server frames with
 * one, 64-bit lengths with the top bit set, anything after a close frame.
 * Depends on: nothing but libc. */
#ifndef MM_PROXY_WS_H
#define MM_PROXY_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_HEAD_MAX 14    /* 2 + 8 (64-bit length) + 4 (masking key) */
#define WS_CONTROL_MAX 125 /* a control frame's payload bound (§5.5) */

enum { WS_OP_CONT = 0, WS_OP_TEXT = 1, WS_OP_BINARY = 2, WS_OP_CLOSE = 8, WS_OP_PING = 9,
       WS_OP_PONG = 10 };

/* close codes (§7.4.1) the proxy sends */
enum { WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002,
       WS_CLOSE_UNSUPPORTED = 1003, WS_CLOSE_INVALID_DATA = 1007, WS_CLOSE_TOO_BIG = 1009,
       WS_CLOSE_INTERNAL = 1011 };

typedef struct {
    bool fin;
    uint8_t op;
    bool masked;
    uint8_t key[4];
    uint64_t len;
} ws_head;

/* One direction's frame sequence. */
typedef struct {
    bool from_client; /* frames must be masked (client to server) or must not be */
    uint8_t msg_op;   /* WS_OP_TEXT or _BINARY while a fragmented message runs, else 0 */
    bool closed;      /* a close frame passed: nothing may follow */
} ws_seq;

/* Parses one frame head at p[0..n) and checks it against the sequence (whose message state
 * it advances). Returns the head's length; 0 when more bytes are needed; a negative close
 * code (-WS_CLOSE_PROTOCOL) when the frame is malformed, with *why a static text naming
 * what was wrong (never any payload). */
int ws_parse_head(ws_seq *s, const uint8_t *p, size_t n, ws_head *h, const char **why);

/* Writes a frame head into out[WS_HEAD_MAX] with the shortest length encoding; key NULL for
 * an unmasked frame. Returns its length. */
size_t ws_write_head(uint8_t *out, bool fin, uint8_t op, uint64_t len, const uint8_t *key);

/* XORs p[0..n) with the masking key, p[0] being byte `off` of the payload (masking and
 * unmasking are the same operation). */
void ws_mask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t off);

/* A close frame's payload: empty, or a 2-byte code a peer may send and a UTF-8 reason.
 * *code is 1005 (no status) when empty. False with *why when malformed. */
bool ws_close_payload_ok(const uint8_t *p, size_t n, unsigned *code, const char **why);

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool ws_utf8_ok(const uint8_t *p, size_t n);

#endif
