/* Unit tests for rendering: the ConfigMap is byte-stable whatever order policies come in,
 * holds what the sidecar parses back into the same policies, and names every owner; the
 * NetworkPolicy admits only the sidecar port (and the admin port from monitoring peers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

static struct json_object *policy_obj(const char *name, const char *uid, const char *extra)
{
    char buf[2048];
    snprintf(buf, sizeof(buf),
             "{\"apiVersion\":\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\","
             "\"metadata\":{\"name\":\"%s\",\"namespace\":\"shop\",\"uid\":\"%s\",\"generation\":2,"
             "\"resourceVersion\":\"77\",\"managedFields\":[{\"manager\":\"kubectl\"}]},"
             "\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"%s\"}},\"rules\":[{\"name\":\"r\","
             "\"detectors\":[\"email\"],\"action\":{\"type\":\"redact\"}}]%s},"
             "\"status\":{\"observedGeneration\":1}}", name, uid, name, extra);
    struct json_object *o = json_tokener_parse(buf);
    assert_non_null(o);
    return o;
}

static const char *cm_text(struct json_object *cm)
{
    struct json_object *data = NULL, *t = NULL;
    assert_true(json_object_object_get_ex(cm, "data", &data));
    assert_true(json_object_object_get_ex(data, MM_POLICY_CONFIGMAP_KEY, &t));
    return json_object_get_string(t);
}

static void test_configmap(void **state)
{
    struct json_object *a = policy_obj("alpha", "u-a", ""), *b = policy_obj("beta", "u-b", "");
    struct json_object *ab[] = {a, b}, *ba[] = {b, a}, *c1 = NULL, *c2 = NULL, *x;
    mm_errbuf eb;
    (void)state;
    assert_int_equal(mm_policy_render_configmap(ab, 2, "shop", &c1, &eb), MM_OK);
    assert_int_equal(mm_policy_render_configmap(ba, 2, "shop", &c2, &eb), MM_OK);
    /* byte-stable: the same set renders the same, whatever the order */
    assert_string_equal(json_object_to_json_string(c1), json_object_to_json_string(c2));
    const char *text = cm_text(c1);
    assert_null(strstr(text, "managedFields"));
    assert_null(strstr(text, "resourceVersion"));
    assert_null(strstr(text, "status"));
    assert_true(strstr(text, "\"alpha\"") < strstr(text, "\"beta\""));
    /* what the sidecar reads back is the same two policies */
    mm_policy_set *set = NULL;
    assert_int_equal(mm_policy_parse_yaml(text, strlen(text), "policies.yaml", &set, NULL, &eb), MM_OK);
    assert_int_equal(mm_policy_set_count(set), 2);
    assert_string_equal(mm_policy_set_get(set, 0)->name, "alpha");
    assert_string_equal(mm_policy_set_get(set, 1)->uid, "u-b");
    assert_int_equal(mm_policy_set_get(set, 1)->generation, 2);
    mm_policy_set_free(set);
    /* owners and labels */
    assert_true(json_object_object_get_ex(c1, "metadata", &x));
    assert_string_equal(json_object_get_string(json_object_object_get(x, "name")), MM_POLICY_CONFIGMAP);
    struct json_object *owners = json_object_object_get(x, "ownerReferences");
    assert_int_equal(json_object_array_length(owners), 2);
    assert_string_equal(json_object_get_string(json_object_object_get(json_object_array_get_idx(owners, 0), "uid")), "u-a");
    assert_null(json_object_object_get(json_object_array_get_idx(owners, 0), "controller"));
    assert_string_equal(json_object_get_string(json_object_object_get(
                            json_object_object_get(x, "labels"), MM_MANAGED_BY_LABEL)), "maskmesh");
    json_object_put(c1);
    json_object_put(c2);
    json_object_put(a);
    json_object_put(b);
}

static void test_networkpolicy(void **state)
{
    struct json_object *p = policy_obj("payments-api", "u-1",
                                       ",\"network\":{\"allowFrom\":[{\"podSelector\":{\"matchLabels\":"
                                       "{\"role\":\"frontend\"}}}]}");
    struct json_object *mon = json_tokener_parse("[{\"namespaceSelector\":{\"matchLabels\":"
                                                 "{\"kubernetes.io/metadata.name\":\"monitoring\"}}}]");
    struct json_object *np = NULL, *spec, *in;
    mm_errbuf eb;
    (void)state;
    assert_int_equal(mm_policy_render_networkpolicy(p, mon, &np, &eb), MM_OK);
    struct json_object *meta = json_object_object_get(np, "metadata");
    assert_string_equal(json_object_get_string(json_object_object_get(meta, "name")), "maskmesh-payments-api");
    assert_string_equal(json_object_get_string(json_object_object_get(meta, "namespace")), "shop");
    struct json_object *ref = json_object_array_get_idx(json_object_object_get(meta, "ownerReferences"), 0);
    assert_true(json_object_get_boolean(json_object_object_get(ref, "controller")));
    assert_string_equal(json_object_get_string(json_object_object_get(ref, "uid")), "u-1");
    spec = json_object_object_get(np, "spec");
    assert_string_equal(json_object_to_json_string_ext(json_object_object_get(spec, "podSelector"), 0),
                        "{\"matchLabels\":{\"app\":\"payments-api\"}}");
    assert_string_equal(json_object_to_json_string_ext(json_object_object_get(spec, "policyTypes"), 0),
                        "[\"Ingress\"]");
    in = json_object_object_get(spec, "ingress");
    assert_int_equal(json_object_array_length(in), 2);
    assert_string_equal(json_object_to_json_string_ext(json_object_array_get_idx(in, 0), 0),
                        "{\"ports\":[{\"protocol\":\"TCP\",\"port\":15480},{\"protocol\":\"TCP\","
                        "\"port\":\"maskmesh-redir\"}],\"from\":[{\"podSelector\":"
                        "{\"matchLabels\":{\"role\":\"frontend\"}}}]}");
    assert_int_equal(json_object_get_int(json_object_object_get(json_object_array_get_idx(
                         json_object_object_get(json_object_array_get_idx(in, 1), "ports"), 0), "port")),
                     MM_ADMIN_PORT);
    json_object_put(np);

    /* no allowFrom and no monitoring: any source, but still only the sidecar port */
    struct json_object *q = policy_obj("open", "u-2", "");
    assert_int_equal(mm_policy_render_networkpolicy(q, NULL, &np, &eb), MM_OK);
    in = json_object_object_get(json_object_object_get(np, "spec"), "ingress");
    assert_int_equal(json_object_array_length(in), 1);
    assert_string_equal(json_object_to_json_string_ext(json_object_array_get_idx(in, 0), 0),
                        "{\"ports\":[{\"protocol\":\"TCP\",\"port\":15480},{\"protocol\":\"TCP\","
                        "\"port\":\"maskmesh-redir\"}]}");
    json_object_put(np);
    struct json_object *bad = json_tokener_parse("{\"metadata\":{\"name\":\"x\"},\"spec\":{}}");
    assert_int_equal(mm_policy_render_networkpolicy(bad, NULL, &np, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "spec.selector"));
    json_object_put(bad);
    json_object_put(q);
    json_object_put(p);
    json_object_put(mon);
}

static void test_canonical(void **state)
{
    mm_buf b;
    struct json_object *o = json_tokener_parse("{\"b\":[1,{\"z\":null,\"a\":\"\\u00e9\"}],\"a\":{}}");
    (void)state;
    mm_buf_init(&b, 0);
    assert_int_equal(mm_policy_canonical_json(o, &b), MM_OK);
    assert_string_equal(mm_buf_cstr(&b), "{\n  \"a\": {},\n  \"b\": [\n    1,\n    {\n      \"a\": \"\xc3\xa9\",\n"
                                         "      \"z\": null\n    }\n  ]\n}\n");
    mm_buf_free(&b);
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_configmap), cmocka_unit_test(test_networkpolicy),
        cmocka_unit_test(test_canonical),
    };
    return cmocka_run_group_tests_name("policy-render", tests, NULL, NULL);
}
