#!/usr/bin/env bash
# The main job (JAX by default; set KERAS_BACKEND to choose), in two parts:
# 1. examples/fixes.py: what the package fixes in Keras's LSTM, measured now,
#    side by side with Keras on the same weights and seed (seconds).
# 2. examples/char_lm.py --quick: a character-level LSTM that overfits 20,000
#    characters of the CPython documentation, trained without regularization,
#    with Keras's recurrent dropout and with the package's Gal, Semeniuta and
#    zoneout cells: a table, the result in words, the learning curves. About
#    3 minutes of CPU time on the project's 2-core machine.
# Arguments go to char_lm.py (e.g. --seed 3, --variants baseline zoneout).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
python examples/fixes.py
echo
python examples/char_lm.py --quick "$@"
echo "main job: ${SECONDS} s of wall-clock time"
