"""Random-k positions (docs/wire-format.md §8.3): SplitMix64 outputs vectorized, Floyd's
algorithm with a bitset (k ≥ n/64) or a Python set."""
from __future__ import annotations

import numpy as np

__all__ = ["randk_positions", "splitmix64_outputs"]

M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def _mulhi64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    ah, al = a >> s32, a & m32
    bh, bl = b >> s32, b & m32
    hh, hl, lh, ll = ah * bh, ah * bl, al * bh, al * bl
    mid = (hl & m32) + (lh & m32) + (ll >> s32)
    return hh + (hl >> s32) + (lh >> s32) + (mid >> s32)


def splitmix64_outputs(seed: int, round_id: int, count: int) -> np.ndarray:
    """The first `count` outputs of SplitMix64 seeded with seed XOR round·φ (uint64)."""
    state0 = (seed ^ ((round_id * GAMMA) & M64)) & M64
    with np.errstate(over="ignore"):
        i = np.arange(1, count + 1, dtype=np.uint64)
        z = np.uint64(state0) + i * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def randk_positions(n: int, k: int, seed: int, round_id: int) -> np.ndarray:
    """The sorted random-k positions for n parameters, as int64."""
    if k >= n:
        return np.arange(n, dtype=np.int64)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    with np.errstate(over="ignore"):
        t = _mulhi64(splitmix64_outputs(seed, round_id, k), np.arange(n - k + 1, n + 1, dtype=np.uint64))
    js = range(n - k, n)
    if k * 64 >= n:
        chosen = bytearray(n)
        for j, tj in zip(js, t.tolist()):
            if chosen[tj]:
                chosen[j] = 1
            else:
                chosen[tj] = 1
        return np.flatnonzero(np.frombuffer(bytes(chosen), dtype=np.uint8)).astype(np.int64)
    s = set()
    add = s.add
    for j, tj in zip(js, t.tolist()):
        add(j if tj in s else tj)
    return np.sort(np.fromiter(s, dtype=np.int64, count=len(s)))
