/* lib/proxy: maskmesh-proxy, the masking sidecar. An HTTP/1.1 reverse proxy (N worker
 * threads, each an epoll loop over non-blocking sockets with its own SO_REUSEPORT listener
 * and upstream connection pool) that masks bodies and headers as they stream, per the
 * policies selecting this pod; HTTP/2 (h2c, by prior knowledge or Upgrade) on the same port,
 * towards an app speaking HTTP/1.1 or h2c; an admin listener (/healthz, /readyz, /metrics,
 * POST /quitquitquit); hot reload of policies, labels and keys.
 * Depends on: lib/mask, lib/policy, lib/metrics, lib/common, zlib, libnghttp2. */
#ifndef MM_PROXY_H
#define MM_PROXY_H

#include "common/common.h"

#include <stdint.h>

/* What the app speaks (--upstream-protocol): HTTP/1.1, or h2c (HTTP/2 without TLS). */
typedef enum { MM_UPSTREAM_H1 = 0, MM_UPSTREAM_H2C } mm_upstream_proto;

typedef struct {
    const char *listen;   /* ADDR:PORT; port 0 picks a free one (see mm_proxy_port) */
    const char *admin;    /* ADDR:PORT of the admin listener; NULL or "" for none */
    const char *upstream; /* HOST:PORT of the app, resolved once at start */
    const char *policies; /* policies.yaml (or JSON) */
    const char *labels;   /* the downward API labels file */
    const char *keys;     /* directory of key files; a missing directory means no keys */
    bool identity_xfcc;   /* trust x-forwarded-client-cert's URI for exemptions */
    int workers;          /* worker threads; 0: one per CPU, at most 8 */
    size_t max_value;     /* bound on one buffered value; 0: the engine's default */
    size_t max_header;    /* request head bound: past it 431 */
    uint64_t max_body;    /* request body bound: past it 413 */
    int max_conns;        /* client connections per worker; more are refused */
    int header_timeout_ms;   /* a request head must arrive within this: else 408 */
    int idle_timeout_ms;     /* keep-alive idle client connection */
    int io_timeout_ms;       /* no progress on a client body read or a write: 408 or abort */
    int connect_timeout_ms;  /* upstream connect */
    int upstream_timeout_ms; /* upstream silent this long (head or between body reads): 504 */
    int drain_timeout_ms;    /* on stop, in-flight exchanges get this long to finish */
    int pool_idle_ms;        /* an idle pooled upstream connection is closed after this */
    /* a response body no rule reads, with a known length and at least this many bytes
     * after its head, moves app -> client by splice(2); 0: never */
    uint64_t splice_min;
    int watch_interval_ms;   /* how often config files are checked for changes */
    mm_upstream_proto upstream_proto;
    /* HTTP/2 towards clients (SETTINGS; the header list limit is max_header) */
    uint32_t h2_max_streams;  /* concurrent streams per connection */
    uint32_t h2_window;       /* initial stream window: request bytes in flight per stream */
    uint32_t h2_conn_window;  /* ... and per connection */
    uint32_t h2_max_frame;    /* largest frame payload we accept */
} mm_proxy_config;

/* Defaults per DESIGN.md: 0.0.0.0:15480, admin 0.0.0.0:15481, the /etc/maskmesh paths. */
void mm_proxy_config_defaults(mm_proxy_config *c);

typedef struct mm_proxy mm_proxy;

/* Binds the listeners and loads the configuration once. A configuration that does not load
 * is logged and not fatal: the proxy runs unready (answering 503) until a valid one
 * appears. Strings in cfg are copied. */
mm_err mm_proxy_new(const mm_proxy_config *cfg, mm_proxy **out, mm_errbuf *eb);
/* The bound ports (useful after port 0). */
int mm_proxy_port(const mm_proxy *p);
int mm_proxy_admin_port(const mm_proxy *p);
/* Serves until mm_proxy_stop (or POST /quitquitquit), then drains: listeners close,
 * idle connections close, in-flight exchanges finish (up to drain_timeout_ms). */
mm_err mm_proxy_run(mm_proxy *p, mm_errbuf *eb);
/* Both async-signal-safe: they only set a flag and write to an eventfd. */
void mm_proxy_stop(mm_proxy *p);
void mm_proxy_request_reload(mm_proxy *p);
/* Loads the configuration now; on failure the old one stays and eb says why. */
mm_err mm_proxy_reload(mm_proxy *p, mm_errbuf *eb);
void mm_proxy_free(mm_proxy *p);

#endif
