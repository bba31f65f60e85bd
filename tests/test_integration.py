"""Keras integration of the package's cells on the current backend.

Every cell is used with non-zero rates, so the noise paths (per-sequence
masks and per-step noise) are really exercised: `fit` / `evaluate` /
`predict`, masking, `stateful`, `return_state` and `initial_state`,
`StackedRNNCells`, `Bidirectional`, mixed precision and `jit_compile`.
Run once per backend (`KERAS_BACKEND=tensorflow|jax|torch`).
"""

import keras
import numpy as np
import pytest

import keras_recdrop
from keras_recdrop import _compat

BACKEND = keras.backend.backend()
# With the Keras change proposed in docs/upstream.md, keras.layers.RNN gives
# cells a seed per step and per-step noise works in its lax.scan on JAX.
KERAS_PASSES_STEP_SEEDS = _compat.keras_rnn_passes_step_seeds()

BATCH = 16
SAMPLES = 64
TIMESTEPS = 6
FEATURES = 3
UNITS = 4
EPOCHS = 5
VOCAB = 10

# name -> (cell class, non-zero rates / options)
CELL_CONFIGS = {
    "zoneout": (
        keras_recdrop.ZoneoutLSTMCell,
        {"zoneout_c": 0.5, "zoneout_h": 0.1, "dropout": 0.1},
    ),
    "semeniuta_per_step": (
        keras_recdrop.SemeniutaLSTMCell,
        {"recurrent_dropout": 0.3, "dropout": 0.1, "per_step": True},
    ),
    "semeniuta_per_sequence": (
        keras_recdrop.SemeniutaLSTMCell,
        {"recurrent_dropout": 0.3, "dropout": 0.1, "per_step": False},
    ),
    "gal_untied": (
        keras_recdrop.GalLSTMCell,
        {"dropout": 0.2, "recurrent_dropout": 0.3},
    ),
    "gal_tied": (
        keras_recdrop.GalLSTMCell,
        {"dropout": 0.2, "recurrent_dropout": 0.3, "tied_masks": True},
    ),
}
CELL_NAMES = list(CELL_CONFIGS)
# Configurations that need fresh noise at every time step.
PER_STEP_NOISE = ("zoneout", "semeniuta_per_step")

# One configuration per cell class, for the costlier model tests.
CELL_CLASS_NAMES = ["zoneout", "semeniuta_per_step", "gal_untied"]

# name -> (RNN layer class, unroll)
LAYER_MODES = {
    "recdrop_scan": (keras_recdrop.RNN, False),
    "recdrop_unroll": (keras_recdrop.RNN, True),
    "plain_scan": (keras.layers.RNN, False),
    "plain_unroll": (keras.layers.RNN, True),
}
# Every cell with `keras_recdrop.RNN` (scanned and unrolled) and with plain
# `keras.layers.RNN` (scanned); plain unrolled only for per-step noise,
# where it is the documented alternative on JAX.
FIT_CASES = [
    (cell_name, mode)
    for cell_name in CELL_CONFIGS
    for mode in LAYER_MODES
    if mode != "plain_unroll" or cell_name in PER_STEP_NOISE
]

JAX_SCAN_MESSAGE = r"cannot be drawn inside a JAX `lax\.scan` loop"


# --------------------------------------------------------------- helpers
def make_cell(name, units=UNITS, **overrides):
    cls, kwargs = CELL_CONFIGS[name]
    return cls(units, **{**kwargs, **overrides})


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def regression_data(samples=SAMPLES, timesteps=TIMESTEPS, seed=0):
    """A learnable task: the (scaled) sum over time of the first feature."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (samples, timesteps, FEATURES))
    y = x[:, :, :1].sum(axis=1) / np.sqrt(timesteps)
    return x.astype("float32"), y.astype("float32")


def skip_if_plain_rnn_in_jax_scan(cell_name, layer_cls, unroll):
    if (
        BACKEND == "jax"
        and layer_cls is keras.layers.RNN
        and not unroll
        and cell_name in PER_STEP_NOISE
        and not KERAS_PASSES_STEP_SEEDS
    ):
        pytest.skip(
            "by design: keras.layers.RNN on JAX with unroll=False runs a "
            "lax.scan, where per-step noise cannot be drawn (RuntimeError, "
            "see test_plain_rnn_per_step_noise_raises_in_jax_scan)"
        )


def sequence_regressor(rnn_layer, timesteps=TIMESTEPS):
    return keras.Sequential(
        [
            keras.Input((timesteps, FEATURES)),
            rnn_layer,
            keras.layers.Dense(1),
        ]
    )


def assert_fit_learns(
    model, x, y, epochs=EPOCHS, max_ratio=0.7, **compile_kwargs
):
    """Fits `model` and checks that the loss decreases.

    Then checks that `evaluate` gives a finite loss and that `predict` is
    deterministic (inference uses no noise). Returns the predictions.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(0.02), loss="mse", **compile_kwargs
    )
    before = model.evaluate(x, y, batch_size=BATCH, verbose=0)
    history = model.fit(
        x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0
    )
    losses = history.history["loss"]
    assert len(losses) == epochs
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    after = model.evaluate(x, y, batch_size=BATCH, verbose=0)
    assert np.isfinite(after)
    assert after < max_ratio * before, (before, after)

    first = model.predict(x, batch_size=BATCH, verbose=0)
    second = model.predict(x, batch_size=BATCH, verbose=0)
    samples = len(x[0]) if isinstance(x, list) else len(x)
    assert first.shape == (samples,) + tuple(model.outputs[0].shape[1:])
    assert np.all(np.isfinite(first))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(
        to_numpy(model(x, training=False)), first, atol=1e-5
    )
    return first


def assert_training_is_stochastic(model, x):
    """Two training-mode calls differ: the regularizer's noise is active."""
    first = to_numpy(model(x, training=True))
    second = to_numpy(model(x, training=True))
    assert not np.allclose(first, second)


def padded_ids(lengths, timesteps, seed=0):
    """Token ids in `[1, VOCAB)` followed by trailing zeros (padding)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), timesteps), dtype="int32")
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, VOCAB, size=length)
    return ids


def embedded_rnn_model(embedding, rnn, timesteps):
    """`ids -> Embedding(mask_zero=True) -> rnn`; Keras propagates the mask."""
    ids = keras.Input((timesteps,), dtype="int32")
    return keras.Model(ids, rnn(embedding(ids)))


def branch_models(units=UNITS):
    """One RNN branch per cell configuration on the same input.

    Returns `(regressor, branches, rnns)`: a trainable model whose head
    reads all branches, a model returning every branch's output (same
    layers), and the RNN layers by configuration name.
    """
    inputs = keras.Input((TIMESTEPS, FEATURES))
    rnns = {
        name: keras_recdrop.RNN(make_cell(name, units), name=f"rnn_{name}")
        for name in CELL_NAMES
    }
    outputs = [rnns[name](inputs) for name in CELL_NAMES]
    merged = keras.layers.Concatenate()(outputs)
    head = keras.layers.Dense(1, dtype="float32")(merged)
    return keras.Model(inputs, head), keras.Model(inputs, outputs), rnns


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


@pytest.fixture
def restore_float32_policy():
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


# --------------------------------------------------- fit / evaluate / predict
@pytest.mark.parametrize("cell_name, mode", FIT_CASES)
def test_fit_decreases_loss_and_predict_is_deterministic(cell_name, mode):
    layer_cls, unroll = LAYER_MODES[mode]
    skip_if_plain_rnn_in_jax_scan(cell_name, layer_cls, unroll)
    x, y = regression_data()
    model = sequence_regressor(layer_cls(make_cell(cell_name), unroll=unroll))
    assert_fit_learns(model, x, y)
    assert_training_is_stochastic(model, x[:BATCH])


@pytest.mark.parametrize("cell_name", PER_STEP_NOISE)
def test_plain_unrolled_rnn_after_trainable_layer_fits(cell_name):
    # Unrolled, plain keras.layers.RNN draws per-step noise in the loop,
    # which is documented to work on every backend, also when the RNN's
    # input depends on trainable weights (here a Dense layer).
    x, y = regression_data()
    model = keras.Sequential(
        [
            keras.Input((TIMESTEPS, FEATURES)),
            keras.layers.Dense(FEATURES),
            keras.layers.RNN(make_cell(cell_name), unroll=True),
            keras.layers.Dense(1),
        ]
    )
    assert_fit_learns(model, x, y)


def test_plain_rnn_per_step_noise_raises_in_jax_scan():
    if BACKEND != "jax":
        pytest.skip("the lax.scan restriction only exists on JAX")
    if KERAS_PASSES_STEP_SEEDS:
        pytest.skip(
            f"Keras {keras.__version__} passes per-step seeds, which lifts "
            "the restriction (tests/test_keras_step_seeds.py)"
        )
    x, y = regression_data(samples=BATCH)
    for cell_name in PER_STEP_NOISE:
        model = sequence_regressor(keras.layers.RNN(make_cell(cell_name)))
        model.compile(optimizer="adam", loss="mse")
        with pytest.raises(RuntimeError, match=JAX_SCAN_MESSAGE) as info:
            model.fit(x, y, epochs=1, verbose=0)
        message = str(info.value)
        assert type(model.layers[0].cell).__name__ in message
        assert "keras_recdrop.RNN" in message
        assert "unroll=True" in message
        # A fresh model (the Keras JAX trainer leaves a model whose `fit`
        # raised with its variables purged, whatever the exception).
        model = sequence_regressor(keras.layers.RNN(make_cell(cell_name)))
        with pytest.raises(RuntimeError, match=JAX_SCAN_MESSAGE):
            model(x, training=True)
        # Inference needs no noise, so it works in the scan.
        assert np.all(np.isfinite(model.predict(x, verbose=0)))
        # Gal-style per-sequence masks are drawn before the loop: fine.
        gal = sequence_regressor(keras.layers.RNN(make_cell("gal_untied")))
        assert np.all(np.isfinite(to_numpy(gal(x, training=True))))


# ----------------------------------------------------------------- masking
@pytest.mark.parametrize("unroll", [False, True], ids=["scan", "unroll"])
@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_trailing_padding_matches_unpadded_sequence(cell_name, unroll):
    timesteps = 8
    lengths = [3, 5, 8]
    ids = padded_ids(lengths, timesteps)
    embedding = keras.layers.Embedding(VOCAB, FEATURES, mask_zero=True)
    rnn = keras_recdrop.RNN(
        make_cell(cell_name),
        return_sequences=True,
        return_state=True,
        unroll=unroll,
    )
    padded = embedded_rnn_model(embedding, rnn, timesteps)
    outputs, h, c = (to_numpy(t) for t in padded(ids, training=False))
    for row, length in enumerate(lengths):
        unpadded = embedded_rnn_model(embedding, rnn, length)
        ref_outputs, ref_h, ref_c = (
            to_numpy(t)
            for t in unpadded(ids[row : row + 1, :length], training=False)
        )
        np.testing.assert_allclose(
            outputs[row, :length], ref_outputs[0], atol=1e-5
        )
        np.testing.assert_allclose(h[row], ref_h[0], atol=1e-5)
        np.testing.assert_allclose(c[row], ref_c[0], atol=1e-5)
        # After the last real step the output is carried, not recomputed.
        np.testing.assert_array_equal(
            outputs[row, length:],
            np.broadcast_to(
                outputs[row, length - 1], (timesteps - length,) + h[row].shape
            ),
        )


@pytest.mark.parametrize("unroll", [False, True], ids=["scan", "unroll"])
@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_masked_steps_leave_state_unchanged(cell_name, unroll):
    timesteps = 8
    lengths = [3, 5, 8, 0]  # the last row is padding only
    ids = padded_ids(lengths, timesteps)
    rng = np.random.default_rng(1)
    h0 = rng.normal(size=(len(lengths), UNITS)).astype("float32")
    c0 = rng.normal(size=(len(lengths), UNITS)).astype("float32")
    embedding = keras.layers.Embedding(VOCAB, FEATURES, mask_zero=True)
    rnn = keras_recdrop.RNN(
        make_cell(cell_name),
        return_sequences=True,
        return_state=True,
        unroll=unroll,
    )
    # The mask is passed explicitly: Keras only propagates a mask
    # implicitly to a call with a single tensor argument, and
    # `initial_state` is a second one (true of `keras.layers.LSTM` too).
    mask = embedding.compute_mask(ids)
    outputs, h, c = (
        to_numpy(t)
        for t in rnn(
            embedding(ids),
            initial_state=[h0, c0],
            mask=mask,
            training=True,
        )
    )
    for row, length in enumerate(lengths[:-1]):
        last = outputs[row, length - 1]
        # h is the output of the last real step, carried through padding.
        np.testing.assert_array_equal(h[row], last)
        for step in range(length, timesteps):
            np.testing.assert_array_equal(outputs[row, step], last)
    # A fully masked sequence keeps its initial state exactly.
    np.testing.assert_array_equal(h[-1], h0[-1])
    np.testing.assert_array_equal(c[-1], c0[-1])
    # Real steps did change the state.
    assert not np.allclose(h[:-1], h0[:-1])
    assert not np.allclose(c[:-1], c0[:-1])
    assert np.all(np.isfinite(outputs))


# ---------------------------------------------------------------- stateful
@pytest.mark.parametrize("unroll", [False, True], ids=["scan", "unroll"])
@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_stateful_halves_equal_whole_sequence(cell_name, unroll):
    timesteps = 12
    half = timesteps // 2
    x, _ = regression_data(samples=8, timesteps=timesteps)
    rnn = keras_recdrop.RNN(
        make_cell(cell_name),
        stateful=True,
        return_sequences=True,
        unroll=unroll,
    )
    whole = to_numpy(rnn(x, training=False))
    state_after_whole = [to_numpy(s) for s in rnn.states]

    rnn.reset_states()
    for state in rnn.states:
        np.testing.assert_array_equal(to_numpy(state), 0.0)
    first = to_numpy(rnn(x[:, :half], training=False))
    second = to_numpy(rnn(x[:, half:], training=False))
    np.testing.assert_allclose(
        np.concatenate([first, second], axis=1), whole, atol=1e-6
    )
    for state, expected in zip(rnn.states, state_after_whole, strict=True):
        np.testing.assert_allclose(to_numpy(state), expected, atol=1e-6)

    # Without a reset, the state carries on: the second half is not the
    # same as a fresh start on it.
    rnn.reset_states()
    fresh_second = to_numpy(rnn(x[:, half:], training=False))
    assert not np.allclose(fresh_second, second)
    # After a reset, the first half is reproduced exactly.
    rnn.reset_states()
    np.testing.assert_allclose(
        to_numpy(rnn(x[:, :half], training=False)), first, atol=1e-6
    )
    # A training call runs on the stateful layer and updates the state.
    before = [to_numpy(s) for s in rnn.states]
    rnn(x[:, half:], training=True)
    after = [to_numpy(s) for s in rnn.states]
    assert not np.allclose(before[0], after[0])
    assert np.all(np.isfinite(after[0])) and np.all(np.isfinite(after[1]))


# --------------------------------------------- return_state / initial_state
@pytest.mark.parametrize("cell_name", CELL_NAMES)
def test_return_state_gives_output_h_and_c(cell_name):
    x, _ = regression_data(samples=BATCH)
    rnn = keras_recdrop.RNN(make_cell(cell_name), return_state=True)
    for training in (False, True):
        result = rnn(x, training=training)
        assert isinstance(result, (list, tuple))
        assert len(result) == 3
        output, h, c = (to_numpy(t) for t in result)
        for tensor in (output, h, c):
            assert tensor.shape == (BATCH, UNITS)
        # The output of an LSTM is its hidden state.
        np.testing.assert_array_equal(output, h)
        assert not np.allclose(h, c)

    sequences = keras_recdrop.RNN(
        make_cell(cell_name), return_sequences=True, return_state=True
    )
    output, h, c = (to_numpy(t) for t in sequences(x, training=False))
    assert output.shape == (BATCH, TIMESTEPS, UNITS)
    assert h.shape == c.shape == (BATCH, UNITS)
    np.testing.assert_array_equal(output[:, -1], h)


@pytest.mark.parametrize("cell_name", CELL_CLASS_NAMES)
def test_encoder_decoder_with_plain_lstm_initial_state_fits(cell_name):
    x_enc, y = regression_data(seed=0)
    x_dec, _ = regression_data(seed=1)
    enc_in = keras.Input((TIMESTEPS, FEATURES))
    dec_in = keras.Input((TIMESTEPS, FEATURES))
    _, h, c = keras.layers.LSTM(UNITS, return_state=True)(enc_in)
    decoder = keras_recdrop.RNN(make_cell(cell_name), name="decoder")
    decoded = decoder(dec_in, initial_state=[h, c])
    model = keras.Model([enc_in, dec_in], keras.layers.Dense(1)(decoded))
    # The target depends on the encoder input only: it must flow through
    # the initial state into the decoder.
    # Harder (through two recurrent layers): more epochs, looser bound.
    predictions = assert_fit_learns(
        model, [x_enc, x_dec], y, epochs=2 * EPOCHS, max_ratio=0.85
    )
    shuffled = model.predict([x_enc[::-1], x_dec], batch_size=BATCH, verbose=0)
    assert not np.allclose(shuffled, predictions)


# -------------------------------------------- StackedRNNCells / Bidirectional
@pytest.mark.parametrize(
    "lower, upper",
    [
        ("zoneout", "semeniuta_per_step"),
        ("semeniuta_per_sequence", "gal_untied"),
        ("gal_tied", "zoneout"),
    ],
)
def test_stacked_cells_fit_and_predict(lower, upper):
    x, y = regression_data()
    stack = keras.layers.StackedRNNCells(
        [make_cell(lower), make_cell(upper, units=UNITS + 1)]
    )
    rnn = keras_recdrop.RNN(stack, return_state=True)
    inputs = keras.Input((TIMESTEPS, FEATURES))
    output, *states = rnn(inputs)
    # One [h, c] pair per stacked cell.
    assert [tuple(s.shape) for s in keras.tree.flatten(states)] == [
        (None, UNITS),
        (None, UNITS),
        (None, UNITS + 1),
        (None, UNITS + 1),
    ]
    model = keras.Model(inputs, keras.layers.Dense(1)(output))
    predictions = assert_fit_learns(model, x, y)
    assert predictions.shape == (SAMPLES, 1)
    assert_training_is_stochastic(model, x[:BATCH])


@pytest.mark.parametrize("cell_name", CELL_CLASS_NAMES)
def test_bidirectional_fit_and_predict(cell_name):
    x, y = regression_data()
    bidirectional = keras.layers.Bidirectional(
        keras_recdrop.RNN(make_cell(cell_name))
    )
    model = sequence_regressor(bidirectional)
    assert isinstance(bidirectional.backward_layer, keras_recdrop.RNN)
    assert bidirectional.backward_layer.go_backwards
    assert bidirectional.compute_output_shape((None, TIMESTEPS, FEATURES)) == (
        None,
        2 * UNITS,
    )
    predictions = assert_fit_learns(model, x, y)
    assert predictions.shape == (SAMPLES, 1)
    assert_training_is_stochastic(model, x[:BATCH])


# ----------------------------------------------------------- mixed precision
@pytest.mark.parametrize(
    "policy, atol",
    [("mixed_float16", 1e-2), ("mixed_bfloat16", 5e-2)],
    ids=["float16", "bfloat16"],
)
def test_mixed_precision_trains_and_matches_float32(
    policy, atol, restore_float32_policy
):
    x, y = regression_data()
    keras.mixed_precision.set_global_policy("float32")
    reference, reference_branches, _ = branch_models()
    keras.mixed_precision.set_global_policy(policy)
    compute_dtype = keras.mixed_precision.dtype_policy().compute_dtype
    model, branches, rnns = branch_models()
    model.set_weights(reference.get_weights())

    for name, rnn in rnns.items():
        assert rnn.cell.compute_dtype == compute_dtype, name
        assert rnn.cell.variable_dtype == "float32", name
        for training in (True, False):
            output = rnn(x[:BATCH], training=training)
            dtype = keras.backend.standardize_dtype(output.dtype)
            assert dtype == compute_dtype, (name, training, dtype)

    expected = reference_branches.predict(x, batch_size=BATCH, verbose=0)
    actual = branches.predict(x, batch_size=BATCH, verbose=0)
    for name, want, got in zip(CELL_NAMES, expected, actual, strict=True):
        assert keras.backend.standardize_dtype(got.dtype) == compute_dtype
        np.testing.assert_allclose(
            got.astype("float32"), want, atol=atol, err_msg=name
        )

    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    history = model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"])), history.history
    assert np.all(np.isfinite(model.predict(x, batch_size=BATCH, verbose=0)))


# ------------------------------------------------------------- jit_compile
@pytest.mark.parametrize("cell_name", CELL_CLASS_NAMES)
def test_jit_compiled_fit_decreases_loss(cell_name):
    if BACKEND == "torch":
        pytest.skip(
            "jit_compile=True means torch.compile on the torch backend, "
            "which keras does not use by default; the eager torch path is "
            "covered by the other fit tests"
        )
    x, y = regression_data()
    model = sequence_regressor(keras_recdrop.RNN(make_cell(cell_name)))
    assert_fit_learns(model, x, y, jit_compile=True)
    assert model.jit_compile is True
