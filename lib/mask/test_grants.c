/* Unit tests for graded reveal in the stream (spec.reveal): one policy, one body, four
 * callers — support sees the last four digits, billing the FF1 ciphertext, fraud the clear
 * value, anyone else the rule's own action (redact) — in JSON (paths and detectors) and
 * text; then the billing ciphertext revealed back with mm_reveal_buffer (the grant's
 * encrypt action is one the revealer knows). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mask/mask.h"

#define SUPPORT "spiffe://cluster.local/ns/support/sa/agent"
#define BILLING "spiffe://cluster.local/ns/billing/sa/invoices"
#define FRAUD "spiffe://cluster.local/ns/fraud/sa/analyst"

static const char POLICY[] =
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: cards}\n"
    "spec:\n  selector: {}\n  rules:\n"
    "  - {name: card, fields: [$.card], detectors: [credit_card], action: {type: redact}}\n"
    "  - {name: email, fields: [$.email], action: {type: redact}}\n"
    "  reveal:\n"
    "  - principals: [" SUPPORT "]\n"
    "    rules: [{rule: card, action: {type: mask, keepLast: 4, preserveFormat: true}}]\n"
    "  - principals: [" BILLING "]\n"
    "    rules: [{rule: card, action: {type: encrypt, format: ff1, key: pay, keyVersion: 1, "
    "keepFirst: 6, keepLast: 4}}]\n"
    "  - principals: [" FRAUD "]\n"
    "    rules: [{rule: card, clear: true}, {rule: email, clear: true}]\n";

static const char BODY[] = "{\"card\": \"4111 1111 1111 1111\", \"email\": \"ada@example.com\", "
                           "\"note\": \"paid with 5555-5555-5555-4444\"}";

typedef struct {
    mm_policy_set *set;
    mm_keys *keys;
    mm_masker *m;
} fixture;

static int setup(void **state)
{
    fixture *fx = mm_calloc(1, sizeof(*fx));
    mm_errbuf eb;
    const mm_policy *p;
    if (!fx || mm_policy_parse_yaml(POLICY, strlen(POLICY), "t.yaml", &fx->set, NULL, &eb) ||
        mm_keys_new(&fx->keys) || mm_keys_add(fx->keys, "pay.v1", "grants-test-key-0123456", 23))
        return -1;
    p = mm_policy_set_get(fx->set, 0);
    if (mm_masker_new(&p, 1, fx->keys, NULL, &fx->m, &eb) != MM_OK) {
        print_error("%s\n", eb.msg);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    mm_masker_free(fx->m);
    mm_keys_free(fx->keys);
    mm_policy_set_free(fx->set);
    mm_free(fx);
    return 0;
}

static char *mask_as(fixture *fx, const char *principal, mm_body_kind kind, const char *in)
{
    mm_stream_opts o = {.kind = kind, .principal = principal};
    mm_buf out;
    mm_errbuf eb;
    mm_buf_init(&out, 0);
    if (mm_mask_buffer(fx->m, &o, in, strlen(in), &out, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    mm_buf_cstr(&out);
    return mm_buf_steal(&out, NULL);
}

static void graded_json(void **state)
{
    fixture *fx = *state;
    char *o;

    o = mask_as(fx, NULL, MM_BODY_JSON, BODY);
    assert_string_equal(o, "{\"card\": \"[REDACTED]\", \"email\": \"[REDACTED]\", "
                           "\"note\": \"paid with [REDACTED]\"}");
    mm_free(o);
    o = mask_as(fx, "spiffe://cluster.local/ns/other/sa/x", MM_BODY_JSON, BODY);
    assert_non_null(strstr(o, "\"card\": \"[REDACTED]\""));
    mm_free(o);
    o = mask_as(fx, SUPPORT, MM_BODY_JSON, BODY);
    assert_string_equal(o, "{\"card\": \"**** **** **** 1111\", \"email\": \"[REDACTED]\", "
                           "\"note\": \"paid with ****-****-****-4444\"}");
    mm_free(o);
    o = mask_as(fx, FRAUD, MM_BODY_JSON, BODY);
    assert_string_equal(o, BODY);
    mm_free(o);

    /* billing: FF1 ciphertext with first six / last four kept, and the email still redacted;
     * the policy's reveal side (maskctl reveal) turns the cards back */
    o = mask_as(fx, BILLING, MM_BODY_JSON, BODY);
    assert_memory_equal(o, "{\"card\": \"4111 11", 17);
    assert_null(strstr(o, "4111 1111 1111 1111"));
    assert_null(strstr(o, "5555-5555-5555-4444"));
    assert_non_null(strstr(o, "\"email\": \"[REDACTED]\""));
    assert_non_null(strstr(o, "paid with 5555-55"));

    /* the grant's ciphertext reveals back (maskctl reveal's engine) */
    mm_revealer *r = NULL;
    const mm_policy *p = mm_policy_set_get(fx->set, 0);
    mm_errbuf eb;
    mm_buf back;
    size_t failed = 0;
    mm_buf_init(&back, 0);
    assert_int_equal(mm_revealer_new(&p, 1, fx->keys, 0, &r, &eb), MM_OK);
    assert_int_equal(mm_reveal_buffer(r, MM_BODY_JSON, o, strlen(o), &back, NULL, NULL, &failed,
                                      &eb), MM_OK);
    assert_int_equal(failed, 0);
    assert_string_equal(mm_buf_cstr(&back), "{\"card\":\"4111 1111 1111 1111\",\"email\":"
                        "\"[REDACTED]\",\"note\":\"paid with 5555-5555-5555-4444\"}\n");
    mm_buf_free(&back);
    mm_revealer_free(r);
    mm_free(o);
}

static void graded_text(void **state)
{
    fixture *fx = *state;
    char *o = mask_as(fx, SUPPORT, MM_BODY_TEXT, "card 4111-1111-1111-1111 done\n");
    assert_string_equal(o, "card ****-****-****-1111 done\n");
    mm_free(o);
    o = mask_as(fx, FRAUD, MM_BODY_TEXT, "card 4111-1111-1111-1111 done\n");
    assert_string_equal(o, "card 4111-1111-1111-1111 done\n");
    mm_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(graded_json),
        cmocka_unit_test(graded_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
