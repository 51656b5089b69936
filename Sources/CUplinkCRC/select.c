// The error-feedback add-and-select pass of top-k (UplinkCodec's TopKSelection.addAndScan) for
// AVX2: eight floats per instruction where the package's baseline x86-64 target has SSE2 (four).
// Compiled for AVX2 with a target attribute and chosen at run time. The sums are the same IEEE
// additions lane by lane, so the residual, the candidates and their order are identical to the
// Swift pass (tested).
#include "cuplink_select.h"

#if defined(__x86_64__)
#include <immintrin.h>

int cuplink_select_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

#define AVX2 __attribute__((target("avx2")))

// acc[g..<g+8] += update[g..<g+8]; returns the lanes whose new key is ≥ t (key > t − 1, signed:
// keys are below 2^31) as all-ones.
static inline __attribute__((always_inline)) AVX2 __m256i step(const float *u, float *a, int64_t g, __m256i t1, __m256i magnitude) {
    __m256 v = _mm256_add_ps(_mm256_loadu_ps(a + g), _mm256_loadu_ps(u + g));
    _mm256_storeu_ps(a + g, v);
    return _mm256_cmpgt_epi32(_mm256_and_si256(_mm256_castps_si256(v), magnitude), t1);
}

static inline __attribute__((always_inline)) int64_t emit(const float *acc, int64_t g, uint32_t mask, int64_t c,
                                                       int64_t *ip, uint32_t *bp, uint32_t *m) {
    while (mask) {
        int64_t j = g + __builtin_ctz(mask);
        uint32_t b;
        __builtin_memcpy(&b, acc + j, 4);
        ip[c] = j;
        bp[c] = b;
        uint32_t key = b & 0x7FFFFFFFu;
        *m = key > *m ? key : *m;
        c += 1;
        mask &= mask - 1;
    }
    return c;
}

AVX2 int64_t cuplink_ef_add_scan(const float *update, float *acc, int64_t lo, int64_t hi, uint32_t t, int64_t cap,
                              int64_t *ip, uint32_t *bp, uint32_t *largest) {
    const __m256i t1 = _mm256_set1_epi32((int32_t)(t - 1u));
    const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
    int64_t c = 0;
    uint32_t m = t;
    int64_t g = lo;
    const int64_t groups = lo + ((hi - lo) / 16) * 16;
    // Two groups of 16 per iteration; each group is emitted under the Swift pass's rule (only
    // while the count before it is at most cap).
    for (; g + 32 <= groups; g += 32) {
        __m256i h0 = step(update, acc, g, t1, magnitude), h1 = step(update, acc, g + 8, t1, magnitude);
        __m256i h2 = step(update, acc, g + 16, t1, magnitude), h3 = step(update, acc, g + 24, t1, magnitude);
        __m256i any = _mm256_or_si256(_mm256_or_si256(h0, h1), _mm256_or_si256(h2, h3));
        if (__builtin_expect(!_mm256_testz_si256(any, any), 0)) {
            uint32_t low = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(h0))
                         | (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(h1)) << 8;
            uint32_t high = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(h2))
                          | (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(h3)) << 8;
            if (low && c <= cap) c = emit(acc, g, low, c, ip, bp, &m);
            if (high && c <= cap) c = emit(acc, g + 16, high, c, ip, bp, &m);
        }
    }
    for (; g < groups; g += 16) {
        __m256i h0 = step(update, acc, g, t1, magnitude), h1 = step(update, acc, g + 8, t1, magnitude);
        uint32_t mask = (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(h0))
                      | (uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(h1)) << 8;
        if (mask && c <= cap) c = emit(acc, g, mask, c, ip, bp, &m);
    }
    for (; g < hi; g++) {
        acc[g] += update[g];
        uint32_t b;
        __builtin_memcpy(&b, acc + g, 4);
        uint32_t key = b & 0x7FFFFFFFu;
        m = key > m ? key : m;
        if (key >= t && c <= cap) {
            ip[c] = g;
            bp[c] = b;
            c += 1;
        }
    }
    *largest = m;
    return c;
}

#endif
