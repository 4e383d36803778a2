/* libFuzzer target for the protobuf and gRPC maskers (lib/mask/proto.c, grpc.c) on the test
 * service's descriptor set (tests/grpc/shop.protoset, read at start; run from the repository
 * top, as hack/run-fuzz.sh does). The input is a gRPC response stream of
 * /shop.v1.Customers/ListCustomers (gzip allowed), masked whole and in two chunks split at a
 * point its first byte picks: verdicts and outputs must agree. When masking succeeds, each
 * output message must itself be valid protobuf of its type (masked again without error). The
 * same input is also masked as one shop.v1.Customer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mask/mask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mm_masker *masker;
static mm_pbdesc *desc;

static mm_err to_buf(void *ctx, const char *d, size_t n)
{
    return mm_buf_append(ctx, d, n);
}

static void init(void)
{
    static const char policy[] =
        "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: fuzz}\n"
        "spec:\n  selector: {}\n  rules:\n"
        "  - {name: a, fields: [\"$..ssn\", \"$.labels.ssn\", \"$.codes\"], action: {type: redact}}\n"
        "  - {name: b, fields: [\"$.payments[*].card\", \"$..cvv\", \"$.phones[1]\"], "
        "action: {type: remove}}\n"
        "  - {name: c, fields: [\"$.cards_by_id[*].number\"], action: {type: mask, keepLast: 4}}\n"
        "  - {name: d, detectors: [credit_card, email, us_ssn], action: {type: hash}}\n"
        "---\napiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: deny}\n"
        "spec:\n  selector: {}\n  defaultDeny:\n    body: {fields: [\"$.id\", \"$..name\", "
        "\"$.address\"], action: {type: mask}}\n";
    mm_policy_set *set = NULL;
    mm_errbuf eb;
    const mm_policy *p[2];
    if (mm_policy_parse_yaml(policy, strlen(policy), "fuzz", &set, NULL, &eb) != MM_OK ||
        mm_pbdesc_load("tests/grpc/shop.protoset", &desc, &eb) != MM_OK)
        abort();
    p[0] = mm_policy_set_get(set, 0);
    p[1] = mm_policy_set_get(set, 1);
    if (mm_masker_new(p, 2, NULL, &(mm_masker_opts){0}, &masker, &eb) != MM_OK)
        abort();
    mm_policy_set_free(set);
}

static mm_err mask(const mm_stream_opts *o, const char *in, size_t n, size_t split,
                   mm_buf *out)
{
    mm_stream *s = NULL;
    mm_errbuf eb;
    mm_err rc = mm_stream_new(masker, o, to_buf, out, &s);
    if (rc != MM_OK)
        return rc;
    if ((rc = mm_stream_push(s, in, split, &eb)) == MM_OK &&
        (rc = mm_stream_push(s, in + split, n - split, &eb)) == MM_OK)
        rc = mm_stream_finish(s, &eb);
    mm_stream_free(s);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mm_buf a, b, again;
    const char *in = (const char *)data;
    size_t split = size ? data[0] % (size + 1) : 0;
    mm_stream_opts o = {.kind = MM_BODY_GRPC, .max_message = 1 << 16, .grpc_encoding = "gzip",
                        .grpc_method = "/shop.v1.Customers/ListCustomers"};
    if (!masker)
        init();
    o.proto = desc;
    mm_buf_init(&a, 0);
    mm_buf_init(&b, 0);
    mm_buf_init(&again, 0);
    mm_err ra = mask(&o, in, size, size, &a), rb = mask(&o, in, size, split, &b);
    if (ra != rb || (ra == MM_OK && (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len)))))
        abort();
    if (ra == MM_OK && mask(&o, a.data ? a.data : "", a.len, a.len, &again) != MM_OK)
        abort(); /* what the masker wrote is valid protobuf of the type */
    mm_buf_reset(&a);
    mm_buf_reset(&again);
    o.kind = MM_BODY_PROTOBUF;
    o.proto_message = "shop.v1.Customer";
    if (mask(&o, in, size, split, &a) == MM_OK &&
        mask(&o, a.data ? a.data : "", a.len, a.len, &again) != MM_OK)
        abort();
    mm_buf_free(&a);
    mm_buf_free(&b);
    mm_buf_free(&again);
    return 0;
}
