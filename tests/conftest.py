"""Test-process settings, read before any backend is imported.

`scripts/test.sh` runs the suite in as many worker processes as the
machine has cores (pytest-xdist). The tests' tensors are small, so a
backend's own thread pool buys little inside one test, while several pools
on the same cores slow each other down: each worker runs its backend on one
thread. A run without workers (`python -m pytest tests`) keeps the
backends' defaults.
"""

import os

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


def pytest_configure(config):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work has started
            pass
