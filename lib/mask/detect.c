/* lib/mask: the built-in detectors and custom PCRE2 patterns.
 *
 * Built-ins are hand-written scanners, not regexes. One pass over the text: a per-set byte
 * table marks the bytes where an enabled detector can start (a letter or digit opening a
 * word, and '+', '(', '@', ':'); other bytes cost one table lookup. At a word start the word
 * is skipped once, and its first byte, length and the byte after it decide which checks can
 * match at all, so most words (amounts, dates, names, ids) run none. Nothing is allocated
 * unless something matches.
 *
 * What each detector accepts. "Boundary" means the bytes before and after the match are not
 * ASCII letters or digits (bytes of other UTF-8 characters count as boundaries).
 *  - credit_card: 13-19 digits, Luhn-valid, with an issuer prefix issued for that length:
 *      Visa 4: 13, 16, 19 | Mastercard 51-55, 2221-2720: 16 | Amex 34, 37: 15
 *      Discover 6011, 644-649, 65, 622126-622925: 16-19 | Diners 300-305, 36, 38-39: 14-19
 *      JCB 3528-3589: 16-19 | UnionPay 62: 16-19 | Mir 2200-2204: 16-19
 *      Maestro 50, 56-58, 63, 67: 13-19 (12-digit Maestro cards are left out: too many ids)
 *    so 13-digit millisecond timestamps (they start with 1) and Luhn-valid order numbers
 *    without an issuer prefix are not cards. Written either as one run of digits with
 *    boundaries (a card inside a longer digit run is not a card), or as groups of 3-6 digits
 *    joined by one kind of separator, a single space or a single dash ("4111 1111 1111 1111",
 *    "3782-822463-10005"). A grouped card starts the group run (an inner group of a longer
 *    run is not a start) and is its longest prefix of whole groups that is a valid card, so
 *    "4111 1111 1111 1111 123" (a CVV after it) still finds the card. Digits right after a
 *    '+' are a phone number, not a card.
 *  - us_ssn: NNN-NN-NNNN or NNN NN NNNN (one separator kind), not inside a longer run of
 *    digit groups; bare NNNNNNNNN only when those 9 digits are the whole scanned value (a JSON
 *    string or number that is just the SSN), as Presidio does: bare 9-digit runs in text are
 *    ids and amounts too often. Area not 000, 666 or 900-999; group not 00; serial not 0000.
 *  - email: local@domain.tld. Local part of [A-Za-z0-9._%+-], at most 64 bytes, no leading,
 *    trailing or double dot; domain of dot-separated labels of [A-Za-z0-9-] not starting or
 *    ending with '-', at least two labels, at most 253 bytes; the last label (TLD) is at
 *    least two letters.
 *  - phone: E.164, '+' then 8-15 digits (the first not 0) in groups separated by single
 *    spaces, dashes or dots, one group optionally in parentheses ("+44 (20) 7946 0958"); and
 *    NANP written as a phone number: (NXX) NXX-XXXX, NXX-NXX-XXXX, NXX.NXX.XXXX, NXX NXX XXXX
 *    (one separator kind), optionally after 1-, 1., "1 " or +1 (N is 2-9). Bare 10-digit runs
 *    are not phones: ids and amounts look just like them. A number that goes on with the same
 *    separator and more digits is not a phone (it is part of something longer).
 *  - iban: a country code with its registered length, two check digits and the BBAN, in
 *    capitals, unspaced or with single spaces after every four characters; mod 97 must be 1.
 *  - ipv4: four 0-255 octets without leading zeros, not part of a longer dotted run (a
 *    version 1.2.3.4.5 is not an address); a trailing full stop or ":port" is not part of it.
 *  - ipv6: a run of hex digits, colons and dots (at most 45 bytes, at least two colons, a
 *    trailing full stop or lone colon dropped) that inet_pton accepts, so full, compressed
 *    (::) and IPv4-embedded forms match, and times (10:30:00) and MAC addresses do not.
 *  - jwt: three base64url segments joined by dots, the first starting "eyJ" and decoding to
 *    a JSON object with an "alg" member; the signature segment may be empty (alg "none").
 *  - aws_access_key: AKIA, ASIA, AGPA, AIDA, AROA, AIPA, ANPA, ANVA, ABIA or ACCA and 16 of
 *    [A-Z2-7], with boundaries (so 19 or 21 characters are not keys).
 *  - bearer_token: the word "Bearer" (any case), one or more spaces, then a token of at
 *    least 16 characters of [A-Za-z0-9-._~+/] and optional '=' padding; a token of only
 *    lowercase letters is a word, not a token. The match is the token only, so a masked
 *    header keeps its scheme: "Bearer [REDACTED]".
 * Overlaps: every detector reports every match it finds; a detector is not tried again
 * inside its own previous match (the groups of a card are not cards again, the "(415)" of a
 * "+1 (415) 555-0123" is not a second phone), but other detectors are, so an IPv4 inside an
 * IPv6 address, or the JWT inside "Bearer eyJ...", are reported by both detectors and the
 * caller picks by precedence.
 *
 * Custom patterns are PCRE2 (byte mode), JIT-compiled when the platform allows (the
 * interpreter otherwise, or with MM_PCRE2_NO_JIT=1 for valgrind), with PCRE2's memory from
 * mm_malloc and a match limit, so a pattern that backtracks badly on some input fails the
 * scan (MM_ELIMIT) instead of stalling it. Every non-empty match is reported, widened to whole
 * UTF-8 characters so a mask never splits one; empty matches are skipped, resuming at the
 * next character.
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
#define DET_MAX_MATCHES 65536       /* per scanned value: a bound, not a realistic count */
#define DET_MATCH_LIMIT 1000000     /* PCRE2 backtracking steps per match attempt */
#define DET_HEAP_LIMIT_KIB 8192     /* PCRE2 interpreter backtracking memory per match */
#define DET_JIT_STACK_MIN (32u << 10)
#define DET_JIT_STACK_MAX (512u << 10)

static const char *const names[DET_BUILTIN_COUNT] = {
    "credit_card", "us_ssn", "email", "phone", "iban",
    "ipv4", "ipv6", "jwt", "aws_access_key", "bearer_token",
};

int det_lookup(const char *name)
{
    for (int i = 0; name && i < DET_BUILTIN_COUNT; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *det_name(det_id id)
{
    return (unsigned)id < DET_BUILTIN_COUNT ? names[id] : "?";
}

/* ---- character classes ---------------------------------------------------------------- */

enum { C_DIGIT = 1, C_UPPER = 2, C_LOWER = 4, C_HEX = 8, C_LOCAL = 16, C_B64U = 32,
       C_TOKEN = 64 };
#define C_ALNUM (C_DIGIT | C_UPPER | C_LOWER)

static unsigned char cls[256];

/* Per-set trigger table bits: where a scan must stop and look. */
enum { T_WORD = 1, T_PLUS = 2, T_PAREN = 4, T_AT = 8, T_COLON = 16 };

static void init_classes(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char v = 0;
        if (c >= '0' && c <= '9')
            v |= C_DIGIT | C_HEX | C_LOCAL | C_B64U | C_TOKEN;
        if (c >= 'A' && c <= 'Z')
            v |= C_UPPER | C_LOCAL | C_B64U | C_TOKEN;
        if (c >= 'a' && c <= 'z')
            v |= C_LOWER | C_LOCAL | C_B64U | C_TOKEN;
        if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            v |= C_HEX;
        if (c == '.' || c == '_' || c == '%' || c == '+' || c == '-')
            v |= C_LOCAL;
        if (c == '-' || c == '_')
            v |= C_B64U;
        if (c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/')
            v |= C_TOKEN;
        cls[c] = v;
    }
}

static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

static inline bool is_digit(unsigned char c) { return (unsigned)(c - '0') < 10u; }
static inline bool is_alnum(unsigned char c) { return cls[c] & C_ALNUM; }
static inline bool is_upper(unsigned char c) { return (unsigned)(c - 'A') < 26u; }

/* ---- sets and scratch ----------------------------------------------------------------- */

typedef struct {
    char *name;
    pcre2_code *code;
    bool jit;
    int tag;
} pattern;

struct det_set {
    bool on[DET_BUILTIN_COUNT];
    int tag[DET_BUILTIN_COUNT];
    unsigned char trig[256]; /* T_* per byte, for the detectors that are on */
    bool any_builtin;
    pattern *pats;
    size_t n_pats;
    pcre2_general_context *gctx; /* PCRE2 allocates through mm_malloc */
    pcre2_compile_context *cctx;
    bool compiled;
};

struct det_scratch {
    const det_set *set;
    pcre2_match_data **md; /* one per pattern */
    size_t n_md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    det_match *m; /* matches of the value being scanned, sorted before reporting */
    det_match *tmp; /* merge-sort space, as large as m */
    size_t n, cap;
};

static void *pcre_malloc(PCRE2_SIZE n, void *data)
{
    MM_UNUSED(data);
    return mm_malloc(n);
}

static void pcre_free(void *p, void *data)
{
    MM_UNUSED(data);
    mm_free(p);
}

static void init_iban(void);
static pthread_once_t iban_once = PTHREAD_ONCE_INIT;

mm_err det_set_new(det_set **out)
{
    pthread_once(&classes_once, init_classes);
    pthread_once(&iban_once, init_iban);
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
    pcre2_compile_context_free(s->cctx);
    pcre2_general_context_free(s->gctx);
    mm_free(s);
}

mm_err det_set_add_builtin(det_set *s, det_id id, int tag)
{
    if ((unsigned)id >= DET_BUILTIN_COUNT || s->compiled)
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
    const char *nojit;

    if (s->compiled)
        return mm_errf(eb, MM_EINVAL, "pattern %s: the detector set is already compiled", name);
    if (s->n_pats == DET_MAX_PATTERNS)
        return mm_errf(eb, MM_ELIMIT, "pattern %s: more than %d patterns", name,
                       DET_MAX_PATTERNS);
    if (!s->gctx && !(s->gctx = pcre2_general_context_create(pcre_malloc, pcre_free, NULL)))
        return mm_errf(eb, MM_ENOMEM, "pattern %s: out of memory", name);
    if (!s->cctx && !(s->cctx = pcre2_compile_context_create(s->gctx)))
        return mm_errf(eb, MM_ENOMEM, "pattern %s: out of memory", name);
    p = mm_realloc(s->pats, (s->n_pats + 1) * sizeof(*p));
    if (!p)
        return mm_errf(eb, MM_ENOMEM, "pattern %s: out of memory", name);
    s->pats = p;
    p = &s->pats[s->n_pats];
    memset(p, 0, sizeof(*p));
    if (!(p->name = mm_strdup(name)))
        return mm_errf(eb, MM_ENOMEM, "pattern %s: out of memory", name);
    p->code = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED, 0, &code, &off, s->cctx);
    if (!p->code) {
        PCRE2_UCHAR msg[160];
        mm_free(p->name);
        p->name = NULL;
        if (code == PCRE2_ERROR_HEAP_FAILED)
            return mm_errf(eb, MM_ENOMEM, "pattern %s: out of memory", name);
        pcre2_get_error_message(code, msg, sizeof(msg));
        return mm_errf(eb, MM_EINVAL, "pattern %s: %s at offset %zu", name, (const char *)msg,
                       (size_t)off);
    }
    /* JIT when the platform has it; the interpreter gives the same answers, slower.
     * MM_PCRE2_NO_JIT=1 turns it off for valgrind, which cannot follow JIT-made code. */
    nojit = getenv("MM_PCRE2_NO_JIT");
    p->jit = !(nojit && *nojit == '1') && pcre2_jit_compile(p->code, PCRE2_JIT_COMPLETE) == 0;
    p->tag = tag;
    s->n_pats++;
    return MM_OK;
}

mm_err det_set_compile(det_set *s, mm_errbuf *eb)
{
    const bool *on = s->on;
    bool words = false;

    MM_UNUSED(eb);
    for (int i = 0; i < DET_BUILTIN_COUNT; i++) {
        s->any_builtin |= on[i];
        words |= on[i] && i != DET_EMAIL; /* every detector but email starts at a word */
    }
    memset(s->trig, 0, sizeof(s->trig));
    for (int c = 0; c < 256; c++)
        if (words && is_alnum((unsigned char)c))
            s->trig[c] = T_WORD;
    if (on[DET_PHONE]) {
        s->trig['+'] |= T_PLUS;
        s->trig['('] |= T_PAREN;
    }
    if (on[DET_EMAIL])
        s->trig['@'] |= T_AT;
    if (on[DET_IPV6])
        s->trig[':'] |= T_COLON;
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
    sc->set = s;
    if (s->n_pats) {
        if (!(sc->md = mm_calloc(s->n_pats, sizeof(*sc->md))))
            goto nomem;
        sc->n_md = s->n_pats;
        for (size_t i = 0; i < s->n_pats; i++)
            if (!(sc->md[i] = pcre2_match_data_create_from_pattern(s->pats[i].code, s->gctx)))
                goto nomem;
        if (!(sc->mctx = pcre2_match_context_create(s->gctx)))
            goto nomem;
        pcre2_set_match_limit(sc->mctx, DET_MATCH_LIMIT);
        pcre2_set_heap_limit(sc->mctx, DET_HEAP_LIMIT_KIB);
        for (size_t i = 0; i < s->n_pats && !sc->jit_stack; i++)
            if (s->pats[i].jit) {
                /* without a stack of its own a JIT match has 32 KiB of machine stack */
                if (!(sc->jit_stack = pcre2_jit_stack_create(DET_JIT_STACK_MIN,
                                                             DET_JIT_STACK_MAX, s->gctx)))
                    goto nomem;
                pcre2_jit_stack_assign(sc->mctx, NULL, sc->jit_stack);
            }
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
    pcre2_match_context_free(sc->mctx);
    pcre2_jit_stack_free(sc->jit_stack);
    mm_free(sc->m);
    mm_free(sc->tmp);
    mm_free(sc);
}

/* ---- the scan state ------------------------------------------------------------------- */

typedef struct {
    const det_set *set;
    det_scratch *sc;
    const unsigned char *t;
    size_t n;
    size_t next[DET_BUILTIN_COUNT]; /* a detector is not tried before the end of its last match */
    mm_err rc;
} scan;

static void add(scan *s, size_t start, size_t end, int tag, const char *name)
{
    det_scratch *sc = s->sc;
    if (s->rc != MM_OK)
        return;
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        det_match *m, *tmp;
        if (cap > DET_MAX_MATCHES) {
            s->rc = MM_ELIMIT;
            return;
        }
        if (!(m = mm_realloc(sc->m, cap * sizeof(*m)))) {
            s->rc = MM_ENOMEM;
            return;
        }
        sc->m = m;
        if (!(tmp = mm_realloc(sc->tmp, cap * sizeof(*tmp)))) {
            s->rc = MM_ENOMEM;
            return;
        }
        sc->tmp = tmp;
        sc->cap = cap;
    }
    sc->m[sc->n++] = (det_match){.start = start, .end = end, .tag = tag, .name = name};
}

static void found(scan *s, det_id id, size_t start, size_t end)
{
    add(s, start, end, s->set->tag[id], names[id]);
    s->next[id] = end;
}

/* May detector `id` be tried at i? (on, and not inside its own previous match) */
static inline bool may(const scan *s, det_id id, size_t i)
{
    return s->set->on[id] && i >= s->next[id];
}

/* The byte at i, or 0 past the end. */
static inline unsigned char at(const scan *s, size_t i)
{
    return i < s->n ? s->t[i] : 0;
}

/* Is the run of digits that ends at i (exclusive) preceded by "<digit><sep>"? That makes the
 * run at i an inner group of something longer. */
static bool inner_group(const scan *s, size_t i, unsigned char sep)
{
    return i >= 2 && s->t[i - 1] == sep && is_digit(s->t[i - 2]);
}

/* Does the text at i go on with "<sep><digit>"? */
static bool continues(const scan *s, size_t i, unsigned char sep)
{
    return i + 1 < s->n && s->t[i] == sep && is_digit(s->t[i + 1]);
}

/* ---- credit_card ---------------------------------------------------------------------- */

static bool luhn(const unsigned char *d, size_t n)
{
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned v = d[n - 1 - i] - '0';
        if (i & 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

static unsigned prefix_num(const unsigned char *d, size_t k)
{
    unsigned v = 0;
    for (size_t i = 0; i < k; i++)
        v = v * 10 + (unsigned)(d[i] - '0');
    return v;
}

/* Issuer identification: is this prefix issued for this length? (the table at the top) */
static bool iin_ok(const unsigned char *d, size_t n)
{
    unsigned p2 = prefix_num(d, 2), p3 = prefix_num(d, 3), p4 = prefix_num(d, 4),
             p6 = prefix_num(d, 6);

    switch (d[0]) {
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

static bool card_ok(const unsigned char *d, size_t n)
{
    return n >= 13 && n <= 19 && iin_ok(d, n) && luhn(d, n);
}

/* At a word start i: a run of `g` digits followed by a non-alphanumeric byte. */
static void try_card(scan *s, size_t i, size_t g)
{
    const unsigned char *t = s->t;
    unsigned char d[19], sep;
    size_t ends[8], counts[8], ng = 0, nd = 0, j = i;

    if (i > 0 && t[i - 1] == '+') /* +44 20 ...: a phone number */
        return;
    if (g >= 13) { /* one unseparated run */
        if (card_ok(t + i, g))
            found(s, DET_CREDIT_CARD, i, i + g);
        return;
    }
    sep = at(s, i + g);
    if (g < 3 || g > 6 || (sep != ' ' && sep != '-') || inner_group(s, i, sep))
        return;
    /* groups of 3-6 digits joined by `sep`, up to 19 digits */
    for (;;) {
        size_t k = j;
        while (k < s->n && is_digit(t[k]) && k - j <= 6)
            k++;
        if (k - j < 3 || k - j > 6 || is_alnum(at(s, k)) || nd + (k - j) > sizeof(d))
            break;
        memcpy(d + nd, t + j, k - j);
        nd += k - j;
        ends[ng] = k;
        counts[ng++] = nd;
        if (ng == MM_ARRAY_LEN(ends) || !continues(s, k, sep))
            break;
        j = k + 1;
    }
    /* the longest prefix of at least two whole groups that is a card */
    for (size_t q = ng; q-- > 1;)
        if (card_ok(d, counts[q])) {
            found(s, DET_CREDIT_CARD, i, ends[q]);
            return;
        }
}

/* ---- us_ssn --------------------------------------------------------------------------- */

static bool ssn_ok(unsigned area, unsigned group, unsigned serial)
{
    return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

static void try_ssn(scan *s, size_t i, size_t g)
{
    const unsigned char *t = s->t + i;
    unsigned char sep;

    if (g == 9) { /* bare: only when the 9 digits are the whole value */
        if (i == 0 && s->n == 9 &&
            ssn_ok(prefix_num(t, 3), prefix_num(t + 3, 2), prefix_num(t + 5, 4)))
            found(s, DET_US_SSN, 0, 9);
        return;
    }
    sep = t[3];
    if (i + 11 > s->n || !is_digit(t[4]) || !is_digit(t[5]) || t[6] != sep ||
        !is_digit(t[7]) || !is_digit(t[8]) || !is_digit(t[9]) || !is_digit(t[10]))
        return;
    if (is_alnum(at(s, i + 11)) || continues(s, i + 11, sep) || inner_group(s, i, sep) ||
        (i > 0 && s->t[i - 1] == '+'))
        return;
    if (ssn_ok(prefix_num(t, 3), prefix_num(t + 4, 2), prefix_num(t + 7, 4)))
        found(s, DET_US_SSN, i, i + 11);
}

/* ---- phone ---------------------------------------------------------------------------- */

/* N: a digit 2-9 (NANP area codes and exchanges do not start with 0 or 1). */
static inline bool nanp_n(unsigned char c) { return c >= '2' && c <= '9'; }

static bool digits_at(const scan *s, size_t i, size_t k)
{
    if (i + k > s->n)
        return false;
    for (size_t j = 0; j < k; j++)
        if (!is_digit(s->t[i + j]))
            return false;
    return true;
}

static bool nanp_sep(unsigned char c) { return c == '-' || c == '.' || c == ' '; }

/* A NANP number at j: (NXX) NXX-XXXX or NXX s NXX s XXXX. Returns its end, or 0. */
static size_t nanp_at(const scan *s, size_t j)
{
    const unsigned char *t = s->t;
    unsigned char sep;

    if (at(s, j) == '(') {
        if (!nanp_n(at(s, j + 1)) || !digits_at(s, j + 1, 3) || at(s, j + 4) != ')')
            return 0;
        j += 5;
        if (at(s, j) == ' ' || at(s, j) == '-')
            j++;
        if (!nanp_n(at(s, j)) || !digits_at(s, j, 3) || !nanp_sep(at(s, j + 3)))
            return 0;
        sep = t[j + 3];
    } else {
        if (!nanp_n(at(s, j)) || !digits_at(s, j, 3) || !nanp_sep(at(s, j + 3)))
            return 0;
        sep = t[j + 3];
        j += 4;
        if (!nanp_n(at(s, j)) || !digits_at(s, j, 3) || at(s, j + 3) != sep)
            return 0;
    }
    if (!digits_at(s, j + 4, 4))
        return 0;
    j += 8;
    if (is_alnum(at(s, j)) || continues(s, j, sep))
        return 0;
    return j;
}

/* At a digit word start: NXX... or 1-NXX... / 1 (NXX) ... */
static void try_phone_digit(scan *s, size_t i, size_t g)
{
    size_t end;
    unsigned char sep = at(s, i + g);

    if (i > 0 && s->t[i - 1] == '+') /* E.164: the '+' trigger reads it */
        return;
    if (g == 1) { /* the country code 1 */
        if ((end = nanp_at(s, i + 2)) != 0)
            found(s, DET_PHONE, i, end);
        return;
    }
    if (!inner_group(s, i, sep) && (end = nanp_at(s, i)) != 0)
        found(s, DET_PHONE, i, end);
}

/* At '(' */
static void try_phone_paren(scan *s, size_t i)
{
    size_t end;
    if (i > 0 && is_alnum(s->t[i - 1]))
        return;
    if ((end = nanp_at(s, i)) != 0)
        found(s, DET_PHONE, i, end);
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
    if (t[j] == '1' && nanp_sep(at(s, j + 1)) && (end = nanp_at(s, j + 2)) != 0) {
        found(s, DET_PHONE, i, end);
        return;
    }
    if (t[j] == '1' && (end = nanp_at(s, j + 1)) != 0) { /* +1(415) 555-0123 */
        found(s, DET_PHONE, i, end);
        return;
    }
    /* digit groups: single separators between them, one group may be in parentheses */
    for (;;) {
        if (is_digit(at(s, j))) {
            while (j < s->n && is_digit(t[j])) {
                if (++nd > 15)
                    return;
                j++;
            }
            end = j;
        } else if (at(s, j) == '(' && !paren && is_digit(at(s, j + 1))) {
            size_t k = j + 1;
            while (k < s->n && is_digit(t[k]))
                k++;
            if (at(s, k) != ')' || (nd += k - j - 1) > 15)
                return;
            paren = true;
            j = end = k + 1;
        } else {
            break;
        }
        if (nanp_sep(at(s, j)) && (is_digit(at(s, j + 1)) || (at(s, j + 1) == '(' && !paren)))
            j++;
        else
            break;
    }
    if (nd < 8 || is_alnum(at(s, end)))
        return;
    found(s, DET_PHONE, i, end);
}

/* ---- ipv4 / ipv6 ---------------------------------------------------------------------- */

static void try_ipv4(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    size_t j = i;

    if (i > 0 && t[i - 1] == '.') /* a later part of a dotted run */
        return;
    for (int oct = 0; oct < 4; oct++) {
        unsigned v = 0;
        size_t k = 0;
        if (oct && at(s, j++) != '.')
            return;
        while (j < s->n && is_digit(t[j]) && k < 4) {
            v = v * 10 + (unsigned)(t[j] - '0');
            j++;
            k++;
        }
        if (k == 0 || k > 3 || v > 255 || (k > 1 && t[j - k] == '0'))
            return;
    }
    if (is_alnum(at(s, j)) || (at(s, j) == '.' && is_alnum(at(s, j + 1))))
        return;
    found(s, DET_IPV4, i, j);
}

static void try_ipv6(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    size_t j = i, colons = 0;
    char buf[48];
    unsigned char addr[16];

    if (i > 0 && (t[i - 1] == ':' || t[i - 1] == '.' || is_alnum(t[i - 1])))
        return;
    while (j < s->n && ((cls[t[j]] & C_HEX) || t[j] == ':' || t[j] == '.')) {
        colons += t[j] == ':';
        if (++j - i > 45)
            return;
    }
    if (is_alnum(at(s, j)))
        return;
    while (j > i && t[j - 1] == '.') /* a sentence's full stop */
        j--;
    if (j - i >= 2 && t[j - 1] == ':' && t[j - 2] != ':') { /* "addr 2001:db8::1: refused" */
        j--;
        colons--;
    }
    if (colons < 2)
        return;
    memcpy(buf, t + i, j - i);
    buf[j - i] = '\0';
    if (inet_pton(AF_INET6, buf, addr) == 1)
        found(s, DET_IPV6, i, j);
}

/* ---- email ---------------------------------------------------------------------------- */

/* At '@'. The local part is read backwards from it, never before the end of the previous
 * email (so "a@b.co@c.de" is one email and a remainder, not two overlapping ones). */
static void try_email(scan *s, size_t at_i)
{
    const unsigned char *t = s->t;
    size_t a = at_i, j = at_i + 1, labels = 0, last = 0, tld = 0, floor = s->next[DET_EMAIL];

    while (a > floor && (cls[t[a - 1]] & C_LOCAL) && !(t[a - 1] == '.' && a - 1 > floor &&
                                                        t[a - 2] == '.')) {
        if (at_i - a == 64)
            return; /* longer than RFC 5321 allows: not an address */
        a--;
    }
    while (a < at_i && t[a] == '.')
        a++;
    if (a == at_i || t[at_i - 1] == '.')
        return;
    for (;;) {
        size_t ls = j;
        while (j < s->n && (is_alnum(t[j]) || t[j] == '-'))
            j++;
        if (j - at_i - 1 > 253)
            return;
        if (j == ls || t[ls] == '-' || t[j - 1] == '-')
            break;
        labels++;
        last = ls;
        tld = j - ls;
        if (at(s, j) == '.' && is_alnum(at(s, j + 1))) {
            j++;
            continue;
        }
        break;
    }
    if (labels < 2 || tld < 2)
        return;
    for (size_t k = last; k < last + tld; k++)
        if (!(cls[t[k]] & (C_UPPER | C_LOWER)))
            return;
    found(s, DET_EMAIL, a, last + tld);
}

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

static void init_iban(void)
{
    for (size_t k = 0; k < MM_ARRAY_LEN(iban_lengths); k++)
        iban_len[(iban_lengths[k].cc[0] - 'A') * 26 + (iban_lengths[k].cc[1] - 'A')] =
            iban_lengths[k].len;
}

/* At a word start: two capitals and two digits. */
static void try_iban(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    unsigned char c[34];
    size_t nc = 0, j = i, want;
    unsigned mod = 0;

    want = iban_len[(t[i] - 'A') * 26 + (t[i + 1] - 'A')];
    if (!want)
        return;
    while (j < s->n && nc < want) {
        if (is_digit(t[j]) || is_upper(t[j]))
            c[nc++] = t[j++];
        else if (t[j] == ' ' && nc % 4 == 0 && j + 1 < s->n && is_alnum(t[j + 1]))
            j++;
        else
            break;
    }
    if (nc != want || is_alnum(at(s, j)))
        return;
    /* mod 97 of BBAN + country + check digits, letters as 10..35 */
    for (size_t k = 0; k < nc; k++) {
        unsigned char ch = c[(k + 4) % nc];
        if (is_upper(ch))
            mod = (mod * 100 + (unsigned)(ch - 'A' + 10)) % 97;
        else
            mod = (mod * 10 + (unsigned)(ch - '0')) % 97;
    }
    if (mod == 1)
        found(s, DET_IBAN, i, j);
}

/* ---- aws_access_key, jwt, bearer_token ------------------------------------------------ */

/* At a word start of exactly 20 characters starting with 'A'. */
static void try_aws(scan *s, size_t i)
{
    static const char prefixes[][5] = {"AKIA", "ASIA", "AGPA", "AIDA", "AROA",
                                       "AIPA", "ANPA", "ANVA", "ABIA", "ACCA"};
    const unsigned char *t = s->t + i;
    bool ok = false;

    for (size_t k = 0; k < MM_ARRAY_LEN(prefixes) && !ok; k++)
        ok = memcmp(t, prefixes[k], 4) == 0;
    if (!ok)
        return;
    for (size_t k = 4; k < 20; k++)
        if (!is_upper(t[k]) && !(t[k] >= '2' && t[k] <= '7'))
            return;
    found(s, DET_AWS_ACCESS_KEY, i, i + 20);
}

static int b64u_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* At a word start "eyJ" (base64 of '{"'). */
static void try_jwt(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    size_t j = i, seg[3], len[3], hn = 0;
    char hdr[192];
    uint32_t acc = 0;
    int bits = 0;

    if (i > 0 && (cls[t[i - 1]] & C_B64U)) /* inside a longer base64url run */
        return;
    for (int k = 0; k < 3; k++) {
        seg[k] = j;
        while (j < s->n && (cls[t[j]] & C_B64U))
            j++;
        len[k] = j - seg[k];
        if (k < 2) {
            if (at(s, j) != '.')
                return;
            j++;
        }
    }
    if (len[0] < 10 || len[1] < 2 || at(s, j) == '.' || at(s, j) == '=')
        return;
    /* the header (its first bytes) must be a JSON object naming "alg" */
    for (size_t k = 0; k < len[0] && hn < sizeof(hdr) - 1; k++) {
        acc = acc << 6 | (uint32_t)b64u_val(t[seg[0] + k]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            hdr[hn++] = (char)((acc >> bits) & 0xFF);
        }
    }
    hdr[hn] = '\0';
    if (hdr[0] != '{' || !strstr(hdr, "\"alg\""))
        return;
    found(s, DET_JWT, i, j);
}

/* At a word start of exactly "bearer" (any case) followed by a space. */
static void try_bearer(scan *s, size_t i)
{
    const unsigned char *t = s->t;
    size_t j = i + 6, start;
    bool lower_only = true;

    if (strncasecmp((const char *)t + i, "bearer", 6) != 0)
        return;
    while (j < s->n && t[j] == ' ')
        j++;
    start = j;
    while (j < s->n && (cls[t[j]] & C_TOKEN)) {
        lower_only &= (cls[t[j]] & C_LOWER) != 0;
        j++;
    }
    if (j - start < 16 || lower_only)
        return;
    while (j < s->n && t[j] == '=')
        j++;
    found(s, DET_BEARER_TOKEN, start, j);
}

/* ---- the scan loop -------------------------------------------------------------------- */

/* A word [i, w) of letters and digits: run the checks that can start here. */
static void word(scan *s, size_t i, size_t w)
{
    const unsigned char *t = s->t;
    const unsigned char c = t[i], nx = at(s, w);
    const size_t len = w - i;

    if (is_digit(c)) {
        size_t g = 1;
        while (g < len && is_digit(t[i + g]))
            g++;
        if (g == len) { /* digits only: the first group of a number */
            bool sep = nx == ' ' || nx == '-';
            if (may(s, DET_CREDIT_CARD, i) && ((len >= 13 && len <= 19) || (sep && len >= 3 && len <= 6)))
                try_card(s, i, len);
            if (may(s, DET_US_SSN, i) && ((len == 3 && sep) || len == 9))
                try_ssn(s, i, len);
            if (may(s, DET_PHONE, i) && ((len == 3 && (sep || nx == '.')) ||
                                        (len == 1 && c == '1' && (sep || nx == '.'))))
                try_phone_digit(s, i, len);
            if (may(s, DET_IPV4, i) && len <= 3 && nx == '.')
                try_ipv4(s, i);
        }
    } else if (is_upper(c)) {
        if (c == 'A' && len == 20 && may(s, DET_AWS_ACCESS_KEY, i))
            try_aws(s, i);
        if (len >= 4 && is_upper(t[i + 1]) && is_digit(t[i + 2]) && is_digit(t[i + 3]) &&
            may(s, DET_IBAN, i))
            try_iban(s, i);
        if (c == 'B' && len == 6 && nx == ' ' && may(s, DET_BEARER_TOKEN, i))
            try_bearer(s, i);
    } else {
        if (c == 'e' && len >= 3 && t[i + 1] == 'y' && t[i + 2] == 'J' && may(s, DET_JWT, i))
            try_jwt(s, i);
        if (c == 'b' && len == 6 && nx == ' ' && may(s, DET_BEARER_TOKEN, i))
            try_bearer(s, i);
    }
    if (nx == ':' && len <= 4 && may(s, DET_IPV6, i)) {
        for (size_t k = i; k < w; k++)
            if (!(cls[t[k]] & C_HEX))
                return;
        try_ipv6(s, i);
    }
}

static void scan_builtins(scan *s)
{
    const unsigned char *t = s->t, *trig = s->set->trig;
    const size_t n = s->n;
    size_t i = 0;

    for (;;) {
        while (i < n && !trig[t[i]])
            i++;
        if (i >= n)
            break;
        unsigned char k = trig[t[i]];
        if (k & T_WORD) {
            size_t w = i + 1;
            while (w < n && is_alnum(t[w]))
                w++;
            word(s, i, w);
            i = w;
            continue;
        }
        if ((k & T_AT) && may(s, DET_EMAIL, i))
            try_email(s, i);
        else if ((k & T_PLUS) && may(s, DET_PHONE, i))
            try_e164(s, i);
        else if ((k & T_PAREN) && may(s, DET_PHONE, i))
            try_phone_paren(s, i);
        else if ((k & T_COLON) && at(s, i + 1) == ':' && may(s, DET_IPV6, i))
            try_ipv6(s, i);
        i++;
    }
}

/* ---- patterns ------------------------------------------------------------------------- */

/* Start of the UTF-8 character holding byte i (at most 3 bytes back). */
static size_t char_start(const unsigned char *t, size_t i)
{
    for (int k = 0; k < 3 && i > 0 && (t[i] & 0xC0) == 0x80; k++)
        i--;
    return i;
}

/* End of the UTF-8 character that has its last byte before i (at most 3 bytes on). */
static size_t char_end(const unsigned char *t, size_t n, size_t i)
{
    for (int k = 0; k < 3 && i < n && (t[i] & 0xC0) == 0x80; k++)
        i++;
    return i;
}

static void scan_patterns(scan *s)
{
    const det_set *set = s->set;
    det_scratch *sc = s->sc;

    for (size_t p = 0; p < set->n_pats && s->rc == MM_OK; p++) {
        const pattern *pt = &set->pats[p];
        pcre2_match_data *md = sc->md[p];
        PCRE2_SIZE off = 0;
        while (off <= s->n && s->rc == MM_OK) {
            int r = pt->jit ? pcre2_jit_match(pt->code, s->t, s->n, off, 0, md, sc->mctx)
                            : pcre2_match(pt->code, s->t, s->n, off, 0, md, sc->mctx);
            if (r < 0) {
                if (r == PCRE2_ERROR_NOMATCH)
                    break;
                /* a limit (match, depth, heap, JIT stack): refuse rather than pass */
                s->rc = r == PCRE2_ERROR_NOMEMORY ? MM_ENOMEM : MM_ELIMIT;
                break;
            }
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t next;
            if (ov[1] > ov[0]) { /* whole characters; resume after them (no duplicates) */
                next = char_end(s->t, s->n, ov[1]);
                add(s, char_start(s->t, ov[0]), next, pt->tag, pt->name);
            } else { /* empty (or \K-reversed): nothing to mask; move on one character */
                next = (ov[0] > off ? ov[0] : off) + 1;
                next = char_end(s->t, s->n, next);
            }
            if (next <= off)
                next = off + 1;
            off = next;
        }
    }
}

/* ---- det_scan ------------------------------------------------------------------------- */

static bool before(const det_match *a, const det_match *b)
{
    return a->start < b->start || (a->start == b->start && a->tag < b->tag);
}

/* Stable sort by (start, tag): insertion for the usual handful, merge sort for many. */
static void sort_matches(det_scratch *sc)
{
    det_match *a = sc->m, *b = sc->tmp;
    size_t n = sc->n;

    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            det_match m = a[i];
            size_t j = i;
            while (j > 0 && before(&m, &a[j - 1])) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = m;
        }
        return;
    }
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t x = lo, y = mid, o = lo;
            while (x < mid && y < hi)
                b[o++] = before(&a[y], &a[x]) ? a[y++] : a[x++];
            while (x < mid)
                b[o++] = a[x++];
            while (y < hi)
                b[o++] = a[y++];
        }
        det_match *tmp = a;
        a = b;
        b = tmp;
    }
    if (a != sc->m)
        memcpy(sc->m, a, n * sizeof(*a));
}

mm_err det_scan(const det_set *set, det_scratch *sc, const char *text, size_t n, det_match_fn cb,
                void *ctx)
{
    scan s = {.set = set, .sc = sc, .t = (const unsigned char *)text, .n = n, .rc = MM_OK};
    mm_err rc;

    if (sc->set != set || sc->n_md != set->n_pats || !set->compiled)
        return MM_EINVAL; /* scratch made for another set, or the set not compiled */
    sc->n = 0;
    if (set->any_builtin)
        scan_builtins(&s);
    if (set->n_pats)
        scan_patterns(&s);
    if (s.rc != MM_OK)
        return s.rc;
    if (sc->n > 1)
        sort_matches(sc);
    for (size_t i = 0; i < sc->n; i++)
        if ((rc = cb(ctx, &sc->m[i])) != MM_OK)
            return rc;
    return MM_OK;
}
