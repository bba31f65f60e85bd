"""What per-gate masks cost on JAX, without the package: four products.

Per-gate recurrent dropout (Gal & Ghahramani's untied variant, and Keras's
own `LSTM(recurrent_dropout=...)`, whose cell then runs `implementation=1`)
multiplies a differently masked copy of `h` by each gate's block of the
recurrent kernel: four `(B, U) x (U, U)` products per step instead of one
`(B, U) x (U, 4U)`. This script times, in plain JAX (`lax.scan`, `jax.grad`,
`jit`), the recurrent part of an LSTM's training step with:

* `fused`: one product `h @ K` (the plain LSTM, and tied masks);
* `per_gate`: `concat_k((h * m_k) @ K_k)`, four masks (Gal, per gate);
* `shared_four`: `concat_k((h * m) @ K_k)`, one mask and four products;
* `batched`: the per-gate products as one batched product (`einsum`).

It isolates the cost the package cannot remove: XLA:CPU runs four small
products slower than one large one, whatever masks they use.

Usage:

    python benchmarks/per_gate_products.py [--batch 64] [--timesteps 100]
        [--units 256] [--rounds 10]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in (
        ("batch", 64),
        ("timesteps", 100),
        ("units", 256),
        ("rounds", 10),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args(argv)
    for name in ("batch", "timesteps", "units", "rounds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    import jax
    import jax.numpy as jnp

    b, t, u = args.batch, args.timesteps, args.units
    key = jax.random.PRNGKey(0)
    kernel = jax.random.normal(key, (u, 4 * u)) * 0.05
    blocks = jnp.stack(jnp.split(kernel, 4, axis=1))
    inputs = jax.random.normal(key, (t, b, 4 * u)) * 0.1
    masks = (jax.random.uniform(key, (4, b, u)) > 0.25) / 0.75

    def cell(z, c):
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c

    def training_step(product):
        def loss(kernel, blocks):
            def step(carry, x):
                h, c = carry
                h, c = cell(x + product(h, kernel, blocks), c)
                return (h, c), h

            zeros = jnp.zeros((b, u))
            _, hs = jax.lax.scan(step, (zeros, zeros), inputs)
            return jnp.sum(hs**2)

        return jax.jit(jax.grad(loss, argnums=(0, 1)))

    variants = {
        "fused": lambda h, k, kb: h @ k,
        "per_gate": lambda h, k, kb: jnp.concatenate(
            [(h * masks[g]) @ kb[g] for g in range(4)], -1
        ),
        "shared_four": lambda h, k, kb: jnp.concatenate(
            [(h * masks[0]) @ kb[g] for g in range(4)], -1
        ),
        "batched": lambda h, k, kb: jnp.einsum(
            "gbu,guv->bgv", h[None] * masks, kb
        ).reshape(b, 4 * u),
    }
    steps = {name: training_step(f) for name, f in variants.items()}
    for step in steps.values():
        jax.block_until_ready(step(kernel, blocks))
    samples = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(step(kernel, blocks))
            samples[name].append(
                (time.perf_counter() - wall, time.process_time() - cpu)
            )
    base_wall = statistics.median(w for w, _ in samples["fused"])
    base_cpu = statistics.median(c for _, c in samples["fused"])
    print(f"B={b} T={t} U={u}, {args.rounds} rounds, jax {jax.__version__}")
    print(
        f"{'variant':12}{'wall ms':>10}{'/fused':>8}{'cpu ms':>10}{'/fused':>8}"
    )
    for name, values in samples.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(
            f"{name:12}{wall * 1e3:10.1f}{wall / base_wall:8.2f}"
            f"{cpu * 1e3:10.1f}{cpu / base_cpu:8.2f}"
        )


if __name__ == "__main__":
    main()
