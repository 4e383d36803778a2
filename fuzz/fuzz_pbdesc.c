/* libFuzzer target for the descriptor-set reader (lib/mask/pbdesc.c): any bytes either fail
 * with a message or give tables whose every method selects types the set holds; a set that
 * parses masks an empty and a one-field message of each method's types without error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mask/mask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mm_masker *masker;

static void init(void)
{
    static const char policy[] =
        "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: fuzz}\n"
        "spec:\n  selector: {}\n  direction: both\n  rules:\n"
        "  - {name: a, fields: [\"$..name\", \"$.*[*]\"], detectors: [email], "
        "action: {type: redact}}\n";
    mm_policy_set *set = NULL;
    mm_errbuf eb;
    const mm_policy *p;
    if (mm_policy_parse_yaml(policy, strlen(policy), "fuzz", &set, NULL, &eb) != MM_OK)
        abort();
    p = mm_policy_set_get(set, 0);
    if (mm_masker_new(&p, 1, NULL, &(mm_masker_opts){0}, &masker, &eb) != MM_OK)
        abort();
    mm_policy_set_free(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_pbdesc *d = NULL;
    mm_errbuf eb;
    mm_buf out;
    if (!masker)
        init();
    if (mm_pbdesc_parse(data, size, &d, &eb) != MM_OK) {
        if (!eb.msg[0])
            abort(); /* an error always says what */
        return 0;
    }
    mm_buf_init(&out, 0);
    for (size_t i = 0; i < mm_pbdesc_method_count(d); i++) {
        static const char frames[] = "\0\0\0\0\0" "\0\0\0\0\x02\x0a\x00";
        for (int dir = MM_DIR_RESPONSE; dir <= MM_DIR_REQUEST; dir++) {
            mm_stream_opts o = {.kind = MM_BODY_GRPC, .direction = (mm_direction)dir,
                                .proto = d, .grpc_method = mm_pbdesc_method_path(d, i)};
            mm_err rc = mm_mask_buffer(masker, &o, frames, 5, &out, &eb);
            if (rc != MM_OK) /* an empty message is every type's */
                abort();
            /* field 1 empty: any type (or an unknown field) but a wrong wire type for it */
            rc = mm_mask_buffer(masker, &o, frames + 5, 7, &out, &eb);
            if (rc != MM_OK && rc != MM_EPARSE)
                abort();
        }
    }
    mm_buf_free(&out);
    mm_pbdesc_free(d);
    return 0;
}
