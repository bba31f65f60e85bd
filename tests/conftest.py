"""Test-process settings, read before any backend is imported.

`scripts/test.sh` runs the suite in as many worker processes as the
machine has cores (pytest-xdist). The tests' tensors are small, so a
backend's own thread pool buys little inside one test, while several pools
on the same cores slow each other down: each worker runs its backend on one
thread. A run without workers (`python -m pytest tests`) keeps the
backends' thread defaults.

Most of the suite's time is the backends compiling hundreds of small
programs, each run a few times. The settings below cut that; none changes
what a test computes beyond float rounding. The benchmarks and the main
job keep the backends' defaults; `RECDROP_TEST_COMPILER_DEFAULTS=1` keeps
the compilers' defaults in the tests too (the JAX cache below stays).

On TensorFlow, the test processes build their graphs without Grappler's
optimization passes (`disable_meta_optimizer`). The fresh processes some
tests start (resume, reproducibility, serialization, data-parallel,
export) keep them, so what those prove holds with TensorFlow's defaults.
Measured (quiet, two workers): `test_integration.py` and
`test_any_length.py` took 111 s with Grappler and 89 s without.

On JAX, in every test process and the fresh processes the tests start
(they inherit the environment):

- XLA's CPU backend compiles without its expensive LLVM optimizations
  (`--xla_backend_optimization_level=0`) and, on jaxlib 0.10, with its
  older fusion code generators.
- A compilation cache per worker, shared with the fresh processes it
  starts, in a new temporary directory per run (so every run starts cold
  and the figure in the README is a first run's): a fresh process that
  builds the same model as another (resume, reproducibility,
  serialization) loads its programs instead of compiling them again.
  `JAX_COMPILATION_CACHE_DIR` set beforehand is kept.

Measured on a quiet 2-core machine, two workers, jaxlib 0.10.2: the JAX
suite took 12 min 50 s with XLA's defaults and 4 min 18 s with these
settings (and the grouping below working). On a sample
(`test_integration.py` and `test_reproducibility.py`): 179 s, 120 s with the
cache, 82 s with the cache and optimization level 0; on three of its tests,
XLA compiled for 8.2 s with fusion emitters and 4.2 s without.
"""

import importlib.metadata
import os
import re
import shutil
import tempfile

import pytest

_OWN_CACHE = None
_COMPILER_DEFAULTS = bool(os.environ.get("RECDROP_TEST_COMPILER_DEFAULTS"))


def _release(version):
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        # Measured: the JAX suite took 12 min 0 s with this flag and
        # 12 min 51 s without it (two workers, quiet 2-core machine).
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen=false"
        ).strip()

if os.environ.get("KERAS_BACKEND") == "jax":
    flags = os.environ.get("XLA_FLAGS", "")
    if not _COMPILER_DEFAULTS and "xla_backend_optimization_level" not in flags:
        flags += (
            " --xla_backend_optimization_level=0"
            " --xla_llvm_disable_expensive_passes=true"
        )
        if _release(_version("jaxlib")) == (0, 10):
            # XLA's older fusion code generators compile in half the time
            # (measured with jaxlib 0.10.2); an XLA that no longer knows
            # the flag would refuse to start, so only where measured.
            flags += " --xla_cpu_use_fusion_emitters=false"
        os.environ["XLA_FLAGS"] = flags.strip()
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        # Created by the controlling process before its workers start; each
        # worker takes a folder of its own, shared with the fresh processes
        # it starts. (Shared by two workers, an entry one of them was still
        # writing was read by the other: JAX warned and compiled again.)
        _OWN_CACHE = tempfile.mkdtemp(prefix="recdrop-jax-cache-")
        os.environ["RECDROP_TEST_JAX_CACHE"] = _OWN_CACHE
    if os.environ.get("RECDROP_TEST_JAX_CACHE"):
        os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
            os.environ["RECDROP_TEST_JAX_CACHE"],
            os.environ.get("PYTEST_XDIST_WORKER", "main"),
        )
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def _check_grouping(config):
    """Stops a run whose `--dist loadgroup` would not group.

    Files whose fixtures are built once per run (fresh processes, exports)
    mark their tests `xdist_group`. pytest-xdist 3.8 groups them by a
    suffix of the test ids, which pytest 9.2 ignores (pytest-xdist issue
    #1386): the tests spread over the workers and each builds the fixtures
    again, silently. Measured: the resume, data-parallel and export
    fixtures ran twice each.
    """
    if config.getoption("dist", "no") != "loadgroup":
        return
    xdist = _version("pytest-xdist")
    if _release(pytest.__version__) >= (9, 2) and _release(xdist) <= (3, 8):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} with pytest-xdist {xdist} does "
            "not group tests marked `xdist_group` (pytest-xdist issue "
            "#1386). Install the versions of scripts/pins.txt, or run "
            "without workers (-n 0)."
        )


def pytest_configure(config):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    worker = bool(os.environ.get("PYTEST_XDIST_WORKER"))
    runs_tests = worker or not config.getoption("numprocesses", None)
    if runs_tests and backend == "tensorflow" and not _COMPILER_DEFAULTS:
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": True}
        )
    if not worker:
        _check_grouping(config)
        return
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work has started
            pass
