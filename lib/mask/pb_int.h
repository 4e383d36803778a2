/* lib/mask: protobuf internals shared by pbdesc.c (the descriptor tables), proto.c (the
 * message masker) and grpc.c (the framing): the wire-format reader and the tables.
 * Not part of the public surface. */
#ifndef MM_PB_INT_H
#define MM_PB_INT_H

#include "mask/mask.h"

#include <stdatomic.h>
#include <stdint.h>

/* wire types (protobuf encoding guide) */
enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_SGROUP = 3, PB_EGROUP = 4, PB_I32 = 5 };

/* FieldDescriptorProto.Type */
enum {
    PBT_DOUBLE = 1, PBT_FLOAT, PBT_INT64, PBT_UINT64, PBT_INT32, PBT_FIXED64, PBT_FIXED32,
    PBT_BOOL, PBT_STRING, PBT_GROUP, PBT_MESSAGE, PBT_BYTES, PBT_UINT32, PBT_ENUM, PBT_SFIXED32,
    PBT_SFIXED64, PBT_SINT32, PBT_SINT64, PBT_MAX = PBT_SINT64
};

/* Reads a varint at *p (< end); false when it runs past end or past 10 bytes. */
static inline bool pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    const uint8_t *q = *p;
    for (unsigned shift = 0; shift < 70 && q < end; shift += 7) {
        uint8_t b = *q++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            *p = q;
            return true;
        }
    }
    return false;
}

/* Writes v as a varint into out (10 bytes room); returns the count. */
static inline size_t pb_put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static inline size_t pb_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

typedef struct {
    char *name;       /* the proto field name (what paths address) */
    size_t name_len;
    uint32_t number;
    uint8_t type;     /* PBT_* */
    bool repeated;
    int msg;          /* PBT_MESSAGE / PBT_GROUP: index in msgs; -1 otherwise */
    char *type_name;  /* as written (".pkg.Msg"), until resolved */
} pbfield;

typedef struct {
    char *full;       /* "pkg.Outer.Inner" */
    pbfield *fields;  /* sorted by number */
    size_t n_fields;
    bool map_entry;   /* a map<K,V> field's entry: key = 1, value = 2 */
} pbmsg;

typedef struct {
    char *path;       /* "/pkg.Service/Method", as gRPC's :path */
    int in, out;      /* message indexes */
    bool client_streaming, server_streaming;
} pbmethod;

struct mm_pbdesc {
    _Atomic long refs;
    pbmsg *msgs;      /* sorted by full name */
    size_t n_msgs;
    pbmethod *methods; /* in declaration order */
    size_t n_methods;
};

/* One field of a message as read: its number, wire type, where its tag starts, and its value
 * (varint: v; fixed: val[0..len); length-delimited: val[0..len); group: the group's
 * content, its end-group tag not included). */
typedef struct {
    uint32_t num;
    int wt;
    const uint8_t *start;
    const uint8_t *val;
    size_t len;
    uint64_t v;
} pbtok;

#define PB_MAX_DEPTH 100 /* nesting of messages and groups, as protobuf's own parsers */

/* A stream's protobuf state (mm_stream.pb): proto.c masks messages with it, grpc.c frames
 * them. */
typedef struct pbstate {
    const mm_pbdesc *d;
    int root;           /* the message type of the body; -1: none (pb_ready says why) */
    bool bytes;         /* detectors read bytes fields */
    size_t max_message;
    uint64_t *sets;     /* path states: two per depth, and the root's */
    uint64_t off0;      /* stream offset of the message being masked */
    int packed_sel;     /* packed(): the rule an element's path gives */
    mm_buf path, val, key;
    mm_buf msg;         /* the message being collected */
    mm_buf z;           /* its inflated form */
    mm_buf mout;        /* its masked form */
    /* gRPC framing */
    uint8_t hdr[5];
    size_t hlen;
    uint32_t need;
    uint64_t frame_off;
    uint64_t count;     /* messages seen */
} pbstate;

/* proto.c: per-stream state (s->pb) for the body's message type; whether the type was
 * found (else an error naming the method or type, the stream failed); one message in[0..n)
 * (at stream offset `off`) masked and appended to out, or an error naming the place (the
 * stream failed, out holds a partial message the caller drops). */
mm_err pb_init(struct mm_stream *s);
void pb_free(struct mm_stream *s);
mm_err pb_ready(struct mm_stream *s, mm_errbuf *eb);
mm_err pb_mask(struct mm_stream *s, const uint8_t *in, size_t n, uint64_t off, mm_buf *out);

/* pbdesc.c: the next field at *p (< end), *p moved past it; NULL, or what is wrong
 * (t->start then says where). pb_next_flat returns a group's start and end tags as they
 * are, without reading the group. */
const char *pb_next(const uint8_t **p, const uint8_t *end, pbtok *t);
const char *pb_next_flat(const uint8_t **p, const uint8_t *end, pbtok *t);
int pbdesc_find_msg(const mm_pbdesc *d, const char *full, size_t len);
const pbfield *pbdesc_field(const pbmsg *m, uint32_t number);
const pbmethod *pbdesc_find_method(const mm_pbdesc *d, const char *path);

#endif
