"""Index stream coding (docs/wire-format.md §8.2): Rice-coded gaps or a bitmap, vectorized.

Decoding Rice codes is sequential by nature (each code starts where the previous ends). Here
the "next code start" function f(p) is computed for every bit position at once, and the chain
of starts from bit 0 is followed in parallel lanes: the payload is cut into chunks, a lane runs
f from the start of each chunk, and since Rice codes resynchronize within a few codes, a lane
soon lands on the true chain. The true chain enters chunk c where lane c-1 leaves it; where
that point is on lane c's path, lane c is right from there on; where not, lane c is re-run
from the true point (rare; a hostile stream that never resynchronizes costs one pass per chunk,
still linear). Work is bounded by the payload size, memory by a segment of 2^20 bits at a time.
"""
from __future__ import annotations

import numpy as np

from ._errors import UplinkError

__all__ = ["encode_indices", "decode_indices", "index_summary", "position_bits"]

ESCAPE = 32


def position_bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _leb128(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_leb128(buf: bytes, pos: int):
    k, shift, start = 0, 0, pos
    while True:
        if pos >= len(buf):
            raise UplinkError(111, "indices: LEB128 k runs past the end of the stream")
        byte = buf[pos]
        pos += 1
        k |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte == 0 and pos - start > 1:
                raise UplinkError(111, "indices: LEB128 k is not minimal (final 0x00 byte)")
            return k, pos
        if pos - start >= 10:
            raise UplinkError(111, "indices: LEB128 k longer than 10 bytes")


def index_summary(buf: bytes, n: int):
    """(method, r, k, payload offset) of an index stream, checked as §8.2 says."""
    if len(buf) < 3:
        raise UplinkError(111, f"indices stream of {len(buf)} bytes is shorter than 3")
    method, r = buf[0], buf[1]
    if method not in (0, 1):
        raise UplinkError(111, f"indices: unknown method {method}")
    if method == 1 and r != 0:
        raise UplinkError(111, f"indices: bitmap with Rice parameter {r} != 0")
    if method == 0 and r > position_bits(n):
        raise UplinkError(111, f"indices: Rice parameter {r} > W={position_bits(n)}")
    k, pos = _read_leb128(buf, 2)
    if k > n:
        raise UplinkError(111, f"indices: k={k} > n={n}")
    return method, r, k, pos


# ---------------------------------------------------------------------------------------------
# Encoding (the same choices as the Swift encoder, so frames are byte-identical)

def _rice_bits(gaps: np.ndarray, r: int, width: int) -> int:
    q = gaps >> np.int64(r)
    esc = q >= ESCAPE
    return int(np.sum(np.where(esc, ESCAPE + width, q + 1 + r)))


def _best_rice(gaps: np.ndarray, n: int):
    k = gaps.size
    if k == 0:
        return 0, 0
    width = position_bits(n)
    # Bins by gap bit length (frexp's exponent is exact: gaps are below 2^48): the count and
    # the sum of the gaps, added in index order per bin as Swift adds them (bincount's loop).
    g = gaps.astype(np.float64)
    lengths = np.frexp(g)[1].astype(np.int64)
    count = np.bincount(lengths, minlength=65)
    sums = np.bincount(lengths, weights=g, minlength=65)
    estimates = []
    for r in range(0, min(width, 57) + 1):
        bits = 0.0
        for length in np.flatnonzero(count):
            c = int(count[length])
            if length >= r + 6:
                bits += float(c * (ESCAPE + width))
            else:
                bits += float(c * (1 + r)) + sums[length] / float(1 << r)
        estimates.append((r, bits))
    estimates.sort(key=lambda e: e[1])  # only the best two are costed exactly; ties go to the lower r below
    best_r, best_bits = 0, None
    for r, _ in estimates[:2]:
        b = _rice_bits(gaps, r, width)
        if best_bits is None or b < best_bits or (b == best_bits and r < best_r):
            best_r, best_bits = r, b
    return best_r, best_bits


def encode_indices(positions: np.ndarray, n: int) -> bytes:
    """The index stream of strictly increasing positions below n (Rice or bitmap, whichever is
    smaller; Rice on ties and when k = 0)."""
    positions = np.asarray(positions, dtype=np.int64)
    k = positions.size
    bitmap_bytes = (n + 7) // 8
    gaps = np.diff(positions, prepend=-1) - 1 if k else np.zeros(0, dtype=np.int64)
    r, rice_bits = _best_rice(gaps, n)
    if (rice_bits + 7) // 8 < bitmap_bytes or k == 0:
        head = bytes([0, r]) + _leb128(k)
        width = position_bits(n)
        q = gaps >> np.int64(r)
        esc = q >= ESCAPE
        lens = np.where(esc, ESCAPE + width, q + 1 + r)
        starts = np.cumsum(lens) - lens
        total = int(lens.sum()) if k else 0
        bits = np.zeros(total, dtype=np.uint8)
        # Unary ones: q ones (or 32 for an escape), written as runs.
        ones = np.where(esc, ESCAPE, q)
        if ones.sum():
            run_starts = np.repeat(starts, ones)
            offs = np.arange(run_starts.size, dtype=np.int64) - np.repeat(np.cumsum(ones) - ones, ones)
            bits[run_starts + offs] = 1
        # Low r bits after the zero, or W bits of the gap after 32 ones.
        for j in range(max(r, width if esc.any() else 0)):
            sel_n = (~esc) & (j < r)
            if j < r and sel_n.any():
                idx = starts[sel_n] + q[sel_n] + 1 + j
                bits[idx] = ((gaps[sel_n] >> np.int64(j)) & 1).astype(np.uint8)
            sel_e = esc & (j < width)
            if sel_e.any():
                idx = starts[sel_e] + ESCAPE + j
                bits[idx] = ((gaps[sel_e] >> np.int64(j)) & 1).astype(np.uint8)
        return head + np.packbits(bits, bitorder="little").tobytes()
    head = bytes([1, 0]) + _leb128(k)
    bm = np.zeros(bitmap_bytes * 8, dtype=np.uint8)
    bm[positions] = 1
    return head + np.packbits(bm, bitorder="little").tobytes()


# ---------------------------------------------------------------------------------------------
# Decoding

def decode_indices(buf: bytes, n: int) -> np.ndarray:
    """The positions (int64, strictly increasing, < n) of an index stream, checked as §8.2 says;
    raises UplinkError 111 on any fault."""
    method, r, k, pos = index_summary(buf, n)
    payload = np.frombuffer(buf, dtype=np.uint8, offset=pos) if pos < len(buf) else np.zeros(0, dtype=np.uint8)
    if method == 1:
        if payload.size != (n + 7) // 8:
            raise UplinkError(111, f"indices: bitmap of {payload.size} bytes, need {(n + 7) // 8}")
        if n % 8 and payload[-1] >> np.uint8(n % 8):
            raise UplinkError(111, "indices: bitmap has bits set at positions >= n")
        positions = np.flatnonzero(np.unpackbits(payload, bitorder="little"))
        if positions.size != k:
            raise UplinkError(111, f"indices: bitmap has {positions.size} bits set, k={k}")
        return positions.astype(np.int64)
    W = position_bits(n)
    if k == 0:
        if payload.size:
            raise UplinkError(111, f"indices: {payload.size} bytes after the last gap")
        return np.zeros(0, dtype=np.int64)
    NB = 8 * payload.size
    if NB == 0:
        raise UplinkError(111, "indices: payload ends inside gap 0")
    f = _Stepper(payload, NB, r, W)
    points, final = _rice_chain(payload, NB, r, W, k, f)
    if points.size > k:
        end = int(points[k])
    elif points.size == k and final == NB:
        end = NB
    else:
        raise UplinkError(111, f"indices: payload ends inside gap {points.size if points.size < k else k - 1}")
    s = points[:k]
    w64 = f.w64
    ones = f.ones(s)
    esc = ones >= ESCAPE
    g = np.empty(k, dtype=np.int64)
    ne = ~esc
    if ne.any():
        p = s[ne] + ones[ne] + 1
        rem = (w64[p >> 3] >> (p & 7)) & ((1 << r) - 1)
        g[ne] = (ones[ne] << r) | rem
    if esc.any():
        p = s[esc] + ESCAPE
        g[esc] = (w64[p >> 3] >> (p & 7)) & ((1 << W) - 1)
    if payload.size != (end + 7) // 8:
        raise UplinkError(111, f"indices: {payload.size - (end + 7) // 8} bytes after the last gap")
    if end & 7 and int(payload[-1]) >> (end & 7):
        raise UplinkError(111, "indices: non-zero padding bits after the last gap")
    bad = np.flatnonzero(g >= n)
    if bad.size:
        raise UplinkError(111, f"indices: gap of entry {int(bad[0])} reaches past n={n}")
    if float(np.sum(g.astype(np.float64) + 1.0)) > float(n) + 1e6:
        raise UplinkError(111, f"indices: positions reach past n={n}")
    positions = np.cumsum(g + 1) - 1
    if positions[-1] >= n:
        j = int(np.searchsorted(positions, n))
        raise UplinkError(111, f"indices: position {int(positions[j])} of entry {j} >= n={n}")
    return positions


def _trailing_ones_table() -> np.ndarray:
    t = np.zeros(1 << 16, dtype=np.int64)
    v = np.arange(1 << 16)
    for j in range(16):
        t += (((v + 1) & ((1 << (j + 1)) - 1)) == 0)
    return t


_TO16 = _trailing_ones_table()
_ROUNDS = 4
_SEGMENT = 1 << 22


class _Stepper:
    """f(p): where the code starting at bit p ends (capped at NB + 1, "past the payload"), for
    arrays of p, from 64-bit windows of the payload (57 or more valid bits at any offset)."""

    def __init__(self, payload: np.ndarray, NB: int, r: int, W: int):
        size = payload.size
        padded = np.zeros(size + 16, dtype=np.uint8)
        padded[:size] = payload
        w64 = np.zeros(size + 8, dtype=np.uint64)
        for i in range(8):
            w64 |= padded[i:i + size + 8].astype(np.uint64) << np.uint64(8 * i)
        # Signed: an arithmetic shift only disturbs bits above the 57 valid ones.
        self.w64 = w64.view(np.int64)
        self.NB, self.r, self.W = NB, r, W
        # delta[t1 + 17 * t2]: code length for t1 trailing ones in the low 16 bits and t2 in the
        # next 16 (used only when t1 == 16).
        t1 = np.arange(17)[:, None]
        t2 = np.arange(17)[None, :]
        ones = np.where(t1 == 16, 16 + t2, t1)
        delta = np.where(ones < ESCAPE, ones + 1 + r, ESCAPE + W)
        self.delta = np.ascontiguousarray(delta.T).reshape(-1)   # index t1 + 17 * t2
        self.payload = payload.tobytes()

    def ones(self, P: np.ndarray) -> np.ndarray:
        """Trailing one-bits at each P, exact up to 32 (32 means 32 or more)."""
        win = self.w64[P >> 3] >> (P & 7)
        t1 = _TO16[win & 0xFFFF]
        t2 = _TO16[(win >> 16) & 0xFFFF]
        return t1 + (t1 == 16) * t2

    def __call__(self, P: np.ndarray) -> np.ndarray:
        # P ≤ NB + 1, so P >> 3 stays inside w64. A terminator found in the zero padding past
        # NB gives a length past NB + 1, which the cap turns into "past the payload".
        win = self.w64[P >> 3] >> (P & 7)
        res = P + self.delta[_TO16[win & 0xFFFF] + 17 * _TO16[(win >> 16) & 0xFFFF]]
        np.minimum(res, self.NB + 1, out=res)
        return res

    def scalar(self, p: int) -> int:
        NB = self.NB
        if p >= NB:
            return NB + 1
        b = p >> 3
        w = int.from_bytes(self.payload[b:b + 9], "little") >> (p & 7)
        ones = ((~w) & (w + 1)).bit_length() - 1
        if ones < ESCAPE:
            return min(NB + 1, p + ones + 1 + self.r)
        return min(NB + 1, p + ESCAPE + self.W)


def _run(f, P0: np.ndarray, hi: np.ndarray, most: int) -> np.ndarray:
    """Paths from P0 (one lane per column) until every lane is at or past its `hi`."""
    rows = [P0]
    p = P0
    while len(rows) <= most:
        for _ in range(8):
            p = f(p)
            rows.append(p)
        if (p >= hi).all():
            break
    return np.array(rows)


def _rice_chain(payload: np.ndarray, NB: int, r: int, W: int, k: int, f: "_Stepper"):
    """The chain of code starts from bit 0: up to k + 1 points below NB, and the first point at
    or past NB when the chain gets there first (NB: it ends exactly; NB + 1: it runs past).

    Lane c covers bits [lo_c, lo_c + chunk) but starts `lead` bits early, inside lane c-1, so that
    by lo_c it has (almost always) fallen onto the true chain. Lane c is right iff the point where
    lane c-1 leaves its chunk lies on lane c's path; a lane that is not is re-run from that point,
    and its successor checked again."""
    minlen = 1 + r
    avglen = max(minlen, NB // max(k, 1))
    chunk = 32 * avglen
    lead = 8 * avglen + ESCAPE + W
    out = []
    have = 0
    t = 0
    while have <= k and t < NB:
        seg_lo = t
        seg_hi = min(NB + 1, seg_lo + _SEGMENT)
        lanes = -(-(seg_hi - seg_lo) // chunk)
        lane_lo = seg_lo + chunk * np.arange(lanes, dtype=np.int64)
        lane_hi = np.minimum(lane_lo + chunk, seg_hi)
        start = np.maximum(lane_lo - lead, seg_lo)
        start[0] = seg_lo
        most = -(-(chunk + lead + ESCAPE + W) // minlen) + 8
        paths = _run(f, start, lane_hi, most)
        cols = np.arange(lanes)
        check = cols[1:]
        entry_row = np.zeros(lanes, dtype=np.int64)
        exit_row = np.argmax(paths >= lane_hi[None, :], axis=0)
        exits = paths[exit_row, cols]
        bad = np.zeros(0, dtype=np.int64)
        for rnd in range(_ROUNDS + 1):
            if not check.size:
                bad = check
                break
            eq = paths[:, check] == exits[check - 1][None, :]
            ok = eq.any(axis=0)
            entry_row[check[ok]] = np.argmax(eq[:, ok], axis=0)
            bad = check[~ok]
            if not bad.size or rnd == _ROUNDS:
                break
            # Re-run those lanes from where the chain enters them; their successors must be
            # checked again against their new exits.
            redo = _run(f, exits[bad - 1], lane_hi[bad], most)
            rows = paths.shape[0]
            if redo.shape[0] > rows:
                paths = np.concatenate((paths, np.repeat(paths[-1:], redo.shape[0] - rows, axis=0)))
            elif redo.shape[0] < rows:
                redo = np.concatenate((redo, np.repeat(redo[-1:], rows - redo.shape[0], axis=0)))
            paths[:, bad] = redo
            entry_row[bad] = 0
            exit_row[bad] = np.argmax(paths[:, bad] >= lane_hi[bad][None, :], axis=0)
            exits[bad] = paths[exit_row[bad], bad]
            check = np.unique(bad + 1)
            check = check[check < lanes]
        good = int(bad.min()) if bad.size else lanes
        rr = np.arange(paths.shape[0])[:, None]
        take = (rr >= entry_row[None, :good]) & (rr < exit_row[None, :good])
        chain = paths[:, :good].T[take.T]
        if good < lanes:
            # Lanes that did not resynchronize (a hostile stream): follow the chain one code at
            # a time from where the last good lane left it; linear, about 1 µs a code.
            p = int(exits[good - 1])
            seq = []
            budget = k + 1 - have - chain.size
            while p < seg_hi and p < NB and len(seq) < budget:
                seq.append(p)
                p = f.scalar(p)
            chain = np.concatenate((chain, np.array(seq, dtype=np.int64)))
            nxt = p
        else:
            nxt = int(exits[-1])
        below = chain[chain < NB]
        out.append(below)
        have += below.size
        t = nxt
        if below.size < chain.size:
            t = int(chain[below.size])
            break
    points = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
    return points[:k + 1], t
