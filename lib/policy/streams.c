/* lib/policy/streams.c: spec.streams, the Kafka topics a policy protects with
 * maskmesh-stream. Read from the same document tree as the rest of the policy; errors go to
 * build.c's builder through a sink, so they carry the same FILE:LINE:COL: spec.streams.x
 * places. Nothing here talks to Kafka: lib/kafka does. */
#include "policy/policy_int.h"

#include <stdio.h>
#include <string.h>

#define TOPIC_MAX 249 /* Kafka's own limit on a topic name */
#define GROUP_MAX 249
#define BOOTSTRAP_MAX 4096
#define CTYPE_MAX 255

static void say(streams_sink *s, const node *n, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void say(streams_sink *s, const node *n, const char *sub, const char *fmt, ...)
{
    char msg[384];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->errors++;
    s->bad(s->ctx, n, sub, msg);
}

/* A string scalar (not a number or a boolean YAML typed for us), at most max bytes, copied. */
static char *str_of(streams_sink *s, const node *n, const char *sub, size_t max)
{
    char *v;

    if (n->kind != NODE_SCALAR || n->type != SC_STRING) {
        say(s, n, sub, "expected a string");
        return NULL;
    }
    if (n->len == 0 || n->len > max || strlen(n->text) != n->len) {
        say(s, n, sub, "expected 1 to %zu bytes without NUL", max);
        return NULL;
    }
    if (!(v = mm_strdup(n->text)))
        s->oom = true;
    return v;
}

/* Kafka's legal topic characters: ASCII letters, digits, '.', '_', '-'; not "." or "..". */
static bool topic_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > TOPIC_MAX || strcmp(t, ".") == 0 || strcmp(t, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static char *topic_of(streams_sink *s, const node *n, const char *sub)
{
    char *t = str_of(s, n, sub, TOPIC_MAX);
    if (t && !topic_ok(t)) {
        say(s, n, sub, "\"%.64s\" is not a Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', "
            "'-')", t);
        mm_free(t);
        return NULL;
    }
    return t;
}

/* host:port[,host:port...] with a port of 1-65535 each. */
static bool bootstrap_ok(const char *b)
{
    const char *p = b;
    while (*p) {
        const char *end = strchr(p, ','), *colon;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char port[8];
        long v;
        colon = memrchr(p, ':', n);
        if (!colon || colon == p || (size_t)(p + n - colon - 1) >= sizeof(port))
            return false;
        memcpy(port, colon + 1, (size_t)(p + n - colon - 1));
        port[p + n - colon - 1] = '\0';
        if (!mm_parse_long(port, 1, 65535, &v))
            return false;
        for (const char *q = p; q < colon; q++)
            if (*q == ' ' || *q == '/' || *q == '\t')
                return false;
        p += n;
        if (*p == ',' && !*++p)
            return false;
    }
    return true;
}

static int enum_of(streams_sink *s, const node *n, const char *sub, const char *const *names,
                   const char *expected)
{
    if (n->kind != NODE_SCALAR || n->type != SC_STRING) {
        say(s, n, sub, "expected one of %s", expected);
        return -1;
    }
    for (int i = 0; names[i]; i++)
        if (strcmp(n->text, names[i]) == 0)
            return i;
    say(s, n, sub, "unknown value \"%.40s\" (expected one of %s)", n->text, expected);
    return -1;
}

void streams_free(mm_policy_streams *st)
{
    if (!st)
        return;
    mm_free(st->bootstrap);
    for (size_t i = 0; i < st->n_inputs; i++)
        mm_free(st->inputs[i]);
    mm_free(st->inputs);
    mm_free(st->output);
    mm_free(st->dead_letter);
    mm_free(st->group);
    mm_free(st->content_type);
    mm_free(st->security_protocol);
    mm_free(st->sasl_mechanism);
    mm_free(st->secret);
    mm_free(st);
}

mm_policy_streams *streams_build(const node *n, streams_sink *s)
{
    static const char *const keys[] = {"bootstrapServers", "inputTopics", "outputTopic",
                                       "deadLetterTopic", "consumerGroup", "replicas",
                                       "contentType", "keys", "onError", "securityProtocol",
                                       "saslMechanism", "credentialsSecret", NULL};
    static const char *const key_modes[] = {"keep", "mask", NULL};
    static const char *const onerr[] = {"stop", "dead-letter", NULL};
    static const char *const protos[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL", NULL};
    static const char *const mechs[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", NULL};
    mm_policy_streams *st = NULL;
    const node *f;
    size_t errors = s->errors;
    char sub[48];
    int e;

    if (n->kind != NODE_MAP) {
        say(s, n, NULL, "expected a mapping");
        return NULL;
    }
    if (!(st = mm_calloc(1, sizeof(*st)))) {
        s->oom = true;
        return NULL;
    }
    st->replicas = 1;
    for (size_t i = 0; i < n->n; i += 2) {
        size_t k;
        for (k = 0; keys[k] && strcmp(n->items[i]->text, keys[k]) != 0; k++)
            ;
        if (!keys[k])
            say(s, n->items[i], n->items[i]->text, "unknown field (expected one of "
                "bootstrapServers, inputTopics, outputTopic, deadLetterTopic, consumerGroup, "
                "replicas, contentType, keys, onError, securityProtocol, saslMechanism, "
                "credentialsSecret)");
    }

    if (!(f = node_get(n, "bootstrapServers")))
        say(s, n, NULL, "bootstrapServers is required (host:port[,host:port...])");
    else if ((st->bootstrap = str_of(s, f, "bootstrapServers", BOOTSTRAP_MAX)) &&
             !bootstrap_ok(st->bootstrap))
        say(s, f, "bootstrapServers", "expected host:port[,host:port...]");

    if (!(f = node_get(n, "inputTopics")))
        say(s, n, NULL, "inputTopics is required (at least one topic)");
    else if (f->kind != NODE_SEQ || f->n == 0 || f->n > MM_POLICY_MAX_TOPICS)
        say(s, f, "inputTopics", "expected a list of 1 to %d topics", MM_POLICY_MAX_TOPICS);
    else if (!(st->inputs = mm_calloc(f->n, sizeof(char *))))
        s->oom = true;
    else {
        st->n_inputs = f->n;
        for (size_t i = 0; i < f->n; i++) {
            snprintf(sub, sizeof(sub), "inputTopics[%zu]", i);
            st->inputs[i] = topic_of(s, f->items[i], sub);
            for (size_t j = 0; j < i && st->inputs[i]; j++)
                if (st->inputs[j] && strcmp(st->inputs[j], st->inputs[i]) == 0)
                    say(s, f->items[i], sub, "duplicate topic (also inputTopics[%zu])", j);
        }
    }

    if (!(f = node_get(n, "outputTopic")))
        say(s, n, NULL, "outputTopic is required");
    else if ((st->output = topic_of(s, f, "outputTopic")))
        /* a masker reading its own output would mask forever */
        for (size_t i = 0; i < st->n_inputs; i++)
            if (st->inputs[i] && strcmp(st->inputs[i], st->output) == 0)
                say(s, f, "outputTopic", "is also an input topic (inputTopics[%zu])", i);

    if ((f = node_get(n, "deadLetterTopic")) &&
        (st->dead_letter = topic_of(s, f, "deadLetterTopic"))) {
        bool clash = st->output && strcmp(st->output, st->dead_letter) == 0;
        for (size_t i = 0; i < st->n_inputs; i++)
            clash |= st->inputs[i] && strcmp(st->inputs[i], st->dead_letter) == 0;
        if (clash)
            say(s, f, "deadLetterTopic", "must differ from the input and output topics");
    }

    if ((f = node_get(n, "consumerGroup")))
        st->group = str_of(s, f, "consumerGroup", GROUP_MAX);

    if ((f = node_get(n, "replicas"))) {
        if (f->kind != NODE_SCALAR || f->type != SC_INT ||
            !mm_parse_long(f->text, 0, MM_POLICY_MAX_REPLICAS, &st->replicas))
            say(s, f, "replicas", "expected an integer from 0 to %d (more than the input "
                "partitions are idle)", MM_POLICY_MAX_REPLICAS);
    }

    if ((f = node_get(n, "contentType")))
        st->content_type = str_of(s, f, "contentType", CTYPE_MAX);

    if ((f = node_get(n, "keys")) && (e = enum_of(s, f, "keys", key_modes, "keep, mask")) >= 0)
        st->mask_keys = e == 1;

    st->on_error = MM_STREAMS_ONERR_STOP;
    if ((f = node_get(n, "onError")) &&
        (e = enum_of(s, f, "onError", onerr, "stop, dead-letter")) >= 0)
        st->on_error = (mm_streams_on_error)e;
    if (st->on_error == MM_STREAMS_ONERR_DEAD_LETTER && !node_get(n, "deadLetterTopic"))
        say(s, f, "onError", "dead-letter needs deadLetterTopic");

    if ((f = node_get(n, "securityProtocol")) &&
        enum_of(s, f, "securityProtocol", protos, "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL") >= 0)
        st->security_protocol = str_of(s, f, "securityProtocol", 32);
    if ((f = node_get(n, "saslMechanism")) &&
        enum_of(s, f, "saslMechanism", mechs, "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512") >= 0)
        st->sasl_mechanism = str_of(s, f, "saslMechanism", 32);
    if (st->security_protocol && strncmp(st->security_protocol, "SASL_", 5) == 0 &&
        !st->sasl_mechanism)
        say(s, node_get(n, "securityProtocol"), "securityProtocol",
            "%s needs saslMechanism", st->security_protocol);
    if ((f = node_get(n, "credentialsSecret")))
        st->secret = str_of(s, f, "credentialsSecret", MM_POLICY_NAME_MAX);

    if (s->errors == errors && !s->oom)
        return st;
    streams_free(st);
    return NULL;
}
