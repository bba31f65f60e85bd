"""`keras_recdrop.RNN`'s loop: what it moves out of the time loop.

Two things happen before the loop that a plain `keras.layers.RNN` does
inside it or not at all: the input half of every gate, `(x_t * m_k) W_k`,
is computed for the whole sequence at once, and no mask is drawn for a call
at inference. Both must leave the computed function unchanged.
"""

import keras
import numpy as np
import pytest
from probes import to_numpy

import keras_recdrop as kr

# Cells whose noise is all per-sequence: a plain `keras.layers.RNN` draws
# the very same masks from the same seed, so outputs must match exactly.
PER_SEQUENCE_CONFIGS = {
    "gal_lstm": (kr.GalLSTMCell, dict(dropout=0.3, recurrent_dropout=0.4)),
    "gal_lstm_tied": (
        kr.GalLSTMCell,
        dict(dropout=0.3, recurrent_dropout=0.4, tied_masks=True),
    ),
    "semeniuta_lstm_seq": (
        kr.SemeniutaLSTMCell,
        dict(dropout=0.3, recurrent_dropout=0.4, per_step=False),
    ),
    "weight_drop_lstm": (
        kr.WeightDropLSTMCell,
        dict(dropout=0.3, weight_dropout=0.5),
    ),
    "gal_gru": (kr.GalGRUCell, dict(dropout=0.3, recurrent_dropout=0.4)),
    "gal_gru_reset_before": (
        kr.GalGRUCell,
        dict(dropout=0.3, recurrent_dropout=0.4, reset_after=False),
    ),
    "gal_gru_tied": (
        kr.GalGRUCell,
        dict(dropout=0.3, recurrent_dropout=0.4, tied_masks=True),
    ),
}


def _inputs(batch=6, timesteps=5, features=3):
    rng = np.random.RandomState(3)
    return rng.randn(batch, timesteps, features).astype("float32")


def _weights_of(cell_layer, seed=0):
    rng = np.random.RandomState(seed)
    return [
        rng.uniform(-0.5, 0.5, w.shape).astype("float32")
        for w in cell_layer.get_weights()
    ]


def _run(layer_cls, cell, x, weights, training, **kwargs):
    layer = layer_cls(cell, return_sequences=True, **kwargs)
    layer.build(x.shape)
    layer.cell.set_weights(weights)
    return to_numpy(layer(x, training=training))


@pytest.mark.parametrize("implementation", [1, 2])
@pytest.mark.parametrize("name", sorted(PER_SEQUENCE_CONFIGS))
def test_input_products_taken_out_of_the_loop_equal_the_per_step_products(
    name, implementation
):
    """Same seed, same masks: hoisted and per-step products agree."""
    cls, kwargs = PER_SEQUENCE_CONFIGS[name]
    x = _inputs()
    probe = keras.layers.RNN(cls(4, **kwargs))
    probe.build(x.shape)
    weights = _weights_of(probe.cell)

    def cell():
        return cls(4, seed=11, implementation=implementation, **kwargs)

    hoisted = _run(kr.RNN, cell(), x, weights, training=True)
    per_step = _run(keras.layers.RNN, cell(), x, weights, training=True)
    no_noise = _run(keras.layers.RNN, cell(), x, weights, training=False)
    np.testing.assert_allclose(hoisted, per_step, atol=1e-5)
    # The comparison is between noisy outputs, not two plain LSTMs/GRUs.
    assert np.abs(hoisted - no_noise).max() > 1e-3


@pytest.mark.parametrize("go_backwards", [False, True])
def test_hoisted_inputs_respect_masking_and_direction(go_backwards):
    """Padded steps and reversed reading see the right projected rows."""
    cls, kwargs = PER_SEQUENCE_CONFIGS["gal_lstm"]
    x = _inputs(batch=4, timesteps=6)
    mask = np.ones((4, 6), dtype=bool)
    mask[:, 4:] = False
    mask[1, 2:] = False
    layers = []
    for layer_cls in (kr.RNN, keras.layers.RNN):
        layer = layer_cls(
            cls(4, seed=3, **kwargs),
            return_sequences=True,
            go_backwards=go_backwards,
        )
        layer.build(x.shape)
        layers.append(layer)
    hoisted_layer, plain_layer = layers
    weights = _weights_of(plain_layer.cell, seed=5)
    for layer in layers:
        layer.cell.set_weights(weights)
    # `keras_recdrop.RNN` derives a backward stream from the seed: give the
    # plain layer's cell the same stream, so both draw the same masks.
    plain_layer.cell.seed_generator.state.assign(
        hoisted_layer.cell.seed_generator.state.value
    )
    hoisted = to_numpy(hoisted_layer(x, mask=mask, training=True))
    plain = to_numpy(plain_layer(x, mask=mask, training=True))
    np.testing.assert_allclose(hoisted, plain, atol=1e-5)
    inference = to_numpy(plain_layer(x, mask=mask, training=False))
    assert np.abs(hoisted - inference).max() > 1e-3
    np.testing.assert_allclose(
        to_numpy(hoisted_layer(x, mask=mask, training=False)),
        inference,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (kr.GalLSTMCell, dict(dropout=0.5, recurrent_dropout=0.5)),
        (kr.ZoneoutLSTMCell, dict(zoneout_c=0.5, dropout=0.5)),
        (kr.WeightDropLSTMCell, dict(weight_dropout=0.5, dropout=0.5)),
        (kr.GalGRUCell, dict(dropout=0.5, recurrent_dropout=0.5)),
    ],
)
def test_inference_draws_nothing_from_the_seed_stream(cls, kwargs):
    """A call at `training=False` leaves the seed generator untouched.

    Keras's `RNN` draws the per-sequence masks before its loop whatever the
    mode; unused at inference, they would still advance the stream and put
    random ops in inference graphs.
    """
    x = _inputs()
    layer = kr.RNN(cls(4, seed=7, **kwargs))
    layer(x, training=False)  # builds

    def state():
        return keras.ops.convert_to_numpy(layer.cell.seed_generator.state)

    before = state()
    layer(x, training=False)
    np.testing.assert_array_equal(state(), before)
    layer(x, training=True)
    assert not np.array_equal(state(), before)
