/* lib/policy: warnings for policies that parse but break practice (PCI DSS) or clients. */
#include "policy/policy_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool field_named(const mm_rule *r, const char *const *names)
{
    for (size_t i = 0; i < r->n_fields; i++) {
        const mm_path *p = &r->fields[i];
        if (!p->n_steps || p->steps[p->n_steps - 1].kind != MM_STEP_NAME)
            continue;
        for (size_t k = 0; names[k]; k++)
            if (strcasecmp(p->steps[p->n_steps - 1].name, names[k]) == 0)
                return true;
    }
    return false;
}

static bool has_detector(const mm_rule *r, const char *d)
{
    for (size_t i = 0; i < r->n_detectors; i++)
        if (strcmp(r->detectors[i], d) == 0)
            return true;
    return false;
}

size_t mm_policy_lint(const mm_policy *p, const char *filename, mm_diags *diags)
{
    static const char *const card_names[] = {"card", "pan", "cc", "card_number", "cardNumber",
                                             "cardnumber", "ccnumber", "cc_number", NULL};
    static const char *const ssn_names[] = {"ssn", "social_security_number", NULL};
    char msg[MM_ERRBUF_SIZE];
    size_t added = 0;

    for (size_t i = 0; i < p->n_rules; i++) {
        const mm_rule *r = &p->rules[i];
        bool card = has_detector(r, "credit_card") || field_named(r, card_names);
        bool ssn = has_detector(r, "us_ssn") || field_named(r, ssn_names);
        if (card && r->action.type == MM_ACTION_MASK &&
            (r->action.keep_first > 6 || r->action.keep_last > 4)) {
            snprintf(msg, sizeof(msg), "%s: policy %s: spec.rules[%zu].action: rule \"%s\" shows "
                     "more of a card number than PCI DSS allows (at most the first 6 and last 4 "
                     "digits; keepFirst %d, keepLast %d)", filename, p->name, i, r->name,
                     r->action.keep_first, r->action.keep_last);
            if (diags_add(diags, true, msg) == MM_OK)
                added++;
        }
        if ((card || ssn) && r->action.type == MM_ACTION_HASH && !r->action.key) {
            snprintf(msg, sizeof(msg), "%s: policy %s: spec.rules[%zu].action: rule \"%s\" hashes "
                     "%s without a key: such low-entropy values are reversible by brute force; "
                     "use a keyed hash (key) or tokenize", filename, p->name, i, r->name,
                     card ? "card numbers" : "SSNs");
            if (diags_add(diags, true, msg) == MM_OK)
                added++;
        }
    }
    /* a default deny of headers that drops or rewrites Content-Type leaves clients unable
     * to read the (masked) body */
    bool ct = false;
    for (size_t i = 0; i < p->deny_headers.n_names; i++)
        ct |= strcasecmp(p->deny_headers.names[i], "Content-Type") == 0;
    for (size_t i = 0; i < p->n_headers; i++)
        ct |= strcasecmp(p->headers[i].name, "Content-Type") == 0; /* decided explicitly */
    if (p->deny_headers.set && !ct) {
        snprintf(msg, sizeof(msg), "%s: policy %s: spec.defaultDeny.headers.names: Content-Type "
                 "is not allowed, so clients cannot tell the body's type; allow it (and the "
                 "other headers your clients need)", filename, p->name);
        if (diags_add(diags, true, msg) == MM_OK)
            added++;
    }
    return added;
}
