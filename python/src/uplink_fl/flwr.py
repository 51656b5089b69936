"""Flower integration (flwr 1.42, Message API): compressed client updates as Uplink frames.

Client side, :class:`UplinkMod` is a ClientApp mod. On a ``train`` message it lets the
ClientApp train, then replaces the reply's ``ArrayRecord`` of trained weights with one
:class:`~flwr.app.Array` holding a frame (``dtype="uint8"``, ``stype=FRAME_STYPE``) that
carries the **update**: the trained arrays minus the global arrays the message brought. It
compresses the update, not the weights, because top-k, sign and low-bit quantizers are
meaningful only on a difference (the weights themselves are dense and large). An error-
feedback residual, when the pipeline has ``ef``, is kept per client in a state file.

Server side, :class:`UplinkFedAvg` is FedAvg that decodes each frame straight into one
running float64 sum (no dense copy per client) and adds the weighted mean update to the
global model; :func:`uplink_strategy` (or the :class:`UplinkStrategy` mixin) makes any other
message-API strategy accept frames, by turning each frame back into the client's weights
(global + update) before that strategy aggregates. Either way a reply whose frame is refused
(:class:`uplink_fl.UplinkError`) is dropped from the round and logged with its code, and the
bytes received per round are recorded as metrics (``uplink-*`` keys).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp.typing import ClientAppCallable
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy

import uplink_fl

__all__ = [
    "FRAME_KEY",
    "FRAME_STYPE",
    "METRIC_PREFIX",
    "UplinkFedAvg",
    "UplinkMod",
    "UplinkStrategy",
    "frame_array",
    "frame_of",
    "uplink_strategy",
    "write_safetensors",
]

FRAME_STYPE = "application/vnd.uplink.frame"
"""The ``stype`` of an :class:`~flwr.app.Array` whose ``data`` is one Uplink frame."""

FRAME_KEY = "uplink-frame"
"""The key of the frame's Array inside the reply's ``ArrayRecord``."""

METRIC_PREFIX = "uplink-"
"""Prefix of the per-round metrics the strategies add (``uplink-bytes``, ...)."""

ROUND_MISMATCH = 901
"""Code of a frame whose round is not the server's round (as ``uplink aggregate``)."""

MOD_FAILED = 6  # flwr's ErrorCode.MOD_FAILED_PRECONDITION
_ROUND_AT = 12 + 8  # the header's u64 round: after the 12-byte preamble and the fingerprint

_log = logging.getLogger("flwr.uplink")  # a child of Flower's logger: shown in `flwr log`

PathLike = str | os.PathLike[str]
PerContext = Callable[[Context], Any]


# --------------------------------------------------------------------------------------------
# Frames inside Flower records


def frame_array(frame: bytes) -> Array:
    """The :class:`~flwr.app.Array` that carries ``frame`` (uint8, 1-D, ``FRAME_STYPE``)."""
    return Array(dtype="uint8", shape=(len(frame),), stype=FRAME_STYPE, data=bytes(frame))


def frame_of(content: RecordDict) -> tuple[str, bytes] | None:
    """``(record key, frame bytes)`` when ``content`` carries exactly one ArrayRecord that is a
    frame (one Array of ``FRAME_STYPE``), else ``None``."""
    records = content.array_records
    if len(records) != 1:
        return None
    key, record = next(iter(records.items()))
    array = record.get(FRAME_KEY)
    if len(record) != 1 or array is None or array.stype != FRAME_STYPE:
        return None
    return key, array.data


def _server_round(content: RecordDict) -> int:
    """The ``server-round`` a message's ConfigRecords carry (0 without one)."""
    for record in content.config_records.values():
        value = record.get("server-round")
        if isinstance(value, int):
            return value
    return 0


def _weight(content: RecordDict, key: str) -> float | None:
    """The sample weight ``key`` (or the legacy ``num_examples``) from a MetricRecord."""
    for record in content.metric_records.values():
        for k in (key, "num_examples"):
            value = record.get(k)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "_"


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Writes ``data`` to ``path`` as one unit: a temporary file beside it, fsync, rename,
    then fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_safetensors(path: PathLike, arrays: ArrayRecord | Mapping[str, np.ndarray]) -> None:
    """Writes a model (an ArrayRecord or arrays by name) atomically as a float32
    ``.safetensors`` file, the form ``uplink aggregate --model`` and ``uplink encode --in``
    read; its layout (tensors sorted by name) is the one frames of that model carry."""
    tensors = {k: v.numpy() if isinstance(v, Array) else np.asarray(v) for k, v in arrays.items()}
    _atomic_write(Path(path), _safetensors_bytes(tensors))


def _safetensors_bytes(tensors: Mapping[str, np.ndarray]) -> bytes:
    """A float32 ``.safetensors`` file of ``tensors``, in layout order (names sorted by their
    UTF-8 bytes), header padded with spaces to 8 bytes: what ``uplink aggregate --model``
    reads."""
    header: dict[str, Any] = {}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors, key=lambda s: s.encode("utf-8")):
        blob = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        shape = list(np.shape(tensors[name]))
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


# --------------------------------------------------------------------------------------------
# Client side


class UplinkMod:
    """ClientApp mod that sends the training update as one Uplink frame.

    Parameters
    ----------
    pipeline : str or callable
        The pipeline (``"ef | topk 1% | int8 | lz4"``, see docs/pipeline.md), or a function
        of the :class:`~flwr.app.Context` returning it (e.g. from ``context.run_config``).
    state_dir : path, callable or None
        Directory of the error-feedback residuals, one file ``<client id>.upls`` per client,
        written atomically (temporary file, fsync, rename). May be a function of the Context.
        ``None`` keeps the residual in ``context.state`` instead (in the SuperNode's memory,
        for the run only). Unused when the pipeline has no ``ef``.
    client_id : callable, optional
        Function of the Context naming the client's state file; default ``node-<node_id>``.
    weight_key : str
        The MetricRecord key of the reply whose value is recorded as the frame's sample count
        (FedAvg's ``"num-examples"``; the legacy ``num_examples`` is found as well).

    The mod acts on ``train`` messages only. The incoming message must carry one ArrayRecord
    (the global model) and the reply one ArrayRecord with the same keys, shapes and
    floating-point arrays (the trained model); the frame carries, per key, ``trained -
    received`` as float32, the round from the ConfigRecord's ``server-round``, and the
    samples from the reply's ``num-examples``. Anything else, or an encoding error (NaN in the
    update: 704), becomes an error reply (``MOD_FAILED_PRECONDITION``) and leaves the residual
    untouched. A residual file for another model or pipeline (800/801) is logged and replaced.
    """

    def __init__(
        self,
        pipeline: str | Callable[[Context], str],
        state_dir: PathLike | Callable[[Context], PathLike | None] | None = None,
        *,
        client_id: Callable[[Context], str] | None = None,
        weight_key: str = "num-examples",
    ) -> None:
        self.pipeline = pipeline
        self.state_dir = state_dir
        self.client_id = client_id
        self.weight_key = weight_key

    # -- state ---------------------------------------------------------------------------

    def _pipeline(self, context: Context) -> str:
        return self.pipeline(context) if callable(self.pipeline) else self.pipeline

    def _state_path(self, context: Context) -> Path | None:
        directory = self.state_dir(context) if callable(self.state_dir) else self.state_dir
        if directory is None or str(directory) == "":
            return None
        name = self.client_id(context) if self.client_id else f"node-{context.node_id}"
        return Path(directory) / f"{_safe_name(name)}.upls"

    def _load_state(self, context: Context) -> bytes | None:
        path = self._state_path(context)
        if path is None:
            record = context.state.config_records.get("uplink")
            value = record.get("state") if record is not None else None
            return value if isinstance(value, bytes) and value else None
        try:
            return path.read_bytes() or None
        except FileNotFoundError:
            return None

    def _save_state(self, context: Context, state: bytes) -> None:
        path = self._state_path(context)
        if path is None:
            context.state["uplink"] = ConfigRecord({"state": state})
        elif state:
            _atomic_write(path, state, mode=0o600)  # the residual is private to the client

    def _encode(self, context: Context, update: dict[str, np.ndarray], server_round: int,
                samples: int) -> tuple[bytes, bytes]:
        """(frame, new residual). A stored residual for another model or pipeline (800/801,
        found when the encoder reads it or meets the update) is dropped: start from zero."""
        pipeline = self._pipeline(context)
        state = self._load_state(context)
        if state is not None:
            try:
                encoder = uplink_fl.Encoder(pipeline, state=state)
                return encoder.encode(update, round=server_round, samples=samples), encoder.state()
            except uplink_fl.UplinkError as e:
                if e.code not in (800, 801):
                    raise
                _log.warning("UplinkMod: residual of %s refused [%d] %s; starting from zero",
                             self._state_path(context) or "context.state", e.code, _message(e))
        encoder = uplink_fl.Encoder(pipeline)
        return encoder.encode(update, round=server_round, samples=samples), encoder.state()

    # -- the mod -------------------------------------------------------------------------

    def __call__(self, msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        """Run the ClientApp, then replace its trained arrays by a frame of the update."""
        if msg.metadata.message_type.split(".")[0] != MessageType.TRAIN:
            return call_next(msg, context)
        incoming = msg.content.array_records
        if len(incoming) != 1:
            return _error(msg, f"UplinkMod expects one ArrayRecord in a train message, found {len(incoming)}")
        # A copy of the global arrays, taken before the ClientApp can change the record.
        received = {k: a.numpy() for k, a in next(iter(incoming.values())).items()}
        server_round = _server_round(msg.content)

        out = call_next(msg, context)
        if out.has_error():
            return out
        replies = out.content.array_records
        if len(replies) != 1:
            return _error(msg, f"UplinkMod expects one ArrayRecord in the reply, found {len(replies)}")
        key, trained = next(iter(replies.items()))
        if set(trained.keys()) != set(received):
            return _error(msg, "UplinkMod: the reply's ArrayRecord keys differ from the global model's")
        update: dict[str, np.ndarray] = {}
        for name, array in trained.items():
            after, before = array.numpy(), received[name]
            if after.shape != before.shape or not (
                np.issubdtype(after.dtype, np.floating) and np.issubdtype(before.dtype, np.floating)
            ):
                return _error(msg, f"UplinkMod: array {name!r} is not a float array of the global model's shape")
            update[name] = (after.astype(np.float64) - before.astype(np.float64)).astype(np.float32)
        weight = _weight(out.content, self.weight_key)
        samples = max(0, int(round(weight))) if weight is not None and math.isfinite(weight) else 1
        try:
            frame, state = self._encode(context, update, server_round, samples)
            self._save_state(context, state)
        except uplink_fl.UplinkError as e:
            return _error(msg, f"UplinkMod: encoding failed [{e.code}] {_message(e)}")
        out.content[key] = ArrayRecord({FRAME_KEY: frame_array(frame)})
        return out


def _error(msg: Message, reason: str) -> Message:
    _log.error("%s", reason)
    return Message(Error(code=MOD_FAILED, reason=reason), reply_to=msg)


# --------------------------------------------------------------------------------------------
# Server side


class _Round:
    """What one round received: byte counts and refusals."""

    def __init__(self, server_round: int, save_dir: Path | None) -> None:
        self.round = server_round
        self.save_dir = save_dir
        self.frames = 0  # frames received (accepted or not)
        self.accepted = 0
        self.bytes = 0
        self.float32_bytes = 0
        self.refused: list[dict[str, Any]] = []

    def receive(self, node: int, frame: bytes, n: int) -> None:
        self.frames += 1
        self.bytes += len(frame)
        self.float32_bytes += 4 * n
        if self.save_dir is not None:
            _atomic_write(self.save_dir / f"node-{node}.upl", frame)

    def refuse(self, node: int, code: int | None, message: str) -> None:
        self.refused.append({"node": node, "code": code, "message": message})
        _log.warning("round %d: refused the reply of node %d: [%s] %s", self.round, node,
                     code if code is not None else "-", message)

    def summary(self) -> dict[str, Any]:
        ratio = self.float32_bytes / self.bytes if self.bytes else 0.0
        return {"round": self.round, "frames": self.frames, "accepted": self.accepted,
                "bytes": self.bytes, "float32_bytes": self.float32_bytes, "ratio": ratio,
                "refused": self.refused}

    def metrics(self) -> dict[str, int | float | list[int]]:
        s = self.summary()
        m: dict[str, int | float | list[int]] = {
            "uplink-frames": self.frames, "uplink-accepted": self.accepted,
            "uplink-bytes": self.bytes, "uplink-float32-bytes": self.float32_bytes,
            "uplink-ratio": s["ratio"], "uplink-refused": len(self.refused)}
        if self.refused:
            m["uplink-refused-codes"] = [r["code"] or 0 for r in self.refused]
        return m


class UplinkStrategy:
    """Mixin that makes a message-API strategy accept Uplink frames (put it first in the bases:
    ``class MyFedAdam(UplinkStrategy, FedAdam)``, or use :func:`uplink_strategy`).

    ``configure_train`` remembers the global arrays it sends; ``aggregate_train`` turns each
    reply's frame into that client's weights (global + decoded update, dense), drops replies
    whose frame is refused (logged with its :class:`uplink_fl.UplinkError` code; a frame for
    another round is 901), then lets the wrapped strategy aggregate the rest as usual and adds
    the ``uplink-*`` metrics. Replies without a frame are passed through untouched.

    Extra keyword arguments: ``save_frames`` (a directory: every frame received is written to
    ``round-<R>/node-<id>.upl`` beside ``global.safetensors``, the model the round started
    from, and ``result.safetensors``, the model it produced, so that ``uplink aggregate
    --strategy fedavg --model round-R/global.safetensors round-R/*.upl`` replays the round) and
    ``check_round`` (default True). ``uplink_rounds`` maps each round to its summary (frames,
    bytes, float32 bytes, ratio, refusals).
    """

    def __init__(self, *args: Any, save_frames: PathLike | None = None, check_round: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.save_frames = Path(save_frames) if save_frames else None
        self.check_round = check_round
        self.uplink_rounds: dict[int, dict[str, Any]] = {}
        self._uplink_global: dict[str, np.ndarray] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """Remember the global arrays of this round, then configure as the wrapped strategy."""
        self._uplink_global = {k: a.numpy() for k, a in arrays.items()}
        return cast(Any, super()).configure_train(server_round, arrays, config, grid)

    # -- shared helpers ------------------------------------------------------------------

    def _uplink_begin(self, server_round: int) -> tuple[_Round, list[tuple[str, tuple[int, ...]]]]:
        save = self.save_frames / f"round-{server_round}" if self.save_frames else None
        if save is not None:
            write_safetensors(save / "global.safetensors", self._uplink_global)
        return _Round(server_round, save), uplink_fl.layout_of(self._uplink_global)

    def _uplink_check(self, rnd: _Round, frame: bytes) -> None:
        """Raises UplinkError 901 for a valid frame of another round. Only the header's round
        field is read here (the frame is checked in full when it is decoded); a frame whose
        round differs is checked in full first, so a damaged one gets its own code, as
        ``uplink aggregate`` reports it."""
        if not self.check_round or len(frame) < _ROUND_AT + 8:
            return
        (frame_round,) = struct.unpack_from("<Q", frame, _ROUND_AT)
        if frame_round != rnd.round:
            uplink_fl.inspect(frame)  # raises for a damaged frame
            raise uplink_fl.UplinkError(
                ROUND_MISMATCH, f"frame of round {frame_round}, the server's round is {rnd.round}")

    def _uplink_finish(self, rnd: _Round, arrays: ArrayRecord | None,
                       metrics: MetricRecord | None) -> tuple[ArrayRecord | None, MetricRecord]:
        metrics = metrics if metrics is not None else MetricRecord()
        for k, v in rnd.metrics().items():
            metrics[k] = v
        summary = rnd.summary()
        self.uplink_rounds[rnd.round] = summary
        _log.info("round %d: %d frames, %d bytes received, float32 %d bytes (%.1fx), %d refused",
                  rnd.round, rnd.frames, rnd.bytes, rnd.float32_bytes, summary["ratio"], len(rnd.refused))
        if rnd.save_dir is not None:
            if arrays is not None:
                write_safetensors(rnd.save_dir / "result.safetensors", arrays)
            _atomic_write(rnd.save_dir / "summary.json", json.dumps(summary, indent=1).encode())
        return arrays, metrics

    def _uplink_replies(self, replies: Iterable[Message]) -> list[Message]:
        """Replies without an error (errors are logged, as FedAvg does)."""
        valid = []
        for msg in replies:
            if msg.has_error():
                _log.info("reply from node %d is an error: %s", msg.metadata.src_node_id, msg.error.reason)
            else:
                valid.append(msg)
        return valid

    # -- dense path for any strategy -----------------------------------------------------

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Decode every frame into dense client weights, then aggregate as the wrapped
        strategy does."""
        rnd, layout = self._uplink_begin(server_round)
        n = sum(math.prod(shape) for _, shape in layout)
        kept: list[Message] = []
        for msg in self._uplink_replies(replies):
            found = frame_of(msg.content)
            if found is None:
                kept.append(msg)
                continue
            key, frame = found
            node = msg.metadata.src_node_id
            rnd.receive(node, frame, n)
            try:
                self._uplink_check(rnd, frame)
                update = uplink_fl.decode(frame, layout=layout)
            except uplink_fl.UplinkError as e:
                rnd.refuse(node, _code(e), _message(e))
                continue
            dense = {}
            for name, base in self._uplink_global.items():
                value = base.astype(np.float64) + np.asarray(update[name], np.float64).reshape(base.shape)
                dense[name] = Array(value.astype(base.dtype))
            msg.content[key] = ArrayRecord(dense)
            rnd.accepted += 1
            kept.append(msg)
        arrays, metrics = cast(Any, super()).aggregate_train(server_round, kept) if kept else (None, None)
        return self._uplink_finish(rnd, arrays, metrics)


def _code(e: Exception) -> int | None:
    code = getattr(e, "code", None)
    return int(code) if isinstance(code, int) else None


def _message(e: Exception) -> str:
    return str(getattr(e, "message", None) or e)


class UplinkFedAvg(UplinkStrategy, FedAvg):
    """FedAvg over Uplink frames, streaming: each frame is decoded straight into one float64
    running sum (``uplink_fl.accumulate(frame, into=sum, weight=num_examples)``), so the
    server holds one dense array however many clients report. The new model is
    ``global + Σ wᵢΔᵢ / Σ wᵢ``, with the mean update rounded to float32 before it is added to
    a float32 model, exactly as ``uplink aggregate --strategy fedavg`` computes it. Takes
    FedAvg's arguments plus ``save_frames`` and ``check_round`` (see :class:`UplinkStrategy`).
    A reply that is not a frame is taken as dense weights (a client without the mod).
    """

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Sum the decoded updates of the accepted frames, weighted by ``num-examples``."""
        rnd, layout = self._uplink_begin(server_round)
        offsets: dict[str, tuple[int, tuple[int, ...]]] = {}
        n = 0
        for name, shape in layout:
            offsets[name] = (n, tuple(shape))
            n += math.prod(shape)
        total = np.zeros(n, dtype=np.float64)
        weight_sum = 0.0
        accepted: list[RecordDict] = []
        for msg in self._uplink_replies(replies):
            node = msg.metadata.src_node_id
            weight = _weight(msg.content, self.weighted_by_key)
            if weight is None or not math.isfinite(weight) or weight < 0:
                rnd.refuse(node, None, f"no usable {self.weighted_by_key!r} in the reply's MetricRecord")
                continue
            found = frame_of(msg.content)
            try:
                if found is not None:
                    rnd.receive(node, found[1], n)
                    self._uplink_check(rnd, found[1])
                    uplink_fl.accumulate(found[1], into=total, weight=weight, layout=layout)
                else:
                    self._add_dense(msg.content, total, weight, offsets)
            except (uplink_fl.UplinkError, ValueError) as e:
                rnd.refuse(node, _code(e), _message(e))
                continue
            weight_sum += weight
            rnd.accepted += 1
            accepted.append(msg.content)
        if not accepted or weight_sum <= 0:
            if accepted:
                _log.warning("round %d: the accepted replies weigh 0 in total; model unchanged", server_round)
            return self._uplink_finish(rnd, None, None)
        delta = total / weight_sum
        new: dict[str, Array] = {}
        for name, base in self._uplink_global.items():  # the global model's own key order
            start, shape = offsets[name]
            d = delta[start:start + math.prod(shape)].reshape(shape)
            if base.dtype == np.float32:
                value = (base.astype(np.float64) + d.astype(np.float32).astype(np.float64)).astype(np.float32)
            else:
                value = (base + d).astype(base.dtype)
            new[name] = Array(value)
        metrics = self.train_metrics_aggr_fn(accepted, self.weighted_by_key)
        return self._uplink_finish(rnd, ArrayRecord(new), metrics)

    def _add_dense(self, content: RecordDict, total: np.ndarray, weight: float,
                   offsets: Mapping[str, tuple[int, tuple[int, ...]]]) -> None:
        """Adds ``weight · (weights − global)`` of a reply that carries plain arrays."""
        records = content.array_records
        if len(records) != 1:
            raise ValueError(f"expected one ArrayRecord, found {len(records)}")
        record = next(iter(records.values()))
        if set(record.keys()) != set(offsets):
            raise ValueError("the reply is neither a frame nor the global model's arrays")
        parts = {}
        for name, array in record.items():
            value = array.numpy()
            start, shape = offsets[name]
            if value.shape != shape or not np.issubdtype(value.dtype, np.floating):
                raise ValueError(f"array {name!r} does not match the global model")
            parts[name] = (start, value.astype(np.float64) - self._uplink_global[name].astype(np.float64))
        for start, diff in parts.values():
            total[start:start + diff.size] += weight * diff.ravel()


S = TypeVar("S", bound=Strategy)


def uplink_strategy(cls: type[S]) -> type[S]:
    """A subclass of the message-API strategy ``cls`` that accepts Uplink frames:
    :class:`UplinkFedAvg` for ``FedAvg`` itself, else ``cls`` with the :class:`UplinkStrategy`
    mixin (each frame decoded to dense client weights, then ``cls`` aggregates). Example:
    ``uplink_strategy(FedAdam)(eta=0.01, save_frames="frames")``."""
    if cls is FedAvg:
        return cast(type[S], UplinkFedAvg)
    return cast(type[S], type(f"Uplink{cls.__name__}", (UplinkStrategy, cls), {
        "__doc__": f"{cls.__name__} accepting Uplink frames (see uplink_fl.flwr.UplinkStrategy).",
        "__module__": __name__}))
