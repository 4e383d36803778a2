/* lib/policy: builds a MaskingPolicy model from a document tree, validating every field and
 * naming each problem's place; check.c has the primitives it reads values with. */
#include "policy/policy_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- parts of a policy ---------------------------------------------------------------- */

static const char *const action_types[] = {"redact", "mask", "hash", "tokenize", "remove",
                                           "replace", "encrypt", NULL};
#define ACTION_TYPES "redact, mask, hash, tokenize, remove, replace, encrypt"

static void build_action(bctx *c, const node *n, mm_action *a, bool header)
{
    static const char *const keys[] = {"type", "replacement", "keepFirst", "keepLast", "char",
                                       "preserveFormat", "key", "value", "mode", "format",
                                       "keyVersion", "tweak", "luhn", "surrogate", NULL};
    const node *t = node_get(n, "type");
    size_t old;
    long v;
    char *type = NULL;

    a->keep_first = a->keep_last = 0;
    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    if (!t) {
        bad(c, n, "type is required (one of " ACTION_TYPES ")");
        return;
    }
    old = push_key(c, "type");
    if ((type = want_str(c, t, "an action type"))) {
        size_t k;
        for (k = 0; action_types[k]; k++)
            if (strcmp(type, action_types[k]) == 0)
                break;
        if (!action_types[k])
            bad(c, t, "unknown action type \"%.40s\" (expected one of " ACTION_TYPES ")", type);
        else
            a->type = (mm_action_type)k;
        mm_free(type);
        if (!action_types[k]) {
            pop(c, old);
            return;
        }
    }
    pop(c, old);

    /* Fields that belong to one type only are errors elsewhere: `key` on a mask is a
     * mistake the operator wants to hear about, not a silent no-op. */
    static const struct {
        const char *field;
        unsigned types; /* bit per mm_action_type */
    } owners[] = {
        {"replacement", 1u << MM_ACTION_REDACT},
        {"keepFirst", (1u << MM_ACTION_MASK) | (1u << MM_ACTION_ENCRYPT)},
        {"keepLast", (1u << MM_ACTION_MASK) | (1u << MM_ACTION_ENCRYPT)},
        {"char", 1u << MM_ACTION_MASK},
        {"preserveFormat", 1u << MM_ACTION_MASK},
        {"key", (1u << MM_ACTION_HASH) | (1u << MM_ACTION_TOKENIZE) | (1u << MM_ACTION_ENCRYPT)},
        {"keyVersion", (1u << MM_ACTION_TOKENIZE) | (1u << MM_ACTION_ENCRYPT)},
        {"value", 1u << MM_ACTION_REPLACE},
        {"mode", 1u << MM_ACTION_ENCRYPT}, {"format", 1u << MM_ACTION_ENCRYPT},
        {"tweak", 1u << MM_ACTION_ENCRYPT}, {"luhn", 1u << MM_ACTION_ENCRYPT},
        {"surrogate", 1u << MM_ACTION_ENCRYPT},
    };
    for (size_t i = 0; i < MM_ARRAY_LEN(owners); i++) {
        const node *f = node_get(n, owners[i].field);
        if (f && !(owners[i].types & (1u << a->type))) {
            old = push_key(c, owners[i].field);
            bad(c, f, "does not apply to action type %s", action_types[a->type]);
            pop(c, old);
        }
    }

    const node *f;
    switch (a->type) {
    case MM_ACTION_REDACT:
        if ((f = node_get(n, "replacement"))) {
            old = push_key(c, "replacement");
            a->replacement = want_str(c, f, "a replacement string");
            pop(c, old);
        } else if (!(a->replacement = mm_strdup("[REDACTED]")))
            c->oom = true;
        break;
    case MM_ACTION_MASK:
        if ((f = node_get(n, "keepFirst"))) {
            old = push_key(c, "keepFirst");
            if (want_int(c, f, 0, MM_POLICY_MAX_KEEP, &v))
                a->keep_first = (int)v;
            pop(c, old);
        }
        if ((f = node_get(n, "keepLast"))) {
            old = push_key(c, "keepLast");
            if (want_int(c, f, 0, MM_POLICY_MAX_KEEP, &v))
                a->keep_last = (int)v;
            pop(c, old);
        }
        if ((f = node_get(n, "char"))) {
            old = push_key(c, "char");
            a->mask_char = want_str(c, f, "one character");
            if (a->mask_char && !one_utf8_char(a->mask_char))
                bad(c, f, "must be exactly one UTF-8 character");
            pop(c, old);
        } else if (!(a->mask_char = mm_strdup("*")))
            c->oom = true;
        if ((f = node_get(n, "preserveFormat"))) {
            old = push_key(c, "preserveFormat");
            want_bool(c, f, &a->preserve_format);
            pop(c, old);
        }
        break;
    case MM_ACTION_HASH:
    case MM_ACTION_TOKENIZE:
        if ((f = node_get(n, "key"))) {
            old = push_key(c, "key");
            a->key = want_str(c, f, "a key name of the Secret maskmesh-keys");
            if (a->key && !secret_key_ok(a->key))
                bad(c, f, "\"%.64s\" is not a valid Secret key name ([-._a-zA-Z0-9]+)", a->key);
            pop(c, old);
        } else if (a->type == MM_ACTION_TOKENIZE) {
            bad(c, n, "tokenize requires key (an entry of the Secret maskmesh-keys)");
        }
        if ((f = node_get(n, "keyVersion"))) { /* tokenize: tok_v<N>_..., entry <key>.v<N> */
            old = push_key(c, "keyVersion");
            if (want_int(c, f, 1, MM_POLICY_MAX_KEY_VERSION, &v))
                a->key_version = (int)v;
            pop(c, old);
        }
        break;
    case MM_ACTION_ENCRYPT:
        if (header)
            bad(c, n, "encrypt applies to body rules, not headers");
        else
            build_encrypt(c, n, a);
        break;
    case MM_ACTION_REPLACE:
        if ((f = node_get(n, "value"))) {
            old = push_key(c, "value");
            a->value = want_str(c, f, "a replacement value");
            pop(c, old);
        } else {
            bad(c, n, "replace requires value");
        }
        break;
    case MM_ACTION_REMOVE:
        break;
    }
}

static bool nonempty_seq(const node *n) { return n && n->kind == NODE_SEQ && n->n > 0; }

static void check_regex(bctx *c, const node *n, const char *re)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *p = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!p) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof(msg));
        bad(c, n, "the regex does not compile: %s at offset %zu", (const char *)msg, (size_t)off);
        return;
    }
    pcre2_code_free(p);
}

/* A list of JSONPaths (a rule's fields, defaultDeny.body.fields). */
static void build_paths(bctx *c, const node *f, mm_path **out, size_t *count)
{
    if (is_seq(c, f, MM_POLICY_MAX_PATHS) && (*out = mm_calloc(f->n ? f->n : 1, sizeof(mm_path)))) {
        *count = f->n;
        for (size_t i = 0; i < f->n; i++) {
            size_t o2 = push(c, "[%zu]", i);
            char *text = want_str(c, f->items[i], "a JSONPath");
            mm_errbuf peb;
            mm_err prc;
            if (text && (prc = mm_path_parse(text, &(*out)[i], &peb)) != MM_OK) {
                if (prc == MM_ENOMEM)
                    c->oom = true;
                else
                    bad(c, f->items[i], "invalid JSONPath: %s", peb.msg);
            }
            mm_free(text);
            pop(c, o2);
        }
    } else if (f->kind == NODE_SEQ && f->n <= MM_POLICY_MAX_PATHS)
        c->oom = true;
}

static void build_rule(bctx *c, const node *n, mm_rule *r)
{
    static const char *const keys[] = {"name", "fields", "detectors", "patterns",
                                       "contentTypes", "useMemberNames", "action", NULL};
    const node *f;
    size_t old;

    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    if (!(f = node_get(n, "name")))
        bad(c, n, "name is required");
    else {
        old = push_key(c, "name");
        if ((r->name = want_str(c, f, "a rule name")) && !rule_name_ok(r->name))
            bad(c, f, "\"%.64s\" is not a valid rule name: lowercase letters, digits, '-' and "
                "'_', starting and ending with a letter or digit, at most 63", r->name);
        pop(c, old);
    }
    if ((f = node_get(n, "fields"))) {
        old = push_key(c, "fields");
        build_paths(c, f, &r->fields, &r->n_fields);
        pop(c, old);
    }
    if ((f = node_get(n, "detectors"))) {
        old = push_key(c, "detectors");
        if (str_list(c, f, MAX_DETECTORS, "a detector name", &r->detectors, &r->n_detectors))
            for (size_t i = 0; i < r->n_detectors; i++)
                if (!mm_detector_known(r->detectors[i])) {
                    size_t o2 = push(c, "[%zu]", i);
                    bad(c, f->items[i], "unknown detector \"%.40s\" (%s)", r->detectors[i],
                        policy_detector_hint(r->detectors[i]));
                    pop(c, o2);
                }
        pop(c, old);
    }
    if ((f = node_get(n, "patterns"))) {
        old = push_key(c, "patterns");
        if (is_seq(c, f, MAX_PATTERNS) && (r->patterns = mm_calloc(f->n ? f->n : 1, sizeof(mm_pattern)))) {
            r->n_patterns = f->n;
            for (size_t i = 0; i < f->n; i++) {
                static const char *const pkeys[] = {"name", "regex", NULL};
                const node *p = f->items[i], *x;
                size_t o2 = push(c, "[%zu]", i);
                if (is_map(c, p)) {
                    check_keys(c, p, pkeys);
                    if (!(x = node_get(p, "name")))
                        bad(c, p, "name is required");
                    else {
                        size_t o3 = push_key(c, "name");
                        r->patterns[i].name = want_str(c, x, "a pattern name");
                        pop(c, o3);
                    }
                    if (!(x = node_get(p, "regex")))
                        bad(c, p, "regex is required");
                    else {
                        size_t o3 = push_key(c, "regex");
                        if ((r->patterns[i].regex = want_str(c, x, "a regex")))
                            check_regex(c, x, r->patterns[i].regex);
                        pop(c, o3);
                    }
                }
                pop(c, o2);
            }
        } else if (f->kind == NODE_SEQ && f->n <= MAX_PATTERNS)
            c->oom = true;
        pop(c, old);
    }
    if ((f = node_get(n, "contentTypes"))) {
        old = push_key(c, "contentTypes");
        if (str_list(c, f, MAX_CONTENT_TYPES, "a media type", &r->content_types, &r->n_content_types))
            for (size_t i = 0; i < r->n_content_types; i++) {
                if (r->content_types[i] && !media_type_ok(r->content_types[i])) {
                    size_t o2 = push(c, "[%zu]", i);
                    bad(c, f->items[i], "expected a media type such as text/csv (no parameters)");
                    pop(c, o2);
                }
            }
        pop(c, old);
    }
    if ((f = node_get(n, "useMemberNames"))) {
        old = push_key(c, "useMemberNames");
        want_bool(c, f, &r->use_member_names);
        if (r->use_member_names && !policy_rule_reads_members(r))
            bad(c, f, "none of this rule's detectors reads member names (maskctl --help "
                "lists those that do)");
        pop(c, old);
    }
    if (!nonempty_seq(node_get(n, "fields")) && !nonempty_seq(node_get(n, "detectors")) &&
        !nonempty_seq(node_get(n, "patterns")))
        bad(c, n, "a rule needs at least one of fields, detectors or patterns (a non-empty list)");
    if (!(f = node_get(n, "action")))
        bad(c, n, "action is required");
    else {
        old = push_key(c, "action");
        build_action(c, f, &r->action, false);
        pop(c, old);
        rule_encrypt_defaults(c, r, &r->action, f);
    }
}

static void build_selector(bctx *c, const node *n, mm_selector *s)
{
    static const char *const keys[] = {"matchLabels", "matchExpressions", NULL};
    const node *f;
    size_t old;

    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    if ((f = node_get(n, "matchLabels"))) {
        old = push_key(c, "matchLabels");
        if (is_map(c, f)) {
            size_t pairs = f->n / 2;
            s->label_keys = mm_calloc(pairs ? pairs : 1, sizeof(char *));
            s->label_values = mm_calloc(pairs ? pairs : 1, sizeof(char *));
            if (!s->label_keys || !s->label_values)
                c->oom = true;
            else {
                s->n_labels = pairs;
                for (size_t i = 0; i < pairs; i++) {
                    const node *k = f->items[2 * i], *v = f->items[2 * i + 1];
                    size_t o2 = push_key(c, k->text);
                    if (!label_key_ok(k->text))
                        bad(c, k, "invalid label key");
                    if (!(s->label_keys[i] = mm_strdup(k->text)))
                        c->oom = true;
                    if ((s->label_values[i] = want_str(c, v, "a label value")) &&
                        !label_name_ok(s->label_values[i], strlen(s->label_values[i]), true))
                        bad(c, v, "invalid label value: at most 63 of [A-Za-z0-9-_.], starting "
                            "and ending alphanumeric");
                    pop(c, o2);
                }
            }
        }
        pop(c, old);
    }
    if ((f = node_get(n, "matchExpressions"))) {
        old = push_key(c, "matchExpressions");
        if (is_seq(c, f, MAX_EXPRESSIONS) && (s->exprs = mm_calloc(f->n ? f->n : 1, sizeof(mm_sel_expr)))) {
            s->n_exprs = f->n;
            for (size_t i = 0; i < f->n; i++) {
                static const char *const ekeys[] = {"key", "operator", "values", NULL};
                static const char *const ops[] = {"In", "NotIn", "Exists", "DoesNotExist", NULL};
                const node *e = f->items[i], *x;
                mm_sel_expr *se = &s->exprs[i];
                size_t o2 = push(c, "[%zu]", i);
                char *op = NULL;
                if (!is_map(c, e)) {
                    pop(c, o2);
                    continue;
                }
                check_keys(c, e, ekeys);
                if (!(x = node_get(e, "key")))
                    bad(c, e, "key is required");
                else if ((se->key = want_str(c, x, "a label key")) && !label_key_ok(se->key)) {
                    size_t o3 = push_key(c, "key");
                    bad(c, x, "invalid label key");
                    pop(c, o3);
                }
                if (!(x = node_get(e, "operator")))
                    bad(c, e, "operator is required (In, NotIn, Exists, DoesNotExist)");
                else if ((op = want_str(c, x, "an operator"))) {
                    size_t k;
                    for (k = 0; ops[k] && strcmp(op, ops[k]) != 0; k++)
                        ;
                    size_t o3 = push_key(c, "operator");
                    if (!ops[k])
                        bad(c, x, "unknown operator \"%.20s\" (expected In, NotIn, Exists or "
                            "DoesNotExist)", op);
                    else
                        se->op = (mm_sel_op)k;
                    pop(c, o3);
                    mm_free(op);
                }
                if ((x = node_get(e, "values"))) {
                    size_t o3 = push_key(c, "values");
                    if (str_list(c, x, MAX_SEL_VALUES, "a label value", &se->values,
                                 &se->n_values))
                        for (size_t k = 0; k < se->n_values; k++)
                            if (!label_name_ok(se->values[k], strlen(se->values[k]), true)) {
                                size_t o4 = push(c, "[%zu]", k);
                                bad(c, x->items[k], "invalid label value: at most 63 of "
                                    "[A-Za-z0-9-_.], starting and ending alphanumeric");
                                pop(c, o4);
                            }
                    pop(c, o3);
                }
                if ((se->op == MM_SEL_IN || se->op == MM_SEL_NOT_IN) && se->n_values == 0)
                    bad(c, e, "values must be non-empty for In and NotIn");
                if ((se->op == MM_SEL_EXISTS || se->op == MM_SEL_DOES_NOT_EXIST) && se->n_values)
                    bad(c, e, "values must be empty for Exists and DoesNotExist");
                pop(c, o2);
            }
        } else if (f->kind == NODE_SEQ && f->n <= MAX_EXPRESSIONS)
            c->oom = true;
        pop(c, old);
    }
}

static void build_headers(bctx *c, const node *n, mm_policy *p)
{
    if (!is_seq(c, n, MM_POLICY_MAX_HEADERS))
        return;
    if (!(p->headers = mm_calloc(n->n ? n->n : 1, sizeof(mm_header_rule)))) {
        c->oom = true;
        return;
    }
    p->n_headers = n->n;
    for (size_t i = 0; i < n->n; i++) {
        static const char *const keys[] = {"name", "action", NULL};
        const node *h = n->items[i], *f;
        size_t old = push(c, "[%zu]", i);
        if (is_map(c, h)) {
            check_keys(c, h, keys);
            if (!(f = node_get(h, "name")))
                bad(c, h, "name is required");
            else {
                size_t o2 = push_key(c, "name");
                if ((p->headers[i].name = want_str(c, f, "a header name")) &&
                    !http_token(p->headers[i].name))
                    bad(c, f, "not a valid HTTP header name (a token: letters, digits and "
                        "!#$%%&'*+-.^_`|~)");
                for (size_t j = 0; p->headers[i].name && j < i; j++)
                    if (p->headers[j].name &&
                        strcasecmp(p->headers[j].name, p->headers[i].name) == 0) {
                        bad(c, f, "header \"%.64s\" already has a rule (spec.headers[%zu])",
                            p->headers[i].name, j);
                        break;
                    }
                pop(c, o2);
            }
            if (!(f = node_get(h, "action")))
                bad(c, h, "action is required");
            else {
                size_t o2 = push_key(c, "action");
                build_action(c, f, &p->headers[i].action, true);
                pop(c, o2);
            }
        }
        pop(c, old);
    }
}

/* One side of spec.defaultDeny: `allow` (paths for the body, names for headers) and the
 * action for everything else. */
static void build_deny_part(bctx *c, const node *n, bool header, mm_policy *p)
{
    static const char *const body_keys[] = {"fields", "action", NULL};
    static const char *const hdr_keys[] = {"names", "action", NULL};
    const char *allow = header ? "names" : "fields";
    const node *f;
    size_t old;

    if (!is_map(c, n))
        return;
    check_keys(c, n, header ? hdr_keys : body_keys);
    if ((f = node_get(n, allow))) {
        old = push_key(c, allow);
        if (!header)
            build_paths(c, f, &p->deny_body.fields, &p->deny_body.n_fields);
        else if (str_list(c, f, MM_POLICY_MAX_RULES, "a header name", &p->deny_headers.names,
                          &p->deny_headers.n_names))
            for (size_t i = 0; i < p->deny_headers.n_names; i++) {
                const char *h = p->deny_headers.names[i];
                size_t o2 = push(c, "[%zu]", i);
                if (h && !http_token(h))
                    bad(c, f->items[i], "not a valid HTTP header name (a token: letters, digits "
                        "and !#$%%&'*+-.^_`|~)");
                pop(c, o2);
            }
        pop(c, old);
    }
    if (!(f = node_get(n, "action")))
        bad(c, n, "action is required (what every value that is not allowed becomes)");
    else {
        old = push_key(c, "action");
        build_action(c, f, header ? &p->deny_headers.action : &p->deny_body.action, header);
        if (!header && p->deny_body.action.tweak_from_rule) { /* the "rule" is defaultDeny */
            mm_free(p->deny_body.action.tweak);
            if (!(p->deny_body.action.tweak = mm_strdup("defaultDeny")))
                c->oom = true;
        }
        pop(c, old);
    }
}

static void build_deny(bctx *c, const node *n, mm_policy *p)
{
    static const char *const keys[] = {"body", "headers", NULL};
    const node *f;

    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    if ((f = node_get(n, "body"))) {
        size_t old = push_key(c, "body");
        p->deny_body.set = true;
        build_deny_part(c, f, false, p);
        pop(c, old);
    }
    if ((f = node_get(n, "headers"))) {
        size_t old = push_key(c, "headers");
        p->deny_headers.set = true;
        build_deny_part(c, f, true, p);
        pop(c, old);
    }
    if (!p->deny_body.set && !p->deny_headers.set)
        bad(c, n, "body or headers is required (what default deny covers)");
}

/* `principals` of an exemption or a reveal grant: a non-empty list of non-empty strings. */
static void build_principals(bctx *c, const node *e, char ***out, size_t *n)
{
    const node *f = node_get(e, "principals");
    if (!f) {
        bad(c, e, "principals is required");
        return;
    }
    size_t o2 = push_key(c, "principals");
    if (str_list(c, f, MAX_PRINCIPALS, "a principal", out, n) && *n == 0)
        bad(c, f, "at least one principal is required");
    for (size_t k = 0; k < *n; k++)
        if ((*out)[k] && !(*out)[k][0]) {
            size_t o3 = push(c, "[%zu]", k);
            bad(c, f->items[k], "a principal cannot be empty");
            pop(c, o3);
        }
    pop(c, o2);
}

static void build_exemptions(bctx *c, const node *n, mm_policy *p)
{
    if (!is_seq(c, n, MAX_EXEMPTIONS))
        return;
    if (!(p->exemptions = mm_calloc(n->n ? n->n : 1, sizeof(mm_exemption)))) {
        c->oom = true;
        return;
    }
    p->n_exemptions = n->n;
    for (size_t i = 0; i < n->n; i++) {
        static const char *const keys[] = {"principals", "rules", NULL};
        const node *e = n->items[i], *f;
        mm_exemption *x = &p->exemptions[i];
        size_t old = push(c, "[%zu]", i);
        if (is_map(c, e)) {
            check_keys(c, e, keys);
            build_principals(c, e, &x->principals, &x->n_principals);
            if (!(f = node_get(e, "rules")))
                bad(c, e, "rules is required (the rules these principals see unmasked)");
            else {
                size_t o2 = push_key(c, "rules");
                if (str_list(c, f, MM_POLICY_MAX_EXEMPTION_RULES, "a rule name", &x->rules,
                             &x->n_rules)) {
                    if (x->n_rules == 0)
                        bad(c, f, "at least one rule is required");
                    for (size_t k = 0; k < x->n_rules; k++) {
                        bool found = (p->deny_body.set || p->deny_headers.set) &&
                                     strcmp(x->rules[k], MM_DENY_RULE) == 0;
                        for (size_t r = 0; r < p->n_rules; r++)
                            found |= p->rules[r].name && strcmp(p->rules[r].name, x->rules[k]) == 0;
                        if (!found) {
                            size_t o3 = push(c, "[%zu]", k);
                            bad(c, f->items[k], "no rule named \"%.64s\" in this policy%s",
                                x->rules[k], strcmp(x->rules[k], MM_DENY_RULE) == 0
                                                 ? " (it has no defaultDeny)" : "");
                            pop(c, o3);
                        }
                    }
                }
                pop(c, o2);
            }
        }
        pop(c, old);
    }
}

/* spec.reveal (graded reveal): [{principals: [...], rules: [{rule: r, action: {...}} or
 * {rule: r, clear: true}]}]. Rules must exist in this policy. */
static void build_grants(bctx *c, const node *n, mm_policy *p)
{
    if (!is_seq(c, n, MM_POLICY_MAX_GRANTS))
        return;
    if (!(p->grants = mm_calloc(n->n ? n->n : 1, sizeof(mm_grant)))) {
        c->oom = true;
        return;
    }
    p->n_grants = n->n;
    for (size_t i = 0; i < n->n; i++) {
        static const char *const keys[] = {"principals", "rules", NULL};
        const node *e = n->items[i], *f;
        mm_grant *g = &p->grants[i];
        size_t old = push(c, "[%zu]", i);
        if (!is_map(c, e))
            goto next;
        check_keys(c, e, keys);
        build_principals(c, e, &g->principals, &g->n_principals);
        if (!(f = node_get(e, "rules"))) {
            bad(c, e, "rules is required ([{rule: name, action: {...}} or {rule: name, clear: "
                "true}])");
            goto next;
        }
        size_t o2 = push_key(c, "rules");
        if (is_seq(c, f, MM_POLICY_MAX_GRANT_RULES) &&
            !(g->rules = mm_calloc(f->n ? f->n : 1, sizeof(mm_grant_rule))))
            c->oom = true;
        for (size_t k = 0; g->rules && k < f->n; k++) {
            static const char *const rkeys[] = {"rule", "action", "clear", NULL};
            const node *gr = f->items[k], *x, *act;
            mm_grant_rule *r = &g->rules[g->n_rules++];
            const mm_rule *found = NULL;
            size_t o3 = push(c, "[%zu]", k);
            if (is_map(c, gr)) {
                check_keys(c, gr, rkeys);
                if (!(x = node_get(gr, "rule")))
                    bad(c, gr, "rule is required");
                else {
                    size_t o4 = push_key(c, "rule");
                    found = NULL;
                    r->rule = want_str(c, x, "a rule name");
                    for (size_t q = 0; r->rule && q < p->n_rules; q++)
                        if (p->rules[q].name && strcmp(p->rules[q].name, r->rule) == 0)
                            found = &p->rules[q];
                    if (r->rule && !found)
                        bad(c, x, "no rule named \"%.64s\" in this policy", r->rule);
                    pop(c, o4);
                }
                if ((x = node_get(gr, "clear")))
                    want_bool(c, x, &r->clear);
                act = node_get(gr, "action");
                if (r->clear == !!act)
                    bad(c, gr, "give either action or clear: true");
                else if (act) {
                    size_t o4 = push_key(c, "action");
                    build_action(c, act, &r->action, false);
                    if (found) /* an encrypt grant takes the rule's tweak and card defaults */
                        rule_encrypt_defaults(c, found, &r->action, act);
                    if (r->action.type == MM_ACTION_REMOVE)
                        bad(c, act, "remove cannot be granted (a grant changes a value, it "
                            "cannot drop it)");
                    pop(c, o4);
                }
            }
            pop(c, o3);
        }
        pop(c, o2);
    next:
        pop(c, old);
    }
}

/* A CIDR at `seg` below the current path ("cidr" or "[2]" of except). */
static void check_cidr(bctx *c, const node *n, const char *seg)
{
    size_t old = seg[0] == '[' ? push(c, "%s", seg) : push_key(c, seg);
    if (n->kind != NODE_SCALAR || n->type != SC_STRING || strlen(n->text) != n->len ||
        !cidr_ok(n->text))
        bad(c, n, "expected a CIDR such as 10.0.0.0/8 or fd00::/8");
    pop(c, old);
}

static void build_network(bctx *c, const node *n, mm_policy *p)
{
    static const char *const keys[] = {"allowFrom", NULL};
    static const char *const peer_keys[] = {"podSelector", "namespaceSelector", "ipBlock", NULL};
    const node *f;

    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    if (!(f = node_get(n, "allowFrom")))
        return;
    size_t old = push_key(c, "allowFrom");
    if (is_seq(c, f, MAX_PEERS)) {
        for (size_t i = 0; i < f->n; i++) {
            const node *peer = f->items[i], *x;
            size_t o2 = push(c, "[%zu]", i);
            if (is_map(c, peer)) {
                check_keys(c, peer, peer_keys);
                if (peer->n == 0)
                    bad(c, peer, "a peer needs podSelector, namespaceSelector or ipBlock");
                if ((x = node_get(peer, "ipBlock")) &&
                    (node_get(peer, "podSelector") || node_get(peer, "namespaceSelector")))
                    bad(c, peer, "ipBlock cannot be combined with a selector in one peer");
                /* selectors are checked here and kept as JSON for the NetworkPolicy */
                static const char *const sels[] = {"podSelector", "namespaceSelector"};
                for (size_t k = 0; k < MM_ARRAY_LEN(sels); k++) {
                    if (!(x = node_get(peer, sels[k])))
                        continue;
                    size_t o3 = push_key(c, sels[k]);
                    mm_selector tmp = {0};
                    build_selector(c, x, &tmp);
                    selector_clear(&tmp);
                    pop(c, o3);
                }
                if ((x = node_get(peer, "ipBlock"))) {
                    static const char *const ip_keys[] = {"cidr", "except", NULL};
                    size_t o3 = push_key(c, "ipBlock");
                    if (is_map(c, x)) {
                        check_keys(c, x, ip_keys);
                        const node *cidr = node_get(x, "cidr"), *ex = node_get(x, "except");
                        if (!cidr)
                            bad(c, x, "cidr is required");
                        else
                            check_cidr(c, cidr, "cidr");
                        if (ex) {
                            size_t o4 = push_key(c, "except");
                            if (is_seq(c, ex, MAX_EXCEPT))
                                for (size_t k = 0; k < ex->n; k++) {
                                    char idx[32];
                                    snprintf(idx, sizeof(idx), "[%zu]", k);
                                    check_cidr(c, ex->items[k], idx);
                                }
                            pop(c, o4);
                        }
                    }
                    pop(c, o3);
                }
            }
            pop(c, o2);
        }
        mm_err rc = node_to_json(f, &p->allow_from_json);
        if (rc == MM_ELIMIT)
            bad(c, f, "longer than %u bytes as JSON", NODE_JSON_MAX);
        else if (rc != MM_OK)
            c->oom = true;
    }
    pop(c, old);
}

static void build_enum(bctx *c, const node *spec, const char *key, const char *const *names,
                       int *out)
{
    const node *f = node_get(spec, key);
    char *s;
    if (!f)
        return;
    size_t old = push_key(c, key);
    if ((s = want_str(c, f, "a value"))) {
        size_t k;
        for (k = 0; names[k] && strcmp(s, names[k]) != 0; k++)
            ;
        if (!names[k]) {
            char list[128] = "";
            size_t used = 0;
            for (size_t j = 0; names[j]; j++)
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
                                         j ? (names[j + 1] ? ", " : " or ") : "", names[j]);
            bad(c, f, "unknown value \"%.40s\" (expected %s)", s, list);
        } else
            *out = (int)k;
        mm_free(s);
    }
    pop(c, old);
}

static void streams_bad(void *ctx, const node *n, const char *sub, const char *msg)
{
    bctx *c = ctx;
    size_t old = sub ? push_key(c, sub) : c->path.len;
    bad(c, n, "%s", msg);
    pop(c, old);
}

static void build_websocket(bctx *c, const node *n, mm_policy *p)
{
    static const char *const keys[] = {"binary", "maxMessageBytes", NULL};
    static const char *const binary[] = {"refuse", "pass", NULL};
    const node *f;
    int e = 0;

    if (!is_map(c, n))
        return;
    check_keys(c, n, keys);
    build_enum(c, n, "binary", binary, &e);
    p->ws_binary_pass = e == 1;
    if ((f = node_get(n, "maxMessageBytes"))) {
        size_t old = push_key(c, "maxMessageBytes");
        want_int(c, f, 1, MM_POLICY_WS_MSG_MAX, &p->ws_max_message);
        pop(c, old);
    }
}

mm_policy *build_policy(bctx *c, const node *root)
{
    /* status is the controller's; metadata holds much (labels, managedFields...) that is
     * read as-is or not at all */
    static const char *const top_keys[] = {"apiVersion", "kind", "metadata", "spec", "status",
                                           NULL};
    static const char *const spec_keys[] = {"selector", "port", "mode", "onError",
                                            "unlistedTypes", "direction", "rules", "headers",
                                            "defaultDeny", "exemptions", "reveal", "network",
                                            "streams", "websocket", "grpc", NULL};
    static const char *const modes[] = {"enforce", "audit", NULL};
    static const char *const onerr[] = {"block", "redact-all", "passthrough", NULL};
    static const char *const dirs[] = {"response", "request", "both", NULL};
    static const char *const unlisted[] = {"block", "detect", "pass", NULL};
    mm_policy *p = mm_calloc(1, sizeof(*p));
    const node *f, *meta, *spec;
    size_t errors_before = c->errors, old;
    char *s;
    int e;

    if (!p) {
        c->oom = true;
        return NULL;
    }
    p->mode = MM_MODE_ENFORCE;
    p->on_error = MM_ONERR_BLOCK;
    p->unlisted = MM_UNLISTED_DETECT; /* an unknown type is read, not trusted */
    p->direction = MM_DIR_RESPONSE;
    p->ws_max_message = MM_POLICY_WS_MSG_DEFAULT;
    if (!is_map(c, root))
        goto fail;
    check_keys(c, root, top_keys);

    if (!(f = node_get(root, "apiVersion")))
        bad(c, root, "apiVersion is required (maskmesh.io/v1alpha1)");
    else if ((s = want_str(c, f, "an apiVersion"))) {
        old = push_key(c, "apiVersion");
        if (strcmp(s, "maskmesh.io/v1alpha1") != 0)
            bad(c, f, "expected maskmesh.io/v1alpha1, got \"%.64s\"", s);
        pop(c, old);
        mm_free(s);
    }
    if (!(f = node_get(root, "kind")))
        bad(c, root, "kind is required (MaskingPolicy)");
    else if ((s = want_str(c, f, "a kind"))) {
        old = push_key(c, "kind");
        if (strcmp(s, "MaskingPolicy") != 0)
            bad(c, f, "expected MaskingPolicy, got \"%.64s\"", s);
        pop(c, old);
        mm_free(s);
    }

    old = push_key(c, "metadata");
    if (!(meta = node_get(root, "metadata")))
        bad(c, root, "metadata.name is required");
    else if (is_map(c, meta)) {
        if (!(f = node_get(meta, "name")))
            bad(c, meta, "name is required");
        else {
            size_t o2 = push_key(c, "name");
            if ((p->name = want_str(c, f, "a name")) && !dns_subdomain(p->name))
                bad(c, f, "\"%.64s\" is not a valid name: lowercase letters, digits, '-' and '.', "
                    "starting and ending with a letter or digit, at most 253", p->name);
            pop(c, o2);
        }
        if ((f = node_get(meta, "namespace"))) {
            size_t o2 = push_key(c, "namespace");
            if ((p->ns = want_str(c, f, "a namespace")) && !dns_label(p->ns))
                bad(c, f, "\"%.64s\" is not a valid namespace name", p->ns);
            pop(c, o2);
        }
        if ((f = node_get(meta, "uid")) && f->kind == NODE_SCALAR && !(p->uid = mm_strdup(f->text)))
            c->oom = true;
        if ((f = node_get(meta, "resourceVersion")) && f->kind == NODE_SCALAR &&
            !(p->resource_version = mm_strdup(f->text)))
            c->oom = true;
        if ((f = node_get(meta, "generation")) && f->kind == NODE_SCALAR && f->type == SC_INT)
            mm_parse_long(f->text, 0, INT64_MAX, &p->generation);
    }
    pop(c, old);

    old = push_key(c, "spec");
    if (!(spec = node_get(root, "spec"))) {
        bad(c, root, "spec is required");
        pop(c, old);
        goto done;
    }
    if (!is_map(c, spec)) {
        pop(c, old);
        goto done;
    }
    check_keys(c, spec, spec_keys);
    if (!(f = node_get(spec, "selector")))
        bad(c, spec, "selector is required ({} selects every pod of the namespace)");
    else {
        size_t o2 = push_key(c, "selector");
        build_selector(c, f, &p->selector);
        pop(c, o2);
    }
    if ((f = node_get(spec, "port"))) {
        size_t o2 = push_key(c, "port");
        long v;
        if (f->kind == NODE_SCALAR && f->type == SC_INT) {
            if (want_int(c, f, 1, 65535, &v) && !(p->port = mm_strdup(f->text)))
                c->oom = true;
        } else if ((p->port = want_str(c, f, "a port number or name")) && !port_name_ok(p->port))
            bad(c, f, "\"%.20s\" is neither a port number (1-65535, unquoted) nor a port name "
                "(at most 15 of a-z, 0-9, '-', with a letter)", p->port);
        pop(c, o2);
    }
    e = (int)p->mode;
    build_enum(c, spec, "mode", modes, &e);
    p->mode = (mm_mode)e;
    e = (int)p->on_error;
    build_enum(c, spec, "onError", onerr, &e);
    p->on_error = (mm_on_error)e;
    e = (int)p->unlisted;
    build_enum(c, spec, "unlistedTypes", unlisted, &e);
    p->unlisted = (mm_unlisted)e;
    e = 0;
    build_enum(c, spec, "direction", dirs, &e);
    p->direction = (mm_direction)(e + 1);
    if ((f = node_get(spec, "websocket"))) {
        size_t o2 = push_key(c, "websocket");
        build_websocket(c, f, p);
        pop(c, o2);
    }

    if ((f = node_get(spec, "defaultDeny"))) {
        size_t o2 = push_key(c, "defaultDeny");
        build_deny(c, f, p);
        pop(c, o2);
    }
    /* a default-deny policy may have no rules: everything not allowed gets its action */
    bool denies = p->deny_body.set || p->deny_headers.set;
    if (!(f = node_get(spec, "rules"))) {
        if (!denies)
            bad(c, spec, "rules is required (or defaultDeny)");
    } else {
        size_t o2 = push_key(c, "rules");
        if (is_seq(c, f, MM_POLICY_MAX_RULES)) {
            if (f->n == 0 && !denies)
                bad(c, f, "at least one rule is required (or defaultDeny)");
            if (!(p->rules = mm_calloc(f->n ? f->n : 1, sizeof(mm_rule))))
                c->oom = true;
            else {
                p->n_rules = f->n;
                for (size_t i = 0; i < f->n; i++) {
                    size_t o3 = push(c, "[%zu]", i);
                    build_rule(c, f->items[i], &p->rules[i]);
                    for (size_t j = 0; j < i && p->rules[i].name; j++)
                        if (p->rules[j].name && strcmp(p->rules[j].name, p->rules[i].name) == 0) {
                            size_t o4 = push_key(c, "name");
                            bad(c, node_get(f->items[i], "name"),
                                "duplicate rule name \"%s\" (also spec.rules[%zu])",
                                p->rules[i].name, j);
                            pop(c, o4);
                        }
                    pop(c, o3);
                }
            }
        }
        pop(c, o2);
    }
    if ((f = node_get(spec, "headers"))) {
        size_t o2 = push_key(c, "headers");
        build_headers(c, f, p);
        pop(c, o2);
    }
    if ((f = node_get(spec, "exemptions"))) {
        size_t o2 = push_key(c, "exemptions");
        build_exemptions(c, f, p);
        pop(c, o2);
    }
    if ((f = node_get(spec, "reveal"))) {
        size_t o2 = push_key(c, "reveal");
        build_grants(c, f, p);
        pop(c, o2);
    }
    if ((f = node_get(spec, "network"))) {
        size_t o2 = push_key(c, "network");
        build_network(c, f, p);
        pop(c, o2);
    }
    if ((f = node_get(spec, "streams"))) {
        size_t o2 = push_key(c, "streams");
        streams_sink sk = {.bad = streams_bad, .ctx = c};
        p->streams = streams_build(f, &sk);
        c->oom |= sk.oom;
        pop(c, o2);
    }
    if ((f = node_get(spec, "grpc"))) {
        size_t o2 = push_key(c, "grpc");
        grpc_build(c, f, p);
        pop(c, o2);
    }
    pop(c, old);
done:
    if (c->errors == errors_before && !c->oom)
        return p;
fail:
    mm_policy_free(p);
    return NULL;
}

