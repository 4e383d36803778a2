/* lib/policy: spec.grpc — where a policy's gRPC bodies find their protobuf descriptors: a
 * FileDescriptorSet (protoc --include_imports --descriptor_set_out) in a ConfigMap key, which
 * the sidecar mounts beside the policies; and whether detectors read bytes fields. */
#include "policy/policy_int.h"

#include <stdio.h>
#include <string.h>

#define CONFIGMAP_KEY_MAX 253

bool mm_policy_grpc_file(const char *name, char *out, size_t size)
{
    int n = snprintf(out, size, "%s%s", name, MM_POLICY_GRPC_SUFFIX);
    return n > 0 && (size_t)n < size && n <= CONFIGMAP_KEY_MAX;
}

void grpc_build(bctx *c, const node *n, mm_policy *p)
{
    static const char *const keys[] = {"descriptorSet", "scanBytes", NULL};
    static const char *const ds_keys[] = {"configMapKeyRef", NULL};
    static const char *const ref_keys[] = {"name", "key", NULL};
    const node *f, *ref;
    mm_policy_grpc *g;

    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    if (!(g = p->grpc = mm_calloc(1, sizeof(*g)))) {
        c->oom = true;
        return;
    }
    if ((f = node_get(n, "scanBytes"))) {
        size_t o = push_key(c, "scanBytes");
        want_bool(c, f, &g->scan_bytes);
        pop(c, o);
    }
    size_t o1 = push_key(c, "descriptorSet");
    if (!(f = node_get(n, "descriptorSet"))) {
        bad(c, n, "descriptorSet is required: the ConfigMap key holding the FileDescriptorSet");
    } else if (is_map(c, f)) {
        check_keys(c, f, ds_keys);
        size_t o2 = push_key(c, "configMapKeyRef");
        if (!(ref = node_get(f, "configMapKeyRef"))) {
            bad(c, f, "configMapKeyRef is required");
        } else if (is_map(c, ref)) {
            check_keys(c, ref, ref_keys);
            const node *name = node_get(ref, "name"), *key = node_get(ref, "key");
            size_t o3 = push_key(c, "name");
            if (!name)
                bad(c, ref, "name is required");
            else if ((g->configmap = want_str(c, name, "a ConfigMap name")) &&
                     !dns_subdomain(g->configmap))
                bad(c, name, "\"%.64s\" is not a valid ConfigMap name", g->configmap);
            pop(c, o3);
            o3 = push_key(c, "key");
            if (!key)
                bad(c, ref, "key is required");
            else if ((g->key = want_str(c, key, "a ConfigMap key")) && !secret_key_ok(g->key))
                bad(c, key, "\"%.64s\" is not a valid ConfigMap key ([-._a-zA-Z0-9]+)", g->key);
            pop(c, o3);
        }
        pop(c, o2);
    }
    pop(c, o1);
}

void grpc_free(mm_policy_grpc *g)
{
    if (!g)
        return;
    mm_free(g->configmap);
    mm_free(g->key);
    mm_free(g);
}
