"""Export to ONNX: `model.export(path, format="onnx")`, run by onnxruntime.

Every cell (in `keras_recdrop.RNN`, then its ready-made layer) and an
embedding model are exported from the current backend and run by
`onnxruntime` on a batch of another size than the exporter traced (6 rows;
PyTorch traces 1): the outputs equal `predict`'s (measured: at most 8e-8;
asserted: 1e-5), and the ONNX graph, loop bodies included, has no random
op. The exporter is Keras's choice per backend: `tf2onnx` on TensorFlow,
`torch.onnx` on PyTorch (its TorchScript exporter when the batch size is
dynamic), `jax2onnx` on JAX. Each backend's tests skip when its exporter or
`onnxruntime` is not installed; CI installs them for TensorFlow and PyTorch
(the `export` extra). `jax2onnx` pulls in flax, optax and orbax, so CI does
not install it; the JAX tests pass where it is installed (jax2onnx 0.17.1).
"""

import importlib.util

import keras
import numpy as np
import pytest

import keras_recdrop as kr

BACKEND = keras.backend.backend()
EXPORTER = {"tensorflow": "tf2onnx", "torch": "onnxscript", "jax": "jax2onnx"}
MISSING = [
    name
    for name in ("onnx", "onnxruntime", EXPORTER.get(BACKEND, "onnx"))
    if importlib.util.find_spec(name) is None
]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"not installed: {', '.join(MISSING)}"
)

T, D, UNITS, ROWS = 5, 3, 4, 6

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


def _model(name):
    if name == "embedding":
        inputs = keras.Input((T,), dtype="int32")
        x = kr.DropoutEmbedding(20, D, embeddings_dropout=0.5, seed=1)(inputs)
        x = kr.RNN(kr.GalLSTMCell(UNITS, dropout=0.3, seed=2))(x)
        return keras.Model(inputs, keras.layers.Dense(2)(x))
    cell_cls, layer_cls, kwargs = CELLS[name]
    inputs = keras.Input((T, D))
    x = kr.RNN(cell_cls(UNITS, seed=1, **kwargs), return_sequences=True)(inputs)
    x = layer_cls(UNITS, seed=2, **kwargs)(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def _inputs(name):
    rng = np.random.RandomState(0)
    if name == "embedding":
        return rng.randint(1, 20, (ROWS, T)).astype("int32")
    return rng.randn(ROWS, T, D).astype("float32")


def _onnx_op_types(path):
    """Every op type in the file: graph, loop and branch bodies, functions."""
    import onnx

    model = onnx.load(str(path))
    found = set()

    def visit(graph):
        for node in graph.node:
            found.add(node.op_type)
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    visit(attribute.g)
                for inner in attribute.graphs:
                    visit(inner)

    visit(model.graph)
    for function in model.functions:
        found.update(node.op_type for node in function.node)
    return found


@pytest.mark.parametrize("name", list(CELLS) + ["embedding"])
def test_onnx_runtime_serves_predict_outputs_without_random_ops(tmp_path, name):
    import onnxruntime

    keras.utils.set_random_seed(7)
    model = _model(name)
    x = _inputs(name)
    expected = model.predict(x, verbose=0)
    # The noise is on in training: inference is not the training output.
    trained = keras.ops.convert_to_numpy(model(x, training=True))
    assert np.abs(trained - expected).max() > 1e-4
    path = tmp_path / "model.onnx"
    model.export(str(path), format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    (served,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-5)
    ops = _onnx_op_types(path)
    assert not [op for op in ops if "Random" in op or "Bernoulli" in op]
    assert "Dropout" not in ops
