/* Unit tests for the stream maskers: every path form, remove, numbers, precedence, audit,
 * exemptions, every body kind, escapes kept byte for byte, malformed input (with offsets,
 * and nothing of the value in progress written). Every case is run whole, split at every
 * byte position, and fed one byte at a time: the output must not change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mask/mask.h"

#define HEAD "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: %s}\n" \
             "spec:\n  selector: {}\n"

static mm_masker *compile(const char *yaml, bool scan)
{
    mm_policy_set *set = NULL;
    mm_keys *keys = NULL;
    mm_masker *m = NULL;
    mm_errbuf eb = {{0}};
    const mm_policy *list[8];
    mm_masker_opts o = {.scan = scan};

    if (mm_policy_parse_yaml(yaml, strlen(yaml), "case", &set, NULL, &eb) != MM_OK)
        fail_msg("policy: %s", eb.msg);
    for (size_t i = 0; i < mm_policy_set_count(set); i++)
        list[i] = mm_policy_set_get(set, i);
    assert_int_equal(mm_keys_new(&keys), MM_OK);
    assert_int_equal(mm_keys_add(keys, "k", "secret", 6), MM_OK);
    if (mm_masker_new(list, mm_policy_set_count(set), keys, &o, &m, &eb) != MM_OK)
        fail_msg("masker: %s", eb.msg);
    mm_keys_free(keys);
    mm_policy_set_free(set);
    return m;
}

static mm_err to_buf(void *ctx, const char *d, size_t n)
{
    return mm_buf_append(ctx, d, n);
}

/* Masks `in` pushed in pieces of at most `step` bytes after a first piece of `first`. */
static mm_err run(mm_masker *m, const mm_stream_opts *o, const char *in, size_t first, size_t step,
                  mm_buf *out, mm_errbuf *eb)
{
    mm_stream *s = NULL;
    size_t n = strlen(in), i = 0;
    mm_err rc = mm_stream_new(m, o, to_buf, out, &s);
    assert_int_equal(rc, MM_OK);
    while (rc == MM_OK && i < n) {
        size_t k = i == 0 ? first : step;
        if (k > n - i)
            k = n - i;
        rc = mm_stream_push(s, in + i, k, eb);
        i += k;
    }
    if (rc == MM_OK)
        rc = mm_stream_finish(s, eb);
    mm_stream_free(s);
    return rc;
}

static void check_opts(mm_masker *m, const mm_stream_opts *o, const char *in, const char *want,
                       const char *name)
{
    size_t n = strlen(in);
    mm_errbuf eb = {{0}};
    mm_buf out;
    mm_buf_init(&out, 0);
    if (run(m, o, in, n ? n : 1, n ? n : 1, &out, &eb) != MM_OK)
        fail_msg("%s: whole: %s", name, eb.msg);
    if (strcmp(mm_buf_cstr(&out), want) != 0)
        fail_msg("%s: whole:\n got: %s\nwant: %s", name, mm_buf_cstr(&out), want);
    for (size_t split = 1; split < n; split++) {
        mm_buf_reset(&out);
        if (run(m, o, in, split, n, &out, &eb) != MM_OK)
            fail_msg("%s: split at %zu: %s", name, split, eb.msg);
        if (strcmp(mm_buf_cstr(&out), want) != 0)
            fail_msg("%s: split at %zu:\n got: %s\nwant: %s", name, split, mm_buf_cstr(&out), want);
    }
    mm_buf_reset(&out);
    if (run(m, o, in, 1, 1, &out, &eb) != MM_OK || strcmp(mm_buf_cstr(&out), want) != 0)
        fail_msg("%s: byte by byte:\n got: %s\nwant: %s", name, mm_buf_cstr(&out), want);
    mm_buf_free(&out);
}

static void check(const char *yaml, mm_body_kind kind, const char *in, const char *want,
                  const char *name)
{
    mm_masker *m = compile(yaml, false);
    mm_stream_opts o = {.kind = kind};
    check_opts(m, &o, in, want, name);
    mm_masker_free(m);
}

static char *pol(const char *name, const char *rules)
{
    static char buf[4][4096];
    static int k;
    char *b = buf[k++ % 4];
    int n = snprintf(b, 4096, HEAD, name);
    snprintf(b + n, 4096 - (size_t)n, "%s", rules);
    return b;
}

static void test_paths(void **state)
{
    (void)state;
#define PATH_RULE "  rules:\n  - {name: r, fields: [\"%s\"], action: {type: redact, replacement: X}}\n"
    char rules[512];
    static const struct {
        const char *path, *in, *want;
    } rows[] = {
        {"$.a", "{\"a\": \"s\", \"b\": \"s\"}", "{\"a\": \"X\", \"b\": \"s\"}"},
        {"$['a b']", "{\"a b\":1,\"a\":2}", "{\"a b\":\"X\",\"a\":2}"},
        {"$.a[*]", "{\"a\":[1,\"x\",true,null],\"b\":[1]}", "{\"a\":[\"X\",\"X\",\"X\",null],\"b\":[1]}"},
        {"$.a[1]", "{\"a\":[1, 2, 3]}", "{\"a\":[1, \"X\", 3]}"},
        {"$.*", "{\"a\":1,\"b\":{\"c\":2}}", "{\"a\":\"X\",\"b\":{\"c\":\"X\"}}"},
        {"$..pan", "{\"pan\":1,\"x\":{\"y\":[{\"pan\":\"p\"}]},\"span\":3}",
         "{\"pan\":\"X\",\"x\":{\"y\":[{\"pan\":\"X\"}]},\"span\":3}"},
        {"$..*", "[1,{\"a\":\"b\"}]", "[\"X\",{\"a\":\"X\"}]"},
        {"$.o", "{\"o\":{\"k\":[1,{\"z\":\"q\"}],\"n\":null}, \"p\":1}",
         "{\"o\":{\"k\":[\"X\",{\"z\":\"X\"}],\"n\":null}, \"p\":1}"},
        {"$", "[\"a\", 1]", "[\"X\", \"X\"]"},
        {"$.items[*].card", "{\"items\":[{\"card\":\"c1\"},{\"card\":\"c2\",\"x\":1}]}",
         "{\"items\":[{\"card\":\"X\"},{\"card\":\"X\",\"x\":1}]}"},
        {"$.ab", "{\"a\\u0062\":1, \"ab\":2}", "{\"a\\u0062\":\"X\", \"ab\":\"X\"}"}, /* names decoded */
    };
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        char name[64];
        snprintf(rules, sizeof(rules), PATH_RULE, rows[i].path);
        snprintf(name, sizeof(name), "path row %zu", i);
        check(pol("p", rules), MM_BODY_JSON, rows[i].in, rows[i].want, name);
    }
}

static void test_remove(void **state)
{
    (void)state;
    const char *p = pol("p", "  rules:\n  - {name: r, fields: [\"$.rm\", \"$.a[1]\", \"$.o.rm\"], "
                             "action: {type: remove}}\n");
    check(p, MM_BODY_JSON, "{\"rm\":1,\"b\":2}", "{\"b\":2}", "remove first");
    check(p, MM_BODY_JSON, "{\"b\":2,\"rm\":1}", "{\"b\":2}", "remove last");
    check(p, MM_BODY_JSON, "{ \"b\" : 2 , \"rm\" : {\"x\":[1]} , \"c\" : 3 }",
          "{ \"b\" : 2  , \"c\" : 3 }", "remove middle object");
    check(p, MM_BODY_JSON, "{\"rm\":1}", "{}", "remove only");
    check(p, MM_BODY_JSON, "{\"a\":[0,1,2],\"o\":{\"rm\":[1,2],\"k\":true}}",
          "{\"a\":[0,2],\"o\":{\"k\":true}}", "remove element and nested");
    check(p, MM_BODY_JSON, "{\"a\":[0,1]}", "{\"a\":[0]}", "remove last element");
    /* a detector match with remove drops the whole member */
    const char *d = pol("p", "  rules:\n  - {name: r, detectors: [email], action: {type: remove}}\n");
    check(d, MM_BODY_JSON, "{\"a\":\"x ada@example.com\",\"b\":[\"bo@example.org\",\"k\"]}",
          "{\"b\":[\"k\"]}", "detector remove");
}

static void test_values_and_precedence(void **state)
{
    (void)state;
    /* numbers: a masked number becomes a string; untouched numbers keep their spelling */
    const char *p = pol("p", "  rules:\n  - {name: card, detectors: [credit_card], action: {type: mask, "
                             "keepLast: 4}}\n");
    check(p, MM_BODY_JSON, "{\"n\":4111111111111111,\"f\":1.50e+3,\"t\":1700000000123}",
          "{\"n\":\"************1111\",\"f\":1.50e+3,\"t\":1700000000123}", "numbers");
    /* escapes outside the match stay as written; inside, the value is decoded first */
    check(p, MM_BODY_JSON, "[\"\\u00e9 4111\\u00201111 1111 1111 \\\"q\\\"\"]",
          "[\"\\u00e9 ***************1111 \\\"q\\\"\"]", "escapes");
    /* a path beats a detector; overlapping detectors: the lower rule wins */
    const char *q = pol("p", "  rules:\n"
                             "  - {name: a, fields: [\"$.x\"], action: {type: replace, value: P}}\n"
                             "  - {name: b, patterns: [{name: mail, regex: \"[a-z]+@\"}], action: {type: replace, value: B}}\n"
                             "  - {name: c, detectors: [email], action: {type: replace, value: C}}\n");
    check(q, MM_BODY_JSON, "{\"x\":\"ada@example.com\",\"y\":\"ada@example.com and bo@x.org\"}",
          "{\"x\":\"P\",\"y\":\"Bexample.com and Bx.org\"}", "precedence");
    /* policies apply in name order whatever the input order */
    const char *two = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: zed}\n"
                      "spec: {selector: {}, rules: [{name: z, detectors: [email], action: {type: replace, value: Z}}]}\n"
                      "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: alpha}\n"
                      "spec: {selector: {}, rules: [{name: a, detectors: [email], action: {type: replace, value: A}}]}\n";
    check(two, MM_BODY_JSON, "[\"ada@example.com\"]", "[\"A\"]", "policy name order");
    /* literals: null stays, booleans under a path are transformed */
    const char *l = pol("p", "  rules:\n  - {name: r, fields: [\"$.*\"], action: {type: redact}}\n");
    check(l, MM_BODY_JSON, "{\"a\":null,\"b\":false}", "{\"a\":null,\"b\":\"[REDACTED]\"}", "literals");
    /* keyed actions */
    const char *k = pol("p", "  rules:\n  - {name: r, fields: [\"$.e\"], action: {type: hash, key: k}}\n");
    check(k, MM_BODY_JSON, "{\"e\":\"abc\"}",
          "{\"e\":\"9946dad4e00e913fc8be8e5d3f7e110a4a9e832f83fb09c345285d78638d8a0e\"}", "hmac");
    /* an empty body passes; whitespace around the value stays */
    check(p, MM_BODY_JSON, "", "", "empty");
    check(p, MM_BODY_JSON, " \n[ ] \n", " \n[ ] \n", "whitespace");
}

static void test_audit_exempt_direction(void **state)
{
    (void)state;
    const char *a = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p}\n"
                    "spec:\n  selector: {}\n  mode: audit\n"
                    "  rules: [{name: r, detectors: [email], action: {type: redact}}]\n";
    check(a, MM_BODY_JSON, "[\"ada@example.com\"]", "[\"ada@example.com\"]", "audit");

    const char *e = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p}\n"
                    "spec:\n  selector: {}\n  direction: both\n"
                    "  rules:\n  - {name: card, fields: [$.c], action: {type: redact}}\n"
                    "  - {name: mail, fields: [$.m], action: {type: redact}}\n"
                    "  exemptions: [{principals: [\"spiffe://x/billing\"], rules: [card]}]\n";
    mm_masker *m = compile(e, false);
    mm_stream_opts o = {.kind = MM_BODY_JSON};
    check_opts(m, &o, "{\"c\":1,\"m\":2}", "{\"c\":\"[REDACTED]\",\"m\":\"[REDACTED]\"}", "no principal");
    o.principal = "spiffe://x/billing";
    check_opts(m, &o, "{\"c\":1,\"m\":2}", "{\"c\":1,\"m\":\"[REDACTED]\"}", "exempt principal");
    o.principal = "spiffe://x/other";
    check_opts(m, &o, "{\"c\":1,\"m\":2}", "{\"c\":\"[REDACTED]\",\"m\":\"[REDACTED]\"}", "other principal");
    assert_true(mm_masker_applies(m, MM_DIR_REQUEST));
    mm_masker_free(m);

    /* a response-only policy leaves requests alone */
    const char *r = pol("p", "  rules: [{name: r, fields: [$.c], action: {type: redact}}]\n");
    m = compile(r, false);
    o = (mm_stream_opts){.kind = MM_BODY_JSON, .direction = MM_DIR_REQUEST};
    check_opts(m, &o, "{\"c\":1}", "{\"c\":1}", "request untouched");
    assert_false(mm_masker_applies(m, MM_DIR_REQUEST));
    assert_int_equal(mm_masker_on_error(m, MM_DIR_RESPONSE), MM_ONERR_BLOCK);
    mm_masker_free(m);
}

static void test_body_kinds(void **state)
{
    (void)state;
    const char *p = pol("p", "  rules:\n  - {name: r, detectors: [email, credit_card], action: {type: redact, "
                             "replacement: X}}\n  - {name: f, fields: [$.k], action: {type: redact, replacement: K}}\n");
    check(p, MM_BODY_NDJSON, "{\"k\":1}\n\n{\"e\":\"a@b.co\"}\r\n[1]", "{\"k\":\"K\"}\n\n{\"e\":\"X\"}\r\n[1]", "ndjson");
    check(p, MM_BODY_TEXT, "mail a@b.co\ncard 4111 1111 1111 1111 k:1\nend",
          "mail X\ncard X k:1\nend", "text");
    check(p, MM_BODY_SSE, "event: m\ndata: {\"k\": \"v\", \"e\": \"a@b.co\"}\nid: 1\n\ndata: hi a@b.co\n\n",
          "event: m\ndata: {\"k\": \"K\", \"e\": \"X\"}\nid: 1\n\ndata: hi X\n\n", "sse");
    check(p, MM_BODY_OPAQUE, "a@b.co \x01\x02", "a@b.co \x01\x02", "opaque");

    mm_masker *m = compile(pol("p", "  rules: [{name: r, detectors: [email], contentTypes: [text/csv], "
                                    "action: {type: redact}}]\n"), false);
    assert_int_equal(mm_body_kind_for(m, "application/json; charset=utf-8"), MM_BODY_JSON);
    assert_int_equal(mm_body_kind_for(m, "Application/Problem+JSON"), MM_BODY_JSON);
    assert_int_equal(mm_body_kind_for(m, "application/x-ndjson"), MM_BODY_NDJSON);
    assert_int_equal(mm_body_kind_for(m, "text/event-stream"), MM_BODY_SSE);
    assert_int_equal(mm_body_kind_for(m, "text/html"), MM_BODY_TEXT);
    assert_int_equal(mm_body_kind_for(m, "application/octet-stream"), MM_BODY_OPAQUE);
    assert_int_equal(mm_body_kind_for(m, "application/vnd.ms-excel"), MM_BODY_OPAQUE);
    assert_int_equal(mm_body_kind_for(m, NULL), MM_BODY_OPAQUE);
    mm_masker_free(m);
    assert_int_equal(mm_body_kind_sniff("x.jsonl", "", 0), MM_BODY_NDJSON);
    assert_int_equal(mm_body_kind_sniff(NULL, "{\"a\":1}\n{\"a\":2}\n", 16), MM_BODY_NDJSON);
    assert_int_equal(mm_body_kind_sniff(NULL, "{\n \"a\": 1\n}\n", 12), MM_BODY_JSON);
    assert_int_equal(mm_body_kind_sniff(NULL, "GET /x 200\n", 11), MM_BODY_TEXT);
}

typedef struct {
    int n, applied;
    char paths[8][64];
} seen;

static void on_finding(void *ctx, const mm_finding *f)
{
    seen *s = ctx;
    if (s->n < 8)
        snprintf(s->paths[s->n], 64, "%s %s %s %llu", f->path ? f->path : "-",
                 f->detector ? f->detector : "-", f->rule ? f->rule : "-",
                 (unsigned long long)f->offset);
    s->n++;
    s->applied += f->applied;
}

static void test_findings_and_scan(void **state)
{
    (void)state;
    mm_masker *m = compile(pol("p", "  rules:\n  - {name: f, fields: [\"$.a['x y']\"], action: {type: redact}}\n"
                                    "  - {name: d, detectors: [email], action: {type: redact}}\n"), false);
    seen s = {0};
    mm_stream_opts o = {.kind = MM_BODY_JSON, .on_finding = on_finding, .finding_ctx = &s};
    mm_buf out;
    mm_errbuf eb;
    mm_buf_init(&out, 0);
    assert_int_equal(mm_mask_buffer(m, &o, "{\"a\":{\"x y\":1},\"l\":[0,\"z a@b.co\"]}", 34, &out, &eb), MM_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.paths[0], "$.a['x y'] - f 12");
    assert_string_equal(s.paths[1], "$.l[1] email d 25");
    assert_int_equal(s.applied, 2);
    mm_masker_free(m);

    /* scan: every detector, attributed when a rule names it, nothing changed */
    m = compile(pol("p", "  rules:\n  - {name: d, detectors: [email], action: {type: tokenize, key: nokey}}\n"), true);
    memset(&s, 0, sizeof(s));
    mm_buf_reset(&out);
    const char *in = "{\"e\":\"a@b.co\",\"s\":\"123-45-6789\"}";
    assert_int_equal(mm_mask_buffer(m, &o, in, strlen(in), &out, &eb), MM_OK);
    assert_string_equal(mm_buf_cstr(&out), in);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.paths[0], "$.e email d 6");
    assert_string_equal(s.paths[1], "$.s us_ssn - 19");
    assert_int_equal(s.applied, 0);
    mm_buf_free(&out);
    mm_masker_free(m);
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *in, *err;
        mm_err rc;
    } rows[] = {
        {"{\"a\":\"4111111111111111", "offset 22: unexpected end of input", MM_EPARSE},
        {"{\"a\" 1}", "offset 5: expected ':'", MM_EPARSE},
        {"{\"a\":1,}", "offset 7: expected a member name", MM_EPARSE},
        {"[1,]", "offset 3: expected a value", MM_EPARSE},
        {"[01]", "offset 2: a number cannot have a leading zero", MM_EPARSE},
        {"[1.]", "offset 3: expected a digit after '.'", MM_EPARSE},
        {"[\"a\\x\"]", "offset 4: invalid escape", MM_EPARSE},
        {"[\"a\\u12g4\"]", "offset 7: expected four hex digits", MM_EPARSE},
        {"[\"a\nb\"]", "offset 3: control character", MM_EPARSE},
        {"[tru]", "offset 4: invalid literal", MM_EPARSE},
        {"{} {}", "offset 3: unexpected data after the JSON value", MM_EPARSE},
        {"[1] x", "offset 4", MM_EPARSE},
        {"{\"a\":[1}", "offset 7: expected ',' or ']'", MM_EPARSE},
    };
    mm_masker *m = compile(pol("p", "  rules: [{name: r, detectors: [credit_card], action: {type: redact}}]\n"), false);
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        mm_stream_opts o = {.kind = MM_BODY_JSON};
        mm_buf out;
        mm_errbuf eb = {{0}};
        mm_buf_init(&out, 0);
        mm_err rc = run(m, &o, rows[i].in, strlen(rows[i].in), 1, &out, &eb);
        if (rc != rows[i].rc || !strstr(eb.msg, rows[i].err))
            fail_msg("malformed row %zu: rc %d, message \"%s\", want \"%s\"", i, rc, eb.msg, rows[i].err);
        if (strstr(mm_buf_cstr(&out), "4111"))
            fail_msg("malformed row %zu: the value in progress was written", i);
        mm_buf_free(&out);
    }
    /* NDJSON errors name the line; values and depth are bounded */
    mm_stream_opts o = {.kind = MM_BODY_NDJSON, .max_value = 64};
    mm_buf out;
    mm_errbuf eb = {{0}};
    mm_buf_init(&out, 0);
    assert_int_equal(run(m, &o, "{}\n{}\n{\"a\" 1}\n", 100, 100, &out, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "line 3:"));
    mm_buf_reset(&out);
    char big[200];
    memset(big, 'a', sizeof(big));
    memcpy(big, "[\"", 2);
    memcpy(big + sizeof(big) - 3, "\"]", 3);
    assert_int_equal(run(m, &o, big, 10, 10, &out, &eb), MM_ELIMIT);
    assert_non_null(strstr(eb.msg, "offset 1: value longer than the limit"));
    mm_buf_reset(&out);
    char deep[MM_MASK_MAX_DEPTH + 10];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    o = (mm_stream_opts){.kind = MM_BODY_JSON};
    assert_int_equal(run(m, &o, deep, sizeof(deep), 1, &out, &eb), MM_ELIMIT);
    assert_non_null(strstr(eb.msg, "nesting deeper than the limit"));
    /* a text line over the bound is an error, never a silent pass */
    o = (mm_stream_opts){.kind = MM_BODY_TEXT, .max_value = 64};
    mm_buf_reset(&out);
    assert_int_equal(run(m, &o, big, 50, 50, &out, &eb), MM_ELIMIT);
    mm_buf_free(&out);
    mm_masker_free(m);
}

static void test_alloc_failures(void **state)
{
    const char *yaml = pol("p", "  rules:\n  - {name: r, fields: [\"$..a\", \"$.b[*]\"], detectors: [email], "
                                "patterns: [{name: x, regex: \"z+\"}], action: {type: remove}}\n"
                                "  headers: [{name: X-A, action: {type: redact}}]\n");
    const char *in = "{\"a\":1,\"b\":[\"q@x.io\",2],\"c\":\"zz\",\"d\":{\"a\":[1]}}";
    mm_policy_set *set = NULL;
    mm_errbuf eb;
    (void)state;
    assert_int_equal(mm_policy_parse_yaml(yaml, strlen(yaml), "p", &set, NULL, &eb), MM_OK);
    const mm_policy *p = mm_policy_set_get(set, 0);
    for (long n = 0;; n++) {
        mm_masker *m = NULL;
        mm_buf out;
        mm_buf_init(&out, 0);
        mm_alloc_fail_after(n);
        mm_err rc = mm_masker_new(&p, 1, NULL, NULL, &m, &eb);
        if (rc == MM_OK) {
            mm_stream_opts o = {.kind = MM_BODY_JSON};
            rc = mm_mask_buffer(m, &o, in, strlen(in), &out, &eb);
        }
        mm_alloc_fail_after(-1);
        mm_masker_free(m);
        if (rc == MM_OK) {
            /* $.b[*] removes the elements, not b */
            assert_string_equal(mm_buf_cstr(&out), "{\"b\":[],\"d\":{}}");
            mm_buf_free(&out);
            break;
        }
        mm_buf_free(&out);
        assert_int_equal(rc, MM_ENOMEM);
        assert_true(n < 1000);
    }
    mm_policy_set_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),          cmocka_unit_test(test_remove),
        cmocka_unit_test(test_values_and_precedence), cmocka_unit_test(test_audit_exempt_direction),
        cmocka_unit_test(test_body_kinds),     cmocka_unit_test(test_findings_and_scan),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("mask-stream", tests, NULL, NULL);
}
