"""uplink_fl.flwr strategies (UplinkFedAvg, uplink_strategy) with Flower's own objects: real
ClientApps with UplinkMod behind a Grid that delivers messages in process."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid  # noqa: E402
from flwr.serverapp.strategy import FedAvg, FedMedian  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from uplink_fl.flwr import (  # noqa: E402
    FRAME_KEY,
    UplinkFedAvg,
    UplinkMod,
    uplink_strategy,
)

GLOBAL = {  # record order differs from the frame's (sorted) order on purpose
    "z.w": np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5),
    "a.b": np.array([0.1, 0.2, 0.3], dtype=np.float32),
}
SAMPLES = {11: 30, 12: 10, 13: 25}


def step(node: int, server_round: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(100 * node + server_round)
    return {k: rng.standard_normal(v.shape).astype(np.float32) / 7 for k, v in GLOBAL.items()}


def make_client(pipeline: str = "fp32") -> ClientApp:
    """A ClientApp that adds step(node, round) to the received model, behind UplinkMod."""
    app = ClientApp()

    @app.train(mods=[UplinkMod(pipeline)])
    def train(msg: Message, ctx: Context) -> Message:
        r = int(msg.content["config"]["server-round"])
        s = step(ctx.node_id, r)
        arrays = {k: Array(a.numpy() + s[k]) for k, a in msg.content["arrays"].items()}
        return Message(RecordDict({
            "arrays": ArrayRecord(arrays),
            "metrics": MetricRecord({"num-examples": SAMPLES[ctx.node_id], "loss": float(ctx.node_id)}),
        }), reply_to=msg)

    return app


class LocalGrid(Grid):
    """Delivers each message to an in-process ClientApp (one Context per node, kept across
    rounds) and returns the replies; ``tamper`` may change a reply on its way back."""

    def __init__(self, app: ClientApp, nodes: Iterable[int], tamper=None) -> None:
        self.app = app
        self.contexts = {n: Context(run_id=1, node_id=n, node_config={}, state=RecordDict(),
                                    run_config={}) for n in nodes}
        self.tamper = tamper

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None
                         ) -> Iterable[Message]:
        replies = []
        for msg in messages:
            # what the wire does: every node gets its own copy of the content
            msg = Message(copy.deepcopy(msg.content), dst_node_id=msg.metadata.dst_node_id,
                          message_type=msg.metadata.message_type)
            reply = self.app(msg, self.contexts[msg.metadata.dst_node_id])
            if self.tamper:
                reply = self.tamper(reply)
            replies.append(reply)
        return replies

    def set_run(self, run_id):  # pragma: no cover - not used in process
        raise NotImplementedError

    @property
    def run(self):  # pragma: no cover
        raise NotImplementedError

    def create_message(self, *args, **kwargs):  # pragma: no cover
        raise NotImplementedError

    def push_messages(self, messages):  # pragma: no cover
        raise NotImplementedError

    def pull_messages(self, message_ids):  # pragma: no cover
        raise NotImplementedError


@pytest.fixture(autouse=True)
def server_identity():
    """flwr 1.42 stamps new instruction messages with the identity of the process's task."""
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


def record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(v) for k, v in arrays.items()})


def run_round(strategy, grid: LocalGrid, server_round: int = 1, model=GLOBAL):
    messages = strategy.configure_train(server_round, record(model), ConfigRecord(), grid)
    return strategy.aggregate_train(server_round, grid.send_and_receive(messages))


def fedavg_expected(model, nodes, server_round=1):
    """Σ nᵢΔᵢ / Σ nᵢ in float64, rounded to float32, added in float64, rounded: as Swift."""
    total = sum(SAMPLES[n] for n in nodes)
    out = {}
    for k, g in model.items():
        s = sum(SAMPLES[n] * (((g.astype(np.float64) + step(n, server_round)[k]).astype(np.float32)
                               .astype(np.float64) - g).astype(np.float32).astype(np.float64))
                for n in nodes)
        out[k] = (g.astype(np.float64) + (s / total).astype(np.float32).astype(np.float64)).astype(np.float32)
    return out


def flip_last_byte_of(node: int):
    def tamper(reply: Message) -> Message:
        if reply.metadata.src_node_id == node and not reply.has_error():
            a = reply.content["arrays"][FRAME_KEY]
            a.data = a.data[:-1] + bytes([a.data[-1] ^ 0xFF])
        return reply
    return tamper


def test_fedavg_streams_frames_into_the_weighted_mean() -> None:
    strategy = UplinkFedAvg(min_available_nodes=3, min_train_nodes=3)
    arrays, metrics = run_round(strategy, LocalGrid(make_client(), SAMPLES))
    assert list(arrays.keys()) == list(GLOBAL)  # the global model's key order, not the frame's
    for k, v in fedavg_expected(GLOBAL, SAMPLES).items():
        got = arrays[k].numpy()
        assert got.dtype == np.float32 and got.shape == v.shape
        np.testing.assert_array_equal(got, v)
    assert metrics["uplink-frames"] == 3 and metrics["uplink-accepted"] == 3
    assert metrics["uplink-refused"] == 0 and "uplink-refused-codes" not in metrics
    assert metrics["uplink-float32-bytes"] == 3 * 4 * 23
    assert metrics["uplink-ratio"] == pytest.approx(metrics["uplink-float32-bytes"] / metrics["uplink-bytes"])
    assert metrics["loss"] == pytest.approx((11 * 30 + 12 * 10 + 13 * 25) / 65)  # FedAvg's own metrics
    assert strategy.uplink_rounds[1]["bytes"] == metrics["uplink-bytes"]


def test_damaged_frame_is_refused_with_its_code_and_the_round_completes() -> None:
    strategy = UplinkFedAvg(min_available_nodes=3, min_train_nodes=3)
    arrays, metrics = run_round(strategy, LocalGrid(make_client(), SAMPLES, flip_last_byte_of(12)))
    for k, v in fedavg_expected(GLOBAL, [11, 13]).items():
        np.testing.assert_array_equal(arrays[k].numpy(), v)
    assert metrics["uplink-refused"] == 1 and metrics["uplink-refused-codes"] == [201]
    assert metrics["uplink-frames"] == 3 and metrics["uplink-accepted"] == 2
    refused = strategy.uplink_rounds[1]["refused"]
    assert [(r["node"], r["code"]) for r in refused] == [(12, 201)]


def test_frame_of_another_round_is_refused_901() -> None:
    strategy = UplinkFedAvg(min_available_nodes=3, min_train_nodes=3)
    grid = LocalGrid(make_client(), SAMPLES)
    messages = list(strategy.configure_train(2, record(GLOBAL), ConfigRecord(), grid))
    first = messages[0]  # FedAvg gives every message the same content: copy before changing it
    messages[0] = Message(copy.deepcopy(first.content), dst_node_id=first.metadata.dst_node_id,
                          message_type=first.metadata.message_type)
    messages[0].content["config"]["server-round"] = 1  # that client is told another round
    arrays, metrics = strategy.aggregate_train(2, grid.send_and_receive(messages))
    assert metrics["uplink-refused-codes"] == [901] and arrays is not None


def test_all_refused_leaves_the_model_and_still_reports() -> None:
    strategy = UplinkFedAvg(min_available_nodes=1, min_train_nodes=1)
    arrays, metrics = run_round(strategy, LocalGrid(make_client(), [11], flip_last_byte_of(11)))
    assert arrays is None and metrics["uplink-refused-codes"] == [201]


def test_plain_replies_are_averaged_with_the_frames() -> None:
    strategy = UplinkFedAvg(min_available_nodes=3, min_train_nodes=3)
    grid = LocalGrid(make_client(), SAMPLES)
    messages = list(strategy.configure_train(1, record(GLOBAL), ConfigRecord(), grid))
    replies = list(grid.send_and_receive(messages))
    # node 13 answers as a client without the mod would: dense trained weights
    i = next(i for i, m in enumerate(replies) if m.metadata.src_node_id == 13)
    dense = {k: (GLOBAL[k].astype(np.float64) + step(13, 1)[k]).astype(np.float32) for k in GLOBAL}
    replies[i].content["arrays"] = record(dense)
    arrays, metrics = strategy.aggregate_train(1, replies)
    for k, v in fedavg_expected(GLOBAL, SAMPLES).items():
        np.testing.assert_allclose(arrays[k].numpy(), v, rtol=1e-6, atol=1e-7)
    assert metrics["uplink-frames"] == 2 and metrics["uplink-accepted"] == 3


def test_start_runs_rounds_end_to_end_in_process(tmp_path) -> None:
    strategy = UplinkFedAvg(min_available_nodes=3, min_train_nodes=3, fraction_evaluate=0.0,
                            save_frames=tmp_path)
    grid = LocalGrid(make_client("ef | topk 25% | int8 | lz4"), SAMPLES)
    result = strategy.start(grid, record(GLOBAL), num_rounds=2)
    assert sorted(strategy.uplink_rounds) == [1, 2]
    for r in (1, 2):
        assert result.train_metrics_clientapp[r]["uplink-accepted"] == 3
        d = tmp_path / f"round-{r}"
        assert sorted(p.name for p in d.iterdir()) == [
            "global.safetensors", "node-11.upl", "node-12.upl", "node-13.upl", "result.safetensors",
            "summary.json"]
        assert json.loads((d / "summary.json").read_text())["accepted"] == 3
    assert list(result.arrays.keys()) == list(GLOBAL)


def test_saved_round_replays_with_swift_uplink_aggregate(tmp_path, uplink) -> None:
    """The saved round (model, frames) through Swift's `uplink aggregate` gives the model the
    strategy produced, and Swift refuses the damaged frame with the same code."""
    from uplink_decode import read_safetensors  # the independent reader (conftest's path)

    strategy = UplinkFedAvg(min_available_nodes=3, min_train_nodes=3, save_frames=tmp_path)
    run_round(strategy, LocalGrid(make_client("ef | topk 30% | int8 | lz4"), SAMPLES, flip_last_byte_of(11)))
    d = tmp_path / "round-1"
    out = tmp_path / "swift.safetensors"
    summary = json.loads(uplink("aggregate", "--strategy", "fedavg", "--round", "1", "--json",
                                "--model", str(d / "global.safetensors"), "--out", str(out),
                                *sorted(str(p) for p in d.glob("*.upl"))).stdout)
    assert [(Path(r["file"]).stem, r["code"]) for r in summary["rejected"]] == [("node-11", 201)]
    swift, ours = read_safetensors(str(out)), read_safetensors(str(d / "result.safetensors"))
    assert swift.keys() == ours.keys()
    for k in swift:  # within one float32 ulp (bit patterns of same-sign values)
        diff = np.abs(swift[k].view(np.int32).astype(np.int64) - ours[k].view(np.int32).astype(np.int64))
        assert diff.max() <= 1, k


def test_uplink_strategy_wraps_other_strategies() -> None:
    assert uplink_strategy(FedAvg) is UplinkFedAvg
    Median = uplink_strategy(FedMedian)
    assert issubclass(Median, FedMedian) and Median.__name__ == "UplinkFedMedian"
    strategy = Median(min_available_nodes=3, min_train_nodes=3)
    arrays, metrics = run_round(strategy, LocalGrid(make_client(), SAMPLES, flip_last_byte_of(13)))
    assert metrics["uplink-refused-codes"] == [201] and metrics["uplink-accepted"] == 2
    clients = [{k: (GLOBAL[k].astype(np.float64) + step(n, 1)[k]).astype(np.float32) for k in GLOBAL}
               for n in (11, 12)]
    for k in GLOBAL:
        np.testing.assert_allclose(arrays[k].numpy(), np.median([c[k] for c in clients], axis=0), rtol=1e-6)
