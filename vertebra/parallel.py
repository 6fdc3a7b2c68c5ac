"""Running independent per-scan work in several processes, with the results in input order.

Generating a cohort, running the pseudo-mask tool over one and preparing scans are loops over scans that
do not depend on each other; on a machine with several cores they run in `jobs` worker processes.
Each worker keeps torch (and the BLAS/OpenMP libraries under numpy and scipy) to one thread, so that
`jobs` workers use `jobs` cores and the per-scan numbers are the same as in a single process: every
piece of work here draws its randomness from a generator seeded by the scan, never from the worker.

>>> parallel_map(abs, [-1, 2, -3], jobs=1, progress=False)
[1, 2, 3]
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, TypeVar

from tqdm.auto import tqdm

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: environment variables that cap the thread pools of the numerical libraries in a worker
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def default_jobs() -> int:
    """The number of cores this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _one_thread() -> None:
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:  # torch is a dependency, but the pool must not need it
        pass


def parallel_map(func: Callable[[T], R], items: Iterable[T], jobs: int = 1, desc: str | None = None,
                 progress: bool = True, unit: str = "scan") -> list[R]:
    """``[func(x) for x in items]`` in ``jobs`` processes (``jobs <= 1``: in this process).

    ``func`` must be a module-level function (it is pickled); an exception in any call is raised here
    after the pool shuts down, as the same exception type.
    """
    items = list(items)
    jobs = max(1, min(int(jobs), len(items))) if items else 1
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress or not items)
    try:
        if jobs == 1:
            results = []
            for x in items:
                results.append(func(x))
                bar.update()
            return results
        # "spawn": a fresh interpreter per worker; forking a process that has started torch's thread
        # pools can hang
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread) as pool:
            futures = [pool.submit(func, x) for x in items]
            for f in futures:
                f.add_done_callback(lambda _: bar.update())
            return [f.result() for f in futures]
    finally:
        bar.close()
