/* lib/proxy/control.c: the two requests anyone may make of a running proxy (a signal
 * handler, the admin listener's POST /quitquitquit, the binary): stop, and reload. Both only
 * set a flag and wake the control loop in proxy.c, so they are async-signal-safe. */
#include "proxy/proxy_int.h"

#include <unistd.h>

static void ctl_kick(mm_proxy *p)
{
    uint64_t one = 1;
    if (write(p->ctl_fd, &one, sizeof(one)) < 0) {
        /* full counter: the control loop wakes anyway */
    }
}

void mm_proxy_stop(mm_proxy *p)
{
    int zero = 0;
    atomic_compare_exchange_strong(&p->stop_flag, &zero, 1);
    ctl_kick(p);
}

void mm_proxy_request_reload(mm_proxy *p)
{
    atomic_store(&p->reload_flag, 1);
    ctl_kick(p);
}
