/* mm-pause: the process that holds a pod sandbox's namespaces (the kubelet's "pause" image).
 * It sleeps until SIGINT or SIGTERM and, when the pod shares one PID namespace and this is
 * PID 1, reaps the orphans re-parented to it so that they do not stay zombies. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
    (void)sig;
    _exit(0);
}

static void on_child(int sig)
{
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

static int handle(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("mm-pause 1");
        return 0;
    }
    if (getpid() != 1)
        fprintf(stderr, "mm-pause: not PID 1, orphans are reaped by the real init\n");
    if (handle(SIGINT, on_stop, 0) < 0 || handle(SIGTERM, on_stop, 0) < 0 ||
        handle(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
        perror("mm-pause: sigaction");
        return 1;
    }
    for (;;)
        pause();
}
