/* lib/policy: what the controller writes for policies — the per-namespace ConfigMap the
 * sidecars read and a NetworkPolicy per policy so that only the sidecar port is reachable. */
#include "policy/policy_int.h"

#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static int key_order(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static mm_err indent(mm_buf *out, int depth)
{
    mm_err rc = mm_buf_putc(out, '\n');
    for (int i = 0; rc == MM_OK && i < depth; i++)
        rc = mm_buf_puts(out, "  ");
    return rc;
}

static mm_err canon(const struct json_object *o, mm_buf *out, int depth)
{
    mm_err rc = MM_OK;
    switch (json_object_get_type(o)) {
    case json_type_object: {
        size_t n = (size_t)json_object_object_length(o), i = 0;
        const char **keys;
        if (n == 0)
            return mm_buf_puts(out, "{}");
        if (!(keys = mm_calloc(n, sizeof(*keys))))
            return MM_ENOMEM;
        for (struct lh_entry *e = json_object_get_object(o)->head; e; e = e->next)
            keys[i++] = (const char *)lh_entry_k(e);
        qsort(keys, n, sizeof(*keys), key_order);
        rc = mm_buf_putc(out, '{');
        for (i = 0; i < n && rc == MM_OK; i++) {
            struct json_object *v = NULL;
            json_object_object_get_ex(o, keys[i], &v);
            if ((i && (rc = mm_buf_putc(out, ',')) != MM_OK) || (rc = indent(out, depth + 1)) != MM_OK ||
                (rc = mm_buf_put_json_str(out, keys[i], strlen(keys[i]))) != MM_OK ||
                (rc = mm_buf_puts(out, ": ")) != MM_OK)
                break;
            rc = canon(v, out, depth + 1);
        }
        mm_free(keys);
        if (rc == MM_OK && (rc = indent(out, depth)) == MM_OK)
            rc = mm_buf_putc(out, '}');
        return rc;
    }
    case json_type_array: {
        size_t n = json_object_array_length(o);
        if (n == 0)
            return mm_buf_puts(out, "[]");
        rc = mm_buf_putc(out, '[');
        for (size_t i = 0; i < n && rc == MM_OK; i++) {
            if ((i && (rc = mm_buf_putc(out, ',')) != MM_OK) || (rc = indent(out, depth + 1)) != MM_OK)
                break;
            rc = canon(json_object_array_get_idx(o, i), out, depth + 1);
        }
        if (rc == MM_OK && (rc = indent(out, depth)) == MM_OK)
            rc = mm_buf_putc(out, ']');
        return rc;
    }
    case json_type_string:
        return mm_buf_put_json_str(out, json_object_get_string((struct json_object *)o),
                                   (size_t)json_object_get_string_len(o));
    default:
        return mm_buf_puts(out, json_object_to_json_string_ext((struct json_object *)o,
                                                               JSON_C_TO_STRING_PLAIN));
    }
}

mm_err mm_policy_canonical_json(const struct json_object *obj, mm_buf *out)
{
    mm_err rc = canon(obj, out, 0);
    return rc == MM_OK ? mm_buf_putc(out, '\n') : rc;
}

static const char *str_at(const struct json_object *o, const char *a, const char *b)
{
    struct json_object *x = NULL, *y = NULL;
    if (!json_object_object_get_ex(o, a, &x))
        return NULL;
    if (!b)
        return json_object_is_type(x, json_type_string) ? json_object_get_string(x) : NULL;
    if (!json_object_object_get_ex(x, b, &y) || !json_object_is_type(y, json_type_string))
        return NULL;
    return json_object_get_string(y);
}

static int by_name(const void *a, const void *b)
{
    const char *x = str_at(*(struct json_object *const *)a, "metadata", "name");
    const char *y = str_at(*(struct json_object *const *)b, "metadata", "name");
    return strcmp(x ? x : "", y ? y : "");
}

/* Adds k = v (a new reference is taken on v) or fails. */
static bool put(struct json_object *o, const char *k, struct json_object *v)
{
    if (!v)
        return false;
    if (json_object_object_add(o, k, v) != 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static bool put_str(struct json_object *o, const char *k, const char *v)
{
    return put(o, k, json_object_new_string(v));
}

static struct json_object *copy(const struct json_object *o)
{
    struct json_object *c = NULL;
    if (json_object_deep_copy((struct json_object *)o, &c, NULL) != 0)
        return NULL;
    return c;
}

static struct json_object *owner_ref(const struct json_object *policy, bool controller)
{
    struct json_object *r = json_object_new_object();
    const char *name = str_at(policy, "metadata", "name"), *uid = str_at(policy, "metadata", "uid");
    if (!r || !put_str(r, "apiVersion", "maskmesh.io/v1alpha1") ||
        !put_str(r, "kind", "MaskingPolicy") || !put_str(r, "name", name ? name : "") ||
        !put_str(r, "uid", uid ? uid : "") ||
        (controller && (!put(r, "controller", json_object_new_boolean(1)) ||
                        !put(r, "blockOwnerDeletion", json_object_new_boolean(1))))) {
        json_object_put(r);
        return NULL;
    }
    return r;
}

static struct json_object *managed_labels(const char *policy)
{
    struct json_object *l = json_object_new_object();
    if (!l || !put_str(l, MM_MANAGED_BY_LABEL, MM_MANAGED_BY_VALUE) ||
        (policy && !put_str(l, MM_POLICY_LABEL, policy))) {
        json_object_put(l);
        return NULL;
    }
    return l;
}

mm_err mm_policy_render_configmap(struct json_object *const *policies, size_t n, const char *ns,
                                  struct json_object **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    struct json_object **sorted = NULL, *cm = NULL, *meta, *list = NULL, *owners = NULL, *data;
    mm_buf text;

    mm_buf_init(&text, 0);
    if (n && !(sorted = mm_calloc(n, sizeof(*sorted))))
        goto nomem;
    memcpy(sorted, policies, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), by_name);
    if (!(list = json_object_new_array()) || !(cm = json_object_new_object()) ||
        !put_str(cm, "apiVersion", "v1") || !put_str(cm, "kind", "ConfigMap") ||
        !put(cm, "metadata", meta = json_object_new_object()) ||
        !put_str(meta, "name", MM_POLICY_CONFIGMAP) || !put_str(meta, "namespace", ns) ||
        !put(meta, "labels", managed_labels(NULL)) ||
        !(owners = json_object_new_array()) || !put(cm, "data", data = json_object_new_object()))
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        const struct json_object *p = sorted[i];
        struct json_object *slim = json_object_new_object(), *m, *spec = NULL, *x = NULL;
        if (!slim || json_object_array_add(list, slim) != 0) {
            json_object_put(slim);
            goto nomem;
        }
        if (!put_str(slim, "apiVersion", "maskmesh.io/v1alpha1") ||
            !put_str(slim, "kind", "MaskingPolicy") || !put(slim, "metadata", m = json_object_new_object()))
            goto nomem;
        static const char *const keep[] = {"name", "namespace", "uid", "generation"};
        struct json_object *pm = NULL;
        json_object_object_get_ex(p, "metadata", &pm);
        for (size_t k = 0; k < MM_ARRAY_LEN(keep); k++)
            if (pm && json_object_object_get_ex(pm, keep[k], &x) && !put(m, keep[k], copy(x)))
                goto nomem;
        if (!json_object_object_get_ex(p, "spec", &spec)) {
            rc = mm_errf(eb, MM_EINVAL, "policy %s has no spec", str_at(p, "metadata", "name"));
            goto out;
        }
        if (!put(slim, "spec", copy(spec)))
            goto nomem;
        /* a policy read from a file has no uid, and an owner without one is invalid */
        const char *uid = str_at(p, "metadata", "uid");
        struct json_object *ref = uid && *uid ? owner_ref(p, false) : NULL;
        if (uid && *uid && (!ref || json_object_array_add(owners, ref) != 0)) {
            json_object_put(ref);
            goto nomem;
        }
    }
    if (json_object_array_length(owners) > 0) {
        if (!put(meta, "ownerReferences", owners))
            goto nomem;
        owners = NULL;
    }
    if ((rc = mm_policy_canonical_json(list, &text)) != MM_OK)
        goto nomem;
    if (!put(data, MM_POLICY_CONFIGMAP_KEY, json_object_new_string_len(text.data, (int)text.len)))
        goto nomem;
    *out = cm;
    cm = NULL;
    goto out;
nomem:
    rc = mm_errf(eb, MM_ENOMEM, "out of memory rendering the ConfigMap");
out:
    json_object_put(owners);
    json_object_put(cm);
    json_object_put(list);
    mm_free(sorted);
    mm_buf_free(&text);
    return rc;
}

mm_err mm_policy_render_grpc(struct json_object *cm, const char *policy, const void *set,
                             size_t len, mm_errbuf *eb)
{
    char key[300], *b64 = NULL;
    struct json_object *bd = NULL;
    mm_err rc = MM_OK;

    if (!mm_policy_grpc_file(policy, key, sizeof(key)))
        return mm_errf(eb, MM_EINVAL, "policy %.64s...: the name is too long for the ConfigMap "
                       "key <name>%s", policy, MM_POLICY_GRPC_SUFFIX);
    if (len > INT_MAX / 2 || !(b64 = mm_malloc(4 * ((len + 2) / 3) + 1)))
        goto nomem;
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)(set ? set : ""), (int)len);
    if (!json_object_object_get_ex(cm, "binaryData", &bd) &&
        !put(cm, "binaryData", bd = json_object_new_object()))
        goto nomem;
    if (!put_str(bd, key, b64))
        goto nomem;
    goto out;
nomem:
    rc = mm_errf(eb, MM_ENOMEM, "out of memory adding the descriptor set of policy %s", policy);
out:
    mm_free(b64);
    return rc;
}

static struct json_object *port_entry(int port)
{
    struct json_object *p = json_object_new_object();
    if (!p || !put_str(p, "protocol", "TCP") || !put(p, "port", json_object_new_int(port))) {
        json_object_put(p);
        return NULL;
    }
    return p;
}

/* {from: peers (when any), ports: [{TCP port}, {TCP named}]} (named: NULL for none) */
static struct json_object *ingress_rule(const struct json_object *peers, int port, const char *named)
{
    struct json_object *r = json_object_new_object(), *ports = json_object_new_array();
    if (!r || !ports || !put(r, "ports", ports)) {
        json_object_put(r);
        if (!r)
            json_object_put(ports);
        return NULL;
    }
    struct json_object *pe = port_entry(port);
    if (!pe || json_object_array_add(ports, pe) != 0) {
        json_object_put(pe);
        json_object_put(r);
        return NULL;
    }
    if (named) {
        pe = json_object_new_object();
        if (!pe || !put_str(pe, "protocol", "TCP") || !put_str(pe, "port", named) ||
            json_object_array_add(ports, pe) != 0) {
            json_object_put(pe);
            json_object_put(r);
            return NULL;
        }
    }
    if (peers && json_object_array_length(peers) > 0 && !put(r, "from", copy(peers))) {
        json_object_put(r);
        return NULL;
    }
    return r;
}

mm_err mm_policy_render_networkpolicy(const struct json_object *policy,
                                      const struct json_object *monitoring_from,
                                      struct json_object **out, mm_errbuf *eb)
{
    struct json_object *np = NULL, *meta, *spec, *ingress, *pspec = NULL, *sel = NULL, *net = NULL,
                       *allow = NULL, *types, *r;
    const char *name = str_at(policy, "metadata", "name"), *ns = str_at(policy, "metadata", "namespace");
    mm_buf npname;

    if (!name)
        return mm_errf(eb, MM_EINVAL, "the policy has no metadata.name");
    if (!json_object_object_get_ex(policy, "spec", &pspec) ||
        !json_object_object_get_ex(pspec, "selector", &sel))
        return mm_errf(eb, MM_EINVAL, "policy %s has no spec.selector", name);
    if (json_object_object_get_ex(pspec, "network", &net))
        json_object_object_get_ex(net, "allowFrom", &allow);
    mm_buf_init(&npname, 0);
    if (mm_buf_printf(&npname, "maskmesh-%s", name) != MM_OK)
        goto nomem;
    if (!(np = json_object_new_object()) || !put_str(np, "apiVersion", "networking.k8s.io/v1") ||
        !put_str(np, "kind", "NetworkPolicy") || !put(np, "metadata", meta = json_object_new_object()) ||
        !put_str(meta, "name", npname.data) || (ns && !put_str(meta, "namespace", ns)) ||
        !put(meta, "labels", managed_labels(name)))
        goto nomem;
    const char *uid = str_at(policy, "metadata", "uid");
    if (uid && *uid) { /* a policy read from a file has none: no owner then */
        struct json_object *owners = json_object_new_array(), *ref = owner_ref(policy, true);
        if (!put(meta, "ownerReferences", owners) || !ref || json_object_array_add(owners, ref) != 0) {
            json_object_put(ref);
            goto nomem;
        }
    }
    /* the sidecar port only: the app port is not reachable from outside the pod at all,
     * except as an iptables-mode pod's named redirect port, which the pod sends to its sidecar */
    if (!put(np, "spec", spec = json_object_new_object()) || !put(spec, "podSelector", copy(sel)) ||
        !put(spec, "policyTypes", types = json_object_new_array()) ||
        json_object_array_add(types, json_object_new_string("Ingress")) != 0 ||
        !put(spec, "ingress", ingress = json_object_new_array()))
        goto nomem;
    if (!(r = ingress_rule(allow, MM_SIDECAR_PORT, MM_SIDECAR_REDIRECT_PORT_NAME)) ||
        json_object_array_add(ingress, r) != 0)
        goto nomem;
    if (monitoring_from && json_object_array_length(monitoring_from) > 0 &&
        (!(r = ingress_rule(monitoring_from, MM_ADMIN_PORT, NULL)) || json_object_array_add(ingress, r) != 0))
        goto nomem;
    mm_buf_free(&npname);
    *out = np;
    return MM_OK;
nomem:
    mm_buf_free(&npname);
    json_object_put(np);
    return mm_errf(eb, MM_ENOMEM, "out of memory rendering the NetworkPolicy");
}
