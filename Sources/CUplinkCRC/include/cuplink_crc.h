#ifndef CUPLINK_CRC_H
#define CUPLINK_CRC_H
#include <stddef.h>
#include <stdint.h>
#include "cuplink_half.h"
#include "cuplink_conv.h"
#include "cuplink_select.h"

/// 1 when this CPU has CRC-32C instructions (x86-64 SSE 4.2, ARMv8 CRC), detected at run time.
int cuplink_crc32c_hardware(void);

/// Extends the *register* value `crc` (not inverted: the caller applies the initial and final
/// XOR) over `length` bytes with the CPU's CRC-32C instructions. Only call it when
/// cuplink_crc32c_hardware() returned 1.
uint32_t cuplink_crc32c_extend(uint32_t crc, const uint8_t *bytes, size_t length);

#endif
