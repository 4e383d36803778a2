/* lib/proxy/http1.h: the HTTP/1.1 codec of lib/proxy, on its own so a fuzz target or a test
 * includes it alone. Incremental, allocation-free parsers for request and response heads
 * (RFC 9112 §2-§6) and for the chunked transfer coding, each bounded by named limits; header
 * names and values point into the caller's buffer. Also what is written back in HTTP/1.1 terms
 * (status reasons, the proxy's own error answers) and the x-forwarded-client-cert reader.
 * Depends on: lib/common (mm_buf). */
#ifndef MM_PROXY_HTTP1_H
#define MM_PROXY_HTTP1_H

#include "common/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HTTP_MAX_HEADERS 100       /* header fields in one head */
#define HTTP_MAX_TARGET 8192       /* request-target */
#define HTTP_MAX_CHUNK_LINE 4096   /* chunk-size line with extensions */
#define HTTP_MAX_TRAILERS 8192     /* trailer section */

typedef struct {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing whitespace removed */
    size_t value_len;
} http_hdr;

typedef struct {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int minor; /* HTTP/1.<minor> */
    http_hdr hdrs[HTTP_MAX_HEADERS];
    size_t n_hdrs;
} http_req_head;

typedef struct {
    int minor;
    int status;
    const char *reason;
    size_t reason_len;
    http_hdr hdrs[HTTP_MAX_HEADERS];
    size_t n_hdrs;
} http_resp_head;

/* Results of the head parsers: > 0 the head's length in bytes (complete), 0 more input is
 * needed, < 0 the negated status code to answer with (400 malformed, 414 target too long,
 * 431 head too large or too many fields, 505 not HTTP/1.x). `max` bounds the head. */
int http_parse_request(const char *buf, size_t len, size_t max, http_req_head *h);
/* Same for a response head; any error is -502. */
int http_parse_response(const char *buf, size_t len, size_t max, http_resp_head *h);

/* Case-insensitive equality of a[0..alen) with the C string lit. Inline, and the length
 * compared first: with a literal the compiler knows its length, so most fields of a head
 * are told apart from a name in one comparison (it runs several times per field). */
static inline bool http_token_eq(const char *a, size_t alen, const char *lit)
{
    if (strlen(lit) != alen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)lit[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return false;
    }
    return true;
}
/* Whether the comma-separated list value contains `tok` (case-insensitive). */
bool http_list_has(const char *v, size_t len, const char *tok);
/* Whether the last transfer coding of the list is "chunked". */
bool http_list_last_is(const char *v, size_t len, const char *tok);

/* How a message body is delimited (RFC 9112 §6.3). */
typedef enum { HTTP_BODY_NONE, HTTP_BODY_LENGTH, HTTP_BODY_CHUNKED, HTTP_BODY_CLOSE } http_body;

typedef struct {
    http_body kind;
    uint64_t length;      /* HTTP_BODY_LENGTH */
    bool keep_alive;      /* the peer allows another message on the connection */
    int content_encoding; /* 0 identity, 1 gzip, 2 deflate, 3 something else */
    const char *content_type; /* the last Content-Type field; NULL when there is none */
    size_t content_type_len;
    bool content_type_ambiguous; /* repeated, listed or unparseable: read it every way */
    bool expect_continue;
    int hosts; /* Host fields (a listed or empty value counts twice) */
} http_framing;

/* Framing of a request: returns 0, or the negated status to answer with: 400 for conflicting
 * or invalid Content-Length, Content-Length with Transfer-Encoding, a coding list not ending
 * in chunked, chunked in HTTP/1.0, no Host in HTTP/1.1 or more than one Host; 501 for codings
 * besides the one final chunked (we would have to drop them). */
int http_request_framing(const http_req_head *h, http_framing *f);
/* Framing of a response to a request with method HEAD (`head`) (RFC 9112 §6.3 rules 1-7).
 * Returns 0 or -502 (conflicting lengths; a transfer coding other than exactly chunked). */
int http_response_framing(const http_resp_head *h, bool head, http_framing *f);

/* The chunked transfer coding, decoded in place. */
typedef struct {
    int state;
    uint64_t remaining; /* bytes left in the current chunk */
    size_t line;        /* bytes in the current size line or trailer section */
} http_chunked;

typedef enum {
    HTTP_CHUNK_DATA,  /* data and dlen point at payload inside the input */
    HTTP_CHUNK_MORE,  /* all input consumed, the body is not over */
    HTTP_CHUNK_DONE,  /* the last chunk and trailers were consumed */
    HTTP_CHUNK_ERROR, /* malformed or over a limit */
} http_chunk_res;

void http_chunked_init(http_chunked *c);
/* Consumes from in[0..len): sets *used to the bytes consumed. Call again with the rest
 * while it returns DATA. */
http_chunk_res http_chunked_step(http_chunked *c, const char *in, size_t len, size_t *used,
                                 const char **data, size_t *dlen);

/* Writes a chunk-size line for n bytes ("1a2\r\n") into out (at least 20 bytes);
 * returns its length. */
size_t http_chunk_header(char *out, size_t n);

/* The reason phrase we send with a status code of our own. */
const char *http_status_reason(int status);
/* Appends a complete error response of our own (a small JSON body) to out; `close` adds
 * Connection: close. */
void http_error_response(mm_buf *out, int status, const char *msg, bool close);

/* The URI SAN of the nearest element of an x-forwarded-client-cert value into out;
 * false when there is none (or it does not fit). */
bool http_xfcc_uri(const char *v, size_t len, char *out, size_t n);

#endif
