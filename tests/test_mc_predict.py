"""`keras_recdrop.mc_predict`: Monte Carlo dropout over stochastic passes."""

import itertools

import keras
import numpy as np
import pytest
from probes import binomial_bound
from probes import linear_probe_cell
from probes import probe_weights
from probes import to_numpy

import keras_recdrop as kr
from keras_recdrop import mc_dropout
from keras_recdrop import noise_mode
from keras_recdrop.mc_dropout import mc_predict

UNITS = 32


def _gal_probe_model(rows_units=UNITS, dense=False, seed=1):
    """A model whose output is gate c's input mask (values 0 or 2).

    One step, an input of ones and probe weights: `h = m^x_c` per unit,
    linear in the noise; its inference output is 1. With `dense`, a Dense
    layer mixes the units (still linear in the noise).
    """
    cell = linear_probe_cell(kr.GalLSTMCell, rows_units, dropout=0.5, seed=seed)
    layers = [keras.Input((1, rows_units)), kr.RNN(cell)]
    if dense:
        layers.append(keras.layers.Dense(3))
    model = keras.Sequential(layers)
    cell.set_weights(probe_weights(rows_units, rows_units, "c"))
    return model


def _ones(rows, units=UNITS, timesteps=1):
    return np.ones((rows, timesteps, units), "float32")


def _pair_agreements(samples):
    """Fraction of equal entries for every pair of samples `(N, ...)`."""
    flat = samples.reshape(samples.shape[0], -1)
    return np.array(
        [
            np.mean(flat[a] == flat[b])
            for a, b in itertools.combinations(range(len(flat)), 2)
        ]
    )


def _count_forward_passes(model, keras_dropout=False):
    """Counts the forward passes `mc_predict` runs on `model` (and their
    batch sizes), by wrapping the compiled pass it caches for the model."""
    calls = []
    original = mc_dropout._noisy_forward(model, keras_dropout)

    def counted(x):
        calls.append(len(keras.tree.flatten(x)[0]))
        return original(x)

    mc_dropout._FORWARDS[model][keras_dropout] = counted
    return calls


def test_mc_mean_of_a_probe_linear_in_the_noise_converges_to_inference():
    model = _gal_probe_model(dense=True)
    x = _ones(8)
    samples = 400
    mean, std, draws = mc_predict(
        model, x, samples=samples, seed=2, return_samples=True
    )
    inference = to_numpy(model(x))
    # Each output is a sum of 32 terms w_j m_j with Var(m_j) = 1.
    weights = to_numpy(model.layers[-1].kernel)
    sd = np.sqrt((weights**2).sum(axis=0))
    bound = 5 * sd / np.sqrt(samples)
    assert np.all(np.abs(mean - inference) < bound)
    assert np.all(np.abs(std / sd - 1) < 0.25)
    # The returned moments are those of the returned samples.
    assert draws.shape == (samples, 8, 3)
    np.testing.assert_allclose(mean, draws.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(std, draws.std(axis=0), atol=1e-5)


def test_masks_are_scaled_and_dropped_at_the_rate_with_noise_on():
    model = _gal_probe_model()
    _, _, draws = mc_predict(
        model, _ones(16), samples=20, seed=3, return_samples=True
    )
    assert set(np.unique(draws)) == {0.0, 2.0}
    assert abs(np.mean(draws == 0) - 0.5) < binomial_bound(0.5, draws.size)


@pytest.mark.parametrize("batch_size", [1024, 64, 5])
def test_samples_are_independent_within_and_across_forward_passes(batch_size):
    model = _gal_probe_model()
    calls = _count_forward_passes(model)
    rows, samples = 16, 24
    _, _, draws = mc_predict(
        model,
        _ones(rows),
        samples=samples,
        seed=4,
        batch_size=batch_size,
        return_samples=True,
    )
    # Batched: as few passes as the memory knob allows, all of one shape.
    block = min(rows, batch_size)
    copies = max(1, min(samples, batch_size // block))
    passes = -(-rows // block) * -(-samples // copies)
    assert len(calls) == passes and set(calls) == {block * copies}
    # Independent {0, 2} masks agree on half of the 16 * 32 entries; copies
    # of a row in one pass, or passes that reused a seed, would agree on all.
    agreements = _pair_agreements(draws)
    assert np.all(np.abs(agreements - 0.5) < 0.15)
    assert abs(agreements.mean() - 0.5) < 0.02


def _weight_drop_probe_model(units=256, seed=5):
    """A model whose output is the diagonal of the c-block weight mask.

    Two steps with linear activations: step 1 (input ones, identity input
    kernel of gate c, i = o = 1, f = 0) gives h_1 = 1; step 2 (input zero)
    gives h_2 = g = h_1 (U * M)_c = diag(M_c) with U_c the identity.
    """
    cell = linear_probe_cell(
        kr.WeightDropLSTMCell, units, weight_dropout=0.5, seed=seed
    )
    model = keras.Sequential([keras.Input((2, units)), kr.RNN(cell)])
    kernel, _, bias = probe_weights(units, units, "c")
    recurrent = np.zeros((units, 4 * units), "float32")
    recurrent[:, 2 * units : 3 * units] = np.eye(units)
    cell.set_weights([kernel, recurrent, bias])
    x = np.zeros((4, 2, units), "float32")
    x[:, 0] = 1.0
    return model, x


def test_dropconnect_samples_are_independent_one_call_per_sample():
    model, x = _weight_drop_probe_model()
    calls = _count_forward_passes(model)
    samples = 16
    _, std, draws = mc_predict(
        model, x, samples=samples, seed=6, return_samples=True
    )
    assert len(calls) == samples and set(calls) == {len(x)}
    assert set(np.unique(draws)) == {0.0, 2.0}
    # One weight mask per call, shared by the rows of the call ...
    np.testing.assert_array_equal(draws, draws[:, :1].repeat(len(x), 1))
    # ... and independent between samples.
    agreements = _pair_agreements(draws[:, 0])
    assert np.all(np.abs(agreements - 0.5) < 0.15)
    # A weight is kept (or dropped) in all 16 samples with probability
    # 2 ** -15: its spread is 0.
    assert np.mean(std > 0) > 0.98


def test_dropout_embedding_samples_are_independent_one_call_per_sample():
    vocabulary = 512
    layer = kr.DropoutEmbedding(
        vocabulary,
        1,
        embeddings_dropout=0.5,
        embeddings_initializer="ones",
        seed=7,
    )
    model = keras.Sequential(
        [keras.Input((32,), dtype="int32"), layer, keras.layers.Flatten()]
    )
    ids = np.arange(vocabulary).reshape(16, 32)
    calls = _count_forward_passes(model)
    _, std, draws = mc_predict(
        model, ids, samples=20, seed=8, return_samples=True
    )
    assert len(calls) == 20
    assert set(np.unique(draws)) == {0.0, 2.0}
    agreements = _pair_agreements(draws)
    assert np.all(np.abs(agreements - 0.5) < 0.15)
    assert np.mean(std > 0) > 0.98


def test_all_rates_zero_give_exactly_zero_spread():
    inp = keras.Input((6, 3))
    h = kr.GalLSTM(5, return_sequences=True, seed=1)(inp)
    h = kr.RNN(kr.ZoneoutGRUCell(4, seed=2), return_sequences=True)(h)
    h = kr.WeightDropLSTM(4, seed=3)(h)
    h = keras.layers.BatchNormalization()(h)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    x = np.random.RandomState(0).randn(7, 6, 3).astype("float32")
    calls = _count_forward_passes(model)
    mean, std, draws = mc_predict(
        model, x, samples=10, seed=1, batch_size=14, return_samples=True
    )
    # The first pass drew no random number: the model is deterministic, so
    # one pass per block of rows stands for every sample.
    assert len(calls) == 1
    assert np.all(std == 0.0)
    np.testing.assert_array_equal(draws, np.broadcast_to(mean, draws.shape))
    np.testing.assert_allclose(mean, model.predict(x, verbose=0), atol=1e-5)


def test_batch_normalization_uses_and_keeps_its_moving_statistics():
    model = keras.Sequential(
        [
            keras.Input((4, 3)),
            kr.GalGRU(6, seed=1),  # rate 0: the model is deterministic
            keras.layers.BatchNormalization(),
        ]
    )
    norm = model.layers[-1]
    norm.moving_mean.assign(np.full(6, 0.3, "float32"))
    norm.moving_variance.assign(np.full(6, 4.0, "float32"))
    before = [to_numpy(w).copy() for w in norm.weights]
    x = np.random.RandomState(1).randn(32, 4, 3).astype("float32")
    mean, std = mc_predict(model, x, samples=5, seed=1)
    for old, new in zip(before, norm.weights, strict=True):
        np.testing.assert_array_equal(old, to_numpy(new))
    # Inference normalization with the moving statistics, not the batch's.
    np.testing.assert_allclose(mean, to_numpy(model(x)), atol=1e-5)
    assert np.abs(mean - to_numpy(model(x, training=True))).max() > 0.1


def test_batch_normalization_after_a_noisy_layer_stays_in_inference():
    # The noisy layer must not hand a `training=True` on to later layers.
    model = keras.Sequential(
        [
            keras.Input((4, 3)),
            kr.GalGRU(6, dropout=0.3, recurrent_dropout=0.3, seed=1),
            keras.layers.BatchNormalization(),
        ]
    )
    norm = model.layers[-1]
    before = [to_numpy(w).copy() for w in norm.weights]
    x = np.random.RandomState(1).randn(32, 4, 3).astype("float32")
    _, std = mc_predict(model, x, samples=5, seed=1)
    assert np.all(std > 0)
    for old, new in zip(before, norm.weights, strict=True):
        np.testing.assert_array_equal(old, to_numpy(new))


@pytest.mark.parametrize(
    "layer",
    [
        lambda: keras.layers.Dropout(0.5, seed=1),
        lambda: keras.layers.SpatialDropout1D(0.5, seed=1),
        lambda: keras.layers.GaussianDropout(0.5, seed=1),
    ],
    ids=["Dropout", "SpatialDropout1D", "GaussianDropout"],
)
def test_keras_dropout_is_off_by_default_and_on_when_asked(layer):
    dropout = layer()
    model = keras.Sequential(
        [keras.Input((4, 3)), dropout, keras.layers.Flatten()]
    )
    x = np.random.RandomState(2).rand(8, 4, 3).astype("float32") + 1.0
    mean, std = mc_predict(model, x, samples=6, seed=1)
    assert np.all(std == 0.0)
    np.testing.assert_allclose(mean, x.reshape(8, -1), atol=1e-6)
    _, std, draws = mc_predict(
        model, x, samples=6, seed=1, keras_dropout=True, return_samples=True
    )
    assert np.mean(std > 0) > 0.5
    assert len({d.tobytes() for d in draws}) == 6
    # The layer is itself again afterwards.
    assert "call" not in vars(dropout)
    np.testing.assert_allclose(to_numpy(model(x)), x.reshape(8, -1))


def test_keras_dropout_shared_over_the_batch_runs_one_sample_per_call():
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dropout(0.5, noise_shape=(1, 8), seed=2),
        ]
    )
    calls = _count_forward_passes(model, keras_dropout=True)
    _, _, draws = mc_predict(
        model,
        np.ones((4, 8), "float32"),
        samples=12,
        seed=1,
        keras_dropout=True,
        return_samples=True,
    )
    assert len(calls) == 12
    assert len({d[0].tobytes() for d in draws}) > 6


def test_same_seed_same_result_other_seed_differs_model_streams_untouched():
    model = _gal_probe_model(dense=True)
    x = _ones(8)
    states = [to_numpy(v).copy() for v in model.variables]
    first = mc_predict(model, x, samples=30, seed=9, return_samples=True)
    again = mc_predict(model, x, samples=30, seed=9, return_samples=True)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = mc_predict(model, x, samples=30, seed=10, return_samples=True)
    assert np.abs(other[2] - first[2]).max() > 0.1
    fresh = [mc_predict(model, x, samples=30)[0] for _ in range(2)]
    assert np.abs(fresh[0] - fresh[1]).max() > 1e-4
    # Every variable, the seed generators' states included, is unchanged,
    # so later training calls draw what they would have drawn.
    for old, new in zip(states, model.variables, strict=True):
        np.testing.assert_array_equal(old, to_numpy(new))


def test_model_streams_are_restored_after_an_error():
    model = _gal_probe_model()
    states = [to_numpy(v).copy() for v in model.variables]
    calls = _count_forward_passes(model)
    counted = mc_dropout._FORWARDS[model][False]

    def failing(x):
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return counted(x)

    mc_dropout._FORWARDS[model][False] = failing
    with pytest.raises(RuntimeError, match="interrupted"):
        mc_predict(model, _ones(4), samples=10, seed=1, batch_size=4)
    for old, new in zip(states, model.variables, strict=True):
        np.testing.assert_array_equal(old, to_numpy(new))
    assert not noise_mode.active(False)


def test_noise_does_not_leak_into_later_inference():
    model = _gal_probe_model()
    x = _ones(4)
    before = model.predict(x, verbose=0)
    mc_predict(model, x, samples=5, seed=1)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    assert np.all(before == 1.0)
    assert not noise_mode.active(False)


def test_model_mixing_package_layers_cells_and_keras_layers():
    ids = np.random.RandomState(3).randint(1, 20, size=(6, 5))
    inp = keras.Input((5,), dtype="int32")
    h = kr.DropoutEmbedding(20, 4, embeddings_dropout=0.1, seed=1)(inp)
    h = keras.layers.Bidirectional(
        kr.ZoneoutLSTM(4, zoneout_h=0.2, return_sequences=True, seed=2)
    )(h)
    h = kr.RNN(
        keras.layers.StackedRNNCells(
            [
                kr.SemeniutaGRUCell(4, recurrent_dropout=0.2, seed=3),
                kr.GalLSTMCell(4, dropout=0.2, seed=4),
            ]
        ),
        return_sequences=True,
    )(h)
    h = keras.layers.LayerNormalization()(h)
    h = keras.layers.RNN(kr.GalGRUCell(3, recurrent_dropout=0.3, seed=5))(h)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    mean, std = mc_predict(model, ids, samples=8, seed=1)
    assert mean.shape == std.shape == (6, 2)
    assert np.all(std > 0)
    again = mc_predict(model, ids, samples=8, seed=1)
    np.testing.assert_array_equal(again[0], mean)


def test_cells_in_a_keras_rnn_draw_noise_too():
    cell = linear_probe_cell(kr.GalLSTMCell, UNITS, dropout=0.5, seed=1)
    model = keras.Sequential([keras.Input((1, UNITS)), keras.layers.RNN(cell)])
    cell.set_weights(probe_weights(UNITS, UNITS, "c"))
    _, std, draws = mc_predict(
        model, _ones(4), samples=10, seed=2, return_samples=True
    )
    assert set(np.unique(draws)) == {0.0, 2.0}
    assert np.all(np.abs(_pair_agreements(draws) - 0.5) < 0.2)


def test_structured_inputs_and_outputs():
    a, b = keras.Input((3, 2), name="a"), keras.Input((3, 2), name="b")
    h = kr.GalLSTM(4, dropout=0.3, seed=1)(keras.layers.Concatenate()([a, b]))
    model = keras.Model(
        {"a": a, "b": b}, [keras.layers.Dense(1)(h), keras.layers.Dense(2)(h)]
    )
    rng = np.random.RandomState(0)
    x = {"a": rng.rand(5, 3, 2), "b": rng.rand(5, 3, 2)}
    mean, std, draws = mc_predict(
        model, x, samples=7, seed=1, return_samples=True
    )
    assert [m.shape for m in mean] == [(5, 1), (5, 2)]
    assert [s.shape for s in std] == [(5, 1), (5, 2)]
    assert [d.shape for d in draws] == [(7, 5, 1), (7, 5, 2)]
    for m, s, d in zip(mean, std, draws, strict=True):
        np.testing.assert_allclose(m, d.mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(s, d.std(axis=0), atol=1e-5)


def test_keras_recurrent_dropout_is_not_sampled_and_says_so():
    model = keras.Sequential(
        [keras.Input((4, 3)), keras.layers.LSTM(2, recurrent_dropout=0.3)]
    )
    with pytest.warns(UserWarning, match="keras_recdrop.convert"):
        _, std = mc_predict(model, np.ones((2, 4, 3)), samples=3, seed=1)
    # Keras's RNN draws masks at inference too, unused: no spread but
    # float rounding (a row's result can depend on its place in the batch).
    assert np.all(std < 1e-6)
    _, std = mc_predict(kr.convert(model), np.ones((2, 4, 3)), samples=6)
    assert np.all(std > 0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(samples=0), ValueError, "samples=0"),
        (dict(samples=2.5), TypeError, "samples=2.5"),
        (dict(batch_size=-1), ValueError, "batch_size=-1"),
        (dict(seed="1"), TypeError, "seed='1'"),
        (dict(keras_dropout="yes"), TypeError, "keras_dropout='yes'"),
        (dict(return_samples=1), TypeError, "return_samples=1"),
    ],
)
def test_bad_arguments_raise_naming_the_argument_and_value(
    kwargs, error, message
):
    with pytest.raises(error, match=message):
        mc_predict(_gal_probe_model(), _ones(2), **kwargs)


def test_bad_model_and_inputs_raise():
    with pytest.raises(TypeError, match="Argument `model`"):
        mc_predict(kr.GalLSTM(2), _ones(2))
    a, b = keras.Input((2,)), keras.Input((2,))
    pair = keras.Model([a, b], keras.layers.Concatenate()([a, b]))
    with pytest.raises(ValueError, match="Argument `x`"):
        mc_predict(pair, [np.ones((2, 2)), np.ones((3, 2))])
    with pytest.raises(ValueError, match="Argument `x`"):
        mc_predict(_gal_probe_model(), np.ones((0, 1, UNITS)))


def test_stateful_model_raises():
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(2, 3, 4)),
            kr.GalLSTM(2, stateful=True, name="memory"),
        ]
    )
    with pytest.raises(ValueError, match="'memory' is stateful"):
        mc_predict(model, np.ones((2, 3, 4)))


class _Traces(keras.layers.Layer):
    """Counts how often its `call` runs in Python: once per trace where the
    forward pass is compiled (JAX, TensorFlow), once per call on PyTorch."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.count = 0

    def call(self, x):
        self.count += 1
        return x


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="PyTorch runs eagerly: it compiles nothing in the first place",
)
def test_repeated_calls_reuse_the_compiled_forward_pass():
    """Calls in a loop, unseeded or with the same or another seed, trace
    the noisy forward pass once per input shape, and keep drawing fresh
    (unseeded) or reproducible (seeded) noise."""
    traces = _Traces()
    model = keras.Sequential(
        [
            keras.Input((5, 3)),
            kr.GalLSTM(8, dropout=0.2, recurrent_dropout=0.2, seed=1),
            traces,
            keras.layers.Dense(1),
        ]
    )
    x = np.random.default_rng(0).random((4, 5, 3)).astype("float32")
    first = mc_predict(model, x, samples=20)
    traced = traces.count
    second = mc_predict(model, x, samples=20)
    seeded = [mc_predict(model, x, samples=20, seed=s) for s in (3, 3, 4)]
    assert traces.count == traced
    assert not np.allclose(first[0], second[0])
    np.testing.assert_array_equal(seeded[0][0], seeded[1][0])
    assert not np.allclose(seeded[0][0], seeded[2][0])
    # Another input shape traces once more; Keras's own predict is not
    # touched by any of this.
    mc_predict(model, x[:2], samples=20)
    assert traces.count == traced + 1
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_without_package_noise_the_spread_is_exactly_zero_one_warning():
    """An unconverted Keras layer with dropout draws unused masks at
    inference (its seed generator advances): the decision comes from which
    layers carry the package's noise, so the spread is exactly 0, in one
    pass, and one warning names every such layer."""
    inputs = keras.Input((6, 3))
    h = keras.layers.Bidirectional(
        keras.layers.GRU(4, recurrent_dropout=0.2, return_sequences=True)
    )(inputs)
    h = keras.layers.LSTM(3, dropout=0.2)(h)
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    x = np.random.default_rng(1).random((5, 6, 3)).astype("float32")
    calls = _count_forward_passes(model)
    with pytest.warns(UserWarning) as caught:
        mean, std = mc_predict(model, x, samples=8, seed=0)
    ours = [w for w in caught if w.category is UserWarning]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert message.count("keras.layers.GRUCell") == 2
    assert "keras.layers.LSTMCell" in message
    assert len(calls) == 1
    assert np.all(std == 0.0)
    np.testing.assert_allclose(mean, model.predict(x, verbose=0), atol=1e-6)
