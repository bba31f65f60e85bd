"""Masks held across the chunks of a sequence: `stateful_masks=True`.

With `stateful=True` a long sequence is fed in chunks, one call each. By
default every call draws new per-sequence masks; with `stateful_masks=True`
the masks of Gal's dropout (input and recurrent), Semeniuta's
`per_step=False` candidate mask and DropConnect's weight mask stay fixed
across the calls until `reset_states()`: one mask per sequence, as the
variational semantics ask, for a sequence that does not fit in one call.
"""

import keras
import numpy as np
import pytest
from probes import binomial_bound
from probes import linear_probe_cell
from probes import probe_weights
from probes import to_numpy

import keras_recdrop as kr

BATCH, UNITS, TIMESTEPS = 6, 5, 4

HELD = {
    "gal_input": (kr.GalLSTMCell, dict(dropout=0.4)),
    "gal_recurrent": (kr.GalLSTMCell, dict(recurrent_dropout=0.4)),
    "gal_tied": (
        kr.GalLSTMCell,
        dict(dropout=0.3, recurrent_dropout=0.3, tied_masks=True),
    ),
    "semeniuta_per_sequence": (
        kr.SemeniutaLSTMCell,
        dict(recurrent_dropout=0.4, per_step=False),
    ),
    "weight_drop": (kr.WeightDropLSTMCell, dict(weight_dropout=0.4)),
    "gal_gru": (kr.GalGRUCell, dict(dropout=0.3, recurrent_dropout=0.3)),
    "semeniuta_gru": (
        kr.SemeniutaGRUCell,
        dict(recurrent_dropout=0.4, per_step=False),
    ),
}


def stateful_layer(cls, stateful_masks=True, seed=1, **kwargs):
    layer = kr.RNN(
        cls(UNITS, seed=seed, **kwargs),
        return_sequences=True,
        stateful=True,
        stateful_masks=stateful_masks,
    )
    layer.build((BATCH, TIMESTEPS, 3))
    return layer


def call_from(layer, x, state):
    """One training call of `layer` from the stateful state `state`."""
    for variable, value in zip(layer.states, state, strict=True):
        variable.assign(value)
    return to_numpy(layer(x, training=True))


def fixed_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, TIMESTEPS, 3)).astype("float32")
    state = [
        rng.standard_normal((BATCH, UNITS)).astype("float32") for _ in range(2)
    ]
    return x, state


@pytest.mark.parametrize("name", sorted(HELD))
def test_held_masks_repeat_across_calls_until_reset_states(name):
    cls, kwargs = HELD[name]
    x, state = fixed_inputs()
    layer = stateful_layer(cls, **kwargs)
    state = state[: len(layer.states)]
    first = call_from(layer, x, state)
    # The same state and input give the same output: the same masks.
    np.testing.assert_array_equal(call_from(layer, x, state), first)
    layer.reset_states()
    after_reset = call_from(layer, x, state)
    assert np.abs(after_reset - first).max() > 1e-3
    np.testing.assert_array_equal(call_from(layer, x, state), after_reset)


@pytest.mark.parametrize("name", sorted(HELD))
def test_without_stateful_masks_every_call_draws_new_masks(name):
    cls, kwargs = HELD[name]
    x, state = fixed_inputs()
    layer = stateful_layer(cls, stateful_masks=False, **kwargs)
    state = state[: len(layer.states)]
    first = call_from(layer, x, state)
    assert np.abs(call_from(layer, x, state) - first).max() > 1e-3


def test_held_masks_are_inverted_dropout_masks_of_rate_p_per_sample():
    # Probe: linear gates, the candidate gate reads the input through an
    # identity kernel, f = 0, so every output is `x * m_c` whatever the
    # carried state: the held input mask of the candidate gate.
    rate, batch, units = 0.3, 200, 64
    cell = linear_probe_cell(kr.GalLSTMCell, units, dropout=rate, seed=4)
    layer = kr.RNN(
        cell, return_sequences=True, stateful=True, stateful_masks=True
    )
    x = np.ones((batch, 3, units), "float32")
    layer.build(x.shape)
    cell.set_weights(probe_weights(units, units, "c"))
    chunks = [to_numpy(layer(x, training=True)) for _ in range(3)]
    masks = chunks[0][:, 0, :]
    for chunk in chunks:
        for t in range(3):
            np.testing.assert_array_equal(chunk[:, t, :], masks)
    scale = np.float32(1.0 / (1.0 - rate))
    assert set(np.unique(masks)) == {np.float32(0.0), scale}
    dropped = np.mean(masks == 0)
    assert abs(dropped - rate) < binomial_bound(rate, masks.size)
    # Each sample (sequence) of the batch has its own mask.
    assert len({row.tobytes() for row in masks}) == batch
    layer.reset_states()
    new = to_numpy(layer(x, training=True))[:, 0, :]
    agree = np.mean((new == 0) == (masks == 0))
    expected = rate**2 + (1 - rate) ** 2  # independent masks agree so often
    assert abs(agree - expected) < binomial_bound(expected, masks.size)


def test_per_step_noise_stays_fresh_with_held_masks():
    x, state = fixed_inputs()
    layer = stateful_layer(
        kr.ZoneoutLSTMCell, zoneout_c=0.5, zoneout_h=0.5, dropout=0.3
    )
    first = call_from(layer, x, state)
    assert np.abs(call_from(layer, x, state) - first).max() > 1e-3


def test_inference_is_unchanged_by_held_masks():
    x, state = fixed_inputs()
    held = stateful_layer(kr.GalLSTMCell, dropout=0.4, recurrent_dropout=0.4)
    plain = stateful_layer(
        kr.GalLSTMCell, stateful_masks=False, dropout=0.4, recurrent_dropout=0.4
    )
    plain.set_weights(held.get_weights())
    for layer in (held, plain):
        for variable, value in zip(layer.states, state, strict=True):
            variable.assign(value)
    np.testing.assert_allclose(
        to_numpy(held(x, training=False)),
        to_numpy(plain(x, training=False)),
        atol=1e-6,
    )


def test_fit_holds_the_masks_and_reset_states_draws_new_ones():
    inputs = keras.Input((TIMESTEPS, 3), batch_size=BATCH)
    layer = kr.GalLSTM(
        UNITS,
        dropout=0.3,
        recurrent_dropout=0.3,
        stateful=True,
        stateful_masks=True,
        seed=2,
    )
    model = keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))
    model.compile("sgd", "mse")
    x = np.random.default_rng(1).standard_normal((BATCH * 3, TIMESTEPS, 3))
    y = np.zeros((BATCH * 3, 1))
    held = to_numpy(layer.mask_seed_generator.state).tolist()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert to_numpy(layer.mask_seed_generator.state).tolist() == held
    layer.reset_states()
    assert to_numpy(layer.mask_seed_generator.state).tolist() != held


def test_stateful_masks_round_trip_through_config():
    layer = kr.GalGRU(3, stateful=True, stateful_masks=True)
    config = layer.get_config()
    assert config["stateful_masks"] is True
    assert kr.GalGRU.from_config(config).stateful_masks is True
    rnn = kr.RNN(kr.GalLSTMCell(3), stateful=True, stateful_masks=True)
    assert kr.RNN.from_config(rnn.get_config()).stateful_masks is True
    assert kr.GalLSTM(3).stateful_masks is False


def test_stateful_masks_need_a_stateful_layer():
    with pytest.raises(ValueError, match=r"stateful_masks.*stateful=False"):
        kr.GalLSTM(3, stateful_masks=True)
    with pytest.raises(ValueError, match=r"stateful_masks"):
        kr.RNN(kr.GalLSTMCell(3), stateful_masks=True)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_stateful_masks_must_be_a_bool(value):
    with pytest.raises(TypeError, match=r"`stateful_masks`"):
        kr.GalLSTM(3, stateful=True, stateful_masks=value)
