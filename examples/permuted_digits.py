"""Permuted sequential digits: recurrent regularizers on a long-memory task.

What it shows
-------------
The small analogue of the permuted sequential MNIST experiment of the
zoneout paper (Krueger et al., 2016): each 8x8 image of scikit-learn's
bundled handwritten digits (1,797 images, 10 classes, no download) is read
one pixel per step, 64 steps, in the order of one fixed random permutation
of the pixels. The permutation scatters neighbouring pixels over the whole
sequence, so the class can only be read from long-range dependencies. One
LSTM layer reads the sequence and its last output goes to a softmax over
the ten classes. Four variants, same data, budget and seeds:

=============  ========================================================
variant        recurrent layer
=============  ========================================================
``baseline``   ``keras.layers.LSTM``, no regularization
``zoneout``    ``ZoneoutLSTMCell(zoneout_c=0.15, zoneout_h=0.15)``
               (the paper's permuted-MNIST setting, on ``c`` and ``h``)
``gal``        ``GalLSTMCell(recurrent_dropout=0.25)`` (one mask per
               sequence and per gate)
``semeniuta``  ``SemeniutaLSTMCell(recurrent_dropout=0.25)`` (candidate
               dropout, fresh mask at every step)
=============  ========================================================

The package cells are wrapped in ``keras_recdrop.RNN``. There is no input
dropout (the input is a single pixel). The dropout rate 0.25 is a common
starting point for both methods, not a tuned value.

Data
----
Pixels are scaled from 0..16 to [0, 1]. The permutation is drawn once from
``numpy.random.default_rng(PERMUTATION_SEED)`` and is the same for every
run and variant. Fixed stratified split (``train_test_split`` with
``random_state=0``): 450 test images, 300 validation images and 1,047
training images.

Training and evaluation
-----------------------
Adam with gradient-norm clipping at 1.0, cross-entropy from logits. After
every epoch the validation accuracy is measured at inference; the weights
of the best validation epoch (the earliest of ties) give the reported
validation and test accuracy. Each variant is trained once per seed (the
seed sets Keras's global seed, the cells' seeds and the data order; the
split and permutation do not change); the table shows the mean and the
standard deviation over seeds.

* Full mode (default): 128 units, batch 32, learning rate 2e-3, 25 epochs,
  seeds 0, 1, 2.
* ``--quick``: 32 units, learning rate 5e-3, 6 epochs, seed 0 (about a
  minute on 2 CPU cores). A smoke test of the pipeline, not a ranking.

Outputs (in ``--output-dir``, default ``examples/output/``):
``permuted_digits[_quick]_<backend>.json`` (settings, per-seed curves and
results) and ``.png`` (mean validation accuracy per epoch).

Usage::

    KERAS_BACKEND=jax python examples/permuted_digits.py --quick
    KERAS_BACKEND=jax python examples/permuted_digits.py
    python examples/permuted_digits.py --variants baseline zoneout --seeds 7
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
from _cli import non_negative_int
from _cli import positive_float
from _cli import positive_int

HERE = os.path.dirname(os.path.abspath(__file__))

VARIANTS = ("baseline", "zoneout", "gal", "semeniuta")
ZONEOUT = 0.15
RECURRENT_DROPOUT = 0.25
PERMUTATION_SEED = 2016
NUM_CLASSES = 10
TEST_SIZE = 450
VAL_SIZE = 300
CLIPNORM = 1.0

FULL = dict(
    units=128, batch_size=32, learning_rate=2e-3, epochs=25, seeds=[0, 1, 2]
)
QUICK = dict(units=32, batch_size=32, learning_rate=5e-3, epochs=6, seeds=[0])


# --------------------------------------------------------------------- data


def pixel_permutation(seed=PERMUTATION_SEED):
    """The fixed order in which the 64 pixels are read."""
    return np.random.default_rng(seed).permutation(64)


def load_data(permutation=None):
    """The permuted sequential digits, split into train, validation, test.

    Returns a dict of `(x, y)` pairs with `x` of shape `(n, 64, 1)` in
    `[0, 1]` (pixels in the order of `permutation`) and integer labels `y`.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if permutation is None:
        permutation = pixel_permutation()
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")[:, permutation, None]
    y = digits.target.astype("int32")
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=0
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=VAL_SIZE, stratify=y_rest, random_state=0
    )
    return {
        "train": (x_train, y_train),
        "val": (x_val, y_val),
        "test": (x_test, y_test),
    }


# -------------------------------------------------------------------- model


def make_recurrent_layer(variant, units, seed, zoneout=ZONEOUT, **kwargs):
    """The recurrent layer of `variant` (see the module docstring)."""
    import keras

    import keras_recdrop

    if variant == "baseline":
        return keras.layers.LSTM(units, seed=seed, **kwargs)
    if variant == "zoneout":
        cell = keras_recdrop.ZoneoutLSTMCell(
            units, zoneout_c=zoneout, zoneout_h=zoneout, seed=seed
        )
    elif variant == "gal":
        cell = keras_recdrop.GalLSTMCell(
            units, recurrent_dropout=RECURRENT_DROPOUT, seed=seed
        )
    elif variant == "semeniuta":
        cell = keras_recdrop.SemeniutaLSTMCell(
            units, recurrent_dropout=RECURRENT_DROPOUT, seed=seed
        )
    else:
        raise ValueError(f"Unknown variant {variant!r}.")
    return keras_recdrop.RNN(cell, **kwargs)


def build_model(variant, units, seed, zoneout=ZONEOUT):
    import keras

    inputs = keras.Input((64, 1))
    rnn = make_recurrent_layer(variant, units, seed, zoneout, name="rnn")
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(rnn(inputs))
    return keras.Model(inputs, logits, name=f"digits_{variant}")


def accuracy(model, x, y):
    logits = np.asarray(model.predict(x, batch_size=256, verbose=0))
    return float(np.mean(logits.argmax(-1) == y))


# ----------------------------------------------------------------- training


def run_once(variant, seed, data, cfg, verbose):
    import keras

    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = build_model(variant, cfg["units"], seed)
    model.compile(
        optimizer=keras.optimizers.Adam(
            cfg["learning_rate"], clipnorm=CLIPNORM
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x_train, y_train = data["train"]
    rng = np.random.default_rng(seed)
    curves = {"train_loss": [], "train_acc": [], "val_acc": []}
    best = (-1.0, 0, None)  # (val accuracy, epoch, weights)
    for epoch in range(cfg["epochs"]):
        order = rng.permutation(len(x_train))
        fit = model.fit(
            x_train[order],
            y_train[order],
            batch_size=cfg["batch_size"],
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,  # shuffled above, reproducibly
            verbose=verbose,
        )
        val = accuracy(model, *data["val"])
        curves["train_loss"].append(float(fit.history["loss"][-1]))
        curves["train_acc"].append(float(fit.history["accuracy"][-1]))
        curves["val_acc"].append(val)
        if val > best[0]:
            best = (val, epoch + 1, model.get_weights())
    model.set_weights(best[2])
    result = {
        "variant": variant,
        "seed": seed,
        "val_acc": best[0],
        "best_epoch": best[1],
        "test_acc": accuracy(model, *data["test"]),
        "train_acc": accuracy(model, *data["train"]),
        "seconds": time.perf_counter() - start,
        "curves": curves,
    }
    print(
        f"  [{variant}, seed {seed}] best epoch {best[1]}: validation "
        f"{best[0]:.4f}, test {result['test_acc']:.4f}, train "
        f"{result['train_acc']:.4f} ({result['seconds']:.0f} s)",
        flush=True,
    )
    return result


def summarize(runs):
    """Mean and standard deviation over seeds, per variant, in run order."""
    summary = []
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        row = {"variant": variant, "seeds": [r["seed"] for r in mine]}
        for key in ("val_acc", "test_acc", "train_acc", "seconds"):
            values = np.array([r[key] for r in mine])
            row[key] = float(values.mean())
            spread = values.std(ddof=1) if len(mine) > 1 else 0.0
            row[key + "_std"] = float(spread)
        summary.append(row)
    return summary


def format_table(summary):
    header = (
        f"{'variant':<10} {'seeds':>5} {'val acc':>15} {'test acc':>15} "
        f"{'train acc':>15} {'s/run':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in summary:
        cells = [
            f"{row[k]:.4f} ± {row[k + '_std']:.4f}"
            for k in ("val_acc", "test_acc", "train_acc")
        ]
        lines.append(
            f"{row['variant']:<10} {len(row['seeds']):>5} {cells[0]:>15} "
            f"{cells[1]:>15} {cells[2]:>15} {row['seconds']:>6.0f}"
        )
    return "\n".join(lines)


def plot_curves(runs, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for variant in dict.fromkeys(r["variant"] for r in runs):
        curves = np.array(
            [r["curves"]["val_acc"] for r in runs if r["variant"] == variant]
        )
        epochs = np.arange(1, curves.shape[1] + 1)
        ax.plot(epochs, curves.mean(0), label=variant)
        if len(curves) > 1:
            ax.fill_between(epochs, curves.min(0), curves.max(0), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (mean; band: min-max over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick", action="store_true", help="small, fast configuration"
    )
    p.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="subset of variants to train (default: all)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=non_negative_int,
        help="seeds to run every variant with (default: 0 1 2; quick: 0)",
    )
    p.add_argument("--epochs", type=positive_int, help="override the epochs")
    p.add_argument("--units", type=positive_int, help="override the width")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--learning-rate", type=positive_float)
    p.add_argument(
        "--output-dir",
        default=os.path.join(HERE, "output"),
        help="where the JSON and PNG go (default: examples/output/)",
    )
    p.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1 if sys.stdout.isatty() else 0,
        help="Keras fit verbosity (default: progress bar on a terminal, "
        "silent otherwise)",
    )
    args = p.parse_args(argv)
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        p.error(f"argument --seeds: repeated seed in {args.seeds}")
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("epochs", "units", "batch_size", "learning_rate", "seeds"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)

    import keras

    data = load_data()
    backend = keras.backend.backend()
    mode = "quick" if args.quick else "full"
    sizes = {k: len(v[1]) for k, v in data.items()}
    print(
        f"backend {backend}, keras {keras.__version__}, mode {mode}\n"
        f"permuted sequential digits (64 steps): train {sizes['train']} / "
        f"val {sizes['val']} / test {sizes['test']}\nconfig {cfg}",
        flush=True,
    )
    os.makedirs(args.output_dir, exist_ok=True)
    stem = os.path.join(
        args.output_dir,
        f"permuted_digits{'_quick' if args.quick else ''}_{backend}",
    )
    report = {
        "backend": backend,
        "keras_version": keras.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "mode": mode,
        "sizes": sizes,
        "permutation_seed": PERMUTATION_SEED,
        "config": cfg,
        "clipnorm": CLIPNORM,
        "rates": {"zoneout_c": ZONEOUT, "zoneout_h": ZONEOUT},
        "recurrent_dropout": RECURRENT_DROPOUT,
        "runs": [],
    }
    start = time.perf_counter()
    for variant in args.variants:
        print(f"\n=== {variant} ===", flush=True)
        for seed in cfg["seeds"]:
            report["runs"].append(
                run_once(variant, seed, data, cfg, args.verbose)
            )
            report["summary"] = summarize(report["runs"])
            with open(stem + ".json", "w") as f:
                json.dump(report, f, indent=2)
    report["seconds"] = time.perf_counter() - start
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=2)
    plot_curves(
        report["runs"],
        stem + ".png",
        f"permuted sequential digits, {backend}, {mode}: {cfg['units']} units",
    )
    print(
        f"\nResults ({backend}, {mode}; accuracy at inference with the "
        "weights of the best-validation epoch; mean ± std over seeds):\n"
        + format_table(report["summary"])
        + f"\n\ntotal {report['seconds']:.0f} s; wrote {stem}.json and "
        f"{stem}.png",
        flush=True,
    )


if __name__ == "__main__":
    main()
