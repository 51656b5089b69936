"""The encoder: error feedback, sparsifiers, quantizers, index coding and sections, computed
exactly as the Swift encoder computes them (binary32 arithmetic in the same order), so a
deterministic pipeline gives the same frame bytes in Python and in Swift."""
from __future__ import annotations

import math
import struct
import zlib
from typing import Mapping, Optional

import numpy as np

from ._crc32c import crc32c
from ._errors import UplinkError, quoted
from ._layout import element_count, fingerprint as layout_fingerprint, flatten, layout_of, normalize_layout, table_bytes
from ._pipeline import Amount, Pipeline, parse_pipeline
from ._randk import randk_positions, splitmix64_outputs
from ._rice import encode_indices
from ._state import parse_state, serialize_state

from ._lz4 import compress_block

__all__ = ["Encoder"]

DEFAULT_SECTION = 1 << 20
MAX_SECTION = 64 * 1024 * 1024
F32_MAX = np.float32(3.4028234663852886e38)


class Encoder:
    """Encodes the updates of one model with one pipeline into Uplink frames.

    >>> enc = Encoder("ef | topk 1% | int8 | lz4")
    >>> frame = enc.encode({"w": w_update, "b": b_update}, round=3, samples=600)
    >>> saved = enc.state()          # the error-feedback residual, to restore with Encoder(..., state=saved)

    ``update`` is a mapping of tensor name to float array (tensors are laid out sorted by name,
    by UTF-8 bytes, the rule of Swift's ``.safetensors`` input) or one array (the tensor
    ``arr_0``). The layout is fixed by ``layout=`` or by the first update; later updates must
    match it. An encode that fails leaves the residual untouched.
    """

    def __init__(self, pipeline: str, state: Optional[bytes] = None, *, layout=None,
                 include_tensor_table: bool = True, section_bytes: int = DEFAULT_SECTION):
        self.pipeline: Pipeline = parse_pipeline(pipeline) if isinstance(pipeline, str) else pipeline
        if self.pipeline.clip is not None:
            raise UplinkError(602, "the Python encoder does not implement the local-DP stages clip and noise; "
                                   "use the Swift encoder (uplink encode) for them")
        if not isinstance(section_bytes, int) or not 1 <= section_bytes <= MAX_SECTION:
            raise UplinkError(707, f"section_bytes must be in 1…{MAX_SECTION}")
        self.include_tensor_table = bool(include_tensor_table)
        self.section_bytes = section_bytes
        self._pending_state = None
        self.layout = None
        self._residual: Optional[np.ndarray] = None
        self._rounds = 0
        if state is not None and len(state) and not self.pipeline.has_ef:
            raise UplinkError(801, f"pipeline \"{self.pipeline}\" has no error-feedback stage to restore a state into")
        if state is not None and len(state):
            self._pending_state = bytes(state)
        if layout is not None:
            self._set_layout(normalize_layout(layout))

    def _set_layout(self, layout):
        self.layout = layout
        self.n = sum(element_count(s) for _, s in layout)
        if self.n < 1:
            raise UplinkError(303, "a model needs at least one parameter")
        self._offsets = np.cumsum([0] + [element_count(s) for _, s in layout])
        if self.pipeline.has_ef:
            if self._pending_state is not None:
                self._residual, self._rounds = parse_state(self._pending_state, layout, self.pipeline)
                self._pending_state = None
            else:
                self._residual = np.zeros(self.n, dtype=np.float32)

    def state(self) -> bytes:
        """The error-feedback state (``UPLS`` bytes, as Swift's), or ``b""`` when the pipeline has
        no ``ef`` stage. Before the first encode without ``layout=``, the state given to the
        constructor (or ``b""``)."""
        if not self.pipeline.has_ef:
            return b""
        if self._residual is None:
            return self._pending_state or b""
        return serialize_state(self.layout, self.pipeline, self._residual, self._rounds)

    @property
    def residual(self) -> Optional[np.ndarray]:
        """A copy of the error-feedback residual (flat float32), or None."""
        return None if self._residual is None else self._residual.copy()

    def encode(self, update, round: int = 0, samples: int = 1) -> bytes:
        """The frame for `update` (see the class docs); `round` and `samples` (the client's
        FedAvg weight) go into the header as u64."""
        for what, v in (("round", round), ("samples", samples)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) < 1 << 64:
                raise UplinkError(707, f"{what} must be an integer in 0…2^64−1, not {v!r}")
        round, samples = int(round), int(samples)
        layout = layout_of(update)
        if self.layout is None:
            self._set_layout(layout)
        elif layout != list(self.layout):
            if isinstance(update, Mapping) or len(self.layout) != 1:
                raise UplinkError(304, f"update's tensors {_brief(layout)} differ from the encoder's layout {_brief(self.layout)} "
                                       "(tensors are matched by name and shape; a mapping is laid out sorted by name)")
            if element_count(layout[0][1]) != self.n:
                raise UplinkError(304, f"update has {element_count(layout[0][1])} values, the layout {self.n}")
        x = flatten(update, self.layout if isinstance(update, Mapping) else layout)
        if x.size != self.n:
            raise UplinkError(304, f"update has {x.size} values, the layout {self.n}")
        self._check_finite(x, "update value")
        p = self.pipeline
        if p.has_ef:
            if self._rounds >= (1 << 64) - 1:
                raise UplinkError(800, "error-feedback state has encoded 2^64 − 1 rounds; it cannot count another")
            acc = self._residual + x
            self._check_range(acc, "update plus residual")
            streams, residual = self._compress(acc, round, keep_error=True)
            if p.ef_decay != 1:
                residual *= np.float32(p.ef_decay)
            frame = self._write(streams, round, samples)
            self._residual = residual
            self._rounds += 1
            return frame
        self._check_range(x, "update value")
        streams, _ = self._compress(x, round, keep_error=False)
        return self._write(streams, round, samples)

    # -----------------------------------------------------------------------------------------

    def _where(self, i: int) -> str:
        t = int(np.searchsorted(self._offsets, i, side="right")) - 1
        return f"index {i} (tensor {quoted(self.layout[t][0])}, element {i - int(self._offsets[t])})"

    def _check_finite(self, x: np.ndarray, what: str):
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            i = int(bad[0])
            raise UplinkError(704, f"{what} {float(x[i])} at {self._where(i)} is not finite")

    def _check_range(self, x: np.ndarray, what: str):
        q = self.pipeline.quantizer
        if q == "fp16":
            limit = np.float32(65519.996)
        elif q == "bf16":
            limit = np.array([0x7F7F7FFF], dtype=np.uint32).view(np.float32)[0]
        else:
            bad = np.flatnonzero(~np.isfinite(x))
            if bad.size:
                i = int(bad[0])
                raise UplinkError(705, f"{what} at index {i} ({float(x[i])}) is outside the {q} range")
            return
        bad = np.flatnonzero(~(np.abs(x) <= limit))
        if bad.size:
            i = int(bad[0])
            raise UplinkError(705, f"{what} at index {i} ({float(x[i])}) is outside the {q} range")

    def _select(self, x: np.ndarray, round: int) -> np.ndarray:
        p = self.pipeline
        n = x.size
        keys = x.view(np.uint32) & np.uint32(0x7FFFFFFF)
        if p.sparsifier == "randk":
            return randk_positions(n, p.amount.k(n), p.seed, round)
        if p.sparsifier == "threshold":
            t = np.float32(p.tau).view(np.uint32) & np.uint32(0x7FFFFFFF)
            return np.flatnonzero(keys >= t)
        pick = _topk if p.sparsifier == "topk" else (lambda kk, k: _sampled(kk, k, p.sample))
        if p.scope == "global":
            return pick(keys, p.amount.k(n))
        f = p.amount.fraction_of(n)
        parts = []
        for t in range(len(self.layout)):
            lo, hi = int(self._offsets[t]), int(self._offsets[t + 1])
            if hi > lo:
                parts.append(pick(keys[lo:hi], Amount(fraction=f).k(hi - lo)) + lo)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def _compress(self, x: np.ndarray, round: int, keep_error: bool):
        """The streams of `x`, and (keep_error) the residual: x with each transmitted entry
        replaced by its quantization error."""
        p = self.pipeline
        streams = []
        residual = None
        if p.sparsifier is not None:
            pos = self._select(x, round).astype(np.int64)
            kept = x[pos]
            scales, values, err = _quantize(p, kept, round, keep_error)
            if keep_error:
                residual = x  # the caller's fresh u + e: untransmitted entries keep their value
                residual[pos] = err
            if p.sparsifier != "randk":
                streams.append((2, encode_indices(pos, x.size)))
        else:
            scales, values, err = _quantize(p, x, round, keep_error)
            residual = err
        if p.has_scales:
            streams.append((3, scales))
        streams.append((1, values))
        return streams, residual

    def _write(self, streams, round: int, samples: int) -> bytes:
        p = self.pipeline
        entries = []
        payloads = []
        step = self.section_bytes
        for kind, data in streams:
            mv = memoryview(data)
            for start in range(0, len(data), step):
                raw = mv[start:start + step]
                comp = _compress_section(p.codec, p.level, raw)
                if comp is None:
                    entries.append(struct.pack("<BBBBIQQ", kind, 0, 0, 0, crc32c(raw), len(raw), len(raw)))
                    payloads.append(raw)
                else:
                    codec = 1 if p.codec == "lz4" else 2
                    entries.append(struct.pack("<BBBBIQQ", kind, codec, p.level, 0, crc32c(comp), len(raw), len(comp)))
                    payloads.append(comp)
        desc = p.descriptor()
        table = table_bytes(self.layout) if self.include_tensor_table else b""
        H = 42 + len(desc) + len(table) + 24 * len(entries)
        head = b"UPLK" + struct.pack("<HHI", 1, 1 if self.include_tensor_table else 0, H) + struct.pack(
            "<QQQQIIH", layout_fingerprint(self.layout), round, samples, self.n, len(self.layout), len(entries), len(desc)
        ) + desc + table + b"".join(entries)
        return b"".join([head, struct.pack("<I", crc32c(head))] + [bytes(x) for x in payloads])


def _brief(layout) -> str:
    items = [f"{name}{list(shape)}" for name, shape in list(layout)[:4]]
    return "[" + ", ".join(items) + (", …" if len(layout) > 4 else "") + "]"


SAMPLED_SECTION = 1 << 18
SAMPLE_PIECE = 1 << 14


def _compress_section(codec: str, level: int, raw) -> Optional[bytes]:
    """The compressed section, or None when it would not be smaller (it is then stored).

    A section of at least 256 KiB whose sample (four 16 KiB pieces, each compressed alone) does
    not shrink by 1% is stored without compressing it (docs/wire-format.md §7).
    """
    if codec == "stored" or len(raw) <= 1:
        return None
    if len(raw) >= SAMPLED_SECTION:
        stored = 0
        for p in range(4):
            start = p * (len(raw) - SAMPLE_PIECE) // 3
            piece = _compress_one(codec, level, raw[start:start + SAMPLE_PIECE])
            stored += SAMPLE_PIECE if piece is None else len(piece)
        if stored * 100 > 4 * SAMPLE_PIECE * 99:
            return None
    return _compress_one(codec, level, raw)


def _compress_one(codec: str, level: int, raw) -> Optional[bytes]:
    if codec == "lz4":
        return compress_block(raw, level)
    else:
        c = zlib.compressobj(level, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY)
        out = c.compress(raw) + c.flush()
    return out if len(out) < len(raw) else None


# ---------------------------------------------------------------------------------------------
# Selection: exact top-k by magnitude bits, ties to the lower index

def _topk(keys: np.ndarray, k: int) -> np.ndarray:
    n = keys.size
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    s = min(n, 1 << 16)
    sample = keys[(np.arange(s, dtype=np.int64) * n) // s]
    rank = min(s - 1, int(k / n * s * 1.3) + 8)
    t = np.partition(sample, s - 1 - rank)[s - 1 - rank]
    cand = np.flatnonzero(keys >= t)
    if not k <= cand.size <= 2 * k + 4096:
        kth = np.partition(keys, n - k)[n - k]
        cand = np.flatnonzero(keys >= kth)
    ck = keys[cand]
    kth = np.partition(ck, ck.size - k)[ck.size - k]
    sel = ck > kth
    need = k - int(np.count_nonzero(sel))
    if need:
        sel[np.flatnonzero(ck == kth)[:need]] = True
    return cand[sel]


def _sampled(keys: np.ndarray, k: int, sample_fraction: float) -> np.ndarray:
    n = keys.size
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    s = max(1, min(n, int(sample_fraction * float(n))))
    sample = keys[(np.arange(s, dtype=np.int64) * n) // s]
    x = k / n * s
    rank = min(s - 1, max(0, int(math.floor(x + 0.5)) - 1))
    t = max(int(np.partition(sample, s - 1 - rank)[s - 1 - rank]), 1)
    cand = np.flatnonzero(keys >= np.uint32(t))
    if cand.size > k:
        return _topk(keys, k)
    return cand


# ---------------------------------------------------------------------------------------------
# Quantizers: (scales bytes, values bytes, error or None)

def _blocks(m: int, B: int):
    full = m // B
    return full, m - full * B


def _block_reduce(v: np.ndarray, B: int, fn) -> np.ndarray:
    m = v.size
    full, tail = _blocks(m, B)
    parts = []
    if full:
        parts.append(fn(v[:full * B].reshape(full, B), axis=1))
    if tail:
        parts.append(np.atleast_1d(fn(v[full * B:], axis=0)))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=v.dtype)


def _expand(per_block: np.ndarray, B: int, m: int) -> np.ndarray:
    return np.repeat(per_block, B)[:m]


def _pack(codes: np.ndarray, bits: int) -> bytes:
    if bits == 8:
        return codes.astype(np.uint8).tobytes()
    if bits == 1:
        return np.packbits(codes.astype(np.uint8), bitorder="little").tobytes()
    per = 8 // bits
    m = codes.size
    padded = np.zeros(-(-m // per) * per, dtype=np.uint8)
    padded[:m] = codes
    shifts = np.arange(per, dtype=np.uint8) * np.uint8(bits)
    return np.bitwise_or.reduce(padded.reshape(-1, per) << shifts[None, :], axis=1).astype(np.uint8).tobytes()


def _quantize(p: Pipeline, x: np.ndarray, round: int, keep_error: bool):
    m = x.size
    q = p.quantizer
    if q == "fp32":
        return b"", x.astype("<f4").tobytes(), (np.zeros(m, dtype=np.float32) if keep_error else None)
    if q == "fp16":
        h = x.astype(np.float16)
        bad = np.flatnonzero(np.isinf(h))
        if bad.size:
            i = int(bad[0])
            raise UplinkError(705, f"value {float(x[i])} at transmitted index {i} is outside the fp16 range")
        return b"", h.astype("<f2").tobytes(), (x - h.astype(np.float32) if keep_error else None)
    if q == "bf16":
        u = x.view(np.uint32)
        h = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
        if ((h & np.uint16(0x7F80)) == np.uint16(0x7F80)).any():
            i = int(np.flatnonzero((h & np.uint16(0x7F80)) == np.uint16(0x7F80))[0])
            raise UplinkError(705, f"value {float(x[i])} at transmitted index {i} is outside the bf16 range")
        dec = (h.astype(np.uint32) << np.uint32(16)).view(np.float32)
        return b"", h.astype("<u2").tobytes(), (x - dec if keep_error else None)
    if q in ("sign", "ternary"):
        B = p.block or max(m, 1)
        a = np.abs(x).astype(np.float64)
        sums = _block_reduce(a, B, lambda v, axis: np.cumsum(v, axis=axis).take(-1, axis=axis))
        counts = np.full(sums.size, B, dtype=np.float64)
        if sums.size and m % B:
            counts[-1] = m % B
        scale = (sums / counts).astype(np.float32)
        neg = x < 0
        s = _expand(scale, B, m)
        err = (x - np.where(neg, -s, s)) if keep_error else None
        return scale.astype("<f4").tobytes(), _pack(neg, 1), err
    # int
    bits, B = p.bits, p.block
    qmax = (1 << (bits - 1)) - 1
    top = np.float32(2 * qmax if not p.asymmetric else (1 << bits) - 1)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if not p.asymmetric:
            amax = _block_reduce(np.abs(x), B, np.max) if m else np.zeros(0, dtype=np.float32)
            scale = (amax / np.float32(qmax)).astype(np.float32)
            scales_bytes = scale.astype("<f4").tobytes()
            lo = None
        else:
            lo = _block_reduce(x, B, np.min) if m else np.zeros(0, dtype=np.float32)
            hi = _block_reduce(x, B, np.max) if m else np.zeros(0, dtype=np.float32)
            scale = ((hi - lo) / top).astype(np.float32)
            scale[~np.isfinite(scale)] = F32_MAX
            inter = np.empty(2 * scale.size, dtype=np.float32)
            inter[0::2] = scale
            inter[1::2] = lo
            scales_bytes = inter.astype("<f4").tobytes()
        inv = np.where(scale > 0, np.float32(1) / np.where(scale > 0, scale, np.float32(1)), np.float32(0)).astype(np.float32)
        inv_e = _expand(inv, B, m)
        if not p.asymmetric:
            t = x * inv_e + np.float32(qmax)
        else:
            lo_e = _expand(lo, B, m)
            t = (x - lo_e) * inv_e + np.float32(0)
        if p.stochastic:
            u = (splitmix64_outputs(p.qseed, round, m) >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
            t = np.floor(t + u)
        else:
            t = np.rint(t)
        t = np.minimum(np.maximum(t, np.float32(0)), top).astype(np.float32)
        codes = t.astype(np.uint8)
        err = None
        if keep_error:
            sc_e = _expand(scale, B, m)
            if not p.asymmetric:
                err = x - (t - np.float32(qmax)) * sc_e
            else:
                err = x - (lo_e + t * sc_e)
    return scales_bytes, _pack(codes, bits), err
