/* Unit tests for lib/k8s without a server: URL building and escaping, kubeconfig of every
 * auth kind (files and -data) and its errors, in-cluster config, Status parsing of every
 * status-*.json sample, watch framing of the ndjson samples split at every byte, lease.json
 * and MicroTime, allocation failures in kubeconfig parsing and watch framing, and the
 * informer's store fed events directly (shaping, transforms, many objects, failures).
 * Run from the top of the tree: samples are read from tests/k8s-samples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "k8s/k8s_int.h" /* k8s_parse_warnings */

#define SAMPLES "tests/k8s-samples/"

static char *slurp(const char *path, size_t *len)
{
    char *text = NULL;
    size_t n = 0;
    mm_errbuf eb;
    if (mm_read_file(path, 1u << 24, &text, &n, &eb) != MM_OK)
        fail_msg("cannot read %s: %s", path, eb.msg);
    if (len)
        *len = n;
    return text;
}

static char tmpdir[256];

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mm-k8s-test-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    return 0;
}

static int teardown_tmp(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[600];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
    return 0;
}

/* ---- URLs ------------------------------------------------------------------------------- */

static void url_is(const char *server, mm_k8s_ref ref, const char *const *q, const char *want)
{
    char *url = NULL;
    mm_errbuf eb = {{0}};
    if (mm_k8s_build_url(server, &ref, q, &url, &eb) != MM_OK)
        fail_msg("build_url: %s", eb.msg);
    assert_string_equal(url, want);
    mm_free(url);
}

static void test_urls(void **state)
{
    (void)state;
    const char *srv = "https://10.0.0.1:6443";
    url_is(srv, (mm_k8s_ref){.version = "v1", .resource = "pods", .ns = "shop"}, NULL,
           "https://10.0.0.1:6443/api/v1/namespaces/shop/pods");
    url_is(srv, (mm_k8s_ref){.group = "", .version = "v1", .resource = "namespaces"}, NULL,
           "https://10.0.0.1:6443/api/v1/namespaces");
    url_is(srv,
           (mm_k8s_ref){.group = "maskmesh.io", .version = "v1alpha1",
                        .resource = "maskingpolicies", .ns = "shop", .name = "payments-api",
                        .subresource = "status"},
           NULL,
           "https://10.0.0.1:6443/apis/maskmesh.io/v1alpha1/namespaces/shop/maskingpolicies/"
           "payments-api/status");
    /* cluster-scoped custom resource, a server with a path prefix */
    url_is("https://example.com/k8s/clusters/c-1",
           (mm_k8s_ref){.group = "rbac.authorization.k8s.io", .version = "v1",
                        .resource = "clusterroles", .name = "system:controller"},
           NULL,
           "https://example.com/k8s/clusters/c-1/apis/rbac.authorization.k8s.io/v1/"
           "clusterroles/system%3Acontroller");
    /* every segment escaped: a '/' in a name cannot reach another path */
    url_is(srv,
           (mm_k8s_ref){.version = "v1", .resource = "configmaps", .ns = "a b",
                        .name = "../x/y?z#w"},
           NULL, "https://10.0.0.1:6443/api/v1/namespaces/a%20b/configmaps/..%2Fx%2Fy%3Fz%23w");
    /* query values escaped, NULL values skipped, order kept */
    const char *q[] = {"labelSelector", "app=payments,tier in (a,b)", "fieldSelector", NULL,
                       "resourceVersion", "48/2+1", "continue", "eyJ2Ijo=", "limit", "2", NULL};
    url_is(srv, (mm_k8s_ref){.version = "v1", .resource = "pods"}, q,
           "https://10.0.0.1:6443/api/v1/pods?labelSelector=app%3Dpayments%2Ctier%20in%20%28a%2C"
           "b%29&resourceVersion=48%2F2%2B1&continue=eyJ2Ijo%3D&limit=2");
    /* unreserved characters pass, UTF-8 bytes are escaped each */
    url_is(srv, (mm_k8s_ref){.version = "v1", .resource = "pods", .name = "a-b.c_d~e\xc3\xa9"},
           NULL, "https://10.0.0.1:6443/api/v1/pods/a-b.c_d~e%C3%A9");
}

static void test_url_errors(void **state)
{
    (void)state;
    char *url = NULL;
    mm_errbuf eb = {{0}};
    mm_k8s_ref dot = {.version = "v1", .resource = "pods", .ns = "shop", .name = ".."};
    assert_int_equal(mm_k8s_build_url("https://h", &dot, NULL, &url, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "name"));
    assert_null(url);
    mm_k8s_ref empty = {.version = "v1", .resource = "pods", .name = ""};
    assert_int_equal(mm_k8s_build_url("https://h", &empty, NULL, &url, &eb), MM_EINVAL);
    mm_k8s_ref nover = {.resource = "pods"};
    assert_int_equal(mm_k8s_build_url("https://h", &nover, NULL, &url, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "version"));
    mm_k8s_ref sub = {.version = "v1", .resource = "pods", .subresource = "status"};
    assert_int_equal(mm_k8s_build_url("https://h", &sub, NULL, &url, &eb), MM_EINVAL);
    /* a growing buffer with a limit: a huge selector is an error, never a truncation */
    char *big = malloc(MM_K8S_URL_MAX);
    assert_non_null(big);
    memset(big, 'a', MM_K8S_URL_MAX - 1);
    big[MM_K8S_URL_MAX - 1] = '\0';
    const char *q[] = {"labelSelector", big, NULL};
    mm_k8s_ref ok = {.version = "v1", .resource = "pods"};
    assert_int_equal(mm_k8s_build_url("https://h", &ok, q, &url, &eb), MM_ELIMIT);
    assert_null(url);
    free(big);
}

/* ---- kubeconfig --------------------------------------------------------------------------- */

/* base64 of the PEM-ish text the -data fields carry in these tests */
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
#define CERT_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="

static mm_k8s_config *kc_ok(const char *yaml, const char *context)
{
    mm_k8s_config *c = NULL;
    mm_errbuf eb = {{0}};
    char origin[512];
    snprintf(origin, sizeof(origin), "%s/kubeconfig", tmpdir);
    if (mm_k8s_config_parse_kubeconfig(yaml, strlen(yaml), origin, context, &c, &eb) != MM_OK)
        fail_msg("kubeconfig: %s", eb.msg);
    return c;
}

static mm_err kc_err(const char *yaml, const char *context, mm_errbuf *eb)
{
    mm_k8s_config *c = NULL;
    mm_err rc = mm_k8s_config_parse_kubeconfig(yaml, strlen(yaml), "kc.yaml", context, &c, eb);
    assert_null(c);
    return rc;
}

#define KC_HEAD                                                                                    \
    "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"                                        \
    "clusters:\n- name: c1\n  cluster:\n    server: https://127.0.0.1:6443/\n"                   \
    "    certificate-authority-data: " CERT_B64 "\n"                                               \
    "- name: c2\n  cluster:\n    server: https://k8s.example.com/prefix\n"                        \
    "    insecure-skip-tls-verify: true\n"                                                         \
    "contexts:\n- name: dev\n  context: {cluster: c1, user: u, namespace: shop}\n"                \
    "- name: other\n  context: {cluster: c2, user: u}\n"

static void test_kubeconfig_token(void **state)
{
    (void)state;
    mm_k8s_config *c = kc_ok(KC_HEAD "users:\n- name: u\n  user:\n    token: abc.def\n", NULL);
    assert_string_equal(mm_k8s_config_server(c), "https://127.0.0.1:6443");
    assert_string_equal(mm_k8s_config_namespace(c), "shop");
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_TOKEN);
    assert_false(mm_k8s_config_insecure(c));
    mm_k8s_config_free(c);
    /* a named context: another cluster, insecure, default namespace, prefix kept */
    c = kc_ok(KC_HEAD "users:\n- name: u\n  user:\n    token: abc.def\n", "other");
    assert_string_equal(mm_k8s_config_server(c), "https://k8s.example.com/prefix");
    assert_string_equal(mm_k8s_config_namespace(c), "default");
    assert_true(mm_k8s_config_insecure(c));
    mm_k8s_config_free(c);
}

static void test_kubeconfig_token_file(void **state)
{
    (void)state;
    write_file("token", "tok-1\n");
    /* relative to the kubeconfig's folder */
    mm_k8s_config *c = kc_ok(KC_HEAD "users:\n- name: u\n  user:\n    tokenFile: token\n", NULL);
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_TOKEN_FILE);
    mm_k8s_config_free(c);
    mm_errbuf eb = {{0}};
    assert_int_equal(kc_err(KC_HEAD "users:\n- name: u\n  user:\n    tokenFile: /nonexistent/t\n",
                            NULL, &eb),
                     MM_EIO);
    assert_non_null(strstr(eb.msg, "users[0].user.tokenFile"));
}

static void test_kubeconfig_certs(void **state)
{
    (void)state;
    write_file("client.crt", CERT_PEM);
    write_file("client.key", "key\n");
    write_file("ca.crt", CERT_PEM);
    /* files */
    mm_k8s_config *c = kc_ok(
        "kind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster:\n"
        "    server: https://10.1.2.3\n    certificate-authority: ca.crt\n"
        "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
        "users:\n- name: u\n  user:\n    client-certificate: client.crt\n"
        "    client-key: client.key\n",
        NULL);
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_CERT);
    mm_k8s_config_free(c);
    /* -data (base64, with a line break inside as some tools write it) */
    c = kc_ok(KC_HEAD "users:\n- name: u\n  user:\n"
                      "    client-certificate-data: " CERT_B64 "\n"
                      "    client-key-data: a2V5Cg==\n",
              NULL);
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_CERT);
    mm_k8s_config_free(c);
    /* basic auth and no auth at all */
    c = kc_ok(KC_HEAD "users:\n- name: u\n  user: {username: admin, password: pw}\n", NULL);
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_BASIC);
    mm_k8s_config_free(c);
    c = kc_ok(KC_HEAD "users:\n- name: u\n  user: {}\n", NULL);
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_NONE);
    mm_k8s_config_free(c);
}

static void expect_kc_error(const char *yaml, const char *context, mm_err want,
                            const char *needle)
{
    mm_errbuf eb = {{0}};
    mm_err rc = kc_err(yaml, context, &eb);
    if (rc != want || !strstr(eb.msg, needle))
        fail_msg("want %s containing \"%s\", got %s: %s", mm_strerror(want), needle,
                 mm_strerror(rc), eb.msg);
    /* never a secret in a message */
    assert_null(strstr(eb.msg, "s3cr3t"));
}

static void test_kubeconfig_errors(void **state)
{
    (void)state;
    const char *users = "users:\n- name: u\n  user:\n    token: s3cr3t\n";
    char buf[4096];

    expect_kc_error("a: [", NULL, MM_EPARSE, "kc.yaml:2:1: did not find expected node");
    expect_kc_error("- 1\n", NULL, MM_EPARSE, "expected a mapping");
    expect_kc_error("kind: Pod\n", NULL, MM_EINVAL, "kind: expected Config");
    expect_kc_error("kind: Config\n", NULL, MM_EINVAL, "current-context: not set");
    snprintf(buf, sizeof(buf), "%s%s", KC_HEAD, users);
    expect_kc_error(buf, "nope", MM_EINVAL, "no context named \"nope\"");
    expect_kc_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: gone}\n",
                    NULL, MM_EINVAL, "contexts[0].context: cluster: no cluster named \"gone\"");
    expect_kc_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
                    "clusters:\n- name: c\n  cluster: {insecure-skip-tls-verify: true}\n",
                    NULL, MM_EINVAL, "clusters[0].cluster: server: required");
    expect_kc_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
                    "clusters:\n- name: c\n  cluster: {server: ftp://h}\n",
                    NULL, MM_EINVAL, "kc.yaml:7:21: clusters[0].cluster.server: expected an https://");
    expect_kc_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
                    "clusters:\n- name: c\n  cluster: {server: 'https://h', "
                    "certificate-authority-data: '@@@'}\n",
                    NULL, MM_EPARSE, "clusters[0].cluster.certificate-authority-data: not valid "
                                     "base64");
    expect_kc_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
                    "clusters:\n- name: c\n  cluster: {server: 'https://h', "
                    "insecure-skip-tls-verify: maybe}\n",
                    NULL, MM_EPARSE, "insecure-skip-tls-verify: expected true or false");
    expect_kc_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
                    "clusters:\n- name: c\n  cluster: {server: 'https://h', "
                    "insecure-skip-tls-verify: true, certificate-authority-data: " CERT_B64 "}\n",
                    NULL, MM_EINVAL, "cannot be combined");
    snprintf(buf, sizeof(buf), "%susers:\n- name: u\n  user:\n    client-key-data: a2V5\n",
             KC_HEAD);
    expect_kc_error(buf, NULL, MM_EINVAL, "users[0].user: client-certificate");
    snprintf(buf, sizeof(buf), "%susers:\n- name: u\n  user:\n    client-key-data: 'a2V5!'\n",
             KC_HEAD);
    expect_kc_error(buf, NULL, MM_EPARSE, "users[0].user.client-key-data: not valid base64");
    snprintf(buf, sizeof(buf), "%susers:\n- name: u\n  user:\n    exec: {command: aws}\n",
             KC_HEAD);
    expect_kc_error(buf, NULL, MM_EINVAL, "users[0].user.exec: not supported");
    snprintf(buf, sizeof(buf), "%susers:\n- name: v\n  user: {token: s3cr3t}\n", KC_HEAD);
    expect_kc_error(buf, NULL, MM_EINVAL, "user: no user named \"u\"");
    snprintf(buf, sizeof(buf), "%susers:\n- name: u\n  user: {token: [s3cr3t]}\n", KC_HEAD);
    expect_kc_error(buf, NULL, MM_EPARSE, "users[0].user.token: expected a string");
    snprintf(buf, sizeof(buf), "%susers:\n- name: u\n  user:\n    client-certificate: /no/such\n"
                               "    client-key: /no/such\n",
             KC_HEAD);
    expect_kc_error(buf, NULL, MM_EIO, "users[0].user.client-certificate: cannot read");
    expect_kc_error("current-context: x\ncontexts: {x: 1}\n", NULL, MM_EPARSE,
                    "contexts: expected a list");

    /* files: a missing explicit path names it */
    mm_k8s_config *c = NULL;
    mm_errbuf eb = {{0}};
    assert_int_not_equal(mm_k8s_config_kubeconfig("/nonexistent/kubeconfig", NULL, &c, &eb),
                         MM_OK);
    assert_non_null(strstr(eb.msg, "/nonexistent/kubeconfig"));
}

static void test_kubeconfig_files_and_env(void **state)
{
    (void)state;
    char path[512], list[1100];
    snprintf(path, sizeof(path), "%s/config", tmpdir);
    write_file("config", KC_HEAD "users:\n- name: u\n  user: {token: t}\n");
    mm_k8s_config *c = NULL;
    mm_errbuf eb = {{0}};
    /* KUBECONFIG: the first readable file of the list */
    snprintf(list, sizeof(list), "/nonexistent/a:%s", path);
    setenv("KUBECONFIG", list, 1);
    unsetenv("KUBERNETES_SERVICE_HOST");
    if (mm_k8s_config_load(NULL, &c, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    assert_string_equal(mm_k8s_config_server(c), "https://127.0.0.1:6443");
    mm_k8s_config_free(c);
    unsetenv("KUBECONFIG");
    assert_int_equal(mm_k8s_config_kubeconfig(path, "other", &c, &eb), MM_OK);
    assert_string_equal(mm_k8s_config_server(c), "https://k8s.example.com/prefix");
    mm_k8s_config_free(c);
}

static void test_incluster(void **state)
{
    (void)state;
    char tok[512], ca[512], ns[512];
    snprintf(tok, sizeof(tok), "%s/sa-token", tmpdir);
    snprintf(ca, sizeof(ca), "%s/sa-ca.crt", tmpdir);
    snprintf(ns, sizeof(ns), "%s/sa-namespace", tmpdir);
    write_file("sa-token", "eyJhbGciOi.x.y\n");
    write_file("sa-ca.crt", CERT_PEM);
    write_file("sa-namespace", "maskmesh\n");
    mm_k8s_incluster_opts o = {.host = "10.96.0.1", .port = "443", .token_path = tok,
                               .ca_path = ca, .namespace_path = ns};
    mm_k8s_config *c = NULL;
    mm_errbuf eb = {{0}};
    if (mm_k8s_config_incluster(&o, &c, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    assert_string_equal(mm_k8s_config_server(c), "https://10.96.0.1:443");
    assert_string_equal(mm_k8s_config_namespace(c), "maskmesh");
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_TOKEN_FILE);
    mm_k8s_config_free(c);
    /* IPv6 service host in brackets; no namespace file: "default" */
    o.host = "fd00::1";
    o.namespace_path = "/nonexistent/ns";
    assert_int_equal(mm_k8s_config_incluster(&o, &c, &eb), MM_OK);
    assert_string_equal(mm_k8s_config_server(c), "https://[fd00::1]:443");
    assert_string_equal(mm_k8s_config_namespace(c), "default");
    mm_k8s_config_free(c);
    /* environment */
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.9", 1);
    setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
    o.host = o.port = NULL;
    assert_int_equal(mm_k8s_config_incluster(&o, &c, &eb), MM_OK);
    assert_string_equal(mm_k8s_config_server(c), "https://10.0.0.9:6443");
    mm_k8s_config_free(c);
    setenv("KUBERNETES_SERVICE_PORT", "http", 1);
    assert_int_equal(mm_k8s_config_incluster(&o, &c, &eb), MM_EINVAL);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    assert_int_equal(mm_k8s_config_incluster(&o, &c, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "KUBERNETES_SERVICE_HOST"));
    o.host = "10.0.0.1";
    o.port = "443";
    o.token_path = "/nonexistent/token";
    assert_int_equal(mm_k8s_config_incluster(&o, &c, &eb), MM_ENOTFOUND);
    assert_non_null(strstr(eb.msg, "/nonexistent/token"));
}

/* ---- Status ------------------------------------------------------------------------------- */

static void test_status_samples(void **state)
{
    (void)state;
    DIR *d = opendir(SAMPLES);
    struct dirent *e;
    int seen = 0;
    assert_non_null(d);
    while ((e = readdir(d))) {
        long code;
        char num[4], path[600];
        if (strncmp(e->d_name, "status-", 7) != 0 || !strstr(e->d_name, ".json"))
            continue;
        memcpy(num, e->d_name + 7, 3);
        num[3] = '\0';
        assert_true(mm_parse_long(num, 100, 599, &code));
        snprintf(path, sizeof(path), SAMPLES "%s", e->d_name);
        size_t len;
        char *body = slurp(path, &len);
        mm_k8s_status st;
        mm_k8s_status_from_body((int)code, body, len, -1, &st);
        /* every sample is a Status whose code repeats the HTTP code (wire rule 14) */
        assert_int_equal(st.code, code);
        assert_string_equal(st.status, "Failure");
        assert_true(st.reason && *st.reason);
        assert_true(st.message && *st.message);
        mm_err want = code == 404 ? MM_ENOTFOUND : code == 409 ? MM_ECONFLICT
                                                : code == 410 ? MM_EGONE
                                                              : MM_EHTTP;
        assert_int_equal(mm_k8s_status_err(&st), want);
        mm_k8s_status_clear(&st);
        mm_free(body);
        seen++;
    }
    closedir(d);
    assert_int_equal(seen, 9); /* 401 403 404 409 410 410 415 422 429 */
}

static mm_k8s_status status_of(const char *file, int code)
{
    char path[300];
    size_t len;
    mm_k8s_status st;
    snprintf(path, sizeof(path), SAMPLES "%s", file);
    char *body = slurp(path, &len);
    mm_k8s_status_from_body(code, body, len, -1, &st);
    mm_free(body);
    return st;
}

static void test_status_fields(void **state)
{
    (void)state;
    mm_k8s_status st = status_of("status-404.json", 404);
    assert_string_equal(st.reason, "NotFound");
    assert_string_equal(st.message, "maskingpolicies.maskmesh.io \"payments-api\" not found");
    assert_string_equal(st.details_name, "payments-api");
    assert_string_equal(st.details_group, "maskmesh.io");
    assert_string_equal(st.details_kind, "maskingpolicies");
    mm_k8s_status_clear(&st);

    st = status_of("status-409-conflict.json", 409);
    assert_string_equal(st.reason, "Conflict");
    assert_non_null(strstr(st.message, "the object has been modified; please apply your changes"));
    mm_k8s_status_clear(&st);

    st = status_of("status-410-gone-list.json", 410);
    assert_string_equal(st.reason, "Expired");
    assert_string_equal(st.continue_token, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0Ijoic"
                                           "GF5bWVudHMtN2M5ZDhiNWY0ZC1xcDl3clx1MDAwMCJ9");
    mm_k8s_status_clear(&st);

    st = status_of("status-410-gone-list-rv.json", 410);
    assert_null(st.continue_token);
    assert_null(st.details_name);
    mm_k8s_status_clear(&st);

    st = status_of("status-422-invalid.json", 422);
    assert_string_equal(st.reason, "Invalid");
    assert_string_equal(st.details_kind, "MaskingPolicy");
    assert_int_equal(st.ncauses, 3);
    assert_string_equal(st.causes[0].reason, "FieldValueNotSupported");
    assert_string_equal(st.causes[0].field, "spec.rules[0].action.type");
    assert_string_equal(st.causes[1].field, "spec.port");
    assert_string_equal(st.causes[2].reason, "FieldValueRequired");
    assert_string_equal(st.causes[2].message, "Required value");
    mm_k8s_status_clear(&st);

    st = status_of("status-429.json", 429);
    assert_string_equal(st.reason, "TooManyRequests");
    assert_int_equal(st.retry_after_s, 1);
    mm_k8s_status_clear(&st);

    st = status_of("status-415-smp-on-cr.json", 415);
    assert_string_equal(st.reason, "UnsupportedMediaType");
    mm_k8s_status_clear(&st);

    st = status_of("status-401.json", 401);
    assert_string_equal(st.reason, "Unauthorized");
    mm_k8s_status_clear(&st);

    st = status_of("status-403-forbidden.json", 403);
    assert_string_equal(st.details_kind, "configmaps");
    mm_k8s_status_clear(&st);
}

static void test_status_text_bodies(void **state)
{
    (void)state;
    mm_k8s_status st;
    /* wire rule 15: an unserved path is a plain-text 404 */
    const char *nf = "404 page not found\n";
    mm_k8s_status_from_body(404, nf, strlen(nf), -1, &st);
    assert_int_equal(st.code, 404);
    assert_string_equal(st.reason, "NotFound");
    assert_string_equal(st.message, "404 page not found");
    assert_int_equal(mm_k8s_status_err(&st), MM_ENOTFOUND);
    mm_k8s_status_clear(&st);
    /* wire rule 13: APF's 429 is text, the wait is in the header only */
    const char *apf = "Too many requests, please try again later.\n";
    mm_k8s_status_from_body(429, apf, strlen(apf), 4, &st);
    assert_string_equal(st.reason, "TooManyRequests");
    assert_int_equal(st.retry_after_s, 4);
    assert_string_equal(st.message, "Too many requests, please try again later.");
    mm_k8s_status_clear(&st);
    /* empty body, JSON that is not a Status, control bytes */
    mm_k8s_status_from_body(503, "", 0, -1, &st);
    assert_string_equal(st.reason, "ServiceUnavailable");
    assert_string_equal(st.message, "");
    mm_k8s_status_clear(&st);
    mm_k8s_status_from_body(500, "{\"kind\":\"Pod\"}", 14, -1, &st);
    assert_string_equal(st.reason, "InternalError");
    mm_k8s_status_clear(&st);
    mm_k8s_status_from_body(400, "bad\x01\x7fthing", 11, -1, &st);
    assert_string_equal(st.message, "bad??thing");
    mm_k8s_status_clear(&st);
    /* a Status without code takes the HTTP one */
    const char *nocode = "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"Conflict\"}";
    mm_k8s_status_from_body(409, nocode, strlen(nocode), -1, &st);
    assert_int_equal(st.code, 409);
    assert_string_equal(st.message, "");
    mm_k8s_status_clear(&st);

    /* from_json: wrong types are errors naming the field */
    struct json_object *o = json_tokener_parse("{\"kind\":\"Status\",\"code\":\"410\"}");
    mm_errbuf eb = {{0}};
    assert_int_equal(mm_k8s_status_from_json(o, &st, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "code"));
    json_object_put(o);
    o = json_tokener_parse("{\"code\":422,\"details\":{\"causes\":[1]}}");
    assert_int_equal(mm_k8s_status_from_json(o, &st, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "details.causes[0]"));
    json_object_put(o);
}

/* ---- Warning headers ---------------------------------------------------------------------- */

static void test_warning_headers(void **state)
{
    (void)state;
    mm_k8s_result res = {0};
    const char *one = "299 - \"spec.foo: deprecated, use spec.bar\"";
    k8s_parse_warnings(&res, one, strlen(one));
    assert_int_equal(res.nwarnings, 1);
    assert_string_equal(res.warnings[0], "spec.foo: deprecated, use spec.bar");
    /* several in one header, an escaped quote, a date, and a non-299 code that is dropped */
    const char *many = "299 - \"a \\\"quoted\\\" word\", 199 agent \"misc\", "
                       "299 kube-apiserver \"with date\" \"Sat, 20 Jul 2026 10:20:32 GMT\",299 - \"last\"";
    k8s_parse_warnings(&res, many, strlen(many));
    assert_int_equal(res.nwarnings, 4);
    assert_string_equal(res.warnings[1], "a \"quoted\" word");
    assert_string_equal(res.warnings[2], "with date");
    assert_string_equal(res.warnings[3], "last");
    /* malformed values add nothing and never read past the end */
    const char *bad[] = {"299", "299 -", "299 - \"unterminated", "", ",,,"};
    for (size_t i = 0; i < MM_ARRAY_LEN(bad); i++)
        k8s_parse_warnings(&res, bad[i], strlen(bad[i]));
    assert_true(res.nwarnings <= 5);
    /* bounded */
    for (int i = 0; i < 100; i++)
        k8s_parse_warnings(&res, one, strlen(one));
    assert_int_equal(res.nwarnings, MM_K8S_MAX_WARNINGS);
    mm_k8s_result_clear(&res);
    assert_int_equal(res.nwarnings, 0);
}

/* ---- watch framing ------------------------------------------------------------------------- */

typedef struct {
    int n;
    char types[16][12];
    char rvs[16][32];
    int stop_at; /* stop when n reaches this (0: never) */
} evlog;

static int log_event(void *ud, const mm_k8s_event *ev)
{
    static const char *const names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};
    evlog *l = ud;
    if (l->n < 16) {
        snprintf(l->types[l->n], sizeof(l->types[0]), "%s", names[ev->type]);
        const char *rv = NULL;
        struct json_object *m, *v;
        if (json_object_object_get_ex(ev->object, "metadata", &m) &&
            json_object_object_get_ex(m, "resourceVersion", &v))
            rv = json_object_get_string(v);
        snprintf(l->rvs[l->n], sizeof(l->rvs[0]), "%s", rv ? rv : "-");
    }
    l->n++;
    return l->stop_at && l->n >= l->stop_at;
}

/* Feeds text in pieces: cut at `a` and `b` (sizes of the first two pieces). */
static mm_err feed_split(const char *text, size_t len, size_t a, size_t b, evlog *l,
                         mm_errbuf *eb)
{
    mm_k8s_watch_decoder *d = NULL;
    bool stopped = false;
    mm_err rc = mm_k8s_watch_decoder_new(0, &d);
    if (rc != MM_OK)
        return rc;
    size_t cuts[3] = {a, b, len - a - b};
    const char *p = text;
    for (int i = 0; i < 3 && rc == MM_OK && !stopped; i++) {
        rc = mm_k8s_watch_decoder_feed(d, p, cuts[i], log_event, l, &stopped, eb);
        p += cuts[i];
    }
    if (rc == MM_OK && !stopped)
        rc = mm_k8s_watch_decoder_finish(d, eb);
    mm_k8s_watch_decoder_free(d);
    return rc;
}

static void check_every_split(const char *file, int nevents, const char *const *types,
                              const char *const *rvs)
{
    char path[300];
    size_t len;
    snprintf(path, sizeof(path), SAMPLES "%s", file);
    char *text = slurp(path, &len);
    for (size_t a = 0; a <= len; a++) {
        evlog l = {0};
        mm_errbuf eb = {{0}};
        /* two cuts: at a, and 1 byte later (so single bytes arrive alone too) */
        size_t b = a + 1 <= len ? 1 : 0;
        if (feed_split(text, len, a, b, &l, &eb) != MM_OK)
            fail_msg("%s split at %zu: %s", file, a, eb.msg);
        if (l.n != nevents)
            fail_msg("%s split at %zu: %d events, want %d", file, a, l.n, nevents);
        for (int i = 0; i < nevents; i++) {
            assert_string_equal(l.types[i], types[i]);
            assert_string_equal(l.rvs[i], rvs[i]);
        }
    }
    /* one byte at a time */
    mm_k8s_watch_decoder *d = NULL;
    evlog l = {0};
    bool stopped = false;
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(mm_k8s_watch_decoder_feed(d, text + i, 1, log_event, &l, &stopped, NULL),
                         MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_finish(d, NULL), MM_OK);
    assert_int_equal(l.n, nevents);
    assert_int_equal(mm_k8s_watch_decoder_events(d), (uint64_t)nevents);
    mm_k8s_watch_decoder_free(d);
    mm_free(text);
}

static void test_watch_samples_every_split(void **state)
{
    (void)state;
    const char *t1[] = {"ADDED", "MODIFIED", "BOOKMARK", "MODIFIED", "MODIFIED", "DELETED"};
    const char *r1[] = {"481502", "481503", "482950", "483118", "483120", "483377"};
    check_every_split("watch-maskingpolicies.ndjson", 6, t1, r1);
    const char *t2[] = {"ADDED", "BOOKMARK"};
    const char *r2[] = {"483120", "483200"};
    check_every_split("watch-list-maskingpolicies.ndjson", 2, t2, r2);
    const char *t3[] = {"ERROR"};
    const char *r3[] = {"-"};
    check_every_split("watch-expired.ndjson", 1, t3, r3);
}

static int check_expired(void *ud, const mm_k8s_event *ev)
{
    mm_k8s_status st;
    assert_int_equal(ev->type, MM_K8S_ERROR);
    assert_int_equal(mm_k8s_status_from_json(ev->object, &st, NULL), MM_OK);
    assert_int_equal(st.code, 410);
    assert_string_equal(st.reason, "Expired");
    mm_k8s_status_clear(&st);
    (*(int *)ud)++;
    return 0;
}

static int check_initial_end(void *ud, const mm_k8s_event *ev)
{
    if (ev->type == MM_K8S_BOOKMARK) {
        struct json_object *m, *a, *v;
        assert_true(json_object_object_get_ex(ev->object, "metadata", &m));
        assert_true(json_object_object_get_ex(m, "annotations", &a));
        assert_true(json_object_object_get_ex(a, "k8s.io/initial-events-end", &v));
        assert_string_equal(json_object_get_string(v), "true");
        (*(int *)ud)++;
    }
    return 0;
}

static void test_watch_event_content(void **state)
{
    (void)state;
    size_t len;
    int n = 0;
    bool stopped;
    mm_k8s_watch_decoder *d = NULL;
    char *text = slurp(SAMPLES "watch-expired.ndjson", &len);
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, text, len, check_expired, &n, &stopped, NULL),
                     MM_OK);
    assert_int_equal(n, 1);
    mm_k8s_watch_decoder_free(d);
    mm_free(text);

    n = 0;
    text = slurp(SAMPLES "watch-list-maskingpolicies.ndjson", &len);
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    assert_int_equal(
        mm_k8s_watch_decoder_feed(d, text, len, check_initial_end, &n, &stopped, NULL), MM_OK);
    assert_int_equal(n, 1);
    mm_k8s_watch_decoder_free(d);
    mm_free(text);
}

static void test_watch_framing_errors(void **state)
{
    (void)state;
    mm_k8s_watch_decoder *d = NULL;
    mm_errbuf eb = {{0}};
    evlog l = {0};
    bool stopped;
    const char *ok = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":\"1\"}}}\n";

    /* CRLF and blank lines are fine */
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, "\r\n\n", 3, log_event, &l, &stopped, &eb),
                     MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, ok, strlen(ok), log_event, &l, &stopped, &eb),
                     MM_OK);
    assert_int_equal(l.n, 1);
    /* a bad second event names its index and offset, and the decoder stays failed */
    const char *bad = "{\"type\":\"ADDED\",\"object\":[]}\n";
    assert_int_equal(mm_k8s_watch_decoder_feed(d, bad, strlen(bad), log_event, &l, &stopped, &eb),
                     MM_EPARSE);
    assert_non_null(strstr(eb.msg, "watch event 1 at byte"));
    assert_non_null(strstr(eb.msg, "object"));
    assert_int_equal(mm_k8s_watch_decoder_feed(d, ok, strlen(ok), log_event, &l, &stopped, &eb),
                     MM_EINVAL);
    mm_k8s_watch_decoder_free(d);

    static const char *const bads[] = {
        "{\"type\":\"ADDED\"}\n", "{\"type\":\"RESYNC\",\"object\":{}}\n",
        "{\"type\":1,\"object\":{}}\n", "[1,2]\n", "{\"type\":\"ADDED\",\"object\":{}} x\n",
        "{\"type\":\"ADDED\",\"object\":{}\n", "\x01\n",
    };
    for (size_t i = 0; i < MM_ARRAY_LEN(bads); i++) {
        assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
        if (mm_k8s_watch_decoder_feed(d, bads[i], strlen(bads[i]), log_event, &l, &stopped, &eb) !=
            MM_EPARSE)
            fail_msg("bad event %zu accepted", i);
        mm_k8s_watch_decoder_free(d);
    }

    /* a line longer than the bound: split or whole */
    assert_int_equal(mm_k8s_watch_decoder_new(32, &d), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, "{\"type\":\"ADDED\",", 16, log_event, &l,
                                               &stopped, &eb),
                     MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, "\"object\":{\"a\":\"bbbbbbbbbb\"}}", 28,
                                               log_event, &l, &stopped, &eb),
                     MM_ELIMIT);
    assert_non_null(strstr(eb.msg, "longer than 32 bytes"));
    mm_k8s_watch_decoder_free(d);
    assert_int_equal(mm_k8s_watch_decoder_new(8, &d), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, ok, strlen(ok), log_event, &l, &stopped, &eb),
                     MM_ELIMIT);
    mm_k8s_watch_decoder_free(d);

    /* cut short inside an event */
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, ok, 20, log_event, &l, &stopped, &eb), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_finish(d, &eb), MM_EIO);
    assert_non_null(strstr(eb.msg, "cut short"));
    mm_k8s_watch_decoder_free(d);

    /* a callback asking to stop stops before the next event */
    char two[512];
    snprintf(two, sizeof(two), "%s%s", ok, ok);
    evlog s = {.stop_at = 1};
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    assert_int_equal(mm_k8s_watch_decoder_feed(d, two, strlen(two), log_event, &s, &stopped, &eb),
                     MM_OK);
    assert_true(stopped);
    assert_int_equal(s.n, 1);
    mm_k8s_watch_decoder_free(d);
}

/* ---- lease and times ----------------------------------------------------------------------- */

static void test_lease_sample(void **state)
{
    (void)state;
    size_t len;
    char *text = slurp(SAMPLES "lease.json", &len);
    struct json_object *o = json_tokener_parse(text);
    mm_k8s_lease_spec spec;
    mm_errbuf eb = {{0}};
    char buf[MM_K8S_MICROTIME_LEN + 1];

    assert_non_null(o);
    if (mm_k8s_lease_spec_from_json(o, &spec, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    assert_string_equal(spec.holder,
                        "maskmesh-controller-6d5f7b9c4-2xkqp_3f9a1c7e-5b2d-4e8f-a6c0-9d1e2f3a4b5c");
    assert_int_equal(spec.lease_duration_s, 15);
    assert_int_equal(spec.transitions, 3);
    /* times round-trip byte for byte in the sample's MicroTime format */
    mm_k8s_format_microtime(spec.renew_us, buf);
    assert_string_equal(buf, "2026-07-20T10:21:45.093210Z");
    mm_k8s_format_microtime(spec.acquire_us, buf);
    assert_string_equal(buf, "2026-07-20T08:41:07.512384Z");
    assert_int_equal(spec.renew_us - spec.acquire_us,
                     (int64_t)(1 * 3600 + 40 * 60 + 38) * 1000000 + 93210 - 512384);
    mm_free(spec.holder);
    json_object_put(o);
    mm_free(text);

    o = json_tokener_parse("{\"spec\":{\"renewTime\":\"yesterday\"}}");
    assert_int_equal(mm_k8s_lease_spec_from_json(o, &spec, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "spec.renewTime"));
    json_object_put(o);
    o = json_tokener_parse("{\"spec\":{}}");
    assert_int_equal(mm_k8s_lease_spec_from_json(o, &spec, &eb), MM_OK);
    assert_string_equal(spec.holder, "");
    assert_int_equal(spec.renew_us, 0);
    mm_free(spec.holder);
    json_object_put(o);
}

static void test_times(void **state)
{
    (void)state;
    int64_t us;
    char buf[MM_K8S_MICROTIME_LEN + 1];
    assert_int_equal(mm_k8s_parse_time("2026-07-20T10:20:32Z", &us), MM_OK);
    mm_k8s_format_microtime(us, buf);
    assert_string_equal(buf, "2026-07-20T10:20:32.000000Z");
    assert_int_equal(mm_k8s_parse_time("2026-07-20T12:20:32.5+02:00", &us), MM_OK);
    mm_k8s_format_microtime(us, buf);
    assert_string_equal(buf, "2026-07-20T10:20:32.500000Z");
    mm_k8s_format_microtime(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000000Z");
    assert_int_equal(strlen(buf), MM_K8S_MICROTIME_LEN);
    static const char *const bad[] = {"", "2026-07-20", "2026-07-20T10:20:32", "2026-13-01T00:00:00Z",
                                      "2026-07-20T10:20:32.Z", "2026-07-20T10:20:32Zx",
                                      "2026-07-20 10:20:32Z"};
    for (size_t i = 0; i < MM_ARRAY_LEN(bad); i++)
        if (mm_k8s_parse_time(bad[i], &us) != MM_EPARSE)
            fail_msg("accepted \"%s\"", bad[i]);
    /* now is formatted like the sample */
    mm_k8s_format_microtime(mm_k8s_now_us(), buf);
    assert_int_equal(buf[19], '.');
    assert_int_equal(buf[26], 'Z');
}

/* ---- allocation failures ------------------------------------------------------------------- */

static void test_alloc_failures(void **state)
{
    (void)state;
    char yaml[4096];
    write_file("ca2.crt", CERT_PEM);
    snprintf(yaml, sizeof(yaml), "%susers:\n- name: u\n  user:\n"
                                 "    client-certificate-data: " CERT_B64 "\n"
                                 "    client-key-data: a2V5Cg==\n",
             KC_HEAD);
    char origin[512];
    snprintf(origin, sizeof(origin), "%s/kubeconfig", tmpdir);
    int failures = 0;
    for (long n = 0;; n++) {
        mm_k8s_config *c = NULL;
        mm_errbuf eb = {{0}};
        mm_alloc_fail_after(n);
        mm_err rc = mm_k8s_config_parse_kubeconfig(yaml, strlen(yaml), origin, NULL, &c, &eb);
        mm_alloc_fail_after(-1);
        if (rc == MM_OK) {
            assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_CERT);
            mm_k8s_config_free(c);
            break;
        }
        assert_int_equal(rc, MM_ENOMEM);
        assert_null(c);
        failures++;
    }
    assert_true(failures > 5);

    size_t len;
    char *text = slurp(SAMPLES "watch-maskingpolicies.ndjson", &len);
    failures = 0;
    for (long n = 0;; n++) {
        mm_k8s_watch_decoder *d = NULL;
        evlog l = {0};
        bool stopped;
        mm_err rc;
        mm_alloc_fail_after(n);
        rc = mm_k8s_watch_decoder_new(0, &d);
        /* chunks of 100 bytes so partial events are carried in the buffer */
        for (size_t off = 0; rc == MM_OK && off < len; off += 100)
            rc = mm_k8s_watch_decoder_feed(d, text + off, len - off < 100 ? len - off : 100,
                                           log_event, &l, &stopped, NULL);
        mm_alloc_fail_after(-1);
        mm_k8s_watch_decoder_free(d);
        if (rc == MM_OK) {
            assert_int_equal(l.n, 6);
            break;
        }
        assert_int_equal(rc, MM_ENOMEM);
        failures++;
    }
    assert_true(failures > 0);
    mm_free(text);
}

/* ---- informer store (no server: events go straight to what the watch calls) --------------- */

typedef struct {
    int adds, updates, deletes;
    int with_managed_fields; /* handed objects that still carried metadata.managedFields */
    char last_old_rv[32], last_rv[32];
} istore_log;

static bool has_managed_fields(struct json_object *o)
{
    struct json_object *m = NULL;
    return json_object_object_get_ex(o, "metadata", &m) &&
           json_object_object_get_ex(m, "managedFields", NULL);
}

static const char *obj_rv(struct json_object *o)
{
    struct json_object *m = NULL, *v = NULL;
    if (!json_object_object_get_ex(o, "metadata", &m) ||
        !json_object_object_get_ex(m, "resourceVersion", &v))
        return "";
    return json_object_get_string(v);
}

static void is_add(void *ud, struct json_object *o)
{
    istore_log *l = ud;
    l->adds++;
    l->with_managed_fields += has_managed_fields(o);
    snprintf(l->last_rv, sizeof(l->last_rv), "%s", obj_rv(o));
}
static void is_update(void *ud, struct json_object *a, struct json_object *b)
{
    istore_log *l = ud;
    l->updates++;
    l->with_managed_fields += has_managed_fields(a) + has_managed_fields(b);
    snprintf(l->last_old_rv, sizeof(l->last_old_rv), "%s", obj_rv(a));
    snprintf(l->last_rv, sizeof(l->last_rv), "%s", obj_rv(b));
}
static void is_delete(void *ud, struct json_object *o)
{
    istore_log *l = ud;
    l->deletes++;
    l->with_managed_fields += has_managed_fields(o);
    snprintf(l->last_rv, sizeof(l->last_rv), "%s", obj_rv(o));
}

/* An informer whose client is never asked anything: the tests feed it events. */
static mm_k8s_informer *store_informer(mm_k8s_client **cl, const mm_k8s_informer_opts *io,
                                       istore_log *l)
{
    mm_k8s_config *cfg = kc_ok(KC_HEAD "users:\n- name: u\n  user:\n    token: abc.def\n", "other");
    mm_k8s_ref ref = {.group = "maskmesh.io", .version = "v1alpha1", .resource = "maskingpolicies"};
    mm_k8s_handlers h = {is_add, is_update, is_delete, l};
    mm_k8s_informer *inf = NULL;
    mm_errbuf eb = {{0}};
    assert_int_equal(mm_k8s_client_new(cfg, NULL, cl, &eb), MM_OK);
    mm_k8s_config_free(cfg);
    assert_int_equal(mm_k8s_informer_new(*cl, &ref, io, &h, &inf, &eb), MM_OK);
    return inf;
}

/* One event, as the watch delivers it. Returns what the informer's callback returned. */
static int feed_event(mm_k8s_informer *inf, mm_k8s_event_type type, const char *json)
{
    mm_k8s_event ev = {.type = type, .object = json_tokener_parse(json)};
    assert_non_null(ev.object);
    int r = k8s_informer_on_event(inf, &ev);
    json_object_put(ev.object);
    return r;
}

static struct json_object *member(struct json_object *o, const char *a, const char *b)
{
    struct json_object *x = NULL, *y = NULL;
    if (!o || !json_object_object_get_ex(o, a, &x))
        return NULL;
    return !b ? x : json_object_object_get_ex(x, b, &y) ? y : NULL;
}

/* The sample watch stream (ADDED, MODIFIED, BOOKMARK, MODIFIED x2, DELETED of a
 * MaskingPolicy with managedFields) decoded straight into the informer: the store follows
 * every event, keeps no managedFields, and get returns the latest state. */
static void test_informer_store_sample(void **state)
{
    (void)state;
    size_t len;
    char *text = slurp(SAMPLES "watch-maskingpolicies.ndjson", &len);
    mm_k8s_client *cl = NULL;
    istore_log l = {0};
    mm_k8s_informer *inf = store_informer(&cl, NULL, &l);
    mm_k8s_watch_decoder *d = NULL;
    mm_errbuf eb = {{0}};
    bool stopped;
    static const char *const rvs[] = {"481502", "481503", "482950", "483118", "483120", "483377"};
    assert_int_equal(mm_k8s_watch_decoder_new(0, &d), MM_OK);
    const char *line = text;
    for (size_t i = 0; i < MM_ARRAY_LEN(rvs); i++) {
        const char *nl = memchr(line, '\n', len - (size_t)(line - text));
        assert_non_null(nl);
        /* the sample's own object, to compare what get returns with */
        char *one = mm_strndup(line, (size_t)(nl - line));
        struct json_object *want = NULL, *ev = json_tokener_parse(one);
        mm_free(one);
        assert_non_null(ev);
        want = member(ev, "object", NULL);
        assert_int_equal(mm_k8s_watch_decoder_feed(d, line, (size_t)(nl - line + 1),
                                                   k8s_informer_on_event, inf, &stopped, &eb),
                         MM_OK);
        assert_false(stopped);
        char *rv = mm_k8s_informer_resource_version(inf);
        assert_string_equal(rv, rvs[i]);
        mm_free(rv);
        struct json_object *got = mm_k8s_informer_get(inf, "shop", "payments-api");
        const char *type = json_object_get_string(member(ev, "type", NULL));
        if (strcmp(type, "DELETED") == 0) {
            assert_null(got);
            assert_int_equal(mm_k8s_informer_count(inf), 0);
        } else {
            assert_non_null(got);
            assert_int_equal(mm_k8s_informer_count(inf), 1);
            assert_false(has_managed_fields(got));
            if (strcmp(type, "BOOKMARK") != 0) {
                assert_true(has_managed_fields(want)); /* the sample has them: they were dropped */
                assert_string_equal(obj_rv(got), rvs[i]);
                assert_true(json_object_equal(member(got, "spec", NULL), member(want, "spec", NULL)));
                assert_true(json_object_equal(member(got, "status", NULL), member(want, "status", NULL)));
                assert_true(json_object_equal(member(got, "metadata", "uid"), member(want, "metadata", "uid")));
            }
        }
        json_object_put(got);
        json_object_put(ev);
        line = nl + 1;
    }
    assert_int_equal(l.adds, 1);
    assert_int_equal(l.updates, 3);
    assert_int_equal(l.deletes, 1);
    assert_int_equal(l.with_managed_fields, 0);
    assert_string_equal(l.last_old_rv, "483118"); /* the last update: old and new as stored */
    assert_string_equal(l.last_rv, "483377");     /* the delete: the object's final state */
    mm_k8s_watch_decoder_free(d);
    mm_k8s_informer_free(inf);
    mm_k8s_client_free(cl);
    mm_free(text);
}

static int transforms;

/* Keeps metadata and data.keep; anything named "refuse" fails. */
static mm_err keep_some(void *ud, struct json_object *o)
{
    (void)ud;
    transforms++;
    struct json_object *data = member(o, "data", NULL);
    if (strcmp(json_object_get_string(member(o, "metadata", "name")) ?: "", "refuse") == 0)
        return MM_EINVAL;
    if (data)
        json_object_object_del(data, "drop");
    json_object_object_del(o, "spec");
    return MM_OK;
}

#define CM_EVENT(name, rv, drop)                                                                   \
    "{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"a\",\"resourceVersion\":\"" rv "\","   \
    "\"managedFields\":[{\"manager\":\"m\"}]},\"spec\":{\"x\":1},"                                 \
    "\"data\":{\"keep\":\"k" rv "\",\"drop\":\"" drop "\"}}"

/* keep_managed_fields and a transform: what is stored and handed on is the shaped object; a
 * failing transform or a nameless object leaves the store as it was and stops the watch. */
static void test_informer_transform(void **state)
{
    (void)state;
    mm_k8s_client *cl = NULL;
    istore_log l = {0};
    mm_k8s_informer_opts io = {.keep_managed_fields = true};
    mm_k8s_informer *inf = store_informer(&cl, &io, &l);
    assert_int_equal(feed_event(inf, MM_K8S_ADDED, CM_EVENT("one", "1", "x")), 0);
    struct json_object *got = mm_k8s_informer_get(inf, "a", "one");
    assert_true(has_managed_fields(got));
    assert_non_null(member(got, "spec", NULL));
    json_object_put(got);
    assert_int_equal(l.with_managed_fields, 1);
    mm_k8s_informer_free(inf);
    mm_k8s_client_free(cl);

    l = (istore_log){0};
    transforms = 0;
    io = (mm_k8s_informer_opts){.transform = keep_some};
    inf = store_informer(&cl, &io, &l);
    assert_int_equal(feed_event(inf, MM_K8S_ADDED, CM_EVENT("one", "1", "x")), 0);
    assert_int_equal(feed_event(inf, MM_K8S_MODIFIED, CM_EVENT("one", "2", "y")), 0);
    got = mm_k8s_informer_get(inf, "a", "one");
    assert_non_null(got);
    assert_false(has_managed_fields(got));
    assert_null(member(got, "spec", NULL));
    assert_null(member(member(got, "data", NULL), "drop", NULL));
    assert_string_equal(json_object_get_string(member(got, "data", "keep")), "k2");
    assert_string_equal(obj_rv(got), "2");
    json_object_put(got);
    assert_int_equal(l.with_managed_fields, 0);
    assert_string_equal(l.last_old_rv, "1");
    /* a transform that fails: nothing stored, the RV does not move, the watch stops */
    assert_int_not_equal(feed_event(inf, MM_K8S_ADDED, CM_EVENT("refuse", "3", "z")), 0);
    assert_null(mm_k8s_informer_get(inf, "a", "refuse"));
    assert_int_equal(mm_k8s_informer_count(inf), 1);
    char *rv = mm_k8s_informer_resource_version(inf);
    assert_string_equal(rv, "2");
    mm_free(rv);
    /* a nameless object likewise */
    assert_int_not_equal(feed_event(inf, MM_K8S_MODIFIED, "{\"metadata\":{\"resourceVersion\":\"4\"}}"), 0);
    assert_int_equal(mm_k8s_informer_count(inf), 1);
    /* DELETED objects are shaped too before the handler sees them */
    assert_int_equal(feed_event(inf, MM_K8S_DELETED, CM_EVENT("one", "5", "w")), 0);
    assert_int_equal(l.deletes, 1);
    assert_int_equal(l.with_managed_fields, 0);
    assert_int_equal(transforms, 4); /* one, one, refuse, one */
    assert_int_equal(mm_k8s_informer_count(inf), 0);
    mm_k8s_informer_free(inf);
    mm_k8s_client_free(cl);
}

/* Thousands of objects across namespaces (the store's table grows many times): every get
 * returns its own object's latest state after adds, updates and deletes. */
static void test_informer_store_many(void **state)
{
    (void)state;
    enum { N = 3000 };
    mm_k8s_client *cl = NULL;
    istore_log l = {0};
    mm_k8s_informer *inf = store_informer(&cl, NULL, &l);
    char json[256], ns[16], name[16];
    for (int i = 0; i < N; i++) {
        snprintf(json, sizeof(json),
                 "{\"metadata\":{\"name\":\"p-%d\",\"namespace\":\"ns-%d\",\"resourceVersion\":\"%d\"},"
                 "\"spec\":{\"i\":%d}}", i % 100, i / 100, i + 1, i);
        assert_int_equal(feed_event(inf, MM_K8S_ADDED, json), 0);
    }
    for (int i = 0; i < N; i += 3) { /* every third changes */
        snprintf(json, sizeof(json),
                 "{\"metadata\":{\"name\":\"p-%d\",\"namespace\":\"ns-%d\",\"resourceVersion\":\"%d\"},"
                 "\"spec\":{\"i\":%d}}", i % 100, i / 100, N + i + 1, -i);
        assert_int_equal(feed_event(inf, MM_K8S_MODIFIED, json), 0);
    }
    for (int i = 0; i < N; i += 2) { /* every second goes */
        snprintf(json, sizeof(json),
                 "{\"metadata\":{\"name\":\"p-%d\",\"namespace\":\"ns-%d\",\"resourceVersion\":\"%d\"}}",
                 i % 100, i / 100, 2 * N + i + 1);
        assert_int_equal(feed_event(inf, MM_K8S_DELETED, json), 0);
    }
    assert_int_equal(l.adds, N);
    assert_int_equal(l.updates, N / 3);
    assert_int_equal(l.deletes, N / 2);
    assert_int_equal(mm_k8s_informer_count(inf), N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(ns, sizeof(ns), "ns-%d", i / 100);
        snprintf(name, sizeof(name), "p-%d", i % 100);
        struct json_object *got = mm_k8s_informer_get(inf, ns, name);
        if (i % 2 == 0) {
            assert_null(got);
            continue;
        }
        assert_non_null(got);
        assert_string_equal(json_object_get_string(member(got, "metadata", "namespace")), ns);
        assert_string_equal(json_object_get_string(member(got, "metadata", "name")), name);
        assert_int_equal(json_object_get_int(member(got, "spec", "i")), i % 3 == 0 ? -i : i);
        json_object_put(got);
    }
    /* the same name in another namespace is another object */
    assert_null(mm_k8s_informer_get(inf, "ns-99", "p-1"));
    assert_null(mm_k8s_informer_get(inf, NULL, "p-1"));
    mm_k8s_informer_free(inf);
    mm_k8s_client_free(cl);
}

/* A MaskingPolicy as the controller's informer stores it, i-th of many (its own name,
 * namespace, uid, resourceVersion and selector), with status sums when gen > 0 */
static void policy_text(char *out, size_t cap, int i, int gen)
{
    snprintf(out, cap,
             "{\"apiVersion\":\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\",\"metadata\":"
             "{\"generation\":1,\"name\":\"p-%02d\",\"namespace\":\"ns-%04d\",\"resourceVersion\":\"%d\","
             "\"uid\":\"%08x-d622-48da-9ddc-%012x\"},\"spec\":{\"direction\":\"response\",\"mode\":"
             "\"enforce\",\"onError\":\"block\",\"rules\":[{\"action\":{\"type\":\"redact\"},\"detectors\":"
             "[\"credit_card\"],\"name\":\"card\"},{\"action\":{\"type\":\"redact\"},\"name\":\"ids\","
             "\"patterns\":[{\"name\":\"emp\",\"regex\":\"EMP-[0-9]{6}\"}]}],\"selector\":{\"matchLabels\":"
             "{\"app\":\"p-%02d\"}},\"unlistedTypes\":\"detect\"}%s%x%x%s}",
             i % 10, i / 10, 1000 + i + gen * 100000, (unsigned)(i * 2654435761u), (unsigned)(i * 40503u),
             i % 10, gen ? ",\"status\":{\"ready\":\"True\",\"sum\":\"" : "",
             gen ? (unsigned)(i * 2246822519u) : 0u, gen ? (unsigned)(i * 3266489917u) : 0u,
             gen ? "\"}" : "");
    if (!gen) /* no status: drop the two numbers printed in its place */
        out[strlen(out) - 3] = '}', out[strlen(out) - 2] = '\0';
}

/* The store deflates each object against the first one's text: 1,000 policies like the
 * bench's take under 30% of their text's bytes, counted from the entries' allocations (not
 * timed), and every object comes back exactly as it was shaped, after updates too; random
 * text costs about its size; deleting all frees all. */
static void test_informer_store_deflated(void **state)
{
    (void)state;
    enum { N = 1000 };
    mm_k8s_client *cl = NULL;
    istore_log l = {0};
    mm_k8s_informer *inf = store_informer(&cl, NULL, &l);
    mm_k8s_informer_stats st;
    char json[1024], ns[16], name[16];
    size_t text_bytes = 0;
    for (int gen = 0; gen < 2; gen++) {
        text_bytes = 0;
        for (int i = 0; i < N; i++) {
            policy_text(json, sizeof(json), i, gen);
            struct json_object *o = json_tokener_parse(json);
            assert_non_null(o);
            text_bytes += strlen(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
            json_object_put(o);
            assert_int_equal(feed_event(inf, gen ? MM_K8S_MODIFIED : MM_K8S_ADDED, json), 0);
        }
        mm_k8s_informer_get_stats(inf, &st);
        assert_true(st.store_bytes * 10 < text_bytes * 3); /* 18% and 24% here */
        for (int i = 0; i < N; i++) {
            policy_text(json, sizeof(json), i, gen);
            snprintf(ns, sizeof(ns), "ns-%04d", i / 10);
            snprintf(name, sizeof(name), "p-%02d", i % 10);
            struct json_object *want = json_tokener_parse(json), *got = mm_k8s_informer_get(inf, ns, name);
            assert_non_null(got);
            if (!json_object_equal(got, want))
                fail_msg("%s/%s came back as %s", ns, name, json_object_to_json_string(got));
            json_object_put(want);
            json_object_put(got);
        }
    }
    assert_int_equal(l.updates, N);
    /* random letters share nothing with the dictionary: they cost about their text (deflate
       codes 64 letters in 6 bits each, no more than the text itself plus the entry's key,
       resourceVersion and header), and come back */
    char noise[700];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < 600; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        noise[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[x % 64];
    }
    noise[600] = '\0';
    snprintf(json, sizeof(json), "{\"metadata\":{\"name\":\"n\",\"namespace\":\"z\",\"resourceVersion\":\"9\"},\"data\":\"%s\"}", noise);
    mm_k8s_informer_get_stats(inf, &st);
    uint64_t before = st.store_bytes;
    assert_int_equal(feed_event(inf, MM_K8S_ADDED, json), 0);
    mm_k8s_informer_get_stats(inf, &st);
    assert_true(st.store_bytes - before >= strlen(noise) * 6 / 8);
    assert_true(st.store_bytes - before <= strlen(json) + 64);
    struct json_object *got = mm_k8s_informer_get(inf, "z", "n");
    assert_non_null(got);
    assert_string_equal(json_object_get_string(member(got, "data", NULL)), noise);
    json_object_put(got);
    assert_int_equal(feed_event(inf, MM_K8S_DELETED, json), 0);
    for (int i = 0; i < N; i++) {
        policy_text(json, sizeof(json), i, 1);
        assert_int_equal(feed_event(inf, MM_K8S_DELETED, json), 0);
    }
    mm_k8s_informer_get_stats(inf, &st);
    assert_int_equal(st.store_bytes, 0);
    assert_int_equal(mm_k8s_informer_count(inf), 0);
    mm_k8s_informer_free(inf);
    mm_k8s_client_free(cl);
}

/* Every allocation of an update fails in turn: the call either stores the new state or
 * reports failure with the old state intact (never half of each, never a crash or a leak). */
static void test_informer_store_alloc_failures(void **state)
{
    (void)state;
    mm_k8s_client *cl = NULL;
    istore_log l = {0};
    mm_k8s_informer *inf = store_informer(&cl, NULL, &l);
    int failures = 0;
    assert_int_equal(feed_event(inf, MM_K8S_ADDED, CM_EVENT("one", "1", "old")), 0);
    for (long n = 0;; n++) {
        struct json_object *ev = json_tokener_parse(CM_EVENT("one", "2", "new"));
        assert_non_null(ev);
        mm_k8s_event e = {.type = MM_K8S_MODIFIED, .object = ev};
        int updates = l.updates;
        mm_alloc_fail_after(n);
        int r = k8s_informer_on_event(inf, &e);
        mm_alloc_fail_after(-1);
        json_object_put(ev);
        struct json_object *got = mm_k8s_informer_get(inf, "a", "one");
        assert_non_null(got);
        char *rv = mm_k8s_informer_resource_version(inf);
        if (r == 0) {
            assert_string_equal(json_object_get_string(member(got, "data", "drop")), "new");
            assert_string_equal(rv, "2");
            assert_int_equal(l.updates, updates + 1);
            json_object_put(got);
            mm_free(rv);
            break;
        }
        failures++;
        assert_string_equal(json_object_get_string(member(got, "data", "drop")), "old");
        assert_string_equal(rv, "1");
        assert_int_equal(l.updates, updates);
        json_object_put(got);
        mm_free(rv);
    }
    assert_true(failures >= 2);
    assert_int_equal(mm_k8s_informer_count(inf), 1);
    mm_k8s_informer_free(inf);
    mm_k8s_client_free(cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_kubeconfig_token),
        cmocka_unit_test(test_kubeconfig_token_file),
        cmocka_unit_test(test_kubeconfig_certs),
        cmocka_unit_test(test_kubeconfig_errors),
        cmocka_unit_test(test_kubeconfig_files_and_env),
        cmocka_unit_test(test_incluster),
        cmocka_unit_test(test_status_samples),
        cmocka_unit_test(test_status_fields),
        cmocka_unit_test(test_status_text_bodies),
        cmocka_unit_test(test_warning_headers),
        cmocka_unit_test(test_watch_samples_every_split),
        cmocka_unit_test(test_watch_event_content),
        cmocka_unit_test(test_watch_framing_errors),
        cmocka_unit_test(test_lease_sample),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_informer_store_sample),
        cmocka_unit_test(test_informer_transform),
        cmocka_unit_test(test_informer_store_many),
        cmocka_unit_test(test_informer_store_deflated),
        cmocka_unit_test(test_informer_store_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
