#!/usr/bin/env bash
# Runs the test suite on the backend named by KERAS_BACKEND (default: all
# three, one after the other). Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
backends="${KERAS_BACKEND:-tensorflow jax torch}"
status=0
for backend in $backends; do
  echo "=== tests on the $backend backend ==="
  KERAS_BACKEND="$backend" python -m pytest tests -p no:cacheprovider "$@" || status=1
done
exit "$status"
