/* maskmesh-proxy --wait-ready: the postStart hook of a classic (non-native) sidecar. The
 * image has no shell and no curl, so the proxy binary itself polls its admin /startz until it
 * answers 200, and the kubelet starts the app container only then (as Istio's
 * holdApplicationUntilProxyStarts does). /startz, not /readyz: /readyz also wants the app to
 * accept connections, and the app starts only after this hook (a kubelet found that: every
 * first start waited the whole timeout). Exit 0 when started, 1 when the timeout passed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "waitready.h"

/* One GET /startz on 127.0.0.1:port; true on 200. Every socket call has a short timeout. */
static bool ready_once(unsigned port)
{
    char buf[64];
    bool ok = false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 1};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return false;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        static const char req[] = "GET /startz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        ssize_t n;
        if (write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1) &&
            (n = read(fd, buf, sizeof(buf) - 1)) > 12) {
            buf[n] = '\0';
            ok = strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 9, "200", 3) == 0;
        }
    }
    close(fd);
    return ok;
}

int proxy_wait_ready(int argc, char **argv)
{
    long port = 15481, timeout_s = 120;

    for (int i = 2; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--admin") == 0 && v) {
            const char *colon = strrchr(v, ':'); /* ADDR:PORT: only the port matters here */
            if (!colon || !mm_parse_long(colon + 1, 1, 65535, &port)) {
                fprintf(stderr, "maskmesh-proxy --wait-ready: --admin takes ADDR:PORT\n");
                return 2;
            }
            i++;
        } else if (strcmp(argv[i], "--timeout") == 0 && v) {
            if (!mm_parse_long(v, 1, 3600, &timeout_s)) {
                fprintf(stderr, "maskmesh-proxy --wait-ready: --timeout takes seconds, 1 to 3600\n");
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "usage: maskmesh-proxy --wait-ready [--admin ADDR:PORT] [--timeout SECONDS]\n"
                            "Polls http://127.0.0.1:PORT/startz (PORT from --admin, default 15481)\n"
                            "until it answers 200 (exit 0) or the timeout (default 120 s) passes (exit 1).\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    uint64_t end = mm_now_ns() + (uint64_t)timeout_s * 1000000000ull;
    while (mm_now_ns() < end) {
        if (ready_once((unsigned)port))
            return 0;
        struct timespec ts = {.tv_nsec = 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "maskmesh-proxy --wait-ready: 127.0.0.1:%ld/startz not ready after %ld s\n", port,
            timeout_s);
    return 1;
}
