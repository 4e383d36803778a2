/* maskctl: what the subcommands share — loading policies and keys into a masker, reading
 * inputs in chunks through a stream, and writing their output. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "maskctl.h"

#define READ_CHUNK (256u << 10)

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

mm_err maskctl_run_input(mm_masker *m, const char *path, const char *content_type,
                         const mm_stream_opts *base, mm_write_fn write, void *wctx,
                         mm_stream_stats *stats, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    int fd = -1;
    char *buf = NULL;
    mm_stream *s = NULL;
    mm_stream_opts opts = *base;
    const char *name = path ? path : "-";
    ssize_t n;
    bool first = true;

    if (!path || strcmp(path, "-") == 0) {
        fd = STDIN_FILENO;
        path = NULL;
    } else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = mm_errf(eb, MM_EIO, "%s: %s", name, strerror(errno));
        goto out;
    }
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
            rc = mm_errf(eb, MM_EIO, "%s: read: %s", name, strerror(errno));
            goto out;
        }
        if (first) {
            if (!opts.proto) /* protobuf bodies: the caller chose the kind */
                opts.kind = content_type ? mm_body_kind_for(m, content_type)
                                         : mm_body_kind_sniff(path, buf, (size_t)n);
            if ((rc = mm_stream_new(m, &opts, write, wctx, &s)) != MM_OK) {
                rc = mm_errf(eb, rc, "%s: %s", name, mm_strerror(rc));
                goto out;
            }
            first = false;
        }
        if (n == 0)
            break;
        if ((rc = mm_stream_push(s, buf, (size_t)n, eb)) != MM_OK) {
            mm_errprefix(eb, "%s", name);
            goto out;
        }
        /* A filter in a log or Kafka pipeline must not sit on output until EOF: what one
         * read produced leaves now (a large file still writes in READ_CHUNK pieces). */
        if (fflush(stdout) != 0) {
            rc = mm_errf(eb, MM_EIO, "writing stdout failed");
            goto out;
        }
    }
    if ((rc = mm_stream_finish(s, eb)) != MM_OK) {
        mm_errprefix(eb, "%s", name);
        goto out;
    }
    if (stats)
        mm_stream_stats_get(s, stats);
out:
    mm_stream_free(s);
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
