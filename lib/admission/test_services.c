/* The upstream protocol from the Services that select the pod (appProtocol): the order
 * annotation > appProtocol > port name > HTTP/1.1, which Services and ports count, and what
 * happens when the Services cannot be read or disagree. The Services are shaped as the real
 * kube-apiserver lists them (tests/k8s-samples' ServiceList items: no kind, targetPort set). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "admission/admission.h"
#include "admission/admission_int.h"

#define REVIEW "tests/k8s-samples/admissionreview-pod-create.json"

/* What the lookup hands back: a ServiceList's items as JSON text, or NULL for a failure. */
typedef struct {
    const char *items;
    int calls;
} fake_api;

static json_object *lookup(void *ud, mm_buf *why)
{
    fake_api *f = ud;
    f->calls++;
    if (!f->items) {
        assert_int_equal(mm_buf_puts(why, "GET /api/v1/namespaces/shop/services: connection refused"), MM_OK);
        return NULL;
    }
    json_object *o = json_tokener_parse(f->items);
    assert_non_null(o);
    return o;
}

/* The sample CREATE review's pod (labels app=payments, port 8080 named "http"). */
static json_object *review_pod(char **body, size_t *len, mm_adm_review *rv)
{
    mm_errbuf eb;
    assert_int_equal(mm_read_file(REVIEW, MM_ADM_REVIEW_MAX, body, len, &eb), MM_OK);
    assert_int_equal(mm_adm_review_parse(*body, *len, rv, &eb), MM_OK);
    return rv->object;
}

/* Whether the injected sidecar's args carry --upstream-protocol=h2c. */
static bool sidecar_h2c(const mm_adm_result *r)
{
    assert_non_null(r->patch);
    for (size_t i = 0; i < json_object_array_length(r->patch); i++) {
        json_object *op = json_object_array_get_idx(r->patch, i);
        const char *path = jget_str(op, "path");
        json_object *args = jget_type(jget(op, "value"), "args", json_type_array);
        if (!path || strcmp(path, "/spec/containers/0") != 0 || !args)
            continue;
        for (size_t k = 0; k < json_object_array_length(args); k++)
            if (strcmp(json_object_get_string(json_object_array_get_idx(args, k)),
                       "--upstream-protocol=h2c") == 0)
                return true;
        return false;
    }
    fail_msg("no sidecar in the patch");
    return false;
}

static bool has_warning(const mm_adm_result *r, const char *needle)
{
    for (size_t i = 0; i < r->n_warnings; i++)
        if (strstr(r->warnings[i], needle))
            return true;
    return false;
}

#define SVC(name, sel, ports)                                                                  \
    "{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"shop\"},\"spec\":{\"selector\":" sel \
    ",\"ports\":[" ports "]}}"

static void test_order(void **state)
{
    static const struct {
        const char *what, *port_name, *annotation, *items;
        bool h2c, warned;
    } cases[] = {
        {"no Service: the port name (http)", "http", NULL, "[]", false, false},
        {"no Service: the port name (grpc)", "grpc", NULL, "[]", true, false},
        {"kubernetes.io/h2c beats the port name http", "http", NULL,
         "[" SVC("api", "{\"app\":\"payments\"}",
                 "{\"name\":\"web\",\"protocol\":\"TCP\",\"port\":80,\"targetPort\":8080,"
                 "\"appProtocol\":\"kubernetes.io/h2c\"}") "]", true, false},
        {"appProtocol http beats the port name grpc", "grpc", NULL,
         "[" SVC("api", "{\"app\":\"payments\"}",
                 "{\"port\":80,\"targetPort\":8080,\"appProtocol\":\"http\"}") "]", false, false},
        {"the annotation beats appProtocol", "http", "h1",
         "[" SVC("api", "{\"app\":\"payments\"}",
                 "{\"port\":80,\"targetPort\":8080,\"appProtocol\":\"grpc\"}") "]", false, false},
        {"targetPort by the container port's name, GRPC in capitals", "http", NULL,
         "[" SVC("api", "{\"app\":\"payments\"}",
                 "{\"port\":80,\"targetPort\":\"http\",\"appProtocol\":\"GRPC\"}") "]", true, false},
        {"targetPort absent: port is the target", "http", NULL,
         "[" SVC("api", "{\"app\":\"payments\"}",
                 "{\"port\":8080,\"appProtocol\":\"http2\"}") "]", true, false},
        {"another target port does not count", "http", NULL,
         "[" SVC("api", "{\"app\":\"payments\"}",
                 "{\"port\":80,\"targetPort\":9090,\"appProtocol\":\"grpc\"}") "]", false, false},
        {"a UDP port does not count", "http", NULL,
         "[" SVC("api", "{\"app\":\"payments\"}",
                 "{\"port\":8080,\"protocol\":\"UDP\",\"targetPort\":8080,\"appProtocol\":\"grpc\"}") "]",
         false, false},
        {"a Service selecting other pods does not count", "http", NULL,
         "[" SVC("api", "{\"app\":\"orders\"}",
                 "{\"port\":80,\"targetPort\":8080,\"appProtocol\":\"grpc\"}") "]", false, false},
        {"a selector with a label the pod lacks does not count", "http", NULL,
         "[" SVC("api", "{\"app\":\"payments\",\"tier\":\"db\"}",
                 "{\"port\":80,\"targetPort\":8080,\"appProtocol\":\"grpc\"}") "]", false, false},
        {"a Service without a selector does not count", "http", NULL,
         "[{\"metadata\":{\"name\":\"ext\"},\"spec\":{\"ports\":[{\"port\":80,\"targetPort\":8080,"
         "\"appProtocol\":\"grpc\"}]}}]", false, false},
        {"appProtocol tcp says nothing: the port name", "grpc", NULL,
         "[" SVC("api", "{\"app\":\"payments\"}",
                 "{\"port\":80,\"targetPort\":8080,\"appProtocol\":\"tcp\"}") "]", true, false},
        {"two Services agreeing", "http", NULL,
         "[" SVC("a", "{\"app\":\"payments\"}",
                 "{\"port\":80,\"targetPort\":8080,\"appProtocol\":\"kubernetes.io/h2c\"}") ","
             SVC("b", "{\"pod-template-hash\":\"7c9d8b5f4d\"}",
                 "{\"port\":81,\"targetPort\":\"http\",\"appProtocol\":\"grpc\"}") "]", true, false},
        {"two Services disagreeing: the port name, and a warning", "grpc", NULL,
         "[" SVC("a", "{\"app\":\"payments\"}",
                 "{\"port\":80,\"targetPort\":8080,\"appProtocol\":\"http\"}") ","
             SVC("b", "{\"app\":\"payments\"}",
                 "{\"port\":81,\"targetPort\":8080,\"appProtocol\":\"grpc\"}") "]", true, true},
        {"the API unreachable: the port name, and a warning", "grpc", NULL, NULL, true, true},
    };
    mm_adm_config cfg;
    (void)state;
    assert_int_equal(mm_adm_config_init(&cfg), MM_OK);
    for (size_t i = 0; i < MM_ARRAY_LEN(cases); i++) {
        fake_api f = {.items = cases[i].items};
        mm_adm_opts o = {.services = lookup, .services_ud = &f};
        mm_adm_review rv;
        mm_adm_result r;
        mm_errbuf eb;
        char *body;
        size_t len;
        json_object *pod = review_pod(&body, &len, &rv), *ann = NULL;

        print_message("case %zu: %s\n", i, cases[i].what);
        json_object_object_add(json_object_array_get_idx(
                                   jget(json_object_array_get_idx(jget(jget(pod, "spec"), "containers"), 0),
                                        "ports"), 0),
                               "name", json_object_new_string(cases[i].port_name));
        if (cases[i].annotation) {
            ann = json_object_new_object();
            json_object_object_add(ann, MM_ADM_ANN_UPSTREAM, json_object_new_string(cases[i].annotation));
            json_object_object_add(jget(pod, "metadata"), "annotations", ann);
        }
        assert_int_equal(mm_adm_inject(pod, &cfg, &o, &r, &eb), MM_OK);
        assert_int_equal(r.reason, MM_ADM_INJECTED);
        assert_int_equal(sidecar_h2c(&r), cases[i].h2c);
        /* the lookup is made only when the annotation has not decided */
        assert_int_equal(f.calls, cases[i].annotation ? 0 : 1);
        assert_int_equal(has_warning(&r, "upstream protocol follows the port name"), cases[i].warned);
        if (!cases[i].items)
            assert_true(has_warning(&r, "connection refused"));
        if (cases[i].warned && cases[i].items)
            assert_true(has_warning(&r, "Service \"a\" port 80 appProtocol \"http\", Service \"b\" "
                                        "port 81 appProtocol \"grpc\""));
        mm_adm_result_clear(&r);
        mm_adm_review_clear(&rv);
        mm_free(body);
    }
    mm_adm_config_clear(&cfg);
}

/* Pods the webhook does not inject cost no API call; with no Service saying anything the
 * response is byte for byte what mm_adm_mutate gives without a lookup. */
static void test_mutate_lookup(void **state)
{
    mm_adm_config cfg;
    fake_api f = {.items = "[]"};
    mm_adm_review rv;
    mm_adm_reason r1, r2;
    mm_errbuf eb;
    mm_buf o1, o2;
    char *body;
    size_t len;
    json_object *pod;
    (void)state;

    assert_int_equal(mm_adm_config_init(&cfg), MM_OK);
    pod = review_pod(&body, &len, &rv);
    mm_buf_init(&o1, 0);
    mm_buf_init(&o2, 0);
    assert_int_equal(mm_adm_mutate(&rv, &cfg, false, &o1, &r1, &eb), MM_OK);
    assert_int_equal(mm_adm_mutate_opts(&rv, &cfg, &(mm_adm_opts){.services = lookup, .services_ud = &f},
                                        &o2, &r2, &eb), MM_OK);
    assert_int_equal(f.calls, 1);
    assert_int_equal(r1, MM_ADM_INJECTED);
    assert_int_equal(r2, MM_ADM_INJECTED);
    assert_string_equal(mm_buf_cstr(&o1), mm_buf_cstr(&o2));

    /* opted out: no lookup */
    json_object_object_add(jget(jget(pod, "metadata"), "labels"), MM_ADM_LABEL_INJECT,
                           json_object_new_string("false"));
    mm_buf_reset(&o2);
    assert_int_equal(mm_adm_mutate_opts(&rv, &cfg, &(mm_adm_opts){.services = lookup, .services_ud = &f},
                                        &o2, &r2, &eb), MM_OK);
    assert_int_equal(r2, MM_ADM_OPTED_OUT);
    assert_int_equal(f.calls, 1);

    /* the API unreachable: still injected, the warning reaches the user */
    json_object_object_add(jget(jget(pod, "metadata"), "labels"), MM_ADM_LABEL_INJECT,
                           json_object_new_string("true"));
    f.items = NULL;
    mm_buf_reset(&o2);
    assert_int_equal(mm_adm_mutate_opts(&rv, &cfg, &(mm_adm_opts){.services = lookup, .services_ud = &f},
                                        &o2, &r2, &eb), MM_OK);
    assert_int_equal(r2, MM_ADM_INJECTED);
    assert_non_null(strstr(mm_buf_cstr(&o2), "\"allowed\":true"));
    assert_non_null(strstr(mm_buf_cstr(&o2), "could not be read (GET /api/v1/namespaces/shop/services: "
                                             "connection refused)"));
    mm_buf_free(&o1);
    mm_buf_free(&o2);
    mm_adm_review_clear(&rv);
    mm_free(body);
    mm_adm_config_clear(&cfg);
}

static void test_app_protocol_values(void **state)
{
    (void)state;
    assert_int_equal(adm_app_protocol("kubernetes.io/h2c"), ADM_PROTO_H2C);
    assert_int_equal(adm_app_protocol("Kubernetes.io/H2C"), ADM_PROTO_H2C);
    assert_int_equal(adm_app_protocol("grpc"), ADM_PROTO_H2C);
    assert_int_equal(adm_app_protocol("grpc-web"), ADM_PROTO_H2C);
    assert_int_equal(adm_app_protocol("http2"), ADM_PROTO_H2C);
    assert_int_equal(adm_app_protocol("HTTP"), ADM_PROTO_H1);
    assert_int_equal(adm_app_protocol("kubernetes.io/ws"), ADM_PROTO_H1);
    assert_int_equal(adm_app_protocol("kubernetes.io/wss"), ADM_PROTO_UNSET);
    assert_int_equal(adm_app_protocol("https"), ADM_PROTO_UNSET);
    assert_int_equal(adm_app_protocol("h2c"), ADM_PROTO_UNSET); /* not a value Istio reads */
    assert_int_equal(adm_app_protocol(""), ADM_PROTO_UNSET);
    assert_int_equal(adm_app_protocol(NULL), ADM_PROTO_UNSET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_mutate_lookup),
        cmocka_unit_test(test_app_protocol_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
