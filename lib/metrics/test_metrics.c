/* Unit tests for lib/metrics: registration rules, counters/gauges/histograms, label
 * escaping, the series bound, concurrent updates and the exposition text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "metrics/metrics.h"

static char *render(mm_metrics *r)
{
    mm_buf b;
    mm_buf_init(&b, 0);
    assert_int_equal(mm_metrics_render(r, &b), MM_OK);
    return mm_buf_steal(&b, NULL);
}

static void test_counter_gauge(void **state)
{
    mm_metrics *r;
    mm_metric *c, *g;
    static const char *const labels[] = {"code", NULL};
    (void)state;
    assert_int_equal(mm_metrics_new(&r), MM_OK);
    assert_int_equal(mm_metrics_counter(r, "mm_requests_total", "Requests.", labels, &c), MM_OK);
    assert_int_equal(mm_metrics_gauge(r, "mm_ready", "Ready\nline", NULL, &g), MM_OK);
    assert_int_equal(mm_metrics_counter(r, "mm_requests_total", "again", NULL, &c), MM_EINVAL);
    assert_int_equal(mm_metrics_counter(r, "9bad", "x", NULL, &c), MM_EINVAL);
    mm_metric_add(c, (const char *const[]){"200"}, 1);
    mm_metric_add(c, (const char *const[]){"200"}, 2);
    mm_metric_add(c, (const char *const[]){"a\"b\\c"}, 1);
    mm_metric_set(g, NULL, 1);
    char *text = render(r);
    assert_non_null(strstr(text, "# TYPE mm_requests_total counter\n"));
    assert_non_null(strstr(text, "mm_requests_total{code=\"200\"} 3\n"));
    assert_non_null(strstr(text, "mm_requests_total{code=\"a\\\"b\\\\c\"} 1\n"));
    assert_non_null(strstr(text, "# HELP mm_ready Ready\\nline\n"));
    assert_non_null(strstr(text, "mm_ready 1\n"));
    mm_free(text);
    mm_metrics_free(r);
}

static void test_histogram(void **state)
{
    mm_metrics *r;
    mm_metric *h;
    const double b[] = {0.1, 1};
    (void)state;
    assert_int_equal(mm_metrics_new(&r), MM_OK);
    assert_int_equal(mm_metrics_histogram(r, "mm_seconds", "Latency.", NULL, b, 2, &h), MM_OK);
    mm_series *s = mm_metric_series(h, NULL);
    assert_non_null(s);
    mm_series_observe(s, 0.05);
    mm_series_observe(s, 0.5);
    mm_metric_observe(h, NULL, 5);
    char *text = render(r);
    assert_non_null(strstr(text, "mm_seconds_bucket{le=\"0.1\"} 1\n"));
    assert_non_null(strstr(text, "mm_seconds_bucket{le=\"1\"} 2\n"));
    assert_non_null(strstr(text, "mm_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "mm_seconds_sum 5.5499999999999998\n"));
    assert_non_null(strstr(text, "mm_seconds_count 3\n"));
    mm_free(text);
    const double bad[] = {1, 0.5};
    assert_int_equal(mm_metrics_histogram(r, "mm_bad", "x", NULL, bad, 2, &h), MM_EINVAL);
    mm_metrics_free(r);
}

static void test_series_bound(void **state)
{
    mm_metrics *r;
    mm_metric *c;
    char v[32];
    static const char *const labels[] = {"id", NULL};
    (void)state;
    assert_int_equal(mm_metrics_new(&r), MM_OK);
    assert_int_equal(mm_metrics_counter(r, "mm_c", "x", labels, &c), MM_OK);
    for (int i = 0; i < MM_METRICS_MAX_SERIES + 5; i++) {
        snprintf(v, sizeof(v), "%d", i);
        mm_metric_add(c, (const char *const[]){v}, 1);
    }
    char *text = render(r);
    assert_non_null(strstr(text, "maskmesh_metrics_series_dropped_total 5\n"));
    mm_free(text);
    mm_metrics_free(r);
}

static void *adder(void *arg)
{
    mm_series *s = arg;
    for (int i = 0; i < 100000; i++)
        mm_series_add(s, 1);
    return NULL;
}

static void test_concurrent_adds(void **state)
{
    mm_metrics *r;
    mm_metric *c;
    pthread_t t[4];
    (void)state;
    assert_int_equal(mm_metrics_new(&r), MM_OK);
    assert_int_equal(mm_metrics_counter(r, "mm_n", "x", NULL, &c), MM_OK);
    mm_series *s = mm_metric_series(c, NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, adder, s), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    char *text = render(r);
    assert_non_null(strstr(text, "mm_n 400000\n"));
    mm_free(text);
    mm_metrics_free(r);
}

static void test_alloc_failures(void **state)
{
    static const char *const labels[] = {"a", "b", NULL};
    (void)state;
    for (long n = 0;; n++) {
        mm_metrics *r = NULL;
        mm_metric *c = NULL;
        mm_alloc_fail_after(n);
        mm_err rc = mm_metrics_new(&r);
        if (rc == MM_OK)
            rc = mm_metrics_counter(r, "mm_x", "x", labels, &c);
        mm_series *s = rc == MM_OK ? mm_metric_series(c, (const char *const[]){"1", "2"}) : NULL;
        mm_alloc_fail_after(-1);
        mm_metrics_free(r);
        if (rc == MM_OK && s)
            break;
        assert_true(n < 50);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge),  cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_series_bound),   cmocka_unit_test(test_concurrent_adds),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
