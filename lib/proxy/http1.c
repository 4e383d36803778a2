/* lib/proxy/http1.c: HTTP/1.1 message heads, framing and the chunked coding (RFC 9112).
 * Strict where leniency lets a request be read two ways (smuggling): bare CR, obs-fold,
 * whitespace before a colon, Content-Length and Transfer-Encoding together in a request. */
#include "proxy/http1.h"

#include <stdio.h>
#include <string.h>

static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* Calls back for each trimmed element of a comma-separated list. */
static bool list_find(const char *v, size_t len, const char *tok, bool last_only)
{
    size_t i = 0, s, e;
    bool hit = false;

    while (i <= len) {
        s = i;
        while (i < len && v[i] != ',')
            i++;
        e = i;
        while (s < e && (v[s] == ' ' || v[s] == '\t'))
            s++;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        /* a parameter (";q=1") does not change the token's name */
        for (size_t k = s; k < e; k++)
            if (v[k] == ';') {
                e = k;
                while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
                    e--;
                break;
            }
        if (e > s || !last_only) {
            bool eq = http_token_eq(v + s, e - s, tok);
            if (last_only)
                hit = eq;
            else if (eq)
                return true;
        }
        i++;
    }
    return hit;
}

bool http_list_has(const char *v, size_t len, const char *tok)
{
    return list_find(v, len, tok, false);
}

bool http_list_last_is(const char *v, size_t len, const char *tok)
{
    return list_find(v, len, tok, true);
}

/* Finds the end of the head: the index just past the empty line, 0 when not there yet.
 * Lines end in CRLF or LF (RFC 9112 §2.2); a CR not followed by LF is an error (-1). The
 * line ends are found with memchr (not byte by byte: this runs on every head), then the
 * CRs before the point where the scan stopped are checked, as a byte loop would have met
 * them first. */
static long head_end(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len, *nl, *cr;
    size_t stop = len; /* where a byte loop would have stopped: the LF deciding */
    long res = 0;

    while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        size_t i = (size_t)(nl - buf);
        if (i + 1 < len && buf[i + 1] == '\n') {
            stop = i;
            res = (long)(i + 2);
            break;
        }
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            stop = i;
            res = (long)(i + 3);
            break;
        }
        if (i + 1 >= len || (i + 2 >= len && buf[i + 1] == '\r')) {
            stop = i;
            break;
        }
        p = nl + 1;
    }
    for (p = buf; (cr = memchr(p, '\r', (size_t)(buf + stop - p))) != NULL; p = cr + 1) {
        size_t i = (size_t)(cr - buf);
        if (i + 1 >= len)
            return 0;
        if (buf[i + 1] != '\n')
            return -1;
    }
    return res;
}

/* The next line in [*p, end): sets ls and ll, advances *p past its terminator. */
static void next_line(const char **p, const char *end, const char **ls, size_t *ll)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *e;

    if (!nl)
        nl = end;
    e = nl;
    if (e > *p && e[-1] == '\r')
        e--;
    *ls = *p;
    *ll = (size_t)(e - *p);
    *p = nl < end ? nl + 1 : end;
}

/* Whether v[0..n) holds a control character other than HTAB, or DEL (not allowed in a
 * field value). Eight bytes at a time: the two tests below are exact for "some byte is
 * below 0x20" and "some byte is 0x7f"; a block that has either (a tab, mostly) is looked
 * at byte by byte. */
static bool has_ctl(const char *v, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    size_t k = 0;

    for (; k + 8 <= n; k += 8) {
        uint64_t x, y;
        memcpy(&x, v + k, 8);
        y = x ^ (ones * 0x7f);
        if ((((x - ones * 0x20) & ~x) | ((y - ones) & ~y)) & high)
            break;
    }
    for (; k < n; k++) {
        unsigned char ch = (unsigned char)v[k];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return true;
    }
    return false;
}

static int parse_headers(const char *p, const char *end, http_hdr *hdrs, size_t *n, int bad,
                         int toolarge)
{
    const char *ls;
    size_t ll, i, c;

    *n = 0;
    for (;;) {
        next_line(&p, end, &ls, &ll);
        if (ll == 0)
            return 0;
        if (*n >= HTTP_MAX_HEADERS)
            return toolarge;
        if (ls[0] == ' ' || ls[0] == '\t') /* obs-fold */
            return bad;
        for (c = 0; c < ll && ls[c] != ':'; c++)
            if (!tchar[(unsigned char)ls[c]])
                return bad;
        if (c == 0 || c == ll)
            return bad;
        i = c + 1;
        while (i < ll && (ls[i] == ' ' || ls[i] == '\t'))
            i++;
        size_t e = ll;
        while (e > i && (ls[e - 1] == ' ' || ls[e - 1] == '\t'))
            e--;
        if (has_ctl(ls + i, e - i))
            return bad;
        hdrs[*n].name = ls;
        hdrs[*n].name_len = c;
        hdrs[*n].value = ls + i;
        hdrs[*n].value_len = e - i;
        (*n)++;
    }
}

static int parse_version(const char *s, size_t n)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.' || s[5] < '0' || s[5] > '9' ||
        s[7] < '0' || s[7] > '9')
        return -400;
    if (s[5] != '1')
        return -505;
    return s[7] - '0';
}

int http_parse_request(const char *buf, size_t len, size_t max, http_req_head *h)
{
    long end;
    const char *p = buf, *e, *ls, *sp1, *sp2;
    size_t ll;
    int minor;

    /* RFC 9112 §2.2: ignore at least one empty line before the request-line */
    while (len > 0 && (p[0] == '\r' || p[0] == '\n') && p - buf < 4) {
        if (p[0] == '\r' && (len < 2 || p[1] != '\n'))
            break;
        size_t k = p[0] == '\r' ? 2 : 1;
        p += k;
        len -= k;
    }
    end = head_end(p, len > max ? max : len);
    if (end < 0)
        return -400;
    if (end == 0) {
        /* the request line alone already too long says 414, else the head is too big */
        const char *nl = memchr(p, '\n', len > max ? max : len);
        if (!nl && len > HTTP_MAX_TARGET + 64)
            return -414;
        return len >= max ? -431 : 0;
    }
    e = p + end;
    next_line(&p, e, &ls, &ll);
    sp1 = memchr(ls, ' ', ll);
    if (!sp1 || sp1 == ls)
        return -400;
    for (const char *q = ls; q < sp1; q++)
        if (!tchar[(unsigned char)*q])
            return -400;
    sp2 = memchr(sp1 + 1, ' ', (size_t)(ls + ll - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1)
        return -400;
    if ((size_t)(sp2 - sp1 - 1) > HTTP_MAX_TARGET)
        return -414;
    for (const char *q = sp1 + 1; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q == 0x7f)
            return -400;
    if ((minor = parse_version(sp2 + 1, (size_t)(ls + ll - sp2 - 1))) < 0)
        return minor;
    h->method = ls;
    h->method_len = (size_t)(sp1 - ls);
    h->target = sp1 + 1;
    h->target_len = (size_t)(sp2 - sp1 - 1);
    h->minor = minor;
    int rc = parse_headers(p, e, h->hdrs, &h->n_hdrs, -400, -431);
    if (rc < 0)
        return rc;
    return (int)(e - buf);
}

int http_parse_response(const char *buf, size_t len, size_t max, http_resp_head *h)
{
    long end = head_end(buf, len > max ? max : len);
    const char *p = buf, *e, *ls;
    size_t ll;
    int minor;

    if (end < 0)
        return -502;
    if (end == 0)
        return len >= max ? -502 : 0;
    e = buf + end;
    next_line(&p, e, &ls, &ll);
    if (ll < 12 || ls[8] != ' ')
        return -502;
    if ((minor = parse_version(ls, 8)) < 0)
        return -502;
    if (ls[9] < '1' || ls[9] > '5' || ls[10] < '0' || ls[10] > '9' || ls[11] < '0' ||
        ls[11] > '9' || (ll > 12 && ls[12] != ' '))
        return -502;
    h->minor = minor;
    h->status = (ls[9] - '0') * 100 + (ls[10] - '0') * 10 + (ls[11] - '0');
    h->reason = ll > 13 ? ls + 13 : ls + ll;
    h->reason_len = ll > 13 ? ll - 13 : 0;
    for (size_t k = 0; k < h->reason_len; k++) {
        unsigned char ch = (unsigned char)h->reason[k];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -502;
    }
    if (parse_headers(p, e, h->hdrs, &h->n_hdrs, -502, -502) < 0)
        return -502;
    return (int)end;
}

/* A Content-Length value: digits only, at most 18 of them. */
static bool parse_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;

    if (n == 0 || n > 18)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return true;
}

/* A Content-Type value we can read one way: one media type (type "/" subtype, both tokens)
 * with optional parameters, no second type in a list. */
static bool type_clear(const char *v, size_t n)
{
    size_t i = 0, slash = 0;
    bool q = false;

    while (i < n && tchar[(unsigned char)v[i]])
        i++;
    if (i == 0 || i >= n || v[i] != '/')
        return false;
    slash = ++i;
    while (i < n && tchar[(unsigned char)v[i]])
        i++;
    if (i == slash)
        return false;
    for (; i < n; i++) { /* parameters: a comma outside quotes starts a second type */
        if (v[i] == '\\' && q)
            i++;
        else if (v[i] == '"')
            q = !q;
        else if (v[i] == ',' && !q)
            return false;
    }
    return !q;
}

/* Transfer-Encoding over every field: how many codings, whether chunked is the last (and
 * appears only there), and whether each element is a token (parameters allowed). */
typedef struct {
    int n;
    bool chunked_last, chunked_early, bad;
} te_list;

static void te_add(te_list *te, const char *v, size_t len)
{
    size_t i = 0;

    while (i <= len) {
        size_t s = i, e, k;
        while (i < len && v[i] != ',')
            i++;
        e = i++;
        while (s < e && (v[s] == ' ' || v[s] == '\t'))
            s++;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e == s)
            continue; /* empty list elements are allowed and mean nothing (RFC 9110 §5.6.1) */
        for (k = s; k < e && tchar[(unsigned char)v[k]]; k++)
            ;
        if (k == s || (k < e && v[k] != ';' && v[k] != ' ' && v[k] != '\t'))
            te->bad = true;
        if (te->chunked_last)
            te->chunked_early = true; /* chunked twice, or chunked and then more */
        te->chunked_last = http_token_eq(v + s, k - s, "chunked");
        if (te->chunked_last && k < e)
            te->bad = true; /* chunked takes no parameters */
        te->n++;
    }
}

/* Shared by requests and responses: length, coding, connection, type. Returns 0, -1 for
 * conflicting or invalid lengths, -2 for a transfer coding list that is malformed or does
 * not end in one chunked, -3 for codings before a final chunked, 1 for both a length and
 * chunked. */
static int framing(const http_hdr *hdrs, size_t n, int minor, http_framing *f)
{
    bool have_len = false, have_te = false, close = false, ka = false;
    te_list te = {0};
    uint64_t len = 0, l;

    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        const http_hdr *h = &hdrs[i];
        if (http_token_eq(h->name, h->name_len, "content-length")) {
            /* "5, 5" repeated values are allowed when identical (RFC 9110 §8.6) */
            const char *v = h->value;
            size_t vl = h->value_len, s = 0;
            while (s <= vl) {
                size_t e = s;
                while (e < vl && v[e] != ',')
                    e++;
                size_t a = s, b = e;
                while (a < b && (v[a] == ' ' || v[a] == '\t'))
                    a++;
                while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
                    b--;
                if (!parse_length(v + a, b - a, &l) || (have_len && l != len))
                    return -1;
                len = l;
                have_len = true;
                s = e + 1;
            }
        } else if (http_token_eq(h->name, h->name_len, "transfer-encoding")) {
            have_te = true;
            te_add(&te, h->value, h->value_len);
        } else if (http_token_eq(h->name, h->name_len, "connection")) {
            if (http_list_has(h->value, h->value_len, "close"))
                close = true;
            if (http_list_has(h->value, h->value_len, "keep-alive"))
                ka = true;
        } else if (http_token_eq(h->name, h->name_len, "content-encoding")) {
            if (http_list_has(h->value, h->value_len, "gzip") ||
                http_list_has(h->value, h->value_len, "x-gzip"))
                f->content_encoding = 1;
            else if (http_list_has(h->value, h->value_len, "deflate"))
                f->content_encoding = 2;
            else if (!http_token_eq(h->value, h->value_len, "identity") && h->value_len > 0)
                f->content_encoding = 3;
            /* two codings stacked ("gzip, br") is not something we decode */
            if (memchr(h->value, ',', h->value_len))
                f->content_encoding = 3;
        } else if (http_token_eq(h->name, h->name_len, "content-type")) {
            /* a second field, or one we cannot read one way, is ambiguous: clients differ
             * in which they believe, so the body is read the most inclusive way */
            f->content_type_ambiguous = f->content_type || !type_clear(h->value, h->value_len);
            f->content_type = h->value;
            f->content_type_len = h->value_len;
        } else if (http_token_eq(h->name, h->name_len, "expect")) {
            if (http_token_eq(h->value, h->value_len, "100-continue"))
                f->expect_continue = true;
        } else if (http_token_eq(h->name, h->name_len, "host")) {
            f->hosts++;
            if (memchr(h->value, ',', h->value_len) || h->value_len == 0)
                f->hosts++; /* a list of hosts (or none) is as ambiguous as two fields */
        }
    }
    f->keep_alive = minor >= 1 ? !close : (ka && !close);
    if (have_te) {
        if (te.bad || !te.chunked_last || te.chunked_early)
            return -2;
        if (te.n != 1)
            return -3;
        f->kind = HTTP_BODY_CHUNKED;
        return have_len ? 1 : 0;
    }
    if (have_len) {
        f->kind = len ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
        f->length = len;
    }
    return 0;
}

int http_request_framing(const http_req_head *h, http_framing *f)
{
    int rc = framing(h->hdrs, h->n_hdrs, h->minor, f);

    if (rc == -3) /* a coding besides chunked: we would have to drop it, not decode it */
        return -501;
    if (rc != 0) /* bad length, chunked not last, or TE with CL: smuggling is refused */
        return -400;
    if (h->minor == 0 && f->kind == HTTP_BODY_CHUNKED)
        return -400;
    /* RFC 9112 §3.2: exactly one Host in HTTP/1.1 (at most one in 1.0) */
    if (f->hosts > 1 || (h->minor >= 1 && f->hosts == 0))
        return -400;
    return 0;
}

int http_response_framing(const http_resp_head *h, bool head, http_framing *f)
{
    int rc = framing(h->hdrs, h->n_hdrs, h->minor, f);

    if (rc == -1)
        return -502;
    if (head || (h->status >= 100 && h->status < 200) || h->status == 204 || h->status == 304) {
        f->kind = HTTP_BODY_NONE;
        f->length = 0;
        return 0;
    }
    /* a transfer coding besides chunked (RFC 9112 would read to close) leaves bytes we
     * cannot decode and must not pass as if they were the body: refused */
    if (rc == -2 || rc == -3)
        return -502;
    if (rc == 1)
        f->keep_alive = false; /* RFC 9112 §6.3: both present, close after */
    if (f->kind == HTTP_BODY_NONE && f->length == 0) {
        /* no length and no chunked: delimited by close, unless Content-Length: 0 said so */
        bool zero = false;
        for (size_t i = 0; i < h->n_hdrs; i++)
            if (http_token_eq(h->hdrs[i].name, h->hdrs[i].name_len, "content-length"))
                zero = true;
        if (!zero) {
            f->kind = HTTP_BODY_CLOSE;
            f->keep_alive = false;
        }
    }
    return 0;
}

/* ---- chunked ------------------------------------------------------------------------- */

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER_START,
       CH_TRAILER_LINE, CH_TRAILER_LF, CH_LAST_LF, CH_DONE, CH_ERROR };

void http_chunked_init(http_chunked *c)
{
    c->state = CH_SIZE;
    c->remaining = 0;
    c->line = 0;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = lower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

http_chunk_res http_chunked_step(http_chunked *c, const char *in, size_t len, size_t *used,
                                 const char **data, size_t *dlen)
{
    size_t i = 0;

    while (i < len) {
        unsigned char ch = (unsigned char)in[i];
        switch (c->state) {
        case CH_SIZE: {
            int hv = hexval(ch);
            if (hv >= 0) {
                if (c->line >= 15) /* 15 hex digits: far past any body we accept */
                    goto bad;
                c->remaining = c->remaining * 16 + (uint64_t)hv;
                c->line++;
                i++;
                break;
            }
            if (c->line == 0)
                goto bad;
            if (ch == ';' || ch == ' ' || ch == '\t')
                c->state = CH_EXT;
            else if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (ch == '\n')
                goto size_done;
            else
                goto bad;
            i++;
            break;
        }
        case CH_EXT:
            if (++c->line > HTTP_MAX_CHUNK_LINE)
                goto bad;
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (ch == '\n')
                goto size_done;
            else if (ch < 0x20 && ch != '\t')
                goto bad;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                goto bad;
        size_done:
            i++;
            c->line = 0;
            c->state = c->remaining ? CH_DATA : CH_TRAILER_START;
            break;
        case CH_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > c->remaining)
                n = (size_t)c->remaining;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            *data = in + i;
            *dlen = n;
            *used = i + n;
            return HTTP_CHUNK_DATA;
        }
        case CH_DATA_CR:
            if (ch == '\r')
                c->state = CH_DATA_LF;
            else if (ch == '\n')
                c->state = CH_SIZE;
            else
                goto bad;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                goto bad;
            c->state = CH_SIZE;
            i++;
            break;
        case CH_TRAILER_START:
            if (ch == '\r') {
                c->state = CH_LAST_LF;
            } else if (ch == '\n') {
                c->state = CH_DONE;
                *used = i + 1;
                return HTTP_CHUNK_DONE;
            } else {
                c->state = CH_TRAILER_LINE;
                continue;
            }
            i++;
            break;
        case CH_TRAILER_LINE:
            if (++c->line > HTTP_MAX_TRAILERS)
                goto bad;
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (ch == '\n')
                c->state = CH_TRAILER_START;
            i++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                goto bad;
            c->state = CH_TRAILER_START;
            i++;
            break;
        case CH_LAST_LF:
            if (ch != '\n')
                goto bad;
            c->state = CH_DONE;
            *used = i + 1;
            return HTTP_CHUNK_DONE;
        case CH_DONE:
            *used = i;
            return HTTP_CHUNK_DONE;
        default:
            goto bad;
        }
    }
    *used = i;
    return c->state == CH_DONE ? HTTP_CHUNK_DONE : HTTP_CHUNK_MORE;
bad:
    c->state = CH_ERROR;
    *used = i;
    return HTTP_CHUNK_ERROR;
}

size_t http_chunk_header(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[20];
    size_t k = 0, o = 0;

    do {
        tmp[k++] = hex[n & 15];
        n >>= 4;
    } while (n);
    while (k)
        out[o++] = tmp[--k];
    out[o++] = '\r';
    out[o++] = '\n';
    return o;
}

/* ---- what we write ---------------------------------------------------------------- */

const char *http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "Error";
}

void http_error_response(mm_buf *out, int status, const char *msg, bool close)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%d}\n", msg, status);

    if (n < 0 || (size_t)n >= sizeof(body))
        n = snprintf(body, sizeof(body), "{\"status\":%d}\n", status);
    /* a failed append leaves a short response; the connection closes on error anyway */
    (void)mm_buf_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\nCache-Control: no-store\r\n%s\r\n%s",
                        status, http_status_reason(status), n, close ? "Connection: close\r\n" : "",
                        body);
}

/* x-forwarded-client-cert: elements separated by ',' (the last one added by the nearest
 * proxy), each `Key=Value` pairs separated by ';', values optionally double-quoted with
 * backslash escapes. We want URI of the last element. */
bool http_xfcc_uri(const char *v, size_t len, char *out, size_t n)
{
    size_t start = 0, i;
    bool q = false;

    for (i = 0; i < len; i++) { /* the last element starts after the last unquoted comma */
        if (v[i] == '\\' && q) {
            i++;
            continue;
        }
        if (v[i] == '"')
            q = !q;
        else if (v[i] == ',' && !q)
            start = i + 1;
    }
    i = start;
    while (i < len) {
        size_t ks, ke;
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ';'))
            i++;
        ks = i;
        while (i < len && v[i] != '=' && v[i] != ';')
            i++;
        ke = i;
        if (i >= len || v[i] != '=')
            continue;
        i++;
        size_t o = 0;
        bool want = http_token_eq(v + ks, ke - ks, "uri");
        bool fits = true;
        if (i < len && v[i] == '"') {
            for (i++; i < len && v[i] != '"'; i++) {
                if (v[i] == '\\' && i + 1 < len)
                    i++;
                if (want && o + 1 < n)
                    out[o++] = v[i];
                else if (want)
                    fits = false;
            }
            i++;
        } else {
            for (; i < len && v[i] != ';'; i++) {
                if (want && o + 1 < n)
                    out[o++] = v[i];
                else if (want)
                    fits = false;
            }
        }
        if (want) {
            out[o] = '\0';
            return fits && o > 0;
        }
    }
    return false;
}
