/* lib/k8s informer: list (paged) then watch from the list's resourceVersion into a local
 * store keyed namespace/name; resume after drops, relist on 410, back off with jitter. */
#include "k8s/k8s_int.h"

#include <string.h>
#include <time.h>

struct mm_k8s_informer {
    mm_k8s_client *c;
    char *group, *version, *resource, *ns, *label_selector, *field_selector;
    mm_k8s_ref ref;
    long page_size, watch_timeout_s, backoff_initial_ms, backoff_max_ms;
    mm_k8s_handlers h;

    pthread_mutex_t lock;      /* guards store, rv, synced and stats */
    struct json_object *store; /* "ns/name" (or "name") -> object */
    char *rv;                  /* where the next watch starts; NULL: list first */
    bool synced;
    mm_k8s_informer_stats stats;

    /* only the thread running the informer touches these */
    long backoff_ms;
    uint64_t rng;
    bool relist;         /* an ERROR event asked for a relist */
    bool watch_failed;   /* an ERROR event other than 410 */
    long event_retry_s;  /* its retryAfterSeconds */
    uint64_t session_events;

    atomic_bool stop;
    pthread_mutex_t wait_lock; /* with wait_cond: interruptible sleeps */
    pthread_cond_t wait_cond;
    pthread_t thread;
    bool running;
};

static uint64_t next_rand(mm_k8s_informer *inf)
{
    /* xorshift64*: jitter only, no need for more */
    inf->rng ^= inf->rng >> 12;
    inf->rng ^= inf->rng << 25;
    inf->rng ^= inf->rng >> 27;
    return inf->rng * 2685821657736338717ULL;
}

static bool copy_opt(const char *s, char **out)
{
    *out = NULL;
    if (!s || !*s)
        return true;
    return (*out = mm_strdup(s)) != NULL;
}

mm_err mm_k8s_informer_new(mm_k8s_client *c, const mm_k8s_ref *ref,
                           const mm_k8s_informer_opts *o, const mm_k8s_handlers *h,
                           mm_k8s_informer **out, mm_errbuf *eb)
{
    static const mm_k8s_informer_opts none;
    mm_k8s_informer *inf = NULL;
    mm_err rc = MM_OK;
    int locks = 0;

    *out = NULL;
    if (!o)
        o = &none;
    if (ref->name || ref->subresource || !ref->resource || !ref->version)
        return mm_errf(eb, MM_EINVAL, "informer: needs group/version/resource and no name");
    if (!(inf = mm_calloc(1, sizeof(*inf))))
        return MM_ENOMEM;
    if (!copy_opt(ref->group, &inf->group) || !copy_opt(ref->version, &inf->version) ||
        !copy_opt(ref->resource, &inf->resource) || !copy_opt(ref->ns, &inf->ns) ||
        !copy_opt(o->label_selector, &inf->label_selector) ||
        !copy_opt(o->field_selector, &inf->field_selector) ||
        !(inf->store = json_object_new_object())) {
        rc = MM_ENOMEM;
        goto out;
    }
    inf->ref.group = inf->group;
    inf->ref.version = inf->version;
    inf->ref.resource = inf->resource;
    inf->ref.ns = inf->ns;
    inf->c = c;
    inf->page_size = o->page_size > 0 ? o->page_size : 500;
    inf->watch_timeout_s = o->watch_timeout_s;
    inf->backoff_initial_ms = o->backoff_initial_ms > 0 ? o->backoff_initial_ms : 800;
    inf->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000;
    if (h)
        inf->h = *h;
    inf->rng = k8s_random64() | 1;
    atomic_init(&inf->stop, false);
    if (pthread_mutex_init(&inf->lock, NULL) != 0)
        goto nolock;
    locks++;
    if (pthread_mutex_init(&inf->wait_lock, NULL) != 0)
        goto nolock;
    locks++;
    if (pthread_cond_init(&inf->wait_cond, NULL) != 0)
        goto nolock;
    locks++;
    *out = inf;
    return MM_OK;
nolock:
    rc = mm_errf(eb, MM_ENOMEM, "informer: cannot create a lock");
out:
    if (locks > 1)
        pthread_mutex_destroy(&inf->wait_lock);
    if (locks > 0)
        pthread_mutex_destroy(&inf->lock);
    json_object_put(inf->store);
    mm_free(inf->group);
    mm_free(inf->version);
    mm_free(inf->resource);
    mm_free(inf->ns);
    mm_free(inf->label_selector);
    mm_free(inf->field_selector);
    mm_free(inf);
    return rc;
}

void mm_k8s_informer_free(mm_k8s_informer *inf)
{
    if (!inf)
        return;
    mm_k8s_informer_stop(inf);
    pthread_cond_destroy(&inf->wait_cond);
    pthread_mutex_destroy(&inf->wait_lock);
    pthread_mutex_destroy(&inf->lock);
    json_object_put(inf->store);
    mm_free(inf->rv);
    mm_free(inf->group);
    mm_free(inf->version);
    mm_free(inf->resource);
    mm_free(inf->ns);
    mm_free(inf->label_selector);
    mm_free(inf->field_selector);
    mm_free(inf);
}

bool mm_k8s_informer_synced(mm_k8s_informer *inf)
{
    pthread_mutex_lock(&inf->lock);
    bool s = inf->synced;
    pthread_mutex_unlock(&inf->lock);
    return s;
}

size_t mm_k8s_informer_count(mm_k8s_informer *inf)
{
    pthread_mutex_lock(&inf->lock);
    size_t n = (size_t)json_object_object_length(inf->store);
    pthread_mutex_unlock(&inf->lock);
    return n;
}

/* The store key of an object: "ns/name", or "name" when cluster-scoped. NULL without a name. */
static char *obj_key(struct json_object *obj)
{
    const char *name = k8s_meta_str(obj, "name"), *ns = k8s_meta_str(obj, "namespace");
    mm_buf b;
    if (!name || !*name)
        return NULL;
    mm_buf_init(&b, 0);
    if ((ns && *ns && mm_buf_printf(&b, "%s/%s", ns, name) != MM_OK) ||
        (!(ns && *ns) && mm_buf_puts(&b, name) != MM_OK)) {
        mm_buf_free(&b);
        return NULL;
    }
    return mm_buf_steal(&b, NULL);
}

struct json_object *mm_k8s_informer_get(mm_k8s_informer *inf, const char *ns, const char *name)
{
    struct json_object *v, *copy = NULL;
    mm_buf b;
    mm_buf_init(&b, 0);
    if ((ns && *ns ? mm_buf_printf(&b, "%s/%s", ns, name) : mm_buf_puts(&b, name)) != MM_OK)
        goto out;
    pthread_mutex_lock(&inf->lock);
    if (json_object_object_get_ex(inf->store, b.data, &v) &&
        json_object_deep_copy(v, &copy, NULL) != 0)
        copy = NULL;
    pthread_mutex_unlock(&inf->lock);
out:
    mm_buf_free(&b);
    return copy;
}

char *mm_k8s_informer_resource_version(mm_k8s_informer *inf)
{
    pthread_mutex_lock(&inf->lock);
    char *rv = inf->rv ? mm_strdup(inf->rv) : NULL;
    pthread_mutex_unlock(&inf->lock);
    return rv;
}

void mm_k8s_informer_get_stats(mm_k8s_informer *inf, mm_k8s_informer_stats *out)
{
    pthread_mutex_lock(&inf->lock);
    *out = inf->stats;
    pthread_mutex_unlock(&inf->lock);
}

static mm_err set_rv(mm_k8s_informer *inf, const char *rv)
{
    char *d = rv ? mm_strdup(rv) : NULL;
    if (rv && !d)
        return MM_ENOMEM;
    pthread_mutex_lock(&inf->lock);
    mm_free(inf->rv);
    inf->rv = d;
    pthread_mutex_unlock(&inf->lock);
    return MM_OK;
}

/* Exponential backoff with up to 50% jitter; a server's Retry-After wins when longer. */
static long backoff(mm_k8s_informer *inf, long retry_after_s)
{
    inf->backoff_ms = inf->backoff_ms ? inf->backoff_ms * 2 : inf->backoff_initial_ms;
    if (inf->backoff_ms > inf->backoff_max_ms)
        inf->backoff_ms = inf->backoff_max_ms;
    long d = inf->backoff_ms + (long)(next_rand(inf) % (uint64_t)(inf->backoff_ms / 2 + 1));
    if (retry_after_s > 0 && retry_after_s * 1000 > d)
        d = retry_after_s * 1000;
    return d;
}

/* ---- list ---------------------------------------------------------------------------------- */

static int collect(void *ud, struct json_object *item)
{
    struct json_object *map = ud;
    char *key = obj_key(item);
    if (!key)
        return 0; /* an item without a name cannot be stored; skip it */
    int bad = k8s_json_add(map, key, json_object_get(item));
    mm_free(key);
    return bad;
}

static mm_err do_list(mm_k8s_informer *inf, long *delay_ms, mm_errbuf *eb)
{
    mm_err rc;
    mm_k8s_result res = {0};
    struct json_object *fresh = json_object_new_object(), *old = NULL;
    char *rv = NULL;
    mm_k8s_list_opts lo = {.label_selector = inf->label_selector,
                           .field_selector = inf->field_selector,
                           .limit = inf->page_size};

    if (!fresh)
        return MM_ENOMEM;
    rc = mm_k8s_list_all(inf->c, &inf->ref, &lo, collect, fresh, &rv, &res, eb);
    if (rc != MM_OK) {
        pthread_mutex_lock(&inf->lock);
        inf->stats.errors++;
        pthread_mutex_unlock(&inf->lock);
        *delay_ms = backoff(inf, res.status.retry_after_s);
        goto out;
    }
    pthread_mutex_lock(&inf->lock);
    old = inf->store;
    inf->store = fresh;
    fresh = NULL;
    mm_free(inf->rv);
    inf->rv = rv;
    rv = NULL;
    inf->stats.lists++;
    pthread_mutex_unlock(&inf->lock);

    /* the differences between what we had and what the list says reach the handlers; the
     * store already holds its own references, old keeps the previous ones alive */
    json_object_object_foreach(old, okey, oval) {
        struct json_object *nv;
        pthread_mutex_lock(&inf->lock);
        bool still = json_object_object_get_ex(inf->store, okey, &nv);
        pthread_mutex_unlock(&inf->lock);
        if (!still && inf->h.on_delete)
            inf->h.on_delete(inf->h.ud, oval);
    }
    pthread_mutex_lock(&inf->lock);
    struct json_object *cur = json_object_get(inf->store); /* this thread alone replaces it */
    pthread_mutex_unlock(&inf->lock);
    json_object_object_foreach(cur, nkey, nval) {
        struct json_object *ov;
        if (!json_object_object_get_ex(old, nkey, &ov)) {
            if (inf->h.on_add)
                inf->h.on_add(inf->h.ud, nval);
        } else {
            const char *a = k8s_meta_str(ov, "resourceVersion"), *b = k8s_meta_str(nval, "resourceVersion");
            if (inf->h.on_update && (!a || !b || strcmp(a, b) != 0))
                inf->h.on_update(inf->h.ud, ov, nval);
        }
    }
    json_object_put(cur);
    pthread_mutex_lock(&inf->lock);
    inf->synced = true;
    pthread_mutex_unlock(&inf->lock);
    inf->backoff_ms = 0;
    *delay_ms = 0;
out:
    json_object_put(old);
    json_object_put(fresh);
    mm_free(rv);
    mm_k8s_result_clear(&res);
    return rc;
}

/* ---- watch ---------------------------------------------------------------------------------- */

static int on_event(void *ud, const mm_k8s_event *ev)
{
    mm_k8s_informer *inf = ud;
    const char *rv = k8s_meta_str(ev->object, "resourceVersion");
    struct json_object *old = NULL;
    char *key = NULL;

    pthread_mutex_lock(&inf->lock);
    inf->stats.events++;
    pthread_mutex_unlock(&inf->lock);
    inf->session_events++;
    switch (ev->type) {
    case MM_K8S_ERROR: {
        mm_k8s_status st;
        if (mm_k8s_status_from_json(ev->object, &st, NULL) == MM_OK && st.code == 410) {
            inf->relist = true; /* match the code: older servers say "Gone", newer "Expired" */
        } else {
            inf->watch_failed = true;
            inf->event_retry_s = st.retry_after_s;
        }
        mm_k8s_status_clear(&st);
        return 1;
    }
    case MM_K8S_BOOKMARK:
        if (rv && *rv && set_rv(inf, rv) != MM_OK)
            inf->watch_failed = true;
        return inf->watch_failed;
    case MM_K8S_ADDED:
    case MM_K8S_MODIFIED:
    case MM_K8S_DELETED:
        break;
    }
    if (!(key = obj_key(ev->object))) {
        inf->watch_failed = true; /* out of memory or a nameless object: start over */
        return 1;
    }
    pthread_mutex_lock(&inf->lock);
    if (json_object_object_get_ex(inf->store, key, &old))
        json_object_get(old);
    int bad;
    if (ev->type == MM_K8S_DELETED) {
        json_object_object_del(inf->store, key);
        bad = 0;
    } else {
        bad = k8s_json_add(inf->store, key, json_object_get(ev->object));
    }
    char *nrv = rv ? mm_strdup(rv) : NULL;
    if (nrv) {
        mm_free(inf->rv);
        inf->rv = nrv;
    }
    pthread_mutex_unlock(&inf->lock);
    mm_free(key);
    if (bad || (rv && !nrv)) {
        json_object_put(old);
        inf->watch_failed = true;
        return 1;
    }
    if (ev->type == MM_K8S_DELETED) {
        if (old && inf->h.on_delete)
            inf->h.on_delete(inf->h.ud, ev->object);
    } else if (old) {
        if (inf->h.on_update)
            inf->h.on_update(inf->h.ud, old, ev->object);
    } else if (inf->h.on_add) {
        inf->h.on_add(inf->h.ud, ev->object);
    }
    json_object_put(old);
    return 0;
}

static mm_err do_watch(mm_k8s_informer *inf, long *delay_ms, mm_errbuf *eb)
{
    mm_k8s_result res = {0};
    char *rv = mm_k8s_informer_resource_version(inf);
    long timeout = inf->watch_timeout_s > 0 ? inf->watch_timeout_s
                                            : 300 + (long)(next_rand(inf) % 301);
    mm_err rc;

    if (!rv)
        return MM_ENOMEM;
    mm_k8s_watch_opts wo = {.resource_version = rv,
                            .label_selector = inf->label_selector,
                            .field_selector = inf->field_selector,
                            .allow_bookmarks = true,
                            .timeout_seconds = timeout,
                            .stop = &inf->stop};
    inf->relist = inf->watch_failed = false;
    inf->event_retry_s = 0;
    inf->session_events = 0;
    pthread_mutex_lock(&inf->lock);
    inf->stats.watches++;
    pthread_mutex_unlock(&inf->lock);
    rc = mm_k8s_watch(inf->c, &inf->ref, &wo, on_event, inf, &res, eb);
    *delay_ms = 0;
    if (rc == MM_OK && inf->relist)
        rc = mm_errf(eb, MM_EGONE, "WATCH %s: ERROR event 410: resourceVersion expired",
                     inf->resource);
    else if (rc == MM_OK && inf->watch_failed)
        rc = mm_errf(eb, MM_EHTTP, "WATCH %s: ERROR event or unusable object", inf->resource);

    if (rc == MM_OK) {
        /* the server ended the watch (timeoutSeconds) or we were told to stop */
        inf->backoff_ms = 0;
        if (!atomic_load(&inf->stop)) {
            pthread_mutex_lock(&inf->lock);
            inf->stats.resumes++;
            pthread_mutex_unlock(&inf->lock);
        }
    } else if (rc == MM_EGONE) {
        pthread_mutex_lock(&inf->lock);
        inf->stats.relists_410++;
        mm_free(inf->rv);
        inf->rv = NULL; /* relist */
        pthread_mutex_unlock(&inf->lock);
    } else {
        long retry = res.status.retry_after_s > 0 ? res.status.retry_after_s : inf->event_retry_s;
        pthread_mutex_lock(&inf->lock);
        inf->stats.errors++;
        if (rc == MM_EIO || rc == MM_ETIMEOUT || res.status.code == 429)
            inf->stats.resumes++; /* a dropped or refused watch resumes from the same RV */
        else {
            mm_free(inf->rv); /* anything else: relist after the backoff */
            inf->rv = NULL;
        }
        pthread_mutex_unlock(&inf->lock);
        /* a watch that delivered events before dropping resumes at once */
        if ((rc == MM_EIO || rc == MM_ETIMEOUT) && inf->session_events > 0 && res.status.code == 0)
            inf->backoff_ms = 0;
        else
            *delay_ms = backoff(inf, retry);
    }
    mm_k8s_result_clear(&res);
    mm_free(rv);
    return rc;
}

mm_err mm_k8s_informer_step(mm_k8s_informer *inf, long *delay_ms, mm_errbuf *eb)
{
    pthread_mutex_lock(&inf->lock);
    bool need_list = inf->rv == NULL;
    pthread_mutex_unlock(&inf->lock);
    *delay_ms = 0;
    return need_list ? do_list(inf, delay_ms, eb) : do_watch(inf, delay_ms, eb);
}

/* ---- own thread ----------------------------------------------------------------------------- */

static void *run(void *arg)
{
    mm_k8s_informer *inf = arg;
    while (!atomic_load(&inf->stop)) {
        long delay = 0;
        mm_errbuf eb = {{0}};
        mm_err rc = mm_k8s_informer_step(inf, &delay, &eb);
        if (rc != MM_OK && !atomic_load(&inf->stop))
            mm_log(rc == MM_EGONE ? MM_LOG_INFO : MM_LOG_WARN, "k8s informer", "resource",
                   inf->resource, "error", eb.msg, NULL);
        if (delay > 0)
            k8s_wait_stop(&inf->wait_lock, &inf->wait_cond, &inf->stop, delay);
    }
    return NULL;
}

mm_err mm_k8s_informer_start(mm_k8s_informer *inf, mm_errbuf *eb)
{
    if (inf->running)
        return mm_errf(eb, MM_EINVAL, "informer: already running");
    atomic_store(&inf->stop, false);
    if (pthread_create(&inf->thread, NULL, run, inf) != 0)
        return mm_errf(eb, MM_EIO, "informer: cannot start a thread");
    inf->running = true;
    return MM_OK;
}

void mm_k8s_informer_stop(mm_k8s_informer *inf)
{
    if (!inf->running)
        return;
    pthread_mutex_lock(&inf->wait_lock);
    atomic_store(&inf->stop, true);
    pthread_cond_broadcast(&inf->wait_cond);
    pthread_mutex_unlock(&inf->wait_lock);
    pthread_join(inf->thread, NULL);
    inf->running = false;
}
