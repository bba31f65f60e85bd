"""Export for serving: SavedModel and TFLite models serve `predict`'s outputs.

Runs on the tensorflow backend only (`model.export` writes a TensorFlow
SavedModel natively there; see docs/scaling.md for the other backends).
Each SavedModel is reloaded with `tf.saved_model.load` in a fresh process,
which also lists every op of the serving graph, the function library
included (the time loop's body lives there), so that a random op anywhere
in the inference graph is seen.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from probes import to_numpy

import keras_recdrop as kr

BACKEND = keras.backend.backend()
pytestmark = [
    pytest.mark.skipif(
        BACKEND != "tensorflow",
        reason="SavedModel/TFLite export tests run on the tensorflow backend "
        "only",
    ),
    # Its expensive fixture runs once: every test of this file runs in the
    # same worker process (`pytest -n`, `--dist loadgroup`), and it is
    # session-scoped so that the worker keeps it if it runs other files'
    # tests in between.
    pytest.mark.xdist_group("export"),
]

T, D, UNITS = 5, 3, 4

CELLS = {
    "zoneout_lstm": (
        kr.ZoneoutLSTMCell,
        kr.ZoneoutLSTM,
        dict(zoneout_c=0.5, zoneout_h=0.3, dropout=0.2),
    ),
    "semeniuta_lstm": (
        kr.SemeniutaLSTMCell,
        kr.SemeniutaLSTM,
        dict(recurrent_dropout=0.4, dropout=0.2),
    ),
    "gal_lstm": (
        kr.GalLSTMCell,
        kr.GalLSTM,
        dict(dropout=0.3, recurrent_dropout=0.4),
    ),
    "weight_drop_lstm": (
        kr.WeightDropLSTMCell,
        kr.WeightDropLSTM,
        dict(weight_dropout=0.5, dropout=0.2),
    ),
    "zoneout_gru": (
        kr.ZoneoutGRUCell,
        kr.ZoneoutGRU,
        dict(zoneout_h=0.3, dropout=0.2),
    ),
    "semeniuta_gru": (
        kr.SemeniutaGRUCell,
        kr.SemeniutaGRU,
        dict(recurrent_dropout=0.4, dropout=0.2),
    ),
    "gal_gru": (
        kr.GalGRUCell,
        kr.GalGRU,
        dict(dropout=0.3, recurrent_dropout=0.4),
    ),
}
LSTM_CELLS = [name for name in CELLS if name.endswith("_lstm")]

# Op types that draw random numbers (stateless and stateful TensorFlow
# kernels, XLA's generator) or update variables (a seed advancing).
RANDOM_OP = r"Random|Rng|StatefulUniform|StatefulStandard|StatefulTruncated"
ASSIGN_OP = r"^Assign"

LOADER = r"""
import json, re, sys
import numpy as np
import tensorflow as tf

directory, names = sys.argv[1], sys.argv[2].split(",")
x = {k: v for k, v in np.load(directory + "/inputs.npz").items()}

def op_types(function):
    graph_def = function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for inner in graph_def.library.function:
        types.update(node.op for node in inner.node_def)
    return types, len(graph_def.library.function)

report = {}
for name in names:
    loaded = tf.saved_model.load(f"{directory}/{name}")
    served = loaded.serve(x[name]).numpy()
    types, functions = op_types(loaded.signatures["serving_default"])
    report[name] = {
        "served": served.tolist(),
        "random_ops": sorted(t for t in types if re.search(sys.argv[3], t)),
        "assign_ops": sorted(t for t in types if re.search(sys.argv[4], t)),
        "library_functions": functions,
        "has_loop": "While" in types or "StatelessWhile" in types,
    }
# A control: a training endpoint of the first model, exported with
# `keras.export.ExportArchive`, does contain the draws.
train = tf.saved_model.load(f"{directory}/train_endpoint")
types, _ = op_types(train.signatures["serving_default"])
report["train_endpoint"] = sorted(
    t for t in types if re.search(sys.argv[3], t))
print("RESULT" + json.dumps(report))
"""


def _model(name, seed):
    cell_cls, layer_cls, kwargs = CELLS[name]
    inputs = keras.Input((T, D))
    x = kr.RNN(cell_cls(UNITS, seed=seed, **kwargs), return_sequences=True)(
        inputs
    )
    x = layer_cls(UNITS, seed=seed + 1, **kwargs)(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x), name=name)


def _embedding_model(seed):
    inputs = keras.Input((T,), dtype="int32")
    x = kr.DropoutEmbedding(
        20, D, embeddings_dropout=0.5, mask_zero=True, seed=seed
    )(inputs)
    x = kr.RNN(kr.GalLSTMCell(UNITS, dropout=0.3, seed=seed + 1))(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x), name="embedding")


def _inputs(name, seed=0):
    rng = np.random.RandomState(seed)
    if name == "embedding":
        ids = rng.randint(1, 20, (6, T)).astype("int32")
        ids[0, 3:] = 0  # a padded sample: mask_zero is exported too
        return ids
    return rng.randn(6, T, D).astype("float32")


def _training_call(model):
    def call(x):
        return model(x, training=True)

    return call


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Exports one model per cell (cell in `kr.RNN`, then its layer) and
    an embedding model; returns (predictions, report of the loader)."""
    keras.utils.set_random_seed(3)
    directory = tmp_path_factory.mktemp("exported")
    names = list(CELLS) + ["embedding"]
    inputs, predictions = {}, {}
    for k, name in enumerate(names):
        model = (
            _embedding_model(10 * k)
            if name == "embedding"
            else _model(name, 10 * k)
        )
        inputs[name] = _inputs(name)
        predictions[name] = model.predict(inputs[name], verbose=0)
        # The noise is on in training: inference is not the training output.
        trained = to_numpy(model(inputs[name], training=True))
        assert np.abs(trained - predictions[name]).max() > 1e-4, name
        model.export(str(directory / name), verbose=False)
        if k == 0:
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint(
                "serve",
                _training_call(model),
                input_signature=[
                    keras.InputSpec(shape=(None, T, D), dtype="float32")
                ],
            )
            archive.write_out(str(directory / "train_endpoint"), verbose=False)
    np.savez(directory / "inputs.npz", **inputs)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LOADER,
            str(directory),
            ",".join(names),
            RANDOM_OP,
            ASSIGN_OP,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")][-1]
    return predictions, json.loads(line[len("RESULT") :])


@pytest.mark.subprocess
@pytest.mark.parametrize("name", list(CELLS) + ["embedding"])
def test_saved_model_serves_predict_outputs_in_a_fresh_process(exported, name):
    predictions, report = exported
    np.testing.assert_allclose(
        report[name]["served"], predictions[name], rtol=0, atol=1e-6
    )


@pytest.mark.subprocess
@pytest.mark.parametrize("name", list(CELLS) + ["embedding"])
def test_saved_model_inference_graph_has_no_random_or_assign_ops(
    exported, name
):
    _, report = exported
    # The inspection reaches the loop body in the function library ...
    assert report[name]["has_loop"] and report[name]["library_functions"]
    # ... and finds no draw and no seed update anywhere.
    assert report[name]["random_ops"] == []
    assert report[name]["assign_ops"] == []


@pytest.mark.subprocess
def test_random_op_inspection_sees_the_draws_of_a_training_graph(exported):
    _, report = exported
    assert any("Random" in op for op in report["train_endpoint"])


# ------------------------------------------------------------------ TFLite
# `tf.lite.Interpreter` warns that it moves to the `ai_edge_litert` package.
TFLITE_WARNING = "ignore:.*tf.lite.Interpreter is deprecated:UserWarning"


def _tflite_ops_and_run(model, path, x):
    """Converts with `model.export(format="litert")`; returns the op names
    and, if the stock interpreter can run them, the outputs for `x`."""
    import tensorflow as tf

    model.export(str(path), format="litert", verbose=False)
    interpreter = tf.lite.Interpreter(model_path=str(path))
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    if any(op.startswith("Flex") for op in ops):
        return ops, None
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    output = interpreter.get_output_details()[0]["index"]
    return ops, interpreter.get_tensor(output)


@pytest.mark.filterwarnings(TFLITE_WARNING)
@pytest.mark.parametrize("name", LSTM_CELLS)
def test_tflite_unrolled_lstm_runs_on_builtin_ops_and_matches_predict(
    tmp_path, name
):
    cell_cls, _, kwargs = CELLS[name]
    keras.utils.set_random_seed(4)
    inputs = keras.Input((T, D))
    x = kr.RNN(cell_cls(UNITS, seed=1, **kwargs), unroll=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    x_value = _inputs(name)
    expected = model.predict(x_value, verbose=0)
    ops, served = _tflite_ops_and_run(model, tmp_path / "m.tflite", x_value)
    assert served is not None, ops
    assert not [op for op in ops if "RANDOM" in op or "Random" in op]
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)


@pytest.mark.filterwarnings(TFLITE_WARNING)
def test_tflite_time_loop_needs_flex_ops_as_keras_lstm_does(tmp_path):
    # The documented limit: without `unroll`, the converter keeps the time
    # loop as a WHILE whose outputs are TensorFlow TensorList ops (Flex),
    # which the stock TFLite interpreter cannot run. Keras's own LSTM
    # converts to the same Flex ops: nothing of this package causes it.
    x_value = _inputs("gal_lstm")
    results = {}
    for key, layer in [
        ("ours", kr.RNN(kr.GalLSTMCell(UNITS, dropout=0.3, seed=1))),
        ("keras", keras.layers.LSTM(UNITS, dropout=0.3, seed=1)),
    ]:
        inputs = keras.Input((T, D))
        model = keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)))
        ops, served = _tflite_ops_and_run(
            model, tmp_path / f"{key}.tflite", x_value
        )
        results[key] = ops
        assert served is None
        assert "WHILE" in ops and "FlexTensorListReserve" in ops, ops
    flex = {op for op in results["ours"] if op.startswith("Flex")}
    assert flex == {op for op in results["keras"] if op.startswith("Flex")}
