"""ClientApp: trains locally; UplinkMod turns the trained weights into a compressed frame
of the update (trained - received) before the reply leaves the node."""

from __future__ import annotations

from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

from uplink_digits import task
from uplink_fl.flwr import FRAME_KEY, UplinkMod

app = ClientApp()


def damage_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Test hook (run-config damage-round / damage-partition): flips the last byte of this
    client's frame in one round, so the server must refuse it (section checksum, 201)."""
    out = call_next(msg, context)
    cfg = context.run_config
    if (not out.has_error() and int(msg.content["config"]["server-round"]) == int(cfg["damage-round"])
            and int(context.node_config["partition-id"]) == int(cfg["damage-partition"])):
        frame = out.content["arrays"][FRAME_KEY]
        frame.data = frame.data[:-1] + bytes([frame.data[-1] ^ 0xFF])
    return out


uplink = UplinkMod(
    pipeline=lambda c: str(c.run_config["pipeline"]),
    state_dir=lambda c: str(c.run_config["state-dir"]) or None,
)


# damage_mod is listed first, so it wraps UplinkMod and sees the frame UplinkMod made.
@app.train(mods=[damage_mod, uplink])
def train(msg: Message, context: Context) -> Message:
    """Train the received global model on this node's partition for a few epochs."""
    model = {k: a.numpy() for k, a in msg.content["arrays"].items()}
    x, y = task.load_partition(str(context.run_config["digits"]),
                               int(context.node_config["partition-id"]),
                               int(context.node_config["num-partitions"]))
    server_round = int(msg.content["config"]["server-round"])
    model, loss = task.train(model, x, y, epochs=int(context.run_config["local-epochs"]),
                             lr=float(context.run_config["learning-rate"]),
                             seed=1000 * server_round + int(context.node_config["partition-id"]))
    content = RecordDict({
        "arrays": ArrayRecord({k: Array(v) for k, v in model.items()}),
        "metrics": MetricRecord({"train-loss": loss, "num-examples": len(x)}),
    })
    return Message(content, reply_to=msg)
