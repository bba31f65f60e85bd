"""Merity et al. (2017): DropConnect on the recurrent weights (AWD-LSTM)."""

import keras

from keras_recdrop import _validation
from keras_recdrop import noise as noise_lib
from keras_recdrop import registry
from keras_recdrop.cell_base import init_arguments
from keras_recdrop.layer_base import CellArgument
from keras_recdrop.layer_base import LSTMLayerBase
from keras_recdrop.lstm_core import LSTMCellBase


@keras.saving.register_keras_serializable(package="keras_recdrop")
class WeightDropLSTMCell(LSTMCellBase):
    """LSTM cell with DropConnect on `recurrent_kernel` (Merity et al., 2017).

    The "weight-dropped LSTM" of AWD-LSTM: each entry of the recurrent
    weight matrix is dropped with probability `weight_dropout`, with one
    weight mask per call shared by the whole batch and every time step
    (drawn before the time loop). Inverted scaling, so inference is a
    plain LSTM.

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

    def __init__(
        self,
        units,
        weight_dropout=0.0,
        dropout=0.0,
        recurrent_dropout=0.0,
        *,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        seed=None,
        dropout_masks="per_gate",
        tied_masks=None,
        implementation=2,
        **kwargs,
    ):
        self.weight_dropout = _validation.check_rate(
            "weight_dropout", weight_dropout
        )
        super().__init__(
            **init_arguments(locals(), exclude=("weight_dropout",))
        )

    def _draw_weight_masks(self, seed):
        """The weight mask `(U, 4U)` of this call, as boolean decisions.

        `True`: kept, scaled by `1 / (1 - p)`; a quarter of the bytes of a
        float mask of the kernel's size.
        """
        if self.weight_dropout == 0:
            return {}
        (keep,) = noise_lib.draw_keep_decisions(
            1, tuple(self.recurrent_kernel.shape), self.weight_dropout, seed
        )
        return {"recurrent_kernel": keep}

    def draws_noise(self):
        return super().draws_noise() or self.weight_dropout > 0

    def _effective_weight(self, name, weight_masks):
        weight = super()._effective_weight(name, weight_masks)
        if name not in weight_masks:
            return weight
        # Written-out gradient: the step keeps the boolean mask only.
        # The variable read into a tensor (a reshape to its own shape: no
        # copy on any backend): the backends' custom gradients take
        # tensors.
        return noise_lib.apply_mask(
            keras.ops.reshape(weight, keras.ops.shape(weight)),
            weight_masks[name],
            noise_lib.inverted_dropout_scale(self.weight_dropout),
        )

    def get_config(self):
        return {**super().get_config(), "weight_dropout": self.weight_dropout}


@keras.saving.register_keras_serializable(package="keras_recdrop")
class WeightDropLSTM(LSTMLayerBase):
    """`keras.layers.LSTM` with DropConnect on `recurrent_kernel`.

    The weight-dropped LSTM of AWD-LSTM (Merity et al., 2017): one mask of
    the recurrent weights per call, shared by the batch and every step.
    See `WeightDropLSTMCell` for the equations.

    Args:
        weight_dropout: Float in `[0, 1)`. Probability of dropping each
            weight of `recurrent_kernel` (one mask per call).
        Other arguments: those of `keras.layers.LSTM`, in its order, then
            `dropout_masks`, and the keyword-only `tied_masks`,
            `implementation` and `stateful_masks`: see `LSTMLayerBase`.

    Call arguments:
        sequences: A 3D tensor `(batch, timesteps, features)`.
        initial_state: Optional list of initial state tensors.
        mask: Optional boolean tensor `(batch, timesteps)`.
        training: Python boolean; noise only in training.

    Example:

    >>> import numpy as np, keras_recdrop
    >>> x = np.random.random((4, 6, 3)).astype("float32")
    >>> layer = keras_recdrop.WeightDropLSTM(
    ...     5, weight_dropout=0.5, return_sequences=True)
    >>> tuple(layer(x, training=True).shape)
    (4, 6, 5)
    """

    cell_class = WeightDropLSTMCell
    weight_dropout = CellArgument()

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        dropout_masks="per_gate",
        *,
        tied_masks=None,
        implementation=2,
        stateful_masks=False,
        weight_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**init_arguments(locals()))


def _weight_mask_is_drawn(obj):
    return obj.weight_dropout > 0


registry.register(
    registry.Regularizer(
        name="weight_drop",
        cells=(WeightDropLSTMCell,),
        layers=(WeightDropLSTM,),
        converts={"LSTM": WeightDropLSTM},
        # One weight mask per call, for the whole batch.
        shares_noise_across_batch=_weight_mask_is_drawn,
        draws_noise=registry.cell_draws_noise,
    )
)
