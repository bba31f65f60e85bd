"""A switch that turns the package's noise on in inference calls.

Monte Carlo dropout (Gal & Ghahramani, 2016) samples the predictive
distribution by running the model with its dropout noise on while every
other layer stays in inference mode (a `BatchNormalization` uses its moving
statistics and does not update them). A model called with `training=True`
would switch those layers to training too, so the package's layers decide
whether to draw noise with `active(training)`: the call's own `training`,
or `True` inside `monte_carlo()`.

The switch is read when a layer is called, i.e. when a function is traced:
a `jax.jit` or `tf.function` traced inside the context draws noise at every
later call, one traced outside it never does. Code that reuses compiled
functions (such as a model's cached `predict_function`) must trace them
anew inside the context; `keras_recdrop.mc_predict` does. The state is
per thread.
"""

import contextlib
import threading

_state = threading.local()


@contextlib.contextmanager
def monte_carlo():
    """Inside this context the package's layers draw noise at inference.

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> from keras_recdrop import noise_mode
    >>> layer = keras_recdrop.GalLSTM(4, dropout=0.5, seed=1)
    >>> x = np.ones((2, 3, 4), "float32")
    >>> plain = keras.ops.convert_to_numpy(layer(x, training=False))
    >>> with noise_mode.monte_carlo():
    ...     noisy = keras.ops.convert_to_numpy(layer(x, training=False))
    >>> bool(np.allclose(plain, noisy))
    False
    """
    previous = getattr(_state, "on", False)
    _state.on = True
    try:
        yield
    finally:
        _state.on = previous


def active(training):
    """Whether a call draws noise: in training or inside `monte_carlo()`.

    Example:

    >>> from keras_recdrop import noise_mode
    >>> noise_mode.active(False)
    False
    >>> with noise_mode.monte_carlo():
    ...     noise_mode.active(False)
    True
    """
    return bool(training) or getattr(_state, "on", False)
