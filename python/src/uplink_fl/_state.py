"""Error-feedback state blobs, the ``UPLS`` format of docs/pipeline.md (the same bytes as
Swift's ``ErrorFeedbackState.serialized()``)."""
from __future__ import annotations

import struct

import numpy as np

from ._crc32c import crc32c
from ._errors import UplinkError
from ._layout import fingerprint as layout_fingerprint, element_count
from ._pipeline import Pipeline, parse_descriptor

__all__ = ["serialize_state", "parse_state"]

MAGIC = b"UPLS"
VERSION = 1


def serialize_state(layout, pipeline: Pipeline, residual: np.ndarray, rounds: int) -> bytes:
    key = pipeline.descriptor(with_codec=False)
    head = MAGIC + struct.pack("<HHQQQH", VERSION, 0, layout_fingerprint(layout), residual.size, rounds, len(key)) + key
    body = head + np.ascontiguousarray(residual, dtype="<f4").tobytes()
    return body + struct.pack("<I", crc32c(body))


def parse_state(blob: bytes, layout, pipeline: Pipeline):
    """(residual float32 array, rounds encoded) from a state blob, checked against the model
    and pipeline: 800 for a damaged or unknown blob, 801 for another model or pipeline."""
    blob = bytes(blob)
    if len(blob) < 38 or blob[:4] != MAGIC:
        raise UplinkError(800, "error-feedback state is not an Uplink state file")
    (version,) = struct.unpack_from("<H", blob, 4)
    if version != VERSION:
        raise UplinkError(800, f"error-feedback state has unknown version {version}")
    body = blob[:-4]
    if crc32c(body) != struct.unpack_from("<I", blob, len(blob) - 4)[0]:
        raise UplinkError(800, "error-feedback state is corrupted (checksum mismatch)")
    reserved, fp, n, rounds, keylen = struct.unpack_from("<HQQQH", body, 6)
    if reserved != 0:
        raise UplinkError(800, f"error-feedback state has a non-zero reserved field ({reserved})")
    pos = 6 + 2 + 8 + 8 + 8 + 2
    if pos + keylen > len(body):
        raise UplinkError(800, "error-feedback state is truncated")
    key = body[pos:pos + keylen]
    pos += keylen
    want_n = sum(element_count(s) for _, s in layout)
    want_fp = layout_fingerprint(layout)
    if fp != want_fp or n != want_n:
        raise UplinkError(801, f"error-feedback state is for model {fp:016x} with {n} parameters, not {want_fp:016x} with {want_n}")
    if key != pipeline.descriptor(with_codec=False):
        try:
            other = str(parse_descriptor(key))
        except UplinkError:
            other = "another pipeline"
        raise UplinkError(801, f"error-feedback state is for pipeline \"{other}\", not \"{pipeline}\"")
    if len(body) - pos != 4 * n:
        raise UplinkError(800, f"error-feedback state has {len(body) - pos} residual bytes for {n} parameters")
    residual = np.frombuffer(body, dtype="<f4", offset=pos, count=n).astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(residual))
    if bad.size:
        raise UplinkError(800, f"error-feedback state holds a non-finite residual at {int(bad[0])}")
    return residual, rounds
