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

    Example:

    >>> import keras_recdrop
    >>> from keras_recdrop import registry
    >>> registry.cell_draws_noise(keras_recdrop.GalLSTM(4, dropout=0.1))
    True
    >>> registry.cell_draws_noise(keras_recdrop.GalLSTMCell(4))
    False
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

    Example:

    >>> from keras_recdrop import registry
    >>> zoneout = registry.regularizers()[
    ...     [r.name for r in registry.regularizers()].index("zoneout")]
    >>> sorted(zoneout.converts)
    ['GRU', 'LSTM']
    >>> zoneout.converts["LSTM"].__name__
    'ZoneoutLSTM'
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
    """Adds `regularizer` to the table; its name must be new.

    Example:

    >>> from keras_recdrop import registry
    >>> try:
    ...     registry.register(registry.Regularizer(name="gal"))
    ... except ValueError as error:
    ...     print(error)
    A regularizer named 'gal' is already registered.
    """
    if regularizer.name in _REGISTRY:
        raise ValueError(
            f"A regularizer named {regularizer.name!r} is already registered."
        )
    _REGISTRY[regularizer.name] = regularizer
    return regularizer


def regularizers():
    """Every registered regularizer, in the order of registration.

    Example:

    >>> from keras_recdrop import registry
    >>> names = sorted(r.name for r in registry.regularizers())
    >>> len(names), names[1], names[-1]
    (6, 'gal', 'zoneout')
    """
    return tuple(_REGISTRY.values())


def public_classes():
    """Every cell and layer class of every regularizer.

    Example:

    >>> import keras_recdrop
    >>> from keras_recdrop import registry
    >>> keras_recdrop.ZoneoutLSTMCell in registry.public_classes()
    True
    """
    return tuple(c for r in regularizers() for c in r.classes)


def ready_made_layers():
    """The ready-made recurrent layers (`GalLSTM`, ...), `{name: class}`.

    Example:

    >>> from keras_recdrop import registry
    >>> sorted(registry.ready_made_layers())  # doctest: +NORMALIZE_WHITESPACE
    ['GalGRU', 'GalLSTM', 'SemeniutaGRU', 'SemeniutaLSTM', 'WeightDropLSTM',
     'ZoneoutGRU', 'ZoneoutLSTM']
    """
    return {
        layer.__name__: layer
        for r in regularizers()
        for layer in r.converts.values()
    }


def conversion_targets(kind):
    """`{name: layer class}` that a Keras `kind` (`"LSTM"`/`"GRU"`) becomes.

    Example:

    >>> from keras_recdrop import registry
    >>> sorted(registry.conversion_targets("GRU"))
    ['gal', 'semeniuta', 'zoneout']
    """
    return {
        r.name: r.converts[kind] for r in regularizers() if kind in r.converts
    }


def regularizer_of(obj):
    """The regularizer whose cell or layer `obj` is an instance of, or `None`.

    The most specific one: a subclass registered as a regularizer of its
    own is not its base class's.

    Example:

    >>> import keras, keras_recdrop
    >>> from keras_recdrop import registry
    >>> registry.regularizer_of(keras_recdrop.SemeniutaGRU(3)).name
    'semeniuta'
    >>> registry.regularizer_of(keras.layers.LSTM(3)) is None
    True
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
    """Whether `obj` (any layer or cell) draws noise its batch shares.

    Example:

    >>> import keras_recdrop
    >>> from keras_recdrop import registry
    >>> registry.shares_noise_across_batch(
    ...     keras_recdrop.WeightDropLSTM(3, weight_dropout=0.5))
    True
    >>> registry.shares_noise_across_batch(
    ...     keras_recdrop.GalLSTM(3, dropout=0.5))
    False
    """
    regularizer = regularizer_of(obj)
    return regularizer is not None and regularizer.shares_noise_across_batch(
        obj
    )


def draws_noise(obj):
    """Whether `obj` (any layer or cell) draws the package's noise.

    Example:

    >>> import keras, keras_recdrop
    >>> from keras_recdrop import registry
    >>> registry.draws_noise(keras_recdrop.ZoneoutLSTMCell(3, zoneout_c=0.5))
    True
    >>> registry.draws_noise(keras.layers.Dropout(0.5))  # not the package's
    False
    """
    regularizer = regularizer_of(obj)
    return regularizer is not None and regularizer.draws_noise(obj)
