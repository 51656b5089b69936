// The convolution kernels of the simple CNN (UplinkSimulation's Convolution) for AVX2: eight
// floats per instruction, three-operand forms, sixteen vector registers, where the package's
// baseline x86-64 target has only SSE2. Compiled for AVX2 with a target attribute and chosen at
// run time, so the rest of the package needs no flags.
//
// Every output element gets the same terms in the same order as the Swift kernels give it, each
// a multiply then an add: IEEE arithmetic per lane does not depend on the vector width, so the
// results are bit-identical on machines with and without AVX2 (tested). FMA would round once
// instead of twice and is therefore kept out (no "fma" target, contraction off).
#include "cuplink_conv.h"
#include <string.h>

#pragma clang fp contract(off)

#if defined(__x86_64__)

int cuplink_conv_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

typedef float v8f __attribute__((ext_vector_type(8)));
typedef float v4f __attribute__((ext_vector_type(4)));

// Helpers are inlined into the AVX2 entry points, and compiled for AVX2 themselves so that
// their 256-bit vector arguments need no ABI change.
#define INLINE static inline __attribute__((always_inline, target("avx2")))

INLINE v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
INLINE v4f load4(const float *p) { v4f v; memcpy(&v, p, sizeof v); return v; }
INLINE void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }
INLINE void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

// ROWS output channels at once, all sharing each input load; ROWS is a constant after inlining,
// so the accumulators live in registers.
INLINE void forward_rows(const float *in, const long *off, long taps, const float *w, const float *bias,
                         float *out, long out_stride, long n, const int ROWS) {
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        v8f a[8];
        for (int c = 0; c < ROWS; c++) a[c] = (v8f)bias[c];
        for (long r = 0; r < taps; r++) {
            v8f x = load8(in + off[r] + j);
            for (int c = 0; c < ROWS; c++) a[c] = a[c] + (v8f)w[c * taps + r] * x;
        }
        for (int c = 0; c < ROWS; c++) store8(out + c * out_stride + j, a[c]);
    }
    if (j + 4 <= n) {
        v4f a[8];
        for (int c = 0; c < ROWS; c++) a[c] = (v4f)bias[c];
        for (long r = 0; r < taps; r++) {
            v4f x = load4(in + off[r] + j);
            for (int c = 0; c < ROWS; c++) a[c] = a[c] + (v4f)w[c * taps + r] * x;
        }
        for (int c = 0; c < ROWS; c++) store4(out + c * out_stride + j, a[c]);
        j += 4;
    }
    for (; j < n; j++) {
        for (int c = 0; c < ROWS; c++) {
            float s = bias[c];
            for (long r = 0; r < taps; r++) s = s + w[c * taps + r] * in[off[r] + j];
            out[c * out_stride + j] = s;
        }
    }
}

__attribute__((target("avx2")))
void cuplink_conv_forward(const float *in, const long *off, long taps, const float *w, const float *bias,
                          long outputs, float *out, long out_stride, long n) {
    for (long co = 0; co < outputs;) {
        long rows = outputs - co < 8 ? outputs - co : 8;
        const float *wc = w + co * taps, *bc = bias + co;
        float *oc = out + co * out_stride;
        switch (rows) {
        case 8: forward_rows(in, off, taps, wc, bc, oc, out_stride, n, 8); break;
        case 7: forward_rows(in, off, taps, wc, bc, oc, out_stride, n, 7); break;
        case 6: forward_rows(in, off, taps, wc, bc, oc, out_stride, n, 6); break;
        case 5: forward_rows(in, off, taps, wc, bc, oc, out_stride, n, 5); break;
        case 4: forward_rows(in, off, taps, wc, bc, oc, out_stride, n, 4); break;
        case 3: forward_rows(in, off, taps, wc, bc, oc, out_stride, n, 3); break;
        case 2: forward_rows(in, off, taps, wc, bc, oc, out_stride, n, 2); break;
        default: forward_rows(in, off, taps, wc, bc, oc, out_stride, n, 1); break;
        }
        co += rows;
    }
}

// Lane sums added in lane order, as Swift's SIMD8.sum() adds them.
INLINE float lanes(v8f a) {
    float s = a[0];
    for (int l = 1; l < 8; l++) s = s + a[l];
    return s;
}

// ROWS output channels × TAPS taps of dot products at once: ROWS + TAPS loads per
// ROWS · TAPS multiply-adds.
INLINE void dots(const float *delta, long delta_stride, const float *in, const long *off, long taps, long n,
                 float *g, const int ROWS, const int TAPS) {
    v8f a[2][4];
    for (int c = 0; c < ROWS; c++)
        for (int t = 0; t < TAPS; t++) a[c][t] = (v8f)0.0f;
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f d[2], x[4];
        for (int c = 0; c < ROWS; c++) d[c] = load8(delta + c * delta_stride + i);
        for (int t = 0; t < TAPS; t++) x[t] = load8(in + off[t] + i);
        for (int c = 0; c < ROWS; c++)
            for (int t = 0; t < TAPS; t++) a[c][t] = a[c][t] + d[c] * x[t];
    }
    for (int c = 0; c < ROWS; c++) {
        for (int t = 0; t < TAPS; t++) {
            float s = lanes(a[c][t]);
            const float *dc = delta + c * delta_stride, *xt = in + off[t];
            for (long k = i; k < n; k++) s = s + dc[k] * xt[k];
            g[c * taps + t] += s;
        }
    }
}

__attribute__((target("avx2")))
void cuplink_conv_weight_gradient(const float *delta, long delta_stride, long outputs, const float *in,
                                  const long *off, long taps, long n, float *g) {
    long co = 0;
    for (; co + 2 <= outputs; co += 2) {
        long r = 0;
        for (; r + 4 <= taps; r += 4) dots(delta + co * delta_stride, delta_stride, in, off + r, taps, n, g + co * taps + r, 2, 4);
        for (; r < taps; r++) dots(delta + co * delta_stride, delta_stride, in, off + r, taps, n, g + co * taps + r, 2, 1);
    }
    for (; co < outputs; co++) {
        long r = 0;
        for (; r + 4 <= taps; r += 4) dots(delta + co * delta_stride, delta_stride, in, off + r, taps, n, g + co * taps + r, 1, 4);
        for (; r < taps; r++) dots(delta + co * delta_stride, delta_stride, in, off + r, taps, n, g + co * taps + r, 1, 1);
    }
}

// CH input channels of one position block at once: each padded-delta load serves CH
// multiply-adds, and the CH sums are independent chains.
INLINE void back_block(const float *padded, long row, long outputs, const float *w, long channels, long area,
                       const long *shift, float *back, long back_stride, long p, const int CH, const int WIDE) {
    if (WIDE) {
        v8f v[8];
        for (int c = 0; c < CH; c++) v[c] = load8(back + c * back_stride + p);
        for (long co = 0; co < outputs; co++) {
            const float *pd = padded + co * row + p;
            const float *wc = w + co * channels * area;
            for (long t = 0; t < area; t++) {
                v8f x = load8(pd - shift[t]);
                for (int c = 0; c < CH; c++) v[c] = v[c] + (v8f)wc[c * area + t] * x;
            }
        }
        for (int c = 0; c < CH; c++) store8(back + c * back_stride + p, v[c]);
    } else {
        for (int c = 0; c < CH; c++) {
            float v = back[c * back_stride + p];
            for (long co = 0; co < outputs; co++) {
                const float *pd = padded + co * row + p;
                const float *wc = w + co * channels * area;
                for (long t = 0; t < area; t++) v = v + wc[c * area + t] * pd[-shift[t]];
            }
            back[c * back_stride + p] = v;
        }
    }
}

__attribute__((target("avx2")))
void cuplink_conv_input_gradient(const float *delta, long delta_stride, long outputs, const float *w,
                                 long channels, long area, const long *off, float *back, long back_stride,
                                 long back_length, long n, long span, float *padded) {
    long row = span + (n > back_length ? n : back_length) + 8;
    // padded[co·row + span + q] = delta[co][q] for 0 ≤ q < n, zero elsewhere: a term whose
    // delta index is out of range adds w · 0 = ±0, which leaves the sum as it was (a sum that
    // starts at +0 never becomes −0).
    for (long co = 0; co < outputs; co++) {
        float *pr = padded + co * row;
        memset(pr, 0, (size_t)row * sizeof(float));
        memcpy(pr + span, delta + co * delta_stride, (size_t)n * sizeof(float));
    }
    // In-plane tap shifts, the same for every input channel: channel 0's offsets.
    const long *shift = off;
    const float *base = padded + span;
    for (long ci = 0; ci < channels;) {
        long ch = channels - ci < 8 ? channels - ci : 8;
        const float *wc = w + ci * area;
        float *bc = back + ci * back_stride;
        long p = 0;
#define BACK(CH, WIDE) back_block(base, row, outputs, wc, channels, area, shift, bc, back_stride, p, CH, WIDE)
#define BACK_ALL(WIDE) switch (ch) { \
        case 8: BACK(8, WIDE); break; case 7: BACK(7, WIDE); break; case 6: BACK(6, WIDE); break; \
        case 5: BACK(5, WIDE); break; case 4: BACK(4, WIDE); break; case 3: BACK(3, WIDE); break; \
        case 2: BACK(2, WIDE); break; default: BACK(1, WIDE); break; }
        for (; p + 8 <= back_length; p += 8) { BACK_ALL(1) }
        for (; p < back_length; p++) { BACK_ALL(0) }
#undef BACK_ALL
#undef BACK
        ci += ch;
    }
}

#endif
