/* libFuzzer target for the JSON masker's SIMD skim (lib/mask/jskim.c): each input is masked
 * by the portable byte machine (MM_SIMD=off) and by every SIMD level the CPU has, whole and
 * in two chunks split at a point taken from its first byte, under policies that leave most
 * containers untouched (skimmed), remove some (skimmed while suppressed) and report
 * findings with a small value limit (member names are bounded); again with every detector
 * on (the SIMD trigger filter of detect.c); and under one whose objects are touched only
 * through some names (skimmed member by member, constants written over selected values);
 * and under descendant paths beside detectors (names judged, other values read by the
 * detectors, findings without paths as the sidecar counts them).
 * Verdicts, error messages, outputs and findings (rule, path, offset, line) must be the same
 * byte for byte. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask/mask.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy[] =
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: fuzz}\n"
    "spec:\n  selector: {}\n  rules:\n"
    "  - {name: a, fields: [\"$.a\", \"$.o.p\", \"$.x[*].y\"], action: {type: mask}}\n"
    "  - {name: b, fields: [\"$.rm\", \"$[1]\", \"$.o.q\"], action: {type: remove}}\n";

/* the second masker: every built-in detector and a pattern */
static const char detectors[] =
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: det}\n"
    "spec:\n  selector: {}\n  rules:\n"
    "  - {name: c, detectors: [credit_card, email, us_ssn, phone, iban, ipv4, ipv6, jwt, "
    "aws_access_key, bearer_token, github_token, gitlab_token, slack_token, stripe_key, "
    "google_api_key, private_key, url_password, conn_password, uk_nino, ca_sin, in_aadhaar, "
    "passport_mrz], action: {type: redact}}\n"
    "  - {name: d, patterns: [{name: emp, regex: \"EMP-[0-9]{3}\"}], action: {type: mask}}\n";

/* the third: redact and mask by name only (jskim judges the names, and opens the
 * containers of arrays whose elements are alike) */
static const char by_name[] =
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: names}\n"
    "spec:\n  selector: {}\n  rules:\n"
    "  - {name: e, fields: [\"$.a\", \"$.o.p\", \"$.o.y\", \"$.k.a\", \"$.x.y.z\", "
    "\"$.k[*].a\", \"$[*].o.p\", \"$.x[*][*].y\"], action: {type: redact}}\n"
    "  - {name: f, fields: [\"$.o.q\", \"$.k.k\", \"$.k[*].k\"], action: {type: mask}}\n";

/* the fourth: descendant and wildcard paths beside detectors (jskim judges names and hands
 * the other values to the detectors) */
static const char judged[] =
    "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: judged}\n"
    "spec:\n  selector: {}\n  rules:\n"
    "  - {name: g, fields: [\"$..a\", \"$..y\", \"$.k[*].o\"], action: {type: redact}}\n"
    "  - {name: h, fields: [\"$..p\", \"$.x[*]\"], action: {type: mask}}\n"
    "  - {name: i, detectors: [credit_card, email, us_ssn, phone], useMemberNames: true, "
    "action: {type: redact}}\n";

static mm_masker *maskers[4];

typedef struct {
    mm_err rc;
    mm_buf out;
    mm_errbuf eb;
    size_t findings;
    mm_buf seen; /* every finding whole: rule, path, offset, line, applied */
} result;

static void record(void *ctx, const mm_finding *f)
{
    result *r = ctx;
    r->findings++;
    if (mm_buf_printf(&r->seen, "%s %s %s %llu %llu %d\n", f->rule ? f->rule : "-",
                      f->detector ? f->detector : "-", f->path ? f->path : "-",
                      (unsigned long long)f->offset, (unsigned long long)f->line,
                      f->applied) != MM_OK)
        abort();
}

static void mask(mm_masker *masker, const char *level, mm_body_kind kind, const char *in,
                 size_t n, size_t split, bool findings, bool no_paths, result *r)
{
    mm_stream_opts o = {.kind = kind, .max_value = findings ? 24 : 4096,
                        .on_finding = findings ? record : NULL, .finding_ctx = r,
                        .no_finding_paths = no_paths};
    mm_stream *s = NULL;
    setenv("MM_SIMD", level, 1);
    mm_buf_init(&r->out, 0);
    mm_buf_init(&r->seen, 0);
    memset(&r->eb, 0, sizeof(r->eb));
    r->findings = 0;
    if ((r->rc = mm_stream_new(masker, &o, mm_stream_buf_write, &r->out, &s)) != MM_OK)
        abort();
    r->rc = mm_stream_push(s, in, split, &r->eb);
    if (r->rc == MM_OK)
        r->rc = mm_stream_push(s, in + split, n - split, &r->eb);
    if (r->rc == MM_OK)
        r->rc = mm_stream_finish(s, &r->eb);
    mm_stream_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const levels[] = {"avx2", "avx512"};
    for (int m = 0; m < 4 && !maskers[m]; m++) {
        const char *text = m == 3 ? judged : m == 2 ? by_name : m ? detectors : policy;
        mm_policy_set *set = NULL;
        mm_errbuf eb;
        const mm_policy *p[1];
        if (mm_policy_parse_yaml(text, strlen(text), "fuzz", &set, NULL, &eb) != MM_OK)
            abort();
        p[0] = mm_policy_set_get(set, 0);
        if (mm_masker_new(p, 1, NULL, NULL, &maskers[m], &eb) != MM_OK)
            abort();
        mm_policy_set_free(set);
    }
    const char *in = (const char *)data;
    size_t split = size ? data[0] % (size + 1) : 0;
    for (int k = 0; k < 16; k++) {
        mm_masker *masker = maskers[k >> 2];
        mm_body_kind kind = k & 1 ? MM_BODY_NDJSON : MM_BODY_JSON;
        for (int w = 0; w < 2; w++) {
            size_t at = w ? split : size;
            result want, got;
            mask(masker, "off", kind, in, size, at, k & 2, k >= 12, &want);
            for (size_t l = 0; l < 2; l++) {
                mask(masker, levels[l], kind, in, size, at, k & 2, k >= 12, &got);
                if (got.rc != want.rc || strcmp(got.eb.msg, want.eb.msg) != 0 ||
                    got.findings != want.findings ||
                    strcmp(mm_buf_cstr(&got.seen), mm_buf_cstr(&want.seen)) != 0 ||
                    got.out.len != want.out.len ||
                    (got.out.len && memcmp(got.out.data, want.out.data, got.out.len) != 0)) {
                    fprintf(stderr, "%s differs from off: rc %d/%d '%s'/'%s'\n", levels[l],
                            got.rc, want.rc, got.eb.msg, want.eb.msg);
                    abort();
                }
                mm_buf_free(&got.out);
                mm_buf_free(&got.seen);
            }
            mm_buf_free(&want.out);
            mm_buf_free(&want.seen);
        }
    }
    return 0;
}
