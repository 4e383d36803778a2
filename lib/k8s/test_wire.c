/* Unit tests for lib/k8s wire handling: URL building and escaping, Status parsing of every
 * status-*.json sample, watch framing of the .ndjson samples split at every byte, list
 * parsing of the pod list pages, and allocation failures inside the framing. Run from the
 * top of the tree: the samples are read from ../shared/k8s-samples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/k8s.h"

#define SAMPLES "../shared/k8s-samples/"

static char *slurp(const char *name, size_t *len)
{
    char path[256];
    char *text = NULL;
    size_t n = 0;
    mm_errbuf eb = {{0}};
    snprintf(path, sizeof(path), SAMPLES "%s", name);
    if (mm_read_file(path, 1u << 22, &text, &n, &eb) != MM_OK)
        fail_msg("cannot read sample %s: %s", path, eb.msg);
    if (len)
        *len = n;
    return text;
}

static struct json_object *parse_sample(const char *name)
{
    size_t n;
    char *t = slurp(name, &n);
    struct json_object *o = json_tokener_parse(t);
    mm_free(t);
    if (!o)
        fail_msg("sample %s is not JSON", name);
    return o;
}

/* ---- URLs ------------------------------------------------------------------------------- */

static void test_url_core_and_group(void **state)
{
    MM_UNUSED(state);
    char *url = NULL;
    mm_errbuf eb = {{0}};
    mm_k8s_ref pods = {.version = "v1", .resource = "pods", .ns = "shop"};
    assert_int_equal(mm_k8s_build_url("https://h:6443", &pods, NULL, &url, &eb), MM_OK);
    assert_string_equal(url, "https://h:6443/api/v1/namespaces/shop/pods");
    mm_free(url);

    mm_k8s_ref mp = {.group = "maskmesh.io", .version = "v1alpha1", .resource = "maskingpolicies",
                     .ns = "shop", .name = "payments-api", .subresource = "status"};
    assert_int_equal(mm_k8s_build_url("https://h/prefix", &mp, NULL, &url, &eb), MM_OK);
    assert_string_equal(url, "https://h/prefix/apis/maskmesh.io/v1alpha1/namespaces/shop/"
                             "maskingpolicies/payments-api/status");
    mm_free(url);

    mm_k8s_ref cluster = {.group = "admissionregistration.k8s.io", .version = "v1",
                          .resource = "mutatingwebhookconfigurations"};
    assert_int_equal(mm_k8s_build_url("http://h", &cluster, NULL, &url, &eb), MM_OK);
    assert_string_equal(url, "http://h/apis/admissionregistration.k8s.io/v1/"
                             "mutatingwebhookconfigurations");
    mm_free(url);
}

static void test_url_escaping(void **state)
{
    MM_UNUSED(state);
    char *url = NULL;
    mm_errbuf eb = {{0}};
    mm_k8s_ref r = {.version = "v1", .resource = "configmaps", .ns = "a b", .name = "x/y?z#%"};
    const char *q[] = {"labelSelector", "app in (a,b),tier!=db", "fieldSelector", NULL,
                       "continue", "eyJ2Ijo+/=", "resourceVersion", "481501", NULL};
    assert_int_equal(mm_k8s_build_url("https://h", &r, q, &url, &eb), MM_OK);
    assert_string_equal(url, "https://h/api/v1/namespaces/a%20b/configmaps/x%2Fy%3Fz%23%25"
                             "?labelSelector=app%20in%20%28a%2Cb%29%2Ctier%21%3Ddb"
                             "&continue=eyJ2Ijo%2B%2F%3D&resourceVersion=481501");
    mm_free(url);

    /* UTF-8 bytes are escaped byte by byte */
    mm_buf b;
    mm_buf_init(&b, 0);
    assert_int_equal(mm_k8s_escape(&b, "\xc3\xa9-._~"), MM_OK);
    assert_string_equal(mm_buf_cstr(&b), "%C3%A9-._~");
    mm_buf_free(&b);
}

static void test_url_rejects(void **state)
{
    MM_UNUSED(state);
    char *url = NULL;
    mm_errbuf eb = {{0}};
    mm_k8s_ref dot = {.version = "v1", .resource = "pods", .ns = "shop", .name = ".."};
    assert_int_equal(mm_k8s_build_url("https://h", &dot, NULL, &url, &eb), MM_EINVAL);
    assert_null(url);
    assert_non_null(strstr(eb.msg, "name"));
    mm_k8s_ref empty = {.version = "v1", .resource = "pods", .ns = "shop", .name = ""};
    assert_int_equal(mm_k8s_build_url("https://h", &empty, NULL, &url, &eb), MM_EINVAL);
    mm_k8s_ref nover = {.resource = "pods"};
    assert_int_equal(mm_k8s_build_url("https://h", &nover, NULL, &url, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "version"));
    mm_k8s_ref sub = {.version = "v1", .resource = "pods", .subresource = "status"};
    assert_int_equal(mm_k8s_build_url("https://h", &sub, NULL, &url, &eb), MM_EINVAL);

    /* no fixed buffer: a long name grows the URL; past MM_K8S_URL_MAX it is an error */
    size_t n = MM_K8S_URL_MAX + 10;
    char *big = mm_malloc(n + 1);
    assert_non_null(big);
    memset(big, 'a', n);
    big[n] = '\0';
    mm_k8s_ref longr = {.version = "v1", .resource = "pods", .name = big};
    assert_int_equal(mm_k8s_build_url("https://h", &longr, NULL, &url, &eb), MM_ELIMIT);
    assert_null(url);
    big[4000] = '\0';
    assert_int_equal(mm_k8s_build_url("https://h", &longr, NULL, &url, &eb), MM_OK);
    assert_int_equal(strlen(url), strlen("https://h/api/v1/pods/") + 4000);
    mm_free(url);
    mm_free(big);
}

/* ---- Status ------------------------------------------------------------------------------ */

static const struct {
    const char *file;
    int code;
    const char *reason;
    mm_err err;
    const char *kind, *name;
    long retry_after;
    size_t ncauses;
    bool has_continue;
} statuses[] = {
    {"status-401.json", 401, "Unauthorized", MM_EHTTP, NULL, NULL, 0, 0, false},
    {"status-403-forbidden.json", 403, "Forbidden", MM_EHTTP, "configmaps", "maskmesh-policies", 0,
     0, false},
    {"status-404.json", 404, "NotFound", MM_ENOTFOUND, "maskingpolicies", "payments-api", 0, 0,
     false},
    {"status-409-conflict.json", 409, "Conflict", MM_ECONFLICT, "maskingpolicies", "payments-api",
     0, 0, false},
    {"status-410-gone-list-rv.json", 410, "Expired", MM_EGONE, NULL, NULL, 0, 0, false},
    {"status-410-gone-list.json", 410, "Expired", MM_EGONE, NULL, NULL, 0, 0, true},
    {"status-415-smp-on-cr.json", 415, "UnsupportedMediaType", MM_EHTTP, NULL, NULL, 0, 0, false},
    {"status-422-invalid.json", 422, "Invalid", MM_EHTTP, "MaskingPolicy", "payments-api", 0, 3,
     false},
    {"status-429.json", 429, "TooManyRequests", MM_EHTTP, NULL, NULL, 1, 0, false},
};

static void test_status_samples(void **state)
{
    MM_UNUSED(state);
    for (size_t i = 0; i < MM_ARRAY_LEN(statuses); i++) {
        struct json_object *o = parse_sample(statuses[i].file);
        mm_k8s_status st;
        mm_errbuf eb = {{0}};
        if (mm_k8s_status_from_json(o, &st, &eb) != MM_OK)
            fail_msg("%s: %s", statuses[i].file, eb.msg);
        assert_int_equal(st.code, statuses[i].code);
        assert_string_equal(st.reason, statuses[i].reason);
        assert_string_equal(st.status, "Failure");
        assert_true(strlen(st.message) > 0);
        assert_int_equal(mm_k8s_status_err(&st), statuses[i].err);
        if (statuses[i].kind)
            assert_string_equal(st.details_kind, statuses[i].kind);
        else
            assert_null(st.details_kind);
        if (statuses[i].name)
            assert_string_equal(st.details_name, statuses[i].name);
        assert_int_equal(st.retry_after_s, statuses[i].retry_after);
        assert_int_equal(st.ncauses, statuses[i].ncauses);
        assert_int_equal(st.continue_token != NULL, statuses[i].has_continue);
        mm_k8s_status_clear(&st);

        /* the same through the whole-body path, as a request sees it */
        size_t len;
        char *body = slurp(statuses[i].file, &len);
        mm_k8s_status_from_body(statuses[i].code, body, len, -1, &st);
        assert_int_equal(st.code, statuses[i].code);
        assert_string_equal(st.reason, statuses[i].reason);
        assert_int_equal(mm_k8s_status_err(&st), statuses[i].err);
        mm_k8s_status_clear(&st);
        mm_free(body);
        json_object_put(o);
    }
}

static void test_status_422_causes(void **state)
{
    MM_UNUSED(state);
    struct json_object *o = parse_sample("status-422-invalid.json");
    mm_k8s_status st;
    assert_int_equal(mm_k8s_status_from_json(o, &st, NULL), MM_OK);
    assert_string_equal(st.details_group, "maskmesh.io");
    assert_string_equal(st.causes[0].reason, "FieldValueNotSupported");
    assert_string_equal(st.causes[0].field, "spec.rules[0].action.type");
    assert_string_equal(st.causes[1].field, "spec.port");
    assert_string_equal(st.causes[2].reason, "FieldValueRequired");
    assert_string_equal(st.causes[2].message, "Required value");
    mm_k8s_status_clear(&st);
    json_object_put(o);

    /* the 410 on an expired continue carries a fresh token, opaque */
    o = parse_sample("status-410-gone-list.json");
    assert_int_equal(mm_k8s_status_from_json(o, &st, NULL), MM_OK);
    assert_string_equal(st.continue_token, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0IjoicG"
                                           "F5bWVudHMtN2M5ZDhiNWY0ZC1xcDl3clx1MDAwMCJ9");
    mm_k8s_status_clear(&st);
    json_object_put(o);
}

static void test_status_text_bodies(void **state)
{
    MM_UNUSED(state);
    mm_k8s_status st;
    const char *nf = "404 page not found\n";
    mm_k8s_status_from_body(404, nf, strlen(nf), -1, &st);
    assert_int_equal(st.code, 404);
    assert_string_equal(st.reason, "NotFound");
    assert_string_equal(st.message, "404 page not found");
    assert_int_equal(mm_k8s_status_err(&st), MM_ENOTFOUND);
    mm_k8s_status_clear(&st);

    const char *apf = "Too many requests, please try again later.\n";
    mm_k8s_status_from_body(429, apf, strlen(apf), 3, &st);
    assert_int_equal(st.code, 429);
    assert_string_equal(st.reason, "TooManyRequests");
    assert_string_equal(st.message, "Too many requests, please try again later.");
    assert_int_equal(st.retry_after_s, 3);
    assert_int_equal(mm_k8s_status_err(&st), MM_EHTTP);
    mm_k8s_status_clear(&st);

    /* JSON that is not a Status, and an empty body */
    const char *js = "{\"kind\":\"Pod\"}";
    mm_k8s_status_from_body(500, js, strlen(js), -1, &st);
    assert_int_equal(st.code, 500);
    assert_string_equal(st.reason, "InternalError");
    mm_k8s_status_clear(&st);
    mm_k8s_status_from_body(503, "", 0, -1, &st);
    assert_int_equal(st.code, 503);
    assert_string_equal(st.message, "");
    mm_k8s_status_clear(&st);

    /* a Status whose code differs from the HTTP code keeps its own; a missing one takes it */
    const char *nocode = "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"Gone\"}";
    mm_k8s_status_from_body(410, nocode, strlen(nocode), -1, &st);
    assert_int_equal(st.code, 410);
    assert_int_equal(mm_k8s_status_err(&st), MM_EGONE);
    mm_k8s_status_clear(&st);

    /* wrong types are parse errors naming the field */
    struct json_object *bad = json_tokener_parse("{\"kind\":\"Status\",\"code\":\"410\"}");
    mm_errbuf eb = {{0}};
    assert_int_equal(mm_k8s_status_from_json(bad, &st, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "code"));
    json_object_put(bad);
    bad = json_tokener_parse("{\"kind\":\"Status\",\"details\":{\"causes\":[1]}}");
    assert_int_equal(mm_k8s_status_from_json(bad, &st, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "details.causes[0]"));
    json_object_put(bad);
}

/* ---- watch framing ------------------------------------------------------------------------ */

typedef struct {
    char types[32];   /* one letter per event: A M D B E */
    char rvs[32][24]; /* metadata.resourceVersion of each */
    int ncodes;
    int codes[4];     /* Status codes of ERROR events */
    size_t n;
    size_t stop_after; /* 0: never stop */
} seen;

static int collect(void *ud, const mm_k8s_event *ev)
{
    seen *s = ud;
    static const char letters[] = "AMDBE";
    if (s->n >= 31)
        return 1;
    s->types[s->n] = letters[ev->type];
    s->types[s->n + 1] = '\0';
    struct json_object *meta, *rv;
    const char *v = "";
    if (json_object_object_get_ex(ev->object, "metadata", &meta) &&
        json_object_object_get_ex(meta, "resourceVersion", &rv))
        v = json_object_get_string(rv);
    snprintf(s->rvs[s->n], sizeof(s->rvs[s->n]), "%s", v);
    if (ev->type == MM_K8S_ERROR) {
        mm_k8s_status st;
        if (mm_k8s_status_from_json(ev->object, &st, NULL) == MM_OK && s->ncodes < 4)
            s->codes[s->ncodes++] = st.code;
        mm_k8s_status_clear(&st);
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static void feed_split(const char *data, size_t len, size_t split, seen *s)
{
    mm_k8s_watch_decoder *d = NULL;
    mm_errbuf eb = {{0}};
    bool stopped = false;
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    if (mm_k8s_watch_decoder_feed(d, data, split, collect, s, &stopped, &eb) != MM_OK)
        fail_msg("split %zu, first part: %s", split, eb.msg);
    if (!stopped &&
        mm_k8s_watch_decoder_feed(d, data + split, len - split, collect, s, &stopped, &eb) != MM_OK)
        fail_msg("split %zu, second part: %s", split, eb.msg);
    if (!stopped)
        assert_int_equal(mm_k8s_watch_decoder_finish(d, &eb), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_events(d), s->n);
    mm_k8s_watch_decoder_free(d);
}

static void check_every_split(const char *file, const char *types, const char *const *rvs)
{
    size_t len;
    char *data = slurp(file, &len);
    for (size_t split = 0; split <= len; split++) {
        seen s;
        memset(&s, 0, sizeof(s));
        feed_split(data, len, split, &s);
        if (strcmp(s.types, types) != 0)
            fail_msg("%s split at %zu: events %s, want %s", file, split, s.types, types);
        for (size_t i = 0; rvs && rvs[i]; i++)
            assert_string_equal(s.rvs[i], rvs[i]);
    }
    /* one byte at a time */
    mm_k8s_watch_decoder *d = NULL;
    seen s;
    bool stopped;
    memset(&s, 0, sizeof(s));
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(mm_k8s_watch_decoder_feed(d, data + i, 1, collect, &s, &stopped, NULL),
                         MM_OK);
    assert_string_equal(s.types, types);
    mm_k8s_watch_decoder_free(d);
    mm_free(data);
}

static void test_watch_maskingpolicies(void **state)
{
    MM_UNUSED(state);
    static const char *const rvs[] = {"481502", "481503", "482950", "483118", "483120", "483377",
                                      NULL};
    check_every_split("watch-maskingpolicies.ndjson", "AMBMMD", rvs);
}

static void test_watch_list(void **state)
{
    MM_UNUSED(state);
    static const char *const rvs[] = {"483120", "483200", NULL};
    check_every_split("watch-list-maskingpolicies.ndjson", "AB", rvs);
}

static void test_watch_expired(void **state)
{
    MM_UNUSED(state);
    check_every_split("watch-expired.ndjson", "E", NULL);
    size_t len;
    char *data = slurp("watch-expired.ndjson", &len);
    seen s;
    memset(&s, 0, sizeof(s));
    feed_split(data, len, len / 2, &s);
    assert_int_equal(s.ncodes, 1);
    assert_int_equal(s.codes[0], 410);
    mm_free(data);

    /* an older server's reason "Gone" is the same condition: matched by code */
    const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                       "\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old\","
                       "\"reason\":\"Gone\",\"code\":410}}\n";
    memset(&s, 0, sizeof(s));
    feed_split(gone, strlen(gone), 7, &s);
    assert_string_equal(s.types, "E");
    assert_int_equal(s.codes[0], 410);
}

static void test_watch_errors(void **state)
{
    MM_UNUSED(state);
    mm_k8s_watch_decoder *d = NULL;
    mm_errbuf eb = {{0}};
    bool stopped;
    seen s;

    /* a line longer than the bound is MM_ELIMIT, whatever the chunking */
    memset(&s, 0, sizeof(s));
    assert_int_equal(mm_k8s_watch_decoder_new(64, &d), MM_OK);
    char big[100];
    memset(big, ' ', sizeof(big));
    assert_int_equal(mm_k8s_watch_decoder_feed(d, big, 40, collect, &s, &stopped, &eb), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, big, 40, collect, &s, &stopped, &eb), MM_ELIMIT);
    assert_non_null(strstr(eb.msg, "longer than 64"));
    mm_k8s_watch_decoder_free(d);

    /* not an event: names the index */
    const char *two = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":\"1\"}}}\n"
                      "{\"type\":\"FROB\",\"object\":{}}\n";
    memset(&s, 0, sizeof(s));
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, two, strlen(two), collect, &s, &stopped, &eb),
                     MM_EPARSE);
    assert_non_null(strstr(eb.msg, "watch event 1"));
    assert_string_equal(s.types, "A");
    mm_k8s_watch_decoder_free(d);

    static const char *const bad[] = {"[1]\n", "{\"type\":\"ADDED\"}\n",
                                      "{\"type\":\"ADDED\",\"object\":[]}\n",
                                      "{\"type\":1,\"object\":{}}\n", "{\"type\":\"ADDED\",\n"};
    for (size_t i = 0; i < MM_ARRAY_LEN(bad); i++) {
        assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
        assert_int_equal(mm_k8s_watch_decoder_feed(d, bad[i], strlen(bad[i]), collect, &s,
                                                   &stopped, &eb),
                         MM_EPARSE);
        mm_k8s_watch_decoder_free(d);
    }

    /* a stream cut inside an event */
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, "{\"type\":", 8, collect, &s, &stopped, &eb),
                     MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_finish(d, &eb), MM_EIO);
    mm_k8s_watch_decoder_free(d);

    /* the callback stops the stream after the second event */
    size_t len;
    char *data = slurp("watch-maskingpolicies.ndjson", &len);
    memset(&s, 0, sizeof(s));
    s.stop_after = 2;
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, data, len, collect, &s, &stopped, &eb), MM_OK);
    assert_true(stopped);
    assert_int_equal(s.n, 2);
    mm_k8s_watch_decoder_free(d);
    mm_free(data);
}

/* Every allocation in turn fails: the decoder reports MM_ENOMEM (or succeeds), never crashes
 * or leaks (ASan and valgrind runs check the leaks). */
static void test_watch_alloc_failures(void **state)
{
    MM_UNUSED(state);
    size_t len;
    char *data = slurp("watch-maskingpolicies.ndjson", &len);
    bool completed = false;
    for (long n = 0; n < 100000 && !completed; n++) {
        mm_k8s_watch_decoder *d = NULL;
        seen s;
        bool stopped = false;
        mm_errbuf eb = {{0}};
        memset(&s, 0, sizeof(s));
        mm_alloc_fail_after(n);
        mm_err rc = mm_k8s_watch_decoder_new(0, &d);
        if (rc == MM_OK) {
            rc = mm_k8s_watch_decoder_feed(d, data, len / 3, collect, &s, &stopped, &eb);
            if (rc == MM_OK)
                rc = mm_k8s_watch_decoder_feed(d, data + len / 3, len - len / 3, collect, &s,
                                               &stopped, &eb);
        }
        mm_alloc_fail_after(-1);
        if (rc == MM_OK) {
            assert_string_equal(s.types, "AMBMMD");
            completed = true;
        } else if (rc != MM_ENOMEM && rc != MM_EPARSE) {
            fail_msg("allocation %ld failing gave %s: %s", n, mm_strerror(rc), eb.msg);
        }
        mm_k8s_watch_decoder_free(d);
    }
    assert_true(completed);
    mm_free(data);
}

/* ---- lists -------------------------------------------------------------------------------- */

static void test_list_pages(void **state)
{
    MM_UNUSED(state);
    struct json_object *p1 = parse_sample("list-pods.json"), *p2 = parse_sample("list-pods-page2.json");
    struct json_object *meta, *items, *v;

    assert_true(json_object_object_get_ex(p1, "metadata", &meta));
    assert_true(json_object_object_get_ex(meta, "continue", &v));
    const char *cont = json_object_get_string(v);
    assert_true(strlen(cont) > 20);
    assert_true(json_object_object_get_ex(p1, "items", &items));
    assert_int_equal(json_object_array_length(items), 2);
    /* items of built-in kinds carry no kind (wire rule 2) */
    assert_false(json_object_object_get_ex(json_object_array_get_idx(items, 0), "kind", &v));

    assert_true(json_object_object_get_ex(p2, "metadata", &meta));
    assert_false(json_object_object_get_ex(meta, "continue", &v));
    assert_false(json_object_object_get_ex(meta, "remainingItemCount", &v));
    assert_true(json_object_object_get_ex(meta, "resourceVersion", &v));
    assert_string_equal(json_object_get_string(v), "482913");

    /* the continue token round-trips into the next page's URL unmodified but escaped */
    char *url = NULL;
    mm_k8s_ref pods = {.version = "v1", .resource = "pods", .ns = "shop"};
    const char *q[] = {"limit", "2", "continue", cont, NULL};
    assert_int_equal(mm_k8s_build_url("https://h", &pods, q, &url, NULL), MM_OK);
    assert_non_null(strstr(url, cont)); /* base64url without padding needs no escaping */
    mm_free(url);
    json_object_put(p1);
    json_object_put(p2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_core_and_group),
        cmocka_unit_test(test_url_escaping),
        cmocka_unit_test(test_url_rejects),
        cmocka_unit_test(test_status_samples),
        cmocka_unit_test(test_status_422_causes),
        cmocka_unit_test(test_status_text_bodies),
        cmocka_unit_test(test_watch_maskingpolicies),
        cmocka_unit_test(test_watch_list),
        cmocka_unit_test(test_watch_expired),
        cmocka_unit_test(test_watch_errors),
        cmocka_unit_test(test_watch_alloc_failures),
        cmocka_unit_test(test_list_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
