/* lib/admission: YAML <-> json-c for maskctl inject and the --config file. Parsing types
 * plain scalars as Kubernetes' YAML reader does (YAML 1.1: null, yes/no/on/off booleans,
 * ints, floats); emitting quotes every string that would read back as something else. */
#include "admission/admission.h"
#include "admission/admission_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YAML_MAX_DEPTH 100

typedef struct {
    yaml_parser_t p;
    const char *filename;
    mm_errbuf *eb;
} yreader;

static mm_err yerr(yreader *r, const char *what)
{
    return mm_errf(r->eb, MM_EPARSE, "%s:%zu:%zu: %s", r->filename,
                   r->p.problem_mark.line + 1, r->p.problem_mark.column + 1,
                   r->p.problem ? r->p.problem : what);
}

static bool eq_any(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON",
                                    "y", "Y", NULL};
static const char *const falses[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off",
                                     "OFF", "n", "N", NULL};

static bool is_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool is_float(const char *s)
{
    size_t digits = 0;
    static const char *const specials[] = {".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF",
                                           "+.inf", ".nan", ".NaN", ".NAN", NULL};
    if (eq_any(s, specials))
        return true;
    if (*s == '-' || *s == '+')
        s++;
    while (*s >= '0' && *s <= '9')
        s++, digits++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9')
            s++, digits++;
    }
    if (!digits)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* Would this plain scalar read as something other than a string? */
static bool plain_is_typed(const char *s)
{
    return eq_any(s, nulls) || eq_any(s, trues) || eq_any(s, falses) || is_int(s) || is_float(s);
}

static json_object *scalar(yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;

    if (tag && (strcmp(tag, "tag:yaml.org,2002:str") == 0 || strcmp(tag, "!!str") == 0))
        return json_object_new_string_len(s, (int)ev->data.scalar.length);
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || strlen(s) != ev->data.scalar.length)
        return json_object_new_string_len(s, (int)ev->data.scalar.length);
    if (eq_any(s, trues))
        return json_object_new_boolean(1);
    if (eq_any(s, falses))
        return json_object_new_boolean(0);
    if (is_int(s)) {
        long long v;
        errno = 0;
        v = strtoll(s, NULL, 10);
        if (!errno)
            return json_object_new_int64(v);
    }
    if (is_float(s)) {
        double d;
        if (strstr(s, "inf") || strstr(s, "Inf") || strstr(s, "INF") || strstr(s, "nan") ||
            strstr(s, "NaN") || strstr(s, "NAN"))
            return json_object_new_string(s); /* JSON has no infinities */
        d = strtod(s, NULL);
        return json_object_new_double(d);
    }
    return json_object_new_string_len(s, (int)ev->data.scalar.length);
}

/* Reads one node whose first event is *ev (consumed by the caller afterwards). */
static mm_err read_node(yreader *r, yaml_event_t *ev, int depth, json_object **out)
{
    mm_err rc = MM_OK;
    json_object *node = NULL;
    yaml_event_t e;

    *out = NULL;
    if (depth > YAML_MAX_DEPTH)
        return mm_errf(r->eb, MM_ELIMIT, "%s:%zu:%zu: nested deeper than %d levels", r->filename,
                       ev->start_mark.line + 1, ev->start_mark.column + 1, YAML_MAX_DEPTH);
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        const char *s = (const char *)ev->data.scalar.value;
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && eq_any(s, nulls) &&
            !(ev->data.scalar.tag && strstr((const char *)ev->data.scalar.tag, "str"))) {
            *out = NULL;
            return MM_OK;
        }
        if (!(*out = scalar(ev)))
            return MM_ENOMEM;
        return MM_OK;
    }
    case YAML_ALIAS_EVENT:
        return mm_errf(r->eb, MM_EPARSE, "%s:%zu:%zu: aliases are not supported", r->filename,
                       ev->start_mark.line + 1, ev->start_mark.column + 1);
    case YAML_SEQUENCE_START_EVENT:
        if (!(node = json_object_new_array()))
            return MM_ENOMEM;
        for (;;) {
            json_object *child;
            if (!yaml_parser_parse(&r->p, &e)) {
                rc = yerr(r, "bad YAML");
                goto out;
            }
            if (e.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            rc = read_node(r, &e, depth + 1, &child);
            yaml_event_delete(&e);
            if (rc != MM_OK)
                goto out;
            if (json_object_array_add(node, child) != 0) {
                json_object_put(child);
                rc = MM_ENOMEM;
                goto out;
            }
        }
        break;
    case YAML_MAPPING_START_EVENT:
        if (!(node = json_object_new_object()))
            return MM_ENOMEM;
        for (;;) {
            json_object *child;
            char *key;
            if (!yaml_parser_parse(&r->p, &e)) {
                rc = yerr(r, "bad YAML");
                goto out;
            }
            if (e.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            if (e.type != YAML_SCALAR_EVENT) {
                rc = mm_errf(r->eb, MM_EPARSE, "%s:%zu:%zu: mapping keys must be scalars",
                             r->filename, e.start_mark.line + 1, e.start_mark.column + 1);
                yaml_event_delete(&e);
                goto out;
            }
            key = mm_strdup((const char *)e.data.scalar.value);
            yaml_event_delete(&e);
            if (!key) {
                rc = MM_ENOMEM;
                goto out;
            }
            if (!yaml_parser_parse(&r->p, &e)) {
                mm_free(key);
                rc = yerr(r, "bad YAML");
                goto out;
            }
            rc = read_node(r, &e, depth + 1, &child);
            yaml_event_delete(&e);
            if (rc == MM_OK && json_object_object_add(node, key, child) != 0) {
                json_object_put(child);
                rc = MM_ENOMEM;
            }
            mm_free(key);
            if (rc != MM_OK)
                goto out;
        }
        break;
    default:
        return mm_errf(r->eb, MM_EPARSE, "%s:%zu:%zu: unexpected YAML event", r->filename,
                       ev->start_mark.line + 1, ev->start_mark.column + 1);
    }
    *out = node;
    node = NULL;
out:
    json_object_put(node);
    return rc;
}

mm_err mm_adm_yaml_parse(const char *text, size_t len, const char *filename, json_object **docs,
                         mm_errbuf *eb)
{
    yreader r = {.filename = filename ? filename : "-", .eb = eb};
    json_object *arr = NULL;
    yaml_event_t ev;
    mm_err rc = MM_OK;
    bool done = false;

    *docs = NULL;
    if (!yaml_parser_initialize(&r.p))
        return MM_ENOMEM;
    yaml_parser_set_input_string(&r.p, (const unsigned char *)text, len);
    if (!(arr = json_object_new_array())) {
        rc = MM_ENOMEM;
        goto out;
    }
    while (!done) {
        if (!yaml_parser_parse(&r.p, &ev)) {
            rc = yerr(&r, "bad YAML");
            goto out;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        default: {
            json_object *doc;
            rc = read_node(&r, &ev, 0, &doc);
            if (rc == MM_OK && doc && json_object_array_add(arr, doc) != 0) {
                json_object_put(doc);
                rc = MM_ENOMEM;
            }
            break;
        }
        }
        yaml_event_delete(&ev);
        if (rc != MM_OK)
            goto out;
    }
    *docs = arr;
    arr = NULL;
out:
    json_object_put(arr);
    yaml_parser_delete(&r.p);
    return rc;
}

/* ---- emitting ------------------------------------------------------------------------- */

static int emit_ok(yaml_emitter_t *em, yaml_event_t *ev, bool init_ok)
{
    if (!init_ok)
        return 0;
    return yaml_emitter_emit(em, ev);
}

static int emit_scalar(yaml_emitter_t *em, const char *s, size_t n, bool quote)
{
    yaml_event_t ev;
    int ok = yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, 1, 1,
                                          quote ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                                : YAML_ANY_SCALAR_STYLE);
    return emit_ok(em, &ev, ok);
}

static int emit_node(yaml_emitter_t *em, json_object *o, int depth)
{
    yaml_event_t ev;
    char num[64];

    if (depth > YAML_MAX_DEPTH)
        return 0;
    switch (json_object_get_type(o)) {
    case json_type_null:
        return emit_scalar(em, "null", 4, false);
    case json_type_boolean:
        return json_object_get_boolean(o) ? emit_scalar(em, "true", 4, false)
                                          : emit_scalar(em, "false", 5, false);
    case json_type_int:
        snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(o));
        return emit_scalar(em, num, strlen(num), false);
    case json_type_double: {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        return emit_scalar(em, s, strlen(s), false);
    }
    case json_type_string: {
        const char *s = json_object_get_string(o);
        size_t n = (size_t)json_object_get_string_len(o);
        return emit_scalar(em, s, n, strlen(s) != n || plain_is_typed(s));
    }
    case json_type_array:
        if (!emit_ok(em, &ev, yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                                   YAML_ANY_SEQUENCE_STYLE)))
            return 0;
        for (size_t i = 0; i < json_object_array_length(o); i++)
            if (!emit_node(em, json_object_array_get_idx(o, i), depth + 1))
                return 0;
        return emit_ok(em, &ev, yaml_sequence_end_event_initialize(&ev));
    case json_type_object:
        if (!emit_ok(em, &ev, yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                                  YAML_ANY_MAPPING_STYLE)))
            return 0;
        json_object_object_foreach(o, k, v)
        {
            if (!emit_scalar(em, k, strlen(k), plain_is_typed(k)) || !emit_node(em, v, depth + 1))
                return 0;
        }
        return emit_ok(em, &ev, yaml_mapping_end_event_initialize(&ev));
    }
    return 0;
}

static int buf_writer(void *data, unsigned char *buffer, size_t size)
{
    return mm_buf_append(data, buffer, size) == MM_OK;
}

mm_err mm_adm_yaml_emit(const json_object *docs, mm_buf *out, mm_errbuf *eb)
{
    yaml_emitter_t em;
    yaml_event_t ev;
    mm_err rc = MM_OK;
    json_object *arr = (json_object *)docs;

    if (!json_object_is_type(arr, json_type_array))
        return mm_errf(eb, MM_EINVAL, "documents must be a JSON array");
    if (!yaml_emitter_initialize(&em))
        return MM_ENOMEM;
    yaml_emitter_set_output(&em, buf_writer, out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    if (!emit_ok(&em, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING)))
        goto fail;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        if (!emit_ok(&em, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL,
                                                                    i == 0)) ||
            !emit_node(&em, json_object_array_get_idx(arr, i), 0) ||
            !emit_ok(&em, &ev, yaml_document_end_event_initialize(&ev, 1)))
            goto fail;
    }
    if (!emit_ok(&em, &ev, yaml_stream_end_event_initialize(&ev)) || !yaml_emitter_flush(&em))
        goto fail;
    goto out;
fail:
    rc = mm_errf(eb, MM_EIO, "YAML output: %s", em.problem ? em.problem : "out of memory or nesting too deep");
out:
    yaml_emitter_delete(&em);
    return rc;
}
