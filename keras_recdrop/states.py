"""`reset_states`: one call for every stateful recurrent layer of a model.

Keras 3 models have no `reset_states()` (Keras 2's did); a stateful layer
must be found and reset by itself. `reset_states(model)` does it for the
whole model: the package's layers (their states, and the held masks of
`stateful_masks=True`) and Keras's own recurrent layers.
"""

import keras

from keras_recdrop import _compat


def reset_states(model):
    """Resets every stateful recurrent layer of `model`: a new sequence.

    Calls `reset_state()` once on every `keras.layers.RNN` with
    `stateful=True` found anywhere in `model` (nested models,
    `Bidirectional` directions and wrapped layers included): the
    package's `keras_recdrop.RNN` and ready-made layers (`GalLSTM`, ...),
    and Keras's own `LSTM`, `GRU`, `SimpleRNN`, `ConvLSTM*D` and `RNN`.
    Their states become zeros, and the package's layers with
    `stateful_masks=True` draw new held masks at their next training call
    (the layer's mask seed advances once). Other layers are left alone:
    layers that are not stateful have no states to reset, and the
    `reset_state()` of preprocessing layers (`StringLookup`,
    `Discretization`, ...) would discard what they learned with `adapt`,
    which is not a new sequence.

    Call it between independent sequences fed in chunks to a stateful
    model, where Keras 2 code called `model.reset_states()`.

    Args:
        model: A `keras.Model` or `keras.layers.Layer` (a layer is reset
            itself if it is a stateful recurrent layer).

    Returns:
        The list of the layers that were reset (a depth-first walk of
        `model`, each layer once).

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> model = keras.Sequential([
    ...     keras.Input((4, 3), batch_size=2),
    ...     keras_recdrop.GalLSTM(5, recurrent_dropout=0.3, stateful=True,
    ...                           stateful_masks=True),
    ...     keras.layers.Dense(1)])
    >>> _ = model(np.ones((2, 4, 3), "float32"), training=True)
    >>> h, c = model.layers[0].states
    >>> bool(np.any(keras.ops.convert_to_numpy(h) != 0))
    True
    >>> reset = keras_recdrop.reset_states(model)
    >>> len(reset), reset[0] is model.layers[0]
    (1, True)
    >>> all(np.all(keras.ops.convert_to_numpy(s) == 0) for s in (h, c))
    True
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            "Argument `model` must be a keras.Model or keras.layers.Layer; "
            f"received model={model!r} of type {type(model).__name__}."
        )
    reset = [
        layer
        for layer in _compat.flatten_layers(model)
        if isinstance(layer, keras.layers.RNN) and layer.stateful
    ]
    for layer in reset:
        layer.reset_state()
    return reset
