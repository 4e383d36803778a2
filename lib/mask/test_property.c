/* Property tests for the built-in detectors (issue 13): for every detector, valid values
 * are generated (checksums computed here, from the published algorithms) and put in many
 * contexts: after and before numbers, dates, amounts, other detectors' values, punctuation,
 * inside JSON strings with escapes; each text is masked through the streaming API split at
 * every byte. No 6-character piece of the value may survive anywhere in the output unless
 * the context itself holds it. Failure output names the detector, the context and the split,
 * never the value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "mask/mask.h"

#define VALUES_PER_DETECTOR 2

/* Under valgrind (make test-valgrind, ~50x slower) fewer values and split points: the
 * property is the same, the sampling coarser; the other runs split at every byte. */
static bool slow_run(void)
{
    const char *v = getenv("MM_VALGRIND");
    return v && *v == '1';
}
#define MAXV 512

/* ---- a deterministic generator ---------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static char rdigit(void) { return (char)('0' + rnd(10)); }
static char ralnum(void)
{
    static const char a[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    return a[rnd(62)];
}

static char luhn_digit(const char *d, size_t n) /* the check digit for d[0..n) */
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v = (unsigned)(d[n - 1 - i] - '0');
        if (!(i & 1)) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return (char)('0' + (10 - sum % 10) % 10);
}

/* digits written in groups of `sizes` joined by sep (0: none) */
static void grouped(char *out, const char *d, const int *sizes, int ng, char sep)
{
    size_t o = 0, k = 0;
    for (int g = 0; g < ng; g++) {
        if (g && sep)
            out[o++] = sep;
        for (int j = 0; j < sizes[g]; j++)
            out[o++] = d[k++];
    }
    out[o] = '\0';
}

static const char seps[] = {0, ' ', '-', '.'};

static void gen_card(char *v)
{
    static const char *const pre[] = {"4", "51", "55", "2221", "6011", "3528", "62", "1"};
    static const int len[] = {16, 16, 16, 16, 16, 16, 16, 15};
    static const int g16[] = {4, 4, 4, 4}, g15[] = {4, 5, 6};
    char d[20];
    int k = (int)rnd(8), n = len[k];
    size_t p = strlen(pre[k]);
    memcpy(d, pre[k], p);
    for (int i = (int)p; i < n - 1; i++)
        d[i] = rdigit();
    d[n - 1] = luhn_digit(d, (size_t)n - 1);
    grouped(v, d, n == 16 ? g16 : g15, n == 16 ? 4 : 3, seps[rnd(4)]);
}

static void gen_ssn(char *v)
{
    static const int g[] = {3, 2, 4};
    char d[10];
    snprintf(d, sizeof(d), "%03u%02u%04u", 1 + rnd(665), 1 + rnd(99), 1 + rnd(9999));
    grouped(v, d, g, 3, seps[1 + rnd(3)]);
}

static void gen_email(char *v)
{
    static const char *const tld[] = {"com", "co.uk", "xn--p1ai", "io"};
    snprintf(v, MAXV, "u%c%c%c.x%c@mail%c%c.example.%s", ralnum(), ralnum(), ralnum(), ralnum(),
             rdigit(), rdigit(), tld[rnd(4)]);
}

static void gen_phone(char *v)
{
    unsigned a = 200 + rnd(800), e = 200 + rnd(800), l = rnd(10000);
    switch (rnd(4)) {
    case 0: snprintf(v, MAXV, "(%u) %u-%04u", a, e, l); break;
    case 1: snprintf(v, MAXV, "%u-%u-%04u", a, e, l); break;
    case 2: snprintf(v, MAXV, "+1 %u %u %04u", a, e, l); break;
    default: snprintf(v, MAXV, "+44 20 %04u %04u", rnd(10000), l); break;
    }
}

static unsigned mod97(const char *s) /* of the IBAN rearranged, letters as 10..35 */
{
    unsigned m = 0;
    for (; *s; s++)
        m = *s >= 'A' ? (m * 100 + (unsigned)(*s - 'A' + 10)) % 97 : (m * 10 + (unsigned)(*s - '0')) % 97;
    return m;
}

static void gen_iban(char *v)
{
    char bban[19], re[32], raw[23];
    static const int g[] = {4, 4, 4, 4, 4, 2};
    for (int i = 0; i < 18; i++)
        bban[i] = rdigit();
    bban[18] = '\0';
    snprintf(re, sizeof(re), "%sDE00", bban);
    snprintf(raw, sizeof(raw), "DE%02u%s", 98 - mod97(re), bban);
    char sep = seps[rnd(3)];
    size_t o = 0, k = 0;
    for (int i = 0; i < 6; i++) {
        if (i && sep)
            v[o++] = sep;
        for (int j = 0; j < g[i]; j++)
            v[o++] = raw[k++];
    }
    v[o] = '\0';
}

static void gen_ipv4(char *v) { snprintf(v, MAXV, "10.%u.%u.%u", rnd(256), rnd(256), 1 + rnd(254)); }
static void gen_ipv6(char *v) { snprintf(v, MAXV, "2001:db8:%x::%x", rnd(65536), 1 + rnd(65535)); }

static void gen_jwt(char *v)
{
    char p[24];
    for (int i = 0; i < 22; i++)
        p[i] = ralnum();
    p[22] = '\0';
    snprintf(v, MAXV, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI%s.%s", p, p);
}

static void gen_aws(char *v)
{
    static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    memcpy(v, "AKIA", 4);
    for (int i = 4; i < 20; i++)
        v[i] = b32[rnd(32)];
    v[20] = '\0';
}

static void gen_token(char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = ralnum();
    v[n] = '\0';
}

static void gen_github(char *v)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    char e[31];
    gen_token(e, 30);
    uLong c = crc32(0L, (const Bytef *)e, 30);
    char cs[7];
    for (int k = 5; k >= 0; k--) {
        cs[k] = b62[c % 62];
        c /= 62;
    }
    cs[6] = '\0';
    snprintf(v, MAXV, "gh%c_%s%s", "pousr"[rnd(5)], e, cs);
}

static void gen_gitlab(char *v) { memcpy(v, "glpat-", 6); gen_token(v + 6, 20); }
static void gen_slack(char *v)
{
    char t[25];
    gen_token(t, 24);
    snprintf(v, MAXV, "xoxb-%u%u-%u%u-%s", 100000 + rnd(900000), rnd(1000), 100000 + rnd(900000), rnd(1000), t);
}
static void gen_stripe(char *v) { memcpy(v, rnd(2) ? "sk_live_" : "rk_live_", 8); gen_token(v + 8, 24); }
static void gen_google(char *v) { memcpy(v, "AIza", 4); gen_token(v + 4, 35); }

static void gen_pem(char *v)
{
    char a[41], b[41];
    gen_token(a, 40);
    gen_token(b, 40);
    snprintf(v, MAXV, "-----BEGIN EC PRIVATE KEY-----\n%s\n%s\n-----END EC PRIVATE KEY-----", a, b);
}

static void gen_secret(char *v) { gen_token(v, 12); v[3] = '!'; }

static void gen_nino(char *v)
{
    snprintf(v, MAXV, "%c%c%06u%c", "ABCEGHJKLMNPRSTWXYZ"[rnd(19)], "ABCEGHJKLMNPRSTWXY"[rnd(18)],
             rnd(1000000), "ABCD"[rnd(4)]);
    if (!strncmp(v, "GB", 2) || !strncmp(v, "NT", 2) || !strncmp(v, "TN", 2) || !strncmp(v, "KN", 2) ||
        !strncmp(v, "NK", 2) || !strncmp(v, "BG", 2))
        v[0] = 'A';
}

static void gen_sin(char *v)
{
    static const int g[] = {3, 3, 3};
    char d[10];
    d[0] = (char)('1' + rnd(7));
    for (int i = 1; i < 8; i++)
        d[i] = rdigit();
    d[8] = luhn_digit(d, 8);
    d[9] = '\0';
    grouped(v, d, g, 3, rnd(2) ? ' ' : '-');
}

static const unsigned char vd[10][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
    {3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
    {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
    {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
static const unsigned char vp[8][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}, {5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
    {8, 9, 1, 6, 0, 4, 3, 5, 2, 7}, {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
    {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}};
static const unsigned char vinv[10] = {0, 4, 3, 2, 1, 5, 6, 7, 8, 9};

static void gen_aadhaar(char *v)
{
    static const int g[] = {4, 4, 4};
    char d[13];
    unsigned c = 0;
    d[0] = (char)('2' + rnd(8));
    for (int i = 1; i < 11; i++)
        d[i] = rdigit();
    for (int i = 0; i < 11; i++)
        c = vd[c][vp[(i + 1) % 8][d[10 - i] - '0']];
    d[11] = (char)('0' + vinv[c]);
    d[12] = '\0';
    grouped(v, d, g, 3, rnd(2) ? ' ' : '-');
}

static char mrz_digit(const char *d, size_t n)
{
    static const unsigned w[3] = {7, 3, 1};
    unsigned sum = 0;
    for (size_t k = 0; k < n; k++) {
        char c = d[k];
        unsigned x = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'A' && c <= 'Z' ? (unsigned)(c - 'A' + 10) : 0;
        sum += x * w[k % 3];
    }
    return (char)('0' + sum % 10);
}

static void gen_mrz(char *v)
{
    char l[45], comp[40];
    snprintf(l, sizeof(l), "%c%c%07u", 'A' + rnd(26), 'A' + rnd(26), rnd(10000000));
    l[9] = mrz_digit(l, 9);
    memcpy(l + 10, "UTO", 3);
    snprintf(l + 13, 7, "%02u%02u%02u", rnd(100), 1 + rnd(12), 1 + rnd(28));
    l[19] = mrz_digit(l + 13, 6);
    l[20] = "MF<"[rnd(3)];
    snprintf(l + 21, 7, "%02u%02u%02u", rnd(100), 1 + rnd(12), 1 + rnd(28));
    l[27] = mrz_digit(l + 21, 6);
    memcpy(l + 28, "ZE184226B<<<<<", 14);
    l[42] = mrz_digit(l + 28, 14);
    memcpy(comp, l, 10);
    memcpy(comp + 10, l + 13, 7);
    memcpy(comp + 17, l + 21, 22);
    l[43] = mrz_digit(comp, 39);
    l[44] = '\0';
    memcpy(v, l, 45);
}

/* A detector, its generator, and what stands around the value in its own text (a bearer
 * token needs its scheme, a password its URL). */
static const struct {
    const char *det;
    void (*gen)(char *v);
    const char *pre, *post;
} dets[] = {
    {"credit_card", gen_card, "", ""},         {"us_ssn", gen_ssn, "", ""},
    {"email", gen_email, "", ""},              {"phone", gen_phone, "", ""},
    {"iban", gen_iban, "", ""},                {"ipv4", gen_ipv4, "", ""},
    {"ipv6", gen_ipv6, "", ""},                {"jwt", gen_jwt, "", ""},
    {"aws_access_key", gen_aws, "", ""},       {"bearer_token", gen_jwt, "Bearer ", ""},
    {"github_token", gen_github, "", ""},      {"gitlab_token", gen_gitlab, "", ""},
    {"slack_token", gen_slack, "", ""},        {"stripe_key", gen_stripe, "", ""},
    {"google_api_key", gen_google, "", ""},    {"private_key", gen_pem, "", ""},
    {"url_password", gen_secret, "postgres://app:", "@db:5432/x"},
    {"conn_password", gen_secret, "Server=db;Password=", ";"},
    {"uk_nino", gen_nino, "", ""},             {"ca_sin", gen_sin, "", ""},
    {"in_aadhaar", gen_aadhaar, "", ""},       {"passport_mrz", gen_mrz, "", ""},
};

/* What stands before and after a value: numbers, dates, amounts, other detectors' values
 * (fixed samples), punctuation. Each is separated from the value as text separates words. */
static const char *const befores[] = {
    "", "qty 2 ", "invoice 10023 ", "2026-11-24 ", "$1,234.56 ", "ts 1733443330123 ",
    "4111-1111-1111-1111 ", "4111 1111 1111 ", "123-45-6789 ", "call 415-555-0123 ", "(",
    "\"", "id=", "ada@example.com, ", "10.0.0.1 ", "12 ", "1 ", "DE89 ", "a: ",
};
static const char *const afters[] = {
    "", " 123", " 2026-11-24", ".", ",", ")", " 4111 1111 1111 1111", " 415 555 0123",
    "\" ", " 10.0.0.2", " EUR 12.50", " 1", "; ok", " 0000",
};

static mm_masker *masker_all(void)
{
    char yaml[2048];
    size_t o = 0;
    mm_policy_set *set = NULL;
    mm_masker *m = NULL;
    mm_errbuf eb = {{0}};
    const mm_policy *p;

    o += (size_t)snprintf(yaml + o, sizeof(yaml) - o,
                          "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: "
                          "{name: all}\nspec:\n  selector: {}\n  rules:\n  - name: all\n"
                          "    detectors: [");
    for (size_t i = 0; i < mm_mask_detector_count(); i++)
        o += (size_t)snprintf(yaml + o, sizeof(yaml) - o, "%s%s", i ? ", " : "",
                              mm_mask_detector_name(i));
    snprintf(yaml + o, sizeof(yaml) - o, "]\n    action: {type: redact, replacement: \"#\"}\n");
    if (mm_policy_parse_yaml(yaml, strlen(yaml), "all", &set, NULL, &eb) != MM_OK)
        fail_msg("policy: %s", eb.msg);
    p = mm_policy_set_get(set, 0);
    if (mm_masker_new(&p, 1, NULL, NULL, &m, &eb) != MM_OK)
        fail_msg("masker: %s", eb.msg);
    mm_policy_set_free(set);
    return m;
}

/* `in` masked as `kind`, pushed as [0, split) and [split, n). */
static void mask_split(mm_masker *m, mm_body_kind kind, const char *in, size_t n, size_t split,
                       mm_buf *out)
{
    mm_stream_opts o = {.kind = kind};
    mm_stream *s = NULL;
    mm_errbuf eb = {{0}};
    out->len = 0;
    assert_int_equal(mm_stream_new(m, &o, mm_stream_buf_write, out, &s), MM_OK);
    if (mm_stream_push(s, in, split, &eb) != MM_OK || mm_stream_push(s, in + split, n - split, &eb) != MM_OK ||
        mm_stream_finish(s, &eb) != MM_OK)
        fail_msg("stream failed at split %zu: %s", split, eb.msg);
    mm_stream_free(s);
}

/* Does a piece of 6 alphanumeric-bearing bytes of `val` stand in `out` but not in `ctx`? */
static bool survives(const char *val, const char *out, size_t on, const char *ctx)
{
    size_t vn = strlen(val);
    size_t w = vn < 6 ? vn : 6;
    for (size_t i = 0; i + w <= vn; i++) {
        char piece[8];
        memcpy(piece, val + i, w);
        piece[w] = '\0';
        if (!memmem(out, on, piece, w))
            continue;
        if (!strstr(ctx, piece))
            return true;
    }
    return false;
}

/* JSON string content for `s`: quotes and controls escaped, and with `uesc` every digit and
 * '/' written as \u00XX (an escaped value is still the value). */
static void json_str(char *out, size_t cap, const char *s, bool uesc)
{
    size_t o = 0;
    for (; *s && o + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
        else if (c == '\n')
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (uesc && ((c >= '0' && c <= '9') || c == '/'))
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

/* The decoded content of the one string member of {"v":"..."}: enough JSON for our output. */
static size_t json_decode(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\\' && i + 1 < n) {
            char e = in[++i];
            if (e == 'u' && i + 4 < n) {
                unsigned v = 0;
                sscanf(in + i + 1, "%4x", &v);
                out[o++] = (char)v;
                i += 4;
            } else {
                out[o++] = e == 'n' ? '\n' : e;
            }
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}

static void test_values_never_survive(void **state)
{
    mm_masker *m = masker_all();
    mm_buf out = {0};
    char val[MAXV], own[MAXV], text[2 * MAXV], js[8 * MAXV], dec[8 * MAXV], ctx[MAXV];
    size_t cases = 0, bad = 0, bad_det[MM_ARRAY_LEN(dets)] = {0};
    (void)state;

    /* the first failing case of each detector is printed */
    const int values = slow_run() ? 1 : VALUES_PER_DETECTOR;
    const size_t coarse = slow_run() ? 29 : 7, fine = slow_run() ? 13 : 1, jstep = slow_run() ? 17 : 5;
    for (size_t d = 0; d < MM_ARRAY_LEN(dets); d++) {
        for (int k = 0; k < values; k++) {
            dets[d].gen(val);
            snprintf(own, sizeof(own), "%s%s%s", dets[d].pre, val, dets[d].post);
            for (size_t b = 0; b < MM_ARRAY_LEN(befores); b++) {
                for (size_t a = 0; a < MM_ARRAY_LEN(afters); a++) {
                    size_t n = (size_t)snprintf(text, sizeof(text), "%s%s%s", befores[b], own,
                                                afters[a]);
                    snprintf(ctx, sizeof(ctx), "%s %s %s %s", befores[b], afters[a], dets[d].pre, dets[d].post);
                    /* text: split at every byte (a few offsets for the long ones) */
                    for (size_t sp = 0; sp <= n; sp += (b + a) % 3 ? coarse : fine) {
                        mask_split(m, MM_BODY_TEXT, text, n, sp, &out);
                        cases++;
                        if (survives(val, out.data ? out.data : "", out.len, ctx) && !bad_det[d]++ && ++bad)
                            print_error("%s: text, before #%zu, after #%zu, split %zu: survives\n",
                                        dets[d].det, b, a, sp);
                    }
                    /* JSON: plain and \u-escaped, split at every 5th byte */
                    for (int u = 0; u < 2; u++) {
                        char esc[4 * MAXV];
                        json_str(esc, sizeof(esc), text, u);
                        size_t jn = (size_t)snprintf(js, sizeof(js), "{\"v\":\"%s\"}", esc);
                        for (size_t sp = 0; sp <= jn; sp += jstep) {
                            mask_split(m, MM_BODY_JSON, js, jn, sp, &out);
                            size_t dn = json_decode(out.data, out.len, dec);
                            cases++;
                            if (survives(val, dec, dn, ctx) && !bad_det[d]++ && ++bad)
                                print_error("%s: JSON%s, before #%zu, after #%zu, split %zu: "
                                            "survives\n", dets[d].det, u ? " \\u" : "", b, a, sp);
                        }
                    }
                }
            }
        }
    }
    print_message("%zu cases\n", cases);
    mm_buf_free(&out);
    mm_masker_free(m);
    if (bad)
        fail_msg("values of %zu detectors survived", bad);
}

/* Many more values in every context, each text pushed whole: wide sampling of values (a
 * date after an E.164 number once hid it), where the test above is deep in split points. */
static void test_many_values_whole(void **state)
{
    mm_masker *m = masker_all();
    mm_buf out = {0};
    char val[MAXV], text[2 * MAXV], ctx[MAXV];
    size_t bad = 0, bad_det[MM_ARRAY_LEN(dets)] = {0};
    const int values = slow_run() ? 5 : 100;
    (void)state;
    for (size_t d = 0; d < MM_ARRAY_LEN(dets); d++)
        for (int k = 0; k < values; k++) {
            dets[d].gen(val);
            for (size_t b = 0; b < MM_ARRAY_LEN(befores); b++)
                for (size_t a = 0; a < MM_ARRAY_LEN(afters); a++) {
                    size_t n = (size_t)snprintf(text, sizeof(text), "%s%s%s%s%s", befores[b],
                                                dets[d].pre, val, dets[d].post, afters[a]);
                    snprintf(ctx, sizeof(ctx), "%s %s %s %s", befores[b], afters[a],
                             dets[d].pre, dets[d].post);
                    mask_split(m, MM_BODY_TEXT, text, n, n, &out);
                    if (survives(val, out.data ? out.data : "", out.len, ctx) && !bad_det[d]++ &&
                        ++bad)
                        print_error("%s: value %d, before #%zu, after #%zu: survives\n",
                                    dets[d].det, k, b, a);
                }
        }
    mm_buf_free(&out);
    mm_masker_free(m);
    if (bad)
        fail_msg("values of %zu detectors survived", bad);
}

/* Every detector's values in one text, each beside the next: none hides another. */
static void test_values_side_by_side(void **state)
{
    mm_masker *m = masker_all();
    mm_buf out = {0};
    char vals[MM_ARRAY_LEN(dets)][MAXV], text[32 * MAXV];
    size_t n = 0, bad = 0;
    (void)state;

    for (int round = 0; round < 4; round++) {
        n = 0;
        for (size_t d = 0; d < MM_ARRAY_LEN(dets); d++) {
            char own[MAXV];
            dets[d].gen(vals[d]);
            snprintf(own, sizeof(own), "%s%s%s", dets[d].pre, vals[d], dets[d].post);
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s", d ? (round & 1 ? " " : ", ") : "", own);
        }
        for (size_t sp = 0; sp <= n; sp += 13) {
            mask_split(m, MM_BODY_TEXT, text, n, sp, &out);
            for (size_t d = 0; d < MM_ARRAY_LEN(dets); d++)
                if (survives(vals[d], out.data, out.len, dets[d].pre) && !strstr(dets[d].post, "") && ++bad <= 10)
                    print_error("%s: round %d, split %zu: survives beside the others\n",
                                dets[d].det, round, sp);
        }
    }
    mm_buf_free(&out);
    mm_masker_free(m);
    if (bad)
        fail_msg("%zu values survived", bad);
}

/* useMemberNames through the JSON stream: the member's name reaches the detectors (escaped
 * names decoded, names split across chunks), array elements and other members do not
 * count, and without the option nothing changes. Split at every byte. */
static void test_member_names_json(void **state)
{
    static const char in[] =
        "{\"ssn\":\"078051234\",\"Phone_Number\":\"4155550132\",\"ph\\u006fne\":4155550133,"
        "\"note\":\"4155550132\",\"phones\":[\"4155550132\"],\"x\":{\"sin\":\"130 692 544\","
        "\"aadhaar\":\"234567890124\"},\"tel\":\"0155550132\"}";
    static const char want_on[] =
        "{\"ssn\":\"#\",\"Phone_Number\":\"#\",\"ph\\u006fne\":\"#\",\"note\":\"4155550132\","
        "\"phones\":[\"4155550132\"],\"x\":{\"sin\":\"#\",\"aadhaar\":\"#\"},"
        "\"tel\":\"0155550132\"}";
    static const char want_off[] =
        "{\"ssn\":\"#\",\"Phone_Number\":\"4155550132\",\"ph\\u006fne\":4155550133,"
        "\"note\":\"4155550132\",\"phones\":[\"4155550132\"],\"x\":{\"sin\":\"#\","
        "\"aadhaar\":\"234567890124\"},\"tel\":\"0155550132\"}";
    static const char head[] = "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\n"
                               "metadata: {name: m}\nspec:\n  selector: {}\n  rules:\n"
                               "  - name: ids\n    detectors: [us_ssn, phone, ca_sin, in_aadhaar]\n"
                               "    action: {type: redact, replacement: \"#\"}\n";
    mm_buf out = {0};
    (void)state;
    for (int on = 0; on < 2; on++) {
        char yaml[1024];
        mm_policy_set *set = NULL;
        mm_masker *m = NULL;
        mm_errbuf eb = {{0}};
        const mm_policy *p;
        snprintf(yaml, sizeof(yaml), "%s%s", head, on ? "    useMemberNames: true\n" : "");
        if (mm_policy_parse_yaml(yaml, strlen(yaml), "m", &set, NULL, &eb) != MM_OK)
            fail_msg("policy: %s", eb.msg);
        p = mm_policy_set_get(set, 0);
        assert_int_equal(mm_masker_new(&p, 1, NULL, NULL, &m, &eb), MM_OK);
        for (size_t sp = 0; sp <= strlen(in); sp++) {
            mask_split(m, MM_BODY_JSON, in, strlen(in), sp, &out);
            const char *want = on ? want_on : want_off;
            if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0)
                fail_msg("useMemberNames %s, split %zu: output differs", on ? "on" : "off", sp);
        }
        mm_masker_free(m);
        mm_policy_set_free(set);
    }
    mm_buf_free(&out);
}

/* The generators cover the registry: a new detector needs a generator here. */
static void test_every_detector_generated(void **state)
{
    (void)state;
    assert_int_equal(MM_ARRAY_LEN(dets), mm_mask_detector_count());
    for (size_t i = 0; i < mm_mask_detector_count(); i++)
        assert_string_equal(dets[i].det, mm_mask_detector_name(i));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_detector_generated),
        cmocka_unit_test(test_values_never_survive),
        cmocka_unit_test(test_many_values_whole),
        cmocka_unit_test(test_values_side_by_side),
        cmocka_unit_test(test_member_names_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
