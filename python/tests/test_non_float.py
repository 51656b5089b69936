"""A PyTorch checkpoint's non-float tensors (int64 ``num_batches_tracked``, bool masks): refused
by default with the tensor named (701), or left out with ``--skip-non-float`` /
``skip_non_float=True``, with the same layout and the same frame bytes as Swift's option."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import uplink_fl
from uplink_fl._tensorfiles import parse_safetensors_header, read_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CNN = os.path.join(ROOT, "fixtures", "updates", "cnn-digits-update.safetensors")


def _file(entries):
    """A .safetensors file of (name, dtype, shape, bytes) in the given order."""
    header, data = {}, b""
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


CKPT = _file([("bn.weight", "F32", [2], np.array([0.5, -0.25], "<f4").tobytes()),
              ("bn.num_batches_tracked", "I64", [], struct.pack("<q", 7)),
              ("mask", "BOOL", [3], b"\x01\x00\x01"),
              ("a", "F32", [1], np.array([3], "<f4").tobytes())])


def test_refused_by_default_naming_the_tensor():
    with pytest.raises(uplink_fl.UplinkError) as e:
        read_safetensors(CKPT)
    assert e.value.code == 701 and "bn.num_batches_tracked" in str(e.value) and "I64" in str(e.value)


def test_skipped_on_request_in_name_order():
    t = read_safetensors(CKPT, skip_non_float=True)
    assert list(t) == ["a", "bn.weight"]
    assert t["bn.weight"].tolist() == [0.5, -0.25]


def test_non_float_sizes_are_still_checked():
    bad = _file([("m", "BOOL", [3], b"\x00" * 4), ("w", "F32", [1], b"\x00" * 4)])
    with pytest.raises(uplink_fl.UplinkError) as e:
        parse_safetensors_header(bad, skip_non_float=True)
    assert e.value.code == 703


@pytest.mark.parametrize("blob, code", [
    (_file([("q", "Q4_K", [2], b"\x00\x00"), ("w", "F32", [1], b"\x00" * 4)]), 701),  # unknown even when skipping
    (_file([("n", "I64", [], b"\x00" * 8)]), 701),                                    # nothing float
])
def test_refusals_when_skipping(blob, code):
    with pytest.raises(uplink_fl.UplinkError) as e:
        parse_safetensors_header(blob, skip_non_float=True)
    assert e.value.code == code


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "uplink_fl", *args], capture_output=True, text=True)


def test_cnn_checkpoint_frames_match_swift(uplink, tmp_path):
    """The bundled CNN update (PyTorch state_dict order, two I64 counters) encodes to the same
    bytes in both languages with the option, and each decodes the other's frame against the
    checkpoint as layout."""
    py, sw = str(tmp_path / "py.upl"), str(tmp_path / "sw.upl")
    refused = _cli("encode", "--pipeline", "fp16 | zlib", CNN, py)
    assert refused.returncode == 1 and "701" in refused.stderr and "num_batches_tracked" in refused.stderr
    for spec in ["fp16 | zlib", "ef | topk 1% | int8 | zlib"]:
        r = _cli("encode", "--pipeline", spec, CNN, py, "--skip-non-float", "--omit-layout")
        assert r.returncode == 0, r.stderr
        uplink("encode", "--pipeline", spec, "--in", CNN, "--out", sw, "--skip-non-float", "--omit-layout")
        assert open(py, "rb").read() == open(sw, "rb").read(), spec
        d = _cli("decode", sw, str(tmp_path / "back.safetensors"), "--layout", CNN, "--skip-non-float")
        assert d.returncode == 0, d.stderr
        uplink("decode", "--in", py, "--out", str(tmp_path / "back2.safetensors"), "--layout", CNN, "--skip-non-float")
    # Without the option on the layout the checkpoint is refused, not silently another model.
    r = _cli("inspect", sw, "--layout", CNN)
    assert r.returncode == 1 and "701" in r.stderr
