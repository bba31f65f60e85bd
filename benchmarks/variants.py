"""What the benchmarks compare: the cases, the variants and their goals.

Every model is `keras.Input((T, D)) -> layer -> Dense(1)`, compiled with
Adam and MSE and `jit_compile` left at the Keras default. A variant is one
recurrent layer: a Keras reference (`keras.layers.LSTM`/`GRU`, plain or with
`recurrent_dropout=0.25`), a package cell in `keras_recdrop.RNN`, or a
ready-made layer (`keras_recdrop.GalLSTM`, ...). Each variant belongs to a
family (LSTM or GRU) and is compared with the two Keras references of its
family: the plain layer (`plain`) and the layer with recurrent dropout
(`rd`).

Nothing here imports Keras at module level: the harness, the report and
the tests read the tables without a backend.
"""

import argparse
import dataclasses
import os

CASES = {
    # name: (batch B, timesteps T, features D, units U)
    "default": (64, 100, 64, 256),
    "long": (64, 1000, 64, 256),
    "wide": (64, 100, 64, 1024),
    "quick": (8, 10, 8, 16),
}

# The Keras references of each family.
REFERENCES = {
    "lstm": {"plain": "lstm", "rd": "lstm_rd"},
    "gru": {"plain": "gru", "rd": "gru_rd"},
}

# The goals of issue 13, as maximal ratios of medians (wall time for speed):
# (what is measured, which reference divides) -> {goal class: limit}.
# References have no goal class; zoneout has looser speed limits.
GOALS = {
    ("train", "plain"): {"regularized": 1.10, "zoneout": 1.15},
    ("train", "rd"): {"regularized": 1.00, "zoneout": 1.00},
    ("infer", "plain"): {"regularized": 1.05, "zoneout": 1.10},
    ("memory", "plain"): {"regularized": 1.10, "zoneout": 1.10},
}


_SHORT = {
    "recurrent_dropout": "rd",
    "zoneout_c": "c",
    "zoneout_h": "h",
    "weight_dropout": "wd",
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One benchmarked layer: `group`, `class_name(units, **kwargs)`.

    `group` is `"keras"` (a `keras.layers` reference), `"cell"` (a package
    cell in `keras_recdrop.RNN`) or `"layer"` (a ready-made layer). The
    family (`"lstm"`/`"gru"`) and the goal class follow from the class.
    """

    group: str
    class_name: str
    kwargs: dict

    @property
    def family(self):
        return "gru" if "GRU" in self.class_name else "lstm"

    @property
    def goal_class(self):
        """`None` (a reference), `"zoneout"` or `"regularized"`."""
        if self.group == "keras":
            return None
        return "zoneout" if "Zoneout" in self.class_name else "regularized"

    @property
    def plain(self):
        return REFERENCES[self.family]["plain"]

    @property
    def rd(self):
        return REFERENCES[self.family]["rd"]

    @property
    def label(self):
        """What the tables print, e.g. `RNN(GalLSTMCell rd=.25)`."""
        if self.group == "keras":
            args = ", ".join(
                f"{k}={_number(v)}" for k, v in self.kwargs.items()
            )
            return f"keras {self.class_name}" + (f"({args})" if args else "")
        args = " ".join(
            k.split("_")[0] if v is True else f"{_SHORT[k]}={_number(v)}"
            for k, v in self.kwargs.items()
        )
        if self.group == "cell":
            return f"RNN({' '.join([self.class_name, args]).strip()})"
        return f"{self.class_name}({args})"

    def build(self, units, implementation):
        """The layer with `units` (package layers: with `implementation`)."""
        import keras

        import keras_recdrop

        if self.group == "keras":
            return getattr(keras.layers, self.class_name)(units, **self.kwargs)
        cls = getattr(keras_recdrop, self.class_name)
        layer = cls(units, implementation=implementation, **self.kwargs)
        return keras_recdrop.RNN(layer) if self.group == "cell" else layer

    def describe(self):
        """The JSON record of this variant."""
        return {
            "label": self.label,
            "family": self.family,
            "group": self.group,
            "goal_class": self.goal_class,
            "plain": self.plain,
            "rd": self.rd,
        }


def _number(value):
    """`0.25` -> `.25`, as the tables print rates."""
    return f"{value:g}".removeprefix("0")


_RD = {"recurrent_dropout": 0.25}
_ZONEOUT_LSTM = {"zoneout_c": 0.5, "zoneout_h": 0.05}
_ZONEOUT_GRU = {"zoneout_h": 0.05}
_WD = {"weight_dropout": 0.25}

VARIANTS = {
    name: Variant(*spec)
    for name, spec in {
        "lstm": ("keras", "LSTM", {}),
        "lstm_rd": ("keras", "LSTM", _RD),
        "gal": ("cell", "GalLSTMCell", _RD),
        "gal_tied": ("cell", "GalLSTMCell", {**_RD, "tied_masks": True}),
        "semeniuta": ("cell", "SemeniutaLSTMCell", _RD),
        "zoneout": ("cell", "ZoneoutLSTMCell", _ZONEOUT_LSTM),
        "gal0": ("cell", "GalLSTMCell", {}),  # no noise: the noise control
        "weight_drop": ("cell", "WeightDropLSTMCell", _WD),
        "layer_gal": ("layer", "GalLSTM", _RD),
        "layer_semeniuta": ("layer", "SemeniutaLSTM", _RD),
        "layer_zoneout": ("layer", "ZoneoutLSTM", _ZONEOUT_LSTM),
        "layer_weight_drop": ("layer", "WeightDropLSTM", _WD),
        "gru": ("keras", "GRU", {}),
        "gru_rd": ("keras", "GRU", _RD),
        "gal_gru": ("cell", "GalGRUCell", _RD),
        "semeniuta_gru": ("cell", "SemeniutaGRUCell", _RD),
        "zoneout_gru": ("cell", "ZoneoutGRUCell", _ZONEOUT_GRU),
        "layer_gal_gru": ("layer", "GalGRU", _RD),
        "layer_semeniuta_gru": ("layer", "SemeniutaGRU", _RD),
        "layer_zoneout_gru": ("layer", "ZoneoutGRU", _ZONEOUT_GRU),
    }.items()
}

# Names `--variants` accepts besides single variants.
GROUPS = {
    "all": tuple(VARIANTS),
    "lstm_all": tuple(n for n, v in VARIANTS.items() if v.family == "lstm"),
    "gru_all": tuple(n for n, v in VARIANTS.items() if v.family == "gru"),
    "cells": tuple(n for n, v in VARIANTS.items() if v.group == "cell"),
    "layers": tuple(n for n, v in VARIANTS.items() if v.group == "layer"),
}


def select(spec):
    """Variant names from a comma-separated `spec`, with their references.

    `spec` names variants and/or groups (`all`, `lstm_all`, `gru_all`,
    `cells`, `layers`). Both Keras references of every named variant's
    family are added, so that every ratio can be computed; the result keeps
    the order of `VARIANTS`. Raises `ValueError` naming unknown entries.
    """
    wanted = set()
    unknown = []
    for entry in (e.strip() for e in spec.split(",")):
        if entry in VARIANTS:
            wanted.add(entry)
        elif entry in GROUPS:
            wanted.update(GROUPS[entry])
        else:
            unknown.append(entry)
    if unknown:
        raise ValueError(
            f"unknown variants {unknown}; choose from "
            f"{sorted(VARIANTS)} or the groups {sorted(GROUPS)}"
        )
    for name in list(wanted):
        wanted.update(REFERENCES[VARIANTS[name].family].values())
    return [name for name in VARIANTS if name in wanted]


def positive_int(text):
    """An `argparse` type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; received {value}")
    return value


def add_arguments(parser):
    """`--backend`, `--variants` and `--implementation`: what is compared."""
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        default=os.environ.get("KERAS_BACKEND", "tensorflow"),
        help="Keras backend (default: $KERAS_BACKEND, else tensorflow).",
    )
    parser.add_argument(
        "--variants",
        default="all",
        help="Comma-separated variants and/or groups (all, lstm_all, "
        "gru_all, cells, layers); the two Keras references of each "
        "variant's family are added. Variants: " + ", ".join(VARIANTS),
    )
    parser.add_argument(
        "--implementation",
        type=int,
        choices=(1, 2),
        default=2,
        help="`implementation` of the package's cells and layers (2).",
    )


def parse_with_names(parser, argv):
    """Parses `argv`; `args.names` is `select(args.variants)`."""
    args = parser.parse_args(argv)
    try:
        args.names = select(args.variants)
    except ValueError as error:
        parser.error(str(error))
    return args


def shape_record(case):
    """`{"B": ..., "T": ..., "D": ..., "U": ...}` of a case."""
    batch, timesteps, features, units = CASES[case]
    return {"B": batch, "T": timesteps, "D": features, "U": units}


def make_model(name, shape, implementation=2):
    """`Input((T, D)) -> variant -> Dense(1)`, compiled with Adam and MSE."""
    import keras

    _, timesteps, features, units = shape
    inputs = keras.Input((timesteps, features))
    hidden = VARIANTS[name].build(units, implementation)(inputs)
    outputs = keras.layers.Dense(1)(hidden)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(optimizer="adam", loss="mse")  # jit_compile: "auto"
    return model


def make_data(shape):
    """The batch every variant trains on: `x (B, T, D)`, `y (B, 1)`."""
    import numpy as np

    batch, timesteps, features, _ = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, timesteps, features)).astype("float32")
    y = rng.standard_normal((batch, 1)).astype("float32")
    return x, y
