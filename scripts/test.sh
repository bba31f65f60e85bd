#!/usr/bin/env bash
# Runs the test suite on the backend named by KERAS_BACKEND (default: all
# three, one after the other). Extra arguments go to pytest.
#
# The tests run in one worker process per core (pytest-xdist; each worker
# runs its backend on one thread, tests/conftest.py); RECDROP_TEST_WORKERS
# sets the number of workers (0: no workers, the tests in this process).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
backends="${KERAS_BACKEND:-tensorflow jax torch}"
status=0
for backend in $backends; do
  echo "=== tests on the $backend backend, keras $(python -c \
    'import importlib.metadata as m, importlib.util as u
print(m.version("keras-nightly" if u.find_spec("keras") and not any(
    d.metadata["Name"] == "keras" for d in m.distributions()) else "keras"))'
  ) ==="
  KERAS_BACKEND="$backend" python -m pytest tests -p no:cacheprovider \
    -n "${RECDROP_TEST_WORKERS:-auto}" --dist loadgroup "$@" || status=1
done
exit "$status"
