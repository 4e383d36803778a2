/* lib/k8s: a Kubernetes REST client — configuration (in-cluster and kubeconfig), requests for
 * any group/version/resource, Status errors, list paging, watch streams, an informer
 * (list + watch + local store) and leader election on a coordination.k8s.io/v1 Lease.
 * Depends on: lib/common, libcurl, json-c, OpenSSL (randomness), yaml-0.1 (kubeconfig).
 * Knows nothing of masking.
 *
 * Objects are json-c values. Unless a comment says otherwise a json_object passed in is
 * borrowed (the callee takes its own reference if it keeps it) and one handed out in an
 * mm_k8s_result is owned by that result. resourceVersion and continue tokens are opaque
 * strings: compared for equality only, passed back unmodified.
 *
 * Threads: an mm_k8s_client may be shared by threads. A plain request takes an idle request
 * handle (or a new one) and its kept connection, so requests in a row reuse one connection
 * and threads send at once over a connection each; watches run on their own handle. All
 * handles share the DNS cache and TLS sessions. Never log a
 * token or a key: this module does not, and its error messages never carry one. */
#ifndef MM_K8S_H
#define MM_K8S_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/common.h"

/* Bounds on what the server can make us hold. */
#define MM_K8S_KUBECONFIG_MAX (4u << 20)    /* a kubeconfig file */
#define MM_K8S_TOKEN_MAX (64u << 10)        /* a bearer token file */
#define MM_K8S_CA_MAX (4u << 20)            /* a CA bundle / certificate / key file */
#define MM_K8S_BODY_MAX (256u << 20)        /* one response body (a whole list page) */
#define MM_K8S_ERROR_BODY_MAX (1u << 20)    /* the body of an error response */
#define MM_K8S_WATCH_LINE_MAX (16u << 20)   /* one watch event (one line of the stream) */
#define MM_K8S_URL_MAX (64u << 10)          /* a request URL */
#define MM_K8S_JSON_DEPTH 200               /* nesting json-c accepts */
#define MM_K8S_MAX_WARNINGS 32              /* Warning headers kept per response */

/* ---- configuration -------------------------------------------------------------------- */

typedef struct mm_k8s_config mm_k8s_config;

/* How a config authenticates (for callers that report it; never the secret itself). */
typedef enum {
    MM_K8S_AUTH_NONE = 0,
    MM_K8S_AUTH_TOKEN,      /* a literal bearer token */
    MM_K8S_AUTH_TOKEN_FILE, /* a bearer token re-read from a file when it changes */
    MM_K8S_AUTH_CERT,       /* a TLS client certificate and key */
    MM_K8S_AUTH_BASIC,      /* username and password */
} mm_k8s_auth;

/* Where the in-cluster config comes from; every NULL field takes the standard value:
 * KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the files under
 * /var/run/secrets/kubernetes.io/serviceaccount/. Tests point these elsewhere. */
typedef struct {
    const char *host;
    const char *port;
    const char *token_path;
    const char *ca_path;
    const char *namespace_path;
} mm_k8s_incluster_opts;

/* In-cluster: https://HOST:PORT, the service-account token file (read before each request
 * when its mtime, size or inode changed), its CA and namespace (default "default"). */
mm_err mm_k8s_config_incluster(const mm_k8s_incluster_opts *o, mm_k8s_config **out,
                               mm_errbuf *eb);

/* A kubeconfig file: `path`, else the first existing file of $KUBECONFIG (a ':'-separated
 * list; files are not merged), else ~/.kube/config. `context` NULL means current-context.
 * Relative file names in it are relative to the kubeconfig's folder. Errors name the file,
 * line:column and the field, e.g. `users[0].user.client-key-data: not valid base64`. */
mm_err mm_k8s_config_kubeconfig(const char *path, const char *context, mm_k8s_config **out,
                                mm_errbuf *eb);

/* The same from text in memory; `origin` names it in messages and is the file whose folder
 * relative paths are resolved against (NULL: the current directory). Fuzzed. */
mm_err mm_k8s_config_parse_kubeconfig(const char *text, size_t len, const char *origin,
                                      const char *context, mm_k8s_config **out, mm_errbuf *eb);

/* What a controller's `--kubeconfig FILE` means: FILE when given, else in-cluster when
 * KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG / ~/.kube/config. */
mm_err mm_k8s_config_load(const char *kubeconfig, mm_k8s_config **out, mm_errbuf *eb);

void mm_k8s_config_free(mm_k8s_config *cfg);
const char *mm_k8s_config_server(const mm_k8s_config *cfg);    /* "https://h:p[/prefix]" */
const char *mm_k8s_config_namespace(const mm_k8s_config *cfg); /* the context's, or "default" */
mm_k8s_auth mm_k8s_config_auth(const mm_k8s_config *cfg);
bool mm_k8s_config_insecure(const mm_k8s_config *cfg);

/* ---- client --------------------------------------------------------------------------- */

typedef struct mm_k8s_client mm_k8s_client;

typedef struct {
    long connect_timeout_ms; /* 0: 10 s */
    long request_timeout_ms; /* whole non-watch request; 0: 60 s */
    long watch_idle_s;       /* a watch receiving nothing this long is dropped; 0: timeout+30 s */
    int max_retries;         /* 429/5xx retries, only when Retry-After is sent; 0: 10, <0: none */
    long max_retry_after_s;  /* cap on one Retry-After wait; 0: 30 s */
    const char *user_agent;  /* 0: "maskmesh/0.1"; its part before '/' is the default manager */
    /* Client-side rate limit of requests (watches are not held by it), a token bucket as
     * client-go's --kube-api-qps/--kube-api-burst: qps <= 0 none (the server's API
     * Priority and Fairness still answers 429, which is retried on its Retry-After);
     * burst < 1: qps rounded up, at least 1. */
    double qps;
    int burst;
} mm_k8s_client_opts;

/* `cfg` is copied; the client does not keep the pointer. */
mm_err mm_k8s_client_new(const mm_k8s_config *cfg, const mm_k8s_client_opts *o,
                         mm_k8s_client **out, mm_errbuf *eb);
void mm_k8s_client_free(mm_k8s_client *c);
/* How many connections the client's transfers opened (a reused connection counts once). */
uint64_t mm_k8s_client_connections(const mm_k8s_client *c);
/* Default namespace of the client's config. Borrowed. */
const char *mm_k8s_client_namespace(const mm_k8s_client *c);

/* What a request addresses. group NULL or "" is the core group (/api/v1); otherwise
 * /apis/<group>/<version>. ns NULL or "" is cluster-scoped (or all namespaces for list and
 * watch). name NULL addresses the collection. subresource e.g. "status". */
typedef struct {
    const char *group;
    const char *version;
    const char *resource; /* plural, lower case: "pods", "maskingpolicies" */
    const char *ns;
    const char *name;
    const char *subresource;
} mm_k8s_ref;

/* A Status cause (details.causes[i]). */
typedef struct {
    char *reason;
    char *message;
    char *field;
} mm_k8s_cause;

/* An API error as the server said it (kind: Status), or synthesised from a non-JSON error
 * body the way client-go does (reason from the HTTP code, message from the text). */
typedef struct {
    int code;              /* HTTP status repeated in the body (or the response's) */
    char *status;          /* "Failure" / "Success" */
    char *reason;          /* "NotFound", "Conflict", "Expired", ...; "" when none */
    char *message;
    char *details_name, *details_group, *details_kind, *details_uid;
    long retry_after_s;    /* details.retryAfterSeconds, else the Retry-After header; 0 none */
    char *continue_token;  /* metadata.continue (a 410 on an expired continue carries one) */
    mm_k8s_cause *causes;
    size_t ncauses;
} mm_k8s_status;

/* Parses a Status object (from an error body or an ERROR watch event). Unknown fields are
 * ignored; a non-object or a wrong type is MM_EPARSE. `st` is cleared first. */
mm_err mm_k8s_status_from_json(struct json_object *obj, mm_k8s_status *st, mm_errbuf *eb);
/* From a whole error response: JSON Status when it is one, else text. Always fills st. */
void mm_k8s_status_from_body(int http_code, const char *body, size_t len, long retry_after_s,
                             mm_k8s_status *st);
void mm_k8s_status_clear(mm_k8s_status *st);
/* MM_ENOTFOUND (404), MM_ECONFLICT (409), MM_EGONE (410), MM_EHTTP (other). */
mm_err mm_k8s_status_err(const mm_k8s_status *st);

/* The outcome of one request. Zero-initialise it before first use; clear it after. */
typedef struct {
    long http_code;             /* the final response's code (after retries); 0: none */
    struct json_object *body;   /* the parsed JSON body of a 2xx response (owned) */
    mm_k8s_status status;       /* filled when http_code >= 400 */
    char *warnings[MM_K8S_MAX_WARNINGS]; /* text of `Warning: 299 - "..."` headers */
    size_t nwarnings;
    int retries;                /* how many Retry-After retries were made */
} mm_k8s_result;

void mm_k8s_result_clear(mm_k8s_result *r);

/* Every request returns MM_OK on 2xx with res->body set (NULL for an empty body); on an API
 * error the mapped error (see mm_k8s_status_err) with res->status filled and eb naming the
 * request and the server's message; MM_EIO / MM_ETLS / MM_ETIMEOUT for transport failures.
 * 429 and 5xx responses carrying Retry-After are retried up to max_retries times after the
 * advertised wait (client-go semantics); a 401 makes the client re-read its token file once
 * and retry. */

typedef struct {
    const char *field_manager;    /* fieldManager= */
    bool dry_run;                 /* dryRun=All */
    const char *field_validation; /* "Strict", "Warn", "Ignore" or NULL */
    bool no_body;                 /* the caller reads only whether it worked: a 2xx body is
                                     not parsed (res->body stays NULL), saving the CPU of a
                                     tree nobody reads */
} mm_k8s_write_opts;

typedef struct {
    const char *label_selector;
    const char *field_selector;
    const char *resource_version;       /* opaque; NULL: most recent (quorum read) */
    const char *resource_version_match; /* "NotOlderThan", "Exact" or NULL */
    long limit;                         /* page size; 0: no paging */
    const char *continue_token;         /* from the previous page */
} mm_k8s_list_opts;

typedef enum {
    MM_K8S_PATCH_JSON,      /* application/json-patch+json (RFC 6902) */
    MM_K8S_PATCH_MERGE,     /* application/merge-patch+json (RFC 7386) */
    MM_K8S_PATCH_STRATEGIC, /* application/strategic-merge-patch+json (built-in kinds only) */
    MM_K8S_PATCH_APPLY,     /* application/apply-patch+yaml: server-side apply (JSON too) */
} mm_k8s_patch_type;

typedef struct {
    const char *field_manager; /* required for MM_K8S_PATCH_APPLY */
    bool force;                /* apply only: take over conflicting fields */
    bool dry_run;
    const char *field_validation;
    bool no_body; /* as in mm_k8s_write_opts */
} mm_k8s_patch_opts;

typedef struct {
    const char *precondition_uid;              /* preconditions.uid */
    const char *precondition_resource_version; /* preconditions.resourceVersion */
    const char *propagation_policy;            /* "Foreground", "Background", "Orphan" */
    long grace_period_seconds;                 /* <0: unset */
    bool dry_run;
} mm_k8s_delete_opts;

mm_err mm_k8s_get(mm_k8s_client *c, const mm_k8s_ref *ref, mm_k8s_result *res, mm_errbuf *eb);
/* One page; res->body is the List (metadata.continue says whether another page follows). */
mm_err mm_k8s_list(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_list_opts *lo,
                   mm_k8s_result *res, mm_errbuf *eb);
mm_err mm_k8s_create(mm_k8s_client *c, const mm_k8s_ref *ref, struct json_object *obj,
                     const mm_k8s_write_opts *wo, mm_k8s_result *res, mm_errbuf *eb);
/* PUT: obj carries metadata.resourceVersion for optimistic concurrency (409 when stale).
 * With ref->subresource "status" this is the status update. */
mm_err mm_k8s_update(mm_k8s_client *c, const mm_k8s_ref *ref, struct json_object *obj,
                     const mm_k8s_write_opts *wo, mm_k8s_result *res, mm_errbuf *eb);
/* `body` is sent as is (JSON patch array, merge patch or apply configuration). */
mm_err mm_k8s_patch(mm_k8s_client *c, const mm_k8s_ref *ref, mm_k8s_patch_type type,
                    const char *body, size_t len, const mm_k8s_patch_opts *po,
                    mm_k8s_result *res, mm_errbuf *eb);
mm_err mm_k8s_delete(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_delete_opts *d,
                     mm_k8s_result *res, mm_errbuf *eb);

/* Lists every page (limit/continue), calling item_fn for each item (borrowed, valid during
 * the call; items of built-in kinds carry no kind/apiVersion). A continue token that expired
 * mid-way (410) restarts the list from the start: paged the first time, unpaged the second
 * (one consistent read, as client-go's pager falls back to); before a restart item_fn is
 * called with NULL, meaning "forget the items of this list so far". *rv_out gets the list's
 * resourceVersion (caller frees with mm_free). item_fn returning non-zero stops with
 * MM_EINVAL. */
typedef int (*mm_k8s_item_fn)(void *ud, struct json_object *item);
mm_err mm_k8s_list_all(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_list_opts *lo,
                       mm_k8s_item_fn item_fn, void *ud, char **rv_out, mm_k8s_result *res,
                       mm_errbuf *eb);

/* Builds the URL of a request (exposed for tests): server + path, every path segment and
 * query value percent-escaped; `query` is NULL-terminated key, value pairs (NULL values
 * skipped). "." and ".." segments and empty names are MM_EINVAL. Caller frees. */
mm_err mm_k8s_build_url(const char *server, const mm_k8s_ref *ref, const char *const *query,
                        char **out, mm_errbuf *eb);
/* Percent-escapes everything but RFC 3986 unreserved characters. */
mm_err mm_k8s_escape(mm_buf *b, const char *s);

/* ---- watch ---------------------------------------------------------------------------- */

typedef enum {
    MM_K8S_ADDED,
    MM_K8S_MODIFIED,
    MM_K8S_DELETED,
    MM_K8S_BOOKMARK,
    MM_K8S_ERROR, /* object is a Status (code 410: the resourceVersion expired) */
} mm_k8s_event_type;

typedef struct {
    mm_k8s_event_type type;
    struct json_object *object; /* borrowed for the callback; json_object_get to keep it */
} mm_k8s_event;

/* Return non-zero to stop the watch (the watch then returns MM_OK). */
typedef int (*mm_k8s_event_fn)(void *ud, const mm_k8s_event *ev);

/* Frames a watch stream: newline-delimited {type, object} events arriving in any chunking.
 * A line longer than max_line (0: MM_K8S_WATCH_LINE_MAX) is MM_ELIMIT; a line that is not a
 * watch event is MM_EPARSE naming the event's index and byte offset. Fuzzed. */
typedef struct mm_k8s_watch_decoder mm_k8s_watch_decoder;
mm_err mm_k8s_watch_decoder_new(size_t max_line, mm_k8s_watch_decoder **out);
/* Calls fn for each complete event in data. *stopped is set when fn asked to stop. */
mm_err mm_k8s_watch_decoder_feed(mm_k8s_watch_decoder *d, const char *data, size_t len,
                                 mm_k8s_event_fn fn, void *ud, bool *stopped, mm_errbuf *eb);
/* At end of stream: MM_OK when no partial event is pending, else MM_EIO (cut short). */
mm_err mm_k8s_watch_decoder_finish(mm_k8s_watch_decoder *d, mm_errbuf *eb);
uint64_t mm_k8s_watch_decoder_events(const mm_k8s_watch_decoder *d);
void mm_k8s_watch_decoder_free(mm_k8s_watch_decoder *d);
/* Parses one line (without its newline) into an event; *obj_out is owned by the caller. */
mm_err mm_k8s_parse_event(const char *line, size_t len, mm_k8s_event_type *type,
                          struct json_object **obj_out, mm_errbuf *eb);

typedef struct {
    const char *resource_version; /* opaque; NULL: "start at most recent" */
    const char *resource_version_match; /* e.g. "NotOlderThan" with send_initial_events */
    const char *label_selector;
    const char *field_selector;
    bool allow_bookmarks;
    bool send_initial_events;
    long timeout_seconds;         /* server-side timeoutSeconds; 0: omit */
    const atomic_bool *stop;      /* polled about once a second; true ends the watch (MM_OK) */
} mm_k8s_watch_opts;

/* Streams one watch: blocks until the server ends the stream (MM_OK), fn or *stop asks to
 * stop (MM_OK), the connection drops (MM_EIO: resume from the last resourceVersion seen) or
 * the server refuses the watch (the mapped error with res->status filled: MM_EGONE on HTTP
 * 410; 429 is MM_EHTTP with status.retry_after_s). ERROR events are passed to fn. */
mm_err mm_k8s_watch(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_watch_opts *wo,
                    mm_k8s_event_fn fn, void *ud, mm_k8s_result *res, mm_errbuf *eb);

/* ---- informer ------------------------------------------------------------------------- */

/* An informer (client-go's reflector + store): LIST (paged) then WATCH from the list's
 * resourceVersion, keeping a local store keyed "namespace/name" (cluster-scoped: "name").
 * A dropped watch resumes from the last resourceVersion seen (bookmarks advance it); a 410
 * (HTTP or an ERROR event with code 410) relists, and the relist's differences reach the
 * handlers (update only for objects whose resourceVersion changed); errors and 429s back off
 * exponentially with jitter, a Retry-After taking precedence.
 *
 * Two ways to run it:
 *  - mm_k8s_informer_start: its own thread until mm_k8s_informer_stop (which interrupts a
 *    watch within about a second and joins);
 *  - mm_k8s_informer_step from the caller's loop: each call does one list or one watch
 *    session and says how long to wait before the next call.
 * Handlers run on the thread that runs the informer, never concurrently with each other,
 * without the store's lock held (they may call mm_k8s_informer_get). Objects passed to them
 * are borrowed for the call.
 *
 * The store holds each object as compact JSON text, not as a tree, shaped first (as
 * client-go's SetTransform does): metadata.managedFields dropped unless keep_managed_fields,
 * then the caller's transform; the text is deflated against the first object stored (one
 * kind's objects share most of their bytes). Handlers and mm_k8s_informer_get see the
 * shaped object. */
typedef struct mm_k8s_informer mm_k8s_informer;

typedef struct {
    void (*on_add)(void *ud, struct json_object *obj);
    void (*on_update)(void *ud, struct json_object *old_obj, struct json_object *obj);
    void (*on_delete)(void *ud, struct json_object *obj); /* last known state */
    void *ud;
} mm_k8s_handlers;

/* Edits obj in place before it is stored (drop what the caller never reads: the store keeps
 * only what is left). Runs on the informer's thread for every listed item and watch event,
 * DELETED ones included. The store key and resourceVersion are read before it runs; leave
 * metadata.name and namespace for the handlers. Anything but MM_OK fails that list or watch
 * session, which is retried like any other failure. */
typedef mm_err (*mm_k8s_transform_fn)(void *ud, struct json_object *obj);

typedef struct {
    const char *label_selector;
    const char *field_selector;
    long page_size;          /* 0: 500 */
    long watch_timeout_s;    /* 0: 300..600 s at random per watch, like client-go */
    long backoff_initial_ms; /* 0: 800 ms */
    long backoff_max_ms;     /* 0: 30 s */
    bool keep_managed_fields; /* default: metadata.managedFields is dropped */
    mm_k8s_transform_fn transform; /* NULL: none */
    void *transform_ud;
} mm_k8s_informer_opts;

/* ref: group/version/resource and ns (NULL: all namespaces); name must be NULL. Strings are
 * copied. The informer borrows the client, which must outlive it. */
mm_err mm_k8s_informer_new(mm_k8s_client *c, const mm_k8s_ref *ref,
                           const mm_k8s_informer_opts *o, const mm_k8s_handlers *h,
                           mm_k8s_informer **out, mm_errbuf *eb);
mm_err mm_k8s_informer_start(mm_k8s_informer *inf, mm_errbuf *eb);
void mm_k8s_informer_stop(mm_k8s_informer *inf);   /* idempotent */
/* One list or watch session; *delay_ms: wait this long before the next step. Returns the
 * step's error (already handled: the next step recovers). */
mm_err mm_k8s_informer_step(mm_k8s_informer *inf, long *delay_ms, mm_errbuf *eb);
void mm_k8s_informer_free(mm_k8s_informer *inf);   /* stops first */
bool mm_k8s_informer_synced(mm_k8s_informer *inf); /* the first list completed */
size_t mm_k8s_informer_count(mm_k8s_informer *inf);
/* The stored object, parsed afresh (caller puts it), or NULL (absent or out of memory). ns
 * NULL for cluster-scoped. */
struct json_object *mm_k8s_informer_get(mm_k8s_informer *inf, const char *ns, const char *name);
/* The resourceVersion the next watch resumes from (caller frees), or NULL before a list. */
char *mm_k8s_informer_resource_version(mm_k8s_informer *inf);
/* Counters for tests and metrics. */
typedef struct {
    uint64_t lists, watches, relists_410, resumes, errors, events;
    uint64_t store_bytes; /* what the stored objects' allocations hold now */
} mm_k8s_informer_stats;
void mm_k8s_informer_get_stats(mm_k8s_informer *inf, mm_k8s_informer_stats *out);

/* ---- leader election ------------------------------------------------------------------- */

/* Leader election on a coordination.k8s.io/v1 Lease, following client-go's leaderelection:
 * a candidate creates the Lease or takes it over once it expired (renewTime +
 * leaseDurationSeconds < now, or holderIdentity empty); the leader renews every retry
 * period; when renewals keep failing past the renew deadline it stops leading
 * (on_stopped_leading) and goes back to being a candidate; on stop, a leader releases the
 * Lease (holderIdentity "", leaseDurationSeconds 1) so another takes over at once. Writes
 * are PUTs with the read resourceVersion, so two candidates never both win.
 * The elector talks to the API server over a client of its own (c's configuration and
 * settings, its own connection): a slow list page or a long write on c never delays a
 * renewal. c is only read during mm_k8s_leader_new.
 * Callbacks run on the elector's thread (or the caller's, with mm_k8s_leader_step). */
typedef struct mm_k8s_leader mm_k8s_leader;

typedef struct {
    const char *ns;                 /* the Lease's namespace (required) */
    const char *name;               /* the Lease's name (required) */
    const char *identity;           /* NULL: "<hostname>_<random uuid>" */
    long lease_duration_ms;         /* 0: 15 s */
    long renew_deadline_ms;         /* 0: 10 s (must be < lease duration) */
    long retry_period_ms;           /* 0: 2 s (must be < renew deadline) */
    bool no_release_on_stop;        /* default: release on stop */
    void (*on_started_leading)(void *ud);
    void (*on_stopped_leading)(void *ud);
    void (*on_new_leader)(void *ud, const char *identity); /* another holder observed */
    void *ud;
} mm_k8s_leader_opts;

mm_err mm_k8s_leader_new(mm_k8s_client *c, const mm_k8s_leader_opts *o, mm_k8s_leader **out,
                         mm_errbuf *eb);
mm_err mm_k8s_leader_start(mm_k8s_leader *le, mm_errbuf *eb);
/* Stops the thread; a leader releases the Lease first (unless no_release_on_stop). */
void mm_k8s_leader_stop(mm_k8s_leader *le);
/* One acquire-or-renew attempt from the caller's loop; *delay_ms: when to call again. */
mm_err mm_k8s_leader_step(mm_k8s_leader *le, long *delay_ms, mm_errbuf *eb);
/* Releases the Lease if held (what stop does). */
mm_err mm_k8s_leader_release(mm_k8s_leader *le, mm_errbuf *eb);
void mm_k8s_leader_free(mm_k8s_leader *le); /* stops first */
bool mm_k8s_leader_is_leader(mm_k8s_leader *le);
const char *mm_k8s_leader_identity(const mm_k8s_leader *le); /* borrowed */

/* The Lease spec as read from an object (exposed for tests). Times in microseconds since the
 * epoch (0: null). holder is owned (mm_free). */
typedef struct {
    char *holder;
    long lease_duration_s;
    int64_t acquire_us, renew_us;
    long transitions;
} mm_k8s_lease_spec;
mm_err mm_k8s_lease_spec_from_json(struct json_object *lease, mm_k8s_lease_spec *out,
                                   mm_errbuf *eb);
/* metav1.MicroTime: "2006-01-02T15:04:05.000000Z" (always UTC, 6 fractional digits).
 * buf needs MM_K8S_MICROTIME_LEN + 1 bytes. Parsing also accepts fewer fractional digits
 * and a numeric offset, as Go's RFC 3339 parser does. */
#define MM_K8S_MICROTIME_LEN 27
void mm_k8s_format_microtime(int64_t us, char buf[MM_K8S_MICROTIME_LEN + 1]);
mm_err mm_k8s_parse_time(const char *s, int64_t *us);
int64_t mm_k8s_now_us(void); /* wall clock */

#endif
