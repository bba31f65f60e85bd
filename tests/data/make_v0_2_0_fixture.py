"""Writes the 0.2.0 fixtures: a `.keras` model, a weights file, outputs.

Written with keras-recdrop 0.2.0 as it was before the loop/cell contract
was made explicit (commit 539f8a4), on JAX:

    git worktree add /tmp/v020 539f8a4
    PYTHONPATH=/tmp/v020 KERAS_BACKEND=jax python \
        tests/data/make_v0_2_0_fixture.py tests/data

The model holds every ready-made layer, cells in `keras_recdrop.RNN`
(one in a `StackedRNNCells`), a `Bidirectional`, `DropoutEmbedding` and
`NormStabilizer`; it was trained for one epoch, so its seed generators
have advanced. Besides the model's inference output, the fixture records
the output of one training call made right after saving: the saved random
state then determines it, so on JAX a loaded model must reproduce it bit
for bit (`tests/test_resume.py`). The stack's Semeniuta cell draws one mask
per sequence (`per_step=False`): before the explicit contract, Keras's
pre-loop call of a stack's cells made a per-step-noise cell draw one seed
that no step used, so the per-step noise of a stacked cell is not the
same stream after the change (CHANGELOG, 0.3.0).
"""

import sys

import keras
import numpy as np

import keras_recdrop as kr

out = sys.argv[1]
keras.utils.set_random_seed(0)
ids = keras.Input((7,), dtype="int32")
e = kr.DropoutEmbedding(20, 6, embeddings_dropout=0.1, seed=3)(ids)
h = kr.RNN(
    kr.ZoneoutLSTMCell(5, zoneout_c=0.3, zoneout_h=0.1, seed=4),
    return_sequences=True,
)(e)
h = kr.NormStabilizer(beta=0.5)(h)
h = kr.GalGRU(
    4, dropout=0.1, recurrent_dropout=0.2, seed=5, return_sequences=True
)(h)
h = kr.ZoneoutLSTM(
    4, zoneout_c=0.2, zoneout_h=0.1, dropout=0.1, seed=7, return_sequences=True
)(h)
h = kr.SemeniutaLSTM(4, recurrent_dropout=0.2, seed=8, return_sequences=True)(h)
h = kr.GalLSTM(
    4,
    dropout=0.1,
    recurrent_dropout=0.2,
    dropout_masks="shared",
    seed=9,
    return_sequences=True,
)(h)
h = kr.ZoneoutGRU(3, zoneout_h=0.2, seed=10, return_sequences=True)(h)
h = kr.SemeniutaGRU(
    3, recurrent_dropout=0.3, per_step=False, seed=11, return_sequences=True
)(h)
h = keras.layers.Bidirectional(
    kr.GalLSTM(3, recurrent_dropout=0.3, seed=12, return_sequences=True)
)(h)
h = kr.RNN(
    [
        kr.SemeniutaLSTMCell(3, recurrent_dropout=0.2, per_step=False, seed=13),
        kr.GalGRUCell(3, dropout=0.1, recurrent_dropout=0.1, seed=14),
    ],
    return_sequences=True,
)(h)
h = kr.WeightDropLSTM(3, weight_dropout=0.3, seed=6)(h)
model = keras.Model(ids, keras.layers.Dense(2)(h))
model.compile("sgd", "mse")
x = np.random.default_rng(0).integers(0, 20, (8, 7)).astype("int32")
y = np.random.default_rng(1).standard_normal((8, 2)).astype("float32")
model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
model.save(f"{out}/model_v0_2_0.keras")
model.save_weights(f"{out}/model_v0_2_0.weights.h5")
np.save(f"{out}/model_v0_2_0_x.npy", x)
np.save(
    f"{out}/model_v0_2_0_prediction.npy",
    keras.ops.convert_to_numpy(model(x, training=False)),
)
np.save(
    f"{out}/model_v0_2_0_training_output.npy",
    keras.ops.convert_to_numpy(model(x, training=True)),
)
print("ok", kr.__version__, kr.__file__)
