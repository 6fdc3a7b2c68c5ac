"""The direct method (§2.2, §3.1): a 3D U-Net segments L1 from the whole scan.

Pipeline of one scan: canonical orientation → resample the whole scan to the network grid, window
100-1000 HU (`vertebra.direct_targets`) → U-Net → argmax → keep the largest L1 component → centroid
(world mm, x, y, z LPS), craniocaudal range and a confidence → mask back on the input's grid.

Training and evaluation of one Table 2 row is `run_row`; the command line is ``vertebra find-l1``.
"""
from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch

from . import __version__
from .direct_targets import HU_MAX, HU_MIN, DirectSample
from .preprocess import memory_order, bounding_box, mask_from_shape, resample_to_shape, window
from .direct_training import predict_probabilities
from .errors import InputError
from .image import Geometry, Volume
from .models import UNet3D, UNetConfig
from .results import write_bytes_atomic, write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "direct_l1_quick.pt"
#: an L1 with its posterior elements is roughly 40-80 cm³; a larger "L1" gets no BMD estimate
MAX_VERTEBRA_CM3 = 300.0


@dataclass
class L1Finding:
    """The L1 found on the network grid: mask (z, y, x), centroid and z-range in world mm, confidence."""

    mask: np.ndarray
    geometry: Geometry
    centroid_mm: tuple[float, float, float] | None
    z_range_mm: tuple[float, float] | None
    mean_probability: float
    margin: float  # 1 - (voxels of the runner-up component / voxels of the kept one); 1 when alone
    n_components: int
    extra: dict = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.centroid_mm is not None

    @property
    def confidence(self) -> float:
        """mean L1 probability inside the kept component x margin to the next candidate (0 if none)."""
        return float(self.mean_probability * self.margin) if self.found else 0.0


def find_l1_on_grid(probs: np.ndarray, geometry: Geometry) -> L1Finding:
    """Largest connected component of ``argmax == 1`` (L1) on the network grid, with its centroid."""
    l1 = _is_argmax_1(probs)
    components, n = ndi.label(l1)
    if n == 0:
        return L1Finding(np.zeros(l1.shape, bool), geometry, None, None, 0.0, 0.0, 0)
    sizes = np.bincount(components.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    mask = components == order[0] + 1
    margin = 1.0 - (sizes[order[1]] / sizes[order[0]] if n > 1 else 0.0)
    grid = Volume(mask, geometry)
    idx = np.argwhere(mask)
    centroid = grid.index_to_world(idx.mean(0))[0]
    z_world = grid.index_to_world(idx)[:, 2]
    half = 0.5 * abs(geometry.spacing_mm[2] * geometry.direction_matrix[2, 2])
    return L1Finding(mask, geometry, tuple(float(c) for c in centroid),
                     (float(z_world.min() - half), float(z_world.max() + half)),
                     float(probs[1][mask].mean()), float(margin), int(n))


def _is_argmax_1(probs: np.ndarray) -> np.ndarray:
    """``probs.argmax(0) == 1``; for two classes as an elementwise comparison (argmax along the first
    axis is a slow strided reduction), with argmax's rules kept: the first of equal values wins and a
    NaN counts as the largest value."""
    if probs.shape[0] != 2:
        return probs.argmax(0) == 1
    background, l1 = probs[0], probs[1]
    out = l1 > background
    nan = np.isnan(l1)
    if nan.any():
        out |= nan & ~np.isnan(background)
    return out


def load_model(weights: str | Path = DEFAULT_WEIGHTS, device: str = "cpu") -> tuple[UNet3D, dict]:
    """A U-Net and its metadata (classes, shape_zyx, config) from a weights file written by `save_weights`."""
    weights = Path(weights)
    if not weights.exists():
        raise InputError("weights file not found (train a row first, or pass --weights)", weights)
    try:
        state = torch.load(weights, map_location=device, weights_only=False)
        model = UNet3D(UNetConfig(**state["config"]))
        model.load_state_dict({k: v.float() for k, v in state["state_dict"].items()})
    except (KeyError, RuntimeError, TypeError, EOFError, pickle.UnpicklingError) as exc:
        raise InputError(f"is not a direct U-Net weights file ({exc})", weights) from None
    shape = state.get("shape_zyx")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(int(n) > 0 and int(n) % 16 == 0
                                                                          for n in shape)):
        raise InputError(f"weights file has no usable network grid shape_zyx ({shape!r}; three sizes "
                         "divisible by 16 are needed)", weights)
    return model.eval(), {k: v for k, v in state.items() if k != "state_dict"}


def save_weights(model: UNet3D, path: str | Path, **meta) -> Path:
    """Weights in float16 (small enough to commit) with the config and ``meta`` (classes, shape_zyx, ...)."""
    import io
    buffer = io.BytesIO()
    torch.save({"config": model.config.to_dict(), "version": __version__, **meta,
                "state_dict": {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu()
                               for k, v in model.state_dict().items()}}, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def predict_sample(model, sample: DirectSample) -> L1Finding:
    """Find L1 in a preprocessed sample (network grid)."""
    return find_l1_on_grid(predict_probabilities(model, sample.image), sample.geometry)


def l1_bmd_hu(image: Volume, mask: np.ndarray, erosion_mm: float = 3.0) -> float:
    """Mean HU in the L1 mask eroded by ``erosion_mm`` and kept anterior to its centroid (the body).

    An opportunistic bone mineral density estimate, as suggested in the paper's conclusion; NaN when
    the eroded mask is empty or the mask is larger than `MAX_VERTEBRA_CM3`.
    """
    voxel_cm3 = float(np.prod(image.spacing_zyx)) / 1000.0
    if not memory_order(mask)[0].any():      # as mask.any(), without a strided pass over a view
        return float("nan")  # nothing found
    tight = bounding_box(mask)
    local = mask[tight]
    if local.sum() * voxel_cm3 > MAX_VERTEBRA_CM3:
        return float("nan")  # far too large to be one vertebra
    box = tuple(slice(max(0, b.start - 1), b.stop + 1) for b in tight)
    corner = np.array([b.start for b in box])
    inside = ndi.distance_transform_edt(mask[box], sampling=image.spacing_zyx) > erosion_mm
    idx = np.argwhere(inside) + corner
    if idx.size == 0:
        return float("nan")
    y_world = image.index_to_world(idx)[:, 1]
    centre_y = image.index_to_world(np.argwhere(local).mean(0) + [b.start for b in tight])[0, 1]
    body = idx[y_world < centre_y]  # LPS: anterior is smaller y
    body = body if body.size else idx
    return float(image.array[tuple(body.T)].astype(float).mean())


def network_input(canonical: Volume, shape_zyx) -> tuple[np.ndarray, Geometry]:
    """The U-Net's input (z, y, x, in [0, 1]) and its grid: the whole canonical scan resampled onto
    `shape_zyx` with anti-aliasing and windowed to 100-1000 HU (§2.2), as in training
    (`vertebra.direct_targets.load_direct_sample` calls the same two functions)."""
    grid = resample_to_shape(canonical, tuple(shape_zyx), antialias=True)
    return window(grid.array, HU_MIN, HU_MAX), grid.geometry


def find_l1(scan: Volume, model, meta: dict) -> tuple[Volume, dict]:
    """Find L1 in a scan (any orientation). Returns the mask on the scan's own grid and the JSON record.

    The mask goes back to the scan's voxels by linear interpolation of the network-grid mask (>= 0.5),
    computed only around the found L1 (`vertebra.preprocess.mask_from_shape`)."""
    from .io import canonical_view, to_canonical

    canonical, how = to_canonical(scan, contiguous=False)    # resampling copies it to float32 anyway
    image, geometry = network_input(canonical, meta["shape_zyx"])
    finding = find_l1_on_grid(predict_probabilities(model, image), geometry)
    mask = np.zeros(scan.array.shape, bool)                  # on the scan's grid, filled through a view
    mask_canonical = mask_from_shape(finding.mask, canonical.array.shape, out=canonical_view(mask, how))
    record = {
        "l1_found": finding.found,
        "l1_centroid_mm": list(finding.centroid_mm) if finding.found else None,
        "l1_z_range_mm": list(finding.z_range_mm) if finding.found else None,
        "confidence": round(finding.confidence, 4),
        "mean_probability": round(finding.mean_probability, 4),
        "margin": round(finding.margin, 4),
        "l1_bmd_hu": l1_bmd_hu(canonical, mask_canonical),
        "model": meta.get("run_id", "direct U-Net"),
        "version": __version__,
        "coordinates": "world mm, LPS (x, y, z)",
    }
    return Volume(mask.view(np.uint8), how.source), record


def cli_find_l1_arguments(parser) -> None:
    parser.add_argument("scan", help="CT scan: NIfTI/NRRD/MHA file, DICOM folder or VerSe case folder")
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="U-Net weights (.pt)")
    parser.add_argument("--out", required=True, help="output folder for l1_mask.nii.gz and l1.json")
    parser.add_argument("--series-uid", default=None, help="which series, when a DICOM folder holds several")


def cli_find_l1(args) -> int:
    """``vertebra find-l1 SCAN --out DIR``: DIR/l1_mask.nii.gz (input geometry) and DIR/l1.json."""
    from .io import read_scan, write_image

    started = time.perf_counter()
    path = Path(args.scan)
    scan = read_scan(path, series_uid=args.series_uid)
    model, meta = load_model(args.weights)
    mask, record = find_l1(scan, model, meta)
    record.update({"input": path.name, "weights": Path(args.weights).name,
                   "seconds": round(time.perf_counter() - started, 2)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".find-l1.", dir=out))  # both files or neither
    try:
        write_image(mask, staging / "l1_mask.nii.gz")
        write_json_atomic(staging / "l1.json", record)
        os.replace(staging / "l1_mask.nii.gz", out / "l1_mask.nii.gz")
        os.replace(staging / "l1.json", out / "l1.json")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("L1 %s in %.1f s", "found" if record["l1_found"] else "not found", record["seconds"])
    return 0


def run_row(params: dict, out_dir: str | Path, table2_path: str | Path | None = None) -> dict:
    """Train and evaluate one Table 2 row of the direct U-Net; see `vertebra.direct_experiment.run_row`."""
    from .direct_experiment import run_row as _run_row
    return _run_row(params, out_dir, table2_path)
