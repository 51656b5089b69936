"""Test accuracy of digits-MLP models (.safetensors), as `MLP.accuracy` computes it.

The 361 test rows of fixtures/digits/digits.csv.gz (row i is a test row iff
((i · 2654435761) mod 2³²) mod 5 == 0; pixels / 16), a float32 forward pass with ReLU hidden
layers, and the first maximal logit as the prediction. numpy's float32 sums run in another order
than Swift's kernels, so a near-tie could in principle flip one prediction (1/361 = 0.28%).

Usage: digits_accuracy.py DIGITS.csv.gz MODEL.safetensors…   prints one JSON object {path: accuracy}
"""
import gzip
import json
import struct
import sys

import numpy as np


def test_set(path):
    rows = [line.split(",") for line in gzip.open(path, "rt").read().splitlines() if line.count(",") == 64]
    test = [r for i, r in enumerate(rows) if ((i * 2654435761) % 2**32) % 5 == 0]
    x = np.array([[float(v) for v in r[:64]] for r in test], dtype=np.float32) / np.float32(16)
    y = np.array([int(r[64]) for r in test])
    return x, y


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", f"{path}: {name} is {t['dtype']}"
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"])
    return tensors


def accuracy(tensors, x, y):
    h = x
    layers = sum(1 for k in tensors if k.endswith(".weight"))
    for l in range(1, layers + 1):
        h = h @ tensors[f"fc{l}.weight"].T + tensors[f"fc{l}.bias"]
        if l < layers:
            h = np.maximum(h, 0)
    return float(np.mean(np.argmax(h, axis=1) == y))


def main():
    x, y = test_set(sys.argv[1])
    print(json.dumps({p: accuracy(load(p), x, y) for p in sys.argv[2:]}))


if __name__ == "__main__":
    main()
