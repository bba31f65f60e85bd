"""Test-process settings, read before any backend is imported.

`scripts/test.sh` runs the suite in as many worker processes as the
machine has cores (pytest-xdist). The tests' tensors are small, so a
backend's own thread pool buys little inside one test, while several pools
on the same cores slow each other down: each worker runs its backend on one
thread. A run without workers (`python -m pytest tests`) keeps the
backends' thread defaults.
"""

import importlib.metadata
import os
import re

import pytest


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
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        _check_grouping(config)
        return
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work has started
            pass
