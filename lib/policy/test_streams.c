/* Unit tests for spec.streams: what parses, what is refused with which place, and what the
 * controller renders for it (the ConfigMap the masker reads back into the same policy; the
 * Deployment with its replicas, mounts and the hash that rolls it on a topic change only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

static const char *const head =
    "apiVersion: maskmesh.io/v1alpha1\n"
    "kind: MaskingPolicy\n"
    "metadata: {name: orders, namespace: shop}\n"
    "spec:\n"
    "  selector: {}\n"
    "  rules:\n"
    "    - {name: card, fields: [\"$.card\"], action: {type: mask, keepLast: 4}}\n"
    "  streams:\n";

static mm_err parse(const char *streams, mm_policy_set **set, mm_errbuf *eb)
{
    char text[4096];
    snprintf(text, sizeof(text), "%s%s", head, streams);
    *set = NULL;
    return mm_policy_parse_yaml(text, strlen(text), "p.yaml", set, NULL, eb);
}

static void test_parses(void **state)
{
    mm_policy_set *set = NULL;
    mm_errbuf eb = {{0}};
    (void)state;
    assert_int_equal(parse("    bootstrapServers: \"k1:9092,k2:9093\"\n"
                           "    inputTopics: [orders, refunds]\n"
                           "    outputTopic: orders.masked\n"
                           "    deadLetterTopic: orders-dlq\n"
                           "    onError: dead-letter\n"
                           "    replicas: 3\n"
                           "    keys: mask\n"
                           "    securityProtocol: SASL_SSL\n"
                           "    saslMechanism: SCRAM-SHA-512\n"
                           "    credentialsSecret: kafka-creds\n",
                           &set, &eb),
                     MM_OK);
    const mm_policy_streams *st = mm_policy_set_get(set, 0)->streams;
    assert_non_null(st);
    assert_string_equal(st->bootstrap, "k1:9092,k2:9093");
    assert_int_equal(st->n_inputs, 2);
    assert_string_equal(st->inputs[1], "refunds");
    assert_string_equal(st->output, "orders.masked");
    assert_string_equal(st->dead_letter, "orders-dlq");
    assert_int_equal(st->on_error, MM_STREAMS_ONERR_DEAD_LETTER);
    assert_int_equal(st->replicas, 3);
    assert_true(st->mask_keys);
    assert_string_equal(st->sasl_mechanism, "SCRAM-SHA-512");
    assert_string_equal(st->secret, "kafka-creds");
    assert_null(st->group);
    mm_policy_set_free(set);

    /* defaults: one replica, stop on error, keys kept */
    assert_int_equal(parse("    bootstrapServers: k:9092\n    inputTopics: [a]\n    outputTopic: b\n",
                           &set, &eb), MM_OK);
    st = mm_policy_set_get(set, 0)->streams;
    assert_int_equal(st->replicas, 1);
    assert_int_equal(st->on_error, MM_STREAMS_ONERR_STOP);
    assert_false(st->mask_keys);
    mm_policy_set_free(set);
}

static void test_refuses_with_places(void **state)
{
    static const struct {
        const char *streams, *want;
    } cases[] = {
        {"    inputTopics: [a]\n    outputTopic: b\n",
         "p.yaml:9:5: spec.streams: bootstrapServers is required"},
        {"    bootstrapServers: k\n    inputTopics: [a]\n    outputTopic: b\n",
         "spec.streams.bootstrapServers: expected host:port"},
        {"    bootstrapServers: k:9092\n    inputTopics: [a, \"b c\"]\n    outputTopic: d\n",
         "p.yaml:10:22: spec.streams.inputTopics[1]: \"b c\" is not a Kafka topic name"},
        {"    bootstrapServers: k:9092\n    inputTopics: [a, b]\n    outputTopic: b\n",
         "spec.streams.outputTopic: is also an input topic (inputTopics[1])"},
        {"    bootstrapServers: k:9092\n    inputTopics: [a]\n    outputTopic: b\n    onError: dead-letter\n",
         "spec.streams.onError: dead-letter needs deadLetterTopic"},
        {"    bootstrapServers: k:9092\n    inputTopics: [a]\n    outputTopic: b\n    replicas: 1000\n",
         "spec.streams.replicas: expected an integer from 0 to 256"},
        {"    bootstrapServers: k:9092\n    inputTopics: [a]\n    outputTopic: b\n    securityProtocol: SASL_SSL\n",
         "spec.streams.securityProtocol: SASL_SSL needs saslMechanism"},
        {"    bootstrapServers: k:9092\n    inputTopics: [a]\n    outputTopic: b\n    topic: x\n",
         "spec.streams.topic: unknown field"},
        {"    bootstrapServers: k:9092\n    inputTopics: []\n    outputTopic: b\n",
         "spec.streams.inputTopics: expected a list of 1 to 64 topics"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mm_policy_set *set = NULL;
        mm_errbuf eb = {{0}};
        assert_int_equal(parse(cases[i].streams, &set, &eb), MM_EINVAL);
        assert_null(set);
        if (!strstr(eb.msg, cases[i].want))
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, eb.msg, cases[i].want);
    }
}

static struct json_object *obj(const char *topic, const char *secret, int replicas, const char *rule)
{
    char buf[2048];
    snprintf(buf, sizeof(buf),
             "{\"apiVersion\":\"maskmesh.io/v1alpha1\",\"kind\":\"MaskingPolicy\","
             "\"metadata\":{\"name\":\"orders\",\"namespace\":\"shop\",\"uid\":\"u-1\",\"generation\":4},"
             "\"spec\":{\"selector\":{},\"rules\":[{\"name\":\"card\",\"fields\":[\"$.card\"],"
             "\"action\":{\"type\":\"%s\"}}],\"streams\":{\"bootstrapServers\":\"k:9092\","
             "\"inputTopics\":[\"%s\"],\"outputTopic\":\"out\",\"replicas\":%d%s%s%s}}}",
             rule, topic, replicas, secret ? ",\"credentialsSecret\":\"" : "", secret ? secret : "",
             secret ? "\"" : "");
    struct json_object *o = json_tokener_parse(buf);
    assert_non_null(o);
    return o;
}

static const char *at(struct json_object *o, const char *path)
{
    char seg[128];
    while (*path) {
        const char *dot = strchr(path, '/');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        snprintf(seg, sizeof(seg), "%.*s", (int)n, path);
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)strtol(seg, NULL, 10));
        else if (!json_object_object_get_ex(o, seg, &o))
            return NULL;
        if (!o)
            return NULL;
        path += n + (dot ? 1 : 0);
    }
    return json_object_get_string(o);
}

static void test_render(void **state)
{
    struct json_object *p = obj("in", "kafka-creds", 3, "redact"), *cm = NULL, *dep = NULL;
    struct json_object *cm2 = NULL, *dep2 = NULL, *cm3 = NULL, *dep3 = NULL;
    mm_stream_render_opts o = {.image = "reg/maskmesh-stream:1.2"};
    mm_errbuf eb = {{0}};
    (void)state;
    assert_int_equal(mm_policy_render_stream(p, &o, &cm, &dep, &eb), MM_OK);
    assert_string_equal(at(cm, "metadata/name"), "maskmesh-stream-orders");
    assert_string_equal(at(cm, "metadata/ownerReferences/0/uid"), "u-1");
    /* the masker reads the ConfigMap back into the same policy, streams and all */
    const char *text = at(cm, "data/" MM_POLICY_CONFIGMAP_KEY);
    mm_policy_set *set = NULL;
    assert_int_equal(mm_policy_parse_yaml(text, strlen(text), "cm", &set, NULL, &eb), MM_OK);
    assert_string_equal(mm_policy_set_get(set, 0)->streams->inputs[0], "in");
    mm_policy_set_free(set);

    assert_string_equal(at(dep, "kind"), "Deployment");
    assert_string_equal(at(dep, "metadata/namespace"), "shop");
    assert_string_equal(at(dep, "spec/replicas"), "3");
    assert_string_equal(at(dep, "spec/template/spec/containers/0/image"), "reg/maskmesh-stream:1.2");
    assert_string_equal(at(dep, "spec/template/spec/containers/0/args/3"), "orders");
    assert_string_equal(at(dep, "spec/template/spec/volumes/0/configMap/name"), "maskmesh-stream-orders");
    assert_string_equal(at(dep, "spec/template/spec/volumes/2/secret/secretName"), "kafka-creds");
    assert_string_equal(at(dep, "spec/template/spec/containers/0/args/9"), "/etc/maskmesh/kafka");
    /* keys with '/' in them are read directly */
    struct json_object *ann = NULL, *h1 = NULL, *h2 = NULL, *h3 = NULL;
    json_object_object_get_ex(json_object_object_get(json_object_object_get(json_object_object_get(
        json_object_object_get(dep, "spec"), "template"), "metadata"), "annotations"), "maskmesh.io/streams-hash", &h1);
    assert_non_null(h1);
    assert_int_equal(strlen(json_object_get_string(h1)), 64);

    /* a rule change keeps the hash (no roll); a topic change moves it */
    struct json_object *p2 = obj("in", "kafka-creds", 3, "remove"), *p3 = obj("in2", "kafka-creds", 3, "redact");
    assert_int_equal(mm_policy_render_stream(p2, &o, &cm2, &dep2, &eb), MM_OK);
    assert_int_equal(mm_policy_render_stream(p3, &o, &cm3, &dep3, &eb), MM_OK);
    ann = json_object_object_get(json_object_object_get(json_object_object_get(
        json_object_object_get(dep2, "spec"), "template"), "metadata"), "annotations");
    json_object_object_get_ex(ann, "maskmesh.io/streams-hash", &h2);
    ann = json_object_object_get(json_object_object_get(json_object_object_get(
        json_object_object_get(dep3, "spec"), "template"), "metadata"), "annotations");
    json_object_object_get_ex(ann, "maskmesh.io/streams-hash", &h3);
    assert_string_equal(json_object_get_string(h1), json_object_get_string(h2));
    assert_string_not_equal(json_object_get_string(h1), json_object_get_string(h3));
    assert_string_not_equal(at(cm, "data/" MM_POLICY_CONFIGMAP_KEY), at(cm2, "data/" MM_POLICY_CONFIGMAP_KEY));

    /* no streams: refused, naming the policy */
    struct json_object *plain = json_tokener_parse("{\"metadata\":{\"name\":\"web\"},\"spec\":{}}"), *x = NULL, *y = NULL;
    assert_int_equal(mm_policy_render_stream(plain, &o, &x, &y, &eb), MM_EINVAL);
    assert_non_null(strstr(eb.msg, "policy web has no spec.streams"));
    json_object_put(plain);
    json_object_put(p);
    json_object_put(p2);
    json_object_put(p3);
    json_object_put(cm);
    json_object_put(dep);
    json_object_put(cm2);
    json_object_put(dep2);
    json_object_put(cm3);
    json_object_put(dep3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses),
        cmocka_unit_test(test_refuses_with_places),
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
