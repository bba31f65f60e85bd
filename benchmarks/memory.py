"""The memory of a training step on each backend, and the peak RSS.

**Tensor memory** (what the memory goal is judged on) is the bytes of
tensors a training step holds, counted by each backend itself, so that
neither compilation nor the C library's heap enters the figure:

* JAX: XLA's buffer assignment. `memory_analysis().temp_size_in_bytes` of
  `jax.jit(jax.grad(loss))` of the model's loss on the batch: the
  temporary buffers of the step (activations kept for the backward pass,
  workspaces), without the weights, the batch and the gradients XLA
  returns. Compilation only, nothing runs.
* TensorFlow: TensorFlow's allocator. In a fresh process with
  `TF_CPU_ALLOCATOR_USE_BFC=true` (without it, CPU tensors come from
  `malloc` and nothing counts them; GPUs always use it): one warm-up
  `train_on_batch`, then five, each after `reset_memory_stats`; the figure
  is the least of their peaks (`get_memory_info(device)["peak"]`) minus
  the bytes live before the model was built (zero in a fresh process; the
  subtraction makes `--memory-processes one`, all variants in one process,
  comparable). Which transient tensors overlap depends on the thread
  schedule, so a single step's peak is sometimes higher by a step's worth
  of activations; the least one varies by about 5 % between processes, so
  the figure is the median over `--memory-repeats` processes (3). It
  includes the weights, Adam's slots and the batch.
* PyTorch: the allocations of one `train_on_batch` after a warm-up one.
  On a CPU, `torch.profiler.profile(profile_memory=True)` records every
  allocation and free; the figure is the peak of their running sum (bytes
  allocated above what was live when the step started: activations,
  gradients, temporaries; frees of blocks allocated before the step are
  not reported, so a block the step frees early never lowers the sum). On
  CUDA, `torch.cuda.max_memory_allocated()` minus
  `torch.cuda.memory_allocated()` before the step.

The three are different quantities, so only the ratio to the plain Keras
layer measured the same way on the same backend is compared (goal <=
1.10x).

**Peak RSS** (information): the growth of the resident set of a fresh
process that builds the model, trains twice and predicts twice (the high-
water mark `VmHWM`, reset after the imports), the median of `repeats`
processes per variant. It includes compilation, the Python objects and the
allocator's heap, and moves by several MiB between identical processes.

`run.py` calls `tensor_memory` and `rss_growth`; alone this script prints
the memory table of one backend and case:

    python benchmarks/memory.py --backend jax --case long
    python benchmarks/memory.py --backend tensorflow --variants gal,zoneout
    python benchmarks/memory.py --backend tensorflow --memory-repeats 5
    python benchmarks/memory.py --backend torch --rss
"""

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys

import harness
import tables
import variants as variants_lib

MEASURES = {
    ("jax", "cpu"): "XLA temp buffers of jit(grad(loss)) (memory_analysis)",
    ("jax", "gpu"): "XLA temp buffers of jit(grad(loss)) (memory_analysis)",
    ("tensorflow", "cpu"): "TF allocator peak of train_on_batch, least of "
    "5 (TF_CPU_ALLOCATOR_USE_BFC=true, fresh process)",
    ("tensorflow", "gpu"): "TF allocator peak of train_on_batch, least of "
    "5 (GPU:0, fresh process)",
    ("torch", "cpu"): "peak of the running sum of allocations over "
    "train_on_batch (torch.profiler, profile_memory=True)",
    ("torch", "gpu"): "torch.cuda.max_memory_allocated over train_on_batch, "
    "above the start",
}
MIB = 2.0**20


def device(backend):
    """`"gpu"` if the backend (imported here) computes on a GPU, else
    `"cpu"`."""
    if backend == "jax":
        import jax

        return "cpu" if jax.default_backend() == "cpu" else "gpu"
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


# ------------------------------------------------------------------ probes
def _jax_temp_bytes(model, x, y):
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(trainable, non_trainable, x, y):
        out, _ = model.stateless_call(
            trainable, non_trainable, x, training=True
        )
        return jnp.mean((out - y) ** 2)

    lowered = jax.jit(jax.grad(loss)).lower(trainable, non_trainable, x, y)
    return {"mib": lowered.compile().memory_analysis().temp_size_in_bytes}


def _tf_peak_bytes(model, x, y, base, steps=5):
    import tensorflow as tf

    name = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    model.train_on_batch(x, y)  # traces the step, builds Adam's slots
    peaks = []
    for _ in range(steps):
        tf.config.experimental.reset_memory_stats(name)
        model.train_on_batch(x, y)
        peaks.append(
            tf.config.experimental.get_memory_info(name)["peak"] - base
        )
    # The thread schedule decides which transients overlap: one step's
    # peak is sometimes higher, the least one is reproducible.
    return {"mib": min(peaks), "step_peaks_mib": peaks, "base_mib": base}


def _tf_live_bytes():
    import tensorflow as tf

    name = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    return tf.config.experimental.get_memory_info(name)["current"]


def _torch_step_bytes(model, x, y):
    import torch

    model.train_on_batch(x, y)  # builds Adam's slots
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        model.train_on_batch(x, y)
        torch.cuda.synchronize()
        return {"mib": torch.cuda.max_memory_allocated() - before}
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(
        activities=activities, profile_memory=True
    ) as prof:
        model.train_on_batch(x, y)
    # Every allocation (+bytes) and free (-bytes) the profiler saw. Frees
    # of blocks allocated before the step are not reported (the profiler
    # warns about them), so the running sum counts what the step allocated.
    changes = [
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]"
    ]
    return {"mib": peak_of_running_sum(changes), "events": len(changes)}


def peak_of_running_sum(changes):
    """The peak of the running sum of `(time, bytes)` changes, in time
    order (allocations positive, frees negative); 0 if it never rises."""
    live = peak = 0
    for _, nbytes in sorted(changes):
        live += nbytes
        peak = max(peak, live)
    return peak


def _tensor_probe(backend, name, shape, implementation):
    """The tensor memory of variant `name`, measured in this process."""
    import keras

    if backend == "tensorflow":
        # Several variants in one process: free the previous one's tensors.
        keras.backend.clear_session()
        gc.collect()
    keras.utils.set_random_seed(0)
    x, y = variants_lib.make_data(shape)
    base = _tf_live_bytes() if backend == "tensorflow" else 0
    model = variants_lib.make_model(name, shape, implementation)
    if backend == "jax":
        result = _jax_temp_bytes(model, x, y)
    elif backend == "tensorflow":
        result = _tf_peak_bytes(model, x, y, base)
    else:
        result = _torch_step_bytes(model, x, y)
    return {
        key: _to_mib(value) if key.endswith("mib") else value
        for key, value in result.items()
    }


def _to_mib(nbytes):
    if isinstance(nbytes, list):
        return [v / MIB for v in nbytes]
    return nbytes / MIB


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
    """Peak resident set of this process, in MiB.

    On Linux `VmHWM`, the high-water mark that `/proc/self/clear_refs` can
    reset. Not `ru_maxrss`: the kernel also folds the high-water mark into
    it whenever a thread exits, and the many threads that exit while
    TensorFlow is imported pin it to the import peak. Elsewhere
    `ru_maxrss` (KiB on Linux, bytes on macOS).
    """
    hwm = _proc_status_mib("VmHWM")
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MIB if sys.platform == "darwin" else rss / 1024.0


def reset_peak_rss():
    """Resets the peak RSS to the current RSS; returns the new baseline.

    Importing a backend peaks higher than running a small model, so without
    a reset the peak would not move. Linux >= 4.0 resets the high-water
    mark when "5" is written to `/proc/self/clear_refs`; elsewhere the
    baseline is the peak so far.
    """
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return peak_rss_mib()


def _rss_probe(backend, name, shape, implementation):
    """Peak-RSS growth of building, training and predicting (fresh
    process)."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = variants_lib.make_data(shape)
    before = reset_peak_rss()
    model = variants_lib.make_model(name, shape, implementation)
    for _ in range(2):
        model.train_on_batch(x, y)
    for _ in range(2):
        model.predict_on_batch(x)
    return {"growth_mib": peak_rss_mib() - before}


PROBES = {"tensor": _tensor_probe, "rss": _rss_probe}


def _probe_env(backend, kind):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    # A child must not take the GPU memory its parent holds.
    env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if kind == "tensor":
        env["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    else:
        env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)  # RSS: the default malloc
    return env


def _in_fresh_process(kind, backend, names, shape, implementation):
    """Runs `PROBES[kind]` for `names` in one fresh process.

    Returns `(results, error)`: dict name -> probe result for the variants
    measured, and the end of the process's stderr if it failed.
    """
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--probe",
        kind,
        "--backend",
        backend,
        "--shape",
        ",".join(str(v) for v in shape),
        "--implementation",
        str(implementation),
        "--variants",
        ",".join(names),
    ]
    done = subprocess.run(
        command,
        env=_probe_env(backend, kind),
        capture_output=True,
        text=True,
        check=False,
    )
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            results[record.pop("name")] = record
    error = done.stderr[-3000:] if done.returncode != 0 else None
    return results, error


# --------------------------------------------------------------- measures
def tensor_memory(
    names,
    shape,
    backend,
    implementation,
    log,
    processes="per-variant",
    repeats=1,
):
    """The tensor memory of each variant (see the module docstring).

    JAX and PyTorch measure in this process (which must run `backend`);
    their figures repeat exactly, so `repeats` does not apply. TensorFlow
    measures in fresh processes, one per variant or, with `processes=
    "one"`, one for all, and `repeats` rounds of them, run round-robin over
    the variants: the figure of a variant is the median of its processes'
    figures (the least step peak varies by about 5 % between processes; a
    cell and its ready-made layer, the same code, read 1.14x and 1.09x
    Keras's LSTM in two single processes).

    Returns:
        `({"measure", "device", "variants": {name: {"mib", ...}}},
        errors)`, errors a list of failure messages. With several
        processes a variant's entry is its median process's record plus
        `"samples_mib"`, every process's figure.
    """
    dev = device(backend)
    measured, errors = {}, []
    measure = MEASURES[backend, dev]
    if backend == "tensorflow":
        groups = [names] if processes == "one" else [[n] for n in names]
        samples = {name: [] for name in names}
        for _ in range(repeats):
            for group in groups:
                results, error = _in_fresh_process(
                    "tensor", backend, group, shape, implementation
                )
                for name, record in results.items():
                    samples[name].append(record)
                if error:
                    errors.append(f"tensor memory of {group} failed:\n{error}")
        for name, records in samples.items():
            if records:
                measured[name] = _median_record(records)
        if repeats > 1:
            measure += f"; median of {repeats} processes"
    else:
        for name in names:
            measured[name] = _tensor_probe(backend, name, shape, implementation)
    for name, entry in measured.items():
        samples = entry.get("samples_mib") or []
        text = ", ".join(f"{v:.1f}" for v in samples)
        log(
            f"  tensor memory {name:<20} {entry['mib']:9.2f} MiB"
            + (f" (processes {text})" if samples else "")
        )
    # JAX's and PyTorch's figures repeat exactly: their ratios' intervals
    # are the ratios themselves. TensorFlow's vary between processes: their
    # intervals bootstrap the processes (`harness.add_ratios`).
    table = {
        "measure": measure,
        "device": dev,
        "repeats_exactly": backend != "tensorflow",
    }
    table["variants"] = {n: measured[n] for n in names if n in measured}
    return table, errors


def _median_record(records):
    """The record of the median `"mib"` (the upper one of an even count),
    with every record's figure as `"samples_mib"` if there are several."""
    if len(records) == 1:
        return records[0]
    ordered = sorted(records, key=lambda r: r["mib"])
    median = dict(ordered[len(ordered) // 2])
    median["samples_mib"] = [r["mib"] for r in records]
    return median


def rss_growth(names, shape, backend, implementation, repeats, log):
    """Peak-RSS growth per variant: the median of `repeats` fresh processes,
    run round-robin over the variants. Returns `(table, errors)`."""
    samples = {name: [] for name in names}
    errors = []
    for _ in range(repeats):
        for name in names:
            results, error = _in_fresh_process(
                "rss", backend, [name], shape, implementation
            )
            if error:
                errors.append(f"RSS probe of {name} failed:\n{error}")
            if name in results:
                samples[name].append(results[name]["growth_mib"])
    table = {}
    for name, values in samples.items():
        if values:
            table[name] = {
                "growth_mib": statistics.median(values),
                "samples_mib": values,
            }
            text = ", ".join(f"{v:.1f}" for v in values)
            log(
                f"  peak RSS {name:<20} +{statistics.median(values):.1f} MiB "
                f"(samples {text})"
            )
    return table, errors


def measure(case, shape, args, log, tensor_names, rss_names):
    """Adds the tensor memory of `tensor_names` (`case["memory"]`) and the
    peak RSS of `rss_names` (`case["rss"]`) to `case`, each if any name is
    given, with `args.backend`, `args.implementation`,
    `args.memory_processes`, `args.memory_repeats` and `args.rss_repeats`.
    Returns the errors."""
    errors = []
    if tensor_names:
        case["memory"], failed = tensor_memory(
            tensor_names,
            shape,
            args.backend,
            args.implementation,
            log,
            args.memory_processes,
            args.memory_repeats,
        )
        errors += failed
    if rss_names:
        case["rss"], failed = rss_growth(
            rss_names,
            shape,
            args.backend,
            args.implementation,
            args.rss_repeats,
            log,
        )
        errors += failed
    return errors


# -------------------------------------------------------------------- CLI
def _shape(text):
    values = tuple(int(v) for v in text.split(","))
    if len(values) != 4 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected four positive integers B,T,D,U; received {text!r}"
        )
    return values


def add_arguments(parser):
    """`--memory-processes` and `--rss-repeats` (`run.py` takes them too)."""
    parser.add_argument(
        "--memory-processes",
        choices=("per-variant", "one"),
        default="per-variant",
        help="TensorFlow's tensor memory: a fresh process per variant (the "
        "default) or one fresh process for all variants (faster).",
    )
    parser.add_argument(
        "--memory-repeats",
        type=variants_lib.positive_int,
        default=None,
        help="TensorFlow's tensor memory: rounds of fresh processes; a "
        "variant's figure is the median (default 3; 1 with run.py --quick). "
        "JAX's and PyTorch's figures repeat exactly and are measured once.",
    )
    parser.add_argument(
        "--rss-repeats",
        type=variants_lib.positive_int,
        default=1,
        help="Fresh processes per variant for the peak-RSS probe; the "
        "median is reported (default 1).",
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    variants_lib.add_arguments(parser)
    add_arguments(parser)
    parser.add_argument(
        "--case", choices=sorted(variants_lib.CASES), default="default"
    )
    parser.add_argument(
        "--shape",
        type=_shape,
        help="B,T,D,U: measure this shape instead of --case's.",
    )
    parser.add_argument(
        "--rss", action="store_true", help="Also the peak-RSS probe."
    )
    parser.add_argument("--output", help="Optional JSON path.")
    # Internal: run the probes in this (fresh) process.
    parser.add_argument(
        "--probe", choices=sorted(PROBES), help=argparse.SUPPRESS
    )
    args = variants_lib.parse_with_names(parser, argv)
    args.memory_repeats = args.memory_repeats or 3
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.probe:
        for name in args.variants.split(","):
            record = PROBES[args.probe](
                args.backend, name, args.shape, args.implementation
            )
            print(json.dumps({"name": name, **record}), flush=True)
        return 0

    def log(message):
        print(message, file=sys.stderr, flush=True)

    shape = args.shape or variants_lib.CASES[args.case]
    case = {
        "shape": dict(zip("BTDU", shape, strict=True)),
        "variants": {
            n: variants_lib.VARIANTS[n].describe() for n in args.names
        },
    }
    errors = measure(
        case, shape, args, log, args.names, args.names if args.rss else ()
    )
    harness.evaluate(case, case["variants"], variants_lib.GOALS)
    label = "custom shape" if args.shape else args.case
    print(f"== {args.backend} / {label}: B, T, D, U = {shape}")
    print(tables.format_case(case))
    for error in errors:
        log(error)
    if args.output:
        harness.write_json(
            args.output,
            {"backend": args.backend, "cases": {label: case}},
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
