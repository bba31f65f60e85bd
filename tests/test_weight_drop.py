"""WeightDropLSTMCell: DropConnect on the recurrent kernel (AWD-LSTM)."""

import keras
import numpy as np
import pytest
from probes import binomial_bound
from probes import loss_and_gradients
from probes import reference_fused_lstm
from probes import to_numpy

import keras_recdrop as kr


def lstm_weights(input_dim, units, seed=0):
    rng = np.random.RandomState(seed)
    return [
        rng.uniform(-0.5, 0.5, (input_dim, 4 * units)).astype("float32"),
        rng.uniform(-0.5, 0.5, (units, 4 * units)).astype("float32"),
        rng.uniform(-0.5, 0.5, (4 * units,)).astype("float32"),
    ]


def _exposed_weight_masks(units=16, copies=2, timesteps=2, rate=0.5, seed=3):
    """Linear probe: f = 0, i = o = 1, U_c = ones, so h_t = h_{t-1} M_c.

    With h_0 = the identity (one row per unit, repeated `copies` times),
    row j of h_1 is row j of the weight mask of the candidate block.
    """
    cell = kr.WeightDropLSTMCell(
        units,
        weight_dropout=rate,
        seed=seed,
        activation=None,
        recurrent_activation=None,
    )
    layer = kr.RNN(cell, return_sequences=True)
    batch = units * copies
    x = np.zeros((batch, timesteps, units), "float32")
    layer.build(x.shape)
    recurrent = np.zeros((units, 4 * units), "float32")
    recurrent[:, 2 * units : 3 * units] = 1.0
    bias = np.zeros(4 * units, "float32")
    bias[:units] = 1.0
    bias[3 * units :] = 1.0
    cell.set_weights([np.zeros((units, 4 * units), "float32"), recurrent, bias])
    h0 = np.tile(np.eye(units, dtype="float32"), (copies, 1))
    c0 = np.zeros_like(h0)

    def call():
        return to_numpy(layer(x, initial_state=[h0, c0], training=True))

    return call


def test_weight_mask_is_scaled_shared_by_batch_and_steps_fresh_per_call():
    call = _exposed_weight_masks()
    h = call()
    units = h.shape[-1]
    mask = h[:units, 0]
    assert set(np.unique(mask)) == {0.0, 2.0}
    assert abs(np.mean(mask == 0) - 0.5) < binomial_bound(0.5, mask.size)
    np.testing.assert_array_equal(h[units:, 0], mask)  # same for the batch
    np.testing.assert_allclose(h[:units, 1], mask @ mask, rtol=1e-6)  # steps
    assert np.mean(call()[:units, 0] != mask) > 0.3  # fresh per call


@pytest.mark.parametrize("implementation", [1, 2])
def test_weight_drop_at_zero_rate_and_inference_is_keras_lstm(implementation):
    x = np.random.RandomState(1).randn(6, 5, 3).astype("float32")
    weights = lstm_weights(3, 4)
    reference = keras.layers.LSTM(4, return_sequences=True)
    reference.build(x.shape)
    reference.set_weights(weights)
    expected = to_numpy(reference(x))
    for rate, training in ((0.0, True), (0.5, False)):
        cell = kr.WeightDropLSTMCell(
            4, weight_dropout=rate, implementation=implementation
        )
        layer = kr.RNN(cell, return_sequences=True)
        layer.build(x.shape)
        cell.set_weights(weights)
        np.testing.assert_allclose(
            to_numpy(layer(x, training=training)), expected, atol=1e-5
        )


def test_weight_drop_modes_give_same_outputs_and_gradients():
    x = np.random.RandomState(1).randn(8, 6, 3).astype("float32")
    weights = lstm_weights(3, 4)
    results = []
    for implementation in (1, 2):
        cell = kr.WeightDropLSTMCell(
            4,
            weight_dropout=0.4,
            dropout=0.2,
            implementation=implementation,
            seed=4,
        )
        inp = keras.Input(x.shape[1:], batch_size=8)
        model = keras.Model(inp, kr.RNN(cell, return_sequences=True)(inp))
        cell.set_weights(weights)
        results.append(loss_and_gradients(model, x))
    (y1, g1), (y2, g2) = results
    np.testing.assert_allclose(y1, y2, atol=1e-5)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_weight_drop_in_plain_keras_rnn_draws_mask_before_the_loop():
    x = np.random.RandomState(2).randn(4, 6, 3).astype("float32")
    inp = keras.Input(x.shape[1:])
    layer = keras.layers.RNN(kr.WeightDropLSTMCell(4, weight_dropout=0.5))
    model = keras.Model(inp, keras.layers.Dense(1)(layer(inp)))
    model.compile("adam", "mse")
    history = model.fit(x, np.zeros((4, 1)), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_weight_drop_config_round_trip_and_bad_rate():
    cell = kr.WeightDropLSTMCell(4, weight_dropout=0.3, dropout=0.1, seed=2)
    clone = kr.WeightDropLSTMCell.from_config(cell.get_config())
    assert clone.get_config() == cell.get_config()
    with pytest.raises(ValueError, match="`weight_dropout`"):
        kr.WeightDropLSTMCell(4, weight_dropout=1.0)
    with pytest.raises(TypeError, match="`weight_dropout`"):
        kr.WeightDropLSTMCell(4, weight_dropout="0.5")


# ------------------------------------------- DropConnect on a fused kernel
@pytest.fixture
def fused_lstm_spy(monkeypatch):
    """Records what the cells hand to the backend's fused LSTM kernel.

    The layers ask for it with `use_cudnn=True`.

    On PyTorch the real kernel runs (Keras's fused CPU kernel); TensorFlow
    and JAX have none on a CPU, so `reference_fused_lstm` stands in, as
    cuDNN would on a GPU.
    """
    from keras_recdrop import _compat

    real = _compat.fused_lstm
    kernel = real if keras.backend.backend() == "torch" else None
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return (kernel or reference_fused_lstm)(*args, **kwargs)

    monkeypatch.setattr(_compat, "fused_lstm", spy)
    return calls


def _weight_drop_model(use_cudnn, x, weights, seed=6, **kwargs):
    inputs = keras.Input(x.shape[1:], batch_size=x.shape[0])
    layer = kr.WeightDropLSTM(
        4,
        weight_dropout=0.4,
        seed=seed,
        use_cudnn=use_cudnn,
        return_sequences=True,
        **kwargs,
    )
    model = keras.Model(inputs, layer(inputs))
    layer.cell.set_weights(weights)
    return model, layer


def test_dropconnect_training_runs_the_fused_kernel_on_the_masked_kernel(
    fused_lstm_spy,
):
    x = np.random.RandomState(3).randn(5, 7, 3).astype("float32")
    weights = lstm_weights(3, 4)
    model, layer = _weight_drop_model(True, x, weights)
    model(x, training=True)
    assert len(fused_lstm_spy) == 1
    masked = to_numpy(fused_lstm_spy[0]["recurrent_kernel"])
    # Exactly the recurrent kernel times one mask of {0, 1/(1-p)}.
    ratio = masked / weights[1]
    dropped = ratio == 0.0
    np.testing.assert_allclose(ratio[~dropped], 1.0 / 0.6, rtol=1e-6)
    assert abs(dropped.mean() - 0.4) < binomial_bound(0.4, masked.size)
    np.testing.assert_array_equal(
        to_numpy(fused_lstm_spy[0]["kernel"]), weights[0]
    )


def test_fused_dropconnect_equals_the_loop_outputs_and_gradients(
    fused_lstm_spy,
):
    x = np.random.RandomState(4).randn(6, 9, 3).astype("float32")
    weights = lstm_weights(3, 4, seed=2)
    fused, _ = _weight_drop_model(True, x, weights)
    loop, _ = _weight_drop_model(False, x, weights)
    # The same seed draws the same weight mask on both paths.
    y_fused, g_fused = loss_and_gradients(fused, x)
    assert len(fused_lstm_spy) >= 1
    calls = len(fused_lstm_spy)
    y_loop, g_loop = loss_and_gradients(loop, x)
    assert len(fused_lstm_spy) == calls  # the loop took no fused kernel
    np.testing.assert_allclose(y_fused, y_loop, atol=1e-5)
    for a, b in zip(g_fused, g_loop, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_dropconnect_with_input_dropout_runs_the_loop(
    fused_lstm_spy,
):
    x = np.random.RandomState(5).randn(4, 5, 3).astype("float32")
    weights = lstm_weights(3, 4)
    model, _ = _weight_drop_model("auto", x, weights, dropout=0.3)
    model(x, training=True)
    assert fused_lstm_spy == []


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="PyTorch's fused CPU kernel is the one that trains slowly",
)
def test_on_pytorch_cpu_dropconnect_trains_in_the_loop_and_infers_fused(
    fused_lstm_spy,
):
    # Keras's fused CPU kernel on PyTorch has a backward pass quadratic in
    # the length: with use_cudnn="auto" training takes the package's loop,
    # inference the fused kernel.
    x = np.random.RandomState(6).randn(4, 5, 3).astype("float32")
    model, _ = _weight_drop_model("auto", x, lstm_weights(3, 4))
    model(x, training=True)
    assert fused_lstm_spy == []
    model(x, training=False)
    assert len(fused_lstm_spy) == 1
