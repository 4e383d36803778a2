/* lib/mask: the JSON (and NDJSON) stream masker.
 *
 * No DOM: a byte-level state machine writes every byte no rule touches as it came (runs of
 * the input are passed on whole, one sink call per push), and buffers only what it may have
 * to change: the scalar in progress (a string, number or literal that a path selects or that
 * detectors must read) and, in containers where a member may be removed, the separator and
 * member name before a value. Memory is bounded by the largest value (max_value), never by
 * the document. Paths are matched by the automaton of path.c: a bit set of active states
 * per open container, a few word operations and at most one hash lookup per member.
 *
 * Decisions (DESIGN.md "Precedence" made exact; README cites this block):
 *  - Rules are numbered in policy name order (then namespace, then input order), then rule
 *    order; a lower number is a higher precedence.
 *  - A value a `fields` path selects — itself, or through an enclosing object or array — is
 *    transformed by the lowest-numbered rule whose path selects it. Detectors do not read it
 *    again. A path that selects an object or array transforms every scalar inside it; with
 *    `remove` it drops the whole member or element.
 *  - Every other string and number is read by the detectors and patterns of the rules that
 *    apply in the stream's direction. Overlapping matches: the lower rule wins, then the
 *    earlier start; matches that do not overlap are each transformed and the rest of the
 *    string is copied as written, escapes included (strings with escapes are decoded for the
 *    detectors and the matches mapped back onto the escaped text). A masked number becomes
 *    a string. A detector match whose rule removes drops the whole member or element.
 *  - remove drops the member with its separator (or the array element), so the output stays
 *    valid JSON: {"a":1,"b":2} without a is {"b":2}, without b {"a":1}. Removing the root
 *    value writes `null`.
 *  - Literals: `null` under a path stays null (there is nothing to hide; remove still drops
 *    it); `true`/`false` under a path are transformed like the strings "true"/"false".
 *    Detectors never read literals.
 *  - Default deny (docs/default-deny.md) comes after all of the above, per scalar that is
 *    not a literal, not "" and not selected by an applied rule's path: unless detector
 *    matches cover it whole (their rules decide) or a match removes, it gets the action of
 *    the first default deny whose allow paths (bits in the frames' `allow`) do not select it.
 *  - Audit-mode policies and exempt callers: their rules report findings (applied=false)
 *    and change nothing, and they never shield a value from a later rule that does apply:
 *    adding an audit policy cannot weaken an enforcing one.
 *  - Member names are matched decoded (`{"a\u0062":1}` is member "ab"), byte for byte;
 *    strings and names that are not valid UTF-8 pass through unchanged unless masked.
 *    Lone surrogates in \u escapes are kept as written and read as U+FFFD by detectors.
 *  - Action output is JSON-escaped; a span inside a string is escaped without quotes.
 *  - An empty body (only whitespace) is valid and passes.
 *  - Malformed input: the error names the byte offset (NDJSON: also the line) and what was
 *    expected; nothing of a value that a rule reads has been written (it is buffered), and
 *    the stream takes no more input. Values no rule can touch stream through as they come.
 *  - NDJSON: one value per line, each masked on its own; blank lines, CRLF endings and a
 *    last line without a newline are kept as they are; so is the record separator (0x1E)
 *    that application/json-seq puts before each value. A value may span lines (lenient).
 */
#include "mask/simd_int.h"
#include "mask/stream_int.h"

#include <string.h>

enum { V_STR, V_NUM, V_LIT };

/* ---- small helpers -------------------------------------------------------------------- */

static const unsigned char is_ws[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1};

static jframe *top(mm_stream *s)
{
    return s->depth ? &s->fr[s->depth - 1] : NULL;
}

/* Without paths there are no sets (s->sets is NULL, and arithmetic on it undefined). */
static uint64_t *set_at(mm_stream *s, size_t k)
{
    return s->words ? s->sets + k * s->words : NULL;
}

/* ---- output around values ------------------------------------------------------------- */

/* Passes data[run..i) on (not while a removed container is being read). */
static mm_err flush_to(mm_stream *s, const char *data, size_t i)
{
    mm_err rc = MM_OK;
    if (i > s->run && !s->supp)
        rc = st_out_put(s, data + s->run, i - s->run);
    s->run = i;
    return rc;
}

/* The held member prefix (s->pre, then data[run..i)) is written — without its comma when
 * nothing was written before it in this container — or dropped. */
static mm_err release(mm_stream *s, const char *data, size_t i, bool keep)
{
    mm_err rc = MM_OK;
    jframe *f = top(s);
    if (s->pre.len + (i - s->run) > s->max_value)
        return st_fail(s, s->eb, MM_ELIMIT, s->hoff, "member name longer than the limit");
    s->holding = false;
    if (keep) {
        const char *a = s->pre.data, *b = data + s->run;
        size_t an = s->pre.len, bn = i - s->run;
        if (!f->emitted) {
            if (an && a[0] == ',')
                a++, an--;
            else if (!an && bn && b[0] == ',')
                b++, bn--;
        }
        if ((rc = st_out_put(s, a, an)) == MM_OK)
            rc = st_out_put(s, b, bn);
        f->emitted = true;
    }
    s->pre.len = 0;
    s->run = i;
    return rc;
}

static mm_err ensure_depth(mm_stream *s, size_t d)
{
    if (d > s->frcap) {
        size_t cap = s->frcap ? s->frcap * 2 : 16;
        while (cap < d)
            cap *= 2;
        jframe *f = mm_realloc(s->fr, cap * sizeof(*f));
        if (!f)
            return MM_ENOMEM;
        s->fr = f;
        s->frcap = cap;
    }
    if (s->words && d > s->setcap) {
        size_t cap = s->setcap ? s->setcap * 2 : 16;
        while (cap < d)
            cap *= 2;
        uint64_t *v = mm_realloc(s->sets, cap * s->words * sizeof(uint64_t));
        if (!v)
            return MM_ENOMEM;
        s->sets = v;
        s->setcap = cap;
    }
    return MM_OK;
}

/* ---- values --------------------------------------------------------------------------- */

/* The child selection for a value starting now (objects: computed at its name). */
static void child_for_value(mm_stream *s)
{
    jframe *f = top(s);
    if (!f) {
        if (s->words)
            step_root(s);
        else
            child_none(s);
    } else if (f->kind == '[') {
        if (f->live)
            step_child(s, set_at(s, s->depth - 1), false, NULL, 0, f->index);
        else
            child_none(s);
    }
}

/* An object or array opens at data[i]. */
static mm_err container_begin(mm_stream *s, const char *data, size_t i, char kind)
{
    mm_err rc;
    jframe *f = top(s);
    int sel = f ? f->sel : RULE_NONE, asel = f ? f->asel : RULE_NONE;
    uint64_t allow = f ? f->allow : 0;
    size_t base = s->path.len;

    if ((rc = ensure_depth(s, s->depth + 1)) != MM_OK)
        return rc;
    f = top(s);
    child_for_value(s);
    if (s->csel < sel)
        sel = s->csel;
    if (s->casel < asel)
        asel = s->casel;
    allow |= s->callow;
    if (s->findings && !s->supp && (rc = path_push(s)) != MM_OK)
        return rc;

    jframe *nf = &s->fr[s->depth];
    *nf = (jframe){.kind = kind, .sel = RULE_NONE, .asel = RULE_NONE, .path_base = base};
    if (s->supp) {
        s->depth++;
        return MM_OK;
    }
    if (sel != RULE_NONE && s->ract[sel]->type == MM_ACTION_REMOVE) {
        st_report(s, sel, NULL, path_str(s), s->off + i, s->line, true);
        rc = s->holding ? release(s, data, i, false) : flush_to(s, data, i);
        if (rc == MM_OK && !f)
            rc = st_out_put(s, "null", 4); /* the root value is removed */
        s->depth++;
        s->supp = s->depth;
        return rc;
    }
    if (s->holding && (rc = release(s, data, i, true)) != MM_OK)
        return rc;
    nf->sel = sel;
    nf->asel = asel < sel ? asel : RULE_NONE;
    nf->allow = allow;
    frame_paths(s, nf, set_at(s, s->depth));
    s->depth++;
    if (nf->hold) { /* the first member's prefix starts after the opener */
        if ((rc = flush_to(s, data, i + 1)) != MM_OK)
            return rc;
        s->holding = true;
        s->hoff = s->off + i + 1;
    }
    return MM_OK;
}

/* Whether a scalar starting now is certainly passed on untouched: checked inline before
 * scalar_begin, which decides the rest. */
static inline bool scalar_quiet(const mm_stream *s, int vkind)
{
    const jframe *f = s->depth ? &s->fr[s->depth - 1] : NULL;
    if (!f || s->holding || (s->reads && vkind != V_LIT) || (s->tw && jtw_wants(s)))
        return false;
    if (s->supp)
        return true;
    if (f->sel != RULE_NONE || f->asel != RULE_NONE)
        return false;
    if (f->kind == '{')
        return s->csel == RULE_NONE && s->casel == RULE_NONE;
    return !f->live;
}

/* The scalar starting at data[i] is collected from here. */
static inline void value_open(mm_stream *s, size_t i)
{
    s->buf_on = true;
    s->vstart = i;
    s->val.len = 0;
    s->vesc = false;
    s->voff = s->off + i;
    s->vline = s->line;
}

/* A string, number or literal starts at data[i]. */
static __attribute__((noinline)) mm_err scalar_begin_full(mm_stream *s, const char *data,
                                                          size_t i, int vkind)
{
    mm_err rc;
    jframe *f = top(s);
    int sel = f ? f->sel : RULE_NONE, asel = f ? f->asel : RULE_NONE;

    s->vkind = vkind;
    s->buf_on = false;
    if (s->supp)
        return MM_OK;
    child_for_value(s);
    if (s->csel < sel)
        sel = s->csel;
    if (s->casel < asel)
        asel = s->casel;
    s->vsel = sel;
    s->vasel = asel < sel ? asel : RULE_NONE;
    bool want = sel != RULE_NONE || (s->det && vkind != V_LIT) ||
                (s->vasel != RULE_NONE && !s->m->scan) || (s->tw && jtw_wants(s));
    if (s->deny_on) { /* vdeny and vadeny are read only when deny_on */
        s->vdeny = s->vadeny = RULE_NONE;
        if (vkind != V_LIT && sel == RULE_NONE) {
            st_deny(s, (f ? f->allow : 0) | s->callow, &s->vdeny, &s->vadeny);
            want |= s->vdeny != RULE_NONE || s->vadeny != RULE_NONE;
        }
    }
    if (!want) {
        if (s->holding)
            return release(s, data, i, true);
        return MM_OK;
    }
    s->vpath_base = s->path.len;
    if (s->findings && (rc = path_push(s)) != MM_OK)
        return rc;
    /* the bytes before it stay in the run: most values pass as they are and go on with it
     * (scalar_decide writes the run up to the value when it replaces or drops it; a chunk
     * that ends inside the value writes it there). Not while encrypt tweaks may hold the
     * output: what is held before a waiting value counts against its bound (jtweak.c). */
    if (s->tw && !s->holding && (rc = flush_to(s, data, i)) != MM_OK)
        return rc;
    value_open(s, i);
    return MM_OK;
}

/* scalar_begin_full inline where only detectors read values: no path, deny, tweak, hold or
 * findings path around it, so sel and asel are none (an array's child_for_value: none). */
static inline mm_err scalar_begin(mm_stream *s, const char *data, size_t i, int vkind)
{
    jframe *f = top(s);
    if (!f || vkind == V_LIT || !s->det || s->supp || s->holding || s->tw || s->deny_on ||
        s->findings || f->sel != RULE_NONE || f->asel != RULE_NONE ||
        (f->kind == '{' ? s->csel != RULE_NONE || s->casel != RULE_NONE : f->live))
        return scalar_begin_full(s, data, i, vkind);
    if (f->kind == '[')
        child_none(s);
    s->vkind = vkind;
    s->vsel = s->vasel = RULE_NONE;
    value_open(s, i);
    return MM_OK;
}

/* A member's value: its name (*len bytes) is evidence for the detectors that take it. */
static const char *member_of(mm_stream *s, size_t *len)
{
    *len = s->key.len;
    return s->key_det && s->depth && top(s)->kind == '{' ? s->key.data : NULL;
}

/* The buffered scalar s->vptr[0..vlen) is complete: decide, and write it or its
 * replacement (or nothing, when removed). */
static mm_err scalar_decide(mm_stream *s, const char *data, size_t end)
{
    mm_err rc = MM_OK;
    const char *raw = s->vptr;
    size_t n = s->vlen;
    int sel = s->vsel;
    enum { SAME, NEW, DROP } what = SAME;
    bool wait = false; /* the value's ff1 encryption waits (st_act_apply) */
    const char *path = path_str(s);

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
            if ((rc = json_decode(s, content, clen, true)) != MM_OK)
                return rc;
            dec = s->dec.data ? s->dec.data : "";
            dlen = s->dec.len;
            map = s->map;
        }
    }
    if (s->tw && (rc = jtw_value(s, s->vkind == V_STR ? dec : raw, s->vkind == V_STR ? dlen : n,
                                 s->vkind)) != MM_OK)
        return rc;

    s->tmp.len = 0; /* only its length is read */
    if (s->vasel != RULE_NONE && !s->m->scan) /* an audit or exempt path selects it */
        st_report(s, s->vasel, NULL, path, s->voff, s->vline, false);
    if (sel == RULE_NONE && s->vkind != V_LIT) {
        bool apply = false, remove = false, deny = false;
        int attrib = RULE_NONE, fallback = RULE_NONE; /* scan mode: who would take it */
        if (s->m->scan) {
            attrib = s->vasel;
            if (s->deny_on)
                fallback = s->vadeny;
        }
        /* a member's value: its name is evidence for the detectors that take it */
        s->member = member_of(s, &s->member_len);
        if (s->det)
            rc = st_detect(s, dec, dlen, map, cbase, s->vline, path, attrib, fallback, &apply,
                           &remove);
        s->member = NULL;
        if (rc != MM_OK)
            return rc;
        /* a default deny takes what no rule decides whole; "" has nothing to hide */
        if (s->deny_on && (s->vdeny != RULE_NONE || s->vadeny != RULE_NONE)) {
            bool taken = !dlen || (s->det && st_covered(s, dlen));
            deny = !taken && s->vdeny != RULE_NONE;
            if (!taken && s->vadeny != RULE_NONE && !(s->m->scan && s->vasel != RULE_NONE))
                st_report(s, s->vadeny, NULL, path, s->voff, s->vline, false);
        }
        if (remove) {
            what = DROP;
        } else if (deny) {
            sel = s->vdeny; /* below, as a path's rule would */
        } else if (apply) {
            what = NEW;
            rc = s->vkind == V_STR ? json_build_string(s, content, clen, dec, map, &s->tmp)
                                   : json_build_string(s, raw, n, raw, NULL, &s->tmp);
        }
    }
    if (rc == MM_OK && sel != RULE_NONE) {
        const act_t *a = s->ract[sel];
        if (a->type == MM_ACTION_REMOVE) {
            st_report(s, sel, NULL, path, s->voff, s->vline, true);
            what = DROP;
        } else if (s->vkind == V_LIT && raw[0] == 'n') {
            st_report(s, sel, NULL, path, s->voff, s->vline, false); /* null stays null */
        } else if (s->m->rules[sel].jconst && a == &s->m->rules[sel].act) {
            /* a constant: escaped once, at compile time */
            st_report(s, sel, NULL, path, s->voff, s->vline, true);
            what = NEW;
        } else {
            st_report(s, sel, NULL, path, s->voff, s->vline, true);
            mm_buf_reset(&s->abuf);
            if (jtw_takes(s, a)) /* encrypt with a tweak from another member */
                rc = jtw_apply(s, a, dec, dlen, &s->tmp);
            else if ((rc = st_act_apply(s, a, dec, dlen, &s->abuf, &wait)) == MM_OK)
                rc = mm_buf_put_json_str(&s->tmp, s->abuf.data ? s->abuf.data : "", s->abuf.len);
            what = NEW;
        }
    }
    if (rc != MM_OK)
        return rc;

    bool in_place = !s->val.len;
    if (s->holding) {
        if ((rc = release(s, data, in_place ? s->vstart : 0, what != DROP)) != MM_OK)
            return rc;
    } else if (what != SAME && (rc = flush_to(s, data, in_place ? s->vstart : 0)) != MM_OK) {
        return rc; /* the run up to the value, before what replaces it */
    }
    switch (what) {
    case SAME:
        if (in_place) /* the bytes go on with the run they are part of */
            return MM_OK;
        rc = st_out_put(s, raw, n);
        break;
    case NEW:
        jtw_place(s); /* a value waiting for its tweak goes here */
        if (sel != RULE_NONE && s->m->rules[sel].jconst && s->ract[sel] == &s->m->rules[sel].act)
            rc = st_out_put(s, s->m->rules[sel].jconst, s->m->rules[sel].jconst_len);
        else
            rc = st_out_put(s, s->tmp.data, s->tmp.len);
        /* without tweaks held (st_act_apply), a value this short lands at s->ob's end */
        if (rc == MM_OK && wait)
            rc = st_job_placed(s, s->ob.len - s->tmp.len + 1);
        break;
    case DROP:
        if (!top(s))
            rc = st_out_put(s, "null", 4); /* the root value is removed */
        break;
    }
    s->run = end;
    return rc;
}

/* The parent moves on after a value; returns the state to continue in. */
static int value_end(mm_stream *s)
{
    jframe *f = top(s);
    if (!f)
        return J_END;
    f->index++;
    return J_AFTER;
}

/* The scalar ends before data[i]. */
static mm_err scalar_end(mm_stream *s, const char *data, size_t i)
{
    mm_err rc = MM_OK;
    if (!s->buf_on)
        return MM_OK;
    s->buf_on = false;
    if (!s->val.len) { /* all of it in this chunk: read it in place */
        if (i - s->vstart > s->max_value)
            return MM_ELIMIT;
        s->vptr = data + s->vstart;
        s->vlen = i - s->vstart;
    } else {
        if (s->val.len + i > s->max_value)
            return MM_ELIMIT;
        if ((rc = mm_buf_append(&s->val, data, i)) != MM_OK)
            return rc;
        s->vptr = s->val.data;
        s->vlen = s->val.len;
    }
    /* only detectors read it (no path, deny or tweak; nothing held): when they find nothing
     * it passes as it came, else scalar_decide takes their matches (s->sp_ready) */
    bool str = s->vkind == V_STR;
    bool quick = s->vsel == RULE_NONE && s->vasel == RULE_NONE && !s->vesc && !s->val.len &&
                 !s->holding && !s->deny_on && !s->tw && s->det && s->vkind != V_LIT;
    size_t ml = 0;
    const char *mb = quick ? member_of(s, &ml) : NULL;
    if (!quick || ((rc = st_scan(s, s->vptr + str, s->vlen - 2 * str, mb, ml)) == MM_OK && s->nsp))
        rc = scalar_decide(s, data, i);
    s->val.len = 0;
    if (s->findings)
        path_pop(s, s->vpath_base);
    return rc;
}

/* The container at the top closes with data[i]. */
static mm_err container_end(mm_stream *s, const char *data, size_t i)
{
    mm_err rc = MM_OK;
    jframe *f = top(s);
    if (s->holding && (rc = release(s, data, i, true)) != MM_OK)
        return rc;
    if (f->kind == '{' && s->tw && (rc = jtw_object_end(s)) != MM_OK)
        return rc;
    if (s->supp == s->depth) { /* the removed container ends: skip it, closer included */
        s->supp = 0;
        s->run = i + 1;
    }
    s->depth--;
    if (s->findings)
        path_pop(s, f->path_base);
    return MM_OK;
}

/* ---- the machine ---------------------------------------------------------------------- */

/* A member name starts with the quote at data[i]. */
static inline void key_begin(mm_stream *s, size_t i)
{
    const jframe *f = &s->fr[s->depth - 1];
    s->key_on = f->named || ((s->findings || s->key_det || s->tw) && !s->supp);
    s->kesc = false;
    s->kstart = i + 1;
    s->key_raw.len = 0;
    s->voff = s->off + i; /* for a name over the limit */
    s->esc = false;
    s->uleft = 0;
}

static mm_err limit(mm_stream *s, mm_errbuf *eb, mm_err rc)
{
    if (rc == MM_ELIMIT && !s->failed) /* a failure that has its message keeps it */
        return st_fail(s, eb, rc, s->voff, "value longer than the limit");
    return rc;
}

/* ---- skimming what no rule touches (jskim.c) ------------------------------------------- */

/* Whether nothing in the container at the top can change or be reported: then only its
 * syntax matters, and jskim may read it by its tokens. */
static inline bool frame_quiet(const mm_stream *s)
{
    const jframe *f = &s->fr[s->depth - 1];
    if (s->supp)
        return true;
    return !s->reads && !s->holding && !s->det_remove && !f->live && !f->hold &&
           f->sel == RULE_NONE && f->asel == RULE_NONE;
}

/* Whether the object at the top is touched only through some of its members' names, which
 * jskim may then judge (names_judge), skimming the other members. With a findings callback
 * too: a value jskim replaces is reported with its path, offset and line (names_replace). */
static inline bool frame_by_name(const mm_stream *s)
{
    const jframe *f = &s->fr[s->depth - 1];
    return f->by_name && !s->supp && !s->holding && !s->det_remove &&
           !f->hold && f->sel == RULE_NONE && f->asel == RULE_NONE;
}

/* Whether only detectors read the container at the top (jread.c takes its values from
 * jskim): the stream's other conditions are json_feed's read_ok. */
static inline bool frame_reads(const mm_stream *s)
{
    const jframe *f = &s->fr[s->depth - 1];
    return !s->supp && !s->holding && !f->live && !f->hold && f->sel == RULE_NONE &&
           f->asel == RULE_NONE;
}

/* Whether detectors read the values of the live container at the top and paths reach its
 * children only through names (names_judge) or alike for every element (jframe's judged):
 * jskim judges the names and hands the rest to jread.c; read_ok's conditions hold. */
static inline bool frame_judged(const mm_stream *s)
{
    const jframe *f = &s->fr[s->depth - 1];
    return f->judged && !s->supp && !s->holding && !f->hold && f->sel == RULE_NONE &&
           f->asel == RULE_NONE;
}

/* sk_names's open and close (simd_int.h): a container of a by_name object (an object) or of
 * a judged one opens and closes as the byte machine's '{' or '[' and its closer would. */
static int names_open(void *ctx, const char *data, size_t at)
{
    mm_stream *s = ctx;
    if (s->depth >= MM_MASK_MAX_DEPTH) /* the byte machine says so */
        return -1;
    if ((s->skrc = container_begin(s, data, at, data[at])) != MM_OK)
        return -1;
    return frame_by_name(s);
}

/* names_open in judged frames: first the member's child names_judge_any left (an array's
 * element's is container_begin's) */
static int names_open_any(void *ctx, const char *data, size_t at)
{
    mm_stream *s = ctx;
    if (s->cdefer) {
        s->cdefer = false;
        if (top(s)->kind == '{')
            names_rest(s);
    }
    if (names_open(ctx, data, at) < 0)
        return -1;
    return frame_judged(s);
}

static int names_close(void *ctx, const char *data, size_t at)
{
    mm_stream *s = ctx;
    if ((s->skrc = container_end(s, data, at)) != MM_OK)
        return 0;
    value_end(s);
    return top(s)->kind;
}

/* sk_names's take: the value data[start..end) (a string without escapes, a number, true
 * or false) of the member names_judge gave SK_READ, read as the byte machine would read it
 * there, when a path's rule selects it (else json.c reads it: in a judged frame the
 * detectors read it with the member name names_judge did not keep). A masked, hashed,
 * tokenized or encrypted value is taken so in by_name frames too: stopping jskim for the
 * byte machine to read it cost ~230 instructions more a value (callgrind). */
static int names_take(void *ctx, const char *data, size_t start, size_t end, uint64_t lines)
{
    mm_stream *s = ctx;
    uint64_t line = s->line;
    if (s->csel == RULE_NONE)
        return -1;
    s->line += lines; /* the value's line */
    s->skrc = scalar_begin_full(s, data, start, data[start] == '"' ? V_STR
                                                : data[start] == 't' || data[start] == 'f'
                                                    ? V_LIT : V_NUM);
    if (s->skrc == MM_OK && (s->skrc = scalar_end(s, data, end)) == MM_OK)
        value_end(s);
    s->line = line;
    return s->skrc == MM_OK;
}

/* Skims from data[i] in state *js; *next is where the byte machine reads on. The containers
 * jskim was inside when it stopped are opened as container_begin would open them there.
 * `by_name`: the object at the top is skimmed member by member (frame_by_name); `reads`:
 * its values go to the detectors (frame_reads); both: frame_judged. */
static mm_err skim(mm_stream *s, const char *data, size_t i, size_t len, bool by_name,
                   bool reads, int *js, size_t *next)
{
    jframe *f;
    sk_result r;
    mm_err rc;
    /* key_begin keeps member names (and so bounds them) when findings are on */
    size_t keymax = s->findings && !s->supp ? s->max_value : SIZE_MAX;
    const bool judged = by_name && reads;
    const sk_names names = {judged ? names_judge_any : names_judge, names_replace,
                            judged ? names_open_any : names_open, names_close, names_take, s,
                            s->max_value};
    const sk_values vals = {jread_value, s, s->max_value, s->key_det};
    s->skrc = MM_OK;
    if (judged) /* frame_judged (read_ok: no findings path, so keymax is none) */
        jskim_judged(s->cls, &s->skc, data, i, len, *js, top(s)->kind,
                     MM_MASK_MAX_DEPTH - s->depth, &names, &vals, &r);
    else
        jskim(s->cls, &s->skc, data, i, len, *js, top(s)->kind, MM_MASK_MAX_DEPTH - s->depth,
              keymax, by_name ? &names : NULL, reads ? &vals : NULL, &r);
    if (s->skrc != MM_OK)
        return s->skrc;
    f = top(s); /* names_open and names_close may have moved it */
    s->line += r.lines;
    if (r.depth) {
        uint64_t allow = s->supp ? 0 : f->allow;
        if ((rc = ensure_depth(s, s->depth + r.depth)) != MM_OK)
            return rc;
        for (size_t k = 0; k < r.depth; k++)
            s->fr[s->depth++] = (jframe){.kind = (r.kinds[k / 64] >> (k % 64) & 1) ? '{' : '[',
                                         .sel = RULE_NONE, .asel = RULE_NONE, .allow = allow,
                                         .path_base = s->path.len};
    }
    *js = r.js;
    *next = r.pos;
    return MM_OK;
}

mm_err json_feed(mm_stream *s, const char *data, size_t len, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    size_t i = 0, skim_at = SIZE_MAX;
    int js = s->js;
    /* removed containers are skimmed even where every value is read */
    const bool skim_ok = s->cls && !s->reads && !s->tw;
    /* where only detectors read values, jskim hands them over whole (jread.c) */
    const bool read_ok = s->cls && s->det && !s->deny_on && !s->tw && !s->findings &&
                         !s->det_remove;

    s->run = 0;
    if (s->buf_on)
        s->vstart = 0;
    if (s->key_on)
        s->kstart = 0;
    s->skc.data = NULL; /* a new chunk, maybe in the same memory */

    while (i < len) {
        /* where no rule can touch the container, its tokens are skimmed; json.c reads on
         * where jskim stopped (skim_at: it would stop there again). Not while an encrypt
         * tweak watches member names (jtweak.c). */
        if ((skim_ok || read_ok || (s->supp && s->cls && !s->tw)) &&
            (js == J_AFTER || js == J_OBJ_FIRST || js == J_ARR_FIRST) && i != skim_at &&
            s->depth) {
            bool quiet = frame_quiet(s), by_name = !quiet && skim_ok && frame_by_name(s);
            bool reads = !quiet && read_ok && frame_reads(s);
            bool judged = read_ok && !quiet && !reads && frame_judged(s);
            size_t next;
            if (!quiet && !by_name && !reads && !judged)
                goto byte;
            if ((rc = skim(s, data, i, len, by_name || judged, reads || judged, &js, &next)) !=
                MM_OK)
                return limit(s, eb, rc); /* as scalar_end's callers say it */
            skim_at = i = next;
            continue;
        }
    byte:;
        unsigned char c = (unsigned char)data[i];
        switch (js) {
        case J_STR:
        case J_KEY:
            if (s->uleft) {
                if (st_hexv(c) < 0)
                    return st_fail(s, eb, MM_EPARSE, s->off + i, "expected four hex digits after \\u");
                s->uleft--;
                i++;
                continue;
            }
            if (s->esc) {
                if (c == 'u')
                    s->uleft = 4;
                else if (c == 0 || !strchr("\"\\/bfnrt", c))
                    return st_fail(s, eb, MM_EPARSE, s->off + i, "invalid escape in a string");
                s->esc = false;
                i++;
                continue;
            }
            i = str_scan(data, i, len);
            if (i == len)
                continue;
            c = (unsigned char)data[i];
            if (c == '\\') {
                s->esc = true;
                if (js == J_KEY)
                    s->kesc = true;
                else
                    s->vesc = true;
                i++;
                continue;
            }
            if (c != '"')
                return st_fail(s, eb, MM_EPARSE, s->off + i, "control character in a string");
            if (js == J_KEY) {
                if (s->key_on || top(s)->live) {
                    if ((rc = key_step(s, data, i)) != MM_OK)
                        goto err_key;
                } else {
                    child_none(s);
                }
                js = J_COLON;
                i++;
                if (i < len && data[i] == ':') { /* the usual "name":, without a dispatch */
                    js = J_VALUE;
                    i++;
                }
                continue;
            }
            i++;
            if (s->buf_on && (rc = scalar_end(s, data, i)) != MM_OK)
                return limit(s, eb, rc);
            js = value_end(s);
            continue;

        case J_VALUE:
        case J_ARR_FIRST:
        case J_NEXT:
            if (is_ws[c]) {
                s->line += c == '\n';
                i++;
                continue;
            }
            if (c == '"') {
                if (scalar_quiet(s, V_STR))
                    s->buf_on = false;
                else if ((rc = scalar_begin(s, data, i, V_STR)) != MM_OK)
                    return rc;
                js = J_STR;
                s->esc = false;
                s->uleft = 0;
                i++;
                continue;
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                if (scalar_quiet(s, V_NUM))
                    s->buf_on = false;
                else if ((rc = scalar_begin(s, data, i, V_NUM)) != MM_OK)
                    return rc;
                js = J_NUM;
                s->numst = 0;
                continue; /* J_NUM reads this byte */
            }
            if (c == '{' || c == '[') {
                if (s->depth >= MM_MASK_MAX_DEPTH)
                    return st_fail(s, eb, MM_ELIMIT, s->off + i, "nesting deeper than the limit");
                if ((rc = container_begin(s, data, i, (char)c)) != MM_OK)
                    return rc;
                js = c == '{' ? J_OBJ_FIRST : J_ARR_FIRST;
                i++;
                continue;
            }
            if (c == ']' && js == J_ARR_FIRST) {
                if ((rc = container_end(s, data, i)) != MM_OK)
                    return rc;
                js = value_end(s);
                i++;
                continue;
            }
            if (c == 0x1E && js != J_ARR_FIRST && !s->depth && s->o.kind == MM_BODY_NDJSON) {
                i++; /* application/json-seq: the record separator before a value */
                continue;
            }
            if (c == 't' || c == 'f' || c == 'n') {
                if (scalar_quiet(s, V_LIT))
                    s->buf_on = false;
                else if ((rc = scalar_begin(s, data, i, V_LIT)) != MM_OK)
                    return rc;
                js = J_LIT;
                s->lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
                s->litpos = 0;
                continue;
            }
            return st_fail(s, eb, MM_EPARSE, s->off + i, "expected a value");

        case J_OBJ_FIRST:
        case J_OBJ_KEY: {
            if (is_ws[c]) {
                s->line += c == '\n';
                i++;
                continue;
            }
            if (c == '}' && js == J_OBJ_FIRST) {
                if ((rc = container_end(s, data, i)) != MM_OK)
                    return rc;
                js = value_end(s);
                i++;
                continue;
            }
            if (c != '"')
                return st_fail(s, eb, MM_EPARSE, s->off + i, "expected a member name");
            key_begin(s, i);
            js = J_KEY;
            i++;
            continue;
        }

        case J_COLON:
            if (is_ws[c]) {
                s->line += c == '\n';
                i++;
                continue;
            }
            if (c != ':')
                return st_fail(s, eb, MM_EPARSE, s->off + i, "expected ':' after a member name");
            js = J_VALUE;
            i++;
            continue;

        case J_AFTER: {
            jframe *f = top(s);
            if (is_ws[c]) {
                s->line += c == '\n';
                i++;
                continue;
            }
            if (c == ',') {
                if (f->hold && !s->supp) {
                    if ((rc = flush_to(s, data, i)) != MM_OK)
                        return rc;
                    s->holding = true;
                    s->hoff = s->off + i;
                }
                i++;
                if (f->kind == '[') {
                    js = J_VALUE;
                } else if (i < len && data[i] == '"') { /* the usual ,"name" */
                    key_begin(s, i);
                    js = J_KEY;
                    i++;
                } else {
                    js = J_OBJ_KEY;
                }
                continue;
            }
            if (c == (f->kind == '{' ? '}' : ']')) {
                if ((rc = container_end(s, data, i)) != MM_OK)
                    return rc;
                js = value_end(s);
                i++;
                continue;
            }
            return st_fail(s, eb, MM_EPARSE, s->off + i,
                           f->kind == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
        }

        case J_NUM: {
            int st = s->numst;
            for (; i < len; i++) {
                if (st == 3 || st == 5 || st == 8) { /* a run of digits, without the table */
                    while (i < len && (unsigned char)(data[i] - '0') < 10)
                        i++;
                    if (i == len)
                        break;
                }
                int nx = num_next[st][num_class[(unsigned char)data[i]]];
                if (nx >= NUM_END) {
                    if (nx == NUM_ERR)
                        return st_fail(s, eb, MM_EPARSE, s->off + i, num_err[st]);
                    break;
                }
                st = nx;
            }
            s->numst = st;
            if (i == len)
                continue;
            if (s->buf_on && (rc = scalar_end(s, data, i)) != MM_OK)
                return limit(s, eb, rc);
            js = value_end(s);
            continue; /* the delimiter is read in the new state */
        }

        case J_LIT:
            if (c != (unsigned char)s->lit[s->litpos])
                return st_fail(s, eb, MM_EPARSE, s->off + i,
                               "invalid literal (expected true, false or null)");
            s->litpos++;
            i++;
            if (!s->lit[s->litpos]) {
                if (s->buf_on && (rc = scalar_end(s, data, i)) != MM_OK)
                    return limit(s, eb, rc);
                js = value_end(s);
            }
            continue;

        case J_END:
            if (is_ws[c]) {
                if (c == '\n') {
                    s->line++;
                    if (s->o.kind == MM_BODY_NDJSON)
                        js = J_NEXT;
                }
                i++;
                continue;
            }
            return st_fail(s, eb, MM_EPARSE, s->off + i,
                           s->o.kind == MM_BODY_NDJSON ? "expected a newline between values"
                                                       : "unexpected data after the JSON value");
        }
    }

    /* The chunk ends: what is settled goes on; a scalar or name in progress is kept. */
    s->js = js;
    size_t tail = len;
    if (s->buf_on) {
        if (s->val.len + (len - s->vstart) > s->max_value)
            return limit(s, eb, MM_ELIMIT);
        if ((rc = mm_buf_append(&s->val, data + s->vstart, len - s->vstart)) != MM_OK)
            return rc;
        tail = s->vstart;
    }
    if (s->key_on) {
        if (s->key_raw.len + (len - s->kstart) > s->max_value) {
            rc = MM_ELIMIT;
            goto err_key;
        }
        if ((rc = mm_buf_append(&s->key_raw, data + s->kstart, len - s->kstart)) != MM_OK)
            return rc;
    }
    if (s->holding && !s->supp) {
        if (s->pre.len + (tail - s->run) > s->max_value)
            return st_fail(s, eb, MM_ELIMIT, s->hoff, "member name longer than the limit");
        if ((rc = mm_buf_append(&s->pre, data + s->run, tail - s->run)) != MM_OK)
            return rc;
        s->run = tail;
        return MM_OK;
    }
    return flush_to(s, data, tail);

err_key:
    if (rc == MM_ELIMIT)
        return st_fail(s, eb, rc, s->voff, "member name longer than the limit");
    return rc;
}

mm_err json_end(mm_stream *s, mm_errbuf *eb)
{
    mm_err rc;
    if (s->js == J_NUM && !s->depth && num_complete(s->numst)) {
        s->run = 0;
        if (s->buf_on)
            s->vstart = 0;
        if ((rc = scalar_end(s, "", 0)) != MM_OK)
            return limit(s, eb, rc);
        s->js = value_end(s);
    }
    if (s->js == J_END || s->js == J_NEXT || (s->js == J_VALUE && !s->depth))
        return MM_OK;
    return st_fail(s, eb, MM_EPARSE, s->off, "unexpected end of input: the JSON value is incomplete");
}
