/* lib/controller: the stored objects, slimmed and digested, and their comparison with what
 * reconcile renders. Nothing here knows the controller's state. */
#include "controller/controller_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"

#define DIGEST_LEN 64 /* "sha256:" + 43 base64 characters, with room */

const char *ctrl_meta_str(struct json_object *o, const char *field)
{
    struct json_object *m = NULL, *v = NULL;
    if (!json_object_object_get_ex(o, "metadata", &m) || !json_object_object_get_ex(m, field, &v))
        return NULL;
    return json_object_get_string(v);
}

/* Deletes the members of object o whose keys are not among keys[0..n). */
void ctrl_keep_only(struct json_object *o, const char *const *keys, size_t n)
{
    struct json_object_iterator it = json_object_iter_begin(o), end = json_object_iter_end(o);
    while (!json_object_iter_equal(&it, &end)) {
        const char *k = json_object_iter_peek_name(&it);
        size_t i = 0;
        while (i < n && strcmp(k, keys[i]) != 0)
            i++;
        json_object_iter_next(&it); /* before k's entry goes */
        if (i == n)
            json_object_object_del(o, k);
    }
}

/* The sum of what a policy's status says that reconcile compares with the status it wants
 * (status_differs): the Ready condition's status, reason, message and observedGeneration,
 * status.observedGeneration and ruleCount, and with refs also configMap and networkPolicy,
 * each read as that comparison reads them (a missing string is "", a number json-c's int64).
 * SHA-256 over their JSON text, the first STATUS_SUM_BYTES bytes in hex. */
#define STATUS_SUM_BYTES 12
static mm_err status_sum(const ctrl_status_in *s, bool refs, char out[CTRL_STATUS_SUM_LEN])
{
    static const char hex[] = "0123456789abcdef";
    const char *str[] = {s->status, s->reason, s->message, s->config_map, s->network_policy};
    unsigned char md[32];
    mm_buf b;
    mm_err rc = MM_OK;
    mm_buf_init(&b, 0);
    for (size_t i = 0; i < (refs ? 5u : 3u) && rc == MM_OK; i++)
        rc = mm_buf_put_json_str(&b, str[i] ? str[i] : "", str[i] ? strlen(str[i]) : 0);
    if (rc == MM_OK)
        rc = mm_buf_printf(&b, "%lld,%lld,%lld", (long long)s->cond_gen, (long long)s->gen,
                           (long long)s->rules);
    if (rc == MM_OK && !EVP_Digest(b.data, b.len, md, NULL, EVP_sha256(), NULL))
        rc = MM_ENOMEM;
    for (size_t i = 0; rc == MM_OK && i < STATUS_SUM_BYTES; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[rc == MM_OK ? 2 * STATUS_SUM_BYTES : 0] = '\0';
    mm_buf_free(&b);
    return rc;
}

mm_err ctrl_status_sums(const ctrl_status_in *s, char sum[CTRL_STATUS_SUM_LEN],
                        char sum_refs[CTRL_STATUS_SUM_LEN])
{
    mm_err rc = status_sum(s, false, sum);
    return rc == MM_OK ? status_sum(s, true, sum_refs) : rc;
}

bool ctrl_status_says(struct json_object *policy, const ctrl_want_st *w)
{
    struct json_object *st = ctrl_field(policy, "status", NULL);
    const char *have = json_object_get_string(ctrl_field(st, w->rendered ? CTRL_ST_SUM_REFS : CTRL_ST_SUM, NULL));
    const char *name = ctrl_meta_str(policy, "name");
    int64_t gen = json_object_get_int64(ctrl_field(policy, "metadata", "generation"));
    char npname[300], sum[CTRL_STATUS_SUM_LEN];
    snprintf(npname, sizeof(npname), "maskmesh-%.240s", name ? name : "");
    ctrl_status_in want = {w->ready ? "True" : "False", w->reason, w->message, gen, gen,
                           (int64_t)w->rules, MM_POLICY_CONFIGMAP, npname};
    /* only the sum the stored status is compared by */
    return have && status_sum(&want, w->rendered, sum) == MM_OK && strcmp(have, sum) == 0;
}

/* o.key = s ("" for NULL); false when out of memory */
static bool put_str(struct json_object *o, const char *key, const char *s)
{
    struct json_object *v = json_object_new_string(s ? s : "");
    if (!v || json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

/* A policy's status as the informer keeps it: in place of the conditions and the rest, the
 * Ready condition's status and lastTransitionTime (set_status keeps the time while the
 * status stays) and the two sums of what reconcile compares; status.stream as it is (stream.c
 * compares it whole). Without a Ready condition there are no sums: any status differs. At
 * 10,000 policies the statuses as written were about 3 MB of the store. */
static mm_err slim_status(struct json_object *o)
{
    struct json_object *st = NULL, *conds, *ready = NULL, *stream = NULL, *ns = NULL;
    char sum[CTRL_STATUS_SUM_LEN], sum_refs[CTRL_STATUS_SUM_LEN];
    mm_err rc = MM_OK;
    if (!json_object_object_get_ex(o, "status", &st) || !json_object_is_type(st, json_type_object))
        return MM_OK;
    conds = ctrl_field(st, "conditions", NULL);
    for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) &&
                       i < json_object_array_length(conds); i++) {
        struct json_object *cd = json_object_array_get_idx(conds, i);
        if (strcmp(json_object_get_string(ctrl_field(cd, "type", NULL)) ?: "", "Ready") == 0)
            ready = cd; /* the last one, as reconcile read them */
    }
    if (!(ns = json_object_new_object()))
        return MM_ENOMEM;
    if (ready) {
        ctrl_status_in in = {
            .status = json_object_get_string(ctrl_field(ready, "status", NULL)),
            .reason = json_object_get_string(ctrl_field(ready, "reason", NULL)),
            .message = json_object_get_string(ctrl_field(ready, "message", NULL)),
            .cond_gen = json_object_get_int64(ctrl_field(ready, "observedGeneration", NULL)),
            .gen = json_object_get_int64(ctrl_field(st, "observedGeneration", NULL)),
            .rules = json_object_get_int64(ctrl_field(st, "ruleCount", NULL)),
            .config_map = json_object_get_string(ctrl_field(st, "configMap", NULL)),
            .network_policy = json_object_get_string(ctrl_field(st, "networkPolicy", NULL))};
        if ((rc = ctrl_status_sums(&in, sum, sum_refs)) != MM_OK || !put_str(ns, CTRL_ST_READY, in.status) ||
            !put_str(ns, CTRL_ST_SINCE, json_object_get_string(ctrl_field(ready, "lastTransitionTime", NULL))) ||
            !put_str(ns, CTRL_ST_SUM, sum) || !put_str(ns, CTRL_ST_SUM_REFS, sum_refs))
            goto nomem;
    }
    if (json_object_object_get_ex(st, "stream", &stream) &&
        json_object_object_add(ns, "stream", json_object_get(stream)) != 0) {
        json_object_put(stream);
        goto nomem;
    }
    if (json_object_object_add(o, "status", ns) != 0) /* puts the old status, not stream */
        goto nomem;
    return MM_OK;
nomem:
    json_object_put(ns);
    return rc != MM_OK ? rc : MM_ENOMEM;
}

/* The informers keep only what reconcile reads: metadata name, namespace, uid, generation,
 * resourceVersion, labels and ownerReferences, spec and data, and the status in short
 * (slim_status). Annotations (such as kubectl's last-applied-configuration, a second copy
 * of the policy), managedFields and the rest of metadata are dropped before the object is
 * stored. */
mm_err ctrl_slim(void *ud, struct json_object *o)
{
    static const char *const top[] = {"apiVersion", "kind", "metadata", "spec", "status", "data"};
    static const char *const meta[] = {"name", "namespace", "uid", "generation", "resourceVersion",
                                       "labels", "ownerReferences"};
    MM_UNUSED(ud);
    struct json_object *m = NULL;
    if (!json_object_is_type(o, json_type_object))
        return MM_OK;
    ctrl_keep_only(o, top, MM_ARRAY_LEN(top));
    if (json_object_object_get_ex(o, "metadata", &m) && json_object_is_type(m, json_type_object))
        ctrl_keep_only(m, meta, MM_ARRAY_LEN(meta));
    return slim_status(o);
}

/* A digest of a JSON value as reconcile compares it: a string's bytes, anything else its
 * canonical JSON (sorted keys), so two values json_object_equal calls equal digest alike.
 * NULL value: "". */
static mm_err digest(struct json_object *v, char out[DIGEST_LEN])
{
    unsigned char md[32];
    mm_buf b;
    mm_err rc = MM_OK;
    out[0] = '\0';
    if (!v)
        return MM_OK;
    mm_buf_init(&b, 0);
    if (json_object_is_type(v, json_type_string))
        rc = mm_buf_putc(&b, 's') == MM_OK ? mm_buf_append(&b, json_object_get_string(v),
                                                            (size_t)json_object_get_string_len(v))
                                            : MM_ENOMEM;
    else
        rc = mm_buf_putc(&b, 'j') == MM_OK ? mm_policy_canonical_json(v, &b) : MM_ENOMEM;
    if (rc == MM_OK && !EVP_Digest(b.data, b.len, md, NULL, EVP_sha256(), NULL))
        rc = MM_ENOMEM;
    if (rc == MM_OK) {
        memcpy(out, "sha256:", 7);
        EVP_EncodeBlock((unsigned char *)out + 7, md, sizeof(md)); /* 44 characters and NUL */
    }
    mm_buf_free(&b);
    return rc;
}

/* What the ConfigMap, NetworkPolicy and stream Deployment informers keep: what reconcile
 * reads of them (metadata name, namespace, uid, labels, the owners' uids, a Deployment's
 * status.readyReplicas), and in place of the content
 * maskmesh decides (the ConfigMap's policies key and binaryData, the NetworkPolicy's spec)
 * its digest. At
 * 10,000 policies the stored copies of the rendered content were about 10 MB; reconcile
 * only asks whether they equal what it renders (ctrl_same(), ctrl_owners_same(), ctrl_label_same()). */
mm_err ctrl_owned_slim(void *ud, struct json_object *o)
{
    static const char *const top[] = {"metadata", "spec", "data", "binaryData", "status"};
    static const char *const status[] = {"readyReplicas"}; /* a stream Deployment's, for status.stream */
    static const char *const meta[] = {"name", "namespace", "uid", "resourceVersion", "labels",
                                       "ownerReferences"};
    static const char *const owner[] = {"uid"};
    struct json_object *data = NULL, *v = NULL, *d = NULL, *m = NULL, *owners = NULL;
    char dg[DIGEST_LEN];
    MM_UNUSED(ud);
    if (!json_object_is_type(o, json_type_object))
        return MM_OK;
    ctrl_keep_only(o, top, MM_ARRAY_LEN(top));
    if (json_object_object_get_ex(o, "metadata", &m) && json_object_is_type(m, json_type_object)) {
        ctrl_keep_only(m, meta, MM_ARRAY_LEN(meta));
        if (json_object_object_get_ex(m, "ownerReferences", &owners) &&
            json_object_is_type(owners, json_type_array))
            for (size_t i = 0; i < json_object_array_length(owners); i++) {
                struct json_object *r = json_object_array_get_idx(owners, i);
                if (json_object_is_type(r, json_type_object))
                    ctrl_keep_only(r, owner, MM_ARRAY_LEN(owner));
            }
    }
    if (json_object_object_get_ex(o, "status", &v) && json_object_is_type(v, json_type_object))
        ctrl_keep_only(v, status, MM_ARRAY_LEN(status));
    mm_err rc = MM_OK;
    if (json_object_object_get_ex(o, "spec", &v)) {
        if ((rc = digest(v, dg)) != MM_OK || !(d = json_object_new_string(dg)))
            return rc != MM_OK ? rc : MM_ENOMEM;
        json_object_object_add(o, "spec", d);
    }
    if (json_object_object_get_ex(o, "data", &data) && json_object_is_type(data, json_type_object)) {
        struct json_object *nd = json_object_new_object();
        if (!nd)
            return MM_ENOMEM;
        if (json_object_object_get_ex(data, MM_POLICY_CONFIGMAP_KEY, &v) &&
            ((rc = digest(v, dg)) != MM_OK || !(d = json_object_new_string(dg)) ||
             json_object_object_add(nd, MM_POLICY_CONFIGMAP_KEY, d) != 0)) {
            json_object_put(nd);
            return rc != MM_OK ? rc : MM_ENOMEM;
        }
        json_object_object_add(o, "data", nd);
    }
    /* the descriptor sets maskmesh-policies carries (spec.grpc): one digest for them all */
    if (json_object_object_get_ex(o, "binaryData", &v)) {
        if ((rc = digest(v, dg)) != MM_OK || !(d = json_object_new_string(dg)))
            return rc != MM_OK ? rc : MM_ENOMEM;
        json_object_object_add(o, "binaryData", d);
    }
    return MM_OK;
}

struct json_object *ctrl_field(struct json_object *o, const char *a, const char *b)
{
    struct json_object *x = NULL, *y = NULL;
    if (!o || !json_object_object_get_ex(o, a, &x))
        return NULL;
    if (!b)
        return x;
    return json_object_object_get_ex(x, b, &y) ? y : NULL;
}

/* The parts of a managed object maskmesh decides: equal means no write. actual comes from
 * an informer, which keeps their digest (ctrl_owned_slim). A failed digest says "differs": one
 * write too many, never one too few. */
bool ctrl_same(struct json_object *actual, struct json_object *desired, const char *a, const char *b)
{
    struct json_object *x = ctrl_field(actual, a, b), *y = ctrl_field(desired, a, b);
    char dg[DIGEST_LEN];
    if (!x || !y)
        return !x && !y;
    return json_object_is_type(x, json_type_string) && digest(y, dg) == MM_OK &&
           strcmp(json_object_get_string(x), dg) == 0;
}

bool ctrl_owners_same(struct json_object *actual, struct json_object *desired)
{
    struct json_object *x = ctrl_field(actual, "metadata", "ownerReferences"),
                       *y = ctrl_field(desired, "metadata", "ownerReferences");
    size_t nx = x && json_object_is_type(x, json_type_array) ? json_object_array_length(x) : 0,
           ny = y && json_object_is_type(y, json_type_array) ? json_object_array_length(y) : 0;
    if (nx != ny)
        return false;
    for (size_t i = 0; i < ny; i++) {
        const char *uid = json_object_get_string(ctrl_field(json_object_array_get_idx(y, i), "uid", NULL)) ?: "";
        bool found = false;
        for (size_t j = 0; j < nx && !found; j++)
            found = strcmp(json_object_get_string(ctrl_field(json_object_array_get_idx(x, j), "uid", NULL)) ?: "",
                           uid) == 0;
        if (!found)
            return false;
    }
    return true;
}

bool ctrl_label_same(struct json_object *actual, struct json_object *desired)
{
    struct json_object *la = ctrl_field(actual, "metadata", "labels"), *ld = ctrl_field(desired, "metadata", "labels");
    json_object_object_foreach(ld, k, v) {
        struct json_object *x = NULL;
        if (!la || !json_object_object_get_ex(la, k, &x) || !json_object_equal(x, v))
            return false;
    }
    return true;
}

/* Only the status changed (the controller's own patch, mostly): nothing to render, as
 * controller-runtime's GenerationChangedPredicate decides. The generation moves with the
 * spec; labels, owners and uid are compared as well. Someone else's edit of the status is
 * put right by the periodic resync. */
bool ctrl_status_only(struct json_object *old_obj, struct json_object *o)
{
    static const char *const meta[] = {"uid", "generation", "labels", "ownerReferences"};
    struct json_object *om = ctrl_field(old_obj, "metadata", NULL), *m = ctrl_field(o, "metadata", NULL);
    if (!om || !m || !ctrl_field(m, "generation", NULL) ||
        !json_object_equal(ctrl_field(old_obj, "spec", NULL), ctrl_field(o, "spec", NULL)))
        return false;
    for (size_t i = 0; i < MM_ARRAY_LEN(meta); i++)
        if (!json_object_equal(ctrl_field(om, meta[i], NULL), ctrl_field(m, meta[i], NULL)))
            return false;
    return true;
}

uint64_t ctrl_fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull;
}

void ctrl_now_rfc3339(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
