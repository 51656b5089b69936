#!/usr/bin/env python3
"""Statistics of the learning-task study (docs/results.md) over seeds.

Reads the `manifest.json` and the `uplink train --json` outputs that `scripts/study` writes
into its output folder and prints Markdown: per (partition, pipeline) the mean and 95%
Student-t interval over seeds of the final test accuracy and of the mean of the last five
rounds, rounds to a target accuracy, uplink bytes; and the paired difference to float32 per
seed. The seed fixes the client split, the client selection and the initialization for every
pipeline alike, so `pipeline − float32` on the same seed cancels that shared randomness; its
t-interval is what says whether "X costs Y points" is resolved.

The intervals are over training randomness on the one fixed test set (361 digits images, or
Fashion-MNIST's 10,000). They do not include the test set's own sampling error (for one
accuracy p, sqrt(p(1 − p)/n): about 1.1 points at 95% on the digits, 0.6 on Fashion-MNIST),
which is printed alongside.

Usage: study-stats.py DIR [--target 0.90]
       study-stats.py --self-test
"""
import argparse
import json
import math
import os
import statistics
import sys
import unittest

TEST_IMAGES = 361
CONFIDENCE = 0.95


def t_quantile(df, confidence=CONFIDENCE):
    """Two-sided Student-t critical value for `df` degrees of freedom.

    >>> round(t_quantile(4), 4)
    2.7764
    """
    from scipy.stats import t
    return float(t.ppf(0.5 + confidence / 2, df))


class Interval:
    """Mean and two-sided t-interval of a sample; `half` is None for fewer than two values."""

    def __init__(self, values, confidence=CONFIDENCE):
        self.values = list(values)
        self.n = len(self.values)
        if self.n == 0:
            raise ValueError("an interval needs at least one value")
        self.mean = statistics.fmean(self.values)
        if self.n < 2:
            self.half = None
            self.sd = None
        else:
            self.sd = statistics.stdev(self.values)
            self.half = t_quantile(self.n - 1, confidence) * self.sd / math.sqrt(self.n)

    @property
    def low(self):
        return None if self.half is None else self.mean - self.half

    @property
    def high(self):
        return None if self.half is None else self.mean + self.half

    def verdict(self):
        """Whether the interval excludes zero (for differences)."""
        if self.half is None:
            return "one seed: no interval"
        if all(v == 0 for v in self.values):
            return "identical on every seed"
        if self.high < 0:
            return "resolved: lower"
        if self.low > 0:
            return "resolved: higher"
        return "not resolved (interval contains 0)"


def paired_differences(values, baseline):
    """Per-seed `values[s] − baseline[s]` over the seeds both have, in seed order."""
    common = sorted(set(values) & set(baseline))
    return [values[s] - baseline[s] for s in common]


def rounds_to_target(accuracies, target):
    """First round (1-based) whose accuracy reaches `target`, or None."""
    return next((i + 1 for i, a in enumerate(accuracies) if a >= target), None)


def test_set_standard_error(p, n=TEST_IMAGES):
    """Binomial standard error of one accuracy p measured on n test images."""
    return math.sqrt(p * (1 - p) / n)


def points(x):
    """An accuracy fraction or difference in percentage points, with a real minus sign."""
    s = f"{100 * x:+.2f}" if x is not None else "—"
    return s.replace("-", "−")


def accuracy(iv):
    if iv.half is None:
        return f"{100 * iv.mean:.2f}% (one seed)"
    return f"{100 * iv.mean:.2f} ± {100 * iv.half:.2f}"


def difference(iv):
    if iv.half is None:
        return f"{points(iv.mean)} (one seed)"
    return f"{points(iv.mean)} [{points(iv.low)}, {points(iv.high)}]"


def rounds(values, n):
    reached = [v for v in values if v is not None]
    if not reached:
        return f"— (0/{n})"
    iv = Interval(reached)
    if iv.half is None:
        return f"{iv.mean:.0f} ({len(reached)}/{n})"
    return f"{iv.mean:.1f} [{iv.low:.1f}, {iv.high:.1f}] ({len(reached)}/{n})"


def load(folder):
    """Cells keyed by (partition, label): spec, args and per-seed run data, in manifest order."""
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    cells = {}
    for run in manifest["runs"]:
        data = json.load(open(os.path.join(folder, run["file"])))
        s = data["summary"]
        if s["seed"] != run["seed"] or s["partition"] != run["partition"]:
            raise SystemExit(f"{run['file']}: summary does not match the manifest")
        acc = [r["accuracy"] for r in data["rounds"]]
        cell = cells.setdefault((run["partition"], run["label"]),
                                {"spec": run["spec"], "args": run["args"], "seeds": {}})
        cell["seeds"][run["seed"]] = {
            "final": s["final_accuracy"], "last5": statistics.fmean(acc[-5:]), "accuracies": acc,
            "bytes": s["total_uplink_bytes"], "float32_bytes": s["float32_uplink_bytes"],
            "seconds": s["seconds"], "epsilon": s.get("epsilon"),
            "test_examples": s.get("test_examples", TEST_IMAGES),
        }
    return manifest, cells


def report(folder, target):
    manifest, cells = load(folder)
    baseline_label = manifest["baseline"]
    out = []
    seeds_all = sorted({s for c in cells.values() for s in c["seeds"]})
    t_note = (f"t = {t_quantile(len(seeds_all) - 1):.3f} for {len(seeds_all)} seeds" if len(seeds_all) > 1
              else "none with one seed")
    out.append(f"Seeds: {', '.join(map(str, seeds_all))}. Intervals: 95% Student t over seeds ({t_note}). "
               f"Differences are paired by seed (same split, client selection and initialization).")
    out.append("")
    with_epsilon = any(v["epsilon"] is not None for c in cells.values() for v in c["seeds"].values())
    out.append(f"| partition | pipeline | {'ε (mean over seeds) | ' if with_epsilon else ''}final accuracy (%) | "
               f"last-5 mean (%) | final − float32 (points) | "
               f"last-5 − float32 (points) | rounds to {100 * target:g}% (seeds reaching) | "
               f"uplink bytes per run (mean) | ratio to float32 |")
    out.append("|---|---|---|---|---|---|---|---|---|" + ("---|" if with_epsilon else ""))
    verdicts = []
    for (part, label), cell in cells.items():
        seeds = cell["seeds"]
        base = cells[(part, baseline_label)]["seeds"]
        final = Interval(v["final"] for v in seeds.values())
        last5 = Interval(v["last5"] for v in seeds.values())
        is_base = label == baseline_label
        d_final = Interval(paired_differences({s: v["final"] for s, v in seeds.items()},
                                              {s: v["final"] for s, v in base.items()}))
        d_last5 = Interval(paired_differences({s: v["last5"] for s, v in seeds.items()},
                                              {s: v["last5"] for s, v in base.items()}))
        reach = [rounds_to_target(v["accuracies"], target) for v in seeds.values()]
        mean_bytes = statistics.fmean(v["bytes"] for v in seeds.values())
        ratio = sum(v["float32_bytes"] for v in seeds.values()) / sum(v["bytes"] for v in seeds.values())
        eps = [v["epsilon"] for v in seeds.values() if v["epsilon"] is not None]
        eps_cell = (f"{statistics.fmean(eps):.2f} | " if eps else "— | ") if with_epsilon else ""
        out.append(f"| {part} | {label} | {eps_cell}{accuracy(final)} | {accuracy(last5)} | "
                   f"{'—' if is_base else difference(d_final)} | {'—' if is_base else difference(d_last5)} | "
                   f"{rounds(reach, len(reach))} | {mean_bytes:,.0f} | {ratio:.1f}× |")
        if not is_base:
            verdicts.append((part, f"{label} − float32", d_final, d_last5))
    for a, b in manifest.get("comparisons", []):
        for part in dict.fromkeys(p for p, _ in cells):
            if (part, a) in cells and (part, b) in cells:
                sa, sb = cells[(part, a)]["seeds"], cells[(part, b)]["seeds"]
                verdicts.append((part, f"{a} − {b}",
                                 Interval(paired_differences({s: v["final"] for s, v in sa.items()},
                                                             {s: v["final"] for s, v in sb.items()})),
                                 Interval(paired_differences({s: v["last5"] for s, v in sa.items()},
                                                             {s: v["last5"] for s, v in sb.items()}))))
    out.append("")
    out.append("Paired differences in points (final accuracy; last-5 mean), 95% interval, and whether "
               "the interval resolves the sign:")
    out.append("")
    out.append("| partition | comparison | final: mean [95% CI] | verdict | last-5: mean [95% CI] | verdict |")
    out.append("|---|---|---|---|---|---|")
    for part, name, d_final, d_last5 in verdicts:
        out.append(f"| {part} | {name} | {difference(d_final)} | {d_final.verdict()} | "
                   f"{difference(d_last5)} | {d_last5.verdict()} |")
    out.append("")
    out.append(f"Per-seed final accuracy (%), seeds {', '.join(map(str, seeds_all))}:")
    out.append("")
    out.append("| partition | pipeline | " + " | ".join(f"seed {s}" for s in seeds_all) + " |")
    out.append("|---|---|" + "---|" * len(seeds_all))
    for (part, label), cell in cells.items():
        row = [f"{100 * cell['seeds'][s]['final']:.2f}" if s in cell["seeds"] else "—" for s in seeds_all]
        out.append(f"| {part} | {label} | " + " | ".join(row) + " |")
    out.append("")
    sizes = {v["test_examples"] for c in cells.values() for v in c["seeds"].values()}
    if len(sizes) != 1:
        raise SystemExit(f"runs were evaluated on test sets of different sizes: {sorted(sizes)}")
    n_test = next(iter(sizes))
    out.append(f"Test-set standard error of one accuracy, sqrt(p(1 − p)/{n_test}), at the float32 mean:")
    out.append("")
    for part in dict.fromkeys(p for p, _ in cells):
        p = statistics.fmean(v["final"] for v in cells[(part, baseline_label)]["seeds"].values())
        se = test_set_standard_error(p, n_test)
        out.append(f"- {part}: p = {100 * p:.2f}%, standard error {100 * se:.2f} points "
                   f"(95%: ± {196 * se:.2f})")
    out.append("")
    seed_options = " ".join(f"{o} S" for o in manifest.get("seed_options", ["--seed"]))
    out.append("Commands (one per seed S):")
    out.append("")
    for (part, label), cell in cells.items():
        args = cell["args"]
        cmd = "uplink " + " ".join(a if " " not in a and "|" not in a else f'"{a}"' for a in args)
        out.append(f"- {part}, {label}: `{cmd.replace('|', chr(92) + '|')} {seed_options}`")
    secs = sum(v["seconds"] for c in cells.values() for v in c["seeds"].values())
    out.append("")
    runs = sum(len(c["seeds"]) for c in cells.values())
    out.append(f"{runs} runs, {secs / 60:.1f} minutes of training (sum of the runs' own `seconds`).")
    return "\n".join(out)


class IntervalTests(unittest.TestCase):
    """Pinned values of the interval arithmetic (scipy's t quantiles, computed by hand)."""

    def test_t_quantiles(self):
        self.assertAlmostEqual(t_quantile(1), 12.7062, places=4)
        self.assertAlmostEqual(t_quantile(4), 2.7764, places=4)
        self.assertAlmostEqual(t_quantile(9), 2.2622, places=4)

    def test_five_values(self):
        # mean 3, sample sd sqrt(2.5), se sqrt(0.5), half-width 2.7764 · 0.70711 = 1.9632
        iv = Interval([1, 2, 3, 4, 5])
        self.assertEqual(iv.mean, 3)
        self.assertAlmostEqual(iv.sd, math.sqrt(2.5), places=12)
        self.assertAlmostEqual(iv.half, 1.963243, places=6)
        self.assertAlmostEqual(iv.low, 3 - 1.963243, places=6)
        self.assertAlmostEqual(iv.high, 3 + 1.963243, places=6)

    def test_one_value_has_no_interval(self):
        iv = Interval([0.9])
        self.assertIsNone(iv.half)
        self.assertEqual(iv.verdict(), "one seed: no interval")
        self.assertEqual(Interval([0]).verdict(), "one seed: no interval")

    def test_empty_is_refused(self):
        with self.assertRaises(ValueError):
            Interval([])

    def test_pairing_removes_shared_seed_effect(self):
        # The seed effect (0.90, 0.96, 0.93) dwarfs the constant 1-point cost: unpaired
        # intervals overlap, the paired difference is exactly −0.01 with zero width.
        base = {1: 0.90, 2: 0.96, 3: 0.93}
        other = {s: v - 0.01 for s, v in base.items()}
        self.assertGreater(Interval(base.values()).low, Interval(other.values()).low)
        self.assertLess(Interval(base.values()).low, Interval(other.values()).high)
        d = Interval(paired_differences(other, base))
        self.assertAlmostEqual(d.mean, -0.01, places=12)
        self.assertAlmostEqual(d.half, 0, places=12)
        self.assertEqual(d.verdict(), "resolved: lower")

    def test_pairing_uses_common_seeds_in_order(self):
        self.assertEqual(paired_differences({1: 5, 2: 7, 4: 1}, {2: 3, 1: 1, 3: 9}), [4, 4])

    def test_verdicts(self):
        self.assertEqual(Interval([-0.02, 0.01, -0.01]).verdict(), "not resolved (interval contains 0)")
        self.assertEqual(Interval([0.02, 0.03, 0.025]).verdict(), "resolved: higher")
        self.assertEqual(Interval([0, 0, 0]).verdict(), "identical on every seed")

    def test_rounds_to_target(self):
        self.assertEqual(rounds_to_target([0.5, 0.89, 0.9, 0.95], 0.9), 3)
        self.assertIsNone(rounds_to_target([0.5, 0.89], 0.9))
        # two of three seeds reach it: mean 4, se 1, t(1) = 12.706
        self.assertEqual(rounds([3, None, 5], 3), "4.0 [-8.7, 16.7] (2/3)")
        self.assertEqual(rounds([None, None], 2), "— (0/2)")

    def test_test_set_standard_error(self):
        # 0.958 on 361 images: sqrt(0.958 · 0.042 / 361) = 0.010557
        self.assertAlmostEqual(test_set_standard_error(0.958), 0.0105576, places=6)

    def test_points_formatting(self):
        self.assertEqual(points(-0.0138), "−1.38")
        self.assertEqual(points(0.0055), "+0.55")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--target", type=float, default=0.90,
                        help="accuracy for the rounds-to-target column (default 0.90)")
    parser.add_argument("--self-test", action="store_true", help="run the unit tests and exit")
    args = parser.parse_args()
    if args.self_test:
        result = unittest.main(argv=[sys.argv[0]], exit=False, verbosity=1).result
        sys.exit(0 if result.wasSuccessful() else 1)
    if not args.folder:
        parser.error("a study output folder is required")
    print(report(args.folder, args.target))


if __name__ == "__main__":
    main()
