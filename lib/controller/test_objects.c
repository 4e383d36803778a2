/* Unit tests for lib/controller's policy comparison that keeps the controller's own status
 * patches from queueing its namespace again (ctrl_status_only, objects.c), and the hash of
 * the status last written (ctrl_fnv) against the published FNV-1a 64 vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
        cmocka_unit_test(fnv_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
