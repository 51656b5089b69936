"""Python and Swift frames are interchangeable: on a real client update (the digits MLP's) and
on synthetic models of other shapes, every deterministic pipeline gives the same frame bytes
and the same error-feedback state in both languages, over several rounds, and a state written
by one continues in the other."""
from __future__ import annotations

import os

import numpy as np
import pytest

import uplink_fl
from uplink_fl._lz4 import backend
from uplink_fl._tensorfiles import read_safetensors, write_safetensors

PIPELINES = [
    "fp32 | stored", "fp32 | lz4", "fp32 | zlib", "fp16 | lz4", "bf16 | zlib", "bf16 | lz4 level=9",
    "int8 | lz4", "int8 | stored", "int4 | lz4", "int4 asym stochastic seed=1 | zlib", "int2 block=64 | zlib level=1",
    "ef | sign | lz4", "ef | sign block=0 | stored", "ef decay=0.9 | topk 1% | int8 | lz4",
    "ef | topk 1% | int8 block=256 | lz4", "ef | topk 1% scope=tensor | int8 | lz4", "topk-sampled 1% | fp16 | lz4",
    "threshold 0.001 | bf16 | zlib", "ef | randk 1% seed=7 | int4 | zlib", "ef | topk 0.1% | int4 | lz4",
    "ef | topk 0.1% | ternary | stored", "ef | topk 1000 | int8 asym | zlib 9", "ef | topk 5% | fp16 | lz4",
    "ef | topk 1% | int4 stochastic seed=3 | lz4",
]


def _needs_liblz4(spec):
    last = spec.split("|")[-1].split()
    if last[0] == "lz4" and len(last) == 1 and not backend().startswith("liblz4"):
        pytest.skip("level-0 LZ4 is byte-identical only through the system liblz4")


def _swift_rounds(uplink, tmp, spec, files, extra=()):
    state = os.path.join(tmp, "swift.state")
    frames, states = [], []
    for r, path in enumerate(files):
        out = os.path.join(tmp, f"swift-{r}.upl")
        uplink("encode", "--pipeline", spec, "--in", path, "--out", out, "--state", state,
               "--round", str(r + 5), "--samples", str(10 + r), *extra)
        frames.append(open(out, "rb").read())
        states.append(open(state, "rb").read() if os.path.exists(state) else b"")
    return frames, states


def _rounds(real_update, tmp, count=3, seed=0):
    """Round updates: the real update, then perturbed copies of it (a different update each
    round, as a client's would be)."""
    rng = np.random.default_rng(seed)
    files = []
    for r in range(count):
        u = {k: (v if r == 0 else (v * np.float32(1 + 0.3 * r) + rng.normal(0, 1e-4, v.shape).astype(np.float32)))
             for k, v in real_update.items()}
        path = os.path.join(tmp, f"update-{r}.safetensors")
        with open(path, "wb") as f:
            f.write(write_safetensors(u))
        files.append(path)
    return files


@pytest.mark.parametrize("spec", PIPELINES)
def test_real_update_rounds_identical(spec, real_update, uplink, tmp_path):
    _needs_liblz4(spec)
    tmp = str(tmp_path)
    files = _rounds(real_update, tmp, count=2)
    want_frames, want_states = _swift_rounds(uplink, tmp, spec, files)
    enc = uplink_fl.Encoder(spec)
    for r, path in enumerate(files):
        frame = enc.encode(read_safetensors(path), round=r + 5, samples=10 + r)
        assert frame == want_frames[r], f"round {r}: {len(frame)} vs {len(want_frames[r])} bytes"
        assert enc.state() == want_states[r]


@pytest.mark.parametrize("spec", ["ef | topk 1% | int8 | lz4", "ef | sign | zlib", "ef decay=0.5 | randk 2% seed=1 | fp16 | stored"])
def test_state_continues_across_languages(spec, real_update, uplink, tmp_path):
    _needs_liblz4(spec)
    tmp = str(tmp_path)
    files = _rounds(real_update, tmp, count=4, seed=2)
    want, _ = _swift_rounds(uplink, tmp, spec, files)
    # Swift encodes rounds 0-1, Python continues from Swift's state with rounds 2-3 ...
    state = os.path.join(tmp, "mixed.state")
    for r in range(2):
        uplink("encode", "--pipeline", spec, "--in", files[r], "--out", os.path.join(tmp, "x.upl"),
               "--state", state, "--round", str(r + 5), "--samples", str(10 + r))
    enc = uplink_fl.Encoder(spec, state=open(state, "rb").read())
    for r in (2, 3):
        assert enc.encode(read_safetensors(files[r]), round=r + 5, samples=10 + r) == want[r]
    # ... and Python's state after round 1 lets Swift continue.
    enc = uplink_fl.Encoder(spec)
    for r in range(2):
        enc.encode(read_safetensors(files[r]), round=r + 5, samples=10 + r)
    with open(state, "wb") as f:
        f.write(enc.state())
    out = os.path.join(tmp, "y.upl")
    uplink("encode", "--pipeline", spec, "--in", files[2], "--out", out, "--state", state, "--round", "7", "--samples", "12")
    assert open(out, "rb").read() == want[2]


SHAPES = [
    {"w": (3, 5), "b": (5,)},
    {"conv.weight": (8, 3, 3, 3), "conv.bias": (8,), "fc.weight": (10, 200), "fc.bias": (10,), "scalar": ()},
    {"big": (70_001,), "tiny": (1,), "empty": (0, 4)},
    {"é": (300,), "e\u0301": (200,), "z": (9, 11)},
]


@pytest.mark.parametrize("case", range(len(SHAPES)))
@pytest.mark.parametrize("spec", ["fp16 | zlib", "ef | topk 10% scope=tensor | int4 asym | zlib",
                                  "ef | topk 3 | fp32 | stored", "ef | sign block=7 | zlib 9",
                                  "ef | topk-sampled 5% sample=20% | int8 block=13 | zlib", "threshold 0.5 | int2 | stored",
                                  "randk 100 seed=9 | bf16 | stored"])
def test_other_models_identical(case, spec, uplink, tmp_path):
    rng = np.random.default_rng(case)
    update = {k: (rng.standard_t(3, size=s) * 0.5).astype(np.float32) for k, s in SHAPES[case].items()}
    path = os.path.join(tmp_path, "u.safetensors")
    with open(path, "wb") as f:
        f.write(write_safetensors(update))
    for section, omit in ((1 << 20, False), (100, True)):
        extra = ["--section-bytes", str(section)] + (["--omit-layout"] if omit else [])
        sw = os.path.join(tmp_path, "s.upl")
        state = os.path.join(tmp_path, f"s{section}.state")
        enc = uplink_fl.Encoder(spec, section_bytes=section, include_tensor_table=not omit)
        for r in range(2):
            uplink("encode", "--pipeline", spec, "--in", path, "--out", sw, "--state", state, "--round", str(r), *extra)
            frame = enc.encode(update, round=r)
            assert frame == open(sw, "rb").read()
            layout = uplink_fl.layout_of(update) if omit else None
            got = uplink_fl.decode(frame, layout)
            dec = os.path.join(tmp_path, "d.safetensors")
            uplink("decode", "--in", sw, "--out", dec, *(["--layout", path] if omit else []))
            want = read_safetensors(dec)
            for name in want:
                assert np.array_equal(got[name].view(np.uint32), want[name].view(np.uint32))


def test_one_array_is_arr_0(uplink, tmp_path):
    x = np.linspace(-1, 1, 1000, dtype=np.float32).reshape(10, 100)
    path = os.path.join(tmp_path, "u.npy")
    np.save(path, x)
    out = os.path.join(tmp_path, "s.upl")
    uplink("encode", "--pipeline", "int8 | zlib", "--in", path, "--out", out)
    frame = uplink_fl.Encoder("int8 | zlib").encode(x)
    assert frame == open(out, "rb").read()
    d = uplink_fl.decode(frame)
    assert list(d) == ["arr_0"] and d["arr_0"].shape == (10, 100)


@pytest.mark.parametrize("spec", ["fp32 | lz4", "fp32 | zlib", "fp16 | zlib 1", "int8 | lz4 level=3"])
@pytest.mark.parametrize("kind", ["noise", "mixed", "smooth"])
def test_sampled_sections_identical(spec, kind, uplink, tmp_path):
    """Sections of 256 KiB and more are stored when a sample of four 16 KiB pieces does not
    shrink by 1% (docs/wire-format.md §7): both encoders decide alike, so the bytes match."""
    _needs_liblz4(spec)
    rng = np.random.default_rng(17)
    n = 400_000
    bits = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
    bits = np.where((bits & 0x7F800000) == 0x7F800000, bits ^ 0x00800000, bits)
    x = bits.view(np.float32).copy()
    if kind == "mixed":  # compressible outside the sampled pieces only
        x[50_000:90_000] = 0
    elif kind == "smooth":
        x = (np.arange(n) % 97).astype(np.float32) * 0.01
    if spec.startswith("fp16") or spec.startswith("int8"):
        x = np.clip(np.nan_to_num(x), -1000, 1000).astype(np.float32)
    update = {"w": x}
    path = os.path.join(tmp_path, "u.safetensors")
    with open(path, "wb") as f:
        f.write(write_safetensors(update))
    out = os.path.join(tmp_path, "s.upl")
    uplink("encode", "--pipeline", spec, "--in", path, "--out", out)
    frame = uplink_fl.Encoder(spec).encode(update)
    assert frame == open(out, "rb").read()
