/* lib/mask: detectors of digit runs: credit_card, us_ssn, phone, ca_sin, in_aadhaar.
 *
 * Every one of them is tried at every digit group of a run (a group is a word of digits; a
 * run is groups joined by single spaces, dashes or dots): a group before or after a value
 * never hides it ("qty 2 4111 1111 1111 1111", "invoice 10023 4111 ...", a spaced card right
 * after a dashed one). Unseparated digits are one word and stay whole: a card inside a longer
 * unseparated digit run (a 13-digit millisecond timestamp's neighbours, an order number) is
 * not a card. */
#include "mask/detect_int.h"

/* A digit word [i, w) with nothing but digits? */
static bool digit_word(const scan *s, size_t i, size_t w)
{
    for (size_t k = i; k < w; k++)
        if (!is_digit(s->t[k]))
            return false;
    return true;
}

static inline bool group_sep(unsigned char c) { return c == ' ' || c == '-' || c == '.'; }

/* Digit groups of the given sizes from i, joined by one separator out of `seps` (the first
 * one met), nothing alphanumeric after them: their digits into d, and the end; 0 when the
 * text is not of that shape. Inlined: each caller's sizes are constants, its loops unroll. */
static inline __attribute__((always_inline)) size_t
fixed_groups(const scan *s, size_t i, const unsigned char *sizes, size_t ng, const char *seps,
             unsigned char *d)
{
    unsigned char sep = 0;
    size_t j = i;
    for (size_t g = 0; g < ng; g++) {
        if (g) {
            unsigned char c = at(s, j);
            if (!det_sep_in(seps, c) || (sep && c != sep))
                return 0;
            sep = c;
            j++;
        }
        /* checked and copied in one loop, a few bytes: no call */
        const size_t sz = sizes[g];
        const unsigned char *src = s->t + j;
        if (j + sz > s->n)
            return 0;
        for (size_t k = 0; k < sz; k++) {
            if (!is_digit(src[k]))
                return 0;
            d[k] = src[k];
        }
        d += sz;
        j += sz;
    }
    return is_alnum(at(s, j)) ? 0 : j;
}

/* ---- credit_card ---------------------------------------------------------------------- */

/* Issuer identification: is this prefix issued for this length? (docs/detectors.md) */
static bool iin_ok(const unsigned char *d, size_t n)
{
    /* n >= 13: six digits are there */
    unsigned p6 = det_num(d, 6), p4 = p6 / 100, p3 = p6 / 1000, p2 = p6 / 10000;

    switch (d[0]) {
    case '1':
        return n == 15; /* UATP */
    case '2':
        if (p4 >= 2221 && p4 <= 2720)
            return n == 16;
        return p4 >= 2200 && p4 <= 2204 && n >= 16; /* Mir */
    case '3':
        if (p2 == 34 || p2 == 37)
            return n == 15;
        if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39)
            return n >= 14;
        return p4 >= 3528 && p4 <= 3589 && n >= 16;
    case '4':
        return n == 13 || n == 16 || n == 19;
    case '5':
        if (p2 >= 51 && p2 <= 55)
            return n == 16;
        return (p2 == 50 || (p2 >= 56 && p2 <= 58)) && n >= 13;
    case '6':
        if (p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65 ||
            (p6 >= 622126 && p6 <= 622925) || p2 == 62)
            return n >= 16;
        return (p2 == 63 || p2 == 67) && n >= 13;
    default:
        return false;
    }
}

bool card_valid(const unsigned char *d, size_t n)
{
    return n >= 13 && n <= 19 && iin_ok(d, n) && det_luhn(d, n);
}

/* A bare run of 13-19, or a group that starts a run of groups holding 13 digits or more
 * (counted cheaply here, before the groups are read). */
bool card_shape(const scan *s, size_t i, size_t w)
{
    size_t len = w - i, nd = len, j = w;
    unsigned char sep = at(s, w);
    if (len >= 13 && len <= 19)
        return true;
    if (len < 3 || len > 8 || !group_sep(sep))
        return false;
    while (nd < 13 && at(s, j) == sep && is_digit(at(s, j + 1))) {
        for (j++; j < s->n && is_digit(s->t[j]); j++)
            nd++;
    }
    return nd >= 13;
}

/* The end of the longest card made of whole groups (the first 3-8 digits, others 2-8) starting at i, or 0. */
static size_t card_at(const scan *s, size_t i)
{
    unsigned char d[19], sep;
    size_t ends[8], counts[8];
    size_t ng = det_groups(s, i, " -.", 8, d, sizeof(d), ends, counts, 8, &sep);
    size_t ok = 0;

    for (size_t q = 0; q < ng; q++) {
        if (counts[q] - (q ? counts[q - 1] : 0) < (q ? 2u : 3u))
            break;
        ok = q + 1;
    }
    for (size_t q = ok; q-- > 1;)
        if (card_valid(d, counts[q]))
            return ends[q];
    return 0;
}

void card_find(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    size_t end;

    if (w - i >= 13) { /* one unseparated run (issuer and Luhn first: most runs fail them) */
        if (w - i <= 19 && card_valid(t + i, w - i) && digit_word(s, i, w) &&
            !(i > 0 && t[i - 1] == '+'))
            det_found(s, DET_CREDIT_CARD, i, w);
        return;
    }
    if (!digit_word(s, i, w))
        return;
    if (i > 0 && t[i - 1] == '+') /* +44 20 ...: a phone number's first group */
        return;
    if (!(end = card_at(s, i)))
        return;
    /* a card that starts inside this one and ends past it widens the match: no digit of
     * either survives whichever wins. Such a card crosses `end` (a group's end), so only
     * when a separator and a digit follow there. */
    for (size_t k = i + 1; k < end && group_sep(at(s, end)) && is_digit(at(s, end + 1)); k++)
        if (is_digit(t[k]) && !is_digit(t[k - 1])) {
            size_t e2 = card_at(s, k);
            if (e2 > end)
                end = e2;
        }
    det_found(s, DET_CREDIT_CARD, i, end);
}

/* ---- us_ssn --------------------------------------------------------------------------- */

/* SSA rules: area not 000, 666 or 900-999, group not 00, serial not 0000; and not the
 * numbers the SSA voided after they were printed (the Woolworth wallet card, the 1940s
 * pamphlet sample). */
bool ssn_valid(const unsigned char *d, size_t n)
{
    unsigned area, group, serial;
    if (n != 9)
        return false;
    for (size_t k = 0; k < 9; k++)
        if (!is_digit(d[k]))
            return false;
    area = det_num(d, 3);
    group = det_num(d + 3, 2);
    serial = det_num(d + 5, 4);
    if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0)
        return false;
    return !(area == 78 && group == 5 && serial == 1120) && /* 078-05-1120 */
           !(area == 219 && group == 9 && serial == 9999);  /* 219-09-9999 */
}

bool ssn_shape(const scan *s, size_t i, size_t w)
{
    return (w - i == 3 && group_sep(at(s, w)) && at(s, i + 6) == at(s, w)) ||
           (w - i == 9 && i == 0 && w == s->n);
}

void ssn_find(scan *s, size_t i, size_t w)
{
    static const unsigned char sizes[] = {3, 2, 4};
    const unsigned char *t = s->t + i;
    unsigned char d[9];
    size_t end;

    /* no digit_word here: ssn_valid and fixed_groups read digits only, and fixed_groups
     * needs a separator right after the first group, so a longer word fails there */
    if (w - i == 9) { /* bare: only when the 9 digits are the whole value */
        if (ssn_valid(t, 9))
            det_found(s, DET_US_SSN, 0, 9);
        return;
    }
    if (!(end = fixed_groups(s, i, sizes, 3, " -.", d)) || (i > 0 && s->t[i - 1] == '+'))
        return;
    if (ssn_valid(d, 9))
        det_found(s, DET_US_SSN, i, end);
}

/* ---- phone ---------------------------------------------------------------------------- */

/* N: a digit 2-9 (NANP area codes and exchanges do not start with 0 or 1). */
static inline bool nanp_n(unsigned char c) { return c >= '2' && c <= '9'; }

/* A NANP number at j: (NXX) NXX-XXXX or NXX s NXX s XXXX. Returns its end, or 0. */
static size_t nanp_at(const scan *s, size_t j)
{
    const unsigned char *t = s->t;
    unsigned char sep;

    if (at(s, j) == '(') {
        if (!nanp_n(at(s, j + 1)) || !det_digits_at(s, j + 1, 3) || at(s, j + 4) != ')')
            return 0;
        j += 5;
        if (at(s, j) == ' ' || at(s, j) == '-')
            j++;
        if (!nanp_n(at(s, j)) || !det_digits_at(s, j, 3) || !group_sep(at(s, j + 3)))
            return 0;
        sep = t[j + 3];
    } else {
        if (!nanp_n(at(s, j)) || !det_digits_at(s, j, 3) || !group_sep(at(s, j + 3)))
            return 0;
        sep = t[j + 3];
        j += 4;
        if (!nanp_n(at(s, j)) || !det_digits_at(s, j, 3) || at(s, j + 3) != sep)
            return 0;
    }
    if (!det_digits_at(s, j + 4, 4))
        return 0;
    j += 8;
    return is_alnum(at(s, j)) ? 0 : j;
}

/* A bare national number under a phone member name: NANP 10 digits (or 11 with the leading
 * 1), or 8-15 digits of E.164 (the '+' and separators already gone). */
bool phone_valid(const unsigned char *d, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!is_digit(d[k]))
            return false;
    if (n == 11 && d[0] == '1')
        d++, n--;
    if (n == 10)
        return nanp_n(d[0]) && nanp_n(d[3]);
    return n >= 8 && n <= 15 && d[0] != '0';
}

bool phone_shape(const scan *s, size_t i, size_t w)
{
    unsigned char c = s->t[i];
    if (c == '+' || c == '(')
        return true;
    return (w - i == 3 || (w - i == 1 && c == '1')) && group_sep(at(s, w));
}

/* At '+': +1 and a NANP number, or E.164 digit groups. */
static void try_e164(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    size_t j = i + 1, nd = 0, end = 0;
    bool paren = false;

    if (i > 0 && (is_alnum(t[i - 1]) || t[i - 1] == '+'))
        return;
    if (!is_digit(at(s, j)) || t[j] == '0')
        return;
    if (t[j] == '1' && group_sep(at(s, j + 1)) && (end = nanp_at(s, j + 2)) != 0) {
        det_found(s, DET_PHONE, i, end);
        return;
    }
    if (t[j] == '1' && (end = nanp_at(s, j + 1)) != 0) { /* +1(415) 555-0123 */
        det_found(s, DET_PHONE, i, end);
        return;
    }
    /* digit groups: single separators between them, one group may be in parentheses; the
     * longest run of whole groups with at most 15 digits (a date or number right after the
     * phone does not hide it) */
    for (;;) {
        if (is_digit(at(s, j))) {
            size_t k = j;
            while (k < s->n && is_digit(t[k]))
                k++;
            if (nd + (k - j) > 15) {
                if (!end)
                    return; /* the first group alone is too long */
                break;
            }
            nd += k - j;
            j = end = k;
        } else if (at(s, j) == '(' && !paren && is_digit(at(s, j + 1))) {
            size_t k = j + 1;
            while (k < s->n && is_digit(t[k]))
                k++;
            if (at(s, k) != ')' || nd + (k - j - 1) > 15)
                break;
            nd += k - j - 1;
            paren = true;
            j = end = k + 1;
        } else {
            break;
        }
        if (group_sep(at(s, j)) && (is_digit(at(s, j + 1)) || (at(s, j + 1) == '(' && !paren)))
            j++;
        else
            break;
    }
    if (nd < 8 || is_alnum(at(s, end)))
        return;
    det_found(s, DET_PHONE, i, end);
}

void phone_find(scan *s, size_t i, size_t w)
{
    size_t end;
    unsigned char c = s->t[i];

    if (c == '+') {
        try_e164(s, i);
        return;
    }
    if (c == '(') {
        if (!alnum_before(s, i) && (end = nanp_at(s, i)) != 0)
            det_found(s, DET_PHONE, i, end);
        return;
    }
    if (i > 0 && s->t[i - 1] == '+') /* E.164: the '+' trigger reads it */
        return;
    if (w - i == 1) { /* the country code 1 */
        if ((end = nanp_at(s, i + 2)) != 0)
            det_found(s, DET_PHONE, i, end);
        return;
    }
    if ((end = nanp_at(s, i)) != 0)
        det_found(s, DET_PHONE, i, end);
}

/* ---- ca_sin --------------------------------------------------------------------------- */

/* Nine digits, Luhn; the first digit is not 0 (unassigned) or 8 (business numbers), and not
 * all nine the same. */
bool sin_valid(const unsigned char *d, size_t n)
{
    bool same = true;
    if (n != 9 || d[0] == '0' || d[0] == '8')
        return false;
    for (size_t k = 0; k < 9; k++) {
        if (!is_digit(d[k]))
            return false;
        same &= d[k] == d[0];
    }
    return !same && det_luhn(d, 9);
}

bool sin_shape(const scan *s, size_t i, size_t w)
{
    return w - i == 3 && (at(s, w) == ' ' || at(s, w) == '-') && at(s, i + 7) == at(s, w);
}

/* NNN-NNN-NNN or NNN NNN NNN (one separator kind); bare 9 digits are too often other ids
 * (they count with a member name, see docs/detectors.md). */
void sin_find(scan *s, size_t i, size_t w)
{
    static const unsigned char sizes[] = {3, 3, 3};
    unsigned char d[9];
    size_t end;

    MM_UNUSED(w); /* fixed_groups reads the word's digits (see ssn_find) */
    if ((end = fixed_groups(s, i, sizes, 3, " -", d)) && sin_valid(d, 9))
        det_found(s, DET_CA_SIN, i, end);
}

/* ---- in_aadhaar ----------------------------------------------------------------------- */

/* Verhoeff (dihedral group D5): the tables of the published algorithm. */
static const unsigned char verhoeff_d[10][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
    {2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
    {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
    {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
    {8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
static const unsigned char verhoeff_p[8][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
    {5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
    {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
    {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}};

/* Twelve digits, the first 2-9 (UIDAI issues none starting 0 or 1), Verhoeff-valid, not a
 * palindrome-like all-same run. */
bool aadhaar_valid(const unsigned char *d, size_t n)
{
    unsigned c = 0;
    bool same = true;
    if (n != 12 || d[0] < '2' || d[0] > '9')
        return false;
    for (size_t k = 0; k < 12; k++) {
        unsigned v = (unsigned)(d[11 - k] - '0');
        if (v > 9)
            return false;
        c = verhoeff_d[c][verhoeff_p[k & 7][v]];
    }
    if (c != 0)
        return false;
    for (size_t k = 1; k < 12; k++) /* checked only for the one number in ten that passes */
        same &= d[k] == d[0];
    return !same;
}

bool aadhaar_shape(const scan *s, size_t i, size_t w)
{
    return w - i == 4 && (at(s, w) == ' ' || at(s, w) == '-') && at(s, i + 9) == at(s, w);
}

/* NNNN NNNN NNNN or NNNN-NNNN-NNNN; bare 12 digits only with a member name. */
void aadhaar_find(scan *s, size_t i, size_t w)
{
    static const unsigned char sizes[] = {4, 4, 4};
    unsigned char d[12];
    size_t end;

    MM_UNUSED(w); /* fixed_groups reads the word's digits (see ssn_find) */
    if ((end = fixed_groups(s, i, sizes, 3, " -", d)) && aadhaar_valid(d, 12))
        det_found(s, DET_IN_AADHAAR, i, end);
}
