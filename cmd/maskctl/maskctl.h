/* maskctl: the offline CLI. Each subcommand lives in its own file and has this shape:
 * argv[0] is the subcommand name; returns the process exit code. */
#ifndef MASKCTL_H
#define MASKCTL_H

#include <stdbool.h>
#include <stdio.h>

#include "mask/mask.h"

/* Exit codes, the same for every subcommand. */
enum { MASKCTL_OK = 0, MASKCTL_EINPUT = 1, MASKCTL_EUSAGE = 2 };

int maskctl_mask(int argc, char **argv);   /* mask.c */
int maskctl_check(int argc, char **argv);  /* check.c */
int maskctl_scan(int argc, char **argv);   /* scan.c */
int maskctl_inject(int argc, char **argv); /* inject.c */
int maskctl_render(int argc, char **argv); /* render.c */
int maskctl_reveal(int argc, char **argv); /* reveal.c */

/* common.c */
/* Loads the policies at `policy_path` (NULL: none) and the keys in `keys_dir` (NULL: none)
 * into a masker. `set_out` (optional) receives the parsed policies. */
mm_err maskctl_load(const char *policy_path, const char *keys_dir, bool scan,
                    mm_policy_set **set_out, mm_masker **out, mm_errbuf *eb);
/* Streams one input (a path, or NULL/"-" for stdin) through a new stream with `base`
 * options; the body kind comes from `content_type`, else from sniffing. */
mm_err maskctl_run_input(mm_masker *m, const char *path, const char *content_type,
                         const mm_stream_opts *base, mm_write_fn write, void *wctx,
                         mm_stream_stats *stats, mm_errbuf *eb);
/* Every input in turn (stdin when n == 0), adding up `total` (optional); `before`
 * (optional) hears each input's name first. On the first failure prints
 * "maskctl CMD: message" and returns MASKCTL_EINPUT. */
int maskctl_run_inputs(const char *cmd, mm_masker *m, char **inputs, int n, const char *ctype,
                       const mm_stream_opts *opts, mm_write_fn write, mm_stream_stats *total,
                       void (*before)(void *ctx, const char *name), void *ctx);
/* "built-in detectors:" and a line per detector of the registry: its name, what it finds,
 * and the member names a rule's useMemberNames lets it read. */
void maskctl_print_detectors(FILE *f);
mm_err maskctl_stdout_write(void *ctx, const char *data, size_t len);
mm_err maskctl_discard_write(void *ctx, const char *data, size_t len);

#endif
