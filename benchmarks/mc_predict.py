"""What `keras_recdrop.mc_predict` costs when it is called in a loop.

A small forecaster (`Input((T, 1))` -> `GalLSTM(16)` -> `ZoneoutLSTM(16)`
-> `BatchNormalization` -> `Dense(1)`, the shape of the sunspot example)
and `x` of `--rows` sequences. Reported on the backend of
`KERAS_BACKEND`, in one process:

* the first call of `mc_predict(model, x, samples=S)` (compilation
  included);
* the median of `--repeats` further calls, unseeded and with a seed;
* the median wall time of `S` warm `model.predict_on_batch(x)` calls, the
  reference: a repeated call should cost at most twice that (it runs `S`
  noisy passes, batched).

Usage:

    KERAS_BACKEND=jax python benchmarks/mc_predict.py [--samples 200]
        [--rows 32] [--timesteps 24] [--repeats 5] [--output PATH]
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in (
        ("samples", 200),
        ("rows", 32),
        ("timesteps", 24),
        ("repeats", 5),
    ):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--output", default=None)
    return parser.parse_args(argv)


def build(timesteps):
    import keras

    import keras_recdrop as kr

    keras.utils.set_random_seed(0)
    inputs = keras.Input((timesteps, 1))
    h = kr.GalLSTM(
        16, dropout=0.1, recurrent_dropout=0.2, return_sequences=True
    )(inputs)
    h = kr.ZoneoutLSTM(16, zoneout_c=0.3, zoneout_h=0.1)(h)
    h = keras.layers.BatchNormalization()(h)
    return keras.Model(inputs, keras.layers.Dense(1)(h))


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np

    import keras_recdrop as kr

    model = build(args.timesteps)
    x = np.random.default_rng(0).standard_normal((args.rows, args.timesteps, 1))
    x = x.astype("float32")
    first = timed(kr.mc_predict, model, x, samples=args.samples)
    unseeded = [
        timed(kr.mc_predict, model, x, samples=args.samples)
        for _ in range(args.repeats)
    ]
    seeded = [
        timed(kr.mc_predict, model, x, samples=args.samples, seed=1)
        for _ in range(args.repeats)
    ]
    model.predict_on_batch(x)  # warm
    reference = [
        timed(lambda: [model.predict_on_batch(x) for _ in range(args.samples)])
        for _ in range(args.repeats)
    ]
    result = {
        "backend": keras.backend.backend(),
        "settings": vars(args),
        "first_call_s": first,
        "repeated_call_s": statistics.median(unseeded),
        "repeated_seeded_call_s": statistics.median(seeded),
        "predict_on_batch_times_samples_s": statistics.median(reference),
    }
    ratio = (
        max(result["repeated_call_s"], result["repeated_seeded_call_s"])
        / (result["predict_on_batch_times_samples_s"])
    )
    result["repeated_over_reference"] = ratio
    print(
        f"{result['backend']}: first call {first:.2f} s; repeated "
        f"{result['repeated_call_s']:.3f} s (seeded "
        f"{result['repeated_seeded_call_s']:.3f} s); {args.samples} warm "
        "predict_on_batch calls "
        f"{result['predict_on_batch_times_samples_s']:.3f} s; repeated / "
        f"reference {ratio:.2f} (goal <= 2)"
    )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
