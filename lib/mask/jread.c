/* lib/mask: the values that jskim hands to the detectors (sk_values, simd_int.h) in the
 * containers that only detectors read: what json.c's scalar_end and scalar_decide do for a
 * string without escapes or a number there (no path, default deny, tweak, hold or findings
 * path; no rule removes), without its byte machine. Every finding, offset and output byte
 * is theirs. */
#include "mask/simd_int.h"
#include "mask/stream_int.h"

bool jread_value(void *ctx, const char *data, size_t start, size_t end, const char *name,
                 size_t nlen, uint64_t lines)
{
    mm_stream *s = ctx;
    bool str = data[start] == '"', apply = false, remove = false;
    const char *t = data + start + str;
    size_t n = end - start - 2 * str;
    const char *member = s->key_det ? name : NULL;

    /* scalar_end's quick path: the value passes as it came when nothing matches */
    if ((s->skrc = st_scan(s, t, n, member, member ? nlen : 0)) != MM_OK)
        return false;
    if (!s->nsp)
        return true;
    /* scalar_decide with no rule of its own: the matches st_scan kept, transformed */
    s->member = member;
    s->member_len = member ? nlen : 0;
    s->skrc = st_detect(s, t, n, NULL, s->off + start + str, s->line + lines, NULL, RULE_NONE,
                        RULE_NONE, &apply, &remove);
    s->member = NULL;
    if (s->skrc != MM_OK || !apply)
        return s->skrc == MM_OK;
    s->tmp.len = 0;
    if ((s->skrc = json_build_string(s, t, n, t, NULL, &s->tmp)) != MM_OK)
        return false;
    /* the run up to the value (json.c's flush_to), then what replaces it */
    if (start > s->run && (s->skrc = st_out_put(s, data + s->run, start - s->run)) != MM_OK)
        return false;
    s->run = end;
    s->skrc = st_out_put(s, s->tmp.data, s->tmp.len);
    return s->skrc == MM_OK;
}
