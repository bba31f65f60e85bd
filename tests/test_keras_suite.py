"""Keras's own LSTM and GRU layer tests, run against GalLSTM and GalGRU.

The test modules ship with Keras (`keras/src/layers/rnn/{lstm,gru}_test.py`).
They are loaded unchanged, with `layers.LSTM` / `layers.GRU` in their
namespace replaced by this package's drop-in layers.
"""

import importlib.util
import types
import unittest

import keras
import pytest

import keras_recdrop as kr
from keras_recdrop import _compat

if _compat.keras_rnn_test_file("lstm_test.py") is None:
    pytest.skip(
        f"Keras {keras.__version__} does not ship its RNN test files",
        allow_module_level=True,
    )


def _load_with(filename, **replacements):
    keras_layers = _compat.keras_layers_module()
    spec = importlib.util.spec_from_file_location(
        f"keras_suite_{filename[:-3]}", _compat.keras_rnn_test_file(filename)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    proxy = types.ModuleType("layers")
    proxy.__getattr__ = lambda name: getattr(keras_layers, name)
    for name, value in replacements.items():
        setattr(proxy, name, value)
    module.layers = proxy
    return module


# Tests that only a Keras with the change proposed in docs/upstream.md has:
# they test Keras's own mask stream (the layer against `LSTMCell`) and its
# loading of configs that older Keras versions saved, which these layers
# never wrote. (Its `test_basics_with_dropout_masks` runs: the layers take
# `dropout_masks`.)
NOT_DROP_IN = (
    "test_layer_and_cell_draw_the_same_dropout",
    "test_saved_rate_of_one_loads_as_no_dropout",
)


def _drop_in_suite(test_case):
    """`test_case` without the tests of Keras-only behaviour."""
    reason = (
        "tests Keras's own mask stream or legacy configs "
        "(docs/upstream.md), not drop-in behaviour"
    )
    for name in dir(test_case):
        if name.startswith(NOT_DROP_IN):
            method = getattr(test_case, name)
            setattr(test_case, name, unittest.skip(reason)(method))

    def run_layer_test(self, layer_cls, *args, supports_masking=None, **kw):
        # Keras 3.16's tests expect `supports_masking=False` (its RNN layers
        # stopped propagating masks); these layers propagate them on every
        # Keras (keras_recdrop/rnn.py, tests/test_compat.py), as 3.15's
        # tests expect. Only the expectation changes; the rest of the test
        # runs as Keras wrote it.
        if supports_masking is not None:
            supports_masking = True
        return super(test_case, self).run_layer_test(
            layer_cls, *args, supports_masking=supports_masking, **kw
        )

    test_case.run_layer_test = run_layer_test
    return test_case


_lstm = _load_with("lstm_test.py", LSTM=kr.GalLSTM)
_gru = _load_with("gru_test.py", GRU=kr.GalGRU)


@_drop_in_suite
class TestKerasLSTMSuiteOnGalLSTM(_lstm.LSTMTest):
    pass


@_drop_in_suite
class TestKerasGRUSuiteOnGalGRU(_gru.GRUTest):
    pass
