/* maskctl: the offline CLI around the masking engine and the injector. This file only
 * dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "maskctl.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"mask", maskctl_mask, "mask stdin or files with a policy (logs, NDJSON, JSON)"},
    {"check", maskctl_check, "validate a policy file and summarise its rules"},
    {"scan", maskctl_scan, "report sensitive values found in a sample and the rule that masks them"},
    {"inject", maskctl_inject, "add the maskmesh-proxy sidecar to workload YAML, as the webhook does"},
    {"reveal", maskctl_reveal, "decrypt what a policy's encrypt rules wrote, with an audit line per value"},
    {"render", maskctl_render, "print the ConfigMap and NetworkPolicies the controller writes for a policy file"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: maskctl <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'maskctl <command> --help' describes a command.\n"
               "exit codes: 0 ok, 1 input or policy error, 2 usage error\n");
    maskctl_print_detectors(f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MASKCTL_EUSAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return MASKCTL_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "maskctl: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return MASKCTL_EUSAGE;
}
