"""Hostile and broken input: every damaged frame is refused with UplinkError (never another
exception, never a partial result), in the cases and with the codes of the independent
reference decoder (scripts/interop/uplink_decode.py), within bounded time and memory; a refused
frame leaves the accumulator untouched; the encoder refuses bad updates and states."""
from __future__ import annotations

import os
import struct
import time

import numpy as np
import pytest

import uplink_decode as ref
import uplink_fl
from uplink_fl._crc32c import crc32c
from uplink_fl._rice import decode_indices, encode_indices
from conftest import FRAMES

GOLDEN = sorted(f for f in os.listdir(FRAMES) if f.endswith(".upl"))


def _outcome_mine(data, layout=None):
    try:
        return ("ok", uplink_fl.decode(data, layout))
    except uplink_fl.UplinkError as e:
        return ("err", e.code)


def _outcome_ref(data, layout=None):
    try:
        return ("ok", ref.decode_frame(data, layout))
    except ref.FrameError as e:
        return ("err", e.code)


def _layout_for(name, golden_update):
    return uplink_fl.layout_of(golden_update) if "no-table" in name else None


@pytest.mark.parametrize("name", GOLDEN)
def test_every_truncation_refused(name, golden_update):
    data = open(os.path.join(FRAMES, name), "rb").read()
    layout = _layout_for(name, golden_update)
    for cut in range(len(data)):
        kind, code = _outcome_mine(data[:cut], layout)
        assert kind == "err", cut
        assert code == _outcome_ref(data[:cut], layout)[1], cut


@pytest.mark.parametrize("name", GOLDEN)
def test_bit_flips_refused_like_reference(name, golden_update):
    data = open(os.path.join(FRAMES, name), "rb").read()
    layout = _layout_for(name, golden_update)
    rng = np.random.default_rng(len(name))
    for _ in range(300):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        mine, theirs = _outcome_mine(bytes(b), layout), _outcome_ref(bytes(b), layout)
        assert mine[0] == theirs[0]
        if mine[0] == "err":
            assert mine[1] == theirs[1]


def _refresh_crcs(frame: bytearray) -> bytes:
    """Recomputes the header CRC and every section CRC (a hostile client writes valid ones)."""
    (H,) = struct.unpack_from("<I", frame, 8)
    hdr_end = 12 + H
    S = struct.unpack_from("<I", frame, 12 + 36)[0]
    off = hdr_end + 4
    for i in range(S):
        e = hdr_end - 24 * (S - i)
        stored = struct.unpack_from("<Q", frame, e + 16)[0]
        struct.pack_into("<I", frame, e + 4, crc32c(bytes(frame[off:off + stored])))
        off += stored
    struct.pack_into("<I", frame, hdr_end, crc32c(bytes(frame[:hdr_end])))
    return bytes(frame)


@pytest.mark.parametrize("name", GOLDEN)
def test_mutations_behind_valid_checksums(name, golden_update):
    """Flips with recomputed checksums reach the structural checks: still typed errors only,
    and the same accept/reject and codes as the reference decoder."""
    data = open(os.path.join(FRAMES, name), "rb").read()
    layout = _layout_for(name, golden_update)
    rng = np.random.default_rng(7 + len(name))
    for _ in range(300):
        b = bytearray(data)
        i = int(rng.integers(12, len(b)))
        b[i] ^= 1 << int(rng.integers(0, 8))
        try:
            mutated = _refresh_crcs(b)
        except struct.error:
            continue
        mine, theirs = _outcome_mine(mutated, layout), _outcome_ref(mutated, layout)
        assert mine[0] == theirs[0], (i, mine, theirs)
        if mine[0] == "ok":
            for k, v in mine[1].items():
                assert np.array_equal(v.reshape(-1).view(np.uint32),
                                      ref.decode_frame(mutated, layout)["update"][_offset(mine[1], k)].view(np.uint32))
        else:
            assert mine[1] == theirs[1], (i, mine, theirs)


def _offset(tensors, name):
    start = 0
    for k, v in tensors.items():
        if k == name:
            return slice(start, start + v.size)
        start += v.size


def test_garbage_never_crashes():
    rng = np.random.default_rng(3)
    for size in list(range(0, 64)) + [100, 1000, 5000]:
        for _ in range(20):
            blob = bytes(rng.integers(0, 256, size, dtype=np.uint8))
            if rng.random() < 0.5 and size >= 4:
                blob = b"UPLK" + blob[4:]
            with pytest.raises(uplink_fl.UplinkError):
                uplink_fl.decode(blob)


def _frame(golden_update, spec="ef | topk 10% | int8 | lz4"):
    return bytearray(uplink_fl.Encoder(spec).encode(golden_update, round=1, samples=5))


def test_oversized_declarations_refused_before_allocating(golden_update):
    f = _frame(golden_update, "fp32 | stored")
    # n = 2^48 with a valid header CRC: over the default parameter limit (403), nothing allocated.
    b = bytearray(f)
    struct.pack_into("<Q", b, 12 + 24, 1 << 48)
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.decode(_refresh_crcs(b))
    assert e.value.code in (403, 105)
    # A section declaring 64 MiB raw from 10 stored bytes is refused by the codec ratio rule.
    b = bytearray(_frame(golden_update, "fp32 | lz4"))
    (H,) = struct.unpack_from("<I", b, 8)
    e0 = 12 + H - 24
    struct.pack_into("<Q", b, e0 + 8, 64 * 1024 * 1024)
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.decode(_refresh_crcs(b))
    assert e.value.code in (105, 404)
    # Header length beyond the frame.
    b = bytearray(f)
    struct.pack_into("<I", b, 8, 0xFFFFFFF0)
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.decode(bytes(b))
    assert e.value.code in (401, 103)


def test_nan_and_bad_scales_refused(golden_update):
    for spec, code in (("fp32 | stored", 704), ("int8 | stored", 111), ("sign | stored", 111)):
        b = bytearray(uplink_fl.Encoder(spec).encode(golden_update))
        (H,) = struct.unpack_from("<I", b, 8)
        payload = 12 + H + 4
        if spec.startswith("fp32"):
            struct.pack_into("<f", b, payload + 8, float("nan"))
        else:
            struct.pack_into("<f", b, payload, -1.0)  # the first scale
        with pytest.raises(uplink_fl.UplinkError) as e:
            uplink_fl.decode(_refresh_crcs(b))
        assert e.value.code == code


def test_refused_frame_leaves_accumulator_untouched(golden_update):
    n = sum(v.size for v in golden_update.values())
    good = bytes(_frame(golden_update))
    acc = np.arange(n, dtype=np.float64)
    before = acc.copy()
    bad = bytearray(good)
    bad[-1] ^= 0x40
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.accumulate(bytes(bad), into=acc, weight=3.0)
    assert e.value.code == 201
    assert np.array_equal(acc, before)
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.accumulate(good, into=np.zeros(n + 1), weight=1.0)
    assert e.value.code == 304
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.accumulate(good, into=acc, weight=float("nan"))
    assert e.value.code == 707
    assert np.array_equal(acc, before)


def test_wrong_model_refused_with_hint(golden_update):
    frame = bytes(_frame(golden_update))
    other = [("w", (608,))]
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.decode(frame, other)
    assert e.value.code == 300 and "order" in e.value.message
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.decode(bytes(uplink_fl.Encoder("fp16 | zlib", include_tensor_table=False).encode(golden_update)))
    assert e.value.code == 302


def test_hostile_rice_stream_is_linear():
    # A payload of all one-bits never resynchronizes; it must still be refused quickly.
    hostile = bytes([0, 0]) + bytes([0xFF, 0xFF, 0x03]) + b"\xff" * 200_000
    t = time.perf_counter()
    with pytest.raises(uplink_fl.UplinkError) as e:
        decode_indices(hostile, 10_000_000)
    assert e.value.code == 111
    assert time.perf_counter() - t < 20


def test_rice_round_trip_and_reference_agreement():
    rng = np.random.default_rng(11)
    cases = [(10, 0), (10, 10), (1, 1), (2, 1), (1000, 7), (100_000, 1000), (1 << 20, 20_000), (1 << 40, 50), (3000, 2999)]
    for n, k in cases:
        pos = np.unique(rng.integers(0, n, k)) if n > 1 << 30 else np.sort(rng.choice(n, k, replace=False))
        s = encode_indices(pos, n)
        assert np.array_equal(decode_indices(s, n), pos)
        if n <= 1 << 20:
            assert np.array_equal(ref._decode_indices(s, n), pos)
    clustered = np.sort(np.concatenate([np.arange(1000, 3000), np.arange(500_000, 500_100), [9_999_999]]))
    s = encode_indices(clustered, 10_000_000)
    assert s[1] == 0 and np.array_equal(decode_indices(s, 10_000_000), clustered)
    n = 4000
    base = encode_indices(np.sort(rng.choice(n, 300, replace=False)), n)
    for _ in range(2000):
        b = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        if rng.random() < 0.2:
            b = b[:int(rng.integers(3, len(b)))]
        try:
            got = decode_indices(bytes(b), n)
        except uplink_fl.UplinkError as e:
            assert e.code == 111
            with pytest.raises(ref.FrameError):
                ref._decode_indices(bytes(b), n)
            continue
        assert np.array_equal(got, ref._decode_indices(bytes(b), n))


def test_crc32c_against_bytewise_reference():
    rng = np.random.default_rng(5)
    for size in (0, 1, 9, 2047, 2048, 2049, 4096, 65537, 333_333, 3_000_001):
        data = bytes(rng.integers(0, 256, size, dtype=np.uint8))
        want = ref.crc32c(data) if size < 100_000 else None
        got = crc32c(data)
        if want is not None:
            assert got == want
        cut = size // 3
        assert crc32c(data[cut:], crc32c(data[:cut])) == got
    assert crc32c(b"123456789") == 0xE3069283


def test_encoder_refusals(golden_update):
    bad = {k: v.copy() for k, v in golden_update.items()}
    name = sorted(bad)[1]
    bad[name].reshape(-1)[3] = np.nan
    enc = uplink_fl.Encoder("ef | topk 10% | int8 | lz4")
    enc.encode(golden_update)
    before = enc.state()
    with pytest.raises(uplink_fl.UplinkError) as e:
        enc.encode(bad)
    assert e.value.code == 704 and name in e.value.message and "element 3" in e.value.message
    assert enc.state() == before  # a failed encode leaves the residual untouched
    big = {k: v * 0 + 70000.0 for k, v in golden_update.items()}
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.Encoder("fp16 | lz4").encode(big)
    assert e.value.code == 705
    with pytest.raises(uplink_fl.UplinkError) as e:
        enc.encode({"other": np.zeros(3, np.float32)})
    assert e.value.code == 304
    with pytest.raises(uplink_fl.UplinkError) as e:
        enc.encode({k: v.astype(np.int64) for k, v in golden_update.items()})
    assert e.value.code == 701
    damaged = bytearray(before)
    damaged[50] ^= 1
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.Encoder("ef | topk 10% | int8 | lz4", state=bytes(damaged)).encode(golden_update)
    assert e.value.code == 800
    with pytest.raises(uplink_fl.UplinkError) as e:
        uplink_fl.Encoder("ef | topk 20% | int8 | lz4", state=before).encode(golden_update)
    assert e.value.code == 801
    # The codec is not part of the state's key: LZ4 -> zlib keeps the residual.
    uplink_fl.Encoder("ef | topk 10% | int8 | zlib", state=before).encode(golden_update)
    for spec, code in (("fp32 || lz4", 600), ("brotli", 601), ("topk 150%", 602), ("int8 | topk 1%", 603), ("clip 1 | fp32", 602)):
        with pytest.raises(uplink_fl.UplinkError) as e:
            uplink_fl.Encoder(spec)
        assert e.value.code == code, spec
