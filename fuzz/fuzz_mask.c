/* libFuzzer target for the JSON stream masker: fixed policies with every path form,
 * detectors, patterns, remove and an audit policy, and the same again with default denies
 * (one removing, one in audit mode) beside them. The input is masked whole (with findings,
 * so their paths are built) and in two chunks split at a point taken from its first byte;
 * verdicts, outputs and the number of findings must agree, and when masking succeeds the
 * output must be valid JSON (json-c re-parses it). */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mask/mask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy[] =
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: fuzz}\n"
    "spec:\n  selector: {}\n  rules:\n"
    "  - {name: a, fields: [\"$..pan\", \"$.items[*].card\", \"$.o.*\"], action: {type: mask, keepLast: 4}}\n"
    "  - {name: b, fields: [\"$.rm\", \"$.list[1]\"], action: {type: remove}}\n"
    "  - {name: c, detectors: [credit_card, email, us_ssn, phone, iban, ipv4, ipv6, jwt, "
    "aws_access_key, bearer_token, github_token, gitlab_token, slack_token, stripe_key, "
    "google_api_key, private_key, url_password, conn_password, uk_nino, ca_sin, in_aadhaar, "
    "passport_mrz], useMemberNames: true, action: {type: redact}}\n"
    "  - {name: d, patterns: [{name: emp, regex: \"EMP-[0-9]{3}\"}], action: {type: remove}}\n"
    "  - {name: e, fields: [\"$..['x y']\", \"$.arr[2]\", \"$[0]\", \"$..z.*\"], action: {type: hash}}\n"
    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: audit}\n"
    "spec:\n  selector: {}\n  mode: audit\n  rules:\n"
    "  - {name: f, fields: [\"$.a\", \"$..rm\"], detectors: [email], action: {type: remove}}\n";

/* appended to `policy` for the second masker */
static const char deny[] =
    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: deny}\n"
    "spec:\n  selector: {}\n  defaultDeny:\n    body: {fields: [\"$.id\", \"$.items[*]\", \"$..keep\", "
    "\"$[1]\"], action: {type: remove}}\n"
    "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: deny-audit}\n"
    "spec:\n  selector: {}\n  mode: audit\n  defaultDeny: {body: {action: {type: mask}}}\n";

static mm_masker *maskers[2];

static void count(void *ctx, const mm_finding *f)
{
    (*(size_t *)ctx)++;
    if (f->path && f->path[0] != '$')
        abort(); /* a finding's path is a JSONPath */
}

static mm_err mask(mm_masker *masker, const char *in, size_t n, size_t split, mm_buf *out,
                   size_t *findings)
{
    mm_stream_opts o = {.kind = MM_BODY_JSON, .max_value = 4096, .on_finding = count,
                        .finding_ctx = findings};
    mm_stream *s = NULL;
    mm_errbuf eb;
    mm_err rc = mm_stream_new(masker, &o, mm_stream_buf_write, out, &s);
    if (rc != MM_OK)
        return rc;
    rc = mm_stream_push(s, in, split, &eb);
    if (rc == MM_OK)
        rc = mm_stream_push(s, in + split, n - split, &eb);
    if (rc == MM_OK)
        rc = mm_stream_finish(s, &eb);
    mm_stream_free(s);
    return rc;
}

static mm_masker *compile(const char *text, size_t len)
{
    mm_policy_set *set = NULL;
    mm_masker *m = NULL;
    mm_errbuf eb;
    const mm_policy *p[4];
    if (mm_policy_parse_yaml(text, len, "fuzz", &set, NULL, &eb) != MM_OK)
        abort();
    for (size_t i = 0; i < mm_policy_set_count(set); i++)
        p[i] = mm_policy_set_get(set, i);
    if (mm_masker_new(p, mm_policy_set_count(set), NULL, NULL, &m, &eb) != MM_OK)
        abort();
    mm_policy_set_free(set);
    return m;
}

static void one(mm_masker *masker, const uint8_t *data, size_t size)
{
    mm_buf whole, parts;
    size_t split = size ? data[0] % (size + 1) : 0;
    mm_buf_init(&whole, 0);
    mm_buf_init(&parts, 0);
    size_t fa = 0, fb = 0;
    mm_err a = mask(masker, (const char *)data, size, size, &whole, &fa);
    mm_err b = mask(masker, (const char *)data, size, split, &parts, &fb);
    if (a != b)
        abort(); /* chunking changed the verdict */
    if (a == MM_OK && fa != fb)
        abort(); /* chunking changed the findings */
    if (a == MM_OK) {
        if (whole.len != parts.len || (whole.len && memcmp(whole.data, parts.data, whole.len) != 0))
            abort(); /* chunking changed the output */
        size_t i = 0;
        while (i < whole.len && strchr(" \t\r\n", whole.data[i]))
            i++;
        if (i < whole.len) {
            struct json_tokener *tok = json_tokener_new_ex(MM_MASK_MAX_DEPTH + 2);
            /* the NUL after the data ends the input: json-c cannot otherwise know that a
             * bare top-level number is complete */
            struct json_object *obj = json_tokener_parse_ex(tok, whole.data, (int)whole.len + 1);
            if (json_tokener_get_error(tok) != json_tokener_success)
                abort(); /* masking produced invalid JSON */
            json_object_put(obj);
            json_tokener_free(tok);
        }
    }
    mm_buf_free(&whole);
    mm_buf_free(&parts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!maskers[0]) {
        char both[sizeof(policy) + sizeof(deny)];
        memcpy(both, policy, sizeof(policy) - 1);
        memcpy(both + sizeof(policy) - 1, deny, sizeof(deny));
        maskers[0] = compile(policy, sizeof(policy) - 1);
        maskers[1] = compile(both, sizeof(policy) + sizeof(deny) - 2);
    }
    one(maskers[0], data, size);
    one(maskers[1], data, size);
    return 0;
}
