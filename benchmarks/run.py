"""Speed and memory of the keras_recdrop layers against Keras's own layers.

On one backend, for every variant of `variants.py` (Keras's LSTM/GRU, plain
and with `recurrent_dropout=0.25`; the package's cells in
`keras_recdrop.RNN`; its ready-made layers), in one run: the wall time (and,
as a diagnostic, the process CPU time) of a training step and of inference,
timed round-robin (`harness.py`) until every ratio that has a goal has a
95 % interval narrower than `--interval-width` (`intervals.py`); the
tensor memory of a training step
measured by the backend itself (`memory.py`); and, as information, the
peak-RSS growth of a fresh process. Every figure is divided by the plain
Keras layer of the variant's family (`/plain`) and by Keras's
recurrent-dropout layer (`/rd`), with a bootstrap interval, and judged
against the goals of `variants.GOALS`: met (the interval's upper bound is
at most the goal), MISSED (its lower bound is above it) or UNRESOLVED. The
JSON records the CPU (`machine.py`); its layout is in
`benchmarks/README.md`.

Usage:

    python benchmarks/run.py --backend jax                   # default case
    python benchmarks/run.py --backend tensorflow --case all # the 3 cases
    python benchmarks/run.py --backend torch --variants layers --case long
    python benchmarks/run.py --backend jax --quick           # CI smoke check
"""

import argparse
import os
import sys
import time

import harness
import intervals
import machine
import memory
import tables
import variants as variants_lib

HERE = os.path.dirname(os.path.abspath(__file__))

# Under --quick (tiny shapes, no signal) memory is only smoke-tested, on a
# Keras reference, a cell in keras_recdrop.RNN and a ready-made layer.
QUICK_MEMORY = ("lstm", "zoneout", "layer_gal")
QUICK_RSS = ("lstm", "zoneout")


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0; received {value}")
    return value


def _non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0; received {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    variants_lib.add_arguments(parser)
    memory.add_arguments(parser)
    parser.add_argument(
        "--case",
        choices=("default", "long", "wide", "all"),
        default="default",
        help="default: B=64 T=100 D=64 U=256; long: T=1000; wide: U=1024; "
        "all: the three, one after the other.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Tiny shapes (B=8 T=10 D=8 U=16), 5 rounds, memory of three "
        "variants: the CI smoke check. Its numbers mean nothing.",
    )
    parser.add_argument(
        "--rounds",
        type=variants_lib.positive_int,
        help="Timed rounds at most (60; 5 with --quick).",
    )
    parser.add_argument(
        "--min-rounds",
        type=variants_lib.positive_int,
        default=5,
        help="Rounds run whatever the interval widths and --time-budget "
        "say (default 5; at most --rounds). --min-rounds equal to --rounds "
        "times a fixed number of rounds.",
    )
    parser.add_argument(
        "--interval-width",
        type=_positive_float,
        default=0.05,
        help="Stop adding rounds (after --min-rounds) once every ratio that "
        "has a goal has a 95%% interval narrower than this (default 0.05).",
    )
    parser.add_argument(
        "--warmup",
        type=_non_negative,
        help="Untimed training steps and inference calls per model before "
        "timing (2; 1 with --quick).",
    )
    parser.add_argument(
        "--predict-repeats",
        type=variants_lib.positive_int,
        default=3,
        help="Inference calls averaged into one sample (default 3).",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=420.0,
        help="Stop adding rounds once a case's timing ran this long, after "
        "--min-rounds, whether or not the widths were reached (seconds, "
        "default 420).",
    )
    parser.add_argument(
        "--no-train",
        action="store_true",
        help="Time inference only (the warm-up still trains every model): "
        "on PyTorch the long case's training steps take most of its time "
        "budget.",
    )
    parser.add_argument(
        "--no-memory",
        action="store_true",
        help="Skip the tensor-memory measure.",
    )
    parser.add_argument(
        "--no-rss", action="store_true", help="Skip the peak-RSS probe."
    )
    parser.add_argument(
        "--output",
        help="JSON path (default benchmarks/results-<backend>-<case>.json).",
    )
    args = variants_lib.parse_with_names(parser, argv)
    if args.quick:
        args.rounds = args.rounds or 5
        args.warmup = 1 if args.warmup is None else args.warmup
        args.memory_repeats = args.memory_repeats or 1
    else:
        args.rounds = args.rounds or 60
        args.warmup = 2 if args.warmup is None else args.warmup
        args.memory_repeats = args.memory_repeats or 3
    return args


def _workloads(names, shape, args, log):
    """Builds and warms up every model: `({name: (train, infer)}, jit)`."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = variants_lib.make_data(shape)
    workloads, jit = {}, {}
    for name in names:
        t0 = time.perf_counter()
        model = variants_lib.make_model(name, shape, args.implementation)
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
            model.predict_on_batch(x)
        log(
            f"  built + warmed up {name:<20} in {time.perf_counter() - t0:.1f}s"
        )
        jit[name] = bool(model.jit_compile)
        # train_on_batch returns Python floats and predict_on_batch NumPy:
        # both return only once the device has finished.
        workloads[name] = (
            lambda m=model: m.train_on_batch(x, y),
            lambda m=model: m.predict_on_batch(x),
        )
    return workloads, jit


def _probed(names, args, skip, quick_names):
    """The variants a memory probe measures: none if `skip`, all, or a few
    with --quick."""
    if skip:
        return []
    if not args.quick:
        return names
    return [n for n in names if n in quick_names] or names[: len(quick_names)]


def run_case(case, args, log):
    """Times and measures one case; returns `(result, errors)`."""
    shape = variants_lib.CASES[case]
    names = args.names
    result = {
        "shape": variants_lib.shape_record(case),
        "variants": {n: variants_lib.VARIANTS[n].describe() for n in names},
    }
    workloads, result["jit_compile"] = _workloads(names, shape, args, log)
    # Without a variant that has a goal (only Keras's layers), no width to
    # reach: the rounds or the time budget end the timing.
    measures = ("infer",) if args.no_train else ("train", "infer")
    ratios = harness.goal_ratios(
        result["variants"], variants_lib.GOALS, measures
    )
    labels = {n: v["label"] for n, v in result["variants"].items()}
    enough = None
    if ratios:
        enough = intervals.WidthStop(ratios, args.interval_width, log, labels)
    result["load_average_at_start"] = machine.load_average()
    result.update(
        harness.time_round_robin(
            workloads,
            args.rounds,
            args.predict_repeats,
            args.time_budget,
            log,
            min_rounds=min(args.min_rounds, args.rounds),
            enough=enough,
            measures=measures,
        )
    )
    result["load_average_at_end"] = machine.load_average()
    del workloads
    errors = memory.measure(
        result,
        shape,
        args,
        log,
        tensor_names=_probed(names, args, args.no_memory, QUICK_MEMORY),
        rss_names=_probed(names, args, args.no_rss, QUICK_RSS),
    )
    harness.evaluate(
        result, result["variants"], variants_lib.GOALS, args.interval_width
    )
    return result, errors


def _versions(backend):
    import keras

    import keras_recdrop

    out = {
        "keras": keras.__version__,
        "keras_recdrop": keras_recdrop.__version__,
    }
    module = __import__(backend)
    out[backend] = module.__version__
    if backend == "torch" and module.version.cuda:
        out["cuda"] = module.version.cuda
    return out


def main(argv=None):
    args = parse_args(argv)
    # The backend must be chosen before Keras is imported anywhere.
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # With a GPU, leave memory for the fresh processes of the memory probes.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

    def log(message):
        print(message, file=sys.stderr, flush=True)

    import keras

    import keras_recdrop

    if keras.backend.backend() != args.backend:
        sys.exit(
            f"keras was imported with backend {keras.backend.backend()!r} "
            f"before {args.backend!r} could be selected"
        )
    label = "quick" if args.quick else args.case
    cases = {"quick": ["quick"], "all": ["default", "long", "wide"]}.get(
        label, [label]
    )
    output = args.output or os.path.join(
        HERE, f"results-{args.backend}-{label}.json"
    )
    report = {
        "schema": 4,
        "backend": args.backend,
        "device": memory.device(args.backend),
        "case": label,
        "command": " ".join(
            [os.path.basename(sys.executable)]
            + (sys.argv if argv is None else [sys.argv[0], *argv])
        ),
        "machine": machine.machine_info(),
        "versions": _versions(args.backend),
        "source": machine.source_info(keras_recdrop.__file__),
        "settings": {
            "rounds": args.rounds,
            "min_rounds": min(args.min_rounds, args.rounds),
            "interval_width": args.interval_width,
            "confidence": intervals.CONFIDENCE,
            "bootstrap_resamples": intervals.RESAMPLES,
            "bootstrap_seed": intervals.SEED,
            "time_budget_s": args.time_budget,
            "warmup": args.warmup,
            "predict_repeats": args.predict_repeats,
            "measures": ["infer"] if args.no_train else ["train", "infer"],
            "implementation": args.implementation,
            "rss_repeats": args.rss_repeats,
            "memory_repeats": args.memory_repeats,
            "memory_processes": args.memory_processes,
            "optimizer": "adam",
            "loss": "mse",
            "jit_compile": "keras default ('auto')",
        },
        "cases": {},
    }
    log(f"CPU: {machine.cpu_text(report['machine']['cpu'])}")
    start_load = report["machine"]["load_average_at_start"]
    log(f"load average at start: {machine.load_text(start_load)}")
    status = 0
    for case in cases:
        b, t, d, u = variants_lib.CASES[case]
        log(
            f"[{args.backend}/{report['device']}] case {case}: "
            f"B={b} T={t} D={d} U={u}"
        )
        started = time.perf_counter()
        result, errors = run_case(case, args, log)
        result["elapsed_s"] = time.perf_counter() - started
        report["cases"][case] = result
        report["machine"]["load_average_at_end"] = machine.load_average()
        harness.write_json(output, report)  # after every case
        jit = sorted(set(result["jit_compile"].values()))
        print(
            f"\n== {args.backend} ({report['device']}) / {case}: B={b} T={t} "
            f"D={d} U={u}, {result['rounds']} rounds, jit_compile (Keras "
            f"default) resolved to {jit}, {result['elapsed_s']:.0f}s\n"
            f"   CPU: {machine.cpu_text(report['machine']['cpu'])}\n"
            "   load average "
            f"{machine.load_text(result['load_average_at_start'])} at the "
            "start of the timing, "
            f"{machine.load_text(result['load_average_at_end'])} at its end"
        )
        print(tables.format_case(result), flush=True)
        for error in errors:
            log(error)
            status = 1
    log(f"wrote {output}")
    return status


if __name__ == "__main__":
    sys.exit(main())
