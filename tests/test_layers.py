"""Ready-made layers and Bidirectional with distinct masks per direction."""

import keras
import numpy as np
import pytest
from probes import linear_probe_cell
from probes import probe_weights
from probes import to_numpy

import keras_recdrop as kr

LAYERS = {
    kr.ZoneoutLSTM: (kr.ZoneoutLSTMCell, dict(zoneout_c=0.5, zoneout_h=0.2)),
    kr.SemeniutaLSTM: (kr.SemeniutaLSTMCell, dict(recurrent_dropout=0.3)),
    kr.GalLSTM: (kr.GalLSTMCell, dict(dropout=0.2, recurrent_dropout=0.3)),
    kr.WeightDropLSTM: (kr.WeightDropLSTMCell, dict(weight_dropout=0.4)),
    kr.ZoneoutGRU: (kr.ZoneoutGRUCell, dict(zoneout_h=0.3)),
    kr.SemeniutaGRU: (kr.SemeniutaGRUCell, dict(recurrent_dropout=0.3)),
    kr.GalGRU: (kr.GalGRUCell, dict(dropout=0.2, recurrent_dropout=0.3)),
}
IDS = [cls.__name__ for cls in LAYERS]


def _x(batch=4, timesteps=6, features=3):
    return (
        np.random.RandomState(0)
        .randn(batch, timesteps, features)
        .astype("float32")
    )


@pytest.mark.parametrize("layer_cls", list(LAYERS), ids=IDS)
def test_layer_is_rnn_over_its_cell(layer_cls):
    cell_cls, kwargs = LAYERS[layer_cls]
    x = _x()
    layer = layer_cls(5, seed=7, return_sequences=True, **kwargs)
    reference = kr.RNN(cell_cls(5, seed=7, **kwargs), return_sequences=True)
    layer.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    for training in (True, False):
        np.testing.assert_allclose(
            to_numpy(layer(x, training=training)),
            to_numpy(reference(x, training=training)),
            atol=1e-6,
        )
    for arg, value in kwargs.items():
        assert getattr(layer, arg) == value
    assert layer.units == 5


@pytest.mark.parametrize("layer_cls", list(LAYERS), ids=IDS)
def test_layer_config_is_flat_and_round_trips_through_save(layer_cls, tmp_path):
    _, kwargs = LAYERS[layer_cls]
    layer = layer_cls(
        5,
        seed=2,
        return_state=True,
        go_backwards=True,
        implementation=1,
        **kwargs,
    )
    config = layer.get_config()
    assert "cell" not in config and config["units"] == 5
    assert layer_cls.from_config(config).get_config() == config
    x = _x()
    inp = keras.Input(x.shape[1:])
    model = keras.Model(inp, layer_cls(5, **kwargs)(inp))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        to_numpy(loaded.predict(x, verbose=0)),
        to_numpy(model.predict(x, verbose=0)),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "layer_cls,keras_cls",
    [(kr.GalLSTM, keras.layers.LSTM), (kr.GalGRU, keras.layers.GRU)],
)
def test_use_cudnn_true_behaves_like_keras_and_matches_the_cell_loop(
    layer_cls, keras_cls
):
    x = _x()
    try:
        keras_cls(4, use_cudnn=True)(x)
        keras_has_fused_kernel = True
    except ValueError:
        keras_has_fused_kernel = False
    fused = layer_cls(4, use_cudnn=True, recurrent_dropout=0.5)
    if not keras_has_fused_kernel:
        with pytest.raises(ValueError, match="use_cudnn"):
            fused(x)
        return
    loop = layer_cls(4, use_cudnn=False, recurrent_dropout=0.5)
    loop.build(x.shape)
    fused.build(x.shape)
    loop.set_weights(fused.get_weights())
    np.testing.assert_allclose(to_numpy(fused(x)), to_numpy(loop(x)), atol=1e-5)


@pytest.mark.parametrize("use_cudnn", ["auto", True])
def test_inference_takes_the_fused_kernel_only_where_it_is_faster(
    monkeypatch, use_cudnn
):
    # Keras's fused GRU on JAX's CPU is a scan that predicts slower than the
    # cell loop: "auto" runs the loop there, `True` the fused kernel. On
    # PyTorch (either device) inference takes Keras's fused kernel; on
    # TensorFlow it is tried and falls back. Both paths give one output.
    from keras_recdrop import _compat

    real = _compat.fused_gru
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(_compat, "fused_gru", spy)
    x = _x()
    layer = kr.GalGRU(4, use_cudnn=use_cudnn, recurrent_dropout=0.5)
    loop = kr.GalGRU(4, use_cudnn=False, recurrent_dropout=0.5)
    loop.build(x.shape)
    layer.build(x.shape)
    loop.set_weights(layer.get_weights())
    try:
        y = to_numpy(layer(x, training=False))
    except ValueError:
        # `True` where the backend has no fused kernel (TensorFlow's CPU).
        assert use_cudnn is True and keras.backend.backend() == "tensorflow"
        return
    backend = keras.backend.backend()
    on_jax_cpu = backend == "jax" and keras.distribution.list_devices()[
        0
    ].startswith("cpu")
    assert len(calls) == (0 if on_jax_cpu and use_cudnn == "auto" else 1)
    np.testing.assert_allclose(y, to_numpy(loop(x, training=False)), atol=1e-5)


def test_bad_use_cudnn_value_raises():
    with pytest.raises(ValueError, match="`use_cudnn`"):
        kr.GalLSTM(4, use_cudnn="yes")


def test_plain_rnn_calls_are_recognised_for_the_fused_kernel():
    assert kr.GalLSTMCell(4, recurrent_dropout=0.5).computes_plain_rnn(False)
    assert not kr.GalLSTMCell(4, dropout=0.5).computes_plain_rnn(True)
    assert kr.GalGRUCell(4).computes_plain_rnn(True)
    assert not kr.ZoneoutLSTMCell(4, zoneout_h=0.1).computes_plain_rnn(False)
    # DropConnect's training is a plain LSTM with the masked kernel; with
    # input dropout too it is not.
    assert kr.WeightDropLSTMCell(4, weight_dropout=0.1).computes_plain_rnn(True)
    assert not kr.WeightDropLSTMCell(
        4, weight_dropout=0.1, dropout=0.2
    ).computes_plain_rnn(True)


def _bidirectional_masks(seed, units=16, batch=64):
    """Both directions' input masks of gate c, read from a linear probe."""
    cell = linear_probe_cell(kr.GalLSTMCell, units, dropout=0.5, seed=seed)
    layer = keras.layers.Bidirectional(
        kr.RNN(cell, return_sequences=True), merge_mode=None
    )
    x = np.ones((batch, 1, units), "float32")
    layer.build(x.shape)
    weights = probe_weights(units, units, "c")
    layer.forward_layer.cell.set_weights(weights)
    layer.backward_layer.cell.set_weights(weights)
    forward, backward = layer(x, training=True)
    return to_numpy(forward), to_numpy(backward)


def test_bidirectional_directions_draw_different_masks_reproducibly():
    forward, backward = _bidirectional_masks(seed=1)
    assert set(np.unique(forward)) == {0.0, 2.0}
    # Independent masks agree on about half of the units, not all.
    assert 0.35 < np.mean(forward == backward) < 0.65
    again_forward, again_backward = _bidirectional_masks(seed=1)
    np.testing.assert_array_equal(forward, again_forward)
    np.testing.assert_array_equal(backward, again_backward)
    other_forward, _ = _bidirectional_masks(seed=2)
    assert np.mean(other_forward != forward) > 0.3


def test_bidirectional_layers_fit():
    x = _x(32)
    y = x[:, :, :1].sum(axis=1) / 3.0  # learnable: a sum over time
    inp = keras.Input(x.shape[1:])
    h = keras.layers.Bidirectional(
        kr.ZoneoutLSTM(8, zoneout_c=0.5, seed=3, return_sequences=True)
    )(inp)
    h = keras.layers.Bidirectional(kr.GalGRU(8, dropout=0.1, seed=4))(h)
    model = keras.Model(inp, keras.layers.Dense(1)(h))
    model.compile(keras.optimizers.Adam(0.02), "mse")
    history = model.fit(x, y, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
