"""`keras_recdrop.RNN`'s loop against `keras.layers.RNN`'s.

`keras_recdrop.RNN` runs its own loop (a stateless seed per step for
per-step noise, weights derived before the loop) and draws no mask for a
call at inference. With per-sequence masks only, both loops must compute the
same function from the same seed. The per-gate masked products' hand-written
gradient is checked against the backend's autodiff here too.
"""

import keras
import numpy as np
import pytest
from probes import to_numpy

import keras_recdrop as kr

# Cells whose noise is all per-sequence: a plain `keras.layers.RNN` draws
# the very same masks from the same seed, so outputs must match exactly.
PER_SEQUENCE_CONFIGS = {
    "gal_lstm": (kr.GalLSTMCell, dict(dropout=0.3, recurrent_dropout=0.4)),
    "gal_lstm_tied": (
        kr.GalLSTMCell,
        dict(dropout=0.3, recurrent_dropout=0.4, tied_masks=True),
    ),
    "semeniuta_lstm_seq": (
        kr.SemeniutaLSTMCell,
        dict(dropout=0.3, recurrent_dropout=0.4, per_step=False),
    ),
    "weight_drop_lstm": (
        kr.WeightDropLSTMCell,
        dict(dropout=0.3, weight_dropout=0.5),
    ),
    "gal_gru": (kr.GalGRUCell, dict(dropout=0.3, recurrent_dropout=0.4)),
    "gal_gru_reset_before": (
        kr.GalGRUCell,
        dict(dropout=0.3, recurrent_dropout=0.4, reset_after=False),
    ),
    "gal_gru_tied": (
        kr.GalGRUCell,
        dict(dropout=0.3, recurrent_dropout=0.4, tied_masks=True),
    ),
}


def _inputs(batch=6, timesteps=5, features=3):
    rng = np.random.RandomState(3)
    return rng.randn(batch, timesteps, features).astype("float32")


def _weights_of(cell_layer, seed=0):
    rng = np.random.RandomState(seed)
    return [
        rng.uniform(-0.5, 0.5, w.shape).astype("float32")
        for w in cell_layer.get_weights()
    ]


def _run(layer_cls, cell, x, weights, training, **kwargs):
    layer = layer_cls(cell, return_sequences=True, **kwargs)
    layer.build(x.shape)
    layer.cell.set_weights(weights)
    return to_numpy(layer(x, training=training))


@pytest.mark.parametrize("implementation", [1, 2])
@pytest.mark.parametrize("name", sorted(PER_SEQUENCE_CONFIGS))
def test_recdrop_loop_equals_keras_loop_for_the_same_seed(name, implementation):
    """Same seed, same per-sequence masks: the same outputs."""
    cls, kwargs = PER_SEQUENCE_CONFIGS[name]
    x = _inputs()
    probe = keras.layers.RNN(cls(4, **kwargs))
    probe.build(x.shape)
    weights = _weights_of(probe.cell)

    def cell():
        return cls(4, seed=11, implementation=implementation, **kwargs)

    ours = _run(kr.RNN, cell(), x, weights, training=True)
    keras_loop = _run(keras.layers.RNN, cell(), x, weights, training=True)
    no_noise = _run(keras.layers.RNN, cell(), x, weights, training=False)
    np.testing.assert_allclose(ours, keras_loop, atol=1e-5)
    # The comparison is between noisy outputs, not two plain LSTMs/GRUs.
    assert np.abs(ours - no_noise).max() > 1e-3


@pytest.mark.parametrize("go_backwards", [False, True])
def test_recdrop_loop_equals_keras_loop_with_masking_and_direction(
    go_backwards,
):
    """Padded steps and reversed reading: the same outputs as Keras's."""
    cls, kwargs = PER_SEQUENCE_CONFIGS["gal_lstm"]
    x = _inputs(batch=4, timesteps=6)
    mask = np.ones((4, 6), dtype=bool)
    mask[:, 4:] = False
    mask[1, 2:] = False
    layers = []
    for layer_cls in (kr.RNN, keras.layers.RNN):
        layer = layer_cls(
            cls(4, seed=3, **kwargs),
            return_sequences=True,
            go_backwards=go_backwards,
        )
        layer.build(x.shape)
        layers.append(layer)
    ours_layer, plain_layer = layers
    weights = _weights_of(plain_layer.cell, seed=5)
    for layer in layers:
        layer.cell.set_weights(weights)
    # `keras_recdrop.RNN` derives a backward stream from the seed: give the
    # plain layer's cell the same stream, so both draw the same masks.
    plain_layer.cell.seed_generator.state.assign(
        ours_layer.cell.seed_generator.state.value
    )
    ours = to_numpy(ours_layer(x, mask=mask, training=True))
    plain = to_numpy(plain_layer(x, mask=mask, training=True))
    np.testing.assert_allclose(ours, plain, atol=1e-5)
    inference = to_numpy(plain_layer(x, mask=mask, training=False))
    assert np.abs(ours - inference).max() > 1e-3
    np.testing.assert_allclose(
        to_numpy(ours_layer(x, mask=mask, training=False)),
        inference,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (kr.GalLSTMCell, dict(dropout=0.5, recurrent_dropout=0.5)),
        (kr.ZoneoutLSTMCell, dict(zoneout_c=0.5, dropout=0.5)),
        (kr.WeightDropLSTMCell, dict(weight_dropout=0.5, dropout=0.5)),
        (kr.GalGRUCell, dict(dropout=0.5, recurrent_dropout=0.5)),
    ],
)
def test_inference_draws_nothing_from_the_seed_stream(cls, kwargs):
    """A call at `training=False` leaves the seed generator untouched.

    Keras's `RNN` draws the per-sequence masks before its loop whatever the
    mode; unused at inference, they would still advance the stream and put
    random ops in inference graphs.
    """
    x = _inputs()
    layer = kr.RNN(cls(4, seed=7, **kwargs))
    layer(x, training=False)  # builds

    def state():
        return keras.ops.convert_to_numpy(layer.cell.seed_generator.state)

    before = state()
    layer(x, training=False)
    np.testing.assert_array_equal(state(), before)
    layer(x, training=True)
    assert not np.array_equal(state(), before)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (kr.ZoneoutLSTMCell, dict(zoneout_c=0.5, zoneout_h=0.1)),
        (kr.SemeniutaGRUCell, dict(recurrent_dropout=0.5)),
    ],
)
def test_per_step_noise_takes_one_draw_per_call_from_the_seed_stream(
    cls, kwargs
):
    """All steps' noise comes from one pre-loop draw of step seeds.

    The generator advances by exactly one draw per training call however
    long the sequence: the steps draw from stateless seeds. (That the
    noise is fresh at every step is proven in test_semantics.py and
    test_gru.py.)
    """
    x = np.ones((4, 12, 3), dtype="float32")
    layer = kr.RNN(cls(4, seed=7, **kwargs), return_sequences=True)
    layer(x[:, :2], training=False)  # builds

    def state():
        return keras.ops.convert_to_numpy(layer.cell.seed_generator.state)

    for length in (2, 12):
        before = state()
        layer(x[:, :length], training=True)
        np.testing.assert_array_equal(state() - before, [0, 1])


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (kr.GalLSTMCell, dict(dropout=0.3, recurrent_dropout=0.4)),
        (kr.WeightDropLSTMCell, dict(weight_dropout=0.5)),
        (kr.GalGRUCell, dict(recurrent_dropout=0.4, reset_after=False)),
    ],
)
def test_weights_derived_before_the_loop_do_not_outlive_the_call(cls, kwargs):
    """Gate blocks and masked kernels are derived per call, then dropped.

    After the weights are set to zero, every product with a weight is zero
    whatever the masks, so from a non-zero initial state the outputs must
    equal Keras's own cell with zero weights; a block or masked kernel kept
    from the call before the update would not.
    """
    x = _inputs()
    rng = np.random.RandomState(8)
    layer = kr.RNN(cls(4, seed=5, **kwargs))
    first = to_numpy(layer(x, training=True))
    is_lstm = isinstance(layer.cell, kr.LSTMCellBase)
    states = [
        rng.uniform(-1, 1, (x.shape[0], 4)).astype("float32")
        for _ in range(2 if is_lstm else 1)
    ]
    keras_cell = (
        keras.layers.LSTMCell(4)
        if is_lstm
        else keras.layers.GRUCell(4, reset_after=layer.cell.reset_after)
    )
    reference = keras.layers.RNN(keras_cell)
    reference.build(x.shape)
    reference.set_weights([np.zeros_like(w) for w in reference.get_weights()])
    expected = to_numpy(reference(x, initial_state=states))
    assert np.abs(first - expected).max() > 1e-3
    layer.cell.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    np.testing.assert_allclose(
        to_numpy(layer(x, initial_state=states, training=True)),
        expected,
        atol=1e-6,
    )
    step_states = states if is_lstm else states[0]
    output, _ = layer.cell(x[:, 0], step_states, training=True)
    expected_step = to_numpy(keras_cell(x[:, 0], step_states)[0])
    np.testing.assert_allclose(to_numpy(output), expected_step, atol=1e-6)


def _autodiff_masked_products(x, masks, kernels):
    # The reference: the plain expression, differentiated by the backend.
    if len(masks) == 1:
        masks = masks * len(kernels)
    pairs = zip(masks, kernels, strict=True)
    parts = [keras.ops.matmul(x * m, k) for m, k in pairs]
    return keras.ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]


def _autodiff_apply_mask(x, mask, scale=None):
    if scale is None:
        return x * mask
    return keras.ops.where(mask, x * scale, 0.0)


GRADIENT_CONFIGS = {
    **PER_SEQUENCE_CONFIGS,
    "semeniuta_lstm_step": (
        kr.SemeniutaLSTMCell,
        dict(dropout=0.3, recurrent_dropout=0.4),
    ),
    "semeniuta_gru_step": (
        kr.SemeniutaGRUCell,
        dict(dropout=0.3, recurrent_dropout=0.4, tied_masks=True),
    ),
}


@pytest.mark.parametrize("implementation", [1, 2])
@pytest.mark.parametrize("name", sorted(GRADIENT_CONFIGS))
def test_masked_products_and_masks_have_the_autodiff_gradient(
    name, implementation, monkeypatch
):
    # The masked products `(x * m_k) K_k` (shared or per-gate masks) and
    # the masking of Semeniuta's update have hand-written gradients (a
    # step keeps `x` and the mask, never the masked copies); the gradients
    # of every weight, including a Dense layer before the RNN (which needs
    # dL/dx), must equal the backend's autodiff of the plain expressions,
    # for the same seed and masks.
    from probes import loss_and_gradients

    from keras_recdrop import noise as noise_lib
    from keras_recdrop import products

    cls, kwargs = GRADIENT_CONFIGS[name]
    x = _inputs()

    def model():
        layer = kr.RNN(
            cls(4, seed=11, implementation=implementation, **kwargs),
            return_sequences=True,
        )
        net = keras.Sequential([keras.layers.Dense(3), layer])
        net.build(x.shape)
        rng = np.random.RandomState(5)
        net.set_weights(
            [
                rng.uniform(-0.5, 0.5, w.shape).astype("float32")
                for w in net.get_weights()
            ]
        )
        return net

    y, grads = loss_and_gradients(model(), x)
    monkeypatch.setattr(products, "masked_products", _autodiff_masked_products)
    monkeypatch.setattr(noise_lib, "apply_mask", _autodiff_apply_mask)
    y_ref, grads_ref = loss_and_gradients(model(), x)
    np.testing.assert_allclose(y, y_ref, atol=1e-6)
    assert len(grads) == len(grads_ref) == 5
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert np.abs(g_ref).max() > 0
        np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------ the PyTorch loop
EAGER_CONFIGS = {
    **PER_SEQUENCE_CONFIGS,
    "zoneout_lstm": (
        kr.ZoneoutLSTMCell,
        dict(zoneout_c=0.4, zoneout_h=0.3, dropout=0.3, recurrent_dropout=0.2),
    ),
    "semeniuta_lstm": (
        kr.SemeniutaLSTMCell,
        dict(recurrent_dropout=0.4, dropout=0.3),
    ),
    "zoneout_gru": (kr.ZoneoutGRUCell, dict(zoneout_h=0.4, dropout=0.3)),
    "semeniuta_gru": (kr.SemeniutaGRUCell, dict(recurrent_dropout=0.4)),
}


def _backend_loop_instead(monkeypatch):
    """Makes `keras_recdrop.RNN` run Keras's backend loop on PyTorch too."""

    from keras_recdrop import loops

    def scanned(cell, context, step_seeds, *args, **options):
        return loops.scanned_loop(
            cell,
            ((cell, context),),
            () if step_seeds is None else ((cell, step_seeds),),
            *args,
            training=context.training,
            unroll=False,
            **options,
        )

    monkeypatch.setattr(loops, "torch_loop", scanned)


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="keras_recdrop.RNN runs its own eager loop on PyTorch only",
)
@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(go_backwards=True),
        dict(masked=True),
        dict(masked=True, zero_output_for_mask=True),
        dict(masked=True, go_backwards=True),
        dict(return_sequences=False, masked=True),
    ],
    ids=lambda o: ",".join(sorted(o)) or "plain",
)
@pytest.mark.parametrize("name", sorted(EAGER_CONFIGS))
def test_pytorch_loop_equals_the_backend_loop(name, options, monkeypatch):
    """Input projections before the loop, lean steps: the same function.

    Same seed, same step seeds and masks: outputs and every gradient equal
    those of Keras's backend loop, with masking, `go_backwards`,
    `zero_output_for_mask` and `return_sequences=False`.
    """
    from probes import loss_and_gradients

    cls, kwargs = EAGER_CONFIGS[name]
    options = dict(options)
    masked = options.pop("masked", False)
    options.setdefault("return_sequences", True)
    x = _inputs(batch=4, timesteps=6)
    mask = np.ones((4, 6), dtype=bool)
    mask[:, 5:] = False
    mask[1, 2:] = False

    def model():
        inputs = keras.Input((6, 3), batch_size=4)
        layer = kr.RNN(cls(4, seed=9, **kwargs), **options)
        out = layer(inputs, mask=mask if masked else None)
        result = keras.Model(inputs, out)
        layer.cell.set_weights(_weights_of(layer.cell, seed=2))
        return result

    eager = loss_and_gradients(model(), x)
    _backend_loop_instead(monkeypatch)
    scanned = loss_and_gradients(model(), x)
    np.testing.assert_allclose(eager[0], scanned[0], atol=1e-5)
    for a, b in zip(eager[1], scanned[1], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="keras_recdrop.RNN runs its own eager loop on PyTorch only",
)
@pytest.mark.parametrize("name", ["zoneout_lstm", "semeniuta_gru"])
def test_pytorch_loop_carries_stateful_states_as_the_backend_loop(
    name, monkeypatch
):
    """`stateful=True`: each call starts from the states the previous call
    left (masked steps keep theirs), in training and at inference, with the
    same values as Keras's backend loop, and `reset_states()` starts over.
    """
    cls, kwargs = EAGER_CONFIGS[name]
    x = _inputs(batch=4, timesteps=6)
    mask = np.ones((4, 6), dtype=bool)
    mask[1, 3:] = False

    def calls():
        layer = kr.RNN(
            cls(4, seed=9, **kwargs), stateful=True, return_sequences=True
        )
        layer.build(x.shape)
        layer.cell.set_weights(_weights_of(layer.cell, seed=2))
        outputs = []
        for training in (True, False, True):
            outputs.append(to_numpy(layer(x, mask=mask, training=training)))
        layer.reset_states()
        outputs.append(to_numpy(layer(x, mask=mask, training=False)))
        return outputs

    eager = calls()
    # Every call after the first starts from a non-zero state.
    assert not np.allclose(eager[1], eager[3])
    _backend_loop_instead(monkeypatch)
    for a, b in zip(eager, calls(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def _while_loop_lookaheads(layer, x, training):
    """`parallel_iterations` of every `while` loop in a traced step of
    `layer` that takes the gradient of its output: `[forward, backward]`."""
    import tensorflow as tf

    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=training))
        return tape.gradient(loss, layer.trainable_variables)

    traced = tf.function(tf.autograph.experimental.do_not_convert(step))
    graph = traced.get_concrete_function(x).graph
    return [
        op.get_attr("parallel_iterations")
        for op in graph.get_operations()
        if op.type in ("While", "StatelessWhile")
    ]


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="parallel_iterations is TensorFlow's while_loop's",
)
@pytest.mark.parametrize(
    "make",
    [
        lambda: kr.RNN(kr.GalLSTMCell(4, recurrent_dropout=0.3)),
        lambda: kr.RNN(kr.ZoneoutLSTMCell(4, zoneout_c=0.3)),
        lambda: kr.GalGRU(4, recurrent_dropout=0.3, return_sequences=True),
        lambda: kr.RNN(kr.GalLSTMCell(4)),  # no noise: the lookahead too
    ],
    ids=["gal_cell", "zoneout_cell", "gal_gru_layer", "gal_no_noise"],
)
def test_tensorflow_training_loops_run_eight_iterations_at_once(make):
    """Training: the loop and its gradient's loop run 8 iterations at once
    (Keras's 32 let the backward pass hold 32 iterations' recomputed masked
    copies). Inference keeps Keras's loop as it is, and Keras's own layers,
    traced after the package's, keep 32: nothing in Keras is changed."""
    from keras_recdrop import rnn

    x = _inputs(batch=4, timesteps=6)
    layer = make()
    assert (
        _while_loop_lookaheads(layer, x, training=True)
        == [rnn._TRAINING_LOOKAHEAD] * 2
    )
    assert rnn._TRAINING_LOOKAHEAD == 8
    assert _while_loop_lookaheads(layer, x, training=False) == [32, 32]
    keras_layer = keras.layers.LSTM(4, recurrent_dropout=0.3)
    assert _while_loop_lookaheads(keras_layer, x, training=True) == [32, 32]
