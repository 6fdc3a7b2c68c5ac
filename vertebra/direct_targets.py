"""Inputs and targets of the direct U-Net on its fixed grid (§2.2), cached per case.

The whole scan (canonical orientation, arrays (z, y, x)) is resampled to the network grid
``Scale.direct_shape_zyx`` (paper 192 x 128 x 128) covering the scan's full physical extent, clipped to
100-1000 HU and scaled to [0, 1]. The target is a class map on the same grid:

=============  ==============================================================
classes        target values
=============  ==============================================================
L1             1 = L1
L1,T12         1 = L1, 2 = T12
L1,T12+ribs    1 = L1, 2 = T12 with its pair of ribs merged in
L1,T12,ribs    1 = L1, 2 = T12, 3 = the ribs of T12
=============  ==============================================================

"T12" is the vertebra just above L1 (T13 when a 13th rib-bearing vertebra is present); its ribs are the
rib number that ``meta["rib_vertebra"]`` assigns to it (left k and right 100 + k in the rib map).
Labels come from the truth (``hand`` rows) or from the aligned pseudo-masks (``pseudo`` rows, via
`vertebra.pseudomask.training_labels`, where 20 = L1 as in VerSe).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import labels as verse
from .cache import cache_dir
from .errors import InputError
from .experiments import DIRECT_CLASSES
from .image import Geometry, Volume
from .preprocess import resample_to_shape, window
from .results import write_bytes_atomic

log = logging.getLogger(__name__)

#: HU window of the direct U-Net's input (§2.2)
HU_MIN, HU_MAX = 100.0, 1000.0
#: bump when the preprocessing changes, so that cached arrays are rebuilt
TARGETS_VERSION = 1


def class_names(classes: str) -> tuple[str, ...]:
    """``"L1,T12+ribs"`` → ``("L1", "T12+rib")`` (the foreground classes, in target order 1, 2, ...)."""
    try:
        return DIRECT_CLASSES[classes.replace(" ", "")]
    except KeyError:
        raise ValueError(f"unknown class variant {classes!r}; choose one of {sorted(DIRECT_CLASSES)}") from None


def class_map(vertebrae: np.ndarray, ribs: np.ndarray | None, meta: dict, classes: str) -> np.ndarray:
    """The uint8 target of a class variant from a VerSe label map (+ rib map) on the same grid."""
    names = class_names(classes)
    out = np.zeros(vertebrae.shape, np.uint8)
    present = [lab for lab in verse.CRANIOCAUDAL if lab in set(np.unique(vertebrae).tolist())]
    above = None
    if verse.L1 in present and present.index(verse.L1) > 0:
        above = present[present.index(verse.L1) - 1]
        if above not in (verse.T12, verse.T13):
            above = None  # L1 is the top vertebra of the label map
    rib_mask = np.zeros(vertebrae.shape, bool)
    if any("rib" in n for n in names) and above is not None:
        if ribs is None:
            raise ValueError(f"class variant {classes!r} needs a rib label map")
        numbers = [int(k) for k, lab in (meta.get("rib_vertebra") or {}).items() if int(lab) == above]
        rib_mask = np.isin(ribs, numbers + [100 + k for k in numbers])
    for value, name in enumerate(names, start=1):
        if name == "L1":
            out[vertebrae == verse.L1] = value
        elif name in ("T12", "T12+rib") and above is not None:
            out[vertebrae == above] = value
            if name == "T12+rib":
                out[rib_mask & (out == 0)] = value
        elif name == "rib":
            out[rib_mask & (out == 0)] = value
    return out


@dataclass
class DirectSample:
    """One case on the network grid: input in [0, 1] and class map, both (z, y, x), and the grid."""

    case_id: str
    image: np.ndarray
    target: np.ndarray | None
    geometry: Geometry
    centroids_mm: dict
    meta: dict


def _cache_key(case_dir: Path, shape_zyx, classes: str, label_source: str) -> str:
    meta_file = next(case_dir.glob("*_meta.json"), None)
    stamp = meta_file.read_bytes() if meta_file else str(sorted(p.stat().st_size for p in case_dir.iterdir()))
    digest = hashlib.sha1(repr((TARGETS_VERSION, tuple(shape_zyx), classes, label_source)).encode()
                          + (stamp if isinstance(stamp, bytes) else stamp.encode())).hexdigest()[:16]
    return f"{case_dir.name}-{digest}"


def load_direct_sample(case_dir: str | Path, shape_zyx, classes: str = "L1", label_source: str = "hand",
                       cache: str | Path | None = None) -> DirectSample:
    """Preprocess a VerSe case folder for the direct U-Net, reading/writing ``<cache>/direct/<key>.npz``."""
    from .io import read_verse_case, to_canonical

    case_dir = Path(case_dir)
    folder = cache_dir(cache) / "direct"
    file = folder / f"{_cache_key(case_dir, shape_zyx, classes, label_source)}.npz"
    if file.exists():
        with np.load(file, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            return DirectSample(info["case_id"], z["image"], z["target"] if z["target"].size else None,
                                Geometry.from_dict(info["geometry"]),
                                {int(k): tuple(v) for k, v in info["centroids_mm"].items()}, info["meta"])
    case = read_verse_case(case_dir)
    image, _ = to_canonical(case.image)
    grid = resample_to_shape(image, shape_zyx, antialias=True)
    target = None
    if label_source == "hand" and case.vertebrae is not None:
        vert = to_canonical(case.vertebrae)[0]
        ribs = to_canonical(case.ribs)[0].array if case.ribs is not None else None
        target = class_map(vert.array, ribs, case.meta, classes)
    elif label_source == "pseudo":
        from .pseudomask import training_labels
        vert = to_canonical(training_labels(case_dir, cache=cache))[0]
        target = class_map(vert.array, None, case.meta, classes)
    elif label_source != "hand":
        raise ValueError(f"label_source must be 'hand' or 'pseudo', got {label_source!r}")
    if target is not None:
        target = resample_to_shape(Volume(target, vert.geometry), shape_zyx, interpolator="nearest",
                                   default_hu=0).array
    sample = DirectSample(case.case_id, window(grid.array, HU_MIN, HU_MAX), target, grid.geometry,
                          {int(k): tuple(float(c) for c in v) for k, v in case.centroids_mm.items()}, case.meta)
    info = {"case_id": sample.case_id, "geometry": sample.geometry.to_dict(),
            "centroids_mm": {str(k): v for k, v in sample.centroids_mm.items()}, "meta": sample.meta}
    folder.mkdir(parents=True, exist_ok=True)
    import io as _io
    buffer = _io.BytesIO()
    np.savez_compressed(buffer, image=sample.image,
                        target=sample.target if sample.target is not None else np.zeros(0, np.uint8),
                        info=np.array(json.dumps(info, default=_jsonable)))
    write_bytes_atomic(file, buffer.getvalue())
    return sample


def _jsonable(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def require_l1(sample: DirectSample, path) -> None:
    if sample.target is not None and not (sample.target == 1).any():
        raise InputError("has no L1 in its training labels", path)
