"""The benchmark harness: timing, summaries, ratios, goals, tables, JSON.

Backend-independent: this module never imports Keras or a backend at
module level, so that `benchmarks/report.py` and the tests use it without
one. What is compared (cases, variants, goals) lives in `variants.py`;
`run.py` puts the two together.

Timing is round-robin: every workload is warmed up first, then each round
times one training step of every workload, then one inference sample of
every workload, the order rotating from round to round, so that a slow
phase of a shared machine hits all workloads alike.
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import time

TIMED = ("train", "infer", "train_cpu", "infer_cpu")


def summarize(samples):
    """Median, quartiles, min, max (ms) and count of samples in seconds."""
    ms = sorted(1000.0 * s for s in samples)
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
    }


def time_round_robin(
    workloads, rounds, predict_repeats, time_budget, log, min_rounds=3
):
    """Times warmed-up workloads round-robin.

    Args:
        workloads: dict name -> `(train, infer)`, two callables that return
            only once the device has finished (a Python float, NumPy).
        rounds: maximal number of rounds.
        predict_repeats: inference calls averaged into one sample.
        time_budget: seconds after which no round is added once
            `min_rounds` rounds have run.
        log: a function of one string.
        min_rounds: rounds run whatever the budget.

    Returns:
        `{"rounds": n, "train"/"infer"/"train_cpu"/"infer_cpu": {name:
        summary}}`: wall time (`time.perf_counter`) and process CPU time
        (`time.process_time`, all threads) per call.
    """
    names = list(workloads)
    samples = {kind: {name: [] for name in names} for kind in TIMED}

    def measure(kind, name, call, repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            call()
        samples[kind][name].append((time.perf_counter() - t0) / repeats)
        samples[f"{kind}_cpu"][name].append(
            (time.process_time() - c0) / repeats
        )

    start = time.perf_counter()
    done = 0
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            measure("train", name, workloads[name][0], 1)
        for name in order:
            measure("infer", name, workloads[name][1], predict_repeats)
        done += 1
        if done >= min_rounds and time.perf_counter() - start > time_budget:
            log(f"  time budget reached after {done} rounds")
            break
    log(f"  {done} timed rounds in {time.perf_counter() - start:.1f}s")
    result = {"rounds": done}
    for kind in TIMED:
        result[kind] = {n: summarize(s) for n, s in samples[kind].items()}
    return result


# ------------------------------------------------------------ ratios, goals
def _ratio(value, reference):
    if value is None or not reference:
        return None
    return value / reference


def add_ratios(case, variants):
    """Adds each variant's ratios to its two references, in place.

    `case` holds the timing summaries (`train`, ... keyed by variant), and
    optionally `memory` (`{"variants": {name: {"mib": ...}}}`) and `rss`
    (`{name: {"growth_mib": ...}}`); `variants` maps each name to its
    record (`describe()` of `variants.Variant`: `plain`, `rd`). Timing
    ratios divide medians (`vs_plain`, `vs_rd`) and minima
    (`min_vs_plain`); a ratio whose reference was not measured is `None`.
    """
    for kind in TIMED:
        stats = case.get(kind, {})
        for name, entry in stats.items():
            plain = stats.get(variants[name]["plain"])
            rd = stats.get(variants[name]["rd"])
            entry["vs_plain"] = _ratio(
                entry["median_ms"], plain and plain["median_ms"]
            )
            entry["vs_rd"] = _ratio(entry["median_ms"], rd and rd["median_ms"])
            entry["min_vs_plain"] = _ratio(
                entry["min_ms"], plain and plain["min_ms"]
            )
    tables = []
    if case.get("memory"):
        tables.append((case["memory"]["variants"], "mib"))
    if case.get("rss"):
        tables.append((case["rss"], "growth_mib"))
    for table, key in tables:
        for name, entry in table.items():
            plain = table.get(variants[name]["plain"], {}).get(key)
            rd = table.get(variants[name]["rd"], {}).get(key)
            entry["vs_plain"] = _ratio(entry[key], plain)
            entry["vs_rd"] = _ratio(entry[key], rd)


def check_goals(case, variants, goals):
    """The goal verdicts of every variant that has a goal class.

    Args:
        case: a case with ratios (see `add_ratios`).
        variants: dict name -> record (`goal_class`, ...).
        goals: dict `(measure, reference) -> {goal class: limit}`, where
            measure is `train`, `infer` (median wall time) or `memory`
            (the tensor-memory measure) and reference `plain` or `rd`.

    Returns:
        dict name -> list of `{"measure", "reference", "ratio", "limit",
        "met"}`, one per goal whose ratio was measured.
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
            ratio = table.get(name, {}).get(f"vs_{reference}")
            if ratio is None or goal_class not in limits:
                continue
            limit = limits[goal_class]
            checks.append(
                {
                    "measure": measure,
                    "reference": reference,
                    "ratio": ratio,
                    "limit": limit,
                    "met": ratio <= limit,
                }
            )
        verdicts[name] = checks
    return verdicts


def missed_goals(case):
    """One line per missed goal of an evaluated case, e.g.
    `GalLSTM(rd=.25): train /plain 1.123 > 1.10`."""
    lines = []
    for name, checks in case.get("goals", {}).items():
        label = case["variants"][name]["label"]
        lines.extend(
            f"{label}: {c['measure']} /{c['reference']} {c['ratio']:.3f} > "
            f"{c['limit']:.2f}"
            for c in checks
            if not c["met"]
        )
    return lines


def goal_summary(verdicts):
    """`(met, missed)`: counts over every check of `check_goals`."""
    checks = [c for v in verdicts.values() for c in v]
    met = sum(c["met"] for c in checks)
    return met, len(checks) - met


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


def evaluate(case, variants, goals):
    """Adds ratios, goal verdicts and notes to a measured case, in place."""
    add_ratios(case, variants)
    case["goals"] = check_goals(case, variants, goals)
    case["notes"] = reference_notes(case, variants)
    return case


# ------------------------------------------------------------------- tables
def _fmt(value, spec=".2f"):
    return "-" if value is None else format(value, spec)


def format_mib(value):
    """MiB with three significant digits or so: 0.08, 55.8, 476."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def verdict_text(checks, measure, reference, missed="MISSED"):
    """`<=1.10 met` for the check of `measure` against `reference`."""
    for check in checks:
        if check["measure"] == measure and check["reference"] == reference:
            outcome = "met" if check["met"] else missed
            return f"<={check['limit']:.2f} {outcome}"
    return ""


def format_case(case):
    """The plain-text tables of one evaluated case (what `run.py` prints)."""
    variants = case["variants"]
    goals = case.get("goals", {})
    width = max(len(v["label"]) for v in variants.values()) + 2
    rows = []
    for kind, title in (
        ("train", "training step (train_on_batch)"),
        ("infer", "inference (predict_on_batch)"),
    ):
        if kind not in case:
            continue
        rows.append(
            f"-- {title}, wall time; plain = the Keras LSTM/GRU, rd = it "
            "with recurrent_dropout=.25; cpu = process CPU time (diagnostic)"
        )
        rows.append(
            f"{'variant':<{width}}{'median ms':>10}{'IQR ms':>16}"
            f"{'/plain':>8}{'/rd':>7}{'min/min':>8}{'cpu/plain':>10}"
            "  goals (wall time)"
        )
        for name, record in variants.items():
            s = case[kind][name]
            c = case[f"{kind}_cpu"][name]
            verdicts = [
                verdict_text(goals.get(name, []), kind, ref)
                for ref in ("plain", "rd")
            ]
            goal = "  ".join(
                f"/{ref} {text}"
                for ref, text in zip(("plain", "rd"), verdicts, strict=True)
                if text
            )
            iqr = f"{s['q1_ms']:.1f}-{s['q3_ms']:.1f}"
            rows.append(
                f"{record['label']:<{width}}{s['median_ms']:>10.1f}{iqr:>16}"
                f"{_fmt(s['vs_plain']):>8}{_fmt(s['vs_rd']):>7}"
                f"{_fmt(s['min_vs_plain']):>8}{_fmt(c['vs_plain']):>10}"
                f"  {goal}"
            )
    memory = case.get("memory")
    if memory:
        rows.append(f"-- tensor memory of a training step: {memory['measure']}")
        rows.append(f"{'variant':<{width}}{'MiB':>10}{'/plain':>8}{'/rd':>7}")
        for name, entry in memory["variants"].items():
            text = verdict_text(goals.get(name, []), "memory", "plain")
            rows.append(
                f"{variants[name]['label']:<{width}}"
                f"{format_mib(entry['mib']):>10}"
                f"{_fmt(entry['vs_plain']):>8}{_fmt(entry['vs_rd']):>7}"
                f"  {'/plain ' + text if text else ''}"
            )
    rss = case.get("rss")
    if rss:
        rows.append(
            "-- peak-RSS growth of a fresh process (information, no goal)"
        )
        rows.append(f"{'variant':<{width}}{'MiB':>10}{'/plain':>8}")
        for name, entry in rss.items():
            rows.append(
                f"{variants[name]['label']:<{width}}"
                f"{format_mib(entry['growth_mib']):>10}"
                f"{_fmt(entry['vs_plain']):>8}"
            )
    met, missed = goal_summary(goals)
    rows.append(f"-- goals: {met} met, {missed} missed")
    rows.extend(f"   MISSED {text}" for text in missed_goals(case))
    rows.extend(f"-- note: {note}" for note in case.get("notes", []))
    return "\n".join(rows)


# ------------------------------------------------------ machine, provenance
def _command_output(command, cwd=None):
    """The stripped stdout of `command`, or `None` if it cannot run."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def gpu_info():
    """The NVIDIA GPUs `nvidia-smi` lists: name, driver, memory; or []."""
    out = _command_output(
        [
            "nvidia-smi",
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader",
        ]
    )
    gpus = []
    for line in (out or "").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3:
            gpus.append(
                {"name": fields[0], "driver": fields[1], "memory": fields[2]}
            )
    return gpus


def machine_info():
    """CPU model, core count, Python, platform, load and GPUs."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": load,
        "gpus": gpu_info(),
    }


def source_info(module_file):
    """Where the measured code came from: path, git commit, dirty flag."""
    folder = os.path.dirname(os.path.abspath(module_file))
    commit = _command_output(["git", "rev-parse", "HEAD"], cwd=folder)
    status = _command_output(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder
    )
    return {
        "path": folder,
        "commit": commit,
        "dirty": bool(status) if status is not None else None,
    }


def write_json(path, report):
    """Writes `report` to `path` (atomically: a partial run never truncates
    an earlier complete file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
    os.replace(tmp, path)
