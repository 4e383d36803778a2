/* lib/httpd: libmicrohttpd HTTPS server with certificates served per handshake from the
 * newest good pair on disk (GnuTLS retrieve callback), a watcher thread that re-reads the
 * files when they change, routes, bounded bodies, and the health and metrics endpoints. */
#include "httpd/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CERT_FILE_MAX (1u << 20)
#define CERT_CHAIN_MAX 16
#define RETIRED_KEEP_NS (600ull * 1000000000ull) /* old pairs outlive any handshake */
/* libmicrohttpd's per-connection pool (request line, headers, read buffer; bodies are handed
 * to us in pieces). It zeroes the whole pool between two requests of a keep-alive
 * connection: at 64 KiB that memset was a tenth of the webhook's work per request. 16 KiB
 * takes headers up to about 12 KiB; more gets 431. */
#define CONN_POOL_BYTES (16u << 10)

const char *const mm_httpd_tls_priorities =
    "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:"
    "+AES-128-GCM:+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"
    "%SERVER_PRECEDENCE";

/* One certificate/key pair as loaded; immutable once published. */
typedef struct cert_gen {
    gnutls_pcert_st pcerts[CERT_CHAIN_MAX];
    unsigned n_pcerts;
    gnutls_privkey_t key;
    time_t expiry;
    uint64_t retired_ns;
    struct cert_gen *next; /* in the retired list */
} cert_gen;

typedef struct {
    char *method, *path;
    bool json_body;
    mm_httpd_handler fn;
    void *ud;
    mm_series *latency;
} route;

typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} file_stamp;

struct mm_httpd {
    char *listen, *cert_file, *key_file; /* no files: plain HTTP */
    bool plain;
    size_t body_max;
    unsigned threads, reload_ms;
    struct MHD_Daemon *d;
    uint16_t port;
    atomic_bool ready;

    route *routes;
    size_t n_routes;

    pthread_mutex_t cert_lock;
    cert_gen *current; /* under cert_lock */
    cert_gen *retired; /* under cert_lock */
    file_stamp cert_stamp, key_stamp, failed_cert_stamp, failed_key_stamp;

    pthread_t watcher;
    bool watcher_running;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping;

    mm_metrics *metrics;
    mm_metric *m_requests, *m_latency, *m_expiry, *m_reloads;
};

/* GnuTLS's retrieve callback has no user pointer: the one TLS server of the process. */
static pthread_mutex_t owner_lock = PTHREAD_MUTEX_INITIALIZER;
static mm_httpd *tls_owner;

/* ---- certificates --------------------------------------------------------------------- */

static void gen_free(cert_gen *g)
{
    if (!g)
        return;
    for (unsigned i = 0; i < g->n_pcerts; i++)
        gnutls_pcert_deinit(&g->pcerts[i]);
    if (g->key)
        gnutls_privkey_deinit(g->key);
    mm_free(g);
}

static mm_err gen_load(const char *cert_file, const char *key_file, cert_gen **out, mm_errbuf *eb)
{
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    cert_gen *g = NULL;
    gnutls_certificate_credentials_t check = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t cd, kd;
    mm_err rc;
    int ret;

    if ((rc = mm_read_file(cert_file, CERT_FILE_MAX, &cert, &cert_len, eb)) != MM_OK ||
        (rc = mm_read_file(key_file, CERT_FILE_MAX, &key, &key_len, eb)) != MM_OK)
        goto out;
    cd = (gnutls_datum_t){(unsigned char *)cert, (unsigned)cert_len};
    kd = (gnutls_datum_t){(unsigned char *)key, (unsigned)key_len};
    /* the pair must match: GnuTLS checks it when both go into one credentials set */
    if ((ret = gnutls_certificate_allocate_credentials(&check)) < 0) {
        rc = MM_ENOMEM;
        goto out;
    }
    if ((ret = gnutls_certificate_set_x509_key_mem2(check, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        rc = mm_errf(eb, MM_ETLS, "%s, %s: %s", cert_file, key_file, gnutls_strerror(ret));
        goto out;
    }
    if (!(g = mm_calloc(1, sizeof(*g)))) {
        rc = MM_ENOMEM;
        goto out;
    }
    g->n_pcerts = CERT_CHAIN_MAX;
    if ((ret = gnutls_pcert_list_import_x509_raw(g->pcerts, &g->n_pcerts, &cd, GNUTLS_X509_FMT_PEM, 0)) < 0) {
        g->n_pcerts = 0;
        rc = mm_errf(eb, MM_ETLS, "%s: %s", cert_file, gnutls_strerror(ret));
        goto out;
    }
    if ((ret = gnutls_privkey_init(&g->key)) < 0 ||
        (ret = gnutls_privkey_import_x509_raw(g->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        rc = mm_errf(eb, MM_ETLS, "%s: %s", key_file, gnutls_strerror(ret));
        goto out;
    }
    if ((ret = gnutls_x509_crt_init(&crt)) < 0 ||
        (ret = gnutls_x509_crt_import(crt, &g->pcerts[0].cert, GNUTLS_X509_FMT_DER)) < 0) {
        rc = mm_errf(eb, MM_ETLS, "%s: %s", cert_file, gnutls_strerror(ret));
        goto out;
    }
    g->expiry = gnutls_x509_crt_get_expiration_time(crt);
    *out = g;
    g = NULL;
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (check)
        gnutls_certificate_free_credentials(check);
    gen_free(g);
    if (key) {
        explicit_bzero(key, key_len);
        mm_free(key);
    }
    mm_free(cert);
    return rc;
}

static int cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **pcert, unsigned int *pcert_length,
                         gnutls_privkey_t *pkey)
{
    mm_httpd *h;
    int rc = -1;
    MM_UNUSED(session);
    MM_UNUSED(req_ca_dn);
    MM_UNUSED(nreqs);
    MM_UNUSED(pk_algos);
    MM_UNUSED(pk_algos_length);

    pthread_mutex_lock(&owner_lock);
    h = tls_owner;
    if (h) {
        pthread_mutex_lock(&h->cert_lock);
        if (h->current) {
            /* a pair stays allocated RETIRED_KEEP_NS after it is replaced, far longer than
             * a handshake; GnuTLS does not use it after the handshake */
            *pcert = h->current->pcerts;
            *pcert_length = h->current->n_pcerts;
            *pkey = h->current->key;
            rc = 0;
        }
        pthread_mutex_unlock(&h->cert_lock);
    }
    pthread_mutex_unlock(&owner_lock);
    return rc;
}

static bool stamp_of(const char *path, file_stamp *s)
{
    struct stat st;
    if (stat(path, &st) != 0) /* follows the ..data symlink a Secret volume swaps */
        return false;
    memset(s, 0, sizeof(*s));
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtime = st.st_mtim;
    s->ctime = st.st_ctim;
    return true;
}

static bool stamp_eq(const file_stamp *a, const file_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Publishes g as the current pair; the previous one is retired, not freed. */
static void publish(mm_httpd *h, cert_gen *g)
{
    uint64_t now = mm_now_ns();
    cert_gen **pp;

    pthread_mutex_lock(&h->cert_lock);
    if (h->current) {
        h->current->retired_ns = now;
        h->current->next = h->retired;
        h->retired = h->current;
    }
    h->current = g;
    for (pp = &h->retired; *pp;) {
        cert_gen *r = *pp;
        if (now - r->retired_ns > RETIRED_KEEP_NS) {
            *pp = r->next;
            gen_free(r);
        } else {
            pp = &r->next;
        }
    }
    pthread_mutex_unlock(&h->cert_lock);
    mm_metric_set(h->m_expiry, NULL, (double)g->expiry);
}

/* Re-reads the pair when either file changed; a pair that does not load (a rotation caught
 * half-written, a key that does not match) keeps the old one serving and is retried when the
 * files change again. */
static void check_reload(mm_httpd *h)
{
    file_stamp cs, ks;
    cert_gen *g = NULL;
    mm_errbuf eb;

    if (!stamp_of(h->cert_file, &cs) || !stamp_of(h->key_file, &ks))
        return;
    if (stamp_eq(&cs, &h->cert_stamp) && stamp_eq(&ks, &h->key_stamp))
        return;
    if (stamp_eq(&cs, &h->failed_cert_stamp) && stamp_eq(&ks, &h->failed_key_stamp))
        return;
    if (gen_load(h->cert_file, h->key_file, &g, &eb) != MM_OK) {
        h->failed_cert_stamp = cs;
        h->failed_key_stamp = ks;
        mm_metric_add(h->m_reloads, (const char *const[]){"failure"}, 1);
        mm_log(MM_LOG_WARN, "certificate reload failed; still serving the previous one", "error",
               eb.msg, NULL);
        return;
    }
    h->cert_stamp = cs;
    h->key_stamp = ks;
    publish(h, g);
    mm_metric_add(h->m_reloads, (const char *const[]){"success"}, 1);
    mm_log(MM_LOG_INFO, "serving a new certificate", "cert", h->cert_file, NULL);
}

static void *watcher_main(void *arg)
{
    mm_httpd *h = arg;
    pthread_mutex_lock(&h->stop_lock);
    while (!h->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += h->reload_ms / 1000;
        ts.tv_nsec += (long)(h->reload_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->stop_cond, &h->stop_lock, &ts);
        if (h->stopping)
            break;
        pthread_mutex_unlock(&h->stop_lock);
        check_reload(h);
        pthread_mutex_lock(&h->stop_lock);
    }
    pthread_mutex_unlock(&h->stop_lock);
    return NULL;
}

/* ---- responses ------------------------------------------------------------------------ */

void mm_httpd_error(mm_httpd_resp *resp, int status, const char *fmt, ...)
{
    mm_buf msg;
    va_list ap;

    resp->status = status;
    resp->content_type = "application/json";
    mm_buf_reset(&resp->body);
    mm_buf_init(&msg, 0);
    va_start(ap, fmt);
    if (mm_buf_vprintf(&msg, fmt, ap) != MM_OK)
        mm_buf_reset(&msg);
    va_end(ap);
    if (mm_buf_printf(&resp->body, "{\"code\":%d,\"message\":", status) != MM_OK ||
        mm_buf_put_json_str(&resp->body, msg.data ? msg.data : "", msg.len) != MM_OK ||
        mm_buf_puts(&resp->body, "}\n") != MM_OK)
        mm_buf_reset(&resp->body);
    mm_buf_free(&msg);
}

/* keep: r->body stays allocated until the request completes (a connection's buffer), so it
 * is sent from where it is; else MHD takes it over. */
static enum MHD_Result send_resp(struct MHD_Connection *c, mm_httpd_resp *r, const char *allow,
                                 bool keep)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    size_t len = r->body.len;
    char *data = NULL;

    if (!len)
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    else if (keep)
        resp = MHD_create_response_from_buffer(len, r->body.data, MHD_RESPMEM_PERSISTENT);
    else if ((data = mm_buf_steal(&r->body, &len)) != NULL)
        resp = MHD_create_response_from_buffer_with_free_callback(len, data, mm_free);
    else
        resp = NULL;
    if (!resp) {
        mm_free(data);
        return MHD_NO;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                r->content_type ? r->content_type : "application/json") != MHD_YES ||
        (allow && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES)) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- requests ------------------------------------------------------------------------- */

typedef struct {
    const route *rt;       /* NULL: answered early */
    mm_buf body;
    mm_buf out;            /* the response body, sent from here (kept until completed) */
    bool too_big, answered;
    uint64_t t0;
    int status;
    const char *route_label;
} req_state;

/* One per connection (MHD_OPTION_NOTIFY_CONNECTION): a keep-alive connection's requests reuse
 * the state and the two buffers instead of allocating them for each request. A connection is
 * served by one thread at a time, and its requests one after the other. */
#define CONN_KEEP_BYTES (16u << 10) /* bigger buffers are freed after their request */
typedef struct {
    req_state req;
    bool busy; /* req belongs to a request in flight */
} conn_state;

static const route *find_route(mm_httpd *h, const char *path, const char *method, bool *path_known,
                               const char **label, char *allow, size_t allow_len)
{
    const route *found = NULL;
    size_t used = 0;
    *path_known = false;
    *label = "other"; /* metric labels stay bounded: only registered paths */
    allow[0] = '\0';
    for (size_t i = 0; i < h->n_routes; i++) {
        if (strcmp(h->routes[i].path, path) != 0)
            continue;
        *path_known = true;
        *label = h->routes[i].path;
        if (strcmp(h->routes[i].method, method) == 0)
            found = &h->routes[i];
        if (used < allow_len) {
            int n = snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "",
                             h->routes[i].method);
            if (n > 0)
                used += (size_t)n;
        }
    }
    return found;
}

static bool content_type_is_json(const char *ct)
{
    size_t n = strlen("application/json");
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

__attribute__((format(printf, 5, 6))) static enum MHD_Result
answer_early(struct MHD_Connection *c, req_state *st, int status, const char *allow,
             const char *fmt, ...)
{
    mm_httpd_resp r = {.status = status};
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mm_buf_init(&r.body, 0);
    mm_httpd_error(&r, status, "%s", msg);
    st->answered = true;
    st->status = status;
    enum MHD_Result ret = send_resp(c, &r, allow, false);
    mm_buf_free(&r.body);
    return ret;
}

static conn_state *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The request state: the connection's own when it has one, else allocated (freed when the
 * request completes). */
static req_state *req_begin(mm_httpd *h, struct MHD_Connection *c)
{
    conn_state *cs = conn_of(c);
    req_state *st;

    if (cs && !cs->busy) {
        mm_buf body = cs->req.body, out = cs->req.out;
        cs->busy = true;
        st = &cs->req;
        memset(st, 0, sizeof(*st));
        st->body = body;
        st->out = out;
        mm_buf_reset(&st->body);
        mm_buf_reset(&st->out);
        st->body.limit = h->body_max;
        return st;
    }
    if (!(st = mm_calloc(1, sizeof(*st))))
        return NULL;
    mm_buf_init(&st->body, h->body_max);
    mm_buf_init(&st->out, 0);
    return st;
}

static void req_end(struct MHD_Connection *c, req_state *st)
{
    conn_state *cs = conn_of(c);
    if (cs && st == &cs->req) {
        if (st->body.cap > CONN_KEEP_BYTES)
            mm_buf_free(&st->body);
        if (st->out.cap > CONN_KEEP_BYTES)
            mm_buf_free(&st->out);
        cs->busy = false;
        return;
    }
    mm_buf_free(&st->body);
    mm_buf_free(&st->out);
    mm_free(st);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    conn_state *cs = *socket_context;
    MM_UNUSED(cls);
    MM_UNUSED(c);

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        /* without one (out of memory) the connection's requests allocate their own */
        if ((cs = mm_calloc(1, sizeof(*cs))) != NULL) {
            mm_buf_init(&cs->req.body, 0);
            mm_buf_init(&cs->req.out, 0);
        }
        *socket_context = cs;
    } else if (cs) {
        mm_buf_free(&cs->req.body);
        mm_buf_free(&cs->req.out);
        mm_free(cs);
        *socket_context = NULL;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    mm_httpd *h = cls;
    req_state *st = *con_cls;
    MM_UNUSED(version);

    if (!st) {
        char allow[128];
        bool known;
        const char *cl;
        if (!(st = req_begin(h, c)))
            return MHD_NO;
        st->t0 = mm_now_ns();
        *con_cls = st;
        st->rt = find_route(h, url, method, &known, &st->route_label, allow, sizeof(allow));
        if (!known)
            return answer_early(c, st, 404, NULL, "no such path: %.200s", url);
        if (!st->rt)
            return answer_early(c, st, 405, allow, "method %s not allowed (allowed: see Allow)",
                                method);
        if (st->rt->json_body &&
            !content_type_is_json(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                              MHD_HTTP_HEADER_CONTENT_TYPE)))
            return answer_early(c, st, 415, NULL, "%s", "Content-Type must be application/json");
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            long n;
            if (!mm_parse_long(cl, 0, (long)h->body_max, &n))
                return answer_early(c, st, 413, NULL, "%s", "request body too large");
            if (n > 0 && mm_buf_reserve(&st->body, (size_t)n + 1) != MM_OK) /* one allocation */
                return answer_early(c, st, 500, NULL, "%s", "out of memory");
        }
        return MHD_YES;
    }
    if (st->answered) { /* drain what the client still sends */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!st->too_big && mm_buf_append(&st->body, upload_data, *upload_data_size) != MM_OK) {
            st->too_big = true;
            mm_buf_free(&st->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->too_big)
        return answer_early(c, st, 413, NULL, "%s", "request body too large");
    {
        mm_httpd_resp r = {.status = 200, .content_type = "application/json", .body = st->out};
        mm_httpd_req q = {
            .method = method,
            .path = url,
            .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                        MHD_HTTP_HEADER_CONTENT_TYPE),
            .body = mm_buf_cstr(&st->body),
            .body_len = st->body.len,
        };
        st->rt->fn(st->rt->ud, &q, &r);
        st->answered = true;
        st->status = r.status;
        st->out = r.body; /* sent from here; kept (and reused) after the request */
        return send_resp(c, &r, NULL, true);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    mm_httpd *h = cls;
    req_state *st = *con_cls;
    char code[16];

    if (!st)
        return;
    if (st->answered) {
        snprintf(code, sizeof(code), "%d", st->status);
        mm_metric_add(h->m_requests, (const char *const[]){st->route_label, code}, 1);
        mm_metric_observe(h->m_latency, (const char *const[]){st->route_label},
                          (double)(mm_now_ns() - st->t0) / 1e9);
    } else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        mm_metric_add(h->m_requests, (const char *const[]){st->route_label, "aborted"}, 1);
    }
    req_end(c, st);
    *con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;
    MM_UNUSED(cls);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    mm_log(MM_LOG_DEBUG, "libmicrohttpd", "detail", msg, NULL);
}

/* ---- built-in routes ------------------------------------------------------------------ */

static void h_healthz(void *ud, const mm_httpd_req *req, mm_httpd_resp *resp)
{
    MM_UNUSED(ud);
    MM_UNUSED(req);
    resp->content_type = "text/plain; charset=utf-8";
    if (mm_buf_puts(&resp->body, "ok\n") != MM_OK)
        resp->status = 500;
}

static void h_readyz(void *ud, const mm_httpd_req *req, mm_httpd_resp *resp)
{
    mm_httpd *h = ud;
    bool has_cert;
    MM_UNUSED(req);
    pthread_mutex_lock(&h->cert_lock);
    has_cert = h->plain || h->current != NULL;
    pthread_mutex_unlock(&h->cert_lock);
    resp->content_type = "text/plain; charset=utf-8";
    if (atomic_load(&h->ready) && has_cert) {
        if (mm_buf_puts(&resp->body, "ready\n") != MM_OK)
            resp->status = 500;
    } else {
        resp->status = 503;
        if (mm_buf_puts(&resp->body, "not ready\n") != MM_OK)
            mm_buf_reset(&resp->body);
    }
}

static void h_metrics(void *ud, const mm_httpd_req *req, mm_httpd_resp *resp)
{
    mm_httpd *h = ud;
    MM_UNUSED(req);
    resp->content_type = MM_METRICS_CONTENT_TYPE;
    if (mm_metrics_render(h->metrics, &resp->body) != MM_OK)
        mm_httpd_error(resp, 500, "%s", "metrics rendering failed");
}

/* ---- lifecycle ------------------------------------------------------------------------ */

mm_err mm_httpd_new(const mm_httpd_opts *o, mm_httpd **out, mm_errbuf *eb)
{
    mm_httpd *h;
    cert_gen *g = NULL;
    mm_err rc;
    static const char *const req_labels[] = {"route", "code", NULL};
    static const char *const lat_labels[] = {"route", NULL};
    static const char *const reload_labels[] = {"result", NULL};

    *out = NULL;
    if (!o->metrics || !o->cert_file != !o->key_file)
        return mm_errf(eb, MM_EINVAL, "the server needs metrics, and a certificate file with its "
                       "key file (or neither, for plain HTTP)");
    if (!(h = mm_calloc(1, sizeof(*h))))
        return MM_ENOMEM;
    pthread_mutex_init(&h->cert_lock, NULL);
    pthread_mutex_init(&h->stop_lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&h->stop_cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    h->metrics = o->metrics;
    h->body_max = o->body_max ? o->body_max : (4u << 20);
    h->threads = o->threads;
    h->reload_ms = o->reload_ms ? o->reload_ms : 1000;
    h->plain = !o->cert_file;
    if (!(h->listen = mm_strdup(o->listen ? o->listen : "0.0.0.0:8443")) ||
        (!h->plain && (!(h->cert_file = mm_strdup(o->cert_file)) ||
                       !(h->key_file = mm_strdup(o->key_file))))) {
        rc = MM_ENOMEM;
        goto fail;
    }
    if ((rc = mm_metrics_counter(h->metrics, "maskmesh_http_requests_total",
                                 "HTTP requests answered, by route and status code.", req_labels,
                                 &h->m_requests)) != MM_OK ||
        (rc = mm_metrics_histogram(h->metrics, "maskmesh_http_request_duration_seconds",
                                   "Time from the request's first byte to its response, by route.",
                                   lat_labels, mm_metrics_latency_buckets,
                                   mm_metrics_latency_buckets_len, &h->m_latency)) != MM_OK ||
        (!h->plain &&
         ((rc = mm_metrics_gauge(h->metrics, "maskmesh_tls_certificate_expiry_timestamp_seconds",
                                 "notAfter of the serving certificate, Unix seconds.", NULL,
                                 &h->m_expiry)) != MM_OK ||
          (rc = mm_metrics_counter(h->metrics, "maskmesh_tls_certificate_reloads_total",
                                   "Certificate reloads after the files changed, by result.",
                                   reload_labels, &h->m_reloads)) != MM_OK))) {
        mm_errf(eb, rc, "registering the server's metrics failed");
        goto fail;
    }
    if (!h->plain) {
        stamp_of(h->cert_file, &h->cert_stamp);
        stamp_of(h->key_file, &h->key_stamp);
        if ((rc = gen_load(h->cert_file, h->key_file, &g, eb)) != MM_OK)
            goto fail;
        publish(h, g);
    }
    if ((rc = mm_httpd_route(h, "GET", "/healthz", false, h_healthz, h)) != MM_OK ||
        (rc = mm_httpd_route(h, "GET", "/readyz", false, h_readyz, h)) != MM_OK ||
        (rc = mm_httpd_route(h, "GET", "/metrics", false, h_metrics, h)) != MM_OK)
        goto fail;
    *out = h;
    return MM_OK;
fail:
    mm_httpd_free(h);
    return rc;
}

mm_err mm_httpd_route(mm_httpd *h, const char *method, const char *path, bool json_body,
                      mm_httpd_handler fn, void *ud)
{
    route *grown;
    if (h->d)
        return MM_EINVAL;
    if (!(grown = mm_realloc(h->routes, (h->n_routes + 1) * sizeof(*grown))))
        return MM_ENOMEM;
    h->routes = grown;
    memset(&grown[h->n_routes], 0, sizeof(*grown));
    if (!(grown[h->n_routes].method = mm_strdup(method)) ||
        !(grown[h->n_routes].path = mm_strdup(path))) {
        mm_free(grown[h->n_routes].method);
        return MM_ENOMEM;
    }
    grown[h->n_routes].json_body = json_body;
    grown[h->n_routes].fn = fn;
    grown[h->n_routes].ud = ud;
    h->n_routes++;
    return MM_OK;
}

/* "ADDR:PORT" / "[ADDR]:PORT" into a numeric socket address. */
static mm_err parse_listen(const char *listen, struct sockaddr_storage *ss, mm_errbuf *eb)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    size_t hl;
    long port;

    if (!colon || !mm_parse_long(colon + 1, 0, 65535, &port))
        return mm_errf(eb, MM_EINVAL, "--listen %s: expected ADDR:PORT", listen);
    hl = (size_t)(colon - listen);
    if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
        listen++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof(host))
        return mm_errf(eb, MM_EINVAL, "--listen %s: expected ADDR:PORT", listen);
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res)
        return mm_errf(eb, MM_EINVAL, "--listen: \"%s\" is not a numeric IP address", host);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return MM_OK;
}

mm_err mm_httpd_start(mm_httpd *h, mm_errbuf *eb)
{
    struct sockaddr_storage ss;
    unsigned threads = h->threads;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_USE_ITC;
    const union MHD_DaemonInfo *info;
    mm_err rc;

    if ((rc = parse_listen(h->listen, &ss, eb)) != MM_OK)
        return rc;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 && n < 256 ? (unsigned)n : 2;
    }
    if (h->plain) { /* an admin port (metrics, probes) inside the cluster network */
        h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                MHD_OPTION_THREAD_POOL_SIZE, threads,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_POOL_BYTES,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                                MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
                                MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                                MHD_OPTION_END);
        if (!h->d)
            return mm_errf(eb, MM_EIO, "cannot serve HTTP on %s: %s", h->listen,
                           errno ? strerror(errno) : "libmicrohttpd refused the options");
        info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
        h->port = info ? info->port : 0;
        h->stopping = false;
        return MM_OK;
    }
    flags |= MHD_USE_TLS;
    pthread_mutex_lock(&owner_lock);
    if (tls_owner && tls_owner != h) {
        pthread_mutex_unlock(&owner_lock);
        return mm_errf(eb, MM_EINVAL, "only one TLS server per process");
    }
    tls_owner = h;
    pthread_mutex_unlock(&owner_lock);

    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_HTTPS_CERT_CALLBACK, cert_callback,
                            MHD_OPTION_HTTPS_PRIORITIES, mm_httpd_tls_priorities,
                            MHD_OPTION_THREAD_POOL_SIZE, threads,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_POOL_BYTES,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                            MHD_OPTION_END);
    if (!h->d) {
        pthread_mutex_lock(&owner_lock);
        tls_owner = NULL;
        pthread_mutex_unlock(&owner_lock);
        return mm_errf(eb, MM_EIO, "cannot serve HTTPS on %s: %s", h->listen,
                       errno ? strerror(errno) : "libmicrohttpd refused the options");
    }
    info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    h->stopping = false;
    if (pthread_create(&h->watcher, NULL, watcher_main, h) != 0) {
        mm_httpd_stop(h);
        return mm_errf(eb, MM_EIO, "cannot start the certificate watcher thread");
    }
    h->watcher_running = true;
    return MM_OK;
}

uint16_t mm_httpd_port(const mm_httpd *h)
{
    return h->port;
}

void mm_httpd_set_ready(mm_httpd *h, bool ready)
{
    atomic_store(&h->ready, ready);
}

void mm_httpd_stop(mm_httpd *h)
{
    if (!h)
        return;
    atomic_store(&h->ready, false);
    if (h->watcher_running) {
        pthread_mutex_lock(&h->stop_lock);
        h->stopping = true;
        pthread_cond_signal(&h->stop_cond);
        pthread_mutex_unlock(&h->stop_lock);
        pthread_join(h->watcher, NULL);
        h->watcher_running = false;
    }
    if (h->d) {
        MHD_socket s = MHD_quiesce_daemon(h->d);
        if (s != MHD_INVALID_SOCKET)
            close(s);
        MHD_stop_daemon(h->d);
        h->d = NULL;
    }
    pthread_mutex_lock(&owner_lock);
    if (tls_owner == h)
        tls_owner = NULL;
    pthread_mutex_unlock(&owner_lock);
}

void mm_httpd_free(mm_httpd *h)
{
    if (!h)
        return;
    mm_httpd_stop(h);
    gen_free(h->current);
    while (h->retired) {
        cert_gen *next = h->retired->next;
        gen_free(h->retired);
        h->retired = next;
    }
    for (size_t i = 0; i < h->n_routes; i++) {
        mm_free(h->routes[i].method);
        mm_free(h->routes[i].path);
    }
    mm_free(h->routes);
    mm_free(h->listen);
    mm_free(h->cert_file);
    mm_free(h->key_file);
    pthread_mutex_destroy(&h->cert_lock);
    pthread_mutex_destroy(&h->stop_lock);
    pthread_cond_destroy(&h->stop_cond);
    mm_free(h);
}
