"""Serialization: configs, `.keras` files, fresh processes, other backends.

The `.keras` files are written once per module; one fresh Python process
per backend then loads all of them (with only `import keras_recdrop`, no
`custom_objects`) and writes its predictions back for comparison.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_recdrop

# Its expensive fixtures run once: every test of this file runs in the same
# worker process (`pytest -n`, `--dist loadgroup`), and they are
# session-scoped so that the worker keeps them if it runs other files' tests
# in between (a module-scoped one would be torn down and built again).
pytestmark = pytest.mark.xdist_group("serialization")

BACKEND = keras.backend.backend()
ALL_BACKENDS = ("tensorflow", "jax", "torch")
OTHER_BACKENDS = [b for b in ALL_BACKENDS if b != BACKEND]

BATCH = 8
TIMESTEPS = 6
FEATURES = 3
UNITS = 4

# The fresh process: it knows nothing but `keras_recdrop` being importable.
LOADER_SCRIPT = """
import json
import sys

import keras
import numpy as np

import keras_recdrop  # noqa: F401  (registers the package's classes)

directory, out_dir, *names = sys.argv[1:]
x = np.load(f"{directory}/x.npy")


def classes(layer):
    found = [f"{type(layer).__module__}.{type(layer).__name__}"]
    children = list(getattr(layer, "layers", []) or [])
    for attr in ("cell", "forward_layer", "backward_layer"):
        if getattr(layer, attr, None) is not None:
            children.append(getattr(layer, attr))
    children += list(getattr(layer, "cells", []) or [])
    for child in children:
        found += classes(child)
    return found


report = {"backend": keras.backend.backend(), "classes": {}}
for name in names:
    model = keras.saving.load_model(f"{directory}/{name}.keras")
    prediction = model(x, training=False)
    np.save(f"{out_dir}/{name}.npy", keras.ops.convert_to_numpy(prediction))
    report["classes"][name] = classes(model)
with open(f"{out_dir}/report.json", "w") as f:
    json.dump(report, f)
"""


# --------------------------------------------------------------- helpers
def nondefault_base_kwargs():
    """A non-default value for every `keras.layers.LSTMCell` argument."""
    return {
        "activation": "relu",
        "recurrent_activation": "hard_sigmoid",
        "use_bias": False,
        "kernel_initializer": keras.initializers.HeNormal(seed=3),
        "recurrent_initializer": keras.initializers.RandomNormal(
            stddev=0.2, seed=4
        ),
        "bias_initializer": "ones",
        "unit_forget_bias": False,
        "kernel_regularizer": keras.regularizers.L1(0.01),
        "recurrent_regularizer": keras.regularizers.L2(0.02),
        "bias_regularizer": keras.regularizers.L1L2(l1=0.01, l2=0.03),
        "kernel_constraint": keras.constraints.MaxNorm(2.0),
        "recurrent_constraint": keras.constraints.UnitNorm(),
        "bias_constraint": keras.constraints.NonNeg(),
        "dropout": 0.2,
        "tied_masks": True,
        "implementation": 1,
        "seed": 7,
    }


# cell class -> (its own non-default arguments)
NONDEFAULT_CELLS = {
    "ZoneoutLSTMCell": (
        keras_recdrop.ZoneoutLSTMCell,
        {"zoneout_c": 0.4, "zoneout_h": 0.2, "recurrent_dropout": 0.1},
    ),
    "SemeniutaLSTMCell": (
        keras_recdrop.SemeniutaLSTMCell,
        {"recurrent_dropout": 0.3, "per_step": False},
    ),
    "GalLSTMCell": (
        keras_recdrop.GalLSTMCell,
        {"recurrent_dropout": 0.3},
    ),
    "WeightDropLSTMCell": (
        keras_recdrop.WeightDropLSTMCell,
        {"weight_dropout": 0.3, "recurrent_dropout": 0.1},
    ),
}

# The configurations of the integration tests, one saved model each.
CELL_CONFIGS = {
    "zoneout": (
        keras_recdrop.ZoneoutLSTMCell,
        {"zoneout_c": 0.5, "zoneout_h": 0.1, "dropout": 0.1},
    ),
    "semeniuta_per_step": (
        keras_recdrop.SemeniutaLSTMCell,
        {"recurrent_dropout": 0.3, "dropout": 0.1, "per_step": True},
    ),
    "semeniuta_per_sequence": (
        keras_recdrop.SemeniutaLSTMCell,
        {"recurrent_dropout": 0.3, "dropout": 0.1, "per_step": False},
    ),
    "gal_untied": (
        keras_recdrop.GalLSTMCell,
        {"dropout": 0.2, "recurrent_dropout": 0.3, "implementation": 1},
    ),
    "gal_tied": (
        keras_recdrop.GalLSTMCell,
        {"dropout": 0.2, "recurrent_dropout": 0.3, "tied_masks": True},
    ),
}


def make_cell(name, units=UNITS, **overrides):
    cls, kwargs = CELL_CONFIGS[name]
    return cls(units, **{**kwargs, "seed": 11, **overrides})


def sequence_model(rnn_layer):
    return keras.Sequential(
        [
            keras.Input((TIMESTEPS, FEATURES)),
            rnn_layer,
            keras.layers.Dense(2),
        ]
    )


def models_to_save():
    """name -> model; every model uses the package's cells."""
    models = {
        name: sequence_model(
            keras_recdrop.RNN(make_cell(name), return_sequences=True)
        )
        for name in CELL_CONFIGS
    }
    models["zoneout_unrolled_last_output"] = sequence_model(
        keras_recdrop.RNN(make_cell("zoneout"), unroll=True)
    )
    models["stacked_bidirectional"] = sequence_model(
        keras.layers.Bidirectional(
            keras_recdrop.RNN(
                keras.layers.StackedRNNCells(
                    [
                        make_cell("zoneout"),
                        make_cell("semeniuta_per_step", units=UNITS + 1),
                    ]
                ),
                return_sequences=True,
            )
        )
    )
    models["plain_rnn_gal"] = sequence_model(
        keras.layers.RNN(make_cell("gal_untied"), return_sequences=True)
    )
    # The rest of the family: GRU cells, DropConnect and the layers.
    gru_cells = {
        "gru_zoneout": keras_recdrop.ZoneoutGRUCell(
            UNITS, zoneout_h=0.3, seed=11
        ),
        "gru_semeniuta": keras_recdrop.SemeniutaGRUCell(
            UNITS, recurrent_dropout=0.3, reset_after=False, seed=11
        ),
        "gru_gal": keras_recdrop.GalGRUCell(
            UNITS,
            dropout=0.2,
            recurrent_dropout=0.3,
            implementation=1,
            seed=11,
        ),
        "weight_drop": keras_recdrop.WeightDropLSTMCell(
            UNITS, weight_dropout=0.4, seed=11
        ),
    }
    for name, cell in gru_cells.items():
        models[name] = sequence_model(
            keras_recdrop.RNN(cell, return_sequences=True)
        )
    models["layers_and_norm_stabilizer"] = keras.Sequential(
        [
            keras.Input((TIMESTEPS, FEATURES)),
            keras_recdrop.ZoneoutLSTM(
                UNITS, zoneout_c=0.5, return_sequences=True, seed=11
            ),
            keras_recdrop.NormStabilizer(10.0),
            keras.layers.Bidirectional(
                keras_recdrop.GalGRU(UNITS, recurrent_dropout=0.2, seed=11)
            ),
            keras.layers.Dense(2),
        ]
    )
    return models


def perturb_weights(model, rng):
    """Moves every weight away from its initial value (so loading must
    restore the saved values, not re-initialize them)."""
    model.set_weights(
        [
            w + rng.normal(scale=0.1, size=w.shape).astype(w.dtype)
            for w in model.get_weights()
        ]
    )


def run_loader(backend, directory, names):
    """Starts a fresh process that loads `names` on `backend`."""
    out_dir = directory / f"loaded_{backend}"
    out_dir.mkdir()
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-c", LOADER_SCRIPT, str(directory), str(out_dir)]
        + list(names),
        env=env,
        cwd=str(directory),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, out_dir


def collect_loader(process, out_dir, timeout=300):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"loader failed:\n{stdout}\n{stderr}"
    with open(out_dir / "report.json") as f:
        return json.load(f)


def json_round_trip(config):
    return json.loads(json.dumps(config, default=str))


@pytest.fixture(scope="session")
def saved(tmp_path_factory):
    """Saves every model once; returns (directory, names, predictions)."""
    keras.utils.set_random_seed(5)
    directory = tmp_path_factory.mktemp("saved_models")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, (BATCH, TIMESTEPS, FEATURES))
    x = x.astype("float32")
    np.save(directory / "x.npy", x)
    predictions = {}
    for name, model in models_to_save().items():
        perturb_weights(model, rng)
        model.save(directory / f"{name}.keras")
        predictions[name] = keras.ops.convert_to_numpy(model(x, training=False))
    return directory, list(predictions), predictions


@pytest.fixture(scope="session")
def loaded(saved, request):
    """backend -> the fresh process's report, loading every saved model.

    The processes of all backends requested by the selected tests start
    together, and each is started at most once.
    """
    directory, names, _ = saved
    wanted = {BACKEND}
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "other_backend" in callspec.params:
            wanted.add(callspec.params["other_backend"])
    running = {
        backend: run_loader(backend, directory, names)
        for backend in sorted(wanted)
    }
    reports = {}
    for backend, (process, out_dir) in running.items():
        report = collect_loader(process, out_dir)
        assert report["backend"] == backend
        report["predictions"] = {
            name: np.load(out_dir / f"{name}.npy") for name in names
        }
        reports[backend] = report
    return reports


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


# ----------------------------------------------------------- get_config
@pytest.mark.parametrize("cell_class", list(NONDEFAULT_CELLS))
def test_cell_config_round_trips_with_every_argument_non_default(cell_class):
    cls, own_kwargs = NONDEFAULT_CELLS[cell_class]
    kwargs = {**nondefault_base_kwargs(), **own_kwargs}
    cell = cls(UNITS + 1, name=f"custom_{cell_class}", **kwargs)
    config = cell.get_config()
    default_config = cls(UNITS).get_config()

    # Every argument is in the config, with its non-default value.
    for key in [*kwargs, "units"]:
        assert key in config, key
        assert config[key] != default_config[key], key
    assert config["name"] == f"custom_{cell_class}"

    restored = cls.from_config(config)
    assert type(restored) is cls
    assert restored.get_config() == config
    for key, value in own_kwargs.items():
        assert getattr(restored, key) == value, key
    assert restored.units == UNITS + 1
    assert restored.implementation == 1
    assert restored.tied_masks is True
    assert restored.seed == 7
    assert restored.use_bias is False
    assert restored.unit_forget_bias is False
    assert restored.activation is keras.activations.relu
    assert restored.recurrent_activation is keras.activations.hard_sigmoid
    assert isinstance(restored.kernel_initializer, keras.initializers.HeNormal)
    assert restored.kernel_initializer.seed == 3
    assert isinstance(restored.kernel_regularizer, keras.regularizers.L1)
    assert isinstance(restored.bias_regularizer, keras.regularizers.L1L2)
    assert isinstance(restored.recurrent_constraint, keras.constraints.UnitNorm)
    assert isinstance(restored.bias_constraint, keras.constraints.NonNeg)

    # Generic (de)serialization finds the class by its registered name.
    serialized = keras.saving.serialize_keras_object(cell)
    assert serialized["registered_name"] == f"keras_recdrop>{cell_class}"
    again = keras.saving.deserialize_keras_object(serialized)
    assert type(again) is cls
    assert again.get_config() == config


@pytest.mark.parametrize("cell_class", list(NONDEFAULT_CELLS))
def test_cell_config_round_trips_with_default_arguments(cell_class):
    cls, _ = NONDEFAULT_CELLS[cell_class]
    config = cls(UNITS).get_config()
    assert cls.from_config(config).get_config() == config


@pytest.mark.parametrize("layer_cls", [keras_recdrop.RNN, keras.layers.RNN])
def test_rnn_config_round_trips(layer_cls):
    cell = keras.layers.StackedRNNCells(
        [make_cell("zoneout"), make_cell("semeniuta_per_step", units=3)]
    )
    rnn = layer_cls(
        cell,
        return_sequences=True,
        return_state=True,
        go_backwards=True,
        unroll=True,
        zero_output_for_mask=True,
        name="custom_rnn",
    )
    config = rnn.get_config()
    restored = layer_cls.from_config(json_round_trip(config))
    assert type(restored) is layer_cls
    assert type(restored.cell.cells[0]) is keras_recdrop.ZoneoutLSTMCell
    assert type(restored.cell.cells[1]) is keras_recdrop.SemeniutaLSTMCell
    assert restored.get_config() == config
    serialized = keras.saving.serialize_keras_object(rnn)
    assert type(keras.saving.deserialize_keras_object(serialized)) is (
        layer_cls
    )


# --------------------------------------------------------- .keras files
@pytest.mark.subprocess
def test_saved_models_predict_identically_in_fresh_process(saved, loaded):
    _, names, predictions = saved
    report = loaded[BACKEND]
    for name in names:
        np.testing.assert_allclose(
            report["predictions"][name],
            predictions[name],
            rtol=0,
            atol=1e-6,
            err_msg=name,
        )
    # The package's own classes were restored, not generic stand-ins.
    classes = report["classes"]
    assert "keras_recdrop.rnn.RNN" in classes["zoneout"]
    assert "keras_recdrop.zoneout.ZoneoutLSTMCell" in classes["zoneout"]
    assert (
        "keras_recdrop.semeniuta.SemeniutaLSTMCell"
        in (classes["semeniuta_per_step"])
    )
    assert "keras_recdrop.gal.GalLSTMCell" in classes["gal_tied"]
    stacked = classes["stacked_bidirectional"]
    assert stacked.count("keras_recdrop.rnn.RNN") == 2
    assert stacked.count("keras_recdrop.zoneout.ZoneoutLSTMCell") == 2


@pytest.mark.subprocess
def test_plain_keras_rnn_with_gal_cell_round_trips(saved, loaded):
    _, _, predictions = saved
    report = loaded[BACKEND]
    classes = report["classes"]["plain_rnn_gal"]
    assert "keras.src.layers.rnn.rnn.RNN" in classes
    assert "keras_recdrop.gal.GalLSTMCell" in classes
    np.testing.assert_allclose(
        report["predictions"]["plain_rnn_gal"],
        predictions["plain_rnn_gal"],
        rtol=0,
        atol=1e-6,
    )


def test_loaded_model_keeps_cell_configs(saved):
    directory, names, _ = saved
    for name in names:
        model = keras.saving.load_model(directory / f"{name}.keras")
        for layer in model.layers:
            cell = getattr(layer, "cell", None) or getattr(
                getattr(layer, "forward_layer", None), "cell", None
            )
            if cell is None:
                continue
            cells = getattr(cell, "cells", [cell])
            for inner in cells:
                assert isinstance(inner, keras_recdrop.RegularizedCellBase), (
                    name
                )
                assert inner.seed == 11, name


@pytest.mark.subprocess
@pytest.mark.parametrize("other_backend", OTHER_BACKENDS)
def test_saved_model_predicts_equally_on_other_backend(
    saved, loaded, other_backend
):
    _, names, predictions = saved
    report = loaded[other_backend]
    assert report["backend"] == other_backend
    for name in names:
        np.testing.assert_allclose(
            report["predictions"][name],
            predictions[name],
            rtol=0,
            atol=1e-5,
            err_msg=f"{name} saved on {BACKEND}, loaded on {other_backend}",
        )


# A fresh process that loads a `.keras` file before and after importing the
# package (README and docs/migrating.md quote the error).
NO_IMPORT_LOADER = """
import sys
import keras

try:
    keras.models.load_model(sys.argv[1])
except TypeError as error:
    print("TYPE_ERROR", "Could not locate class 'GalLSTM'" in str(error))
else:
    print("LOADED_WITHOUT_IMPORT")
import keras_recdrop  # noqa: F401

keras.models.load_model(sys.argv[1])
print("LOADED_AFTER_IMPORT")
"""


@pytest.mark.subprocess
def test_loading_needs_the_package_imported_first_as_documented(tmp_path):
    inputs = keras.Input((TIMESTEPS, FEATURES))
    x = keras_recdrop.GalLSTM(UNITS, dropout=0.2, seed=1)(inputs)
    keras.Model(inputs, keras.layers.Dense(1)(x)).save(tmp_path / "m.keras")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", NO_IMPORT_LOADER, str(tmp_path / "m.keras")],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["TYPE_ERROR", "True", "LOADED_AFTER_IMPORT"]
