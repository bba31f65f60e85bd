"""The ready-made layers: `keras.layers.LSTM` / `GRU` over a regularized cell.

Each regularizer's module defines its ready-made layers and declares them
in `keras_recdrop.registry`; this module lists them (`LSTM_LAYERS`,
`GRU_LAYERS`, in the registry's order) and keeps the names importable from
here. Their shared arguments and behaviour are those of
`keras_recdrop.layer_base.LSTMLayerBase` and `GRULayerBase`.
"""

from keras_recdrop import registry
from keras_recdrop.gal import GalGRU
from keras_recdrop.gal import GalLSTM
from keras_recdrop.layer_base import GRULayerBase
from keras_recdrop.layer_base import LSTMLayerBase
from keras_recdrop.semeniuta import SemeniutaGRU
from keras_recdrop.semeniuta import SemeniutaLSTM
from keras_recdrop.weight_drop import WeightDropLSTM
from keras_recdrop.zoneout import ZoneoutGRU
from keras_recdrop.zoneout import ZoneoutLSTM

LSTM_LAYERS = tuple(registry.conversion_targets("LSTM").values())
GRU_LAYERS = tuple(registry.conversion_targets("GRU").values())

__all__ = [
    "GRULayerBase",
    "GalGRU",
    "GalLSTM",
    "LSTMLayerBase",
    "SemeniutaGRU",
    "SemeniutaLSTM",
    "WeightDropLSTM",
    "ZoneoutGRU",
    "ZoneoutLSTM",
]
