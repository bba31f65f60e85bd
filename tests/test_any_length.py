"""Sequences of any length: a time dimension known only at call time.

A model built on `keras.Input((None, D))` trains on batches whose length
changes from batch to batch, on padded batches (`Masking`, `mask_zero`),
inside a `tf.function` whose time dimension is `None`, and with
`jit_compile` on and off, on every backend and every path a call can take:
TensorFlow's training loop (8 iterations at once) and its inference loop,
the PyTorch loop, the fused kernels (PyTorch's at inference), Keras's
backend loop with per-step seeds (JAX, stacks of cells), and a plain
`keras.layers.RNN` (Keras's mask protocol). Per-step noise stays fresh at
every step when the length is dynamic (a probe, not a shape).
"""

import keras
import numpy as np
import pytest
from probes import binomial_bound
from probes import linear_probe_cell
from probes import probe_weights
from probes import to_numpy

import keras_recdrop as kr

BACKEND = keras.backend.backend()
FEATURES = 3


def every_layer_and_cell():
    """Every ready-made layer, every cell (in a stack, in a plain Keras
    RNN), a `Bidirectional`, each returning sequences."""
    rates = dict(dropout=0.2, recurrent_dropout=0.2)
    cells = [
        kr.GalLSTMCell(3, **rates),
        kr.ZoneoutLSTMCell(3, zoneout_c=0.3, zoneout_h=0.1, dropout=0.2),
        kr.SemeniutaLSTMCell(3, **rates),
        kr.WeightDropLSTMCell(3, weight_dropout=0.3, dropout=0.2),
        kr.GalGRUCell(3, **rates),
        kr.ZoneoutGRUCell(3, zoneout_h=0.2, dropout=0.2),
        kr.SemeniutaGRUCell(3, recurrent_dropout=0.2, per_step=False),
        keras.layers.LSTMCell(3, dropout=0.2),
    ]
    return [
        kr.GalLSTM(3, return_sequences=True, **rates),
        kr.ZoneoutLSTM(3, zoneout_c=0.3, zoneout_h=0.1, return_sequences=True),
        kr.SemeniutaLSTM(3, return_sequences=True, **rates),
        kr.WeightDropLSTM(3, weight_dropout=0.3, return_sequences=True),
        kr.GalGRU(3, return_sequences=True, **rates),
        kr.ZoneoutGRU(3, zoneout_h=0.2, return_sequences=True),
        kr.SemeniutaGRU(3, recurrent_dropout=0.2, return_sequences=True),
        kr.RNN(cells, return_sequences=True),
        keras.layers.RNN(
            kr.GalLSTMCell(3, dropout=0.2, recurrent_dropout=0.2),
            return_sequences=True,
        ),
        keras.layers.Bidirectional(
            kr.ZoneoutLSTM(2, zoneout_c=0.3, return_sequences=True)
        ),
    ]


def _model(layers, jit_compile, masking=False):
    inputs = keras.Input((None, FEATURES))
    h = keras.layers.Masking(0.0)(inputs) if masking else inputs
    for layer in layers:
        h = layer(h)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, outputs)
    model.compile("adam", "mse", jit_compile=jit_compile)
    return model


def _batch(length, batch=4, seed=0):
    rng = np.random.default_rng(seed + length)
    x = rng.standard_normal((batch, length, FEATURES)).astype("float32")
    return x, rng.standard_normal((batch, 1)).astype("float32")


def _trains_on_lengths(model, lengths):
    """Training steps on batches of `lengths` run and update the model.

    (The gradient of the first of ten small stacked layers can round to
    no update; the output layer's weights must move.)
    """
    before = model.layers[-1].get_weights()
    for length in lengths:
        loss = model.train_on_batch(*_batch(length))
        assert np.isfinite(loss)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    after = model.layers[-1].get_weights()
    assert all(
        not np.array_equal(a, b) for a, b in zip(before, after, strict=True)
    )


def test_every_layer_trains_and_predicts_on_batches_of_any_length():
    """Eager on PyTorch, graph mode on TensorFlow, `jax.jit` on JAX."""
    model = _model(every_layer_and_cell(), jit_compile=False)
    # Lengths above and below the batch size (a time-major loop that read
    # the batch size as its length would stop early).
    _trains_on_lengths(model, [6, 3])
    x, _ = _batch(5)
    prediction = model.predict_on_batch(x)
    assert prediction.shape == (4, 1) and np.isfinite(prediction).all()
    # Inference draws nothing: the same input, the same output.
    np.testing.assert_array_equal(model.predict_on_batch(x), prediction)


def test_compiled_training_on_batches_of_any_length(monkeypatch):
    """`jit_compile=True`: XLA on TensorFlow, `torch.compile` on PyTorch
    (a new length recompiles, as for Keras's own layers).

    On PyTorch, Dynamo traces the package's code (graph breaks, guards and
    recompiles on a new length as with Keras's default compiler), but the
    captured graphs run eagerly (`backend="eager"`) instead of through
    Inductor's C++ code generation, which takes minutes on two cores and
    is not the package's concern; `benchmarks/torch_jit_compile.py` times
    the real thing.
    """
    if BACKEND == "torch":
        import torch

        compile_ = torch.compile

        def compile_eagerly(*args, **kwargs):
            return compile_(*args, **{**kwargs, "backend": "eager"})

        monkeypatch.setattr(torch, "compile", compile_eagerly)
    layers = [
        kr.ZoneoutLSTM(3, zoneout_c=0.3, zoneout_h=0.1, return_sequences=True),
        kr.RNN(
            [
                kr.GalGRUCell(3, dropout=0.2, recurrent_dropout=0.2),
                kr.SemeniutaLSTMCell(3, recurrent_dropout=0.2),
            ],
            return_sequences=True,
        ),
    ]
    model = _model(layers, jit_compile=True)
    _trains_on_lengths(model, [2, 3])
    x, _ = _batch(4)
    np.testing.assert_array_equal(
        model.predict_on_batch(x), model.predict_on_batch(x)
    )


def _padded(lengths, total):
    x = np.zeros((len(lengths), total, FEATURES), "float32")
    rng = np.random.default_rng(1)
    for row, length in enumerate(lengths):
        x[row, :length] = rng.uniform(0.5, 1.0, (length, FEATURES))
    return x


def test_padded_batches_train_and_infer_as_their_real_steps():
    """`Masking` over zero padding: a padded batch trains, and at inference
    a padded row gives what its real steps give alone (the first row is
    longer than the batch is large: a loop that read the batch size as its
    length would stop early)."""
    model = _model(every_layer_and_cell()[:8], jit_compile=False, masking=True)
    y = np.zeros((3, 1), "float32")
    assert np.isfinite(model.train_on_batch(_padded([6, 4, 2], 6), y))
    padded = _padded([5, 2, 3], 7)
    full = model.predict_on_batch(padded)
    for row, length in ((0, 5), (1, 2)):
        alone = model.predict_on_batch(padded[row : row + 1, :length])
        # The pooling averages over the real steps only (it takes the mask).
        np.testing.assert_allclose(full[row], alone[0], atol=1e-5)


def test_mask_zero_embedding_trains_on_batches_of_any_length():
    ids = keras.Input((None,), dtype="int32")
    h = kr.DropoutEmbedding(10, 4, embeddings_dropout=0.2, mask_zero=True)(ids)
    h = kr.ZoneoutGRU(3, zoneout_h=0.2, dropout=0.2)(h)
    model = keras.Model(ids, keras.layers.Dense(1)(h))
    model.compile("adam", "mse")
    rng = np.random.default_rng(2)
    for length in (5, 8):
        x = rng.integers(1, 10, (4, length)).astype("int32")
        x[1, length - 2 :] = 0  # padding
        assert np.isfinite(model.train_on_batch(x, np.zeros((4, 1))))


def _dynamic_length_call(model):
    """`model` called in training with the time dimension hidden: a
    `tf.function` with a `None` time dimension on TensorFlow; on JAX and
    PyTorch a shape is always concrete at call time."""
    if BACKEND != "tensorflow":
        return lambda x: model(x, training=True)
    import tensorflow as tf

    spec = tf.TensorSpec((None, None, model.input_shape[-1]), "float32")
    return tf.function(
        lambda x: model(x, training=True), input_signature=[spec]
    )


@pytest.mark.parametrize("layer", ["cell", "layer"])
def test_per_step_noise_is_fresh_at_every_step_of_a_dynamic_length(layer):
    """Zoneout's keep decisions of `h`, read from a probe (`h_t == x_t`
    iff unit updated), differ from step to step when the length is only
    known at call time, in a training call (TensorFlow's training loop)."""
    units, batch = 16, 256
    if layer == "cell":
        rnn = kr.RNN(
            linear_probe_cell(kr.ZoneoutLSTMCell, units, zoneout_h=0.5, seed=1),
            return_sequences=True,
        )
    else:
        rnn = kr.ZoneoutLSTM(
            units,
            activation=None,
            recurrent_activation=None,
            zoneout_h=0.5,
            seed=1,
            return_sequences=True,
        )
    inputs = keras.Input((None, units))
    model = keras.Model(inputs, rnn(inputs))
    rnn.cell.set_weights(probe_weights(units, units, "c"))
    call = _dynamic_length_call(model)
    for timesteps in (6, 9):
        steps = np.arange(1, timesteps + 1, dtype="float32")
        x = np.ascontiguousarray(
            np.broadcast_to(steps[None, :, None], (batch, timesteps, units))
        )
        h = to_numpy(call(x))
        kept = np.concatenate([h[:, :1] == 0, h[:, 1:] == h[:, :-1]], axis=1)
        assert np.all((h == steps[None, :, None]) ^ kept)
        assert abs(kept.mean() - 0.5) < binomial_bound(0.5, kept.size)
        for t in range(2, timesteps):
            agreement = np.mean(kept[:, t] == kept[:, 1])
            assert abs(agreement - 0.5) < binomial_bound(0.5, kept[:, t].size)
