"""Ready-made layers: one `keras_recdrop.RNN` subclass per cell.

Each layer takes its cell's arguments plus `keras.layers.RNN`'s
(`return_sequences`, `return_state`, `go_backwards`, `stateful`, `unroll`,
`zero_output_for_mask`) and `use_cudnn`, like `keras.layers.LSTM` and
`keras.layers.GRU`; `get_config` is flat, as theirs. When a call computes a
plain LSTM/GRU (inference for Gal, Semeniuta and DropConnect, or all rates
0) and `use_cudnn` allows it, the layer tries the backend's fused kernel
(cuDNN on a GPU) exactly as Keras's own layers do, and falls back to the
cell loop where the backend has none (every CPU).
"""

import keras
from keras import tree

from keras_recdrop import _compat
from keras_recdrop.gal import GalGRUCell
from keras_recdrop.gal import GalLSTMCell
from keras_recdrop.rnn import RNN
from keras_recdrop.semeniuta import SemeniutaGRUCell
from keras_recdrop.semeniuta import SemeniutaLSTMCell
from keras_recdrop.weight_drop import WeightDropLSTMCell
from keras_recdrop.zoneout import ZoneoutGRUCell
from keras_recdrop.zoneout import ZoneoutLSTMCell

# Keyword arguments that belong to the layer, not to the cell.
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

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        activity_regularizer=None,
        **kwargs,
    ):
        if not (use_cudnn == "auto" or isinstance(use_cudnn, bool)):
            raise ValueError(
                "Argument `use_cudnn` must be 'auto', True or False; "
                f"received use_cudnn={use_cudnn!r}."
            )
        if kwargs.get("implementation") == 0 and not isinstance(
            kwargs["implementation"], bool
        ):
            # Keras 2 configs may carry the legacy `implementation=0`, which
            # `keras.layers.LSTM`/`GRU` run as the fused mode; so do these
            # drop-in layers. The cells themselves accept only 1 and 2.
            kwargs["implementation"] = 2
        layer_kwargs = {k: kwargs.pop(k) for k in _LAYER_KWARGS if k in kwargs}
        cell = self.cell_class(
            units,
            dtype=layer_kwargs.get("dtype"),
            trainable=layer_kwargs.get("trainable", True),
            name=f"{self.cell_class.__name__.lower()}",
            **kwargs,
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **layer_kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.use_cudnn = use_cudnn

    def _fused_kernel(self, sequences, initial_state, mask):
        raise NotImplementedError

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        if self.use_cudnn in ("auto", True) and self.cell.computes_plain_rnn(
            bool(training)
        ):
            try:
                out = self._fused_kernel(sequences, initial_state, mask)
                if keras.backend.backend() == "tensorflow":
                    self.supports_jit = False
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
        return super().inner_loop(
            sequences, initial_state, mask, training=training
        )

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
    def _fused_kernel(self, sequences, initial_state, mask):
        return _compat.fused_lstm(
            sequences,
            initial_state[0],
            initial_state[1],
            mask,
            kernel=self.cell.kernel,
            recurrent_kernel=self.cell.recurrent_kernel,
            bias=self.cell.bias,
            activation=self.cell.activation,
            recurrent_activation=self.cell.recurrent_activation,
            return_sequences=self.return_sequences,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
        )


class _GRULayer(_CellLayer):
    def _fused_kernel(self, sequences, initial_state, mask):
        if tree.is_nested(initial_state):
            initial_state = initial_state[0]
        last, outputs, state = _compat.fused_gru(
            sequences,
            initial_state,
            mask,
            kernel=self.cell.kernel,
            recurrent_kernel=self.cell.recurrent_kernel,
            bias=self.cell.bias,
            activation=self.cell.activation,
            recurrent_activation=self.cell.recurrent_activation,
            return_sequences=self.return_sequences,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
            reset_after=self.cell.reset_after,
        )
        return last, outputs, state


def _layer(name, base, cell_class, paper):
    doc = f"""`keras_recdrop.RNN` over a `{cell_class.__name__}` ({paper}).

    Takes every argument of `keras_recdrop.{cell_class.__name__}` plus
    `return_sequences`, `return_state`, `go_backwards`, `stateful`,
    `unroll`, `zero_output_for_mask` and `use_cudnn`, like
    `keras.layers.{"LSTM" if base is _LSTMLayer else "GRU"}`. See the cell
    for the equations.

    Call arguments:
        sequences: A 3D tensor `(batch, timesteps, features)`.
        initial_state: Optional list of initial state tensors.
        mask: Optional boolean tensor `(batch, timesteps)`.
        training: Python boolean; noise only in training.

    Example:

    >>> import numpy as np, keras_recdrop
    >>> x = np.random.random((4, 6, 3)).astype("float32")
    >>> tuple(keras_recdrop.{name}(5, return_sequences=True)(x).shape)
    (4, 6, 5)
    """
    namespace = {
        "cell_class": cell_class,
        "__doc__": doc,
        "__module__": __name__,
    }
    # The cell's arguments read as layer attributes (`layer.units`,
    # `layer.dropout`, ...), as on `keras.layers.LSTM`.
    for arg in cell_class(1).get_config():
        if arg not in _CELL_PRIVATE_CONFIG:
            namespace[arg] = property(
                lambda self, arg=arg: getattr(self.cell, arg)
            )
    cls = type(name, (base,), namespace)
    return keras.saving.register_keras_serializable(package="keras_recdrop")(
        cls
    )


ZoneoutLSTM = _layer(
    "ZoneoutLSTM", _LSTMLayer, ZoneoutLSTMCell, "Krueger et al. 2016"
)
SemeniutaLSTM = _layer(
    "SemeniutaLSTM", _LSTMLayer, SemeniutaLSTMCell, "Semeniuta et al. 2016"
)
GalLSTM = _layer("GalLSTM", _LSTMLayer, GalLSTMCell, "Gal & Ghahramani 2016")
WeightDropLSTM = _layer(
    "WeightDropLSTM", _LSTMLayer, WeightDropLSTMCell, "Merity et al. 2017"
)
ZoneoutGRU = _layer(
    "ZoneoutGRU", _GRULayer, ZoneoutGRUCell, "Krueger et al. 2016"
)
SemeniutaGRU = _layer(
    "SemeniutaGRU", _GRULayer, SemeniutaGRUCell, "Semeniuta et al. 2016"
)
GalGRU = _layer("GalGRU", _GRULayer, GalGRUCell, "Gal & Ghahramani 2016")

__all__ = [
    "GalGRU",
    "GalLSTM",
    "SemeniutaGRU",
    "SemeniutaLSTM",
    "WeightDropLSTM",
    "ZoneoutGRU",
    "ZoneoutLSTM",
]
