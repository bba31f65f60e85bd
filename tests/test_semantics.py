"""The cells' semantics, proven with probes, parity checks and statistics."""

import keras
import numpy as np
import pytest
from probes import binomial_bound
from probes import exposed_gate_mask
from probes import linear_probe_cell
from probes import loss_and_gradients
from probes import probe_weights
from probes import run_rnn
from probes import to_numpy
from probes import zoneout_h_decisions

import keras_recdrop as kr

GATES = "ifco"

# Every cell with every option that changes its noise, at non-zero rates.
NOISY_CONFIGS = {
    "zoneout": (kr.ZoneoutLSTMCell, dict(zoneout_c=0.5, zoneout_h=0.3)),
    "zoneout_all": (
        kr.ZoneoutLSTMCell,
        dict(zoneout_c=0.5, zoneout_h=0.3, dropout=0.2, recurrent_dropout=0.2),
    ),
    "semeniuta_step": (
        kr.SemeniutaLSTMCell,
        dict(recurrent_dropout=0.4, dropout=0.2),
    ),
    "semeniuta_seq": (
        kr.SemeniutaLSTMCell,
        dict(recurrent_dropout=0.4, dropout=0.2, per_step=False),
    ),
    "gal": (kr.GalLSTMCell, dict(dropout=0.3, recurrent_dropout=0.4)),
    "gal_tied": (
        kr.GalLSTMCell,
        dict(dropout=0.3, recurrent_dropout=0.4, tied_masks=True),
    ),
}


def random_lstm_weights(input_dim, units, seed=0):
    rng = np.random.RandomState(seed)
    return [
        rng.uniform(-0.5, 0.5, (input_dim, 4 * units)).astype("float32"),
        rng.uniform(-0.5, 0.5, (units, 4 * units)).astype("float32"),
        rng.uniform(-0.5, 0.5, (4 * units,)).astype("float32"),
    ]


def random_inputs(batch=6, timesteps=5, features=3, seed=1):
    return (
        np.random.RandomState(seed)
        .randn(batch, timesteps, features)
        .astype("float32")
    )


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize(
    "cls", [kr.ZoneoutLSTMCell, kr.SemeniutaLSTMCell, kr.GalLSTMCell]
)
@pytest.mark.parametrize("implementation", [1, 2])
def test_zero_rates_equal_keras_lstm_cell(cls, implementation):
    x = random_inputs()
    weights = random_lstm_weights(3, 4)
    reference = keras.layers.RNN(
        keras.layers.LSTMCell(4), return_sequences=True, return_state=True
    )
    reference.build(x.shape)
    reference.cell.set_weights(weights)
    expected = [to_numpy(t) for t in reference(x, training=True)]
    for rnn_cls in (kr.RNN, keras.layers.RNN):
        layer = rnn_cls(
            cls(4, implementation=implementation),
            return_sequences=True,
            return_state=True,
        )
        layer.build(x.shape)
        layer.cell.set_weights(weights)
        for training in (True, False):
            got = [to_numpy(t) for t in layer(x, training=training)]
            for g, e in zip(got, expected, strict=True):
                np.testing.assert_allclose(g, e, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["semeniuta_step", "semeniuta_seq", "gal", "gal_tied"]
)
def test_inference_with_rates_is_a_plain_lstm(name):
    cls, kwargs = NOISY_CONFIGS[name]
    x = random_inputs()
    weights = random_lstm_weights(3, 4)
    reference = keras.layers.LSTM(4, return_sequences=True)
    reference.build(x.shape)
    reference.set_weights(weights)
    expected = to_numpy(reference(x))
    got = run_rnn(cls(4, seed=3, **kwargs), weights, x, training=False)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_weights_transfer_both_ways_with_keras_lstm():
    x = random_inputs()
    keras_layer = keras.layers.LSTM(4, return_sequences=True)
    keras_layer.build(x.shape)
    ours = kr.RNN(
        kr.GalLSTMCell(4, recurrent_dropout=0.5), return_sequences=True
    )
    ours.build(x.shape)
    assert [w.shape for w in ours.weights] == [
        w.shape for w in keras_layer.weights
    ]
    assert [w.name for w in ours.cell.weights] == [
        w.name for w in keras_layer.cell.weights
    ]
    ours.set_weights(keras_layer.get_weights())
    np.testing.assert_allclose(
        to_numpy(ours(x)), to_numpy(keras_layer(x)), atol=1e-5
    )
    ours.set_weights(random_lstm_weights(3, 4, seed=5))
    keras_layer.set_weights(ours.get_weights())
    np.testing.assert_allclose(
        to_numpy(keras_layer(x)), to_numpy(ours(x)), atol=1e-5
    )


# ------------------------------------------------------- mode equivalence
def _model(cls, kwargs, implementation, x, weights):
    cell = cls(4, implementation=implementation, seed=11, **kwargs)
    inputs = keras.Input(x.shape[1:], batch_size=x.shape[0])
    outputs = kr.RNN(cell, return_sequences=True)(inputs)
    model = keras.Model(inputs, outputs)
    cell.set_weights(weights)
    return model


@pytest.mark.parametrize("name", sorted(NOISY_CONFIGS))
def test_implementation_modes_give_same_training_outputs_and_gradients(name):
    cls, kwargs = NOISY_CONFIGS[name]
    x = random_inputs(batch=8, timesteps=6)
    weights = random_lstm_weights(3, 4)
    y1, g1 = loss_and_gradients(_model(cls, kwargs, 1, x, weights), x)
    y2, g2 = loss_and_gradients(_model(cls, kwargs, 2, x, weights), x)
    # The noise is really on: the training output differs from inference.
    plain = run_rnn(cls(4, **kwargs), weights, x, training=False)
    assert np.abs(y1 - plain).max() > 1e-3
    np.testing.assert_allclose(y1, y2, atol=1e-5)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("gate", list(GATES))
@pytest.mark.parametrize("source", ["input", "state"])
def test_gal_modes_apply_the_same_mask_to_each_gate(gate, source):
    rate = {"dropout": 0.5} if source == "input" else {"recurrent_dropout": 0.5}
    masks = [
        exposed_gate_mask(
            kr.GalLSTMCell, gate, source, implementation=impl, seed=4, **rate
        )
        for impl in (1, 2)
    ]
    np.testing.assert_array_equal(masks[0], masks[1])


def test_gal_recurrent_dropout_keeps_the_fused_mode():
    cell = kr.GalLSTMCell(4, recurrent_dropout=0.5)
    assert cell.implementation == 2
    keras_cell = keras.layers.LSTMCell(4, recurrent_dropout=0.5)
    if keras_cell.implementation == 2:
        pytest.skip("this Keras keeps the mode too (docs/upstream.md)")
    assert keras_cell.implementation == 1  # what this package fixes


# -------------------------------------------------------- masks and scaling
@pytest.mark.parametrize("source", ["input", "state"])
@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_gal_masks_are_zero_or_inverse_keep_and_drop_fraction_p(source, rate):
    kwargs = (
        {"dropout": rate} if source == "input" else {"recurrent_dropout": rate}
    )
    masks = np.stack(
        [
            exposed_gate_mask(
                kr.GalLSTMCell,
                gate,
                source,
                batch=256,
                units=32,
                seed=2,
                **kwargs,
            )
            for gate in GATES
        ]
    )
    scale = np.float32(1.0 / (1.0 - rate))
    assert set(np.unique(masks)) == {np.float32(0.0), scale}
    dropped = np.mean(masks == 0)
    assert abs(dropped - rate) < binomial_bound(rate, masks.size)


@pytest.mark.parametrize(
    "shared", [{"tied_masks": True}, {"dropout_masks": "shared"}], ids=str
)
@pytest.mark.parametrize("source", ["input", "state"])
def test_gal_per_gate_masks_are_independent_and_tied_masks_shared(
    source, shared
):
    kwargs = (
        {"dropout": 0.5} if source == "input" else {"recurrent_dropout": 0.5}
    )
    per_gate = [
        exposed_gate_mask(
            kr.GalLSTMCell, g, source, batch=128, seed=9, **kwargs
        )
        != 0
        for g in GATES
    ]
    tied = [
        exposed_gate_mask(
            kr.GalLSTMCell,
            g,
            source,
            batch=128,
            seed=9,
            **shared,
            **kwargs,
        )
        for g in GATES
    ]
    for other in tied[1:]:
        np.testing.assert_array_equal(tied[0], other)
    n = per_gate[0].size
    for a in range(4):
        for b in range(a + 1, 4):
            # Independent Bernoulli(0.5): agreement rate 0.5, not 1.
            agreement = np.mean(per_gate[a] == per_gate[b])
            assert abs(agreement - 0.5) < binomial_bound(0.5, n)


def test_gal_masks_are_fixed_across_steps_and_fresh_for_each_call():
    units, batch = 16, 32
    cell = linear_probe_cell(kr.GalLSTMCell, units, dropout=0.5, seed=3)
    layer = kr.RNN(cell, return_sequences=True)
    x = np.ones((batch, 5, units), "float32")
    layer.build(x.shape)
    cell.set_weights(probe_weights(units, units, "c"))  # h_t = x_t * m_c
    first = to_numpy(layer(x, training=True))
    for t in range(1, 5):
        np.testing.assert_array_equal(first[:, t], first[:, 0])
    second = to_numpy(layer(x, training=True))
    assert np.mean(first[:, 0] != second[:, 0]) > 0.3


def _candidate_masks(
    per_step, units=16, batch=32, timesteps=6, seed=5, rate=0.5, layer=None
):
    """Semeniuta probe: f = 0, i = 1, g = 1, o = 1, so h_t = m_t."""
    cell = linear_probe_cell(
        kr.SemeniutaLSTMCell,
        units,
        recurrent_dropout=rate,
        per_step=per_step,
        seed=seed,
    )
    weights = [
        np.zeros((units, 4 * units), "float32"),
        np.zeros((units, 4 * units), "float32"),
        np.concatenate(
            [np.ones(units), np.zeros(units), np.ones(2 * units)]
        ).astype("float32"),
    ]
    x = np.zeros((batch, timesteps, units), "float32")
    return cell, weights, x


def test_semeniuta_per_step_masks_are_fresh_at_every_step_and_scaled():
    cell, weights, x = _candidate_masks(per_step=True)
    masks = run_rnn(cell, weights, x)
    assert set(np.unique(masks)) == {np.float32(0.0), np.float32(2.0)}
    for t in range(1, x.shape[1]):
        assert np.mean(masks[:, t] != masks[:, 0]) > 0.3
    assert abs(np.mean(masks == 0) - 0.5) < binomial_bound(0.5, masks.size)


@pytest.mark.parametrize("unroll", [False, True])
def test_semeniuta_per_sequence_mask_is_fixed_across_steps(unroll):
    cell, weights, x = _candidate_masks(per_step=False)
    masks = run_rnn(cell, weights, x, unroll=unroll)
    for t in range(1, x.shape[1]):
        np.testing.assert_array_equal(masks[:, t], masks[:, 0])
    assert abs(np.mean(masks == 0) - 0.5) < binomial_bound(
        0.5, masks[:, 0].size
    )


def test_semeniuta_keeps_the_memory_when_the_candidate_is_dropped():
    """c_t = f c_{t-1} + i (m g): a dropped candidate leaves f c_{t-1}."""
    units, batch = 8, 64
    cell = linear_probe_cell(
        kr.SemeniutaLSTMCell, units, recurrent_dropout=0.5, seed=1
    )
    # f = 1, i = 1, g = 1, o = 1: c_t = c_{t-1} + m_t, never reset.
    bias = np.ones(4 * units, "float32")
    weights = [
        np.zeros((units, 4 * units), "float32"),
        np.zeros((units, 4 * units), "float32"),
        bias,
    ]
    x = np.zeros((batch, 4, units), "float32")
    h = run_rnn(cell, weights, x)
    increments = np.diff(
        np.concatenate([np.zeros((batch, 1, units)), h], 1), axis=1
    )
    assert set(np.unique(increments)) == {0.0, 2.0}
    assert np.all(np.diff(h, axis=1) >= 0)


# ---------------------------------------------------------------- zoneout
@pytest.mark.parametrize("z", [0.1, 0.5, 0.9])
def test_zoneout_keeps_previous_hidden_state_with_probability_z(z):
    kept = zoneout_h_decisions(z)
    assert abs(kept.mean() - z) < binomial_bound(z, kept.size)


def _zoneout_c_decisions(zoneout_c, batch=256, units=16, timesteps=8, seed=0):
    """Probe with f = 1, i g = 1: c_t = c_{t-1} + (1 - d_t), h_t = c_{t-1}+1."""
    cell = linear_probe_cell(
        kr.ZoneoutLSTMCell, units, zoneout_c=zoneout_c, seed=seed
    )
    weights = [
        np.zeros((units, 4 * units), "float32"),
        np.zeros((units, 4 * units), "float32"),
        np.ones(4 * units, "float32"),
    ]
    x = np.zeros((batch, timesteps + 1, units), "float32")
    h = run_rnn(cell, weights, x)
    steps_kept = 1.0 - np.diff(h, axis=1)  # d_t for t = 1..T
    assert set(np.unique(steps_kept)) <= {0.0, 1.0}
    return steps_kept


@pytest.mark.parametrize("z", [0.2, 0.5, 0.8])
def test_zoneout_keeps_previous_cell_state_with_probability_z(z):
    kept = _zoneout_c_decisions(z)
    assert abs(kept.mean() - z) < binomial_bound(z, kept.size)


@pytest.mark.parametrize("unroll", [False, True])
def test_zoneout_decisions_are_fresh_at_every_step(unroll):
    kept = zoneout_h_decisions(0.5, unroll=unroll)
    # Steps are independent: agreement between two steps is about 0.5.
    for t in range(2, kept.shape[1]):
        agreement = np.mean(kept[:, t] == kept[:, 1])
        assert abs(agreement - 0.5) < binomial_bound(0.5, kept[:, t].size)


def test_zoneout_decisions_are_fresh_for_each_call():
    cell = linear_probe_cell(kr.ZoneoutLSTMCell, 16, zoneout_h=0.5, seed=0)
    layer = kr.RNN(cell, return_sequences=True)
    x = (
        np.ones((64, 3, 16), "float32")
        * np.arange(1, 4, dtype="float32")[None, :, None]
    )
    layer.build(x.shape)
    cell.set_weights(probe_weights(16, 16, "c"))
    a, b = to_numpy(layer(x, training=True)), to_numpy(layer(x, training=True))
    assert np.mean(a != b) > 0.2


def test_zoneout_one_freezes_the_state_and_zero_is_a_plain_lstm():
    x = random_inputs()
    weights = random_lstm_weights(3, 4)
    h0 = np.random.RandomState(3).randn(6, 4).astype("float32")
    c0 = np.random.RandomState(4).randn(6, 4).astype("float32")
    frozen = kr.RNN(
        kr.ZoneoutLSTMCell(4, zoneout_c=1.0, zoneout_h=1.0), return_state=True
    )
    frozen.build(x.shape)
    frozen.cell.set_weights(weights)
    for training in (True, False):
        _, h, c = frozen(x, initial_state=[h0, c0], training=training)
        np.testing.assert_array_equal(to_numpy(h), h0)
        np.testing.assert_array_equal(to_numpy(c), c0)


def test_zoneout_inference_uses_the_expectation():
    """Checks the inference equations against a NumPy reference."""
    zc, zh = 0.5, 0.2
    x = random_inputs(batch=4, timesteps=5)
    kernel, recurrent, bias = random_lstm_weights(3, 4)
    got = run_rnn(
        kr.ZoneoutLSTMCell(4, zoneout_c=zc, zoneout_h=zh),
        [kernel, recurrent, bias],
        x,
        training=False,
    )

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    h = np.zeros((4, 4))
    c = np.zeros((4, 4))
    for t in range(5):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f, g, o = np.split(z, 4, axis=1)
        c_hat = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h_hat = sigmoid(o) * np.tanh(c_hat)
        c = zc * c + (1 - zc) * c_hat
        h = zh * h + (1 - zh) * h_hat
        np.testing.assert_allclose(got[:, t], h, atol=1e-5)


# ------------------------------------------------ Monte Carlo expectations
@pytest.mark.parametrize("name", ["zoneout", "semeniuta_step", "semeniuta_seq"])
def test_one_step_monte_carlo_mean_converges_to_inference(name):
    """E[c_1] (and E[h_1] for zoneout) under the noise equals inference."""
    cls, kwargs = NOISY_CONFIGS[name]
    kwargs = {k: v for k, v in kwargs.items() if k != "dropout"}
    n, units = 4096, 4
    rng = np.random.RandomState(0)
    x1 = np.repeat(rng.randn(1, 1, 3).astype("float32"), n, axis=0)
    h0 = np.repeat(rng.randn(1, units).astype("float32"), n, axis=0)
    c0 = np.repeat(rng.randn(1, units).astype("float32"), n, axis=0)
    weights = random_lstm_weights(3, units)
    results = {}
    for training in (True, False):
        layer = kr.RNN(cls(units, seed=1, **kwargs), return_state=True)
        layer.build(x1.shape)
        layer.cell.set_weights(weights)
        _, h, c = layer(x1, initial_state=[h0, c0], training=training)
        results[training] = (to_numpy(h), to_numpy(c))
    checked = [1] if name.startswith("semeniuta") else [0, 1]
    for k in checked:
        samples, expected = results[True][k], results[False][k][0]
        std = samples.std(axis=0) + 1e-6
        assert np.all(
            np.abs(samples.mean(axis=0) - expected) < 5 * std / np.sqrt(n)
        )
        assert np.any(std > 1e-3)  # the noise really varies


@pytest.mark.parametrize("source", ["input", "state"])
def test_gal_monte_carlo_mean_of_a_linear_probe_equals_inference(source):
    """With a probe linear in the mask, E[(x*m) W] = x W (inverted scale)."""
    units, n = 4, 8192
    rng = np.random.RandomState(1)
    kwargs = (
        {"dropout": 0.5} if source == "input" else {"recurrent_dropout": 0.5}
    )
    w = rng.randn(units, units).astype("float32")
    kernel, recurrent, bias = probe_weights(units, units, "c", source)
    block = slice(2 * units, 3 * units)
    (kernel if source == "input" else recurrent)[:, block] = w
    value = rng.randn(1, units).astype("float32")
    x = (
        np.repeat(value[:, None], n, 0)
        if source == "input"
        else np.zeros((n, 1, units), "float32")
    )
    h0 = (
        np.zeros((n, units), "float32")
        if source == "input"
        else np.repeat(value, n, 0)
    )
    c0 = np.zeros((n, units), "float32")
    outs = {}
    for training in (True, False):
        cell = linear_probe_cell(kr.GalLSTMCell, units, seed=2, **kwargs)
        outs[training] = run_rnn(
            cell,
            [kernel, recurrent, bias],
            x,
            training=training,
            initial_state=[h0, c0],
        )
    samples, expected = outs[True][:, 0], outs[False][0, 0]
    np.testing.assert_allclose(expected, (value @ w)[0], atol=1e-5)
    std = samples.std(axis=0)
    assert np.all(
        np.abs(samples.mean(axis=0) - expected) < 5 * std / np.sqrt(n)
    )


# ----------------------------------------------- input dropout on all cells
@pytest.mark.parametrize("cls", [kr.ZoneoutLSTMCell, kr.SemeniutaLSTMCell])
@pytest.mark.parametrize("tied", [False, True])
def test_input_dropout_of_every_cell_matches_gal(cls, tied):
    """`dropout` on every cell is Gal's per-sequence (per-gate/tied) mask."""
    for gate in GATES:
        ours = exposed_gate_mask(
            cls, gate, dropout=0.4, tied_masks=tied, seed=6, timesteps=3
        )
        gal = exposed_gate_mask(
            kr.GalLSTMCell,
            gate,
            dropout=0.4,
            tied_masks=tied,
            seed=6,
            timesteps=3,
        )
        np.testing.assert_array_equal(ours, gal)
        assert np.any(ours == 0)


def test_zoneout_recurrent_dropout_is_gal_recurrent_dropout():
    x = random_inputs()
    weights = random_lstm_weights(3, 4)
    kwargs = dict(dropout=0.3, recurrent_dropout=0.4, seed=8)
    zoneout = run_rnn(kr.ZoneoutLSTMCell(4, **kwargs), weights, x)
    gal = run_rnn(kr.GalLSTMCell(4, **kwargs), weights, x)
    np.testing.assert_allclose(zoneout, gal, atol=1e-6)


# ---------------------------------------------- plain keras.layers.RNN
@pytest.mark.parametrize("name", sorted(NOISY_CONFIGS))
def test_cells_in_plain_keras_rnn_have_the_same_semantics(name):
    """Same masks statistics via keras.layers.RNN (unrolled: in-loop noise)."""
    cls, kwargs = NOISY_CONFIGS[name]
    x = random_inputs(batch=8, timesteps=6)
    weights = random_lstm_weights(3, 4)
    layer = keras.layers.RNN(
        cls(4, seed=2, **kwargs), return_sequences=True, unroll=True
    )
    layer.build(x.shape)
    layer.cell.set_weights(weights)
    training = to_numpy(layer(x, training=True))
    inference = to_numpy(layer(x, training=False))
    expected = run_rnn(cls(4, **kwargs), weights, x, training=False)
    np.testing.assert_allclose(inference, expected, atol=1e-5)
    assert np.abs(training - inference).max() > 1e-3


def test_plain_keras_rnn_zoneout_probability_when_unrolled():
    kept = zoneout_h_decisions(0.3, unroll=True, layer_cls=keras.layers.RNN)
    assert abs(kept.mean() - 0.3) < binomial_bound(0.3, kept.size)
