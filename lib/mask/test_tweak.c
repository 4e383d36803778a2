/* Unit tests for encrypt's tweak: {field: NAME} in the JSON stream (jtweak.c) and in reveal.
 * The oracle is the same rule with the tweak written as a constant: a value whose object
 * has cid "c-42" must come out exactly as under tweak: "c-42", and a value whose object
 * has none as under the rule's name. Every case is also pushed split at every byte and one
 * byte at a time (the output must not change), and revealed back to the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask/mask.h"

#define POLICY(tweak, mode)                                                                   \
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p}\n"             \
    "spec:\n  selector: {}\n  rules:\n"                                                        \
    "  - {name: byid, fields: [\"$.card\", \"$.orders[*].card\", \"$.orders[*].cards[*]\"], "      \
    "action: "      \
    "{type: encrypt, mode: " mode ", key: k, keyVersion: 1, tweak: " tweak "}}\n"

static mm_keys *test_keys(void)
{
    mm_keys *keys = NULL;
    assert_int_equal(mm_keys_new(&keys), MM_OK);
    assert_int_equal(mm_keys_add(keys, "k.v1", "0123456789abcdef-secret", 23), MM_OK);
    return keys;
}

typedef struct {
    mm_policy_set *set;
    mm_masker *m;
    mm_revealer *r;
} compiled;

static compiled compile(const char *yaml, const mm_keys *keys)
{
    compiled c = {0};
    mm_errbuf eb = {{0}};
    const mm_policy *p;

    if (mm_policy_parse_yaml(yaml, strlen(yaml), "t.yaml", &c.set, NULL, &eb) != MM_OK)
        fail_msg("policy: %s", eb.msg);
    p = mm_policy_set_get(c.set, 0);
    if (mm_masker_new(&p, 1, keys, NULL, &c.m, &eb) != MM_OK)
        fail_msg("masker: %s", eb.msg);
    if (mm_revealer_new(&p, 1, keys, 0, &c.r, &eb) != MM_OK)
        fail_msg("revealer: %s", eb.msg);
    return c;
}

static void release(compiled *c)
{
    mm_masker_free(c->m);
    mm_revealer_free(c->r);
    mm_policy_set_free(c->set);
}

/* Masks `in` in pieces of at most `step` bytes after a first piece of `first`; the output,
 * or NULL on failure (the message in eb). */
static char *run_kind(mm_masker *m, mm_body_kind kind, const char *in, size_t first, size_t step,
                      mm_errbuf *eb)
{
    mm_stream_opts o = {.kind = kind, .direction = MM_DIR_RESPONSE};
    mm_stream *s = NULL;
    mm_buf out;
    size_t n = strlen(in), i = 0;
    mm_err rc;

    mm_buf_init(&out, 0);
    assert_int_equal(mm_stream_new(m, &o, mm_stream_buf_write, &out, &s), MM_OK);
    for (rc = MM_OK; rc == MM_OK && i < n; i += first, first = step) {
        if (first > n - i)
            first = n - i;
        rc = mm_stream_push(s, in + i, first, eb);
    }
    if (rc == MM_OK)
        rc = mm_stream_finish(s, eb);
    mm_stream_free(s);
    if (rc != MM_OK) {
        mm_buf_free(&out);
        return NULL;
    }
    char *r = mm_strdup(mm_buf_cstr(&out));
    mm_buf_free(&out);
    return r;
}

static char *run(mm_masker *m, const char *in, size_t first, size_t step, mm_errbuf *eb)
{
    return run_kind(m, MM_BODY_JSON, in, first, step, eb);
}

/* `in` masked whole, and the same split at every byte and one byte at a time. */
static char *run_splits_kind(mm_masker *m, mm_body_kind kind, const char *in)
{
    mm_errbuf eb = {{0}};
    char *whole = run_kind(m, kind, in, strlen(in), strlen(in), &eb);

    if (!whole)
        fail_msg("%s: %s", in, eb.msg);
    for (size_t k = 0; k <= strlen(in); k++) {
        char *part = run_kind(m, kind, in, k, k ? strlen(in) : 1, &eb);
        if (!part || strcmp(part, whole) != 0)
            fail_msg("%s split at %zu: %s, whole: %s", in, k, part ? part : eb.msg, whole);
        mm_free(part);
    }
    return whole;
}

static char *run_all_splits(mm_masker *m, const char *in)
{
    return run_splits_kind(m, MM_BODY_JSON, in);
}

static char *reveal(compiled *c, const char *in)
{
    mm_buf out;
    mm_errbuf eb = {{0}};
    size_t failed = 0;

    mm_buf_init(&out, 0);
    if (mm_reveal_buffer(c->r, MM_BODY_JSON, in, strlen(in), &out, NULL, NULL, &failed,
                         &eb) != MM_OK)
        fail_msg("reveal: %s", eb.msg);
    assert_int_equal(failed, 0);
    char *s = mm_strdup(mm_buf_cstr(&out));
    mm_buf_free(&out);
    return s;
}

static const char *const modes[] = {"ff1", "siv"};

/* The tweak before the value, after it (with containers between), missing, null, an
 * integer: each equals the constant-tweak oracle; each reveals back to the input. */
static void field_before_after_missing(void **state)
{
    static const struct {
        const char *doc, *tweak; /* the constant the value must be encrypted under */
    } cases[] = {
        {"{\"cid\":\"c-42\",\"card\":\"4111 1111 1111 1111\"}", "\"c-42\""},
        {"{\"card\":\"4111 1111 1111 1111\",\"x\":[1,{\"cid\":\"no\"}],\"cid\":\"c-42\"}",
         "\"c-42\""},
        {"{\"card\":\"4111 1111 1111 1111\",\"other\":\"c-42\"}", "byid"},
        {"{\"card\":\"4111 1111 1111 1111\",\"cid\":null}", "byid"},
        {"{\"card\":\"4111 1111 1111 1111\",\"cid\":1.5}", "byid"},
        {"{\"card\":\"4111 1111 1111 1111\",\"cid\":{\"a\":1}}", "byid"},
        {"{\"cid\":12345,\"card\":\"4111 1111 1111 1111\"}", "\"12345\""},
        {"{\"card\":\"4111 1111 1111 1111\",\"cid\":-0}", "\"0\""},
        {"{\"card\":\"4111 1111 1111 1111\",\"cid\":18446744073709551614}",
         "\"18446744073709551614\""},
        {"{\"card\":\"4111 1111 1111 1111\",\"cid\":99999999999999999999}", "byid"},
        {"{\"card\":\"4111 1111 1111 1111\",\"cid\":-9223372036854775808}", "byid"},
        {"{\"card\":\"4111 1111 1111 1111\",\"cid\":\"c\\u002d42\"}", "\"c-42\""},
    };
    mm_keys *keys = test_keys();

    (void)state;
    for (size_t md = 0; md < MM_ARRAY_LEN(modes); md++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml), POLICY("{field: cid}", "%s"), modes[md]);
        compiled c = compile(yaml, keys);
        for (size_t i = 0; i < MM_ARRAY_LEN(cases); i++) {
            char oyaml[1024], *got, *want, *back;
            mm_errbuf eb = {{0}};
            snprintf(oyaml, sizeof(oyaml), POLICY("%s", "%s"), modes[md], cases[i].tweak);
            compiled oracle = compile(oyaml, keys);
            got = run_all_splits(c.m, cases[i].doc);
            want = run(oracle.m, cases[i].doc, strlen(cases[i].doc), 1, &eb);
            assert_non_null(want);
            if (strcmp(got, want) != 0)
                fail_msg("%s %s: got %s, want %s", modes[md], cases[i].doc, got, want);
            assert_null(strstr(got, "4111 1111 1111 1111"));
            back = reveal(&c, got); /* json-c rewrites \u002d, -0 and clamped integers */
            if (!strstr(back, "\"card\":\"4111 1111 1111 1111\""))
                fail_msg("%s %s: revealed %s", modes[md], cases[i].doc, back);
            if (!strstr(cases[i].doc, "\\u002d") && !strstr(cases[i].doc, "999999") &&
                !strstr(cases[i].doc, "-9223") && !strstr(cases[i].doc, "-0}")) {
                char exp[512];
                snprintf(exp, sizeof(exp), "%s\n", cases[i].doc);
                assert_string_equal(back, exp);
            }
            mm_free(got);
            mm_free(want);
            mm_free(back);
            release(&oracle);
        }
        release(&c);
    }
    mm_keys_free(keys);
}

/* Objects in an array each take their own member; an array's elements take the member of
 * the object holding the array; the same card under two ids encrypts two ways. */
static void each_object_its_own(void **state)
{
    static const char doc[] =
        "{\"orders\":[{\"card\":\"4111 1111 1111 1111\",\"cid\":\"a\"},"
        "{\"cid\":\"b\",\"card\":\"4111 1111 1111 1111\"},"
        "{\"cards\":[\"4111 1111 1111 1111\",\"5500 0000 0000 0004\"],\"cid\":\"a\"}]}";
    mm_keys *keys = test_keys();
    char yaml[1024], *got, *back, *wa, *wb, *wc;
    mm_errbuf eb = {{0}};

    (void)state;
    snprintf(yaml, sizeof(yaml), POLICY("{field: cid}", "%s"), "ff1");
    compiled c = compile(yaml, keys);
    got = run_all_splits(c.m, doc);
    /* the oracle, one object at a time */
    snprintf(yaml, sizeof(yaml), POLICY("\"a\"", "%s"), "ff1");
    compiled oa = compile(yaml, keys);
    snprintf(yaml, sizeof(yaml), POLICY("\"b\"", "%s"), "ff1");
    compiled ob = compile(yaml, keys);
    wa = run(oa.m, "{\"card\":\"4111 1111 1111 1111\"}", 40, 40, &eb);
    wb = run(ob.m, "{\"card\":\"4111 1111 1111 1111\"}", 40, 40, &eb);
    wc = run(oa.m, "{\"card\":\"5500 0000 0000 0004\"}", 40, 40, &eb);
    assert_non_null(wa);
    assert_non_null(wb);
    assert_non_null(wc);
    assert_string_not_equal(wa, wb);
    /* {"card":"<ct>"}: the ciphertext with its quotes, at offset 7 */
    wa[strlen(wa) - 1] = wb[strlen(wb) - 1] = wc[strlen(wc) - 1] = '\0';
    char want[1024];
    snprintf(want, sizeof(want), "{\"orders\":[{\"card\":%s,\"cid\":\"a\"},{\"cid\":\"b\","
             "\"card\":%s},{\"cards\":[%s,%s],\"cid\":\"a\"}]}", wa + 8, wb + 8, wa + 8, wc + 8);
    assert_string_equal(got, want);
    back = reveal(&c, got);
    char exp[1024];
    snprintf(exp, sizeof(exp), "%s\n", doc);
    assert_string_equal(back, exp);
    mm_free(got);
    mm_free(back);
    mm_free(wa);
    mm_free(wb);
    mm_free(wc);
    release(&oa);
    release(&ob);
    release(&c);
    mm_keys_free(keys);
}

/* A tweak member twice in one object, and a value waiting past the held-output bound, fail
 * the stream with the offset; nothing of the waiting value was written. */
static void refusals(void **state)
{
    mm_keys *keys = test_keys();
    char yaml[1024], *got;
    mm_errbuf eb = {{0}};
    mm_buf big;

    (void)state;
    snprintf(yaml, sizeof(yaml), POLICY("{field: cid}", "%s"), "siv");
    compiled c = compile(yaml, keys);
    got = run(c.m, "{\"cid\":\"a\",\"card\":\"4111\",\"cid\":\"b\"}", 64, 64, &eb);
    assert_null(got);
    assert_string_equal(eb.msg, "offset 31: a tweak member appears twice in one object");

    mm_buf_init(&big, 0);
    assert_int_equal(mm_buf_puts(&big, "{\"card\":\"4111\""), MM_OK);
    for (int i = 0; big.len < (1u << 20) + 64; i++)
        assert_int_equal(mm_buf_printf(&big, ",\"p%d\":[1,2,3,4,5,6,7,8,9]", i), MM_OK);
    assert_int_equal(mm_buf_puts(&big, ",\"cid\":\"a\"}"), MM_OK);
    got = run(c.m, big.data, 4096, 4096, &eb);
    assert_null(got);
    assert_string_equal(eb.msg, "offset 8: a value waits for its tweak member past the output "
                                "a stream may hold (1 MiB)");
    mm_buf_free(&big);
    release(&c);
    mm_keys_free(keys);
}

/* Policies: field needs a fields-only rule; a root value (no object) takes the rule's
 * name. */
static void root_value_takes_rule_name(void **state)
{
    mm_keys *keys = test_keys();
    char yaml[1024], *got, *want;
    mm_errbuf eb = {{0}};
    static const char doc[] = "[\"4111 1111 1111 1111\"]";

    (void)state;
    snprintf(yaml, sizeof(yaml), "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\n"
             "metadata: {name: p}\nspec:\n  selector: {}\n  rules:\n  - {name: byid, fields: "
             "[\"$[*]\"], action: {type: encrypt, mode: ff1, key: k, keyVersion: 1, tweak: "
             "{field: cid}}}\n");
    compiled c = compile(yaml, keys);
    snprintf(yaml, sizeof(yaml), "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\n"
             "metadata: {name: p}\nspec:\n  selector: {}\n  rules:\n  - {name: byid, fields: "
             "[\"$[*]\"], action: {type: encrypt, mode: ff1, key: k, keyVersion: 1, tweak: "
             "byid}}\n");
    compiled o = compile(yaml, keys);
    got = run_all_splits(c.m, doc);
    want = run(o.m, doc, 64, 64, &eb);
    assert_non_null(want);
    assert_string_equal(got, want);
    mm_free(got);
    mm_free(want);
    release(&c);
    release(&o);
    mm_keys_free(keys);
}

/* ff1 values of a body are encrypted together (emit.c, st_act_apply): written as they are,
 * then encrypted in place in batches before the bytes leave. The oracle is the same rules
 * with tweak: {field: nosuch}, which jtweak.c takes one value at a time with the rule's
 * name as the tweak, against rules whose constant tweak is that name. Cards, SSNs with a
 * surrogate, ids under a second key (one batch, two keys), values that cannot wait (letters,
 * a quote inside, past 48 bytes, numbers), more than a batch, and a body past the staged
 * output's flush size; split at every byte, and a body that fails after values waited
 * writes none of them. */
#define BATCH_POLICY(card, ssn, id, name)                                                      \
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p}\n"             \
    "spec:\n  selector: {}\n  rules:\n"                                                        \
    "  - {name: card, fields: [\"$.rows[*].card\"], action: {type: encrypt, mode: ff1, "      \
    "key: k, keyVersion: 1, keepFirst: 6, keepLast: 4, luhn: valid, tweak: " card "}}\n"       \
    "  - {name: ssn, fields: [\"$.rows[*].ssn\"], action: {type: encrypt, mode: ff1, "        \
    "key: k, keyVersion: 1, surrogate: SSN, tweak: " ssn "}}\n"                                 \
    "  - {name: id, fields: [\"$.rows[*].id\"], action: {type: encrypt, mode: ff1, "          \
    "key: k2, keyVersion: 1, tweak: " id "}}\n"                                                 \
    "  - {name: name, fields: [\"$.rows[*].name\"], action: {type: encrypt, mode: ff1, "      \
    "key: k, keyVersion: 1, tweak: " name "}}\n"

static char *batch_doc(int rows, size_t pad)
{
    mm_buf b;
    char *pads = mm_malloc(pad + 1);

    assert_non_null(pads);
    memset(pads, 'p', pad);
    pads[pad] = '\0';
    mm_buf_init(&b, 0);
    mm_buf_puts(&b, "{\"rows\":[");
    for (int i = 0; i < rows; i++) {
        char row[2048];
        int id_len = 6 + (i * 7) % 50; /* 6..55 digits: past 48 some cannot wait */
        char id[64];
        for (int k = 0; k < id_len; k++)
            id[k] = (char)('0' + (i + k * 3) % 10);
        id[0] = (char)('1' + i % 9); /* a JSON number has no leading zero */
        id[id_len] = '\0';
        snprintf(row, sizeof(row),
                 "%s{\"card\":\"%s\",\"ssn\":\"%03d-%02d-%04d\",\"id\":%s%s%s,"
                 "\"name\":\"%s\",\"pad\":\"%s\"}",
                 i ? "," : "",
                 i % 5 == 0 ? "4111 1111 1111 1111" : i % 5 == 1 ? "5500-0000-0000-0004"
                 : i % 5 == 2 ? "\\u00341111111111111111" : i % 5 == 3 ? "4111\\\"111111111111"
                 : "378282246310005",
                 100 + i, 10 + i % 90, 1000 + i * 37, i % 4 ? "\"" : "", id, i % 4 ? "\"" : "",
                 i % 2 ? "Ada Lovelace" : "bob 42", pads);
        mm_buf_puts(&b, row);
    }
    mm_buf_puts(&b, "]}");
    mm_free(pads);
    char *r = mm_strdup(mm_buf_cstr(&b));
    mm_buf_free(&b);
    return r;
}

static void ff1_batches_as_alone(void **state)
{
    mm_keys *keys = test_keys();
    mm_errbuf eb = {{0}};
    compiled c, o;

    (void)state;
    assert_int_equal(mm_keys_add(keys, "k2.v1", "another-secret-of-k2", 20), MM_OK);
    c = compile(BATCH_POLICY("card", "ssn", "id", "name"), keys);
    o = compile(BATCH_POLICY("{field: nosuch}", "{field: nosuch}", "{field: nosuch}",
                             "{field: nosuch}"), keys);
    {   /* a small body, split everywhere: more rows than a batch */
        char *doc = batch_doc(20, 0);
        char *got = run_all_splits(c.m, doc), *want = run(o.m, doc, 1 << 20, 1 << 20, &eb);
        assert_non_null(want);
        assert_string_equal(got, want);
        assert_null(strstr(got, "1111 1111 1111"));
        assert_null(strstr(got, "0000-0000"));
        assert_non_null(strstr(got, "\"SSN.v1:"));
        mm_free(got);
        mm_free(want);
        mm_free(doc);
    }
    {   /* past the staged output's flush size (64 KiB), in a few piece sizes */
        char *doc = batch_doc(90, 1500), *want = run(o.m, doc, 1 << 20, 1 << 20, &eb);
        static const size_t steps[] = {1 << 20, 1, 7, 4096, 65535};
        assert_true(strlen(doc) > 128 * 1024);
        assert_non_null(want);
        for (size_t k = 0; k < MM_ARRAY_LEN(steps); k++) {
            char *got = run(c.m, doc, steps[k], steps[k], &eb);
            assert_non_null(got);
            if (strcmp(got, want) != 0)
                fail_msg("pieces of %zu bytes: the batched output differs", steps[k]);
            mm_free(got);
        }
        mm_free(want);
        mm_free(doc);
    }
    {   /* a body that fails after values waited: none of them is written, clear or not */
        static const char bad[] = "{\"rows\":[{\"card\":\"4111 1111 1111 1111\"},"
                                  "{\"card\":\"5500 0000 0000 0004\"}, !]}";
        mm_stream_opts so = {.kind = MM_BODY_JSON, .direction = MM_DIR_RESPONSE};
        mm_stream *s = NULL;
        mm_buf out;
        mm_buf_init(&out, 0);
        assert_int_equal(mm_stream_new(c.m, &so, mm_stream_buf_write, &out, &s), MM_OK);
        assert_int_not_equal(mm_stream_push(s, bad, strlen(bad), &eb), MM_OK);
        assert_null(strstr(mm_buf_cstr(&out), "1111 1111"));
        assert_null(strstr(mm_buf_cstr(&out), "0000 0000"));
        /* and after a reset the stream masks the next body as a new one would */
        mm_stream_reset(s);
        out.len = 0;
        static const char good[] = "{\"rows\":[{\"card\":\"4111 1111 1111 1111\"}]}";
        assert_int_equal(mm_stream_push(s, good, strlen(good), &eb), MM_OK);
        assert_int_equal(mm_stream_finish(s, &eb), MM_OK);
        char *want = run(o.m, good, 64, 64, &eb);
        assert_non_null(want);
        assert_string_equal(mm_buf_cstr(&out), want);
        mm_free(want);
        mm_stream_free(s);
        mm_buf_free(&out);
    }
    release(&c);
    release(&o);
    mm_keys_free(keys);
}

/* NDJSON lines and SSE data lines: each document waits and resolves on its own. */
static void ndjson_and_sse(void **state)
{
    static const char a[] = "{\"card\":\"4111 1111 1111 1111\",\"cid\":\"a\"}";
    static const char b[] = "{\"cid\":\"b\",\"card\":\"4111 1111 1111 1111\"}";
    static const char c[] = "{\"card\":\"4111 1111 1111 1111\"}";
    mm_keys *keys = test_keys();
    char yaml[1024], in[512], want[1024], *got, *wa, *wb, *wc;
    mm_errbuf eb = {{0}};

    (void)state;
    snprintf(yaml, sizeof(yaml), POLICY("{field: cid}", "%s"), "ff1");
    compiled m = compile(yaml, keys);
    assert_non_null(wa = run(m.m, a, 64, 64, &eb));
    assert_non_null(wb = run(m.m, b, 64, 64, &eb));
    assert_non_null(wc = run(m.m, c, 64, 64, &eb));
    snprintf(in, sizeof(in), "%s\n%s\r\n%s\n", a, b, c);
    snprintf(want, sizeof(want), "%s\n%s\r\n%s\n", wa, wb, wc);
    got = run_splits_kind(m.m, MM_BODY_NDJSON, in);
    assert_string_equal(got, want);
    mm_free(got);
    snprintf(in, sizeof(in), "event: x\ndata: %s\n\ndata: %s\n\n", a, b);
    snprintf(want, sizeof(want), "event: x\ndata: %s\n\ndata: %s\n\n", wa, wb);
    got = run_splits_kind(m.m, MM_BODY_SSE, in);
    assert_string_equal(got, want);
    mm_free(got);
    mm_free(wa);
    mm_free(wb);
    mm_free(wc);
    release(&m);
    mm_keys_free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(field_before_after_missing),
        cmocka_unit_test(each_object_its_own),
        cmocka_unit_test(refusals),
        cmocka_unit_test(root_value_takes_rule_name),
        cmocka_unit_test(ndjson_and_sse),
        cmocka_unit_test(ff1_batches_as_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
