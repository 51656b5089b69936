"""Command line: ``python -m uplink_fl decode|encode|inspect`` (also installed as ``uplink-fl``).

    python -m uplink_fl decode IN.upl OUT.npy|OUT.safetensors [--layout FILE]
    python -m uplink_fl encode --pipeline SPEC IN.npy|IN.safetensors OUT.upl [--state FILE]
                               [--round R] [--samples N] [--omit-layout] [--section-bytes B] [--skip-non-float]
    python -m uplink_fl inspect IN.upl [--layout FILE]

Refusals print ``uplink-fl: error [CODE]: message`` on standard error and exit with status 1
(2 for a usage error); ``--json`` prints a JSON summary (or ``{"error": {"code", "message"}}``).
Outputs are written atomically (a temporary file, fsync, rename), the frame before the state.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


from . import Encoder, UplinkError, inspect as inspect_frame
from ._decode import parse_frame
from ._layout import layout_of, split
from ._io import write_atomic
from ._tensorfiles import read_tensor_file, write_npy, write_safetensors

MAX_PARAMS = 1 << 28


_write_atomic = write_atomic


def _read(path: str, limit: int | None = None) -> bytes:
    try:
        size = os.path.getsize(path)
        if limit is not None and size > limit:
            raise UplinkError(400, f"{path} has {size} bytes, above the limit of {limit} for a frame")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UplinkError(706, f"cannot read {path}: {e.strerror}") from None


def _layout_arg(path, skip_non_float=False):
    if path is None:
        return None
    try:
        return layout_of(read_tensor_file(path, skip_non_float=skip_non_float))
    except OSError as e:
        raise UplinkError(706, f"cannot read {path}: {e.strerror}") from None


def _decode(a) -> dict:
    layout = _layout_arg(a.layout, a.skip_non_float)
    data = _read(a.input, 8 * max(MAX_PARAMS, a.max_params) + (1 << 20))
    limits = None if layout is not None else {"parameters": a.max_params}
    f = parse_frame(data, layout, limits)
    tensors = split(f.dense(), f.layout)
    if a.output.endswith(".safetensors"):
        out = write_safetensors(tensors)
    elif a.output.endswith(".npy"):
        arr = next(iter(tensors.values())) if len(tensors) == 1 else f.dense()
        if len(tensors) > 1:
            print(f"uplink-fl: note: {len(tensors)} tensors written to {a.output} as one flat vector of {f.n} values; "
                  "use .safetensors to keep names and shapes", file=sys.stderr)
        out = write_npy(arr)
    else:
        raise UplinkError(707, f"output {a.output} must end in .npy or .safetensors")
    _write_atomic(a.output, out)
    return {"file": a.output, "parameters": f.n, "tensors": len(f.layout), "frame_bytes": f.size,
            "pipeline": str(f.pipeline), "round": f.round, "samples": f.samples}


def _encode(a) -> dict:
    try:
        update = read_tensor_file(a.input, skip_non_float=a.skip_non_float)
    except OSError as e:
        raise UplinkError(706, f"cannot read {a.input}: {e.strerror}") from None
    state = None
    if a.state and os.path.exists(a.state):
        state = _read(a.state)
    enc = Encoder(a.pipeline, state, include_tensor_table=not a.omit_layout, section_bytes=a.section_bytes)
    frame = enc.encode(update, round=a.round, samples=a.samples)
    # The reader checks (and summarizes) the frame before anything is written.
    info = inspect_frame(frame, layout_of(update))
    _write_atomic(a.output, frame)
    if a.state and enc.pipeline.has_ef:
        _write_atomic(a.state, enc.state())
    return {"file": a.output, "bytes": len(frame), "pipeline": info["pipeline"], "parameters": info["parameters"],
            "transmitted": info["transmitted"], "ratio_to_float32": info["ratio_to_float32"], "round": a.round,
            "samples": a.samples}


def _inspect(a) -> dict:
    layout = _layout_arg(a.layout, a.skip_non_float)
    data = _read(a.input, 8 * max(MAX_PARAMS, a.max_params) + (1 << 20))
    info = inspect_frame(data, layout) if layout is not None else inspect_frame(data)
    info["file"] = a.input
    return info


def _u64(text: str) -> int:
    v = int(text)
    if not 0 <= v < 1 << 64:
        raise argparse.ArgumentTypeError("must be an integer in 0…2^64−1")
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="uplink-fl", description="Decode, encode and inspect Uplink frames.")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("decode", help="decode a frame into an update (.npy or .safetensors)")
    d.add_argument("input", metavar="IN.upl")
    d.add_argument("output", metavar="OUT")
    d.add_argument("--layout", help="model layout (.safetensors or .npy); needed for frames without a tensor table")
    d.add_argument("--max-params", type=int, default=MAX_PARAMS, help="most parameters a frame may declare without --layout (error 403)")
    d.add_argument("--skip-non-float", action="store_true", help="leave non-float tensors (int64 counters, bool masks) out of --layout")
    e = sub.add_parser("encode", help="encode an update (.npy or .safetensors) into a frame")
    e.add_argument("--pipeline", required=True, help='pipeline spec, for example "ef | topk 1%% | int8 | lz4"')
    e.add_argument("input", metavar="IN")
    e.add_argument("output", metavar="OUT.upl")
    e.add_argument("--state", help="error-feedback state file: read if present, written after encoding")
    e.add_argument("--round", type=_u64, default=0)
    e.add_argument("--samples", type=_u64, default=1)
    e.add_argument("--omit-layout", action="store_true", help="leave the tensor table out of the frame")
    e.add_argument("--section-bytes", type=int, default=1 << 20)
    e.add_argument("--skip-non-float", action="store_true", help="leave non-float tensors (int64 counters, bool masks) out of the update")
    i = sub.add_parser("inspect", help="print every field of a frame")
    i.add_argument("input", metavar="IN.upl")
    i.add_argument("--layout")
    i.add_argument("--max-params", type=int, default=MAX_PARAMS)
    i.add_argument("--skip-non-float", action="store_true", help="leave non-float tensors out of --layout")
    for p in (d, e, i):
        p.add_argument("--json", action="store_true", help="print a JSON summary")
    a = ap.parse_args(argv)
    try:
        result = {"decode": _decode, "encode": _encode, "inspect": _inspect}[a.command](a)
    except UplinkError as err:
        if a.json:
            print(json.dumps({"error": {"code": err.code, "message": err.message}}))
        else:
            print(f"uplink-fl: error [{err.code}]: {err.message}", file=sys.stderr)
        return 1
    if a.json or a.command == "inspect":
        print(json.dumps(result, indent=2, ensure_ascii=False))
    elif a.command == "decode":
        print(f"wrote {result['file']}: {result['parameters']} parameters in {result['tensors']} tensor(s) "
              f"from {result['frame_bytes']} bytes ({result['pipeline']})")
    else:
        print(f"wrote {result['file']}: {result['bytes']} bytes, {result['ratio_to_float32']:.1f}x smaller than float32 "
              f"({result['pipeline']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
