/* lib/controller: the JSON helpers for the objects the controller stores and compares
 * (objects.c; pure functions of their arguments, shared by the informers and reconcile), the
 * Event sender (events.c), the gRPC descriptor check (grpcref.c), the maskers' lag for
 * status.stream (stream_lag.c), the writes (writes.c) and a policy's stream objects
 * (stream.c). */
#ifndef MM_CONTROLLER_INT_H
#define MM_CONTROLLER_INT_H

#include <json-c/json.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "k8s/k8s.h"
#include "metrics/metrics.h"
#include "policy/policy.h"

/* metadata.<field> of o as a string, or NULL */
const char *ctrl_meta_str(struct json_object *o, const char *field);
/* Deletes the members of object o whose keys are not among keys[0..n). */
void ctrl_keep_only(struct json_object *o, const char *const *keys, size_t n);
/* Informer transforms: what the policy informer keeps (ctrl_slim) and what the ConfigMap and
 * NetworkPolicy informers keep (ctrl_owned_slim: digests in place of the rendered content). */
mm_err ctrl_slim(void *ud, struct json_object *o);
mm_err ctrl_owned_slim(void *ud, struct json_object *o);
/* What a policy's status says, or what reconcile wants it to say, as status_differs
 * compares them; ctrl_slim keeps two sums of it (ctrl_status_sums) in place of the status:
 * status.ready (the Ready condition's status), status.since (its lastTransitionTime),
 * status.sum (without the two refs: a status not rendered does not compare them) and
 * status.sumRefs; no Ready condition: none of the four. */
typedef struct {
    const char *status, *reason, *message; /* the Ready condition's; NULL reads as "" */
    int64_t cond_gen;                      /* its observedGeneration */
    int64_t gen, rules;                    /* status.observedGeneration, ruleCount */
    const char *config_map, *network_policy;
} ctrl_status_in;
#define CTRL_STATUS_SUM_LEN 25 /* 24 hex digits and NUL */
#define CTRL_ST_READY "ready"
#define CTRL_ST_SINCE "since"
#define CTRL_ST_SUM "sum"
#define CTRL_ST_SUM_REFS "sumRefs"
mm_err ctrl_status_sums(const ctrl_status_in *s, char sum[CTRL_STATUS_SUM_LEN],
                        char sum_refs[CTRL_STATUS_SUM_LEN]);
struct ctrl_want_st;
/* Does the status of policy, as ctrl_slim keeps it, say what w wants (the Ready condition,
 * observedGeneration at the policy's generation, ruleCount and, when rendered, the ConfigMap
 * and the NetworkPolicy maskmesh-<name>)? Then no status is written. */
bool ctrl_status_says(struct json_object *policy, const struct ctrl_want_st *w);
/* o.a, or o.a.b when b is not NULL; NULL when missing */
struct json_object *ctrl_field(struct json_object *o, const char *a, const char *b);
/* Does a stored object (digests, from ctrl_owned_slim) hold what desired renders at a(.b)? */
bool ctrl_same(struct json_object *actual, struct json_object *desired, const char *a, const char *b);
bool ctrl_owners_same(struct json_object *actual, struct json_object *desired);
bool ctrl_label_same(struct json_object *actual, struct json_object *desired);
/* Do two versions of a policy differ only in status and resourceVersion? */
bool ctrl_status_only(struct json_object *old_obj, struct json_object *o);
/* FNV-1a 64 over s and a separator byte, continuing from h (0xcbf29ce484222325 to start) */
uint64_t ctrl_fnv(uint64_t h, const char *s);
/* The time now as RFC 3339 in UTC, to the second (a condition's lastTransitionTime) */
void ctrl_now_rfc3339(char out[32]);

/* ---- events.c: Events sent by a thread of their own, off the reconcile path ---------- */
typedef struct ctrl_events ctrl_events;
/* dropped (may be NULL) counts the Events that never reached the server */
mm_err ctrl_events_new(mm_k8s_client *client, const char *field_manager, mm_metric *dropped,
                       ctrl_events **out, mm_errbuf *eb);
/* Takes e (an events.k8s.io/v1 Event; NULL: nothing); dropped and counted when the queue
 * is full. */
void ctrl_events_post(ctrl_events *ev, struct json_object *e);
/* An events.k8s.io/v1 Event regarding policy, from reporting instance identity; NULL when
 * out of memory. */
struct json_object *ctrl_event_new(const char *identity, struct json_object *policy, bool warning,
                                   const char *reason, const char *note);
/* Sends what is queued for a short while, drops the rest; NULL is fine. */
void ctrl_events_free(ctrl_events *ev);

/* grpcref.c: a policy's spec.grpc descriptor set read from its ConfigMap (namespace ns) and
 * checked against the policy's fields paths: NULL when fine or when there is no spec.grpc,
 * else the message for the policy's status (caller frees). When fine, *set holds the set's
 * bytes (the caller's buffer, initialised; left empty otherwise), for
 * mm_policy_render_grpc. *rc is MM_OK, or the API's
 * or the allocator's error (the namespace is reconciled again). */
char *ctrl_grpc_check(mm_k8s_client *k, const char *ns, const mm_policy *p, mm_buf *set,
                      mm_err *rc);


/* stream_lag.c: what the maskers of a stream Deployment report on /metrics, summed. */
typedef struct {
    bool known;                /* at least one ready pod answered */
    int64_t pods;              /* pods that answered */
    int64_t lag;               /* records behind, over every partition reported */
    int64_t max_partition_lag; /* the partition furthest behind */
    int64_t partitions;        /* distinct input partitions reported */
    int64_t stopped;           /* partitions stopped at a record that could not be masked */
} ctrl_lag;
/* Reads /metrics of every ready pod matching dep's spec.selector in ns (at their container
 * port named "admin"). A pod that does not answer is skipped (logged); an error is only a
 * failed pod list or memory. */
mm_err ctrl_stream_lag(mm_k8s_client *client, const char *ns, struct json_object *dep,
                       ctrl_lag *out, mm_errbuf *eb);
/* The same sum over exposition texts already read (tests). */
mm_err ctrl_lag_parse(const char *const *texts, size_t n, ctrl_lag *out, mm_errbuf *eb);

/* ---- writes.c: every write the reconcile makes, counted ------------------------------ */
/* fieldValidation of every write (and Event). Not the server's default (Warn): that decodes
 * each body a second time, strictly, for Warning headers the controller never reads (on a
 * 10,000-policy cold start the second YAML pass of the applies was 6.2% of kube-apiserver's
 * CPU, its profile in bench/controller-live.sh); an apply's unknown field is still refused,
 * by its typed conversion (kube-apiserver 1.37: 500 "field not declared in schema"). */
#define CTRL_FIELD_VALIDATION "Ignore"
extern const mm_k8s_ref ctrl_ref_policies, ctrl_ref_configmaps, ctrl_ref_netpols, ctrl_ref_deploys;
typedef struct {
    mm_k8s_client *client; /* borrowed */
    const char *field_manager;
    _Atomic uint64_t writes;
    mm_metric *m_writes; /* may be NULL */
} ctrl_writer;
/* A server-side apply of obj (forced: the controller owns what it renders) */
mm_err ctrl_apply(ctrl_writer *w, const mm_k8s_ref *kind, const char *ns, const char *name,
                  struct json_object *obj, mm_errbuf *eb);
/* A merge patch of a policy's status subresource */
mm_err ctrl_patch_status(ctrl_writer *w, const char *ns, const char *name, const mm_buf *patch,
                         mm_errbuf *eb);
/* The status a render decides for a policy */
typedef struct ctrl_want_st {
    bool ready, rendered;
    const char *reason; /* a literal */
    const char *message;
    size_t rules;
} ctrl_want_st;
/* Patches a policy's status to w (its Ready condition observed at gen, transition time ts;
 * when rendered, naming ConfigMap maskmesh-policies and NetworkPolicy npname). */
mm_err ctrl_write_status(ctrl_writer *wr, const char *ns, const char *name, int64_t gen,
                         const ctrl_want_st *w, const char *npname, const char *ts, mm_errbuf *eb);
/* A delete, only of the object with that uid (NULL: any) */
mm_err ctrl_delete(ctrl_writer *w, const mm_k8s_ref *kind, const char *ns, const char *name,
                   const char *uid, mm_errbuf *eb);

/* stream.c: a valid policy's stream: with spec.streams, its ConfigMap and Deployment (applied
 * when the rendered label or owners differ) and status.stream (patched when it differs);
 * without, the two objects are deleted if a former spec.streams left them. cms and deps are
 * the namespace's ConfigMap and Deployment informers. */
mm_err ctrl_reconcile_stream(ctrl_writer *w, const char *image, mm_k8s_informer *cms,
                             mm_k8s_informer *deps, struct json_object *p, const char *ns,
                             const char *name, mm_errbuf *eb);

#endif
