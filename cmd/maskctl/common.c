/* maskctl: what the subcommands share — loading policies and keys into a masker, reading
 * inputs in chunks through a stream, and writing their output. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maskctl.h"

#define READ_CHUNK (256u << 10)
#define MAP_WINDOW (4u << 20)

mm_err maskctl_load(const char *policy_path, const char *keys_dir, bool scan,
                    mm_policy_set **set_out, mm_masker **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_policy_set *set = NULL;
    mm_keys *keys = NULL;
    const mm_policy **list = NULL;
    size_t n = 0;
    mm_masker_opts opts = {.scan = scan};

    if (policy_path) {
        if ((rc = mm_policy_load(policy_path, &set, NULL, eb)) != MM_OK)
            goto out;
        n = mm_policy_set_count(set);
        if (!(list = mm_calloc(n ? n : 1, sizeof(*list)))) {
            rc = mm_errf(eb, MM_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            list[i] = mm_policy_set_get(set, i);
    }
    if (keys_dir && (rc = mm_keys_load_dir(keys_dir, &keys, eb)) != MM_OK)
        goto out;
    if ((rc = mm_masker_new(list, n, keys, &opts, out, eb)) != MM_OK)
        goto out;
    if (set_out) {
        *set_out = set;
        set = NULL;
    }
out:
    mm_free(list);
    mm_keys_free(keys);
    mm_policy_set_free(set);
    return rc;
}

/* The stream stages its output in 64 KB runs already: they go to fd 1 as they are, not
 * copied once more into stdio's buffer (that copy was 5% of maskctl mask's instructions
 * with path rules, callgrind). Its only caller, maskctl mask, writes nothing else to stdout,
 * so no stdio buffer has to go first. */
mm_err maskctl_stdout_write(void *ctx, const char *data, size_t len)
{
    MM_UNUSED(ctx);
    while (len) {
        ssize_t n = write(STDOUT_FILENO, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { /* a non-blocking stdout */
            struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return MM_EIO;
            continue;
        }
        if (n <= 0)
            return MM_EIO;
        data += n;
        len -= (size_t)n;
    }
    return MM_OK;
}

mm_err maskctl_discard_write(void *ctx, const char *data, size_t len)
{
    MM_UNUSED(ctx);
    MM_UNUSED(data);
    MM_UNUSED(len);
    return MM_OK;
}

/* One input's stream, made when its first bytes arrive (they choose the body kind). */
typedef struct {
    mm_masker *m;
    const char *path; /* NULL: stdin */
    const char *name;
    const char *content_type;
    mm_stream_opts opts;
    mm_write_fn write;
    void *wctx;
    mm_stream *s;
} input;

static mm_err input_feed(input *in, const char *data, size_t n, mm_errbuf *eb)
{
    mm_err rc;
    if (!in->s) {
        if (!in->opts.proto) /* protobuf bodies: the caller chose the kind */
            in->opts.kind = in->content_type ? mm_body_kind_for(in->m, in->content_type)
                                             : mm_body_kind_sniff(in->path, data, n);
        if ((rc = mm_stream_new(in->m, &in->opts, in->write, in->wctx, &in->s)) != MM_OK)
            return mm_errf(eb, rc, "%s: %s", in->name, mm_strerror(rc));
    }
    if (n && (rc = mm_stream_push(in->s, data, n, eb)) != MM_OK) {
        mm_errprefix(eb, "%s", in->name);
        return rc;
    }
    /* A filter in a log or Kafka pipeline must not sit on output until EOF: what one
     * read (or one mapped window) produced leaves now. */
    if (n && fflush(stdout) != 0)
        return mm_errf(eb, MM_EIO, "writing stdout failed");
    return MM_OK;
}

/* A mapped file that shrinks under us faults on the pages it lost: say so, by name, and
 * stop as any other bad input does (what was masked before it has been written). A fault
 * anywhere else is not ours to explain: it goes on to the default action. */
static const char *volatile mapped_name;
static const char *volatile mapped_at;
static volatile size_t mapped_len;

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    static const char pre[] = "maskctl: ", post[] = ": the file shrank while it was read\n";
    const char *name = mapped_name, *at = mapped_at, *addr = si->si_addr;
    MM_UNUSED(uctx);
    /* si_code > 0: the kernel's, for a fault; kill(2) and sigqueue(3) give 0 and less */
    if (si->si_code <= 0 || !name || !at || addr < at || addr >= at + mapped_len) {
        signal(sig, SIG_DFL); /* pending until this returns, then the default action */
        raise(sig);
        return;
    }
    if (write(STDERR_FILENO, pre, sizeof(pre) - 1) < 0 ||
        write(STDERR_FILENO, name, strlen(name)) < 0 ||
        write(STDERR_FILENO, post, sizeof(post) - 1) < 0) {
        /* nothing more can be said */
    }
    _exit(MASKCTL_EINPUT);
}

/* A regular file is read through a window of mapped pages instead of read(2), which
 * copied every byte from the page cache first (19% of maskctl mask's time with path
 * rules, perf; 0.19 -> 0.16 s on 100 MB, best of ten). The window bounds RSS whatever the
 * file's size (about 8 MB, against 4 MB with read). Up to the size fstat gave; the caller
 * reads on from *pos (what was appended since, or all of it where mmap fails). */
static mm_err input_mapped(input *in, int fd, off_t *pos, off_t size, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    const off_t page = (off_t)sysconf(_SC_PAGESIZE);
    struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO}, old;

    sigemptyset(&sa.sa_mask);
    if (page <= 0 || sigaction(SIGBUS, &sa, &old) != 0)
        return MM_OK; /* read(2) it */
    mapped_name = in->name;
    while (*pos < size) {
        off_t base = *pos - *pos % page; /* mmap's offset is a page's */
        size_t skip = (size_t)(*pos - base);
        size_t len = size - base < (off_t)MAP_WINDOW ? (size_t)(size - base) : MAP_WINDOW;
        char *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, base);
        if (map == MAP_FAILED)
            break; /* read(2) the rest */
        /* the first push is no larger than a first read: sniffing sees the same bytes */
        size_t n = !in->s && len - skip > READ_CHUNK ? READ_CHUNK : len - skip;
        mapped_len = len;
        mapped_at = map;
        rc = input_feed(in, map + skip, n, eb);
        mapped_at = NULL;
        munmap(map, len);
        if (rc != MM_OK)
            break;
        *pos += (off_t)n;
    }
    mapped_name = NULL;
    sigaction(SIGBUS, &old, NULL);
    /* where read(2) goes on, and where a shared stdin's offset is left, as read leaves it */
    if (rc == MM_OK && lseek(fd, *pos, SEEK_SET) < 0)
        rc = mm_errf(eb, MM_EIO, "%s: seek: %s", in->name, strerror(errno));
    return rc;
}

mm_err maskctl_run_input(mm_masker *m, const char *path, const char *content_type,
                         const mm_stream_opts *base, mm_write_fn write, void *wctx,
                         mm_stream_stats *stats, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    int fd = -1;
    char *buf = NULL;
    input in = {.m = m, .path = path, .name = path ? path : "-", .content_type = content_type,
                .opts = *base, .write = write, .wctx = wctx};
    struct stat st;
    off_t pos;
    ssize_t n;

    if (!path || strcmp(path, "-") == 0) {
        fd = STDIN_FILENO;
        in.path = NULL;
    } else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = mm_errf(eb, MM_EIO, "%s: %s", in.name, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (pos = lseek(fd, 0, SEEK_CUR)) >= 0 &&
        pos < st.st_size && (rc = input_mapped(&in, fd, &pos, st.st_size, eb)) != MM_OK)
        goto out;
    if (!(buf = mm_malloc(READ_CHUNK))) {
        rc = mm_errf(eb, MM_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        /* one read, even the first: a pipeline filter must not wait for more input than
         * the producer has sent (sniffing looks at whatever the first read brings) */
        n = read(fd, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = mm_errf(eb, MM_EIO, "%s: read: %s", in.name, strerror(errno));
            goto out;
        }
        if ((rc = input_feed(&in, buf, (size_t)n, eb)) != MM_OK)
            goto out;
        if (n == 0)
            break;
    }
    if ((rc = mm_stream_finish(in.s, eb)) != MM_OK) {
        mm_errprefix(eb, "%s", in.name);
        goto out;
    }
    if (stats)
        mm_stream_stats_get(in.s, stats);
out:
    mm_stream_free(in.s);
    mm_free(buf);
    if (fd > STDIN_FILENO)
        close(fd);
    return rc;
}

int maskctl_run_inputs(const char *cmd, mm_masker *m, char **inputs, int n, const char *ctype,
                       const mm_stream_opts *opts, mm_write_fn write, mm_stream_stats *total,
                       void (*before)(void *ctx, const char *name), void *ctx)
{
    mm_errbuf eb = {{0}};
    for (int i = 0; i < n || i == 0; i++) {
        const char *in = i < n ? inputs[i] : NULL;
        mm_stream_stats st = {0};
        if (before)
            before(ctx, in ? in : "-");
        if (maskctl_run_input(m, in, ctype, opts, write, NULL, &st, &eb) != MM_OK) {
            fflush(stdout);
            fprintf(stderr, "maskctl %s: %s\n", cmd, eb.msg);
            return MASKCTL_EINPUT;
        }
        if (total) {
            total->bytes_in += st.bytes_in;
            total->bytes_out += st.bytes_out;
            total->findings += st.findings;
            total->applied += st.applied;
        }
        if (i >= n)
            break;
    }
    return MASKCTL_OK;
}

void maskctl_print_detectors(FILE *f)
{
    fprintf(f, "\nbuilt-in detectors (spec.rules[].detectors; docs/detectors.md has their shapes):\n");
    for (size_t i = 0; i < mm_mask_detector_count(); i++) {
        const char *members = mm_mask_detector_members(i);
        fprintf(f, "  %-15s %s\n", mm_mask_detector_name(i), mm_mask_detector_doc(i));
        if (members[0])
            fprintf(f, "  %-15s   with useMemberNames, also whole values under: %s\n", "",
                    members);
    }
}
