"""Data-parallel training: every replica draws its own masks, reproducibly.

The distributed runs need devices configured before the backend starts
(`XLA_FLAGS` before JAX is imported, logical CPU devices before TensorFlow
initializes), so each runs in a fresh process on two simulated CPU devices
and returns its outputs as JSON. The JAX tests run only on the JAX backend,
the TensorFlow ones only on TensorFlow.

The probe: every row of the input batch is the same sequence of ones and
every layer is called with `training=True` (also in `predict`). Without
noise all rows would be equal, so any difference between two rows is a
difference between their masks (or per-step noise), and two rows that
come out bit-identical drew the same noise. With a batch of 8 on two
replicas, rows 0-3 are replica 0's shard and rows 4-7 replica 1's: the
naive behaviour (Keras issue #18426) makes row `i` and row `4 + i` equal.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from probes import to_numpy

from keras_recdrop import noise

# Its expensive fixtures run once: every test of this file runs in the same
# worker process (`pytest -n`, `--dist loadgroup`), and they are
# session-scoped so that the worker keeps them if it runs other files' tests
# in between (a module-scoped one would be torn down and built again).
pytestmark = pytest.mark.xdist_group("distribution")

BACKEND = keras.backend.backend()

# Shared by both scripts: one model holding every cell and layer of the
# package (and, as a control, Keras's own LSTM), each fed the same input.
FAMILY = r"""
import json, sys
import numpy as np
import keras
from keras import ops
import keras_recdrop as kr

U, T, D, B = 4, 3, 8, 8

def family(seed, control=False):
    classes = dict(
        zoneout_lstm=(kr.ZoneoutLSTMCell,
                      dict(zoneout_c=0.5, zoneout_h=0.5, dropout=0.3)),
        semeniuta_lstm=(kr.SemeniutaLSTMCell,
                        dict(recurrent_dropout=0.5, per_step=True)),
        gal_lstm=(kr.GalLSTMCell, dict(dropout=0.3, recurrent_dropout=0.5)),
        weight_drop_lstm=(kr.WeightDropLSTMCell, dict(weight_dropout=0.5)),
        zoneout_gru=(kr.ZoneoutGRUCell, dict(zoneout_h=0.5, dropout=0.3)),
        semeniuta_gru=(kr.SemeniutaGRUCell,
                       dict(recurrent_dropout=0.5, per_step=True)),
        gal_gru=(kr.GalGRUCell, dict(dropout=0.3, recurrent_dropout=0.5)),
    )
    layers = {}
    layer_classes = dict(
        zoneout_lstm=kr.ZoneoutLSTM, semeniuta_lstm=kr.SemeniutaLSTM,
        gal_lstm=kr.GalLSTM, weight_drop_lstm=kr.WeightDropLSTM,
        zoneout_gru=kr.ZoneoutGRU, semeniuta_gru=kr.SemeniutaGRU,
        gal_gru=kr.GalGRU,
    )
    for k, (name, (cls, kw)) in enumerate(sorted(classes.items())):
        layers["cell_" + name] = kr.RNN(
            cls(U, seed=seed + k, **kw), return_sequences=True)
        layers["layer_" + name] = layer_classes[name](
            U, seed=seed + 100 + k, return_sequences=True, **kw)
    layers["embedding"] = kr.DropoutEmbedding(
        20, U, embeddings_dropout=0.5, seed=seed + 200)
    if control:
        layers["control_keras_lstm"] = keras.layers.LSTM(
            U, dropout=0.5, recurrent_dropout=0.5, seed=seed + 300,
            return_sequences=True)
    return layers

NAMES = None

class Family(keras.Model):
    # Every layer runs in training mode, in `predict` too, so that the
    # outputs expose the masks. The outputs are concatenated, `U` columns
    # per layer in `self.names` order, so that `fit` needs one loss.
    def __init__(self, seed, control=False, **kwargs):
        super().__init__(**kwargs)
        self.family = family(seed, control)
        self.names = sorted(self.family)

    def call(self, x, training=None):
        ids = ops.zeros_like(x[..., 0], dtype="int32") + ops.arange(
            T, dtype="int32")
        outs = []
        for name in self.names:
            inputs = ids if name == "embedding" else x
            outs.append(self.family[name](inputs, training=True))
        return ops.concatenate(outs, axis=-1)

def build(seed, control=False):
    keras.utils.set_random_seed(seed)
    model = Family(seed, control=control)
    # A symbolic call builds every layer without running (or compiling)
    # anything.
    model(keras.Input((T, D), batch_size=B))
    return model

def split(y, names):
    y = np.asarray(y)
    return {n: y[..., k * U:(k + 1) * U].tolist()
            for k, n in enumerate(names)}

def fit(model, epochs=2):
    if not model.compiled:  # compiled once: later fits reuse its trace
        model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(X, np.zeros((B, T, U * len(model.names)), "float32"),
              batch_size=B, epochs=epochs, verbose=0, shuffle=False)
    return [np.asarray(w).tolist() for w in model.get_weights()]

X = np.ones((B, T, D), "float32")
"""

JAX_SCRIPT = (
    r"""
import os
flags = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2"
"""
    + FAMILY
    + r"""
import jax

def forward(model):
    # One training forward pass of `model`'s program, jitted: what
    # `predict_step` runs, returned as a global-view array.
    fn = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x)[0])
    return lambda m, x: fn([v.value for v in m.trainable_variables],
                           [v.value for v in m.non_trainable_variables], x)

out = {"devices": len(jax.devices())}
single = build(1)
out["names"] = single.names
out["initial"] = [np.asarray(w).tolist() for w in single.get_weights()]
out["single"] = split(forward(single)(single, X), single.names)

devices = jax.devices()
dp = keras.distribution.DataParallel(devices=devices)
keras.distribution.set_distribution(dp)
model = build(1)
# The batch sharded along the data-parallel mesh, as `fit` and `predict`
# shard it: shard k of the output was computed on device k.
xs = jax.device_put(X, dp.get_data_layout(X.shape).backend_layout)
run = forward(model)
y = run(model, xs)
shards = sorted(y.addressable_shards, key=lambda s: s.index[0].start or 0)
out["shard_devices"] = [s.device.id for s in shards]
out["shards"] = [split(np.asarray(s.data), model.names) for s in shards]
out["dp"] = split(np.asarray(y), model.names)
# A fresh model with the same seeds, and one with other seeds, through the
# same compiled program.
out["dp_again"] = split(np.asarray(run(build(1), xs)), model.names)
out["dp_other_seed"] = split(np.asarray(run(build(2), xs)), model.names)
out["dp_fit"] = fit(model)

# ModelParallel: a (batch 1, model 2) mesh that splits every kernel and
# recurrent kernel (and the embedding matrix) column-wise across devices.
mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], devices)
layout_map = keras.distribution.LayoutMap(mesh)
layout_map[".*kernel"] = (None, "model")
layout_map[".*embeddings"] = (None, "model")
mp = keras.distribution.ModelParallel(layout_map=layout_map,
                                      batch_dim_name="batch")
keras.distribution.set_distribution(mp)
model = build(1)
sharded = [v for v in model.trainable_variables
           if "model" in str(v.value.sharding.spec)]
out["mp_sharded"] = [v.path for v in sharded]
out["mp_shard_shapes"] = [list(s.data.shape)
                          for s in sharded[0].value.addressable_shards]
out["mp_full_shape"] = list(sharded[0].shape)
out["mp_fit"] = fit(model)
print("RESULT" + json.dumps(out))
"""
)

TF_SCRIPT = (
    r"""
import os
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
    + FAMILY
    + r"""
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}
with strategy.scope():
    model = build(1, control=True)
    other = build(2, control=True)
out["names"] = model.names
# Every variable, seed-generator states included: restoring them restarts
# the run exactly where a fresh model with the same seeds starts, and lets
# the same traced `predict`/`fit` functions be reused.
variables = list(model.variables)
start = [v.numpy() for v in variables]
def restore(values):
    for v, value in zip(variables, values, strict=True):
        v.assign(value)
def predict():
    return split(model.predict(X, batch_size=B, verbose=0), model.names)
out["mirrored"] = predict()
restore(start)
out["mirrored_again"] = predict()
restore([v.numpy() for v in other.variables])
out["mirrored_other_seed"] = predict()
restore(start)
out["initial"] = [np.asarray(w).tolist() for w in model.get_weights()]
out["fit"] = fit(model)
restore(start)
out["fit_again"] = fit(model)
print("RESULT" + json.dumps(out))
"""
)

# Per-call masks: one mask shared by every sample of a call.
PER_CALL = ("cell_weight_drop_lstm", "layer_weight_drop_lstm", "embedding")


def _run(script, backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


def _arrays(outputs):
    return {name: np.asarray(value) for name, value in outputs.items()}


def _assert_weights(got, expected, atol):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), atol=atol)


def _assert_changed_and_finite(fitted, initial):
    fitted = [np.asarray(w) for w in fitted]
    assert all(np.isfinite(w).all() for w in fitted)
    # Every kernel, recurrent kernel and embedding matrix moved: the 2D
    # weights, except the GRU biases `(2, 3U)` (some of whose entries get
    # no gradient).
    kernels = [
        k for k, w in enumerate(fitted) if w.ndim == 2 and w.shape[0] != 2
    ]
    assert len(kernels) >= 29
    for k in kernels:
        assert np.abs(fitted[k] - np.asarray(initial[k])).max() > 1e-6, k


def _rows_differ(a, b):
    """Whether rows `a[i]` and `b[i]` differ for every `i` (tolerance 1e-5)."""
    diffs = np.abs(a - b).reshape(a.shape[0], -1).max(axis=1)
    return bool((diffs > 1e-5).all())


def _assert_own_masks_per_shard(outputs, half):
    """Per-example noise: row `i` of shard 0 differs from row `i` of shard 1,
    and the noise is really on (rows of one shard differ too)."""
    for name, y in outputs.items():
        if name in PER_CALL or name.startswith("control"):
            continue
        assert _rows_differ(y[:half], y[half:]), name
        assert np.abs(y[0] - y[1]).max() > 1e-5, name


# ------------------------------------------------------------------- JAX
@pytest.fixture(scope="session")
def jax_run():
    if BACKEND != "jax":
        pytest.skip("JAX distribution tests run on the jax backend only")
    return _run(JAX_SCRIPT, "jax")


@pytest.mark.subprocess
def test_jax_data_parallel_draws_what_one_device_draws(jax_run):
    # `DataParallel` runs the global-batch program on global-view arrays:
    # the masks of the whole batch are drawn at once and the run equals a
    # single-device run on the same batch, sample for sample.
    assert jax_run["devices"] == 2
    single, dp = _arrays(jax_run["single"]), _arrays(jax_run["dp"])
    assert sorted(single) == sorted(dp) and len(dp) == 15
    for name in single:
        np.testing.assert_allclose(dp[name], single[name], atol=1e-6)
    _assert_own_masks_per_shard(dp, 4)


@pytest.mark.subprocess
def test_jax_data_parallel_devices_get_their_own_masks_per_shard(jax_run):
    assert jax_run["shard_devices"] == [0, 1]
    first, second = (_arrays(s) for s in jax_run["shards"])
    for name in first:
        assert first[name].shape == (4, 3, 4), name
        if name in PER_CALL:
            # One weight / word-type mask per global batch, as on one
            # device: every sample, on every device, shares it.
            np.testing.assert_array_equal(first[name], second[name])
            np.testing.assert_array_equal(first[name][0], first[name][1])
        else:
            assert _rows_differ(first[name], second[name]), name
    # The shards are the pieces of the `predict` output.
    dp = _arrays(jax_run["dp"])
    for name in dp:
        np.testing.assert_allclose(
            np.concatenate([first[name], second[name]]), dp[name], atol=1e-6
        )


@pytest.mark.subprocess
def test_jax_data_parallel_same_seed_reproduces_other_seed_differs(jax_run):
    dp, again = _arrays(jax_run["dp"]), _arrays(jax_run["dp_again"])
    other = _arrays(jax_run["dp_other_seed"])
    for name in dp:
        np.testing.assert_array_equal(dp[name], again[name])
        assert np.abs(dp[name] - other[name]).max() > 1e-3, name


@pytest.mark.subprocess
def test_jax_data_parallel_fit_trains_every_layer(jax_run):
    _assert_changed_and_finite(jax_run["dp_fit"], jax_run["initial"])


@pytest.mark.subprocess
def test_jax_model_parallel_with_sharded_kernels_trains_like_data_parallel(
    jax_run,
):
    sharded = jax_run["mp_sharded"]
    # Every kernel and recurrent kernel of the 14 recurrent layers, and the
    # embedding matrix, is split column-wise across the two devices ...
    assert len(sharded) == 14 * 2 + 1, sharded
    rows, cols = jax_run["mp_full_shape"]
    assert jax_run["mp_shard_shapes"] == [[rows, cols // 2]] * 2
    # ... and training draws the same masks and takes the same steps as
    # data-parallel training (itself the single-device program).
    _assert_changed_and_finite(jax_run["mp_fit"], jax_run["initial"])
    _assert_weights(jax_run["mp_fit"], jax_run["dp_fit"], atol=1e-5)


# ------------------------------------------------------------ TensorFlow
@pytest.fixture(scope="session")
def tf_run():
    if BACKEND != "tensorflow":
        pytest.skip("MirroredStrategy tests run on the tensorflow backend only")
    return _run(TF_SCRIPT, "tensorflow")


@pytest.mark.subprocess
def test_mirrored_keras_lstm_control_shows_replicas_share_masks(tf_run):
    # The bug the package fixes, seen by this very probe: Keras's LSTM under
    # the same strategy gives replica 1's rows exactly replica 0's masks.
    assert tf_run["replicas"] == 2
    y = np.asarray(tf_run["mirrored"]["control_keras_lstm"])
    np.testing.assert_array_equal(y[:4], y[4:])
    assert np.abs(y[0] - y[1]).max() > 1e-5  # its dropout is on


@pytest.mark.subprocess
def test_mirrored_replicas_draw_their_own_masks_and_noise(tf_run):
    mirrored = _arrays(tf_run["mirrored"])
    assert len(mirrored) == 16
    _assert_own_masks_per_shard(mirrored, 4)


@pytest.mark.subprocess
def test_mirrored_per_call_masks_are_one_per_replica_shard(tf_run):
    # Weight and word-type masks: one per call, and each replica's call is
    # its own, so each shard has one mask and the replicas' masks differ.
    mirrored = _arrays(tf_run["mirrored"])
    for name in PER_CALL:
        y = mirrored[name]
        for shard in (y[:4], y[4:]):
            for row in shard[1:]:
                np.testing.assert_array_equal(row, shard[0])
        assert np.abs(y[0] - y[4]).max() > 1e-5, name


@pytest.mark.subprocess
def test_mirrored_same_seed_reproduces_other_seed_differs(tf_run):
    first = _arrays(tf_run["mirrored"])
    again = _arrays(tf_run["mirrored_again"])
    other = _arrays(tf_run["mirrored_other_seed"])
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
        assert np.abs(first[name] - other[name]).max() > 1e-3, name


@pytest.mark.subprocess
def test_mirrored_fit_trains_every_layer_reproducibly(tf_run):
    _assert_changed_and_finite(tf_run["fit"], tf_run["initial"])
    _assert_weights(tf_run["fit_again"], tf_run["fit"], atol=0)


# ------------------------------------------------- one replica: unchanged
def test_draws_without_a_strategy_are_stateless_draws_from_the_next_seed():
    from keras_recdrop import _stateless

    generator = keras.random.SeedGenerator(17)
    reference = keras.random.SeedGenerator(17)
    for shape in [(3, 5), (2, 4, 6)]:
        got = to_numpy(noise._uniform(shape, generator))
        expected = to_numpy(_stateless.uniform(shape, reference.next()))
        np.testing.assert_array_equal(got, expected)
    # The generator advances once per draw, as `keras.random` advances it.
    np.testing.assert_array_equal(
        to_numpy(generator.state.value), to_numpy(reference.state.value)
    )


def test_one_replica_mirrored_strategy_draws_are_unchanged():
    if BACKEND != "tensorflow":
        pytest.skip("tf.distribute exists on the tensorflow backend only")
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        generator = keras.random.SeedGenerator(17)
    reference = keras.random.SeedGenerator(17)
    got = strategy.run(tf.function(lambda: noise._uniform((4, 3), generator)))
    expected = noise._uniform((4, 3), reference)
    np.testing.assert_array_equal(to_numpy(got), to_numpy(expected))
