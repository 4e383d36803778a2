/* lib/admission: AdmissionReview v1 in and out, and the two webhook decisions built on it:
 * /mutate-pods (the injection) and /validate-maskingpolicies (lib/policy's checks). */
#include "admission/admission.h"
#include "admission/admission_int.h"
#include "policy/policy.h"

#include <string.h>

void mm_adm_review_clear(mm_adm_review *r)
{
    if (!r)
        return;
    json_object_put(r->root);
    mm_free(r->keys); /* after the tree that points into it */
    memset(r, 0, sizeof(*r));
}

/* What /mutate-pods reads, the only parts of the review built (the rest is checked as JSON,
 * not built: a pod's managedFields, status, env, the containers' images and commands...). The
 * envelope; of the pod: metadata labels and annotations; spec hostNetwork, restartPolicy,
 * volumes' names; of each (init) container its name, ports, probes and lifecycle.
 * test_review_skip and fuzz_admission hold the answer to the same with nothing left out. */
#define MUTATE_CONTAINER(list)                                                                  \
    "request/object/spec/" list "/*/name", "request/object/spec/" list "/*/ports",              \
        "request/object/spec/" list "/*/livenessProbe",                                          \
        "request/object/spec/" list "/*/readinessProbe",                                         \
        "request/object/spec/" list "/*/startupProbe", "request/object/spec/" list "/*/lifecycle"
const char *const adm_mutate_keep[] = {
    "kind", "apiVersion", "request/uid", "request/operation", "request/kind/kind",
    "request/namespace", "request/name", "request/dryRun",
    "request/object/metadata/labels", "request/object/metadata/annotations",
    "request/object/spec/hostNetwork", "request/object/spec/restartPolicy",
    "request/object/spec/volumes/*/name",
    MUTATE_CONTAINER("containers"), MUTATE_CONTAINER("initContainers"),
    NULL,
};
#undef MUTATE_CONTAINER

static mm_err review_parse(const char *body, size_t len, const char *const *keep,
                           mm_adm_review *out, mm_errbuf *eb)
{
    json_object *root = NULL, *req, *dry;
    const char *kind, *api;
    char *keys = NULL;
    mm_err rc = MM_OK;

    memset(out, 0, sizeof(*out));
    if (len > MM_ADM_REVIEW_MAX)
        return mm_errf(eb, MM_ELIMIT, "body of %zu bytes is larger than %u", len, MM_ADM_REVIEW_MAX);
    if ((rc = (keep ? adm_json_parse_only(body, len, keep, &root, &keys, eb)
                    : adm_json_parse_keys(body, len, NULL, &root, &keys, eb))) != MM_OK) {
        mm_errprefix(eb, "body");
        goto out;
    }
    if (!json_object_is_type(root, json_type_object)) {
        rc = mm_errf(eb, MM_EPARSE, "body: expected a JSON object (an AdmissionReview)");
        goto out;
    }
    kind = jget_str(root, "kind");
    api = jget_str(root, "apiVersion");
    if (!kind || strcmp(kind, "AdmissionReview") != 0) {
        rc = mm_errf(eb, MM_EINVAL, "kind: expected \"AdmissionReview\"%s%s%s", kind ? ", got \"" : "",
                     kind ? kind : "", kind ? "\"" : "");
        goto out;
    }
    if (!api || strcmp(api, "admission.k8s.io/v1") != 0) {
        rc = mm_errf(eb, MM_EINVAL, "apiVersion: expected \"admission.k8s.io/v1\" (set "
                                    "admissionReviewVersions: [v1])");
        goto out;
    }
    if (!(req = jget_type(root, "request", json_type_object))) {
        rc = mm_errf(eb, MM_EINVAL, "request: missing or not an object");
        goto out;
    }
    out->uid = jget_str(req, "uid");
    if (!out->uid || !*out->uid) {
        rc = mm_errf(eb, MM_EINVAL, "request.uid: missing");
        goto out;
    }
    if (strlen(out->uid) > 128) {
        rc = mm_errf(eb, MM_EINVAL, "request.uid: longer than 128 bytes");
        goto out;
    }
    out->operation = jget_str(req, "operation");
    if (!out->operation) {
        rc = mm_errf(eb, MM_EINVAL, "request.operation: missing");
        goto out;
    }
    out->kind = jget_str(jget_type(req, "kind", json_type_object), "kind");
    out->namespace_ = jget_str(req, "namespace");
    out->name = jget_str(req, "name");
    dry = jget_type(req, "dryRun", json_type_boolean);
    out->dry_run = dry && json_object_get_boolean(dry);
    out->object = jget_type(req, "object", json_type_object);
    if (jget(req, "object") && !out->object) {
        rc = mm_errf(eb, MM_EINVAL, "request.object: expected an object");
        goto out;
    }
    out->root = root;
    out->keys = keys;
    root = NULL;
    keys = NULL;
out:
    if (rc != MM_OK)
        memset(out, 0, sizeof(*out));
    json_object_put(root);
    mm_free(keys);
    return rc;
}

mm_err mm_adm_review_parse(const char *body, size_t len, mm_adm_review *out, mm_errbuf *eb)
{
    return review_parse(body, len, NULL, out, eb);
}

mm_err mm_adm_review_parse_pod(const char *body, size_t len, mm_adm_review *out, mm_errbuf *eb)
{
    return review_parse(body, len, adm_mutate_keep, out, eb);
}

mm_err mm_adm_review_response(mm_buf *out, const char *uid, bool allowed, int code,
                              const char *message, const char *patch_json, size_t patch_len,
                              char *const *warnings, size_t n_warnings, const char *audit_key,
                              const char *audit_value)
{
    mm_err rc;

    if ((rc = mm_buf_puts(out, "{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\","
                               "\"response\":{\"uid\":")) != MM_OK ||
        (rc = mm_buf_put_json_str(out, uid, strlen(uid))) != MM_OK ||
        (rc = mm_buf_puts(out, allowed ? ",\"allowed\":true" : ",\"allowed\":false")) != MM_OK)
        goto out;
    if (patch_json) {
        /* the patch's JSON, base64-encoded in place at the end of out */
        size_t b64_len = 4 * ((patch_len + 2) / 3);
        if ((rc = mm_buf_puts(out, ",\"patchType\":\"JSONPatch\",\"patch\":\"")) != MM_OK ||
            (rc = mm_buf_reserve(out, b64_len + 1)) != MM_OK)
            goto out;
        out->len += adm_base64(out->data + out->len, (const unsigned char *)patch_json, patch_len);
        if ((rc = mm_buf_putc(out, '"')) != MM_OK)
            goto out;
    }
    if (n_warnings) {
        if ((rc = mm_buf_puts(out, ",\"warnings\":[")) != MM_OK)
            goto out;
        for (size_t i = 0; i < n_warnings; i++) {
            if ((i && (rc = mm_buf_putc(out, ',')) != MM_OK) ||
                (rc = mm_buf_put_json_str(out, warnings[i], strlen(warnings[i]))) != MM_OK)
                goto out;
        }
        if ((rc = mm_buf_putc(out, ']')) != MM_OK)
            goto out;
    }
    if (audit_key && audit_value) {
        if ((rc = mm_buf_puts(out, ",\"auditAnnotations\":{")) != MM_OK ||
            (rc = mm_buf_put_json_str(out, audit_key, strlen(audit_key))) != MM_OK ||
            (rc = mm_buf_putc(out, ':')) != MM_OK ||
            (rc = mm_buf_put_json_str(out, audit_value, strlen(audit_value))) != MM_OK ||
            (rc = mm_buf_putc(out, '}')) != MM_OK)
            goto out;
    }
    if (!allowed || message) {
        if ((rc = mm_buf_printf(out, ",\"status\":{\"metadata\":{},\"status\":\"%s\",\"code\":%d",
                                allowed ? "Success" : "Failure", code)) != MM_OK)
            goto out;
        if (!allowed && (rc = mm_buf_printf(out, ",\"reason\":\"%s\"",
                                            code == 422 ? "Invalid" : code == 403 ? "Forbidden"
                                                                                  : "BadRequest")) != MM_OK)
            goto out;
        if (message && ((rc = mm_buf_puts(out, ",\"message\":")) != MM_OK ||
                        (rc = mm_buf_put_json_str(out, message, strlen(message))) != MM_OK))
            goto out;
        if ((rc = mm_buf_putc(out, '}')) != MM_OK)
            goto out;
    }
    rc = mm_buf_puts(out, "}}");
out:
    return rc;
}

/* Adds `maskmesh: <msg>` to the result's warnings (never silent when not injected). */
static mm_err add_warning(mm_adm_result *r, const char *msg)
{
    mm_buf w;
    char **grown;
    mm_buf_init(&w, 0);
    if (mm_buf_puts(&w, "maskmesh: ") != MM_OK || mm_buf_puts(&w, msg) != MM_OK) {
        mm_buf_free(&w);
        return MM_ENOMEM;
    }
    if (!(grown = mm_realloc(r->warnings, (r->n_warnings + 1) * sizeof(*grown)))) {
        mm_buf_free(&w);
        return MM_ENOMEM;
    }
    r->warnings = grown;
    if (!(r->warnings[r->n_warnings] = mm_buf_steal(&w, NULL)))
        return MM_ENOMEM;
    r->n_warnings++;
    return MM_OK;
}

mm_err mm_adm_mutate(const mm_adm_review *rv, const mm_adm_config *cfg, bool namespace_opted_in,
                     mm_buf *out, mm_adm_reason *reason, mm_errbuf *eb)
{
    return mm_adm_mutate_opts(rv, cfg, &(mm_adm_opts){.namespace_opted_in = namespace_opted_in},
                              out, reason, eb);
}

mm_err mm_adm_mutate_opts(const mm_adm_review *rv, const mm_adm_config *cfg,
                          const mm_adm_opts *o, mm_buf *out, mm_adm_reason *reason, mm_errbuf *eb)
{
    mm_adm_result res = {0};
    mm_adm_opts opts = *o;
    mm_err rc;

    opts.reinject = false;
    opts.no_explain = true;
    opts.patch_text_only = true;

    *reason = MM_ADM_REASON_COUNT;
    if (!rv->kind || strcmp(rv->kind, "Pod") != 0) {
        char *w[1] = {"maskmesh: only pods are injected; this request was allowed unchanged"};
        return mm_adm_review_response(out, rv->uid, true, 200, NULL, NULL, 0, w, 1, NULL, NULL);
    }
    if (strcmp(rv->operation, "CREATE") != 0) {
        char *w[1] = {"maskmesh: sidecars are injected at CREATE only; this request was allowed "
                      "unchanged"};
        return mm_adm_review_response(out, rv->uid, true, 200, NULL, NULL, 0, w, 1, NULL, NULL);
    }
    if (!rv->object)
        return mm_errf(eb, MM_EINVAL, "request.object: missing for a CREATE");
    if ((rc = mm_adm_inject(rv->object, cfg, &opts, &res, eb)) != MM_OK)
        return rc;
    *reason = res.reason;
    if (res.allowed && !res.patch_json && res.message && (rc = add_warning(&res, res.message)) != MM_OK)
        goto out;
    if (!res.allowed)
        rc = mm_adm_review_response(out, rv->uid, false, 403, res.message, NULL, 0, res.warnings,
                                    res.n_warnings, "maskmesh.io/injection", mm_adm_reason_name(res.reason));
    else
        rc = mm_adm_review_response(out, rv->uid, true, 200, NULL, res.patch_json, res.patch_len,
                                    res.warnings, res.n_warnings,
                                    res.patch_json ? "maskmesh.io/injected" : "maskmesh.io/injection",
                                    res.patch_json ? MM_ADM_SIDECAR_NAME : mm_adm_reason_name(res.reason));
out:
    mm_adm_result_clear(&res);
    return rc;
}

mm_err mm_adm_validate_policy(const mm_adm_review *rv, mm_buf *out, bool *allowed, mm_errbuf *eb)
{
    mm_diags *d = NULL;
    mm_policy *p = NULL;
    mm_errbuf peb = {{0}};
    mm_buf where, msg;
    char **warnings = NULL;
    size_t n_warnings = 0;
    mm_err rc, prc;

    *allowed = true;
    mm_buf_init(&where, 0);
    mm_buf_init(&msg, 0);
    if (strcmp(rv->operation, "DELETE") == 0 || strcmp(rv->operation, "CONNECT") == 0)
        return mm_adm_review_response(out, rv->uid, true, 200, NULL, NULL, 0, NULL, 0, NULL, NULL);
    if (!rv->object)
        return mm_errf(eb, MM_EINVAL, "request.object: missing for a %s", rv->operation);
    if ((rc = mm_buf_printf(&where, "%s/%s", rv->namespace_ ? rv->namespace_ : "",
                            jget_str(jget_type(rv->object, "metadata", json_type_object), "name")
                                ? jget_str(jget_type(rv->object, "metadata", json_type_object), "name")
                                : (rv->name ? rv->name : "?"))) != MM_OK)
        goto out;
    if ((rc = mm_diags_new(&d)) != MM_OK)
        goto out;
    prc = mm_policy_from_json(rv->object, mm_buf_cstr(&where), &p, d, &peb);
    if (prc == MM_ENOMEM) {
        rc = MM_ENOMEM;
        goto out;
    }
    if (prc == MM_OK)
        mm_policy_lint(p, mm_buf_cstr(&where), d);
    for (size_t i = 0; i < mm_diags_count(d); i++) {
        bool is_warning;
        const char *line = mm_diags_get(d, i, &is_warning);
        if (is_warning) {
            char **grown = mm_realloc(warnings, (n_warnings + 1) * sizeof(*grown));
            if (!grown || !(grown[n_warnings] = mm_strdup(line))) {
                if (grown)
                    warnings = grown;
                rc = MM_ENOMEM;
                goto out;
            }
            warnings = grown;
            n_warnings++;
        } else if ((msg.len && (rc = mm_buf_puts(&msg, "; ")) != MM_OK) ||
                   (rc = mm_buf_puts(&msg, line)) != MM_OK) {
            goto out;
        }
    }
    if (prc != MM_OK) {
        *allowed = false;
        if (!msg.len && (rc = mm_buf_puts(&msg, peb.msg)) != MM_OK)
            goto out;
        rc = mm_adm_review_response(out, rv->uid, false, 422, mm_buf_cstr(&msg), NULL, 0, warnings,
                                    n_warnings, NULL, NULL);
    } else {
        rc = mm_adm_review_response(out, rv->uid, true, 200, NULL, NULL, 0, warnings, n_warnings,
                                    NULL, NULL);
    }
out:
    for (size_t i = 0; i < n_warnings; i++)
        mm_free(warnings[i]);
    mm_free(warnings);
    mm_policy_free(p);
    mm_diags_free(d);
    mm_buf_free(&where);
    mm_buf_free(&msg);
    return rc;
}
