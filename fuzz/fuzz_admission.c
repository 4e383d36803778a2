/* libFuzzer target for lib/admission: the input as an AdmissionReview (decoded by the strict
 * reader, which must build the tree json-c builds for any input it accepts; then the mutate
 * and validate decisions; and decoded by the /mutate-pods reader, which must accept exactly
 * what the full reader accepts and mutate alike), its pod through the injection with the patch applied and
 * injected again (must be "already injected"), as a JSON Patch on a fixed document, and as
 * YAML (parsed and emitted). The patch's text is what json-c writes of its tree. Errors are fine; crashes, leaks, hangs and a doubled injection
 * are not. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admission/admission.h"

/* deeper than the strict reader's own limit, so json-c never refuses first */
#define ADM_FUZZ_DEPTH 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inject_twice(json_object *pod, const mm_adm_config *cfg)
{
    mm_adm_opts opts = {.namespace_opted_in = true};
    mm_adm_result r = {0}, r2 = {0};
    json_object *copy = NULL;
    mm_errbuf eb;

    if (mm_adm_inject(pod, cfg, &opts, &r, &eb) != MM_OK || !r.patch)
        goto out;
    {
        /* the patch is written as text by lib/admission's own writer: json-c writes the tree
         * parsed from it back to the same bytes (escaping of any name a pod carries), and the
         * webhook's text-only injection gives the same text */
        mm_adm_opts text_only = opts;
        mm_adm_result t = {0};
        size_t len;
        const char *js = json_object_to_json_string_length(
            r.patch, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!js || len != r.patch_len || memcmp(js, r.patch_json, len) != 0)
            abort();
        text_only.patch_text_only = true;
        if (mm_adm_inject(pod, cfg, &text_only, &t, &eb) == MM_OK &&
            (t.patch || t.patch_len != r.patch_len || memcmp(t.patch_json, r.patch_json, len) != 0))
            abort();
        mm_adm_result_clear(&t);
    }
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

/* The strict reader accepted data: json-c must accept it too and build an equal tree. */
static void same_as_json_c(const uint8_t *data, size_t size, json_object *root)
{
    json_tokener *tok = json_tokener_new_ex(ADM_FUZZ_DEPTH);
    json_object *ref;

    if (!tok)
        return;
    ref = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    if (!ref || json_tokener_get_parse_end(tok) != size || !json_object_equal(ref, root))
        abort();
    json_object_put(ref);
    json_tokener_free(tok);
}

/* /mutate-pods' reader leaves out what mutate never reads: same verdict, same answer. */
static void pod_reader_agrees(const uint8_t *data, size_t size, bool full_ok,
                              mm_err full_rc, const mm_buf *full, const mm_adm_config *cfg)
{
    mm_adm_review rv;
    mm_adm_reason reason;
    mm_errbuf eb;
    mm_buf out;
    bool ok = mm_adm_review_parse_pod((const char *)data, size, &rv, &eb) == MM_OK;

    if (ok != full_ok)
        abort();
    if (!ok)
        return;
    mm_buf_init(&out, 0);
    if (mm_adm_mutate(&rv, cfg, false, &out, &reason, &eb) != full_rc ||
        (full_rc == MM_OK && (out.len != full->len || memcmp(out.data, full->data, out.len) != 0)))
        abort();
    mm_buf_free(&out);
    mm_adm_review_clear(&rv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_adm_config cfg;
    mm_adm_review rv;
    mm_adm_reason reason;
    mm_errbuf eb;
    mm_buf out;
    json_object *docs = NULL, *patch, *doc;
    bool allowed, full_ok = false;
    mm_err full_rc = MM_OK;

    if (mm_adm_config_init(&cfg) != MM_OK)
        return 0;
    mm_buf_init(&out, 0);
    if (mm_adm_review_parse((const char *)data, size, &rv, &eb) == MM_OK) {
        full_ok = true;
        if (size < (1u << 20))
            same_as_json_c(data, size, rv.root);
        full_rc = mm_adm_mutate(&rv, &cfg, false, &out, &reason, &eb);
    }
    if (size < (1u << 20))
        pod_reader_agrees(data, size, full_ok, full_rc, &out, &cfg);
    if (full_ok) {
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
