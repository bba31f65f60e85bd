#!/usr/bin/env bash
# The proof of the proposed Keras change (docs/upstream.md): applies the
# patches in docs/upstream/ to the Keras 3.15.1 source distribution and runs,
# on TensorFlow, JAX and PyTorch, one backend after the other:
#
#   1. Keras's own test files of keras/src/layers/rnn/ (and the seed
#      generator's) on unpatched 3.15.1: the baseline;
#   2. the tests the patches add, on unpatched 3.15.1: they must catch the
#      bugs (the summary lists the ones that already pass there);
#   3. Keras's own tests and the new tests on the patched Keras;
#   4. this package's test suite on the patched Keras, where plain
#      keras.layers.RNN gives per-step-noise cells a seed per step. The
#      suite runs on a snapshot of the checkout's last commit (`git
#      archive HEAD`), taken at the start: edits made while the script
#      runs do not reach it, and the summary names the commit.
#
# It prints a Markdown summary to paste into the pull request and exits
# non-zero if a new test or the package suite fails on the patched Keras, or
# if the patched Keras fails one of its own tests that passes on 3.15.1.
#
# Downloads the sdist and the backends with pip (PyPI) and takes long (an
# hour or more on 2 cores); CI only checks that it parses (`bash -n`).
#
# Usage: bash scripts/upstream-check.sh
# Environment:
#   UPSTREAM_WORK      work folder, wiped first (default /tmp/upstream-work/check)
#   UPSTREAM_BACKENDS  backends to run (default "tensorflow jax torch")
#   UPSTREAM_PACKAGE_SUITE=0  skips step 4 (the package's suite)
#   UPSTREAM_SUMMARY_ONLY=1   prints the summary of the results already in
#                             UPSTREAM_WORK (for the backends given), runs nothing
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${UPSTREAM_WORK:-/tmp/upstream-work/check}"
backends="${UPSTREAM_BACKENDS:-tensorflow jax torch}"
package_suite="${UPSTREAM_PACKAGE_SUITE:-1}"
keras_version=3.15.1
patches=("$root"/docs/upstream/*.patch)
# Keras's RNN tests, and the seed generator's (the patch lets `keras.random`
# take a seed tensor), as paths relative to a Keras tree.
keras_test_files() {  # keras_test_files TREE
  (cd "$1" && ls keras/src/layers/rnn/*_test.py \
    keras/src/random/seed_generator_test.py)
}

log() { printf '\n== %s\n' "$*" >&2; }

py="$work/venv/bin/python"
if [ "${UPSTREAM_SUMMARY_ONLY:-0}" != 1 ]; then
rm -rf "$work"
mkdir -p "$work/results"
cd "$work"

log "Virtual environment with the three backends (CPU builds)"
python3 -m venv venv
"$py" -m pip install --quiet --upgrade pip
# torch 2.13.0 is the CPU build on this machine's disk; a bare `torch`
# would pull a multi-GB CUDA build.
"$py" -m pip install --quiet "torch==2.13.0"
"$py" -m pip install --quiet "tensorflow-cpu==2.21.0" "jax==0.10.2" \
  pytest setuptools absl-py numpy rich namex h5py optree ml-dtypes \
  packaging pyyaml
# TensorFlow pulls Keras from PyPI: the Keras under test comes from
# PYTHONPATH instead, built from the source distribution.
"$py" -m pip uninstall --quiet --yes keras keras-nightly || true

log "This package at $(git -C "$root" rev-parse --short HEAD)"
mkdir -p package
git -C "$root" archive HEAD | tar -x -C package
git -C "$root" rev-parse --short HEAD > package-commit.txt

log "Keras $keras_version source distribution"
"$py" -m pip download --quiet --no-binary :all: --no-deps \
  "keras==$keras_version" -d sdist
sdist="$(ls sdist/keras-*.tar.gz)"

unpack() {  # unpack FOLDER: the sdist's tree in FOLDER/keras-VERSION
  mkdir -p "$1"
  tar --no-same-owner -xzf "$sdist" -C "$1"
  echo "$work/$1/keras-$keras_version"
}
unpatched="$(unpack unpatched)"
patched="$(unpack patched)"
# The unpatched library with the patched test files: the new tests run
# against Keras 3.15.1 to show that they catch its bugs.
newtests="$(unpack newtests)"
for patch in "${patches[@]}"; do
  log "Applying $(basename "$patch")"
  patch -d "$patched" -p1 --batch --forward < "$patch"
  patch -d "$newtests" -p1 --batch --forward < "$patch"
done
(cd "$patched" && find keras -name '*.py' ! -name '*_test.py') \
  | while read -r source; do cp "$unpatched/$source" "$newtests/$source"; done

# The tests the patches add: every test function of the patched test files
# that the unpatched ones do not define.
test_names() {  # test_names TREE
  (cd "$1" && keras_test_files . | xargs grep -ho '^    def test_[A-Za-z0-9_]*') \
    | sed 's/^    def //' | sort -u
}
comm -13 <(test_names "$unpatched") <(test_names "$patched") > new-tests.txt
log "$(wc -l < new-tests.txt) new tests: $(paste -sd' ' new-tests.txt)"
new_selection="$(paste -sd'|' new-tests.txt | sed 's/|/ or /g')"

log "Building the three Keras trees"
for tree in unpatched patched newtests; do
  "$py" -m pip install --quiet --no-deps --no-build-isolation \
    --target "site-$tree" "$work/$tree/keras-$keras_version" \
    > "results/build-$tree.log" 2>&1
done
mapfile -t keras_tests < <(keras_test_files "$work/site-patched")

run_pytest() {  # run_pytest NAME SITE BACKEND ARGS...: junit XML in results/
  local name="$1" site="$2" backend="$3"
  shift 3
  log "$name on $backend"
  (cd "$work/$site" \
    && PYTHONPATH="$work/$site${PYTHONPATH_EXTRA:+:$PYTHONPATH_EXTRA}" \
      KERAS_BACKEND="$backend" nice -n 10 "$py" -m pytest \
      -p no:cacheprovider -q -o addopts="" \
      --junitxml="$work/results/$name-$backend.xml" "$@" \
      > "$work/results/$name-$backend.log" 2>&1) || true
  tail -n 1 "$work/results/$name-$backend.log" >&2
}

for backend in $backends; do
  config=(-c "$unpatched/pyproject.toml")
  run_pytest keras-unpatched site-unpatched "$backend" "${config[@]}" \
    "${keras_tests[@]}"
  run_pytest new-unpatched site-newtests "$backend" "${config[@]}" \
    "${keras_tests[@]}" -k "$new_selection"
  run_pytest keras-patched site-patched "$backend" "${config[@]}" \
    "${keras_tests[@]}"
  if [ "$package_suite" = 1 ]; then
    PYTHONPATH_EXTRA="$work/package" run_pytest package-patched \
      site-patched "$backend" -c "$work/package/pyproject.toml" \
      --rootdir "$work/package" "$work/package/tests"
  fi
done
fi

log "Summary"
"$py" - "$work" "$keras_version" "$package_suite" $backends <<'EOF'
import collections
import pathlib
import sys
import xml.etree.ElementTree as ET

work = pathlib.Path(sys.argv[1])
version, package_suite, backends = sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
new_tests = set((work / "new-tests.txt").read_text().split())


def function(name):
    """The test function of a test id (parameterized ids add suffixes)."""
    candidates = [n for n in new_tests if name == n or name.startswith(n)]
    return max(candidates, key=len) if candidates else None


def results(name, backend):
    """{test id: "passed" | "failed" | "skipped"} from a junit XML file."""
    path = work / "results" / f"{name}-{backend}.xml"
    if not path.exists():
        return None
    outcome = {}
    seen = collections.Counter()
    for case in ET.parse(path).iter("testcase"):
        # Two files may hold a class of the same name (SimpleRNNTest): the
        # occurrence number tells them apart, in the files' fixed order.
        name = (case.get("classname", "").lstrip("."), case.get("name"))
        seen[name] += 1
        test_id = (*name, seen[name])
        if case.find("failure") is not None or case.find("error") is not None:
            outcome[test_id] = "failed"
        elif case.find("skipped") is not None:
            outcome[test_id] = "skipped"
        else:
            outcome[test_id] = "passed"
    return outcome


def count(outcome):
    if outcome is None:
        return "not run"
    counts = {k: list(outcome.values()).count(k) for k in ("passed", "failed", "skipped")}
    return f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"


def split(outcome):
    """(Keras's own tests, the new tests) of a run."""
    own = {k: v for k, v in (outcome or {}).items() if function(k[1]) is None}
    new = {k: v for k, v in (outcome or {}).items() if function(k[1]) is not None}
    return own, new


problems = []
rows = []
already_passing = {}
for backend in backends:
    baseline = results("keras-unpatched", backend)
    new_on_old = results("new-unpatched", backend)
    patched_own, patched_new = split(results("keras-patched", backend))
    package = results("package-patched", backend) if package_suite else None
    rows.append(
        f"| {backend} | {count(baseline)} | {count(patched_own)} | "
        f"{count(new_on_old)} | {count(patched_new)} | {count(package)} |"
    )
    regressions = sorted(
        "::".join(k[:2])
        for k, v in patched_own.items()
        if v == "failed" and (baseline or {}).get(k) != "failed"
    )
    if baseline is None or not patched_own:
        problems.append(f"{backend}: Keras's own tests did not run")
    if regressions:
        problems.append(f"{backend}: new failures of Keras's own tests: {regressions}")
    failed_new = sorted("::".join(k[:2]) for k, v in patched_new.items() if v != "passed")
    if not patched_new or failed_new:
        problems.append(f"{backend}: new tests not passing on the patched Keras: {failed_new}")
    if package_suite and (package is None or "failed" in package.values() or not package):
        failed = sorted("::".join(k[:2]) for k, v in (package or {}).items() if v == "failed")
        problems.append(f"{backend}: package suite failures on the patched Keras: {failed}")
    for k, v in (new_on_old or {}).items():
        if v == "passed":
            already_passing.setdefault(".".join(k[:2]), []).append(backend)

commit_file = work / "package-commit.txt"
commit = commit_file.read_text().strip() if commit_file.exists() else None
print(f"Keras {version} with docs/upstream/*.patch, "
      "and Keras's own tests in keras/src/layers/rnn/ and "
      "keras/src/random/seed_generator_test.py"
      + (f"; keras-recdrop at commit {commit}" if package_suite and commit
         else "") + ":\n")
print(f"| Backend | Keras's tests, {version} | Keras's tests, patched | "
      f"New tests, {version} | New tests, patched | keras-recdrop suite, patched |")
print("| --- | --- | --- | --- | --- | --- |")
print("\n".join(rows))
if already_passing:
    print(f"\nNew tests that already pass on {version} (guards of behaviour "
          "the patch keeps):")
    for name, where in sorted(already_passing.items()):
        print(f"- {name} ({', '.join(where)})")
if problems:
    print("\nFAILED:")
    print("\n".join(f"- {p}" for p in problems))
    sys.exit(1)
print("\nOK: no new failure of Keras's tests, every new test passes on the "
      "patched Keras, and the package suite passes on it.")
EOF
