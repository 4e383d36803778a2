/* lib/mask internals: the ciphers behind the encrypt action — FF1 format-preserving
 * encryption (NIST SP 800-38G, ff1.c), AES-SIV deterministic authenticated encryption
 * (RFC 5297, siv.c), and the value formats built on them (fpe.c). Not public. */
#ifndef MM_MASK_CRYPT_INT_H
#define MM_MASK_CRYPT_INT_H

#include "common/common.h"
#include "policy/policy.h"

struct mm_keys;

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

/* One value of ff1_encrypt_lanes: n numerals x (each 0..radix-1), encrypted in place. */
typedef struct {
    unsigned radix;
    const unsigned char *tweak;
    size_t tlen;
    uint8_t *x;
    size_t n;
} ff1_lane;

#define FF1_LANES 16 /* values per ff1_encrypt_lanes call */

/* FF1.Encrypt of up to FF1_LANES values under one key, each as ff1_encrypt would, in
 * lockstep: round i of every value goes through one AES call. Checks every value before it
 * encrypts any; on an error no value is to be used. */
mm_err ff1_encrypt_lanes(const ff1_key *k, ff1_lane *v, size_t n);

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

/* ---- the encrypt action's values (fpe.c) ---------------------------------------------- */

/* Key material for encrypt is derived from the Secret entry <key>.v<N> (at least
 * ENC_MIN_KEY bytes, any content) with HKDF-SHA256 (RFC 5869, no salt): info "maskmesh ff1"
 * gives the 32-byte AES-256 key of FF1, "maskmesh siv" the 64-byte AES-256-SIV key. So one
 * entry serves both modes, and a tool elsewhere derives the same keys from the same bytes. */
#define ENC_MIN_KEY 16
#define ENC_MAX_WALK 1000 /* cycle-walking rounds before giving up (expected: about 1) */

typedef struct enc_t enc_t;

/* `version` 0 means the action's keyVersion. A missing or short key entry is MM_EINVAL with
 * a message naming the entry (never its bytes). */
mm_err enc_compile(const mm_action *a, const struct mm_keys *keys, int version,
                   const char *where, enc_t **out, mm_errbuf *eb);
void enc_free(enc_t *e);
int enc_version(const enc_t *e);
/* Appends the encrypted form of in[0..n) to out (see fpe.c for the formats). */
mm_err enc_encrypt(const enc_t *e, const char *in, size_t n, mm_buf *out);
/* The inverse. MM_EINVAL when `in` is not something this action and version wrote. */
mm_err enc_decrypt(const enc_t *e, const char *in, size_t n, mm_buf *out);
/* The same with `tweak` in place of the action's own (tweak: {field: ...}: the value of
 * the member the field names; at most FF1_MAX_TWEAK bytes, else MM_ELIMIT). */
mm_err enc_crypt_tweak(const enc_t *e, const void *tweak, size_t tlen, const char *in, size_t n,
                       mm_buf *out, bool decrypt);
/* The member name of tweak: {field: NAME}, or NULL: the caller finds the member's value in
 * the value's object and passes it to enc_crypt_tweak (enc_encrypt and enc_decrypt use the
 * rule's name then: what a value whose object has no such member takes). */
const char *enc_tweak_field(const enc_t *e);
/* The key version a value names (an siv token's enc_v<N>_, an ff1 surrogate's .v<N>:), 0
 * when it names none (ff1 without surrogate), -1 when it is not in this action's form. */
int enc_value_version(const mm_action *a, const char *in, size_t n);

/* An ff1 value whose encryption waits for others', so that a body's values go through FF1
 * together (ff1_encrypt_lanes). Held by value in the caller's array; its parts are the
 * value's symbols, so it is wiped once run. */
#define ENC_JOB_MAX 48 /* bytes of a value that can wait */
typedef struct enc_job {
    const enc_t *e;
    size_t at; /* where the value's bytes are in the caller's buffer */
    uint8_t m, first, len, check_off;
    bool card;
    uint16_t pos[ENC_JOB_MAX];
    char sym[ENC_JOB_MAX];
    uint8_t x[ENC_JOB_MAX];
} enc_job;

/* Whether enc_encrypt(e, in, n) can wait in *job: an ff1 value of digits (no cycle walking)
 * of at most ENC_JOB_MAX printable bytes with nothing JSON escapes (so its bytes are the
 * same in a JSON string). If so, appends to out what enc_encrypt would with in[0..n) in
 * place of the ciphertext, and sets job->at to the offset in that output where in[0..n)
 * begins; the caller adds where the output lands and runs the job before the bytes leave. */
bool enc_defer(const enc_t *e, const char *in, size_t n, mm_buf *out, enc_job *job,
               mm_err *rc);
/* Encrypts the jobs' values in place in base (each at base + at), the values of one key
 * together; wipes the jobs. On an error the values are not to be used. */
mm_err enc_run(enc_job *jobs, size_t n, char *base);

/* HKDF-SHA256 of `ikm` with `info`, `outlen` bytes. */
mm_err enc_derive(const unsigned char *ikm, size_t len, const char *info, unsigned char *out,
                  size_t outlen);

#endif
