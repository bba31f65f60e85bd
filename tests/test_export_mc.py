"""`keras_recdrop.export_mc`: Monte Carlo dropout in a served SavedModel.

Each model is exported with `export_mc`, reloaded with
`tf.saved_model.load` in a fresh process and served with several seeds;
the served mean and spread must equal `mc_predict(model, x, samples,
seed=...)` in this process to float rounding (measured: at most 3e-8 on
either backend; asserted: 1e-6), over every way `mc_predict` lays out its
passes: tiled copies with a partial last chunk, blocks of rows with the
last one wrapping round, one sample per pass (noise shared by the batch),
Keras's dropout on, several inputs and outputs, and a model without noise
(spread exactly 0). The serving graph assigns no variable: the seed
generators' states run inside it.

Runs on TensorFlow (any number of rows) and JAX (rows fixed in
`input_signature`); PyTorch cannot write a SavedModel and raises.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_recdrop as kr

# Its expensive fixture runs once: every test of this file runs in the same
# worker process (`pytest -n`, `--dist loadgroup`), and it is
# session-scoped so that the worker keeps it if it runs other files' tests
# in between.
pytestmark = pytest.mark.xdist_group("export_mc")

BACKEND = keras.backend.backend()
T, D, UNITS = 5, 3, 6
SEEDS = [3, 3, 11, -5, 2**31 - 1]

LOADER = r"""
import json, re, sys
import numpy as np
import tensorflow as tf

directory, names, seeds = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
seeds = [int(s) for s in seeds.split(",")]
report = {}
for name in names:
    with np.load(f"{directory}/{name}.npz") as data:
        keys = sorted(data.files)
        x = [data[k] for k in keys]
    x = x[0] if len(x) == 1 else x
    loaded = tf.saved_model.load(f"{directory}/{name}")
    served = [
        {k: v.numpy().tolist() for k, v in loaded.serve(x, np.int32(s)).items()}
        for s in seeds
    ]
    graph = loaded.signatures["serving_default"].graph.as_graph_def()
    types = {node.op for node in graph.node}
    for inner in graph.library.function:
        types.update(node.op for node in inner.node_def)
    report[name] = {
        "served": served,
        "assign_ops": sorted(t for t in types if re.match("Assign", t)),
        "signature_outputs": sorted(
            loaded.signatures["serving_default"].structured_outputs),
    }
print("RESULT" + json.dumps(report))
"""


def _recurrent_model():
    inputs = keras.Input((T, D))
    x = kr.ZoneoutLSTM(
        UNITS, zoneout_c=0.3, zoneout_h=0.2, return_sequences=True, seed=1
    )(inputs)
    x = kr.GalGRU(UNITS, dropout=0.2, recurrent_dropout=0.3, seed=2)(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def _per_call_model():
    inputs = keras.Input((T,), dtype="int32")
    x = kr.DropoutEmbedding(20, D, embeddings_dropout=0.3, seed=3)(inputs)
    x = kr.WeightDropLSTM(UNITS, weight_dropout=0.4, seed=4)(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def _keras_dropout_model():
    inputs = keras.Input((T, D))
    x = kr.SemeniutaLSTM(UNITS, recurrent_dropout=0.3, seed=5)(inputs)
    x = keras.layers.Dropout(0.3, seed=6)(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def _two_inputs_two_outputs_model():
    a, b = keras.Input((T, D)), keras.Input((T, 2))
    x = keras.layers.Concatenate()([a, b])
    x = kr.GalLSTM(UNITS, dropout=0.3, recurrent_dropout=0.3, seed=7)(x)
    return keras.Model(
        [a, b], [keras.layers.Dense(2)(x), keras.layers.Dense(1)(x)]
    )


def _deterministic_model():
    inputs = keras.Input((T, D))
    x = kr.GalLSTM(UNITS, dropout=0.0, recurrent_dropout=0.0, seed=8)(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def _floats(rows, *shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows,) + shape).astype("float32")


# name: (model, inputs, export/mc_predict arguments)
CASES = {
    # 4 rows, 10 per pass: 2 copies, 4 chunks, the last one half used.
    "copies_partial_chunk": (
        _recurrent_model,
        lambda: _floats(4, T, D),
        dict(samples=7, batch_size=10),
    ),
    # 7 rows, 3 per pass: 3 blocks, the last wrapping round; 1 copy.
    "blocks_wrap_round": (
        _recurrent_model,
        lambda: _floats(7, T, D, seed=1),
        dict(samples=5, batch_size=3),
    ),
    "one_sample_per_pass": (
        _per_call_model,
        lambda: (
            np.random.default_rng(2).integers(1, 20, (5, T)).astype("int32")
        ),
        dict(samples=6, batch_size=64),
    ),
    "keras_dropout": (
        _keras_dropout_model,
        lambda: _floats(3, T, D, seed=3),
        dict(samples=8, batch_size=12, keras_dropout=True),
    ),
    "two_inputs_two_outputs": (
        _two_inputs_two_outputs_model,
        lambda: [_floats(3, T, D, seed=4), _floats(3, T, 2, seed=5)],
        dict(samples=6, batch_size=9),
    ),
    "deterministic": (
        _deterministic_model,
        lambda: _floats(4, T, D, seed=6),
        dict(samples=5, batch_size=8),
    ),
}

exporting_backend = pytest.mark.skipif(
    BACKEND not in ("tensorflow", "jax"),
    reason="export_mc writes a SavedModel from tensorflow or jax",
)


def _signature(x):
    """On JAX the rows are fixed at export; on TensorFlow any number."""
    if BACKEND != "jax":
        return None
    specs = [
        keras.InputSpec(shape=v.shape, dtype=str(v.dtype))
        for v in keras.tree.flatten(x)
    ]
    return specs if isinstance(x, list) else specs[0]


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """Exports every case, serves each with `SEEDS` in a fresh process;
    returns {name: (model, x, arguments, report)}."""
    keras.utils.set_random_seed(5)
    directory = tmp_path_factory.mktemp("export_mc")
    cases = {}
    for name, (build, inputs, arguments) in CASES.items():
        model, x = build(), inputs()
        kr.export_mc(
            model,
            directory / name,
            input_signature=_signature(x),
            verbose=False,
            **arguments,
        )
        leaves = keras.tree.flatten(x)
        np.savez(
            directory / f"{name}.npz",
            **{f"x{k}": v for k, v in enumerate(leaves)},
        )
        cases[name] = (model, x, arguments)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LOADER,
            str(directory),
            ",".join(CASES),
            ",".join(str(s) for s in SEEDS),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")][-1]
    report = json.loads(line[len("RESULT") :])
    return {name: (*cases[name], report[name]) for name in CASES}


def _mc(model, x, arguments, seed):
    mean, std = kr.mc_predict(model, x, seed=seed, **arguments)
    return keras.tree.flatten(mean), keras.tree.flatten(std)


def _served(result):
    """The served outputs of one request, as flat lists of arrays."""
    names = sorted(result, key=lambda k: (len(k), k))
    means = [np.array(result[k]) for k in names if k.startswith("mean")]
    stds = [np.array(result[k]) for k in names if k.startswith("std")]
    return means, stds


@exporting_backend
@pytest.mark.subprocess
@pytest.mark.parametrize("name", list(CASES))
def test_served_mean_and_spread_equal_mc_predict_with_the_same_seed(
    served, name
):
    model, x, arguments, report = served[name]
    for seed, result in zip(SEEDS, report["served"], strict=True):
        means, stds = _served(result)
        expected_means, expected_stds = _mc(model, x, arguments, seed)
        assert len(means) == len(expected_means)
        pairs = zip(means + stds, expected_means + expected_stds, strict=True)
        for got, want in pairs:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@exporting_backend
@pytest.mark.subprocess
@pytest.mark.parametrize("name", list(CASES))
def test_served_seeds_reproduce_and_differ_and_nothing_is_assigned(
    served, name
):
    _, _, _, report = served[name]
    first, again, other = report["served"][:3]
    # The same seed gives the same numbers (the graph keeps no state) ...
    assert first == again
    # ... and no variable is assigned while serving.
    assert report["assign_ops"] == []
    means, stds = _served(first)
    other_means, _ = _served(other)
    if name == "deterministic":
        assert other == first
        assert all(np.all(s == 0) for s in stds)
        return
    assert all(np.all(s > 0) for s in stds)
    assert all(
        np.abs(a - b).max() > 1e-4
        for a, b in zip(means, other_means, strict=True)
    )


@exporting_backend
@pytest.mark.subprocess
def test_several_outputs_are_served_as_numbered_means_and_stds(served):
    report = served["two_inputs_two_outputs"][3]
    assert report["signature_outputs"] == ["mean_0", "mean_1", "std_0", "std_1"]
    assert sorted(served["copies_partial_chunk"][3]["signature_outputs"]) == [
        "mean",
        "std",
    ]


def test_stream_seeds_in_a_graph_equal_the_python_ones():
    from keras_recdrop import mc_dropout

    seeds = [0, 1, 2, 12345, -1, -(2**31), 2**31 - 2, 2**31 - 1]
    seeds += np.random.default_rng(0).integers(-(2**31), 2**31, 300).tolist()
    tensor = keras.ops.convert_to_tensor(seeds, "int32")
    in_graph = mc_dropout._stream_seeds_in_graph(tensor, 4)
    got = np.stack([keras.ops.convert_to_numpy(s) for s in in_graph], 1)
    expected = np.array([mc_dropout._stream_seeds(s, 4) for s in seeds])
    np.testing.assert_array_equal(got, expected)
    # Distinct streams, all seeds in [1, 2^31 - 1).
    assert all(len(set(row)) == 4 for row in expected.tolist())
    assert expected.min() >= 1 and expected.max() < 2**31 - 1


@pytest.mark.skipif(BACKEND != "torch", reason="the torch backend")
def test_export_mc_on_torch_says_where_to_export(tmp_path):
    with pytest.raises(NotImplementedError, match="KERAS_BACKEND=tensorflow"):
        kr.export_mc(_recurrent_model(), tmp_path / "m", samples=2)


@pytest.mark.skipif(BACKEND != "jax", reason="the jax backend")
def test_export_mc_on_jax_needs_the_number_of_rows(tmp_path):
    with pytest.raises(ValueError, match="input_signature"):
        kr.export_mc(_recurrent_model(), tmp_path / "m", samples=2)


@exporting_backend
@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(samples=0), ValueError, "samples=0"),
        (dict(batch_size=-1), ValueError, "batch_size=-1"),
        (dict(keras_dropout="yes"), TypeError, "keras_dropout='yes'"),
    ],
)
def test_export_mc_bad_arguments_raise_naming_them(
    tmp_path, arguments, error, match
):
    with pytest.raises(error, match=match):
        kr.export_mc(_recurrent_model(), tmp_path / "m", **arguments)


@exporting_backend
def test_export_mc_needs_outputs_of_a_known_shape(tmp_path):
    inputs = keras.Input((None, D))
    outputs = kr.GalLSTM(3, dropout=0.2, return_sequences=True)(inputs)
    rows = 4 if BACKEND == "jax" else None
    with pytest.raises(ValueError, match="input_signature"):
        kr.export_mc(
            keras.Model(inputs, outputs),
            tmp_path / "m",
            input_signature=keras.InputSpec(shape=(rows, None, D)),
        )


@exporting_backend
def test_export_mc_refuses_what_is_not_a_model_and_stateful_models(tmp_path):
    with pytest.raises(TypeError, match="model="):
        kr.export_mc(kr.GalLSTM(3), tmp_path / "m")
    inputs = keras.Input((T, D), batch_size=2)
    stateful = keras.Model(inputs, kr.GalLSTM(3, stateful=True)(inputs))
    with pytest.raises(ValueError, match="stateful"):
        kr.export_mc(stateful, tmp_path / "m")


@exporting_backend
def test_exporting_leaves_the_model_streams_and_inference_unchanged(tmp_path):
    model = _keras_dropout_model()
    x = _floats(3, T, D, seed=7)
    states = [
        keras.ops.convert_to_numpy(v).tolist()
        for v in model.non_trainable_variables
    ]
    inference = model.predict(x, verbose=0)
    kr.export_mc(
        model,
        tmp_path / "m",
        samples=4,
        keras_dropout=True,
        input_signature=_signature(x),
        verbose=False,
    )
    after = [
        keras.ops.convert_to_numpy(v).tolist()
        for v in model.non_trainable_variables
    ]
    assert after == states
    np.testing.assert_array_equal(model.predict(x, verbose=0), inference)
