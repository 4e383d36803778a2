/* lib/mask: named keys for keyed hashes and tokens, loaded from a directory laid out like a
 * mounted Secret. Kubelet writes a Secret volume as
 *     ..2026_11_24_10_00_00.123/<name>   the data, in a timestamped directory
 *     ..data -> ..2026_11_24_10_00_00.123 swapped atomically on update
 *     <name> -> ..data/<name>              what readers open
 * so names starting with '.' are skipped and symlinks are followed to regular files. A key
 * is its file's bytes exactly (a trailing newline is part of the key: HMAC keys are bytes,
 * and a tool computing the same tokens elsewhere reads the same bytes). Key bytes are never
 * logged or put in a message, and are wiped before their memory is freed. */
#include "mask/mask_int.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/stat.h>

#define KEYS_MAX 256        /* keys in one directory (a Secret holds at most 1 MiB anyway) */
#define KEY_MAX_BYTES 4096  /* one key */
#define KEYS_PATH_MAX 4096

struct mm_keys {
    char **names;
    unsigned char **keys;
    size_t *lens;
    size_t n, cap;
};

mm_err mm_keys_new(mm_keys **out)
{
    return (*out = mm_calloc(1, sizeof(**out))) ? MM_OK : MM_ENOMEM;
}

void mm_keys_free(mm_keys *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++) {
        mm_free(k->names[i]);
        OPENSSL_cleanse(k->keys[i], k->lens[i]);
        mm_free(k->keys[i]);
    }
    mm_free(k->names);
    mm_free(k->keys);
    mm_free(k->lens);
    mm_free(k);
}

bool keys_get(const mm_keys *k, const char *name, const unsigned char **key, size_t *len)
{
    for (size_t i = 0; k && name && i < k->n; i++)
        if (strcmp(k->names[i], name) == 0) {
            *key = k->keys[i];
            *len = k->lens[i];
            return true;
        }
    return false;
}

/* Room for one more key in the three parallel arrays. */
static mm_err keys_grow(mm_keys *k)
{
    size_t cap = k->cap ? k->cap * 2 : 4;
    char **names;
    unsigned char **keys;
    size_t *lens;

    if (!(names = mm_realloc(k->names, cap * sizeof(*names))))
        return MM_ENOMEM;
    k->names = names;
    if (!(keys = mm_realloc(k->keys, cap * sizeof(*keys))))
        return MM_ENOMEM;
    k->keys = keys;
    if (!(lens = mm_realloc(k->lens, cap * sizeof(*lens))))
        return MM_ENOMEM;
    k->lens = lens;
    k->cap = cap;
    return MM_OK;
}

mm_err mm_keys_add(mm_keys *k, const char *name, const void *key, size_t len)
{
    mm_err rc = MM_OK;
    unsigned char *copy = NULL;
    char *nm = NULL;

    if (!k || !name || !*name || !key || len == 0)
        return MM_EINVAL;
    if (len > KEY_MAX_BYTES)
        return MM_ELIMIT;
    if (!(copy = mm_memdup(key, len)))
        return MM_ENOMEM;
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->names[i], name) == 0) {
            OPENSSL_cleanse(k->keys[i], k->lens[i]);
            mm_free(k->keys[i]);
            k->keys[i] = copy;
            k->lens[i] = len;
            return MM_OK;
        }
    if (k->n == KEYS_MAX) {
        rc = MM_ELIMIT;
        goto out;
    }
    if (k->n == k->cap && (rc = keys_grow(k)) != MM_OK)
        goto out;
    if (!(nm = mm_strdup(name))) {
        rc = MM_ENOMEM;
        goto out;
    }
    k->names[k->n] = nm;
    k->keys[k->n] = copy;
    k->lens[k->n++] = len;
    copy = NULL;
out:
    if (copy) {
        OPENSSL_cleanse(copy, len);
        mm_free(copy);
    }
    return rc;
}

/* One directory entry: adds it when it is (or links to) a regular file. */
static mm_err load_one(mm_keys *k, const char *dir, const char *name, mm_buf *path,
                       mm_errbuf *eb)
{
    mm_err rc;
    struct stat st;
    char *data = NULL;
    size_t len = 0;

    mm_buf_reset(path);
    if ((rc = mm_buf_printf(path, "%s/%s", dir, name)) != MM_OK)
        return mm_errf(eb, rc, "%s/%s: %s", dir, name,
                       rc == MM_ELIMIT ? "path too long" : "out of memory");
    if (stat(path->data, &st) != 0) {
        struct stat lst;
        /* a link whose target kubelet is replacing or removing: the key is going away */
        if (errno == ENOENT && lstat(path->data, &lst) == 0 && S_ISLNK(lst.st_mode))
            return MM_OK;
        return mm_errf(eb, MM_EIO, "%s: %s", path->data, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) /* a Secret volume holds files only */
        return MM_OK;
    if (st.st_size > KEY_MAX_BYTES)
        return mm_errf(eb, MM_ELIMIT, "%s: the key is larger than %d bytes", path->data,
                       KEY_MAX_BYTES);
    if ((rc = mm_read_file(path->data, KEY_MAX_BYTES, &data, &len, eb)) != MM_OK)
        return rc;
    if (len == 0) {
        rc = mm_errf(eb, MM_EINVAL, "%s: the key is empty", path->data);
        goto out;
    }
    rc = mm_keys_add(k, name, data, len);
    if (rc == MM_ELIMIT)
        rc = mm_errf(eb, rc, "%s: more than %d keys", dir, KEYS_MAX);
    else if (rc != MM_OK)
        rc = mm_errf(eb, rc, "%s: out of memory", path->data);
out:
    if (data) {
        OPENSSL_cleanse(data, len);
        mm_free(data);
    }
    return rc;
}

mm_err mm_keys_load_dir(const char *dir, mm_keys **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_keys *k = NULL;
    DIR *d = NULL;
    struct dirent *de;
    mm_buf path;

    mm_buf_init(&path, KEYS_PATH_MAX);
    if ((rc = mm_keys_new(&k)) != MM_OK) {
        rc = mm_errf(eb, rc, "%s: out of memory", dir);
        goto out;
    }
    if (!(d = opendir(dir))) {
        rc = mm_errf(eb, errno == ENOENT ? MM_ENOTFOUND : MM_EIO, "%s: %s", dir, strerror(errno));
        goto out;
    }
    for (;;) {
        errno = 0;
        if (!(de = readdir(d))) {
            if (errno) {
                rc = mm_errf(eb, MM_EIO, "%s: %s", dir, strerror(errno));
                goto out;
            }
            break;
        }
        if (de->d_name[0] == '.') /* ., .., ..data, ..2026_11_24_..., hidden files */
            continue;
        if ((rc = load_one(k, dir, de->d_name, &path, eb)) != MM_OK)
            goto out;
    }
    *out = k;
    k = NULL;
out:
    if (d)
        closedir(d);
    mm_buf_free(&path);
    mm_keys_free(k);
    return rc;
}
