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
                   own recurrent dropout: one mask per sequence and per
                   gate, as it always runs in its split mode 1)
``gal``            ``GalLSTMCell(recurrent_dropout=0.25)`` (variational
                   dropout, one mask per sequence and per gate)
``semeniuta``      ``SemeniutaLSTMCell(recurrent_dropout=0.25)`` (dropout
                   on the candidate update, fresh mask at every step)
``zoneout``        ``ZoneoutLSTMCell(zoneout_c=0.5, zoneout_h=0.05)`` (the
                   character-level setting of Krueger et al., 2016)
=================  ======================================================

Input dropout is 0 everywhere, so only the recurrent regularizer differs.
The package cells are wrapped in ``keras_recdrop.RNN``. The rates are not
tuned: 0.25 is the low end of the 0.25-0.5 of Gal's and Semeniuta's papers,
0.5/0.05 the zoneout paper's character-level rates.

Data
----
By default the corpus is the English text of the Python documentation that
ships with CPython (``pydoc_data.topics.topics``: the values of the dict,
in sorted key order, joined by blank lines; ~0.47 M characters on Python
3.11), so the example needs no download. ``--corpus PATH`` trains on any
UTF-8 text file instead.

* Split. Full mode: contiguous, the first 90 % of the characters for
  training, the next 5 % for validation, the last 5 % for test. Quick mode
  (and ``--train-chars``): the corpus is cut into blocks of 1,000
  characters, and 20 + 20 + 20 distinct blocks drawn at random (fixed split
  seed, the same for every run) give 20,000 training, 20,000 validation
  and 20,000 test characters (``--train-chars``, ``--eval-chars``): three
  disjoint samples of the same documentation, so that validation and test
  measure the same thing.
* Vocabulary: built on the training split only; every character seen at
  least ``--min-count`` (default 5) times there gets its own id, all the
  others (and unseen characters of the validation/test splits) share one
  out-of-vocabulary id 0.
* Training: truncated back-propagation through time on non-overlapping
  windows of ``seq_len`` characters (non-stateful, zero initial state),
  re-cut at a random offset and shuffled at every epoch.

Model and budget
----------------
``Embedding(vocab, E) -> recurrent layer (units) -> Dense(vocab)`` (the
softmax is folded into the cross-entropy, ``from_logits=True``), Adam with
gradient-norm clipping at 1.0, the same number of epochs for every variant.

* ``--quick`` (the README's main job, ``scripts/demo.sh``): a model large
  for its data, so that the unregularized one overfits within minutes:
  20,000 training characters, E=32, 256 units, windows of 50, batch 16,
  learning rate 8e-3, 20 epochs. The setting was chosen once, on the
  validation split (``docs/results.md``). The BPC of the first 10,000
  training characters is also measured at inference after every epoch, for
  the learning curves. About 35 s per variant on JAX on the project's
  2-core CPU.
* Full mode (default): the whole corpus, E=64, 256 units, windows of 100
  characters, batch 32, learning rate 4e-3, 8 epochs (one baseline epoch
  took 55 s on JAX on the same machine). ``docs/results.md`` reports it
  with ``--max-chars 200000 --epochs 20``.

Evaluation
----------
BPC (bits per character) = mean cross-entropy in nats / ln 2, computed at
inference (``training=False``: no dropout; zoneout uses its expectation) on
the *whole* split. The split is cut into 64 contiguous streams that are
read chunk by chunk with the LSTM state carried over, so every character
but the first of each stream is predicted from its full left context.
Validation BPC is measured after every epoch; the weights of the epoch with
the best validation BPC are restored and give the reported validation, test
and train BPC. No choice is made on the test split.

Outputs (in ``--output-dir``, default ``examples/output/``):
``char_lm[_quick]_<backend>.json`` (settings, per-epoch curves, and
``results``: one entry per variant with ``variant`` and ``val_bpc``;
``baseline`` names the unregularized variant) and
``char_lm[_quick]_<backend>.png`` (the learning curves). Both are rewritten
after every variant. ``examples/compare_seeds.py`` compares the JSON files
of several seeds.

Usage::

    KERAS_BACKEND=jax python examples/char_lm.py --quick
    KERAS_BACKEND=jax python examples/char_lm.py --quick --seed 3
    KERAS_BACKEND=tensorflow python examples/char_lm.py --variants baseline gal
    python examples/char_lm.py --corpus my_text.txt --epochs 20
"""

import argparse
import json
import os
import platform
import sys
import time

import _charlm
import _report
import numpy as np
from _cli import non_negative_int
from _cli import positive_float
from _cli import positive_int

HERE = os.path.dirname(os.path.abspath(__file__))

FULL = dict(
    units=256,
    embed_dim=64,
    seq_len=100,
    batch_size=32,
    epochs=8,
    learning_rate=4e-3,
    max_chars=None,
    train_chars=None,
    eval_chars=None,
    block_chars=None,
    train_curve=None,
)
QUICK = dict(
    units=256,
    embed_dim=32,
    seq_len=50,
    batch_size=16,
    epochs=20,
    learning_rate=8e-3,
    max_chars=None,
    train_chars=20_000,
    eval_chars=20_000,
    block_chars=1_000,
    train_curve=10_000,
)
OVERRIDES = (
    "epochs",
    "units",
    "seq_len",
    "batch_size",
    "learning_rate",
    "max_chars",
    "train_chars",
    "eval_chars",
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="the main job's setting: a model that overfits 20,000 "
        "characters within minutes (about 3 minutes on 2 CPU cores)",
    )
    p.add_argument(
        "--corpus",
        metavar="PATH",
        help="UTF-8 text file to use instead of the CPython documentation",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        choices=_charlm.VARIANTS,
        default=list(_charlm.VARIANTS),
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
        "--train-chars",
        type=positive_int,
        help="train on N characters drawn as random blocks of 1000, with "
        "validation and test of --eval-chars each, instead of a contiguous "
        "90/5/5 split (multiples of 1000)",
    )
    p.add_argument(
        "--eval-chars",
        type=positive_int,
        help="size of the validation and of the test split with "
        "--train-chars (default 20000)",
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
        help="Keras fit verbosity (default: a progress bar in full mode on a"
        " terminal, else 0); this script prints one line per epoch anyway",
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


def config(args):
    """The mode's settings with the command line's overrides."""
    cfg = dict(QUICK if args.quick else FULL)
    for key in OVERRIDES:
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if cfg["train_chars"] is not None:
        for key in ("eval_chars", "block_chars"):
            if cfg[key] is None:
                cfg[key] = QUICK[key]
    return cfg


def title(report):
    cfg = report["config"]
    return (
        f"char LM, {report['backend']}, {report['mode']}: {cfg['units']} "
        f"units, {report['chars']['train']:,} training chars, "
        f"{cfg['epochs']} epochs, seed {report['seed']}"
    )


def train_label(cfg):
    chars = cfg.get("train_curve")
    return f"first {chars:,} training chars" if chars else "training split"


def replot(path):
    """Redraws the learning curves of a saved run (`--replot`)."""
    with open(path) as f:
        report = json.load(f)
    report.setdefault("seed", "?")
    png = os.path.splitext(path)[0] + ".png"
    _report.plot_curves(
        report["results"], png, title(report), train_label(report["config"])
    )
    print(f"wrote {png}")


def load_data(args, cfg, parser):
    """Encoded splits, vocabulary size and a description of the corpus."""
    text, source = _charlm.load_corpus(args.corpus)
    if cfg["max_chars"]:
        text = text[: cfg["max_chars"]]
    if cfg["train_chars"] is None:
        splits = _charlm.split_text(text)
    else:
        sizes = (cfg["train_chars"], cfg["eval_chars"], cfg["eval_chars"])
        try:
            splits = _charlm.block_split(
                text, cfg["block_chars"], sizes, _charlm.SPLIT_SEED
            )
        except ValueError as e:
            parser.error(str(e))
    # Streaming evaluation needs every split to hold at least one character
    # per stream, and training at least one window of seq_len + 1.
    lengths = [len(s) for s in splits]
    if min(lengths[1:]) < 2 * _charlm.EVAL_STREAMS or (
        lengths[0] <= cfg["seq_len"] + 1
    ):
        parser.error(
            f"the corpus is too small for this split: {len(text):,} "
            f"characters give train/validation/test splits of "
            f"{lengths[0]:,}/{lengths[1]:,}/{lengths[2]:,} (need at least "
            f"{2 * _charlm.EVAL_STREAMS} for validation and test, and more "
            f"than seq_len + 1 = {cfg['seq_len'] + 1} for training)"
        )
    vocab = _charlm.build_vocab(splits[0], args.min_count)
    data = {
        name: _charlm.encode(split, vocab)
        for name, split in zip(("train", "val", "test"), splits, strict=True)
    }
    chars = {"total": len(text), **dict(zip(data, lengths, strict=True))}
    return data, len(vocab) + 1, source, chars


def main(argv=None):
    args, parser = parse_args(argv)
    if args.replot:
        if not os.path.isfile(args.replot):
            parser.error(f"argument --replot: no such file: {args.replot!r}")
        replot(args.replot)
        return
    start, cpu_start = time.perf_counter(), time.process_time()
    if args.verbose is None:
        args.verbose = int(not args.quick and sys.stdout.isatty())
    cfg = config(args)
    data, vocab_size, source, chars = load_data(args, cfg, parser)

    import keras

    oov = {k: float(np.mean(v == 0)) for k, v in data.items()}
    backend = keras.backend.backend()
    mode = "quick" if args.quick else "full"
    print(
        f"backend {backend}, keras {keras.__version__}, mode {mode}, seed "
        f"{args.seed}\ncorpus {source}: train {chars['train']:,} / val "
        f"{chars['val']:,} / test {chars['test']:,} chars\nvocabulary "
        f"{vocab_size} ids (incl. OOV; OOV rate train {oov['train']:.2e}, "
        f"val {oov['val']:.2e}, test {oov['test']:.2e})\nconfig {cfg}",
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
        "machine": _report.machine_description(),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "mode": mode,
        "corpus": source,
        "chars": chars,
        "vocab_size": vocab_size,
        "oov_rate": oov,
        "config": cfg,
        "clipnorm": _charlm.CLIPNORM,
        "rates": {
            "recurrent_dropout": _charlm.RECURRENT_DROPOUT,
            "zoneout_c": _charlm.ZONEOUT_C,
            "zoneout_h": _charlm.ZONEOUT_H,
        },
        "seed": args.seed,
        "baseline": _charlm.BASELINE,
        "results": [],
    }
    for variant in args.variants:
        print(f"\n=== {variant} ===", flush=True)
        report["results"].append(
            _charlm.run_variant(
                variant, data, vocab_size, cfg, args.seed, args.verbose
            )
        )
        report["seconds"] = time.perf_counter() - start
        report["cpu_seconds"] = time.process_time() - cpu_start
        # Written after every variant, so a long run that is stopped
        # keeps the variants it finished.
        with open(stem + ".json", "w") as f:
            json.dump(report, f, indent=2)
        _report.plot_curves(
            report["results"],
            stem + ".png",
            title(report),
            train_label(cfg),
        )

    print(
        f"\nResults ({backend}, {mode}, seed {args.seed}; BPC at inference on"
        " the whole split with the weights of each variant's best validation"
        " epoch; * = lowest; 'last val' = validation BPC at the last epoch; "
        "times include building, training and evaluation):\n"
        + _report.format_table(report["results"], _charlm.BASELINE),
        flush=True,
    )
    if _charlm.BASELINE in args.variants and len(args.variants) > 1:
        print("\n" + _report.verdict(report["results"], _charlm.BASELINE))
    print(
        f"\n{report['seconds']:.0f} s, {report['cpu_seconds']:.0f} s of CPU "
        f"time; wrote {stem}.json and {stem}.png",
        flush=True,
    )


if __name__ == "__main__":
    main()
