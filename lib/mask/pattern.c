/* lib/mask: the prefilter in front of custom PCRE2 patterns (issue 17).
 *
 * Each pattern's text is read once, when it is added, for the literals a match needs: a set
 * of strings such that the subject holds one of them (ASCII case folded) whenever the pattern
 * matches anywhere in it. "ORD-[0-9]{8}" needs "ord-"; "(?:sk|rk)_live_" needs "sk_live_" or
 * "rk_live_"; "(?<=id=)\d+" needs "id=". The analysis is the usual one for regex prefilters
 * (Google Code Search's trigram queries, Hyperscan's literal factors): per piece, the exact
 * set of strings it matches while that is small, and the best set of required strings seen.
 * It reads only the syntax it fully knows; anything else ((*VERB)s, (?x) extended mode,
 * conditionals, recursion, \g and \k references, non-ASCII bytes) is either an opaque piece
 * with no literal or, where it could change how the rest reads, gives the pattern no
 * literals: it then runs on every value. Folding every literal and every subject byte to
 * lower case makes (?i) anywhere harmless: the filter only ever says "may match" more often.
 * A literal is only used to skip a pattern on a value that lacks it, so a match is never lost;
 * a value the filter skips cannot reach PCRE2's match limit either (the only other change).
 *
 * At det_set_compile the literals of all patterns go into one Aho-Corasick automaton over
 * folded byte classes, so a value is read once for all patterns instead of once per pattern;
 * det_pf_scan marks the patterns whose literal occurs, and scan_patterns runs only those.
 * The automaton only leaves its root at a byte some literal starts with, which in text is
 * often (the 'e' of "emp-"); so each literal also names its rarest byte (by a fixed guess of
 * byte frequencies, as memchr-based searchers do), and at the root the scan jumps to where a
 * literal holding the next such byte could start; a value without one (most values: one
 * memchr when there is a single such byte) or shorter than every literal is done at once. */
#include "mask/detect_int.h"

#include <stdlib.h>
#include <string.h>

#define PF_LIT 16         /* bytes kept of a literal (a prefix of a required string is too) */
#define PF_ALTS 16        /* strings per set */
#define PF_DEPTH 64       /* group nesting read; deeper patterns get no literals */
#define PF_STATES 4096    /* automaton states for all patterns together */

typedef struct {
    unsigned char n;
    unsigned char b[PF_LIT];
} pf_str;

typedef struct {
    int n; /* -1: unknown (exact) or no requirement (req) */
    pf_str s[PF_ALTS];
} pf_set;

/* What a piece of pattern tells: the exact (folded) strings it consumes, when few and short,
 * and strings one of which the subject holds whenever the piece matches. */
typedef struct {
    pf_set exact;
    pf_set req;
} pf_info;

struct det_lits {
    size_t n;
    pf_str s[PF_ALTS];
};

typedef struct {
    const unsigned char *p;
    size_t i, n;
    bool bad; /* syntax this reader does not know: no literals for the pattern */
} pf_rd;

static unsigned char fold(unsigned char c) { return is_upper(c) ? (unsigned char)(c + 32) : c; }

/* ---- sets ----------------------------------------------------------------------------- */

static void info_empty(pf_info *x) /* matches the empty string only: zero-width */
{
    x->exact.n = 1;
    x->exact.s[0].n = 0;
    x->req.n = -1;
}

static void info_opaque(pf_info *x) /* consumes something this reader does not spell */
{
    x->exact.n = -1;
    x->req.n = -1;
}

static void info_char(pf_info *x, unsigned char c)
{
    x->exact.n = 1;
    x->exact.s[0].n = 1;
    x->exact.s[0].b[0] = fold(c);
    x->req.n = -1;
}

/* Higher is more selective: the shortest string counts most, then fewer strings. */
static int score(const pf_set *s)
{
    int min = PF_LIT + 1;
    if (s->n <= 0)
        return -1;
    for (int k = 0; k < s->n; k++)
        if (s->s[k].n < min)
            min = s->s[k].n;
    return min == 0 ? -1 : min * 32 - s->n;
}

static void keep_best(pf_set *req, const pf_set *cand)
{
    if (score(cand) > score(req))
        *req = *cand;
}

/* The exact strings are required strings too. */
static void finish(pf_info *x)
{
    keep_best(&x->req, &x->exact);
}

/* The strings a then b spell (*o), false when more than PF_ALTS; *cut when some were longer
 * than PF_LIT and kept as their first PF_LIT bytes (still required, no longer exact). */
static bool product(const pf_set *a, const pf_set *b, pf_set *o, bool *cut)
{
    *cut = false;
    if (a->n * b->n > PF_ALTS)
        return false;
    o->n = 0;
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < b->n; j++) {
            const pf_str *l = &a->s[i], *r = &b->s[j];
            pf_str *w = &o->s[o->n++];
            size_t rn = r->n < PF_LIT - l->n ? r->n : PF_LIT - l->n;
            memcpy(w->b, l->b, l->n);
            memcpy(w->b + l->n, r->b, rn);
            w->n = (unsigned char)(l->n + rn);
            *cut |= l->n + r->n > PF_LIT;
        }
    return true;
}

static void concat(pf_info *x, const pf_info *y)
{
    pf_set p;
    bool cut;
    keep_best(&x->req, &y->req);
    if (x->exact.n < 0 || y->exact.n < 0 || !product(&x->exact, &y->exact, &p, &cut)) {
        x->exact.n = -1;
        return;
    }
    if (cut) {
        keep_best(&x->req, &p);
        x->exact.n = -1;
        return;
    }
    x->exact = p;
    finish(x);
}

/* The exact strings of the pieces since the last one without (`run`) go on with e: the
 * text matched holds one of them even where the whole sequence has no exact set. */
static void extend(pf_set *req, pf_set *run, const pf_set *e)
{
    pf_set p;
    bool cut;
    if (e->n >= 0 && product(run, e, &p, &cut) && !cut) {
        *run = p;
        return;
    }
    keep_best(req, run);
    if (e->n >= 0 && product(run, e, &p, &cut))
        keep_best(req, &p); /* cut to PF_LIT bytes */
    if (e->n >= 0) {
        *run = *e;
    } else {
        run->n = 1;
        run->s[0].n = 0;
    }
}

/* a |= b (exact, or required strings); over PF_ALTS strings it is unknown */
static void set_union(pf_set *a, const pf_set *b)
{
    if (a->n < 0 || b->n < 0 || a->n + b->n > PF_ALTS) {
        a->n = -1;
        return;
    }
    memcpy(&a->s[a->n], b->s, (size_t)b->n * sizeof(b->s[0]));
    a->n += b->n;
}

static void alternate(pf_info *x, const pf_info *y)
{
    set_union(&x->exact, &y->exact);
    set_union(&x->req, &y->req);
    finish(x);
}

/* ---- reading the pattern -------------------------------------------------------------- */

static int peek(const pf_rd *r, size_t k) { return r->i + k < r->n ? r->p[r->i + k] : -1; }

static bool starts(const pf_rd *r, const char *s)
{
    size_t k = strlen(s);
    return r->n - r->i >= k && memcmp(r->p + r->i, s, k) == 0;
}

static bool is_quant(int c) { return c == '*' || c == '+' || c == '?' || c == '{'; }

static bool is_hex(int c) { return c >= 0 && (det_cls[c] & C_HEX); }

/* Skips to and past `end`; false when the pattern ends first. */
static bool skip_past(pf_rd *r, int end)
{
    while (r->i < r->n && r->p[r->i] != end)
        r->i++;
    if (r->i >= r->n)
        return false;
    r->i++;
    return true;
}

/* An escape after the backslash (outside a class): one character in *c (returns 1), a
 * zero-width assertion (0), or an opaque item (2). */
static int escape(pf_rd *r, unsigned char *c)
{
    int e = peek(r, 0);
    static const char ctl[] = "n\nt\tr\rf\fe\033a\007";
    if (e < 0) {
        r->bad = true;
        return 2;
    }
    r->i++;
    if (e >= 0x80) { /* a byte of a non-ASCII character: opaque */
        return 2;
    }
    if (!is_alnum((unsigned char)e)) { /* \. \- \\ ... the character itself */
        *c = (unsigned char)e;
        return 1;
    }
    for (const char *k = ctl; *k; k += 2)
        if (*k == e) {
            *c = (unsigned char)k[1];
            return 1;
        }
    if (strchr("bBAzZGKE", e))
        return 0;
    if (strchr("dDwWsShHvVRXC", e))
        return 2;
    if (e == 'x') { /* \xHH, \x{H...}: a character; only ASCII ones are spelled */
        unsigned v = 0;
        if (peek(r, 0) == '{') {
            if (!skip_past(r, '}'))
                r->bad = true;
            return 2;
        }
        for (int k = 0; k < 2 && is_hex(peek(r, 0)); k++, r->i++) {
            int h = r->p[r->i];
            v = v * 16 + (unsigned)(is_digit((unsigned char)h) ? h - '0' : (h | 32) - 'a' + 10);
        }
        if (v >= 0x80)
            return 2;
        *c = (unsigned char)v;
        return 1;
    }
    if (is_digit((unsigned char)e)) { /* octal or a back reference: opaque, digits and all */
        while (r->i < r->n && is_digit(r->p[r->i]))
            r->i++;
        return 2;
    }
    if (e == 'p' || e == 'P') { /* \pL, \p{...} */
        if (peek(r, 0) == '{') {
            if (!skip_past(r, '}'))
                r->bad = true;
        } else if (peek(r, 0) >= 0) {
            r->i++;
        }
        return 2;
    }
    if (e == 'c' && peek(r, 0) >= 0x20 && peek(r, 0) < 0x7f) { /* \cX: a control character */
        r->i++;
        return 2;
    }
    if (e == 'N' && peek(r, 0) != '{')
        return 2;
    r->bad = true; /* \g \k \o \N{...} \Q (handled by the caller) and the rest */
    return 2;
}

/* A character class from after '['; its exact set when it holds at most three (folded)
 * ASCII characters, opaque otherwise. */
static void char_class(pf_rd *r, pf_info *x)
{
    bool in[128] = {false}, big = false, neg = false;
    int prev = -1; /* the last single character, for a range */

    if (peek(r, 0) == '^') {
        neg = true;
        r->i++;
    }
    if (peek(r, 0) == ']') { /* a ']' first is itself */
        in[']'] = true;
        prev = ']';
        r->i++;
    }
    for (;;) {
        int c = peek(r, 0);
        if (c < 0) {
            r->bad = true;
            return;
        }
        r->i++;
        if (c == ']')
            break;
        if (c == '[' && (peek(r, 0) == ':' || peek(r, 0) == '.' || peek(r, 0) == '=')) {
            int end = peek(r, 0); /* [:alpha:] and the like: many characters */
            r->i++;
            while (r->i + 1 < r->n && !(r->p[r->i] == end && r->p[r->i + 1] == ']'))
                r->i++;
            if (r->i + 1 >= r->n) {
                r->bad = true;
                return;
            }
            r->i += 2;
            big = true;
            prev = -1;
            continue;
        }
        if (c == '\\') {
            int e = peek(r, 0);
            if (e < 0 || e == 'Q' || e == 'E') { /* quoting inside a class: not read here */
                r->bad = true;
                return;
            }
            if (e == 'b') { /* a backspace in a class */
                r->i++;
                c = '\b';
            } else {
                unsigned char ch;
                int k = escape(r, &ch);
                if (k != 1) {
                    big = true;
                    prev = -1;
                    continue;
                }
                c = ch;
            }
        } else if (c >= 0x80) {
            big = true;
            prev = -1;
            continue;
        }
        if (c == '-' && prev >= 0 && peek(r, 0) >= 0 && peek(r, 0) != ']') {
            int hi = peek(r, 0); /* a range prev-hi; an escaped end makes it big */
            r->i++;
            if (hi == '\\' || hi == '[' || hi >= 0x80 || hi - prev > 3) {
                if (hi == '\\' && peek(r, 0) >= 0)
                    r->i++;
                big = true;
            } else {
                for (int k = prev; k <= hi; k++)
                    in[k] = true;
            }
            prev = -1;
            continue;
        }
        in[c] = true;
        prev = c;
    }
    if (neg || big) {
        info_opaque(x);
        return;
    }
    x->exact.n = 0;
    x->req.n = -1;
    for (int c = 0; c < 128; c++) {
        if (!in[c] || (is_upper((unsigned char)c) && in[c + 32]))
            continue;
        if (x->exact.n == 3) {
            info_opaque(x);
            return;
        }
        x->exact.s[x->exact.n].n = 1;
        x->exact.s[x->exact.n++].b[0] = fold((unsigned char)c);
    }
    if (!x->exact.n)
        info_opaque(x);
}

static void alternation(pf_rd *r, pf_info *x, int depth);

/* Inline flags "(?imsnUJ-^)" or "(?...:"; other letters (x above all) are not read here. */
static bool flags_ok(pf_rd *r)
{
    while (r->i < r->n && strchr("imsnUJ-^", r->p[r->i]))
        r->i++;
    return r->i < r->n && (r->p[r->i] == ')' || r->p[r->i] == ':');
}

/* A group from after '('. */
static void group(pf_rd *r, pf_info *x, int depth)
{
    pf_info in;
    int kind = 0; /* 0: plain, 1: positive lookaround, 2: negative lookaround */

    if (peek(r, 0) == '*') { /* (*VERB) and (*pla:...) forms */
        r->bad = true;
        return;
    }
    if (peek(r, 0) == '?') {
        r->i++;
        if (starts(r, "#")) {
            if (!skip_past(r, ')'))
                r->bad = true;
            info_empty(x);
            return;
        }
        if (starts(r, ":") || starts(r, ">") || starts(r, "|")) {
            r->i++;
        } else if (starts(r, "=") || starts(r, "<=")) {
            r->i += peek(r, 0) == '<' ? 2 : 1;
            kind = 1;
        } else if (starts(r, "!") || starts(r, "<!")) {
            r->i += peek(r, 0) == '<' ? 2 : 1;
            kind = 2;
        } else if (starts(r, "<") || starts(r, "P<") || starts(r, "'")) {
            int end = peek(r, 0) == '\'' ? '\'' : '>';
            if (!skip_past(r, end)) {
                r->bad = true;
                return;
            }
        } else if (flags_ok(r)) {
            if (r->p[r->i++] == ')') { /* (?i): the rest reads the same, folded */
                info_empty(x);
                return;
            }
        } else {
            r->bad = true; /* recursion, conditionals, callouts, (?P=, (?x) ... */
            return;
        }
    }
    alternation(r, &in, depth + 1);
    if (r->bad || peek(r, 0) != ')') {
        r->bad = true;
        return;
    }
    r->i++;
    if (kind == 0) {
        *x = in;
    } else { /* consumes nothing; a positive one still needs its text in the subject */
        info_empty(x);
        if (kind == 1)
            x->req = in.req;
    }
}

/* A quantifier after a piece, if any: its least count in *min (and whether the most is
 * one); false when there is none. */
static bool quantifier(pf_rd *r, unsigned long *min, bool *one)
{
    int c = peek(r, 0);
    if (c == '*' || c == '+' || c == '?') {
        r->i++;
        *min = c == '+';
        *one = c == '?';
    } else if (c == '{') {
        size_t k = r->i + 1, d0, d1 = 0;
        unsigned long lo = 0, hi = 0;
        bool comma = false;
        for (d0 = k; k < r->n && is_digit(r->p[k]) && lo < 100000; k++)
            lo = lo * 10 + (unsigned long)(r->p[k] - '0');
        d0 = k - d0;
        if (d0 && k < r->n && r->p[k] == ',') {
            comma = true;
            for (d1 = ++k; k < r->n && is_digit(r->p[k]) && hi < 100000; k++)
                hi = hi * 10 + (unsigned long)(r->p[k] - '0');
            d1 = k - d1;
        }
        if (!d0 || k >= r->n || r->p[k] != '}') {
            /* "{x" is text; "{,n}" and "{ 1 }" read differently across PCRE2 versions */
            int f = peek(r, 1);
            if (f == ',' || f == ' ' || (f >= 0 && is_digit((unsigned char)f)))
                r->bad = true;
            return false;
        }
        r->i = k + 1;
        *min = lo;
        *one = comma ? d1 && hi == 1 : lo == 1;
    } else {
        return false;
    }
    if (peek(r, 0) == '+' || peek(r, 0) == '?') /* possessive, lazy: the same strings */
        r->i++;
    return true;
}

static void repeat(pf_info *x, unsigned long min, bool one)
{
    finish(x);
    if (min >= 1) {
        if (!(min == 1 && one))
            x->exact.n = -1; /* x at least once: its required strings still hold */
        return;
    }
    x->req.n = -1; /* may be absent */
    if (one && x->exact.n >= 0 && x->exact.n < PF_ALTS) {
        x->exact.s[x->exact.n++].n = 0;
        return;
    }
    x->exact.n = -1;
}

/* One piece (an atom and its quantifier). */
static void piece(pf_rd *r, pf_info *x, int depth)
{
    int c = r->p[r->i++];
    unsigned char ch;
    unsigned long min;
    bool one;

    switch (c) {
    case '(':
        if (depth >= PF_DEPTH) {
            r->bad = true;
            return;
        }
        group(r, x, depth);
        break;
    case '[':
        char_class(r, x);
        break;
    case '.':
        info_opaque(x);
        break;
    case '^':
    case '$':
        info_empty(x);
        break;
    case '\\':
        if (peek(r, 0) == 'Q') { /* \Q...\E: every character as it is */
            r->i++;
            info_empty(x);
            while (r->i < r->n && !starts(r, "\\E")) {
                pf_info y;
                if (r->p[r->i] >= 0x80)
                    info_opaque(&y);
                else
                    info_char(&y, r->p[r->i]);
                r->i++;
                concat(x, &y);
            }
            if (r->i < r->n)
                r->i += 2;
            if (is_quant(peek(r, 0)))
                r->bad = true; /* it would apply to the last character: not read here */
            return;
        }
        switch (escape(r, &ch)) {
        case 0:
            info_empty(x);
            break;
        case 1:
            info_char(x, ch);
            break;
        default:
            info_opaque(x);
        }
        break;
    default:
        if (c == '{' && r->i < r->n && (is_digit(r->p[r->i]) || r->p[r->i] == ',')) {
            r->bad = true; /* a quantifier with nothing before it */
            return;
        }
        if (c >= 0x80)
            info_opaque(x);
        else
            info_char(x, (unsigned char)c);
    }
    if (r->bad)
        return;
    if (quantifier(r, &min, &one)) {
        repeat(x, min, one);
        if (is_quant(peek(r, 0)))
            r->bad = true; /* a second quantifier: not read here */
    } else if (c == '\\' && r->p[r->i - 1] == 'E' && is_quant(peek(r, 0))) {
        r->bad = true; /* "a\E+": the quantifier reaches back over \E */
    }
}

/* Pieces up to '|', ')' or the end. */
static void sequence(pf_rd *r, pf_info *x, int depth)
{
    pf_set run;
    info_empty(x);
    run = x->exact;
    while (!r->bad && r->i < r->n && r->p[r->i] != '|' && r->p[r->i] != ')') {
        pf_info y;
        piece(r, &y, depth);
        if (r->bad)
            return;
        concat(x, &y);
        extend(&x->req, &run, &y.exact);
    }
    keep_best(&x->req, &run);
}

static void alternation(pf_rd *r, pf_info *x, int depth)
{
    sequence(r, x, depth);
    while (!r->bad && peek(r, 0) == '|') {
        pf_info y;
        r->i++;
        sequence(r, &y, depth);
        alternate(x, &y);
    }
}

mm_err det_lits_extract(const char *regex, det_lits **out)
{
    pf_rd r = {(const unsigned char *)regex, 0, strlen(regex), false};
    pf_info x;

    *out = NULL;
    det_init_tables(); /* is_alnum and is_hex read them */
    alternation(&r, &x, 0);
    if (r.bad || r.i != r.n)
        return MM_OK;
    finish(&x);
    if (score(&x.req) < 0)
        return MM_OK;
    det_lits *l = mm_calloc(1, sizeof(*l));
    if (!l)
        return MM_ENOMEM;
    l->n = (size_t)x.req.n;
    memcpy(l->s, x.req.s, l->n * sizeof(l->s[0]));
    *out = l;
    return MM_OK;
}

void det_lits_free(det_lits *l) { mm_free(l); }

size_t det_lits_count(const det_lits *l) { return l ? l->n : 0; }

const unsigned char *det_lits_get(const det_lits *l, size_t k, size_t *len)
{
    *len = l->s[k].n;
    return l->s[k].b;
}

/* ---- the automaton -------------------------------------------------------------------- */

/* Bytes from the most to the least frequent in JSON and text (a guess, as memchr-style
 * searchers make one): the rarest byte of a literal is the one the scan looks for. Letters
 * stand for both cases; bytes not listed are rarer than all of these. */
static const char pf_common[] = " e\"t:a,oinsr0h1l2d.c3u4m5f6p7g8w9y-b_v/k{}x[]j=qz@&+#";

/* How often byte c (folded) is expected: the higher, the more often. */
static size_t pf_freq(unsigned char c)
{
    const char *at = c ? strchr(pf_common, c) : NULL;
    return at ? sizeof(pf_common) - (size_t)(at - pf_common) : 0;
}

struct det_pf {
    unsigned char cls[256]; /* folded byte -> class; 0: in no literal */
    /* the rare bytes (q.rare): each literal holds one of them at most rare_back bytes from
     * its start; so at the root a literal can only start rare_back bytes before the next of
     * them, and a value without one holds no literal */
    det_pf_quick q;
    size_t rare_back;
    size_t ncls, nstates, words;
    uint16_t *delta;   /* [state * ncls + class] */
    uint64_t *out;     /* [state * words]: patterns whose literal ends here */
    bool *accept;      /* out[state] not all zero */
    uint64_t always[DET_PF_WORDS]; /* patterns with no literal */
    uint64_t some[DET_PF_WORDS];   /* patterns with literals */
};

void det_pf_free(det_pf *pf)
{
    if (!pf)
        return;
    mm_free(pf->delta);
    mm_free(pf->out);
    mm_free(pf->accept);
    mm_free(pf);
}

/* Literal s's rarest byte (a letter counts both its cases) into pf->rare; and its length
 * into min_len (which starts at SIZE_MAX). */
static void rare_add(det_pf *pf, const pf_str *s)
{
    size_t best = 0;
    for (size_t j = 1; j < s->n; j++)
        if (pf_freq(s->b[j]) + is_lower(s->b[j]) < pf_freq(s->b[best]) + is_lower(s->b[best]))
            best = j;
    unsigned char b = s->b[best];
    pf->q.rare[b] = true;
    if (is_lower(b))
        pf->q.rare[b - 32] = true;
    if (best > pf->rare_back)
        pf->rare_back = best;
    if (s->n < pf->q.min_len)
        pf->q.min_len = s->n;
}

/* The rare bytes counted once every literal is in. More than PF_RARE_MAX of them leave the
 * skip off: looking for them would cost about what the automaton's loop at the root does. */
#define PF_RARE_MAX 8
static void rare_finish(det_pf *pf)
{
    for (int c = 0; c < 256; c++)
        if (pf->q.rare[c]) {
            pf->q.rare1 = (unsigned char)c;
            pf->q.n_rare++;
        }
    if (pf->q.n_rare > PF_RARE_MAX) {
        memset(pf->q.rare, 0, sizeof(pf->q.rare));
        pf->q.n_rare = 0;
    }
    if (pf->q.min_len == SIZE_MAX)
        pf->q.min_len = 0;
}

mm_err det_pf_build(const det_pattern *pats, size_t n, det_pf **out)
{
    mm_err rc = MM_ENOMEM;
    det_pf *pf = NULL;
    uint16_t *fail = NULL, *queue = NULL;
    size_t total = 1;

    *out = NULL;
    if (n > DET_PF_WORDS * 64)
        return MM_EINVAL;
    if (!(pf = mm_calloc(1, sizeof(*pf))))
        goto out;
    pf->words = (n + 63) / 64;
    /* the classes, and which patterns fit the state budget */
    pf->ncls = 1;
    for (size_t p = 0; p < n; p++) {
        size_t need = 0;
        for (size_t k = 0; k < det_lits_count(pats[p].lits); k++)
            need += pats[p].lits->s[k].n;
        if (!need || total + need > PF_STATES) {
            pf->always[p / 64] |= 1ull << (p % 64);
            pf->q.any_always = true;
            continue;
        }
        total += need;
        pf->some[p / 64] |= 1ull << (p % 64);
        for (size_t k = 0; k < pats[p].lits->n; k++)
            for (size_t j = 0; j < pats[p].lits->s[k].n; j++) {
                unsigned char b = pats[p].lits->s[k].b[j];
                if (!pf->cls[b])
                    pf->cls[b] = (unsigned char)pf->ncls++;
            }
    }
    for (int c = 'A'; c <= 'Z'; c++)
        pf->cls[c] = pf->cls[c + 32];
    if (!(pf->delta = mm_calloc(total * pf->ncls, sizeof(*pf->delta))) ||
        !(pf->out = mm_calloc(total * pf->words, sizeof(*pf->out))) ||
        !(pf->accept = mm_calloc(total, sizeof(*pf->accept))) ||
        !(fail = mm_calloc(total, sizeof(*fail))) || !(queue = mm_calloc(total, sizeof(*queue))))
        goto out;
    /* the trie (0 in delta: no edge yet; the root is state 0, never a target), and the
     * literals' rare bytes */
    pf->nstates = 1;
    pf->q.min_len = SIZE_MAX;
    for (size_t p = 0; p < n; p++) {
        if (!(pf->some[p / 64] >> (p % 64) & 1))
            continue;
        for (size_t k = 0; k < pats[p].lits->n; k++) {
            const pf_str *s = &pats[p].lits->s[k];
            size_t st = 0;
            for (size_t j = 0; j < s->n; j++) {
                uint16_t *d = &pf->delta[st * pf->ncls + pf->cls[s->b[j]]];
                if (!*d)
                    *d = (uint16_t)pf->nstates++;
                st = *d;
            }
            pf->out[st * pf->words + p / 64] |= 1ull << (p % 64);
            pf->accept[st] = true;
            rare_add(pf, s);
        }
    }
    rare_finish(pf);
    /* breadth first: failure links, outputs along them, missing edges from the failure */
    size_t qh = 0, qt = 0;
    for (size_t c = 1; c < pf->ncls; c++)
        if (pf->delta[c])
            queue[qt++] = pf->delta[c];
    while (qh < qt) {
        size_t st = queue[qh++];
        for (size_t w = 0; w < pf->words; w++)
            pf->out[st * pf->words + w] |= pf->out[fail[st] * pf->words + w];
        pf->accept[st] |= pf->accept[fail[st]];
        for (size_t c = 1; c < pf->ncls; c++) {
            uint16_t *d = &pf->delta[st * pf->ncls + c];
            uint16_t f = pf->delta[fail[st] * pf->ncls + c];
            if (*d) {
                fail[*d] = f;
                queue[qt++] = *d;
            } else {
                *d = f;
            }
        }
    }
    *out = pf;
    pf = NULL;
    rc = MM_OK;
out:
    mm_free(fail);
    mm_free(queue);
    det_pf_free(pf);
    return rc;
}

/* The first rare byte in t[i..n), n when there is none. */
static inline size_t next_rare(const det_pf *pf, const unsigned char *t, size_t n, size_t i)
{
    if (pf->q.n_rare == 1) {
        const unsigned char *r = i < n ? memchr(t + i, pf->q.rare1, n - i) : NULL;
        return r ? (size_t)(r - t) : n;
    }
    while (i < n && !pf->q.rare[t[i]])
        i++;
    return i;
}

const det_pf_quick *det_pf_quick_of(const det_pf *pf) { return &pf->q; }

/* The automaton over t from the root, marking in maybe the patterns whose literals end;
 * with skip, r is the first rare byte (there is one), and at the root the walk jumps to where
 * a literal holding the next one could start. Inlined twice, so without skip the loop is the
 * plain one. */
static inline __attribute__((always_inline)) void walk(const det_pf *pf, const unsigned char *t,
                                                       size_t n, size_t r, uint64_t *maybe,
                                                       const bool skip)
{
    const unsigned char *cls = pf->cls;
    const size_t ncls = pf->ncls, words = pf->words;
    size_t st = 0, i = 0;

    for (;;) {
        if (!st) { /* at the root: no literal is under way */
            if (skip) { /* the next literal holds the next rare byte */
                if (r < i && (r = next_rare(pf, t, n, i)) >= n)
                    break;
                if (r - i > pf->rare_back)
                    i = r - pf->rare_back;
            }
            while (i < n && !cls[t[i]]) /* bytes in no literal keep it there */
                i++;
        }
        if (i >= n)
            break;
        st = pf->delta[st * ncls + cls[t[i++]]];
        if (pf->accept[st])
            for (size_t w = 0; w < words; w++)
                maybe[w] |= pf->out[st * words + w];
    }
}

/* det_pf_scan with the rare-byte skip; out of line, so that the plain walk's registers stay
 * as few as they were. */
static __attribute__((noinline)) void walk_rare(const det_pf *pf, const unsigned char *t,
                                                size_t n, uint64_t *maybe)
{
    size_t r;
    if (n >= pf->q.min_len && (r = next_rare(pf, t, n, 0)) < n) /* else: no literal */
        walk(pf, t, n, r, maybe, true);
}

void det_pf_scan(const det_pf *pf, const unsigned char *t, size_t n, uint64_t *maybe)
{
    memcpy(maybe, pf->always, sizeof(pf->always));
    if (pf->q.n_rare)
        walk_rare(pf, t, n, maybe);
    else
        walk(pf, t, n, 0, maybe, false);
}
