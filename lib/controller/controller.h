/* lib/controller: turns MaskingPolicies into what the cluster enforces. Informers watch the
 * policies and the ConfigMaps and NetworkPolicies maskmesh manages; a work queue keyed by
 * namespace reconciles level-triggered (the same outcome in any event order and after a
 * restart): the namespace's ConfigMap maskmesh-policies holds its valid policies, every valid
 * policy has its NetworkPolicy, every policy says Ready (or why not) in its status. Writes are
 * server-side applies made only when desired and actual differ, so an idle resync writes
 * nothing. An invalid policy is left out of the ConfigMap and its old NetworkPolicy stays as
 * it was: a typo never opens traffic. A policy with spec.streams also gets the ConfigMap and
 * Deployment maskmesh-stream-<policy> (lib/policy's mm_policy_render_stream) and status.stream
 * with the Deployment's ready replicas and the lag its ready pods report on /metrics (read
 * every stream_status_s; stream_lag.c says why from the pods).
 * Depends on: lib/k8s, lib/policy, lib/metrics, lib/common, json-c, libcurl. */
#ifndef MM_CONTROLLER_H
#define MM_CONTROLLER_H

#include "common/common.h"
#include "k8s/k8s.h"
#include "metrics/metrics.h"

typedef struct mm_ctrl mm_ctrl;

typedef struct {
    mm_k8s_client *client;           /* borrowed; must outlive the controller */
    const char *const *namespaces;   /* NULL-terminated; NULL or empty: every namespace */
    const char *field_manager;       /* NULL: "maskmesh-controller" */
    const char *monitoring_from;     /* JSON NetworkPolicyPeer list allowed to reach 15481 */
    long resync_s;                   /* every namespace is reconciled this often; 0: 300 */
    const char *identity;            /* reportingInstance of Events; NULL: the hostname */
    mm_metrics *metrics;             /* borrowed; may be NULL */
    const char *stream_image;        /* maskmesh-stream image: policies with spec.streams get
                                        their Deployment (and the Deployments are watched);
                                        NULL: streams are not rendered */
    int workers;                     /* namespaces reconciled at once (each namespace by one
                                        worker at a time); 0: 4, at most MM_CTRL_WORKERS_MAX */
    long stream_status_s;            /* status.stream's lag is read from the maskers this
                                        often; 0: 30 */
} mm_ctrl_opts;

#define MM_CTRL_WORKERS_MAX 64

mm_err mm_ctrl_new(const mm_ctrl_opts *o, mm_ctrl **out, mm_errbuf *eb);
/* Starts the informers and the worker threads. The worker reconciles only while active. */
mm_err mm_ctrl_start(mm_ctrl *c, mm_errbuf *eb);
/* Leader election turns the worker on and off (without election: on from the start). */
void mm_ctrl_set_active(mm_ctrl *c, bool active);
bool mm_ctrl_synced(mm_ctrl *c); /* every informer listed once */
void mm_ctrl_stop(mm_ctrl *c);
void mm_ctrl_free(mm_ctrl *c); /* stops first; NULL is fine */

/* One reconcile of a namespace, on the caller's thread: its render (ConfigMap, NetworkPolicies),
 * then its report (statuses, Events); the workers run the two as separate queue items, every
 * waiting render before any report. */
mm_err mm_ctrl_reconcile(mm_ctrl *c, const char *ns, mm_errbuf *eb);

typedef struct {
    uint64_t reconciles; /* completed */
    uint64_t failures;   /* ended in an error (retried with backoff) */
    uint64_t writes;     /* applies, deletes and status patches sent */
    uint64_t queued;     /* namespaces waiting now */
} mm_ctrl_stats;
void mm_ctrl_get_stats(mm_ctrl *c, mm_ctrl_stats *out);

#endif
