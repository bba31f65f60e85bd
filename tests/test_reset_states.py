"""`keras_recdrop.reset_states(model)`: a new sequence for the whole model.

Keras 3 models have no `reset_states()`. The function resets every
stateful recurrent layer of a model, the package's and Keras's, wherever it
is nested: the states become zeros and the held masks of
`stateful_masks=True` are drawn anew. Proven with a probe: from the same
states and inputs, a model with held masks gives the same outputs until
`reset_states`, then other outputs (the only thing that changed is the
masks), and each held-mask seed advanced exactly once.
"""

import keras
import numpy as np
import pytest
from probes import to_numpy

import keras_recdrop as kr

BATCH, T, D, UNITS = 4, 5, 3, 6


class RecordsResets(keras.layers.Layer):
    """A layer with a `reset_state` of its own (as preprocessing layers
    have) that is not a recurrent layer: `reset_states` must skip it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.resets = 0

    def reset_state(self):
        self.resets += 1

    def call(self, x):
        return x


def _model():
    """Held masks in three layers (one in a nested model, two in the
    directions of a `Bidirectional`), Keras's own stateful LSTM, a
    non-stateful layer of the package and a layer with `reset_state`."""
    inner = keras.Sequential(
        [
            keras.Input((T, UNITS), batch_size=BATCH),
            kr.SemeniutaLSTM(
                UNITS,
                recurrent_dropout=0.4,
                per_step=False,
                stateful=True,
                stateful_masks=True,
                return_sequences=True,
                seed=3,
            ),
        ],
        name="inner",
    )
    inputs = keras.Input((T, D), batch_size=BATCH)
    x = RecordsResets(name="records")(inputs)
    x = kr.GalLSTM(
        UNITS,
        dropout=0.3,
        recurrent_dropout=0.4,
        stateful=True,
        stateful_masks=True,
        return_sequences=True,
        seed=1,
        name="gal",
    )(x)
    x = keras.layers.Bidirectional(
        kr.GalGRU(
            UNITS // 2,
            recurrent_dropout=0.4,
            stateful=True,
            stateful_masks=True,
            return_sequences=True,
            seed=2,
        ),
        name="bidirectional",
    )(x)
    x = inner(x)
    x = keras.layers.LSTM(
        UNITS, stateful=True, return_sequences=True, name="keras_lstm"
    )(x)
    x = kr.GalLSTM(UNITS, recurrent_dropout=0.3, seed=4, name="not_stateful")(x)
    return keras.Model(inputs, x)


def _stateful_layers(model):
    bidirectional = model.get_layer("bidirectional")
    return [
        model.get_layer("gal"),
        bidirectional.forward_layer,
        bidirectional.backward_layer,
        model.get_layer("inner").layers[0],
        model.get_layer("keras_lstm"),
    ]


def _held_mask_layers(model):
    return _stateful_layers(model)[:4]


def _states(model):
    return [
        to_numpy(v) for layer in _stateful_layers(model) for v in layer.states
    ]


def _set_states(model, values):
    variables = [v for la in _stateful_layers(model) for v in la.states]
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _mask_seeds(model):
    return [
        to_numpy(layer.mask_seed_generator.state).tolist()
        for layer in _held_mask_layers(model)
    ]


def _inputs():
    return np.random.default_rng(0).standard_normal((BATCH, T, D), "float32")


def test_reset_states_zeroes_every_stateful_layer_and_only_those():
    model = _model()
    model(_inputs(), training=True)
    assert all(np.any(s != 0) for s in _states(model))
    reset = kr.reset_states(model)
    # Each stateful recurrent layer once, the package's and Keras's, also
    # nested and inside Bidirectional; nothing else.
    assert len(reset) == 5
    assert {id(la) for la in reset} == {
        id(la) for la in _stateful_layers(model)
    }
    assert all(np.all(s == 0) for s in _states(model))
    assert model.get_layer("records").resets == 0


def test_reset_states_draws_new_held_masks_and_advances_each_seed_once():
    model = _model()
    x = _inputs()
    model(x, training=True)
    rng = np.random.default_rng(1)
    start = [
        rng.standard_normal(s.shape).astype("float32") for s in _states(model)
    ]
    # The last layer is not stateful and draws new masks at every call:
    # compare the outputs of the stateful part only.
    probe = keras.Model(model.input, model.get_layer("keras_lstm").output)

    def probe_from_start():
        _set_states(model, start)
        return to_numpy(probe(x, training=True))

    first = probe_from_start()
    # Same states, same inputs: the held masks repeat, the outputs too.
    np.testing.assert_array_equal(probe_from_start(), first)
    seeds = _mask_seeds(model)
    kr.reset_states(model)
    after = probe_from_start()
    # Only the masks changed: the outputs differ, in many entries.
    assert np.mean(after != first) > 0.5
    # Held again until the next reset.
    np.testing.assert_array_equal(probe_from_start(), after)
    for before, now in zip(seeds, _mask_seeds(model), strict=True):
        assert now[0] == before[0] and now[1] == before[1] + 1


def test_reset_states_of_a_single_layer_and_of_an_unbuilt_model():
    layer = kr.ZoneoutGRU(UNITS, zoneout_h=0.2, stateful=True)
    layer(_inputs(), training=True)
    assert np.any(to_numpy(layer.states[0]) != 0)
    assert kr.reset_states(layer) == [layer]
    assert np.all(to_numpy(layer.states[0]) == 0)
    # Not built: nothing to zero, no error.
    unbuilt = keras.Sequential([kr.GalLSTM(UNITS, stateful=True)])
    assert len(kr.reset_states(unbuilt)) == 1


@pytest.mark.parametrize("value", [None, "model", np.zeros(3)])
def test_reset_states_rejects_what_is_not_a_layer(value):
    with pytest.raises(TypeError, match="model="):
        kr.reset_states(value)
