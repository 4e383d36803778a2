/* maskctl scan: a leak report. Runs every built-in detector over sample data and says, for
 * each value found, which rule of the policies would mask it, or that none would. Prints
 * places (file, line, byte offset, JSONPath) and names, never the values. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "maskctl.h"

static const char scan_help[] =
    "usage: maskctl scan [--policy FILE] [options] [INPUT...]\n"
    "\n"
    "Reports every value in each INPUT (stdin when none) that a built-in detector finds:\n"
    "the detector, the JSONPath (JSON bodies), the line and byte offset, and the rule of the\n"
    "policies in FILE that would mask it, or \"NOT MASKED\". With a policy that has\n"
    "defaultDeny, also every value it would mask, as \"(not allowed)\": run it on a sample\n"
    "before enforcing the policy. Values are never printed.\n"
    "\n"
    "options:\n"
    "  -p, --policy FILE         policies to check coverage against (none: report only)\n"
    "  -k, --keys DIR            keys (only needed to compile keyed rules)\n"
    "  -t, --content-type TYPE   body kind (default: by file name, else sniffed)\n"
    "      --format text|json    text lines (default) or one JSON object per finding\n"
    "      --strict              exit 1 when any finding is not masked by a rule\n"
    "  -h, --help                this text\n"
    "\n"
    "exit codes: 0 ok, 1 input or policy error (or an unmasked finding with --strict),\n"
    "2 usage error\n";

typedef struct {
    const char *input;
    bool json;
    uint64_t total, masked;
    mm_buf line;
} scan_ctx;

static void on_finding(void *ctx, const mm_finding *f)
{
    scan_ctx *sc = ctx;
    mm_buf *b = &sc->line;

    sc->total++;
    if (f->rule)
        sc->masked++;
    mm_buf_reset(b);
    if (sc->json) {
        mm_buf_puts(b, "{\"input\":");
        mm_buf_put_json_str(b, sc->input, strlen(sc->input));
        mm_buf_printf(b, ",\"line\":%" PRIu64 ",\"offset\":%" PRIu64 ",\"path\":", f->line, f->offset);
        if (f->path)
            mm_buf_put_json_str(b, f->path, strlen(f->path));
        else
            mm_buf_puts(b, "null");
        mm_buf_puts(b, ",\"detector\":");
        if (f->detector)
            mm_buf_put_json_str(b, f->detector, strlen(f->detector));
        else
            mm_buf_puts(b, "null");
        if (f->rule) {
            mm_buf_puts(b, ",\"policy\":");
            mm_buf_put_json_str(b, f->policy, strlen(f->policy));
            mm_buf_puts(b, ",\"rule\":");
            mm_buf_put_json_str(b, f->rule, strlen(f->rule));
            mm_buf_puts(b, ",\"masked\":true}");
        } else {
            mm_buf_puts(b, ",\"policy\":null,\"rule\":null,\"masked\":false}");
        }
    } else {
        mm_buf_printf(b, "%s:%" PRIu64 ": offset %" PRIu64 ": %s: %s: ", sc->input, f->line,
                      f->offset, f->path ? f->path : "(text)",
                      f->detector ? f->detector
                      : f->rule && strcmp(f->rule, MM_DENY_RULE) == 0 ? "(not allowed)"
                                                                    : "(fields path)");
        if (f->rule)
            mm_buf_printf(b, "masked by %s/%s", f->policy, f->rule);
        else
            mm_buf_puts(b, "NOT MASKED (no rule covers it)");
    }
    puts(mm_buf_cstr(b));
}

static void set_input(void *ctx, const char *name)
{
    ((scan_ctx *)ctx)->input = name;
}

int maskctl_scan(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"keys", required_argument, NULL, 'k'},
        {"content-type", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"strict", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *policy = NULL, *keys = NULL, *ctype = NULL;
    bool strict = false;
    scan_ctx sc = {0};
    mm_stream_opts opts = {.kind = MM_BODY_JSON, .direction = MM_DIR_RESPONSE};
    mm_masker *m = NULL;
    mm_errbuf eb = {{0}};
    int c, ret = MASKCTL_OK;

    optind = 1;
    while ((c = getopt_long(argc, argv, "p:k:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': policy = optarg; break;
        case 'k': keys = optarg; break;
        case 't': ctype = optarg; break;
        case 's': strict = true; break;
        case 'f':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                fprintf(stderr, "maskctl scan: --format must be text or json\n");
                return MASKCTL_EUSAGE;
            }
            sc.json = strcmp(optarg, "json") == 0;
            break;
        case 'h': fputs(scan_help, stdout); return MASKCTL_OK;
        default: fputs(scan_help, stderr); return MASKCTL_EUSAGE;
        }
    }
    if (maskctl_load(policy, keys, true, NULL, &m, &eb) != MM_OK) {
        fprintf(stderr, "maskctl scan: %s\n", eb.msg);
        return MASKCTL_EINPUT;
    }
    mm_buf_init(&sc.line, 0);
    opts.on_finding = on_finding;
    opts.finding_ctx = &sc;
    ret = maskctl_run_inputs("scan", m, argv + optind, argc - optind, ctype, &opts,
                             maskctl_discard_write, NULL, set_input, &sc);
    fflush(stdout);
    fprintf(stderr, "maskctl scan: %" PRIu64 " finding%s, %" PRIu64 " masked by a rule, %" PRIu64
                    " not masked\n",
            sc.total, sc.total == 1 ? "" : "s", sc.masked, sc.total - sc.masked);
    if (ret == MASKCTL_OK && strict && sc.total != sc.masked)
        ret = MASKCTL_EINPUT;
    mm_buf_free(&sc.line);
    mm_masker_free(m);
    return ret;
}
