"""Intervals of the benchmark's ratios, the verdict rule and the stop rule.

Every ratio the benchmark reports divides a variant's median by a
reference's median, measured in the same run. Its interval is a
**percentile bootstrap over the timed rounds**: draw as many rounds as were
timed, with replacement; take each variant's median over the drawn rounds;
divide; repeat `RESAMPLES` times; the interval is the central
`CONFIDENCE` of those ratios (the 2.5th and 97.5th percentiles).

The bootstrap is **paired**: every series of the same length is resampled
with the same rounds. Timing is round-robin (`harness.time_round_robin`):
round `i` of every variant ran within seconds of the others, so a slow
phase of a shared machine slows all variants of that round alike; drawing
the same rounds for the variant and its reference keeps that shared part
out of the ratio's spread, as the ratio of medians itself does. A
reference divided by itself has the interval `[1, 1]`.

The draws use a fixed seed (`SEED`): the same samples always give the same
intervals, so a JSON file's intervals can be recomputed from its
`samples_ms`.

What the bootstrap assumes: rounds are exchangeable (no drift within a run
that affects the variants differently, such as a thermal or noisy-neighbour
phase that hits one variant's slot of every round). It says how precisely
this run measured its ratios, not how much another machine, another load
or another day would move them.

**Verdict** (`verdict`): a goal is a maximal ratio. It is `met` when the
interval's upper bound is at most the goal, `missed` when its lower bound is
above the goal, and `unresolved` when the interval straddles the goal or
there is no interval (fewer than `MIN_SAMPLES` samples).

**Stop rule** (`WidthStop`): after `--min-rounds`, the timing stops as soon
as every ratio that has a goal has an interval narrower than the target
width.
"""

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
MIN_SAMPLES = 2  # fewer samples give no interval


def resampled_medians(samples, resamples=RESAMPLES, seed=SEED):
    """Bootstrap medians of each series.

    Args:
        samples: dict name -> sequence of numbers, in round order.
        resamples: number of bootstrap draws.
        seed: seed of the draws.

    Returns:
        dict name -> array of `resamples` medians, one per draw of rounds
        with replacement, for every series of at least `MIN_SAMPLES`
        values. Series of the same length are drawn with the same rounds
        (paired); series of another length get their own draws (a variant
        whose memory process failed has fewer samples than its reference,
        and its rounds no longer line up).
    """
    rng = np.random.default_rng(seed)
    arrays = {
        name: np.asarray(values, dtype=float)
        for name, values in samples.items()
        if values is not None and len(values) >= MIN_SAMPLES
    }
    medians = {}
    for length in sorted({len(a) for a in arrays.values()}):
        rounds = rng.integers(0, length, size=(resamples, length))
        for name, array in arrays.items():
            if len(array) == length:
                medians[name] = np.median(array[rounds], axis=1)
    return medians


def ratio_interval(numerator, denominator, confidence=CONFIDENCE):
    """`[low, high]`: the central `confidence` of the bootstrap ratios
    `numerator / denominator` (arrays of `resampled_medians`), or `None` if
    either is missing or a resampled denominator is not positive."""
    if numerator is None or denominator is None:
        return None
    if np.any(denominator <= 0):
        return None
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(numerator / denominator, [tail, 1.0 - tail])
    return [float(low), float(high)]


def ratio_intervals(
    samples, pairs, confidence=CONFIDENCE, resamples=RESAMPLES, seed=SEED
):
    """Intervals of median ratios: `{(name, reference): [low, high] or
    None}` for each pair of names of `samples` (see `resampled_medians`)."""
    medians = resampled_medians(samples, resamples, seed)
    return {
        (name, reference): ratio_interval(
            medians.get(name), medians.get(reference), confidence
        )
        for name, reference in pairs
    }


def width(interval):
    """`high - low`, or `None` without an interval."""
    return None if interval is None else interval[1] - interval[0]


def verdict(interval, limit):
    """`"met"` if the interval's upper bound is at most `limit`, `"missed"`
    if its lower bound is above it, else (it straddles the limit, or there
    is no interval) `"unresolved"`."""
    if interval is None:
        return "unresolved"
    low, high = interval
    if high <= limit:
        return "met"
    if low > limit:
        return "missed"
    return "unresolved"


def too_wide(widths, target):
    """The keys of `widths` (a dict of widths or `None`) not narrower than
    `target`, widest first, those without an interval before all."""
    wide = [k for k, w in widths.items() if w is None or w >= target]
    return sorted(
        wide, key=lambda k: (widths[k] is not None, -(widths[k] or 0))
    )


class WidthStop:
    """The adaptive stop of `harness.time_round_robin`.

    Called after a round with the samples so far (`{kind: {name:
    [seconds]}}`), it answers whether every ratio that has a goal has an
    interval narrower than `target`; it logs the widest one.

    Args:
        ratios: `(kind, name, reference)` triples, the ratios that have a
            goal (`harness.goal_ratios`).
        target: the interval width to reach.
        log: a function of one string.
        labels: dict name -> label, for the log.
    """

    def __init__(
        self,
        ratios,
        target,
        log=lambda _: None,
        labels=None,
        confidence=CONFIDENCE,
        resamples=RESAMPLES,
        seed=SEED,
    ):
        self.ratios = list(ratios)
        self.target = target
        self.log = log
        self.labels = labels or {}
        self.confidence = confidence
        self.resamples = resamples
        self.seed = seed

    def widths(self, samples):
        """`{(kind, name, reference): width or None}` of the samples."""
        out = {}
        for kind in sorted({kind for kind, _, _ in self.ratios}):
            pairs = [(n, r) for k, n, r in self.ratios if k == kind]
            intervals = ratio_intervals(
                samples.get(kind, {}),
                pairs,
                self.confidence,
                self.resamples,
                self.seed,
            )
            for (name, reference), interval in intervals.items():
                out[kind, name, reference] = width(interval)
        return out

    def __call__(self, samples):
        widths = self.widths(samples)
        wide = too_wide(widths, self.target)
        rounds = max(
            (len(v) for kind in samples.values() for v in kind.values()),
            default=0,
        )
        if not wide:
            widest = max(widths.values(), default=0.0)
            self.log(
                f"  round {rounds}: every goal ratio's interval is narrower "
                f"than {self.target:g} (widest {widest:.3f})"
            )
            return True
        kind, name, reference = wide[0]
        value = widths[wide[0]]
        self.log(
            f"  round {rounds}: {len(wide)} of {len(widths)} goal ratios "
            f"not yet narrower than {self.target:g}; widest "
            f"{'no interval' if value is None else f'{value:.3f}'} "
            f"({self.labels.get(name, name)} {kind} / "
            f"{self.labels.get(reference, reference)})"
        )
        return False
