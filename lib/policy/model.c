/* lib/policy: the model's own data — the built-in detector names, freeing a policy, and the
 * policy set. Building a policy from a document is build.c (with check.c's primitives);
 * the entry points are load.c, the PCI DSS lint lint.c, diagnostics diags.c. */
#include "policy/policy_int.h"

#include <stdio.h>
#include <string.h>

/* The names come from lib/mask's registry, the one list of built-in detectors; this is a
 * data include, so lib/policy (and the webhook, which links no masking code) still links
 * nothing of lib/mask. */
const char *const mm_detector_names[] = {
#define DETECTOR(id, fn, name, words, bytes, keys, doc) name,
#include "mask/detectors.def"
#undef DETECTOR
    NULL};

/* Per detector, the member names that are evidence for it ("" when none). */
static const char *const detector_members[] = {
#define DETECTOR(id, fn, name, words, bytes, keys, doc) keys,
#include "mask/detectors.def"
#undef DETECTOR
};

bool policy_rule_reads_members(const mm_rule *r)
{
    for (size_t i = 0; i < r->n_detectors; i++)
        for (size_t k = 0; mm_detector_names[k]; k++)
            if (r->detectors[i] && strcmp(r->detectors[i], mm_detector_names[k]) == 0 &&
                detector_members[k][0])
                return true;
    return false;
}

/* For an unknown name: the built-in it most likely meant (one sharing its first word, as
 * "ssn" for us_ssn or "credit_cards" for credit_card), else where the list is. */
const char *policy_detector_hint(const char *name)
{
    static _Thread_local char hint[96];
    size_t w = strcspn(name, "_");
    for (size_t i = 0; mm_detector_names[i]; i++) {
        const char *d = mm_detector_names[i], *u = strchr(d, '_');
        size_t dw = strcspn(d, "_");
        if ((w >= 3 && dw == w && strncmp(d, name, w) == 0) ||
            (u && strlen(u + 1) == strlen(name) && strcmp(u + 1, name) == 0)) {
            snprintf(hint, sizeof(hint), "did you mean %s? maskctl --help lists them all", d);
            return hint;
        }
    }
    return "maskctl --help and docs/detectors.md list the built-in detectors";
}

bool mm_detector_known(const char *name)
{
    for (size_t i = 0; mm_detector_names[i]; i++)
        if (strcmp(name, mm_detector_names[i]) == 0)
            return true;
    return false;
}

/* ---- freeing -------------------------------------------------------------------------- */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        mm_free(v[i]);
    mm_free(v);
}

void action_clear(mm_action *a)
{
    mm_free(a->replacement);
    mm_free(a->mask_char);
    mm_free(a->key);
    mm_free(a->value);
    mm_free(a->tweak);
    mm_free(a->tweak_field);
    mm_free(a->surrogate);
}

void selector_clear(mm_selector *s)
{
    strv_free(s->label_keys, s->n_labels);
    strv_free(s->label_values, s->n_labels);
    for (size_t i = 0; i < s->n_exprs; i++) {
        mm_free(s->exprs[i].key);
        strv_free(s->exprs[i].values, s->exprs[i].n_values);
    }
    mm_free(s->exprs);
    memset(s, 0, sizeof(*s));
}

void mm_policy_free(mm_policy *p)
{
    if (!p)
        return;
    mm_free(p->name);
    mm_free(p->ns);
    mm_free(p->uid);
    mm_free(p->resource_version);
    selector_clear(&p->selector);
    mm_free(p->port);
    for (size_t i = 0; i < p->n_rules; i++) {
        mm_rule *r = &p->rules[i];
        mm_free(r->name);
        for (size_t j = 0; j < r->n_fields; j++)
            mm_path_clear(&r->fields[j]);
        mm_free(r->fields);
        strv_free(r->detectors, r->n_detectors);
        for (size_t j = 0; j < r->n_patterns; j++) {
            mm_free(r->patterns[j].name);
            mm_free(r->patterns[j].regex);
        }
        mm_free(r->patterns);
        strv_free(r->content_types, r->n_content_types);
        action_clear(&r->action);
    }
    mm_free(p->rules);
    for (size_t i = 0; i < p->n_headers; i++) {
        mm_free(p->headers[i].name);
        action_clear(&p->headers[i].action);
    }
    mm_free(p->headers);
    for (size_t i = 0; i < p->n_exemptions; i++) {
        strv_free(p->exemptions[i].principals, p->exemptions[i].n_principals);
        strv_free(p->exemptions[i].rules, p->exemptions[i].n_rules);
    }
    mm_free(p->exemptions);
    for (size_t i = 0; i < p->n_grants; i++) {
        strv_free(p->grants[i].principals, p->grants[i].n_principals);
        for (size_t k = 0; k < p->grants[i].n_rules; k++) {
            mm_free(p->grants[i].rules[k].rule);
            action_clear(&p->grants[i].rules[k].action);
        }
        mm_free(p->grants[i].rules);
    }
    mm_free(p->grants);
    for (size_t i = 0; i < p->deny_body.n_fields; i++)
        mm_path_clear(&p->deny_body.fields[i]);
    mm_free(p->deny_body.fields);
    action_clear(&p->deny_body.action);
    strv_free(p->deny_headers.names, p->deny_headers.n_names);
    action_clear(&p->deny_headers.action);
    mm_free(p->allow_from_json);
    streams_free(p->streams);
    grpc_free(p->grpc);
    mm_free(p);
}

size_t mm_policy_set_count(const mm_policy_set *s) { return s ? s->n : 0; }

const mm_policy *mm_policy_set_get(const mm_policy_set *s, size_t i)
{
    return s && i < s->n ? s->items[i] : NULL;
}

void mm_policy_set_free(mm_policy_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        mm_policy_free(s->items[i]);
    mm_free(s->items);
    mm_free(s);
}
