/* lib/controller: Events sent off the reconcile path. A reconcile hands an Event to a bounded
 * queue and goes on; one sender thread creates them, as client-go's event broadcaster does
 * (its buffer holds 1,000 and drops when full). An Event is a note, not state: when the queue
 * is full or the server refuses one it is dropped and counted, never retried. On stop the
 * sender empties the queue for at most EVENTS_DRAIN_MS, then drops the rest. The queue holds
 * each Event as its JSON text (~600 bytes), parsed again just before it is sent: as json-c
 * trees (about 1 KB a node) a full queue held ~4 MB, the text ~0.6 MB. */
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "controller/controller_int.h"

#define EVENTS_MAX 1000
#define EVENTS_DRAIN_MS 2000

struct ctrl_events {
    mm_k8s_client *client; /* borrowed */
    char *field_manager;
    pthread_mutex_t lock; /* guards q, head, n, stopping */
    pthread_cond_t cond;
    char *q[EVENTS_MAX]; /* a ring of owned Events, as JSON text */
    size_t head, n;
    bool stopping;
    pthread_t thread;
    bool running;
    mm_metric *dropped; /* may be NULL */
};

static void send_one(ctrl_events *ev, struct json_object *e)
{
    mm_k8s_result res = {0};
    mm_errbuf eb = {{0}};
    const char *ns = ctrl_meta_str(e, "namespace");
    mm_k8s_ref ref = {"events.k8s.io", "v1", "events", ns, NULL, NULL};
    mm_k8s_write_opts wo = {.field_manager = ev->field_manager,
                            .field_validation = CTRL_FIELD_VALIDATION, .no_body = true};
    if (mm_k8s_create(ev->client, &ref, e, &wo, &res, &eb) != MM_OK) {
        mm_metric_add(ev->dropped, NULL, 1);
        mm_log(MM_LOG_WARN, "could not record an event", "namespace", ns ? ns : "",
               "error", eb.msg, NULL);
    }
    mm_k8s_result_clear(&res);
}

static void *sender(void *arg)
{
    ctrl_events *ev = arg;
    uint64_t drain_until = 0;
    pthread_mutex_lock(&ev->lock);
    for (;;) {
        while (!ev->n && !ev->stopping)
            pthread_cond_wait(&ev->cond, &ev->lock);
        if (ev->stopping && !drain_until)
            drain_until = mm_now_ns() + EVENTS_DRAIN_MS * 1000000ull;
        if (!ev->n || (drain_until && mm_now_ns() > drain_until))
            break;
        char *text = ev->q[ev->head];
        ev->q[ev->head] = NULL;
        ev->head = (ev->head + 1) % EVENTS_MAX;
        ev->n--;
        pthread_mutex_unlock(&ev->lock);
        struct json_object *e = json_tokener_parse(text); /* our own text: NULL only for memory */
        if (e)
            send_one(ev, e);
        else
            mm_metric_add(ev->dropped, NULL, 1);
        json_object_put(e);
        mm_free(text);
        pthread_mutex_lock(&ev->lock);
    }
    pthread_mutex_unlock(&ev->lock);
    return NULL;
}

mm_err ctrl_events_new(mm_k8s_client *client, const char *field_manager, mm_metric *dropped,
                       ctrl_events **out, mm_errbuf *eb)
{
    ctrl_events *ev = mm_calloc(1, sizeof(*ev));
    *out = NULL;
    if (!ev || !(ev->field_manager = mm_strdup(field_manager))) {
        mm_free(ev);
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    }
    ev->client = client;
    ev->dropped = dropped;
    pthread_mutex_init(&ev->lock, NULL);
    pthread_cond_init(&ev->cond, NULL);
    if (pthread_create(&ev->thread, NULL, sender, ev) != 0) {
        ctrl_events_free(ev);
        return mm_errf(eb, MM_EIO, "cannot start the controller's event sender");
    }
    ev->running = true;
    *out = ev;
    return MM_OK;
}

void ctrl_events_post(ctrl_events *ev, struct json_object *e)
{
    if (!e)
        return; /* ctrl_event_new ran out of memory: a lost note */
    char *text = mm_strdup(json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN) ?: "");
    json_object_put(e);
    pthread_mutex_lock(&ev->lock);
    if (text && *text && ev->n < EVENTS_MAX && !ev->stopping) {
        ev->q[(ev->head + ev->n++) % EVENTS_MAX] = text;
        text = NULL;
        pthread_cond_signal(&ev->cond);
    } else {
        mm_metric_add(ev->dropped, NULL, 1); /* full, stopping or out of memory */
    }
    pthread_mutex_unlock(&ev->lock);
    mm_free(text);
}

void ctrl_events_free(ctrl_events *ev)
{
    if (!ev)
        return;
    pthread_mutex_lock(&ev->lock);
    ev->stopping = true;
    pthread_cond_signal(&ev->cond);
    pthread_mutex_unlock(&ev->lock);
    if (ev->running)
        pthread_join(ev->thread, NULL);
    if (ev->n)
        mm_metric_add(ev->dropped, NULL, (double)ev->n);
    for (; ev->n; ev->n--, ev->head = (ev->head + 1) % EVENTS_MAX)
        mm_free(ev->q[ev->head]);
    pthread_cond_destroy(&ev->cond);
    pthread_mutex_destroy(&ev->lock);
    mm_free(ev->field_manager);
    mm_free(ev);
}

struct json_object *ctrl_event_new(const char *identity, struct json_object *policy, bool warning,
                                   const char *reason, const char *note)
{
    char micro[MM_K8S_MICROTIME_LEN + 1], name[300];
    const char *ns = ctrl_meta_str(policy, "namespace"), *pname = ctrl_meta_str(policy, "name");
    int64_t now = mm_k8s_now_us();
    mm_k8s_format_microtime(now, micro);
    snprintf(name, sizeof(name), "%.240s.%llx", pname, (unsigned long long)now * 1000ull);
    struct json_object *e = json_object_new_object(), *m = json_object_new_object(),
                       *r = json_object_new_object();
    if (!e || !m || !r) {
        json_object_put(e);
        json_object_put(m);
        json_object_put(r);
        return NULL;
    }
    json_object_object_add(e, "apiVersion", json_object_new_string("events.k8s.io/v1"));
    json_object_object_add(e, "kind", json_object_new_string("Event"));
    json_object_object_add(m, "name", json_object_new_string(name));
    json_object_object_add(m, "namespace", json_object_new_string(ns));
    json_object_object_add(e, "metadata", m);
    json_object_object_add(e, "eventTime", json_object_new_string(micro));
    json_object_object_add(e, "reportingController", json_object_new_string("maskmesh.io/controller"));
    json_object_object_add(e, "reportingInstance", json_object_new_string(identity));
    json_object_object_add(e, "action", json_object_new_string("Reconcile"));
    json_object_object_add(e, "reason", json_object_new_string(reason));
    json_object_object_add(e, "type", json_object_new_string(warning ? "Warning" : "Normal"));
    json_object_object_add(e, "note", json_object_new_string(note));
    json_object_object_add(r, "apiVersion", json_object_new_string("maskmesh.io/v1alpha1"));
    json_object_object_add(r, "kind", json_object_new_string("MaskingPolicy"));
    json_object_object_add(r, "name", json_object_new_string(pname));
    json_object_object_add(r, "namespace", json_object_new_string(ns));
    if (ctrl_meta_str(policy, "uid"))
        json_object_object_add(r, "uid", json_object_new_string(ctrl_meta_str(policy, "uid")));
    json_object_object_add(e, "regarding", r);
    return e;
}
