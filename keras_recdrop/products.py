"""The masked products `(x * m_k) W_k` of the gates, in both modes.

Shared by the LSTM and GRU cells (`lstm_core`, `gru_core`): a gate's
pre-activation is a product of a (masked) input or state with that gate's
block of a kernel. `masked_products` computes them under one mask shared by
every gate or one mask per gate, with a written-out gradient that keeps
only the unmasked input for the backward pass; `gate_products` and
`products` choose between one fused product and one product per gate
block, which is how `implementation` 1 and 2 compute the same function
with the same masks.
"""

from keras import ops

from keras_recdrop import _compat
from keras_recdrop import _gradient


def _per_gate(masks):
    return masks is not None and len(masks) > 1


def _rows(t):
    """`t` as a matrix: its leading axes (steps, batch) merged into rows."""
    return t if len(t.shape) == 2 else ops.reshape(t, (-1, t.shape[-1]))


def masked_products(x, masks, kernels):
    """`concat_k((x * m_k) K_k)` (no bias) under one mask or one per kernel.

    `x` is `(batch, features)` (one step) or `(steps, batch, features)`
    (all steps at once, with per-sequence masks `(batch, features)`).
    `masks` is a tuple of one mask shared by every kernel or of one mask
    per kernel; `kernels` is the whole kernel (one product) or its gate
    blocks (one product each), as tensors (the backends' custom gradients
    take tensors, not variables; `CellContext` holds them so). The value
    is the plain expression. The gradient is written out so that a step
    keeps only `x` for the backward pass: the masks and kernels are loop
    constants, and the masked copies `x * m_k` are recomputed in the
    backward pass instead of being stored for every step, as automatic
    differentiation would (rule 3 of "Loop
    constants" in docs/design.md).

        dL/dx   = sum_k (dL/dz_k K_k^T) * m_k
        dL/dK_k = (x * m_k)^T dL/dz_k

    Example:

    >>> import keras
    >>> from keras_recdrop import products
    >>> x = keras.ops.ones((2, 3))
    >>> masks = (keras.ops.convert_to_tensor([[2.0, 0.0, 0.0]] * 2),)
    >>> kernel = keras.ops.ones((3, 4))
    >>> keras.ops.convert_to_numpy(
    ...     products.masked_products(x, masks, (kernel,))).tolist()
    [[2.0, 2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0]]
    """
    count, mask_count = len(kernels), len(masks)
    if mask_count not in (1, count):
        raise ValueError(
            f"Expected 1 or {count} masks for {count} kernels, got "
            f"{mask_count}."
        )

    @_gradient.custom_gradient
    def products(x, *masks_and_kernels):
        masks = masks_and_kernels[:mask_count]
        kernels = masks_and_kernels[mask_count:]

        def masked_copies():
            if mask_count == 1:
                return [x * masks[0]] * count
            return [x * m for m in masks]

        parts = [xm @ k for xm, k in zip(masked_copies(), kernels, strict=True)]
        z = parts[0] if count == 1 else ops.concatenate(parts, axis=-1)

        def grad(upstream):
            ups = (
                [upstream]
                if count == 1
                else _compat.split_gates(upstream, count)
            )
            back = [
                d @ ops.transpose(k) for d, k in zip(ups, kernels, strict=True)
            ]
            if mask_count == 1:
                dx = (back[0] if count == 1 else sum(back[1:], back[0])) * (
                    masks[0]
                )
            else:
                terms = [b * m for b, m in zip(back, masks, strict=True)]
                dx = sum(terms[1:], terms[0])
            kernel_grads = [
                ops.transpose(_rows(xm)) @ _rows(d)
                for xm, d in zip(masked_copies(), ups, strict=True)
            ]
            # The masks are not trained: no gradient.
            return (dx, *([None] * mask_count), *kernel_grads)

        return z, grad

    return products(x, *masks, *kernels)


def gate_products(x, blocks, masks, fused=False):
    """The products `(x * m_k) K_k`, one per gate, without bias.

    `blocks` are the per-gate column blocks `K_k` of a kernel; `masks` is
    `None` or a tuple of `G` tensors `(batch, features)`, with `G` either 1
    (one mask for all gates) or one per block. Returns one
    `(batch, G * units)` tensor if `fused`, else a list of `G` tensors.

    Example:

    >>> import keras
    >>> from keras_recdrop import products
    >>> x = keras.ops.ones((2, 3))
    >>> blocks = [keras.ops.ones((3, 1)) * k for k in range(4)]
    >>> z = products.gate_products(x, blocks, None, fused=True)
    >>> keras.ops.convert_to_numpy(z).tolist()
    [[0.0, 3.0, 6.0, 9.0], [0.0, 3.0, 6.0, 9.0]]
    """
    if masks is None:
        parts = [x @ k for k in blocks]
        return ops.concatenate(parts, axis=-1) if fused else parts
    z = masked_products(x, masks, blocks)
    return z if fused else _compat.split_gates(z, len(blocks))


def products(x, kernel, blocks, masks, per_gate_products, fused):
    """The products `(x * m_k) W_k` of every gate for one step (or all).

    `kernel` is the whole kernel and `blocks` its per-gate column blocks
    (both derived before the loop, see `CellContext`). With
    `per_gate_products` (`implementation=1`) or per-gate masks, one product
    per gate block (each gate needs its own masked copy of `x`); otherwise
    one fused product. Returns one `(..., G * units)` tensor if `fused`,
    else a list of `G` tensors; both ways give the same values. (A
    gate-batched `einsum("gbd,dgu->bgu")` computes the same but made
    TensorFlow without XLA transpose the kernel at every step, twice as
    slow; see `docs/benchmarks.md`.)

    Example:

    >>> import keras, numpy as np
    >>> from keras_recdrop import products
    >>> x = keras.ops.convert_to_tensor(np.random.rand(2, 3).astype("float32"))
    >>> kernel = keras.ops.convert_to_tensor(
    ...     np.random.rand(3, 8).astype("float32"))
    >>> blocks = keras.ops.split(kernel, 4, axis=1)
    >>> one = products.products(x, kernel, blocks, None, False, fused=True)
    >>> four = products.products(x, kernel, blocks, None, True, fused=True)
    >>> bool(np.allclose(keras.ops.convert_to_numpy(one),
    ...                  keras.ops.convert_to_numpy(four), atol=1e-6))
    True
    """
    if per_gate_products or _per_gate(masks):
        return gate_products(x, blocks, masks, fused=fused)
    if masks is None:
        z = x @ kernel
    else:
        z = masked_products(x, masks, (kernel,))
    return z if fused else _compat.split_gates(z, len(blocks))
