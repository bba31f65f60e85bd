"""Gradient flow through the cell state: plain LSTM vs zoneout.

What it measures
----------------
The zoneout paper (Krueger et al., 2016) argues that zoneout, because a
unit that zones out copies its previous value (an identity connection
through time), carries gradient further back than a plain LSTM, and shows
it with the norm of the gradient of the loss with respect to the cell state
``c_t`` at every time step on permuted sequential MNIST. This example
repeats that measurement on the small analogue used by
``permuted_digits.py``: scikit-learn's 8x8 digits read one pixel per step
(64 steps) under a fixed permutation, classified from the last output.

Two models with the same architecture, seed and training budget:
``baseline`` (``keras.layers.LSTMCell``) and ``zoneout``
(``ZoneoutLSTMCell(zoneout_c=0.15, zoneout_h=0.15)``, the paper's
permuted-MNIST rates), each in ``keras_recdrop.RNN`` with a ``Dense``
softmax head. The gradients are measured twice: at initialization (before
any training) and after ``--epochs`` epochs of Adam.

Method
------
For a batch of ``N`` test images, the script unrolls the trained cell by
hand, step by step, in a Python loop under ``tf.GradientTape`` (this
example therefore runs on the TensorFlow backend, whatever
``KERAS_BACKEND`` says). After step ``t`` it adds a zero tensor ``e_t`` of
shape ``(N, units)`` to the cell state handed to step ``t + 1``::

    out, (h_t, c_t) = cell(x_t, [h_{t-1}, c_{t-1}], training=...)
    c_t = c_t + e_t                      # e_t == 0: values unchanged

The loss ``L`` is the summed cross-entropy of the final prediction
``Dense(h_T)``. The gradient ``dL/de_t`` is then exactly ``dL/dc_t``, the
gradient with respect to the cell state carried from step ``t`` to step
``t + 1`` (with ``h_t`` held fixed), and because examples do not interact,
row ``n`` of it is the gradient of example ``n``'s own loss. The script
reports, per step, the mean over examples of the Euclidean norm of that
row. The same is done for ``h_t`` (a second perturbation), so the summary
also shows the gradient reaching the hidden state.

By default the gradients are taken in training mode (``--mode train``):
the zoneout decisions are drawn fresh at every step by the cell, exactly
the gradients the optimizer sees. ``--mode inference`` uses the
deterministic inference recurrence instead (zoneout's expectation). Before
measuring, the script checks that its hand-unrolled inference pass equals
the trained ``keras_recdrop.RNN`` layer's output (to 1e-5), so the unrolled
loop is the model that was trained.

The loss reads ``h_T`` only, so the carried ``c_T`` gets no gradient: the
plot and the ratios use steps ``1 .. T-1`` for ``c``.

What the paper's direction predicts: the zoneout curve decays more slowly
going back in time, i.e. the ratio ``|dL/dc_1| / |dL/dc_{T-1}|`` is larger
with zoneout than without.

Outputs (``--output-dir``, default ``examples/output/``):
``gradient_flow[_quick].png`` (log-scale gradient norms per step) and
``.json`` (the per-step norms and the settings).

Usage::

    python examples/gradient_flow.py --quick
    python examples/gradient_flow.py --epochs 10
    python examples/gradient_flow.py --zoneout-c 0.5 --zoneout-h 0.05
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
from _cli import rate

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import permuted_digits  # noqa: E402

FULL = dict(units=128, epochs=10, batch_size=32, learning_rate=2e-3)
QUICK = dict(units=32, epochs=2, batch_size=32, learning_rate=5e-3)
CLIPNORM = 1.0


def build(variant, units, seed, zoneout_c, zoneout_h):
    """Returns `(model, rnn_layer, head)`; the cell is `rnn_layer.cell`."""
    import keras

    import keras_recdrop

    if variant == "baseline":
        cell = keras.layers.LSTMCell(units, seed=seed)
    else:
        cell = keras_recdrop.ZoneoutLSTMCell(
            units, zoneout_c=zoneout_c, zoneout_h=zoneout_h, seed=seed
        )
    inputs = keras.Input((64, 1))
    rnn = keras_recdrop.RNN(cell, name="rnn")
    head = keras.layers.Dense(permuted_digits.NUM_CLASSES, name="logits")
    model = keras.Model(inputs, head(rnn(inputs)), name=f"grad_{variant}")
    return model, rnn, head


def unrolled(cell, head, x, training, perturb=None):
    """Runs `cell` by hand over `x`; returns the logits of the last step.

    `perturb` is `None` or a pair of lists `(e_c, e_h)` of tensors added to
    the cell and hidden state after each step.
    """
    import tensorflow as tf

    batch, steps = x.shape[0], x.shape[1]
    h = tf.zeros((batch, cell.units))
    c = tf.zeros((batch, cell.units))
    for t in range(steps):
        _, (h, c) = cell(x[:, t], [h, c], training=training)
        if perturb is not None:
            c = c + perturb[0][t]
            h = h + perturb[1][t]
    return head(h)


def state_gradient_norms(cell, head, x, y, training):
    """Per-step mean norms of `dL/dc_t` and `dL/dh_t`, shape `(T,)` each."""
    import tensorflow as tf

    batch, steps = x.shape[0], x.shape[1]
    e_c = [tf.zeros((batch, cell.units)) for _ in range(steps)]
    e_h = [tf.zeros((batch, cell.units)) for _ in range(steps)]
    with tf.GradientTape() as tape:
        tape.watch(e_c + e_h)
        logits = unrolled(cell, head, x, training, (e_c, e_h))
        loss = tf.reduce_sum(
            tf.keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True
            )
        )
    grads = tape.gradient(loss, e_c + e_h)
    # The loss reads h_T only, so c_T (carried to no further step) gets no
    # gradient: `None` from the tape, a norm of 0 here.
    norms = np.array(
        [
            0.0 if g is None else np.linalg.norm(g.numpy(), axis=-1).mean()
            for g in grads
        ]
    )
    return norms[:steps], norms[steps:]


def check_unrolled_equals_layer(model, cell, head, x):
    """The hand-unrolled inference pass must equal the trained model."""
    expected = np.asarray(model(x, training=False))
    got = np.asarray(unrolled(cell, head, x, training=False))
    error = float(np.abs(expected - got).max())
    if error > 1e-5:
        raise AssertionError(
            f"hand-unrolled loop differs from the model by {error:.2e}"
        )
    return error


def measure(variant, data, cfg, args):
    import keras

    keras.utils.set_random_seed(args.seed)
    model, rnn, head = build(
        variant, cfg["units"], args.seed, args.zoneout_c, args.zoneout_h
    )
    x_test, y_test = data["test"]
    x = x_test[: args.examples]
    y = y_test[: args.examples]
    training = args.mode == "train"
    model(x[:2])  # builds the weights
    start = time.perf_counter()
    at_init = state_gradient_norms(rnn.cell, head, x, y, training)

    model.compile(
        optimizer=keras.optimizers.Adam(
            cfg["learning_rate"], clipnorm=CLIPNORM
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x_train, y_train = data["train"]
    model.fit(
        x_train,
        y_train,
        batch_size=cfg["batch_size"],
        epochs=cfg["epochs"],
        verbose=args.verbose,
    )
    error = check_unrolled_equals_layer(model, rnn.cell, head, x)
    trained = state_gradient_norms(rnn.cell, head, x, y, training)
    logits = np.asarray(model.predict(x_test, verbose=0))
    test_acc = float(np.mean(logits.argmax(-1) == y_test))
    result = {"variant": variant, "unrolled_max_abs_error": error}
    for name, (grad_c, grad_h) in (("init", at_init), ("trained", trained)):
        result[name] = {
            "grad_c": grad_c.tolist(),
            "grad_h": grad_h.tolist(),
            # c_T feeds no later step (its gradient is 0): the last
            # informative step for c is T - 1.
            "ratio_c_first_last": float(grad_c[0] / grad_c[-2]),
            "ratio_h_first_last": float(grad_h[0] / grad_h[-1]),
        }
    result["test_acc"] = test_acc
    result["seconds"] = time.perf_counter() - start
    return result


def summary_lines(results, steps):
    mid = steps // 2
    header = (
        f"{'variant':<9} {'when':<8} {'|dL/dc_1|':>10} "
        f"{'|dL/dc_' + str(mid) + '|':>11} "
        f"{'|dL/dc_' + str(steps - 1) + '|':>11} {'c_1/c_T-1':>9} "
        f"{'h_1/h_T':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        for when in ("init", "trained"):
            m = r[when]
            g = m["grad_c"]
            lines.append(
                f"{r['variant']:<9} {when:<8} {g[0]:>10.3e} "
                f"{g[mid - 1]:>11.3e} {g[-2]:>11.3e} "
                f"{m['ratio_c_first_last']:>9.2e} "
                f"{m['ratio_h_first_last']:>9.2e}"
            )
    return lines


def plot(results, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, when in zip(axes, ("init", "trained"), strict=True):
        for r in results:
            g = np.array(r[when]["grad_c"])[:-1]  # c_T: no gradient
            ax.semilogy(np.arange(1, len(g) + 1), g, label=r["variant"])
        ax.set_title(
            "at initialization" if when == "init" else "after training"
        )
        ax.set_xlabel("time step t")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("mean ‖dL/dc_t‖ (log scale)")
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small and fast")
    p.add_argument("--epochs", type=permuted_digits.positive_int)
    p.add_argument("--units", type=permuted_digits.positive_int)
    p.add_argument("--zoneout-c", type=rate, default=permuted_digits.ZONEOUT)
    p.add_argument("--zoneout-h", type=rate, default=permuted_digits.ZONEOUT)
    p.add_argument(
        "--examples",
        type=permuted_digits.positive_int,
        default=256,
        help="test images the gradients are averaged over (default 256)",
    )
    p.add_argument(
        "--mode",
        choices=("train", "inference"),
        default="train",
        help="gradients with training noise (default) or at inference",
    )
    p.add_argument("--seed", type=permuted_digits.non_negative_int, default=0)
    p.add_argument(
        "--output-dir",
        default=os.path.join(HERE, "output"),
        help="where the JSON and PNG go (default: examples/output/)",
    )
    p.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1 if sys.stdout.isatty() else 2,
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("epochs", "units"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)

    # The method uses tf.GradientTape: select TensorFlow before Keras loads.
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        print(
            f"note: KERAS_BACKEND={os.environ['KERAS_BACKEND']} ignored; "
            "this example runs on TensorFlow",
            flush=True,
        )
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    if keras.backend.backend() != "tensorflow":
        sys.exit(
            "gradient_flow.py needs the TensorFlow backend, but Keras was "
            f"already loaded with {keras.backend.backend()!r}"
        )

    data = permuted_digits.load_data()
    args.examples = min(args.examples, len(data["test"][1]))
    print(
        f"backend {keras.backend.backend()}, keras {keras.__version__}; "
        f"config {cfg}; zoneout c={args.zoneout_c} h={args.zoneout_h}; "
        f"gradients in {args.mode} mode over {args.examples} test images",
        flush=True,
    )
    results = []
    for variant in ("baseline", "zoneout"):
        print(f"\n=== {variant} ===", flush=True)
        results.append(measure(variant, data, cfg, args))

    steps = len(results[0]["init"]["grad_c"])
    lines = summary_lines(results, steps)
    base, zone = (r["trained"]["ratio_c_first_last"] for r in results)
    lines.append(
        f"\nAfter training, |dL/dc_1| / |dL/dc_T-1| is {zone / base:.3g}x "
        "larger with zoneout than without"
        if zone >= base
        else f"\nAfter training, |dL/dc_1| / |dL/dc_T-1| is "
        f"{base / zone:.3g}x "
        "SMALLER with zoneout than without"
    )
    for r in results:
        lines.append(
            f"{r['variant']}: test accuracy {r['test_acc']:.4f} after "
            f"{cfg['epochs']} epochs; unrolled loop vs layer max abs error "
            f"{r['unrolled_max_abs_error']:.1e}"
        )
    print("\n" + "\n".join(lines), flush=True)

    os.makedirs(args.output_dir, exist_ok=True)
    stem = os.path.join(
        args.output_dir, f"gradient_flow{'_quick' if args.quick else ''}"
    )
    plot(
        results,
        stem + ".png",
        f"gradient flow, permuted digits, {cfg['units']} units, "
        f"zoneout c={args.zoneout_c} h={args.zoneout_h}, {args.mode} mode",
    )
    with open(stem + ".json", "w") as f:
        json.dump(
            {
                "keras_version": keras.__version__,
                "python": platform.python_version(),
                "command": " ".join(
                    [os.path.basename(sys.argv[0])] + sys.argv[1:]
                ),
                "config": cfg,
                "zoneout_c": args.zoneout_c,
                "zoneout_h": args.zoneout_h,
                "mode": args.mode,
                "examples": args.examples,
                "seed": args.seed,
                "results": results,
            },
            f,
            indent=2,
        )
    print(f"\nwrote {stem}.json and {stem}.png")


if __name__ == "__main__":
    main()
