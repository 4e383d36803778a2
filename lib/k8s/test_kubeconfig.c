/* Unit tests for lib/k8s configuration: kubeconfig files of every auth kind (token,
 * tokenFile, client certificate as files and as -data, CA as file and -data, insecure),
 * server path prefixes, KUBECONFIG and ~/.kube/config lookup, errors that name the field,
 * in-cluster settings from a test directory, token-file re-reads, and every allocation
 * failing in turn while parsing. Files are written under a fresh temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "k8s/k8s_int.h"

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static const char *tpath(const char *name)
{
    static char path[64][256]; /* a ring: option structs keep pointers for a while */
    static int i;
    i = (i + 1) % 64;
    snprintf(path[i], sizeof(path[i]), "%s/%s", tmpdir, name);
    return path[i];
}

static int setup(void **state)
{
    MM_UNUSED(state);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mm-k8s-test-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    MM_UNUSED(state);
    static const char *const files[] = {"kc", "token", "ca.crt", "tls.crt", "tls.key", "namespace",
                                        "home/.kube/config", "kc2", NULL};
    for (size_t i = 0; files[i]; i++)
        unlink(tpath(files[i]));
    rmdir(tpath("home/.kube"));
    rmdir(tpath("home"));
    rmdir(tmpdir);
    return 0;
}

#define KC_HEAD                                                                                    \
    "apiVersion: v1\nkind: Config\ncurrent-context: ctx\n"                                         \
    "contexts:\n- name: other\n  context: {cluster: c2, user: u2}\n"                               \
    "- name: ctx\n  context:\n    cluster: c1\n    user: u1\n    namespace: shop\n"

/* "hello CA\n", "hello cert\n", "hello key\n" in base64 */
#define CA_B64 "aGVsbG8gQ0EK"
#define CERT_B64 "aGVsbG8gY2VydAo="
#define KEY_B64 "aGVsbG8ga2V5Cg=="

static mm_k8s_config *load_ok(const char *text)
{
    mm_k8s_config *c = NULL;
    mm_errbuf eb = {{0}};
    write_file("kc", text);
    if (mm_k8s_config_kubeconfig(tpath("kc"), NULL, &c, &eb) != MM_OK)
        fail_msg("kubeconfig: %s", eb.msg);
    return c;
}

static mm_err load_err(const char *text, mm_errbuf *eb)
{
    mm_k8s_config *c = NULL;
    write_file("kc", text);
    mm_err rc = mm_k8s_config_kubeconfig(tpath("kc"), NULL, &c, eb);
    assert_null(c);
    return rc;
}

static void test_token_and_ca_data(void **state)
{
    MM_UNUSED(state);
    mm_k8s_config *c = load_ok(KC_HEAD "clusters:\n- name: c1\n  cluster:\n"
                                       "    server: https://10.0.0.1:6443/\n"
                                       "    certificate-authority-data: " CA_B64 "\n"
                                       "users:\n- name: u1\n  user:\n    token: s3cr3t-token\n");
    assert_string_equal(mm_k8s_config_server(c), "https://10.0.0.1:6443");
    assert_string_equal(mm_k8s_config_namespace(c), "shop");
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_TOKEN);
    assert_false(mm_k8s_config_insecure(c));
    assert_string_equal(c->token, "s3cr3t-token");
    assert_int_equal(c->ca_len, 9);
    assert_memory_equal(c->ca_data, "hello CA\n", 9);
    assert_null(c->ca_file);
    mm_k8s_config_free(c);
}

static void test_token_file_and_ca_file(void **state)
{
    MM_UNUSED(state);
    write_file("token", "file-token\n");
    write_file("ca.crt", "PEM CA\n");
    /* relative paths are relative to the kubeconfig's folder */
    mm_k8s_config *c = load_ok(KC_HEAD "clusters:\n- name: c1\n  cluster:\n"
                                       "    server: https://k8s.example:443/prefix/path\n"
                                       "    certificate-authority: ca.crt\n"
                                       "users:\n- name: u1\n  user:\n    tokenFile: token\n");
    assert_string_equal(mm_k8s_config_server(c), "https://k8s.example:443/prefix/path");
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_TOKEN_FILE);
    assert_string_equal(c->token_file, tpath("token"));
    assert_string_equal(c->ca_file, tpath("ca.crt"));
    assert_null(c->token);
    mm_k8s_config_free(c);
}

static void test_client_cert_data_and_files(void **state)
{
    MM_UNUSED(state);
    mm_k8s_config *c = load_ok(KC_HEAD "clusters:\n- name: c1\n  cluster:\n"
                                       "    server: https://h\n"
                                       "    insecure-skip-tls-verify: true\n"
                                       "users:\n- name: u1\n  user:\n"
                                       "    client-certificate-data: " CERT_B64 "\n"
                                       "    client-key-data: " KEY_B64 "\n");
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_CERT);
    assert_true(mm_k8s_config_insecure(c));
    assert_int_equal(c->cert_len, 11);
    assert_memory_equal(c->cert_data, "hello cert\n", 11);
    assert_int_equal(c->key_len, 10);
    assert_memory_equal(c->key_data, "hello key\n", 10);
    mm_k8s_config_free(c);

    write_file("tls.crt", "CERT\n");
    write_file("tls.key", "KEY\n");
    char text[2048];
    snprintf(text, sizeof(text),
             KC_HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://h\n"
                     "users:\n- name: u1\n  user:\n    client-certificate: %s\n"
                     "    client-key: %s\n",
             tpath("tls.crt"), tpath("tls.key"));
    c = load_ok(text);
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_CERT);
    assert_string_equal(c->cert_file, tpath("tls.crt"));
    assert_string_equal(c->key_file, tpath("tls.key"));
    assert_null(c->cert_data);
    mm_k8s_config_free(c);
}

static void test_named_context_and_no_user(void **state)
{
    MM_UNUSED(state);
    mm_k8s_config *c = NULL;
    mm_errbuf eb = {{0}};
    const char *text = KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://one'}\n"
                               "- name: c2\n  cluster: {server: 'http://two:8080'}\n"
                               "users:\n- name: u1\n  user: {token: t1}\n- name: u2\n  user: {}\n";
    write_file("kc", text);
    assert_int_equal(mm_k8s_config_kubeconfig(tpath("kc"), "other", &c, &eb), MM_OK);
    assert_string_equal(mm_k8s_config_server(c), "http://two:8080");
    assert_string_equal(mm_k8s_config_namespace(c), "default");
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_NONE);
    mm_k8s_config_free(c);
}

static void test_lookup_order(void **state)
{
    MM_UNUSED(state);
    mm_k8s_config *c = NULL;
    mm_errbuf eb = {{0}};
    char *old_kc = getenv("KUBECONFIG") ? strdup(getenv("KUBECONFIG")) : NULL;
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

    write_file("kc2", KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://from-env'}\n"
                              "users:\n- name: u1\n  user: {token: t}\n");
    char list[600];
    snprintf(list, sizeof(list), "%s:%s", tpath("missing"), tpath("kc2"));
    setenv("KUBECONFIG", list, 1);
    assert_int_equal(mm_k8s_config_kubeconfig(NULL, NULL, &c, &eb), MM_OK);
    assert_string_equal(mm_k8s_config_server(c), "https://from-env");
    mm_k8s_config_free(c);

    unsetenv("KUBECONFIG");
    assert_int_equal(mkdir(tpath("home"), 0700), 0);
    assert_int_equal(mkdir(tpath("home/.kube"), 0700), 0);
    write_file("home/.kube/config",
               KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://from-home'}\n"
                       "users:\n- name: u1\n  user: {token: t}\n");
    setenv("HOME", tpath("home"), 1);
    assert_int_equal(mm_k8s_config_kubeconfig(NULL, NULL, &c, &eb), MM_OK);
    assert_string_equal(mm_k8s_config_server(c), "https://from-home");
    mm_k8s_config_free(c);

    /* an explicit path beats both */
    setenv("KUBECONFIG", tpath("kc2"), 1);
    write_file("kc", KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://explicit'}\n"
                             "users:\n- name: u1\n  user: {token: t}\n");
    assert_int_equal(mm_k8s_config_load(tpath("kc"), &c, &eb), MM_OK);
    assert_string_equal(mm_k8s_config_server(c), "https://explicit");
    mm_k8s_config_free(c);

    if (old_kc)
        setenv("KUBECONFIG", old_kc, 1);
    else
        unsetenv("KUBECONFIG");
    if (old_home)
        setenv("HOME", old_home, 1);
    free(old_kc);
    free(old_home);
}

static void test_errors_name_the_field(void **state)
{
    MM_UNUSED(state);
    static const struct {
        const char *text;
        mm_err rc;
        const char *want; /* substring of the message */
    } cases[] = {
        {KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h'}\n"
                 "users:\n- name: u1\n  user: {client-key-data: '!!notbase64!!', "
                 "client-certificate-data: " CERT_B64 "}\n",
         MM_EPARSE, "users[0].user.client-key-data: not valid base64"},
        {KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h', "
                 "certificate-authority: /nonexistent/ca.crt}\nusers:\n- name: u1\n  user: {}\n",
         MM_EIO, "clusters[0].cluster.certificate-authority: cannot read the file"},
        {KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'ftp://h'}\n", MM_EINVAL,
         "clusters[0].cluster.server"},
        {KC_HEAD "clusters:\n- name: c1\n  cluster: {}\n", MM_EINVAL, "server: required"},
        {KC_HEAD "clusters: []\n", MM_EINVAL, "no cluster named \"c1\""},
        {KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h'}\nusers: []\n", MM_EINVAL,
         "no user named \"u1\""},
        {"apiVersion: v1\nkind: Config\ncurrent-context: nope\ncontexts: []\n", MM_EINVAL,
         "current-context"},
        {"apiVersion: v1\nkind: Config\n", MM_EINVAL, "current-context"},
        {KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h', "
                 "insecure-skip-tls-verify: maybe}\n",
         MM_EPARSE, "clusters[0].cluster.insecure-skip-tls-verify"},
        {KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h'}\n"
                 "users:\n- name: u1\n  user: {client-certificate-data: " CERT_B64 "}\n",
         MM_EINVAL, "client-key"},
        {KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h'}\n"
                 "users:\n- name: u1\n  user: {tokenFile: /nonexistent/token}\n",
         MM_EIO, "users[0].user.tokenFile"},
        {KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h'}\n"
                 "users:\n- name: u1\n  user: {exec: {command: aws}}\n",
         MM_EINVAL, "users[0].user.exec"},
        {"kind: Config\ncurrent-context: [\n", MM_EPARSE, "kc:"},
        {"- just\n- a list\n", MM_EPARSE, "expected a mapping"},
    };
    for (size_t i = 0; i < MM_ARRAY_LEN(cases); i++) {
        mm_errbuf eb = {{0}};
        mm_err rc = load_err(cases[i].text, &eb);
        if (rc != cases[i].rc || !strstr(eb.msg, cases[i].want))
            fail_msg("case %zu: got %s \"%s\", want %s containing \"%s\"", i, mm_strerror(rc),
                     eb.msg, mm_strerror(cases[i].rc), cases[i].want);
        /* the message names the file and never carries a secret */
        assert_non_null(strstr(eb.msg, "kc"));
        assert_null(strstr(eb.msg, "notbase64"));
    }
}

static void test_incluster(void **state)
{
    MM_UNUSED(state);
    mm_k8s_config *c = NULL;
    mm_errbuf eb = {{0}};
    write_file("token", "sa-token\n");
    write_file("ca.crt", "CA\n");
    write_file("namespace", "maskmesh\n");
    mm_k8s_incluster_opts o = {.host = "10.96.0.1",
                               .port = "443",
                               .token_path = tpath("token"),
                               .ca_path = tpath("ca.crt"),
                               .namespace_path = tpath("namespace")};
    assert_int_equal(mm_k8s_config_incluster(&o, &c, &eb), MM_OK);
    assert_string_equal(mm_k8s_config_server(c), "https://10.96.0.1:443");
    assert_string_equal(mm_k8s_config_namespace(c), "maskmesh");
    assert_int_equal(mm_k8s_config_auth(c), MM_K8S_AUTH_TOKEN_FILE);
    assert_string_equal(c->ca_file, tpath("ca.crt"));
    mm_k8s_config_free(c);

    o.host = "fd00::1";
    o.namespace_path = tpath("no-such-namespace");
    assert_int_equal(mm_k8s_config_incluster(&o, &c, &eb), MM_OK);
    assert_string_equal(mm_k8s_config_server(c), "https://[fd00::1]:443");
    assert_string_equal(mm_k8s_config_namespace(c), "default");
    mm_k8s_config_free(c);

    o.port = "99999";
    assert_int_equal(mm_k8s_config_incluster(&o, &c, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "KUBERNETES_SERVICE_PORT"));
    o.port = "443";
    o.token_path = tpath("no-token");
    assert_int_equal(mm_k8s_config_incluster(&o, &c, &eb), MM_ENOTFOUND);
    assert_non_null(strstr(eb.msg, "token"));

    /* from the environment when the options leave host/port unset */
    mm_k8s_incluster_opts env = {.token_path = tpath("token"), .ca_path = tpath("ca.crt"),
                                 .namespace_path = tpath("namespace")};
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.9", 1);
    setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
    assert_int_equal(mm_k8s_config_incluster(&env, &c, &eb), MM_OK);
    assert_string_equal(mm_k8s_config_server(c), "https://10.96.0.9:6443");
    mm_k8s_config_free(c);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    assert_int_equal(mm_k8s_config_incluster(&env, &c, &eb), MM_EINVAL);
}

/* The client re-reads its token file only when it changed (size, mtime or inode). */
static void test_token_rotation(void **state)
{
    MM_UNUSED(state);
    mm_k8s_config *cfg = NULL;
    mm_k8s_client *cl = NULL;
    mm_errbuf eb = {{0}};
    write_file("token", "first-token\n");
    write_file("ca.crt", "CA\n");
    mm_k8s_incluster_opts o = {.host = "127.0.0.1", .port = "1", .token_path = tpath("token"),
                               .ca_path = tpath("ca.crt"), .namespace_path = tpath("namespace")};
    assert_int_equal(mm_k8s_config_incluster(&o, &cfg, &eb), MM_OK);
    assert_int_equal(mm_k8s_client_new(cfg, NULL, &cl, &eb), MM_OK);
    assert_string_equal(cl->token, "first-token");
    uint64_t reads = cl->token_reads;
    assert_int_equal(k8s_refresh_token(cl, false, &eb), MM_OK);
    assert_int_equal(cl->token_reads, reads); /* unchanged: not read again */

    /* a rotated token of another length */
    write_file("token", "second-longer-token\n");
    assert_int_equal(k8s_refresh_token(cl, false, &eb), MM_OK);
    assert_string_equal(cl->token, "second-longer-token");
    assert_int_equal(cl->token_reads, reads + 1);

    /* same size, new mtime */
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
    write_file("token", "third--longer-token\n");
    assert_int_equal(utimensat(AT_FDCWD, tpath("token"), ts, 0), 0);
    assert_int_equal(k8s_refresh_token(cl, false, &eb), MM_OK);
    assert_string_equal(cl->token, "third--longer-token");

    /* forced (what a 401 does) reads even when nothing changed */
    reads = cl->token_reads;
    assert_int_equal(k8s_refresh_token(cl, true, &eb), MM_OK);
    assert_int_equal(cl->token_reads, reads + 1);

    /* a vanished file keeps the token we have */
    unlink(tpath("token"));
    assert_int_equal(k8s_refresh_token(cl, false, &eb), MM_OK);
    assert_string_equal(cl->token, "third--longer-token");
    mm_k8s_client_free(cl);
    mm_k8s_config_free(cfg);
}

/* Every allocation in turn fails while parsing each kind of kubeconfig: MM_ENOMEM or
 * success, never a crash or a leak. */
static void test_alloc_failures(void **state)
{
    MM_UNUSED(state);
    write_file("token", "t\n");
    write_file("ca.crt", "CA\n");
    static const char *const texts[] = {
        KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h/p', "
                "certificate-authority-data: " CA_B64 "}\n"
                "users:\n- name: u1\n  user: {client-certificate-data: " CERT_B64
                ", client-key-data: " KEY_B64 "}\n",
        KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h', "
                "certificate-authority: ca.crt}\nusers:\n- name: u1\n  user: {tokenFile: token}\n",
        KC_HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://h'}\n"
                "users:\n- name: u1\n  user: {client-key-data: '!!'}\n",
    };
    for (size_t t = 0; t < MM_ARRAY_LEN(texts); t++) {
        bool done = false;
        for (long n = 0; n < 10000 && !done; n++) {
            mm_k8s_config *c = NULL, *copy = NULL;
            mm_errbuf eb = {{0}};
            mm_alloc_fail_after(n);
            mm_err rc = mm_k8s_config_parse_kubeconfig(texts[t], strlen(texts[t]), tpath("kc"),
                                                       NULL, &c, &eb);
            if (rc == MM_OK)
                rc = k8s_config_copy(c, &copy);
            mm_alloc_fail_after(-1);
            if (rc == MM_OK || rc == MM_EPARSE) {
                assert_true(t == 2 ? rc == MM_EPARSE : rc == MM_OK);
                done = true;
            } else if (rc != MM_ENOMEM) {
                fail_msg("text %zu, allocation %ld failing: %s %s", t, n, mm_strerror(rc), eb.msg);
            }
            mm_k8s_config_free(copy);
            mm_k8s_config_free(c);
        }
        assert_true(done);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_and_ca_data),
        cmocka_unit_test(test_token_file_and_ca_file),
        cmocka_unit_test(test_client_cert_data_and_files),
        cmocka_unit_test(test_named_context_and_no_user),
        cmocka_unit_test(test_lookup_order),
        cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_incluster),
        cmocka_unit_test(test_token_rotation),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
