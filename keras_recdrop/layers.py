"""Ready-made layers: `keras.layers.LSTM` / `GRU` over a regularized cell.

Each layer takes exactly the arguments of `keras.layers.LSTM` (or `GRU`), in
the same positional order, and `dropout_masks` after them (the argument
proposed for Keras in docs/upstream.md, where a Keras that has it puts it),
then keyword-only arguments of its own:
`tied_masks`, `implementation`, `stateful_masks` and its regularizer's
(`zoneout_c`, `per_step`, `weight_dropout`, ...). `inspect.signature` lists
them all; the cell's arguments read as layer attributes (`layer.units`,
`layer.dropout`, ...) and `get_config` is flat, as on Keras's layers.

When a call computes a plain LSTM/GRU (inference for Gal, Semeniuta and
DropConnect, or all rates 0) and `use_cudnn` allows it, the layer runs the
backend's fused kernel as Keras's own layers do (cuDNN on a GPU; on
PyTorch also a fused CPU kernel, at inference) and falls back to the cell
loop where the backend raises `NotImplementedError` (TensorFlow and JAX's
LSTM on a CPU) or where the loop is measured faster (training on PyTorch's
CPU, JAX's CPU GRU). `use_cudnn=True` asks for the fused kernel always.
"""

import inspect
import textwrap

import keras

from keras_recdrop import _validation
from keras_recdrop.gal import GalGRUCell
from keras_recdrop.gal import GalLSTMCell
from keras_recdrop.rnn import RNN
from keras_recdrop.semeniuta import SemeniutaGRUCell
from keras_recdrop.semeniuta import SemeniutaLSTMCell
from keras_recdrop.weight_drop import WeightDropLSTMCell
from keras_recdrop.zoneout import ZoneoutGRUCell
from keras_recdrop.zoneout import ZoneoutLSTMCell

# Arguments of the layer (and of `keras.layers.Layer`), not of the cell.
_LAYER_ARGS = (
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
    "use_cudnn",
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


class _CellLayer(RNN):
    """A `keras_recdrop.RNN` built around one cell class, Keras-style."""

    cell_class = None

    def _init_layer(self, cell_args, layer_args, kwargs):
        """Builds the cell from `cell_args` and the regularizer's `kwargs`."""
        layer_args["use_cudnn"] = _validation.check_choice(
            "use_cudnn", layer_args["use_cudnn"], ("auto", True, False)
        )
        if cell_args["implementation"] == 0 and not isinstance(
            cell_args["implementation"], bool
        ):
            # Keras 2 configs may carry the legacy `implementation=0`, which
            # `keras.layers.LSTM`/`GRU` run as the fused mode; so do these
            # drop-in layers. The cells themselves accept only 1 and 2.
            cell_args["implementation"] = 2
        layer_kwargs = {k: kwargs.pop(k) for k in _LAYER_KWARGS if k in kwargs}
        cell = self.cell_class(
            **cell_args,
            **kwargs,
            dtype=layer_kwargs.get("dtype"),
            trainable=layer_kwargs.get("trainable", True),
            name=self.cell_class.__name__.lower(),
        )
        use_cudnn = layer_args.pop("use_cudnn")
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


class _LSTMLayer(_CellLayer):
    """`keras.layers.LSTM`'s arguments, then the package's own."""

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
        arguments = {
            k: v for k, v in locals().items() if k not in ("self", "kwargs")
        }
        self._init_layer(*_split_arguments(arguments), kwargs)


class _GRULayer(_CellLayer):
    """`keras.layers.GRU`'s arguments, then the package's own."""

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
        arguments = {
            k: v for k, v in locals().items() if k not in ("self", "kwargs")
        }
        self._init_layer(*_split_arguments(arguments), kwargs)


def _split_arguments(arguments):
    """`(cell_args, layer_args)` from a layer's named arguments."""
    layer_args = {k: arguments.pop(k) for k in _LAYER_ARGS}
    return arguments, layer_args


# ------------------------------------------------------ the public classes
_ARG_DOCS = {
    "units": "Positive integer, dimensionality of the output space.",
    "activation": "Activation of the candidate and of the output "
    '(default `"tanh"`; `None` is linear).',
    "recurrent_activation": 'Activation of the gates (default `"sigmoid"`).',
    "use_bias": "Boolean (default `True`), whether the layer has a bias.",
    "kernel_initializer": "Initializer of the `kernel` (inputs) matrix.",
    "recurrent_initializer": "Initializer of the `recurrent_kernel`.",
    "bias_initializer": "Initializer of the bias vector.",
    "unit_forget_bias": "Boolean (default `True`). Adds 1 to the bias of "
    "the forget gate at initialization.",
    "kernel_regularizer": "Regularizer of the `kernel`.",
    "recurrent_regularizer": "Regularizer of the `recurrent_kernel`.",
    "bias_regularizer": "Regularizer of the bias.",
    "activity_regularizer": "Regularizer of the layer's output.",
    "kernel_constraint": "Constraint of the `kernel`.",
    "recurrent_constraint": "Constraint of the `recurrent_kernel`.",
    "bias_constraint": "Constraint of the bias.",
    "dropout": "Float in `[0, 1)`. Gal's per-sequence input dropout: one "
    "mask per sequence, per gate unless `tied_masks`.",
    "recurrent_dropout": "Float in `[0, 1)`. Gal's per-sequence dropout of "
    "`h_{t-1}`: one mask per sequence, per gate unless `tied_masks`.",
    "seed": "Integer or `None`. Seed of the layer's random stream.",
    "return_sequences": "Boolean. Whether to return the whole output "
    "sequence or only its last output. Default: `False`.",
    "return_state": "Boolean. Whether to return the last state in "
    "addition to the output. Default: `False`.",
    "go_backwards": "Boolean. If `True`, process the input sequence "
    "backwards and return the reversed sequence. Default: `False`.",
    "stateful": "Boolean. If `True`, the last state of sample `i` of a "
    "batch is the initial state of sample `i` of the next batch. "
    "Default: `False`.",
    "unroll": "Boolean. If `True`, the loop is unrolled. Default: `False`.",
    "reset_after": "Boolean (default `True`). GRU convention: apply the "
    "reset gate after (`True`, cuDNN compatible) or before the recurrent "
    "product.",
    "use_cudnn": '`"auto"`, `True` or `False`. Whether a call that computes '
    'a plain LSTM/GRU runs the backend\'s fused kernel; `"auto"` falls back '
    "to the cell loop where there is none.",
    "dropout_masks": '`"per_gate"` (default) or `"shared"`: one dropout '
    "mask per gate or one shared by all gates. The argument proposed for "
    "`keras.layers.LSTM`/`GRU` (docs/upstream.md), where Keras's "
    "`implementation` modes disagree today.",
    "tied_masks": "Boolean or `None` (default, follows `dropout_masks`). "
    '`True` is `dropout_masks="shared"`, the package\'s older spelling.',
    "implementation": "1 (one product per gate) or 2 (fused, the "
    "default). Both compute the same function with the same masks.",
    "stateful_masks": "Boolean (default `False`). With `stateful=True`, "
    "keep the per-sequence masks across calls until `reset_states()` (see "
    "`keras_recdrop.RNN`).",
}


def _args_section(signature, own_docs):
    lines = ["    Args:"]
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            name = "**kwargs"
            text = "Other arguments of `keras.layers.Layer` (`name`, ...)."
        else:
            text = own_docs.get(name, _ARG_DOCS.get(name))
        lines.append(
            textwrap.fill(
                text,
                width=76,
                initial_indent=f"        {name}: ",
                subsequent_indent="            ",
            )
        )
    return "\n".join(lines)


def _ready_made(cls):
    """Finishes a public layer class: signature, attributes, docstring.

    The signature is the family's (`keras.layers.LSTM`'s or `GRU`'s
    arguments and the package's keyword-only ones) followed by the keyword
    arguments of the class's own `__init__`, so that `inspect.signature`,
    `help()` and IDEs list every argument.
    """
    family = next(c for c in cls.__mro__ if c in (_LSTMLayer, _GRULayer))
    base = inspect.signature(family.__init__)
    parameters = [
        p
        for p in list(base.parameters.values())[1:]
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    if "__init__" in vars(cls):
        own = inspect.signature(cls.__init__).parameters.values()
        parameters += [
            p for p in own if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
    parameters.append(base.parameters["kwargs"])
    cls.__signature__ = inspect.Signature(parameters)
    # The cell's arguments read as layer attributes, as on Keras's layers.
    for parameter in parameters[:-1]:
        if parameter.name not in _LAYER_ARGS:
            setattr(
                cls,
                parameter.name,
                property(lambda self, n=parameter.name: getattr(self.cell, n)),
            )
    example = getattr(cls, "_example_args", "")
    cls.__doc__ = (
        f"{cls.__doc__.rstrip()}\n\n"
        f"{_args_section(cls.__signature__, getattr(cls, '_arg_docs', {}))}"
        "\n\n"
        "    Call arguments:\n"
        "        sequences: A 3D tensor `(batch, timesteps, features)`.\n"
        "        initial_state: Optional list of initial state tensors.\n"
        "        mask: Optional boolean tensor `(batch, timesteps)`.\n"
        "        training: Python boolean; noise only in training.\n\n"
        "    Example:\n\n"
        "    >>> import numpy as np, keras_recdrop\n"
        '    >>> x = np.random.random((4, 6, 3)).astype("float32")\n'
        f"    >>> layer = keras_recdrop.{cls.__name__}(\n"
        f"    ...     5{example}, return_sequences=True)\n"
        "    >>> tuple(layer(x, training=True).shape)\n"
        "    (4, 6, 5)\n"
    )
    return keras.saving.register_keras_serializable(package="keras_recdrop")(
        cls
    )


@_ready_made
class GalLSTM(_LSTMLayer):
    """`keras.layers.LSTM` with Gal & Ghahramani's variational dropout.

    A drop-in replacement for `keras.layers.LSTM`: the same arguments in
    the same order, weights and state, over a `GalLSTMCell`. Dropout masks
    are drawn once per sequence, per gate (as Keras's `implementation=1`
    draws them) in both implementation modes, and recurrent dropout does
    not force the split mode. See `GalLSTMCell` for the equations.
    """

    cell_class = GalLSTMCell
    _example_args = ", dropout=0.2, recurrent_dropout=0.25"


@_ready_made
class ZoneoutLSTM(_LSTMLayer):
    """`keras.layers.LSTM` with zoneout (Krueger et al., 2016).

    At every training step each unit of `c` and `h` keeps its previous
    value with probability `zoneout_c` / `zoneout_h`; inference uses the
    expectation. See `ZoneoutLSTMCell` for the equations.
    """

    cell_class = ZoneoutLSTMCell
    _example_args = ", zoneout_c=0.5, zoneout_h=0.05"
    _arg_docs = {
        "zoneout_c": "Float in `[0, 1]`. Probability that a unit of the "
        "cell state keeps its previous value at a step.",
        "zoneout_h": "Float in `[0, 1]`. Same for the hidden state.",
    }

    def __init__(self, *args, zoneout_c=0.0, zoneout_h=0.0, **kwargs):
        super().__init__(
            *args, zoneout_c=zoneout_c, zoneout_h=zoneout_h, **kwargs
        )


_PER_STEP_DOC = (
    "Boolean (default `True`, the paper's recommendation). A fresh "
    "candidate mask at every step; `False`: one per sequence."
)
_CANDIDATE_DROPOUT_DOC = (
    "Float in `[0, 1)`. Semeniuta's dropout of the candidate update: the "
    "probability of dropping each unit of it (never the memory)."
)


@_ready_made
class SemeniutaLSTM(_LSTMLayer):
    """`keras.layers.LSTM` with Semeniuta et al.'s recurrent dropout (2016).

    "Recurrent dropout without memory loss": `recurrent_dropout` drops the
    candidate update `i * g` only, never the memory `c_{t-1}`. See
    `SemeniutaLSTMCell` for the equations.
    """

    cell_class = SemeniutaLSTMCell
    _example_args = ", recurrent_dropout=0.25"
    _arg_docs = {
        "recurrent_dropout": _CANDIDATE_DROPOUT_DOC,
        "per_step": _PER_STEP_DOC,
    }

    def __init__(self, *args, per_step=True, **kwargs):
        super().__init__(*args, per_step=per_step, **kwargs)


@_ready_made
class WeightDropLSTM(_LSTMLayer):
    """`keras.layers.LSTM` with DropConnect on `recurrent_kernel`.

    The weight-dropped LSTM of AWD-LSTM (Merity et al., 2017): one mask of
    the recurrent weights per call, shared by the batch and every step.
    See `WeightDropLSTMCell` for the equations.
    """

    cell_class = WeightDropLSTMCell
    _example_args = ", weight_dropout=0.5"
    _arg_docs = {
        "weight_dropout": "Float in `[0, 1)`. Probability of dropping each "
        "weight of `recurrent_kernel` (one mask per call).",
    }

    def __init__(self, *args, weight_dropout=0.0, **kwargs):
        super().__init__(*args, weight_dropout=weight_dropout, **kwargs)


@_ready_made
class GalGRU(_GRULayer):
    """`keras.layers.GRU` with Gal & Ghahramani's variational dropout.

    A drop-in replacement for `keras.layers.GRU`: the same arguments in
    the same order, weights and state, over a `GalGRUCell`; per-gate masks
    drawn once per sequence in both implementation modes. See `GalGRUCell`
    for the equations.
    """

    cell_class = GalGRUCell
    _example_args = ", dropout=0.2, recurrent_dropout=0.25"


@_ready_made
class ZoneoutGRU(_GRULayer):
    """`keras.layers.GRU` with zoneout (Krueger et al., 2016).

    At every training step each unit of `h` keeps its previous value with
    probability `zoneout_h`; inference uses the expectation. See
    `ZoneoutGRUCell` for the equations.
    """

    cell_class = ZoneoutGRUCell
    _example_args = ", zoneout_h=0.1"
    _arg_docs = {
        "zoneout_h": "Float in `[0, 1]`. Probability that a unit of the "
        "hidden state keeps its previous value at a step.",
    }

    def __init__(self, *args, zoneout_h=0.0, **kwargs):
        super().__init__(*args, zoneout_h=zoneout_h, **kwargs)


@_ready_made
class SemeniutaGRU(_GRULayer):
    """`keras.layers.GRU` with Semeniuta et al.'s recurrent dropout (2016).

    `recurrent_dropout` drops the candidate update `(1 - z) * ĥ` only,
    never the memory `h_{t-1}`. See `SemeniutaGRUCell` for the equations.
    """

    cell_class = SemeniutaGRUCell
    _example_args = ", recurrent_dropout=0.25"
    _arg_docs = {
        "recurrent_dropout": _CANDIDATE_DROPOUT_DOC,
        "per_step": _PER_STEP_DOC,
    }

    def __init__(self, *args, per_step=True, **kwargs):
        super().__init__(*args, per_step=per_step, **kwargs)


__all__ = [
    "GalGRU",
    "GalLSTM",
    "SemeniutaGRU",
    "SemeniutaLSTM",
    "WeightDropLSTM",
    "ZoneoutGRU",
    "ZoneoutLSTM",
]
