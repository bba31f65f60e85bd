"""`keras_recdrop.RNN`: `keras.layers.RNN` with stateless per-step noise."""

import keras
from keras import ops
from keras import tree

from keras_recdrop import _compat
from keras_recdrop import noise as noise_lib


def _iter_cells(cell):
    """Yields `cell` and, recursively, the cells of a `StackedRNNCells`."""
    yield cell
    for inner in getattr(cell, "cells", ()) or ():
        yield from _iter_cells(inner)


@keras.saving.register_keras_serializable(package="keras_recdrop")
class RNN(keras.layers.RNN):
    """`keras.layers.RNN` that gives every time step a stateless noise seed.

    Same arguments and behaviour as `keras.layers.RNN`. The difference: for
    every cell of this package that needs fresh noise at each step (zoneout,
    Semeniuta with `per_step=True`), a table of `T` stateless seeds is drawn
    before the time loop with one random call and scanned in with the
    sequence, and each step draws its own noise from its seed
    (`keras_recdrop.noise.StepSeed`). The loop body is then a pure function
    of its inputs and of the state `[h, c]`, which makes per-step noise work
    inside JAX's `lax.scan` (and under `jit_compile`) with the state exactly
    that of `keras.layers.LSTMCell`, and no `(T, batch, units)` noise tensor
    is ever built. A call at inference draws nothing. Works with
    `StackedRNNCells`, masking, `go_backwards`, `stateful` and
    `keras.layers.Bidirectional`. With `go_backwards=True` a seeded cell's
    random stream is derived from its seed, so the two directions of a
    `Bidirectional` draw different masks (Keras copies the seed into both).

    With `keras.layers.RNN` the same cells draw their per-step noise inside
    the loop instead: this works on TensorFlow, PyTorch and unrolled JAX
    loops, and raises a clear error in a JAX `lax.scan`.

    Args:
        cell: A cell or a list of cells (see `keras.layers.RNN`).
        **kwargs: Every other argument of `keras.layers.RNN`
            (`return_sequences`, `return_state`, `go_backwards`, `stateful`,
            `unroll`, `zero_output_for_mask`, ...).

    Call arguments:
        sequences: A 3D tensor `(batch, timesteps, features)`.
        initial_state: Optional list of initial state tensors.
        mask: Optional boolean tensor `(batch, timesteps)`.
        training: Python boolean; noise is drawn only in training.

    Example:

    >>> import numpy as np, keras_recdrop
    >>> x = np.random.random((8, 10, 3)).astype("float32")
    >>> layer = keras_recdrop.RNN(
    ...     keras_recdrop.ZoneoutLSTMCell(4, zoneout_c=0.5, zoneout_h=0.05),
    ...     return_sequences=True)
    >>> tuple(layer(x, training=True).shape)
    (8, 10, 4)
    """

    def __init__(self, cell, *args, **kwargs):
        super().__init__(cell, *args, **kwargs)
        # Keras 3.16's `keras.layers.RNN.__init__` sets this to `False`,
        # which drops the output mask of `return_sequences=True` for the
        # layers after it; this layer computes and propagates masks.
        self.supports_masking = True
        if self.go_backwards:
            # `keras.layers.Bidirectional` builds the backward layer from the
            # forward layer's config, seeds included: derive the backward
            # direction's streams so the two directions draw different masks,
            # reproducibly.
            for inner in _iter_cells(self.cell):
                noise_lib.reseed_for_backward_direction(inner)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        # `keras.layers.RNN.call` draws the cells' per-sequence masks before
        # its loop whether or not the call trains; remember the mode so that
        # `_maybe_config_dropout_masks` draws nothing at inference (no
        # random op, no seed advance in an inference graph).
        self._training_call = bool(training)
        try:
            return super().call(
                sequences,
                initial_state=initial_state,
                mask=mask,
                training=training,
            )
        finally:
            self._training_call = None
            # Also after an error: masks and weights derived for this call
            # must not leak into the next one.
            self._maybe_reset_dropout_masks(self.cell)

    def _maybe_config_dropout_masks(self, cell, input_sequence, input_state):
        if getattr(self, "_training_call", None) is False:
            return
        super()._maybe_config_dropout_masks(cell, input_sequence, input_state)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        training = bool(training)
        timesteps = sequences.shape[1]
        noisy = [
            cell
            for cell in _iter_cells(self.cell)
            if getattr(cell, "step_noise_spec", None) is not None
            and cell.step_noise_spec(training)
        ]
        if timesteps is None:
            # A dynamic length (only possible on TensorFlow and PyTorch,
            # whose loops draw per-step noise correctly inside the loop).
            noisy = []
        if not noisy:
            return super().inner_loop(
                sequences, initial_state, mask, training=training
            )

        # A table of `T` stateless seeds per noisy cell, drawn with one
        # random call, is scanned in with the (time-major) sequence; each
        # step draws its own noise from its row. `(T, 1, 2)`: TensorFlow's
        # loop takes only inputs of rank >= 3.
        step_seeds = tuple(
            ops.expand_dims(
                noise_lib.draw_step_seeds(cell.seed_generator, timesteps), 1
            )
            for cell in noisy
        )
        sequences = ops.swapaxes(sequences, 0, 1)
        if mask is not None:
            mask = ops.swapaxes(mask, 0, 1)
        cell_kwargs = {}
        if self.cell._call_has_training_arg:
            cell_kwargs["training"] = training

        def step(inputs, states):
            step_input, *seeds = inputs
            for cell, seed in zip(noisy, seeds, strict=True):
                cell._step_seed = noise_lib.StepSeed(seed[0])
            if keras.backend.backend() == "torch" and self.stateful:
                states = tree.map_structure(ops.copy, states)
            output, new_states = self.cell(step_input, states, **cell_kwargs)
            if not tree.is_nested(new_states):
                new_states = [new_states]
            return output, new_states

        if not tree.is_nested(initial_state):
            initial_state = [initial_state]
        try:
            last_output, outputs, states = _compat.rnn_loop(
                step,
                (sequences, *step_seeds),
                initial_state,
                go_backwards=self.go_backwards,
                mask=mask,
                unroll=self.unroll,
                input_length=timesteps,
                time_major=True,
                zero_output_for_mask=self.zero_output_for_mask,
                return_all_outputs=self.return_sequences,
            )
            return last_output, ops.swapaxes(outputs, 0, 1), states
        finally:
            for cell in noisy:
                cell._step_seed = None
