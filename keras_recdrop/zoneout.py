"""Krueger et al. (2016): zoneout."""

import keras
from keras import ops

from keras_recdrop import _compat
from keras_recdrop import _validation
from keras_recdrop import registry
from keras_recdrop.cell_base import init_arguments
from keras_recdrop.gru_core import GRUCellBase
from keras_recdrop.layer_base import CellArgument
from keras_recdrop.layer_base import GRULayerBase
from keras_recdrop.layer_base import LSTMLayerBase
from keras_recdrop.lstm_core import LSTMCellBase


def _zoneout(previous, new, rate, keep_previous, training):
    """Keeps `previous` where `keep_previous`, else takes `new`.

    At inference the expectation `rate * previous + (1 - rate) * new`.
    """
    if rate == 0.0:
        return new
    if rate == 1.0:
        return previous
    if training:
        return ops.where(keep_previous, previous, new)
    # `new + rate * (previous - new)`: one op on PyTorch's eager loop.
    return _compat.lerp(new, previous, rate)


class Zoneout:
    """Mixin: zoneout on the states named by `_zoneout_rates()`.

    Declares one per-step noise channel per zoned state (`d ~ Bernoulli(z)`,
    `True` = keep the previous value) and blends previous and new states.

    Example:

    >>> import keras_recdrop
    >>> cell = keras_recdrop.ZoneoutGRUCell(4, zoneout_h=0.1)
    >>> cell.step_noise_spec(True)  # keep h with probability 0.1, per step
    (('h', 0.1, 4),)
    >>> cell.step_noise_spec(False)  # the expectation at inference
    ()
    """

    def _zoneout_rates(self):
        raise NotImplementedError

    def step_noise_spec(self, training):
        if not training:
            return ()
        return tuple(
            (name, rate, self.units)
            for name, rate in self._zoneout_rates().items()
            if 0.0 < rate < 1.0
        )

    def computes_plain_rnn(self, training):
        # Zoneout blends states at inference too (the expectation).
        return super().computes_plain_rnn(training) and not any(
            self._zoneout_rates().values()
        )

    def _select_next_state(self, previous, proposed, context):
        noise = context.noise or {}
        rates = self._zoneout_rates()
        return {
            name: _zoneout(
                previous[name],
                proposed[name],
                rates.get(name, 0.0),
                noise.get(name),
                context.training,
            )
            for name in proposed
        }


@keras.saving.register_keras_serializable(package="keras_recdrop")
class ZoneoutLSTMCell(Zoneout, LSTMCellBase):
    """LSTM cell with zoneout (Krueger et al., 2016).

    At every step each unit of the cell state and of the hidden state keeps
    its previous value with probability `z` instead of being updated, like
    dropout with an identity mask instead of a zero mask. `z` is the
    probability of KEEPING the previous value (the paper's definition; the
    original code's probabilities were inverted).

    Equations (training; `d` drawn fresh for every sample, unit and step):

        ĉ_t = f * c_{t-1} + i * g          (plain LSTM update)
        ĥ_t = o * tanh(ĉ_t)                (from the un-zoned ĉ_t)
        d^c_t ~ Bernoulli(z_c),  d^h_t ~ Bernoulli(z_h)
        c_t = d^c_t * c_{t-1} + (1 - d^c_t) * ĉ_t
        h_t = d^h_t * h_{t-1} + (1 - d^h_t) * ĥ_t

    Inference uses the expectation:
    `c_t = z_c c_{t-1} + (1 - z_c) ĉ_t`, `h_t = z_h h_{t-1} + (1 - z_h) ĥ_t`.
    `z = 1` freezes the state; `z = 0` is a plain LSTM.

    Args:
        units: Positive integer, dimensionality of the output space.
        zoneout_c: Float in `[0, 1]`. Probability that a unit of the cell
            state keeps its previous value.
        zoneout_h: Float in `[0, 1]`. Same for the hidden state.
        dropout: Float in `[0, 1)`. Per-sequence input dropout (per gate
            unless `tied_masks`).
        recurrent_dropout: Float in `[0, 1)`. Per-sequence variational
            dropout on `h_{t-1}` as in `GalLSTMCell`, combinable with zoneout.
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
        training: Python boolean; random zoneout only in training,
            the expectation otherwise.
        step_seed: Optional stateless seed `(2,)` of the step, which a
            `keras.layers.RNN` with per-step seeds passes (the Keras
            change of docs/upstream.md); `keras_recdrop.RNN` gives its
            own.

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> x = np.random.random((8, 10, 3)).astype("float32")
    >>> rnn = keras_recdrop.RNN(
    ...     keras_recdrop.ZoneoutLSTMCell(4, zoneout_c=0.5, zoneout_h=0.05))
    >>> tuple(rnn(x, training=True).shape)
    (8, 4)
    """

    def __init__(
        self,
        units,
        zoneout_c=0.0,
        zoneout_h=0.0,
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
        self.zoneout_c = _validation.check_rate(
            "zoneout_c", zoneout_c, allow_one=True
        )
        self.zoneout_h = _validation.check_rate(
            "zoneout_h", zoneout_h, allow_one=True
        )
        super().__init__(
            **init_arguments(locals(), exclude=("zoneout_c", "zoneout_h"))
        )

    def _zoneout_rates(self):
        return {"c": self.zoneout_c, "h": self.zoneout_h}

    def get_config(self):
        return {
            **super().get_config(),
            "zoneout_c": self.zoneout_c,
            "zoneout_h": self.zoneout_h,
        }


@keras.saving.register_keras_serializable(package="keras_recdrop")
class ZoneoutGRUCell(Zoneout, GRUCellBase):
    """GRU cell with zoneout (Krueger et al., 2016).

    Each unit of the hidden state keeps its previous value with probability
    `z` at every step (`z` = probability of KEEPING, as in the paper).

    Equations (training; `d` fresh for every sample, unit and step):

        ĥ_t = z_gate * h_{t-1} + (1 - z_gate) * tanh(...)   (plain GRU update)
        d_t ~ Bernoulli(zoneout_h)
        h_t = d_t * h_{t-1} + (1 - d_t) * ĥ_t

    Inference uses the expectation `h_t = z h_{t-1} + (1 - z) ĥ_t`.

    Args:
        units: Positive integer, dimensionality of the output space.
        zoneout_h: Float in `[0, 1]`. Probability that a unit keeps its
            previous value.
        dropout: Float in `[0, 1)`. Per-sequence input dropout (per gate
            unless `tied_masks`).
        recurrent_dropout: Float in `[0, 1)`. Per-sequence variational
            dropout on `h_{t-1}` as in `GalGRUCell`.
        reset_after: Boolean, as in `keras.layers.GRUCell` (default `True`).
        tied_masks: Boolean. One dropout mask for all gates if `True`.
            `None` (default) follows `dropout_masks`.
        dropout_masks: `"per_gate"` (default) or `"shared"`: the same
            choice in the spelling proposed for Keras (docs/upstream.md).
        implementation: 1 (split products) or 2 (fused). Same outputs.
        seed: Integer or `None`.
        Other arguments: as in `keras.layers.GRUCell`.

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: List `[h]` with a 2D tensor `(batch, units)`.
        training: Python boolean; random zoneout only in training.
        step_seed: Optional stateless seed `(2,)` of the step, which a
            `keras.layers.RNN` with per-step seeds passes (the Keras
            change of docs/upstream.md); `keras_recdrop.RNN` gives its
            own.

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> x = np.random.random((8, 10, 3)).astype("float32")
    >>> rnn = keras_recdrop.RNN(keras_recdrop.ZoneoutGRUCell(4, zoneout_h=0.1))
    >>> tuple(rnn(x, training=True).shape)
    (8, 4)
    """

    def __init__(
        self,
        units,
        zoneout_h=0.0,
        dropout=0.0,
        recurrent_dropout=0.0,
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
        self.zoneout_h = _validation.check_rate(
            "zoneout_h", zoneout_h, allow_one=True
        )
        super().__init__(**init_arguments(locals(), exclude=("zoneout_h",)))

    def _zoneout_rates(self):
        return {"h": self.zoneout_h}

    def get_config(self):
        return {**super().get_config(), "zoneout_h": self.zoneout_h}


@keras.saving.register_keras_serializable(package="keras_recdrop")
class ZoneoutLSTM(LSTMLayerBase):
    """`keras.layers.LSTM` with zoneout (Krueger et al., 2016).

    At every training step each unit of `c` and `h` keeps its previous
    value with probability `zoneout_c` / `zoneout_h`; inference uses the
    expectation. See `ZoneoutLSTMCell` for the equations.

    Args:
        zoneout_c: Float in `[0, 1]`. Probability that a unit of the cell
            state keeps its previous value at a step.
        zoneout_h: Float in `[0, 1]`. Same for the hidden state.
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
    >>> layer = keras_recdrop.ZoneoutLSTM(
    ...     5, zoneout_c=0.5, zoneout_h=0.05, return_sequences=True)
    >>> tuple(layer(x, training=True).shape)
    (4, 6, 5)
    """

    cell_class = ZoneoutLSTMCell
    zoneout_c = CellArgument()
    zoneout_h = CellArgument()

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
        zoneout_c=0.0,
        zoneout_h=0.0,
        **kwargs,
    ):
        super().__init__(**init_arguments(locals()))


@keras.saving.register_keras_serializable(package="keras_recdrop")
class ZoneoutGRU(GRULayerBase):
    """`keras.layers.GRU` with zoneout (Krueger et al., 2016).

    At every training step each unit of `h` keeps its previous value with
    probability `zoneout_h`; inference uses the expectation. See
    `ZoneoutGRUCell` for the equations.

    Args:
        zoneout_h: Float in `[0, 1]`. Probability that a unit of the hidden
            state keeps its previous value at a step.
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
    >>> layer = keras_recdrop.ZoneoutGRU(
    ...     5, zoneout_h=0.1, return_sequences=True)
    >>> tuple(layer(x, training=True).shape)
    (4, 6, 5)
    """

    cell_class = ZoneoutGRUCell
    zoneout_h = CellArgument()

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
        zoneout_h=0.0,
        **kwargs,
    ):
        super().__init__(**init_arguments(locals()))


registry.register(
    registry.Regularizer(
        name="zoneout",
        cells=(ZoneoutLSTMCell, ZoneoutGRUCell),
        layers=(ZoneoutLSTM, ZoneoutGRU),
        converts={"LSTM": ZoneoutLSTM, "GRU": ZoneoutGRU},
        draws_noise=registry.cell_draws_noise,
    )
)
