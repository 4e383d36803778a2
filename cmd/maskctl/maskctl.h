/* maskctl: the offline CLI. Each subcommand lives in its own file and has this shape:
 * argv[0] is the subcommand name; returns the process exit code. */
#ifndef MASKCTL_H
#define MASKCTL_H

/* Exit codes, the same for every subcommand. */
enum { MASKCTL_OK = 0, MASKCTL_EINPUT = 1, MASKCTL_EUSAGE = 2 };

int maskctl_mask(int argc, char **argv);   /* mask.c */
int maskctl_check(int argc, char **argv);  /* check.c */
int maskctl_scan(int argc, char **argv);   /* scan.c */

#endif
