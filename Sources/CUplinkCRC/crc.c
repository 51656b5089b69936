// CRC-32C with the CPU's instructions: x86-64 SSE 4.2 `crc32` and ARMv8 `crc32c*`, both the
// Castagnoli polynomial in reflected form, so they compute exactly what the software table in
// CRC32C.swift computes. Detection is at run time; the functions are compiled for the
// instruction set with a target attribute, so the rest of the package needs no flags.
#include "cuplink_crc.h"
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)

int cuplink_crc32c_hardware(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

// One stream: 8 bytes per instruction, bounded by its 3-cycle latency.
__attribute__((target("sse4.2")))
static uint32_t extend1(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p++);
        n--;
    }
    return c32;
}

// The register advanced over 8 zero bytes: multiplication by x^64 mod P.
__attribute__((target("sse4.2")))
static uint32_t shift8(uint32_t crc) {
    return (uint32_t)__builtin_ia32_crc32di(crc, 0);
}

// Multiplication in GF(2)[x]/P of two reflected 32-bit values (bitwise; used a few times per
// call only).
static uint32_t gf_multiply(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (int i = 0; i < 32; i++) {
        if (b & 0x80000000u) product ^= a;
        b <<= 1;
        a = (a & 1) ? (a >> 1) ^ 0x82F63B78u : a >> 1;
    }
    return product;
}

// x^(8·n) mod P in reflected form: the operator that advances a CRC register over n zero bytes
// is multiplication by it.
__attribute__((target("sse4.2")))
static uint32_t zeros_operator(size_t n) {
    // x^(8·8) mod P = crc32 register advance over 8 zero bytes applied to x^0 (0x80000000).
    uint32_t result = 0x80000000u;  // x^0
    uint32_t square = shift8(0x80000000u);  // x^64
    size_t words = n / 8;
    while (words) {
        if (words & 1) result = gf_multiply(result, square);
        square = gf_multiply(square, square);
        words >>= 1;
    }
    for (size_t i = 0; i < n % 8; i++) result = gf_multiply(result, 0x00800000u);  // x^8
    return result;
}

#define BLOCK 4096

// Three independent streams over consecutive blocks hide the instruction's latency (three in
// flight, one issued per cycle); the register is linear in its start value and the data, so
// crc(A‖B‖C) = (crc(A)·x^(8|B|) ⊕ crc₀(B))·x^(8|C|) ⊕ crc₀(C), crc₀ starting from 0.
__attribute__((target("sse4.2")))
uint32_t cuplink_crc32c_extend(uint32_t crc, const uint8_t *p, size_t n) {
    if (n < 3 * BLOCK) return extend1(crc, p, n);
    static uint32_t cached = 0;  // x^(8·BLOCK) mod P, computed once (never 0)
    uint32_t shift_block = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (shift_block == 0) {
        shift_block = zeros_operator(BLOCK);
        __atomic_store_n(&cached, shift_block, __ATOMIC_RELAXED);
    }
    while (n >= 3 * BLOCK) {
        uint64_t a = crc, b = 0, c = 0;
        const uint8_t *pa = p, *pb = p + BLOCK, *pc = p + 2 * BLOCK;
        for (size_t i = 0; i < BLOCK; i += 8) {
            uint64_t va, vb, vc;
            memcpy(&va, pa + i, 8);
            memcpy(&vb, pb + i, 8);
            memcpy(&vc, pc + i, 8);
            a = __builtin_ia32_crc32di(a, va);
            b = __builtin_ia32_crc32di(b, vb);
            c = __builtin_ia32_crc32di(c, vc);
        }
        // crc(A‖B‖C) = shift(shift(a) ⊕ b) ⊕ c, each shift over BLOCK bytes.
        uint32_t ab = gf_multiply((uint32_t)a, shift_block) ^ (uint32_t)b;
        crc = gf_multiply(ab, shift_block) ^ (uint32_t)c;
        p += 3 * BLOCK;
        n -= 3 * BLOCK;
    }
    return extend1(crc, p, n);
}

#elif defined(__aarch64__) || defined(_M_ARM64)

#if defined(__APPLE__)
int cuplink_crc32c_hardware(void) { return 1; }  // every Apple arm64 CPU has the CRC extension
#elif defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
int cuplink_crc32c_hardware(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) ? 1 : 0; }
#else
int cuplink_crc32c_hardware(void) { return 0; }
#endif

__attribute__((target("crc")))
uint32_t cuplink_crc32c_extend(uint32_t crc, const uint8_t *p, size_t n) {
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        crc = __builtin_arm_crc32cd(crc, v);
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        crc = __builtin_arm_crc32cb(crc, *p++);
        n--;
    }
    return crc;
}

#else

int cuplink_crc32c_hardware(void) { return 0; }
uint32_t cuplink_crc32c_extend(uint32_t crc, const uint8_t *p, size_t n) {
    (void)p; (void)n;
    return crc;  // never called: cuplink_crc32c_hardware() is 0
}

#endif
