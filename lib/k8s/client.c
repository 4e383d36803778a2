/* lib/k8s client: URLs (escaped, grown in a buffer), one libcurl request handle per client
 * over a shared connection cache, bearer tokens re-read when their file changes, Retry-After
 * retries, Warning headers, and Status errors mapped to mm_err. */
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

mm_err k8s_json_parse(const char *s, size_t len, struct json_object **out, mm_errbuf *eb)
{
    struct json_tokener *tok = json_tokener_new_ex(MM_K8S_JSON_DEPTH);
    struct json_object *o = NULL;
    mm_err rc = MM_OK;

    *out = NULL;
    if (!tok)
        return MM_ENOMEM;
    if (len > (size_t)INT32_MAX) {
        rc = mm_errf(eb, MM_ELIMIT, "JSON body too large");
        goto out;
    }
    o = json_tokener_parse_ex(tok, s, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    if (!o || je != json_tokener_success) {
        rc = mm_errf(eb, MM_EPARSE, "JSON at byte %zu: %s", json_tokener_get_parse_end(tok),
                     je == json_tokener_continue ? "unexpected end"
                                                 : json_tokener_error_desc(je));
        goto out;
    }
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t') {
            rc = mm_errf(eb, MM_EPARSE, "JSON at byte %zu: data after the value", i);
            goto out;
        }
    *out = o;
    o = NULL;
out:
    json_object_put(o);
    json_tokener_free(tok);
    return rc;
}

struct json_object *k8s_json_get(struct json_object *obj, const char *key, json_type t)
{
    struct json_object *v;
    if (!obj || !json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, t))
        return NULL;
    return v;
}

const char *k8s_json_str(struct json_object *obj, const char *key)
{
    struct json_object *v = k8s_json_get(obj, key, json_type_string);
    return v ? json_object_get_string(v) : NULL;
}

int k8s_json_add(struct json_object *o, const char *key, struct json_object *v)
{
    if (!v)
        return -1;
    if (json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

const char *k8s_meta_str(struct json_object *obj, const char *key)
{
    return k8s_json_str(k8s_json_get(obj, "metadata", json_type_object), key);
}

/* ---- URLs --------------------------------------------------------------------------------- */

mm_err mm_k8s_escape(mm_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    mm_err rc = MM_OK;
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == MM_OK; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            rc = mm_buf_putc(b, (char)ch);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            rc = mm_buf_append(b, e, 3);
        }
    }
    return rc;
}

static mm_err segment(mm_buf *b, const char *what, const char *s, mm_errbuf *eb)
{
    mm_err rc;
    if (!s || !*s)
        return mm_errf(eb, MM_EINVAL, "request: %s: must not be empty", what);
    /* escaping keeps '/' inside a segment, but dot segments would still be squashed */
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return mm_errf(eb, MM_EINVAL, "request: %s: may not be \".\" or \"..\"", what);
    if ((rc = mm_buf_putc(b, '/')) != MM_OK || (rc = mm_k8s_escape(b, s)) != MM_OK)
        return rc;
    return MM_OK;
}

mm_err mm_k8s_build_url(const char *server, const mm_k8s_ref *ref, const char *const *query,
                        char **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_buf b;
    bool first = true;

    *out = NULL;
    mm_buf_init(&b, MM_K8S_URL_MAX);
    if ((rc = mm_buf_puts(&b, server)) != MM_OK)
        goto out;
    if (!ref->group || !*ref->group) {
        if ((rc = mm_buf_puts(&b, "/api")) != MM_OK)
            goto out;
    } else if ((rc = mm_buf_puts(&b, "/apis")) != MM_OK ||
               (rc = segment(&b, "group", ref->group, eb)) != MM_OK) {
        goto out;
    }
    if ((rc = segment(&b, "version", ref->version, eb)) != MM_OK)
        goto out;
    if (ref->ns && *ref->ns) {
        if ((rc = mm_buf_puts(&b, "/namespaces")) != MM_OK ||
            (rc = segment(&b, "namespace", ref->ns, eb)) != MM_OK)
            goto out;
    }
    if ((rc = segment(&b, "resource", ref->resource, eb)) != MM_OK)
        goto out;
    if (ref->name && (rc = segment(&b, "name", ref->name, eb)) != MM_OK)
        goto out;
    if (ref->subresource && *ref->subresource) {
        if (!ref->name) {
            rc = mm_errf(eb, MM_EINVAL, "request: a subresource needs a name");
            goto out;
        }
        if ((rc = segment(&b, "subresource", ref->subresource, eb)) != MM_OK)
            goto out;
    }
    for (size_t i = 0; query && query[i]; i += 2) {
        if (!query[i + 1])
            continue;
        if ((rc = mm_buf_putc(&b, first ? '?' : '&')) != MM_OK ||
            (rc = mm_k8s_escape(&b, query[i])) != MM_OK || (rc = mm_buf_putc(&b, '=')) != MM_OK ||
            (rc = mm_k8s_escape(&b, query[i + 1])) != MM_OK)
            goto out;
        first = false;
    }
    *out = mm_buf_steal(&b, NULL);
    if (!*out)
        rc = MM_ENOMEM;
out:
    if (rc == MM_ELIMIT)
        mm_errf(eb, rc, "request: URL longer than %u bytes", MM_K8S_URL_MAX);
    mm_buf_free(&b);
    return rc;
}

/* ---- Status ---------------------------------------------------------------------------------- */

void mm_k8s_status_clear(mm_k8s_status *st)
{
    mm_free(st->status);
    mm_free(st->reason);
    mm_free(st->message);
    mm_free(st->details_name);
    mm_free(st->details_group);
    mm_free(st->details_kind);
    mm_free(st->details_uid);
    mm_free(st->continue_token);
    for (size_t i = 0; i < st->ncauses; i++) {
        mm_free(st->causes[i].reason);
        mm_free(st->causes[i].message);
        mm_free(st->causes[i].field);
    }
    mm_free(st->causes);
    memset(st, 0, sizeof(*st));
}

mm_err mm_k8s_status_err(const mm_k8s_status *st)
{
    switch (st->code) {
    case 404: return MM_ENOTFOUND;
    case 409: return MM_ECONFLICT;
    case 410: return MM_EGONE;
    default: return MM_EHTTP;
    }
}

/* An optional string member: absent/null is fine (stays NULL), any other type is an error. */
static mm_err opt_str(struct json_object *o, const char *key, const char *where, char **out,
                      mm_errbuf *eb)
{
    struct json_object *v;
    *out = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return MM_OK;
    if (!json_object_is_type(v, json_type_string))
        return mm_errf(eb, MM_EPARSE, "Status: %s%s: expected a string", where, key);
    *out = mm_strdup(json_object_get_string(v));
    return *out ? MM_OK : MM_ENOMEM;
}

mm_err mm_k8s_status_from_json(struct json_object *obj, mm_k8s_status *st, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    struct json_object *v, *details = NULL, *meta = NULL;

    memset(st, 0, sizeof(*st));
    if (!obj || !json_object_is_type(obj, json_type_object))
        return mm_errf(eb, MM_EPARSE, "Status: expected a JSON object");
    if (json_object_object_get_ex(obj, "code", &v) && v) {
        if (!json_object_is_type(v, json_type_int)) {
            rc = mm_errf(eb, MM_EPARSE, "Status: code: expected an integer");
            goto out;
        }
        int64_t code = json_object_get_int64(v);
        st->code = code >= 0 && code <= 999 ? (int)code : 0;
    }
    if ((rc = opt_str(obj, "status", "", &st->status, eb)) != MM_OK ||
        (rc = opt_str(obj, "reason", "", &st->reason, eb)) != MM_OK ||
        (rc = opt_str(obj, "message", "", &st->message, eb)) != MM_OK)
        goto out;
    if (json_object_object_get_ex(obj, "metadata", &meta) && meta) {
        if (!json_object_is_type(meta, json_type_object)) {
            rc = mm_errf(eb, MM_EPARSE, "Status: metadata: expected an object");
            goto out;
        }
        if ((rc = opt_str(meta, "continue", "metadata.", &st->continue_token, eb)) != MM_OK)
            goto out;
    }
    if (json_object_object_get_ex(obj, "details", &details) && details) {
        if (!json_object_is_type(details, json_type_object)) {
            rc = mm_errf(eb, MM_EPARSE, "Status: details: expected an object");
            goto out;
        }
        if ((rc = opt_str(details, "name", "details.", &st->details_name, eb)) != MM_OK ||
            (rc = opt_str(details, "group", "details.", &st->details_group, eb)) != MM_OK ||
            (rc = opt_str(details, "kind", "details.", &st->details_kind, eb)) != MM_OK ||
            (rc = opt_str(details, "uid", "details.", &st->details_uid, eb)) != MM_OK)
            goto out;
        if (json_object_object_get_ex(details, "retryAfterSeconds", &v) && v) {
            if (!json_object_is_type(v, json_type_int)) {
                rc = mm_errf(eb, MM_EPARSE, "Status: details.retryAfterSeconds: expected an "
                                            "integer");
                goto out;
            }
            int64_t ra = json_object_get_int64(v);
            st->retry_after_s = ra < 0 ? 0 : ra > 86400 ? 86400 : (long)ra;
        }
        struct json_object *causes;
        if (json_object_object_get_ex(details, "causes", &causes) && causes) {
            if (!json_object_is_type(causes, json_type_array)) {
                rc = mm_errf(eb, MM_EPARSE, "Status: details.causes: expected an array");
                goto out;
            }
            size_t n = json_object_array_length(causes);
            if (n && !(st->causes = mm_calloc(n, sizeof(*st->causes)))) {
                rc = MM_ENOMEM;
                goto out;
            }
            for (size_t i = 0; i < n; i++) {
                struct json_object *cz = json_object_array_get_idx(causes, i);
                char where[64];
                snprintf(where, sizeof(where), "details.causes[%zu].", i);
                if (!json_object_is_type(cz, json_type_object)) {
                    rc = mm_errf(eb, MM_EPARSE, "Status: %s: expected an object", where);
                    goto out;
                }
                st->ncauses = i + 1;
                if ((rc = opt_str(cz, "reason", where, &st->causes[i].reason, eb)) != MM_OK ||
                    (rc = opt_str(cz, "message", where, &st->causes[i].message, eb)) != MM_OK ||
                    (rc = opt_str(cz, "field", where, &st->causes[i].field, eb)) != MM_OK)
                    goto out;
            }
        }
    }
    if (!st->reason && !(st->reason = mm_strdup(""))) {
        rc = MM_ENOMEM;
        goto out;
    }
    if (!st->message && !(st->message = mm_strdup(""))) {
        rc = MM_ENOMEM;
        goto out;
    }
out:
    if (rc != MM_OK)
        mm_k8s_status_clear(st);
    return rc;
}

/* client-go's NewGenericServerResponse: a reason for a bare HTTP code. */
static const char *reason_for_code(int code)
{
    switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 406: return "NotAcceptable";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "RequestEntityTooLarge";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return code >= 500 ? "InternalError" : "Unknown";
    }
}

void mm_k8s_status_from_body(int http_code, const char *body, size_t len, long retry_after_s,
                             mm_k8s_status *st)
{
    struct json_object *o = NULL;

    memset(st, 0, sizeof(*st));
    if (len && k8s_json_parse(body, len, &o, NULL) == MM_OK &&
        json_object_is_type(o, json_type_object)) {
        const char *kind = k8s_json_str(o, "kind");
        if (kind && strcmp(kind, "Status") == 0 && mm_k8s_status_from_json(o, st, NULL) == MM_OK) {
            if (!st->code)
                st->code = http_code;
            if (!st->retry_after_s && retry_after_s > 0)
                st->retry_after_s = retry_after_s;
            json_object_put(o);
            return;
        }
    }
    json_object_put(o);
    /* text (e.g. "404 page not found", APF's "Too many requests, please try again later.")
     * or JSON that is not a Status: keep the first line, printable bytes only */
    st->code = http_code;
    st->retry_after_s = retry_after_s > 0 ? retry_after_s : 0;
    st->status = mm_strdup("Failure");
    st->reason = mm_strdup(reason_for_code(http_code));
    size_t n = 0;
    while (n < len && n < 512 && body[n] != '\n' && body[n] != '\r')
        n++;
    st->message = mm_strndup(len ? body : "", n);
    if (st->message)
        for (char *p = st->message; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    /* out of memory here leaves NULLs, which every reader tolerates */
}

void mm_k8s_result_clear(mm_k8s_result *r)
{
    json_object_put(r->body);
    mm_k8s_status_clear(&r->status);
    for (size_t i = 0; i < r->nwarnings; i++)
        mm_free(r->warnings[i]);
    memset(r, 0, sizeof(*r));
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
    size_t nlocks = 0;
    bool req_lock = false, tok_lock = false;

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
    if ((rc = k8s_config_copy(cfg, &c->cfg)) != MM_OK)
        goto out;
    if (!(c->user_agent = mm_strdup(o->user_agent ? o->user_agent : "maskmesh/0.1"))) {
        rc = MM_ENOMEM;
        goto out;
    }
    for (; nlocks < CURL_LOCK_DATA_LAST; nlocks++)
        if (pthread_mutex_init(&c->share_locks[nlocks], NULL) != 0) {
            rc = mm_errf(eb, MM_ENOMEM, "k8s client: cannot create a lock");
            goto out;
        }
    if (pthread_mutex_init(&c->req_lock, NULL) != 0) {
        rc = mm_errf(eb, MM_ENOMEM, "k8s client: cannot create a lock");
        goto out;
    }
    req_lock = true;
    if (pthread_mutex_init(&c->tok_lock, NULL) != 0) {
        rc = mm_errf(eb, MM_ENOMEM, "k8s client: cannot create a lock");
        goto out;
    }
    tok_lock = true;
    if (!(c->share = curl_share_init()) || !(c->req = curl_easy_init())) {
        rc = mm_errf(eb, MM_ENOMEM, "libcurl: cannot create a handle");
        goto out;
    }
    if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
        curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
        rc = mm_errf(eb, MM_EIO, "libcurl: cannot set up the connection cache");
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
    if (c) {
        if (c->req)
            curl_easy_cleanup(c->req);
        if (c->share)
            curl_share_cleanup(c->share);
        if (tok_lock)
            pthread_mutex_destroy(&c->tok_lock);
        if (req_lock)
            pthread_mutex_destroy(&c->req_lock);
        for (size_t i = 0; i < nlocks; i++)
            pthread_mutex_destroy(&c->share_locks[i]);
        if (c->token)
            k8s_free_secret(c->token, strlen(c->token));
        mm_free(c->user_agent);
        mm_k8s_config_free(c->cfg);
        mm_free(c);
    }
    return rc;
}

void mm_k8s_client_free(mm_k8s_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->req);
    curl_share_cleanup(c->share);
    pthread_mutex_destroy(&c->tok_lock);
    pthread_mutex_destroy(&c->req_lock);
    for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_locks[i]);
    if (c->token)
        k8s_free_secret(c->token, strlen(c->token));
    mm_free(c->user_agent);
    mm_k8s_config_free(c->cfg);
    mm_free(c);
}

const char *mm_k8s_client_namespace(const mm_k8s_client *c) { return c->cfg->ns; }

uint64_t mm_k8s_client_connections(const mm_k8s_client *c) { return atomic_load(&c->connections); }

void k8s_count_connections(mm_k8s_client *c, CURL *h)
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

mm_err k8s_curl_err(CURLcode cc, const char *what, const char *errbuf, mm_errbuf *eb)
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

/* Parses one Warning header value: `299 - "text" [, 299 - "text" ...]` (RFC 7234 5.5);
 * only code 299 warnings are kept, as client-go does. */
void k8s_parse_warnings(mm_k8s_result *res, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && res && res->nwarnings < MM_K8S_MAX_WARNINGS) {
        while (i < n && (v[i] == ' ' || v[i] == ',' || v[i] == '\t'))
            i++;
        size_t code_at = i;
        while (i < n && v[i] >= '0' && v[i] <= '9')
            i++;
        bool is299 = i - code_at == 3 && memcmp(v + code_at, "299", 3) == 0;
        while (i < n && v[i] != '"') /* agent */
            i++;
        if (i >= n)
            return;
        i++;
        mm_buf t;
        mm_buf_init(&t, 4096);
        bool ok = true;
        while (i < n && v[i] != '"') {
            if (v[i] == '\\' && i + 1 < n)
                i++;
            if (ok && mm_buf_putc(&t, v[i]) != MM_OK)
                ok = false;
            i++;
        }
        i++; /* closing quote */
        while (i < n && v[i] != ',') {
            if (v[i] == '"') { /* a quoted warn-date */
                i++;
                while (i < n && v[i] != '"')
                    i++;
            }
            i++;
        }
        if (ok && is299) {
            char *s = mm_buf_steal(&t, NULL);
            if (s)
                res->warnings[res->nwarnings++] = s;
        }
        mm_buf_free(&t);
    }
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

    if (x->dec) {
        long code = 0;
        if (!x->streaming && x->body.len == 0) {
            curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
            x->streaming = code >= 200 && code < 300;
        }
        if (x->streaming) {
            x->werr = mm_k8s_watch_decoder_feed(x->dec, ptr, n, x->fn, x->ud, &x->stopped,
                                                &x->weeb);
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
            rc = k8s_curl_err(cc_, "libcurl option " #opt, NULL, eb);                              \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

mm_err k8s_setup_handle(mm_k8s_client *c, CURL *h, const char *url, bool watch,
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
    /* h2 when the server offers it in ALPN, HTTP/1.1 otherwise. PIPEWAIT: a transfer waits
     * for a connection that can multiplex rather than opening another. With the shared
     * connection cache, sequential and concurrent requests of one client use one h2
     * connection (test_k8s_h2: four threads, one connection). */
    SETOPT(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SETOPT(h, CURLOPT_PIPEWAIT, 1L);
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
    if (cfg->cert_data) {
        struct curl_blob blob = {cfg->cert_data, cfg->cert_len, CURL_BLOB_COPY};
        SETOPT(h, CURLOPT_SSLCERT_BLOB, &blob);
        SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (cfg->cert_file) {
        SETOPT(h, CURLOPT_SSLCERT, cfg->cert_file);
        SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (cfg->key_data) {
        struct curl_blob blob = {cfg->key_data, cfg->key_len, CURL_BLOB_COPY};
        SETOPT(h, CURLOPT_SSLKEY_BLOB, &blob);
        SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
    } else if (cfg->key_file) {
        SETOPT(h, CURLOPT_SSLKEY, cfg->key_file);
        SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
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
    bool reauthed = false, locked = false;
    k8s_xfer x;

    memset(&x, 0, sizeof(x));
    mm_buf_init(&x.body, MM_K8S_BODY_MAX);
    mm_k8s_result_clear(res);
    if ((rc = mm_k8s_build_url(c->cfg->server, ref, query, &url, eb)) != MM_OK)
        goto out;
    describe(what, sizeof(what), method, url, c->cfg->server);
    pthread_mutex_lock(&c->req_lock);
    locked = true;
    for (int attempt = 0;; attempt++) {
        long code = 0;
        if ((rc = k8s_refresh_token(c, false, eb)) != MM_OK)
            goto out;
        curl_easy_reset(c->req);
        mm_buf_reset(&x.body);
        x.c = c;
        x.h = c->req;
        x.res = res;
        x.retry_after_s = -1;
        x.is_json = false;
        errbuf[0] = '\0';
        if ((rc = k8s_setup_handle(c, c->req, url, false, content_type, &x, &hdrs, &auth,
                                   &auth_len, eb)) != MM_OK)
            goto out;
        SETOPT(c->req, CURLOPT_ERRORBUFFER, errbuf);
        SETOPT(c->req, CURLOPT_TIMEOUT_MS, timeout_ms);
        if (strcmp(method, "GET") == 0) {
            SETOPT(c->req, CURLOPT_HTTPGET, 1L);
        } else {
            SETOPT(c->req, CURLOPT_CUSTOMREQUEST, method);
            if (body) {
                SETOPT(c->req, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
                SETOPT(c->req, CURLOPT_POSTFIELDS, body);
            }
        }
        CURLcode cc = curl_easy_perform(c->req);
        k8s_count_connections(c, c->req);
        free_headers(hdrs, auth, auth_len);
        hdrs = NULL;
        auth = NULL;
        if (cc != CURLE_OK) {
            if (cc == CURLE_WRITE_ERROR && x.body.len >= MM_K8S_BODY_MAX - 1)
                rc = mm_errf(eb, MM_ELIMIT, "%s: response larger than %u bytes", what,
                             MM_K8S_BODY_MAX);
            else
                rc = k8s_curl_err(cc, what, errbuf, eb);
            goto out;
        }
        curl_easy_getinfo(c->req, CURLINFO_RESPONSE_CODE, &code);
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
            /* other threads may use the client meanwhile */
            curl_easy_reset(c->req);
            pthread_mutex_unlock(&c->req_lock);
            k8s_sleep_ms(wait * 1000);
            pthread_mutex_lock(&c->req_lock);
            continue;
        }
        break;
    }
    if (res->http_code >= 200 && res->http_code < 300) {
        if (x.body.len) {
            mm_errbuf jeb;
            if (k8s_json_parse(x.body.data, x.body.len, &res->body, &jeb) != MM_OK) {
                rc = mm_errf(eb, MM_EPARSE, "%s: %ld response: %s", what, res->http_code,
                             jeb.msg);
                goto out;
            }
        }
        goto out;
    }
    mm_k8s_status_from_body((int)res->http_code, x.body.data ? x.body.data : "", x.body.len,
                            x.retry_after_s, &res->status);
    if (!res->status.reason || !res->status.message) {
        rc = MM_ENOMEM;
        goto out;
    }
    rc = mm_errf(eb, mm_k8s_status_err(&res->status), "%s: %ld %s: %s", what, res->http_code,
                 res->status.reason, res->status.message);
out:
    if (hdrs || auth)
        free_headers(hdrs, auth, auth_len);
    if (locked) {
        curl_easy_reset(c->req); /* drop pointers into this call's buffers */
        pthread_mutex_unlock(&c->req_lock);
    }
    mm_buf_free(&x.body);
    mm_free(url);
    return rc;
}

/* ---- verbs ---------------------------------------------------------------------------------- */

mm_err mm_k8s_get(mm_k8s_client *c, const mm_k8s_ref *ref, mm_k8s_result *res, mm_errbuf *eb)
{
    return k8s_request(c, "GET", ref, NULL, NULL, NULL, 0, NULL, res, eb);
}

mm_err mm_k8s_list(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_list_opts *lo,
                   mm_k8s_result *res, mm_errbuf *eb)
{
    static const mm_k8s_list_opts none;
    char limit[24];
    if (!lo)
        lo = &none;
    if (ref->name)
        return mm_errf(eb, MM_EINVAL, "list: the ref names an object");
    snprintf(limit, sizeof(limit), "%ld", lo->limit);
    const char *q[] = {"labelSelector", lo->label_selector,
                       "fieldSelector", lo->field_selector,
                       "resourceVersion", lo->resource_version,
                       "resourceVersionMatch", lo->resource_version_match,
                       "limit", lo->limit > 0 ? limit : NULL,
                       "continue", lo->continue_token,
                       NULL};
    return k8s_request(c, "GET", ref, q, NULL, NULL, 0, NULL, res, eb);
}

static mm_err write_obj(mm_k8s_client *c, const char *method, const mm_k8s_ref *ref,
                        struct json_object *obj, const mm_k8s_write_opts *wo,
                        mm_k8s_result *res, mm_errbuf *eb)
{
    static const mm_k8s_write_opts none;
    if (!wo)
        wo = &none;
    if (!obj)
        return mm_errf(eb, MM_EINVAL, "%s: no object", method);
    size_t len = 0;
    const char *body = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!body)
        return MM_ENOMEM;
    const char *q[] = {"fieldManager", wo->field_manager, "dryRun", wo->dry_run ? "All" : NULL,
                       "fieldValidation", wo->field_validation, NULL};
    return k8s_request(c, method, ref, q, "application/json", body, len, NULL, res, eb);
}

mm_err mm_k8s_create(mm_k8s_client *c, const mm_k8s_ref *ref, struct json_object *obj,
                     const mm_k8s_write_opts *wo, mm_k8s_result *res, mm_errbuf *eb)
{
    if (ref->name)
        return mm_errf(eb, MM_EINVAL, "create: the ref names an object (POST goes to the "
                                      "collection; the name is in metadata)");
    return write_obj(c, "POST", ref, obj, wo, res, eb);
}

mm_err mm_k8s_update(mm_k8s_client *c, const mm_k8s_ref *ref, struct json_object *obj,
                     const mm_k8s_write_opts *wo, mm_k8s_result *res, mm_errbuf *eb)
{
    if (!ref->name)
        return mm_errf(eb, MM_EINVAL, "update: the ref names no object");
    return write_obj(c, "PUT", ref, obj, wo, res, eb);
}

mm_err mm_k8s_patch(mm_k8s_client *c, const mm_k8s_ref *ref, mm_k8s_patch_type type,
                    const char *body, size_t len, const mm_k8s_patch_opts *po,
                    mm_k8s_result *res, mm_errbuf *eb)
{
    static const mm_k8s_patch_opts none;
    const char *ct;
    if (!po)
        po = &none;
    switch (type) {
    case MM_K8S_PATCH_JSON: ct = "application/json-patch+json"; break;
    case MM_K8S_PATCH_MERGE: ct = "application/merge-patch+json"; break;
    case MM_K8S_PATCH_STRATEGIC: ct = "application/strategic-merge-patch+json"; break;
    case MM_K8S_PATCH_APPLY: ct = "application/apply-patch+yaml"; break;
    default: return mm_errf(eb, MM_EINVAL, "patch: unknown patch type %d", (int)type);
    }
    if (!ref->name)
        return mm_errf(eb, MM_EINVAL, "patch: the ref names no object");
    /* the server's own checks (wire rule 10), made before a round trip */
    if (type == MM_K8S_PATCH_APPLY && (!po->field_manager || !*po->field_manager))
        return mm_errf(eb, MM_EINVAL, "patch: server-side apply needs a fieldManager");
    if (type != MM_K8S_PATCH_APPLY && po->force)
        return mm_errf(eb, MM_EINVAL, "patch: force is only for server-side apply");
    if (po->field_manager && strlen(po->field_manager) > 128)
        return mm_errf(eb, MM_EINVAL, "patch: fieldManager longer than 128 characters");
    const char *q[] = {"fieldManager", po->field_manager,
                       "force", po->force ? "true" : NULL,
                       "dryRun", po->dry_run ? "All" : NULL,
                       "fieldValidation", po->field_validation,
                       NULL};
    return k8s_request(c, "PATCH", ref, q, ct, body ? body : "", body ? len : 0, NULL, res, eb);
}

mm_err mm_k8s_delete(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_delete_opts *d,
                     mm_k8s_result *res, mm_errbuf *eb)
{
    static const mm_k8s_delete_opts none = {.grace_period_seconds = -1};
    mm_err rc;
    struct json_object *o = NULL, *pre = NULL;

    if (!d)
        d = &none;
    if (!ref->name)
        return mm_errf(eb, MM_EINVAL, "delete: the ref names no object");
    if (!(o = json_object_new_object()))
        return MM_ENOMEM;
    rc = MM_ENOMEM;
    if (k8s_json_add(o, "kind", json_object_new_string("DeleteOptions")) ||
        k8s_json_add(o, "apiVersion", json_object_new_string("v1")))
        goto out;
    if (d->precondition_uid || d->precondition_resource_version) {
        if (!(pre = json_object_new_object()))
            goto out;
        if ((d->precondition_uid &&
             k8s_json_add(pre, "uid", json_object_new_string(d->precondition_uid))) ||
            (d->precondition_resource_version &&
             k8s_json_add(pre, "resourceVersion",
                          json_object_new_string(d->precondition_resource_version))))
            goto out;
        int bad = k8s_json_add(o, "preconditions", pre);
        pre = NULL; /* o owns it now, or it was released */
        if (bad)
            goto out;
    }
    if (d->propagation_policy &&
        k8s_json_add(o, "propagationPolicy", json_object_new_string(d->propagation_policy)))
        goto out;
    if (d->grace_period_seconds >= 0 &&
        k8s_json_add(o, "gracePeriodSeconds", json_object_new_int64(d->grace_period_seconds)))
        goto out;
    if (d->dry_run) {
        struct json_object *a = json_object_new_array();
        struct json_object *all = json_object_new_string("All");
        if (!a || !all || json_object_array_add(a, all)) {
            json_object_put(all);
            json_object_put(a);
            goto out;
        }
        if (k8s_json_add(o, "dryRun", a))
            goto out;
    }
    size_t len = 0;
    const char *body = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    if (!body)
        goto out;
    rc = k8s_request(c, "DELETE", ref, NULL, "application/json", body, len, NULL, res, eb);
out:
    json_object_put(pre);
    json_object_put(o);
    return rc;
}

/* ---- list paging ------------------------------------------------------------------------- */

mm_err mm_k8s_list_all(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_list_opts *lo,
                       mm_k8s_item_fn item_fn, void *ud, char **rv_out, mm_k8s_result *res,
                       mm_errbuf *eb)
{
    static const mm_k8s_list_opts none;
    mm_err rc = MM_OK;
    mm_k8s_list_opts o = lo ? *lo : none;
    char *cont = NULL;
    int restarts = 0;

    if (rv_out)
        *rv_out = NULL;
    o.continue_token = NULL;
    for (;;) {
        if ((rc = mm_k8s_list(c, ref, &o, res, eb)) != MM_OK) {
            if (rc == MM_EGONE && o.continue_token && restarts < 2) {
                /* The continue token expired (compaction). Start over: first paged again,
                 * so memory stays one page; if that expires too, as client-go's pager
                 * does, in one unpaged read that compaction cannot cut. item_fn hears
                 * NULL: forget what this list handed you so far. */
                if (++restarts == 2)
                    o.limit = 0;
                o.continue_token = NULL;
                if (rv_out) {
                    mm_free(*rv_out);
                    *rv_out = NULL;
                }
                if (item_fn && item_fn(ud, NULL) != 0) {
                    rc = mm_errf(eb, MM_EINVAL, "list %s: stopped by the caller", ref->resource);
                    goto out;
                }
                continue;
            }
            goto out;
        }
        struct json_object *items = k8s_json_get(res->body, "items", json_type_array);
        struct json_object *meta = k8s_json_get(res->body, "metadata", json_type_object);
        struct json_object *v;
        if (!items && !(res->body && json_object_object_get_ex(res->body, "items", &v) &&
                        json_object_is_type(v, json_type_null))) {
            rc = mm_errf(eb, MM_EPARSE, "list %s: the response has no items array", ref->resource);
            goto out;
        }
        for (size_t i = 0; items && i < json_object_array_length(items); i++) {
            struct json_object *it = json_object_array_get_idx(items, i);
            if (!json_object_is_type(it, json_type_object)) {
                rc = mm_errf(eb, MM_EPARSE, "list %s: items[%zu]: expected an object",
                             ref->resource, i);
                goto out;
            }
            if (item_fn && item_fn(ud, it) != 0) {
                rc = mm_errf(eb, MM_EINVAL, "list %s: stopped by the caller", ref->resource);
                goto out;
            }
        }
        const char *rv = k8s_json_str(meta, "resourceVersion");
        if (rv_out && rv && !*rv_out && !(*rv_out = mm_strdup(rv))) {
            rc = MM_ENOMEM;
            goto out;
        }
        const char *next = k8s_json_str(meta, "continue");
        if (!next || !*next || o.limit <= 0)
            break;
        mm_free(cont);
        if (!(cont = mm_strdup(next))) {
            rc = MM_ENOMEM;
            goto out;
        }
        o.continue_token = cont;
    }
    if (rv_out && !*rv_out) {
        rc = mm_errf(eb, MM_EPARSE, "list %s: no metadata.resourceVersion", ref->resource);
        goto out;
    }
out:
    if (rc != MM_OK && rv_out) {
        mm_free(*rv_out);
        *rv_out = NULL;
    }
    mm_free(cont);
    return rc;
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
