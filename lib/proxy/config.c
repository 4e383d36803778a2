/* lib/proxy/config.c: loading the sidecar's configuration (the policies that select this
 * pod's labels, compiled with the mounted keys) into an immutable snapshot, publishing it,
 * and noticing when kubelet swaps the mounted files. */
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define LABELS_MAX (256u * 1024)

snap *snap_ref(snap *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void snap_unref(snap *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n_pb; i++)
        mm_pbdesc_free(s->pb[i]);
    mm_free(s->pb);
    mm_masker_free(s->masker);
    mm_free(s);
}

snap *config_current(mm_proxy *p)
{
    snap *s;

    pthread_mutex_lock(&p->snap_lock);
    s = snap_ref(p->cur);
    pthread_mutex_unlock(&p->snap_lock);
    return s;
}

const mm_pbdesc *snap_grpc(const snap *s, const char *path, size_t len)
{
    char m[BODY_GRPC_METHOD_MAX];

    if (!path || len >= sizeof(m))
        return NULL; /* no :path, or longer than any method we mask */
    memcpy(m, path, len);
    m[len] = '\0';
    for (size_t i = 0; i < s->n_pb; i++)
        if (mm_pbdesc_has_method(s->pb[i], m))
            return s->pb[i];
    return NULL;
}

/* What the files look like: the policies and labels files, the descriptor sets the loaded
 * policies name, the keys directory and its entries (mm_fsig_*: kubelet's ..data swap gives
 * new inodes). */
static uint64_t sig_base(const mm_proxy *p)
{
    uint64_t h = mm_fsig_file(MM_FSIG_INIT, p->s_policies);
    h = mm_fsig_file(h, p->s_labels);
    return mm_fsig_dir(h, p->s_keys);
}

uint64_t config_signature(mm_proxy *p)
{
    uint64_t h = sig_base(p);
    pthread_mutex_lock(&p->files_lock);
    for (size_t i = 0; i < p->pb_files.len; i += strlen(p->pb_files.data + i) + 1)
        h = mm_fsig_file(h, p->pb_files.data + i);
    pthread_mutex_unlock(&p->files_lock);
    return h;
}

/* The descriptor set of selected policy pol (spec.grpc), from "<name>.protoset" beside the
 * policies file, where the controller puts it. One that is missing or does not parse is
 * logged, naming the policy and its ConfigMap key, and left out: the policy's other rules
 * apply, its gRPC calls follow onError as calls of unknown methods (the controller's status
 * for the policy says the same). Only memory failures fail the load. */
static mm_err load_pb(mm_proxy *p, const mm_policy *pol, snap *s, mm_buf *files,
                      uint64_t *sig, mm_errbuf *eb)
{
    char name[300], *path = NULL;
    const char *slash = strrchr(p->s_policies, '/');
    size_t dl = slash ? (size_t)(slash - p->s_policies + 1) : 0;
    mm_pbdesc *d = NULL;
    mm_errbuf leb = {{0}};
    mm_err rc = MM_OK;

    if (!mm_policy_grpc_file(pol->name, name, sizeof(name))) {
        mm_log(MM_LOG_WARN, "grpc descriptor set not loaded", "policy", pol->name, "error",
               "the policy's name is too long for a ConfigMap key", NULL);
        return MM_OK;
    }
    size_t nl = strlen(name);
    if (!(path = mm_malloc(dl + nl + 1)))
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    memcpy(path, p->s_policies, dl);
    memcpy(path + dl, name, nl + 1);
    if (mm_buf_append(files, path, strlen(path) + 1) != MM_OK) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    *sig = mm_fsig_file(*sig, path); /* before the read: a later change is seen */
    mm_err lrc = mm_pbdesc_load(path, &d, &leb);
    if (lrc == MM_ENOMEM) {
        rc = mm_errf(eb, lrc, "out of memory");
        goto out;
    }
    if (lrc != MM_OK) {
        mm_log(MM_LOG_WARN, "grpc descriptor set not loaded: gRPC calls follow onError",
               "policy", pol->name, "configMap", pol->grpc->configmap, "key", pol->grpc->key,
               "error", leb.msg, NULL);
        goto out;
    }
    if (mm_pbdesc_check_policy(d, pol, &leb) != MM_OK) /* masks what it can: said, not fatal */
        mm_log(MM_LOG_WARN, "grpc descriptor set does not fit the policy", "policy", pol->name,
               "configMap", pol->grpc->configmap, "key", pol->grpc->key, "error", leb.msg,
               NULL);
    s->pb[s->n_pb++] = d;
    d = NULL;
out:
    mm_pbdesc_free(d);
    mm_free(path);
    return rc;
}

mm_err config_load(mm_proxy *p, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    char *text = NULL;
    size_t len = 0;
    mm_labels labels = {0};
    mm_policy_set *set = NULL;
    mm_keys *keys = NULL;
    const mm_policy **sel = NULL;
    size_t n_sel = 0, n;
    mm_masker *m = NULL;
    snap *s = NULL, *old = NULL;
    struct stat st;
    mm_buf names, files;
    uint64_t sig;
    char gen[24];

    mm_buf_init(&names, 4096);
    mm_buf_init(&files, 0);
    pthread_mutex_lock(&p->reload_lock);
    sig = sig_base(p);
    if ((rc = mm_read_file(p->s_labels, LABELS_MAX, &text, &len, eb)) != MM_OK)
        goto out;
    if ((rc = mm_labels_parse(text, len, p->s_labels, &labels, eb)) != MM_OK)
        goto out;
    if ((rc = mm_policy_load(p->s_policies, &set, NULL, eb)) != MM_OK)
        goto out;
    /* an absent keys directory is an absent (optional) Secret; anything else must load */
    if (stat(p->s_keys, &st) == 0 && (rc = mm_keys_load_dir(p->s_keys, &keys, eb)) != MM_OK)
        goto out;
    n = mm_policy_set_count(set);
    if (n && !(sel = mm_calloc(n, sizeof(*sel)))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const mm_policy *pol = mm_policy_set_get(set, i);
        if (mm_selector_matches(&pol->selector, &labels)) {
            sel[n_sel++] = pol;
            if (names.len)
                mm_buf_putc(&names, ',');
            mm_buf_puts(&names, pol->name);
        }
    }
    if (n_sel &&
        (rc = mm_masker_new((const mm_policy *const *)sel, n_sel, keys, NULL, &m, eb)) != MM_OK)
        goto out;
    if (!(s = mm_calloc(1, sizeof(*s))) || (n_sel && !(s->pb = mm_calloc(n_sel, sizeof(*s->pb))))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    atomic_init(&s->refs, 1);
    for (size_t i = 0; i < n_sel; i++)
        if (sel[i]->grpc && (rc = load_pb(p, sel[i], s, &files, &sig, eb)) != MM_OK)
            goto out;
    /* the sets just read are watched from now on; a change after the read is seen next */
    pthread_mutex_lock(&p->files_lock);
    mm_buf t = p->pb_files;
    p->pb_files = files;
    files = t;
    pthread_mutex_unlock(&p->files_lock);
    s->masker = m;
    m = NULL;
    s->resp = s->masker && mm_masker_applies(s->masker, MM_DIR_RESPONSE);
    s->req = s->masker && mm_masker_applies(s->masker, MM_DIR_REQUEST);

    pthread_mutex_lock(&p->snap_lock);
    s->gen = ++p->gen;
    old = p->cur;
    p->cur = s;
    pthread_mutex_unlock(&p->snap_lock);
    p->watch_sig = sig;
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)s->gen);
    mm_metric_set(p->met.config_gen, NULL, (double)s->gen);
    mm_log(MM_LOG_INFO, "configuration loaded", "generation", gen, "policies",
           mm_buf_cstr(&names), NULL);
    s = NULL;
out:
    if (rc != MM_OK)
        p->watch_sig = sig; /* the same bad files are not retried until they change */
    pthread_mutex_unlock(&p->reload_lock);
    snap_unref(old);
    snap_unref(s);
    mm_masker_free(m);
    mm_free(sel);
    mm_keys_free(keys);
    mm_policy_set_free(set);
    mm_labels_clear(&labels);
    mm_free(text);
    mm_buf_free(&names);
    mm_buf_free(&files);
    return rc;
}
