/* lib/mask: a JSON stream's own state around the machine of json.c: what it allocates once
 * per stream (the root states of the rules on here, which states a removing rule holds
 * members for, the SIMD classifier), how it is reset between bodies and freed, and the
 * body format that stream.c calls. */
#include "mask/simd_int.h"
#include "mask/stream_int.h"

static void json_reset(mm_stream *s)
{
    s->js = J_VALUE;
    s->esc = false;
    s->uleft = 0;
    s->depth = 0;
    s->run = 0;
    s->holding = false;
    s->supp = 0;
    s->buf_on = s->key_on = false;
    s->val.len = s->key_raw.len = s->key.len = s->pre.len = 0;
    mm_buf_reset(&s->path);
    jtw_reset(s);
}

/* Per stream: the root states of the rules on here, and the states whose children a
 * removing rule selects (members in containers with such states are held back). */
static mm_err json_init(mm_stream *s)
{
    const mpaths *pa = &s->m->pa;
    mm_err rc = jtw_init(s);
    if (rc != MM_OK)
        return rc;
    s->cls = simd_classifier(simd_chosen());
    s->words = pa->words;
    if (!s->words)
        return MM_OK;
    if (!(s->root = mm_calloc(s->words, sizeof(uint64_t))) ||
        !(s->rmhold = mm_calloc(s->words, sizeof(uint64_t))) ||
        !(s->cset = mm_calloc(s->words, sizeof(uint64_t))))
        return MM_ENOMEM;
    for (size_t i = 0; i < s->m->n_paths; i++) {
        const mpath *p = &s->m->paths[i];
        size_t st = p->first_state;
        if (s->rs[p->rule] == RS_OFF)
            continue;
        s->root[st / 64] |= 1ull << (st % 64);
        if (s->rs[p->rule] == RS_APPLY && s->ract[p->rule]->type == MM_ACTION_REMOVE) {
            /* the state before the last step: its child completes the path ("$" itself is
             * the root, removed by writing null; no member to hold) */
            if (p->n_steps) {
                size_t k = st + p->n_steps - 1;
                s->rmhold[k / 64] |= 1ull << (k % 64);
            }
        }
    }
    return MM_OK;
}

static void json_free(mm_stream *s)
{
    mm_free(s->root);
    mm_free(s->rmhold);
    mm_free(s->cset);
    mm_free(s->fr);
    mm_free(s->sets);
    mm_free(s->map);
    mm_buf_free(&s->val);
    mm_buf_free(&s->key_raw);
    mm_buf_free(&s->key);
    mm_buf_free(&s->pre);
    mm_buf_free(&s->path);
    mm_buf_free(&s->dec);
    mm_buf_free(&s->abuf);
    jtw_free(s);
}

const st_format st_format_json = {
    .init = json_init,
    .feed = json_feed,
    .end = json_end,
    .reset = json_reset,
    .free = json_free,
};
