/* Unit tests for the body pipe (lib/proxy/body.c) and the type decision (body_kind_for):
 * every framing fed at every split point gives the same verdict and output; masking, gzip,
 * limits and malformed framing; ambiguous types read every way, unlisted types per
 * unlistedTypes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/body.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define CARD "4111 1111 1111 1111"
#define MASKED "4111 11** **** 1111"

static char ztmp[BODY_ZTMP];

static mm_masker *masker_for(const char *unlisted)
{
    char y[1024];
    mm_policy_set *set = NULL;
    mm_masker *m = NULL;
    mm_errbuf eb;

    snprintf(y, sizeof(y),
             "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: t}\n"
             "spec:\n  selector: {}\n  unlistedTypes: %s\n  rules:\n"
             "  - {name: card, fields: [\"$..card\"], detectors: [credit_card], action: {type: "
             "mask, keepFirst: 6, keepLast: 4, char: \"*\", preserveFormat: true}}\n",
             unlisted);
    assert_int_equal(mm_policy_parse_yaml(y, strlen(y), "t", &set, NULL, &eb), MM_OK);
    const mm_policy *p[1] = {mm_policy_set_get(set, 0)};
    assert_int_equal(mm_masker_new(p, 1, NULL, NULL, &m, &eb), MM_OK);
    mm_policy_set_free(set);
    return m;
}

static bool to_buf(void *ctx, const char *p, size_t n, bool last)
{
    (void)last;
    return mm_buf_append(ctx, p, n) == MM_OK;
}

/* Feeds in[0..len) split at `split`; returns the verdict, the output in out. */
static body_res run(body_opts o, const char *in, size_t len, size_t split, mm_buf *out,
                    size_t *used, body_err *err)
{
    body_pipe b;
    body_res r = BODY_MORE;
    size_t u1 = 0, u2 = 0;

    body_init(&b, ztmp);
    o.sink = to_buf;
    o.ctx = out;
    out->len = 0;
    assert_int_equal(body_begin(&b, &o), MM_OK);
    r = body_feed(&b, in, split, &u1);
    if (r == BODY_MORE)
        r = body_feed(&b, in + split, len - split, &u2);
    if (r == BODY_MORE)
        r = body_end(&b);
    *used = u1 + u2;
    *err = b.err;
    body_cleanup(&b);
    return r;
}

/* The same verdict and output at every split point; returns the verdict. */
static body_res every_split(const body_opts *o, const char *in, size_t len, mm_buf *whole,
                            size_t *used)
{
    mm_buf part;
    body_err e1, e2;
    size_t u2;
    body_res r = run(*o, in, len, len, whole, used, &e1);

    mm_buf_init(&part, 0);
    for (size_t s = 0; s <= len; s++) {
        assert_int_equal(run(*o, in, len, s, &part, &u2, &e2), r);
        if (r == BODY_DONE) {
            assert_int_equal(u2, *used);
            assert_int_equal(part.len, whole->len);
            assert_memory_equal(part.data, whole->data, whole->len);
        }
    }
    mm_buf_free(&part);
    return r;
}

static void test_framings(void **state)
{
    mm_masker *m = masker_for("pass");
    mm_buf out;
    size_t used;
    body_err e;
    static const char json[] = "{\"card\":\"" CARD "\",\"n\":1}";
    static const char chunked[] = "9\r\n{\"card\":\"\r\n1b\r\n" CARD "\",\"n\":1}\r\n0\r\nX: y\r\n\r\nNEXT";
    body_opts o = {.frame = BODY_FRAME_LENGTH, .length = sizeof(json) - 1, .masker = m,
                   .kind = MM_BODY_JSON, .dir = MM_DIR_RESPONSE};
    (void)state;
    mm_buf_init(&out, 0);

    /* a length: bytes past it are left for the caller */
    char in[128];
    snprintf(in, sizeof(in), "%sNEXT", json);
    assert_int_equal(every_split(&o, in, strlen(in), &out, &used), BODY_DONE);
    assert_int_equal(used, sizeof(json) - 1);
    assert_non_null(memmem(out.data, out.len, MASKED, strlen(MASKED)));
    assert_null(memmem(out.data, out.len, CARD, strlen(CARD)));

    /* chunked, trailers dropped, the next message left */
    o.frame = BODY_FRAME_CHUNKED;
    assert_int_equal(every_split(&o, chunked, strlen(chunked), &out, &used), BODY_DONE);
    assert_int_equal(used, strlen(chunked) - 4);
    assert_non_null(memmem(out.data, out.len, MASKED, strlen(MASKED)));

    /* to the end (a closing connection, or HTTP/2 frames): done at body_end */
    o.frame = BODY_FRAME_EOF;
    assert_int_equal(every_split(&o, json, strlen(json), &out, &used), BODY_DONE);
    assert_non_null(memmem(out.data, out.len, MASKED, strlen(MASKED)));

    /* no masker: the bytes pass unchanged */
    o.masker = NULL;
    assert_int_equal(every_split(&o, json, strlen(json), &out, &used), BODY_DONE);
    assert_int_equal(out.len, strlen(json));

    /* malformed chunked, a short length, a limit */
    o.frame = BODY_FRAME_CHUNKED;
    assert_int_equal(run(o, "zz\r\n", 4, 4, &out, &used, &e), BODY_FAILED);
    assert_int_equal(e, BODY_EFRAMING);
    o.frame = BODY_FRAME_LENGTH;
    o.length = 100;
    assert_int_equal(run(o, json, strlen(json), 3, &out, &used, &e), BODY_FAILED);
    assert_int_equal(e, BODY_EFRAMING);
    o.frame = BODY_FRAME_EOF;
    o.max = 4;
    assert_int_equal(run(o, json, strlen(json), 2, &out, &used, &e), BODY_FAILED);
    assert_int_equal(e, BODY_ELIMIT);

    /* the engine refuses: block fails, passthrough sends what it kept */
    o.max = 0;
    o.masker = m;
    assert_int_equal(run(o, "{\"card\":", 8, 3, &out, &used, &e), BODY_FAILED);
    assert_int_equal(e, BODY_EMASK);
    o.on_error = MM_ONERR_PASSTHROUGH;
    assert_int_equal(run(o, "{\"card\":", 8, 3, &out, &used, &e), BODY_DONE);
    assert_int_equal(out.len, 8);
    mm_buf_free(&out);
    mm_masker_free(m);
}

static void test_gzip(void **state)
{
    mm_masker *m = masker_for("pass");
    static const char json[] = "[{\"card\":\"" CARD "\"},{\"card\":\"5555 5555 5555 4444\"}]";
    unsigned char gz[256];
    z_stream z = {0};
    mm_buf out;
    size_t used;
    (void)state;

    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)json;
    z.avail_in = sizeof(json) - 1;
    z.next_out = gz;
    z.avail_out = sizeof(gz);
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = sizeof(gz) - z.avail_out;
    deflateEnd(&z);
    body_opts o = {.frame = BODY_FRAME_LENGTH, .length = n, .decode = true, .masker = m,
                   .kind = MM_BODY_JSON, .dir = MM_DIR_RESPONSE};
    mm_buf_init(&out, 0);
    assert_int_equal(every_split(&o, (const char *)gz, n, &out, &used), BODY_DONE);
    assert_non_null(memmem(out.data, out.len, MASKED, strlen(MASKED)));
    assert_null(memmem(out.data, out.len, "5555 5555 5555 4444", 19));
    /* cut short: the coding ends early, which is refused */
    body_err e;
    o.frame = BODY_FRAME_EOF;
    assert_int_equal(run(o, (const char *)gz, n - 6, n / 2, &out, &used, &e), BODY_FAILED);
    assert_int_equal(e, BODY_EMASK);
    mm_buf_free(&out);
    mm_masker_free(m);
}

static int kind_of(const mm_masker *m, const char *head, mm_body_kind *k, bool *every)
{
    static http_resp_head h;
    http_framing f;
    char buf[512];

    snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\n%sContent-Length: 1\r\n\r\n", head);
    assert_true(http_parse_response(buf, strlen(buf), 4096, &h) > 0);
    assert_int_equal(http_response_framing(&h, false, &f), 0);
    return body_kind_for(m, MM_DIR_RESPONSE, &f, k, every);
}

static void test_kinds(void **state)
{
    mm_masker *pass = masker_for("pass"), *detect = masker_for("detect"),
              *block = masker_for("block");
    mm_body_kind k;
    bool every;
    (void)state;

    assert_true(kind_of(pass, "Content-Type: application/json\r\n", &k, &every));
    assert_int_equal(k, MM_BODY_JSON);
    assert_false(every);
    /* ambiguous whatever the policy says about unlisted types */
    static const char *const ambiguous[] = {
        "", "Content-Type: application/json\r\nContent-Type: application/octet-stream\r\n",
        "Content-Type: application/json, text/plain\r\n", "Content-Type: json\r\n"};
    for (size_t i = 0; i < sizeof(ambiguous) / sizeof(ambiguous[0]); i++) {
        assert_true(kind_of(pass, ambiguous[i], &k, &every));
        assert_true(every);
    }
    assert_true(kind_of(pass, "Content-Type: image/png\r\n", &k, &every));
    assert_int_equal(k, MM_BODY_OPAQUE);
    assert_true(kind_of(detect, "Content-Type: image/png\r\n", &k, &every));
    assert_int_equal(k, MM_BODY_TEXT);
    assert_false(kind_of(block, "Content-Type: image/png\r\n", &k, &every));
    assert_true(kind_of(block, "Content-Type: text/plain\r\n", &k, &every));
    /* no masker applies: everything passes */
    assert_true(kind_of(NULL, "", &k, &every));
    assert_int_equal(k, MM_BODY_OPAQUE);
    assert_false(every);
    mm_masker_free(pass);
    mm_masker_free(detect);
    mm_masker_free(block);
}

static void test_every_way(void **state)
{
    mm_masker *m = masker_for("pass");
    mm_buf out;
    size_t used;
    static const char json[] = "{\"card\":\"" CARD "\"}";
    static const char text[] = "pay with " CARD " now";
    static const char broken[] = "{\"card\": " CARD " oops";
    body_opts o = {.frame = BODY_FRAME_EOF, .masker = m, .kind = MM_BODY_JSON,
                   .every_way = true, .dir = MM_DIR_RESPONSE};
    (void)state;
    mm_buf_init(&out, 0);

    assert_int_equal(every_split(&o, json, strlen(json), &out, &used), BODY_DONE);
    assert_non_null(memmem(out.data, out.len, "\"card\":\"" MASKED, 8 + strlen(MASKED)));
    assert_int_equal(every_split(&o, text, strlen(text), &out, &used), BODY_DONE);
    assert_non_null(memmem(out.data, out.len, MASKED, strlen(MASKED)));
    /* opens like JSON, is not: the text detectors still read it */
    assert_int_equal(every_split(&o, broken, strlen(broken), &out, &used), BODY_DONE);
    assert_null(memmem(out.data, out.len, CARD, strlen(CARD)));
    assert_non_null(memmem(out.data, out.len, MASKED, strlen(MASKED)));

    /* past the hold bound the body streams, read as its first byte says */
    size_t big = BODY_EVERY_WAY_MAX + 4096;
    char *doc = mm_malloc(big + 64);
    assert_non_null(doc);
    size_t n = (size_t)snprintf(doc, 64, "[{\"card\":\"%s\"}", CARD);
    while (n < big) {
        memcpy(doc + n, ",{\"n\":1234567}", 14);
        n += 14;
    }
    doc[n++] = ']';
    body_err e;
    assert_int_equal(run(o, doc, n, n / 3, &out, &used, &e), BODY_DONE);
    assert_null(memmem(out.data, out.len, CARD, strlen(CARD)));
    assert_non_null(memmem(out.data, out.len, MASKED, strlen(MASKED)));
    mm_free(doc);
    mm_buf_free(&out);
    mm_masker_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framings),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_every_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
