/* lib/k8s informer: list (paged) then watch from the list's resourceVersion into a local
 * store keyed namespace/name; resume after drops, relist on 410, back off with jitter.
 * The store keeps each object as its compact JSON text (managedFields dropped, then the
 * caller's transform), not as a json-c tree: a tree costs about 1 KB a node, the text a byte
 * a byte. The text is deflated with the first stored object's text as the preset dictionary:
 * one kind's objects share most of their bytes (keys, apiVersion, kind, labels), so an
 * object costs about what differs from the first (10,000 MaskingPolicies: 630 bytes of text
 * each, about 190 deflated). Objects are inflated and parsed again when someone asks. */
#include "k8s/k8s_int.h"

#include <string.h>
#include <time.h>
#include <zlib.h>

/* The dictionary is at most the first object's first DICT_MAX bytes, within the window of
 * 2^ZWBITS bytes (zlib uses a dictionary's last window - 262 bytes); the small window and
 * memLevel keep the informer's deflate state near 64 KB (the defaults: 256 KB). A 631-byte
 * policy against another: 107 bytes at level 6 or 9, 119 at 1; about 10 us to deflate (most
 * of it setting the dictionary), 2-3 us to inflate. */
#define ZWBITS 13
#define ZMEMLEVEL 6
#define DICT_MAX 4096

/* One stored object: key, resourceVersion and text in one allocation. */
typedef struct store_ent {
    struct store_ent *next; /* bucket chain */
    uint64_t hash;
    uint32_t text_len; /* the JSON text's */
    uint32_t z_len;    /* the deflated text's in data; 0: the text itself is there */
    uint16_t rv_off;   /* the resourceVersion's offset in data */
    char data[];       /* key \0 rv \0 (text \0 | deflated text) */
} store_ent;

#define ENT_RV(e) ((e)->data + (e)->rv_off)
#define ENT_BODY(e) ((e)->data + (e)->rv_off + strlen(ENT_RV(e)) + 1)

/* The size of e's allocation */
static size_t ent_size(const store_ent *e)
{
    return (size_t)(ENT_BODY(e) - (const char *)e) + (e->z_len ? e->z_len : e->text_len + 1u);
}

/* A chained hash table of store_ent keyed by "ns/name" (or "name"). */
typedef struct {
    store_ent **b;
    size_t nb, n;
    size_t bytes; /* the entries' allocations, summed (stats.store_bytes) */
} store;

struct mm_k8s_informer {
    mm_k8s_client *c;
    char *group, *version, *resource, *ns, *label_selector, *field_selector;
    mm_k8s_ref ref;
    long page_size, watch_timeout_s, backoff_initial_ms, backoff_max_ms;
    mm_k8s_handlers h;
    bool keep_managed_fields;
    mm_k8s_transform_fn transform;
    void *transform_ud;

    pthread_mutex_t lock; /* guards store, rv, synced, stats, zin and scratch */
    store store;
    /* the preset dictionary: set once, by the informer's thread, before any entry uses it;
       only read after that */
    char *dict;
    size_t dict_len;
    z_stream zout;    /* the informer's thread's deflate state (zout_ok: initialised) */
    bool zout_ok;
    z_stream zin;     /* inflate state for ent_parse, under lock (zin_ok: initialised) */
    bool zin_ok;
    mm_buf scratch;   /* an inflated text, under lock */
    char *rv;             /* where the next watch starts; NULL: list first */
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

/* ---- the store ------------------------------------------------------------------------------ */

static uint64_t hash_key(const char *k)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return h;
}

/* An entry for key holding body (z_len > 0: the deflated text of text_len bytes; else the
 * text itself); NULL when out of memory or too long to describe. */
static store_ent *ent_new(const char *key, const char *rv, const char *body, size_t text_len,
                          size_t z_len)
{
    size_t kl = strlen(key), rl = rv ? strlen(rv) : 0, bl = z_len ? z_len : text_len + 1;
    store_ent *e;
    if (kl >= UINT16_MAX || text_len >= UINT32_MAX || z_len >= UINT32_MAX ||
        !(e = mm_malloc(sizeof(*e) + kl + rl + 2 + bl)))
        return NULL;
    e->next = NULL;
    e->hash = hash_key(key);
    e->text_len = (uint32_t)text_len;
    e->z_len = (uint32_t)z_len;
    e->rv_off = (uint16_t)(kl + 1);
    memcpy(e->data, key, kl + 1);
    memcpy(e->data + kl + 1, rv ? rv : "", rl + 1);
    memcpy(e->data + kl + rl + 2, body, z_len ? z_len : text_len);
    if (!z_len)
        e->data[kl + rl + 2 + text_len] = '\0';
    return e;
}

/* Deflates text against the dictionary into out (the informer's thread only). False when it
 * would not be shorter, or zlib failed: the text is stored as it is. */
static bool deflate_text(mm_k8s_informer *inf, const char *text, size_t len, mm_buf *out)
{
    z_stream *z = &inf->zout;
    if (!inf->zout_ok) {
        if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -ZWBITS, ZMEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
            return false;
        inf->zout_ok = true;
    } else if (deflateReset(z) != Z_OK) {
        return false;
    }
    uLong bound = deflateBound(z, (uLong)len);
    mm_buf_reset(out);
    if (len >= UINT32_MAX || mm_buf_reserve(out, bound) != MM_OK ||
        deflateSetDictionary(z, (const Bytef *)inf->dict, (uInt)inf->dict_len) != Z_OK)
        return false;
    z->next_in = (Bytef *)(uintptr_t)text;
    z->avail_in = (uInt)len;
    z->next_out = (Bytef *)out->data;
    z->avail_out = (uInt)bound;
    if (deflate(z, Z_FINISH) != Z_STREAM_END || z->total_out >= len)
        return false;
    out->len = z->total_out;
    return true;
}

static store_ent **store_slot(const store *s, const char *key, uint64_t h)
{
    if (!s->nb)
        return NULL;
    store_ent **pp = &s->b[h & (s->nb - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->data, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

static store_ent *store_find(const store *s, const char *key)
{
    store_ent **pp = store_slot(s, key, hash_key(key));
    return pp ? *pp : NULL;
}

/* Unlinks and returns the entry under key (the caller frees it), or NULL. */
static store_ent *store_take(store *s, const char *key)
{
    store_ent **pp = store_slot(s, key, hash_key(key)), *e;
    if (!pp || !(e = *pp))
        return NULL;
    *pp = e->next;
    e->next = NULL;
    s->n--;
    s->bytes -= ent_size(e);
    return e;
}

/* Doubles the buckets when the table is full; a failed grow only makes chains longer. */
static void store_grow(store *s)
{
    size_t nb = s->nb ? s->nb * 2 : 64;
    store_ent **b;
    if (s->n < s->nb || nb > SIZE_MAX / sizeof(*b) || !(b = mm_calloc(nb, sizeof(*b))))
        return;
    for (size_t i = 0; i < s->nb; i++)
        for (store_ent *e = s->b[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    mm_free(s->b);
    s->b = b;
    s->nb = nb;
}

/* Inserts e, returning the entry it replaced (the caller frees it) or NULL. MM_ENOMEM only
 * when the table has no buckets at all and cannot get any; e is then still the caller's. */
static mm_err store_put(store *s, store_ent *e, store_ent **replaced)
{
    store_ent **pp;
    *replaced = NULL;
    store_grow(s);
    if (!(pp = store_slot(s, e->data, e->hash)))
        return MM_ENOMEM;
    s->bytes += ent_size(e);
    if (*pp) {
        *replaced = *pp;
        e->next = (*pp)->next;
        (*replaced)->next = NULL;
        s->bytes -= ent_size(*replaced);
    } else {
        e->next = NULL;
        s->n++;
    }
    *pp = e;
    return MM_OK;
}

static void store_clear(store *s)
{
    for (size_t i = 0; i < s->nb; i++)
        for (store_ent *e = s->b[i], *next; e; e = next) {
            next = e->next;
            mm_free(e);
        }
    mm_free(s->b);
    *s = (store){0};
}

/* The stored object as a fresh tree (the caller puts it); NULL when out of memory. With
 * the informer's lock held (its inflate state and scratch buffer). */
static struct json_object *ent_parse(mm_k8s_informer *inf, const store_ent *e)
{
    struct json_object *o = NULL;
    const char *body = ENT_BODY(e);
    if (!e->z_len)
        return k8s_json_parse(body, e->text_len, &o, NULL) == MM_OK ? o : NULL;
    z_stream *z = &inf->zin;
    if (!inf->zin_ok) {
        if (inflateInit2(z, -ZWBITS) != Z_OK)
            return NULL;
        inf->zin_ok = true;
    } else if (inflateReset(z) != Z_OK) {
        return NULL;
    }
    mm_buf_reset(&inf->scratch);
    if (mm_buf_reserve(&inf->scratch, (size_t)e->text_len + 1) != MM_OK ||
        inflateSetDictionary(z, (const Bytef *)inf->dict, (uInt)inf->dict_len) != Z_OK)
        return NULL;
    z->next_in = (Bytef *)(uintptr_t)body;
    z->avail_in = e->z_len;
    z->next_out = (Bytef *)inf->scratch.data;
    z->avail_out = e->text_len;
    if (inflate(z, Z_FINISH) != Z_STREAM_END || z->total_out != e->text_len)
        return NULL; /* our own bytes: only memory fails here */
    return k8s_json_parse(inf->scratch.data, e->text_len, &o, NULL) == MM_OK ? o : NULL;
}

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
        !copy_opt(o->field_selector, &inf->field_selector)) {
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
    inf->keep_managed_fields = o->keep_managed_fields;
    inf->transform = o->transform;
    inf->transform_ud = o->transform_ud;
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
    store_clear(&inf->store);
    if (inf->zout_ok)
        deflateEnd(&inf->zout);
    if (inf->zin_ok)
        inflateEnd(&inf->zin);
    mm_buf_free(&inf->scratch);
    mm_free(inf->dict);
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
    size_t n = inf->store.n;
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
    struct json_object *obj = NULL;
    store_ent *e;
    mm_buf b;
    mm_buf_init(&b, 0);
    if ((ns && *ns ? mm_buf_printf(&b, "%s/%s", ns, name) : mm_buf_puts(&b, name)) != MM_OK)
        goto out;
    pthread_mutex_lock(&inf->lock);
    if ((e = store_find(&inf->store, b.data)))
        obj = ent_parse(inf, e);
    pthread_mutex_unlock(&inf->lock);
out:
    mm_buf_free(&b);
    return obj;
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
    out->store_bytes = inf->store.bytes;
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

/* ---- objects in, entries out ------------------------------------------------------------------ */

/* Shapes obj (owned by the informer for the moment: a watch event's object or an item of a
 * list page about to be freed) as it is stored and handed to the handlers: managedFields
 * dropped unless kept, then the caller's transform. With ent_out, also its store entry.
 * *key_out: its store key (caller frees). MM_EINVAL for an object without a name. */
static mm_err shape(mm_k8s_informer *inf, struct json_object *obj, char **key_out,
                    store_ent **ent_out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    const char *rvp = k8s_meta_str(obj, "resourceVersion"), *text;
    char *key = NULL, *rv = NULL;
    size_t len = 0;
    mm_buf zbuf;

    mm_buf_init(&zbuf, 0);
    *key_out = NULL;
    if (ent_out)
        *ent_out = NULL;
    const char *name = k8s_meta_str(obj, "name");
    if (!name || !*name) {
        rc = mm_errf(eb, MM_EINVAL, "%s: an object without metadata.name", inf->resource);
        goto out;
    }
    if (!(key = obj_key(obj))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    /* copied: the transform may drop or change what it points into */
    if (rvp && !(rv = mm_strdup(rvp))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    struct json_object *meta = k8s_json_get(obj, "metadata", json_type_object);
    if (meta && !inf->keep_managed_fields)
        json_object_object_del(meta, "managedFields");
    if (inf->transform && (rc = inf->transform(inf->transform_ud, obj)) != MM_OK) {
        mm_errf(eb, rc, "%s %s: the informer's transform failed", inf->resource, key);
        goto out;
    }
    if (ent_out) {
        if (!(text = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len))) {
            rc = mm_errf(eb, MM_ENOMEM, "out of memory");
            goto out;
        }
        if (!inf->dict && len) { /* the first object: every later one is deflated against it */
            size_t dl = len < DICT_MAX ? len : DICT_MAX;
            char *d = mm_malloc(dl);
            if (d) {
                memcpy(d, text, dl);
                pthread_mutex_lock(&inf->lock); /* readers take the lock before using it */
                inf->dict = d;
                inf->dict_len = dl;
                pthread_mutex_unlock(&inf->lock);
            }
        }
        bool z = inf->dict && deflate_text(inf, text, len, &zbuf);
        if (!(*ent_out = ent_new(key, rv, z ? zbuf.data : text, len, z ? zbuf.len : 0))) {
            rc = mm_errf(eb, MM_ENOMEM, "out of memory");
            goto out;
        }
    }
    *key_out = key;
    key = NULL;
out:
    mm_buf_free(&zbuf);
    mm_free(key);
    mm_free(rv);
    return rc;
}

/* ---- list ---------------------------------------------------------------------------------- */

typedef struct {
    mm_k8s_informer *inf;
    store fresh;
    mm_errbuf eb; /* why collect stopped the list */
    mm_err rc;
} list_ctx;

static int collect(void *ud, struct json_object *item)
{
    list_ctx *lc = ud;
    store_ent *e = NULL, *dup = NULL;
    char *key = NULL;
    if (!item) {
        store_clear(&lc->fresh); /* the list starts over: items gone meanwhile must not stay */
        return 0;
    }
    const char *name = k8s_meta_str(item, "name");
    if (!name || !*name)
        return 0; /* an item without a name cannot be stored; skip it */
    mm_err rc = shape(lc->inf, item, &key, &e, &lc->eb);
    if (rc == MM_OK) {
        if (store_put(&lc->fresh, e, &dup) == MM_OK)
            e = NULL; /* stored; dup: the same key twice in one list, the last wins */
        else
            rc = mm_errf(&lc->eb, MM_ENOMEM, "out of memory");
    }
    mm_free(e);
    mm_free(dup);
    mm_free(key);
    lc->rc = rc;
    return rc != MM_OK;
}

/* Hands one store difference to a handler: the entries parsed into fresh trees. */
static void diff_handler(mm_k8s_informer *inf, const store_ent *old, const store_ent *cur)
{
    pthread_mutex_lock(&inf->lock); /* the inflate state's */
    struct json_object *a = old ? ent_parse(inf, old) : NULL, *b = cur ? ent_parse(inf, cur) : NULL;
    pthread_mutex_unlock(&inf->lock);
    if ((old && !a) || (cur && !b)) {
        mm_log(MM_LOG_ERROR, "k8s informer: out of memory; a change was not handed on",
               "resource", inf->resource, "key", old ? old->data : cur->data, NULL);
    } else if (!cur) {
        if (inf->h.on_delete)
            inf->h.on_delete(inf->h.ud, a);
    } else if (!old) {
        if (inf->h.on_add)
            inf->h.on_add(inf->h.ud, b);
    } else if (inf->h.on_update) {
        inf->h.on_update(inf->h.ud, a, b);
    }
    json_object_put(a);
    json_object_put(b);
}

static mm_err do_list(mm_k8s_informer *inf, long *delay_ms, mm_errbuf *eb)
{
    mm_err rc;
    mm_k8s_result res = {0};
    list_ctx lc = {.inf = inf};
    store old = {0};
    char *rv = NULL;
    mm_k8s_list_opts lo = {.label_selector = inf->label_selector,
                           .field_selector = inf->field_selector,
                           .limit = inf->page_size};

    rc = mm_k8s_list_all(inf->c, &inf->ref, &lo, collect, &lc, &rv, &res, eb);
    if (rc == MM_EINVAL && lc.rc != MM_OK)
        rc = mm_errf(eb, lc.rc, "LIST %s: %s", inf->resource, lc.eb.msg); /* collect stopped it */
    if (rc != MM_OK) {
        pthread_mutex_lock(&inf->lock);
        inf->stats.errors++;
        pthread_mutex_unlock(&inf->lock);
        *delay_ms = backoff(inf, res.status.retry_after_s);
        goto out;
    }
    mm_k8s_result_clear(&res); /* the last page: not needed while the handlers run */
    pthread_mutex_lock(&inf->lock);
    old = inf->store;
    inf->store = lc.fresh;
    lc.fresh = (store){0};
    mm_free(inf->rv);
    inf->rv = rv;
    rv = NULL;
    inf->stats.lists++;
    pthread_mutex_unlock(&inf->lock);

    /* the differences between what we had and what the list says reach the handlers. Only
     * this thread changes the store, so it reads it without the lock. */
    for (size_t i = 0; i < old.nb; i++)
        for (const store_ent *e = old.b[i]; e; e = e->next)
            if (!store_find(&inf->store, e->data))
                diff_handler(inf, e, NULL);
    for (size_t i = 0; i < inf->store.nb; i++)
        for (const store_ent *e = inf->store.b[i]; e; e = e->next) {
            const store_ent *o = store_find(&old, e->data);
            if (!o || !*ENT_RV(o) || !*ENT_RV(e) || strcmp(ENT_RV(o), ENT_RV(e)) != 0)
                diff_handler(inf, o, e);
        }
    pthread_mutex_lock(&inf->lock);
    inf->synced = true;
    pthread_mutex_unlock(&inf->lock);
    inf->backoff_ms = 0;
    *delay_ms = 0;
out:
    store_clear(&old);
    store_clear(&lc.fresh);
    mm_free(rv);
    mm_k8s_result_clear(&res);
    return rc;
}

/* ---- watch ---------------------------------------------------------------------------------- */

int k8s_informer_on_event(void *ud, const mm_k8s_event *ev)
{
    mm_k8s_informer *inf = ud;
    const char *rv = k8s_meta_str(ev->object, "resourceVersion");
    struct json_object *old_obj = NULL;
    store_ent *e = NULL, *old = NULL;
    char *key = NULL, *nrv = NULL;
    mm_errbuf eb = {{0}};
    bool failed = true;

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
    /* rv first: shape may change the object it points into */
    if ((rv && !(nrv = mm_strdup(rv))) ||
        shape(inf, ev->object, &key, ev->type == MM_K8S_DELETED ? NULL : &e, &eb) != MM_OK)
        goto out; /* out of memory, a nameless object or a failed transform: start over */
    pthread_mutex_lock(&inf->lock);
    const store_ent *cur = store_find(&inf->store, key);
    /* the old state is parsed before the store changes: a failure leaves the store as it
     * was, and the informer starts over with a relist that hands the change on */
    bool parse_ok = !cur || ev->type == MM_K8S_DELETED || !inf->h.on_update ||
                    (old_obj = ent_parse(inf, cur)) != NULL;
    bool put_ok = parse_ok;
    if (parse_ok && ev->type == MM_K8S_DELETED)
        old = store_take(&inf->store, key);
    else if (parse_ok && store_put(&inf->store, e, &old) == MM_OK)
        e = NULL;
    else
        put_ok = false;
    if (put_ok && nrv) {
        mm_free(inf->rv);
        inf->rv = nrv;
        nrv = NULL;
    }
    pthread_mutex_unlock(&inf->lock);
    if (!put_ok)
        goto out;
    failed = false;
    if (ev->type == MM_K8S_DELETED) {
        if (old && inf->h.on_delete)
            inf->h.on_delete(inf->h.ud, ev->object);
    } else if (old) {
        if (inf->h.on_update)
            inf->h.on_update(inf->h.ud, old_obj, ev->object);
    } else if (inf->h.on_add) {
        inf->h.on_add(inf->h.ud, ev->object);
    }
out:
    if (failed) {
        inf->watch_failed = true;
        mm_log(MM_LOG_WARN, "k8s informer: an event could not be stored; resuming", "resource",
               inf->resource, "error", eb.msg[0] ? eb.msg : "out of memory", NULL);
    }
    json_object_put(old_obj);
    mm_free(old);
    mm_free(e);
    mm_free(key);
    mm_free(nrv);
    return failed;
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
    rc = mm_k8s_watch(inf->c, &inf->ref, &wo, k8s_informer_on_event, inf, &res, eb);
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
