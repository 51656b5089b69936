"""Checks the golden frames in fixtures/frames/ against the independent Python decoder.

For every frame in manifest.json: decode, compare with the golden input (fp32 bit-exact, fp16
equal to numpy's float32 -> float16 -> float32 round trip), check round and samples, then check
that bit flips and truncations are all rejected with FrameError.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from uplink_decode import (  # noqa: E402
    FrameError, decode_frame, flat_update_from_safetensors, layout_from_safetensors,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FRAMES = os.path.join(ROOT, "fixtures", "frames")
FLIPS = 50
TRUNCATIONS = 20


def spread(count, length):
    """~count distinct positions spread evenly over [0, length)."""
    if length <= 0:
        return []
    return sorted({(i * length) // count for i in range(count)})


def check_frame(fname, meta, manifest, golden, layout):
    problems = []
    path = os.path.join(FRAMES, fname)
    with open(path, "rb") as f:
        data = f.read()
    if "bytes" in meta and len(data) != meta["bytes"]:
        problems.append(f"size {len(data)} != manifest {meta['bytes']}")
    quantizer = meta["pipeline"].split("|")[0].strip()
    no_table = "--omit-layout" in meta.get("options", [])
    use_layout = layout if no_table else None

    try:
        fr = decode_frame(data, layout=use_layout)
    except FrameError as e:
        return [f"decode failed: {e}"], "?"
    upd = fr["update"]
    if quantizer == "fp32":
        expect = golden
    elif quantizer == "fp16":
        expect = golden.astype(np.float16).astype(np.float32)
    else:
        return [f"unknown quantizer {quantizer!r} in manifest"], "?"
    if upd.dtype != np.float32 or upd.shape != expect.shape:
        problems.append(f"update dtype/shape {upd.dtype}{upd.shape} != {expect.shape}")
    elif upd.view(np.uint32).tobytes() != expect.view(np.uint32).tobytes():
        diff = int(np.count_nonzero(upd.view(np.uint32) != expect.view(np.uint32)))
        problems.append(f"update differs from golden input in {diff} values")
    if fr["round"] != manifest.get("round", 7) or fr["round"] != 7:
        problems.append(f"round {fr['round']} != 7")
    if fr["samples"] != manifest.get("samples", 600) or fr["samples"] != 600:
        problems.append(f"samples {fr['samples']} != 600")
    if no_table != (fr["tensors"] is None):
        problems.append(f"tensor table presence {fr['tensors'] is not None} unexpected")
    if fr["tensors"] is not None and [(n, tuple(s)) for n, s in fr["tensors"]] != layout:
        problems.append(f"tensor table {fr['tensors']} != golden layout {layout}")
    pipe = " | ".join(s["name"] for s in fr["pipeline"])
    if pipe != " | ".join(p.split()[0] for p in meta["pipeline"].split("|")):
        problems.append(f"pipeline {pipe} != manifest {meta['pipeline']}")
    if no_table:
        try:
            decode_frame(data)
            problems.append("frame without tensor table decoded without a layout")
        except FrameError as e:
            if e.code != 302:
                problems.append(f"no layout: expected [302], got {e}")

    # Mutations: every one must raise FrameError.
    mutations = []
    for pos in spread(FLIPS, len(data) * 8):
        m = bytearray(data)
        m[pos // 8] ^= 1 << (pos % 8)
        mutations.append((f"flip bit {pos}", bytes(m)))
    for length in spread(TRUNCATIONS, len(data)):
        mutations.append((f"truncate to {length}", data[:length]))
    codes = {}
    for label, m in mutations:
        try:
            decode_frame(m, layout=use_layout)
            problems.append(f"{label}: accepted (returned an update)")
        except FrameError as e:
            codes[e.code] = codes.get(e.code, 0) + 1
        except Exception as e:  # any other exception is a decoder bug
            problems.append(f"{label}: raised {type(e).__name__}: {e}")
    summary = (f"n={fr['n']} S={fr['S']} pipeline={pipe} "
               f"mutations={len(mutations)} rejected codes={dict(sorted(codes.items()))}")
    return problems, summary


def main():
    t0 = time.perf_counter()
    with open(os.path.join(FRAMES, "manifest.json")) as f:
        manifest = json.load(f)
    inp = os.path.join(FRAMES, manifest.get("input", "golden-update.safetensors"))
    golden = flat_update_from_safetensors(inp)
    layout = layout_from_safetensors(inp)
    passed = failed = 0
    for fname, meta in sorted(manifest["frames"].items()):
        try:
            problems, summary = check_frame(fname, meta, manifest, golden, layout)
        except Exception as e:  # a checker or decoder bug counts as a failure, not a crash
            problems, summary = [f"check raised {type(e).__name__}: {e}"], "?"
        if problems:
            failed += 1
            print(f"FAIL {fname}: {summary}")
            for p in problems:
                print(f"     - {p}")
        else:
            passed += 1
            print(f"ok   {fname}: {summary}")
    print(f"({time.perf_counter() - t0:.2f} s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
