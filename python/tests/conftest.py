"""Shared fixtures: the repository root, the golden frames, and the Swift `uplink` binary (the
cross-language tests run it; scripts/test builds it and sets UPLINK_REQUIRE_SWIFT=1 so that a
missing binary fails instead of skipping)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FRAMES = os.path.join(ROOT, "fixtures", "frames")
UPDATE = os.path.join(ROOT, "fixtures", "updates", "mlp-digits-r6-c61.safetensors")
sys.path.insert(0, os.path.join(ROOT, "scripts", "interop"))


def swift_binary():
    path = os.environ.get("UPLINK_BIN") or os.path.join(ROOT, ".build", "debug", "uplink")
    return path if os.path.exists(path) else None


@pytest.fixture(scope="session")
def uplink():
    path = swift_binary()
    if path is None:
        if os.environ.get("UPLINK_REQUIRE_SWIFT") == "1":
            pytest.fail("the Swift uplink binary is missing (swift build)")
        pytest.skip("the Swift uplink binary is not built (swift build); cross-language tests skipped")

    def run(*args, check=True):
        r = subprocess.run([path, *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"uplink {' '.join(args)} failed: {r.stderr}")
        return r
    return run


@pytest.fixture(scope="session")
def manifest():
    with open(os.path.join(FRAMES, "manifest.json")) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def golden_update():
    from uplink_fl._tensorfiles import read_safetensors
    return read_safetensors(os.path.join(FRAMES, "golden-update.safetensors"))


@pytest.fixture(scope="session")
def real_update():
    from uplink_fl._tensorfiles import read_safetensors
    return read_safetensors(UPDATE)
