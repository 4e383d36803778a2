/* lib/common: what every maskmesh module shares — the error type and message buffer,
 * checked allocation (with fault injection for failure-path tests), a bounded growing
 * buffer, bounded file reads, and JSON-line logging.
 * Depends on: libc only. */
#ifndef MM_COMMON_H
#define MM_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors --------------------------------------------------------------------------- */

typedef enum {
    MM_OK = 0,
    MM_ENOMEM,    /* an allocation failed */
    MM_EPARSE,    /* input is not what its format says */
    MM_EINVAL,    /* well-formed but not acceptable (validation, bad argument) */
    MM_EIO,       /* a read, write or socket call failed */
    MM_ETLS,      /* TLS setup or handshake */
    MM_EHTTP,     /* an HTTP peer answered with an error */
    MM_ETIMEOUT,  /* a deadline passed */
    MM_ECONFLICT, /* optimistic concurrency lost (HTTP 409) */
    MM_ENOTFOUND, /* no such object or file */
    MM_EGONE,     /* resource version expired (HTTP 410) */
    MM_ELIMIT,    /* a bounded buffer or count would be exceeded */
} mm_err;

const char *mm_strerror(mm_err e);

/* A human message naming the place and what was expected. Never holds a value that may be
 * sensitive: name the rule, the path and the offset, not the card number. */
#define MM_ERRBUF_SIZE 512
typedef struct {
    char msg[MM_ERRBUF_SIZE];
} mm_errbuf;

/* Formats into eb (when eb is not NULL) and returns e, so `return mm_errf(eb, MM_EPARSE, ...)`
 * reads naturally. A message already set is replaced. */
mm_err mm_errf(mm_errbuf *eb, mm_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to the message already in eb (adds context on the way up). */
void mm_errprefix(mm_errbuf *eb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- allocation ----------------------------------------------------------------------- */

/* Every module allocates through these so tests can fail the Nth allocation (curl's
 * memdebug torture idea). They behave like their libc twins otherwise. */
void *mm_malloc(size_t n);
void *mm_calloc(size_t nmemb, size_t size);
void *mm_realloc(void *p, size_t n);
char *mm_strdup(const char *s);
char *mm_strndup(const char *s, size_t n);
void *mm_memdup(const void *p, size_t n);
void mm_free(void *p);

/* Fault injection: after `n` more successful allocations, every allocation fails until reset
 * with n < 0 (the default). Returns the number of allocations made since the last call. */
long mm_alloc_fail_after(long n);

/* ---- bounded growing buffer ------------------------------------------------------------ */

typedef struct {
    char *data;   /* NUL-terminated when len > 0 or after mm_buf_cstr */
    size_t len;
    size_t cap;
    size_t limit; /* 0: unbounded (only for data the program itself makes) */
} mm_buf;

void mm_buf_init(mm_buf *b, size_t limit);
void mm_buf_free(mm_buf *b);            /* frees data; the struct may be reused after init */
void mm_buf_reset(mm_buf *b);           /* len = 0, keeps the allocation */
mm_err mm_buf_reserve(mm_buf *b, size_t extra);
mm_err mm_buf_append(mm_buf *b, const void *p, size_t n);
/* Appends src's bytes to dst and empties src (on an error src keeps them). When dst is empty
 * and both have the same limit, they swap storage instead: a staged piece handed on whole
 * costs no copy. */
mm_err mm_buf_take(mm_buf *dst, mm_buf *src);
/* v in decimal into out, without a NUL; returns its length (at most 20). For hot paths, where
 * printf costs more than the number. */
size_t mm_u64_dec(char out[20], uint64_t v);
mm_err mm_buf_putc(mm_buf *b, char c);
mm_err mm_buf_puts(mm_buf *b, const char *s);
mm_err mm_buf_printf(mm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
mm_err mm_buf_vprintf(mm_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s as a JSON string literal, quotes included, escaping as RFC 8259 requires. */
mm_err mm_buf_put_json_str(mm_buf *b, const char *s, size_t n);
/* The same escaping without the quotes (a piece of a string literal). */
mm_err mm_buf_put_json_chars(mm_buf *b, const char *s, size_t n);
/* The top bit of each byte of x (eight bytes as loaded by memcpy) that a JSON string
 * escapes: '"', '\\' or below 0x20. SWAR after Bit Twiddling Hacks' haszero and hasless:
 * exact for "some byte is", and the lowest set bit exact (a borrow only runs upward from a
 * byte that matched), so on a little-endian load it names the first such byte. */
static inline uint64_t mm_json_special8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    return (((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x)) & (ones * 0x80);
}
/* Appends code point cp (at most 0x10FFFF) encoded as UTF-8. */
mm_err mm_buf_put_utf8(mm_buf *b, unsigned long cp);
/* Returns the data as a C string (an empty buffer gives ""). Never NULL after a successful
 * append; "" when nothing was ever appended. */
const char *mm_buf_cstr(mm_buf *b);
/* Hands the data to the caller (who frees it with mm_free) and resets b. */
char *mm_buf_steal(mm_buf *b, size_t *len);

/* ---- files ---------------------------------------------------------------------------- */

/* Reads a whole file of at most `max` bytes into a NUL-terminated buffer the caller frees
 * with mm_free. A larger file is MM_ELIMIT; the message names the path. */
mm_err mm_read_file(const char *path, size_t max, char **out, size_t *len, mm_errbuf *eb);

/* A signature of how files look, to notice a change without reading them: start from
 * MM_FSIG_INIT and add files and directories. stat follows symlinks, so kubelet's swap of a
 * mounted volume's ..data gives new inodes; a missing file adds its errno. */
#define MM_FSIG_INIT 1469598103934665603ull
uint64_t mm_fsig_file(uint64_t h, const char *path);
/* the directory itself and each of its entries, by name and stat */
uint64_t mm_fsig_dir(uint64_t h, const char *dir);

/* ---- logging -------------------------------------------------------------------------- */

typedef enum { MM_LOG_DEBUG = 0, MM_LOG_INFO, MM_LOG_WARN, MM_LOG_ERROR } mm_log_level;

void mm_log_set_level(mm_log_level min);
/* Sets the level from its name (debug, info, warn, error, as --log-level takes it); false
 * and nothing changed when the name is none of them. */
bool mm_log_set_level_name(const char *name);
void mm_log_set_component(const char *name); /* borrowed; e.g. "maskmesh-proxy" */
/* One JSON object per line on stderr: {"ts":...,"level":...,"component":...,"msg":...,k:v...}.
 * The variadic part is key/value string pairs ending with NULL. Callers never pass masked
 * values or bodies. */
void mm_log(mm_log_level lvl, const char *msg, ...);

/* ---- small helpers -------------------------------------------------------------------- */

#define MM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MM_UNUSED(x) ((void)(x))

/* Parses a whole decimal string into [min, max]; false on anything else. */
bool mm_parse_long(const char *s, long min, long max, long *out);
/* Monotonic clock in nanoseconds. */
uint64_t mm_now_ns(void);

#endif
