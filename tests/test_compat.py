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
