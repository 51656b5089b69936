"""Independent decoder for Uplink frame format v1, written from docs/wire-format.md only.

Public API:
    decode_frame(data: bytes, layout=None, limits=None) -> dict
    FrameError(code, message)
    read_safetensors(path) -> dict[name -> np.ndarray]   (F32 only)
    layout_from_safetensors(path) -> list[(name, shape)]  (sorted by name, byte-wise UTF-8)
    crc32c(data), fnv1a64(data)
"""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np

try:  # LZ4 is only needed for LZ4 sections
    import lz4.block as _lz4_block
except ImportError:  # pragma: no cover
    _lz4_block = None


class FrameError(Exception):
    """A rejected frame; `code` is the numeric error code from the Errors table of the doc."""

    def __init__(self, code: int, message: str):
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message


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

QUANTIZERS = {0x20: "fp32", 0x21: "fp16"}
CODEC_STAGES = {0x60: "stored", 0x61: "lz4", 0x62: "zlib"}
STAGE_PARAM_LEN = {0x20: 0, 0x21: 0, 0x60: 0, 0x61: 1, 0x62: 1}
LEVEL_RANGE = {0x61: (0, 12), 0x62: (1, 9)}
SECTION_CODECS = {0: "stored", 1: "lz4", 2: "zlib"}
STREAM_VALUES = 1
STREAM_NAMES = {STREAM_VALUES: "values"}
BYTES_PER_VALUE = {"fp32": 4, "fp16": 2}

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


def read_safetensors(path) -> dict:
    """Minimal safetensors reader: u64 LE header length, JSON header, data. F32 tensors only."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("safetensors: file too short")
    (hlen,) = struct.unpack_from("<Q", blob, 0)
    if 8 + hlen > len(blob):
        raise ValueError("safetensors: header exceeds file")
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    data = memoryview(blob)[8 + hlen:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"safetensors: tensor {name!r} has dtype {info['dtype']}, need F32")
        start, end = info["data_offsets"]
        shape = tuple(int(d) for d in info["shape"])
        if end - start != 4 * _shape_count(shape) or end > len(data):
            raise ValueError(f"safetensors: bad data offsets for {name!r}")
        tensors[name] = np.frombuffer(data[start:end], dtype="<f4").reshape(shape).astype(np.float32)
    return tensors


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
# Decoder

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


def _parse_pipeline(desc: bytes):
    cur = _Cursor(desc, 0, len(desc), 105, "pipeline descriptor")
    k = cur.u8()
    stages = []
    for _ in range(k):
        sid = cur.u8()
        plen = cur.u8()
        params = cur.take(plen)
        if sid not in STAGE_PARAM_LEN:
            raise FrameError(106, f"unknown stage id 0x{sid:02x}")
        if plen != STAGE_PARAM_LEN[sid]:
            raise FrameError(105, f"stage 0x{sid:02x}: parameter length {plen}, expected {STAGE_PARAM_LEN[sid]}")
        stage = {"id": sid, "name": QUANTIZERS.get(sid) or CODEC_STAGES[sid]}
        if sid in LEVEL_RANGE:
            lo, hi = LEVEL_RANGE[sid]
            level = params[0]
            if not lo <= level <= hi:
                raise FrameError(105, f"stage {stage['name']}: level {level} outside {lo}..{hi}")
            stage["level"] = level
        stages.append(stage)
    if cur.pos != len(desc):
        raise FrameError(105, f"pipeline descriptor has {len(desc) - cur.pos} bytes after stage {k}")
    if len(stages) != 2 or stages[0]["id"] not in QUANTIZERS or stages[1]["id"] not in CODEC_STAGES:
        raise FrameError(105, "pipeline must be exactly one quantizer followed by exactly one codec")
    return stages


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
            raise FrameError(105, f"tensor name is not UTF-8: {e}") from None
        if name in names:
            raise FrameError(105, f"duplicate tensor name {name!r}")
        names.add(name)
        rank = cur.u8()
        if rank > 64:
            raise FrameError(105, f"tensor {name!r}: rank {rank} > 64")
        shape = []
        for _ in range(rank):
            d = cur.u64()
            if d > MAX_DIM:
                raise FrameError(406, f"tensor {name!r}: dimension {d} > 2^48")
            shape.append(d)
        count = _shape_count(shape)
        if count > MAX_DIM:
            raise FrameError(406, f"tensor {name!r}: element count {count} > 2^48")
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


def decode_frame(data: bytes, layout=None, limits=None) -> dict:
    """Decodes one v1 frame. `layout` is an optional list of (name, shape) (the expected model).

    Returns a dict with version, flags, header_length, fingerprint, round, samples, n, T, S,
    tensors (list of (name, shape) or None when the frame has no table), pipeline (list of stage
    dicts), sections (list of section dicts) and update (np.float32 array of length n).
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
    pipeline = _parse_pipeline(data[pos:pos + P])
    pos += P
    quantizer = pipeline[0]["name"]

    # §6 tensor table / layout.
    tensors = None
    if flags & FLAG_HAS_TENSOR_TABLE:
        table_start = pos
        tensors, pos, total = _parse_tensor_table(data, pos, hdr_end, T)
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

    # §8 expected streams for this pipeline, in order.
    expected = [(STREAM_VALUES, BYTES_PER_VALUE[quantizer] * n)]
    expected = [(k, length) for k, length in expected if length > 0]
    stream_idx = 0
    stream_have = 0
    sections = []
    offset = hdr_end + 4
    for i in range(S):
        kind, codec, level, reserved, crc, raw_len, stored_len = struct.unpack_from("<BBBBIQQ", data, pos)
        pos += SECTION_ENTRY
        # The kind must be the current stream (while it is incomplete), else the next one.
        if stream_idx < len(expected) and stream_have == expected[stream_idx][1]:
            stream_idx += 1
            stream_have = 0
        if stream_idx >= len(expected) or kind != expected[stream_idx][0]:
            raise FrameError(108, f"section {i}: stream kind {kind} is not the expected stream")
        if codec not in SECTION_CODECS:
            raise FrameError(107, f"section {i}: unknown codec {codec}")
        if reserved != 0:
            raise FrameError(109, f"section {i}: reserved byte {reserved}")
        if not 1 <= raw_len <= MAX_SECTION_RAW:
            raise FrameError(404, f"section {i}: raw length {raw_len} outside 1..64 MiB")
        if codec == 0:
            if stored_len != raw_len:
                raise FrameError(105, f"section {i}: stored section with stored length {stored_len} != raw {raw_len}")
        elif not 1 <= stored_len <= raw_len - 1:
            raise FrameError(105, f"section {i}: compressed stored length {stored_len} not in 1..{raw_len - 1}")
        stream_have += raw_len
        if stream_have > expected[stream_idx][1]:
            raise FrameError(404, f"section {i}: stream {STREAM_NAMES[kind]} longer than {expected[stream_idx][1]} bytes")
        sections.append({
            "index": i, "kind": kind, "stream": STREAM_NAMES[kind], "codec": codec,
            "codec_name": SECTION_CODECS[codec], "level": level, "crc": crc,
            "raw_length": raw_len, "stored_length": stored_len, "offset": offset,
        })
        offset += stored_len
    # Every expected stream must be complete.
    if stream_idx < len(expected) and stream_have == expected[stream_idx][1]:
        stream_idx += 1
        stream_have = 0
    if stream_idx < len(expected):
        raise FrameError(111, f"stream {STREAM_NAMES[expected[stream_idx][0]]} has {stream_have} of {expected[stream_idx][1]} bytes")

    # Frame length must be exactly 12 + H + 4 + sum(stored lengths).
    if offset > size:
        raise FrameError(103, f"frame of {size} bytes ends before section payloads end at {offset}")
    if offset < size:
        raise FrameError(104, f"{size - offset} bytes after the last section")

    # Read the streams.
    streams = {}
    for kind, length in expected:
        buf = bytearray()
        for s in sections:
            if s["kind"] != kind:
                continue
            stored = data[s["offset"]:s["offset"] + s["stored_length"]]
            c = crc32c(stored)
            if c != s["crc"]:
                raise FrameError(201, f"section {s['index']}: CRC 0x{s['crc']:08x} != computed 0x{c:08x}")
            buf += _decompress(s["codec"], stored, s["raw_length"], s["index"])
        if len(buf) != length:  # cannot happen given the checks above
            raise FrameError(111, f"stream {kind} has {len(buf)} bytes, expected {length}")
        streams[kind] = bytes(buf)

    # §8 values.
    raw = streams[STREAM_VALUES]
    if quantizer == "fp32":
        update = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    else:
        update = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if not np.all(np.isfinite(update)):
        bad = int(np.flatnonzero(~np.isfinite(update))[0])
        raise FrameError(704, f"non-finite value at parameter {bad}")

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
        "update": update,
    }
