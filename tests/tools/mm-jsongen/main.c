/* mm-jsongen: writes realistic JSON for tests and benchmarks: order records with nested
 * objects and arrays, of which about 30% of string values are sensitive (names, emails,
 * phones, SSNs, Luhn-valid cards, mod-97-valid IBANs, IPs). Deterministic for a seed.
 *   mm-jsongen [--size BYTES] [--ndjson] [--seed N] > out.json */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    /* xorshift64*: fast, deterministic, good enough for test data */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)(((rng_state * 0x2545f4914f6cdd1dull) >> 32) % n);
}

static const char *const first[] = {"Alice", "Bob", "Chandra", "Dmitri", "Elena", "Farah",
                                    "Gustavo", "Hiro", "Ingrid", "Jamal", "Keiko", "Luis"};
static const char *const last[] = {"Smith", "Okafor", "Nguyen", "Müller", "García", "Kowalski",
                                   "Haddad", "Tanaka", "Johansson", "Rossi", "O'Brien", "Patel"};
static const char *const streets[] = {"Main St", "Elm Avenue", "Harbour Rd", "Rue de Rivoli",
                                      "Königstraße", "Calle Mayor"};
static const char *const cities[] = {"Springfield", "Lagos", "Hanoi", "Berlin", "Madrid",
                                     "Osaka", "Toronto"};
static const char *const status[] = {"paid", "pending", "shipped", "refunded"};
static const char *const notes[] = {"leave at the door", "gift wrap please", "", "call before delivery",
                                    "fragile: glassware inside", "second attempt"};

static void luhn_card(char *out)
{
    static const char *const prefix[] = {"4", "51", "55", "2221", "37", "6011"};
    const char *p = prefix[rnd(MM_ARRAY_LEN(prefix))];
    int len = p[0] == '3' ? 15 : 16, n = (int)strlen(p), sum = 0;
    char d[20];

    memcpy(d, p, (size_t)n);
    for (int i = n; i < len - 1; i++)
        d[i] = (char)('0' + rnd(10));
    for (int i = len - 2, dbl = 1; i >= 0; i--, dbl = !dbl) {
        int v = d[i] - '0';
        if (dbl && (v *= 2) > 9)
            v -= 9;
        sum += v;
    }
    d[len - 1] = (char)('0' + (10 - sum % 10) % 10);
    /* group in fours as people type them, half of the time */
    int o = 0, spaced = (int)rnd(2);
    for (int i = 0; i < len; i++) {
        if (i && i % 4 == 0 && spaced)
            out[o++] = ' ';
        out[o++] = d[i];
    }
    out[o] = '\0';
}

static void iban_de(char *out)
{
    char bban[19];
    unsigned mod = 0;
    for (int i = 0; i < 18; i++)
        bban[i] = (char)('0' + rnd(10));
    bban[18] = '\0';
    /* mod 97 of BBAN + "DE00" (D=13, E=14) */
    for (int i = 0; i < 18; i++)
        mod = (mod * 10 + (unsigned)(bban[i] - '0')) % 97;
    mod = (mod * 100 + 13) % 97;
    mod = (mod * 100 + 14) % 97;
    mod = (mod * 100) % 97;
    snprintf(out, 32, "DE%02u%s", 98 - mod, bban);
}

static int record(char *b, size_t cap, unsigned long id)
{
    char card[24], iban[32];
    const char *fn = first[rnd(MM_ARRAY_LEN(first))], *ln = last[rnd(MM_ARRAY_LEN(last))];
    int n, items = 1 + (int)rnd(3);

    luhn_card(card);
    iban_de(iban);
    n = snprintf(b, cap,
                 "{\"id\":\"ord_%08lu\",\"created_at\":\"2026-11-%02uT%02u:%02u:%02uZ\",\"ts\":%llu,"
                 "\"status\":\"%s\",\"customer\":{\"id\":%lu,\"name\":\"%s %s\",\"email\":\"%c%c.%s%u@example.com\","
                 "\"phone\":\"+1415555%04u\",\"ssn\":\"%03u-%02u-%04u\",\"address\":{\"street\":\"%u %s\","
                 "\"city\":\"%s\",\"zip\":\"%05u\"}},\"payment\":{\"card_number\":\"%s\",\"exp\":\"%02u/%02u\","
                 "\"amount\":%u.%02u,\"currency\":\"EUR\",\"iban\":\"%s\"},\"items\":[",
                 id, 1 + rnd(28), rnd(24), rnd(60), rnd(60), 1700000000000ull + rnd(1000000000), status[rnd(4)],
                 100000 + id % 900000, fn, ln, fn[0] | 0x20, fn[1], "user", rnd(10000), rnd(10000),
                 1 + rnd(665), 1 + rnd(98), 1 + rnd(9998), 1 + rnd(200), streets[rnd(6)], cities[rnd(7)],
                 rnd(100000), card, 1 + rnd(12), 27 + rnd(5), rnd(2000), rnd(100), iban);
    for (int i = 0; i < items && n > 0 && (size_t)n < cap; i++)
        n += snprintf(b + n, cap - (size_t)n, "%s{\"sku\":\"SKU-%05u\",\"qty\":%u,\"price\":%u.%02u,\"title\":\"%s\"}",
                      i ? "," : "", rnd(100000), 1 + rnd(5), rnd(200), rnd(100),
                      "Stainless steel water bottle, 750 ml");
    if (n > 0 && (size_t)n < cap)
        n += snprintf(b + n, cap - (size_t)n,
                      "],\"tags\":[\"web\",\"%s\"],\"client_ip\":\"%u.%u.%u.%u\",\"note\":\"%s\"}",
                      rnd(2) ? "promo" : "repeat", 10 + rnd(200), rnd(256), rnd(256), 1 + rnd(254),
                      notes[rnd(MM_ARRAY_LEN(notes))]);
    return n;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 's'},
        {"ndjson", no_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    long size = 1 << 20, seed = 1;
    bool ndjson = false;
    int c;
    char rec[4096];
    static char out[1 << 20];

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (!mm_parse_long(optarg, 1, 1L << 40, &size))
                goto usage;
            break;
        case 'n': ndjson = true; break;
        case 'r':
            if (!mm_parse_long(optarg, 1, 1L << 40, &seed))
                goto usage;
            break;
        default: goto usage;
        }
    }
    rng_state ^= (uint64_t)seed * 0x100000001b3ull;
    setvbuf(stdout, out, _IOFBF, sizeof(out));
    long written = 0;
    if (!ndjson)
        written += printf("{\"records\":[\n");
    for (unsigned long id = 1; written < size; id++) {
        int n = record(rec, sizeof(rec), id);
        if (n <= 0 || (size_t)n >= sizeof(rec))
            return 1;
        if (!ndjson && id > 1)
            written += printf(",\n");
        fwrite(rec, 1, (size_t)n, stdout);
        written += n;
        if (ndjson)
            written += printf("\n");
    }
    if (!ndjson)
        printf("\n]}\n");
    return fflush(stdout) == 0 ? 0 : 1;
usage:
    fprintf(stderr, "usage: mm-jsongen [--size BYTES] [--ndjson] [--seed N]\n");
    return 2;
}
