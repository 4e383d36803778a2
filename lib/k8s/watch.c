/* lib/k8s watch: the newline framing of a watch stream (events in any chunking, each line
 * bounded), event parsing, and the watch request: the decoder is the sink the transport
 * writes the stream to (transport.c never calls back here). */
#include "k8s/k8s_int.h"

#include <stdio.h>
#include <string.h>

struct mm_k8s_watch_decoder {
    mm_buf line;       /* the partial event carried between chunks */
    size_t max_line;
    uint64_t offset;   /* bytes consumed before `line` starts */
    uint64_t events;   /* complete events delivered */
    bool failed;       /* a previous error: the stream cannot be resynchronised */
};

mm_err mm_k8s_watch_decoder_new(size_t max_line, mm_k8s_watch_decoder **out)
{
    mm_k8s_watch_decoder *d = mm_calloc(1, sizeof(*d));
    *out = NULL;
    if (!d)
        return MM_ENOMEM;
    d->max_line = max_line ? max_line : MM_K8S_WATCH_LINE_MAX;
    mm_buf_init(&d->line, d->max_line);
    *out = d;
    return MM_OK;
}

void mm_k8s_watch_decoder_free(mm_k8s_watch_decoder *d)
{
    if (!d)
        return;
    mm_buf_free(&d->line);
    mm_free(d);
}

uint64_t mm_k8s_watch_decoder_events(const mm_k8s_watch_decoder *d) { return d->events; }

static const struct {
    const char *name;
    mm_k8s_event_type type;
} event_types[] = {
    {"ADDED", MM_K8S_ADDED},       {"MODIFIED", MM_K8S_MODIFIED}, {"DELETED", MM_K8S_DELETED},
    {"BOOKMARK", MM_K8S_BOOKMARK}, {"ERROR", MM_K8S_ERROR},
};

mm_err mm_k8s_parse_event(const char *line, size_t len, mm_k8s_event_type *type,
                          struct json_object **obj_out, mm_errbuf *eb)
{
    mm_err rc;
    struct json_object *ev = NULL, *obj;
    const char *t;
    size_t i;

    *obj_out = NULL;
    if ((rc = k8s_json_parse(line, len, &ev, eb)) != MM_OK)
        goto out;
    if (!json_object_is_type(ev, json_type_object)) {
        rc = mm_errf(eb, MM_EPARSE, "expected a {type, object} event");
        goto out;
    }
    if (!(t = k8s_json_str(ev, "type"))) {
        rc = mm_errf(eb, MM_EPARSE, "type: expected a string");
        goto out;
    }
    for (i = 0; i < MM_ARRAY_LEN(event_types); i++)
        if (strcmp(t, event_types[i].name) == 0)
            break;
    if (i == MM_ARRAY_LEN(event_types)) {
        rc = mm_errf(eb, MM_EPARSE, "type: unknown event type \"%.40s\"", t);
        goto out;
    }
    if (!(obj = k8s_json_get(ev, "object", json_type_object))) {
        rc = mm_errf(eb, MM_EPARSE, "object: expected an object");
        goto out;
    }
    *type = event_types[i].type;
    *obj_out = json_object_get(obj);
out:
    json_object_put(ev);
    return rc;
}

/* Parses one complete line and hands the event to fn. Blank lines are skipped. */
static mm_err deliver(mm_k8s_watch_decoder *d, const char *line, size_t len, mm_k8s_event_fn fn,
                      void *ud, bool *stopped, mm_errbuf *eb)
{
    mm_k8s_event ev;
    mm_err rc;
    size_t i = 0;

    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i == len)
        return MM_OK;
    if ((rc = mm_k8s_parse_event(line, len, &ev.type, &ev.object, eb)) != MM_OK) {
        mm_errprefix(eb, "watch event %llu at byte %llu", (unsigned long long)d->events,
                     (unsigned long long)d->offset);
        return rc;
    }
    d->events++;
    if (fn && fn(ud, &ev) != 0)
        *stopped = true;
    json_object_put(ev.object);
    return MM_OK;
}

mm_err mm_k8s_watch_decoder_feed(mm_k8s_watch_decoder *d, const char *data, size_t len,
                                 mm_k8s_event_fn fn, void *ud, bool *stopped, mm_errbuf *eb)
{
    mm_err rc = MM_OK;

    *stopped = false;
    if (d->failed)
        return mm_errf(eb, MM_EINVAL, "watch stream: already failed");
    while (len && !*stopped) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (!nl) {
            if (d->line.len + take > d->max_line) {
                rc = mm_errf(eb, MM_ELIMIT, "watch event %llu at byte %llu: longer than %zu "
                                            "bytes",
                             (unsigned long long)d->events, (unsigned long long)d->offset,
                             d->max_line);
                goto out;
            }
            if ((rc = mm_buf_append(&d->line, data, take)) != MM_OK)
                goto out;
            break;
        }
        if (d->line.len + take > d->max_line) {
            rc = mm_errf(eb, MM_ELIMIT, "watch event %llu at byte %llu: longer than %zu bytes",
                         (unsigned long long)d->events, (unsigned long long)d->offset,
                         d->max_line);
            goto out;
        }
        if (d->line.len == 0) {
            /* the whole line is in this chunk: parse it in place */
            rc = deliver(d, data, take, fn, ud, stopped, eb);
            d->offset += take + 1;
        } else {
            size_t carried = d->line.len;
            if ((rc = mm_buf_append(&d->line, data, take)) != MM_OK)
                goto out;
            rc = deliver(d, d->line.data, d->line.len, fn, ud, stopped, eb);
            if (d->line.cap > (1u << 20))
                mm_buf_free(&d->line); /* do not keep a huge event's buffer for the stream */
            else
                mm_buf_reset(&d->line);
            d->offset += carried + take + 1;
        }
        if (rc != MM_OK)
            goto out;
        data += take + 1;
        len -= take + 1;
    }
out:
    if (rc != MM_OK) {
        d->failed = true;
        if (rc == MM_ENOMEM)
            mm_errf(eb, rc, "watch event %llu: out of memory", (unsigned long long)d->events);
    }
    return rc;
}

mm_err mm_k8s_watch_decoder_finish(mm_k8s_watch_decoder *d, mm_errbuf *eb)
{
    for (size_t i = 0; i < d->line.len; i++) {
        char ch = d->line.data[i];
        if (ch != ' ' && ch != '\t' && ch != '\r')
            return mm_errf(eb, MM_EIO, "watch stream cut short inside event %llu at byte %llu",
                           (unsigned long long)d->events, (unsigned long long)d->offset);
    }
    return MM_OK;
}

/* ---- the streaming request ---------------------------------------------------------------- */

/* The decoder as the transport's sink: bytes in, events out to the caller's fn. */
typedef struct {
    mm_k8s_watch_decoder *dec;
    mm_k8s_event_fn fn;
    void *ud;
} watch_sink;

static mm_err sink_write(void *ud, const char *data, size_t n, bool *stop, mm_errbuf *eb)
{
    watch_sink *w = ud;
    return mm_k8s_watch_decoder_feed(w->dec, data, n, w->fn, w->ud, stop, eb);
}

mm_err mm_k8s_watch(mm_k8s_client *c, const mm_k8s_ref *ref, const mm_k8s_watch_opts *wo,
                    mm_k8s_event_fn fn, void *ud, mm_k8s_result *res, mm_errbuf *eb)
{
    static const mm_k8s_watch_opts none;
    mm_err rc = MM_OK;
    char *url = NULL, what[400], tmo[24];
    watch_sink w = {.fn = fn, .ud = ud};
    k8s_sink sink = {.write = sink_write, .ud = &w};
    bool stopped = false;

    mm_k8s_result_clear(res);
    if (!wo)
        wo = &none;
    if (ref->name)
        return mm_errf(eb, MM_EINVAL, "watch: the ref names an object (use a fieldSelector "
                                      "metadata.name=...)");
    snprintf(tmo, sizeof(tmo), "%ld", wo->timeout_seconds);
    const char *q[] = {"watch", "1",
                       "resourceVersion", wo->resource_version,
                       "resourceVersionMatch", wo->resource_version_match,
                       "allowWatchBookmarks", wo->allow_bookmarks ? "true" : NULL,
                       "sendInitialEvents", wo->send_initial_events ? "true" : NULL,
                       "labelSelector", wo->label_selector,
                       "fieldSelector", wo->field_selector,
                       "timeoutSeconds", wo->timeout_seconds > 0 ? tmo : NULL,
                       NULL};
    if ((rc = mm_k8s_build_url(c->cfg->server, ref, q, &url, eb)) != MM_OK)
        goto out;
    snprintf(what, sizeof(what), "WATCH %s", ref->resource);
    if ((rc = mm_k8s_watch_decoder_new(0, &w.dec)) != MM_OK)
        goto out;
    rc = k8s_stream(c, url, what, &sink, wo->stop,
                    wo->timeout_seconds > 0 ? wo->timeout_seconds + 30 : 0, &stopped, res, eb);
    if (rc == MM_EIO && w.dec->events)
        mm_errprefix(eb, "after %llu events", (unsigned long long)w.dec->events);
    if (rc == MM_OK && !stopped && (rc = mm_k8s_watch_decoder_finish(w.dec, eb)) != MM_OK)
        mm_errprefix(eb, "%s", what);
out:
    mm_k8s_watch_decoder_free(w.dec);
    mm_free(url);
    return rc;
}
