"""What exact resume needs: measured, on the backend of `KERAS_BACKEND`.

    KERAS_BACKEND=jax python scripts/resume_exactness.py

For each variant, trains a model with every regularizer of the package for
3 epochs in one process (uninterrupted), and for 1 epoch in another that
saves a `.keras` file, which a third process loads to train epochs 2 and 3
(`initial_epoch=1`). Prints the largest absolute difference between the
resumed and the uninterrupted weights (0.0: bit-identical). Variants:

* `plain`: the package's layers only, `shuffle=False`;
* `keras_dropout`: a `keras.layers.Dropout(0.2)` before the last layer
  (Keras saves no random state: the resumed run replays its first masks);
* `shuffle`: `fit(..., shuffle=True)` (the resumed process shuffles its
  epoch 2 as the uninterrupted one shuffled epoch 1);
* `epoch_dataset`: a `keras.utils.PyDataset` whose batches follow a
  permutation drawn from `(seed, epoch)`, the epoch set by a callback;
* `epoch_loop`: one `fit` per epoch, on the data permuted by a generator
  seeded with `(seed, epoch)`, `shuffle=False`: a seeded shuffle.

The table in docs/semantics.md ("Resume and held masks") records a run.
"""

import json
import os
import subprocess
import sys
import tempfile

VARIANTS = ["plain", "keras_dropout", "shuffle", "epoch_dataset", "epoch_loop"]
SHUFFLE_SEED = 11


def _train(variant, mode, directory):
    import keras
    import numpy as np

    import keras_recdrop as kr

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, (24, 9)).astype("int32")
    targets = rng.standard_normal((24, 3)).astype("float32")

    def build():
        keras.utils.set_random_seed(1)
        inputs = keras.Input((9,), dtype="int32")
        x = kr.DropoutEmbedding(30, 6, embeddings_dropout=0.2, seed=2)(inputs)
        x = kr.RNN(
            kr.ZoneoutLSTMCell(
                8, zoneout_c=0.4, zoneout_h=0.2, dropout=0.1, seed=3
            ),
            return_sequences=True,
        )(x)
        x = kr.SemeniutaGRU(
            7, recurrent_dropout=0.3, seed=4, return_sequences=True
        )(x)
        x = kr.WeightDropLSTM(
            6, weight_dropout=0.4, seed=5, return_sequences=True
        )(x)
        x = kr.GalLSTM(6, dropout=0.2, recurrent_dropout=0.3, seed=6)(x)
        if variant == "keras_dropout":
            x = keras.layers.Dropout(0.2, seed=7)(x)
        model = keras.Model(inputs, keras.layers.Dense(3)(x))
        model.compile(keras.optimizers.Adam(0.01), "mse")
        return model

    class EpochOrder(keras.utils.PyDataset):
        def __init__(self, epoch):
            super().__init__()
            self.epoch = epoch

        def __len__(self):
            return 3

        def __getitem__(self, index):
            order = np.random.default_rng([SHUFFLE_SEED, self.epoch])
            rows = order.permutation(len(ids))[index * 8 : (index + 1) * 8]
            return ids[rows], targets[rows]

    class SetEpoch(keras.callbacks.Callback):
        def __init__(self, data):
            super().__init__()
            self.data = data

        def on_epoch_begin(self, epoch, logs=None):
            self.data.epoch = epoch

    def fit(model, epochs, initial_epoch=0):
        if variant == "epoch_dataset":
            data = EpochOrder(initial_epoch)
            model.fit(
                data,
                epochs=epochs,
                initial_epoch=initial_epoch,
                callbacks=[SetEpoch(data)],
                verbose=0,
            )
        elif variant == "epoch_loop":
            for epoch in range(initial_epoch, epochs):
                order = np.random.default_rng([SHUFFLE_SEED, epoch])
                rows = order.permutation(len(ids))
                model.fit(
                    ids[rows],
                    targets[rows],
                    batch_size=8,
                    epochs=epoch + 1,
                    initial_epoch=epoch,
                    shuffle=False,
                    verbose=0,
                )
        else:
            model.fit(
                ids,
                targets,
                batch_size=8,
                epochs=epochs,
                initial_epoch=initial_epoch,
                shuffle=variant == "shuffle",
                verbose=0,
            )

    def dump(model, name):
        weights = [np.asarray(w) for w in model.get_weights()]
        np.savez(os.path.join(directory, f"{name}.npz"), *weights)

    if mode == "uninterrupted":
        model = build()
        fit(model, 3)
        dump(model, "uninterrupted")
    elif mode == "first":
        model = build()
        fit(model, 1)
        model.save(os.path.join(directory, "model.keras"))
    else:
        model = keras.saving.load_model(os.path.join(directory, "model.keras"))
        fit(model, 3, initial_epoch=1)
        dump(model, "resumed")


def _difference(directory):
    import numpy as np

    with (
        np.load(os.path.join(directory, "uninterrupted.npz")) as a,
        np.load(os.path.join(directory, "resumed.npz")) as b,
    ):
        return max(float(np.abs(a[k] - b[k]).max()) for k in a.files)


def main():
    if len(sys.argv) == 4:  # a child process: one mode of one variant
        _train(*sys.argv[1:])
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    backend = env.get("KERAS_BACKEND", "tensorflow")
    for variant in VARIANTS:
        with tempfile.TemporaryDirectory() as directory:
            for mode in ("uninterrupted", "first", "resume"):
                subprocess.run(
                    [sys.executable, __file__, variant, mode, directory],
                    check=True,
                    env=env,
                    stderr=subprocess.DEVNULL,
                )
            record = {
                "backend": backend,
                "variant": variant,
                "max_abs_diff": _difference(directory),
            }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
