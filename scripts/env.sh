#!/usr/bin/env bash
# Creates (once) the project's virtual environment in .venv with every
# backend, and activates it. Sourced by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.keras-recdrop-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # The CPU build of torch; a bare `torch` would pull a multi-GB CUDA build.
  "$venv/bin/python" -m pip install --quiet "torch==2.13.0"
  "$venv/bin/python" -m pip install --quiet -e "$root[tensorflow,jax,test,examples,docs]"
  touch "$stamp"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"
