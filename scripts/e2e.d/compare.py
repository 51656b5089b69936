"""Prints the measured run beside `uplink simulate`'s prediction for the same scenario.

Reads the work directory scripts/e2e filled: participants/client-*.jsonl (`uplink participate
--json`, one object per round), rounds/*.json (`GET /v1/rounds/{r}` after the run), the
server's ledger (read-only, for the first check-in of each round) and accepted frames (their
sample counts),
polls/metrics.txt (the last `/metrics` before the server exited), accuracy.json (the published
models on the test set), proxies/*.log (the cuts), plan.tsv, scenario.json and simulation.json
(`uplink simulate --json`). Writes summary.json beside them.

Usage: compare.py WORK [--seconds S] [--cuts TEXT]
"""
import argparse
import glob
import json
import math
import os
import re
import sqlite3
import statistics
import struct
from datetime import datetime


def quantile(values, q):
    """The simulator's nearest-rank quantile (Report.quantile)."""
    s = sorted(values)
    if not s:
        return None
    return s[min(len(s) - 1, math.ceil(q * len(s)) - (0 if q == 0 else 1))]


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def fmt_bytes(n):
    if n is None:
        return "—"
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}" if abs(n) < 100 * scale else f"{n / scale:.0f} {unit}"
    return f"{n:.0f} B"


def fmt_seconds(s):
    return "—" if s is None else (f"{s:.3f} s" if s < 1 else f"{s:.2f} s")


def fmt_ratio(a, b):
    return "—" if a is None or b in (None, 0) else f"{a / b:.2f}"


def fmt_pct(x):
    return "—" if x is None else f"{100 * x:.1f}%"


def fmt_count(x):
    return "—" if x is None else f"{x:.1f}"


def fmt_ms(x):
    return "—" if x is None else f"{x:.2f} ms"


def table(rows, header):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    out = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("work")
    p.add_argument("--seconds", type=float)
    p.add_argument("--cuts", default="none")
    p.add_argument("--load-before")
    a = p.parse_args()
    w = a.work
    scenario = json.load(open(f"{w}/scenario.json"))
    rounds_n = scenario["rounds"]
    plan = {}
    for line in open(f"{w}/plan.tsv"):
        i, profile, up, down, rtt = line.split("\t")
        plan[int(i)] = {"profile": profile, "up": float(up), "down": float(down), "rtt": float(rtt) / 1000}
    profiles = list(dict.fromkeys(c["profile"] for c in plan.values()))

    def mean_msps(profile):
        g = next(g for g in scenario["population"] if g["profile"] == profile)
        return sum(g.get("msPerSample", [5, 20])) / 2

    # Measured: what each participant saw, per round.
    lines = []
    errors = []
    for path in glob.glob(f"{w}/participants/client-*.jsonl"):
        i = int(re.search(r"client-(\d+)\.jsonl$", path).group(1))
        for text in open(path):
            text = text.strip()
            if not text:
                continue
            o = json.loads(text)
            if "error" in o:
                errors.append((i, o["error"]))
            if "round" in o and "status" in o:
                o["client"] = i
                o["profile"] = plan[i]["profile"]
                lines.append(o)
    server = {}
    for r in range(1, rounds_n + 1):
        try:
            server[r] = json.load(open(f"{w}/rounds/{r}.json"))
        except (OSError, ValueError):
            server[r] = {}
    accuracy_files = json.load(open(f"{w}/accuracy.json"))
    accuracy = {}
    for path, acc in accuracy_files.items():
        tag = re.search(r"model-(\w+)\.safetensors$", path).group(1)
        # global-(r+1) is the model after round r; final the one after the last round.
        accuracy[rounds_n if tag == "final" else int(tag) - 1] = acc
    metrics = {}
    if os.path.exists(f"{w}/polls/metrics.txt"):
        for text in open(f"{w}/polls/metrics.txt"):
            if text and not text.startswith("#"):
                name, _, value = text.rpartition(" ")
                metrics[name] = float(value)
    cuts = {"rate": 0, "append": 0}
    for path in glob.glob(f"{w}/proxies/client-*.log"):
        for text in open(path):
            m = re.search(r" cut .*kind=(\w+)", text)
            if m:
                cuts[m.group(1)] += 1

    # The first check-in of each round: round 1 opens when the server starts, before the
    # participants have loaded their data, so its round time is counted from there.
    first_checkin = {}
    try:
        db = sqlite3.connect(f"file:{w}/server/uplink.sqlite?mode=ro", uri=True)
        for r, at in db.execute("SELECT round, MIN(at) FROM checkins GROUP BY round"):
            first_checkin[r] = at
        db.close()
    except sqlite3.Error:
        pass
    # Samples behind each accepted update: the frame header's u64 at byte 12 + 16.
    for o in lines:
        if o["status"] == "accepted" and "sequence" in o:
            files = glob.glob(f"{w}/server/rounds/{o['round']}/{o['sequence']:06d}-*.upl")
            if files:
                with open(files[0], "rb") as f:
                    o["samples"] = struct.unpack("<Q", f.read(36)[28:36])[0]
    # Restarts while the rounds ran, and after the last round: the server stops with uploads
    # of that round in flight and a finished server answers for the rest (scripts/e2e).
    try:
        server_exited = float(open(f"{w}/server-exited").read())
    except (OSError, ValueError):
        server_exited = float("inf")
    restarts, late_restarts, lost = [], [], []
    first_restart_in_run = set()
    for path in glob.glob(f"{w}/participants/client-*.restarts"):
        i = int(re.search(r"client-(\d+)\.restarts$", path).group(1))
        mine = []
        for line in open(path):
            m = re.match(r"restart (\d+) at ([\d.]+): (.*)", line.strip())
            if m:
                mine.append((float(m.group(2)), f"client-{i} ({plan[i]['profile']}): {m.group(3)}"))
        if mine and mine[0][0] < server_exited:
            first_restart_in_run.add(i)
        restarts += [t for at, t in mine if at < server_exited]
        late_restarts += [t for at, t in mine if at >= server_exited]
    # Stuck: while the rounds ran, the same error on every restart, and no round reported since.
    for i in sorted(first_restart_in_run):
        seq = [json.loads(t) for t in open(f"{w}/participants/client-{i}.jsonl") if t.strip()]
        first_error = next((k for k, o in enumerate(seq) if "error" in o), None)
        if first_error is None:
            continue
        after = seq[first_error:]
        messages = {o["error"].get("message") for o in after if "error" in o}
        if len(after) > 1 and len(messages) == 1 and not any("round" in o for o in after):
            lost.append(f"client-{i} ({plan[i]['profile']}): {messages.pop()}")

    sim_run = json.load(open(f"{w}/simulation.json"))["pipelines"][0]
    sim_rounds = {r["round"]: r for r in sim_run["rounds"]}

    real = {}
    for r in range(1, rounds_n + 1):
        mine = [o for o in lines if o["round"] == r]
        accepted = [o for o in mine if o["status"] == "accepted"]
        s = server[r]
        duration = None
        if s.get("closedAt") and s.get("openedAt"):
            duration = instant(s["closedAt"]) - max(instant(s["openedAt"]), first_checkin.get(r, 0))
        real[r] = {
            "selected": len(mine),
            "reported": s.get("accepted", len(accepted)),
            "acceptedBytes": s.get("acceptedBytes"),
            "bytesUp": sum(o["bodyBytesSent"] for o in mine),
            "bytesDown": sum(o.get("download", {}).get("bytesReceived", 0) for o in mine),
            "uploadTimes": [o["uploadSeconds"] for o in accepted],
            "duration": duration,
            "reason": s.get("reason"),
            "accuracy": accuracy.get(r),
            "selectedByProfile": {q: sum(1 for o in mine if o["profile"] == q) for q in profiles},
            "reportedByProfile": {q: sum(1 for o in accepted if o["profile"] == q) for q in profiles},
        }
    sim = {}
    for r in range(1, rounds_n + 1):
        s = sim_rounds.get(r, {})
        sim[r] = {
            "selected": s.get("selected"), "reported": s.get("reported"), "acceptedBytes": None,
            "bytesUp": s.get("bytes_up"), "bytesDown": s.get("bytes_down"), "uploadTimes": s.get("upload_seconds", []),
            "duration": s.get("duration_seconds"), "accuracy": s.get("accuracy"),
            "selectedByProfile": s.get("selected_by_profile", {}), "reportedByProfile": s.get("reported_by_profile", {}),
        }

    def over(d, key):
        return mean([d[r][key] for r in d])

    real_up = [t for r in real for t in real[r]["uploadTimes"]]
    sim_up = [t for r in sim for t in sim[r]["uploadTimes"]]
    frame = mean([o["frameBytes"] for o in lines if o["status"] == "accepted"])
    # The simulator reports the mean accepted frame, not the accepted bytes per round.
    sim_frame = sim_run.get("summary", {}).get("mean_frame_bytes")
    sim_accepted = (sim_frame or 0) * (over(sim, "reported") or 0)
    summary_rows = [
        ("frame (mean accepted)", fmt_bytes(frame), fmt_bytes(sim_frame), fmt_ratio(frame, sim_frame)),
        ("accepted bytes per round", fmt_bytes(over(real, "acceptedBytes")), fmt_bytes(sim_accepted),
         fmt_ratio(over(real, "acceptedBytes"), sim_accepted)),
        ("uplink bytes per round (frame bytes sent)", fmt_bytes(over(real, "bytesUp")), fmt_bytes(over(sim, "bytesUp")),
         fmt_ratio(over(real, "bytesUp"), over(sim, "bytesUp"))),
        ("downlink bytes per round (model bytes received)", fmt_bytes(over(real, "bytesDown")), fmt_bytes(over(sim, "bytesDown")),
         fmt_ratio(over(real, "bytesDown"), over(sim, "bytesDown"))),
        ("upload time p50", fmt_seconds(quantile(real_up, 0.5)), fmt_seconds(quantile(sim_up, 0.5)),
         fmt_ratio(quantile(real_up, 0.5), quantile(sim_up, 0.5))),
        ("upload time p95", fmt_seconds(quantile(real_up, 0.95)), fmt_seconds(quantile(sim_up, 0.95)),
         fmt_ratio(quantile(real_up, 0.95), quantile(sim_up, 0.95))),
        ("round time (mean)", fmt_seconds(over(real, "duration")), fmt_seconds(over(sim, "duration")),
         fmt_ratio(over(real, "duration"), over(sim, "duration"))),
        ("reports per round", fmt_count(over(real, "reported")), fmt_count(over(sim, "reported")),
         fmt_ratio(over(real, "reported"), over(sim, "reported"))),
        ("selected per round", fmt_count(over(real, "selected")), fmt_count(over(sim, "selected")), ""),
        (f"accuracy after round {rounds_n}", fmt_pct(real[rounds_n]["accuracy"]), fmt_pct(sim[rounds_n]["accuracy"]),
         fmt_ratio(real[rounds_n]["accuracy"], sim[rounds_n]["accuracy"])),
    ]

    k = scenario["reportsPerRound"]
    mix = ", ".join(f"{sum(1 for c in plan.values() if c['profile'] == q)} {q}" for q in profiles)
    print(f"\nscripts/e2e: {len(plan)} clients ({mix}), "
          f"{rounds_n} rounds, K = {k}, over-selection {scenario['overSelection']}, deadline {scenario['deadlineSeconds']} s, "
          f"seed {scenario['seed']}, pipeline {scenario['pipelines'][0]}, cuts: {a.cuts}\n")
    print(table([list(r) for r in summary_rows], ["", "measured", "simulated", "measured / simulated"]))

    per_round = []
    for r in range(1, rounds_n + 1):
        x, y = real[r], sim[r]
        per_round.append([
            r, f"{x['reported']} / {y['reported']}", f"{fmt_seconds(x['duration'])} / {fmt_seconds(y['duration'])}",
            f"{fmt_bytes(x['bytesUp'])} / {fmt_bytes(y['bytesUp'])}",
            f"{fmt_seconds(quantile(x['uploadTimes'], 0.5))} / {fmt_seconds(quantile(y['uploadTimes'], 0.5))}",
            f"{fmt_pct(x['accuracy'])} / {fmt_pct(y['accuracy'])}", x["reason"] or "—",
        ])
    print("\nper round, measured / simulated:\n")
    print(table(per_round, ["round", "reports", "round time", "uplink bytes", "upload p50", "accuracy after", "closed by"]))

    # Per network: the link model's own prediction (RTT + 8·bytes/rate) against tbf + proxy.
    model_bytes = median([o["download"]["bytesReceived"] for o in lines if o.get("download") and not o["download"].get("cached")
                          and o["download"].get("resumedFrom", 0) == 0 and o["download"].get("retries", 0) == 0])
    per_profile = []
    for q in profiles:
        c = next(v for v in plan.values() if v["profile"] == q)
        mine = [o for o in lines if o["profile"] == q]
        clean_up = [o["uploadSeconds"] for o in mine if o["status"] == "accepted" and o["retries"] == 0]
        clean_down = [o["download"]["seconds"] for o in mine if o.get("download") and o["download"].get("retries", 0) == 0
                      and not o["download"].get("cached")]
        up_model = c["rtt"] + 8 * (frame or 0) / (c["up"] * 1e6)
        down_model = c["rtt"] + 8 * (model_bytes or 0) / (c["down"] * 1e6)
        sel_real = sum(real[r]["selectedByProfile"].get(q, 0) for r in real)
        rep_real = sum(real[r]["reportedByProfile"].get(q, 0) for r in real)
        sel_sim = sum(sim[r]["selectedByProfile"].get(q, 0) for r in sim)
        rep_sim = sum(sim[r]["reportedByProfile"].get(q, 0) for r in sim)
        per_profile.append([
            q, f"{c['up']:g} / {c['down']:g} Mbit/s, {1000 * c['rtt']:g} ms",
            f"{rep_real} / {sel_real}", f"{rep_sim} / {sel_sim}",
            f"{fmt_seconds(median(clean_down))} / {fmt_seconds(down_model)}",
            f"{fmt_seconds(median(clean_up))} / {fmt_seconds(up_model)}",
            fmt_seconds(median([o["trainSeconds"] for o in mine if "trainSeconds" in o])),
            fmt_seconds(median([o["encodeSeconds"] for o in mine if "encodeSeconds" in o])),
            fmt_ms(median([1000 * o["trainSeconds"] / o["samples"] for o in mine if o.get("samples")])),
            f"{mean_msps(q):g} ms",
        ])
    print("\nper network (reported / selected over all rounds; transfers without a retry, median; "
          "link model = RTT + 8·bytes/rate, what the simulator charges a steady link):\n")
    print(table(per_profile, ["network", "link", "measured", "simulated", "download: measured / link model",
                              "upload: measured / link model", "train", "encode", "train per sample", "simulated per sample"]))

    print()
    if restarts:
        print(f"participants restarted after an error while the rounds ran: {len(restarts)}:\n  " + "\n  ".join(sorted(set(restarts))))
    if late_restarts:
        print(f"participants restarted after the last round (the server stopped under their upload): {len(late_restarts)}")
    if lost:
        print("of them, stuck (the same error on every restart, no round reported since): " + "; ".join(lost))
    retries = sum(o["retries"] for o in lines)
    resumed_downloads = sum(1 for o in lines if o.get("download", {}).get("retries", 0) > 0)
    refused = [o for o in lines if o["status"] != "accepted"]
    print(f"cuts by the proxies: {cuts['rate']} rate-based, {cuts['append']} inside an upload append; "
          f"upload retries {retries}; downloads that retried {resumed_downloads}; "
          f"updates not counted {len(refused)} ({', '.join(sorted(set(str(o.get('problem', o['status'])).rsplit(':', 1)[-1] for o in refused))) or '—'})")
    if metrics:
        keys = ["uplink_frames_accepted_total", "uplink_upload_bytes_received_total", 'uplink_rounds_total{outcome="closed"}',
                'uplink_rounds_total{outcome="abandoned"}', 'uplink_uploads_finished_total{outcome="accepted"}']
        print("server /metrics (last poll before it exited): " + ", ".join(f"{k} {metrics[k]:g}" for k in keys if k in metrics))
    if a.seconds is not None:
        load = f"; 1-minute load average before the run {a.load_before}" if a.load_before else ""
        print(f"script wall clock: {a.seconds:.0f} s (the {rounds_n} rounds: {sum(real[r]['duration'] or 0 for r in real):.1f} s measured, "
              f"{sum(sim[r]['duration'] or 0 for r in sim):.1f} s simulated){load}")
    json.dump({"real": real, "simulated": sim, "cuts": cuts, "retries": retries, "metrics": metrics,
               "errors": errors, "restarts": restarts, "lateRestarts": late_restarts, "stuck": lost, "seconds": a.seconds}, open(f"{w}/summary.json", "w"), indent=1)


if __name__ == "__main__":
    main()
