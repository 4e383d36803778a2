/* lib/admission: the sidecar configuration (defaults, --config YAML) and the pod template
 * of each workload kind maskctl inject understands. */
#include "admission/admission.h"
#include "admission/admission_int.h"

#include <stdio.h>
#include <string.h>

mm_err mm_adm_config_set(char **field, const char *value)
{
    char *v = NULL;
    if (value && !(v = mm_strdup(value)))
        return MM_ENOMEM;
    mm_free(*field);
    *field = v;
    return MM_OK;
}

void mm_adm_config_clear(mm_adm_config *c)
{
    if (!c)
        return;
    mm_free(c->image);
    mm_free(c->init_image);
    mm_free(c->pull_policy);
    mm_free(c->cpu_request);
    mm_free(c->memory_request);
    mm_free(c->cpu_limit);
    mm_free(c->memory_limit);
    memset(c, 0, sizeof(*c));
}

mm_err mm_adm_config_init(mm_adm_config *c)
{
    memset(c, 0, sizeof(*c));
    c->mode = MM_ADM_MODE_NAMED_PORT;
    c->hold_app = true;
    c->run_as_user = 65532;
    if (mm_adm_config_set(&c->image, "registry.example.com/maskmesh/proxy:" MM_ADM_VERSION) ||
        mm_adm_config_set(&c->cpu_request, "50m") || mm_adm_config_set(&c->memory_request, "64Mi") ||
        mm_adm_config_set(&c->memory_limit, "128Mi")) {
        mm_adm_config_clear(c);
        return MM_ENOMEM;
    }
    return MM_OK;
}

static mm_err set_str(char **field, json_object *v, const char *where, bool quantity, mm_errbuf *eb)
{
    if (!json_object_is_type(v, json_type_string) || !*json_object_get_string(v))
        return mm_errf(eb, MM_EINVAL, "%s: expected a non-empty string", where);
    if (quantity && !mm_adm_quantity_valid(json_object_get_string(v)))
        return mm_errf(eb, MM_EINVAL, "%s: \"%s\" is not a resource quantity", where,
                       json_object_get_string(v));
    return mm_adm_config_set(field, json_object_get_string(v));
}

static mm_err set_bool(bool *field, json_object *v, const char *where, mm_errbuf *eb)
{
    if (!json_object_is_type(v, json_type_boolean))
        return mm_errf(eb, MM_EINVAL, "%s: expected true or false", where);
    *field = json_object_get_boolean(v);
    return MM_OK;
}

static mm_err load_resources(mm_adm_config *c, json_object *res, const char *path, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    if (!json_object_is_type(res, json_type_object))
        return mm_errf(eb, MM_EINVAL, "%s: resources: expected a mapping", path);
    json_object_object_foreach(res, k, v)
    {
        bool req = strcmp(k, "requests") == 0;
        if (!req && strcmp(k, "limits") != 0)
            return mm_errf(eb, MM_EINVAL, "%s: resources.%s: unknown key (expected requests, "
                                          "limits)", path, k);
        if (!json_object_is_type(v, json_type_object))
            return mm_errf(eb, MM_EINVAL, "%s: resources.%s: expected a mapping", path, k);
        json_object_object_foreach(v, rk, rv)
        {
            char where[96];
            snprintf(where, sizeof(where), "%s: resources.%s.%s", path, k, rk);
            if (strcmp(rk, "cpu") == 0)
                rc = set_str(req ? &c->cpu_request : &c->cpu_limit, rv, where, true, eb);
            else if (strcmp(rk, "memory") == 0)
                rc = set_str(req ? &c->memory_request : &c->memory_limit, rv, where, true, eb);
            else
                rc = mm_errf(eb, MM_EINVAL, "%s: unknown resource (expected cpu, memory)", where);
            if (rc != MM_OK)
                return rc;
        }
    }
    return MM_OK;
}

mm_err mm_adm_config_load(mm_adm_config *c, const char *path, mm_errbuf *eb)
{
    char *text = NULL;
    size_t len;
    json_object *docs = NULL, *root;
    mm_err rc;

    if ((rc = mm_read_file(path, MM_ADM_CONFIG_MAX, &text, &len, eb)) != MM_OK)
        goto out;
    if ((rc = mm_adm_yaml_parse(text, len, path, &docs, eb)) != MM_OK)
        goto out;
    if (json_object_array_length(docs) == 0) /* an empty file: the defaults */
        goto out;
    root = json_object_array_get_idx(docs, 0);
    if (json_object_array_length(docs) != 1 || !json_object_is_type(root, json_type_object)) {
        rc = mm_errf(eb, MM_EINVAL, "%s: expected one mapping", path);
        goto out;
    }
    json_object_object_foreach(root, k, v)
    {
        char where[128];
        snprintf(where, sizeof(where), "%s: %s", path, k);
        if (strcmp(k, "image") == 0)
            rc = set_str(&c->image, v, where, false, eb);
        else if (strcmp(k, "initImage") == 0)
            rc = set_str(&c->init_image, v, where, false, eb);
        else if (strcmp(k, "imagePullPolicy") == 0) {
            rc = set_str(&c->pull_policy, v, where, false, eb);
            if (rc == MM_OK && strcmp(c->pull_policy, "Always") != 0 &&
                strcmp(c->pull_policy, "IfNotPresent") != 0 && strcmp(c->pull_policy, "Never") != 0)
                rc = mm_errf(eb, MM_EINVAL, "%s: expected Always, IfNotPresent or Never", where);
        } else if (strcmp(k, "mode") == 0) {
            const char *m = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
            if (strcmp(m, "named-port") == 0)
                c->mode = MM_ADM_MODE_NAMED_PORT;
            else if (strcmp(m, "iptables") == 0)
                c->mode = MM_ADM_MODE_IPTABLES;
            else
                rc = mm_errf(eb, MM_EINVAL, "%s: expected named-port or iptables", where);
        } else if (strcmp(k, "nativeSidecar") == 0)
            rc = set_bool(&c->native, v, where, eb);
        else if (strcmp(k, "holdApplicationUntilProxyStarts") == 0)
            rc = set_bool(&c->hold_app, v, where, eb);
        else if (strcmp(k, "runAsUser") == 0) {
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
                json_object_get_int64(v) > 2147483647)
                rc = mm_errf(eb, MM_EINVAL, "%s: expected a non-root uid (1-2147483647)", where);
            else
                c->run_as_user = (long)json_object_get_int64(v);
        } else if (strcmp(k, "resources") == 0)
            rc = load_resources(c, v, path, eb);
        else
            rc = mm_errf(eb, MM_EINVAL, "%s: unknown key (expected image, initImage, "
                                        "imagePullPolicy, mode, nativeSidecar, "
                                        "holdApplicationUntilProxyStarts, runAsUser, resources)",
                         where);
        if (rc != MM_OK)
            goto out;
    }
out:
    json_object_put(docs);
    mm_free(text);
    return rc;
}

json_object *mm_adm_pod_template(json_object *obj)
{
    static const char *const templated[] = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
                                            "Job", "ReplicationController"};
    const char *kind = jget_str(obj, "kind");

    if (!kind)
        return NULL;
    if (strcmp(kind, "Pod") == 0)
        return obj;
    for (size_t i = 0; i < MM_ARRAY_LEN(templated); i++)
        if (strcmp(kind, templated[i]) == 0)
            return jget_type(jget_type(obj, "spec", json_type_object), "template", json_type_object);
    if (strcmp(kind, "CronJob") == 0)
        return jget_type(jget_type(jget_type(jget_type(obj, "spec", json_type_object), "jobTemplate",
                                             json_type_object),
                                   "spec", json_type_object),
                         "template", json_type_object);
    return NULL;
}
