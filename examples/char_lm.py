"""Character-level language modelling: recurrent regularizers compared.

What it shows
-------------
The same character-level LSTM language model, trained with the same data,
budget and seed, with five recurrent layers:

=================  ======================================================
variant            recurrent layer
=================  ======================================================
``baseline``       ``keras.layers.LSTM``, no regularization
``keras_dropout``  ``keras.layers.LSTM(recurrent_dropout=0.25)`` (Keras's
                   own recurrent dropout: one mask per sequence, shared by
                   the four gates)
``gal``            ``GalLSTMCell(recurrent_dropout=0.25)`` (variational
                   dropout, one mask per sequence and per gate)
``semeniuta``      ``SemeniutaLSTMCell(recurrent_dropout=0.25)`` (dropout
                   on the candidate update, fresh mask at every step)
``zoneout``        ``ZoneoutLSTMCell(zoneout_c=0.5, zoneout_h=0.05)`` (the
                   character-level setting of Krueger et al., 2016)
=================  ======================================================

Input dropout is 0 everywhere, so only the recurrent regularizer differs.
The package cells are wrapped in ``keras_recdrop.RNN``.

Data
----
By default the corpus is the English text of the Python documentation that
ships with CPython (``pydoc_data.topics.topics``: the values of the dict,
in sorted key order, joined by blank lines; ~0.47 M characters on Python
3.11), so the example needs no download. ``--corpus PATH`` trains on any
UTF-8 text file instead.

* Split: contiguous, the first 90 % of the characters for training, the
  next 5 % for validation and the last 5 % for test.
* Vocabulary: built on the training split only; every character seen at
  least ``--min-count`` (default 5) times there gets its own id, all the
  others (and unseen characters of the validation/test splits) share one
  out-of-vocabulary id 0.
* Training: truncated back-propagation through time on non-overlapping
  windows of ``--seq-len`` characters (non-stateful, zero initial state),
  re-cut at a random offset and shuffled at every epoch.

Model and budget
----------------
``Embedding(vocab, E) -> recurrent layer (units) -> Dense(vocab)`` (the
softmax is folded into the cross-entropy, ``from_logits=True``), Adam with
gradient-norm clipping at 1.0, the same number of epochs for every variant.

* Full mode (default): the whole corpus, E=64, 256 units, windows of 100
  characters, batch 32, learning rate 4e-3, 8 epochs. On the project's
  shared 2-core CPU one epoch of the baseline took 55 s with JAX, so the
  five variants should take about 45 minutes there (not run to the end).
* The run in ``docs/results.md`` uses ``--max-chars 200000 --epochs 20``
  (same model): on this smaller corpus the unregularized model starts to
  overfit within the budget, which is when regularizers should help. It
  took 44 minutes on JAX on the same, loaded, machine.
* ``--quick``: the first 150 000 characters of the corpus, E=32, 64 units,
  windows of 40, batch 16, learning rate 1e-2, 3 epochs: 2 minutes on JAX
  (5.5 minutes on TensorFlow) on the same machine under load. Far from
  converged: a smoke test of the pipeline, not a ranking of the
  regularizers.

Evaluation
----------
BPC (bits per character) = mean cross-entropy in nats / ln 2, computed at
inference (``training=False``: no dropout; zoneout uses its expectation) on
the *whole* split. The split is cut into 64 contiguous streams that are
read chunk by chunk with the LSTM state carried over, so every character
but the first of each stream is predicted from its full left context.
Validation BPC is measured after every epoch; the weights of the epoch with
the best validation BPC are restored and give the reported validation, test
and train BPC.

Outputs (in ``--output-dir``, default ``examples/output/``):
``char_lm[_quick]_<backend>.json`` (settings, per-epoch curves, results) and
``char_lm[_quick]_<backend>.png`` (training loss and validation BPC per
epoch). Both are rewritten after every variant.

Usage::

    KERAS_BACKEND=tensorflow python examples/char_lm.py --quick
    KERAS_BACKEND=jax python examples/char_lm.py --variants baseline zoneout
    python examples/char_lm.py --corpus my_text.txt --epochs 20
"""

import argparse
import collections
import json
import math
import os
import platform
import sys
import time

import numpy as np
from _cli import non_negative_int
from _cli import positive_float
from _cli import positive_int

HERE = os.path.dirname(os.path.abspath(__file__))

VARIANTS = ("baseline", "keras_dropout", "gal", "semeniuta", "zoneout")

# Regularization rates, the same in quick and full mode.
RECURRENT_DROPOUT = 0.25
ZONEOUT_C = 0.5
ZONEOUT_H = 0.05

FULL = dict(
    units=256,
    embed_dim=64,
    seq_len=100,
    batch_size=32,
    epochs=8,
    learning_rate=4e-3,
    max_chars=None,
)
QUICK = dict(
    units=64,
    embed_dim=32,
    seq_len=40,
    batch_size=16,
    epochs=3,
    learning_rate=1e-2,
    max_chars=150_000,
)
CLIPNORM = 1.0
EVAL_STREAMS = 64
EVAL_CHUNK = 200


# --------------------------------------------------------------------- data


def load_corpus(path):
    """Returns the corpus text and a short description of its origin."""
    if path is None:
        from pydoc_data.topics import topics

        text = "\n\n".join(topics[key] for key in sorted(topics))
        return text, "pydoc_data.topics (CPython documentation)"
    with open(path, encoding="utf-8") as f:
        return f.read(), os.path.abspath(path)


def split_text(text):
    """Contiguous 90/5/5 split into train, validation and test."""
    n = len(text)
    a, b = int(0.90 * n), int(0.95 * n)
    return text[:a], text[a:b], text[b:]


def build_vocab(train_text, min_count):
    """Maps every character seen `min_count` times in training to an id.

    Id 0 is the shared out-of-vocabulary id; the other ids follow the
    sorted order of the characters, so the vocabulary is deterministic.
    """
    counts = collections.Counter(train_text)
    chars = sorted(c for c, k in counts.items() if k >= min_count)
    return {c: i + 1 for i, c in enumerate(chars)}


def encode(text, vocab):
    return np.array([vocab.get(c, 0) for c in text], dtype="int32")


def training_windows(ids, seq_len, rng):
    """Non-overlapping (input, target) windows at a random offset, shuffled."""
    offset = int(rng.integers(seq_len))
    n = (len(ids) - offset - 1) // seq_len
    body = ids[offset : offset + n * seq_len + 1]
    x = body[:-1].reshape(n, seq_len)
    y = body[1:].reshape(n, seq_len)
    order = rng.permutation(n)
    return x[order], y[order]


# -------------------------------------------------------------------- model


def make_recurrent_layer(variant, units, seed, **rnn_kwargs):
    """The recurrent layer of `variant` (see the module docstring)."""
    import keras

    import keras_recdrop

    if variant == "baseline":
        return keras.layers.LSTM(units, seed=seed, **rnn_kwargs)
    if variant == "keras_dropout":
        return keras.layers.LSTM(
            units, recurrent_dropout=RECURRENT_DROPOUT, seed=seed, **rnn_kwargs
        )
    if variant == "gal":
        cell = keras_recdrop.GalLSTMCell(
            units, recurrent_dropout=RECURRENT_DROPOUT, seed=seed
        )
    elif variant == "semeniuta":
        cell = keras_recdrop.SemeniutaLSTMCell(
            units, recurrent_dropout=RECURRENT_DROPOUT, seed=seed
        )
    elif variant == "zoneout":
        cell = keras_recdrop.ZoneoutLSTMCell(
            units, zoneout_c=ZONEOUT_C, zoneout_h=ZONEOUT_H, seed=seed
        )
    else:
        raise ValueError(f"Unknown variant {variant!r}.")
    return keras_recdrop.RNN(cell, **rnn_kwargs)


def build_models(variant, vocab_size, cfg, seed):
    """Returns `(train_model, eval_model, copy_weights)`.

    `train_model` maps a window of ids to next-character logits. `eval_model`
    shares its embedding and output layers and has a twin recurrent layer
    (same class and configuration, `return_state=True`) that takes and
    returns the state `[h, c]`, for streaming evaluation; `copy_weights()`
    copies the trained recurrent weights into the twin.
    """
    import keras

    embed = keras.layers.Embedding(vocab_size, cfg["embed_dim"], name="embed")
    rnn = make_recurrent_layer(
        variant, cfg["units"], seed, return_sequences=True, name="rnn"
    )
    head = keras.layers.Dense(vocab_size, name="logits")

    tokens = keras.Input((cfg["seq_len"],), dtype="int32")
    train_model = keras.Model(
        tokens, head(rnn(embed(tokens))), name=f"char_lm_{variant}"
    )

    twin = rnn.__class__.from_config(
        {**rnn.get_config(), "return_state": True, "name": "rnn_eval"}
    )
    units = cfg["units"]
    chunk = keras.Input((EVAL_CHUNK,), dtype="int32", batch_size=EVAL_STREAMS)
    h0 = keras.Input((units,), batch_size=EVAL_STREAMS)
    c0 = keras.Input((units,), batch_size=EVAL_STREAMS)
    seq, h, c = twin(embed(chunk), initial_state=[h0, c0])
    eval_model = keras.Model([chunk, h0, c0], [head(seq), h, c])

    def copy_weights():
        twin.set_weights(rnn.get_weights())

    return train_model, eval_model, copy_weights


def bits_per_char(eval_model, ids, units):
    """Streaming BPC of `ids` under `eval_model` at inference.

    `ids` is cut into `EVAL_STREAMS` contiguous streams (the last one padded;
    padding is not scored), read `EVAL_CHUNK` characters at a time with the
    state carried over. Each stream predicts its characters 2..L.
    """
    n_targets = len(ids) - 1
    length = -(-n_targets // EVAL_STREAMS)  # targets per stream
    n_chunks = -(-length // EVAL_CHUNK)
    padded = n_chunks * EVAL_CHUNK
    x = np.zeros((EVAL_STREAMS * padded,), "int32")
    y = np.zeros_like(x)
    w = np.zeros(x.shape, "float64")
    # Stream s covers targets [s*length, (s+1)*length) of the split.
    for s in range(EVAL_STREAMS):
        lo = s * length
        hi = min(lo + length, n_targets)
        if hi <= lo:
            continue
        x[s * padded : s * padded + hi - lo] = ids[lo:hi]
        y[s * padded : s * padded + hi - lo] = ids[lo + 1 : hi + 1]
        w[s * padded : s * padded + hi - lo] = 1.0
    x, y, w = (a.reshape(EVAL_STREAMS, padded) for a in (x, y, w))

    h = np.zeros((EVAL_STREAMS, units), "float32")
    c = np.zeros_like(h)
    total = 0.0
    for k in range(n_chunks):
        cols = slice(k * EVAL_CHUNK, (k + 1) * EVAL_CHUNK)
        logits, h, c = eval_model.predict_on_batch([x[:, cols], h, c])
        logits = np.asarray(logits, "float64")
        log_z = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1))
        log_z += logits.max(-1)
        target = np.take_along_axis(logits, y[:, cols, None], -1)[..., 0]
        total += float(((log_z - target) * w[:, cols]).sum())
    return total / w.sum() / math.log(2.0)


# ----------------------------------------------------------------- training


def run_variant(variant, data, vocab_size, cfg, args):
    import keras

    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    model, eval_model, copy_weights = build_models(
        variant, vocab_size, cfg, args.seed
    )
    optimizer = keras.optimizers.Adam(cfg["learning_rate"], clipnorm=CLIPNORM)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(args.seed)
    history = {"train_loss_bpc": [], "val_bpc": [], "epoch_seconds": []}
    best = (math.inf, 0, None)  # (val BPC, epoch, weights)
    for epoch in range(cfg["epochs"]):
        t0 = time.perf_counter()
        x, y = training_windows(data["train"], cfg["seq_len"], rng)
        fit = model.fit(
            x,
            y,
            batch_size=cfg["batch_size"],
            initial_epoch=epoch,
            epochs=epoch + 1,
            shuffle=False,  # already shuffled, reproducibly, by `rng`
            verbose=args.verbose,
        )
        copy_weights()
        val = bits_per_char(eval_model, data["val"], cfg["units"])
        train_loss = fit.history["loss"][-1] / math.log(2.0)
        history["train_loss_bpc"].append(train_loss)
        history["val_bpc"].append(val)
        history["epoch_seconds"].append(time.perf_counter() - t0)
        flag = ""
        if val < best[0]:
            best = (val, epoch + 1, model.get_weights())
            flag = "  (best)"
        print(
            f"  [{variant}] epoch {epoch + 1}/{cfg['epochs']}: training "
            f"loss {train_loss:.4f} bpc (with noise), validation "
            f"{val:.4f} bpc{flag}",
            flush=True,
        )
    train_seconds = time.perf_counter() - start

    model.set_weights(best[2])
    copy_weights()
    result = {
        "variant": variant,
        "val_bpc": best[0],
        "best_epoch": best[1],
        "test_bpc": bits_per_char(eval_model, data["test"], cfg["units"]),
        "train_bpc": bits_per_char(eval_model, data["train"], cfg["units"]),
        "epochs": cfg["epochs"],
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
        "params": model.count_params(),
        "history": history,
    }
    return result


# ------------------------------------------------------------------ outputs


def format_table(results):
    header = (
        f"{'variant':<14} {'val BPC':>8} {'test BPC':>9} {'train BPC':>10} "
        f"{'best ep':>7} {'epochs':>6} {'seconds':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r['variant']:<14} {r['val_bpc']:>8.4f} {r['test_bpc']:>9.4f} "
            f"{r['train_bpc']:>10.4f} {r['best_epoch']:>7d} "
            f"{r['epochs']:>6d} {r['seconds']:>8.1f}"
        )
    return "\n".join(lines)


def plot_curves(results, path, title):
    """Learning curves: training loss (with noise) and validation BPC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in results:
        for ax, key in ((ax_train, "train_loss_bpc"), (ax_val, "val_bpc")):
            curve = r["history"][key]
            ax.plot(
                range(1, len(curve) + 1),
                curve,
                marker="o",
                markersize=3,
                label=r["variant"],
            )
    ax_train.set_ylabel("training loss, BPC (with noise)")
    ax_val.set_ylabel("validation BPC (inference)")
    for ax, key in ((ax_train, "train_loss_bpc"), (ax_val, "val_bpc")):
        # The first epochs are far above the rest; frame the later ones so
        # that the differences between variants stay visible.
        late = [v for r in results for v in r["history"][key][2:]]
        if late:
            low, high = min(late), max(late)
            margin = 0.05 * (high - low) + 1e-3
            ax.set_ylim(low - margin, high + margin)
    for ax in (ax_train, ax_val):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_val.legend()
    fig.suptitle(title + " (y axis framed on epochs 3 and later)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------- main


def machine_description():
    """CPU model and count, for the record in the JSON output."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}, {platform.system()}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small, fast configuration (under 5 minutes on 2 CPU cores)",
    )
    p.add_argument(
        "--corpus",
        metavar="PATH",
        help="UTF-8 text file to use instead of the CPython documentation",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="subset of variants to train (default: all)",
    )
    p.add_argument(
        "--output-dir",
        default=os.path.join(HERE, "output"),
        help="where the JSON and PNG go (default: examples/output/)",
    )
    p.add_argument(
        "--epochs", type=positive_int, help="override the epoch count"
    )
    p.add_argument("--units", type=positive_int, help="override the width")
    p.add_argument(
        "--seq-len", type=positive_int, help="override the window length"
    )
    p.add_argument(
        "--batch-size", type=positive_int, help="override the batch size"
    )
    p.add_argument(
        "--max-chars",
        type=positive_int,
        help="use only the first N characters of the corpus",
    )
    p.add_argument(
        "--learning-rate", type=positive_float, help="override Adam's"
    )
    p.add_argument("--min-count", type=positive_int, default=5)
    p.add_argument("--seed", type=non_negative_int, default=1234)
    p.add_argument(
        "--replot",
        metavar="JSON",
        help="only redraw the PNG (next to JSON) from a saved run's JSON",
    )
    p.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1 if sys.stdout.isatty() else 2,
        help="Keras fit verbosity (default: progress bar on a terminal, "
        "one line per epoch otherwise)",
    )
    args = p.parse_args(argv)
    if args.corpus is not None:
        if not os.path.isfile(args.corpus):
            p.error(f"argument --corpus: no such file: {args.corpus!r}")
        try:
            with open(args.corpus, encoding="utf-8") as f:
                f.read()
        except UnicodeDecodeError as e:
            p.error(f"argument --corpus: {args.corpus!r} is not UTF-8 ({e})")
        except OSError as e:
            p.error(f"argument --corpus: cannot read {args.corpus!r} ({e})")
    return args, p


def replot(path):
    """Redraws the learning curves of a saved run (`--replot`)."""
    with open(path) as f:
        report = json.load(f)
    cfg = report["config"]
    title = (
        f"char LM, {report['backend']}, {report['mode']}: {cfg['units']} "
        f"units, {report['chars']['total']:,} chars, {cfg['epochs']} epochs"
    )
    png = os.path.splitext(path)[0] + ".png"
    plot_curves(report["results"], png, title)
    print(f"wrote {png}")


def main(argv=None):
    args, parser = parse_args(argv)
    if args.replot:
        if not os.path.isfile(args.replot):
            parser.error(f"argument --replot: no such file: {args.replot!r}")
        replot(args.replot)
        return
    cfg = dict(QUICK if args.quick else FULL)
    for key in (
        "epochs",
        "units",
        "seq_len",
        "batch_size",
        "learning_rate",
        "max_chars",
    ):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)

    import keras

    text, source = load_corpus(args.corpus)
    if cfg["max_chars"]:
        text = text[: cfg["max_chars"]]
    train_text, val_text, test_text = split_text(text)
    # Streaming evaluation needs every split to hold at least one character
    # per stream, and training at least one window of seq_len + 1.
    shortest = min(len(val_text), len(test_text))
    if shortest < 2 * EVAL_STREAMS or len(train_text) <= cfg["seq_len"] + 1:
        parser.error(
            f"the corpus is too small: {len(text):,} characters give "
            f"validation/test splits of {len(val_text):,}/{len(test_text):,}"
            f" (need at least {2 * EVAL_STREAMS} each, i.e. about "
            f"{40 * EVAL_STREAMS:,} characters in total) and a training "
            f"split of {len(train_text):,} (need more than seq_len + 1 = "
            f"{cfg['seq_len'] + 1})"
        )
    vocab = build_vocab(train_text, args.min_count)
    vocab_size = len(vocab) + 1
    data = {
        "train": encode(train_text, vocab),
        "val": encode(val_text, vocab),
        "test": encode(test_text, vocab),
    }
    oov = {k: float(np.mean(v == 0)) for k, v in data.items()}
    backend = keras.backend.backend()
    mode = "quick" if args.quick else "full"
    print(
        f"backend {backend}, keras {keras.__version__}, mode {mode}\n"
        f"corpus {source}: {len(text):,} chars -> train {len(train_text):,}"
        f" / val {len(val_text):,} / test {len(test_text):,}\n"
        f"vocabulary {vocab_size} ids (incl. OOV; OOV rate train "
        f"{oov['train']:.2e}, val {oov['val']:.2e}, test {oov['test']:.2e})"
        f"\nconfig {cfg}",
        flush=True,
    )

    os.makedirs(args.output_dir, exist_ok=True)
    stem = os.path.join(
        args.output_dir,
        f"char_lm{'_quick' if args.quick else ''}_{backend}",
    )
    report = {
        "backend": backend,
        "keras_version": keras.__version__,
        "python": platform.python_version(),
        "machine": machine_description(),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "mode": mode,
        "corpus": source,
        "chars": {
            "total": len(text),
            "train": len(train_text),
            "val": len(val_text),
            "test": len(test_text),
        },
        "vocab_size": vocab_size,
        "oov_rate": oov,
        "config": cfg,
        "clipnorm": CLIPNORM,
        "rates": {
            "recurrent_dropout": RECURRENT_DROPOUT,
            "zoneout_c": ZONEOUT_C,
            "zoneout_h": ZONEOUT_H,
        },
        "seed": args.seed,
        "results": [],
    }
    title = (
        f"char LM, {backend}, {mode}: {cfg['units']} units, "
        f"{len(text):,} chars, {cfg['epochs']} epochs"
    )
    for variant in args.variants:
        print(f"\n=== {variant} ===", flush=True)
        report["results"].append(
            run_variant(variant, data, vocab_size, cfg, args)
        )
        # Written after every variant, so a long run that is stopped
        # keeps the variants it finished.
        with open(stem + ".json", "w") as f:
            json.dump(report, f, indent=2)
        plot_curves(report["results"], stem + ".png", title)

    print(
        f"\nResults ({backend}, {mode}; BPC at inference on the whole split, "
        "weights of the best-validation epoch; seconds = build + training + "
        "evaluation):\n" + format_table(report["results"]),
        flush=True,
    )
    print(f"\nwrote {stem}.json and {stem}.png")


if __name__ == "__main__":
    main()
