#!/usr/bin/env bash
# Builds the documentation site strictly and checks the built HTML
# (scripts/check-docs.py): CI's docs step, and the command to run after
# editing a page or a docstring.
#
#   bash scripts/docs.sh [--no-check]
#
# SITE_DIR sets where the site goes (default: a new temporary folder, removed
# afterwards unless SITE_DIR is given). KaTeX, which typesets the equations
# at build time, comes from the npm registry (scripts/docs/package-lock.json)
# into scripts/docs/node_modules, once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -z "${VIRTUAL_ENV:-}" ]; then
  source scripts/env.sh
fi
stamp=scripts/docs/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ scripts/docs/package-lock.json -nt "$stamp" ]; then
  npm ci --prefix scripts/docs --no-audit --no-fund --loglevel=error
fi
site="${SITE_DIR:-}"
keep=1
if [ -z "$site" ]; then
  site="$(mktemp -d)"
  keep=0
fi
# The API pages import the package, hence Keras and TensorFlow: the absl
# start-up lines TensorFlow prints on stderr are harmless, not warnings.
NO_MKDOCS_2_WARNING=1 PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" \
  mkdocs build --strict --site-dir "$site"
status=0
if [ "${1:-}" != "--no-check" ]; then
  python scripts/check-docs.py "$site" || status=$?
fi
if [ "$keep" = 0 ]; then
  rm -rf "$site"
fi
exit "$status"
