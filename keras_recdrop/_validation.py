"""Argument checks shared by every class of the package.

Keras clamps an invalid dropout rate silently (`dropout=1.5` becomes 1.0,
which then means *no* dropout). Here every bad value raises a `TypeError`
(wrong type) or `ValueError` (wrong value) naming the argument and the value.
"""

import math
import numbers


def check_rate(name, value, *, allow_one=False):
    """Returns `value` as a float, or raises if it is not a valid rate.

    Args:
        name: Argument name, used in the error message.
        value: The rate given by the user.
        allow_one: If `True` the valid range is `[0, 1]` (zoneout: 1 freezes
            the state); otherwise `[0, 1)` (dropout: 1 would drop everything
            and make the inverted scale `1 / (1 - p)` infinite).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a float in "
            f"[0, {'1]' if allow_one else '1)'}; received {name}={value!r} "
            f"of type {type(value).__name__}."
        )
    value = float(value)
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if math.isnan(value) or value < 0.0 or not upper_ok:
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(
            f"Argument `{name}` must be in {interval}; received "
            f"{name}={value!r}. Rates are never clamped."
        )
    return value


def check_positive_int(name, value):
    """Returns `value` as an int, or raises if it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be a positive integer; received "
            f"{name}={value!r} of type {type(value).__name__}."
        )
    if value <= 0:
        raise ValueError(
            f"Argument `{name}` must be a positive integer; received "
            f"{name}={value!r}."
        )
    return int(value)


def check_bool(name, value):
    """Returns `value`, or raises if it is not a Python or NumPy bool."""
    if type(value).__name__ not in ("bool", "bool_"):
        raise TypeError(
            f"Argument `{name}` must be a bool; received {name}={value!r} "
            f"of type {type(value).__name__}."
        )
    return bool(value)


def check_int_choice(name, value, choices):
    """Returns `value` as an int, or raises if it is not one of `choices`.

    `True` is not `1` and `2.0` is not `2`: a value that is not an integer
    raises a `TypeError`, an integer outside `choices` a `ValueError`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be an integer, one of {list(choices)}; "
            f"received {name}={value!r} of type {type(value).__name__}."
        )
    if value not in choices:
        raise ValueError(
            f"Argument `{name}` must be one of {list(choices)}; received "
            f"{name}={value!r}."
        )
    return int(value)


def check_choice(name, value, choices):
    """Returns `value`, or raises a `ValueError` if it is not in `choices`.

    Compared by type and value, so `1` is not `True` and `"True"` is not
    `True`.
    """
    if not any(
        type(value) is type(choice) and value == choice for choice in choices
    ):
        raise ValueError(
            f"Argument `{name}` must be one of {list(choices)}; received "
            f"{name}={value!r}."
        )
    return value


def check_non_negative_float(name, value):
    """Returns `value` as a float, or raises if it is not a finite `>= 0`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a non-negative float; received "
            f"{name}={value!r} of type {type(value).__name__}."
        )
    value = float(value)
    if math.isnan(value) or math.isinf(value) or value < 0.0:
        raise ValueError(
            f"Argument `{name}` must be a finite non-negative float; "
            f"received {name}={value!r}."
        )
    return value


def check_seed(value):
    """Returns the seed, or raises if it is not `None` or an integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            "Argument `seed` must be an integer or None; received "
            f"seed={value!r} of type {type(value).__name__}."
        )
    return int(value)


DROPOUT_MASKS = ("per_gate", "shared")


def check_mask_sharing(tied_masks, dropout_masks):
    """`tied_masks` as a bool, from either of its two spellings.

    `dropout_masks="per_gate" | "shared"` is the argument proposed for
    `keras.layers.LSTM`/`GRU` and their cells (docs/upstream.md), so a
    model written for a Keras that has it runs unchanged; `tied_masks` is
    the package's own. `tied_masks=None` follows `dropout_masks`; a bool
    decides unless `dropout_masks` asks for the opposite sharing explicitly
    (`"shared"` with `tied_masks=False`), which raises.
    """
    dropout_masks = check_choice("dropout_masks", dropout_masks, DROPOUT_MASKS)
    shared = dropout_masks == "shared"
    if tied_masks is None:
        return shared
    tied_masks = check_bool("tied_masks", tied_masks)
    if shared and not tied_masks:
        raise ValueError(
            "Arguments `tied_masks` and `dropout_masks` contradict each "
            "other: `dropout_masks` asks for one mask shared by all gates, "
            "`tied_masks` for one per gate; received tied_masks=False, "
            "dropout_masks='shared'. Pass only one of them."
        )
    return tied_masks
