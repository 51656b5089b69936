"""The golden frames of fixtures/frames/: decoded bit for bit, inspected as Swift inspects them,
and re-encoded byte for byte from the golden input."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import uplink_fl
from uplink_fl._lz4 import backend
from conftest import FRAMES

NAMES = sorted(json.load(open(os.path.join(FRAMES, "manifest.json")))["frames"])


def _layout(golden_update, entry):
    if "--omit-layout" in entry["options"]:
        return uplink_fl.layout_of(golden_update)
    return None


@pytest.mark.parametrize("name", NAMES)
def test_decodes_to_pinned_output(name, manifest, golden_update):
    entry = manifest["frames"][name]
    data = open(os.path.join(FRAMES, name), "rb").read()
    tensors = uplink_fl.decode(data, _layout(golden_update, entry))
    assert list(tensors) == sorted(golden_update, key=lambda s: s.encode())
    flat = np.concatenate([t.reshape(-1) for t in tensors.values()])
    want = np.load(os.path.join(FRAMES, entry["decoded"]))
    assert flat.dtype == np.float32
    assert np.array_equal(flat.view(np.uint32), want.view(np.uint32))
    for n, t in tensors.items():
        assert t.shape == golden_update[n].shape


@pytest.mark.parametrize("name", NAMES)
def test_encoder_is_byte_identical(name, manifest, golden_update):
    entry = manifest["frames"][name]
    opts = entry["options"]
    if entry["pipeline"].split("|")[-1].strip() == "lz4" and not backend().startswith("liblz4"):
        pytest.skip("level-0 LZ4 is byte-identical only through the system liblz4")
    kw = {}
    if "--section-bytes" in opts:
        kw["section_bytes"] = int(opts[opts.index("--section-bytes") + 1])
    if "--omit-layout" in opts:
        kw["include_tensor_table"] = False
    frame = uplink_fl.Encoder(entry["pipeline"], **kw).encode(golden_update, round=manifest["round"], samples=manifest["samples"])
    assert frame == open(os.path.join(FRAMES, name), "rb").read()


@pytest.mark.parametrize("name", NAMES)
def test_inspect_matches_swift(name, manifest, golden_update, uplink):
    entry = manifest["frames"][name]
    path = os.path.join(FRAMES, name)
    layout = _layout(golden_update, entry)
    args = ["inspect", "--json", path] + (["--layout", os.path.join(FRAMES, "golden-update.safetensors")] if layout else [])
    swift = json.loads(uplink(*args).stdout)
    mine = uplink_fl.inspect(open(path, "rb").read(), layout)
    for key, value in swift.items():
        if key == "file":
            continue
        if isinstance(value, float):
            assert mine[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert mine[key] == value, key


def test_canonical_pipeline_text(manifest):
    for entry in manifest["frames"].values():
        assert uplink_fl.canonical_pipeline(entry["pipeline"]) == entry["pipeline"]
    assert uplink_fl.canonical_pipeline("ef | topk 1% | int8 | lz4") == "ef | topk 1% scope=global | int8 block=256 sym | lz4"
