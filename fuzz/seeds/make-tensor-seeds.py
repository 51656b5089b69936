#!/usr/bin/env python3
"""Writes seed inputs for the tensorfile fuzzer into the directory given as the only argument:
.npy files from np.save (every format version and dtype Npy.read handles, plus the cases it must
reject) and small .safetensors files of each dtype. scripts/fuzz runs this at run time and adds
fixtures/frames/golden-update.safetensors; nothing here is checked in as binary."""
import io
import json
import os
import struct
import sys

import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20261129)


def save(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def npy(array, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array)
    else:
        np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


a = (rng.standard_normal((4, 6)) * 0.1).astype("<f4")
save("f4-2d.npy", npy(a))
save("f4-1d.npy", npy(a.ravel()))
save("f4-scalar.npy", npy(np.float32(1.5)))
save("f4-empty.npy", npy(np.zeros((0, 3), dtype="<f4")))
save("f4-rank3.npy", npy(a.reshape(2, 3, 4)))
save("f2.npy", npy(a.astype("<f2")))
save("f8.npy", npy(a.astype("<f8")))
save("f4-v2.npy", npy(a, version=(2, 0)))
save("f4-v3.npy", npy(a, version=(3, 0)))
save("f4-special.npy", npy(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 65504], dtype="<f4")))
# Inputs the reader must reject: Fortran order, big-endian, an unsupported dtype.
save("fortran.npy", npy(np.asfortranarray(a)))
save("big-endian.npy", npy(a.astype(">f4")))
save("int32.npy", npy(np.arange(6, dtype="<i4")))


def safetensors(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, array) in tensors.items():
        raw = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


bf16 = (a.view("<u4") >> 16).astype("<u2")  # bfloat16 bits: the top half of float32
save("f32.safetensors", safetensors({"w": ("F32", a), "b": ("F32", a[0])}))
save("f16.safetensors", safetensors({"w": ("F16", a.astype("<f2"))}))
save("bf16.safetensors", safetensors({"w": ("BF16", bf16)}))
save("f64.safetensors", safetensors({"w": ("F64", a.astype("<f8"))}, metadata={"format": "pt"}))
save("mixed.safetensors", safetensors({
    "scalar": ("F32", np.array(2.0, dtype="<f4")),
    "empty": ("F32", np.zeros((0,), dtype="<f4")),
    "layer.0.weight": ("F16", a.astype("<f2")),
    "layer.0.bias": ("BF16", bf16[0]),
}))
save("i32.safetensors", safetensors({"w": ("I32", np.arange(4, dtype="<i4"))}))
