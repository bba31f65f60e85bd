"""The GRU step shared by every GRU cell of the package.

`GRUCellBase` has exactly `keras.layers.GRUCell`'s arguments, weights
(`kernel (D, 3U)`, `recurrent_kernel (U, 3U)`, `bias (3U,)` or `(2, 3U)`
with `reset_after=True`, gate order z, r, h) and state `[h]`:

    x_k = (x_t * m^x_k) W_k + b^x_k       k in {z, r, h}
    u_k = (h_{t-1} * m^h_k) U_k
    z = σ(x_z + u_z + b^u_z)    r = σ(x_r + u_r + b^u_r)
    reset_after=True:   ĥ = tanh(x_h + r * (u_h + b^u_h))
    reset_after=False:  ĥ = tanh(x_h + (r * (h_{t-1} * m^h_h)) U_h)
    ĥ_t = candidate(ĥ)
    h_t = next_state(h_{t-1}, z * h_{t-1} + (1 - z) * ĥ_t)

(`b^u` exists only with `reset_after=True`.) Masks are per-sequence inverted
dropout masks, three independent ones or one shared with `tied_masks=True`.
Both `implementation` modes compute the same function with the same masks.
"""

from keras_recdrop import _compat
from keras_recdrop import _validation
from keras_recdrop import products
from keras_recdrop.cell_base import RegularizedCellBase


class GRUCellBase(RegularizedCellBase):
    """Weights and gate arithmetic shared by the package's GRU cells.

    Not meant to be used directly: use `ZoneoutGRUCell`,
    `SemeniutaGRUCell` or `GalGRUCell`.

    Example:

    >>> import keras, numpy as np, keras_recdrop
    >>> x = np.random.rand(2, 5, 3).astype("float32")
    >>> keras_recdrop.GalGRUCell(4).reset_after  # Keras's default
    True
    >>> tuple(keras_recdrop.RNN(keras_recdrop.GalGRUCell(4))(x).shape)
    (2, 4)
    """

    num_gates = 3

    def __init__(self, units, reset_after=True, **kwargs):
        self.reset_after = _validation.check_bool("reset_after", reset_after)
        super().__init__(units, **kwargs)
        self.state_size = self.units

    def build(self, input_shape):
        self._check_step_shape(input_shape)
        super().build(input_shape)
        self._add_kernels(input_shape[-1])
        if not self.use_bias:
            self.bias = None
            return
        self.bias = self.add_weight(
            shape=(2, 3 * self.units)
            if self.reset_after
            else (3 * self.units,),
            name="bias",
            initializer=self.bias_initializer,
            regularizer=self.bias_regularizer,
            constraint=self.bias_constraint,
        )

    def _biases(self):
        if self.bias is None:
            return None, None
        if not self.reset_after:
            return self.bias, None
        return self.bias[0], self.bias[1]

    def project_inputs(self, inputs, context):
        """`(x_t * m^x_k) W_k + b^x_k` of the three gates: `(..., 3 * units)`.

        It depends on no state, so `inputs` may be one step
        `(batch, features)` or all steps `(timesteps, batch, features)`.
        """
        z = self._products(
            inputs, "kernel", context.input_masks, context, fused=True
        )
        input_bias, _ = self._biases()
        return z if input_bias is None else z + input_bias

    def step(self, projection, states, context):
        """One step from the input projection and the previous `h`."""
        nested = isinstance(states, (list, tuple))
        h_tm1 = states[0] if nested else states
        state_masks = (
            context.recurrent_masks
            if self.recurrent_masks_multiply_state
            else None
        )
        _, recurrent_bias = self._biases()
        x_z, x_r, x_h = _compat.split_gates(projection, 3)
        if self.reset_after:
            u_z, u_r, u_h = self._products(
                h_tm1, "recurrent_kernel", state_masks, context, fused=False
            )
            if recurrent_bias is not None:
                c_z, c_r, c_h = _compat.split_gates(recurrent_bias, 3)
                u_z, u_r, u_h = u_z + c_z, u_r + c_r, u_h + c_h
        else:
            # The z and r products come first; the h product needs r.
            blocks = context.weight_blocks("recurrent_kernel")
            zr_masks = state_masks
            if state_masks is not None and len(state_masks) == 3:
                zr_masks = state_masks[:2]
            u_z, u_r = products.gate_products(h_tm1, blocks[:2], zr_masks)
        z = self.recurrent_activation(x_z + u_z)
        r = self.recurrent_activation(x_r + u_r)
        if self.reset_after:
            candidate = self.activation(x_h + r * u_h)
        else:
            # `(r * (h * m)) U_h = ((r * h) * m) U_h`: masked products of
            # `r * h`, which the gradient keeps anyway, not of `h * m`.
            u_h = products.gate_products(
                r * h_tm1,
                blocks[2:],
                None if state_masks is None else state_masks[-1:],
                fused=True,
            )
            candidate = self.activation(x_h + u_h)
        update = self._transform_candidate_update((1 - z) * candidate, context)
        h_new = z * h_tm1 + update
        h = self._select_next_state({"h": h_tm1}, {"h": h_new}, context)["h"]
        return h, ([h] if nested else h)

    def fused_call(self, sequences, initial_state, mask, context, **options):
        """The backend's fused GRU (cuDNN; PyTorch's CPU fallback).

        Raises `NotImplementedError` where the backend has none. `options`
        are the loop's (`return_sequences`, `go_backwards`, `unroll`).
        """
        if isinstance(initial_state, (list, tuple)):
            initial_state = initial_state[0]
        return _compat.fused_gru(
            sequences,
            initial_state,
            mask,
            kernel=context.weight("kernel"),
            recurrent_kernel=context.weight("recurrent_kernel"),
            bias=self.bias,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            reset_after=self.reset_after,
            **options,
        )

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}
