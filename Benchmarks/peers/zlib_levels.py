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

# libdeflate (the Debian runtime library, libdeflate0, through ctypes: no -dev package needed):
# whole-buffer DEFLATE in the zlib container, so its output is a valid `zlib` section for every
# decoder, but not the same bytes as zlib's. Compress per 1 MiB section as the frame writer does,
# and decompress against zlib's inflate of the same sections.
import ctypes, ctypes.util
path = ctypes.util.find_library("deflate") or "libdeflate.so.0"
try:
    ld = ctypes.CDLL(path)
except OSError:
    print(f"\nlibdeflate not found ({path}): apt-get install libdeflate0")
    sys.exit(0)
ld.libdeflate_alloc_compressor.restype = ctypes.c_void_p
ld.libdeflate_alloc_compressor.argtypes = [ctypes.c_int]
ld.libdeflate_zlib_compress.restype = ctypes.c_size_t
ld.libdeflate_zlib_compress.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
ld.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
ld.libdeflate_zlib_decompress.restype = ctypes.c_int
ld.libdeflate_zlib_decompress.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
dec = ld.libdeflate_alloc_decompressor()
MiB = 1 << 20
print("\n| stream | library | level | bytes (1 MiB sections) | ratio | compress ms | decompress ms | zlib inflate ms |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for name, raw in streams.items():
    sections = [raw[i:i + MiB] for i in range(0, len(raw), MiB)]
    for lib, level in [("zlib", 6), ("libdeflate", 1), ("libdeflate", 6), ("libdeflate", 9), ("libdeflate", 12)]:
        best_c = best_d = best_z = 1e9
        for _ in range(2):
            t0 = time.perf_counter()
            if lib == "zlib":
                outs = [zlib.compress(s, level) for s in sections]
            else:
                comp = ld.libdeflate_alloc_compressor(level)
                outs = []
                for s in sections:
                    buf = ctypes.create_string_buffer(len(s) + 1024)
                    k = ld.libdeflate_zlib_compress(comp, s, len(s), buf, len(buf))
                    outs.append(buf.raw[:k])
                ld.libdeflate_free_compressor(ctypes.c_void_p(comp))
            best_c = min(best_c, time.perf_counter() - t0)
            t0 = time.perf_counter()
            for o, s in zip(outs, sections):
                buf = ctypes.create_string_buffer(len(s))
                got = ctypes.c_size_t(0)
                assert ld.libdeflate_zlib_decompress(dec, o, len(o), buf, len(s), ctypes.byref(got)) == 0 and got.value == len(s)
            best_d = min(best_d, time.perf_counter() - t0)
            t0 = time.perf_counter()
            for o, s in zip(outs, sections):
                assert len(zlib.decompress(o)) == len(s)  # zlib accepts libdeflate's streams
            best_z = min(best_z, time.perf_counter() - t0)
        total = sum(len(o) for o in outs)
        print(f"| {name} | {lib} | {level} | {total:,} | {len(raw)/total:.3f} | {best_c*1e3:.0f} | {best_d*1e3:.0f} | {best_z*1e3:.0f} |", flush=True)
