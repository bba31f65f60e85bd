"""The benchmark harness computes the ratios, intervals and verdicts it
reports.

`benchmarks/` measures speed and memory against Keras's layers; these tests
check its logic on made-up measurements (no timing, no backend work): each
variant is divided by the right reference, each goal uses its limit, the
bootstrap interval of a ratio covers the true ratio and narrows with more
rounds, a goal is met only when the interval's upper bound is at most the
goal, the round-robin rotates and stops once the intervals are narrow
enough (never before `--min-rounds`; with a fake clock), the CPU is read
from `/proc/cpuinfo`, the Markdown report shows the intervals, the verdicts,
the CPU and the growth with T, and `gpu.sh` takes the right path with and
without a GPU (with stand-ins for `nvidia-smi` and Python).
"""

import importlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

# Its module-scoped fixtures run once: every test of this file runs in the
# same worker process (`pytest -n`, `--dist loadgroup`).
pytestmark = pytest.mark.xdist_group("benchmarks")

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
MODULES = (
    "intervals",
    "machine",
    "variants",
    "harness",
    "tables",
    "memory",
    "report",
    "run",
)


@pytest.fixture(scope="module")
def bench():
    """The benchmark modules, imported as `run.py` imports them."""
    saved_path = list(sys.path)
    saved = {name: sys.modules.pop(name, None) for name in MODULES}
    sys.path.insert(0, str(BENCHMARKS))
    try:
        modules = {name: importlib.import_module(name) for name in MODULES}
        yield type("Bench", (), modules)
    finally:
        sys.path[:] = saved_path
        for name, module in saved.items():
            sys.modules.pop(name, None)
            if module is not None:
                sys.modules[name] = module


def _timing(median, spread=0.0):
    """A timing summary of five rounds around `median` (ms): every round
    the same with `spread` 0, so that every ratio's interval is exact."""
    samples = [median * (1.0 + spread * k) for k in (-2, 1, 0, 2, -1)]
    return {
        "median_ms": median,
        "min_ms": min(samples),
        "q1_ms": median,
        "q3_ms": median,
        "samples_ms": samples,
    }


def _case(bench, train, infer=None, memory=None, rss=None):
    """A measured case from medians (ms) and MiB, keyed by variant; every
    round alike (exact intervals), memory a measure that repeats
    exactly."""
    names = list(train)
    infer = infer or dict.fromkeys(names, 10.0)
    case = {
        "shape": {"B": 64, "T": 100, "D": 64, "U": 256},
        "rounds": 3,
        "variants": {n: bench.variants.VARIANTS[n].describe() for n in names},
        "train": {n: _timing(v) for n, v in train.items()},
        "infer": {n: _timing(v) for n, v in infer.items()},
        "train_cpu": {n: _timing(v) for n, v in train.items()},
        "infer_cpu": {n: _timing(v) for n, v in infer.items()},
    }
    if memory:
        case["memory"] = {
            "measure": "test",
            "repeats_exactly": True,
            "variants": {n: {"mib": v} for n, v in memory.items()},
        }
    if rss:
        case["rss"] = {n: {"growth_mib": v} for n, v in rss.items()}
    return bench.harness.evaluate(case, case["variants"], bench.variants.GOALS)


def _verdicts(case, name):
    return {
        (c["measure"], c["reference"]): (round(c["ratio"], 6), c["met"])
        for c in case["goals"][name]
    }


def test_ratios_divide_by_the_plain_and_rd_layer_of_the_same_family(bench):
    case = _case(
        bench,
        train={
            "lstm": 100.0,
            "lstm_rd": 150.0,
            "gal": 120.0,
            "gru": 80.0,
            "gru_rd": 160.0,
            "layer_gal_gru": 40.0,
        },
        memory={
            "lstm": 50.0,
            "lstm_rd": 100.0,
            "gal": 55.0,
            "gru": 40.0,
            "gru_rd": 80.0,
            "layer_gal_gru": 30.0,
        },
        rss={"lstm": 200.0, "gal": 300.0},
    )
    assert case["train"]["gal"]["vs_plain"] == pytest.approx(1.2)
    assert case["train"]["gal"]["vs_rd"] == pytest.approx(0.8)
    assert case["train"]["gal"]["min_vs_plain"] == pytest.approx(1.2)
    assert case["train"]["gal"]["vs_plain_interval"] == pytest.approx(
        [1.2, 1.2]
    )
    assert case["train"]["layer_gal_gru"]["vs_plain"] == pytest.approx(0.5)
    assert case["train"]["layer_gal_gru"]["vs_rd"] == pytest.approx(0.25)
    assert case["train_cpu"]["gal"]["vs_plain"] == pytest.approx(1.2)
    memory = case["memory"]["variants"]
    assert memory["gal"]["vs_plain"] == pytest.approx(1.1)
    assert memory["layer_gal_gru"]["vs_plain"] == pytest.approx(0.75)
    assert memory["layer_gal_gru"]["vs_rd"] == pytest.approx(0.375)
    assert case["rss"]["gal"]["vs_plain"] == pytest.approx(1.5)
    assert case["rss"]["gal"]["vs_rd"] is None  # lstm_rd not probed


def test_each_goal_uses_the_limit_of_its_goal_class(bench):
    case = _case(
        bench,
        train={
            "lstm": 100.0,
            "lstm_rd": 112.0,
            "gal": 112.0,
            "zoneout": 112.0,
            "semeniuta": 113.0,
        },
        infer={
            "lstm": 100.0,
            "lstm_rd": 100.0,
            "gal": 108.0,
            "zoneout": 108.0,
            "semeniuta": 100.0,
        },
        memory={"lstm": 100.0, "gal": 110.0, "zoneout": 111.0},
    )
    assert _verdicts(case, "gal") == {
        ("train", "plain"): (1.12, False),  # limit 1.10
        ("train", "rd"): (1.0, True),  # limit 1.00, inclusive
        ("infer", "plain"): (1.08, False),  # limit 1.05
        ("memory", "plain"): (1.1, True),  # limit 1.10, inclusive
    }
    assert _verdicts(case, "zoneout") == {
        ("train", "plain"): (1.12, True),  # limit 1.15
        ("train", "rd"): (1.0, True),
        ("infer", "plain"): (1.08, True),  # limit 1.10
        ("memory", "plain"): (1.11, False),  # limit 1.10
    }
    # Slower than Keras's recurrent-dropout layer misses even within 1.15.
    assert _verdicts(case, "semeniuta")[("train", "rd")][1] is False
    # The Keras references are measured, not judged.
    assert "lstm" not in case["goals"] and "lstm_rd" not in case["goals"]
    assert bench.harness.goal_summary(case["goals"]) == (6, 5, 0)


def test_a_reference_not_measured_gives_no_ratio_and_no_verdict(bench):
    case = _case(bench, train={"lstm": 100.0, "gal": 105.0})
    assert case["train"]["gal"]["vs_rd"] is None
    assert set(_verdicts(case, "gal")) == {
        ("train", "plain"),
        ("infer", "plain"),
    }


def test_a_plain_layer_slower_than_rd_gets_a_note(bench):
    # PyTorch at T=1000: Keras's fused CPU fallback trains ~30x slower.
    slow = _case(
        bench, train={"lstm": 120000.0, "lstm_rd": 4000.0, "gal": 3700.0}
    )
    assert len(slow["notes"]) == 1
    assert "keras LSTM trains 30.0x slower" in slow["notes"][0]
    assert "/rd is the fair training reference" in slow["notes"][0]
    fast = _case(bench, train={"lstm": 100.0, "lstm_rd": 130.0, "gal": 99.0})
    assert fast["notes"] == []


def test_select_adds_both_references_and_names_unknown_variants(bench):
    select = bench.variants.select
    assert select("layer_zoneout_gru") == ["gru", "gru_rd", "layer_zoneout_gru"]
    layers = select("layers")
    assert [n for n in layers if n.startswith("layer_")] == [
        "layer_gal",
        "layer_semeniuta",
        "layer_zoneout",
        "layer_weight_drop",
        "layer_gal_gru",
        "layer_semeniuta_gru",
        "layer_zoneout_gru",
    ]
    assert {"lstm", "lstm_rd", "gru", "gru_rd"} <= set(layers)
    assert select("all") == list(bench.variants.VARIANTS)
    with pytest.raises(ValueError, match="'nope'"):
        select("gal,nope")


def test_variants_build_the_layer_and_rates_their_labels_name(bench):
    import keras

    import keras_recdrop

    variants = bench.variants.VARIANTS
    gal = variants["gal"].build(8, 2)
    assert isinstance(gal, keras_recdrop.RNN)
    assert isinstance(gal.cell, keras_recdrop.GalLSTMCell)
    assert gal.cell.recurrent_dropout == 0.25
    assert variants["gal"].label == "RNN(GalLSTMCell rd=.25)"
    layer = variants["layer_zoneout"].build(8, 1)
    assert type(layer) is keras_recdrop.ZoneoutLSTM
    assert (layer.zoneout_c, layer.zoneout_h) == (0.5, 0.05)
    assert layer.cell.implementation == 1
    assert variants["layer_zoneout"].label == "ZoneoutLSTM(c=.5 h=.05)"
    wd = variants["weight_drop"].build(8, 2)
    assert wd.cell.weight_dropout == 0.25
    rd = variants["gru_rd"].build(8, 2)
    assert type(rd) is keras.layers.GRU and rd.recurrent_dropout == 0.25
    assert variants["zoneout_gru"].goal_class == "zoneout"
    assert variants["layer_weight_drop"].goal_class == "regularized"
    assert variants["gru_rd"].goal_class is None


def test_round_robin_rotates_the_order_and_stops_after_min_rounds(bench):
    calls = []

    def workload(name):
        return (
            lambda: calls.append(("train", name)),
            lambda: calls.append(("infer", name)),
        )

    workloads = {name: workload(name) for name in ("a", "b", "c")}
    result = bench.harness.time_round_robin(
        workloads,
        rounds=10,
        predict_repeats=2,
        time_budget=0.0,
        log=lambda _: None,
        min_rounds=2,
    )
    assert result["rounds"] == 2
    trains = [name for kind, name in calls if kind == "train"]
    assert trains == ["a", "b", "c", "b", "c", "a"]
    assert [n for k, n in calls if k == "infer"] == [
        "a",
        "a",
        "b",
        "b",
        "c",
        "c",
        "b",
        "b",
        "c",
        "c",
        "a",
        "a",
    ]
    assert {s["n"] for s in result["train"].values()} == {2}
    assert result["stop"] == "time_budget"
    assert set(result) == {
        "rounds",
        "stop",
        "train",
        "infer",
        "train_cpu",
        "infer_cpu",
    }


def test_inference_only_times_no_training_step_and_reports_no_training(
    bench, tmp_path
):
    calls = []
    workloads = {
        name: (
            lambda n=name: calls.append(("train", n)),
            lambda n=name: calls.append(("infer", n)),
        )
        for name in ("lstm", "lstm_rd", "gal")
    }
    result = bench.harness.time_round_robin(
        workloads,
        rounds=3,
        predict_repeats=1,
        time_budget=1e9,
        log=lambda _: None,
        min_rounds=3,
        measures=("infer",),
    )
    assert {kind for kind, _ in calls} == {"infer"} and len(calls) == 9
    assert set(result) == {"rounds", "stop", "infer", "infer_cpu"}
    # Only the inference goals are checked, and the tables leave training
    # out instead of showing it as missing.
    ratios = bench.harness.goal_ratios(
        {n: bench.variants.VARIANTS[n].describe() for n in workloads},
        bench.variants.GOALS,
        ("infer",),
    )
    assert {measure for measure, _, _ in ratios} == {"infer"}
    case = _case(bench, train={"lstm": 100.0, "lstm_rd": 100.0, "gal": 1.0})
    for kind in ("train", "train_cpu"):
        del case[kind]
    del case["goals"], case["intervals"]
    bench.harness.evaluate(case, case["variants"], bench.variants.GOALS)
    assert {c["measure"] for c in case["goals"]["gal"]} == {"infer"}
    assert case["intervals"]["ratios"] == 1
    assert "training step" not in bench.tables.format_case(case)
    header = bench.report.speed_table(case).splitlines()[0]
    assert header == "| variant | infer ms | /plain | cpu /plain |"
    assert "| infer ms |" in _report(bench, tmp_path, {"default": case})


def test_summaries_give_median_quartiles_and_extremes_in_ms(bench):
    summary = bench.harness.summarize([0.004, 0.001, 0.003, 0.002, 0.005])
    assert summary["median_ms"] == pytest.approx(3.0)
    assert (summary["q1_ms"], summary["q3_ms"]) == pytest.approx((2.0, 4.0))
    assert (summary["min_ms"], summary["max_ms"]) == pytest.approx((1, 5))
    assert summary["n"] == 5
    # Every sample in round order, for the bootstrap over rounds.
    assert summary["samples_ms"] == pytest.approx([4, 1, 3, 2, 5])


def test_torch_memory_is_the_peak_of_the_running_sum_in_time_order(bench):
    peak = bench.memory.peak_of_running_sum
    # Out of time order on purpose: 100 live, +50 -> 150, -100, +70 -> 120.
    changes = [(3, -100), (1, 100), (4, 70), (2, 50)]
    assert peak(changes) == 150
    assert peak([(1, -10), (2, 5)]) == 0  # a free of an older block only


def test_tensorflow_memory_is_the_median_of_fresh_processes_round_robin(
    bench, monkeypatch
):
    """Each round runs one fresh process per variant, variants alternating;
    a variant's figure is its median process's, with every sample."""
    figures = {"lstm": [60.0, 52.0, 55.0], "gal": [58.0, 61.0, 54.0]}
    calls = []

    def fresh_process(kind, backend, names, shape, implementation):
        (name,) = names
        calls.append(name)
        figure = figures[name][calls.count(name) - 1]
        return {name: {"mib": figure, "step_peaks_mib": [figure]}}, None

    monkeypatch.setattr(bench.memory, "_in_fresh_process", fresh_process)
    monkeypatch.setattr(bench.memory, "device", lambda backend: "cpu")
    table, errors = bench.memory.tensor_memory(
        ["lstm", "gal"], (64, 100, 64, 256), "tensorflow", 2, print, repeats=3
    )
    assert errors == []
    assert calls == ["lstm", "gal"] * 3
    assert table["variants"]["lstm"]["mib"] == 55.0
    assert table["variants"]["gal"]["mib"] == 58.0
    assert table["variants"]["gal"]["samples_mib"] == [58.0, 61.0, 54.0]
    assert table["measure"].endswith("median of 3 processes")
    calls.clear()
    single, _ = bench.memory.tensor_memory(
        ["gal"], (64, 100, 64, 256), "tensorflow", 2, print
    )
    assert calls == ["gal"]
    assert single["variants"]["gal"] == {"mib": 58.0, "step_peaks_mib": [58.0]}
    quick = bench.run.parse_args(["--quick"])
    assert quick.memory_repeats == 1
    assert bench.run.parse_args([]).memory_repeats == 3
    assert bench.memory.parse_args([]).memory_repeats == 3


def test_run_rejects_unknown_variants_and_non_positive_counts(bench):
    with pytest.raises(SystemExit):
        bench.run.parse_args(["--variants", "gal,nope"])
    with pytest.raises(SystemExit):
        bench.run.parse_args(["--rounds", "0"])
    with pytest.raises(SystemExit):
        bench.run.parse_args(["--warmup", "-1"])
    with pytest.raises(SystemExit):
        bench.run.parse_args(["--memory-repeats", "0"])
    for width in ("0", "-0.1"):
        with pytest.raises(SystemExit):
            bench.run.parse_args(["--interval-width", width])
    quick = bench.run.parse_args(["--quick", "--variants", "zoneout"])
    assert (quick.rounds, quick.warmup) == (5, 1)
    assert quick.names == ["lstm", "lstm_rd", "zoneout"]
    full = bench.run.parse_args(["--warmup", "0"])
    assert (full.rounds, full.min_rounds, full.warmup) == (60, 5, 0)
    assert full.interval_width == 0.05


def _report(bench, tmp_path, cases):
    report = {
        "backend": "torch",
        "device": "cpu",
        "command": "python benchmarks/run.py --backend torch --case all",
        "versions": {"keras": "3.15.1", "torch": "2.13.0"},
        "source": {"commit": "abc123", "dirty": False},
        "machine": {"cpu": "test", "nproc": 2, "gpus": []},
        "cases": cases,
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(report))
    return bench.report.render([json.loads(path.read_text())])


def test_report_marks_missed_goals_and_shows_growth_with_t(bench, tmp_path):
    default = _case(
        bench,
        train={"lstm": 100.0, "lstm_rd": 150.0, "zoneout": 120.0},
        memory={"lstm": 50.0, "lstm_rd": 90.0, "zoneout": 52.0},
    )
    long = _case(
        bench,
        train={"lstm": 30000.0, "lstm_rd": 1500.0, "zoneout": 1200.0},
        memory={"lstm": 500.0, "lstm_rd": 900.0, "zoneout": 600.0},
    )
    long["shape"]["T"] = 1000
    # TensorFlow's figure: the median of several processes, their range
    # shown, the interval bootstrapped over the processes (lstm_rd has one).
    memory = long["memory"]
    memory["repeats_exactly"] = False
    memory["variants"]["zoneout"]["samples_mib"] = [590.0, 600.0, 640.0]
    memory["variants"]["lstm"]["samples_mib"] = [495.0, 500.0, 510.0]
    bench.harness.evaluate(long, long["variants"], bench.variants.GOALS)
    text = _report(bench, tmp_path, {"default": default, "long": long})
    zoneout_rows = [
        line
        for line in text.splitlines()
        if line.startswith("| RNN(ZoneoutLSTMCell")
    ]
    # Per case speed then memory (default, long), then the growth tables.
    assert len(zoneout_rows) == 6
    assert (
        "| 120.0 | 1.20 (exact) (<=1.15 **MISSED**) "
        "| 0.80 (exact) (<=1.00 met) |" in zoneout_rows[0]
    )
    assert "| 52.0 | 1.04 (exact) (<=1.10 met) |" in zoneout_rows[1]
    assert (
        "| 1200.0 | 0.04 (exact) (<=1.15 met) | 0.80 (exact) (<=1.00 met) |"
        in zoneout_rows[2]
    )
    # The process ratios 1.19, 1.20, 1.25: all above the goal.
    assert (
        "| 600 (590-640) | 1.20 [1.19, 1.25] (<=1.10 **MISSED**) | 0.67 |"
        in zoneout_rows[3]
    )
    # Growth: train /plain per case, then long/default = 10x for zoneout.
    assert zoneout_rows[4].split(" | ")[1:3] == ["1.20", "0.04"]
    assert zoneout_rows[5].split(" | ")[1:3] == ["1.00", "10.00"]
    assert "keras LSTM trains 20.0x slower" in text
    assert "code: commit abc123" in text
    assert text.count("Goals: 3 met, 1 missed, 0 unresolved") == 2


# ------------------------------------------------ intervals, verdicts, stop
def _paired_rounds(n, ratio=1.1, shared=0.05, own=0.05, seed=0):
    """`n` round-robin rounds of a reference (100 ms) and a variant whose
    true ratio of medians is `ratio`: each round scales both by a shared
    factor (a slow or fast phase of the machine, spread `shared`) and each
    by its own noise (spread `own`), lognormal."""
    import numpy as np

    rng = np.random.default_rng(seed)
    phase = rng.lognormal(0.0, shared, n)
    reference = 100.0 * phase * rng.lognormal(0.0, own, n)
    variant = 100.0 * ratio * phase * rng.lognormal(0.0, own, n)
    return {"variant": list(variant), "reference": list(reference)}


def _interval(bench, samples):
    pair = ("variant", "reference")
    return bench.intervals.ratio_intervals(samples, [pair])[pair]


def test_bootstrap_interval_contains_the_true_ratio_and_narrows(bench):
    rounds = _paired_rounds(320)
    widths = []
    for n in (20, 80, 320):  # the first n rounds of one run
        low, high = _interval(bench, {k: v[:n] for k, v in rounds.items()})
        assert low <= 1.1 <= high, (n, low, high)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < 0.05 < widths[0]


def test_bootstrap_interval_covers_the_true_ratio_about_95_percent(bench):
    covered = 0
    for seed in range(200):
        rounds = _paired_rounds(30, shared=0.0, seed=seed + 1)
        low, high = _interval(bench, rounds)
        covered += low <= 1.1 <= high
    assert 0.9 <= covered / 200 <= 0.99


def test_bootstrap_is_paired_reproducible_and_exact_for_a_reference(bench):
    """The same rounds for variant and reference: a slow phase that hits
    both leaves the ratio's interval narrow; unpaired draws would not."""
    samples = _paired_rounds(40, shared=0.3, own=0.01)
    low, high = _interval(bench, samples)
    assert low <= 1.1 <= high and high - low < 0.06
    medians = bench.intervals.resampled_medians
    unpaired = bench.intervals.ratio_interval(
        medians({"v": samples["variant"]}, seed=1)["v"],
        medians({"r": samples["reference"]}, seed=2)["r"],
    )
    assert unpaired[0] <= 1.1 <= unpaired[1]
    assert unpaired[1] - unpaired[0] > 3 * (high - low)
    # A fixed seed: the same samples give the same interval.
    assert _interval(bench, samples) == [low, high]
    # A reference divided by itself, and too few samples.
    pairs = [("reference", "reference"), ("variant", "one")]
    found = bench.intervals.ratio_intervals({**samples, "one": [1.0]}, pairs)
    assert found[pairs[0]] == [1.0, 1.0]
    assert found[pairs[1]] is None


def test_per_round_ratios_cancel_a_machine_that_jumps_between_two_speeds(
    bench,
):
    """Rounds alternate at random between a fast (48 ms) and a slow (70 ms)
    phase that hits variant and reference alike, as on the shared EPYC,
    with 3 % noise of their own: the median of the per-round ratios stays
    near the true ratio with a narrow interval; the ratio of the two
    medians (schema 3), whose medians land in either phase by chance, has
    a wider one."""
    import numpy as np

    rng = np.random.default_rng(3)
    n = 60
    phase = np.where(rng.random(n) < 0.5, 48.0, 70.0)
    reference = phase * rng.lognormal(0.0, 0.03, n)
    variant = 1.03 * phase * rng.lognormal(0.0, 0.03, n)
    samples = {"variant": list(variant), "reference": list(reference)}
    ratio, interval = bench.intervals.paired_ratio(variant, reference)
    assert interval[0] <= 1.03 <= interval[1]
    assert abs(ratio - 1.03) < 0.01 and interval[1] - interval[0] < 0.04
    assert _interval(bench, samples) == interval  # what the stop rule sees
    medians = bench.intervals.resampled_medians(samples)
    of_medians = bench.intervals.ratio_interval(
        medians["variant"], medians["reference"]
    )
    assert of_medians[1] - of_medians[0] > 1.5 * (interval[1] - interval[0])
    # The case's ratio and interval are the per-round ones.
    case = _case(bench, train={"lstm": 100.0, "gal": 100.0})
    case["infer"]["lstm"].update(
        median_ms=float(np.median(reference)), samples_ms=list(reference)
    )
    case["infer"]["gal"].update(
        median_ms=float(np.median(variant)), samples_ms=list(variant)
    )
    bench.harness.add_ratios(case, case["variants"])
    assert case["infer"]["gal"]["vs_plain"] == pytest.approx(ratio)
    assert case["infer"]["gal"]["vs_plain_interval"] == interval
    # Series without common rounds fall back to the ratio of medians.
    assert bench.intervals.paired_ratio(variant[:-1], reference) == (
        None,
        None,
    )
    pair = ("short", "reference")
    found = bench.intervals.ratio_intervals(
        {"short": list(variant[:-1]), "reference": list(reference)}, [pair]
    )
    assert found[pair] is not None


def test_a_goal_is_met_only_when_the_upper_bound_is_at_most_it(bench):
    verdict = bench.intervals.verdict
    assert verdict([0.95, 1.05], 1.05) == "met"  # inclusive
    assert verdict([0.95, 1.0501], 1.05) == "unresolved"
    assert verdict([1.05, 1.10], 1.05) == "unresolved"  # low at the goal
    assert verdict([1.0501, 1.10], 1.05) == "missed"
    assert verdict(None, 1.05) == "unresolved"
    # The ratio of medians 1.04 is within 1.05, but its interval is not.
    case = _case(bench, train={"lstm": 100.0, "gal": 100.0})
    lstm = [10.0] * 5
    gal = [10.4, 10.1, 10.7, 10.3, 10.5]  # ratios 1.01-1.07, median 1.04
    case["infer"]["lstm"].update(median_ms=10.0, samples_ms=lstm)
    case["infer"]["gal"].update(median_ms=10.4, samples_ms=gal)
    bench.harness.evaluate(case, case["variants"], bench.variants.GOALS)
    (check,) = [c for c in case["goals"]["gal"] if c["measure"] == "infer"]
    assert check["ratio"] == pytest.approx(1.04)
    assert check["interval"][1] > 1.05 > check["interval"][0]
    assert (check["verdict"], check["met"]) == ("unresolved", False)
    assert bench.harness.goal_summary(case["goals"]) == (1, 0, 1)
    text = bench.tables.format_case(case)
    assert "/plain <=1.05 UNRESOLVED" in text
    assert "UNRESOLVED RNN(GalLSTMCell rd=.25): infer /plain 1.040 [" in text


def test_memory_intervals_come_from_processes_or_are_exact(bench):
    case = _case(
        bench,
        train={"lstm": 100.0, "gal": 100.0, "zoneout": 100.0},
        memory={"lstm": 50.0, "gal": 54.0, "zoneout": 52.0},
    )
    exact = case["memory"]["variants"]["gal"]
    assert exact["vs_plain_interval"] == pytest.approx([1.08, 1.08])
    # TensorFlow: the processes of each variant, paired by round; a
    # variant measured in one process only has no interval.
    case["memory"]["repeats_exactly"] = False
    variants = case["memory"]["variants"]
    variants["lstm"]["samples_mib"] = [49.0, 50.0, 52.0]
    variants["gal"]["samples_mib"] = [52.0, 54.0, 57.0]
    bench.harness.evaluate(case, case["variants"], bench.variants.GOALS)
    low, high = variants["gal"]["vs_plain_interval"]
    assert 1.05 < low <= 1.08 <= high < 1.11
    assert variants["zoneout"]["vs_plain_interval"] is None
    memory = {
        (n, c["measure"]): c["verdict"]
        for n, checks in case["goals"].items()
        for c in checks
    }
    assert memory["zoneout", "memory"] == "unresolved"


class _FakeClock:
    """A clock that only the fake workloads move."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _fake_workloads(clock, durations):
    """Workloads that advance `clock` by the next of their `durations`
    (dict name -> (train seconds, infer seconds) iterators)."""

    def advance(values):
        def call():
            clock.now += next(values)

        return call

    return {
        name: (advance(train), advance(infer))
        for name, (train, infer) in durations.items()
    }


def _noisy(rng, seconds, spread):
    while True:
        yield seconds * rng.lognormal(0.0, spread)


def _time_fake(bench, spreads, rounds, min_rounds, target, budget=1e9):
    """Times fake workloads (lstm, lstm_rd, gal; noise `spreads` per name)
    with the width stop; returns the result and the stop rule."""
    import numpy as np

    rng = np.random.default_rng(0)
    clock = _FakeClock()
    durations = {
        name: (_noisy(rng, 0.1, spread), _noisy(rng, 0.03, spread))
        for name, spread in spreads.items()
    }
    variants = {n: bench.variants.VARIANTS[n].describe() for n in spreads}
    stop = bench.intervals.WidthStop(
        bench.harness.goal_ratios(variants, bench.variants.GOALS), target
    )
    result = bench.harness.time_round_robin(
        _fake_workloads(clock, durations),
        rounds=rounds,
        predict_repeats=1,
        time_budget=budget,
        log=lambda _: None,
        min_rounds=min_rounds,
        enough=stop,
        clock=clock,
        cpu_clock=clock,
    )
    return result, stop, variants


def _widths_after(bench, result, stop, n):
    """The goal ratios' widths over the first `n` rounds of `result`."""
    samples = {
        kind: {name: s["samples_ms"][:n] for name, s in result[kind].items()}
        for kind in ("train", "infer")
    }
    return stop.widths(samples)


def test_timing_stops_once_every_goal_interval_is_narrow_enough(bench):
    spreads = {"lstm": 0.02, "lstm_rd": 0.02, "gal": 0.02}
    result, stop, variants = _time_fake(
        bench, spreads, rounds=200, min_rounds=3, target=0.05
    )
    n = result["rounds"]
    assert result["stop"] == "enough" and 3 < n < 200
    # It stopped at the first round where every goal width was below 0.05.
    assert max(_widths_after(bench, result, stop, n).values()) < 0.05
    before = _widths_after(bench, result, stop, n - 1).values()
    assert any(w is None or w >= 0.05 for w in before)
    assert set(stop.widths({})) == {
        ("train", "gal", "lstm"),
        ("train", "gal", "lstm_rd"),
        ("infer", "gal", "lstm"),
    }
    case = {"variants": variants, **result}
    bench.harness.evaluate(case, variants, bench.variants.GOALS)
    summary = case["intervals"]
    assert summary["reached"] and summary["too_wide"] == []
    assert summary["widest"]["width"] < 0.05
    assert "every goal ratio's interval is narrower than 0.05" in (
        bench.tables.format_case(case)
    )


def test_timing_never_stops_before_min_rounds(bench):
    # Noise-free rounds: every interval is exact from the second round on.
    spreads = {"lstm": 0.0, "lstm_rd": 0.0, "gal": 0.0}
    result, _, _ = _time_fake(
        bench, spreads, rounds=50, min_rounds=7, target=0.05
    )
    assert (result["rounds"], result["stop"]) == (7, "enough")


def test_timing_that_runs_out_says_the_width_was_not_reached(bench):
    spreads = {"lstm": 0.3, "lstm_rd": 0.3, "gal": 0.3}
    result, _, variants = _time_fake(
        bench, spreads, rounds=12, min_rounds=5, target=0.05
    )
    assert (result["rounds"], result["stop"]) == (12, "rounds")
    case = {"variants": variants, **result}
    bench.harness.evaluate(case, variants, bench.variants.GOALS)
    summary = case["intervals"]
    assert not summary["reached"] and len(summary["too_wide"]) == 3
    widths = [r["width"] for r in summary["too_wide"]]
    assert widths == sorted(widths, reverse=True) and widths[-1] >= 0.05
    text = bench.tables.format_case(case)
    assert "interval width NOT reached: 3 of 3 goal ratios" in text
    assert "stopped: the maximal number of rounds (--rounds) ran" in text
    # The time budget (on the fake clock: ~0.4 s a round) stops it too,
    # after --min-rounds.
    budget, _, _ = _time_fake(
        bench, spreads, rounds=50, min_rounds=5, target=0.05, budget=3.0
    )
    assert budget["stop"] == "time_budget" and 5 <= budget["rounds"] < 12


XEON_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
stepping\t: 8
physical id\t: 0
siblings\t: 2
core id\t\t: 0
cpu cores\t: 1
flags\t\t: fpu sse4_2 avx f16c fma avx2 avx512f avx512dq avx512cd \
avx512bw avx512vl avx512_bf16 avx512_fp16 avx512_vnni amx_bf16 amx_tile \
amx_int8 hypervisor

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
stepping\t: 8
physical id\t: 0
siblings\t: 2
core id\t\t: 0
cpu cores\t: 1
flags\t\t: fpu sse4_2 avx f16c fma avx2 avx512f avx512dq avx512cd \
avx512bw avx512vl avx512_bf16 avx512_fp16 avx512_vnni amx_bf16 amx_tile \
amx_int8 hypervisor

"""

ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 asimddp sve i8mm bf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 asimddp sve i8mm bf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
CPU revision\t: 1
"""


def test_cpu_is_read_from_proc_cpuinfo_with_its_instruction_sets(bench):
    machine = bench.machine
    xeon = machine.parse_cpuinfo(XEON_CPUINFO)
    assert xeon["model_name"].startswith("Intel(R) Xeon(R) Platinum 8481C")
    assert (xeon["vendor"], xeon["family"], xeon["model"]) == (
        "GenuineIntel",
        "6",
        "143",
    )
    # Two hyper-threads of one core, in a virtual machine.
    assert (xeon["logical_cpus"], xeon["physical_cores"]) == (2, 1)
    assert xeon["virtualized"] is True
    assert xeon["isa"] == [
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512dq",
        "avx512cd",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
    ]
    text = machine.cpu_text(xeon)
    assert "(GenuineIntel family 6 model 143 stepping 8)" in text
    assert "AVX-512 (F DQ CD BW VL VNNI BF16 FP16)" in text
    assert "AMX (TILE BF16 INT8)" in text and "virtual machine" in text
    arm = machine.parse_cpuinfo(ARM_CPUINFO)
    assert arm["isa"] == ["asimd", "asimddp", "bf16", "i8mm", "sve"]
    assert (arm["vendor"], arm["model"], arm["logical_cpus"]) == (
        "0x41",
        "0xd40",
        2,
    )
    assert arm["physical_cores"] is None and arm["virtualized"] is False
    # Without /proc/cpuinfo: what `platform` knows, instruction sets unknown.
    if sys.platform != "darwin":
        fallback = machine.cpu_info("/nonexistent/cpuinfo")
        assert fallback["source"] == "platform" and fallback["isa"] is None
        assert "instruction sets unknown" in machine.cpu_text(fallback)
    # An older JSON file recorded only the model name.
    assert machine.cpu_text("AMD EPYC") == (
        "AMD EPYC (instruction sets not recorded)"
    )


def test_report_prints_the_cpu_the_load_and_the_widths(bench, tmp_path):
    case = _case(bench, train={"lstm": 100.0, "lstm_rd": 120.0, "gal": 99.0})
    case["train"]["gal"]["samples_ms"] = [95.0, 99.0, 104.0, 97.0, 101.0]
    case["stop"] = "time_budget"
    case["load_average_at_start"] = [1.0, 0.5, 0.25]
    case["load_average_at_end"] = [1.5, 0.75, 0.3]
    bench.harness.evaluate(case, case["variants"], bench.variants.GOALS)
    report = {
        "backend": "jax",
        "versions": {"keras": "3.15.1"},
        "machine": {
            "cpu": bench.machine.parse_cpuinfo(XEON_CPUINFO),
            "available_cpus": 2,
            "load_average_at_start": [0.9, 0.4, 0.2],
            "load_average_at_end": [1.6, 0.8, 0.3],
        },
        "cases": {"default": case},
    }
    text = bench.report.render([json.loads(json.dumps(report))])
    assert "- CPU: Intel(R) Xeon(R) Platinum 8481C" in text
    assert "AVX-512 (F DQ CD BW VL VNNI BF16 FP16) AMX (TILE BF16 INT8)" in text
    assert "load average 0.90 0.40 0.20 (1, 5, 15 min) at start, " in text
    assert "Load average 1.00 0.50 0.25 (1, 5, 15 min) at the start" in text
    (gal,) = [r for r in text.splitlines() if r.startswith("| RNN(GalLSTM")]
    low, high = case["train"]["gal"]["vs_plain_interval"]
    assert f"| 0.99 [{low:.2f}, {high:.2f}] (<=1.10 met) |" in gal
    assert "stopped: the time budget (--time-budget) ran out" in text
    assert "- interval width NOT reached: 2 of 3 goal ratios" in text
    assert "RNN(GalLSTMCell rd=.25) train /plain width" in text


def test_report_still_reads_files_of_schema_2(bench, tmp_path):
    """Before issue 24: no samples, no intervals, verdicts `met` only, the
    CPU a model name."""
    case = _case(bench, train={"lstm": 100.0, "lstm_rd": 150.0, "gal": 120.0})
    for kind in ("train", "infer", "train_cpu", "infer_cpu"):
        for entry in case[kind].values():
            del entry["samples_ms"], entry["vs_plain_interval"]
            del entry["vs_rd_interval"]
    for checks in case["goals"].values():
        for check in checks:
            for key in ("interval", "width", "verdict"):
                del check[key]
    del case["intervals"]
    text = _report(bench, tmp_path, {"default": case})
    assert "- CPU: test (instruction sets not recorded)" in text
    (gal,) = [r for r in text.splitlines() if r.startswith("| RNN(GalLSTM")]
    assert "| 120.0 | 1.20 (<=1.10 **MISSED**) | 0.80 (<=1.00 met) |" in gal
    assert "- MISSED RNN(GalLSTMCell rd=.25): train /plain 1.200 > 1.10" in text
    assert "Goals: 2 met, 1 missed, 0 unresolved" in text


def _fake_tools(tmp_path, probe_status=0):
    """A fake `nvidia-smi` that lists one GPU and a fake Python that logs
    its arguments, answers the GPU probes with `probe_status` and writes
    the `--output` file."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "${1:-}" = -q ]; then echo "Driver Version: 555.42"; '
        'else echo "NVIDIA Test GPU, 555.42, 81920 MiB"; fi\n'
    )
    python = tmp_path / "python"
    python.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {tmp_path}/log\n'
        f'if [ "$1" = -c ]; then exit {probe_status}; fi\n'
        'prev=""; for a in "$@"; do\n'
        '  if [ "$prev" = --output ]; then echo "{}" > "$a"; fi; prev="$a"\n'
        "done\n"
        "echo table\n"
    )
    for tool in (smi, python):
        tool.chmod(0o755)
    return smi, python


def _gpu_sh(env, *args):
    return subprocess.run(
        ["bash", str(BENCHMARKS / "gpu.sh"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.subprocess
def test_gpu_script_without_a_gpu_says_so_and_exits_0(tmp_path):
    out = tmp_path / "out"
    done = _gpu_sh({"NVIDIA_SMI": str(tmp_path / "absent")}, "--out", str(out))
    assert done.returncode == 0
    assert "no NVIDIA GPU found" in done.stdout
    assert not out.exists()


@pytest.mark.subprocess
def test_gpu_script_runs_both_cases_on_each_backend_then_the_report(
    tmp_path,
):
    smi, python = _fake_tools(tmp_path)
    out = tmp_path / "out"
    done = _gpu_sh(
        {"NVIDIA_SMI": str(smi), "PYTHON": str(python)},
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "log").read_text().splitlines()
    runs = [line for line in log if "run.py" in line]
    expected = [
        (backend, case)
        for backend in ("tensorflow", "jax", "torch")
        for case in ("default", "long")
    ]
    assert [
        (
            line.split("--backend ")[1].split()[0],
            line.split("--case ")[1].split()[0],
        )
        for line in runs
    ] == expected
    assert all("--no-rss" in line for line in runs)
    # Each backend first checks that its Python sees the GPU.
    assert sum(line.startswith("-c ") for line in log) == 3
    assert log[-1].endswith("results-torch-gpu-long.json")
    assert "report.py" in log[-1] and log[-1].count(".json") == 6
    assert (out / "report.md").read_text() == "table\n"
    # The GPU's details are kept next to the results.
    assert (out / "nvidia-smi.txt").read_text() == "Driver Version: 555.42\n"


@pytest.mark.subprocess
def test_gpu_script_fails_when_no_backend_can_use_the_gpu(tmp_path):
    smi, python = _fake_tools(tmp_path, probe_status=1)
    done = _gpu_sh(
        {"NVIDIA_SMI": str(smi), "PYTHON": str(python)},
        "--out",
        str(tmp_path / "out"),
    )
    assert done.returncode == 3
    assert "no backend can use it" in done.stderr
    assert "run.py" not in (tmp_path / "log").read_text()


@pytest.mark.subprocess
def test_gpu_script_dry_run_prints_the_commands_and_runs_nothing(tmp_path):
    done = _gpu_sh(
        {"NVIDIA_SMI": str(tmp_path / "absent")},
        "--dry-run",
        "--backends",
        "jax",
        "--out",
        str(tmp_path / "out"),
    )
    assert done.returncode == 0
    commands = [
        line for line in done.stderr.splitlines() if line.startswith("+ ")
    ]
    assert len(commands) == 3  # default, long, report
    assert "--case default" in commands[0] and "--case long" in commands[1]
    assert "report.py" in commands[2]
    assert not (tmp_path / "out").exists()
