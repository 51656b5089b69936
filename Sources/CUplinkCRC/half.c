// binary16 <-> binary32 with the CPU's F16C instructions, detected at run time. C, not Swift,
// for the target attributes (the package is built for baseline x86-64, which has no F16C).
#include "cuplink_half.h"
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

int cuplink_half_hardware(void) {
    __builtin_cpu_init();
    return (__builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c")) ? 1 : 0;
}

__attribute__((target("avx,f16c")))
void cuplink_half_to_float(const uint8_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = _cvtsh_ss(h);
    }
}

__attribute__((target("avx,f16c")))
int cuplink_float_to_half(const float *x, uint8_t *out, float *err, size_t n) {
    const __m128i exponent = _mm_set1_epi16(0x7C00);
    __m128i bad = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(out + 2 * i), h);
        bad = _mm_or_si128(bad, _mm_cmpeq_epi16(_mm_and_si128(h, exponent), exponent));
        if (err) _mm256_storeu_ps(err + i, _mm256_sub_ps(v, _mm256_cvtph_ps(h)));
    }
    int any = _mm_movemask_epi8(bad) != 0;
    for (; i < n; i++) {
        float v = x[i];
        uint16_t h = _cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        memcpy(out + 2 * i, &h, 2);
        any |= (h & 0x7C00) == 0x7C00;
        if (err) err[i] = v - _cvtsh_ss(h);
    }
    return any;
}

#else

int cuplink_half_hardware(void) { return 0; }
void cuplink_half_to_float(const uint8_t *src, float *dst, size_t n) { (void)src; (void)dst; (void)n; }
int cuplink_float_to_half(const float *x, uint8_t *out, float *err, size_t n) { (void)x; (void)out; (void)err; (void)n; return 0; }

#endif
