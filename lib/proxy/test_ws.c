/* Unit tests for the WebSocket frame codec (lib/proxy/ws_frame.c): the example frames of
 * RFC 6455 §5.7, each length encoding at its edges, every rule a frame sequence must keep
 * (§5.2-§5.5), close payloads (§7.4) and UTF-8 validation against the cases of Markus
 * Kuhn's UTF-8 decoder stress test. And spec.websocket from policy text to what the tunnel
 * reads per direction (binary pass or refuse, the message bound), strictest policy winning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mask/mask.h"
#include "policy/policy.h"
#include "proxy/ws.h"

#include <stdio.h>
#include <string.h>

static int parse(ws_seq *s, const uint8_t *p, size_t n, ws_head *h)
{
    const char *why = NULL;
    int r = ws_parse_head(s, p, n, h, &why);
    if (r < 0)
        assert_non_null(why);
    return r;
}

/* §5.7: a single-frame unmasked text "Hello", and the same masked with 37 fa 21 3d */
static void test_rfc_examples(void **state)
{
    static const uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t frag1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
    static const uint8_t frag2[] = {0x80, 0x02, 0x6c, 0x6f};
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t bin256[] = {0x82, 0x7e, 0x01, 0x00};
    static const uint8_t bin64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
    ws_seq srv = {.from_client = false}, cli = {.from_client = true};
    ws_head h;
    uint8_t p[5], out[WS_HEAD_MAX];
    (void)state;

    assert_int_equal(parse(&srv, unmasked, sizeof(unmasked), &h), 2);
    assert_true(h.fin);
    assert_int_equal(h.op, WS_OP_TEXT);
    assert_int_equal(h.len, 5);
    assert_int_equal(parse(&cli, masked, sizeof(masked), &h), 6);
    assert_true(h.masked);
    memcpy(p, masked + 6, 5);
    ws_mask(p, 5, h.key, 0);
    assert_memory_equal(p, "Hello", 5);
    /* unmasking in two pieces at any offset gives the same bytes */
    memcpy(p, masked + 6, 5);
    ws_mask(p, 2, h.key, 0);
    ws_mask(p + 2, 3, h.key, 2);
    assert_memory_equal(p, "Hello", 5);

    assert_int_equal(parse(&srv, frag1, sizeof(frag1), &h), 2);
    assert_false(h.fin);
    assert_int_equal(srv.msg_op, WS_OP_TEXT);
    assert_int_equal(parse(&srv, ping, sizeof(ping), &h), 2); /* control inside a message */
    assert_int_equal(h.op, WS_OP_PING);
    assert_int_equal(parse(&srv, frag2, sizeof(frag2), &h), 2);
    assert_int_equal(h.op, WS_OP_CONT);
    assert_int_equal(srv.msg_op, 0);
    assert_int_equal(parse(&cli, pong, sizeof(pong), &h), 6);
    assert_int_equal(h.op, WS_OP_PONG);
    assert_int_equal(parse(&srv, bin256, sizeof(bin256), &h), 4);
    assert_int_equal(h.len, 256);
    assert_int_equal(parse(&srv, bin64k, sizeof(bin64k), &h), 10);
    assert_int_equal(h.len, 65536);

    /* the writer gives back the RFC's bytes */
    assert_int_equal(ws_write_head(out, true, WS_OP_TEXT, 5, NULL), 2);
    assert_memory_equal(out, unmasked, 2);
    assert_int_equal(ws_write_head(out, true, WS_OP_TEXT, 5, masked + 2), 6);
    assert_memory_equal(out, masked, 6);
    assert_int_equal(ws_write_head(out, true, WS_OP_BINARY, 256, NULL), 4);
    assert_memory_equal(out, bin256, 4);
    assert_int_equal(ws_write_head(out, true, WS_OP_BINARY, 65536, NULL), 10);
    assert_memory_equal(out, bin64k, 10);
}

/* Each length encoding at its edges, written then parsed, at every truncation. */
static void test_lengths_roundtrip(void **state)
{
    static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 1ull << 32,
                                    (1ull << 63) - 1};
    static const uint8_t key[4] = {1, 2, 3, 4};
    (void)state;

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (int m = 0; m < 2; m++) {
            uint8_t b[WS_HEAD_MAX];
            size_t n = ws_write_head(b, false, WS_OP_BINARY, lens[i], m ? key : NULL);
            ws_seq s = {.from_client = m == 1};
            ws_head h;
            for (size_t k = 0; k < n; k++) {
                ws_seq t = s;
                assert_int_equal(parse(&t, b, k, &h), 0);
            }
            assert_int_equal(parse(&s, b, n, &h), (int)n);
            assert_int_equal(h.len, lens[i]);
            assert_false(h.fin);
            assert_int_equal(h.masked, m == 1);
            if (m)
                assert_memory_equal(h.key, key, 4);
        }
}

static void bad_frame(bool from_client, const uint8_t *p, size_t n, uint8_t msg_op)
{
    ws_seq s = {.from_client = from_client, .msg_op = msg_op};
    ws_head h;
    assert_int_equal(parse(&s, p, n, &h), -WS_CLOSE_PROTOCOL);
}

static void test_refused(void **state)
{
    (void)state;
    /* unmasked from a client, masked from a server */
    bad_frame(true, (const uint8_t[]){0x81, 0x00}, 2, 0);
    bad_frame(false, (const uint8_t[]){0x81, 0x80, 1, 2, 3, 4}, 6, 0);
    /* RSV1, RSV2, RSV3 */
    bad_frame(false, (const uint8_t[]){0xc1, 0x00}, 2, 0);
    bad_frame(false, (const uint8_t[]){0xa1, 0x00}, 2, 0);
    bad_frame(false, (const uint8_t[]){0x91, 0x00}, 2, 0);
    /* reserved opcodes 3-7 and 0xB-0xF */
    for (uint8_t op = 3; op <= 0xf; op++)
        if (op < 8 || op > 0xa)
            bad_frame(false, (const uint8_t[]){(uint8_t)(0x80 | op), 0x00}, 2, 0);
    /* control frames: fragmented, or longer than 125 */
    bad_frame(false, (const uint8_t[]){0x09, 0x00}, 2, 0);
    bad_frame(false, (const uint8_t[]){0x88, 0x7e, 0x00, 0x7e}, 4, 0);
    /* a continuation with no message, a new message inside one */
    bad_frame(false, (const uint8_t[]){0x80, 0x00}, 2, 0);
    bad_frame(false, (const uint8_t[]){0x81, 0x00}, 2, WS_OP_TEXT);
    bad_frame(false, (const uint8_t[]){0x02, 0x00}, 2, WS_OP_TEXT);
    /* 64-bit length with the top bit set */
    bad_frame(false, (const uint8_t[]){0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, 0);

    /* nothing after a close frame */
    ws_seq s = {.from_client = false};
    ws_head h;
    assert_int_equal(parse(&s, (const uint8_t[]){0x88, 0x00}, 2, &h), 2);
    assert_true(s.closed);
    assert_int_equal(parse(&s, (const uint8_t[]){0x8a, 0x00}, 2, &h), -WS_CLOSE_PROTOCOL);
}

static void test_close_payload(void **state)
{
    unsigned code;
    const char *why = NULL;
    (void)state;

    assert_true(ws_close_payload_ok(NULL, 0, &code, &why));
    assert_int_equal(code, 1005);
    assert_true(ws_close_payload_ok((const uint8_t *)"\x03\xe8", 2, &code, &why));
    assert_int_equal(code, 1000);
    assert_true(ws_close_payload_ok((const uint8_t *)"\x0f\xa0\xc3\xa9t\xc3\xa9", 7, &code,
                                    &why)); /* 4000 "été" */
    assert_int_equal(code, 4000);
    assert_false(ws_close_payload_ok((const uint8_t *)"\x03", 1, &code, &why));
    /* codes a peer may not send: below 1000, 1004-1006, 1015, 1016-2999, 5000 and up */
    static const unsigned badc[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(badc) / sizeof(badc[0]); i++) {
        uint8_t p[2] = {(uint8_t)(badc[i] >> 8), (uint8_t)badc[i]};
        assert_false(ws_close_payload_ok(p, 2, &code, &why));
    }
    assert_false(ws_close_payload_ok((const uint8_t *)"\x03\xe8\xff", 3, &code, &why));
}

/* Markus Kuhn's UTF-8 decoder capability and stress test, the cases that decide */
static void test_utf8(void **state)
{
    static const char *const good[] = {"", "ascii", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
                                       "\xf4\x8f\xbf\xbf", "\xef\xbf\xbf", "\xed\x9f\xbf",
                                       "\xee\x80\x80", "\xf0\x90\x80\x80", NULL};
    static const char *const bad[] = {"\x80", "\xbf", "\xc0\xaf", "\xe0\x80\xaf",
                                      "\xf0\x80\x80\xaf", "\xc1\xbf", "\xed\xa0\x80",
                                      "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
                                      "\xfe", "\xff", "\xc3", "\xe2\x82", "a\xce", NULL};
    (void)state;
    for (size_t i = 0; good[i]; i++)
        assert_true(ws_utf8_ok((const uint8_t *)good[i], strlen(good[i])));
    for (size_t i = 0; bad[i]; i++)
        assert_false(ws_utf8_ok((const uint8_t *)bad[i], strlen(bad[i])));
}

/* The word-at-a-time masking agrees with the byte loop at every length and offset. */
static void test_mask_agrees(void **state)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t a[64] = {0}, b[64] = {0};
    (void)state;

    for (size_t n = 0; n <= sizeof(a); n++)
        for (uint64_t off = 0; off < 8; off++) {
            for (size_t i = 0; i < n; i++)
                a[i] = b[i] = (uint8_t)(i * 7 + 3);
            ws_mask(a, n, key, off);
            for (size_t i = 0; i < n; i++)
                b[i] ^= key[(off + i) & 3];
            assert_memory_equal(a, b, sizeof(a));
        }
}

#define WS_POL "- apiVersion: maskmesh.io/v1alpha1\n  kind: MaskingPolicy\n" \
               "  metadata: {name: %s}\n  spec:\n    selector: {}\n    direction: %s\n%s" \
               "    rules: [{name: r, detectors: [email], action: {type: redact}}]\n"

static mm_err policies(const char *yaml, mm_masker **m, mm_errbuf *eb)
{
    mm_policy_set *set = NULL;
    const mm_policy *list[4];
    mm_err rc = mm_policy_parse_yaml(yaml, strlen(yaml), "case.yaml", &set, NULL, eb);

    if (rc != MM_OK)
        return rc;
    for (size_t i = 0; i < mm_policy_set_count(set) && i < 4; i++)
        list[i] = mm_policy_set_get(set, i);
    rc = mm_masker_new(list, mm_policy_set_count(set), NULL, NULL, m, eb);
    mm_policy_set_free(set);
    return rc;
}

static void test_policy_websocket(void **state)
{
    char y[2048];
    mm_masker *m = NULL;
    mm_errbuf eb = {{0}};
    (void)state;

    /* defaults: binary refused, 1 MiB */
    snprintf(y, sizeof(y), WS_POL, "a", "both", "");
    assert_int_equal(policies(y, &m, &eb), MM_OK);
    assert_false(mm_masker_ws_binary_pass(m, MM_DIR_RESPONSE));
    assert_int_equal(mm_masker_ws_max_message(m, MM_DIR_REQUEST), 1u << 20);
    mm_masker_free(m);

    /* one policy says pass and 4 MiB for responses, another refuse and 64 KiB for both:
     * responses refuse binary and take the smaller bound; requests only see the second */
    int n = snprintf(y, sizeof(y), WS_POL, "a", "response",
                     "    websocket: {binary: pass, maxMessageBytes: 4194304}\n");
    snprintf(y + n, sizeof(y) - (size_t)n, WS_POL, "b", "request",
             "    websocket: {binary: refuse, maxMessageBytes: 65536}\n");
    assert_int_equal(policies(y, &m, &eb), MM_OK);
    assert_true(mm_masker_ws_binary_pass(m, MM_DIR_RESPONSE));
    assert_int_equal(mm_masker_ws_max_message(m, MM_DIR_RESPONSE), 4194304);
    assert_false(mm_masker_ws_binary_pass(m, MM_DIR_REQUEST));
    assert_int_equal(mm_masker_ws_max_message(m, MM_DIR_REQUEST), 65536);
    mm_masker_free(m);
    n = snprintf(y, sizeof(y), WS_POL, "a", "both", "    websocket: {binary: pass}\n");
    snprintf(y + n, sizeof(y) - (size_t)n, WS_POL, "b", "response",
             "    websocket: {maxMessageBytes: 1000}\n");
    assert_int_equal(policies(y, &m, &eb), MM_OK);
    assert_false(mm_masker_ws_binary_pass(m, MM_DIR_RESPONSE)); /* b did not say pass */
    assert_true(mm_masker_ws_binary_pass(m, MM_DIR_REQUEST));
    assert_int_equal(mm_masker_ws_max_message(m, MM_DIR_RESPONSE), 1000);
    assert_int_equal(mm_masker_ws_max_message(m, MM_DIR_REQUEST), 1u << 20);
    mm_masker_free(m);

    /* bad values are refused naming the place */
    static const char *const bad[] = {"    websocket: {binary: maybe}\n",
                                      "    websocket: {maxMessageBytes: 0}\n",
                                      "    websocket: {maxMessageBytes: 67108865}\n",
                                      "    websocket: {text: json}\n", "    websocket: pass\n",
                                      NULL};
    for (size_t i = 0; bad[i]; i++) {
        snprintf(y, sizeof(y), WS_POL, "a", "both", bad[i]);
        m = NULL;
        assert_int_not_equal(policies(y, &m, &eb), MM_OK);
        assert_non_null(strstr(eb.msg, "spec.websocket"));
        assert_null(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),  cmocka_unit_test(test_lengths_roundtrip),
        cmocka_unit_test(test_refused),       cmocka_unit_test(test_close_payload),
        cmocka_unit_test(test_utf8),          cmocka_unit_test(test_mask_agrees),
        cmocka_unit_test(test_policy_websocket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
