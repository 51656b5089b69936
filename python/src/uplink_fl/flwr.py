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
from flwr.common import FitIns, FitRes, Parameters, Scalar, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy as LegacyStrategy
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Strategy

import uplink_fl
from ._io import write_atomic
from ._tensorfiles import write_safetensors as _st_bytes

__all__ = [
    "FRAME_KEY",
    "FRAME_STYPE",
    "METRIC_PREFIX",
    "UplinkFedAvg",
    "UplinkLegacyStrategy",
    "UplinkMod",
    "UplinkStrategy",
    "frame_array",
    "frame_of",
    "uplink_legacy_strategy",
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


_atomic_write = write_atomic


def write_safetensors(path: PathLike, arrays: ArrayRecord | Mapping[str, np.ndarray]) -> None:
    """Writes a model (an ArrayRecord or arrays by name) atomically as a float32
    ``.safetensors`` file, the form ``uplink aggregate --model`` and ``uplink encode --in``
    read; its layout (tensors sorted by name) is the one frames of that model carry."""
    tensors = {k: v.numpy() if isinstance(v, Array) else np.asarray(v) for k, v in arrays.items()}
    _atomic_write(Path(path), _safetensors_bytes(tensors))


def _safetensors_bytes(tensors: Mapping[str, np.ndarray]) -> bytes:
    """A float32 ``.safetensors`` file of ``tensors`` in layout order (names sorted by their
    UTF-8 bytes): what ``uplink aggregate --model`` reads."""
    return _st_bytes({n: tensors[n] for n in sorted(tensors, key=lambda s: s.encode("utf-8"))})


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
        if server_round == 0 and msg.metadata.group_id.isdigit():
            server_round = int(msg.metadata.group_id)  # the legacy ServerApp's round

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
        samples = max(0, round(weight)) if weight is not None and math.isfinite(weight) else 1
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


def _code(e: Exception) -> int | None:
    code = getattr(e, "code", None)
    return int(code) if isinstance(code, int) else None


def _message(e: Exception) -> str:
    return str(getattr(e, "message", None) or e)


def _plus_update(base: np.ndarray, update: np.ndarray) -> np.ndarray:
    """``base + update`` in float64, returned in the dtype of ``base``."""
    return (base.astype(np.float64) + np.asarray(update, np.float64).reshape(base.shape)).astype(base.dtype)


class _Round:
    """One server round: the global model it started from (and its frame layout), what it
    received (byte counts, refusals), and, with ``save_frames``, its files."""

    def __init__(self, server_round: int, global_arrays: dict[str, np.ndarray],
                 save_frames: Path | None, check_round: bool) -> None:
        self.round = server_round
        self.global_arrays = global_arrays
        self.layout = uplink_fl.layout_of(global_arrays)
        self.offsets: dict[str, tuple[int, tuple[int, ...]]] = {}
        self.n = 0
        for name, shape in self.layout:
            self.offsets[name] = (self.n, tuple(shape))
            self.n += math.prod(shape)
        self.check_round = check_round
        self.save_dir = save_frames / f"round-{server_round}" if save_frames else None
        if self.save_dir is not None:
            write_safetensors(self.save_dir / "global.safetensors", global_arrays)
        self.frames = 0  # frames received, accepted or not
        self.accepted = 0
        self.bytes = 0
        self.refused: list[dict[str, Any]] = []

    def receive(self, node: int, frame: bytes) -> None:
        """Counts (and saves) a frame, then raises UplinkError 901 for a valid frame of another
        round. Only the header's round field is read here (the frame is checked in full when it
        is decoded); a frame whose round differs is checked in full first, so that a damaged
        one gets its own code, as ``uplink aggregate`` reports it."""
        self.frames += 1
        self.bytes += len(frame)
        if self.save_dir is not None:
            _atomic_write(self.save_dir / f"node-{node}.upl", frame)
        if self.check_round and len(frame) >= _ROUND_AT + 8:
            (frame_round,) = struct.unpack_from("<Q", frame, _ROUND_AT)
            if frame_round != self.round:
                uplink_fl.inspect(frame)  # raises for a damaged frame
                raise uplink_fl.UplinkError(
                    ROUND_MISMATCH, f"frame of round {frame_round}, the server's round is {self.round}")

    def refuse(self, node: int, code: int | None, message: str) -> None:
        self.refused.append({"node": node, "code": code, "message": message})
        _log.warning("round %d: refused the reply of node %d: [%s] %s", self.round, node,
                     code if code is not None else "-", message)

    def dense(self, frame: bytes) -> dict[str, np.ndarray]:
        """A client's weights, global + the frame's update, in the global model's key order."""
        update = uplink_fl.decode(frame, layout=self.layout)
        return {name: _plus_update(base, update[name]) for name, base in self.global_arrays.items()}

    def metrics(self) -> dict[str, int | float | list[int]]:
        """The ``uplink-*`` metrics of the round."""
        m: dict[str, int | float | list[int]] = {
            "uplink-frames": self.frames, "uplink-accepted": self.accepted,
            "uplink-bytes": self.bytes, "uplink-float32-bytes": 4 * self.n * self.frames,
            "uplink-ratio": 4 * self.n * self.frames / self.bytes if self.bytes else 0.0,
            "uplink-refused": len(self.refused)}
        if self.refused:
            m["uplink-refused-codes"] = [r["code"] or 0 for r in self.refused]
        return m

    def finish(self, result: Mapping[str, Any] | None) -> dict[str, Any]:
        """Logs the round, saves its result and summary (with ``save_frames``), returns the
        summary."""
        m = self.metrics()
        summary = {"round": self.round, "frames": self.frames, "accepted": self.accepted,
                   "bytes": self.bytes, "float32_bytes": m["uplink-float32-bytes"],
                   "ratio": m["uplink-ratio"], "refused": self.refused}
        _log.info("round %d: %d frames, %d bytes received, float32 %d bytes (%.1fx), %d refused",
                  self.round, self.frames, self.bytes, summary["float32_bytes"], summary["ratio"],
                  len(self.refused))
        if self.save_dir is not None:
            if result is not None:
                write_safetensors(self.save_dir / "result.safetensors", result)
            _atomic_write(self.save_dir / "summary.json", json.dumps(summary, indent=1).encode())
        return summary


class _UplinkServer:
    """What the message-API and legacy mixins share: their options and per-round summaries."""

    def __init__(self, *args: Any, save_frames: PathLike | None = None, check_round: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.save_frames = Path(save_frames) if save_frames else None
        self.check_round = check_round
        self.uplink_rounds: dict[int, dict[str, Any]] = {}
        self._uplink_global: dict[str, np.ndarray] = {}

    def _uplink_round(self, server_round: int) -> _Round:
        return _Round(server_round, self._uplink_global, self.save_frames, self.check_round)


def _valid(replies: Iterable[Message]) -> list[Message]:
    """Replies without an error (errors are logged, as FedAvg does)."""
    valid = []
    for msg in replies:
        if msg.has_error():
            _log.info("reply from node %d is an error: %s", msg.metadata.src_node_id, msg.error.reason)
        else:
            valid.append(msg)
    return valid


class UplinkStrategy(_UplinkServer):
    """Mixin that makes a message-API strategy accept Uplink frames (put it first in the bases:
    ``class MyFedAdam(UplinkStrategy, FedAdam)``, or use :func:`uplink_strategy`).

    ``configure_train`` remembers the global arrays it sends; ``aggregate_train`` turns each
    reply's frame into that client's weights (global + decoded update, dense), drops replies
    whose frame is refused (logged with its :class:`uplink_fl.UplinkError` code; a frame for
    another round is 901), then lets the wrapped strategy aggregate the rest as usual and adds
    the ``uplink-*`` metrics. Replies without a frame are passed through untouched.

    Extra keyword arguments: ``save_frames`` (a directory: every frame received is written to
    ``round-<R>/node-<id>.upl`` beside ``global.safetensors``, the model the round started
    from, ``result.safetensors``, the model it produced, and ``summary.json``, so that ``uplink
    aggregate --strategy fedavg --model round-R/global.safetensors round-R/*.upl`` replays the
    round) and ``check_round`` (default True). ``uplink_rounds`` maps each round to its summary
    (frames, accepted, bytes, float32 bytes, ratio, refusals).
    """

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """Remember the global arrays of this round, then configure as the wrapped strategy."""
        self._uplink_global = {k: a.numpy() for k, a in arrays.items()}
        return cast(Any, super()).configure_train(server_round, arrays, config, grid)

    def _uplink_done(self, rnd: _Round, arrays: ArrayRecord | None, metrics: MetricRecord | None
                     ) -> tuple[ArrayRecord | None, MetricRecord]:
        metrics = metrics if metrics is not None else MetricRecord()
        for k, v in rnd.metrics().items():
            metrics[k] = v
        self.uplink_rounds[rnd.round] = rnd.finish(arrays)
        return arrays, metrics

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Decode every frame into dense client weights, then aggregate as the wrapped
        strategy does."""
        rnd = self._uplink_round(server_round)
        kept: list[Message] = []
        for msg in _valid(replies):
            found = frame_of(msg.content)
            if found is None:
                kept.append(msg)
                continue
            node = msg.metadata.src_node_id
            try:
                rnd.receive(node, found[1])
                dense = rnd.dense(found[1])
            except uplink_fl.UplinkError as e:
                rnd.refuse(node, _code(e), _message(e))
                continue
            msg.content[found[0]] = ArrayRecord({k: Array(v) for k, v in dense.items()})
            rnd.accepted += 1
            kept.append(msg)
        arrays, metrics = cast(Any, super()).aggregate_train(server_round, kept) if kept else (None, None)
        return self._uplink_done(rnd, arrays, metrics)


class UplinkFedAvg(UplinkStrategy, FedAvg):
    """FedAvg over Uplink frames, streaming: each frame is decoded straight into one float64
    running sum (``uplink_fl.accumulate(frame, into=sum, weight=num_examples)``), so the
    server holds one dense array however many clients report. The new model is
    ``global + Σ wᵢΔᵢ / Σ wᵢ``, with the mean update rounded to float32 before it is added to
    a float32 model, as ``uplink aggregate --strategy fedavg`` computes it. Takes FedAvg's
    arguments plus ``save_frames`` and ``check_round`` (see :class:`UplinkStrategy`). A reply
    that is not a frame is taken as dense weights (a client without the mod).
    """

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Sum the decoded updates of the accepted frames, weighted by ``num-examples``."""
        rnd = self._uplink_round(server_round)
        total = np.zeros(rnd.n, dtype=np.float64)
        weight_sum = 0.0
        accepted: list[RecordDict] = []
        for msg in _valid(replies):
            node = msg.metadata.src_node_id
            weight = _weight(msg.content, self.weighted_by_key)
            found = frame_of(msg.content)
            try:
                if found is not None:
                    rnd.receive(node, found[1])
                if weight is None or not math.isfinite(weight) or weight < 0:
                    raise ValueError(f"no usable {self.weighted_by_key!r} in the reply's MetricRecord")
                if found is not None:
                    uplink_fl.accumulate(found[1], into=total, weight=weight, layout=rnd.layout)
                else:
                    _add_dense(rnd, msg.content, total, weight)
            except (uplink_fl.UplinkError, ValueError) as e:
                rnd.refuse(node, _code(e), _message(e))
                continue
            weight_sum += weight
            rnd.accepted += 1
            accepted.append(msg.content)
        if not accepted or weight_sum <= 0:
            if accepted:
                _log.warning("round %d: the accepted replies weigh 0 in total; model unchanged", server_round)
            return self._uplink_done(rnd, None, None)
        delta = total / weight_sum
        new: dict[str, Array] = {}
        for name, base in rnd.global_arrays.items():  # the global model's own key order
            start, shape = rnd.offsets[name]
            d = delta[start:start + math.prod(shape)].reshape(shape)
            if base.dtype == np.float32:  # Swift: Float(Double(x) + Double(Float(sum / W)))
                d = d.astype(np.float32)
            new[name] = Array(_plus_update(base, d))
        metrics = self.train_metrics_aggr_fn(accepted, self.weighted_by_key)
        return self._uplink_done(rnd, ArrayRecord(new), metrics)


def _add_dense(rnd: _Round, content: RecordDict, total: np.ndarray, weight: float) -> None:
    """Adds ``weight · (weights − global)`` of a reply that carries plain arrays."""
    records = content.array_records
    if len(records) != 1:
        raise ValueError(f"expected one ArrayRecord, found {len(records)}")
    record = next(iter(records.values()))
    if set(record.keys()) != set(rnd.offsets):
        raise ValueError("the reply is neither a frame nor the global model's arrays")
    parts = []
    for name, array in record.items():
        value = array.numpy()
        start, shape = rnd.offsets[name]
        if value.shape != shape or not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"array {name!r} does not match the global model")
        parts.append((start, value.astype(np.float64) - rnd.global_arrays[name].astype(np.float64)))
    for start, diff in parts:  # all checked first: a bad reply adds nothing
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


# --------------------------------------------------------------------------------------------
# Legacy strategies (flwr.server.strategy, FitRes.parameters)


class UplinkLegacyStrategy(_UplinkServer):
    """Mixin for a legacy strategy (``flwr.server.strategy``, run by a ``ServerApp(server_fn=
    ...)``): a client with :class:`UplinkMod` sends ``FitRes.parameters`` as one tensor, the
    frame, with ``tensor_type == FRAME_STYPE`` (its tensors named ``"0"``, ``"1"``, ... as the
    compat layer names them). ``aggregate_fit`` turns each frame into that client's weights
    (global + update, dense), adds a refused frame to ``failures`` (as the
    :class:`uplink_fl.UplinkError`, logged with its code), lets the wrapped strategy aggregate,
    and adds the ``uplink-*`` metrics (refused codes as a comma-separated string, legacy
    metrics being scalars). Takes ``save_frames`` and ``check_round`` as :class:`UplinkStrategy`.
    """

    def configure_fit(self, server_round: int, parameters: Parameters, client_manager: ClientManager
                      ) -> list[tuple[ClientProxy, FitIns]]:
        """Remember the global parameters of this round, then configure as the wrapped strategy."""
        self._uplink_global = {str(i): a for i, a in enumerate(parameters_to_ndarrays(parameters))}
        return cast(Any, super()).configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                      failures: list[tuple[ClientProxy, FitRes] | BaseException]
                      ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Decode the frames into dense weights, then aggregate as the wrapped strategy does."""
        rnd = self._uplink_round(server_round)
        kept: list[tuple[ClientProxy, FitRes]] = []
        failures = list(failures)
        for proxy, res in results:
            p = res.parameters
            if p.tensor_type != FRAME_STYPE or len(p.tensors) != 1:
                kept.append((proxy, res))
                continue
            node = int(getattr(proxy, "node_id", 0) or 0)
            try:
                rnd.receive(node, p.tensors[0])
                dense = rnd.dense(p.tensors[0])
            except uplink_fl.UplinkError as e:
                rnd.refuse(node, _code(e), _message(e))
                failures.append(e)
                continue
            res.parameters = ndarrays_to_parameters(list(dense.values()))
            rnd.accepted += 1
            kept.append((proxy, res))
        parameters, metrics = (cast(Any, super()).aggregate_fit(server_round, kept, failures)
                               if kept else (None, {}))
        metrics = dict(metrics)
        for k, v in rnd.metrics().items():
            metrics[k] = ",".join(map(str, v)) if isinstance(v, list) else v
        result = None if parameters is None else {
            str(i): a for i, a in enumerate(parameters_to_ndarrays(parameters))}
        self.uplink_rounds[server_round] = rnd.finish(result)
        return parameters, metrics


L = TypeVar("L", bound=LegacyStrategy)


def uplink_legacy_strategy(cls: type[L]) -> type[L]:
    """A subclass of the legacy strategy ``cls`` (e.g. ``flwr.server.strategy.FedAvg``) with
    the :class:`UplinkLegacyStrategy` mixin."""
    return cast(type[L], type(f"UplinkLegacy{cls.__name__}", (UplinkLegacyStrategy, cls), {
        "__doc__": f"Legacy {cls.__name__} accepting Uplink frames (see uplink_fl.flwr.UplinkLegacyStrategy).",
        "__module__": __name__}))
