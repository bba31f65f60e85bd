"""Speed and memory benchmark of the keras_recdrop LSTM cells.

Compares, on one backend and the same random data, a plain
`keras.layers.LSTM`, Keras's own recurrent dropout
(`keras.layers.LSTM(recurrent_dropout=0.25)`, which forces the split
`implementation=1` cell) and the cells of this package wrapped in
`keras_recdrop.RNN`. Every model is `Input -> RNN layer -> Dense(1)`,
compiled with Adam and MSE and with `jit_compile` left at the Keras default
("auto": XLA off on a CPU-only TensorFlow, `jax.jit` on JAX, eager on
PyTorch; the resolved value is printed and stored).

Timing: all models are built and warmed up first, then timed round-robin
(one training step of every variant, then one inference call of every
variant, then the next round, the variant order rotating between rounds), so
slow drifts of a shared machine hit all variants alike. Reported: median,
interquartile range and min/max per variant, and the ratio of medians to the
plain LSTM and to `LSTM(recurrent_dropout=0.25)`.

Memory: the peak resident-set growth (`VmHWM`) of a fresh subprocess per
variant that builds the model, trains it and predicts with it, the median of
`--memory-repeats` processes (see `benchmarks/README.md` for why not
`tracemalloc`).

Usage:

    python benchmarks/run.py --backend jax                  # default case
    python benchmarks/run.py --backend tensorflow --case all
    python benchmarks/run.py --quick                         # CI smoke check
"""

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = {
    # name: (batch B, timesteps T, features D, units U)
    "default": (64, 100, 64, 256),
    "long": (64, 1000, 64, 256),
    "wide": (64, 100, 64, 1024),
    "quick": (8, 10, 8, 16),
}

# name -> (description, kind, reference); kind selects the spec goal that
# applies, reference is the plain Keras layer the ratios divide by.
VARIANTS = {
    "lstm": ("keras LSTM", "baseline", "lstm"),
    "lstm_rd": ("keras LSTM(recurrent_dropout=.25)", "baseline", "lstm"),
    "gal": ("Gal rd=.25 (per-gate masks)", "cell", "lstm"),
    "gal_tied": ("Gal rd=.25 tied_masks=True", "cell", "lstm"),
    "semeniuta": ("Semeniuta rd=.25 (per step)", "cell", "lstm"),
    "zoneout": ("Zoneout c=.5 h=.05", "zoneout", "lstm"),
    "gal0": ("Gal, all rates 0", "cell", "lstm"),
    "gru": ("keras GRU", "baseline", "gru"),
    "gru_rd": ("keras GRU(recurrent_dropout=.25)", "baseline", "gru"),
    "gal_gru": ("GalGRU rd=.25 (per-gate masks)", "cell", "gru"),
    "semeniuta_gru": ("SemeniutaGRU rd=.25 (per step)", "cell", "gru"),
    "zoneout_gru": ("ZoneoutGRU h=.05", "zoneout", "gru"),
}
# The slow-mode Keras baseline of each reference (second ratio column).
DROPOUT_BASELINE = {"lstm": "lstm_rd", "gru": "gru_rd"}

# Goals of the spec, as maximal ratios to the plain keras LSTM.
GOALS = {
    "train": {"cell": 1.10, "zoneout": 1.15},
    "infer": {"cell": 1.05, "zoneout": 1.10},
    "memory": {"cell": 1.10, "zoneout": 1.10},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        default=os.environ.get("KERAS_BACKEND", "tensorflow"),
        help="Keras backend (default: $KERAS_BACKEND, else tensorflow).",
    )
    parser.add_argument(
        "--case",
        choices=("default", "long", "wide", "all"),
        default="default",
        help="default: B=64 T=100 D=64 U=256; long: T=1000; wide: U=1024.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Tiny shapes and few repetitions (CI smoke check).",
    )
    parser.add_argument("--rounds", type=int, help="Timed rounds.")
    parser.add_argument("--warmup", type=int, help="Untimed warm-up calls.")
    parser.add_argument(
        "--predict-repeats",
        type=int,
        default=3,
        help="Inference calls averaged into one inference sample.",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=420.0,
        help="Stop adding rounds (after 3) once a case has run this long (s).",
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="Comma-separated subset of: "
        + ", ".join(VARIANTS)
        + " (the Keras reference of each is added).",
    )
    parser.add_argument(
        "--implementation",
        type=int,
        choices=(1, 2),
        default=2,
        help="`implementation` of the keras_recdrop cells (default 2).",
    )
    parser.add_argument(
        "--no-memory",
        action="store_true",
        help="Skip the per-variant memory subprocesses.",
    )
    parser.add_argument(
        "--memory-repeats",
        type=int,
        default=None,
        help="Fresh processes per variant for memory; the median is "
        "reported (default 3; 1 with --quick).",
    )
    parser.add_argument(
        "--output",
        help="JSON path (default benchmarks/results-<backend>-<case>.json).",
    )
    # Internal: run one memory probe in this (fresh) process.
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")
    for option in ("rounds", "predict_repeats", "memory_repeats"):
        value = getattr(args, option)
        if value is not None and value < 1:
            flag = "--" + option.replace("_", "-")
            parser.error(f"{flag} must be a positive integer; received {value}")
    if args.warmup is not None and args.warmup < 0:
        parser.error(f"--warmup must be >= 0; received {args.warmup}")
    names = args.variants.split(",")
    for ref in sorted({VARIANTS[n][2] for n in names}, reverse=True):
        if ref not in names:
            names.insert(0, ref)
    args.variants = ",".join(names)
    return args


# --------------------------------------------------------------------- models
def make_layer(name, units, implementation):
    import keras

    import keras_recdrop as rd

    kw = {"implementation": implementation}
    keras_layers = {
        "lstm": lambda: keras.layers.LSTM(units),
        "lstm_rd": lambda: keras.layers.LSTM(units, recurrent_dropout=0.25),
        "gru": lambda: keras.layers.GRU(units),
        "gru_rd": lambda: keras.layers.GRU(units, recurrent_dropout=0.25),
    }
    if name in keras_layers:
        return keras_layers[name]()
    cells = {
        "gal": lambda: rd.GalLSTMCell(units, recurrent_dropout=0.25, **kw),
        "gal_tied": lambda: rd.GalLSTMCell(
            units, recurrent_dropout=0.25, tied_masks=True, **kw
        ),
        "semeniuta": lambda: rd.SemeniutaLSTMCell(
            units, recurrent_dropout=0.25, **kw
        ),
        "zoneout": lambda: rd.ZoneoutLSTMCell(
            units, zoneout_c=0.5, zoneout_h=0.05, **kw
        ),
        "gal0": lambda: rd.GalLSTMCell(units, **kw),
        "gal_gru": lambda: rd.GalGRUCell(units, recurrent_dropout=0.25, **kw),
        "semeniuta_gru": lambda: rd.SemeniutaGRUCell(
            units, recurrent_dropout=0.25, **kw
        ),
        "zoneout_gru": lambda: rd.ZoneoutGRUCell(units, zoneout_h=0.05, **kw),
    }
    if name not in cells:
        raise ValueError(name)
    return rd.RNN(cells[name]())


def make_model(name, shape, implementation):
    import keras

    _, timesteps, features, units = shape
    inputs = keras.Input((timesteps, features))
    hidden = make_layer(name, units, implementation)(inputs)
    outputs = keras.layers.Dense(1)(hidden)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(optimizer="adam", loss="mse")  # jit_compile: "auto"
    return model


def make_data(shape):
    import numpy as np

    batch, timesteps, features, _ = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, timesteps, features)).astype("float32")
    y = rng.standard_normal((batch, 1)).astype("float32")
    return x, y


# --------------------------------------------------------------------- timing
def summarize(samples):
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


def time_case(names, shape, args, log):
    import keras

    keras.utils.set_random_seed(0)
    x, y = make_data(shape)
    models = {}
    for name in names:
        t0 = time.perf_counter()
        model = make_model(name, shape, args.implementation)
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
            model.predict_on_batch(x)
        elapsed = time.perf_counter() - t0
        log(f"  built + warmed up {name:<10} in {elapsed:.1f}s")
        models[name] = model
    jit = {name: bool(m.jit_compile) for name, m in models.items()}

    train = {name: [] for name in names}
    infer = {name: [] for name in names}
    train_cpu = {name: [] for name in names}
    infer_cpu = {name: [] for name in names}
    start = time.perf_counter()
    rounds = 0
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            models[name].train_on_batch(x, y)  # returns a float: synced
            train[name].append(time.perf_counter() - t0)
            train_cpu[name].append(time.process_time() - c0)
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.predict_repeats):
                models[name].predict_on_batch(x)  # returns NumPy: synced
            infer[name].append(
                (time.perf_counter() - t0) / args.predict_repeats
            )
            infer_cpu[name].append(
                (time.process_time() - c0) / args.predict_repeats
            )
        rounds += 1
        elapsed = time.perf_counter() - start
        if rounds >= 3 and elapsed > args.time_budget:
            log(f"  time budget reached after {rounds} rounds")
            break
    log(f"  {rounds} timed rounds in {time.perf_counter() - start:.1f}s")
    return {
        "jit_compile": jit,
        "rounds": rounds,
        "train": {n: summarize(s) for n, s in train.items()},
        "infer": {n: summarize(s) for n, s in infer.items()},
        "train_cpu": {n: summarize(s) for n, s in train_cpu.items()},
        "infer_cpu": {n: summarize(s) for n, s in infer_cpu.items()},
    }


# --------------------------------------------------------------------- memory
def _proc_status_mib(field):
    """A `VmHWM` / `VmRSS` line of `/proc/self/status` in MiB, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def peak_rss_mib():
    """Peak resident set of this process's memory, in MiB.

    On Linux, `VmHWM` (the high-water mark of the address space, which
    `/proc/self/clear_refs` can reset). Not `ru_maxrss` itself: the kernel
    also folds the high-water mark into `ru_maxrss` whenever a thread exits,
    and the many threads that exit while TensorFlow is imported pin it to
    the import peak. Elsewhere, `ru_maxrss` (KiB on Linux, bytes on macOS).
    """
    hwm = _proc_status_mib("VmHWM")
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def reset_peak_rss():
    """Resets the peak RSS to the current RSS; returns the new baseline.

    Importing a backend peaks higher than running a small model, so without
    a reset the peak would not move at all. Linux >= 4.0 resets the
    high-water mark by writing "5" to `/proc/self/clear_refs`; elsewhere the
    baseline is the peak so far.
    """
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return peak_rss_mib()


def memory_probe(args):
    """Runs in a fresh process: peak RSS growth of building + running."""
    import keras

    shape = tuple(int(v) for v in args.shape.split(","))
    keras.utils.set_random_seed(0)
    x, y = make_data(shape)
    before = reset_peak_rss()
    model = make_model(args.memory_probe, shape, args.implementation)
    for _ in range(max(args.warmup, 1) + 2):
        model.train_on_batch(x, y)
    for _ in range(max(args.warmup, 1) + 2):
        model.predict_on_batch(x)
    after = peak_rss_mib()
    print(json.dumps({"baseline_mib": before, "peak_mib": after}))


def _memory_probe_once(name, shape, args, env):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--backend",
        args.backend,
        "--memory-probe",
        name,
        "--shape",
        ",".join(str(v) for v in shape),
        "--warmup",
        str(args.warmup),
        "--implementation",
        str(args.implementation),
    ]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return None, proc.stderr[-2000:]
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    return probe["peak_mib"] - probe["baseline_mib"], None


def measure_memory(names, shape, args, log):
    """Peak-RSS growth per variant: the median of fresh processes.

    One probe varies by a few MiB between processes (allocator and
    tracing), so each variant runs `--memory-repeats` times, interleaved
    with the other variants.
    """
    repeats = args.memory_repeats or (1 if args.quick else 3)
    env = dict(os.environ, KERAS_BACKEND=args.backend)
    samples = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            growth, error = _memory_probe_once(name, shape, args, env)
            if error is not None:
                log(f"  memory probe {name} failed:\n{error}")
                continue
            samples[name].append(growth)
    results = {}
    for name in names:
        if not samples[name]:
            continue
        results[name] = {
            "growth_mib": statistics.median(samples[name]),
            "samples_mib": samples[name],
        }
        values = ", ".join(f"{v:.1f}" for v in samples[name])
        log(
            f"  memory {name:<10} +{results[name]['growth_mib']:.1f} MiB"
            f" (median of {values})"
        )
    return results


# -------------------------------------------------------------------- report
def add_ratios(result, names):
    for kind in ("train", "infer", "train_cpu", "infer_cpu"):
        stats = result[kind]
        for name in names:
            ref = VARIANTS[name][2]
            slow = DROPOUT_BASELINE[ref]
            entry = stats[name]
            entry["reference"] = ref
            entry["vs_ref"] = entry["median_ms"] / stats[ref]["median_ms"]
            if slow in stats:
                entry["vs_ref_rd"] = (
                    entry["median_ms"] / stats[slow]["median_ms"]
                )
            # Ratio of the fastest samples: less sensitive to other load.
            entry["min_vs_ref"] = entry["min_ms"] / stats[ref]["min_ms"]
    memory = result.get("memory") or {}
    for name, probe in memory.items():
        base = memory.get(VARIANTS[name][2], {}).get("growth_mib")
        if base and base > 0:
            probe["vs_ref"] = probe["growth_mib"] / base


def goal_text(kind, name, ratio):
    variant_kind = VARIANTS[name][1]
    if variant_kind == "baseline" or ratio is None:
        return ""
    goal = GOALS[kind][variant_kind]
    return f"<={goal:.2f} {'ok' if ratio <= goal else 'MISS'}"


def format_table(result, names):
    rows = []
    head = (
        f"{'variant':<34}{'median ms':>10}{'IQR ms':>16}{'/ref':>7}"
        f"{'/ref_rd':>8}{'min/min':>8}{'cpu ms':>9}{'cpu/ref':>8}"
        "  goal (wall | cpu)"
    )
    for kind, title in (("train", "train step"), ("infer", "inference")):
        rows.append(
            f"-- {title} (train_on_batch / predict_on_batch); ref = the "
            "plain Keras LSTM or GRU, ref_rd = it with recurrent_dropout"
        )
        rows.append(head)
        for name in names:
            s = result[kind][name]
            c = result[f"{kind}_cpu"][name]
            iqr = f"{s['q1_ms']:.1f}-{s['q3_ms']:.1f}"
            rd_ratio = s.get("vs_ref_rd")
            rd_text = f"{rd_ratio:.2f}" if rd_ratio is not None else "-"
            wall_goal = goal_text(kind, name, s["vs_ref"])
            cpu_goal = goal_text(kind, name, c["vs_ref"])
            goals = f"{wall_goal} | {cpu_goal}" if wall_goal else ""
            rows.append(
                f"{VARIANTS[name][0]:<34}{s['median_ms']:>10.1f}{iqr:>16}"
                f"{s['vs_ref']:>7.2f}{rd_text:>8}{s['min_vs_ref']:>8.2f}"
                f"{c['median_ms']:>9.1f}{c['vs_ref']:>8.2f}  {goals}"
            )
    memory = result.get("memory")
    if memory:
        rows.append("-- peak RSS growth (fresh process per variant)")
        rows.append(f"{'variant':<34}{'MiB':>10}{'/ref':>16}  goal")
        for name in names:
            if name not in memory:
                continue
            probe = memory[name]
            ratio = probe.get("vs_ref")
            ratio_text = f"{ratio:.2f}" if ratio is not None else "-"
            rows.append(
                f"{VARIANTS[name][0]:<34}{probe['growth_mib']:>10.1f}"
                f"{ratio_text:>16}  " + goal_text("memory", name, ratio)
            )
    return "\n".join(rows)


def machine_info():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions(backend):
    import keras

    out = {"keras": keras.__version__}
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
    try:
        mod = __import__(module[backend])
        out[backend] = mod.__version__
    except ImportError:
        pass
    return out


def main(argv=None):
    args = parse_args(argv)
    # The backend must be chosen before keras is imported anywhere.
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.quick:
        args.rounds = args.rounds or 5
        args.warmup = args.warmup or 1
    else:
        args.rounds = args.rounds or 15
        args.warmup = args.warmup or 2

    if args.memory_probe:
        memory_probe(args)
        return

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    import keras

    if keras.backend.backend() != args.backend:
        sys.exit(
            f"keras was imported with backend {keras.backend.backend()!r} "
            f"before {args.backend!r} could be selected"
        )
    names = args.variants.split(",")
    case_label = "quick" if args.quick else args.case
    if args.quick:
        cases = ["quick"]
    elif args.case == "all":
        cases = ["default", "long", "wide"]
    else:
        cases = [args.case]

    report = {
        "backend": args.backend,
        "case": case_label,
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "machine": machine_info(),
        "versions": versions(args.backend),
        "settings": {
            "rounds": args.rounds,
            "warmup": args.warmup,
            "predict_repeats": args.predict_repeats,
            "implementation": args.implementation,
            "optimizer": "adam",
            "loss": "mse",
            "jit_compile": "keras default ('auto')",
        },
        "cases": {},
    }
    for case in cases:
        shape = CASES[case]
        b, t, d, u = shape
        log(f"[{args.backend}] case {case}: B={b} T={t} D={d} U={u}")
        result = {"shape": {"B": b, "T": t, "D": d, "U": u}}
        result.update(time_case(names, shape, args, log))
        if not args.no_memory:
            # --quick only smoke-tests the probe (tiny shapes: no signal).
            probed = names
            if args.quick:
                probed = [n for n in names if n in ("lstm", "zoneout")][:2]
            result["memory"] = measure_memory(probed, shape, args, log)
        add_ratios(result, names)
        report["cases"][case] = result
        jit = sorted(set(result["jit_compile"].values()))
        print(
            f"\n== {args.backend} / {case}: B={b} T={t} D={d} U={u}, "
            f"{result['rounds']} rounds, jit_compile (Keras default) "
            f"resolved to {jit}"
        )
        print(format_table(result, names), flush=True)

    output = args.output or os.path.join(
        HERE, f"results-{args.backend}-{case_label}.json"
    )
    with open(output, "w") as f:
        json.dump(report, f, indent=2)
    log(f"wrote {output}")


if __name__ == "__main__":
    main()
