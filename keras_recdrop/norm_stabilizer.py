"""Krueger & Memisevic (2016): norm stabilization of hidden states."""

import keras
from keras import ops

from keras_recdrop import _validation
from keras_recdrop import registry


def _safe_norm(x):
    """L2 norm over the last axis, with a zero (not NaN) gradient at 0."""
    squared = ops.sum(ops.square(x), axis=-1)
    positive = squared > 0.0
    safe = ops.where(positive, squared, ops.ones_like(squared))
    return ops.where(positive, ops.sqrt(safe), ops.zeros_like(squared))


@keras.saving.register_keras_serializable(package="keras_recdrop")
class NormStabilizer(keras.layers.Layer):
    """Norm-stabilizer penalty on a sequence (Krueger & Memisevic, 2016).

    "Regularizing RNNs by stabilizing activations": the layer returns its
    input unchanged and, in training, adds to its losses (`add_loss`) a
    penalty on the change of the L2 norm of the hidden state between
    consecutive steps. Put it after a recurrent layer with
    `return_sequences=True`.

    Equation (training; `h` of shape `(batch, time, units)`,
    `||.||` the L2 norm over `units`):

        loss = beta / (B (T - 1)) sum_b sum_{t=1}^{T-1}
                   (||h[b, t]|| - ||h[b, t - 1]||)^2

    i.e. `beta` times the mean, over the `T - 1` consecutive pairs and the
    batch, of the squared norm differences.

    With a Keras mask `(batch, time)` only the pairs whose two steps are
    both unmasked count: the mean is the sum over those pairs divided by
    their number (0 if there are none). The mask is passed on unchanged.
    A sequence of one step (or `beta = 0`) adds a zero penalty; at
    inference nothing is added. Norms are computed in float32, with a zero
    gradient at a zero vector (e.g. padding).

    Args:
        beta: Non-negative float, weight of the penalty (the paper uses
            values from 50 to 500 for language modeling).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: A 3D tensor `(batch, time, units)`.
        training: Python boolean; the penalty is added only in training.
        mask: Optional boolean tensor `(batch, time)`.

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> h = np.random.random((8, 5, 4)).astype("float32")
    >>> layer = keras_recdrop.NormStabilizer(beta=100.0)
    >>> y = layer(h, training=True)
    >>> tuple(y.shape), len(layer.losses)
    ((8, 5, 4), 1)
    >>> _ = layer(h, training=False)
    >>> len(layer.losses)
    0
    """

    def __init__(self, beta, **kwargs):
        beta = _validation.check_non_negative_float("beta", beta)
        super().__init__(**kwargs)
        self.beta = beta
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "NormStabilizer expects inputs of shape (batch, time, units); "
                f"received input_shape={tuple(input_shape)}."
            )
        self.built = True

    def penalty(self, inputs, mask=None):
        """The penalty `beta * mean (||h_t|| - ||h_{t-1}||)^2`, a scalar."""
        norms = _safe_norm(ops.cast(inputs, "float32"))
        squared_diffs = ops.square(norms[:, 1:] - norms[:, :-1])
        if mask is None:
            pairs = ops.ones_like(squared_diffs)
        else:
            mask = ops.cast(mask, "bool")
            pairs = ops.cast(
                ops.logical_and(mask[:, 1:], mask[:, :-1]), "float32"
            )
        count = ops.sum(pairs)
        total = ops.sum(squared_diffs * pairs)
        mean = ops.where(
            count > 0.0, total / ops.maximum(count, 1.0), ops.zeros_like(total)
        )
        return self.beta * mean

    def call(self, inputs, training=None, mask=None):
        if training and self.beta > 0.0:
            self.add_loss(self.penalty(inputs, mask))
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"beta": self.beta})
        return config


# A penalty on the loss, no noise.
registry.register(
    registry.Regularizer(name="norm_stabilizer", layers=(NormStabilizer,))
)
