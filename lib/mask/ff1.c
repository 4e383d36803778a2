/* lib/mask: FF1 format-preserving encryption, NIST SP 800-38G (March 2016) section 5.1,
 * over OpenSSL's AES in ECB mode (the PRF is CBC-MAC with a zero IV, built block by block).
 *
 * Two paths compute the same function:
 *   - fast: when radix^v fits in 64 bits (radix 10 up to 38 numerals, radix 36 up to 24,
 *     radix 62 up to 20), NUM_radix(B) fits in b <= 8 bytes and y in d <= 12 bytes; with
 *     up to 9 decimal digits a half, y fits in 64 bits and its remainder is a Barrett
 *     reduction (multiplications, no division). Cards, SSNs and phone numbers take this
 *     path. What depends only on radix, n and the tweak length (u, v, b, d, radix^u,
 *     radix^v and their Barrett inverses, and CIPH(P), the PRF's first block) the key
 *     keeps per (radix, n, t) in a small lock-free cache, so a card costs its ten rounds'
 *     AES blocks, their arithmetic and little else.
 *   - reference: BIGNUM arithmetic and CIPH(P) computed on every call; any length up to
 *     FF1_MAX_LEN. Tests hold the fast path to it.
 * ff1_encrypt_lanes runs several values' rounds in lockstep on the 64-bit path: a round's
 * PRF blocks, one per value, go through one EVP_Cipher call. EVP's and the provider's cost
 * per call (about 120 instructions of the ~210 one block took) is then paid once a round
 * for all, and AES-NI pipelines the independent blocks (callgrind, the sidecar with six
 * cards a 1 KB body: 87.8k -> 80.5k instructions a request with emit.c's batching).
 * The key schedule is expanded once (ff1_key_new); a call borrows a copy of that context
 * from a small lock-free pool, so one key serves every thread. */
#include "mask/crypt_int.h"

#include <stdatomic.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

/* Contexts copied from `ecb` once, lent to one call at a time: a call that finds none free
 * (more threads than slots) copies its own. Saves an allocation and a context copy per
 * value, about a third of an FF1 card's cost. Each slot's flag has a cache line of its own
 * and a thread starts looking at the slot it had last, so workers on different CPUs keep to
 * their own slots instead of passing one line back and forth twice per value. */
#define FF1_POOL 16
#define FF1_LINE 64

struct ff1_slot {
    atomic_bool busy;
    EVP_CIPHER_CTX *c;
    char pad[FF1_LINE - sizeof(atomic_bool) - sizeof(EVP_CIPHER_CTX *)];
};

/* the slot this thread borrowed last (any key: a hint, never an owner) */
static _Thread_local unsigned ff1_hint;

/* What the 64-bit path needs of a shape (radix, n, t) besides the tweak's bytes. */
typedef struct {
    uint64_t mod_u, mod_v; /* radix^u, radix^v */
    uint64_t inv_u, inv_v; /* floor((2^64 - 1) / mod): mod_barrett's inverses */
    uint8_t u, v, b, d;
    unsigned char y0[16]; /* CIPH(P): the CBC-MAC state after P */
} ff1_shape;

/* Shapes, direct-mapped: a slot is taken by the first shape that hashes to it and kept
 * (values of a field have one shape; a shape that finds its slot taken is worked out on
 * the call's stack). tag: 0 free, 1 being written, else pc_tag(). */
#define FF1_PCACHE_BITS 6
#define FF1_PCACHE (1 << FF1_PCACHE_BITS)

struct ff1_key {
    EVP_CIPHER_CTX *ecb; /* AES-k-ECB, encrypting, no padding, key set */
    struct ff1_slot pool[FF1_POOL];
    struct {
        _Atomic uint32_t tag;
        ff1_shape s;
    } pc[FF1_PCACHE];
};

mm_err ff1_key_new(const unsigned char *key, size_t len, ff1_key **out)
{
    mm_err rc = MM_ENOMEM;
    ff1_key *k = NULL;
    EVP_CIPHER *c = NULL;
    const char *name = len == 16 ? "AES-128-ECB" : len == 24 ? "AES-192-ECB"
                     : len == 32 ? "AES-256-ECB" : NULL;

    if (!name)
        return MM_EINVAL;
    if (!(k = mm_calloc(1, sizeof(*k))) || !(k->ecb = EVP_CIPHER_CTX_new()))
        goto out;
    if (!(c = EVP_CIPHER_fetch(NULL, name, NULL)) ||
        !EVP_EncryptInit_ex2(k->ecb, c, key, NULL, NULL) ||
        !EVP_CIPHER_CTX_set_padding(k->ecb, 0))
        goto out;
    for (int i = 0; i < FF1_PCACHE; i++)
        atomic_init(&k->pc[i].tag, 0);
    for (int i = 0; i < FF1_POOL; i++) {
        atomic_init(&k->pool[i].busy, false);
        if (!(k->pool[i].c = EVP_CIPHER_CTX_new()) || !EVP_CIPHER_CTX_copy(k->pool[i].c, k->ecb))
            goto out;
    }
    *out = k;
    k = NULL;
    rc = MM_OK;
out:
    EVP_CIPHER_free(c);
    ff1_key_free(k);
    return rc;
}

void ff1_key_free(ff1_key *k)
{
    if (!k)
        return;
    EVP_CIPHER_CTX_free(k->ecb); /* OpenSSL clears the key schedule */
    for (int i = 0; i < FF1_POOL; i++)
        EVP_CIPHER_CTX_free(k->pool[i].c);
    OPENSSL_cleanse(k->pc, sizeof(k->pc));
    mm_free(k);
}

/* One AES block: out = CIPH(in). EVP_Cipher goes straight to the provider's cipher call,
 * without EVP_EncryptUpdate's partial-block bookkeeping, which ECB on whole blocks does
 * not need (about a quarter less time per block). */
static inline bool ciph(EVP_CIPHER_CTX *c, const unsigned char in[16], unsigned char out[16])
{
    return EVP_Cipher(c, out, in, 16) > 0;
}

/* The BIGNUM path's state for one call. */
typedef struct {
    EVP_CIPHER_CTX *c;
    unsigned radix;
    size_t n, u, v, t, b, d;
    const unsigned char *tweak;
    unsigned char y0[16];  /* CIPH(P): the CBC-MAC state after P */
    size_t qlen;           /* |Q| = t + pad + 1 + b, a multiple of 16 */
    unsigned char *q;      /* Q, its tweak and padding filled once */
} ff1_call;

/* R = PRF(P || Q): the CBC-MAC of Q's blocks continuing from CIPH(P). */
static inline bool prf(const ff1_call *f, unsigned char r[16])
{
    uint64_t w[2], q[2];

    memcpy(w, f->y0, 16);
    for (size_t off = 0; off < f->qlen; off += 16) {
        memcpy(q, f->q + off, 16);
        w[0] ^= q[0];
        w[1] ^= q[1];
        memcpy(r, w, 16);
        if (!ciph(f->c, r, r))
            return false;
        memcpy(w, r, 16);
    }
    return true;
}

/* S = R || CIPH(R ^ [1]) || CIPH(R ^ [2]) ... to d bytes. */
static bool round_s(const ff1_call *f, unsigned char *s)
{
    unsigned char r[16], x[16];

    if (!prf(f, r))
        return false;
    memcpy(s, r, f->d < 16 ? f->d : 16);
    for (size_t j = 1; 16 * j < f->d; j++) {
        unsigned char blk[16];
        memcpy(x, r, 16);
        for (int i = 0; i < 4; i++) /* [j]^16: j big-endian in the last bytes */
            x[15 - i] ^= (unsigned char)((uint64_t)j >> (8 * i));
        if (!ciph(f->c, x, blk))
            return false;
        memcpy(s + 16 * j, blk, f->d - 16 * j < 16 ? f->d - 16 * j : 16);
    }
    return true;
}

/* ---- the 64-bit path ------------------------------------------------------------------ */

static uint64_t num64(const uint8_t *x, size_t m, unsigned radix)
{
    uint64_t v = 0;
    for (size_t i = 0; i < m; i++)
        v = v * radix + x[i];
    return v;
}

static void str64(uint64_t v, uint8_t *x, size_t m, unsigned radix)
{
    if (radix == 10) { /* a constant divisor: multiplications, not a division per digit */
        for (size_t i = m; i-- > 0;) {
            x[i] = (uint8_t)(v % 10);
            v /= 10;
        }
        return;
    }
    for (size_t i = m; i-- > 0;) {
        x[i] = (uint8_t)(v % radix);
        v /= radix;
    }
}

/* radix^m, or 0 when it does not fit in 64 bits. */
static uint64_t pow64(unsigned radix, size_t m)
{
    uint64_t p = 1;
    for (size_t i = 0; i < m; i++)
        if (__builtin_mul_overflow(p, (uint64_t)radix, &p))
            return 0;
    return p;
}

/* y mod m without a division: q = high64(y * inv), inv = floor((2^64 - 1) / m), is at
 * most two below y / m (Barrett), so r = y - q m needs at most two subtractions. The one
 * division per modulus happens once per call, not once per round. */
static inline uint64_t mod_barrett(uint64_t y, uint64_t m, uint64_t inv)
{
    uint64_t q = (uint64_t)(((unsigned __int128)y * inv) >> 64);
    uint64_t r = y - q * m;
    /* r < 3m; whether 0, 1 or 2 subtractions is up to y, so no branch a predictor would miss
     * half the time (conditional moves) */
    r -= r >= m ? m : 0;
    r -= r >= m ? m : 0;
    return r;
}

/* A big-endian 64-bit word to and from host order. */
static inline uint64_t be64(uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap64(v);
#else
    return v;
#endif
}

/* One AES block in a vector register. The PRF's input block is built here from the round's
 * [i] and [NUM(B)]^b and stored whole, so the cipher's 16-byte load of it is forwarded from
 * that one store; writing those bytes into Q in memory and loading the block back made the
 * load wait for the smaller stores to retire, every round (perf: a fifth of a card's time
 * on that load). */
typedef uint64_t blk128 __attribute__((vector_size(16)));

/* One value on the 64-bit path: its shape, the CBC-MAC state after Q's blocks before the
 * last (the same every round), Q's last block with the round's bytes zero, and the halves. */
typedef struct {
    const ff1_shape *sh;
    blk128 pre;
    uint64_t qhi, qlo; /* Q's last block as big-endian words */
    uint64_t ih, il;   /* [i] is i * ih in qhi (b == 8) or i * il in qlo (b < 8) */
    uint64_t a, bb;    /* NUM(A), NUM(B) */
} lane64;

/* Sets l up for x[0..n) with the tweak: Q = T || 0^pad || [i] || [NUM(B)]^b, b <= 8. */
static bool lane_init(EVP_CIPHER_CTX *c, lane64 *l, const ff1_shape *sh, unsigned radix,
                      const unsigned char *tweak, size_t tlen, const uint8_t *x)
{
    unsigned char q[FF1_MAX_TWEAK + 32], io[16];
    size_t qlen = (tlen + sh->b + 1 + 15) / 16 * 16;
    bool ok = true;

    memset(q, 0, qlen);
    if (tlen)
        memcpy(q, tweak, tlen);
    l->sh = sh;
    memcpy(&l->pre, sh->y0, 16);
    for (size_t off = 0; off + 16 < qlen && ok; off += 16) {
        blk128 blk;
        memcpy(&blk, q + off, 16);
        blk ^= l->pre;
        memcpy(io, &blk, 16);
        ok = ciph(c, io, io);
        memcpy(&l->pre, io, 16);
    }
    memcpy(&l->qhi, q + qlen - 16, 8);
    memcpy(&l->qlo, q + qlen - 8, 8);
    l->qhi = be64(l->qhi);
    l->qlo = be64(l->qlo);
    l->ih = sh->b == 8;
    l->il = sh->b < 8 ? (uint64_t)1 << (8 * sh->b) : 0;
    l->a = num64(x, sh->u, radix);
    l->bb = num64(x + sh->u, sh->v, radix);
    /* q holds the tweak and zeros, io a MAC state of the key and tweak alone (as the cached
     * CIPH(P) is): neither holds the value, so neither is wiped */
    return ok;
}

/* NUM(S) mod m, S being the first d bytes of R = io[0..16) (d <= 12 here). */
static inline uint64_t y_mod(const unsigned char *io, unsigned d, uint64_t m, uint64_t inv)
{
    uint64_t y;

    memcpy(&y, io, 8);
    if (d == 8) /* b <= 4 (v up to 9 decimal digits): y fits in 64 bits */
        return mod_barrett(be64(y), m, inv);
    uint32_t y2; /* d == 12: y < 2^96 */
    memcpy(&y2, io + 8, 4);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    y2 = __builtin_bswap32(y2);
#endif
    return (uint64_t)((((unsigned __int128)be64(y)) << 32 | y2) % m);
}

/* (a + y) mod m, both terms below m: one subtraction (a wrapped sum is past m too, and the
 * subtraction wraps it back), as in mod_barrett without a branch; and (a - y) mod m. */
static inline uint64_t add_mod(uint64_t a, uint64_t y, uint64_t m)
{
    uint64_t c;
    bool wrap = __builtin_add_overflow(a, y, &c);
    return c - (wrap || c >= m ? m : 0);
}

static inline uint64_t sub_mod(uint64_t a, uint64_t y, uint64_t m)
{
    return a - y + (a < y ? m : 0);
}

/* The ten rounds of cnt values in lockstep: a round's PRF blocks, one per value, go through
 * one EVP_Cipher call (ECB over cnt blocks), so EVP's and the provider's per-call work is
 * paid once a round for all of them and AES-NI pipelines their blocks. io: 16 * cnt bytes. */
static bool rounds64(EVP_CIPHER_CTX *c, lane64 *restrict l, size_t cnt, bool decrypt,
                     unsigned char *restrict io)
{
    for (int step = 0; step < 10; step++) {
        int i = decrypt ? 9 - step : step;
        for (size_t j = 0; j < cnt; j++) {
            uint64_t num = decrypt ? l[j].a : l[j].bb;
            blk128 blk = (blk128){be64(l[j].qhi | l[j].ih * (uint64_t)i),
                                  be64(l[j].qlo | num | l[j].il * (uint64_t)i)} ^ l[j].pre;
            memcpy(io + 16 * j, &blk, 16);
        }
        if (EVP_Cipher(c, io, io, (unsigned)(16 * cnt)) <= 0)
            return false;
        for (size_t j = 0; j < cnt; j++) {
            const ff1_shape *sh = l[j].sh;
            /* round i works modulo radix^u when i is even, radix^v when odd */
            uint64_t m = (i & 1) ? sh->mod_v : sh->mod_u, inv = (i & 1) ? sh->inv_v : sh->inv_u;
            uint64_t ym = y_mod(io + 16 * j, sh->d, m, inv), t;
            if (!decrypt) {
                t = add_mod(l[j].a, ym, m);
                l[j].a = l[j].bb;
                l[j].bb = t;
            } else {
                t = sub_mod(l[j].bb, ym, m);
                l[j].bb = l[j].a;
                l[j].a = t;
            }
        }
    }
    return true;
}

static void lane_out(const lane64 *l, unsigned radix, uint8_t *x)
{
    str64(l->a, x, l->sh->u, radix);
    str64(l->bb, x + l->sh->u, l->sh->v, radix);
}

/* ---- the BIGNUM path ------------------------------------------------------------------ */

static bool bn_num(BIGNUM *r, const uint8_t *x, size_t m, unsigned radix)
{
    BN_zero(r);
    for (size_t i = 0; i < m; i++)
        if (!BN_mul_word(r, radix) || !BN_add_word(r, x[i]))
            return false;
    return true;
}

/* STR^m_radix(v); v is consumed. */
static bool bn_str(BIGNUM *v, uint8_t *x, size_t m, unsigned radix)
{
    for (size_t i = m; i-- > 0;) {
        BN_ULONG rem = BN_div_word(v, radix);
        if (rem == (BN_ULONG)-1)
            return false;
        x[i] = (uint8_t)rem;
    }
    return true;
}

static bool run_bn(ff1_call *f, uint8_t *x, bool decrypt, const BIGNUM *mod_u,
                   const BIGNUM *mod_v, BN_CTX *bc)
{
    bool ok = false;
    unsigned char *s = NULL;
    unsigned char *qb = f->q + f->qlen - f->b, *qi = qb - 1;
    BIGNUM *a, *bb, *y, *c;

    BN_CTX_start(bc);
    a = BN_CTX_get(bc);
    bb = BN_CTX_get(bc);
    y = BN_CTX_get(bc);
    if (!(c = BN_CTX_get(bc)) || !(s = mm_malloc(f->d)))
        goto out;
    if (!bn_num(a, x, f->u, f->radix) || !bn_num(bb, x + f->u, f->v, f->radix))
        goto out;
    for (int step = 0; step < 10; step++) {
        int i = decrypt ? 9 - step : step;
        const BIGNUM *mod = (i & 1) ? mod_v : mod_u;

        *qi = (unsigned char)i;
        if (BN_bn2binpad(decrypt ? a : bb, qb, (int)f->b) < 0 || !round_s(f, s) ||
            !BN_bin2bn(s, (int)f->d, y))
            goto out;
        if (!decrypt) {
            if (!BN_mod_add(c, a, y, mod, bc) || !BN_copy(a, bb) || !BN_copy(bb, c))
                goto out;
        } else {
            if (!BN_mod_sub(c, bb, y, mod, bc) || !BN_copy(bb, a) || !BN_copy(a, c))
                goto out;
        }
    }
    ok = bn_str(a, x, f->u, f->radix) && bn_str(bb, x + f->u, f->v, f->radix);
out:
    mm_free(s);
    BN_CTX_end(bc);
    return ok;
}

/* ---- shapes --------------------------------------------------------------------------- */

/* radix < 64, n <= 4096, t <= 256: 28 bits; the low two bits set tell it from 0 and 1. */
static inline uint32_t pc_tag(unsigned radix, size_t n, size_t t)
{
    return (uint32_t)(radix | n << 6 | t << 19) << 2 | 3;
}

static inline size_t pc_slot(uint32_t tag)
{
    return (uint32_t)(tag * 2654435761u) >> (32 - FF1_PCACHE_BITS); /* Fibonacci */
}

/* The cached shape for tag, or NULL. A slot's bytes are written once, before the release
 * store of its tag, and never again, so a reader that sees the tag reads them whole. */
static inline const ff1_shape *shape_cached(const ff1_key *k, uint32_t tag)
{
    size_t slot = pc_slot(tag);
    if (atomic_load_explicit(&k->pc[slot].tag, memory_order_acquire) != tag)
        return NULL;
    return &k->pc[slot].s;
}

/* Keeps *sh for tag when its slot is free. */
static void shape_store(const ff1_key *k, uint32_t tag, const ff1_shape *sh)
{
    ff1_key *kk = (ff1_key *)k; /* the cache is the key's only mutable part */
    size_t slot = pc_slot(tag);
    uint32_t free_tag = 0;

    if (atomic_compare_exchange_strong_explicit(&kk->pc[slot].tag, &free_tag, 1,
                                                memory_order_acquire, memory_order_relaxed)) {
        kk->pc[slot].s = *sh;
        atomic_store_explicit(&kk->pc[slot].tag, tag, memory_order_release);
    }
}

/* P = [1] [2] [1] [radix]^3 [10] [u mod 256] [n]^4 [t]^4 */
static void p_block(unsigned radix, size_t u, size_t n, size_t t, unsigned char p[16])
{
    p[0] = 1;
    p[1] = 2;
    p[2] = 1;
    p[3] = (unsigned char)(radix >> 16);
    p[4] = (unsigned char)(radix >> 8);
    p[5] = (unsigned char)radix;
    p[6] = 10;
    p[7] = (unsigned char)(u & 0xFF);
    for (int i = 0; i < 4; i++) {
        p[8 + i] = (unsigned char)(n >> (24 - 8 * i));
        p[12 + i] = (unsigned char)(t >> (24 - 8 * i));
    }
}

/* b = ceil(ceil(v log2 radix) / 8), d = 4 ceil(b / 4) + 4, from bits = ceil(v log2 radix) */
static void set_bd(size_t bits, size_t *b, size_t *d)
{
    *b = (bits + 7) / 8;
    *d = 4 * ((*b + 3) / 4) + 4;
}

/* The BIGNUM path's moduli and b, d; P's cipher (f->y0) is computed by the caller. */
static bool bn_setup(ff1_call *f, BN_CTX *bc, BIGNUM *mod_u, BIGNUM *mod_v)
{
    BIGNUM *r = BN_new();
    bool ok = r && BN_set_word(r, f->radix) && BN_set_word(mod_u, (BN_ULONG)f->u) &&
              BN_exp(mod_u, r, mod_u, bc) && BN_set_word(mod_v, (BN_ULONG)f->v) &&
              BN_exp(mod_v, r, mod_v, bc) && BN_sub_word(mod_v, 1);
    BN_free(r);
    if (!ok)
        return false;
    set_bd((size_t)BN_num_bits(mod_v), &f->b, &f->d); /* the bit length of radix^v - 1 */
    return BN_add_word(mod_v, 1);
}

/* radix^n >= 100 */
static bool domain_ok(unsigned radix, size_t n)
{
    uint64_t dom = 1;
    for (size_t i = 0; i < n && dom < 100; i++)
        dom *= radix;
    return dom >= 100;
}

/* The 64-bit path's shape of (radix, n, tlen): the key's cached one, or one worked out in
 * *local (and cached when its slot is free). *out NULL with MM_OK: not on the 64-bit path.
 * Only shapes that passed the domain check are cached, so a cached one skips it. */
static mm_err shape_get(const ff1_key *k, EVP_CIPHER_CTX *c, unsigned radix, size_t n,
                        size_t tlen, ff1_shape *local, const ff1_shape **out)
{
    uint32_t tag = pc_tag(radix, n, tlen);
    size_t u = n / 2, v = n - u;
    uint64_t m64u, m64v;
    size_t b, d;
    unsigned char p[16];

    if ((*out = shape_cached(k, tag)) != NULL)
        return MM_OK;
    if (!domain_ok(radix, n))
        return MM_EINVAL;
    m64u = pow64(radix, u);
    if (!(m64v = pow64(radix, v)))
        return MM_OK;
    /* the bit length of radix^v - 1 is ceil(v log2 radix) */
    set_bd(m64v > 1 ? 64 - (size_t)__builtin_clzll(m64v - 1) : 0, &b, &d);
    *local = (ff1_shape){.mod_u = m64u, .mod_v = m64v, .inv_u = UINT64_MAX / m64u,
                         .inv_v = UINT64_MAX / m64v, .u = (uint8_t)u, .v = (uint8_t)v,
                         .b = (uint8_t)b, .d = (uint8_t)d};
    p_block(radix, u, n, tlen, p);
    if (!ciph(c, p, local->y0))
        return MM_ENOMEM;
    shape_store(k, tag, local);
    *out = local;
    return MM_OK;
}

/* A context for one call: a pool slot's (*slot its index) or, when all are lent, a copy of
 * the key's own (*slot -1). NULL when out of memory. */
static EVP_CIPHER_CTX *ctx_borrow(const ff1_key *k, int *slot)
{
    EVP_CIPHER_CTX *c;

    for (unsigned i = 0, h = ff1_hint; i < FF1_POOL; i++) {
        unsigned j = (h + i) % FF1_POOL;
        if (!atomic_exchange_explicit(&((ff1_key *)k)->pool[j].busy, true,
                                      memory_order_acquire)) {
            *slot = (int)j;
            ff1_hint = j;
            return k->pool[j].c;
        }
    }
    *slot = -1;
    if ((c = EVP_CIPHER_CTX_new()) && !EVP_CIPHER_CTX_copy(c, k->ecb)) {
        EVP_CIPHER_CTX_free(c);
        c = NULL;
    }
    return c;
}

static void ctx_return(const ff1_key *k, EVP_CIPHER_CTX *c, int slot)
{
    if (slot >= 0)
        atomic_store_explicit(&((ff1_key *)k)->pool[slot].busy, false, memory_order_release);
    else
        EVP_CIPHER_CTX_free(c);
}

/* What every call checks of its arguments before it works. */
static mm_err args_ok(unsigned radix, const unsigned char *tweak, size_t tlen,
                      const uint8_t *in, size_t n)
{
    if (radix < 2 || radix > 62 || (tlen && !tweak))
        return MM_EINVAL;
    if (n > FF1_MAX_LEN || tlen > FF1_MAX_TWEAK)
        return MM_ELIMIT;
    if (n < 2) /* u = floor(n/2) must be at least 1 */
        return MM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (in[i] >= radix)
            return MM_EINVAL;
    return MM_OK;
}

/* ---- the call ------------------------------------------------------------------------- */

/* The 64-bit path of one call. */
static mm_err crypt64(EVP_CIPHER_CTX *c, const ff1_shape *sh, unsigned radix,
                      const unsigned char *tweak, size_t tlen, uint8_t *x, bool decrypt)
{
    lane64 l;
    unsigned char io[16];
    bool ok = lane_init(c, &l, sh, radix, tweak, tlen, x) && rounds64(c, &l, 1, decrypt, io);

    if (ok)
        lane_out(&l, radix, x);
    explicit_bzero(io, sizeof(io));
    explicit_bzero(&l, sizeof(l));
    return ok ? MM_OK : MM_ENOMEM;
}

/* The BIGNUM path of one call: any length; CIPH(P) computed here. */
static mm_err crypt_bn(EVP_CIPHER_CTX *c, unsigned radix, const unsigned char *tweak,
                       size_t tlen, uint8_t *x, size_t n, bool decrypt)
{
    mm_err rc = MM_ENOMEM;
    ff1_call f = {.c = c, .radix = radix, .n = n, .u = n / 2, .v = n - n / 2, .t = tlen,
                  .tweak = tweak};
    unsigned char p[16], qbuf[64];
    BN_CTX *bc = NULL;
    BIGNUM *mod_u = NULL, *mod_v = NULL;

    p_block(radix, f.u, n, tlen, p);
    if (!(bc = BN_CTX_new()) || !(mod_u = BN_new()) || !(mod_v = BN_new()) ||
        !bn_setup(&f, bc, mod_u, mod_v) || !ciph(c, p, f.y0))
        goto out;
    f.qlen = (tlen + f.b + 1 + 15) / 16 * 16;
    f.q = f.qlen <= sizeof(qbuf) ? qbuf : mm_malloc(f.qlen);
    if (!f.q)
        goto out;
    memset(f.q, 0, f.qlen);
    if (tlen)
        memcpy(f.q, tweak, tlen);
    if (run_bn(&f, x, decrypt, mod_u, mod_v, bc))
        rc = MM_OK;
out:
    if (f.q && f.q != qbuf)
        mm_free(f.q);
    OPENSSL_cleanse(&f.y0, sizeof(f.y0));
    BN_free(mod_u);
    BN_free(mod_v);
    BN_CTX_free(bc);
    return rc;
}

mm_err ff1_crypt(const ff1_key *k, unsigned radix, const unsigned char *tweak, size_t tlen,
                 const uint8_t *in, size_t n, uint8_t *out, bool decrypt, bool bignum)
{
    mm_err rc;
    ff1_shape local;
    const ff1_shape *sh = NULL;
    EVP_CIPHER_CTX *c;
    int slot;

    if ((rc = args_ok(radix, tweak, tlen, in, n)) != MM_OK)
        return rc;
    if (bignum && !domain_ok(radix, n))
        return MM_EINVAL;
    if (!(c = ctx_borrow(k, &slot)))
        return MM_ENOMEM;
    if (!bignum && (rc = shape_get(k, c, radix, n, tlen, &local, &sh)) != MM_OK)
        goto out;
    if (out != in)
        memcpy(out, in, n);
    rc = sh ? crypt64(c, sh, radix, tweak, tlen, out, decrypt)
            : crypt_bn(c, radix, tweak, tlen, out, n, decrypt);
out:
    if (sh == &local)
        OPENSSL_cleanse(&local, sizeof(local));
    ctx_return(k, c, slot);
    return rc;
}

mm_err ff1_encrypt_lanes(const ff1_key *k, ff1_lane *v, size_t n)
{
    mm_err rc = MM_OK;
    lane64 l[FF1_LANES];
    ff1_shape local[FF1_LANES];
    unsigned char io[16 * FF1_LANES];
    size_t at[FF1_LANES], cnt = 0; /* lane i is value at[i] */
    EVP_CIPHER_CTX *c;
    int slot;

    if (n > FF1_LANES)
        return MM_ELIMIT;
    for (size_t j = 0; j < n; j++)
        if ((rc = args_ok(v[j].radix, v[j].tweak, v[j].tlen, v[j].x, v[j].n)) != MM_OK)
            return rc;
    if (!(c = ctx_borrow(k, &slot)))
        return MM_ENOMEM;
    for (size_t j = 0; j < n; j++)
        local[j].u = 0; /* not worked out */
    for (size_t j = 0; j < n && rc == MM_OK; j++) {
        const ff1_shape *sh;
        if ((rc = shape_get(k, c, v[j].radix, v[j].n, v[j].tlen, &local[j], &sh)) != MM_OK)
            break;
        if (!sh) /* past the 64-bit path: on its own */
            rc = crypt_bn(c, v[j].radix, v[j].tweak, v[j].tlen, v[j].x, v[j].n, false);
        else if (at[cnt] = j, !lane_init(c, &l[cnt++], sh, v[j].radix, v[j].tweak, v[j].tlen,
                                         v[j].x))
            rc = MM_ENOMEM;
    }
    if (rc == MM_OK && cnt && !rounds64(c, l, cnt, false, io))
        rc = MM_ENOMEM;
    for (size_t i = 0; i < cnt && rc == MM_OK; i++)
        lane_out(&l[i], v[at[i]].radix, v[at[i]].x);
    explicit_bzero(io, 16 * cnt);
    explicit_bzero(l, sizeof(l[0]) * cnt);
    for (size_t j = 0; j < n; j++) /* shapes worked out here rather than read from the cache */
        if (local[j].u)
            explicit_bzero(&local[j], sizeof(local[j]));
    ctx_return(k, c, slot);
    return rc;
}

mm_err ff1_encrypt(const ff1_key *k, unsigned radix, const unsigned char *tweak, size_t tlen,
                   const uint8_t *in, size_t n, uint8_t *out)
{
    return ff1_crypt(k, radix, tweak, tlen, in, n, out, false, false);
}

mm_err ff1_decrypt(const ff1_key *k, unsigned radix, const unsigned char *tweak, size_t tlen,
                   const uint8_t *in, size_t n, uint8_t *out)
{
    return ff1_crypt(k, radix, tweak, tlen, in, n, out, true, false);
}
