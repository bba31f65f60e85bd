"""Markdown tables from the JSON files that `benchmarks/run.py` writes.

Usage:

    python benchmarks/report.py results-tensorflow-all.json [...]

Prints, per file: where and on what code it ran (the CPU: model, vendor,
family/model, cores, instruction sets; the load average at the start and
end); per case a speed table (wall-time medians, the ratios to the plain
Keras layer and to Keras's recurrent-dropout layer with their 95 %
intervals and goal verdicts, the CPU-time ratio as a diagnostic), a memory
table (tensor memory with its goal, peak RSS as information), whether the
intervals reached the target width, the goals met, missed and unresolved,
and notes on the references. When
a backend has the default case and the long or wide one (in one file or
several), it adds how each cost grows with T and U. Only the JSON is read:
no backend is imported.
"""

import argparse
import json
import sys

import harness
import machine
import tables

# How the Markdown tables write each verdict.
VERDICTS = {"met": "met", "missed": "**MISSED**", "unresolved": "*unresolved*"}


def _ratio_cell(entry, checks, measure, reference):
    """`1.02 [0.99, 1.05] (<=1.05 met)`: ratio, interval, verdict."""
    text = tables.ratio_text(entry, reference)
    verdict = tables.verdict_text(checks, measure, reference, VERDICTS)
    return f"{text} ({verdict})" if verdict and text != "-" else text


def _label(case, name):
    return case["variants"][name]["label"]


def speed_table(case):
    """Training and inference (those timed): medians, ratios, verdicts, CPU
    ratio."""
    goals = case.get("goals", {})
    header, rule = ["variant"], ["---"]
    if "train" in case:
        header += ["train ms", "/plain", "/rd", "cpu /plain"]
        rule += ["---:"] * 4
    if "infer" in case:
        header += ["infer ms", "/plain", "cpu /plain"]
        rule += ["---:"] * 3
    rows = [f"| {' | '.join(header)} |", f"|{'|'.join(rule)}|"]
    for name in case["variants"]:
        checks = goals.get(name, [])
        cells = [_label(case, name)]
        if "train" in case:
            train = case["train"][name]
            cells += [
                f"{train['median_ms']:.1f}",
                _ratio_cell(train, checks, "train", "plain"),
                _ratio_cell(train, checks, "train", "rd"),
                _ratio_cell(case["train_cpu"][name], [], "train", "plain"),
            ]
        if "infer" in case:
            infer = case["infer"][name]
            cells += [
                f"{infer['median_ms']:.1f}",
                _ratio_cell(infer, checks, "infer", "plain"),
                _ratio_cell(case["infer_cpu"][name], [], "infer", "plain"),
            ]
        rows.append(f"| {' | '.join(cells)} |")
    return "\n".join(rows)


def memory_table(case):
    """Tensor memory (with its goal; the range of TensorFlow's processes in
    parentheses) and peak RSS (information)."""
    memory = (case.get("memory") or {}).get("variants", {})
    rss = case.get("rss") or {}
    if not memory and not rss:
        return ""
    goals = case.get("goals", {})
    rows = [
        "| variant | tensor MiB | /plain | /rd | peak RSS MiB | /plain |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in case["variants"]:
        if name not in memory and name not in rss:
            continue
        tensor = memory.get(name, {})
        process = rss.get(name, {})
        checks = goals.get(name, [])
        mib, growth = tensor.get("mib"), process.get("growth_mib")
        mib_text = tables.format_mib(mib)
        if len(samples := tensor.get("samples_mib") or []) > 1:
            low, high = (
                tables.format_mib(min(samples)),
                tables.format_mib(max(samples)),
            )
            mib_text += f" ({low}-{high})"
        rows.append(
            f"| {_label(case, name)} "
            f"| {mib_text} "
            f"| {_ratio_cell(tensor, checks, 'memory', 'plain')} "
            f"| {_ratio_cell(tensor, [], 'memory', 'rd')} "
            f"| {tables.format_mib(growth)} "
            f"| {_ratio_cell(process, [], 'rss', 'plain')} |"
        )
    return "\n".join(rows)


def goals_text(case):
    """Whether the intervals reached their width, `Goals: 40 met, 2
    missed, 1 unresolved.`, one line per goal not met, and the notes."""
    goals = case.get("goals", {})
    met, missed, unresolved = harness.goal_summary(goals)
    lines = [
        f"Goals: {met} met, {missed} missed, {unresolved} unresolved (met: "
        "the interval's upper bound is at most the goal)."
    ]
    lines.extend(f"- {line}" for line in tables.interval_lines(case))
    lines.extend(f"- {text}" for text in tables.goal_lines(case))
    lines.extend(f"- note: {note}" for note in case.get("notes", []))
    return "\n".join(lines)


def _shape_text(case):
    shape = case["shape"]
    return f"B={shape['B']} T={shape['T']} D={shape['D']} U={shape['U']}"


def header(report):
    """Where and on what code a file was measured."""
    host = report.get("machine") or {}
    source = report.get("source", {})
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    gpus = "; ".join(
        f"{g['name']} (driver {g['driver']}, {g['memory']})"
        for g in host.get("gpus") or []
    )
    commit = source.get("commit") or "unknown"
    if source.get("dirty"):
        commit += " with uncommitted changes"
    load = (
        "load average "
        f"{machine.load_text(host.get('load_average_at_start'))} at start"
    )
    if "load_average_at_end" in host:
        load += f", {machine.load_text(host['load_average_at_end'])} at end"
    available = host.get("available_cpus")
    cpu = host.get("cpu")
    if available and isinstance(cpu, dict):
        if available != cpu.get("logical_cpus"):
            load += f"; {available} CPUs available to the process"
    lines = [
        f"- backend {report['backend']} on {report.get('device', 'cpu')}; "
        f"{versions}",
        f"- code: commit {commit}",
        f"- CPU: {machine.cpu_text(cpu)}",
        f"- {load}" + (f"; GPU {gpus}" if gpus else ""),
        f"- command: `{report.get('command')}`",
    ]
    return "\n".join(lines)


def case_section(report, case_name):
    case = report["cases"][case_name]
    jit = sorted(set(case.get("jit_compile", {}).values()))
    title = (
        f"### {report['backend']}, {case_name} ({_shape_text(case)}), "
        f"{case['rounds']} rounds, jit_compile {jit}"
    )
    if "load_average_at_start" in case:
        title += (
            "\n\nLoad average "
            f"{machine.load_text(case['load_average_at_start'])} at the start "
            "of the timing, "
            f"{machine.load_text(case.get('load_average_at_end'))} at its end. "
            "Ratios with their 95 % interval (`intervals.py`)."
        )
    parts = [title, speed_table(case)]
    table = memory_table(case)
    if table:
        measure = (case.get("memory") or {}).get("measure", "not measured")
        parts.append(f"Tensor memory: {measure}.\n\n{table}")
    parts.append(goals_text(case))
    return "\n\n".join(parts)


# What the growth tables show: (title, the variants' entries of a case, key).
_GROWTH_MEASURES = (
    ("train", lambda case: case.get("train", {}), "median_ms"),
    ("infer", lambda case: case.get("infer", {}), "median_ms"),
    (
        "tensor memory",
        lambda case: (case.get("memory") or {}).get("variants", {}),
        "mib",
    ),
)
_GROWTH_CASES = ("default", "long", "wide")


def _number(value):
    return "-" if value is None else f"{value:.2f}"


def growth_section(backend, by_case):
    """How each cost grows with T (long) and U (wide) on one backend: the
    ratios to the plain layer per case, and each figure divided by the same
    variant's figure in the default case."""
    base = by_case["default"]
    head = (
        "| variant | "
        + " | ".join(
            f"{title} default | long | wide" for title, _, _ in _GROWTH_MEASURES
        )
        + " |"
    )
    rule = "|---|" + "---:|" * (len(_GROWTH_CASES) * len(_GROWTH_MEASURES))
    ratio_rows, growth_rows = [head, rule], [head, rule]
    for name, record in base["variants"].items():
        ratios, growths = [], []
        for _, entries, key in _GROWTH_MEASURES:
            start = entries(base).get(name) or {}
            for case_name in _GROWTH_CASES:
                case = by_case.get(case_name)
                entry = (entries(case).get(name) if case else None) or {}
                ratios.append(_number(entry.get("vs_plain")))
                ok = entry.get(key) is not None and start.get(key)
                growths.append(_number(entry[key] / start[key] if ok else None))
        ratio_rows.append(f"| {record['label']} | {' | '.join(ratios)} |")
        growth_rows.append(f"| {record['label']} | {' | '.join(growths)} |")
    return (
        f"### {backend}: growth with T and U\n\n"
        "Ratio to the plain Keras layer of the same case:\n\n"
        + "\n".join(ratio_rows)
        + "\n\nEach figure divided by the same variant's in the default case "
        "(long: T x10; wide: U x4):\n\n" + "\n".join(growth_rows)
    )


def render(reports):
    """The Markdown of all `reports` (parsed JSON files)."""
    parts = []
    by_backend = {}
    for report in reports:
        parts.append(header(report))
        for case_name in report["cases"]:
            parts.append(case_section(report, case_name))
            cases = by_backend.setdefault(report["backend"], {})
            cases[case_name] = report["cases"][case_name]
    for backend, by_case in by_backend.items():
        if "default" in by_case and ({"long", "wide"} & set(by_case)):
            parts.append(growth_section(backend, by_case))
    return "\n\n".join(parts) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="JSON files of run.py")
    args = parser.parse_args(argv)
    reports = []
    for path in args.paths:
        with open(path) as f:
            reports.append(json.load(f))
    sys.stdout.write(render(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
