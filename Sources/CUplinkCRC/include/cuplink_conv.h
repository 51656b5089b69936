#ifndef CUPLINK_CONV_H
#define CUPLINK_CONV_H
#include <stddef.h>

// x86-64 only: elsewhere UplinkSimulation uses its Swift kernels.
#if defined(__x86_64__)

/// 1 when this CPU runs the convolution kernels below (x86-64 with AVX2), detected at run time.
/// Each kernel computes exactly what the Swift kernels of `Convolution` (UplinkSimulation)
/// compute, bit for bit: the same terms in the same order, multiply then add (no FMA); only
/// the vector width and the blocking differ.
int cuplink_conv_avx2(void);

/// out[co·out_stride + j] = bias[co] + Σ_r w[co·taps + r] · in[off[r] + j] for co < outputs,
/// j < n, the taps added in order r = 0, 1, …
void cuplink_conv_forward(const float *in, const long *off, long taps, const float *w, const float *bias,
                          long outputs, float *out, long out_stride, long n);

/// g[co·taps + r] += Σ_j delta[co·delta_stride + j] · in[off[r] + j], each sum formed as eight
/// lane sums over j < n − n mod 8 (lane l takes j ≡ l mod 8), the lanes added in order, then
/// the last n mod 8 terms one by one.
void cuplink_conv_weight_gradient(const float *delta, long delta_stride, long outputs, const float *in,
                                  const long *off, long taps, long n, float *g);

/// back[ci·back_stride + p] += Σ_co Σ_t w[(co·channels + ci)·area + t] · delta[co·delta_stride + p − s_t]
/// over the terms with 0 ≤ p − s_t < n, where s_t = off[ci·area + t] − ci·back_stride, added
/// co by co and tap by tap in order; p < back_length. `padded` is scratch for
/// outputs · (span + max(n, back_length) + 8) floats, span = the largest s_t plus one.
void cuplink_conv_input_gradient(const float *delta, long delta_stride, long outputs, const float *w,
                                 long channels, long area, const long *off, float *back, long back_stride,
                                 long back_length, long n, long span, float *padded);

#endif

#endif
