"""`keras_recdrop.RNN`: `keras.layers.RNN` with stateless per-step noise."""

import keras
from keras import ops
from keras import tree

from keras_recdrop import _compat
from keras_recdrop import _validation
from keras_recdrop import loops
from keras_recdrop import noise as noise_lib
from keras_recdrop import noise_mode
from keras_recdrop.cell_base import RegularizedCellBase
from keras_recdrop.random_state import SavesRandomState


def _iter_cells(cell):
    """Yields `cell` and, recursively, the cells of a `StackedRNNCells`."""
    yield cell
    for inner in getattr(cell, "cells", ()) or ():
        yield from _iter_cells(inner)


# TensorFlow, in training: how many iterations the `while_loop`, and so its
# gradient, runs at once (Keras's loop: 32). The backward iterations of a
# per-gate cell recompute their masked copies `x * m_k` from the popped `x`
# alone, so TensorFlow computes them ahead and holds them until their
# iteration runs: with 8, per-gate Gal's training step holds 1.03x Keras's
# LSTM instead of 1.15x, at the same speed (docs/design.md, "How far
# TensorFlow's loop runs ahead").
_TRAINING_LOOKAHEAD = 8


def _limits_lookahead(training):
    return bool(training) and keras.backend.backend() == "tensorflow"


def _fused_kernel_is_fast(sequences, training):
    """Whether the backend's fused kernel is the fast path for this call.

    * TensorFlow: Keras's fused kernels are cuDNN's (a GPU); elsewhere they
      raise `NotImplementedError` and the cell loop runs.
    * PyTorch: at inference always (Keras's fused CPU kernel is a lean
      loop). In training only on CUDA: on a CPU the fused "kernel" slices
      one step per iteration, so its backward pass adds a full-length zero
      gradient per step, quadratic in the sequence length (Keras trains a
      plain `LSTM(256)` 30x slower than `LSTM(256, recurrent_dropout=.25)`
      at T=1000); this package's own loop trains faster.
    * JAX: only on a GPU or TPU (cuDNN's LSTM). On a CPU Keras's fused GRU
      is a `lax.scan` over input projections computed before it, which
      predicts slower than the cell loop (docs/benchmarks.md).

    `use_cudnn=True` asks for the fused kernel whatever this says.
    """
    backend = keras.backend.backend()
    if backend == "torch":
        device = getattr(sequences, "device", None)
        return not training or getattr(device, "type", "cpu") == "cuda"
    if backend == "jax":
        return not keras.distribution.list_devices()[0].startswith("cpu")
    return True


def _package_cells(cell):
    """The cells of this package in `cell` (a cell or a stack of cells)."""
    return [c for c in _iter_cells(cell) if isinstance(c, RegularizedCellBase)]


@keras.saving.register_keras_serializable(package="keras_recdrop")
class RNN(SavesRandomState, _compat.RNNLayer):
    """`keras.layers.RNN` that gives every time step a stateless noise seed.

    Same arguments and behaviour as `keras.layers.RNN`, plus
    `stateful_masks`. For every cell of this package that needs fresh noise
    at each step (zoneout, Semeniuta with `per_step=True`), a table of `T`
    stateless seeds is drawn before the time loop with one random call and
    scanned in with the sequence, and each step draws its own noise from its
    seed (`keras_recdrop.noise.StatelessSeed`). The loop body is then a pure
    function of its inputs and of the state `[h, c]`, which makes per-step
    noise work inside JAX's `lax.scan` (and under `jit_compile`) with the
    state exactly that of `keras.layers.LSTMCell`, and no `(T, batch,
    units)` noise tensor is ever built. A call at inference draws nothing.
    Works with `StackedRNNCells`, masking, `go_backwards`, `stateful` and
    `keras.layers.Bidirectional`. With `go_backwards=True` a seeded cell's
    random stream is derived from its seed, so the two directions of a
    `Bidirectional` draw different masks (Keras copies the seed into both).

    When the cell is one cell of this package and a call computes a plain
    LSTM/GRU (inference with Gal's, Semeniuta's or DropConnect's dropout,
    DropConnect's training with only its weight mask, or all rates 0), the
    layer runs the backend's fused kernel, as `keras.layers.LSTM` does
    (cuDNN on a GPU; a fused CPU kernel on PyTorch), and the cell loop where
    the backend has none or the loop is faster (`_fused_kernel_is_fast`).
    On PyTorch the loop computes the input projections of all steps before
    it (see docs/design.md).

    With `keras.layers.RNN` the same cells draw their per-step noise inside
    the loop instead: this works on TensorFlow, PyTorch and unrolled JAX
    loops, and raises a clear error in a JAX `lax.scan`.

    The random state (the cells' seed generators and, with
    `stateful_masks`, the held masks' seed) is saved with the weights, so a
    run resumed from a `.keras` file, `save_weights` or
    `keras.callbacks.BackupAndRestore` continues the uninterrupted run's
    random stream.

    Args:
        cell: A cell or a list of cells (see `keras.layers.RNN`).
        return_sequences: Boolean. Whether to return the whole output
            sequence or only its last output. Default: `False`.
        return_state: Boolean. Whether to return the last state in addition
            to the output. Default: `False`.
        go_backwards: Boolean. If `True`, process the input sequence
            backwards and return the reversed sequence. Default: `False`.
        stateful: Boolean. If `True`, the last state of sample `i` of a
            batch is the initial state of sample `i` of the next batch
            (truncated backpropagation through long sequences split into
            chunks). Default: `False`.
        unroll: Boolean. If `True`, the loop is unrolled. Default: `False`.
        zero_output_for_mask: Boolean. Whether masked steps output zeros
            (else the previous output). Default: `False`.
        stateful_masks: Boolean. Only with `stateful=True`. If `True`, the
            per-sequence masks of the package's cells (input and recurrent
            masks of Gal's dropout, Semeniuta's `per_step=False` mask,
            DropConnect's weight mask) stay fixed across the calls (chunks)
            of one sequence until `reset_states()`, which draws new ones:
            the variational semantics for a sequence that does not fit in
            one batch. Default `False`: new masks at every call. Per-step
            noise (zoneout, Semeniuta `per_step=True`) is fresh at every
            step either way.
        **kwargs: Other arguments of `keras.layers.Layer` (`name`, `dtype`,
            ...).

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

    # Whether a call that computes a plain LSTM/GRU runs the backend's fused
    # kernel (see `inner_loop`); the ready-made layers take it as an argument.
    use_cudnn = "auto"

    def __init__(
        self,
        cell,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        *,
        stateful_masks=False,
        **kwargs,
    ):
        return_sequences = _validation.check_bool(
            "return_sequences", return_sequences
        )
        return_state = _validation.check_bool("return_state", return_state)
        go_backwards = _validation.check_bool("go_backwards", go_backwards)
        stateful = _validation.check_bool("stateful", stateful)
        unroll = _validation.check_bool("unroll", unroll)
        zero_output_for_mask = _validation.check_bool(
            "zero_output_for_mask", zero_output_for_mask
        )
        stateful_masks = _validation.check_bool(
            "stateful_masks", stateful_masks
        )
        if stateful_masks and not stateful:
            raise ValueError(
                "Argument `stateful_masks=True` holds the masks across the "
                "calls of a stateful layer and needs `stateful=True`; "
                f"received stateful={stateful!r}."
            )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            **kwargs,
        )
        # Keras 3.16's `keras.layers.RNN.__init__` sets this to `False`,
        # which drops the output mask of `return_sequences=True` for the
        # layers after it; this layer computes and propagates masks.
        self.supports_masking = True
        self.stateful_masks = stateful_masks
        self.mask_seed_generator = None
        if stateful_masks:
            seeds = [c.seed for c in _package_cells(self.cell)]
            seed = seeds[0] if seeds else None
            self.mask_seed_generator = keras.random.SeedGenerator(
                None if seed is None else noise_lib.derived_seed(seed, 1)
            )
        if self.go_backwards:
            # `keras.layers.Bidirectional` builds the backward layer from the
            # forward layer's config, seeds included: derive the backward
            # direction's streams so the two directions draw different masks,
            # reproducibly.
            for inner in _package_cells(self.cell):
                noise_lib.reseed_for_backward_direction(
                    inner.seed_generator, inner.seed
                )
            if self.mask_seed_generator is not None:
                noise_lib.reseed_for_backward_direction(
                    self.mask_seed_generator, seed
                )

    def _random_state_generators(self):
        if self.mask_seed_generator is None:
            return []
        return [self.mask_seed_generator]

    def reset_state(self):
        super().reset_state()
        if self.mask_seed_generator is not None:
            # The next sequence gets new masks.
            self.mask_seed_generator.next()

    def builds_cell_context(self, cell):
        # The package's cells get their per-call constants from
        # `begin_call` in `inner_loop`, not from Keras's mask hooks.
        return isinstance(cell, RegularizedCellBase)

    def _held_mask_seeds(self, cells):
        """`[{purpose: StatelessSeed}]` of the held masks, one per cell.

        Derived from the state of `mask_seed_generator`, which only
        `reset_state()` advances: the same seeds at every call of one
        sequence.
        """
        purposes = RegularizedCellBase.MASK_PURPOSES
        seeds = noise_lib.derive_seeds(
            noise_lib.StatelessSeed(self.mask_seed_generator.state.value),
            len(cells) * len(purposes),
        )
        return [
            {
                purpose: noise_lib.StatelessSeed(
                    seeds[index * len(purposes) + k]
                )
                for k, purpose in enumerate(purposes)
            }
            for index in range(len(cells))
        ]

    def get_config(self):
        return {**super().get_config(), "stateful_masks": self.stateful_masks}

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """Builds the call's cell contexts and step seeds, runs a loop.

        The policy of a call, in order: every cell of the package gets its
        `CellContext` (`begin_call`: masks drawn only when the call draws
        noise, i.e. in training or inside `noise_mode.monte_carlo()`); one
        cell whose call computes a plain LSTM/GRU runs the fused kernel
        where it is the fast path (`_fused_kernel_is_fast`); each cell with
        per-step noise gets a table of step seeds, one random call; then
        the PyTorch loop (one cell on PyTorch) or Keras's backend loop runs
        (`keras_recdrop.loops`).
        """
        noise_on = noise_mode.active(training)
        training = bool(training)
        if tree.is_nested(mask):
            mask = mask[0]
        if not tree.is_nested(initial_state):
            initial_state = [initial_state]
        cell = self.cell
        cells = _package_cells(cell)
        held = [None] * len(cells)
        if self.stateful_masks and training:
            held = self._held_mask_seeds(cells)
        # `(cell, CellContext)` for every cell of the package (pairs, not a
        # dict keyed by cells: graph compilers trace a tuple plainly).
        contexts = tuple(
            (c, c.begin_call(sequences, noise_on, seeds))
            for c, seeds in zip(cells, held, strict=True)
        )
        single = isinstance(cell, RegularizedCellBase)
        if (
            single
            and self.use_cudnn in ("auto", True)
            and contexts[0][1].plain
            and (
                self.use_cudnn is True
                or _fused_kernel_is_fast(sequences, noise_on)
            )
        ):
            try:
                out = loops.fused_loop(
                    cell,
                    contexts[0][1],
                    sequences,
                    initial_state,
                    mask,
                    go_backwards=self.go_backwards,
                    unroll=self.unroll,
                    return_sequences=self.return_sequences,
                )
                if keras.backend.backend() == "tensorflow":
                    # cuDNN's kernels are not XLA-compatible.
                    _compat.disable_xla(self)
                return out
            except NotImplementedError:
                pass
        if self.use_cudnn is True:
            raise ValueError(
                "use_cudnn=True was specified, but no fused (cuDNN) kernel "
                "is available for this configuration on this backend (it "
                "needs a GPU, and a call without active noise). Pass "
                "use_cudnn='auto' to fall back to the cell loop."
            )
        timesteps = sequences.shape[1]
        if timesteps is None:
            # Known only when the graph runs (TensorFlow, `Input((None,
            # D))`): the seed table takes the dynamic length.
            timesteps = ops.shape(sequences)[1]
        # A table of `T` stateless seeds per cell with per-step noise, drawn
        # with one random call before the loop; each step draws its own
        # noise from its row.
        step_seeds = tuple(
            (c, noise_lib.draw_step_seeds(c.seed_generator, timesteps))
            for c, context in contexts
            if context.noise_spec
        )
        options = dict(
            go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            return_sequences=self.return_sequences,
            stateful=self.stateful,
        )
        if single and keras.backend.backend() == "torch":
            return loops.torch_loop(
                cell,
                contexts[0][1],
                step_seeds[0][1] if step_seeds else None,
                sequences,
                initial_state,
                mask,
                **options,
            )
        return loops.scanned_loop(
            cell,
            contexts,
            step_seeds,
            sequences,
            initial_state,
            mask,
            training=training,
            unroll=self.unroll,
            lookahead=_TRAINING_LOOKAHEAD
            if _limits_lookahead(training)
            else None,
            **options,
        )
