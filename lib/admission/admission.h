/* lib/admission: the sidecar injection as one pure function shared by maskmesh-webhook and
 * `maskctl inject`; AdmissionReview v1 decode/encode; RFC 6902 JSON Patch building (RFC 6901
 * pointer escaping) and applying; workload templates; YAML <-> json-c; the sidecar config.
 * Depends on: lib/policy (policy validation), lib/common, json-c, libyaml, OpenSSL (SHA-256).
 *
 * json-c objects passed in are borrowed and never modified; objects handed out are owned by
 * the caller (json_object_put). */
#ifndef MM_ADMISSION_H
#define MM_ADMISSION_H

#include "common/common.h"

struct json_object;

#define MM_ADM_VERSION        "0.1.0"          /* what the status annotation records */
#define MM_ADM_SIDECAR_NAME   "maskmesh-proxy" /* docs/webhook.md: the sidecar container name */
#define MM_ADM_INIT_NAME      "maskmesh-init"  /* iptables mode's init container */
#define MM_ADM_PROXY_PORT     15480
#define MM_ADM_ADMIN_PORT     15481
/* iptables mode: the app's port, declared again on the sidecar under this name, which the
 * controller's NetworkPolicy allows (lib/policy's MM_SIDECAR_REDIRECT_PORT_NAME) */
#define MM_ADM_REDIRECT_PORT_NAME "maskmesh-redir"
#define MM_ADM_LABEL_INJECT   "maskmesh.io/inject"
#define MM_ADM_ANN_STATUS     "maskmesh.io/status"
#define MM_ADM_ANN_PORT       "maskmesh.io/port"
#define MM_ADM_ANN_CPU        "maskmesh.io/proxy-cpu"
#define MM_ADM_ANN_MEMORY     "maskmesh.io/proxy-memory"
#define MM_ADM_ANN_MODE       "maskmesh.io/mode"
#define MM_ADM_ANN_NATIVE     "maskmesh.io/native-sidecar"
#define MM_ADM_ANN_UPSTREAM   "maskmesh.io/upstream-protocol" /* h1 | h2c: what the app speaks */
#define MM_ADM_REVIEW_MAX     (4u << 20) /* an AdmissionReview body */
#define MM_ADM_CONFIG_MAX     (1u << 20) /* a --config file */

/* ---- sidecar configuration ------------------------------------------------------------ */

typedef enum { MM_ADM_MODE_NAMED_PORT = 0, MM_ADM_MODE_IPTABLES } mm_adm_mode;

typedef struct {
    char *image;       /* sidecar image */
    char *init_image;  /* iptables init container image; NULL: the sidecar image */
    char *pull_policy; /* NULL: left to the cluster default */
    char *cpu_request, *memory_request, *cpu_limit, *memory_limit; /* NULL: not set */
    mm_adm_mode mode;
    bool native;        /* sidecar as an init container with restartPolicy: Always */
    bool hold_app;      /* classic sidecar: postStart waits until the proxy is ready */
    long run_as_user;   /* the sidecar's non-root uid */
} mm_adm_config;

/* Defaults: image registry.example.com/maskmesh/proxy:<version>, 50m/64Mi requests, 128Mi
 * memory limit, named-port, classic sidecar, hold_app, uid 65532. */
mm_err mm_adm_config_init(mm_adm_config *c);
/* Reads a YAML (or JSON) mapping over the defaults: image, initImage, imagePullPolicy,
 * mode, nativeSidecar, holdApplicationUntilProxyStarts, runAsUser,
 * resources: {requests: {cpu, memory}, limits: {cpu, memory}}. Unknown keys are errors. */
mm_err mm_adm_config_load(mm_adm_config *c, const char *path, mm_errbuf *eb);
mm_err mm_adm_config_set(char **field, const char *value); /* replaces a string field */
void mm_adm_config_clear(mm_adm_config *c);
/* Checks a Kubernetes resource quantity ("100m", "64Mi", "1.5", "2G"). */
bool mm_adm_quantity_valid(const char *s);

/* ---- the injection -------------------------------------------------------------------- */

/* Why a pod was (not) injected: a bounded set, used as a metric label. */
typedef enum {
    MM_ADM_INJECTED = 0,
    MM_ADM_REINJECTED,        /* an older injection was replaced (maskctl only) */
    MM_ADM_ALREADY_INJECTED,  /* maskmesh.io/status present (or the sidecar already there) */
    MM_ADM_OPTED_OUT,         /* the pod says maskmesh.io/inject: "false" */
    MM_ADM_NOT_OPTED_IN,      /* neither the pod nor (as vouched for) its namespace opted in */
    MM_ADM_HOST_NETWORK,      /* hostNetwork pods are skipped with a warning */
    MM_ADM_INVALID,           /* an annotation or the pod itself cannot be honoured: deny */
    MM_ADM_REASON_COUNT
} mm_adm_reason;

const char *mm_adm_reason_name(mm_adm_reason r); /* "injected", "already-injected", ... */

/* Reads the Services of the pod's namespace for their appProtocol (docs/http2.md): a JSON
 * array of Service objects, owned by the caller of the function (mm_adm_inject puts it), or
 * NULL with a one-line reason in `why` (API unreachable, forbidden, timed out): the port name
 * then decides and a warning says why. Called at most once per injection, and only when the
 * pod is being injected and its maskmesh.io/upstream-protocol annotation is not set. */
typedef struct json_object *(*mm_adm_services_fn)(void *ud, mm_buf *why);

typedef struct {
    bool namespace_opted_in; /* the caller vouches the namespace has maskmesh.io/inject=true */
    bool reinject;           /* replace an older injection whose hash differs (maskctl) */
    bool no_explain;         /* leave the result's explain NULL (the webhook never shows it) */
    bool patch_text_only;    /* leave the result's patch NULL: patch_json only (the webhook) */
    mm_adm_services_fn services; /* NULL: Services are not read (maskctl inject) */
    void *services_ud;
} mm_adm_opts;

typedef struct {
    mm_adm_reason reason;
    bool allowed;                /* false only for MM_ADM_INVALID */
    struct json_object *patch;   /* JSON Patch array; NULL when nothing changes (and with
                                    opts.patch_text_only) */
    char *patch_json;            /* the same patch as compact JSON text (what the webhook
                                    sends); NULL when nothing changes */
    size_t patch_len;
    char **warnings;             /* for the user: AdmissionResponse.warnings */
    size_t n_warnings;
    char *message;               /* one line: why (not), or the denial */
    char *explain;               /* several lines: what was (or would be) injected and why;
                                    NULL with opts.no_explain */
} mm_adm_result;

void mm_adm_result_clear(mm_adm_result *r);

/* The injection. `pod` is a Pod or a pod template (an object with metadata and spec); it is
 * not modified. Pure: no I/O, no clock, no globals (but what opts->services does). The result's patch, applied to `pod`,
 * gives the injected pod; injecting that again gives MM_ADM_ALREADY_INJECTED. Errors are
 * only MM_ENOMEM (and MM_EINVAL for a pod that is not an object); everything else is a
 * reason in `out`. */
mm_err mm_adm_inject(const struct json_object *pod, const mm_adm_config *cfg,
                     const mm_adm_opts *opts, mm_adm_result *out, mm_errbuf *eb);

/* ---- JSON Patch (RFC 6902) and JSON Pointer (RFC 6901) -------------------------------- */

/* Appends one path segment to a pointer, escaping '~' as ~0 and '/' as ~1. */
mm_err mm_adm_ptr_append(mm_buf *ptr, const char *segment);
/* Applies `patch` (a JSON array of operations) to *doc in place; *doc may be replaced (a
 * patch on the root). Supports add, remove, replace, move, copy, test. On error *doc may be
 * partly patched; the message names the operation index and the path. */
mm_err mm_adm_patch_apply(struct json_object **doc, const struct json_object *patch,
                          mm_errbuf *eb);

/* ---- AdmissionReview v1 --------------------------------------------------------------- */

typedef struct {
    struct json_object *root;    /* the whole review (owned) */
    const char *uid;             /* borrowed from root */
    const char *operation;       /* CREATE, UPDATE, DELETE, CONNECT */
    const char *kind;            /* request.kind.kind */
    const char *namespace_;      /* may be NULL */
    const char *name;            /* may be NULL (generateName) */
    bool dry_run;
    struct json_object *object;  /* request.object, borrowed; may be NULL */
    char *keys;                  /* the tree's object keys (json-c points into them): root and
                                    every part of it live until mm_adm_review_clear, and no
                                    part may be kept (json_object_get) past it */
} mm_adm_review;

/* Parses (strict RFC 8259) and checks the envelope (kind, apiVersion, request.uid). The
 * message says what is wrong and where, e.g. `request.uid: missing`. */
mm_err mm_adm_review_parse(const char *body, size_t len, mm_adm_review *out, mm_errbuf *eb);
/* The same for /mutate-pods: only what mm_adm_mutate reads is built into root (the envelope,
 * the pod's labels, annotations and the parts of its spec the injection looks at); the rest
 * (request.userInfo, request.oldObject, managedFields, images, env, ...) is checked but left
 * out, so the tree costs less to build and free. */
mm_err mm_adm_review_parse_pod(const char *body, size_t len, mm_adm_review *out, mm_errbuf *eb);
void mm_adm_review_clear(mm_adm_review *r);

/* The AdmissionReview response as compact JSON in `out`: same uid, allowed, the patch (JSON
 * text of patch_len bytes, sent base64) with patchType JSONPatch when not NULL, warnings, and
 * a status with `message` and `code` when denied. */
mm_err mm_adm_review_response(mm_buf *out, const char *uid, bool allowed, int code,
                              const char *message, const char *patch_json, size_t patch_len,
                              char *const *warnings, size_t n_warnings,
                              const char *audit_key, const char *audit_value);

/* /mutate-pods: the review in, the response and the outcome out. `reason` is the injection
 * reason (MM_ADM_REASON_COUNT when the request was not a pod the webhook looks at). */
mm_err mm_adm_mutate(const mm_adm_review *rv, const mm_adm_config *cfg, bool namespace_opted_in,
                     mm_buf *out, mm_adm_reason *reason, mm_errbuf *eb);
/* The same with the injection's options (the webhook's Service lookup); no_explain and
 * reinject are forced as /mutate-pods wants them (no text, never re-injected). */
mm_err mm_adm_mutate_opts(const mm_adm_review *rv, const mm_adm_config *cfg,
                          const mm_adm_opts *opts, mm_buf *out, mm_adm_reason *reason,
                          mm_errbuf *eb);
/* /validate-maskingpolicies: parses request.object with lib/policy; denies with the exact
 * error. *allowed says the outcome. DELETE is always allowed. */
mm_err mm_adm_validate_policy(const mm_adm_review *rv, mm_buf *out, bool *allowed,
                              mm_errbuf *eb);

/* ---- workloads and YAML (maskctl inject) ---------------------------------------------- */

/* Finds the pod template of a workload object: the object itself for a Pod,
 * spec.template for Deployment/StatefulSet/DaemonSet/ReplicaSet/Job/ReplicationController,
 * spec.jobTemplate.spec.template for CronJob. Borrowed; NULL for other kinds. */
struct json_object *mm_adm_pod_template(struct json_object *obj);

/* Parses every document of a YAML (or JSON) stream into a JSON array of documents (owned by
 * the caller). Plain scalars are typed as YAML 1.1 core would (null, bools, ints, floats);
 * anchors and aliases are refused. */
mm_err mm_adm_yaml_parse(const char *text, size_t len, const char *filename,
                         struct json_object **docs, mm_errbuf *eb);
/* Appends `docs` (a JSON array) as a multi-document YAML stream ("---" between documents). */
mm_err mm_adm_yaml_emit(const struct json_object *docs, mm_buf *out, mm_errbuf *eb);

#endif
