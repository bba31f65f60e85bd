"""Writes the 0.1.0 fixtures: a `.keras` model and a weights file.

They were written with keras-recdrop 0.1.0 (commit 6915348), on JAX:

    git worktree add /tmp/v010 6915348
    PYTHONPATH=/tmp/v010 KERAS_BACKEND=jax python \
        tests/data/make_v0_1_0_fixture.py tests/data

`tests/test_resume.py` checks that they still load and predict the same.
"""

import sys

import keras
import numpy as np

import keras_recdrop as kr

assert kr.__file__.startswith("/tmp/v010"), kr.__file__
out = sys.argv[1]
keras.utils.set_random_seed(0)
ids = keras.Input((7,), dtype="int32")
e = kr.DropoutEmbedding(20, 6, embeddings_dropout=0.1, seed=3)(ids)
h = kr.RNN(
    kr.ZoneoutLSTMCell(5, zoneout_c=0.3, zoneout_h=0.1, seed=4),
    return_sequences=True,
)(e)
h = kr.GalGRU(
    4, dropout=0.1, recurrent_dropout=0.2, seed=5, return_sequences=True
)(h)
h = kr.WeightDropLSTM(3, weight_dropout=0.3, seed=6)(h)
model = keras.Model(ids, keras.layers.Dense(2)(h))
model.compile("sgd", "mse")
x = np.random.default_rng(0).integers(0, 20, (8, 7)).astype("int32")
y = np.random.default_rng(1).standard_normal((8, 2)).astype("float32")
model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
model.save(f"{out}/model_v0_1_0.keras")
model.save_weights(f"{out}/model_v0_1_0.weights.h5")
np.save(f"{out}/model_v0_1_0_x.npy", x)
np.save(
    f"{out}/model_v0_1_0_prediction.npy",
    keras.ops.convert_to_numpy(model(x, training=False)),
)
print("ok", kr.__version__)
