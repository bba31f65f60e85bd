"""Markdown tables from the JSON files written by `benchmarks/run.py`.

Usage:

    python benchmarks/report.py results-tensorflow-default.json [...]

Prints, per file and case, one table with the medians, the ratios to the
reference Keras layer (wall and process CPU time) and the goal verdicts, as
used in `docs/benchmarks.md`.
"""

import json
import sys

from run import GOALS
from run import VARIANTS


def _verdict(kind, name, ratio):
    variant_kind = VARIANTS[name][1]
    if variant_kind == "baseline" or ratio is None:
        return ""
    return "ok" if ratio <= GOALS[kind][variant_kind] else "**miss**"


def _cell(stats, kind, name):
    wall = stats[kind][name]
    cpu = stats[f"{kind}_cpu"][name]
    wall_verdict = _verdict(kind, name, wall["vs_ref"])
    cpu_verdict = _verdict(kind, name, cpu["vs_ref"])
    verdict = f"{wall_verdict} / {cpu_verdict}" if wall_verdict else ""
    return (
        f"{wall['median_ms']:.0f} | {wall['vs_ref']:.2f} | "
        f"{cpu['vs_ref']:.2f} | {verdict}"
    )


def table(report, case):
    stats = report["cases"][case]
    names = list(stats["train"])
    memory = stats.get("memory") or {}
    head = (
        "| variant | train ms | /ref | cpu /ref | goal (wall / cpu) "
        "| infer ms | /ref | cpu /ref | goal (wall / cpu) |"
    )
    rule = "|---|---:|---:|---:|---|---:|---:|---:|---|"
    if memory:
        head += " memory MiB | /ref | goal |"
        rule += "---:|---:|---|"
    rows = [head, rule]
    for name in names:
        row = (
            f"| {VARIANTS[name][0]} | {_cell(stats, 'train', name)} "
            f"| {_cell(stats, 'infer', name)} |"
        )
        if memory:
            probe = memory.get(name)
            if probe is None:
                row += " - | - | |"
            else:
                ratio = probe.get("vs_ref")
                row += (
                    f" {probe['growth_mib']:.0f} | {ratio:.2f} | "
                    f"{_verdict('memory', name, ratio)} |"
                )
        rows.append(row)
    shape = stats["shape"]
    title = (
        f"{report['backend']}, {case} (B={shape['B']} T={shape['T']} "
        f"D={shape['D']} U={shape['U']}), {stats['rounds']} rounds"
    )
    return title, "\n".join(rows)


def main(paths):
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        for case in report["cases"]:
            title, text = table(report, case)
            print(f"### {title}\n\n{text}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
