/* lib/k8s against the API server stand-in (e2e/apiserver/run, started here on a free port
 * with real TLS and its own CA): every verb, paging, Status errors, 409 then a fresh get,
 * Retry-After on 429/5xx, token rotation (tokenFile rewritten between requests, and the
 * 401-then-reread path), TLS with the custom CA (data and file) and without it, watches,
 * the informer (resume after dropped watches, relist after compaction, 429 backoff, its own
 * thread with a clean stop) and leader election with contenders, x509 client certificates
 * (the stand-in's --client-cert contexts, -data and file forms; a certificate from another CA
 * is 401), and the HTTP/1.1 fallback of a client that asks for h2 (test_k8s_h2 has the h2
 * side). Every wait is bounded. Run from the top of the tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "k8s/k8s_int.h" /* token_reads: which path re-read the token */
#include "k8s/test_support.h"

extern char **environ;

#define ADMIN_TOKEN "admin-token-0123456789abcdef"
#define BAD_TOKEN "wrong-token-0123456789abcdef" /* same length as the admin token */

static char dir[256], kubeconfig[300], server[300], ca_pem[8192];
static pid_t standin = -1;

/* ---- the stand-in -------------------------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void rm_tree(const char *d)
{
    DIR *dd = opendir(d);
    struct dirent *e;
    while (dd && (e = readdir(dd))) {
        char p[600];
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
        unlink(p);
    }
    if (dd)
        closedir(dd);
    rmdir(d);
}

/* Pulls the base64 CA out of the stand-in's kubeconfig and decodes it with openssl's
 * decoder-free path: curl accepts the PEM we write back. */
static void extract_ca(void)
{
    char *text = NULL;
    size_t len;
    mm_errbuf eb;
    assert_int_equal(mm_read_file(kubeconfig, 1 << 20, &text, &len, &eb), MM_OK);
    const char *p = strstr(text, "certificate-authority-data: ");
    assert_non_null(p);
    p += strlen("certificate-authority-data: ");
    size_t n = strcspn(p, "\n");
    char b64[8192];
    assert_true(n < sizeof(b64));
    memcpy(b64, p, n);
    b64[n] = '\0';
    /* decode with a tiny table (the test must not depend on a kubeconfig parser it tests) */
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && b64[i] != '='; i++) {
        const char *q = strchr(tbl, b64[i]);
        assert_non_null(q);
        acc = (acc << 6) | (unsigned)(q - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            ca_pem[o++] = (char)((acc >> bits) & 0xff);
            assert_true(o < sizeof(ca_pem) - 1);
        }
    }
    ca_pem[o] = '\0';
    assert_non_null(strstr(ca_pem, "BEGIN CERTIFICATE"));
    mm_free(text);
}

static int start_standin(void **state)
{
    (void)state;
    int fds[2];
    char log[300];
    snprintf(dir, sizeof(dir), "/tmp/mm-k8s-standin-XXXXXX");
    if (!mkdtemp(dir) || pipe(fds) != 0)
        return -1;
    snprintf(kubeconfig, sizeof(kubeconfig), "%s/kubeconfig", dir);
    snprintf(log, sizeof(log), "%s/standin.log", dir);
    char *argv[] = {"python3", "e2e/apiserver/run", "--listen", "127.0.0.1:0", "--kubeconfig",
                    kubeconfig, "--token", ADMIN_TOKEN, "--bookmark-interval", "0.3",
                    "--client-cert", "mm-cert:system:masters", "--client-cert", "mm-dev:dev",
                    NULL};
    if ((standin = fork()) < 0)
        return -1;
    if (standin == 0) {
        /* the stand-in dies with this test, even when a failed assertion aborts it; its
         * stderr goes to a log so it never holds the caller's pipes open */
        int lf = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || lf < 0 || dup2(fds[1], 1) < 0 ||
            dup2(lf, 2) < 0)
            _exit(127);
        close(fds[0]);
        execvp("python3", argv);
        _exit(127);
    }
    close(fds[1]);
    /* "ready https://127.0.0.1:PORT" within 30 s */
    char line[256];
    size_t n = 0;
    uint64_t deadline = mm_now_ns() + 30ull * 1000000000ull;
    while (n < sizeof(line) - 1 && mm_now_ns() < deadline) {
        struct pollfd p = {fds[0], POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        if (read(fds[0], line + n, 1) != 1)
            break;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(fds[0]);
    if (strncmp(line, "ready https://127.0.0.1:", 24) != 0) {
        fprintf(stderr, "stand-in not ready: \"%s\" (see %s)\n", line, log);
        kill(standin, SIGKILL);
        waitpid(standin, NULL, 0);
        standin = -1;
        return -1;
    }
    snprintf(server, sizeof(server), "%s", line + 6);
    return 0;
}

static int stop_standin(void **state)
{
    (void)state;
    if (standin > 0) {
        int st;
        kill(standin, SIGTERM);
        for (int i = 0; i < 100 && waitpid(standin, &st, WNOHANG) == 0; i++)
            usleep(50000);
        if (waitpid(standin, &st, WNOHANG) == 0) {
            kill(standin, SIGKILL);
            waitpid(standin, &st, 0);
        }
    }
    rm_tree(dir);
    return 0;
}

/* POST /_maskmesh/fault (the stand-in's knobs) with the admin token. No cmocka assertions
 * here: helper threads call it too. */
static bool try_fault(const char *json)
{
    CURL *h = curl_easy_init();
    char url[400];
    struct curl_slist *hd = NULL;
    struct curl_blob ca = {ca_pem, strlen(ca_pem), CURL_BLOB_COPY};
    long code = 0;
    FILE *null = fopen("/dev/null", "w");
    bool ok = false;
    if (!h || !null)
        goto out;
    snprintf(url, sizeof(url), "%s/_maskmesh/fault", server);
    hd = curl_slist_append(hd, "Authorization: Bearer " ADMIN_TOKEN);
    hd = curl_slist_append(hd, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, null);
    if (curl_easy_perform(h) == CURLE_OK &&
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200)
        ok = true;
out:
    curl_slist_free_all(hd);
    if (h)
        curl_easy_cleanup(h);
    if (null)
        fclose(null);
    return ok;
}

static void fault(const char *json)
{
    if (!try_fault(json))
        fail_msg("POST /_maskmesh/fault %s failed", json);
}

static mm_k8s_client *client_from(const char *kc_path, const mm_k8s_client_opts *o)
{
    mm_k8s_config *cfg = NULL;
    mm_k8s_client *c = NULL;
    mm_errbuf eb = {{0}};
    if (mm_k8s_config_kubeconfig(kc_path, NULL, &cfg, &eb) != MM_OK)
        fail_msg("kubeconfig: %s", eb.msg);
    if (mm_k8s_client_new(cfg, o, &c, &eb) != MM_OK)
        fail_msg("client: %s", eb.msg);
    mm_k8s_config_free(cfg);
    return c;
}

static mm_k8s_client *admin(void) { return client_from(kubeconfig, NULL); }

/* A kubeconfig for the stand-in with the given cluster and user fields. */
static void write_kubeconfig(const char *path, const char *cluster_extra, const char *user)
{
    char text[16384];
    snprintf(text, sizeof(text),
             "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
             "clusters:\n- name: s\n  cluster:\n    server: %s\n%s"
             "contexts:\n- name: t\n  context: {cluster: s, user: u, namespace: default}\n"
             "users:\n- name: u\n  user:\n%s",
             server, cluster_extra, user);
    write_text(path, text);
}

static struct json_object *parse(const char *s)
{
    struct json_object *o = json_tokener_parse(s);
    assert_non_null(o);
    return o;
}

static const char *meta(struct json_object *o, const char *key)
{
    struct json_object *m, *v;
    if (!json_object_object_get_ex(o, "metadata", &m) || !json_object_object_get_ex(m, key, &v))
        return NULL;
    return json_object_get_string(v);
}

static const char *data_of(struct json_object *o, const char *key)
{
    struct json_object *d, *v;
    if (!json_object_object_get_ex(o, "data", &d) || !json_object_object_get_ex(d, key, &v))
        return NULL;
    return json_object_get_string(v);
}

#define OK(expr)                                                                                   \
    do {                                                                                           \
        mm_err rc_ = (expr);                                                                       \
        if (rc_ != MM_OK)                                                                          \
            fail_msg("%s: %s: %s", #expr, mm_strerror(rc_), eb.msg);                               \
    } while (0)

static const mm_k8s_ref CM = {.version = "v1", .resource = "configmaps", .ns = "default"};

static mm_k8s_ref cm(const char *name)
{
    mm_k8s_ref r = CM;
    r.name = name;
    return r;
}

static void create_cm(mm_k8s_client *c, const char *name, const char *labels)
{
    char body[512];
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    snprintf(body, sizeof(body),
             "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
             "\"labels\":%s},\"data\":{\"k\":\"v\"}}",
             name, labels);
    struct json_object *o = parse(body);
    OK(mm_k8s_create(c, &CM, o, NULL, &res, &eb));
    json_object_put(o);
    mm_k8s_result_clear(&res);
}

/* ---- verbs --------------------------------------------------------------------------------- */

static void test_verbs(void **state)
{
    (void)state;
    mm_k8s_client *c = admin();
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_k8s_ref r = cm("verbs-a");

    /* create: 201 with a resourceVersion and uid */
    struct json_object *o = parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
                                  "{\"name\":\"verbs-a\",\"labels\":{\"t\":\"verbs\"}},"
                                  "\"data\":{\"a\":\"1\"}}");
    mm_k8s_write_opts wo = {.field_manager = "maskmesh-test"};
    OK(mm_k8s_create(c, &CM, o, &wo, &res, &eb));
    assert_int_equal(res.http_code, 201);
    char *uid = mm_strdup(meta(res.body, "uid"));
    char *rv1 = mm_strdup(meta(res.body, "resourceVersion"));
    assert_non_null(uid);
    assert_non_null(rv1);
    /* create again: 409 AlreadyExists */
    assert_int_equal(mm_k8s_create(c, &CM, o, &wo, &res, &eb), MM_ECONFLICT);
    assert_string_equal(res.status.reason, "AlreadyExists");
    json_object_put(o);

    /* get */
    OK(mm_k8s_get(c, &r, &res, &eb));
    assert_int_equal(res.http_code, 200);
    assert_string_equal(data_of(res.body, "a"), "1");

    /* update with the read resourceVersion: 200; again with the stale one: 409, then a fresh
     * get and a retry succeed (optimistic concurrency, wire rule 8) */
    o = json_object_get(res.body);
    json_object_object_add(json_object_object_get(o, "data"), "a", json_object_new_string("2"));
    OK(mm_k8s_update(c, &r, o, NULL, &res, &eb));
    assert_int_equal(res.http_code, 200);
    assert_string_equal(data_of(res.body, "a"), "2");
    assert_string_not_equal(meta(res.body, "resourceVersion"), rv1);
    assert_int_equal(mm_k8s_update(c, &r, o, NULL, &res, &eb), MM_ECONFLICT);
    assert_int_equal(res.http_code, 409);
    assert_string_equal(res.status.reason, "Conflict");
    assert_string_equal(res.status.message,
                        "Operation cannot be fulfilled on configmaps \"verbs-a\": the object has "
                        "been modified; please apply your changes to the latest version and try "
                        "again");
    assert_non_null(strstr(eb.msg, "PUT /api/v1/namespaces/default/configmaps/verbs-a: 409"));
    json_object_put(o);
    OK(mm_k8s_get(c, &r, &res, &eb));
    o = json_object_get(res.body);
    json_object_object_add(json_object_object_get(o, "data"), "a", json_object_new_string("3"));
    OK(mm_k8s_update(c, &r, o, NULL, &res, &eb));
    assert_string_equal(data_of(res.body, "a"), "3");
    json_object_put(o);

    /* patches: merge, JSON patch, server-side apply (fieldManager + force) */
    const char *merge = "{\"data\":{\"m\":\"merged\"}}";
    OK(mm_k8s_patch(c, &r, MM_K8S_PATCH_MERGE, merge, strlen(merge), NULL, &res, &eb));
    assert_string_equal(data_of(res.body, "m"), "merged");
    const char *jp = "[{\"op\":\"replace\",\"path\":\"/data/m\",\"value\":\"jp\"}]";
    OK(mm_k8s_patch(c, &r, MM_K8S_PATCH_JSON, jp, strlen(jp), NULL, &res, &eb));
    assert_string_equal(data_of(res.body, "m"), "jp");
    const char *smp = "{\"data\":{\"s\":\"smp\"}}";
    OK(mm_k8s_patch(c, &r, MM_K8S_PATCH_STRATEGIC, smp, strlen(smp), NULL, &res, &eb));
    assert_string_equal(data_of(res.body, "s"), "smp");
    const char *apply = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                        "\"verbs-a\"},\"data\":{\"a\":\"applied\"}}";
    mm_k8s_patch_opts po = {.field_manager = "maskmesh-controller", .force = true};
    OK(mm_k8s_patch(c, &r, MM_K8S_PATCH_APPLY, apply, strlen(apply), &po, &res, &eb));
    assert_string_equal(data_of(res.body, "a"), "applied");
    /* apply creating the object: 201 (wire rule 17) */
    mm_k8s_ref r2 = cm("verbs-applied");
    const char *apply2 = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                         "\"verbs-applied\"},\"data\":{\"x\":\"y\"}}";
    OK(mm_k8s_patch(c, &r2, MM_K8S_PATCH_APPLY, apply2, strlen(apply2), &po, &res, &eb));
    assert_int_equal(res.http_code, 201);
    /* no_body: the write is made (the next read shows it), its answer is not parsed */
    mm_k8s_patch_opts quiet = {.field_manager = "maskmesh-controller", .force = true, .no_body = true};
    const char *apply3 = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                         "\"verbs-applied\"},\"data\":{\"x\":\"quiet\"}}";
    OK(mm_k8s_patch(c, &r2, MM_K8S_PATCH_APPLY, apply3, strlen(apply3), &quiet, &res, &eb));
    assert_int_equal(res.http_code, 200);
    assert_null(res.body);
    OK(mm_k8s_get(c, &r2, &res, &eb));
    assert_string_equal(data_of(res.body, "x"), "quiet");
    /* the client refuses what the server would (wire rule 10) before a round trip */
    mm_k8s_patch_opts nomgr = {0}, force = {.force = true};
    assert_int_equal(mm_k8s_patch(c, &r, MM_K8S_PATCH_APPLY, apply, strlen(apply), &nomgr, &res,
                                  &eb),
                     MM_EINVAL);
    assert_non_null(strstr(eb.msg, "fieldManager"));
    assert_int_equal(mm_k8s_patch(c, &r, MM_K8S_PATCH_MERGE, merge, strlen(merge), &force, &res,
                                  &eb),
                     MM_EINVAL);
    /* an apply body is YAML to kube-apiserver, which refuses json-c's \/ escape (400 "found
     * unknown escape character"); an escaped backslash before a / is fine */
    const char *slash = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                        "\"verbs-a\"},\"data\":{\"a\":\"x\\/y\"}}";
    assert_int_equal(mm_k8s_patch(c, &r, MM_K8S_PATCH_APPLY, slash, strlen(slash), &po, &res, &eb),
                     MM_EINVAL);
    assert_non_null(strstr(eb.msg, "escape \\/ at byte 82"));
    const char *bs = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                     "\"verbs-a\"},\"data\":{\"a\":\"x\\\\/y\"}}";
    OK(mm_k8s_patch(c, &r, MM_K8S_PATCH_APPLY, bs, strlen(bs), &po, &res, &eb));
    assert_string_equal(data_of(res.body, "a"), "x\\/y");

    /* list with a label selector */
    mm_k8s_list_opts lo = {.label_selector = "t=verbs"};
    OK(mm_k8s_list(c, &CM, &lo, &res, &eb));
    struct json_object *items = json_object_object_get(res.body, "items");
    assert_int_equal(json_object_array_length(items), 1);
    /* built-in list items carry no kind (wire rule 2) */
    assert_null(json_object_object_get(json_object_array_get_idx(items, 0), "kind"));

    /* delete: a wrong uid precondition is a 409; the right one deletes */
    mm_k8s_delete_opts dwrong = {.precondition_uid = "00000000-0000-0000-0000-000000000000",
                                 .grace_period_seconds = -1};
    assert_int_equal(mm_k8s_delete(c, &r, &dwrong, &res, &eb), MM_ECONFLICT);
    mm_k8s_delete_opts dok = {.precondition_uid = uid, .propagation_policy = "Background",
                              .grace_period_seconds = -1};
    OK(mm_k8s_delete(c, &r, &dok, &res, &eb));
    assert_int_equal(res.http_code, 200);
    OK(mm_k8s_delete(c, &r2, NULL, &res, &eb));
    /* gone: a NotFound Status naming the resource (wire rule 14) */
    assert_int_equal(mm_k8s_get(c, &r, &res, &eb), MM_ENOTFOUND);
    assert_string_equal(res.status.reason, "NotFound");
    assert_string_equal(res.status.details_name, "verbs-a");
    assert_string_equal(res.status.details_kind, "configmaps");

    /* cluster-scoped: namespaces */
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = "default"};
    OK(mm_k8s_get(c, &ns, &res, &eb));
    assert_string_equal(meta(res.body, "name"), "default");
    ns.name = NULL;
    OK(mm_k8s_list(c, &ns, NULL, &res, &eb));
    assert_true(json_object_array_length(json_object_object_get(res.body, "items")) >= 1);

    /* a group the server does not serve: 404 (plain text or Status), mapped to ENOTFOUND */
    mm_k8s_ref nope = {.group = "nope.example.com", .version = "v1", .resource = "things",
                       .ns = "default"};
    assert_int_equal(mm_k8s_list(c, &nope, NULL, &res, &eb), MM_ENOTFOUND);
    assert_int_equal(res.status.code, 404);
    assert_string_equal(res.status.reason, "NotFound");

    /* every request above reused one connection */
    assert_int_equal(mm_k8s_client_connections(c), 1);
    mm_k8s_result_clear(&res);
    mm_free(uid);
    mm_free(rv1);
    mm_k8s_client_free(c);
}

/* A custom resource with a /status subresource (wire rule 7). */
static void test_custom_resource_status(void **state)
{
    (void)state;
    mm_k8s_client *c = admin();
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    char *crd = NULL;
    size_t len;

    OK(mm_read_file("e2e/apiserver/tests/fixtures/maskingpolicies-crd.json", 1 << 20, &crd, &len,
                    &eb));
    struct json_object *o = parse(crd);
    mm_k8s_ref crds = {.group = "apiextensions.k8s.io", .version = "v1",
                       .resource = "customresourcedefinitions"};
    mm_err rc = mm_k8s_create(c, &crds, o, NULL, &res, &eb);
    assert_true(rc == MM_OK || rc == MM_ECONFLICT);
    json_object_put(o);
    mm_free(crd);

    mm_k8s_ref mps = {.group = "maskmesh.io", .version = "v1alpha1", .resource = "maskingpolicies",
                      .ns = "default"};
    o = parse("{\"apiVersion\":\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\","
              "\"metadata\":{\"name\":\"payments-api\"},\"spec\":{\"selector\":{\"matchLabels\":"
              "{\"app\":\"payments\"}},\"port\":8080,\"rules\":[{\"name\":\"card\",\"fields\":"
              "[\"$.card\"],\"action\":{\"type\":\"redact\"}}]}}");
    /* the CRD may take a moment to be served */
    for (int i = 0; i < 50; i++) {
        rc = mm_k8s_create(c, &mps, o, NULL, &res, &eb);
        if (rc != MM_ENOTFOUND)
            break;
        usleep(100000);
    }
    json_object_put(o);
    OK(rc);
    assert_int_equal(res.http_code, 201);
    assert_string_equal(json_object_get_string(json_object_object_get(
                            json_object_object_get(res.body, "metadata"), "generation")),
                        "1");
    /* PUT /status: status changes, generation does not */
    o = json_object_get(res.body);
    json_object_object_add(o, "status",
                           parse("{\"observedGeneration\":1,\"conditions\":[{\"type\":\"Ready\","
                                 "\"status\":\"True\",\"reason\":\"Rendered\",\"message\":\"ok\","
                                 "\"lastTransitionTime\":\"2026-07-20T10:20:32Z\"}]}"));
    mm_k8s_ref st = mps;
    st.name = "payments-api";
    st.subresource = "status";
    OK(mm_k8s_update(c, &st, o, &(mm_k8s_write_opts){.field_manager = "maskmesh-controller"},
                     &res, &eb));
    json_object_put(o);
    struct json_object *s = json_object_object_get(res.body, "status");
    assert_int_equal(json_object_get_int(json_object_object_get(s, "observedGeneration")), 1);
    assert_int_equal(json_object_get_int(json_object_object_get(
                         json_object_object_get(res.body, "metadata"), "generation")),
                     1);
    /* strategic merge on a custom resource: 415 (wire rule 9) */
    mm_k8s_ref one = mps;
    one.name = "payments-api";
    const char *smp = "{\"spec\":{\"port\":8081}}";
    assert_int_equal(mm_k8s_patch(c, &one, MM_K8S_PATCH_STRATEGIC, smp, strlen(smp), NULL, &res,
                                  &eb),
                     MM_EHTTP);
    assert_int_equal(res.status.code, 415);
    assert_string_equal(res.status.reason, "UnsupportedMediaType");
    /* custom resource list items carry kind (wire rule 2) */
    OK(mm_k8s_list(c, &mps, NULL, &res, &eb));
    struct json_object *it = json_object_array_get_idx(json_object_object_get(res.body, "items"), 0);
    assert_string_equal(json_object_get_string(json_object_object_get(it, "kind")),
                        "MaskingPolicy");
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(c);
}

/* ---- paging --------------------------------------------------------------------------------- */

static int count_item(void *ud, struct json_object *item)
{
    (void)item;
    (*(int *)ud)++;
    return 0;
}

static void test_paging(void **state)
{
    (void)state;
    mm_k8s_client *c = admin();
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    char name[32];

    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "page-%d", i);
        create_cm(c, name, "{\"t\":\"paging\"}");
    }
    /* by hand: continue tokens passed back verbatim, the last page has none */
    mm_k8s_list_opts lo = {.label_selector = "t=paging", .limit = 2};
    int pages = 0, items = 0;
    char *cont = NULL, *rv = NULL;
    do {
        lo.continue_token = cont;
        OK(mm_k8s_list(c, &CM, &lo, &res, &eb));
        pages++;
        items += (int)json_object_array_length(json_object_object_get(res.body, "items"));
        const char *next = meta(res.body, "continue");
        const char *lrv = meta(res.body, "resourceVersion");
        if (!rv)
            rv = mm_strdup(lrv);
        else
            assert_string_equal(rv, lrv); /* every page is the same snapshot */
        mm_free(cont);
        cont = next && *next ? mm_strdup(next) : NULL;
    } while (cont);
    assert_int_equal(pages, 3);
    assert_int_equal(items, 5);
    mm_free(rv);

    /* remainingItemCount without selectors */
    mm_k8s_list_opts all = {.limit = 1};
    OK(mm_k8s_list(c, &CM, &all, &res, &eb));
    struct json_object *m = json_object_object_get(res.body, "metadata");
    assert_non_null(json_object_object_get(m, "remainingItemCount"));

    /* list_all over pages */
    int n = 0;
    OK(mm_k8s_list_all(c, &CM, &lo, count_item, &n, &rv, &res, &eb));
    assert_int_equal(n, 5);
    assert_non_null(rv);
    mm_free(rv);

    /* an expired continue token (compaction): 410 Expired with a fresh token (wire rule 6) */
    lo.continue_token = NULL;
    OK(mm_k8s_list(c, &CM, &lo, &res, &eb));
    cont = mm_strdup(meta(res.body, "continue"));
    create_cm(c, "page-later", "{\"t\":\"paging\"}");
    fault("{\"compact\":true}");
    lo.continue_token = cont;
    assert_int_equal(mm_k8s_list(c, &CM, &lo, &res, &eb), MM_EGONE);
    assert_string_equal(res.status.reason, "Expired");
    assert_non_null(res.status.continue_token);
    mm_free(cont);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(c);
}

/* ---- Retry-After ---------------------------------------------------------------------------- */

static void test_retry_after(void **state)
{
    (void)state;
    mm_k8s_client_opts o = {.max_retries = 2};
    mm_k8s_client *c = client_from(kubeconfig, &o);
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = "default"};

    /* 429 with Retry-After: 1 → waited about a second, then the answer */
    fault("{\"fail\":{\"code\":429,\"count\":1,\"retryAfter\":1,\"path\":\"/api/v1/namespaces\"}}");
    uint64_t t0 = mm_now_ns();
    OK(mm_k8s_get(c, &ns, &res, &eb));
    uint64_t ms = (mm_now_ns() - t0) / 1000000;
    assert_int_equal(res.retries, 1);
    assert_true(ms >= 900 && ms < 5000);
    /* 500 without Retry-After: no retry (client-go) */
    fault("{\"fail\":{\"code\":500,\"count\":1,\"path\":\"/api/v1/namespaces\"}}");
    assert_int_equal(mm_k8s_get(c, &ns, &res, &eb), MM_EHTTP);
    assert_int_equal(res.retries, 0);
    assert_int_equal(res.status.code, 500);
    assert_string_equal(res.status.causes[0].message, "injected fault");
    OK(mm_k8s_get(c, &ns, &res, &eb));
    /* 503 with Retry-After: 0, more times than allowed: bounded */
    fault("{\"fail\":{\"code\":503,\"count\":5,\"retryAfter\":0,\"path\":\"/api/v1/namespaces\"}}");
    assert_int_equal(mm_k8s_get(c, &ns, &res, &eb), MM_EHTTP);
    assert_int_equal(res.retries, 2);
    assert_int_equal(res.http_code, 503);
    fault("{\"fail\":null}");
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(c);
}

/* ---- auth and TLS ---------------------------------------------------------------------------- */

static void test_token_rotation(void **state)
{
    (void)state;
    char kc[300], tok[300], user[400];
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    struct stat sb;

    snprintf(kc, sizeof(kc), "%s/kc-tokenfile", dir);
    snprintf(tok, sizeof(tok), "%s/token", dir);
    write_text(tok, BAD_TOKEN "\n");
    snprintf(user, sizeof(user), "    tokenFile: %s\n", tok);
    char cluster[9000];
    snprintf(cluster, sizeof(cluster), "    certificate-authority: %s/ca.pem\n", dir);
    char capath[300];
    snprintf(capath, sizeof(capath), "%s/ca.pem", dir);
    write_text(capath, ca_pem);
    write_kubeconfig(kc, cluster, user);
    mm_k8s_client *c = client_from(kc, NULL);
    assert_int_equal(c->token_reads, 1);

    /* a token the server refuses: 401 after one forced re-read of the file, not a loop */
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = "default"};
    assert_int_equal(mm_k8s_get(c, &ns, &res, &eb), MM_EHTTP);
    assert_int_equal(res.status.code, 401);
    assert_string_equal(res.status.reason, "Unauthorized");
    assert_null(strstr(eb.msg, "wrong-token")); /* never a token in a message */
    assert_int_equal(c->token_reads, 2);
    /* the file changes between requests (a kubelet rotation): the stat check before the
     * next request sees it, and no 401 is needed */
    write_text(tok, ADMIN_TOKEN "\n");
    assert_int_equal(stat(tok, &sb), 0);
    struct timespec later[2] = {{sb.st_mtim.tv_sec + 10, 0}, {sb.st_mtim.tv_sec + 10, 0}};
    assert_int_equal(utimensat(AT_FDCWD, tok, later, 0), 0); /* a coarse clock cannot hide it */
    struct json_object *o = parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
                                  "{\"name\":\"rotated\"}}");
    OK(mm_k8s_create(c, &CM, o, NULL, &res, &eb));
    assert_int_equal(res.http_code, 201);
    assert_int_equal(c->token_reads, 3);
    OK(mm_k8s_get(c, &ns, &res, &eb)); /* unchanged file: not read again */
    assert_int_equal(c->token_reads, 3);

    /* a change the stat check cannot see (same inode, size and mtime): the 401 makes the
     * client read the file once more and retry */
    write_text(tok, BAD_TOKEN "\n");
    assert_int_equal(utimensat(AT_FDCWD, tok, later, 0), 0);
    mm_k8s_client *c2 = client_from(kc, NULL);
    write_text(tok, ADMIN_TOKEN "\n");
    assert_int_equal(utimensat(AT_FDCWD, tok, later, 0), 0);
    mm_k8s_ref r = cm("rotated");
    OK(mm_k8s_get(c2, &r, &res, &eb));
    assert_int_equal(res.http_code, 200);
    assert_int_equal(c2->token_reads, 2);
    write_text(tok, ADMIN_TOKEN "\n");
    OK(mm_k8s_delete(c, &r, NULL, &res, &eb));
    json_object_put(o);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(c2);
    mm_k8s_client_free(c);
}

static void test_tls(void **state)
{
    (void)state;
    char kc[300];
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = "default"};
    snprintf(kc, sizeof(kc), "%s/kc-tls", dir);

    /* no CA: the system roots do not know the stand-in's CA */
    write_kubeconfig(kc, "", "    token: " ADMIN_TOKEN "\n");
    mm_k8s_client *c = client_from(kc, NULL);
    assert_int_equal(mm_k8s_get(c, &ns, &res, &eb), MM_ETLS);
    assert_null(strstr(eb.msg, ADMIN_TOKEN));
    mm_k8s_client_free(c);
    /* insecure-skip-tls-verify */
    write_kubeconfig(kc, "    insecure-skip-tls-verify: true\n", "    token: " ADMIN_TOKEN "\n");
    c = client_from(kc, NULL);
    OK(mm_k8s_get(c, &ns, &res, &eb));
    mm_k8s_client_free(c);
    /* the CA as a file (certificate-authority); -data is the stand-in's own kubeconfig */
    char cluster[400];
    snprintf(cluster, sizeof(cluster), "    certificate-authority: %s/ca.pem\n", dir);
    char capath[300];
    snprintf(capath, sizeof(capath), "%s/ca.pem", dir);
    write_text(capath, ca_pem);
    write_kubeconfig(kc, cluster, "    token: " ADMIN_TOKEN "\n");
    c = client_from(kc, NULL);
    OK(mm_k8s_get(c, &ns, &res, &eb));
    mm_k8s_client_free(c);
    /* a wrong token in a literal-token kubeconfig: 401 */
    write_kubeconfig(kc, cluster, "    token: " BAD_TOKEN "\n");
    c = client_from(kc, NULL);
    assert_int_equal(mm_k8s_get(c, &ns, &res, &eb), MM_EHTTP);
    assert_int_equal(res.status.code, 401);
    mm_k8s_client_free(c);
    mm_k8s_result_clear(&res);
}

/* The stand-in's kubeconfig contexts with client certificates: mm-cert (O=system:masters)
 * may do everything, with the certificate inline (-data) or in files named relative to the
 * kubeconfig; mm-dev authenticates but has no rights (403 naming the user). */
static void test_client_cert(void **state)
{
    (void)state;
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = "default"};
    const char *contexts[] = {"mm-cert", "mm-cert-files"};
    for (size_t i = 0; i < 2; i++) {
        mm_k8s_config *cfg = NULL;
        mm_k8s_client *c = NULL;
        if (mm_k8s_config_kubeconfig(kubeconfig, contexts[i], &cfg, &eb) != MM_OK)
            fail_msg("kubeconfig %s: %s", contexts[i], eb.msg);
        assert_int_equal(mm_k8s_config_auth(cfg), MM_K8S_AUTH_CERT);
        OK(mm_k8s_client_new(cfg, NULL, &c, &eb));
        mm_k8s_config_free(cfg);
        OK(mm_k8s_get(c, &ns, &res, &eb));
        assert_int_equal(res.http_code, 200);
        char name[64];
        snprintf(name, sizeof(name), "cert-%zu", i);
        create_cm(c, name, "{\"t\":\"cert\"}");
        mm_k8s_ref r = cm(name);
        OK(mm_k8s_delete(c, &r, NULL, &res, &eb));
        mm_k8s_client_free(c);
    }

    mm_k8s_config *cfg = NULL;
    mm_k8s_client *c = NULL;
    OK(mm_k8s_config_kubeconfig(kubeconfig, "mm-dev", &cfg, &eb));
    OK(mm_k8s_client_new(cfg, NULL, &c, &eb));
    mm_k8s_config_free(cfg);
    assert_int_equal(mm_k8s_get(c, &ns, &res, &eb), MM_EHTTP);
    assert_int_equal(res.status.code, 403);
    assert_string_equal(res.status.reason, "Forbidden");
    assert_non_null(strstr(res.status.message, "User \"mm-dev\""));
    mm_k8s_client_free(c);
    mm_k8s_result_clear(&res);
}

/* A certificate and key from a CA the stand-in does not trust: TLS succeeds, the request is
 * 401 (kube-apiserver asks for a certificate without requiring one); the stand-in's own
 * certificate with another key is refused by the client's TLS layer before any request. */
static void test_client_cert_refused(void **state)
{
    (void)state;
    char kc[300], key[300], crt[300], user[1000], cluster[400];
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = "default"};

    /* mallory: O=system:masters, from a CA the stand-in does not trust */
    assert_int_equal(test_make_cert(dir, "other", "/O=system:masters/CN=mallory", NULL), 0);
    snprintf(key, sizeof(key), "%s/other.key", dir);
    snprintf(crt, sizeof(crt), "%s/other.crt", dir);
    char capath[300];
    snprintf(capath, sizeof(capath), "%s/ca.pem", dir);
    write_text(capath, ca_pem);
    snprintf(cluster, sizeof(cluster), "    certificate-authority: %s\n", capath);
    snprintf(kc, sizeof(kc), "%s/kc-othercert", dir);
    snprintf(user, sizeof(user), "    client-certificate: %s\n    client-key: %s\n", crt, key);
    write_kubeconfig(kc, cluster, user);
    mm_k8s_client *c = client_from(kc, NULL);
    assert_int_equal(mm_k8s_get(c, &ns, &res, &eb), MM_EHTTP);
    assert_int_equal(res.status.code, 401);
    assert_string_equal(res.status.reason, "Unauthorized");
    mm_k8s_client_free(c);

    /* mm-cert's certificate (the stand-in writes kubeconfig.mm-cert.crt) with mallory's key */
    snprintf(user, sizeof(user),
             "    client-certificate: kubeconfig.mm-cert.crt\n    client-key: %s\n", key);
    snprintf(kc, sizeof(kc), "%s/kc-mismatch", dir);
    write_kubeconfig(kc, cluster, user);
    c = client_from(kc, NULL);
    assert_int_equal(mm_k8s_get(c, &ns, &res, &eb), MM_ETLS);
    mm_k8s_client_free(c);
    mm_k8s_result_clear(&res);
}

/* The client asks for h2 over TLS; the stand-in's ALPN offers only http/1.1, so the
 * transfers are HTTP/1.1, on one kept-alive connection. */
static void test_http11_fallback(void **state)
{
    (void)state;
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_k8s_client *c = admin();
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = "default"};
    for (int i = 0; i < 3; i++) {
        atomic_store(&test_last_http_version, -1);
        OK(mm_k8s_get(c, &ns, &res, &eb));
        assert_int_equal(atomic_load(&test_last_http_version), CURL_HTTP_VERSION_1_1);
    }
    assert_int_equal(mm_k8s_client_connections(c), 1);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(c);
}

static void test_timeouts(void **state)
{
    (void)state;
    mm_k8s_client_opts o = {.request_timeout_ms = 500};
    mm_k8s_client *c = client_from(kubeconfig, &o);
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_k8s_ref ns = {.version = "v1", .resource = "namespaces", .name = "default"};
    fault("{\"delay\":2}");
    uint64_t t0 = mm_now_ns();
    assert_int_equal(mm_k8s_get(c, &ns, &res, &eb), MM_ETIMEOUT);
    assert_true((mm_now_ns() - t0) / 1000000 < 1900);
    fault("{\"delay\":0}");
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(c);
}

/* ---- watch and informer ---------------------------------------------------------------------- */

typedef struct {
    int n, added, modified, deleted, bookmarks, errors;
} wlog;

static int watch_log(void *ud, const mm_k8s_event *ev)
{
    wlog *l = ud;
    l->n++;
    switch (ev->type) {
    case MM_K8S_ADDED: l->added++; break;
    case MM_K8S_MODIFIED: l->modified++; break;
    case MM_K8S_DELETED: l->deleted++; break;
    case MM_K8S_BOOKMARK: l->bookmarks++; break;
    case MM_K8S_ERROR: l->errors++; break;
    }
    return 0;
}

static void test_watch(void **state)
{
    (void)state;
    mm_k8s_client *c = admin();
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    create_cm(c, "watch-a", "{\"t\":\"watch\"}");
    mm_k8s_list_opts lo = {.label_selector = "t=watch"};
    OK(mm_k8s_list(c, &CM, &lo, &res, &eb));
    char *rv = mm_strdup(meta(res.body, "resourceVersion"));
    create_cm(c, "watch-b", "{\"t\":\"watch\"}");
    mm_k8s_ref b = cm("watch-b");
    const char *merge = "{\"data\":{\"k\":\"v2\"}}";
    OK(mm_k8s_patch(c, &b, MM_K8S_PATCH_MERGE, merge, strlen(merge), NULL, &res, &eb));
    OK(mm_k8s_delete(c, &b, NULL, &res, &eb));
    /* from the list's RV: the three changes since, bookmarks, then the server ends it */
    wlog l = {0};
    mm_k8s_watch_opts wo = {.resource_version = rv, .label_selector = "t=watch",
                            .allow_bookmarks = true, .timeout_seconds = 1};
    OK(mm_k8s_watch(c, &CM, &wo, watch_log, &l, &res, &eb));
    assert_int_equal(l.added, 1);
    assert_int_equal(l.modified, 1);
    assert_int_equal(l.deleted, 1);
    assert_true(l.bookmarks >= 1);
    /* sendInitialEvents: the current objects, then the initial-events-end bookmark */
    wlog l2 = {0};
    mm_k8s_watch_opts wi = {.label_selector = "t=watch", .allow_bookmarks = true,
                            .send_initial_events = true,
                            .resource_version_match = "NotOlderThan", .timeout_seconds = 1};
    OK(mm_k8s_watch(c, &CM, &wi, watch_log, &l2, &res, &eb));
    assert_int_equal(l2.added, 1);
    assert_true(l2.bookmarks >= 1);
    /* an expired RV: HTTP 200 and an ERROR event with code 410 (wire rule 5) */
    fault("{\"compact\":true}");
    create_cm(c, "watch-c", "{\"t\":\"watch\"}");
    fault("{\"compact\":true}");
    wlog l3 = {0};
    OK(mm_k8s_watch(c, &CM, &wo, watch_log, &l3, &res, &eb));
    assert_int_equal(l3.errors, 1);
    mm_free(rv);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(c);
}

typedef struct {
    pthread_mutex_t mu;
    int adds, updates, deletes;
} hcount;

static void h_add(void *ud, struct json_object *o)
{
    (void)o;
    hcount *h = ud;
    pthread_mutex_lock(&h->mu);
    h->adds++;
    pthread_mutex_unlock(&h->mu);
}
static void h_update(void *ud, struct json_object *a, struct json_object *b)
{
    (void)a;
    (void)b;
    hcount *h = ud;
    pthread_mutex_lock(&h->mu);
    h->updates++;
    pthread_mutex_unlock(&h->mu);
}
static void h_delete(void *ud, struct json_object *o)
{
    (void)o;
    hcount *h = ud;
    pthread_mutex_lock(&h->mu);
    h->deletes++;
    pthread_mutex_unlock(&h->mu);
}

static void *drop_later(void *arg)
{
    (void)arg;
    usleep(400000);
    return try_fault("{\"dropWatches\":true}") ? arg : NULL;
}

/* The informer driven step by step from this thread: deterministic. */
static void test_informer_steps(void **state)
{
    (void)state;
    mm_k8s_client *c = admin();
    mm_errbuf eb = {{0}};
    mm_k8s_result res = {0};
    hcount h = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
    mm_k8s_handlers hs = {h_add, h_update, h_delete, &h};
    mm_k8s_informer *inf = NULL;
    mm_k8s_informer_stats st;
    long delay;

    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "inf-%d", i);
        create_cm(c, name, "{\"t\":\"inf\"}");
    }
    mm_k8s_informer_opts io = {.label_selector = "t=inf", .page_size = 2, .watch_timeout_s = 1,
                               .backoff_initial_ms = 100};
    OK(mm_k8s_informer_new(c, &CM, &io, &hs, &inf, &eb));
    assert_false(mm_k8s_informer_synced(inf));
    /* 1: the paged list */
    OK(mm_k8s_informer_step(inf, &delay, &eb));
    assert_true(mm_k8s_informer_synced(inf));
    assert_int_equal(mm_k8s_informer_count(inf), 3);
    assert_int_equal(h.adds, 3);
    struct json_object *got = mm_k8s_informer_get(inf, "default", "inf-1");
    assert_non_null(got);
    assert_string_equal(meta(got, "name"), "inf-1");
    json_object_put(got);
    assert_null(mm_k8s_informer_get(inf, "default", "nope"));

    /* 2: changes made now arrive on the watch from the list's RV; the server ends it after
     * timeoutSeconds, and the informer resumes */
    create_cm(c, "inf-3", "{\"t\":\"inf\"}");
    mm_k8s_ref r0 = cm("inf-0");
    OK(mm_k8s_delete(c, &r0, NULL, &res, &eb));
    OK(mm_k8s_informer_step(inf, &delay, &eb));
    assert_int_equal(delay, 0);
    assert_int_equal(mm_k8s_informer_count(inf), 3);
    assert_int_equal(h.adds, 4);
    assert_int_equal(h.deletes, 1);
    char *rv_before = mm_k8s_informer_resource_version(inf);

    /* 3: a dropped connection: the informer resumes from the last RV, no relist */
    pthread_t t;
    create_cm(c, "inf-4", "{\"t\":\"inf\"}");
    void *dropped = NULL;
    static int marker;
    assert_int_equal(pthread_create(&t, NULL, drop_later, &marker), 0);
    mm_err rc = mm_k8s_informer_step(inf, &delay, &eb);
    pthread_join(t, &dropped);
    assert_non_null(dropped);
    assert_true(rc == MM_EIO || rc == MM_OK); /* dropped mid-stream */
    assert_int_equal(h.adds, 5);
    mm_k8s_informer_get_stats(inf, &st);
    assert_int_equal(st.lists, 1);
    char *rv_after = mm_k8s_informer_resource_version(inf);
    assert_non_null(rv_after); /* still watching: no relist pending */
    assert_string_not_equal(rv_after, rv_before);
    mm_free(rv_before);
    mm_free(rv_after);
    OK(mm_k8s_informer_step(inf, &delay, &eb)); /* the resumed watch, nothing new */
    mm_k8s_informer_get_stats(inf, &st);
    assert_int_equal(st.lists, 1);

    /* 4: compaction past our RV: ERROR 410 on the watch, then a relist whose differences
     * reach the handlers (inf-1 changed, inf-2 deleted, inf-5 new) */
    mm_k8s_ref r1 = cm("inf-1"), r2 = cm("inf-2");
    const char *merge = "{\"data\":{\"k\":\"changed\"}}";
    OK(mm_k8s_patch(c, &r1, MM_K8S_PATCH_MERGE, merge, strlen(merge), NULL, &res, &eb));
    OK(mm_k8s_delete(c, &r2, NULL, &res, &eb));
    create_cm(c, "inf-5", "{\"t\":\"inf\"}");
    fault("{\"compact\":true}");
    int adds = h.adds, updates = h.updates, deletes = h.deletes;
    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_EGONE);
    assert_int_equal(delay, 0);
    mm_k8s_informer_get_stats(inf, &st);
    assert_int_equal(st.relists_410, 1);
    OK(mm_k8s_informer_step(inf, &delay, &eb)); /* the relist */
    mm_k8s_informer_get_stats(inf, &st);
    assert_int_equal(st.lists, 2);
    assert_int_equal(h.adds, adds + 1);
    assert_int_equal(h.updates, updates + 1);
    assert_int_equal(h.deletes, deletes + 1);
    assert_int_equal(mm_k8s_informer_count(inf), 4); /* 1 3 4 5 */

    /* 5: a 429 on the watch: the next step waits at least the Retry-After */
    fault("{\"fail\":{\"code\":429,\"count\":1,\"retryAfter\":2,"
          "\"path\":\"/api/v1/namespaces/default/configmaps\"}}");
    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_EHTTP);
    assert_true(delay >= 2000);
    /* 6: a 500 without Retry-After: exponential backoff with jitter from 100 ms */
    fault("{\"fail\":{\"code\":500,\"count\":1,\"path\":\"/api/v1/namespaces/default/configmaps\"}}");
    assert_int_equal(mm_k8s_informer_step(inf, &delay, &eb), MM_EHTTP);
    assert_true(delay >= 200 && delay <= 300); /* the second backoff: 200 ms + up to 50% */
    OK(mm_k8s_informer_step(inf, &delay, &eb)); /* a 500: relist */
    assert_int_equal(mm_k8s_informer_count(inf), 4);

    mm_k8s_informer_free(inf);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(c);
}

static bool wait_for(hcount *h, int *field, int want, int ms)
{
    for (int i = 0; i < ms / 20; i++) {
        pthread_mutex_lock(&h->mu);
        bool ok = *field >= want;
        pthread_mutex_unlock(&h->mu);
        if (ok)
            return true;
        usleep(20000);
    }
    return false;
}

/* The informer on its own thread: sync, events, resume after drops, a prompt clean stop. */
static void test_informer_thread(void **state)
{
    (void)state;
    mm_k8s_client *c = admin();
    mm_errbuf eb = {{0}};
    hcount h = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
    mm_k8s_handlers hs = {h_add, h_update, h_delete, &h};
    mm_k8s_informer *inf = NULL;

    create_cm(c, "thr-0", "{\"t\":\"thr\"}");
    mm_k8s_informer_opts io = {.label_selector = "t=thr", .backoff_initial_ms = 100};
    OK(mm_k8s_informer_new(c, &CM, &io, &hs, &inf, &eb));
    OK(mm_k8s_informer_start(inf, &eb));
    for (int i = 0; i < 250 && !mm_k8s_informer_synced(inf); i++)
        usleep(20000);
    assert_true(mm_k8s_informer_synced(inf));
    assert_true(wait_for(&h, &h.adds, 1, 5000));
    create_cm(c, "thr-1", "{\"t\":\"thr\"}");
    assert_true(wait_for(&h, &h.adds, 2, 5000));
    fault("{\"dropWatches\":true}");
    usleep(200000);
    create_cm(c, "thr-2", "{\"t\":\"thr\"}");
    assert_true(wait_for(&h, &h.adds, 3, 5000));
    mm_k8s_informer_stats st;
    mm_k8s_informer_get_stats(inf, &st);
    assert_int_equal(st.lists, 1);
    assert_true(st.resumes >= 1);
    /* stop interrupts a watch the server holds open (300..600 s) within about a second */
    uint64_t t0 = mm_now_ns();
    mm_k8s_informer_stop(inf);
    assert_true((mm_now_ns() - t0) / 1000000 < 2500);
    assert_int_equal(mm_k8s_informer_count(inf), 3);
    mm_k8s_informer_free(inf);
    mm_k8s_client_free(c);
}

/* ---- leader election -------------------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    int started, stopped;
} lcount;

static void l_started(void *ud)
{
    lcount *l = ud;
    pthread_mutex_lock(&l->mu);
    l->started++;
    pthread_mutex_unlock(&l->mu);
}
static void l_stopped(void *ud)
{
    lcount *l = ud;
    pthread_mutex_lock(&l->mu);
    l->stopped++;
    pthread_mutex_unlock(&l->mu);
}

/* Each test has a Lease of its own, so a leader a failed test left running cannot hold the
 * next test's lease. */
#define LEASE "maskmesh-test-leader"
#define LEASE_STALLED "maskmesh-test-leader-stalled"

static mm_k8s_leader *contender(mm_k8s_client *c, lcount *l, const char *lease, const char *id,
                                bool no_release)
{
    mm_k8s_leader_opts o = {.ns = "default", .name = lease, .identity = id,
                            .lease_duration_ms = 3000, .renew_deadline_ms = 2000,
                            .retry_period_ms = 300, .no_release_on_stop = no_release,
                            .on_started_leading = l_started, .on_stopped_leading = l_stopped,
                            .ud = l};
    mm_k8s_leader *le = NULL;
    mm_errbuf eb = {{0}};
    OK(mm_k8s_leader_new(c, &o, &le, &eb));
    OK(mm_k8s_leader_start(le, &eb));
    return le;
}

static mm_k8s_leader *wait_leader(mm_k8s_leader *a, mm_k8s_leader *b, int ms)
{
    for (int i = 0; i < ms / 20; i++) {
        bool la = a && mm_k8s_leader_is_leader(a), lb = b && mm_k8s_leader_is_leader(b);
        assert_false(la && lb); /* never two leaders */
        if (la)
            return a;
        if (lb)
            return b;
        usleep(20000);
    }
    return NULL;
}

static struct json_object *lease_spec(mm_k8s_client *c, const char *lease,
                                      mm_k8s_lease_spec *spec, mm_k8s_result *res)
{
    mm_errbuf eb = {{0}};
    mm_k8s_ref r = {.group = "coordination.k8s.io", .version = "v1", .resource = "leases",
                    .ns = "default", .name = lease};
    OK(mm_k8s_get(c, &r, res, &eb));
    mm_free(spec->holder);
    OK(mm_k8s_lease_spec_from_json(res->body, spec, &eb));
    return json_object_object_get(res->body, "spec");
}

static void test_leader_election(void **state)
{
    (void)state;
    mm_k8s_client *ca = admin(), *cb = admin(), *cc = admin();
    lcount la = {PTHREAD_MUTEX_INITIALIZER, 0, 0}, lb = {PTHREAD_MUTEX_INITIALIZER, 0, 0},
           lc = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    mm_k8s_result res = {0};
    mm_k8s_lease_spec spec = {0};

    /* the default identity: <hostname>_<uuid> */
    mm_k8s_leader *anon = NULL;
    mm_errbuf eb = {{0}};
    mm_k8s_leader_opts ao = {.ns = "default", .name = "x"};
    OK(mm_k8s_leader_new(ca, &ao, &anon, &eb));
    const char *id = mm_k8s_leader_identity(anon);
    const char *us = strrchr(id, '_');
    assert_non_null(us);
    assert_int_equal(strlen(us + 1), 36);
    assert_int_equal(us[15], '4');
    mm_k8s_leader_free(anon);

    /* two contenders: exactly one wins, quickly, and stays the only leader */
    mm_k8s_leader *a = contender(ca, &la, LEASE, "contender-a", false);
    mm_k8s_leader *b = contender(cb, &lb, LEASE, "contender-b", false);
    mm_k8s_leader *first = wait_leader(a, b, 10000);
    assert_non_null(first);
    mm_k8s_leader *second = first == a ? b : a;
    usleep(700000); /* a few renewals */
    assert_true(wait_leader(a, b, 100) == first);
    struct json_object *s = lease_spec(cc, LEASE, &spec, &res);
    assert_string_equal(spec.holder, mm_k8s_leader_identity(first));
    assert_int_equal(spec.lease_duration_s, 3);
    /* MicroTime exactly as lease.json: 6 fractional digits, UTC Z */
    const char *renew = json_object_get_string(json_object_object_get(s, "renewTime"));
    assert_int_equal(strlen(renew), MM_K8S_MICROTIME_LEN);
    assert_int_equal(renew[19], '.');
    assert_int_equal(renew[26], 'Z');
    long transitions = spec.transitions;

    /* the leader releases on stop; the other takes over at once, sooner than the 3 s lease
     * could have expired */
    uint64_t t0 = mm_now_ns();
    mm_k8s_leader_stop(first);
    assert_int_equal((first == a ? &la : &lb)->stopped, 1);
    assert_true(wait_leader(second, NULL, 10000) == second);
    assert_true((mm_now_ns() - t0) / 1000000 < 2900);
    lease_spec(cc, LEASE, &spec, &res);
    assert_string_equal(spec.holder, mm_k8s_leader_identity(second));
    assert_int_equal(spec.transitions, transitions + 1);
    /* a release as client-go's ReleaseOnCancel: holder "", 1 s, transitions kept */
    mm_k8s_leader_stop(second);
    assert_false(mm_k8s_leader_is_leader(second));
    lease_spec(cc, LEASE, &spec, &res);
    assert_string_equal(spec.holder, "");
    assert_int_equal(spec.lease_duration_s, 1);
    assert_int_equal(spec.transitions, transitions + 1);

    /* a leader that dies without releasing (driven by hand, then abandoned): the next one
     * waits for renewTime + leaseDurationSeconds, not longer than a few retry periods more.
     * Times are measured from the renewTime the Lease holds (the wall clock, this machine's):
     * that is what the rule is about, and a slow step before the clock starts cannot make a
     * correct takeover look early. */
    mm_k8s_leader_opts dopts = {.ns = "default", .name = LEASE,
                                .identity = "crashed", .lease_duration_ms = 3000,
                                .renew_deadline_ms = 2000, .retry_period_ms = 300,
                                .no_release_on_stop = true};
    mm_k8s_leader *d = NULL;
    long delay;
    OK(mm_k8s_leader_new(cc, &dopts, &d, &eb));
    OK(mm_k8s_leader_step(d, &delay, &eb));
    assert_true(mm_k8s_leader_is_leader(d));
    assert_int_equal(delay, 300);
    mm_k8s_leader_free(d); /* no release */
    lease_spec(cc, LEASE, &spec, &res);
    assert_string_equal(spec.holder, "crashed");
    int64_t crashed_renew = spec.renew_us;
    mm_k8s_leader *c = contender(cc, &lc, LEASE, "contender-c", false);
    assert_true(wait_leader(c, NULL, 15000) == c);
    int64_t ms = (mm_k8s_now_us() - crashed_renew) / 1000;
    assert_true(ms >= 3000 && ms < 8000);
    lease_spec(cc, LEASE, &spec, &res);
    assert_string_equal(spec.holder, "contender-c");
    assert_int_equal(spec.transitions, transitions + 3);

    /* renewals fail past the renew deadline: c steps down and says so, not before 2 s after
     * a renewal the Lease showed before the failures began (the renewals after it are later
     * still), and within a few retry periods of the deadline */
    lease_spec(cc, LEASE, &spec, &res);
    int64_t renewed = spec.renew_us;
    t0 = mm_now_ns();
    fault("{\"fail\":{\"code\":500,\"count\":1000,\"path\":\"/apis/coordination.k8s.io\"}}");
    for (int i = 0; i < 500 && mm_k8s_leader_is_leader(c); i++)
        usleep(20000);
    int64_t stepped_down = mm_k8s_now_us();
    fault("{\"fail\":null}");
    assert_false(mm_k8s_leader_is_leader(c));
    assert_true((stepped_down - renewed) / 1000 >= 2000);
    assert_true((mm_now_ns() - t0) / 1000000 < 8000);
    assert_int_equal(lc.stopped, 1);
    /* and it gets it back once the server answers (its own lease, not expired) */
    assert_true(wait_leader(c, NULL, 10000) == c);
    assert_int_equal(lc.started, 2);

    mm_k8s_leader_free(c);
    mm_k8s_leader_free(b);
    mm_k8s_leader_free(a);
    mm_free(spec.holder);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(ca);
    mm_k8s_client_free(cb);
    mm_k8s_client_free(cc);
}

/* A list page that stalls (the stand-in delays only the ConfigMap path) on the client the
 * elector was made from: the elector has a connection of its own, so it keeps renewing and
 * never steps down, though the stall is twice its renew deadline. */
typedef struct {
    mm_k8s_client *c;
    mm_err rc;
    uint64_t ms;
} stalled_list;

static void *list_stalled(void *arg)
{
    stalled_list *l = arg;
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    uint64_t t0 = mm_now_ns();
    l->rc = mm_k8s_list(l->c, &CM, NULL, &res, &eb);
    l->ms = (mm_now_ns() - t0) / 1000000;
    mm_k8s_result_clear(&res);
    return NULL;
}

static void test_leader_renews_during_stalled_list(void **state)
{
    (void)state;
    mm_k8s_client *c = admin(), *observer = admin();
    lcount lc = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    mm_k8s_result res = {0};
    mm_k8s_lease_spec spec = {0};
    stalled_list l = {.c = c};
    pthread_t t;

    mm_k8s_leader *le = contender(c, &lc, LEASE_STALLED, "renews-while-listing", false);
    assert_true(wait_leader(le, NULL, 10000) == le);
    lease_spec(observer, LEASE_STALLED, &spec, &res);
    int64_t renew_before = spec.renew_us;

    fault("{\"delay\":{\"seconds\":4,\"path\":\"/api/v1/namespaces/default/configmaps\"}}");
    assert_int_equal(pthread_create(&t, NULL, list_stalled, &l), 0);
    /* the whole stall: leading all along (renewals every 300 ms, deadline 2 s) */
    uint64_t t0 = mm_now_ns();
    bool leading = true;
    while ((mm_now_ns() - t0) / 1000000 < 3500) {
        leading = leading && mm_k8s_leader_is_leader(le);
        usleep(50000);
    }
    lease_spec(observer, LEASE_STALLED, &spec, &res); /* during the stall: the Lease path is not delayed */
    pthread_join(t, NULL);
    fault("{\"delay\":0}");

    assert_int_equal(l.rc, MM_OK);
    assert_true(l.ms >= 3900); /* the list did stall */
    assert_true(leading);
    assert_int_equal(lc.stopped, 0);
    assert_string_equal(spec.holder, "renews-while-listing");
    /* renewed during the stall: the last renewal at most ~2 retry periods before we read */
    assert_true(spec.renew_us - renew_before >= 3000000);

    mm_k8s_leader_free(le);
    mm_free(spec.holder);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(observer);
    mm_k8s_client_free(c);
}

static int setup(void **state)
{
    if (start_standin(state) != 0)
        return -1;
    extract_ca();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),
        cmocka_unit_test(test_custom_resource_status),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_token_rotation),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_client_cert),
        cmocka_unit_test(test_client_cert_refused),
        cmocka_unit_test(test_http11_fallback),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_informer_steps),
        cmocka_unit_test(test_informer_thread),
        cmocka_unit_test(test_leader_election),
        cmocka_unit_test(test_leader_renews_during_stalled_list),
    };
    return cmocka_run_group_tests(tests, setup, stop_standin);
}
