/* lib/mask internals: the ciphers behind the encrypt action — FF1 format-preserving
 * encryption (NIST SP 800-38G, ff1.c), AES-SIV deterministic authenticated encryption
 * (RFC 5297, siv.c), and the value formats built on them (fpe.c). Not public. */
#ifndef MM_MASK_CRYPT_INT_H
#define MM_MASK_CRYPT_INT_H

#include "common/common.h"

/* ---- FF1 (ff1.c) ---------------------------------------------------------------------- */

#define FF1_MAX_LEN 4096   /* numerals in one value; longer is MM_ELIMIT */
#define FF1_MAX_TWEAK 256  /* tweak bytes */

/* An AES key (16, 24 or 32 bytes) with its key schedule expanded once: immutable after
 * ff1_key_new and shareable by threads (each call works on its own copy of the context). */
typedef struct ff1_key ff1_key;

mm_err ff1_key_new(const unsigned char *key, size_t len, ff1_key **out);
void ff1_key_free(ff1_key *k);

/* FF1.Encrypt / FF1.Decrypt (SP 800-38G Algorithms 7 and 8) of `n` numerals (each
 * 0..radix-1) into `out` (may be `in`). radix 2..62; radix^n must be at least 100 (the
 * original FF1 bound; 800-38G Rev. 1 asks 1,000,000, which maskctl check warns about).
 * MM_EINVAL for a numeral out of range or a domain too small, MM_ELIMIT past FF1_MAX_LEN or
 * FF1_MAX_TWEAK. */
mm_err ff1_encrypt(const ff1_key *k, unsigned radix, const unsigned char *tweak, size_t tlen,
                   const uint8_t *in, size_t n, uint8_t *out);
mm_err ff1_decrypt(const ff1_key *k, unsigned radix, const unsigned char *tweak, size_t tlen,
                   const uint8_t *in, size_t n, uint8_t *out);
/* The same with the path chosen: `bignum` forces OpenSSL BIGNUM arithmetic even where the
 * 64-bit path applies (tests compare the two). */
mm_err ff1_crypt(const ff1_key *k, unsigned radix, const unsigned char *tweak, size_t tlen,
                 const uint8_t *in, size_t n, uint8_t *out, bool decrypt, bool bignum);

/* ---- AES-SIV (siv.c) ------------------------------------------------------------------ */

/* An AES-SIV key (32, 48 or 64 bytes: AES-128/192/256-SIV, K1 || K2 as RFC 5297 writes
 * them). Immutable and shareable, as ff1_key. */
typedef struct siv_key siv_key;

mm_err siv_key_new(const unsigned char *key, size_t len, siv_key **out);
void siv_key_free(siv_key *k);

#define SIV_TAG 16
#define SIV_MAX_AD 4 /* associated data components besides the plaintext */

/* S2V over the `n_ad` associated data components (the nonce, if any, is the last one, as
 * RFC 5297 section 3 puts it), then CTR: writes SIV_TAG + len bytes (V || C) to `out`. */
mm_err siv_seal(const siv_key *k, const unsigned char *const *ad, const size_t *ad_len,
                size_t n_ad, const unsigned char *in, size_t len, unsigned char *out);
/* The inverse; MM_EINVAL when the tag does not verify (a forged or damaged token, or the
 * wrong key), with nothing written that the caller should use. `len` counts V || C. */
mm_err siv_open(const siv_key *k, const unsigned char *const *ad, const size_t *ad_len,
                size_t n_ad, const unsigned char *in, size_t len, unsigned char *out);

#endif
