"""Tries every export target from the current backend and measures it.

    KERAS_BACKEND=jax python scripts/export_targets.py [--json out.json]

For the backend named by `KERAS_BACKEND`, exports two models to each target
and runs the artifact on the same inputs as `model.predict`:

* `recdrop`: `ZoneoutLSTM` (per-step noise; its expectation at inference),
  `SemeniutaGRU`, `WeightDropLSTM` and `GalLSTM`, then a `Dense`;
* `keras`: Keras's own `LSTM(dropout=0.2, recurrent_dropout=0.2)`, the
  control: what Keras's layer does on the same route.

Targets: `saved_model` (`model.export(path)`, reloaded with
`tf.saved_model.load`), `tflite` (`model.export(path, format="litert")`
where Keras supports it, else the TFLite converter on the SavedModel; the
stock `tf.lite.Interpreter` runs it), `onnx` (`model.export(path,
format="onnx")`, run by `onnxruntime`). Prints one line per try: whether it
worked, the options, the largest absolute difference to `predict`, and
the first line of the error where it failed. The table in docs/scaling.md
("Export for serving") records a run of this script per backend. An
exporter that is not installed is reported as such (`tf2onnx` for ONNX
from TensorFlow, `jax2onnx` from JAX, `onnxscript` from PyTorch,
`litert_torch` for TFLite from PyTorch).
"""

import argparse
import json
import os
import re
import tempfile
import traceback
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_recdrop as kr  # noqa: E402

BACKEND = keras.backend.backend()
T, D, UNITS = 20, 8, 16
RANDOM_OP = re.compile(r"Random|Rng|RNG")


def build(kind, unroll=False):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((T, D))
    if kind == "keras":
        x = keras.layers.LSTM(
            UNITS, dropout=0.2, recurrent_dropout=0.2, seed=1, unroll=unroll
        )(inputs)
    else:
        x = kr.ZoneoutLSTM(
            UNITS,
            zoneout_c=0.5,
            zoneout_h=0.05,
            seed=1,
            return_sequences=True,
            unroll=unroll,
        )(inputs)
        x = kr.SemeniutaGRU(
            UNITS,
            recurrent_dropout=0.25,
            seed=2,
            return_sequences=True,
            unroll=unroll,
        )(x)
        x = kr.WeightDropLSTM(
            UNITS,
            weight_dropout=0.5,
            seed=3,
            return_sequences=True,
            unroll=unroll,
        )(x)
        x = kr.GalLSTM(
            UNITS, dropout=0.2, recurrent_dropout=0.25, seed=4, unroll=unroll
        )(x)
    return keras.Model(inputs, keras.layers.Dense(1)(x))


def inputs():
    return np.random.RandomState(0).rand(4, T, D).astype("float32")


def _graph_ops(function):
    graph = function.graph.as_graph_def()
    ops = {node.op for node in graph.node}
    for inner in graph.library.function:
        ops.update(node.op for node in inner.node_def)
    return ops


def saved_model(model, x, directory):
    import tensorflow as tf

    path = os.path.join(directory, "saved_model")
    model.export(path, verbose=False)
    loaded = tf.saved_model.load(path)
    served = loaded.serve(x).numpy()
    random_ops = sorted(
        op
        for op in _graph_ops(loaded.signatures["serving_default"])
        if RANDOM_OP.search(op)
    )
    return served, f"random ops in the graph: {random_ops or 'none'}"


def _interpreter(path):
    """The stock TFLite interpreter: `ai_edge_litert`'s, else TensorFlow's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        return Interpreter(model_path=path)


def _run_tflite(path, x):
    interpreter = _interpreter(path)
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    flex = [op for op in ops if op.startswith("Flex")]
    index = interpreter.get_input_details()[0]["index"]
    if tuple(interpreter.get_input_details()[0]["shape"]) != x.shape:
        interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    output = interpreter.get_output_details()[0]["index"]
    return interpreter.get_tensor(output), f"Flex ops: {flex or 'none'}"


def tflite(model, x, directory):
    path = os.path.join(directory, "model.tflite")
    if BACKEND == "tensorflow":
        model.export(path, format="litert", verbose=False)
        return _run_tflite(path, x)
    if BACKEND == "torch":
        # From PyTorch the batch size is fixed at export (Keras replaces a
        # `None` by 1): export for the rows of `x`.
        spec = keras.InputSpec(shape=x.shape, dtype="float32")
        model.export(
            path, format="litert", verbose=False, input_signature=[spec]
        )
        return _run_tflite(path, x)
    # JAX: Keras has no LiteRT export; convert the SavedModel (jax2tf).
    import tensorflow as tf

    saved = os.path.join(directory, "for_tflite")
    model.export(saved, verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    with open(path, "wb") as file:
        file.write(converter.convert())
    return _run_tflite(path, x)


def onnx(model, x, directory):
    import onnxruntime

    path = os.path.join(directory, "model.onnx")
    # Keras's ONNX export refuses a model that was never called directly
    # ("The model provided has never called"), which on JAX `predict`
    # alone leaves so.
    model(x[:1])
    model.export(path, format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(
        path, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    batch = session.get_inputs()[0].shape[0]
    random_ops = sorted(op for op in _onnx_ops(path) if "Random" in op)
    note = f"batch dimension: {batch}; random ops: {random_ops or 'none'}"
    return session.run(None, {name: x})[0], note


def _onnx_ops(path):
    """Every op type of an ONNX file, loop bodies and functions included."""
    import onnx

    model = onnx.load(path)
    found = set()

    def visit(graph):
        for node in graph.node:
            found.add(node.op_type)
            for attribute in node.attribute:
                if attribute.g is not None:
                    visit(attribute.g)
                for inner in attribute.graphs:
                    visit(inner)

    visit(model.graph)
    for function in model.functions:
        for node in function.node:
            found.add(node.op_type)
    return found


TARGETS = {"saved_model": saved_model, "tflite": tflite, "onnx": onnx}


def attempts():
    yield "saved_model", "recdrop", {}
    yield "saved_model", "keras", {}
    yield "tflite", "recdrop", {"unroll": True}
    yield "tflite", "recdrop", {"unroll": False}
    yield "tflite", "keras", {"unroll": True}
    yield "onnx", "recdrop", {}
    yield "onnx", "keras", {}


def first_line(error):
    text = f"{type(error).__name__}: {error}".strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the records here")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated"
    )
    args = parser.parse_args()
    x = inputs()
    records = []
    for target, kind, options in attempts():
        if target not in args.targets.split(","):
            continue
        record = {
            "backend": BACKEND,
            "target": target,
            "model": kind,
            "options": options,
        }
        model = build(kind, **options)
        expected = model.predict(x, verbose=0)
        with tempfile.TemporaryDirectory() as directory:
            try:
                served, note = TARGETS[target](model, x, directory)
                record.update(
                    ok=True,
                    max_abs_diff=float(np.abs(served - expected).max()),
                    note=note,
                )
            except Exception as error:  # noqa: BLE001 - reported, not hidden
                record.update(ok=False, error=first_line(error))
                if os.environ.get("EXPORT_TARGETS_TRACEBACK"):
                    traceback.print_exc()
        records.append(record)
        print(json.dumps(record), flush=True)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(records, file, indent=1)


if __name__ == "__main__":
    main()
