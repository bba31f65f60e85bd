"""The loop costs quoted in the pull-request descriptions of the series.

Runs against the Keras on the path, normally the patched source tree:

    KERAS_BACKEND=jax PYTHONPATH=/path/to/patched/keras \\
        python docs/upstream/measure_loop_cost.py masks

Commands:

- `masks` (0003): LSTM/GRU(dropout=0.25) with `dropout_masks="shared"`
  (the masks and path of Keras before the patch) and with the new default
  `"per_gate"`;
- `recurrent` (0004): LSTM/GRU(recurrent_dropout=0.25) with
  `implementation=1` (what recurrent dropout forced before) and 2, per
  gate and shared;
- `zoneout` (0007): a zoneout LSTMCell drawing its per-step noise from its
  SeedGenerator inside the loop (before; fails in a JAX scan) and from
  `step_seed` (after), against the plain LSTMCell;
- `program` (0007): a digest of the traced training program (JAX: the
  jaxpr; TensorFlow: the graph's op types and counts, loop body included)
  of existing layers, to compare two Keras trees.

Timings are training steps (`train_on_batch`) of the configurations in
one process, interleaved round by round (median of rounds of median
steps), so that a ratio compares code paths under the same load. The
environment variable UNITS sets the width (default 128).
"""

import collections
import hashlib
import os
import sys
import time

import keras
import numpy as np

B, T, D = 64, 50, 64
U = int(os.environ.get("UNITS", 128))
ROUNDS, STEPS, WARMUP = 7, 5, 3
BACKEND = keras.backend.backend()


class StatefulZoneoutCell(keras.layers.LSTMCell):
    """Zoneout drawn from the cell's SeedGenerator inside the loop."""

    def call(self, inputs, states, training=False):
        h, (h, c) = super().call(inputs, states, training=training)
        if training:
            shape = keras.ops.shape(h)
            gen = self.seed_generator
            keep_h = keras.random.uniform(shape, seed=gen) < 0.1
            keep_c = keras.random.uniform(shape, seed=gen) < 0.1
            h = keras.ops.where(keep_h, states[0], h)
            c = keras.ops.where(keep_c, states[1], c)
        return h, [h, c]


class StepSeedZoneoutCell(keras.layers.LSTMCell):
    """Zoneout drawn from the per-step seed that `RNN` passes (0007)."""

    def call(self, inputs, states, training=False, step_seed=None):
        h, (h, c) = super().call(inputs, states, training=training)
        if training:
            shape = (2, *keras.ops.shape(h))
            noise = keras.random.uniform(shape, seed=step_seed)
            h = keras.ops.where(noise[0] < 0.1, states[0], h)
            c = keras.ops.where(noise[1] < 0.1, states[1], c)
        return h, [h, c]


def configurations(command):
    """{name: layer factory}; the first of each group is the reference."""
    lstm, gru = keras.layers.LSTM, keras.layers.GRU
    if command == "masks":
        return {
            "LSTM dropout, before (shared)": lambda: lstm(
                U, dropout=0.25, dropout_masks="shared", seed=1
            ),
            "LSTM dropout, after (per_gate)": lambda: lstm(
                U, dropout=0.25, seed=1
            ),
            "GRU dropout, before (shared)": lambda: gru(
                U, dropout=0.25, dropout_masks="shared", seed=1
            ),
            "GRU dropout, after (per_gate)": lambda: gru(
                U, dropout=0.25, seed=1
            ),
        }
    if command == "recurrent":

        def make(cls, **kwargs):
            return lambda: cls(U, recurrent_dropout=0.25, seed=1, **kwargs)

        configs = {}
        for name, cls in (("LSTM", lstm), ("GRU", gru)):
            prefix = f"{name} rec. dropout"
            configs[f"{prefix}, before (impl. 1)"] = make(cls, implementation=1)
            configs[f"{prefix}, after (impl. 2, per_gate)"] = make(cls)
            configs[f"{prefix}, after (impl. 2, shared)"] = make(
                cls, dropout_masks="shared"
            )
        return configs
    if command == "zoneout":
        rnn = keras.layers.RNN
        configs = {"plain LSTMCell": lambda: rnn(keras.layers.LSTMCell(U))}
        if BACKEND != "jax":  # a JAX scan cannot run it
            name = "zoneout, SeedGenerator in the loop (before)"
            configs[name] = lambda: rnn(StatefulZoneoutCell(U, seed=1))
        configs["zoneout, step_seed (after)"] = lambda: rnn(
            StepSeedZoneoutCell(U, seed=1)
        )
        return configs
    raise SystemExit(f"unknown command {command!r}")


def time_steps(command):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, D)).astype("float32")
    y = rng.standard_normal((B, U)).astype("float32")
    models = {}
    for name, make in configurations(command).items():
        model = keras.Sequential([keras.Input((T, D)), make()])
        model.compile("sgd", "mse")
        for _ in range(WARMUP):
            model.train_on_batch(x, y)
        models[name] = model
    times = {name: [] for name in models}
    for _ in range(ROUNDS):
        for name, model in models.items():
            steps = []
            for _ in range(STEPS):
                start = time.perf_counter()
                model.train_on_batch(x, y)
                steps.append(time.perf_counter() - start)
            times[name].append(np.median(steps))
    print(
        f"keras {keras.__version__}, {BACKEND}, B={B} T={T} D={D} U={U}, "
        f"median of {ROUNDS} rounds x {STEPS} steps"
    )
    group = reference = None
    for name in models:
        median = np.median(times[name]) * 1000
        if command == "zoneout":
            reference = reference or median
        elif name.split()[0] != group:
            group, reference = name.split()[0], median
        print(f"  {name:46s} {median:8.1f} ms  {median / reference:5.2f}x")


def program():
    x = np.random.default_rng(0).standard_normal((8, 12, 5))
    x = x.astype("float32")
    cell = keras.layers.LSTMCell
    configs = {
        "LSTM": lambda: keras.layers.LSTM(6, seed=1),
        "RNN(LSTMCell, dropout)": lambda: keras.layers.RNN(
            cell(6, dropout=0.25, recurrent_dropout=0.25, seed=1)
        ),
        "RNN(2 stacked LSTMCells, dropout)": lambda: keras.layers.RNN(
            [
                cell(6, dropout=0.2, seed=1),
                cell(6, recurrent_dropout=0.2, seed=2),
            ]
        ),
    }
    for name, make in configs.items():
        layer = make()
        layer.build(x.shape)
        if BACKEND == "jax":
            import jax

            def call(trainable, non_trainable, x, layer=layer):
                return layer.stateless_call(
                    trainable, non_trainable, x, training=True
                )

            text = str(
                jax.make_jaxpr(call)(
                    [v.value for v in layer.trainable_variables],
                    [v.value for v in layer.non_trainable_variables],
                    x,
                )
            )
            size = f"{len(text)} characters of jaxpr"
        elif BACKEND == "tensorflow":
            import tensorflow as tf

            function = tf.function(
                lambda x, layer=layer: layer(x, training=True)
            )
            graph = function.get_concrete_function(tf.TensorSpec(x.shape)).graph
            ops = collections.Counter(op.type for op in graph.get_operations())
            for body in graph.as_graph_def().library.function:
                ops.update(node.op for node in body.node_def)
            text = str(sorted(ops.items()))
            size = f"{sum(ops.values())} ops"
        else:
            raise SystemExit("`program` needs the JAX or TensorFlow backend")
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        print(f"{name}: {size}, sha256 {digest}")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "masks"
    if command == "program":
        program()
    else:
        time_steps(command)
