"""Keras's own LSTM and GRU layer tests, run against GalLSTM and GalGRU.

The test modules ship with Keras (`keras/src/layers/rnn/{lstm,gru}_test.py`).
They are loaded unchanged, with `layers.LSTM` / `layers.GRU` in their
namespace replaced by this package's drop-in layers.
"""

import importlib.util
import types

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


_lstm = _load_with("lstm_test.py", LSTM=kr.GalLSTM)
_gru = _load_with("gru_test.py", GRU=kr.GalGRU)


class TestKerasLSTMSuiteOnGalLSTM(_lstm.LSTMTest):
    pass


class TestKerasGRUSuiteOnGalGRU(_gru.GRUTest):
    pass
