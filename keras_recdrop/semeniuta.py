"""Semeniuta et al. (2016): recurrent dropout without memory loss."""

import keras

from keras_recdrop import _validation
from keras_recdrop import noise as noise_lib
from keras_recdrop import registry
from keras_recdrop.cell_base import init_arguments
from keras_recdrop.gru_core import GRUCellBase
from keras_recdrop.layer_base import CellArgument
from keras_recdrop.layer_base import GRULayerBase
from keras_recdrop.layer_base import LSTMLayerBase
from keras_recdrop.lstm_core import LSTMCellBase


class Semeniuta:
    """Mixin: dropout on the candidate update only (Semeniuta et al., 2016).

    `recurrent_dropout` is the rate of the candidate mask, fresh at every
    step (`per_step=True`, declared as per-step noise) or drawn once per
    sequence in the recurrent-mask hook (`per_step=False`).

    Example:

    >>> import keras_recdrop
    >>> cell = keras_recdrop.SemeniutaLSTMCell(4, recurrent_dropout=0.25)
    >>> cell.step_noise_spec(True)[0][:2]  # a fresh candidate mask per step
    ('keep_g', 0.75)
    >>> keras_recdrop.SemeniutaLSTMCell(
    ...     4, recurrent_dropout=0.25, per_step=False).step_noise_spec(True)
    ()
    """

    recurrent_masks_multiply_state = False

    def _recurrent_mask_count(self):
        if self.recurrent_dropout > 0 and not self.per_step:
            return 1
        return 0

    def step_noise_spec(self, training):
        if training and self.per_step and self.recurrent_dropout > 0:
            return (("keep_g", 1.0 - self.recurrent_dropout, self.units),)
        return ()

    def _transform_candidate_update(self, update, context):
        # The mask multiplies the candidate's update, `m * (i * g)` (LSTM)
        # or `m * ((1 - z) * g)` (GRU): the same as masking `g` first. The
        # products the gradient needs (`i`, `g`, `z`) are kept anyway, and
        # `apply_mask`'s gradient keeps only the mask, so per step the
        # gradient adds the boolean decisions and nothing else.
        if not context.training or self.recurrent_dropout == 0:
            return update
        if not self.per_step:
            return noise_lib.apply_mask(update, context.recurrent_masks[0])
        scale = noise_lib.inverted_dropout_scale(self.recurrent_dropout)
        return noise_lib.apply_mask(update, context.noise["keep_g"], scale)

    def get_config(self):
        return {**super().get_config(), "per_step": self.per_step}


@keras.saving.register_keras_serializable(package="keras_recdrop")
class SemeniutaLSTMCell(Semeniuta, LSTMCellBase):
    """LSTM cell that drops the candidate update (Semeniuta et al., 2016).

    "Recurrent dropout without memory loss": dropout is applied to the
    candidate `g` only, never to the memory `c_{t-1}`, so what the cell has
    stored is not erased. Inverted scaling, so inference is a plain LSTM.

    Equations (training; `m_t` entries in `{0, 1/(1-p)}`, fresh at every
    step with `per_step=True`, one per sequence with `per_step=False`):

        z_k = (x_t * m^x_k) W_k + h_{t-1} U_k + b_k,   k ∈ {i,f,c,o}
        i, f, o = σ(z_i), σ(z_f), σ(z_o);   g_t = tanh(z_c)
        c_t = f * c_{t-1} + i * (m_t * g_t)
        h_t = o * tanh(c_t)

    where `m^x` is the optional per-sequence input dropout (`dropout`, per
    gate unless `tied_masks`).

    Args:
        units: Positive integer, dimensionality of the output space.
        recurrent_dropout: Float in `[0, 1)`. Probability of dropping each
            unit of the candidate update.
        dropout: Float in `[0, 1)`. Per-sequence input dropout.
        per_step: Boolean. `True` (default, the paper's recommendation): a
            fresh candidate mask at every step; `False`: one per sequence.
        tied_masks: Boolean. One input mask for all gates if `True`.
            `None` (default) follows `dropout_masks`.
        dropout_masks: `"per_gate"` (default) or `"shared"`: the same
            choice in the spelling proposed for Keras (docs/upstream.md).
        implementation: 1 (split products) or 2 (fused). Same outputs.
        seed: Integer or `None`.
        Other arguments: as in `keras.layers.LSTMCell`.

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: List `[h, c]` of 2D tensors `(batch, units)`.
        training: Python boolean; masks are applied only in training.
        step_seed: Optional stateless seed `(2,)` of the step, which a
            `keras.layers.RNN` with per-step seeds passes (the Keras
            change of docs/upstream.md); `keras_recdrop.RNN` gives its
            own.

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> x = np.random.random((8, 10, 3)).astype("float32")
    >>> rnn = keras_recdrop.RNN(
    ...     keras_recdrop.SemeniutaLSTMCell(4, recurrent_dropout=0.25))
    >>> tuple(rnn(x, training=True).shape)
    (8, 4)
    """

    def __init__(
        self,
        units,
        recurrent_dropout=0.0,
        dropout=0.0,
        per_step=True,
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
        self.per_step = _validation.check_bool("per_step", per_step)
        super().__init__(**init_arguments(locals(), exclude=("per_step",)))


@keras.saving.register_keras_serializable(package="keras_recdrop")
class SemeniutaGRUCell(Semeniuta, GRUCellBase):
    """GRU cell that drops the candidate update (Semeniuta et al., 2016).

    Equations (training; `m_t` entries in `{0, 1/(1-p)}`, fresh every step
    with `per_step=True`, one per sequence with `per_step=False`):

        ĥ_t = tanh(x_h + r * u_h)             (the plain GRU candidate)
        h_t = z * h_{t-1} + (1 - z) * (m_t * ĥ_t)

    Inverted scaling, so inference is a plain GRU.

    Args:
        units: Positive integer, dimensionality of the output space.
        recurrent_dropout: Float in `[0, 1)`. Candidate drop probability.
        dropout: Float in `[0, 1)`. Per-sequence input dropout.
        per_step: Boolean. Fresh candidate mask at every step (default) or
            one per sequence.
        reset_after: Boolean, as in `keras.layers.GRUCell` (default `True`).
        tied_masks: Boolean. One input mask for all gates if `True`.
            `None` (default) follows `dropout_masks`.
        dropout_masks: `"per_gate"` (default) or `"shared"`: the same
            choice in the spelling proposed for Keras (docs/upstream.md).
        implementation: 1 (split products) or 2 (fused). Same outputs.
        seed: Integer or `None`.
        Other arguments: as in `keras.layers.GRUCell`.

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: List `[h]` with a 2D tensor `(batch, units)`.
        training: Python boolean; masks are applied only in training.
        step_seed: Optional stateless seed `(2,)` of the step, which a
            `keras.layers.RNN` with per-step seeds passes (the Keras
            change of docs/upstream.md); `keras_recdrop.RNN` gives its
            own.

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> x = np.random.random((8, 10, 3)).astype("float32")
    >>> rnn = keras_recdrop.RNN(
    ...     keras_recdrop.SemeniutaGRUCell(4, recurrent_dropout=0.25))
    >>> tuple(rnn(x, training=True).shape)
    (8, 4)
    """

    def __init__(
        self,
        units,
        recurrent_dropout=0.0,
        dropout=0.0,
        per_step=True,
        *,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        reset_after=True,
        seed=None,
        dropout_masks="per_gate",
        tied_masks=None,
        implementation=2,
        **kwargs,
    ):
        self.per_step = _validation.check_bool("per_step", per_step)
        super().__init__(**init_arguments(locals(), exclude=("per_step",)))


@keras.saving.register_keras_serializable(package="keras_recdrop")
class SemeniutaLSTM(LSTMLayerBase):
    """`keras.layers.LSTM` with Semeniuta et al.'s recurrent dropout (2016).

    "Recurrent dropout without memory loss": `recurrent_dropout` drops the
    candidate update `i * g` only, never the memory `c_{t-1}`. See
    `SemeniutaLSTMCell` for the equations.

    Args:
        recurrent_dropout: Float in `[0, 1)`. Semeniuta's dropout of the
            candidate update: the probability of dropping each unit of it
            (never the memory).
        per_step: Boolean (default `True`, the paper's recommendation). A
            fresh candidate mask at every step; `False`: one per sequence.
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
    >>> layer = keras_recdrop.SemeniutaLSTM(
    ...     5, recurrent_dropout=0.25, return_sequences=True)
    >>> tuple(layer(x, training=True).shape)
    (4, 6, 5)
    """

    cell_class = SemeniutaLSTMCell
    per_step = CellArgument()

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
        per_step=True,
        **kwargs,
    ):
        super().__init__(**init_arguments(locals()))


@keras.saving.register_keras_serializable(package="keras_recdrop")
class SemeniutaGRU(GRULayerBase):
    """`keras.layers.GRU` with Semeniuta et al.'s recurrent dropout (2016).

    `recurrent_dropout` drops the candidate update `(1 - z) * ĥ` only,
    never the memory `h_{t-1}`. See `SemeniutaGRUCell` for the equations.

    Args:
        recurrent_dropout: Float in `[0, 1)`. Semeniuta's dropout of the
            candidate update: the probability of dropping each unit of it
            (never the memory).
        per_step: Boolean (default `True`, the paper's recommendation). A
            fresh candidate mask at every step; `False`: one per sequence.
        Other arguments: those of `keras.layers.GRU`, in its order, then
            `dropout_masks`, and the keyword-only `tied_masks`,
            `implementation` and `stateful_masks`: see `GRULayerBase`.

    Call arguments:
        sequences: A 3D tensor `(batch, timesteps, features)`.
        initial_state: Optional list of initial state tensors.
        mask: Optional boolean tensor `(batch, timesteps)`.
        training: Python boolean; noise only in training.

    Example:

    >>> import numpy as np, keras_recdrop
    >>> x = np.random.random((4, 6, 3)).astype("float32")
    >>> layer = keras_recdrop.SemeniutaGRU(
    ...     5, recurrent_dropout=0.25, return_sequences=True)
    >>> tuple(layer(x, training=True).shape)
    (4, 6, 5)
    """

    cell_class = SemeniutaGRUCell
    per_step = CellArgument()

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
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
        reset_after=True,
        use_cudnn="auto",
        dropout_masks="per_gate",
        *,
        tied_masks=None,
        implementation=2,
        stateful_masks=False,
        per_step=True,
        **kwargs,
    ):
        super().__init__(**init_arguments(locals()))


registry.register(
    registry.Regularizer(
        name="semeniuta",
        cells=(SemeniutaLSTMCell, SemeniutaGRUCell),
        layers=(SemeniutaLSTM, SemeniutaGRU),
        converts={"LSTM": SemeniutaLSTM, "GRU": SemeniutaGRU},
        draws_noise=registry.cell_draws_noise,
    )
)
