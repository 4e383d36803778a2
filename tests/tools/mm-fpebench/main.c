/* mm-fpebench: values per second on one thread for the keyed actions, each through the
 * action the engine applies (act_apply): tokenize (HMAC-SHA256) as the baseline, encrypt
 * with FF1 on 16-digit cards (keepFirst 6, keepLast 4, luhn invalid: 6 digits encrypted;
 * and the whole card: 15), and encrypt with AES-SIV on emails. Prints one line per case:
 *   <case> <values/s> <ratio to tokenize> <values per wall-clock second>
 * Time is the thread's CPU time (CLOCK_THREAD_CPUTIME_ID): "per second on one core" even
 * when the machine is shared and the thread waits for a CPU now and then (caches and a
 * busy sibling hyperthread still slow it: compare the ratios).
 * Usage: mm-fpebench [SECONDS per case, default 1] [CASE: only that one, for profiling] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mask/mask_int.h"

#define N_VALUES 1024

typedef struct {
    const char *name;
    mm_action a;
    const char *shape; /* 'c' card, 'e' email */
} bcase;

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void make_values(const char *shape, char vals[N_VALUES][40])
{
    unsigned seed = 42;
    for (int i = 0; i < N_VALUES; i++) {
        if (shape[0] == 'c') {
            int sum = 0;
            char d[16];
            d[0] = '4';
            for (int k = 1; k < 15; k++)
                d[k] = (char)('0' + rand_r(&seed) % 10);
            for (int k = 0; k < 15; k++) { /* Luhn digit */
                int v = d[14 - k] - '0';
                if (k % 2 == 0 && (v *= 2) > 9)
                    v -= 9;
                sum += v;
            }
            d[15] = (char)('0' + (10 - sum % 10) % 10);
            snprintf(vals[i], 40, "%.4s %.4s %.4s %.4s", d, d + 4, d + 8, d + 12);
        } else {
            snprintf(vals[i], 40, "user%06u@example.com", (unsigned)rand_r(&seed) % 1000000);
        }
    }
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    static char vals[N_VALUES][40];
    mm_keys *keys = NULL;
    mm_buf out;
    mm_errbuf eb;
    double base = 0;
    bcase cases[] = {
        {"tokenize-card", {.type = MM_ACTION_TOKENIZE, .key = "bench", .key_version = 1}, "c"},
        {"ff1-card-6/4", {.type = MM_ACTION_ENCRYPT, .enc_mode = MM_ENC_FF1, .key = "bench",
                          .key_version = 1, .keep_first = 6, .keep_last = 4,
                          .luhn = MM_LUHN_INVALID, .tweak = "card"}, "c"},
        {"ff1-card-whole", {.type = MM_ACTION_ENCRYPT, .enc_mode = MM_ENC_FF1, .key = "bench",
                            .key_version = 1, .luhn = MM_LUHN_INVALID}, "c"},
        {"siv-email", {.type = MM_ACTION_ENCRYPT, .enc_mode = MM_ENC_SIV, .key = "bench",
                       .key_version = 1}, "e"},
        {"tokenize-email", {.type = MM_ACTION_TOKENIZE, .key = "bench", .key_version = 1}, "e"},
    };

    if (mm_keys_new(&keys) != MM_OK ||
        mm_keys_add(keys, "bench.v1", "bench-key-0123456789abcdef", 26) != MM_OK)
        return 1;
    mm_buf_init(&out, 0);
    for (size_t c = 0; c < MM_ARRAY_LEN(cases); c++) {
        act_t act;
        if (argc > 2 && strcmp(argv[2], cases[c].name) != 0)
            continue;
        uint64_t n = 0, t0, t, w0;
        if (act_compile(&cases[c].a, keys, cases[c].name, &act, &eb) != MM_OK) {
            fprintf(stderr, "mm-fpebench: %s\n", eb.msg);
            return 1;
        }
        make_values(cases[c].shape, vals);
        t0 = cpu_ns();
        w0 = mm_now_ns();
        do {
            for (int i = 0; i < 256; i++, n++) {
                const char *v = vals[n % N_VALUES];
                mm_buf_reset(&out);
                if (act_apply(&act, v, strlen(v), &out) != MM_OK) {
                    fprintf(stderr, "mm-fpebench: %s failed\n", cases[c].name);
                    return 1;
                }
            }
            t = cpu_ns() - t0;
        } while (t < (uint64_t)(secs * 1e9));
        double rate = (double)n / ((double)t / 1e9);
        double wall = (double)n / ((double)(mm_now_ns() - w0) / 1e9);
        if (c == 0)
            base = rate;
        printf("%-16s %12.0f %6.2f %12.0f\n", cases[c].name, rate, base ? rate / base : 0, wall);
        act_clear(&act);
    }
    mm_buf_free(&out);
    mm_keys_free(keys);
    return 0;
}
