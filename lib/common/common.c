/* lib/common: errors, checked allocation with fault injection, bounded buffers, file reads
 * and JSON-line logs. */
#include "common/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors --------------------------------------------------------------------------- */

const char *mm_strerror(mm_err e)
{
    switch (e) {
    case MM_OK: return "ok";
    case MM_ENOMEM: return "out of memory";
    case MM_EPARSE: return "parse error";
    case MM_EINVAL: return "invalid";
    case MM_EIO: return "I/O error";
    case MM_ETLS: return "TLS error";
    case MM_EHTTP: return "HTTP error";
    case MM_ETIMEOUT: return "timed out";
    case MM_ECONFLICT: return "conflict";
    case MM_ENOTFOUND: return "not found";
    case MM_EGONE: return "gone";
    case MM_ELIMIT: return "limit exceeded";
    }
    return "unknown error";
}

mm_err mm_errf(mm_errbuf *eb, mm_err e, const char *fmt, ...)
{
    if (eb) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
        va_end(ap);
    }
    return e;
}

void mm_errprefix(mm_errbuf *eb, const char *fmt, ...)
{
    char prefix[MM_ERRBUF_SIZE], old[MM_ERRBUF_SIZE];
    va_list ap;

    if (!eb)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, eb->msg, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    /* Truncation is fine here (the start of the message matters most), so copy by hand
     * rather than have snprintf warn about it. */
    size_t plen = strnlen(prefix, sizeof(eb->msg) - 3), olen = strlen(old);
    memcpy(eb->msg, prefix, plen);
    memcpy(eb->msg + plen, ": ", 2);
    if (olen > sizeof(eb->msg) - plen - 3)
        olen = sizeof(eb->msg) - plen - 3;
    memcpy(eb->msg + plen + 2, old, olen);
    eb->msg[plen + 2 + olen] = '\0';
}

/* ---- allocation ----------------------------------------------------------------------- */

/* -1: never fail. Otherwise the number of allocations still allowed to succeed. */
static _Atomic long alloc_budget = -1;
static _Atomic long alloc_count = 0;

static bool alloc_allowed(void)
{
    atomic_fetch_add(&alloc_count, 1);
    long b = atomic_load(&alloc_budget);
    while (b >= 0) {
        if (b == 0)
            return false;
        if (atomic_compare_exchange_weak(&alloc_budget, &b, b - 1))
            return true;
    }
    return true;
}

long mm_alloc_fail_after(long n)
{
    atomic_store(&alloc_budget, n < 0 ? -1 : n);
    return atomic_exchange(&alloc_count, 0);
}

void *mm_malloc(size_t n)
{
    if (!alloc_allowed())
        return NULL;
    return malloc(n ? n : 1);
}

void *mm_calloc(size_t nmemb, size_t size)
{
    if (!alloc_allowed())
        return NULL;
    return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *mm_realloc(void *p, size_t n)
{
    if (!alloc_allowed())
        return NULL;
    return realloc(p, n ? n : 1);
}

void *mm_memdup(const void *p, size_t n)
{
    char *d = mm_malloc(n + 1);
    if (!d)
        return NULL;
    if (n)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

char *mm_strdup(const char *s)
{
    return s ? mm_memdup(s, strlen(s)) : NULL;
}

char *mm_strndup(const char *s, size_t n)
{
    size_t len = 0;
    while (len < n && s[len])
        len++;
    return mm_memdup(s, len);
}

void mm_free(void *p)
{
    free(p);
}

/* ---- bounded growing buffer ------------------------------------------------------------ */

void mm_buf_init(mm_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->limit = limit;
}

void mm_buf_free(mm_buf *b)
{
    mm_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void mm_buf_reset(mm_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

mm_err mm_buf_reserve(mm_buf *b, size_t extra)
{
    size_t need, cap;
    char *d;

    if (extra > SIZE_MAX - b->len - 1)
        return MM_ELIMIT;
    need = b->len + extra + 1; /* room for the NUL */
    if (b->limit && need - 1 > b->limit)
        return MM_ELIMIT;
    if (need <= b->cap)
        return MM_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->limit && cap > b->limit + 1)
        cap = b->limit + 1;
    d = mm_realloc(b->data, cap);
    if (!d)
        return MM_ENOMEM;
    b->data = d;
    b->cap = cap;
    b->data[b->len] = '\0'; /* mm_buf_cstr is a C string after any successful reserve */
    return MM_OK;
}

size_t mm_u64_dec(char out[20], uint64_t v)
{
    char tmp[20];
    size_t k = sizeof(tmp);

    do {
        tmp[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, tmp + k, sizeof(tmp) - k);
    return sizeof(tmp) - k;
}

mm_err mm_buf_append(mm_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len > n) { /* fast path: it fits, NUL included */
        if (n)
            memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return MM_OK;
    }
    mm_err rc = mm_buf_reserve(b, n);
    if (rc != MM_OK)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return MM_OK;
}

mm_err mm_buf_take(mm_buf *dst, mm_buf *src)
{
    mm_err rc = MM_OK;

    if (dst->len == 0 && dst->limit == src->limit) {
        mm_buf t = *dst;
        *dst = *src;
        *src = t;
    } else if (src->len && (rc = mm_buf_append(dst, src->data, src->len)) != MM_OK) {
        return rc; /* src keeps its bytes */
    }
    mm_buf_reset(src);
    return rc;
}

mm_err mm_buf_putc(mm_buf *b, char c)
{
    if (b->len + 1 < b->cap) { /* fast path: no reserve call */
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return MM_OK;
    }
    return mm_buf_append(b, &c, 1);
}

mm_err mm_buf_puts(mm_buf *b, const char *s)
{
    return mm_buf_append(b, s, strlen(s));
}

mm_err mm_buf_vprintf(mm_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    mm_err rc;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return MM_EINVAL;
    if ((rc = mm_buf_reserve(b, (size_t)n)) != MM_OK)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return MM_OK;
}

mm_err mm_buf_printf(mm_buf *b, const char *fmt, ...)
{
    va_list ap;
    mm_err rc;
    va_start(ap, fmt);
    rc = mm_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

mm_err mm_buf_put_json_str(mm_buf *b, const char *s, size_t n)
{
    mm_err rc;
    if ((rc = mm_buf_putc(b, '"')) != MM_OK || (rc = mm_buf_put_json_chars(b, s, n)) != MM_OK)
        return rc;
    return mm_buf_putc(b, '"');
}

mm_err mm_buf_put_json_chars(mm_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t need = n, i = 0, k = 0;
    uint64_t w;
    char *o;
    mm_err rc;

    /* most values need no escape: their stretch without one, eight bytes at a time */
    for (; k + 8 <= n; k += 8) {
        memcpy(&w, s + k, 8);
        if (mm_json_special8(w))
            break;
    }
    /* the exact size first (\u00xx adds 5, the others 1), so one reservation serves and
     * each plain run is copied whole */
    for (; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c == '"' || c == '\\')
            need++;
        else if (c < 0x20)
            need += c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f' ? 1 : 5;
    }
    if (need == n)
        return mm_buf_append(b, s, n);
    if ((rc = mm_buf_reserve(b, need)) != MM_OK)
        return rc;
    o = b->data + b->len;
    while (i < n) {
        size_t run = i;
        unsigned char c;
        while (run < n && (unsigned char)s[run] >= 0x20 && s[run] != '"' && s[run] != '\\')
            run++;
        memcpy(o, s + i, run - i);
        o += run - i;
        if ((i = run) == n)
            break;
        c = (unsigned char)s[i++];
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
    }
    *o = '\0';
    b->len = (size_t)(o - b->data);
    return MM_OK;
}

mm_err mm_buf_put_utf8(mm_buf *b, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp > 0x10FFFF)
        return MM_EINVAL;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return mm_buf_append(b, u, n);
}

const char *mm_buf_cstr(mm_buf *b)
{
    return b->data ? b->data : "";
}

char *mm_buf_steal(mm_buf *b, size_t *len)
{
    char *d = b->data;
    if (len)
        *len = b->len;
    if (!d)
        d = mm_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

/* ---- files ---------------------------------------------------------------------------- */

mm_err mm_read_file(const char *path, size_t max, char **out, size_t *len, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    int fd = -1;
    mm_buf b;
    char chunk[65536];

    mm_buf_init(&b, max);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = mm_errf(eb, errno == ENOENT ? MM_ENOTFOUND : MM_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = mm_errf(eb, MM_EIO, "%s: read: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        rc = mm_buf_append(&b, chunk, (size_t)n);
        if (rc == MM_ELIMIT) {
            rc = mm_errf(eb, rc, "%s: larger than the limit of %zu bytes", path, max);
            goto out;
        }
        if (rc != MM_OK) {
            rc = mm_errf(eb, rc, "%s: %s", path, mm_strerror(rc));
            goto out;
        }
    }
    if (len)
        *len = b.len;
    *out = mm_buf_steal(&b, NULL);
    if (!*out)
        rc = mm_errf(eb, MM_ENOMEM, "%s: out of memory", path);
out:
    if (fd >= 0)
        close(fd);
    mm_buf_free(&b);
    return rc;
}

/* FNV-1a, 64-bit */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t mm_fsig_file(uint64_t h, const char *path)
{
    struct stat st;
    uint64_t v[5] = {0};

    if (path && stat(path, &st) == 0) {
        v[0] = (uint64_t)st.st_dev;
        v[1] = (uint64_t)st.st_ino;
        v[2] = (uint64_t)st.st_size;
        v[3] = (uint64_t)st.st_mtim.tv_sec;
        v[4] = (uint64_t)st.st_mtim.tv_nsec;
    } else {
        v[0] = (uint64_t)errno;
    }
    return fnv(h, v, sizeof(v));
}

uint64_t mm_fsig_dir(uint64_t h, const char *dir)
{
    DIR *d;
    struct dirent *e;
    char path[4096];

    h = mm_fsig_file(h, dir);
    if (!dir || !(d = opendir(dir)))
        return h;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            (size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path))
            continue;
        h = fnv(h, e->d_name, strlen(e->d_name));
        h = mm_fsig_file(h, path);
    }
    closedir(d);
    return h;
}

/* ---- logging -------------------------------------------------------------------------- */

static mm_log_level log_min = MM_LOG_INFO;
static const char *log_component = "maskmesh";

void mm_log_set_level(mm_log_level min)
{
    log_min = min;
}

void mm_log_set_component(const char *name)
{
    log_component = name;
}

static const char *const log_names[] = {"debug", "info", "warn", "error"};

bool mm_log_set_level_name(const char *name)
{
    for (size_t k = 0; k < MM_ARRAY_LEN(log_names); k++)
        if (strcmp(name, log_names[k]) == 0) {
            mm_log_set_level((mm_log_level)k);
            return true;
        }
    return false;
}

void mm_log(mm_log_level lvl, const char *msg, ...)
{
    char line[2048];
    mm_buf b;
    struct timespec ts;
    struct tm tm;
    char tbuf[40];
    va_list ap;
    const char *k;

    if (lvl < log_min)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);

    /* A stack buffer first: logging must work when allocation does not. */
    mm_buf_init(&b, 0);
    b.data = line;
    b.cap = sizeof(line);
    b.limit = sizeof(line) - 1;
    line[0] = '\0';
    mm_buf_printf(&b, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"component\":", tbuf,
                  ts.tv_nsec / 1000000, log_names[lvl]);
    mm_buf_put_json_str(&b, log_component, strlen(log_component));
    mm_buf_puts(&b, ",\"msg\":");
    mm_buf_put_json_str(&b, msg, strlen(msg));
    va_start(ap, msg);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        if (!v)
            v = "";
        mm_buf_putc(&b, ',');
        mm_buf_put_json_str(&b, k, strlen(k));
        mm_buf_putc(&b, ':');
        mm_buf_put_json_str(&b, v, strlen(v));
    }
    va_end(ap);
    if (b.len + 2 >= sizeof(line)) /* truncated: close the object anyway */
        b.len = sizeof(line) - 3;
    line[b.len++] = '}';
    line[b.len++] = '\n';
    fwrite(line, 1, b.len, stderr);
}

/* ---- small helpers -------------------------------------------------------------------- */

bool mm_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (!s || !*s)
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

uint64_t mm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
