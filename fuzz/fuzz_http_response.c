/* libFuzzer target for the sidecar's response side: upstream bytes into the response head
 * parser, the framing rules, the type decision (body_kind_for: ambiguous types read every
 * way, unlisted ones by unlistedTypes) and the body pipe (chunked/length/close framing, gzip,
 * the masking stream) under a fixed policy. The first input byte picks onError, HEAD or not, and
 * where the body is split; the body is fed whole and in two pieces. Errors are fine;
 * crashes, leaks, consuming more than given, and (unless onError is passthrough) a split that
 * changes the verdict, the bytes consumed or, for JSON and unmasked bodies, the output are
 * not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/body.h"
#include "proxy/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy[] =
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: fuzz}\n"
    "spec:\n  selector: {}\n  rules:\n"
    "  - {name: a, fields: [\"$..card\", \"$.items[*].pan\"], action: {type: mask, keepLast: 4}}\n"
    "  - {name: c, detectors: [credit_card, email, us_ssn], action: {type: redact}}\n"
    "  - {name: t, contentTypes: [application/x-www-form-urlencoded], detectors: [email],"
    " action: {type: redact}}\n";

static mm_masker *masker;
static char ztmp[BODY_ZTMP];
static http_resp_head rs;

static bool to_buf(void *ctx, const char *p, size_t n, bool last)
{
    (void)last;
    return mm_buf_append(ctx, p, n) == MM_OK;
}

/* Feeds body[0..n) in two pieces split at `split`; returns the verdict, *used the bytes
 * the body took. */
static body_res run(body_pipe *b, const body_opts *o, const char *body, size_t n, size_t split,
                    size_t *used)
{
    body_res r = BODY_MORE;
    size_t starts[2] = {0, split}, ends[2] = {split, n};

    *used = 0;
    if (body_begin(b, o) != MM_OK)
        return BODY_FAILED;
    for (int k = 0; k < 2 && r == BODY_MORE; k++) {
        size_t u = 0, len = ends[k] - starts[k];
        r = body_feed(b, body + starts[k], len, &u);
        if (u > len || (r == BODY_MORE && u != len))
            abort(); /* consumed more than given, or stopped early without a verdict */
        *used += u;
    }
    if (r == BODY_MORE)
        r = body_end(b);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const mm_on_error errs[3] = {MM_ONERR_BLOCK, MM_ONERR_PASSTHROUGH,
                                        MM_ONERR_REDACT_ALL};
    http_framing f;
    body_pipe a, b;
    mm_buf oa, ob;
    int r;

    if (!masker) {
        mm_policy_set *set = NULL;
        mm_errbuf eb;
        if (mm_policy_parse_yaml(policy, sizeof(policy) - 1, "fuzz", &set, NULL, &eb) != MM_OK)
            abort();
        const mm_policy *p[1] = {mm_policy_set_get(set, 0)};
        if (mm_masker_new(p, 1, NULL, NULL, &masker, &eb) != MM_OK)
            abort();
        mm_policy_set_free(set);
    }
    if (size < 1 || size > (1u << 20))
        return 0;
    uint8_t ctl = data[0];
    const char *s = (const char *)data + 1;
    size--;
    r = http_parse_response(s, size, 65536, &rs);
    if (r > (int)size)
        abort();
    if (r <= 0 || http_response_framing(&rs, ctl & 1, &f) < 0 || f.kind == HTTP_BODY_NONE)
        return 0;
    mm_body_kind kind;
    bool every_way;
    if (!body_kind_for(masker, MM_DIR_RESPONSE, &f, &kind, &every_way))
        return 0; /* refused by unlistedTypes: block */
    const char *body = s + r;
    size_t blen = size - (size_t)r, split = blen ? (size_t)(ctl >> 2) * blen / 63 : 0;
    if (split > blen)
        split = blen;
    body_opts o = {.frame = f.kind == HTTP_BODY_LENGTH    ? BODY_FRAME_LENGTH
                            : f.kind == HTTP_BODY_CHUNKED ? BODY_FRAME_CHUNKED
                                                          : BODY_FRAME_EOF,
                   .length = f.length,
                   .decode = kind != MM_BODY_OPAQUE && (f.content_encoding == 1 ||
                                                         f.content_encoding == 2),
                   .masker = kind != MM_BODY_OPAQUE ? masker : NULL,
                   .gen = 1,
                   .kind = kind,
                   .every_way = every_way,
                   .dir = MM_DIR_RESPONSE,
                   .max_value = 4096,
                   .on_error = errs[(ctl >> 1) % 3]};

    body_init(&a, ztmp);
    body_init(&b, ztmp);
    mm_buf_init(&oa, 0);
    mm_buf_init(&ob, 0);
    o.sink = to_buf;
    o.ctx = &oa;
    size_t ua = 0, ub = 0;
    body_res ra = run(&a, &o, body, blen, blen, &ua);
    o.ctx = &ob;
    body_res rb = run(&b, &o, body, blen, split, &ub);
    /* passthrough depends on whether output already left when the engine gives up, which
     * the split decides; the other onError choices must not care */
    bool strict = o.on_error != MM_ONERR_PASSTHROUGH;
    if (strict && (ra != rb || (ra == BODY_DONE && ua != ub)))
        abort(); /* the split changed the verdict or where the body ends */
    if (strict && ra == BODY_DONE && (kind == MM_BODY_OPAQUE || kind == MM_BODY_JSON) &&
        (oa.len != ob.len || (oa.len && memcmp(oa.data, ob.data, oa.len) != 0)))
        abort(); /* the split changed the output */
    body_cleanup(&a);
    body_cleanup(&b);
    mm_buf_free(&oa);
    mm_buf_free(&ob);
    return 0;
}
