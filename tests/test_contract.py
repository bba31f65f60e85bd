"""The contract between a layer's time loop and its cells, and the registry.

Inside `keras_recdrop.RNN` (and the ready-made layers) a call's masks,
weights and per-step noise reach a cell's step as its `context` argument:
the cell keeps no per-call state, and no module writes attributes into
another object. Each regularizer declares itself once, in
`keras_recdrop.registry`, and the package's exports, `convert` and
`mc_predict` follow that table.
"""

import ast
import dataclasses
import inspect
import pathlib

import keras
import numpy as np
import pytest
from probes import to_numpy

import keras_recdrop as kr
from keras_recdrop import layers
from keras_recdrop import registry
from keras_recdrop.cell_base import RegularizedCellBase

ROOT = pathlib.Path(__file__).resolve().parent.parent

CELLS = {
    "gal_lstm": lambda: kr.GalLSTMCell(4, dropout=0.3, recurrent_dropout=0.3),
    "zoneout_lstm": lambda: kr.ZoneoutLSTMCell(4, zoneout_c=0.4, dropout=0.2),
    "semeniuta_gru": lambda: kr.SemeniutaGRUCell(
        4, recurrent_dropout=0.4, dropout=0.3
    ),
    "weight_drop_lstm": lambda: kr.WeightDropLSTMCell(4, weight_dropout=0.4),
}


def _snapshot(cell):
    return {name: id(value) for name, value in vars(cell).items()}


@pytest.mark.parametrize("stacked", [False, True], ids=["one", "stack"])
def test_a_cell_keeps_no_per_call_state_during_the_loop(stacked):
    """Every step of a training call sees the cell's attributes exactly as
    they are outside any call: the call's masks, weights and noise arrive
    as the step's `context`, never as attributes."""
    seen = []

    def spying(cls):
        class Spy(cls):
            def step(self, projection, states, context):
                seen.append((_snapshot(self), context))
                return super().step(projection, states, context)

        return Spy

    cells = [
        spying(kr.ZoneoutLSTMCell)(4, zoneout_c=0.3, dropout=0.2),
        spying(kr.WeightDropLSTMCell)(4, weight_dropout=0.3),
    ]
    layer = kr.RNN(cells if stacked else cells[0], return_sequences=True)
    x = np.random.default_rng(0).random((3, 5, 2)).astype("float32")
    layer(x, training=True)
    outside = [_snapshot(c) for c in cells]
    seen.clear()
    layer(x, training=True)
    assert seen
    for snapshot, context in seen:
        assert snapshot in outside
        assert context.training
    assert [_snapshot(c) for c in cells] == outside


@pytest.mark.parametrize("name", sorted(CELLS))
def test_a_step_is_a_function_of_inputs_states_and_context(name):
    """Given its context, a step reads nothing else that a call changes:
    advancing the cell's random stream between two steps with the same
    context changes nothing; another context (new masks) changes it."""
    cell = CELLS[name]()
    rng = np.random.default_rng(1)
    x = rng.random((64, 3)).astype("float32")
    cell.build(x.shape)
    sizes = cell.state_size
    states = [rng.random((64, 4)).astype("float32") for _ in range(2)]
    states = states if isinstance(sizes, list) else states[0]
    context = cell.begin_call(x, True)
    if context.noise_spec:
        noise = {
            n: keras.ops.convert_to_tensor(rng.random((64, w)) < p)
            for n, p, w in context.noise_spec
        }
        context = context.at_step(noise)
    first = to_numpy(cell(x, states, training=True, context=context)[0])
    cell.seed_generator.next()
    again = to_numpy(cell(x, states, training=True, context=context)[0])
    np.testing.assert_array_equal(first, again)
    other = dataclasses.replace(cell.begin_call(x, True), noise=context.noise)
    assert not np.allclose(
        first, to_numpy(cell(x, states, training=True, context=other)[0])
    )


def _attribute_writes(path):
    """`(line, target)` for each assignment to an attribute of an object
    other than `self` (or `cls`) or one the module itself creates at its
    top level (`noise_mode`'s thread-local switch) in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            for sub in ast.walk(target):
                if (
                    isinstance(sub, ast.Attribute)
                    and isinstance(sub.ctx, ast.Store | ast.Del)
                    and not (
                        isinstance(sub.value, ast.Name)
                        and sub.value.id in ("self", "cls", *own)
                    )
                ):
                    found.append((node.lineno, ast.unparse(sub)))
    return found


def test_no_module_writes_attributes_into_another_object():
    """Only `_compat` (Keras's boundary: `supports_jit`, a dropout layer's
    `call` during `mc_predict`) sets attributes of an object it does not
    own."""
    offenders = {
        path.name: writes
        for path in sorted((ROOT / "keras_recdrop").glob("*.py"))
        if path.name != "_compat.py" and (writes := _attribute_writes(path))
    }
    assert offenders == {}
    assert _attribute_writes(ROOT / "keras_recdrop" / "_compat.py")


def test_the_loop_contract_is_declared_on_the_base_class():
    for name in ("begin_call", "project_inputs", "step", "fused_call"):
        method = getattr(RegularizedCellBase, name)
        assert method.__doc__, name
    doc = inspect.getmodule(RegularizedCellBase).__doc__
    for name in ("begin_call", "project_inputs", "step", "fused_call"):
        assert f"`{name}(" in doc


# ------------------------------------------------------------ the registry
OTHER_PUBLIC_NAMES = {
    "__version__",
    "RNN",
    "RegularizedCellBase",
    "LSTMCellBase",
    "GRUCellBase",
    "LSTMLayerBase",
    "GRULayerBase",
    "convert",
    "export_mc",
    "mc_predict",
    "reset_states",
}


def test_the_package_exports_exactly_what_the_registry_holds():
    registered = {c.__name__ for c in registry.public_classes()}
    assert set(kr.__all__) == registered | OTHER_PUBLIC_NAMES
    for name in kr.__all__:
        assert getattr(kr, name) is not None
    assert set(layers.__all__) == set(registry.ready_made_layers()) | {
        "LSTMLayerBase",
        "GRULayerBase",
    }
    assert set(layers.LSTM_LAYERS) | set(layers.GRU_LAYERS) == set(
        registry.ready_made_layers().values()
    )


@pytest.fixture
def extra_regularizer(monkeypatch):
    """A regularizer registered for one test only: a subclass of zoneout's
    layer whose noise the test declares shared by the batch."""

    @keras.saving.register_keras_serializable(package="keras_recdrop_test")
    class SharedZoneoutLSTM(kr.ZoneoutLSTM):
        pass

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register(
        registry.Regularizer(
            name="shared_zoneout",
            layers=(SharedZoneoutLSTM,),
            converts={"LSTM": SharedZoneoutLSTM},
            shares_noise_across_batch=lambda layer: True,
            draws_noise=registry.cell_draws_noise,
        )
    )
    return SharedZoneoutLSTM


class _BatchSizes(keras.layers.Layer):
    """Records the batch size of every call (each trace, when compiled)."""

    seen = []

    def call(self, x):
        self.seen.append(x.shape[0])
        return x


def test_convert_and_mc_predict_follow_the_registry(extra_regularizer):
    model = keras.Sequential(
        [
            keras.Input((5, 3)),
            keras.layers.LSTM(4),
            _BatchSizes(),
            keras.layers.Dense(1),
        ]
    )
    new = kr.convert(
        model, lstm="shared_zoneout", lstm_kwargs={"zoneout_c": 0.5}
    )
    assert type(new.layers[0]) is extra_regularizer
    with pytest.raises(ValueError, match="shared_zoneout"):
        kr.convert(model, lstm="no_such_regularizer")
    # Declared shared by the batch: one forward pass per sample, on the
    # rows of `x` alone; zoneout's own layer tiles the samples.
    x = np.random.default_rng(0).random((2, 5, 3)).astype("float32")
    _BatchSizes.seen.clear()
    kr.mc_predict(new, x, samples=3, seed=0)
    assert set(_BatchSizes.seen) == {2}
    plain = kr.convert(model, lstm="zoneout", lstm_kwargs={"zoneout_c": 0.5})
    _BatchSizes.seen.clear()
    kr.mc_predict(plain, x, samples=3, seed=0)
    assert set(_BatchSizes.seen) == {6}


def test_registering_a_name_twice_raises():
    with pytest.raises(ValueError, match="gal"):
        registry.register(registry.Regularizer(name="gal"))
