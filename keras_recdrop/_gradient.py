"""`keras.ops.custom_gradient` with one signature on every backend.

Keras passes the upstream gradient to the gradient function as its one
positional argument on TensorFlow and JAX, and as the keyword `upstream` on
PyTorch. `custom_gradient` takes a function `f(*inputs)` returning
`(value, grad)`, where `grad(upstream)` returns one gradient per input
(`None` for an input that gets none), and hides that difference.

The package writes out two gradients, both to keep less for the backward
pass than automatic differentiation would (see "Masked products" in
docs/design.md): the masked products of `cell_base` and the inverted
dropout of `noise.apply_mask`.
"""

from keras import ops


def custom_gradient(forward):
    """Decorates `forward(*inputs) -> (value, grad)`; see the module."""

    @ops.custom_gradient
    def wrapped(*inputs):
        value, grad = forward(*inputs)

        def portable_grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return grad(upstream)

        return value, portable_grad

    return wrapped
