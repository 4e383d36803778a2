/* lib/mask: detectors of identifiers with letters: iban, uk_nino, passport_mrz. */
#include "mask/detect_int.h"

#include <pthread.h>

/* ---- iban ----------------------------------------------------------------------------- */

/* Registered IBAN lengths (SWIFT IBAN registry), by country code. */
static const struct {
    char cc[3];
    unsigned char len;
} iban_lengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16},
    {"BG", 22}, {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22},
    {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20},
    {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22},
    {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HN", 28}, {"HR", 21},
    {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30},
    {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20},
    {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20},
    {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23},
    {"PK", 24}, {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22},
    {"RU", 33}, {"SA", 24}, {"SC", 31}, {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24},
    {"SM", 27}, {"SO", 23}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26},
    {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20}, {"YE", 30},
};

static unsigned char iban_len[26 * 26];
static pthread_once_t iban_once = PTHREAD_ONCE_INIT;

static void init_iban(void)
{
    for (size_t k = 0; k < MM_ARRAY_LEN(iban_lengths); k++)
        iban_len[(iban_lengths[k].cc[0] - 'A') * 26 + (iban_lengths[k].cc[1] - 'A')] =
            iban_lengths[k].len;
}

static unsigned iban_want(const unsigned char *c)
{
    pthread_once(&iban_once, init_iban);
    if (!is_upper(c[0]) || !is_upper(c[1]))
        return 0;
    return iban_len[(c[0] - 'A') * 26 + (c[1] - 'A')];
}

/* Country code with its registered length, two check digits, capitals and digits, and mod
 * 97 of BBAN + country + check digits (letters as 10..35) is 1. */
bool iban_valid(const unsigned char *c, size_t nc)
{
    uint64_t acc = 0; /* reduced mod 97 only when it grows large: the remainder is the same */
    if (nc < 5 || iban_want(c) != nc || !is_digit(c[2]) || !is_digit(c[3]))
        return false;
    for (size_t k = 0; k < nc; k++) {
        unsigned char ch = c[k + 4 < nc ? k + 4 : k + 4 - nc];
        if (is_upper(ch))
            acc = acc * 100 + (unsigned)(ch - 'A' + 10);
        else if (is_digit(ch))
            acc = acc * 10 + (unsigned)(ch - '0');
        else
            return false;
        if (acc >= 1ull << 56) /* acc * 100 + 35 stays below 2^63 */
            acc %= 97;
    }
    return acc % 97 == 1;
}

bool iban_shape(const scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    return w - i >= 4 && is_upper(t[i + 1]) && is_digit(t[i + 2]) && is_digit(t[i + 3]);
}

/* Unspaced, or grouped by four with single spaces or single dashes (one kind). */
void iban_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    unsigned char c[34], sep = 0;
    size_t nc = 0, j = i, want = iban_want(t + i);

    MM_UNUSED(w);
    if (!want)
        return;
    while (j < s->n && nc < want) {
        if (is_digit(t[j]) || is_upper(t[j])) {
            c[nc++] = t[j++];
        } else if ((t[j] == ' ' || t[j] == '-') && (!sep || t[j] == sep) && nc % 4 == 0 &&
                   j + 1 < s->n && is_alnum(t[j + 1])) {
            sep = t[j++];
        } else {
            break;
        }
    }
    if (nc == want && !is_alnum(at(s, j)) && iban_valid(c, nc))
        det_found(s, DET_IBAN, i, j);
}

/* ---- uk_nino -------------------------------------------------------------------------- */

/* HMRC's allocation rules: two prefix letters (first not D, F, I, Q, U, V; second not D, F,
 * I, O, Q, U, V; not BG, GB, KN, NK, NT, TN, ZZ), six digits, suffix A-D. Capitals. */
bool nino_valid(const unsigned char *d, size_t n)
{
    static const char bad1[] = "DFIQUV", bad2[] = "DFIOQUV";
    static const char *const badp[] = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"};
    if (n != 9 || !is_upper(d[0]) || !is_upper(d[1]) || strchr(bad1, d[0]) ||
        strchr(bad2, d[1]) || d[8] < 'A' || d[8] > 'D')
        return false;
    for (size_t k = 0; k < MM_ARRAY_LEN(badp); k++)
        if (memcmp(d, badp[k], 2) == 0)
            return false;
    for (size_t k = 2; k < 8; k++)
        if (!is_digit(d[k]))
            return false;
    return true;
}

bool nino_shape(const scan *s, size_t i, size_t w)
{
    return (w - i == 9 || (w - i == 2 && at(s, w) == ' ')) && is_upper(s->t[i + 1]);
}

/* AB123456C or AB 12 34 56 C (single spaces between the pairs). */
void nino_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    unsigned char d[9];
    size_t j = i + 2;

    MM_UNUSED(w);
    memcpy(d, t + i, 2);
    if (w - i == 9) {
        memcpy(d + 2, t + i + 2, 7);
        j = i + 9;
    } else {
        for (int k = 0; k < 3; k++) {
            if (at(s, j) != ' ' || !det_digits_at(s, j + 1, 2))
                return;
            memcpy(d + 2 + 2 * k, t + j + 1, 2);
            j += 3;
        }
        if (at(s, j) != ' ' || !is_upper(at(s, j + 1)))
            return;
        d[8] = t[j + 1];
        j += 2;
    }
    if (!is_alnum(at(s, j)) && nino_valid(d, 9))
        det_found(s, DET_UK_NINO, i, j);
}

/* ---- passport_mrz --------------------------------------------------------------------- */

static inline bool mrz_char(unsigned char c) { return is_upper(c) || is_digit(c) || c == '<'; }

static unsigned mrz_value(unsigned char c)
{
    return is_digit(c) ? (unsigned)(c - '0') : is_upper(c) ? (unsigned)(c - 'A' + 10) : 0;
}

/* ICAO 9303 part 3: weights 7, 3, 1 repeating, sum mod 10. */
static bool mrz_check(const unsigned char *d, size_t n, unsigned char check)
{
    unsigned sum = 0;
    static const unsigned wt[3] = {7, 3, 1};
    for (size_t k = 0; k < n; k++)
        sum += mrz_value(d[k]) * wt[k % 3];
    return is_digit(check) && sum % 10 == (unsigned)(check - '0');
}

/* The second line of a TD3 (passport) MRZ, 44 characters: document number and its check
 * digit, nationality, birth date and check, sex, expiry and check, personal number and check
 * ('<' or 0 when it is empty), and the composite check over all of them. */
bool mrz_valid(const unsigned char *d, size_t n)
{
    unsigned char comp[39];
    if (n != 44)
        return false;
    for (size_t k = 0; k < 44; k++)
        if (!mrz_char(d[k]))
            return false;
    if (!det_digits_at(&(scan){.t = d, .n = 44}, 13, 6) ||
        !det_digits_at(&(scan){.t = d, .n = 44}, 21, 6))
        return false;
    if (d[20] != 'M' && d[20] != 'F' && d[20] != 'X' && d[20] != '<')
        return false;
    if (!mrz_check(d, 9, d[9]) || !mrz_check(d + 13, 6, d[19]) ||
        !mrz_check(d + 21, 6, d[27]))
        return false;
    if (!(d[42] == '<' && mrz_check(d + 28, 14, '0')) && !mrz_check(d + 28, 14, d[42]))
        return false;
    memcpy(comp, d, 10);
    memcpy(comp + 10, d + 13, 7);
    memcpy(comp + 17, d + 21, 22);
    return mrz_check(comp, 39, d[43]);
}

/* The first line of a TD3 MRZ: 'P', a type letter or '<', the issuing state, the names: 44
 * of [A-Z<]: the surname, "<<", the given names, padded with '<' to the end. */
static bool mrz_line1(const unsigned char *d, size_t n)
{
    size_t brk = 0;
    bool given = false;
    if (n < 44 || d[0] != 'P' || d[43] != '<' || !is_upper(d[2]) || !is_upper(d[4]))
        return false;
    for (size_t k = 1; k < 44; k++) {
        if (!is_upper(d[k]) && d[k] != '<')
            return false;
        if (!brk && k > 6 && d[k] == '<' && d[k - 1] == '<' && is_upper(d[k - 2]))
            brk = k;
        given |= brk && k > brk && is_upper(d[k]);
    }
    return given; /* a surname, "<<", given names */
}

bool mrz_shape(const scan *s, size_t i, size_t w)
{
    MM_UNUSED(w);
    return i + 44 <= s->n && !mrz_char(at(s, i + 44)) && (i == 0 || !mrz_char(s->t[i - 1])) &&
           (is_digit(s->t[i + 9]) || s->t[i] == 'P');
}

/* The second line alone, or the first line with the second one when it stands right after
 * it (on the next line or after a space). The first line alone is a match too: a text body
 * is masked a line at a time, and the names are personal data. */
void mrz_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t end = i + 44;

    MM_UNUSED(w);
    if (mrz_valid(t + i, 44)) {
        det_found(s, DET_PASSPORT_MRZ, i, end);
        return;
    }
    if (!mrz_line1(t + i, 44))
        return;
    for (size_t j = i + 44; j < s->n && j <= i + 46; j++) {
        if (t[j] != '\n' && t[j] != '\r' && t[j] != ' ')
            break;
        if (j + 45 <= s->n + 1 && j + 1 + 44 <= s->n && mrz_valid(t + j + 1, 44) &&
            !mrz_char(at(s, j + 45))) {
            end = j + 45;
            break;
        }
    }
    det_found(s, DET_PASSPORT_MRZ, i, end);
}
