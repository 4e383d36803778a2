/* Helpers shared by lib/k8s's tests that talk to real servers (test_k8s_standin, test_k8s_h2);
 * included once per test program, never by the library.
 *
 * curl_easy_perform is defined here: the client (a static library) binds to it, it forwards
 * to libcurl's and records the HTTP version the transfer used (CURLINFO_HTTP_VERSION), which
 * the client does not report. */
#ifndef MM_K8S_TEST_SUPPORT_H
#define MM_K8S_TEST_SUPPORT_H

#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

static _Atomic long test_last_http_version = -1; /* CURL_HTTP_VERSION_* of the last transfer */
static _Atomic unsigned test_performs;           /* transfers so far */

CURLcode curl_easy_perform(CURL *h)
{
    CURLcode (*real)(CURL *) = (CURLcode(*)(CURL *))dlsym(RTLD_NEXT, "curl_easy_perform");
    if (!real)
        return CURLE_FAILED_INIT;
    CURLcode cc = real(h);
    long v = -1;
    if (curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &v) != CURLE_OK)
        v = -1;
    atomic_store(&test_last_http_version, v);
    atomic_fetch_add(&test_performs, 1);
    return cc;
}

/* Runs argv (no shell) with stdout and stderr to /dev/null; its exit status, or -1. */
static int test_run_quiet(char *const argv[])
{
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(p, &st, 0) != p)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* With openssl: a CA (d/NAME-ca.crt, .key) and a certificate it signs for `subj` with the
 * extensions in `ext` (a file, or NULL) at d/NAME.crt, .key. EC P-256, one day. 0 or -1. */
static int test_make_cert(const char *d, const char *name, const char *subj, const char *ext)
{
    char cakey[300], cacrt[300], key[300], csr[300], crt[300], casubj[300];
    snprintf(cakey, sizeof(cakey), "%s/%s-ca.key", d, name);
    snprintf(cacrt, sizeof(cacrt), "%s/%s-ca.crt", d, name);
    snprintf(key, sizeof(key), "%s/%s.key", d, name);
    snprintf(csr, sizeof(csr), "%s/%s.csr", d, name);
    snprintf(crt, sizeof(crt), "%s/%s.crt", d, name);
    snprintf(casubj, sizeof(casubj), "/CN=%s-ca", name);
    char *ca[] = {"openssl",
                  "req",
                  "-x509",
                  "-newkey",
                  "ec",
                  "-pkeyopt",
                  "ec_paramgen_curve:prime256v1",
                  "-nodes",
                  "-keyout",
                  cakey,
                  "-out",
                  cacrt,
                  "-days",
                  "1",
                  "-subj",
                  casubj,
                  "-addext",
                  "basicConstraints=critical,CA:TRUE",
                  "-addext",
                  "keyUsage=critical,keyCertSign",
                  NULL};
    char *req[] = {
        "openssl",    "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",     "-keyout", key,       "-out", csr,        "-subj",
        (char *)subj, NULL};
    char *sign[] = {"openssl",   "x509", "-req",   "-in", csr,
                    "-CA",       cacrt,  "-CAkey", cakey, "-CAcreateserial",
                    "-out",      crt,    "-days",  "1",   ext ? "-extfile" : NULL,
                    (char *)ext, NULL};
    return test_run_quiet(ca) == 0 && test_run_quiet(req) == 0 && test_run_quiet(sign) == 0 ? 0
                                                                                            : -1;
}

#endif
