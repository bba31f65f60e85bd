"""Keras integration of the GRU cells and DropConnect: masking, stateful,
return_state, fit and mixed precision (the LSTM cells: test_integration)."""

import keras
import numpy as np
import pytest

import keras_recdrop as kr

CONFIGS = {
    "gru_zoneout": (kr.ZoneoutGRUCell, dict(zoneout_h=0.3, dropout=0.1)),
    "gru_semeniuta": (kr.SemeniutaGRUCell, dict(recurrent_dropout=0.3)),
    "gru_semeniuta_seq_reset_before": (
        kr.SemeniutaGRUCell,
        dict(recurrent_dropout=0.3, per_step=False, reset_after=False),
    ),
    "gru_gal": (kr.GalGRUCell, dict(dropout=0.2, recurrent_dropout=0.3)),
    "weight_drop": (kr.WeightDropLSTMCell, dict(weight_dropout=0.4)),
}
NAMES = list(CONFIGS)
VOCAB, FEATURES, UNITS = 10, 3, 4


def make_cell(name):
    cls, kwargs = CONFIGS[name]
    return cls(UNITS, seed=5, **kwargs)


def n_states(name):
    return 2 if name == "weight_drop" else 1


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def padded_ids(lengths, timesteps):
    rng = np.random.RandomState(0)
    ids = np.zeros((len(lengths), timesteps), "int32")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.randint(1, VOCAB, size=length)
    return ids


@pytest.mark.parametrize("unroll", [False, True], ids=["scan", "unroll"])
@pytest.mark.parametrize("name", NAMES)
def test_trailing_padding_matches_unpadded_sequence(name, unroll):
    timesteps, lengths = 7, [2, 5, 7]
    ids = padded_ids(lengths, timesteps)
    embedding = keras.layers.Embedding(VOCAB, FEATURES, mask_zero=True)
    rnn = kr.RNN(make_cell(name), return_sequences=True, unroll=unroll)
    padded = to_numpy(rnn(embedding(ids), mask=embedding.compute_mask(ids)))
    for row, length in enumerate(lengths):
        alone = to_numpy(rnn(embedding(ids[row : row + 1, :length])))
        np.testing.assert_allclose(padded[row, :length], alone[0], atol=1e-5)
        np.testing.assert_array_equal(
            padded[row, length:],
            np.broadcast_to(
                padded[row, length - 1], (timesteps - length, UNITS)
            ),
        )


@pytest.mark.parametrize("name", NAMES)
def test_masked_steps_leave_state_unchanged_in_training(name):
    timesteps, lengths = 6, [3, 6, 0]
    ids = padded_ids(lengths, timesteps)
    embedding = keras.layers.Embedding(VOCAB, FEATURES, mask_zero=True)
    rnn = kr.RNN(make_cell(name), return_sequences=True, return_state=True)
    rng = np.random.RandomState(1)
    initial = [
        rng.randn(len(lengths), UNITS).astype("float32")
        for _ in range(n_states(name))
    ]
    out = [
        to_numpy(t)
        for t in rnn(
            embedding(ids),
            initial_state=initial,
            mask=embedding.compute_mask(ids),
            training=True,
        )
    ]
    outputs, states = out[0], out[1:]
    assert len(states) == n_states(name)
    for state, start in zip(states, initial, strict=True):
        np.testing.assert_array_equal(state[-1], start[-1])  # all padding
    np.testing.assert_array_equal(states[0][0], outputs[0, 2])
    for step in range(3, timesteps):
        np.testing.assert_array_equal(outputs[0, step], outputs[0, 2])


@pytest.mark.parametrize("name", NAMES)
def test_stateful_halves_equal_whole_sequence(name):
    x = np.random.RandomState(2).randn(4, 8, FEATURES).astype("float32")
    whole = kr.RNN(make_cell(name), return_sequences=True)
    whole.build(x.shape)
    halves = kr.RNN(make_cell(name), return_sequences=True, stateful=True)
    halves.build(x.shape)
    halves.set_weights(whole.get_weights())
    expected = to_numpy(whole(x))
    got = np.concatenate(
        [to_numpy(halves(x[:, :4])), to_numpy(halves(x[:, 4:]))], axis=1
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)
    halves.reset_states()
    np.testing.assert_allclose(
        to_numpy(halves(x[:, :4])), expected[:, :4], atol=1e-5
    )


@pytest.mark.parametrize("unroll", [False, True], ids=["scan", "unroll"])
@pytest.mark.parametrize("name", NAMES)
def test_fit_decreases_loss_and_predict_is_deterministic(name, unroll):
    rng = np.random.RandomState(3)
    x = rng.randn(64, 6, FEATURES).astype("float32")
    y = x[:, :, :1].sum(axis=1) / 3.0
    model = keras.Sequential(
        [
            keras.Input((6, FEATURES)),
            kr.RNN(make_cell(name), unroll=unroll),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(0.03), "mse")
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(first, model.predict(x, verbose=0))
    assert np.isfinite(model.evaluate(x, y, verbose=0))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_family_trains_under_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        x = np.random.RandomState(4).randn(8, 5, FEATURES).astype("float32")
        inp = keras.Input((5, FEATURES))
        branches = [kr.RNN(make_cell(name))(inp) for name in NAMES]
        out = keras.layers.Dense(1, dtype="float32")(
            keras.layers.Concatenate()(branches)
        )
        model = keras.Model(inp, out)
        model.compile("adam", "mse")
        history = model.fit(x, np.zeros((8, 1)), epochs=2, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        rnn = kr.RNN(make_cell("gru_zoneout"), return_sequences=True)
        assert (
            keras.backend.standardize_dtype(rnn(x, training=True).dtype)
            == policy.split("_")[1]
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
