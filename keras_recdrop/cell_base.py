"""What every recurrent cell of the package shares, LSTM or GRU.

`RegularizedCellBase` holds the arguments Keras's `LSTMCell` and `GRUCell`
have in common (validated, never clamped), the per-sequence masks drawn in
the `DropoutRNNCell` hooks that `keras.layers.RNN` calls before its loop,
the per-step noise protocol read by `keras_recdrop.RNN`, and `get_config`.
`_products` are the masked products `(x * m_k) W_k` of every gate in
implementation mode 1 (one product per gate) and 2 (one fused product, or
one per gate block with per-gate masks), from weights derived once per call
before the time loop. The LSTM and GRU arithmetic
(`lstm_core`, `gru_core`) and the regularizers (`zoneout`, `semeniuta`,
`gal`) build on these.
"""

import keras
from keras import activations
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_recdrop import _compat
from keras_recdrop import _gradient
from keras_recdrop import _validation
from keras_recdrop import noise as noise_lib
from keras_recdrop.random_state import SavesRandomState


def _per_gate(masks):
    return masks is not None and len(masks) > 1


def _rows(t):
    """`t` as a matrix: its leading axes (steps, batch) merged into rows."""
    return t if len(t.shape) == 2 else ops.reshape(t, (-1, t.shape[-1]))


def _masked_products(x, masks, kernels):
    """`concat_k((x * m_k) K_k)` (no bias) under one mask or one per kernel.

    `x` is `(batch, features)` (one step) or `(steps, batch, features)`
    (all steps at once, with per-sequence masks `(batch, features)`).
    `masks` is a tuple of one mask shared by every kernel or of one mask
    per kernel; `kernels` is the whole kernel (one product) or its gate
    blocks (one product each). The value is the plain expression. The
    gradient is written out so that a step keeps only `x` for the backward
    pass: the masks and kernels are loop constants, and the masked copies
    `x * m_k` are recomputed in the backward pass instead of being stored
    for every step, as automatic differentiation would (rule 3 of "Loop
    constants" in docs/design.md).

        dL/dx   = sum_k (dL/dz_k K_k^T) * m_k
        dL/dK_k = (x * m_k)^T dL/dz_k
    """
    count, mask_count = len(kernels), len(masks)
    if mask_count not in (1, count):
        raise ValueError(
            f"Expected 1 or {count} masks for {count} kernels, got "
            f"{mask_count}."
        )

    @_gradient.custom_gradient
    def products(x, *masks_and_kernels):
        masks = masks_and_kernels[:mask_count]
        kernels = masks_and_kernels[mask_count:]

        def masked_copies():
            if mask_count == 1:
                return [x * masks[0]] * count
            return [x * m for m in masks]

        parts = [xm @ k for xm, k in zip(masked_copies(), kernels, strict=True)]
        z = parts[0] if count == 1 else ops.concatenate(parts, axis=-1)

        def grad(upstream):
            ups = [upstream] if count == 1 else ops.split(upstream, count, -1)
            back = [
                d @ ops.transpose(k) for d, k in zip(ups, kernels, strict=True)
            ]
            if mask_count == 1:
                dx = (back[0] if count == 1 else sum(back[1:], back[0])) * (
                    masks[0]
                )
            else:
                terms = [b * m for b, m in zip(back, masks, strict=True)]
                dx = sum(terms[1:], terms[0])
            kernel_grads = [
                ops.transpose(_rows(xm)) @ _rows(d)
                for xm, d in zip(masked_copies(), ups, strict=True)
            ]
            # The masks are not trained: no gradient.
            return (dx, *([None] * mask_count), *kernel_grads)

        return z, grad

    # A Keras `Variable` (the whole kernel) is read into a tensor (a reshape
    # to its own shape: no copy on any backend). The backends' custom
    # gradients take tensors, not variables (PyTorch refuses them,
    # TensorFlow would ask for their gradients separately). Tensors (gate
    # blocks derived before the loop) are passed as they are: a reshape
    # would not be a loop constant ("Loop constants" in docs/design.md).
    kernels = [
        ops.reshape(k, ops.shape(k)) if isinstance(k, keras.Variable) else k
        for k in kernels
    ]
    return products(x, *masks, *kernels)


def gate_products(x, blocks, masks, fused=False):
    """The products `(x * m_k) K_k`, one per gate, without bias.

    `blocks` are the per-gate column blocks `K_k` of a kernel; `masks` is
    `None` or a tuple of `G` tensors `(batch, features)`, with `G` either 1
    (one mask for all gates) or one per block. Returns one
    `(batch, G * units)` tensor if `fused`, else a list of `G` tensors.
    """
    if masks is None:
        parts = [x @ k for k in blocks]
        return ops.concatenate(parts, axis=-1) if fused else parts
    z = _masked_products(x, masks, blocks)
    return z if fused else ops.split(z, len(blocks), axis=-1)


class RegularizedCellBase(
    SavesRandomState, keras.layers.Layer, _compat.DropoutRNNCell
):
    """Arguments, masks, per-step noise and config shared by all cells.

    Subclasses set `num_gates`, create the weights in `build` and compute a
    step in `call` (`LSTMCellBase`, `GRUCellBase`). A regularizer is a small
    class on top that overrides some of these hooks:

    ====================================  ==================================
    hook (when it runs)                   default; who overrides it
    ====================================  ==================================
    `_recurrent_mask_count()`             `G` masks (1 if tied) when
    (before the loop)                     `recurrent_dropout > 0`;
                                          Semeniuta: 1 (per sequence) or 0
    `recurrent_masks_multiply_state`      `True`: the masks multiply
    (each step)                           `h_{t-1}`; Semeniuta: `False`
    `_effective_weight(name, training)`   the weight; DropConnect: the
    (before the loop)                     masked recurrent kernel
    `step_noise_spec(training)`           `()`, none; zoneout and
    (before the loop, then each step)     Semeniuta `per_step=True`
    `_transform_candidate_update(update,  `update` (`i * g`, `(1 - z) * g`);
    recurrent_masks, noise, training)`    Semeniuta drops it
    (each step)
    `_select_next_state(previous,         `proposed`; zoneout keeps units
    proposed, noise, training)`           of `previous`
    (each step)
    `computes_plain_rnn(training)`        `True` without dropout (then a
    (each call)                           layer may run a fused kernel);
                                          zoneout: `False` when it blends
    ====================================  ==================================

    `G` is the number of gates (4 for an LSTM, 3 for a GRU); states are
    dicts of tensors, `{"h": ..., "c": ...}` or `{"h": ...}`.
    """

    num_gates = None
    recurrent_masks_multiply_state = True
    # What the per-sequence masks are for; each purpose is drawn from its
    # own seed when `keras_recdrop.RNN(stateful_masks=True)` holds them.
    MASK_PURPOSES = ("input", "recurrent", "weight")

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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        tied_masks=None,
        implementation=2,
        seed=None,
        dropout_masks="per_gate",
        **kwargs,
    ):
        units = _validation.check_positive_int("units", units)
        dropout = _validation.check_rate("dropout", dropout)
        recurrent_dropout = _validation.check_rate(
            "recurrent_dropout", recurrent_dropout
        )
        tied_masks = _validation.check_mask_sharing(tied_masks, dropout_masks)
        use_bias = _validation.check_bool("use_bias", use_bias)
        implementation = _validation.check_int_choice(
            "implementation", implementation, (1, 2)
        )
        seed = _validation.check_seed(seed)
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = use_bias
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
        self.output_size = self.units
        # Stateless seed of the current step (`noise.StatelessSeed`), or the
        # step's noise itself, drawn for several steps at once; set by
        # `keras_recdrop.RNN` inside its loop.
        self._step_seed = None
        self._step_noise = None
        # `{purpose: StatelessSeed}` of the masks a stateful
        # `keras_recdrop.RNN(stateful_masks=True)` holds across its calls;
        # `None`: masks are drawn from `seed_generator`, new at each call.
        self._held_mask_seeds = None
        # Training-time weights derived before the time loop (see
        # `_prepare_loop_weights`); `None` outside a layer call.
        self._loop_weights = None

    def _check_step_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} processes one time step of shape "
                "(batch, features); received an input of shape "
                f"{tuple(input_shape)}. Wrap the cell in "
                "`keras_recdrop.RNN` (or `keras.layers.RNN`) to process "
                "sequences of shape (batch, timesteps, features)."
            )

    def _add_kernels(self, input_dim):
        self.kernel = self.add_weight(
            shape=(input_dim, self.units * self.num_gates),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units * self.num_gates),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )

    # ------------------------------------------------------------ random state
    def _random_state_generators(self):
        return [self.seed_generator]

    def _mask_seed(self, purpose):
        """What the per-sequence masks of `purpose` are drawn from.

        The cell's generator (new masks at every call), or the stateless
        seed a stateful `keras_recdrop.RNN(stateful_masks=True)` holds for
        the current sequence (`purpose` is one of `MASK_PURPOSES`).
        """
        if self._held_mask_seeds is None:
            return self.seed_generator
        return self._held_mask_seeds[purpose]

    # ----------------------------------------------------------------- masks
    @property
    def dropout_masks(self):
        """`"shared"` or `"per_gate"`: `tied_masks` in Keras's spelling."""
        return "shared" if self.tied_masks else "per_gate"

    @property
    def _mask_count(self):
        return 1 if self.tied_masks else self.num_gates

    def _recurrent_mask_count(self):
        """How many per-sequence recurrent masks to draw (0: none)."""
        return self._mask_count if self.recurrent_dropout > 0 else 0

    def get_dropout_mask(self, step_input):
        """Per-sequence input masks, `G` tensors `(batch, features)`.

        Called by `keras.layers.RNN` before its time loop; the masks are
        cached until `reset_dropout_mask()`.
        """
        if getattr(self, "_dropout_mask", None) is None and self.dropout > 0:
            self._dropout_mask = noise_lib.draw_masks(
                self._mask_count,
                step_input,
                self.dropout,
                self._mask_seed("input"),
            )
        return getattr(self, "_dropout_mask", None)

    def get_recurrent_dropout_mask(self, step_input):
        """Per-sequence recurrent masks, `G` tensors `(batch, units)`.

        This is the last hook `keras.layers.RNN` calls before its loop, so
        the training-time weights are derived here too.
        """
        masks = self._recurrent_masks(step_input)
        if self._loop_weights is None and self.built:
            self._prepare_loop_weights(True)
        return masks

    def _recurrent_masks(self, step_input):
        """The recurrent masks, drawn on first use and cached."""
        count = self._recurrent_mask_count()
        if getattr(self, "_recurrent_dropout_mask", None) is None and count:
            self._recurrent_dropout_mask = noise_lib.draw_masks(
                count,
                step_input,
                self.recurrent_dropout,
                self._mask_seed("recurrent"),
            )
        return getattr(self, "_recurrent_dropout_mask", None)

    def reset_recurrent_dropout_mask(self):
        super().reset_recurrent_dropout_mask()
        self._loop_weights = None

    # --------------------------------------------------------------- weights
    def _effective_weight(self, name, training):
        """The weight `name` as a training or inference step uses it.

        DropConnect overrides this to mask the recurrent kernel.
        """
        return getattr(self, name)

    def _prepare_loop_weights(self, training):
        """Derives the weights of the steps once per layer call.

        Called before the loop: by the pre-loop hook in training, and by
        `keras_recdrop.RNN` for every call (a step never keeps derived
        weights: they would go stale after the next update); cleared by
        `reset_recurrent_dropout_mask` after the loop.

        Derived here, the weights (as tensors), their gate blocks and
        DropConnect's masked kernel are loop constants (rule 1 of "Loop
        constants" in docs/design.md), and a step multiplies tensors, not
        variables.
        """
        weights = {}
        for name in ("kernel", "recurrent_kernel"):
            weight = ops.convert_to_tensor(
                self._effective_weight(name, training)
            )
            blocks = ops.split(weight, self.num_gates, axis=1)
            weights[name] = (weight, blocks)
        self._loop_weights = (bool(training), weights)

    def _loop_weight(self, name, training):
        """`(weight, blocks)` prepared for this call's mode, or `None`."""
        if self._loop_weights is None or self._loop_weights[0] != training:
            return None
        return self._loop_weights[1][name]

    def _weight(self, name, training):
        prepared = self._loop_weight(name, training)
        if prepared is not None:
            return prepared[0]
        return self._effective_weight(name, training)

    def _weight_blocks(self, name, training):
        prepared = self._loop_weight(name, training)
        if prepared is not None:
            return prepared[1]
        weight = self._effective_weight(name, training)
        return ops.split(weight, self.num_gates, axis=1)

    def _products(self, x, name, masks, training, fused):
        """The products `(x * m_k) W_k` of every gate for one step.

        `name` is `"kernel"` or `"recurrent_kernel"`. Mode 1 multiplies
        gate by gate; mode 2 uses one product for a shared or absent mask
        and one per gate block with per-gate masks (each gate needs its own
        masked copy of `x`). Returns one `(batch, G * units)` tensor if
        `fused`, else a list of `G` tensors; both modes give the same
        values. (A gate-batched `einsum("gbd,dgu->bgu")` computes the same
        but made TensorFlow without XLA transpose the kernel at every step,
        twice as slow; see `docs/benchmarks.md`.)
        """
        if self.implementation == 1 or _per_gate(masks):
            blocks = self._weight_blocks(name, training)
            return gate_products(x, blocks, masks, fused=fused)
        kernel = self._weight(name, training)
        if masks is None:
            z = x @ kernel
        else:
            z = _masked_products(x, masks, (kernel,))
        return z if fused else ops.split(z, self.num_gates, axis=-1)

    # ------------------------------------------------------- per-step noise
    def step_noise_spec(self, training):
        """Channels of per-step noise the cell needs (empty: none).

        A tuple of `(name, probability_of_true, width)`; see
        `keras_recdrop.noise`.
        """
        return ()

    @property
    def uses_step_seed(self):
        """Whether a training call needs a seed per step (Keras's protocol).

        A `keras.layers.RNN` that passes per-step seeds (see
        `_compat.keras_rnn_passes_step_seeds`) draws them only for cells
        where this is true, and passes each step's as `step_seed`.
        """
        return bool(self.step_noise_spec(True))

    def _current_step_noise(self, step_input, training, step_seed=None):
        """This step's noise channels, or `None` if the cell needs none.

        Inside `keras_recdrop.RNN` the noise comes from the step's
        stateless seed, inside a `keras.layers.RNN` that passes one from
        `step_seed`; elsewhere from the cell's `SeedGenerator`, which is
        correct in every loop but a JAX `lax.scan`.
        """
        spec = self.step_noise_spec(training)
        if not spec:
            return None
        if self._step_noise is not None:
            return self._step_noise
        seed = self._step_seed
        if seed is None and step_seed is not None:
            seed = noise_lib.StatelessSeed(step_seed)
        if seed is None:
            if noise_lib.inside_jax_loop_trace(step_input, self.seed_generator):
                raise RuntimeError(
                    f"{type(self).__name__} needs fresh noise at every time "
                    "step, which cannot be drawn inside a JAX `lax.scan` "
                    "loop from its seed generator: the body is traced once, "
                    "so the noise would repeat at every step. Wrap the cell "
                    "in `keras_recdrop.RNN` instead of `keras.layers.RNN` "
                    "(it gives every step a stateless seed of its own), or "
                    "pass `unroll=True`."
                )
            seed = self.seed_generator
        batch = ops.shape(step_input)[0]
        noise = noise_lib.draw_step_noise(spec, (batch,), seed)
        return noise_lib.split_step_noise(spec, noise)

    def computes_plain_rnn(self, training):
        """Whether a call computes the plain LSTM/GRU equations.

        With the weights `_effective_weight` gives (DropConnect's masked
        recurrent kernel in training), and no mask on an activation, no
        per-step noise and no blend of states. Then `keras_recdrop.RNN` may
        run the backend's fused kernel (cuDNN on a GPU).
        """
        if not training:
            return True
        return self.dropout == 0 and self.recurrent_dropout == 0

    # ----------------------------------------------------------------- hooks
    def _transform_candidate_update(
        self, update, recurrent_masks, noise, training
    ):
        """The candidate's contribution to the new state (Semeniuta drops it).

        `update` is `i * g` (LSTM) or `(1 - z) * g` (GRU).
        """
        return update

    def _select_next_state(self, previous, proposed, noise, training):
        """The next state from the previous and the proposed state (dicts).

        Zoneout keeps some units of the previous state.
        """
        return proposed

    def get_initial_state(self, batch_size=None):
        sizes = (
            self.state_size
            if isinstance(self.state_size, (list, tuple))
            else [self.state_size]
        )
        return [
            ops.zeros((batch_size, d), dtype=self.compute_dtype) for d in sizes
        ]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(
                self.recurrent_activation
            ),
            "use_bias": self.use_bias,
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
            "dropout_masks": self.dropout_masks,
            "implementation": self.implementation,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
