"""Reference epsilons from Google's dp_accounting RDP accountant (pinned version), for the
Swift accountant's tests: fixtures/privacy/rdp-reference.json.
Run: scripts/privacy/make-reference (creates a venv with dp-accounting==0.6.0)."""
import json, sys
import dp_accounting
from dp_accounting.rdp import rdp_privacy_accountant as rdp

rows = []
for z in [0.5, 0.8, 1.1, 2.0, 4.0]:
    for q in [0.001, 0.01, 0.1, 1.0]:
        for steps in [1, 10, 100, 1000, 10000]:
            for delta in [1e-5, 1e-6]:
                acc = rdp.RdpAccountant()
                event = dp_accounting.SelfComposedDpEvent(
                    dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), steps)
                acc.compose(event)
                eps, order = acc.get_epsilon_and_optimal_order(delta)
                rows.append({"noise_multiplier": z, "sampling_rate": q, "steps": steps, "delta": delta,
                             "epsilon": eps, "order": order})
json.dump({"source": "dp_accounting 0.6.0 RdpAccountant, default orders", "rows": rows},
          open(sys.argv[1], "w"), indent=1)
print(len(rows), "rows")
