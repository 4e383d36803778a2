/* lib/mask: gRPC bodies — length-prefixed messages (gRPC over HTTP/2, PROTOCOL-HTTP2.md:
 * a compressed-flag byte, a 4-byte big-endian length, the message), each masked whole by
 * proto.c as soon as its last byte arrives, so a stream of any length is held one message at
 * a time: memory is bounded by max_message (gRPC's own default, 4 MB). A compressed message
 * (flag 1) is inflated with the stream's grpc-encoding (gzip only), masked, and deflated
 * again. A message that cannot be read or masked fails the stream with nothing of it
 * written: the messages before it have gone out whole, the caller ends the call
 * (grpc-status INTERNAL).
 * Also single protobuf messages (MM_BODY_PROTOBUF, maskctl): the whole body is one message,
 * masked at its end. */
#include "mask/pb_int.h"
#include "mask/stream_int.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

static mm_err frame_fail(mm_stream *s, mm_err e, const char *what)
{
    pbstate *ps = s->pb;
    s->failed = true;
    return mm_errf(s->eb, e, "gRPC message %llu at offset %llu: %s",
                   (unsigned long long)ps->count, (unsigned long long)ps->frame_off, what);
}

/* gzip data in[0..n) inflated into out, at most `max` bytes. */
static mm_err gunzip(const uint8_t *in, size_t n, size_t max, mm_buf *out, const char **why)
{
    z_stream z;
    mm_err rc = MM_OK;
    int zr;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return MM_ENOMEM;
    mm_buf_reset(out);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    do {
        if ((rc = mm_buf_reserve(out, 64u << 10)) != MM_OK)
            break;
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = (uInt)(out->cap - out->len - 1);
        zr = inflate(&z, Z_NO_FLUSH);
        out->len = (size_t)((char *)z.next_out - out->data);
        if (out->len > max) {
            rc = MM_ELIMIT;
            *why = "inflated, the message is larger than the limit";
        } else if (zr == Z_STREAM_END) {
            if (z.avail_in) {
                rc = MM_EPARSE;
                *why = "bytes after the end of the gzip data";
            }
            break;
        } else if (zr != Z_OK) {
            rc = zr == Z_MEM_ERROR ? MM_ENOMEM : MM_EPARSE;
            *why = "the gzip data is damaged";
        } else if (!z.avail_in && z.avail_out) {
            rc = MM_EPARSE;
            *why = "the gzip data is truncated";
        }
    } while (rc == MM_OK);
    inflateEnd(&z);
    return rc;
}

/* in[0..n) gzip-compressed and appended to out. */
static mm_err gzip_append(const char *in, size_t n, mm_buf *out)
{
    z_stream z;
    mm_err rc = MM_OK;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return MM_ENOMEM;
    uLong bound = deflateBound(&z, (uLong)n);
    if ((rc = mm_buf_reserve(out, bound)) == MM_OK) {
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)n;
        z.next_out = (Bytef *)out->data + out->len;
        z.avail_out = (uInt)bound;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END)
            rc = MM_ENOMEM;
        else
            out->len += bound - z.avail_out;
    }
    deflateEnd(&z);
    return rc;
}

static bool gzip_encoding(const mm_stream *s)
{
    const char *e = s->o.grpc_encoding;
    return e && strcasecmp(e, "gzip") == 0;
}

/* pb_mask failed on message ps->count: its error gets the message's number in front. Built only here, not for every message. */
static mm_err message_fail(mm_stream *s, mm_err rc)
{
    char pre[40];
    int n;

    if (rc == MM_ENOMEM || !s->eb)
        return rc;
    n = snprintf(pre, sizeof(pre), "gRPC message %llu: ", (unsigned long long)s->pb->count);
    size_t len = strnlen(s->eb->msg, sizeof(s->eb->msg) - 1);
    if (len + (size_t)n >= sizeof(s->eb->msg)) /* the tail gives way to the prefix */
        len = sizeof(s->eb->msg) - 1 - (size_t)n;
    memmove(s->eb->msg + n, s->eb->msg, len);
    memcpy(s->eb->msg, pre, (size_t)n);
    s->eb->msg[n + len] = '\0';
    return rc;
}

/* The message of the current frame, in[0..n), is complete: mask it and write its frame. */
static mm_err frame_done(mm_stream *s, const uint8_t *in, size_t n)
{
    pbstate *ps = s->pb;
    mm_err rc;
    bool z = ps->hdr[0] == 1;
    const char *why = NULL;

    if (z) {
        if (!gzip_encoding(s))
            return frame_fail(s, MM_EPARSE, "compressed, but the call's grpc-encoding is not "
                                             "gzip (the only one supported)");
        if ((rc = gunzip(in, n, ps->max_message, &ps->z, &why)) != MM_OK)
            return rc == MM_ENOMEM ? rc : frame_fail(s, rc, why);
        in = (const uint8_t *)ps->z.data;
        n = ps->z.len;
    }
    mm_buf_reset(&ps->mout);
    /* room for the header, written once the length is known */
    if ((rc = mm_buf_append(&ps->mout, "\0\0\0\0\0", 5)) != MM_OK)
        return rc;
    if ((rc = pb_mask(s, n ? in : (const uint8_t *)"", n, ps->frame_off + 5, &ps->mout)) !=
        MM_OK)
        return message_fail(s, rc);
    const char *body = ps->mout.data + 5;
    size_t blen = ps->mout.len - 5;
    if (z) { /* compressed again, after the masked form */
        mm_buf_reset(&ps->z);
        if ((rc = mm_buf_append(&ps->z, "\0\0\0\0\0", 5)) != MM_OK ||
            (rc = gzip_append(body, blen, &ps->z)) != MM_OK)
            return rc;
        mm_buf t = ps->z; /* the frame is in z now */
        ps->z = ps->mout;
        ps->mout = t;
        blen = ps->mout.len - 5;
    }
    if (blen > UINT32_MAX)
        return frame_fail(s, MM_ELIMIT, "masked, the message is longer than a frame holds");
    uint8_t *h = (uint8_t *)ps->mout.data;
    h[0] = z;
    h[1] = (uint8_t)(blen >> 24);
    h[2] = (uint8_t)(blen >> 16);
    h[3] = (uint8_t)(blen >> 8);
    h[4] = (uint8_t)blen;
    ps->count++;
    /* out now, whole: a later message that fails does not hold it back */
    if ((rc = st_out_put(s, ps->mout.data, ps->mout.len)) != MM_OK)
        return rc;
    return st_out_flush(s);
}

static mm_err grpc_feed(mm_stream *s, const char *data, size_t len, mm_errbuf *eb)
{
    pbstate *ps = s->pb;
    mm_err rc;
    size_t i = 0;
    if (len && (rc = pb_ready(s, eb)) != MM_OK)
        return rc;
    while (i < len) {
        if (ps->hlen < 5) {
            if (!ps->hlen)
                ps->frame_off = s->off + i;
            while (ps->hlen < 5 && i < len)
                ps->hdr[ps->hlen++] = (uint8_t)data[i++];
            if (ps->hlen < 5)
                break;
            if (ps->hdr[0] > 1)
                return frame_fail(s, MM_EPARSE, "the compressed flag is neither 0 nor 1");
            ps->need = (uint32_t)ps->hdr[1] << 24 | (uint32_t)ps->hdr[2] << 16 |
                       (uint32_t)ps->hdr[3] << 8 | ps->hdr[4];
            if (ps->need > ps->max_message) {
                char what[96];
                snprintf(what, sizeof(what), "%u bytes, more than the limit %zu", ps->need,
                         ps->max_message);
                return frame_fail(s, MM_ELIMIT, what);
            }
            mm_buf_reset(&ps->msg);
        }
        size_t have = ps->msg.len, take = ps->need - have;
        if (take > len - i)
            take = len - i;
        if (!have && take == ps->need) /* whole in this chunk: masked in place */
            rc = frame_done(s, (const uint8_t *)data + i, take);
        else if ((rc = mm_buf_append(&ps->msg, data + i, take)) == MM_OK &&
                 ps->msg.len == ps->need)
            rc = frame_done(s, (const uint8_t *)ps->msg.data, ps->msg.len);
        if (rc != MM_OK)
            return rc;
        i += take;
        if (have + take == ps->need) { /* the next frame's header follows */
            ps->hlen = 0;
            mm_buf_reset(&ps->msg);
        }
    }
    return MM_OK;
}

static mm_err grpc_end(mm_stream *s, mm_errbuf *eb)
{
    pbstate *ps = s->pb;
    MM_UNUSED(eb);
    if (ps->hlen)
        return frame_fail(s, MM_EPARSE, ps->hlen < 5 ? "truncated in the 5-byte header"
                                                     : "truncated: fewer bytes than its length");
    return MM_OK;
}

static void grpc_reset(mm_stream *s)
{
    pbstate *ps = s->pb;
    ps->hlen = 0;
    ps->count = 0;
    mm_buf_reset(&ps->msg);
}

void grpc_call_set(mm_stream *s)
{
    pbstate *ps = s->pb;
    const pbmethod *me;

    ps->d = s->o.proto;
    ps->root = -1;
    if (ps->d && s->o.grpc_method && (me = pbdesc_find_method(ps->d, s->o.grpc_method)) != NULL)
        ps->root = s->o.direction == MM_DIR_REQUEST ? me->in : me->out;
}

const st_format st_format_grpc = {
    .init = pb_init,
    .feed = grpc_feed,
    .end = grpc_end,
    .reset = grpc_reset,
    .free = pb_free,
};

/* ---- one protobuf message ------------------------------------------------------------- */

static mm_err protobuf_feed(mm_stream *s, const char *data, size_t len, mm_errbuf *eb)
{
    pbstate *ps = s->pb;
    mm_err rc;
    if (len && (rc = pb_ready(s, eb)) != MM_OK)
        return rc;
    if (ps->msg.len + len > ps->max_message) {
        s->failed = true;
        return mm_errf(eb, MM_ELIMIT, "the message is longer than the limit %zu bytes",
                       ps->max_message);
    }
    return mm_buf_append(&ps->msg, data, len);
}

static mm_err protobuf_end(mm_stream *s, mm_errbuf *eb)
{
    pbstate *ps = s->pb;
    mm_err rc;
    if ((rc = pb_ready(s, eb)) != MM_OK)
        return rc;
    mm_buf_reset(&ps->mout);
    if ((rc = pb_mask(s, ps->msg.len ? (const uint8_t *)ps->msg.data : (const uint8_t *)"",
                      ps->msg.len, 0, &ps->mout)) != MM_OK)
        return rc;
    return st_out_put(s, ps->mout.data ? ps->mout.data : "", ps->mout.len);
}

const st_format st_format_protobuf = {
    .init = pb_init,
    .feed = protobuf_feed,
    .end = protobuf_end,
    .reset = grpc_reset,
    .free = pb_free,
};
