/* Integration checks for lib/k8s against an API server: the stand-in (e2e/apiserver/run, run
 * by tests/integration/test_k8s_client) or, with MM_K8S_LIVE=1, the real kube-apiserver
 * (hack/test-k8s-live.sh). Built as build/tests/k8s/check_client (not test_*, so the unit
 * runner does not pick it up); MM_KUBECONFIG names the server's kubeconfig, with a bearer
 * token. Every verb, paging, watch resume and relist through the informer, 409 then a fresh
 * get, Retry-After, token-file rotation, TLS with the server's CA, and leader election with
 * two contenders. Faults are set with POST /_maskmesh/fault, which only the stand-in serves:
 * the checks that need one are skipped on the real server (standin_only()), or reach the
 * same state there another way (the server's own watch timeout instead of a dropped watch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "k8s/k8s_int.h"

static mm_k8s_config *g_cfg;
static mm_k8s_client *g_cl;
static const char *g_kubeconfig;
static unsigned g_run; /* makes names unique per run of the binary */
static bool g_live;    /* MM_K8S_LIVE=1: the real kube-apiserver, no fault knobs */

/* A check that needs a fault only the stand-in can inject on demand. */
#define standin_only(why)                                                                      \
    do {                                                                                       \
        if (g_live) {                                                                          \
            print_message("skipped on the real kube-apiserver (stand-in fault: %s)\n", why);   \
            skip();                                                                            \
        }                                                                                      \
    } while (0)

#define NS "default"

static void wait_ms(long ms) { k8s_sleep_ms(ms); }

static double since(uint64_t t0) { return (double)(mm_now_ns() - t0) / 1e9; }

/* POSTs body to path with the admin token and the stand-in's CA; returns the HTTP code. */
static long post_admin(const char *path, const char *body)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hd = NULL;
    mm_buf url, auth;
    long code = 0;
    assert_non_null(h);
    mm_buf_init(&url, 0);
    mm_buf_init(&auth, 0);
    assert_int_equal(mm_buf_printf(&url, "%s%s", g_cfg->server, path), MM_OK);
    assert_int_equal(mm_buf_printf(&auth, "Authorization: Bearer %s", g_cfg->token), MM_OK);
    hd = curl_slist_append(hd, mm_buf_cstr(&auth));
    hd = curl_slist_append(hd, "Content-Type: application/json");
    struct curl_blob ca = {g_cfg->ca_data, g_cfg->ca_len, CURL_BLOB_COPY};
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    curl_easy_setopt(h, CURLOPT_URL, mm_buf_cstr(&url));
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, devnull);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    fclose(devnull);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    mm_buf_free(&url);
    mm_buf_free(&auth);
    return code;
}

/* Sets a fault: `knob` is a POST /_maskmesh/fault body (e2e/apiserver/README.md). */
static void fault(const char *knob) { assert_int_equal(post_admin("/_maskmesh/fault", knob), 200); }

#define FAULT_DROP_WATCHES() fault("{\"dropWatches\":true}")
#define FAULT_COMPACT() fault("{\"compact\":true}")
#define FAULT_CLEAR() fault("{\"fail\":null}")
/* The next `count` requests under `path` fail with `code`, with Retry-After `ra` (<0: none). */
static void fault_fail(int code, int count, int ra, const char *path)
{
    char knob[256], rabuf[16];
    snprintf(rabuf, sizeof(rabuf), "%d", ra);
    snprintf(knob, sizeof(knob),
             "{\"fail\":{\"code\":%d,\"count\":%d,\"retryAfter\":%s,\"path\":\"%s\"}}", code,
             count, ra >= 0 ? rabuf : "null", path);
    fault(knob);
}

static struct json_object *configmap(const char *name, const char *label, const char *value)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"" NS "\",\"labels\":{\"mmtest\":\"%s\"}},\"data\":{\"k\":\"%s\"}}",
             name, label, value);
    struct json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

static void name_of(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "%s-%u", what, g_run);
}

static const char *data_k(struct json_object *cm)
{
    return k8s_json_str(k8s_json_get(cm, "data", json_type_object), "k");
}

static void create_cm(const char *name, const char *label, const char *value)
{
    mm_k8s_ref cms = {.version = "v1", .resource = "configmaps", .ns = NS};
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    struct json_object *o = configmap(name, label, value);
    if (mm_k8s_create(g_cl, &cms, o, NULL, &res, &eb) != MM_OK)
        fail_msg("create %s: %s", name, eb.msg);
    assert_int_equal(res.http_code, 201);
    mm_k8s_result_clear(&res);
    json_object_put(o);
}

/* ---- verbs ------------------------------------------------------------------------------- */

static void test_verbs(void **state)
{
    MM_UNUSED(state);
    char name[64];
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    name_of(name, sizeof(name), "verbs");
    mm_k8s_ref cm = {.version = "v1", .resource = "configmaps", .ns = NS, .name = name};

    create_cm(name, "verbs", "one");
    assert_int_equal(mm_k8s_get(g_cl, &cm, &res, &eb), MM_OK);
    assert_int_equal(res.http_code, 200);
    assert_string_equal(data_k(res.body), "one");
    char *uid = mm_strdup(k8s_meta_str(res.body, "uid"));

    /* PUT with the read resourceVersion */
    struct json_object *obj = json_object_get(res.body);
    mm_k8s_result_clear(&res);
    json_object_object_add(json_object_object_get(obj, "data"), "k", json_object_new_string("two"));
    mm_k8s_write_opts wo = {.field_manager = "mm-k8s-check"};
    assert_int_equal(mm_k8s_update(g_cl, &cm, obj, &wo, &res, &eb), MM_OK);
    assert_int_equal(res.http_code, 200);
    assert_string_equal(data_k(res.body), "two");
    json_object_put(obj);
    mm_k8s_result_clear(&res);

    /* merge patch, JSON patch, server-side apply */
    const char *merge = "{\"data\":{\"k\":\"three\",\"m\":\"merged\"}}";
    assert_int_equal(mm_k8s_patch(g_cl, &cm, MM_K8S_PATCH_MERGE, merge, strlen(merge), NULL, &res,
                                  &eb),
                     MM_OK);
    assert_string_equal(data_k(res.body), "three");
    mm_k8s_result_clear(&res);
    const char *jp = "[{\"op\":\"replace\",\"path\":\"/data/k\",\"value\":\"four\"},"
                     "{\"op\":\"remove\",\"path\":\"/data/m\"}]";
    assert_int_equal(mm_k8s_patch(g_cl, &cm, MM_K8S_PATCH_JSON, jp, strlen(jp), NULL, &res, &eb),
                     MM_OK);
    assert_string_equal(data_k(res.body), "four");
    assert_null(k8s_json_str(k8s_json_get(res.body, "data", json_type_object), "m"));
    mm_k8s_result_clear(&res);
    char apply[512];
    snprintf(apply, sizeof(apply),
             "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"" NS "\"},\"data\":{\"k\":\"applied\"}}",
             name);
    mm_k8s_patch_opts po = {.field_manager = "mm-k8s-check", .force = true};
    assert_int_equal(mm_k8s_patch(g_cl, &cm, MM_K8S_PATCH_APPLY, apply, strlen(apply), &po, &res,
                                  &eb),
                     MM_OK);
    assert_string_equal(data_k(res.body), "applied");
    mm_k8s_result_clear(&res);
    /* the client refuses an apply without fieldManager before a round trip */
    mm_k8s_patch_opts nofm = {0};
    assert_int_equal(mm_k8s_patch(g_cl, &cm, MM_K8S_PATCH_APPLY, apply, strlen(apply), &nofm, &res,
                                  &eb),
                     MM_EINVAL);
    /* a JSON patch the server cannot apply comes back as its 4xx Status */
    const char *badjp = "[{\"op\":\"frobnicate\",\"path\":\"/data/k\"}]";
    mm_err rc = mm_k8s_patch(g_cl, &cm, MM_K8S_PATCH_JSON, badjp, strlen(badjp), NULL, &res, &eb);
    assert_int_equal(rc, MM_EHTTP);
    assert_true(res.status.code >= 400 && res.status.code < 500);
    mm_k8s_result_clear(&res);

    /* delete with a wrong uid precondition: 409; with the right one: gone */
    mm_k8s_delete_opts bad = {.precondition_uid = "00000000-0000-0000-0000-000000000000",
                              .grace_period_seconds = -1};
    assert_int_equal(mm_k8s_delete(g_cl, &cm, &bad, &res, &eb), MM_ECONFLICT);
    assert_int_equal(res.status.code, 409);
    mm_k8s_result_clear(&res);
    mm_k8s_delete_opts good = {.precondition_uid = uid, .propagation_policy = "Background",
                               .grace_period_seconds = -1};
    if (mm_k8s_delete(g_cl, &cm, &good, &res, &eb) != MM_OK)
        fail_msg("delete: %s", eb.msg);
    mm_k8s_result_clear(&res);
    assert_int_equal(mm_k8s_get(g_cl, &cm, &res, &eb), MM_ENOTFOUND);
    assert_string_equal(res.status.reason, "NotFound");
    assert_non_null(strstr(eb.msg, "404"));
    mm_k8s_result_clear(&res);
    mm_free(uid);

    /* a path the server does not serve: plain-text 404 */
    mm_k8s_ref nope = {.group = "nothing.example", .version = "v1", .resource = "things"};
    assert_int_equal(mm_k8s_list(g_cl, &nope, NULL, &res, &eb), MM_ENOTFOUND);
    assert_int_equal(res.status.code, 404);
    mm_k8s_result_clear(&res);
}

static const char *status_message(struct json_object *o)
{
    return k8s_json_str(k8s_json_get(o, "status", json_type_object), "message");
}

/* /status writes change only status; main-resource writes leave it alone (wire rule 7). */
static void test_status_subresource(void **state)
{
    MM_UNUSED(state);
    char name[64], text[1024];
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    name_of(name, sizeof(name), "pod");
    mm_k8s_ref pods = {.version = "v1", .resource = "pods", .ns = NS};
    mm_k8s_ref pod = {.version = "v1", .resource = "pods", .ns = NS, .name = name};
    mm_k8s_ref st = {.version = "v1", .resource = "pods", .ns = NS, .name = name,
                     .subresource = "status"};
    snprintf(text, sizeof(text),
             "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\"},"
             "\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"busybox\"}]}}",
             name);
    struct json_object *o = json_tokener_parse(text);
    if (mm_k8s_create(g_cl, &pods, o, NULL, &res, &eb) != MM_OK)
        fail_msg("create pod: %s", eb.msg);
    assert_int_equal(res.http_code, 201);
    json_object_put(o);
    mm_k8s_result_clear(&res);

    const char *patch = "{\"status\":{\"message\":\"from-status\"}}";
    if (mm_k8s_patch(g_cl, &st, MM_K8S_PATCH_MERGE, patch, strlen(patch), NULL, &res, &eb) != MM_OK)
        fail_msg("patch status: %s", eb.msg);
    assert_string_equal(status_message(res.body), "from-status");
    mm_k8s_result_clear(&res);
    const char *main_patch = "{\"status\":{\"message\":\"from-main\"}}";
    assert_int_equal(mm_k8s_patch(g_cl, &pod, MM_K8S_PATCH_MERGE, main_patch, strlen(main_patch),
                                  NULL, &res, &eb),
                     MM_OK);
    mm_k8s_result_clear(&res);
    assert_int_equal(mm_k8s_get(g_cl, &pod, &res, &eb), MM_OK);
    assert_string_equal(status_message(res.body), "from-status");

    /* PUT on /status with the fresh object */
    struct json_object *cur = json_object_get(res.body);
    mm_k8s_result_clear(&res);
    json_object_object_add(json_object_object_get(cur, "status"), "message",
                           json_object_new_string("from-put"));
    if (mm_k8s_update(g_cl, &st, cur, NULL, &res, &eb) != MM_OK)
        fail_msg("update status: %s", eb.msg);
    assert_string_equal(status_message(res.body), "from-put");
    json_object_put(cur);
    mm_k8s_result_clear(&res);
    mm_k8s_delete_opts d = {.grace_period_seconds = 0};
    assert_int_equal(mm_k8s_delete(g_cl, &pod, &d, &res, &eb), MM_OK);
    mm_k8s_result_clear(&res);
}

/* ---- conflicts ---------------------------------------------------------------------------- */

static void test_conflict_then_fresh_get(void **state)
{
    MM_UNUSED(state);
    char name[64];
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    name_of(name, sizeof(name), "conflict");
    mm_k8s_ref cm = {.version = "v1", .resource = "configmaps", .ns = NS, .name = name};
    create_cm(name, "conflict", "v0");
    assert_int_equal(mm_k8s_get(g_cl, &cm, &res, &eb), MM_OK);
    struct json_object *stale = json_object_get(res.body);
    mm_k8s_result_clear(&res);
    const char *merge = "{\"data\":{\"k\":\"v1\"}}";
    assert_int_equal(mm_k8s_patch(g_cl, &cm, MM_K8S_PATCH_MERGE, merge, strlen(merge), NULL, &res,
                                  &eb),
                     MM_OK);
    mm_k8s_result_clear(&res);

    json_object_object_add(json_object_object_get(stale, "data"), "k", json_object_new_string("v2"));
    assert_int_equal(mm_k8s_update(g_cl, &cm, stale, NULL, &res, &eb), MM_ECONFLICT);
    assert_int_equal(res.http_code, 409);
    assert_string_equal(res.status.reason, "Conflict");
    assert_non_null(strstr(res.status.message, "the object has been modified"));
    mm_k8s_result_clear(&res);
    json_object_put(stale);

    /* the retry: a fresh get, the change reapplied */
    assert_int_equal(mm_k8s_get(g_cl, &cm, &res, &eb), MM_OK);
    struct json_object *fresh = json_object_get(res.body);
    mm_k8s_result_clear(&res);
    assert_string_equal(data_k(fresh), "v1");
    json_object_object_add(json_object_object_get(fresh, "data"), "k", json_object_new_string("v2"));
    assert_int_equal(mm_k8s_update(g_cl, &cm, fresh, NULL, &res, &eb), MM_OK);
    assert_string_equal(data_k(res.body), "v2");
    json_object_put(fresh);
    mm_k8s_result_clear(&res);
    assert_int_equal(mm_k8s_delete(g_cl, &cm, NULL, &res, &eb), MM_OK);
    mm_k8s_result_clear(&res);
}

/* ---- paging -------------------------------------------------------------------------------- */

static int count_items(void *ud, struct json_object *item)
{
    MM_UNUSED(item);
    (*(int *)ud)++;
    return 0;
}

static void test_paging(void **state)
{
    MM_UNUSED(state);
    char label[64], name[96], sel[96];
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    name_of(label, sizeof(label), "page");
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "%s-%d", label, i);
        create_cm(name, label, "x");
    }
    snprintf(sel, sizeof(sel), "mmtest=%s", label);
    mm_k8s_ref cms = {.version = "v1", .resource = "configmaps", .ns = NS};
    mm_k8s_list_opts lo = {.label_selector = sel, .limit = 2};
    assert_int_equal(mm_k8s_list(g_cl, &cms, &lo, &res, &eb), MM_OK);
    struct json_object *items = k8s_json_get(res.body, "items", json_type_array);
    assert_int_equal(json_object_array_length(items), 2);
    const char *cont = k8s_json_str(k8s_json_get(res.body, "metadata", json_type_object), "continue");
    assert_non_null(cont);
    char *c1 = mm_strdup(cont);
    mm_k8s_result_clear(&res);
    lo.continue_token = c1;
    assert_int_equal(mm_k8s_list(g_cl, &cms, &lo, &res, &eb), MM_OK);
    assert_int_equal(json_object_array_length(k8s_json_get(res.body, "items", json_type_array)), 2);
    mm_k8s_result_clear(&res);
    mm_free(c1);

    int n = 0;
    char *rv = NULL;
    lo.continue_token = NULL;
    assert_int_equal(mm_k8s_list_all(g_cl, &cms, &lo, count_items, &n, &rv, &res, &eb), MM_OK);
    assert_int_equal(n, 5);
    assert_non_null(rv);
    mm_free(rv);
    mm_k8s_result_clear(&res);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "%s-%d", label, i);
        mm_k8s_ref cm = {.version = "v1", .resource = "configmaps", .ns = NS, .name = name};
        assert_int_equal(mm_k8s_delete(g_cl, &cm, NULL, &res, &eb), MM_OK);
        mm_k8s_result_clear(&res);
    }
}

/* ---- informer -------------------------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    int adds, updates, deletes;
} counts;

static void on_add(void *ud, struct json_object *o)
{
    MM_UNUSED(o);
    counts *c = ud;
    pthread_mutex_lock(&c->lock);
    c->adds++;
    pthread_mutex_unlock(&c->lock);
}
static void on_update(void *ud, struct json_object *a, struct json_object *b)
{
    MM_UNUSED(a);
    MM_UNUSED(b);
    counts *c = ud;
    pthread_mutex_lock(&c->lock);
    c->updates++;
    pthread_mutex_unlock(&c->lock);
}
static void on_delete(void *ud, struct json_object *o)
{
    MM_UNUSED(o);
    counts *c = ud;
    pthread_mutex_lock(&c->lock);
    c->deletes++;
    pthread_mutex_unlock(&c->lock);
}

static int get_count(counts *c, int which)
{
    pthread_mutex_lock(&c->lock);
    int v = which == 0 ? c->adds : which == 1 ? c->updates : c->deletes;
    pthread_mutex_unlock(&c->lock);
    return v;
}

/* Polls until the counter reaches want or 15 s pass. */
static bool wait_count(counts *c, int which, int want)
{
    for (int i = 0; i < 300; i++) {
        if (get_count(c, which) >= want)
            return true;
        wait_ms(50);
    }
    return false;
}

static void test_informer_resume_after_drop(void **state)
{
    MM_UNUSED(state);
    char label[64], sel[96], name[96];
    counts c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
    mm_k8s_informer *inf = NULL;
    mm_errbuf eb = {{0}};
    name_of(label, sizeof(label), "inf");
    snprintf(sel, sizeof(sel), "mmtest=%s", label);
    snprintf(name, sizeof(name), "%s-0", label);
    create_cm(name, label, "a");

    mm_k8s_ref cms = {.version = "v1", .resource = "configmaps", .ns = NS};
    /* the real server cannot drop watches on demand: its own timeoutSeconds ends them */
    mm_k8s_informer_opts io = {.label_selector = sel, .page_size = 1,
                               .watch_timeout_s = g_live ? 1 : 60, .backoff_initial_ms = 100};
    mm_k8s_handlers h = {on_add, on_update, on_delete, &c};
    assert_int_equal(mm_k8s_informer_new(g_cl, &cms, &io, &h, &inf, &eb), MM_OK);
    assert_int_equal(mm_k8s_informer_start(inf, &eb), MM_OK);
    for (int i = 0; i < 200 && !mm_k8s_informer_synced(inf); i++)
        wait_ms(50);
    assert_true(mm_k8s_informer_synced(inf));
    assert_int_equal(get_count(&c, 0), 1);
    assert_int_equal(mm_k8s_informer_count(inf), 1);

    snprintf(name, sizeof(name), "%s-1", label);
    create_cm(name, label, "b");
    assert_true(wait_count(&c, 0, 2));

    /* the server drops every watch (or, real, ends it after 1 s): the informer resumes from
     * its last RV, no relist */
    mm_k8s_informer_stats s0, s1;
    mm_k8s_informer_get_stats(inf, &s0);
    if (g_live)
        wait_ms(2500);
    else
        FAULT_DROP_WATCHES();
    wait_ms(300);
    snprintf(name, sizeof(name), "%s-2", label);
    create_cm(name, label, "c");
    assert_true(wait_count(&c, 0, 3));
    mm_k8s_ref cm2 = {.version = "v1", .resource = "configmaps", .ns = NS, .name = name};
    mm_k8s_result res = {0};
    const char *merge = "{\"data\":{\"k\":\"c2\"}}";
    assert_int_equal(mm_k8s_patch(g_cl, &cm2, MM_K8S_PATCH_MERGE, merge, strlen(merge), NULL, &res,
                                  &eb),
                     MM_OK);
    mm_k8s_result_clear(&res);
    assert_true(wait_count(&c, 1, 1));
    assert_int_equal(mm_k8s_delete(g_cl, &cm2, NULL, &res, &eb), MM_OK);
    mm_k8s_result_clear(&res);
    assert_true(wait_count(&c, 2, 1));
    mm_k8s_informer_get_stats(inf, &s1);
    assert_int_equal(s1.lists, s0.lists); /* resumed, not relisted */
    assert_int_equal(s1.relists_410, 0);
    assert_true(s1.watches > s0.watches);
    assert_int_equal(mm_k8s_informer_count(inf), 2);
    struct json_object *got = mm_k8s_informer_get(inf, NS, name);
    assert_null(got);
    snprintf(name, sizeof(name), "%s-1", label);
    got = mm_k8s_informer_get(inf, NS, name);
    assert_non_null(got);
    assert_string_equal(data_k(got), "b");
    json_object_put(got);

    uint64_t t0 = mm_now_ns();
    mm_k8s_informer_stop(inf);
    assert_true(since(t0) < 3.0); /* a clean stop interrupts the watch */
    mm_k8s_informer_free(inf);
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof(name), "%s-%d", label, i);
        mm_k8s_ref cm = {.version = "v1", .resource = "configmaps", .ns = NS, .name = name};
        assert_int_equal(mm_k8s_delete(g_cl, &cm, NULL, &res, &eb), MM_OK);
        mm_k8s_result_clear(&res);
    }
}

/* A BOOKMARK advances the resume RV without an event: a change outside the informer's
 * selector moves the server's RV, and the next bookmark (every second here) carries it. */
static void test_informer_bookmarks_advance_rv(void **state)
{
    MM_UNUSED(state);
    char label[64], sel[96], other[96];
    counts c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
    mm_k8s_informer *inf = NULL;
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    name_of(label, sizeof(label), "bm");
    snprintf(sel, sizeof(sel), "mmtest=%s", label);
    mm_k8s_ref cms = {.version = "v1", .resource = "configmaps", .ns = NS};
    /* the real server bookmarks about once a minute, and 2 s before a watch's timeout: a short
     * timeoutSeconds makes one come within seconds (the stand-in's come every second) */
    mm_k8s_informer_opts io = {.label_selector = sel, .watch_timeout_s = g_live ? 5 : 60};
    mm_k8s_handlers h = {on_add, on_update, on_delete, &c};
    assert_int_equal(mm_k8s_informer_new(g_cl, &cms, &io, &h, &inf, &eb), MM_OK);
    assert_int_equal(mm_k8s_informer_start(inf, &eb), MM_OK);
    for (int i = 0; i < 200 && !mm_k8s_informer_synced(inf); i++)
        wait_ms(50);
    assert_true(mm_k8s_informer_synced(inf));
    char *rv0 = mm_k8s_informer_resource_version(inf);
    snprintf(other, sizeof(other), "%s-other", label);
    create_cm(other, "not-selected", "x");
    bool moved = false;
    for (int i = 0; i < (g_live ? 300 : 100) && !moved; i++) { /* a few bookmark intervals */
        wait_ms(50);
        char *rv = mm_k8s_informer_resource_version(inf);
        moved = rv && strcmp(rv, rv0) != 0;
        mm_free(rv);
    }
    assert_true(moved);
    assert_int_equal(get_count(&c, 0), 0); /* no event reached the handlers */
    assert_int_equal(mm_k8s_informer_count(inf), 0);
    mm_free(rv0);
    mm_k8s_informer_free(inf);
    mm_k8s_ref cm = {.version = "v1", .resource = "configmaps", .ns = NS, .name = other};
    assert_int_equal(mm_k8s_delete(g_cl, &cm, NULL, &res, &eb), MM_OK);
    mm_k8s_result_clear(&res);
}

static void test_informer_relist_after_compact(void **state)
{
    MM_UNUSED(state);
    char label[64], sel[96], name[96];
    counts c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
    mm_k8s_informer *inf = NULL;
    mm_errbuf eb = {{0}};
    long delay = 0;
    standin_only("compact");
    name_of(label, sizeof(label), "relist");
    snprintf(sel, sizeof(sel), "mmtest=%s", label);
    snprintf(name, sizeof(name), "%s-0", label);
    create_cm(name, label, "a");
    mm_k8s_ref cms = {.version = "v1", .resource = "configmaps", .ns = NS};
    mm_k8s_informer_opts io = {.label_selector = sel, .watch_timeout_s = 2};
    mm_k8s_handlers h = {on_add, on_update, on_delete, &c};
    assert_int_equal(mm_k8s_informer_new(g_cl, &cms, &io, &h, &inf, &eb), MM_OK);

    /* step by step: list, then changes the informer does not see, then compaction */
    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_OK);
    assert_true(mm_k8s_informer_synced(inf));
    char *rv0 = mm_k8s_informer_resource_version(inf);
    assert_non_null(rv0);
    snprintf(name, sizeof(name), "%s-1", label);
    create_cm(name, label, "b");
    FAULT_COMPACT();
    mm_err rc = mm_k8s_informer_step(inf, &delay, &eb);
    assert_int_equal(rc, MM_EGONE); /* an ERROR event with code 410, or an HTTP 410 */
    mm_k8s_informer_stats s;
    mm_k8s_informer_get_stats(inf, &s);
    assert_int_equal(s.relists_410, 1);
    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_OK); /* the relist */
    mm_k8s_informer_get_stats(inf, &s);
    assert_int_equal(s.lists, 2);
    assert_int_equal(get_count(&c, 0), 2);
    assert_int_equal(mm_k8s_informer_count(inf), 2);
    char *rv1 = mm_k8s_informer_resource_version(inf);
    assert_string_not_equal(rv0, rv1);
    mm_free(rv0);
    mm_free(rv1);
    mm_k8s_informer_free(inf);
    mm_k8s_result res = {0};
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof(name), "%s-%d", label, i);
        mm_k8s_ref cm = {.version = "v1", .resource = "configmaps", .ns = NS, .name = name};
        assert_int_equal(mm_k8s_delete(g_cl, &cm, NULL, &res, &eb), MM_OK);
        mm_k8s_result_clear(&res);
    }
}

/* ---- Retry-After ------------------------------------------------------------------------------ */

static void test_retry_after(void **state)
{
    MM_UNUSED(state);
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = NS};
    standin_only("fail with 429/503 and Retry-After");

    /* 429 with Retry-After: 1 is retried after a second */
    fault_fail(429, 1, 1, "/api/v1/namespaces");
    uint64_t t0 = mm_now_ns();
    assert_int_equal(mm_k8s_get(g_cl, &ns, &res, &eb), MM_OK);
    double dt = since(t0);
    assert_int_equal(res.retries, 1);
    assert_true(dt >= 0.95 && dt < 5.0);
    mm_k8s_result_clear(&res);

    /* 503 twice with Retry-After */
    fault_fail(503, 2, 1, "/api/v1/namespaces");
    t0 = mm_now_ns();
    assert_int_equal(mm_k8s_get(g_cl, &ns, &res, &eb), MM_OK);
    assert_int_equal(res.retries, 2);
    assert_true(since(t0) >= 1.9);
    mm_k8s_result_clear(&res);

    /* without Retry-After: no retry, the Status comes back */
    fault_fail(429, 1, -1, "/api/v1/namespaces");
    assert_int_equal(mm_k8s_get(g_cl, &ns, &res, &eb), MM_EHTTP);
    assert_int_equal(res.retries, 0);
    assert_int_equal(res.status.code, 429);
    assert_string_equal(res.status.reason, "TooManyRequests");
    mm_k8s_result_clear(&res);
    FAULT_CLEAR();

    /* the informer, on a client that does not retry itself, backs off for Retry-After */
    mm_k8s_client *noretry = NULL;
    mm_k8s_client_opts co = {.max_retries = -1};
    assert_int_equal(mm_k8s_client_new(g_cfg, &co, &noretry, &eb), MM_OK);
    mm_k8s_informer *inf = NULL;
    mm_k8s_ref cms = {.version = "v1", .resource = "configmaps", .ns = NS};
    mm_k8s_informer_opts io = {.backoff_initial_ms = 50};
    assert_int_equal(mm_k8s_informer_new(noretry, &cms, &io, NULL, &inf, &eb), MM_OK);
    fault_fail(429, 1, 3, "/api/v1/namespaces/" NS "/configmaps");
    long delay = 0;
    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_EHTTP);
    assert_true(delay >= 3000);
    assert_false(mm_k8s_informer_synced(inf));
    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_OK);
    assert_true(mm_k8s_informer_synced(inf));
    mm_k8s_informer_free(inf);
    mm_k8s_client_free(noretry);
}

/* ---- tokens and TLS ---------------------------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w"); /* truncates in place: same inode */
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_token_rotation(void **state)
{
    MM_UNUSED(state);
    char dir[] = "/tmp/mm-k8s-check-XXXXXX", tok[128], kcp[128];
    char *text = NULL;
    size_t len = 0;
    mm_errbuf eb = {{0}};
    mm_k8s_config *cfg = NULL;
    mm_k8s_client *cl = NULL;
    mm_k8s_result res = {0};
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = NS};

    assert_non_null(mkdtemp(dir));
    snprintf(tok, sizeof(tok), "%s/token", dir);
    snprintf(kcp, sizeof(kcp), "%s/kubeconfig", dir);
    /* the stand-in's kubeconfig with its token line turned into tokenFile */
    assert_int_equal(mm_read_file(g_kubeconfig, 1 << 20, &text, &len, &eb), MM_OK);
    char *line = strstr(text, "    token: ");
    assert_non_null(line);
    char *eol = strchr(line, '\n');
    mm_buf kc;
    mm_buf_init(&kc, 0);
    assert_int_equal(mm_buf_append(&kc, text, (size_t)(line - text)), MM_OK);
    assert_int_equal(mm_buf_printf(&kc, "    tokenFile: %s%s", tok, eol ? eol : "\n"), MM_OK);
    write_text(kcp, mm_buf_cstr(&kc));
    mm_buf_free(&kc);

    /* a wrong token of the admin token's length */
    size_t tl = strlen(g_cfg->token);
    char *wrong = mm_strdup(g_cfg->token);
    for (size_t i = 0; i < tl; i++)
        wrong[i] = wrong[i] == 'z' ? 'y' : 'z';
    write_text(tok, wrong);
    assert_int_equal(mm_k8s_config_kubeconfig(kcp, NULL, &cfg, &eb), MM_OK);
    assert_int_equal(mm_k8s_config_auth(cfg), MM_K8S_AUTH_TOKEN_FILE);
    assert_int_equal(mm_k8s_client_new(cfg, NULL, &cl, &eb), MM_OK);
    assert_int_equal(mm_k8s_get(cl, &ns, &res, &eb), MM_EHTTP);
    assert_int_equal(res.status.code, 401);
    assert_null(strstr(eb.msg, wrong)); /* errors never carry the token */
    mm_k8s_result_clear(&res);

    /* rotation: a new file content is picked up before the next request */
    write_text(tok, g_cfg->token);
    assert_int_equal(mm_k8s_get(cl, &ns, &res, &eb), MM_OK);
    mm_k8s_result_clear(&res);

    /* back to a wrong token, then the right one with the same size and the old mtime: the
     * stat looks unchanged, so only the 401 makes the client read the file again */
    struct stat sb;
    write_text(tok, wrong);
    assert_int_equal(mm_k8s_get(cl, &ns, &res, &eb), MM_EHTTP);
    mm_k8s_result_clear(&res);
    assert_int_equal(stat(tok, &sb), 0);
    write_text(tok, g_cfg->token);
    struct timespec ts[2] = {sb.st_atim, sb.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, tok, ts, 0), 0);
    uint64_t reads = cl->token_reads;
    if (mm_k8s_get(cl, &ns, &res, &eb) != MM_OK)
        fail_msg("after a 401 the token file should be re-read: %s", eb.msg);
    assert_int_equal(cl->token_reads, reads + 1);
    mm_k8s_result_clear(&res);

    mm_k8s_client_free(cl);
    mm_k8s_config_free(cfg);
    mm_free(wrong);
    mm_free(text);
    unlink(tok);
    unlink(kcp);
    rmdir(dir);
}

static void test_tls(void **state)
{
    MM_UNUSED(state);
    mm_k8s_config *cfg = NULL;
    mm_k8s_client *cl = NULL;
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = NS};

    /* the stand-in's CA (certificate-authority-data) is what every other check uses; without
     * it the handshake fails with MM_ETLS, with insecure it passes */
    assert_non_null(g_cfg->ca_data);
    assert_int_equal(k8s_config_copy(g_cfg, &cfg), MM_OK);
    mm_free(cfg->ca_data);
    cfg->ca_data = NULL;
    cfg->ca_len = 0;
    /* the system bundle (when there is one) does not hold the stand-in's private CA */
    cfg->ca_file = mm_strdup("/etc/ssl/certs/ca-certificates.crt");
    if (access(cfg->ca_file, R_OK) != 0) {
        mm_free(cfg->ca_file);
        cfg->ca_file = NULL;
    }
    assert_int_equal(mm_k8s_client_new(cfg, NULL, &cl, &eb), MM_OK);
    assert_int_equal(mm_k8s_get(cl, &ns, &res, &eb), MM_ETLS);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(cl);

    cfg->insecure = true;
    assert_int_equal(mm_k8s_client_new(cfg, NULL, &cl, &eb), MM_OK);
    assert_int_equal(mm_k8s_get(cl, &ns, &res, &eb), MM_OK);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(cl);
    mm_k8s_config_free(cfg);
}

/* ---- leader election ------------------------------------------------------------------------------ */

typedef struct {
    atomic_int started, stopped;
} lcounts;

static void started(void *ud) { atomic_fetch_add(&((lcounts *)ud)->started, 1); }
static void stopped(void *ud) { atomic_fetch_add(&((lcounts *)ud)->stopped, 1); }

static bool wait_leader(mm_k8s_leader *le, bool want, double max_s)
{
    uint64_t t0 = mm_now_ns();
    while (since(t0) < max_s) {
        if (mm_k8s_leader_is_leader(le) == want)
            return true;
        wait_ms(20);
    }
    return false;
}

static void read_lease(const char *name, mm_k8s_lease_spec *spec, char *renew_text, size_t n)
{
    mm_k8s_ref ref = {.group = "coordination.k8s.io", .version = "v1", .resource = "leases",
                      .ns = NS, .name = name};
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    assert_int_equal(mm_k8s_get(g_cl, &ref, &res, &eb), MM_OK);
    assert_int_equal(mm_k8s_lease_spec_from_json(res.body, spec, &eb), MM_OK);
    const char *rt = k8s_json_str(k8s_json_get(res.body, "spec", json_type_object), "renewTime");
    snprintf(renew_text, n, "%s", rt ? rt : "");
    mm_k8s_result_clear(&res);
}

static void test_leader_election(void **state)
{
    MM_UNUSED(state);
    char lease[64], rt[64];
    mm_errbuf eb = {{0}};
    lcounts ca = {0}, cb = {0}, cc = {0};
    mm_k8s_leader *a = NULL, *b = NULL, *c = NULL;
    mm_k8s_lease_spec spec;
    name_of(lease, sizeof(lease), "lease");

    mm_k8s_leader_opts o = {.ns = NS, .name = lease, .lease_duration_ms = 3000,
                            .renew_deadline_ms = 2000, .retry_period_ms = 300,
                            .on_started_leading = started, .on_stopped_leading = stopped};
    o.ud = &ca;
    assert_int_equal(mm_k8s_leader_new(g_cl, &o, &a, &eb), MM_OK);
    o.ud = &cb;
    assert_int_equal(mm_k8s_leader_new(g_cl, &o, &b, &eb), MM_OK);
    assert_string_not_equal(mm_k8s_leader_identity(a), mm_k8s_leader_identity(b));
    char host[256];
    gethostname(host, sizeof(host));
    assert_int_equal(strncmp(mm_k8s_leader_identity(a), host, strlen(host)), 0);
    assert_int_equal(mm_k8s_leader_identity(a)[strlen(host)], '_');

    assert_int_equal(mm_k8s_leader_start(a, &eb), MM_OK);
    assert_true(wait_leader(a, true, 5));
    assert_int_equal(atomic_load(&ca.started), 1);
    assert_int_equal(mm_k8s_leader_start(b, &eb), MM_OK);
    wait_ms(3500); /* more than a lease duration: a keeps renewing, b never wins */
    assert_true(mm_k8s_leader_is_leader(a));
    assert_false(mm_k8s_leader_is_leader(b));
    read_lease(lease, &spec, rt, sizeof(rt));
    assert_string_equal(spec.holder, mm_k8s_leader_identity(a));
    assert_int_equal(spec.lease_duration_s, 3);
    /* MicroTime: 6 fractional digits, UTC */
    assert_int_equal(strlen(rt), 27);
    assert_int_equal(rt[19], '.');
    assert_int_equal(rt[26], 'Z');
    assert_true(spec.renew_us > mm_k8s_now_us() - 2000000);
    long t_a = spec.transitions;
    mm_free(spec.holder);

    /* a stops and releases: b takes over well within a lease duration */
    uint64_t t0 = mm_now_ns();
    mm_k8s_leader_stop(a);
    assert_false(mm_k8s_leader_is_leader(a));
    assert_int_equal(atomic_load(&ca.stopped), 1);
    read_lease(lease, &spec, rt, sizeof(rt));
    assert_true(spec.holder[0] == '\0' || strcmp(spec.holder, mm_k8s_leader_identity(b)) == 0);
    mm_free(spec.holder);
    assert_true(wait_leader(b, true, 3.0));
    assert_true(since(t0) < 3.0);
    read_lease(lease, &spec, rt, sizeof(rt));
    assert_string_equal(spec.holder, mm_k8s_leader_identity(b));
    assert_int_equal(spec.transitions, t_a + 1);
    mm_free(spec.holder);

    mm_k8s_leader_free(a);

    /* c will crash as leader (no release on stop); first it takes over from b, released */
    o.ud = &cc;
    o.no_release_on_stop = true;
    assert_int_equal(mm_k8s_leader_new(g_cl, &o, &c, &eb), MM_OK);
    assert_int_equal(mm_k8s_leader_start(c, &eb), MM_OK);
    wait_ms(500);
    assert_false(mm_k8s_leader_is_leader(c));
    mm_k8s_leader_free(b); /* releases */
    assert_true(wait_leader(c, true, 3.0));
    /* d waits while c renews, and takes over only once c's lease has expired */
    mm_k8s_leader *d = NULL;
    lcounts cd = {0};
    o.ud = &cd;
    o.no_release_on_stop = false;
    assert_int_equal(mm_k8s_leader_new(g_cl, &o, &d, &eb), MM_OK);
    assert_int_equal(mm_k8s_leader_start(d, &eb), MM_OK);
    wait_ms(400);
    t0 = mm_now_ns();
    mm_k8s_leader_stop(c); /* no release: the lease stays held until it expires */
    read_lease(lease, &spec, rt, sizeof(rt));
    assert_string_equal(spec.holder, mm_k8s_leader_identity(c));
    mm_free(spec.holder);
    wait_ms(1000);
    assert_false(mm_k8s_leader_is_leader(d)); /* not before the lease has expired */
    assert_true(wait_leader(d, true, 5.0));
    double took = since(t0);
    assert_true(took >= 2.0 && took < 4.5); /* lease 3 s after the last renewal, + retry */
    mm_k8s_leader_free(c);

    /* renewals failing past the renew deadline: d steps down (callback), and not before the
     * deadline (2 s) has passed since its last successful renewal. That renewal began no
     * earlier than the renewTime read here (a later one only moves the step-down later), so
     * the bound holds however slowly a loaded machine answers. */
    read_lease(lease, &spec, rt, sizeof(rt));
    assert_string_equal(spec.holder, mm_k8s_leader_identity(d));
    int64_t renewed_us = spec.renew_us;
    mm_free(spec.holder);
    if (g_live) { /* stand-in fault: fail on /apis/coordination.k8s.io */
        print_message("renewals failing: skipped on the real kube-apiserver\n");
        goto release;
    }
    fault_fail(500, 1000, -1, "/apis/coordination.k8s.io");
    assert_true(wait_leader(d, false, 5.0));
    assert_true(mm_k8s_now_us() - renewed_us >= 2000000);
    assert_int_equal(atomic_load(&cd.stopped), 1);
    FAULT_CLEAR();
    assert_true(wait_leader(d, true, 8.0)); /* and it wins again once the API answers */
    assert_int_equal(atomic_load(&cd.started), 2);
release:
    mm_k8s_leader_free(d);
    read_lease(lease, &spec, rt, sizeof(rt));
    assert_string_equal(spec.holder, ""); /* released on stop */
    mm_free(spec.holder);
}

int main(void)
{
    mm_errbuf eb = {{0}};
    g_kubeconfig = getenv("MM_KUBECONFIG");
    if (!g_kubeconfig) {
        fprintf(stderr, "check_client: MM_KUBECONFIG must name the stand-in's kubeconfig\n");
        return 2;
    }
    if (mm_k8s_config_kubeconfig(g_kubeconfig, NULL, &g_cfg, &eb) != MM_OK ||
        mm_k8s_client_new(g_cfg, NULL, &g_cl, &eb) != MM_OK) {
        fprintf(stderr, "check_client: %s\n", eb.msg);
        return 2;
    }
    const char *live = getenv("MM_K8S_LIVE");
    g_live = live && strcmp(live, "1") == 0;
    g_run = (unsigned)(k8s_random64() % 1000000);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),
        cmocka_unit_test(test_status_subresource),
        cmocka_unit_test(test_conflict_then_fresh_get),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_informer_resume_after_drop),
        cmocka_unit_test(test_informer_bookmarks_advance_rv),
        cmocka_unit_test(test_informer_relist_after_compact),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_token_rotation),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_leader_election),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mm_k8s_client_free(g_cl);
    mm_k8s_config_free(g_cfg);
    return rc;
}
