"""`keras_recdrop.convert`: Keras LSTM/GRU models to the package's layers."""

import keras
import numpy as np
import pytest
from probes import probe_weights
from probes import to_numpy

import keras_recdrop as kr
from keras_recdrop import _compat
from keras_recdrop.conversion import convert


def _x(batch=4, timesteps=6, features=3, seed=0):
    return (
        np.random.RandomState(seed)
        .randn(batch, timesteps, features)
        .astype("float32")
    )


def _assert_same_inference(model, converted, x, atol=1e-5):
    expected = keras.tree.flatten(model.predict(x, verbose=0))
    actual = keras.tree.flatten(converted.predict(x, verbose=0))
    assert len(expected) == len(actual)
    for a, b in zip(actual, expected, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=atol)


def _layer_types(model):
    return [type(layer).__name__ for layer in _compat.flatten_layers(model)]


@pytest.mark.parametrize("reset_after", [True, False])
def test_sequential_stacked_lstm_and_gru_convert_with_identical_inference(
    reset_after,
):
    model = keras.Sequential(
        [
            keras.Input((6, 3)),
            keras.layers.LSTM(5, return_sequences=True, dropout=0.2),
            keras.layers.GRU(
                4,
                return_sequences=True,
                recurrent_dropout=0.3,
                reset_after=reset_after,
            ),
            keras.layers.LSTM(3),
            keras.layers.Dense(2),
        ]
    )
    converted = convert(model)
    assert [type(layer) for layer in converted.layers] == [
        kr.GalLSTM,
        kr.GalGRU,
        kr.GalLSTM,
        keras.layers.Dense,
    ]
    assert converted.layers[1].reset_after is reset_after
    _assert_same_inference(model, converted, _x())


@pytest.mark.parametrize("merge_mode", ["concat", "sum", None])
def test_masked_bidirectional_functional_model_with_states_converts_exactly(
    merge_mode,
):
    ids = np.array(
        [[3, 1, 4, 1, 5, 0, 0], [9, 2, 6, 0, 0, 0, 0], [5, 3, 5, 8, 9, 7, 9]]
    )
    inp = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(10, 3, mask_zero=True)(inp)
    h = keras.layers.Bidirectional(
        keras.layers.LSTM(
            4, return_sequences=True, dropout=0.3, recurrent_dropout=0.2, seed=1
        ),
        merge_mode=merge_mode,
    )(h)
    if merge_mode is None:
        h = keras.layers.Concatenate()(h)
    out, state = keras.layers.GRU(
        3, return_state=True, go_backwards=True, reset_after=False
    )(h)
    seq, h_last, c_last = keras.layers.LSTM(
        2, return_sequences=True, return_state=True
    )(h)
    model = keras.Model(inp, [out, state, seq, h_last, c_last])
    converted = convert(model)
    types = _layer_types(converted)
    assert "LSTM" not in types and "GRU" not in types
    assert types.count("GalLSTM") == 3 and types.count("GalGRU") == 1
    _assert_same_inference(model, converted, ids)


def test_rnn_over_keras_cells_becomes_a_package_rnn_and_keeps_unknown_cells():
    inp = keras.Input((6, 3))
    h = keras.layers.RNN(keras.layers.LSTMCell(4), return_sequences=True)(inp)
    stacked = keras.layers.StackedRNNCells(
        [
            keras.layers.GRUCell(3, reset_after=False),
            keras.layers.SimpleRNNCell(2),
            keras.layers.LSTMCell(2),
        ]
    )
    out, *states = keras.layers.RNN(stacked, return_state=True)(h)
    simple = keras.layers.SimpleRNN(2)(h)
    model = keras.Model(inp, [out, simple, *states])
    converted = convert(model)
    rnns = [layer for layer in converted.layers if isinstance(layer, kr.RNN)]
    assert len(rnns) == 2
    assert isinstance(rnns[0].cell, kr.GalLSTMCell)
    assert [type(c) for c in rnns[1].cell.cells] == [
        kr.GalGRUCell,
        keras.layers.SimpleRNNCell,
        kr.GalLSTMCell,
    ]
    assert type(converted.layers[-1]) is keras.layers.SimpleRNN
    _assert_same_inference(model, converted, _x())


def test_nested_models_are_converted_and_shared_layers_stay_shared():
    shared = keras.layers.LSTM(4, return_sequences=True)
    inner = keras.Sequential(
        [keras.Input((6, 4)), keras.layers.GRU(3), keras.layers.Dense(2)]
    )
    a, b = keras.Input((6, 3)), keras.Input((6, 3))
    out = keras.layers.Concatenate()([inner(shared(a)), inner(shared(b))])
    model = keras.Model([a, b], out)
    converted = convert(model)
    gal = [
        layer
        for layer in _compat.flatten_layers(converted)
        if type(layer) is kr.GalLSTM
    ]
    assert len(gal) == 1  # one layer, called at two nodes
    new_inner = [
        layer for layer in converted.layers if isinstance(layer, keras.Model)
    ]
    assert type(new_inner[0].layers[0]) is kr.GalGRU
    # Shared weights are shared in the copy: as many variables as before.
    assert len(converted.weights) == len(model.weights)
    _assert_same_inference(model, converted, [_x(), _x(seed=1)])


class FunctionalSubclass(keras.Model):
    """Keras's clone keeps the class of a constructor `(*args, **kwargs)`."""

    def __init__(self, *args, **kwargs):
        if not args:
            inputs = keras.Input((6, 3))
            args = (inputs, keras.layers.LSTM(4)(inputs))
        super().__init__(*args, **kwargs)


class FunctionalWithOwnConstructor(keras.Model):
    def __init__(self, units=4):
        inputs = keras.Input((6, 3))
        super().__init__(inputs, keras.layers.GRU(units)(inputs))


def test_functional_subclasses_convert_as_keras_clones_them():
    model = FunctionalSubclass()
    converted = convert(model)
    assert type(converted) is FunctionalSubclass
    assert type(converted.layers[1]) is kr.GalLSTM
    _assert_same_inference(model, converted, _x())
    # Another constructor: `clone_model` builds a plain Functional model.
    model = FunctionalWithOwnConstructor()
    converted = convert(model)
    assert type(converted.layers[1]) is kr.GalGRU
    _assert_same_inference(model, converted, _x())


class Subclassed(keras.Model):
    def __init__(self, recurrent):
        super().__init__()
        self.recurrent = recurrent

    def call(self, x):
        return self.recurrent(x)


def test_subclassed_model_raises_and_its_layers_convert_where_created():
    with pytest.raises(TypeError, match="subclassed Subclassed"):
        convert(Subclassed(keras.layers.LSTM(4)))
    # The recipe the error gives: convert the layer where it is created.
    keras_lstm = keras.layers.LSTM(4, recurrent_dropout=0.25)
    model = Subclassed(convert(keras_lstm))
    assert type(model.recurrent) is kr.GalLSTM
    assert model.recurrent.recurrent_dropout == 0.25
    assert not model.recurrent.built


def test_a_built_layer_converts_with_its_weights():
    x = _x()
    layer = keras.layers.GRU(5, return_sequences=True, reset_after=False)
    expected = to_numpy(layer(x))
    new = convert(layer)
    assert type(new) is kr.GalGRU and new.built
    np.testing.assert_allclose(to_numpy(new(x)), expected, atol=1e-5)


def test_unbuilt_sequential_converts_and_builds_like_the_original():
    model = keras.Sequential([keras.layers.LSTM(3), keras.layers.Dense(1)])
    converted = convert(model)
    assert not converted.built
    assert type(converted.layers[0]) is kr.GalLSTM
    x = _x()
    model(x)
    converted(x)
    converted.set_weights(model.get_weights())
    _assert_same_inference(model, converted, x)
    # A Sequential built by a call (no Input) converts with its weights.
    _assert_same_inference(model, convert(model), x)


def test_mixed_precision_policy_carries_over():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = keras.Sequential(
            [
                keras.Input((6, 3)),
                keras.layers.GRU(4, return_sequences=True),
                keras.layers.LSTM(3),
            ]
        )
    finally:
        keras.config.set_dtype_policy("float32")
    converted = convert(model)
    for layer in converted.layers:
        assert layer.dtype_policy.name == "mixed_float16"
        assert layer.cell.dtype_policy.name == "mixed_float16"
        assert layer.cell.kernel.dtype == "float32"
    _assert_same_inference(model, converted, _x(), atol=1e-3)


def test_stateful_layer_continues_from_the_original_states():
    x = _x(batch=2)
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(2, 6, 3)),
            keras.layers.LSTM(3, stateful=True),
        ]
    )
    model.predict(x, verbose=0)  # the states are no longer zero
    converted = convert(model)
    assert converted.layers[0].stateful
    for _ in range(2):
        _assert_same_inference(model, converted, x)


def test_arguments_carry_over_and_recurrent_dropout_keeps_the_fused_mode():
    keras_lstm = keras.layers.LSTM(
        4,
        dropout=0.2,
        recurrent_dropout=0.3,
        seed=11,
        go_backwards=True,
        return_sequences=True,
        unroll=True,
        activation="relu",
        unit_forget_bias=False,
        name="encoder",
    )
    # Keras up to 3.16 forces `implementation=1` here (the fixes table
    # shows it); the converted layer keeps the fused mode either way.
    new = convert(keras_lstm)
    assert type(new) is kr.GalLSTM
    for arg in (
        "units",
        "dropout",
        "recurrent_dropout",
        "go_backwards",
        "return_sequences",
        "unroll",
        "unit_forget_bias",
        "name",
    ):
        assert getattr(new, arg) == getattr(keras_lstm, arg), arg
    assert new.seed == keras_lstm.cell.seed == 11
    assert new.cell.activation is keras.activations.relu
    assert new.implementation == 2


def _training_output(model, x):
    return to_numpy(model(x, training=True))


def test_the_keras_seed_carries_over_to_the_training_masks():
    def keras_model(seed):
        return keras.Sequential(
            [
                keras.Input((6, 3)),
                keras.layers.LSTM(
                    8, dropout=0.5, recurrent_dropout=0.5, seed=seed
                ),
            ]
        )

    x = _x(batch=16)
    model = keras_model(5)
    first = _training_output(convert(model), x)
    # The same as the package's layer built with the Keras layer's arguments.
    direct = kr.GalLSTM(8, dropout=0.5, recurrent_dropout=0.5, seed=5)
    direct.build(x.shape)
    direct.set_weights(model.get_weights())
    np.testing.assert_allclose(_training_output(direct, x), first, atol=1e-6)
    np.testing.assert_allclose(
        _training_output(convert(model), x), first, atol=1e-6
    )
    other = convert(keras_model(6))
    other.set_weights(model.get_weights())
    assert np.abs(_training_output(other, x) - first).max() > 1e-3
    inference = to_numpy(model(x))
    assert np.abs(first - inference).max() > 1e-3  # the noise is on


def test_converted_bidirectional_directions_draw_different_masks():
    units, batch = 16, 64
    keras_lstm = keras.layers.LSTM(
        units,
        activation=None,
        recurrent_activation=None,
        dropout=0.5,
        seed=3,
        return_sequences=True,
    )
    bidirectional = keras.layers.Bidirectional(keras_lstm, merge_mode=None)
    x = np.ones((batch, 1, units), "float32")
    bidirectional.build(x.shape)
    weights = probe_weights(units, units, "c")
    bidirectional.set_weights(weights + weights)
    new = convert(bidirectional)
    forward, backward = (to_numpy(y) for y in new(x, training=True))
    # With the probe weights each output is gate c's input mask.
    assert set(np.unique(forward)) == {0.0, 2.0}
    assert set(np.unique(backward)) == {0.0, 2.0}
    assert 0.35 < np.mean(forward == backward) < 0.65


def test_converted_model_compiles_trains_and_leaves_the_original_unchanged():
    x = _x(batch=32)
    y = x[:, :, :1].sum(axis=1) / 3.0
    model = keras.Sequential(
        [
            keras.Input((6, 3)),
            keras.layers.Bidirectional(
                keras.layers.LSTM(8, recurrent_dropout=0.1, seed=1)
            ),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(0.02), "mse")
    before = [w.copy() for w in model.get_weights()]
    converted = convert(model)
    assert converted.compiled
    history = converted.fit(x, y, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    for old, now in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, now)


def test_regularizer_is_chosen_by_name_or_class_with_extra_arguments():
    model = keras.Sequential(
        [
            keras.Input((6, 3)),
            keras.layers.LSTM(4, return_sequences=True, dropout=0.1),
            keras.layers.GRU(4, return_sequences=True, recurrent_dropout=0.2),
            keras.layers.LSTM(3),
        ]
    )
    zoneout = convert(
        model,
        lstm="zoneout",
        gru=kr.SemeniutaGRU,
        lstm_kwargs={"zoneout_c": 0.5, "zoneout_h": 0.05},
        gru_kwargs={"per_step": False},
    )
    first, second, third = zoneout.layers
    assert type(first) is kr.ZoneoutLSTM and type(third) is kr.ZoneoutLSTM
    assert (first.zoneout_c, first.zoneout_h, first.dropout) == (0.5, 0.05, 0.1)
    assert type(second) is kr.SemeniutaGRU
    assert second.per_step is False and second.recurrent_dropout == 0.2
    # Semeniuta and DropConnect are a plain LSTM/GRU at inference; so is
    # zoneout at rate 0.
    for lstm, gru in (("weight_drop", "semeniuta"), ("zoneout", "zoneout")):
        other = convert(
            model, lstm=lstm, gru=gru, lstm_kwargs={"tied_masks": True}
        )
        assert other.layers[0].tied_masks
        _assert_same_inference(model, other, _x())
    # None keeps Keras's layers of that kind.
    kept = convert(model, lstm=None)
    assert [type(layer) for layer in kept.layers] == [
        keras.layers.LSTM,
        kr.GalGRU,
        keras.layers.LSTM,
    ]
    _assert_same_inference(model, kept, _x())


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(lstm="dropconnect"), ValueError, "lstm='dropconnect'"),
        (dict(gru="weight_drop"), ValueError, "gru='weight_drop'"),
        (dict(lstm=kr.GalGRU), TypeError, "`lstm`"),
        (dict(gru=keras.layers.GRU), TypeError, "`gru`"),
        (dict(lstm=3), TypeError, "lstm=3"),
        (dict(lstm_kwargs=[("zoneout_c", 0.5)]), TypeError, "`lstm_kwargs`"),
        (dict(lstm_kwargs={"zoneout_c": 0.5}), ValueError, "lstm_kwargs="),
        (
            dict(lstm="zoneout", lstm_kwargs={"zoneout_c": 1.5}),
            ValueError,
            "1.5",
        ),
        (dict(gru_kwargs={"dropout": -0.1}), ValueError, "gru_kwargs="),
        (dict(lstm_kwargs={"seed": 1}), ValueError, "`seed`"),
        (dict(lstm_kwargs={"units": 8}), TypeError, "units"),
        (
            dict(lstm_kwargs={"return_sequences": True}),
            ValueError,
            "lstm_kwargs",
        ),
        (dict(gru=None, gru_kwargs={"dropout": 0.1}), ValueError, "gru_kwargs"),
    ],
)
def test_bad_arguments_raise_naming_the_argument_and_value(
    kwargs, error, message
):
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.LSTM(2)])
    with pytest.raises(error, match=message.replace("[", r"\[")):
        convert(model, **kwargs)


def test_bad_model_argument_raises():
    with pytest.raises(TypeError, match="Argument `model`"):
        convert("model.keras")


def test_a_rate_keras_clamped_raises_naming_the_layer():
    try:
        layer = keras.layers.LSTM(2, dropout=1.5, name="enc")
    except ValueError:
        pytest.skip(
            "this Keras validates rates (docs/upstream.md): no clamped "
            "layer exists to convert"
        )
    model = keras.Sequential([keras.Input((6, 3)), layer])
    assert model.layers[0].dropout == 1.0  # Keras clamped it
    with pytest.raises(ValueError, match="'enc'.*dropout=1.0"):
        convert(model)


class _MyLSTM(keras.layers.LSTM):
    pass


def test_subclass_of_keras_lstm_is_copied_unconverted_with_a_warning():
    model = keras.Sequential([keras.Input((6, 3)), _MyLSTM(2, name="mine")])
    with pytest.warns(UserWarning, match="'mine' is a _MyLSTM"):
        converted = convert(model)
    assert type(converted.layers[0]) is _MyLSTM
    _assert_same_inference(model, converted, _x())


def test_converting_a_converted_model_changes_nothing():
    model = keras.Sequential(
        [keras.Input((6, 3)), keras.layers.GRU(3, dropout=0.1)]
    )
    once = convert(model, gru="zoneout", gru_kwargs={"zoneout_h": 0.2})
    twice = convert(once)
    assert type(twice.layers[0]) is kr.ZoneoutGRU
    assert twice.layers[0].get_config() == once.layers[0].get_config()
    _assert_same_inference(once, twice, _x())
