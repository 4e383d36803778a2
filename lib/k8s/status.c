/* lib/k8s Status errors: a metav1.Status (from JSON, or made up for a body that is not one)
 * mapped to mm_err, the result of a request, and the Warning headers kept with it. */
#include "k8s/k8s_int.h"

#include <stdio.h>
#include <string.h>

void mm_k8s_status_clear(mm_k8s_status *st)
{
    mm_free(st->status);
    mm_free(st->reason);
    mm_free(st->message);
    mm_free(st->details_name);
    mm_free(st->details_group);
    mm_free(st->details_kind);
    mm_free(st->details_uid);
    mm_free(st->continue_token);
    for (size_t i = 0; i < st->ncauses; i++) {
        mm_free(st->causes[i].reason);
        mm_free(st->causes[i].message);
        mm_free(st->causes[i].field);
    }
    mm_free(st->causes);
    memset(st, 0, sizeof(*st));
}

mm_err mm_k8s_status_err(const mm_k8s_status *st)
{
    switch (st->code) {
    case 404: return MM_ENOTFOUND;
    case 409: return MM_ECONFLICT;
    case 410: return MM_EGONE;
    default: return MM_EHTTP;
    }
}

/* An optional string member: absent/null is fine (stays NULL), any other type is an error. */
static mm_err opt_str(struct json_object *o, const char *key, const char *where, char **out,
                      mm_errbuf *eb)
{
    struct json_object *v;
    *out = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return MM_OK;
    if (!json_object_is_type(v, json_type_string))
        return mm_errf(eb, MM_EPARSE, "Status: %s%s: expected a string", where, key);
    *out = mm_strdup(json_object_get_string(v));
    return *out ? MM_OK : MM_ENOMEM;
}

mm_err mm_k8s_status_from_json(struct json_object *obj, mm_k8s_status *st, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    struct json_object *v, *details = NULL, *meta = NULL;

    memset(st, 0, sizeof(*st));
    if (!obj || !json_object_is_type(obj, json_type_object))
        return mm_errf(eb, MM_EPARSE, "Status: expected a JSON object");
    if (json_object_object_get_ex(obj, "code", &v) && v) {
        if (!json_object_is_type(v, json_type_int)) {
            rc = mm_errf(eb, MM_EPARSE, "Status: code: expected an integer");
            goto out;
        }
        int64_t code = json_object_get_int64(v);
        st->code = code >= 0 && code <= 999 ? (int)code : 0;
    }
    if ((rc = opt_str(obj, "status", "", &st->status, eb)) != MM_OK ||
        (rc = opt_str(obj, "reason", "", &st->reason, eb)) != MM_OK ||
        (rc = opt_str(obj, "message", "", &st->message, eb)) != MM_OK)
        goto out;
    if (json_object_object_get_ex(obj, "metadata", &meta) && meta) {
        if (!json_object_is_type(meta, json_type_object)) {
            rc = mm_errf(eb, MM_EPARSE, "Status: metadata: expected an object");
            goto out;
        }
        if ((rc = opt_str(meta, "continue", "metadata.", &st->continue_token, eb)) != MM_OK)
            goto out;
    }
    if (json_object_object_get_ex(obj, "details", &details) && details) {
        if (!json_object_is_type(details, json_type_object)) {
            rc = mm_errf(eb, MM_EPARSE, "Status: details: expected an object");
            goto out;
        }
        if ((rc = opt_str(details, "name", "details.", &st->details_name, eb)) != MM_OK ||
            (rc = opt_str(details, "group", "details.", &st->details_group, eb)) != MM_OK ||
            (rc = opt_str(details, "kind", "details.", &st->details_kind, eb)) != MM_OK ||
            (rc = opt_str(details, "uid", "details.", &st->details_uid, eb)) != MM_OK)
            goto out;
        if (json_object_object_get_ex(details, "retryAfterSeconds", &v) && v) {
            if (!json_object_is_type(v, json_type_int)) {
                rc = mm_errf(eb, MM_EPARSE, "Status: details.retryAfterSeconds: expected an "
                                            "integer");
                goto out;
            }
            int64_t ra = json_object_get_int64(v);
            st->retry_after_s = ra < 0 ? 0 : ra > 86400 ? 86400 : (long)ra;
        }
        struct json_object *causes;
        if (json_object_object_get_ex(details, "causes", &causes) && causes) {
            if (!json_object_is_type(causes, json_type_array)) {
                rc = mm_errf(eb, MM_EPARSE, "Status: details.causes: expected an array");
                goto out;
            }
            size_t n = json_object_array_length(causes);
            if (n && !(st->causes = mm_calloc(n, sizeof(*st->causes)))) {
                rc = MM_ENOMEM;
                goto out;
            }
            for (size_t i = 0; i < n; i++) {
                struct json_object *cz = json_object_array_get_idx(causes, i);
                char where[64];
                snprintf(where, sizeof(where), "details.causes[%zu].", i);
                if (!json_object_is_type(cz, json_type_object)) {
                    rc = mm_errf(eb, MM_EPARSE, "Status: %s: expected an object", where);
                    goto out;
                }
                st->ncauses = i + 1;
                if ((rc = opt_str(cz, "reason", where, &st->causes[i].reason, eb)) != MM_OK ||
                    (rc = opt_str(cz, "message", where, &st->causes[i].message, eb)) != MM_OK ||
                    (rc = opt_str(cz, "field", where, &st->causes[i].field, eb)) != MM_OK)
                    goto out;
            }
        }
    }
    if (!st->reason && !(st->reason = mm_strdup(""))) {
        rc = MM_ENOMEM;
        goto out;
    }
    if (!st->message && !(st->message = mm_strdup(""))) {
        rc = MM_ENOMEM;
        goto out;
    }
out:
    if (rc != MM_OK)
        mm_k8s_status_clear(st);
    return rc;
}

/* client-go's NewGenericServerResponse: a reason for a bare HTTP code. */
static const char *reason_for_code(int code)
{
    switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 406: return "NotAcceptable";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "RequestEntityTooLarge";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return code >= 500 ? "InternalError" : "Unknown";
    }
}

void mm_k8s_status_from_body(int http_code, const char *body, size_t len, long retry_after_s,
                             mm_k8s_status *st)
{
    struct json_object *o = NULL;

    memset(st, 0, sizeof(*st));
    if (len && k8s_json_parse(body, len, &o, NULL) == MM_OK &&
        json_object_is_type(o, json_type_object)) {
        const char *kind = k8s_json_str(o, "kind");
        if (kind && strcmp(kind, "Status") == 0 && mm_k8s_status_from_json(o, st, NULL) == MM_OK) {
            if (!st->code)
                st->code = http_code;
            if (!st->retry_after_s && retry_after_s > 0)
                st->retry_after_s = retry_after_s;
            json_object_put(o);
            return;
        }
    }
    json_object_put(o);
    /* text (e.g. "404 page not found", APF's "Too many requests, please try again later.")
     * or JSON that is not a Status: keep the first line, printable bytes only */
    st->code = http_code;
    st->retry_after_s = retry_after_s > 0 ? retry_after_s : 0;
    st->status = mm_strdup("Failure");
    st->reason = mm_strdup(reason_for_code(http_code));
    size_t n = 0;
    while (n < len && n < 512 && body[n] != '\n' && body[n] != '\r')
        n++;
    st->message = mm_strndup(len ? body : "", n);
    if (st->message)
        for (char *p = st->message; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    /* out of memory here leaves NULLs, which every reader tolerates */
}

void mm_k8s_result_clear(mm_k8s_result *r)
{
    json_object_put(r->body);
    mm_k8s_status_clear(&r->status);
    for (size_t i = 0; i < r->nwarnings; i++)
        mm_free(r->warnings[i]);
    memset(r, 0, sizeof(*r));
}

/* Parses one Warning header value: `299 - "text" [, 299 - "text" ...]` (RFC 7234 5.5);
 * only code 299 warnings are kept, as client-go does. */
void k8s_parse_warnings(mm_k8s_result *res, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && res && res->nwarnings < MM_K8S_MAX_WARNINGS) {
        while (i < n && (v[i] == ' ' || v[i] == ',' || v[i] == '\t'))
            i++;
        size_t code_at = i;
        while (i < n && v[i] >= '0' && v[i] <= '9')
            i++;
        bool is299 = i - code_at == 3 && memcmp(v + code_at, "299", 3) == 0;
        while (i < n && v[i] != '"') /* agent */
            i++;
        if (i >= n)
            return;
        i++;
        mm_buf t;
        mm_buf_init(&t, 4096);
        bool ok = true;
        while (i < n && v[i] != '"') {
            if (v[i] == '\\' && i + 1 < n)
                i++;
            if (ok && mm_buf_putc(&t, v[i]) != MM_OK)
                ok = false;
            i++;
        }
        i++; /* closing quote */
        while (i < n && v[i] != ',') {
            if (v[i] == '"') { /* a quoted warn-date */
                i++;
                while (i < n && v[i] != '"')
                    i++;
            }
            i++;
        }
        if (ok && is299) {
            char *s = mm_buf_steal(&t, NULL);
            if (s)
                res->warnings[res->nwarnings++] = s;
        }
        mm_buf_free(&t);
    }
}
