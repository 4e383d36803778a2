/* lib/policy: the JSONPath subset of docs/policy.md — $ .name ['name'] [*] .* [N] ..name —
 * parsed into steps that the engine compiles into its matcher. */
#include "policy/policy_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_STEPS 64
#define PATH_MAX_NAME  1024 /* bytes of one member name */
#define PATH_MAX_INDEX 1000000000L

static bool name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '$' || c >= 0x80;
}

void mm_path_clear(mm_path *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_steps; i++)
        mm_free(p->steps[i].name);
    mm_free(p->steps);
    mm_free(p->text);
    memset(p, 0, sizeof(*p));
}

/* ['name'] or ["name"] with \\ \' \" escapes; *pos is just past the quote. */
static mm_err quoted_name(const char *t, size_t *pos, mm_buf *name, mm_errbuf *eb)
{
    char q = t[*pos - 1];
    size_t i = *pos;
    mm_err rc;

    for (;; i++) {
        if (!t[i])
            return mm_errf(eb, MM_EPARSE, "offset %zu: the quoted name has no closing %c", *pos - 1,
                           q);
        if (t[i] == q)
            break;
        if (t[i] == '\\') {
            i++;
            if (t[i] != '\\' && t[i] != '\'' && t[i] != '"')
                return mm_errf(eb, MM_EPARSE, "offset %zu: only \\\\, \\' and \\\" escapes are "
                               "allowed in a quoted name", i - 1);
        }
        if ((rc = mm_buf_putc(name, t[i])) != MM_OK)
            return rc == MM_ELIMIT ? mm_errf(eb, rc, "offset %zu: a member name is longer than "
                                             "%d bytes", *pos, PATH_MAX_NAME)
                                   : rc;
    }
    if (t[i + 1] != ']')
        return mm_errf(eb, MM_EPARSE, "offset %zu: expected \"]\" after the quoted name", i + 1);
    *pos = i + 2;
    return MM_OK;
}

mm_err mm_path_parse(const char *text, mm_path *out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_path p = {0};
    mm_buf name;
    size_t i = 1, cap = 0;

    mm_buf_init(&name, PATH_MAX_NAME);
    if (!text || text[0] != '$') {
        rc = mm_errf(eb, MM_EPARSE, "offset 0: a path starts with \"$\"");
        goto out;
    }
    if (!(p.text = mm_strdup(text))) {
        rc = MM_ENOMEM;
        goto out;
    }
    while (text[i]) {
        mm_path_step st = {0};
        size_t start = i;

        if (text[i] == '.' && text[i + 1] == '.') {
            st.descendant = true;
            i += 2;
            if (text[i] == '[') /* ..['x'] / ..[*] */
                goto bracket;
        } else if (text[i] == '.') {
            i++;
        } else if (text[i] == '[') {
            goto bracket;
        } else {
            rc = mm_errf(eb, MM_EPARSE, "offset %zu: expected \".\", \"..\" or \"[\"", i);
            goto out;
        }
        /* after . or .. : a name or * */
        if (text[i] == '*') {
            st.kind = MM_STEP_WILDCARD;
            i++;
            goto add;
        }
        mm_buf_reset(&name);
        while (name_char((unsigned char)text[i]))
            if ((rc = mm_buf_putc(&name, text[i++])) != MM_OK) {
                if (rc == MM_ELIMIT)
                    mm_errf(eb, rc, "offset %zu: a member name is longer than %d bytes", start,
                            PATH_MAX_NAME);
                goto out;
            }
        if (!name.len) {
            rc = mm_errf(eb, MM_EPARSE, "offset %zu: expected a member name after \"%s\"", i,
                         st.descendant ? ".." : ".");
            goto out;
        }
        st.kind = MM_STEP_NAME;
        goto name_step;
    bracket:
        i++; /* past [ */
        if (text[i] == '*' && text[i + 1] == ']') {
            st.kind = MM_STEP_WILDCARD;
            i += 2;
            goto add;
        }
        if (text[i] == '\'' || text[i] == '"') {
            i++;
            mm_buf_reset(&name);
            if ((rc = quoted_name(text, &i, &name, eb)) != MM_OK)
                goto out;
            st.kind = MM_STEP_NAME;
            goto name_step;
        }
        if (text[i] >= '0' && text[i] <= '9') {
            char *end;
            errno = 0;
            long v = strtol(text + i, &end, 10);
            if (errno || *end != ']' || v > PATH_MAX_INDEX) {
                rc = mm_errf(eb, MM_EPARSE, "offset %zu: expected an index from 0 to %ld "
                             "followed by \"]\"", i, PATH_MAX_INDEX);
                goto out;
            }
            st.kind = MM_STEP_INDEX;
            st.index = v;
            i = (size_t)(end - text) + 1;
            goto add;
        }
        rc = mm_errf(eb, MM_EPARSE, "offset %zu: expected \"*\", a quoted name or an index after "
                     "\"[\"", i);
        goto out;
    name_step:
        if (!(st.name = mm_memdup(name.data ? name.data : "", name.len))) {
            rc = MM_ENOMEM;
            goto out;
        }
        st.name_len = name.len;
    add:
        if (p.n_steps == PATH_MAX_STEPS) {
            mm_free(st.name);
            rc = mm_errf(eb, MM_ELIMIT, "offset %zu: more than %d steps", start, PATH_MAX_STEPS);
            goto out;
        }
        if (p.n_steps == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            mm_path_step *s = mm_realloc(p.steps, ncap * sizeof(*s));
            if (!s) {
                mm_free(st.name);
                rc = MM_ENOMEM;
                goto out;
            }
            p.steps = s;
            cap = ncap;
        }
        p.steps[p.n_steps++] = st;
    }
    *out = p;
    memset(&p, 0, sizeof(p));
out:
    if (rc == MM_ENOMEM)
        mm_errf(eb, rc, "out of memory");
    mm_buf_free(&name);
    mm_path_clear(&p);
    return rc;
}
