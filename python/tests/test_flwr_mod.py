"""uplink_fl.flwr.UplinkMod with Flower's own Message, Context and ClientApp objects."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

import uplink_fl  # noqa: E402
from uplink_fl.flwr import FRAME_KEY, FRAME_STYPE, UplinkMod, frame_of  # noqa: E402

GLOBAL = {  # deliberately not in name order: frames sort by name, records keep their order
    "w": np.arange(12, dtype=np.float32).reshape(3, 4) / 10,
    "b": np.array([0.5, -0.5, 0.25], dtype=np.float32),
}
STEP = {
    "w": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
    "b": np.array([3.0, -0.125, 0.0], dtype=np.float32),
}


@pytest.fixture(autouse=True)
def server_identity():
    """flwr 1.42 stamps new instruction messages with the identity of the process's task (the
    ServerApp's in a deployment); a test process has to set one."""
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


def train_message(arrays: dict[str, np.ndarray], server_round: int = 1, node: int = 7,
                  message_type: str = MessageType.TRAIN) -> Message:
    content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                          "config": ConfigRecord({"server-round": server_round})})
    return Message(content=content, dst_node_id=node, message_type=message_type)


def context(node: int = 7) -> Context:
    return Context(run_id=1, node_id=node, node_config={}, state=RecordDict(), run_config={})


def client_app(mod: UplinkMod, step: dict[str, np.ndarray] = STEP, samples: int = 40) -> ClientApp:
    """A ClientApp whose training adds ``step`` to the received arrays."""
    app = ClientApp()

    @app.train(mods=[mod])
    def train(msg: Message, ctx: Context) -> Message:
        arrays = {k: a.numpy() + step[k] for k, a in msg.content["arrays"].items()}
        return Message(RecordDict({
            "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
            "metrics": MetricRecord({"num-examples": samples, "train-loss": 0.5}),
        }), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, ctx: Context) -> Message:
        return Message(RecordDict({"metrics": MetricRecord({"num-examples": samples})}), reply_to=msg)

    return app


def expected_update(step: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: ((GLOBAL[k].astype(np.float64) + step[k]).astype(np.float32).astype(np.float64)
                - GLOBAL[k]).astype(np.float32) for k in GLOBAL}


def test_reply_is_one_frame_of_the_update() -> None:
    app = client_app(UplinkMod("fp32"))
    reply = app(train_message(GLOBAL, server_round=3), context())
    assert not reply.has_error()
    record = reply.content["arrays"]
    assert list(record.keys()) == [FRAME_KEY]
    array = record[FRAME_KEY]
    assert (array.dtype, array.stype, array.shape) == ("uint8", FRAME_STYPE, (len(array.data),))
    key, frame = frame_of(reply.content)
    assert key == "arrays"
    info = uplink_fl.inspect(frame)
    assert (info["round"], info["samples"], info["parameters"]) == (3, 40, 15)
    assert [t["name"] for t in info["tensors"]] == ["b", "w"]  # layout order: sorted by name
    decoded = uplink_fl.decode(frame)
    for k, v in expected_update(STEP).items():
        np.testing.assert_array_equal(decoded[k].reshape(v.shape), v)
    # the metrics the ClientApp reported travel unchanged
    assert reply.content["metrics"]["train-loss"] == 0.5


def test_compressed_frame_is_smaller_than_float32() -> None:
    big = {"w": np.zeros((100, 100), np.float32)}
    step = {"w": np.random.default_rng(1).standard_normal((100, 100)).astype(np.float32)}
    reply = client_app(UplinkMod("topk 1% | int8 | lz4"), step)(train_message(big), context())
    _, frame = frame_of(reply.content)
    assert len(frame) < 4 * 10_000 / 10


def test_error_feedback_residual_is_kept_per_client_in_state_dir(tmp_path) -> None:
    mod = UplinkMod("ef | topk 1 | fp32", state_dir=tmp_path)
    step = {"w": np.zeros((3, 4), np.float32), "b": np.array([3.0, -2.0, 1.0], np.float32)}
    first = client_app(mod, step)(train_message(GLOBAL, 1, node=7), context(7))
    np.testing.assert_array_equal(uplink_fl.decode(frame_of(first.content)[1])["b"], [3.0, 0, 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node-7.upls"]  # no temporary left
    state = (tmp_path / "node-7.upls").read_bytes()
    assert state[:4] == b"UPLS"
    # Next round with no change at all: what is sent is the residual's largest entry.
    zero = {k: np.zeros_like(v) for k, v in step.items()}
    second = client_app(mod, zero)(train_message(GLOBAL, 2, node=7), context(7))
    np.testing.assert_array_equal(uplink_fl.decode(frame_of(second.content)[1])["b"], [0, -2.0, 0])
    assert (tmp_path / "node-7.upls").read_bytes() != state
    # Another node starts from zero and gets its own file.
    other = client_app(mod, zero)(train_message(GLOBAL, 2, node=8), context(8))
    assert not np.any(uplink_fl.decode(frame_of(other.content)[1])["b"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node-7.upls", "node-8.upls"]


def test_without_state_dir_the_residual_lives_in_context_state() -> None:
    mod = UplinkMod("ef | topk 1 | fp32")
    ctx = context()
    step = {"w": np.zeros((3, 4), np.float32), "b": np.array([3.0, -2.0, 1.0], np.float32)}
    client_app(mod, step)(train_message(GLOBAL, 1), ctx)
    assert ctx.state["uplink"]["state"][:4] == b"UPLS"
    zero = {k: np.zeros_like(v) for k, v in step.items()}
    second = client_app(mod, zero)(train_message(GLOBAL, 2), ctx)
    np.testing.assert_array_equal(uplink_fl.decode(frame_of(second.content)[1])["b"], [0, -2.0, 0])


def test_state_for_another_model_is_replaced(tmp_path) -> None:
    mod = UplinkMod("ef | topk 1 | fp32", state_dir=tmp_path)
    other_model = {"x": np.zeros(5, np.float32)}
    client_app(mod, {"x": np.ones(5, np.float32)})(train_message(other_model), context())
    reply = client_app(mod)(train_message(GLOBAL), context())
    assert not reply.has_error()
    assert uplink_fl.Encoder("ef | topk 1 | fp32", state=(tmp_path / "node-7.upls").read_bytes())


def test_pipeline_and_state_dir_may_come_from_the_context(tmp_path) -> None:
    mod = UplinkMod(pipeline=lambda c: str(c.run_config["pipeline"]),
                    state_dir=lambda c: str(c.run_config["state-dir"]))
    ctx = Context(run_id=1, node_id=3, node_config={}, state=RecordDict(),
                  run_config={"pipeline": "ef | fp16", "state-dir": str(tmp_path)})
    reply = client_app(mod)(train_message(GLOBAL), ctx)
    assert uplink_fl.inspect(frame_of(reply.content)[1])["pipeline"].startswith("ef")
    assert (tmp_path / "node-3.upls").exists()


def test_non_train_messages_pass_through() -> None:
    msg = train_message(GLOBAL, message_type=MessageType.EVALUATE)
    reply = client_app(UplinkMod("fp32"))(msg, context())
    assert not reply.has_error() and frame_of(reply.content) is None


def test_reply_with_other_keys_is_an_error_reply() -> None:
    app = ClientApp()

    @app.train(mods=[UplinkMod("fp32")])
    def train(msg: Message, ctx: Context) -> Message:
        return Message(RecordDict({"arrays": ArrayRecord({"other": Array(np.zeros(3, np.float32))}),
                                   "metrics": MetricRecord({"num-examples": 1})}), reply_to=msg)

    reply = app(train_message(GLOBAL), context())
    assert reply.has_error() and "keys" in reply.error.reason


def test_nan_update_is_an_error_reply_and_keeps_the_residual(tmp_path) -> None:
    mod = UplinkMod("ef | topk 1 | fp32", state_dir=tmp_path)
    client_app(mod)(train_message(GLOBAL, 1), context())
    state = (tmp_path / "node-7.upls").read_bytes()
    bad = {"w": np.full((3, 4), np.nan, np.float32), "b": np.zeros(3, np.float32)}
    reply = client_app(mod, bad)(train_message(GLOBAL, 2), context())
    assert reply.has_error() and "[704]" in reply.error.reason
    assert (tmp_path / "node-7.upls").read_bytes() == state
