#ifndef CUPLINK_SELECT_H
#define CUPLINK_SELECT_H
#include <stdint.h>

// x86-64 only: elsewhere UplinkCodec uses its Swift pass.
#if defined(__x86_64__)

/// 1 when this CPU runs cuplink_ef_add_scan (x86-64 with AVX2), detected at run time.
int cuplink_select_avx2(void);

/// The error-feedback add-and-select pass of top-k, exactly as the Swift `addAndScan` of
/// UplinkCodec's TopKSelection computes it: acc[i] += update[i] for lo ≤ i < hi; in groups of
/// 16 from lo, while the count before a group is at most `cap`, each new value whose magnitude
/// bits (bit pattern & 0x7FFFFFFF) are at least `t` has its position written to ip and its bit
/// pattern to bp, in increasing order (ip and bp hold cap + 16 entries); the values after the
/// last whole group are tested one by one the same way. Returns the count (more than cap: the
/// threshold was too low), and in *largest the largest magnitude bits among the candidates
/// written and the values after the last group, or t if larger.
int64_t cuplink_ef_add_scan(const float *update, float *acc, int64_t lo, int64_t hi, uint32_t t, int64_t cap,
                         int64_t *ip, uint32_t *bp, uint32_t *largest);

#endif

#endif
