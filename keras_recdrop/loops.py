"""The time loops of `keras_recdrop.RNN`: plain functions of their inputs.

The layer (`rnn.py`) decides which loop a call runs and builds what the
cells need before it (a `CellContext` per cell of the package, and a table
of per-step seeds per cell with per-step noise); the loops only run it:

* `scanned_loop`: Keras's own backend loop (`lax.scan` on JAX, a
  `while_loop` on TensorFlow, a Python loop on PyTorch), with the step
  seeds scanned in beside the sequence. Any cell: one cell, a
  `StackedRNNCells`, Keras's own cells among the package's.
* `torch_loop`: one cell of the package on PyTorch (an eager backend): the
  input projections of all steps computed before the loop, per-step noise
  drawn for a chunk of steps at once. Keras's masking, `go_backwards`,
  `zero_output_for_mask` and `stateful` semantics.
* `fused_loop`: the backend's fused kernel (cuDNN; PyTorch's CPU kernel)
  for a call that computes a plain LSTM/GRU.

Every loop returns Keras's `(last_output, outputs, states)`, `outputs`
batch-major (`(batch, 1, units)` without `return_sequences`).
"""

import keras
from keras import ops
from keras import tree

from keras_recdrop import _compat
from keras_recdrop import noise as noise_lib

# Steps whose per-step noise the PyTorch loop draws at once.
NOISE_CHUNK = 64


def _context_of(cell, contexts):
    """The context paired with `cell` in `contexts`, or `None`."""
    for other, context in contexts:
        if other is cell:
            return context
    return None


def call_cell(cell, inputs, states, contexts, training):
    """One step of `cell`, each cell of the package with its context.

    `contexts` pairs every cell of the package with the step's
    `CellContext`: `((cell, context), ...)`. A `StackedRNNCells` is stepped
    through here, cell by cell as its own `call` does, so that each of its
    cells gets its own context and Keras's cells get none (they take no
    such argument).

    Example:

    >>> import keras, numpy as np, keras_recdrop
    >>> from keras_recdrop import loops
    >>> cell = keras_recdrop.GalLSTMCell(4, dropout=0.5)
    >>> x = keras.ops.convert_to_tensor(np.ones((2, 5, 3), "float32"))
    >>> cell.build((2, 3))
    >>> context = cell.begin_call(x, True)  # the call's masks and weights
    >>> state = [keras.ops.zeros((2, 4)), keras.ops.zeros((2, 4))]
    >>> output, new_state = loops.call_cell(
    ...     cell, x[:, 0], state, ((cell, context),), True)
    >>> tuple(output.shape), len(new_state)
    ((2, 4), 2)
    """
    if isinstance(cell, keras.layers.StackedRNNCells):
        new_states = []
        for inner, inner_states in zip(cell.cells, states, strict=True):
            state_is_list = tree.is_nested(inner_states)
            inner_states = (
                list(inner_states) if state_is_list else [inner_states]
            )
            inputs, inner_states = call_cell(
                inner, inputs, inner_states, contexts, training
            )
            if len(inner_states) == 1 and not state_is_list:
                inner_states = inner_states[0]
            new_states.append(inner_states)
        if len(new_states) == 1:
            new_states = new_states[0]
        return inputs, new_states
    kwargs = {}
    context = _context_of(cell, contexts)
    if context is not None:
        kwargs["context"] = context
    if isinstance(cell, keras.layers.Layer):
        # A layer's `__call__` drops `training` where `call` takes none.
        kwargs["training"] = training
        return cell(inputs, states, **kwargs)
    return cell.call(inputs, states, **kwargs)


def _step_contexts(contexts, noise_cells, seeds, batch):
    """The contexts of one step: the noisy cells' with their noise drawn."""
    if not noise_cells:
        return contexts
    step_seeds = tuple(zip(noise_cells, seeds, strict=True))
    step_contexts = []
    for cell, context in contexts:
        seed = _context_of(cell, step_seeds)
        if seed is not None:
            spec = context.noise_spec
            noise = noise_lib.draw_step_noise(
                spec, (batch,), noise_lib.StatelessSeed(seed)
            )
            context = context.at_step(noise_lib.split_step_noise(spec, noise))
        step_contexts.append((cell, context))
    return tuple(step_contexts)


def scanned_loop(
    cell,
    contexts,
    step_seeds,
    sequences,
    initial_state,
    mask,
    *,
    training,
    go_backwards,
    unroll,
    zero_output_for_mask,
    return_sequences,
    stateful,
    lookahead=None,
):
    """Keras's backend loop, with each noisy cell's step seeds scanned in.

    Args:
        cell: The layer's cell (or `StackedRNNCells`).
        contexts: `((cell, CellContext), ...)` for the package's cells.
        step_seeds: `((cell, int32 (T, 2)), ...)` for the cells whose
            context declares per-step noise; each step draws its noise from
            its row.
        sequences, initial_state, mask: As `keras.layers.RNN.inner_loop`
            gets them (batch-major).
        training: The call's `training`, passed to every cell that takes it.
        go_backwards, unroll, zero_output_for_mask, return_sequences: The
            layer's.
        stateful: On PyTorch, each step works on copies of the states
            (Keras's loop does the same: the state variables are assigned in
            place after the call).
        lookahead: `None`, or how many iterations TensorFlow's loop may run
            at once (`_compat.run_rnn_loop`).

    Example:

    >>> import keras, numpy as np, keras_recdrop
    >>> from keras_recdrop import loops
    >>> cell = keras_recdrop.GalLSTMCell(4, dropout=0.5)
    >>> x = keras.ops.convert_to_tensor(np.ones((2, 5, 3), "float32"))
    >>> cell.build((2, 3))
    >>> context = cell.begin_call(x, True)  # the call's masks and weights
    >>> state = [keras.ops.zeros((2, 4)), keras.ops.zeros((2, 4))]
    >>> last, outputs, states = loops.scanned_loop(
    ...     cell, ((cell, context),), (), x, state, None, training=True,
    ...     go_backwards=False, unroll=False, zero_output_for_mask=False,
    ...     return_sequences=True, stateful=False)
    >>> tuple(outputs.shape)
    (2, 5, 4)
    """
    noise_cells = tuple(cell for cell, _ in step_seeds)
    # `(T, 1, 2)`: TensorFlow's loop takes only inputs of rank >= 3.
    seed_inputs = tuple(ops.expand_dims(seeds, 1) for _, seeds in step_seeds)
    sequences = ops.swapaxes(sequences, 0, 1)
    if mask is not None:
        mask = ops.swapaxes(mask, 0, 1)
    copy_states = keras.backend.backend() == "torch" and stateful

    def step(inputs, states):
        if seed_inputs:
            step_input, *seeds = inputs
        else:
            step_input, seeds = inputs, ()
        step_contexts = _step_contexts(
            contexts,
            noise_cells,
            [seed[0] for seed in seeds],
            ops.shape(step_input)[0],
        )
        if copy_states:
            states = tree.map_structure(ops.copy, states)
        output, new_states = call_cell(
            cell, step_input, states, step_contexts, training
        )
        if not tree.is_nested(new_states):
            new_states = [new_states]
        return output, new_states

    last_output, outputs, states = _compat.run_rnn_loop(
        step,
        (sequences, *seed_inputs) if seed_inputs else sequences,
        initial_state,
        lookahead=lookahead,
        go_backwards=go_backwards,
        mask=mask,
        unroll=unroll,
        zero_output_for_mask=zero_output_for_mask,
        return_all_outputs=return_sequences,
    )
    return last_output, ops.swapaxes(outputs, 0, 1), states


def torch_loop(
    cell,
    context,
    step_seeds,
    sequences,
    initial_state,
    mask,
    *,
    go_backwards,
    zero_output_for_mask,
    return_sequences,
    stateful,
):
    """The time loop of one cell of the package on PyTorch.

    As lean as Keras's fused CPU fallback: the input projections of all
    steps are computed before the loop in one product per input mask (the
    masks are per sequence), the steps are unbound once (slicing a step out
    at each iteration would make the backward pass add a full-length zero
    gradient per step), and each step runs only the recurrent part of the
    cell (`step`). The per-step noise of a chunk of steps is drawn at once,
    each step's from its own seed (the same values as step by step, with
    fewer calls). Masking, `go_backwards`, `zero_output_for_mask` and
    `stateful` behave as in Keras's loop.

    Args:
        cell: One cell of the package.
        context: Its `CellContext` for this call.
        step_seeds: int32 `(T, 2)`, or `None` if the cell needs no
            per-step noise.
        Others: as `scanned_loop`.

    Example:

    >>> import keras, numpy as np, keras_recdrop
    >>> from keras_recdrop import loops
    >>> cell = keras_recdrop.GalLSTMCell(4, dropout=0.5)
    >>> x = keras.ops.convert_to_tensor(np.ones((2, 5, 3), "float32"))
    >>> cell.build((2, 3))
    >>> context = cell.begin_call(x, True)  # the call's masks and weights
    >>> state = [keras.ops.zeros((2, 4)), keras.ops.zeros((2, 4))]
    >>> last, outputs, states = loops.torch_loop(  # on any backend
    ...     cell, context, None, x, state, None, go_backwards=False,
    ...     zero_output_for_mask=False, return_sequences=False, stateful=False)
    >>> tuple(outputs.shape)
    (2, 1, 4)
    """
    inputs = ops.swapaxes(sequences, 0, 1)
    projections = ops.unstack(cell.project_inputs(inputs, context))
    spec = context.noise_spec
    batch = ops.shape(inputs)[1]
    chunk = (None, None)  # (first step, noise of its steps)

    def step_context(t):
        nonlocal chunk
        if step_seeds is None:
            return context
        first = t - t % NOISE_CHUNK
        if chunk[0] != first:
            seeds = noise_lib.StatelessSeed(
                step_seeds[first : first + NOISE_CHUNK]
            )
            chunk = (first, noise_lib.draw_step_noise(spec, (batch,), seeds))
        return context.at_step(
            noise_lib.split_step_noise(spec, chunk[1][t - first])
        )

    step_masks = None
    if mask is not None:
        step_masks = ops.unstack(ops.expand_dims(ops.swapaxes(mask, 0, 1), -1))
    order = range(len(projections))
    if go_backwards:
        order = reversed(order)
    states = list(initial_state)
    if stateful:
        # The state variables are assigned in place after the call.
        states = [ops.copy(s) for s in states]
    outputs, output = [], None
    for t in order:
        new_output, new_states = cell.step(
            projections[t], states, step_context(t)
        )
        if step_masks is not None:
            keep = step_masks[t]
            if output is None or zero_output_for_mask:
                previous = ops.zeros_like(new_output)
            else:
                previous = output
            new_output = ops.where(keep, new_output, previous)
            new_states = [
                ops.where(keep, new, old)
                for new, old in zip(new_states, states, strict=True)
            ]
        output, states = new_output, list(new_states)
        if return_sequences:
            outputs.append(output)
    if return_sequences:
        return output, ops.stack(outputs, axis=1), states
    return output, ops.expand_dims(output, 1), states


def fused_loop(
    cell,
    context,
    sequences,
    initial_state,
    mask,
    *,
    go_backwards,
    unroll,
    return_sequences,
):
    """The backend's fused kernel over the whole sequence.

    Raises `NotImplementedError` where the backend has none (TensorFlow and
    JAX's LSTM on a CPU); the caller then runs a loop.

    Example:

    >>> import keras, numpy as np, keras_recdrop
    >>> from keras_recdrop import loops
    >>> cell = keras_recdrop.GalLSTMCell(4, dropout=0.5)
    >>> x = keras.ops.convert_to_tensor(np.ones((2, 5, 3), "float32"))
    >>> cell.build((2, 3))
    >>> context = cell.begin_call(x, True)  # the call's masks and weights
    >>> state = [keras.ops.zeros((2, 4)), keras.ops.zeros((2, 4))]
    >>> plain = cell.begin_call(x, False)  # inference: a plain LSTM
    >>> try:
    ...     _, outputs, _ = loops.fused_loop(
    ...         cell, plain, x, state, None, go_backwards=False, unroll=False,
    ...         return_sequences=True)
    ...     print(tuple(outputs.shape))
    ... except NotImplementedError:  # no fused kernel on this backend here
    ...     print((2, 5, 4))
    (2, 5, 4)
    """
    return cell.fused_call(
        sequences,
        initial_state,
        mask,
        context,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        unroll=unroll,
    )
