/* lib/policy: the encrypt action's fields (build.c calls these for actions and rules) —
 * mode or format, key and keyVersion, keepFirst/keepLast, tweak, luhn, surrogate — and the
 * defaults an encrypt action takes from its rule. */
#include "policy/policy_int.h"

#include <string.h>

/* encrypt: mode (or format: ff1), key and keyVersion required; tweak a constant string or
 * {fromRule: true} (build_rule fills in the rule's name); luhn and surrogate for ff1. */
void build_encrypt(bctx *c, const node *n, mm_action *a)
{
    const node *f, *mode = node_get(n, "mode"), *format = node_get(n, "format");
    size_t old;
    long v;
    char *s;

    if (mode && format)
        bad(c, n, "give mode or format, not both (format: ff1 is mode: ff1)");
    if (!mode && !format)
        bad(c, n, "encrypt requires mode (ff1 or siv; format: ff1 is the same as mode: ff1)");
    if ((f = mode ? mode : format)) {
        old = push_key(c, mode ? "mode" : "format");
        if ((s = want_str(c, f, "ff1 or siv"))) {
            if (strcmp(s, "ff1") == 0)
                a->enc_mode = MM_ENC_FF1;
            else if (strcmp(s, "siv") == 0 && mode)
                a->enc_mode = MM_ENC_SIV;
            else
                bad(c, f, "unknown %s \"%.20s\" (expected %s)", mode ? "mode" : "format", s,
                    mode ? "ff1 or siv" : "ff1");
            mm_free(s);
        }
        pop(c, old);
    }
    if ((f = node_get(n, "key"))) {
        old = push_key(c, "key");
        a->key = want_str(c, f, "a key name of the Secret maskmesh-keys");
        if (a->key && (!secret_key_ok(a->key) || strstr(a->key, ".v")))
            bad(c, f, "\"%.64s\" is not a valid key name ([-._a-zA-Z0-9]+, without the .v<N> "
                "that keyVersion adds)", a->key);
        pop(c, old);
    } else {
        bad(c, n, "encrypt requires key (entries <key>.v<N> of the Secret maskmesh-keys)");
    }
    if ((f = node_get(n, "keyVersion"))) {
        old = push_key(c, "keyVersion");
        if (want_int(c, f, 1, MM_POLICY_MAX_KEY_VERSION, &v))
            a->key_version = (int)v;
        pop(c, old);
    } else {
        bad(c, n, "encrypt requires keyVersion (the N of the entry <key>.v<N> it writes with)");
    }
    for (int i = 0; i < 2; i++) {
        const char *field = i ? "keepLast" : "keepFirst";
        if ((f = node_get(n, field))) {
            old = push_key(c, field);
            if (a->enc_mode != MM_ENC_FF1)
                bad(c, f, "applies to mode ff1 only");
            else if (want_int(c, f, 0, MM_POLICY_MAX_KEEP, &v))
                *(i ? &a->keep_last : &a->keep_first) = (int)v;
            pop(c, old);
        }
    }
    if ((f = node_get(n, "tweak"))) {
        old = push_key(c, "tweak");
        if (f->kind == NODE_MAP) {
            const node *fr = node_get(f, "fromRule"), *fd = node_get(f, "field");
            static const char *const tkeys[] = {"fromRule", "field", NULL};
            bool yes = false;
            check_keys(c, f, tkeys);
            if (fd && !fr) {
                size_t o2 = push_key(c, "field");
                if ((a->tweak_field = want_str(c, fd, "a member name of the same object")) &&
                    (!*a->tweak_field || a->tweak_field[0] == '$' ||
                     strlen(a->tweak_field) > MM_TWEAK_FIELD_MAX))
                    bad(c, fd, "a member name of the same object (1-%d bytes, not a path)",
                        MM_TWEAK_FIELD_MAX);
                pop(c, o2);
            } else if (fd || !fr || !want_bool(c, fr, &yes) || !yes)
                bad(c, f, "a tweak map is {fromRule: true} or {field: <member name>}; a "
                    "constant tweak is a string");
            /* "" marks "from rule": the rule fills it in (for field: what a value whose
             * object lacks the field takes instead) */
            if (!(a->tweak = mm_strdup("")))
                c->oom = true;
            a->tweak_from_rule = true;
        } else if ((a->tweak = want_str(c, f, "a tweak string or {fromRule: true}")) &&
                   strlen(a->tweak) > 256) {
            bad(c, f, "a tweak is at most 256 bytes");
        }
        pop(c, old);
    }
    if ((f = node_get(n, "luhn"))) {
        old = push_key(c, "luhn");
        if (a->enc_mode != MM_ENC_FF1)
            bad(c, f, "applies to mode ff1 only");
        else if ((s = want_str(c, f, "valid, invalid or none"))) {
            if (strcmp(s, "valid") == 0)
                a->luhn = MM_LUHN_VALID;
            else if (strcmp(s, "invalid") == 0)
                a->luhn = MM_LUHN_INVALID;
            else if (strcmp(s, "none") == 0)
                a->luhn = MM_LUHN_NONE;
            else
                bad(c, f, "unknown luhn \"%.20s\" (expected valid, invalid or none)", s);
            mm_free(s);
        }
        a->luhn_set = true;
        pop(c, old);
    }
    if ((f = node_get(n, "surrogate"))) {
        old = push_key(c, "surrogate");
        if (a->enc_mode != MM_ENC_FF1)
            bad(c, f, "applies to mode ff1 only (siv tokens carry their version)");
        else if ((a->surrogate = want_str(c, f, "a surrogate prefix")) &&
                 (!a->surrogate[0] || strlen(a->surrogate) > 32 ||
                  strspn(a->surrogate, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_") !=
                      strlen(a->surrogate)))
            bad(c, f, "a surrogate is 1-32 letters or '_' (it is followed by .v<N>:)");
        pop(c, old);
    }
}

/* What an encrypt action takes from its rule: the rule's name as tweak ({fromRule: true}),
 * and card handling (luhn: invalid) when the rule names credit_card and luhn is not set. */
void rule_encrypt_defaults(bctx *c, const mm_rule *r, mm_action *a, const node *n)
{
    if (a->type != MM_ACTION_ENCRYPT)
        return;
    /* the engine finds the field beside values that paths select; a detector's match is
     * part of a string, and its object's later members cannot be waited for */
    if (a->tweak_field && (r->n_detectors || r->n_patterns))
        bad(c, n, "tweak {field: ...} needs a rule that selects values by fields only "
            "(this one has detectors or patterns)");
    if (a->tweak_from_rule && r->name) {
        mm_free(a->tweak);
        if (!(a->tweak = mm_strdup(r->name)))
            c->oom = true;
    }
    for (size_t i = 0; !a->luhn_set && a->enc_mode == MM_ENC_FF1 && i < r->n_detectors; i++)
        if (strcmp(r->detectors[i], "credit_card") == 0)
            a->luhn = MM_LUHN_INVALID;
}
