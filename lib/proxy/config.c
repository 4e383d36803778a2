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

/* What the files look like: the policies and labels files, the keys directory and its
 * entries (mm_fsig_*: kubelet's ..data swap gives new inodes). */
uint64_t config_signature(const mm_proxy *p)
{
    uint64_t h = mm_fsig_file(MM_FSIG_INIT, p->s_policies);
    h = mm_fsig_file(h, p->s_labels);
    return mm_fsig_dir(h, p->s_keys);
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
    mm_buf names;
    uint64_t sig;
    char gen[24];

    mm_buf_init(&names, 4096);
    pthread_mutex_lock(&p->reload_lock);
    sig = config_signature(p);
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
    if (!(s = mm_calloc(1, sizeof(*s)))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    atomic_init(&s->refs, 1);
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
    return rc;
}
