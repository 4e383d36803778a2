/* lib/k8s internals shared by its files: the config and client structs, the transport the
 * verbs, watch, informer and lease code build on (transport.c), Status errors (status.c),
 * URLs (url.c) and JSON helpers (json.c). Calls go one way: lease, informer -> client,
 * watch -> transport -> url, status -> json. */
#ifndef MM_K8S_INT_H
#define MM_K8S_INT_H

#include <pthread.h>
#include <sys/types.h>

#include <curl/curl.h>

#include "k8s/k8s.h"

struct mm_k8s_config {
    char *server; /* scheme://host[:port][/prefix], no trailing '/' */
    char *ns;
    mm_k8s_auth auth;
    char *token;      /* literal bearer token */
    char *token_file; /* re-read when it changes */
    char *username, *password;
    char *ca_file;
    char *ca_data; /* PEM bytes (decoded -data), ca_len long */
    size_t ca_len;
    char *cert_file, *cert_data;
    size_t cert_len;
    char *key_file, *key_data;
    size_t key_len;
    bool insecure;
};

mm_err k8s_config_copy(const mm_k8s_config *src, mm_k8s_config **out);
/* Frees and wipes a string that may hold a secret. */
void k8s_free_secret(char *s, size_t len);

#define K8S_IDLE_HANDLES 16 /* kept for reuse; more concurrent requests make more */

struct mm_k8s_client {
    mm_k8s_config *cfg;
    long connect_timeout_ms, request_timeout_ms, watch_idle_s, max_retry_after_s;
    int max_retries;
    char *user_agent;
    double qps, burst; /* the rate limit (qps <= 0: none) */
    double tokens;     /* may go below 0: the waits already promised */
    uint64_t tokens_ns; /* when tokens was last brought up to date (monotonic) */

    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST]; /* one per curl share data kind */

    /* Plain requests take an easy handle from this stack and put it back, so threads (the
     * controller's workers) send concurrently while one thread reuses its connection. */
    pthread_mutex_t req_lock; /* guards idle, n_idle and the rate limit's tokens */
    CURL *idle[K8S_IDLE_HANDLES];
    size_t n_idle;
    size_t n_share_locks; /* initialised: for the one free path */
    bool req_lock_ok, tok_lock_ok;

    pthread_mutex_t tok_lock; /* guards token and the tok_* file identity */
    char *token;              /* the current bearer token (from cfg->token or the file) */
    bool tok_known;
    dev_t tok_dev;
    ino_t tok_ino;
    off_t tok_size;
    struct timespec tok_mtime;
    uint64_t token_reads; /* how many times the token file was read (tests) */
    _Atomic uint64_t connections; /* TCP connections opened by this client's transfers */
};

/* Where the 2xx body of a stream goes as it arrives (the watch decoder, watch.c): the
 * transport writes to it and never calls up into its owner. write returns MM_OK to go on
 * (with a message in eb otherwise) and sets *stop to end the transfer cleanly. */
typedef struct {
    mm_err (*write)(void *ud, const char *data, size_t n, bool *stop, mm_errbuf *eb);
    void *ud;
} k8s_sink;

/* One transfer's state: response body (bounded), headers we act on, and, for streams, the
 * sink fed from the write callback. */
typedef struct {
    mm_k8s_client *c;
    CURL *h;
    mm_k8s_result *res;
    mm_buf body;
    long retry_after_s; /* -1: no Retry-After header */
    bool is_json;
    /* streams only */
    const k8s_sink *sink;
    const atomic_bool *stop;
    bool stopped;
    bool streaming; /* the response is 2xx: bytes go to the sink */
    mm_err werr;
    mm_errbuf weeb;
} k8s_xfer;

/* Per-call overrides of the client's settings (NULL: none). */
typedef struct {
    long timeout_ms; /* 0: the client's request timeout */
    int max_retries; /* <0: the client's */
    bool no_body;    /* a 2xx body is not parsed (mm_k8s_write_opts.no_body) */
    bool unlimited;  /* not held by the client's qps (the Lease: client-go gives leader
                        election a client of its own, so renewals never queue behind writes) */
} k8s_tuning;

/* Builds method + URL for ref/query and runs it with retries; see mm_k8s_get & co. */
mm_err k8s_request(mm_k8s_client *c, const char *method, const mm_k8s_ref *ref,
                   const char *const *query, const char *content_type, const char *body,
                   size_t body_len, const k8s_tuning *tune, mm_k8s_result *res,
                   mm_errbuf *eb);
/* Runs a streaming GET of url (what names it in messages): a 2xx body goes to sink as it
 * arrives, with no total timeout (the server ends it). A connection silent for the client's
 * watch_idle_s is dropped, or, when the client sets none, for idle_s (0: 630 s). *stop (may
 * be NULL) or the sink ends it cleanly, *stopped then true. Another status becomes
 * res->status and an error, as for requests. */
mm_err k8s_stream(mm_k8s_client *c, const char *url, const char *what, const k8s_sink *sink,
                  const atomic_bool *stop, long idle_s, bool *stopped, mm_k8s_result *res,
                  mm_errbuf *eb);
/* Re-reads the token file when it changed (or unconditionally with force). */
mm_err k8s_refresh_token(mm_k8s_client *c, bool force, mm_errbuf *eb);
void k8s_sleep_ms(long ms);
/* A client of its own with c's configuration and settings: its own connection, so work on c
 * (a slow list page, a long write) never waits on it or delays it (the Lease renewal). */
mm_err k8s_client_clone(const mm_k8s_client *c, mm_k8s_client **out, mm_errbuf *eb);
/* Appends the texts of one Warning header value (`299 - "text"`, comma-separated, quoted
 * strings with backslash escapes, optional quoted date) to res; other codes are dropped. */
void k8s_parse_warnings(mm_k8s_result *res, const char *v, size_t n);

/* JSON */
mm_err k8s_json_parse(const char *s, size_t len, struct json_object **out, mm_errbuf *eb);
/* The string member key of obj, or NULL when absent or not a string. */
const char *k8s_json_str(struct json_object *obj, const char *key);
struct json_object *k8s_json_get(struct json_object *obj, const char *key, json_type t);
/* Adds v to object o under key and owns v in every case: -1 (v released) when v is NULL
 * because its allocation failed, or when the add fails. json-c's own add stores a NULL
 * value as null and leaves v to the caller on failure. */
int k8s_json_add(struct json_object *o, const char *key, struct json_object *v);
/* metadata.<key> as a string, or NULL. */
const char *k8s_meta_str(struct json_object *obj, const char *key);

/* What the informer does with one watch event (an mm_k8s_event_fn; ud is the informer):
 * the store and the handlers follow it. Exposed so the store can be tested without a server;
 * ev->object may be changed (shaped) by the call. */
int k8s_informer_on_event(void *ud, const mm_k8s_event *ev);

/* A random 64-bit value from OpenSSL (falls back to time and address on failure). */
uint64_t k8s_random64(void);

/* Sleeps up to `ms` on cond (with lock) unless *stop turns true (a stopper signals cond):
 * the wait of the informer's and the elector's threads between steps. CLOCK_REALTIME, as
 * the conds are made with the default clock. */
void k8s_wait_stop(pthread_mutex_t *lock, pthread_cond_t *cond, const atomic_bool *stop, long ms);

#endif
