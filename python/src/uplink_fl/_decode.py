"""Frame decoding (docs/wire-format.md): every check of the spec, in its order, with its codes;
vectorized with numpy. Nothing from the frame is trusted before it is checked, and every
allocation is bounded by checked lengths."""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._crc32c import crc32c
from ._errors import UplinkError, quoted
from ._layout import element_count, fingerprint as layout_fingerprint, fnv1a64, normalize_layout, table_bytes
from ._pipeline import Pipeline, parse_descriptor
from ._randk import randk_positions
from ._rice import decode_indices, index_summary

try:
    import lz4.block as _lz4_block
except ImportError:  # pragma: no cover - lz4 is a dependency; kept for a clear message
    _lz4_block = None

__all__ = ["parse_frame", "ParsedFrame", "DEFAULT_LIMITS", "limits_for_layout"]

MAGIC = b"UPLK"
VERSION = 1
FLAG_TABLE = 1
MIN_HEADER = 42
ENTRY = 24
MAX_SECTION_RAW = 64 * 1024 * 1024
MAX_DIM = 1 << 48
RATIO = {1: 256, 2: 1032}
CODECS = {0: "stored", 1: "lz4", 2: "zlib"}
VALUES, INDICES, SCALES = 1, 2, 3
STREAMS = {INDICES: "indices", SCALES: "scales", VALUES: "values"}
ORDER = (INDICES, SCALES, VALUES)

#: The Swift reader's default limits (wire format §9, FrameLimits).
DEFAULT_LIMITS = {
    "frame": 16 * 1024 ** 3,
    "header": 16 * 1024 ** 2,
    "tensors": 1 << 20,
    "parameters": 1 << 31,
    "sections": 1 << 20,
}


def limits_for_layout(layout) -> dict:
    """FrameLimits.forModel: n and T exactly the model's, header 16 MiB + table, frame twice the
    dense float32 size + 1 MiB + table."""
    n = sum(element_count(s) for _, s in layout)
    table = len(table_bytes(layout))
    return {"frame": 8 * n + (1 << 20) + table, "header": (16 << 20) + table, "tensors": len(layout),
            "parameters": n, "sections": 1 << 20}


@dataclass
class ParsedFrame:
    """A frame that passed every check: header fields, layout, and the transmitted values."""
    version: int
    flags: int
    header_length: int
    fingerprint: int
    round: int
    samples: int
    n: int
    layout: list
    has_table: bool
    pipeline: Pipeline
    sections: list
    positions: Optional[np.ndarray]   # None for dense frames
    values: np.ndarray                # float32, one per transmitted entry
    size: int
    index_info: Optional[tuple] = None   # (method, r, k) of the index stream

    def dense(self) -> np.ndarray:
        if self.positions is None:
            return self.values.copy() if not self.values.flags.writeable else self.values
        out = np.zeros(self.n, dtype=np.float32)
        out[self.positions] = self.values
        return out


def _decompress(codec: int, stored, raw_len: int, index: int) -> bytes:
    if codec == 0:
        return stored
    if codec == 1:
        if _lz4_block is None:
            raise UplinkError(500, "LZ4 section, but the lz4 package is not installed")
        try:
            out = _lz4_block.decompress(stored, uncompressed_size=raw_len)
        except Exception as e:  # lz4.block.LZ4BlockError
            raise UplinkError(500, f"section {index}: LZ4 data is corrupt ({e})") from None
        if len(out) != raw_len:
            raise UplinkError(502, f"section {index}: LZ4 block decodes to {len(out)} bytes, declared {raw_len}")
        return out
    d = zlib.decompressobj()
    try:
        out = d.decompress(stored, raw_len)
        if not d.eof and len(out) == raw_len and d.decompress(d.unconsumed_tail, 1):
            raise UplinkError(502, f"section {index}: zlib section decodes to more than the declared {raw_len} bytes")
        if not d.eof:
            raise UplinkError(501, f"section {index}: zlib data is invalid (data ends early)")
    except zlib.error as e:
        raise UplinkError(501, f"section {index}: zlib data is invalid ({e})") from None
    if d.unused_data or d.unconsumed_tail:
        raise UplinkError(501, f"section {index}: zlib section has bytes after the end of its stream")
    if len(out) != raw_len:
        raise UplinkError(502, f"section {index}: zlib section decoded to {len(out)} bytes, declared {raw_len}")
    return out


def _table(data, pos: int, end: int, T: int):
    tensors = []
    names = set()
    total = 0
    for _ in range(T):
        if pos + 2 > end:
            raise UplinkError(105, "tensor table runs past the header")
        (nlen,) = struct.unpack_from("<H", data, pos)
        pos += 2
        if not 1 <= nlen <= 1024:
            raise UplinkError(105, f"tensor name length {nlen} outside 1…1024")
        if pos + nlen + 1 > end:
            raise UplinkError(105, "tensor table runs past the header")
        raw = bytes(data[pos:pos + nlen])
        pos += nlen
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UplinkError(105, f"tensor name {quoted(raw)} is not UTF-8") from None
        if raw in names:
            raise UplinkError(105, f"duplicate tensor name {quoted(name)}")
        names.add(raw)
        rank = data[pos]
        pos += 1
        if rank > 64:
            raise UplinkError(105, f"tensor {quoted(name)}: rank {rank} > 64")
        shape = []
        for _ in range(rank):  # one at a time: a dimension over 2^48 is 406 wherever the table ends
            if pos + 8 > end:
                raise UplinkError(105, "tensor table runs past the header")
            (d,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            if d > MAX_DIM:
                raise UplinkError(406, f"tensor {quoted(name)}: dimension {d} > 2^48")
            shape.append(d)
        count = element_count(shape)
        if count > MAX_DIM:
            raise UplinkError(406, f"tensor {quoted(name)}: element count {count} > 2^48")
        total += count
        tensors.append((name, tuple(shape)))
    return tensors, pos, total


def _values(p: Pipeline, scales: bytes, values: bytes, m: int) -> np.ndarray:
    b = p.value_bits
    used = m * b
    if len(values) != (used + 7) // 8:
        raise UplinkError(111, f"values stream of {len(values)} bytes, need {(used + 7) // 8}")
    if used & 7 and values[-1] >> (used & 7):
        raise UplinkError(111, "values stream has non-zero padding bits")
    q = p.quantizer
    if q == "fp32":
        vals = np.frombuffer(values, dtype="<f4")
    elif q == "fp16":
        vals = np.frombuffer(values, dtype="<f2").astype(np.float32)
    elif q == "bf16":
        vals = (np.frombuffer(values, dtype="<u2").astype(np.uint32) << np.uint32(16)).view(np.float32)
    else:
        raw = np.frombuffer(values, dtype=np.uint8)
        if b == 8:
            codes = raw
        elif b == 1:
            codes = np.unpackbits(raw, bitorder="little")[:m]
        else:
            per = 8 // b
            shifts = np.arange(per, dtype=np.uint8) * np.uint8(b)
            codes = ((raw[:, None] >> shifts[None, :]) & np.uint8((1 << b) - 1)).reshape(-1)[:m]
        sc = np.frombuffer(scales, dtype="<f4")
        asym = q == "int" and p.asymmetric
        if asym:
            scale, offset = sc[0::2], sc[1::2]
        else:
            scale = sc
        ok = np.isfinite(scale) & (scale >= 0)
        if not ok.all():
            blk = int(np.flatnonzero(~ok)[0])
            raise UplinkError(111, f"scale {float(scale[blk])} of block {blk} is not a finite non-negative number")
        if asym and not np.isfinite(offset).all():
            blk = int(np.flatnonzero(~np.isfinite(offset))[0])
            raise UplinkError(111, f"offset {float(offset[blk])} of block {blk} is not finite")
        B = p.block_length(m)
        nblocks = scale.size
        with np.errstate(over="ignore", invalid="ignore"):
            if q == "int":
                if not asym:
                    top = (1 << b) - 1
                    badc = np.flatnonzero(codes == top)
                    if badc.size:
                        raise UplinkError(111, f"value code {top} at {int(badc[0])} is outside the symmetric int{b} range")
                    qmax = np.float32((1 << (b - 1)) - 1)
                    cf = codes.astype(np.float32) - qmax
                    vals = _per_block_mul(cf, scale, B, m, nblocks)
                else:
                    cf = codes.astype(np.float32)
                    vals = _per_block_mul(cf, scale, B, m, nblocks)
                    vals += np.repeat(offset, B)[:m]
            else:
                s = np.repeat(scale, B)[:m]
                vals = np.where(codes == 0, s, -s)
    if vals.dtype != np.float32:
        vals = vals.astype(np.float32)
    finite = np.isfinite(vals)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise UplinkError(704, f"frame holds a NaN or infinite value at transmitted index {bad}")
    return vals


def _per_block_mul(cf: np.ndarray, scale: np.ndarray, B: int, m: int, nblocks: int) -> np.ndarray:
    """cf[i] * scale[i // B] in float32 (a reshape when the blocks are full)."""
    full = m // B
    out = np.empty(m, dtype=np.float32)
    if full:
        np.multiply(cf[:full * B].reshape(full, B), scale[:full, None], out=out[:full * B].reshape(full, B))
    if full * B < m:
        np.multiply(cf[full * B:], scale[full], out=out[full * B:])
    return out


def parse_frame(data, layout=None, limits: Optional[dict] = None) -> ParsedFrame:
    """Checks one v1 frame completely and returns its header and transmitted values; raises
    UplinkError with the spec's code on the first rule it breaks."""
    if layout is not None:
        layout = normalize_layout(layout)
    # The default limits; with a layout, n may also reach the layout's (so a frame for another
    # model is reported as 300, not as over a limit). Servers that want a frame bounded by
    # their model call parse_frame(data, layout, limits_for_layout(layout)).
    lim = dict(DEFAULT_LIMITS)
    if layout is not None:
        lim["parameters"] = max(lim["parameters"], sum(element_count(s) for _, s in layout))
    if limits:
        lim.update(limits)
    mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    size = len(mv)
    if size < 4:
        if MAGIC.startswith(bytes(mv)):
            raise UplinkError(103, f"frame of {size} bytes ends inside the magic")
        raise UplinkError(100, "not an Uplink frame (bad magic)")
    if bytes(mv[0:4]) != MAGIC:
        raise UplinkError(100, f"not an Uplink frame (magic {bytes(mv[0:4]).hex()}, expected 55504c4b)")
    if size < 6:
        raise UplinkError(103, f"frame of {size} bytes ends inside the version")
    (version,) = struct.unpack_from("<H", mv, 4)
    if version != VERSION:
        raise UplinkError(101, f"frame version {version} is not supported (this decoder reads version 1)")
    if size < 12:
        raise UplinkError(103, f"frame of {size} bytes ends inside the preamble")
    flags, H = struct.unpack_from("<HI", mv, 6)
    if flags & ~FLAG_TABLE:
        raise UplinkError(102, f"unknown flag bits 0x{flags & ~FLAG_TABLE:04x}")
    if size > lim["frame"]:
        raise UplinkError(400, f"frame of {size} bytes exceeds the limit of {lim['frame']}")
    if H < MIN_HEADER:
        raise UplinkError(105, f"header length {H} < {MIN_HEADER}")
    if H > lim["header"]:
        raise UplinkError(401, f"header length {H} exceeds the limit of {lim['header']}")
    if size < 12 + H + 4:
        raise UplinkError(103, f"frame of {size} bytes cannot hold its header of {H} bytes and the header CRC")
    hdr_end = 12 + H
    (stored_crc,) = struct.unpack_from("<I", mv, hdr_end)
    if crc32c(mv[:hdr_end]) != stored_crc:
        raise UplinkError(200, "header checksum mismatch (the frame is damaged)")
    fp, rnd, samples, n, T, S, P = struct.unpack_from("<QQQQIIH", mv, 12)
    if not 1 <= n <= MAX_DIM:
        raise UplinkError(105, f"parameter count n={n} outside 1…2^48")
    if T < 1:
        raise UplinkError(105, "tensor count T must be at least 1")
    if n > lim["parameters"]:
        raise UplinkError(403, f"frame has {n} parameters, above the limit of {lim['parameters']}")
    if T > lim["tensors"]:
        raise UplinkError(402, f"frame has {T} tensors, above the limit of {lim['tensors']}")
    if S > lim["sections"]:
        raise UplinkError(405, f"frame has {S} sections, above the limit of {lim['sections']}")
    pos = 12 + MIN_HEADER
    if pos + P > hdr_end:
        raise UplinkError(105, f"pipeline descriptor of {P} bytes runs past the header")
    pipe = parse_descriptor(bytes(mv[pos:pos + P]))
    pos += P
    has_table = bool(flags & FLAG_TABLE)
    if has_table:
        tstart = pos
        tensors, pos, total = _table(mv, pos, hdr_end, T)
        if total > lim["parameters"]:
            raise UplinkError(403, f"tensor table sums to {total} parameters, above the limit of {lim['parameters']}")
        if total != n:
            raise UplinkError(105, f"tensor element counts sum to {total}, the header says n={n}")
        if fnv1a64(struct.pack("<I", T) + bytes(mv[tstart:pos])) != fp:
            raise UplinkError(110, "header fingerprint differs from its own tensor table's")
        if layout is not None and layout_fingerprint(layout) != fp:
            raise UplinkError(300, "frame is for another model (its fingerprint differs from the layout's; "
                                   "tensors are compared by name, shape and order, and .safetensors layouts are sorted by name)")
        frame_layout = tensors
    else:
        if layout is None:
            raise UplinkError(302, "frame carries no tensor table; pass the model layout to decode it")
        if layout_fingerprint(layout) != fp:
            raise UplinkError(300, "frame is for another model (its fingerprint differs from the layout's)")
        if len(layout) != T:
            raise UplinkError(301, f"frame has {T} tensors, the layout {len(layout)}")
        ln = sum(element_count(s) for _, s in layout)
        if ln != n:
            raise UplinkError(301, f"frame has {n} parameters, the layout {ln}")
        frame_layout = layout
    if hdr_end - pos != S * ENTRY:
        raise UplinkError(105, f"{hdr_end - pos} header bytes are left for {S} section entries of {ENTRY} bytes")

    fixed = pipe.fixed_count(n)
    allowed = {}
    if fixed is None:
        allowed[INDICES] = (3, 12 + (n + 7) // 8)
        sc_max, va_max = pipe.stream_lengths(n)
        allowed[SCALES] = (0, sc_max)
        allowed[VALUES] = (0, va_max)
    else:
        sc, va = pipe.stream_lengths(fixed)
        allowed[SCALES] = (sc, sc)
        allowed[VALUES] = (va, va)
    if not pipe.has_scales:
        allowed[SCALES] = (0, 0)
    order = [kd for kd in ORDER if kd in allowed and allowed[kd][1] > 0]
    have = {kd: 0 for kd in allowed}
    cur = -1
    sections = []
    offset = hdr_end + 4
    for i in range(S):
        kind, codec, level, reserved, crc, raw_len, stored_len = struct.unpack_from("<BBBBIQQ", mv, pos)
        pos += ENTRY
        if kind not in order or order.index(kind) < cur:
            raise UplinkError(108, f"section {i}: stream kind {kind} is not the expected stream")
        nxt = order.index(kind)
        for j in range(max(cur, 0), nxt):
            if have[order[j]] < allowed[order[j]][0]:
                raise UplinkError(108, f"section {i}: stream kind {kind} where the {STREAMS[order[j]]} stream is expected")
        cur = nxt
        if codec not in CODECS:
            raise UplinkError(107, f"section {i}: unknown codec {codec}")
        if reserved:
            raise UplinkError(109, f"section {i}: reserved byte is {reserved}, not 0")
        if not 1 <= raw_len <= MAX_SECTION_RAW:
            raise UplinkError(404, f"section {i}: raw length {raw_len} outside 1…64 MiB")
        if codec == 0:
            if stored_len != raw_len:
                raise UplinkError(105, f"section {i}: stored section with stored length {stored_len} ≠ raw length {raw_len}")
        else:
            if not 1 <= stored_len <= raw_len - 1:
                raise UplinkError(105, f"section {i}: compressed stored length {stored_len} outside 1…{raw_len - 1}")
            if raw_len > RATIO[codec] * stored_len:
                raise UplinkError(105, f"section {i}: raw length {raw_len} > {RATIO[codec]} × stored length {stored_len}")
        have[kind] += raw_len
        if have[kind] > allowed[kind][1]:
            raise UplinkError(404, f"section {i}: the {STREAMS[kind]} stream is longer than {allowed[kind][1]} bytes")
        sections.append({"index": i, "stream": STREAMS[kind], "kind": kind, "codec": CODECS[codec], "codec_id": codec,
                         "level": level, "crc32c": crc, "raw_bytes": raw_len, "stored_bytes": stored_len, "offset": offset})
        offset += stored_len
    for kd, (lo, hi) in allowed.items():
        if not lo <= have[kd] <= hi:
            if have[kd] == 0 and lo > 0:
                raise UplinkError(111, f"the {STREAMS[kd]} stream is missing")
            raise UplinkError(111, f"the {STREAMS[kd]} stream has {have[kd]} bytes, allowed {lo}…{hi}")
    if offset > size:
        raise UplinkError(103, f"frame of {size} bytes ends before its sections end at byte {offset}")
    if offset < size:
        raise UplinkError(104, f"{size - offset} bytes after the last section")
    for s in sections:
        if crc32c(mv[s["offset"]:s["offset"] + s["stored_bytes"]]) != s["crc32c"]:
            raise UplinkError(201, f"section {s['index']} ({s['stream']}) checksum mismatch (the frame is damaged)")
    streams = {}
    for kd in allowed:
        parts = [_decompress(s["codec_id"], mv[s["offset"]:s["offset"] + s["stored_bytes"]], s["raw_bytes"], s["index"])
                 for s in sections if s["kind"] == kd]
        streams[kd] = bytes(parts[0]) if len(parts) == 1 else b"".join(bytes(x) for x in parts)
    info = None
    if fixed is None:
        method, r, k, _ = index_summary(streams[INDICES], n)
        sc, va = pipe.stream_lengths(k)
        if have[SCALES] != sc or have[VALUES] != va:
            raise UplinkError(111, f"k = {k}: the scales and values streams have {have[SCALES]} and {have[VALUES]} bytes, need {sc} and {va}")
        positions = decode_indices(streams[INDICES], n)
        m = int(positions.size)
        info = (method, r, k)
        vals = _values(pipe, streams[SCALES], streams[VALUES], m)
    else:
        # Dense, or random-k: the values and scales are checked for m before any position is
        # regenerated.
        m = fixed
        vals = _values(pipe, streams[SCALES], streams[VALUES], m)
        positions = randk_positions(n, m, pipe.seed, rnd) if pipe.sparsifier == "randk" else None
    return ParsedFrame(version, flags, H, fp, rnd, samples, n, list(frame_layout), has_table, pipe, sections,
                       positions, vals, size, info)
