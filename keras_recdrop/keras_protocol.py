"""The cells' side of `keras.layers.RNN`'s mask protocol: one adapter.

`keras_recdrop.RNN` (and the ready-made layers) build a cell's per-call
constants before the time loop with `begin_call` and hand them to every
step as its `context` argument. A plain `keras.layers.RNN` does not know
that argument. Its protocol is Keras's `DropoutRNNCell`: before the loop it
calls the cell's `get_dropout_mask(first step input)` and
`get_recurrent_dropout_mask(first state)`, which cache the masks on the
cell; the steps read the cache; after the loop `reset_dropout_mask()` and
`reset_recurrent_dropout_mask()` clear it. A cell called directly, outside
any layer, reads the same cache (until those resets, as Keras's cells do).

`KerasMaskProtocol` implements that protocol for the package's cells, and
it is the only place where a cell keeps per-call state: one
`CellContext` built in training by whichever hook runs first (so the order
of the hooks does not matter) and dropped by either reset. A step called
without a context takes it from there, or, at inference, builds one
without noise. Built by a hook, before a loop, the context's weights serve
the whole loop; a cell called directly in training caches its masks the
same way but reads its weights anew at every call (an update between two
calls must be seen). Per-step noise comes from the `step_seed` argument when
Keras provides one (the Keras change of docs/upstream.md), else from the
cell's seed generator, which is right in every loop but a JAX `lax.scan`:
there it raises an error that names the way out.
"""

import dataclasses

from keras import ops

from keras_recdrop import _compat
from keras_recdrop import noise as noise_lib
from keras_recdrop import noise_mode


class KerasMaskProtocol(_compat.DropoutRNNCell):
    """Mixin for the package's cells: `keras.layers.RNN`'s mask hooks.

    The cell provides `begin_call(like, training)`, `seed_generator` and
    `built`; see `RegularizedCellBase`.

    Example:

    >>> import keras, numpy as np, keras_recdrop
    >>> cell = keras_recdrop.GalLSTMCell(4, dropout=0.5)
    >>> cell.build((2, 3))
    >>> step_input = keras.ops.ones((2, 3))
    >>> masks = cell.get_dropout_mask(step_input)  # drawn and kept
    >>> cell.get_dropout_mask(step_input) is masks
    True
    >>> cell.reset_dropout_mask()
    >>> cell.get_dropout_mask(step_input) is masks  # new masks
    False
    """

    # `(CellContext, whether a hook built it)`, or `None`.
    _keras_context = None

    def _cached_training_context(self, like, from_hook=True):
        if self._keras_context is None:
            self._keras_context = (self.begin_call(like, True), from_hook)
        context, built_by_hook = self._keras_context
        if built_by_hook:
            return context
        return dataclasses.replace(
            context, weights=self._call_weights(context.weight_masks)
        )

    def get_dropout_mask(self, step_input):
        """The per-sequence input masks of this call (drawn on first use).

        A tuple of one mask shared by all gates or one per gate, each
        `(batch, features)`, or `None` without input dropout. Keras's
        `RNN` calls this before its time loop; the masks are kept until
        `reset_dropout_mask()`.
        """
        return self._cached_training_context(step_input).input_masks

    def get_recurrent_dropout_mask(self, step_input):
        """The per-sequence recurrent masks of this call, as above.

        Called by Keras's `RNN` with the first state; `None` if the cell
        draws none.
        """
        return self._cached_training_context(step_input).recurrent_masks

    def reset_dropout_mask(self):
        """Forgets the masks (and weights) cached for the current call."""
        self._keras_context = None

    def reset_recurrent_dropout_mask(self):
        """Forgets the masks (and weights) cached for the current call."""
        self._keras_context = None

    def keras_step_context(self, inputs, training, step_seed=None):
        """The context of a step called without one (see the module)."""
        if not noise_mode.active(training):
            return self.begin_call(inputs, False)
        context = self._cached_training_context(inputs, from_hook=False)
        if not context.noise_spec:
            return context
        if step_seed is not None:
            seed = noise_lib.StatelessSeed(step_seed)
        else:
            if noise_lib.inside_jax_loop_trace(inputs, self.seed_generator):
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
        batch = ops.shape(inputs)[0]
        spec = context.noise_spec
        noise = noise_lib.draw_step_noise(spec, (batch,), seed)
        return context.at_step(noise_lib.split_step_noise(spec, noise))
