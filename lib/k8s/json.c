/* lib/k8s JSON helpers: a bounded parse with the byte of the problem, typed member access and
 * an add that owns its value whatever happens. Used by every file of the module; calls none. */
#include "k8s/k8s_int.h"

#include <string.h>

mm_err k8s_json_parse(const char *s, size_t len, struct json_object **out, mm_errbuf *eb)
{
    struct json_tokener *tok = json_tokener_new_ex(MM_K8S_JSON_DEPTH);
    struct json_object *o = NULL;
    mm_err rc = MM_OK;

    *out = NULL;
    if (!tok)
        return MM_ENOMEM;
    if (len > (size_t)INT32_MAX) {
        rc = mm_errf(eb, MM_ELIMIT, "JSON body too large");
        goto out;
    }
    o = json_tokener_parse_ex(tok, s, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    if (!o || je != json_tokener_success) {
        rc = mm_errf(eb, MM_EPARSE, "JSON at byte %zu: %s", json_tokener_get_parse_end(tok),
                     je == json_tokener_continue ? "unexpected end"
                                                 : json_tokener_error_desc(je));
        goto out;
    }
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t') {
            rc = mm_errf(eb, MM_EPARSE, "JSON at byte %zu: data after the value", i);
            goto out;
        }
    *out = o;
    o = NULL;
out:
    json_object_put(o);
    json_tokener_free(tok);
    return rc;
}

struct json_object *k8s_json_get(struct json_object *obj, const char *key, json_type t)
{
    struct json_object *v;
    if (!obj || !json_object_is_type(obj, json_type_object) ||
        !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, t))
        return NULL;
    return v;
}

const char *k8s_json_str(struct json_object *obj, const char *key)
{
    struct json_object *v = k8s_json_get(obj, key, json_type_string);
    return v ? json_object_get_string(v) : NULL;
}

int k8s_json_add(struct json_object *o, const char *key, struct json_object *v)
{
    if (!v)
        return -1;
    if (json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

const char *k8s_meta_str(struct json_object *obj, const char *key)
{
    return k8s_json_str(k8s_json_get(obj, "metadata", json_type_object), key);
}
