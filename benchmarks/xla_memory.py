"""Exact memory of one training step on JAX, from XLA's buffer assignment.

`run.py`'s memory probe reads the peak resident set of a fresh process. On
JAX most of that is XLA compiling the step (about 290 MiB for the default
case), and it moves by up to 30 MiB between identical processes, which is
more than the 10 % the goal allows. XLA knows exactly how much scratch
memory a compiled program needs: `compiled.memory_analysis()` reports the
temporary buffers (activations kept for the backward pass, gradients,
workspaces) of the jitted gradient of the model's loss. This script prints
that figure for each variant of `run.py`, and its ratio to the variant's
Keras reference, for one case. Compilation only: nothing is timed, so a
loaded machine does not change the numbers.

Usage:

    python benchmarks/xla_memory.py                  # default case
    python benchmarks/xla_memory.py --case long      # T=1000
    python benchmarks/xla_memory.py --variants lstm,gal,zoneout

JAX only (it sets `KERAS_BACKEND=jax` before importing Keras).
"""

import os
import sys

import step_memory
from run import CASES
from run import make_data
from run import make_model


def temp_mib(name, shape):
    """XLA's temporary buffers of `grad(loss)` of one training batch."""
    import jax
    import jax.numpy as jnp

    model = make_model(name, shape, implementation=2)
    x, y = make_data(shape)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss(trainable, non_trainable, x, y):
        out, _ = model.stateless_call(
            trainable, non_trainable, x, training=True
        )
        return jnp.mean((out - y) ** 2)

    compiled = (
        jax.jit(jax.grad(loss)).lower(trainable, non_trainable, x, y).compile()
    )
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def main(argv=None):
    parser = step_memory.parser_for(__doc__.splitlines()[0])
    args = parser.parse_args(argv)
    names = step_memory.variants_with_references(parser, args.variants)
    os.environ["KERAS_BACKEND"] = "jax"
    shape = CASES[args.case]
    results = {name: temp_mib(name, shape) for name in names}
    title = (
        f"jax / {args.case}: B, T, D, U = {shape}; XLA temporary buffers of\n"
        "the jitted gradient of one training batch (model + Dense head)"
    )
    step_memory.report(title, "temp_mib", results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
