"""The stateless draws: on the device, 16-bit Bernoulli decisions.

Per-step decisions compare 16-bit random integers with
`round(p * 2^16)`: probabilities are quantized to multiples of 2^-16, and
no coarser. Every draw is a stateless draw from a seed tensor, computed on
the device: on PyTorch no draw copies a seed to the host.
"""

import keras
import numpy as np
import pytest
from keras import ops
from probes import binomial_bound
from probes import to_numpy

import keras_recdrop as kr
from keras_recdrop import _stateless
from keras_recdrop import noise


def _seed(a, b):
    return ops.convert_to_tensor(np.array([a, b], "int32"))


@pytest.mark.parametrize("p", [0.3, 0.05, 0.5 + 2**-18, 1 - 2**-17, 0.0, 1.0])
def test_per_step_bernoulli_probability_is_quantized_to_2_pow_minus_16(
    p, monkeypatch
):
    # Every 16-bit value exactly once: the decisions count exactly the
    # values below the threshold.
    every_value = ops.convert_to_tensor(
        np.arange(2**16, dtype="int32").reshape(1, 2**16)
    )
    monkeypatch.setattr(
        noise._stateless, "bits16", lambda shape, seed: every_value
    )
    spec = (("keep", p, 2**16),)
    decisions = to_numpy(
        noise.draw_step_noise(spec, (1,), noise.StatelessSeed(_seed(1, 2)))
    )
    assert decisions.sum() == round(p * 2**16)
    assert decisions.mean() == noise.quantized_probability(p)
    assert abs(noise.quantized_probability(p) - p) <= 2**-17


@pytest.mark.parametrize("p", [0.3, 0.05, 0.5 + 2**-18, 1 - 2**-17, 0.0])
@pytest.mark.parametrize("seed_kind", ["stateless", "generator"])
def test_weight_mask_keep_probability_is_quantized_to_2_pow_minus_16(
    p, seed_kind, monkeypatch
):
    # DropConnect's weight mask: the same 16-bit decisions, with `1 - p`.
    every_value = ops.convert_to_tensor(
        np.arange(2**16, dtype="int32").reshape(1, 2**16)
    )
    monkeypatch.setattr(
        noise._stateless, "bits16", lambda shape, seed: every_value
    )
    seed = (
        noise.StatelessSeed(_seed(1, 2))
        if seed_kind == "stateless"
        else keras.random.SeedGenerator(3)
    )
    (keep,) = noise.draw_keep_decisions(1, (2**16,), p, seed)
    keep = to_numpy(keep)
    assert keep.shape == (2**16,) and keep.dtype == bool
    assert keep.sum() == 2**16 - round(p * 2**16)
    assert abs(keep.mean() - (1 - p)) <= 2**-17


def test_stateless_bits_are_uniform_16_bit_values():
    values = to_numpy(_stateless.bits16((512, 257), _seed(5, 6)))
    assert values.dtype == np.int32
    assert values.min() >= 0 and values.max() < 2**16
    counts = np.bincount(values.ravel() >> 12, minlength=16)
    expected = values.size / 16
    chi_square = np.sum((counts - expected) ** 2 / expected)
    assert chi_square < 60  # 15 degrees of freedom; p < 1e-6 beyond
    # The two halves of a word and neighbouring values are uncorrelated.
    low, high = values[:, :128].ravel(), values[:, 129:].ravel()
    assert abs(np.corrcoef(low, high)[0, 1]) < 5 / np.sqrt(low.size)
    flat = values.ravel().astype("float64")
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 5 / np.sqrt(flat.size)


def test_stateless_draws_depend_only_on_the_seed():
    a = to_numpy(_stateless.bits16((64, 100), _seed(7, 8)))
    np.testing.assert_array_equal(
        a, to_numpy(_stateless.bits16((64, 100), _seed(7, 8)))
    )
    for other in (_seed(7, 9), _seed(8, 8)):
        b = to_numpy(_stateless.bits16((64, 100), other))
        # Independent values agree with probability 2^-16.
        assert np.mean(a == b) < 0.01
    u = to_numpy(_stateless.uniform((1000,), _seed(7, 8)))
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0


def test_step_seeds_are_distinct_and_advance_the_generator_once():
    generator = keras.random.SeedGenerator(3)
    before = to_numpy(generator.state).copy()
    seeds = to_numpy(noise.draw_step_seeds(generator, 1000))
    assert seeds.shape == (1000, 2) and seeds.dtype == np.int32
    assert seeds.min() >= 0
    assert len({tuple(row) for row in seeds}) == 1000
    np.testing.assert_array_equal(to_numpy(generator.state) - before, [0, 1])


def test_zoneout_decisions_use_the_quantized_probability():
    # z = 0.3 + 2^-18 keeps the previous value with probability
    # round(z * 2^16) / 2^16, measured on many decisions.
    z = 0.3 + 2**-18
    spec = (("c", z, 4096),)
    seeds = noise.draw_step_seeds(keras.random.SeedGenerator(4), 64)
    rows = [
        to_numpy(
            noise.draw_step_noise(spec, (16,), noise.StatelessSeed(seeds[t]))
        )
        for t in range(64)
    ]
    decisions = np.stack(rows)
    q = noise.quantized_probability(z)
    assert abs(decisions.mean() - q) < binomial_bound(q, decisions.size)
    # Fresh at every step: consecutive steps agree as independent draws do.
    agree = np.mean(decisions[1:] == decisions[:-1])
    expected = q**2 + (1 - q) ** 2
    assert abs(agree - expected) < binomial_bound(expected, decisions[1:].size)


HOST_COPIES = ("item", "tolist", "numpy", "__int__", "__index__", "__float__")


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the host-copy check instruments torch tensors",
)
@pytest.mark.parametrize(
    "make",
    [
        lambda: kr.RNN(
            kr.ZoneoutLSTMCell(5, zoneout_c=0.4, zoneout_h=0.2, dropout=0.2),
            return_sequences=True,
        ),
        lambda: kr.RNN(
            kr.SemeniutaGRUCell(5, recurrent_dropout=0.3),
            return_sequences=True,
        ),
        lambda: kr.GalLSTM(5, dropout=0.2, recurrent_dropout=0.3),
        lambda: kr.WeightDropLSTM(5, weight_dropout=0.3),
    ],
    ids=["zoneout", "semeniuta_gru", "gal", "weight_drop"],
)
def test_training_draws_copy_nothing_to_the_host(make, monkeypatch):
    """No draw synchronises the device: every seed stays a tensor."""
    import torch

    x = torch.tensor(
        np.random.default_rng(0).standard_normal((4, 7, 3)), dtype=torch.float32
    )
    layer = make()
    layer(x, training=True)  # builds outside the check
    copies = []
    for name in HOST_COPIES:
        original = getattr(torch.Tensor, name)

        def record(self, *args, _name=name, _original=original, **kwargs):
            copies.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, record)
    y = layer(x, training=True)
    y.sum().backward()
    assert copies == []
