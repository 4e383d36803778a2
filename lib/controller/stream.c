/* lib/controller: a policy's stream objects and status.stream (controller_int.h). */
#include <stdio.h>
#include <string.h>

#include "controller/controller_int.h"

mm_err ctrl_reconcile_stream(ctrl_writer *w, const char *image, mm_k8s_informer *cms,
                             mm_k8s_informer *deps, struct json_object *p, const char *ns,
                             const char *name, mm_errbuf *eb)
{
    struct json_object *cm = NULL, *dep = NULL, *cm_a = NULL, *dep_a = NULL, *want_st = NULL;
    mm_stream_render_opts ro = {.image = image};
    char obj[300];
    mm_err rc = MM_OK;
    mm_buf patch;

    mm_buf_init(&patch, 0);
    snprintf(obj, sizeof(obj), MM_STREAM_PREFIX "%.230s", name);
    cm_a = mm_k8s_informer_get(cms, ns, obj);
    dep_a = mm_k8s_informer_get(deps, ns, obj);
    if (!ctrl_field(ctrl_field(p, "spec", NULL), "streams", NULL)) {
        const mm_k8s_ref *kinds[2] = {&ctrl_ref_deploys, &ctrl_ref_configmaps};
        struct json_object *have[2] = {dep_a, cm_a};
        for (int i = 0; i < 2 && rc == MM_OK; i++)
            if (have[i] && (rc = ctrl_delete(w, kinds[i], ns, obj, ctrl_meta_str(have[i], "uid"), eb)) == MM_ENOTFOUND)
                rc = MM_OK;
        goto out;
    }
    if ((rc = mm_policy_render_stream(p, &ro, &cm, &dep, eb)) != MM_OK)
        goto out;
    if ((!cm_a || !ctrl_same(cm_a, cm, "data", MM_POLICY_CONFIGMAP_KEY) || !ctrl_owners_same(cm_a, cm) ||
         !ctrl_label_same(cm_a, cm)) &&
        (rc = ctrl_apply(w, &ctrl_ref_configmaps, ns, obj, cm, eb)) != MM_OK)
        goto out;
    if ((!dep_a || !ctrl_owners_same(dep_a, dep) || !ctrl_label_same(dep_a, dep)) &&
        (rc = ctrl_apply(w, &ctrl_ref_deploys, ns, obj, dep, eb)) != MM_OK)
        goto out;
    /* status.stream: what the Deployment reports (none yet: 0 ready) and, from its ready
     * pods' metrics, the lag (stream_lag.c says why the controller asks the pods) */
    int64_t want = json_object_get_int64(ctrl_field(ctrl_field(dep, "spec", NULL), "replicas", NULL));
    int64_t ready = json_object_get_int64(ctrl_field(ctrl_field(dep_a, "status", NULL), "readyReplicas", NULL));
    ctrl_lag lag = {0};
    mm_errbuf leb = {{0}};
    if (ready > 0 && ctrl_stream_lag(w->client, ns, dep, &lag, &leb) != MM_OK) {
        /* no pod list (RBAC of an older chart?): the lag is unknown, the rest still holds */
        mm_log(MM_LOG_WARN, "reading the maskers' lag failed", "policy", name, "namespace", ns,
               "error", leb.msg, NULL);
        memset(&lag, 0, sizeof(lag));
    }
    /* Ready: some masker runs and no partition is stopped at a record it cannot mask */
    bool ok = ready > 0 && lag.stopped == 0;
    if (!(want_st = json_object_new_object())) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    json_object_object_add(want_st, "deployment", json_object_new_string(obj));
    json_object_object_add(want_st, "replicas", json_object_new_int64(want));
    json_object_object_add(want_st, "readyReplicas", json_object_new_int64(ready));
    json_object_object_add(want_st, "ready", json_object_new_boolean(ok));
    static const char *const lag_keys[] = {"lag", "maxPartitionLag", "partitions",
                                           "stoppedPartitions", "reportingReplicas"};
    const int64_t lag_vals[] = {lag.lag, lag.max_partition_lag, lag.partitions, lag.stopped, lag.pods};
    for (size_t i = 0; lag.known && i < sizeof(lag_keys) / sizeof(*lag_keys); i++)
        json_object_object_add(want_st, lag_keys[i], json_object_new_int64(lag_vals[i]));
    struct json_object *st = ctrl_field(ctrl_field(p, "status", NULL), "stream", NULL);
    if (st && json_object_equal(st, want_st))
        goto out;
    /* a merge patch: the lag fields of an earlier answer go (null) when no pod answers now */
    for (size_t i = 0; !lag.known && i < sizeof(lag_keys) / sizeof(*lag_keys); i++)
        json_object_object_add(want_st, lag_keys[i], NULL);
    if (mm_buf_printf(&patch, "{\"status\":{\"stream\":%s}}",
                      json_object_to_json_string_ext(want_st, JSON_C_TO_STRING_PLAIN)) != MM_OK) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    rc = ctrl_patch_status(w, ns, name, &patch, eb);
out:
    json_object_put(want_st);
    mm_buf_free(&patch);
    json_object_put(cm);
    json_object_put(dep);
    json_object_put(cm_a);
    json_object_put(dep_a);
    return rc;
}
