"""Forward compatibility: private names in one module, both Keras layouts.

`keras_recdrop/_compat.py` is the only module that may touch Keras's
private `keras.src` tree or JAX's trace internals. These tests check that
rule on the source, that the compatibility module finds each name in the
Keras 3.8 - 3.15 layout and in the 3.16 layout (simulated, so that one
environment proves both; CI also runs the whole suite on a Keras 3.16
nightly), and that masks still flow through the package's layers on the
installed Keras (3.16's `keras.layers.RNN` declares `supports_masking =
False`).
"""

import ast
import pathlib
import types

import keras
import numpy as np
import pytest
from keras import ops
from probes import to_numpy

import keras_recdrop as kr
from keras_recdrop import _compat

ROOT = pathlib.Path(__file__).resolve().parent.parent
PRIVATE_JAX_NAMES = {"_trace", "parent_trace", "DynamicJaxprTrace"}


def _python_files():
    for folder in ("keras_recdrop", "tests", "examples", "benchmarks"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def _private_uses(path):
    """`(line, what)` for every private Keras/JAX name used in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                callee = ast.unparse(node.func)
                if callee.endswith(("import_module", "__import__")):
                    modules = [first.value]
        for module in modules:
            if module.startswith(("keras.src", "jax._src", "jaxlib")):
                found.append((node.lineno, f"import {module}"))
        if isinstance(node, ast.Attribute):
            if node.attr in PRIVATE_JAX_NAMES:
                found.append((node.lineno, f".{node.attr}"))
            if node.attr == "src" and ast.unparse(node.value) == "keras":
                found.append((node.lineno, "keras.src"))
        if isinstance(node, ast.Constant) and node.value in PRIVATE_JAX_NAMES:
            found.append((node.lineno, repr(node.value)))
    return found


def test_only_the_compat_module_touches_private_keras_or_jax_names():
    offenders = {
        str(path.relative_to(ROOT)): uses
        for path in _python_files()
        # This file names the private names it looks for.
        if path.name not in ("_compat.py", "test_compat.py")
        and (uses := _private_uses(path))
    }
    assert offenders == {}
    # The scan itself sees the compatibility module's own uses.
    assert _private_uses(ROOT / "keras_recdrop" / "_compat.py")


# Modules allowed to touch Keras's, TensorFlow's or JAX's private surface
# (`_compat`) or to import a backend (`_compat`, and `_stateless`, the
# documented exception for stateless random numbers).
BOUNDARY_MODULES = {"_compat.py"}
BACKEND_IMPORT_MODULES = {"_compat.py", "_stateless.py"}
BACKENDS = ("tensorflow", "jax", "jaxlib", "torch")


def _underscore_names(namespace):
    return {
        name
        for name in namespace
        if name.startswith("_") and not name.startswith("__")
    }


def _keras_private_names():
    """The private names of the Keras classes the package subclasses or
    calls: what their classes define with a leading underscore, and what
    their instances hold once built and called (`_dropout_mask`, ...)."""
    lstm = keras.layers.LSTM(2, dropout=0.1, recurrent_dropout=0.1)
    x = np.zeros((1, 2, 3), "float32")
    lstm(x, training=True)
    lstm.cell.get_dropout_mask(x[:, 0])
    lstm.cell.get_recurrent_dropout_mask(np.zeros((1, 2), "float32"))
    stack = keras.layers.RNN([keras.layers.GRUCell(2), keras.layers.GRUCell(2)])
    stack(x)
    model = keras.Sequential([keras.Input((2, 3)), keras.layers.Dropout(0.1)])
    embedding = keras.layers.Embedding(3, 2)
    embedding(np.zeros((1, 2), "int32"))
    instances = [
        lstm,
        lstm.cell,
        stack,
        stack.cell,
        keras.layers.Bidirectional(keras.layers.LSTM(2)),
        model,
        model.layers[0],
        embedding,
        keras.random.SeedGenerator(1),
        keras.Variable(np.zeros(2)),
    ]
    names = set()
    for instance in instances:
        names |= _underscore_names(vars(instance))
        for klass in type(instance).__mro__:
            if klass.__module__.startswith("keras"):
                names |= _underscore_names(vars(klass))
    for klass in _compat.DropoutRNNCell.__mro__:
        names |= _underscore_names(vars(klass))
    # Public by its spelling, but a Keras implementation detail that a
    # layer sets on itself (`keras.layers.LSTM` does, for cuDNN).
    return names | {"supports_jit"}


def _boundary_crossings(path, keras_private):
    """`(line, what)` for each use of Keras's private surface and each
    backend import in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in keras_private:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if (
                    isinstance(item, ast.FunctionDef | ast.Assign)
                    and getattr(item, "name", None) in keras_private
                ):
                    found.append((item.lineno, f"overrides {item.name}"))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in keras_private
        ):
            found.append((node.lineno, repr(node.value)))
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        for module in modules:
            if (
                module.split(".")[0] in BACKENDS
                and path.name not in BACKEND_IMPORT_MODULES
            ):
                found.append((node.lineno, f"import {module}"))
    return found


def test_only_the_compat_module_touches_keras_private_surface():
    """No module of the package but `_compat` reads, writes or overrides a
    private attribute of Keras's classes (or `supports_jit`), and only
    `_compat` and `_stateless` import a backend. The package's own
    underscore names between its own classes are not Keras's surface; one
    that collided with a Keras name would count."""
    keras_private = _keras_private_names()
    assert {"_dropout_mask", "_maybe_config_dropout_masks"} <= keras_private
    offenders = {
        path.name: uses
        for path in sorted((ROOT / "keras_recdrop").glob("*.py"))
        if path.name not in BOUNDARY_MODULES
        and (uses := _boundary_crossings(path, keras_private))
    }
    assert offenders == {}
    # The scan sees what the compatibility module does.
    compat = _boundary_crossings(
        ROOT / "keras_recdrop" / "_compat.py", keras_private
    )
    assert any("_maybe_config_dropout_masks" in what for _, what in compat)
    assert any("supports_jit" in what for _, what in compat)


def _fake_backend(layout):
    def loop(*args, **kwargs):
        return "loop"

    def lstm(*args, **kwargs):
        return "lstm"

    def gru(*args, **kwargs):
        return "gru"

    if layout == "3.15":
        return types.SimpleNamespace(rnn=loop, lstm=lstm, gru=gru)
    if layout == "3.16":
        module = types.ModuleType("rnn")
        module.rnn, module.lstm, module.gru = loop, lstm, gru
        return types.SimpleNamespace(rnn=module)
    return types.SimpleNamespace()


@pytest.mark.parametrize("layout", ["3.15", "3.16"])
def test_compat_finds_loop_and_fused_kernels_in_each_keras_layout(
    layout, monkeypatch
):
    monkeypatch.setattr(
        _compat, "_keras_backend_module", lambda: _fake_backend(layout)
    )
    assert _compat._find_rnn_loop()() == "loop"
    assert _compat._find_fused("lstm")() == "lstm"
    assert _compat._find_fused("gru")() == "gru"


def test_compat_without_fused_kernels_falls_back_to_the_cell_loop(
    monkeypatch,
):
    monkeypatch.setattr(
        _compat, "_keras_backend_module", lambda: _fake_backend("none")
    )
    with pytest.raises(ImportError, match="backend RNN loop"):
        _compat._find_rnn_loop()
    # A missing fused kernel raises what the backends raise when they have
    # none, which sends the layers to the cell loop.
    with pytest.raises(NotImplementedError, match="fused lstm"):
        _compat._find_fused("lstm")()


def test_staging_trace_of_a_value_without_trace_is_none():
    assert _compat.staging_trace(np.zeros(3)) is None
    assert _compat.staging_trace(types.SimpleNamespace(_trace=None)) is None


def test_installed_keras_layout_is_found():
    # The real lookups resolved at import; the loop is callable and the
    # fused kernels belong to the active backend's module.
    backend = keras.backend.backend()
    assert callable(_compat.rnn_loop)
    assert backend in _compat.fused_lstm.__module__
    assert backend in _compat.fused_gru.__module__


class _MaskEcho(keras.layers.Layer):
    """Returns the mask it receives as floats (ones if it gets none)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.ones(ops.shape(inputs)[:2])
        return ops.cast(mask, "float32")


def _padded_batch():
    x = np.random.default_rng(0).standard_normal((3, 6, 4)).astype("float32")
    lengths = np.array([6, 4, 2])
    padding = np.arange(6)[None, :] >= lengths[:, None]
    x[padding] = 0.0
    return x, ~padding


RECURRENT_LAYERS = {
    "RNN(GalLSTMCell)": lambda: kr.RNN(
        kr.GalLSTMCell(5, recurrent_dropout=0.2), return_sequences=True
    ),
    "RNN(ZoneoutLSTMCell)": lambda: kr.RNN(
        kr.ZoneoutLSTMCell(5, zoneout_c=0.3), return_sequences=True
    ),
    "GalLSTM": lambda: kr.GalLSTM(5, return_sequences=True),
    "ZoneoutGRU": lambda: kr.ZoneoutGRU(
        5, zoneout_h=0.2, return_sequences=True
    ),
}


@pytest.mark.parametrize("name", sorted(RECURRENT_LAYERS))
def test_padding_mask_reaches_the_layers_after_a_recurrent_layer(name):
    x, keep = _padded_batch()
    inputs = keras.Input((6, 4))
    masked = keras.layers.Masking(0.0)(inputs)
    h = RECURRENT_LAYERS[name]()(masked)
    echo = _MaskEcho()(h)
    stabilized = kr.NormStabilizer(beta=3.0)(h)
    model = keras.Model(inputs, [echo, stabilized])
    got_mask, _ = model(x, training=False)
    np.testing.assert_array_equal(to_numpy(got_mask), keep.astype("float32"))


def test_norm_stabilizer_after_recurrent_layer_penalizes_only_real_steps():
    x, keep = _padded_batch()
    inputs = keras.Input((6, 4))
    masked = keras.layers.Masking(0.0)(inputs)
    h = kr.GalLSTM(5, return_sequences=True)(masked)
    model = keras.Model(inputs, kr.NormStabilizer(beta=3.0)(h))
    sequences = keras.Model(inputs, h)
    model(x, training=True)
    (loss,) = model.losses
    norms = np.linalg.norm(to_numpy(sequences(x)), axis=-1)
    pairs = keep[:, 1:] & keep[:, :-1]
    expected = 3.0 * np.sum(pairs * np.diff(norms, axis=1) ** 2) / pairs.sum()
    unmasked = 3.0 * np.mean(np.diff(norms, axis=1) ** 2)
    assert abs(expected - unmasked) > 1e-3  # the mask matters here
    np.testing.assert_allclose(to_numpy(loss), expected, rtol=1e-5)


def test_loop_with_lookahead_is_keras_loop_where_it_cannot_be_rebound(
    monkeypatch,
):
    """Where Keras's loop is not a plain function building its loop from a
    global `tf` (other backends, or a future Keras), the package runs
    Keras's loop unchanged instead of failing."""

    class NotAFunction:
        def __call__(self, *args, **kwargs):
            return "loop"

    for loop in (NotAFunction(), lambda *args: "loop"):
        monkeypatch.setattr(_compat, "rnn_loop", loop)
        _compat.rnn_loop_with_lookahead.cache_clear()
        assert _compat.rnn_loop_with_lookahead(8) is loop
    _compat.rnn_loop_with_lookahead.cache_clear()


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="only TensorFlow's loop is rebound",
)
def test_loop_with_lookahead_leaves_keras_module_untouched():
    """The rebound loop sees its own `tf`; Keras's function and module keep
    theirs, so no other layer's loop changes."""
    import tensorflow as tf

    rebound = _compat.rnn_loop_with_lookahead(8)
    assert rebound is not _compat.rnn_loop
    assert rebound.__code__ is _compat.rnn_loop.__code__
    assert _compat.rnn_loop.__globals__["tf"] is tf
    assert rebound.__globals__["tf"].while_loop is not tf.while_loop
    assert rebound.__globals__["tf"].TensorArray is tf.TensorArray
