"""The model and the data: a 64-32-10 MLP in plain numpy on the UCI digits (8x8 images).

Rows follow fixtures/digits/README.md: row i is a test row iff ((i * 2654435761) mod 2^32)
mod 5 == 0. Training rows are dealt to the clients round-robin (row j of the training rows
goes to partition j mod num_partitions).
"""

from __future__ import annotations

import gzip

import numpy as np

Model = dict[str, np.ndarray]


def _rows(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.int64)
    x = (data[:, :64] / 16.0).astype(np.float32)
    y = data[:, 64]
    i = np.arange(len(data), dtype=np.uint64)
    test = ((i * np.uint64(2654435761)) % np.uint64(2**32)) % np.uint64(5) == 0
    return x, y, test


def load_partition(path: str, partition: int, num_partitions: int) -> tuple[np.ndarray, np.ndarray]:
    """The training rows of one client."""
    x, y, test = _rows(path)
    x, y = x[~test], y[~test]
    return x[partition::num_partitions], y[partition::num_partitions]


def load_test(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The 361 test rows (the server evaluates the global model on them)."""
    x, y, test = _rows(path)
    return x[test], y[test]


def init_model(seed: int = 0) -> Model:
    """Glorot-scaled float32 weights. Note the key order: frames lay tensors out sorted by
    name (hidden.b, hidden.w, out.b, out.w); the integration maps them back by name."""
    rng = np.random.default_rng(seed)
    return {
        "hidden.w": (rng.standard_normal((64, 32)) * np.sqrt(2 / 96)).astype(np.float32),
        "hidden.b": np.zeros(32, np.float32),
        "out.w": (rng.standard_normal((32, 10)) * np.sqrt(2 / 42)).astype(np.float32),
        "out.b": np.zeros(10, np.float32),
    }


def _forward(m: Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h = np.maximum(x @ m["hidden.w"] + m["hidden.b"], 0)
    z = h @ m["out.w"] + m["out.b"]
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return h, p / p.sum(axis=1, keepdims=True)


def train(m: Model, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int) -> tuple[Model, float]:
    """Mini-batch SGD on the cross-entropy; returns the new model and the last epoch's loss."""
    m = {k: v.copy() for k, v in m.items()}
    rng = np.random.default_rng(seed)
    loss = 0.0
    for _ in range(epochs):
        order, losses = rng.permutation(len(x)), []
        for start in range(0, len(x), 32):
            b = order[start:start + 32]
            h, p = _forward(m, x[b])
            losses.append(float(-np.log(p[np.arange(len(b)), y[b]] + 1e-12).mean()))
            g = p.copy()
            g[np.arange(len(b)), y[b]] -= 1
            g /= len(b)  # d loss / d logits
            gh = (g @ m["out.w"].T) * (h > 0)
            m["out.w"] -= lr * (h.T @ g)
            m["out.b"] -= lr * g.sum(axis=0)
            m["hidden.w"] -= lr * (x[b].T @ gh)
            m["hidden.b"] -= lr * gh.sum(axis=0)
        loss = float(np.mean(losses))
    return m, loss


def evaluate(m: Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(cross-entropy, accuracy)."""
    _, p = _forward(m, x)
    return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean()), float((p.argmax(axis=1) == y).mean())
