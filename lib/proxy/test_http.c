/* Unit tests for the proxy's HTTP/1.1 parsing and framing (lib/proxy/http1.c) and the
 * x-forwarded-client-cert reader: heads complete at every split, malformed and oversized
 * input refused with the right status, chunked bodies decoded at every split point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/http1.h"

#include <stdio.h>
#include <string.h>

static http_req_head rq;
static http_resp_head rs;

static int preq(const char *s)
{
    return http_parse_request(s, strlen(s), 16384, &rq);
}

static const char *hdr(const http_hdr *h, size_t n, const char *name, char *buf, size_t bl)
{
    for (size_t i = 0; i < n; i++)
        if (http_token_eq(h[i].name, h[i].name_len, name)) {
            snprintf(buf, bl, "%.*s", (int)h[i].value_len, h[i].value);
            return buf;
        }
    return NULL;
}

static void test_request_simple(void **state)
{
    const char *s = "GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Y:  spaced value \t\r\n\r\nNEXT";
    char b[64];
    (void)state;
    assert_int_equal(preq(s), (int)(strlen(s) - 4));
    assert_int_equal(rq.method_len, 3);
    assert_memory_equal(rq.target, "/a?b=c", 6);
    assert_int_equal(rq.minor, 1);
    assert_int_equal(rq.n_hdrs, 2);
    assert_string_equal(hdr(rq.hdrs, rq.n_hdrs, "x-y", b, sizeof(b)), "spaced value");
    /* LF-only line ends and leading empty lines are tolerated (RFC 9112 §2.2) */
    assert_true(preq("\r\nGET / HTTP/1.0\nHost: x\n\n") > 0);
    assert_int_equal(rq.minor, 0);
}

static void test_request_every_split(void **state)
{
    const char *s = "POST /upload HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n"
                    "Transfer-Encoding: chunked\r\nA: b\r\n\r\n";
    size_t n = strlen(s);
    (void)state;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(http_parse_request(s, i, 16384, &rq), 0);
    assert_int_equal(http_parse_request(s, n, 16384, &rq), (int)n);
}

static void test_request_malformed(void **state)
{
    (void)state;
    assert_int_equal(preq("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), -400); /* space before colon */
    assert_int_equal(preq("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"), -400);
    assert_int_equal(preq("GET / HTTP/1.1\rHost: x\r\n\r\n"), -400); /* bare CR */
    assert_int_equal(preq("G(T / HTTP/1.1\r\n\r\n"), -400);
    assert_int_equal(preq("GET  / HTTP/1.1\r\n\r\n"), -400);
    assert_int_equal(preq("GET / HTTP/2.0\r\n\r\n"), -505);
    assert_int_equal(preq("GET / HTTQ/1.1\r\n\r\n"), -400);
    assert_int_equal(preq("GET /\x01 HTTP/1.1\r\n\r\n"), -400);
    assert_int_equal(preq("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), -400);
    assert_int_equal(preq("GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n"), -400);
    assert_int_equal(preq("GET / HTTP/1.1\r\n: v\r\n\r\n"), -400);
}

static void test_request_limits(void **state)
{
    char big[20000];
    mm_buf b;
    (void)state;
    /* a head that never ends within the bound: 431 */
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(http_parse_request(big, sizeof(big), 16384, &rq), -431);
    memset(big, 'a', sizeof(big));
    assert_int_equal(http_parse_request(big, 1000, 16384, &rq), 0);
    /* a request line past the target bound: 414 */
    memcpy(big, "GET /", 5);
    assert_int_equal(http_parse_request(big, sizeof(big), 16384, &rq), -414);
    /* too many fields: 431 */
    mm_buf_init(&b, 0);
    mm_buf_puts(&b, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
        mm_buf_printf(&b, "X-%d: v\r\n", i);
    mm_buf_puts(&b, "\r\n");
    assert_int_equal(http_parse_request(b.data, b.len, 16384, &rq), -431);
    mm_buf_free(&b);
}

static void test_response(void **state)
{
    const char *s = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc";
    (void)state;
    assert_int_equal(http_parse_response(s, strlen(s), 65536, &rs), (int)strlen(s) - 3);
    assert_int_equal(rs.status, 404);
    assert_int_equal(rs.reason_len, 9);
    assert_int_equal(http_parse_response("HTTP/1.1 200\r\n\r\n", 16, 65536, &rs), 16);
    assert_int_equal(rs.reason_len, 0);
    assert_int_equal(http_parse_response("HTTP/1.1 20 OK\r\n\r\n", 18, 65536, &rs), -502);
    assert_int_equal(http_parse_response("HTTP/1.1 600 X\r\n\r\n", 18, 65536, &rs), -502);
    assert_int_equal(http_parse_response("HTTP/1.1 200 OK\r\nX", 18, 65536, &rs), 0);
    assert_int_equal(http_parse_response("HTTP/1.1 200 OK\r\nX", 18, 10, &rs), -502);
    assert_int_equal(http_parse_response("SSH-2.0-OpenSSH\r\n\r\n", 19, 65536, &rs), -502);
}

static int req_framing(const char *s, http_framing *f)
{
    assert_true(preq(s) > 0);
    return http_request_framing(&rq, f);
}

static int resp_framing(const char *s, bool head, http_framing *f)
{
    assert_true(http_parse_response(s, strlen(s), 65536, &rs) > 0);
    return http_response_framing(&rs, head, f);
}

static void test_framing(void **state)
{
    http_framing f;
    (void)state;
    assert_int_equal(req_framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &f), 0);
    assert_int_equal(f.kind, HTTP_BODY_NONE);
    assert_true(f.keep_alive);
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", &f), 0);
    assert_int_equal(f.kind, HTTP_BODY_LENGTH);
    assert_int_equal(f.length, 12);
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", &f), 0);
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", &f), -400);
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", &f), -400);
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", &f), -400);
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", &f), -400);
    /* smuggling: both framings, or a coding list not ending in chunked */
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", &f), -400);
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", &f), -400);
    /* a coding we would have to drop is refused, not dropped (issue 19) */
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &f), -501);
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", &f), -501);
    assert_int_equal(req_framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\tCHUNKED ,\r\n\r\n", &f), 0);
    assert_int_equal(f.kind, HTTP_BODY_CHUNKED);
    /* obfuscations: each is read one way by some server and another way by the next */
    static const char *const bad_te[] = {"chunked, chunked", "xchunked", "chunked;a=b", "\"chunked\"",
                                         "chunked\r\nTransfer-Encoding: identity", "chunked\x0b", "chu nked"};
    for (size_t i = 0; i < sizeof(bad_te) / sizeof(bad_te[0]); i++) {
        char req[160];
        snprintf(req, sizeof(req), "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: %s\r\n\r\n", bad_te[i]);
        if (preq(req) > 0)
            assert_int_equal(http_request_framing(&rq, &f), -400);
    }
    /* Host: exactly one in HTTP/1.1 (RFC 9112 §3.2) */
    assert_int_equal(req_framing("GET / HTTP/1.1\r\n\r\n", &f), -400);
    assert_int_equal(req_framing("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &f), -400);
    assert_int_equal(req_framing("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", &f), -400);
    assert_int_equal(req_framing("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &f), -400);
    assert_int_equal(req_framing("GET / HTTP/1.0\r\n\r\n", &f), 0);
    assert_false(f.keep_alive);
    assert_int_equal(req_framing("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &f), 0);
    assert_true(f.keep_alive);
    assert_int_equal(req_framing("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n", &f), 0);
    assert_false(f.keep_alive);
    assert_int_equal(req_framing("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", &f), 0);
    assert_true(f.expect_continue);

    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true, &f), 0);
    assert_int_equal(f.kind, HTTP_BODY_NONE); /* HEAD */
    assert_int_equal(resp_framing("HTTP/1.1 204 No Content\r\n\r\n", false, &f), 0);
    assert_int_equal(f.kind, HTTP_BODY_NONE);
    assert_true(f.keep_alive);
    assert_int_equal(resp_framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, &f), 0);
    assert_int_equal(f.kind, HTTP_BODY_NONE);
    assert_int_equal(resp_framing("HTTP/1.1 103 Early Hints\r\n\r\n", false, &f), 0);
    assert_int_equal(f.kind, HTTP_BODY_NONE);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\n\r\n", false, &f), 0);
    assert_int_equal(f.kind, HTTP_BODY_CLOSE);
    assert_false(f.keep_alive);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, &f), 0);
    assert_int_equal(f.kind, HTTP_BODY_NONE);
    assert_true(f.keep_alive);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", false, &f), 0);
    assert_int_equal(f.kind, HTTP_BODY_CHUNKED);
    assert_false(f.keep_alive);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", false, &f), -502);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 1\r\n\r\n", false, &f), 0);
    assert_int_equal(f.content_encoding, 1);
    assert_int_equal(f.content_type_len, 31);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\n", false, &f), 0);
    assert_int_equal(f.content_encoding, 3);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Encoding: gzip, br\r\nContent-Length: 1\r\n\r\n", false, &f), 0);
    assert_int_equal(f.content_encoding, 3);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: 1\r\n\r\n", false, &f), 0);
    assert_int_equal(f.content_encoding, 2);
    assert_false(f.content_type_ambiguous);
    /* a coding besides chunked cannot be passed as if it were the body */
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, &f), -502);
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, &f), -502);
    /* Content-Type read two ways by two clients is ambiguous */
    static const char *const ambiguous[] = {
        "Content-Type: application/json\r\nContent-Type: application/octet-stream",
        "Content-Type: application/json, text/plain", "Content-Type: json", "Content-Type: ",
        "Content-Type: application/json; x=\"a", "Content-Type: /json"};
    for (size_t i = 0; i < sizeof(ambiguous) / sizeof(ambiguous[0]); i++) {
        char resp[200];
        snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n%s\r\nContent-Length: 1\r\n\r\n", ambiguous[i]);
        assert_int_equal(resp_framing(resp, false, &f), 0);
        assert_true(f.content_type_ambiguous);
    }
    assert_int_equal(resp_framing("HTTP/1.1 200 OK\r\nContent-Type: text/plain; a=\"x,y\"\r\n\r\n", false, &f), 0);
    assert_false(f.content_type_ambiguous);
}

/* Decodes `in` fed in pieces split at the given points; returns the payload or NULL. */
static http_chunk_res decode(const char *in, size_t len, const size_t *splits, size_t ns,
                             mm_buf *out, size_t *consumed)
{
    http_chunked c;
    size_t start = 0, total = 0;
    http_chunk_res r = HTTP_CHUNK_MORE;

    http_chunked_init(&c);
    for (size_t k = 0; k <= ns && r != HTTP_CHUNK_DONE && r != HTTP_CHUNK_ERROR; k++) {
        size_t end = k < ns ? splits[k] : len;
        const char *p = in + start;
        size_t n = end - start;
        while (n > 0) {
            const char *d = NULL;
            size_t dl = 0, u = 0;
            r = http_chunked_step(&c, p, n, &u, &d, &dl);
            total += u;
            p += u;
            n -= u;
            if (r == HTTP_CHUNK_DATA)
                mm_buf_append(out, d, dl);
            if (r == HTTP_CHUNK_DONE || r == HTTP_CHUNK_ERROR)
                break;
        }
        start = end;
    }
    *consumed = total;
    return r == HTTP_CHUNK_DATA ? HTTP_CHUNK_MORE : r; /* all input used, body not over */
}

static void test_chunked_every_split(void **state)
{
    const char *in = "5;ext=\"q\"\r\nhello\r\n19\r\n, and a few more bytes!..\r\n0\r\n"
                     "Trailer-One: x\r\nTrailer-Two: y\r\n\r\nNEXT";
    const char *want = "hello, and a few more bytes!..";
    size_t len = strlen(in), used;
    (void)state;
    for (size_t i = 0; i <= len - 4; i++) {
        for (size_t j = i; j <= len - 4; j += 7) {
            size_t sp[2] = {i, j};
            mm_buf out;
            mm_buf_init(&out, 0);
            assert_int_equal(decode(in, len - 4, sp, 2, &out, &used), HTTP_CHUNK_DONE);
            assert_int_equal(out.len, strlen(want));
            assert_memory_equal(out.data, want, out.len);
            assert_int_equal(used, len - 4);
            mm_buf_free(&out);
        }
    }
    /* byte by byte, and the bytes after the body are not consumed */
    size_t sp[200];
    for (size_t i = 0; i < len && i < 200; i++)
        sp[i] = i;
    mm_buf out;
    mm_buf_init(&out, 0);
    assert_int_equal(decode(in, len, sp, len < 200 ? len : 200, &out, &used), HTTP_CHUNK_DONE);
    assert_int_equal(used, len - 4);
    mm_buf_free(&out);
}

static void test_chunked_malformed(void **state)
{
    static const char *const bad[] = {
        "g\r\n",                     /* not hex */
        "\r\n",                      /* no size */
        "5\r\nhelloXY",              /* no CRLF after data */
        "1234567890abcdef0\r\n",     /* size too long */
        "5\rx",                      /* bare CR */
        "3\r\nabc\r\n0\r\nX: y\rz",  /* bad trailer line end */
        "3\x01\r\n",                 /* control character after size */
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(bad); i++) {
        mm_buf out;
        size_t used;
        mm_buf_init(&out, 0);
        assert_int_equal(decode(bad[i], strlen(bad[i]), NULL, 0, &out, &used), HTTP_CHUNK_ERROR);
        mm_buf_free(&out);
    }
    /* an extension line past its bound */
    mm_buf b, out;
    size_t used;
    mm_buf_init(&b, 0);
    mm_buf_init(&out, 0);
    mm_buf_puts(&b, "5;");
    for (int i = 0; i < HTTP_MAX_CHUNK_LINE + 10; i++)
        mm_buf_putc(&b, 'e');
    assert_int_equal(decode(b.data, b.len, NULL, 0, &out, &used), HTTP_CHUNK_ERROR);
    mm_buf_free(&b);
    mm_buf_free(&out);
    /* incomplete is not an error */
    mm_buf_init(&out, 0);
    assert_int_equal(decode("5\r\nhel", 6, NULL, 0, &out, &used), HTTP_CHUNK_MORE);
    assert_int_equal(out.len, 3);
    mm_buf_free(&out);
}

static void test_chunk_header(void **state)
{
    char b[24];
    (void)state;
    assert_int_equal(http_chunk_header(b, 0), 3);
    assert_memory_equal(b, "0\r\n", 3);
    assert_int_equal(http_chunk_header(b, 0x1a2f), 6);
    assert_memory_equal(b, "1a2f\r\n", 6);
    assert_int_equal(http_chunk_header(b, SIZE_MAX), 18);
}

static void test_lists(void **state)
{
    (void)state;
    assert_true(http_list_has("a, keep-alive ,b", 16, "Keep-Alive"));
    assert_false(http_list_has("a, keep-alivex", 14, "keep-alive"));
    assert_true(http_list_has("gzip;q=1.0", 10, "gzip"));
    assert_true(http_list_last_is("gzip, chunked", 13, "chunked"));
    assert_false(http_list_last_is("chunked, gzip", 13, "chunked"));
    assert_true(http_list_last_is("chunked, ", 9, "chunked"));
    assert_true(http_token_eq("HeAd", 4, "head"));
    assert_false(http_token_eq("HEA", 3, "head"));
}

static void test_xfcc(void **state)
{
    char out[128];
    const char *v;
    (void)state;
    v = "By=spiffe://a;Hash=h;URI=spiffe://cluster.local/ns/shop/sa/billing";
    assert_true(http_xfcc_uri(v, strlen(v), out, sizeof(out)));
    assert_string_equal(out, "spiffe://cluster.local/ns/shop/sa/billing");
    /* several elements: the nearest (last) one counts; quoted values with ; and , */
    v = "URI=spiffe://first,By=x;Subject=\"CN=a,O=b;c\";uri=\"spiffe://second\"";
    assert_true(http_xfcc_uri(v, strlen(v), out, sizeof(out)));
    assert_string_equal(out, "spiffe://second");
    v = "By=spiffe://a;Hash=h";
    assert_false(http_xfcc_uri(v, strlen(v), out, sizeof(out)));
    v = "URI=";
    assert_false(http_xfcc_uri(v, strlen(v), out, sizeof(out)));
    v = "URI=spiffe://a-very-long-uri-that-does-not-fit";
    assert_false(http_xfcc_uri(v, strlen(v), out, 10));
    v = "URI=\"unterminated";
    assert_true(http_xfcc_uri(v, strlen(v), out, sizeof(out)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_simple),
        cmocka_unit_test(test_request_every_split),
        cmocka_unit_test(test_request_malformed),
        cmocka_unit_test(test_request_limits),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_chunked_every_split),
        cmocka_unit_test(test_chunked_malformed),
        cmocka_unit_test(test_chunk_header),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_xfcc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
