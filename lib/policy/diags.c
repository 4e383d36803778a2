/* lib/policy: diagnostics — the errors and warnings that parsing and linting collect, each one
 * line naming its place. */
#include "policy/policy_int.h"

#include <stdio.h>

#define DIAGS_MAX 1000

struct mm_diags {
    char **msg;
    bool *warn;
    size_t n, cap, errors, warnings;
};

mm_err mm_diags_new(mm_diags **out)
{
    return (*out = mm_calloc(1, sizeof(**out))) ? MM_OK : MM_ENOMEM;
}

void mm_diags_free(mm_diags *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        mm_free(d->msg[i]);
    mm_free(d->msg);
    mm_free(d->warn);
    mm_free(d);
}

size_t mm_diags_errors(const mm_diags *d) { return d ? d->errors : 0; }
size_t mm_diags_warnings(const mm_diags *d) { return d ? d->warnings : 0; }
size_t mm_diags_count(const mm_diags *d) { return d ? d->n : 0; }

const char *mm_diags_get(const mm_diags *d, size_t i, bool *is_warning)
{
    if (!d || i >= d->n)
        return NULL;
    if (is_warning)
        *is_warning = d->warn[i];
    return d->msg[i];
}

mm_err diags_add(mm_diags *d, bool warning, const char *msg)
{
    if (!d)
        return MM_OK;
    warning ? d->warnings++ : d->errors++;
    if (d->n == DIAGS_MAX) /* counted, not kept: the first thousand say enough */
        return MM_OK;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        char **m = mm_realloc(d->msg, cap * sizeof(*m));
        if (!m)
            return MM_ENOMEM;
        d->msg = m;
        bool *w = mm_realloc(d->warn, cap * sizeof(*w));
        if (!w)
            return MM_ENOMEM;
        d->warn = w;
        d->cap = cap;
    }
    if (!(d->msg[d->n] = mm_strdup(msg)))
        return MM_ENOMEM;
    d->warn[d->n++] = warning;
    return MM_OK;
}

