/* lib/metrics: Prometheus counters, gauges and histograms, rendered in the text format.
 * Series values are doubles stored as atomic 64-bit words so updates need no lock. */
#include "metrics/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

struct mm_series {
    char **values;                /* label values */
    _Atomic uint64_t value;       /* counter/gauge: double bits; histogram: sum bits */
    _Atomic uint64_t count;       /* histogram: observations */
    _Atomic uint64_t *bucket;     /* histogram: counts of the bound's own interval (the
                                     exposition sums them: one atomic add an observation,
                                     where cumulative counts took one per bound above it,
                                     on a line the workers share) */
    const struct mm_metric *family; /* for the histogram's bounds */
    struct mm_series *next;
};

struct mm_metric {
    metric_kind kind;
    char *name;
    char *help;
    char *labels[MM_METRICS_MAX_LABELS];
    size_t n_labels;
    double buckets[MM_METRICS_MAX_BUCKETS];
    size_t n_buckets;
    pthread_mutex_t lock; /* guards the series list (appends only; readers walk it locked) */
    mm_series *series, **tail;
    size_t n_series;
    mm_metrics *reg;
    struct mm_metric *next;
};

struct mm_metrics {
    pthread_mutex_t lock; /* guards the family list */
    mm_metric *families, **tail;
    _Atomic uint64_t dropped; /* updates refused because a family was full */
};

const double mm_metrics_latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                             0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                             1,      2.5,     5,      10};
const size_t mm_metrics_latency_buckets_len = MM_ARRAY_LEN(mm_metrics_latency_buckets);

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, dbits(bitsd(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

mm_err mm_metrics_new(mm_metrics **out)
{
    mm_metrics *r = mm_calloc(1, sizeof(*r));
    if (!r)
        return MM_ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    r->tail = &r->families;
    *out = r;
    return MM_OK;
}

static void series_free(mm_series *s, size_t n_labels)
{
    if (!s)
        return;
    for (size_t i = 0; s->values && i < n_labels; i++)
        mm_free(s->values[i]);
    mm_free(s->values);
    mm_free((void *)s->bucket);
    mm_free(s);
}

static void metric_free(mm_metric *m)
{
    mm_series *s, *next;
    if (!m)
        return;
    for (s = m->series; s; s = next) {
        next = s->next;
        series_free(s, m->n_labels);
    }
    for (size_t i = 0; i < m->n_labels; i++)
        mm_free(m->labels[i]);
    mm_free(m->name);
    mm_free(m->help);
    pthread_mutex_destroy(&m->lock);
    mm_free(m);
}

void mm_metrics_free(mm_metrics *r)
{
    mm_metric *m, *next;
    if (!r)
        return;
    for (m = r->families; m; m = next) {
        next = m->next;
        metric_free(m);
    }
    pthread_mutex_destroy(&r->lock);
    mm_free(r);
}

static bool valid_name(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return false;
    return true;
}

static mm_err family_new(mm_metrics *r, metric_kind kind, const char *name, const char *help,
                         const char *const *labels, const double *buckets, size_t n_buckets,
                         mm_metric **out)
{
    mm_err rc = MM_OK;
    mm_metric *m = NULL, *it;

    if (!valid_name(name) || n_buckets > MM_METRICS_MAX_BUCKETS)
        return MM_EINVAL;
    m = mm_calloc(1, sizeof(*m));
    if (!m)
        return MM_ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    m->kind = kind;
    m->reg = r;
    m->tail = &m->series;
    m->name = mm_strdup(name);
    m->help = mm_strdup(help ? help : "");
    if (!m->name || !m->help) {
        rc = MM_ENOMEM;
        goto out;
    }
    for (; labels && labels[m->n_labels]; m->n_labels++) {
        if (m->n_labels == MM_METRICS_MAX_LABELS || !valid_name(labels[m->n_labels])) {
            rc = MM_EINVAL;
            goto out;
        }
        if (!(m->labels[m->n_labels] = mm_strdup(labels[m->n_labels]))) {
            rc = MM_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < n_buckets; i++) {
        if (i > 0 && !(buckets[i] > buckets[i - 1])) {
            rc = MM_EINVAL;
            goto out;
        }
        m->buckets[i] = buckets[i];
    }
    m->n_buckets = n_buckets;

    pthread_mutex_lock(&r->lock);
    for (it = r->families; it; it = it->next)
        if (strcmp(it->name, name) == 0)
            break;
    if (!it) {
        *r->tail = m;
        r->tail = &m->next;
    }
    pthread_mutex_unlock(&r->lock);
    if (it) {
        rc = MM_EINVAL;
        goto out;
    }
    *out = m;
    m = NULL;
out:
    metric_free(m);
    return rc;
}

mm_err mm_metrics_counter(mm_metrics *r, const char *name, const char *help,
                          const char *const *labels, mm_metric **out)
{
    return family_new(r, KIND_COUNTER, name, help, labels, NULL, 0, out);
}

mm_err mm_metrics_gauge(mm_metrics *r, const char *name, const char *help,
                        const char *const *labels, mm_metric **out)
{
    return family_new(r, KIND_GAUGE, name, help, labels, NULL, 0, out);
}

mm_err mm_metrics_histogram(mm_metrics *r, const char *name, const char *help,
                            const char *const *labels, const double *buckets, size_t n_buckets,
                            mm_metric **out)
{
    return family_new(r, KIND_HISTOGRAM, name, help, labels, buckets, n_buckets, out);
}

static bool series_is(const mm_series *s, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
            return false;
    return true;
}

mm_series *mm_metric_series(mm_metric *m, const char *const *values)
{
    mm_series *s, *found = NULL;

    if (!m)
        return NULL;
    pthread_mutex_lock(&m->lock);
    for (s = m->series; s; s = s->next)
        if (series_is(s, values, m->n_labels)) {
            found = s;
            goto out;
        }
    if (m->n_series >= MM_METRICS_MAX_SERIES) {
        atomic_fetch_add(&m->reg->dropped, 1);
        goto out;
    }
    s = mm_calloc(1, sizeof(*s));
    if (!s)
        goto out;
    s->values = mm_calloc(m->n_labels ? m->n_labels : 1, sizeof(char *));
    if (!s->values)
        goto fail;
    for (size_t i = 0; i < m->n_labels; i++)
        if (!(s->values[i] = mm_strdup(values[i] ? values[i] : "")))
            goto fail;
    if (m->kind == KIND_HISTOGRAM) {
        s->bucket = mm_calloc(m->n_buckets ? m->n_buckets : 1, sizeof(*s->bucket));
        if (!s->bucket)
            goto fail;
    }
    s->family = m;
    *m->tail = s;
    m->tail = &s->next;
    m->n_series++;
    found = s;
    goto out;
fail:
    series_free(s, m->n_labels);
out:
    pthread_mutex_unlock(&m->lock);
    return found;
}

void mm_series_add(mm_series *s, double v)
{
    if (s)
        atomic_add_double(&s->value, v);
}

void mm_series_set(mm_series *s, double v)
{
    if (s)
        atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
}

static void series_observe(const mm_metric *m, mm_series *s, double v)
{
    size_t i = 0;
    while (i < m->n_buckets && !(v <= m->buckets[i]))
        i++;
    if (i < m->n_buckets)
        atomic_fetch_add_explicit(&s->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    atomic_add_double(&s->value, v);
}

void mm_metric_add(mm_metric *m, const char *const *values, double v)
{
    mm_series_add(mm_metric_series(m, values), v);
}

void mm_metric_set(mm_metric *m, const char *const *values, double v)
{
    mm_series_set(mm_metric_series(m, values), v);
}

void mm_metric_observe(mm_metric *m, const char *const *values, double v)
{
    mm_series *s;
    if (!m || m->kind != KIND_HISTOGRAM)
        return;
    if ((s = mm_metric_series(m, values)))
        series_observe(m, s, v);
}

void mm_series_observe(mm_series *s, double v)
{
    if (s && s->family->kind == KIND_HISTOGRAM)
        series_observe(s->family, s, v);
}

/* Label values and HELP text escaping of the exposition format. */
static mm_err put_escaped(mm_buf *b, const char *s, bool quote_too)
{
    mm_err rc = MM_OK;
    for (; *s && rc == MM_OK; s++) {
        if (*s == '\\')
            rc = mm_buf_puts(b, "\\\\");
        else if (*s == '\n')
            rc = mm_buf_puts(b, "\\n");
        else if (quote_too && *s == '"')
            rc = mm_buf_puts(b, "\\\"");
        else
            rc = mm_buf_putc(b, *s);
    }
    return rc;
}

static mm_err put_number(mm_buf *b, double v)
{
    if (isnan(v))
        return mm_buf_puts(b, "NaN");
    if (isinf(v))
        return mm_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    if (v == (double)(int64_t)v && fabs(v) < 1e15)
        return mm_buf_printf(b, "%lld", (long long)v);
    return mm_buf_printf(b, "%.17g", v);
}

/* name{l1="v1",...,extra="x"} */
static mm_err put_series_name(mm_buf *b, const mm_metric *m, const char *suffix,
                              const mm_series *s, const char *extra_k, const char *extra_v)
{
    mm_err rc;
    bool any = m->n_labels > 0 || extra_k;

    if ((rc = mm_buf_printf(b, "%s%s", m->name, suffix)) != MM_OK)
        return rc;
    if (!any)
        return MM_OK;
    if ((rc = mm_buf_putc(b, '{')) != MM_OK)
        return rc;
    for (size_t i = 0; i < m->n_labels; i++) {
        if ((rc = mm_buf_printf(b, "%s%s=\"", i ? "," : "", m->labels[i])) != MM_OK ||
            (rc = put_escaped(b, s->values[i], true)) != MM_OK ||
            (rc = mm_buf_putc(b, '"')) != MM_OK)
            return rc;
    }
    if (extra_k &&
        (rc = mm_buf_printf(b, "%s%s=\"%s\"", m->n_labels ? "," : "", extra_k, extra_v)) != MM_OK)
        return rc;
    return mm_buf_putc(b, '}');
}

static mm_err render_family(mm_buf *b, mm_metric *m)
{
    static const char *types[] = {"counter", "gauge", "histogram"};
    mm_err rc;
    mm_series *s;

    if ((rc = mm_buf_printf(b, "# HELP %s ", m->name)) != MM_OK ||
        (rc = put_escaped(b, m->help, false)) != MM_OK ||
        (rc = mm_buf_printf(b, "\n# TYPE %s %s\n", m->name, types[m->kind])) != MM_OK)
        return rc;
    pthread_mutex_lock(&m->lock);
    for (s = m->series; s && rc == MM_OK; s = s->next) {
        if (m->kind != KIND_HISTOGRAM) {
            if ((rc = put_series_name(b, m, "", s, NULL, NULL)) == MM_OK &&
                (rc = mm_buf_putc(b, ' ')) == MM_OK &&
                (rc = put_number(b, bitsd(atomic_load(&s->value)))) == MM_OK)
                rc = mm_buf_putc(b, '\n');
            continue;
        }
        uint64_t count = atomic_load(&s->count), cum = 0;
        for (size_t i = 0; i < m->n_buckets && rc == MM_OK; i++) {
            char le[64];
            cum += atomic_load(&s->bucket[i]);
            snprintf(le, sizeof(le), "%g", m->buckets[i]);
            if ((rc = put_series_name(b, m, "_bucket", s, "le", le)) == MM_OK)
                rc = mm_buf_printf(b, " %llu\n", (unsigned long long)cum);
        }
        /* an observation counted in its bucket but not yet in count: +Inf and _count must
         * not fall below the buckets */
        if (count < cum)
            count = cum;
        if (rc == MM_OK && (rc = put_series_name(b, m, "_bucket", s, "le", "+Inf")) == MM_OK)
            rc = mm_buf_printf(b, " %llu\n", (unsigned long long)count);
        if (rc == MM_OK && (rc = put_series_name(b, m, "_sum", s, NULL, NULL)) == MM_OK &&
            (rc = mm_buf_putc(b, ' ')) == MM_OK &&
            (rc = put_number(b, bitsd(atomic_load(&s->value)))) == MM_OK)
            rc = mm_buf_putc(b, '\n');
        if (rc == MM_OK && (rc = put_series_name(b, m, "_count", s, NULL, NULL)) == MM_OK)
            rc = mm_buf_printf(b, " %llu\n", (unsigned long long)count);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

mm_err mm_metrics_render(mm_metrics *r, mm_buf *out)
{
    mm_err rc = MM_OK;
    mm_metric *m;

    pthread_mutex_lock(&r->lock);
    for (m = r->families; m && rc == MM_OK; m = m->next)
        rc = render_family(out, m);
    pthread_mutex_unlock(&r->lock);
    if (rc == MM_OK)
        rc = mm_buf_printf(out,
                           "# HELP maskmesh_metrics_series_dropped_total Metric updates dropped "
                           "because a family reached its series limit.\n"
                           "# TYPE maskmesh_metrics_series_dropped_total counter\n"
                           "maskmesh_metrics_series_dropped_total %llu\n",
                           (unsigned long long)atomic_load(&r->dropped));
    return rc;
}
