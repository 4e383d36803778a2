/* lib/mask: protobuf descriptors — a FileDescriptorSet (the binary `protoc
 * --descriptor_set_out`, with --include_imports so that every type a field names is in it)
 * read into the tables the message masker walks by: each message's fields by number, with
 * name, type and label, and each service method's request and response types by gRPC path.
 * Only what masking needs is read (descriptor.proto field numbers below); options, comments,
 * enums' values and extensions are skipped. A file named twice (a set concatenated from two
 * runs) is read once. */
#include "mask/pb_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PB_MAX_NEST 64 /* nested message declarations; protoc itself refuses far fewer */

typedef struct {
    const uint8_t *base; /* the whole set, for offsets in messages */
    mm_errbuf *eb;
    pbmsg *msgs;
    size_t n_msgs, cap_msgs;
    pbmethod *methods;
    size_t n_methods, cap_methods;
    char **mtypes; /* per method: input, output type names until resolved */
    char **files;
    size_t n_files, cap_files;
} pbparse;

const char *pb_next(const uint8_t **p, const uint8_t *end, pbtok *t)
{
    uint64_t key, v;
    t->start = *p;
    t->num = 0;
    if (!pb_varint(p, end, &key))
        return "truncated field key";
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return "field number out of range";
    t->num = (uint32_t)(key >> 3);
    t->wt = (int)(key & 7);
    t->val = *p;
    t->len = 0;
    t->v = 0;
    switch (t->wt) {
    case PB_VARINT:
        if (!pb_varint(p, end, &t->v))
            return "truncated varint";
        t->len = (size_t)(*p - t->val);
        return NULL;
    case PB_I64:
    case PB_I32: {
        size_t n = t->wt == PB_I64 ? 8 : 4;
        if ((size_t)(end - *p) < n)
            return "truncated fixed-width value";
        *p += n;
        t->len = n;
        return NULL;
    }
    case PB_LEN:
        if (!pb_varint(p, end, &v))
            return "truncated length";
        if (v > (uint64_t)(end - *p))
            return "length past the end of the message";
        t->val = *p;
        t->len = (size_t)v;
        *p += v;
        return NULL;
    case PB_SGROUP: { /* skip to the matching end-group, nesting bounded */
        unsigned depth = 1;
        pbtok in;
        while (depth) {
            if (*p >= end)
                return "group without its end";
            const char *e = pb_next_flat(p, end, &in);
            if (e)
                return e;
            if (in.wt == PB_SGROUP && ++depth > PB_MAX_DEPTH)
                return "groups nested too deep";
            if (in.wt == PB_EGROUP)
                depth--;
        }
        t->len = (size_t)(in.start - t->val);
        return NULL;
    }
    case PB_EGROUP:
        return "end-group without its start";
    default:
        return "invalid wire type";
    }
}

/* pb_next without descending into groups: a start or end group is returned as it is. */
const char *pb_next_flat(const uint8_t **p, const uint8_t *end, pbtok *t)
{
    uint64_t key;
    const uint8_t *q = *p;
    if (!pb_varint(&q, end, &key))
        return "truncated field key";
    int wt = (int)(key & 7);
    if (wt != PB_SGROUP && wt != PB_EGROUP)
        return pb_next(p, end, t);
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return "field number out of range";
    t->start = *p;
    t->num = (uint32_t)(key >> 3);
    t->wt = wt;
    t->val = q;
    t->len = 0;
    *p = q;
    return NULL;
}

static mm_err bad(pbparse *ps, const uint8_t *at, const char *ctx, const char *what)
{
    return mm_errf(ps->eb, MM_EPARSE, "descriptor set: offset %zu: %s: %s",
                   (size_t)(at - ps->base), ctx, what);
}

/* A string field's value, NUL-terminated, into *out (replacing what was there). */
static mm_err take_str(const pbtok *t, char **out)
{
    char *s = mm_malloc(t->len + 1);
    if (!s)
        return MM_ENOMEM;
    memcpy(s, t->val, t->len);
    s[t->len] = '\0';
    mm_free(*out);
    *out = s;
    return MM_OK;
}

static mm_err grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return MM_OK;
    size_t c = *cap ? *cap * 2 : 8;
    void *nv = mm_realloc(*v, c * size);
    if (!nv)
        return MM_ENOMEM;
    *v = nv;
    *cap = c;
    return MM_OK;
}

/* Fields of a message p[0..n), read one by one: it_next gives the next in *t, a malformed
 * one is a parse error naming `ctx`. */
typedef struct {
    const uint8_t *q, *e;
} pbiter;

static pbiter iter(const uint8_t *p, size_t n)
{
    return (pbiter){p, p + n};
}

static mm_err it_next(pbparse *ps, pbiter *it, pbtok *t, const char *ctx)
{
    const char *err = pb_next(&it->q, it->e, t);
    return err ? bad(ps, t->start, ctx, err) : MM_OK;
}

static mm_err want_len(pbparse *ps, const pbtok *t, const char *ctx)
{
    return t->wt == PB_LEN ? MM_OK : bad(ps, t->start, ctx, "wrong wire type (want length)");
}

static mm_err parse_field(pbparse *ps, pbmsg *m, const pbtok *ft, const char *ctx)
{
    mm_err rc = MM_OK;
    pbtok t;
    pbfield *v = mm_realloc(m->fields, (m->n_fields + 1) * sizeof(*v));
    if (!v)
        return MM_ENOMEM;
    m->fields = v;
    pbfield *f = &m->fields[m->n_fields++];
    memset(f, 0, sizeof(*f));
    f->msg = -1;
    for (pbiter it = iter(ft->val, ft->len); it.q < it.e && rc == MM_OK;) {
        if ((rc = it_next(ps, &it, &t, ctx)) != MM_OK)
            break;
        switch (t.num) {
        case 1: /* name */
            if ((rc = want_len(ps, &t, ctx)) == MM_OK && (rc = take_str(&t, &f->name)) == MM_OK)
                f->name_len = t.len;
            break;
        case 3: /* number */
            if (t.wt != PB_VARINT || t.v == 0 || t.v > 0x1fffffff)
                rc = bad(ps, t.start, ctx, "field number missing or out of range");
            f->number = (uint32_t)t.v;
            break;
        case 4: /* label: 3 = repeated */
            f->repeated = t.wt == PB_VARINT && t.v == 3;
            break;
        case 5: /* type */
            if (t.wt != PB_VARINT || t.v == 0 || t.v > PBT_MAX)
                rc = bad(ps, t.start, ctx, "unknown field type");
            f->type = (uint8_t)t.v;
            break;
        case 6: /* type_name */
            if ((rc = want_len(ps, &t, ctx)) == MM_OK)
                rc = take_str(&t, &f->type_name);
            break;
        }
    }
    if (rc == MM_OK && (!f->name || !f->number || !f->type))
        rc = bad(ps, ft->start, ctx, "a field needs a name, a number and a type");
    return rc;
}

static mm_err parse_msg(pbparse *ps, const char *prefix, const pbtok *mt, int nest)
{
    mm_err rc = MM_OK;
    pbtok t;
    char *name = NULL, *full = NULL;
    char ctx[160];

    if (nest > PB_MAX_NEST)
        return bad(ps, mt->start, prefix, "message declarations nested too deep");
    for (pbiter it = iter(mt->val, mt->len); it.q < it.e && rc == MM_OK;)
        if ((rc = it_next(ps, &it, &t, "message")) == MM_OK && t.num == 1 && t.wt == PB_LEN)
            rc = take_str(&t, &name);
    if (rc != MM_OK)
        goto out;
    if (!name || !*name) {
        rc = bad(ps, mt->start, "message", "a message without a name");
        goto out;
    }
    size_t fl = strlen(prefix) + 1 + strlen(name) + 1;
    if (!(full = mm_malloc(fl))) {
        rc = MM_ENOMEM;
        goto out;
    }
    snprintf(full, fl, "%s%s%s", prefix, *prefix ? "." : "", name);
    if ((rc = grow((void **)&ps->msgs, &ps->cap_msgs, ps->n_msgs, sizeof(pbmsg))) != MM_OK)
        goto out;
    size_t idx = ps->n_msgs++;
    memset(&ps->msgs[idx], 0, sizeof(pbmsg));
    ps->msgs[idx].full = full;
    full = NULL; /* ps->msgs owns it */
    snprintf(ctx, sizeof(ctx), "message %.140s", ps->msgs[idx].full);
    for (pbiter it = iter(mt->val, mt->len); it.q < it.e && rc == MM_OK;) {
        if ((rc = it_next(ps, &it, &t, ctx)) != MM_OK)
            break;
        if (t.num != 2 && t.num != 3 && t.num != 7)
            continue;
        if ((rc = want_len(ps, &t, ctx)) != MM_OK)
            break;
        if (t.num == 2) {
            rc = parse_field(ps, &ps->msgs[idx], &t, ctx);
        } else if (t.num == 3) {
            rc = parse_msg(ps, ps->msgs[idx].full, &t, nest + 1);
        } else { /* MessageOptions: map_entry = 7 */
            pbtok o;
            for (pbiter io = iter(t.val, t.len); io.q < io.e && rc == MM_OK;)
                if ((rc = it_next(ps, &io, &o, ctx)) == MM_OK && o.num == 7 &&
                    o.wt == PB_VARINT)
                    ps->msgs[idx].map_entry = o.v != 0;
        }
    }
out:
    mm_free(name);
    mm_free(full);
    return rc;
}

/* One MethodDescriptorProto of service `svc` in package `pkg`. */
static mm_err parse_method(pbparse *ps, const char *pkg, const char *svc, const pbtok *mt)
{
    mm_err rc = MM_OK;
    pbtok u;
    char *mname = NULL, *in = NULL, *outt = NULL, *path = NULL;
    bool cs = false, ss = false;
    for (pbiter it = iter(mt->val, mt->len); it.q < it.e && rc == MM_OK;) {
        if ((rc = it_next(ps, &it, &u, "method")) != MM_OK)
            break;
        if (u.wt == PB_LEN && u.num >= 1 && u.num <= 3)
            rc = take_str(&u, u.num == 1 ? &mname : u.num == 2 ? &in : &outt);
        else if (u.wt == PB_VARINT && u.num == 5)
            cs = u.v != 0;
        else if (u.wt == PB_VARINT && u.num == 6)
            ss = u.v != 0;
    }
    if (rc != MM_OK)
        goto out;
    if (!mname || !in || !outt) {
        rc = bad(ps, mt->start, "method", "a method needs a name, an input and an output type");
        goto out;
    }
    size_t pl = strlen(pkg) + strlen(svc) + strlen(mname) + 4;
    if (!(path = mm_malloc(pl)) ||
        grow((void **)&ps->methods, &ps->cap_methods, ps->n_methods, sizeof(pbmethod)) != MM_OK) {
        rc = MM_ENOMEM;
        goto out;
    }
    char **v = mm_realloc(ps->mtypes, ps->cap_methods * 2 * sizeof(char *));
    if (!v) {
        rc = MM_ENOMEM;
        goto out;
    }
    ps->mtypes = v;
    snprintf(path, pl, "/%s%s%s/%s", pkg, *pkg ? "." : "", svc, mname);
    ps->methods[ps->n_methods] = (pbmethod){.path = path, .in = -1, .out = -1,
                                            .client_streaming = cs, .server_streaming = ss};
    ps->mtypes[2 * ps->n_methods] = in;
    ps->mtypes[2 * ps->n_methods + 1] = outt;
    ps->n_methods++;
    path = in = outt = NULL; /* owned by ps now */
out:
    mm_free(mname);
    mm_free(in);
    mm_free(outt);
    mm_free(path);
    return rc;
}

static mm_err parse_service(pbparse *ps, const char *pkg, const pbtok *st)
{
    mm_err rc = MM_OK;
    pbtok t;
    char *name = NULL;
    for (pbiter it = iter(st->val, st->len); it.q < it.e && rc == MM_OK;)
        if ((rc = it_next(ps, &it, &t, "service")) == MM_OK && t.num == 1 && t.wt == PB_LEN)
            rc = take_str(&t, &name);
    if (rc == MM_OK && !name)
        rc = bad(ps, st->start, "service", "a service without a name");
    for (pbiter it = iter(st->val, st->len); it.q < it.e && rc == MM_OK;) {
        if ((rc = it_next(ps, &it, &t, "service")) != MM_OK || t.num != 2)
            continue;
        if ((rc = want_len(ps, &t, "service")) == MM_OK)
            rc = parse_method(ps, pkg, name, &t);
    }
    mm_free(name);
    return rc;
}

static mm_err parse_file(pbparse *ps, const pbtok *ft)
{
    mm_err rc = MM_OK;
    pbtok t;
    char *fname = NULL, *pkg = NULL;
    const char *ctx = "file";
    for (pbiter it = iter(ft->val, ft->len); it.q < it.e && rc == MM_OK;)
        if ((rc = it_next(ps, &it, &t, ctx)) == MM_OK && t.wt == PB_LEN &&
            (t.num == 1 || t.num == 2))
            rc = take_str(&t, t.num == 1 ? &fname : &pkg);
    if (rc != MM_OK)
        goto out;
    if (fname) { /* a file seen before is read once */
        for (size_t i = 0; i < ps->n_files; i++)
            if (strcmp(ps->files[i], fname) == 0)
                goto out;
        if ((rc = grow((void **)&ps->files, &ps->cap_files, ps->n_files, sizeof(char *))) !=
            MM_OK)
            goto out;
        ps->files[ps->n_files++] = fname;
        fname = NULL;
    }
    for (pbiter it = iter(ft->val, ft->len); it.q < it.e && rc == MM_OK;) {
        if ((rc = it_next(ps, &it, &t, ctx)) != MM_OK || (t.num != 4 && t.num != 6))
            continue;
        if ((rc = want_len(ps, &t, ctx)) != MM_OK)
            break;
        if (t.num == 4)
            rc = parse_msg(ps, pkg ? pkg : "", &t, 0);
        else
            rc = parse_service(ps, pkg ? pkg : "", &t);
    }
out:
    mm_free(fname);
    mm_free(pkg);
    return rc;
}

static int by_full(const void *a, const void *b)
{
    return strcmp(((const pbmsg *)a)->full, ((const pbmsg *)b)->full);
}

static int by_number(const void *a, const void *b)
{
    uint32_t x = ((const pbfield *)a)->number, y = ((const pbfield *)b)->number;
    return x < y ? -1 : x > y;
}

int pbdesc_find_msg(const mm_pbdesc *d, const char *full, size_t len)
{
    if (len && full[0] == '.') {
        full++;
        len--;
    }
    size_t lo = 0, hi = d->n_msgs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *f = d->msgs[mid].full;
        int c = strncmp(f, full, len);
        if (c == 0 && f[len])
            c = 1;
        if (c == 0)
            return (int)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

const pbfield *pbdesc_field(const pbmsg *m, uint32_t number)
{
    size_t lo = 0, hi = m->n_fields;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->fields[mid].number == number)
            return &m->fields[mid];
        if (m->fields[mid].number < number)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const pbmethod *pbdesc_find_method(const mm_pbdesc *d, const char *path)
{
    for (size_t i = 0; i < d->n_methods; i++)
        if (strcmp(d->methods[i].path, path) == 0)
            return &d->methods[i];
    return NULL;
}

/* Sorts the tables and turns type names into indexes. */
static mm_err resolve(pbparse *ps, mm_pbdesc *d)
{
    d->msgs = ps->msgs;
    d->n_msgs = ps->n_msgs;
    ps->msgs = NULL;
    if (d->n_msgs)
        qsort(d->msgs, d->n_msgs, sizeof(*d->msgs), by_full);
    for (size_t i = 0; i + 1 < d->n_msgs; i++)
        if (strcmp(d->msgs[i].full, d->msgs[i + 1].full) == 0)
            return mm_errf(ps->eb, MM_EPARSE, "descriptor set: message %s is declared twice",
                           d->msgs[i].full);
    for (size_t i = 0; i < d->n_msgs; i++) {
        pbmsg *m = &d->msgs[i];
        if (m->n_fields) /* a message without fields has no array: qsort takes no NULL */
            qsort(m->fields, m->n_fields, sizeof(*m->fields), by_number);
        for (size_t k = 0; k < m->n_fields; k++) {
            pbfield *f = &m->fields[k];
            if (k && f->number == m->fields[k - 1].number)
                return mm_errf(ps->eb, MM_EPARSE,
                               "descriptor set: message %s: field number %u is used twice",
                               m->full, f->number);
            if (f->type != PBT_MESSAGE && f->type != PBT_GROUP)
                continue;
            if (!f->type_name || (f->msg = pbdesc_find_msg(d, f->type_name,
                                                           strlen(f->type_name))) < 0)
                return mm_errf(ps->eb, MM_EPARSE,
                               "descriptor set: message %s field %s: type %s is not in the set "
                               "(was it made with --include_imports?)",
                               m->full, f->name, f->type_name ? f->type_name : "(none)");
        }
    }
    d->methods = ps->methods;
    d->n_methods = ps->n_methods;
    ps->methods = NULL;
    for (size_t i = 0; i < d->n_methods; i++) {
        pbmethod *me = &d->methods[i];
        const char *in = ps->mtypes[2 * i], *ou = ps->mtypes[2 * i + 1];
        me->in = pbdesc_find_msg(d, in, strlen(in));
        me->out = pbdesc_find_msg(d, ou, strlen(ou));
        if (me->in < 0 || me->out < 0)
            return mm_errf(ps->eb, MM_EPARSE,
                           "descriptor set: method %s: type %s is not in the set (was it made "
                           "with --include_imports?)", me->path, me->in < 0 ? in : ou);
    }
    return MM_OK;
}

static void msgs_free(pbmsg *msgs, size_t n)
{
    for (size_t i = 0; msgs && i < n; i++) {
        for (size_t k = 0; k < msgs[i].n_fields; k++) {
            mm_free(msgs[i].fields[k].name);
            mm_free(msgs[i].fields[k].type_name);
        }
        mm_free(msgs[i].fields);
        mm_free(msgs[i].full);
    }
    mm_free(msgs);
}

static void methods_free(pbmethod *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        mm_free(v[i].path);
    mm_free(v);
}

mm_err mm_pbdesc_parse(const void *data, size_t len, mm_pbdesc **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    pbparse ps = {.base = data, .eb = eb};
    mm_pbdesc *d = NULL;
    pbtok t;

    *out = NULL;
    if (len > MM_PB_MAX_DESCRIPTORS) {
        rc = mm_errf(eb, MM_ELIMIT, "descriptor set: %zu bytes, more than the limit %u", len,
                     MM_PB_MAX_DESCRIPTORS);
        goto out;
    }
    if (!(d = mm_calloc(1, sizeof(*d)))) {
        rc = MM_ENOMEM;
        goto out;
    }
    atomic_init(&d->refs, 1);
    {
        const uint8_t *q = data, *e = q + len;
        while (q < e) {
            const char *err = pb_next(&q, e, &t);
            if (err) {
                rc = bad(&ps, t.start, "FileDescriptorSet", err);
                goto out;
            }
            if (t.num != 1)
                continue;
            if ((rc = want_len(&ps, &t, "FileDescriptorSet")) != MM_OK ||
                (rc = parse_file(&ps, &t)) != MM_OK)
                goto out;
        }
    }
    if (!ps.n_msgs) {
        rc = mm_errf(eb, MM_EPARSE, "descriptor set: no message types (is it a "
                                    "FileDescriptorSet from protoc --descriptor_set_out?)");
        goto out;
    }
    if ((rc = resolve(&ps, d)) != MM_OK)
        goto out;
    *out = d;
    d = NULL;
out:
    if (rc == MM_ENOMEM)
        mm_errf(eb, rc, "descriptor set: out of memory");
    msgs_free(ps.msgs, ps.n_msgs);
    methods_free(ps.methods, ps.n_methods);
    for (size_t i = 0; i < ps.n_methods; i++) {
        mm_free(ps.mtypes[2 * i]);
        mm_free(ps.mtypes[2 * i + 1]);
    }
    mm_free(ps.mtypes);
    for (size_t i = 0; i < ps.n_files; i++)
        mm_free(ps.files[i]);
    mm_free(ps.files);
    mm_pbdesc_free(d);
    return rc;
}

mm_err mm_pbdesc_load(const char *path, mm_pbdesc **out, mm_errbuf *eb)
{
    char *text = NULL;
    size_t len = 0;
    mm_err rc = mm_read_file(path, MM_PB_MAX_DESCRIPTORS, &text, &len, eb);
    if (rc != MM_OK)
        return rc;
    rc = mm_pbdesc_parse(text, len, out, eb);
    if (rc != MM_OK) { /* name the file */
        char msg[MM_ERRBUF_SIZE];
        if (eb) {
            snprintf(msg, sizeof(msg), "%s", eb->msg);
            mm_errf(eb, rc, "%s: %s", path, msg);
        }
    }
    mm_free(text);
    return rc;
}

mm_pbdesc *mm_pbdesc_ref(mm_pbdesc *d)
{
    if (d)
        atomic_fetch_add(&d->refs, 1);
    return d;
}

void mm_pbdesc_free(mm_pbdesc *d)
{
    if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    msgs_free(d->msgs, d->n_msgs);
    methods_free(d->methods, d->n_methods);
    mm_free(d);
}

size_t mm_pbdesc_method_count(const mm_pbdesc *d)
{
    return d->n_methods;
}

const char *mm_pbdesc_method_path(const mm_pbdesc *d, size_t i)
{
    return i < d->n_methods ? d->methods[i].path : NULL;
}

bool mm_pbdesc_has_method(const mm_pbdesc *d, const char *path)
{
    return pbdesc_find_method(d, path) != NULL;
}

bool mm_pbdesc_has_message(const mm_pbdesc *d, const char *full)
{
    return pbdesc_find_msg(d, full, strlen(full)) >= 0;
}

/* ---- policies against the set --------------------------------------------------------- */

static bool field_named(const mm_pbdesc *d, const char *name, size_t len, bool *map)
{
    bool any = false;
    *map = false;
    for (size_t i = 0; i < d->n_msgs; i++)
        for (size_t k = 0; k < d->msgs[i].n_fields; k++) {
            const pbfield *f = &d->msgs[i].fields[k];
            if (f->name_len != len || memcmp(f->name, name, len) != 0)
                continue;
            any = true;
            if (f->msg >= 0 && d->msgs[f->msg].map_entry)
                *map = true;
        }
    return any;
}

/* Every name step names a field of some message, except a step after a map field (a key). */
static mm_err check_path(const mm_pbdesc *d, const mm_path *p, const char *where,
                         mm_errbuf *eb)
{
    bool after_map = false;
    for (size_t k = 0; k < p->n_steps; k++) {
        const mm_path_step *st = &p->steps[k];
        bool map = false;
        if (st->kind != MM_STEP_NAME) {
            after_map = false;
            continue;
        }
        if (!after_map && !field_named(d, st->name, st->name_len, &map))
            return mm_errf(eb, MM_EINVAL, "%s: fields path %s: no message of the descriptor "
                                          "set has a field named \"%.100s\"",
                           where, p->text, st->name);
        after_map = map;
    }
    return MM_OK;
}

mm_err mm_pbdesc_check_policy(const mm_pbdesc *d, const mm_policy *p, mm_errbuf *eb)
{
    char where[600];
    mm_err rc;
    for (size_t r = 0; r < p->n_rules; r++) {
        snprintf(where, sizeof(where), "policy %s: spec.rules[%zu] (%s)", p->name, r,
                 p->rules[r].name);
        for (size_t f = 0; f < p->rules[r].n_fields; f++)
            if ((rc = check_path(d, &p->rules[r].fields[f], where, eb)) != MM_OK)
                return rc;
    }
    snprintf(where, sizeof(where), "policy %s: spec.defaultDeny.body", p->name);
    for (size_t f = 0; f < p->deny_body.n_fields; f++)
        if ((rc = check_path(d, &p->deny_body.fields[f], where, eb)) != MM_OK)
            return rc;
    return MM_OK;
}
