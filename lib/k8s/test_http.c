/* Unit tests for lib/k8s requests over real HTTP against a scripted local server (plain
 * HTTP on 127.0.0.1, one canned response per connection): list paging with the sample
 * pages and an expired continue token, plain-text and Status errors, Retry-After retries,
 * and watch streams delivered in small chunks through curl's write callback. The request
 * lines the client sent are checked too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "k8s/k8s.h"

#define SAMPLES "tests/k8s-samples/"
#define MAX_CANNED 8

typedef struct {
    int code;
    const char *content_type;
    const char *extra_headers; /* "Name: value\r\n"... or NULL */
    char *body;                /* owned (mm_free) */
    size_t len;
    size_t chunk;              /* >0: chunked transfer encoding in pieces of this size */
} canned;

typedef struct {
    int fd;
    int port;
    canned resp[MAX_CANNED];
    size_t n;
    char reqs[MAX_CANNED][2048]; /* request lines received */
    size_t nreqs;
    pthread_t thread;
} fake;

static char *sample(const char *name, size_t *len)
{
    char path[256], *t = NULL;
    snprintf(path, sizeof(path), SAMPLES "%s", name);
    if (mm_read_file(path, 1u << 22, &t, len, NULL) != MM_OK)
        fail_msg("cannot read %s", path);
    return t;
}

static void add(fake *f, int code, const char *ct, const char *hdrs, const char *file,
                const char *text, size_t chunk)
{
    canned *c = &f->resp[f->n++];
    c->code = code;
    c->content_type = ct;
    c->extra_headers = hdrs;
    c->chunk = chunk;
    if (file) {
        c->body = sample(file, &c->len);
    } else {
        c->len = text ? strlen(text) : 0;
        c->body = mm_strdup(text ? text : "");
    }
}

/* MSG_NOSIGNAL: a client that has stopped reading (a stopped informer, a timeout) closes the
 * connection; that must end this write, not the test process by SIGPIPE. */
static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void *serve(void *arg)
{
    fake *f = arg;
    for (size_t i = 0; i < f->n; i++) {
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[16384];
        size_t got = 0;
        char *end = NULL;
        while (got < sizeof(buf) - 1 && !end) {
            ssize_t r = read(c, buf + got, sizeof(buf) - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
            buf[got] = '\0';
            end = strstr(buf, "\r\n\r\n");
        }
        if (end) { /* drain a body announced by Content-Length */
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            long want = cl ? strtol(cl + 17, NULL, 10) : 0;
            long have = (long)(got - (size_t)(end + 4 - buf));
            while (have < want) {
                ssize_t r = read(c, buf, sizeof(buf));
                if (r <= 0)
                    break;
                have += r;
            }
        }
        size_t ll = strcspn(buf, "\r\n");
        snprintf(f->reqs[f->nreqs++], sizeof(f->reqs[0]), "%.*s", (int)ll, buf);

        canned *r = &f->resp[i];
        char head[1024];
        int hl = snprintf(head, sizeof(head),
                          "HTTP/1.1 %d X\r\nContent-Type: %s\r\nConnection: close\r\n%s", r->code,
                          r->content_type, r->extra_headers ? r->extra_headers : "");
        write_all(c, head, (size_t)hl);
        if (r->chunk) {
            write_all(c, "Transfer-Encoding: chunked\r\n\r\n", 30);
            for (size_t o = 0; o < r->len; o += r->chunk) {
                size_t n = r->len - o < r->chunk ? r->len - o : r->chunk;
                hl = snprintf(head, sizeof(head), "%zx\r\n", n);
                write_all(c, head, (size_t)hl);
                write_all(c, r->body + o, n);
                write_all(c, "\r\n", 2);
            }
            write_all(c, "0\r\n\r\n", 5);
        } else {
            hl = snprintf(head, sizeof(head), "Content-Length: %zu\r\n\r\n", r->len);
            write_all(c, head, (size_t)hl);
            write_all(c, r->body, r->len);
        }
        shutdown(c, SHUT_WR);
        while (read(c, buf, sizeof(buf)) > 0)
            ;
        close(c);
    }
    return NULL;
}

static void fake_start(fake *f)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->fd >= 0);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->fd, 8), 0);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
}

static void fake_stop(fake *f)
{
    shutdown(f->fd, SHUT_RDWR);
    close(f->fd);
    pthread_join(f->thread, NULL);
    for (size_t i = 0; i < f->n; i++)
        mm_free(f->resp[i].body);
}

static mm_k8s_client *client_limited(fake *f, mm_k8s_config **cfg, double qps, int burst)
{
    char kc[512];
    mm_k8s_client *cl = NULL;
    mm_errbuf eb = {{0}};
    snprintf(kc, sizeof(kc),
             "kind: Config\ncurrent-context: t\ncontexts: [{name: t, context: {cluster: c}}]\n"
             "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:%d'}}]\n",
             f->port);
    assert_int_equal(mm_k8s_config_parse_kubeconfig(kc, strlen(kc), NULL, NULL, cfg, &eb), MM_OK);
    mm_k8s_client_opts o = {.request_timeout_ms = 10000, .qps = qps, .burst = burst};
    assert_int_equal(mm_k8s_client_new(*cfg, &o, &cl, &eb), MM_OK);
    return cl;
}

static mm_k8s_client *client_for(fake *f, mm_k8s_config **cfg)
{
    return client_limited(f, cfg, 0, 0);
}

/* ---- lists ---------------------------------------------------------------------------- */

typedef struct {
    int n;
    char names[8][64];
} items;

static int on_item(void *ud, struct json_object *item)
{
    items *it = ud;
    struct json_object *meta, *name, *kind;
    if (!item) { /* the list starts over */
        it->n = 0;
        return 0;
    }
    if (it->n >= 8 || !json_object_object_get_ex(item, "metadata", &meta) ||
        !json_object_object_get_ex(meta, "name", &name))
        return 1;
    if (json_object_object_get_ex(item, "kind", &kind))
        return 1; /* built-in list items carry no kind (wire rule 2) */
    snprintf(it->names[it->n++], 64, "%s", json_object_get_string(name));
    return 0;
}

#define TOKEN1                                                                                     \
    "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDgyOTEzLCJzdGFydCI6InBheW1lbnRzLTdjOWQ4YjVmNGQtcXA5d3Jc" \
    "dTAwMDAifQ"

/* Serves the canned bodies (code, sample file) in order and lists pods of shop, 2 a page,
 * through mm_k8s_list_all; the items and the requests seen are left in *it and *f. */
static void list_pods(fake *f, const int *codes, const char *const *files, size_t n, items *it)
{
    mm_k8s_config *cfg = NULL;
    for (size_t i = 0; i < n; i++)
        add(f, codes[i], "application/json", NULL, files[i], NULL, 0);
    fake_start(f);
    mm_k8s_client *cl = client_for(f, &cfg);
    mm_k8s_ref pods = {.version = "v1", .resource = "pods", .ns = "shop"};
    mm_k8s_list_opts lo = {.limit = 2};
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    char *rv = NULL;
    if (mm_k8s_list_all(cl, &pods, &lo, on_item, it, &rv, &res, &eb) != MM_OK)
        fail_msg("list_all: %s", eb.msg);
    assert_string_equal(rv, "482913");
    mm_free(rv);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(cl);
    mm_k8s_config_free(cfg);
    fake_stop(f);
}

#define PAGE1 "list-pods.json"
#define PAGE2 "list-pods-page2.json"
#define GONE "status-410-gone-list.json"
#define LIST_PAGE1 "GET /api/v1/namespaces/shop/pods?limit=2 HTTP/1.1"
#define LIST_PAGE2 "GET /api/v1/namespaces/shop/pods?limit=2&continue=" TOKEN1 " HTTP/1.1"

static void test_list_all_pages(void **state)
{
    MM_UNUSED(state);
    fake f = {0};
    items it = {0};
    list_pods(&f, (int[]){200, 200}, (const char *[]){PAGE1, PAGE2}, 2, &it);
    assert_int_equal(it.n, 3);
    assert_string_equal(it.names[0], "payments-7c9d8b5f4d-m4tzn");
    assert_string_equal(it.names[2], "payments-7c9d8b5f4d-x8k2q");
    assert_int_equal(f.nreqs, 2);
    assert_string_equal(f.reqs[0], LIST_PAGE1);
    assert_string_equal(f.reqs[1], LIST_PAGE2);
}

/* An expired continue token (410) restarts the list from the first page, still paged; the
 * items handed before the restart are taken back (item_fn hears NULL). */
static void test_list_all_expired_continue(void **state)
{
    MM_UNUSED(state);
    fake f = {0};
    items it = {0};
    list_pods(&f, (int[]){200, 410, 200, 200}, (const char *[]){PAGE1, GONE, PAGE1, PAGE2}, 4, &it);
    assert_int_equal(f.nreqs, 4);
    assert_string_equal(f.reqs[2], LIST_PAGE1);
    assert_string_equal(f.reqs[3], LIST_PAGE2);
    assert_int_equal(it.n, 3); /* not 5: the first pass was taken back */
    assert_string_equal(it.names[0], "payments-7c9d8b5f4d-m4tzn");
}

/* Expired again on the paged restart: one unpaged read, as client-go's pager falls back to. */
static void test_list_all_expired_twice(void **state)
{
    MM_UNUSED(state);
    fake f = {0};
    items it = {0};
    list_pods(&f, (int[]){200, 410, 200, 410, 200},
              (const char *[]){PAGE1, GONE, PAGE1, GONE, PAGE2}, 5, &it);
    assert_int_equal(f.nreqs, 5);
    assert_string_equal(f.reqs[4], "GET /api/v1/namespaces/shop/pods HTTP/1.1");
    assert_int_equal(it.n, 1);
    assert_string_equal(it.names[0], "payments-7c9d8b5f4d-x8k2q");
}

/* ---- errors and retries ------------------------------------------------------------------ */

static void test_errors_and_retries(void **state)
{
    MM_UNUSED(state);
    fake f = {0};
    mm_k8s_config *cfg = NULL;
    add(&f, 404, "text/plain; charset=utf-8", NULL, NULL, "404 page not found\n", 0);
    add(&f, 429, "text/plain; charset=utf-8", "Retry-After: 0\r\n", NULL,
        "Too many requests, please try again later.\n", 0);
    add(&f, 503, "application/json", "Retry-After: 0\r\n", NULL,
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
        "\"reason\":\"ServiceUnavailable\",\"code\":503}",
        0);
    add(&f, 200, "application/json", "Warning: 299 - \"deprecated thing\"\r\n", "lease.json", NULL, 0);
    add(&f, 429, "application/json", NULL, "status-429.json", NULL, 0); /* no header: no retry */
    add(&f, 409, "application/json", NULL, "status-409-conflict.json", NULL, 0);
    fake_start(&f);
    mm_k8s_client *cl = client_for(&f, &cfg);
    mm_k8s_ref mp = {.group = "maskmesh.io", .version = "v1alpha1", .resource = "maskingpolicies",
                     .ns = "shop", .name = "payments-api"};
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};

    assert_int_equal(mm_k8s_get(cl, &mp, &res, &eb), MM_ENOTFOUND);
    assert_int_equal(res.http_code, 404);
    assert_string_equal(res.status.message, "404 page not found");
    assert_non_null(strstr(eb.msg, "GET /apis/maskmesh.io/v1alpha1/namespaces/shop/"
                                   "maskingpolicies/payments-api: 404"));

    /* APF text 429 then a Status 503, each with Retry-After: retried, then the lease */
    mm_k8s_ref lease = {.group = "coordination.k8s.io", .version = "v1", .resource = "leases",
                        .ns = "maskmesh", .name = "maskmesh-controller-leader"};
    if (mm_k8s_get(cl, &lease, &res, &eb) != MM_OK)
        fail_msg("get lease: %s", eb.msg);
    assert_int_equal(res.retries, 2);
    assert_int_equal(res.http_code, 200);
    assert_int_equal(res.nwarnings, 1);
    assert_string_equal(res.warnings[0], "deprecated thing");
    mm_k8s_lease_spec spec;
    assert_int_equal(mm_k8s_lease_spec_from_json(res.body, &spec, &eb), MM_OK);
    assert_int_equal(spec.lease_duration_s, 15);
    assert_int_equal(spec.transitions, 3);
    char mt[MM_K8S_MICROTIME_LEN + 1];
    mm_k8s_format_microtime(spec.renew_us, mt);
    assert_string_equal(mt, "2026-07-20T10:21:45.093210Z");
    mm_free(spec.holder);

    /* a Status 429 without the header is not retried; retryAfterSeconds is still reported */
    assert_int_equal(mm_k8s_get(cl, &lease, &res, &eb), MM_EHTTP);
    assert_int_equal(res.retries, 0);
    assert_int_equal(res.status.code, 429);
    assert_int_equal(res.status.retry_after_s, 1);

    struct json_object *obj = json_tokener_parse("{\"metadata\":{\"name\":\"payments-api\","
                                                 "\"resourceVersion\":\"1\"}}");
    assert_int_equal(mm_k8s_update(cl, &mp, obj, NULL, &res, &eb), MM_ECONFLICT);
    assert_string_equal(res.status.reason, "Conflict");
    assert_string_equal(f.reqs[5], "PUT /apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies/"
                                   "payments-api HTTP/1.1");
    json_object_put(obj);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(cl);
    mm_k8s_config_free(cfg);
    fake_stop(&f);
}

/* The client's rate limit (qps 20, burst 2): the first two requests go at once, each of the
 * next four waits its 50 ms, as client-go's token bucket spaces them. */
static void test_rate_limit(void **state)
{
    MM_UNUSED(state);
    fake f = {0};
    mm_k8s_config *cfg = NULL;
    for (int i = 0; i < 6; i++)
        add(&f, 200, "application/json", NULL, "lease.json", NULL, 0);
    fake_start(&f);
    mm_k8s_client *cl = client_limited(&f, &cfg, 20, 2);
    mm_k8s_ref lease = {.group = "coordination.k8s.io", .version = "v1", .resource = "leases",
                        .ns = "maskmesh", .name = "maskmesh-controller-leader"};
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    uint64_t t0 = mm_now_ns(), after_burst = 0;
    for (int i = 0; i < 6; i++) {
        if (mm_k8s_get(cl, &lease, &res, &eb) != MM_OK)
            fail_msg("get %d: %s", i, eb.msg);
        if (i == 1)
            after_burst = mm_now_ns() - t0;
    }
    uint64_t all = mm_now_ns() - t0;
    assert_true(after_burst < 45000000ull); /* the burst waits for no token */
    assert_true(all >= 190000000ull);       /* 4 tokens at 20 a second: 200 ms, less rounding */
    assert_int_equal(f.nreqs, 6);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(cl);
    mm_k8s_config_free(cfg);
    fake_stop(&f);
}

/* ---- watch ---------------------------------------------------------------------------------- */

typedef struct {
    char types[16];
    size_t n;
} evs;

static int on_event(void *ud, const mm_k8s_event *ev)
{
    evs *e = ud;
    if (e->n < sizeof(e->types) - 1)
        e->types[e->n++] = "AMDBE"[ev->type];
    return 0;
}

static void test_watch_stream(void **state)
{
    MM_UNUSED(state);
    fake f = {0};
    mm_k8s_config *cfg = NULL;
    add(&f, 200, "application/json", NULL, "watch-maskingpolicies.ndjson", NULL, 7);
    add(&f, 200, "application/json", NULL, "watch-expired.ndjson", NULL, 100);
    add(&f, 410, "application/json", NULL, "status-410-gone-list-rv.json", NULL, 0);
    fake_start(&f);
    mm_k8s_client *cl = client_for(&f, &cfg);
    mm_k8s_ref mps = {.group = "maskmesh.io", .version = "v1alpha1", .resource = "maskingpolicies"};
    mm_k8s_watch_opts wo = {.resource_version = "481501", .allow_bookmarks = true,
                            .timeout_seconds = 30};
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    evs e = {{0}, 0};

    if (mm_k8s_watch(cl, &mps, &wo, on_event, &e, &res, &eb) != MM_OK)
        fail_msg("watch: %s", eb.msg);
    assert_string_equal(e.types, "AMBMMD");
    assert_string_equal(f.reqs[0], "GET /apis/maskmesh.io/v1alpha1/maskingpolicies?watch=1&"
                                   "resourceVersion=481501&allowWatchBookmarks=true&"
                                   "timeoutSeconds=30 HTTP/1.1");
    /* 200 + ERROR event: the event reaches the callback */
    memset(&e, 0, sizeof(e));
    assert_int_equal(mm_k8s_watch(cl, &mps, &wo, on_event, &e, &res, &eb), MM_OK);
    assert_string_equal(e.types, "E");
    /* an HTTP 410 is MM_EGONE */
    memset(&e, 0, sizeof(e));
    assert_int_equal(mm_k8s_watch(cl, &mps, &wo, on_event, &e, &res, &eb), MM_EGONE);
    assert_int_equal(res.status.code, 410);
    assert_int_equal(e.n, 0);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(cl);
    mm_k8s_config_free(cfg);
    fake_stop(&f);
}

/* ---- informer ------------------------------------------------------------------------------- */

typedef struct {
    int adds, updates, deletes;
} hcount;

static void h_add(void *ud, struct json_object *o)
{
    MM_UNUSED(o);
    ((hcount *)ud)->adds++;
}
static void h_update(void *ud, struct json_object *a, struct json_object *b)
{
    MM_UNUSED(a);
    MM_UNUSED(b);
    ((hcount *)ud)->updates++;
}
static void h_delete(void *ud, struct json_object *o)
{
    MM_UNUSED(o);
    ((hcount *)ud)->deletes++;
}

/* An informer on pods of shop (2 a page) over the fake, which serves what was add()ed to t.f. */
typedef struct {
    fake f;
    mm_k8s_config *cfg;
    mm_k8s_client *cl;
    hcount hc;
    mm_k8s_informer *inf;
} informer_test;

static void informer_start(informer_test *t)
{
    static const mm_k8s_ref pods = {.version = "v1", .resource = "pods", .ns = "shop"};
    mm_k8s_informer_opts io = {.page_size = 2, .watch_timeout_s = 30};
    mm_k8s_handlers h = {h_add, h_update, h_delete, &t->hc};
    mm_errbuf eb = {{0}};
    fake_start(&t->f);
    t->cl = client_for(&t->f, &t->cfg);
    if (mm_k8s_informer_new(t->cl, &pods, &io, &h, &t->inf, &eb) != MM_OK)
        fail_msg("informer_new: %s", eb.msg);
}

static void informer_stop(informer_test *t)
{
    mm_k8s_informer_free(t->inf);
    mm_k8s_client_free(t->cl);
    mm_k8s_config_free(t->cfg);
    fake_stop(&t->f);
}

/* An ERROR event whose Status says reason "Gone" (older servers) is still a 410: the
 * informer relists, matched by code. The relist's new objects reach on_add, the unchanged
 * one (same resourceVersion) no handler. */
static void test_informer_gone_by_code(void **state)
{
    MM_UNUSED(state);
    informer_test t = {0};
    add(&t.f, 200, "application/json", NULL, "list-pods-page2.json", NULL, 0);
    add(&t.f, 200, "application/json", NULL, NULL,
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
        "\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old resource version\","
        "\"reason\":\"Gone\",\"code\":410}}\n",
        5);
    add(&t.f, 200, "application/json", NULL, "list-pods.json", NULL, 0);
    add(&t.f, 200, "application/json", NULL, "list-pods-page2.json", NULL, 0);
    informer_start(&t);
    mm_k8s_informer *inf = t.inf;
    mm_errbuf eb = {{0}};
    long delay = -1;

    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_OK);
    assert_true(mm_k8s_informer_synced(inf));
    assert_int_equal(t.hc.adds, 1);
    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_EGONE);
    assert_string_equal(t.f.reqs[1], "GET /api/v1/namespaces/shop/pods?watch=1&resourceVersion=482913"
                                     "&allowWatchBookmarks=true&timeoutSeconds=30 HTTP/1.1");
    mm_k8s_informer_stats st;
    mm_k8s_informer_get_stats(inf, &st);
    assert_int_equal(st.relists_410, 1);
    assert_null(mm_k8s_informer_resource_version(inf)); /* the next step lists */
    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_OK);
    assert_int_equal(t.f.nreqs, 4);
    assert_int_equal(t.hc.adds, 3);
    assert_int_equal(t.hc.updates, 0);
    assert_int_equal(t.hc.deletes, 0);
    assert_int_equal(mm_k8s_informer_count(inf), 3);
    struct json_object *o = mm_k8s_informer_get(inf, "shop", "payments-7c9d8b5f4d-qp9wr");
    assert_non_null(o);
    json_object_put(o);
    informer_stop(&t);
}

/* A list whose continue token expires restarts; the informer's store holds only what the
 * restarted list said: objects of the first pass that are gone do not stay as ghosts. */
static void test_informer_list_restart_forgets(void **state)
{
    MM_UNUSED(state);
    informer_test t = {0};
    add(&t.f, 200, "application/json", NULL, "list-pods.json", NULL, 0);
    add(&t.f, 410, "application/json", NULL, "status-410-gone-list.json", NULL, 0);
    add(&t.f, 200, "application/json", NULL, "list-pods-page2.json", NULL, 0); /* the rest went */
    informer_start(&t);
    mm_k8s_informer *inf = t.inf;
    mm_errbuf eb = {{0}};
    long delay = -1;
    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_OK);
    assert_int_equal(t.f.nreqs, 3);
    assert_int_equal(mm_k8s_informer_count(inf), 1);
    assert_int_equal(t.hc.adds, 1);
    assert_null(mm_k8s_informer_get(inf, "shop", "payments-7c9d8b5f4d-m4tzn"));
    struct json_object *o = mm_k8s_informer_get(inf, "shop", "payments-7c9d8b5f4d-x8k2q");
    assert_non_null(o);
    json_object_put(o);
    informer_stop(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_all_pages),
        cmocka_unit_test(test_list_all_expired_continue),
        cmocka_unit_test(test_list_all_expired_twice),
        cmocka_unit_test(test_errors_and_retries),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_watch_stream),
        cmocka_unit_test(test_informer_gone_by_code),
        cmocka_unit_test(test_informer_list_restart_forgets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
