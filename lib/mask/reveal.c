/* lib/mask: reveal — the encrypt action run backwards over a whole document, for maskctl
 * reveal. JSON documents are parsed with json-c (reveal is offline and reads documents
 * whole; the streaming engine has no inverse mode), values at an encrypt rule's paths are
 * decrypted whole, and every string (JSON) or line (text) is searched for the shapes that
 * encrypt rules with detectors write:
 *   siv:              enc_v<N>_<base64url>
 *   ff1 + surrogate:  <surrogate>.v<N>:<symbols and separators>
 *   ff1 card rules:   a run of 12-19 digits with single spaces or '-' between (the Luhn
 *                     digit of a ciphertext is deliberately wrong, so the credit_card
 *                     detector would not find it)
 * FF1 ciphertexts of other detectors without a surrogate have no mark to find them by;
 * docs/encrypt.md recommends a surrogate for those. */
#include "mask/crypt_int.h"
#include "mask/mask_int.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <json-c/json.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#define REVEAL_MAX_VERSIONS 16 /* compiled versions kept per rule */
#define REVEAL_PATH_MAX 4096

typedef struct {
    const mm_policy *policy;
    const mm_rule *rule;
    const mm_action *act;  /* the rule's, or a spec.reveal grant's for it */
    pcre2_code *re;        /* the shape its tokens take in free text; NULL: fields only */
    enc_t *enc[REVEAL_MAX_VERSIONS];
    int ver[REVEAL_MAX_VERSIONS];
    size_t n_enc;
} rrule;

struct mm_revealer {
    const mm_keys *keys;
    int ff1_version;
    rrule *rules;
    size_t n;
    pcre2_match_data *md;
};

static void rrule_clear(rrule *r)
{
    pcre2_code_free(r->re);
    for (size_t i = 0; i < r->n_enc; i++)
        enc_free(r->enc[i]);
}

void mm_revealer_free(mm_revealer *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        rrule_clear(&r->rules[i]);
    mm_free(r->rules);
    pcre2_match_data_free(r->md);
    mm_free(r);
}

/* The token shape of a detector rule, as a PCRE2 pattern in `b`; false when it has none. */
static bool shape_of(const mm_rule *r, const mm_action *a, mm_buf *b)
{
    if (!r->n_detectors && !r->n_patterns)
        return false;
    if (a->enc_mode == MM_ENC_SIV)
        return mm_buf_puts(b, "enc_v[1-9][0-9]{0,3}_[A-Za-z0-9_-]+") == MM_OK;
    if (a->surrogate)
        return mm_buf_printf(b, "\\b%s\\.v[1-9][0-9]{0,3}:[A-Za-z0-9](?:[-. @:+()/_]{0,3}"
                             "[A-Za-z0-9])*", a->surrogate) == MM_OK;
    if (a->luhn != MM_LUHN_NONE)
        return mm_buf_puts(b, "(?<![0-9])[0-9](?:[ -]?[0-9]){11,18}(?![0-9])") == MM_OK;
    return false;
}

/* How many actions (not `clear`) the policy's spec.reveal grants hold. */
static size_t grant_actions(const mm_policy *p)
{
    size_t n = 0;
    for (size_t g = 0; g < p->n_grants; g++)
        for (size_t k = 0; k < p->grants[g].n_rules; k++)
            n += !p->grants[g].rules[k].clear;
    return n;
}

/* The i-th grant action of the policy, and in *rule the rule it stands for. */
static const mm_action *grant_action(const mm_policy *p, size_t i, const mm_rule **rule)
{
    for (size_t g = 0; g < p->n_grants; g++)
        for (size_t k = 0; k < p->grants[g].n_rules; k++) {
            const mm_grant_rule *gr = &p->grants[g].rules[k];
            if (gr->clear || i--)
                continue;
            for (size_t q = 0; q < p->n_rules; q++)
                if (strcmp(p->rules[q].name, gr->rule) == 0)
                    *rule = &p->rules[q];
            return &gr->action;
        }
    return NULL;
}

mm_err mm_revealer_new(const mm_policy *const *policies, size_t n, const mm_keys *keys,
                       int ff1_version, mm_revealer **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_revealer *r = NULL;
    size_t total = 0;
    mm_buf pat;

    mm_buf_init(&pat, 0);
    for (size_t i = 0; i < n; i++)
        total += policies[i]->n_rules + grant_actions(policies[i]);
    if (!(r = mm_calloc(1, sizeof(*r))) || (total && !(r->rules = mm_calloc(total, sizeof(rrule)))))
        goto nomem;
    r->keys = keys;
    r->ff1_version = ff1_version;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < policies[i]->n_rules + grant_actions(policies[i]); k++) {
            const mm_policy *p = policies[i];
            const mm_rule *ru = k < p->n_rules ? &p->rules[k] : NULL;
            const mm_action *act = ru ? &ru->action : NULL;
            rrule *rr;
            int code;
            PCRE2_SIZE off;
            if (!ru) /* the (k - n_rules)-th encrypt action of a grant */
                act = grant_action(p, k - p->n_rules, &ru);
            if (act->type != MM_ACTION_ENCRYPT)
                continue;
            rr = &r->rules[r->n++];
            rr->policy = p;
            rr->rule = ru;
            rr->act = act;
            mm_buf_reset(&pat);
            if (shape_of(ru, act, &pat) &&
                !(rr->re = pcre2_compile((PCRE2_SPTR)pat.data, pat.len, 0, &code, &off, NULL))) {
                rc = mm_errf(eb, MM_EINVAL, "policy %s rule %s: no token pattern (PCRE2 error "
                             "%d)", policies[i]->name, ru->name, code);
                goto out;
            }
        }
    if (!(r->md = pcre2_match_data_create(4, NULL)))
        goto nomem;
    if (!r->n) {
        rc = mm_errf(eb, MM_EINVAL, "the policies have no encrypt rule: nothing to reveal");
        goto out;
    }
    *out = r;
    r = NULL;
    goto out;
nomem:
    rc = mm_errf(eb, MM_ENOMEM, "out of memory");
out:
    mm_buf_free(&pat);
    mm_revealer_free(r);
    return rc;
}

/* The compiled key of `version` for rule rr, compiled on first use. */
static mm_err rule_enc(mm_revealer *r, rrule *rr, int version, enc_t **e, mm_errbuf *eb)
{
    char where[400];
    for (size_t i = 0; i < rr->n_enc; i++)
        if (rr->ver[i] == version) {
            *e = rr->enc[i];
            return MM_OK;
        }
    if (rr->n_enc == REVEAL_MAX_VERSIONS)
        return mm_errf(eb, MM_ELIMIT, "policy %s rule %s: more than %d key versions in one run",
                       rr->policy->name, rr->rule->name, REVEAL_MAX_VERSIONS);
    snprintf(where, sizeof(where), "policy %s rule %s", rr->policy->name, rr->rule->name);
    mm_err rc = enc_compile(rr->act, r->keys, version, where, e, eb);
    if (rc != MM_OK)
        return rc;
    rr->enc[rr->n_enc] = *e;
    rr->ver[rr->n_enc++] = version;
    return MM_OK;
}

typedef struct {
    mm_revealer *r;
    mm_reveal_fn cb;
    void *ctx;
    size_t failed;
    mm_errbuf *eb;
    mm_buf path;
    uint64_t line;
    json_object *obj; /* JSON: the object nearest above the value (tweak: {field: ...}) */
} rctx;

/* tweak: {field: NAME}: member NAME of the value's object, read as the sidecar read it
 * (jtweak.c): a string's content or an integer's text; false (the rule's own tweak) when
 * it is missing or of another kind. */
static bool field_tweak(const rctx *c, const mm_action *a, const char **tw, size_t *twl)
{
    json_object *m;
    if (!a->tweak_field || !c->obj || !json_object_object_get_ex(c->obj, a->tweak_field, &m))
        return false;
    if (!json_object_is_type(m, json_type_string) && !json_object_is_type(m, json_type_int))
        return false;
    *tw = json_object_get_string(m);
    *twl = json_object_is_type(m, json_type_string) ? (size_t)json_object_get_string_len(m)
                                                     : strlen(*tw);
    /* json-c clamps integers past 64 bits to these: the sidecar counted them missing */
    if (json_object_is_type(m, json_type_int) &&
        (strcmp(*tw, "-9223372036854775808") == 0 || strcmp(*tw, "18446744073709551615") == 0))
        return false;
    return *twl <= MM_TWEAK_FIELD_MAX;
}

/* Decrypts one value of rule rr into out. MM_EINVAL (counted by the caller) when it does
 * not decrypt; a missing key version is an error naming the entry. */
static mm_err reveal_value(rctx *c, rrule *rr, const char *v, size_t n, mm_buf *out)
{
    int version = enc_value_version(rr->act, v, n);
    enc_t *e;
    mm_err rc;

    if (version < 0)
        return MM_EINVAL;
    if (version == 0)
        version = c->r->ff1_version ? c->r->ff1_version : rr->act->key_version;
    if ((rc = rule_enc(c->r, rr, version, &e, c->eb)) != MM_OK)
        return rc == MM_EINVAL ? MM_ENOTFOUND : rc; /* a missing key is not a bad value */
    const char *tw;
    size_t twl;
    rc = field_tweak(c, rr->act, &tw, &twl) ? enc_crypt_tweak(e, tw, twl, v, n, out, true)
                                             : enc_decrypt(e, v, n, out);
    if (rc != MM_OK)
        return rc;
    if (c->cb) {
        mm_reveal_event ev = {rr->rule->name, rr->policy->name, version,
                              c->path.len ? c->path.data : NULL, c->line};
        c->cb(c->ctx, &ev);
    }
    return MM_OK;
}

/* Every token of every detector rule in s[0..n), decrypted, into out. */
static mm_err reveal_text(rctx *c, const char *s, size_t n, mm_buf *out)
{
    size_t at = 0;
    mm_err rc = MM_OK;

    while (at <= n) {
        size_t best_s = n + 1, best_e = 0;
        rrule *best = NULL;
        for (size_t i = 0; i < c->r->n; i++) {
            rrule *rr = &c->r->rules[i];
            if (!rr->re || pcre2_match(rr->re, (PCRE2_SPTR)s, n, at, 0, c->r->md, NULL) < 0)
                continue;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->r->md);
            if (ov[0] < best_s) {
                best_s = ov[0];
                best_e = ov[1];
                best = rr;
            }
        }
        if (!best)
            break;
        if ((rc = mm_buf_append(out, s + at, best_s - at)) != MM_OK)
            return rc;
        size_t mark = out->len;
        rc = reveal_value(c, best, s + best_s, best_e - best_s, out);
        if (rc == MM_EINVAL) { /* not one of ours after all: keep it */
            out->len = mark;
            c->failed++;
            rc = mm_buf_append(out, s + best_s, best_e - best_s);
        }
        if (rc != MM_OK)
            return rc;
        at = best_e > best_s ? best_e : best_e + 1;
    }
    return at < n ? mm_buf_append(out, s + at, n - at) : MM_OK;
}

/* ---- JSON ----------------------------------------------------------------------------- */

typedef struct {
    bool is_index;
    const char *name;
    size_t len;
    size_t index;
} seg;

static bool step_matches(const mm_path_step *st, const seg *sg)
{
    switch (st->kind) {
    case MM_STEP_NAME:
        return !sg->is_index && sg->len == st->name_len && memcmp(sg->name, st->name, sg->len) == 0;
    case MM_STEP_INDEX:
        return sg->is_index && st->index >= 0 && sg->index == (size_t)st->index;
    case MM_STEP_WILDCARD:
        return true;
    }
    return false;
}

/* Whether the path steps[i..] selects the node at segs[j..] (".." steps match at any depth
 * below). */
static bool path_matches(const mm_path *p, size_t i, const seg *segs, size_t n, size_t j)
{
    if (i == p->n_steps)
        return j == n;
    const mm_path_step *st = &p->steps[i];
    for (size_t k = j; k < n; k++) {
        if (step_matches(st, &segs[k]) && path_matches(p, i + 1, segs, n, k + 1))
            return true;
        if (!st->descendant)
            break;
    }
    return false;
}

static rrule *field_rule(mm_revealer *r, const seg *segs, size_t n)
{
    for (size_t i = 0; i < r->n; i++)
        for (size_t f = 0; f < r->rules[i].rule->n_fields; f++)
            if (path_matches(&r->rules[i].rule->fields[f], 0, segs, n, 0))
                return &r->rules[i];
    return NULL;
}

#define REVEAL_MAX_DEPTH 512

static mm_err walk(rctx *c, json_object *o, seg *segs, size_t depth);

static mm_err walk_child(rctx *c, json_object *child, seg *segs, size_t depth, size_t plen)
{
    mm_err rc;
    if (depth >= REVEAL_MAX_DEPTH)
        return mm_errf(c->eb, MM_ELIMIT, "%s: nested deeper than %d", c->path.data,
                       REVEAL_MAX_DEPTH);
    rc = walk(c, child, segs, depth + 1);
    c->path.len = plen;
    c->path.data[plen] = '\0';
    return rc;
}

/* A replacement string for value o (a string), or nothing when nothing in it changed. */
static mm_err walk_string(rctx *c, json_object *o, seg *segs, size_t depth)
{
    const char *v = json_object_get_string(o);
    size_t n = (size_t)json_object_get_string_len(o);
    rrule *fr = field_rule(c->r, segs, depth);
    mm_buf out;
    mm_err rc;

    mm_buf_init(&out, 0);
    if (fr) {
        rc = reveal_value(c, fr, v, n, &out);
        if (rc == MM_EINVAL) {
            /* masked ('*') values hold nothing; anything else failing is counted */
            bool masked = strspn(v, "*-. @:+()/_") == n;
            c->failed += !masked;
            rc = MM_OK;
            goto out;
        }
    } else {
        rc = reveal_text(c, v, n, &out);
    }
    if (rc == MM_OK && (out.len != n || memcmp(out.data ? out.data : "", v, n) != 0) &&
        json_object_set_string_len(o, out.data ? out.data : "", (int)out.len) != 1)
        rc = MM_ENOMEM;
out:
    mm_buf_free(&out);
    return rc;
}

static mm_err walk(rctx *c, json_object *o, seg *segs, size_t depth)
{
    mm_err rc = MM_OK;
    size_t plen = c->path.len;

    switch (json_object_get_type(o)) {
    case json_type_object: {
        json_object *outer = c->obj;
        c->obj = o;
        json_object_object_foreach(o, key, child) {
            segs[depth] = (seg){false, key, strlen(key), 0};
            /* $.name when the name is an identifier, else $['name'] */
            bool ident = key[0] && !(key[0] >= '0' && key[0] <= '9') &&
                         strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789_") == strlen(key);
            if ((rc = mm_buf_printf(&c->path, ident ? ".%s" : "['%s']", key)) != MM_OK ||
                (rc = walk_child(c, child, segs, depth, plen)) != MM_OK)
                return rc;
        }
        c->obj = outer;
        break;
    }
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            segs[depth] = (seg){true, NULL, 0, i};
            if ((rc = mm_buf_printf(&c->path, "[%zu]", i)) != MM_OK ||
                (rc = walk_child(c, json_object_array_get_idx(o, i), segs, depth, plen)) != MM_OK)
                return rc;
        }
        break;
    case json_type_string:
        rc = walk_string(c, o, segs, depth);
        break;
    default:
        break;
    }
    return rc;
}

static mm_err reveal_json(rctx *c, const char *in, size_t len, mm_buf *out)
{
    json_tokener *tok = json_tokener_new_ex(REVEAL_MAX_DEPTH);
    json_object *doc = NULL;
    seg *segs = NULL;
    mm_err rc;

    if (!tok || !(segs = mm_calloc(REVEAL_MAX_DEPTH + 1, sizeof(*segs)))) {
        rc = mm_errf(c->eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    doc = json_tokener_parse_ex(tok, in, (int)len);
    size_t end = json_tokener_get_parse_end(tok);
    while (doc && end < len && (in[end] == ' ' || in[end] == '\t' || in[end] == '\r' ||
                                in[end] == '\n'))
        end++;
    if (!doc || json_tokener_get_error(tok) != json_tokener_success || end != len) {
        rc = mm_errf(c->eb, MM_EPARSE, "JSON: offset %zu: %s", end,
                     doc ? "more after the document"
                         : json_tokener_error_desc(json_tokener_get_error(tok)));
        goto out;
    }
    if ((rc = mm_buf_puts(&c->path, "$")) != MM_OK || (rc = walk(c, doc, segs, 0)) != MM_OK)
        goto out;
    rc = mm_buf_puts(out, json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    if (rc == MM_OK)
        rc = mm_buf_putc(out, '\n');
out:
    json_object_put(doc);
    json_tokener_free(tok);
    mm_free(segs);
    return rc;
}

mm_err mm_reveal_buffer(mm_revealer *r, mm_body_kind kind, const char *in, size_t len,
                        mm_buf *out, mm_reveal_fn on_reveal, void *ctx, size_t *failed,
                        mm_errbuf *eb)
{
    rctx c = {.r = r, .cb = on_reveal, .ctx = ctx, .eb = eb};
    mm_err rc = MM_OK;

    mm_buf_init(&c.path, REVEAL_PATH_MAX);
    if (kind == MM_BODY_JSON) {
        rc = reveal_json(&c, in, len, out);
    } else {
        size_t at = 0;
        while (at < len && rc == MM_OK) {
            const char *nl = memchr(in + at, '\n', len - at);
            size_t end = nl ? (size_t)(nl - in) + 1 : len;
            c.line++;
            rc = reveal_text(&c, in + at, end - at, out);
            at = end;
        }
    }
    if (rc == MM_ENOTFOUND || rc == MM_ELIMIT)
        rc = rc == MM_ENOTFOUND ? MM_EINVAL : rc; /* the message names the entry */
    else if (rc != MM_OK && rc != MM_EPARSE && rc != MM_ENOMEM)
        rc = mm_errf(eb, rc, "reveal: %s", mm_strerror(rc));
    if (failed)
        *failed = c.failed;
    mm_buf_free(&c.path);
    return rc;
}
