/* lib/proxy/proxy_int.h: what the files of lib/proxy share. The HTTP/1.1 codec has its own
 * header (http1.h). */
#ifndef MM_PROXY_INT_H
#define MM_PROXY_INT_H

#include "proxy/http1.h"

/* ---- the proxy's shared state --------------------------------------------------------- */

#include "common/common.h"
#include "mask/mask.h"
#include "metrics/metrics.h"
#include "proxy/proxy.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

/* One loaded configuration: immutable once published; a request holds a reference from
 * its head to the end of its response, so a reload never changes an exchange midway. */
typedef struct snap {
    atomic_long refs;
    uint64_t gen;
    mm_masker *masker; /* NULL: no policy selects this pod, bodies pass through */
    bool resp;         /* masking applies to responses */
    bool req;          /* ... to requests */
} snap;

snap *snap_ref(snap *s);
void snap_unref(snap *s);

typedef struct worker worker;

/* Metric families, registered once in mm_proxy_new. */
typedef struct {
    mm_metrics *reg;
    mm_metric *requests;     /* {code} */
    mm_metric *bytes;        /* {direction, stage}: body bytes before (in) and after (out) */
    mm_metric *masked;       /* {policy, rule, detector, applied} */
    mm_metric *parse_errors; /* {direction} */
    mm_metric *reloads;      /* {result} */
    mm_metric *duration;     /* histogram */
    mm_metric *upstream_errors; /* {reason} */
    mm_metric *connections;  /* gauge */
    mm_metric *config_gen;   /* gauge: generation of the loaded config, 0 none */
} proxy_metrics;

struct mm_proxy {
    mm_proxy_config cfg; /* strings below are owned copies */
    char *s_listen, *s_admin, *s_upstream, *s_policies, *s_labels, *s_keys;
    struct sockaddr_storage up_addr;
    socklen_t up_addrlen;
    struct sockaddr_storage listen_addr;
    socklen_t listen_addrlen;
    int port, admin_port;
    int admin_fd;
    int ctl_fd;            /* eventfd waking the control loop (stop, reload) */
    atomic_int stop_flag;
    atomic_int reload_flag;
    atomic_int draining;

    pthread_mutex_t snap_lock; /* guards cur and gen */
    snap *cur;                 /* NULL until a configuration loads */
    uint64_t gen;
    uint64_t watch_sig;        /* a hash of what the watched files looked like when loaded */
    pthread_mutex_t reload_lock; /* one reload at a time */

    int n_workers;
    worker **workers;
    pthread_t admin_thread;
    bool admin_started;
    proxy_metrics met;
};

/* conn.c: one worker (its own epoll, listener and upstream pool) */
mm_err worker_new(mm_proxy *p, int idx, worker **out, mm_errbuf *eb);
void *worker_main(void *arg);
void worker_wake(worker *w);
void worker_free(worker *w);
int worker_listen_port(const worker *w);
pthread_t *worker_thread(worker *w);

/* config.c */
mm_err config_load(mm_proxy *p, mm_errbuf *eb); /* builds and publishes a new snap */
snap *config_current(mm_proxy *p);              /* a new reference, or NULL */
uint64_t config_signature(const mm_proxy *p);

/* admin.c */
void *admin_main(void *arg);
bool upstream_answers(const mm_proxy *p, int timeout_ms);

/* proxy.c */
mm_err parse_hostport(const char *s, bool passive, struct sockaddr_storage *ss, socklen_t *len,
                      mm_errbuf *eb);

#endif
