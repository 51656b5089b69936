"""Tensor files: ``.safetensors`` and ``.npy`` readers with the rules and limits of
docs/wire-format.md §6.1 (the Swift readers' codes), and writers (float32)."""
from __future__ import annotations

import json
import struct

import numpy as np

from ._errors import UplinkError, quoted as _q
from ._layout import element_count as _shape_count, name_key as _name_key

MAX_DIM = 1 << 48

# .safetensors header rules (doc §6.1), the same as the Swift reader's, with its codes.
ST_MAX_HEADER = 100_000_000   # [401]
ST_MAX_TENSORS = 1 << 20      # [402]
ST_MAX_RANK = 64              # [407]
ST_MAX_NAME = 1024            # [407] (UTF-8 bytes)
ST_MAX_DEPTH = 64             # nesting of ignored values [703]
ST_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "F64": ("<f8", 8)}
# The format's non-float dtypes and their sizes: checked like the others, then refused (701,
# naming the tensor) or, with skip_non_float, left out of the tensors and the layout.
ST_NON_FLOAT = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
                "I32": 4, "U32": 4, "I64": 8, "U64": 8}


def _dtype_size(dtype: str) -> int:
    return ST_DTYPES[dtype][1] if dtype in ST_DTYPES else ST_NON_FLOAT[dtype]


class _NotInteger:
    """A JSON number written with a fraction or an exponent (never a shape or an offset)."""

    def __init__(self, text):
        self.text = text


def _unique_object(pairs):
    keys = set()
    for k, _ in pairs:
        kb = _utf8(k)
        if kb in keys:
            raise UplinkError(703, f"safetensors: the key {_q(k)} appears twice in one object")
        keys.add(kb)
    return dict(pairs)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        raise UplinkError(703, f"safetensors: {_q(text.encode('utf-8', 'surrogatepass'))} is not valid UTF-8") from None


def _depth(v) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def _st_int(v, what):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        shown = v.text if isinstance(v, _NotInteger) else json.dumps(v) if not isinstance(v, (dict, list)) else type(v).__name__
        raise UplinkError(703, f"safetensors: {what} holds {_q(str(shown))}, not a non-negative integer")
    return v


def _st_ints(v, what, max_count):
    if not isinstance(v, list):
        raise UplinkError(703, f"safetensors: {what} is not an array")
    if len(v) > max_count:
        if max_count == ST_MAX_RANK:
            raise UplinkError(407, f"safetensors: {what} has more than {ST_MAX_RANK} dimensions")
        raise UplinkError(703, f"safetensors: {what} holds more than {max_count} numbers")
    return [_st_int(x, what) for x in v]


def parse_safetensors_header(blob: bytes, max_tensors: int = ST_MAX_TENSORS, skip_non_float: bool = False):
    """The tensors of a .safetensors file's bytes as [(name, dtype, shape, begin, end)] sorted
    by name bytes, and where the data starts; raises UplinkError with the Swift reader's code.
    A non-float tensor (an int64 counter, a bool mask) is refused (701), or with
    ``skip_non_float`` left out, as Swift's ``--skip-non-float``."""
    if len(blob) < 8:
        raise UplinkError(703, "safetensors: file is shorter than the 8-byte header length")
    (hlen,) = struct.unpack_from("<Q", blob, 0)
    if hlen > ST_MAX_HEADER:
        raise UplinkError(401, f"safetensors: header length {hlen} exceeds {ST_MAX_HEADER}")
    if hlen < 2 or 8 + hlen > len(blob):
        raise UplinkError(703, f"safetensors: header length {hlen} is outside 2..{len(blob) - 8}")
    raw = bytes(blob[8:8 + hlen])
    if raw[:1] != b"{":
        raise UplinkError(703, "safetensors: the header does not start with '{'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UplinkError(703, "safetensors: the header is not valid UTF-8") from None

    def bad_constant(name):
        raise ValueError(f"{name} is not JSON")

    try:
        header = json.loads(text, object_pairs_hook=_unique_object, parse_float=_NotInteger,
                            parse_constant=bad_constant)
    except UplinkError:
        raise
    except (ValueError, RecursionError) as e:
        raise UplinkError(703, f"safetensors: header is not valid JSON: {_q(str(e))}") from None
    if not isinstance(header, dict):
        raise UplinkError(703, "safetensors: header is not a JSON object")
    entries = []
    for name, info in header.items():
        nb = _utf8(name)
        if len(nb) > ST_MAX_NAME:
            raise UplinkError(407, f"safetensors: tensor name {_q(name)} is longer than {ST_MAX_NAME} bytes")
        if name == "__metadata__":
            ok = info is None or (isinstance(info, dict) and all(isinstance(v, str) for v in info.values()))
            if not ok:
                raise UplinkError(703, "safetensors: __metadata__ is not an object of strings")
            for k, v in (info or {}).items():
                _utf8(k), _utf8(v)
            continue
        if len(entries) >= max_tensors:
            raise UplinkError(402, f"safetensors: more than {max_tensors} tensors")
        if not isinstance(info, dict):
            raise UplinkError(703, f"safetensors: tensor {_q(name)} is not an object")
        for key, v in info.items():
            _utf8(key)
            if key not in ("dtype", "shape", "data_offsets") and _depth(v) > ST_MAX_DEPTH:
                raise UplinkError(703, f"safetensors: a value in tensor {_q(name)} is nested more than {ST_MAX_DEPTH} deep")
        dtype = info.get("dtype")
        shape = info.get("shape")
        offsets = info.get("data_offsets")
        if dtype is not None and not isinstance(dtype, str):
            raise UplinkError(703, f"safetensors: tensor {_q(name)}: dtype is not a string")
        if shape is not None:
            shape = _st_ints(shape, f"shape of {_q(name)}", ST_MAX_RANK)
        if offsets is not None:
            offsets = _st_ints(offsets, f"data_offsets of {_q(name)}", 2)
            if len(offsets) != 2:
                raise UplinkError(703, f"safetensors: data_offsets of {_q(name)} holds {len(offsets)} numbers, not 2")
        if dtype is None or shape is None or offsets is None:
            raise UplinkError(703, f"safetensors: tensor {_q(name)} lacks dtype, shape or data_offsets")
        if dtype not in ST_DTYPES and dtype not in ST_NON_FLOAT:
            raise UplinkError(701, f"safetensors: tensor {_q(name)} has dtype {_q(dtype)}")
        entries.append((name, dtype, shape, offsets[0], offsets[1]))
    if not entries:
        raise UplinkError(703, "safetensors: file holds no tensors")
    data_len = len(blob) - 8 - hlen
    for name, dtype, shape, begin, end in entries:
        for d in shape:
            if d > MAX_DIM:
                raise UplinkError(406, f"safetensors: tensor {_q(name)} dimension {d} exceeds 2^48")
        count = _shape_count(shape)
        if count > MAX_DIM:
            raise UplinkError(406, f"safetensors: tensor {_q(name)} has more than 2^48 elements")
        if begin > end or end - begin != count * _dtype_size(dtype):
            raise UplinkError(703, f"safetensors: tensor {_q(name)} spans {begin}..{end}, needs {count * _dtype_size(dtype)} bytes")
    entries.sort(key=lambda e: _name_key(e[0]))
    for a, b in zip(entries, entries[1:]):
        if _name_key(a[0]) == _name_key(b[0]):  # json keys are unique already; kept for clarity
            raise UplinkError(703, f"safetensors: tensor name {_q(a[0])} appears twice")
    cursor = 0
    for _, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != cursor:
            raise UplinkError(703, f"safetensors: a tensor starts at byte {begin}, expected {cursor} (gap or overlap)")
        cursor = end
    if cursor != data_len:
        raise UplinkError(703, f"safetensors: tensors cover {cursor} data bytes, the file has {data_len}")
    for name, *_ in entries:
        if name == "":
            raise UplinkError(303, "safetensors: a tensor name is empty")
    floats = [e for e in entries if e[1] in ST_DTYPES]
    if len(floats) < len(entries):
        if not skip_non_float:
            name, dtype = next((e[0], e[1]) for e in entries if e[1] not in ST_DTYPES)
            raise UplinkError(701, f"safetensors: tensor {_q(name)} has dtype {dtype}, not a float type; "
                                   "leave such tensors out with --skip-non-float (skip_non_float=True)")
        if not floats:
            raise UplinkError(701, "safetensors: the file holds no float tensor")
    return floats, 8 + hlen


def read_safetensors(source, skip_non_float: bool = False) -> dict:
    """Tensors of a .safetensors file (a path or its bytes) as float32 arrays, in name-byte order;
    non-float tensors are refused (701) or, with ``skip_non_float``, left out."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        blob = bytes(source)
    else:
        with open(source, "rb") as f:
            blob = f.read()
    entries, start = parse_safetensors_header(blob, skip_non_float=skip_non_float)
    data = memoryview(blob)[start:]
    tensors = {}
    for name, dtype, shape, begin, end in entries:
        arr = np.frombuffer(data[begin:end], dtype=ST_DTYPES[dtype][0])
        if dtype == "BF16":
            arr = (arr.astype(np.uint32) << np.uint32(16)).view(np.float32)
        tensors[name] = arr.astype(np.float32).reshape(shape)
    return tensors




def write_safetensors(tensors: dict, metadata: dict | None = None) -> bytes:
    """A .safetensors file of float32 tensors in the given order, `__metadata__` first and the
    header padded with spaces to a multiple of 8 bytes (as Swift writes them)."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    blobs = []
    for name, arr in tensors.items():
        if name == "__metadata__":
            raise UplinkError(303, "a tensor named __metadata__ cannot be written as .safetensors (every reader takes it for the metadata); write .npy")
        a = np.asarray(arr, dtype="<f4")  # not ascontiguousarray: it turns a scalar into shape (1,)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes(order="C"))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((-(len(text) + 8)) % 8)
    if len(text) > ST_MAX_HEADER:
        raise UplinkError(401, f"safetensors header of {len(text)} bytes exceeds {ST_MAX_HEADER}")
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


NPY_MAX_HEADER = 65535


def read_npy(blob: bytes) -> np.ndarray:
    """A .npy file's array (<f2, <f4 or <f8, C order, versions 1–3) as float32."""
    blob = bytes(blob)
    if len(blob) < 10 or blob[:6] != b"\x93NUMPY":
        raise UplinkError(700, "not a .npy file (bad magic)")
    major = blob[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", blob, 8)
        start = 10
    elif major in (2, 3):
        if len(blob) < 12:
            raise UplinkError(700, ".npy header ends early")
        (hlen,) = struct.unpack_from("<I", blob, 8)
        start = 12
    else:
        raise UplinkError(700, f".npy format version {major} is not supported")
    if hlen > NPY_MAX_HEADER:
        raise UplinkError(401, f".npy header of {hlen} bytes exceeds {NPY_MAX_HEADER}")
    if start + hlen > len(blob):
        raise UplinkError(700, ".npy header ends before its declared length")
    try:
        text = blob[start:start + hlen].decode("latin1" if major < 3 else "utf-8")
        import ast
        d = ast.literal_eval(text.strip())
        descr, fortran, shape = d["descr"], d["fortran_order"], tuple(d["shape"])
    except Exception:
        raise UplinkError(700, f".npy header is malformed: {_q(blob[start:start + hlen])}") from None
    if not isinstance(shape, tuple) or len(shape) > 64:
        raise UplinkError(407, ".npy shape has more than 64 dimensions")
    if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_DIM for x in shape):
        raise UplinkError(700, f".npy shape {_q(str(shape))} is not a tuple of sizes")
    if descr not in ("<f2", "<f4", "<f8"):
        raise UplinkError(701, f".npy dtype {_q(str(descr))} is not one Uplink reads (<f2, <f4, <f8)")
    if fortran:
        raise UplinkError(702, ".npy array is in Fortran order")
    count = _shape_count(shape)
    size = int(descr[2])
    data = blob[start + hlen:]
    if len(data) != count * size:
        raise UplinkError(700, f".npy data has {len(data)} bytes, the shape needs {count * size}")
    return np.frombuffer(data, dtype=descr).astype(np.float32).reshape(shape)


def write_npy(arr: np.ndarray) -> bytes:
    """A version 1.0 .npy file of `arr` as little-endian float32."""
    a = np.asarray(arr, dtype="<f4")
    shape = "(" + "".join(f"{d}, " for d in a.shape)[:-2] + ("," if a.ndim == 1 else "") + ")"
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape
    header += " " * ((-(len(header) + 11)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + a.tobytes()


def read_tensor_file(path: str, skip_non_float: bool = False) -> dict:
    """Tensors of a .safetensors or .npy file, as float32 arrays by name (a .npy is arr_0)."""
    with open(path, "rb") as f:
        blob = f.read()
    if path.endswith(".npy"):
        return {"arr_0": read_npy(blob)}
    return read_safetensors(blob, skip_non_float=skip_non_float)
