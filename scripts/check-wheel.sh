#!/usr/bin/env bash
# Builds the sdist and the wheel, checks them with twine, then installs the
# wheel in a clean virtual environment with Keras and ONE backend, for each
# of jax, tensorflow and torch (CPU), and runs the README's example there:
# proof that nothing depends on another backend or on development extras.
# Needs `build` and `twine` (the `release` extra of .venv). Exits non-zero
# on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "=== build and twine check ==="
python -m build --outdir "$work/dist" . > "$work/build.log" 2>&1 \
  || { cat "$work/build.log"; exit 1; }
if grep -qi "deprecat" "$work/build.log"; then
  grep -i "deprecat" "$work/build.log"
  echo "the build warns about deprecated settings" >&2
  exit 1
fi
python -m twine check --strict "$work"/dist/*
wheel="$(ls "$work"/dist/*.whl)"
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' keras_recdrop/_version.py)"
case "$wheel" in
  *"keras_recdrop-$version-"*) ;;
  *) echo "wheel $wheel does not carry version $version" >&2; exit 1 ;;
esac
# The listing is read whole first: `unzip -l | grep -q` under pipefail
# failed about 1 time in 11, when grep exited before unzip's last write
# (SIGPIPE, exit 141), and said LICENSE was missing.
listing="$(unzip -l "$wheel")"
grep -q "licenses/LICENSE" <<<"$listing" \
  || { echo "the wheel does not ship LICENSE" >&2; exit 1; }

# The README's example: the first ```python block after "## Example".
python - "$root/README.md" > "$work/readme_example.py" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
section = text.split("## Example", 1)[1]
print(re.search(r"```python\n(.*?)```", section, re.S).group(1))
PY

for backend in jax tensorflow torch; do
  echo "=== wheel with keras and $backend only ==="
  venv="$work/venv-$backend"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  case "$backend" in
    jax) extra=(jax) ;;
    tensorflow) extra=(tensorflow-cpu) ;;
    torch) extra=(torch) ;;
  esac
  "$venv/bin/python" -m pip install --quiet -c scripts/pins.txt \
    "$wheel" "${extra[@]}"
  # Nothing of the other backends, the tests or the examples came along.
  for absent in jax tensorflow torch pytest matplotlib sklearn; do
    [ "$absent" = "$backend" ] && continue
    if "$venv/bin/python" -c "import $absent" 2>/dev/null; then
      echo "$absent is importable in the $backend-only environment" >&2
      exit 1
    fi
  done
  (cd "$work" && KERAS_BACKEND="$backend" "$venv/bin/python" - <<PY
import runpy, keras, keras_recdrop
assert keras.backend.backend() == "$backend", keras.backend.backend()
assert keras_recdrop.__version__ == "$version"
assert keras_recdrop.__file__.startswith("$venv"), keras_recdrop.__file__
runpy.run_path("$work/readme_example.py")
print("README example ran with keras", keras.__version__, "on $backend")
PY
  )
  rm -rf "$venv"
done
echo "wheel check passed: $(basename "$wheel")"
