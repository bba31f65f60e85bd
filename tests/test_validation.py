"""Bad input raises a clear error naming the argument; nothing is clamped."""

import keras
import numpy as np
import pytest

import keras_recdrop as kr

CELLS = [kr.ZoneoutLSTMCell, kr.SemeniutaLSTMCell, kr.GalLSTMCell]
RATE_ARGS = {
    kr.ZoneoutLSTMCell: ["dropout", "recurrent_dropout"],
    kr.SemeniutaLSTMCell: ["dropout", "recurrent_dropout"],
    kr.GalLSTMCell: ["dropout", "recurrent_dropout"],
}


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("value", [-0.3, 1.0, 1.5, float("nan"), float("inf")])
def test_dropout_rates_outside_zero_one_raise_value_error(cls, value):
    for arg in RATE_ARGS[cls]:
        with pytest.raises(ValueError, match=rf"`{arg}`.*{value!r}"):
            cls(4, **{arg: value})


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("value", ["0.5", True, None, [0.1]])
def test_dropout_rates_of_wrong_type_raise_type_error(cls, value):
    for arg in RATE_ARGS[cls]:
        with pytest.raises(TypeError, match=rf"`{arg}`"):
            cls(4, **{arg: value})


@pytest.mark.parametrize("arg", ["zoneout_c", "zoneout_h"])
@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_zoneout_rates_outside_closed_interval_raise(arg, value):
    with pytest.raises(ValueError, match=rf"`{arg}` must be in \[0, 1\]"):
        kr.ZoneoutLSTMCell(4, **{arg: value})


@pytest.mark.parametrize("arg", ["zoneout_c", "zoneout_h"])
def test_zoneout_accepts_one_and_zero_and_numpy_scalars(arg):
    for value in (0, 1, 1.0, np.float32(0.25)):
        cell = kr.ZoneoutLSTMCell(4, **{arg: value})
        assert getattr(cell, arg) == float(value)
        assert isinstance(getattr(cell, arg), float)


@pytest.mark.parametrize("arg", ["zoneout_c", "zoneout_h"])
def test_zoneout_rate_of_wrong_type_raises_type_error(arg):
    for value in ("0.5", False, None):
        with pytest.raises(TypeError, match=rf"`{arg}`"):
            kr.ZoneoutLSTMCell(4, **{arg: value})


@pytest.mark.parametrize("cls", CELLS)
def test_rates_are_stored_exactly_as_given(cls):
    cell = cls(4, dropout=0.999, recurrent_dropout=0.0)
    assert cell.dropout == 0.999 and cell.recurrent_dropout == 0.0


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize(
    "units,error",
    [
        (0, ValueError),
        (-3, ValueError),
        (2.5, TypeError),
        ("8", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_units_must_be_a_positive_integer(cls, units, error):
    with pytest.raises(error, match=r"`units`"):
        cls(units)


@pytest.mark.parametrize("cls", CELLS)
def test_units_accepts_numpy_integers(cls):
    assert cls(np.int64(3)).units == 3


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("value", [0, 3, -1])
def test_unknown_implementation_raises_value_error(cls, value):
    with pytest.raises(ValueError, match=rf"`implementation`.*{value}"):
        cls(4, implementation=value)


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("value", ["2", True, 2.0])
def test_implementation_of_wrong_type_raises_type_error(cls, value):
    with pytest.raises(TypeError, match=r"`implementation`"):
        cls(4, implementation=value)


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("arg", ["tied_masks", "use_bias", "unit_forget_bias"])
def test_boolean_flags_reject_non_booleans(cls, arg):
    with pytest.raises(TypeError, match=rf"`{arg}`"):
        cls(4, **{arg: "yes"})


@pytest.mark.parametrize("cls", CELLS)
def test_dropout_masks_must_be_per_gate_or_shared(cls):
    with pytest.raises(ValueError, match=r"`dropout_masks`.*'tied'"):
        cls(4, dropout_masks="tied")
    with pytest.raises(ValueError, match=r"`dropout_masks`.*True"):
        cls(4, dropout_masks=True)


@pytest.mark.parametrize("cls", CELLS)
def test_tied_masks_and_dropout_masks_that_contradict_raise(cls):
    with pytest.raises(ValueError, match=r"`tied_masks` and `dropout_masks`"):
        cls(4, tied_masks=False, dropout_masks="shared")
    # The two spellings of the same choice agree, and either alone decides.
    assert cls(4, tied_masks=True, dropout_masks="shared").tied_masks
    assert cls(4, tied_masks=True).dropout_masks == "shared"
    assert cls(4, dropout_masks="shared").tied_masks
    assert not cls(4).tied_masks and cls(4).dropout_masks == "per_gate"


def test_semeniuta_per_step_must_be_boolean():
    with pytest.raises(TypeError, match=r"`per_step`"):
        kr.SemeniutaLSTMCell(4, per_step=1)


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("seed", [1.5, "1", True])
def test_seed_must_be_an_integer(cls, seed):
    with pytest.raises(TypeError, match=r"`seed`"):
        cls(4, seed=seed)


@pytest.mark.parametrize("cls", CELLS)
def test_step_input_of_wrong_rank_raises_value_error(cls):
    cell = cls(4)
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        cell(np.ones((2, 3, 5), "float32"), [np.zeros((2, 4), "float32")] * 2)


@pytest.mark.parametrize("cls", CELLS)
def test_sequence_of_wrong_rank_raises_value_error(cls):
    layer = kr.RNN(cls(4))
    with pytest.raises(ValueError):
        layer(np.ones((2, 5), "float32"))


def test_keras_clamps_what_this_package_rejects():
    """Documents the upstream behaviour the package refuses to copy."""
    with pytest.raises(ValueError):
        kr.GalLSTMCell(4, dropout=1.5)
    try:
        keras_cell = keras.layers.LSTMCell(4, dropout=1.5)
    except ValueError:
        pytest.skip("this Keras validates rates too (docs/upstream.md)")
    assert keras_cell.dropout == 1.0


@pytest.mark.parametrize(
    "arg",
    [
        "return_sequences",
        "return_state",
        "go_backwards",
        "stateful",
        "unroll",
        "zero_output_for_mask",
        "stateful_masks",
    ],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: kr.RNN(kr.ZoneoutLSTMCell(3), **kw),
        lambda **kw: kr.GalGRU(3, **kw),
    ],
    ids=["RNN", "GalGRU"],
)
def test_layer_flags_reject_non_booleans_naming_them(make, arg):
    # Keras's RNN takes `return_sequences="no"` as true.
    with pytest.raises(TypeError, match=f"`{arg}`.*'no'"):
        make(**{arg: "no"})
    with pytest.raises(TypeError, match=f"`{arg}`.*1"):
        make(**{arg: 1})
