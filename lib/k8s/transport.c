/* lib/k8s transport: the client (libcurl request handles kept for reuse, each with its own
 * connection; DNS and TLS sessions shared), bearer tokens re-read when their file changes, and transfers: a request with
 * Retry-After retries and Status errors, or a stream whose 2xx body goes to a sink (the watch
 * decoder) as it arrives. Calls url.c, status.c and json.c; nothing here calls back up. */
#include "k8s/k8s_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/rand.h>

/* ---- small helpers ---------------------------------------------------------------------- */

void k8s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

uint64_t k8s_random64(void)
{
    uint64_t v;
    if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
        v = mm_now_ns() ^ (uint64_t)(uintptr_t)&v;
    return v;
}

void k8s_wait_stop(pthread_mutex_t *lock, pthread_cond_t *cond, const atomic_bool *stop, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(lock);
    while (!atomic_load(stop) && pthread_cond_timedwait(cond, lock, &ts) == 0)
        ;
    pthread_mutex_unlock(lock);
}

/* ---- client ------------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    MM_UNUSED(h);
    MM_UNUSED(access);
    mm_k8s_client *c = ud;
    if (data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    MM_UNUSED(h);
    mm_k8s_client *c = ud;
    if (data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&c->share_locks[data]);
}

mm_err mm_k8s_client_new(const mm_k8s_config *cfg, const mm_k8s_client_opts *o,
                         mm_k8s_client **out, mm_errbuf *eb)
{
    static const mm_k8s_client_opts defaults;
    mm_err rc = MM_OK;
    mm_k8s_client *c = NULL;

    *out = NULL;
    if (!o)
        o = &defaults;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return mm_errf(eb, MM_EIO, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    if (!(c = mm_calloc(1, sizeof(*c))))
        return MM_ENOMEM;
    c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
    c->request_timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 60000;
    c->watch_idle_s = o->watch_idle_s > 0 ? o->watch_idle_s : 0;
    c->max_retries = o->max_retries > 0 ? o->max_retries : o->max_retries < 0 ? 0 : 10;
    c->max_retry_after_s = o->max_retry_after_s > 0 ? o->max_retry_after_s : 30;
    c->qps = o->qps > 0 ? o->qps : 0;
    c->burst = o->burst >= 1 ? o->burst : c->qps > 1 ? (double)(long)(c->qps + 0.999) : 1;
    c->tokens = c->burst;
    c->tokens_ns = mm_now_ns();
    if ((rc = k8s_config_copy(cfg, &c->cfg)) != MM_OK)
        goto out;
    if (!(c->user_agent = mm_strdup(o->user_agent ? o->user_agent : "maskmesh/0.1"))) {
        rc = MM_ENOMEM;
        goto out;
    }
    for (; c->n_share_locks < CURL_LOCK_DATA_LAST; c->n_share_locks++)
        if (pthread_mutex_init(&c->share_locks[c->n_share_locks], NULL) != 0) {
            rc = mm_errf(eb, MM_ENOMEM, "k8s client: cannot create a lock");
            goto out;
        }
    if (!(c->req_lock_ok = pthread_mutex_init(&c->req_lock, NULL) == 0) ||
        !(c->tok_lock_ok = pthread_mutex_init(&c->tok_lock, NULL) == 0)) {
        rc = mm_errf(eb, MM_ENOMEM, "k8s client: cannot create a lock");
        goto out;
    }
    if (!(c->share = curl_share_init())) {
        rc = mm_errf(eb, MM_ENOMEM, "libcurl: cannot create a handle");
        goto out;
    }
    if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
        rc = mm_errf(eb, MM_EIO, "libcurl: cannot set up the shared DNS and TLS session caches");
        goto out;
    }
    if (c->cfg->token && !(c->token = mm_strdup(c->cfg->token))) {
        rc = MM_ENOMEM;
        goto out;
    }
    if (c->cfg->token_file && (rc = k8s_refresh_token(c, true, eb)) != MM_OK)
        goto out;
    *out = c;
    c = NULL;
out:
    mm_k8s_client_free(c);
    return rc;
}

/* Frees what was made, in reverse; a client half built by mm_k8s_client_new included. */
void mm_k8s_client_free(mm_k8s_client *c)
{
    if (!c)
        return;
    while (c->n_idle)
        curl_easy_cleanup(c->idle[--c->n_idle]);
    if (c->share)
        curl_share_cleanup(c->share);
    if (c->tok_lock_ok)
        pthread_mutex_destroy(&c->tok_lock);
    if (c->req_lock_ok)
        pthread_mutex_destroy(&c->req_lock);
    for (size_t i = 0; i < c->n_share_locks; i++)
        pthread_mutex_destroy(&c->share_locks[i]);
    if (c->token)
        k8s_free_secret(c->token, strlen(c->token));
    mm_free(c->user_agent);
    mm_k8s_config_free(c->cfg);
    mm_free(c);
}

mm_err k8s_client_clone(const mm_k8s_client *c, mm_k8s_client **out, mm_errbuf *eb)
{
    mm_k8s_client_opts o = {.connect_timeout_ms = c->connect_timeout_ms,
                            .request_timeout_ms = c->request_timeout_ms,
                            .watch_idle_s = c->watch_idle_s,
                            .max_retries = c->max_retries > 0 ? c->max_retries : -1,
                            .max_retry_after_s = c->max_retry_after_s,
                            .user_agent = c->user_agent};
    return mm_k8s_client_new(c->cfg, &o, out, eb);
}

const char *mm_k8s_client_namespace(const mm_k8s_client *c) { return c->cfg->ns; }

uint64_t mm_k8s_client_connections(const mm_k8s_client *c) { return atomic_load(&c->connections); }

static void count_connections(mm_k8s_client *c, CURL *h)
{
    long n = 0;
    if (curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK && n > 0)
        atomic_fetch_add(&c->connections, (uint64_t)n);
}

/* ---- tokens ------------------------------------------------------------------------------- */

mm_err k8s_refresh_token(mm_k8s_client *c, bool force, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    struct stat sb;
    char *text = NULL;
    size_t len = 0;

    if (!c->cfg->token_file)
        return MM_OK;
    pthread_mutex_lock(&c->tok_lock);
    if (stat(c->cfg->token_file, &sb) != 0) {
        /* keep using the token we have while the file is being swapped */
        if (!c->token)
            rc = mm_errf(eb, MM_EIO, "token file %s: %s", c->cfg->token_file, strerror(errno));
        goto out;
    }
    if (!force && c->tok_known && sb.st_dev == c->tok_dev && sb.st_ino == c->tok_ino &&
        sb.st_size == c->tok_size && sb.st_mtim.tv_sec == c->tok_mtime.tv_sec &&
        sb.st_mtim.tv_nsec == c->tok_mtime.tv_nsec)
        goto out;
    if ((rc = mm_read_file(c->cfg->token_file, MM_K8S_TOKEN_MAX, &text, &len, eb)) != MM_OK) {
        if (c->token) /* a half-written file: keep the old token, try again next time */
            rc = MM_OK;
        goto out;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
                   text[len - 1] == '\t'))
        text[--len] = '\0';
    if (len == 0 || memchr(text, '\n', len) || strlen(text) != len) {
        if (!c->token)
            rc = mm_errf(eb, MM_EINVAL, "token file %s: empty or not one line",
                         c->cfg->token_file);
        goto out;
    }
    if (c->token)
        k8s_free_secret(c->token, strlen(c->token));
    c->token = text;
    text = NULL;
    c->tok_known = true;
    c->tok_dev = sb.st_dev;
    c->tok_ino = sb.st_ino;
    c->tok_size = sb.st_size;
    c->tok_mtime = sb.st_mtim;
    c->token_reads++;
out:
    pthread_mutex_unlock(&c->tok_lock);
    if (text)
        k8s_free_secret(text, len);
    return rc;
}

/* ---- transfers ----------------------------------------------------------------------------- */

static mm_err curl_err(CURLcode cc, const char *what, const char *errbuf, mm_errbuf *eb)
{
    mm_err e;
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT: e = MM_ETIMEOUT; break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CLIENTCERT: e = MM_ETLS; break;
    case CURLE_OUT_OF_MEMORY: e = MM_ENOMEM; break;
    default: e = MM_EIO; break;
    }
    return mm_errf(eb, e, "%s: %s%s%s", what, curl_easy_strerror(cc),
                   errbuf && *errbuf ? ": " : "", errbuf && *errbuf ? errbuf : "");
}


static bool header_is(const char *h, size_t n, const char *name, size_t *vstart)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(h, name, k) != 0 || h[k] != ':')
        return false;
    k++;
    while (k < n && (h[k] == ' ' || h[k] == '\t'))
        k++;
    *vstart = k;
    return true;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    k8s_xfer *x = ud;
    size_t n = size * nmemb, len = n, v;

    while (len && (ptr[len - 1] == '\r' || ptr[len - 1] == '\n'))
        len--;
    if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        /* a new response (after 100-continue or a redirect): forget the previous one's */
        x->retry_after_s = -1;
        x->is_json = false;
        if (x->res) {
            for (size_t i = 0; i < x->res->nwarnings; i++)
                mm_free(x->res->warnings[i]);
            x->res->nwarnings = 0;
        }
    } else if (header_is(ptr, len, "Retry-After", &v)) {
        char tmp[16];
        size_t vl = len - v < sizeof(tmp) - 1 ? len - v : sizeof(tmp) - 1;
        long secs;
        memcpy(tmp, ptr + v, vl);
        tmp[vl] = '\0';
        /* client-go honours integer seconds only; an HTTP date is not retried on */
        if (mm_parse_long(tmp, 0, 86400, &secs))
            x->retry_after_s = secs;
    } else if (header_is(ptr, len, "Warning", &v)) {
        k8s_parse_warnings(x->res, ptr + v, len - v);
    } else if (header_is(ptr, len, "Content-Type", &v)) {
        x->is_json = len - v >= 16 && strncasecmp(ptr + v, "application/json", 16) == 0;
    }
    return n;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    k8s_xfer *x = ud;
    size_t n = size * nmemb;

    if (x->sink) {
        long code = 0;
        if (!x->streaming && x->body.len == 0) {
            curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
            x->streaming = code >= 200 && code < 300;
        }
        if (x->streaming) {
            x->werr = x->sink->write(x->sink->ud, ptr, n, &x->stopped, &x->weeb);
            return x->werr == MM_OK && !x->stopped ? n : 0;
        }
    }
    return mm_buf_append(&x->body, ptr, n) == MM_OK ? n : 0;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    MM_UNUSED(dt);
    MM_UNUSED(dn);
    MM_UNUSED(ut);
    MM_UNUSED(un);
    k8s_xfer *x = ud;
    if (x->stop && atomic_load(x->stop)) {
        x->stopped = true;
        return 1;
    }
    return 0;
}

#define SETOPT(h, opt, val)                                                                        \
    do {                                                                                           \
        CURLcode cc_ = curl_easy_setopt((h), (opt), (val));                                        \
        if (cc_ != CURLE_OK) {                                                                     \
            rc = curl_err(cc_, "libcurl option " #opt, NULL, eb);                              \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* A PEM client credential from memory (the kubeconfig's *-data) or from a file; none: nothing. */
static mm_err set_pem(CURL *h, CURLoption blob_opt, CURLoption file_opt, CURLoption type_opt,
                      char *data, size_t len, const char *file, const char *what, mm_errbuf *eb)
{
    struct curl_blob blob = {data, len, CURL_BLOB_COPY};
    CURLcode cc = CURLE_OK;
    if (data)
        cc = curl_easy_setopt(h, blob_opt, &blob);
    else if (file)
        cc = curl_easy_setopt(h, file_opt, file);
    else
        return MM_OK;
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, type_opt, "PEM");
    return cc == CURLE_OK ? MM_OK : curl_err(cc, what, NULL, eb);
}

/* Prepares handle h (after curl_easy_reset) for url with the client's TLS, auth, timeouts
 * and callbacks into x. *hdrs receives the header list and *auth the Authorization header
 * string: free_headers wipes and frees both after the transfer. */
static mm_err setup_handle(mm_k8s_client *c, CURL *h, const char *url, bool watch,
                           const char *content_type, k8s_xfer *x, struct curl_slist **hdrs,
                           char **auth, size_t *auth_len, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_k8s_config *cfg = c->cfg;
    struct curl_slist *l = NULL, *t;
    mm_buf ab, cb;

    mm_buf_init(&ab, 0);
    mm_buf_init(&cb, 0);
    *hdrs = NULL;
    *auth = NULL;
    *auth_len = 0;
    SETOPT(h, CURLOPT_URL, url);
    SETOPT(h, CURLOPT_SHARE, c->share);
    SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* h2 when the server offers it in ALPN, HTTP/1.1 otherwise. Each easy handle keeps its own
     * connection: requests in a row take the same idle handle (take_handle is last in, first
     * out) and so the same connection; threads sending at once (the controller's workers)
     * hold a handle and a connection each. A connection cache shared between handles made
     * concurrent senders open a new connection for almost every request (841 TCP connects
     * for 635 writes with four workers, against 5 for one). DNS and TLS sessions stay shared,
     * so a new connection resumes TLS. */
    SETOPT(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(h, CURLOPT_USERAGENT, c->user_agent);
    SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(h, CURLOPT_WRITEDATA, x);
    SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(h, CURLOPT_HEADERDATA, x);
    SETOPT(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    SETOPT(h, CURLOPT_XFERINFODATA, x);
    SETOPT(h, CURLOPT_NOPROGRESS, 0L);
    SETOPT(h, CURLOPT_ACCEPT_ENCODING, ""); /* gzip if the server offers it */
    if (watch) {
        /* no total timeout: the server ends the watch (timeoutSeconds); a silent connection
         * is dropped by the low-speed check instead */
        SETOPT(h, CURLOPT_TIMEOUT_MS, 0L);
        SETOPT(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        SETOPT(h, CURLOPT_LOW_SPEED_TIME, c->watch_idle_s > 0 ? c->watch_idle_s : 630L);
    } else {
        SETOPT(h, CURLOPT_TIMEOUT_MS, c->request_timeout_ms);
    }

    if (cfg->insecure) {
        SETOPT(h, CURLOPT_SSL_VERIFYPEER, 0L);
        SETOPT(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (cfg->ca_data) {
        struct curl_blob blob = {cfg->ca_data, cfg->ca_len, CURL_BLOB_COPY};
        SETOPT(h, CURLOPT_CAINFO_BLOB, &blob);
    } else if (cfg->ca_file) {
        SETOPT(h, CURLOPT_CAINFO, cfg->ca_file);
    }
    if ((rc = set_pem(h, CURLOPT_SSLCERT_BLOB, CURLOPT_SSLCERT, CURLOPT_SSLCERTTYPE, cfg->cert_data,
                      cfg->cert_len, cfg->cert_file, "the client certificate", eb)) != MM_OK ||
        (rc = set_pem(h, CURLOPT_SSLKEY_BLOB, CURLOPT_SSLKEY, CURLOPT_SSLKEYTYPE, cfg->key_data,
                      cfg->key_len, cfg->key_file, "the client key", eb)) != MM_OK)
        goto out;
    if (cfg->username) {
        SETOPT(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SETOPT(h, CURLOPT_USERNAME, cfg->username);
        SETOPT(h, CURLOPT_PASSWORD, cfg->password);
    }

    if (!(t = curl_slist_append(l, "Accept: application/json")))
        goto nomem;
    l = t;
    if (!(t = curl_slist_append(l, "Expect:")))
        goto nomem;
    l = t;
    if (content_type) {
        if ((rc = mm_buf_printf(&cb, "Content-Type: %s", content_type)) != MM_OK)
            goto out;
        if (!(t = curl_slist_append(l, mm_buf_cstr(&cb))))
            goto nomem;
        l = t;
    }
    pthread_mutex_lock(&c->tok_lock);
    if (c->token)
        rc = mm_buf_printf(&ab, "Authorization: Bearer %s", c->token);
    pthread_mutex_unlock(&c->tok_lock);
    if (rc != MM_OK)
        goto out;
    if (ab.len) {
        if (!(t = curl_slist_append(l, ab.data)))
            goto nomem;
        l = t;
    }
    SETOPT(h, CURLOPT_HTTPHEADER, l);
    *hdrs = l;
    l = NULL;
    *auth_len = ab.len;
    *auth = mm_buf_steal(&ab, NULL);
    goto out;
nomem:
    rc = MM_ENOMEM;
out:
    if (l)
        curl_slist_free_all(l);
    if (ab.data)
        k8s_free_secret(ab.data, ab.cap);
    mm_buf_free(&cb);
    return rc;
}

/* Wipes the Authorization header inside curl's list before freeing it. */
static void free_headers(struct curl_slist *l, char *auth, size_t auth_len)
{
    for (struct curl_slist *p = l; p; p = p->next)
        if (strncmp(p->data, "Authorization:", 14) == 0) {
            volatile char *v = p->data;
            for (size_t i = 0; v[i]; i++)
                v[i] = 0;
        }
    curl_slist_free_all(l);
    k8s_free_secret(auth, auth_len);
}

/* The method and path of a URL for messages (no scheme, host or query: selectors may be
 * long and the host is in the config). */
static void describe(char *out, size_t n, const char *method, const char *url, const char *server)
{
    size_t sl = strlen(server);
    const char *p = strncmp(url, server, sl) == 0 ? url + sl : url;
    size_t pl = strcspn(p, "?");
    snprintf(out, n, "%s %.*s", method, (int)(pl > 300 ? 300 : pl), p);
}

/* A non-2xx answer: its Status (or one made up for a body that is not one) into res, and the
 * error naming the request. */
static mm_err status_error(mm_k8s_result *res, const k8s_xfer *x, const char *what, mm_errbuf *eb)
{
    mm_k8s_status_from_body((int)res->http_code, x->body.data ? x->body.data : "", x->body.len,
                            x->retry_after_s, &res->status);
    if (!res->status.reason || !res->status.message)
        return MM_ENOMEM;
    return mm_errf(eb, mm_k8s_status_err(&res->status), "%s: %ld %s: %s", what, res->http_code,
                   res->status.reason, res->status.message);
}

/* An easy handle for one request: an idle one (its connection and TLS session are warm),
 * else a new one. NULL when out of memory. */
static CURL *take_handle(mm_k8s_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->req_lock);
    if (c->n_idle)
        h = c->idle[--c->n_idle];
    pthread_mutex_unlock(&c->req_lock);
    return h ? h : curl_easy_init();
}

static void give_handle(mm_k8s_client *c, CURL *h)
{
    curl_easy_reset(h); /* drop pointers into the finished call's buffers */
    pthread_mutex_lock(&c->req_lock);
    if (c->n_idle < K8S_IDLE_HANDLES) {
        c->idle[c->n_idle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->req_lock);
    if (h)
        curl_easy_cleanup(h);
}

/* Waits for the rate limit's token (golang.org/x/time/rate's Wait, as client-go's limiter):
 * a request takes one, possibly below zero, and sleeps until the bucket would have had it. */
static void rate_wait(mm_k8s_client *c)
{
    if (c->qps <= 0)
        return;
    pthread_mutex_lock(&c->req_lock);
    uint64_t now = mm_now_ns();
    c->tokens += (double)(now - c->tokens_ns) / 1e9 * c->qps;
    if (c->tokens > c->burst)
        c->tokens = c->burst;
    c->tokens_ns = now;
    c->tokens -= 1;
    double wait_s = c->tokens < 0 ? -c->tokens / c->qps : 0;
    pthread_mutex_unlock(&c->req_lock);
    if (wait_s > 0)
        k8s_sleep_ms((long)(wait_s * 1000 + 0.5));
}

mm_err k8s_request(mm_k8s_client *c, const char *method, const mm_k8s_ref *ref,
                   const char *const *query, const char *content_type, const char *body,
                   size_t body_len, const k8s_tuning *tune, mm_k8s_result *res, mm_errbuf *eb)
{
    long timeout_ms = tune && tune->timeout_ms > 0 ? tune->timeout_ms : c->request_timeout_ms;
    int max_retries = tune && tune->max_retries >= 0 ? tune->max_retries : c->max_retries;
    mm_err rc = MM_OK;
    char *url = NULL, *auth = NULL;
    size_t auth_len = 0;
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE];
    char what[400];
    bool reauthed = false;
    CURL *h = NULL;
    k8s_xfer x;

    memset(&x, 0, sizeof(x));
    mm_buf_init(&x.body, MM_K8S_BODY_MAX);
    mm_k8s_result_clear(res);
    if ((rc = mm_k8s_build_url(c->cfg->server, ref, query, &url, eb)) != MM_OK)
        goto out;
    describe(what, sizeof(what), method, url, c->cfg->server);
    if (!(h = take_handle(c))) {
        rc = mm_errf(eb, MM_ENOMEM, "libcurl: cannot create a handle");
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        long code = 0;
        if (!(tune && tune->unlimited))
            rate_wait(c);
        if ((rc = k8s_refresh_token(c, false, eb)) != MM_OK)
            goto out;
        curl_easy_reset(h);
        mm_buf_reset(&x.body);
        x.c = c;
        x.h = h;
        x.res = res;
        x.retry_after_s = -1;
        x.is_json = false;
        errbuf[0] = '\0';
        if ((rc = setup_handle(c, h, url, false, content_type, &x, &hdrs, &auth,
                                   &auth_len, eb)) != MM_OK)
            goto out;
        SETOPT(h, CURLOPT_ERRORBUFFER, errbuf);
        SETOPT(h, CURLOPT_TIMEOUT_MS, timeout_ms);
        if (strcmp(method, "GET") == 0) {
            SETOPT(h, CURLOPT_HTTPGET, 1L);
        } else {
            SETOPT(h, CURLOPT_CUSTOMREQUEST, method);
            if (body) {
                SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
                SETOPT(h, CURLOPT_POSTFIELDS, body);
            }
        }
        CURLcode cc = curl_easy_perform(h);
        count_connections(c, h);
        free_headers(hdrs, auth, auth_len);
        hdrs = NULL;
        auth = NULL;
        if (cc != CURLE_OK) {
            if (cc == CURLE_WRITE_ERROR && x.body.len >= MM_K8S_BODY_MAX - 1)
                rc = mm_errf(eb, MM_ELIMIT, "%s: response larger than %u bytes", what,
                             MM_K8S_BODY_MAX);
            else
                rc = curl_err(cc, what, errbuf, eb);
            goto out;
        }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        res->http_code = code;
        if (code == 401 && c->cfg->token_file && !reauthed) {
            /* the token may have rotated between our stat and the server's check */
            reauthed = true;
            if ((rc = k8s_refresh_token(c, true, eb)) != MM_OK)
                goto out;
            continue;
        }
        if ((code == 429 || code >= 500) && x.retry_after_s >= 0 && res->retries < max_retries) {
            long wait = x.retry_after_s < c->max_retry_after_s ? x.retry_after_s
                                                                : c->max_retry_after_s;
            res->retries++;
            mm_log(MM_LOG_DEBUG, "k8s: retrying after Retry-After", "request", what, NULL);
            k8s_sleep_ms(wait * 1000);
            continue;
        }
        break;
    }
    if (res->http_code >= 200 && res->http_code < 300) {
        if (x.body.len && !(tune && tune->no_body)) {
            mm_errbuf jeb;
            if (k8s_json_parse(x.body.data, x.body.len, &res->body, &jeb) != MM_OK) {
                rc = mm_errf(eb, MM_EPARSE, "%s: %ld response: %s", what, res->http_code,
                             jeb.msg);
                goto out;
            }
        }
        goto out;
    }
    rc = status_error(res, &x, what, eb);
out:
    if (hdrs || auth)
        free_headers(hdrs, auth, auth_len);
    if (h)
        give_handle(c, h);
    mm_buf_free(&x.body);
    mm_free(url);
    return rc;
}

/* ---- streams ------------------------------------------------------------------------------- */

mm_err k8s_stream(mm_k8s_client *c, const char *url, const char *what, const k8s_sink *sink,
                  const atomic_bool *stop, long idle_s, bool *stopped, mm_k8s_result *res,
                  mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    char *auth = NULL;
    size_t auth_len = 0;
    struct curl_slist *hdrs = NULL;
    CURL *h = NULL;
    char errbuf[CURL_ERROR_SIZE];
    bool reauthed = false;
    k8s_xfer x;

    memset(&x, 0, sizeof(x));
    mm_buf_init(&x.body, MM_K8S_ERROR_BODY_MAX); /* only a non-2xx body is kept */
    *stopped = false;
    /* a handle of its own: a stream lasts minutes, plain requests must not wait for it */
    if (!(h = curl_easy_init())) {
        rc = mm_errf(eb, MM_ENOMEM, "libcurl: cannot create a handle");
        goto out;
    }
    for (;;) {
        long code = 0;
        if ((rc = k8s_refresh_token(c, false, eb)) != MM_OK)
            goto out;
        curl_easy_reset(h);
        mm_buf_reset(&x.body);
        x.c = c;
        x.h = h;
        x.res = res;
        x.sink = sink;
        x.stop = stop;
        x.stopped = x.streaming = false;
        x.werr = MM_OK;
        x.retry_after_s = -1;
        errbuf[0] = '\0';
        if ((rc = setup_handle(c, h, url, true, NULL, &x, &hdrs, &auth, &auth_len, eb)) != MM_OK)
            goto out;
        if (c->watch_idle_s <= 0 && idle_s > 0)
            SETOPT(h, CURLOPT_LOW_SPEED_TIME, idle_s);
        SETOPT(h, CURLOPT_ERRORBUFFER, errbuf);
        SETOPT(h, CURLOPT_HTTPGET, 1L);
        CURLcode cc = curl_easy_perform(h);
        count_connections(c, h);
        free_headers(hdrs, auth, auth_len); /* now: it holds the bearer token */
        hdrs = NULL;
        auth = NULL;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        res->http_code = code;
        if (x.stopped) { /* the sink or *stop asked: a clean end */
            *stopped = true;
            goto out;
        }
        if (x.werr != MM_OK) {
            rc = mm_errf(eb, x.werr, "%s: %s", what, x.weeb.msg);
            goto out;
        }
        if (cc != CURLE_OK) {
            if (x.streaming)
                rc = mm_errf(eb, MM_EIO, "%s: the stream dropped: %s", what, curl_easy_strerror(cc));
            else
                rc = curl_err(cc, what, errbuf, eb);
            goto out;
        }
        if (code == 401 && c->cfg->token_file && !reauthed) {
            reauthed = true;
            if ((rc = k8s_refresh_token(c, true, eb)) != MM_OK)
                goto out;
            continue;
        }
        break;
    }
    if (res->http_code < 200 || res->http_code >= 300)
        rc = status_error(res, &x, what, eb);
out:
    if (hdrs || auth)
        free_headers(hdrs, auth, auth_len);
    if (h)
        curl_easy_cleanup(h);
    mm_buf_free(&x.body);
    return rc;
}
