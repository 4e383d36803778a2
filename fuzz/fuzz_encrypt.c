/* libFuzzer target for encrypt and reveal: a policy with FF1 (cards with a Luhn digit, a
 * surrogate, every alphabet) and SIV rules on fields and detectors. The input is masked as
 * JSON; when that succeeds, maskctl reveal's engine must take the output back to a document
 * whose encrypted fields hold the input's values again (checked on a JSON object input by
 * comparing the revealed document with the input re-serialised by json-c; pan's tweak is
 * member owner, checked when owner reached the output unchanged), and reveal on
 * the raw input (anything at all, as JSON and as text) must not crash or leak. */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mask/mask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy[] =
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: fuzz}\n"
    "spec:\n  selector: {}\n  rules:\n"
    "  - {name: card, fields: [$.card], action: {type: encrypt, format: ff1, key: k, "
    "keyVersion: 1, keepFirst: 6, keepLast: 4, luhn: valid}}\n"
    "  - {name: id, fields: [$.id, \"$.ids[*]\"], action: {type: encrypt, mode: ff1, key: k, "
    "keyVersion: 2, surrogate: ID, tweak: {fromRule: true}}}\n"
    "  - {name: tok, fields: [$.tok], detectors: [email], action: {type: encrypt, mode: siv, "
    "key: k, keyVersion: 1, tweak: t}}\n"
    "  - {name: det, detectors: [credit_card], action: {type: encrypt, mode: ff1, key: k, "
    "keyVersion: 2}}\n"
    "  - {name: pan, fields: [$.pan, \"$.rows[*].pan\"], action: {type: encrypt, mode: ff1, "
    "key: k, keyVersion: 1, tweak: {field: owner}}}\n";

static mm_policy_set *set;
static mm_keys *keys;
static mm_masker *masker;
static mm_revealer *revealer;

static void setup(void)
{
    mm_errbuf eb;
    const mm_policy *p;
    if (mm_policy_parse_yaml(policy, sizeof(policy) - 1, "fuzz.yaml", &set, NULL, &eb) != MM_OK ||
        mm_keys_new(&keys) != MM_OK ||
        mm_keys_add(keys, "k.v1", "fuzz-key-version-1-0123", 23) != MM_OK ||
        mm_keys_add(keys, "k.v2", "fuzz-key-version-2-4567", 23) != MM_OK)
        abort();
    p = mm_policy_set_get(set, 0);
    if (mm_masker_new(&p, 1, keys, NULL, &masker, &eb) != MM_OK ||
        mm_revealer_new(&p, 1, keys, 0, &revealer, &eb) != MM_OK)
        abort();
}

/* Whether every value at an FF1/SIV field came back: the input's fields as strings. */
/* Whether member `name` is the same in a and b (both absent counts). */
static bool same_member(json_object *a, json_object *b, const char *name)
{
    json_object *x = NULL, *y = NULL;
    bool hx = json_object_object_get_ex(a, name, &x), hy = json_object_object_get_ex(b, name, &y);
    return hx == hy && (!hx || strcmp(json_object_to_json_string(x),
                                      json_object_to_json_string(y)) == 0);
}

static void check_round_trip(const char *in, size_t n, mm_buf *masked, mm_buf *revealed)
{
    json_object *a = json_tokener_parse(in), *b = NULL, *m = NULL;
    static const char *const fields[] = {"card", "id", "tok", "pan"};
    if (!a || strlen(in) != n || !json_object_is_type(a, json_type_object))
        goto out;
    if (!(b = json_tokener_parse(mm_buf_cstr(revealed))) ||
        !(m = json_tokener_parse(mm_buf_cstr(masked))))
        abort(); /* the sidecar and reveal write JSON */
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_object *x, *y;
        if (!json_object_object_get_ex(a, fields[i], &x) || !json_object_is_type(x, json_type_string))
            continue;
        if (strcmp(fields[i], "pan") == 0 && !same_member(a, m, "owner"))
            continue; /* a rule changed the tweak's member: documented as unrevealable */
        const char *v = json_object_get_string(x), *w;
        if (!json_object_object_get_ex(b, fields[i], &y))
            abort(); /* reveal dropped a member */
        w = json_object_get_string(y);
        /* a value masked instead of encrypted (non-ASCII, too short) holds '*': not
         * reversible by design; every other one must come back exactly */
        if (strchr(v, '*') || strchr(w, '*'))
            continue;
        if (strcmp(w, v) != 0)
            abort();
    }
out:
    json_object_put(a);
    json_object_put(b);
    json_object_put(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_stream_opts o = {.kind = MM_BODY_JSON, .max_value = 4096};
    mm_buf masked, back;
    mm_errbuf eb;
    size_t failed;
    char *in;

    if (!masker)
        setup();
    if (!(in = malloc(size + 1)))
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    mm_buf_init(&masked, 0);
    mm_buf_init(&back, 0);
    if (mm_mask_buffer(masker, &o, in, size, &masked, &eb) == MM_OK && masked.len &&
        mm_reveal_buffer(revealer, MM_BODY_JSON, mm_buf_cstr(&masked), masked.len, &back, NULL,
                         NULL, &failed, &eb) == MM_OK)
        check_round_trip(in, size, &masked, &back);
    mm_buf_reset(&back);
    (void)mm_reveal_buffer(revealer, MM_BODY_JSON, in, size, &back, NULL, NULL, &failed, &eb);
    mm_buf_reset(&back);
    (void)mm_reveal_buffer(revealer, MM_BODY_TEXT, in, size, &back, NULL, NULL, &failed, &eb);
    mm_buf_free(&masked);
    mm_buf_free(&back);
    free(in);
    return 0;
}
