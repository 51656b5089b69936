"""Derives the run's scenario from the base scenario file, and the plan of which client gets which link.

Writes OUT (a scenario for `uplink simulate`: the base with --clients, --rounds, --seed and
--reports applied, and with cuts the proxy's cut rate as outages) and PLAN (one line per client:
index, profile, uplink Mbit/s, downlink Mbit/s, RTT ms), assigning profiles to client indices
exactly as the simulator's `Population.make` does (groups in order, by rounded cumulative share),
so client i of the real run has the link and the data shard of simulated client i.

Usage: scenario.py BASE OUT PLAN --clients N --rounds R --seed S [--reports K]
                   [--cuts-per-minute C --retry-initial-delay D]
"""
import argparse
import json
import math


def main():
    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("out")
    p.add_argument("plan")
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--reports", type=int)
    p.add_argument("--cuts-per-minute", type=float, default=0)
    p.add_argument("--retry-initial-delay", type=float, default=0.5)
    a = p.parse_args()
    s = json.load(open(a.base))
    s["clients"], s["rounds"], s["seed"] = a.clients, a.rounds, a.seed
    if a.reports:
        s["reportsPerRound"] = a.reports
    s["reportsPerRound"] = min(s["reportsPerRound"], a.clients)
    profiles = {q["name"]: q for q in s["profiles"]}
    for q in s["profiles"]:
        # The proxy cuts each transfer direction at c per minute of transfer (Poisson), the
        # simulator's outages at 60·c per hour; the client's pause after a cut is uniform in
        # 0…D (mean D/2), then it reconnects: one more round trip than the simulator's reconnect.
        q["outagesPerHour"] = min(60.0, 60 * a.cuts_per_minute)
        q["meanOutageSeconds"] = a.retry_initial_delay / 2 + q["rttMs"] / 1000
    total = sum(g["share"] for g in s["population"])
    lines, assigned, cumulative = [], 0, 0.0
    for gi, g in enumerate(s["population"]):
        cumulative += g["share"] / total
        last = gi == len(s["population"]) - 1
        end = a.clients if last else int(math.floor(cumulative * a.clients + 0.5))
        q = profiles[g["profile"]]
        for i in range(assigned, max(assigned, end)):
            lines.append(f"{i}\t{g['profile']}\t{q['uplinkMbps']:g}\t{q['downlinkMbps']:g}\t{q['rttMs']:g}\n")
        assigned = max(assigned, end)
    json.dump(s, open(a.out, "w"), indent=2)
    open(a.plan, "w").writelines(lines)


if __name__ == "__main__":
    main()
