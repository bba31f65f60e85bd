"""The LSTM step shared by every LSTM cell of the package.

`LSTMCellBase` has exactly `keras.layers.LSTMCell`'s arguments, weights
(`kernel (D, 4U)`, `recurrent_kernel (U, 4U)`, `bias (4U,)`, gate order
i, f, c, o) and state `[h, c]`:

    z_k = (x_t * m^x_k) W_k + (h_{t-1} * m^h_k) U_k + b_k,  k in {i, f, c, o}
    i = σ(z_i)   f = σ(z_f)   g = tanh(z_c)   o = σ(z_o)
    ĉ_t = f * c_{t-1} + transform_candidate_update(i * g)
    ĥ_t = o * tanh(ĉ_t)
    (h_t, c_t) = select_next_state((h_{t-1}, c_{t-1}), (ĥ_t, ĉ_t))

`m^x_k`, `m^h_k` are per-sequence inverted dropout masks (four independent
masks, or one shared with `tied_masks=True`); the two functions are the
regularizers' hooks (see `cell_base`). Both `implementation` modes compute
this same function with the same masks: mode 1 with one product per gate,
mode 2 with one product where the masks allow it, so recurrent dropout
never forces mode 1. A step is split in two (the contract of `cell_base`):
the input projection `(x_t * m^x_k) W_k + b_k` (`project_inputs`), which
depends on neither `h` nor `c` (`keras_recdrop.RNN` computes it for all
steps at once on PyTorch), and the rest (`step`). The masks and weights of
a call come in its `CellContext`.
"""

from keras import initializers
from keras import ops

from keras_recdrop import _compat
from keras_recdrop import _validation
from keras_recdrop.cell_base import RegularizedCellBase


class LSTMCellBase(RegularizedCellBase):
    """Weights and gate arithmetic shared by the package's LSTM cells.

    Not meant to be used directly: use `ZoneoutLSTMCell`,
    `SemeniutaLSTMCell`, `GalLSTMCell` or `WeightDropLSTMCell`.

    Example:

    >>> import keras, numpy as np, keras_recdrop
    >>> cell = keras_recdrop.GalLSTMCell(4)
    >>> cell.state_size, cell.unit_forget_bias
    ([4, 4], True)
    """

    num_gates = 4

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        self.unit_forget_bias = _validation.check_bool(
            "unit_forget_bias", unit_forget_bias
        )
        super().__init__(units, **kwargs)
        self.state_size = [self.units, self.units]

    def build(self, input_shape):
        self._check_step_shape(input_shape)
        super().build(input_shape)
        self._add_kernels(input_shape[-1])
        if not self.use_bias:
            self.bias = None
            return
        if self.unit_forget_bias:

            def bias_initializer(_, *args, **kwargs):
                return ops.concatenate(
                    [
                        self.bias_initializer((self.units,), *args, **kwargs),
                        initializers.get("ones")(
                            (self.units,), *args, **kwargs
                        ),
                        self.bias_initializer(
                            (self.units * 2,), *args, **kwargs
                        ),
                    ]
                )

        else:
            bias_initializer = self.bias_initializer
        self.bias = self.add_weight(
            shape=(self.units * 4,),
            name="bias",
            initializer=bias_initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def project_inputs(self, inputs, context):
        """`(x_t * m^x_k) W_k + b_k` of the four gates: `(..., 4 * units)`.

        It depends on neither `h` nor `c`, so `inputs` may be one step
        `(batch, features)` or all steps `(timesteps, batch, features)`.
        """
        z = self._products(
            inputs, "kernel", context.input_masks, context, fused=True
        )
        return z if self.bias is None else z + self.bias

    def step(self, projection, states, context):
        """One step from the input projection and the previous `[h, c]`."""
        h_tm1, c_tm1 = states[0], states[1]
        state_masks = (
            context.recurrent_masks
            if self.recurrent_masks_multiply_state
            else None
        )
        z = projection + self._products(
            h_tm1, "recurrent_kernel", state_masks, context, fused=True
        )
        z_i, z_f, z_c, z_o = _compat.split_gates(z, 4)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        g = self.activation(z_c)
        o = self.recurrent_activation(z_o)
        update = self._transform_candidate_update(i * g, context)
        c_new = f * c_tm1 + update
        h_new = o * self.activation(c_new)
        state = self._select_next_state(
            {"h": h_tm1, "c": c_tm1}, {"h": h_new, "c": c_new}, context
        )
        return state["h"], [state["h"], state["c"]]

    def fused_call(self, sequences, initial_state, mask, context, **options):
        """The backend's fused LSTM (cuDNN; PyTorch's CPU fallback).

        Raises `NotImplementedError` where the backend has none. `options`
        are the loop's (`return_sequences`, `go_backwards`, `unroll`).
        """
        return _compat.fused_lstm(
            sequences,
            initial_state[0],
            initial_state[1],
            mask,
            kernel=context.weight("kernel"),
            recurrent_kernel=context.weight("recurrent_kernel"),
            bias=self.bias,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            **options,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "unit_forget_bias": self.unit_forget_bias,
        }
