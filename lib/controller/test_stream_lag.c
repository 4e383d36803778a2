/* Unit tests for lib/controller's reading of the maskers' metrics (stream_lag.c): the texts
 * are rendered by lib/metrics from the families maskmesh-stream registers (lib/kafka/run.c,
 * same names, help and labels), so the parser reads what a masker really serves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "controller/controller_int.h"
#include "metrics/metrics.h"

typedef struct {
    mm_metrics *r;
    mm_metric *lag, *stopped, *records;
} masker;

/* A masker's registry with its partitions' lags ("topic", "partition", lag; NULL ends). */
static char *masker_text(const char *const *parts, const int64_t *lags, double stopped)
{
    masker m;
    mm_buf b;
    assert_int_equal(mm_metrics_new(&m.r), MM_OK);
    assert_int_equal(mm_metrics_counter(m.r, "maskmesh_stream_records_total", "Records.",
                                        (const char *const[]){"topic", "result", NULL}, &m.records),
                     MM_OK);
    assert_int_equal(mm_metrics_gauge(m.r, "maskmesh_stream_lag_records", "Lag.",
                                      (const char *const[]){"topic", "partition", NULL}, &m.lag),
                     MM_OK);
    assert_int_equal(mm_metrics_gauge(m.r, "maskmesh_stream_stopped_partitions", "Stopped.", NULL,
                                      &m.stopped),
                     MM_OK);
    mm_metric_add(m.records, (const char *const[]){"orders", "masked"}, 12345);
    for (size_t i = 0; parts[2 * i]; i++)
        mm_metric_set(m.lag, (const char *const[]){parts[2 * i], parts[2 * i + 1]}, (double)lags[i]);
    mm_metric_set(m.stopped, NULL, stopped);
    mm_buf_init(&b, 0);
    assert_int_equal(mm_metrics_render(m.r, &b), MM_OK);
    mm_metrics_free(m.r);
    return mm_buf_steal(&b, NULL);
}

static void test_sum_over_pods(void **state)
{
    (void)state;
    char *a = masker_text((const char *const[]){"orders", "0", "orders", "1", NULL}, (int64_t[]){7, 0}, 0);
    char *b = masker_text((const char *const[]){"orders", "2", "refunds", "0", NULL}, (int64_t[]){5, 100000000000}, 1);
    ctrl_lag l;
    mm_errbuf eb = {{0}};
    assert_int_equal(ctrl_lag_parse((const char *const[]){a, b}, 2, &l, &eb), MM_OK);
    assert_true(l.known);
    assert_int_equal(l.pods, 2);
    assert_int_equal(l.partitions, 4);
    assert_int_equal(l.lag, 100000000012);
    assert_int_equal(l.max_partition_lag, 100000000000);
    assert_int_equal(l.stopped, 1);
    mm_free(a);
    mm_free(b);
}

/* During a rebalance the old and the new owner may both report a partition: it counts once,
 * at the larger lag (the conservative answer). */
static void test_partition_reported_twice(void **state)
{
    (void)state;
    char *a = masker_text((const char *const[]){"orders", "0", NULL}, (int64_t[]){40}, 0);
    char *b = masker_text((const char *const[]){"orders", "0", "orders", "10", NULL}, (int64_t[]){3, 1}, 0);
    ctrl_lag l;
    mm_errbuf eb = {{0}};
    assert_int_equal(ctrl_lag_parse((const char *const[]){a, b}, 2, &l, &eb), MM_OK);
    assert_int_equal(l.partitions, 2);
    assert_int_equal(l.lag, 41);
    assert_int_equal(l.max_partition_lag, 40);
    mm_free(a);
    mm_free(b);
}

/* A masker with nothing assigned yet, text without our families, and truncated lines */
static void test_nothing_and_noise(void **state)
{
    (void)state;
    char *a = masker_text((const char *const[]){NULL}, NULL, 0);
    const char *noise = "# HELP x y\nfoo_total 3\nmaskmesh_stream_lag_records{topic=\"t\"} 9\n"
                        "maskmesh_stream_lag_records{partition=\"1\"} 9\nmaskmesh_stream_lag_records{topic=\"t\",partition=\"1\"";
    ctrl_lag l;
    mm_errbuf eb = {{0}};
    assert_int_equal(ctrl_lag_parse((const char *const[]){a, noise}, 2, &l, &eb), MM_OK);
    assert_true(l.known);
    assert_int_equal(l.partitions, 0);
    assert_int_equal(l.lag, 0);
    assert_int_equal(l.stopped, 0);
    mm_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_over_pods),
        cmocka_unit_test(test_partition_reported_twice),
        cmocka_unit_test(test_nothing_and_noise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
