/* Unit tests for lib/common: buffers and their limits, JSON escaping, allocation failure
 * injection, bounded file reads, number parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"

static void test_buf_limit(void **state)
{
    mm_buf b;
    (void)state;
    mm_buf_init(&b, 8);
    assert_int_equal(mm_buf_append(&b, "12345678", 8), MM_OK);
    assert_int_equal(mm_buf_putc(&b, 'x'), MM_ELIMIT);
    assert_int_equal(b.len, 8);
    assert_string_equal(mm_buf_cstr(&b), "12345678");
    mm_buf_reset(&b);
    assert_int_equal(mm_buf_printf(&b, "%d-%s", 42, "ab"), MM_OK);
    assert_string_equal(mm_buf_cstr(&b), "42-ab");
    assert_int_equal(mm_buf_printf(&b, "%s", "toolong"), MM_ELIMIT);
    mm_buf_free(&b);
}

static void test_cstr_after_reserve(void **state)
{
    mm_buf b;
    (void)state;
    mm_buf_init(&b, 0);
    assert_string_equal(mm_buf_cstr(&b), "");
    assert_int_equal(mm_buf_reserve(&b, 100), MM_OK);
    assert_string_equal(mm_buf_cstr(&b), ""); /* allocated but empty: still a C string */
    mm_buf_free(&b);
}

/* mm_buf_take hands an empty destination the source's storage, appends to one that holds
 * bytes or has another limit, and leaves the source empty (or whole, on an error). */
static void test_buf_take(void **state)
{
    mm_buf src, dst, lim;
    (void)state;
    mm_buf_init(&src, 0);
    mm_buf_init(&dst, 0);
    mm_buf_init(&lim, 4);
    assert_int_equal(mm_buf_append(&src, "abc", 3), MM_OK);
    const char *storage = src.data;
    assert_int_equal(mm_buf_take(&dst, &src), MM_OK);
    assert_ptr_equal(dst.data, storage); /* swapped, not copied */
    assert_string_equal(mm_buf_cstr(&dst), "abc");
    assert_int_equal(src.len, 0);
    assert_string_equal(mm_buf_cstr(&src), "");
    assert_int_equal(mm_buf_append(&src, "de", 2), MM_OK);
    assert_int_equal(mm_buf_take(&dst, &src), MM_OK); /* dst holds bytes: appended */
    assert_string_equal(mm_buf_cstr(&dst), "abcde");
    assert_int_equal(src.len, 0);
    assert_int_equal(mm_buf_take(&dst, &src), MM_OK); /* nothing to take */
    assert_string_equal(mm_buf_cstr(&dst), "abcde");
    /* another limit: copied within it; past it refused and the source kept */
    assert_int_equal(mm_buf_append(&src, "xyz", 3), MM_OK);
    storage = src.data;
    assert_int_equal(mm_buf_take(&lim, &src), MM_OK);
    assert_true(lim.data != storage);
    assert_string_equal(mm_buf_cstr(&lim), "xyz");
    assert_int_equal(mm_buf_append(&src, "12", 2), MM_OK);
    assert_int_equal(mm_buf_take(&lim, &src), MM_ELIMIT);
    assert_string_equal(mm_buf_cstr(&src), "12");
    assert_string_equal(mm_buf_cstr(&lim), "xyz");
    mm_buf_free(&src);
    mm_buf_free(&dst);
    mm_buf_free(&lim);
}

static void test_json_escape(void **state)
{
    mm_buf b;
    (void)state;
    mm_buf_init(&b, 0);
    assert_int_equal(mm_buf_put_json_str(&b, "a\"b\\c\n\x01", 7), MM_OK);
    assert_string_equal(mm_buf_cstr(&b), "\"a\\\"b\\\\c\\n\\u0001\"");
    mm_buf_free(&b);
}

/* mm_buf_put_json_chars, which skips eight bytes at a time where nothing needs escaping,
 * against RFC 8259's escaping written byte by byte: 20,000 strings of 0-40 bytes drawn
 * from the bytes that need escaping, their neighbours and bytes past ASCII. */
static void test_json_escape_words(void **state)
{
    static const unsigned char pool[] = {0x00, 0x01, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1f,
                                         0x20, 0x21, '"',  0x23, '[',  '\\', ']',  'a',
                                         '0',  0x7f, 0x80, 0x9f, 0xa0, 0xc3, 0xdc, 0xff};
    uint64_t seed = 0x2545F4914F6CDD1Dull;
    char in[41], want[41 * 6 + 1];
    mm_buf b;
    (void)state;
    mm_buf_init(&b, 0);
    for (int row = 0; row < 20000; row++) {
        size_t n = (size_t)(row % 41), o = 0;
        /* mostly plain runs, so the eight-byte stretches are taken and left at every place */
        for (size_t i = 0; i < n; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            in[i] = (char)((seed >> 60) < 12 ? 'x' : pool[(seed >> 33) % sizeof(pool)]);
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)in[i];
            const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f" : NULL;
            if (e)
                o += (size_t)snprintf(want + o, sizeof(want) - o, "%s", e);
            else if (c < 0x20)
                o += (size_t)snprintf(want + o, sizeof(want) - o, "\\u%04x", c);
            else
                want[o++] = (char)c;
        }
        mm_buf_reset(&b);
        assert_int_equal(mm_buf_put_json_chars(&b, in, n), MM_OK);
        if (b.len != o || memcmp(b.data, want, o) != 0)
            fail_msg("row %d: %zu bytes escaped to %zu, want %zu", row, n, b.len, o);
    }
    mm_buf_free(&b);
}

static void test_alloc_fault_injection(void **state)
{
    char *a, *b;
    (void)state;
    mm_alloc_fail_after(1);
    a = mm_strdup("x");
    b = mm_strdup("y");
    assert_non_null(a);
    assert_null(b);
    assert_int_equal(mm_alloc_fail_after(-1), 2);
    b = mm_strdup("y");
    assert_non_null(b);
    mm_free(a);
    mm_free(b);
}

static void test_buf_enomem(void **state)
{
    mm_buf b;
    (void)state;
    mm_buf_init(&b, 0);
    mm_alloc_fail_after(0);
    assert_int_equal(mm_buf_puts(&b, "x"), MM_ENOMEM);
    mm_alloc_fail_after(-1);
    assert_int_equal(b.len, 0);
    mm_buf_free(&b);
}

static void test_read_file(void **state)
{
    char path[] = "/tmp/mm_test_XXXXXX";
    int fd = mkstemp(path);
    char *text = NULL;
    size_t len = 0;
    mm_errbuf eb = {{0}};
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello world", 11), 11);
    close(fd);
    assert_int_equal(mm_read_file(path, 100, &text, &len, &eb), MM_OK);
    assert_int_equal(len, 11);
    assert_string_equal(text, "hello world");
    mm_free(text);
    text = NULL;
    assert_int_equal(mm_read_file(path, 5, &text, &len, &eb), MM_ELIMIT);
    assert_null(text);
    assert_non_null(strstr(eb.msg, path));
    unlink(path);
    assert_int_equal(mm_read_file(path, 5, &text, &len, &eb), MM_ENOTFOUND);
}

static void test_parse_long(void **state)
{
    long v;
    (void)state;
    assert_true(mm_parse_long("8080", 1, 65535, &v));
    assert_int_equal(v, 8080);
    assert_false(mm_parse_long("70000", 1, 65535, &v));
    assert_false(mm_parse_long("80x", 1, 65535, &v));
    assert_false(mm_parse_long("", 1, 65535, &v));
}

static void test_errf_prefix(void **state)
{
    mm_errbuf eb;
    (void)state;
    assert_int_equal(mm_errf(&eb, MM_EPARSE, "offset %d: expected ':'", 12), MM_EPARSE);
    mm_errprefix(&eb, "%s", "input.json");
    assert_string_equal(eb.msg, "input.json: offset 12: expected ':'");
}

/* The reload signature changes with any content, entry or symlink swap (kubelet's ..data),
 * and stays the same when nothing changed. */
static void test_fsig(void **state)
{
    (void)state;
    char dir[] = "/tmp/mm-fsig-XXXXXX", file[64], key[80], data1[80], data2[80], link[80];
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/policies", dir);
    snprintf(key, sizeof(key), "%s/k.v1", dir);
    snprintf(data1, sizeof(data1), "%s/d1", dir);
    snprintf(data2, sizeof(data2), "%s/d2", dir);
    snprintf(link, sizeof(link), "%s/..data", dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fputs("a", fp);
    fclose(fp);
    uint64_t a = mm_fsig_dir(mm_fsig_file(MM_FSIG_INIT, file), dir);
    assert_int_equal(a, mm_fsig_dir(mm_fsig_file(MM_FSIG_INIT, file), dir));
    fp = fopen(file, "a");
    assert_non_null(fp);
    fputs("b", fp);
    fclose(fp);
    uint64_t b = mm_fsig_dir(mm_fsig_file(MM_FSIG_INIT, file), dir);
    assert_true(a != b);
    fp = fopen(key, "w"); /* a new entry, empty */
    assert_non_null(fp);
    fclose(fp);
    uint64_t c = mm_fsig_dir(mm_fsig_file(MM_FSIG_INIT, file), dir);
    assert_true(c != b);
    assert_int_equal(mkdir(data1, 0700), 0);
    assert_int_equal(mkdir(data2, 0700), 0);
    assert_int_equal(symlink("d1", link), 0);
    uint64_t d = mm_fsig_file(MM_FSIG_INIT, link);
    assert_int_equal(unlink(link), 0);
    assert_int_equal(symlink("d2", link), 0);
    assert_true(d != mm_fsig_file(MM_FSIG_INIT, link)); /* followed: another inode */
    assert_true(mm_fsig_file(MM_FSIG_INIT, "/nonexistent/x") != MM_FSIG_INIT);
    unlink(link);
    rmdir(data1);
    rmdir(data2);
    unlink(key);
    unlink(file);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_limit),     cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_json_escape_words),
        cmocka_unit_test(test_alloc_fault_injection), cmocka_unit_test(test_buf_enomem),
        cmocka_unit_test(test_read_file),     cmocka_unit_test(test_parse_long),
        cmocka_unit_test(test_fsig),          cmocka_unit_test(test_errf_prefix),   cmocka_unit_test(test_cstr_after_reserve),
        cmocka_unit_test(test_buf_take),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
