/* mm-testapp: the app the proxy's integration tests and benchmarks put behind the sidecar.
 * libmicrohttpd, one thread per connection (slow bodies just sleep). Every endpoint makes
 * data with personal values in it (card numbers, emails, SSNs) and is shaped by its query:
 *   /json?size=N                  JSON object of about N bytes, Content-Length
 *   /chunked?size=N&chunk=K       the same JSON, chunked in K-byte pieces (splits values)
 *   /ndjson?lines=N&delay_ms=D    one JSON line per chunk, D ms apart
 *   /sse?events=N&delay_ms=D      text/event-stream, one event per chunk
 *   /gzip?size=N[&chunk=K]        gzip-encoded JSON whatever Accept-Encoding says
 *   /large?size=N&chunk=K         a JSON array generated on the fly (100 MB is fine)
 *   /text?size=N                  text/plain with the same values in sentences
 *   /malformed                    JSON that breaks off in the middle of a value
 *   /status?code=C                an empty response with that status (204, 304, ...)
 *   /hdrs                         JSON plus Authorization, Set-Cookie and X-Card headers
 *   /echo                         the request body back, with the request's Content-Type
 *   /headers                      the request headers as a JSON object
 *   /sleep?ms=D                   small JSON after D ms
 *   /reset                        closes the connection without an answer
 *   /binary                       application/octet-stream with a card number inside
 *   /peer                         {"port":N}: the caller's source port (pool reuse checks)
 * Common: ct=TYPE overrides the Content-Type, delay_ms=D sleeps between chunks.
 * Usage: mm-testapp [--listen 127.0.0.1:PORT] [--threads N]  (port 0: any; prints
 * `ready PORT`; --threads: a fixed epoll pool instead of a thread per connection). */
#include "common/common.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_BODY (256u << 20)
#define MAX_UPLOAD (64u << 20)

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0) {
    }
}

static long qnum(struct MHD_Connection *c, const char *k, long def, long max)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
    long x;
    if (!v || !mm_parse_long(v, 0, max, &x))
        return def;
    return x;
}

/* One record; i varies the values so tokens and hashes differ. */
static void record(mm_buf *b, long i)
{
    mm_buf_printf(b,
                  "{\"id\":%ld,\"name\":\"User %ld\",\"email\":\"user%ld@example.com\","
                  "\"card\":\"4111 1111 1111 1111\",\"ssn\":\"123-45-%04ld\","
                  "\"phone\":\"+1 415 555 %04ld\",\"note\":\"order shipped to the usual "
                  "address\",\"amount\":%ld.%02ld}",
                  i, i, i, 1000 + i % 9000, 1000 + i % 9000, i * 7 % 1000, i % 100);
}

static mm_err json_body(mm_buf *b, size_t size)
{
    long i = 0;
    mm_buf_puts(b, "{\"items\":[");
    while (b->len + 40 < size || i == 0) {
        if (i)
            mm_buf_putc(b, ',');
        record(b, i++);
    }
    mm_buf_printf(b, "],\"total\":%ld}", i);
    return b->data ? MM_OK : MM_ENOMEM;
}

/* Bodies are cached per size: the app should not be what a benchmark measures. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    size_t size;
    char *data;
    size_t len;
} cache[16];

/* Sizes past the cache are made per request (the caller frees *owned). */
static const char *json_for(size_t size, size_t *len, char **owned);

static const char *cached_json(size_t size, size_t *len)
{
    const char *r = NULL;
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < MM_ARRAY_LEN(cache); i++) {
        if (cache[i].data && cache[i].size == size) {
            r = cache[i].data;
            *len = cache[i].len;
            goto out;
        }
        if (!cache[i].data) {
            mm_buf b;
            mm_buf_init(&b, 0);
            if (json_body(&b, size) != MM_OK)
                goto out;
            cache[i].size = size;
            cache[i].len = b.len;
            cache[i].data = mm_buf_steal(&b, NULL);
            r = cache[i].data;
            *len = cache[i].len;
            goto out;
        }
    }
out:
    pthread_mutex_unlock(&cache_lock);
    return r;
}

static const char *json_for(size_t size, size_t *len, char **owned)
{
    const char *d = cached_json(size, len);
    mm_buf b;

    *owned = NULL;
    if (d)
        return d;
    mm_buf_init(&b, 0);
    if (json_body(&b, size) != MM_OK)
        return NULL;
    *len = b.len;
    *owned = mm_buf_steal(&b, NULL);
    return *owned;
}

/* ---- streamed bodies ------------------------------------------------------------------ */

typedef enum { ST_BYTES, ST_NDJSON, ST_SSE, ST_LARGE } st_kind;

typedef struct {
    st_kind kind;
    char *data; /* ST_BYTES: the whole body, handed out chunk by chunk */
    size_t len, off;
    size_t chunk;
    long delay_ms;
    long n, i;       /* lines/events, or records for LARGE */
    size_t total;    /* LARGE: bytes to make */
    size_t made;
    mm_buf pend;     /* generated, not yet handed out */
    int phase;       /* LARGE: 0 open, 1 records, 2 close, 3 done */
} stream_t;

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_t *s = cls;
    size_t n;
    (void)pos;

    if (s->delay_ms && s->made > 0) /* the first piece at once, then one per delay */
        sleep_ms(s->delay_ms);
    if (s->kind == ST_BYTES) {
        if (s->off >= s->len)
            return MHD_CONTENT_READER_END_OF_STREAM;
        n = s->len - s->off;
        if (n > s->chunk)
            n = s->chunk;
        if (n > max)
            n = max;
        memcpy(buf, s->data + s->off, n);
        s->off += n;
        s->made += n;
        return (ssize_t)n;
    }
    if (s->pend.len == 0) {
        if (s->kind == ST_NDJSON || s->kind == ST_SSE) {
            if (s->i >= s->n)
                return MHD_CONTENT_READER_END_OF_STREAM;
            if (s->kind == ST_SSE)
                mm_buf_printf(&s->pend, "id: %ld\nevent: update\ndata: ", s->i);
            record(&s->pend, s->i++);
            mm_buf_puts(&s->pend, s->kind == ST_SSE ? "\n\n" : "\n");
        } else {
            if (s->phase == 3)
                return MHD_CONTENT_READER_END_OF_STREAM;
            if (s->phase == 0) {
                mm_buf_puts(&s->pend, "[");
                s->phase = 1;
            }
            while (s->phase == 1 && s->pend.len < s->chunk) {
                if (s->made + s->pend.len >= s->total) {
                    s->phase = 2;
                    break;
                }
                if (s->i)
                    mm_buf_putc(&s->pend, ',');
                record(&s->pend, s->i++);
            }
            if (s->phase == 2) {
                mm_buf_puts(&s->pend, "]\n");
                s->phase = 3;
            }
        }
        s->off = 0;
        if (!s->pend.data)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    n = s->pend.len - s->off;
    if (n > max)
        n = max;
    memcpy(buf, s->pend.data + s->off, n);
    s->off += n;
    s->made += n;
    if (s->off == s->pend.len) {
        s->pend.len = 0;
        s->off = 0;
    }
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream_t *s = cls;
    mm_free(s->data);
    mm_buf_free(&s->pend);
    mm_free(s);
}

static struct MHD_Response *streamed(stream_t *s)
{
    size_t blk = s->chunk < 1024 ? 1024 : s->chunk;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, blk, stream_cb, s, stream_free);
    if (!r)
        stream_free(s);
    return r;
}

static stream_t *stream_new(st_kind k, struct MHD_Connection *c)
{
    stream_t *s = mm_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->kind = k;
    s->chunk = (size_t)qnum(c, "chunk", 4096, 1 << 20);
    if (s->chunk == 0)
        s->chunk = 1;
    s->delay_ms = qnum(c, "delay_ms", 0, 60000);
    mm_buf_init(&s->pend, 0);
    return s;
}

static char *gzip_of(const char *in, size_t len, size_t *outlen)
{
    z_stream z;
    size_t cap = deflateBound(NULL, (uLong)len) + 64;
    char *out = mm_malloc(cap);
    memset(&z, 0, sizeof(z));
    if (!out || deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        mm_free(out);
        return NULL;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        deflateEnd(&z);
        mm_free(out);
        return NULL;
    }
    *outlen = z.total_out;
    deflateEnd(&z);
    return out;
}

/* ---- requests ------------------------------------------------------------------------- */

typedef struct {
    mm_buf body;
    bool too_big;
} upload_t;

static enum MHD_Result add_header_json(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    mm_buf *b = cls;
    (void)kind;
    if (b->len > 1)
        mm_buf_putc(b, ',');
    mm_buf_put_json_str(b, key, strlen(key));
    mm_buf_putc(b, ':');
    mm_buf_put_json_str(b, value ? value : "", value ? strlen(value) : 0);
    return MHD_YES;
}

static enum MHD_Result queue(struct MHD_Connection *c, int status, struct MHD_Response *r,
                             const char *ct)
{
    enum MHD_Result ret;
    if (!r)
        return MHD_NO;
    if (ct)
        MHD_add_response_header(r, "Content-Type", ct);
    ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **con_cls)
{
    upload_t *up = *con_cls;
    const char *ct = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ct");
    long delay = qnum(c, "delay_ms", 0, 60000);
    struct MHD_Response *r = NULL;
    (void)cls;
    (void)version;

    if (!up) { /* first call: headers only */
        if (!(up = mm_calloc(1, sizeof(*up))))
            return MHD_NO;
        mm_buf_init(&up->body, MAX_UPLOAD);
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_size) {
        if (mm_buf_append(&up->body, upload_data, *upload_size) != MM_OK)
            up->too_big = true;
        *upload_size = 0;
        return MHD_YES;
    }
    (void)method;

    if (strcmp(url, "/json") == 0 || strcmp(url, "/hdrs") == 0) {
        size_t len = 0;
        char *owned = NULL;
        const char *d = json_for((size_t)qnum(c, "size", 1024, MAX_BODY), &len, &owned);
        if (!d)
            return MHD_NO;
        if (delay)
            sleep_ms(delay);
        r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)d,
                                            owned ? MHD_RESPMEM_MUST_FREE
                                                  : MHD_RESPMEM_PERSISTENT);
        if (!r)
            mm_free(owned);
        if (r && strcmp(url, "/hdrs") == 0) {
            MHD_add_response_header(r, "Authorization", "Bearer abc.def.ghi");
            MHD_add_response_header(r, "Set-Cookie", "session=s3cr3t; HttpOnly");
            MHD_add_response_header(r, "X-Card", "4111 1111 1111 1111");
            MHD_add_response_header(r, "X-Plain", "kept");
        }
        return queue(c, 200, r, ct ? ct : "application/json");
    }
    if (strcmp(url, "/chunked") == 0 || strcmp(url, "/gzip") == 0) {
        size_t len = 0;
        char *owned = NULL;
        const char *d = json_for((size_t)qnum(c, "size", 1024, MAX_BODY), &len, &owned);
        stream_t *s = d ? stream_new(ST_BYTES, c) : NULL;
        bool gz = strcmp(url, "/gzip") == 0;
        if (!s) {
            mm_free(owned);
            return MHD_NO;
        }
        s->data = gz ? gzip_of(d, len, &s->len) : mm_memdup(d, len);
        mm_free(owned);
        if (!gz)
            s->len = len;
        if (!s->data) {
            stream_free(s);
            return MHD_NO;
        }
        if (gz && !MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "chunk")) {
            r = MHD_create_response_from_buffer(s->len, s->data, MHD_RESPMEM_MUST_FREE);
            if (r)
                s->data = NULL;
            stream_free(s);
        } else {
            r = streamed(s);
        }
        if (r && gz)
            MHD_add_response_header(r, "Content-Encoding", "gzip");
        return queue(c, 200, r, ct ? ct : "application/json");
    }
    if (strcmp(url, "/ndjson") == 0 || strcmp(url, "/sse") == 0) {
        bool sse = strcmp(url, "/sse") == 0;
        stream_t *s = stream_new(sse ? ST_SSE : ST_NDJSON, c);
        if (!s)
            return MHD_NO;
        s->n = qnum(c, sse ? "events" : "lines", 10, 10000000);
        s->delay_ms = qnum(c, "delay_ms", 0, 60000);
        r = streamed(s);
        if (r && sse)
            MHD_add_response_header(r, "Cache-Control", "no-cache");
        return queue(c, 200, r, ct ? ct : sse ? "text/event-stream" : "application/x-ndjson");
    }
    if (strcmp(url, "/large") == 0) {
        stream_t *s = stream_new(ST_LARGE, c);
        if (!s)
            return MHD_NO;
        s->total = (size_t)qnum(c, "size", 1 << 20, 1L << 34);
        return queue(c, 200, streamed(s), ct ? ct : "application/json");
    }
    if (strcmp(url, "/text") == 0) {
        mm_buf b;
        mm_buf_init(&b, 0);
        long n = qnum(c, "size", 256, MAX_BODY);
        for (long i = 0; (long)b.len < n || i == 0; i++)
            mm_buf_printf(&b, "line %ld: card 4111 1111 1111 1111, mail user%ld@example.com\n",
                          i, i);
        size_t len = b.len;
        char *d = mm_buf_steal(&b, NULL);
        if (!d)
            return MHD_NO;
        r = MHD_create_response_from_buffer(len, d, MHD_RESPMEM_MUST_FREE);
        if (!r)
            mm_free(d);
        return queue(c, 200, r, ct ? ct : "text/plain; charset=utf-8");
    }
    if (strcmp(url, "/malformed") == 0) {
        static const char bad[] = "{\"card\":\"4111 1111 1111 1111\",\"email\":\"a@example.com\","
                                  "\"broken\": [1, 2, }";
        r = MHD_create_response_from_buffer(sizeof(bad) - 1, (void *)(uintptr_t)bad,
                                            MHD_RESPMEM_PERSISTENT);
        return queue(c, 200, r, ct ? ct : "application/json");
    }
    if (strcmp(url, "/status") == 0) {
        int code = (int)qnum(c, "code", 204, 599);
        r = MHD_create_response_from_buffer(0, (void *)(uintptr_t)"", MHD_RESPMEM_PERSISTENT);
        if (r)
            MHD_add_response_header(r, "ETag", "\"v1\"");
        return queue(c, code, r, NULL);
    }
    if (strcmp(url, "/echo") == 0) {
        const char *rct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        char *d;
        size_t len = up->body.len;
        if (up->too_big)
            return queue(c, 413,
                         MHD_create_response_from_buffer(0, (void *)(uintptr_t)"",
                                                         MHD_RESPMEM_PERSISTENT),
                         NULL);
        d = len ? mm_buf_steal(&up->body, NULL) : NULL;
        r = MHD_create_response_from_buffer(len, d ? d : (void *)(uintptr_t)"",
                                            d ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!r)
            mm_free(d);
        return queue(c, 200, r, ct ? ct : rct ? rct : "application/octet-stream");
    }
    if (strcmp(url, "/headers") == 0) {
        mm_buf b;
        mm_buf_init(&b, 0);
        mm_buf_putc(&b, '{');
        MHD_get_connection_values(c, MHD_HEADER_KIND, add_header_json, &b);
        mm_buf_puts(&b, "}\n");
        size_t len = b.len;
        char *d = mm_buf_steal(&b, NULL);
        if (!d)
            return MHD_NO;
        r = MHD_create_response_from_buffer(len, d, MHD_RESPMEM_MUST_FREE);
        if (!r)
            mm_free(d);
        return queue(c, 200, r, "application/json");
    }
    if (strcmp(url, "/sleep") == 0) {
        static const char ok[] = "{\"slept\":true,\"email\":\"late@example.com\"}";
        sleep_ms(qnum(c, "ms", 1000, 600000));
        r = MHD_create_response_from_buffer(sizeof(ok) - 1, (void *)(uintptr_t)ok,
                                            MHD_RESPMEM_PERSISTENT);
        return queue(c, 200, r, "application/json");
    }
    if (strcmp(url, "/reset") == 0)
        return MHD_NO;
    if (strcmp(url, "/peer") == 0) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char *d = mm_malloc(64);
        int n;
        if (!d || !ci)
            return mm_free(d), MHD_NO;
        n = snprintf(d, 64, "{\"port\":%u}\n",
                     (unsigned)ntohs(((const struct sockaddr_in *)ci->client_addr)->sin_port));
        r = MHD_create_response_from_buffer((size_t)n, d, MHD_RESPMEM_MUST_FREE);
        if (!r)
            mm_free(d);
        return queue(c, 200, r, "application/json");
    }
    if (strcmp(url, "/binary") == 0) {
        static const char bin[] = "\x01\x02" "card 4111 1111 1111 1111" "\x03";
        r = MHD_create_response_from_buffer(sizeof(bin) - 1, (void *)(uintptr_t)bin,
                                            MHD_RESPMEM_PERSISTENT);
        return queue(c, 200, r, "application/octet-stream");
    }
    r = MHD_create_response_from_buffer(22, (void *)(uintptr_t)"{\"error\":\"not found\"}\n",
                                        MHD_RESPMEM_PERSISTENT);
    return queue(c, 404, r, "application/json");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    upload_t *up = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (up) {
        mm_buf_free(&up->body);
        mm_free(up);
        *con_cls = NULL;
    }
}

static volatile sig_atomic_t stop;
static void on_sig(int s)
{
    (void)s;
    stop = 1;
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    char host[64];
    long port, threads = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc &&
                   mm_parse_long(argv[i + 1], 1, 64, &threads)) {
            i++;
        } else {
            fprintf(stderr, "usage: mm-testapp [--listen 127.0.0.1:PORT] [--threads N]\n");
            return 2;
        }
    }
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof(host) ||
        !mm_parse_long(colon + 1, 0, 65535, &port)) {
        fprintf(stderr, "mm-testapp: --listen: expected ADDR:PORT\n");
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "mm-testapp: --listen: expected an IPv4 address\n");
        return 2;
    }
    sin.sin_port = htons((uint16_t)port);
    signal(SIGPIPE, SIG_IGN);
    /* one thread per connection by default (slow bodies sleep in their thread); a fixed
     * epoll pool with --threads, so that a benchmark's app does not crowd the CPUs with
     * one runnable thread per connection (only endpoints without delays then) */
    if (threads > 0)
        d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                 MHD_USE_ERROR_LOG,
                             0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sin,
                             MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                             MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000,
                             MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    else
    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_POLL | MHD_USE_ERROR_LOG,
                         0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sin,
                         MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mm-testapp: cannot listen on %s\n", listen);
        return 1;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("ready %u\n", info ? (unsigned)info->port : 0u);
    fflush(stdout);
    signal(SIGTERM, on_sig);
    signal(SIGINT, on_sig);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    for (size_t i = 0; i < MM_ARRAY_LEN(cache); i++)
        mm_free(cache[i].data);
    return 0;
}
