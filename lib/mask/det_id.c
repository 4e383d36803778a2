/* lib/mask: detectors of identifiers with letters: iban, uk_nino, passport_mrz. */
#include "mask/detect_int.h"

/* ---- iban ----------------------------------------------------------------------------- */

/* Registered IBAN lengths (SWIFT IBAN registry), by country code: a table built by the
 * compiler, so a lookup needs no run-time setup. */
#define IB(a, b, len) [(a - 'A') * 26 + (b - 'A')] = (len)
static const unsigned char iban_len[26 * 26] = {
    IB('A', 'D', 24), IB('A', 'E', 23), IB('A', 'L', 28), IB('A', 'T', 20), IB('A', 'Z', 28),
    IB('B', 'A', 20), IB('B', 'E', 16), IB('B', 'G', 22), IB('B', 'H', 22), IB('B', 'I', 27),
    IB('B', 'R', 29), IB('B', 'Y', 28), IB('C', 'H', 21), IB('C', 'R', 22), IB('C', 'Y', 28),
    IB('C', 'Z', 24), IB('D', 'E', 22), IB('D', 'J', 27), IB('D', 'K', 18), IB('D', 'O', 28),
    IB('E', 'E', 20), IB('E', 'G', 29), IB('E', 'S', 24), IB('F', 'I', 18), IB('F', 'K', 18),
    IB('F', 'O', 18), IB('F', 'R', 27), IB('G', 'B', 22), IB('G', 'E', 22), IB('G', 'I', 23),
    IB('G', 'L', 18), IB('G', 'R', 27), IB('G', 'T', 28), IB('H', 'N', 28), IB('H', 'R', 21),
    IB('H', 'U', 28), IB('I', 'E', 22), IB('I', 'L', 23), IB('I', 'Q', 23), IB('I', 'S', 26),
    IB('I', 'T', 27), IB('J', 'O', 30), IB('K', 'W', 30), IB('K', 'Z', 20), IB('L', 'B', 28),
    IB('L', 'C', 32), IB('L', 'I', 21), IB('L', 'T', 20), IB('L', 'U', 20), IB('L', 'V', 21),
    IB('L', 'Y', 25), IB('M', 'C', 27), IB('M', 'D', 24), IB('M', 'E', 22), IB('M', 'K', 19),
    IB('M', 'N', 20), IB('M', 'R', 27), IB('M', 'T', 31), IB('M', 'U', 30), IB('N', 'I', 28),
    IB('N', 'L', 18), IB('N', 'O', 15), IB('O', 'M', 23), IB('P', 'K', 24), IB('P', 'L', 28),
    IB('P', 'S', 29), IB('P', 'T', 25), IB('Q', 'A', 29), IB('R', 'O', 24), IB('R', 'S', 22),
    IB('R', 'U', 33), IB('S', 'A', 24), IB('S', 'C', 31), IB('S', 'D', 18), IB('S', 'E', 24),
    IB('S', 'I', 19), IB('S', 'K', 24), IB('S', 'M', 27), IB('S', 'O', 23), IB('S', 'T', 25),
    IB('S', 'V', 28), IB('T', 'L', 23), IB('T', 'N', 24), IB('T', 'R', 26), IB('U', 'A', 29),
    IB('V', 'A', 22), IB('V', 'G', 24), IB('X', 'K', 20), IB('Y', 'E', 30),
};
#undef IB

static unsigned iban_want(const unsigned char *c)
{
    if (!is_upper(c[0]) || !is_upper(c[1]))
        return 0;
    return iban_len[(c[0] - 'A') * 26 + (c[1] - 'A')];
}

/* A character's value in the mod-97 check plus one: digits 1-10, capitals 11-36, anything
 * else 0 (not part of an IBAN). */
#define D(c, v) [c] = (v) + 1
static const unsigned char iban_val[256] = {
    D('0', 0), D('1', 1), D('2', 2), D('3', 3), D('4', 4), D('5', 5), D('6', 6), D('7', 7),
    D('8', 8), D('9', 9), D('A', 10), D('B', 11), D('C', 12), D('D', 13), D('E', 14),
    D('F', 15), D('G', 16), D('H', 17), D('I', 18), D('J', 19), D('K', 20), D('L', 21),
    D('M', 22), D('N', 23), D('O', 24), D('P', 25), D('Q', 26), D('R', 27), D('S', 28),
    D('T', 29), D('U', 30), D('V', 31), D('W', 32), D('X', 33), D('Y', 34), D('Z', 35),
};
#undef D

/* acc extended by the characters c[0..n) (mod-97 values), reduced mod 97 only when it
 * grows large (the remainder is the same); UINT64_MAX when one is not a digit or capital. */
static uint64_t iban_acc(uint64_t acc, const unsigned char *c, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        unsigned v = iban_val[c[k]];
        if (!v--)
            return UINT64_MAX;
        acc = acc * (v < 10 ? 10 : 100) + v;
        if (acc >= 1ull << 56) /* acc * 100 + 35 stays below 2^63 */
            acc %= 97;
    }
    return acc;
}

/* Country code with its registered length, two check digits, capitals and digits, and mod
 * 97 of BBAN + country + check digits (letters as 10..35) is 1. */
bool iban_valid(const unsigned char *c, size_t nc)
{
    uint64_t acc;
    if (nc < 5 || iban_want(c) != nc || !is_digit(c[2]) || !is_digit(c[3]))
        return false;
    /* BBAN first, then country and check digits */
    if ((acc = iban_acc(0, c + 4, nc - 4)) == UINT64_MAX ||
        (acc = iban_acc(acc, c, 4)) == UINT64_MAX)
        return false;
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

    if (!want)
        return;
    if (w - i >= want) { /* unspaced: the word, whole (a longer word holds none) */
        if (w - i == want && iban_valid(t + i, want))
            det_found(s, DET_IBAN, i, w);
        return;
    }
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
