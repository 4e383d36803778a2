/* lib/k8s URLs: API paths built in a growing buffer, every segment and query value escaped. */
#include "k8s/k8s_int.h"

#include <string.h>

mm_err mm_k8s_escape(mm_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    mm_err rc = MM_OK;
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == MM_OK; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            rc = mm_buf_putc(b, (char)ch);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            rc = mm_buf_append(b, e, 3);
        }
    }
    return rc;
}

static mm_err segment(mm_buf *b, const char *what, const char *s, mm_errbuf *eb)
{
    mm_err rc;
    if (!s || !*s)
        return mm_errf(eb, MM_EINVAL, "request: %s: must not be empty", what);
    /* escaping keeps '/' inside a segment, but dot segments would still be squashed */
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return mm_errf(eb, MM_EINVAL, "request: %s: may not be \".\" or \"..\"", what);
    if ((rc = mm_buf_putc(b, '/')) != MM_OK || (rc = mm_k8s_escape(b, s)) != MM_OK)
        return rc;
    return MM_OK;
}

mm_err mm_k8s_build_url(const char *server, const mm_k8s_ref *ref, const char *const *query,
                        char **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_buf b;
    bool first = true;

    *out = NULL;
    mm_buf_init(&b, MM_K8S_URL_MAX);
    if ((rc = mm_buf_puts(&b, server)) != MM_OK)
        goto out;
    if (!ref->group || !*ref->group) {
        if ((rc = mm_buf_puts(&b, "/api")) != MM_OK)
            goto out;
    } else if ((rc = mm_buf_puts(&b, "/apis")) != MM_OK ||
               (rc = segment(&b, "group", ref->group, eb)) != MM_OK) {
        goto out;
    }
    if ((rc = segment(&b, "version", ref->version, eb)) != MM_OK)
        goto out;
    if (ref->ns && *ref->ns) {
        if ((rc = mm_buf_puts(&b, "/namespaces")) != MM_OK ||
            (rc = segment(&b, "namespace", ref->ns, eb)) != MM_OK)
            goto out;
    }
    if ((rc = segment(&b, "resource", ref->resource, eb)) != MM_OK)
        goto out;
    if (ref->name && (rc = segment(&b, "name", ref->name, eb)) != MM_OK)
        goto out;
    if (ref->subresource && *ref->subresource) {
        if (!ref->name) {
            rc = mm_errf(eb, MM_EINVAL, "request: a subresource needs a name");
            goto out;
        }
        if ((rc = segment(&b, "subresource", ref->subresource, eb)) != MM_OK)
            goto out;
    }
    for (size_t i = 0; query && query[i]; i += 2) {
        if (!query[i + 1])
            continue;
        if ((rc = mm_buf_putc(&b, first ? '?' : '&')) != MM_OK ||
            (rc = mm_k8s_escape(&b, query[i])) != MM_OK || (rc = mm_buf_putc(&b, '=')) != MM_OK ||
            (rc = mm_k8s_escape(&b, query[i + 1])) != MM_OK)
            goto out;
        first = false;
    }
    *out = mm_buf_steal(&b, NULL);
    if (!*out)
        rc = MM_ENOMEM;
out:
    if (rc == MM_ELIMIT)
        mm_errf(eb, rc, "request: URL longer than %u bytes", MM_K8S_URL_MAX);
    mm_buf_free(&b);
    return rc;
}
