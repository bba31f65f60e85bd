"""`convert`: a copy of a Keras model with the package's LSTM/GRU layers.

Built on `keras.models.clone_model` with a `clone_function`. Every layer is
recreated from its config (`layer.get_config()` -> `from_config`), then
given the original's weights, so the copy is independent of the original.
Exactly `keras.layers.LSTM`, `keras.layers.GRU`, `keras.layers.RNN` (and
`keras_recdrop.RNN`) over `LSTMCell`/`GRUCell`/`StackedRNNCells`, and
`keras.layers.Bidirectional` around any of these are converted; everything
else is cloned as it is. The conversion is config-to-config: a Keras
layer's config holds the arguments the package's layers take (`dropout`,
`recurrent_dropout`, `seed`, the initializers, ...), plus the caller's
`lstm_kwargs` / `gru_kwargs`.
"""

import warnings

import keras

from keras_recdrop import _compat
from keras_recdrop import registry
from keras_recdrop.rnn import RNN


class _Target:
    """One validated conversion rule: Keras's LSTM (or GRU) -> a class."""

    def __init__(self, arg, value, names, kind, kwargs_arg, kwargs):
        self.kind = kind
        self.layer_class = self._layer_class(arg, value, names, kind)
        self.kwargs = self._kwargs(kwargs_arg, kwargs)

    @staticmethod
    def _layer_class(arg, value, names, kind):
        choices = ", ".join(repr(n) for n in sorted(names))
        if value is None:
            return None
        if isinstance(value, str):
            if value not in names:
                raise ValueError(
                    f"Argument `{arg}` must be one of {choices}, a layer "
                    f"class of keras_recdrop or None; received {arg}="
                    f"{value!r}."
                )
            return names[value]
        gates = 4 if kind == "LSTM" else 3
        cell_class = getattr(value, "cell_class", None)
        if not (
            isinstance(value, type)
            and issubclass(value, RNN)
            and isinstance(cell_class, type)
            and getattr(cell_class, "num_gates", None) == gates
        ):
            raise TypeError(
                f"Argument `{arg}` must be one of {choices}, a "
                f"keras_recdrop {kind} layer class (such as "
                f"keras_recdrop.Gal{kind}) or None; received {arg}="
                f"{value!r}."
            )
        return value

    def _kwargs(self, arg, kwargs):
        if kwargs is None:
            return {}
        if not isinstance(kwargs, dict):
            raise TypeError(
                f"Argument `{arg}` must be a dict of arguments of the new "
                f"cells or None; received {arg}={kwargs!r}."
            )
        if "seed" in kwargs:
            raise ValueError(
                f"Argument `{arg}` must not set `seed`: one seed for every "
                "converted layer would give them all the same random "
                "stream. The seed of each Keras layer carries over; set it "
                f"there. Received {arg}={kwargs!r}."
            )
        if self.layer_class is None:
            if kwargs:
                raise ValueError(
                    f"Argument `{arg}` is set but no {self.kind} layer is "
                    f"converted (the target is None); received {arg}="
                    f"{kwargs!r}."
                )
            return {}
        # Validate every key and value once, up front, on a probe cell: the
        # error then names `arg` even if the model has no such layer.
        cell_class = self.layer_class.cell_class
        try:
            cell_class(1, **kwargs)
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"Argument `{arg}` holds arguments that "
                f"{cell_class.__name__} does not accept: {error} (received "
                f"{arg}={kwargs!r})."
            ) from error
        return dict(kwargs)


def _copy(obj):
    """A new layer (or cell) from `obj`'s config: Keras's default clone."""
    return obj.__class__.from_config(obj.get_config())


def _new_or_copy(new, obj):
    return _copy(obj) if new is None else new


class _Converter:
    """The `clone_function`, and the (original, copy) pairs it made."""

    def __init__(self, lstm, gru):
        self.targets = {
            keras.layers.LSTM: lstm,
            keras.layers.GRU: gru,
            keras.layers.LSTMCell: lstm,
            keras.layers.GRUCell: gru,
        }
        self.pairs = []

    def __call__(self, layer):
        new = _new_or_copy(self.convert_layer(layer), layer)
        self.pairs.append((layer, new))
        return new

    def _warn_subclass(self, obj):
        for base, target in self.targets.items():
            if (
                type(obj) is not base
                and isinstance(obj, base)
                and target.layer_class is not None
            ):
                warnings.warn(
                    f"{obj.name!r} is a {type(obj).__name__}, a subclass "
                    f"of keras.layers.{base.__name__}; it is copied "
                    "unconverted (its overrides cannot be carried over to "
                    "the package's layers).",
                    stacklevel=2,
                )

    def _recreate(self, obj, as_cell):
        """A Keras LSTM/GRU (layer or cell) as its target class, or `None`."""
        target = self.targets[type(obj)]
        if target.layer_class is None:
            return None
        new_class = target.layer_class
        if as_cell:
            new_class = new_class.cell_class
        try:
            return new_class.from_config({**obj.get_config(), **target.kwargs})
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"Cannot convert the {type(obj).__name__} {obj.name!r}: {error}"
            ) from error

    def convert_layer(self, layer):
        """The package's version of `layer`, or `None` to clone it as is."""
        kind = type(layer)
        if kind in (keras.layers.LSTM, keras.layers.GRU):
            return self._recreate(layer, as_cell=False)
        if kind in (keras.layers.RNN, RNN):
            cell = self.convert_cell(layer.cell)
            if cell is None:
                return None
            config = layer.get_config()
            del config["cell"]
            return RNN(cell, **config)
        if kind is keras.layers.Bidirectional:
            forward = self.convert_layer(layer.forward_layer)
            backward = self.convert_layer(layer.backward_layer)
            if forward is None and backward is None:
                return None
            config = layer.get_config()
            return keras.layers.Bidirectional(
                _new_or_copy(forward, layer.forward_layer),
                merge_mode=config["merge_mode"],
                backward_layer=_new_or_copy(backward, layer.backward_layer),
                name=config["name"],
                dtype=config["dtype"],
                trainable=config["trainable"],
            )
        self._warn_subclass(layer)
        return None

    def convert_cell(self, cell):
        """The package's version of a cell, or `None` if none is needed."""
        kind = type(cell)
        if kind in (keras.layers.LSTMCell, keras.layers.GRUCell):
            return self._recreate(cell, as_cell=True)
        if kind is keras.layers.StackedRNNCells:
            converted = [self.convert_cell(inner) for inner in cell.cells]
            if all(new is None for new in converted):
                return None
            cells = [
                _new_or_copy(new, inner)
                for new, inner in zip(converted, cell.cells, strict=True)
            ]
            config = cell.get_config()
            return keras.layers.StackedRNNCells(
                cells,
                name=config["name"],
                dtype=config["dtype"],
                trainable=config["trainable"],
            )
        self._warn_subclass(cell)
        return None

    def copy_weights(self):
        """Gives every copy its original's weights (built copies only)."""
        for old, new in self.pairs:
            # Operations (`keras.ops` calls in a Functional graph) and
            # unbuilt layers have no weights.
            if not isinstance(old, keras.layers.Layer):
                continue
            if not old.built or not old.weights:
                continue
            if not new.built:
                new.build_from_config(old.get_build_config())
            new.set_weights(old.get_weights())
            # A stateful RNN's current states are variables but not weights:
            # copied too, so the copy continues where the original is.
            if getattr(old, "stateful", False) and old.states and new.states:
                for source, target in zip(
                    keras.tree.flatten(old.states),
                    keras.tree.flatten(new.states),
                    strict=True,
                ):
                    target.assign(source.value)


def convert(model, lstm="gal", gru="gal", *, lstm_kwargs=None, gru_kwargs=None):
    """A copy of `model` whose Keras LSTM/GRU layers are the package's.

    Every `keras.layers.LSTM` becomes the layer named by `lstm` (by default
    `keras_recdrop.GalLSTM`) and every `keras.layers.GRU` the one named by
    `gru` (by default `GalGRU`), with the same arguments (`units`,
    activations, initializers, regularizers, constraints, `dropout`,
    `recurrent_dropout`, `seed`, `return_sequences`, `return_state`,
    `go_backwards`, `stateful`, `unroll`, `name`, `dtype`, ...) and the same
    weights. So are the layers inside `keras.layers.Bidirectional`, and the
    `LSTMCell`s and `GRUCell`s of a `keras.layers.RNN` (also inside
    `StackedRNNCells`), which then runs in a `keras_recdrop.RNN`. Every
    other layer is copied as it is, with its weights; nested Sequential and
    Functional models are converted too, and a layer shared by several
    calls stays shared. The original model is not changed.

    At inference the copy computes what the original computes. In training
    the rates keep their values but the package's semantics: `GalLSTM` and
    `GalGRU` draw one mask per sequence and per gate, in both
    `implementation` modes (Keras draws per-gate or shared input masks
    depending on the mode), the layers run in the fused mode
    (`implementation=2`) with recurrent dropout (Keras falls back to mode
    1), a rate Keras clamped (e.g. a stored `dropout=1.0`) raises a
    `ValueError`, and the backward direction of a `Bidirectional` draws a
    stream derived from the seed instead of the forward's copy. Exactly
    these classes are converted: a subclass of `keras.layers.LSTM`, `GRU`,
    `LSTMCell` or `GRUCell` is copied unconverted with a warning, other
    cells (`SimpleRNNCell`, custom cells) are copied as they are.

    Args:
        model: A Sequential or Functional `keras.Model` (built or not), or
            one layer. A subclassed model creates its layers in Python
            code, which cannot be rewritten: convert its layers where they
            are created (`keras_recdrop.convert(keras.layers.LSTM(...))`).
        lstm: What every LSTM becomes: `"gal"` (default), `"zoneout"`,
            `"semeniuta"`, `"weight_drop"`, a keras_recdrop LSTM layer class
            (such as `keras_recdrop.ZoneoutLSTM` or a subclass of one), or
            `None` to keep Keras's LSTMs.
        gru: What every GRU becomes: `"gal"` (default), `"zoneout"`,
            `"semeniuta"`, a keras_recdrop GRU layer class, or `None`.
        lstm_kwargs: Optional dict of arguments of the new LSTM cells that
            are added to (or override) the Keras layer's, e.g.
            `{"zoneout_c": 0.5, "zoneout_h": 0.05}`, `{"tied_masks": True}`
            or `{"recurrent_dropout": 0.0}`. Not `seed` (each layer keeps
            its own) nor `units` (the weights must fit).
        gru_kwargs: The same for the new GRU cells.

    Returns:
        A new model (or layer) of the same kind, with the original's
        weights, compiled like the original if it was compiled.

    Raises:
        ValueError: an unknown `lstm`/`gru` name, a bad rate in the kwargs
            or in a converted layer.
        TypeError: a wrong type of argument, an argument the new cell does
            not take, or a subclassed model.

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> model = keras.Sequential([
    ...     keras.Input((5, 3)),
    ...     keras.layers.LSTM(4, recurrent_dropout=0.25, seed=1),
    ...     keras.layers.Dense(1)])
    >>> new = keras_recdrop.convert(model)
    >>> type(new.layers[0]).__name__, new.layers[0].recurrent_dropout
    ('GalLSTM', 0.25)
    >>> x = np.random.rand(2, 5, 3).astype("float32")
    >>> bool(np.allclose(new.predict(x, verbose=0),
    ...                  model.predict(x, verbose=0), atol=1e-5))
    True
    """
    converter = _Converter(
        _Target(
            "lstm",
            lstm,
            registry.conversion_targets("LSTM"),
            "LSTM",
            "lstm_kwargs",
            lstm_kwargs,
        ),
        _Target(
            "gru",
            gru,
            registry.conversion_targets("GRU"),
            "GRU",
            "gru_kwargs",
            gru_kwargs,
        ),
    )
    if isinstance(model, keras.Sequential) or _compat.is_functional(model):
        new = keras.models.clone_model(
            model, clone_function=converter, recursive=True
        )
    elif isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a Sequential or Functional model or a "
            f"layer; received model={model.name!r}, a subclassed "
            f"{type(model).__name__} whose layers are created in Python "
            "code. Convert its layers where they are created, e.g. "
            "`self.lstm = keras_recdrop.convert(keras.layers.LSTM(...))`."
        )
    elif isinstance(model, keras.layers.Layer):
        new = converter(model)
    else:
        raise TypeError(
            "Argument `model` must be a Sequential or Functional model or a "
            f"layer; received model={model!r} of type "
            f"{type(model).__name__}."
        )
    converter.copy_weights()
    return new
