"""The one place that knows the package's regularizers.

Each regularizer's module declares itself at its end with `register`: its
cells, its ready-made layers, what `keras_recdrop.convert` turns a Keras
`LSTM` or `GRU` into when asked for it by name, and whether its noise is
shared by the whole batch of a call (which `keras_recdrop.mc_predict`
needs to know). Everything else derives from this table:
`keras_recdrop.layers` lists the ready-made layers, `convert` its names,
`mc_predict` the noise of a model's layers, and a test checks that
`keras_recdrop.__all__` exports exactly these classes (and the package's
other public names).

Adding a regularizer (see CONTRIBUTING.md): write its module, end it with
`register(Regularizer(...))`, and import its public classes in
`keras_recdrop/__init__.py`.
"""

import dataclasses
from collections.abc import Callable


def _never(layer):
    return False


def cell_draws_noise(obj):
    """`draws_noise` of a recurrent regularizer: asks the cell.

    `obj` is one of its cells, or a ready-made layer (which asks its cell).
    """
    return getattr(obj, "cell", obj).draws_noise()


@dataclasses.dataclass(frozen=True)
class Regularizer:
    """A regularizer of the package, as its module declares it.

    Attributes:
        name: Its name, the one `convert(lstm=..., gru=...)` takes.
        cells: Its cell classes.
        layers: Its layer classes: ready-made recurrent layers, or layers
            of their own (`DropoutEmbedding`, `NormStabilizer`).
        converts: `{"LSTM": layer class, "GRU": layer class}`: what a Keras
            `LSTM` (or `GRU`) becomes when `convert` is asked for `name`.
        shares_noise_across_batch: A function of one of its cells or
            layers, true when that object draws noise that the whole batch
            of one call shares (DropConnect's weight mask, embedding
            dropout's word-type mask): tiled copies of a row in one call
            would then see the same noise.
        draws_noise: A function of one of its cells or layers, true when
            that object draws random noise in training (a rate above 0).
    """

    name: str
    cells: tuple = ()
    layers: tuple = ()
    converts: dict = dataclasses.field(default_factory=dict)
    shares_noise_across_batch: Callable = _never
    draws_noise: Callable = _never

    @property
    def classes(self):
        return self.cells + self.layers


_REGISTRY = {}


def register(regularizer):
    """Adds `regularizer` to the table; its name must be new."""
    if regularizer.name in _REGISTRY:
        raise ValueError(
            f"A regularizer named {regularizer.name!r} is already registered."
        )
    _REGISTRY[regularizer.name] = regularizer
    return regularizer


def regularizers():
    """Every registered regularizer, in the order of registration."""
    return tuple(_REGISTRY.values())


def public_classes():
    """Every cell and layer class of every regularizer."""
    return tuple(c for r in regularizers() for c in r.classes)


def ready_made_layers():
    """The ready-made recurrent layers (`GalLSTM`, ...), `{name: class}`."""
    return {
        layer.__name__: layer
        for r in regularizers()
        for layer in r.converts.values()
    }


def conversion_targets(kind):
    """`{name: layer class}` that a Keras `kind` (`"LSTM"`/`"GRU"`) becomes."""
    return {
        r.name: r.converts[kind] for r in regularizers() if kind in r.converts
    }


def regularizer_of(obj):
    """The regularizer whose cell or layer `obj` is an instance of, or `None`.

    The most specific one: a subclass registered as a regularizer of its
    own is not its base class's.
    """
    mro = type(obj).__mro__
    found = [
        (mro.index(cls), regularizer)
        for regularizer in regularizers()
        for cls in regularizer.classes
        if cls in mro
    ]
    return min(found, key=lambda pair: pair[0])[1] if found else None


def shares_noise_across_batch(obj):
    """Whether `obj` (any layer or cell) draws noise its batch shares."""
    regularizer = regularizer_of(obj)
    return regularizer is not None and regularizer.shares_noise_across_batch(
        obj
    )


def draws_noise(obj):
    """Whether `obj` (any layer or cell) draws the package's noise."""
    regularizer = regularizer_of(obj)
    return regularizer is not None and regularizer.draws_noise(obj)
