"""Benchmark: seconds per scan of the pseudo-mask tool (target ≤ 5 s at 2 mm), stage by stage.

Runs the tool (not its cache) on the first few scans of the `pseudo` cohort at the given spacing; the
ratio is the mean seconds per scan (reading included) over the target (goal <= 1).
    python -m benchmarks.run_all --only pseudomask [--quick]
"""
from __future__ import annotations

import json
import time


TARGET_S = 5.0


def run(quick: bool = False, n_scans: int | None = None, spacing_mm: float = 2.0, seed: int = 0) -> dict:
    from benchmarks import ratio

    from vertebra.io import read_image
    from vertebra.phantom import cohort
    from vertebra.pseudomask import segment_spine
    from vertebra.pseudomask.cases import ct_path

    n_scans = n_scans or (2 if quick else 3)
    per_scan, stages = [], {}
    for case_dir in cohort("pseudo", spacing_mm=spacing_mm, n=n_scans, seed=seed):
        started = time.perf_counter()
        image = read_image(ct_path(case_dir), kind="ct")
        result = segment_spine(image)
        per_scan.append(time.perf_counter() - started)
        for name, seconds in result.timings_s.items():
            stages.setdefault(name, []).append(seconds)
    mean_s = sum(per_scan) / len(per_scan)
    ratios = [ratio("seconds_vs_target", mean_s / TARGET_S, 1.0,
                    f"seconds per {spacing_mm:g} mm scan (read + segment_spine) / {TARGET_S:g} s",
                    higher_is_better=False),
              ratio("slowest_vs_target", max(per_scan) / TARGET_S, None, "the slowest scan's seconds / target",
                    higher_is_better=False)]
    return {"benchmark": "pseudomask", "quick": quick, "ratios": ratios, "spacing_mm": spacing_mm,
            "n_scans": len(per_scan), "seconds_per_scan": round(mean_s, 3),
            "max_seconds": round(max(per_scan), 3), "target_seconds": TARGET_S,
            "stages_s": {k: round(sum(v) / len(v), 3) for k, v in stages.items()}}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
