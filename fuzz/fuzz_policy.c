/* libFuzzer target for every parser of lib/policy: the input as policy YAML, as policy JSON
 * (text and json-c object), as a JSONPath and as a downward-API labels file; what parses is
 * linted and matched, so the model's consumers run on it too. Errors are fine; crashes,
 * leaks and hangs are not. */
#include <stdint.h>
#include <string.h>

#include <json-c/json.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void use_set(const mm_policy_set *set, const mm_labels *labels, mm_diags *d)
{
    for (size_t i = 0; i < mm_policy_set_count(set); i++) {
        const mm_policy *p = mm_policy_set_get(set, i);
        mm_policy_lint(p, "fuzz", d);
        mm_selector_matches(&p->selector, labels);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_policy_set *set = NULL;
    mm_diags *d = NULL;
    mm_labels labels = {0};
    mm_errbuf eb;
    char *s;

    if (size > MM_POLICY_FILE_MAX || mm_diags_new(&d) != MM_OK)
        return 0;
    if (mm_labels_parse((const char *)data, size, "fuzz", &labels, &eb) != MM_OK)
        memset(&labels, 0, sizeof(labels));

    if (mm_policy_parse_yaml((const char *)data, size, "fuzz", &set, d, &eb) == MM_OK)
        use_set(set, &labels, d);
    mm_policy_set_free(set);
    set = NULL;
    if (mm_policy_parse_json((const char *)data, size, "fuzz", &set, d, &eb) == MM_OK)
        use_set(set, &labels, d);
    mm_policy_set_free(set);
    set = NULL;

    if ((s = mm_memdup(data, size))) {
        mm_path p = {0};
        struct json_object *obj = json_tokener_parse(s);
        mm_policy *one = NULL;
        if (obj && mm_policy_from_json(obj, "fuzz", &one, d, &eb) == MM_OK)
            mm_policy_lint(one, "fuzz", d);
        mm_policy_free(one);
        json_object_put(obj);
        if (strlen(s) == size && mm_path_parse(s, &p, &eb) == MM_OK)
            mm_path_clear(&p);
        mm_free(s);
    }
    mm_labels_clear(&labels);
    mm_diags_free(d);
    return 0;
}
