"""Gal & Ghahramani (2016): variational (per-sequence) LSTM dropout."""

import keras

from keras_recdrop import registry
from keras_recdrop.cell_base import init_arguments
from keras_recdrop.gru_core import GRUCellBase
from keras_recdrop.layer_base import GRULayerBase
from keras_recdrop.layer_base import LSTMLayerBase
from keras_recdrop.lstm_core import LSTMCellBase


@keras.saving.register_keras_serializable(package="keras_recdrop")
class GalLSTMCell(LSTMCellBase):
    """LSTM cell with variational dropout (Gal & Ghahramani, 2016).

    One dropout mask per sequence on the inputs and one on the recurrent
    state, reused at every time step. By default every gate gets its own
    independent mask (the "untied" variant of the paper); `tied_masks=True`
    shares one mask between the four gates. Inverted scaling: kept units are
    multiplied by `1 / (1 - p)`, so inference is exactly a plain LSTM.

    Equations (training; `m` drawn once per sequence, entries in
    `{0, 1/(1-p)}`):

        z_k = (x_t * m^x_k) W_k + (h_{t-1} * m^h_k) U_k + b_k,  k ∈ {i,f,c,o}
        i, f, o = σ(z_i), σ(z_f), σ(z_o);   g = tanh(z_c)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    With `tied_masks=True`, `m^x_i = m^x_f = m^x_c = m^x_o` (same for `m^h`).
    Unlike `keras.layers.LSTMCell`, both `implementation` modes use the same
    masks and give the same outputs for a given seed, and recurrent dropout
    does not force the slow split mode.

    Args:
        units: Positive integer, dimensionality of the output space.
        dropout: Float in `[0, 1)`. Fraction of the input units dropped, one
            mask per sequence (per gate unless `tied_masks`).
        recurrent_dropout: Float in `[0, 1)`. Fraction of the units of
            `h_{t-1}` dropped, one mask per sequence (per gate unless
            `tied_masks`).
        tied_masks: Boolean. If `True`, one mask is shared by the four gates.
            `None` (default) follows `dropout_masks`.
        dropout_masks: `"per_gate"` (default) or `"shared"`: the same
            choice in the spelling proposed for Keras (docs/upstream.md).
        implementation: 1 (four split matrix products) or 2 (fused, the
            default). Both compute the same function.
        seed: Integer or `None`. Seed of the cell's random stream.
        Other arguments: as in `keras.layers.LSTMCell` (`activation`,
            `recurrent_activation`, `use_bias`, the initializers,
            `unit_forget_bias`, regularizers and constraints).

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
    ...     keras_recdrop.GalLSTMCell(4, dropout=0.2, recurrent_dropout=0.25))
    >>> tuple(rnn(x, training=True).shape)
    (8, 4)
    """

    def __init__(
        self,
        units,
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
        super().__init__(**init_arguments(locals()))


@keras.saving.register_keras_serializable(package="keras_recdrop")
class GalGRUCell(GRUCellBase):
    """GRU cell with variational dropout (Gal & Ghahramani, 2016).

    One mask per sequence on the inputs and one on `h_{t-1}`, reused at every
    step: three independent per-gate masks by default, one shared mask with
    `tied_masks=True`. Inverted scaling; inference is a plain GRU.

    Equations (training; masks drawn once per sequence):

        x_k = (x_t * m^x_k) W_k + b^x_k     k ∈ {z, r, h}
        u_k = (h_{t-1} * m^h_k) U_k
        z = σ(x_z + u_z + b^u_z),  r = σ(x_r + u_r + b^u_r)
        ĥ = tanh(x_h + r * (u_h + b^u_h))            (reset_after=True)
        ĥ = tanh(x_h + (r * (h_{t-1} * m^h_h)) U_h)  (reset_after=False)
        h_t = z * h_{t-1} + (1 - z) * ĥ

    Both `implementation` modes use the same masks and give the same outputs.

    Args:
        units: Positive integer, dimensionality of the output space.
        dropout: Float in `[0, 1)`. Input dropout, one mask per sequence.
        recurrent_dropout: Float in `[0, 1)`. Dropout on `h_{t-1}`, one mask
            per sequence.
        tied_masks: Boolean. One mask shared by the three gates if `True`.
            `None` (default) follows `dropout_masks`.
        dropout_masks: `"per_gate"` (default) or `"shared"`: the same
            choice in the spelling proposed for Keras (docs/upstream.md).
        reset_after: Boolean, as in `keras.layers.GRUCell` (default `True`).
        implementation: 1 or 2. Same outputs.
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
    ...     keras_recdrop.GalGRUCell(4, dropout=0.2, recurrent_dropout=0.25))
    >>> tuple(rnn(x, training=True).shape)
    (8, 4)
    """

    def __init__(
        self,
        units,
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
        super().__init__(**init_arguments(locals()))


@keras.saving.register_keras_serializable(package="keras_recdrop")
class GalLSTM(LSTMLayerBase):
    """`keras.layers.LSTM` with Gal & Ghahramani's variational dropout.

    A drop-in replacement for `keras.layers.LSTM`: the same arguments in
    the same order, weights and state, over a `GalLSTMCell`. Dropout masks
    are drawn once per sequence, per gate (as Keras's `implementation=1`
    draws them) in both implementation modes, and recurrent dropout does
    not force the split mode. See `GalLSTMCell` for the equations.

    Args:
        dropout: Float in `[0, 1)`. Input dropout: one mask per sequence,
            per gate unless `dropout_masks="shared"`.
        recurrent_dropout: Float in `[0, 1)`. Dropout of `h_{t-1}`: one
            mask per sequence, per gate unless `dropout_masks="shared"`.
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
    >>> layer = keras_recdrop.GalLSTM(
    ...     5, dropout=0.2, recurrent_dropout=0.25, return_sequences=True)
    >>> tuple(layer(x, training=True).shape)
    (4, 6, 5)
    """

    cell_class = GalLSTMCell

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
        **kwargs,
    ):
        super().__init__(**init_arguments(locals()))


@keras.saving.register_keras_serializable(package="keras_recdrop")
class GalGRU(GRULayerBase):
    """`keras.layers.GRU` with Gal & Ghahramani's variational dropout.

    A drop-in replacement for `keras.layers.GRU`: the same arguments in
    the same order, weights and state, over a `GalGRUCell`; per-gate masks
    drawn once per sequence in both implementation modes. See `GalGRUCell`
    for the equations.

    Args:
        dropout: Float in `[0, 1)`. Input dropout: one mask per sequence,
            per gate unless `dropout_masks="shared"`.
        recurrent_dropout: Float in `[0, 1)`. Dropout of `h_{t-1}`: one
            mask per sequence, per gate unless `dropout_masks="shared"`.
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
    >>> layer = keras_recdrop.GalGRU(
    ...     5, dropout=0.2, recurrent_dropout=0.25, return_sequences=True)
    >>> tuple(layer(x, training=True).shape)
    (4, 6, 5)
    """

    cell_class = GalGRUCell

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
        **kwargs,
    ):
        super().__init__(**init_arguments(locals()))


registry.register(
    registry.Regularizer(
        name="gal",
        cells=(GalLSTMCell, GalGRUCell),
        layers=(GalLSTM, GalGRU),
        converts={"LSTM": GalLSTM, "GRU": GalGRU},
        draws_noise=registry.cell_draws_noise,
    )
)
