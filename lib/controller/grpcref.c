/* lib/controller: a policy's spec.grpc reference checked against the cluster — the ConfigMap
 * key (binaryData, or data) holds a FileDescriptorSet that parses, and every fields path of
 * the policy names a field of some message in it — so a typo shows in the policy's status
 * instead of as gRPC calls failing in the sidecar. Read with a plain GET when a policy is
 * reconciled: the ConfigMap is the user's, outside the informers' managed-by selector, so a
 * change to it alone is seen at the next resync. */
#include "controller/controller_int.h"
#include "k8s/k8s.h"
#include "mask/mask.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static const mm_k8s_ref CONFIGMAPS = {"", "v1", "configmaps", NULL, NULL, NULL};

/* base64 text into out (bytes); false when it is not base64 */
static bool unbase64(const char *in, size_t n, mm_buf *out)
{
    size_t pad = 0;
    if (n % 4)
        return false;
    if (n && in[n - 1] == '=')
        pad++;
    if (n > 1 && in[n - 2] == '=')
        pad++;
    if (mm_buf_reserve(out, n / 4 * 3 + 1) != MM_OK)
        return false;
    int k = EVP_DecodeBlock((unsigned char *)out->data, (const unsigned char *)in, (int)n);
    if (k < 0)
        return false;
    out->len = (size_t)k - pad;
    return true;
}

char *ctrl_grpc_check(mm_k8s_client *k, const char *ns, const mm_policy *p, mm_buf *set,
                      mm_err *rc)
{
    mm_k8s_ref ref = CONFIGMAPS;
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    mm_pbdesc *d = NULL;
    mm_buf bin;
    char msg[MM_ERRBUF_SIZE + 128] = "", file[300];
    struct json_object *v = NULL;
    const char *where = "spec.grpc.descriptorSet.configMapKeyRef";

    *rc = MM_OK;
    if (!p->grpc)
        return NULL;
    mm_buf_init(&bin, 0);
    ref.ns = ns;
    ref.name = p->grpc->configmap;
    mm_err grc = mm_k8s_get(k, &ref, &res, &eb);
    if (grc == MM_ENOTFOUND) {
        snprintf(msg, sizeof(msg), "%s: ConfigMap %s not found", where, p->grpc->configmap);
    } else if (grc != MM_OK) {
        *rc = grc; /* the API, not the policy: reconcile again */
    } else if ((v = ctrl_field(res.body, "binaryData", p->grpc->key)) &&
               json_object_is_type(v, json_type_string)) {
        if (!unbase64(json_object_get_string(v), (size_t)json_object_get_string_len(v), &bin))
            snprintf(msg, sizeof(msg), "%s: ConfigMap %s binaryData %s is not base64", where,
                     p->grpc->configmap, p->grpc->key);
    } else if ((v = ctrl_field(res.body, "data", p->grpc->key)) &&
               json_object_is_type(v, json_type_string)) {
        if (mm_buf_append(&bin, json_object_get_string(v),
                          (size_t)json_object_get_string_len(v)) != MM_OK)
            *rc = MM_ENOMEM;
    } else {
        snprintf(msg, sizeof(msg), "%s: ConfigMap %s has no key %s", where, p->grpc->configmap,
                 p->grpc->key);
    }
    if (*rc == MM_OK && !msg[0]) {
        mm_err prc = mm_pbdesc_parse(bin.data ? bin.data : "", bin.len, &d, &eb);
        if (prc == MM_ENOMEM)
            *rc = prc;
        else if (prc != MM_OK)
            snprintf(msg, sizeof(msg), "%s: ConfigMap %s key %s: %s", where, p->grpc->configmap,
                     p->grpc->key, eb.msg);
        else if (mm_pbdesc_check_policy(d, p, &eb) != MM_OK)
            snprintf(msg, sizeof(msg), "%s", eb.msg);
        else if (!mm_policy_grpc_file(p->name, file, sizeof(file)))
            snprintf(msg, sizeof(msg), "%s: the policy's name is too long for the key %s%s "
                     "in ConfigMap %s", where, "<name>", MM_POLICY_GRPC_SUFFIX, MM_POLICY_CONFIGMAP);
        else { /* valid: the bytes go to the sidecars (mm_policy_render_grpc) */
            mm_buf t = *set;
            *set = bin;
            bin = t;
        }
    }
    mm_pbdesc_free(d);
    mm_buf_free(&bin);
    mm_k8s_result_clear(&res);
    if (*rc != MM_OK || !msg[0])
        return NULL;
    char *out = mm_strdup(msg);
    if (!out)
        *rc = MM_ENOMEM;
    return out;
}
