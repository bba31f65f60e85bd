"""Embedding dropout and the norm stabilizer, proven on the active backend.

`DropoutEmbedding` is probed through its outputs: with an embedding matrix
of ones and each word looked up once, output `[..., 0]` *is* the word-type
mask. `NormStabilizer` is checked against a NumPy reference of its penalty.
"""

import inspect

import keras
import numpy as np
import pytest
from keras import ops
from probes import binomial_bound
from probes import to_numpy

from keras_recdrop.embedding import DropoutEmbedding
from keras_recdrop.norm_stabilizer import NormStabilizer


# ---------------------------------------------------------------- helpers
def random_embeddings(vocab=20, dim=5, seed=0):
    rng = np.random.RandomState(seed)
    return rng.uniform(0.5, 1.5, (vocab, dim)).astype("float32") * np.where(
        rng.rand(vocab, dim) < 0.5, -1.0, 1.0
    ).astype("float32")


def random_ids(vocab=20, shape=(4, 7), seed=1):
    return np.random.RandomState(seed).randint(0, vocab, shape).astype("int32")


def built_embedding(weights, **kwargs):
    layer = DropoutEmbedding(*weights.shape, **kwargs)
    layer.build()
    layer.set_weights([weights])
    return layer


def word_type_mask(rate, vocab=2000, seed=None, calls=1):
    """Masks of `calls` training calls, one entry per word type `(vocab,)`."""
    layer = built_embedding(
        np.ones((vocab, 1), "float32"), embeddings_dropout=rate, seed=seed
    )
    ids = np.arange(vocab, dtype="int32")[None, :]
    return [to_numpy(layer(ids, training=True))[0, :, 0] for _ in range(calls)]


def norm_penalty_reference(h, beta, mask=None):
    norms = np.linalg.norm(h.astype("float64"), axis=-1)
    squared = (norms[:, 1:] - norms[:, :-1]) ** 2
    pairs = (
        np.ones_like(squared) if mask is None else mask[:, 1:] & mask[:, :-1]
    )
    if pairs.sum() == 0:
        return 0.0
    return beta * (squared * pairs).sum() / pairs.sum()


def random_sequence(batch=4, timesteps=6, units=5, seed=2):
    rng = np.random.RandomState(seed)
    return rng.randn(batch, timesteps, units).astype("float32")


def zero_loss(y_true, y_pred):
    return ops.mean(y_pred) * 0.0


# ====================================================== DropoutEmbedding
@pytest.mark.parametrize(
    "rate, training", [(0.0, True), (0.0, False), (0.5, False)]
)
def test_zero_rate_and_inference_equal_keras_embedding(rate, training):
    weights = random_embeddings()
    ids = random_ids()
    reference = keras.layers.Embedding(*weights.shape)
    reference.build()
    reference.set_weights([weights])
    layer = built_embedding(weights, embeddings_dropout=rate, seed=3)
    np.testing.assert_array_equal(
        to_numpy(layer(ids, training=training)), to_numpy(reference(ids))
    )


@pytest.mark.parametrize("rate", [0.25, 0.6])
def test_training_rows_are_zero_or_scaled_original_rows(rate):
    weights = random_embeddings(vocab=64, dim=6)
    ids = random_ids(vocab=64, shape=(8, 12))
    layer = built_embedding(weights, embeddings_dropout=rate, seed=4)
    out = to_numpy(layer(ids, training=True))
    looked_up = weights[ids]
    scaled = looked_up * np.float32(1.0 / (1.0 - rate))
    dropped = np.all(out == 0.0, axis=-1)
    kept = np.all(out == scaled, axis=-1)
    assert np.all(dropped | kept)
    assert dropped.any() and kept.any()


def test_same_word_gets_the_same_decision_everywhere_in_a_call():
    vocab = 40
    # Every id occurs many times, in many samples and positions.
    ids = random_ids(vocab=vocab, shape=(16, 30), seed=5)
    assert len(np.unique(ids)) == vocab
    layer = built_embedding(
        np.ones((vocab, 3), "float32"), embeddings_dropout=0.5, seed=6
    )
    for _ in range(3):
        out = to_numpy(layer(ids, training=True))
        decisions = {}
        for word, value in zip(ids.ravel(), out.reshape(-1, 3), strict=True):
            assert value[0] == value[1] == value[2]
            decisions.setdefault(word, set()).add(float(value[0]))
        assert all(len(d) == 1 for d in decisions.values())
        assert {d.pop() for d in decisions.values()} == {0.0, 2.0}


def test_word_type_decisions_are_fresh_at_every_call():
    first, second, third = word_type_mask(0.5, vocab=400, seed=7, calls=3)
    # Two independent masks of 400 fair coins agree on about half the words.
    for a, b in [(first, second), (second, third), (first, third)]:
        agreement = np.mean(a == b)
        assert abs(agreement - 0.5) < binomial_bound(0.5, a.size)


def test_same_seed_gives_the_same_word_type_masks():
    a = word_type_mask(0.3, vocab=300, seed=8, calls=2)
    b = word_type_mask(0.3, vocab=300, seed=8, calls=2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_dropped_fraction_of_word_types_is_p(rate):
    (mask,) = word_type_mask(rate, vocab=2000, seed=9)
    scale = np.float32(1.0 / (1.0 - rate))
    assert set(np.unique(mask)) == {np.float32(0.0), scale}
    dropped = np.mean(mask == 0.0)
    assert abs(dropped - rate) < binomial_bound(rate, mask.size)


def test_monte_carlo_mean_converges_to_inference_output():
    rate, calls = 0.4, 300
    weights = random_embeddings(vocab=12, dim=4)
    ids = random_ids(vocab=12, shape=(2, 6))
    layer = built_embedding(weights, embeddings_dropout=rate, seed=10)
    expected = to_numpy(layer(ids, training=False))
    mean = np.mean(
        [to_numpy(layer(ids, training=True)) for _ in range(calls)], axis=0
    )
    # Each entry is e * m / (1 - p): standard deviation |e| sqrt(p / (1-p)).
    sigma = np.abs(expected) * np.sqrt(rate / (1.0 - rate) / calls)
    assert np.all(np.abs(mean - expected) < 5.0 * sigma)


def test_gradient_reaches_only_kept_rows_scaled():
    rate, vocab = 0.5, 30
    weights = random_embeddings(vocab=vocab, dim=2)
    ids = np.arange(vocab, dtype="int32")[None, :]
    inputs = keras.Input((vocab,), dtype="int32", batch_size=1)
    layer = DropoutEmbedding(vocab, 2, embeddings_dropout=rate, seed=11)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([weights])
    # Loss sum(y) / size: d loss / d E[v] = mask_v / size for every entry.
    model.compile(
        optimizer=keras.optimizers.SGD(1.0),
        loss=lambda y_true, y_pred: ops.sum(y_pred) / (vocab * 2),
    )
    model.fit(ids, np.zeros((1, vocab, 2), "float32"), epochs=1, verbose=0)
    step = (weights - to_numpy(layer.embeddings)) * (vocab * 2)
    kept = step[:, 0] > 1.0
    np.testing.assert_allclose(step[kept], 1.0 / (1.0 - rate), rtol=1e-4)
    np.testing.assert_allclose(step[~kept], 0.0, atol=1e-4)
    assert kept.any() and (~kept).any()


def test_mask_zero_still_masks_padding_downstream():
    weights = random_embeddings(vocab=10, dim=3)
    ids = np.array([[3, 1, 0, 0], [2, 0, 0, 0]], "int32")
    layer = built_embedding(weights, embeddings_dropout=0.5, mask_zero=True)
    np.testing.assert_array_equal(to_numpy(layer.compute_mask(ids)), ids != 0)
    inputs = keras.Input((4,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(layer(inputs))
    model = keras.Model(inputs, pooled)
    got = to_numpy(model(ids, training=False))
    expected = np.stack([weights[row[row != 0]].mean(axis=0) for row in ids])
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_int8_quantized_layer_drops_word_types_of_the_quantized_lookup():
    weights = random_embeddings(vocab=30, dim=4)
    ids = random_ids(vocab=30, shape=(3, 10))
    reference = keras.layers.Embedding(30, 4)
    reference.build()
    reference.set_weights([weights])
    reference.quantize("int8")
    layer = built_embedding(weights, embeddings_dropout=0.5, seed=12)
    layer.quantize("int8")
    assert layer.quantization_mode == "int8"
    expected = to_numpy(reference(ids))
    np.testing.assert_array_equal(to_numpy(layer(ids)), expected)
    out = to_numpy(layer(ids, training=True))
    dropped = np.all(out == 0.0, axis=-1)
    kept = np.all(out == expected * np.float32(2.0), axis=-1)
    assert np.all(dropped | kept) and dropped.any() and kept.any()


def test_embedding_config_round_trip_keeps_every_argument():
    layer = DropoutEmbedding(
        12,
        3,
        embeddings_dropout=0.3,
        seed=5,
        mask_zero=True,
        embeddings_initializer="ones",
        embeddings_regularizer="l2",
        name="emb",
    )
    config = layer.get_config()
    assert config["embeddings_dropout"] == 0.3 and config["seed"] == 5
    clone = DropoutEmbedding.from_config(config)
    assert clone.get_config() == config
    assert clone.mask_zero and clone.embeddings_dropout == 0.3


def test_every_embedding_argument_is_named_and_reaches_keras():
    """The signature shows `keras.layers.Embedding`'s arguments, with its
    defaults, and each one does what it does for Keras's layer."""
    theirs = inspect.signature(keras.layers.Embedding.__init__).parameters
    ours = inspect.signature(DropoutEmbedding.__init__).parameters
    for name, parameter in theirs.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        assert name in ours, name
        assert ours[name].default == parameter.default, name
    matrix = np.linspace(-1.0, 1.0, 8 * 3).astype("float32").reshape(8, 3)
    arguments = dict(
        embeddings_regularizer="l2", mask_zero=True, weights=matrix
    )
    ids = np.array([[1, 7, 0], [3, 3, 5]])
    keras_layer = keras.layers.Embedding(8, 3, **arguments)
    layer = DropoutEmbedding(8, 3, embeddings_dropout=0.5, seed=1, **arguments)
    np.testing.assert_array_equal(
        to_numpy(layer(ids, training=False)),
        to_numpy(keras_layer(ids, training=False)),
    )
    np.testing.assert_array_equal(to_numpy(layer.embeddings), matrix)
    assert layer.mask_zero
    assert len(layer.losses) == 1  # the l2 penalty of the embeddings
    # (Keras's layer refuses initial `weights` and a constraint with LoRA.)
    layer = DropoutEmbedding(8, 3, lora_rank=2, lora_alpha=6)
    keras_layer = keras.layers.Embedding(8, 3, lora_rank=2, lora_alpha=6)
    assert (layer.lora_rank, layer.lora_alpha) == (2, 6)
    layer.build()
    keras_layer.build()
    # (Keras 3.15's `build` resets `lora_alpha` to the rank; 3.16 keeps it.)
    assert layer.lora_enabled and layer.lora_alpha == keras_layer.lora_alpha
    layer = DropoutEmbedding(
        8, 3, embeddings_initializer="ones", embeddings_constraint="non_neg"
    )
    layer.build()
    np.testing.assert_array_equal(to_numpy(layer.embeddings), np.ones((8, 3)))
    assert isinstance(layer.embeddings_constraint, keras.constraints.NonNeg)


def test_model_with_both_layers_saves_and_loads(tmp_path):
    ids = random_ids(vocab=15, shape=(3, 5))
    inputs = keras.Input((5,), dtype="int32")
    x = DropoutEmbedding(15, 4, embeddings_dropout=0.4, seed=2)(inputs)
    x = NormStabilizer(beta=2.5, name="stab")(x)
    model = keras.Model(inputs, x)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[1], DropoutEmbedding)
    assert loaded.layers[1].embeddings_dropout == 0.4
    assert loaded.layers[1].seed == 2
    assert isinstance(loaded.layers[2], NormStabilizer)
    assert loaded.layers[2].beta == 2.5
    np.testing.assert_array_equal(
        to_numpy(loaded(ids, training=False)), to_numpy(model(ids))
    )


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan")])
def test_embeddings_dropout_outside_range_raises_value_error(value):
    with pytest.raises(ValueError, match=rf"`embeddings_dropout`.*{value!r}"):
        DropoutEmbedding(10, 3, embeddings_dropout=value)


@pytest.mark.parametrize("value", ["0.5", True, None])
def test_embeddings_dropout_of_wrong_type_raises_type_error(value):
    with pytest.raises(TypeError, match=r"`embeddings_dropout`"):
        DropoutEmbedding(10, 3, embeddings_dropout=value)


def test_embedding_seed_of_wrong_type_raises_type_error():
    with pytest.raises(TypeError, match=r"`seed`.*1\.5"):
        DropoutEmbedding(10, 3, seed=1.5)


# ========================================================= NormStabilizer
@pytest.mark.parametrize("training", [True, False])
def test_norm_stabilizer_returns_its_input_unchanged(training):
    h = random_sequence()
    mask = np.ones(h.shape[:2], bool)
    mask[0, 3:] = False
    layer = NormStabilizer(beta=10.0)
    np.testing.assert_array_equal(to_numpy(layer(h, training=training)), h)
    out = layer(h, training=training, mask=mask)
    np.testing.assert_array_equal(to_numpy(out), h)


@pytest.mark.parametrize("beta", [0.5, 37.0])
def test_added_loss_equals_mean_squared_norm_change(beta):
    h = random_sequence(batch=5, timesteps=7, units=6)
    layer = NormStabilizer(beta=beta)
    layer(h, training=True)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(
        to_numpy(layer.losses[0]), norm_penalty_reference(h, beta), rtol=1e-5
    )


def test_no_loss_at_inference_or_with_zero_beta():
    h = random_sequence()
    layer = NormStabilizer(beta=10.0)
    layer(h, training=True)
    assert len(layer.losses) == 1
    layer(h, training=False)
    assert layer.losses == []
    layer(h)
    assert layer.losses == []
    zero = NormStabilizer(beta=0.0)
    zero(h, training=True)
    assert zero.losses == []


def test_constant_norm_sequences_have_zero_penalty():
    # Rotating a vector changes h_t but not ||h_t||.
    angles = np.linspace(0.0, 3.0, 6)
    h = np.stack([np.cos(angles), np.sin(angles)], -1)[None].astype("float32")
    layer = NormStabilizer(beta=100.0)
    layer(np.concatenate([h, 3 * h]), training=True)
    np.testing.assert_allclose(to_numpy(layer.losses[0]), 0.0, atol=1e-4)


def test_masked_penalty_counts_only_pairs_of_unmasked_steps():
    h = random_sequence(batch=4, timesteps=6, units=3, seed=3)
    mask = np.array(
        [
            [1, 1, 1, 1, 1, 1],
            [1, 1, 1, 0, 0, 0],
            [1, 0, 1, 1, 0, 1],
            [0, 0, 0, 0, 0, 1],
        ],
        bool,
    )
    layer = NormStabilizer(beta=4.0)
    layer(h, training=True, mask=mask)
    expected = norm_penalty_reference(h, 4.0, mask)
    assert expected != norm_penalty_reference(h, 4.0)
    np.testing.assert_allclose(to_numpy(layer.losses[0]), expected, rtol=1e-5)
    # No valid pair at all: a zero penalty, not NaN.
    layer(h, training=True, mask=np.eye(4, 6, dtype=bool))
    assert to_numpy(layer.losses[0]) == 0.0
    np.testing.assert_array_equal(
        to_numpy(layer.compute_mask(h, ops.convert_to_tensor(mask))), mask
    )


def test_fit_minimizes_the_penalty_and_masked_padding_stays_finite():
    # Embedding -> stabilizer; the compiled loss is zero, so the fit loss is
    # the penalty alone. Padding (id 0, masked) has a zero embedding: a
    # NaN gradient of the norm at 0 would poison the weights.
    vocab, beta = 20, 1000.0
    rng = np.random.RandomState(4)
    ids = rng.randint(1, vocab, (8, 6)).astype("int32")
    ids[:3, 4:] = 0
    weights = random_embeddings(vocab=vocab, dim=4)
    weights[0] = 0.0
    inputs = keras.Input((6,), dtype="int32", batch_size=8)
    embedding = DropoutEmbedding(vocab, 4, mask_zero=True, seed=1)
    model = keras.Model(inputs, NormStabilizer(beta)(embedding(inputs)))
    embedding.set_weights([weights])
    model.compile(optimizer=keras.optimizers.SGD(3e-4), loss=zero_loss)
    y = np.zeros((8, 6, 4), "float32")
    history = model.fit(ids, y, epochs=30, batch_size=8, verbose=0)
    losses = history.history["loss"]
    # One batch per epoch: the first loss is the penalty before any update.
    initial = norm_penalty_reference(weights[ids], beta, ids != 0)
    np.testing.assert_allclose(losses[0], initial, rtol=1e-4)
    assert np.all(np.isfinite(to_numpy(embedding.embeddings)))
    final = norm_penalty_reference(
        to_numpy(embedding.embeddings)[ids], beta, ids != 0
    )
    assert final < 0.1 * initial
    # evaluate() runs in inference mode: no penalty at all.
    assert model.evaluate(ids, y, verbose=0) == 0.0


def test_model_losses_hold_the_penalty_of_a_training_call():
    h = random_sequence()
    inputs = keras.Input(h.shape[1:])
    model = keras.Model(inputs, NormStabilizer(beta=3.0)(inputs * 2.0))
    model(h, training=True)
    assert len(model.losses) == 1
    np.testing.assert_allclose(
        to_numpy(model.losses[0]), norm_penalty_reference(2 * h, 3.0), rtol=1e-5
    )


def test_norm_stabilizer_config_round_trip():
    layer = NormStabilizer(beta=12.5, name="stab")
    config = layer.get_config()
    assert config["beta"] == 12.5
    clone = NormStabilizer.from_config(config)
    assert clone.beta == 12.5 and clone.get_config() == config


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_bad_beta_values_raise_value_error(value):
    with pytest.raises(ValueError, match=rf"`beta`.*{value!r}"):
        NormStabilizer(beta=value)


@pytest.mark.parametrize("value", ["1.0", True, None, [1.0]])
def test_beta_of_wrong_type_raises_type_error(value):
    with pytest.raises(TypeError, match=r"`beta`"):
        NormStabilizer(beta=value)


def test_non_sequence_input_raises_value_error():
    with pytest.raises(ValueError, match=r"\(batch, time, units\)"):
        NormStabilizer(beta=1.0)(np.ones((2, 3), "float32"))
