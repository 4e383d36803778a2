/* lib/controller: informers, a namespace-keyed work queue with backoff, and the reconcile
 * that renders policies into the ConfigMap, NetworkPolicies and status. */
#include "controller/controller.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "controller/controller_int.h"
#include "policy/policy.h"

#define QUEUE_MAX 100000          /* namespaces waiting at once */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define INDEX_MAX 1000000         /* policies known at once */
/* Items per list page. A page arrives as one json-c tree (about 1 KB a node, 10 KB or more
 * an object) and the three informers list at once at start: 100 keeps that peak near 3 MB
 * where client-go's 500 would make it 15 MB or more; 10,000 objects are still 100 requests. */
#define LIST_PAGE 100
#define OWNED_SYNC_WAIT_MS 5000

/* What a queued namespace waits for, in the order the workers serve them: render first,
 * report after. A render writes the ConfigMap and NetworkPolicies (what the sidecars need)
 * and decides the statuses; the report writes those statuses (and their Events) once no
 * render waits or runs, so a cold start has every namespace rendered before the ~2 writes a
 * policy its statuses and Events take. A periodic resync waits behind both. */
enum { Q_RENDER, Q_REPORT, Q_RESYNC };

typedef struct {
    char *ns;
    uint64_t not_before_ns; /* monotonic; 0: now */
    unsigned failures;
    int kind; /* Q_*: a namespace has at most one report item and one render or resync item */
} qitem;

typedef struct {
    char *ns, *name;
    char *st_rv;      /* the status last written: from which resourceVersion (set_status) */
    uint64_t st_hash; /* and its hash */
    struct {                /* the status its last render decided, for the report to write */
        char *msg;          /* NULL: none */
        const char *reason; /* a literal */
        int64_t gen;        /* of the policy rendered: a newer one is rendered again first */
        size_t rules;
        bool ready, rendered;
    } pend;
} pkey;

struct mm_ctrl {
    mm_ctrl_opts o;
    char *field_manager;
    char *identity;
    struct json_object *monitoring; /* NetworkPolicyPeer array or NULL */
    char **namespaces;              /* NULL-terminated copy; NULL: all */
    size_t n_ns;
    mm_k8s_informer **inf;          /* per watched namespace (or cluster-wide): policies,
                                       ConfigMaps, NetworkPolicies, Deployments (streams on) */
    size_t n_inf, per;

    pthread_mutex_t lock; /* guards queue, failures, index, stopping */
    pthread_cond_t cond;
    qitem *queue;
    size_t nq, capq;
    pkey *index; /* policies known: namespace and name, sorted */
    size_t nidx, capidx;
    bool stopping;
    atomic_bool active;
    /* Workers wait for every informer's list (controller-runtime waits for its caches): a
     * cold start renders a namespace once with all its policies. One the RBAC forbids never
     * lists: after OWNED_SYNC_WAIT_MS only the policies' are waited for. */
    atomic_bool synced, may_run;
    uint64_t started_ns;
    pthread_t workers[MM_CTRL_WORKERS_MAX];
    size_t n_workers; /* running */
    /* The namespaces being reconciled now, one per worker at most: a namespace queued
     * again meanwhile waits, so no two workers write one namespace's objects at once. */
    char *busy[MM_CTRL_WORKERS_MAX];
    size_t rendering; /* renders in flight: a report waits for them, not only for the queue */
    ctrl_events *events;
    uint64_t next_resync_ns;

    ctrl_writer w; /* the client, the field manager and writes_total */
    _Atomic uint64_t reconciles, failures;
    mm_metric *m_reconciles, *m_duration, *m_queue, *m_leader, *m_restarts;
    mm_metric *m_events_dropped;
};

/* ---- queue ---------------------------------------------------------------------------- */

/* Adds ns (dedup). With delay_ms > 0 the item waits; failures carry the item's backoff.
 * kind (Q_*): a periodic resync's item is served after every ready item an event queued, so
 * a change is not stuck behind a thousand namespaces that are only being checked. */
static void enqueue_locked(mm_ctrl *c, const char *ns, long delay_ms, unsigned failures, int kind)
{
    uint64_t when = delay_ms > 0 ? mm_now_ns() + (uint64_t)delay_ms * 1000000ull : 0;
    for (size_t i = 0; i < c->nq; i++)
        if ((c->queue[i].kind == Q_REPORT) == (kind == Q_REPORT) && strcmp(c->queue[i].ns, ns) == 0) {
            if (when < c->queue[i].not_before_ns) /* an event beats a pending retry */
                c->queue[i].not_before_ns = when;
            if (failures > c->queue[i].failures)
                c->queue[i].failures = failures;
            if (kind < c->queue[i].kind) /* an event's render beats a resync */
                c->queue[i].kind = kind;
            return;
        }
    if (c->nq == QUEUE_MAX) {
        mm_log(MM_LOG_ERROR, "work queue full; a periodic resync will catch up", "namespace", ns, NULL);
        return;
    }
    if (c->nq == c->capq) {
        size_t cap = c->capq ? c->capq * 2 : 64;
        qitem *q = mm_realloc(c->queue, cap * sizeof(*q));
        if (!q)
            return; /* the periodic resync will catch up */
        c->queue = q;
        c->capq = cap;
    }
    char *copy = mm_strdup(ns);
    if (!copy)
        return;
    c->queue[c->nq++] = (qitem){copy, when, failures, kind};
    pthread_cond_signal(&c->cond);
}

static void enqueue(mm_ctrl *c, const char *ns)
{
    pthread_mutex_lock(&c->lock);
    enqueue_locked(c, ns, 0, 0, Q_RENDER);
    pthread_mutex_unlock(&c->lock);
}

/* ---- the index of policies ------------------------------------------------------------ */

/* Where (ns, name) is or would go in the index, which is sorted by namespace, then name;
 * name NULL: where the namespace's first policy is. */
static size_t index_find(const mm_ctrl *c, const char *ns, const char *name)
{
    size_t lo = 0, hi = c->nidx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(c->index[mid].ns, ns);
        if (d == 0 && name)
            d = strcmp(c->index[mid].name, name);
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void index_set(mm_ctrl *c, const char *ns, const char *name, bool present)
{
    pthread_mutex_lock(&c->lock);
    size_t i = index_find(c, ns, name);
    bool found = i < c->nidx && strcmp(c->index[i].ns, ns) == 0 && strcmp(c->index[i].name, name) == 0;
    if (found && !present) {
        mm_free(c->index[i].ns);
        mm_free(c->index[i].name);
        mm_free(c->index[i].st_rv);
        mm_free(c->index[i].pend.msg);
        memmove(&c->index[i], &c->index[i + 1], (c->nidx - i - 1) * sizeof(*c->index));
        c->nidx--;
    } else if (!found && present && c->nidx < INDEX_MAX) {
        if (c->nidx == c->capidx) {
            size_t cap = c->capidx ? c->capidx * 2 : 64;
            pkey *v = mm_realloc(c->index, cap * sizeof(*v));
            if (!v)
                goto out;
            c->index = v;
            c->capidx = cap;
        }
        char *a = mm_strdup(ns), *b = mm_strdup(name);
        if (!a || !b) {
            mm_free(a);
            mm_free(b);
            goto out;
        }
        memmove(&c->index[i + 1], &c->index[i], (c->nidx - i) * sizeof(*c->index));
        c->index[i] = (pkey){.ns = a, .name = b};
        c->nidx++;
    }
out:
    pthread_mutex_unlock(&c->lock);
}

/* The index's entry of (ns, name) or NULL; with the lock held. */
static pkey *index_entry(mm_ctrl *c, const char *ns, const char *name)
{
    size_t i = index_find(c, ns, name);
    bool found = i < c->nidx && strcmp(c->index[i].ns, ns) == 0 && strcmp(c->index[i].name, name) == 0;
    return found ? &c->index[i] : NULL;
}

/* Was status h written last from the policy at resourceVersion rv? Then the cache has not
 * seen that patch yet, and the same status is not written (nor its Event sent) again. */
static bool status_written(mm_ctrl *c, const char *ns, const char *name, const char *rv, uint64_t h)
{
    pthread_mutex_lock(&c->lock);
    pkey *k = index_entry(c, ns, name);
    bool same = k && k->st_rv && rv && strcmp(k->st_rv, rv) == 0 && k->st_hash == h;
    pthread_mutex_unlock(&c->lock);
    return same;
}

static void status_wrote(mm_ctrl *c, const char *ns, const char *name, const char *rv, uint64_t h)
{
    char *copy = rv ? mm_strdup(rv) : NULL; /* no memory: the next write is not skipped */
    pthread_mutex_lock(&c->lock);
    pkey *k = index_entry(c, ns, name);
    if (k) {
        mm_free(k->st_rv);
        k->st_rv = copy;
        k->st_hash = h;
        copy = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    mm_free(copy);
}

/* The names of the namespace's policies, sorted (caller frees each and the array). */
static char **index_names(mm_ctrl *c, const char *ns, size_t *n)
{
    char **v = NULL;
    size_t k = 0;
    pthread_mutex_lock(&c->lock);
    size_t first = index_find(c, ns, NULL), end = first;
    while (end < c->nidx && strcmp(c->index[end].ns, ns) == 0)
        end++;
    if ((v = mm_calloc(end - first + 1, sizeof(char *))))
        for (size_t i = first; i < end; i++)
            if ((v[k] = mm_strdup(c->index[i].name)))
                k++;
    pthread_mutex_unlock(&c->lock);
    *n = k;
    return v;
}

/* ---- informer handlers ---------------------------------------------------------------- */

static void pol_add(void *ud, struct json_object *o)
{
    mm_ctrl *c = ud;
    const char *ns = ctrl_meta_str(o, "namespace"), *name = ctrl_meta_str(o, "name");
    if (!ns || !name)
        return;
    index_set(c, ns, name, true);
    enqueue(c, ns);
}

static void pol_update(void *ud, struct json_object *old_obj, struct json_object *o)
{
    if (old_obj && ctrl_status_only(old_obj, o))
        return;
    pol_add(ud, o);
}

static void pol_delete(void *ud, struct json_object *o)
{
    mm_ctrl *c = ud;
    const char *ns = ctrl_meta_str(o, "namespace"), *name = ctrl_meta_str(o, "name");
    if (!ns || !name)
        return;
    index_set(c, ns, name, false);
    enqueue(c, ns);
}

/* A managed object changed or went: the namespace is checked again (drift repair). */
static void owned_any(void *ud, struct json_object *o)
{
    const char *ns = ctrl_meta_str(o, "namespace");
    if (ns)
        enqueue(ud, ns);
}

static void owned_update(void *ud, struct json_object *old_obj, struct json_object *o)
{
    MM_UNUSED(old_obj);
    owned_any(ud, o);
}

/* ---- reconcile ------------------------------------------------------------------------ */

/* Does the policy's status differ from w, and was w not just written from this version (the
 * cache lagging)? The informer keeps the status in short (ctrl_slim): *old_ready and *since
 * are its Ready condition's status and lastTransitionTime (NULL: no Ready condition); *h is
 * w's hash. Sums that cannot be made (memory) differ. */
static bool status_differs(mm_ctrl *c, struct json_object *policy, const ctrl_want_st *w,
                           const char **old_ready, const char **since, uint64_t *h)
{
    struct json_object *st = ctrl_field(policy, "status", NULL);
    const char *ns = ctrl_meta_str(policy, "namespace"), *name = ctrl_meta_str(policy, "name");
    int64_t gen = json_object_get_int64(ctrl_field(policy, "metadata", "generation"));
    const char *want_status = w->ready ? "True" : "False";
    char num[64];

    *old_ready = json_object_get_string(ctrl_field(st, CTRL_ST_READY, NULL));
    *since = json_object_get_string(ctrl_field(st, CTRL_ST_SINCE, NULL));
    if (ctrl_status_says(policy, w))
        return false; /* nothing to say: no write */
    snprintf(num, sizeof(num), "%lld/%zu/%d", (long long)gen, w->rules, (int)w->rendered);
    *h = ctrl_fnv(ctrl_fnv(ctrl_fnv(ctrl_fnv(0xcbf29ce484222325ull, want_status), w->reason), w->message), num);
    return !status_written(c, ns, name, ctrl_meta_str(policy, "resourceVersion"), *h);
}

/* Writes status when it differs from what the policy says now; an Event on Ready changes. */
static mm_err set_status(mm_ctrl *c, struct json_object *policy, const ctrl_want_st *w, mm_errbuf *eb)
{
    const char *ns = ctrl_meta_str(policy, "namespace"), *name = ctrl_meta_str(policy, "name");
    int64_t gen = json_object_get_int64(ctrl_field(policy, "metadata", "generation"));
    const char *want_status = w->ready ? "True" : "False", *old_ready, *since;
    char npname[300], ts[32];
    uint64_t h;
    mm_err rc;

    if (!status_differs(c, policy, w, &old_ready, &since, &h))
        return MM_OK;
    snprintf(npname, sizeof(npname), "maskmesh-%.240s", name);
    /* the transition time moves only when the status of the condition does */
    bool flipped = !old_ready || strcmp(old_ready, want_status) != 0;
    if (flipped)
        ctrl_now_rfc3339(ts);
    else
        snprintf(ts, sizeof(ts), "%s", since ? since : "");

    rc = ctrl_write_status(&c->w, ns, name, gen, w, npname, ts, eb);
    if (rc == MM_OK)
        status_wrote(c, ns, name, ctrl_meta_str(policy, "resourceVersion"), h);
    if (rc == MM_OK && flipped) /* to the sender (events.c): a lost Event is a lost note */
        ctrl_events_post(c->events, ctrl_event_new(c->identity, policy, !w->ready, w->reason, w->message));
    return rc;
}

/* A render's status for policy: kept for the namespace's report item when it differs from
 * the policy's (an older one kept is replaced, or dropped when the status is right now).
 * *pending: set when kept. Fails only for memory. */
static mm_err decide_status(mm_ctrl *c, struct json_object *policy, const ctrl_want_st *w, bool *pending,
                            mm_errbuf *eb)
{
    const char *old_ready, *since;
    uint64_t h;
    bool differs = status_differs(c, policy, w, &old_ready, &since, &h);
    char *msg = differs ? mm_strdup(w->message) : NULL;
    if (differs && !msg)
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    pthread_mutex_lock(&c->lock);
    pkey *k = index_entry(c, ctrl_meta_str(policy, "namespace"), ctrl_meta_str(policy, "name"));
    if (k) {
        mm_free(k->pend.msg);
        k->pend.msg = msg;
        k->pend.reason = w->reason;
        k->pend.gen = json_object_get_int64(ctrl_field(policy, "metadata", "generation"));
        k->pend.rules = w->rules;
        k->pend.ready = w->ready;
        k->pend.rendered = w->rendered;
        *pending |= msg != NULL;
        msg = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    mm_free(msg); /* deleted meanwhile: its delete event renders again */
    return MM_OK;
}

static mm_k8s_informer *informer_for(mm_ctrl *c, int kind, const char *ns)
{
    size_t per = c->per;
    if ((size_t)kind >= per)
        return NULL;
    if (!c->namespaces)
        return c->inf[kind];
    for (size_t i = 0; i < c->n_ns; i++)
        if (strcmp(c->namespaces[i], ns) == 0)
            return c->inf[i * per + (size_t)kind];
    return NULL;
}

/* A namespace's render: its ConfigMap and NetworkPolicies (and stream objects) written where
 * they differ, the statuses decided and left to a report item. */
static mm_err render(mm_ctrl *c, const char *ns, mm_errbuf *eb)
{
    mm_err rc = MM_OK, first = MM_OK;
    size_t n = 0, nvalid = 0;
    bool streams = false, pending = false;
    char **names = index_names(c, ns, &n);
    struct json_object **pols = NULL, **valid = NULL, *cm = NULL, *cm_actual = NULL;
    char **why = NULL, **gwhy = NULL; /* invalid policies; valid ones whose spec.grpc is not */
    mm_buf *sets = NULL; /* per policy: its valid spec.grpc descriptor set, for the sidecars */
    mm_k8s_informer *pinf = informer_for(c, 0, ns), *cinf = informer_for(c, 1, ns),
                    *ninf = informer_for(c, 2, ns);
    mm_errbuf web;

    if (!names || !pinf)
        return mm_errf(eb, names ? MM_EINVAL : MM_ENOMEM, "namespace %s is not watched", ns);
    if (!(pols = mm_calloc(n + 1, sizeof(*pols))) || !(valid = mm_calloc(n + 1, sizeof(*valid))) ||
        !(why = mm_calloc(n + 1, sizeof(*why))) || !(gwhy = mm_calloc(n + 1, sizeof(*gwhy))) ||
        !(sets = mm_calloc(n + 1, sizeof(*sets)))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        mm_buf_init(&sets[i], 0);
    for (size_t i = 0; i < n; i++) {
        mm_policy *model = NULL;
        mm_errbuf peb = {{0}};
        if (!(pols[i] = mm_k8s_informer_get(pinf, ns, names[i])))
            continue; /* gone since indexed: its delete event reconciles again */
        if (mm_policy_from_json(pols[i], names[i], &model, NULL, &peb) == MM_OK) {
            valid[nvalid++] = pols[i]; /* rendered even when its descriptors are wrong: its
                                          other rules still apply, gRPC bodies follow onError */
            gwhy[i] = ctrl_grpc_check(c->o.client, ns, model, &sets[i], &rc);
            if (rc != MM_OK && first == MM_OK) { /* the API failed: reconcile again */
                first = rc;
                mm_errf(eb, rc, "%s/%s: reading spec.grpc's ConfigMap: %s", ns, names[i],
                        mm_strerror(rc));
            }
            rc = MM_OK;
        } else if (!(why[i] = mm_strdup(peb.msg[0] ? peb.msg : "invalid")))
            rc = MM_ENOMEM;
        mm_policy_free(model);
    }
    if (rc != MM_OK) {
        rc = mm_errf(eb, rc, "out of memory");
        goto out;
    }

    /* the ConfigMap: the valid policies, or nothing when there are none */
    cm_actual = mm_k8s_informer_get(cinf, ns, MM_POLICY_CONFIGMAP);
    if (nvalid) {
        if ((rc = mm_policy_render_configmap(valid, nvalid, ns, &cm, eb)) != MM_OK)
            goto out;
        for (size_t i = 0; i < n; i++) /* the descriptor sets beside the policies */
            if (sets[i].len && (rc = mm_policy_render_grpc(cm, names[i], sets[i].data,
                                                            sets[i].len, eb)) != MM_OK)
                goto out;
        if (!cm_actual || !ctrl_same(cm_actual, cm, "data", MM_POLICY_CONFIGMAP_KEY) ||
            !ctrl_same(cm_actual, cm, "binaryData", NULL) ||
            !ctrl_owners_same(cm_actual, cm) || !ctrl_label_same(cm_actual, cm))
            if ((rc = ctrl_apply(&c->w, &ctrl_ref_configmaps, ns, MM_POLICY_CONFIGMAP, cm, &web)) != MM_OK && first == MM_OK) {
                first = rc;
                mm_errf(eb, rc, "%s: ConfigMap %s: %s", ns, MM_POLICY_CONFIGMAP, web.msg);
            }
    } else if (cm_actual) {
        rc = ctrl_delete(&c->w, &ctrl_ref_configmaps, ns, MM_POLICY_CONFIGMAP, ctrl_meta_str(cm_actual, "uid"), &web);
        if (rc != MM_OK && rc != MM_ENOTFOUND && first == MM_OK) {
            first = rc;
            mm_errf(eb, rc, "%s: deleting ConfigMap %s: %s", ns, MM_POLICY_CONFIGMAP, web.msg);
        }
        rc = MM_OK;
    }
    mm_err cm_rc = first;

    /* per policy: its NetworkPolicy when valid, and its status either way */
    for (size_t i = 0; i < n; i++) {
        struct json_object *p = pols[i], *np = NULL, *np_actual = NULL, *rl;
        char npname[300], msg[MM_ERRBUF_SIZE + 64];
        if (!p)
            continue;
        /* json-c asserts on a non-array: an invalid policy may have no rules list */
        rl = ctrl_field(ctrl_field(p, "spec", NULL), "rules", NULL);
        size_t rules = rl && json_object_is_type(rl, json_type_array) ? json_object_array_length(rl) : 0;
        if (why[i]) {
            snprintf(msg, sizeof(msg), "%s", why[i]);
            rc = decide_status(c, p, &(ctrl_want_st){false, false, "InvalidPolicy", msg, rules}, &pending, &web);
        } else {
            snprintf(npname, sizeof(npname), "maskmesh-%.240s", names[i]);
            mm_err ap = cm_rc;
            if ((rc = mm_policy_render_networkpolicy(p, c->monitoring, &np, &web)) == MM_OK) {
                np_actual = mm_k8s_informer_get(ninf, ns, npname);
                if (!np_actual || !ctrl_same(np_actual, np, "spec", NULL) || !ctrl_owners_same(np_actual, np) ||
                    !ctrl_label_same(np_actual, np))
                    if ((rc = ctrl_apply(&c->w, &ctrl_ref_netpols, ns, npname, np, &web)) != MM_OK)
                        ap = rc;
            } else {
                ap = rc;
            }
            if (ap != MM_OK) {
                snprintf(msg, sizeof(msg), "applying failed: %s", cm_rc != MM_OK ? eb->msg : web.msg);
                if (first == MM_OK) {
                    first = ap;
                    mm_errf(eb, ap, "%s/%s: %s", ns, names[i], msg);
                }
                rc = decide_status(c, p, &(ctrl_want_st){false, false, "ApplyFailed", msg, rules}, &pending, &web);
            } else if (gwhy[i]) {
                snprintf(msg, sizeof(msg), "%s", gwhy[i]);
                rc = decide_status(c, p, &(ctrl_want_st){false, false, "InvalidDescriptorSet", msg, rules},
                                   &pending, &web);
            } else {
                snprintf(msg, sizeof(msg), "rendered into ConfigMap %s and NetworkPolicy %s",
                         MM_POLICY_CONFIGMAP, npname);
                rc = decide_status(c, p, &(ctrl_want_st){true, true, "Rendered", msg, rules}, &pending, &web);
                if (rc == MM_OK && c->o.stream_image) {
                    rc = ctrl_reconcile_stream(&c->w, c->o.stream_image, cinf, informer_for(c, 3, ns), p, ns,
                                               names[i], &web);
                    streams |= ctrl_field(ctrl_field(p, "spec", NULL), "streams", NULL) != NULL;
                }
            }
            json_object_put(np);
            json_object_put(np_actual);
        }
        if (rc != MM_OK && rc != MM_ENOTFOUND && first == MM_OK) {
            first = rc;
            mm_errf(eb, rc, "%s/%s: status: %s", ns, names[i], web.msg);
        }
    }
    if (pending) { /* the statuses, once no render waits or runs */
        pthread_mutex_lock(&c->lock);
        enqueue_locked(c, ns, 0, 0, Q_REPORT);
        pthread_mutex_unlock(&c->lock);
    }
    rc = first;
    if (streams) { /* the lag moves without any event: look again after the interval */
        pthread_mutex_lock(&c->lock);
        enqueue_locked(c, ns, c->o.stream_status_s * 1000, 0, Q_RESYNC);
        pthread_mutex_unlock(&c->lock);
    }
out:
    for (size_t i = 0; i < n; i++) {
        json_object_put(pols ? pols[i] : NULL);
        mm_free(why ? why[i] : NULL);
        mm_free(gwhy ? gwhy[i] : NULL);
        if (sets)
            mm_buf_free(&sets[i]); /* calloc'd: an unused one is empty */
        mm_free(names[i]);
    }
    mm_free(sets);
    mm_free(names);
    mm_free(pols);
    mm_free(valid);
    mm_free(why);
    mm_free(gwhy);
    json_object_put(cm);
    json_object_put(cm_actual);
    return rc;
}

/* Moves a decided status from one entry to another (from's is then none) */
static void pending_move(pkey *to, pkey *from)
{
    to->pend = from->pend;
    from->pend.msg = NULL;
}

/* A namespace's report: the statuses its renders decided, written (with an Event when Ready
 * flips), unless the policy changed since (its render is queued and decides anew). */
static mm_err report(mm_ctrl *c, const char *ns, mm_errbuf *eb)
{
    mm_k8s_informer *pinf = informer_for(c, 0, ns);
    mm_err first = MM_OK;
    pkey *todo = NULL;
    size_t n = 0;

    if (!pinf)
        return mm_errf(eb, MM_EINVAL, "namespace %s is not watched", ns);
    pthread_mutex_lock(&c->lock);
    size_t lo = index_find(c, ns, NULL), end = lo;
    while (end < c->nidx && strcmp(c->index[end].ns, ns) == 0)
        end++;
    if ((todo = mm_calloc(end - lo + 1, sizeof(*todo))))
        for (size_t i = lo; i < end; i++) {
            if (!c->index[i].pend.msg)
                continue;
            if (!(todo[n].name = mm_strdup(c->index[i].name))) {
                first = MM_ENOMEM; /* the rest stays pending for the retry */
                break;
            }
            pending_move(&todo[n++], &c->index[i]);
        }
    pthread_mutex_unlock(&c->lock);
    if (!todo || first != MM_OK)
        mm_errf(eb, MM_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        pkey *t = &todo[i];
        mm_errbuf web = {{0}};
        struct json_object *p = mm_k8s_informer_get(pinf, ns, t->name);
        mm_err rc = MM_OK;
        if (p && json_object_get_int64(ctrl_field(p, "metadata", "generation")) == t->pend.gen)
            rc = set_status(c, p, &(ctrl_want_st){t->pend.ready, t->pend.rendered, t->pend.reason, t->pend.msg,
                                             t->pend.rules}, &web);
        json_object_put(p);
        if (rc != MM_OK && rc != MM_ENOTFOUND) {
            if (first == MM_OK) {
                first = rc;
                mm_errf(eb, rc, "%s/%s: status: %s", ns, t->name, web.msg);
            }
            pthread_mutex_lock(&c->lock); /* kept for the retry, unless decided anew */
            pkey *k = index_entry(c, ns, t->name);
            if (k && !k->pend.msg)
                pending_move(k, t);
            pthread_mutex_unlock(&c->lock);
        }
        mm_free(t->name);
        mm_free(t->pend.msg);
    }
    if (!todo)
        return MM_ENOMEM;
    mm_free(todo);
    return first;
}

mm_err mm_ctrl_reconcile(mm_ctrl *c, const char *ns, mm_errbuf *eb)
{
    mm_errbuf reb = {{0}};
    mm_err rc = render(c, ns, eb), st = report(c, ns, &reb);
    if (rc == MM_OK && st != MM_OK)
        mm_errf(eb, st, "%s", reb.msg);
    return rc != MM_OK ? rc : st;
}

/* ---- the worker ----------------------------------------------------------------------- */

static bool is_busy(const mm_ctrl *c, const char *ns)
{
    for (size_t i = 0; i < c->n_workers; i++)
        if (c->busy[i] && strcmp(c->busy[i], ns) == 0)
            return true;
    return false;
}

/* Marks the namespace a worker took (the item's own string, freed by the worker) or drops
 * the mark. Called with the lock held. */
static void set_busy(mm_ctrl *c, char *ns, bool on)
{
    for (size_t i = 0; i < MM_CTRL_WORKERS_MAX; i++)
        if (on ? !c->busy[i] : c->busy[i] == ns) {
            c->busy[i] = on ? ns : NULL;
            return;
        }
}

static void resync_all(mm_ctrl *c)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->nidx; i++) /* the index is sorted: one item a namespace */
        if (i == 0 || strcmp(c->index[i].ns, c->index[i - 1].ns) != 0)
            enqueue_locked(c, c->index[i].ns, 0, 0, Q_RESYNC);
    pthread_mutex_unlock(&c->lock);
}

/* The policies have listed and the owned objects' informers had their time (see synced). */
static bool owned_wait_over(mm_ctrl *c, uint64_t now)
{
    if (now < c->started_ns + OWNED_SYNC_WAIT_MS * 1000000ull)
        return false;
    for (size_t i = 0; i < c->n_inf; i += c->per)
        if (!mm_k8s_informer_synced(c->inf[i]))
            return false;
    return true;
}

static void *worker_main(void *arg)
{
    mm_ctrl *c = arg;
    for (;;) {
        qitem it = {0};
        bool got = false;
        pthread_mutex_lock(&c->lock);
        while (!c->stopping) {
            uint64_t now = mm_now_ns(), wake = now + 1000000000ull;
            if (!atomic_load(&c->may_run)) {
                pthread_mutex_unlock(&c->lock); /* the informers lock: asked without ours */
                bool all = mm_ctrl_synced(c), s = all || owned_wait_over(c, now);
                if (s && !atomic_exchange(&c->may_run, true) && !all)
                    mm_log(MM_LOG_WARN, "reconciling before every cache has listed (RBAC?)", NULL);
                pthread_mutex_lock(&c->lock);
                if (!s) {
                    wake = now + 20000000ull; /* look again in 20 ms */
                    goto wait;
                }
            }
            if (now >= c->next_resync_ns) {
                c->next_resync_ns = now + (uint64_t)c->o.resync_s * 1000000000ull;
                pthread_mutex_unlock(&c->lock);
                resync_all(c);
                pthread_mutex_lock(&c->lock);
            }
            if (atomic_load(&c->active)) {
                /* the first ready render an event queued, else the first ready report,
                   else the first ready resync */
                size_t pick = c->nq;
                for (size_t i = 0; i < c->nq; i++) {
                    if (is_busy(c, c->queue[i].ns) || (c->queue[i].kind == Q_REPORT && c->rendering))
                        continue; /* its worker wakes the others when it is done */
                    if (c->queue[i].not_before_ns <= now) {
                        if (pick == c->nq || c->queue[i].kind < c->queue[pick].kind)
                            pick = i;
                        if (c->queue[i].kind == Q_RENDER)
                            break;
                    } else if (c->queue[i].not_before_ns < wake) {
                        wake = c->queue[i].not_before_ns;
                    }
                }
                if (pick < c->nq) {
                    it = c->queue[pick];
                    c->queue[pick] = c->queue[--c->nq];
                    got = true;
                    set_busy(c, it.ns, true);
                    c->rendering += it.kind != Q_REPORT;
                }
            }
            if (got)
                break;
        wait:;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t until = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + (wake - now);
            ts.tv_sec = (time_t)(until / 1000000000ull);
            ts.tv_nsec = (long)(until % 1000000000ull);
            pthread_cond_timedwait(&c->cond, &c->lock, &ts);
        }
        mm_metric_set(c->m_queue, NULL, (double)c->nq);
        pthread_mutex_unlock(&c->lock);
        uint64_t restarts = 0; /* the informers' own counters, summed: monotonic */
        for (size_t i = 0; i < c->n_inf; i++) {
            mm_k8s_informer_stats st;
            mm_k8s_informer_get_stats(c->inf[i], &st);
            restarts += st.resumes + st.relists_410;
        }
        mm_metric_set(c->m_restarts, NULL, (double)restarts);
        if (!got)
            return NULL;

        mm_errbuf eb = {{0}};
        uint64_t t0 = mm_now_ns();
        mm_err rc = it.kind == Q_REPORT ? report(c, it.ns, &eb) : render(c, it.ns, &eb);
        pthread_mutex_lock(&c->lock);
        set_busy(c, it.ns, false);
        c->rendering -= it.kind != Q_REPORT;
        pthread_cond_broadcast(&c->cond); /* the namespace may be queued again meanwhile */
        pthread_mutex_unlock(&c->lock);
        double secs = (double)(mm_now_ns() - t0) / 1e9;
        mm_metric_observe(c->m_duration, NULL, secs);
        atomic_fetch_add(&c->reconciles, 1);
        if (rc == MM_OK) {
            mm_metric_add(c->m_reconciles, (const char *const[]){"success"}, 1);
        } else {
            /* rate-limited retry: 100 ms doubling to 30 s, per namespace */
            unsigned f = it.failures + 1;
            long delay = BACKOFF_MIN_MS << (f > 9 ? 9 : f - 1);
            if (delay > BACKOFF_MAX_MS)
                delay = BACKOFF_MAX_MS;
            atomic_fetch_add(&c->failures, 1);
            mm_metric_add(c->m_reconciles, (const char *const[]){"error"}, 1);
            mm_log(MM_LOG_WARN, "reconcile failed; retrying", "namespace", it.ns, "error", eb.msg, NULL);
            pthread_mutex_lock(&c->lock);
            enqueue_locked(c, it.ns, delay, f, it.kind == Q_REPORT ? Q_REPORT : Q_RENDER);
            pthread_mutex_unlock(&c->lock);
        }
        mm_free(it.ns);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------ */

mm_err mm_ctrl_new(const mm_ctrl_opts *o, mm_ctrl **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_ctrl *c = mm_calloc(1, sizeof(*c));
    char host[256] = "maskmesh-controller";

    if (!c)
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    pthread_mutex_init(&c->lock, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&c->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    c->o = *o;
    if (!c->o.resync_s)
        c->o.resync_s = 300;
    if (!c->o.stream_status_s)
        c->o.stream_status_s = 30;
    gethostname(host, sizeof(host) - 1);
    if (!(c->field_manager = mm_strdup(o->field_manager ? o->field_manager : "maskmesh-controller")) ||
        !(c->identity = mm_strdup(o->identity ? o->identity : host))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto fail;
    }
    c->w.client = o->client;
    c->w.field_manager = c->field_manager;
    if (o->monitoring_from && *o->monitoring_from) {
        c->monitoring = json_tokener_parse(o->monitoring_from);
        if (!c->monitoring || !json_object_is_type(c->monitoring, json_type_array)) {
            rc = mm_errf(eb, MM_EINVAL, "--monitoring-from: expected a JSON array of NetworkPolicyPeer");
            goto fail;
        }
    }
    if (o->namespaces && o->namespaces[0]) {
        while (o->namespaces[c->n_ns])
            c->n_ns++;
        if (!(c->namespaces = mm_calloc(c->n_ns + 1, sizeof(char *)))) {
            rc = mm_errf(eb, MM_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < c->n_ns; i++)
            if (!(c->namespaces[i] = mm_strdup(o->namespaces[i]))) {
                rc = mm_errf(eb, MM_ENOMEM, "out of memory");
                goto fail;
            }
    }
    size_t scopes = c->namespaces ? c->n_ns : 1;
    c->per = o->stream_image ? 4 : 3;
    if (!(c->inf = mm_calloc(scopes * c->per, sizeof(*c->inf)))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t s = 0; s < scopes; s++) {
        const mm_k8s_ref *kinds[4] = {&ctrl_ref_policies, &ctrl_ref_configmaps, &ctrl_ref_netpols, &ctrl_ref_deploys};
        for (int k = 0; k < (int)c->per; k++) {
            mm_k8s_ref ref = *kinds[k];
            mm_k8s_informer_opts io = {.page_size = LIST_PAGE, .transform = k ? ctrl_owned_slim : ctrl_slim};
            mm_k8s_handlers h = {.ud = c};
            ref.ns = c->namespaces ? c->namespaces[s] : NULL;
            if (k == 0) {
                h.on_add = pol_add;
                h.on_update = pol_update;
                h.on_delete = pol_delete;
            } else {
                io.label_selector = MM_MANAGED_BY_LABEL "=" MM_MANAGED_BY_VALUE;
                h.on_add = owned_any;
                h.on_update = owned_update;
                h.on_delete = owned_any;
            }
            if ((rc = mm_k8s_informer_new(o->client, &ref, &io, &h, &c->inf[c->n_inf], eb)) != MM_OK)
                goto fail;
            c->n_inf++;
        }
    }
    if (o->metrics) {
        static const char *const result[] = {"result", NULL};
        if ((rc = mm_metrics_counter(o->metrics, "maskmesh_controller_reconciles_total",
                                     "Namespace reconciles, by result.", result, &c->m_reconciles)) != MM_OK ||
            (rc = mm_metrics_histogram(o->metrics, "maskmesh_controller_reconcile_duration_seconds",
                                       "Time one namespace reconcile took.", NULL,
                                       mm_metrics_latency_buckets, mm_metrics_latency_buckets_len,
                                       &c->m_duration)) != MM_OK ||
            (rc = mm_metrics_gauge(o->metrics, "maskmesh_controller_queue_depth",
                                   "Namespaces waiting to be reconciled.", NULL, &c->m_queue)) != MM_OK ||
            (rc = mm_metrics_gauge(o->metrics, "maskmesh_controller_leader",
                                   "1 while this replica reconciles.", NULL, &c->m_leader)) != MM_OK ||
            (rc = mm_metrics_counter(o->metrics, "maskmesh_controller_writes_total",
                                     "Applies, deletes and status patches sent to the API server.",
                                     NULL, &c->w.m_writes)) != MM_OK ||
            (rc = mm_metrics_counter(o->metrics, "maskmesh_controller_watch_restarts_total",
                                     "Watches resumed after a drop, plus relists after 410 Gone.",
                                     NULL, &c->m_restarts)) != MM_OK ||
            (rc = mm_metrics_counter(o->metrics, "maskmesh_controller_events_dropped_total",
                                     "Events not recorded: the send queue was full or the server refused them.",
                                     NULL, &c->m_events_dropped)) != MM_OK) {
            mm_errf(eb, rc, "registering the controller's metrics failed");
            goto fail;
        }
    }
    if ((rc = ctrl_events_new(o->client, c->field_manager, c->m_events_dropped, &c->events, eb)) != MM_OK)
        goto fail;
    *out = c;
    return MM_OK;
fail:
    mm_ctrl_free(c);
    return rc;
}

mm_err mm_ctrl_start(mm_ctrl *c, mm_errbuf *eb)
{
    mm_err rc;
    for (size_t i = 0; i < c->n_inf; i++)
        if ((rc = mm_k8s_informer_start(c->inf[i], eb)) != MM_OK)
            return rc;
    c->started_ns = mm_now_ns();
    c->next_resync_ns = c->started_ns + (uint64_t)c->o.resync_s * 1000000000ull;
    int n = c->o.workers > 0 ? c->o.workers : 4;
    if (n > MM_CTRL_WORKERS_MAX)
        n = MM_CTRL_WORKERS_MAX;
    pthread_mutex_lock(&c->lock);
    for (; (int)c->n_workers < n; c->n_workers++)
        if (pthread_create(&c->workers[c->n_workers], NULL, worker_main, c) != 0)
            break;
    pthread_mutex_unlock(&c->lock);
    if ((int)c->n_workers < n)
        return mm_errf(eb, MM_EIO, "cannot start the controller's worker threads (%zu of %d)",
                       c->n_workers, n);
    return MM_OK;
}

void mm_ctrl_set_active(mm_ctrl *c, bool active)
{
    atomic_store(&c->active, active);
    mm_metric_set(c->m_leader, NULL, active ? 1 : 0);
    if (active)
        resync_all(c); /* a new leader looks at everything once */
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

bool mm_ctrl_synced(mm_ctrl *c)
{
    if (atomic_load(&c->synced))
        return true; /* an informer that lost its watch relists into the cache it has */
    for (size_t i = 0; i < c->n_inf; i++)
        if (!mm_k8s_informer_synced(c->inf[i]))
            return false;
    atomic_store(&c->synced, true);
    return true;
}

void mm_ctrl_stop(mm_ctrl *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_broadcast(&c->cond);
    size_t n = c->n_workers;
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < n; i++)
        pthread_join(c->workers[i], NULL);
    pthread_mutex_lock(&c->lock);
    c->n_workers = 0;
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < c->n_inf; i++)
        mm_k8s_informer_stop(c->inf[i]);
}

void mm_ctrl_free(mm_ctrl *c)
{
    if (!c)
        return;
    mm_ctrl_stop(c);
    for (size_t i = 0; i < c->n_inf; i++)
        mm_k8s_informer_free(c->inf[i]);
    mm_free(c->inf);
    ctrl_events_free(c->events);
    for (size_t i = 0; i < c->nq; i++)
        mm_free(c->queue[i].ns);
    mm_free(c->queue);
    for (size_t i = 0; i < c->nidx; i++) {
        mm_free(c->index[i].ns);
        mm_free(c->index[i].name);
        mm_free(c->index[i].st_rv);
        mm_free(c->index[i].pend.msg);
    }
    mm_free(c->index);
    for (size_t i = 0; c->namespaces && i < c->n_ns; i++)
        mm_free(c->namespaces[i]);
    mm_free(c->namespaces);
    json_object_put(c->monitoring);
    mm_free(c->field_manager);
    mm_free(c->identity);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    mm_free(c);
}

void mm_ctrl_get_stats(mm_ctrl *c, mm_ctrl_stats *out)
{
    out->reconciles = atomic_load(&c->reconciles);
    out->failures = atomic_load(&c->failures);
    out->writes = atomic_load(&c->w.writes);
    pthread_mutex_lock(&c->lock);
    out->queued = c->nq;
    pthread_mutex_unlock(&c->lock);
}
