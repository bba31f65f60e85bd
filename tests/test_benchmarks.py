"""The benchmark harness computes the ratios and goal verdicts it reports.

`benchmarks/` measures speed and memory against Keras's layers; these tests
check its logic on made-up measurements (no timing, no backend work): each
variant is divided by the right reference, each goal uses its limit, the
Markdown report shows the verdicts and the growth with T, the round-robin
rotates and honours its budget, and `gpu.sh` takes the right path with and
without a GPU (with stand-ins for `nvidia-smi` and Python).
"""

import importlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
MODULES = ("variants", "harness", "memory", "report", "run")


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


def _timing(median):
    return {"median_ms": median, "min_ms": median * 0.9, "q1_ms": median}


def _case(bench, train, infer=None, memory=None, rss=None):
    """A measured case from medians (ms) and MiB, keyed by variant."""
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
    assert bench.harness.goal_summary(case["goals"]) == (6, 5)


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
    assert set(result) == {"rounds", "train", "infer", "train_cpu", "infer_cpu"}


def test_summaries_give_median_quartiles_and_extremes_in_ms(bench):
    summary = bench.harness.summarize([0.004, 0.001, 0.003, 0.002, 0.005])
    assert summary["median_ms"] == pytest.approx(3.0)
    assert (summary["q1_ms"], summary["q3_ms"]) == pytest.approx((2.0, 4.0))
    assert (summary["min_ms"], summary["max_ms"]) == pytest.approx((1, 5))
    assert summary["n"] == 5


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
    quick = bench.run.parse_args(["--quick", "--variants", "zoneout"])
    assert (quick.rounds, quick.warmup) == (5, 1)
    assert quick.names == ["lstm", "lstm_rd", "zoneout"]
    full = bench.run.parse_args(["--warmup", "0"])
    assert (full.rounds, full.warmup) == (15, 0)


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
    # TensorFlow's figure: the median of several processes, their range shown.
    long["memory"]["variants"]["zoneout"]["samples_mib"] = [590.0, 600.0, 640.0]
    text = _report(bench, tmp_path, {"default": default, "long": long})
    zoneout_rows = [
        line
        for line in text.splitlines()
        if line.startswith("| RNN(ZoneoutLSTMCell")
    ]
    # Per case speed then memory (default, long), then the growth tables.
    assert len(zoneout_rows) == 6
    assert (
        "| 120.0 | 1.20 (<=1.15 **MISSED**) | 0.80 (<=1.00 met) |"
        in (zoneout_rows[0])
    )
    assert "| 52.0 | 1.04 (<=1.10 met) |" in zoneout_rows[1]
    assert (
        "| 1200.0 | 0.04 (<=1.15 met) | 0.80 (<=1.00 met) |"
        in (zoneout_rows[2])
    )
    assert "| 600 (590-640) | 1.20 (<=1.10 **MISSED**) |" in zoneout_rows[3]
    # Growth: train /plain per case, then long/default = 10x for zoneout.
    assert zoneout_rows[4].split(" | ")[1:3] == ["1.20", "0.04"]
    assert zoneout_rows[5].split(" | ")[1:3] == ["1.00", "10.00"]
    assert "keras LSTM trains 20.0x slower" in text
    assert "code: commit abc123" in text
    assert text.count("Goals: 3 met, 1 missed.") == 2  # one per case


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
