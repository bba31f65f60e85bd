"""What every recurrent cell of the package shares, LSTM or GRU.

`RegularizedCellBase` holds the arguments Keras's `LSTMCell` and `GRUCell`
have in common (validated, never clamped), `get_config`, and the contract
between a layer's time loop and its cell:

=====================================  ===================================
method (when the loop calls it)        what it does
=====================================  ===================================
`begin_call(like, training,            Draws the call's per-sequence masks
held_seeds=None)`                      and derives the weights its steps
(once per layer call, before the       use; returns them, with the
loop)                                  per-step noise the cell needs, as a
                                       `CellContext`.
`project_inputs(inputs, context)`      The input half of a step,
(each step, or once for all steps)     `(x_t * m^x_k) W_k + b_k`; it
                                       depends on no state.
`step(projection, states, context)`    The rest of the step: the new
(each step)                            output and states. `context.noise`
                                       holds the step's noise.
`fused_call(sequences, initial_state,  The whole loop in the backend's
mask, context, **options)`             fused kernel, for a call whose
(instead of the loop, where            `context.plain` is true; raises
`context.plain`)                       `NotImplementedError` where there
                                       is none.
=====================================  ===================================

`call(inputs, states, training, step_seed=None, context=None)` is
`step(project_inputs(inputs, context), states, context)`; called without a
context (inside a plain `keras.layers.RNN`, or directly), it takes one from
Keras's mask protocol (`keras_recdrop.keras_protocol`).

The LSTM and GRU arithmetic (`lstm_core`, `gru_core`) implement
`project_inputs`, `step` and `fused_call`; the regularizers (`zoneout`,
`semeniuta`, `gal`, `weight_drop`) are small classes on top that override
the hooks listed in `RegularizedCellBase`'s docstring.
"""

import keras
from keras import activations
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_recdrop import _validation
from keras_recdrop import noise as noise_lib
from keras_recdrop import products
from keras_recdrop.context import CellContext
from keras_recdrop.keras_protocol import KerasMaskProtocol
from keras_recdrop.random_state import SavesRandomState


def init_arguments(init_locals, exclude=()):
    """The arguments an `__init__` received, from its `locals()`.

    Its named arguments but those in `exclude` (what the class keeps
    itself), then the items of its `**kwargs`: for a cell or a layer with
    an explicit signature to hand the rest to its base,
    `super().__init__(**init_arguments(locals(), exclude=(...)))`.

    Example:

    >>> from keras_recdrop.cell_base import init_arguments
    >>> def f(self, units, rate=0.5, **kwargs):
    ...     return init_arguments(locals(), exclude=("rate",))
    >>> f(None, 4, rate=0.1, name="cell")
    {'units': 4, 'name': 'cell'}
    """
    named = {
        k: v
        for k, v in init_locals.items()
        if k not in ("self", "kwargs", "__class__", *exclude)
    }
    return {**named, **init_locals.get("kwargs", {})}


class RegularizedCellBase(
    SavesRandomState, KerasMaskProtocol, keras.layers.Layer
):
    """Arguments, the loop contract, masks and config shared by all cells.

    Subclasses set `num_gates`, create the weights in `build` and implement
    `project_inputs`, `step` and `fused_call` (`LSTMCellBase`,
    `GRUCellBase`; the contract is in the module's docstring). A
    regularizer is a small class on top that overrides some of these hooks:

    ====================================  ==================================
    hook (when it runs)                   default; who overrides it
    ====================================  ==================================
    `_recurrent_mask_count()`             `G` masks (1 if tied) when
    (`begin_call`)                        `recurrent_dropout > 0`;
                                          Semeniuta: 1 (per sequence) or 0
    `recurrent_masks_multiply_state`      `True`: the masks multiply
    (each step)                           `h_{t-1}`; Semeniuta: `False`
    `_draw_weight_masks(seed)`            `{}`; DropConnect: the mask of
    (`begin_call`)                        `recurrent_kernel`
    `_effective_weight(name,              the weight; DropConnect: the
    weight_masks)` (`begin_call`)         masked recurrent kernel
    `step_noise_spec(training)`           `()`, none; zoneout and
    (`begin_call`)                        Semeniuta `per_step=True`
    `_transform_candidate_update(         `update` (`i * g`, `(1 - z) * g`);
    update, context)` (each step)         Semeniuta drops it
    `_select_next_state(previous,         `proposed`; zoneout keeps units
    proposed, context)` (each step)       of `previous`
    `computes_plain_rnn(training)`        `True` without dropout (then a
    (`begin_call`)                        layer may run a fused kernel);
                                          zoneout: `False` when it blends
    ====================================  ==================================

    `G` is the number of gates (4 for an LSTM, 3 for a GRU); states are
    dicts of tensors, `{"h": ..., "c": ...}` or `{"h": ...}`.

    Example:

    >>> import keras, numpy as np, keras_recdrop
    >>> cell = keras_recdrop.GalLSTMCell(4, dropout=0.2, recurrent_dropout=0.2)
    >>> x = keras.ops.convert_to_tensor(np.ones((2, 3), "float32"))
    >>> cell.build(x.shape)
    >>> context = cell.begin_call(x, True)  # once per call, before the loop
    >>> len(context.input_masks), len(context.recurrent_masks)
    (4, 4)
    >>> states = [keras.ops.zeros((2, 4)), keras.ops.zeros((2, 4))]
    >>> output, _ = cell.step(cell.project_inputs(x, context), states, context)
    >>> tuple(output.shape)
    (2, 4)
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

    # ---------------------------------------------------- the loop contract
    def begin_call(self, like, training, held_seeds=None):
        """The per-call constants of this cell's steps, as a `CellContext`.

        Called once per layer call, before the time loop. In training,
        draws the call's per-sequence masks in a fixed order (input masks,
        weight masks, recurrent masks), each kind with one random call;
        derives the weights the steps multiply (as tensors, with their gate
        blocks); and declares the per-step noise the cell needs. At
        inference it draws nothing.

        Args:
            like: A tensor whose first axis is the batch, in the dtype of
                the masks (a step input or a state of the call).
            training: Whether the call draws noise (the caller has applied
                `noise_mode.active`).
            held_seeds: `None` (masks drawn from `seed_generator`, new at
                every call), or `{purpose: StatelessSeed}` for every purpose
                of `MASK_PURPOSES`: the masks that a stateful
                `keras_recdrop.RNN(stateful_masks=True)` holds across calls.
        """
        if not training:
            return CellContext(
                training=False,
                input_masks=None,
                recurrent_masks=None,
                weights=self._call_weights({}),
                plain=self.computes_plain_rnn(False),
            )
        if held_seeds is None:
            held_seeds = dict.fromkeys(self.MASK_PURPOSES, self.seed_generator)
        batch = ops.shape(like)[0]
        dtype = like.dtype
        input_masks = None
        if self.dropout > 0:
            input_masks = noise_lib.draw_masks(
                self._mask_count,
                (batch, self.kernel.shape[0]),
                self.dropout,
                held_seeds["input"],
                dtype,
            )
        weight_masks = self._draw_weight_masks(held_seeds["weight"])
        recurrent_masks = None
        count = self._recurrent_mask_count()
        if count:
            recurrent_masks = noise_lib.draw_masks(
                count,
                (batch, self.units),
                self.recurrent_dropout,
                held_seeds["recurrent"],
                dtype,
            )
        return CellContext(
            training=True,
            input_masks=input_masks,
            recurrent_masks=recurrent_masks,
            weights=self._call_weights(weight_masks),
            weight_masks=weight_masks,
            noise_spec=self.step_noise_spec(True),
            plain=self.computes_plain_rnn(True),
        )

    def call(
        self, inputs, states, training=False, step_seed=None, context=None
    ):
        """One step: `step(project_inputs(inputs, context), states, context)`.

        `context` is what `keras_recdrop.RNN` builds before its loop (with
        the step's noise); without it (a plain `keras.layers.RNN`, or a
        direct call) the cell takes it from Keras's mask protocol, and its
        per-step noise from `step_seed` where a Keras that passes per-step
        seeds gives one (docs/upstream.md), else from its seed generator.
        """
        if context is None:
            context = self.keras_step_context(inputs, training, step_seed)
        return self.step(self.project_inputs(inputs, context), states, context)

    def project_inputs(self, inputs, context):
        """The input half of a step (see the module); subclasses define it."""
        raise NotImplementedError

    def step(self, projection, states, context):
        """The recurrent half of a step (see the module)."""
        raise NotImplementedError

    def fused_call(self, sequences, initial_state, mask, context, **options):
        """The backend's fused kernel for the whole loop (see the module)."""
        raise NotImplementedError

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

    # --------------------------------------------------------------- weights
    def _draw_weight_masks(self, seed):
        """Masks of the weights for one call, `{name: mask}` (none here).

        DropConnect draws the mask of `recurrent_kernel`.
        """
        return {}

    def _effective_weight(self, name, weight_masks):
        """The weight `name` as this call's steps use it.

        `weight_masks` is what `_draw_weight_masks` drew (`{}` at
        inference). DropConnect overrides this to mask the recurrent
        kernel.
        """
        return getattr(self, name)

    def _call_weights(self, weight_masks):
        """`{name: (tensor, gate blocks)}` of both kernels, for one call.

        Derived before the loop, the weights (as tensors), their gate blocks
        and DropConnect's masked kernel are loop constants (rule 1 of "Loop
        constants" in docs/design.md), and a step multiplies tensors, not
        variables. Never kept by the cell: they would go stale after the
        next update.
        """
        weights = {}
        for name in ("kernel", "recurrent_kernel"):
            weight = self._effective_weight(name, weight_masks)
            if isinstance(weight, keras.Variable):
                # Read into a tensor by a reshape to its own shape (no copy
                # on any backend; TensorFlow's `convert_to_tensor` returns
                # the variable itself): the backends' custom gradients
                # take tensors, not variables.
                weight = ops.reshape(weight, ops.shape(weight))
            blocks = tuple(ops.split(weight, self.num_gates, axis=1))
            weights[name] = (weight, blocks)
        return weights

    def _products(self, x, name, masks, context, fused):
        """The products `(x * m_k) W_k` of every gate (`products.products`).

        `name` is `"kernel"` or `"recurrent_kernel"`; mode 1 multiplies
        gate by gate, mode 2 fuses where the masks allow it.
        """
        return products.products(
            x,
            context.weight(name),
            context.weight_blocks(name),
            masks,
            per_gate_products=self.implementation == 1,
            fused=fused,
        )

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

    def draws_noise(self):
        """Whether a training call draws any noise (some rate above 0)."""
        return (
            self.dropout > 0
            or self._recurrent_mask_count() > 0
            or bool(self.step_noise_spec(True))
        )

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
    def _transform_candidate_update(self, update, context):
        """The candidate's contribution to the new state (Semeniuta drops it).

        `update` is `i * g` (LSTM) or `(1 - z) * g` (GRU).
        """
        return update

    def _select_next_state(self, previous, proposed, context):
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
