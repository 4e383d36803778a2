/* lib/mask: protobuf messages masked by field name, walking the wire format with the
 * descriptors (pbdesc.c). A message is addressed as its JSON mapping would be, so the JSON
 * path automaton (path.c, jpath.c) selects fields: a field is a member named by its proto
 * name, a repeated field an array ($.items[*].card, $.items[2]), a map field an object keyed
 * by its keys ($.labels.ssn, $.labels[*]), `..` reaches any depth.
 *
 * What a rule does to a field:
 * - string and bytes fields take the action on their bytes (detectors read strings, and
 *   bytes only when the stream says); the field is written again with its new length and
 *   every enclosing message's length follows;
 * - a selected number, bool or enum cannot hold a masked form in its type: it is dropped,
 *   so readers see the type's default; a selected packed repeated field is dropped whole;
 * - a selected message takes the action on every field inside; `remove` drops any field;
 * - a default deny (defaultDeny.body) takes strings and numbers no path allows, as in JSON.
 * Fields the descriptors do not know and groups pass unread (a group a rule selects is
 * dropped). Malformed input (a truncated varint or length, a wire type the descriptor does
 * not allow, nesting past PB_MAX_DEPTH) is an error naming the offset, the message type and
 * the field; nothing of the message is written then. */
#include "mask/pb_int.h"
#include "mask/stream_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* A node of the message tree as the path automaton sees it. */
typedef struct {
    uint64_t *set; /* active states; meaningful when live */
    bool live, named;
    int sel, asel;  /* the rule selecting it (inherited from above), an audit/exempt one */
    uint64_t allow; /* default-deny rules whose paths allow it */
} pbnode;

typedef struct {
    mm_stream *s;
    pbstate *ps;
    const uint8_t *base; /* the message being masked: offsets in errors count from it */
} walker;

static mm_err werr(walker *w, const uint8_t *at, const pbmsg *m, const pbfield *f,
                   uint32_t num, const char *what)
{
    char fld[160] = "";
    if (f)
        snprintf(fld, sizeof(fld), " field %u (%.120s)", f->number, f->name);
    else if (num)
        snprintf(fld, sizeof(fld), " field %u", num);
    w->s->failed = true;
    return mm_errf(w->s->eb, MM_EPARSE, "offset %zu: message %.120s%s: %s",
                   (size_t)(at - w->base), m->full, fld, what);
}

static uint64_t *slot(pbstate *ps, size_t words, int depth, int k)
{
    return ps->sets + ((size_t)depth * 2 + (size_t)k) * words;
}

/* The child of `parent` by member name (k, n) or element index (k NULL), into `c`. */
static void step(mm_stream *s, const pbnode *parent, const char *k, size_t n, long index,
                 uint64_t *set, pbnode *c)
{
    *c = (pbnode){.sel = parent->sel, .asel = parent->asel, .allow = parent->allow};
    if (!parent->live)
        return;
    s->cset = set;
    step_child(s, parent->set, parent->named, k, n, index);
    c->set = set;
    c->live = s->clive;
    c->named = s->cnamed;
    if (s->csel < c->sel)
        c->sel = s->csel;
    if (s->casel < c->asel)
        c->asel = s->casel;
    c->allow |= s->callow;
}

/* ---- findings paths ------------------------------------------------------------------- */

static mm_err path_name(pbstate *ps, const char *k, size_t n)
{
    bool plain = n && !(k[0] >= '0' && k[0] <= '9');
    for (size_t i = 0; i < n && plain; i++)
        plain = (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
                (k[i] >= '0' && k[i] <= '9') || k[i] == '_';
    if (plain)
        return mm_buf_putc(&ps->path, '.') == MM_OK ? mm_buf_append(&ps->path, k, n) : MM_ENOMEM;
    mm_err rc = mm_buf_puts(&ps->path, "['");
    for (size_t i = 0; i < n && rc == MM_OK; i++) {
        if (k[i] == '\'' || k[i] == '\\')
            rc = mm_buf_putc(&ps->path, '\\');
        if (rc == MM_OK)
            rc = mm_buf_putc(&ps->path, k[i]);
    }
    return rc == MM_OK ? mm_buf_puts(&ps->path, "']") : rc;
}

static const char *path_of(mm_stream *s, pbstate *ps)
{
    return s->findings ? mm_buf_cstr(&ps->path) : NULL;
}

static void path_cut(pbstate *ps, size_t len)
{
    ps->path.len = len;
    if (ps->path.data)
        ps->path.data[len] = '\0';
}

/* ---- output --------------------------------------------------------------------------- */

static mm_err put_key(mm_buf *out, uint32_t num, int wt)
{
    uint8_t b[10];
    return mm_buf_append(out, b, pb_put_varint(b, ((uint64_t)num << 3) | (unsigned)wt));
}

static mm_err put_len_field(mm_buf *out, uint32_t num, const char *v, size_t n)
{
    uint8_t b[10];
    mm_err rc = put_key(out, num, PB_LEN);
    if (rc == MM_OK)
        rc = mm_buf_append(out, b, pb_put_varint(b, n));
    return rc == MM_OK ? mm_buf_append(out, v, n) : rc;
}

/* The bytes appended to `out` since `pos` become a length-delimited value: its length goes
 * in front of them. */
static mm_err close_len(mm_buf *out, size_t pos)
{
    uint8_t b[10];
    size_t n = out->len - pos, k = pb_put_varint(b, n);
    mm_err rc = mm_buf_append(out, b, k);
    if (rc != MM_OK)
        return rc;
    memmove(out->data + pos + k, out->data + pos, n);
    memcpy(out->data + pos, b, k);
    return MM_OK;
}

/* ---- values --------------------------------------------------------------------------- */

static int wire_of(int type)
{
    switch (type) {
    case PBT_DOUBLE: case PBT_FIXED64: case PBT_SFIXED64: return PB_I64;
    case PBT_FLOAT: case PBT_FIXED32: case PBT_SFIXED32: return PB_I32;
    case PBT_STRING: case PBT_BYTES: case PBT_MESSAGE: return PB_LEN;
    case PBT_GROUP: return PB_SGROUP;
    default: return PB_VARINT;
    }
}

/* A string or bytes value selected by rule `sel` or read by the detectors and the default
 * deny: the field written again (or dropped), or copied as it was. */
static mm_err text_value(walker *w, const pbfield *f, const pbtok *t, const uint8_t *end,
                         const pbnode *node, mm_buf *out)
{
    mm_stream *s = w->s;
    pbstate *ps = w->ps;
    mm_err rc = MM_OK;
    const char *v = (const char *)t->val, *path = path_of(s, ps);
    size_t n = t->len;
    uint64_t off = ps->off0 + (uint64_t)(t->val - w->base);
    int sel = node->sel;

    if (node->asel < sel && !s->m->scan)
        st_report(s, node->asel, NULL, path, off, s->line, false);
    if (sel == RULE_NONE) {
        bool apply = false, remove = false, reads = f->type == PBT_STRING || ps->bytes;
        int deny = RULE_NONE, silent = RULE_NONE;
        if (s->deny_on)
            st_deny(s, node->allow, &deny, &silent);
        if (s->det && reads) {
            s->member = s->key_det ? f->name : NULL;
            s->member_len = f->name_len;
            rc = st_detect(s, v, n, NULL, off, s->line, path, node->asel,
                           s->m->scan ? silent : RULE_NONE, &apply, &remove);
            s->member = NULL;
            if (rc != MM_OK)
                return rc;
        }
        bool taken = !n || (s->det && reads && st_covered(s, n));
        if (silent != RULE_NONE && !taken && !(s->m->scan && node->asel != RULE_NONE))
            st_report(s, silent, NULL, path, off, s->line, false);
        if (remove)
            return MM_OK; /* the field is dropped */
        if (deny != RULE_NONE && !taken) {
            sel = deny;
        } else if (apply) {
            mm_buf_reset(&ps->val);
            if ((rc = st_build_text(s, v, n, &ps->val)) != MM_OK)
                return rc;
            return put_len_field(out, f->number, ps->val.data ? ps->val.data : "", ps->val.len);
        } else {
            return mm_buf_append(out, t->start, (size_t)(end - t->start));
        }
    }
    const act_t *a = s->m->rules[sel].deny ? &s->m->rules[sel].act : s->ract[sel];
    st_report(s, sel, NULL, path, off, s->line, true);
    if (a->type == MM_ACTION_REMOVE)
        return MM_OK;
    mm_buf_reset(&ps->val);
    if ((rc = act_apply(a, v, n, &ps->val)) != MM_OK)
        return rc;
    return put_len_field(out, f->number, ps->val.data ? ps->val.data : "", ps->val.len);
}

/* A number, bool or enum (or a packed run of them): a rule or default deny that takes it
 * drops it; otherwise it is copied. */
static mm_err number_value(walker *w, const pbtok *t, const uint8_t *end, const pbnode *node,
                           bool packed_sel, mm_buf *out)
{
    mm_stream *s = w->s;
    pbstate *ps = w->ps;
    const char *path = path_of(s, ps);
    uint64_t off = ps->off0 + (uint64_t)(t->val - w->base);
    int sel = node->sel, deny = RULE_NONE, silent = RULE_NONE;

    if (packed_sel && sel == RULE_NONE)
        sel = ps->packed_sel;
    if (node->asel < sel && !s->m->scan)
        st_report(s, node->asel, NULL, path, off, s->line, false);
    if (sel == RULE_NONE && s->deny_on) {
        st_deny(s, node->allow, &deny, &silent);
        if (silent != RULE_NONE)
            st_report(s, silent, NULL, path, off, s->line, false);
        sel = deny;
    }
    if (sel == RULE_NONE)
        return mm_buf_append(out, t->start, (size_t)(end - t->start));
    st_report(s, sel, NULL, path, off, s->line, true);
    return MM_OK;
}

static mm_err walk(walker *w, int mi, const uint8_t *p, size_t n, const pbnode *node,
                   int depth, mm_buf *out);

/* Whether anything under `node` can change: else its bytes are copied unread. */
static bool wanted(const mm_stream *s, const pbnode *node)
{
    return node->live || node->sel != RULE_NONE || node->asel != RULE_NONE || s->reads;
}

/* One value of field f (one element when repeated) with its node. */
static mm_err value(walker *w, const pbmsg *m, const pbfield *f, const pbtok *t,
                    const uint8_t *end, const pbnode *node, int depth, mm_buf *out)
{
    mm_stream *s = w->s;
    if (f->type == PBT_STRING || f->type == PBT_BYTES) {
        if (!wanted(s, node))
            return mm_buf_append(out, t->start, (size_t)(end - t->start));
        return text_value(w, f, t, end, node, out);
    }
    if (f->type == PBT_GROUP) { /* unread: dropped when selected */
        if (node->sel != RULE_NONE) {
            st_report(s, node->sel, NULL, path_of(s, w->ps),
                      w->ps->off0 + (uint64_t)(t->val - w->base), s->line, true);
            return MM_OK;
        }
        return mm_buf_append(out, t->start, (size_t)(end - t->start));
    }
    if (f->type != PBT_MESSAGE)
        return number_value(w, t, end, node, false, out);
    if (!wanted(s, node))
        return mm_buf_append(out, t->start, (size_t)(end - t->start));
    if (node->sel != RULE_NONE && s->ract[node->sel]->type == MM_ACTION_REMOVE &&
        !s->m->rules[node->sel].deny) {
        st_report(s, node->sel, NULL, path_of(s, w->ps),
                  w->ps->off0 + (uint64_t)(t->val - w->base), s->line, true);
        return MM_OK;
    }
    if (depth + 1 >= PB_MAX_DEPTH)
        return werr(w, t->start, m, f, 0, "messages nested deeper than the limit (100)");
    mm_err rc = put_key(out, f->number, PB_LEN);
    size_t pos = out->len;
    if (rc == MM_OK)
        rc = walk(w, f->msg, t->val, t->len, node, depth + 1, out);
    return rc == MM_OK ? close_len(out, pos) : rc;
}

/* The key of a map entry e[0..n) as its JSON mapping writes it, into ps->key. */
static mm_err map_key(walker *w, const pbmsg *em, const uint8_t *e, size_t n)
{
    pbstate *ps = w->ps;
    const uint8_t *q = e, *end = e + n;
    const pbfield *kf = pbdesc_field(em, 1);
    pbtok t;
    mm_err rc = MM_OK;
    mm_buf_reset(&ps->key);
    while (q < end) {
        const char *err = pb_next(&q, end, &t);
        if (err)
            return werr(w, t.start, em, NULL, 0, err);
        if (t.num != 1 || !kf)
            continue;
        if (t.wt != wire_of(kf->type))
            return werr(w, t.start, em, kf, 0, "wrong wire type for the map key");
        mm_buf_reset(&ps->key);
        if (kf->type == PBT_STRING)
            rc = mm_buf_append(&ps->key, t.val, t.len);
        else if (kf->type == PBT_BOOL)
            rc = mm_buf_puts(&ps->key, t.v ? "true" : "false");
        else if (kf->type == PBT_SINT32 || kf->type == PBT_SINT64)
            rc = mm_buf_printf(&ps->key, "%" PRId64, (int64_t)((t.v >> 1) ^ (~(t.v & 1) + 1)));
        else if (kf->type == PBT_INT32 || kf->type == PBT_INT64)
            rc = mm_buf_printf(&ps->key, "%" PRId64, (int64_t)t.v);
        else if (t.wt == PB_VARINT)
            rc = mm_buf_printf(&ps->key, "%" PRIu64, t.v);
        else { /* fixed-width keys */
            uint64_t v = 0;
            for (size_t i = 0; i < t.len; i++)
                v |= (uint64_t)t.val[i] << (8 * i);
            if (kf->type == PBT_SFIXED32)
                rc = mm_buf_printf(&ps->key, "%" PRId32, (int32_t)(uint32_t)v);
            else if (kf->type == PBT_SFIXED64)
                rc = mm_buf_printf(&ps->key, "%" PRId64, (int64_t)v);
            else
                rc = mm_buf_printf(&ps->key, "%" PRIu64, v);
        }
        if (rc != MM_OK)
            return rc;
    }
    return MM_OK;
}

/* A map entry: its key is copied, its value masked as the member the key names. */
static mm_err map_entry(walker *w, const pbmsg *m, const pbfield *f, const pbtok *t,
                        const pbnode *fnode, int depth, mm_buf *out)
{
    mm_stream *s = w->s;
    pbstate *ps = w->ps;
    const pbmsg *em = &ps->d->msgs[f->msg];
    pbnode en;
    mm_err rc;
    size_t base = ps->path.len;

    if (depth + 1 >= PB_MAX_DEPTH)
        return werr(w, t->start, m, f, 0, "messages nested deeper than the limit (100)");
    if ((rc = map_key(w, em, t->val, t->len)) != MM_OK)
        return rc;
    const char *key = mm_buf_cstr(&ps->key); /* never NULL: a name step, even "" */
    step(s, fnode, key, ps->key.len, 0, slot(ps, s->words, depth + 1, 0), &en);
    if (s->findings && (rc = path_name(ps, key, ps->key.len)) != MM_OK)
        return rc;
    if ((rc = put_key(out, f->number, PB_LEN)) != MM_OK)
        return rc;
    size_t pos = out->len;
    const uint8_t *q = t->val, *end = t->val + t->len;
    pbtok u;
    while (q < end && rc == MM_OK) {
        const char *err = pb_next(&q, end, &u);
        if (err)
            return werr(w, u.start, em, NULL, 0, err);
        const pbfield *vf = u.num == 2 ? pbdesc_field(em, 2) : NULL;
        if (!vf) {
            rc = mm_buf_append(out, u.start, (size_t)(q - u.start));
            continue;
        }
        if (u.wt != wire_of(vf->type))
            return werr(w, u.start, em, vf, 0, "wrong wire type for the map value");
        rc = value(w, em, vf, &u, q, &en, depth + 1, out);
    }
    path_cut(ps, base);
    return rc == MM_OK ? close_len(out, pos) : rc;
}

/* A packed repeated field: selected whole, or by any of its elements' paths, it is dropped. */
static mm_err packed(walker *w, const pbmsg *m, const pbfield *f, const pbtok *t,
                     const uint8_t *end, const pbnode *fnode, int depth, mm_buf *out)
{
    mm_stream *s = w->s;
    pbstate *ps = w->ps;
    pbnode en;
    const uint8_t *q = t->val, *e = t->val + t->len;
    long i = 0;
    ps->packed_sel = RULE_NONE;
    while (q < e) { /* validate, and find an element a path selects */
        uint64_t v;
        int wt = wire_of(f->type);
        if (wt == PB_VARINT ? !pb_varint(&q, e, &v)
                            : (size_t)(e - q) < (wt == PB_I64 ? 8u : 4u))
            return werr(w, q, m, f, 0, "truncated element of a packed field");
        if (wt != PB_VARINT)
            q += wt == PB_I64 ? 8 : 4;
        if (fnode->live && ps->packed_sel == RULE_NONE) {
            step(s, fnode, NULL, 0, i, slot(ps, s->words, depth + 1, 1), &en);
            if (en.sel != fnode->sel)
                ps->packed_sel = en.sel;
        }
        i++;
    }
    return number_value(w, t, end, fnode, true, out);
}

/* The fields of message `mi` in p[0..n), masked into out. */
static mm_err walk(walker *w, int mi, const uint8_t *p, size_t n, const pbnode *node,
                   int depth, mm_buf *out)
{
    mm_stream *s = w->s;
    pbstate *ps = w->ps;
    const pbmsg *m = &ps->d->msgs[mi];
    const uint8_t *q = p, *end = p + n;
    uint32_t last = 0;
    long count = 0; /* elements of the repeated field `last` so far */
    mm_err rc = MM_OK;
    pbtok t;

    while (q < end && rc == MM_OK) {
        const char *err = pb_next(&q, end, &t);
        if (err)
            return werr(w, t.start, m, pbdesc_field(m, t.num), t.num, err);
        const pbfield *f = pbdesc_field(m, t.num);
        if (!f) { /* unknown to the descriptors: passes, unless its message is selected */
            if (node->sel == RULE_NONE)
                rc = mm_buf_append(out, t.start, (size_t)(q - t.start));
            continue;
        }
        int want = wire_of(f->type);
        bool is_packed = f->repeated && t.wt == PB_LEN && want != PB_LEN && want != PB_SGROUP;
        if (t.wt != want && !is_packed) {
            char what[96];
            snprintf(what, sizeof(what), "wire type %d where the descriptor's type wants %d",
                     t.wt, want);
            return werr(w, t.start, m, f, 0, what);
        }
        /* elements are counted per field; encoders write a repeated field's together */
        count = t.num == last ? count + 1 : 0;
        last = t.num;
        pbnode fn, en;
        size_t base = ps->path.len;
        step(s, node, f->name, f->name_len, 0, slot(ps, s->words, depth, 0), &fn);
        if (s->findings && (rc = path_name(ps, f->name, f->name_len)) != MM_OK)
            return rc;
        if (f->repeated && f->msg >= 0 && ps->d->msgs[f->msg].map_entry) {
            rc = map_entry(w, m, f, &t, &fn, depth, out);
        } else if (is_packed) {
            rc = packed(w, m, f, &t, q, &fn, depth, out);
        } else if (f->repeated) {
            step(s, &fn, NULL, 0, count, slot(ps, s->words, depth, 1), &en);
            if (s->findings)
                rc = mm_buf_printf(&ps->path, "[%ld]", count);
            if (rc == MM_OK)
                rc = value(w, m, f, &t, q, &en, depth, out);
        } else {
            rc = value(w, m, f, &t, q, &fn, depth, out);
        }
        path_cut(ps, base);
    }
    return rc;
}

/* ---- the surface for the formats ------------------------------------------------------ */

mm_err pb_init(mm_stream *s)
{
    const mpaths *pa = &s->m->pa;
    pbstate *ps = s->pb = mm_calloc(1, sizeof(*ps));
    if (!ps)
        return MM_ENOMEM;
    mm_buf_init(&ps->path, 0);
    mm_buf_init(&ps->val, 0);
    mm_buf_init(&ps->key, 0);
    mm_buf_init(&ps->msg, 0);
    mm_buf_init(&ps->z, 0);
    mm_buf_init(&ps->mout, 0);
    ps->d = s->o.proto;
    ps->bytes = s->o.proto_bytes || s->m->pb_bytes;
    ps->max_message = s->o.max_message ? s->o.max_message : MM_GRPC_MAX_MESSAGE;
    ps->root = -1;
    if (ps->d) {
        const char *type = s->o.proto_message;
        if (!type && s->o.grpc_method) {
            const pbmethod *me = pbdesc_find_method(ps->d, s->o.grpc_method);
            if (me)
                ps->root = s->o.direction == MM_DIR_REQUEST ? me->in : me->out;
        } else if (type) {
            ps->root = pbdesc_find_msg(ps->d, type, strlen(type));
        }
    }
    s->words = pa->words;
    if (!s->words)
        return MM_OK;
    if (!(s->root = mm_calloc(s->words, sizeof(uint64_t))) ||
        !(ps->sets = mm_calloc(2 * (PB_MAX_DEPTH + 2) * s->words, sizeof(uint64_t))))
        return MM_ENOMEM;
    for (size_t i = 0; i < s->m->n_paths; i++) {
        size_t st = s->m->paths[i].first_state;
        if (s->rs[s->m->paths[i].rule] != RS_OFF)
            s->root[st / 64] |= 1ull << (st % 64);
    }
    return MM_OK;
}

void pb_free(mm_stream *s)
{
    pbstate *ps = s->pb;
    mm_free(s->root);
    s->root = NULL;
    s->cset = NULL; /* it pointed into ps->sets */
    if (!ps)
        return;
    mm_free(ps->sets);
    mm_buf_free(&ps->path);
    mm_buf_free(&ps->val);
    mm_buf_free(&ps->key);
    mm_buf_free(&ps->msg);
    mm_buf_free(&ps->z);
    mm_buf_free(&ps->mout);
    mm_free(ps);
    s->pb = NULL;
}

mm_err pb_ready(mm_stream *s, mm_errbuf *eb)
{
    pbstate *ps = s->pb;
    if (ps->root >= 0)
        return MM_OK;
    s->failed = true;
    if (!ps->d)
        return mm_errf(eb, MM_ENOTFOUND, "no protobuf descriptors for this body");
    if (s->o.proto_message)
        return mm_errf(eb, MM_ENOTFOUND, "message type %.200s is not in the descriptor set",
                       s->o.proto_message);
    if (s->o.grpc_method)
        return mm_errf(eb, MM_ENOTFOUND, "method %.200s is not in the descriptor set",
                       s->o.grpc_method);
    return mm_errf(eb, MM_ENOTFOUND, "no gRPC method or message type for this body");
}

mm_err pb_mask(mm_stream *s, const uint8_t *in, size_t n, uint64_t off, mm_buf *out)
{
    pbstate *ps = s->pb;
    walker w = {.s = s, .ps = ps, .base = in};
    pbnode root = {.sel = RULE_NONE, .asel = RULE_NONE};
    ps->off0 = off;
    path_cut(ps, 0);
    if (s->findings && mm_buf_putc(&ps->path, '$') != MM_OK)
        return MM_ENOMEM;
    if (s->words) {
        s->cset = slot(ps, s->words, PB_MAX_DEPTH + 1, 0);
        step_root(s);
        root = (pbnode){.set = s->cset, .live = s->clive, .named = s->cnamed,
                        .sel = s->csel, .asel = s->casel, .allow = s->callow};
    }
    if (root.sel != RULE_NONE && s->ract[root.sel]->type == MM_ACTION_REMOVE) {
        st_report(s, root.sel, NULL, path_of(s, ps), off, s->line, true);
        return MM_OK; /* the whole message removed: an empty message */
    }
    return walk(&w, ps->root, in, n, &root, 0, out);
}
