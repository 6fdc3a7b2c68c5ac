"""Benchmark: our augmentation (flip + rotation + B-spline, one resampling) against TorchIO's
RandomFlip + RandomAffine + RandomElasticDeformation, on the same volumes (goal: ours at least as fast).

Both pipelines transform a CT image (int16 HU) and its label map (uint8) with the same kinds of
transform: independent flips on three axes, a rotation of up to 20 degrees, and a cubic B-spline on a
7-point control grid with up to 7.5 mm displacements. TorchIO resamples once for the affine and again
for the B-spline, evaluating the B-spline at every voxel, for the image and again for the labels. Ours
chains rotation and B-spline into one transform, samples it every 4 voxels into a displacement field
shared by image and labels, and resamples each once (`vertebra.augment.resample`).

    python -m benchmarks.run_all --only augment [--quick]
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from benchmarks import median, ratio, seconds_summary, time_interleaved
from vertebra.augment import Compose, RandomElasticDeformation, RandomFlip, RandomRotation
from vertebra.image import Geometry, Volume

#: (z, y, x) voxels and isotropic spacing (mm): the quick scale's direct grid and the paper's
SIZES = {"96x64x64": ((96, 64, 64), 2.0), "192x128x128": ((192, 128, 128), 1.0)}


def synthetic_scan(shape_zyx, spacing_mm: float, rng: np.random.Generator) -> tuple[Volume, Volume]:
    """A body-shaped cylinder (soft tissue, noise) with a column of five 'vertebrae' (labels 20-24)."""
    z, y, x = np.ogrid[tuple(slice(0, n) for n in shape_zyx)]
    nz, ny, nx = shape_zyx
    body = ((y - ny / 2) / (0.4 * ny)) ** 2 + ((x - nx / 2) / (0.45 * nx)) ** 2 < 1
    spine = ((y - 0.62 * ny) / (0.1 * ny)) ** 2 + ((x - nx / 2) / (0.1 * nx)) ** 2 < 1
    labels = np.zeros(shape_zyx, np.uint8)
    level = np.broadcast_to(20 + (z * 5 // nz), shape_zyx)
    gap = np.broadcast_to((z * 5 % nz) < nz // 10, shape_zyx)  # intervertebral discs
    inside = np.broadcast_to(spine, shape_zyx) & ~gap
    labels[inside] = level[inside]
    image = np.where(np.broadcast_to(body, shape_zyx), 40, -1024).astype(np.int16)
    image[labels > 0] = 300
    image += rng.normal(0, 20, shape_zyx).astype(np.int16)
    geometry = Geometry(spacing_mm=(spacing_mm,) * 3)
    return Volume(image, geometry), Volume(labels, geometry)


def _torchio_pipeline(image: Volume, labels: Volume):
    import torch
    import torchio as tio

    affine = np.diag([*image.geometry.spacing_mm, 1.0])
    subject = tio.Subject(  # TorchIO tensors are (C, x, y, z)
        ct=tio.ScalarImage(tensor=torch.from_numpy(image.array.T.copy())[None], affine=affine),
        seg=tio.LabelMap(tensor=torch.from_numpy(labels.array.T.copy())[None], affine=affine))
    transform = tio.Compose([tio.RandomFlip(axes=(0, 1, 2)),
                             tio.RandomAffine(scales=0, degrees=20, default_pad_value="minimum"),
                             tio.RandomElasticDeformation()])
    return lambda: transform(subject)


def run(quick: bool = False) -> dict:
    try:
        import torch
        import torchio
    except ImportError:
        return {"skipped": "TorchIO is not installed (pip install -e '.[bench]')"}
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ours = Compose([RandomFlip(axes=("x", "y", "z")), RandomElasticDeformation(),
                    RandomRotation(max_degrees=20)])
    sizes = {"96x64x64": SIZES["96x64x64"]} if quick else SIZES
    ratios, context = [], {"sitk_threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
                           "torch_threads": torch.get_num_threads(),
                           "torchio_version": torchio.__version__, "sizes": {}}
    for size_name, (shape, spacing_mm) in sizes.items():
        image, labels = synthetic_scan(shape, spacing_mm, rng)
        candidates = {
            "ours": lambda: ours.sample(rng).apply(image, labels),
            "ours_exact_bspline": lambda: ours.sample(rng).apply(image, labels, field_step_voxels=None),
            "torchio": _torchio_pipeline(image, labels),
        }
        rounds = 3 if quick or shape[0] > 100 else 5
        seconds = time_interleaved(candidates, rounds=rounds)
        t = {name: median(v) for name, v in seconds.items()}
        ratios.append(ratio(f"speedup_vs_torchio_{size_name}", t["torchio"] / t["ours"], 1.0,
                            "TorchIO seconds / ours, image + labels, medians of interleaved rounds"))
        ratios.append(ratio(f"coarse_field_speedup_{size_name}", t["ours_exact_bspline"] / t["ours"],
                            None, "ours with the B-spline at every voxel / ours with the 4-voxel field"))
        ratios.append(ratio(f"single_resampling_exact_vs_torchio_{size_name}",
                            t["torchio"] / t["ours_exact_bspline"], None,
                            "TorchIO / ours evaluating the B-spline at every voxel (one resampling)"))
        context["sizes"][size_name] = {"spacing_mm": spacing_mm, "rounds": rounds,
                                       "seconds": seconds_summary(seconds)}
    return {"benchmark": "augment", "quick": quick, "ratios": ratios, "context": context}
