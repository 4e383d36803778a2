/* lib/mask: the built-in detectors and custom PCRE2 patterns.
 *
 * Built-ins are hand-written scanners, not regexes: one pass over the text in which only
 * bytes that can start a value trigger a check, so text with nothing sensitive costs a table
 * lookup per byte. What each detector accepts (all need a boundary: the bytes before and
 * after are not ASCII letters or digits):
 *  - credit_card: 13-19 digits, optionally grouped by single spaces or dashes, Luhn-valid
 *    AND with an issuer prefix valid for that length (Visa 4: 13/16/19; Mastercard 51-55,
 *    2221-2720: 16; Amex 34/37: 15; Discover 6011, 644-649, 65, 622126-622925: 16-19;
 *    Diners 300-305, 36, 38-39: 14-19; JCB 3528-3589: 16-19; UnionPay 62: 16-19; Maestro 50,
 *    56-58, 63, 67: 12-19). So 13-digit millisecond timestamps (they start with 1) and
 *    Luhn-valid order numbers are not cards. A card inside a longer digit run is not a card.
 *  - us_ssn: NNN-NN-NNNN or NNN NN NNNN; bare NNNNNNNNN only when it is the whole value.
 *    Area not 000, 666 or 900-999; group not 00; serial not 0000.
 *  - email: local@domain.tld; local part of [A-Za-z0-9._%+-] not starting or ending with a
 *    dot; domain labels of [A-Za-z0-9-]; a TLD of at least two letters.
 *  - phone: E.164 (+ and 8-15 digits, single spaces, dashes, dots or parentheses between
 *    groups) and NANP written as a phone number: (NXX) NXX-XXXX, NXX-NXX-XXXX, NXX.NXX.XXXX,
 *    NXX NXX XXXX, optionally after 1- / 1 / +1 (N is 2-9). Bare 10-digit runs are not
 *    phones: too many ids look like them.
 *  - iban: a country code with its registered length, two check digits, the BBAN (single
 *    spaces every four allowed); mod 97 must be 1.
 *  - ipv4: four 0-255 octets without leading zeros, not part of a longer dotted run
 *    (version 1.2.3.4.5 is not an address).
 *  - ipv6: a run of hex digits, colons and dots with at least two colons that inet_pton
 *    accepts (times like 10:30:00 and MAC addresses are rejected by it).
 *  - jwt: eyJ... three base64url segments; the header must decode to a JSON object with
 *    "alg".
 *  - aws_access_key: AKIA, ASIA, AGPA, AIDA, AROA, AIPA, ANPA, ANVA, ABIA or ACCA followed
 *    by 16 of [A-Z2-7].
 *  - bearer_token: "Bearer" (any case), spaces, then a token of at least 16 characters of
 *    [A-Za-z0-9-._~+/] and optional '=' padding. The match is the token only, so the scheme
 *    stays readable ("Bearer [REDACTED]").
 */
#include "mask/mask_int.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define DET_MAX_PATTERNS 256
#define DET_MAX_MATCHES 65536 /* per scanned value: a bound, not a realistic count */

static const char *const names[DET_BUILTIN_COUNT] = {
    "credit_card", "us_ssn", "email", "phone", "iban",
    "ipv4", "ipv6", "jwt", "aws_access_key", "bearer_token",
};

int det_lookup(const char *name)
{
    for (int i = 0; i < DET_BUILTIN_COUNT; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *det_name(det_id id)
{
    return (unsigned)id < DET_BUILTIN_COUNT ? names[id] : "?";
}

typedef struct {
    char *name;
    pcre2_code *code;
    bool jit;
    int tag;
} pattern;

struct det_set {
    bool on[DET_BUILTIN_COUNT];
    int tag[DET_BUILTIN_COUNT];
    pattern *pats;
    size_t n_pats;
    bool compiled;
};

struct det_scratch {
    pcre2_match_data **md; /* one per pattern */
    size_t n_md;
    det_match *m; /* matches of the value being scanned, sorted before reporting */
    size_t n, cap;
};

static void init_classes(void);
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

mm_err det_set_new(det_set **out)
{
    pthread_once(&classes_once, init_classes);
    return (*out = mm_calloc(1, sizeof(**out))) ? MM_OK : MM_ENOMEM;
}

void det_set_free(det_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_pats; i++) {
        mm_free(s->pats[i].name);
        pcre2_code_free(s->pats[i].code);
    }
    mm_free(s->pats);
    mm_free(s);
}

mm_err det_set_add_builtin(det_set *s, det_id id, int tag)
{
    if ((unsigned)id >= DET_BUILTIN_COUNT)
        return MM_EINVAL;
    if (!s->on[id]) { /* the first (lowest) tag keeps it: precedence */
        s->on[id] = true;
        s->tag[id] = tag;
    }
    return MM_OK;
}

mm_err det_set_add_pattern(det_set *s, const char *name, const char *regex, int tag,
                           mm_errbuf *eb)
{
    int code;
    PCRE2_SIZE off;
    pattern *p;

    if (s->n_pats == DET_MAX_PATTERNS)
        return mm_errf(eb, MM_ELIMIT, "more than %d patterns", DET_MAX_PATTERNS);
    p = mm_realloc(s->pats, (s->n_pats + 1) * sizeof(*p));
    if (!p)
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    s->pats = p;
    p = &s->pats[s->n_pats];
    memset(p, 0, sizeof(*p));
    if (!(p->name = mm_strdup(name)))
        return mm_errf(eb, MM_ENOMEM, "out of memory");
    p->code = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!p->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof(msg));
        mm_free(p->name);
        return mm_errf(eb, MM_EINVAL, "pattern %s: %s at offset %zu", name, (const char *)msg,
                       (size_t)off);
    }
    /* JIT when the platform has it; the interpreter gives the same answers, slower.
     * MM_PCRE2_NO_JIT=1 turns it off for valgrind, which cannot follow JIT-made code. */
    const char *nojit = getenv("MM_PCRE2_NO_JIT");
    p->jit = !(nojit && *nojit == '1') && pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE) == 0;
    p->tag = tag;
    s->n_pats++;
    return MM_OK;
}

mm_err det_set_compile(det_set *s, mm_errbuf *eb)
{
    MM_UNUSED(eb);
    s->compiled = true;
    return MM_OK;
}

bool det_set_empty(const det_set *s)
{
    if (s->n_pats)
        return false;
    for (int i = 0; i < DET_BUILTIN_COUNT; i++)
        if (s->on[i])
            return false;
    return true;
}

mm_err det_scratch_new(const det_set *s, det_scratch **out)
{
    det_scratch *sc = mm_calloc(1, sizeof(*sc));
    if (!sc)
        return MM_ENOMEM;
    if (s->n_pats) {
        if (!(sc->md = mm_calloc(s->n_pats, sizeof(*sc->md))))
            goto nomem;
        sc->n_md = s->n_pats;
        for (size_t i = 0; i < s->n_pats; i++)
            if (!(sc->md[i] = pcre2_match_data_create_from_pattern(s->pats[i].code, NULL)))
                goto nomem;
    }
    *out = sc;
    return MM_OK;
nomem:
    det_scratch_free(sc);
    return MM_ENOMEM;
}

void det_scratch_free(det_scratch *sc)
{
    if (!sc)
        return;
    for (size_t i = 0; i < sc->n_md; i++)
        pcre2_match_data_free(sc->md[i]);
    mm_free(sc->md);
    mm_free(sc->m);
    mm_free(sc);
}

/* ---- character classes ---------------------------------------------------------------- */

enum { C_DIGIT = 1, C_UPPER = 2, C_LOWER = 4, C_HEXL = 8, C_LOCAL = 16, C_B64U = 32,
       C_TOKEN = 64, C_TRIG = 128 };

/* C_TRIG: bytes at which some detector may start or anchor ('+', '(', '@', ':'). */
static unsigned char cls[256];

static void init_classes(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char v = 0;
        if (c >= '0' && c <= '9')
            v |= C_DIGIT | C_HEXL | C_LOCAL | C_B64U | C_TOKEN;
        if (c >= 'A' && c <= 'Z')
            v |= C_UPPER | C_LOCAL | C_B64U | C_TOKEN;
        if (c >= 'a' && c <= 'z')
            v |= C_LOWER | C_LOCAL | C_B64U | C_TOKEN;
        if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            v |= C_HEXL;
        if (c == '.' || c == '_' || c == '%' || c == '+' || c == '-')
            v |= C_LOCAL;
        if (c == '-' || c == '_')
            v |= C_B64U;
        if (c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/')
            v |= C_TOKEN;
        if (c == '+' || c == '(' || c == '@' || c == ':')
            v |= C_TRIG;
        cls[c] = v;
    }
}

static inline bool is_digit(unsigned char c) { return cls[c] & C_DIGIT; }
static inline bool is_alnum(unsigned char c) { return cls[c] & (C_DIGIT | C_UPPER | C_LOWER); }
static inline bool is_upper(unsigned char c) { return cls[c] & C_UPPER; }

/* ---- validators ----------------------------------------------------------------------- */

static bool luhn(const char *d, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int v = d[n - 1 - i] - '0';
        if (i & 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

static unsigned prefix_num(const char *d, size_t k)
{
    unsigned v = 0;
    for (size_t i = 0; i < k; i++)
        v = v * 10 + (unsigned)(d[i] - '0');
    return v;
}

/* Issuer identification: is this prefix issued for this length? */
static bool iin_ok(const char *d, size_t n)
{
    unsigned p1 = prefix_num(d, 1), p2 = prefix_num(d, 2), p3 = prefix_num(d, 3),
             p4 = prefix_num(d, 4), p6 = n >= 6 ? prefix_num(d, 6) : 0;

    if (p1 == 4)
        return n == 13 || n == 16 || n == 19;
    if (p2 >= 51 && p2 <= 55)
        return n == 16;
    if (p4 >= 2221 && p4 <= 2720)
        return n == 16;
    if (p2 == 34 || p2 == 37)
        return n == 15;
    if (p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65 || (p6 >= 622126 && p6 <= 622925))
        return n >= 16 && n <= 19;
    if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39)
        return n >= 14 && n <= 19;
    if (p4 >= 3528 && p4 <= 3589)
        return n >= 16 && n <= 19;
    if (p2 == 62)
        return n >= 16 && n <= 19;
    if (p2 == 50 || (p2 >= 56 && p2 <= 58) || p2 == 63 || p2 == 67)
        return n >= 12 && n <= 19;
    return false;
}

/* ---- the scanners --------------------------------------------------------------------- */

typedef struct {
    const det_set *set;
    det_scratch *sc;
    const unsigned char *t;
    size_t n;
    mm_err rc;
} scan;

static void add(scan *s, size_t start, size_t end, int tag, const char *name)
{
    det_scratch *sc = s->sc;
    if (s->rc != MM_OK)
        return;
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        det_match *m;
        if (cap > DET_MAX_MATCHES) {
            s->rc = MM_ELIMIT;
            return;
        }
        if (!(m = mm_realloc(sc->m, cap * sizeof(*m)))) {
            s->rc = MM_ENOMEM;
            return;
        }
        sc->m = m;
        sc->cap = cap;
    }
    sc->m[sc->n++] = (det_match){.start = start, .end = end, .tag = tag, .name = name};
}

static void add_builtin(scan *s, size_t start, size_t end, det_id id)
{
    add(s, start, end, s->set->tag[id], names[id]);
}

static bool boundary_before(const scan *s, size_t i)
{
    return i == 0 || !is_alnum(s->t[i - 1]);
}

static bool boundary_after(const scan *s, size_t i)
{
    return i >= s->n || !is_alnum(s->t[i]);
}

/* Digits with single separators from `seps`, starting at i. Returns the end; the digits go
 * to d (up to max). */
static size_t digit_run(const scan *s, size_t i, const char *seps, char *d, size_t max,
                        size_t *nd)
{
    size_t end = i;
    *nd = 0;
    while (i < s->n) {
        if (is_digit(s->t[i])) {
            if (*nd == max) {
                *nd = max + 1; /* too long */
                return i;
            }
            d[(*nd)++] = (char)s->t[i++];
            end = i;
        } else if ((s->t[i] == seps[0] || s->t[i] == seps[1] || s->t[i] == seps[2]) &&
                   s->t[i] && i + 1 < s->n && is_digit(s->t[i + 1]) && i > 0 &&
                   is_digit(s->t[i - 1])) {
            i++;
        } else {
            break;
        }
    }
    return end;
}

static bool try_card(scan *s, size_t i)
{
    char d[20];
    size_t nd, end = digit_run(s, i, " --", d, 19, &nd);
    if (nd < 12 || nd > 19 || !boundary_after(s, end))
        return false;
    if (!iin_ok(d, nd) || !luhn(d, nd))
        return false;
    add_builtin(s, i, end, DET_CREDIT_CARD);
    return true;
}

static bool ssn_ok(const char *d)
{
    unsigned area = prefix_num(d, 3), group = prefix_num(d + 3, 2), serial = prefix_num(d + 5, 4);
    return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

static bool try_ssn(scan *s, size_t i)
{
    const unsigned char *t = s->t + i;
    size_t left = s->n - i;
    char d[9];

    if (left >= 11 && (t[3] == '-' || t[3] == ' ') && t[6] == t[3]) {
        for (int k = 0, j = 0; k < 11; k++) {
            if (k == 3 || k == 6)
                continue;
            if (!is_digit(t[k]))
                return false;
            d[j++] = (char)t[k];
        }
        if (!boundary_after(s, i + 11) || (i + 11 < s->n && s->t[i + 11] == t[3] &&
                                           i + 12 < s->n && is_digit(s->t[i + 12])))
            return false;
        if (!ssn_ok(d))
            return false;
        add_builtin(s, i, i + 11, DET_US_SSN);
        return true;
    }
    if (i == 0 && s->n == 9) { /* bare digits only when they are the whole value */
        for (int k = 0; k < 9; k++) {
            if (!is_digit(t[k]))
                return false;
            d[k] = (char)t[k];
        }
        if (!ssn_ok(d))
            return false;
        add_builtin(s, 0, 9, DET_US_SSN);
        return true;
    }
    return false;
}

/* NANP at i: (NXX) NXX-XXXX | NXX[-. ]NXX[-. ]XXXX, optionally after 1- / 1 / 1. */
static bool try_nanp(scan *s, size_t i, size_t start)
{
    const unsigned char *t = s->t;
    size_t j = i;
    char sep;

    if (j < s->n && t[j] == '(') {
        if (j + 5 > s->n || !is_digit(t[j + 1]) || t[j + 1] < '2' || !is_digit(t[j + 2]) ||
            !is_digit(t[j + 3]) || t[j + 4] != ')')
            return false;
        j += 5;
        if (j < s->n && (t[j] == ' ' || t[j] == '-'))
            j++;
        sep = '-';
        if (j + 8 > s->n || !is_digit(t[j]) || t[j] < '2' || !is_digit(t[j + 1]) ||
            !is_digit(t[j + 2]) || (t[j + 3] != '-' && t[j + 3] != '.' && t[j + 3] != ' '))
            return false;
        sep = (char)t[j + 3];
    } else {
        if (j + 12 > s->n || t[j] < '2' || !is_digit(t[j]) || !is_digit(t[j + 1]) ||
            !is_digit(t[j + 2]))
            return false;
        sep = (char)t[j + 3];
        if (sep != '-' && sep != '.' && sep != ' ')
            return false;
        j += 4;
        if (t[j] < '2' || !is_digit(t[j]) || !is_digit(t[j + 1]) || !is_digit(t[j + 2]) ||
            t[j + 3] != sep)
            return false;
    }
    if (j + 8 > s->n)
        return false;
    for (int k = 4; k < 8; k++)
        if (!is_digit(t[j + k]))
            return false;
    if (t[j] < '2' || !is_digit(t[j]) || !is_digit(t[j + 1]) || !is_digit(t[j + 2]) ||
        t[j + 3] != sep)
        return false;
    j += 8;
    if (!boundary_after(s, j) || (j + 1 < s->n && (t[j] == '-' || t[j] == '.') && is_digit(t[j + 1])))
        return false;
    add_builtin(s, start, j, DET_PHONE);
    return true;
}

static bool try_phone_digit(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    /* 1-NXX-NXX-XXXX / 1 (NXX) ... */
    if (t[i] == '1' && i + 2 < s->n && (t[i + 1] == '-' || t[i + 1] == ' ' || t[i + 1] == '.') &&
        try_nanp(s, i + 2, i))
        return true;
    return try_nanp(s, i, i);
}

static bool try_e164(scan *s, size_t i) /* t[i] == '+' */
{
    const unsigned char *t = s->t;
    char d[16];
    size_t nd, j = i + 1, end;

    if (j + 1 < s->n && t[j] == '1') { /* +1 (415) 555-0123, +1-415-555-0123 */
        size_t k = j + 1;
        if (t[k] == ' ' || t[k] == '-' || t[k] == '.')
            k++;
        if (k < s->n && (t[k] == '(' || is_digit(t[k])) && try_nanp(s, k, i))
            return true;
    }
    end = digit_run(s, j, " -.", d, 15, &nd);
    if (nd < 8 || nd > 15 || d[0] == '0' || !boundary_after(s, end))
        return false;
    add_builtin(s, i, end, DET_PHONE);
    return true;
}

static bool try_ipv4(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    size_t j = i;
    if (i > 0 && (t[i - 1] == '.' || is_alnum(t[i - 1])))
        return false;
    for (int oct = 0; oct < 4; oct++) {
        unsigned v = 0;
        size_t k = 0;
        if (oct && (j >= s->n || t[j++] != '.'))
            return false;
        while (j < s->n && is_digit(t[j]) && k < 4) {
            v = v * 10 + (unsigned)(t[j] - '0');
            j++;
            k++;
        }
        if (k == 0 || k > 3 || v > 255 || (k > 1 && t[j - k] == '0'))
            return false;
    }
    if (j < s->n && (is_alnum(t[j]) || (t[j] == '.' && j + 1 < s->n && is_digit(t[j + 1]))))
        return false;
    add_builtin(s, i, j, DET_IPV4);
    return true;
}

/* At a word start of hex digits or ':'. */
static bool try_ipv6(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    size_t j = i, colons = 0;
    char buf[48];
    unsigned char addr[16];

    if (i > 0 && (t[i - 1] == ':' || t[i - 1] == '.' || is_alnum(t[i - 1])))
        return false;
    /* cheap reject first: an address has a ':' within its first five bytes */
    {
        size_t k = i;
        while (k < s->n && k - i < 4 && (cls[t[k]] & C_HEXL))
            k++;
        if (k >= s->n || t[k] != ':')
            return false;
    }
    while (j < s->n && ((cls[t[j]] & C_HEXL) || t[j] == ':' || t[j] == '.')) {
        colons += t[j] == ':';
        j++;
        if (j - i > 45)
            return false;
    }
    while (j > i && t[j - 1] == '.') /* a sentence's full stop */
        j--;
    if (colons < 2 || (j < s->n && is_alnum(t[j])))
        return false;
    memcpy(buf, t + i, j - i);
    buf[j - i] = '\0';
    if (inet_pton(AF_INET6, buf, addr) != 1)
        return false;
    add_builtin(s, i, j, DET_IPV6);
    return true;
}

/* Email anchored at '@' (t[at] == '@'). */
static bool try_email(scan *s, size_t at)
{
    const unsigned char *t = s->t;
    size_t a = at, j = at + 1, dots = 0, last_label = 0, tld = 0;

    /* RFC 5321 bounds (64-byte local part, 253-byte domain) also keep a hostile run of
     * letters and '@'s linear */
    while (a > 0 && at - a < 64 && (cls[t[a - 1]] & C_LOCAL))
        a--;
    while (a < at && t[a] == '.')
        a++;
    if (a == at || t[at - 1] == '.')
        return false;
    for (;;) {
        size_t ls = j;
        while (j < s->n && (is_alnum(t[j]) || t[j] == '-'))
            j++;
        if (j == ls || t[ls] == '-' || t[j - 1] == '-')
            break;
        last_label = ls;
        tld = j - ls;
        if (j - at > 253)
            return false;
        if (j + 1 < s->n && t[j] == '.' && is_alnum(t[j + 1])) {
            j++;
            dots++;
            continue;
        }
        break;
    }
    if (dots == 0 || tld < 2)
        return false;
    for (size_t k = last_label; k < last_label + tld; k++)
        if (!(cls[t[k]] & (C_UPPER | C_LOWER)))
            return false;
    add_builtin(s, a, last_label + tld, DET_EMAIL);
    return true;
}

static const struct {
    char cc[3];
    unsigned char len;
} iban_lengths[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16},
    {"BG", 22}, {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28},
    {"CZ", 24}, {"DE", 22}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24},
    {"FI", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18},
    {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23},
    {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32},
    {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24}, {"ME", 22},
    {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24},
    {"SC", 31}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28},
    {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

static bool try_iban(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    char c[34];
    size_t nc = 0, j = i, want = 0;
    unsigned mod = 0;

    if (i + 4 > s->n || !is_upper(t[i + 1]) || !is_digit(t[i + 2]) || !is_digit(t[i + 3]))
        return false;
    for (size_t k = 0; k < MM_ARRAY_LEN(iban_lengths); k++)
        if (iban_lengths[k].cc[0] == (char)t[i] && iban_lengths[k].cc[1] == (char)t[i + 1]) {
            want = iban_lengths[k].len;
            break;
        }
    if (!want)
        return false;
    while (j < s->n && nc < want) {
        if (is_digit(t[j]) || is_upper(t[j]))
            c[nc++] = (char)t[j++];
        else if (t[j] == ' ' && nc % 4 == 0 && j + 1 < s->n && is_alnum(t[j + 1]))
            j++;
        else
            break;
    }
    if (nc != want || !boundary_after(s, j))
        return false;
    /* mod 97 of BBAN + country + check, letters as 10..35 */
    for (size_t k = 0; k < nc; k++) {
        char ch = c[(k + 4) % nc];
        if (ch >= 'A')
            mod = (mod * 100 + (unsigned)(ch - 'A' + 10)) % 97;
        else
            mod = (mod * 10 + (unsigned)(ch - '0')) % 97;
    }
    if (mod != 1)
        return false;
    add_builtin(s, i, j, DET_IBAN);
    return true;
}

static bool try_aws(scan *s, size_t i)
{
    static const char prefixes[][5] = {"AKIA", "ASIA", "AGPA", "AIDA", "AROA",
                                       "AIPA", "ANPA", "ANVA", "ABIA", "ACCA"};
    const unsigned char *t = s->t;
    bool ok = false;
    if (i + 20 > s->n)
        return false;
    for (size_t k = 0; k < MM_ARRAY_LEN(prefixes) && !ok; k++)
        ok = memcmp(t + i, prefixes[k], 4) == 0;
    if (!ok)
        return false;
    for (size_t k = 4; k < 20; k++)
        if (!is_upper(t[i + k]) && !(t[i + k] >= '2' && t[i + k] <= '7'))
            return false;
    if (!boundary_after(s, i + 20))
        return false;
    add_builtin(s, i, i + 20, DET_AWS_ACCESS_KEY);
    return true;
}

static int b64u_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || c == '+')
        return 62;
    if (c == '_' || c == '/')
        return 63;
    return -1;
}

static bool try_jwt(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    size_t j = i, seg_start[3], seg_len[3];
    char hdr[192];
    size_t hn = 0;

    if (i + 3 > s->n || t[i] != 'e' || t[i + 1] != 'y' || t[i + 2] != 'J')
        return false;
    for (int k = 0; k < 3; k++) {
        seg_start[k] = j;
        while (j < s->n && (cls[t[j]] & C_B64U))
            j++;
        seg_len[k] = j - seg_start[k];
        if (k < 2) {
            if (j >= s->n || t[j] != '.')
                return false;
            j++;
        }
    }
    if (seg_len[0] < 10 || seg_len[1] < 2 || (j < s->n && (t[j] == '.' || t[j] == '=')))
        return false;
    /* decode the header (bounded) and look for a JSON object with "alg" */
    uint32_t acc = 0;
    int bits = 0;
    for (size_t k = 0; k < seg_len[0] && hn < sizeof(hdr) - 1; k++) {
        int v = b64u_val(t[seg_start[0] + k]);
        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            hdr[hn++] = (char)((acc >> bits) & 0xFF);
        }
    }
    hdr[hn] = '\0';
    if (hdr[0] != '{' || !strstr(hdr, "\"alg\""))
        return false;
    add_builtin(s, i, j, DET_JWT);
    return true;
}

/* "Bearer" at i (any case), then the token. */
static bool try_bearer(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    size_t j = i + 6, start;
    if (i + 7 > s->n || strncasecmp((const char *)t + i, "bearer", 6) != 0 || t[j] != ' ')
        return false;
    while (j < s->n && t[j] == ' ')
        j++;
    start = j;
    while (j < s->n && (cls[t[j]] & C_TOKEN))
        j++;
    if (j - start < 16)
        return false;
    while (j < s->n && t[j] == '=')
        j++;
    if (!boundary_after(s, j))
        return false;
    add_builtin(s, start, j, DET_BEARER_TOKEN);
    return true;
}

static void scan_builtins(scan *s)
{
    const det_set *set = s->set;
    const unsigned char *t = s->t;
    size_t i = 0, n = s->n;
    const bool any_digit = set->on[DET_CREDIT_CARD] || set->on[DET_US_SSN] ||
                           set->on[DET_PHONE] || set->on[DET_IPV4];

    while (i < n) {
        unsigned char c = t[i], k = cls[c];
        if (!(k & (C_DIGIT | C_UPPER | C_LOWER | C_TRIG))) {
            i++;
            continue;
        }
        if (k & C_TRIG) {
            size_t before = s->sc->n, next = i + 1;
            if (c == '@' && set->on[DET_EMAIL])
                try_email(s, i);
            else if (c == '+' && set->on[DET_PHONE] && boundary_before(s, i))
                try_e164(s, i);
            else if (c == '(' && set->on[DET_PHONE])
                try_nanp(s, i, i);
            else if (c == ':' && set->on[DET_IPV6] && i + 1 < n && t[i + 1] == ':' &&
                     (i == 0 || !(cls[t[i - 1]] & C_HEXL)))
                try_ipv6(s, i);
            /* past what matched here, so "+1 (415) ..." is not read again from "(" */
            for (size_t m = before; m < s->sc->n; m++)
                if (s->sc->m[m].end > next)
                    next = s->sc->m[m].end;
            i = next;
            continue;
        }
        /* a word start: try what may begin here, then skip the word, or past what matched
         * (so the inner groups of a card are not read again as something else) */
        size_t w = i, before = s->sc->n;
        if (k & C_DIGIT) {
            if (any_digit) {
                /* the leading digit group and what follows it decide which checks can
                 * match at all: most digit words (amounts, ids, timestamps) need none */
                size_t d = i;
                while (d < n && d - i < 20 && is_digit(t[d]))
                    d++;
                size_t g = d - i;
                unsigned char nx = d < n ? t[d] : 0;
                bool sep = nx == ' ' || nx == '-';
                if (set->on[DET_CREDIT_CARD] && ((g >= 12 && g <= 19) || (sep && g <= 6)))
                    try_card(s, i);
                if (set->on[DET_US_SSN] && ((g == 3 && sep) || (i == 0 && n == 9 && g == 9)))
                    try_ssn(s, i);
                if (set->on[DET_PHONE] && ((g == 3 && (sep || nx == '.')) ||
                                           (g == 1 && t[i] == '1' && (sep || nx == '.'))))
                    try_phone_digit(s, i);
                if (set->on[DET_IPV4] && g <= 3 && nx == '.')
                    try_ipv4(s, i);
            }
        } else if (c == 'e' && set->on[DET_JWT]) {
            try_jwt(s, i);
        } else if (c == 'A' && set->on[DET_AWS_ACCESS_KEY]) {
            try_aws(s, i);
        } else if ((c | 0x20) == 'b' && set->on[DET_BEARER_TOKEN]) {
            try_bearer(s, i);
        }
        if ((k & C_UPPER) && set->on[DET_IBAN])
            try_iban(s, i);
        if ((k & C_HEXL) && set->on[DET_IPV6])
            try_ipv6(s, i);
        for (size_t m = before; m < s->sc->n; m++)
            if (s->sc->m[m].end > w)
                w = s->sc->m[m].end;
        while (w < n && is_alnum(t[w]))
            w++;
        i = w;
    }
}

static void scan_patterns(scan *s)
{
    for (size_t p = 0; p < s->set->n_pats && s->rc == MM_OK; p++) {
        const pattern *pt = &s->set->pats[p];
        pcre2_match_data *md = s->sc->md[p];
        PCRE2_SIZE off = 0;
        while (off <= s->n) {
            int r = pt->jit ? pcre2_jit_match(pt->code, s->t, s->n, off, 0, md, NULL)
                            : pcre2_match(pt->code, s->t, s->n, off, 0, md, NULL);
            if (r < 0) {
                if (r != PCRE2_ERROR_NOMATCH)
                    s->rc = MM_EINVAL; /* match limit and the like: refuse, do not pass */
                break;
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (ov[1] > ov[0])
                add(s, ov[0], ov[1], pt->tag, pt->name);
            off = ov[1] > ov[0] ? ov[1] : ov[0] + 1; /* empty matches move on */
        }
    }
}

mm_err det_scan(const det_set *set, det_scratch *sc, const char *text, size_t n, det_match_fn cb,
                void *ctx)
{
    scan s = {.set = set, .sc = sc, .t = (const unsigned char *)text, .n = n, .rc = MM_OK};
    mm_err rc;

    sc->n = 0;
    scan_builtins(&s);
    if (set->n_pats)
        scan_patterns(&s);
    if (s.rc != MM_OK)
        return s.rc;
    /* insertion sort by (start, tag): a handful of matches per value */
    for (size_t i = 1; i < sc->n; i++) {
        det_match m = sc->m[i];
        size_t j = i;
        while (j > 0 && (sc->m[j - 1].start > m.start ||
                         (sc->m[j - 1].start == m.start && sc->m[j - 1].tag > m.tag))) {
            sc->m[j] = sc->m[j - 1];
            j--;
        }
        sc->m[j] = m;
    }
    for (size_t i = 0; i < sc->n; i++)
        if ((rc = cb(ctx, &sc->m[i])) != MM_OK)
            return rc;
    return MM_OK;
}
