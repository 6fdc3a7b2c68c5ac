"""Benchmark: seconds per synthetic scan and peak memory, at 2 mm and 1 mm (target: <= 2 s at 2 mm).

Generation (anatomy, rasterising, scanner effects) and writing (three compressed NIfTI files and two
JSON files) are timed separately, on a fixed mix of CTC and chest-abdomen-pelvis scans; peak memory is
the largest traced Python/numpy allocation during one scan (tracemalloc). Wall and CPU time are both
recorded, since a shared machine inflates wall time; the ratios are seconds per scan over the target
(goal <= 1). Run alone it writes results/benchmarks/phantom.json, as the runner does.
    python -m benchmarks.run_all --only phantom [--quick]
    python -m benchmarks.bench_phantom [--n 4] [--n-fine 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

TARGET_S = 2.0
OUT = Path("results") / "benchmarks" / "phantom.json"


def _one(i: int, spacing_mm: float, folder: Path) -> dict:
    from vertebra.io import write_verse_case
    from vertebra.phantom import generate_case

    protocol = ("ctc", "cap")[i % 2]
    site = {"ctc": "ctc_train", "cap": "cap_train"}[protocol]
    tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    case = generate_case(np.random.default_rng([0, 99, i]), protocol=protocol, site=site, spacing_mm=spacing_mm)
    t1, c1 = time.perf_counter(), time.process_time()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    write_verse_case(folder, f"bench{i}", case.image, vertebrae=case.vertebrae, ribs=case.ribs,
                     centroids_mm=case.centroids_mm, meta=case.meta)
    t2 = time.perf_counter()
    return {"protocol": protocol, "shape_zyx": list(case.image.array.shape), "generate_s": t1 - t0, "generate_cpu_s": c1 - c0,
            "write_s": t2 - t1, "peak_mib": peak / 2 ** 20}


def run(quick: bool = False, n: int | None = None, n_fine: int | None = None) -> dict:
    from benchmarks import ratio

    n = n if n is not None else (2 if quick else 4)
    n_fine = n_fine if n_fine is not None else (0 if quick else 1)
    out = {"benchmark": "phantom", "quick": quick, "target_s_per_scan_at_2mm": TARGET_S, "spacings": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for spacing, count in ((2.0, n), (1.0, n_fine)):
            if count == 0:
                continue
            runs = [_one(i, spacing, Path(tmp)) for i in range(count)]
            gen = float(np.mean([r["generate_s"] for r in runs]))
            out["spacings"][f"{spacing:g}mm"] = {
                "scans": runs, "generate_s_per_scan": gen,
                "generate_cpu_s_per_scan": float(np.mean([r["generate_cpu_s"] for r in runs])),
                "write_s_per_scan": float(np.mean([r["write_s"] for r in runs])),
                "peak_mib": float(max(r["peak_mib"] for r in runs)),
                "ratio_to_target": gen / TARGET_S,
                "cpu_ratio_to_target": float(np.mean([r["generate_cpu_s"] for r in runs])) / TARGET_S}
    coarse = out["spacings"]["2mm"]
    out["ratios"] = [
        ratio("generate_vs_target_2mm", coarse["ratio_to_target"], 1.0,
              f"wall seconds to generate one 2 mm scan / {TARGET_S:g} s", higher_is_better=False),
        ratio("generate_cpu_vs_target_2mm", coarse["cpu_ratio_to_target"], 1.0,
              f"CPU seconds to generate one 2 mm scan / {TARGET_S:g} s (less sensitive to load)",
              higher_is_better=False),
        ratio("write_vs_generate_2mm", coarse["write_s_per_scan"] / coarse["generate_s_per_scan"], None,
              "seconds to write the five files / seconds to generate", higher_is_better=False),
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4, help="scans at 2 mm")
    parser.add_argument("--n-fine", type=int, default=1, help="scans at 1 mm")
    args = parser.parse_args()
    from vertebra.results import provenance, write_json_atomic

    started = time.time()
    res = run(n=args.n, n_fine=args.n_fine)
    res["provenance"] = provenance(0, {"n": args.n, "n_fine": args.n_fine}, started)
    write_json_atomic(OUT, res)
    for key, r in res["spacings"].items():
        print(f"{key}: {r['generate_s_per_scan']:.2f} s/scan generation ({r['generate_cpu_s_per_scan']:.2f} s CPU; "
              f"+{r['write_s_per_scan']:.2f} s writing), "
              f"peak {r['peak_mib']:.0f} MiB, {r['ratio_to_target']:.2f} x the {TARGET_S:g} s target "
              f"({r['cpu_ratio_to_target']:.2f} x in CPU time)")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
