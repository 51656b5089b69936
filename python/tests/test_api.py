"""The public API as a user calls it: decode, accumulate, inspect, Encoder, the command line,
and a FedAvg round summed with accumulate against Swift's `uplink aggregate`."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import uplink_fl
from uplink_fl._tensorfiles import read_safetensors, write_npy, write_safetensors
from conftest import ROOT


def _update(seed, shapes={"layer1.weight": (64, 32), "layer1.bias": (64,), "out.weight": (10, 64)}):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, 0.01, s).astype(np.float32) for k, s in shapes.items()}


def test_decode_returns_tensors_by_name_in_frame_order():
    u = _update(1)
    frame = uplink_fl.Encoder("fp32 | zlib").encode(u, round=4, samples=7)
    d = uplink_fl.decode(frame)
    assert list(d) == ["layer1.bias", "layer1.weight", "out.weight"]
    for k in u:
        assert d[k].dtype == np.float32 and np.array_equal(d[k], u[k])
    # The layout may be given as a mapping of name to shape, or as (name, shape) pairs.
    uplink_fl.decode(frame, {k: u[k].shape for k in sorted(u)})
    uplink_fl.decode(frame, uplink_fl.layout_of(u))


def test_accumulate_matches_swift_arithmetic_in_both_precisions():
    u = _update(2)
    layout = uplink_fl.layout_of(u)
    n = sum(np.prod(s, dtype=int) for _, s in layout)
    for spec in ("ef | topk 5% | int8 | lz4", "fp16 | stored", "ef | sign | zlib", "randk 3% seed=2 | int4 | zlib"):
        frame = uplink_fl.Encoder(spec).encode(u)
        dense = np.concatenate([t.reshape(-1) for t in uplink_fl.decode(frame).values()])
        acc64 = np.full(n, 0.25)
        info = uplink_fl.accumulate(frame, into=acc64, weight=3.5)
        assert np.array_equal(acc64, 0.25 + 3.5 * dense.astype(np.float64))
        acc32 = np.full(n, np.float32(0.25), dtype=np.float32)
        uplink_fl.accumulate(frame, into=acc32, weight=3.5)
        assert np.array_equal(acc32, np.float32(0.25) + np.float32(3.5) * dense)
        assert info["parameters"] == n and info["pipeline"] == uplink_fl.canonical_pipeline(spec)
    # Any shape with n elements works as the destination.
    acc = np.zeros((n // 2, 2))
    uplink_fl.accumulate(frame, into=acc)
    with pytest.raises(uplink_fl.UplinkError):
        uplink_fl.accumulate(frame, into=np.zeros(n, dtype=np.int64))


def test_inspect_reports_cost():
    u = _update(3)
    frame = uplink_fl.Encoder("ef | topk 1% | int8 | lz4").encode(u, round=2**40, samples=2**33)
    info = uplink_fl.inspect(frame)
    assert info["round"] == 2**40 and info["samples"] == 2**33  # u64 fields past 2^32
    assert info["bytes"] == len(frame) and info["transmitted"] == int(0.01 * (64 * 32 + 64 + 640) + 0.5)
    assert info["ratio_to_float32"] == pytest.approx(4 * info["parameters"] / len(frame))
    assert [s["stream"] for s in info["sections"]] == ["indices", "scales", "values"]


def test_encoder_state_round_trip_and_layout():
    u = _update(4)
    enc = uplink_fl.Encoder("ef | topk 2% | int4 | lz4")
    assert enc.state() == b""  # nothing known before the first update
    enc.encode(u, round=1)
    saved = enc.state()
    assert saved[:4] == b"UPLS"
    f2 = enc.encode(u, round=2)
    again = uplink_fl.Encoder("ef | topk 2% | int4 | lz4", state=saved)
    assert again.encode(u, round=2) == f2 and again.state() == enc.state()
    # Without ef there is no state.
    assert uplink_fl.Encoder("int8 | lz4").state() == b""
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.Encoder("int8 | lz4", state=saved)
    assert e.value.code == 801
    # Error feedback keeps what was not sent: sent + residual = sum of inputs.
    enc = uplink_fl.Encoder("ef | topk 1% | int8 | zlib")
    total = np.zeros(sum(v.size for v in u.values()), dtype=np.float64)
    inputs = np.zeros_like(total)
    for r in range(20):
        ur = _update(100 + r)
        inputs += np.concatenate([ur[k].reshape(-1) for k in sorted(ur)])
        total += np.concatenate([t.reshape(-1) for t in uplink_fl.decode(enc.encode(ur, round=r)).values()])
    assert np.allclose(total + enc.residual, inputs, atol=1e-5)


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python", "src"))
    return subprocess.run([sys.executable, "-m", "uplink_fl", *args], capture_output=True, text=True, env=env)


def test_command_line_round_trip(tmp_path):
    u = _update(5)
    src = tmp_path / "u.safetensors"
    src.write_bytes(write_safetensors(u))
    out, state = tmp_path / "f.upl", tmp_path / "s.state"
    r = _cli("encode", "--pipeline", "ef | topk 10% | int8 | lz4", str(src), str(out), "--state", str(state), "--round", "3", "--samples", "12")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == uplink_fl.Encoder("ef | topk 10% | int8 | lz4").encode(u, round=3, samples=12)
    assert state.read_bytes()[:4] == b"UPLS"
    r = _cli("decode", str(out), str(tmp_path / "d.safetensors"))
    assert r.returncode == 0, r.stderr
    d = read_safetensors(str(tmp_path / "d.safetensors"))
    ref = uplink_fl.decode(out.read_bytes())
    assert all(np.array_equal(d[k], ref[k]) for k in ref)
    r = _cli("decode", str(out), str(tmp_path / "d.npy"))
    assert r.returncode == 0 and "flat vector" in r.stderr
    assert np.load(tmp_path / "d.npy").shape == (sum(v.size for v in u.values()),)
    info = json.loads(_cli("inspect", str(out)).stdout)
    assert info["round"] == 3 and info["samples"] == 12
    # A damaged frame: exit status 1, the code on stderr, nothing written.
    bad = bytearray(out.read_bytes())
    bad[-3] ^= 1
    (tmp_path / "bad.upl").write_bytes(bytes(bad))
    r = _cli("decode", str(tmp_path / "bad.upl"), str(tmp_path / "x.npy"))
    assert r.returncode == 1 and "[201]" in r.stderr and not (tmp_path / "x.npy").exists()
    r = _cli("inspect", "--json", str(tmp_path / "bad.upl"))
    assert r.returncode == 1 and json.loads(r.stdout)["error"]["code"] == 201
    r = _cli("encode", "--pipeline", "int3", str(src), str(tmp_path / "y.upl"))
    assert r.returncode == 1 and "[601]" in r.stderr
    # One array in a .npy is the tensor arr_0.
    (tmp_path / "a.npy").write_bytes(write_npy(np.arange(12, dtype=np.float32).reshape(3, 4)))
    assert _cli("encode", "--pipeline", "fp16 | zlib", str(tmp_path / "a.npy"), str(tmp_path / "a.upl")).returncode == 0
    assert list(uplink_fl.decode((tmp_path / "a.upl").read_bytes())) == ["arr_0"]


def test_fedavg_round_equals_swift_aggregate(uplink, tmp_path):
    """Five clients' frames summed with accumulate (float64, weight = samples) give the model
    Swift's `uplink aggregate --strategy fedavg` gives, to within 1 ulp of float32."""
    model = _update(50)
    model_path = tmp_path / "model.safetensors"
    model_path.write_bytes(write_safetensors(model))
    layout = uplink_fl.layout_of(model)
    n = sum(v.size for v in model.values())
    total = np.zeros(n)
    weight = 0.0
    frames = []
    for c in range(5):
        f = uplink_fl.Encoder("ef | topk 10% | int8 | lz4").encode(_update(60 + c), round=9, samples=100 + 37 * c)
        path = tmp_path / f"client{c}.upl"
        path.write_bytes(f)
        frames.append(str(path))
        samples = 100 + 37 * c
        assert uplink_fl.accumulate(f, into=total, weight=float(samples))["samples"] == samples
        weight += samples
    flat_model = np.concatenate([model[k].reshape(-1) for k, _ in layout])
    delta = (total / weight).astype(np.float32)
    mine = (flat_model.astype(np.float64) + delta.astype(np.float64)).astype(np.float32)
    out = tmp_path / "new.safetensors"
    uplink("aggregate", "--strategy", "fedavg", "--model", str(model_path), "--out", str(out), "--round", "9", *frames)
    new = read_safetensors(str(out))
    swift = np.concatenate([new[k].reshape(-1) for k, _ in layout])
    ulps = np.abs(mine.view(np.int32).astype(np.int64) - swift.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1
