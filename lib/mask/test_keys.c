/* Unit tests for lib/mask's keys: mm_keys_add/keys_get, and mm_keys_load_dir over a
 * temporary directory laid out as kubelet mounts a Secret (..2026_11_24_... holding the
 * files, ..data linking to it, one link per key), with the errors a bad Secret gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mask/mask_int.h"

typedef struct {
    char dir[64];
} fixture;

static void path_of(char *p, size_t cap, const fixture *fx, const char *name)
{
    int n = snprintf(p, cap, "%s/%s", fx->dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static void write_file(const fixture *fx, const char *name, const void *data, size_t len)
{
    char p[256];
    FILE *f;
    path_of(p, sizeof(p), fx, name);
    assert_non_null(f = fopen(p, "wb"));
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void link_to(const fixture *fx, const char *target, const char *name)
{
    char p[256];
    path_of(p, sizeof(p), fx, name);
    assert_int_equal(symlink(target, p), 0);
}

static void remove_entry(const fixture *fx, const char *name)
{
    char p[256];
    path_of(p, sizeof(p), fx, name);
    assert_int_equal(unlink(p), 0);
}

/* A Secret with keys "payments" (9 bytes) and "orders" (32 bytes, binary) as kubelet
 * writes it. */
static int setup(void **state)
{
    fixture *fx = mm_calloc(1, sizeof(*fx));
    char p[256];
    unsigned char bin[32];
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/mm-keys-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    path_of(p, sizeof(p), fx, "..2026_11_24_10_00_00.123456789");
    if (mkdir(p, 0700) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)(i * 37); /* includes a NUL byte */
    write_file(fx, "..2026_11_24_10_00_00.123456789/payments", "k3y-bytes", 9);
    write_file(fx, "..2026_11_24_10_00_00.123456789/orders", bin, sizeof(bin));
    link_to(fx, "..2026_11_24_10_00_00.123456789", "..data");
    link_to(fx, "..data/payments", "payments");
    link_to(fx, "..data/orders", "orders");
    *state = fx;
    return 0;
}

/* Removes the fixture's directory tree (one level of subdirectories). */
static int teardown(void **state)
{
    fixture *fx = *state;
    DIR *d, *sub;
    struct dirent *de, *se;
    char p[512], q[1024];
    if (!fx)
        return 0;
    if ((d = opendir(fx->dir))) {
        while ((de = readdir(d))) {
            struct stat st;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", fx->dir, de->d_name);
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && (sub = opendir(p))) {
                while ((se = readdir(sub)))
                    if (strcmp(se->d_name, ".") != 0 && strcmp(se->d_name, "..") != 0) {
                        snprintf(q, sizeof(q), "%s/%s", p, se->d_name);
                        unlink(q);
                    }
                closedir(sub);
                rmdir(p);
            } else {
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(fx->dir);
    mm_free(fx);
    return 0;
}

static void test_mounted_secret(void **state)
{
    fixture *fx = *state;
    mm_keys *k = NULL;
    mm_errbuf eb = {{0}};
    const unsigned char *key;
    size_t len;

    assert_int_equal(mm_keys_load_dir(fx->dir, &k, &eb), MM_OK);
    assert_true(keys_get(k, "payments", &key, &len));
    assert_int_equal(len, 9);
    assert_memory_equal(key, "k3y-bytes", 9);
    assert_true(keys_get(k, "orders", &key, &len));
    assert_int_equal(len, 32);
    assert_int_equal(key[0], 0);
    assert_int_equal(key[31], (unsigned char)(31 * 37));
    /* the kubelet entries are not keys */
    assert_false(keys_get(k, "..data", &key, &len));
    assert_false(keys_get(k, "..2026_11_24_10_00_00.123456789", &key, &len));
    assert_false(keys_get(k, "nope", &key, &len));
    mm_keys_free(k);
}

/* Hidden files are skipped; a dangling link (a key kubelet is removing) is skipped; a plain
 * file next to the links is a key too. */
static void test_skips(void **state)
{
    fixture *fx = *state;
    mm_keys *k = NULL;
    mm_errbuf eb;
    const unsigned char *key;
    size_t len;

    write_file(fx, ".hidden", "", 0); /* empty, but skipped: no error */
    link_to(fx, "..data/gone", "gone");
    write_file(fx, "plain", "p", 1);
    assert_int_equal(mm_keys_load_dir(fx->dir, &k, &eb), MM_OK);
    assert_false(keys_get(k, ".hidden", &key, &len));
    assert_false(keys_get(k, "gone", &key, &len));
    assert_true(keys_get(k, "plain", &key, &len));
    assert_int_equal(len, 1);
    assert_true(keys_get(k, "payments", &key, &len));
    mm_keys_free(k);
}

static void test_empty_key(void **state)
{
    fixture *fx = *state;
    mm_keys *k = NULL;
    mm_errbuf eb = {{0}};

    write_file(fx, "..2026_11_24_10_00_00.123456789/blank", "", 0);
    link_to(fx, "..data/blank", "blank");
    assert_int_equal(mm_keys_load_dir(fx->dir, &k, &eb), MM_EINVAL);
    assert_null(k);
    assert_non_null(strstr(eb.msg, "/blank"));
    assert_non_null(strstr(eb.msg, "the key is empty"));
}

static void test_oversized_key(void **state)
{
    fixture *fx = *state;
    mm_keys *k = NULL;
    mm_errbuf eb = {{0}};
    static char big[4097];

    memset(big, 'x', sizeof(big));
    write_file(fx, "big", big, 4096); /* the limit itself is fine */
    assert_int_equal(mm_keys_load_dir(fx->dir, &k, &eb), MM_OK);
    mm_keys_free(k);
    k = NULL;
    write_file(fx, "big", big, sizeof(big));
    assert_int_equal(mm_keys_load_dir(fx->dir, &k, &eb), MM_ELIMIT);
    assert_null(k);
    assert_non_null(strstr(eb.msg, "/big"));
    assert_non_null(strstr(eb.msg, "4096"));
    assert_null(strstr(eb.msg, "xxxx")); /* never the key bytes */
}

static void test_too_many_keys(void **state)
{
    fixture *fx = *state;
    mm_keys *k = NULL;
    mm_errbuf eb = {{0}};
    char name[32];

    for (int i = 0; i < 255; i++) { /* 2 from the fixture: 257 in all */
        snprintf(name, sizeof(name), "key%03d", i);
        write_file(fx, name, "v", 1);
    }
    assert_int_equal(mm_keys_load_dir(fx->dir, &k, &eb), MM_ELIMIT);
    assert_non_null(strstr(eb.msg, "more than 256 keys"));
    remove_entry(fx, "key000");
    assert_int_equal(mm_keys_load_dir(fx->dir, &k, &eb), MM_OK);
    mm_keys_free(k);
}

static void test_missing_dir(void **state)
{
    mm_keys *k = NULL;
    mm_errbuf eb = {{0}};
    (void)state;
    assert_int_equal(mm_keys_load_dir("/nonexistent/maskmesh/keys", &k, &eb), MM_ENOTFOUND);
    assert_null(k);
    assert_non_null(strstr(eb.msg, "/nonexistent/maskmesh/keys"));
}

static void test_add_get(void **state)
{
    mm_keys *k = NULL;
    const unsigned char *key;
    size_t len;
    static unsigned char big[4097];
    (void)state;

    assert_int_equal(mm_keys_new(&k), MM_OK);
    assert_false(keys_get(k, "a", &key, &len));
    assert_false(keys_get(NULL, "a", &key, &len));
    assert_int_equal(mm_keys_add(k, "a", "one", 3), MM_OK);
    assert_int_equal(mm_keys_add(k, "b", "two", 3), MM_OK);
    assert_int_equal(mm_keys_add(k, "a", "three", 5), MM_OK); /* replaces */
    assert_true(keys_get(k, "a", &key, &len));
    assert_int_equal(len, 5);
    assert_memory_equal(key, "three", 5);
    assert_true(keys_get(k, "b", &key, &len));
    assert_memory_equal(key, "two", 3);
    assert_int_equal(mm_keys_add(k, "", "x", 1), MM_EINVAL);
    assert_int_equal(mm_keys_add(k, "c", "", 0), MM_EINVAL);
    assert_int_equal(mm_keys_add(k, "c", big, sizeof(big)), MM_ELIMIT);
    assert_int_equal(mm_keys_add(k, "c", big, sizeof(big) - 1), MM_OK);
    for (int i = 0; i < 300; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        mm_err rc = mm_keys_add(k, name, "v", 1);
        assert_int_equal(rc, i < 256 - 3 ? MM_OK : MM_ELIMIT);
    }
    mm_keys_free(k);
    mm_keys_free(NULL);
}

/* Every allocation failed in turn: MM_ENOMEM with a message, nothing leaked. */
static void test_load_alloc_failures(void **state)
{
    fixture *fx = *state;
    for (long n = 0;; n++) {
        mm_keys *k = NULL;
        mm_errbuf eb = {{0}};
        mm_alloc_fail_after(n);
        mm_err rc = mm_keys_load_dir(fx->dir, &k, &eb);
        mm_alloc_fail_after(-1);
        if (rc == MM_OK) {
            assert_true(n > 3);
            mm_keys_free(k);
            break;
        }
        assert_int_equal(rc, MM_ENOMEM);
        assert_null(k);
        assert_true(eb.msg[0] != '\0');
        assert_true(n < 100);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mounted_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_keys, setup, teardown),
        cmocka_unit_test(test_missing_dir),
        cmocka_unit_test(test_add_get),
        cmocka_unit_test_setup_teardown(test_load_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests_name("mask-keys", tests, NULL, NULL);
}
