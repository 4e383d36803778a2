/* lib/mask: compiling policies into an mm_masker — rules in precedence order, the JSONPath
 * automaton (path.c), detector sets per direction with their slots, header rules — and the
 * masker's small queries: body kinds, header rules. */
#include "mask/mask_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Policy name, then namespace, then input order: a stable order whatever qsort does. */
typedef struct {
    const mm_policy *p;
    size_t at;
} porder;

static int policy_order(const void *a, const void *b)
{
    const porder *x = a, *y = b;
    int c = strcmp(x->p->name, y->p->name);
    if (!c)
        c = strcmp(x->p->ns ? x->p->ns : "", y->p->ns ? y->p->ns : "");
    return c ? c : x->at < y->at ? -1 : x->at > y->at;
}

static void rule_clear(mrule *r)
{
    mm_free(r->name);
    mm_free(r->policy);
    act_clear(&r->act);
    for (size_t i = 0; i < r->n_grants; i++) {
        for (size_t k = 0; k < r->grants[i].n_principals; k++)
            mm_free(r->grants[i].principals[k]);
        mm_free(r->grants[i].principals);
        act_clear(&r->grants[i].act);
    }
    mm_free(r->grants);
    for (size_t i = 0; i < r->n_exempt; i++)
        mm_free(r->exempt[i]);
    mm_free(r->exempt);
    mm_free(r->jconst);
}

static void masker_destroy(mm_masker *m)
{
    for (size_t i = 0; i < m->n_rules; i++)
        rule_clear(&m->rules[i]);
    mm_free(m->rules);
    for (size_t i = 0; i < m->n_paths; i++) {
        for (size_t j = 0; j < m->paths[i].n_steps; j++)
            mm_free(m->paths[i].steps[j].name);
        mm_free(m->paths[i].steps);
    }
    mm_free(m->paths);
    paths_clear(&m->pa);
    for (size_t i = 0; i < m->n_slots; i++)
        mm_free(m->slots[i].rules);
    mm_free(m->slots);
    det_set_free(m->det[0]);
    det_set_free(m->det[1]);
    for (size_t i = 0; i < m->n_hdrs; i++) {
        mm_free(m->hdrs[i].name);
        mm_free(m->hdrs[i].policy);
        act_clear(&m->hdrs[i].act);
    }
    mm_free(m->hdrs);
    for (size_t i = 0; i < m->n_dhdrs; i++) {
        mdhdr *d = &m->dhdrs[i];
        mm_free(d->policy);
        act_clear(&d->act);
        for (size_t k = 0; k < d->n_names; k++)
            mm_free(d->names[k]);
        mm_free(d->names);
        for (size_t k = 0; k < d->n_exempt; k++)
            mm_free(d->exempt[k]);
        mm_free(d->exempt);
    }
    mm_free(m->dhdrs);
    for (size_t i = 0; i < m->n_ctypes; i++)
        mm_free(m->ctypes[i]);
    mm_free(m->ctypes);
    mm_free(m);
}

mm_masker *mm_masker_ref(mm_masker *m)
{
    if (m)
        atomic_fetch_add(&m->refs, 1);
    return m;
}

void mm_masker_free(mm_masker *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        masker_destroy(m);
}

/* In scan mode nothing is transformed, so keys are not needed to compile. */
static mm_err compile_action(const mm_action *a, const mm_keys *keys, bool scan, const char *where,
                             act_t *out, mm_errbuf *eb)
{
    if (scan && (a->type == MM_ACTION_HASH || a->type == MM_ACTION_TOKENIZE ||
                 a->type == MM_ACTION_ENCRYPT)) {
        mm_action redact = {.type = MM_ACTION_REDACT, .replacement = "[REDACTED]"};
        return act_compile(&redact, NULL, where, out, eb);
    }
    return act_compile(a, keys, where, out, eb);
}

/* The policy's spec.reveal grants that name rule r, compiled into mr. */
static mm_err add_grants(const mm_masker *m, const mm_policy *p, const char *name,
                         const mm_keys *keys, const char *where, mrule *mr, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    for (size_t g = 0; g < p->n_grants; g++)
        for (size_t k = 0; k < p->grants[g].n_rules; k++) {
            const mm_grant_rule *gr = &p->grants[g].rules[k];
            mgrant *ng;
            if (strcmp(gr->rule, name) != 0)
                continue;
            if (!(ng = mm_realloc(mr->grants, (mr->n_grants + 1) * sizeof(*ng))))
                return mm_errf(eb, MM_ENOMEM, "%s: out of memory", where);
            mr->grants = ng;
            ng = &mr->grants[mr->n_grants];
            memset(ng, 0, sizeof(*ng));
            ng->clear = gr->clear;
            if (!gr->clear &&
                (rc = compile_action(&gr->action, keys, m->scan, where, &ng->act, eb)) != MM_OK)
                return rc;
            mr->n_grants++;
            if (!(ng->principals = mm_calloc(p->grants[g].n_principals, sizeof(char *))))
                return mm_errf(eb, MM_ENOMEM, "%s: out of memory", where);
            for (size_t q = 0; q < p->grants[g].n_principals; q++, ng->n_principals++)
                if (!(ng->principals[q] = mm_strdup(p->grants[g].principals[q])))
                    return mm_errf(eb, MM_ENOMEM, "%s: out of memory", where);
        }
    return MM_OK;
}

static mm_err add_ctype(mm_masker *m, const char *t)
{
    char *c, **v;
    for (size_t i = 0; i < m->n_ctypes; i++)
        if (strcasecmp(m->ctypes[i], t) == 0)
            return MM_OK;
    if (!(c = mm_strdup(t)))
        return MM_ENOMEM;
    for (char *p = c; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!(v = mm_realloc(m->ctypes, (m->n_ctypes + 1) * sizeof(*v)))) {
        mm_free(c);
        return MM_ENOMEM;
    }
    m->ctypes = v;
    m->ctypes[m->n_ctypes++] = c;
    return MM_OK;
}

static mm_err add_path(mm_masker *m, const mm_path *p, int rule, size_t *cap)
{
    mpath *mp;
    if (m->n_paths == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        mpath *v = mm_realloc(m->paths, ncap * sizeof(*v));
        if (!v)
            return MM_ENOMEM;
        m->paths = v;
        *cap = ncap;
    }
    mp = &m->paths[m->n_paths];
    memset(mp, 0, sizeof(*mp));
    if (p->n_steps && !(mp->steps = mm_calloc(p->n_steps, sizeof(mstep))))
        return MM_ENOMEM;
    m->n_paths++; /* owned from here on, so destroy frees a partial copy */
    for (size_t i = 0; i < p->n_steps; i++) {
        const mm_path_step *st = &p->steps[i];
        mp->steps[i].kind = st->kind;
        mp->steps[i].descendant = st->descendant;
        mp->steps[i].index = st->index;
        if (st->kind == MM_STEP_NAME) {
            if (!(mp->steps[i].name = mm_memdup(st->name, st->name_len)))
                return MM_ENOMEM;
            mp->steps[i].name_len = st->name_len;
        }
        mp->n_steps = i + 1;
    }
    mp->rule = rule;
    return MM_OK;
}

/* Rule `rule` names slot `slot`; rules arrive in ascending order. */
static mm_err slot_add(mm_masker *m, size_t slot, int rule)
{
    mslot *sl = &m->slots[slot];
    if (sl->n_rules && sl->rules[sl->n_rules - 1] == rule)
        return MM_OK;
    int *v = mm_realloc(sl->rules, (sl->n_rules + 1) * sizeof(int));
    if (!v)
        return MM_ENOMEM;
    sl->rules = v;
    sl->rules[sl->n_rules++] = rule;
    return MM_OK;
}

/* The principals that policy p exempts from its rule `name`, appended to *v. */
static mm_err exempt_collect(const mm_policy *p, const char *name, char ***v, size_t *n)
{
    for (size_t e = 0; e < p->n_exemptions; e++)
        for (size_t k = 0; k < p->exemptions[e].n_rules; k++) {
            if (strcmp(p->exemptions[e].rules[k], name) != 0)
                continue;
            for (size_t q = 0; q < p->exemptions[e].n_principals; q++) {
                char **nv = mm_realloc(*v, (*n + 1) * sizeof(*nv));
                if (!nv)
                    return MM_ENOMEM;
                *v = nv;
                if (!(nv[*n] = mm_strdup(p->exemptions[e].principals[q])))
                    return MM_ENOMEM;
                (*n)++;
            }
        }
    return MM_OK;
}

/* Compiles rule `name` of policy p, with action a, into the next entry of m->rules. */
static mm_err rule_add(mm_masker *m, const mm_policy *p, const char *name, const mm_action *a,
                       const mm_keys *keys, const char *where, mm_errbuf *eb)
{
    mrule *mr = &m->rules[m->n_rules];
    mm_err rc;

    if ((rc = compile_action(a, keys, m->scan, where, &mr->act, eb)) != MM_OK)
        return rc;
    m->n_rules++;
    if (!(mr->name = mm_strdup(name)) || !(mr->policy = mm_strdup(p->name)))
        goto nomem;
    if (mr->act.type == MM_ACTION_REDACT || mr->act.type == MM_ACTION_REPLACE) {
        mm_buf jb;
        mm_buf_init(&jb, 0);
        if (mm_buf_put_json_str(&jb, mr->act.text ? mr->act.text : "", mr->act.text_len) !=
            MM_OK) {
            mm_buf_free(&jb);
            goto nomem;
        }
        mr->jconst = mm_buf_steal(&jb, &mr->jconst_len);
    }
    mr->audit = p->mode == MM_MODE_AUDIT;
    mr->dirs = (unsigned)p->direction;
    if (exempt_collect(p, name, &mr->exempt, &mr->n_exempt) != MM_OK)
        goto nomem;
    return add_grants(m, p, name, keys, where, mr, eb);
nomem:
    return mm_errf(eb, MM_ENOMEM, "out of memory compiling policies");
}

/* The default deny of every policy that has one, after all explicit rules (they come
 * first): a rule per defaultDeny.body whose paths allow, and the header parts. */
static mm_err deny_add(mm_masker *m, const porder *sorted, size_t n, const mm_keys *keys,
                       size_t *path_cap, mm_errbuf *eb)
{
    char where[MM_POLICY_NAME_MAX * 2 + 64];
    mm_err rc;

    m->first_deny = m->n_rules;
    for (size_t pi = 0; pi < n; pi++) {
        const mm_policy *p = sorted[pi].p;
        if (p->deny_body.set) {
            int idx = (int)m->n_rules;
            snprintf(where, sizeof(where), "policy %s%s%s defaultDeny.body", p->ns ? p->ns : "",
                     p->ns ? "/" : "", p->name);
            if (m->n_rules - m->first_deny == MAX_DENY)
                return mm_errf(eb, MM_EINVAL, "%s: more than %d policies with defaultDeny apply "
                               "together", where, MAX_DENY);
            if ((rc = rule_add(m, p, MM_DENY_RULE, &p->deny_body.action, keys, where, eb)) != MM_OK)
                return rc;
            m->rules[idx].deny = true;
            for (size_t f = 0; f < p->deny_body.n_fields; f++)
                if (add_path(m, &p->deny_body.fields[f], idx, path_cap) != MM_OK)
                    return mm_errf(eb, MM_ENOMEM, "out of memory compiling policies");
        }
        if (p->deny_headers.set) {
            mdhdr *d = &m->dhdrs[m->n_dhdrs];
            snprintf(where, sizeof(where), "policy %s%s%s defaultDeny.headers",
                     p->ns ? p->ns : "", p->ns ? "/" : "", p->name);
            if ((rc = compile_action(&p->deny_headers.action, keys, m->scan, where, &d->act,
                                     eb)) != MM_OK)
                return rc;
            m->n_dhdrs++;
            d->audit = p->mode == MM_MODE_AUDIT;
            d->dirs = (unsigned)p->direction;
            if (!(d->policy = mm_strdup(p->name)) ||
                (p->deny_headers.n_names &&
                 !(d->names = mm_calloc(p->deny_headers.n_names, sizeof(char *)))))
                return mm_errf(eb, MM_ENOMEM, "out of memory compiling policies");
            for (; d->n_names < p->deny_headers.n_names; d->n_names++)
                if (!(d->names[d->n_names] = mm_strdup(p->deny_headers.names[d->n_names])))
                    return mm_errf(eb, MM_ENOMEM, "out of memory compiling policies");
            if (exempt_collect(p, MM_DENY_RULE, &d->exempt, &d->n_exempt) != MM_OK)
                return mm_errf(eb, MM_ENOMEM, "out of memory compiling policies");
        }
    }
    return MM_OK;
}

mm_err mm_masker_new(const mm_policy *const *policies, size_t n, const mm_keys *keys,
                     const mm_masker_opts *opts, mm_masker **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_masker *m = NULL;
    porder *sorted = NULL;
    size_t total = 0, n_hdrs = 0, n_dhdrs = 0, n_pats = 0, path_cap = 0, pat = 0;
    char where[MM_POLICY_NAME_MAX * 2 + 64];
    bool ws_seen[2] = {false, false};

    if (!(m = mm_calloc(1, sizeof(*m))))
        goto nomem;
    m->refs = 1;
    m->scan = opts && opts->scan;
    m->on_error[0] = m->on_error[1] = MM_ONERR_PASSTHROUGH;
    m->unlisted[0] = m->unlisted[1] = MM_UNLISTED_PASS;
    for (int d = 0; d < 2; d++) {
        m->ws_binary_pass[d] = true;
        m->ws_max_message[d] = MM_POLICY_WS_MSG_DEFAULT;
    }
    if (n && !(sorted = mm_calloc(n, sizeof(*sorted))))
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        sorted[i] = (porder){policies[i], i};
        total += policies[i]->n_rules + policies[i]->deny_body.set;
        n_hdrs += policies[i]->n_headers;
        n_dhdrs += policies[i]->deny_headers.set;
        for (size_t r = 0; r < policies[i]->n_rules; r++)
            n_pats += policies[i]->rules[r].n_patterns;
    }
    if (n)
        qsort(sorted, n, sizeof(*sorted), policy_order);
    if (total && !(m->rules = mm_calloc(total, sizeof(mrule))))
        goto nomem;
    if (n_hdrs && !(m->hdrs = mm_calloc(n_hdrs, sizeof(mhdr))))
        goto nomem;
    if (n_dhdrs && !(m->dhdrs = mm_calloc(n_dhdrs, sizeof(mdhdr))))
        goto nomem;
    if (!(m->slots = mm_calloc(DET_BUILTIN_COUNT + n_pats, sizeof(mslot))))
        goto nomem;
    m->n_slots = DET_BUILTIN_COUNT + n_pats;
    for (int d = 0; d < 2; d++)
        if (det_set_new(&m->det[d]) != MM_OK)
            goto nomem;

    for (size_t pi = 0; pi < n; pi++) {
        const mm_policy *p = sorted[pi].p;
        unsigned dirs = (unsigned)p->direction;
        m->dirs_any |= dirs;
        m->pb_bytes |= p->grpc && p->grpc->scan_bytes; /* spec.grpc.scanBytes */
        for (int d = 0; d < 2; d++)
            if ((dirs & (d ? MM_DIR_REQUEST : MM_DIR_RESPONSE)) && p->on_error < m->on_error[d])
                m->on_error[d] = p->on_error; /* block < redact-all < passthrough: strictest */
        for (int d = 0; d < 2; d++)
            if ((dirs & (d ? MM_DIR_REQUEST : MM_DIR_RESPONSE)) && p->unlisted < m->unlisted[d])
                m->unlisted[d] = p->unlisted; /* block < detect < pass: strictest */
        for (int d = 0; d < 2; d++)
            if (dirs & (d ? MM_DIR_REQUEST : MM_DIR_RESPONSE)) {
                m->ws_binary_pass[d] = m->ws_binary_pass[d] && p->ws_binary_pass;
                if (!ws_seen[d] || (uint64_t)p->ws_max_message < m->ws_max_message[d])
                    m->ws_max_message[d] = (uint64_t)p->ws_max_message;
                ws_seen[d] = true;
            }
        for (size_t ri = 0; ri < p->n_rules; ri++) {
            const mm_rule *r = &p->rules[ri];
            int idx = (int)m->n_rules;
            snprintf(where, sizeof(where), "policy %s%s%s rule %s", p->ns ? p->ns : "",
                     p->ns ? "/" : "", p->name, r->name);
            if ((rc = rule_add(m, p, r->name, &r->action, keys, where, eb)) != MM_OK)
                goto out;
            for (size_t f = 0; f < r->n_fields; f++)
                if (add_path(m, &r->fields[f], idx, &path_cap) != MM_OK)
                    goto nomem;
            for (size_t k = 0; k < r->n_detectors; k++) {
                int id = det_lookup(r->detectors[k]);
                if (id < 0) {
                    rc = mm_errf(eb, MM_EINVAL, "%s: unknown detector %s", where, r->detectors[k]);
                    goto out;
                }
                if (slot_add(m, (size_t)id, idx) != MM_OK)
                    goto nomem;
                for (int d = 0; d < 2; d++)
                    if (m->scan || (dirs & (d ? MM_DIR_REQUEST : MM_DIR_RESPONSE))) {
                        if (det_set_add_builtin(m->det[d], (det_id)id, id) != MM_OK)
                            goto nomem;
                        /* the set is per direction, so member names count for the detector
                         * in every rule naming it there (docs/detectors.md) */
                        if (r->use_member_names &&
                            det_set_use_member_names(m->det[d], (det_id)id) != MM_OK)
                            goto nomem;
                    }
            }
            for (size_t k = 0; k < r->n_patterns; k++, pat++) {
                int slot = DET_BUILTIN_COUNT + (int)pat;
                if (slot_add(m, (size_t)slot, idx) != MM_OK)
                    goto nomem;
                for (int d = 0; d < 2; d++)
                    if (m->scan || (dirs & (d ? MM_DIR_REQUEST : MM_DIR_RESPONSE)))
                        if ((rc = det_set_add_pattern(m->det[d], r->patterns[k].name,
                                                      r->patterns[k].regex, slot, eb)) != MM_OK) {
                            mm_errprefix(eb, "%s", where);
                            goto out;
                        }
            }
            for (size_t k = 0; k < r->n_content_types; k++)
                if (add_ctype(m, r->content_types[k]) != MM_OK)
                    goto nomem;
        }
        for (size_t hi = 0; hi < p->n_headers; hi++) {
            const mm_header_rule *h = &p->headers[hi];
            mhdr *mh = &m->hdrs[m->n_hdrs];
            snprintf(where, sizeof(where), "policy %s header %s", p->name, h->name);
            if ((rc = compile_action(&h->action, keys, m->scan, where, &mh->act, eb)) != MM_OK)
                goto out;
            m->n_hdrs++;
            if (!(mh->name = mm_strdup(h->name)) || !(mh->policy = mm_strdup(p->name)))
                goto nomem;
            mh->audit = p->mode == MM_MODE_AUDIT;
            mh->dirs = dirs;
        }
    }
    if ((rc = deny_add(m, sorted, n, keys, &path_cap, eb)) != MM_OK)
        goto out;
    /* scan mode: every built-in detector, attributed to the rules that name it, if any */
    if (m->scan)
        for (int d = 0; d < 2; d++)
            for (int id = 0; id < DET_BUILTIN_COUNT; id++)
                if (det_set_add_builtin(m->det[d], (det_id)id, id) != MM_OK)
                    goto nomem;
    for (int d = 0; d < 2; d++) {
        if ((rc = det_set_compile(m->det[d], eb)) != MM_OK)
            goto out;
        if (det_set_empty(m->det[d])) {
            det_set_free(m->det[d]);
            m->det[d] = NULL;
        }
    }
    if (paths_compile(m) != MM_OK)
        goto nomem;
    *out = m;
    m = NULL;
    goto out;
nomem:
    rc = mm_errf(eb, MM_ENOMEM, "out of memory compiling policies");
out:
    mm_free(sorted);
    if (m)
        masker_destroy(m);
    return rc;
}

bool mm_masker_applies(const mm_masker *m, mm_direction dir)
{
    return (m->dirs_any & (unsigned)(dir ? dir : MM_DIR_RESPONSE)) != 0;
}

mm_on_error mm_masker_on_error(const mm_masker *m, mm_direction dir)
{
    return m->on_error[dir_index(dir)];
}

mm_unlisted mm_masker_unlisted(const mm_masker *m, mm_direction dir)
{
    return m->unlisted[dir_index(dir)];
}

bool mm_masker_ws_binary_pass(const mm_masker *m, mm_direction dir)
{
    return m->ws_binary_pass[dir_index(dir)];
}

uint64_t mm_masker_ws_max_message(const mm_masker *m, mm_direction dir)
{
    return m->ws_max_message[dir_index(dir)];
}

size_t mm_masker_rule_count(const mm_masker *m) { return m->n_rules; }

const char *mm_masker_rule_name(const mm_masker *m, size_t i)
{
    return i < m->n_rules ? m->rules[i].name : NULL;
}

const char *mm_masker_rule_policy(const mm_masker *m, size_t i)
{
    return i < m->n_rules ? m->rules[i].policy : NULL;
}

/* ---- body kinds ----------------------------------------------------------------------- */

/* The media type without parameters, lowercased, into buf. */
static size_t media_type(const char *ct, char *buf, size_t cap)
{
    size_t n = 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    for (; *ct && *ct != ';' && *ct != ' ' && *ct != '\t' && n + 1 < cap; ct++)
        buf[n++] = (char)(*ct >= 'A' && *ct <= 'Z' ? *ct - 'A' + 'a' : *ct);
    buf[n] = '\0';
    return n;
}

mm_body_kind mm_body_kind_for(const mm_masker *m, const char *content_type)
{
    char t[128];
    size_t n;

    if (!content_type || !(n = media_type(content_type, t, sizeof(t))))
        return MM_BODY_OPAQUE;
    if (strcmp(t, "application/grpc") == 0 || strncmp(t, "application/grpc+", 17) == 0)
        return MM_BODY_GRPC; /* before +json: grpc+json is framed too */
    if (strcmp(t, "application/json") == 0 || (n > 5 && strcmp(t + n - 5, "+json") == 0 &&
                                               strncmp(t, "application/", 12) == 0))
        return MM_BODY_JSON;
    if (strcmp(t, "application/x-ndjson") == 0 || strcmp(t, "application/jsonl") == 0 ||
        strcmp(t, "application/x-jsonlines") == 0 || strcmp(t, "application/json-seq") == 0 ||
        strcmp(t, "application/ndjson") == 0 || strcmp(t, "application/jsonlines") == 0)
        return MM_BODY_NDJSON;
    if (strcmp(t, "text/event-stream") == 0)
        return MM_BODY_SSE;
    if (strncmp(t, "text/", 5) == 0)
        return MM_BODY_TEXT;
    for (size_t i = 0; m && i < m->n_ctypes; i++)
        if (strcmp(t, m->ctypes[i]) == 0)
            return MM_BODY_TEXT;
    return MM_BODY_OPAQUE;
}

const char *mm_body_kind_name(mm_body_kind k)
{
    static const char *const names[] = {"json", "ndjson", "sse", "text", "opaque", "grpc",
                                        "protobuf"};
    return (unsigned)k <= MM_BODY_PROTOBUF ? names[k] : "?";
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

mm_body_kind mm_body_kind_sniff(const char *filename, const char *head, size_t len)
{
    size_t i = 0;
    if (filename) {
        if (ends_with(filename, ".ndjson") || ends_with(filename, ".jsonl"))
            return MM_BODY_NDJSON;
        if (ends_with(filename, ".json"))
            return MM_BODY_JSON;
        if (ends_with(filename, ".log") || ends_with(filename, ".txt"))
            return MM_BODY_TEXT;
    }
    while (i < len && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n'))
        i++;
    if (i == len || (head[i] != '{' && head[i] != '['))
        return MM_BODY_TEXT;
    /* A value that ends on its first line and another that starts on a later one: NDJSON.
     * Objects and arrays pretty-printed over many lines stay JSON. */
    int depth = 0;
    bool in_str = false, esc = false;
    for (; i < len; i++) {
        char c = head[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (--depth == 0) {
                for (i++; i < len && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r'); i++)
                    ;
                return i < len && head[i] == '\n' ? MM_BODY_NDJSON : MM_BODY_JSON;
            }
        } else if (c == '\n')
            return MM_BODY_JSON; /* the first value spans lines */
    }
    return MM_BODY_JSON;
}

/* ---- headers -------------------------------------------------------------------------- */

/* The rewritten or removed form of a header under action a. */
static mm_err header_apply(const act_t *a, const char *value, size_t vlen, mm_buf *out,
                           mm_hdr_result *res)
{
    if (a->type == MM_ACTION_REMOVE) {
        *res = MM_HDR_REMOVE;
        return MM_OK;
    }
    mm_buf_reset(out);
    mm_err rc = act_apply(a, value, vlen, out);
    if (rc == MM_OK)
        *res = MM_HDR_REWRITE;
    return rc;
}

static bool has_str(char *const *v, size_t n, const char *s, bool nocase)
{
    for (size_t i = 0; i < n; i++)
        if ((nocase ? strcasecmp(v[i], s) : strcmp(v[i], s)) == 0)
            return true;
    return false;
}

mm_err mm_masker_header(const mm_masker *m, mm_direction dir, const char *principal,
                        const char *name, const char *value, size_t vlen, mm_buf *out,
                        mm_hdr_result *res, mm_finding_fn on_finding, void *finding_ctx)
{
    unsigned d = (unsigned)(dir ? dir : MM_DIR_RESPONSE);

    /* Exemptions name body rules; header rules have no names, so no caller is exempt
     * from them (DESIGN.md: exemptions list rules). A policy's default deny is named
     * (MM_DENY_RULE), so callers may be exempt from that. */
    *res = MM_HDR_KEEP;
    for (size_t i = 0; i < m->n_hdrs; i++) {
        const mhdr *h = &m->hdrs[i];
        if (!(h->dirs & d) || strcasecmp(h->name, name) != 0)
            continue;
        bool apply = !h->audit && !m->scan;
        if (on_finding) {
            mm_finding f = {.rule = h->name, .policy = h->policy, .detector = NULL,
                            .path = NULL, .offset = 0, .line = 0, .applied = apply};
            on_finding(finding_ctx, &f);
        }
        if (apply) /* an audit rule reports and shields nothing (README) */
            return header_apply(&h->act, value, vlen, out, res);
    }
    /* No header rule names it: it passes only if every default deny that applies allows
     * it; the first (in policy order) that does not, and is not audit or exempt, decides.
     * Audit and exempt ones report and let the next one decide. */
    for (size_t i = 0; i < m->n_dhdrs; i++) {
        const mdhdr *h = &m->dhdrs[i];
        if (!(h->dirs & d) || has_str(h->names, h->n_names, name, true))
            continue;
        bool apply = !h->audit && !m->scan &&
                     !(principal && has_str(h->exempt, h->n_exempt, principal, false));
        if (on_finding) {
            mm_finding f = {.rule = MM_DENY_RULE, .policy = h->policy, .detector = NULL,
                            .path = NULL, .offset = 0, .line = 0, .applied = apply};
            on_finding(finding_ctx, &f);
        }
        if (apply)
            return header_apply(&h->act, value, vlen, out, res);
    }
    return MM_OK;
}
