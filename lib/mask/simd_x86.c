/* lib/mask: the x86-64 block classifiers (simd_int.h) for AVX2 and AVX-512, compiled with
 * target attributes so the build stays portable, and the choice among them at run time. */
#include "mask/mask.h"
#include "mask/simd_int.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SIMD_X86 1

/* simdjson's tables: a byte is whitespace when the entry at its low nibble is the byte
 * itself; one of {}[]:, when the entry equals the byte with bit 5 set ('[' -> '{'). The op
 * table also takes 0x0C and 0x1A, control bytes that jskim refuses by their value. */
#define WS_TABLE ' ', 100, 100, 100, 17, 100, 113, 2, 100, '\t', '\n', 112, 100, '\r', 100, 100
#define OP_TABLE 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ':', '{', ',', '}', 0, 0

/* The prefix XOR, one per target: compiled for the caller's target it is VEX-encoded and
 * inlined (a legacy-SSE call from AVX code stalls on the upper register halves). */
#define PXOR_CLMUL(name, tgt)                                                                 \
    __attribute__((target(tgt))) static inline uint64_t name(uint64_t x)                      \
    {                                                                                         \
        __m128i v = _mm_set_epi64x(0, (long long)x);                                          \
        return (uint64_t)_mm_cvtsi128_si64(                                                   \
            _mm_clmulepi64_si128(v, _mm_set1_epi8((char)0xFF), 0));                           \
    }
PXOR_CLMUL(pxor_avx2, "avx2,pclmul,popcnt")
PXOR_CLMUL(pxor_avx512, "avx512f,avx512bw,pclmul,popcnt")

__attribute__((target("avx2,pclmul,popcnt")))
static inline uint64_t mask2(__m256i lo, __m256i hi)
{
    return (uint32_t)_mm256_movemask_epi8(lo) | (uint64_t)(uint32_t)_mm256_movemask_epi8(hi) << 32;
}

__attribute__((target("avx2,pclmul,popcnt"))) void sk_classify_avx2(const unsigned char *p,
                                                                     unsigned first, sk_carry *c,
                                                                     sk_block *b)
{
    const __m256i wst = _mm256_setr_epi8(WS_TABLE, WS_TABLE), opt = _mm256_setr_epi8(OP_TABLE, OP_TABLE);
    const __m256i q = _mm256_set1_epi8('"'), bsl = _mm256_set1_epi8('\\'),
                  nlc = _mm256_set1_epi8('\n'), x20 = _mm256_set1_epi8(0x20),
                  x1f = _mm256_set1_epi8(0x1f);
    __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    uint64_t quote = mask2(_mm256_cmpeq_epi8(lo, q), _mm256_cmpeq_epi8(hi, q));
    uint64_t bs = mask2(_mm256_cmpeq_epi8(lo, bsl), _mm256_cmpeq_epi8(hi, bsl));
    uint64_t ws = mask2(_mm256_cmpeq_epi8(_mm256_shuffle_epi8(wst, lo), lo),
                        _mm256_cmpeq_epi8(_mm256_shuffle_epi8(wst, hi), hi));
    uint64_t op = mask2(_mm256_cmpeq_epi8(_mm256_shuffle_epi8(opt, lo), _mm256_or_si256(lo, x20)),
                        _mm256_cmpeq_epi8(_mm256_shuffle_epi8(opt, hi), _mm256_or_si256(hi, x20)));
    uint64_t ctl = mask2(_mm256_cmpeq_epi8(_mm256_min_epu8(lo, x1f), lo),
                         _mm256_cmpeq_epi8(_mm256_min_epu8(hi, x1f), hi));
    uint64_t nl = mask2(_mm256_cmpeq_epi8(lo, nlc), _mm256_cmpeq_epi8(hi, nlc));
    sk_finish(quote, bs, ws, op, ctl, nl, first, pxor_avx2, c, b);
}

__attribute__((target("avx512f,avx512bw,pclmul,popcnt"))) void sk_classify_avx512(const unsigned char *p,
                                                                            unsigned first,
                                                                            sk_carry *c,
                                                                            sk_block *b)
{
    const __m512i wst = _mm512_broadcast_i32x4(_mm_setr_epi8(WS_TABLE));
    const __m512i opt = _mm512_broadcast_i32x4(_mm_setr_epi8(OP_TABLE));
    __m512i v = _mm512_loadu_si512((const void *)p);
    uint64_t quote = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('"'));
    uint64_t bs = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\\'));
    uint64_t ws = _mm512_cmpeq_epi8_mask(_mm512_shuffle_epi8(wst, v), v);
    uint64_t op = _mm512_cmpeq_epi8_mask(_mm512_shuffle_epi8(opt, v),
                                         _mm512_or_si512(v, _mm512_set1_epi8(0x20)));
    uint64_t ctl = _mm512_cmple_epu8_mask(v, _mm512_set1_epi8(0x1f));
    uint64_t nl = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\n'));
    sk_finish(quote, bs, ws, op, ctl, nl, first, pxor_avx512, c, b);
}

/* byte - lo <= hi - lo, unsigned: the bytes in [lo, hi] */
__attribute__((target("avx2"))) static inline __m256i in_range2(__m256i v, char lo, char hi)
{
    __m256i d = _mm256_sub_epi8(v, _mm256_set1_epi8(lo));
    return _mm256_cmpeq_epi8(_mm256_min_epu8(d, _mm256_set1_epi8((char)(hi - lo))), d);
}

__attribute__((target("avx2"))) static inline __m256i alnum2(__m256i v)
{
    /* letters: bit 5 folds the cases together */
    __m256i folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
    return _mm256_or_si256(in_range2(v, '0', '9'), in_range2(folded, 'a', 'z'));
}

/* The trigger bytes by two nibble lookups (simd_int.h: det_ttab): a byte is one when the
 * entries of its low and high nibble share a bit. */
__attribute__((target("avx2"))) static inline void masks16(__m128i v, __m128i tlo, __m128i thi,
                                                          uint32_t *alnum, uint32_t *hits)
{
    const __m128i nib = _mm_set1_epi8(0x0f);
    __m128i d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    __m128i f = _mm_sub_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8('a'));
    __m128i a = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d),
                             _mm_cmpeq_epi8(_mm_min_epu8(f, _mm_set1_epi8(25)), f));
    __m128i t = _mm_and_si128(_mm_shuffle_epi8(tlo, _mm_and_si128(v, nib)),
                              _mm_shuffle_epi8(thi, _mm_and_si128(_mm_srli_epi16(v, 4), nib)));
    *alnum = (uint32_t)_mm_movemask_epi8(a);
    *hits = ~(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(t, _mm_setzero_si128())) & 0xffffu;
}

__attribute__((target("avx2"))) static inline void masks32(__m256i v, __m256i tlo, __m256i thi,
                                                          uint64_t *alnum, uint64_t *hits)
{
    const __m256i nib = _mm256_set1_epi8(0x0f);
    __m256i t = _mm256_and_si256(_mm256_shuffle_epi8(tlo, _mm256_and_si256(v, nib)),
                                 _mm256_shuffle_epi8(thi, _mm256_and_si256(_mm256_srli_epi16(v, 4),
                                                                           nib)));
    *alnum = (uint32_t)_mm256_movemask_epi8(alnum2(v));
    *hits = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(t, _mm256_setzero_si256()));
}

/* Short windows read only p[0..n): two loads that overlap (the second ends at p + n), their
 * masks joined at the shift that puts the second where it lies; under 16 bytes, a copy. */
__attribute__((target("avx2,pclmul,popcnt"))) void det_masks_avx2(const unsigned char *p,
                                                                   size_t n,
                                                                   const unsigned char *ttab,
                                                                   uint64_t *alnum,
                                                                   uint64_t *hits)
{
    const __m128i tlo = _mm_loadu_si128((const __m128i *)(const void *)ttab);
    const __m128i thi = _mm_loadu_si128((const __m128i *)(const void *)(ttab + 16));
    if (n >= 32) {
        const __m256i tlo2 = _mm256_broadcastsi128_si256(tlo);
        const __m256i thi2 = _mm256_broadcastsi128_si256(thi);
        uint64_t a0, h0, a1, h1;
        size_t sh = n >= 64 ? 32 : n - 32;
        masks32(_mm256_loadu_si256((const __m256i *)(const void *)p), tlo2, thi2, &a0, &h0);
        masks32(_mm256_loadu_si256((const __m256i *)(const void *)(p + sh)), tlo2, thi2, &a1,
                &h1);
        *alnum = a0 | a1 << sh;
        *hits = h0 | h1 << sh;
        return;
    }
    uint32_t a0, h0, a1, h1;
    size_t sh = n >= 16 ? n - 16 : 0;
    unsigned char pad[16];
    if (n < 16) { /* zeros after the end, cut off below */
        memset(pad, 0, sizeof(pad));
        memcpy(pad, p, n);
        p = pad;
    }
    masks16(_mm_loadu_si128((const __m128i *)(const void *)p), tlo, thi, &a0, &h0);
    masks16(_mm_loadu_si128((const __m128i *)(const void *)(p + sh)), tlo, thi, &a1, &h1);
    const uint64_t in = (1ull << n) - 1; /* n < 32 */
    *alnum = (a0 | (uint64_t)a1 << sh) & in;
    *hits = (h0 | (uint64_t)h1 << sh) & in;
}

/* A masked load reads only p[0..n) (the lanes masked out are not read, so they cannot
 * fault). */
__attribute__((target("avx512f,avx512bw"))) void det_masks_avx512(const unsigned char *p,
                                                                  size_t n,
                                                                  const unsigned char *ttab,
                                                                  uint64_t *alnum,
                                                                  uint64_t *hits)
{
    const __m512i nib = _mm512_set1_epi8(0x0f);
    const __m512i tlo = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)ttab));
    const __m512i thi =
        _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(ttab + 16)));
    __mmask64 in = n >= 64 ? ~0ull : (1ull << n) - 1;
    __m512i v = _mm512_maskz_loadu_epi8(in, (const void *)p);
    __m512i folded = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
    __m512i t = _mm512_and_si512(_mm512_shuffle_epi8(tlo, _mm512_and_si512(v, nib)),
                                 _mm512_shuffle_epi8(thi, _mm512_and_si512(_mm512_srli_epi16(v, 4),
                                                                           nib)));
    *alnum = (_mm512_cmple_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8('0')), _mm512_set1_epi8(9)) |
              _mm512_cmple_epu8_mask(_mm512_sub_epi8(folded, _mm512_set1_epi8('a')),
                                     _mm512_set1_epi8(25))) & in;
    *hits = _mm512_test_epi8_mask(t, t) & in;
}
#endif

det_mask_fn simd_det_masks(simd_level l)
{
#ifdef SIMD_X86
    if (l == SIMD_AVX512)
        return det_masks_avx512;
    if (l == SIMD_AVX2)
        return det_masks_avx2;
#else
    (void)l;
#endif
    return NULL;
}

simd_level simd_best(void)
{
#ifdef SIMD_X86
    static int best = -1; /* the CPU does not change: asked once (a benign race) */
    if (best < 0) {
        __builtin_cpu_init();
        /* jskim, which runs with either classifier, is built for popcnt, bmi and bmi2
         * (SK_TARGET): every AVX2 CPU has them, a hypervisor may still hide them */
        bool scalar = __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi") &&
                      __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("pclmul");
        if (scalar && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
            best = SIMD_AVX512;
        else if (scalar && __builtin_cpu_supports("avx2"))
            best = SIMD_AVX2;
        else
            best = SIMD_OFF;
    }
    return (simd_level)best;
#else
    return SIMD_OFF;
#endif
}

simd_level simd_chosen(void)
{
    simd_level best = simd_best(), want = best;
    const char *e = getenv("MM_SIMD");
    if (e && strcmp(e, "off") == 0)
        want = SIMD_OFF;
    else if (e && strcmp(e, "avx2") == 0)
        want = SIMD_AVX2;
    return want < best ? want : best;
}

sk_classify_fn simd_classifier(simd_level l)
{
#ifdef SIMD_X86
    if (l == SIMD_AVX512)
        return sk_classify_avx512;
    if (l == SIMD_AVX2)
        return sk_classify_avx2;
#else
    (void)l;
#endif
    return NULL;
}

const char *simd_name(simd_level l)
{
    return l == SIMD_AVX512 ? "avx512" : l == SIMD_AVX2 ? "avx2" : "off";
}

const char *mm_mask_simd_path(void)
{
    return simd_name(simd_chosen());
}
