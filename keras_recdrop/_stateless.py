"""Stateless random numbers from a seed tensor, on the device, per backend.

A draw here reads no random state and writes none: the same seed `(2,)`
(an integer tensor) always gives the same numbers. This is what lets a time
loop draw fresh noise at every step from a table of per-step seeds without
updating random state inside the loop (see docs/design.md).

`keras.random` takes a seed *tensor* only on JAX, so this module calls each
backend's own stateless generator, the one design exception to the
package's backend-neutral code (imports are lazy: each backend is already
imported by Keras when it is the active one):

* JAX: `jax.random` with the seed as a raw `uint32` key (threefry).
* TensorFlow: `tf.random.stateless_uniform` (Philox), the op Keras itself
  uses for its random ops.
* PyTorch: a counter-based hash computed with tensor ops on the seed's
  device. PyTorch's generators take a Python integer seed, which would
  copy the seed to the host (a synchronisation of the device at every
  step); the hash needs none. Each 32-bit word is two rounds of a 32-bit
  integer mixer (shifts, xors and multiplications by odd constants, the
  "lowbias32" construction) over `counter + key`, keyed by both seed words;
  computed in int64 and reduced modulo 2^32.

Per-step Bernoulli decisions use 16-bit integers (`bits16`): two per 32-bit
word, half the generator's work. A probability `p` is then applied as
`bits16 < round(p * 2^16)`, i.e. quantized to a multiple of 2^-16 (the
difference to `p` is at most 2^-17, far below any rate's meaning).
"""

import keras
from keras import ops

_MASK32 = 0xFFFFFFFF
_MULTIPLIERS = (0x21F0AAAD, 0x735A2D97)


def _torch_mix(x):
    """One round of a 32-bit integer mixer on int64 values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = (x * _MULTIPLIERS[0]) & _MASK32
    x = x ^ (x >> 15)
    x = (x * _MULTIPLIERS[1]) & _MASK32
    return x ^ (x >> 15)


def _torch_words(shape, seed):
    """Random 32-bit words (int64 in [0, 2^32)) on the seed's device.

    `seed` is `(2,)`, or `(steps, 2)` for the words of several seeds at
    once, `(steps, *shape)`: the same words as one draw per seed.
    """
    import torch

    seed = seed.to(torch.int64) & _MASK32
    key0 = _torch_mix(seed[..., 0:1])
    key1 = _torch_mix(seed[..., 1:2] ^ 0x9E3779B9)
    count = 1
    for size in shape:
        count *= int(size)
    counter = torch.arange(count, dtype=torch.int64, device=seed.device)
    words = _torch_mix(_torch_mix((counter + key0) & _MASK32) ^ key1)
    return words.reshape(seed.shape[:-1] + tuple(int(s) for s in shape))


def _words(shape, seed):
    """Random 32-bit words: uint32 on JAX and TensorFlow, int64 on torch.

    `seed` is `(2,)`; on PyTorch it may be `(steps, 2)` (see
    `_torch_words`).
    """
    backend = keras.backend.backend()
    if backend == "torch":
        return _torch_words(shape, seed)
    if backend == "jax":
        import jax

        return jax.random.bits(ops.cast(seed, "uint32"), shape, "uint32")
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_uniform(
            shape, seed=seed, minval=None, maxval=None, dtype=tf.uint32
        )
    raise NotImplementedError(
        f"Stateless per-step noise is not implemented for the {backend} "
        "backend."
    )


def uniform(shape, seed):
    """Float32 uniforms in `[0, 1)` (24 random bits each)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.random.uniform(ops.cast(seed, "uint32"), shape, "float32")
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_uniform(shape, seed=seed, dtype="float32")
    words = _words(shape, seed)
    return ops.cast(ops.right_shift(words, 8), "float32") * (2.0**-24)


def bits16(shape, seed):
    """Int32 values uniform on `[0, 2^16)`, two from every 32-bit word.

    On PyTorch `seed` may be `(steps, 2)`: the values of every step's seed
    at once, `(steps, *shape)`, equal to one draw per step.
    """
    *leading, width = shape
    words = _words((*leading, (int(width) + 1) // 2), seed)
    low = ops.bitwise_and(words, 0xFFFF)
    high = ops.right_shift(words, 16)
    values = ops.concatenate(
        [ops.cast(low, "int32"), ops.cast(high, "int32")], axis=-1
    )
    return values[..., : int(width)]


def seeds(count, seed):
    """`count` new seeds derived from `seed`: int32 `(count, 2)`.

    `count` may be a scalar tensor on TensorFlow (a sequence length that is
    only known when the graph runs).
    """
    if isinstance(count, int) or keras.backend.backend() != "tensorflow":
        count = int(count)
    words = _words((count, 2), seed)
    return ops.cast(ops.right_shift(words, 1), "int32")


def fold_in(seed, value):
    """A new seed `(2,)` from `seed` and an integer `value` (a tensor).

    Only needed on TensorFlow (the `tf.distribute` replica id folded into
    the seeds of a replica's draws; see `keras_recdrop.noise`):
    `tf.random.experimental.stateless_fold_in`, int64.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise NotImplementedError(
            f"fold_in is only used on TensorFlow, not on {backend}."
        )
    import tensorflow as tf

    return tf.random.experimental.stateless_fold_in(
        tf.cast(seed, "int64"), tf.cast(value, "int64")
    )
