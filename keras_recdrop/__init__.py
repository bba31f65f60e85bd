"""keras-recdrop: recurrent dropout done right for Keras 3.

Cells: `ZoneoutLSTMCell`, `ZoneoutGRUCell` (Krueger et al. 2016),
`SemeniutaLSTMCell`, `SemeniutaGRUCell` (Semeniuta et al. 2016),
`GalLSTMCell`, `GalGRUCell` (Gal & Ghahramani 2016), `WeightDropLSTMCell`
(Merity et al. 2017). Layers: `RNN`, a `keras.layers.RNN` that draws
per-step noise before its time loop; the ready-made `ZoneoutLSTM`,
`SemeniutaLSTM`, `GalLSTM`, `WeightDropLSTM`, `ZoneoutGRU`, `SemeniutaGRU`,
`GalGRU`; `DropoutEmbedding` (embedding dropout) and `NormStabilizer`
(Krueger & Memisevic 2016). Functions: `convert` (a Keras model's LSTM/GRU
layers to the package's), `mc_predict` (Monte Carlo dropout), `export_mc`
(a SavedModel that serves it), `reset_states` (every stateful recurrent
layer of a model).
"""

from keras_recdrop._version import __version__
from keras_recdrop.cell_base import RegularizedCellBase
from keras_recdrop.conversion import convert
from keras_recdrop.embedding import DropoutEmbedding
from keras_recdrop.gal import GalGRU
from keras_recdrop.gal import GalGRUCell
from keras_recdrop.gal import GalLSTM
from keras_recdrop.gal import GalLSTMCell
from keras_recdrop.gru_core import GRUCellBase
from keras_recdrop.layer_base import GRULayerBase
from keras_recdrop.layer_base import LSTMLayerBase
from keras_recdrop.lstm_core import LSTMCellBase
from keras_recdrop.mc_dropout import mc_predict
from keras_recdrop.norm_stabilizer import NormStabilizer
from keras_recdrop.rnn import RNN
from keras_recdrop.semeniuta import SemeniutaGRU
from keras_recdrop.semeniuta import SemeniutaGRUCell
from keras_recdrop.semeniuta import SemeniutaLSTM
from keras_recdrop.semeniuta import SemeniutaLSTMCell
from keras_recdrop.serving import export_mc
from keras_recdrop.states import reset_states
from keras_recdrop.weight_drop import WeightDropLSTM
from keras_recdrop.weight_drop import WeightDropLSTMCell
from keras_recdrop.zoneout import ZoneoutGRU
from keras_recdrop.zoneout import ZoneoutGRUCell
from keras_recdrop.zoneout import ZoneoutLSTM
from keras_recdrop.zoneout import ZoneoutLSTMCell

__all__ = [
    "__version__",
    "GalGRU",
    "GalLSTM",
    "SemeniutaGRU",
    "SemeniutaLSTM",
    "WeightDropLSTM",
    "ZoneoutGRU",
    "ZoneoutLSTM",
    "DropoutEmbedding",
    "GRUCellBase",
    "GRULayerBase",
    "GalGRUCell",
    "GalLSTMCell",
    "LSTMCellBase",
    "LSTMLayerBase",
    "NormStabilizer",
    "RNN",
    "RegularizedCellBase",
    "SemeniutaGRUCell",
    "SemeniutaLSTMCell",
    "WeightDropLSTMCell",
    "ZoneoutGRUCell",
    "ZoneoutLSTMCell",
    "convert",
    "export_mc",
    "mc_predict",
    "reset_states",
]
