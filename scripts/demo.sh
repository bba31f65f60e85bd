#!/usr/bin/env bash
# The main job: trains every cell on a built-in corpus and prints a table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
KERAS_BACKEND="${KERAS_BACKEND:-tensorflow}" python examples/char_lm.py --quick "$@"
