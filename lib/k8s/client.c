/* lib/k8s client: the verbs (get, list, create, update, patch, delete) and list paging, each
 * one request through the transport (transport.c). */
#include "k8s/k8s_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- verbs ---------------------------------------------------------------------------------- */

mm_err mm_k8s_get(mm_k8s_client *c, const mm_k8s_ref *ref, mm_k8s_result *res, mm_errbuf *eb)
{
    return k8s_request(c, "GET", ref, NULL, NULL, NULL, 0, NULL, res, eb);
}

mm_err mm_k8s_list(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_list_opts *lo,
                   mm_k8s_result *res, mm_errbuf *eb)
{
    static const mm_k8s_list_opts none;
    char limit[24];
    if (!lo)
        lo = &none;
    if (ref->name)
        return mm_errf(eb, MM_EINVAL, "list: the ref names an object");
    snprintf(limit, sizeof(limit), "%ld", lo->limit);
    const char *q[] = {"labelSelector", lo->label_selector,
                       "fieldSelector", lo->field_selector,
                       "resourceVersion", lo->resource_version,
                       "resourceVersionMatch", lo->resource_version_match,
                       "limit", lo->limit > 0 ? limit : NULL,
                       "continue", lo->continue_token,
                       NULL};
    return k8s_request(c, "GET", ref, q, NULL, NULL, 0, NULL, res, eb);
}

static mm_err write_obj(mm_k8s_client *c, const char *method, const mm_k8s_ref *ref,
                        struct json_object *obj, const mm_k8s_write_opts *wo,
                        mm_k8s_result *res, mm_errbuf *eb)
{
    static const mm_k8s_write_opts none;
    if (!wo)
        wo = &none;
    if (!obj)
        return mm_errf(eb, MM_EINVAL, "%s: no object", method);
    size_t len = 0;
    const char *body = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!body)
        return MM_ENOMEM;
    const char *q[] = {"fieldManager", wo->field_manager, "dryRun", wo->dry_run ? "All" : NULL,
                       "fieldValidation", wo->field_validation, NULL};
    k8s_tuning t = {.max_retries = -1, .no_body = wo->no_body};
    return k8s_request(c, method, ref, q, "application/json", body, len, &t, res, eb);
}

mm_err mm_k8s_create(mm_k8s_client *c, const mm_k8s_ref *ref, struct json_object *obj,
                     const mm_k8s_write_opts *wo, mm_k8s_result *res, mm_errbuf *eb)
{
    if (ref->name)
        return mm_errf(eb, MM_EINVAL, "create: the ref names an object (POST goes to the "
                                      "collection; the name is in metadata)");
    return write_obj(c, "POST", ref, obj, wo, res, eb);
}

mm_err mm_k8s_update(mm_k8s_client *c, const mm_k8s_ref *ref, struct json_object *obj,
                     const mm_k8s_write_opts *wo, mm_k8s_result *res, mm_errbuf *eb)
{
    if (!ref->name)
        return mm_errf(eb, MM_EINVAL, "update: the ref names no object");
    return write_obj(c, "PUT", ref, obj, wo, res, eb);
}

/* An apply patch is YAML to the API server (sigs.k8s.io/yaml, YAML 1.1), which refuses the
 * JSON escape \/ ("found unknown escape character"); json-c writes it unless told
 * JSON_C_TO_STRING_NOSLASHESCAPE. Found on kube-apiserver v1.37.2, not by the stand-in. */
static mm_err apply_body_check(const char *body, size_t len, mm_errbuf *eb)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (body[i] != '\\')
            continue;
        if (body[i + 1] == '/')
            return mm_errf(eb, MM_EINVAL,
                           "patch: server-side apply body has the JSON escape \\/ at byte %zu, "
                           "which the API server's YAML parser refuses (write it as /)", i);
        i++; /* the escaped character */
    }
    return MM_OK;
}

mm_err mm_k8s_patch(mm_k8s_client *c, const mm_k8s_ref *ref, mm_k8s_patch_type type,
                    const char *body, size_t len, const mm_k8s_patch_opts *po,
                    mm_k8s_result *res, mm_errbuf *eb)
{
    static const mm_k8s_patch_opts none;
    const char *ct;
    if (!po)
        po = &none;
    switch (type) {
    case MM_K8S_PATCH_JSON: ct = "application/json-patch+json"; break;
    case MM_K8S_PATCH_MERGE: ct = "application/merge-patch+json"; break;
    case MM_K8S_PATCH_STRATEGIC: ct = "application/strategic-merge-patch+json"; break;
    case MM_K8S_PATCH_APPLY: ct = "application/apply-patch+yaml"; break;
    default: return mm_errf(eb, MM_EINVAL, "patch: unknown patch type %d", (int)type);
    }
    if (!ref->name)
        return mm_errf(eb, MM_EINVAL, "patch: the ref names no object");
    /* the server's own checks (wire rule 10), made before a round trip */
    if (type == MM_K8S_PATCH_APPLY && (!po->field_manager || !*po->field_manager))
        return mm_errf(eb, MM_EINVAL, "patch: server-side apply needs a fieldManager");
    if (type != MM_K8S_PATCH_APPLY && po->force)
        return mm_errf(eb, MM_EINVAL, "patch: force is only for server-side apply");
    if (po->field_manager && strlen(po->field_manager) > 128)
        return mm_errf(eb, MM_EINVAL, "patch: fieldManager longer than 128 characters");
    mm_err rc;
    if (type == MM_K8S_PATCH_APPLY && body && (rc = apply_body_check(body, len, eb)) != MM_OK)
        return rc;
    const char *q[] = {"fieldManager", po->field_manager,
                       "force", po->force ? "true" : NULL,
                       "dryRun", po->dry_run ? "All" : NULL,
                       "fieldValidation", po->field_validation,
                       NULL};
    k8s_tuning t = {.max_retries = -1, .no_body = po->no_body};
    return k8s_request(c, "PATCH", ref, q, ct, body ? body : "", body ? len : 0, &t, res, eb);
}

mm_err mm_k8s_delete(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_delete_opts *d,
                     mm_k8s_result *res, mm_errbuf *eb)
{
    static const mm_k8s_delete_opts none = {.grace_period_seconds = -1};
    mm_err rc;
    struct json_object *o = NULL, *pre = NULL;

    if (!d)
        d = &none;
    if (!ref->name)
        return mm_errf(eb, MM_EINVAL, "delete: the ref names no object");
    if (!(o = json_object_new_object()))
        return MM_ENOMEM;
    rc = MM_ENOMEM;
    if (k8s_json_add(o, "kind", json_object_new_string("DeleteOptions")) ||
        k8s_json_add(o, "apiVersion", json_object_new_string("v1")))
        goto out;
    if (d->precondition_uid || d->precondition_resource_version) {
        if (!(pre = json_object_new_object()))
            goto out;
        if ((d->precondition_uid &&
             k8s_json_add(pre, "uid", json_object_new_string(d->precondition_uid))) ||
            (d->precondition_resource_version &&
             k8s_json_add(pre, "resourceVersion",
                          json_object_new_string(d->precondition_resource_version))))
            goto out;
        int bad = k8s_json_add(o, "preconditions", pre);
        pre = NULL; /* o owns it now, or it was released */
        if (bad)
            goto out;
    }
    if (d->propagation_policy &&
        k8s_json_add(o, "propagationPolicy", json_object_new_string(d->propagation_policy)))
        goto out;
    if (d->grace_period_seconds >= 0 &&
        k8s_json_add(o, "gracePeriodSeconds", json_object_new_int64(d->grace_period_seconds)))
        goto out;
    if (d->dry_run) {
        struct json_object *a = json_object_new_array();
        struct json_object *all = json_object_new_string("All");
        if (!a || !all || json_object_array_add(a, all)) {
            json_object_put(all);
            json_object_put(a);
            goto out;
        }
        if (k8s_json_add(o, "dryRun", a))
            goto out;
    }
    size_t len = 0;
    const char *body = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!body)
        goto out;
    rc = k8s_request(c, "DELETE", ref, NULL, "application/json", body, len, NULL, res, eb);
out:
    json_object_put(pre);
    json_object_put(o);
    return rc;
}

/* ---- list paging ------------------------------------------------------------------------- */

mm_err mm_k8s_list_all(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_list_opts *lo,
                       mm_k8s_item_fn item_fn, void *ud, char **rv_out, mm_k8s_result *res,
                       mm_errbuf *eb)
{
    static const mm_k8s_list_opts none;
    mm_err rc = MM_OK;
    mm_k8s_list_opts o = lo ? *lo : none;
    char *cont = NULL;
    int restarts = 0;

    if (rv_out)
        *rv_out = NULL;
    o.continue_token = NULL;
    for (;;) {
        if ((rc = mm_k8s_list(c, ref, &o, res, eb)) != MM_OK) {
            if (rc == MM_EGONE && o.continue_token && restarts < 2) {
                /* The continue token expired (compaction). Start over: first paged again,
                 * so memory stays one page; if that expires too, as client-go's pager
                 * does, in one unpaged read that compaction cannot cut. item_fn hears
                 * NULL: forget what this list handed you so far. */
                if (++restarts == 2)
                    o.limit = 0;
                o.continue_token = NULL;
                if (rv_out) {
                    mm_free(*rv_out);
                    *rv_out = NULL;
                }
                if (item_fn && item_fn(ud, NULL) != 0) {
                    rc = mm_errf(eb, MM_EINVAL, "list %s: stopped by the caller", ref->resource);
                    goto out;
                }
                continue;
            }
            goto out;
        }
        struct json_object *items = k8s_json_get(res->body, "items", json_type_array);
        struct json_object *meta = k8s_json_get(res->body, "metadata", json_type_object);
        struct json_object *v;
        if (!items && !(res->body && json_object_object_get_ex(res->body, "items", &v) &&
                        json_object_is_type(v, json_type_null))) {
            rc = mm_errf(eb, MM_EPARSE, "list %s: the response has no items array", ref->resource);
            goto out;
        }
        for (size_t i = 0; items && i < json_object_array_length(items); i++) {
            struct json_object *it = json_object_array_get_idx(items, i);
            if (!json_object_is_type(it, json_type_object)) {
                rc = mm_errf(eb, MM_EPARSE, "list %s: items[%zu]: expected an object",
                             ref->resource, i);
                goto out;
            }
            if (item_fn && item_fn(ud, it) != 0) {
                rc = mm_errf(eb, MM_EINVAL, "list %s: stopped by the caller", ref->resource);
                goto out;
            }
        }
        const char *rv = k8s_json_str(meta, "resourceVersion");
        if (rv_out && rv && !*rv_out && !(*rv_out = mm_strdup(rv))) {
            rc = MM_ENOMEM;
            goto out;
        }
        const char *next = k8s_json_str(meta, "continue");
        if (!next || !*next || o.limit <= 0)
            break;
        mm_free(cont);
        if (!(cont = mm_strdup(next))) {
            rc = MM_ENOMEM;
            goto out;
        }
        o.continue_token = cont;
    }
    if (rv_out && !*rv_out) {
        rc = mm_errf(eb, MM_EPARSE, "list %s: no metadata.resourceVersion", ref->resource);
        goto out;
    }
out:
    if (rc != MM_OK && rv_out) {
        mm_free(*rv_out);
        *rv_out = NULL;
    }
    mm_free(cont);
    return rc;
}
