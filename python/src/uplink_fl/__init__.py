"""uplink_fl: Uplink frames for Python federated-learning servers and clients.

Decode, accumulate and inspect the frames Uplink clients send (every stage and codec of
``docs/wire-format.md``), and encode updates into frames byte-identical to the Swift encoder's
for deterministic pipelines::

    import uplink_fl
    update = uplink_fl.decode(frame)                      # {"layer.weight": ndarray, ...}
    uplink_fl.accumulate(frame, into=running_sum, weight=600)
    enc = uplink_fl.Encoder("ef | topk 1% | int8 | lz4")
    frame = enc.encode({"w": dw, "b": db}, round=3, samples=600)

Every refusal raises :class:`UplinkError` with the spec's numeric ``code``.
"""
from __future__ import annotations

import math

import numpy as np

from ._decode import ParsedFrame, parse_frame
from ._encode import Encoder
from ._errors import UplinkError
from ._layout import layout_of, split
from ._pipeline import parse_pipeline

__all__ = ["decode", "accumulate", "inspect", "Encoder", "UplinkError", "layout_of", "canonical_pipeline", "__version__"]
__version__ = "0.1.0"


def decode(data: bytes, layout=None) -> dict:
    """The update a frame carries, as float32 arrays by tensor name in frame order (a frame made
    from one unnamed array gives ``{"arr_0": ...}``). ``layout`` (a list of (name, shape) or a
    mapping of name to shape) is required for a frame without a tensor table and checked
    against the frame otherwise. Raises :class:`UplinkError` (with the spec's code) for any
    frame the wire format refuses."""
    f = parse_frame(data, layout)
    return split(f.dense(), f.layout)


def accumulate(data: bytes, into: np.ndarray, weight: float = 1.0, layout=None) -> dict:
    """Adds ``weight × update`` into ``into``, a flat float64 or float32 array of the model's n
    parameters (any shape with n elements, C-contiguous), in O(k) for a sparse frame: the
    arithmetic of Swift's ``FrameDecoder.accumulate`` (``d += w·v`` in the array's precision).
    The frame is checked completely first: a bad frame raises :class:`UplinkError` and leaves
    ``into`` untouched. Returns the frame's header summary (as :func:`inspect`, without the
    per-section list)."""
    if not isinstance(into, np.ndarray) or into.dtype not in (np.float64, np.float32):
        raise UplinkError(707, "accumulate needs a float64 or float32 numpy array to add into")
    if not into.flags.c_contiguous or not into.flags.writeable:
        raise UplinkError(707, "accumulate needs a writeable, C-contiguous array")
    w = float(weight)
    if not math.isfinite(w):
        raise UplinkError(707, f"weight {weight!r} is not finite")
    f = parse_frame(data, layout)
    flat = into.reshape(-1)
    if flat.size != f.n:
        raise UplinkError(304, f"destination has {flat.size} values, the frame's model {f.n}")
    # In chunks of 2^18 values through one reused buffer: a dense 10M-value frame then costs no
    # model-sized temporaries (and no page faults on them).
    chunk = 1 << 18
    buf = np.empty(min(chunk, f.values.size), dtype=into.dtype)
    wt = into.dtype.type(w)
    for start in range(0, f.values.size, chunk):
        v = f.values[start:start + chunk]
        b = buf[:v.size]
        np.multiply(v, wt, out=b, dtype=into.dtype)   # d += w·v in the destination's precision
        if f.positions is None:
            flat[start:start + v.size] += b
        else:
            flat[f.positions[start:start + v.size]] += b
    return _summary(f, sections=False)


def inspect(data: bytes, layout=None) -> dict:
    """Every header field of a frame and what it costs, after checking and decoding it fully
    (the fields of ``uplink inspect --json``)."""
    return _summary(parse_frame(data, layout), sections=True)


def canonical_pipeline(spec: str) -> str:
    """The canonical text of a pipeline spec (every parameter spelled out), as Swift prints it;
    raises UplinkError 600–603 for a spec that does not parse."""
    return str(parse_pipeline(spec))


def _summary(f: ParsedFrame, sections: bool) -> dict:
    m = int(f.values.size)
    out = {
        "format_version": f.version,
        "flags": f.flags,
        "bytes": f.size,
        "header_bytes": f.header_length,
        "fingerprint": f"{f.fingerprint:016x}",
        "round": f.round,
        "samples": f.samples,
        "parameters": f.n,
        "tensor_count": len(f.layout),
        "tensors": [{"name": name, "shape": list(shape)} for name, shape in f.layout],
        "pipeline": str(f.pipeline),
        "transmitted": m,
        "density": m / f.n,
        "float32_bytes": 4 * f.n,
        "ratio_to_float32": 4 * f.n / f.size,
        "checksums_verified": True,
        "decoded_and_verified": True,
    }
    if f.index_info is not None:
        method, r, k = f.index_info
        index_bytes = sum(s["raw_bytes"] for s in f.sections if s["stream"] == "indices")
        out["index_method"] = "rice" if method == 0 else "bitmap"
        out["rice_parameter"] = r
        if k:
            out["bits_per_position"] = 8 * index_bytes / k
            if k < f.n:
                out["bits_per_position_bound"] = (math.lgamma(f.n + 1) - math.lgamma(k + 1) - math.lgamma(f.n - k + 1)) / math.log(2) / k
    if sections:
        out["sections"] = [{"index": s["index"], "stream": s["stream"], "codec": s["codec"], "level": s["level"],
                            "crc32c": f"{s['crc32c']:08x}", "raw_bytes": s["raw_bytes"], "stored_bytes": s["stored_bytes"],
                            "offset": s["offset"]} for s in f.sections]
    return out
