/* lib/mask: the stream state shared by stream.c (the public surface and the table of body
 * formats), emit.c (output, findings, detection), json.c and jstate.c (JSON and NDJSON) and
 * text.c (text and server-sent events).
 * Not part of the public surface. */
#ifndef MM_STREAM_INT_H
#define MM_STREAM_INT_H

#include "mask/mask_int.h"
#include "mask/simd_int.h"

#define OUT_FLUSH (64u << 10) /* staged output is handed to the sink past this */

enum { RS_OFF = 0, RS_APPLY = 1, RS_SILENT = 2 }; /* per rule, for one stream */

typedef struct {
    char kind;        /* '{' or '[' */
    bool live;        /* some path state is active here: children may be selected */
    bool named;       /* an active state waits for a member name: names are looked up */
    bool by_name;     /* an object where only names lead paths on (no wildcard or
                         descendant state): jskim may skim the members others' names start;
                         or an array whose elements no path selects (elems_plain): jskim
                         may skim its scalars and open its containers */
    bool wild;        /* live, with a wildcard or descendant state: every child is live */
    signed char rest; /* wild objects: SK_OPEN + 1 once a name no state waits for was
                         judged SK_OPEN (so are the others: names_judge_any skips the step) */
    bool judged;      /* live, and an object or an array whose elements no path selects
                         (jpath.c's elems_plain): where detectors read values, jskim may
                         judge its names and read the rest (json.c's frame_judged) */
    bool hold;        /* members are held back until their value decides (remove) */
    bool emitted;     /* a member was written: the next one written keeps its comma */
    int sel;          /* the rule (applied in this stream) selecting this container */
    int asel;         /* the first audit/exempt rule selecting it, when lower than sel */
    uint64_t allow;   /* the default-deny rules whose paths allow it (bit k: first_deny + k) */
    long index;       /* arrays: index of the next element */
    size_t path_base; /* findings path length before this container's segment */
} jframe;

typedef struct {
    size_t start, end; /* in the scanned (decoded) text */
    int rule;
    const char *name;
} span;

/* SSE: a finding of a data line, held until the line parses as JSON (its strings are the
 * masker's; its path is dropped) */
typedef mm_finding held_finding;

/* jpath.c: a step to a member by name, kept for the next member of that name under the
 * same states (one word of states): the child's states and what they complete */
typedef struct {
    const uint64_t *ns; /* the name's states in the automaton; NULL: empty */
    uint64_t in;        /* the parent's states */
    uint64_t cset, callow;
    int csel, casel;
    bool clive, cnamed;
} name_memo;
#define NAME_MEMO 32

typedef struct st_format st_format; /* below */
typedef struct jtweak jtweak;       /* jtweak.c */

struct mm_stream {
    mm_masker *m;
    mm_stream_opts o;
    const st_format *fmt;
    mm_write_fn write;
    void *wctx;
    unsigned char *rs;   /* per rule: RS_* */
    const act_t **ract;  /* per rule: the action for this stream's caller (a grant's, or
                            the rule's own) */
    int *slot_rule;      /* per detector slot: the first rule applied here, RULE_NONE */
    int *slot_silent;    /* per slot: the first audit/exempt rule before it, RULE_NONE */
    const det_set *det;
    det_scratch *sc;
    size_t max_value;
    bool findings;       /* on_finding wants paths: build them */
    bool deny_on;        /* some default deny is on here: strings and numbers are read */
    bool reads;          /* det or deny_on: every string and number is read */
    uint64_t deny_apply; /* the default-deny rules applied here (bit k: first_deny + k) */
    uint64_t deny_silent; /* those that report only (audit, exempt, scan) */
    bool failed;
    mm_errbuf *eb;       /* the caller's, during a push or finish */
    mm_stream_stats st;
    mm_buf ob;     /* staged output */
    uint64_t off;  /* absolute offset of the first byte of the chunk being pushed */
    uint64_t line; /* 1-based line at the read position (JSON: where whitespace is read) */

    /* JSON: paths */
    size_t words;
    uint64_t *root;      /* the automaton's root states, for rules that are on here */
    uint64_t *rmhold;    /* states whose child a removing rule may select */
    bool det_remove;     /* a detector or pattern rule applied here removes */
    uint64_t *sets;      /* active states per open container: sets + k * words */
    size_t setcap;
    uint64_t *cset;      /* the next child's states */
    bool clive, cnamed;
    int csel, casel;
    uint64_t callow;     /* the default-deny rules whose paths allow the next child */
    bool cdefer;         /* names_judge_any left the child (clive ...) to names_rest */
    name_memo nmemo[NAME_MEMO]; /* by the name's states and the parent's (jpath.c) */

    /* JSON: the machine */
    sk_classify_fn cls;  /* the block classifier for jskim (simd_int.h); NULL: bytes only */
    sk_cache skc;        /* jskim's last block in the chunk being fed */
    mm_err skrc;         /* what writing a value jskim replaced gave */
    int js;
    bool esc;
    int uleft;
    int numst;
    const char *lit;
    size_t litpos;
    jframe *fr;
    size_t depth, frcap;
    size_t run;      /* start of the chunk's bytes not yet passed on */
    bool holding;    /* a member's prefix is held: pre + data[run..] */
    uint64_t hoff;   /* where the held prefix starts */
    size_t supp;     /* > 0: the container at this depth is removed; nothing inside is written */
    bool buf_on;     /* the current scalar is collected (data[vstart..], after val) */
    size_t vstart;
    int vkind;
    int vsel, vasel;
    int vdeny, vadeny;   /* the default deny that takes the scalar; one that only reports */
    uint64_t voff, vline;
    bool vesc;
    const char *vptr; /* the complete scalar: in the chunk, or s->val */
    size_t vlen;
    size_t vpath_base;
    bool key_on;     /* the member name being read is wanted (paths, findings, detectors) */
    bool key_det;    /* detectors take member names as evidence: s->key is kept */
    const char *member; /* st_detect: the value's member name, NULL when none */
    size_t member_len;
    bool kesc;
    size_t kstart;
    mm_buf val, key_raw, key, pre, path, dec, tmp, abuf;
    size_t *map;
    size_t mapcap;
    jtweak *tw;      /* encrypt tweaks from another member (jtweak.c); NULL when no action
                        of this stream takes one */
    /* ff1 values written in s->ob as they are and encrypted together before the bytes
     * leave (emit.c): njobs placed, then the one being staged; NULL until the first */
    struct enc_job *jobs;
    size_t njobs;
    span *sp;
    size_t nsp, spcap;
    bool sp_ready;   /* s->sp holds the scalar's raw matches already (json.c: st_scan) */

    /* text and SSE: a line at a time */
    mm_buf lbuf;
    uint64_t loff;
    mm_buf pem;       /* the lines of a PEM private key block, held until its END line */
    uint64_t pem_off;
    mm_stream *child; /* SSE: masks JSON data lines */
    mm_buf cout;
    held_finding *hf;
    size_t nhf, hfcap;
    bool hf_fail;     /* holding a finding failed for lack of memory */

    /* gRPC and protobuf (pb_int.h) */
    struct pbstate *pb;
};

/* The value of a hex digit, -1 for any other byte. */
static inline int st_hexv(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* jpath.c: the child's states, liveness and the rules and allow lists that select it
 * (s->cset, clive, cnamed, csel, casel, callow), from the parent's states `in` and the
 * member name (k, n) or the element index (k NULL); from the root's states; or none. */
void step_child(mm_stream *s, const uint64_t *in, bool named, const char *k, size_t n,
                long index);
void step_root(mm_stream *s);
/* The member name of the object at the top ends before data[q] (s->kstart, s->key_raw,
 * s->kesc tell where it started): the child's states follow from it; s->key keeps it when
 * findings or detectors need it. MM_ELIMIT: longer than max_value. */
mm_err key_step(mm_stream *s, const char *data, size_t q);
/* sk_names (simd_int.h) for the by_name or judged object at the top of the stream `ctx`
 * (json.c):
 * names_judge steps to the member as key_step would (keeping the name in s->key for the
 * findings path) and gives SK_PASS when no path can touch the value, SK_OPEN (only
 * names_judge_any, for judged objects; names_judge says SK_READ) when states go on in it
 * but select nothing yet (a container must be opened as json.c would; a scalar
 * is only the detectors'), SK_CONST where scalar_decide would only write a rule's constant
 * in place of a string, number, true or false and report it (the member's rule applied
 * here, its action the rule's own constant, no audit rule seeing the value); -1 when it
 * cannot keep the name (json.c reads it). names_replace reports that finding as
 * scalar_decide would (path, offset, the line `lines` newlines after s->line) and writes
 * the constant in place of data[start..end). */
int names_judge(void *ctx, const char *k, size_t n);
int names_judge_any(void *ctx, const char *k, size_t n); /* judged objects: SK_OPEN too */
/* The child names_judge_any left (s->cdefer) for the object at the top: its states where
 * every name leads. */
void names_rest(mm_stream *s);
/* Whether every element of an array whose states are set[] gets the same states, which
 * complete no path (jpath.c). */
bool elems_plain(const mm_stream *s, const uint64_t *set);
static inline bool any_and(const uint64_t *a, const uint64_t *b, size_t words)
{
    for (size_t w = 0; w < words; w++)
        if (a[w] & b[w])
            return true;
    return false;
}
/* A new frame's path flags (live, named, by_name, wild, judged, hold) from the child's
 * states (s->cset, clive, cnamed), which are copied to set[] when live. Inline: per
 * container. */
static inline void frame_paths(mm_stream *s, jframe *f, uint64_t *set)
{
    const mpaths *pa = &s->m->pa;
    f->live = s->clive;
    f->named = s->cnamed;
    f->hold = s->det_remove || (s->clive && any_and(s->cset, s->rmhold, s->words));
    if (!s->clive)
        return;
    memcpy(set, s->cset, s->words * sizeof(uint64_t));
    f->wild = any_and(set, pa->any, s->words) || any_and(set, pa->desc, s->words);
    /* an array whose elements are alike: jskim opens its containers and passes its
     * scalars (without findings: their paths count the elements, which jskim does not) */
    bool plain = f->kind == '[' && (s->det || !s->findings) && elems_plain(s, set);
    f->by_name = f->kind == '{' ? f->named && !f->wild : !s->findings && plain;
    f->judged = s->det && (f->kind == '{' || plain); /* judged: detectors read */
}
bool names_replace(void *ctx, const char *data, size_t start, size_t end, uint64_t lines);
/* jread.c: sk_values's value for the containers only detectors read (json.c's
 * frame_reads), the stream `ctx` at the top: it reports and writes what scalar_end would
 * for the value data[start..end) (s->skrc: what failed). */
bool jread_value(void *ctx, const char *data, size_t start, size_t end, const char *name,
                 size_t nlen, uint64_t lines);
/* inline: it runs for every value of a container no path reaches */
static inline void child_none(mm_stream *s)
{
    s->clive = s->cnamed = false;
    s->csel = s->casel = RULE_NONE;
    s->callow = 0;
}
/* The findings path (s->path): append the segment of the value starting now ($, .name,
 * ['na me'] or [N]); cut back to `base`; the path, or NULL when findings are off. */
mm_err path_push(mm_stream *s);
static inline void path_pop(mm_stream *s, size_t base) /* inline: per value, like path_str */
{
    s->path.len = base;
    if (s->path.data)
        s->path.data[base] = '\0';
}
static inline const char *path_str(mm_stream *s)
{
    return s->findings ? mm_buf_cstr(&s->path) : NULL;
}

/* jstring.c: decodes the content of a JSON string (already validated) into s->dec and,
 * when `map`, s->map[i] = the offset in `raw` of the escape or byte that gave decoded byte
 * i (s->map[dec.len] = n). Writes a JSON string literal: raw content outside the kept spans
 * (s->sp) as written, spans transformed and escaped; `dec`/`map` describe the decoded text
 * the spans refer to (map NULL: the raw text is the decoded one). */
mm_err json_decode(mm_stream *s, const char *raw, size_t n, bool map);
mm_err json_build_string(mm_stream *s, const char *raw, size_t rawlen, const char *dec,
                         const size_t *map, mm_buf *out);

/* jnum.c: the number grammar as a table: states 0 start, 1 after '-', 2 after a leading 0,
 * 3 in the integer, 4 after '.', 5 in the fraction, 6 after 'e', 7 after its sign, 8 in the
 * exponent; num_next[state][num_class[byte]] the next state, NUM_END when the number ended
 * before this byte, NUM_ERR when it is malformed (num_err[state] says how). */
enum { NC_OTHER, NC_ZERO, NC_DIGIT, NC_MINUS, NC_PLUS, NC_DOT, NC_E };
#define NUM_END 20
#define NUM_ERR 21
extern const unsigned char num_class[256];
extern const unsigned char num_next[9][7];
extern const char *const num_err[9];
static inline bool num_complete(int st)
{
    return st == 2 || st == 3 || st == 5 || st == 8;
}

/* A body format: the machine that masks one kind of body. stream.c keeps a table of them by
 * body kind and calls a stream's format through it; a format calls only emit.c (and, for its
 * child, the child's format through the same table entry), never stream.c. */
struct st_format {
    mm_err (*init)(mm_stream *s); /* once, in mm_stream_new: per-stream allocations */
    mm_err (*feed)(mm_stream *s, const char *data, size_t len, mm_errbuf *eb);
    mm_err (*end)(mm_stream *s, mm_errbuf *eb); /* end of input: fails if incomplete */
    void (*reset)(mm_stream *s);  /* ready for another body; allocations kept */
    void (*free)(mm_stream *s);   /* what init allocated */
    /* SSE: parts of the body are masked as JSON documents of their own by a child stream
     * (s->child, writing to s->cout, findings held in s->hf), opened by mm_stream_new */
    bool json_child;
};

extern const st_format st_format_json;  /* jstate.c: JSON and NDJSON (json.c's machine) */
/* json.c: the machine of st_format_json (jstate.c keeps its state) */
mm_err json_feed(mm_stream *s, const char *data, size_t len, mm_errbuf *eb);
mm_err json_end(mm_stream *s, mm_errbuf *eb);
extern const st_format st_format_text;  /* text.c */
extern const st_format st_format_sse;   /* text.c */
extern const st_format st_format_grpc;  /* grpc.c */
/* grpc.c: a GRPC stream's message type from its (new) s->o.proto and grpc_method. */
void grpc_call_set(mm_stream *s);
extern const st_format st_format_protobuf; /* grpc.c */

/* jtweak.c: encrypt's tweak: {field: NAME} in JSON (the file's top comment has the rules).
 * json.c calls: jtw_init (json_init), jtw_reset, jtw_free; jtw_member when a member name
 * is read (k NULL: not read); jtw_wants: the scalar starting now is a tweak member (it must
 * be collected); jtw_value with it (kind 0 string content, 1 number, 2 literal); jtw_takes /
 * jtw_apply in place of act_apply, which may leave `out` empty and the value waiting;
 * jtw_place where its output would go; jtw_object_end before an object's frame is popped.
 * emit.c: while jtw_holding, output goes to jtw_put and flushes stop before the first
 * waiting value (jtw_flush). All but jtw_init need s->tw. */
mm_err jtw_init(mm_stream *s);
void jtw_reset(mm_stream *s);
void jtw_free(mm_stream *s);
void jtw_member(mm_stream *s, const char *k, size_t n);
bool jtw_wants(const mm_stream *s);
mm_err jtw_value(mm_stream *s, const char *v, size_t n, int kind);
bool jtw_takes(const mm_stream *s, const act_t *a);
mm_err jtw_apply(mm_stream *s, const act_t *a, const char *in, size_t n, mm_buf *out);
void jtw_place(mm_stream *s);
mm_err jtw_object_end(mm_stream *s);
bool jtw_holding(const mm_stream *s);
mm_err jtw_put(mm_stream *s, const char *p, size_t n);
mm_err jtw_flush(mm_stream *s);

/* emit.c */
mm_err st_out_put_slow(mm_stream *s, const char *p, size_t n);
/* Stages p[0..n) for the sink. Inline: it runs once or twice per value. What fits the staged
 * output without a flush or a growth (and no encrypt tweak may hold it) is copied here;
 * anything else is st_out_put_slow's. */
static inline mm_err st_out_put(mm_stream *s, const char *p, size_t n)
{
    mm_buf *ob = &s->ob;
    if (n == 0)
        return MM_OK;
    if (!s->tw && ob->len + n <= OUT_FLUSH && ob->cap - ob->len > n) {
        memcpy(ob->data + ob->len, p, n);
        ob->len += n;
        ob->data[ob->len] = '\0';
        return MM_OK;
    }
    return st_out_put_slow(s, p, n);
}
mm_err st_out_flush(mm_stream *s);
/* act_apply of a value to be written next as a JSON string at the end of s->ob (json.c). An
 * ff1 value that can wait (enc_defer) is written as it is (*wait set); the caller then
 * calls st_job_placed with where in s->ob its output begins, and the value is encrypted
 * with others' before the bytes leave (st_out_flush) or when ST_JOBS are waiting. */
mm_err st_act_apply(mm_stream *s, const act_t *a, const char *in, size_t n, mm_buf *out,
                    bool *wait);
mm_err st_job_placed(mm_stream *s, size_t at);
void st_jobs_free(mm_stream *s);
void st_report(mm_stream *s, int rule, const char *detector, const char *path, uint64_t off,
               uint64_t line, bool applied);
mm_err st_fail(mm_stream *s, mm_errbuf *eb, mm_err e, uint64_t off, const char *what);
/* Runs the detectors over t[0..n), reports what they find (offsets: base + map[i], or
 * base + i without map) and leaves in s->sp, sorted by start, the matches to transform:
 * per overlap the lowest rule wins, then the earliest start. `attrib` names the rule a
 * path gives the value in scan mode (RULE_NONE otherwise); `fallback` the rule a scan
 * names when no rule names the detector (a default deny that would take the value).
 * *apply: some match transforms; *remove: one of them removes. */
mm_err st_detect(mm_stream *s, const char *t, size_t n, const size_t *map, uint64_t base,
                 uint64_t line, const char *path, int attrib, int fallback, bool *apply,
                 bool *remove);
/* The first half of st_detect: the raw matches of t[0..n) (of a member named member[0..mlen),
 * NULL for none) into s->sp, nothing reported; s->nsp == 0 when there are none. Otherwise
 * s->sp_ready tells the next st_detect, on the same text, to take them without scanning. */
mm_err st_scan(mm_stream *s, const char *t, size_t n, const char *member, size_t mlen);
/* t[0..n) with the matches st_detect left in s->sp transformed, appended to out. */
mm_err st_build_text(mm_stream *s, const char *t, size_t n, mm_buf *out);
/* Whether the matches st_detect left in s->sp cover all of t[0..n): explicit rules then
 * decide the whole value, and a default deny has nothing left to take. */
bool st_covered(const mm_stream *s, size_t n);
/* The default deny of a value that the rules whose bits are in `allow` allow: *deny the
 * first applied one that does not allow it, *silent the first reporting one before it
 * (RULE_NONE when none). */
void st_deny(const mm_stream *s, uint64_t allow, int *deny, int *silent);
/* The part of a reset every format shares: counters, staged output, position, failure. */
void st_clear(mm_stream *s);
/* An mm_finding_fn holding findings in the stream `ctx` (s->hf; s->hf_fail when out of
 * memory) until its caller knows what they are worth (SSE: whether a line is JSON). */
void st_hold_finding(void *ctx, const mm_finding *f);

#endif
