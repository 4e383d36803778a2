/* lib/metrics: a small Prometheus registry (counters, gauges, histograms with labels) and
 * its text exposition format (version 0.0.4). Thread-safe: series are found under a lock
 * per family once, then updated with atomics, so hot paths keep the series handle.
 * Depends on: lib/common. */
#ifndef MM_METRICS_H
#define MM_METRICS_H

#include "common/common.h"

/* A family may hold at most this many label combinations; past it, updates go to no series
 * and are counted in maskmesh_metrics_series_dropped_total (cardinality is bounded). */
#define MM_METRICS_MAX_SERIES 2048
#define MM_METRICS_MAX_LABELS 8
#define MM_METRICS_MAX_BUCKETS 32

typedef struct mm_metrics mm_metrics; /* the registry */
typedef struct mm_metric mm_metric;   /* one family, owned by the registry */
typedef struct mm_series mm_series;   /* one label combination, owned by its family */

mm_err mm_metrics_new(mm_metrics **out);
void mm_metrics_free(mm_metrics *r);

/* Registers a family. `labels` is NULL-terminated (NULL: no labels). Names are copied.
 * Registering the same name twice is MM_EINVAL. */
mm_err mm_metrics_counter(mm_metrics *r, const char *name, const char *help,
                          const char *const *labels, mm_metric **out);
mm_err mm_metrics_gauge(mm_metrics *r, const char *name, const char *help,
                        const char *const *labels, mm_metric **out);
/* `buckets`: ascending upper bounds (the +Inf bucket is implicit). */
mm_err mm_metrics_histogram(mm_metrics *r, const char *name, const char *help,
                            const char *const *labels, const double *buckets, size_t n_buckets,
                            mm_metric **out);

/* The series for these label values (one per label name, in order), created on first use.
 * NULL when the family is full or memory ran out: updates on NULL are no-ops. */
mm_series *mm_metric_series(mm_metric *m, const char *const *values);

void mm_series_add(mm_series *s, double v);     /* counter, gauge */
void mm_series_set(mm_series *s, double v);     /* gauge */
void mm_series_observe(mm_series *s, double v); /* histogram */

/* Shorthands that look the series up each call (fine off the hot path). */
void mm_metric_add(mm_metric *m, const char *const *values, double v);
void mm_metric_set(mm_metric *m, const char *const *values, double v);
void mm_metric_observe(mm_metric *m, const char *const *values, double v);

/* Appends the text exposition of every family, in registration order. */
mm_err mm_metrics_render(mm_metrics *r, mm_buf *out);

/* The Content-Type to serve the rendering with. */
#define MM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Buckets in seconds suited to request latencies from 100 µs to 10 s. */
extern const double mm_metrics_latency_buckets[];
extern const size_t mm_metrics_latency_buckets_len;

#endif
