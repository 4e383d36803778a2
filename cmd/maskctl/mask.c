/* maskctl mask: the engine as a filter, e.g. `kcat -C ... | maskctl mask --policy p.yaml`.
 * Every input is a separate document; output goes to stdout in input order. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maskctl.h"

static const char mask_help[] =
    "usage: maskctl mask --policy FILE [options] [INPUT...]\n"
    "\n"
    "Masks each INPUT (stdin when none, or \"-\") with the rules of the MaskingPolicy objects in\n"
    "FILE (one object, a list, or a multi-document YAML/JSON file) and writes the result to\n"
    "stdout. Bytes no rule touches are written unchanged. Memory stays bounded by the largest\n"
    "single value, so it works as a filter on endless NDJSON or log streams.\n"
    "\n"
    "options:\n"
    "  -p, --policy FILE         policies to apply (required)\n"
    "  -k, --keys DIR            keys for hash/tokenize: one file per key (a mounted Secret)\n"
    "  -t, --content-type TYPE   body kind: application/json, application/x-ndjson, text/plain,\n"
    "                            text/event-stream, ... (default: by file name, else sniffed)\n"
    "      --direction DIR       response (default) or request: which policies apply\n"
    "      --principal ID        caller identity for the policies' exemptions\n"
    "      --max-value BYTES     bound on one value or text line (default 1048576)\n"
    "      --stats               print counts, peak memory and the SIMD path to stderr at the end\n"
    "\n"
    "protobuf and gRPC (fields paths address message fields by their proto names):\n"
    "      --format F            grpc: a length-prefixed gRPC message stream (as on the wire);\n"
    "                            protobuf: one message (the whole input)\n"
    "      --descriptors FILE    the FileDescriptorSet (protoc --include_imports\n"
    "                            --descriptor_set_out=FILE)\n"
    "      --method PATH         grpc: /pkg.Service/Method; its request type is masked, or its\n"
    "                            response type with --response\n"
    "      --response            grpc: the stream is the method's responses (direction response)\n"
    "      --message TYPE        the message type by full name (pkg.Msg), instead of a method\n"
    "      --grpc-encoding ENC   grpc: identity (default) or gzip, for compressed messages\n"
    "      --scan-bytes          detectors read bytes fields too (else strings only)\n"
    "      --max-message BYTES   bound on one message (default 4194304)\n"
    "  -h, --help                this text\n"
    "\n"
    "exit codes: 0 ok, 1 input or policy error (the message names the place), 2 usage error\n";

/* Peak resident memory of this process image (VmHWM, which exec resets, unlike
 * ru_maxrss, which a parent's fork inflates); 0 when /proc is not there. */
static unsigned long peak_rss_kib(void)
{
    char line[256];
    unsigned long kib = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kib = strtoul(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

int maskctl_mask(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"keys", required_argument, NULL, 'k'},
        {"content-type", required_argument, NULL, 't'},
        {"direction", required_argument, NULL, 'd'},
        {"principal", required_argument, NULL, 'P'},
        {"max-value", required_argument, NULL, 'm'},
        {"stats", no_argument, NULL, 's'},
        {"format", required_argument, NULL, 'F'},
        {"descriptors", required_argument, NULL, 'D'},
        {"method", required_argument, NULL, 'M'},
        {"response", no_argument, NULL, 'R'},
        {"message", required_argument, NULL, 'T'},
        {"grpc-encoding", required_argument, NULL, 'E'},
        {"scan-bytes", no_argument, NULL, 'B'},
        {"max-message", required_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *policy = NULL, *keys = NULL, *ctype = NULL;
    mm_stream_opts opts = {.kind = MM_BODY_JSON, .direction = MM_DIR_RESPONSE};
    bool stats = false, dir_set = false;
    const char *format = NULL, *descriptors = NULL;
    mm_pbdesc *pb = NULL;
    mm_masker *m = NULL;
    mm_errbuf eb = {{0}};
    mm_stream_stats total = {0};
    int c, ret = MASKCTL_OK;
    long v;

    optind = 1;
    while ((c = getopt_long(argc, argv, "p:k:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': policy = optarg; break;
        case 'k': keys = optarg; break;
        case 't': ctype = optarg; break;
        case 'P': opts.principal = optarg; break;
        case 's': stats = true; break;
        case 'F': format = optarg; break;
        case 'D': descriptors = optarg; break;
        case 'M': opts.grpc_method = optarg; break;
        case 'R': opts.direction = MM_DIR_RESPONSE; dir_set = true; break;
        case 'T': opts.proto_message = optarg; break;
        case 'E': opts.grpc_encoding = optarg; break;
        case 'B': opts.proto_bytes = true; break;
        case 'X':
            if (!mm_parse_long(optarg, 64, 1L << 30, &v)) {
                fprintf(stderr, "maskctl mask: --max-message must be a byte count from 64 to 1073741824\n");
                return MASKCTL_EUSAGE;
            }
            opts.max_message = (size_t)v;
            break;
        case 'd':
            dir_set = true;
            if (strcmp(optarg, "response") == 0)
                opts.direction = MM_DIR_RESPONSE;
            else if (strcmp(optarg, "request") == 0)
                opts.direction = MM_DIR_REQUEST;
            else {
                fprintf(stderr, "maskctl mask: --direction must be response or request\n");
                return MASKCTL_EUSAGE;
            }
            break;
        case 'm':
            if (!mm_parse_long(optarg, 64, 1L << 30, &v)) {
                fprintf(stderr, "maskctl mask: --max-value must be a byte count from 64 to 1073741824\n");
                return MASKCTL_EUSAGE;
            }
            opts.max_value = (size_t)v;
            break;
        case 'h': fputs(mask_help, stdout); return MASKCTL_OK;
        default: fputs(mask_help, stderr); return MASKCTL_EUSAGE;
        }
    }
    if (!policy) {
        fprintf(stderr, "maskctl mask: --policy FILE is required\n\n%s", mask_help);
        return MASKCTL_EUSAGE;
    }
    if (format) {
        bool grpc = strcmp(format, "grpc") == 0;
        if (!grpc && strcmp(format, "protobuf") != 0) {
            fprintf(stderr, "maskctl mask: --format must be grpc or protobuf\n");
            return MASKCTL_EUSAGE;
        }
        if (!descriptors || (grpc ? !opts.grpc_method && !opts.proto_message
                                  : !opts.proto_message)) {
            fprintf(stderr, "maskctl mask: --format %s needs --descriptors and %s\n", format,
                    grpc ? "--method (or --message)" : "--message");
            return MASKCTL_EUSAGE;
        }
        opts.kind = grpc ? MM_BODY_GRPC : MM_BODY_PROTOBUF;
        if (grpc && opts.grpc_method && !dir_set) /* a method's stream: its requests */
            opts.direction = MM_DIR_REQUEST;
        if (mm_pbdesc_load(descriptors, &pb, &eb) != MM_OK) {
            fprintf(stderr, "maskctl mask: %s\n", eb.msg);
            return MASKCTL_EINPUT;
        }
        opts.proto = pb;
        ctype = NULL;
    }
    if (maskctl_load(policy, keys, false, NULL, &m, &eb) != MM_OK) {
        mm_pbdesc_free(pb);
        fprintf(stderr, "maskctl mask: %s\n", eb.msg);
        return MASKCTL_EINPUT;
    }
    ret = maskctl_run_inputs("mask", m, argv + optind, argc - optind, ctype, &opts,
                             maskctl_stdout_write, &total, NULL, NULL);
    if (stats)
        fprintf(stderr,
                "maskctl mask: %" PRIu64 " bytes in, %" PRIu64 " bytes out, %" PRIu64
                " values matched, %" PRIu64 " transformed, peak RSS %lu KiB, SIMD path %s\n",
                total.bytes_in, total.bytes_out, total.findings, total.applied, peak_rss_kib(),
                mm_mask_simd_path());
    mm_masker_free(m);
    mm_pbdesc_free(pb);
    return ret;
}
