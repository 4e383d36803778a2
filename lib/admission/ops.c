/* lib/admission: the injection's builder (warnings, the explain text, the patch's operations
 * written as JSON text), the template hash, and the patch as a json-c tree for those who
 * apply it (maskctl inject, re-injection). inject.c decides; this writes down. */
#include "admission/admission.h"
#include "admission/admission_int.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

void adm_warn(adm_builder *b, const char *fmt, ...)
{
    mm_buf w;
    va_list ap;
    char **grown, *s;

    mm_buf_init(&w, 0);
    va_start(ap, fmt);
    if (mm_buf_puts(&w, "maskmesh: ") != MM_OK || mm_buf_vprintf(&w, fmt, ap) != MM_OK) {
        va_end(ap);
        mm_buf_free(&w);
        b->oom = true;
        return;
    }
    va_end(ap);
    grown = mm_realloc(b->res->warnings, (b->res->n_warnings + 1) * sizeof(*grown));
    if (!grown) {
        mm_buf_free(&w);
        b->oom = true;
        return;
    }
    b->res->warnings = grown;
    s = mm_buf_steal(&w, NULL);
    if (!s) {
        b->oom = true;
        return;
    }
    b->res->warnings[b->res->n_warnings++] = s;
    if (!b->no_explain && mm_buf_printf(&b->explain, "  warning: %s\n", s + strlen("maskmesh: ")) != MM_OK)
        b->oom = true;
}

void adm_explain(adm_builder *b, const char *fmt, ...)
{
    va_list ap;
    if (b->no_explain)
        return;
    va_start(ap, fmt);
    if (mm_buf_vprintf(&b->explain, fmt, ap) != MM_OK)
        b->oom = true;
    va_end(ap);
}

/* Appends {"op":op,"path":<segments>,"value":v} to b->ops; v is JSON text (NULL for remove),
 * often b->val. The segments are NULL-terminated and escaped here. */
void adm_op(adm_builder *b, const char *op, const mm_buf *v, ...)
{
    jw w = {&b->ops, MM_OK};
    va_list ap;
    const char *seg;

    mm_buf_reset(&b->path);
    va_start(ap, v);
    while ((seg = va_arg(ap, const char *)) != NULL) {
        if (mm_adm_ptr_append(&b->path, seg) != MM_OK)
            b->oom = true;
    }
    va_end(ap);
    if (b->oom)
        return;
    jw_lit(&w, b->ops.len ? ",{\"op\":\"" : "{\"op\":\"");
    jw_lit(&w, op);
    jw_lit(&w, "\",\"path\":");
    if (w.rc == MM_OK)
        w.rc = adm_json_str(&b->ops, b->path.data, b->path.len);
    if (v) {
        jw_lit(&w, ",\"value\":");
        jw_raw(&w, v->data, v->len);
    }
    jw_lit(&w, "}");
    if (w.rc != MM_OK)
        b->oom = true;
}

/* b->val, emptied, as a writer for the next value */
jw adm_val(adm_builder *b)
{
    mm_buf_reset(&b->val);
    return (jw){&b->val, MM_OK};
}

/* b->val holding a string or a number, for adm_op */
const mm_buf *adm_val_str(adm_builder *b, const char *s)
{
    jw w = adm_val(b);
    jw_str(&w, s);
    if (w.rc != MM_OK)
        b->oom = true;
    return &b->val;
}

const mm_buf *adm_val_int(adm_builder *b, long n)
{
    jw w = adm_val(b);
    jw_int(&w, n);
    if (w.rc != MM_OK)
        b->oom = true;
    return &b->val;
}

void adm_idx(char out[24], size_t i)
{
    adm_ltoa(out, (long)i); /* indices of JSON arrays read, far below LONG_MAX */
}

/* ---- the patch as a json-c tree (maskctl inject applies it; re-injection applies the
 * ops that take the older injection out) ---------------------------------------------- */

/* Parses ops, the operations' text (comma-separated, with or without the brackets), into
 * a json-c array. The text is ours and valid: a failure is out of memory. */
mm_err adm_patch_tree(const mm_buf *ops, json_object **out)
{
    mm_buf arr;
    json_object *t;
    bool bracketed = ops->len && ops->data[0] == '[';

    mm_buf_init(&arr, 0);
    if ((!bracketed && mm_buf_putc(&arr, '[') != MM_OK) ||
        mm_buf_append(&arr, ops->data ? ops->data : "", ops->len) != MM_OK ||
        (!bracketed && mm_buf_putc(&arr, ']') != MM_OK)) {
        mm_buf_free(&arr);
        return MM_ENOMEM;
    }
    t = json_tokener_parse(mm_buf_cstr(&arr));
    mm_buf_free(&arr);
    if (!t)
        return MM_ENOMEM;
    *out = t;
    return MM_OK;
}

/* ---- status marker -------------------------------------------------------------------- */

/* OpenSSL 3's SHA256() fetches the algorithm on every call (half its cost): fetched once. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* The last hash input and its hash, per thread: the pods of one workload, created together,
 * hash the same text, and a compare costs a fraction of SHA-256. Only a cache of a pure
 * function: what is returned is the same. Bounded: longer inputs are hashed every time. */
#define HASH_MEMO_MAX 4096
static _Thread_local struct {
    size_t len;
    char hex[24];
    char text[HASH_MEMO_MAX];
} hash_memo;

mm_err adm_hash(const mm_buf *s, char out[72])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    const char *data = s->data ? s->data : "";

    if (s->len && s->len == hash_memo.len && memcmp(data, hash_memo.text, s->len) == 0) {
        memcpy(out, hash_memo.hex, 24); /* "sha256:", 16 digits, NUL */
        return MM_OK;
    }
    pthread_once(&sha256_once, sha256_fetch);
    if (!sha256_md ? !SHA256((const unsigned char *)data, s->len, md)
                   : !EVP_Digest(data, s->len, md, NULL, sha256_md, NULL))
        return MM_ENOMEM;
    memcpy(out, "sha256:", 7);
    for (size_t i = 0; i < 8; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[23] = '\0';
    if (s->len <= HASH_MEMO_MAX) {
        memcpy(hash_memo.text, data, s->len);
        hash_memo.len = s->len;
        memcpy(hash_memo.hex, out, 24);
    }
    return MM_OK;
}
