"""Benchmark: does data loading overlap training? (goal: the loader's wait < 10% of the step time).

`vertebra.train.train` logs, for every step, ``wait_s`` (time spent waiting for the next batch from the
sampler's background thread, i.e. augmentation not hidden behind the previous step) and ``seconds``
(the whole step, wait included). This benchmark reads those columns from the training logs of the quick
direct rows (Table 2's U-Net rows, whose sampler is `vertebra.direct_training.AugmentedCopies`): the
finished ones under ``results/runs/unet-*/`` whose params.json says ``"scale": "quick"``, else the
longest log of a quick row still training in the cache (``<cache>/runs/unet-*``; a log of more than
`MIN_STEPS` steps cannot be a smoke run). The first step (model warm-up, first augmentation with
nothing to overlap) is left out. Nothing is trained here: it costs no CPU.

    python -m benchmarks.run_all --only loader
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks import ratio

GOAL = 0.10
RUNS = Path("results") / "runs"
#: smoke rows train 6 steps; a log longer than this is a quick (or paper) run
MIN_STEPS = 20


def _is_quick(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "params.json").read_text(encoding="utf-8")).get("scale") == "quick"
    except (OSError, json.JSONDecodeError):
        return False


def _read_timings(log: Path) -> tuple[np.ndarray, np.ndarray]:
    from vertebra.train import read_log_csv

    rows = [r for r in read_log_csv(log) if r.get("wait_s") not in (None, "") and r.get("seconds") not in (None, "")]
    wait = np.array([float(r["wait_s"]) for r in rows[1:]])
    seconds = np.array([float(r["seconds"]) for r in rows[1:]])
    return wait, seconds


def training_logs(runs: Path = RUNS) -> tuple[list[Path], str]:
    """The logs to read and where they came from ("finished quick runs" or "a quick run in progress")."""
    from vertebra.cache import cache_dir

    finished = sorted(d / "train_log.csv" for d in runs.glob("unet-*")
                      if (d / "train_log.csv").is_file() and _is_quick(d))
    if finished:
        return finished, "finished quick runs"
    live = [p for p in (cache_dir() / "runs").glob("unet-*/train_log.csv") if len(_read_timings(p)[0]) >= MIN_STEPS]
    if live:
        return [max(live, key=lambda p: len(_read_timings(p)[0]))], "a quick run in progress (cache)"
    return [], ""


def run(quick: bool = False) -> dict:
    logs, source = training_logs()
    if not logs:
        return {"benchmark": "loader", "skipped": "no quick direct training log yet (results/runs/unet-*/"
                                                  "train_log.csv); run `vertebra reproduce --scale quick`"}
    per_log = []
    for log in logs:
        wait, seconds = _read_timings(log)
        per_log.append({"run": log.parent.name, "steps": int(len(wait)),
                        "wait_fraction_total": float(wait.sum() / seconds.sum()),
                        "wait_fraction_median": float(np.median(wait / seconds)),
                        "wait_s_median": float(np.median(wait)), "step_s_median": float(np.median(seconds)),
                        "steps_waiting_over_10pct": int((wait > GOAL * seconds).sum())})
    total = float(np.mean([r["wait_fraction_total"] for r in per_log]))
    worst = max(r["wait_fraction_total"] for r in per_log)
    ratios = [ratio("loader_wait_fraction", total, GOAL,
                    f"seconds waiting for a batch / seconds of the step, summed over steps 2.. "
                    f"(mean over {len(per_log)} log(s): {source})", higher_is_better=False),
              ratio("loader_wait_fraction_worst_run", worst, GOAL, "the same, the worst run",
                    higher_is_better=False)]
    return {"benchmark": "loader", "quick": quick, "ratios": ratios, "source": source, "per_run": per_log}
