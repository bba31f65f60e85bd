"""`mc_predict`: Monte Carlo dropout (Gal & Ghahramani, 2016).

`N` stochastic forward passes with the package's noise on and every other
layer in inference mode (`noise_mode.monte_carlo()`), summarised by the
mean and standard deviation over the passes. The passes are batched: the
input is tiled `copies` times into one forward pass, and every copy of a
row draws its own masks, because the package's per-sequence masks and
per-step noise are drawn per row of the batch. Noise drawn once per call
and shared by the whole batch (DropConnect's weight mask,
`DropoutEmbedding`'s word-type mask, a Keras `Dropout` whose `noise_shape`
has batch size 1) would make the copies of a row identical; a model with
such a layer gets one forward pass per sample instead.
"""

import collections
import contextlib
import secrets
import warnings
import weakref

import keras
import numpy as np
from keras import ops

from keras_recdrop import _compat
from keras_recdrop import _validation
from keras_recdrop import noise_mode
from keras_recdrop import registry
from keras_recdrop.random_state import SavesRandomState

# Keras's dropout layers (SpatialDropout1D/2D/3D subclass Dropout).
KERAS_DROPOUT_LAYERS = (
    keras.layers.Dropout,
    keras.layers.AlphaDropout,
    keras.layers.GaussianDropout,
)


def _shares_noise_across_batch(layer, keras_dropout=False):
    """Whether `layer` draws noise that the whole batch of a call shares.

    Tiled copies of a row in one call would then see the same noise, so
    `mc_predict` runs such a model one sample per call.
    """
    if registry.shares_noise_across_batch(layer):
        return True
    if keras_dropout and isinstance(layer, keras.layers.Dropout):
        shape = layer.noise_shape
        return shape is not None and shape[0] == 1
    return False


def _random_streams(layers, dropout_layers):
    """The seed generators that a Monte Carlo pass draws from.

    Those of the package's layers and cells (`SavesRandomState` lists
    them), and of Keras's dropout layers when they are on; each once.
    """
    generators = []
    for layer in layers:
        if isinstance(layer, SavesRandomState):
            generators += layer._random_state_generators()
    generators += [layer.seed_generator for layer in dropout_layers]
    unique = []
    for generator in generators:
        if all(generator is not g for g in unique):
            unique.append(generator)
    return unique


# The seeds of a call's random streams (`_stream_seeds`): Park, Miller and
# Stockmeyer's "minimal standard" generator (MINSTD), x -> 48271 x mod
# (2^31 - 1). Integer arithmetic that a served graph computes too
# (`keras_recdrop.export_mc`), with no intermediate above 2^31 (Schrage's
# method), so the same seed gives the same streams in Python and in a graph.
_MODULUS = 2**31 - 1
_MULTIPLIER = 48271
_QUOTIENT, _REMAINDER = divmod(_MODULUS, _MULTIPLIER)


def _stream_seeds(seed, count):
    """The seeds of the `count` random streams of a call with `seed`.

    Stream `i` (the `i`-th generator of `_random_streams`) starts at the
    state `[seed_i, 0]` with `seed_i = 48271^(i + 1) x_0 mod (2^31 - 1)`
    and `x_0 = seed mod (2^31 - 2) + 1`: distinct nonzero seeds below
    2^31 for distinct streams. The backends' stateless generators (Philox,
    threefry, the PyTorch hash of `_stateless`) key on the whole state, so
    nearby seeds give unrelated draws. `_stream_seeds_in_graph` computes the
    same numbers with tensor operations.
    """
    x = seed % (_MODULUS - 1) + 1
    seeds = []
    for _ in range(count):
        x = _MULTIPLIER * x % _MODULUS
        seeds.append(x)
    return seeds


def _stream_seeds_in_graph(seed, count):
    """`_stream_seeds` of an integer tensor `seed`: a list of scalars.

    Schrage's method keeps every value below 2^31, so the arithmetic is
    exact in int32 as in int64: `48271 (x mod q) - r (x div q)`, plus the
    modulus if not positive, with `q, r = divmod(2^31 - 1, 48271)`.
    """
    x = ops.mod(seed, _MODULUS - 1) + 1
    seeds = []
    for _ in range(count):
        x = _MULTIPLIER * ops.mod(x, _QUOTIENT) - _REMAINDER * ops.floor_divide(
            x, _QUOTIENT
        )
        x = x + _MODULUS * ops.cast(x <= 0, x.dtype)
        seeds.append(x)
    return seeds


def _fresh_seed():
    """A seed from the operating system's entropy (`seed=None`)."""
    return secrets.randbelow(_MODULUS)


@contextlib.contextmanager
def _reseeded(generators, seed):
    """Seeds every generator from `seed`, restores their states after.

    Generator `i` starts at `[_stream_seeds(seed, n)[i], 0]`.
    """
    states = [generator.state for generator in generators]
    saved = [_numpy(s.value).copy() for s in states]
    seeded = [
        np.array([stream, 0]).astype(
            keras.backend.standardize_dtype(state.dtype)
        )
        for state, stream in zip(
            states, _stream_seeds(seed, len(states)), strict=True
        )
    ]

    try:
        for state, value in zip(states, seeded, strict=True):
            state.assign(value)
        yield
    finally:
        for state, value in zip(states, saved, strict=True):
            state.assign(value)


def _numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


class _Summary:
    """Mean, spread and samples of every output, filled block by block.

    Means and squared deviations are combined chunk by chunk with Chan et
    al.'s pairwise update, in float64: identical samples give a spread of
    exactly 0.
    """

    def __init__(self, leaves, rows, samples, keep):
        self.dtypes = [np.result_type(y.dtype, np.float32) for y in leaves]
        shapes = [(rows,) + y.shape[2:] for y in leaves]
        self.count = np.zeros(rows)
        self.mean = [np.zeros(shape) for shape in shapes]
        self.m2 = [np.zeros(shape) for shape in shapes]
        self.samples = samples
        self.kept = None
        if keep:
            self.kept = [
                np.zeros((samples,) + shape, dtype)
                for shape, dtype in zip(shapes, self.dtypes, strict=True)
            ]

    def add(self, span, first, leaves):
        """Adds samples `first, first + 1, ...` (`leaves[k][s]`) of `span`."""
        count_a = self.count[span][0]
        count_b = leaves[0].shape[0]
        count = count_a + count_b
        for k, chunk in enumerate(leaves):
            chunk = chunk.astype(np.float64)
            mean_b = chunk.mean(axis=0)
            delta = mean_b - self.mean[k][span]
            self.mean[k][span] += delta * (count_b / count)
            self.m2[k][span] += ((chunk - mean_b) ** 2).sum(
                axis=0
            ) + delta**2 * (count_a * count_b / count)
            if self.kept is not None:
                self.kept[k][first : first + count_b, span] = chunk
        self.count[span] = count

    def add_constant(self, span, leaves):
        """Every sample of `span` equals `leaves[k]`: no spread."""
        for k, value in enumerate(leaves):
            self.mean[k][span] = value
            if self.kept is not None:
                self.kept[k][:, span] = value
        self.count[span] = self.samples

    def result(self, structure):
        def pack(arrays):
            return keras.tree.pack_sequence_as(structure, arrays)

        mean = [
            m.astype(d) for m, d in zip(self.mean, self.dtypes, strict=True)
        ]
        std = [
            np.sqrt(m2 / self.count.reshape((-1,) + (1,) * (m2.ndim - 1)))
            for m2 in self.m2
        ]
        std = [v.astype(d) for v, d in zip(std, self.dtypes, strict=True)]
        if self.kept is None:
            return pack(mean), pack(std)
        return pack(mean), pack(std), pack(self.kept)


def _check_inputs(x):
    leaves = [
        np.asarray(keras.ops.convert_to_numpy(v)) for v in keras.tree.flatten(x)
    ]
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
    if not leaves or None in sizes or len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            "Argument `x` must be an array (or a structure of arrays) with "
            "the same non-zero number of rows in each; received arrays of "
            f"shapes {[leaf.shape for leaf in leaves]}."
        )
    return keras.tree.pack_sequence_as(x, leaves), sizes.pop()


def _check_layers(layers):
    """Refuses stateful layers; warns once of Keras's own recurrent dropout."""
    keras_dropout_cells = []
    for layer in layers:
        if getattr(layer, "stateful", False):
            raise ValueError(
                f"mc_predict needs independent forward passes, but layer "
                f"{layer.name!r} is stateful: every pass would start from "
                "the states the previous one left. Rebuild the model with "
                "stateful=False for Monte Carlo predictions."
            )
        if type(layer) in (keras.layers.LSTMCell, keras.layers.GRUCell) and (
            layer.dropout > 0 or layer.recurrent_dropout > 0
        ):
            keras_dropout_cells.append(
                f"{layer.name!r} (keras.layers.{type(layer).__name__})"
            )
    if keras_dropout_cells:
        warnings.warn(
            f"{', '.join(keras_dropout_cells)} "
            f"{'has' if len(keras_dropout_cells) == 1 else 'have'} Keras's "
            "own recurrent dropout, which mc_predict leaves off. Convert the "
            "model with keras_recdrop.convert to sample it.",
            stacklevel=3,
        )


# The compiled noisy forward pass of each model, weakly keyed by the model,
# one per value of `keras_dropout` (`_compat.compile_inference` holds the
# model weakly, so the cache does not keep a model alive).
_FORWARDS = weakref.WeakKeyDictionary()


def _noisy_forward(model, keras_dropout):
    """`model(x)` with the package's noise on, compiled once and reused.

    Traced inside `noise_mode.monte_carlo()` (and, with `keras_dropout`,
    with Keras's dropout layers called as in training), so the compiled
    function draws noise at every call: its random streams are the
    layers' seed generators, which it advances.
    """

    @contextlib.contextmanager
    def monte_carlo(model):
        dropout_layers = _keras_dropout_layers(
            _compat.flatten_layers(model), keras_dropout
        )
        with (
            noise_mode.monte_carlo(),
            _compat.calls_in_training(dropout_layers),
        ):
            yield

    forwards = _FORWARDS.setdefault(model, {})
    if keras_dropout not in forwards:
        forwards[keras_dropout] = _compat.compile_inference(model, monte_carlo)
    return forwards[keras_dropout]


def _keras_dropout_layers(layers, keras_dropout):
    if not keras_dropout:
        return []
    return [
        layer for layer in layers if isinstance(layer, KERAS_DROPOUT_LAYERS)
    ]


def _draws_noise(layers, dropout_layers):
    """Whether a Monte Carlo pass draws any noise: some layer of the package
    with a rate above 0 (the registry says which), or a Keras dropout layer
    that is on."""
    return any(registry.draws_noise(layer) for layer in layers) or any(
        getattr(layer, "rate", 0) > 0 for layer in dropout_layers
    )


class _SamplingPlan(
    collections.namedtuple(
        "_SamplingPlan", ["per_call", "dropout_layers", "noisy", "generators"]
    )
):
    """How a model is sampled: one sample per forward pass (`per_call`),
    the Keras dropout layers that are on, whether any noise is drawn, and
    the random streams, in the order `_stream_seeds` seeds them."""


def _sampling_plan(layers, keras_dropout):
    dropout_layers = _keras_dropout_layers(layers, keras_dropout)
    return _SamplingPlan(
        per_call=any(
            _shares_noise_across_batch(la, keras_dropout) for la in layers
        ),
        dropout_layers=dropout_layers,
        # Without noise every sample is the same: one pass, spread exactly 0.
        noisy=_draws_noise(layers, dropout_layers),
        generators=_random_streams(layers, dropout_layers),
    )


def _layout(rows, samples, batch_size, per_call):
    """`(block, copies)`: the rows of `x` in one forward pass, and how many
    tiled copies of them (each copy one sample)."""
    block = min(rows, batch_size)
    copies = 1 if per_call else max(1, min(samples, batch_size // block))
    return block, copies


def mc_predict(
    model,
    x,
    samples=100,
    *,
    seed=None,
    batch_size=1024,
    keras_dropout=False,
    return_samples=False,
):
    """Monte Carlo dropout: mean and spread of stochastic forward passes.

    Runs `samples` forward passes of `model` on `x` with the noise of the
    package's layers on (fresh masks and per-step noise for every pass and
    every sample) and every other layer in inference mode: a
    `BatchNormalization` uses and keeps its moving statistics, Keras's
    `Dropout` layers are off unless `keras_dropout=True`. With samples
    `y_1, ..., y_N` of each output it returns

        mean = 1/N sum_s y_s
        std  = sqrt(1/N sum_s (y_s - mean)^2)

    the Monte Carlo estimates of the predictive mean and of the model's
    (epistemic) standard deviation (Gal & Ghahramani, 2016); for a
    regression, add the observation noise variance to `std**2`.

    Samples are batched: up to `batch_size` rows (rows of `x` times tiled
    copies) go through one forward pass, and each copy of a row draws its
    own noise. A model with noise that one call shares over its whole
    batch (`WeightDropLSTMCell` with `weight_dropout > 0`,
    `DropoutEmbedding` with `embeddings_dropout > 0`, a Keras `Dropout`
    with a `noise_shape` of batch size 1 when `keras_dropout=True`) is run
    one sample per call instead, since tiled copies would share it. Rows
    of `x` in different calls (more than `batch_size` rows) then draw
    different weight masks within one sample; each row's samples are
    independent either way.

    If no layer of the package has noise (every rate is 0, or the model has
    none of the package's layers), and no Keras dropout layer is on with
    `keras_dropout=True`, the model is deterministic: one pass is run,
    every sample equals it and `std` is exactly 0.

    The noisy forward pass is compiled once per model (and value of
    `keras_dropout`) and reused by later calls with the same input shape,
    with or without a `seed`: a call in a loop costs its forward passes.

    With a `seed`, the same arguments give the same result: each random
    stream (a layer's seed generator) starts from a seed derived from
    `seed` by integer arithmetic (Park and Miller's steps), which the serving
    function of `keras_recdrop.export_mc` computes too, so a served model
    returns the same numbers for the same seed. The streams are restored
    afterwards, so `mc_predict` does not change what later training calls
    draw.

    Args:
        model: A `keras.Model` with the package's layers or cells
            (`keras_recdrop.RNN`, the ready-made layers such as `GalLSTM`,
            cells in `keras.layers.RNN`, `DropoutEmbedding`) among any
            Keras layers. Not stateful. A model with Keras's own
            `LSTM(dropout=...)`: convert it first (`keras_recdrop.convert`).
        x: The inputs: an array, or a list or dict of arrays with the same
            number of rows, as `model.predict` takes.
        samples: Positive integer, the number of forward passes `N`.
        seed: Integer or `None` (a fresh seed from the operating system's
            entropy).
        batch_size: Positive integer, the most rows in one forward pass
            (the memory knob). Default 1024.
        keras_dropout: Boolean. If `True`, Keras's `Dropout`,
            `SpatialDropout1D/2D/3D`, `AlphaDropout` and `GaussianDropout`
            layers are on too.
        return_samples: Boolean. If `True`, also returns the samples.

    Returns:
        `(mean, std)`, NumPy arrays shaped like the model's output (or
        structures of them like the outputs), or
        `(mean, std, samples)` with `samples` of shape `(N, *output shape)`
        if `return_samples`.

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> model = keras.Sequential([
    ...     keras.Input((5, 3)),
    ...     keras_recdrop.GalLSTM(8, dropout=0.2, recurrent_dropout=0.2),
    ...     keras.layers.Dense(1)])
    >>> x = np.random.rand(4, 5, 3).astype("float32")
    >>> mean, std = keras_recdrop.mc_predict(model, x, samples=20, seed=1)
    >>> mean.shape, std.shape, bool((std > 0).all())
    ((4, 1), (4, 1), True)
    """
    samples = _validation.check_positive_int("samples", samples)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    seed = _validation.check_seed(seed)
    keras_dropout = _validation.check_bool("keras_dropout", keras_dropout)
    return_samples = _validation.check_bool("return_samples", return_samples)
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a keras.Model; received "
            f"model={model!r} of type {type(model).__name__}."
        )
    x, rows = _check_inputs(x)
    if not model.built:
        model(x, training=False)
    layers = _compat.flatten_layers(model)
    _check_layers(layers)
    plan = _sampling_plan(layers, keras_dropout)
    block, copies = _layout(rows, samples, batch_size, plan.per_call)
    forward = _noisy_forward(model, keras_dropout)
    if seed is None:
        seed = _fresh_seed()

    summary = None
    with _reseeded(plan.generators, seed):
        for start in range(0, rows, block):
            # Every call has the same shape: the last block wraps round.
            index = np.arange(start, start + block) % rows
            valid = min(block, rows - start)
            span = slice(start, start + valid)
            inputs = keras.tree.map_structure(
                lambda v, index=index: np.concatenate([v[index]] * copies),
                x,
            )
            for first in range(0, samples, copies):
                outputs = forward(inputs)
                leaves = [
                    _numpy(y).reshape((copies, block) + tuple(y.shape[1:]))[
                        :, :valid
                    ]
                    for y in keras.tree.flatten(outputs)
                ]
                if summary is None:
                    structure = outputs
                    summary = _Summary(leaves, rows, samples, return_samples)
                if not plan.noisy:
                    summary.add_constant(span, [y[0] for y in leaves])
                    break
                used = min(copies, samples - first)
                summary.add(span, first, [y[:used] for y in leaves])
    return summary.result(structure)
