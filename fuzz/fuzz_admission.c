/* libFuzzer target for lib/admission: the input as an AdmissionReview (decoded, then the
 * mutate and validate decisions), its pod through the injection with the patch applied and
 * injected again (must be "already injected"), as a JSON Patch on a fixed document, and as
 * YAML (parsed and emitted). Errors are fine; crashes, leaks, hangs and a doubled injection
 * are not. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admission/admission.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inject_twice(json_object *pod, const mm_adm_config *cfg)
{
    mm_adm_opts opts = {.namespace_opted_in = true};
    mm_adm_result r = {0}, r2 = {0};
    json_object *copy = NULL;
    mm_errbuf eb;

    if (mm_adm_inject(pod, cfg, &opts, &r, &eb) != MM_OK || !r.patch)
        goto out;
    if (json_object_deep_copy(pod, &copy, NULL) != 0)
        goto out;
    if (mm_adm_patch_apply(&copy, r.patch, &eb) != MM_OK)
        abort(); /* the injection's own patch must apply to its pod */
    if (mm_adm_inject(copy, cfg, &opts, &r2, &eb) == MM_OK && r2.reason != MM_ADM_ALREADY_INJECTED)
        abort(); /* never twice */
out:
    mm_adm_result_clear(&r);
    mm_adm_result_clear(&r2);
    json_object_put(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_adm_config cfg;
    mm_adm_review rv;
    mm_adm_reason reason;
    mm_errbuf eb;
    mm_buf out;
    json_object *docs = NULL, *patch, *doc;
    bool allowed;

    if (mm_adm_config_init(&cfg) != MM_OK)
        return 0;
    mm_buf_init(&out, 0);
    if (mm_adm_review_parse((const char *)data, size, &rv, &eb) == MM_OK) {
        mm_adm_mutate(&rv, &cfg, false, &out, &reason, &eb);
        mm_buf_reset(&out);
        mm_adm_validate_policy(&rv, &out, &allowed, &eb);
        if (rv.object)
            inject_twice(rv.object, &cfg);
        mm_adm_review_clear(&rv);
    }
    if (size < (1u << 20)) {
        char *s = mm_malloc(size + 1);
        if (s) {
            memcpy(s, data, size);
            s[size] = '\0';
            if ((patch = json_tokener_parse(s)) != NULL) {
                doc = json_tokener_parse("{\"a\":[1,{\"b~/c\":null}],\"metadata\":{},\"spec\":{\"containers\":[{\"name\":\"x\"}]}}");
                if (doc) {
                    mm_adm_patch_apply(&doc, patch, &eb);
                    json_object_put(doc);
                }
                if (json_object_is_type(patch, json_type_object))
                    inject_twice(patch, &cfg);
                json_object_put(patch);
            }
            mm_free(s);
        }
    }
    if (mm_adm_yaml_parse((const char *)data, size, "fuzz", &docs, &eb) == MM_OK) {
        mm_buf_reset(&out);
        mm_adm_yaml_emit(docs, &out, &eb);
        json_object_put(docs);
    }
    mm_buf_free(&out);
    mm_adm_config_clear(&cfg);
    return 0;
}
