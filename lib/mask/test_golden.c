/* Golden tests: every tests/golden/<case>/ holds policy.yaml, input.<ext>, expected.<ext>,
 * and optionally content-type and keys/. Each input is masked whole and, being small, split
 * at every byte position; the output must equal expected byte for byte. Run from the
 * repository root (make test does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mask/mask.h"

#define GOLDEN_DIR "tests/golden"

/* dir/name, allocated (no fixed path buffers); the caller frees it */
static char *join(const char *dir, const char *name)
{
    mm_buf b;
    mm_buf_init(&b, 0);
    assert_int_equal(mm_buf_printf(&b, "%s/%s", dir, name), MM_OK);
    return mm_buf_steal(&b, NULL);
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char *p = join(dir, name), *text = NULL;
    mm_errbuf eb;
    if (mm_read_file(p, 1 << 20, &text, len, &eb) != MM_OK)
        text = NULL;
    mm_free(p);
    return text;
}

static int run_case(const char *dir)
{
    char *p, *in_name = NULL, *exp_name, *ctype = NULL, *in = NULL, *want = NULL;
    size_t in_len = 0, want_len = 0, ct_len = 0;
    mm_policy_set *set = NULL;
    mm_keys *keys = NULL;
    mm_masker *m = NULL;
    mm_errbuf eb = {{0}};
    mm_buf out;
    struct dirent *de;
    struct stat st;
    int failures = 0;
    const mm_policy *list[16];

    DIR *d = opendir(dir);
    assert_non_null(d);
    while ((de = readdir(d)))
        if (strncmp(de->d_name, "input.", 6) == 0 && !in_name)
            in_name = mm_strdup(de->d_name);
    closedir(d);
    if (!in_name)
        fail_msg("%s: no input.<ext>", dir);
    in = slurp(dir, in_name, &in_len);
    exp_name = join("expected", in_name + 6);
    exp_name[8] = '.'; /* expected.<ext> */
    want = slurp(dir, exp_name, &want_len);
    if (!in || !want)
        fail_msg("%s: cannot read %s or %s", dir, in_name, exp_name);
    mm_free(exp_name);
    if ((ctype = slurp(dir, "content-type", &ct_len)))
        ctype[strcspn(ctype, "\r\n")] = '\0';
    p = join(dir, "policy.yaml");
    if (mm_policy_load(p, &set, NULL, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    mm_free(p);
    p = join(dir, "keys");
    if (stat(p, &st) == 0 && mm_keys_load_dir(p, &keys, &eb) != MM_OK)
        fail_msg("%s", eb.msg);
    mm_free(p);
    for (size_t i = 0; i < mm_policy_set_count(set) && i < 16; i++)
        list[i] = mm_policy_set_get(set, i);
    if (mm_masker_new(list, mm_policy_set_count(set), keys, NULL, &m, &eb) != MM_OK)
        fail_msg("%s: %s", dir, eb.msg);

    mm_stream_opts o = {.kind = ctype ? mm_body_kind_for(m, ctype)
                                      : mm_body_kind_sniff(in_name, in, in_len)};
    mm_buf_init(&out, 0);
    size_t splits = in_len < 4096 ? in_len : 1;
    for (size_t split = 0; split < splits; split++) {
        mm_stream *s = NULL;
        mm_buf_reset(&out);
        assert_int_equal(mm_stream_new(m, &o, mm_stream_buf_write, &out, &s), MM_OK);
        mm_err rc = mm_stream_push(s, in, split ? split : in_len, &eb);
        if (rc == MM_OK && split)
            rc = mm_stream_push(s, in + split, in_len - split, &eb);
        if (rc == MM_OK)
            rc = mm_stream_finish(s, &eb);
        mm_stream_free(s);
        if (rc != MM_OK) {
            printf("%s: split %zu: %s\n", dir, split, eb.msg);
            failures++;
        } else if (out.len != want_len || memcmp(out.data, want, want_len) != 0) {
            printf("%s: split %zu: output differs from expected (%zu vs %zu bytes)\n", dir, split,
                   out.len, want_len);
            failures++;
        }
        if (failures)
            break;
    }
    mm_buf_free(&out);
    mm_masker_free(m);
    mm_keys_free(keys);
    mm_policy_set_free(set);
    mm_free(in);
    mm_free(in_name);
    mm_free(want);
    mm_free(ctype);
    return failures;
}

static void test_golden(void **state)
{
    DIR *d = opendir(GOLDEN_DIR);
    struct dirent *de;
    int cases = 0, failures = 0;
    (void)state;
    assert_non_null(d);
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        char *p = join(GOLDEN_DIR, de->d_name);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            failures += run_case(p);
            cases++;
        }
        mm_free(p);
    }
    closedir(d);
    printf("golden: %d cases, %d failed\n", cases, failures);
    assert_true(cases >= 9);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden)};
    return cmocka_run_group_tests_name("mask-golden", tests, NULL, NULL);
}
