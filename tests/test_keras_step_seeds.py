"""The cells in a plain `keras.layers.RNN` that passes per-step seeds.

With the Keras change proposed in docs/upstream.md (patches 0006 and 0007
in docs/upstream/), `keras.layers.RNN` gives every cell whose `call` takes a
`step_seed` argument a stateless seed for every time step, drawn before its
loop from the cell's seed generator. The package's cells then draw their
per-step noise from it, so zoneout and Semeniuta's per-step masks work in a
plain `keras.layers.RNN` inside a JAX `lax.scan` (tests/test_integration.py
fits them there). No released Keras has the feature, so these tests skip;
scripts/upstream-check.sh runs them against the patched Keras.
"""

import keras
import numpy as np
import pytest
from probes import binomial_bound
from probes import to_numpy
from probes import zoneout_h_decisions

import keras_recdrop as kr
from keras_recdrop import _compat

pytestmark = pytest.mark.skipif(
    not _compat.keras_rnn_passes_step_seeds(),
    reason=(
        f"Keras {keras.__version__} passes no per-step seeds to cells (the "
        "`step_seed` cell argument proposed in docs/upstream.md); "
        "scripts/upstream-check.sh runs these tests on the patched Keras"
    ),
)

CONFIGS = {
    "zoneout": lambda: kr.ZoneoutLSTMCell(4, zoneout_c=0.5, zoneout_h=0.3),
    "semeniuta": lambda: kr.SemeniutaLSTMCell(4, recurrent_dropout=0.4),
    "zoneout_gru": lambda: kr.ZoneoutGRUCell(4, zoneout_h=0.3),
    "gal": lambda: kr.GalLSTMCell(4, dropout=0.3, recurrent_dropout=0.4),
    "stacked": lambda: keras.layers.StackedRNNCells(
        [
            kr.ZoneoutLSTMCell(4, zoneout_h=0.3, seed=5),
            kr.GalLSTMCell(4, recurrent_dropout=0.4, seed=6),
            kr.SemeniutaLSTMCell(4, recurrent_dropout=0.4, seed=7),
        ]
    ),
}


def test_zoneout_decisions_are_fresh_at_every_step_in_a_plain_rnn_scan():
    # unroll=False: on JAX the loop is a lax.scan, traced once.
    z = 0.3
    kept = zoneout_h_decisions(z, layer_cls=keras.layers.RNN)
    assert abs(kept.mean() - z) < binomial_bound(z, kept.size)
    # Independent steps agree with probability z^2 + (1 - z)^2; a repeated
    # draw would agree everywhere.
    same = z**2 + (1 - z) ** 2
    for t in range(2, kept.shape[1]):
        agreement = np.mean(kept[:, t] == kept[:, 1])
        assert abs(agreement - same) < binomial_bound(same, kept[:, t].size)


def _training_outputs(layer_cls, name, calls=3):
    """`calls` training outputs of a fresh `layer_cls` around a config."""
    keras.utils.set_random_seed(3)
    x = np.random.default_rng(1).standard_normal((6, 5, 3)).astype("float32")
    layer = layer_cls(CONFIGS[name](), return_sequences=True)
    return [to_numpy(layer(x, training=True)) for _ in range(calls)]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_plain_rnn_noise_is_reproducible_from_the_seed_and_fresh(name):
    """The seeds come from the cells' seed generators: one seed reproduces
    every call, and each call draws fresh noise."""
    first = _training_outputs(keras.layers.RNN, name)
    again = _training_outputs(keras.layers.RNN, name)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.abs(first[0] - first[1]).max() > 1e-3


def test_plain_rnn_draws_no_step_seeds_for_cells_without_per_step_noise():
    """Gal's cells need no per-step seed (`uses_step_seed` is false): the
    plain loop draws nothing more than `keras_recdrop.RNN`, call after
    call, so both give the same masks."""
    ours = _training_outputs(kr.RNN, "gal")
    plain = _training_outputs(keras.layers.RNN, "gal")
    for a, b in zip(ours, plain, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-6)
