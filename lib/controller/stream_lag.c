/* lib/controller/stream_lag.c: how far a policy's maskers are behind, for status.stream.
 *
 * The controller asks the maskers, the way Strimzi's operator asks the Kafka Connect workers
 * it runs for their connectors' state (their REST API) rather than the broker: each ready pod
 * of the stream Deployment serves maskmesh_stream_lag_records{topic,partition} and
 * maskmesh_stream_stopped_partitions on its admin port (the port named "admin"), and the
 * controller reads /metrics of each. So the controller needs no Kafka client (librdkafka stays
 * in maskmesh-stream alone), no broker credentials (the credentialsSecret is mounted in the
 * maskers only) and no route to the brokers; and the maskers need no API rights (they do not
 * write Leases or annotations, so no status traffic goes through etcd from them). KEDA's
 * computation from the broker (committed offset to log end) would also see lag while no
 * masker runs; here no ready pod means the lag is unknown and status.stream says so
 * (Ready is then False anyway). A partition two pods report during a rebalance counts once,
 * at the larger lag. */
#include "controller/controller_int.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRAPE_MAX_PODS 64               /* pods read per policy and round */
#define SCRAPE_MAX_BYTES (4 * 1024 * 1024) /* one /metrics answer */
#define SCRAPE_TIMEOUT_MS 2000L
#define LAG_MAX_PARTITIONS 65536          /* distinct partitions counted per policy */

static const mm_k8s_ref PODS = {"", "v1", "pods", NULL, NULL, NULL};

typedef struct {
    char *topic;
    long partition;
    int64_t lag;
} part;

typedef struct {
    part *p;
    size_t n, cap;
} parts;

static mm_err parts_put(parts *ps, const char *topic, size_t tlen, long partition, int64_t lag)
{
    for (size_t i = 0; i < ps->n; i++)
        if (ps->p[i].partition == partition && strlen(ps->p[i].topic) == tlen &&
            memcmp(ps->p[i].topic, topic, tlen) == 0) {
            if (lag > ps->p[i].lag)
                ps->p[i].lag = lag;
            return MM_OK;
        }
    if (ps->n == LAG_MAX_PARTITIONS)
        return MM_ELIMIT;
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 64;
        part *np = mm_realloc(ps->p, cap * sizeof(*np));
        if (!np)
            return MM_ENOMEM;
        ps->p = np;
        ps->cap = cap;
    }
    if (!(ps->p[ps->n].topic = mm_strndup(topic, tlen)))
        return MM_ENOMEM;
    ps->p[ps->n].partition = partition;
    ps->p[ps->n++].lag = lag;
    return MM_OK;
}

static void parts_free(parts *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        mm_free(ps->p[i].topic);
    mm_free(ps->p);
}

/* The value of label `name` in a Prometheus label set `{a="x",b="y"}` (escapes: a topic
 * name has none, Kafka allows only [a-zA-Z0-9._-]). */
static bool label(const char *set, size_t len, const char *name, const char **v, size_t *vlen)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + nl + 2 < len; i++) {
        if ((i == 0 || set[i - 1] == '{' || set[i - 1] == ',') &&
            memcmp(set + i, name, nl) == 0 && set[i + nl] == '=' && set[i + nl + 1] == '"') {
            const char *s = set + i + nl + 2, *e = memchr(s, '"', len - (size_t)(s - set));
            if (!e)
                return false;
            *v = s;
            *vlen = (size_t)(e - s);
            return true;
        }
    }
    return false;
}

/* Adds one pod's exposition text to ps and its stopped partitions to *stopped. Lines of
 * other families, comments and samples without both labels are skipped. */
static mm_err parse_into(const char *text, size_t len, parts *ps, int64_t *stopped)
{
    static const char LAG[] = "maskmesh_stream_lag_records{", STOP[] = "maskmesh_stream_stopped_partitions ";
    const char *p = text, *end = text + len;
    mm_err rc = MM_OK;

    while (p < end && rc == MM_OK) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end;
        size_t ll = (size_t)(le - p);
        char num[32];
        if (ll > sizeof(STOP) - 1 && memcmp(p, STOP, sizeof(STOP) - 1) == 0) {
            snprintf(num, sizeof(num), "%.*s", (int)(ll - (sizeof(STOP) - 1)), p + sizeof(STOP) - 1);
            *stopped += (int64_t)strtod(num, NULL);
        } else if (ll > sizeof(LAG) - 1 && memcmp(p, LAG, sizeof(LAG) - 1) == 0) {
            const char *set = p + sizeof(LAG) - 2, *close = memchr(set, '}', ll - (sizeof(LAG) - 2));
            const char *topic, *pn;
            size_t tl, pl;
            if (close && label(set, (size_t)(close - set), "topic", &topic, &tl) &&
                label(set, (size_t)(close - set), "partition", &pn, &pl) && pl < 12 && tl > 0) {
                long partition;
                double v;
                snprintf(num, sizeof(num), "%.*s", (int)pl, pn);
                partition = strtol(num, NULL, 10);
                snprintf(num, sizeof(num), "%.*s", (int)(le - close - 1), close + 1);
                v = strtod(num, NULL);
                rc = parts_put(ps, topic, tl, partition, v > 0 ? (int64_t)v : 0);
            }
        }
        p = nl ? nl + 1 : end;
    }
    return rc;
}

static void sum(const parts *ps, int64_t stopped, ctrl_lag *out)
{
    out->known = true;
    out->lag = 0;
    out->max_partition_lag = 0;
    out->partitions = (int64_t)ps->n;
    out->stopped = stopped;
    for (size_t i = 0; i < ps->n; i++) {
        out->lag += ps->p[i].lag;
        if (ps->p[i].lag > out->max_partition_lag)
            out->max_partition_lag = ps->p[i].lag;
    }
}

mm_err ctrl_lag_parse(const char *const *texts, size_t n, ctrl_lag *out, mm_errbuf *eb)
{
    parts ps = {0};
    int64_t stopped = 0;
    mm_err rc = MM_OK;

    for (size_t i = 0; i < n && rc == MM_OK; i++)
        rc = parse_into(texts[i], strlen(texts[i]), &ps, &stopped);
    if (rc != MM_OK)
        mm_errf(eb, rc, rc == MM_ELIMIT ? "more than %d partitions reported" : "out of memory",
                LAG_MAX_PARTITIONS);
    else
        sum(&ps, stopped, out);
    out->pods = (int64_t)n;
    parts_free(&ps);
    return rc;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    mm_buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > SCRAPE_MAX_BYTES || mm_buf_append(b, data, n) != MM_OK)
        return 0; /* curl fails the transfer */
    return n;
}

/* GET http://ip:port/metrics into b; false (and a log line) when the pod does not answer. */
static bool scrape(CURL *h, const char *pod, const char *ip, long port, mm_buf *b)
{
    char url[128];
    long code = 0;
    CURLcode cc;

    snprintf(url, sizeof(url), strchr(ip, ':') ? "http://[%s]:%ld/metrics" : "http://%s:%ld/metrics",
             ip, port);
    mm_buf_reset(b);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* a pod IP is never reached through a proxy */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, SCRAPE_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, SCRAPE_TIMEOUT_MS / 2);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (cc != CURLE_OK || code != 200) {
        char why[64];
        snprintf(why, sizeof(why), "%s (HTTP %ld)", cc != CURLE_OK ? curl_easy_strerror(cc) : "answer", code);
        mm_log(MM_LOG_WARN, "a masker's metrics could not be read", "pod", pod, "url", url,
               "error", why, NULL);
        return false;
    }
    return true;
}

/* The admin port of a pod: containers[].ports[] named "admin". */
static long admin_port(struct json_object *pod)
{
    struct json_object *cs = ctrl_field(ctrl_field(pod, "spec", NULL), "containers", NULL);
    for (size_t i = 0; cs && i < json_object_array_length(cs); i++) {
        struct json_object *ports = ctrl_field(json_object_array_get_idx(cs, i), "ports", NULL);
        for (size_t j = 0; ports && j < json_object_array_length(ports); j++) {
            struct json_object *p = json_object_array_get_idx(ports, j);
            const char *n = json_object_get_string(ctrl_field(p, "name", NULL));
            if (n && strcmp(n, "admin") == 0)
                return (long)json_object_get_int64(ctrl_field(p, "containerPort", NULL));
        }
    }
    return 0;
}

static bool pod_ready(struct json_object *pod)
{
    struct json_object *conds = ctrl_field(ctrl_field(pod, "status", NULL), "conditions", NULL);
    if (ctrl_meta_str(pod, "deletionTimestamp"))
        return false;
    for (size_t i = 0; conds && i < json_object_array_length(conds); i++) {
        struct json_object *c = json_object_array_get_idx(conds, i);
        const char *t = json_object_get_string(ctrl_field(c, "type", NULL)),
                   *s = json_object_get_string(ctrl_field(c, "status", NULL));
        if (t && s && strcmp(t, "Ready") == 0)
            return strcmp(s, "True") == 0;
    }
    return false;
}

/* "k=v,k2=v2" of a Deployment's spec.selector.matchLabels. */
static mm_err selector_of(struct json_object *dep, mm_buf *sel, mm_errbuf *eb)
{
    struct json_object *ml = ctrl_field(ctrl_field(ctrl_field(dep, "spec", NULL), "selector", NULL),
                                        "matchLabels", NULL);
    if (!ml || !json_object_is_type(ml, json_type_object) || json_object_object_length(ml) == 0)
        return mm_errf(eb, MM_EINVAL, "the stream Deployment has no spec.selector.matchLabels");
    json_object_object_foreach(ml, k, v) {
        if (mm_buf_printf(sel, "%s%s=%s", sel->len ? "," : "", k, json_object_get_string(v)) != MM_OK)
            return mm_errf(eb, MM_ENOMEM, "out of memory");
    }
    return MM_OK;
}

mm_err ctrl_stream_lag(mm_k8s_client *client, const char *ns, struct json_object *dep,
                       ctrl_lag *out, mm_errbuf *eb)
{
    mm_k8s_ref ref = PODS;
    mm_k8s_result res = {0};
    mm_buf sel, body;
    parts ps = {0};
    int64_t stopped = 0;
    size_t asked = 0;
    CURL *h = NULL;
    mm_err rc;

    memset(out, 0, sizeof(*out));
    mm_buf_init(&sel, 0);
    mm_buf_init(&body, 0);
    ref.ns = ns;
    if ((rc = selector_of(dep, &sel, eb)) != MM_OK ||
        (rc = mm_k8s_list(client, &ref, &(mm_k8s_list_opts){.label_selector = sel.data}, &res, eb)) != MM_OK)
        goto out;
    if (!(h = curl_easy_init())) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    struct json_object *items = ctrl_field(res.body, "items", NULL);
    for (size_t i = 0; items && i < json_object_array_length(items) && asked < SCRAPE_MAX_PODS; i++) {
        struct json_object *pod = json_object_array_get_idx(items, i);
        const char *ip = json_object_get_string(ctrl_field(ctrl_field(pod, "status", NULL), "podIP", NULL));
        const char *name = ctrl_meta_str(pod, "name");
        long port = admin_port(pod);
        if (!ip || !*ip || strlen(ip) > 45 || port <= 0 || port > 65535 || !pod_ready(pod))
            continue;
        asked++;
        if (!scrape(h, name ? name : "?", ip, port, &body))
            continue;
        if ((rc = parse_into(body.data, body.len, &ps, &stopped)) != MM_OK) {
            mm_errf(eb, rc, "pod %s/%s: %s", ns, name ? name : "?",
                    rc == MM_ELIMIT ? "too many partitions reported" : "out of memory");
            goto out;
        }
        out->pods++;
    }
    if (out->pods)
        sum(&ps, stopped, out);
out:
    if (h)
        curl_easy_cleanup(h);
    parts_free(&ps);
    mm_k8s_result_clear(&res);
    mm_buf_free(&sel);
    mm_buf_free(&body);
    return rc;
}
