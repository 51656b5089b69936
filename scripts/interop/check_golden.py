"""Checks the golden frames in fixtures/frames/ against the independent Python decoder.

For every frame in manifest.json: decode, compare bit-exactly (float32 bit patterns) with the
reference decoder's pinned output named by the entry's "decoded" field (fixtures/frames/
decoded/*.npy, flat float32), check round, samples, tensor table and pipeline, cross-check the
values against the golden input where the doc defines them exactly (fp32, fp16, bf16 values;
random-k positions against the doc's reference code), then check that bit flips and
truncations are all rejected with FrameError.

Then builds frames by hand (valid CRCs, recomputed) to check the decoder on valid edge cases
(Rice escapes, bitmap, k = 0) and on invalid streams, which must be rejected with code 111
(or 704 for non-finite values), and on the rules the doc states exactly (which code for a
descriptor or table running past H, zlib without its Adler-32, LZ4 lengths, the sign of a
-0.0 scale, the order of asymmetric scales and offsets, names compared by bytes).

Last, runs the .safetensors header rules of fixtures/tensor-files/safetensors-rules.json
(the Swift reader's tests run the same file) through the Python reader.
"""
from __future__ import annotations

import json
import os
import struct
import sys
import time
import zlib

import numpy as np

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from uplink_decode import (  # noqa: E402
    _lz4_block, FrameError, crc32c, decode_frame, flat_update_from_safetensors, layout_fingerprint,
    layout_from_safetensors, parse_safetensors_header, randk_positions, randk_positions_reference,
    tensor_table_bytes,
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


def bits_equal(a, b):
    return (a.dtype == np.float32 and b.dtype == np.float32 and a.shape == b.shape
            and a.view(np.uint32).tobytes() == b.view(np.uint32).tobytes())


def bf16_round(x):
    """float32 -> bfloat16 (round to nearest, ties to even) -> float32, for finite x."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return (u.astype(np.uint32) << np.uint32(16)).view(np.float32)


def check_frame(fname, meta, manifest, golden, layout):
    problems = []
    path = os.path.join(FRAMES, fname)
    with open(path, "rb") as f:
        data = f.read()
    if "bytes" in meta and len(data) != meta["bytes"]:
        problems.append(f"size {len(data)} != manifest {meta['bytes']}")
    no_table = "--omit-layout" in meta.get("options", [])
    use_layout = layout if no_table else None

    try:
        fr = decode_frame(data, layout=use_layout)
    except FrameError as e:
        return [f"decode failed: {e}"], "?"
    upd = fr["update"]

    # Bit-exact comparison with the reference decoder's pinned output.
    if "decoded" not in meta:
        problems.append("manifest entry has no 'decoded' field")
    else:
        pinned = np.load(os.path.join(FRAMES, meta["decoded"]), allow_pickle=False)
        if pinned.dtype != np.float32 or pinned.ndim != 1:
            problems.append(f"pinned output is {pinned.dtype}{pinned.shape}, expected flat float32")
        elif not bits_equal(upd, pinned):
            if upd.shape != pinned.shape:
                problems.append(f"update shape {upd.shape} != pinned {pinned.shape}")
            else:
                diff = np.flatnonzero(upd.view(np.uint32) != pinned.view(np.uint32))
                problems.append(f"update differs from pinned output in {diff.size} values "
                                f"(first at {int(diff[0])}: {upd[diff[0]]!r} vs {pinned[diff[0]]!r})")

    # Cross-checks against the golden input, where the doc defines the values exactly.
    stages = {s["kind"]: s for s in fr["pipeline"]}
    quant = stages["quantizer"]["name"]
    pos = fr["positions"] if fr["positions"] is not None else np.arange(fr["n"])
    src = golden[pos]
    expect = {"fp32": lambda x: x,
              "fp16": lambda x: x.astype(np.float16).astype(np.float32),
              "bf16": bf16_round}.get(quant)
    if expect is not None and "ef" not in stages and not bits_equal(upd[pos], expect(src)):
        problems.append(f"transmitted {quant} values differ from the golden input")
    sp = stages.get("sparsifier")
    if sp is not None and sp["name"] == "randk":
        ref = randk_positions_reference(fr["n"], fr["k"], sp["seed"], fr["round"])
        if fr["positions"].tolist() != ref:
            problems.append("random-k positions differ from the doc's reference code")
    if sp is not None and sp["name"] == "threshold":
        want = np.flatnonzero(np.abs(golden) >= sp["tau"])
        if fr["positions"].tolist() != want.tolist():
            problems.append("threshold positions differ from |x| >= tau on the golden input")

    if fr["round"] != manifest.get("round", 7) or fr["round"] != 7:
        problems.append(f"round {fr['round']} != 7")
    if fr["samples"] != manifest.get("samples", 600) or fr["samples"] != 600:
        problems.append(f"samples {fr['samples']} != 600")
    if no_table != (fr["tensors"] is None):
        problems.append(f"tensor table presence {fr['tensors'] is not None} unexpected")
    if fr["tensors"] is not None and [(n, tuple(s)) for n, s in fr["tensors"]] != layout:
        problems.append(f"tensor table {fr['tensors']} != golden layout {layout}")
    pipe = " | ".join(s["label"] for s in fr["pipeline"])
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
    for p in spread(FLIPS, len(data) * 8):
        m = bytearray(data)
        m[p // 8] ^= 1 << (p % 8)
        mutations.append((f"flip bit {p}", bytes(m)))
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
    summary = (f"n={fr['n']} k={fr['k']} S={fr['S']} pipeline={pipe} "
               f"mutations={len(mutations)} rejected codes={dict(sorted(codes.items()))}")
    return problems, summary


# ---------------------------------------------------------------------------------------------
# Hand-built frames (written from the doc, independent of the decoder's internals)

def leb128(v, pad=0):
    """Unsigned LEB128; pad > 0 appends pad non-minimal bytes (continuations, then 0x00)."""
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b | (0x80 if pad else 0))
            break
    if pad:
        out += b"\x80" * (pad - 1) + b"\x00"
    return bytes(out)


class BitWriter:
    def __init__(self):
        self.bits = []

    def put(self, value, width):
        self.bits += [(value >> i) & 1 for i in range(width)]

    def tobytes(self):
        out = bytearray((len(self.bits) + 7) // 8)
        for i, b in enumerate(self.bits):
            out[i // 8] |= b << (i % 8)
        return bytes(out)


def rice_payload(positions, n, r):
    W = max(1, (n - 1).bit_length())
    w = BitWriter()
    prev = -1
    for p in positions:
        g = p - prev - 1
        prev = p
        q = g >> r
        if q < 32:
            w.put((1 << q) - 1, q)
            w.put(0, 1)
            w.put(g, r)
        else:
            w.put((1 << 32) - 1, 32)
            w.put(g, W)
    return w, w.tobytes()


def indices_rice(positions, n, r, k=None):
    return bytes([0, r]) + leb128(len(positions) if k is None else k) + rice_payload(positions, n, r)[1]


def indices_bitmap(positions, n, k=None):
    bm = bytearray((n + 7) // 8)
    for p in positions:
        bm[p // 8] |= 1 << (p % 8)
    return bytes([1, 0]) + leb128(len(positions) if k is None else k) + bytes(bm)


def pack_codes(codes, b):
    w = BitWriter()
    for c in codes:
        w.put(int(c), b)
    return w.tobytes()


def stage(sid, params=b""):
    return bytes([sid, len(params)]) + params


FP32, FP16, BF16, STORED = stage(0x20), stage(0x21), stage(0x22), stage(0x60)
TOPK = stage(0x10, b"\x00" + b"\x00" + struct.pack("<d", 0.1))
THRESH = stage(0x13, struct.pack("<d", 0.5))


def INT(bits, asym=False, block=4):
    return stage(0x23, struct.pack("<BBIQ", bits, 1 if asym else 0, block, 0))


def SIGN(block=0):
    return stage(0x24, struct.pack("<I", block))


def build_frame(stage_list, streams, layout, rnd=7, samples=600, table=True, crc_fix=True):
    """stage_list: descriptor stage bytes; streams: [(kind, raw bytes)], one stored section each
    (empty streams get no section)."""
    desc = bytes([len(stage_list)]) + b"".join(stage_list)
    tt = tensor_table_bytes(layout) if table else b""
    n = sum(int(np.prod(s, dtype=np.int64)) if len(s) else 1 for _, s in layout)
    secs = [(k, raw) for k, raw in streams if len(raw)]
    sec_table = b"".join(struct.pack("<BBBBIQQ", k, 0, 0, 0, crc32c(raw), len(raw), len(raw))
                         for k, raw in secs)
    header = struct.pack("<QQQQIIH", layout_fingerprint(layout), rnd, samples, n, len(layout),
                         len(secs), len(desc)) + desc + tt + sec_table
    pre = b"UPLK" + struct.pack("<HHI", 1, 1 if table else 0, len(header))
    return pre + header + struct.pack("<I", crc32c(pre + header)) + b"".join(raw for _, raw in secs)


def f32(*xs):
    return np.array(xs, dtype="<f4").tobytes()


def fix_header_crc(frame):
    """The frame with its header CRC recomputed (after a header field was patched)."""
    (H,) = struct.unpack_from("<I", frame, 8)
    return frame[:12 + H] + struct.pack("<I", crc32c(frame[:12 + H])) + frame[16 + H:]


def build_sections_frame(stage_list, sections, layout):
    """Like build_frame, with sections given as (kind, codec, raw length, stored bytes)."""
    desc = bytes([len(stage_list)]) + b"".join(stage_list)
    n = sum(int(np.prod(s, dtype=np.int64)) if len(s) else 1 for _, s in layout)
    table = b"".join(struct.pack("<BBBBIQQ", k, c, 0, 0, crc32c(st), raw, len(st)) for k, c, raw, st in sections)
    header = struct.pack("<QQQQIIH", layout_fingerprint(layout), 7, 600, n, len(layout), len(sections),
                         len(desc)) + desc + tensor_table_bytes(layout) + table
    pre = b"UPLK" + struct.pack("<HHI", 1, 1, len(header))
    return pre + header + struct.pack("<I", crc32c(pre + header)) + b"".join(st for *_, st in sections)


def doc_rule_checks():
    """The rules docs/wire-format.md states exactly (the Swift side: WireFormatRulesTests)."""
    results = []

    def expect(label, frame, code=None, want=None):
        try:
            got = decode_frame(frame)["update"]
            if code is not None:
                results.append((label, f"accepted, expected [{code}]"))
            elif want is not None and got.view(np.uint32).tolist() != np.asarray(want, np.float32).view(np.uint32).tolist():
                results.append((label, f"decoded {got.tolist()}, expected {list(want)}"))
            else:
                results.append((label, None))
        except FrameError as e:
            results.append((label, None if e.code == code else f"got {e}, expected {code or 'success'}"))
        except Exception as e:
            results.append((label, f"raised {type(e).__name__}: {e}"))

    w3 = [("w", (3,))]
    base = build_frame([FP32, STORED], [(1, f32(1, 2, 3))], w3)
    (P,) = struct.unpack_from("<H", base, 52)
    for declared in (P + 1, P + 24, 0xFFFF):
        expect(f"descriptor length {declared} runs past H: [105]",
               fix_header_crc(base[:52] + struct.pack("<H", declared) + base[54:]), 105)
    # T = 2 with one table entry and no section table: entry 2 runs past H.
    one = build_frame([FP32, STORED], [], w3)
    for T in (2, 1000):
        expect(f"tensor table of T={T} runs past H: [105]",
               fix_header_crc(one[:44] + struct.pack("<I", T) + one[48:]), 105)
    expect("frame shorter than 12 + H + 4: [103]", base[:-13], 103)

    zeros = bytes(400)
    z = zlib.compress(zeros, 6)
    ZLIB = stage(0x62, b"\x06")
    lay = lambda n: [("w", (n,))]  # noqa: E731
    expect("zlib stream complete", build_sections_frame([FP32, ZLIB], [(1, 2, 400, z)], lay(100)), None, np.zeros(100))
    expect("zlib without its Adler-32: [501]", build_sections_frame([FP32, ZLIB], [(1, 2, 400, z[:-4])], lay(100)), 501)
    expect("zlib with half its Adler-32: [501]", build_sections_frame([FP32, ZLIB], [(1, 2, 400, z[:-2])], lay(100)), 501)
    expect("zlib with a wrong Adler-32: [501]",
           build_sections_frame([FP32, ZLIB], [(1, 2, 400, z[:-1] + bytes([z[-1] ^ 1]))], lay(100)), 501)
    expect("zlib complete but shorter than raw: [502]", build_sections_frame([FP32, ZLIB], [(1, 2, 404, z)], lay(101)), 502)
    expect("zlib complete but longer than raw: [502]", build_sections_frame([FP32, ZLIB], [(1, 2, 396, z)], lay(99)), 502)
    if _lz4_block is not None:
        block = _lz4_block.compress(zeros, store_size=False)
        LZ4 = stage(0x61, b"\x00")
        expect("LZ4 block exact", build_sections_frame([FP32, LZ4], [(1, 1, 400, block)], lay(100)), None, np.zeros(100))
        expect("LZ4 block shorter than raw (checked after decompression): [502]",
               build_sections_frame([FP32, LZ4], [(1, 1, 404, block)], lay(101)), 502)
        expect("LZ4 block longer than raw: [500]", build_sections_frame([FP32, LZ4], [(1, 1, 396, block)], lay(99)), 500)
    else:
        results.append(("LZ4 length rules", "the lz4 package is not installed"))

    # sign / ternary: bit 0 is the stored scale as is, bit 1 its sign flipped (-0.0 -> +0.0).
    mz = -0.0
    expect("sign, scale -0.0: bits 0,1,0 -> -0.0, +0.0, -0.0",
           build_frame([SIGN(0), STORED], [(3, f32(mz)), (1, pack_codes([0, 1, 0], 1))], w3), None, [mz, 0.0, mz])
    TERN = stage(0x25, struct.pack("<I", 0))
    expect("ternary, scale -0.0: kept bits 0,1 -> -0.0, +0.0; not kept +0.0",
           build_frame([THRESH, TERN, STORED], [(2, indices_rice([0, 2], 3, 0)), (3, f32(mz)), (1, pack_codes([0, 1], 1))], w3),
           None, [mz, 0.0, 0.0])
    # Asymmetric int: scale0, offset0, scale1, offset1.
    expect("int8 asym: scales and offsets interleaved per block",
           build_frame([INT(8, asym=True, block=4), STORED], [(3, f32(1, 100, 2, -50)), (1, bytes([0, 1, 2, 3, 0, 1, 2, 3]))],
                       [("w", (8,))]), None, [100, 101, 102, 103, -50, -48, -46, -44])
    # A non-zero int seed without stochastic rounding is accepted.
    seeded = stage(0x23, struct.pack("<BBIQ", 8, 0, 4, 0xDEADBEEF1234))
    expect("int8 seed without stochastic rounding is accepted",
           build_frame([seeded, STORED], [(3, f32(0.5)), (1, bytes([127, 128, 126]))], w3), None, [0, 0.5, -0.5])
    # Names compare by UTF-8 bytes.
    expect("NFC and NFD spellings of one name are two tensors",
           build_frame([FP32, STORED], [(1, f32(1, 2, 3))], [("\u00e9", (1,)), ("e\u0301", (2,))]), None, [1, 2, 3])
    expect("the same name twice: [105]", build_frame([FP32, STORED], [(1, f32(1, 2, 3))], [("w", (1,)), ("w", (2,))]), 105)
    return results


def safetensors_rule_checks():
    """fixtures/tensor-files/safetensors-rules.json through the Python reader."""
    with open(os.path.join(ROOT, "fixtures", "tensor-files", "safetensors-rules.json"), encoding="utf-8") as f:
        doc = json.load(f)
    results = []
    for c in doc["cases"]:
        header = c["header"].encode("utf-8")
        blob = struct.pack("<Q", c.get("length_override", len(header))) + header + bytes(c["data_bytes"])
        label = f"safetensors: {c['label']}"
        try:
            entries, _ = parse_safetensors_header(blob)
            got = [[name.encode("utf-8"), list(shape)] for name, _, shape, _, _ in entries]
            if "code" in c:
                results.append((label, f"accepted, expected [{c['code']}]"))
            else:
                want = [[name.encode("utf-8"), shape] for name, shape in c["tensors"]]
                results.append((label, None if got == want else f"layout {got} != {want}"))
        except FrameError as e:
            if "code" not in c:
                results.append((label, f"refused: {e}"))
            else:
                short = len(e.message) < 500
                results.append((label, None if e.code == c["code"] and short else f"got {e.code} ({len(e.message)} chars), expected [{c['code']}]"))
        except Exception as e:
            results.append((label, f"raised {type(e).__name__}: {e}"))
    # The tensor count is checked against the limit (a small one here, as in the Swift test).
    four = "{" + ",".join(f'"t{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' for i in range(4)) + "}"
    blob = struct.pack("<Q", len(four)) + four.encode()
    try:
        parse_safetensors_header(blob, max_tensors=3)
        results.append(("safetensors: more tensors than the limit", "accepted, expected [402]"))
    except FrameError as e:
        results.append(("safetensors: more tensors than the limit", None if e.code == 402 else str(e)))
    return results


def crafted_checks():
    """Returns a list of (label, problem or None)."""
    results = []
    layout = [("bias", (7,)), ("w", (10, 10))]
    n = 107  # W = 7
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n).astype(np.float32)

    def expect_ok(label, frame, want):
        try:
            got = decode_frame(frame)["update"]
            ok = bits_equal(got, np.asarray(want, dtype=np.float32))
            results.append((label, None if ok else "decoded update differs from the expected one"))
        except Exception as e:
            results.append((label, f"rejected: {type(e).__name__}: {e}"))

    def expect_err(label, frame, code):
        try:
            decode_frame(frame)
            results.append((label, f"accepted, expected [{code}]"))
        except FrameError as e:
            results.append((label, None if e.code == code else f"got {e}, expected [{code}]"))
        except Exception as e:
            results.append((label, f"raised {type(e).__name__}: {e}"))

    def sparse(pos):
        u = np.zeros(n, dtype=np.float32)
        u[pos] = x[pos]
        return u

    def topk_fp32(idx, pos, values=None):
        vals = f32(*x[pos]) if values is None else values
        return build_frame([TOPK, FP32, STORED], [(2, idx), (1, vals)], layout)

    # Builder sanity: rebuilding every all-stored golden frame from its parts gives its bytes.
    for fname in sorted(os.listdir(FRAMES)):
        if not fname.endswith("-stored.upl"):
            continue
        data = open(os.path.join(FRAMES, fname), "rb").read()
        fr = decode_frame(data)
        descs = [stage(s["id"], s["params"]) for s in fr["pipeline"]]
        streams = [(s["kind"], data[s["offset"]:s["offset"] + s["stored_length"]])
                   for s in fr["sections"]]
        lay = [(nm, tuple(sh)) for nm, sh in fr["tensors"]]
        same = build_frame(descs, streams, lay, fr["round"], fr["samples"]) == data
        results.append((f"builder reproduces {fname}", None if same else "bytes differ"))

    # random-k: the vectorized generator agrees with the doc's reference code.
    for (nn, k, seed, rnd) in [(608, 30, 7, 7), (1000, 999, 1, 0), (5, 1, 0, 0),
                               (100000, 300, 2 ** 64 - 1, 2 ** 64 - 1), (37, 36, 12345, 99)]:
        same = randk_positions(nn, k, seed, rnd).tolist() == randk_positions_reference(nn, k, seed, rnd)
        results.append((f"randk n={nn} k={k} seed={seed} round={rnd}", None if same else "differs from reference"))

    # Valid edge cases.
    pos = [0, 1, 40, 41, 100, 106]  # gap 38 >= 32 with r=0: escape code
    expect_ok("rice r=0 with escape", topk_fp32(indices_rice(pos, n, 0), pos), sparse(pos))
    expect_ok("rice r=W", topk_fp32(indices_rice(pos, n, 7), pos), sparse(pos))
    expect_ok("rice r=2", topk_fp32(indices_rice(pos, n, 2), pos), sparse(pos))
    expect_ok("bitmap", topk_fp32(indices_bitmap(pos, n), pos), sparse(pos))
    expect_ok("rice k=0 (no values stream)", topk_fp32(indices_rice([], n, 0), [], b""), np.zeros(n, np.float32))
    allp = list(range(n))
    expect_ok("bitmap k=n", topk_fp32(indices_bitmap(allp, n), allp), x)
    want = np.zeros(n, np.float32)
    want[pos] = np.float32(0.5) * np.array([1, -1, -1, 1, 1, -1], np.float32)
    expect_ok("threshold + sign block=0",
              build_frame([THRESH, SIGN(0), STORED],
                          [(2, indices_rice(pos, n, 3)), (3, f32(0.5)), (1, pack_codes([0, 1, 1, 0, 0, 1], 1))],
                          layout), want)
    codes4 = [0, 15, 7, 3, 9]
    sc, off = np.float32(0.1), np.float32(-0.7)
    want = np.zeros(n, np.float32)
    want[:5] = off + np.array(codes4, np.float32) * sc
    expect_ok("topk + int4 asym (code 15 valid)",
              build_frame([TOPK, INT(4, asym=True, block=8), STORED],
                          [(2, indices_rice([0, 1, 2, 3, 4], n, 0)), (3, f32(sc, off)), (1, pack_codes(codes4, 4))],
                          layout), want)

    # Invalid indices streams: [111].
    expect_err("indices: k > n", topk_fp32(bytes([1, 0]) + leb128(n + 1) + bytes((n + 7) // 8), pos), 111)
    expect_err("indices: unknown method 2", topk_fp32(bytes([2]) + indices_rice(pos, n, 0)[1:], pos), 111)
    expect_err("indices: r > W", topk_fp32(indices_rice(pos, n, 8), pos), 111)
    expect_err("indices: bitmap with r != 0", topk_fp32(bytes([1, 1]) + indices_bitmap(pos, n)[2:], pos), 111)
    expect_err("indices: non-minimal LEB128 k", topk_fp32(bytes([0, 0]) + leb128(len(pos), pad=1)
                                                          + rice_payload(pos, n, 0)[1], pos), 111)
    expect_err("indices: LEB128 runs off the end", build_frame([TOPK, FP32, STORED], [(2, b"\x00\x00\x80")], layout), 111)
    # Position past n via an escaped gap: last gap coded as 200 in W=7 bits.
    w, _ = rice_payload([0], n, 0)
    w.put((1 << 32) - 1, 32)
    w.put(120, 7)
    expect_err("indices: position past n (escape)", topk_fp32(bytes([0, 0]) + leb128(2) + w.tobytes(), [0, 1]), 111)
    w, _ = rice_payload([0], n, 3)
    w.put((1 << 20) - 1, 20)  # q = 20, g = 160+ > n
    w.put(0, 1)
    w.put(5, 3)
    expect_err("indices: position past n (rice)", topk_fp32(bytes([0, 3]) + leb128(2) + w.tobytes(), [0, 1]), 111)
    w, _ = rice_payload(pos, n, 2)
    padded = bytearray(w.tobytes())
    assert len(w.bits) % 8, "test needs padding bits"
    padded[-1] |= 0x80
    expect_err("indices: non-zero padding bits", topk_fp32(bytes([0, 2]) + leb128(len(pos)) + bytes(padded), pos), 111)
    expect_err("indices: trailing byte", topk_fp32(indices_rice(pos, n, 2) + b"\x00", pos), 111)
    expect_err("indices: payload ends inside a code", topk_fp32(indices_rice(pos, n, 0)[:-1], pos), 111)
    expect_err("indices: k larger than coded gaps", topk_fp32(indices_rice(pos, n, 2, k=len(pos) + 3), pos), 111)
    bad_bm = bytearray(indices_bitmap(pos, n))
    bad_bm[-1] |= 0x80  # bit 111 >= n
    expect_err("indices: bitmap bit past n", topk_fp32(bytes(bad_bm), pos), 111)
    expect_err("indices: bitmap count != k", topk_fp32(indices_bitmap(pos, n, k=len(pos) - 1), pos), 111)
    expect_err("indices: bitmap too short", topk_fp32(indices_bitmap(pos, n)[:-1], pos), 111)
    expect_err("indices: stream missing", build_frame([TOPK, FP32, STORED], [(1, f32(*x[pos]))], layout), 108)
    expect_err("values: shorter than k", topk_fp32(indices_rice(pos, n, 0), pos[:-1]), 111)

    # Invalid scales / values: [111]; non-finite: [704].
    idx5 = indices_rice([0, 1, 2, 3, 4], n, 0)

    def int_frame(bits, scales, codes, asym=False, block=4, stream_codes=None):
        vals = pack_codes(codes, bits) if stream_codes is None else stream_codes
        return build_frame([TOPK, INT(bits, asym, block), STORED], [(2, idx5), (3, scales), (1, vals)], layout)

    expect_ok("int8 sym valid", int_frame(8, f32(0.5, 0.25), [127, 254, 0, 130, 100]),
              np.concatenate([np.array([0, 63.5, -63.5, 1.5, -6.75], np.float32), np.zeros(n - 5, np.float32)]))
    expect_err("int8 sym: code 255", int_frame(8, f32(0.5, 0.25), [127, 255, 0, 1, 2]), 111)
    expect_err("int4 sym: code 15", int_frame(4, f32(0.5, 0.25), [7, 15, 0, 1, 2]), 111)
    expect_err("int2 sym: code 3", int_frame(2, f32(0.5, 0.25), [1, 3, 0, 1, 2]), 111)
    expect_err("int: negative scale", int_frame(8, f32(0.5, -0.25), [1, 2, 3, 4, 5]), 111)
    expect_err("int: NaN scale", int_frame(8, f32(float("nan"), 0.25), [1, 2, 3, 4, 5]), 111)
    expect_err("int asym: infinite offset", int_frame(4, f32(0.5, float("inf")), [1, 2, 3, 4, 5], asym=True, block=8), 111)
    expect_err("int4: non-zero padding bits in values",
               int_frame(4, f32(0.5, 0.25), [], stream_codes=pack_codes([1, 2, 3, 4, 5], 4)[:2] + b"\xf5"), 111)
    expect_err("sign: negative scale",
               build_frame([THRESH, SIGN(0), STORED], [(2, idx5), (3, f32(-1.0)), (1, b"\x01")], layout), 111)
    expect_err("int: overflow to infinity", int_frame(8, f32(3e38, 0.25), [254, 1, 2, 3, 4]), 704)
    expect_err("fp32: NaN value", topk_fp32(indices_rice(pos, n, 0), pos, f32(*([float("nan")] + [1.0] * 5))), 704)
    expect_err("bf16: infinity", build_frame([THRESH, BF16, STORED], [(2, idx5), (1, struct.pack("<5H", 0x7F80, 0, 0, 0, 0))],
                                             layout), 704)
    return results


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
    crafted = []
    for checks in (crafted_checks, doc_rule_checks, safetensors_rule_checks):
        try:
            crafted += checks()
        except Exception as e:
            crafted.append((checks.__name__, f"raised {type(e).__name__}: {e}"))
    for label, problem in crafted:
        if problem:
            failed += 1
            print(f"FAIL crafted: {label}: {problem}")
        else:
            passed += 1
            print(f"ok   crafted: {label}")
    print(f"({time.perf_counter() - t0:.2f} s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
