/* lib/k8s over HTTP/2: the client asks for h2 over TLS (CURL_HTTP_VERSION_2TLS), so against a
 * server that offers it in ALPN every request must go out as HTTP/2, and several requests,
 * in a row must share one connection, and four threads at once must each get through on h2
 * (a connection each at most). The server is Debian's nghttpd (package nghttp2-server,
 * installed by hack/install-deps.sh), serving JSON files over TLS with a CA made here; the API
 * stand-in cannot speak h2 (test_k8s_standin checks the HTTP/1.1 fallback against it).
 *
 * What the client negotiated is read from libcurl itself: test_support.h defines
 * curl_easy_perform, which the client's static library binds to; it forwards to libcurl's and
 * records CURLINFO_HTTP_VERSION of the handle. nghttpd's own frame log is checked too: every
 * path arrives as an h2 stream of its first session. Run from the top of the tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "k8s/k8s.h"
#include "k8s/test_support.h"

#define NGHTTPD "/usr/sbin/nghttpd"

static char dir[256], kubeconfig[300], logpath[300];
static int port;
static pid_t nghttpd = -1;

/* ---- helpers -------------------------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int p = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        p = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return p;
}

static bool port_open(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)p),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void rm_rf(const char *d)
{
    char *argv[] = {"rm", "-rf", (char *)d, NULL};
    test_run_quiet(argv);
}

/* ---- nghttpd -------------------------------------------------------------------------------- */

static int start(void **state)
{
    (void)state;
    char p[400], ext[400], key[300], crt[300], docs[300];
    if (access(NGHTTPD, X_OK) != 0) {
        fprintf(stderr,
                "test_k8s_h2: %s is missing: hack/install-deps.sh installs nghttp2-server\n",
                NGHTTPD);
        return -1;
    }
    snprintf(dir, sizeof(dir), "/tmp/mm-k8s-h2-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(ext, sizeof(ext), "%s/ext.cnf", dir);
    FILE *f = fopen(ext, "w");
    if (!f ||
        fputs("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n", f) < 0 ||
        fclose(f) != 0)
        return -1;
    /* server.crt for 127.0.0.1, signed by server-ca.crt (the kubeconfig's CA) */
    if (test_make_cert(dir, "server", "/CN=localhost", ext) != 0)
        return -1;
    snprintf(key, sizeof(key), "%s/server.key", dir);
    snprintf(crt, sizeof(crt), "%s/server.crt", dir);
    /* the files nghttpd serves: three ConfigMaps */
    snprintf(docs, sizeof(docs), "%s/docs", dir);
    snprintf(p, sizeof(p), "%s/api/v1/namespaces/default/configmaps", docs);
    char *mk[] = {"mkdir", "-p", p, NULL};
    if (test_run_quiet(mk) != 0)
        return -1;
    for (char n = 'a'; n <= 'c'; n++) {
        char path[500], body[200];
        snprintf(path, sizeof(path), "%s/h2-%c", p, n);
        snprintf(body, sizeof(body),
                 "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"h2-%c\","
                 "\"namespace\":\"default\"},\"data\":{\"k\":\"%c\"}}\n",
                 n, n);
        if (!(f = fopen(path, "w")) || fputs(body, f) < 0 || fclose(f) != 0)
            return -1;
    }
    if ((port = free_port()) < 0)
        return -1;
    snprintf(logpath, sizeof(logpath), "%s/nghttpd.log", dir);
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    /* stdbuf: nghttpd's frame log reaches the file line by line, not at exit */
    char *argv[] = {"stdbuf", "-oL", NGHTTPD, "-v", "-a", "127.0.0.1",
                    "-d",     docs,  portstr, key,  crt,  NULL};
    if ((nghttpd = fork()) < 0)
        return -1;
    if (nghttpd == 0) {
        int lf = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || lf < 0 || dup2(lf, 1) < 0 || dup2(lf, 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; i < 100 && !port_open(port); i++)
        usleep(50000);
    if (!port_open(port)) {
        fprintf(stderr, "test_k8s_h2: nghttpd did not listen on %d (see %s)\n", port, logpath);
        return -1;
    }
    snprintf(kubeconfig, sizeof(kubeconfig), "%s/kubeconfig", dir);
    char text[2048];
    snprintf(text, sizeof(text),
             "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
             "clusters:\n- name: s\n  cluster:\n    server: https://127.0.0.1:%d\n"
             "    certificate-authority: server-ca.crt\n"
             "contexts:\n- name: t\n  context: {cluster: s, user: u, namespace: default}\n"
             "users:\n- name: u\n  user:\n    token: h2-token\n",
             port);
    f = fopen(kubeconfig, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        return -1;
    return 0;
}

static int stop(void **state)
{
    (void)state;
    if (nghttpd > 0) {
        kill(nghttpd, SIGTERM);
        waitpid(nghttpd, NULL, 0);
        nghttpd = -1;
    }
    if (dir[0])
        if (!getenv("MM_KEEP"))
            rm_rf(dir);
    return 0;
}

/* The nghttpd log, read whole. */
static char *server_log(void)
{
    char *text = NULL;
    size_t len;
    if (mm_read_file(logpath, 1u << 24, &text, &len, NULL) != MM_OK)
        fail_msg("cannot read %s", logpath);
    return text;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* A client from the kubeconfig written in start (the CA named relative to it). */
static mm_k8s_client *client(void)
{
    mm_k8s_config *cfg = NULL;
    mm_k8s_client *c = NULL;
    mm_errbuf eb = {{0}};
    if (mm_k8s_config_kubeconfig(kubeconfig, NULL, &cfg, &eb) != MM_OK)
        fail_msg("kubeconfig: %s", eb.msg);
    if (mm_k8s_client_new(cfg, NULL, &c, &eb) != MM_OK)
        fail_msg("client: %s", eb.msg);
    mm_k8s_config_free(cfg);
    return c;
}

static void test_h2_one_connection(void **state)
{
    (void)state;
    mm_k8s_client *c = client();
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};

    unsigned before = atomic_load(&test_performs);
    const char *names[] = {"h2-a", "h2-b", "h2-c", "h2-a", "h2-b"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        mm_k8s_ref r = {
            .version = "v1", .resource = "configmaps", .ns = "default", .name = names[i]};
        atomic_store(&test_last_http_version, -1);
        if (mm_k8s_get(c, &r, &res, &eb) != MM_OK)
            fail_msg("get %s: %s", names[i], eb.msg);
        assert_int_equal(res.http_code, 200);
        struct json_object *d, *k;
        assert_true(json_object_object_get_ex(res.body, "data", &d));
        assert_true(json_object_object_get_ex(d, "k", &k));
        assert_int_equal(json_object_get_string(k)[0], names[i][3]);
        assert_int_equal(atomic_load(&test_last_http_version), CURL_HTTP_VERSION_2_0);
    }
    assert_int_equal(atomic_load(&test_performs) - before, 5);
    /* five requests, one TLS connection */
    assert_int_equal(mm_k8s_client_connections(c), 1);

    /* nghttpd's side: the paths arrived as h2 streams 1, 3, 5, 7, 9 of one session (the
     * session ids before it are this file's readiness probes, which never spoke TLS) */
    char *log = server_log();
    assert_non_null(strstr(log, "The negotiated protocol: h2"));
    int session = -1;
    size_t n = 0;
    char *save = NULL;
    for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int id, stream;
        char path[200];
        if (!strstr(line, " :path: "))
            continue;
        if (sscanf(line, "[id=%d] [%*[^]]] recv (stream_id=%d) :path: %199s", &id, &stream, path) !=
            3)
            fail_msg("unexpected nghttpd line: %s", line);
        if (session < 0)
            session = id;
        assert_int_equal(id, session);
        assert_true(n < 5);
        assert_int_equal(stream, (int)(2 * n + 1));
        char want[200];
        snprintf(want, sizeof(want), "/api/v1/namespaces/default/configmaps/%s", names[n]);
        assert_string_equal(path, want);
        n++;
    }
    assert_int_equal(n, 5);
    mm_free(log);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(c);
}

/* A 404 from an h2 server is a Status error the caller can act on, as over HTTP/1.1 (nghttpd's
 * body is HTML, so the Status is built from the code). */
static void test_h2_not_found(void **state)
{
    (void)state;
    mm_k8s_client *c = client();
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_k8s_ref r = {.version = "v1", .resource = "configmaps", .ns = "default", .name = "absent"};
    assert_int_equal(mm_k8s_get(c, &r, &res, &eb), MM_ENOTFOUND);
    assert_int_equal(res.status.code, 404);
    assert_int_equal(atomic_load(&test_last_http_version), CURL_HTTP_VERSION_2_0);
    mm_k8s_result_clear(&res);
    mm_k8s_client_free(c);
}

/* Four threads share one client: their requests, made at the same
 * time, all complete over h2, with no more connections than threads, and later requests in
 * a row reuse those connections. */
static mm_k8s_client *shared;

static void *getter(void *arg)
{
    const char *name = arg;
    for (int i = 0; i < 10; i++) {
        mm_k8s_ref r = {.version = "v1", .resource = "configmaps", .ns = "default", .name = name};
        mm_k8s_result res = {0};
        mm_errbuf eb = {{0}};
        mm_err rc = mm_k8s_get(shared, &r, &res, &eb);
        mm_k8s_result_clear(&res);
        if (rc != MM_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_h2_threads_share_connections(void **state)
{
    (void)state;
    shared = client();
    pthread_t t[4];
    char *names[] = {"h2-a", "h2-b", "h2-c", "h2-a"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, getter, names[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *ret = NULL;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
    assert_int_equal(atomic_load(&test_last_http_version), CURL_HTTP_VERSION_2_0);
    uint64_t conns = mm_k8s_client_connections(shared);
    assert_true(conns >= 1 && conns <= 4);
    assert_null(getter("h2-b"));
    assert_int_equal(mm_k8s_client_connections(shared), conns);
    mm_k8s_client_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h2_one_connection),
        cmocka_unit_test(test_h2_not_found),
        cmocka_unit_test(test_h2_threads_share_connections),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
