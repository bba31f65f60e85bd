"""Compares variants over several seeds: mean, spread and paired tests.

Reads the JSON files that the examples write (``char_lm.py`` one per seed,
e.g. ``--seed 3 --output-dir examples/output/seeds/3``): each holds
``results``, one entry per variant with ``variant``, ``seed`` and held-out
metrics, and ``baseline``, the unregularized variant's name. For every
metric (``val_bpc`` and ``test_bpc`` by default; any of ``val_loss``,
``val_perplexity``, ``val_accuracy``...) it prints the mean and standard
deviation over seeds of each variant and, for each regularizer, its paired
difference from the baseline over the seeds both were run with:

* the mean paired difference and its standard deviation;
* a two-sided paired t-test (t with n - 1 degrees of freedom);
* a two-sided exact sign test (how many seeds the regularizer wins; with
  n = 5 seeds its smallest possible p is 0.0625, with 8 seeds 0.0078);
* whether the mean gain exceeds the seed-to-seed spread, i.e. the larger
  of the two variants' standard deviations over seeds.

Lower is better for every metric except accuracies. ``--markdown`` prints
the table as Markdown, for ``docs/results.md``.

Usage::

    python examples/compare_seeds.py examples/output/seeds/*/*.json
"""

import argparse
import json
import math

import numpy as np

HIGHER_IS_BETTER = ("accuracy",)


def higher_is_better(metric):
    return any(word in metric for word in HIGHER_IS_BETTER)


def load_runs(paths):
    """`(runs, baseline)`: `runs[variant][seed]` is that run's result dict."""
    runs, baselines = {}, set()
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        baselines.add(report["baseline"])
        for result in report["results"]:
            seed = result.get("seed", report.get("seed"))
            seeds = runs.setdefault(result["variant"], {})
            if seed in seeds:
                raise ValueError(
                    f"Variant {result['variant']!r} appears twice with seed "
                    f"{seed} (second time in {path!r})."
                )
            seeds[seed] = result
    if len(baselines) != 1:
        raise ValueError(
            f"The files name different baselines: {sorted(baselines)}."
        )
    return runs, baselines.pop()


def mean_sd(values):
    """Mean and sample standard deviation (ddof=1; 0 for one value)."""
    values = np.asarray(values, "float64")
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return float(values.mean()), sd


def paired_t_test(baseline, other):
    """Two-sided paired t-test of `other - baseline`: `(t, p)`."""
    from scipy import stats

    d = np.asarray(other, "float64") - np.asarray(baseline, "float64")
    n = len(d)
    if n < 2:
        raise ValueError(f"A paired t-test needs 2 pairs or more, got {n}.")
    mean, sd = mean_sd(d)
    if sd == 0:
        return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / (sd / math.sqrt(n))
    return float(t), float(2 * stats.t.sf(abs(t), n - 1))


def sign_test(wins, losses):
    """Two-sided exact sign test (ties dropped): the p-value."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(runs, baseline, metric):
    """One row per variant: its spread and its paired test against baseline.

    A row is a dict with `variant`, `n`, `mean`, `sd` and, for the other
    variants, `pairs`, `gain` (mean improvement over the baseline, positive
    when better), `gain_sd`, `t`, `t_p`, `wins`, `losses`, `sign_p` and
    `exceeds_spread` (gain larger than both variants' seed-to-seed sd).
    """
    sign = 1.0 if higher_is_better(metric) else -1.0
    base = {s: r[metric] for s, r in runs[baseline].items()}
    base_mean, base_sd = mean_sd(list(base.values()))
    rows = [
        {"variant": baseline, "n": len(base), "mean": base_mean, "sd": base_sd}
    ]
    for variant, seeds in runs.items():
        if variant == baseline:
            continue
        values = {s: r[metric] for s, r in seeds.items()}
        mean, sd = mean_sd(list(values.values()))
        common = sorted(set(values) & set(base))
        a = [base[s] for s in common]
        b = [values[s] for s in common]
        gains = sign * (np.asarray(b) - np.asarray(a))
        gain, gain_sd = mean_sd(gains)
        t, t_p = paired_t_test(a, b)
        wins, losses = int((gains > 0).sum()), int((gains < 0).sum())
        rows.append(
            {
                "variant": variant,
                "n": len(values),
                "mean": mean,
                "sd": sd,
                "pairs": len(common),
                "gain": gain,
                "gain_sd": gain_sd,
                "t": t,
                "t_p": t_p,
                "wins": wins,
                "losses": losses,
                "sign_p": sign_test(wins, losses),
                "exceeds_spread": gain > max(sd, base_sd),
            }
        )
    return rows


def format_rows(rows, metric, markdown=False):
    header = [
        "variant",
        "seeds",
        f"{metric} mean ± sd",
        "gain over baseline ± sd",
        "paired t-test p",
        "wins (sign test p)",
        "gain > seed sd",
    ]
    body = []
    for r in rows:
        line = [r["variant"], str(r["n"]), f"{r['mean']:.3f} ± {r['sd']:.3f}"]
        if "gain" in r:
            line += [
                f"{r['gain']:+.3f} ± {r['gain_sd']:.3f}",
                f"{r['t_p']:.2g}",
                f"{r['wins']}/{r['pairs']} ({r['sign_p']:.2g})",
                "yes" if r["exceeds_spread"] else "no",
            ]
        else:
            line += ["", "", "", ""]
        body.append(line)
    if markdown:
        lines = ["| " + " | ".join(header) + " |"]
        lines.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
        lines += ["| " + " | ".join(line) + " |" for line in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(7)]
    lines = [
        "  ".join(
            cell.ljust(w) for cell, w in zip(row, widths, strict=True)
        ).rstrip()
        for row in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("json", nargs="+", help="one results file per seed")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=["val_bpc", "test_bpc"],
        help="result keys to compare (default: val_bpc test_bpc)",
    )
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    runs, baseline = load_runs(args.json)
    for metric in args.metrics:
        better = "higher" if higher_is_better(metric) else "lower"
        print(
            f"\n{metric} ({better} is better; gain = improvement over "
            f"{baseline}, paired by seed):\n"
            + format_rows(
                compare(runs, baseline, metric), metric, args.markdown
            )
        )


if __name__ == "__main__":
    main()
