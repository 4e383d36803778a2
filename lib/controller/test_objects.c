/* Unit tests for lib/controller's policy comparison that keeps the controller's own status
 * patches from queueing its namespace again (ctrl_status_only, objects.c), the status the
 * policy informer keeps in short (ctrl_slim, ctrl_status_says: the same decisions as the
 * whole status, in a fraction of its bytes), and the hash of the status last written
 * (ctrl_fnv) against the published FNV-1a 64 vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "controller/controller_int.h"

/* A MaskingPolicy as the informer keeps it (ctrl_slim), then one edit applied to a copy. */
static const char *POLICY =
    "{\"apiVersion\":\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\","
    "\"metadata\":{\"name\":\"p\",\"namespace\":\"shop\",\"uid\":\"u-1\",\"generation\":3,"
    "\"resourceVersion\":\"100\",\"labels\":{\"team\":\"a\"}},"
    "\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"p\"}},\"rules\":[]},"
    "\"status\":{\"observedGeneration\":2}}";

static bool changed_only(const char *a, const char *b, const char *json)
{
    struct json_object *old_obj = json_tokener_parse(POLICY), *o = json_tokener_parse(POLICY);
    struct json_object *where = b ? ctrl_field(o, a, NULL) : o;
    assert_non_null(old_obj);
    assert_non_null(where);
    json_object_object_add(where, b ? b : a, json_tokener_parse(json));
    bool r = ctrl_status_only(old_obj, o);
    json_object_put(old_obj);
    json_object_put(o);
    return r;
}

static void status_and_version_only(void **state)
{
    (void)state;
    assert_true(changed_only("status", NULL,
                             "{\"observedGeneration\":3,\"conditions\":[{\"type\":\"Ready\"}]}"));
    assert_true(changed_only("metadata", "resourceVersion", "\"101\""));
    assert_false(changed_only("metadata", "generation", "4"));
    assert_false(changed_only("spec", "rules", "[{\"name\":\"x\"}]"));
    assert_false(changed_only("metadata", "labels", "{\"team\":\"b\"}"));
    assert_false(changed_only("metadata", "uid", "\"u-2\""));
    assert_false(changed_only("metadata", "ownerReferences", "[{\"uid\":\"o\"}]"));
}

static void without_generation_always_renders(void **state)
{
    (void)state;
    struct json_object *a = json_tokener_parse("{\"metadata\":{\"name\":\"p\"},\"spec\":{}}");
    struct json_object *b = json_tokener_parse("{\"metadata\":{\"name\":\"p\"},\"spec\":{}}");
    assert_false(ctrl_status_only(a, b)); /* no generation to go by */
    json_object_put(a);
    json_object_put(b);
}

/* A policy as the API stand-in returned it after the controller's status patch (managedFields
 * and all): what the informer receives. */
static const char *WRITTEN =
    "{\"apiVersion\":\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\",\"metadata\":{"
    "\"creationTimestamp\":\"2026-12-06T14:52:24Z\",\"generation\":1,\"managedFields\":[{"
    "\"apiVersion\":\"maskmesh.io/v1alpha1\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:status\":"
    "{\".\":{},\"f:conditions\":{}}},\"manager\":\"maskmesh-controller\",\"operation\":\"Update\","
    "\"subresource\":\"status\",\"time\":\"2026-12-06T14:52:24Z\"}],\"name\":\"p-00\","
    "\"namespace\":\"ns-0000\",\"resourceVersion\":\"1010\",\"uid\":\"1a964a5e-d622-48da-9ddc-1b98aaac46c6\"},"
    "\"spec\":{\"direction\":\"response\",\"mode\":\"enforce\",\"onError\":\"block\",\"rules\":[{\"action\":"
    "{\"type\":\"redact\"},\"detectors\":[\"credit_card\"],\"name\":\"card\"},{\"action\":{\"type\":"
    "\"redact\"},\"name\":\"ids\",\"patterns\":[{\"name\":\"emp\",\"regex\":\"EMP-[0-9]{6}\"}]}],"
    "\"selector\":{\"matchLabels\":{\"app\":\"p-00\"}},\"unlistedTypes\":\"detect\"},"
    "\"status\":{\"conditions\":[{\"lastTransitionTime\":\"2026-12-06T14:52:24Z\",\"message\":"
    "\"rendered into ConfigMap maskmesh-policies and NetworkPolicy maskmesh-p-00\","
    "\"observedGeneration\":1,\"reason\":\"Rendered\",\"status\":\"True\",\"type\":\"Ready\"}],"
    "\"configMap\":\"maskmesh-policies\",\"networkPolicy\":\"maskmesh-p-00\",\"observedGeneration\":1,"
    "\"ruleCount\":2,\"stream\":{\"deployment\":\"maskmesh-stream-p-00\",\"readyReplicas\":1}}}";

/* The comparison as reconcile made it on the whole status before the informer kept it in
 * short: the oracle the short form must agree with. */
static bool whole_says(struct json_object *p, const ctrl_want_st *w)
{
    struct json_object *st = ctrl_field(p, "status", NULL), *conds = ctrl_field(st, "conditions", NULL), *old = NULL;
    int64_t gen = json_object_get_int64(ctrl_field(p, "metadata", "generation"));
    char npname[300];
    snprintf(npname, sizeof(npname), "maskmesh-%s", ctrl_meta_str(p, "name"));
    for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) && i < json_object_array_length(conds); i++) {
        struct json_object *cd = json_object_array_get_idx(conds, i);
        if (strcmp(json_object_get_string(ctrl_field(cd, "type", NULL)) ?: "", "Ready") == 0)
            old = cd;
    }
    bool cond_same = old && strcmp(json_object_get_string(ctrl_field(old, "status", NULL)) ?: "", w->ready ? "True" : "False") == 0 &&
                     strcmp(json_object_get_string(ctrl_field(old, "reason", NULL)) ?: "", w->reason) == 0 &&
                     strcmp(json_object_get_string(ctrl_field(old, "message", NULL)) ?: "", w->message) == 0 &&
                     json_object_get_int64(ctrl_field(old, "observedGeneration", NULL)) == gen;
    bool rest_same = st && json_object_get_int64(ctrl_field(st, "observedGeneration", NULL)) == gen &&
                     json_object_get_int64(ctrl_field(st, "ruleCount", NULL)) == (int64_t)w->rules &&
                     (!w->rendered || (strcmp(json_object_get_string(ctrl_field(st, "configMap", NULL)) ?: "", "maskmesh-policies") == 0 &&
                                       strcmp(json_object_get_string(ctrl_field(st, "networkPolicy", NULL)) ?: "", npname) == 0));
    return cond_same && rest_same;
}

/* WRITTEN with one member of its status set to json (NULL: removed), slimmed or not */
static struct json_object *written_with(const char *in_cond, const char *key, const char *json, bool slim)
{
    struct json_object *p = json_tokener_parse(WRITTEN), *st = ctrl_field(p, "status", NULL);
    struct json_object *where = in_cond ? json_object_array_get_idx(ctrl_field(st, "conditions", NULL), 0) : st;
    assert_non_null(where);
    if (key && json)
        json_object_object_add(where, key, json_tokener_parse(json));
    else if (key)
        json_object_object_del(where, key);
    if (slim)
        assert_int_equal(ctrl_slim(NULL, p), MM_OK);
    return p;
}

static void short_status_decides_as_whole(void **state)
{
    (void)state;
    static const char *const msg = "rendered into ConfigMap maskmesh-policies and NetworkPolicy maskmesh-p-00";
    const ctrl_want_st wants[] = {
        {true, true, "Rendered", msg, 2},                                 /* what was written */
        {true, true, "Rendered", msg, 3},                                 /* another rule count */
        {false, true, "Rendered", msg, 2},                                /* not ready */
        {true, true, "Other", msg, 2},                                    /* another reason */
        {true, true, "Rendered", "rendered into ConfigMap x", 2},         /* another message */
        {false, false, "InvalidPolicy", "spec.rules: expected a list", 2}, /* not rendered */
        {true, false, "Rendered", msg, 2},                                /* refs not compared */
    };
    /* the status edited as someone else might, each seen against every want */
    static const struct { const char *cond, *key, *json; } edits[] = {
        {NULL, NULL, NULL},
        {NULL, "observedGeneration", "2"},
        {NULL, "observedGeneration", "\"1\""},
        {NULL, "ruleCount", NULL},
        {NULL, "configMap", NULL},
        {NULL, "configMap", "\"other\""},
        {NULL, "networkPolicy", "\"maskmesh-p-01\""},
        {NULL, "networkPolicy", NULL},
        {NULL, "conditions", "[]"},
        {NULL, "conditions", "{\"type\":\"Ready\"}"},
        {NULL, "conditions", "[{\"type\":\"Synced\",\"status\":\"True\"}]"},
        {"cond", "status", "\"False\""},
        {"cond", "status", NULL},
        {"cond", "reason", "\"Rendered \""},
        {"cond", "message", NULL},
        {"cond", "observedGeneration", "0"},
    };
    size_t agreed_true = 0;
    for (size_t e = 0; e < MM_ARRAY_LEN(edits); e++)
        for (size_t i = 0; i < MM_ARRAY_LEN(wants); i++) {
            struct json_object *whole = written_with(edits[e].cond, edits[e].key, edits[e].json, false);
            struct json_object *slim = written_with(edits[e].cond, edits[e].key, edits[e].json, true);
            bool expect = whole_says(whole, &wants[i]);
            if (ctrl_status_says(slim, &wants[i]) != expect)
                fail_msg("edit %zu, want %zu: the short status says %d, the whole %d", e, i, !expect, expect);
            agreed_true += expect;
            json_object_put(whole);
            json_object_put(slim);
        }
    assert_true(agreed_true >= 3); /* the table has cases where no write is due */
    struct json_object *none = json_tokener_parse("{\"metadata\":{\"name\":\"p\",\"generation\":1}}");
    assert_int_equal(ctrl_slim(NULL, none), MM_OK);
    assert_false(ctrl_status_says(none, &wants[0])); /* no status: a write is due */
    json_object_put(none);
}

static void short_status_keeps_time_and_stream(void **state)
{
    (void)state;
    struct json_object *p = written_with(NULL, NULL, NULL, true), *st = ctrl_field(p, "status", NULL);
    assert_string_equal(json_object_get_string(ctrl_field(st, CTRL_ST_READY, NULL)), "True");
    assert_string_equal(json_object_get_string(ctrl_field(st, CTRL_ST_SINCE, NULL)), "2026-12-06T14:52:24Z");
    /* stream.c compares status.stream whole */
    struct json_object *want = json_tokener_parse("{\"deployment\":\"maskmesh-stream-p-00\",\"readyReplicas\":1}");
    assert_true(json_object_equal(ctrl_field(st, "stream", NULL), want));
    json_object_put(want);
    /* what the store keeps of this status: 182 bytes, 65 of them status.stream; the whole
       status was 388 (a policy without streams: 117 bytes instead of 323) */
    struct json_object *whole = written_with(NULL, NULL, NULL, false);
    size_t slim_len = strlen(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN));
    size_t whole_len = strlen(json_object_to_json_string_ext(ctrl_field(whole, "status", NULL), JSON_C_TO_STRING_PLAIN));
    assert_true(slim_len <= 182);
    assert_true(whole_len >= 388);
    assert_null(ctrl_field(p, "metadata", "managedFields"));
    json_object_put(whole);
    json_object_put(p);
}

static void fnv_vectors(void **state)
{
    (void)state;
    /* FNV-1a 64 of "a" and "foobar" (the draft-eastlake-fnv vectors), then the separator
     * byte 0xff ctrl_fnv adds after each string */
    const uint64_t prime = 0x100000001b3ull, basis = 0xcbf29ce484222325ull;
    assert_true(ctrl_fnv(basis, "a") == ((0xaf63dc4c8601ec8cull ^ 0xff) * prime));
    assert_true(ctrl_fnv(basis, "foobar") == ((0x85944171f73967e8ull ^ 0xff) * prime));
    /* the separator keeps ("ab", "c") apart from ("a", "bc") */
    assert_true(ctrl_fnv(ctrl_fnv(basis, "ab"), "c") != ctrl_fnv(ctrl_fnv(basis, "a"), "bc"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_and_version_only),
        cmocka_unit_test(without_generation_always_renders),
        cmocka_unit_test(short_status_decides_as_whole),
        cmocka_unit_test(short_status_keeps_time_and_stream),
        cmocka_unit_test(fnv_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
