/* libFuzzer target for every parser of lib/policy: the input as policy YAML, as policy JSON,
 * as a JSONPath and as a downward-API labels file. Errors are fine; crashes, leaks and
 * hangs are not. */
#include <stdint.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_policy_set *set = NULL;
    mm_diags *d = NULL;
    mm_errbuf eb;
    char *s;

    if (mm_diags_new(&d) != MM_OK)
        return 0;
    if (mm_policy_parse_yaml((const char *)data, size, "fuzz", &set, d, &eb) == MM_OK) {
        for (size_t i = 0; i < mm_policy_set_count(set); i++)
            mm_policy_lint(mm_policy_set_get(set, i), "fuzz", d);
    }
    mm_policy_set_free(set);
    set = NULL;
    mm_policy_parse_json((const char *)data, size, "fuzz", &set, d, &eb);
    mm_policy_set_free(set);
    mm_diags_free(d);

    if ((s = mm_memdup(data, size))) {
        mm_path p = {0};
        mm_labels l = {0};
        if (strlen(s) == size && mm_path_parse(s, &p, &eb) == MM_OK)
            mm_path_clear(&p);
        if (mm_labels_parse(s, size, "fuzz", &l, &eb) == MM_OK)
            mm_labels_clear(&l);
        mm_free(s);
    }
    return 0;
}
