/* Unit tests for the sidecar's HTTP/2 glue (lib/proxy/h2*.c): field lists and framing facts,
 * then whole exchanges on a client connection of a real proxy (mm_proxy_new, no threads)
 * read back by an nghttp2 client session: the SETTINGS the limits say, answers of our own
 * (503 with no configuration, 431 past the header list limit, 405 for CONNECT) by prior
 * knowledge and through the HTTP/1.1 Upgrade. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proxy/h2_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_nv_lowercase_and_pseudo(void **state)
{
    mm_buf b;
    size_t n = 0;
    http_hdr h[4];

    (void)state;
    mm_buf_init(&b, 0);
    assert_true(h2_nv_put(&b, &n, ":status", 7, "200", 3));
    assert_true(h2_nv_put(&b, &n, "Content-Type", 12, "Application/JSON", 16));
    assert_true(h2_nv_put(&b, &n, "X-A", 3, "", 0));
    assert_int_equal(n, 3);
    assert_int_equal(h2_nv_hdrs(&b, n, h, 4), 2); /* :status is not a field */
    assert_memory_equal(h[0].name, "content-type", 12);
    assert_memory_equal(h[0].value, "Application/JSON", 16); /* values are kept */
    assert_int_equal(h[1].value_len, 0);
    assert_int_equal(h2_nv_hdrs(&b, n, h, 1), 1); /* bounded by max */
    mm_buf_free(&b);
}

static void test_framing(void **state)
{
    http_hdr h[] = {{"content-type", 12, "application/json", 16},
                    {"content-encoding", 16, "gzip", 4},
                    {"content-length", 14, "1234", 4}};
    http_hdr two[] = {{"content-type", 12, "text/plain", 10}, {"content-type", 12, "a/b", 3},
                      {"content-encoding", 16, "br", 2}};
    http_framing f;

    (void)state;
    h2_framing(h, 3, true, &f);
    assert_int_equal(f.kind, HTTP_BODY_CLOSE); /* DATA frames delimit it */
    assert_int_equal(f.content_encoding, 1);
    assert_int_equal(f.length, 1234);
    assert_false(f.content_type_ambiguous);
    assert_int_equal(f.content_type_len, 16);
    h2_framing(two, 3, false, &f);
    assert_int_equal(f.kind, HTTP_BODY_NONE);
    assert_true(f.content_type_ambiguous); /* repeated: read every way */
    assert_int_equal(f.content_encoding, 3); /* br cannot be decoded */
}

/* ---- whole exchanges ----------------------------------------------------------------------- */

typedef struct {
    nghttp2_session *ns;
    int status[8];
    char body[8][512];
    size_t body_len[8];
    uint32_t reset[8];
    bool closed[8];
    uint32_t max_streams, window, header_list;
    bool settings;
} cli;

static int c_header(nghttp2_session *ns, const nghttp2_frame *fr, const uint8_t *name, size_t nl,
                    const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    cli *k = ud;

    (void)ns;
    (void)flags;
    if (fr->hd.stream_id < 8 && nl == 7 && memcmp(name, ":status", 7) == 0 && vl == 3)
        k->status[fr->hd.stream_id] =
            (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    return 0;
}

static int c_data(nghttp2_session *ns, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                  void *ud)
{
    cli *k = ud;

    (void)ns;
    (void)flags;
    if (id < 8 && k->body_len[id] + len < sizeof(k->body[id])) {
        memcpy(k->body[id] + k->body_len[id], d, len);
        k->body_len[id] += len;
    }
    return 0;
}

static int c_frame(nghttp2_session *ns, const nghttp2_frame *fr, void *ud)
{
    cli *k = ud;

    (void)ns;
    if (fr->hd.type == NGHTTP2_SETTINGS && !(fr->hd.flags & NGHTTP2_FLAG_ACK)) {
        k->settings = true;
        for (size_t i = 0; i < fr->settings.niv; i++) {
            if (fr->settings.iv[i].settings_id == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
                k->max_streams = fr->settings.iv[i].value;
            if (fr->settings.iv[i].settings_id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)
                k->window = fr->settings.iv[i].value;
            if (fr->settings.iv[i].settings_id == NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE)
                k->header_list = fr->settings.iv[i].value;
        }
    }
    return 0;
}

static int c_close(nghttp2_session *ns, int32_t id, uint32_t code, void *ud)
{
    cli *k = ud;

    (void)ns;
    if (id < 8) {
        k->closed[id] = true;
        k->reset[id] = code;
    }
    return 0;
}

static void cli_init(cli *k, bool upgrade)
{
    nghttp2_session_callbacks *cb;

    memset(k, 0, sizeof(*k));
    assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
    assert_int_equal(nghttp2_session_client_new(&k->ns, cb, k), 0);
    nghttp2_session_callbacks_del(cb);
    if (upgrade) {
        uint8_t set[64];
        ssize_t n = nghttp2_pack_settings_payload(set, sizeof(set), NULL, 0);
        assert_true(n >= 0);
        assert_int_equal(nghttp2_session_upgrade2(k->ns, set, (size_t)n, 0, NULL), 0);
    }
    assert_int_equal(nghttp2_submit_settings(k->ns, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

static void cli_request(cli *k, const char *method, const char *path, const char *xname,
                        size_t xlen)
{
    static char big[40000];
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)(uintptr_t)method, 7, strlen(method), 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"a", 10, 1, 0},
        {(uint8_t *)":path", (uint8_t *)(uintptr_t)path, 5, strlen(path), 0},
        {(uint8_t *)(uintptr_t)xname, (uint8_t *)big, xname ? strlen(xname) : 0, xlen, 0},
    };
    size_t n = xname ? 5 : 4;

    memset(big, 'v', sizeof(big));
    if (strcmp(method, "CONNECT") == 0) { /* no :scheme, no :path */
        nv[1] = nv[2];
        n = 2;
    }
    assert_true(nghttp2_submit_request(k->ns, NULL, nv, n, NULL, NULL) > 0);
}

static mm_proxy *new_proxy(const char *policies)
{
    mm_proxy_config cfg;
    mm_errbuf eb = {{0}};
    mm_proxy *p = NULL;

    mm_proxy_config_defaults(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.admin = "";
    cfg.upstream = "127.0.0.1:1";
    cfg.policies = policies;
    cfg.labels = "/nonexistent/labels";
    cfg.keys = "/nonexistent/keys";
    cfg.workers = 1;
    cfg.max_header = 2048;
    cfg.h2_max_streams = 7;
    cfg.h2_window = 32768;
    assert_int_equal(mm_proxy_new(&cfg, &p, &eb), MM_OK);
    return p;
}

/* Runs the client's bytes (after `h1`, an HTTP/1.1 head) through a connection of p and the
 * answer back into the client; returns the HTTP/1.1 bytes before the frames, if any. */
static void exchange(mm_proxy *p, cli *k, const char *h1, char *pre, size_t pre_max)
{
    worker *w = p->workers[0];
    int sv[2];
    conn *c;
    char buf[65536];
    const uint8_t *d;
    ssize_t n;
    bool sock = h1 != NULL; /* after an Upgrade head every frame goes over the socket */

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    w->now = mm_now_ns();
    assert_non_null(c = conn_new(w, sv[0]));
    if (h1)
        assert_int_equal(mm_buf_append(&c->in, h1, strlen(h1)), MM_OK);
    /* nghttp2's client session sends the preface (the magic) itself */
    while ((n = nghttp2_session_mem_send(k->ns, &d)) > 0) {
        if (sock)
            assert_int_equal(send(sv[1], d, (size_t)n, 0), n);
        else
            assert_int_equal(mm_buf_append(&c->in, d, (size_t)n), MM_OK);
    }
    client_process(c);
    assert_int_equal(c->st, CS_H2);
    for (int round = 0; round < 4; round++) {
        h2_client_event(c, EPOLLIN);
        if (c->fd >= 0 && c->st == CS_H2)
            h2_sync(c);
        while ((n = recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
            char *f = buf;
            if (pre && strncmp(buf, "HTTP/1.1", 8) == 0) {
                char *end = strstr(buf, "\r\n\r\n");
                assert_non_null(end);
                snprintf(pre, pre_max, "%.*s", (int)(end + 4 - buf), buf);
                f = end + 4;
                pre = NULL;
            }
            assert_true(nghttp2_session_mem_recv(k->ns, (uint8_t *)f, (size_t)(buf + n - f)) >= 0);
        }
        while ((n = nghttp2_session_mem_send(k->ns, &d)) > 0)
            assert_int_equal(send(sv[1], d, (size_t)n, 0), n);
    }
    conn_close(c);
    conn_free(c);
    free_dead_up(w);
    h2c_free_dead(w);
    close(sv[1]);
}

static void test_prior_knowledge_answers(void **state)
{
    mm_proxy *p = new_proxy("/nonexistent/policies.yaml"); /* unready: 503 */
    cli k;

    (void)state;
    cli_init(&k, false);
    cli_request(&k, "GET", "/json", NULL, 0);              /* stream 1: 503 */
    cli_request(&k, "GET", "/json", "x-big", 3000);        /* stream 3: 431 */
    cli_request(&k, "CONNECT", "", NULL, 0);               /* stream 5: 405 */
    exchange(p, &k, NULL, NULL, 0);
    assert_true(k.settings);
    assert_int_equal(k.max_streams, 7);
    assert_int_equal(k.window, 32768);
    assert_int_equal(k.header_list, 2048);
    assert_int_equal(k.status[1], 503);
    assert_non_null(strstr(k.body[1], "no valid configuration loaded"));
    assert_int_equal(k.status[3], 431);
    assert_int_equal(k.status[5], 405);
    for (int i = 1; i <= 5; i += 2)
        assert_true(k.closed[i]);
    nghttp2_session_del(k.ns);
    mm_proxy_free(p);
}

static void test_upgrade(void **state)
{
    mm_proxy *p = new_proxy("/nonexistent/policies.yaml");
    cli k;
    char pre[512] = "";

    (void)state;
    cli_init(&k, true);
    exchange(p, &k,
             "GET /json HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
             "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
             pre, sizeof(pre));
    assert_non_null(strstr(pre, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(pre, "Upgrade: h2c\r\n"));
    assert_int_equal(k.status[1], 503); /* the request was stream 1 */
    assert_true(k.closed[1]);
    nghttp2_session_del(k.ns);
    mm_proxy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nv_lowercase_and_pseudo),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_prior_knowledge_answers),
        cmocka_unit_test(test_upgrade),
    };
    mm_log_set_level(MM_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
