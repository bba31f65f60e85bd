"""The mask and noise machinery: every random draw of the package is here.

Two kinds of noise exist in recurrent regularizers:

* **Per-sequence masks** (Gal & Ghahramani's input and recurrent masks,
  Semeniuta's `per_step=False` candidate mask, DropConnect weight masks):
  drawn once per layer call, before the time loop, then reused at every step.
  `keras.layers.RNN` already calls the cell's `get_dropout_mask` /
  `get_recurrent_dropout_mask` before its loop; the cells draw these masks
  there with `draw_masks`.
* **Per-step noise** (zoneout's keep-the-previous-value decisions and
  Semeniuta's `per_step=True` candidate masks): fresh at every step. A draw
  from a `SeedGenerator` inside the loop updates random state inside
  `lax.scan` on JAX, which leaks tracers under `fit` and repeats silently
  under a jitted `stateless_call`. `keras_recdrop.RNN` therefore draws a
  table of `T` stateless seeds for each noisy cell before the loop (one
  random call, `draw_step_seeds`) and scans it in with the sequence; every
  step draws its own `(batch, width)` noise from its row (`StatelessSeed`). The
  loop body stays a pure function, the recurrent state stays exactly
  `[h, c]`, and no `(T, batch, width)` noise tensor exists (see
  `docs/design.md`).

Per-step noise is described by a *noise spec*: an ordered tuple of
`(name, probability_of_true, width)` channels. It is drawn as one boolean
tensor `(..., sum(widths))` and split back into named channels with
`split_step_noise`.

Every draw goes through `_uniform`, which is `keras.random.uniform` except
in one case: inside a `tf.distribute` replica context with more than one
replica in sync (`MirroredStrategy` and friends), each replica runs the
same step with a *mirrored* seed-generator state, so it would draw exactly
the same numbers as every other replica (Keras issue #18426). There the
replica id is folded into the seed of the draw, so every replica draws its
own masks and noise, reproducibly. Without such a strategy, and on JAX and
PyTorch, nothing changes (see `docs/scaling.md`).
"""

import collections

import keras
from keras import ops

from keras_recdrop import _compat
from keras_recdrop import _gradient


def _tf_replica_id():
    """The id of the current `tf.distribute` replica, or `None`.

    `None` unless the backend is TensorFlow and the code runs inside a
    replica context with more than one replica in sync (the body of
    `strategy.run`, which is where `fit`, `evaluate` and `predict` call the
    model under a `MirroredStrategy`). Outside a strategy TensorFlow's
    default replica context has one replica, and in a cross-replica context
    there is no replica context: both give `None`.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    # The one backend import of the package's core, and a lazy one: only on
    # the TensorFlow backend, where `tensorflow` is already imported by
    # Keras. Keras has no backend-neutral way to ask which replica runs the
    # current step; see "Masks across replicas" in docs/scaling.md.
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context.replica_id_in_sync_group


class StatelessSeed(collections.namedtuple("StatelessSeed", ["seed"])):
    """A stateless seed: an integer tensor `(2,)`.

    A draw with it reads no random state and writes none, so it can run
    inside a traced loop body. One row of the table `draw_step_seeds` draws
    before the time loop (the seed of one step), or a seed of the masks
    that `keras_recdrop.RNN(stateful_masks=True)` holds across calls.
    """


_MAX_SEED = 2**31 - 1


def draw_step_seeds(seed_generator, timesteps):
    """The seeds of `timesteps` steps, one random call: int32 `(T, 2)`.

    Advances `seed_generator` once. Each row is a fresh pseudo-random
    pair, so the streams of different steps (and calls) are unrelated to
    each other and to the generator's own draws. Inside a multi-replica
    `tf.distribute` context the replica id is folded into the draw, so
    every replica's steps get their own seeds.
    """
    shape = (timesteps, 2)
    replica = _tf_replica_id()
    if replica is None:
        return keras.random.randint(
            shape, 0, _MAX_SEED, dtype="int32", seed=seed_generator
        )
    import tensorflow as tf

    folded = tf.random.experimental.stateless_fold_in(
        tf.cast(seed_generator.next(), "int64"), tf.cast(replica, "int64")
    )
    return tf.random.stateless_uniform(
        shape, seed=folded, minval=0, maxval=_MAX_SEED, dtype="int32"
    )


def _uniform_at_step(shape, seed):
    """Float32 uniforms in `[0, 1)` from a `StatelessSeed`, without any state.

    `keras.random` takes a seed tensor on JAX only, so the TensorFlow and
    eager backends are called here (a lazy import on TensorFlow, which
    Keras has already imported; design note in docs/design.md).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        # Keras's JAX backend takes a raw `uint32` key array as the seed.
        key = ops.cast(seed.seed, "uint32")
        return keras.random.uniform(shape, dtype="float32", seed=key)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_uniform(
            shape, seed=seed.seed, dtype="float32"
        )
    # PyTorch and NumPy run the loop eagerly: the seed's values are known,
    # so Keras's own integer-seeded draw is used with the pair combined
    # into one integer.
    first, second = (int(v) for v in ops.convert_to_numpy(seed.seed))
    return keras.random.uniform(
        shape, dtype="float32", seed=(first * 1_000_003 + second) % _MAX_SEED
    )


def _uniform(shape, seed):
    """Float32 uniforms in `[0, 1)`, one random call, distinct per replica.

    `seed` is a `keras.random.SeedGenerator`, an int or a `StatelessSeed`.
    Outside a multi-replica `tf.distribute` context a generator or int seed
    gives exactly `keras.random.uniform(shape, dtype="float32", seed=seed)`.
    Inside one, the generator's state is mirrored, so every replica would
    draw the same numbers: the seed of this draw (advancing the generator
    exactly as `keras.random.uniform` does) is folded with the replica id,
    so each replica draws its own stream, and the same seed reproduces them
    all. (`keras.random.uniform` on the TensorFlow backend accepts only ints
    and `SeedGenerator`s as seeds, not a seed tensor, so the folded seed is
    used with TensorFlow's stateless uniform, the op Keras itself uses.) A
    `StatelessSeed` already carries the replica id (see `draw_step_seeds`).
    """
    if isinstance(seed, StatelessSeed):
        return _uniform_at_step(shape, seed)
    replica = _tf_replica_id()
    if replica is None:
        return keras.random.uniform(shape, dtype="float32", seed=seed)
    import tensorflow as tf

    if isinstance(seed, keras.random.SeedGenerator):
        base = seed.next()
    else:
        base = ops.convert_to_tensor([seed, 0], dtype="int64")
    folded = tf.random.experimental.stateless_fold_in(
        tf.cast(base, "int64"), tf.cast(replica, "int64")
    )
    return tf.random.stateless_uniform(shape, seed=folded, dtype="float32")


def inverted_dropout_scale(rate):
    """The factor `1 / (1 - rate)` that keeps the expectation unchanged."""
    return 1.0 / (1.0 - rate)


def draw_masks(count, like, rate, seed, dtype=None):
    """Draws `count` independent inverted-dropout masks shaped like `like`.

    Returns a tuple of `count` tensors shaped like `like` whose entries are
    exactly `0` (probability `rate`) or `1 / (1 - rate)`, in `dtype`
    (default: `like.dtype`). All masks come from a single random call; they
    are separate tensors so that a time loop reads each as a loop constant
    (rule 2 of "Loop constants" in docs/design.md).

    Args:
        count: Number of masks (1 for a tied mask, 4 for per-gate LSTM
            masks, 3 for GRU).
        like: A tensor whose (dynamic) shape the masks take.
        rate: Drop probability in `[0, 1)`.
        seed: A `keras.random.SeedGenerator` (or an int).
        dtype: Dtype of the masks.
    """
    dtype = dtype or like.dtype
    shape = (count,) + tuple(ops.shape(like))
    keep = _uniform(shape, seed) >= rate
    scale = ops.cast(inverted_dropout_scale(rate), dtype)
    masks = ops.cast(keep, dtype) * scale
    return tuple(masks[k] for k in range(count))


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
    """
    return (seed * 0x9E3779B1 + 0x7F4A7C15 * (salt + 1)) % _MAX_SEED


def derive_seeds(seed, count):
    """`count` seeds derived from a `StatelessSeed`: int32 `(count, 2)`.

    Reads no random state. Inside a multi-replica `tf.distribute` context
    the replica id is folded in, as in `draw_step_seeds`.
    """
    replica = _tf_replica_id()
    if replica is not None:
        import tensorflow as tf

        seed = StatelessSeed(
            tf.random.experimental.stateless_fold_in(
                tf.cast(seed.seed, "int64"), tf.cast(replica, "int64")
            )
        )
    uniforms = _uniform_at_step((count, 2), seed)
    return ops.cast(uniforms * _MAX_SEED, "int32")


def reseed_for_backward_direction(generator, seed):
    """Moves a seeded generator to a stream derived from its seed.

    Deterministic (the same seed always gives the same backward stream) and
    different from the forward stream. A generator without a seed keeps its
    random stream, which already differs between instances.
    """
    if seed is None:
        return
    state = generator.state
    state.assign(
        ops.convert_to_tensor([derived_seed(seed, 0), 0], dtype=state.dtype)
    )


def spec_width(spec):
    """Total number of boolean channels of a noise spec."""
    return sum(width for _, _, width in spec)


def _thresholds(spec):
    parts = [
        ops.full((width,), prob, dtype="float32") for _, prob, width in spec
    ]
    return ops.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def draw_step_noise(spec, leading_shape, seed):
    """Draws boolean noise for a spec, for every entry of `leading_shape`.

    `leading_shape` is `(batch,)` for one step. `seed` is the cell's
    `SeedGenerator` (a stateful draw, for loops where that is correct) or
    the `StatelessSeed` of the step. Channel `k` of the result is `True`
    with the probability the spec gives it, independently for every sample
    and unit (and, with a fresh seed per step, for every step). Returns
    `None` for an empty spec.
    """
    if not spec:
        return None
    shape = tuple(leading_shape) + (spec_width(spec),)
    return _uniform(shape, seed) < _thresholds(spec)


def split_step_noise(spec, noise):
    """Splits a boolean noise tensor `(..., width)` into its named channels."""
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
    """
    if keras.backend.backend() != "jax":
        return False
    input_trace = _compat.staging_trace(step_input)
    if input_trace is None:
        return False
    return input_trace is not _compat.staging_trace(seed_generator.state.value)
