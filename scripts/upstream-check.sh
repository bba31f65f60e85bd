#!/usr/bin/env bash
# The proof of the patch series proposed to Keras (docs/upstream.md,
# docs/upstream/NNNN-*.patch), against Keras's GitHub master.
#
# Takes a Keras source tree (Keras's repository at the commit the series is
# written against; nightly wheels ship no test files) and:
#
#   1. runs Keras's RNN and random tests (keras/src/layers/rnn/*_test.py,
#      keras/src/random/*_test.py) on the unpatched tree: the baseline,
#      master's own failures included;
#   2. applies the patches one at a time (`git apply`, after a
#      `git apply --check`) and, after each, runs the same tests (on the
#      backends of UPSTREAM_STEP_BACKENDS); before applying a patch, it runs
#      the tests the patch adds against the previous tree with only the
#      patch's test files applied, to show that they catch what it fixes;
#   3. after the whole series, runs the tests on every backend of
#      UPSTREAM_BACKENDS not run already;
#   4. installs the patched tree and runs this package's test suite against
#      it, where `keras.layers.RNN` passes per-step seeds: the tests that
#      skip on a released Keras (tests/test_keras_step_seeds.py, plain
#      `keras.layers.RNN` with per-step noise in a JAX `lax.scan`) run. The
#      suite runs on a snapshot (`git archive`) of UPSTREAM_PACKAGE_REF of
#      UPSTREAM_PACKAGE_REPO, taken at the start; the summary names it.
#
# It prints a Markdown summary per backend (for docs/upstream.md) and exits
# non-zero if a patch does not apply, if a Keras test that passes at the
# base commit fails after some patch, if a test a patch adds fails after
# it, or if the package suite fails on the patched Keras.
#
# Takes long (about an hour and a half on 2 cores with the defaults) and
# downloads the backends with pip unless UPSTREAM_VENV is given; CI only
# checks that it parses (`bash -n`).
#
# Usage:
#   git -C KERAS_REPO archive 3422977a5e38fb2f7709aaa9a08e47f0c43d0f60 \
#     | tar -x -C /tmp/keras-src
#   KERAS_SOURCE=/tmp/keras-src KERAS_COMMIT=3422977a5e38 \
#     bash scripts/upstream-check.sh
# Environment:
#   KERAS_SOURCE       the Keras source tree (required; a checkout or an
#                      extracted `git archive`; it is copied, not modified)
#   KERAS_COMMIT       its commit, for the summary (default: read with git
#                      from KERAS_SOURCE if it is a checkout)
#   UPSTREAM_WORK      work folder, wiped first (default /tmp/upstream-work/check)
#   UPSTREAM_VENV      an existing virtual environment with the backends,
#                      pytest and Keras's dependencies, and no `keras`
#                      installed (default: made in UPSTREAM_WORK)
#   UPSTREAM_BACKENDS  backends of the baseline and of the final run
#                      (default "tensorflow jax torch")
#   UPSTREAM_STEP_BACKENDS  backends run after each patch (default: all of
#                      UPSTREAM_BACKENDS)
#   UPSTREAM_PRE_BACKEND  backend of the new-tests-before-the-patch runs
#                      (default tensorflow; "none" skips them)
#   UPSTREAM_KERAS_TESTS=0    skips steps 1 to 3 (applies the series only)
#   UPSTREAM_PACKAGE_SUITE=0  skips step 4
#   UPSTREAM_PACKAGE_REPO  git repository of the package suite (default: this
#                      checkout); UPSTREAM_PACKAGE_REF its commit (default HEAD)
#   UPSTREAM_SUMMARY_ONLY=1   prints the summary of the results already in
#                      UPSTREAM_WORK, runs nothing
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${UPSTREAM_WORK:-/tmp/upstream-work/check}"
backends="${UPSTREAM_BACKENDS:-tensorflow jax torch}"
step_backends="${UPSTREAM_STEP_BACKENDS:-$backends}"
pre_backend="${UPSTREAM_PRE_BACKEND:-tensorflow}"
package_suite="${UPSTREAM_PACKAGE_SUITE:-1}"
keras_suite="${UPSTREAM_KERAS_TESTS:-1}"
package_repo="${UPSTREAM_PACKAGE_REPO:-$root}"
package_ref="${UPSTREAM_PACKAGE_REF:-HEAD}"
base_commit=3422977a5e38fb2f7709aaa9a08e47f0c43d0f60
patches=("$root"/docs/upstream/[0-9][0-9][0-9][0-9]-*.patch)
# Keras's tests of the files the series touches, relative to the tree.
test_globs=("keras/src/layers/rnn/*_test.py" "keras/src/random/*_test.py")

log() { printf '\n== %s\n' "$*" >&2; }

if [ "${UPSTREAM_SUMMARY_ONLY:-0}" != 1 ]; then
source_tree="${KERAS_SOURCE:?set KERAS_SOURCE to a Keras source tree at $base_commit}"
[ -f "$source_tree/keras/src/version.py" ] \
  || { echo "KERAS_SOURCE=$source_tree is not a Keras source tree" >&2; exit 2; }
keras_commit="${KERAS_COMMIT:-$(git -C "$source_tree" rev-parse HEAD 2>/dev/null || echo unknown)}"
rm -rf "$work"
mkdir -p "$work/results"
cd "$work"
printf '%s\n' "$keras_commit" > keras-commit.txt
sed -n 's/^__version__ = "\(.*\)"/\1/p' "$source_tree/keras/src/version.py" \
  > keras-version.txt
case "$keras_commit" in
  "${base_commit:0:7}"*|unknown) ;;
  *) log "WARNING: the series is written against $base_commit, not $keras_commit" ;;
esac

if [ -n "${UPSTREAM_VENV:-}" ]; then
  py="$UPSTREAM_VENV/bin/python"
else
  log "Virtual environment with the three backends (CPU builds)"
  python3 -m venv venv
  py="$work/venv/bin/python"
  "$py" -m pip install --quiet --upgrade pip
  # torch 2.13.0 is the CPU build on this machine's disk; a bare `torch`
  # would pull a multi-GB CUDA build.
  "$py" -m pip install --quiet "torch==2.13.0"
  "$py" -m pip install --quiet "tensorflow-cpu==2.21.0" "jax==0.10.2" \
    pytest setuptools absl-py numpy scipy rich namex h5py optree ml-dtypes \
    packaging pyyaml
  # TensorFlow pulls Keras from PyPI: the Keras under test is the tree's.
  "$py" -m pip uninstall --quiet --yes keras keras-nightly || true
fi
if "$py" -c "import keras" 2>/dev/null; then
  echo "The virtual environment has a keras installed; remove it first" >&2
  exit 2
fi
printf '%s\n' "$py" > python.txt

if [ "$package_suite" = 1 ]; then
  log "The package at $package_ref of $package_repo"
  mkdir -p package
  git -C "$package_repo" archive "$package_ref" | tar -x -C package
  git -C "$package_repo" rev-parse --short "$package_ref" > package-commit.txt
fi

log "Keras tree $keras_commit ($(cat keras-version.txt))"
# A copy under git, so that `git apply` applies paths relative to it and
# each step can be reset.
mkdir -p keras
tar -C "$source_tree" --exclude=.git -cf - . | tar -C keras -xf -
(cd keras && git init -q && git add -A \
  && git -c user.name=check -c user.email=check@localhost \
    commit -q -m "base $keras_commit")

keras_tests() {  # the test files, relative to the tree
  (cd "$work/keras" && ls ${test_globs[@]})
}

run_pytest() {  # run_pytest NAME BACKEND ARGS...: junit XML in results/
  local name="$1" backend="$2"
  shift 2
  [ "$keras_suite" = 1 ] || return 0
  log "$name on $backend"
  (cd "$work/keras" \
    && PYTHONPATH="$work/keras" KERAS_BACKEND="$backend" \
      nice -n 10 "$py" -m pytest -p no:cacheprovider -q -o addopts="" \
      --junitxml="$work/results/$name-$backend.xml" "$@" \
      > "$work/results/$name-$backend.log" 2>&1) || true
  tail -n 1 "$work/results/$name-$backend.log" >&2
}

commit_step() {  # commit_step MESSAGE
  (cd "$work/keras" && git add -A \
    && git -c user.name=check -c user.email=check@localhost \
      commit -q -m "$1")
}

mapfile -t files < <(keras_tests)
for backend in $backends; do
  run_pytest step-0000 "$backend" "${files[@]}"
done

: > patches.txt
for patch in "${patches[@]}"; do
  name="$(basename "$patch" .patch)"
  number="${name:0:4}"
  printf '%s\n' "$name" >> patches.txt
  if ! (cd keras && git apply --check "$patch"); then
    echo "$name does not apply" > "results/apply-$number.txt"
    log "$name does not apply: stopping"
    break
  fi
  # The patch's tests against the tree before it: its test files only.
  mapfile -t changed < <(cd keras && git apply --numstat "$patch" \
    | awk '$3 ~ /_test\.py$/ {print $3}')
  if [ "$pre_backend" != none ] && [ "${#changed[@]}" -gt 0 ]; then
    (cd keras && git apply --include='*_test.py' "$patch")
    run_pytest "pre-$number" "$pre_backend" "${changed[@]}"
    (cd keras && git checkout -q -- . && git clean -qfd)
  fi
  log "Applying $name"
  (cd keras && git apply "$patch")
  commit_step "$name"
  mapfile -t files < <(keras_tests)
  for backend in $step_backends; do
    run_pytest "step-$number" "$backend" "${files[@]}"
  done
done
last="$(tail -n 1 patches.txt | cut -c1-4)"
for backend in $backends; do
  case " $step_backends " in
    *" $backend "*) ;;
    *) run_pytest "step-$last" "$backend" "${files[@]}" ;;
  esac
done

if [ "$package_suite" = 1 ]; then
  log "Installing the patched Keras"
  mkdir -p build-src
  tar -C keras --exclude=.git -cf - . | tar -C build-src -xf -
  "$py" -m pip install --quiet --no-deps --no-build-isolation \
    --target site-patched ./build-src > results/build-patched.log 2>&1
  for backend in $backends; do
    log "package suite on $backend"
    (cd "$work/package" \
      && PYTHONPATH="$work/site-patched:$work/package" \
        KERAS_BACKEND="$backend" nice -n 10 "$py" -m pytest \
        -p no:cacheprovider -q -o addopts="" -rs \
        -c "$work/package/pyproject.toml" --rootdir "$work/package" \
        --junitxml="$work/results/package-$backend.xml" tests \
        > "$work/results/package-$backend.log" 2>&1) || true
    tail -n 1 "results/package-$backend.log" >&2
  done
fi
fi

log "Summary"
py="$(cat "$work/python.txt" 2>/dev/null || echo python3)"
"$py" - "$work" "$package_suite" "${UPSTREAM_KERAS_TESTS:-1}" $backends <<'EOF'
import collections
import pathlib
import re
import sys
import xml.etree.ElementTree as ET

work = pathlib.Path(sys.argv[1])
package_suite, keras_suite = sys.argv[2] == "1", sys.argv[3] == "1"
backends = sys.argv[4:]


def read(name):
    path = work / name
    return path.read_text().strip() if path.exists() else None


def results(name):
    """{(classname, test name): (outcome, message)} of a junit XML file."""
    path = work / "results" / f"{name}.xml"
    if not path.exists():
        return None
    outcome = {}
    for case in ET.parse(path).iter("testcase"):
        key = (case.get("classname", ""), case.get("name"))
        for tag, kind in (("failure", "failed"), ("error", "failed"),
                          ("skipped", "skipped")):
            node = case.find(tag)
            if node is not None:
                outcome[key] = (kind, node.get("message", ""))
                break
        else:
            outcome[key] = ("passed", "")
    return outcome


def count(outcome):
    if outcome is None:
        return "not run"
    kinds = collections.Counter(kind for kind, _ in outcome.values())
    return f"{kinds['passed']} / {kinds['failed']} / {kinds['skipped']}"


def test_id(key):
    return f"{key[0].rsplit('.', 1)[-1]}::{key[1]}"


def grouped(ids):
    """Test ids, the cases of one parameterized test counted once."""
    counts = collections.Counter(re.sub(r"\d+$", "", i) for i in ids)
    return ", ".join(f"{name} ({n} cases)" if n > 1 else name
                     for name, n in sorted(counts.items())) or "none"


patches = (read("patches.txt") or "").split()
steps = ["0000"] + [p[:4] for p in patches]
names = {"0000": "base"} | {p[:4]: p for p in patches}
problems = []
rows = []
new_rows = []
base = {b: results(f"step-0000-{b}") for b in backends}
for backend in backends:
    if base[backend] is None and keras_suite:
        problems.append(f"{backend}: the baseline did not run")
for step in steps:
    if (work / "results" / f"apply-{step}.txt").exists():
        problems.append(read(f"results/apply-{step}.txt"))
    cells = []
    for backend in backends:
        now = results(f"step-{step}-{backend}")
        cells.append(count(now))
        if now is None or step == "0000":
            continue
        # A failure that the base commit does not have: a Keras test that
        # passes there, or a test that a patch adds.
        for key, (kind, _) in now.items():
            before = (base[backend] or {}).get(key, (None,))[0]
            if kind == "failed" and before != "failed":
                problems.append(
                    f"{backend}: {test_id(key)} fails after {names[step]}"
                    + (" (passes at the base commit)" if before else "")
                )
        if step == steps[-1]:
            removed = sorted(test_id(k) for k in set(base[backend] or {})
                             - set(now))
            if removed:
                problems.append(f"{backend}: tests of the base commit that "
                                f"no longer run: {removed}")
    rows.append(f"| {names[step]} | " + " | ".join(cells) + " |")
    if step == "0000":
        continue
    # The tests this patch adds: ids absent before it on the same backend,
    # on the backends run both after it and after the patch before it (with
    # UPSTREAM_STEP_BACKENDS reduced, an earlier step would count the tests
    # of every patch in between as this one's).
    index = steps.index(step)
    added = set()
    for backend in backends:
        now = results(f"step-{step}-{backend}")
        previous = results(f"step-{steps[index - 1]}-{backend}")
        if now is None or previous is None:
            continue
        added |= set(now) - set(previous)
    pre = None
    for backend in backends:
        pre = pre or results(f"pre-{step}-{backend}")
    if pre is None:
        caught = "not run"
        guards = []
    else:
        # Failing there, or not even collected (an import error).
        caught = sum(pre.get(k, ("failed",))[0] == "failed" for k in added)
        guards = sorted(test_id(k) for k in added
                        if pre.get(k, ("failed",))[0] == "passed")
    new_rows.append(
        f"| {names[step]} | {len(added)} | {caught} | {grouped(guards)} |"
    )

print(f"Keras {read('keras-version.txt')} at commit {read('keras-commit.txt')}, "
      "its tests in keras/src/layers/rnn/ and keras/src/random/, "
      "after each patch of docs/upstream/ (passed / failed / skipped)"
      + ("" if keras_suite else ": not run (UPSTREAM_KERAS_TESTS=0)")
      + ":\n")
print("| After | " + " | ".join(backends) + " |")
print("| --- |" + " --- |" * len(backends))
print("\n".join(rows))
for backend in backends:
    failed = sorted(test_id(k) for k, (kind, _) in (base[backend] or {}).items()
                    if kind == "failed")
    print(f"\nBaseline failures on {backend} (master's own): "
          + (", ".join(failed) if failed else "none"))
print("\nTests each patch adds (test cases, on any backend), and how many of "
      "them fail on the tree before the patch with only the patch's test "
      "files applied (they catch what it fixes); the ones that pass there "
      "guard behaviour the patch keeps:\n")
print("| Patch | New test cases | Failing before it | Passing before it |")
print("| --- | --- | --- | --- |")
print("\n".join(new_rows))

if package_suite:
    commit = read("package-commit.txt")
    print(f"\nThis package's suite (keras-recdrop at {commit}) on the patched "
          "Keras (passed / failed / skipped):\n")
    print("| Backend | Whole suite | tests/test_keras_step_seeds.py | "
          "Skipped for want of step seeds |")
    print("| --- | --- | --- | --- |")
    for backend in backends:
        outcome = results(f"package-{backend}")
        step_seed_tests = {
            k: v for k, v in (outcome or {}).items()
            if "test_keras_step_seeds" in k[0]
        }
        # Skip messages of a Keras without the feature (tests that would
        # skip on a released Keras and must run here).
        waiting = sorted(
            test_id(k) for k, (kind, message) in (outcome or {}).items()
            if kind == "skipped"
            and re.search(r"passes no per-step seeds|by design: keras\.layers"
                          r"\.RNN on JAX", message)
        )
        print(f"| {backend} | {count(outcome)} | "
              f"{count(step_seed_tests if outcome else None)} | "
              f"{len(waiting)} |")
        failed = sorted(test_id(k) for k, (kind, _) in (outcome or {}).items()
                        if kind == "failed")
        if outcome is None or failed:
            problems.append(f"{backend}: package suite failures: {failed}")
        if waiting:
            problems.append(f"{backend}: package tests still skip for want "
                            f"of step seeds: {waiting}")

if problems:
    print("\nFAILED:")
    print("\n".join(f"- {p}" for p in problems))
    sys.exit(1)
print("\nOK: every patch applies, no Keras test that passes at the base "
      "commit fails after any patch, every test a patch adds passes after "
      "it" + (", and the package suite passes on the patched Keras."
              if package_suite else "."))
EOF
