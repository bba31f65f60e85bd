#!/usr/bin/env bash
# The benchmarks on a CUDA GPU: the default (T=100) and long (T=1000) cases
# on TensorFlow, JAX and PyTorch, one backend after the other, then the
# Markdown tables. Budget: under 10 minutes in all (few rounds; the
# variants are the Keras references, the ready-made layers, which take the
# backend's fused kernel whenever a call computes a plain LSTM/GRU, and the
# Gal and DropConnect cells in keras_recdrop.RNN for comparison).
#
# Usage: bash benchmarks/gpu.sh [--dry-run] [--out DIR] [--backends "jax torch"]
#
#   --dry-run   print the GPU found (if any) and the commands, run nothing
#   --out DIR   where the JSON files, report.md and nvidia-smi.txt go
#               (default benchmarks/results-gpu, ignored by git)
#   --backends  a subset of "tensorflow jax torch"
#
# Environment: PYTHON (default python3), or PYTHON_TENSORFLOW, PYTHON_JAX,
# PYTHON_TORCH to give each backend its own environment with its CUDA build
# (e.g. tensorflow[and-cuda], jax[cuda12], the CUDA wheel of torch);
# GPU_BENCH_VARIANTS overrides the variants (run.py --variants syntax);
# NVIDIA_SMI names the nvidia-smi command.
#
# Without an NVIDIA GPU it says so and exits with status 0. With a GPU that
# no backend's Python can use, it exits with status 3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dry_run=0
out="$here/results-gpu"
backends="tensorflow jax torch"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --out) out="$2"; shift ;;
    --backends) backends="$2"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for backend in $backends; do
  case "$backend" in
    tensorflow|jax|torch) ;;
    *) echo "gpu.sh: unknown backend $backend (tensorflow, jax, torch)" >&2; exit 2 ;;
  esac
done
smi="${NVIDIA_SMI:-nvidia-smi}"
variants="${GPU_BENCH_VARIANTS:-layers,gal,weight_drop}"

# The GPU check runs no Python: nvidia-smi lists the GPUs and the driver.
gpus=""
if command -v "$smi" >/dev/null 2>&1; then
  gpus="$("$smi" --query-gpu=name,driver_version,memory.total \
    --format=csv,noheader 2>/dev/null || true)"
fi
if [ -z "$gpus" ]; then
  echo "gpu.sh: no NVIDIA GPU found ($smi missing or lists none); nothing to measure."
  [ "$dry_run" -eq 1 ] || exit 0
  echo "gpu.sh: --dry-run: the commands a GPU machine would run:"
else
  echo "gpu.sh: GPU(s): $gpus"
fi

python_for() {
  local var="PYTHON_$(echo "$1" | tr '[:lower:]' '[:upper:]')"
  echo "${!var:-${PYTHON:-python3}}"
}

# Whether a backend's Python sees the GPU (imports only that framework).
sees_gpu() {
  local py="$1" backend="$2" code
  case "$backend" in
    torch) code='import sys, torch; sys.exit(not torch.cuda.is_available())' ;;
    jax) code='import sys, jax; sys.exit(jax.default_backend() != "gpu")' ;;
    tensorflow) code='import sys, tensorflow as tf
sys.exit(not tf.config.list_physical_devices("GPU"))' ;;
  esac
  TF_CPP_MIN_LOG_LEVEL=3 "$py" -c "$code" >/dev/null 2>&1
}

# run.py's settings per case: few rounds, so that the three backends and
# both cases fit in about 10 minutes; no peak-RSS probe (host memory says
# nothing about the GPU); TensorFlow's tensor memory in one fresh process.
case_args() {
  case "$1" in
    default) echo "--rounds 5 --min-rounds 3 --warmup 1 --predict-repeats 2 --time-budget 20" ;;
    long) echo "--rounds 3 --min-rounds 2 --warmup 1 --predict-repeats 1 --time-budget 30" ;;
  esac
}

run() {
  { printf '+'; printf ' %q' "$@"; printf '\n'; } >&2
  [ "$dry_run" -eq 1 ] || "$@"
}

[ "$dry_run" -eq 1 ] || mkdir -p "$out"
[ "$dry_run" -eq 1 ] || [ -z "$gpus" ] || "$smi" -q > "$out/nvidia-smi.txt" 2>&1 || true
start=$SECONDS
ran=0
status=0
written=()
for backend in $backends; do
  py="$(python_for "$backend")"
  if [ "$dry_run" -eq 1 ]; then
    echo "gpu.sh: $backend: first checks that $py sees the GPU"
  elif ! sees_gpu "$py" "$backend"; then
    echo "gpu.sh: skipping $backend: $py does not see the GPU (install its CUDA build, or set PYTHON_$(echo "$backend" | tr '[:lower:]' '[:upper:]'))"
    continue
  fi
  for case in default long; do
    t0=$SECONDS
    json="$out/results-$backend-gpu-$case.json"
    # shellcheck disable=SC2046  # case_args is a list of words
    run "$py" "$here/run.py" --backend "$backend" --case "$case" \
      --variants "$variants" $(case_args "$case") --no-rss \
      --memory-processes one --output "$json" || status=1
    if [ "$dry_run" -eq 1 ] || [ -f "$json" ]; then written+=("$json"); fi
    [ "$dry_run" -eq 1 ] || echo "gpu.sh: $backend $case took $((SECONDS - t0)) s"
  done
  ran=$((ran + 1))
done
if [ "$dry_run" -eq 0 ] && [ "$ran" -eq 0 ]; then
  echo "gpu.sh: a GPU is present but no backend can use it." >&2
  exit 3
fi
report_py="$(python_for report)"
if [ ${#written[@]} -gt 0 ]; then
  if [ "$dry_run" -eq 1 ]; then
    run "$report_py" "$here/report.py" "${written[@]}"
  else
    run "$report_py" "$here/report.py" "${written[@]}" > "$out/report.md" || status=1
    echo "gpu.sh: tables in $out/report.md"
  fi
fi
if [ "$dry_run" -eq 0 ]; then
  elapsed=$((SECONDS - start))
  echo "gpu.sh: done in $elapsed s"
  [ "$elapsed" -le 600 ] || echo "gpu.sh: longer than the 10-minute budget: lower the rounds in case_args"
fi
exit "$status"
