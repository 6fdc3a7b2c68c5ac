"""Benchmark: seconds per scan of the pseudo-mask tool (target ≤ 5 s at 2 mm), stage by stage.

Runs the tool (not its cache) on the first few scans of the `pseudo` cohort at the given spacing.
    python benchmarks/bench_pseudomask.py
"""
from __future__ import annotations

import json
import time


def run(n_scans: int = 3, spacing_mm: float = 2.0, seed: int = 0) -> dict:
    from vertebra.io import read_image
    from vertebra.phantom import cohort
    from vertebra.pseudomask import segment_spine
    from vertebra.pseudomask.cases import ct_path

    per_scan, stages = [], {}
    for case_dir in cohort("pseudo", spacing_mm=spacing_mm, n=n_scans, seed=seed):
        started = time.perf_counter()
        image = read_image(ct_path(case_dir), kind="ct")
        result = segment_spine(image)
        per_scan.append(time.perf_counter() - started)
        for name, seconds in result.timings_s.items():
            stages.setdefault(name, []).append(seconds)
    return {"benchmark": "pseudomask", "spacing_mm": spacing_mm, "n_scans": len(per_scan),
            "seconds_per_scan": round(sum(per_scan) / len(per_scan), 3),
            "max_seconds": round(max(per_scan), 3), "target_seconds": 5.0,
            "stages_s": {k: round(sum(v) / len(v), 3) for k, v in stages.items()}}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
