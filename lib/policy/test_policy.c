/* Unit tests for lib/policy: every input form, the DESIGN.md example model, validation
 * errors with their places, the JSONPath grammar, labels and selectors, PCI lint, and
 * allocation failures at every step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

#define HEAD "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p1}\n"

static mm_policy_set *parse_ok(const char *yaml)
{
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    mm_err rc = mm_policy_parse_yaml(yaml, strlen(yaml), "t.yaml", &set, NULL, &eb);
    if (rc != MM_OK)
        fail_msg("parse failed: %s", eb.msg);
    return set;
}

/* Parses `yaml`, expects failure, and that some error contains `want`. */
static void parse_bad(const char *yaml, const char *want)
{
    mm_policy_set *set = NULL;
    mm_diags *d = NULL;
    mm_errbuf eb = {{0}};
    bool found = false;
    assert_int_equal(mm_diags_new(&d), MM_OK);
    assert_int_not_equal(mm_policy_parse_yaml(yaml, strlen(yaml), "t.yaml", &set, d, &eb), MM_OK);
    assert_null(set);
    for (size_t i = 0; i < mm_diags_count(d); i++)
        found |= strstr(mm_diags_get(d, i, NULL), want) != NULL;
    if (!found) {
        for (size_t i = 0; i < mm_diags_count(d); i++)
            printf("  diag: %s\n", mm_diags_get(d, i, NULL));
        fail_msg("no error contains \"%s\" (first: %s)", want, eb.msg);
    }
    assert_true(eb.msg[0] != '\0');
    mm_diags_free(d);
}

static void test_design_example(void **state)
{
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    (void)state;
    assert_int_equal(mm_policy_load("tests/data/policies/payments.yaml", &set, NULL, &eb), MM_OK);
    assert_int_equal(mm_policy_set_count(set), 1);
    const mm_policy *p = mm_policy_set_get(set, 0);
    assert_string_equal(p->name, "payments-api");
    assert_string_equal(p->ns, "shop");
    assert_string_equal(p->port, "8080");
    assert_int_equal(p->mode, MM_MODE_ENFORCE);
    assert_int_equal(p->on_error, MM_ONERR_BLOCK);
    assert_int_equal(p->direction, MM_DIR_RESPONSE);
    assert_int_equal(p->selector.n_labels, 1);
    assert_string_equal(p->selector.label_keys[0], "app");
    assert_string_equal(p->selector.label_values[0], "payments");
    assert_int_equal(p->n_rules, 3);
    const mm_rule *card = &p->rules[0];
    assert_string_equal(card->name, "card");
    assert_int_equal(card->n_fields, 3);
    assert_string_equal(card->fields[1].text, "$..pan");
    assert_true(card->fields[1].steps[0].descendant);
    assert_int_equal(card->fields[2].steps[1].kind, MM_STEP_WILDCARD);
    assert_int_equal(card->n_detectors, 1);
    assert_string_equal(card->detectors[0], "credit_card");
    assert_int_equal(card->action.type, MM_ACTION_MASK);
    assert_int_equal(card->action.keep_first, 6);
    assert_int_equal(card->action.keep_last, 4);
    assert_string_equal(card->action.mask_char, "*");
    assert_true(card->action.preserve_format);
    assert_int_equal(p->rules[1].action.type, MM_ACTION_TOKENIZE);
    assert_string_equal(p->rules[1].action.key, "payments");
    assert_string_equal(p->rules[2].patterns[0].name, "employee_id");
    assert_string_equal(p->rules[2].patterns[0].regex, "EMP-[0-9]{6}");
    assert_string_equal(p->rules[2].action.replacement, "[REDACTED]");
    assert_int_equal(p->n_headers, 2);
    assert_string_equal(p->headers[0].name, "Authorization");
    assert_string_equal(p->headers[0].action.replacement, "[REDACTED]");
    assert_int_equal(p->headers[1].action.type, MM_ACTION_REMOVE);
    assert_int_equal(p->n_exemptions, 1);
    assert_string_equal(p->exemptions[0].principals[0], "spiffe://cluster.local/ns/shop/sa/billing");
    assert_string_equal(p->exemptions[0].rules[0], "card");
    assert_string_equal(p->allow_from_json, "[{\"podSelector\":{\"matchLabels\":{\"role\":\"frontend\"}}}]");
    mm_policy_set_free(set);
}

static void test_forms(void **state)
{
    const char *rule = "spec: {selector: {}, rules: [{name: r, detectors: [email], action: {type: redact}}]}\n";
    char buf[2048];
    mm_policy_set *set;
    mm_errbuf eb;
    (void)state;

    /* multi-document YAML with an empty document */
    snprintf(buf, sizeof(buf), "---\n" HEAD "%s---\n---\n%s%s", rule,
             "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p2}\n", rule);
    set = parse_ok(buf);
    assert_int_equal(mm_policy_set_count(set), 2);
    assert_string_equal(mm_policy_set_get(set, 1)->name, "p2");
    assert_int_equal(mm_policy_set_get(set, 0)->mode, MM_MODE_ENFORCE);
    mm_policy_set_free(set);

    /* a YAML list, and a List */
    set = parse_ok("- apiVersion: maskmesh.io/v1alpha1\n  kind: MaskingPolicy\n  metadata: {name: a}\n"
                   "  spec: {selector: {}, rules: [{name: r, fields: [$.x], action: {type: remove}}]}\n");
    assert_int_equal(mm_policy_set_count(set), 1);
    mm_policy_set_free(set);
    set = parse_ok("kind: List\nitems:\n- apiVersion: maskmesh.io/v1alpha1\n  kind: MaskingPolicy\n"
                   "  metadata: {name: a}\n  spec: {selector: {}, rules: [{name: r, fields: [$.x], "
                   "action: {type: hash}}]}\n");
    assert_int_equal(mm_policy_set_get(set, 0)->rules[0].action.type, MM_ACTION_HASH);
    assert_null(mm_policy_set_get(set, 0)->rules[0].action.key);
    mm_policy_set_free(set);

    /* JSON as the API returns it (sorted keys, status, managedFields) */
    const char *json = "{\"apiVersion\":\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\","
                       "\"metadata\":{\"generation\":3,\"managedFields\":[],\"name\":\"p\","
                       "\"namespace\":\"shop\",\"resourceVersion\":\"481502\",\"uid\":\"u-1\"},"
                       "\"spec\":{\"port\":\"http\",\"rules\":[{\"action\":{\"type\":\"replace\","
                       "\"value\":\"x\"},\"name\":\"r\",\"fields\":[\"$['a b'][0]\"]}],"
                       "\"selector\":{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"In\","
                       "\"values\":[\"web\"]}]}},\"status\":{\"observedGeneration\":2}}";
    assert_int_equal(mm_policy_parse_json(json, strlen(json), "api", &set, NULL, &eb), MM_OK);
    const mm_policy *p = mm_policy_set_get(set, 0);
    assert_int_equal(p->generation, 3);
    assert_string_equal(p->resource_version, "481502");
    assert_string_equal(p->uid, "u-1");
    assert_string_equal(p->port, "http");
    assert_string_equal(p->rules[0].fields[0].steps[0].name, "a b");
    assert_int_equal(p->rules[0].fields[0].steps[1].index, 0);
    assert_int_equal(p->selector.exprs[0].op, MM_SEL_IN);
    mm_policy_set_free(set);

    /* from a json-c object */
    struct json_object *o = json_tokener_parse(json);
    mm_policy *one = NULL;
    assert_int_equal(mm_policy_from_json(o, "shop/p", &one, NULL, &eb), MM_OK);
    assert_string_equal(one->name, "p");
    mm_policy_free(one);
    json_object_put(o);
}

static void test_errors_name_places(void **state)
{
    (void)state;
    parse_bad(HEAD "spec:\n  selector: {}\n  rules:\n    - name: r\n      detectors: [email]\n"
              "      action: {type: frobnicate}\n",
              "t.yaml:9:22: spec.rules[0].action.type: unknown action type \"frobnicate\"");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, fields: [\"$.a.\"], action: {type: redact}}]}\n",
              "spec.rules[0].fields[0]: invalid JSONPath: offset 4: expected a member name");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, patterns: [{name: x, regex: \"a[\"}], "
              "action: {type: redact}}]}\n",
              "spec.rules[0].patterns[0].regex: the regex does not compile");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, detectors: [credit_cards], action: {type: redact}}]}\n",
              "spec.rules[0].detectors[0]: unknown detector \"credit_cards\"");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, detectors: [email], action: {type: mask, keepLast: 65}}]}\n",
              "spec.rules[0].action.keepLast: must be from 0 to 64");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, detectors: [email], action: {type: mask, char: \"**\"}}]}\n",
              "spec.rules[0].action.char: must be exactly one character");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, detectors: [email], action: {type: tokenize}}]}\n",
              "spec.rules[0].action: tokenize requires key");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, detectors: [email], action: {type: replace}}]}\n",
              "replace requires value");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, detectors: [email], action: {type: mask, key: k}}]}\n",
              "spec.rules[0].action.key: does not apply to action type mask");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, detectors: [email], action: {type: redact}},"
              " {name: r, detectors: [phone], action: {type: redact}}]}\n",
              "spec.rules[1].name: duplicate rule name \"r\"");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, action: {type: redact}}]}\n",
              "a rule needs at least one of fields, detectors or patterns");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: redact, keeplast: 4}}]}\n",
              "spec.rules[0].action.keeplast: unknown field");
    parse_bad(HEAD "spec: {selector: {}, rulez: []}\n", "spec.rulez: unknown field");
    parse_bad(HEAD "spec: {selector: {}, port: 70000, rules: [{name: r, fields: [$.a], action: {type: redact}}]}\n",
              "spec.port: must be from 1 to 65535");
    parse_bad(HEAD "spec: {selector: {}, port: \"8080\", rules: [{name: r, fields: [$.a], action: {type: redact}}]}\n",
              "spec.port: \"8080\" is neither a port number");
    parse_bad(HEAD "spec: {selector: {}, mode: loud, rules: [{name: r, fields: [$.a], action: {type: redact}}]}\n",
              "spec.mode: unknown value \"loud\" (expected enforce or audit)");
    parse_bad(HEAD "spec: {selector: {matchExpressions: [{key: a, operator: In}]}, rules: [{name: r, "
              "fields: [$.a], action: {type: redact}}]}\n",
              "spec.selector.matchExpressions[0]: values must be non-empty for In and NotIn");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: redact}}], "
              "exemptions: [{principals: [x], rules: [nope]}]}\n",
              "spec.exemptions[0].rules[0]: no rule named \"nope\"");
    parse_bad(HEAD "spec: {rules: [{name: r, fields: [$.a], action: {type: redact}}]}\n",
              "spec: selector is required");
    parse_bad("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {}\n",
              "t.yaml:1:13: apiVersion: expected maskmesh.io/v1alpha1");
    parse_bad(HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: redact}}], "
              "network: {allowFrom: [{ipBlock: {cidr: 10.0.0.0}}]}}\n",
              "spec.network.allowFrom[0].ipBlock.cidr: expected a CIDR");
    parse_bad("a: [1, 2\n", "t.yaml:2:1: YAML:");
    parse_bad("a: &x 1\nb: *x\n", "aliases");
    parse_bad("a: 1\na: 2\n", "t.yaml:2:1: duplicate key \"a\"");
    parse_bad("", "no MaskingPolicy in the input");

    /* JSON places name the path and the byte offset of syntax errors */
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    assert_int_equal(mm_policy_parse_json("{\"a\": }", 7, "x.json", &set, NULL, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "x.json: JSON: offset"));
    assert_int_equal(mm_policy_parse_json("{} x", 4, "x.json", &set, NULL, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "offset 3: unexpected data after the value"));
}

static void test_collects_all_errors(void **state)
{
    mm_diags *d;
    mm_policy_set *set = NULL;
    const char *y = HEAD "spec: {selector: {}, mode: x, onError: y, rules: [{name: R, fields: [a], "
                         "action: {type: mask, keepFirst: -1}}]}\n";
    (void)state;
    assert_int_equal(mm_diags_new(&d), MM_OK);
    assert_int_equal(mm_policy_parse_yaml(y, strlen(y), "t.yaml", &set, d, NULL), MM_EINVAL);
    assert_int_equal(mm_diags_errors(d), 5);
    mm_diags_free(d);
}

static void test_paths(void **state)
{
    static const struct {
        const char *text;
        size_t steps; /* SIZE_MAX: invalid */
        const char *err;
    } rows[] = {
        {"$", 0, NULL},
        {"$.a.b", 2, NULL},
        {"$['a.b']", 1, NULL},
        {"$[\"q\\\"x\"]", 1, NULL},
        {"$.items[*].card", 3, NULL},
        {"$.items[12]", 2, NULL},
        {"$..pan", 1, NULL},
        {"$..['p n']", 1, NULL},
        {"$..*", 1, NULL},
        {"$.*.x", 2, NULL},
        {"a.b", SIZE_MAX, "offset 0: a path starts with \"$\""},
        {"$.", SIZE_MAX, "offset 2: expected a member name after \".\""},
        {"$..", SIZE_MAX, "offset 3: expected a member name after \"..\""},
        {"$[", SIZE_MAX, "offset 2: expected \"*\""},
        {"$['a'", SIZE_MAX, "offset 5: expected \"]\" after the quoted name"},
        {"$['a", SIZE_MAX, "unterminated quoted name"},
        {"$[-1]", SIZE_MAX, "offset 2"},
        {"$[1x]", SIZE_MAX, "offset 2: expected an index"},
        {"$a", SIZE_MAX, "offset 1: expected \".\", \"..\" or \"[\""},
        {"$['a\\n']", SIZE_MAX, "only \\\\, \\' and \\\" escapes"},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_path p = {0};
        mm_errbuf eb = {{0}};
        mm_err rc = mm_path_parse(rows[i].text, &p, &eb);
        if (rows[i].steps == SIZE_MAX) {
            if (rc == MM_OK)
                fail_msg("%s: parsed but should not", rows[i].text);
            if (!strstr(eb.msg, rows[i].err))
                fail_msg("%s: message \"%s\" lacks \"%s\"", rows[i].text, eb.msg, rows[i].err);
        } else {
            if (rc != MM_OK)
                fail_msg("%s: %s", rows[i].text, eb.msg);
            assert_int_equal(p.n_steps, rows[i].steps);
        }
        mm_path_clear(&p);
    }
    mm_path p;
    mm_errbuf eb;
    assert_int_equal(mm_path_parse("$[\"q\\\"x\"]", &p, &eb), MM_OK);
    assert_string_equal(p.steps[0].name, "q\"x");
    mm_path_clear(&p);
}

static void test_labels_and_selectors(void **state)
{
    const char *file = "app=\"payments\"\npod-template-hash=\"7c9d8b5f4d\"\n"
                       "note=\"a \\\"q\\\" \\u00e9\\x41\"\n\ntier=\"\"\n";
    mm_labels l = {0};
    mm_errbuf eb;
    (void)state;
    assert_int_equal(mm_labels_parse(file, strlen(file), "labels", &l, &eb), MM_OK);
    assert_int_equal(l.n, 4);
    assert_string_equal(mm_labels_get(&l, "app"), "payments");
    assert_string_equal(mm_labels_get(&l, "note"), "a \"q\" \xc3\xa9" "A");
    assert_string_equal(mm_labels_get(&l, "tier"), "");
    assert_null(mm_labels_get(&l, "nope"));

    mm_policy_set *set = parse_ok(HEAD "spec:\n  selector:\n    matchLabels: {app: payments}\n"
                                  "    matchExpressions:\n"
                                  "      - {key: tier, operator: Exists}\n"
                                  "      - {key: env, operator: NotIn, values: [prod]}\n"
                                  "      - {key: gone, operator: DoesNotExist}\n"
                                  "  rules: [{name: r, fields: [$.a], action: {type: redact}}]\n");
    const mm_selector *sel = &mm_policy_set_get(set, 0)->selector;
    assert_true(mm_selector_matches(sel, &l));
    mm_labels_clear(&l);
    assert_int_equal(mm_labels_parse("app=\"payments\"\n", 15, "labels", &l, &eb), MM_OK);
    assert_false(mm_selector_matches(sel, &l)); /* tier does not exist */
    mm_labels_clear(&l);
    mm_policy_set_free(set);

    mm_selector empty = {0};
    assert_true(mm_selector_matches(&empty, &l));
    assert_int_equal(mm_labels_parse("a=b\n", 4, "labels", &l, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "labels:1:"));
    assert_int_equal(mm_labels_parse("ok=\"1\"\n=\"x\"\n", 12, "labels", &l, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "labels:2:"));
}

static void test_lint(void **state)
{
    mm_diags *d;
    (void)state;
    mm_policy_set *set = parse_ok(
        HEAD "spec:\n  selector: {}\n  rules:\n"
             "    - {name: a, detectors: [credit_card], action: {type: mask, keepFirst: 8, keepLast: 4}}\n"
             "    - {name: b, fields: [$.customer.ssn], action: {type: hash}}\n"
             "    - {name: c, fields: [$.pan], action: {type: mask, keepFirst: 6, keepLast: 4}}\n"
             "    - {name: d, detectors: [us_ssn], action: {type: hash, key: k}}\n"
             "    - {name: e, fields: [$.note], action: {type: hash}}\n");
    assert_int_equal(mm_diags_new(&d), MM_OK);
    assert_int_equal(mm_policy_lint(mm_policy_set_get(set, 0), "t.yaml", d), 2);
    assert_int_equal(mm_diags_warnings(d), 2);
    bool warn = false;
    assert_non_null(strstr(mm_diags_get(d, 0, &warn), "spec.rules[0].action"));
    assert_true(warn);
    assert_non_null(strstr(mm_diags_get(d, 1, NULL), "spec.rules[1].action"));
    assert_non_null(strstr(mm_diags_get(d, 1, NULL), "brute force"));
    mm_diags_free(d);
    mm_policy_set_free(set);
}

/* Fails every allocation in turn: each must end in a clean error, and nothing may leak
 * (LeakSanitizer checks that under make test-asan). */
static void test_alloc_failures(void **state)
{
    char *text = NULL;
    size_t len;
    mm_errbuf eb;
    (void)state;
    assert_int_equal(mm_read_file("tests/data/policies/payments.yaml", 1 << 20, &text, &len, &eb), MM_OK);
    for (int json = 0; json < 2; json++) {
        const char *in = text;
        char *jtext = NULL;
        if (json) {
            mm_policy_set *set = NULL;
            assert_int_equal(mm_policy_parse_yaml(text, len, "p", &set, NULL, &eb), MM_OK);
            mm_policy_set_free(set);
            jtext = strdup("{\"apiVersion\":\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\","
                           "\"metadata\":{\"name\":\"a\"},\"spec\":{\"selector\":{\"matchLabels\":"
                           "{\"a\":\"b\"}},\"rules\":[{\"name\":\"r\",\"fields\":[\"$.a\",\"$..b\"],"
                           "\"patterns\":[{\"name\":\"p\",\"regex\":\"x+\"}],\"action\":{\"type\":"
                           "\"mask\"}}],\"network\":{\"allowFrom\":[{\"podSelector\":{}}]}}}");
            in = jtext;
        }
        size_t n = strlen(in);
        for (long k = 0;; k++) {
            mm_policy_set *set = NULL;
            mm_diags *d = NULL;
            mm_alloc_fail_after(k);
            mm_err rc = mm_diags_new(&d);
            if (rc == MM_OK)
                rc = json ? mm_policy_parse_json(in, n, "p", &set, d, &eb)
                          : mm_policy_parse_yaml(in, n, "p", &set, d, &eb);
            mm_alloc_fail_after(-1);
            mm_policy_set_free(set);
            mm_diags_free(d);
            if (rc == MM_OK)
                break;
            assert_int_equal(rc, MM_ENOMEM);
            assert_true(k < 5000);
        }
        free(jtext);
    }
    mm_free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_example),   cmocka_unit_test(test_forms),
        cmocka_unit_test(test_errors_name_places), cmocka_unit_test(test_collects_all_errors),
        cmocka_unit_test(test_paths),            cmocka_unit_test(test_labels_and_selectors),
        cmocka_unit_test(test_lint),             cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
