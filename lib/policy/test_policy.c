/* Unit tests for lib/policy: every input form, the example model of docs/policy.md, validation
 * errors with their exact places, YAML scalar typing, limits, the sample files under
 * tests/data/policies, and PCI lint. Paths, labels and allocation failures are in
 * test_grammar.c. Run from the top of the tree (the runner does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

#define HEAD "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p1}\n"
#define RULE "rules: [{name: r, fields: [$.a], action: {type: redact}}]"
#define DATA "tests/data/policies/"

static mm_policy_set *parse_ok(const char *yaml)
{
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    if (mm_policy_parse_yaml(yaml, strlen(yaml), "t.yaml", &set, NULL, &eb) != MM_OK)
        fail_msg("parse failed: %s", eb.msg);
    return set;
}

static void dump(const mm_diags *d)
{
    for (size_t i = 0; i < mm_diags_count(d); i++)
        printf("  diag: %s\n", mm_diags_get(d, i, NULL));
}

/* True when some diagnostic equals `want` exactly. */
static bool has_diag(const mm_diags *d, const char *want)
{
    for (size_t i = 0; i < mm_diags_count(d); i++)
        if (strcmp(mm_diags_get(d, i, NULL), want) == 0)
            return true;
    return false;
}

/* ---- the docs/policy.md example ------------------------------------------------------------ */

static void check_design_model(const mm_policy *p, bool from_json)
{
    assert_string_equal(p->name, "payments-api");
    assert_string_equal(p->ns, "shop");
    assert_string_equal(p->port, "8080");
    assert_int_equal(p->mode, MM_MODE_ENFORCE);
    assert_int_equal(p->on_error, MM_ONERR_BLOCK);
    assert_int_equal(p->unlisted, MM_UNLISTED_DETECT); /* the default: unknown types are read */
    assert_int_equal(p->direction, MM_DIR_RESPONSE);
    if (from_json) {
        assert_string_equal(p->uid, "e2b7c4d1-8f3a-4c6e-9b0d-7a1f5e3c2b84");
        assert_string_equal(p->resource_version, "481502");
        assert_int_equal(p->generation, 3);
    } else {
        assert_null(p->uid);
        assert_null(p->resource_version);
        assert_int_equal(p->generation, 0);
    }
    assert_int_equal(p->selector.n_labels, 1);
    assert_string_equal(p->selector.label_keys[0], "app");
    assert_string_equal(p->selector.label_values[0], "payments");
    assert_int_equal(p->selector.n_exprs, 0);
    assert_int_equal(p->n_rules, 3);

    const mm_rule *card = &p->rules[0];
    assert_string_equal(card->name, "card");
    assert_int_equal(card->n_fields, 3);
    assert_string_equal(card->fields[0].text, "$.payment.card_number");
    assert_int_equal(card->fields[0].n_steps, 2);
    assert_int_equal(card->fields[0].steps[0].kind, MM_STEP_NAME);
    assert_string_equal(card->fields[0].steps[0].name, "payment");
    assert_false(card->fields[0].steps[0].descendant);
    assert_string_equal(card->fields[0].steps[1].name, "card_number");
    assert_string_equal(card->fields[1].text, "$..pan");
    assert_int_equal(card->fields[1].n_steps, 1);
    assert_true(card->fields[1].steps[0].descendant);
    assert_string_equal(card->fields[1].steps[0].name, "pan");
    assert_int_equal(card->fields[2].n_steps, 3);
    assert_int_equal(card->fields[2].steps[1].kind, MM_STEP_WILDCARD);
    assert_string_equal(card->fields[2].steps[2].name, "card");
    assert_int_equal(card->n_detectors, 1);
    assert_string_equal(card->detectors[0], "credit_card");
    assert_int_equal(card->n_patterns, 0);
    assert_int_equal(card->n_content_types, 0);
    assert_int_equal(card->action.type, MM_ACTION_MASK);
    assert_int_equal(card->action.keep_first, 6);
    assert_int_equal(card->action.keep_last, 4);
    assert_string_equal(card->action.mask_char, "*");
    assert_true(card->action.preserve_format);
    assert_null(card->action.key);

    const mm_rule *contact = &p->rules[1];
    assert_string_equal(contact->name, "contact");
    assert_int_equal(contact->n_fields, 0);
    assert_int_equal(contact->n_detectors, 2);
    assert_string_equal(contact->detectors[0], "email");
    assert_string_equal(contact->detectors[1], "phone");
    assert_int_equal(contact->action.type, MM_ACTION_TOKENIZE);
    assert_string_equal(contact->action.key, "payments");

    const mm_rule *ids = &p->rules[2];
    assert_string_equal(ids->name, "ids");
    assert_int_equal(ids->n_patterns, 1);
    assert_string_equal(ids->patterns[0].name, "employee_id");
    assert_string_equal(ids->patterns[0].regex, "EMP-[0-9]{6}");
    assert_int_equal(ids->action.type, MM_ACTION_REDACT);
    assert_string_equal(ids->action.replacement, "[REDACTED]");

    assert_int_equal(p->n_headers, 2);
    assert_string_equal(p->headers[0].name, "Authorization");
    assert_int_equal(p->headers[0].action.type, MM_ACTION_REDACT);
    assert_string_equal(p->headers[0].action.replacement, "[REDACTED]");
    assert_string_equal(p->headers[1].name, "Set-Cookie");
    assert_int_equal(p->headers[1].action.type, MM_ACTION_REMOVE);
    assert_int_equal(p->n_exemptions, 1);
    assert_int_equal(p->exemptions[0].n_principals, 1);
    assert_string_equal(p->exemptions[0].principals[0], "spiffe://cluster.local/ns/shop/sa/billing");
    assert_int_equal(p->exemptions[0].n_rules, 1);
    assert_string_equal(p->exemptions[0].rules[0], "card");
    assert_string_equal(p->allow_from_json,
                        "[{\"podSelector\":{\"matchLabels\":{\"role\":\"frontend\"}}}]");
}

static void test_design_example(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        bool json;
    } rows[] = {{DATA "payments.yaml", false}, {DATA "payments.json", true}};
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_policy_set *set = NULL;
        mm_diags *d = NULL;
        mm_errbuf eb = {{0}};
        assert_int_equal(mm_diags_new(&d), MM_OK);
        if (mm_policy_load(rows[i].file, &set, d, &eb) != MM_OK)
            fail_msg("%s: %s", rows[i].file, eb.msg);
        assert_int_equal(mm_diags_count(d), 0);
        assert_int_equal(mm_policy_set_count(set), 1);
        check_design_model(mm_policy_set_get(set, 0), rows[i].json);
        assert_null(mm_policy_set_get(set, 1));
        /* the example keeps 6 + 4 and keys its tokens: PCI lint has nothing to say */
        assert_int_equal(mm_policy_lint(mm_policy_set_get(set, 0), rows[i].file, d), 0);
        mm_policy_set_free(set);
        mm_diags_free(d);
    }
}

/* ---- every input form ----------------------------------------------------------------- */

#define ITEM(name)                                                                            \
    "{\"apiVersion\":\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\",\"metadata\":"       \
    "{\"name\":\"" name "\"},\"spec\":{\"selector\":{},\"rules\":[{\"name\":\"r\","            \
    "\"detectors\":[\"email\"],\"action\":{\"type\":\"redact\"}}]}}"
#define YITEM(name)                                                                           \
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: " name "}\n"     \
    "spec: {selector: {}, rules: [{name: r, detectors: [email], action: {type: redact}}]}\n"
#define YLISTITEM(name)                                                                       \
    "- apiVersion: maskmesh.io/v1alpha1\n  kind: MaskingPolicy\n  metadata: {name: " name     \
    "}\n  spec: {selector: {}, rules: [{name: r, detectors: [email], action: {type: redact}}]}\n"

/* encrypt actions and spec.reveal as the model holds them: the rule's name as tweak, the
 * credit_card default (luhn: invalid), and grants per principal and rule. */
static void test_encrypt_and_reveal_model(void **state)
{
    static const char text[] =
        HEAD "spec:\n  selector: {}\n  rules:\n"
        "  - {name: card, detectors: [credit_card], action: {type: encrypt, format: ff1, key: "
        "payments, keyVersion: 2, keepFirst: 6, keepLast: 4, tweak: {fromRule: true}, "
        "surrogate: pan}}\n"
        "  - {name: ssn, fields: [$.ssn], action: {type: encrypt, mode: siv, key: payments, "
        "keyVersion: 1, tweak: people}}\n"
        "  - {name: card2, fields: [$.c], action: {type: encrypt, mode: ff1, key: k, keyVersion: 3,"
        " luhn: valid}}\n"
        "  - {name: t, fields: [$.t], action: {type: tokenize, key: k, keyVersion: 4}}\n"
        "  - {name: byid, fields: [$.card], action: {type: encrypt, mode: ff1, key: k, "
        "keyVersion: 1, tweak: {field: customerId}}}\n"
        "  defaultDeny: {body: {fields: [$.id], action: {type: encrypt, mode: siv, key: k, "
        "keyVersion: 1, tweak: {fromRule: true}}}}\n"
        "  reveal:\n"
        "  - principals: [spiffe://c/ns/s/sa/support]\n"
        "    rules: [{rule: card, action: {type: mask, keepLast: 4}}, {rule: ssn, clear: true}]\n";
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    const mm_policy *p;

    (void)state;
    if (mm_policy_parse_yaml(text, strlen(text), "t.yaml", &set, NULL, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    p = mm_policy_set_get(set, 0);
    assert_int_equal(p->rules[0].action.type, MM_ACTION_ENCRYPT);
    assert_int_equal(p->rules[0].action.enc_mode, MM_ENC_FF1);
    assert_string_equal(p->rules[0].action.key, "payments");
    assert_int_equal(p->rules[0].action.key_version, 2);
    assert_int_equal(p->rules[0].action.keep_first, 6);
    assert_int_equal(p->rules[0].action.keep_last, 4);
    assert_string_equal(p->rules[0].action.tweak, "card");
    assert_int_equal(p->rules[0].action.luhn, MM_LUHN_INVALID);
    assert_string_equal(p->rules[0].action.surrogate, "pan");
    assert_int_equal(p->rules[1].action.enc_mode, MM_ENC_SIV);
    assert_string_equal(p->rules[1].action.tweak, "people");
    assert_int_equal(p->rules[1].action.luhn, MM_LUHN_NONE);
    assert_int_equal(p->rules[2].action.luhn, MM_LUHN_VALID);
    assert_null(p->rules[2].action.tweak);
    assert_int_equal(p->rules[3].action.key_version, 4);
    assert_string_equal(p->rules[4].action.tweak_field, "customerId");
    assert_string_equal(p->rules[4].action.tweak, "byid"); /* when the object lacks it */
    assert_null(p->rules[0].action.tweak_field);
    assert_int_equal(p->deny_body.action.type, MM_ACTION_ENCRYPT);
    assert_string_equal(p->deny_body.action.tweak, "defaultDeny");
    assert_int_equal(p->n_grants, 1);
    assert_int_equal(p->grants[0].n_principals, 1);
    assert_int_equal(p->grants[0].n_rules, 2);
    assert_string_equal(p->grants[0].rules[0].rule, "card");
    assert_false(p->grants[0].rules[0].clear);
    assert_int_equal(p->grants[0].rules[0].action.type, MM_ACTION_MASK);
    assert_int_equal(p->grants[0].rules[0].action.keep_last, 4);
    assert_true(p->grants[0].rules[1].clear);
    mm_policy_set_free(set);
}

static void test_forms(void **state)
{
    static const struct {
        const char *what;
        bool json;
        const char *text;
        const char *names; /* expected policy names, space-separated */
    } rows[] = {
        {"YAML single", false, YITEM("a"), "a"},
        {"YAML single, document marker", false, "---\n" YITEM("a") "...\n", "a"},
        {"YAML list", false, YLISTITEM("a") YLISTITEM("b"), "a b"},
        {"YAML List", false, "apiVersion: v1\nkind: List\nitems:\n" YLISTITEM("a") YLISTITEM("b"),
         "a b"},
        {"YAML MaskingPolicyList", false,
         "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicyList\nmetadata: {}\nitems:\n"
         YLISTITEM("a"), "a"},
        {"YAML multi-document, empty ones skipped", false,
         "---\n" YITEM("a") "---\n---\n" YITEM("b") "---\n" YLISTITEM("c") YLISTITEM("d"),
         "a b c d"},
        {"YAML empty List", false, "kind: List\nitems: []\n", ""},
        {"JSON single", true, ITEM("a"), "a"},
        {"JSON array", true, "[" ITEM("a") "," ITEM("b") "]", "a b"},
        {"JSON List", true, "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[" ITEM("a") ","
         ITEM("b") "]}", "a b"},
        {"JSON with whitespace", true, "\n  " ITEM("a") "\n\n", "a"},
        {"JSON is YAML too", false, "[" ITEM("a") "," ITEM("b") "]", "a b"},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_policy_set *set = NULL;
        mm_errbuf eb = {{0}};
        size_t len = strlen(rows[i].text);
        mm_err rc = rows[i].json ? mm_policy_parse_json(rows[i].text, len, "f", &set, NULL, &eb)
                                 : mm_policy_parse_yaml(rows[i].text, len, "f", &set, NULL, &eb);
        if (!rows[i].names[0]) { /* nothing in it is an error, not an empty success */
            assert_int_equal(rc, MM_EINVAL);
            assert_string_equal(eb.msg, "f: (document): no MaskingPolicy in the input");
            continue;
        }
        if (rc != MM_OK)
            fail_msg("%s: %s", rows[i].what, eb.msg);
        char got[256] = "";
        size_t used = 0;
        for (size_t k = 0; k < mm_policy_set_count(set); k++)
            used += (size_t)snprintf(got + used, sizeof(got) - used, "%s%s", k ? " " : "",
                                     mm_policy_set_get(set, k)->name);
        if (strcmp(got, rows[i].names) != 0)
            fail_msg("%s: got policies \"%s\", want \"%s\"", rows[i].what, got, rows[i].names);
        mm_policy_set_free(set);
    }
}

/* The sample files: the valid ones parse to the expected policies, the invalid ones report
 * exactly these problems, in order. */
static void test_sample_files(void **state)
{
    static const struct {
        const char *file;
        mm_err rc;
        const char *names;
        const char *diags[6];
    } rows[] = {
        {DATA "list.yaml", MM_OK, "payments-api audit-logs", {NULL}},
        {DATA "multi.yaml", MM_OK, "orders users", {NULL}},
        {DATA "list.json", MM_OK, "a b", {NULL}},
        {DATA "api-maskingpolicy.json", MM_OK, "payments-api", {NULL}},
        {DATA "invalid-action.yaml", MM_EINVAL, "",
         {DATA "invalid-action.yaml:10:28: spec.rules[0].action.keeplast: unknown field "
               "(expected one of type, replacement, keepFirst, keepLast, char, preserveFormat, "
               "key, value, mode, format, keyVersion, tweak, luhn, surrogate)",
          DATA "invalid-action.yaml:13:15: spec.rules[1].action: tokenize requires key (an "
               "entry of the Secret maskmesh-keys)",
          DATA "invalid-action.yaml:15:19: spec.rules[2].detectors[0]: unknown detector \"ssn\" "
               "(did you mean us_ssn? maskctl --help lists them all)",
          DATA "invalid-action.yaml:16:22: spec.rules[2].action.type: unknown action type "
               "\"frobnicate\" (expected one of redact, mask, hash, tokenize, remove, replace, encrypt)",
          NULL}},
        {DATA "invalid-selector.yaml", MM_EINVAL, "",
         {DATA "invalid-selector.yaml:7:9: spec.selector.matchExpressions[0]: values must be "
               "non-empty for In and NotIn",
          DATA "invalid-selector.yaml:8:9: spec.selector.matchExpressions[1]: values must be "
               "empty for Exists and DoesNotExist",
          DATA "invalid-selector.yaml:9:31: spec.selector.matchExpressions[2].operator: unknown "
               "operator \"Near\" (expected In, NotIn, Exists or DoesNotExist)",
          DATA "invalid-selector.yaml:10:9: spec.port: must be from 1 to 65535", NULL}},
        {DATA "invalid-path.yaml", MM_EINVAL, "",
         {DATA "invalid-path.yaml:8:16: spec.rules[0].fields[0]: invalid JSONPath: offset 7: "
               "expected a member name after \".\"",
          DATA "invalid-path.yaml:8:27: spec.rules[0].fields[1]: invalid JSONPath: offset 0: a "
               "path starts with \"$\"",
          DATA "invalid-path.yaml:8:35: spec.rules[0].fields[2]: invalid JSONPath: offset 8: "
               "expected \"*\", a quoted name or an index after \"[\"",
          DATA "invalid-path.yaml:9:37: spec.rules[0].patterns[0].regex: the regex does not "
               "compile: missing terminating ] for character class at offset 8",
          NULL}},
        {DATA "invalid-network.yaml", MM_EINVAL, "",
         {DATA "invalid-network.yaml:10:9: spec.network.allowFrom[0]: ipBlock cannot be "
               "combined with a selector in one peer",
          DATA "invalid-network.yaml:10:25: spec.network.allowFrom[0].ipBlock.cidr: expected a "
               "CIDR such as 10.0.0.0/8 or fd00::/8",
          DATA "invalid-network.yaml:10:44: spec.network.allowFrom[0].ipBlock.except[0]: "
               "expected a CIDR such as 10.0.0.0/8 or fd00::/8",
          DATA "invalid-network.yaml:12:9: spec.network.allowFrom[1]: a peer needs podSelector, "
               "namespaceSelector or ipBlock",
          NULL}},
        {DATA "invalid-alias.yaml", MM_EPARSE, "",
         {DATA "invalid-alias.yaml:3:8: YAML aliases (*a) are not supported in policies; write "
               "the value out",
          NULL}},
        {DATA "invalid-syntax.yaml", MM_EPARSE, "",
         {DATA "invalid-syntax.yaml:4:5: YAML: did not find expected ',' or '}' while parsing a "
               "flow mapping",
          NULL}},
        {DATA "invalid.json", MM_EINVAL, "",
         {DATA "invalid.json: metadata.name: \"Payments_API\" is not a valid name: lowercase "
               "letters, digits, '-' and '.', starting and ending with a letter or digit, at "
               "most 253",
          DATA "invalid.json: spec.mode: unknown value \"loud\" (expected enforce or audit)",
          DATA "invalid.json: spec.rules[0].action.keepFirst: expected an integer from 0 to 64, "
               "got a number",
          DATA "invalid.json: spec.rules[0].action.preserveFormat: expected true or false, got a "
               "string",
          NULL}},
        {DATA "does-not-exist.yaml", MM_ENOTFOUND, "", {NULL}},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_policy_set *set = NULL;
        mm_diags *d = NULL;
        mm_errbuf eb = {{0}};
        size_t n = 0;
        assert_int_equal(mm_diags_new(&d), MM_OK);
        mm_err rc = mm_policy_load(rows[i].file, &set, d, &eb);
        if (rc != rows[i].rc) {
            dump(d);
            fail_msg("%s: rc %d (%s), want %d", rows[i].file, rc, eb.msg, rows[i].rc);
        }
        if (rc == MM_OK) {
            char got[256] = "";
            size_t used = 0;
            for (size_t k = 0; k < mm_policy_set_count(set); k++)
                used += (size_t)snprintf(got + used, sizeof(got) - used, "%s%s", k ? " " : "",
                                         mm_policy_set_get(set, k)->name);
            assert_string_equal(got, rows[i].names);
        } else {
            assert_null(set);
            assert_true(eb.msg[0] != '\0');
        }
        while (rows[i].diags[n])
            n++;
        if (rows[i].rc != MM_ENOTFOUND && mm_diags_errors(d) != n) {
            dump(d);
            fail_msg("%s: %zu errors, want %zu", rows[i].file, mm_diags_errors(d), n);
        }
        for (size_t k = 0; k < n; k++)
            assert_string_equal(mm_diags_get(d, k, NULL), rows[i].diags[k]);
        if (n) /* the first error is also the one in eb */
            assert_string_equal(eb.msg, rows[i].diags[0]);
        mm_policy_set_free(set);
        mm_diags_free(d);
    }
}

static void test_sample_file_models(void **state)
{
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    const mm_policy *p;
    (void)state;

    assert_int_equal(mm_policy_load(DATA "list.yaml", &set, NULL, &eb), MM_OK);
    p = mm_policy_set_get(set, 0);
    assert_int_equal(p->generation, 2);
    assert_int_equal(p->rules[0].action.keep_first, 0);
    assert_int_equal(p->rules[0].action.keep_last, 4);
    assert_false(p->rules[0].action.preserve_format);
    p = mm_policy_set_get(set, 1);
    assert_string_equal(p->port, "http");
    assert_int_equal(p->mode, MM_MODE_AUDIT);
    assert_int_equal(p->on_error, MM_ONERR_REDACT_ALL);
    assert_int_equal(p->direction, MM_DIR_BOTH);
    assert_int_equal(p->selector.n_exprs, 1);
    assert_string_equal(p->selector.exprs[0].key, "tier");
    assert_int_equal(p->selector.exprs[0].op, MM_SEL_IN);
    assert_int_equal(p->selector.exprs[0].n_values, 2);
    assert_string_equal(p->selector.exprs[0].values[1], "worker");
    assert_int_equal(p->rules[0].n_content_types, 2);
    assert_string_equal(p->rules[0].content_types[1], "application/x-ndjson");
    assert_int_equal(p->rules[0].action.type, MM_ACTION_HASH);
    assert_string_equal(p->rules[0].action.key, "audit");
    mm_policy_set_free(set);

    assert_int_equal(mm_policy_load(DATA "multi.yaml", &set, NULL, &eb), MM_OK);
    p = mm_policy_set_get(set, 0);
    assert_null(p->ns);
    assert_int_equal(p->rules[0].action.type, MM_ACTION_REPLACE);
    assert_string_equal(p->rules[0].action.value, "(hidden)");
    assert_string_equal(p->rules[0].fields[1].steps[0].name, "postal code");
    assert_true(p->rules[0].fields[1].steps[0].descendant);
    p = mm_policy_set_get(set, 1);
    assert_int_equal(p->direction, MM_DIR_REQUEST);
    assert_string_equal(p->headers[0].action.mask_char, "\xe2\x80\xa2"); /* U+2022 */
    mm_policy_set_free(set);

    assert_int_equal(mm_policy_load(DATA "list.json", &set, NULL, &eb), MM_OK);
    p = mm_policy_set_get(set, 1);
    assert_string_equal(p->ns, "shop");
    assert_string_equal(p->port, "9090");
    assert_string_equal(p->rules[0].action.replacement, "***");
    assert_string_equal(p->allow_from_json,
                        "[{\"ipBlock\":{\"cidr\":\"10.0.0.0/8\",\"except\":[\"10.1.0.0/16\"]}},"
                        "{\"namespaceSelector\":{\"matchLabels\":{\"team\":\"pay\"}},"
                        "\"podSelector\":{}}]");
    mm_policy_set_free(set);
}

/* The API server's object, through mm_policy_from_json and its error paths. */
static void test_from_json(void **state)
{
    char *text = NULL;
    size_t len = 0;
    mm_errbuf eb = {{0}};
    mm_policy *p = NULL;
    mm_diags *d = NULL;
    (void)state;

    assert_int_equal(mm_read_file(DATA "api-maskingpolicy.json", 1 << 20, &text, &len, &eb), MM_OK);
    struct json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    assert_int_equal(mm_policy_from_json(o, "shop/payments-api", &p, NULL, &eb), MM_OK);
    assert_string_equal(p->name, "payments-api");
    assert_string_equal(p->ns, "shop");
    assert_string_equal(p->uid, "e2b7c4d1-8f3a-4c6e-9b0d-7a1f5e3c2b84");
    assert_string_equal(p->resource_version, "483120");
    assert_int_equal(p->generation, 2);
    assert_string_equal(p->port, "8080");
    assert_int_equal(p->n_rules, 2);
    assert_string_equal(p->rules[0].name, "card-number");
    assert_int_equal(p->rules[0].action.keep_last, 4);
    assert_string_equal(p->rules[1].action.replacement, "[REDACTED]");
    mm_policy_free(p);
    p = NULL;

    /* an invalid spec: every error, prefixed with `where`, no line numbers */
    struct json_object *spec = json_object_object_get(o, "spec");
    json_object_object_add(spec, "port", json_object_new_int(0));
    json_object_object_add(spec, "mode", json_object_new_string("silent"));
    assert_int_equal(mm_diags_new(&d), MM_OK);
    assert_int_equal(mm_policy_from_json(o, "shop/payments-api", &p, d, &eb), MM_EINVAL);
    assert_null(p);
    assert_int_equal(mm_diags_errors(d), 2);
    assert_true(has_diag(d, "shop/payments-api: spec.port: must be from 1 to 65535"));
    assert_true(has_diag(d, "shop/payments-api: spec.mode: unknown value \"silent\" (expected "
                            "enforce or audit)"));
    assert_string_equal(eb.msg, "shop/payments-api: spec.port: must be from 1 to 65535");
    mm_diags_free(d);
    json_object_put(o);

    /* not an object at all */
    o = json_object_new_array();
    assert_int_equal(mm_policy_from_json(o, "x", &p, NULL, &eb), MM_EINVAL);
    assert_string_equal(eb.msg, "x: (document): expected a mapping, got a list");
    json_object_put(o);
    mm_free(text);
}

/* ---- YAML scalars: what is a string, a number, a boolean -------------------------------- */

static void test_yaml_scalars(void **state)
{
    (void)state;
    mm_policy_set *set;
    const mm_policy *p;

    /* names that YAML 1.1 would read as booleans or numbers stay the strings written */
    set = parse_ok("apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\n"
                   "metadata: {name: \"on\", namespace: yes}\n"
                   "spec:\n  selector: {matchLabels: {enabled: \"true\", v: \"2\"}}\n  port: 8080\n"
                   "  rules:\n    - {name: on, fields: [$.a], action: {type: replace, value: no}}\n"
                   "    - {name: \"123\", fields: [$.b], action: {type: redact, replacement: 0}}\n"
                   "    - {name: off, fields: [$.c], action: {type: mask, char: \"0\", "
                   "preserveFormat: false}}\n");
    p = mm_policy_set_get(set, 0);
    assert_string_equal(p->name, "on");
    assert_string_equal(p->ns, "yes");
    assert_string_equal(p->port, "8080");
    assert_string_equal(p->rules[0].name, "on");
    assert_string_equal(p->rules[0].action.value, "no");
    assert_string_equal(p->rules[1].name, "123");
    assert_string_equal(p->rules[1].action.replacement, "0");
    assert_string_equal(p->rules[2].action.mask_char, "0");
    assert_false(p->rules[2].action.preserve_format);
    assert_string_equal(p->selector.label_values[0], "true");
    mm_policy_set_free(set);

    /* core-schema tags decide the type where given */
    set = parse_ok(HEAD "spec: {selector: {}, port: !!int \"443\", " RULE "}\n");
    assert_string_equal(mm_policy_set_get(set, 0)->port, "443");
    mm_policy_set_free(set);
    set = parse_ok(HEAD "spec: {selector: {}, port: !!str http, " RULE "}\n");
    assert_string_equal(mm_policy_set_get(set, 0)->port, "http");
    mm_policy_set_free(set);
    set = parse_ok(HEAD "spec: {selector: {}, port: +8080, " RULE "}\n");
    assert_string_equal(mm_policy_set_get(set, 0)->port, "+8080");
    mm_policy_set_free(set);
}

/* ---- validation: each error, its exact message, its exact place ------------------------- */

/* Each row is a document, the line the error is on, a marker whose first occurrence on that
 * line is the column, and the message after "t.yaml:LINE:COL: ". With only `spec` given, the
 * document is HEAD + spec (line 4). */
static void test_errors_name_places(void **state)
{
    static const struct {
        const char *doc;
        unsigned line;
        const char *at;
        const char *msg;
    } rows[] = {
        /* apiVersion, kind, metadata */
        {"apiVersion: v1\nkind: MaskingPolicy\nmetadata: {name: p}\nspec: {selector: {}, " RULE "}\n",
         1, "v1", "apiVersion: expected maskmesh.io/v1alpha1, got \"v1\""},
        {"apiVersion: maskmesh.io/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec: {selector: {}, "
         RULE "}\n", 2, "Policy", "kind: expected MaskingPolicy, got \"Policy\""},
        {"kind: MaskingPolicy\nmetadata: {name: p}\nspec: {selector: {}, " RULE "}\n", 1, "kind",
         "(document): apiVersion is required (maskmesh.io/v1alpha1)"},
        {"apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {namespace: x}\n"
         "spec: {selector: {}, " RULE "}\n", 3, "{", "metadata: name is required"},
        {"apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: Pay}\n"
         "spec: {selector: {}, " RULE "}\n", 3, "Pay", "metadata.name: \"Pay\" is not a valid "
         "name: lowercase letters, digits, '-' and '.', starting and ending with a letter or "
         "digit, at most 253"},
        {"apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: a.-b}\n"
         "spec: {selector: {}, " RULE "}\n", 3, "a.-b", "metadata.name: \"a.-b\" is not a valid "
         "name: lowercase letters, digits, '-' and '.', starting and ending with a letter or "
         "digit, at most 253"},
        {"apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p, namespace: "
         "a.b}\nspec: {selector: {}, " RULE "}\n", 3, "a.b", "metadata.namespace: \"a.b\" is not "
         "a valid namespace name"},
        {HEAD "sepc: {selector: {}, " RULE "}\n", 4, "sepc", "sepc: unknown field (expected one "
         "of apiVersion, kind, metadata, spec, status)"},
        {HEAD "spec: [1]\n", 4, "[", "spec: expected a mapping, got a list"},
        /* spec */
        {HEAD "spec: {selector: {}, rulez: []}\n", 4, "rulez",
         "spec.rulez: unknown field (expected one of selector, port, mode, onError, unlistedTypes, "
         "direction, rules, headers, defaultDeny, exemptions, reveal, network, streams, websocket, grpc)"},
        {HEAD "spec: {selector: {}}\n", 4, "{", "spec: rules is required (or defaultDeny)"},
        {HEAD "spec: {selector: {}, rules: []}\n", 4, "[]", "spec.rules: at least one rule is required (or defaultDeny)"},
        {HEAD "spec: {selector: {}, rules: {}}\n", 4, "{}}", "spec.rules: expected a list, got a mapping"},
        {HEAD "spec: {" RULE "}\n", 4, "{", "spec: selector is required ({} selects every pod of "
         "the namespace)"},
        {HEAD "spec: {selector: {}, port: 70000, " RULE "}\n", 4, "70000",
         "spec.port: must be from 1 to 65535"},
        {HEAD "spec: {selector: {}, port: 0, " RULE "}\n", 4, "0,", "spec.port: must be from 1 to 65535"},
        {HEAD "spec: {selector: {}, port: \"8080\", " RULE "}\n", 4, "\"8080\"",
         "spec.port: \"8080\" is neither a port number (1-65535, unquoted) nor a port name (at "
         "most 15 of a-z, 0-9, '-', with a letter)"},
        {HEAD "spec: {selector: {}, port: HTTP, " RULE "}\n", 4, "HTTP",
         "spec.port: \"HTTP\" is neither a port number (1-65535, unquoted) nor a port name (at "
         "most 15 of a-z, 0-9, '-', with a letter)"},
        {HEAD "spec: {selector: {}, port: web--x, " RULE "}\n", 4, "web", "spec.port: \"web--x\" "
         "is neither a port number (1-65535, unquoted) nor a port name (at most 15 of a-z, 0-9, "
         "'-', with a letter)"},
        {HEAD "spec: {selector: {}, port: a-very-long-name, " RULE "}\n", 4, "a-very",
         "spec.port: \"a-very-long-name\" is neither a port number (1-65535, unquoted) nor a port "
         "name (at most 15 of a-z, 0-9, '-', with a letter)"},
        {HEAD "spec: {selector: {}, port: 80.5, " RULE "}\n", 4, "80.5", "spec.port: \"80.5\" is "
         "neither a port number (1-65535, unquoted) nor a port name (at most 15 of a-z, 0-9, "
         "'-', with a letter)"},
        {HEAD "spec: {selector: {}, mode: loud, " RULE "}\n", 4, "loud",
         "spec.mode: unknown value \"loud\" (expected enforce or audit)"},
        {HEAD "spec: {selector: {}, onError: drop, " RULE "}\n", 4, "drop",
         "spec.onError: unknown value \"drop\" (expected block, redact-all or passthrough)"},
        {HEAD "spec: {selector: {}, unlistedTypes: skip, " RULE "}\n", 4, "skip",
         "spec.unlistedTypes: unknown value \"skip\" (expected block, detect or pass)"},
        {HEAD "spec: {selector: {}, direction: in, " RULE "}\n", 4, "in,",
         "spec.direction: unknown value \"in\" (expected response, request or both)"},
        {HEAD "spec: {selector: {}, mode: ~, " RULE "}\n", 4, "~", "spec.mode: expected a value, got null"},
        /* selector */
        {HEAD "spec: {selector: {matchLabels: {-a: b}}, " RULE "}\n", 4, "-a",
         "spec.selector.matchLabels.-a: invalid label key"},
        {HEAD "spec: {selector: {matchLabels: {a..b/x: b}}, " RULE "}\n", 4, "a..b",
         "spec.selector.matchLabels.a..b/x: invalid label key"},
        {HEAD "spec: {selector: {matchLabels: {a: b c}}, " RULE "}\n", 4, "b c",
         "spec.selector.matchLabels.a: invalid label value: at most 63 of [A-Za-z0-9-_.], "
         "starting and ending alphanumeric"},
        {HEAD "spec: {selector: {matchLabel: {}}, " RULE "}\n", 4, "matchLabel",
         "spec.selector.matchLabel: unknown field (expected one of matchLabels, matchExpressions)"},
        {HEAD "spec: {selector: {matchExpressions: [{key: a, operator: In}]}, " RULE "}\n", 4,
         "{key", "spec.selector.matchExpressions[0]: values must be non-empty for In and NotIn"},
        {HEAD "spec: {selector: {matchExpressions: [{key: a, operator: NotIn, values: []}]}, " RULE
         "}\n", 4, "{key", "spec.selector.matchExpressions[0]: values must be non-empty for In and NotIn"},
        {HEAD "spec: {selector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}, "
         RULE "}\n", 4, "{key", "spec.selector.matchExpressions[0]: values must be empty for "
         "Exists and DoesNotExist"},
        {HEAD "spec: {selector: {matchExpressions: [{key: a, operator: DoesNotExist, values: [x]}]}, "
         RULE "}\n", 4, "{key", "spec.selector.matchExpressions[0]: values must be empty for "
         "Exists and DoesNotExist"},
        {HEAD "spec: {selector: {matchExpressions: [{key: a, operator: in, values: [x]}]}, " RULE
         "}\n", 4, "in,", "spec.selector.matchExpressions[0].operator: unknown operator \"in\" "
         "(expected In, NotIn, Exists or DoesNotExist)"},
        {HEAD "spec: {selector: {matchExpressions: [{key: a/, operator: Exists}]}, " RULE "}\n", 4,
         "a/", "spec.selector.matchExpressions[0].key: invalid label key"},
        {HEAD "spec: {selector: {matchExpressions: [{key: a, operator: In, values: [\"x y\"]}]}, "
         RULE "}\n", 4, "\"x y\"", "spec.selector.matchExpressions[0].values[0]: invalid label "
         "value: at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric"},
        {HEAD "spec: {selector: {matchExpressions: [{operator: Exists}]}, " RULE "}\n", 4,
         "{operator", "spec.selector.matchExpressions[0]: key is required"},
        /* rules */
        {HEAD "spec: {selector: {}, rules: [{fields: [$.a], action: {type: redact}}]}\n", 4,
         "{fields", "spec.rules[0]: name is required"},
        {HEAD "spec: {selector: {}, rules: [{name: Card, fields: [$.a], action: {type: redact}}]}\n",
         4, "Card", "spec.rules[0].name: \"Card\" is not a valid rule name: lowercase letters, "
         "digits, '-' and '_', starting and ending with a letter or digit, at most 63"},
        {HEAD "spec: {selector: {}, rules: [{name: a_, fields: [$.a], action: {type: redact}}]}\n",
         4, "a_", "spec.rules[0].name: \"a_\" is not a valid rule name: lowercase letters, "
         "digits, '-' and '_', starting and ending with a letter or digit, at most 63"},
        {HEAD "spec: {selector: {}, rules: [{name: "
         "a234567890123456789012345678901234567890123456789012345678901234, fields: [$.a], "
         "action: {type: redact}}]}\n", 4, "a2345", "spec.rules[0].name: "
         "\"a234567890123456789012345678901234567890123456789012345678901234\" is not a valid "
         "rule name: lowercase letters, digits, '-' and '_', starting and ending with a letter or "
         "digit, at most 63"},
        {HEAD "spec: {selector: {}, rules: [{name: r, detectors: [email], action: {type: redact}},"
         " {name: r, detectors: [phone], action: {type: redact}}]}\n", 4, "r, detectors: [phone]",
         "spec.rules[1].name: duplicate rule name \"r\" (also spec.rules[0])"},
        {HEAD "spec: {selector: {}, rules: [{name: r, action: {type: redact}}]}\n", 4, "{name",
         "spec.rules[0]: a rule needs at least one of fields, detectors or patterns (a non-empty "
         "list)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [], detectors: [], action: {type: "
         "redact}}]}\n", 4, "{name", "spec.rules[0]: a rule needs at least one of fields, "
         "detectors or patterns (a non-empty list)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, feilds: [$.a], detectors: [email], action: "
         "{type: redact}}]}\n", 4, "feilds", "spec.rules[0].feilds: unknown field (expected one "
         "of name, fields, detectors, patterns, contentTypes, useMemberNames, action)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a]}]}\n", 4, "{name",
         "spec.rules[0]: action is required"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [\"$.a.\"], action: {type: redact}}]}\n",
         4, "\"$.a.\"", "spec.rules[0].fields[0]: invalid JSONPath: offset 4: expected a member "
         "name after \".\""},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [\"$['a\"], action: {type: redact}}]}\n",
         4, "\"$['a\"", "spec.rules[0].fields[0]: invalid JSONPath: offset 2: the quoted name has no "
         "closing '"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a, 7], action: {type: redact}}]}\n",
         4, "7]", "spec.rules[0].fields[1]: invalid JSONPath: offset 0: a path starts with \"$\""},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [[$.a]], action: {type: redact}}]}\n",
         4, "[$.a]", "spec.rules[0].fields[0]: expected a JSONPath, got a list"},
        {HEAD "spec: {selector: {}, rules: [{name: r, detectors: [credit_cards], action: {type: "
         "redact}}]}\n", 4, "credit_cards", "spec.rules[0].detectors[0]: unknown detector "
         "\"credit_cards\" (did you mean credit_card? maskctl --help lists them all)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, detectors: [email], useMemberNames: true, "
         "action: {type: redact}}]}\n", 4, "true", "spec.rules[0].useMemberNames: none of this "
         "rule's detectors reads member names (maskctl --help lists those that do)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, detectors: [phone], useMemberNames: yes, "
         "action: {type: redact}}]}\n", 4, "yes", "spec.rules[0].useMemberNames: expected true or false, got a string"},
        {HEAD "spec: {selector: {}, rules: [{name: r, patterns: [{name: x, regex: \"a(\"}], action: "
         "{type: redact}}]}\n", 4, "\"a(\"", "spec.rules[0].patterns[0].regex: the regex does "
         "not compile: missing closing parenthesis at offset 2"},
        {HEAD "spec: {selector: {}, rules: [{name: r, patterns: [{name: x}], action: {type: "
         "redact}}]}\n", 4, "{name: x}", "spec.rules[0].patterns[0]: regex is required"},
        {HEAD "spec: {selector: {}, rules: [{name: r, patterns: [{regex: x, flags: i}], action: "
         "{type: redact}}]}\n", 4, "flags", "spec.rules[0].patterns[0].flags: unknown field "
         "(expected one of name, regex)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, detectors: [email], contentTypes: [csv], "
         "action: {type: redact}}]}\n", 4, "csv", "spec.rules[0].contentTypes[0]: expected a "
         "media type such as text/csv (no parameters)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, detectors: [email], contentTypes: "
         "[\"text/csv; charset=utf-8\"], action: {type: redact}}]}\n", 4, "\"text",
         "spec.rules[0].contentTypes[0]: expected a media type such as text/csv (no parameters)"},
        /* actions */
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: frobnicate}}]}\n",
         4, "frobnicate", "spec.rules[0].action.type: unknown action type \"frobnicate\" "
         "(expected one of redact, mask, hash, tokenize, remove, replace, encrypt)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {replacement: x}}]}\n",
         4, "{replacement", "spec.rules[0].action: type is required (one of redact, mask, hash, "
         "tokenize, remove, replace, encrypt)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: redact}]}\n", 4,
         "redact", "spec.rules[0].action: expected a mapping, got a string"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: mask, "
         "keepFirst: -1}}]}\n", 4, "-1", "spec.rules[0].action.keepFirst: must be from 0 to 64"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: mask, "
         "keepLast: 65}}]}\n", 4, "65", "spec.rules[0].action.keepLast: must be from 0 to 64"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: mask, "
         "keepLast: \"4\"}}]}\n", 4, "\"4\"", "spec.rules[0].action.keepLast: expected an integer "
         "from 0 to 64, got a string"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: mask, "
         "keeplast: 4}}]}\n", 4, "keeplast", "spec.rules[0].action.keeplast: unknown field "
         "(expected one of type, replacement, keepFirst, keepLast, char, preserveFormat, key, "
         "value, mode, format, keyVersion, tweak, luhn, surrogate)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: mask, char: "
         "\"**\"}}]}\n", 4, "\"**\"", "spec.rules[0].action.char: must be exactly one UTF-8 character"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: mask, char: "
         "\"\"}}]}\n", 4, "\"\"", "spec.rules[0].action.char: must be exactly one UTF-8 character"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: mask, char: "
         "\"e\xcc\x81\"}}]}\n", 4, "\"e", "spec.rules[0].action.char: must be exactly one UTF-8 "
         "character"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: mask, "
         "preserveFormat: yes}}]}\n", 4, "yes", "spec.rules[0].action.preserveFormat: expected "
         "true or false, got a string"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: tokenize}}]}\n",
         4, "{type", "spec.rules[0].action: tokenize requires key (an entry of the Secret "
         "maskmesh-keys)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: tokenize, key: "
         "\"a b\"}}]}\n", 4, "\"a b\"", "spec.rules[0].action.key: \"a b\" is not a valid Secret "
         "key name ([-._a-zA-Z0-9]+)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: hash, key: "
         "\"..\"}}]}\n", 4, "\"..\"", "spec.rules[0].action.key: \"..\" is not a valid Secret key "
         "name ([-._a-zA-Z0-9]+)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: replace}}]}\n",
         4, "{type", "spec.rules[0].action: replace requires value"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: mask, key: k}}]}\n",
         4, "k}", "spec.rules[0].action.key: does not apply to action type mask"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: remove, value: "
         "v}}]}\n", 4, "v}}", "spec.rules[0].action.value: does not apply to action type remove"},
        /* headers */
        {HEAD "spec: {selector: {}, " RULE ", headers: [{name: \"X Token\", action: {type: remove}}]}\n",
         4, "\"X Token\"", "spec.headers[0].name: not a valid HTTP header name (a token: letters, "
         "digits and !#$%&'*+-.^_`|~)"},
        {HEAD "spec: {selector: {}, " RULE ", headers: [{name: A, action: {type: remove}}, "
         "{name: a, action: {type: redact}}]}\n", 4, "a, action",
         "spec.headers[1].name: header \"a\" already has a rule (spec.headers[0])"},
        {HEAD "spec: {selector: {}, " RULE ", headers: [{name: A}]}\n", 4, "{name: A}",
         "spec.headers[0]: action is required"},
        {HEAD "spec: {selector: {}, " RULE ", headers: [{name: A, action: {type: tokenize}}]}\n", 4,
         "{type: tokenize", "spec.headers[0].action: tokenize requires key (an entry of the Secret "
         "maskmesh-keys)"},
        /* exemptions */
        {HEAD "spec: {selector: {}, " RULE ", exemptions: [{principals: [], rules: [r]}]}\n", 4,
         "[]", "spec.exemptions[0].principals: at least one principal is required"},
        {HEAD "spec: {selector: {}, " RULE ", exemptions: [{principals: [x], rules: [nope]}]}\n", 4,
         "nope", "spec.exemptions[0].rules[0]: no rule named \"nope\" in this policy"},
        {HEAD "spec: {selector: {}, " RULE ", exemptions: [{principals: [x], rules: []}]}\n", 4,
         "[]}", "spec.exemptions[0].rules: at least one rule is required"},
        {HEAD "spec: {selector: {}, " RULE ", exemptions: [{principals: [x]}]}\n", 4, "{principals",
         "spec.exemptions[0]: rules is required (the rules these principals see unmasked)"},
        /* encrypt */
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, key: "
         "k, keyVersion: 1}}]}\n", 4, "{type", "spec.rules[0].action: encrypt requires mode (ff1 "
         "or siv; format: ff1 is the same as mode: ff1)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, mode: "
         "ff3, key: k, keyVersion: 1}}]}\n", 4, "ff3", "spec.rules[0].action.mode: unknown mode "
         "\"ff3\" (expected ff1 or siv)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, format: "
         "siv, key: k, keyVersion: 1}}]}\n", 4, "siv", "spec.rules[0].action.format: unknown format "
         "\"siv\" (expected ff1)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, mode: "
         "ff1, key: k}}]}\n", 4, "{type", "spec.rules[0].action: encrypt requires keyVersion (the N "
         "of the entry <key>.v<N> it writes with)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, mode: "
         "ff1, key: k.v1, keyVersion: 1}}]}\n", 4, "k.v1", "spec.rules[0].action.key: \"k.v1\" is "
         "not a valid key name ([-._a-zA-Z0-9]+, without the .v<N> that keyVersion adds)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, mode: "
         "ff1, key: k, keyVersion: 0}}]}\n", 4, "0}", "spec.rules[0].action.keyVersion: must be "
         "from 1 to 9999"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, mode: "
         "siv, key: k, keyVersion: 1, luhn: valid}}]}\n", 4, "valid", "spec.rules[0].action.luhn: "
         "applies to mode ff1 only"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, mode: "
         "ff1, key: k, keyVersion: 1, tweak: {fromRule: false}}}]}\n", 4, "{fromRule",
         "spec.rules[0].action.tweak: a tweak map is {fromRule: true} or {field: <member name>}; "
         "a constant tweak is a string"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, mode: "
         "ff1, key: k, keyVersion: 1, tweak: {field: $.id}}}]}\n", 4, "$.id",
         "spec.rules[0].action.tweak.field: a member name of the same object (1-256 bytes, not a "
         "path)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, mode: "
         "ff1, key: k, keyVersion: 1, tweak: {field: id, fromRule: true}}}]}\n", 4, "{field",
         "spec.rules[0].action.tweak: a tweak map is {fromRule: true} or {field: <member name>}; "
         "a constant tweak is a string"},
        {HEAD "spec: {selector: {}, rules: [{name: r, detectors: [credit_card], action: {type: "
         "encrypt, mode: ff1, key: k, keyVersion: 1, tweak: {field: id}}}]}\n", 4, "{type: e",
         "spec.rules[0]: tweak {field: ...} needs a rule that selects values by fields only "
         "(this one has detectors or patterns)"},
        {HEAD "spec: {selector: {}, rules: [{name: r, fields: [$.a], action: {type: encrypt, mode: "
         "ff1, key: k, keyVersion: 1, surrogate: \"a:\"}}]}\n", 4, "\"a:\"",
         "spec.rules[0].action.surrogate: a surrogate is 1-32 letters or '_' (it is followed by "
         ".v<N>:)"},
        /* reveal (graded) */
        {HEAD "spec: {selector: {}, " RULE ", reveal: [{principals: [x], rules: [{rule: nope, "
         "clear: true}]}]}\n", 4, "nope", "spec.reveal[0].rules[0].rule: no rule named \"nope\" in "
         "this policy"},
        {HEAD "spec: {selector: {}, " RULE ", reveal: [{principals: [x], rules: [{rule: r}]}]}\n", 4,
         "{rule: r}", "spec.reveal[0].rules[0]: give either action or clear: true"},
        {HEAD "spec: {selector: {}, " RULE ", reveal: [{principals: [x], rules: [{rule: r, action: "
         "{type: remove}}]}]}\n", 4, "{type: remove}", "spec.reveal[0].rules[0].action: remove "
         "cannot be granted (a grant changes a value, it cannot drop it)"},
        /* defaultDeny */
        {HEAD "spec: {selector: {}, defaultDeny: {}}\n", 4, "{}}",
         "spec.defaultDeny: body or headers is required (what default deny covers)"},
        {HEAD "spec: {selector: {}, defaultDeny: {bodi: {}}}\n", 4, "bodi",
         "spec.defaultDeny.bodi: unknown field (expected one of body, headers)"},
        {HEAD "spec: {selector: {}, defaultDeny: {body: {fields: [$.a]}}}\n", 4, "{fields",
         "spec.defaultDeny.body: action is required (what every value that is not allowed becomes)"},
        {HEAD "spec: {selector: {}, defaultDeny: {body: {fields: [$.a], names: [x], action: {type: redact}}}}\n",
         4, "names", "spec.defaultDeny.body.names: unknown field (expected one of fields, action)"},
        {HEAD "spec: {selector: {}, defaultDeny: {body: {fields: [\"$.a[\"], action: {type: redact}}}}\n",
         4, "\"$.a[\"", "spec.defaultDeny.body.fields[0]: invalid JSONPath: offset 4: expected \"*\", a quoted name or "
         "an index after \"[\""},
        {HEAD "spec: {selector: {}, defaultDeny: {body: {action: {type: mask, keepFirst: -1}}}}\n", 4,
         "-1", "spec.defaultDeny.body.action.keepFirst: must be from 0 to 64"},
        {HEAD "spec: {selector: {}, defaultDeny: {headers: {names: [\"a b\"], action: {type: remove}}}}\n",
         4, "\"a b\"", "spec.defaultDeny.headers.names[0]: not a valid HTTP header name (a token: letters, "
         "digits and !#$%&'*+-.^_`|~)"},
        {HEAD "spec: {selector: {}, defaultDeny: {headers: {fields: [$.a], action: {type: remove}}}}\n",
         4, "fields", "spec.defaultDeny.headers.fields: unknown field (expected one of names, action)"},
        {HEAD "spec: {selector: {}, " RULE ", exemptions: [{principals: [x], rules: [defaultDeny]}]}\n",
         4, "defaultDeny", "spec.exemptions[0].rules[0]: no rule named \"defaultDeny\" in this policy "
         "(it has no defaultDeny)"},
        /* network */
        {HEAD "spec: {selector: {}, " RULE ", network: {allowFrom: [{ipBlock: {cidr: 10.0.0.0}}]}}\n",
         4, "10.0.0.0", "spec.network.allowFrom[0].ipBlock.cidr: expected a CIDR such as "
         "10.0.0.0/8 or fd00::/8"},
        {HEAD "spec: {selector: {}, " RULE ", network: {allowFrom: [{ipBlock: {cidr: 10.0.0.0/8, "
         "except: [fd00::/129]}}]}}\n", 4, "fd00", "spec.network.allowFrom[0].ipBlock.except[0]: "
         "expected a CIDR such as 10.0.0.0/8 or fd00::/8"},
        {HEAD "spec: {selector: {}, " RULE ", network: {allowFrom: [{ipBlock: {}}]}}\n", 4, "{}}",
         "spec.network.allowFrom[0].ipBlock: cidr is required"},
        {HEAD "spec: {selector: {}, " RULE ", network: {allowFrom: [{ports: [80]}]}}\n", 4, "ports",
         "spec.network.allowFrom[0].ports: unknown field (expected one of podSelector, "
         "namespaceSelector, ipBlock)"},
        {HEAD "spec: {selector: {}, " RULE ", network: {allowFrom: [{podSelector: {matchLabels: "
         "{role: \"front end\"}}}]}}\n", 4, "\"front", "spec.network.allowFrom[0].podSelector."
         "matchLabels.role: invalid label value: at most 63 of [A-Za-z0-9-_.], starting and "
         "ending alphanumeric"},
        {HEAD "spec: {selector: {}, " RULE ", network: {allowFrom: {podSelector: {}}}}\n", 4,
         "{podSelector", "spec.network.allowFrom: expected a list, got a mapping"},
        {HEAD "spec: {selector: {}, " RULE ", network: {denyFrom: []}}\n", 4, "denyFrom",
         "spec.network.denyFrom: unknown field (expected one of allowFrom)"},
        /* the YAML itself */
        {"a: [1, 2\n", 2, "", "YAML: did not find expected ',' or ']' while parsing a flow sequence"},
        {"a: 1\nb: 2\na: 3\n", 3, "a", "duplicate key \"a\" (first at 1:1)"},
        {"? [a]\n: 1\n", 1, "[", "a mapping key must be a scalar"},
        {"a: &x 1\nb: *x\n", 2, "*x", "YAML aliases (*x) are not supported in policies; write the "
         "value out"},
        {"apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: \"a\\x00b\"}\n"
         "spec: {selector: {}, " RULE "}\n", 3, "\"a", "metadata.name: a name contains a NUL byte"},
        {"- 1\n- [2]\n", 1, "1", "[0]: expected a mapping, got an integer"},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_policy_set *set = NULL;
        mm_diags *d = NULL;
        mm_errbuf eb = {{0}};
        char want[1024];
        const char *doc = rows[i].doc, *line = doc;

        for (unsigned l = 1; l < rows[i].line && line; l++)
            if ((line = strchr(line, '\n')))
                line++;
        assert_non_null(line);
        const char *at = rows[i].at[0] ? strstr(line, rows[i].at) : line;
        assert_non_null(at);
        snprintf(want, sizeof(want), "t.yaml:%u:%zu: %s", rows[i].line, (size_t)(at - line) + 1,
                 rows[i].msg);

        assert_int_equal(mm_diags_new(&d), MM_OK);
        mm_err rc = mm_policy_parse_yaml(doc, strlen(doc), "t.yaml", &set, d, &eb);
        if (rc == MM_OK)
            fail_msg("row %zu parsed, want: %s", i, want);
        assert_null(set);
        if (!has_diag(d, want)) {
            dump(d);
            fail_msg("row %zu: no error is\n  %s", i, want);
        }
        assert_string_equal(eb.msg, mm_diags_get(d, 0, NULL));
        mm_diags_free(d);
    }
}

static void test_json_errors(void **state)
{
#define J_HEAD "{\"apiVersion\":\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\",\"metadata\":{\"name\":\"p\"},"
    static const struct {
        const char *json;
        mm_err rc;
        const char *msg; /* the first error, exactly */
    } rows[] = {
        {J_HEAD "\"spec\":{\"selector\":{},\"rules\":[{\"name\":\"r\",\"fields\":[\"$.a\"],"
         "\"action\":{\"type\":\"mask\",\"keepFirst\":7.5}}]}}", MM_EINVAL,
         "x.json: spec.rules[0].action.keepFirst: expected an integer from 0 to 64, got a number"},
        {J_HEAD "\"spec\":{\"selector\":{},\"port\":\"80\",\"rules\":[{\"name\":\"r\",\"fields\":"
         "[\"$.a\"],\"action\":{\"type\":\"redact\"}}]}}", MM_EINVAL,
         "x.json: spec.port: \"80\" is neither a port number (1-65535, unquoted) nor a port name "
         "(at most 15 of a-z, 0-9, '-', with a letter)"},
        {J_HEAD "\"spec\":{\"selector\":{},\"rules\":[{\"name\":\"r\",\"fields\":[\"$.a\"],"
         "\"action\":{\"type\":\"mask\",\"preserveFormat\":1}}]}}", MM_EINVAL,
         "x.json: spec.rules[0].action.preserveFormat: expected true or false, got an integer"},
        {"[" J_HEAD "\"spec\":{\"selector\":{},\"rules\":[]}}]", MM_EINVAL,
         "x.json: [0].spec.rules: at least one rule is required (or defaultDeny)"},
        {"{\"kind\":\"List\",\"items\":[" ITEM("a") "," J_HEAD "\"spec\":{\"selector\":{},"
         "\"rules\":[{\"name\":\"r\",\"fields\":[\"$.a\"],\"action\":{\"type\":\"hide\"}}]}}]}",
         MM_EINVAL, "x.json: items[1].spec.rules[0].action.type: unknown action type \"hide\" "
         "(expected one of redact, mask, hash, tokenize, remove, replace, encrypt)"},
        /* the controller reads policies as JSON: default deny is validated the same way */
        {J_HEAD "\"spec\":{\"selector\":{},\"rules\":[],\"defaultDeny\":{\"headers\":"
         "{\"names\":[\"Content-Type\",\"a:b\"],\"action\":{\"type\":\"remove\"}}}}}", MM_EINVAL,
         "x.json: spec.defaultDeny.headers.names[1]: not a valid HTTP header name (a token: letters, "
         "digits and !#$%&'*+-.^_`|~)"},
        {"{\"kind\":\"List\",\"items\":{}}", MM_EINVAL,
         "x.json: (document): a List needs items: a list of MaskingPolicy objects"},
        {"[" ITEM("a") "," ITEM("a") "]", MM_EINVAL,
         "x.json: (document): two policies are named \"a\""},
        {"\"just a string\"", MM_EINVAL, "x.json: (document): expected a mapping, got a string"},
        {"{\"a\": }", MM_EPARSE, "x.json: JSON: offset 6: unexpected character"},
        {"[1,]", MM_EPARSE, "x.json: JSON: offset 3: unexpected character"},
        {"{} x", MM_EPARSE, "x.json: JSON: offset 3: unexpected character"},
        {"{}\n\n", MM_EINVAL, "x.json: (document): apiVersion is required (maskmesh.io/v1alpha1)"},
        {"{\"a\": [1, 2", MM_EPARSE, "x.json: JSON: offset 11: unexpected end of input"},
        {"", MM_EPARSE, "x.json: JSON: offset 0: unexpected end of input"},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_policy_set *set = NULL;
        mm_diags *d = NULL;
        mm_errbuf eb = {{0}};
        assert_int_equal(mm_diags_new(&d), MM_OK);
        mm_err rc = mm_policy_parse_json(rows[i].json, strlen(rows[i].json), "x.json", &set, d, &eb);
        if (rc != rows[i].rc || strcmp(eb.msg, rows[i].msg) != 0) {
            dump(d);
            fail_msg("row %zu: rc %d \"%s\", want rc %d \"%s\"", i, rc, eb.msg, rows[i].rc,
                     rows[i].msg);
        }
        assert_null(set);
        assert_string_equal(mm_diags_get(d, 0, NULL), rows[i].msg);
        mm_diags_free(d);
    }
#undef J_HEAD
}

/* One input with many problems: each is reported, and the counts say so. */
static void test_collects_all_errors(void **state)
{
    mm_diags *d;
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    const char *y = HEAD "spec: {selector: {}, mode: x, onError: y, rules: [{name: R, fields: [a], "
                         "action: {type: mask, keepFirst: -1}}]}\n";
    (void)state;
    assert_int_equal(mm_diags_new(&d), MM_OK);
    assert_int_equal(mm_policy_parse_yaml(y, strlen(y), "t.yaml", &set, d, &eb), MM_EINVAL);
    assert_int_equal(mm_diags_errors(d), 5);
    assert_int_equal(mm_diags_warnings(d), 0);
    assert_int_equal(mm_diags_count(d), 5);
    assert_string_equal(mm_diags_get(d, 0, NULL),
                        "t.yaml:4:28: spec.mode: unknown value \"x\" (expected enforce or audit)");
    assert_string_equal(eb.msg, mm_diags_get(d, 0, NULL));
    assert_string_equal(mm_diags_get(d, 4, NULL),
                        "t.yaml:4:106: spec.rules[0].action.keepFirst: must be from 0 to 64");
    assert_null(mm_diags_get(d, 5, NULL));
    mm_diags_free(d);

    /* without diags and without eb, the result is the same */
    assert_int_equal(mm_policy_parse_yaml(y, strlen(y), "t.yaml", &set, NULL, NULL), MM_EINVAL);
    assert_null(set);
}

/* ---- limits ----------------------------------------------------------------------------- */

/* head, then item n times (its "#" replaced by the count so far), then tail. */
static char *repeat_doc(const char *head, const char *item, size_t n, const char *tail)
{
    mm_buf b;
    const char *hash = strchr(item, '#');
    mm_buf_init(&b, 0);
    assert_int_equal(mm_buf_puts(&b, head), MM_OK);
    for (size_t i = 0; i < n; i++) {
        if (!hash) {
            assert_int_equal(mm_buf_puts(&b, item), MM_OK);
            continue;
        }
        assert_int_equal(mm_buf_append(&b, item, (size_t)(hash - item)), MM_OK);
        assert_int_equal(mm_buf_printf(&b, "%zu", i), MM_OK);
        assert_int_equal(mm_buf_puts(&b, hash + 1), MM_OK);
    }
    assert_int_equal(mm_buf_puts(&b, tail), MM_OK);
    return mm_buf_steal(&b, NULL);
}

static void expect_error(const char *doc, mm_err rc, const char *want)
{
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    assert_int_equal(mm_policy_parse_yaml(doc, strlen(doc), "t.yaml", &set, NULL, &eb), rc);
    assert_null(set);
    if (!strstr(eb.msg, want))
        fail_msg("\"%s\" lacks \"%s\"", eb.msg, want);
}

static void test_limits(void **state)
{
    char *doc;
    mm_policy_set *set;
    (void)state;

    /* MM_POLICY_MAX_RULES rules are fine, one more is an error */
    doc = repeat_doc(HEAD "spec:\n  selector: {}\n  rules:\n",
                     "  - {name: r#, fields: [$.a], action: {type: redact}}\n",
                     MM_POLICY_MAX_RULES, "");
    set = parse_ok(doc);
    assert_int_equal(mm_policy_set_get(set, 0)->n_rules, MM_POLICY_MAX_RULES);
    mm_policy_set_free(set);
    mm_free(doc);
    doc = repeat_doc(HEAD "spec:\n  selector: {}\n  rules:\n",
                     "  - {name: r#, fields: [$.a], action: {type: redact}}\n",
                     MM_POLICY_MAX_RULES + 1, "");
    expect_error(doc, MM_EINVAL, "t.yaml:7:3: spec.rules: at most 256 entries are allowed, got 257");
    mm_free(doc);

    doc = repeat_doc(HEAD "spec: {selector: {}, rules: [{name: r, action: {type: redact}, fields: [",
                     "$.f#, ", MM_POLICY_MAX_PATHS + 1, "]}]}\n");
    expect_error(doc, MM_EINVAL, "spec.rules[0].fields: at most 256 entries are allowed, got 257");
    mm_free(doc);

    /* the CRD's caps (its CEL cost budget): headers 128, exemptions[].rules 16, reveal 16 of
     * 32 rules; one more than each is refused here as by the API server */
    doc = repeat_doc(HEAD "spec: {selector: {}, " RULE ", headers: [",
                     "{name: h#, action: {type: remove}}, ", MM_POLICY_MAX_HEADERS, "]}\n");
    set = parse_ok(doc);
    assert_int_equal(mm_policy_set_get(set, 0)->n_headers, MM_POLICY_MAX_HEADERS);
    mm_policy_set_free(set);
    mm_free(doc);
    doc = repeat_doc(HEAD "spec: {selector: {}, " RULE ", headers: [",
                     "{name: h#, action: {type: remove}}, ", MM_POLICY_MAX_HEADERS + 1, "]}\n");
    expect_error(doc, MM_EINVAL, "spec.headers: at most 128 entries are allowed, got 129");
    mm_free(doc);
    static const struct {
        const char *head, *item, *tail, *want;
        size_t n;
    } over[] = {
        {HEAD "spec: {selector: {}, " RULE ", exemptions: [{principals: [p], rules: [", "r, ", "]}]}\n",
         "spec.exemptions[0].rules: at most 16 entries are allowed, got 17",
         MM_POLICY_MAX_EXEMPTION_RULES + 1},
        {HEAD "spec: {selector: {}, " RULE ", reveal: [",
         "{principals: [p#], rules: [{rule: r, clear: true}]}, ", "]}\n",
         "spec.reveal: at most 16 entries are allowed, got 17", MM_POLICY_MAX_GRANTS + 1},
        {HEAD "spec: {selector: {}, " RULE ", reveal: [{principals: [p], rules: [",
         "{rule: r, clear: true}, ", "]}]}\n", "spec.reveal[0].rules: at most 32 entries are allowed, got 33",
         MM_POLICY_MAX_GRANT_RULES + 1},
    };
    for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
        doc = repeat_doc(over[i].head, over[i].item, over[i].n, over[i].tail);
        expect_error(doc, MM_EINVAL, over[i].want);
        mm_free(doc);
    }

    /* a name of 253 is the most */
    char name[300];
    memset(name, 'a', sizeof(name));
    name[MM_POLICY_NAME_MAX] = '\0';
    doc = repeat_doc("apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: ",
                     name, 1, "}\nspec: {selector: {}, " RULE "}\n");
    set = parse_ok(doc);
    mm_policy_set_free(set);
    mm_free(doc);
    name[MM_POLICY_NAME_MAX] = 'a';
    name[MM_POLICY_NAME_MAX + 1] = '\0';
    doc = repeat_doc("apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: ",
                     name, 1, "}\nspec: {selector: {}, " RULE "}\n");
    expect_error(doc, MM_EINVAL, "is not a valid name");
    mm_free(doc);

    /* nesting, and a document that is one huge mapping (duplicate checks stay fast) */
    doc = repeat_doc("a: ", "[", 100, "");
    expect_error(doc, MM_ELIMIT, "t.yaml:1:67: nesting deeper than 64 levels");
    mm_free(doc);
    doc = repeat_doc("{", "k#: 1, ", 60000, "k7: 2}\n");
    expect_error(doc, MM_EPARSE, "duplicate key \"k7\" (first at 1:");
    mm_free(doc);
    doc = repeat_doc("[", "#, ", 210000, "]\n");
    expect_error(doc, MM_ELIMIT, "t.yaml: more than 200000 values; a policy file is not that large");
    mm_free(doc);
}

/* ---- PCI DSS lint ----------------------------------------------------------------------- */

static void test_default_deny(void **state)
{
    (void)state;
    const char *y = HEAD "spec:\n  selector: {}\n  rules: []\n  defaultDeny:\n"
                         "    body: {fields: [$.id, \"$.items[*].sku\"], action: {type: mask, keepLast: 2}}\n"
                         "    headers: {names: [Content-Type, X-Req], action: {type: remove}}\n"
                         "  exemptions: [{principals: [spiffe://x/b], rules: [defaultDeny]}]\n";
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    if (mm_policy_parse_yaml(y, strlen(y), "t.yaml", &set, NULL, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    const mm_policy *p = mm_policy_set_get(set, 0);
    assert_int_equal(p->n_rules, 0);
    assert_true(p->deny_body.set);
    assert_int_equal(p->deny_body.n_fields, 2);
    assert_string_equal(p->deny_body.fields[1].text, "$.items[*].sku");
    assert_int_equal(p->deny_body.action.type, MM_ACTION_MASK);
    assert_int_equal(p->deny_body.action.keep_last, 2);
    assert_true(p->deny_headers.set);
    assert_int_equal(p->deny_headers.n_names, 2);
    assert_string_equal(p->deny_headers.names[1], "X-Req");
    assert_int_equal(p->deny_headers.action.type, MM_ACTION_REMOVE);
    assert_string_equal(p->exemptions[0].rules[0], MM_DENY_RULE);
    mm_policy_set_free(set);

    /* headers only: the body part stays off; rules may be absent */
    const char *h = HEAD "spec: {selector: {}, defaultDeny: {headers: {action: {type: redact}}}}\n";
    set = NULL;
    if (mm_policy_parse_yaml(h, strlen(h), "t.yaml", &set, NULL, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    p = mm_policy_set_get(set, 0);
    assert_false(p->deny_body.set);
    assert_true(p->deny_headers.set);
    assert_int_equal(p->deny_headers.n_names, 0);
    mm_policy_set_free(set);
}

static void test_lint(void **state)
{
    static const struct {
        const char *rule; /* one rule, flow style */
        const char *warning; /* NULL: none; else a part of the one warning */
    } rows[] = {
        {"{name: a, detectors: [credit_card], action: {type: mask, keepFirst: 8, keepLast: 4}}",
         "spec.rules[0].action: rule \"a\" shows more of a card number than PCI DSS allows (at "
         "most the first 6 and last 4 digits; keepFirst 8, keepLast 4)"},
        {"{name: a, fields: [$.pan], action: {type: mask, keepFirst: 6, keepLast: 5}}",
         "keepFirst 6, keepLast 5"},
        {"{name: a, fields: [$.x.cardNumber], action: {type: mask, keepLast: 12}}", "keepLast 12"},
        {"{name: a, fields: [\"$..CC\"], action: {type: mask, keepFirst: 7}}", "keepFirst 7"},
        {"{name: a, fields: [$.payment.card_number], action: {type: mask, keepFirst: 9}}",
         "keepFirst 9"},
        {"{name: a, fields: [\"$['Card']\"], action: {type: mask, keepLast: 5}}", "keepLast 5"},
        {"{name: a, fields: [$.pan], action: {type: mask, keepFirst: 6, keepLast: 4}}", NULL},
        {"{name: a, detectors: [credit_card], action: {type: mask}}", NULL},
        {"{name: a, fields: [$.pan.x], action: {type: mask, keepFirst: 10}}", NULL},
        {"{name: a, fields: [$.span], action: {type: mask, keepFirst: 10}}", NULL},
        {"{name: a, detectors: [email], action: {type: mask, keepFirst: 10}}", NULL},
        {"{name: a, fields: [$.pan], action: {type: hash}}",
         "spec.rules[0].action: rule \"a\" hashes card numbers without a key: such low-entropy "
         "values are reversible by brute force; use a keyed hash (key) or tokenize"},
        {"{name: a, detectors: [us_ssn], action: {type: hash}}", "hashes SSNs without a key"},
        {"{name: a, fields: [$.person.SSN], action: {type: hash}}", "hashes SSNs without a key"},
        {"{name: a, fields: [$.pan], action: {type: hash, key: k}}", NULL},
        {"{name: a, detectors: [us_ssn], action: {type: hash, key: k}}", NULL},
        {"{name: a, detectors: [us_ssn], action: {type: tokenize, key: k}}", NULL},
        {"{name: a, fields: [$.note], action: {type: hash}}", NULL},
        /* encrypt: the card rule, and FF1 domains below 10^6 for the shortest value */
        {"{name: a, fields: [$.pan], action: {type: encrypt, mode: ff1, key: k, keyVersion: 1, "
         "keepFirst: 8}}", "keepFirst 8, keepLast 0"},
        {"{name: a, detectors: [credit_card], action: {type: encrypt, mode: ff1, key: k, "
         "keyVersion: 1, keepFirst: 6, keepLast: 4}}", "rule \"a\" encrypts credit_card values "
         "with FF1 over a domain below NIST SP 800-38G's minimum of 1,000,000 (the shortest has 3 "
         "encrypted symbols of radix 10)"},
        {"{name: a, detectors: [credit_card], action: {type: encrypt, mode: ff1, key: k, "
         "keyVersion: 1, keepFirst: 6}}", NULL}, /* 13 - 6 - 1 check digit = 6: 10^6 */
        {"{name: a, detectors: [credit_card], action: {type: encrypt, mode: ff1, key: k, "
         "keyVersion: 1, keepFirst: 6, keepLast: 1}}", NULL},
        {"{name: a, detectors: [credit_card], action: {type: encrypt, mode: ff1, key: k, "
         "keyVersion: 1, keepFirst: 6, keepLast: 2}}", "(the shortest has 5 encrypted symbols"},
        {"{name: a, detectors: [us_ssn], action: {type: encrypt, mode: ff1, key: k, keyVersion: 1,"
         " keepLast: 4}}", "encrypts us_ssn values"},
        {"{name: a, detectors: [us_ssn], action: {type: encrypt, mode: ff1, key: k, keyVersion: "
         "1}}", NULL},
        {"{name: a, detectors: [ipv4], action: {type: encrypt, mode: ff1, key: k, keyVersion: 1}}",
         "(the shortest has 4 encrypted symbols of radix 10)"},
        {"{name: a, detectors: [email], action: {type: encrypt, mode: ff1, key: k, keyVersion: 1}}",
         NULL}, /* 36^4 */
        {"{name: a, detectors: [ipv4], action: {type: encrypt, mode: siv, key: k, keyVersion: 1}}",
         NULL},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        char doc[1024];
        mm_diags *d;
        bool warn = false;
        snprintf(doc, sizeof(doc), HEAD "spec: {selector: {}, rules: [%s]}\n", rows[i].rule);
        mm_policy_set *set = parse_ok(doc);
        assert_int_equal(mm_diags_new(&d), MM_OK);
        size_t n = mm_policy_lint(mm_policy_set_get(set, 0), "t.yaml", d);
        if (n != (rows[i].warning ? 1u : 0u)) {
            dump(d);
            fail_msg("row %zu (%s): %zu warnings", i, rows[i].rule, n);
        }
        assert_int_equal(mm_diags_warnings(d), n);
        assert_int_equal(mm_diags_errors(d), 0);
        if (n) {
            const char *w = mm_diags_get(d, 0, &warn);
            assert_true(warn);
            assert_non_null(strstr(w, "t.yaml: policy p1: spec.rules[0].action: "));
            if (!strstr(w, rows[i].warning))
                fail_msg("row %zu: \"%s\" lacks \"%s\"", i, w, rows[i].warning);
        }
        mm_diags_free(d);
        mm_policy_set_free(set);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_example),
        cmocka_unit_test(test_encrypt_and_reveal_model),
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_sample_files),
        cmocka_unit_test(test_sample_file_models),
        cmocka_unit_test(test_from_json),
        cmocka_unit_test(test_yaml_scalars),
        cmocka_unit_test(test_errors_name_places),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_collects_all_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_lint),
        cmocka_unit_test(test_default_deny),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
