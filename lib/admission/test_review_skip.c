/* /mutate-pods reads the review without the members the injection never reads
 * (mm_adm_review_parse_pod's skip list, `*` for every array element): those are still
 * checked as JSON but not built. Here: the reader's `*` paths, and for every pod of the
 * recorded wire samples and for pods that use each part the injection does read (named
 * probes and hooks, init containers, every volume kind, both modes, native sidecars), the
 * answer is byte for byte the one from the whole review. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "admission/admission.h"
#include "admission/admission_int.h"

#define SAMPLES "tests/k8s-samples/"

static json_object *load(const char *path)
{
    char *text;
    size_t len;
    mm_errbuf eb;
    json_object *o;
    assert_int_equal(mm_read_file(path, 8u << 20, &text, &len, &eb), MM_OK);
    o = json_tokener_parse(text);
    mm_free(text);
    assert_non_null(o);
    return o;
}

static void test_wildcard_paths(void **state)
{
    static const char *const skip[] = {"a/*/y", "b/*/*/z", NULL};
    const char *t = "{\"a\":[{\"x\":1,\"y\":{\"deep\":[1,2]}},{\"x\":3},[{\"y\":1}],5],"
                    "\"b\":[[{\"z\":1,\"k\":2}]],\"y\":7}";
    json_object *v = NULL;
    mm_errbuf eb;
    (void)state;

    assert_int_equal(adm_json_parse(t, strlen(t), skip, &v, &eb), MM_OK);
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                        "{\"a\":[{\"x\":1},{\"x\":3},[{\"y\":1}],5],\"b\":[[{\"k\":2}]],\"y\":7}");
    json_object_put(v);
    /* what is left out is still read as strict JSON */
    t = "{\"a\":[{\"y\":[1,]}]}";
    assert_int_equal(adm_json_parse(t, strlen(t), skip, &v, &eb), MM_EPARSE);
    assert_non_null(strstr(eb.msg, "not JSON at byte 14"));
}

/* keep mode: only the paths given are built; arrays keep every element (indices hold);
 * what is left out is still strict JSON, with the same errors as the whole reader's. */
static void test_keep_paths(void **state)
{
    static const char *const keep[] = {"a/*/y", "b/*/*/z", "c", "d/e", NULL};
    const char *t = "{\"a\":[{\"x\":1,\"y\":{\"deep\":[1,2]}},{\"x\":3},[{\"y\":1}],5],"
                    "\"b\":[[{\"z\":1,\"k\":2}]],\"c\":{\"all\":[true,null]},\"d\":7,\"y\":7}";
    json_object *v = NULL;
    char *keys = NULL;
    mm_errbuf eb, eb2;
    (void)state;

    assert_int_equal(adm_json_parse_only(t, strlen(t), keep, &v, &keys, &eb), MM_OK);
    assert_string_equal(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                        "{\"a\":[{\"y\":{\"deep\":[1,2]}},{},[{}],5],\"b\":[[{\"z\":1}]],"
                        "\"c\":{\"all\":[true,null]},\"d\":7}");
    json_object_put(v);
    mm_free(keys);
    /* what is left out is still read as strict JSON, failing where the whole reader fails */
    t = "{\"q\":[{\"y\":[1,]}]}";
    assert_int_equal(adm_json_parse_only(t, strlen(t), keep, &v, &keys, &eb), MM_EPARSE);
    assert_int_equal(adm_json_parse(t, strlen(t), NULL, &v, &eb2), MM_EPARSE);
    assert_string_equal(eb.msg, eb2.msg);
    assert_non_null(strstr(eb.msg, "not JSON at byte 14"));
}

/* json-c's tree of text, cut down to what `keep` names (keep mode as adm_json_parse_only
 * documents it, written again here the plain way: a member per path, not per byte). */
static json_object *cut(json_object *o, const char *const *keep)
{
    json_object *r;
    if (!keep) {
        r = NULL;
        assert_int_equal(json_object_deep_copy(o, &r, NULL), 0);
        return r;
    }
    if (json_object_is_type(o, json_type_array)) {
        const char *each[64];
        size_t n = 0;
        bool all = false;
        r = json_object_new_array();
        for (size_t i = 0; keep[i]; i++) {
            if (strcmp(keep[i], "*") == 0)
                all = true;
            else if (strncmp(keep[i], "*/", 2) == 0)
                each[n++] = keep[i] + 2;
        }
        each[n] = NULL;
        for (size_t i = 0; i < json_object_array_length(o); i++)
            json_object_array_add(r, cut(json_object_array_get_idx(o, i), all ? NULL : each));
        return r;
    }
    if (!json_object_is_type(o, json_type_object))
        return cut(o, NULL);
    r = json_object_new_object();
    json_object_object_foreach(o, k, v)
    {
        const char *sub[64];
        size_t n = 0, kl = strlen(k);
        bool all = false;
        for (size_t i = 0; keep[i]; i++) {
            if (strcmp(keep[i], k) == 0)
                all = true;
            else if (strncmp(keep[i], k, kl) == 0 && keep[i][kl] == '/')
                sub[n++] = keep[i] + kl + 1;
        }
        sub[n] = NULL;
        if (all || n)
            json_object_object_add(r, k, v ? cut(v, all ? NULL : sub) : NULL);
    }
    return r;
}

/* Every review of the fuzz corpus and the samples: /mutate-pods' reader accepts what the whole
 * reader accepts, and then builds exactly json-c's tree cut down to adm_mutate_keep; what it
 * refuses, the whole reader refuses with the same message. */
static void check_pod_reader(const char *body, size_t len, const char *what)
{
    mm_adm_review full, part;
    mm_errbuf eb1, eb2;
    mm_err r1 = mm_adm_review_parse(body, len, &full, &eb1);
    mm_err r2 = mm_adm_review_parse_pod(body, len, &part, &eb2);

    if (r1 != r2 || (r1 != MM_OK && strcmp(eb1.msg, eb2.msg) != 0))
        fail_msg("%s: whole reader %d \"%s\", pod reader %d \"%s\"", what, r1,
                 r1 ? eb1.msg : "", r2, r2 ? eb2.msg : "");
    if (r1 == MM_OK) {
        json_object *ref, *want;
        char *z = mm_malloc(len + 1);
        assert_non_null(z);
        memcpy(z, body, len);
        z[len] = '\0';
        ref = json_tokener_parse(z);
        mm_free(z);
        if (!ref)
            fail_msg("%s: json-c refuses what the reader accepts", what);
        want = cut(ref, adm_mutate_keep);
        if (!json_object_equal(want, part.root))
            fail_msg("%s: the pod reader's tree is not json-c's cut down to the kept paths", what);
        json_object_put(want);
        json_object_put(ref);
        mm_adm_review_clear(&full);
        mm_adm_review_clear(&part);
    }
}

static void test_pod_reader_corpus(void **state)
{
    static const char *const dirs[] = {"fuzz/corpus/admission", "tests/k8s-samples"};
    size_t n = 0;
    (void)state;

    for (size_t d = 0; d < MM_ARRAY_LEN(dirs); d++) {
        DIR *dir = opendir(dirs[d]);
        struct dirent *e;
        assert_non_null(dir);
        while ((e = readdir(dir)) != NULL) {
            char path[512], *text;
            size_t len;
            mm_errbuf eb;
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", dirs[d], e->d_name);
            if (mm_read_file(path, 8u << 20, &text, &len, &eb) != MM_OK)
                continue; /* a directory */
            check_pod_reader(text, len, path);
            mm_free(text);
            n++;
        }
        closedir(dir);
    }
    assert_true(n > 400);
}

/* The sample review cut at every byte and with every byte replaced by each of a few that
 * break JSON: never a crash, always the whole reader's verdict, and a refusal names the byte. */
static void test_pod_reader_every_byte(void **state)
{
    static const char breakers[] = {'"', ']', '\\', '\0'};
    char *text;
    size_t len;
    mm_errbuf eb;
    (void)state;

    assert_int_equal(mm_read_file(SAMPLES "admissionreview-pod-create.json", 1u << 20, &text,
                                  &len, &eb), MM_OK);
    while (len && text[len - 1] != '}') /* the trailing newline: cuts before the end only */
        len--;
    for (size_t cut_at = 0; cut_at < len; cut_at++) {
        mm_adm_review rv;
        assert_int_not_equal(mm_adm_review_parse_pod(text, cut_at, &rv, &eb), MM_OK);
        assert_non_null(strstr(eb.msg, "at byte ")); /* a cut review is never whole JSON */
        check_pod_reader(text, cut_at, "cut");
    }
    for (size_t at = 0; at < len; at++) {
        char was = text[at];
        for (size_t k = 0; k < sizeof(breakers); k++) {
            char what[64];
            text[at] = breakers[k];
            snprintf(what, sizeof(what), "byte %zu as 0x%02x", at, (unsigned char)breakers[k]);
            check_pod_reader(text, len, what);
        }
        text[at] = was;
    }
    mm_free(text);
}

/* The whole review and the skipping one give the same response for `pod`. */
static void assert_same_answer(json_object *review_tmpl, json_object *pod, const char *what)
{
    json_object *rv = NULL;
    mm_adm_review full, part;
    mm_adm_config cfg;
    mm_adm_reason r1, r2;
    mm_errbuf eb;
    mm_buf o1, o2;
    const char *body;
    size_t len;

    print_message("%s\n", what);
    assert_int_equal(json_object_deep_copy(review_tmpl, &rv, NULL), 0);
    json_object_object_add(json_object_object_get(rv, "request"), "object", json_object_get(pod));
    body = json_object_to_json_string_length(rv, JSON_C_TO_STRING_PLAIN, &len);
    assert_int_equal(mm_adm_config_init(&cfg), MM_OK);
    mm_buf_init(&o1, 0);
    mm_buf_init(&o2, 0);
    assert_int_equal(mm_adm_review_parse(body, len, &full, &eb), MM_OK);
    assert_int_equal(mm_adm_review_parse_pod(body, len, &part, &eb), MM_OK);
    assert_int_equal(mm_adm_mutate(&full, &cfg, false, &o1, &r1, &eb), MM_OK);
    assert_int_equal(mm_adm_mutate(&part, &cfg, false, &o2, &r2, &eb), MM_OK);
    assert_int_equal(r1, r2);
    assert_string_equal(mm_buf_cstr(&o1), mm_buf_cstr(&o2));
    mm_buf_free(&o1);
    mm_buf_free(&o2);
    mm_adm_review_clear(&full);
    mm_adm_review_clear(&part);
    mm_adm_config_clear(&cfg);
    json_object_put(rv);
}

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);
    assert_non_null(o);
    return o;
}

static void set(json_object *obj, const char *key, const char *json)
{
    json_object_object_add(obj, key, parse(json));
}

static void test_same_answer(void **state)
{
    static const char *const lists[] = {SAMPLES "list-pods.json", SAMPLES "list-pods-page2.json"};
    json_object *review = load(SAMPLES "admissionreview-pod-create.json");
    json_object *sample = json_object_object_get(json_object_object_get(review, "request"), "object");
    size_t n = 0;
    (void)state;

    /* every recorded pod, opted in */
    for (size_t l = 0; l < MM_ARRAY_LEN(lists); l++) {
        json_object *list = load(lists[l]), *items = json_object_object_get(list, "items");
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            json_object *pod = json_object_array_get_idx(items, i);
            json_object *meta = json_object_object_get(pod, "metadata");
            json_object *labels = json_object_object_get(meta, "labels");
            char what[96];
            if (!labels) {
                labels = json_object_new_object();
                json_object_object_add(meta, "labels", labels);
            }
            json_object_object_add(labels, MM_ADM_LABEL_INJECT, json_object_new_string("true"));
            snprintf(what, sizeof(what), "%s items[%zu]", lists[l], i);
            assert_same_answer(review, pod, what);
            n++;
        }
        json_object_put(list);
    }
    assert_true(n >= 2);

    /* the parts the injection reads, each in use */
    {
        json_object *pod = NULL, *spec, *c0, *meta;
        assert_int_equal(json_object_deep_copy(sample, &pod, NULL), 0);
        spec = json_object_object_get(pod, "spec");
        meta = json_object_object_get(pod, "metadata");
        c0 = json_object_array_get_idx(json_object_object_get(spec, "containers"), 0);
        set(c0, "livenessProbe", "{\"httpGet\":{\"path\":\"/l\",\"port\":\"http\"}}");
        set(c0, "startupProbe", "{\"tcpSocket\":{\"port\":\"http\"}}");
        set(c0, "lifecycle", "{\"postStart\":{\"httpGet\":{\"path\":\"/s\",\"port\":\"http\"}},"
                             "\"preStop\":{\"tcpSocket\":{\"port\":\"http\"}}}");
        set(c0, "env", "[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"valueFrom\":"
                       "{\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}}]");
        set(c0, "securityContext", "{\"runAsNonRoot\":true,\"capabilities\":{\"drop\":[\"ALL\"]}}");
        set(spec, "initContainers",
            "[{\"name\":\"setup\",\"image\":\"busybox\",\"ports\":[{\"name\":\"x\",\"containerPort\":9000}],"
            "\"env\":[{\"name\":\"C\",\"value\":\"2\"}],\"resources\":{\"limits\":{\"cpu\":\"1\"}},"
            "\"volumeMounts\":[{\"name\":\"data\",\"mountPath\":\"/d\"}]}]");
        {
            json_object *vols = json_object_object_get(spec, "volumes");
            json_object_array_add(vols, parse("{\"name\":\"maskmesh-policies\",\"configMap\":{\"name\":\"x\"}}"));
            json_object_array_add(vols, parse("{\"name\":\"s\",\"secret\":{\"secretName\":\"y\"}}"));
            json_object_array_add(vols, parse("{\"name\":\"d\",\"downwardAPI\":{\"items\":[]}}"));
            json_object_array_add(vols, parse("{\"name\":\"data\",\"emptyDir\":{}}"));
        }
        set(spec, "affinity", "{\"nodeAffinity\":{}}");
        assert_same_answer(review, pod, "named probes and hooks, init container, volumes");

        set(meta, "annotations", "{\"maskmesh.io/mode\":\"iptables\",\"maskmesh.io/native-sidecar\":\"true\"}");
        assert_same_answer(review, pod, "iptables, native sidecar");

        set(meta, "annotations", "{\"maskmesh.io/port\":\"x\",\"maskmesh.io/upstream-protocol\":\"h2c\"}");
        assert_same_answer(review, pod, "the port of an init container, h2c");

        set(spec, "hostNetwork", "true");
        assert_same_answer(review, pod, "hostNetwork");
        json_object_put(pod);
    }
    json_object_put(review);
}

/* The string writer escapes as json-c does (mm_buf_put_json_str, json-c's own rendering):
 * every byte value alone and between plain runs, and strings mixing them. */
static void test_json_str(void **state)
{
    char in[64];
    uint32_t x = 2463534242u;
    (void)state;
    for (size_t trial = 0; trial < 4096; trial++) {
        size_t n = trial < 256 ? 3 : (trial % 60) + 1;
        mm_buf ours, ref;
        json_object *js;
        if (trial < 256) { /* byte `trial` between two plain bytes */
            in[0] = 'a';
            in[1] = (char)trial;
            in[2] = 'z';
        } else {
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                /* mostly plain, often a quote, backslash or control, sometimes high bytes */
                in[i] = x % 4 == 0 ? "\"\\\n\x01\x1f\t\b\f"[(x >> 8) % 8]
                                   : (char)(0x20 + (x >> 8) % 0xe0);
            }
        }
        mm_buf_init(&ours, 0);
        mm_buf_init(&ref, 0);
        assert_int_equal(adm_json_str(&ours, in, n), MM_OK);
        assert_int_equal(mm_buf_put_json_str(&ref, in, n), MM_OK);
        assert_int_equal(ours.len, ref.len);
        assert_memory_equal(ours.data, ref.data, ours.len);
        assert_int_equal(ours.data[ours.len], '\0');
        js = json_object_new_string_len(in, (int)n);
        assert_string_equal(mm_buf_cstr(&ours),
                            json_object_to_json_string_ext(js, JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(js);
        mm_buf_free(&ours);
        mm_buf_free(&ref);
    }
}

/* The patch's base64 is byte for byte OpenSSL's, at every length and padding. */
static void test_base64(void **state)
{
    unsigned char in[300];
    char ours[404], theirs[404];
    uint32_t x = 2463534242u;
    (void)state;
    for (size_t i = 0; i < sizeof(in); i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5; /* xorshift32: every byte value turns up */
        in[i] = (unsigned char)x;
    }
    for (size_t n = 0; n <= sizeof(in); n++) {
        int want = EVP_EncodeBlock((unsigned char *)theirs, in, (int)n);
        assert_int_equal(adm_base64(ours, in, n), (size_t)want);
        assert_string_equal(ours, theirs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_wildcard_paths),
        cmocka_unit_test(test_keep_paths),
        cmocka_unit_test(test_pod_reader_corpus),
        cmocka_unit_test(test_pod_reader_every_byte),
        cmocka_unit_test(test_same_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
