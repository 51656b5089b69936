"""ServerApp: FedAvg over Uplink frames; prints the bytes received per round beside float32."""

from __future__ import annotations

import os
from logging import INFO

from flwr.app import Array, ArrayRecord, Context, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from uplink_digits import task
from uplink_fl.flwr import UplinkFedAvg, write_safetensors

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the rounds, evaluating the global model on the test rows after each."""
    cfg = context.run_config
    save = str(cfg["save-frames"]) or os.environ.get("UPLINK_SAVE_FRAMES") or None
    x_test, y_test = task.load_test(str(cfg["digits"]))

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model = {k: a.numpy() for k, a in arrays.items()}
        loss, accuracy = task.evaluate(model, x_test, y_test)
        return MetricRecord({"loss": loss, "accuracy": accuracy})

    strategy = UplinkFedAvg(fraction_evaluate=0.0, min_train_nodes=2, min_available_nodes=2,
                            save_frames=save)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord({k: Array(v) for k, v in task.init_model().items()}),
        num_rounds=int(cfg["num-server-rounds"]),
        evaluate_fn=evaluate,
    )
    if save:  # the final global model, for scripts/check-flower (and `uplink aggregate --model`)
        write_safetensors(os.path.join(save, "final.safetensors"), result.arrays)
    for r, s in sorted(strategy.uplink_rounds.items()):
        refused = ", ".join(f"node {x['node']} [{x['code']}]" for x in s["refused"]) or "none"
        accuracy = result.evaluate_metrics_serverapp[r]["accuracy"]
        log(INFO, "uplink round %d: %d frames, %d bytes received, float32 %d bytes (%.1fx smaller); "
            "refused: %s; test accuracy %.3f", r, s["frames"], s["bytes"], s["float32_bytes"],
            s["ratio"], refused, accuracy)
