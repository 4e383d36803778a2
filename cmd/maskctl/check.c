/* maskctl check: validates a policy file the way the webhook and controller will, adds the
 * PCI DSS warnings, and summarises what each policy does. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "maskctl.h"

static const char check_help[] =
    "usage: maskctl check --policy FILE [--keys DIR] [--descriptors FILE] [--strict]\n"
    "       maskctl check --detectors\n"
    "\n"
    "Validates the MaskingPolicy objects in FILE and prints every error with its place\n"
    "(FILE:LINE:COL: spec.rules[2].action.type: ...), warnings where a policy breaks PCI DSS\n"
    "practice, and a summary of the rules of each valid policy. With --keys, the keys the\n"
    "rules name are checked too.\n"
    "\n"
    "options:\n"
    "  -p, --policy FILE   the policy file (YAML or JSON; \"-\" for stdin)\n"
    "  -k, --keys DIR      key directory to check hash/tokenize keys against\n"
    "      --descriptors FILE  the gRPC descriptor set (protoc --descriptor_set_out) the\n"
    "                      policies mask with: every fields path must name fields of it\n"
    "      --strict        warnings fail the check too\n"
    "      --detectors     list the built-in detectors a rule may name, and exit\n"
    "  -h, --help          this text\n"
    "\n"
    "exit codes: 0 valid, 1 errors (or warnings with --strict), 2 usage error\n";

static const char *action_name(mm_action_type t)
{
    static const char *names[] = {"redact", "mask", "hash", "tokenize", "remove", "replace",
                                  "encrypt"};
    return (size_t)t < MM_ARRAY_LEN(names) ? names[t] : "?";
}

static void print_action(const mm_action *a)
{
    printf("%s", action_name(a->type));
    switch (a->type) {
    case MM_ACTION_MASK:
        printf(" (keepFirst %d, keepLast %d, char \"%s\"%s)", a->keep_first, a->keep_last,
               a->mask_char ? a->mask_char : "*", a->preserve_format ? ", preserveFormat" : "");
        break;
    case MM_ACTION_HASH:
        printf(a->key ? " (HMAC-SHA256, key %s)" : " (SHA-256, unkeyed)", a->key);
        break;
    case MM_ACTION_TOKENIZE:
        printf(a->key_version ? " (key %s.v%d)" : " (key %s)", a->key, a->key_version);
        break;
    case MM_ACTION_ENCRYPT:
        printf(" (%s, key %s.v%d", a->enc_mode == MM_ENC_FF1 ? "ff1" : "siv", a->key,
               a->key_version);
        if (a->enc_mode == MM_ENC_FF1)
            printf(", keepFirst %d, keepLast %d, luhn %s", a->keep_first, a->keep_last,
                   a->luhn == MM_LUHN_VALID ? "valid" : a->luhn == MM_LUHN_INVALID ? "invalid"
                                                                                   : "none");
        if (a->surrogate)
            printf(", surrogate %s", a->surrogate);
        if (a->tweak_field) /* the member's value, else the rule's name */
            printf(", tweak member \"%s\" else \"%s\")", a->tweak_field, a->tweak);
        else
            printf(a->tweak ? ", tweak \"%s\")" : ")", a->tweak);
        break;
    default: break;
    }
}

static void print_list(const char *label, char *const *items, size_t n)
{
    if (!n)
        return;
    printf("      %s:", label);
    for (size_t i = 0; i < n; i++)
        printf("%s %s", i ? "," : "", items[i]);
    printf("\n");
}

static void print_policy(const mm_policy *p)
{
    static const char *modes[] = {"enforce", "audit"};
    static const char *onerr[] = {"block", "redact-all", "passthrough"};
    static const char *dirs[] = {"", "response", "request", "both"};

    printf("policy %s%s%s: mode %s, onError %s, direction %s, port %s\n", p->ns ? p->ns : "",
           p->ns ? "/" : "", p->name, modes[p->mode], onerr[p->on_error], dirs[p->direction],
           p->port ? p->port : "(annotation or default)");
    printf("  selector:");
    if (!p->selector.n_labels && !p->selector.n_exprs)
        printf(" every pod of the namespace");
    for (size_t i = 0; i < p->selector.n_labels; i++)
        printf(" %s=%s", p->selector.label_keys[i], p->selector.label_values[i]);
    for (size_t i = 0; i < p->selector.n_exprs; i++) {
        static const char *ops[] = {"in", "notin", "exists", "!exists"};
        printf(" %s %s", p->selector.exprs[i].key, ops[p->selector.exprs[i].op]);
        for (size_t j = 0; j < p->selector.exprs[i].n_values; j++)
            printf("%s%s", j ? "," : " (", p->selector.exprs[i].values[j]);
        if (p->selector.exprs[i].n_values)
            printf(")");
    }
    printf("\n");
    for (size_t i = 0; i < p->n_rules; i++) {
        const mm_rule *r = &p->rules[i];
        printf("  rule %s: ", r->name);
        print_action(&r->action);
        printf("\n");
        if (r->n_fields) {
            printf("      fields:");
            for (size_t j = 0; j < r->n_fields; j++)
                printf("%s %s", j ? "," : "", r->fields[j].text);
            printf("\n");
        }
        print_list("detectors", r->detectors, r->n_detectors);
        if (r->use_member_names)
            printf("      useMemberNames: member names are evidence (\"ssn\": \"078051234\")\n");
        for (size_t j = 0; j < r->n_patterns; j++)
            printf("      pattern %s: %s\n", r->patterns[j].name, r->patterns[j].regex);
        print_list("contentTypes", r->content_types, r->n_content_types);
    }
    for (size_t i = 0; i < p->n_headers; i++) {
        printf("  header %s: ", p->headers[i].name);
        print_action(&p->headers[i].action);
        printf("\n");
    }
    if (p->deny_body.set) {
        printf("  defaultDeny body (every string and number no rule decides): ");
        print_action(&p->deny_body.action);
        printf("\n      allowed:");
        for (size_t j = 0; j < p->deny_body.n_fields; j++)
            printf("%s %s", j ? "," : "", p->deny_body.fields[j].text);
        printf("%s\n", p->deny_body.n_fields ? "" : " nothing");
    }
    if (p->deny_headers.set) {
        printf("  defaultDeny headers (every header no header rule names): ");
        print_action(&p->deny_headers.action);
        printf("\n      allowed:");
        for (size_t j = 0; j < p->deny_headers.n_names; j++)
            printf("%s %s", j ? "," : "", p->deny_headers.names[j]);
        printf("%s\n", p->deny_headers.n_names ? "" : " nothing");
    }
    for (size_t i = 0; i < p->n_exemptions; i++) {
        printf("  exemption:");
        for (size_t j = 0; j < p->exemptions[i].n_principals; j++)
            printf("%s %s", j ? "," : "", p->exemptions[i].principals[j]);
        printf(" see unmasked:");
        for (size_t j = 0; j < p->exemptions[i].n_rules; j++)
            printf("%s %s", j ? "," : "", p->exemptions[i].rules[j]);
        printf("\n");
    }
    for (size_t i = 0; i < p->n_grants; i++) {
        printf("  reveal to");
        for (size_t j = 0; j < p->grants[i].n_principals; j++)
            printf("%s %s", j ? "," : "", p->grants[i].principals[j]);
        printf(":\n");
        for (size_t j = 0; j < p->grants[i].n_rules; j++) {
            printf("      rule %s: ", p->grants[i].rules[j].rule);
            if (p->grants[i].rules[j].clear)
                printf("clear");
            else
                print_action(&p->grants[i].rules[j].action);
            printf("\n");
        }
    }
    printf("  network: %s\n", p->allow_from_json ? p->allow_from_json
                                                 : "any source, sidecar port only");
}

int maskctl_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"keys", required_argument, NULL, 'k'},
        {"strict", no_argument, NULL, 's'},
        {"descriptors", required_argument, NULL, 'G'},
        {"detectors", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *policy = NULL, *keys_dir = NULL, *descriptors = NULL;
    bool strict = false;
    mm_pbdesc *pb = NULL;
    mm_diags *diags = NULL;
    mm_policy_set *set = NULL;
    mm_masker *m = NULL;
    mm_errbuf eb = {{0}};
    int c, ret = MASKCTL_EINPUT;
    mm_err rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "p:k:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': policy = optarg; break;
        case 'k': keys_dir = optarg; break;
        case 's': strict = true; break;
        case 'G': descriptors = optarg; break;
        case 'D': maskctl_print_detectors(stdout); return MASKCTL_OK;
        case 'h':
            fputs(check_help, stdout);
            maskctl_print_detectors(stdout);
            return MASKCTL_OK;
        default: fputs(check_help, stderr); return MASKCTL_EUSAGE;
        }
    }
    if (!policy && optind < argc)
        policy = argv[optind++];
    if (!policy || optind < argc) {
        fprintf(stderr, "maskctl check: one --policy FILE is required\n\n%s", check_help);
        return MASKCTL_EUSAGE;
    }
    if (mm_diags_new(&diags) != MM_OK) {
        fprintf(stderr, "maskctl check: out of memory\n");
        goto out;
    }
    rc = mm_policy_load(policy, &set, diags, &eb);
    if (rc == MM_OK)
        for (size_t i = 0; i < mm_policy_set_count(set); i++)
            mm_policy_lint(mm_policy_set_get(set, i), policy, diags);
    for (size_t i = 0; i < mm_diags_count(diags); i++) {
        bool warn;
        const char *msg = mm_diags_get(diags, i, &warn);
        fprintf(stderr, "%s: %s\n", warn ? "warning" : "error", msg);
    }
    if (rc != MM_OK) {
        if (mm_diags_errors(diags) == 0) /* an I/O error, not a validation one */
            fprintf(stderr, "error: %s\n", eb.msg);
        fprintf(stderr, "%s: invalid (%zu error%s)\n", policy, mm_diags_errors(diags),
                mm_diags_errors(diags) == 1 ? "" : "s");
        goto out;
    }
    /* Compiling proves what parsing cannot: regexes under JIT, and keys when given. */
    if (maskctl_load(policy, keys_dir, keys_dir == NULL, NULL, &m, &eb) != MM_OK) {
        fprintf(stderr, "error: %s\n", eb.msg);
        goto out;
    }
    if (descriptors) { /* the paths against the messages they will mask */
        if (mm_pbdesc_load(descriptors, &pb, &eb) != MM_OK) {
            fprintf(stderr, "error: %s\n", eb.msg);
            goto out;
        }
        for (size_t i = 0; i < mm_policy_set_count(set); i++)
            if (mm_pbdesc_check_policy(pb, mm_policy_set_get(set, i), &eb) != MM_OK) {
                fprintf(stderr, "error: %s: %s\n", policy, eb.msg);
                goto out;
            }
    }
    for (size_t i = 0; i < mm_policy_set_count(set); i++)
        print_policy(mm_policy_set_get(set, i));
    printf("%s: %zu polic%s valid, %zu warning%s\n", policy, mm_policy_set_count(set),
           mm_policy_set_count(set) == 1 ? "y" : "ies", mm_diags_warnings(diags),
           mm_diags_warnings(diags) == 1 ? "" : "s");
    ret = strict && mm_diags_warnings(diags) ? MASKCTL_EINPUT : MASKCTL_OK;
out:
    mm_pbdesc_free(pb);
    mm_masker_free(m);
    mm_policy_set_free(set);
    mm_diags_free(diags);
    return ret;
}
