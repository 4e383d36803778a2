/* Unit tests for spec.grpc: what parses, and what is refused with which place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

static const char *const head =
    "apiVersion: maskmesh.io/v1alpha1\n"
    "kind: MaskingPolicy\n"
    "metadata: {name: orders, namespace: shop}\n"
    "spec:\n"
    "  selector: {}\n"
    "  rules:\n"
    "    - {name: card, fields: [\"$.payment.card_number\"], action: {type: mask}}\n"
    "  grpc:\n";

static mm_err parse(const char *grpc, mm_policy_set **set, mm_errbuf *eb)
{
    char text[4096];
    snprintf(text, sizeof(text), "%s%s", head, grpc);
    *set = NULL;
    return mm_policy_parse_yaml(text, strlen(text), "p.yaml", set, NULL, eb);
}

static void test_parses(void **state)
{
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    (void)state;
    assert_int_equal(parse("    descriptorSet:\n      configMapKeyRef: {name: shop-protos, "
                           "key: shop.protoset}\n    scanBytes: true\n", &set, &eb), MM_OK);
    const mm_policy_grpc *g = mm_policy_set_get(set, 0)->grpc;
    assert_non_null(g);
    assert_string_equal(g->configmap, "shop-protos");
    assert_string_equal(g->key, "shop.protoset");
    assert_true(g->scan_bytes);
    mm_policy_set_free(set);
    assert_int_equal(parse("    descriptorSet: {configMapKeyRef: {name: p, key: k}}\n", &set,
                           &eb), MM_OK);
    assert_false(mm_policy_set_get(set, 0)->grpc->scan_bytes);
    mm_policy_set_free(set);
}

static void test_refused(void **state)
{
    static const struct {
        const char *grpc, *want;
    } cases[] = {
        {"    scanBytes: true\n", "spec.grpc.descriptorSet: descriptorSet is required"},
        {"    descriptorSet: {}\n", "spec.grpc.descriptorSet.configMapKeyRef: configMapKeyRef "
                                    "is required"},
        {"    descriptorSet: {configMapKeyRef: {name: p}}\n",
         "spec.grpc.descriptorSet.configMapKeyRef.key: key is required"},
        {"    descriptorSet: {configMapKeyRef: {name: Bad_Name, key: k}}\n",
         "spec.grpc.descriptorSet.configMapKeyRef.name: \"Bad_Name\" is not a valid ConfigMap "
         "name"},
        {"    descriptorSet: {configMapKeyRef: {name: p, key: \"a/b\"}}\n",
         "spec.grpc.descriptorSet.configMapKeyRef.key: \"a/b\" is not a valid ConfigMap key"},
        {"    descriptorSet: {configMapKeyRef: {name: p, key: k}}\n    scanBytes: 3\n",
         "spec.grpc.scanBytes: expected true or false"},
        {"    descriptorSet: {configMapKeyRef: {name: p, key: k}, file: x}\n",
         "spec.grpc.descriptorSet.file: unknown field"},
        {"    - x\n", "spec.grpc: expected a map"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mm_policy_set *set = NULL;
        mm_errbuf eb = {{0}};
        assert_int_equal(parse(cases[i].grpc, &set, &eb), MM_EINVAL);
        assert_null(set);
        if (!strstr(eb.msg, cases[i].want))
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, eb.msg, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
