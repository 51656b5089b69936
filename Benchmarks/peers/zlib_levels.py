# Usage: .venv-peers/bin/python Benchmarks/peers/zlib_levels.py (the venv Benchmarks/peers/run makes).
# zlib level and strategy on quantized codes: the int8 codes of `uplink bench`'s synthetic update
# (10M, block 256) and the fp16 codes, through the system zlib (Python's zlib module).
import sys, time, zlib
import numpy as np
import os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_compare import synthetic, block_quantize
n = 10_000_000
u = synthetic(n)
q, scale, _ = block_quantize(u, 8)
streams = {"int8 codes": (q.astype(np.int16) + 127).astype(np.uint8).tobytes(), "fp16 codes": u.astype(np.float16).tobytes()}
strategies = {"default": zlib.Z_DEFAULT_STRATEGY, "filtered": zlib.Z_FILTERED, "huffman": zlib.Z_HUFFMAN_ONLY, "rle": zlib.Z_RLE}
print("| stream | level | strategy | bytes | ratio | compress ms | MB/s |")
print("|---|---:|---|---:|---:|---:|---:|")
for name, raw in streams.items():
    for level in (1, 6, 9):
        for sname, st in strategies.items():
            if level != 6 and sname != "default": continue
            best = 1e9
            for _ in range(2):
                t0 = time.perf_counter()
                c = zlib.compressobj(level, zlib.DEFLATED, 15, 8, st)
                out = c.compress(raw) + c.flush()
                best = min(best, time.perf_counter() - t0)
            print(f"| {name} | {level} | {sname} | {len(out):,} | {len(raw)/len(out):.3f} | {best*1e3:.0f} | {len(raw)/best/1e6:.0f} |", flush=True)
