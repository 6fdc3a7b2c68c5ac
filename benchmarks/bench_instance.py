"""Benchmark: the cost of the iterative instance segmentation on test scans (§2.3).

On the first few `ctc_test` scans: network passes per vertebra found, the traversal's total time over
the time spent inside its own network passes (the bookkeeping overhead; goal ≤ 1.5), the time of a
whole labelling against one forward pass of the direct U-Net on the same scan, and the peak memory of
a labelling (resident MiB above the level before it, see `benchmarks.bench_inference.peak_memory_mib`).
Weights: the `instance` row's (results/runs/instance/weights.pt), else the packaged default, else an
untrained model of the scale (then the pass counts say little; the result says so).
    python -m benchmarks.run_all --only instance [--quick]
"""
from __future__ import annotations

import json
import time
from pathlib import Path


def instance_bundle(scale, weights: str | Path | None = None):
    """(bundle, source): the given or trained weights when present, else an untrained model of the scale."""
    from vertebra.instance.run import FIRST_BOX
    from vertebra.instance.traversal import TraversalConfig
    from vertebra.instance.weights import DEFAULT_WEIGHTS, InstanceBundle, load_bundle
    from vertebra.models.instance_unet import InstanceUNet, InstanceUNetConfig

    for path in ([weights] if weights else [Path("results/runs/instance/weights.pt"), DEFAULT_WEIGHTS]):
        if path and Path(path).is_file():
            return load_bundle(path), str(path)
    model = InstanceUNet(InstanceUNetConfig.for_scale(scale)).eval()
    cfg = TraversalConfig(patch_voxels=scale.instance_patch, scan_stride_voxels=scale.instance_scan_stride,
                          first_box=FIRST_BOX)
    return InstanceBundle({"down": model}, scale.instance_spacing_mm, cfg), "untrained"


def run(quick: bool = False, n_scans: int | None = None, scale_name: str = "quick", seed: int = 0,
        weights: str | None = None) -> dict:
    import torch

    from vertebra.experiments import get_scale
    from vertebra.instance.pipeline import label_spine
    from vertebra.io import read_verse_case, to_canonical
    from vertebra.models.unet import UNet3D, UNetConfig
    from vertebra.phantom import cohort
    from vertebra.preprocess import DIRECT_WINDOW_HU, resample_to_shape, window

    from benchmarks import ratio
    from benchmarks.bench_inference import peak_memory_mib

    n_scans = n_scans or (2 if quick else 3)
    scale = get_scale(scale_name)
    bundle, source = instance_bundle(scale, weights)
    direct = UNet3D(UNetConfig.for_scale(scale)).eval()
    rows = []
    for case_dir in cohort("ctc_test", spacing_mm=scale.phantom_spacing_mm, n=n_scans, seed=seed):
        image = read_verse_case(case_dir).image
        result, peak_mib = peak_memory_mib(lambda: label_spine(bundle, image, map_back=True))
        grid = resample_to_shape(to_canonical(image)[0], scale.direct_shape_zyx)
        x = torch.from_numpy(window(grid.array, *DIRECT_WINDOW_HU))[None, None]
        with torch.no_grad():
            t0 = time.perf_counter()
            direct(x)
            direct_s = time.perf_counter() - t0
        traversal_s = sum(t.seconds for t in result.traversals)
        rows.append({"case": Path(case_dir).name, "vertebrae": len(result.levels), "passes": result.passes,
                     "passes_per_vertebra": result.passes / max(len(result.levels), 1),
                     "traversal_s": traversal_s, "network_s": result.network_seconds,
                     "overhead_ratio": traversal_s / max(result.network_seconds, 1e-9),
                     "labelling_s": result.seconds, "direct_forward_s": direct_s,
                     "vs_direct": result.seconds / max(direct_s, 1e-9), "peak_mib": peak_mib})

    def mean(key):
        return round(sum(r[key] for r in rows) / len(rows), 3)
    ratios = [
        ratio("traversal_vs_own_network_passes", mean("overhead_ratio"), 1.5,
              "traversal seconds / seconds inside its network passes (mean over scans)", higher_is_better=False),
        ratio("passes_per_vertebra", mean("passes_per_vertebra"), None,
              f"network passes / vertebrae found ({source} weights)", higher_is_better=False),
        ratio("labelling_vs_direct_forward", mean("vs_direct"), None,
              "label_spine seconds (with the mask mapped back) / one direct U-Net forward pass",
              higher_is_better=False),
    ]
    return {"benchmark": "instance", "quick": quick, "ratios": ratios, "scale": scale_name, "weights": source,
            "n_scans": len(rows), "peak_mib": max((r["peak_mib"] or 0) for r in rows),
            "passes_per_vertebra": mean("passes_per_vertebra"), "overhead_ratio": mean("overhead_ratio"),
            "labelling_s": mean("labelling_s"),
            "direct_forward_s": mean("direct_forward_s"), "labelling_vs_direct_forward": mean("vs_direct"),
            "per_scan": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
