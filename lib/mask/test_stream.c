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

/* Masks `in` pushed in pieces of at most `step` bytes after a first piece of `first`. */
static mm_err run(mm_masker *m, const mm_stream_opts *o, const char *in, size_t first, size_t step,
                  mm_buf *out, mm_errbuf *eb)
{
    mm_stream *s = NULL;
    size_t n = strlen(in), i = 0;
    mm_err rc = mm_stream_new(m, o, mm_stream_buf_write, out, &s);
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

/* Findings of one run, summed into a fingerprint that splitting must not change. */
typedef struct {
    int n, applied;
    uint64_t sum, sum_np; /* sum_np: without the path */
} tally;

static void count_finding(void *ctx, const mm_finding *f)
{
    tally *t = ctx;
    t->n++;
    t->applied += f->applied;
    uint64_t np = f->offset * 31 + f->line * 7 + (f->rule ? strlen(f->rule) : 0) +
                  (f->detector ? strlen(f->detector) * 5 : 0);
    t->sum_np += np;
    t->sum += np + (f->path ? strlen(f->path) * 3 : 0);
}

/* Where two outputs first differ: failure messages name the place, never the bytes (they
 * could be a value that should have been masked). */
static size_t diff_at(const char *a, const char *b)
{
    size_t i = 0;
    while (a[i] && a[i] == b[i])
        i++;
    return i;
}

/* Masked output compared without printing it: a failure names the first differing byte. */
#define assert_output(got, want)                                                                   \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (strcmp(g_, w_) != 0)                                                                   \
            fail_msg("output differs from expected at byte %zu", diff_at(g_, w_));                 \
    } while (0)

static void check_opts(mm_masker *m, const mm_stream_opts *opts, const char *in, const char *want,
                       const char *name)
{
    size_t n = strlen(in);
    mm_errbuf eb = {{0}};
    mm_buf out;
    tally whole = {0}, t;
    mm_stream_opts o = *opts;
    bool own = !o.on_finding; /* count findings ourselves, and compare them across splits */
    if (own) {
        o.on_finding = count_finding;
        o.finding_ctx = &whole;
    }
    mm_buf_init(&out, 0);
    if (run(m, &o, in, n ? n : 1, n ? n : 1, &out, &eb) != MM_OK)
        fail_msg("%s: whole: %s", name, eb.msg);
    if (strcmp(mm_buf_cstr(&out), want) != 0)
        fail_msg("%s: whole: output differs from expected at byte %zu (%zu vs %zu bytes)", name,
                 diff_at(mm_buf_cstr(&out), want), out.len, strlen(want));
    if (own) { /* without paths (as the sidecar counts): the same bytes and findings */
        mm_stream_opts np = o;
        np.no_finding_paths = true;
        np.finding_ctx = &t;
        memset(&t, 0, sizeof(t));
        mm_buf_reset(&out);
        if (run(m, &np, in, n ? n : 1, n ? n : 1, &out, &eb) != MM_OK)
            fail_msg("%s: no paths: %s", name, eb.msg);
        if (strcmp(mm_buf_cstr(&out), want) != 0)
            fail_msg("%s: no paths: output differs at byte %zu", name, diff_at(mm_buf_cstr(&out), want));
        if (t.n != whole.n || t.applied != whole.applied || t.sum_np != whole.sum_np)
            fail_msg("%s: no paths: findings differ (%d vs %d)", name, t.n, whole.n);
        o.finding_ctx = &t;
    }
    for (size_t split = 0; split <= n; split++) {
        size_t first = split ? split : 1, step = split ? n : 1; /* 0: byte by byte */
        mm_buf_reset(&out);
        memset(&t, 0, sizeof(t));
        if (run(m, &o, in, first, step, &out, &eb) != MM_OK)
            fail_msg("%s: split at %zu: %s", name, split, eb.msg);
        if (strcmp(mm_buf_cstr(&out), want) != 0)
            fail_msg("%s: split at %zu: output differs at byte %zu", name, split,
                     diff_at(mm_buf_cstr(&out), want));
        if (own && (t.n != whole.n || t.applied != whole.applied || t.sum != whole.sum))
            fail_msg("%s: split at %zu: findings differ (%d vs %d)", name, split, t.n, whole.n);
    }
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
        {"$[0]", "[[1,2],3]", "[[\"X\",\"X\"],3]"},
        {"$[*]", "[1,{\"a\":null}]", "[\"X\",{\"a\":null}]"},
        {"$.*", "[1,2]", "[\"X\",\"X\"]"},
        {"$..['a b']", "{\"x\":[{\"a b\":\"q\"}],\"a b\":{\"c\":1}}", "{\"x\":[{\"a b\":\"X\"}],\"a b\":{\"c\":\"X\"}}"},
        {"$.a..b", "{\"b\":1,\"a\":{\"b\":2,\"c\":[{\"b\":3}]}}", "{\"b\":1,\"a\":{\"b\":\"X\",\"c\":[{\"b\":\"X\"}]}}"},
        {"$..a.b", "{\"a\":{\"b\":1},\"x\":{\"a\":{\"b\":2,\"c\":3}}}", "{\"a\":{\"b\":\"X\"},\"x\":{\"a\":{\"b\":\"X\",\"c\":3}}}"},
        {"$.a[2]", "{\"a\":[0,1]}", "{\"a\":[0,1]}"}, /* out of range: nothing */
        {"$.a.b", "{\"a\":[{\"b\":1}],\"b\":2}", "{\"a\":[{\"b\":1}],\"b\":2}"}, /* a name does not match elements */
        {"$.a[0]", "{\"a\":{\"0\":1}}", "{\"a\":{\"0\":1}}"}, /* an index does not match members */
        {"$['it\\\\'s']", "{\"it's\":1}", "{\"it's\":\"X\"}"},
        {"$.a", " {\n  \"a\" :\t\"v\" ,\r\n  \"b\" : [ 1 , 2 ]\n} ", " {\n  \"a\" :\t\"X\" ,\r\n  \"b\" : [ 1 , 2 ]\n} "},
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
    check(d, MM_BODY_JSON, "[\"a@b.co\",\"c@d.co\"]", "[]", "detector remove all elements");
    check(d, MM_BODY_JSON, "\"a@b.co\"", "null", "detector remove root scalar");
    check(p, MM_BODY_JSON, "{\"a\":[0,1,2],\"rm\":null}", "{\"a\":[0,2]}", "remove null too");
    check(p, MM_BODY_JSON, "{\"a\":[ 0 , 1 ]}", "{\"a\":[ 0  ]}", "remove last element, spaces");
    check(p, MM_BODY_JSON, "{\"a\":[[1],[2],[3]]}", "{\"a\":[[1],[3]]}", "remove an array element");
    check(p, MM_BODY_JSON, "{\"o\":{\"rm\":\"x\"},\"rm\":[{\"a\":[1,2]}],\"z\":{}}", "{\"o\":{},\"z\":{}}",
          "remove nested and last");
    /* removing the first element of $.a: the comma before the second goes */
    const char *f = pol("p", "  rules:\n  - {name: r, fields: [\"$.a[0]\", \"$.b[*].x\"], action: {type: remove}}\n");
    check(f, MM_BODY_JSON, "{\"a\":[0,1,2]}", "{\"a\":[1,2]}", "remove first element");
    check(f, MM_BODY_JSON, "{\"a\":[\"0\",{\"k\":[1]}]}", "{\"a\":[{\"k\":[1]}]}", "remove first, object after");
    check(f, MM_BODY_JSON, "{\"b\":[{\"x\":1,\"y\":2},{\"y\":3,\"x\":4},{\"x\":5}]}",
          "{\"b\":[{\"y\":2},{\"y\":3},{}]}", "remove in every element");
    /* the root itself */
    const char *r = pol("p", "  rules:\n  - {name: r, fields: [\"$\"], action: {type: remove}}\n");
    check(r, MM_BODY_JSON, " {\"a\":[1,{\"b\":2}]} ", " null ", "remove root container");
    check(r, MM_BODY_NDJSON, "{\"a\":1}\n[2]\n3", "null\nnull\nnull", "remove every ndjson line");
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
    /* a redaction constant over the whole value (written as is), with escapes, over part of
     * it, over a number, and two matches in one value */
    const char *wc = pol("p", "  rules:\n  - {name: card, detectors: [credit_card, email], action: "
                             "{type: redact}}\n");
    check(wc, MM_BODY_JSON, "[\"4111111111111111\",\"\\u0034111111111111111\",\"4111111111111111\\t\","
                           "\" 4111111111111111\",4111111111111111,\"a@b.cd 4111111111111111\"]",
          "[\"[REDACTED]\",\"[REDACTED]\",\"[REDACTED]\\t\",\" [REDACTED]\",\"[REDACTED]\","
          "\"[REDACTED] [REDACTED]\"]", "whole-value constant");
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
    uint64_t lines[8];
} seen;

static void on_finding(void *ctx, const mm_finding *f)
{
    seen *s = ctx;
    if (s->n < 8) {
        snprintf(s->paths[s->n], 64, "%s %s %s %llu", f->path ? f->path : "-",
                 f->detector ? f->detector : "-", f->rule ? f->rule : "-",
                 (unsigned long long)f->offset);
        s->lines[s->n] = f->line;
    }
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
    assert_output(mm_buf_cstr(&out), in);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.paths[0], "$.e email d 6");
    assert_string_equal(s.paths[1], "$.s us_ssn - 19");
    assert_int_equal(s.applied, 0);
    mm_buf_free(&out);
    mm_masker_free(m);
}

/* Values written over inside objects skimmed member by member (jskim judges the names):
 * each finding names the value's path, offset and line, with newlines inside the skimmed
 * members before it, exactly as json.c's byte machine gives them (hack/run-tests.sh runs
 * this under MM_SIMD=off too), with paths and without. */
static void test_findings_by_name(void **state)
{
    (void)state;
    mm_masker *m = compile(pol("p", "  rules:\n  - {name: f, fields: [\"$.items[*].card\", "
                                    "\"$.o.a\"], action: {type: redact, replacement: X}}\n"), false);
    const char *in = "{\"items\":[{\"x\":[1,\n2],\"card\":\"c1\"},\n{\"y\":{\"z\":\n\"w\"},\n"
                     "\"card\":\n\"c2\"}],\n\"o\":{\"b\":\"s\\n\",\r\n\"a\":7}}";
    const char *want = "{\"items\":[{\"x\":[1,\n2],\"card\":\"X\"},\n{\"y\":{\"z\":\n\"w\"},\n"
                       "\"card\":\n\"X\"}],\n\"o\":{\"b\":\"s\\n\",\r\n\"a\":\"X\"}}";
    char expect[3][64];
    snprintf(expect[0], 64, "$.items[0].card - f %zu", (size_t)(strstr(in, "\"c1\"") - in));
    snprintf(expect[1], 64, "$.items[1].card - f %zu", (size_t)(strstr(in, "\"c2\"") - in));
    snprintf(expect[2], 64, "$.o.a - f %zu", (size_t)(strstr(in, ":7") + 1 - in));
    static const uint64_t lines[3] = {2, 6, 8};
    for (int paths = 1; paths >= 0; paths--) {
        seen s = {0};
        mm_stream_opts o = {.kind = MM_BODY_JSON, .on_finding = on_finding, .finding_ctx = &s,
                            .no_finding_paths = !paths};
        mm_buf out;
        mm_errbuf eb;
        mm_buf_init(&out, 0);
        assert_int_equal(mm_mask_buffer(m, &o, in, strlen(in), &out, &eb), MM_OK);
        assert_output(mm_buf_cstr(&out), want);
        assert_int_equal(s.n, 3);
        assert_int_equal(s.applied, 3);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(s.lines[i], lines[i]);
            /* without paths: "-" in place of the path, the rest the same */
            assert_string_equal(paths ? s.paths[i] : strchr(s.paths[i], ' ') + 1,
                                paths ? expect[i] : strchr(expect[i], ' ') + 1);
            if (!paths)
                assert_true(s.paths[i][0] == '-');
        }
        mm_buf_free(&out);
        /* and pushed in pieces: the same bytes, counts and sums of offsets and lines */
        check_opts(m, &(mm_stream_opts){.kind = MM_BODY_JSON}, in, want, "by name, lines");
    }
    mm_masker_free(m);
}

static void test_audit_never_shields(void **state)
{
    (void)state;
    /* "a-audit" sorts first; its rules report, and the enforcing policy still masks */
    const char *y = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: b-enforce}\n"
                    "spec: {selector: {}, rules: [{name: e, fields: [$.x], detectors: [email], action: {type: redact, replacement: E}}]}\n"
                    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: a-audit}\n"
                    "spec: {selector: {}, mode: audit, rules: [{name: a, fields: [$.x, $.y], detectors: [email], action: {type: redact}}]}\n";
    mm_masker *m = compile(y, false);
    assert_int_equal(mm_masker_rule_count(m), 2);
    assert_string_equal(mm_masker_rule_policy(m, 0), "a-audit");
    assert_string_equal(mm_masker_rule_name(m, 1), "e");
    assert_null(mm_masker_rule_name(m, 2));
    mm_stream_opts o = {.kind = MM_BODY_JSON};
    const char *in = "{\"x\":\"p\",\"y\":\"q\",\"z\":\"ada@example.com\"}";
    check_opts(m, &o, in, "{\"x\":\"E\",\"y\":\"q\",\"z\":\"E\"}", "audit does not shield");
    seen sn = {0};
    o.on_finding = on_finding;
    o.finding_ctx = &sn;
    mm_buf out;
    mm_errbuf eb;
    mm_buf_init(&out, 0);
    assert_int_equal(mm_mask_buffer(m, &o, in, strlen(in), &out, &eb), MM_OK);
    /* x: audit (a) + applied (e); y: audit only; z: audit + applied */
    assert_int_equal(sn.n, 5);
    assert_int_equal(sn.applied, 3 - 1); /* x and z applied */
    assert_string_equal(sn.paths[0], "$.x - a 5");
    assert_string_equal(sn.paths[1], "$.x - e 5");
    assert_string_equal(sn.paths[2], "$.y - a 13");
    assert_string_equal(sn.paths[3], "$.z email a 22");
    assert_string_equal(sn.paths[4], "$.z email e 22");
    mm_buf_free(&out);
    mm_masker_free(m);
}

static void test_strings_and_utf8(void **state)
{
    (void)state;
    const char *p = pol("p", "  rules:\n  - {name: m, detectors: [email], action: {type: replace, value: \"<\\\"m\\\">\"}}\n"
                             "  - {name: f, fields: [$.f], action: {type: mask, keepLast: 1}}\n");
    /* escapes outside matches stay as written, in values and names; output is escaped */
    check(p, MM_BODY_JSON, "{\"k\\u00e9\\n\":\"\\u0041\\/ a@b.co \\ud83d\\ude00 \\\\ c@d.io\\t\"}",
          "{\"k\\u00e9\\n\":\"\\u0041\\/ <\\\"m\\\"> \\ud83d\\ude00 \\\\ <\\\"m\\\">\\t\"}", "escapes kept");
    /* a match written with escapes is decoded for the detector and replaced whole */
    check(p, MM_BODY_JSON, "[\"x a\\u0040b.co y\"]", "[\"x <\\\"m\\\"> y\"]", "escaped match");
    /* not valid UTF-8: passes unchanged unless masked */
    check(p, MM_BODY_JSON, "[\"\xff\xfe a\", {\"\xc3\":\"\xe2\x82\"}]", "[\"\xff\xfe a\", {\"\xc3\":\"\xe2\x82\"}]",
          "invalid utf-8 passes");
    check(p, MM_BODY_JSON, "{\"f\":\"ab\xc3\xa9\"}", "{\"f\":\"**\xc3\xa9\"}", "utf-8 masked by characters");
    /* a lone surrogate is kept as written */
    check(p, MM_BODY_JSON, "[\"\\ud800 a@b.co\"]", "[\"\\ud800 <\\\"m\\\">\"]", "lone surrogate");
    /* numbers: every spelling kept; a masked one becomes a string */
    check(p, MM_BODY_JSON, "{\"n\":[-0,1E+2,0.5e-3,-12.50],\"f\":1234.5}",
          "{\"n\":[-0,1E+2,0.5e-3,-12.50],\"f\":\"*****5\"}", "numbers");
    check(p, MM_BODY_JSON, "-1.5e3", "-1.5e3", "root number");
    check(p, MM_BODY_JSON, "true", "true", "root literal");
}

static void test_headers(void **state)
{
    (void)state;
    const char *y = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p}\n"
                    "spec:\n  selector: {}\n  direction: response\n  rules: [{name: r, fields: [$.r], action: {type: redact}}]\n"
                    "  headers: [{name: Authorization, action: {type: mask, keepFirst: 7}}, {name: Set-Cookie, action: {type: remove}}]\n"
                    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: q}\n"
                    "spec:\n  selector: {}\n  mode: audit\n  direction: request\n  rules: [{name: r, fields: [$.r], action: {type: redact}}]\n"
                    "  headers: [{name: X-Card, action: {type: redact}}]\n";
    mm_masker *m = compile(y, false);
    mm_buf out;
    mm_hdr_result res;
    seen sn = {0};
    mm_buf_init(&out, 0);
    assert_int_equal(mm_masker_header(m, MM_DIR_RESPONSE, NULL, "authorization", "Bearer abcdef", 13, &out,
                                      &res, on_finding, &sn), MM_OK);
    assert_int_equal(res, MM_HDR_REWRITE);
    assert_output(mm_buf_cstr(&out), "Bearer ******");
    assert_int_equal(mm_masker_header(m, MM_DIR_RESPONSE, NULL, "SET-COOKIE", "a=b", 3, &out, &res, NULL, NULL),
                     MM_OK);
    assert_int_equal(res, MM_HDR_REMOVE);
    assert_int_equal(mm_masker_header(m, MM_DIR_RESPONSE, NULL, "Content-Type", "x", 1, &out, &res, NULL, NULL),
                     MM_OK);
    assert_int_equal(res, MM_HDR_KEEP);
    /* a response rule leaves requests alone; the audit rule reports and keeps */
    assert_int_equal(mm_masker_header(m, MM_DIR_REQUEST, NULL, "Authorization", "x", 1, &out, &res, NULL, NULL),
                     MM_OK);
    assert_int_equal(res, MM_HDR_KEEP);
    assert_int_equal(mm_masker_header(m, MM_DIR_REQUEST, NULL, "x-card", "4111", 4, &out, &res, on_finding, &sn),
                     MM_OK);
    assert_int_equal(res, MM_HDR_KEEP);
    assert_int_equal(sn.n, 2);
    assert_int_equal(sn.applied, 1);
    assert_true(mm_masker_applies(m, MM_DIR_REQUEST));
    assert_true(mm_masker_applies(m, MM_DIR_RESPONSE));
    mm_buf_free(&out);
    mm_masker_free(m);

    /* onError: the strictest of the policies that apply in the direction */
    const char *e = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: a}\n"
                    "spec: {selector: {}, onError: passthrough, direction: both, rules: [{name: r, fields: [$.a], action: {type: redact}}]}\n"
                    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: b}\n"
                    "spec: {selector: {}, onError: redact-all, direction: request, rules: [{name: r, fields: [$.a], action: {type: redact}}]}\n";
    m = compile(e, false);
    assert_int_equal(mm_masker_on_error(m, MM_DIR_RESPONSE), MM_ONERR_PASSTHROUGH);
    assert_int_equal(mm_masker_on_error(m, MM_DIR_REQUEST), MM_ONERR_REDACT_ALL);
    mm_masker_free(mm_masker_ref(m)); /* a reference dropped leaves the masker alive */
    assert_int_equal(mm_masker_rule_count(m), 2);
    mm_masker_free(m);
}

static void test_lines(void **state)
{
    (void)state;
    const char *p = pol("p", "  rules:\n  - {name: r, detectors: [email], action: {type: redact, replacement: X}}\n"
                             "  - {name: f, fields: [$.k], action: {type: remove}}\n"
                             "  - {name: c, patterns: [{name: c, regex: \"zz+\"}], action: {type: remove}}\n");
    /* NDJSON: CRLF, blank lines and a last line without a newline are kept */
    check(p, MM_BODY_NDJSON, "\r\n{\"k\":1,\"e\":\"a@b.co\"}\r\n\n  \n[\"x\"]  \n\"a@b.co\"", 
          "\r\n{\"e\":\"X\"}\r\n\n  \n[\"x\"]  \n\"X\"", "ndjson layout");
    /* application/json-seq: a record separator before each value */
    check(p, MM_BODY_NDJSON, "\x1e{\"k\":1}\n\x1e[\"a@b.co\"]\n", "\x1e{}\n\x1e[\"X\"]\n", "json-seq");
    /* text: matches transformed in place; remove drops the match only */
    check(p, MM_BODY_TEXT, "a@b.co zzz\r\n\nend zz", "X \r\n\nend ", "text");
    check(p, MM_BODY_TEXT, "", "", "empty text");
    /* SSE: JSON data lines as JSON, other data lines as text, other fields untouched */
    check(p, MM_BODY_SSE,
          ": comment a@b.co\nevent: a@b.co\ndata: {\"k\": 1, \"e\": \"a@b.co\"}\ndata:[\"a@b.co\"]\n"
          "data: {not json a@b.co\nid: 7\nretry: 10\n\r\ndata\n",
          ": comment a@b.co\nevent: a@b.co\ndata: { \"e\": \"X\"}\ndata:[\"X\"]\n"
          "data: {not json X\nid: 7\nretry: 10\n\r\ndata\n", "sse");
    /* text that nothing reads passes whatever its lines */
    mm_masker *pm = compile(pol("p", "  rules: [{name: f, fields: [$.k], action: {type: redact}}]\n"), false);
    mm_stream_opts lo = {.kind = MM_BODY_TEXT, .max_value = 4};
    check_opts(pm, &lo, "a long line a@b.co\nx", "a long line a@b.co\nx", "text without detectors");
    mm_masker_free(pm);
    /* SSE findings: offsets in the whole body, no path */
    mm_masker *m = compile(p, false);
    seen sn = {0};
    mm_stream_opts o = {.kind = MM_BODY_SSE, .on_finding = on_finding, .finding_ctx = &sn};
    mm_buf out;
    mm_errbuf eb;
    mm_buf_init(&out, 0);
    const char *in = "id: 1\ndata: {\"e\":\"a@b.co\"}\ndata: x a@b.co {\n";
    assert_int_equal(mm_mask_buffer(m, &o, in, strlen(in), &out, &eb), MM_OK);
    assert_int_equal(sn.n, 2);
    assert_string_equal(sn.paths[0], "- email r 18");
    assert_string_equal(sn.paths[1], "- email r 35");
    mm_buf_free(&out);
    mm_masker_free(m);
}

/* An input that must fail with `rc` and a message containing `err`, whole, split at every
 * byte and byte by byte; the message must not depend on the split and nothing of `secret`
 * (the value in progress) may have been written. */
static void check_err(mm_masker *m, const mm_stream_opts *o, const char *in, mm_err want_rc,
                      const char *err, const char *secret, const char *name)
{
    size_t n = strlen(in);
    char first_msg[MM_ERRBUF_SIZE] = "";
    for (size_t split = 0; split <= n; split++) {
        mm_buf out;
        mm_errbuf eb = {{0}};
        mm_buf_init(&out, 0);
        mm_err rc = run(m, o, in, split ? split : 1, split ? n : 1, &out, &eb);
        if (rc != want_rc || !strstr(eb.msg, err))
            fail_msg("%s: split %zu: rc %d, message \"%s\", want \"%s\"", name, split, rc, eb.msg, err);
        if (split == 0)
            snprintf(first_msg, sizeof(first_msg), "%s", eb.msg);
        else if (strcmp(first_msg, eb.msg) != 0)
            fail_msg("%s: split %zu: message \"%s\" differs from \"%s\"", name, split, eb.msg, first_msg);
        if (secret && strstr(mm_buf_cstr(&out), secret))
            fail_msg("%s: split %zu: the value in progress was written", name, split);
        mm_buf_free(&out);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *in, *err;
        mm_err rc;
    } rows[] = {
        {"{\"a\":\"4111111111111111", "offset 22: unexpected end of input", MM_EPARSE},
        {"{\"a\":\"4111111111111111\"", "offset 23: unexpected end of input", MM_EPARSE},
        {"[4111111111111111", "offset 17: unexpected end of input", MM_EPARSE},
        {"{\"a\" 1}", "offset 5: expected ':'", MM_EPARSE},
        {"{\"a\":1,}", "offset 7: expected a member name", MM_EPARSE},
        {"{1:2}", "offset 1: expected a member name", MM_EPARSE},
        {"[1,]", "offset 3: expected a value", MM_EPARSE},
        {"[01]", "offset 2: a number cannot have a leading zero", MM_EPARSE},
        {"[1.]", "offset 3: expected a digit after '.'", MM_EPARSE},
        {"[-]", "offset 2: expected a digit after '-'", MM_EPARSE},
        {"[1e+]", "offset 4: expected a digit in the exponent", MM_EPARSE},
        {"[\"4111111111111111\\x\"]", "offset 19: invalid escape", MM_EPARSE},
        {"[\"4111111111111111\\u12g4\"]", "offset 22: expected four hex digits", MM_EPARSE},
        {"[\"4111111111111111\nb\"]", "offset 18: control character", MM_EPARSE},
        {"[tru]", "offset 4: invalid literal", MM_EPARSE},
        {"[nul", "offset 4: unexpected end of input", MM_EPARSE},
        {"{} {}", "offset 3: unexpected data after the JSON value", MM_EPARSE},
        {"[1] x", "offset 4: unexpected data after the JSON value", MM_EPARSE},
        {"{\"a\":[1}", "offset 7: expected ',' or ']'", MM_EPARSE},
        {"{\"a\":1]", "offset 6: expected ',' or '}'", MM_EPARSE},
        {"]", "offset 0: expected a value", MM_EPARSE},
        {"[\"a\"", "offset 4: unexpected end of input", MM_EPARSE},
    };
    mm_masker *m = compile(pol("p", "  rules: [{name: r, detectors: [credit_card], action: {type: redact}},\n"
                                    "          {name: f, fields: [$.a], action: {type: redact}}]\n"), false);
    mm_stream_opts o = {.kind = MM_BODY_JSON};
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        char name[32];
        snprintf(name, sizeof(name), "malformed row %zu", i);
        check_err(m, &o, rows[i].in, rows[i].rc, rows[i].err, "4111", name);
    }
    /* NDJSON errors name the line */
    o = (mm_stream_opts){.kind = MM_BODY_NDJSON};
    check_err(m, &o, "{}\n{}\n{\"a\" 1}\n", MM_EPARSE, "line 3: offset 11: expected ':'", NULL, "ndjson line");
    check_err(m, &o, "{}\n{} {}\n", MM_EPARSE, "line 2: offset 6: expected a newline between values",
              NULL, "ndjson two values");
    check_err(m, &o, "{}\n{\"a\":\"4111111111111111", MM_EPARSE, "line 2: offset 25: unexpected end",
              "4111", "ndjson truncated");
    /* a value over max_value: the offset is the value's; nothing of it written */
    o = (mm_stream_opts){.kind = MM_BODY_JSON, .max_value = 16};
    check_err(m, &o, "{\"b\":1,\"a\":\"4111111111111111xx\"}", MM_ELIMIT,
              "offset 11: value longer than the limit", "4111", "value limit");
    check_err(m, &o, "[\"x\", \"4111 1111 1111 1111\"]", MM_ELIMIT, "offset 6: value longer than the limit",
              "4111", "detector value limit");
    check_err(m, &o, "{\"a_member_name_longer_than_16\":1}", MM_ELIMIT,
              "offset 1: member name longer than the limit", NULL, "name limit");
    /* exactly at the limit passes: 16 bytes with the quotes */
    check_opts(m, &o, "[\"12345678901234\"]", "[\"12345678901234\"]", "value at the limit");
    /* depth */
    char deep[MM_MASK_MAX_DEPTH + 2];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    o = (mm_stream_opts){.kind = MM_BODY_JSON};
    mm_buf out;
    mm_errbuf eb = {{0}};
    mm_buf_init(&out, 0);
    assert_int_equal(run(m, &o, deep, sizeof(deep), 7, &out, &eb), MM_ELIMIT);
    assert_non_null(strstr(eb.msg, "offset 512: nesting deeper than the limit"));
    /* exactly MM_MASK_MAX_DEPTH levels are fine */
    char ok[2 * MM_MASK_MAX_DEPTH + 1];
    memset(ok, '[', MM_MASK_MAX_DEPTH);
    memset(ok + MM_MASK_MAX_DEPTH, ']', MM_MASK_MAX_DEPTH);
    ok[2 * MM_MASK_MAX_DEPTH] = '\0';
    mm_buf_reset(&out);
    assert_int_equal(run(m, &o, ok, sizeof(ok), 100, &out, &eb), MM_OK);
    assert_output(mm_buf_cstr(&out), ok);
    /* a failed stream refuses more input until reset */
    mm_stream *s = NULL;
    assert_int_equal(mm_stream_new(m, &o, mm_stream_buf_write, &out, &s), MM_OK);
    assert_int_equal(mm_stream_push(s, "[x", 2, &eb), MM_EPARSE);
    assert_int_equal(mm_stream_push(s, "]", 1, &eb), MM_EINVAL);
    assert_int_equal(mm_stream_finish(s, &eb), MM_EINVAL);
    mm_stream_reset(s);
    mm_buf_reset(&out);
    assert_int_equal(mm_stream_push(s, "[1]", 3, &eb), MM_OK);
    assert_int_equal(mm_stream_finish(s, &eb), MM_OK);
    assert_output(mm_buf_cstr(&out), "[1]");
    mm_stream_free(s);
    /* a text line over the bound is an error, never a silent pass */
    o = (mm_stream_opts){.kind = MM_BODY_TEXT, .max_value = 16};
    check_err(m, &o, "ok\n4111111111111111 and more\n", MM_ELIMIT, "line 2: offset 3: line longer than the limit",
              "4111", "text line limit");
    mm_buf_free(&out);
    mm_masker_free(m);
}

static void ignore_finding(void *ctx, const mm_finding *f)
{
    (void)ctx;
    (void)f;
}

/* Every allocation of compiling and masking fails in turn: each failure is MM_ENOMEM (the
 * sanitizers and valgrind check that nothing leaks), and the run that succeeds is right. */
static void test_alloc_failures(void **state)
{
    const char *yaml = pol("p", "  rules:\n  - {name: r, fields: [\"$..a\", \"$.b[*]\", \"$['x y'][0]\"], detectors: [email], "
                                "patterns: [{name: x, regex: \"z+\"}], action: {type: remove}}\n"
                                "  - {name: h, fields: [$.h], action: {type: hash, key: k}}\n"
                                "  headers: [{name: X-A, action: {type: redact}}]\n");
    const char *in = "{\"a\":1,\"b\":[\"q@x.io\",2],\"c\":\"zz\",\"d\":{\"a\":[1]},\"x y\":[1,2],\"h\":\"v\"}";
    const char *sse = "event: e\ndata: {\"a\":1,\"m\":\"q@x.io\"}\ndata: q@x.io\n\n";
    mm_policy_set *set = NULL;
    mm_keys *keys = NULL;
    mm_errbuf eb;
    (void)state;
    assert_int_equal(mm_policy_parse_yaml(yaml, strlen(yaml), "p", &set, NULL, &eb), MM_OK);
    assert_int_equal(mm_keys_new(&keys), MM_OK);
    assert_int_equal(mm_keys_add(keys, "k", "secret", 6), MM_OK);
    const mm_policy *p = mm_policy_set_get(set, 0);
    for (long n = 0;; n++) {
        mm_masker *m = NULL;
        mm_buf out, o2, o3, hb;
        mm_hdr_result res;
        mm_buf_init(&out, 0);
        mm_buf_init(&o2, 0);
        mm_buf_init(&o3, 0);
        mm_buf_init(&hb, 0);
        mm_alloc_fail_after(n);
        mm_err rc = mm_masker_new(&p, 1, keys, NULL, &m, &eb);
        if (rc == MM_OK) {
            mm_stream_opts o = {.kind = MM_BODY_JSON, .on_finding = ignore_finding};
            rc = mm_mask_buffer(m, &o, in, strlen(in), &out, &eb);
        }
        if (rc == MM_OK) {
            mm_stream_opts o = {.kind = MM_BODY_SSE, .on_finding = ignore_finding};
            rc = mm_mask_buffer(m, &o, sse, strlen(sse), &o2, &eb);
        }
        if (rc == MM_OK) {
            mm_stream_opts o = {.kind = MM_BODY_NDJSON};
            rc = mm_mask_buffer(m, &o, "{\"a\":1}\n[\"q@x.io\"]\n", 19, &o3, &eb);
        }
        if (rc == MM_OK)
            rc = mm_masker_header(m, MM_DIR_RESPONSE, NULL, "x-a", "v", 1, &hb, &res, NULL, NULL);
        mm_alloc_fail_after(-1);
        mm_masker_free(m);
        if (rc == MM_OK) {
            /* $.b[*] removes the elements, not b */
            assert_output(mm_buf_cstr(&out),
                                "{\"b\":[],\"d\":{},\"x y\":[2],\"h\":"
                                "\"38ff772159e49b67fc04d7f1727ceaca870ae13a29242fcd1f841adff0c782be\"}");
            assert_output(mm_buf_cstr(&o2), "event: e\ndata: {}\ndata: \n\n");
            assert_output(mm_buf_cstr(&o3), "{}\n[]\n");
            assert_output(mm_buf_cstr(&hb), "[REDACTED]");
        }
        mm_buf_free(&out);
        mm_buf_free(&o2);
        mm_buf_free(&o3);
        mm_buf_free(&hb);
        if (rc == MM_OK)
            break;
        assert_int_equal(rc, MM_ENOMEM);
        assert_true(n < 5000);
    }
    mm_keys_free(keys);
    mm_policy_set_free(set);
}

/* ---- default deny -------------------------------------------------------------------- */

#define DENY_RULES                                                                                 \
    "  rules:\n"                                                                                   \
    "  - {name: card, detectors: [credit_card], action: {type: mask, keepFirst: 6, keepLast: 4, "  \
    "preserveFormat: true}}\n"                                                                     \
    "  - {name: mail, detectors: [email], action: {type: redact, replacement: M}}\n"               \
    "  - {name: pan, fields: [$.pan, $.id2], action: {type: redact, replacement: P}}\n"            \
    "  defaultDeny:\n    body:\n      fields: [$.id, $.id2, \"$.items[*].sku\", $.meta]\n"        \
    "      action: {type: redact, replacement: D}\n"

/* Rules first, allowed paths pass, every other string and number gets the default action. */
static void test_deny_json(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } rows[] = {
        /* allowed values pass; strings and numbers that are not are taken whole; literals and
         * "" have nothing to hide */
        {"{\"id\":42,\"name\":\"Ada\",\"qty\":3,\"ok\":true,\"n\":null,\"e\":\"\"}",
         "{\"id\":42,\"name\":\"D\",\"qty\":\"D\",\"ok\":true,\"n\":null,\"e\":\"\"}"},
        /* an allowed container allows everything inside it */
        {"{\"meta\":{\"a\":\"x\",\"b\":[1,{\"c\":\"y\"}]}}", "{\"meta\":{\"a\":\"x\",\"b\":[1,{\"c\":\"y\"}]}}"},
        /* a rule's path comes before an allowed path */
        {"{\"id2\":\"v\",\"pan\":7}", "{\"id2\":\"P\",\"pan\":\"P\"}"},
        /* detectors still read allowed values */
        {"{\"id\":\"a@b.co\"}", "{\"id\":\"M\"}"},
        /* matches covering a whole value let their rule decide it; partial ones do not */
        {"{\"c\":\"4111 1111 1111 1111\"}", "{\"c\":\"4111 11** **** 1111\"}"},
        {"{\"c\":\"card 4111 1111 1111 1111\",\"m\":\"a@b.co\"}", "{\"c\":\"D\",\"m\":\"M\"}"},
        {"{\"items\":[{\"sku\":\"A\",\"p\":1.5e3},{\"sku\":\"B\"}],\"sku\":\"C\"}",
         "{\"items\":[{\"sku\":\"A\",\"p\":\"D\"},{\"sku\":\"B\"}],\"sku\":\"D\"}"},
        {"\"x\"", "\"D\""},
        {" 7 ", " \"D\" "},
        {"[1,\"a\",[\"\\u0062\"],{}]", "[\"D\",\"D\",[\"D\"],{}]"},
        {"{\"s\":\"a\\\"b\", \"id\" : \"q\\n\"}", "{\"s\":\"D\", \"id\" : \"q\\n\"}"},
    };
    for (size_t i = 0; i < MM_ARRAY_LEN(rows); i++) {
        char name[64];
        snprintf(name, sizeof(name), "deny row %zu", i);
        check(pol("p", DENY_RULES), MM_BODY_JSON, rows[i].in, rows[i].want, name);
    }

    /* remove as the default: members and elements go, the output stays JSON; no rules */
    const char *rm = pol("p", "  defaultDeny: {body: {fields: [$.keep, $.d.k], action: {type: remove}}}\n");
    check(rm, MM_BODY_JSON, "{\"a\":1,\"keep\":\"k\",\"b\":\"x\",\"c\":[1,2],\"d\":{\"e\":\"f\",\"k\":0}}",
          "{\"keep\":\"k\",\"c\":[],\"d\":{\"k\":0}}", "deny remove");
    check(rm, MM_BODY_JSON, "[1,\"a\",true]", "[true]", "deny remove elements");
    check(rm, MM_BODY_JSON, "\"x\"", "null", "deny remove root");
    check(pol("p", "  defaultDeny: {body: {action: {type: mask}}}\n"), MM_BODY_JSON,
          "{\"n\":-12.5,\"s\":\"ab\"}", "{\"n\":\"*****\",\"s\":\"**\"}", "deny mask, nothing allowed");
}

static void test_deny_modes(void **state)
{
    (void)state;
    const char *in = "{\"id\":1,\"x\":\"s\"}";
    /* audit: findings, nothing changed; exempt callers likewise; direction honoured */
    check(pol("p", "  mode: audit\n" DENY_RULES), MM_BODY_JSON, in, in, "deny audit");
    mm_masker *m = compile(pol("p", DENY_RULES "  exemptions: [{principals: [\"spiffe://x/b\"], "
                                               "rules: [defaultDeny]}]\n"), false);
    mm_stream_opts o = {.kind = MM_BODY_JSON, .principal = "spiffe://x/b"};
    check_opts(m, &o, in, in, "deny exempt");
    o.principal = "spiffe://x/other";
    check_opts(m, &o, in, "{\"id\":1,\"x\":\"D\"}", "deny not exempt");
    o.direction = MM_DIR_REQUEST;
    check_opts(m, &o, in, in, "deny response only");
    seen sn = {0};
    mm_buf out;
    mm_errbuf eb;
    mm_buf_init(&out, 0);
    o = (mm_stream_opts){.kind = MM_BODY_JSON, .principal = "spiffe://x/b", .on_finding = on_finding,
                         .finding_ctx = &sn};
    assert_int_equal(mm_mask_buffer(m, &o, in, strlen(in), &out, &eb), MM_OK);
    assert_output(mm_buf_cstr(&out), in);
    assert_int_equal(sn.n, 1);
    assert_int_equal(sn.applied, 0);
    assert_string_equal(sn.paths[0], "$.x - defaultDeny 12");
    mm_buf_free(&out);
    mm_masker_free(m);

    /* several policies: a value passes only if every default deny allows it; the first that
     * does not (policy name order) decides; an explicit rule of any policy comes first; an
     * audit one reports and shields nothing */
    const char *y = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: b}\n"
                    "spec: {selector: {}, defaultDeny: {body: {fields: [$.x, $.y], action: {type: redact, replacement: B}}}}\n"
                    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: a}\n"
                    "spec: {selector: {}, defaultDeny: {body: {fields: [$.x], action: {type: redact, replacement: A}}}}\n"
                    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: c}\n"
                    "spec: {selector: {}, rules: [{name: r, fields: [$.w], action: {type: redact, replacement: C}}]}\n";
    check(y, MM_BODY_JSON, "{\"x\":1,\"y\":2,\"z\":3,\"w\":4}", "{\"x\":1,\"y\":\"A\",\"z\":\"A\",\"w\":\"C\"}",
          "deny several policies");
    const char *ya = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: b}\n"
                     "spec: {selector: {}, defaultDeny: {body: {fields: [$.x, $.y], action: {type: redact, replacement: B}}}}\n"
                     "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: a}\n"
                     "spec: {selector: {}, mode: audit, defaultDeny: {body: {fields: [$.x], action: {type: redact, replacement: A}}}}\n";
    m = compile(ya, false);
    memset(&sn, 0, sizeof(sn));
    o = (mm_stream_opts){.kind = MM_BODY_JSON, .on_finding = on_finding, .finding_ctx = &sn};
    mm_buf_init(&out, 0);
    in = "{\"x\":1,\"y\":2,\"z\":3}";
    assert_int_equal(mm_mask_buffer(m, &o, in, strlen(in), &out, &eb), MM_OK);
    assert_output(mm_buf_cstr(&out), "{\"x\":1,\"y\":2,\"z\":\"B\"}");
    assert_int_equal(sn.n, 3); /* y: a reports; z: a reports, b applies */
    assert_int_equal(sn.applied, 1);
    assert_string_equal(sn.paths[0], "$.y - defaultDeny 11");
    assert_string_equal(sn.paths[2], "$.z - defaultDeny 17");
    mm_buf_free(&out);
    mm_masker_free(m);
}

/* NDJSON: each line a document; SSE: JSON data lines as JSON (paths from the line's root),
 * other data lines whole; text: each line whole unless matches cover it. */
static void test_deny_lines(void **state)
{
    (void)state;
    const char *p = pol("p", DENY_RULES);
    check(p, MM_BODY_NDJSON, "{\"id\":1,\"x\":\"s\"}\n\n{\"x\":2}\r\n7", "{\"id\":1,\"x\":\"D\"}\n\n{\"x\":\"D\"}\r\n\"D\"",
          "deny ndjson");
    check(p, MM_BODY_SSE,
          ": c\nevent: upd\ndata: {\"id\":1,\"x\":\"s\"}\ndata: free text\ndata: 4111 1111 1111 1111\n"
          "data:\nid: 9\nretry: 5\n\n",
          ": c\nevent: upd\ndata: {\"id\":1,\"x\":\"D\"}\ndata: D\ndata: 4111 11** **** 1111\n"
          "data:\nid: 9\nretry: 5\n\n", "deny sse");
    check(p, MM_BODY_TEXT, "hello\n\n4111 1111 1111 1111\r\nmail a@b.co\nlast",
          "D\n\n4111 11** **** 1111\r\nD\nD", "deny text");
    check(pol("p", "  defaultDeny: {body: {action: {type: remove}}}\n"), MM_BODY_TEXT, "a\r\nb\n\nc",
          "\r\n\n\n", "deny text remove");
    /* the text fast path (no detectors) does not skip a default deny */
    mm_masker *m = compile(pol("p", "  defaultDeny: {body: {action: {type: redact}}}\n"), false);
    mm_stream_opts o = {.kind = MM_BODY_TEXT, .max_value = 8};
    check_opts(m, &o, "short\n", "[REDACTED]\n", "deny text without detectors");
    o.kind = MM_BODY_OPAQUE;
    check_opts(m, &o, "bytes", "bytes", "deny opaque passes");
    mm_masker_free(m);
}

static void test_deny_scan(void **state)
{
    (void)state;
    mm_masker *m = compile(pol("p", DENY_RULES), true);
    seen sn = {0};
    mm_stream_opts o = {.kind = MM_BODY_JSON, .on_finding = on_finding, .finding_ctx = &sn};
    mm_buf out;
    mm_errbuf eb;
    mm_buf_init(&out, 0);
    const char *in = "{\"id\":1,\"name\":\"Ada\",\"c\":\"4111 1111 1111 1111\",\"pan\":\"x\",\"s\":\"see a@b.co\"}";
    assert_int_equal(mm_mask_buffer(m, &o, in, strlen(in), &out, &eb), MM_OK);
    assert_output(mm_buf_cstr(&out), in);
    /* name: not allowed; c: the card rule covers it; pan: its path rule takes it; s: the mail
     * rule matches part of it, so the default deny would take it */
    assert_int_equal(sn.n, 4);
    assert_int_equal(sn.applied, 0);
    assert_string_equal(sn.paths[0], "$.name - defaultDeny 15");
    assert_string_equal(sn.paths[1], "$.c credit_card card 26");
    assert_string_equal(sn.paths[2], "$.s email mail 66");
    assert_string_equal(sn.paths[3], "$.s - defaultDeny 61");
    mm_buf_free(&out);
    mm_masker_free(m);
}

static void test_deny_headers(void **state)
{
    (void)state;
    const char *y = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: a}\n"
                    "spec: {selector: {}, direction: both, headers: [{name: Authorization, action: {type: mask, keepFirst: 7}}],\n"
                    "  defaultDeny: {headers: {names: [Content-Type, date], action: {type: remove}}},\n"
                    "  exemptions: [{principals: [\"spiffe://x/b\"], rules: [defaultDeny]}]}\n"
                    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: b}\n"
                    "spec: {selector: {}, mode: audit, defaultDeny: {headers: {action: {type: redact}}}}\n"
                    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: c}\n"
                    "spec: {selector: {}, defaultDeny: {headers: {names: [Content-Type, Date, X-Trace], "
                    "action: {type: redact, replacement: R}}}}\n";
    mm_masker *m = compile(y, false);
    mm_buf out;
    mm_hdr_result res;
    seen sn = {0};
    mm_buf_init(&out, 0);
    /* a header rule first */
    assert_int_equal(mm_masker_header(m, MM_DIR_RESPONSE, NULL, "authorization", "Bearer abcdef", 13,
                                      &out, &res, on_finding, &sn), MM_OK);
    assert_int_equal(res, MM_HDR_REWRITE);
    assert_output(mm_buf_cstr(&out), "Bearer ******");
    /* allowed by a and c; b (audit) reports */
    assert_int_equal(mm_masker_header(m, MM_DIR_RESPONSE, NULL, "CONTENT-TYPE", "text/plain", 10, &out,
                                      &res, on_finding, &sn), MM_OK);
    assert_int_equal(res, MM_HDR_KEEP);
    /* a does not allow it: a's action */
    assert_int_equal(mm_masker_header(m, MM_DIR_RESPONSE, NULL, "X-Trace", "t", 1, &out, &res, on_finding,
                                      &sn), MM_OK);
    assert_int_equal(res, MM_HDR_REMOVE);
    assert_int_equal(sn.n, 3);
    assert_int_equal(sn.applied, 2);
    assert_string_equal(sn.paths[1], "- - defaultDeny 0");
    /* exempt from a: b reports, c allows X-Trace and redacts what it does not allow; c covers
     * responses only, so a request header is a's alone (allowed for the exempt caller) */
    assert_int_equal(mm_masker_header(m, MM_DIR_RESPONSE, "spiffe://x/b", "X-Trace", "t", 1, &out, &res,
                                      NULL, NULL), MM_OK);
    assert_int_equal(res, MM_HDR_KEEP);
    assert_int_equal(mm_masker_header(m, MM_DIR_RESPONSE, "spiffe://x/b", "X-Other", "secret", 6, &out,
                                      &res, NULL, NULL), MM_OK);
    assert_int_equal(res, MM_HDR_REWRITE);
    assert_output(mm_buf_cstr(&out), "R");
    assert_int_equal(mm_masker_header(m, MM_DIR_REQUEST, "spiffe://x/b", "X-Other", "secret", 6, &out,
                                      &res, NULL, NULL), MM_OK);
    assert_int_equal(res, MM_HDR_KEEP);
    assert_int_equal(mm_masker_header(m, MM_DIR_REQUEST, NULL, "X-Other", "secret", 6, &out, &res,
                                      NULL, NULL), MM_OK);
    assert_int_equal(res, MM_HDR_REMOVE);
    mm_buf_free(&out);
    mm_masker_free(m);

    /* an audit header rule shields nothing from a later one */
    const char *z = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: a}\n"
                    "spec: {selector: {}, mode: audit, rules: [{name: r, fields: [$.r], action: {type: redact}}],\n"
                    "  headers: [{name: X-Card, action: {type: redact}}]}\n"
                    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: b}\n"
                    "spec: {selector: {}, rules: [{name: r, fields: [$.r], action: {type: redact}}],\n"
                    "  headers: [{name: X-Card, action: {type: remove}}]}\n";
    m = compile(z, false);
    mm_buf_init(&out, 0);
    assert_int_equal(mm_masker_header(m, MM_DIR_RESPONSE, NULL, "x-card", "4111", 4, &out, &res, NULL,
                                      NULL), MM_OK);
    assert_int_equal(res, MM_HDR_REMOVE);
    mm_buf_free(&out);
    mm_masker_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),          cmocka_unit_test(test_remove),
        cmocka_unit_test(test_values_and_precedence), cmocka_unit_test(test_audit_exempt_direction),
        cmocka_unit_test(test_body_kinds),     cmocka_unit_test(test_findings_and_scan),
        cmocka_unit_test(test_findings_by_name),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_audit_never_shields), cmocka_unit_test(test_strings_and_utf8),
        cmocka_unit_test(test_headers),        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_deny_json),      cmocka_unit_test(test_deny_modes),
        cmocka_unit_test(test_deny_lines),     cmocka_unit_test(test_deny_scan),
        cmocka_unit_test(test_deny_headers),
    };
    return cmocka_run_group_tests_name("mask-stream", tests, NULL, NULL);
}
