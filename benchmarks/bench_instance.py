"""Benchmark: the cost of the iterative instance segmentation on test scans (§2.3).

On the first few `ctc_test` scans: network passes per vertebra found, the traversal's total time over
the time spent inside its own network passes (the bookkeeping overhead; target ≤ 1.5), and the time of
a whole labelling against one forward pass of the direct U-Net on the same scan.
Weights: the `instance` row's (results/runs/instance/weights.pt), else the packaged default, else an
untrained model of the scale (then the pass counts say little; the result says so).
    python benchmarks/bench_instance.py
"""
from __future__ import annotations

import json
import time
from pathlib import Path


def _bundle(scale, weights):
    from vertebra.instance.traversal import TraversalConfig
    from vertebra.instance.weights import DEFAULT_WEIGHTS, InstanceBundle, load_bundle
    from vertebra.models.instance_unet import InstanceUNet, InstanceUNetConfig

    for path in ([weights] if weights else [Path("results/runs/instance/weights.pt"), DEFAULT_WEIGHTS]):
        if path and Path(path).is_file():
            return load_bundle(path), str(path)
    model = InstanceUNet(InstanceUNetConfig.for_scale(scale)).eval()
    cfg = TraversalConfig(patch_voxels=scale.instance_patch, scan_stride_voxels=scale.instance_scan_stride)
    return InstanceBundle({"down": model}, scale.instance_spacing_mm, cfg), "untrained"


def run(n_scans: int = 3, scale_name: str = "quick", seed: int = 0, weights: str | None = None) -> dict:
    import torch

    from vertebra.experiments import get_scale
    from vertebra.instance.pipeline import label_spine
    from vertebra.io import read_verse_case, to_canonical
    from vertebra.models.unet import UNet3D, UNetConfig
    from vertebra.phantom import cohort
    from vertebra.preprocess import DIRECT_WINDOW_HU, resample_to_shape, window

    scale = get_scale(scale_name)
    bundle, source = _bundle(scale, weights)
    direct = UNet3D(UNetConfig.for_scale(scale)).eval()
    rows = []
    for case_dir in cohort("ctc_test", spacing_mm=scale.phantom_spacing_mm, n=n_scans, seed=seed):
        image = read_verse_case(case_dir).image
        result = label_spine(bundle, image, map_back=False)
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
                     "vs_direct": result.seconds / max(direct_s, 1e-9)})

    def mean(key):
        return round(sum(r[key] for r in rows) / len(rows), 3)
    return {"benchmark": "instance", "scale": scale_name, "weights": source, "n_scans": len(rows),
            "passes_per_vertebra": mean("passes_per_vertebra"), "overhead_ratio": mean("overhead_ratio"),
            "target_overhead_ratio": 1.5, "labelling_s": mean("labelling_s"),
            "direct_forward_s": mean("direct_forward_s"), "labelling_vs_direct_forward": mean("vs_direct"),
            "per_scan": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
