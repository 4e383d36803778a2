/* lib/policy/render_stream.c: what the controller writes for a policy with spec.streams —
 * the ConfigMap maskmesh-stream-<policy> holding that one policy (the masker re-reads it when
 * kubelet swaps it, so rule changes apply without a restart) and the Deployment
 * maskmesh-stream-<policy> of maskmesh-stream replicas that share the input partitions as one
 * consumer group. The pod template carries a hash of spec.streams: a change of topics,
 * servers or credentials rolls the Deployment, a change of rules does not. */
#include "policy/policy_int.h"

#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define STREAM_CONFIG_DIR "/etc/maskmesh/stream"
#define STREAM_KEYS_DIR "/etc/maskmesh/keys"
#define STREAM_CRED_DIR "/etc/maskmesh/kafka"

static struct json_object *field(const struct json_object *o, const char *a)
{
    struct json_object *x = NULL;
    return o && json_object_object_get_ex(o, a, &x) ? x : NULL;
}

static const char *str(const struct json_object *o, const char *a)
{
    struct json_object *x = field(o, a);
    return x && json_object_is_type(x, json_type_string) ? json_object_get_string(x) : NULL;
}

/* Builds a json-c object from a printf'd JSON text: the objects here are small and fixed in
 * shape, and text keeps them readable. Strings from the policy go in through %s of
 * json_object_to_json_string (quoted and escaped), never raw. */
static struct json_object *parse(const mm_buf *b)
{
    return b->data ? json_tokener_parse(b->data) : NULL;
}

static mm_err quoted(mm_buf *b, const char *s)
{
    return mm_buf_put_json_str(b, s, strlen(s));
}

/* Hex SHA-256 of spec.streams' canonical JSON (sorted keys: the hash is stable). */
static mm_err streams_hash(const struct json_object *streams, char out[65])
{
    mm_buf c;
    unsigned char md[32];
    unsigned int n = 0;
    mm_err rc;

    mm_buf_init(&c, 0);
    if ((rc = mm_policy_canonical_json(streams, &c)) != MM_OK)
        goto out;
    if (!EVP_Digest(c.data, c.len, md, &n, EVP_sha256(), NULL) || n != 32) {
        rc = MM_EINVAL;
        goto out;
    }
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
out:
    mm_buf_free(&c);
    return rc;
}

/* metadata {name, namespace, labels, ownerReferences (controller: the policy)} as text. */
static mm_err meta(mm_buf *b, const char *objname, const char *ns, const char *policy,
                   const char *uid)
{
    mm_err rc;
    if ((rc = mm_buf_puts(b, "\"metadata\":{\"name\":")) || (rc = quoted(b, objname)) ||
        (ns && ((rc = mm_buf_puts(b, ",\"namespace\":")) || (rc = quoted(b, ns)))) ||
        (rc = mm_buf_printf(b, ",\"labels\":{\"%s\":\"%s\",\"app.kubernetes.io/name\":"
                            "\"maskmesh-stream\",\"%s\":", MM_MANAGED_BY_LABEL,
                            MM_MANAGED_BY_VALUE, MM_POLICY_LABEL)) ||
        (rc = quoted(b, policy)) || (rc = mm_buf_putc(b, '}')))
        return rc;
    if (uid && *uid && ((rc = mm_buf_puts(b, ",\"ownerReferences\":[{\"apiVersion\":"
                                          "\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\","
                                          "\"name\":")) ||
                        (rc = quoted(b, policy)) || (rc = mm_buf_puts(b, ",\"uid\":")) ||
                        (rc = quoted(b, uid)) ||
                        (rc = mm_buf_puts(b, ",\"controller\":true,\"blockOwnerDeletion\":true}]"))))
        return rc;
    return mm_buf_putc(b, '}');
}

mm_err mm_policy_render_stream(const struct json_object *policy, const mm_stream_render_opts *o,
                               struct json_object **cm_out, struct json_object **deploy_out,
                               mm_errbuf *eb)
{
    const struct json_object *md = field(policy, "metadata"), *spec = field(policy, "spec");
    const struct json_object *streams = field(spec, "streams");
    const char *name = str(md, "name"), *ns = str(md, "namespace"), *uid = str(md, "uid");
    const char *secret = str(streams, "credentialsSecret");
    struct json_object *cm = NULL, *dep = NULL, *one[1], *rep;
    mm_buf b, objname;
    char hash[65];
    long replicas = 1;
    mm_err rc = MM_OK;

    mm_buf_init(&b, 0);
    mm_buf_init(&objname, 0);
    if (!name || !streams)
        return mm_errf(eb, MM_EINVAL, "policy %s has no spec.streams", name ? name : "(unnamed)");
    if ((rep = field(streams, "replicas")) && json_object_is_type(rep, json_type_int))
        replicas = (long)json_object_get_int64(rep);
    if (mm_buf_printf(&objname, "maskmesh-stream-%s", name) != MM_OK)
        goto nomem;

    /* the ConfigMap: the namespace one's rendering, for this policy alone, renamed */
    one[0] = (struct json_object *)policy;
    if ((rc = mm_policy_render_configmap(one, 1, ns ? ns : "", &cm, eb)) != MM_OK)
        goto out;
    json_object_object_del(cm, "metadata");
    if ((rc = meta(&b, objname.data, ns, name, uid)) || (rc = mm_buf_putc(&b, '}')))
        goto nomem;
    {
        mm_buf wrapped;
        struct json_object *m;
        mm_buf_init(&wrapped, 0);
        if (mm_buf_putc(&wrapped, '{') || mm_buf_append(&wrapped, b.data, b.len)) {
            mm_buf_free(&wrapped);
            goto nomem;
        }
        m = parse(&wrapped);
        mm_buf_free(&wrapped);
        struct json_object *mv = field(m, "metadata");
        if (!mv || json_object_object_add(cm, "metadata", json_object_get(mv)) != 0) {
            json_object_put(m);
            goto nomem;
        }
        json_object_put(m);
    }

    if ((rc = streams_hash(streams, hash)) != MM_OK)
        goto nomem;
    mm_buf_reset(&b);
    /* the pod: non-root, read-only, no capabilities; probes on the admin port; SIGTERM
     * commits and leaves the group, well inside the grace period */
    if (mm_buf_puts(&b, "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",") ||
        meta(&b, objname.data, ns, name, uid) ||
        mm_buf_printf(&b, ",\"spec\":{\"replicas\":%ld,\"selector\":{\"matchLabels\":{"
                      "\"app.kubernetes.io/name\":\"maskmesh-stream\",\"%s\":", replicas,
                      MM_POLICY_LABEL) ||
        quoted(&b, name) ||
        mm_buf_printf(&b, "}},\"template\":{\"metadata\":{\"labels\":{\"app.kubernetes.io/name\":"
                      "\"maskmesh-stream\",\"%s\":", MM_POLICY_LABEL) ||
        quoted(&b, name) ||
        mm_buf_printf(&b, "},\"annotations\":{\"maskmesh.io/streams-hash\":\"%s\"}},"
                      "\"spec\":{\"terminationGracePeriodSeconds\":30,"
                      "\"securityContext\":{\"runAsNonRoot\":true,\"runAsUser\":65532,"
                      "\"seccompProfile\":{\"type\":\"RuntimeDefault\"}},"
                      "\"containers\":[{\"name\":\"maskmesh-stream\",\"image\":", hash) ||
        quoted(&b, o && o->image ? o->image : "maskmesh/maskmesh-stream:latest") ||
        mm_buf_puts(&b, ",\"imagePullPolicy\":") ||
        quoted(&b, o && o->pull_policy ? o->pull_policy : "IfNotPresent") ||
        mm_buf_printf(&b, ",\"args\":[\"--policy\",\"%s/%s\",\"--name\",", STREAM_CONFIG_DIR,
                      MM_POLICY_CONFIGMAP_KEY) ||
        quoted(&b, name) ||
        mm_buf_printf(&b, ",\"--keys\",\"%s\",\"--admin\",\"0.0.0.0:%d\"%s]",
                      STREAM_KEYS_DIR, MM_ADMIN_PORT,
                      secret ? ",\"--credentials\",\"" STREAM_CRED_DIR "\"" : "") ||
        mm_buf_printf(&b, ",\"ports\":[{\"name\":\"admin\",\"containerPort\":%d}],"
                      "\"readinessProbe\":{\"httpGet\":{\"path\":\"/readyz\",\"port\":\"admin\"}},"
                      "\"livenessProbe\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":\"admin\"}},"
                      "\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"64Mi\"},"
                      "\"limits\":{\"memory\":\"256Mi\"}},"
                      "\"securityContext\":{\"allowPrivilegeEscalation\":false,"
                      "\"readOnlyRootFilesystem\":true,\"capabilities\":{\"drop\":[\"ALL\"]}},"
                      "\"volumeMounts\":[{\"name\":\"policy\",\"mountPath\":\"%s\",\"readOnly\":true},"
                      "{\"name\":\"keys\",\"mountPath\":\"%s\",\"readOnly\":true}%s]}],",
                      MM_ADMIN_PORT, STREAM_CONFIG_DIR, STREAM_KEYS_DIR,
                      secret ? ",{\"name\":\"kafka\",\"mountPath\":\"" STREAM_CRED_DIR
                               "\",\"readOnly\":true}" : "") ||
        mm_buf_puts(&b, "\"volumes\":[{\"name\":\"policy\",\"configMap\":{\"name\":") ||
        quoted(&b, objname.data) ||
        mm_buf_puts(&b, "}},{\"name\":\"keys\",\"secret\":{\"secretName\":\"maskmesh-keys\","
                        "\"optional\":true}}") ||
        (secret && (mm_buf_puts(&b, ",{\"name\":\"kafka\",\"secret\":{\"secretName\":") ||
                    quoted(&b, secret) || mm_buf_puts(&b, "}}"))) ||
        mm_buf_puts(&b, "]}}}}"))
        goto nomem;
    if (!(dep = parse(&b))) {
        rc = mm_errf(eb, MM_EINVAL, "rendering the Deployment of %s gave invalid JSON", name);
        goto out;
    }
    /* what was rendered, as a label: the API server defaults a Deployment's spec, so the
     * controller compares this instead of the spec (the informers keep labels) */
    if (streams_hash(field(dep, "spec"), hash) != MM_OK ||
        json_object_object_add(field(field(dep, "metadata"), "labels"), MM_STREAM_RENDERED_LABEL,
                               json_object_new_string_len(hash, 40)) != 0)
        goto nomem;
    *cm_out = cm;
    *deploy_out = dep;
    cm = dep = NULL;
    goto out;
nomem:
    rc = mm_errf(eb, MM_ENOMEM, "out of memory rendering the stream of %s", name);
out:
    json_object_put(cm);
    json_object_put(dep);
    mm_buf_free(&b);
    mm_buf_free(&objname);
    return rc;
}
