/* lib/mask: the stream maskers — JSON, NDJSON, server-sent events, text — fed in chunks.
 *
 * JSON is masked without a DOM: a byte-level state machine writes every byte no rule
 * touches as it came (runs of the input are copied whole), and buffers only what it may
 * have to change: the scalar in progress (a string, number or literal that a path selects
 * or that detectors must read) and, when some rule removes members, the separator and
 * member name before a value. Memory is bounded by the largest value, not the document.
 *
 * Decisions (DESIGN.md "Precedence" made exact):
 *  - A value a `fields` path selects (itself or through an enclosing object or array) is
 *    transformed by the lowest-numbered rule whose path selects it; rules are numbered in
 *    policy name order, then rule order. Detectors do not read it again.
 *  - Every other string and number is read by the detectors of the rules that apply in the
 *    stream's direction. Overlapping matches: the lower rule wins, then the earlier start;
 *    matches that do not overlap are each transformed, the rest of the string is copied as
 *    written (escapes included). A number that is masked becomes a string.
 *  - Literals: null stays null; true/false selected by a path are transformed as strings.
 *  - remove drops the member (with its separator) or array element; a detector match with
 *    remove drops the whole value's member. Removing the root writes `null`.
 *  - Audit-mode policies and exempt callers: the match is reported (applied=false) and the
 *    value stays; it still wins its overlap, so no lower rule masks what it covers.
 *  - An empty body (only whitespace) is valid and passes.
 *  - Text bodies are masked a line at a time; a line longer than max_value is an error
 *    (MM_ELIMIT), never a silent pass.
 */
#include "mask/mask_int.h"

#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define OUT_FLUSH (64u << 10) /* staged output is handed to the sink past this */

enum {
    J_VALUE,     /* a value must start */
    J_ARR_FIRST, /* after '[': a value or ']' */
    J_OBJ_FIRST, /* after '{': a member name or '}' */
    J_OBJ_KEY,   /* after ',' in an object: a member name */
    J_KEY,       /* in a member name */
    J_COLON,     /* after a member name */
    J_AFTER,     /* after a value in a container: ',' or the closer */
    J_STR,       /* in a string value */
    J_NUM,       /* in a number */
    J_LIT,       /* in true, false or null */
    J_END,       /* after the top-level value */
    J_NEXT,      /* NDJSON: after a newline, a value may start */
};

enum { V_STR, V_NUM, V_LIT };
enum { RS_OFF = 0, RS_APPLY = 1, RS_SILENT = 2 }; /* per rule, for this stream */

typedef struct {
    char kind;        /* '{' or '[' */
    int sel;          /* rule selecting this container, or RULE_NONE */
    long index;       /* arrays: index of the next element */
    bool emitted;     /* a member or element was written (comma handling with remove) */
    size_t path_base; /* findings path length before this container's segment */
} jframe;

typedef struct {
    size_t start, end; /* in the decoded text */
    int tag;
    const char *name;
} span;

struct mm_stream {
    mm_masker *m;
    mm_stream_opts o;
    mm_write_fn write;
    void *wctx;
    unsigned char *rs; /* per rule: RS_* */
    const det_set *det;
    det_scratch *sc;
    size_t max_value;
    bool findings;
    bool failed;
    mm_stream_stats st;
    mm_buf ob; /* staged output */
    uint64_t off;  /* absolute offset of the next input byte */
    uint64_t line; /* 1-based line of `off` (tracked where whitespace is read) */

    /* JSON machine */
    int js;
    bool in_key, esc;
    int uleft;
    int numst;
    const char *lit;
    size_t litpos;
    jframe *fr;
    size_t depth, frcap;
    uint64_t *sets; /* state set per depth: sets + d * words */
    size_t setcap;
    uint64_t *cset; /* scratch for a scalar child's set */
    size_t run;     /* start of the input not yet passed on, in the current chunk */
    bool holding;   /* the member prefix goes to `pre` until its value decides */
    size_t supp;    /* >0: output suppressed while depth >= supp (a removed container) */
    bool supp_root;
    bool buf_on;    /* the current scalar is collected in `val` */
    size_t vstart;
    int vkind;
    int vsel;
    uint64_t voff;
    uint64_t vline;
    bool key_on;
    bool kesc; /* the member name being read has an escape */
    bool vesc; /* the string value being read has an escape */
    const char *vptr; /* the scalar's bytes: in the input chunk, or s->val */
    size_t vlen;
    size_t kstart;
    bool need_keys;
    size_t vpath_base; /* findings path before the current scalar's segment */
    mm_buf val, key_raw, key, pre, path, dec, tmp, abuf;
    size_t *map;
    size_t mapcap;
    span *sp;
    size_t nsp, spcap;

    /* line kinds (text, SSE) */
    mm_buf lbuf;
    uint64_t loff;
    mm_stream *child; /* SSE: masks JSON data lines */
    mm_buf cout;
    uint64_t child_base, child_line;
};

/* ---- output --------------------------------------------------------------------------- */

static mm_err out_flush(mm_stream *s)
{
    mm_err rc = MM_OK;
    if (s->ob.len) {
        rc = s->write(s->wctx, s->ob.data, s->ob.len);
        s->st.bytes_out += s->ob.len;
        s->ob.len = 0;
    }
    return rc;
}

static mm_err out_put(mm_stream *s, const char *p, size_t n)
{
    mm_err rc;
    if (n == 0)
        return MM_OK;
    if (s->ob.len + n > OUT_FLUSH && (rc = out_flush(s)) != MM_OK)
        return rc;
    if (n > OUT_FLUSH) { /* large runs go straight through */
        s->st.bytes_out += n;
        return s->write(s->wctx, p, n);
    }
    return mm_buf_append(&s->ob, p, n);
}

/* Where pass-through bytes go now: nowhere (removed), the held prefix, or the output. */
static mm_err dest_put(mm_stream *s, const char *p, size_t n)
{
    if (s->supp || s->supp_root)
        return MM_OK;
    if (s->holding)
        return mm_buf_append(&s->pre, p, n);
    return out_put(s, p, n);
}

static mm_err emit_to(mm_stream *s, const char *data, size_t i)
{
    mm_err rc = MM_OK;
    if (i > s->run)
        rc = dest_put(s, data + s->run, i - s->run);
    s->run = i;
    return rc;
}

static jframe *top(mm_stream *s)
{
    return s->depth ? &s->fr[s->depth - 1] : NULL;
}

/* The held prefix is written (dropping its comma when nothing was written before it in
 * this container) or dropped. */
static mm_err release(mm_stream *s, bool keep)
{
    mm_err rc = MM_OK;
    jframe *f = top(s);
    if (!s->holding)
        return MM_OK;
    s->holding = false;
    if (keep && !s->supp && !s->supp_root) {
        const char *p = s->pre.data;
        size_t n = s->pre.len;
        if (f && !f->emitted && n && p[0] == ',') {
            p++;
            n--;
        }
        rc = out_put(s, p, n);
        if (f)
            f->emitted = true;
    }
    s->pre.len = 0;
    return rc;
}

/* ---- findings ------------------------------------------------------------------------- */

static void report(mm_stream *s, int rule, const char *detector, uint64_t off, uint64_t line,
                   bool applied)
{
    mm_finding f;
    s->st.findings++;
    if (applied)
        s->st.applied++;
    if (!s->o.on_finding)
        return;
    f.rule = rule >= 0 && (size_t)rule < s->m->n_rules ? s->m->rules[rule].name : NULL;
    f.policy = f.rule ? s->m->rules[rule].policy : NULL;
    f.detector = detector;
    f.path = s->o.kind == MM_BODY_JSON || s->o.kind == MM_BODY_NDJSON ? mm_buf_cstr(&s->path) : NULL;
    f.offset = off;
    f.line = line;
    f.applied = applied;
    s->o.on_finding(s->o.finding_ctx, &f);
}

static bool ident(const char *k, size_t n)
{
    if (!n || (k[0] >= '0' && k[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
              (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
            return false;
    return true;
}

/* Appends this value's segment to the findings path. */
static mm_err path_push(mm_stream *s)
{
    jframe *f = top(s);
    mm_err rc = MM_OK;
    if (!s->findings)
        return MM_OK;
    if (!f)
        return mm_buf_putc(&s->path, '$');
    if (f->kind == '[')
        return mm_buf_printf(&s->path, "[%ld]", f->index);
    if (ident(s->key.data ? s->key.data : "", s->key.len)) {
        if ((rc = mm_buf_putc(&s->path, '.')) == MM_OK)
            rc = mm_buf_append(&s->path, s->key.data, s->key.len);
        return rc;
    }
    if ((rc = mm_buf_puts(&s->path, "['")) != MM_OK)
        return rc;
    for (size_t i = 0; i < s->key.len && rc == MM_OK; i++) {
        char c = s->key.data[i];
        if (c == '\'' || c == '\\')
            rc = mm_buf_putc(&s->path, '\\');
        if (rc == MM_OK)
            rc = mm_buf_putc(&s->path, c);
    }
    return rc == MM_OK ? mm_buf_puts(&s->path, "']") : rc;
}

static void path_pop(mm_stream *s, size_t base)
{
    if (!s->findings)
        return;
    s->path.len = base;
    if (s->path.data)
        s->path.data[base] = '\0';
}

/* ---- strings: decoding for detection -------------------------------------------------- */

static int hexv(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes the content of a JSON string (already validated) into s->dec, and, when `map`
 * is wanted, s->map[i] = offset in `raw` of the escape or byte that gave decoded byte i
 * (s->map[dec.len] = n). */
static mm_err decode(mm_stream *s, const char *raw, size_t n, bool map)
{
    mm_err rc = MM_OK;
    mm_buf_reset(&s->dec);
    if (map && s->mapcap < n + 1) {
        size_t *m = mm_realloc(s->map, (n + 1) * sizeof(size_t));
        if (!m)
            return MM_ENOMEM;
        s->map = m;
        s->mapcap = n + 1;
    }
    for (size_t i = 0; i < n && rc == MM_OK;) {
        size_t from = i, before = s->dec.len;
        if (raw[i] != '\\') {
            size_t j = i;
            while (j < n && raw[j] != '\\')
                j++;
            rc = mm_buf_append(&s->dec, raw + i, j - i);
            if (map)
                for (size_t k = 0; k < j - i; k++)
                    s->map[before + k] = i + k;
            i = j;
            continue;
        }
        char e = raw[i + 1];
        unsigned long cp = 0;
        i += 2;
        switch (e) {
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'u':
            for (int k = 0; k < 4; k++)
                cp = cp * 16 + (unsigned long)hexv((unsigned char)raw[i + k]);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= n && raw[i] == '\\' && raw[i + 1] == 'u') {
                unsigned long lo = 0;
                for (int k = 0; k < 4; k++)
                    lo = lo * 16 + (unsigned long)hexv((unsigned char)raw[i + 2 + k]);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000)
                cp = 0xFFFD; /* a lone surrogate reads as the replacement character */
            break;
        default: cp = (unsigned char)e; /* \" \\ \/ */
        }
        rc = mm_buf_put_utf8(&s->dec, cp);
        if (map)
            for (size_t k = before; k < s->dec.len; k++)
                s->map[k] = from;
    }
    if (map && rc == MM_OK)
        s->map[s->dec.len] = n;
    return rc;
}

/* ---- detection ------------------------------------------------------------------------ */

static mm_err on_match(void *ctx, const det_match *dm)
{
    mm_stream *s = ctx;
    if (s->nsp == s->spcap) {
        size_t cap = s->spcap ? s->spcap * 2 : 16;
        span *v = mm_realloc(s->sp, cap * sizeof(*v));
        if (!v)
            return MM_ENOMEM;
        s->sp = v;
        s->spcap = cap;
    }
    s->sp[s->nsp++] = (span){dm->start, dm->end, dm->tag, dm->name};
    return MM_OK;
}

static int by_start(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Runs the detectors over `t`, keeps the winning non-overlapping matches in s->sp (sorted
 * by start) and reports them. `sel` attributes matches in scan mode (a path-selected
 * value). Sets *apply when any kept match transforms, *remove when one removes. */
static mm_err detect(mm_stream *s, const char *t, size_t n, uint64_t base, const size_t *map,
                     int sel, bool *apply, bool *remove)
{
    mm_err rc;
    *apply = *remove = false;
    s->nsp = 0;
    if ((rc = det_scan(s->det, s->sc, t, n, on_match, s)) != MM_OK)
        return rc;
    if (!s->nsp)
        return MM_OK;
    if (s->m->scan) { /* report everything, change nothing */
        for (size_t i = 0; i < s->nsp; i++) {
            int rule = sel != RULE_NONE ? sel : s->sp[i].tag < SCAN_TAG_BASE ? s->sp[i].tag : -1;
            report(s, rule, s->sp[i].name, base + (map ? map[s->sp[i].start] : s->sp[i].start),
                   s->vline ? s->vline : s->line, false);
        }
        s->nsp = 0;
        return MM_OK;
    }
    /* precedence: lower tag first, then earlier start; keep what does not overlap */
    for (size_t i = 1; i < s->nsp; i++) {
        span x = s->sp[i];
        size_t j = i;
        while (j > 0 && (s->sp[j - 1].tag > x.tag ||
                         (s->sp[j - 1].tag == x.tag && s->sp[j - 1].start > x.start))) {
            s->sp[j] = s->sp[j - 1];
            j--;
        }
        s->sp[j] = x;
    }
    size_t kept = 0;
    for (size_t i = 0; i < s->nsp; i++) {
        bool clash = false;
        for (size_t k = 0; k < kept && !clash; k++)
            clash = s->sp[i].start < s->sp[k].end && s->sp[k].start < s->sp[i].end;
        if (!clash)
            s->sp[kept++] = s->sp[i];
    }
    s->nsp = kept;
    qsort(s->sp, kept, sizeof(*s->sp), by_start);
    for (size_t i = 0; i < kept; i++) {
        int rule = s->sp[i].tag;
        bool on = s->rs[rule] == RS_APPLY;
        report(s, rule, s->sp[i].name, base + (map ? map[s->sp[i].start] : s->sp[i].start),
               s->vline ? s->vline : s->line, on);
        if (on) {
            *apply = true;
            if (s->m->rules[rule].act.type == MM_ACTION_REMOVE)
                *remove = true;
        }
    }
    return MM_OK;
}

/* Text with the kept spans transformed (raw bytes, for text bodies). */
static mm_err build_text(mm_stream *s, const char *t, size_t n, mm_buf *out)
{
    mm_err rc = MM_OK;
    size_t at = 0;
    for (size_t i = 0; i < s->nsp && rc == MM_OK; i++) {
        const span *p = &s->sp[i];
        if ((rc = mm_buf_append(out, t + at, p->start - at)) != MM_OK)
            break;
        if (s->rs[p->tag] == RS_APPLY)
            rc = act_apply(&s->m->rules[p->tag].act, t + p->start, p->end - p->start, out);
        else
            rc = mm_buf_append(out, t + p->start, p->end - p->start);
        at = p->end;
    }
    return rc == MM_OK ? mm_buf_append(out, t + at, n - at) : rc;
}

/* A JSON string literal: raw content outside the spans as written, spans transformed and
 * escaped. `dec`/`map` describe the decoded text the spans refer to (map NULL: raw ==
 * dec). */
static mm_err build_json_string(mm_stream *s, const char *raw, size_t rawlen, const char *dec,
                                const size_t *map, mm_buf *out)
{
    mm_err rc = mm_buf_putc(out, '"');
    size_t at = 0;
    for (size_t i = 0; i < s->nsp && rc == MM_OK; i++) {
        const span *p = &s->sp[i];
        size_t rs = map ? map[p->start] : p->start, re = map ? map[p->end] : p->end;
        if ((rc = mm_buf_append(out, raw + at, rs - at)) != MM_OK)
            break;
        if (s->rs[p->tag] == RS_APPLY) {
            mm_buf_reset(&s->abuf);
            if ((rc = act_apply(&s->m->rules[p->tag].act, dec + p->start, p->end - p->start,
                                &s->abuf)) == MM_OK)
                rc = mm_buf_put_json_chars(out, s->abuf.data ? s->abuf.data : "", s->abuf.len);
        } else {
            rc = mm_buf_append(out, raw + rs, re - rs);
        }
        at = re;
    }
    if (rc == MM_OK)
        rc = mm_buf_append(out, raw + at, rawlen - at);
    return rc == MM_OK ? mm_buf_putc(out, '"') : rc;
}

/* ---- JSON: the path automaton --------------------------------------------------------- */

static uint64_t *set_at(mm_stream *s, size_t d)
{
    return s->sets + d * s->m->words;
}

static mm_err ensure_depth(mm_stream *s, size_t d)
{
    if (d + 1 > s->frcap) {
        size_t cap = s->frcap ? s->frcap * 2 : 16;
        while (cap < d + 1)
            cap *= 2;
        jframe *f = mm_realloc(s->fr, cap * sizeof(*f));
        if (!f)
            return MM_ENOMEM;
        s->fr = f;
        s->frcap = cap;
    }
    if (s->m->words && d + 2 > s->setcap) {
        size_t cap = s->setcap ? s->setcap * 2 : 16;
        while (cap < d + 2)
            cap *= 2;
        uint64_t *v = mm_realloc(s->sets, cap * s->m->words * sizeof(uint64_t));
        if (!v)
            return MM_ENOMEM;
        s->sets = v;
        s->setcap = cap;
    }
    return MM_OK;
}

static bool set_empty(const uint64_t *set, size_t words)
{
    for (size_t w = 0; w < words; w++)
        if (set[w])
            return false;
    return true;
}

/* The states a child (member `key`, or element `index`) of a node in `pset` reaches, into
 * `cset`; returns the lowest rule whose path the child completes (RULE_NONE if none). */
static int step_child(mm_stream *s, const uint64_t *pset, bool is_index, const char *key,
                      size_t klen, long index, uint64_t *cset)
{
    const mm_masker *m = s->m;
    int sel = RULE_NONE;
    memset(cset, 0, m->words * sizeof(uint64_t));
    for (size_t w = 0; w < m->words; w++) {
        uint64_t bits = pset[w];
        while (bits) {
            size_t st = w * 64 + (size_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            const mpath *p = &m->paths[m->state_path[st]];
            size_t k = st - p->first_state;
            if (k >= p->n_steps)
                continue; /* a completed path: its node's selection is inherited instead */
            const mstep *stp = &p->steps[k];
            bool hit = stp->kind == MM_STEP_WILDCARD ||
                       (stp->kind == MM_STEP_INDEX && is_index && stp->index == index) ||
                       (stp->kind == MM_STEP_NAME && !is_index && stp->name_len == klen &&
                        memcmp(stp->name, key, klen) == 0);
            if (hit) {
                cset[(st + 1) / 64] |= 1ull << ((st + 1) % 64);
                if (k + 1 == p->n_steps && p->rule < sel && s->rs[p->rule] != RS_OFF)
                    sel = p->rule;
            }
            if (stp->descendant)
                cset[st / 64] |= 1ull << (st % 64);
        }
    }
    return sel;
}

/* ---- JSON: values --------------------------------------------------------------------- */

static mm_err fail(mm_stream *s, mm_errbuf *eb, mm_err e, uint64_t off, const char *what)
{
    s->failed = true;
    if (s->o.kind == MM_BODY_NDJSON)
        return mm_errf(eb, e, "line %llu: offset %llu: %s", (unsigned long long)s->line,
                       (unsigned long long)off, what);
    return mm_errf(eb, e, "offset %llu: %s", (unsigned long long)off, what);
}

/* A value starts at data[i]. Works out its selection, handles a held prefix, and starts
 * buffering when the value may change. */
static mm_err value_start(mm_stream *s, const char *data, size_t i, int vkind, bool container,
                          char kind)
{
    mm_err rc;
    jframe *f = top(s);
    int sel = f ? f->sel : RULE_NONE;
    uint64_t *cset = NULL;
    const mm_masker *m = s->m;

    if (container && (rc = ensure_depth(s, s->depth + 1)) != MM_OK)
        return rc;
    f = top(s); /* ensure_depth may have moved the frames */
    if (m->words) {
        cset = container ? set_at(s, s->depth + 1) : s->cset;
        if (!f) {
            memcpy(cset, m->root_set, m->words * sizeof(uint64_t));
            if (m->root_sel < sel && s->rs[m->root_sel] != RS_OFF)
                sel = m->root_sel;
        } else if (!set_empty(set_at(s, s->depth), m->words)) {
            int c = step_child(s, set_at(s, s->depth), f->kind == '[', s->key.data, s->key.len,
                               f->index, cset);
            if (c < sel)
                sel = c;
        } else {
            memset(cset, 0, m->words * sizeof(uint64_t));
        }
    }
    size_t base = s->path.len;
    if ((rc = path_push(s)) != MM_OK)
        return rc;

    if (container) {
        bool removed = sel != RULE_NONE && s->rs[sel] == RS_APPLY &&
                       m->rules[sel].act.type == MM_ACTION_REMOVE && !s->supp && !s->supp_root;
        if (removed) {
            report(s, sel, NULL, s->off + i, s->line, true);
            if ((rc = emit_to(s, data, i)) != MM_OK)
                return rc;
            s->pre.len = 0;
            s->holding = false;
            if (!f) { /* the root: write null in its place */
                if ((rc = out_put(s, "null", 4)) != MM_OK)
                    return rc;
                s->supp_root = true;
            } else {
                s->supp = s->depth + 1;
            }
        } else {
            if ((rc = emit_to(s, data, i)) != MM_OK || (rc = release(s, true)) != MM_OK)
                return rc;
        }
        jframe *nf = &s->fr[s->depth++];
        nf->kind = kind;
        nf->sel = sel;
        nf->index = 0;
        nf->emitted = false;
        nf->path_base = base;
        return MM_OK;
    }

    s->vkind = vkind;
    s->vsel = sel;
    s->vpath_base = base;
    bool selected = sel != RULE_NONE && s->rs[sel] != RS_OFF;
    bool need = (selected || (s->det && vkind != V_LIT)) && !s->supp && !s->supp_root;
    if (vkind == V_LIT && !selected)
        need = false;
    if (need) {
        if ((rc = emit_to(s, data, i)) != MM_OK)
            return rc;
        s->buf_on = true;
        s->vstart = i;
        s->val.len = 0;
        s->voff = s->off + i;
        s->vline = s->line;
    } else {
        if ((rc = emit_to(s, data, i)) != MM_OK || (rc = release(s, true)) != MM_OK)
            return rc;
    }
    return MM_OK;
}

/* The whole scalar is in s->val (when buffered): decide and write it. */
static mm_err scalar_done(mm_stream *s)
{
    mm_err rc = MM_OK;
    const char *raw = s->vptr;
    size_t n = s->vlen;
    int sel = s->vsel;
    bool selected = sel != RULE_NONE && s->rs[sel] != RS_OFF;
    bool remove = false, apply = false;
    mm_buf *out = &s->tmp;

    /* the content: strings without their quotes, decoded when they have escapes */
    const char *content = raw, *dec = raw;
    size_t clen = n, dlen = n;
    const size_t *map = NULL;
    uint64_t cbase = s->voff;
    if (s->vkind == V_STR) {
        content = raw + 1;
        clen = n - 2;
        cbase = s->voff + 1;
        dec = content;
        dlen = clen;
        if (s->vesc) {
            if ((rc = decode(s, content, clen, true)) != MM_OK)
                return rc;
            dec = s->dec.data ? s->dec.data : "";
            dlen = s->dec.len;
            map = s->map;
        }
    }

    bool same = false; /* written as it came */
    mm_buf_reset(&s->tmp);
    if (selected && !s->m->scan) {
        bool on = s->rs[sel] == RS_APPLY;
        const act_t *a = &s->m->rules[sel].act;
        report(s, sel, NULL, s->voff, s->vline, on);
        if (!on || (s->vkind == V_LIT && raw[0] == 'n')) {
            same = true; /* audit, exempt, or null */
        } else if (a->type == MM_ACTION_REMOVE) {
            remove = true;
        } else {
            mm_buf_reset(&s->abuf);
            if ((rc = act_apply(a, dec, dlen, &s->abuf)) == MM_OK)
                rc = mm_buf_put_json_str(out, s->abuf.data ? s->abuf.data : "", s->abuf.len);
        }
    } else if (s->det && s->vkind != V_LIT) {
        if ((rc = detect(s, dec, dlen, cbase, map, selected ? sel : RULE_NONE, &apply, &remove)) != MM_OK)
            return rc;
        if (!apply)
            same = true;
        else if (!remove)
            rc = s->vkind == V_STR ? build_json_string(s, content, clen, dec, map, out)
                                   : build_json_string(s, raw, n, raw, NULL, out);
    } else {
        same = true;
    }
    if (rc != MM_OK)
        return rc;
    if (same) { /* no copy: the input bytes themselves */
        if ((rc = release(s, true)) != MM_OK)
            return rc;
        return out_put(s, raw, n);
    }

    if (remove && !top(s)) { /* the root scalar */
        s->holding = false;
        s->pre.len = 0;
        return out_put(s, "null", 4);
    }
    if ((rc = release(s, !remove)) != MM_OK)
        return rc;
    return remove ? MM_OK : out_put(s, out->data ? out->data : "", out->len);
}

/* The value just ended: the parent moves on. */
static void value_end(mm_stream *s)
{
    jframe *f = top(s);
    if (f) {
        if (f->kind == '[')
            f->index++;
        s->js = J_AFTER;
    } else {
        s->js = J_END;
    }
}

static mm_err end_scalar(mm_stream *s, const char *data, size_t i)
{
    mm_err rc = MM_OK;
    if (s->buf_on) {
        if (i - s->vstart + s->val.len > s->max_value)
            return MM_ELIMIT;
        if (!s->val.len) { /* all of it in this chunk: read it in place */
            s->vptr = data + s->vstart;
            s->vlen = i - s->vstart;
        } else {
            if ((rc = mm_buf_append(&s->val, data + s->vstart, i - s->vstart)) != MM_OK)
                return rc;
            s->vptr = s->val.data;
            s->vlen = s->val.len;
        }
        s->run = i;
        s->buf_on = false;
        rc = scalar_done(s);
    }
    path_pop(s, s->vpath_base);
    value_end(s);
    return rc;
}

static mm_err close_container(mm_stream *s, const char *data, size_t i)
{
    mm_err rc;
    jframe *f = top(s);
    if ((rc = emit_to(s, data, i)) != MM_OK || (rc = release(s, true)) != MM_OK)
        return rc;
    rc = emit_to(s, data, i + 1); /* the closer, unless this container is removed */
    if (s->supp == s->depth)
        s->supp = 0;
    s->depth--;
    path_pop(s, f->path_base);
    value_end(s);
    if (!s->depth && s->supp_root)
        s->supp_root = false;
    return rc;
}

/* The key just ended: decode it when paths or findings need it. */
static mm_err key_done(mm_stream *s)
{
    mm_err rc;
    if (!s->key_on)
        return MM_OK;
    s->key_on = false;
    if (!memchr(s->key_raw.data ? s->key_raw.data : "", '\\', s->key_raw.len)) {
        mm_buf_reset(&s->key);
        return mm_buf_append(&s->key, s->key_raw.data ? s->key_raw.data : "", s->key_raw.len);
    }
    if ((rc = decode(s, s->key_raw.data, s->key_raw.len, false)) != MM_OK)
        return rc;
    mm_buf_reset(&s->key);
    return mm_buf_append(&s->key, s->dec.data ? s->dec.data : "", s->dec.len);
}

/* Bytes that cannot appear unescaped in a string, and the two that end or escape it. */
static const unsigned char str_stop[256] = {
    [0 ... 31] = 1, ['"'] = 1, ['\\'] = 1,
};

/* Index of the first byte at or after i that ends or escapes a string (or is a control
 * byte), or len. Sixteen bytes at a time where SSE2 is there (every x86-64). */
static inline size_t str_scan(const char *p, size_t i, size_t len)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  ctl = _mm_set1_epi8(0x1f);
    while (i + 16 <= len) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                   _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
        int mask = _mm_movemask_epi8(hit);
        if (mask)
            return i + (size_t)__builtin_ctz((unsigned)mask);
        i += 16;
    }
#endif
    while (i < len && !str_stop[(unsigned char)p[i]])
        i++;
    return i;
}

static inline bool ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static mm_err json_push(mm_stream *s, const char *data, size_t len, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    size_t i = 0;
    const bool hold_members = s->m->has_remove;

    s->run = 0;
    if (s->buf_on)
        s->vstart = 0;
    if (s->key_on)
        s->kstart = 0;

    while (i < len) {
        unsigned char c = (unsigned char)data[i];
        switch (s->js) {
        case J_STR:
        case J_KEY:
            if (s->uleft) {
                if (hexv(c) < 0)
                    return fail(s, eb, MM_EPARSE, s->off + i, "expected four hex digits after \\u");
                s->uleft--;
                i++;
                break;
            }
            if (s->esc) {
                if (c == 'u')
                    s->uleft = 4;
                else if (!strchr("\"\\/bfnrt", c) || c == 0)
                    return fail(s, eb, MM_EPARSE, s->off + i, "invalid escape in a string");
                s->esc = false;
                i++;
                break;
            }
            i = str_scan(data, i, len);
            if (i == len)
                break;
            c = (unsigned char)data[i];
            if (c == '\\') {
                s->esc = true;
                s->kesc |= s->js == J_KEY;
                s->vesc |= s->js == J_STR;
                i++;
                break;
            }
            if (c != '"')
                return fail(s, eb, MM_EPARSE, s->off + i, "control character in a string");
            if (s->js == J_KEY) {
                if (s->key_on && !s->kesc && !s->key_raw.len) {
                    /* the usual name: plain, and all in this chunk: one copy */
                    s->key_on = false;
                    s->key.len = 0;
                    if ((rc = mm_buf_append(&s->key, data + s->kstart, i - s->kstart)) != MM_OK)
                        return rc;
                } else if (s->key_on) {
                    if (i - s->kstart + s->key_raw.len > s->max_value)
                        return fail(s, eb, MM_ELIMIT, s->off + i, "member name longer than the limit");
                    if ((rc = mm_buf_append(&s->key_raw, data + s->kstart, i - s->kstart)) != MM_OK ||
                        (rc = key_done(s)) != MM_OK)
                        return rc;
                }
                s->js = J_COLON;
                i++;
                break;
            }
            i++;
            if ((rc = end_scalar(s, data, i)) != MM_OK)
                return rc == MM_ELIMIT ? fail(s, eb, rc, s->voff, "value longer than the limit") : rc;
            break;

        case J_VALUE:
        case J_ARR_FIRST:
        case J_NEXT:
            if (ws(c)) {
                if (c == '\n')
                    s->line++;
                i++;
                break;
            }
            if (c == ']' && s->js == J_ARR_FIRST) {
                if ((rc = close_container(s, data, i)) != MM_OK)
                    return rc;
                i++;
                break;
            }
            if (c == '{' || c == '[') {
                if (s->depth >= MM_MASK_MAX_DEPTH)
                    return fail(s, eb, MM_ELIMIT, s->off + i, "nesting deeper than the limit");
                if ((rc = value_start(s, data, i, 0, true, (char)c)) != MM_OK)
                    return rc;
                i++;
                s->js = c == '{' ? J_OBJ_FIRST : J_ARR_FIRST;
                if (hold_members && !s->supp && !s->supp_root) {
                    if ((rc = emit_to(s, data, i)) != MM_OK)
                        return rc;
                    s->holding = true;
                }
                break;
            }
            if (c == '"') {
                if ((rc = value_start(s, data, i, V_STR, false, 0)) != MM_OK)
                    return rc;
                s->js = J_STR;
                s->esc = false;
                s->vesc = false;
                s->uleft = 0;
                i++;
                break;
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                if ((rc = value_start(s, data, i, V_NUM, false, 0)) != MM_OK)
                    return rc;
                s->js = J_NUM;
                s->numst = 0;
                break; /* J_NUM reads this byte */
            }
            if (c == 't' || c == 'f' || c == 'n') {
                if ((rc = value_start(s, data, i, V_LIT, false, 0)) != MM_OK)
                    return rc;
                s->js = J_LIT;
                s->lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
                s->litpos = 0;
                break;
            }
            return fail(s, eb, MM_EPARSE, s->off + i, "expected a value");

        case J_OBJ_FIRST:
        case J_OBJ_KEY:
            if (ws(c)) {
                if (c == '\n')
                    s->line++;
                i++;
                break;
            }
            if (c == '}' && s->js == J_OBJ_FIRST) {
                if ((rc = close_container(s, data, i)) != MM_OK)
                    return rc;
                i++;
                break;
            }
            if (c != '"')
                return fail(s, eb, MM_EPARSE, s->off + i, "expected a member name");
            s->key_on = s->need_keys;
            s->kesc = false;
            if (s->key_on) {
                s->key_raw.len = 0;
                s->kstart = i + 1;
            }
            s->js = J_KEY;
            s->esc = false;
            s->uleft = 0;
            i++;
            break;

        case J_COLON:
            if (ws(c)) {
                if (c == '\n')
                    s->line++;
                i++;
                break;
            }
            if (c != ':')
                return fail(s, eb, MM_EPARSE, s->off + i, "expected ':' after a member name");
            s->js = J_VALUE;
            i++;
            break;

        case J_AFTER: {
            jframe *f = top(s);
            if (ws(c)) {
                if (c == '\n')
                    s->line++;
                i++;
                break;
            }
            if (c == ',') {
                if (hold_members && !s->supp && !s->supp_root) {
                    if ((rc = emit_to(s, data, i)) != MM_OK)
                        return rc;
                    s->holding = true;
                }
                s->js = f->kind == '{' ? J_OBJ_KEY : J_VALUE;
                i++;
                break;
            }
            if ((c == '}' && f->kind == '{') || (c == ']' && f->kind == '[')) {
                if ((rc = close_container(s, data, i)) != MM_OK)
                    return rc;
                i++;
                break;
            }
            return fail(s, eb, MM_EPARSE, s->off + i,
                        f->kind == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }

        case J_NUM: {
            bool more = true;
            if ((s->numst == 3 || s->numst == 5 || s->numst == 8) && c >= '0' && c <= '9') {
                while (i < len && data[i] >= '0' && data[i] <= '9')
                    i++;
                break;
            }
            switch (s->numst) {
            case 0: /* start */
                if (c == '-')
                    s->numst = 1;
                else if (c == '0')
                    s->numst = 2;
                else
                    s->numst = 3;
                break;
            case 1: /* after '-' */
                if (c == '0')
                    s->numst = 2;
                else if (c >= '1' && c <= '9')
                    s->numst = 3;
                else
                    return fail(s, eb, MM_EPARSE, s->off + i, "expected a digit after '-'");
                break;
            case 2: /* after a leading 0 */
            case 3: /* integer digits */
                if (s->numst == 3 && c >= '0' && c <= '9')
                    break;
                if (c == '.')
                    s->numst = 4;
                else if (c == 'e' || c == 'E')
                    s->numst = 6;
                else if (c >= '0' && c <= '9')
                    return fail(s, eb, MM_EPARSE, s->off + i, "a number cannot have a leading zero");
                else
                    more = false;
                break;
            case 4: /* after '.' */
                if (c >= '0' && c <= '9')
                    s->numst = 5;
                else
                    return fail(s, eb, MM_EPARSE, s->off + i, "expected a digit after '.'");
                break;
            case 5:
                if (c >= '0' && c <= '9')
                    break;
                if (c == 'e' || c == 'E')
                    s->numst = 6;
                else
                    more = false;
                break;
            case 6: /* after 'e' */
                if (c == '+' || c == '-')
                    s->numst = 7;
                else if (c >= '0' && c <= '9')
                    s->numst = 8;
                else
                    return fail(s, eb, MM_EPARSE, s->off + i, "expected a digit in the exponent");
                break;
            case 7:
                if (c >= '0' && c <= '9')
                    s->numst = 8;
                else
                    return fail(s, eb, MM_EPARSE, s->off + i, "expected a digit in the exponent");
                break;
            case 8:
                if (!(c >= '0' && c <= '9'))
                    more = false;
                break;
            }
            if (more) {
                i++;
                break;
            }
            if ((rc = end_scalar(s, data, i)) != MM_OK)
                return rc == MM_ELIMIT ? fail(s, eb, rc, s->voff, "value longer than the limit") : rc;
            break; /* the delimiter is read in the new state */
        }

        case J_LIT:
            if (c != (unsigned char)s->lit[s->litpos])
                return fail(s, eb, MM_EPARSE, s->off + i, "invalid literal (expected true, false or null)");
            s->litpos++;
            i++;
            if (!s->lit[s->litpos] && (rc = end_scalar(s, data, i)) != MM_OK)
                return rc;
            break;

        case J_END:
            if (ws(c)) {
                if (c == '\n') {
                    s->line++;
                    if (s->o.kind == MM_BODY_NDJSON)
                        s->js = J_NEXT;
                }
                i++;
                break;
            }
            return fail(s, eb, MM_EPARSE, s->off + i,
                        s->o.kind == MM_BODY_NDJSON ? "expected a newline between values"
                                                    : "unexpected data after the JSON value");
        }
        if (s->ob.len >= OUT_FLUSH && (rc = out_flush(s)) != MM_OK)
            return rc;
    }

    /* The chunk ends: what is settled goes on; a scalar or name in progress is kept. */
    if (s->buf_on) {
        if ((rc = emit_to(s, data, s->vstart)) != MM_OK)
            return rc;
        if (len - s->vstart + s->val.len > s->max_value)
            return fail(s, eb, MM_ELIMIT, s->voff, "value longer than the limit");
        if ((rc = mm_buf_append(&s->val, data + s->vstart, len - s->vstart)) != MM_OK)
            return rc;
    } else if ((rc = emit_to(s, data, len)) != MM_OK) {
        return rc;
    }
    if (s->key_on) {
        if (len - s->kstart + s->key_raw.len > s->max_value)
            return fail(s, eb, MM_ELIMIT, s->off + len, "member name longer than the limit");
        if ((rc = mm_buf_append(&s->key_raw, data + s->kstart, len - s->kstart)) != MM_OK)
            return rc;
    }
    if (s->holding && s->pre.len > s->max_value)
        return fail(s, eb, MM_ELIMIT, s->off + len, "member name longer than the limit");
    return MM_OK;
}

static mm_err json_finish(mm_stream *s, mm_errbuf *eb)
{
    mm_err rc;
    if (s->js == J_NUM && !s->depth && (s->numst == 2 || s->numst == 3 || s->numst == 5 || s->numst == 8)) {
        s->run = 0;
        if (s->buf_on)
            s->vstart = 0;
        if ((rc = end_scalar(s, "", 0)) != MM_OK)
            return rc == MM_ELIMIT ? fail(s, eb, rc, s->voff, "value longer than the limit") : rc;
    }
    if (s->js == J_END || s->js == J_NEXT || (s->js == J_VALUE && !s->depth && !s->holding))
        return MM_OK;
    return fail(s, eb, MM_EPARSE, s->off, "unexpected end of input: the JSON value is incomplete");
}

/* ---- text and SSE: a line at a time --------------------------------------------------- */

static mm_err text_line(mm_stream *s, const char *t, size_t n, uint64_t off, mm_buf *out)
{
    mm_err rc;
    bool apply = false, remove = false;
    s->vline = 0;
    if (!s->det || !n)
        return mm_buf_append(out, t, n);
    if ((rc = detect(s, t, n, off, NULL, RULE_NONE, &apply, &remove)) != MM_OK)
        return rc;
    if (!apply)
        return mm_buf_append(out, t, n);
    return build_text(s, t, n, out);
}

static void child_finding(void *ctx, const mm_finding *f)
{
    mm_stream *s = ctx;
    mm_finding g = *f;
    g.offset += s->child_base;
    g.line = s->child_line;
    g.path = NULL;
    if (s->o.on_finding)
        s->o.on_finding(s->o.finding_ctx, &g);
}

/* One SSE line (without its line ending): data lines are masked, the rest passes. */
static mm_err sse_line(mm_stream *s, const char *t, size_t n, uint64_t off, mm_buf *out)
{
    mm_err rc;
    mm_errbuf ceb;
    size_t p;

    if (n < 5 || memcmp(t, "data:", 5) != 0)
        return mm_buf_append(out, t, n);
    p = 5 + (n > 5 && t[5] == ' ');
    if ((rc = mm_buf_append(out, t, p)) != MM_OK)
        return rc;
    const char *d = t + p;
    size_t dn = n - p, k = 0;
    while (k < dn && ws((unsigned char)d[k]))
        k++;
    if (k < dn && (d[k] == '{' || d[k] == '[' || d[k] == '"')) {
        mm_stream_reset(s->child);
        mm_buf_reset(&s->cout);
        s->child_base = off + p;
        s->child_line = s->line;
        if (mm_stream_push(s->child, d, dn, &ceb) == MM_OK &&
            mm_stream_finish(s->child, &ceb) == MM_OK) {
            mm_stream_stats cst;
            mm_stream_stats_get(s->child, &cst);
            s->st.findings += cst.findings;
            s->st.applied += cst.applied;
            return mm_buf_append(out, s->cout.data ? s->cout.data : "", s->cout.len);
        }
        /* not JSON after all: read it as text */
    }
    return text_line(s, d, dn, off + p, out);
}

static mm_err child_write(void *ctx, const char *data, size_t len)
{
    return mm_buf_append(ctx, data, len);
}

/* A complete line (with its ending) at absolute offset `off`. */
static mm_err do_line(mm_stream *s, const char *t, size_t n, uint64_t off)
{
    mm_err rc;
    size_t body = n;
    if (body && t[body - 1] == '\n')
        body--;
    if (body && t[body - 1] == '\r')
        body--;
    mm_buf_reset(&s->tmp);
    rc = s->o.kind == MM_BODY_SSE ? sse_line(s, t, body, off, &s->tmp)
                                  : text_line(s, t, body, off, &s->tmp);
    if (rc == MM_OK)
        rc = mm_buf_append(&s->tmp, t + body, n - body);
    if (rc == MM_OK)
        rc = out_put(s, s->tmp.data ? s->tmp.data : "", s->tmp.len);
    s->line++;
    return rc;
}

static mm_err lines_push(mm_stream *s, const char *data, size_t len, mm_errbuf *eb)
{
    mm_err rc;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - data) + 1 : len;
        if (!nl || s->lbuf.len) { /* a line spread over chunks is collected */
            if (s->lbuf.len + (end - i) > s->max_value)
                return fail(s, eb, MM_ELIMIT, s->loff, "line longer than the limit");
            if (!s->lbuf.len)
                s->loff = s->off + i;
            if ((rc = mm_buf_append(&s->lbuf, data + i, end - i)) != MM_OK)
                return rc;
            if (nl) {
                rc = do_line(s, s->lbuf.data, s->lbuf.len, s->loff);
                s->lbuf.len = 0;
                if (rc != MM_OK)
                    return rc;
            }
        } else {
            if (end - i > s->max_value)
                return fail(s, eb, MM_ELIMIT, s->off + i, "line longer than the limit");
            if ((rc = do_line(s, data + i, end - i, s->off + i)) != MM_OK)
                return rc;
        }
        i = end;
    }
    return MM_OK;
}

/* ---- the public surface --------------------------------------------------------------- */

mm_err mm_stream_new(mm_masker *m, const mm_stream_opts *opts, mm_write_fn write, void *wctx,
                     mm_stream **out)
{
    mm_stream *s = mm_calloc(1, sizeof(*s));
    int di;
    if (!s)
        return MM_ENOMEM;
    s->m = mm_masker_ref(m);
    s->o = *opts;
    if (!s->o.direction)
        s->o.direction = MM_DIR_RESPONSE;
    s->write = write;
    s->wctx = wctx;
    s->max_value = opts->max_value ? opts->max_value : MM_MASK_MAX_VALUE;
    s->findings = opts->on_finding != NULL;
    di = dir_index(s->o.direction);
    s->det = m->det[di];
    mm_buf_init(&s->ob, 0);
    mm_buf_init(&s->val, 0);
    mm_buf_init(&s->key_raw, 0);
    mm_buf_init(&s->key, 0);
    mm_buf_init(&s->pre, 0);
    mm_buf_init(&s->path, 0);
    mm_buf_init(&s->dec, 0);
    mm_buf_init(&s->tmp, 0);
    mm_buf_init(&s->abuf, 0);
    mm_buf_init(&s->lbuf, 0);
    mm_buf_init(&s->cout, 0);
    if (m->n_rules && !(s->rs = mm_calloc(m->n_rules, 1)))
        goto nomem;
    for (size_t r = 0; r < m->n_rules; r++) {
        const mrule *mr = &m->rules[r];
        bool exempt = false;
        if (!m->scan && !(mr->dirs & (unsigned)s->o.direction))
            continue; /* RS_OFF */
        for (size_t k = 0; opts->principal && k < mr->n_exempt; k++)
            exempt |= strcmp(mr->exempt[k], opts->principal) == 0;
        s->rs[r] = mr->audit || exempt || m->scan ? RS_SILENT : RS_APPLY;
    }
    if (s->det && det_scratch_new(s->det, &s->sc) != MM_OK)
        goto nomem;
    if (m->words && !(s->cset = mm_calloc(m->words, sizeof(uint64_t))))
        goto nomem;
    s->need_keys = m->words > 0 || s->findings;
    if (s->o.kind == MM_BODY_SSE) {
        mm_stream_opts co = *opts;
        co.kind = MM_BODY_JSON;
        co.on_finding = opts->on_finding ? child_finding : NULL;
        co.finding_ctx = s;
        if (mm_stream_new(m, &co, child_write, &s->cout, &s->child) != MM_OK)
            goto nomem;
    }
    mm_stream_reset(s);
    *out = s;
    return MM_OK;
nomem:
    mm_stream_free(s);
    return MM_ENOMEM;
}

void mm_stream_reset(mm_stream *s)
{
    s->failed = false;
    memset(&s->st, 0, sizeof(s->st));
    s->ob.len = 0;
    s->off = 0;
    s->line = 1;
    s->js = J_VALUE;
    s->in_key = s->esc = false;
    s->uleft = 0;
    s->depth = 0;
    s->run = 0;
    s->holding = false;
    s->supp = 0;
    s->supp_root = false;
    s->buf_on = s->key_on = false;
    s->val.len = s->key_raw.len = s->key.len = s->pre.len = 0;
    mm_buf_reset(&s->path);
    s->lbuf.len = 0;
    s->vline = 0;
}

void mm_stream_free(mm_stream *s)
{
    if (!s)
        return;
    mm_stream_free(s->child);
    det_scratch_free(s->sc);
    mm_free(s->rs);
    mm_free(s->fr);
    mm_free(s->sets);
    mm_free(s->cset);
    mm_free(s->map);
    mm_free(s->sp);
    mm_buf_free(&s->ob);
    mm_buf_free(&s->val);
    mm_buf_free(&s->key_raw);
    mm_buf_free(&s->key);
    mm_buf_free(&s->pre);
    mm_buf_free(&s->path);
    mm_buf_free(&s->dec);
    mm_buf_free(&s->tmp);
    mm_buf_free(&s->abuf);
    mm_buf_free(&s->lbuf);
    mm_buf_free(&s->cout);
    mm_masker_free(s->m);
    mm_free(s);
}

mm_err mm_stream_push(mm_stream *s, const char *data, size_t len, mm_errbuf *eb)
{
    mm_err rc;
    if (s->failed)
        return mm_errf(eb, MM_EINVAL, "the stream already failed; reset it first");
    switch (s->o.kind) {
    case MM_BODY_JSON:
    case MM_BODY_NDJSON:
        rc = json_push(s, data, len, eb);
        break;
    case MM_BODY_TEXT:
    case MM_BODY_SSE:
        rc = lines_push(s, data, len, eb);
        break;
    default:
        rc = out_put(s, data, len);
    }
    s->off += len;
    s->st.bytes_in += len;
    if (rc == MM_OK)
        rc = out_flush(s);
    if (rc != MM_OK) {
        s->failed = true;
        if (rc == MM_ENOMEM)
            mm_errf(eb, rc, "out of memory");
        else if (rc == MM_EIO)
            mm_errf(eb, rc, "writing the output failed");
    }
    return rc;
}

mm_err mm_stream_finish(mm_stream *s, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    if (s->failed)
        return mm_errf(eb, MM_EINVAL, "the stream already failed; reset it first");
    if (s->o.kind == MM_BODY_JSON || s->o.kind == MM_BODY_NDJSON)
        rc = json_finish(s, eb);
    else if ((s->o.kind == MM_BODY_TEXT || s->o.kind == MM_BODY_SSE) && s->lbuf.len) {
        rc = do_line(s, s->lbuf.data, s->lbuf.len, s->loff);
        s->lbuf.len = 0;
    }
    if (rc == MM_OK)
        rc = out_flush(s);
    if (rc != MM_OK)
        s->failed = true;
    return rc;
}

void mm_stream_stats_get(const mm_stream *s, mm_stream_stats *st)
{
    *st = s->st;
}

static mm_err buf_write(void *ctx, const char *data, size_t len)
{
    return mm_buf_append(ctx, data, len);
}

mm_err mm_mask_buffer(mm_masker *m, const mm_stream_opts *opts, const char *in, size_t len,
                      mm_buf *out, mm_errbuf *eb)
{
    mm_stream *s = NULL;
    mm_err rc = mm_stream_new(m, opts, buf_write, out, &s);
    if (rc != MM_OK)
        return mm_errf(eb, rc, "out of memory");
    if ((rc = mm_stream_push(s, in, len, eb)) == MM_OK)
        rc = mm_stream_finish(s, eb);
    mm_stream_free(s);
    return rc;
}
