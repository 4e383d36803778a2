/* lib/mask: the JSONPath automaton — the bit masks and the name table that let the JSON
 * masker compute a child's active path states from its parent's in a few word operations
 * (see mpaths in mask_int.h). Built once per masker; read-only afterwards. */
#include "mask/mask_int.h"

#include <string.h>

void paths_clear(mpaths *pa)
{
    mm_free(pa->rule);
    mm_free(pa->index);
    mm_free(pa->names);
    mm_free(pa->table);
    mm_free(pa->pool);
    memset(pa, 0, sizeof(*pa));
}

static void set_bit(uint64_t *set, size_t st)
{
    set[st / 64] |= 1ull << (st % 64);
}

/* The name entry for (name, len), added when absent; NULL when out of room (never: the
 * table is sized for every name step). */
static mpname *name_entry(mpaths *pa, const char *name, size_t len, uint64_t *pool_next,
                          size_t *used)
{
    uint64_t h = paths_hash(name, len);
    size_t at = (size_t)h & pa->table_mask;
    while (pa->table[at]) {
        mpname *e = &pa->names[pa->table[at] - 1];
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return e;
        at = (at + 1) & pa->table_mask;
    }
    mpname *e = &pa->names[pa->n_names++];
    e->name = name;
    e->len = len;
    e->hash = h;
    e->states = pool_next + *used;
    *used += pa->words;
    pa->table[at] = (uint32_t)pa->n_names;
    return e;
}

mm_err paths_compile(mm_masker *m)
{
    mpaths *pa = &m->pa;
    size_t n_states = 0, n_name_steps = 0, cap = 8;

    for (size_t i = 0; i < m->n_paths; i++) {
        m->paths[i].first_state = n_states;
        n_states += m->paths[i].n_steps + 1;
        for (size_t k = 0; k < m->paths[i].n_steps; k++)
            n_name_steps += m->paths[i].steps[k].kind == MM_STEP_NAME;
    }
    pa->n_states = n_states;
    pa->words = (n_states + 63) / 64;
    if (!n_states)
        return MM_OK;
    while (cap < 2 * n_name_steps)
        cap *= 2;
    pa->table_mask = cap - 1;
    /* root any desc named idx final, then one set per distinct name */
    if (!(pa->pool = mm_calloc((6 + n_name_steps) * pa->words, sizeof(uint64_t))) ||
        !(pa->rule = mm_calloc(n_states, sizeof(int))) ||
        !(pa->index = mm_calloc(n_states, sizeof(long))) ||
        !(pa->table = mm_calloc(cap, sizeof(uint32_t))) ||
        (n_name_steps && !(pa->names = mm_calloc(n_name_steps, sizeof(mpname)))))
        return MM_ENOMEM;
    pa->root = pa->pool;
    pa->any = pa->pool + pa->words;
    pa->desc = pa->pool + 2 * pa->words;
    pa->named = pa->pool + 3 * pa->words;
    pa->idx = pa->pool + 4 * pa->words;
    pa->final = pa->pool + 5 * pa->words;
    uint64_t *name_sets = pa->pool + 6 * pa->words;
    size_t used = 0;

    for (size_t i = 0; i < m->n_paths; i++) {
        const mpath *p = &m->paths[i];
        size_t st = p->first_state;
        set_bit(pa->root, st);
        for (size_t k = 0; k <= p->n_steps; k++)
            pa->rule[st + k] = p->rule;
        set_bit(pa->final, st + p->n_steps);
        for (size_t k = 0; k < p->n_steps; k++) {
            const mstep *s = &p->steps[k];
            if (s->descendant)
                set_bit(pa->desc, st + k);
            switch (s->kind) {
            case MM_STEP_WILDCARD:
                set_bit(pa->any, st + k);
                break;
            case MM_STEP_INDEX:
                set_bit(pa->idx, st + k);
                pa->index[st + k] = s->index;
                break;
            case MM_STEP_NAME: {
                mpname *e = name_entry(pa, s->name, s->name_len, name_sets, &used);
                set_bit(e->states, st + k);
                set_bit(pa->named, st + k);
                pa->lens |= 1ull << (s->name_len < 63 ? s->name_len : 63);
                break;
            }
            }
        }
    }
    return MM_OK;
}
