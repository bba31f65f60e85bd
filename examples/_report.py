"""The character-level comparison's report: table, verdict and plot.

`format_table` prints one row per variant and marks the best held-out
values; `verdict` states the result in words, computed from the numbers
(lower BPC is better); `plot_curves` draws every variant's whole learning
curves. All three read the result dicts of `_charlm.run_variant`.
"""

import os
import platform

# A rise of the baseline's validation BPC after its best epoch smaller than
# this is reported as noise, not as overfitting.
OVERFIT_MARGIN = 0.01


def _by_variant(results, baseline):
    rows = {r["variant"]: r for r in results}
    if baseline not in rows:
        raise ValueError(
            f"The results hold no baseline variant {baseline!r}; variants: "
            f"{sorted(rows)}."
        )
    return rows[baseline], [r for r in results if r["variant"] != baseline]


def format_table(results, baseline="baseline"):
    """One row per variant; `*` marks the lowest validation and test BPC."""
    base = next((r for r in results if r["variant"] == baseline), None)
    best_val = min(r["val_bpc"] for r in results)
    best_test = min(r["test_bpc"] for r in results)
    header = (
        f"{'variant':<14} {'val BPC':>8} {'vs base':>8} {'test BPC':>9} "
        f"{'train BPC':>9} {'best ep':>7} {'last val':>8} {'wall s':>6} "
        f"{'CPU s':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        delta = (
            ""
            if base is None or r is base
            else f"{r['val_bpc'] - base['val_bpc']:+.3f}"
        )
        val = f"{r['val_bpc']:.3f}" + ("*" if r["val_bpc"] == best_val else "")
        test = f"{r['test_bpc']:.3f}" + (
            "*" if r["test_bpc"] == best_test else ""
        )
        epochs = f"{r['best_epoch']}/{r['epochs']}"
        cpu = r.get("cpu_seconds")
        lines.append(
            f"{r['variant']:<14} {val:>8} {delta:>8} {test:>9} "
            f"{r['train_bpc']:>9.3f} {epochs:>7} {r['last_val_bpc']:>8.3f} "
            f"{r['seconds']:>6.0f} {'' if cpu is None else f'{cpu:.0f}':>6}"
        )
    return "\n".join(lines)


def _gains(base, others, key):
    """`(beating, not_beating)`: lists of `(variant, delta)`, best first."""
    deltas = sorted(
        ((r["variant"], r[key] - base[key]) for r in others),
        key=lambda item: item[1],
    )
    return [d for d in deltas if d[1] < 0], [d for d in deltas if d[1] >= 0]


def _split_sentence(split, base, others, key):
    beating, rest = _gains(base, others, key)
    n = len(others)
    if not beating:
        head = (
            f"On {split}, no regularizer beats the baseline ({base[key]:.3f})"
        )
    elif not rest:
        head = (
            f"On {split}, every regularizer beats the baseline "
            f"({base[key]:.3f})"
        )
    else:
        head = (
            f"On {split}, {len(beating)} of {n} regularizers beat the baseline"
            f" ({base[key]:.3f})"
        )
    parts = []
    if beating:
        parts.append(
            "better by "
            + ", ".join(f"{v} {-d:.3f}" for v, d in beating)
            + " BPC"
        )
    if rest:
        parts.append(
            "not beating it: "
            + ", ".join(f"{v} {d:+.3f}" for v, d in rest)
            + " BPC"
        )
    return head + ": " + "; ".join(parts) + "."


def verdict(results, baseline="baseline"):
    """The result in words, computed from `results` (lower BPC is better)."""
    base, others = _by_variant(results, baseline)
    rise = base["last_val_bpc"] - base["val_bpc"]
    if base["best_epoch"] < base["epochs"] and rise >= OVERFIT_MARGIN:
        overfit = (
            f"The unregularized baseline overfits: its validation BPC is best"
            f" at epoch {base['best_epoch']} ({base['val_bpc']:.3f}) and "
            f"rises to {base['last_val_bpc']:.3f} by epoch {base['epochs']}, "
            f"while it fits the training split to {base['train_bpc']:.3f} "
            "BPC at its best epoch."
        )
    else:
        overfit = (
            "The unregularized baseline does not overfit within this budget "
            f"(best validation BPC {base['val_bpc']:.3f} at epoch "
            f"{base['best_epoch']} of {base['epochs']}, "
            f"{base['last_val_bpc']:.3f} at the last): regularization has "
            "little to correct here."
        )
    lines = [
        overfit,
        _split_sentence(
            "validation (best epoch of each)", base, others, "val_bpc"
        ),
        _split_sentence("test (measured once)", base, others, "test_bpc"),
    ]
    return "\n".join(lines)


def plot_curves(results, path, title, train_label="training split"):
    """Whole learning curves of every variant, from the first epoch.

    Left: BPC of `train_label` at inference (or the training loss with
    noise, for runs that did not measure it). Right: validation BPC at
    inference, with each variant's best epoch marked. Both panels share
    their y axis, so the gap between them is the overfitting. A third panel
    magnifies the validation curves from a few epochs before the earliest
    best epoch to the end, where the variants part.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_train, ax_val, zoom) = plt.subplots(
        1, 3, figsize=(15, 4.6), width_ratios=(1, 1, 0.8)
    )
    ax_val.sharey(ax_train)
    inference = all(r["history"].get("train_bpc") for r in results)
    train_key = "train_bpc" if inference else "train_loss_bpc"
    first = max(1, min(r["best_epoch"] for r in results) - 4)
    for r in results:
        val = r["history"]["val_bpc"]
        epochs = range(1, len(val) + 1)
        style = dict(lw=2.2 if r["variant"] == "baseline" else 1.5)
        (line,) = ax_train.plot(
            epochs, r["history"][train_key], label=r["variant"], **style
        )
        star = dict(
            marker="*",
            color=line.get_color(),
            markeredgecolor="black",
            markeredgewidth=0.6,
        )
        ax_val.plot(epochs, val, color=line.get_color(), **style)
        ax_val.plot(r["best_epoch"], r["val_bpc"], markersize=11, **star)
        zoom.plot(
            epochs[first - 1 :],
            val[first - 1 :],
            color=line.get_color(),
            **style,
        )
        zoom.plot(r["best_epoch"], r["val_bpc"], markersize=13, **star)
    ax_train.set_title(
        f"{train_label} (at inference)"
        if inference
        else "training loss (with the training noise)"
    )
    ax_val.set_title("validation split (at inference); * = best epoch")
    ax_train.set_ylabel("bits per character (lower is better)")
    for ax in (ax_train, ax_val, zoom):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in (ax_train, ax_val, zoom):
        ax.set_xlabel("epoch")
    zoom.set_title(f"validation, magnified: epochs {first} and later")
    ax_train.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
