/* lib/httpd: the HTTPS server plumbing maskmesh's servers share, on libmicrohttpd with
 * GnuTLS: TLS 1.2+ with AEAD ciphers only, the certificate and key read from files and
 * re-read when they change (a mounted Secret rotating) without a restart or a dropped
 * connection, a bounded request body, exact-path routes with method and Content-Type checks,
 * JSON error bodies, and /healthz, /readyz, /metrics (lib/metrics).
 * Depends on: lib/metrics, lib/common, libmicrohttpd, GnuTLS.
 *
 * One TLS server per process (GnuTLS's certificate callback carries no user pointer). */
#ifndef MM_HTTPD_H
#define MM_HTTPD_H

#include "common/common.h"
#include "metrics/metrics.h"

typedef struct mm_httpd mm_httpd;

typedef struct {
    const char *method;       /* "POST" */
    const char *path;         /* without the query */
    const char *content_type; /* NULL when absent */
    const char *body;         /* NUL-terminated; "" when none */
    size_t body_len;
} mm_httpd_req;

typedef struct {
    int status;               /* 200 unless the handler says otherwise */
    const char *content_type; /* static string; default application/json */
    mm_buf body;              /* the handler appends here */
} mm_httpd_resp;

/* Called on a server thread, concurrently with other calls: handlers must be thread-safe. */
typedef void (*mm_httpd_handler)(void *ud, const mm_httpd_req *req, mm_httpd_resp *resp);

typedef struct {
    const char *listen;    /* "ADDR:PORT" or "[V6ADDR]:PORT"; port 0 picks a free one */
    const char *cert_file; /* PEM chain, leaf first; NULL (with key_file NULL): plain HTTP,
                              for admin ports (probes, metrics) */
    const char *key_file;  /* PEM private key */
    size_t body_max;       /* bigger bodies get 413; 0: 4 MiB */
    unsigned threads;      /* worker threads (each with its own epoll); 0: one per CPU */
    unsigned reload_ms;    /* how often the files are checked; 0: 1000 */
    mm_metrics *metrics;   /* borrowed; the server registers its families here */
} mm_httpd_opts;

/* Loads the certificate (an error names the file and what is wrong) and registers the
 * metrics. Nothing listens until mm_httpd_start. */
mm_err mm_httpd_new(const mm_httpd_opts *opts, mm_httpd **out, mm_errbuf *eb);
/* Routes are added before start. `json_body`: the request must say Content-Type
 * application/json (else 415). `path` is copied. */
mm_err mm_httpd_route(mm_httpd *h, const char *method, const char *path, bool json_body,
                      mm_httpd_handler fn, void *ud);
mm_err mm_httpd_start(mm_httpd *h, mm_errbuf *eb);
uint16_t mm_httpd_port(const mm_httpd *h);
/* /readyz answers 200 only when ready (and a certificate is loaded); default false. */
void mm_httpd_set_ready(mm_httpd *h, bool ready);
/* Stops accepting, lets requests in flight finish, stops the threads. */
void mm_httpd_stop(mm_httpd *h);
void mm_httpd_free(mm_httpd *h); /* stops first when still running; NULL is fine */

/* Sets status and a body {"code":N,"message":"..."}. */
void mm_httpd_error(mm_httpd_resp *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The Priority string used for TLS: TLS 1.3 and 1.2, ECDHE, AEAD ciphers only. */
extern const char *const mm_httpd_tls_priorities;

#endif
