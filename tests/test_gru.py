"""The GRU cells: parity with keras.layers.GRUCell, modes, masks, noise."""

import keras
import numpy as np
import pytest
from probes import binomial_bound
from probes import loss_and_gradients
from probes import to_numpy

import keras_recdrop as kr

GRU_CONFIGS = {
    "zoneout": (kr.ZoneoutGRUCell, dict(zoneout_h=0.4, dropout=0.2)),
    "zoneout_gal": (
        kr.ZoneoutGRUCell,
        dict(zoneout_h=0.4, recurrent_dropout=0.3),
    ),
    "semeniuta_step": (kr.SemeniutaGRUCell, dict(recurrent_dropout=0.4)),
    "semeniuta_seq": (
        kr.SemeniutaGRUCell,
        dict(recurrent_dropout=0.4, dropout=0.2, per_step=False),
    ),
    "gal": (kr.GalGRUCell, dict(dropout=0.3, recurrent_dropout=0.4)),
    "gal_tied": (
        kr.GalGRUCell,
        dict(dropout=0.3, recurrent_dropout=0.4, tied_masks=True),
    ),
}
CELLS = [kr.ZoneoutGRUCell, kr.SemeniutaGRUCell, kr.GalGRUCell]


def gru_weights(input_dim, units, reset_after, seed=0):
    rng = np.random.RandomState(seed)
    bias_shape = (2, 3 * units) if reset_after else (3 * units,)
    return [
        rng.uniform(-0.5, 0.5, (input_dim, 3 * units)).astype("float32"),
        rng.uniform(-0.5, 0.5, (units, 3 * units)).astype("float32"),
        rng.uniform(-0.5, 0.5, bias_shape).astype("float32"),
    ]


def inputs(batch=6, timesteps=5, features=3, seed=1):
    rng = np.random.RandomState(seed)
    return rng.randn(batch, timesteps, features).astype("float32")


def run(cell, weights, x, training=True, rnn_cls=None, **kw):
    layer = (rnn_cls or kr.RNN)(cell, return_sequences=True, **kw)
    layer.build(x.shape)
    cell.set_weights(weights)
    return to_numpy(layer(x, training=training))


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("implementation", [1, 2])
def test_zero_rates_equal_keras_gru_cell(cls, reset_after, implementation):
    x = inputs()
    weights = gru_weights(3, 4, reset_after)
    reference = keras.layers.RNN(
        keras.layers.GRUCell(4, reset_after=reset_after),
        return_sequences=True,
    )
    reference.build(x.shape)
    reference.cell.set_weights(weights)
    expected = to_numpy(reference(x))
    for rnn_cls in (kr.RNN, keras.layers.RNN):
        for training in (True, False):
            cell = cls(
                4, reset_after=reset_after, implementation=implementation
            )
            got = run(cell, weights, x, training, rnn_cls)
            np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["semeniuta_step", "semeniuta_seq", "gal", "gal_tied"]
)
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_inference_with_rates_is_a_plain_gru(name, reset_after):
    cls, kwargs = GRU_CONFIGS[name]
    x = inputs()
    weights = gru_weights(3, 4, reset_after)
    reference = keras.layers.GRU(
        4, return_sequences=True, reset_after=reset_after
    )
    reference.build(x.shape)
    reference.set_weights(weights)
    got = run(
        cls(4, reset_after=reset_after, seed=1, **kwargs),
        weights,
        x,
        training=False,
    )
    np.testing.assert_allclose(got, to_numpy(reference(x)), atol=1e-5)


def _model(cls, kwargs, implementation, reset_after, x, weights):
    cell = cls(
        4,
        implementation=implementation,
        reset_after=reset_after,
        seed=11,
        **kwargs,
    )
    inp = keras.Input(x.shape[1:], batch_size=x.shape[0])
    model = keras.Model(inp, kr.RNN(cell, return_sequences=True)(inp))
    cell.set_weights(weights)
    return model


@pytest.mark.parametrize("name", sorted(GRU_CONFIGS))
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_modes_give_same_training_outputs_and_gradients(name, reset_after):
    cls, kwargs = GRU_CONFIGS[name]
    x = inputs(batch=8, timesteps=6)
    weights = gru_weights(3, 4, reset_after)
    y1, g1 = loss_and_gradients(
        _model(cls, kwargs, 1, reset_after, x, weights), x
    )
    y2, g2 = loss_and_gradients(
        _model(cls, kwargs, 2, reset_after, x, weights), x
    )
    plain = run(
        cls(4, reset_after=reset_after, **kwargs), weights, x, training=False
    )
    assert np.abs(y1 - plain).max() > 1e-3
    np.testing.assert_allclose(y1, y2, atol=1e-5)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def _linear(cls, units, **kwargs):
    return cls(
        units,
        activation=None,
        recurrent_activation=None,
        reset_after=True,
        **kwargs,
    )


def _gate_probe_weights(units, gate):
    """Linear GRU, h0 = 1, x = 1: the output is gate's input mask.

    gate "h": z = 0, h = x_h.  gate "z": x_h = 0, h = z * h0 = z.
    gate "r": z = 0, x_h = 0, u_h = b^u_h = 1, h = r * u_h = r.
    """
    kernel = np.zeros((units, 3 * units), "float32")
    recurrent = np.zeros((units, 3 * units), "float32")
    bias = np.zeros((2, 3 * units), "float32")
    k = "zrh".index(gate)
    kernel[:, k * units : (k + 1) * units] = np.eye(units, dtype="float32")
    if gate == "r":
        bias[1, 2 * units :] = 1.0
    return [kernel, recurrent, bias]


def _exposed_input_mask(cls, gate, batch=128, units=16, timesteps=1, **kwargs):
    x = np.ones((batch, timesteps, units), "float32")
    cell = _linear(cls, units, **kwargs)
    layer = kr.RNN(cell, return_sequences=True)
    layer.build(x.shape)
    cell.set_weights(_gate_probe_weights(units, gate))
    h0 = (
        np.ones((batch, units), "float32")
        if gate == "z"
        else np.zeros((batch, units), "float32")
    )
    return to_numpy(layer(x, initial_state=[h0], training=True))


def test_gal_gru_input_masks_per_gate_scaled_fixed_and_tied():
    rate = 0.5
    per_gate = [
        _exposed_input_mask(kr.GalGRUCell, g, dropout=rate, seed=3)
        for g in "zrh"
    ]
    for mask in per_gate:
        assert set(np.unique(mask)) == {0.0, np.float32(1 / (1 - rate))}
        assert abs(np.mean(mask == 0) - rate) < binomial_bound(rate, mask.size)
    for a in range(3):
        for b in range(a + 1, 3):
            agreement = np.mean((per_gate[a] == 0) == (per_gate[b] == 0))
            assert abs(agreement - 0.5) < binomial_bound(0.5, per_gate[a].size)
    tied = [
        _exposed_input_mask(
            kr.GalGRUCell, g, dropout=rate, seed=3, tied_masks=True
        )
        for g in "zrh"
    ]
    np.testing.assert_array_equal(tied[0], tied[1])
    np.testing.assert_array_equal(tied[0], tied[2])
    steps = _exposed_input_mask(
        kr.GalGRUCell, "h", dropout=rate, seed=3, timesteps=4
    )
    for t in range(1, 4):
        np.testing.assert_array_equal(steps[:, t], steps[:, 0])


@pytest.mark.parametrize("z", [0.1, 0.5, 0.9])
def test_zoneout_gru_keeps_previous_state_with_probability_z(z):
    """Linear probe: gate z = 0, candidate = x_t = t + 1 (distinct)."""
    units, batch, timesteps = 16, 256, 8
    cell = _linear(kr.ZoneoutGRUCell, units, zoneout_h=z, seed=0)
    steps = np.arange(1, timesteps + 1, dtype="float32")
    x = np.ascontiguousarray(
        np.broadcast_to(steps[None, :, None], (batch, timesteps, units))
    )
    h = run(cell, _gate_probe_weights(units, "h"), x)
    updated = h == steps[None, :, None]
    kept = np.concatenate([h[:, :1] == 0, h[:, 1:] == h[:, :-1]], axis=1)
    assert np.all(updated ^ kept)
    assert abs(kept.mean() - z) < binomial_bound(z, kept.size)
    for t in range(2, timesteps):  # fresh decisions at every step
        agreement = np.mean(kept[:, t] == kept[:, 1])
        expected = z * z + (1 - z) * (1 - z)
        assert abs(agreement - expected) < binomial_bound(
            expected, kept[:, t].size
        )


@pytest.mark.parametrize("per_step", [True, False])
def test_semeniuta_gru_candidate_masks_fresh_or_fixed(per_step):
    """Linear probe: z = 0, candidate = b^x_h = 1, so h_t = m_t."""
    units, batch, timesteps, rate = 16, 64, 6, 0.5
    cell = _linear(
        kr.SemeniutaGRUCell,
        units,
        recurrent_dropout=rate,
        per_step=per_step,
        seed=2,
    )
    bias = np.zeros((2, 3 * units), "float32")
    bias[0, 2 * units :] = 1.0
    weights = [
        np.zeros((units, 3 * units), "float32"),
        np.zeros((units, 3 * units), "float32"),
        bias,
    ]
    masks = run(cell, weights, np.zeros((batch, timesteps, units), "float32"))
    assert set(np.unique(masks)) == {0.0, 2.0}
    assert abs(np.mean(masks == 0) - rate) < binomial_bound(rate, masks.size)
    for t in range(1, timesteps):
        if per_step:
            assert np.mean(masks[:, t] != masks[:, 0]) > 0.3
        else:
            np.testing.assert_array_equal(masks[:, t], masks[:, 0])


@pytest.mark.parametrize("name", ["zoneout", "semeniuta_step"])
def test_gru_one_step_monte_carlo_mean_converges_to_inference(name):
    cls, kwargs = GRU_CONFIGS[name]
    kwargs = {k: v for k, v in kwargs.items() if k != "dropout"}
    n, units = 4096, 4
    rng = np.random.RandomState(0)
    x1 = np.repeat(rng.randn(1, 1, 3).astype("float32"), n, axis=0)
    h0 = np.repeat(rng.randn(1, units).astype("float32"), n, axis=0)
    weights = gru_weights(3, units, True)
    out = {}
    for training in (True, False):
        layer = kr.RNN(cls(units, seed=1, **kwargs))
        layer.build(x1.shape)
        layer.cell.set_weights(weights)
        out[training] = to_numpy(
            layer(x1, initial_state=[h0], training=training)
        )
    std = out[True].std(axis=0) + 1e-6
    assert np.any(std > 1e-3)
    assert np.all(
        np.abs(out[True].mean(axis=0) - out[False][0]) < 5 * std / np.sqrt(n)
    )


def test_weights_transfer_both_ways_with_keras_gru():
    x = inputs()
    keras_layer = keras.layers.GRU(4, return_sequences=True)
    keras_layer.build(x.shape)
    ours = kr.RNN(
        kr.GalGRUCell(4, recurrent_dropout=0.5), return_sequences=True
    )
    ours.build(x.shape)
    assert [w.name for w in ours.cell.weights] == [
        w.name for w in keras_layer.cell.weights
    ]
    ours.set_weights(keras_layer.get_weights())
    np.testing.assert_allclose(
        to_numpy(ours(x)), to_numpy(keras_layer(x)), atol=1e-5
    )


@pytest.mark.parametrize("name", sorted(GRU_CONFIGS))
def test_gru_config_round_trip_and_save_load(name, tmp_path):
    cls, kwargs = GRU_CONFIGS[name]
    cell = cls(4, reset_after=False, implementation=1, seed=5, **kwargs)
    clone = cls.from_config(cell.get_config())
    assert clone.get_config() == cell.get_config()
    x = inputs()
    inp = keras.Input(x.shape[1:])
    model = keras.Model(inp, kr.RNN(cell)(inp))
    path = tmp_path / "gru.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        to_numpy(loaded.predict(x, verbose=0)),
        to_numpy(model.predict(x, verbose=0)),
        atol=1e-6,
    )


@pytest.mark.parametrize("cls", CELLS)
def test_gru_bad_arguments_raise(cls):
    with pytest.raises(TypeError, match="`reset_after`"):
        cls(4, reset_after="yes")
    with pytest.raises(ValueError, match="`units`"):
        cls(0)
    with pytest.raises(ValueError, match="`dropout`"):
        cls(4, dropout=1.0)


def test_zoneout_gru_rate_checked_on_closed_interval():
    assert kr.ZoneoutGRUCell(4, zoneout_h=1.0).zoneout_h == 1.0
    with pytest.raises(ValueError, match=r"`zoneout_h` must be in \[0, 1\]"):
        kr.ZoneoutGRUCell(4, zoneout_h=1.5)
