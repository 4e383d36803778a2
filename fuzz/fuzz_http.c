/* libFuzzer target for the proxy's HTTP/1.1 parsers (lib/proxy/http1.c): the input as a
 * request head, a response head (with their framing), a chunked body fed whole and then
 * in two pieces split where the first byte says (the decoded payload must not depend on
 * the split), and an x-forwarded-client-cert value. Errors are fine; crashes, reads past
 * the input, disagreements between splits and hangs are not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static http_req_head rq;
static http_resp_head rs;

/* Decodes in[0..len) split at `split`; the payload goes to out (at most len bytes). */
static http_chunk_res dechunk(const char *in, size_t len, size_t split, char *out, size_t *olen)
{
    http_chunked c;
    http_chunk_res r = HTTP_CHUNK_MORE;
    size_t starts[2] = {0, split}, ends[2] = {split, len};

    http_chunked_init(&c);
    *olen = 0;
    for (int k = 0; k < 2; k++) {
        const char *p = in + starts[k];
        size_t n = ends[k] - starts[k];
        while (n > 0) {
            const char *d = NULL;
            size_t dl = 0, u = 0;
            r = http_chunked_step(&c, p, n, &u, &d, &dl);
            if (u > n)
                abort();
            if (r == HTTP_CHUNK_DATA) {
                if (d < p || d + dl > p + u || *olen + dl > len)
                    abort();
                memcpy(out + *olen, d, dl);
                *olen += dl;
            }
            p += u;
            n -= u;
            if (r == HTTP_CHUNK_DONE || r == HTTP_CHUNK_ERROR)
                return r;
            if (u == 0 && r != HTTP_CHUNK_DATA)
                abort(); /* no progress: would hang */
        }
    }
    return r == HTTP_CHUNK_DATA ? HTTP_CHUNK_MORE : r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    http_framing f;
    char *a = NULL, *b = NULL, uri[256];
    size_t al = 0, bl = 0;
    int r;

    if (size > 1 << 20)
        return 0;
    r = http_parse_request(s, size, 16384, &rq);
    if (r > (int)size)
        abort();
    if (r > 0)
        http_request_framing(&rq, &f);
    r = http_parse_response(s, size, 65536, &rs);
    if (r > (int)size)
        abort();
    if (r > 0) {
        http_response_framing(&rs, false, &f);
        http_response_framing(&rs, true, &f);
    }
    http_xfcc_uri(s, size, uri, sizeof(uri));
    if (size > 0 && (a = malloc(size)) && (b = malloc(size))) {
        size_t split = size > 1 ? (size_t)data[0] % size : 0;
        http_chunk_res r1 = dechunk(s, size, size, a, &al);
        http_chunk_res r2 = dechunk(s, size, split, b, &bl);
        /* the same bytes, split differently, decode the same way */
        if (r1 != r2 || (r1 != HTTP_CHUNK_ERROR && (al != bl || memcmp(a, b, al) != 0)))
            abort();
    }
    free(a);
    free(b);
    return 0;
}
