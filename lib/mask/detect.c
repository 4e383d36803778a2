/* lib/mask: the built-in detectors' dispatch, and custom PCRE2 patterns.
 *
 * Built-ins are hand-written scanners, not regexes, listed once in the registry
 * (detectors.def): a name, the word classes and bytes where a match can start, a cheap shape
 * check, the finder, the validator, the member names that are evidence, a line of docs.
 * One pass over the text: a per-set byte table marks the bytes where an enabled detector can
 * start (the first byte of a word of letters and digits, or a byte a detector names, such as
 * '@' or '+'); other bytes cost one table lookup. At a word start the word is skipped once
 * and only the detectors registered for its class run their shape check, so most words
 * (amounts, dates, names, ids) run no finder. Nothing is allocated unless something matches.
 * What each detector accepts and refuses is in docs/detectors.md; the files det_num.c,
 * det_net.c, det_id.c and det_secret.c hold them by family.
 *
 * Decisions on the known gaps of issue 13 (and why):
 *  - Digit runs never fail open: every group of a run of digit groups is a start (cards,
 *    SSNs, phones, SINs, Aadhaar), so "qty 2 4111 1111 1111 1111" or a spaced card right
 *    after a dashed card are found; a card that starts inside another and ends past it
 *    widens the match. Unseparated digits stay whole words: a 13-digit millisecond
 *    timestamp (prefix 1, 13 digits: no issuer) or a card inside a longer unseparated run is
 *    not a card, since the run is one number.
 *  - xn-- TLDs: a last label "xn--" plus letters, digits or dashes is a TLD (IDNA A-labels
 *    such as xn--p1ai); raw UTF-8 domains (U-labels) are not matched: mail systems carry the
 *    A-label form, and a UTF-8 label rule would also have to decide on homoglyphs.
 *  - IBANs grouped by dashes: accepted like spaces, one kind per IBAN, every four
 *    characters (the print form), since the mod-97 check makes accidents rare.
 *  - SSNs with dots (123.45.6789): accepted, the same three-group shape as dashes and spaces;
 *    Presidio accepts them too.
 *  - Wallet SSNs: 078-05-1120 (the Woolworth wallet card) and 219-09-9999 (the SSA's own
 *    sample) were voided by the SSA and are refused. Presidio also refuses 123-45-6789 and
 *    numbers of one repeated digit; we do not: 123-45-6789 is a valid, issued-range number
 *    and tests use it precisely because it is recognisable, so masking it is the safe side.
 *  - UATP cards (prefix 1, 15 digits, Luhn): accepted. A 15-digit run starting with 1 is not
 *    a common timestamp width (ms timestamps have 13 digits, microseconds 16), so the
 *    timestamp guard still holds; Presidio's card pattern also accepts prefix 1.
 *
 * Custom patterns are PCRE2 (byte mode), JIT-compiled when the platform allows (the
 * interpreter otherwise, or with MM_PCRE2_NO_JIT=1 for valgrind), with PCRE2's memory from
 * mm_malloc and a match limit, so a pattern that backtracks badly on some input fails the
 * scan (MM_ELIMIT) instead of stalling it. Every non-empty match is reported, widened to whole
 * UTF-8 characters so a mask never splits one; empty matches are skipped, resuming at the
 * next character. One pass of pattern.c's prefilter (an automaton over the literals each
 * pattern needs) first picks the patterns that can match the value at all; only they run.
 *
 * Overlaps: every detector reports every match it finds; a detector is not tried again
 * inside its own previous match, but other detectors are, and the caller picks by
 * precedence.
 */
#include "mask/detect_int.h"
#include "mask/simd_int.h"

#include <stdlib.h>
#include <string.h>

#define DET_MAX_PATTERNS 256
_Static_assert(DET_MAX_PATTERNS <= DET_PF_WORDS * 64, "the prefilter has a bit per pattern");
#define DET_MATCH_LIMIT 1000000     /* PCRE2 backtracking steps per match attempt */
#define DET_HEAP_LIMIT_KIB 8192     /* PCRE2 interpreter backtracking memory per match */
#define DET_JIT_STACK_MIN (32u << 10)
#define DET_JIT_STACK_MAX (512u << 10)
#define DET_MAX_MEMBER 64           /* longer member names are not evidence */
/* the shortest value read through the SIMD filter: below it making the masks costs more
 * than the byte loops they replace (callgrind, the bench corpus: 8 costs 2% more in all) */
#define DET_SIMD_MIN 16

/* ---- the registry --------------------------------------------------------------------- */

/* detectors whose registry line has no validator */
#define email_valid NULL
#define ipv4_valid NULL
#define ipv6_valid NULL
#define jwt_valid NULL
#define aws_valid NULL
#define bearer_valid NULL
#define gitlab_valid NULL
#define slack_valid NULL
#define stripe_valid NULL
#define google_valid NULL
#define pem_valid NULL
#define urlpw_valid NULL
#define connpw_valid NULL

const det_entry det_registry[DET_BUILTIN_COUNT] = {
#define DETECTOR(id, fn, nm, wd, by, ky, dc)                                                 \
    [DET_##id] = {.name = nm, .doc = dc, .words = (wd), .bytes = by, .keys = ky,             \
                  .shape = fn##_shape, .find = fn##_find, .valid = fn##_valid},
#include "mask/detectors.def"
#undef DETECTOR
};

/* A prefilter the scan loop applies before a detector's shape check, as data so that most
 * words cost no call: the word lengths it starts at (bit min(len, 31); 0: any), the bytes
 * that may follow the word (NULL: any), the fewest bytes from the word's (or trigger byte's)
 * start to the end of the value that any match starting there spans (0: no bound), and the
 * bytes such a word begins with (NULL: any of its classes). Each is checked against what the
 * detector's shape check or finder requires, so it refuses nothing they would take.
 * A detector without an entry runs its shape check on every word of its classes: this table
 * only saves time, and det_set_exhaustive turns it off for the tests that prove so. */
_Static_assert(DET_BUILTIN_COUNT <= 32, "next_ok holds a bit per detector");
/* bits lo..hi (hi at most 31: 2u << 31 wraps to 0, so the mask is all ones from lo) */
#define LENS(lo, hi) (((2u << (hi)) - 1u) & ~((1u << (lo)) - 1u))
static const struct {
    uint32_t lens;
    const char *next;
    unsigned char min;  /* at most DET_FIT_MAX */
    unsigned char bmin; /* the same for a match at one of its trigger bytes */
    const char *first;  /* the bytes a word it starts at begins with (NULL: any) */
} prefilter[DET_BUILTIN_COUNT] = {
    /* lens, next, min (words), bmin (bytes), first */
    [DET_CREDIT_CARD] = {LENS(3, 8) | LENS(13, 19), NULL, 13, 0, "123456"}, /* issuers 1-6 */
    [DET_US_SSN] = {LENS(3, 3) | LENS(9, 9), NULL, 9, 0, NULL}, /* bare 9, NNN-NN-NNNN 11 */
    [DET_EMAIL] = {0, NULL, 0, 5, NULL},                        /* "@a.bc" */
    /* words: NXX-NXX-XXXX; '+' and 8 digits, "(NXX)NXX-XXXX" */
    [DET_PHONE] = {LENS(1, 1) | LENS(3, 3), " -.", 12, 9, NULL},
    [DET_IBAN] = {LENS(4, 31), NULL, 15, 0, NULL},              /* NO: 15, the shortest */
    [DET_IPV4] = {LENS(1, 3), ".", 7, 0, NULL},                 /* 0.0.0.0 */
    [DET_IPV6] = {LENS(1, 4), ":", 0, 2, "0123456789abcdefABCDEF"}, /* hex words, "::" */
    [DET_JWT] = {LENS(3, 31), NULL, 3, 0, "e"},                 /* "eyJ" */
    [DET_AWS_ACCESS_KEY] = {LENS(20, 20), NULL, 20, 0, "A"},
    [DET_BEARER_TOKEN] = {LENS(6, 6), " ", 7, 0, "bB"},         /* "Bearer " */
    [DET_GITHUB_TOKEN] = {LENS(3, 3) | LENS(6, 6), "_", 4, 0, "g"}, /* "ghp_", "github_" */
    [DET_GITLAB_TOKEN] = {LENS(4, 6), "-", 5, 0, "g"},          /* "gldt-" */
    [DET_SLACK_TOKEN] = {LENS(4, 4), "-", 5, 0, "x"},           /* "xoxb-" */
    [DET_STRIPE_KEY] = {LENS(2, 2), "_", 3, 0, "sr"},           /* "sk_", "rk_" */
    [DET_GOOGLE_API_KEY] = {LENS(4, 31), NULL, 39, 0, "A"},     /* AIza and 35 */
    [DET_PRIVATE_KEY] = {0, NULL, 0, 10, NULL},                 /* "-----BEGIN" */
    [DET_CONN_PASSWORD] = {LENS(3, 3) | LENS(8, 8), "= ", 4, 0, "pP"}, /* "Pwd=", "Password=" */
    [DET_UK_NINO] = {LENS(2, 2) | LENS(9, 9), NULL, 9, 0, NULL}, /* AB123456C */
    [DET_CA_SIN] = {LENS(3, 3), " -", 11, 0, "12345679"},       /* NNN-NNN-NNN, not 0 or 8 */
    [DET_IN_AADHAAR] = {LENS(4, 4), " -", 14, 0, "23456789"},   /* NNNN NNNN NNNN, 2-9 */
    [DET_PASSPORT_MRZ] = {0, NULL, 44, 0, NULL},                /* a 44-character line */
};

/* The value filter: what a whole value must hold for a detector to match anywhere in it,
 * so that most values (names, cities, amounts, short ids) run no scan. Every value is held
 * to each detector's shortest match; a short one (under DET_VSHORT bytes) also to a census
 * of its bytes (det_vcount): the digits of the shortest number, the capitals of a fixed
 * prefix, the '.', ':', '@', '=' or '+' it cannot match without. A longer value runs the
 * scan on its length alone: there the SIMD scan costs about what counting would. Each
 * bound is what the detector's finder needs; test_prefilter_exact holds each detector's
 * shortest match and compares with a scan without filters. */
#define DET_VSHORT 16
static const struct {
    /* the shortest match; digits, capitals, '.', ':', '@', '=', digits + 2 per '+' */
    unsigned char len, digits, upper, dots, colons, at, eq, phone;
} vneed[DET_BUILTIN_COUNT] = {
    [DET_CREDIT_CARD] = {13, 13, 0, 0, 0, 0, 0, 0},
    [DET_US_SSN] = {9, 9, 0, 0, 0, 0, 0, 0},          /* bare 9 digits as the whole value */
    [DET_EMAIL] = {6, 0, 0, 1, 0, 1, 0, 0},           /* a@b.cd */
    /* +12345678; without a '+' a NANP number of 10 digits */
    [DET_PHONE] = {9, 8, 0, 0, 0, 0, 0, 10},
    [DET_IBAN] = {15, 2, 2, 0, 0, 0, 0, 0},           /* NO; country code, check digits */
    [DET_IPV4] = {7, 4, 0, 3, 0, 0, 0, 0},            /* 0.0.0.0 */
    [DET_IPV6] = {2, 0, 0, 0, 2, 0, 0, 0},            /* "::" */
    [DET_JWT] = {14, 0, 1, 2, 0, 0, 0, 0},            /* eyJ and 7, '.', 2, '.' */
    [DET_AWS_ACCESS_KEY] = {20, 0, 4, 0, 0, 0, 0, 0}, /* AKIA and 16 */
    [DET_BEARER_TOKEN] = {23, 0, 0, 0, 0, 0, 0, 0},   /* "Bearer " and 16 */
    [DET_GITHUB_TOKEN] = {40, 0, 0, 0, 0, 0, 0, 0},   /* ghp_ and 36 */
    [DET_GITLAB_TOKEN] = {25, 0, 0, 0, 0, 0, 0, 0},   /* gldt- and 20 */
    [DET_SLACK_TOKEN] = {25, 1, 0, 0, 0, 0, 0, 0},    /* xoxb-1-a- and 16 */
    [DET_STRIPE_KEY] = {32, 0, 0, 0, 0, 0, 0, 0},     /* sk_live_ and 24 */
    [DET_GOOGLE_API_KEY] = {39, 0, 2, 0, 0, 0, 0, 0}, /* AIza and 35 */
    [DET_PRIVATE_KEY] = {27, 0, 0, 0, 0, 0, 0, 0},    /* -----BEGIN PRIVATE KEY----- */
    [DET_URL_PASSWORD] = {6, 0, 0, 0, 2, 1, 0, 0},    /* ://:x@ */
    [DET_CONN_PASSWORD] = {5, 0, 0, 0, 0, 0, 1, 0},   /* Pwd=x */
    [DET_UK_NINO] = {9, 6, 3, 0, 0, 0, 0, 0},         /* AB123456C */
    [DET_CA_SIN] = {11, 9, 0, 0, 0, 0, 0, 0},         /* NNN NNN NNN */
    [DET_IN_AADHAAR] = {14, 12, 0, 0, 0, 0, 0, 0},    /* NNNN NNNN NNNN */
    [DET_PASSPORT_MRZ] = {44, 0, 0, 0, 0, 0, 0, 0},
};
_Static_assert(DET_VLEN_MAX >= 44, "v_len tells every shortest match apart");

/* Does census byte x (two nibble counts) meet the bounds lo and hi? */
static bool nibbles_meet(unsigned x, unsigned lo, unsigned hi)
{
    return (x & 15) >= lo && x >> 4 >= hi;
}

/* The value filter's tables for detector id (v_len and v_census). */
static void value_tables(det_set *s, int id)
{
    uint32_t bit = 1u << id;
    for (int l = s->exhaustive ? 0 : vneed[id].len; l <= DET_VLEN_MAX; l++)
        s->v_len[l] |= bit;
    for (unsigned x = 0; x < 256; x++) {
        bool all = s->exhaustive;
        if (all || nibbles_meet(x, vneed[id].digits, vneed[id].upper))
            s->v_census[0][x] |= bit;
        if (all || nibbles_meet(x, vneed[id].dots, vneed[id].colons))
            s->v_census[1][x] |= bit;
        if (all || nibbles_meet(x, vneed[id].at, vneed[id].eq))
            s->v_census[2][x] |= bit;
        if (all || x >= vneed[id].phone)
            s->v_census[3][x] |= bit;
    }
}

/* The detectors that may match somewhere in t[0..n) (a superset: each still checks). */
static inline uint32_t value_ids(const det_set *set, const unsigned char *t, size_t n)
{
    if (n >= DET_VSHORT)
        return set->v_len[n < DET_VLEN_MAX ? n : DET_VLEN_MAX];
    uint32_t c = 0, c2 = 0; /* n < 16: no nibble overflows */
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        c += det_vcount[t[i]];
        c2 += det_vcount[t[i + 1]];
    }
    if (i < n)
        c += det_vcount[t[i]];
    c += c2;
    return set->v_len[n] & set->v_census[0][c & 255] & set->v_census[1][c >> 8 & 255] &
           set->v_census[2][c >> 16 & 255] & set->v_census[3][c >> 24];
}

int det_lookup(const char *name)
{
    for (int i = 0; name && i < DET_BUILTIN_COUNT; i++)
        if (strcmp(name, det_registry[i].name) == 0)
            return i;
    return -1;
}

const char *det_name(det_id id)
{
    return (unsigned)id < DET_BUILTIN_COUNT ? det_registry[id].name : "?";
}

size_t mm_mask_detector_count(void) { return DET_BUILTIN_COUNT; }

const char *mm_mask_detector_name(size_t i)
{
    return i < DET_BUILTIN_COUNT ? det_registry[i].name : NULL;
}

const char *mm_mask_detector_doc(size_t i)
{
    return i < DET_BUILTIN_COUNT ? det_registry[i].doc : NULL;
}

const char *mm_mask_detector_members(size_t i)
{
    return i < DET_BUILTIN_COUNT ? det_registry[i].keys : NULL;
}

/* ---- sets ----------------------------------------------------------------------------- */

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

mm_err det_set_new(det_set **out)
{
    det_init_tables();
    return (*out = mm_calloc(1, sizeof(**out))) ? MM_OK : MM_ENOMEM;
}

void det_set_free(det_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_pats; i++) {
        mm_free(s->pats[i].name);
        pcre2_code_free(s->pats[i].code);
        det_lits_free(s->pats[i].lits);
    }
    det_pf_free(s->pf);
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

mm_err det_set_use_member_names(det_set *s, det_id id)
{
    if ((unsigned)id >= DET_BUILTIN_COUNT || s->compiled || !s->on[id])
        return MM_EINVAL;
    if (det_registry[id].keys[0] && det_registry[id].valid)
        s->members[id] = s->any_members = true;
    return MM_OK;
}

bool det_set_wants_members(const det_set *s)
{
    return s->any_members;
}

mm_err det_set_add_pattern(det_set *s, const char *name, const char *regex, int tag,
                           mm_errbuf *eb)
{
    int code;
    PCRE2_SIZE off;
    det_pattern *p;
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
    /* pcre2_jit_match skips the UTF check, and a UTF pattern on invalid UTF-8 is undefined
     * behaviour there; pcre2_match checks first (and still runs the JIT code), so such a
     * value fails closed (MM_ELIMIT) instead */
    uint32_t all = 0;
    pcre2_pattern_info(p->code, PCRE2_INFO_ALLOPTIONS, &all);
    p->utf = (all & PCRE2_UTF) != 0;
    p->tag = tag;
    s->n_pats++; /* owned by the set from here, freed with it */
    if (det_lits_extract(regex, &p->lits) != MM_OK)
        return mm_errf(eb, MM_ENOMEM, "pattern %s: out of memory", name);
    return MM_OK;
}

mm_err det_set_compile(det_set *s, mm_errbuf *eb)
{
    /* MM_PATTERN_PREFILTER=off runs every pattern on every value: the bench's baseline */
    const char *pf = getenv("MM_PATTERN_PREFILTER");
    if (s->n_pats && !s->exhaustive && !s->pf && !(pf && strcmp(pf, "off") == 0) &&
        det_pf_build(s->pats, s->n_pats, &s->pf) != MM_OK)
        return mm_errf(eb, MM_ENOMEM, "patterns: out of memory");
    s->pfq = s->pf ? det_pf_quick_of(s->pf) : NULL;
    /* without rare bytes the quick check decides little (the automaton reads the value as
     * fast), and a second look at the value costs more than it saves */
    s->pf_quick = s->pfq && !s->pfq->any_always && s->pfq->n_rare;
    memset(s->trig, 0, sizeof(s->trig));
    memset(s->lens_ok, 0, sizeof(s->lens_ok));
    memset(s->first_ok, 0, sizeof(s->first_ok));
    memset(s->next_ok, 0, sizeof(s->next_ok));
    s->any_words = false;
    s->n_tbytes = 0;
    memset(s->fit, 0, sizeof(s->fit));
    memset(s->bfit, 0, sizeof(s->bfit));
    memset(s->byte_ids, 0, sizeof(s->byte_ids));
    memset(s->v_len, 0, sizeof(s->v_len));
    memset(s->v_census, 0, sizeof(s->v_census));
    for (int id = 0; id < DET_BUILTIN_COUNT; id++) {
        const det_entry *e = &det_registry[id];
        if (!s->on[id])
            continue;
        s->any_builtin = true;
        value_tables(s, (int)id);
        uint32_t lens = prefilter[id].lens && !s->exhaustive ? prefilter[id].lens : ~0u;
        const char *next = s->exhaustive ? NULL : prefilter[id].next;
        for (int c = 0; c < 256; c++)
            if (!next || (c && strchr(next, c)))
                s->next_ok[c] |= 1u << id;
        for (int r = s->exhaustive ? 0 : prefilter[id].min; r <= DET_FIT_MAX; r++)
            s->fit[r] |= 1u << id;
        for (int r = s->exhaustive ? 0 : prefilter[id].bmin; r <= DET_FIT_MAX; r++)
            s->bfit[r] |= 1u << id;
        const char *first = s->exhaustive ? NULL : prefilter[id].first;
        for (int l = 1; l < 32 && e->words; l++)
            if (lens >> l & 1) {
                s->lens_ok[l] |= 1u << id;
                s->any_words = true;
            }
        for (int c = 1; c < 256 && e->words; c++) {
            unsigned char cl = det_cls[c];
            unsigned wc = (cl & C_DIGIT) ? W_DIGIT : (cl & C_UPPER) ? W_UPPER : W_LOWER;
            if ((cl & C_ALNUM) && (e->words & wc) && (!first || strchr(first, c)))
                s->first_ok[c] |= 1u << id;
        }
        for (const char *b = e->bytes; *b; b++) {
            if (!(s->trig[(unsigned char)*b] & T_BYTE) && s->n_tbytes++ < sizeof(s->tbytes))
                s->tbytes[s->n_tbytes - 1] = (unsigned char)*b;
            s->trig[(unsigned char)*b] |= T_BYTE;
            s->byte_ids[(unsigned char)*b] |= 1u << id;
        }
    }
    /* every letter and digit is a word byte once some detector starts at words: a word is
     * skipped whole, so a match never starts inside one ("x4111..." holds no card) */
    if (s->any_words)
        for (int c = 0; c < 256; c++)
            if (is_alnum((unsigned char)c))
                s->trig[c] |= T_WORD;
    det_ttab(s->tbytes, s->n_tbytes, s->ttab);
    s->compiled = true;
    return MM_OK;
}

void det_set_exhaustive(det_set *s)
{
    s->exhaustive = true;
}

bool det_set_has(const det_set *s, det_id id)
{
    return (unsigned)id < DET_BUILTIN_COUNT && s->on[id];
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

/* ---- scratch -------------------------------------------------------------------------- */

mm_err det_scratch_new(const det_set *s, det_scratch **out)
{
    det_scratch *sc = mm_calloc(1, sizeof(*sc));
    if (!sc)
        return MM_ENOMEM;
    sc->set = s;
    if (s->n_tbytes <= DET_MASK_BYTES)
        sc->masks = simd_det_masks(simd_chosen());
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

/* ---- the scan loop -------------------------------------------------------------------- */

/* May detector `id` be tried at i? (not inside its own previous match) */
static inline bool may(const scan *s, det_id id, size_t i)
{
    return i >= det_next(s, id);
}

/* The SIMD filter's masks for the 64 bytes from t[at] (no bits past the end: no trigger). */
static inline void window(const scan *s, det_mask_fn masks, size_t at, size_t *wb,
                          uint64_t *al, uint64_t *hit)
{
    masks(s->t + at, s->n - at, s->set->ttab, al, hit);
    *wb = at;
}

/* The detectors that may start at the word t[i..w) (at its first byte, of its length, before
 * the byte after it, with room enough left), each tried in id order. */
static inline void try_word(scan *s, size_t i, size_t w)
{
    const det_set *set = s->set;
    uint32_t m = set->first_ok[s->t[i]] & set->lens_ok[w - i < 31 ? w - i : 31] & s->ids;
    if (!m) /* most words: no detector starts at this byte and length */
        return;
    m &= set->next_ok[w < s->n ? s->t[w] : 0] &
         set->fit[s->n - i < DET_FIT_MAX ? s->n - i : DET_FIT_MAX];
    while (m) {
        det_id id = (det_id)__builtin_ctz(m);
        m &= m - 1;
        if (may(s, id, i) && det_registry[id].shape(s, i, w))
            det_registry[id].find(s, i, w);
    }
}

/* The detectors that start at trigger byte t[i] (and fit before the end), in id order. */
static inline void try_byte(scan *s, size_t i)
{
    const det_set *set = s->set;
    uint32_t m = set->byte_ids[s->t[i]] & s->ids &
                 set->bfit[s->n - i < DET_FIT_MAX ? s->n - i : DET_FIT_MAX];
    while (m) {
        det_id id = (det_id)__builtin_ctz(m);
        m &= m - 1;
        if (may(s, id, i) && det_registry[id].shape(s, i, i + 1))
            det_registry[id].find(s, i, i + 1);
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
        if (trig[t[i]] & T_WORD) {
            size_t w = i + 1;
            while (w < n && is_alnum(t[w]))
                w++;
            try_word(s, i, w);
            i = w;
            continue;
        }
        try_byte(s, i);
        i++;
    }
}

/* scan_builtins with the trigger filter over 64 bytes at a time (simd_int.h): the same
 * bytes are tried in the same order. For values of 64 bytes or more. */
static void scan_builtins_simd(scan *s)
{
    det_mask_fn masks = s->sc->masks;
    const size_t n = s->n;
    uint64_t al, hit, words = s->set->any_words ? ~0ull : 0;
    size_t i = 0, wb;

    window(s, masks, 0, &wb, &al, &hit);
    for (;;) {
        while (i < n) { /* the next trigger: a letter or digit (when words are on) or byte */
            if (i >= wb + 64)
                window(s, masks, i, &wb, &al, &hit);
            uint64_t m = ((al & words) | hit) >> (i - wb);
            if (m) {
                i += (size_t)__builtin_ctzll(m);
                break;
            }
            i = wb + 64;
        }
        if (i >= n)
            break;
        if (words & al >> (i - wb) & 1) {
            size_t w = i + 1;
            while (w < n) { /* the end of the word */
                if (w >= wb + 64)
                    window(s, masks, w, &wb, &al, &hit);
                uint64_t m = ~al >> (w - wb);
                if (m) {
                    w += (size_t)__builtin_ctzll(m);
                    break;
                }
                w = wb + 64;
            }
            if (w > n)
                w = n;
            try_word(s, i, w);
            i = w;
            continue;
        }
        try_byte(s, i);
        i++;
    }
}

/* scan_builtins for a value shorter than 64 bytes, from one pair of masks: the words' first
 * bytes and the trigger bytes outside words are the bits of one word, tried in order, each
 * word's end found from the mask (the bytes tried are those scan_builtins tries). */
static void scan_builtins_short(scan *s)
{
    const det_set *set = s->set;
    uint64_t al, hit;

    s->sc->masks(s->t, s->n, set->ttab, &al, &hit);
    const uint64_t words = set->any_words ? al : 0;
    for (uint64_t m = (words & ~(words << 1)) | (hit & ~words); m; m &= m - 1) {
        size_t i = (size_t)__builtin_ctzll(m);
        if (words >> i & 1) /* n < 64: a bit past the end is clear, so the word ends */
            try_word(s, i, i + (size_t)__builtin_ctzll(~(words >> i)));
        else
            try_byte(s, i);
    }
}

/* ---- member names as evidence --------------------------------------------------------- */

/* Is the member name (lowercase, without '_', '-', '.' and spaces) one of `keys`? */
static bool member_is(const char *keys, const char *member, size_t mlen)
{
    char norm[DET_MAX_MEMBER];
    size_t n = 0;

    if (mlen > DET_MAX_MEMBER)
        return false;
    for (size_t k = 0; k < mlen; k++) {
        unsigned char c = (unsigned char)member[k];
        if (c == '_' || c == '-' || c == '.' || c == ' ')
            continue;
        norm[n++] = (char)(is_upper(c) ? c + 32 : c);
    }
    while (*keys) {
        const char *bar = strchr(keys, '|');
        size_t kl = bar ? (size_t)(bar - keys) : strlen(keys);
        if (kl == n && memcmp(keys, norm, n) == 0)
            return true;
        keys += kl + (bar != NULL);
    }
    return false;
}

/* The whole value, its separators (spaces, dashes, dots, parentheses, a leading '+')
 * dropped, checked by the validators of the detectors that take this member name. */
static void scan_member(scan *s, const char *member, size_t mlen)
{
    unsigned char v[64];
    size_t nv = 0, a = 0, b = s->n;

    while (a < b && s->t[a] == ' ')
        a++;
    while (b > a && s->t[b - 1] == ' ')
        b--;
    if (b - a == 0 || b - a > sizeof(v))
        return;
    for (size_t k = a; k < b; k++) {
        unsigned char c = s->t[k];
        if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || (c == '+' && k == a))
            continue;
        v[nv++] = c;
    }
    for (int id = 0; id < DET_BUILTIN_COUNT; id++) {
        const det_entry *e = &det_registry[id];
        if (!s->set->members[id] || det_next(s, (det_id)id) > a || !member_is(e->keys, member, mlen))
            continue;
        if (e->valid(v, nv))
            det_found(s, (det_id)id, a, b);
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

/* Runs pattern p over the whole value, reporting every non-empty match. */
static void run_pattern(scan *s, size_t p)
{
    const det_pattern *pt = &s->set->pats[p];
    det_scratch *sc = s->sc;
    pcre2_match_data *md = sc->md[p];
    PCRE2_SIZE off = 0;

    while (off <= s->n && s->rc == MM_OK) {
        int r = pt->jit && !pt->utf ? pcre2_jit_match(pt->code, s->t, s->n, off, 0, md, sc->mctx)
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
            det_add(s, char_start(s->t, ov[0]), next, pt->tag, pt->name);
        } else { /* empty (or \K-reversed): nothing to mask; move on one character */
            next = (ov[0] > off ? ov[0] : off) + 1;
            next = char_end(s->t, s->n, next);
        }
        if (next <= off)
            next = off + 1;
        off = next;
    }
}

/* Every pattern the prefilter lets through (all of them without one), in order: the others
 * hold none of their literals in the value, so they cannot match. */
static void scan_patterns(scan *s)
{
    const det_set *set = s->set;
    uint64_t maybe[DET_PF_WORDS];

    if (set->pf) {
        if (set->pf_quick && det_pf_none(set->pfq, s->t, s->n))
            return;
        det_pf_scan(set->pf, s->t, s->n, maybe);
    }
    for (size_t w = 0; w * 64 < set->n_pats && s->rc == MM_OK; w++)
        for (uint64_t m = set->pf ? maybe[w] : ~0ull; m && s->rc == MM_OK; m &= m - 1) {
            size_t p = w * 64 + (size_t)__builtin_ctzll(m);
            if (p >= set->n_pats)
                break;
            run_pattern(s, p);
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

/* The scan of a value the filter lets some detector through for (or that has patterns or
 * a member name to read), kept out of det_scan_member so that the values nothing can match
 * in cost no more than their census. */
static __attribute__((noinline)) mm_err scan_value(const det_set *set, det_scratch *sc,
                                                   const unsigned char *t, size_t n,
                                                   const char *member, size_t mlen,
                                                   det_match_fn cb, void *ctx)
{
    scan s; /* next[] is not cleared: det_next reads it only where `found` says */
    const uint32_t ids = sc->ids;
    mm_err rc;

    s.set = set;
    s.sc = sc;
    s.t = t;
    s.n = n;
    s.ids = ids;
    s.found = 0;
    s.rc = MM_OK;
    if (ids && n >= 64 && sc->masks && !set->exhaustive)
        scan_builtins_simd(&s);
    else if (ids && n >= DET_SIMD_MIN && sc->masks && !set->exhaustive)
        scan_builtins_short(&s);
    else if (ids)
        scan_builtins(&s);
    if (member && set->any_members && s.rc == MM_OK)
        scan_member(&s, member, mlen);
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

/* A value no built-in detector can match in: the patterns' scan, unless the prefilter tells
 * at once that none can match either (most values: shorter than every literal, or short and
 * without the one rare byte). Only what det_pf_none decides without a call is decided here,
 * so this is a leaf up to its jump to scan_value (whose scan_patterns asks the rest); out of
 * line, so that det_scan_member stays as light for the values it decides itself. */
static __attribute__((noinline)) mm_err scan_patterns_only(const det_set *set, det_scratch *sc,
                                                           const unsigned char *t, size_t n,
                                                           const char *member, size_t mlen,
                                                           det_match_fn cb, void *ctx)
{
    const det_pf_quick *q = set->pfq; /* pf_quick: every pattern has literals, rare bytes */
    if (n < q->min_len || (n <= 16 && q->n_rare == 1 && !det_has_byte(t, n, q->rare1)))
        return MM_OK;
    return scan_value(set, sc, t, n, member, mlen, cb, ctx); /* a jump: the same arguments */
}

mm_err det_scan_member(const det_set *set, det_scratch *sc, const char *text, size_t n,
                       const char *member, size_t mlen, det_match_fn cb, void *ctx)
{
    const unsigned char *t = (const unsigned char *)text;

    if (sc->set != set || sc->n_md != set->n_pats || !set->compiled)
        return MM_EINVAL; /* scratch made for another set, or the set not compiled */
    sc->n = 0;
    /* scan_value takes ids through the scratch: with det_scan_member's own arguments the
     * call is a jump, and the values decided here save no registers */
    if (!(sc->ids = value_ids(set, t, n)) && !(member && set->any_members))
        return !set->n_pats ? MM_OK
               : set->pf_quick ? scan_patterns_only(set, sc, t, n, member, mlen, cb, ctx)
                               : scan_value(set, sc, t, n, member, mlen, cb, ctx);
    return scan_value(set, sc, t, n, member, mlen, cb, ctx);
}

mm_err det_scan(const det_set *set, det_scratch *sc, const char *text, size_t n, det_match_fn cb,
                void *ctx)
{
    return det_scan_member(set, sc, text, n, NULL, 0, cb, ctx);
}
