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

/* FF1's domain for the shortest value each detector accepts (letters and digits in it, and
 * the radix they take): NIST SP 800-38G Rev. 1 requires radix^len >= 1,000,000. */
static size_t lint_ff1_domain(const mm_policy *p, size_t i, const char *filename,
                              mm_diags *diags)
{
    static const struct {
        const char *det;
        int radix, min_len;
    } shortest[] = {
        {"credit_card", 10, 13}, {"us_ssn", 10, 9},  {"phone", 10, 8},
        {"email", 36, 4},        {"iban", 36, 15},   {"ipv4", 10, 4},
        {"ipv6", 36, 1},         {"jwt", 62, 20},    {"aws_access_key", 36, 20},
        {"bearer_token", 62, 1},
    };
    const mm_rule *r = &p->rules[i];
    const mm_action *a = &r->action;
    char msg[MM_ERRBUF_SIZE];
    size_t added = 0;

    if (a->type != MM_ACTION_ENCRYPT || a->enc_mode != MM_ENC_FF1)
        return 0;
    for (size_t k = 0; k < MM_ARRAY_LEN(shortest); k++) {
        if (!has_detector(r, shortest[k].det))
            continue;
        int kept = a->keep_first + (a->luhn != MM_LUHN_NONE && a->keep_last == 0 ? 1 : a->keep_last);
        int len = shortest[k].min_len - kept;
        double dom = 1;
        for (int j = 0; j < len; j++)
            dom *= shortest[k].radix;
        if (len > 0 && dom >= 1e6)
            continue;
        snprintf(msg, sizeof(msg), "%s: policy %s: spec.rules[%zu].action: rule \"%s\" encrypts "
                 "%s values with FF1 over a domain below NIST SP 800-38G's minimum of 1,000,000 "
                 "(the shortest has %d encrypted symbol%s of radix %d); keep fewer characters or "
                 "use mode siv (values too short to encrypt are masked)", filename, p->name, i,
                 r->name, shortest[k].det, len > 0 ? len : 0, len == 1 ? "" : "s",
                 shortest[k].radix);
        if (diags_add(diags, true, msg) == MM_OK)
            added++;
    }
    return added;
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
        if (card && (r->action.type == MM_ACTION_MASK || r->action.type == MM_ACTION_ENCRYPT) &&
            (r->action.keep_first > 6 || r->action.keep_last > 4)) {
            snprintf(msg, sizeof(msg), "%s: policy %s: spec.rules[%zu].action: rule \"%s\" shows "
                     "more of a card number than PCI DSS allows (at most the first 6 and last 4 "
                     "digits; keepFirst %d, keepLast %d)", filename, p->name, i, r->name,
                     r->action.keep_first, r->action.keep_last);
            if (diags_add(diags, true, msg) == MM_OK)
                added++;
        }
        added += lint_ff1_domain(p, i, filename, diags);
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
