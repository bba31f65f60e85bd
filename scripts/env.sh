#!/usr/bin/env bash
# Creates (once) the project's virtual environment with every backend, and
# activates it. Sourced by scripts/test.sh and scripts/demo.sh.
#
#   .venv          Keras as pinned in scripts/pins.txt (the default)
#   .venv-nightly  the same, with the pinned keras-nightly build instead
#                  (RECDROP_KERAS=nightly), to test the next Keras release
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The newest nightly when the 3.16 layout was supported; pinned so that an
# unrelated nightly regression cannot break CI.
keras_nightly="keras-nightly==3.16.0.dev2026102704"
case "${RECDROP_KERAS:-pinned}" in
  pinned) venv="$root/.venv" ;;
  nightly) venv="$root/.venv-nightly" ;;
  *) echo "RECDROP_KERAS must be 'pinned' or 'nightly'" >&2; return 2 ;;
esac
stamp="$venv/.keras-recdrop-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] \
    || [ "$root/scripts/pins.txt" -nt "$stamp" ]; then
  python3 -m venv "$venv"
  pip=("$venv/bin/python" -m pip --quiet)
  "${pip[@]}" install --upgrade pip
  # The CPU build of torch; a bare `torch` would pull a multi-GB CUDA build.
  "${pip[@]}" install -c "$root/scripts/pins.txt" torch
  "${pip[@]}" install -c "$root/scripts/pins.txt" \
    -e "$root[tensorflow,jax,test,examples,docs,release,export]"
  if [ "${RECDROP_KERAS:-pinned}" = nightly ]; then
    # keras-nightly installs the same `keras` package under another name.
    # Uninstalling `keras` deletes the files the two share, so on a
    # reinstall over an existing nightly (pyproject.toml changed) the
    # nightly's files are written again, not taken as installed.
    "${pip[@]}" uninstall --yes keras
    "${pip[@]}" install "$keras_nightly"
    "${pip[@]}" install --force-reinstall --no-deps "$keras_nightly"
  fi
  touch "$stamp"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"
