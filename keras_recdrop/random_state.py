"""The random state of a layer, saved and restored with its weights.

Keras saves a layer's trainable and non-trainable variables, not the state
of its `keras.random.SeedGenerator`s: after `load_model`, `load_weights` or
`keras.callbacks.BackupAndRestore`, a generator reads `[seed, 0]` again, so
a resumed run replays the masks of its first steps instead of continuing
the uninterrupted run's stream (a resumed Keras `LSTM(dropout=...)` loses
its place the same way).

`SavesRandomState` makes every layer and cell of this package save the
states of its generators next to its weights, under keys of their own
(`"random_state_0"`, ...), and restore them on load. The weights keep
Keras's numbered keys and order, so `get_weights()` / `set_weights()` and
weight files interoperate with `keras.layers.LSTM` / `GRU` as before; a
file without the keys (written by version 0.1.0, or by a Keras layer) loads
and leaves the generators as they are.
"""

_KEY = "random_state_{}"


class SavesRandomState:
    """Mixin for `keras.layers.Layer`: saves its generators' states too.

    Subclasses list their generators in `_random_state_generators()`.

    Example:

    >>> import keras, numpy as np, keras_recdrop
    >>> layer = keras_recdrop.ZoneoutLSTM(4, zoneout_c=0.5, seed=1)
    >>> x = np.ones((2, 3, 2), "float32")
    >>> _ = layer(x, training=True)  # advances the random stream
    >>> store = {}
    >>> layer.cell.save_own_variables(store)
    >>> sorted(k for k in store if k.startswith("random_state"))
    ['random_state_0']
    """

    def _random_state_generators(self):
        """The layer's own `keras.random.SeedGenerator`s, in a fixed order."""
        return []

    def save_own_variables(self, store):
        super().save_own_variables(store)
        for index, generator in enumerate(self._random_state_generators()):
            store[_KEY.format(index)] = generator.state

    def load_own_variables(self, store):
        generators = self._random_state_generators()
        random_keys = {_KEY.format(i) for i in range(len(generators))}
        # Keras checks that the store holds exactly its numbered weights.
        weights = {k: store[k] for k in store.keys() if k not in random_keys}
        super().load_own_variables(weights)
        for index, generator in enumerate(generators):
            key = _KEY.format(index)
            if key in store.keys():
                generator.state.assign(store[key])
