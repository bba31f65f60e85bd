"""Merity et al. (2017): DropConnect on the recurrent weights (AWD-LSTM)."""

import keras

from keras_recdrop import _validation
from keras_recdrop import noise as noise_lib
from keras_recdrop.lstm_core import LSTMCellBase


@keras.saving.register_keras_serializable(package="keras_recdrop")
class WeightDropLSTMCell(LSTMCellBase):
    """LSTM cell with DropConnect on `recurrent_kernel` (Merity et al., 2017).

    The "weight-dropped LSTM" of AWD-LSTM: each entry of the recurrent
    weight matrix is dropped with probability `weight_dropout`, with one
    weight mask per call shared by the whole batch and every time step
    (drawn before the time loop). Inverted scaling, so inference is a plain
    LSTM.

    Equations (training; `M` of shape `(U, 4U)` with entries in
    `{0, 1/(1-p)}`, drawn once per call):

        z_k = (x_t * m^x_k) W_k + h_{t-1} (U * M)_k + b_k
        c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

    Args:
        units: Positive integer, dimensionality of the output space.
        weight_dropout: Float in `[0, 1)`. Probability of dropping each
            recurrent weight.
        dropout: Float in `[0, 1)`. Per-sequence input dropout (per gate
            unless `tied_masks`).
        recurrent_dropout: Float in `[0, 1)`. Per-sequence variational
            dropout on `h_{t-1}`, as in `GalLSTMCell` (AWD-LSTM uses weight
            dropout instead; combining both is allowed).
        tied_masks: Boolean. One dropout mask for all gates if `True`.
            `None` (default) follows `dropout_masks`.
        dropout_masks: `"per_gate"` (default) or `"shared"`: the same
            choice in the spelling proposed for Keras (docs/upstream.md).
        implementation: 1 (split products) or 2 (fused). Same outputs.
        seed: Integer or `None`.
        Other arguments: as in `keras.layers.LSTMCell`.

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: List `[h, c]` of 2D tensors `(batch, units)`.
        training: Python boolean; the weight mask is applied only in
            training.
        step_seed: Optional stateless seed `(2,)` of the step, which a
            `keras.layers.RNN` with per-step seeds passes (the Keras
            change of docs/upstream.md); `keras_recdrop.RNN` gives its
            own.

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> x = np.random.random((8, 10, 3)).astype("float32")
    >>> rnn = keras_recdrop.RNN(
    ...     keras_recdrop.WeightDropLSTMCell(4, weight_dropout=0.5))
    >>> tuple(rnn(x, training=True).shape)
    (8, 4)
    """

    def __init__(self, units, weight_dropout=0.0, dropout=0.0, **kwargs):
        self.weight_dropout = _validation.check_rate(
            "weight_dropout", weight_dropout
        )
        super().__init__(units, dropout=dropout, **kwargs)

    def get_weight_dropout_mask(self):
        """The weight mask `(U, 4U)` of this call, drawn once and cached.

        Boolean keep decisions (`True`: kept, scaled by `1 / (1 - p)`), a
        quarter of the bytes of a float mask of the kernel's size.
        """
        if getattr(self, "_weight_mask", None) is None:
            self._weight_mask = noise_lib.draw_keep_decisions(
                1,
                self.recurrent_kernel,
                self.weight_dropout,
                self._mask_seed("weight"),
            )[0]
        return self._weight_mask

    def get_recurrent_dropout_mask(self, step_input):
        # The pre-loop hook of `keras.layers.RNN`: draw the weight mask here
        # too, so that it is drawn once per call, outside the loop.
        if self.weight_dropout > 0:
            self.get_weight_dropout_mask()
        return super().get_recurrent_dropout_mask(step_input)

    def reset_recurrent_dropout_mask(self):
        super().reset_recurrent_dropout_mask()
        self._weight_mask = None

    def _effective_weight(self, name, training):
        weight = super()._effective_weight(name, training)
        if name != "recurrent_kernel" or not training:
            return weight
        if self.weight_dropout == 0:
            return weight
        # Written-out gradient: the step keeps the boolean mask only.
        # The variable read into a tensor, as `cell_base._masked_products`
        # reads kernels (a reshape to its own shape: no copy on any
        # backend): the backends' custom gradients take tensors.
        return noise_lib.apply_mask(
            keras.ops.reshape(weight, keras.ops.shape(weight)),
            self.get_weight_dropout_mask(),
            noise_lib.inverted_dropout_scale(self.weight_dropout),
        )

    def get_config(self):
        return {**super().get_config(), "weight_dropout": self.weight_dropout}
