"""What keras-recdrop fixes in Keras's LSTM, measured live, side by side.

Each check builds Keras's own layer and the package's, with the same
weights and seed, runs them on the current backend and prints what
happened (the numbers are computed now, nothing is hard-coded):

1. Implementation modes. `keras.layers.LSTMCell(dropout=0.5)` with
   `implementation=1` and `2`, same weights, seed and input, in training:
   the largest difference between the two outputs. Keras draws four
   per-gate masks in mode 1 and one shared mask in mode 2; the package's
   cells draw the same masks in both modes.
2. `keras.layers.LSTM(dropout=0.5, implementation=1)`, a training call:
   Keras's layer applies mode 1's list of four masks to the whole sequence
   as if it were one mask, and fails on every backend (Keras 3.15.1 and
   3.16.0.dev); the package's layer trains.
3. `dropout=1.5`. Keras stores 1.0 without a word; the check measures what
   a training call then does (no dropout, or every input dropped, depending
   on the backend's path). The package raises a `ValueError`.

A Keras with the change proposed in docs/upstream.md fixes checks 1-5; the
table then shows it (check 6 needs a cell that takes Keras's per-step
seeds, which this Keras-API cell does not).
4. `recurrent_dropout=0.25` with `implementation=2`: the mode the layer
   runs. Keras switches to mode 1 (four split products) silently.
5. `keras.layers.Bidirectional(..., dropout=0.5, seed=1)`: the backward
   layer gets the forward layer's weights and the input is constant in
   time, so the two directions give the same output exactly when they
   draw the same masks. Keras copies the seed into both directions.
6. Per-step noise in the time loop (zoneout). With weights chosen so that
   every update adds 1 to the cell state `c`, `c_T` counts the steps at
   which a unit was updated; the check reports the share of units updated
   at some steps and kept at others (0 % if the same mask repeats at every
   step). Keras's side is a zoneout cell written the way Keras's API
   allows, drawing its noise inside `call` from its `SeedGenerator`, in
   `keras.layers.RNN`: on JAX its `lax.scan` traces the draw once, so the
   mask repeats silently. The package's side is `ZoneoutLSTMCell` in
   `keras_recdrop.RNN`.

Usage::

    KERAS_BACKEND=jax python examples/fixes.py
"""

import textwrap
import time

import keras
import numpy as np
from keras import ops

import keras_recdrop as kr

BATCH, STEPS, FEATURES, UNITS = 8, 16, 5, 6
SEED = 1


def _numpy(x):
    return ops.convert_to_numpy(x)


def _max_diff(a, b):
    return float(np.max(np.abs(_numpy(a) - _numpy(b))))


def _inputs(time_constant=False):
    rng = np.random.default_rng(0)
    if time_constant:
        x = rng.standard_normal((BATCH, 1, FEATURES))
        return np.repeat(x, STEPS, axis=1).astype("float32")
    return rng.standard_normal((BATCH, STEPS, FEATURES)).astype("float32")


def _same_weights(first, second, shape):
    first.build(shape)
    second.build(shape)
    second.set_weights(first.get_weights())


def implementation_modes():
    """Largest |mode 1 - mode 2| training output, Keras's and the package's."""
    x = _inputs()

    def difference(cell_class, layer_class):
        one, two = (
            layer_class(
                cell_class(UNITS, dropout=0.5, implementation=m, seed=SEED)
            )
            for m in (1, 2)
        )
        _same_weights(one, two, x.shape)
        return _max_diff(one(x, training=True), two(x, training=True))

    return {
        "keras": difference(keras.layers.LSTMCell, keras.layers.RNN),
        "ours": difference(kr.GalLSTMCell, kr.RNN),
    }


def _error(call):
    """`None` if `call()` runs, else the exception's type and first line."""
    try:
        call()
    except Exception as e:  # any failure is the finding
        lines = [line for line in str(e).splitlines() if line.strip()]
        first = next(
            (line for line in lines if "Exception encountered" not in line),
            "",
        )
        first = first.replace("\x1b[1m", "").replace("\x1b[0m", "").strip()
        return f"{type(e).__name__}: {first}"
    return None


def layer_mode_one_with_dropout():
    """Whether the LSTM layer trains with `dropout` in mode 1, per library."""
    x = _inputs()

    def call(layer_class):
        layer = layer_class(UNITS, dropout=0.5, implementation=1, seed=SEED)
        return lambda: layer(x, training=True)

    return {
        "keras": _error(call(keras.layers.LSTM)),
        "ours": _error(call(kr.GalLSTM)),
    }


def _refusal(error):
    """The first line of a `ValueError`, as the table shows it."""
    return f"ValueError: {str(error).splitlines()[0]}"


def dropout_above_one():
    """What `dropout=1.5` becomes: Keras's stored rate and its effect.

    `keras_stored` and `keras_effect` are `None` and `keras_error` holds
    the message where Keras refuses the rate (the change of
    docs/upstream.md).
    """
    try:
        ours_error = None
        kr.GalLSTM(UNITS, dropout=1.5)
    except ValueError as e:
        ours_error = _refusal(e)
    x = _inputs()
    try:
        clamped = keras.layers.LSTM(UNITS, dropout=1.5, seed=SEED)
    except ValueError as e:
        return {
            "keras_stored": None,
            "keras_effect": None,
            "keras_error": _refusal(e),
            "ours_error": ours_error,
        }
    plain = keras.layers.LSTM(UNITS)
    _same_weights(plain, clamped, x.shape)
    out = clamped(x, training=True)
    if _max_diff(out, plain(x)) < 1e-6:
        effect = "no dropout"
    elif _max_diff(out, plain(np.zeros_like(x))) < 1e-6:
        effect = "every input dropped"
    else:
        effect = f"an output {_max_diff(out, plain(x)):.2g} from no dropout"
    return {
        "keras_stored": clamped.cell.dropout,
        "keras_effect": effect,
        "keras_error": None,
        "ours_error": ours_error,
    }


def recurrent_dropout_mode():
    """The mode each layer runs with `recurrent_dropout=0.25` and mode 2."""
    kwargs = dict(recurrent_dropout=0.25, implementation=2)
    return {
        "keras": keras.layers.LSTM(UNITS, **kwargs).cell.implementation,
        "ours": kr.GalLSTM(UNITS, **kwargs).cell.implementation,
    }


def bidirectional_masks():
    """Largest |forward - backward| output with equal weights, in training.

    0 means the two directions drew the same masks (the input is constant
    in time, so the directions see the same sequence).
    """
    x = _inputs(time_constant=True)

    def difference(layer):
        bidi = keras.layers.Bidirectional(layer, merge_mode=None)
        bidi.build(x.shape)
        bidi.backward_layer.set_weights(bidi.forward_layer.get_weights())
        forward, backward = bidi(x, training=True)
        return _max_diff(forward, backward)

    return {
        "keras": difference(keras.layers.LSTM(UNITS, dropout=0.5, seed=SEED)),
        "ours": difference(kr.GalLSTM(UNITS, dropout=0.5, seed=SEED)),
    }


class LoopNoiseZoneoutCell(keras.layers.LSTMCell):
    """Zoneout on `c` written with Keras's API: noise drawn inside `call`."""

    def __init__(self, units, zoneout_c, seed=None, **kwargs):
        super().__init__(units, **kwargs)
        self.zoneout_c = zoneout_c
        self.noise_seed = keras.random.SeedGenerator(seed)

    def call(self, inputs, states, training=False):
        h, (h, c) = super().call(inputs, states, training=training)
        if training:
            shape = ops.shape(c)
            keep = keras.random.uniform(shape, seed=self.noise_seed)
            c = ops.where(keep < self.zoneout_c, states[1], c)
        return h, [h, c]


def _counting_weights(features, units):
    """Weights under which every LSTM update adds 1 to the cell state.

    Zero kernels and biases of +20 on the input, forget and candidate gates
    (Keras's gate order i, f, c, o) give `i = f = g = 1` to float
    precision, so `c_t = c_{t-1} + 1` at every update.
    """
    bias = np.zeros(4 * units, "float32")
    bias[: 3 * units] = 20.0
    return [
        np.zeros((features, 4 * units), "float32"),
        np.zeros((units, 4 * units), "float32"),
        bias,
    ]


def mixed_unit_share(layer):
    """Share of units updated at some steps and kept at others, in training.

    `layer` (an RNN with `return_state=True` over a zoneout-like LSTM cell
    with probability 0.5 of keeping `c`) gets the counting weights, so its
    final `c` is the number of steps at which each unit was updated.
    """
    x = _inputs()
    layer.build(x.shape)
    layer.set_weights(_counting_weights(FEATURES, UNITS))
    _, _, c = layer(x, training=True)
    updates = np.rint(_numpy(c))
    return float(np.mean((updates > 0) & (updates < STEPS)))


def per_step_noise():
    """`mixed_unit_share` of Keras's loop and of `keras_recdrop.RNN`."""
    keras_layer = keras.layers.RNN(
        LoopNoiseZoneoutCell(UNITS, zoneout_c=0.5, seed=SEED),
        return_state=True,
    )
    ours = kr.RNN(
        kr.ZoneoutLSTMCell(UNITS, zoneout_c=0.5, seed=SEED), return_state=True
    )
    return {
        "keras": mixed_unit_share(keras_layer),
        "ours": mixed_unit_share(ours),
    }


def _modes_text(difference):
    text = f"outputs differ by {difference:.2g}"
    if 0 < difference < 1e-5:
        return text + " (float rounding)"
    return text


def _runs_text(error, limit=70):
    if error is None:
        return "runs"
    return "fails: " + (error if len(error) <= limit else error[:limit] + "...")


def _masks_text(difference):
    same = "identical" if difference == 0 else "different"
    return f"{same} (outputs differ by {difference:.2g})"


def _share_text(share):
    kind = "the same mask at every step" if share == 0 else "a fresh mask"
    return f"{kind} ({share:.0%} of units mixed)"


def rows():
    """The table's rows `(check, keras, keras_recdrop)`, computed now."""
    keras.utils.set_random_seed(SEED)  # the initial weights
    modes = implementation_modes()
    mode_one = layer_mode_one_with_dropout()
    rate = dropout_above_one()
    mode = recurrent_dropout_mode()
    bidi = bidirectional_masks()
    noise = per_step_noise()
    return [
        (
            "implementation 1 vs 2 (dropout=0.5, same weights and seed)",
            _modes_text(modes["keras"]),
            _modes_text(modes["ours"]),
        ),
        (
            "LSTM layer, dropout=0.5, implementation=1: a training call",
            _runs_text(mode_one["keras"]),
            _runs_text(mode_one["ours"]),
        ),
        (
            "dropout=1.5",
            rate["keras_error"]
            or f"stored as {rate['keras_stored']}: trains with "
            f"{rate['keras_effect']}",
            rate["ours_error"] or "accepted (no error)",
        ),
        (
            "recurrent_dropout=0.25, implementation=2",
            f"runs implementation={mode['keras']}",
            f"runs implementation={mode['ours']}",
        ),
        (
            "Bidirectional, seed=1: the two directions' masks",
            _masks_text(bidi["keras"]),
            _masks_text(bidi["ours"]),
        ),
        (
            "zoneout (per-step noise) in the time loop",
            "noise drawn in call(): " + _share_text(noise["keras"]),
            _share_text(noise["ours"]),
        ),
    ]


def format_table(table_rows, widths=(26, 38, 40)):
    """A plain-text table; long cells wrap within their column."""
    header = ("check", "keras " + keras.__version__, "keras_recdrop")
    lines = []
    for row in [header, *table_rows]:
        cells = [
            textwrap.wrap(text, w) or [""]
            for text, w in zip(row, widths, strict=True)
        ]
        for i in range(max(len(c) for c in cells)):
            parts = [
                (c[i] if i < len(c) else "").ljust(w)
                for c, w in zip(cells, widths, strict=True)
            ]
            lines.append("  ".join(parts).rstrip())
        lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main():
    start = time.perf_counter()
    table = format_table(rows())
    print(
        f"What keras_recdrop fixes, measured now on the "
        f"{keras.backend.backend()} backend (batch {BATCH}, {STEPS} steps, "
        f"{UNITS} units, seed {SEED}):\n{table}\n"
        f"({time.perf_counter() - start:.1f} s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
