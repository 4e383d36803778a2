/* Unit tests for the SIMD skim (jskim.c, simd_x86.c): every input is masked with the byte
 * machine alone (MM_SIMD=off) and with each SIMD level the CPU has, whole and split at many
 * points, and the verdicts, messages, outputs and findings must be the same byte for byte.
 * Inputs: hand-made edge cases at the 64-byte block boundaries (escapes, backslash runs,
 * quotes, numbers, literals, control bytes, nesting at the limit, long member names) and
 * generated documents with random damage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask/mask.h"
#include "mask/simd_int.h"

#define HEAD "apiVersion: maskmesh.io/v1alpha1\nkind: MaskingPolicy\nmetadata: {name: p}\n" \
             "spec:\n  selector: {}\n"

/* Policies whose containers are mostly untouched (so skimmed), one of them removing (so
 * skimmed while suppressed), one whose objects are touched only through some names (so
 * skimmed member by member, constants written in place of the values the names select);
 * and with detectors (without findings paths, jskim hands them the values: jread.c), one
 * of them taking member names as evidence, one beside a path rule; descendant paths
 * beside detectors. */
static const char *const policies[] = {
    HEAD "  rules:\n  - {name: a, fields: [\"$.a\", \"$.o.p\"], action: {type: redact}}\n",
    HEAD "  rules:\n  - {name: r, fields: [\"$.rm\", \"$[1]\", \"$.o.q\"], action: {type: remove}}\n",
    HEAD "  rules:\n  - {name: a, fields: [\"$.x[*].y\"], action: {type: mask}}\n",
    HEAD "  rules:\n  - {name: c, fields: [\"$.a\", \"$.o.p\", \"$.o.y\", \"$.z.k.a\", \"$.z.k.s\", "
         "\"$.z.k.t\", \"$.z.k.ka\", \"$.k.a\", \"$.k.o\", \"$.x.y\", \"$.z.rm.x\"], "
         "action: {type: redact}}\n"
         "  - {name: m, fields: [\"$.o.q\", \"$.z.k.u\", \"$.k.k\"], action: {type: mask}}\n",
    /* detectors: no container is skimmed, but long values go through detect.c's SIMD
     * trigger filter */
    HEAD "  rules:\n  - {name: d, detectors: [credit_card, email, phone, iban, ipv4, ipv6, "
         "private_key, url_password, us_ssn, jwt], action: {type: redact}}\n",
    /* from here (ADDED), fewer ways (every_way) */
    /* objects reached by name inside objects reached by name (jskim opens and closes them
     * through json.c), one selected whole, members removed in some */
    HEAD "  rules:\n  - {name: c, fields: [\"$.z.k.a\", \"$.z.k.o.p\", \"$.z.k.o.q.s\", "
         "\"$.z.k.w\", \"$.k.o.p\", \"$.k.o.o.o.p\"], action: {type: redact}}\n"
         "  - {name: r, fields: [\"$.z.k.rm\", \"$.z.k.x.q.r\"], action: {type: remove}}\n",
    HEAD "  rules:\n  - {name: d, detectors: [us_ssn, phone, email], useMemberNames: true, "
         "action: {type: mask}}\n",
    HEAD "  rules:\n  - {name: a, fields: [\"$.o.p\", \"$.k[*].a\"], action: {type: redact}}\n"
         "  - {name: d, detectors: [us_ssn, phone, credit_card], action: {type: redact}}\n",
    /* descendant paths beside detectors (bench/proxy.sh's kind): jskim judges every
     * object's names, opens every container through json.c, hands selected values to
     * json.c in place (a mask) or writes constants (redact), the rest to the detectors;
     * x[*] selects whole arrays' elements (json.c reads those), rm's members are held */
    HEAD "  rules:\n  - {name: c, fields: [\"$..a\", \"$..p\"], action: {type: mask, "
         "keepLast: 2}}\n"
         "  - {name: r, fields: [\"$..y\", \"$.k[*].o\", \"$..x[*]\"], action: {type: redact}}\n"
         "  - {name: m, fields: [\"$.rm.o\"], action: {type: remove}}\n"
         "  - {name: d, detectors: [credit_card, email, phone, us_ssn], action: {type: redact}}\n"
         "  - {name: i, patterns: [{name: e, regex: \"EMP-[0-9]{6}\"}], action: {type: redact, "
         "replacement: \"[ID]\"}}\n",
    HEAD "  rules:\n  - {name: c, fields: [\"$..o.p\", \"$.k[*].a\", \"$..k[0]\"], "
         "action: {type: mask}}\n"
         "  - {name: d, detectors: [us_ssn, phone, email], useMemberNames: true, "
         "action: {type: mask}}\n",
    /* arrays whose elements are alike, path rules only: jskim passes their scalars and
     * opens their containers (by_name arrays, without findings paths), at the root too */
    HEAD "  rules:\n  - {name: e, fields: [\"$.k[*].a\", \"$.k[*].o.p\", \"$.o[*][*].p\", "
         "\"$.rm[*].x[*].y\", \"$.z.k[*].a\", \"$[*].a\", \"$[*][*].c\"], "
         "action: {type: redact}}\n"
         "  - {name: f, fields: [\"$.k[*].y\", \"$.z.k[*].o\", \"$.x[*].y\", \"$[*].b\"], "
         "action: {type: mask}}\n",
};

#define ADDED 5

static mm_masker *compile(const char *yaml)
{
    mm_policy_set *set = NULL;
    mm_masker *m = NULL;
    mm_errbuf eb = {{0}};
    const mm_policy *list[4];
    if (mm_policy_parse_yaml(yaml, strlen(yaml), "case", &set, NULL, &eb) != MM_OK)
        fail_msg("policy: %s", eb.msg);
    for (size_t i = 0; i < mm_policy_set_count(set); i++)
        list[i] = mm_policy_set_get(set, i);
    if (mm_masker_new(list, mm_policy_set_count(set), NULL, NULL, &m, &eb) != MM_OK)
        fail_msg("masker: %s", eb.msg);
    mm_policy_set_free(set);
    return m;
}

typedef struct {
    mm_err rc;
    mm_buf out;
    char msg[sizeof(((mm_errbuf *)0)->msg)];
    size_t findings;
    mm_buf seen; /* every finding whole, one a line: rule, detector, path, offset, line */
} result;

static void record(void *ctx, const mm_finding *f)
{
    result *r = ctx;
    r->findings++;
    mm_buf_printf(&r->seen, "%s %s %s @%llu line %llu %s\n", f->rule ? f->rule : "-",
                  f->detector ? f->detector : "-", f->path ? f->path : "-",
                  (unsigned long long)f->offset, (unsigned long long)f->line,
                  f->applied ? "applied" : "reported");
}

/* findings: 0 none, 1 with paths, 2 without (as the sidecar counts them) */
static void run(mm_masker *m, const char *level, const char *in, size_t n, size_t split,
                mm_body_kind kind, int findings, size_t max_value, result *r)
{
    mm_stream_opts o = {.kind = kind, .max_value = max_value,
                        .on_finding = findings ? record : NULL, .finding_ctx = r,
                        .no_finding_paths = findings == 2};
    mm_stream *s = NULL;
    mm_errbuf eb = {{0}};
    setenv("MM_SIMD", level, 1);
    mm_buf_init(&r->out, 0);
    mm_buf_init(&r->seen, 0);
    r->findings = 0;
    assert_int_equal(mm_stream_new(m, &o, mm_stream_buf_write, &r->out, &s), MM_OK);
    r->rc = mm_stream_push(s, in, split, &eb);
    if (r->rc == MM_OK)
        r->rc = mm_stream_push(s, in + split, n - split, &eb);
    if (r->rc == MM_OK)
        r->rc = mm_stream_finish(s, &eb);
    snprintf(r->msg, sizeof(r->msg), "%s", r->rc == MM_OK ? "" : eb.msg);
    mm_stream_free(s);
    unsetenv("MM_SIMD");
}

static size_t compared;

/* The input masked by every level at `split` agrees with the byte machine. */
static void same(mm_masker *m, const char *in, size_t n, size_t split, mm_body_kind kind,
                 int findings, size_t max_value)
{
    static const char *const levels[] = {"avx2", "avx512"};
    result want, got;
    run(m, "off", in, n, split, kind, findings, max_value, &want);
    for (size_t l = 0; l < 2; l++) {
        if ((int)simd_best() < (int)SIMD_AVX2 + (int)l)
            break;
        run(m, levels[l], in, n, split, kind, findings, max_value, &got);
        if (got.rc != want.rc || strcmp(got.msg, want.msg) != 0 || got.out.len != want.out.len ||
            (got.out.len && memcmp(got.out.data, want.out.data, got.out.len) != 0) ||
            got.findings != want.findings ||
            strcmp(mm_buf_cstr(&got.seen), mm_buf_cstr(&want.seen)) != 0)
            fail_msg("%s differs from off at split %zu of %zu bytes: rc %d/%d msg '%s'/'%s' "
                     "out %zu/%zu findings %zu/%zu:\n%s---\n%s; input: %.*s",
                     levels[l], split, n, got.rc, want.rc, got.msg, want.msg, got.out.len,
                     want.out.len, got.findings, want.findings, mm_buf_cstr(&got.seen),
                     mm_buf_cstr(&want.seen), (int)(n < 300 ? n : 300), in);
        mm_buf_free(&got.out);
        mm_buf_free(&got.seen);
        compared++;
    }
    mm_buf_free(&want.out);
    mm_buf_free(&want.seen);
}

/* deep: 2 split at every byte, 1 so only for the policies before ADDED, 0 at a few points */
#define N_POLICIES (sizeof(policies) / sizeof(*policies))
static mm_masker *maskers[N_POLICIES]; /* compiled once (group_teardown frees them) */

static int group_teardown(void **state)
{
    (void)state;
    for (size_t p = 0; p < N_POLICIES; p++)
        mm_masker_free(maskers[p]);
    return 0;
}

static void every_way(const char *in, size_t n, int deep)
{
    for (size_t p = 0; p < N_POLICIES; p++) {
        mm_masker *m = maskers[p] ? maskers[p] : (maskers[p] = compile(policies[p]));
        bool all_splits = deep > (p >= ADDED);
        /* findings with paths (member names bounded), none, none with values and names
         * over a small limit, findings without paths (the sidecar's) */
        for (int k = 0; k < 8; k++) {
            mm_body_kind kind = k & 1 ? MM_BODY_NDJSON : MM_BODY_JSON;
            /* the policies added later: JSON only; findings with paths only where a
             * path rule is all there is (with detectors, no SIMD path reads values then) */
            if (p >= ADDED && ((k & 1) || ((k >> 1) == 1 && strstr(policies[p], "detectors"))))
                continue;
            int findings = (k >> 1) == 1 ? 1 : (k >> 1) == 3 ? 2 : 0;
            size_t max = (k >> 1) == 1 ? 40 : (k >> 1) == 2 ? 12 : 0;
            size_t step = all_splits ? 1 : n / 7 + 1;
            for (size_t split = 0; split <= n; split += step)
                same(m, in, n, split, kind, findings, max);
        }
    }
}

/* Edge cases, each placed at every offset of a 64-byte block behind a padding member. */
static void test_edges(void **state)
{
    (void)state;
    static const char *const cases[] = {
        /* names judged in place: selected, not, escaped, over the limit, cut, and values
         * written over, read by json.c, or refused */
        "{\"k\":{\"a\":1,\"o\":[1,2],\"k\":\"m\",\"b\":{\"a\":2},\"a\":true,\"a\":false,"
        "\"a\":null,\"a\":-1.5e3,\"a\":\"a value that crosses a block boundary of sixty-four "
        "bytes, surely\",\"o\":{\"x\":1},\"a\":{\"b\":1},\"a\":[1]}}",
        /* newlines in skimmed members and between them, before the values written over
         * (findings name their lines), across blocks and in several skims of one object */
        "{\"k\":{\"b\":[1,\n2,\n{\"c\":\"x\\ny\"}],\n\"a\":\"v\",\"b\":\n{\"d\":\n1},\n\n\"a\":7,"
        "\"s\":\"t\",\r\n\"u\":\"w\",\"q\":\n[\n\n\n\"a long string to cross a block, and another "
        "block\",\n{}],\"t\"\n:\nfalse,\"ka\":\n\"x\"}}",
        "{\"k\":{\n\"a\":1,\n\"o\":{\"p\":\n2},\n\"a\":\n\"\\n\",\n\"k\":\n\"m\"\n,\n\"a\"\n:\n\"\\u0041\"\n}\n}",
        "{\"k\":\n{\"x\":[\n1],\"a\":1}}\n{\"k\":{\n\"y\":\n2,\"a\":2,\n\"a\":3}}\n",
        "{\"k\":{\"\\u0061\":\"x\",\"k\\u0061\":1,\"a\\\"\":2,\"a\":\"e\\n\\u0041\"}}",
        "{\"k\":{\"a\":\"longer than twelve\",\"abcdefghijklmnop\":1,\"a\":123456789012345}}",
        "{\"k\":{\"a\x01\":1}}", "{\"k\":{\"a\":\"bad \\q\"}}", "{\"k\":{\"a\":\"ctl \x02\"}}",
        "{\"k\":{\"a\":12", "{\"k\":{\"a\":1x}}", "{\"k\":{\"a\":tru}}", "{\"k\":{\"a\":01}}",
        "{\"k\":{\"a\" : \"s\" ,\n \"a\"  :\t7 , \"o\":1 }}", "{\"k\":{\"a\" \"s\"}}",
        "{\"k\":{\"a\"::1}}", "{\"k\":{\"a\":,}}", "{\"k\":{\"a\":\"x\"\"y\"}}",
        "{\"a\":\"top\",\"o\":{\"p\":1,\"q\":\"m\",\"y\":[1],\"p\":{\"z\":1}},\"x\":{\"y\":null}}",
        "{\"a\":1}\n{\"o\":{\"p\":\"v\"}}\n{\"a\":\"w\",\"b\":[{\"a\":1}]}\n",
        "{\"k\":{\"s\":\"a\\\\\\\"b\",\"t\":\"\\\\\\\\\",\"u\":\"\\u00e9\\ud83d\\ude00\"}}",
        "{\"k\":{\"s\":\"bad \\x escape\"}}",
        "{\"k\":{\"s\":\"bad \\u12G4 escape\"}}",
        "{\"k\":{\"s\":\"ctl \x01 byte\"}}",
        "{\"k\":{\"s\":\"tab \t in string\"}}",
        "{\"k\":[1,-0,0.5,-1.25e+10,3E-2,1e5,true,false,null,\"x\"]}",
        "{\"k\":[01]}", "{\"k\":[1.]}", "{\"k\":[-]}", "{\"k\":[1e]}", "{\"k\":[.5]}",
        "{\"k\":[tru]}", "{\"k\":[truex]}", "{\"k\":[nul,1]}", "{\"k\":[1x]}", "{\"k\":[1\"a\"]}",
        "{\"k\":[1,]}", "{\"k\":[,1]}", "{\"k\":{,}}", "{\"k\":{\"a\" 1}}", "{\"k\":{\"a\":1,}}",
        "{\"k\":{\"a\":1]}", "{\"k\":[1}}", "{\"k\":[\"a\"\"b\"]}", "{\"k\":[\"a\" 1]}",
        "{\"k\":{\"a\"::1}}", "{\"k\":{1:2}}", "{\"k\":[\x0c]}", "{\"k\":[\x1a]}",
        "{\"k\":[ \t\r\n 1 \n, \n2\n]\n}", "{\"k\":[\"\\/\\b\\f\\n\\r\\t\"]}",
        "{\"k\":{\"a\":{\"b\":[[[{}]],[]],\"c\":{}}}}", "{\"k\":[\"unterminated]}",
        "{\"k\":[1 2]}", "{\"k\":[\\\"a\"]}", "{\"k\":{\"name longer than forty bytes, which "
        "is the limit here\":1}}", "{\"k\":{\"a name that is over the limit of forty bytes\""
        "\".\":1}}", "{\"k\":{\"a\":\"\\\"}\"}, \"rm\":{\"x\":[1,{\"y\":2}]}}",
        "{\"rm\":[\"a\\\"\",{\"b\":[1,2,{\"c\":null}]}],\"o\":{\"q\":{\"r\":[1]},\"p\":2}}",
        "[{\"a\":1},{\"b\":[2,3]},{\"c\":\"d\"}]", "{\"x\":[{\"y\":1,\"z\":[1,{}]},{\"w\":{}}]}",
        "{\"k\":[\x7f\"\xff\xfe\"]}", "{\"k\":[\"\xe2\x82\xac\x80\"]}",
        "{\"k\":[1]}\n{\"k\":[2,[3]]}\n\n{\"k\":{\"a\":[4]}}\r\n", "{\"k\":[1]}\n{\"k\":[2,}\n",
        "{\"k\":\"order 4111 1111 1111 1111 for bob@example.com from 10.0.0.1, call +1 (415) "
        "555-0132, iban DE89370400440532013000, ssn 078-05-1120, ip fe80::1 x4111111111111111\"}",
        "{\"k\":\"postgres://u:secret@db.example/x and -----BEGIN PRIVATE KEY-----\\nMIIB\\n"
        "-----END PRIVATE KEY----- then eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX3g\"}",
        /* values the detectors read, their member names as evidence: plain, escaped, in
         * nested objects and arrays, numbers, across blocks, with newlines before them */
        "{\"ssn\":\"078051120\",\"o\":{\"phone\":4155550132,\"a\":[\"ssn\",{\"ssn\":"
        "\"078-05-1120\"},4111111111111111]},\"s\\u0073n\":\"078051120\",\"tel\":\"41\\u0035"
        "5550132\"}",
        "{\"k\":[{\"a\":\"078-05-1120\"},{\"b\":\"x\"}],\"o\":{\"p\":\"4111 1111 1111 1111\",\n"
        "\"q\":\n\"call 415-555-0132\",\"r\":[[\"bob@example.com\",\n-4111111111111111]]}}",
        /* objects by name in objects by name, at every depth, around newlines */
        "{\"k\":{\"o\":{\"p\":1,\"q\":{\"r\":2,\"s\":\"t\"},\"o\":{\"o\":{\"p\":[1]}}},\"rm\":"
        "{\"a\":1},\"a\":{\"b\":{\"c\":1}},\"o\":\n{\"p\":\"x\"},\"x\":{\"q\":{\"r\":1,\"s\":2}},"
        "\"w\":{},\"o\" : { } ,\"o\":{\"q\":{\"s\":{\"t\":1}}}}}",
        "{\"k\":{\"o\":{\"o\":{\"o\":{\"p\":1,\"p\":{\"a\":2}},\"p\":3},\"p\":\"v\"},\"o\":"
        "{\"p\":1}x}", "{\"k\":{\"o\":{\"p\":1,\"o\":{\"o\":{\"p\":2", "{\"k\":{\"o\":{\"p\"::1}}}",
        "{\"k\":{\"o\":{\"q\\u0061\":1,\"p\":2}},\"k\":{\"o\":[{\"p\":1}],\"o\":{\"p\":1]}}}",
        "{\"phone\"\n:\n\"4155550132\" , \"ssn\" : 078051120 ,\"cell\":\"+1 415 555 0132 and "
        "4111-1111-1111-1111 and a long tail to cross the block\",\"e\":\"a@b.co\"}",
        /* descendant paths with detectors: the sidecar bench's records, selected names
         * (plain, escaped, values of every kind, cut), nested objects and arrays */
        "{\"items\":[{\"id\":0,\"name\":\"User 0\",\"email\":\"u0@example.com\",\"a\":\"4111 "
        "1111 1111 1111\",\"y\":\"123-45-1000\",\"phone\":\"+1 415 555 1000\",\"note\":\"EMP-"
        "123456 shipped\",\"amount\":0.00},{\"id\":1,\"a\":4111111111111111,\"y\":true,\"p\""
        ":null,\"ssn\":\"078-05-1120\"}]}",
        "{\"o\":{\"a\":{\"p\":1,\"y\":[1,{\"a\":\"x\"}],\"q\":[[{\"p\":\"v\"}],{}]},\"p\":"
        "{\"z\":\"078-05-1120\"},\"\\u0061\":\"esc\",\"a\":\"e\\n\",\"k\":[{\"a\":1,\"o\":"
        "\"x\"},[2],\"s\"]},\"k\":[{\"a\":\"4111111111111111\",\"o\":{\"p\":2}},[{\"a\":"
        "1}]],\"x\":[1,\"a\",{\"a\":2}],\"rm\":{\"o\":1,\"p\":2,\"a\":{\"o\":3}}}",
        "{\"a\":-1.5e3,\"a\":false,\"a\":\"a value that crosses a block boundary of sixty-four "
        "bytes, surely\",\"b\":{\"a\":[\"\\u0041\",{\"p\":\"t\"}],\"p\":{}},\"y\":{\"q\":"
        "1},\"y\":[],\"k\":[[{\"y\":\"bob@example.com\"}]],\"a\":\"x\"\"b\":1}",
        "{\"k\":[{\"a\":\"v\",\n\"o\":\n\"w\"}\n,\n{\"a\"\n:\n1}],\"p\":\"call 415-555-0132\","
        "\"o\":{\"p\":[1,2],\"p\":\"4155550132\"}}\n",
        /* an array opened in place whose last container was an array: back in the object,
         * a member passed over (pushed and popped) must leave jskim in the object's state,
         * or a value without a name would pass */
        "{\"k\":[[1]],\"x\":{\"y\":1},1}", "{\"k\":[{\"a\":2},[1]],\"x\":[3],\"y\":4}",
    };
    char buf[512];
    for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
        every_way(cases[c], strlen(cases[c]), 2);
        for (int pad = 0; pad < 66; pad += 1 + pad % 3) {
            /* {"p":"xxx...", followed by the case's members */
            int n = snprintf(buf, sizeof(buf), "{\"pad\":\"%.*s\",\"z\":%s}", pad,
                             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                             cases[c]);
            every_way(buf, (size_t)n, pad % 9 == 0);
        }
    }
}

/* Nesting around the limit (MM_MASK_MAX_DEPTH), inside an untouched member. */
static void test_depth(void **state)
{
    (void)state;
    static char buf[4 * MM_MASK_MAX_DEPTH + 64];
    for (int d = MM_MASK_MAX_DEPTH - 3; d <= MM_MASK_MAX_DEPTH + 1; d++) {
        size_t n = 0;
        n += (size_t)snprintf(buf, sizeof(buf), "{\"k\":");
        for (int i = 0; i < d - 1; i++)
            buf[n++] = i % 2 ? '[' : '{', n += i % 2 ? 0 : (size_t)snprintf(buf + n, 8, "\"a\":");
        for (int i = d - 2; i >= 0; i--)
            buf[n++] = i % 2 ? ']' : '}';
        buf[n++] = '}';
        every_way(buf, n, 0);
    }
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void gen(mm_buf *b, int depth)
{
    static const char *const scalars[] = {
        "1", "-12.5e3", "0", "true", "false", "null", "\"plain\"", "\"a\\\"b\\\\\"",
        "\"\\u0041\\n\"", "\"long string that crosses a block boundary for sure, surely\"",
        "\"\"", "123456789012345678901234567890", "\"\\\\\\\\\\\"\"",
    };
    int r = (int)(next() % 10);
    if (depth > 6 || r < 5) {
        mm_buf_puts(b, scalars[next() % (sizeof(scalars) / sizeof(*scalars))]);
        return;
    }
    bool obj = r < 8;
    int n = (int)(next() % 5);
    mm_buf_putc(b, obj ? '{' : '[');
    for (int i = 0; i < n; i++) {
        if (i)
            mm_buf_puts(b, next() % 4 ? "," : " ,\n ");
        if (obj)
            mm_buf_printf(b, "\"%s\":", (const char *[]){"a", "o", "rm", "x", "y", "k\\u0061"}[next() % 6]);
        gen(b, depth + 1);
    }
    mm_buf_putc(b, obj ? '}' : ']');
}

static void test_generated(void **state)
{
    (void)state;
    static const char damage[] = "{}[]:,\"\\ \n\x01" "0eE.-+tfnu";
    for (int round = 0; round < 300; round++) {
        mm_buf b;
        mm_buf_init(&b, 0);
        mm_buf_puts(&b, "{\"k\":");
        gen(&b, 0);
        mm_buf_puts(&b, ",\"o\":");
        gen(&b, 0);
        mm_buf_puts(&b, ",\"rm\":");
        gen(&b, 1);
        mm_buf_putc(&b, '}');
        if (round % 2 && b.len) { /* one byte damaged */
            size_t at = next() % b.len;
            b.data[at] = damage[next() % (sizeof(damage) - 1)];
        }
        every_way(b.data, b.len, b.len < 200);
        mm_buf_free(&b);
    }
    assert_true(compared > 1000 || simd_best() == SIMD_OFF);
}

/* The detectors' trigger filter at every level the CPU has, against the byte-by-byte
 * answer: every length 1..64 (each short-window path: the copy under 16 bytes, two 16- or
 * 32-byte loads that overlap, the full 64), the window placed at the end of an exactly sized
 * allocation (ASan sees a read past it), bytes drawn so that triggers, their nibble
 * neighbours, letters, digits, NUL and high bytes all occur. */
static void test_det_masks(void **state)
{
    (void)state;
    static const unsigned char trig[] = "@+(:-", pool[] = "@+(:-`0Pp`aAzZ09 /[{\x80\xc0";
    const size_t ntrig = sizeof(trig) - 1;
    unsigned char ttab[32];
    int checked = 0;
    det_ttab(trig, ntrig, ttab);
    for (int level = SIMD_AVX2; level <= (int)simd_best(); level++) {
        det_mask_fn fn = simd_det_masks((simd_level)level);
        assert_non_null(fn);
        for (size_t n = 1; n <= 64; n++)
            for (int round = 0; round < 40; round++) {
                unsigned char *p = malloc(n);
                uint64_t al = 0, want_al = 0, hit = 0, want_hit = 0;
                assert_non_null(p);
                for (size_t k = 0; k < n; k++) {
                    unsigned r = next();
                    p[k] = r % 3 ? pool[r / 3 % (sizeof(pool) - 1)] : (unsigned char)(r >> 8);
                    bool alnum = (p[k] >= '0' && p[k] <= '9') || ((p[k] | 0x20) >= 'a' &&
                                                                  (p[k] | 0x20) <= 'z');
                    want_al |= (uint64_t)alnum << k;
                    want_hit |= (uint64_t)(memchr(trig, p[k], ntrig) != NULL) << k;
                }
                fn(p, n, ttab, &al, &hit);
                if (al != want_al || hit != want_hit)
                    fail_msg("%s, %zu bytes: alnum %llx want %llx, hits %llx want %llx",
                             simd_name((simd_level)level), n, (unsigned long long)al,
                             (unsigned long long)want_al, (unsigned long long)hit,
                             (unsigned long long)want_hit);
                free(p);
                checked++;
            }
    }
    assert_true(checked >= 64 * 40 || simd_best() == SIMD_OFF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_generated),
        cmocka_unit_test(test_det_masks),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
