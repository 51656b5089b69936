"""Side-by-side: Uplink against the same pipelines written as a Python FL user writes them
(numpy argpartition top-k, int8/int4 scaling, lz4.frame / zlib from PyPI).

Beside each Uplink time, the streaming floor of the same memory traffic from `uplink bench
--roofline` (run right after it; docs/benchmarks.md). Runs alternate (peer, Uplink, peer, Uplink, ...) in one invocation so that machine drift hits
both. Uplink is timed in process by `uplink bench --json` (its own encode and
decode-and-accumulate timers); the peer by time.perf_counter around the same steps. Both use the
same seeded input (the SplitMix64 generator of `uplink bench`, reimplemented with numpy).
"""
import json, subprocess, sys, time, zlib
import numpy as np
import lz4.frame

UPLINK = sys.argv[1] if __name__ == "__main__" else None
N = int(sys.argv[2]) if __name__ == "__main__" and len(sys.argv) > 2 else 10_000_000
REPS = int(sys.argv[3]) if __name__ == "__main__" and len(sys.argv) > 3 else 5
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def synthetic(n, seed=1):
    """Exactly `uplink bench`'s input: SplitMix64 draws, 30% zeros, cube of a uniform × 0.05."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24) - np.float32(0.5)
    x = u * u * u * np.float32(0.05)
    x[(z % np.uint64(10)) < np.uint64(3)] = 0
    return x


def block_quantize(vals, bits, block=256):
    qmax = (1 << (bits - 1)) - 1
    m = len(vals)
    pad = (-m) % block
    v = np.concatenate([vals, np.zeros(pad, np.float32)]).reshape(-1, block)
    scale = np.abs(v).max(axis=1) / qmax
    safe = np.where(scale > 0, scale, 1)
    q = np.clip(np.rint(v / safe[:, None]), -qmax, qmax).astype(np.int8)
    deq = (q * scale[:, None]).reshape(-1)[:m].astype(np.float32)
    return q.reshape(-1)[:m], scale.astype(np.float32), deq


def peer_sparse_encode(u, e, density, bits):
    acc = u + e
    k = int(density * len(u) + 0.5)
    idx = np.argpartition(np.abs(acc), -k)[-k:]
    idx.sort()
    vals = acc[idx]
    q, scale, deq = block_quantize(vals, bits)
    e[:] = acc
    e[idx] = vals - deq
    if bits == 4:
        codes = (q + 8).astype(np.uint8)
        codes = np.concatenate([codes, np.zeros(len(codes) % 2, np.uint8)])
        packed = codes[0::2] | (codes[1::2] << 4)
    else:
        packed = q.view(np.uint8)
    payload = np.int64(len(idx)).tobytes() + idx.astype(np.uint32).tobytes() + scale.tobytes() + packed.tobytes()
    return lz4.frame.compress(payload)


def peer_sparse_accumulate(frame, dest, weight, bits):
    payload = lz4.frame.decompress(frame)
    k = int(np.frombuffer(payload[:8], np.int64)[0])
    off = 8
    idx = np.frombuffer(payload[off:off + 4 * k], np.uint32); off += 4 * k
    blocks = (k + 255) // 256
    scale = np.frombuffer(payload[off:off + 4 * blocks], np.float32); off += 4 * blocks
    if bits == 4:
        packed = np.frombuffer(payload[off:], np.uint8)
        codes = np.empty(2 * len(packed), np.int8)
        codes[0::2] = (packed & 15).astype(np.int8) - 8
        codes[1::2] = (packed >> 4).astype(np.int8) - 8
        q = codes[:k]
    else:
        q = np.frombuffer(payload[off:off + k], np.int8)
    vals = q.astype(np.float32) * np.repeat(scale, 256)[:k]
    dest[idx] += np.float32(weight) * vals


def peer_dense_encode(u):
    q, scale, _ = block_quantize(u, 8)
    return zlib.compress(scale.tobytes() + q.tobytes(), 6)


def peer_dense_accumulate(frame, dest, weight):
    payload = zlib.decompress(frame)
    n = len(dest)
    blocks = (n + 255) // 256
    scale = np.frombuffer(payload[:4 * blocks], np.float32)
    q = np.frombuffer(payload[4 * blocks:], np.int8)
    dest += np.float32(weight) * q.astype(np.float32) * np.repeat(scale, 256)[:n]


CASES = [
    ("ef | topk 1% | int8 | lz4", lambda u, e: peer_sparse_encode(u, e, 0.01, 8), lambda f, d: peer_sparse_accumulate(f, d, 0.5, 8)),
    ("ef | topk 0.1% | int4 | lz4", lambda u, e: peer_sparse_encode(u, e, 0.001, 4), lambda f, d: peer_sparse_accumulate(f, d, 0.5, 4)),
    ("int8 | zlib", lambda u, e: peer_dense_encode(u), lambda f, d: peer_dense_accumulate(f, d, 0.5)),
]

def main():
    u = synthetic(N)
    print(f"n = {N:,} float32 parameters ({4 * N / 1e6:.0f} MB), {REPS} alternating rounds; medians", file=sys.stderr)
    print("| pipeline | Uplink encode | its floor | numpy peer encode | speedup | Uplink accumulate | its floor | peer accumulate | speedup | Uplink bytes | peer bytes | peer / Uplink bytes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    for spec, enc, acc in CASES:
        pe, pa, ue, ua, uf, af = [], [], [], [], [], []
        frame = None
        uplink_bytes = None
        for rep in range(REPS):
            e = np.zeros(N, np.float32)
            t0 = time.perf_counter(); frame = enc(u, e); pe.append(time.perf_counter() - t0)
            dest = np.zeros(N, np.float32)
            t0 = time.perf_counter(); acc(frame, dest); pa.append(time.perf_counter() - t0)
            out = subprocess.run([UPLINK, "bench", "--pipeline", spec, "--params", str(N), "--runs", "3", "--json", "--roofline"],
                                 check=True, capture_output=True, text=True)
            d = json.loads(out.stdout)
            ue += d["encode_runs_seconds"]; ua += d["accumulate_runs_seconds"]
            # The streaming floor of the same traffic, run right after each Uplink run (uplink bench --roofline).
            uf += d["encode_floor_runs_seconds"]; af += d["accumulate_floor_runs_seconds"]
            uplink_bytes = d["bytes"]
        m = lambda a: float(np.median(a))
        results[spec] = dict(uplink_encode=m(ue), peer_encode=m(pe), uplink_accumulate=m(ua), peer_accumulate=m(pa),
                             encode_floor=m(uf), accumulate_floor=m(af),
                             uplink_bytes=uplink_bytes, peer_bytes=len(frame))
        r = results[spec]
        print(f"| `{spec.replace('|', chr(92) + '|')}` | {1000 * r['uplink_encode']:.1f} ms ({4 * N / r['uplink_encode'] / 1e9:.2f} GB/s) | "
              f"{1000 * r['encode_floor']:.1f} ms ({r['uplink_encode'] / r['encode_floor']:.1f}×) | "
              f"{1000 * r['peer_encode']:.1f} ms | **{r['peer_encode'] / r['uplink_encode']:.1f}×** | "
              f"{1000 * r['uplink_accumulate']:.2f} ms | {1000 * r['accumulate_floor']:.2f} ms ({r['uplink_accumulate'] / r['accumulate_floor']:.1f}×) | {1000 * r['peer_accumulate']:.2f} ms | **{r['peer_accumulate'] / r['uplink_accumulate']:.1f}×** | "
              f"{r['uplink_bytes']:,} | {r['peer_bytes']:,} | {r['peer_bytes'] / r['uplink_bytes']:.2f}× |", flush=True)
    json.dump(results, open("peer-results.json", "w"), indent=2)


if __name__ == "__main__":
    main()
