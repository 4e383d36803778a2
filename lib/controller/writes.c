/* lib/controller: the writes the reconcile makes (server-side applies, status merge patches,
 * deletes with a UID precondition), each counted once in writes_total. */
#include <string.h>

#include "controller/controller_int.h"

const mm_k8s_ref ctrl_ref_policies = {"maskmesh.io", "v1alpha1", "maskingpolicies", NULL, NULL, NULL};
const mm_k8s_ref ctrl_ref_configmaps = {"", "v1", "configmaps", NULL, NULL, NULL};
const mm_k8s_ref ctrl_ref_netpols = {"networking.k8s.io", "v1", "networkpolicies", NULL, NULL, NULL};
const mm_k8s_ref ctrl_ref_deploys = {"apps", "v1", "deployments", NULL, NULL, NULL};

static void count(ctrl_writer *w)
{
    atomic_fetch_add(&w->writes, 1);
    mm_metric_add(w->m_writes, NULL, 1);
}

/* One patch of kind/ns/name(/sub); the answer's body is not parsed (nobody reads it). */
static mm_err patch(ctrl_writer *w, const mm_k8s_ref *kind, const char *ns, const char *name,
                    const char *sub, mm_k8s_patch_type type, const char *body, size_t len,
                    mm_errbuf *eb)
{
    mm_k8s_ref ref = *kind;
    mm_k8s_result res = {0};
    /* an apply is forced: the controller owns what it renders */
    mm_k8s_patch_opts po = {.field_manager = w->field_manager, .force = type == MM_K8S_PATCH_APPLY,
                            .field_validation = CTRL_FIELD_VALIDATION, .no_body = true};
    ref.ns = ns;
    ref.name = name;
    ref.subresource = sub;
    mm_err rc = mm_k8s_patch(w->client, &ref, type, body, len, &po, &res, eb);
    count(w);
    mm_k8s_result_clear(&res);
    return rc;
}

mm_err ctrl_patch_status(ctrl_writer *w, const char *ns, const char *name, const mm_buf *p,
                         mm_errbuf *eb)
{
    return patch(w, &ctrl_ref_policies, ns, name, "status", MM_K8S_PATCH_MERGE, p->data, p->len, eb);
}

mm_err ctrl_apply(ctrl_writer *w, const mm_k8s_ref *kind, const char *ns, const char *name,
                  struct json_object *obj, mm_errbuf *eb)
{
    const char *body = json_object_to_json_string_ext(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE); /* YAML has no \/ */
    return patch(w, kind, ns, name, NULL, MM_K8S_PATCH_APPLY, body, strlen(body), eb);
}

mm_err ctrl_write_status(ctrl_writer *wr, const char *ns, const char *name, int64_t gen,
                         const ctrl_want_st *w, const char *npname, const char *ts, mm_errbuf *eb)
{
    mm_buf patch;
    mm_buf_init(&patch, 0);
    mm_buf_printf(&patch, "{\"status\":{\"observedGeneration\":%lld,\"ruleCount\":%zu,",
                  (long long)gen, w->rules);
    if (w->rendered)
        mm_buf_printf(&patch, "\"configMap\":\"%s\",\"networkPolicy\":", MM_POLICY_CONFIGMAP);
    if (w->rendered)
        mm_buf_put_json_str(&patch, npname, strlen(npname));
    else
        mm_buf_puts(&patch, "\"configMap\":null");
    mm_buf_printf(&patch, ",\"conditions\":[{\"type\":\"Ready\",\"status\":\"%s\",\"reason\":\"%s\","
                          "\"observedGeneration\":%lld,\"lastTransitionTime\":\"%s\",\"message\":",
                  w->ready ? "True" : "False", w->reason, (long long)gen, ts);
    mm_buf_put_json_str(&patch, w->message, strlen(w->message));
    if (mm_buf_puts(&patch, "}]}}") != MM_OK) {
        mm_buf_free(&patch);
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    }
    mm_err rc = ctrl_patch_status(wr, ns, name, &patch, eb);
    mm_buf_free(&patch);
    return rc;
}

mm_err ctrl_delete(ctrl_writer *w, const mm_k8s_ref *kind, const char *ns, const char *name,
                   const char *uid, mm_errbuf *eb)
{
    mm_k8s_ref ref = *kind;
    mm_k8s_result res = {0};
    mm_k8s_delete_opts d = {.precondition_uid = uid, .grace_period_seconds = -1};
    ref.ns = ns;
    ref.name = name;
    mm_err rc = mm_k8s_delete(w->client, &ref, &d, &res, eb);
    count(w);
    mm_k8s_result_clear(&res);
    return rc;
}
