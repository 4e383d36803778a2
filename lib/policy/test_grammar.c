/* Unit tests for lib/policy's small grammars and failure paths: the JSONPath subset, the
 * downward-API labels file, LabelSelector semantics, and every allocation failing in turn
 * (LeakSanitizer under make test-asan checks that nothing leaks on the way out). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"

/* ---- JSONPath --------------------------------------------------------------------------- */

/* A compact spelling of the steps, to compare whole parses in one string:
 * "n:a" name, "i:3" index, "*" wildcard, each prefixed with ".." when descendant. */
static void steps_str(const mm_path *p, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < p->n_steps && used < size; i++) {
        const mm_path_step *s = &p->steps[i];
        const char *sep = i ? " " : "", *d = s->descendant ? ".." : "";
        if (s->kind == MM_STEP_NAME)
            used += (size_t)snprintf(out + used, size - used, "%s%sn:%.*s", sep, d,
                                     (int)s->name_len, s->name);
        else if (s->kind == MM_STEP_INDEX)
            used += (size_t)snprintf(out + used, size - used, "%s%si:%ld", sep, d, s->index);
        else
            used += (size_t)snprintf(out + used, size - used, "%s%s*", sep, d);
    }
}

static void test_paths_valid(void **state)
{
    static const struct {
        const char *text;
        const char *steps;
    } rows[] = {
        {"$", ""},
        {"$.a", "n:a"},
        {"$.a.b", "n:a n:b"},
        {"$.card_number", "n:card_number"},
        {"$.x-y", "n:x-y"},
        {"$.caf\xc3\xa9", "n:caf\xc3\xa9"},
        {"$['a.b']", "n:a.b"},
        {"$[\"a b\"]", "n:a b"},
        {"$['it\\'s']", "n:it's"},
        {"$[\"q\\\"x\"]", "n:q\"x"},
        {"$['back\\\\slash']", "n:back\\slash"},
        {"$['']", "n:"},
        {"$['[*]']", "n:[*]"},
        {"$.items[*].card", "n:items * n:card"},
        {"$.*", "*"},
        {"$.*.x", "* n:x"},
        {"$[*]", "*"},
        {"$.items[0]", "n:items i:0"},
        {"$.items[12][3]", "n:items i:12 i:3"},
        {"$[1000000000]", "i:1000000000"},
        {"$..pan", "..n:pan"},
        {"$..['p n']", "..n:p n"},
        {"$..*", "..*"},
        {"$..[*]", "..*"},
        {"$..[2]", "..i:2"},
        {"$.a..b.c", "n:a ..n:b n:c"},
        {"$..a..b", "..n:a ..n:b"},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_path p = {0};
        mm_errbuf eb = {{0}};
        char got[256];
        if (mm_path_parse(rows[i].text, &p, &eb) != MM_OK)
            fail_msg("%s: %s", rows[i].text, eb.msg);
        steps_str(&p, got, sizeof(got));
        if (strcmp(got, rows[i].steps) != 0)
            fail_msg("%s: steps \"%s\", want \"%s\"", rows[i].text, got, rows[i].steps);
        assert_string_equal(p.text, rows[i].text);
        for (size_t k = 0; k < p.n_steps; k++)
            if (p.steps[k].kind == MM_STEP_NAME)
                assert_int_equal(strlen(p.steps[k].name), p.steps[k].name_len);
        mm_path_clear(&p);
        assert_null(p.steps);
        assert_int_equal(p.n_steps, 0);
    }
}

static void test_paths_invalid(void **state)
{
    static const struct {
        const char *text;
        const char *msg; /* exactly */
    } rows[] = {
        {"", "offset 0: a path starts with \"$\""},
        {"a.b", "offset 0: a path starts with \"$\""},
        {".a", "offset 0: a path starts with \"$\""},
        {"$a", "offset 1: expected \".\", \"..\" or \"[\""},
        {"$.a b", "offset 3: expected \".\", \"..\" or \"[\""},
        {"$.", "offset 2: expected a member name after \".\""},
        {"$.a.", "offset 4: expected a member name after \".\""},
        {"$.[0]", "offset 2: expected a member name after \".\""},
        {"$..", "offset 3: expected a member name after \"..\""},
        {"$...a", "offset 3: expected a member name after \"..\""},
        {"$.a..", "offset 5: expected a member name after \"..\""},
        {"$[", "offset 2: expected \"*\", a quoted name or an index after \"[\""},
        {"$[]", "offset 2: expected \"*\", a quoted name or an index after \"[\""},
        {"$[-1]", "offset 2: expected \"*\", a quoted name or an index after \"[\""},
        {"$[a]", "offset 2: expected \"*\", a quoted name or an index after \"[\""},
        {"$[*", "offset 2: expected \"*\", a quoted name or an index after \"[\""},
        {"$[1x]", "offset 2: expected an index from 0 to 1000000000 followed by \"]\""},
        {"$[1", "offset 2: expected an index from 0 to 1000000000 followed by \"]\""},
        {"$[1000000001]", "offset 2: expected an index from 0 to 1000000000 followed by \"]\""},
        {"$[99999999999999999999]", "offset 2: expected an index from 0 to 1000000000 followed by \"]\""},
        {"$.a[0", "offset 4: expected an index from 0 to 1000000000 followed by \"]\""},
        {"$['a", "offset 2: the quoted name has no closing '"},
        {"$['a\\'", "offset 2: the quoted name has no closing '"},
        {"$['a'", "offset 5: expected \"]\" after the quoted name"},
        {"$['a\"]", "offset 2: the quoted name has no closing '"},
        {"$..[\"a", "offset 4: the quoted name has no closing \""},
        {"$['a'x]", "offset 5: expected \"]\" after the quoted name"},
        {"$['a\\n']", "offset 4: only \\\\, \\' and \\\" escapes are allowed in a quoted name"},
        {"$..['a'", "offset 7: expected \"]\" after the quoted name"},
        {"$.a]", "offset 3: expected \".\", \"..\" or \"[\""},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_path p = {0};
        mm_errbuf eb = {{0}};
        mm_err rc = mm_path_parse(rows[i].text, &p, &eb);
        if (rc == MM_OK)
            fail_msg("%s: parsed but should not", rows[i].text);
        assert_int_equal(rc, MM_EPARSE);
        if (strcmp(eb.msg, rows[i].msg) != 0)
            fail_msg("%s: message \"%s\", want \"%s\"", rows[i].text, eb.msg, rows[i].msg);
        assert_null(p.steps);
        assert_null(p.text);
    }
}

static void test_paths_limits(void **state)
{
    char text[4096];
    mm_path p = {0};
    mm_errbuf eb = {{0}};
    size_t n = 1;
    (void)state;

    text[0] = '$';
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, ".a");
    assert_int_equal(mm_path_parse(text, &p, &eb), MM_OK);
    assert_int_equal(p.n_steps, 64);
    mm_path_clear(&p);
    snprintf(text + n, sizeof(text) - n, ".b");
    assert_int_equal(mm_path_parse(text, &p, &eb), MM_ELIMIT);
    assert_string_equal(eb.msg, "offset 129: more than 64 steps");

    memset(text, 'x', sizeof(text));
    memcpy(text, "$.", 2);
    text[2 + 1024] = '\0';
    assert_int_equal(mm_path_parse(text, &p, &eb), MM_OK);
    mm_path_clear(&p);
    text[2 + 1024] = 'x';
    text[2 + 1025] = '\0';
    assert_int_equal(mm_path_parse(text, &p, &eb), MM_ELIMIT);
    assert_string_equal(eb.msg, "offset 1: a member name is longer than 1024 bytes");
    memcpy(text, "$['", 3);
    text[2 + 1025] = 'x';
    text[3 + 1025] = '\'';
    text[3 + 1026] = ']';
    text[3 + 1027] = '\0';
    assert_int_equal(mm_path_parse(text, &p, &eb), MM_ELIMIT);
    assert_string_equal(eb.msg, "offset 3: a member name is longer than 1024 bytes");
    assert_int_equal(mm_path_parse(NULL, &p, &eb), MM_EPARSE);
}

/* ---- labels files ------------------------------------------------------------------------ */

static void test_labels_valid(void **state)
{
    static const struct {
        const char *text;
        size_t n;
        const char *key, *value; /* one label to check */
    } rows[] = {
        {"app=\"payments\"\npod-template-hash=\"7c9d8b5f4d\"\n", 2, "pod-template-hash", "7c9d8b5f4d"},
        {"app=\"payments\"", 1, "app", "payments"}, /* no final newline */
        {"app=\"payments\"\r\n", 1, "app", "payments"},
        {"\n\napp=\"x\"\n\n", 1, "app", "x"},
        {"", 0, NULL, NULL},
        {"tier=\"\"\n", 1, "tier", ""},
        {"app.kubernetes.io/name=\"shop\"\n", 1, "app.kubernetes.io/name", "shop"},
        {"q=\"a \\\"q\\\" b\"\n", 1, "q", "a \"q\" b"},
        {"s=\"back\\\\slash\"\n", 1, "s", "back\\slash"},
        {"c=\"1\\n2\\t3\\r\\a\\b\\f\\v\"\n", 1, "c", "1\n2\t3\r\a\b\f\v"},
        {"x=\"\\x41\\x7e\"\n", 1, "x", "A~"},
        {"o=\"\\101\\377\"\n", 1, "o", "A\xff"},
        {"u=\"caf\\u00e9 \\u20ac\"\n", 1, "u", "caf\xc3\xa9 \xe2\x82\xac"},
        {"U=\"\\U0001F600\"\n", 1, "U", "\xf0\x9f\x98\x80"},
        {"raw=\"caf\xc3\xa9\"\n", 1, "raw", "caf\xc3\xa9"},
        {"eq=\"a=b\"\n", 1, "eq", "a=b"},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_labels l = {0};
        mm_errbuf eb = {{0}};
        if (mm_labels_parse(rows[i].text, strlen(rows[i].text), "labels", &l, &eb) != MM_OK)
            fail_msg("row %zu: %s", i, eb.msg);
        assert_int_equal(l.n, rows[i].n);
        if (rows[i].key)
            assert_string_equal(mm_labels_get(&l, rows[i].key), rows[i].value);
        assert_null(mm_labels_get(&l, "absent"));
        mm_labels_clear(&l);
        assert_int_equal(l.n, 0);
    }
    assert_null(mm_labels_get(NULL, "a"));
}

static void test_labels_invalid(void **state)
{
    static const struct {
        const char *text;
        const char *msg; /* exactly */
    } rows[] = {
        {"a=b\n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with \\\" \\\\ \\n "
                  "\\t \\xNN \\uNNNN escapes)"},
        {"ok=\"1\"\nnoequals\n", "pod:2: expected key=\"value\""},
        {"ok=\"1\"\n=\"x\"\n", "pod:2: expected a label key (at most 317 of [-._/a-zA-Z0-9]) "
                               "before \"=\""},
        {"a b=\"x\"\n", "pod:1: expected a label key (at most 317 of [-._/a-zA-Z0-9]) before \"=\""},
        {"a=\"x\"\n\nb=\"unterminated\n", "pod:3: the value of \"b\" is not a Go-quoted string "
                                          "(\"...\" with \\\" \\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"x\" \n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with \\\" "
                       "\\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"x\"y\"\n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with \\\" "
                         "\\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"\\q\"\n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with \\\" "
                        "\\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"\\'\"\n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with \\\" "
                        "\\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"\\x4\"\n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with \\\" "
                         "\\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"\\x00\"\n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with \\\" "
                          "\\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"\\ud800\"\n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with "
                            "\\\" \\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"\\U00110000\"\n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" "
                                "with \\\" \\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"\\400\"\n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with \\\" "
                          "\\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"\\18\"\n", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with \\\" "
                         "\\\\ \\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"x\\", "pod:1: the value of \"a\" is not a Go-quoted string (\"...\" with \\\" \\\\ "
                    "\\n \\t \\xNN \\uNNNN escapes)"},
        {"a=\"1\"\nb=\"2\"\na=\"3\"\n", "pod:3: label \"a\" appears twice"},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_labels l = {0};
        mm_errbuf eb = {{0}};
        mm_err rc = mm_labels_parse(rows[i].text, strlen(rows[i].text), "pod", &l, &eb);
        if (rc != MM_EPARSE || strcmp(eb.msg, rows[i].msg) != 0)
            fail_msg("row %zu: rc %d \"%s\", want \"%s\"", i, rc, eb.msg, rows[i].msg);
        assert_int_equal(l.n, 0);
        assert_null(l.keys);
    }

    /* a raw NUL inside the quotes is refused, not silently cut */
    mm_labels l = {0};
    mm_errbuf eb = {{0}};
    assert_int_equal(mm_labels_parse("a=\"x\0y\"\n", 8, "pod", &l, &eb), MM_EPARSE);
    /* the line count is bounded */
    mm_buf b;
    mm_buf_init(&b, 0);
    for (int i = 0; i <= 1024; i++)
        assert_int_equal(mm_buf_printf(&b, "k%d=\"v\"\n", i), MM_OK);
    assert_int_equal(mm_labels_parse(b.data, b.len, "pod", &l, &eb), MM_ELIMIT);
    assert_string_equal(eb.msg, "pod:1025: more than 1024 labels");
    mm_buf_free(&b);
}

/* ---- selectors ---------------------------------------------------------------------------- */

static mm_policy_set *policy_with_selector(const char *selector)
{
    char doc[2048];
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    snprintf(doc, sizeof(doc),
             "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p}\n"
             "spec:\n  selector: %s\n  rules: [{name: r, fields: [$.a], action: {type: redact}}]\n",
             selector);
    if (mm_policy_parse_yaml(doc, strlen(doc), "t.yaml", &set, NULL, &eb) != MM_OK)
        fail_msg("%s: %s", selector, eb.msg);
    return set;
}

static void test_selectors(void **state)
{
    static const struct {
        const char *selector;
        const char *labels;
        bool match;
    } rows[] = {
        {"{}", "", true},
        {"{}", "app=\"x\"\n", true},
        {"{matchLabels: {}, matchExpressions: []}", "", true},
        {"{matchLabels: {app: payments}}", "app=\"payments\"\ntier=\"web\"\n", true},
        {"{matchLabels: {app: payments}}", "app=\"orders\"\n", false},
        {"{matchLabels: {app: payments}}", "", false},
        {"{matchLabels: {app: payments}}", "App=\"payments\"\n", false},
        {"{matchLabels: {app: payments, tier: web}}", "app=\"payments\"\n", false},
        {"{matchLabels: {app: payments, tier: web}}", "tier=\"web\"\napp=\"payments\"\n", true},
        {"{matchLabels: {tier: \"\"}}", "tier=\"\"\n", true},
        {"{matchLabels: {tier: \"\"}}", "", false},
        {"{matchExpressions: [{key: tier, operator: In, values: [web, api]}]}", "tier=\"api\"\n", true},
        {"{matchExpressions: [{key: tier, operator: In, values: [web, api]}]}", "tier=\"db\"\n", false},
        {"{matchExpressions: [{key: tier, operator: In, values: [web]}]}", "", false},
        {"{matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}", "env=\"dev\"\n", true},
        {"{matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}", "env=\"prod\"\n", false},
        {"{matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}", "", true},
        {"{matchExpressions: [{key: env, operator: Exists}]}", "env=\"\"\n", true},
        {"{matchExpressions: [{key: env, operator: Exists}]}", "app=\"env\"\n", false},
        {"{matchExpressions: [{key: env, operator: DoesNotExist}]}", "", true},
        {"{matchExpressions: [{key: env, operator: DoesNotExist}]}", "env=\"x\"\n", false},
        {"{matchLabels: {app: a}, matchExpressions: [{key: env, operator: Exists}]}",
         "app=\"a\"\n", false},
        {"{matchLabels: {app: a}, matchExpressions: [{key: env, operator: Exists}, {key: tier, "
         "operator: NotIn, values: [db]}]}", "app=\"a\"\nenv=\"prod\"\ntier=\"web\"\n", true},
        {"{matchLabels: {app.kubernetes.io/name: shop}}", "app.kubernetes.io/name=\"shop\"\n", true},
    };
    (void)state;
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_policy_set *set = policy_with_selector(rows[i].selector);
        mm_labels l = {0};
        mm_errbuf eb = {{0}};
        assert_int_equal(mm_labels_parse(rows[i].labels, strlen(rows[i].labels), "l", &l, &eb), MM_OK);
        if (mm_selector_matches(&mm_policy_set_get(set, 0)->selector, &l) != rows[i].match)
            fail_msg("row %zu: %s against \"%s\": want %s", i, rows[i].selector, rows[i].labels,
                     rows[i].match ? "match" : "no match");
        mm_labels_clear(&l);
        mm_policy_set_free(set);
    }
    mm_selector empty = {0};
    mm_labels none = {0};
    assert_true(mm_selector_matches(&empty, &none));
    assert_true(mm_selector_matches(NULL, &none));
}

/* ---- allocation failures ------------------------------------------------------------------ */

typedef mm_err (*parse_fn)(const void *in);

static mm_err parse_yaml_file(const void *in)
{
    const char *text = in;
    mm_policy_set *set = NULL;
    mm_diags *d = NULL;
    mm_errbuf eb;
    mm_err rc = mm_diags_new(&d);
    if (rc == MM_OK)
        rc = mm_policy_parse_yaml(text, strlen(text), "p.yaml", &set, d, &eb);
    if (rc == MM_OK) {
        assert_int_equal(mm_policy_set_count(set), 1);
        mm_policy_lint(mm_policy_set_get(set, 0), "p.yaml", d);
    }
    mm_policy_set_free(set);
    mm_diags_free(d);
    return rc;
}

static mm_err parse_json_text(const void *in)
{
    const char *text = in;
    mm_policy_set *set = NULL;
    mm_diags *d = NULL;
    mm_errbuf eb;
    mm_err rc = mm_diags_new(&d);
    if (rc == MM_OK)
        rc = mm_policy_parse_json(text, strlen(text), "p.json", &set, d, &eb);
    mm_policy_set_free(set);
    mm_diags_free(d);
    return rc;
}

/* An invalid policy: collecting its errors allocates too. */
static mm_err parse_invalid_yaml(const void *in)
{
    const char *text = in;
    mm_policy_set *set = NULL;
    mm_diags *d = NULL;
    mm_errbuf eb;
    mm_err rc = mm_diags_new(&d);
    if (rc == MM_OK)
        rc = mm_policy_parse_yaml(text, strlen(text), "p.yaml", &set, d, &eb);
    assert_null(set);
    mm_diags_free(d);
    return rc == MM_EINVAL ? MM_OK : rc; /* EINVAL is the finished answer here */
}

static mm_err from_json_obj(const void *in)
{
    mm_policy *p = NULL;
    mm_errbuf eb;
    mm_err rc = mm_policy_from_json(in, "shop/p", &p, NULL, &eb);
    mm_policy_free(p);
    return rc;
}

static mm_err parse_labels(const void *in)
{
    const char *text = in;
    mm_labels l = {0};
    mm_errbuf eb;
    mm_err rc = mm_labels_parse(text, strlen(text), "labels", &l, &eb);
    mm_labels_clear(&l);
    return rc;
}

static mm_err parse_path(const void *in)
{
    mm_path p = {0};
    mm_errbuf eb;
    mm_err rc = mm_path_parse(in, &p, &eb);
    mm_path_clear(&p);
    return rc;
}

/* Fails allocation 0, 1, 2, ... until `fn` succeeds; each failure must be MM_ENOMEM. Returns
 * how many allocations the successful run made. */
static long fail_each(parse_fn fn, const void *in)
{
    for (long k = 0;; k++) {
        mm_alloc_fail_after(k);
        mm_err rc = fn(in);
        long made = mm_alloc_fail_after(-1);
        if (rc == MM_OK)
            return made;
        if (rc != MM_ENOMEM)
            fail_msg("allocation %ld failing gave %s, want out of memory", k, mm_strerror(rc));
        assert_true(k < 20000);
    }
}

static void test_alloc_failures(void **state)
{
    char *yaml = NULL, *json = NULL, *api = NULL;
    size_t len;
    mm_errbuf eb;
    (void)state;
    assert_int_equal(mm_read_file("tests/data/policies/payments.yaml", 1 << 20, &yaml, &len, &eb), MM_OK);
    assert_int_equal(mm_read_file("tests/data/policies/payments.json", 1 << 20, &json, &len, &eb), MM_OK);
    assert_int_equal(mm_read_file("tests/data/policies/api-maskingpolicy.json", 1 << 20, &api, &len, &eb), MM_OK);
    struct json_object *obj = json_tokener_parse(api);
    assert_non_null(obj);

    /* the runs that succeed allocate, so every step above was really exercised */
    assert_true(fail_each(parse_yaml_file, yaml) > 50);
    assert_true(fail_each(parse_json_text, json) > 50);
    assert_true(fail_each(from_json_obj, obj) > 20);
    assert_true(fail_each(parse_invalid_yaml,
                          "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\n"
                          "metadata: {name: P}\nspec: {selector: {matchExpressions: [{key: a, "
                          "operator: In}]}, mode: x, rules: [{name: r, fields: [\"$.\"], "
                          "patterns: [{name: p, regex: \"(\"}], action: {type: tokenize}}], "
                          "exemptions: [{principals: [a], rules: [q]}]}\n") > 10);
    assert_true(fail_each(parse_labels, "app=\"payments\"\nnote=\"caf\\u00e9 \\x41\"\nb=\"2\"\n") > 4);
    assert_true(fail_each(parse_path, "$.items[*]..['card no'][3].*") > 4);

    json_object_put(obj);
    mm_free(yaml);
    mm_free(json);
    mm_free(api);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_valid),    cmocka_unit_test(test_paths_invalid),
        cmocka_unit_test(test_paths_limits),   cmocka_unit_test(test_labels_valid),
        cmocka_unit_test(test_labels_invalid), cmocka_unit_test(test_selectors),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("policy grammar", tests, NULL, NULL);
}
