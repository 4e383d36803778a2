/* maskctl reveal: reverses a policy's encrypt rules for an authorised person, with one audit
 * line per value revealed (who, when, which rule and key version; never the value). */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "maskctl.h"

#define REVEAL_INPUT_MAX (64u << 20) /* reveal reads each input whole */

static const char reveal_help[] =
    "usage: maskctl reveal --keys DIR --policy FILE [options] [INPUT...]\n"
    "\n"
    "Decrypts what the encrypt rules of the MaskingPolicy objects in FILE wrote into each\n"
    "INPUT (stdin when none) and writes the result to stdout: JSON values at the rules'\n"
    "fields, and tokens of detector rules wherever they occur (enc_v<N>_... for mode siv,\n"
    "<surrogate>.v<N>:... for ff1 with a surrogate, card-length digit runs for ff1 card\n"
    "rules). Each value is decrypted with the key version it names, else with the rule's\n"
    "keyVersion (or --key-version). Every value revealed writes one JSON audit line (time,\n"
    "who, input, policy, rule, key version, path or line; never the value) to stderr or the\n"
    "--audit file. JSON documents are written back compact.\n"
    "\n"
    "options:\n"
    "  -k, --keys DIR            the keys (entries <key>.v<N>, as the Secret holds them)\n"
    "  -p, --policy FILE         the policies whose encrypt rules wrote the input\n"
    "  -t, --content-type TYPE   application/json, application/x-ndjson, text/plain (default:\n"
    "                            by file name, else sniffed)\n"
    "      --key-version N       ff1 values without a surrogate: decrypt with version N\n"
    "      --audit FILE          append audit lines to FILE instead of stderr\n"
    "      --who NAME            the identity in the audit lines (default: the login name)\n"
    "  -h, --help                this text\n"
    "\n"
    "exit codes: 0 ok, 1 input, policy or key error, or a value that did not decrypt,\n"
    "2 usage error\n";

typedef struct {
    FILE *audit;
    const char *who;
    const char *input;
    size_t count;
} audit_ctx;

/* One audit line; the value is never part of it. */
static void on_reveal(void *ctx, const mm_reveal_event *ev)
{
    audit_ctx *a = ctx;
    char ts[40];
    struct timespec now;
    struct tm tm;
    mm_buf b;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    mm_buf_init(&b, 0);
    mm_buf_printf(&b, "{\"ts\":\"%s.%03ldZ\",\"event\":\"reveal\",\"who\":", ts,
                  now.tv_nsec / 1000000);
    mm_buf_put_json_str(&b, a->who, strlen(a->who));
    mm_buf_puts(&b, ",\"input\":");
    mm_buf_put_json_str(&b, a->input, strlen(a->input));
    mm_buf_puts(&b, ",\"policy\":");
    mm_buf_put_json_str(&b, ev->policy, strlen(ev->policy));
    mm_buf_puts(&b, ",\"rule\":");
    mm_buf_put_json_str(&b, ev->rule, strlen(ev->rule));
    mm_buf_printf(&b, ",\"keyVersion\":%d", ev->key_version);
    if (ev->path) {
        mm_buf_puts(&b, ",\"path\":");
        mm_buf_put_json_str(&b, ev->path, strlen(ev->path));
    } else {
        mm_buf_printf(&b, ",\"line\":%llu", (unsigned long long)ev->line);
    }
    mm_buf_puts(&b, "}\n");
    fwrite(mm_buf_cstr(&b), 1, b.len, a->audit);
    fflush(a->audit);
    mm_buf_free(&b);
    a->count++;
}

static const char *login_name(void)
{
    const char *u = getenv("USER");
    struct passwd *pw;
    if (u && *u)
        return u;
    pw = getpwuid(getuid());
    return pw && pw->pw_name ? pw->pw_name : "unknown";
}

/* One input: read whole, revealed by its kind, written to stdout. */
static mm_err reveal_one(mm_revealer *r, const char *path, const char *ctype, audit_ctx *a,
                         size_t *failed, mm_errbuf *eb)
{
    mm_err rc;
    char *text = NULL;
    size_t len = 0, f = 0;
    mm_body_kind kind;
    mm_buf out;

    mm_buf_init(&out, 0);
    if (path) {
        if ((rc = mm_read_file(path, REVEAL_INPUT_MAX, &text, &len, eb)) != MM_OK)
            return rc;
    } else {
        mm_buf in;
        char chunk[65536];
        size_t got;
        mm_buf_init(&in, REVEAL_INPUT_MAX);
        while ((got = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
            if ((rc = mm_buf_append(&in, chunk, got)) != MM_OK) {
                mm_buf_free(&in);
                return mm_errf(eb, rc, "larger than %u bytes", REVEAL_INPUT_MAX);
            }
        if (ferror(stdin)) {
            mm_buf_free(&in);
            return mm_errf(eb, MM_EIO, "read failed");
        }
        mm_buf_cstr(&in);
        text = mm_buf_steal(&in, &len);
    }
    kind = ctype ? mm_body_kind_for(NULL, ctype)
                 : mm_body_kind_sniff(path, text, len < 4096 ? len : 4096);
    if (kind == MM_BODY_NDJSON) { /* a JSON document per line, blank lines kept */
        for (size_t at = 0; at < len && rc == MM_OK;) {
            const char *nl = memchr(text + at, '\n', len - at);
            size_t end = nl ? (size_t)(nl - text) : len;
            if (strspn(text + at, " \t\r") >= end - at)
                rc = mm_buf_append(&out, text + at, end - at) == MM_OK ? mm_buf_putc(&out, '\n')
                                                                      : MM_ENOMEM;
            else
                rc = mm_reveal_buffer(r, MM_BODY_JSON, text + at, end - at, &out, on_reveal, a,
                                      &f, eb);
            *failed += f;
            at = end + 1;
        }
    } else {
        rc = mm_reveal_buffer(r, kind, text, len, &out, on_reveal, a, &f, eb);
        *failed += f;
    }
    if (rc == MM_OK && out.len && fwrite(out.data, 1, out.len, stdout) != out.len)
        rc = mm_errf(eb, MM_EIO, "stdout: write failed");
    mm_buf_free(&out);
    mm_free(text);
    return rc;
}

int maskctl_reveal(int argc, char **argv)
{
    enum { O_VERSION = 256, O_AUDIT, O_WHO };
    static const struct option opts[] = {
        {"keys", required_argument, NULL, 'k'},
        {"policy", required_argument, NULL, 'p'},
        {"content-type", required_argument, NULL, 't'},
        {"key-version", required_argument, NULL, O_VERSION},
        {"audit", required_argument, NULL, O_AUDIT},
        {"who", required_argument, NULL, O_WHO},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *keys_dir = NULL, *policy = NULL, *ctype = NULL, *audit_path = NULL;
    audit_ctx a = {.audit = stderr, .who = NULL};
    mm_policy_set *set = NULL;
    mm_keys *keys = NULL;
    mm_revealer *r = NULL;
    const mm_policy **list = NULL;
    long version = 0;
    size_t failed = 0;
    mm_errbuf eb = {{0}};
    int c, ret = MASKCTL_EINPUT;

    optind = 1;
    while ((c = getopt_long(argc, argv, "k:p:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k': keys_dir = optarg; break;
        case 'p': policy = optarg; break;
        case 't': ctype = optarg; break;
        case O_VERSION:
            if (!mm_parse_long(optarg, 1, MM_POLICY_MAX_KEY_VERSION, &version)) {
                fprintf(stderr, "maskctl reveal: --key-version must be 1..%d\n",
                        MM_POLICY_MAX_KEY_VERSION);
                return MASKCTL_EUSAGE;
            }
            break;
        case O_AUDIT: audit_path = optarg; break;
        case O_WHO: a.who = optarg; break;
        case 'h': fputs(reveal_help, stdout); return MASKCTL_OK;
        default: fputs(reveal_help, stderr); return MASKCTL_EUSAGE;
        }
    }
    if (!keys_dir || !policy) {
        fprintf(stderr, "maskctl reveal: --keys and --policy are required\n%s", reveal_help);
        return MASKCTL_EUSAGE;
    }
    if (!a.who)
        a.who = login_name();
    if (audit_path && !(a.audit = fopen(audit_path, "a"))) {
        fprintf(stderr, "maskctl reveal: %s: cannot open the audit file\n", audit_path);
        return MASKCTL_EINPUT;
    }
    if (mm_policy_load(policy, &set, NULL, &eb) != MM_OK ||
        mm_keys_load_dir(keys_dir, &keys, &eb) != MM_OK)
        goto fail;
    size_t n = mm_policy_set_count(set);
    if (!(list = mm_calloc(n ? n : 1, sizeof(*list)))) {
        mm_errf(&eb, MM_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        list[i] = mm_policy_set_get(set, i);
    if (mm_revealer_new(list, n, keys, (int)version, &r, &eb) != MM_OK)
        goto fail;
    for (int i = optind; i < argc || (i == optind && optind == argc); i++) {
        const char *in = i < argc && strcmp(argv[i], "-") != 0 ? argv[i] : NULL;
        a.input = in ? in : "(stdin)";
        if (reveal_one(r, in, ctype, &a, &failed, &eb) != MM_OK) {
            mm_errprefix(&eb, "%s", a.input);
            goto fail;
        }
    }
    fflush(stdout);
    if (failed) {
        fprintf(stderr, "maskctl reveal: %zu value%s did not decrypt (another key or version, "
                "or not written by these rules); left as they were\n", failed,
                failed == 1 ? "" : "s");
        goto out;
    }
    ret = MASKCTL_OK;
    goto out;
fail:
    fprintf(stderr, "maskctl reveal: %s\n", eb.msg);
out:
    mm_revealer_free(r);
    mm_free(list);
    mm_keys_free(keys);
    mm_policy_set_free(set);
    if (a.audit != stderr)
        fclose(a.audit);
    return ret;
}
