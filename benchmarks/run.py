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

Memory: the peak resident-set growth (`ru_maxrss`) of a fresh subprocess per
variant that builds the model, trains it and predicts with it (see
`benchmarks/README.md` for why not `tracemalloc`).

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

# name -> (description, kind); kind selects the spec goal that applies.
VARIANTS = {
    "lstm": ("keras LSTM", "baseline"),
    "lstm_rd": ("keras LSTM(recurrent_dropout=.25)", "baseline"),
    "gal": ("Gal rd=.25 (per-gate masks)", "cell"),
    "gal_tied": ("Gal rd=.25 tied_masks=True", "cell"),
    "semeniuta": ("Semeniuta rd=.25 (per step)", "cell"),
    "zoneout": ("Zoneout c=.5 h=.05", "zoneout"),
    "gal0": ("Gal, all rates 0", "cell"),
}

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
        help="Comma-separated subset of: " + ", ".join(VARIANTS),
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
    if "lstm" not in args.variants.split(","):
        args.variants = "lstm," + args.variants
    return args


# --------------------------------------------------------------------- models
def make_layer(name, units, implementation):
    import keras

    import keras_recdrop as rd

    kw = {"implementation": implementation}
    if name == "lstm":
        return keras.layers.LSTM(units)
    if name == "lstm_rd":
        return keras.layers.LSTM(units, recurrent_dropout=0.25)
    if name == "gal":
        cell = rd.GalLSTMCell(units, recurrent_dropout=0.25, **kw)
    elif name == "gal_tied":
        cell = rd.GalLSTMCell(
            units, recurrent_dropout=0.25, tied_masks=True, **kw
        )
    elif name == "semeniuta":
        cell = rd.SemeniutaLSTMCell(units, recurrent_dropout=0.25, **kw)
    elif name == "zoneout":
        cell = rd.ZoneoutLSTMCell(units, zoneout_c=0.5, zoneout_h=0.05, **kw)
    elif name == "gal0":
        cell = rd.GalLSTMCell(units, **kw)
    else:
        raise ValueError(name)
    return rd.RNN(cell)


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
    start = time.perf_counter()
    rounds = 0
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            models[name].train_on_batch(x, y)  # returns a float: synced
            train[name].append(time.perf_counter() - t0)
        for name in order:
            t0 = time.perf_counter()
            for _ in range(args.predict_repeats):
                models[name].predict_on_batch(x)  # returns NumPy: synced
            infer[name].append(
                (time.perf_counter() - t0) / args.predict_repeats
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


def measure_memory(names, shape, args, log):
    results = {}
    env = dict(os.environ, KERAS_BACKEND=args.backend)
    for name in names:
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
            log(f"  memory probe {name} failed:\n{proc.stderr[-2000:]}")
            continue
        probe = json.loads(proc.stdout.strip().splitlines()[-1])
        probe["growth_mib"] = probe["peak_mib"] - probe["baseline_mib"]
        results[name] = probe
        log(f"  memory {name:<10} +{probe['growth_mib']:.1f} MiB")
    return results


# -------------------------------------------------------------------- report
def add_ratios(result, names):
    for kind in ("train", "infer"):
        stats = result[kind]
        for name in names:
            for ref in ("lstm", "lstm_rd"):
                if ref in stats:
                    stats[name][f"vs_{ref}"] = (
                        stats[name]["median_ms"] / stats[ref]["median_ms"]
                    )
            # Ratio of the fastest samples: less sensitive to other load.
            stats[name]["min_vs_lstm"] = (
                stats[name]["min_ms"] / stats["lstm"]["min_ms"]
            )
    memory = result.get("memory") or {}
    base = memory.get("lstm", {}).get("growth_mib")
    for probe in memory.values():
        if base and base > 0:
            probe["vs_lstm"] = probe["growth_mib"] / base


def goal_text(kind, name, ratio):
    variant_kind = VARIANTS[name][1]
    if variant_kind == "baseline" or ratio is None:
        return ""
    goal = GOALS[kind][variant_kind]
    return f"<={goal:.2f} {'ok' if ratio <= goal else 'MISS'}"


def format_table(result, names):
    rows = []
    head = (
        f"{'variant':<34}{'median ms':>10}{'IQR ms':>16}{'min-max ms':>18}"
        f"{'/LSTM':>7}{'/LSTMrd':>8}{'min/min':>8}  goal"
    )
    for kind, title in (("train", "train step"), ("infer", "inference")):
        rows.append(f"-- {title} (train_on_batch / predict_on_batch)")
        rows.append(head)
        for name in names:
            s = result[kind][name]
            iqr = f"{s['q1_ms']:.1f}-{s['q3_ms']:.1f}"
            mm = f"{s['min_ms']:.1f}-{s['max_ms']:.1f}"
            rd_ratio = s.get("vs_lstm_rd")
            rd_text = f"{rd_ratio:.2f}" if rd_ratio is not None else "-"
            rows.append(
                f"{VARIANTS[name][0]:<34}{s['median_ms']:>10.1f}{iqr:>16}"
                f"{mm:>18}{s['vs_lstm']:>7.2f}{rd_text:>8}"
                f"{s['min_vs_lstm']:>8.2f}  "
                + goal_text(kind, name, s["vs_lstm"])
            )
    memory = result.get("memory")
    if memory:
        rows.append("-- peak RSS growth (fresh process per variant)")
        rows.append(f"{'variant':<34}{'MiB':>10}{'/LSTM':>16}  goal")
        for name in names:
            if name not in memory:
                continue
            probe = memory[name]
            ratio = probe.get("vs_lstm")
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
                probed = [n for n in names if n in ("lstm", "zoneout")]
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
