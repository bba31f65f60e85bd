"""The examples' logic: the fixes table, the seed statistics, the verdict.

`examples/fixes.py` is run live here on the current backend, so these tests
also prove that the Keras behaviours the demo shows are still what Keras
does.
"""

import inspect
import json
import math
import pathlib
import sys

import keras
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import _charlm  # noqa: E402
import _report  # noqa: E402
import compare_seeds  # noqa: E402
import fixes  # noqa: E402

import keras_recdrop as kr  # noqa: E402

# ------------------------------------------------------------ fixes table
# A Keras with the change proposed in docs/upstream.md (detected by its new
# argument, as a feature, not by version) fixes checks 1-5: the table must
# then say so, and otherwise show each bug as Keras 3.15 and 3.16 have it.
KERAS_HAS_THE_FIXES = (
    "dropout_masks" in inspect.signature(keras.layers.LSTMCell).parameters
)


def test_fixes_modes_differ_in_keras_and_agree_in_the_package():
    result = fixes.implementation_modes()
    if KERAS_HAS_THE_FIXES:
        assert result["keras"] < 1e-5
    else:
        assert result["keras"] > 0.05
    assert result["ours"] < 1e-5


def test_fixes_keras_lstm_layer_cannot_train_with_dropout_in_mode_one():
    # keras.layers.LSTM broadcasts mode 1's four input masks as if they
    # were one, before its fused path; the package's layer trains.
    result = fixes.layer_mode_one_with_dropout()
    assert (result["keras"] is None) is KERAS_HAS_THE_FIXES
    assert result["ours"] is None


def test_fixes_dropout_above_one_is_clamped_by_keras_and_refused_here():
    result = fixes.dropout_above_one()
    if KERAS_HAS_THE_FIXES:
        assert result["keras_stored"] is None
        assert "`dropout`" in result["keras_error"]
        assert "1.5" in result["keras_error"]
    else:
        assert result["keras_error"] is None
        assert result["keras_stored"] == 1.0
        assert result["keras_effect"] in ("no dropout", "every input dropped")
    assert "dropout" in result["ours_error"]
    assert "1.5" in result["ours_error"]


def test_fixes_recurrent_dropout_forces_keras_into_mode_one_only():
    keras_mode = 2 if KERAS_HAS_THE_FIXES else 1
    assert fixes.recurrent_dropout_mode() == {"keras": keras_mode, "ours": 2}


def test_fixes_bidirectional_directions_share_masks_only_in_keras():
    result = fixes.bidirectional_masks()
    if KERAS_HAS_THE_FIXES:
        assert result["keras"] > 0.05
    else:
        assert result["keras"] == 0.0
    assert result["ours"] > 0.05


def test_counting_weights_make_the_final_cell_state_count_updates():
    # Without zoneout every unit is updated at every step: c_T = T exactly,
    # so no unit is "mixed"; the probe counts updates.
    layer = kr.RNN(kr.ZoneoutLSTMCell(fixes.UNITS), return_state=True)
    assert fixes.mixed_unit_share(layer) == 0.0
    _, _, c = layer(fixes._inputs(), training=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(c), fixes.STEPS, rtol=1e-5
    )


def test_fixes_per_step_noise_is_fresh_in_the_package_loop():
    result = fixes.per_step_noise()
    assert result["ours"] > 0.9
    if keras.backend.backend() == "jax":
        # The scan traces the in-loop draw once: one mask for every step.
        assert result["keras"] == 0.0
    else:
        assert result["keras"] > 0.9


def test_fixes_table_wraps_cells_within_their_columns():
    rows = [("check", "a " * 30, "short")]
    table = fixes.format_table(rows, widths=(10, 12, 8))
    assert all(len(line) <= 10 + 12 + 8 + 4 for line in table.splitlines())
    assert table.count("a") == 30 + table.splitlines()[0].count("a")


# ---------------------------------------------------------- seed statistics


def test_paired_t_test_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.normal(2.4, 0.02, 8)
    b = a - 0.03 + rng.normal(0, 0.01, 8)
    t, p = compare_seeds.paired_t_test(a, b)
    expected = stats.ttest_rel(b, a)
    assert t == pytest.approx(expected.statistic, rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-10)


def test_sign_test_is_the_exact_two_sided_binomial_test():
    assert compare_seeds.sign_test(5, 0) == pytest.approx(2 / 2**5)
    assert compare_seeds.sign_test(0, 8) == pytest.approx(2 / 2**8)
    assert compare_seeds.sign_test(3, 2) == 1.0
    # 7 of 9: 2 * (1 + 9 + 36) / 512.
    assert compare_seeds.sign_test(7, 2) == pytest.approx(92 / 512)
    assert compare_seeds.sign_test(0, 0) == 1.0


def _runs(values_by_variant):
    return {
        variant: {seed: {"val_bpc": v} for seed, v in enumerate(values)}
        for variant, values in values_by_variant.items()
    }


def test_compare_pairs_by_seed_and_tells_a_gain_from_the_spread():
    base = [2.40, 2.42, 2.41, 2.43, 2.39]
    runs = _runs(
        {
            "baseline": base,
            "steady": [v - 0.05 for v in base],  # better on every seed
            "noisy": [2.30, 2.50, 2.35, 2.47, 2.38],  # mean -0.01, sd 0.08
            "worse": [v + 0.02 for v in base],
        }
    )
    rows = {
        r["variant"]: r
        for r in compare_seeds.compare(runs, "baseline", "val_bpc")
    }
    assert rows["baseline"]["mean"] == pytest.approx(np.mean(base))
    assert rows["baseline"]["sd"] == pytest.approx(np.std(base, ddof=1))
    steady = rows["steady"]
    assert steady["gain"] == pytest.approx(0.05)
    assert (steady["wins"], steady["losses"]) == (5, 0)
    assert steady["t_p"] == 0.0  # identical gains: no spread at all
    assert steady["exceeds_spread"]
    noisy = rows["noisy"]
    assert noisy["gain"] == pytest.approx(0.01)
    assert not noisy["exceeds_spread"]
    assert noisy["t_p"] > 0.5
    worse = rows["worse"]
    assert worse["gain"] == pytest.approx(-0.02)
    assert (worse["wins"], worse["losses"]) == (0, 5)
    assert not worse["exceeds_spread"]


def test_compare_uses_only_common_seeds_and_flips_sign_for_accuracy():
    runs = {
        "baseline": {s: {"val_accuracy": 0.80} for s in range(4)},
        "reg": {s: {"val_accuracy": 0.85} for s in (1, 2, 3, 7)},
    }
    (_, reg) = compare_seeds.compare(runs, "baseline", "val_accuracy")
    assert reg["pairs"] == 3
    assert reg["gain"] == pytest.approx(0.05)
    assert reg["wins"] == 3


def test_load_runs_reads_one_file_per_seed(tmp_path):
    for seed in (0, 1):
        report = {
            "baseline": "baseline",
            "seed": seed,
            "results": [
                {"variant": "baseline", "val_bpc": 2.4 + seed},
                {"variant": "gal", "seed": seed, "val_bpc": 2.3 + seed},
            ],
        }
        (tmp_path / f"{seed}.json").write_text(json.dumps(report))
    paths = sorted(str(p) for p in tmp_path.glob("*.json"))
    runs, baseline = compare_seeds.load_runs(paths)
    assert baseline == "baseline"
    assert runs["baseline"][1]["val_bpc"] == pytest.approx(3.4)
    assert sorted(runs["gal"]) == [0, 1]
    with pytest.raises(ValueError, match="appears twice with seed 0"):
        compare_seeds.load_runs(paths + paths[:1])


# ------------------------------------------------------------------ report


def _result(variant, val, test, best_epoch=10, last_val=None, epochs=20):
    return {
        "variant": variant,
        "val_bpc": val,
        "test_bpc": test,
        "train_bpc": 1.5,
        "best_epoch": best_epoch,
        "epochs": epochs,
        "last_val_bpc": val if last_val is None else last_val,
        "seconds": 40.0,
        "cpu_seconds": 38.0,
    }


def test_verdict_says_which_regularizers_do_not_beat_the_baseline():
    results = [
        _result("baseline", 2.40, 2.50, best_epoch=9, last_val=2.60),
        _result("gal", 2.35, 2.52),
        _result("zoneout", 2.42, 2.45),
    ]
    text = _report.verdict(results, "baseline")
    lines = text.splitlines()
    assert "overfits" in lines[0] and "epoch 9" in lines[0]
    assert "1 of 2 regularizers beat" in lines[1]
    assert "gal 0.050" in lines[1] and "zoneout +0.020" in lines[1]
    assert "1 of 2 regularizers beat" in lines[2]
    assert "zoneout 0.050" in lines[2] and "gal +0.020" in lines[2]


def test_verdict_does_not_claim_overfitting_when_the_last_epoch_is_best():
    results = [
        _result("baseline", 2.40, 2.50, best_epoch=20),
        _result("gal", 2.45, 2.55),
    ]
    text = _report.verdict(results, "baseline")
    assert "does not overfit" in text
    assert "no regularizer beats the baseline" in text


def test_table_marks_the_lowest_validation_and_test_bpc():
    results = [
        _result("baseline", 2.40, 2.44),
        _result("gal", 2.35, 2.50),
        _result("zoneout", 2.38, 2.42),
    ]
    lines = _report.format_table(results, "baseline").splitlines()
    row = {line.split()[0]: line for line in lines[2:]}
    assert "2.350*" in row["gal"] and "2.500*" not in row["gal"]
    assert "2.420*" in row["zoneout"]
    assert "-0.050" in row["gal"]
    assert sum(line.count("*") for line in lines) == 2


# ------------------------------------------------------------------- data


def test_block_split_draws_disjoint_blocks_of_the_text_reproducibly():
    text = "".join(f"{i:09d}|" for i in range(100))  # 100 distinct blocks
    splits = _charlm.block_split(text, 10, (300, 200, 200), seed=3)
    assert [len(s) for s in splits] == [300, 200, 200]
    index = [[int(s[i : i + 9]) for i in range(0, len(s), 10)] for s in splits]
    assert all(ids == sorted(ids) for ids in index)  # text order kept
    drawn = [i for ids in index for i in ids]
    assert len(set(drawn)) == 70  # disjoint blocks of the text
    assert _charlm.block_split(text, 10, (300, 200, 200), seed=3) == splits
    assert _charlm.block_split(text, 10, (300, 200, 200), seed=4) != splits
    with pytest.raises(ValueError, match="multiple of block_chars"):
        _charlm.block_split(text, 10, (305, 200, 200), seed=3)
    with pytest.raises(ValueError, match="holds 100"):
        _charlm.block_split(text, 10, (800, 200, 200), seed=3)


def test_bits_per_char_of_a_uniform_model_is_log2_of_the_vocabulary():
    cfg = dict(embed_dim=4, units=3, seq_len=5)
    _, eval_model, _ = _charlm.build_models("baseline", 8, cfg, seed=0)
    for layer in eval_model.layers:
        if layer.name == "logits":
            kernel, bias = layer.get_weights()
            layer.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
    ids = np.random.default_rng(0).integers(0, 8, 1000).astype("int32")
    bpc = _charlm.bits_per_char(eval_model, ids, cfg["units"])
    assert bpc == pytest.approx(math.log2(8), rel=1e-6)
