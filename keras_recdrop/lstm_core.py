"""Gate arithmetic and weights shared by every LSTM cell of the package.

`LSTMCellBase` has exactly `keras.layers.LSTMCell`'s arguments, weights
(`kernel (D, 4U)`, `recurrent_kernel (U, 4U)`, `bias (4U,)`, gate order
i, f, c, o) and state `[h, c]`, plus Gal-style per-sequence input masks and
(optionally) recurrent masks. A regularizer is a small subclass that
overrides two hooks of the step:

    z_k = (x_t * m^x_k) W_k + (h_{t-1} * m^h_k) U_k + b_k,  k in {i, f, c, o}
    i = σ(z_i)   f = σ(z_f)   g = candidate(tanh(z_c))   o = σ(z_o)
    ĉ_t = f * c_{t-1} + i * g
    ĥ_t = o * tanh(ĉ_t)
    h_t, c_t = next_state(h_{t-1}, c_{t-1}, ĥ_t, ĉ_t)

`m^x_k`, `m^h_k` are inverted dropout masks drawn once per sequence: four
independent masks (one per gate) by default, or one mask shared by all gates
with `tied_masks=True`. Both `implementation` modes compute this same
function with the same masks: mode 1 computes each gate separately, mode 2
computes the `(batch, 4 * units)` pre-activation at once (one product when
the masks are tied or absent, one product per gate block when per-gate masks
are active), so recurrent dropout never forces mode 1.
"""

import keras
from keras import activations
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

# `keras.layers.RNN` prepares the masks of cells that inherit this mixin
# before its time loop (`_maybe_config_dropout_masks`) and clears them
# after; it is not exported publicly, so it is imported from its module.
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

from keras_recdrop import _validation
from keras_recdrop import noise as noise_lib

GATES = 4


def gate_preactivations(
    inputs,
    h_tm1,
    kernel,
    recurrent_kernel,
    bias,
    input_masks=None,
    recurrent_masks=None,
    implementation=2,
    num_gates=GATES,
):
    """Computes the `num_gates` pre-activations `x W_k + h U_k + b_k`.

    `input_masks` / `recurrent_masks` are `None` or tensors of shape
    `(G, batch, features)` with `G` either 1 (one mask for all gates) or
    `num_gates` (one mask per gate). Returns a list of `num_gates` tensors
    `(batch, units)`.
    """

    def masked(x, masks):
        if masks is None:
            return [x] * num_gates
        if masks.shape[0] == 1:
            return [x * masks[0]] * num_gates
        return [x * masks[k] for k in range(num_gates)]

    if implementation == 1:
        x_parts = masked(inputs, input_masks)
        h_parts = masked(h_tm1, recurrent_masks)
        kernels = ops.split(kernel, num_gates, axis=1)
        recurrent_kernels = ops.split(recurrent_kernel, num_gates, axis=1)
        biases = (
            ops.split(bias, num_gates, axis=0)
            if bias is not None
            else [None] * num_gates
        )
        z = []
        for k in range(num_gates):
            z_k = ops.matmul(x_parts[k], kernels[k]) + ops.matmul(
                h_parts[k], recurrent_kernels[k]
            )
            if biases[k] is not None:
                z_k = z_k + biases[k]
            z.append(z_k)
        return z

    z = _fused_product(inputs, kernel, input_masks, num_gates)
    z = z + _fused_product(h_tm1, recurrent_kernel, recurrent_masks, num_gates)
    if bias is not None:
        z = z + bias
    return ops.split(z, num_gates, axis=1)


def _fused_product(x, kernel, masks, num_gates):
    """`x W` for all gates at once, as one `(batch, num_gates * units)`.

    With per-gate masks each gate needs its own masked copy of `x`; the
    gate blocks are multiplied separately and concatenated. (A gate-batched
    `einsum("gbd,dgu->bgu")` computes the same, but without XLA TensorFlow
    transposes the kernel at every step: 2x slower, see
    `docs/benchmarks.md`.)
    """
    if masks is None:
        return ops.matmul(x, kernel)
    if masks.shape[0] == 1:
        return ops.matmul(x * masks[0], kernel)
    blocks = ops.split(kernel, num_gates, axis=1)
    return ops.concatenate(
        [ops.matmul(x * masks[k], blocks[k]) for k in range(num_gates)],
        axis=1,
    )


class LSTMCellBase(keras.layers.Layer, DropoutRNNCell):
    """Weights, masks and gate arithmetic shared by the package's LSTM cells.

    Not meant to be used directly: use `ZoneoutLSTMCell`,
    `SemeniutaLSTMCell` or `GalLSTMCell`. Subclasses choose what
    `recurrent_dropout` means (`_recurrent_mask_count`,
    `_recurrent_masks_on_state`) and override `_candidate` and
    `_next_state`; per-step noise is declared by `step_noise_spec`.
    """

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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        tied_masks=False,
        implementation=2,
        seed=None,
        **kwargs,
    ):
        units = _validation.check_positive_int("units", units)
        dropout = _validation.check_rate("dropout", dropout)
        recurrent_dropout = _validation.check_rate(
            "recurrent_dropout", recurrent_dropout
        )
        tied_masks = _validation.check_bool("tied_masks", tied_masks)
        use_bias = _validation.check_bool("use_bias", use_bias)
        unit_forget_bias = _validation.check_bool(
            "unit_forget_bias", unit_forget_bias
        )
        implementation = _validation.check_int_choice(
            "implementation", implementation, (1, 2)
        )
        seed = _validation.check_seed(seed)
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.unit_forget_bias = unit_forget_bias

        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.tied_masks = tied_masks
        self.implementation = implementation
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = [self.units, self.units]
        self.output_size = self.units
        # Per-step noise of the current step, set by `keras_recdrop.RNN`.
        self._step_noise = None

    # ----------------------------------------------------------------- build
    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} processes one time step of shape "
                "(batch, features); received an input of shape "
                f"{tuple(input_shape)}. Wrap the cell in "
                "`keras_recdrop.RNN` (or `keras.layers.RNN`) to process "
                "sequences of shape (batch, timesteps, features)."
            )
        super().build(input_shape)
        input_dim = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(input_dim, self.units * GATES),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units * GATES),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            if self.unit_forget_bias:

                def bias_initializer(_, *args, **kwargs):
                    return ops.concatenate(
                        [
                            self.bias_initializer(
                                (self.units,), *args, **kwargs
                            ),
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
                shape=(self.units * GATES,),
                name="bias",
                initializer=bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None

    # ----------------------------------------------------------------- masks
    @property
    def _mask_count(self):
        return 1 if self.tied_masks else GATES

    def _recurrent_mask_count(self):
        """How many per-sequence recurrent masks to draw (0: none)."""
        return self._mask_count if self.recurrent_dropout > 0 else 0

    # Whether the per-sequence recurrent masks multiply h_{t-1} (Gal).
    _recurrent_masks_on_state = True

    def get_dropout_mask(self, step_input):
        """Per-sequence input masks `(G, batch, features)`, drawn once.

        Called by `keras.layers.RNN` before its time loop; the masks are
        cached until `reset_dropout_mask()`.
        """
        if getattr(self, "_dropout_mask", None) is None and self.dropout > 0:
            self._dropout_mask = noise_lib.draw_masks(
                self._mask_count, step_input, self.dropout, self.seed_generator
            )
        return getattr(self, "_dropout_mask", None)

    def get_recurrent_dropout_mask(self, step_input):
        """Per-sequence recurrent masks `(G, batch, units)`, drawn once."""
        count = self._recurrent_mask_count()
        if getattr(self, "_recurrent_dropout_mask", None) is None and count:
            self._recurrent_dropout_mask = noise_lib.draw_masks(
                count, step_input, self.recurrent_dropout, self.seed_generator
            )
        return getattr(self, "_recurrent_dropout_mask", None)

    # ------------------------------------------------------- per-step noise
    def step_noise_spec(self, training):
        """Channels of per-step noise the cell needs (empty: none).

        A tuple of `(name, probability_of_true, width)`; see
        `keras_recdrop.noise`.
        """
        return ()

    def _current_step_noise(self, step_input, training):
        """This step's noise channels, or `None` if the cell needs none."""
        spec = self.step_noise_spec(training)
        if not spec:
            return None
        noise = self._step_noise
        if noise is None:
            if noise_lib.inside_jax_loop_trace(step_input, self.seed_generator):
                raise RuntimeError(
                    f"{type(self).__name__} needs fresh noise at every time "
                    "step, which cannot be drawn inside a JAX `lax.scan` "
                    "loop: the body is traced once, so the noise would "
                    "repeat at every step. Wrap the cell in "
                    "`keras_recdrop.RNN` instead of `keras.layers.RNN` (it "
                    "draws the noise of all steps before the loop), or pass "
                    "`unroll=True`."
                )
            batch = ops.shape(step_input)[0]
            noise = noise_lib.draw_step_noise(
                spec, (batch,), self.seed_generator
            )
        return noise_lib.split_step_noise(spec, noise)

    # ----------------------------------------------------------------- hooks
    def _candidate(self, g, recurrent_masks, noise, training):
        """Transforms the candidate `g = tanh(z_c)` (Semeniuta drops it)."""
        return g

    def _next_state(self, h_tm1, c_tm1, h_new, c_new, noise, training):
        """Returns `(h_t, c_t)` from the previous and the new state."""
        return h_new, c_new

    # ------------------------------------------------------------------ call
    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states[0], states[1]
        training = bool(training)
        input_masks = None
        recurrent_masks = None
        if training:
            input_masks = self.get_dropout_mask(inputs)
            recurrent_masks = self.get_recurrent_dropout_mask(h_tm1)
        noise = self._current_step_noise(inputs, training)

        z_i, z_f, z_c, z_o = gate_preactivations(
            inputs,
            h_tm1,
            self.kernel,
            self.recurrent_kernel,
            self.bias,
            input_masks=input_masks,
            recurrent_masks=(
                recurrent_masks if self._recurrent_masks_on_state else None
            ),
            implementation=self.implementation,
        )
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        g = self._candidate(
            self.activation(z_c), recurrent_masks, noise, training
        )
        o = self.recurrent_activation(z_o)
        c_new = f * c_tm1 + i * g
        h_new = o * self.activation(c_new)
        h, c = self._next_state(h_tm1, c_tm1, h_new, c_new, noise, training)
        return h, [h, c]

    def get_initial_state(self, batch_size=None):
        return [
            ops.zeros((batch_size, d), dtype=self.compute_dtype)
            for d in self.state_size
        ]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(
                self.recurrent_activation
            ),
            "use_bias": self.use_bias,
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_initializer": initializers.serialize(
                self.kernel_initializer
            ),
            "recurrent_initializer": initializers.serialize(
                self.recurrent_initializer
            ),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(
                self.kernel_regularizer
            ),
            "recurrent_regularizer": regularizers.serialize(
                self.recurrent_regularizer
            ),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(
                self.recurrent_constraint
            ),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "tied_masks": self.tied_masks,
            "implementation": self.implementation,
            "seed": self.seed,
        }
        base_config = super().get_config()
        return {**base_config, **config}
