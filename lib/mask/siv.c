/* lib/mask: AES-SIV (RFC 5297) through OpenSSL 3's "AES-<k>-SIV" ciphers. Each EVP update
 * with a NULL output adds one associated-data component to S2V; the single update with
 * output is the plaintext (SIV cannot stream: the IV depends on all of it). */
#include "mask/crypt_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

/* Contexts with the key set, one per direction: a call copies one (OpenSSL's SIV copies
 * its CMAC and CTR states) instead of initialising with the key, which fetches CMAC and
 * AES-CTR again and expands both keys, several times the cost of the copy. */
struct siv_key {
    EVP_CIPHER *cipher;
    EVP_CIPHER_CTX *enc, *dec;
};

mm_err siv_key_new(const unsigned char *key, size_t len, siv_key **out)
{
    mm_err rc = MM_ENOMEM;
    siv_key *k = NULL;
    const char *name = len == 32 ? "AES-128-SIV" : len == 48 ? "AES-192-SIV"
                     : len == 64 ? "AES-256-SIV" : NULL;

    if (!name)
        return MM_EINVAL;
    if (!(k = mm_calloc(1, sizeof(*k))))
        goto out;
    if (!(k->cipher = EVP_CIPHER_fetch(NULL, name, NULL))) {
        rc = MM_EINVAL; /* an OpenSSL without SIV (before 3.0) */
        goto out;
    }
    if (!(k->enc = EVP_CIPHER_CTX_new()) || !(k->dec = EVP_CIPHER_CTX_new()) ||
        !EVP_EncryptInit_ex2(k->enc, k->cipher, key, NULL, NULL) ||
        !EVP_DecryptInit_ex2(k->dec, k->cipher, key, NULL, NULL))
        goto out;
    *out = k;
    k = NULL;
    rc = MM_OK;
out:
    siv_key_free(k);
    return rc;
}

void siv_key_free(siv_key *k)
{
    if (!k)
        return;
    EVP_CIPHER_CTX_free(k->enc); /* clears the key schedules */
    EVP_CIPHER_CTX_free(k->dec);
    EVP_CIPHER_free(k->cipher);
    mm_free(k);
}

/* Feeds the associated data, then the one plaintext/ciphertext update. */
static bool siv_run(EVP_CIPHER_CTX *c, const unsigned char *const *ad, const size_t *ad_len,
                    size_t n_ad, const unsigned char *in, size_t len, unsigned char *out)
{
    int ol = 0;

    for (size_t i = 0; i < n_ad; i++)
        if (!EVP_CipherUpdate(c, NULL, &ol, ad[i], (int)ad_len[i]))
            return false;
    if (!EVP_CipherUpdate(c, out, &ol, in, (int)len) || (size_t)ol != len)
        return false;
    return EVP_CipherFinal_ex(c, out + len, &ol) == 1;
}

mm_err siv_seal(const siv_key *k, const unsigned char *const *ad, const size_t *ad_len,
                size_t n_ad, const unsigned char *in, size_t len, unsigned char *out)
{
    mm_err rc = MM_ENOMEM;
    EVP_CIPHER_CTX *c = NULL;

    /* OpenSSL 3's EVP layer drops a zero-length update before the provider sees it, so
     * S2V would lack its final component and the final call fails: no empty plaintext */
    if (n_ad > SIV_MAX_AD || len == 0 || len > INT32_MAX)
        return MM_EINVAL;
    if (!(c = EVP_CIPHER_CTX_new()) || !EVP_CIPHER_CTX_copy(c, k->enc))
        goto out;
    if (!siv_run(c, ad, ad_len, n_ad, in, len, out + SIV_TAG) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, SIV_TAG, out))
        goto out;
    rc = MM_OK;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

mm_err siv_open(const siv_key *k, const unsigned char *const *ad, const size_t *ad_len,
                size_t n_ad, const unsigned char *in, size_t len, unsigned char *out)
{
    mm_err rc = MM_ENOMEM;
    EVP_CIPHER_CTX *c = NULL;
    unsigned char tag[SIV_TAG];

    if (n_ad > SIV_MAX_AD || len <= SIV_TAG || len > INT32_MAX)
        return MM_EINVAL;
    memcpy(tag, in, SIV_TAG);
    if (!(c = EVP_CIPHER_CTX_new()) || !EVP_CIPHER_CTX_copy(c, k->dec) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, SIV_TAG, tag))
        goto out;
    /* a tag that does not verify fails the update or the final */
    if (!siv_run(c, ad, ad_len, n_ad, in + SIV_TAG, len - SIV_TAG, out)) {
        OPENSSL_cleanse(out, len - SIV_TAG);
        rc = MM_EINVAL;
        goto out;
    }
    rc = MM_OK;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}
