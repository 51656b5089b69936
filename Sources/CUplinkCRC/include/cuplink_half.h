#ifndef CUPLINK_HALF_H
#define CUPLINK_HALF_H
#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU converts between binary16 and binary32 in hardware (x86-64 F16C with AVX),
/// detected at run time; 0 otherwise (the caller then uses its software conversion).
int cuplink_half_hardware(void);

/// dst[i] = the binary32 value of the little-endian binary16 at src + 2i, for i < n (exact).
/// Only call it when cuplink_half_hardware() returned 1.
void cuplink_half_to_float(const uint8_t *src, float *dst, size_t n);

/// Writes the binary16 nearest to x[i] (ties to even; finite inputs only) little-endian at
/// out + 2i and, when err is not NULL, err[i] = x[i] − that value (err may be x itself).
/// Returns 1 when some result has an all-ones exponent (the input was too large for binary16).
/// Only call it when cuplink_half_hardware() returned 1.
int cuplink_float_to_half(const float *x, uint8_t *out, float *err, size_t n);

#endif
