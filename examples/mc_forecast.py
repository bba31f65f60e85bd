"""Monte Carlo dropout forecast of yearly sunspot numbers, with a band.

What it shows
-------------
Gal & Ghahramani (2016) introduced variational (per-sequence) dropout for
recurrent networks as approximate Bayesian inference: keeping the dropout
noise on at prediction time and averaging ``N`` stochastic forward passes
(Monte Carlo dropout) estimates the predictive mean, and the spread of the
passes the model's uncertainty. This example trains a small
``keras_recdrop.GalLSTM`` on the yearly sunspot numbers 1700-2008 (the
``sunspots`` data set that ships with statsmodels, no download), forecasts
each held-out year one step ahead with ``keras_recdrop.mc_predict`` and
reports how often the true value falls inside the predicted 90 % band.

Method
------
The series is transformed to ``sqrt(sunspots)`` (which makes the noise
roughly constant) and standardized with the training years' mean and
standard deviation. Each example is the previous ``--window`` years; the
target is the next year. Targets before 1930 train the model, 1930-1959
validate it (early stopping on the validation loss, and the noise level
below), 1960-2008 are the held-out test years.

For every input, ``mc_predict`` returns the mean ``mu`` and standard
deviation ``s`` of ``--samples`` passes (the model's, "epistemic",
uncertainty). The observation noise variance ``sigma^2`` (Gal's
``tau^-1``) is estimated on the validation years as
``max(0, mean((y - mu)^2 - s^2))``, and the predictive band at level
``--level`` is ``mu +- z * sqrt(s^2 + sigma^2)`` (``z = 1.645`` for 90 %),
mapped back to sunspot numbers by undoing the standardization and the
square root (a monotone map: a year is inside the band in either scale).

Reported on the test years: the coverage of the band (the fraction of
years inside it; 0.90 is the target), the coverage of the narrower band
``mu +- z * s`` (the model's uncertainty alone), the mean band width, and
the RMSE of the Monte Carlo mean and of the plain inference prediction.

Outputs (``--output-dir``, default ``examples/output/``):
``mc_forecast[_quick]_<backend>.png`` (the series, the test forecasts and
both bands) and ``.json`` (the settings and every number above).

Usage::

    python examples/mc_forecast.py --quick
    python examples/mc_forecast.py
    python examples/mc_forecast.py --samples 2000 --recurrent-dropout 0.3

Needs statsmodels (``pip install 'keras-recdrop[examples]'``).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
from _cli import positive_float
from _cli import positive_int
from _cli import rate

HERE = os.path.dirname(os.path.abspath(__file__))

FULL = dict(
    units=64, epochs=400, batch_size=32, learning_rate=3e-3, samples=1000
)
QUICK = dict(
    units=32, epochs=120, batch_size=32, learning_rate=5e-3, samples=300
)
TRAIN_END, VALIDATION_END = 1930, 1960  # first year of validation, of test


def load_sunspots():
    """Years and yearly mean sunspot numbers, 1700-2008 (statsmodels)."""
    try:
        from statsmodels.datasets import sunspots
    except ImportError as error:
        raise SystemExit(
            "mc_forecast.py needs statsmodels, which ships the data set: "
            "pip install 'keras-recdrop[examples]' (or statsmodels)."
        ) from error
    data = sunspots.load().data
    years = np.asarray(data["YEAR"], dtype="int64")
    values = np.asarray(data["SUNACTIVITY"], dtype="float64")
    return years, values


def make_windows(years, values, window):
    """Standardized `sqrt` series cut into (window -> next year) examples.

    Returns the splits `{name: (x, y, target_years)}` and the `(mean,
    std)` of the standardization.
    """
    z = np.sqrt(values)
    train_mask = years < TRAIN_END
    mean, std = z[train_mask].mean(), z[train_mask].std()
    z = (z - mean) / std
    x = np.stack([z[i : i + window] for i in range(len(z) - window)])
    y = z[window:]
    target_years = years[window:]
    splits = {
        "train": target_years < TRAIN_END,
        "val": (target_years >= TRAIN_END) & (target_years < VALIDATION_END),
        "test": target_years >= VALIDATION_END,
    }
    data = {
        name: (
            x[m, :, None].astype("float32"),
            y[m, None].astype("float32"),
            target_years[m],
        )
        for name, m in splits.items()
    }
    return data, (float(mean), float(std))


def to_sunspots(z, scale):
    """Undoes the standardization and the square root (clipped at 0)."""
    mean, std = scale
    return np.square(np.maximum(z * std + mean, 0.0))


def build_model(window, cfg, args):
    import keras

    import keras_recdrop

    model = keras.Sequential(
        [
            keras.Input((window, 1)),
            keras_recdrop.GalLSTM(
                cfg["units"],
                dropout=args.dropout,
                recurrent_dropout=args.recurrent_dropout,
                seed=args.seed,
            ),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(cfg["learning_rate"]), "mse")
    return model


def band_report(y, mu, s, sigma, z_value, scale):
    """Coverage and width of the band `mu +- z sqrt(s^2 + sigma^2)`."""
    total = np.sqrt(s**2 + sigma**2)
    inside = np.abs(y - mu) <= z_value * total
    inside_model = np.abs(y - mu) <= z_value * s
    lower = to_sunspots(mu - z_value * total, scale)
    upper = to_sunspots(mu + z_value * total, scale)
    return {
        "coverage": float(inside.mean()),
        "coverage_model_only": float(inside_model.mean()),
        "mean_width_sunspots": float((upper - lower).mean()),
        "mean_model_std": float(s.mean()),
    }


def plot(path, years, values, test, forecast, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(years, values, color="0.75", lw=1, label="sunspots (all years)")
    ty = test["years"]
    bands = (
        ("total", 0.2, f"{forecast['level']:.0%} predictive band"),
        ("model", 0.35, "model uncertainty only"),
    )
    for name, alpha, label in bands:
        lower, upper = forecast[name]
        ax.fill_between(
            ty, lower, upper, color="tab:blue", alpha=alpha, label=label
        )
    ax.plot(ty, forecast["mean"], color="tab:blue", lw=1.5, label="MC mean")
    ax.plot(ty, test["values"], "k.", ms=5, label="held-out years")
    ax.axvline(VALIDATION_END - 0.5, color="0.4", ls=":", lw=1)
    ax.set_xlim(1900, years[-1] + 1)
    ax.set_xlabel("year")
    ax.set_ylabel("yearly mean sunspot number")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick", action="store_true", help="small, fast configuration"
    )
    p.add_argument("--epochs", type=positive_int, help="override the epochs")
    p.add_argument("--units", type=positive_int, help="override the width")
    p.add_argument(
        "--samples", type=positive_int, help="Monte Carlo passes per input"
    )
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--learning-rate", type=positive_float)
    p.add_argument(
        "--window", type=positive_int, default=22, help="years per input"
    )
    p.add_argument(
        "--dropout", type=rate, default=0.1, help="GalLSTM input dropout"
    )
    p.add_argument(
        "--recurrent-dropout",
        type=rate,
        default=0.25,
        help="GalLSTM recurrent dropout",
    )
    p.add_argument(
        "--level",
        type=rate,
        default=0.9,
        help="probability of the predictive band (default 0.9)",
    )
    p.add_argument("--seed", type=positive_int, default=1)
    p.add_argument(
        "--output-dir",
        default=os.path.join(HERE, "output"),
        help="where the JSON and PNG go (default: examples/output/)",
    )
    p.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="Keras fit verbosity (default: silent)",
    )
    args = p.parse_args(argv)
    if args.level <= 0.0:
        p.error("argument --level: expected a probability in (0, 1), got 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("epochs", "units", "batch_size", "learning_rate", "samples"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)

    import keras

    import keras_recdrop

    years, values = load_sunspots()
    data, scale = make_windows(years, values, args.window)
    backend = keras.backend.backend()
    mode = "quick" if args.quick else "full"
    sizes = {k: len(v[1]) for k, v in data.items()}
    print(
        f"backend {backend}, keras {keras.__version__}, mode {mode}\n"
        f"sunspots {years[0]}-{years[-1]}: train {sizes['train']} / "
        f"val {sizes['val']} / test {sizes['test']} years\nconfig {cfg}",
        flush=True,
    )
    keras.utils.set_random_seed(args.seed)
    model = build_model(args.window, cfg, args)
    start = time.perf_counter()
    (x_tr, y_tr, _), (x_va, y_va, _), (x_te, y_te, years_te) = (
        data["train"],
        data["val"],
        data["test"],
    )
    history = model.fit(
        x_tr,
        y_tr,
        validation_data=(x_va, y_va),
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        callbacks=[
            keras.callbacks.EarlyStopping(
                patience=max(20, cfg["epochs"] // 5),
                restore_best_weights=True,
            )
        ],
        verbose=args.verbose,
    )
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    mu_va, s_va = keras_recdrop.mc_predict(
        model, x_va, samples=cfg["samples"], seed=args.seed
    )
    mu_te, s_te = keras_recdrop.mc_predict(
        model, x_te, samples=cfg["samples"], seed=args.seed + 1
    )
    mc_seconds = time.perf_counter() - start
    sigma = float(np.sqrt(max(0.0, np.mean((y_va - mu_va) ** 2 - s_va**2))))
    z_value = statistics.NormalDist().inv_cdf(0.5 + args.level / 2)
    plain = model.predict(x_te, verbose=0)

    test = band_report(y_te, mu_te, s_te, sigma, z_value, scale)
    val = band_report(y_va, mu_va, s_va, sigma, z_value, scale)
    truth = to_sunspots(y_te[:, 0], scale)
    rmse = {
        "mc_mean": float(
            np.sqrt(np.mean((to_sunspots(mu_te[:, 0], scale) - truth) ** 2))
        ),
        "inference": float(
            np.sqrt(np.mean((to_sunspots(plain[:, 0], scale) - truth) ** 2))
        ),
    }
    mean_te = mu_te[:, 0]
    forecast = {"level": args.level, "mean": to_sunspots(mean_te, scale)}
    for name, spread in (
        ("total", np.sqrt(s_te**2 + sigma**2)[:, 0]),
        ("model", s_te[:, 0]),
    ):
        forecast[name] = tuple(
            to_sunspots(mean_te + sign * z_value * spread, scale)
            for sign in (-1, 1)
        )

    os.makedirs(args.output_dir, exist_ok=True)
    stem = os.path.join(
        args.output_dir,
        f"mc_forecast{'_quick' if args.quick else ''}_{backend}",
    )
    report = {
        "backend": backend,
        "keras_version": keras.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "mode": mode,
        "sizes": sizes,
        "config": cfg,
        "window": args.window,
        "dropout": args.dropout,
        "recurrent_dropout": args.recurrent_dropout,
        "seed": args.seed,
        "level": args.level,
        "epochs_run": len(history.history["loss"]),
        "best_val_mse": float(min(history.history["val_loss"])),
        "observation_sigma": sigma,
        "test": test,
        "validation": val,
        "test_rmse_sunspots": rmse,
        "train_seconds": train_seconds,
        "mc_seconds": mc_seconds,
    }
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=2)
    plot(
        stem + ".png",
        years,
        values,
        {"years": years_te, "values": truth},
        forecast,
        f"Monte Carlo dropout forecast (GalLSTM, {cfg['samples']} passes, "
        f"{backend}, {mode}): {test['coverage']:.0%} of "
        f"{sizes['test']} held-out years inside the {args.level:.0%} band",
    )
    print(
        f"\nheld-out years {VALIDATION_END}-{years[-1]} "
        f"({sizes['test']} one-step-ahead forecasts):\n"
        f"  coverage of the {args.level:.0%} band:        "
        f"{test['coverage']:.3f}\n"
        f"  coverage, model uncertainty only: "
        f"{test['coverage_model_only']:.3f}\n"
        f"  mean band width (sunspots):       "
        f"{test['mean_width_sunspots']:.1f}\n"
        f"  RMSE of the MC mean / inference:  {rmse['mc_mean']:.1f} / "
        f"{rmse['inference']:.1f}\n"
        f"  observation noise sigma (val):    {sigma:.3f} (standardized)\n"
        f"training {train_seconds:.0f} s ({report['epochs_run']} epochs), "
        f"Monte Carlo {mc_seconds:.1f} s; wrote {stem}.json and {stem}.png",
        flush=True,
    )
    return report


if __name__ == "__main__":
    main()
