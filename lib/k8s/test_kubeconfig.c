/* Unit tests for lib/k8s configuration beyond test_k8s.c: the ~/.kube/config and explicit
 * path lookup order, the client's token-file re-reads (size, mtime, forced as after a 401,
 * a vanished file), and every allocation failing in turn while parsing and copying configs
 * of each auth kind. Files are written under a fresh temporary folder. */
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
        cmocka_unit_test(test_lookup_order),
        cmocka_unit_test(test_token_rotation),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
