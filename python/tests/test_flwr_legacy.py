"""The legacy Parameters path: a NumPyClient behind UplinkMod, and a legacy
flwr.server.strategy wrapped by uplink_legacy_strategy, with ClientProxies that deliver
FitIns in process through Flower's own compat conversions."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Context, Message, MessageType, RecordDict  # noqa: E402
from flwr.client import ClientApp, NumPyClient  # noqa: E402
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays  # noqa: E402
from flwr.compat.common.recorddict_compat import fitins_to_recorddict, recorddict_to_fitres  # noqa: E402
from flwr.server import SimpleClientManager  # noqa: E402
from flwr.server.client_proxy import ClientProxy  # noqa: E402
from flwr.server.strategy import FedAvg, FedMedian  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from uplink_fl.flwr import FRAME_STYPE, UplinkMod, uplink_legacy_strategy  # noqa: E402

GLOBAL = [np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), np.arange(11, dtype=np.float32)]
SAMPLES = {21: 30, 22: 10}


def step(node: int) -> list[np.ndarray]:
    rng = np.random.default_rng(node)
    return [rng.standard_normal(a.shape).astype(np.float32) / 5 for a in GLOBAL]


class Client(NumPyClient):
    def __init__(self, node: int) -> None:
        self.node = node

    def fit(self, parameters, config):
        return [p + s for p, s in zip(parameters, step(self.node))], SAMPLES[self.node], {"loss": 1.0}


def client_app(pipeline: str = "fp32") -> ClientApp:
    return ClientApp(client_fn=lambda context: Client(context.node_id).to_client(),
                     mods=[UplinkMod(pipeline)])


class LocalProxy(ClientProxy):
    """Runs a ClientApp in process for fit, converting as Flower's grid proxy does."""

    def __init__(self, node: int, app: ClientApp, damage: bool = False) -> None:
        super().__init__(str(node))
        self.node_id = node
        self.app = app
        self.damage = damage
        self.context = Context(run_id=1, node_id=node, node_config={}, state=RecordDict(), run_config={})

    def fit(self, ins, timeout, group_id):
        msg = Message(fitins_to_recorddict(ins, keep_input=True), dst_node_id=self.node_id,
                      message_type=MessageType.TRAIN, group_id=str(group_id))
        reply = self.app(msg, self.context)
        assert not reply.has_error(), reply.error
        res = recorddict_to_fitres(reply.content, keep_input=True)
        if self.damage:
            frame = res.parameters.tensors[0]
            res.parameters.tensors[0] = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        return res

    def get_properties(self, ins, timeout, group_id):  # pragma: no cover
        raise NotImplementedError

    def get_parameters(self, ins, timeout, group_id):  # pragma: no cover
        raise NotImplementedError

    def evaluate(self, ins, timeout, group_id):  # pragma: no cover
        raise NotImplementedError

    def reconnect(self, ins, timeout, group_id):  # pragma: no cover
        raise NotImplementedError


@pytest.fixture(autouse=True)
def server_identity():
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


def fit_round(strategy, damaged: int | None = None, server_round: int = 1):
    manager = SimpleClientManager()
    app = client_app()
    for node in SAMPLES:
        manager.register(LocalProxy(node, app, damage=node == damaged))
    instructions = strategy.configure_fit(server_round, ndarrays_to_parameters(GLOBAL), manager)
    results = [(proxy, proxy.fit(ins, None, server_round)) for proxy, ins in instructions]
    for _, res in results:
        assert res.parameters.tensor_type == FRAME_STYPE and len(res.parameters.tensors) == 1
    return strategy.aggregate_fit(server_round, results, [])


def test_legacy_fedavg_over_frames() -> None:
    strategy = uplink_legacy_strategy(FedAvg)(min_fit_clients=2, min_available_clients=2)
    parameters, metrics = fit_round(strategy)
    new = parameters_to_ndarrays(parameters)
    total = sum(SAMPLES.values())
    for i, g in enumerate(GLOBAL):
        want = g + sum(SAMPLES[n] * step(n)[i] for n in SAMPLES) / total
        np.testing.assert_allclose(new[i], want, rtol=1e-5, atol=1e-6)
        assert new[i].shape == g.shape
    assert metrics["uplink-accepted"] == 2 and metrics["uplink-refused"] == 0
    assert metrics["uplink-float32-bytes"] == 2 * 4 * 23


def test_legacy_damaged_frame_is_a_failure_and_the_round_completes() -> None:
    strategy = uplink_legacy_strategy(FedMedian)(min_fit_clients=2, min_available_clients=2)
    parameters, metrics = fit_round(strategy, damaged=22)
    new = parameters_to_ndarrays(parameters)
    for i, g in enumerate(GLOBAL):  # the median of one client is that client
        np.testing.assert_allclose(new[i], g + step(21)[i], rtol=1e-6, atol=1e-6)
    assert metrics["uplink-refused-codes"] == "201"
    assert [(r["node"], r["code"]) for r in strategy.uplink_rounds[1]["refused"]] == [(22, 201)]


def test_legacy_round_comes_from_the_group_id() -> None:
    strategy = uplink_legacy_strategy(FedAvg)(min_fit_clients=2, min_available_clients=2)
    _, metrics = fit_round(strategy, server_round=4)
    assert metrics["uplink-accepted"] == 2  # frames carry round 4 (group_id), so none is 901
