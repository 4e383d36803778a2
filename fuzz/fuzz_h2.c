/* libFuzzer target for the sidecar's HTTP/2 server side (lib/proxy/h2*.c): the input is what a
 * client sends on a fresh connection of a real proxy (built by mm_proxy_new with a masking
 * policy; the app address refuses connections, so streams meet their error paths too). The
 * first byte picks how it starts: even, the client preface is put in front (frames reach
 * nghttp2 and our callbacks at once); odd, the bytes go as they are (preface detection, the
 * HTTP/1.1 Upgrade). The input is fed in pieces split where the second byte says; every
 * frame we answer is written to a socket pair and drained. Crashes, leaks and hangs fail. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/proxy_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static mm_proxy *px;

static const char POLICY[] =
    "- apiVersion: maskmesh.io/v1alpha1\n"
    "  kind: MaskingPolicy\n"
    "  metadata: {name: p, namespace: n}\n"
    "  spec:\n"
    "    selector: {matchLabels: {app: a}}\n"
    "    direction: both\n"
    "    rules:\n"
    "      - {name: card, fields: [\"$..card\"], detectors: [credit_card], action: {type: redact}}\n"
    "    headers:\n"
    "      - {name: Authorization, action: {type: redact}}\n";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

/* The policy's directory, removed when libFuzzer exits (it calls exit once its runs or time
 * are done); after a crash it stays in /tmp, with the policy the crash ran under. */
static char dir[] = "/tmp/mm-fuzz-h2-XXXXXX", pol[64], lab[64];

static void remove_dir(void)
{
    unlink(pol);
    unlink(lab);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    mm_proxy_config cfg;
    mm_errbuf eb = {{0}};

    (void)argc;
    (void)argv;
    if (!mkdtemp(dir) || atexit(remove_dir) != 0)
        abort();
    snprintf(pol, sizeof(pol), "%s/policies.yaml", dir);
    snprintf(lab, sizeof(lab), "%s/labels", dir);
    write_file(pol, POLICY);
    write_file(lab, "app=\"a\"\n");
    mm_log_set_level(MM_LOG_ERROR);
    mm_proxy_config_defaults(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.admin = "";
    cfg.upstream = "127.0.0.1:1"; /* nothing listens: connects fail */
    cfg.policies = pol;
    cfg.labels = lab;
    cfg.keys = dir;
    cfg.workers = 1;
    cfg.max_header = 4096;
    if (mm_proxy_new(&cfg, &px, &eb) != MM_OK) {
        fprintf(stderr, "fuzz_h2: %s\n", eb.msg);
        abort();
    }
    return 0;
}

static void drain(int fd)
{
    char buf[16384];

    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    worker *w = px->workers[0];
    int sv[2];
    conn *c;
    size_t split;

    if (size < 2)
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        abort();
    w->now = mm_now_ns();
    if (!(c = conn_new(w, sv[0]))) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    split = 2 + (size - 2) * data[1] / 256;
    if (!(data[0] & 1) && mm_buf_append(&c->in, preface, sizeof(preface) - 1) != MM_OK)
        abort();
    for (int k = 0; k < 2 && c->fd >= 0; k++) {
        const uint8_t *p = k == 0 ? data + 2 : data + split;
        size_t n = k == 0 ? split - 2 : size - split;
        if (c->st == CS_H2) { /* taken over: the session reads the rest from the socket */
            if (n && send(sv[1], p, n, MSG_NOSIGNAL) == (ssize_t)n)
                h2_client_event(c, EPOLLIN);
        } else if (c->st == CS_HEAD) {
            if (mm_buf_append(&c->in, p, n) != MM_OK)
                abort();
            client_process(c);
        }
        if (c->fd >= 0 && c->st == CS_H2)
            h2_sync(c);
        drain(sv[1]);
    }
    /* the sweep's paths: timeouts and a drain */
    if (c->fd >= 0 && c->st == CS_H2) {
        w->now += 3600ull * 1000000000ull;
        h2_sweep(c, true);
        if (c->fd >= 0 && c->st == CS_H2)
            h2_sync(c);
        drain(sv[1]);
    }
    conn_close(c);
    conn_free(c);
    free_dead_up(w);
    h2c_free_dead(w);
    close(sv[1]);
    return 0;
}
