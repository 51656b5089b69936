"""uplink_fl (the Python package) beside the numpy peer pipelines and beside the Swift encoder
and decoder, in one invocation with alternating runs (peer, uplink_fl, Swift, ...).

For each parameter count and pipeline: encode time (a fresh error-feedback state each run, as
the peer's), decode-and-accumulate time into a float32 destination (the peer's) and into a
float64 one (a server's running sum), both already written (a server's running sum is; a fresh
np.zeros would add the kernel's first-touch page faults to whatever scatters into it), frame
bytes. Swift is timed in process by
`uplink bench --json` on the same SplitMix64 input. Medians of REPS runs.
Usage: python_compare.py UPLINK_BINARY [n,n,...] [reps]
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_compare as peer  # noqa: E402
import uplink_fl  # noqa: E402
from uplink_fl._lz4 import backend  # noqa: E402

UPLINK = sys.argv[1]
SIZES = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1000000,10000000").split(",")]
REPS = int(sys.argv[3]) if len(sys.argv) > 3 else 5

CASES = [
    ("ef | topk 1% | int8 | lz4", lambda u, e: peer.peer_sparse_encode(u, e, 0.01, 8), lambda f, d: peer.peer_sparse_accumulate(f, d, 0.5, 8)),
    ("ef | topk 0.1% | int4 | lz4", lambda u, e: peer.peer_sparse_encode(u, e, 0.001, 4), lambda f, d: peer.peer_sparse_accumulate(f, d, 0.5, 4)),
    ("int8 | zlib", lambda u, e: peer.peer_dense_encode(u), lambda f, d: peer.peer_dense_accumulate(f, d, 0.5)),
    ("fp16 | lz4", None, None),
]


def med(a):
    return float(np.median(a))


def main():
    print(f"uplink_fl {uplink_fl.__version__}, numpy {np.__version__}, level-0 LZ4 via {backend()}; "
          f"{REPS} alternating runs, medians; one core", file=sys.stderr)
    print("| n | pipeline | uplink_fl encode | peer encode | Swift encode | uplink_fl accumulate (f32 / f64) | peer accumulate | Swift accumulate | uplink_fl bytes | peer bytes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for n in SIZES:
        u = peer.synthetic(n)
        layout = [("arr_0", (n,))]
        for spec, penc, pacc in CASES:
            ue, ua32, ua64, pe, pa, se, sa = [], [], [], [], [], [], []
            frame = pframe = None
            for _ in range(REPS):
                if penc is not None:
                    e = np.zeros(n, np.float32)
                    t0 = time.perf_counter(); pframe = penc(u, e); pe.append(time.perf_counter() - t0)
                    d = np.full(n, 0.0, np.float32)  # written, so no first-touch page faults are timed
                    t0 = time.perf_counter(); pacc(pframe, d); pa.append(time.perf_counter() - t0)
                enc = uplink_fl.Encoder(spec, layout=layout)
                t0 = time.perf_counter(); frame = enc.encode(u); ue.append(time.perf_counter() - t0)
                d = np.full(n, 0.0, np.float32)
                t0 = time.perf_counter(); uplink_fl.accumulate(frame, into=d, weight=0.5); ua32.append(time.perf_counter() - t0)
                d = np.full(n, 0.0, np.float64)
                t0 = time.perf_counter(); uplink_fl.accumulate(frame, into=d, weight=0.5); ua64.append(time.perf_counter() - t0)
                out = subprocess.run([UPLINK, "bench", "--pipeline", spec, "--params", str(n), "--runs", "3", "--json"],
                                     check=True, capture_output=True, text=True)
                j = json.loads(out.stdout)
                se += j["encode_runs_seconds"]
                sa += j["accumulate_runs_seconds"]
            r = dict(n=n, pipeline=spec, py_encode=med(ue), py_acc32=med(ua32), py_acc64=med(ua64),
                     peer_encode=med(pe) if pe else None, peer_acc=med(pa) if pa else None,
                     swift_encode=med(se), swift_acc=med(sa), py_bytes=len(frame), peer_bytes=len(pframe) if pframe else None,
                     swift_bytes=j["bytes"])
            results.append(r)
            ms = lambda x: "—" if x is None else f"{1000 * x:.2f} ms"
            print(f"| {n:,} | `{spec.replace('|', chr(92) + '|')}` | {ms(r['py_encode'])} | {ms(r['peer_encode'])} | {ms(r['swift_encode'])} | "
                  f"{ms(r['py_acc32'])} / {ms(r['py_acc64'])} | {ms(r['peer_acc'])} | {ms(r['swift_acc'])} | {r['py_bytes']:,} | "
                  f"{'—' if r['peer_bytes'] is None else format(r['peer_bytes'], ',')} |", flush=True)
    with open("python-results.json", "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
