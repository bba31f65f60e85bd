"""The same seed reproduces a run in a fresh process; another seed differs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r"""
import json, sys
import numpy as np
import keras
import keras_recdrop as kr

seed = int(sys.argv[1])
x = np.random.RandomState(0).randn(4, 6, 3).astype("float32")
configs = {
    "zoneout": (kr.ZoneoutLSTMCell, dict(zoneout_c=0.5, zoneout_h=0.3,
                                         dropout=0.2)),
    "semeniuta": (kr.SemeniutaLSTMCell, dict(recurrent_dropout=0.4)),
    "semeniuta_seq": (kr.SemeniutaLSTMCell, dict(recurrent_dropout=0.4,
                                                 per_step=False)),
    "gal": (kr.GalLSTMCell, dict(dropout=0.3, recurrent_dropout=0.4)),
    "weight_drop": (kr.WeightDropLSTMCell, dict(weight_dropout=0.4)),
    "gru_zoneout": (kr.ZoneoutGRUCell, dict(zoneout_h=0.4, dropout=0.2)),
    "gru_semeniuta": (kr.SemeniutaGRUCell, dict(recurrent_dropout=0.4)),
    "gru_gal": (kr.GalGRUCell, dict(dropout=0.3, recurrent_dropout=0.4)),
}
rng = np.random.RandomState(1)
def weights_for(cls):
    gates = 3 if "GRU" in cls.__name__ else 4
    bias = (2, 3 * 4) if gates == 3 else (16,)
    return [rng.uniform(-0.5, 0.5, s).astype("float32")
            for s in [(3, 4 * gates), (4, 4 * gates), bias]]
out = {}
for name, (cls, kw) in configs.items():
    layer = kr.RNN(cls(4, seed=seed, **kw), return_sequences=True)
    layer.build(x.shape)
    layer.cell.set_weights(weights_for(cls))
    calls = [keras.ops.convert_to_numpy(layer(x, training=True)).tolist()
             for _ in range(2)]
    out[name] = calls
# Embedding dropout: the output of a seeded DropoutEmbedding.
emb = kr.DropoutEmbedding(50, 4, embeddings_dropout=0.5, seed=seed)
ids = np.arange(50).reshape(5, 10)
emb.build(ids.shape)
emb.set_weights([rng.uniform(-1, 1, (50, 4)).astype("float32")])
out["embedding"] = [keras.ops.convert_to_numpy(emb(ids, training=True)).tolist()
                    for _ in range(2)]
print("RESULT" + json.dumps(out))
"""


def _run(seed):
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(seed)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")][-1]
    return {k: np.array(v) for k, v in json.loads(line[6:]).items()}


@pytest.mark.subprocess
def test_same_seed_gives_identical_results_in_fresh_processes():
    first, second, other = _run(7), _run(7), _run(8)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
        # Two calls in one process draw fresh noise ...
        assert np.abs(first[name][0] - first[name][1]).max() > 1e-3
        # ... and another seed gives other noise.
        assert np.abs(first[name] - other[name]).max() > 1e-3
