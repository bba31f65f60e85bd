"""Tensor memory of one training step on TensorFlow, from TF's allocator.

`run.py`'s memory probe reads the peak resident set of a fresh process.
On TensorFlow's CPU device tensors come from the C library's `malloc`, so
that figure also counts how glibc's heap fragments between the tensors a
`while_loop` keeps and the ones a step frees again; the same step can read
1.1x-1.3x apart under two allocators (`docs/benchmarks.md`). With
`TF_CPU_ALLOCATOR_USE_BFC=true` TensorFlow serves CPU tensors from its own
best-fit-with-coalescing allocator, which counts the bytes it hands out:
`tf.config.experimental.get_memory_info("CPU:0")["peak"]` is then the peak
of live tensor bytes (rounded to the allocator's 256-byte chunks) of a
training step. This script prints that peak for each variant of `run.py`
(the same model, data and `train_on_batch` as its memory probe), one fresh
process per variant, and its ratio to the variant's Keras reference.
Nothing is timed, so a loaded machine does not change the numbers.

Usage:

    python benchmarks/tf_memory.py                  # default case
    python benchmarks/tf_memory.py --case long      # T=1000
    python benchmarks/tf_memory.py --variants lstm,gal,zoneout

TensorFlow only (each probe sets `KERAS_BACKEND=tensorflow` and
`TF_CPU_ALLOCATOR_USE_BFC=true` before importing TensorFlow).
"""

import argparse
import os
import subprocess
import sys

import step_memory
from run import CASES
from run import make_data
from run import make_model


def probe(name, shape):
    """In a fresh process: peak tensor bytes of training steps, in MiB."""
    import tensorflow as tf

    model = make_model(name, shape, implementation=2)
    x, y = make_data(shape)
    model.train_on_batch(x, y)  # traces the step and builds Adam's slots
    tf.config.experimental.reset_memory_stats("CPU:0")
    for _ in range(2):
        model.train_on_batch(x, y)
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20


def run_probe(name, case):
    env = dict(
        os.environ,
        KERAS_BACKEND="tensorflow",
        TF_CPU_ALLOCATOR_USE_BFC="true",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    done = subprocess.run(
        [sys.executable, __file__, "--case", case, "--probe", name],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe {name} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = step_memory.parser_for(__doc__.splitlines()[0])
    # Internal: run one probe in this (fresh) process.
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shape = CASES[args.case]
    if args.probe:
        print(probe(args.probe, shape))
        return 0
    names = step_memory.variants_with_references(parser, args.variants)
    results = {name: run_probe(name, args.case) for name in names}
    title = (
        f"tensorflow / {args.case}: B, T, D, U = {shape}; peak tensor bytes\n"
        "of a training batch (model + Dense head + Adam), TF's BFC allocator"
    )
    step_memory.report(title, "peak_mib", results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
