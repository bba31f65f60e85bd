"""The character-level language model of `char_lm.py`: data, model, training.

Shared by `char_lm.py` (its command line) and the tests. Keras is imported
inside the functions that need it, so that the command line can parse its
arguments (and `--help`) without starting a backend.
"""

import collections
import math
import os
import time

import numpy as np

VARIANTS = ("baseline", "keras_dropout", "gal", "semeniuta", "zoneout")
BASELINE = "baseline"

# Regularization rates, the same in every mode: recurrent dropout 0.25 (the
# low end of the 0.25-0.5 of Gal's and Semeniuta's papers) and the zoneout
# paper's character-level rates.
RECURRENT_DROPOUT = 0.25
ZONEOUT_C = 0.5
ZONEOUT_H = 0.05

CLIPNORM = 1.0
# Seed of the random block split (`block_split`): fixed, so that every run
# and every training seed sees the same training, validation and test text.
SPLIT_SEED = 0
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
    """Contiguous 90/5/5 % split into train, validation and test."""
    n = len(text)
    a, b = int(0.90 * n), int(0.95 * n)
    return text[:a], text[a:b], text[b:]


def block_split(text, block_chars, sizes, seed):
    """Train, validation and test of `sizes` characters, as random blocks.

    `text` is cut into consecutive blocks of `block_chars` characters;
    `sum(sizes) // block_chars` distinct blocks are drawn at random
    (`numpy.random.default_rng(seed)`) and dealt out in turn to the three
    splits, each of which keeps its blocks in the order of the text. The
    three splits are then samples of the same text, disjoint, and the same
    for every run with the same `seed`.
    """
    counts = []
    for name, size in zip(("train", "validation", "test"), sizes, strict=True):
        if size % block_chars:
            raise ValueError(
                f"The {name} size ({size}) must be a multiple of block_chars "
                f"({block_chars})."
            )
        counts.append(size // block_chars)
    available = len(text) // block_chars
    if sum(counts) > available:
        raise ValueError(
            f"The splits need {sum(counts)} blocks of {block_chars} "
            f"characters; the text ({len(text):,} characters) holds "
            f"{available}."
        )
    drawn = np.random.default_rng(seed).permutation(available)
    splits, start = [], 0
    for count in counts:
        blocks = sorted(drawn[start : start + count])
        start += count
        splits.append(
            "".join(
                text[i * block_chars : (i + 1) * block_chars] for i in blocks
            )
        )
    return tuple(splits)


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
    """The recurrent layer of `variant` (see `char_lm.py`'s docstring)."""
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


def run_variant(variant, data, vocab_size, cfg, seed, verbose=0):
    """Trains `variant` for `cfg["epochs"]` epochs; returns its result dict.

    After every epoch the validation BPC is measured at inference, and, if
    `cfg["train_curve"]` is a number N, the BPC of the first N characters
    of the training split (the train curve); the weights of the best
    validation epoch give the reported validation, test and train BPC.
    `seconds` is wall-clock time, `cpu_seconds` the process's CPU time (all
    threads) for the same span.
    """
    import keras

    keras.utils.set_random_seed(seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    model, eval_model, copy_weights = build_models(
        variant, vocab_size, cfg, seed
    )
    optimizer = keras.optimizers.Adam(cfg["learning_rate"], clipnorm=CLIPNORM)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    units = cfg["units"]
    curve_chars = cfg.get("train_curve")
    curve_ids = data["train"][:curve_chars] if curve_chars else None
    rng = np.random.default_rng(seed)
    history = {
        "train_loss_bpc": [],
        "train_bpc": [],
        "val_bpc": [],
        "epoch_seconds": [],
    }
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
            verbose=verbose,
        )
        copy_weights()
        val = bits_per_char(eval_model, data["val"], units)
        train_loss = fit.history["loss"][-1] / math.log(2.0)
        history["train_loss_bpc"].append(train_loss)
        history["val_bpc"].append(val)
        line = (
            f"  [{variant}] epoch {epoch + 1}/{cfg['epochs']}: training "
            f"loss {train_loss:.3f} bpc (with noise)"
        )
        if curve_ids is not None:
            train_bpc = bits_per_char(eval_model, curve_ids, units)
            history["train_bpc"].append(train_bpc)
            line += f", train {train_bpc:.3f}"
        history["epoch_seconds"].append(time.perf_counter() - t0)
        line += f", validation {val:.3f} bpc"
        if val < best[0]:
            best = (val, epoch + 1, model.get_weights())
            line += "  (best)"
        print(line, flush=True)
    train_seconds = time.perf_counter() - start

    model.set_weights(best[2])
    copy_weights()
    return {
        "variant": variant,
        "seed": seed,
        "val_bpc": best[0],
        "best_epoch": best[1],
        "test_bpc": bits_per_char(eval_model, data["test"], units),
        "train_bpc": bits_per_char(eval_model, data["train"], units),
        "last_val_bpc": history["val_bpc"][-1],
        "epochs": cfg["epochs"],
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
        "params": model.count_params(),
        "history": history,
    }
