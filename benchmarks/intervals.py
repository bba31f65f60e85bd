"""Intervals of the benchmark's ratios, the verdict rule and the stop rule.

Every timing ratio the benchmark reports compares a variant with a
reference measured in the same run, round by round. Timing is round-robin
(`harness.time_round_robin`): round `i` of every variant ran within
seconds of the others, so a slow phase of a shared machine slows all
variants of that round alike. The ratio is therefore taken **per round**,
`variant[i] / reference[i]`, where that shared part cancels, and the
reported ratio is the **median of the per-round ratios** (`paired_ratio`).
Its interval is a **percentile bootstrap over the rounds**: draw as many
rounds as were timed, with replacement; take the median of their ratios;
repeat `RESAMPLES` times; the interval is the central `CONFIDENCE` of those
medians (the 2.5th and 97.5th percentiles). A reference divided by itself
is `1` with the interval `[1, 1]`.

Why not the ratio of the two medians (what schema 3 reported): on a
machine whose speed jumps between two levels from round to round (the
2-vCPU EPYC of docs/benchmarks.md read Keras's LSTM inference at 48 ms in
some rounds and 70 ms in others, the variants alike), each median lands
in either level by chance; the bootstrap ratio of medians of such a run
was 0.18-0.23 wide where the median of the per-round ratios was 0.02
wide; on quiet runs both estimators read within about 0.02 of each other
(docs/benchmarks.md, "Method"). Series of different lengths (a
variant whose memory process failed) have no rounds in common; they fall
back to the ratio of medians with unpaired draws (`resampled_medians`),
as do the memory ratios, whose samples are processes, not rounds.

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


def paired_ratio(
    numerator,
    denominator,
    confidence=CONFIDENCE,
    resamples=RESAMPLES,
    seed=SEED,
):
    """`(ratio, [low, high])` of two series of the same rounds.

    `ratio` is the median of the per-round ratios `numerator[i] /
    denominator[i]`; the interval bootstraps it over the rounds (see the
    module). `(None, None)` if either series is missing, the lengths
    differ, there are fewer than `MIN_SAMPLES` rounds, or a reference
    sample is not positive.
    """
    if numerator is None or denominator is None:
        return None, None
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    length = len(denominator)
    if len(numerator) != length or length < MIN_SAMPLES:
        return None, None
    if np.any(denominator <= 0):
        return None, None
    ratios = numerator / denominator
    rng = np.random.default_rng(seed)
    rounds = rng.integers(0, length, size=(resamples, length))
    medians = np.median(ratios[rounds], axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(medians, [tail, 1.0 - tail])
    return float(np.median(ratios)), [float(low), float(high)]


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
    """Intervals of the timing ratios: `{(name, reference): [low, high] or
    None}` for each pair of names of `samples` (`{name: [values in round
    order]}`): `paired_ratio`'s for series of the same rounds, else the
    unpaired ratio of medians (`resampled_medians`)."""
    medians = None
    found = {}
    for name, reference in pairs:
        ratio, interval = paired_ratio(
            samples.get(name),
            samples.get(reference),
            confidence,
            resamples,
            seed,
        )
        if ratio is None:
            if medians is None:
                medians = resampled_medians(samples, resamples, seed)
            interval = ratio_interval(
                medians.get(name), medians.get(reference), confidence
            )
        found[name, reference] = interval
    return found


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
