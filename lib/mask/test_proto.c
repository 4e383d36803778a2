/* Unit tests for protobuf and gRPC bodies (pbdesc.c, proto.c, grpc.c), on the descriptor
 * set protoc made from tests/grpc/proto (tests/grpc/shop.protoset; tests/grpc/README.md says
 * how to remake it): a gRPC stream split at every byte and fed a byte at a time gives the
 * same output as whole; gzip frames; malformed messages (truncated varints and lengths,
 * wrong wire types, bad field numbers, nesting past the limit) fail with the place named and
 * nothing of the message written; damaged descriptor sets fail cleanly at every truncation;
 * every allocation failed in turn leaks nothing and crashes nothing.
 * Interoperability with a real protobuf implementation is tests/integration/test_grpc_proto. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "mask/mask.h"

#define PROTOSET "tests/grpc/shop.protoset"
#define LIST "/shop.v1.Customers/ListCustomers"

static const char policy[] =
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: t}\n"
    "spec:\n  selector: {}\n  direction: both\n  rules:\n"
    "    - name: ssn\n      fields: [\"$..ssn\"]\n      action: {type: redact}\n"
    "    - name: card\n      fields: [\"$.payments[*].card.number\"]\n"
    "      action: {type: mask, keepLast: 4}\n"
    "    - name: email\n      detectors: [email]\n      action: {type: mask}\n";

static mm_masker *compile(const char *yaml)
{
    mm_policy_set *set = NULL;
    mm_masker *m = NULL;
    mm_errbuf eb = {{0}};
    const mm_policy *list[1];
    mm_masker_opts o = {0};
    if (mm_policy_parse_yaml(yaml, strlen(yaml), "case", &set, NULL, &eb) != MM_OK)
        fail_msg("policy: %s", eb.msg);
    list[0] = mm_policy_set_get(set, 0);
    if (mm_masker_new(list, 1, NULL, &o, &m, &eb) != MM_OK)
        fail_msg("masker: %s", eb.msg);
    mm_policy_set_free(set);
    return m;
}

static mm_pbdesc *descriptors(void)
{
    mm_pbdesc *d = NULL;
    mm_errbuf eb = {{0}};
    if (mm_pbdesc_load(PROTOSET, &d, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    return d;
}

/* ---- a small encoder for the cases ---------------------------------------------------- */

static void varint(mm_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        assert_int_equal(mm_buf_putc(b, (char)(v | 0x80)), MM_OK);
        v >>= 7;
    }
    assert_int_equal(mm_buf_putc(b, (char)v), MM_OK);
}

static void str(mm_buf *b, unsigned num, const char *s, size_t n)
{
    varint(b, (uint64_t)num << 3 | 2);
    varint(b, n);
    assert_int_equal(mm_buf_append(b, s, n), MM_OK);
}

static void sstr(mm_buf *b, unsigned num, const char *s)
{
    str(b, num, s, strlen(s));
}

/* shop.v1.Customer: id 1, email 3, ssn 4, payments 8 (Payment: card 1 (Card: number 1,
 * holder 2, exp_month 3), amount_cents 3), codes 9 (packed), referrer 12 */
static void customer(mm_buf *b, int i)
{
    mm_buf card, pay, ref;
    mm_buf_init(&card, 0);
    mm_buf_init(&pay, 0);
    mm_buf_init(&ref, 0);
    char id[16];
    snprintf(id, sizeof(id), "c%d", i);
    sstr(b, 1, id);
    sstr(b, 3, "ada@example.com");
    sstr(b, 4, "123-45-6789");
    sstr(&card, 1, "4111111111111111");
    sstr(&card, 2, "Ada");
    varint(&card, 3 << 3);
    varint(&card, 12);
    str(&pay, 1, card.data, card.len);
    varint(&pay, 3 << 3);
    varint(&pay, 1234);
    str(b, 8, pay.data, pay.len);
    str(b, 8, pay.data, pay.len);
    str(b, 9, "\x01\x02\x03", 3);
    sstr(&ref, 4, "111-22-3333");
    str(b, 12, ref.data, ref.len);
    mm_buf_free(&card);
    mm_buf_free(&pay);
    mm_buf_free(&ref);
}

static void frame(mm_buf *b, const char *msg, size_t n, bool z)
{
    unsigned char out[4096];
    uLongf zn = sizeof(out);
    if (z) { /* gzip, as grpc-encoding gzip */
        z_stream zs;
        memset(&zs, 0, sizeof(zs));
        assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
                                      Z_DEFAULT_STRATEGY), Z_OK);
        zs.next_in = (Bytef *)(uintptr_t)msg;
        zs.avail_in = (uInt)n;
        zs.next_out = out;
        zs.avail_out = sizeof(out);
        assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
        zn = sizeof(out) - zs.avail_out;
        deflateEnd(&zs);
        msg = (const char *)out;
        n = zn;
    }
    unsigned char h[5] = {z, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    assert_int_equal(mm_buf_append(b, h, 5), MM_OK);
    assert_int_equal(mm_buf_append(b, msg, n), MM_OK);
}

/* ---- running ---------------------------------------------------------------------------- */

static mm_err run(mm_masker *m, const mm_stream_opts *o, const char *in, size_t n, size_t first,
                  size_t step, mm_buf *out, mm_errbuf *eb)
{
    mm_stream *s = NULL;
    size_t i = 0;
    mm_err rc = mm_stream_new(m, o, mm_stream_buf_write, out, &s);
    if (rc != MM_OK)
        return rc;
    while (rc == MM_OK && i < n) {
        size_t k = i == 0 ? first : step;
        if (k > n - i)
            k = n - i;
        rc = mm_stream_push(s, in + i, k, eb);
        i += k;
    }
    if (rc == MM_OK)
        rc = mm_stream_finish(s, eb);
    mm_stream_free(s);
    return rc;
}

static bool has(const mm_buf *b, const char *needle)
{
    return b->len && memmem(b->data, b->len, needle, strlen(needle)) != NULL;
}

/* Inflates the gzip frame bodies of a gRPC stream, so the checks can read masked text. */
static void plain(const mm_buf *in, mm_buf *out)
{
    size_t i = 0;
    while (i + 5 <= in->len) {
        const unsigned char *h = (const unsigned char *)in->data + i;
        size_t n = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
        assert_true(i + 5 + n <= in->len);
        if (h[0]) {
            unsigned char buf[8192];
            z_stream zs;
            memset(&zs, 0, sizeof(zs));
            assert_int_equal(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
            zs.next_in = (Bytef *)(uintptr_t)(h + 5);
            zs.avail_in = (uInt)n;
            zs.next_out = buf;
            zs.avail_out = sizeof(buf);
            assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
            assert_int_equal(mm_buf_append(out, buf, sizeof(buf) - zs.avail_out), MM_OK);
            inflateEnd(&zs);
        } else {
            assert_int_equal(mm_buf_append(out, h + 5, n), MM_OK);
        }
        i += 5 + n;
    }
    assert_int_equal(i, in->len);
}

/* ---- the cases -------------------------------------------------------------------------- */

static void test_stream_splits(void **state)
{
    (void)state;
    mm_masker *m = compile(policy);
    mm_pbdesc *d = descriptors();
    mm_buf msg, in, whole, out, txt;
    mm_errbuf eb = {{0}};
    mm_stream_opts o = {.kind = MM_BODY_GRPC, .direction = MM_DIR_RESPONSE, .proto = d,
                        .grpc_method = LIST, .grpc_encoding = "gzip"};
    mm_buf_init(&msg, 0);
    mm_buf_init(&in, 0);
    mm_buf_init(&whole, 0);
    mm_buf_init(&out, 0);
    mm_buf_init(&txt, 0);
    for (int i = 0; i < 3; i++) {
        mm_buf_reset(&msg);
        customer(&msg, i);
        frame(&in, msg.data, msg.len, i == 1);
    }
    frame(&in, "", 0, false); /* an empty message is a message */
    assert_int_equal(run(m, &o, in.data, in.len, in.len, 1, &whole, &eb), MM_OK);
    plain(&whole, &txt);
    assert_false(has(&txt, "123-45-6789"));
    assert_false(has(&txt, "111-22-3333"));
    assert_false(has(&txt, "ada@example.com"));
    assert_false(has(&txt, "4111111111111111"));
    assert_true(has(&txt, "************1111"));
    assert_true(has(&txt, "[REDACTED]"));
    assert_true(has(&txt, "Ada"));
    for (size_t first = 1; first <= in.len; first++) {
        mm_buf_reset(&out);
        assert_int_equal(run(m, &o, in.data, in.len, first, in.len, &out, &eb), MM_OK);
        assert_int_equal(out.len, whole.len);
        assert_memory_equal(out.data, whole.data, whole.len);
    }
    mm_buf_reset(&out);
    assert_int_equal(run(m, &o, in.data, in.len, 1, 1, &out, &eb), MM_OK);
    assert_memory_equal(out.data, whole.data, whole.len);
    mm_buf_free(&msg);
    mm_buf_free(&in);
    mm_buf_free(&whole);
    mm_buf_free(&out);
    mm_buf_free(&txt);
    mm_pbdesc_free(d);
    mm_masker_free(m);
}

/* One malformed Customer: the error holds `want`, nothing is written. */
static void bad_message(mm_masker *m, const mm_pbdesc *d, const char *in, size_t n,
                        const char *want)
{
    mm_buf out;
    mm_errbuf eb = {{0}};
    mm_stream_opts o = {.kind = MM_BODY_PROTOBUF, .proto = d,
                        .proto_message = "shop.v1.Customer"};
    mm_buf_init(&out, 0);
    mm_err rc = run(m, &o, in, n, n, n, &out, &eb);
    if (rc == MM_OK || !strstr(eb.msg, want))
        fail_msg("want an error with \"%s\", got %d: %s", want, rc, eb.msg);
    assert_int_equal(out.len, 0);
    mm_buf_free(&out);
}

static void test_malformed(void **state)
{
    (void)state;
    mm_masker *m = compile(policy);
    mm_pbdesc *d = descriptors();
    bad_message(m, d, "\x0a\x05" "ab", 4, "offset 0: message shop.v1.Customer field 1 (id): "
                                          "length past the end of the message");
    bad_message(m, d, "\x0a\x01x\x80", 4, "offset 3: message shop.v1.Customer: truncated field key");
    bad_message(m, d, "\x18\x05", 2, "field 3 (email): wire type 0 where the descriptor's type "
                                     "wants 2");
    bad_message(m, d, "\x00\x01", 2, "field number out of range");
    bad_message(m, d, "\x0e\x01", 2, "invalid wire type");
    bad_message(m, d, "\x0c", 1, "end-group without its start");
    bad_message(m, d, "\x0b\x08\x01", 3, "group without its end");
    bad_message(m, d, "\x78\xff\xff", 3, "truncated varint");
    bad_message(m, d, "\x42\x04\x0a\x02\x0a\x05", 6, "message shop.v1.Card field 1 (number): "
                                                     "length past the end");
    bad_message(m, d, "\x4a\x02\x01\xff", 4, "truncated element of a packed field");
    /* referrer in referrer ... past the depth limit */
    mm_buf deep, t;
    mm_buf_init(&deep, 0);
    mm_buf_init(&t, 0);
    for (int i = 0; i < 120; i++) {
        mm_buf_reset(&t);
        str(&t, 12, deep.data ? deep.data : "", deep.len);
        mm_buf_reset(&deep);
        assert_int_equal(mm_buf_append(&deep, t.data, t.len), MM_OK);
    }
    bad_message(m, d, deep.data, deep.len, "nested deeper than the limit");
    mm_buf_free(&deep);
    mm_buf_free(&t);
    mm_pbdesc_free(d);
    mm_masker_free(m);
}

/* A gRPC stream: the good message before a bad frame is written whole, nothing after. */
static void bad_stream(mm_masker *m, const mm_stream_opts *o, const char *tail, size_t n,
                       mm_err want_rc, const char *want)
{
    mm_buf in, out, msg;
    mm_errbuf eb = {{0}};
    mm_buf_init(&in, 0);
    mm_buf_init(&out, 0);
    mm_buf_init(&msg, 0);
    customer(&msg, 0);
    frame(&in, msg.data, msg.len, false);
    size_t good = in.len;
    assert_int_equal(mm_buf_append(&in, tail, n), MM_OK);
    mm_err rc = run(m, o, in.data, in.len, in.len, 1, &out, &eb);
    if (rc != want_rc || !strstr(eb.msg, want))
        fail_msg("want %d with \"%s\", got %d: %s", want_rc, want, rc, eb.msg);
    /* the first message went out whole (masked, so its length may differ) */
    assert_true(out.len >= 5);
    const unsigned char *h = (const unsigned char *)out.data;
    assert_int_equal(out.len, 5 + ((size_t)h[1] << 24 | (size_t)h[2] << 16 |
                                   (size_t)h[3] << 8 | h[4]));
    (void)good;
    mm_buf_free(&in);
    mm_buf_free(&out);
    mm_buf_free(&msg);
}

static void test_frames(void **state)
{
    (void)state;
    mm_masker *m = compile(policy);
    mm_pbdesc *d = descriptors();
    mm_stream_opts o = {.kind = MM_BODY_GRPC, .direction = MM_DIR_RESPONSE, .proto = d,
                        .grpc_method = LIST, .max_message = 1024};
    bad_stream(m, &o, "\x00\x00\x00", 3, MM_EPARSE, "gRPC message 1 at offset");
    bad_stream(m, &o, "\x00\x00\x00\x00\x05\x0a", 6, MM_EPARSE,
               "truncated: fewer bytes than its length");
    bad_stream(m, &o, "\x02\x00\x00\x00\x00", 5, MM_EPARSE, "compressed flag");
    bad_stream(m, &o, "\x00\x00\x00\x04\x01", 5, MM_ELIMIT, "1025 bytes, more than the limit 1024");
    bad_stream(m, &o, "\x01\x00\x00\x00\x02\x1f\x8b", 7, MM_EPARSE, "grpc-encoding is not gzip");
    o.grpc_encoding = "gzip";
    bad_stream(m, &o, "\x01\x00\x00\x00\x03\x1f\x8b\x08", 8, MM_EPARSE, "gzip data");
    bad_stream(m, &o, "\x00\x00\x00\x00\x02\x22\x03", 7, MM_EPARSE,
               "gRPC message 1: offset 0: message shop.v1.Customer field 4 (ssn)");
    /* unknown method and type: MM_ENOTFOUND naming them, before any output */
    mm_buf out;
    mm_errbuf eb = {{0}};
    mm_buf_init(&out, 0);
    o.grpc_method = "/shop.v1.Customers/Nope";
    assert_int_equal(run(m, &o, "\0\0\0\0\0", 5, 5, 5, &out, &eb), MM_ENOTFOUND);
    assert_non_null(strstr(eb.msg, "/shop.v1.Customers/Nope"));
    o.grpc_method = NULL;
    o.proto_message = "shop.v1.Nope";
    assert_int_equal(run(m, &o, "\0\0\0\0\0", 5, 5, 5, &out, &eb), MM_ENOTFOUND);
    assert_non_null(strstr(eb.msg, "shop.v1.Nope"));
    o.proto = NULL;
    assert_int_equal(run(m, &o, "\0\0\0\0\0", 5, 5, 5, &out, &eb), MM_ENOTFOUND);
    assert_int_equal(out.len, 0);
    /* the request type of a method */
    o = (mm_stream_opts){.kind = MM_BODY_GRPC, .direction = MM_DIR_REQUEST, .proto = d,
                         .grpc_method = "/shop.v1.Customers/GetCustomer"};
    mm_buf in;
    mm_buf_init(&in, 0);
    frame(&in, "\x12\x0b" "123-45-6789", 13, false);
    assert_int_equal(run(m, &o, in.data, in.len, in.len, 1, &out, &eb), MM_OK);
    assert_true(has(&out, "\x12\x0a[REDACTED]"));
    mm_buf_free(&in);
    mm_buf_free(&out);
    mm_pbdesc_free(d);
    mm_masker_free(m);
}

/* One stream reset with mm_stream_reset_grpc for call after call (methods known and not,
 * encodings, a failure mid-stream) gives, for each, exactly what a new stream gives: output,
 * result and error message. */
typedef struct {
    const char *method, *encoding;
    mm_buf in;
} rcall;

static mm_err push_all(mm_stream *s, const mm_buf *in, size_t step, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    for (size_t i = 0; rc == MM_OK && i < in->len; i += step)
        rc = mm_stream_push(s, in->data + i, step < in->len - i ? step : in->len - i, eb);
    return rc == MM_OK ? mm_stream_finish(s, eb) : rc;
}

static void test_reset_grpc(void **state)
{
    (void)state;
    mm_masker *m = compile(policy);
    mm_pbdesc *d = descriptors();
    rcall c[5] = {{LIST, NULL, {0}}, {LIST, "gzip", {0}}, {"/shop.v1.Customers/Nope", NULL, {0}},
                  {LIST, NULL, {0}}, {"/shop.v1.Customers/GetCustomer", NULL, {0}}};
    mm_buf msg, want[5], out;
    mm_err want_rc[5];
    char want_msg[5][MM_ERRBUF_SIZE];
    mm_stream *s = NULL, *js = NULL;
    mm_errbuf eb = {{0}};
    mm_buf_init(&msg, 0);
    mm_buf_init(&out, 0);
    for (int i = 0; i < 5; i++) {
        mm_buf_init(&c[i].in, 0);
        mm_buf_init(&want[i], 0);
        mm_buf_reset(&msg);
        customer(&msg, i);
        frame(&c[i].in, msg.data, msg.len, i == 1);
        frame(&c[i].in, msg.data, msg.len, false);
    }
    /* call 3 fails in its second message (a field of the wrong wire type) */
    assert_int_equal(mm_buf_append(&c[3].in, "\0\0\0\0\2\x22\x03", 7), MM_OK);
    for (int i = 0; i < 5; i++) {
        mm_stream_opts o = {.kind = MM_BODY_GRPC, .direction = MM_DIR_RESPONSE, .proto = d,
                            .grpc_method = c[i].method, .grpc_encoding = c[i].encoding};
        memset(&eb, 0, sizeof(eb));
        want_rc[i] = run(m, &o, c[i].in.data, c[i].in.len, c[i].in.len, 1, &want[i], &eb);
        snprintf(want_msg[i], sizeof(want_msg[i]), "%s", eb.msg);
    }
    assert_int_equal(want_rc[0], MM_OK);
    assert_int_equal(want_rc[2], MM_ENOTFOUND);
    assert_int_equal(want_rc[3], MM_EPARSE);
    assert_non_null(strstr(want_msg[3], "gRPC message 2: offset 0: message shop.v1.Customer"));
    assert_int_equal(want_rc[4], MM_OK);
    assert_false(has(&want[0], "123-45-6789"));
    mm_stream_opts o0 = {.kind = MM_BODY_GRPC, .direction = MM_DIR_RESPONSE, .proto = d,
                         .grpc_method = c[3].method};
    assert_int_equal(mm_stream_new(m, &o0, mm_stream_buf_write, &out, &s), MM_OK);
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < 5; k++) {
            int i = round == 1 ? 4 - k : (k * (round + 2)) % 5;
            assert_int_equal(mm_stream_reset_grpc(s, d, c[i].method, c[i].encoding), MM_OK);
            mm_buf_reset(&out);
            memset(&eb, 0, sizeof(eb));
            mm_err rc = push_all(s, &c[i].in, round == 2 ? 1 : c[i].in.len, &eb);
            assert_int_equal(rc, want_rc[i]);
            assert_string_equal(eb.msg, want_msg[i]);
            assert_int_equal(out.len, want[i].len);
            if (out.len)
                assert_memory_equal(out.data, want[i].data, out.len);
        }
    /* a stream of another kind is not a call's */
    mm_stream_opts jo = {.kind = MM_BODY_JSON};
    assert_int_equal(mm_stream_new(m, &jo, mm_stream_buf_write, &out, &js), MM_OK);
    assert_int_equal(mm_stream_reset_grpc(js, d, LIST, NULL), MM_EINVAL);
    mm_stream_free(js);
    mm_stream_free(s);
    for (int i = 0; i < 5; i++) {
        mm_buf_free(&c[i].in);
        mm_buf_free(&want[i]);
    }
    mm_buf_free(&msg);
    mm_buf_free(&out);
    mm_pbdesc_free(d);
    mm_masker_free(m);
}

static void test_descriptor_errors(void **state)
{
    (void)state;
    char *set = NULL;
    size_t len = 0;
    mm_errbuf eb = {{0}};
    mm_pbdesc *d = NULL;
    assert_int_equal(mm_read_file(PROTOSET, MM_PB_MAX_DESCRIPTORS, &set, &len, &eb), MM_OK);
    /* every truncation: a clean error or (at a file boundary) a smaller set, never a crash */
    for (size_t n = 0; n < len; n++) {
        mm_err rc = mm_pbdesc_parse(set, n, &d, &eb);
        if (rc == MM_OK)
            mm_pbdesc_free(d);
        else
            assert_non_null(strstr(eb.msg, "descriptor set"));
        d = NULL;
    }
    assert_int_equal(mm_pbdesc_parse("", 0, &d, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "no message types"));
    assert_int_equal(mm_pbdesc_parse("\x0a\x04\x22\x02\x0a\x05", 6, &d, &eb), MM_EPARSE);
    assert_string_equal(eb.msg, "descriptor set: offset 4: message: length past the end of the "
                                "message");
    /* a field whose type is not in the set (made without --include_imports) */
    static const char noimp[] = "\x0a\x1b\x22\x19\x0a\x01M\x12\x14\x0a\x01" "f\x18\x01\x28\x0b"
                                "\x32\x0b.pkg.Absent";
    assert_int_equal(mm_pbdesc_parse(noimp, sizeof(noimp) - 1, &d, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "message M field f: type .pkg.Absent is not in the set"));
    assert_int_equal(mm_pbdesc_load("tests/grpc/no-such.protoset", &d, &eb), MM_ENOTFOUND);
    mm_free(set);
    /* the set's tables: methods by path */
    d = descriptors();
    assert_int_equal(mm_pbdesc_method_count(d), 3);
    assert_string_equal(mm_pbdesc_method_path(d, 0), "/shop.v1.Customers/GetCustomer");
    assert_true(mm_pbdesc_has_method(d, "/shop.v1.Customers/UpdateCustomers"));
    assert_false(mm_pbdesc_has_method(d, "/shop.v1.Customers/Nope"));
    assert_false(mm_pbdesc_has_method(d, "shop.v1.Customers/GetCustomer"));
    assert_true(mm_pbdesc_has_message(d, "google.protobuf.Timestamp"));
    assert_true(mm_pbdesc_has_message(d, "common.v1.Address"));
    assert_false(mm_pbdesc_has_message(d, "shop.v1"));
    mm_pbdesc_free(d);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    char *set = NULL;
    size_t len = 0;
    mm_errbuf eb = {{0}};
    mm_buf msg, in, out;
    mm_buf_init(&msg, 0);
    mm_buf_init(&in, 0);
    mm_buf_init(&out, 0);
    customer(&msg, 0);
    frame(&in, msg.data, msg.len, true);
    mm_masker *m = compile(policy);
    assert_int_equal(mm_read_file(PROTOSET, MM_PB_MAX_DESCRIPTORS, &set, &len, &eb), MM_OK);
    for (long n = 0;; n++) {
        mm_pbdesc *d = NULL;
        mm_alloc_fail_after(n);
        mm_err rc = mm_pbdesc_parse(set, len, &d, &eb);
        if (rc == MM_OK) {
            mm_stream_opts o = {.kind = MM_BODY_GRPC, .proto = d, .grpc_method = LIST,
                                .grpc_encoding = "gzip"};
            mm_buf_reset(&out);
            rc = run(m, &o, in.data, in.len, 7, 9, &out, &eb);
        }
        mm_alloc_fail_after(-1);
        mm_pbdesc_free(d);
        if (rc == MM_OK)
            break;
        assert_int_equal(rc, MM_ENOMEM);
        assert_true(n < 100000);
    }
    mm_free(set);
    mm_buf_free(&msg);
    mm_buf_free(&in);
    mm_buf_free(&out);
    mm_masker_free(m);
}

static void test_check_policy(void **state)
{
    (void)state;
    mm_pbdesc *d = descriptors();
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    static const char bad[] =
        "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: t}\n"
        "spec:\n  selector: {}\n  rules:\n"
        "    - name: a\n      fields: [\"$.labels.anything\", \"$.payments[*].card\"]\n"
        "      action: {type: redact}\n"
        "    - name: b\n      fields: [\"$..card_numbr\"]\n      action: {type: redact}\n";
    assert_int_equal(mm_policy_parse_yaml(bad, strlen(bad), "case", &set, NULL, &eb), MM_OK);
    assert_int_equal(mm_pbdesc_check_policy(d, mm_policy_set_get(set, 0), &eb), MM_EINVAL);
    assert_string_equal(eb.msg, "policy t: spec.rules[1] (b): fields path $..card_numbr: no "
                                "message of the descriptor set has a field named \"card_numbr\"");
    mm_policy_set_free(set);
    mm_pbdesc_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_splits),   cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_frames),          cmocka_unit_test(test_descriptor_errors),
        cmocka_unit_test(test_alloc_failures),  cmocka_unit_test(test_check_policy),
        cmocka_unit_test(test_reset_grpc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
