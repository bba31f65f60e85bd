"""The benchmark harness: timing, summaries, ratios with their intervals,
goal verdicts, text tables, JSON.

Backend-independent: this module never imports Keras or a backend at
module level, so that `benchmarks/report.py` and the tests use it without
one. What is compared (cases, variants, goals) lives in `variants.py`; the
intervals, the verdict rule and the stop rule in `intervals.py`; the
machine in `machine.py`; `run.py` puts them together.

Timing is round-robin: every workload is warmed up first, then each round
times one training step of every workload, then one inference sample of
every workload, the order rotating from round to round, so that a slow
phase of a shared machine hits all workloads alike. Rounds are added until
every ratio that has a goal has an interval narrower than the target width
(after `min_rounds`), or the rounds or the time budget run out.
"""

import json
import os
import statistics
import time

import intervals

TIMED = ("train", "infer", "train_cpu", "infer_cpu")
REFERENCES = ("plain", "rd")


def summarize(samples):
    """Median, quartiles, min, max (ms), count, and every sample (ms, in
    round order) of samples in seconds."""
    in_order = [1000.0 * s for s in samples]
    ms = sorted(in_order)
    if len(ms) >= 2:
        q1, _, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    else:
        q1 = q3 = ms[0]
    return {
        "median_ms": statistics.median(ms),
        "q1_ms": q1,
        "q3_ms": q3,
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "n": len(ms),
        "samples_ms": in_order,
    }


def time_round_robin(
    workloads,
    rounds,
    predict_repeats,
    time_budget,
    log,
    min_rounds=3,
    enough=None,
    clock=time.perf_counter,
    cpu_clock=time.process_time,
    measures=("train", "infer"),
):
    """Times warmed-up workloads round-robin until enough rounds.

    Args:
        workloads: dict name -> `(train, infer)`, two callables that return
            only once the device has finished (a Python float, NumPy).
        rounds: maximal number of rounds.
        predict_repeats: inference calls averaged into one sample.
        time_budget: seconds after which no round is added once
            `min_rounds` rounds have run.
        log: a function of one string.
        min_rounds: rounds run whatever `enough` and the budget say.
        enough: `None`, or a function of the samples so far (`{kind: {name:
            [seconds]}}`, kinds `TIMED`) that answers whether they suffice
            (`intervals.WidthStop`); asked after every round from
            `min_rounds` on.
        clock, cpu_clock: the wall and process-CPU clocks (seconds).
        measures: what is timed, `"train"` and/or `"infer"`.

    Returns:
        `{"rounds": n, "stop": why, "train"/"infer"/"train_cpu"/
        "infer_cpu": {name: summary}}` (the kinds of `measures`): wall time
        and process CPU time (all threads) per call; `stop` is `"enough"`
        (`enough` said so), `"time_budget"` or `"rounds"` (the maximum
        ran).
    """
    names = list(workloads)
    kinds = [k for k in TIMED if k.removesuffix("_cpu") in measures]
    samples = {kind: {name: [] for name in names} for kind in kinds}

    def measure(kind, name, call, repeats):
        t0, c0 = clock(), cpu_clock()
        for _ in range(repeats):
            call()
        samples[kind][name].append((clock() - t0) / repeats)
        samples[f"{kind}_cpu"][name].append((cpu_clock() - c0) / repeats)

    start = clock()
    done = 0
    stop = "rounds"
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        if "train" in measures:
            for name in order:
                measure("train", name, workloads[name][0], 1)
        if "infer" in measures:
            for name in order:
                measure("infer", name, workloads[name][1], predict_repeats)
        done += 1
        if done < min_rounds:
            continue
        if enough is not None and enough(samples):
            stop = "enough"
            break
        if done < rounds and clock() - start > time_budget:
            stop = "time_budget"
            log(f"  time budget reached after {done} rounds")
            break
    log(f"  {done} timed rounds in {clock() - start:.1f}s")
    result = {"rounds": done, "stop": stop}
    for kind in kinds:
        result[kind] = {n: summarize(s) for n, s in samples[kind].items()}
    return result


# ---------------------------------------------------------- ratios, goals
def _ratio(value, reference):
    if value is None or not reference:
        return None
    return value / reference


def _add_ratios_to(
    table, variants, key, samples_key=None, exact=False, rounds=False
):
    """Adds `vs_plain`, `vs_rd` and their intervals to each entry of
    `table` (`{name: entry}`).

    With `rounds` (timing: `entry[samples_key]` are rounds, the same for
    every variant) the ratio is the median of the per-round ratios and its
    interval bootstraps it (`intervals.paired_ratio`). Otherwise, and for
    series without common rounds, the ratio divides `entry[key]` and the
    interval bootstraps the medians of `entry[samples_key]`; with `exact`
    (a measure that repeats exactly) an entry without samples gets the
    interval `[ratio, ratio]`; otherwise none (`None`).
    """
    medians = {}
    if samples_key:
        medians = intervals.resampled_medians(
            {name: entry.get(samples_key) for name, entry in table.items()}
        )
    for name, entry in table.items():
        for reference in REFERENCES:
            other = variants[name][reference]
            value = (table.get(other) or {}).get(key)
            ratio = _ratio(entry.get(key), value)
            interval = None
            if rounds and ratio is not None:
                paired, interval = intervals.paired_ratio(
                    entry.get(samples_key),
                    (table.get(other) or {}).get(samples_key),
                )
                if paired is not None:
                    entry[f"vs_{reference}"] = paired
                    entry[f"vs_{reference}_interval"] = interval
                    continue
            if ratio is not None:
                if name in medians or other in medians:
                    interval = intervals.ratio_interval(
                        medians.get(name), medians.get(other)
                    )
                elif exact:
                    interval = [ratio, ratio]
            entry[f"vs_{reference}"] = ratio
            entry[f"vs_{reference}_interval"] = interval


def add_ratios(case, variants):
    """Adds each variant's ratios to its two references, with intervals, in
    place.

    `case` holds the timing summaries (`train`, ... keyed by variant), and
    optionally `memory` (`{"variants": {name: {"mib": ...}}}`) and `rss`
    (`{name: {"growth_mib": ...}}`); `variants` maps each name to its
    record (`describe()` of `variants.Variant`: `plain`, `rd`). Timing
    ratios are medians of the per-round ratios of `samples_ms` (`vs_plain`,
    `vs_rd`; their intervals `vs_plain_interval`, `vs_rd_interval`
    bootstrap the rounds; `intervals.py`), or divide the medians where a
    variant has no samples, and minima divide minima (`min_vs_plain`, a
    diagnostic without an interval: a bootstrap does not estimate the
    spread of a minimum). The
    memory ratios' intervals bootstrap the processes of `samples_mib`
    (TensorFlow) or are exact where the measure repeats exactly (JAX,
    PyTorch: `memory["repeats_exactly"]`). A ratio whose reference was not
    measured is `None`, as is an interval without samples.
    """
    for kind in TIMED:
        stats = case.get(kind, {})
        _add_ratios_to(stats, variants, "median_ms", "samples_ms", rounds=True)
        for name, entry in stats.items():
            plain = stats.get(variants[name]["plain"])
            entry["min_vs_plain"] = _ratio(
                entry["min_ms"], plain and plain["min_ms"]
            )
    memory = case.get("memory")
    if memory:
        _add_ratios_to(
            memory["variants"],
            variants,
            "mib",
            "samples_mib",
            exact=bool(memory.get("repeats_exactly")),
        )
    if case.get("rss"):
        _add_ratios_to(case["rss"], variants, "growth_mib", "samples_mib")


def goal_ratios(variants, goals, measures=("train", "infer")):
    """The timed ratios that have a goal: `(measure, name, reference
    name)` for every variant with a goal class, every goal of `measures`
    with a limit for that class, and every reference among `variants`."""
    ratios = []
    for name, record in variants.items():
        goal_class = record.get("goal_class")
        if goal_class is None:
            continue
        for (measure, reference), limits in goals.items():
            other = record[reference]
            if measure in measures and goal_class in limits:
                if other in variants:
                    ratios.append((measure, name, other))
    return ratios


def check_goals(case, variants, goals):
    """The goal verdicts of every variant that has a goal class.

    Args:
        case: a case with ratios (see `add_ratios`).
        variants: dict name -> record (`goal_class`, ...).
        goals: dict `(measure, reference) -> {goal class: limit}`, where
            measure is `train`, `infer` (median wall time) or `memory`
            (the tensor-memory measure) and reference `plain` or `rd`.

    Returns:
        dict name -> list of `{"measure", "reference", "ratio",
        "interval", "width", "limit", "verdict", "met"}`, one per goal
        whose ratio was measured; `verdict` follows `intervals.verdict`
        (`met` only when the interval's upper bound is at most the limit)
        and `met` is `verdict == "met"`.
    """
    verdicts = {}
    for name, record in variants.items():
        goal_class = record.get("goal_class")
        if goal_class is None:
            continue
        checks = []
        for (measure, reference), limits in goals.items():
            if measure == "memory":
                table = (case.get("memory") or {}).get("variants", {})
            else:
                table = case.get(measure, {})
            entry = table.get(name, {})
            ratio = entry.get(f"vs_{reference}")
            if ratio is None or goal_class not in limits:
                continue
            limit = limits[goal_class]
            interval = entry.get(f"vs_{reference}_interval")
            outcome = intervals.verdict(interval, limit)
            checks.append(
                {
                    "measure": measure,
                    "reference": reference,
                    "ratio": ratio,
                    "interval": interval,
                    "width": intervals.width(interval),
                    "limit": limit,
                    "verdict": outcome,
                    "met": outcome == "met",
                }
            )
        verdicts[name] = checks
    return verdicts


def outcome(check):
    """A check's verdict; files of schema 2 only have `met`."""
    return check.get("verdict") or ("met" if check["met"] else "missed")


def goal_summary(verdicts):
    """`(met, missed, unresolved)`: counts over every check of
    `check_goals`."""
    outcomes = [outcome(c) for v in verdicts.values() for c in v]
    return tuple(outcomes.count(o) for o in ("met", "missed", "unresolved"))


def interval_summary(case, variants, goals, target_width):
    """How precise the timed goal ratios came out: `{"method",
    "confidence", "resamples", "seed", "target_width", "ratios",
    "reached", "widest", "too_wide"}`, where `too_wide` lists every goal
    ratio (`variant`, `measure`, `reference`, `width`, widest first) whose
    interval is not narrower than `target_width`, and `widest` the widest
    of all; `None` for a case without timing."""
    measured = tuple(kind for kind in ("train", "infer") if kind in case)
    ratios = goal_ratios(variants, goals, measured)
    if not ratios:
        return None
    widths = {}
    for measure, name, other in ratios:
        reference = next(r for r in REFERENCES if variants[name][r] == other)
        entry = case[measure].get(name, {})
        interval = entry.get(f"vs_{reference}_interval")
        widths[name, measure, reference] = intervals.width(interval)

    def record(key):
        name, measure, reference = key
        return {
            "variant": name,
            "measure": measure,
            "reference": reference,
            "width": widths[key],
        }

    too_wide = intervals.too_wide(widths, target_width)
    known = [k for k, w in widths.items() if w is not None]
    widest = too_wide[0] if too_wide else max(known, key=widths.get)
    return {
        "method": "percentile bootstrap over the timed rounds of the "
        "median of the per-round ratios",
        "confidence": intervals.CONFIDENCE,
        "resamples": intervals.RESAMPLES,
        "seed": intervals.SEED,
        "target_width": target_width,
        "ratios": len(widths),
        "reached": not too_wide,
        "widest": record(widest),
        "too_wide": [record(k) for k in too_wide],
    }


def reference_notes(case, variants):
    """Warnings about the references, e.g. a plain layer slower than rd.

    On PyTorch Keras's plain LSTM runs a fused CPU fallback that trains far
    slower than its own recurrent-dropout loop at long T; then `/plain`
    flatters every training ratio and `/rd` is the fair reference.
    """
    notes = []
    train = case.get("train", {})
    families = {(v["plain"], v["rd"]) for v in variants.values()}
    for plain, rd in sorted(families):
        if plain in train and rd in train:
            factor = train[plain]["median_ms"] / train[rd]["median_ms"]
            if factor > 1.0:
                notes.append(
                    f"{variants[plain]['label']} trains {factor:.1f}x slower "
                    f"than {variants[rd]['label']} here: its training ratios "
                    "(/plain) flatter the other variants; /rd is the fair "
                    "training reference."
                )
    return notes


def evaluate(case, variants, goals, target_width=0.05):
    """Adds ratios with intervals, goal verdicts, the interval summary
    (`intervals`, against `target_width`) and notes to a measured case, in
    place."""
    add_ratios(case, variants)
    case["goals"] = check_goals(case, variants, goals)
    summary = interval_summary(case, variants, goals, target_width)
    if summary is not None:
        case["intervals"] = summary
    case["notes"] = reference_notes(case, variants)
    return case


# --------------------------------------------------------------------- JSON
def write_json(path, report):
    """Writes `report` to `path` (atomically: a partial run never truncates
    an earlier complete file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, path)
