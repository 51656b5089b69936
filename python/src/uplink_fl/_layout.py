"""Model layouts: the ordered (name, shape) list of a model's float32 tensors, its tensor table
bytes and its 64-bit FNV-1a fingerprint (docs/wire-format.md §6)."""
from __future__ import annotations

import struct
from typing import Mapping, Sequence, Tuple, Union

import numpy as np

from ._errors import UplinkError, quoted

__all__ = ["Layout", "layout_of", "normalize_layout", "table_bytes", "fingerprint", "fnv1a64", "element_count"]

Layout = Sequence[Tuple[str, Tuple[int, ...]]]

MAX_DIM = 1 << 48
MAX_NAME = 1024


def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a of `data`."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def element_count(shape) -> int:
    c = 1
    for d in shape:
        c *= int(d)
    return c


def name_key(name: str) -> bytes:
    """Tensor names sort and compare by their UTF-8 bytes (no Unicode normalization)."""
    return name.encode("utf-8", errors="surrogatepass")


def normalize_layout(layout) -> list:
    """A checked list of (name, shape tuple) from any iterable of (name, shape) pairs or a
    mapping of name to shape; raises UplinkError 303 for an invalid layout."""
    if isinstance(layout, Mapping):
        layout = list(layout.items())
    out = []
    seen = set()
    for entry in layout:
        try:
            name, shape = entry
        except (TypeError, ValueError):
            raise UplinkError(303, f"layout entry {quoted(repr(entry))} is not a (name, shape) pair") from None
        if not isinstance(name, str):
            raise UplinkError(303, f"layout name {quoted(repr(name))} is not a string")
        try:
            nb = name.encode("utf-8")
        except UnicodeEncodeError:
            raise UplinkError(303, f"layout name {quoted(name)} is not valid UTF-8") from None
        if not 1 <= len(nb) <= MAX_NAME:
            raise UplinkError(303, f"layout name {quoted(name)} must have 1…{MAX_NAME} UTF-8 bytes")
        if nb in seen:
            raise UplinkError(303, f"layout names {quoted(name)} twice")
        seen.add(nb)
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise UplinkError(303, f"shape of {quoted(name)} is not a sequence of integers") from None
        if len(dims) > 64:
            raise UplinkError(303, f"tensor {quoted(name)} has rank {len(dims)} > 64")
        for d in dims:
            if d < 0 or d > MAX_DIM:
                raise UplinkError(406, f"tensor {quoted(name)}: dimension {d} outside 0…2^48")
        if element_count(dims) > MAX_DIM:
            raise UplinkError(406, f"tensor {quoted(name)} has more than 2^48 elements")
        out.append((name, dims))
    if not out:
        raise UplinkError(303, "a layout needs at least one tensor")
    return out


def table_bytes(layout: Layout) -> bytes:
    """The §6 tensor table bytes of a (normalized) layout."""
    parts = []
    for name, shape in layout:
        nb = name.encode("utf-8")
        parts.append(struct.pack("<H", len(nb)) + nb + struct.pack("<B", len(shape)) + struct.pack(f"<{len(shape)}Q", *shape))
    return b"".join(parts)


def fingerprint(layout: Layout) -> int:
    """The model fingerprint: FNV-1a 64 of u32 T then the tensor table bytes."""
    layout = list(layout)
    return fnv1a64(struct.pack("<I", len(layout)) + table_bytes(layout))


UpdateLike = Union[np.ndarray, Mapping[str, np.ndarray]]


def layout_of(update: UpdateLike) -> list:
    """The layout of an update, in frame order: a mapping's tensors sorted by name (UTF-8
    bytes), as Swift lays out a ``.safetensors`` file; one array is the tensor ``arr_0``."""
    if isinstance(update, Mapping):
        names = sorted(update, key=name_key)
        return normalize_layout([(n, tuple(np.shape(update[n]))) for n in names])
    return normalize_layout([("arr_0", tuple(np.shape(update)))])


def flatten(update: UpdateLike, layout: Layout) -> np.ndarray:
    """The flat float32 vector of an update in layout order (a copy only where needed)."""
    if isinstance(update, Mapping):
        parts = []
        for name, shape in layout:
            a = np.asarray(update[name])
            parts.append(_as_float32(a, name).reshape(-1))
        return np.concatenate(parts) if len(parts) > 1 else np.ascontiguousarray(parts[0])
    return np.ascontiguousarray(_as_float32(np.asarray(update), "arr_0").reshape(-1))


def _as_float32(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.float32:
        return a
    if a.dtype.kind != "f":
        raise UplinkError(701, f"tensor {quoted(name)} has dtype {a.dtype}, not a float type")
    return a.astype(np.float32)


def split(flat: np.ndarray, layout: Layout) -> dict:
    """Tensors of a flat vector, by name, in layout order (views of `flat`)."""
    out = {}
    start = 0
    for name, shape in layout:
        c = element_count(shape)
        out[name] = flat[start:start + c].reshape(shape)
        start += c
    return out
