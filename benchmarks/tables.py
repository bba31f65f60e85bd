"""The plain-text tables of the benchmark (what `run.py` and `memory.py`
print) and the pieces `report.py` shares: a ratio with its interval, a
verdict, the lines that say whether the intervals reached their width and
which goals were not met. Reads evaluated cases only (`harness.evaluate`);
no backend.
"""

import harness


def _interval_text(interval, spec=".2f"):
    if interval is None:
        return "no interval"
    low, high = interval
    return f"[{low:{spec}}, {high:{spec}}]"


def goal_lines(case):
    """One line per goal not met, e.g. `MISSED GalLSTM(rd=.25): train /plain
    1.123 [1.105, 1.141] > 1.10` or `UNRESOLVED ...: ... straddles 1.05`."""
    lines = []
    for name, checks in case.get("goals", {}).items():
        label = case["variants"][name]["label"]
        for c in checks:
            outcome = harness.outcome(c)
            if outcome == "met":
                continue
            interval = c.get("interval")
            text = (
                f"{outcome.upper()} {label}: {c['measure']} /{c['reference']} "
                f"{c['ratio']:.3f}"
            )
            if interval is not None and interval[0] == interval[1]:
                text += " (exact)"
            elif "verdict" in c:
                text += f" {_interval_text(interval, '.3f')}"
            if outcome == "missed":
                text += f" > {c['limit']:.2f}"
            elif interval is None:
                text += f", goal {c['limit']:.2f}: too few samples"
            else:
                text += f" straddles {c['limit']:.2f}"
            lines.append(text)
    return lines


def ratio_text(entry, reference, spec=".2f"):
    """`1.02 [0.99, 1.05]`: a ratio and its interval; `1.02 (exact)` for a
    measure that repeats exactly; `-` without a ratio."""
    ratio = entry.get(f"vs_{reference}")
    if ratio is None:
        return "-"
    text = format(ratio, spec)
    interval = entry.get(f"vs_{reference}_interval")
    if interval is None:
        return text
    if interval[0] == interval[1] == ratio:
        return f"{text} (exact)"
    return f"{text} {_interval_text(interval, spec)}"


def format_mib(value):
    """MiB with three significant digits or so: 0.08, 55.8, 476."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


# How `verdict_text` writes each verdict in the text tables.
PLAIN_VERDICTS = {"met": "met", "missed": "MISSED", "unresolved": "UNRESOLVED"}


def verdict_text(checks, measure, reference, words=None):
    """`<=1.10 met` for the check of `measure` against `reference` (the
    verdict spelt as `words` says: `PLAIN_VERDICTS` by default)."""
    words = words or PLAIN_VERDICTS
    for check in checks:
        if check["measure"] == measure and check["reference"] == reference:
            return f"<={check['limit']:.2f} {words[harness.outcome(check)]}"
    return ""


STOPS = {
    "enough": "every goal ratio's interval narrower than the target",
    "time_budget": "the time budget (--time-budget) ran out",
    "rounds": "the maximal number of rounds (--rounds) ran",
}


def _estimator(summary):
    """What a file's timing ratios are: schema 4 on, medians of per-round
    ratios; schema 3, ratios of medians."""
    if "per-round" in summary.get("method", ""):
        return "median of the per-round ratios"
    return "ratio of medians, paired"


def interval_lines(case):
    """What the intervals are and whether they reached the target width:
    e.g. `intervals: 95 % ... over 12 rounds; stopped: ...` and either
    `every goal ratio's interval is narrower than 0.05 (widest 0.043: ...)`
    or `interval width NOT reached: 3 of 32 goal ratios ...`."""
    summary = case.get("intervals")
    if not summary:
        return []
    labels = {n: v["label"] for n, v in case["variants"].items()}

    def name(record):
        width = record["width"]
        return (
            f"{labels[record['variant']]} {record['measure']} "
            f"/{record['reference']} "
            + ("no interval" if width is None else f"width {width:.3f}")
        )

    stop = STOPS.get(case.get("stop"), case.get("stop") or "?")
    lines = [
        f"intervals: {100 * summary['confidence']:g} % percentile bootstrap "
        f"over {case['rounds']} rounds of the {_estimator(summary)} "
        f"({summary['resamples']} resamples, seed {summary['seed']}); "
        f"stopped: {stop}"
    ]
    target = summary["target_width"]
    if summary["reached"]:
        lines.append(
            f"every goal ratio's interval is narrower than {target:g} "
            f"(widest {name(summary['widest'])})"
        )
    else:
        wide = summary["too_wide"]
        lines.append(
            f"interval width NOT reached: {len(wide)} of "
            f"{summary['ratios']} goal ratios have an interval {target:g} "
            "or wider; more rounds needed. Widest: "
            + "; ".join(name(r) for r in wide[:5])
            + ("; ..." if len(wide) > 5 else "")
        )
    return lines


def format_case(case):
    """The plain-text tables of one evaluated case (what `run.py` prints)."""
    variants = case["variants"]
    goals = case.get("goals", {})
    width = max(len(v["label"]) for v in variants.values()) + 2
    cell = 20
    rows = []
    for kind, title in (
        ("train", "training step (train_on_batch)"),
        ("infer", "inference (predict_on_batch)"),
    ):
        if kind not in case:
            continue
        rows.append(
            f"-- {title}, wall time; plain = the Keras LSTM/GRU, rd = it "
            "with recurrent_dropout=.25; [low, high] = 95 % interval; "
            "cpu = process CPU time (diagnostic)"
        )
        rows.append(
            f"{'variant':<{width}}{'median ms':>10}{'IQR ms':>16}  "
            f"{'/plain':<{cell}}{'/rd':<{cell}}{'cpu/plain':<{cell}}"
            "goals (met: upper bound <= goal)"
        )
        for name, record in variants.items():
            s = case[kind][name]
            c = case[f"{kind}_cpu"][name]
            goal = "  ".join(
                f"/{ref} {text}"
                for ref in harness.REFERENCES
                if (text := verdict_text(goals.get(name, []), kind, ref))
            )
            iqr = f"{s['q1_ms']:.1f}-{s['q3_ms']:.1f}"
            rows.append(
                f"{record['label']:<{width}}{s['median_ms']:>10.1f}{iqr:>16}  "
                f"{ratio_text(s, 'plain'):<{cell}}"
                f"{ratio_text(s, 'rd'):<{cell}}"
                f"{ratio_text(c, 'plain'):<{cell}}{goal}"
            )
    memory = case.get("memory")
    if memory:
        rows.append(f"-- tensor memory of a training step: {memory['measure']}")
        rows.append(
            f"{'variant':<{width}}{'MiB':>10}  {'/plain':<{cell}}"
            f"{'/rd':<{cell}}goal"
        )
        for name, entry in memory["variants"].items():
            text = verdict_text(goals.get(name, []), "memory", "plain")
            rows.append(
                f"{variants[name]['label']:<{width}}"
                f"{format_mib(entry['mib']):>10}  "
                f"{ratio_text(entry, 'plain'):<{cell}}"
                f"{ratio_text(entry, 'rd'):<{cell}}"
                f"{'/plain ' + text if text else ''}"
            )
    rss = case.get("rss")
    if rss:
        rows.append(
            "-- peak-RSS growth of a fresh process (information, no goal)"
        )
        rows.append(f"{'variant':<{width}}{'MiB':>10}  /plain")
        for name, entry in rss.items():
            rows.append(
                f"{variants[name]['label']:<{width}}"
                f"{format_mib(entry['growth_mib']):>10}  "
                f"{ratio_text(entry, 'plain')}"
            )
    rows.extend(f"-- {line}" for line in interval_lines(case))
    met, missed, unresolved = harness.goal_summary(goals)
    rows.append(
        f"-- goals: {met} met, {missed} missed, {unresolved} unresolved "
        "(met: the interval's upper bound is at most the goal; missed: its "
        "lower bound is above it)"
    )
    rows.extend(f"   {text}" for text in goal_lines(case))
    rows.extend(f"-- note: {note}" for note in case.get("notes", []))
    return "\n".join(rows)
