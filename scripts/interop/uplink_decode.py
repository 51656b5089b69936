"""Independent decoder for Uplink frame format v1, written from docs/wire-format.md only.

Implements the whole document: all stages of §5 (ef, topk, topk-sampled, randk, threshold,
fp32, fp16, bf16, int, sign, ternary, stored, lz4, zlib), the §7 section rules (including the
codec expansion-ratio bound) and the §8 streams (indices with Rice/bitmap coding, random-k
regeneration, scales and bit-packed values).

The maintained Python decoder is the uplink_fl package in python/ (vectorized, with an
encoder); this one is kept simple, one value at a time as the doc reads, as the reference that
package is tested against. It shares only the .safetensors reader with it.

Public API:
    decode_frame(data: bytes, layout=None, limits=None) -> dict
    FrameError(code, message)
    read_safetensors(path_or_bytes) -> dict[name -> np.ndarray]   (F32, F16, BF16, F64 as float32;
        the header rules and limits of doc §6.1, the Swift reader's codes)
    layout_from_safetensors(path) -> list[(name, shape)]  (sorted by name, byte-wise UTF-8)
    crc32c(data), fnv1a64(data)
    randk_positions(n, k, seed, round_id), amount_k(amount, n)
"""
from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np

try:  # LZ4 is only needed for LZ4 sections
    import lz4.block as _lz4_block
except ImportError:  # pragma: no cover
    _lz4_block = None


import os as _os
import sys as _sys

_sys.path.insert(0, _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "..", "..", "python", "src"))
# A rejected frame (or tensor file); `code` is the numeric error code from the Errors table of the
# doc. The package's exception class, so that its tensor-file reader's errors are FrameErrors.
from uplink_fl._errors import UplinkError as FrameError  # noqa: E402


MAX_QUOTED = 200


def _q(text) -> str:
    """Untrusted text (a name, a dtype, header bytes) quoted for a message: repr-escaped, cut
    after MAX_QUOTED characters with its full length, as the Swift reader's messages are."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        text = raw[:4 * (MAX_QUOTED + 1)].decode("utf-8", errors="replace")
        length = len(raw)
    else:
        length = len(text.encode("utf-8", errors="surrogatepass"))
    if len(text) > MAX_QUOTED:
        return repr(text[:MAX_QUOTED])[:-1] + "…" + repr(text)[-1] + f" ({length} bytes)"
    return repr(text)


# ---------------------------------------------------------------------------------------------
# Checksums (pure Python)

def _make_crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), table-driven; `crc` allows incremental use."""
    table = _CRC32C_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


assert crc32c(b"123456789") == 0xE3069283

# ---------------------------------------------------------------------------------------------
# Constants

MAGIC = b"UPLK"
VERSION = 1
FLAG_HAS_TENSOR_TABLE = 0x0001
MIN_HEADER = 42
SECTION_ENTRY = 24
MAX_SECTION_RAW = 64 * 1024 * 1024
MAX_DIM = 1 << 48
MAX_N = 1 << 48
MAX_BLOCK = 1 << 24
M64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15

# §5 stage table: id -> (name, kind, parameter length L).
STAGES = {
    0x02: ("clip", "clip", 8),
    0x03: ("noise", "noise", 17),
    0x01: ("ef", "ef", 4),
    0x10: ("topk", "sparsifier", 10),
    0x11: ("topk-sampled", "sparsifier", 18),
    0x12: ("randk", "sparsifier", 17),
    0x13: ("threshold", "sparsifier", 8),
    0x20: ("fp32", "quantizer", 0),
    0x21: ("fp16", "quantizer", 0),
    0x22: ("bf16", "quantizer", 0),
    0x23: ("int", "quantizer", 14),
    0x24: ("sign", "quantizer", 4),
    0x25: ("ternary", "quantizer", 4),
    0x60: ("stored", "codec", 0),
    0x61: ("lz4", "codec", 1),
    0x62: ("zlib", "codec", 1),
}
KIND_RANK = {"clip": -2, "noise": -1, "ef": 0, "sparsifier": 1, "quantizer": 2, "codec": 3}
LEVEL_RANGE = {0x61: (0, 12), 0x62: (1, 9)}

SECTION_CODECS = {0: "stored", 1: "lz4", 2: "zlib"}
# Expansion bound per codec (§7): raw length <= ratio * stored length.
CODEC_MAX_RATIO = {1: 256, 2: 1032}

STREAM_VALUES = 1
STREAM_INDICES = 2
STREAM_SCALES = 3
STREAM_NAMES = {STREAM_INDICES: "indices", STREAM_SCALES: "scales", STREAM_VALUES: "values"}
STREAM_ORDER = (STREAM_INDICES, STREAM_SCALES, STREAM_VALUES)

# The Swift reader's default limits (doc §9, "FrameLimits").
DEFAULT_LIMITS = {
    "frame": 16 * 1024 ** 3,     # [400]
    "header": 16 * 1024 ** 2,    # [401]
    "tensors": 1 << 20,          # [402]
    "parameters": 1 << 31,       # [403]
    "sections": 1 << 20,         # [405]
}


# ---------------------------------------------------------------------------------------------
# Layout helpers

def _shape_count(shape) -> int:
    c = 1
    for d in shape:
        c *= int(d)
    return c


def tensor_table_bytes(layout) -> bytes:
    """Builds the §6 tensor-table bytes for a layout: iterable of (name, shape)."""
    out = bytearray()
    for name, shape in layout:
        nb = name.encode("utf-8")
        out += struct.pack("<H", len(nb)) + nb + struct.pack("<B", len(shape))
        for d in shape:
            out += struct.pack("<Q", int(d))
    return bytes(out)


def layout_fingerprint(layout) -> int:
    layout = list(layout)
    return fnv1a64(struct.pack("<I", len(layout)) + tensor_table_bytes(layout))


# .safetensors files: the reader of the uplink_fl package (python/), one copy of the §6.1 rules
# for both; this script's frame decoder stays its own (the reference the package is tested
# against).
from uplink_fl._tensorfiles import (  # noqa: E402
    ST_MAX_HEADER, ST_MAX_TENSORS, ST_MAX_RANK, ST_MAX_NAME, ST_MAX_DEPTH, ST_DTYPES,
    parse_safetensors_header, read_safetensors,
)


def _name_key(name: str) -> bytes:
    return name.encode("utf-8")


def layout_from_safetensors(path):
    """Layout (list of (name, shape)) sorted by name in byte-wise UTF-8 order (doc §6)."""
    tensors = read_safetensors(path)
    return [(name, tuple(tensors[name].shape)) for name in sorted(tensors, key=_name_key)]


def flat_update_from_safetensors(path) -> np.ndarray:
    tensors = read_safetensors(path)
    names = sorted(tensors, key=_name_key)
    if not names:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([tensors[n].reshape(-1) for n in names]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Decoder helpers

class _Cursor:
    """Reads little-endian fields from data[pos:end]; running past `end` raises `code`."""

    def __init__(self, data, pos, end, code, what):
        self.data, self.pos, self.end, self.code, self.what = data, pos, end, code, what

    def take(self, k):
        if k < 0 or self.pos + k > self.end:
            raise FrameError(self.code, f"{self.what} ends early (need {k} bytes at offset {self.pos})")
        b = bytes(self.data[self.pos:self.pos + k])
        self.pos += k
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]


def _parse_tensor_table(data, pos, end, T):
    cur = _Cursor(data, pos, end, 105, "tensor table")
    tensors = []
    names = set()
    total = 0
    for _ in range(T):
        nlen = cur.u16()
        if not 1 <= nlen <= 1024:
            raise FrameError(105, f"tensor name length {nlen} outside 1..1024")
        raw_name = cur.take(nlen)
        try:
            name = raw_name.decode("utf-8", errors="strict")
        except UnicodeDecodeError as e:
            raise FrameError(105, f"tensor name {_q(raw_name)} is not UTF-8: {e}") from None
        if raw_name in names:  # byte for byte: NFC and NFD spellings are different names
            raise FrameError(105, f"duplicate tensor name {_q(name)}")
        names.add(raw_name)
        rank = cur.u8()
        if rank > 64:
            raise FrameError(105, f"tensor {_q(name)}: rank {rank} > 64")
        shape = []
        for _ in range(rank):
            d = cur.u64()
            if d > MAX_DIM:
                raise FrameError(406, f"tensor {_q(name)}: dimension {d} > 2^48")
            shape.append(d)
        count = _shape_count(shape)
        if count > MAX_DIM:
            raise FrameError(406, f"tensor {_q(name)}: element count {count} > 2^48")
        total += count
        tensors.append((name, tuple(shape)))
    return tensors, cur.pos, total


def _decompress(codec, stored, raw_len, index):
    if codec == 0:
        return stored
    if codec == 1:
        if _lz4_block is None:
            raise FrameError(500, "LZ4 section but the lz4 package is not installed")
        try:
            out = _lz4_block.decompress(stored, uncompressed_size=raw_len)
        except Exception as e:  # lz4.block.LZ4BlockError and friends
            raise FrameError(500, f"section {index}: LZ4 data corrupt: {e}") from None
        if len(out) != raw_len:
            raise FrameError(502, f"section {index}: LZ4 produced {len(out)} bytes, raw length {raw_len}")
        return out
    if codec == 2:
        d = zlib.decompressobj()
        try:
            out = d.decompress(stored, raw_len)
            if not d.eof and len(out) == raw_len:
                # Either more output follows (too long) or the stream is unfinished.
                more = d.decompress(d.unconsumed_tail, 1)
                if more:
                    raise FrameError(502, f"section {index}: zlib output longer than raw length {raw_len}")
            if not d.eof:
                raise FrameError(501, f"section {index}: zlib stream incomplete")
        except zlib.error as e:
            raise FrameError(501, f"section {index}: zlib data corrupt: {e}") from None
        if d.unused_data or d.unconsumed_tail:
            raise FrameError(501, f"section {index}: bytes after the end of the zlib stream")
        if len(out) != raw_len:
            raise FrameError(502, f"section {index}: zlib produced {len(out)} bytes, raw length {raw_len}")
        return out
    raise FrameError(107, f"section {index}: unknown codec {codec}")  # unreachable (checked earlier)


# ---------------------------------------------------------------------------------------------
# §5 pipeline descriptor

def _parse_amount(b: bytes, what: str) -> dict:
    kind = b[0]
    if kind == 0:
        (f,) = struct.unpack("<d", b[1:9])
        if not 0.0 < f <= 1.0:  # NaN fails too
            raise FrameError(105, f"{what}: fraction {f!r} outside (0, 1]")
        return {"kind": "fraction", "fraction": f}
    if kind == 1:
        (c,) = struct.unpack("<Q", b[1:9])
        if not 1 <= c <= MAX_N:
            raise FrameError(105, f"{what}: count {c} outside 1..2^48")
        return {"kind": "count", "count": c}
    raise FrameError(105, f"{what}: amount kind {kind} is neither 0 (fraction) nor 1 (count)")


def amount_k(amount: dict, n: int) -> int:
    """k for n parameters (§5): min(n, floor(f*n + 0.5)) in binary64, or min(n, count)."""
    if amount["kind"] == "fraction":
        return min(n, int(math.floor(amount["fraction"] * float(n) + 0.5)))
    return min(n, amount["count"])


def _parse_stage_params(sid: int, name: str, p: bytes) -> dict:
    st = {}
    if sid == 0x02:
        (c,) = struct.unpack("<d", p)
        if not (c > 0 and math.isfinite(c)):
            raise FrameError(105, f"clip: bound {c!r} is not a finite positive number")
    elif sid == 0x03:
        z, seeded, seed = struct.unpack("<dBQ", p)
        if not (z > 0 and math.isfinite(z)) or seeded > 1 or (seeded == 0 and seed != 0):
            raise FrameError(105, "noise: parameters out of range")
    elif sid == 0x01:
        (decay,) = struct.unpack("<f", p)
        if not 0.0 <= decay <= 1.0:
            raise FrameError(105, f"ef: decay {decay!r} outside 0..1")
        st["decay"] = decay
    elif sid in (0x10, 0x11):
        scope = p[0]
        if scope not in (0, 1):
            raise FrameError(105, f"{name}: scope {scope} is neither 0 nor 1")
        st["scope"] = "global" if scope == 0 else "tensor"
        st["amount"] = _parse_amount(p[1:10], name)
        if sid == 0x11:
            (sample,) = struct.unpack("<d", p[10:18])
            if not 0.0 < sample <= 1.0:
                raise FrameError(105, f"{name}: sample {sample!r} outside (0, 1]")
            st["sample"] = sample
    elif sid == 0x12:
        st["amount"] = _parse_amount(p[0:9], name)
        (st["seed"],) = struct.unpack("<Q", p[9:17])
    elif sid == 0x13:
        (tau,) = struct.unpack("<d", p)
        if not (math.isfinite(tau) and tau > 0.0):
            raise FrameError(105, f"threshold: tau {tau!r} not finite and > 0")
        st["tau"] = tau
    elif sid == 0x23:
        bits, flags, block, seed = struct.unpack("<BBIQ", p)
        if bits not in (8, 4, 2):
            raise FrameError(105, f"int: bits {bits} not 8, 4 or 2")
        if flags & ~0x03:
            raise FrameError(105, f"int: undefined flag bits 0x{flags & ~0x03:02x}")
        if not 1 <= block <= MAX_BLOCK:
            raise FrameError(105, f"int: block {block} outside 1..2^24")
        st.update(bits=bits, asymmetric=bool(flags & 1), stochastic=bool(flags & 2),
                  block=block, seed=seed)
    elif sid in (0x24, 0x25):
        (block,) = struct.unpack("<I", p)
        if block > MAX_BLOCK:
            raise FrameError(105, f"{name}: block {block} outside 0..2^24")
        st["block"] = block
    elif sid in LEVEL_RANGE:
        lo, hi = LEVEL_RANGE[sid]
        level = p[0]
        if not lo <= level <= hi:
            raise FrameError(105, f"stage {name}: level {level} outside {lo}..{hi}")
        st["level"] = level
    return st


def _stage_label(stage: dict) -> str:
    return f"int{stage['bits']}" if stage["name"] == "int" else stage["name"]


def _parse_pipeline(desc: bytes):
    cur = _Cursor(desc, 0, len(desc), 105, "pipeline descriptor")
    count = cur.u8()
    stages = []
    last_rank = -99
    for _ in range(count):
        sid = cur.u8()
        plen = cur.u8()
        params = cur.take(plen)
        if sid not in STAGES:
            raise FrameError(106, f"unknown stage id 0x{sid:02x}")
        name, kind, want = STAGES[sid]
        if plen != want:
            raise FrameError(105, f"stage {name}: parameter length {plen}, expected {want}")
        rank = KIND_RANK[kind]
        if rank <= last_rank:
            raise FrameError(105, f"stage {name}: {kind} stage out of order or repeated")
        last_rank = rank
        stage = {"id": sid, "name": name, "kind": kind, "params": params}
        stage.update(_parse_stage_params(sid, name, params))
        stage["label"] = _stage_label(stage)
        stages.append(stage)
    if cur.pos != len(desc):
        raise FrameError(105, f"pipeline descriptor has {len(desc) - cur.pos} bytes after stage {count}")
    by_kind = {s["kind"]: s for s in stages}
    if "noise" in by_kind and "clip" not in by_kind:
        raise FrameError(105, "noise stage without a clip stage")
    if "quantizer" not in by_kind or "codec" not in by_kind:
        raise FrameError(105, "pipeline must have exactly one quantizer and one codec")
    if by_kind["quantizer"]["name"] == "ternary" and "sparsifier" not in by_kind:
        raise FrameError(105, "ternary quantizer requires a sparsifier")
    return stages, by_kind


# ---------------------------------------------------------------------------------------------
# §8 stream geometry

def _value_bits(q: dict) -> int:
    return {"fp32": 32, "fp16": 16, "bf16": 16, "sign": 1, "ternary": 1}.get(q["name"]) or q["bits"]


def _block_size(q: dict, m: int) -> int:
    if q["name"] == "int":
        return q["block"]
    return q["block"] or m  # sign/ternary: 0 = one block of m


def _stream_lengths(q: dict, m: int):
    """(scales length, values length) in bytes for m transmitted values (§8.4)."""
    values = (m * _value_bits(q) + 7) // 8
    if q["name"] not in ("int", "sign", "ternary") or m == 0:
        return 0, values
    per = 8 if (q["name"] == "int" and q["asymmetric"]) else 4
    B = _block_size(q, m)
    return ((m + B - 1) // B) * per, values


# ---------------------------------------------------------------------------------------------
# §8.2 indices stream

def _decode_indices(buf: bytes, n: int) -> np.ndarray:
    if len(buf) < 3:
        raise FrameError(111, f"indices stream of {len(buf)} bytes is shorter than 3")
    method, r = buf[0], buf[1]
    if method not in (0, 1):
        raise FrameError(111, f"indices: unknown method {method}")
    W = max(1, (n - 1).bit_length())
    # LEB128 k, minimal length.
    pos, k, shift = 2, 0, 0
    while True:
        if pos >= len(buf):
            raise FrameError(111, "indices: LEB128 k runs past the end of the stream")
        byte = buf[pos]
        pos += 1
        k |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte == 0 and pos - 2 > 1:
                raise FrameError(111, "indices: LEB128 k is not minimal (final 0x00 byte)")
            break
        if pos - 2 >= 10:
            raise FrameError(111, "indices: LEB128 k longer than 10 bytes")
    if k > n:
        raise FrameError(111, f"indices: k={k} > n={n}")
    payload = buf[pos:]

    if method == 1:  # bitmap
        if r != 0:
            raise FrameError(111, f"indices: bitmap with Rice parameter {r} != 0")
        if len(payload) != (n + 7) // 8:
            raise FrameError(111, f"indices: bitmap of {len(payload)} bytes, need {(n + 7) // 8}")
        bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8), bitorder="little")
        if bits[n:].any():
            raise FrameError(111, "indices: bitmap has bits set at positions >= n")
        positions = np.flatnonzero(bits[:n]).astype(np.int64)
        if positions.size != k:
            raise FrameError(111, f"indices: bitmap has {positions.size} bits set, k={k}")
        return positions

    # Rice-coded gaps.
    if r > W:
        raise FrameError(111, f"indices: Rice parameter {r} > W={W}")
    L = 8 * len(payload)
    rmask = (1 << r) - 1
    wmask = (1 << W) - 1
    from_bytes = int.from_bytes

    def window(p):  # >= 65 bits starting at bit p (zeros past the end)
        b = p >> 3
        return from_bytes(payload[b:b + 9], "little") >> (p & 7)

    out = [0] * k
    p = 0
    prev = -1
    for j in range(k):
        w = window(p)
        ones = ((~w) & (w + 1)).bit_length() - 1  # trailing one-bits of w
        if ones < 32:
            if p + ones >= L:
                raise FrameError(111, f"indices: payload ends inside gap {j}")
            p += ones + 1
            if p + r > L:
                raise FrameError(111, f"indices: payload ends inside gap {j}")
            g = (ones << r) | (window(p) & rmask) if r else ones
            p += r
        else:
            p += 32
            if p + W > L:
                raise FrameError(111, f"indices: payload ends inside escaped gap {j}")
            g = window(p) & wmask
            p += W
        prev += g + 1
        if prev >= n:
            raise FrameError(111, f"indices: position {prev} of entry {j} >= n={n}")
        out[j] = prev
    if len(payload) != (p + 7) // 8:
        raise FrameError(111, f"indices: {len(payload) - (p + 7) // 8} bytes after the last gap")
    if p & 7 and payload[-1] >> (p & 7):
        raise FrameError(111, "indices: non-zero padding bits after the last gap")
    return np.array(out, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# §8.3 random-k positions (vectorized SplitMix64 outputs; Floyd's insertion is sequential)

def _mulhi64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """High 64 bits of the 128-bit products of uint64 arrays."""
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    ah, al = a >> s32, a & m32
    bh, bl = b >> s32, b & m32
    hh, hl, lh, ll = ah * bh, ah * bl, al * bh, al * bl
    mid = (hl & m32) + (lh & m32) + (ll >> s32)
    return hh + (hl >> s32) + (lh >> s32) + (mid >> s32)


def randk_positions(n: int, k: int, seed: int, round_id: int) -> np.ndarray:
    if k >= n:
        return np.arange(n, dtype=np.int64)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    state0 = (seed ^ ((round_id * GOLDEN_GAMMA) & M64)) & M64
    with np.errstate(over="ignore"):
        i = np.arange(1, k + 1, dtype=np.uint64)
        z = np.uint64(state0) + i * np.uint64(GOLDEN_GAMMA)  # wraps mod 2^64
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = z ^ (z >> np.uint64(31))
        t = _mulhi64(x, np.arange(n - k + 1, n + 1, dtype=np.uint64))  # uniform in 0..j
    chosen = set()
    add = chosen.add
    for j, tj in zip(range(n - k, n), t.tolist()):
        add(j if tj in chosen else tj)
    return np.sort(np.fromiter(chosen, dtype=np.int64, count=len(chosen)))


def randk_positions_reference(n, k, seed, round_id):
    """The doc's §8.3 code, verbatim (used by the checker to test the vectorized version)."""
    def splitmix64(state):
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return state, z ^ (z >> 31)
    if k >= n:
        return list(range(n))
    state = seed ^ ((round_id * 0x9E3779B97F4A7C15) & M64)
    chosen = set()
    for j in range(n - k, n):
        state, x = splitmix64(state)
        t = (x * (j + 1)) >> 64
        chosen.add(j if t in chosen else t)
    return sorted(chosen)


# ---------------------------------------------------------------------------------------------
# §8.4 values

def _unpack_codes(buf: bytes, m: int, b: int) -> np.ndarray:
    used = m * b
    if len(buf) != (used + 7) // 8:
        raise FrameError(111, f"values stream of {len(buf)} bytes, need {(used + 7) // 8}")
    if used & 7 and buf[-1] >> (used & 7):
        raise FrameError(111, "values: non-zero padding bits in the last byte")
    if b == 32:
        return np.frombuffer(buf, dtype="<u4")
    if b == 16:
        return np.frombuffer(buf, dtype="<u2")
    arr = np.frombuffer(buf, dtype=np.uint8)
    if b == 8:
        return arr
    per = 8 // b
    shifts = (np.arange(per, dtype=np.uint8) * np.uint8(b))
    codes = (arr[:, None] >> shifts[None, :]) & np.uint8((1 << b) - 1)
    return codes.reshape(-1)[:m]


def _decode_values(q: dict, scales_buf: bytes, values_buf: bytes, m: int) -> np.ndarray:
    name = q["name"]
    b = _value_bits(q)
    codes = _unpack_codes(values_buf, m, b)
    if name == "fp32":
        vals = codes.view("<f4").astype(np.float32)
    elif name == "fp16":
        vals = codes.view("<f2").astype(np.float32)  # exact widening
    elif name == "bf16":
        vals = (codes.astype(np.uint32) << np.uint32(16)).view(np.float32)
    else:
        B = _block_size(q, m)
        blk = np.arange(m, dtype=np.int64) // B if m else np.zeros(0, dtype=np.int64)
        sc = np.frombuffer(scales_buf, dtype="<f4").astype(np.float32)
        asym = name == "int" and q["asymmetric"]
        if asym:
            sc = sc.reshape(-1, 2)
            scale, offset = sc[:, 0], sc[:, 1]
            if not np.all(np.isfinite(offset)):
                raise FrameError(111, "scales: non-finite offset")
        else:
            scale = sc
        if not np.all(np.isfinite(scale) & (scale >= 0)):
            raise FrameError(111, "scales: a scale is negative, NaN or infinite")
        with np.errstate(over="ignore", invalid="ignore"):
            if name == "int":
                cf = codes.astype(np.float32)
                if asym:
                    vals = offset[blk] + cf * scale[blk]
                else:
                    top = (1 << q["bits"]) - 1
                    if np.any(codes == top):
                        raise FrameError(111, f"values: invalid symmetric code {top}")
                    qmax = np.float32((1 << (q["bits"] - 1)) - 1)
                    vals = (cf - qmax) * scale[blk]
            else:  # sign, ternary
                s = scale[blk]
                vals = np.where(codes == 0, s, -s)
    vals = np.asarray(vals, dtype=np.float32)
    if not np.all(np.isfinite(vals)):
        bad = int(np.flatnonzero(~np.isfinite(vals))[0])
        raise FrameError(704, f"non-finite value at transmitted entry {bad}")
    return vals


# ---------------------------------------------------------------------------------------------
# Frame

def decode_frame(data: bytes, layout=None, limits=None) -> dict:
    """Decodes one v1 frame. `layout` is an optional list of (name, shape) (the expected model).

    Returns a dict with version, flags, header_length, fingerprint, round, samples, n, T, S,
    tensors (list of (name, shape) or None when the frame has no table), pipeline (list of stage
    dicts), sections (list of section dicts), positions (np.int64 array, None when dense), k and
    update (np.float32 array of length n).
    Raises FrameError on every rejection case of docs/wire-format.md.
    """
    lim = dict(DEFAULT_LIMITS)
    if limits:
        lim.update(limits)
    data = bytes(data)
    size = len(data)

    # §2 preamble: magic and version first.
    if size < 4:
        if MAGIC.startswith(data):
            raise FrameError(103, f"frame of {size} bytes ends inside the magic")
        raise FrameError(100, "bad magic")
    if data[0:4] != MAGIC:
        raise FrameError(100, f"bad magic {data[0:4].hex()}")
    if size < 6:
        raise FrameError(103, f"frame of {size} bytes ends inside the version")
    (version,) = struct.unpack_from("<H", data, 4)
    if version != VERSION:
        raise FrameError(101, f"unsupported version {version}")
    if size < 12:
        raise FrameError(103, f"frame of {size} bytes ends inside the preamble")
    flags, H = struct.unpack_from("<HI", data, 6)
    if flags & ~FLAG_HAS_TENSOR_TABLE:
        raise FrameError(102, f"unknown flag bits 0x{flags & ~FLAG_HAS_TENSOR_TABLE:04x}")
    if size > lim["frame"]:
        raise FrameError(400, f"frame of {size} bytes exceeds limit {lim['frame']}")
    if H < MIN_HEADER:
        raise FrameError(105, f"header length {H} < {MIN_HEADER}")
    if H > lim["header"]:
        raise FrameError(401, f"header length {H} exceeds limit {lim['header']}")
    if size < 12 + H + 4:
        raise FrameError(103, f"frame of {size} bytes cannot hold header of {H} bytes and its CRC")

    # §3 header CRC, before interpreting any header field.
    (stored_crc,) = struct.unpack_from("<I", data, 12 + H)
    actual_crc = crc32c(data[:12 + H])
    if stored_crc != actual_crc:
        raise FrameError(200, f"header CRC 0x{stored_crc:08x} != computed 0x{actual_crc:08x}")

    # §4 fixed fields.
    hdr_end = 12 + H
    fingerprint, rnd, samples, n, T, S, P = struct.unpack_from("<QQQQIIH", data, 12)
    if not 1 <= n <= MAX_N:
        raise FrameError(105, f"parameter count n={n} outside 1..2^48")
    if T < 1:
        raise FrameError(105, "tensor count T must be >= 1")
    if n > lim["parameters"]:
        raise FrameError(403, f"n={n} exceeds limit {lim['parameters']}")
    if T > lim["tensors"]:
        raise FrameError(402, f"T={T} exceeds limit {lim['tensors']}")
    if S > lim["sections"]:
        raise FrameError(405, f"S={S} exceeds limit {lim['sections']}")

    # §5 pipeline descriptor.
    pos = 12 + MIN_HEADER
    if pos + P > hdr_end:
        raise FrameError(105, f"pipeline descriptor of {P} bytes exceeds the header")
    pipeline, by_kind = _parse_pipeline(data[pos:pos + P])
    pos += P
    quant = by_kind["quantizer"]
    sparsifier = by_kind.get("sparsifier")

    # §6 tensor table / layout.
    tensors = None
    if flags & FLAG_HAS_TENSOR_TABLE:
        table_start = pos
        tensors, pos, total = _parse_tensor_table(data, pos, hdr_end, T)
        if total > lim["parameters"]:
            raise FrameError(403, f"tensor table sums to {total} > limit {lim['parameters']}")
        if total != n:
            raise FrameError(105, f"tensor element counts sum to {total}, header n={n}")
        computed = fnv1a64(struct.pack("<I", T) + data[table_start:pos])
        if computed != fingerprint:
            raise FrameError(110, f"fingerprint 0x{fingerprint:016x} != table's 0x{computed:016x}")
        if layout is not None:
            if layout_fingerprint(layout) != fingerprint:
                raise FrameError(300, "frame is for another model (fingerprint differs from layout)")
    else:
        if layout is None:
            raise FrameError(302, "frame has no tensor table and no layout was given")
        layout = [(name, tuple(int(d) for d in shape)) for name, shape in layout]
        if layout_fingerprint(layout) != fingerprint:
            raise FrameError(300, "frame is for another model (fingerprint differs from layout)")
        if len(layout) != T:
            raise FrameError(301, f"frame T={T}, layout has {len(layout)} tensors")
        layout_n = sum(_shape_count(s) for _, s in layout)
        if layout_n != n:
            raise FrameError(301, f"frame n={n}, layout has {layout_n} parameters")

    # §7 section table: must fill the rest of the header exactly.
    if hdr_end - pos != S * SECTION_ENTRY:
        raise FrameError(105, f"{hdr_end - pos} header bytes left for {S} section entries")

    # §8.1 allowed stream lengths: kind -> (min, max).
    k_fixed = None
    if sparsifier is None:
        mode = "dense"
        k_fixed = n
    elif sparsifier["name"] == "randk":
        mode = "randk"
        k_fixed = amount_k(sparsifier["amount"], n)
    else:
        mode = "indices"
    allowed = {}
    if mode == "indices":
        allowed[STREAM_INDICES] = (3, 12 + (n + 7) // 8)
        sc_max, va_max = _stream_lengths(quant, n)
        allowed[STREAM_SCALES] = (0, sc_max)
        allowed[STREAM_VALUES] = (0, va_max)
    else:
        sc_len, va_len = _stream_lengths(quant, k_fixed)
        allowed[STREAM_SCALES] = (sc_len, sc_len)
        allowed[STREAM_VALUES] = (va_len, va_len)
    if quant["name"] not in ("int", "sign", "ternary"):
        allowed[STREAM_SCALES] = (0, 0)
    order = [kd for kd in STREAM_ORDER if kd in allowed and allowed[kd][1] > 0]

    have = {kd: 0 for kd in allowed}
    cur_idx = -1
    sections = []
    offset = hdr_end + 4
    for i in range(S):
        kind, codec, level, reserved, crc, raw_len, stored_len = struct.unpack_from("<BBBBIQQ", data, pos)
        pos += SECTION_ENTRY
        if kind not in order or order.index(kind) < cur_idx:
            raise FrameError(108, f"section {i}: stream kind {kind} is not the expected stream")
        # Moving on to a later stream: the current one must be long enough, and every stream
        # skipped over must be allowed to be empty; otherwise this section is not the next
        # expected stream.
        nxt = order.index(kind)
        for j in range(max(cur_idx, 0), nxt):
            if have[order[j]] < allowed[order[j]][0]:
                raise FrameError(108, f"section {i}: stream kind {kind} where stream "
                                      f"{STREAM_NAMES[order[j]]} is expected")
        cur_idx = nxt
        if codec not in SECTION_CODECS:
            raise FrameError(107, f"section {i}: unknown codec {codec}")
        if reserved != 0:
            raise FrameError(109, f"section {i}: reserved byte {reserved}")
        if not 1 <= raw_len <= MAX_SECTION_RAW:
            raise FrameError(404, f"section {i}: raw length {raw_len} outside 1..64 MiB")
        if codec == 0:
            if stored_len != raw_len:
                raise FrameError(105, f"section {i}: stored section with stored length {stored_len} != raw {raw_len}")
        else:
            if not 1 <= stored_len <= raw_len - 1:
                raise FrameError(105, f"section {i}: compressed stored length {stored_len} not in 1..{raw_len - 1}")
            if raw_len > CODEC_MAX_RATIO[codec] * stored_len:
                raise FrameError(105, f"section {i}: raw length {raw_len} > {CODEC_MAX_RATIO[codec]} x stored {stored_len}")
        have[kind] += raw_len
        if have[kind] > allowed[kind][1]:
            raise FrameError(404, f"section {i}: stream {STREAM_NAMES[kind]} longer than {allowed[kind][1]} bytes")
        sections.append({
            "index": i, "kind": kind, "stream": STREAM_NAMES[kind], "codec": codec,
            "codec_name": SECTION_CODECS[codec], "level": level, "crc": crc,
            "raw_length": raw_len, "stored_length": stored_len, "offset": offset,
        })
        offset += stored_len
    for kd, (lo, hi) in allowed.items():
        if not lo <= have[kd] <= hi:
            raise FrameError(111, f"stream {STREAM_NAMES[kd]} has {have[kd]} bytes, allowed {lo}..{hi}")

    # Frame length must be exactly 12 + H + 4 + sum(stored lengths).
    if offset > size:
        raise FrameError(103, f"frame of {size} bytes ends before section payloads end at {offset}")
    if offset < size:
        raise FrameError(104, f"{size - offset} bytes after the last section")

    # §9 step 7: every section CRC, then decompress each stream.
    for s in sections:
        c = crc32c(data[s["offset"]:s["offset"] + s["stored_length"]])
        if c != s["crc"]:
            raise FrameError(201, f"section {s['index']}: CRC 0x{s['crc']:08x} != computed 0x{c:08x}")
    streams = {}
    for kd in allowed:
        buf = bytearray()
        for s in sections:
            if s["kind"] == kd:
                stored = data[s["offset"]:s["offset"] + s["stored_length"]]
                buf += _decompress(s["codec"], stored, s["raw_length"], s["index"])
        if len(buf) != have[kd]:  # cannot happen given the checks in _decompress
            raise FrameError(502, f"stream {STREAM_NAMES[kd]} has {len(buf)} bytes, expected {have[kd]}")
        streams[kd] = bytes(buf)

    # §9 step 8: positions.
    if mode == "dense":
        positions = None
        m = n
    elif mode == "randk":
        positions = randk_positions(n, k_fixed, sparsifier["seed"], rnd)
        m = k_fixed
    else:
        positions = _decode_indices(streams[STREAM_INDICES], n)
        m = int(positions.size)
        sc_len, va_len = _stream_lengths(quant, m)
        if have[STREAM_SCALES] != sc_len or have[STREAM_VALUES] != va_len:
            raise FrameError(111, f"k={m}: scales/values streams have {have[STREAM_SCALES]}/"
                                  f"{have[STREAM_VALUES]} bytes, need {sc_len}/{va_len}")

    # §9 step 9: values.
    vals = _decode_values(quant, streams[STREAM_SCALES], streams[STREAM_VALUES], m)
    if positions is None:
        update = vals.copy()
    else:
        update = np.zeros(n, dtype=np.float32)
        update[positions] = vals

    return {
        "version": version,
        "flags": flags,
        "has_tensor_table": bool(flags & FLAG_HAS_TENSOR_TABLE),
        "header_length": H,
        "header_crc": stored_crc,
        "fingerprint": fingerprint,
        "round": rnd,
        "samples": samples,
        "n": n,
        "T": T,
        "S": S,
        "tensors": tensors,
        "pipeline": pipeline,
        "sections": sections,
        "k": m,
        "positions": positions,
        "update": update,
    }
