"""Performance benchmarks of `vertebra`, run by ``python -m benchmarks.run_all`` (``make bench``).

Each ``benchmarks/bench_<name>.py`` exposes ``run(quick: bool = False) -> dict`` (``quick`` may be
left out of the signature). A benchmark reports RATIOS measured within one run: the machine is
shared and its speed drifts, so absolute seconds are context only. The runner writes each result to
``results/benchmarks/<name>.json`` (atomically, with provenance) and prints one table of ratio vs goal.

The dict a benchmark returns may hold, besides anything else it wants to keep:

``ratios``
    a list of ``{"metric": str, "ratio": float, "goal": float | None, "meaning": str}``; a ratio
    meets its goal when ``ratio >= goal``, or ``ratio <= goal`` if the entry also holds
    ``"higher_is_better": False``.
``skipped``
    a sentence saying why the benchmark could not run here (e.g. an optional package is missing).

The helpers below time candidates *interleaved*: round after round each candidate runs once, so that
a burst of load on the machine hits all of them alike; the median over rounds is kept.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

def time_interleaved(candidates: dict[str, Callable[[], object]], rounds: int,
                     warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each candidate, `rounds` calls each, interleaved; `warmup` untimed first."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            started = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def ratio(metric: str, value: float, goal: float | None, meaning: str, *,
          higher_is_better: bool = True) -> dict:
    """One entry of a benchmark's ``ratios`` list."""
    return {"metric": metric, "ratio": round(float(value), 3), "goal": goal, "meaning": meaning,
            "higher_is_better": higher_is_better}


def seconds_summary(seconds: dict[str, list[float]]) -> dict[str, dict]:
    """Median and spread of each candidate's timings, for the JSON's context."""
    return {name: {"median_s": round(median(v), 4), "min_s": round(min(v), 4),
                   "max_s": round(max(v), 4), "n": len(v)} for name, v in seconds.items()}
