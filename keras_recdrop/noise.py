"""The mask and noise machinery: every random draw of the package is here.

Two kinds of noise exist in recurrent regularizers:

* **Per-sequence masks** (Gal & Ghahramani's input and recurrent masks,
  Semeniuta's `per_step=False` candidate mask, DropConnect weight masks):
  drawn once per layer call, before the time loop, then reused at every step:
  the cells draw them with `draw_masks` (DropConnect's with
  `draw_keep_decisions`) in `begin_call`, which a layer calls before its
  loop.
* **Per-step noise** (zoneout's keep-the-previous-value decisions and
  Semeniuta's `per_step=True` candidate masks): fresh at every step. A draw
  from a `SeedGenerator` inside the loop updates random state inside
  `lax.scan` on JAX, which leaks tracers under `fit` and repeats silently
  under a jitted `stateless_call`. `keras_recdrop.RNN` therefore draws a
  table of `T` stateless seeds for each noisy cell before the loop (one
  random call, `draw_step_seeds`) and scans it in with the sequence; every
  step draws its own `(batch, width)` noise from its row (`StatelessSeed`,
  drawn on the device by `_stateless`). The loop body stays a pure
  function, the recurrent state stays exactly `[h, c]`, and no
  `(T, batch, width)` noise tensor exists (see `docs/design.md`).

Per-step noise is described by a *noise spec*: an ordered tuple of
`(name, probability_of_true, width)` channels. It is drawn as one boolean
tensor `(..., sum(widths))` from 16-bit random integers (so probabilities
are multiples of 2^-16, `quantized_probability`) and split back into named
channels with `split_step_noise`.

Every draw from a generator goes through `_uniform`, which is
`keras.random.uniform` except in one case: inside a `tf.distribute` replica
context with more than one replica in sync (`MirroredStrategy` and friends),
each replica runs the same step with a *mirrored* seed-generator state, so
it would draw exactly the same numbers as every other replica (Keras issue
#18426). There the replica id is folded into the seed of the draw, so every
replica draws its own masks and noise, reproducibly. Without such a
strategy, and on JAX and PyTorch, nothing changes (see `docs/scaling.md`).
"""

import collections

import keras
from keras import ops

from keras_recdrop import _compat
from keras_recdrop import _gradient
from keras_recdrop import _stateless


class StatelessSeed(collections.namedtuple("StatelessSeed", ["seed"])):
    """A stateless seed: an integer tensor `(2,)`.

    A draw with it reads no random state and writes none, so it can run
    inside a traced loop body. One row of the table `draw_step_seeds` draws
    before the time loop (the seed of one step), or a seed of the masks
    that `keras_recdrop.RNN(stateful_masks=True)` holds across calls.

    Example:

    >>> import keras
    >>> from keras_recdrop import noise
    >>> seed = noise.StatelessSeed(keras.ops.convert_to_tensor([1, 2], "int32"))
    >>> a = noise.draw_step_noise((("keep", 0.5, 8),), (4,), seed)
    >>> b = noise.draw_step_noise((("keep", 0.5, 8),), (4,), seed)
    >>> bool(keras.ops.all(a == b))  # the same seed, the same draw
    True
    """


_MAX_SEED = 2**31 - 1


def _next_seed(seed_generator):
    """The generator's next seed `(2,)`, distinct per `tf.distribute` replica.

    Advances the generator once, as `keras.random` does. Inside a
    multi-replica `tf.distribute` context the generator's state is
    mirrored, so every replica would get the same seed: the replica id is
    folded in, so each replica draws its own stream, and the same seed
    reproduces them all.
    """
    seed = seed_generator.next()
    replica = _compat.tf_replica_id()
    if replica is None:
        return seed
    return _stateless.fold_in(seed, replica)


def draw_step_seeds(seed_generator, timesteps):
    """The seeds of `timesteps` steps, one random call: int32 `(T, 2)`.

    Advances `seed_generator` once. Each row is a fresh pseudo-random
    pair, so the streams of different steps (and calls) are unrelated to
    each other and to the generator's own draws; every replica of a
    `tf.distribute` strategy gets its own.

    Example:

    >>> import keras
    >>> from keras_recdrop import noise
    >>> generator = keras.random.SeedGenerator(7)
    >>> seeds = noise.draw_step_seeds(generator, 100)
    >>> tuple(seeds.shape), keras.backend.standardize_dtype(seeds.dtype)
    ((100, 2), 'int32')
    """
    return _stateless.seeds(timesteps, _next_seed(seed_generator))


def _uniform(shape, seed):
    """Float32 uniforms in `[0, 1)`, one random call, distinct per replica.

    `seed` is a `keras.random.SeedGenerator` (advanced once, as
    `keras.random.uniform` advances it), an int, or a `StatelessSeed`.
    Every draw is a stateless draw on the device from a seed tensor
    (`_stateless`): the generator only provides the seed, so no draw copies
    a seed to the host (Keras's PyTorch random ops do, to seed a
    `torch.Generator`), and a generator's seed is folded with the
    `tf.distribute` replica id (see `_next_seed`).
    """
    if isinstance(seed, StatelessSeed):
        return _stateless.uniform(shape, seed.seed)
    if isinstance(seed, keras.random.SeedGenerator):
        return _stateless.uniform(shape, _next_seed(seed))
    return keras.random.uniform(shape, dtype="float32", seed=seed)


def inverted_dropout_scale(rate):
    """The factor `1 / (1 - rate)` that keeps the expectation unchanged.

    Example:

    >>> from keras_recdrop import noise
    >>> noise.inverted_dropout_scale(0.2)
    1.25
    """
    return 1.0 / (1.0 - rate)


def draw_masks(count, shape, rate, seed, dtype):
    """Draws `count` independent inverted-dropout masks of shape `shape`.

    Returns a tuple of `count` tensors of shape `shape` whose entries are
    exactly `0` (probability `rate`) or `1 / (1 - rate)`, in `dtype`. All
    masks come from a single random call; they are separate tensors so
    that a time loop reads each as a loop constant (rule 2 of "Loop
    constants" in docs/design.md).

    Args:
        count: Number of masks (1 for a tied mask, 4 for per-gate LSTM
            masks, 3 for GRU).
        shape: The shape of a mask, e.g. `(batch, features)`; entries may
            be scalar tensors (a batch size known only at run time).
        rate: Drop probability in `[0, 1)`.
        seed: A `keras.random.SeedGenerator`, a `StatelessSeed` (or an
            int).
        dtype: Dtype of the masks.

    Example:

    >>> import keras, numpy as np
    >>> from keras_recdrop import noise
    >>> masks = noise.draw_masks(
    ...     4, (2, 3), 0.5, keras.random.SeedGenerator(1), "float32")
    >>> len(masks), tuple(masks[0].shape)
    (4, (2, 3))
    >>> sorted(set(np.concatenate(
    ...     [keras.ops.convert_to_numpy(m).ravel() for m in masks]).tolist()))
    [0.0, 2.0]
    """
    shape = (count,) + tuple(shape)
    keep = _uniform(shape, seed) >= rate
    scale = ops.cast(inverted_dropout_scale(rate), dtype)
    masks = ops.cast(keep, dtype) * scale
    return tuple(masks[k] for k in range(count))


def draw_keep_decisions(count, shape, rate, seed):
    """Boolean keep decisions of shape `shape`, from 16-bit integers.

    `count` tensors, each entry `True` (kept) with probability `1 - rate`
    quantized to a multiple of 2^-16, as per-step decisions are
    (`quantized_probability`); for `apply_mask(x, keep,
    inverted_dropout_scale(rate))`. For masks of a weight's size
    (DropConnect): the generator fills half as many 32-bit words as a
    float32 uniform draw, and XLA holds those words while the training
    step's other buffers are live (measured: `benchmarks/memory.py`, JAX,
    U=1024: 16 MiB less).

    Example:

    >>> import keras
    >>> from keras_recdrop import noise
    >>> (keep,) = noise.draw_keep_decisions(
    ...     1, (256, 1024), 0.25, keras.random.SeedGenerator(2))
    >>> keep.shape[0], keras.backend.standardize_dtype(keep.dtype)
    (256, 'bool')
    >>> round(float(keras.ops.mean(keras.ops.cast(keep, "float32"))), 2)
    0.75
    """
    shape = (count,) + tuple(shape)
    if isinstance(seed, keras.random.SeedGenerator):
        seed = StatelessSeed(_next_seed(seed))
    keep = _bits16(shape, seed) >= round(rate * BERNOULLI_RESOLUTION)
    return tuple(keep[k] for k in range(count))


def apply_mask(x, mask, scale=None):
    """Inverted dropout of `x` by `mask`, with a gradient that keeps only it.

    `mask` is either a float mask (entries `0` or `1 / (1 - p)`, as
    `draw_masks` gives) and `scale` is `None`: the value is `x * mask`; or
    boolean keep decisions and `scale` is `1 / (1 - p)`: the value is
    `where(mask, x * scale, 0)`. The mask receives no gradient. The gradient
    with respect to `x` is the same masking of the upstream gradient, so a
    step keeps the mask (a boolean mask: a quarter of a float tensor) and
    never `x`, which automatic differentiation of `x * mask` would keep for
    the mask's unused gradient (rule 3 of "Loop constants" in
    docs/design.md).

    Example:

    >>> import keras
    >>> from keras_recdrop import noise
    >>> x = keras.ops.ones((2, 3))
    >>> keep = keras.ops.convert_to_tensor([[True, False, True]] * 2)
    >>> keras.ops.convert_to_numpy(noise.apply_mask(x, keep, 2.0)).tolist()
    [[2.0, 0.0, 2.0], [2.0, 0.0, 2.0]]
    """

    def masked(value, mask):
        if scale is None:
            return value * mask
        return ops.where(mask, value * scale, ops.zeros_like(value))

    @_gradient.custom_gradient
    def apply(x, mask):
        def grad(upstream):
            return masked(upstream, mask), None

        return masked(x, mask), grad

    return apply(x, mask)


def derived_seed(seed, salt):
    """An integer seed derived from `seed`, different for every `salt`.

    Deterministic, so that a derived random stream is reproducible from the
    user's seed, and unrelated to the streams of `seed` and other salts.

    Example:

    >>> from keras_recdrop import noise
    >>> noise.derived_seed(42, 0) == noise.derived_seed(42, 0)
    True
    >>> noise.derived_seed(42, 0) != noise.derived_seed(42, 1)
    True
    """
    return (seed * 0x9E3779B1 + 0x7F4A7C15 * (salt + 1)) % _MAX_SEED


def derive_seeds(seed, count):
    """`count` seeds derived from a `StatelessSeed`: int32 `(count, 2)`.

    Reads no random state. Inside a multi-replica `tf.distribute` context
    the replica id is folded in, as in `draw_step_seeds`.

    Example:

    >>> import keras
    >>> from keras_recdrop import noise
    >>> seed = noise.StatelessSeed(keras.ops.convert_to_tensor([3, 0], "int32"))
    >>> tuple(noise.derive_seeds(seed, 5).shape)
    (5, 2)
    """
    replica = _compat.tf_replica_id()
    if replica is not None:
        seed = StatelessSeed(_stateless.fold_in(seed.seed, replica))
    return _stateless.seeds(count, seed.seed)


def reseed_for_backward_direction(generator, seed):
    """Moves a seeded generator to a stream derived from its seed.

    Deterministic (the same seed always gives the same backward stream) and
    different from the forward stream. A generator without a seed keeps its
    random stream, which already differs between instances.

    Example:

    >>> import keras
    >>> from keras_recdrop import noise
    >>> forward, backward = (keras.random.SeedGenerator(5) for _ in range(2))
    >>> noise.reseed_for_backward_direction(backward, 5)
    >>> bool(keras.ops.all(forward.state.value == backward.state.value))
    False
    """
    if seed is None:
        return
    state = generator.state
    state.assign(
        ops.convert_to_tensor([derived_seed(seed, 0), 0], dtype=state.dtype)
    )


def spec_width(spec):
    """Total number of boolean channels of a noise spec.

    Example:

    >>> from keras_recdrop import noise
    >>> noise.spec_width((("c", 0.5, 16), ("h", 0.05, 16)))
    32
    """
    return sum(width for _, _, width in spec)


BERNOULLI_RESOLUTION = 2**16


def quantized_probability(probability):
    """The probability a per-step Bernoulli decision of `probability` has.

    Decisions compare 16-bit random integers with
    `round(probability * 2^16)`, so the probability is quantized to a
    multiple of 2^-16 (at most 2^-17 from the rate given).

    Example:

    >>> from keras_recdrop import noise
    >>> noise.quantized_probability(0.5)
    0.5
    >>> abs(noise.quantized_probability(0.1) - 0.1) <= 2**-17
    True
    """
    return round(probability * BERNOULLI_RESOLUTION) / BERNOULLI_RESOLUTION


def _thresholds16(spec):
    parts = [
        ops.full((width,), round(prob * BERNOULLI_RESOLUTION), dtype="int32")
        for _, prob, width in spec
    ]
    return ops.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def _bits16(shape, seed):
    """Int32 values uniform on `[0, 2^16)`, from any kind of seed."""
    if isinstance(seed, StatelessSeed):
        return _stateless.bits16(shape, seed.seed)
    # A generator (a stateful draw): 16 of a float32 uniform's 24 bits.
    return ops.cast(
        ops.floor(_uniform(shape, seed) * BERNOULLI_RESOLUTION), "int32"
    )


def draw_step_noise(spec, leading_shape, seed):
    """Draws boolean noise for a spec, for every entry of `leading_shape`.

    `leading_shape` is `(batch,)` for one step. `seed` is the cell's
    `SeedGenerator` (a stateful draw, for loops where that is correct) or
    the `StatelessSeed` of the step. Channel `k` of the result is `True`
    with the probability the spec gives it, quantized to a multiple of
    2^-16 (`quantized_probability`), independently for every sample and
    unit (and, with a fresh seed per step, for every step). Returns `None`
    for an empty spec.

    Example:

    >>> import keras
    >>> from keras_recdrop import noise
    >>> spec = (("c", 0.5, 16), ("h", 0.05, 16))
    >>> step = noise.draw_step_noise(spec, (8,), keras.random.SeedGenerator(3))
    >>> tuple(step.shape), keras.backend.standardize_dtype(step.dtype)
    ((8, 32), 'bool')
    """
    if not spec:
        return None
    shape = tuple(leading_shape) + (spec_width(spec),)
    return _bits16(shape, seed) < _thresholds16(spec)


def split_step_noise(spec, noise):
    """Splits a boolean noise tensor `(..., width)` into its named channels.

    Example:

    >>> import keras
    >>> from keras_recdrop import noise
    >>> spec = (("c", 0.5, 16), ("h", 0.05, 16))
    >>> step = noise.draw_step_noise(spec, (8,), keras.random.SeedGenerator(3))
    >>> channels = noise.split_step_noise(spec, step)
    >>> {name: tuple(value.shape) for name, value in channels.items()}
    {'c': (8, 16), 'h': (8, 16)}
    """
    channels = {}
    start = 0
    for name, _, width in spec:
        channels[name] = noise[..., start : start + width]
        start += width
    return channels


def inside_jax_loop_trace(step_input, seed_generator):
    """Whether a cell step is being traced inside a JAX loop (`lax.scan`).

    There a draw from `seed_generator` cannot advance its state between
    steps: the body is traced once, so the "fresh" noise would repeat at
    every step (or leak a tracer under `fit`). A loop body is staged by a
    trace of its own, newer than the one that holds the generator's state
    (`jit`'s, or none in eager mode); an unrolled loop, `jax.grad` and `fit`
    reuse the generator's. Always `False` on the other backends.

    Example:

    >>> import keras
    >>> from keras_recdrop import noise
    >>> noise.inside_jax_loop_trace(  # eagerly: no loop is being traced
    ...     keras.ops.ones((2, 3)), keras.random.SeedGenerator(1))
    False
    """
    if keras.backend.backend() != "jax":
        return False
    input_trace = _compat.staging_trace(step_input)
    if input_trace is None:
        return False
    return input_trace is not _compat.staging_trace(seed_generator.state.value)
