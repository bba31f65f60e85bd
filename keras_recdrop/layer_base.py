"""`keras.layers.LSTM` / `GRU` over a cell of the package: the layers' base.

`LSTMLayerBase` and `GRULayerBase` take exactly the arguments of
`keras.layers.LSTM` (or `GRU`), in the same positional order, then
`dropout_masks` (the argument proposed for Keras in docs/upstream.md, where
a Keras that has it puts it), then the keyword-only `tied_masks`,
`implementation` and `stateful_masks`; a ready-made layer (`ZoneoutLSTM`,
...) adds its regularizer's keyword-only arguments and names its cell
class in `cell_class`. The cell's arguments read as layer attributes
(`layer.units`, `layer.dropout`, ...) and `get_config` is flat, as on
Keras's layers.

When a call computes a plain LSTM/GRU (inference for Gal, Semeniuta and
DropConnect, or all rates 0) and `use_cudnn` allows it, the layer runs the
backend's fused kernel as Keras's own layers do (cuDNN on a GPU; on
PyTorch also a fused CPU kernel, at inference) and falls back to the cell
loop where the backend raises `NotImplementedError` (TensorFlow and JAX's
LSTM on a CPU) or where the loop is measured faster (training on PyTorch's
CPU, JAX's CPU GRU). `use_cudnn=True` asks for the fused kernel always.
"""

import keras

from keras_recdrop import _validation
from keras_recdrop.cell_base import init_arguments
from keras_recdrop.rnn import RNN

# Arguments of the layer (and of `keras.layers.Layer`), not of the cell.
_LAYER_ARGS = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "activity_regularizer",
    "stateful_masks",
)
_LAYER_KWARGS = (
    "name",
    "dtype",
    "trainable",
    "zero_output_for_mask",
    "input_shape",
    "batch_input_shape",
    "batch_size",
    "input_dim",
)
_CELL_PRIVATE_CONFIG = ("name", "dtype", "trainable")


class CellArgument:
    """A layer attribute that reads the cell's attribute of the same name.

    As `keras.layers.LSTM.units` reads `self.cell.units`.

    Example:

    >>> import keras_recdrop
    >>> layer = keras_recdrop.GalLSTM(4, recurrent_dropout=0.25)
    >>> layer.recurrent_dropout, layer.cell.recurrent_dropout
    (0.25, 0.25)
    """

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, layer, owner=None):
        if layer is None:
            return self
        return getattr(layer.cell, self.name)


class _CellLayer(RNN):
    """A `keras_recdrop.RNN` built around one cell class, Keras-style."""

    cell_class = None

    # The arguments both families share, read from the cell.
    units = CellArgument()
    activation = CellArgument()
    recurrent_activation = CellArgument()
    use_bias = CellArgument()
    kernel_initializer = CellArgument()
    recurrent_initializer = CellArgument()
    bias_initializer = CellArgument()
    kernel_regularizer = CellArgument()
    recurrent_regularizer = CellArgument()
    bias_regularizer = CellArgument()
    kernel_constraint = CellArgument()
    recurrent_constraint = CellArgument()
    bias_constraint = CellArgument()
    dropout = CellArgument()
    recurrent_dropout = CellArgument()
    seed = CellArgument()
    dropout_masks = CellArgument()
    tied_masks = CellArgument()
    implementation = CellArgument()

    def _init_layer(self, init_arguments):
        """Builds the cell from the arguments that are the cell's."""
        init_arguments = dict(init_arguments)
        use_cudnn = _validation.check_choice(
            "use_cudnn", init_arguments.pop("use_cudnn"), ("auto", True, False)
        )
        if init_arguments["implementation"] == 0 and not isinstance(
            init_arguments["implementation"], bool
        ):
            # Keras 2 configs may carry the legacy `implementation=0`, which
            # `keras.layers.LSTM`/`GRU` run as the fused mode; so do these
            # drop-in layers. The cells themselves accept only 1 and 2.
            init_arguments["implementation"] = 2
        layer_args = {k: init_arguments.pop(k) for k in _LAYER_ARGS}
        layer_kwargs = {
            k: init_arguments.pop(k)
            for k in _LAYER_KWARGS
            if k in init_arguments
        }
        cell = self.cell_class(
            **init_arguments,
            dtype=layer_kwargs.get("dtype"),
            trainable=layer_kwargs.get("trainable", True),
            name=self.cell_class.__name__.lower(),
        )
        super().__init__(cell, **layer_args, **layer_kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.use_cudnn = use_cudnn

    def get_config(self):
        cell_config = {
            k: v
            for k, v in self.cell.get_config().items()
            if k not in _CELL_PRIVATE_CONFIG
        }
        base_config = super().get_config()
        del base_config["cell"]
        return {**base_config, **cell_config, "use_cudnn": self.use_cudnn}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class LSTMLayerBase(_CellLayer):
    """`keras.layers.LSTM` over a cell of the package (`cell_class`).

    The base of `GalLSTM`, `ZoneoutLSTM`, `SemeniutaLSTM` and
    `WeightDropLSTM`; a subclass names its cell class in `cell_class` and
    adds its cell's own arguments as keyword-only arguments of `__init__`.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation of the candidate and of the output (default
            `"tanh"`; `None` is linear).
        recurrent_activation: Activation of the gates (default
            `"sigmoid"`).
        use_bias: Boolean (default `True`), whether the layer has a bias.
        kernel_initializer: Initializer of the `kernel` (inputs) matrix.
        recurrent_initializer: Initializer of the `recurrent_kernel`.
        bias_initializer: Initializer of the bias vector.
        unit_forget_bias: Boolean (default `True`). Adds 1 to the bias of
            the forget gate at initialization.
        kernel_regularizer: Regularizer of the `kernel`.
        recurrent_regularizer: Regularizer of the `recurrent_kernel`.
        bias_regularizer: Regularizer of the bias.
        activity_regularizer: Regularizer of the layer's output.
        kernel_constraint: Constraint of the `kernel`.
        recurrent_constraint: Constraint of the `recurrent_kernel`.
        bias_constraint: Constraint of the bias.
        dropout: Float in `[0, 1)`. Gal's per-sequence input dropout: one
            mask per sequence, per gate unless `tied_masks`.
        recurrent_dropout: Float in `[0, 1)`. Gal's per-sequence dropout of
            `h_{t-1}`: one mask per sequence, per gate unless `tied_masks`.
        seed: Integer or `None`. Seed of the layer's random stream.
        return_sequences: Boolean. Whether to return the whole output
            sequence or only its last output. Default: `False`.
        return_state: Boolean. Whether to return the last state in addition
            to the output. Default: `False`.
        go_backwards: Boolean. If `True`, process the input sequence
            backwards and return the reversed sequence. Default: `False`.
        stateful: Boolean. If `True`, the last state of sample `i` of a
            batch is the initial state of sample `i` of the next batch.
            Default: `False`.
        unroll: Boolean. If `True`, the loop is unrolled. Default: `False`.
        use_cudnn: `"auto"`, `True` or `False`. Whether a call that computes
            a plain LSTM runs the backend's fused kernel; `"auto"` falls
            back to the cell loop where there is none.
        dropout_masks: `"per_gate"` (default) or `"shared"`: one dropout
            mask per gate or one shared by all gates. The argument proposed
            for `keras.layers.LSTM` (docs/upstream.md), where Keras's
            `implementation` modes disagree today.
        tied_masks: Boolean or `None` (default, follows `dropout_masks`).
            `True` is `dropout_masks="shared"`, the package's older
            spelling.
        implementation: 1 (one product per gate) or 2 (fused, the
            default). Both compute the same function with the same masks.
        stateful_masks: Boolean (default `False`). With `stateful=True`,
            keep the per-sequence masks across calls until
            `reset_states()` (see `keras_recdrop.RNN`).
        **kwargs: Other arguments of `keras.layers.Layer` (`name`, `dtype`,
            ...) and the cell's own (keyword-only in the subclasses).

    Call arguments:
        sequences: A 3D tensor `(batch, timesteps, features)`.
        initial_state: Optional list `[h, c]` of initial state tensors.
        mask: Optional boolean tensor `(batch, timesteps)`.
        training: Python boolean; noise only in training.

    Example:

    >>> import keras, keras_recdrop
    >>> class MyZoneoutLSTM(keras_recdrop.LSTMLayerBase):
    ...     cell_class = keras_recdrop.ZoneoutLSTMCell
    >>> layer = MyZoneoutLSTM(4, zoneout_c=0.5, return_sequences=True)
    >>> type(layer.cell).__name__, layer.cell.zoneout_c, layer.return_sequences
    ('ZoneoutLSTMCell', 0.5, True)
    """

    unit_forget_bias = CellArgument()

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
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        dropout_masks="per_gate",
        *,
        tied_masks=None,
        implementation=2,
        stateful_masks=False,
        **kwargs,
    ):
        self._init_layer(init_arguments(locals()))


class GRULayerBase(_CellLayer):
    """`keras.layers.GRU` over a cell of the package (`cell_class`).

    The base of `GalGRU`, `ZoneoutGRU` and `SemeniutaGRU`; a subclass
    names its cell class in `cell_class` and adds its cell's own arguments
    as keyword-only arguments of `__init__`.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation of the candidate (default `"tanh"`; `None`
            is linear).
        recurrent_activation: Activation of the gates (default
            `"sigmoid"`).
        use_bias: Boolean (default `True`), whether the layer has a bias.
        kernel_initializer: Initializer of the `kernel` (inputs) matrix.
        recurrent_initializer: Initializer of the `recurrent_kernel`.
        bias_initializer: Initializer of the bias.
        kernel_regularizer: Regularizer of the `kernel`.
        recurrent_regularizer: Regularizer of the `recurrent_kernel`.
        bias_regularizer: Regularizer of the bias.
        activity_regularizer: Regularizer of the layer's output.
        kernel_constraint: Constraint of the `kernel`.
        recurrent_constraint: Constraint of the `recurrent_kernel`.
        bias_constraint: Constraint of the bias.
        dropout: Float in `[0, 1)`. Gal's per-sequence input dropout: one
            mask per sequence, per gate unless `tied_masks`.
        recurrent_dropout: Float in `[0, 1)`. Gal's per-sequence dropout of
            `h_{t-1}`: one mask per sequence, per gate unless `tied_masks`.
        seed: Integer or `None`. Seed of the layer's random stream.
        return_sequences: Boolean. Whether to return the whole output
            sequence or only its last output. Default: `False`.
        return_state: Boolean. Whether to return the last state in addition
            to the output. Default: `False`.
        go_backwards: Boolean. If `True`, process the input sequence
            backwards and return the reversed sequence. Default: `False`.
        stateful: Boolean. If `True`, the last state of sample `i` of a
            batch is the initial state of sample `i` of the next batch.
            Default: `False`.
        unroll: Boolean. If `True`, the loop is unrolled. Default: `False`.
        reset_after: Boolean (default `True`). GRU convention: apply the
            reset gate after (`True`, cuDNN compatible) or before the
            recurrent product.
        use_cudnn: `"auto"`, `True` or `False`. Whether a call that computes
            a plain GRU runs the backend's fused kernel; `"auto"` falls back
            to the cell loop where there is none.
        dropout_masks: `"per_gate"` (default) or `"shared"`: one dropout
            mask per gate or one shared by all gates. The argument proposed
            for `keras.layers.GRU` (docs/upstream.md).
        tied_masks: Boolean or `None` (default, follows `dropout_masks`).
            `True` is `dropout_masks="shared"`, the package's older
            spelling.
        implementation: 1 (one product per gate) or 2 (fused, the
            default). Both compute the same function with the same masks.
        stateful_masks: Boolean (default `False`). With `stateful=True`,
            keep the per-sequence masks across calls until
            `reset_states()` (see `keras_recdrop.RNN`).
        **kwargs: Other arguments of `keras.layers.Layer` (`name`, `dtype`,
            ...) and the cell's own (keyword-only in the subclasses).

    Call arguments:
        sequences: A 3D tensor `(batch, timesteps, features)`.
        initial_state: Optional list `[h]` with the initial state tensor.
        mask: Optional boolean tensor `(batch, timesteps)`.
        training: Python boolean; noise only in training.

    Example:

    >>> import keras, keras_recdrop
    >>> class MySemeniutaGRU(keras_recdrop.GRULayerBase):
    ...     cell_class = keras_recdrop.SemeniutaGRUCell
    >>> layer = MySemeniutaGRU(4, recurrent_dropout=0.2, per_step=False)
    >>> type(layer.cell).__name__, layer.cell.per_step, layer.reset_after
    ('SemeniutaGRUCell', False, True)
    """

    reset_after = CellArgument()

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
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        reset_after=True,
        use_cudnn="auto",
        dropout_masks="per_gate",
        *,
        tied_masks=None,
        implementation=2,
        stateful_masks=False,
        **kwargs,
    ):
        self._init_layer(init_arguments(locals()))
