"""Drop-in fidelity: Keras's signatures, attributes, and a quiet import.

Each ready-made layer takes every argument of `keras.layers.LSTM` (or
`GRU`) in the same positional order, then keyword-only arguments of its
own; a positional call binds exactly as it binds for Keras's layer. The
cell's arguments read as layer attributes. Importing the package creates no
layer or variable and touches no global random state or automatic name.
"""

import inspect
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_recdrop as kr

LSTM_LAYERS = [kr.GalLSTM, kr.ZoneoutLSTM, kr.SemeniutaLSTM, kr.WeightDropLSTM]
GRU_LAYERS = [kr.GalGRU, kr.ZoneoutGRU, kr.SemeniutaGRU]
OWN_ARGS = {
    "GalLSTM": [],
    "ZoneoutLSTM": ["zoneout_c", "zoneout_h"],
    "SemeniutaLSTM": ["per_step"],
    "WeightDropLSTM": ["weight_dropout"],
    "GalGRU": [],
    "ZoneoutGRU": ["zoneout_h"],
    "SemeniutaGRU": ["per_step"],
}
PACKAGE_ARGS = ["tied_masks", "implementation", "stateful_masks"]


def keras_counterpart(layer_cls):
    return keras.layers.LSTM if layer_cls in LSTM_LAYERS else keras.layers.GRU


def params(cls):
    return list(inspect.signature(cls).parameters.values())


@pytest.mark.parametrize(
    "layer_cls", LSTM_LAYERS + GRU_LAYERS, ids=lambda c: c.__name__
)
def test_signature_is_keras_signature_then_own_keyword_arguments(layer_cls):
    ours, theirs = params(layer_cls), params(keras_counterpart(layer_cls))
    keras_named = [p for p in theirs if p.kind is not p.VAR_KEYWORD]
    # Keras's arguments first, same names, kinds and defaults, same order.
    assert ours[: len(keras_named)] == keras_named
    rest = ours[len(keras_named) :]
    if "dropout_masks" not in {p.name for p in keras_named}:
        # The argument proposed for Keras follows, where a Keras that has
        # it puts it (docs/upstream.md).
        assert rest[0] == inspect.Parameter(
            "dropout_masks", rest[0].POSITIONAL_OR_KEYWORD, default="per_gate"
        )
        rest = rest[1:]
    assert [p.name for p in rest[:-1]] == (
        PACKAGE_ARGS + OWN_ARGS[layer_cls.__name__]
    )
    assert all(p.kind is p.KEYWORD_ONLY for p in rest[:-1])
    assert rest[-1].kind is rest[-1].VAR_KEYWORD
    # No argument is missing from the signature: every config key the
    # layer writes (but the base layer's) is a listed parameter.
    names = {p.name for p in ours}
    config = layer_cls(3).get_config()
    base = {"name", "trainable", "dtype", "zero_output_for_mask"}
    assert set(config) - base <= names


def nondefault_positional_values(keras_cls):
    """A non-default value for every positional argument of `keras_cls`."""
    values = {
        "units": 7,
        "activation": "relu",
        "recurrent_activation": "hard_sigmoid",
        "use_bias": False,
        "kernel_initializer": "he_normal",
        "recurrent_initializer": "glorot_normal",
        "bias_initializer": "ones",
        "unit_forget_bias": False,
        "kernel_regularizer": "l1",
        "recurrent_regularizer": "l2",
        "bias_regularizer": "l1",
        "activity_regularizer": "l2",
        "kernel_constraint": "non_neg",
        "recurrent_constraint": "unit_norm",
        "bias_constraint": "max_norm",
        "dropout": 0.1,
        "recurrent_dropout": 0.2,
        "seed": 11,
        "return_sequences": True,
        "return_state": True,
        "go_backwards": True,
        "stateful": False,
        "unroll": True,
        "reset_after": False,
        "use_cudnn": False,
        "dropout_masks": "shared",
    }
    return [
        values[p.name]
        for p in params(keras_cls)
        if p.kind is p.POSITIONAL_OR_KEYWORD
    ]


@pytest.mark.parametrize(
    "layer_cls", LSTM_LAYERS + GRU_LAYERS, ids=lambda c: c.__name__
)
def test_positional_arguments_bind_as_in_keras(layer_cls):
    keras_cls = keras_counterpart(layer_cls)
    args = nondefault_positional_values(keras_cls)
    ours = layer_cls(*args).get_config()
    theirs = keras_cls(*args).get_config()
    for key in theirs:
        if key in ("name", "implementation"):
            continue
        assert json.dumps(ours[key], sort_keys=True) == json.dumps(
            theirs[key], sort_keys=True
        ), key


def test_second_positional_argument_is_the_activation():
    layer = kr.GalLSTM(64, "relu")
    assert layer.activation is keras.activations.relu
    assert layer.return_sequences is False


@pytest.mark.parametrize(
    "layer_cls", LSTM_LAYERS + GRU_LAYERS, ids=lambda c: c.__name__
)
def test_layer_attributes_read_like_keras_layers(layer_cls):
    keras_cls = keras_counterpart(layer_cls)
    args = nondefault_positional_values(keras_cls)
    ours, theirs = layer_cls(*args), keras_cls(*args)
    public = [
        name
        for name, value in vars(keras_cls).items()
        if isinstance(value, property)
    ]
    assert "units" in public and "recurrent_dropout" in public
    for name in public:
        a, b = getattr(ours, name), getattr(theirs, name)
        if callable(b) or hasattr(b, "get_config"):
            assert type(a) is type(b), name
        else:
            assert a == b, name


@pytest.mark.parametrize(
    "layer_cls", LSTM_LAYERS + GRU_LAYERS, ids=lambda c: c.__name__
)
def test_own_arguments_are_keyword_only_and_read_as_attributes(layer_cls):
    values = {
        "zoneout_c": 0.3,
        "zoneout_h": 0.2,
        "per_step": False,
        "weight_dropout": 0.4,
        "tied_masks": True,
        "implementation": 1,
    }
    own = {
        k: values[k]
        for k in OWN_ARGS[layer_cls.__name__] + ["tied_masks", "implementation"]
    }
    layer = layer_cls(3, **own)
    for name, value in own.items():
        assert getattr(layer, name) == value
        assert getattr(layer.cell, name) == value
        assert layer.get_config()[name] == value
    if OWN_ARGS[layer_cls.__name__]:
        first = next(iter(OWN_ARGS[layer_cls.__name__]))
        with pytest.raises(TypeError):
            # One positional value more than the layer's positional
            # arguments (Keras's and `dropout_masks`).
            layer_cls(*nondefault_positional_values(layer_cls), values[first])


@pytest.mark.parametrize(
    "layer_cls", LSTM_LAYERS + GRU_LAYERS, ids=lambda c: c.__name__
)
def test_dropout_masks_shared_ties_the_masks_and_survives_the_config(
    layer_cls,
):
    x = np.random.default_rng(0).random((4, 5, 3)).astype("float32")
    args = {"dropout": 0.5, "recurrent_dropout": 0.5, "seed": 2}
    outputs, weights = {}, None
    for name, kwargs in {
        "shared": {"dropout_masks": "shared"},
        "tied": {"tied_masks": True},
        "per_gate": {"dropout_masks": "per_gate"},
    }.items():
        layer = layer_cls(3, **args, **kwargs)
        layer.build(x.shape)
        if weights is None:
            weights = layer.get_weights()
        layer.set_weights(weights)
        outputs[name] = keras.ops.convert_to_numpy(layer(x, training=True))
        config = layer.get_config()
        assert config["dropout_masks"] == layer.dropout_masks
        assert config["tied_masks"] is (layer.dropout_masks == "shared")
        assert layer_cls.from_config(config).dropout_masks == (
            layer.dropout_masks
        )
    # The two spellings draw the same masks; per-gate masks differ.
    np.testing.assert_array_equal(outputs["shared"], outputs["tied"])
    assert not np.allclose(outputs["shared"], outputs["per_gate"])
    # A config written before `dropout_masks` existed loads as it was saved.
    config = layer_cls(3, tied_masks=True).get_config()
    del config["dropout_masks"]
    assert layer_cls.from_config(config).dropout_masks == "shared"


@pytest.mark.parametrize("layer_cls", [kr.GalLSTM, kr.ZoneoutGRU])
def test_unknown_keyword_argument_raises_as_in_keras_naming_it(layer_cls):
    # Keras's own layers raise a `ValueError` for an unknown keyword.
    with pytest.raises(ValueError, match="zoneout_x"):
        keras_counterpart(layer_cls)(3, zoneout_x=0.5)
    with pytest.raises(ValueError, match="zoneout_x"):
        layer_cls(3, zoneout_x=0.5)


IMPORT_PROBE = r"""
import json, random, sys
import numpy as np
import keras

created = {"layers": [], "variables": 0}
layer_init = keras.layers.Layer.__init__
variable_init = keras.Variable.__init__

def counting_layer_init(self, *args, **kwargs):
    created["layers"].append(type(self).__name__)
    layer_init(self, *args, **kwargs)

def counting_variable_init(self, *args, **kwargs):
    created["variables"] += 1
    variable_init(self, *args, **kwargs)

keras.layers.Layer.__init__ = counting_layer_init
keras.Variable.__init__ = counting_variable_init
random.seed(0)
np.random.seed(0)
if sys.argv[1] == "import":
    import keras_recdrop
keras.layers.Layer.__init__ = layer_init
keras.Variable.__init__ = variable_init
after_import = dict(created)
out = {
    "created": after_import,
    "python_random": random.random(),
    "numpy_random": float(np.random.random()),
    "names": [
        keras.random.SeedGenerator().name,
        keras.layers.Dense(1).name,
        keras.layers.LSTMCell(1).name,
        keras.layers.RNN(keras.layers.GRUCell(1)).name,
    ],
}
if sys.argv[1] == "import":
    out["package_names"] = [
        keras_recdrop.GalLSTMCell(1).name,
        keras_recdrop.ZoneoutLSTM(1).name,
        keras_recdrop.RNN(keras_recdrop.GalGRUCell(1)).name,
    ]
print("RESULT" + json.dumps(out))
"""


def _probe(mode):
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, mode],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


@pytest.mark.subprocess
def test_import_has_no_side_effects_in_a_fresh_process():
    with_import, without = _probe("import"), _probe("no-import")
    assert with_import["created"] == {"layers": [], "variables": 0}
    # Python's and NumPy's global generators and Keras's automatic names
    # are exactly as in a process that never imported the package.
    for key in ("python_random", "numpy_random", "names"):
        assert with_import[key] == without[key], key
    assert with_import["names"] == [
        "seed_generator",
        "dense",
        "lstm_cell",
        "rnn",
    ]
    # The package's own classes start their names' counters too.
    assert with_import["package_names"] == [
        "gal_lstm_cell",
        "zoneout_lstm",
        "rnn_1",
    ]


CELLS = [
    kr.GalLSTMCell,
    kr.ZoneoutLSTMCell,
    kr.SemeniutaLSTMCell,
    kr.WeightDropLSTMCell,
    kr.GalGRUCell,
    kr.ZoneoutGRUCell,
    kr.SemeniutaGRUCell,
]


@pytest.mark.parametrize("cell_cls", CELLS, ids=lambda c: c.__name__)
def test_cell_signature_shows_every_keras_cell_argument(cell_cls):
    """Each cell lists every argument of `keras.layers.LSTMCell` (or
    `GRUCell`) with Keras's default, so `help()`, IDEs and the docs show
    them; nothing but `keras.layers.Layer`'s own arguments hides behind
    `**kwargs`."""
    family = "LSTM" if "LSTM" in cell_cls.__name__ else "GRU"
    keras_cls = getattr(keras.layers, f"{family}Cell")
    ours = inspect.signature(cell_cls).parameters
    for name, parameter in inspect.signature(keras_cls).parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD:
            continue
        assert name in ours, name
        assert ours[name].default == parameter.default, name
    config = cell_cls(3).get_config()
    base = {"name", "trainable", "dtype"}
    assert set(config) - base <= set(ours)
