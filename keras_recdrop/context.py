"""`CellContext`: what one layer call hands a cell's steps.

A recurrent layer calls its cell once per time step. What stays the same
through one call (the per-sequence dropout masks, the weights the steps
multiply, which per-step noise the cell needs) is built once, before the
time loop, by the cell's `begin_call`, and handed to every step as an
argument, with the step's own noise added (`at_step`). A cell keeps no
per-call state: its step is a function of `(inputs, states, context)`,
which is what a graph compiler (`jax.jit`, `tf.function`,
`torch.compile`) needs to see, and what a reader can follow.

Built before the loop, the tensors of a context are loop constants:
TensorFlow's `while_loop` keeps them once, not once per step (rules 1 and 2
of "Loop constants" in docs/design.md).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class CellContext:
    """The per-call constants of a cell's steps, and one step's noise.

    Attributes:
        training: Whether the call draws noise (training, or inference
            inside `noise_mode.monte_carlo()`).
        input_masks: `None`, or a tuple of per-sequence input masks
            `(batch, features)`: one shared by all gates or one per gate.
        recurrent_masks: `None`, or a tuple of per-sequence recurrent masks
            `(batch, units)` (Gal: on `h_{t-1}`; Semeniuta with
            `per_step=False`: on the candidate update).
        weights: `{"kernel": (tensor, gate blocks), "recurrent_kernel":
            (tensor, gate blocks)}`, the weights as this call's steps use
            them (DropConnect's recurrent kernel is masked).
        weight_masks: `{name: mask}` of the weights masked in this call
            (DropConnect's boolean keep decisions of `recurrent_kernel`);
            empty for the other cells and at inference.
        noise_spec: The per-step noise channels the cell needs, `(name,
            probability_of_true, width)` each (see `keras_recdrop.noise`);
            empty if none.
        plain: Whether the call computes the plain LSTM/GRU equations with
            these weights, so that a layer may run the backend's fused
            kernel instead of the cell's steps.
        noise: This step's noise, `{name: boolean (batch, width)}`, or
            `None` outside a step (and for a cell without per-step noise).

    Example:

    >>> import keras, numpy as np, keras_recdrop
    >>> cell = keras_recdrop.WeightDropLSTMCell(4, weight_dropout=0.5)
    >>> x = keras.ops.convert_to_tensor(np.ones((2, 3), "float32"))
    >>> cell.build(x.shape)
    >>> context = cell.begin_call(x, True)
    >>> context.training, sorted(context.weights), sorted(context.weight_masks)
    (True, ['kernel', 'recurrent_kernel'], ['recurrent_kernel'])
    >>> cell.begin_call(x, False).weight_masks  # inference draws nothing
    {}
    """

    training: bool
    input_masks: tuple | None
    recurrent_masks: tuple | None
    weights: dict
    weight_masks: dict = dataclasses.field(default_factory=dict)
    noise_spec: tuple = ()
    plain: bool = True
    noise: dict | None = None

    def weight(self, name):
        """The weight `name` (`"kernel"`, `"recurrent_kernel"`) of the call."""
        return self.weights[name][0]

    def weight_blocks(self, name):
        """The gate blocks of the weight `name`, split before the loop."""
        return self.weights[name][1]

    def at_step(self, noise):
        """This context with one step's noise channels."""
        return dataclasses.replace(self, noise=noise)
