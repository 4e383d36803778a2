/* lib/proxy/body.c: the body pipe (body.h). Framed bytes in; payload, decoded and masked,
 * out to the sink, staged so one feed (one socket read) gives the sink one piece. */
#include "proxy/body.h"

#include <stdio.h>
#include <string.h>

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    MM_UNUSED(opaque);
    return mm_calloc(items, size);
}

static void z_free(voidpf opaque, voidpf addr)
{
    MM_UNUSED(opaque);
    mm_free(addr);
}

void body_init(body_pipe *b, char *ztmp)
{
    memset(b, 0, sizeof(*b));
    b->ztmp = ztmp;
    b->z.zalloc = z_alloc;
    b->z.zfree = z_free;
    mm_buf_init(&b->stage, 0);
    mm_buf_init(&b->raw, 0);
}

void body_rewind(body_pipe *b)
{
    b->stage.len = b->raw.len = 0;
    b->masking = b->raw_mode = b->emitted = b->held = false;
    b->res = BODY_MORE;
    b->err = BODY_OK;
    b->why = NULL;
    b->in = b->out = 0;
}

void body_cleanup(body_pipe *b)
{
    mm_stream_free(b->ms);
    b->ms = NULL;
    if (b->z_init)
        inflateEnd(&b->z);
    b->z_init = false;
    mm_buf_free(&b->stage);
    mm_buf_free(&b->raw);
}

static body_res fail(body_pipe *b, body_err e, const char *why)
{
    b->res = BODY_FAILED;
    b->err = e;
    b->why = why;
    b->stage.len = 0;
    return BODY_FAILED;
}

static bool to_sink(body_pipe *b, const char *p, size_t n, bool last)
{
    if (n == 0 && !last)
        return true;
    b->out += n;
    b->emitted = true;
    if (!b->o.sink(b->o.ctx, p, n, last)) {
        fail(b, BODY_ESINK, "the receiver stopped");
        return false;
    }
    return true;
}

/* A stream for this body, reusing the previous one when masker, kind and caller match
 * (keep-alive requests mostly do). */
static mm_err get_stream(body_pipe *b)
{
    const char *prin = b->o.principal ? b->principal : "";
    mm_stream_opts so = {.kind = b->o.kind,
                         .direction = b->o.dir,
                         .principal = b->o.principal ? b->principal : NULL,
                         .max_value = b->o.max_value,
                         .on_finding = b->o.on_finding,
                         .finding_ctx = b->o.finding_ctx,
                         .no_finding_paths = true, /* metrics count by rule, never by path */
                         .proto = b->o.proto,
                         .grpc_method = b->o.grpc_method ? b->grpc_method : NULL,
                         .grpc_encoding = b->o.grpc_encoding ? b->grpc_encoding : NULL};

    if (b->ms && b->ms_gen == b->o.gen && b->ms_kind == (int)b->o.kind &&
        strcmp(b->ms_principal, prin) == 0) {
        if (b->o.kind != MM_BODY_GRPC) {
            mm_stream_reset(b->ms);
            return MM_OK;
        }
        /* a gRPC stream takes its call's method and descriptors */
        if (mm_stream_reset_grpc(b->ms, so.proto, so.grpc_method, so.grpc_encoding) == MM_OK)
            return MM_OK;
    }
    mm_stream_free(b->ms);
    b->ms = NULL;
    if (mm_stream_new(b->o.masker, &so, mm_stream_buf_write, &b->stage, &b->ms) != MM_OK)
        return MM_ENOMEM;
    b->ms_gen = b->o.gen;
    b->ms_kind = (int)b->o.kind;
    snprintf(b->ms_principal, sizeof(b->ms_principal), "%s", prin);
    return MM_OK;
}

mm_err body_begin(body_pipe *b, const body_opts *o)
{
    b->o = *o;
    if (o->principal)
        snprintf(b->principal, sizeof(b->principal), "%s", o->principal);
    if (o->grpc_method)
        snprintf(b->grpc_method, sizeof(b->grpc_method), "%s", o->grpc_method);
    if (o->grpc_encoding)
        snprintf(b->grpc_encoding, sizeof(b->grpc_encoding), "%s", o->grpc_encoding);
    b->remaining = o->frame == BODY_FRAME_LENGTH ? o->length : 0;
    b->total = 0;
    http_chunked_init(&b->ch);
    b->gz_end = b->gz_broken = false;
    b->stage.len = b->raw.len = 0;
    b->raw_ok = true;
    b->masking = o->masker != NULL;
    b->held = b->masking && o->every_way;
    b->raw_mode = b->emitted = false;
    b->res = BODY_MORE;
    b->err = BODY_OK;
    b->why = NULL;
    b->in = b->out = 0;
    if (o->decode) {
        if (!b->z_init) {
            if (inflateInit2(&b->z, 15 + 32) != Z_OK) /* gzip or zlib, told by the header */
                return MM_ENOMEM;
            b->z_init = true;
        } else if (inflateReset(&b->z) != Z_OK) {
            return MM_ENOMEM;
        }
    }
    if (b->masking && !b->held && get_stream(b) != MM_OK)
        return MM_ENOMEM;
    return MM_OK;
}

bool body_kind_for(const mm_masker *m, mm_direction dir, const http_framing *f,
                   mm_body_kind *kind, bool *every_way)
{
    char ct[256];
    size_t n = f->content_type_len < sizeof(ct) - 1 ? f->content_type_len : sizeof(ct) - 1;

    *kind = MM_BODY_OPAQUE;
    *every_way = false;
    if (!m)
        return true;
    if (!f->content_type || f->content_type_ambiguous) {
        *every_way = true;
        *kind = MM_BODY_JSON; /* first guess; the bytes decide */
        return true;
    }
    memcpy(ct, f->content_type, n);
    ct[n] = '\0';
    *kind = mm_body_kind_for(m, ct);
    if (*kind != MM_BODY_OPAQUE)
        return true;
    switch (mm_masker_unlisted(m, dir)) {
    case MM_UNLISTED_BLOCK:
        return false;
    case MM_UNLISTED_DETECT:
        *kind = MM_BODY_TEXT;
        return true;
    default:
        return true;
    }
}

/* The engine (or the decoder) refused the body at chunk p[0..n). With onError passthrough
 * the body goes on unmasked: what was kept when nothing was sent yet, else from this chunk
 * on. False when the pipe failed. */
static bool refused(body_pipe *b, const char *why, const char *p, size_t n)
{
    if (b->o.note)
        b->o.note(b->o.ctx, why);
    b->stage.len = 0; /* what the engine made of the failing push is dropped */
    if (b->o.on_error != MM_ONERR_PASSTHROUGH) {
        fail(b, BODY_EMASK, why);
        return false;
    }
    b->raw_mode = true;
    if (!b->emitted) {
        if (!b->raw_ok) {
            fail(b, BODY_EMASK, why);
            return false;
        }
        return to_sink(b, b->raw.data, b->raw.len, false);
    }
    return to_sink(b, p, n, false);
}

/* The first non-blank byte of s[0..n) opens a JSON text. */
static bool looks_json(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return s[i] == '{' || s[i] == '[';
    return false;
}

/* A held body outgrew the bound: stream it from here, as JSON when it opens like JSON,
 * else through the text detectors, starting with what was held. */
static bool stream_held(body_pipe *b)
{
    mm_errbuf eb = {{0}};

    b->held = false;
    b->o.kind = looks_json(b->raw.data, b->raw.len) ? MM_BODY_JSON : MM_BODY_TEXT;
    if (get_stream(b) != MM_OK) {
        fail(b, BODY_ESINK, "out of memory");
        return false;
    }
    if (mm_stream_push(b->ms, b->raw.data, b->raw.len, &eb) != MM_OK)
        return refused(b, "the masking engine refused the body", b->raw.data, b->raw.len);
    b->raw_ok = false; /* from here the body is not kept: a later refusal cannot pass it */
    return true;
}

/* A held body ended: masked whole as JSON if it is JSON, else with the text detectors. */
static bool mask_held(body_pipe *b)
{
    mm_errbuf eb = {{0}};
    mm_stream_opts so = {.kind = MM_BODY_JSON,
                         .direction = b->o.dir,
                         .principal = b->o.principal ? b->principal : NULL,
                         .max_value = b->o.max_value,
                         .on_finding = b->o.on_finding,
                         .finding_ctx = b->o.finding_ctx,
                         .no_finding_paths = true};

    b->held = false;
    b->stage.len = 0;
    if (looks_json(b->raw.data, b->raw.len) &&
        mm_mask_buffer(b->o.masker, &so, b->raw.data, b->raw.len, &b->stage, &eb) == MM_OK)
        return true;
    b->stage.len = 0;
    so.kind = MM_BODY_TEXT;
    if (mm_mask_buffer(b->o.masker, &so, b->raw.data, b->raw.len, &b->stage, &eb) == MM_OK)
        return true;
    return refused(b, "the masking engine refused the body", "", 0);
}

/* Decoded payload: masked, or passed on. */
static bool decoded(body_pipe *b, const char *p, size_t n)
{
    mm_errbuf eb = {{0}};

    if (!b->masking || b->raw_mode)
        return to_sink(b, p, n, false);
    if (b->held) {
        if (b->raw.len + n <= BODY_EVERY_WAY_MAX) {
            if (mm_buf_append(&b->raw, p, n) != MM_OK) {
                fail(b, BODY_ESINK, "out of memory");
                return false;
            }
            return true;
        }
        if (!stream_held(b))
            return false;
    }
    if (!b->emitted && b->raw_ok && b->o.on_error == MM_ONERR_PASSTHROUGH && !b->o.every_way) {
        size_t cap = 2 * (b->o.max_value ? b->o.max_value : MM_MASK_MAX_VALUE);
        if (b->raw.len + n > cap || mm_buf_append(&b->raw, p, n) != MM_OK)
            b->raw_ok = false;
    }
    if (mm_stream_push(b->ms, p, n, &eb) != MM_OK)
        return refused(b, "the masking engine refused the body", p, n);
    return true;
}

static bool payload(body_pipe *b, const char *p, size_t n)
{
    b->in += n;
    if (!b->o.decode)
        return decoded(b, p, n);
    if (b->gz_broken)
        return true; /* passthrough after a bad coding: nothing decodable follows */
    b->z.next_in = (Bytef *)(uintptr_t)p;
    b->z.avail_in = (uInt)n;
    while (!b->gz_end && b->z.avail_in > 0) {
        b->z.next_out = (Bytef *)b->ztmp;
        b->z.avail_out = BODY_ZTMP;
        int r = inflate(&b->z, Z_NO_FLUSH);
        size_t got = BODY_ZTMP - b->z.avail_out;
        if (r == Z_STREAM_END) {
            b->gz_end = true;
        } else if (r != Z_OK && !(r == Z_BUF_ERROR && got == 0)) {
            b->gz_broken = true;
            return refused(b, "the body's content coding does not decode", "", 0);
        }
        if (got && !decoded(b, b->ztmp, got))
            return false;
        if (r == Z_BUF_ERROR)
            break;
    }
    return true;
}

static body_res finish(body_pipe *b)
{
    mm_errbuf eb = {{0}};

    if (b->o.decode && !b->gz_end && !b->raw_mode &&
        !refused(b, "the body's content coding ends early", "", 0))
        return BODY_FAILED;
    if (b->held && !b->raw_mode) {
        if (!mask_held(b))
            return BODY_FAILED;
    } else if (b->masking && !b->raw_mode && mm_stream_finish(b->ms, &eb) != MM_OK &&
               !refused(b, "the masking engine refused the body", "", 0)) {
        return BODY_FAILED;
    }
    if (!to_sink(b, b->stage.data, b->stage.len, true))
        return BODY_FAILED;
    b->stage.len = 0;
    b->res = BODY_DONE;
    return BODY_DONE;
}

body_res body_feed(body_pipe *b, const char *p, size_t n, size_t *used)
{
    *used = 0;
    while (n > 0 && b->res == BODY_MORE) {
        size_t k = n;
        if (b->o.frame == BODY_FRAME_CHUNKED) {
            const char *d = NULL;
            size_t dl = 0;
            http_chunk_res r = http_chunked_step(&b->ch, p, n, &k, &d, &dl);
            p += k;
            n -= k;
            *used += k;
            if (r == HTTP_CHUNK_ERROR)
                return fail(b, BODY_EFRAMING, "malformed chunked body");
            if (r == HTTP_CHUNK_DATA) {
                b->total += dl;
                if (b->o.max && b->total > b->o.max)
                    return fail(b, BODY_ELIMIT, "body too large");
                if (!payload(b, d, dl))
                    return BODY_FAILED;
            } else if (r == HTTP_CHUNK_DONE) {
                return finish(b);
            }
            continue;
        }
        if (b->o.frame == BODY_FRAME_LENGTH && (uint64_t)k > b->remaining)
            k = (size_t)b->remaining;
        b->total += k;
        if (b->o.max && b->total > b->o.max)
            return fail(b, BODY_ELIMIT, "body too large");
        *used += k;
        if (!payload(b, p, k))
            return BODY_FAILED;
        p += k;
        n -= k;
        if (b->o.frame == BODY_FRAME_LENGTH && (b->remaining -= k) == 0)
            return finish(b);
    }
    if (b->res == BODY_MORE && b->stage.len > 0) {
        bool ok = to_sink(b, b->stage.data, b->stage.len, false);
        b->stage.len = 0;
        if (!ok)
            return BODY_FAILED;
    }
    return b->res;
}

body_res body_end(body_pipe *b)
{
    if (b->res != BODY_MORE)
        return b->res;
    if (b->o.frame != BODY_FRAME_EOF)
        return fail(b, BODY_EFRAMING, "the body ended before its end");
    return finish(b);
}
