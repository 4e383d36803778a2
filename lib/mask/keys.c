/* lib/mask: named keys for keyed hashes and tokens, loaded from a directory laid out like a
 * mounted Secret (one file per key; kubelet's ..data links and dot-files skipped). */
#include "mask/mask_int.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define KEYS_MAX 256
#define KEY_MAX_BYTES 4096

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
        if (k->keys[i])
            memset(k->keys[i], 0, k->lens[i]); /* do not leave keys in freed memory */
        mm_free(k->keys[i]);
    }
    mm_free(k->names);
    mm_free(k->keys);
    mm_free(k->lens);
    mm_free(k);
}

bool keys_get(const mm_keys *k, const char *name, const unsigned char **key, size_t *len)
{
    for (size_t i = 0; k && i < k->n; i++)
        if (strcmp(k->names[i], name) == 0) {
            *key = k->keys[i];
            *len = k->lens[i];
            return true;
        }
    return false;
}

mm_err mm_keys_add(mm_keys *k, const char *name, const void *key, size_t len)
{
    unsigned char *copy;
    char *nm;

    if (!name || !*name || !len || len > KEY_MAX_BYTES)
        return MM_EINVAL;
    if (!(copy = mm_memdup(key, len)))
        return MM_ENOMEM;
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->names[i], name) == 0) {
            memset(k->keys[i], 0, k->lens[i]);
            mm_free(k->keys[i]);
            k->keys[i] = copy;
            k->lens[i] = len;
            return MM_OK;
        }
    if (k->n == KEYS_MAX) {
        mm_free(copy);
        return MM_ELIMIT;
    }
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4;
        char **names = mm_realloc(k->names, cap * sizeof(*names));
        if (names)
            k->names = names;
        unsigned char **keys = names ? mm_realloc(k->keys, cap * sizeof(*keys)) : NULL;
        if (keys)
            k->keys = keys;
        size_t *lens = keys ? mm_realloc(k->lens, cap * sizeof(*lens)) : NULL;
        if (!lens) {
            mm_free(copy);
            return MM_ENOMEM;
        }
        k->lens = lens;
        k->cap = cap;
    }
    if (!(nm = mm_strdup(name))) {
        mm_free(copy);
        return MM_ENOMEM;
    }
    k->names[k->n] = nm;
    k->keys[k->n] = copy;
    k->lens[k->n++] = len;
    return MM_OK;
}

mm_err mm_keys_load_dir(const char *dir, mm_keys **out, mm_errbuf *eb)
{
    mm_err rc = MM_OK;
    mm_keys *k = NULL;
    DIR *d = NULL;
    struct dirent *de;
    mm_buf path;
    char *data = NULL;

    mm_buf_init(&path, 4096);
    if ((rc = mm_keys_new(&k)) != MM_OK)
        goto nomem;
    if (!(d = opendir(dir))) {
        rc = mm_errf(eb, errno == ENOENT ? MM_ENOTFOUND : MM_EIO, "%s: %s", dir, strerror(errno));
        goto out;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct stat st;
        size_t len = 0;

        if (de->d_name[0] == '.') /* ., .., ..data, ..2026_11_24_... */
            continue;
        mm_buf_reset(&path);
        if ((rc = mm_buf_printf(&path, "%s/%s", dir, de->d_name)) != MM_OK) {
            rc = mm_errf(eb, rc, "%s/%s: path too long", dir, de->d_name);
            goto out;
        }
        if (stat(path.data, &st) != 0) {
            rc = mm_errf(eb, MM_EIO, "%s: %s", path.data, strerror(errno));
            goto out;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        if ((rc = mm_read_file(path.data, KEY_MAX_BYTES, &data, &len, eb)) != MM_OK)
            goto out;
        if (len == 0) {
            rc = mm_errf(eb, MM_EINVAL, "%s: the key is empty", path.data);
            goto out;
        }
        rc = mm_keys_add(k, de->d_name, data, len);
        memset(data, 0, len);
        mm_free(data);
        data = NULL;
        if (rc == MM_ELIMIT) {
            rc = mm_errf(eb, rc, "%s: more than %d keys", dir, KEYS_MAX);
            goto out;
        }
        if (rc != MM_OK)
            goto nomem;
    }
    if (errno) {
        rc = mm_errf(eb, MM_EIO, "%s: %s", dir, strerror(errno));
        goto out;
    }
    *out = k;
    k = NULL;
    goto out;
nomem:
    rc = mm_errf(eb, MM_ENOMEM, "%s: out of memory", dir);
out:
    if (d)
        closedir(d);
    mm_free(data);
    mm_buf_free(&path);
    mm_keys_free(k);
    return rc;
}
