"""What `jit_compile=True` costs on PyTorch: the first epoch, compile included.

A model of three regularized layers and the same model of Keras's own
recurrent-dropout LSTMs, each trained for two epochs of 8 batches with
`jit_compile=True` (`torch.compile` of the training step) in a fresh
process of its own, the two alternating, `--repeats` times. Reported per
model: the median wall time of the first epoch (tracing and compiling
included: what a user waits for) and of the second, the ratio of the first
epochs, and how many times Dynamo said it hit its recompile limit (each
such message means a function runs uncompiled from then on). Models:

* `package`: `Input((20, 8))` -> `GalLSTM(32, dropout=0.1,
  recurrent_dropout=0.2)` -> `ZoneoutLSTM(32, zoneout_c=0.3,
  zoneout_h=0.1)` -> `SemeniutaLSTM(32, recurrent_dropout=0.2)` ->
  `Dense(1)`;
* `keras`: the same with `keras.layers.LSTM(32, dropout=0.1,
  recurrent_dropout=0.2)` three times.

Usage:

    python benchmarks/torch_jit_compile.py [--repeats 3] [--output PATH]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

PROBE = r"""
import json, logging, sys, time
import numpy as np
import keras
import keras_recdrop as kr

messages = []

class Catch(logging.Handler):
    def emit(self, record):
        text = record.getMessage()
        if "recompile_limit" in text or "cache_size_limit" in text:
            messages.append(text.splitlines()[0])

logging.getLogger("torch._dynamo").addHandler(Catch())
keras.utils.set_random_seed(0)
inputs = keras.Input((20, 8))
if sys.argv[1] == "package":
    h = kr.GalLSTM(32, dropout=0.1, recurrent_dropout=0.2,
                   return_sequences=True)(inputs)
    h = kr.ZoneoutLSTM(32, zoneout_c=0.3, zoneout_h=0.1,
                       return_sequences=True)(h)
    h = kr.SemeniutaLSTM(32, recurrent_dropout=0.2)(h)
else:
    h = inputs
    for last in (False, False, True):
        h = keras.layers.LSTM(32, dropout=0.1, recurrent_dropout=0.2,
                              return_sequences=not last)(h)
model = keras.Model(inputs, keras.layers.Dense(1)(h))
model.compile("adam", "mse", jit_compile=True)
rng = np.random.default_rng(0)
x = rng.standard_normal((256, 20, 8)).astype("float32")
y = rng.standard_normal((256, 1)).astype("float32")
epochs = []
for _ in range(2):
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    epochs.append(time.perf_counter() - start)
print(json.dumps({"epochs": epochs, "recompile_limit": messages}))
"""


def run_once(model):
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, model],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{model} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    runs = {"package": [], "keras": []}
    for repeat in range(args.repeats):
        for model in runs:
            result = run_once(model)
            runs[model].append(result)
            first, second = result["epochs"]
            print(
                f"round {repeat + 1} {model}: first epoch {first:.1f} s, "
                f"second {second:.2f} s, recompile-limit messages "
                f"{len(result['recompile_limit'])}",
                flush=True,
            )
    summary = {}
    for model, results in runs.items():
        summary[model] = {
            "first_epoch_s": statistics.median(r["epochs"][0] for r in results),
            "second_epoch_s": statistics.median(
                r["epochs"][1] for r in results
            ),
            "recompile_limit_messages": sorted(
                {m for r in results for m in r["recompile_limit"]}
            ),
        }
    ratio = (
        summary["package"]["first_epoch_s"]
        / (summary["keras"]["first_epoch_s"])
    )
    summary["first_epoch_ratio"] = ratio
    print(
        f"first epoch (median of {args.repeats}): package "
        f"{summary['package']['first_epoch_s']:.1f} s, Keras "
        f"{summary['keras']['first_epoch_s']:.1f} s, ratio {ratio:.2f}; "
        "recompile-limit messages: package "
        f"{len(summary['package']['recompile_limit_messages'])}, Keras "
        f"{len(summary['keras']['recompile_limit_messages'])}"
    )
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"summary": summary, "runs": runs}, f, indent=1)
    return summary


if __name__ == "__main__":
    main()
