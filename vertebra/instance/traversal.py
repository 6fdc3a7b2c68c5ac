"""Walking the instance U-Net along the spine, one vertebra at a time (§2.3 of the paper).

On a `PreparedScan` (z index increasing towards the head), in top-down mode:

1. The first box is centred on the mean of the bone voxels (> ``bone_hu``) in the top two slices
   (``first_box="bone_mean"``, the paper's rule): in x and y on that mean, in z on those two slices
   (``first_box_z="first_slices"``), so that half the box reaches past the end of the scan, as a
   training patch centred on the scan's first, partly visible vertebra does. (``first_box_z="edge"``
   puts the box's top edge on the top slice instead, wholly inside the scan: the networks trained
   without fix (b) found no vertebra there on most validation scans, for they learnt to start where the
   scan ends inside the patch.) A flat
   patient table under (or, prone, in front of) the body is "bone" to that rule and pulls the mean off
   the spine; ``first_box="bone_peaks"`` instead finds the few densest spots of bone in the top slab
   (a square window of about a vertebral body), lets the network segment each, and starts where it
   found the most vertebra (one pass per candidate). Given ``on_spine`` (fix (d): the context network's
   probability that a point lies on a vertebra, 0 where it does not call the point a vertebra), it
   starts instead at the candidate most likely on the spine, when the judge calls any of them a
   vertebra: the instance network at the quick scale segments more of a rib or the sternum than of a
   vertebra seen from above. When it calls none of them a vertebra, it looks for the spine itself
   (``first_box_judge_grid_mm``): where the vertebral bodies are osteoporotic, ribs are the densest
   bone of the first slab and no bone peak lies on the spine.
2. If the network finds less than ``min_bone_cm3`` (1 cm³) of vertebra there, the box scans the scan
   from the top corner with a stride of ``scan_stride_voxels`` in x and y (paper: 64), then one stride
   lower (at most ``scan_levels`` grids), until it finds more than ``scan_bone_cm3`` of vertebra.
3. Centring: the box moves to the centroid of the segmented vertebra (largest connected component of
   probability > ``threshold``, outside the memory) until the centre moves less than ``centre_tol_mm``
   (2 mm) or after ``max_centring`` (5) passes. It only ever moves down (top-down) or up (bottom-up).
4. The mask goes into the instance memory, with the regressed level (and completeness, if the model has
   the head). The next box starts ``step_fraction`` of the vertebra's height further along the spine.
5. It stops at the end of the scan, when the level exceeds ``max_level`` (24; below 1 bottom-up), when
   no new bone is found, or after ``max_vertebrae``. "Only move down" holds for the walk as well as for
   the box: a segment whose centroid is not further along the spine than the previous vertebra's is
   not a new vertebra ahead, and the walk stops there (reason "behind"; without this a walk that ran off
   the spine at its end came back up along it, labelling it a second time).

Every network call is counted (``passes``), and the time spent inside the network is kept apart from
the total, for the benchmark.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import ndimage

from .patches import crop
from .scan import PreparedScan, to_network


FIRST_BOX_RULES = ("bone_mean", "bone_peaks")
#: where the first box lies along the spine (module docstring, step 1)
FIRST_BOX_Z = ("first_slices", "edge")


@dataclass(frozen=True)
class TraversalConfig:
    """The traversal's constants; defaults are the paper's (1 mm, 128³, stride 64, 1 cm³, 2 mm, 5 passes)."""

    patch_voxels: int = 128
    threshold: float = 0.5           # output threshold, tuned on validation patches (§3.2)
    min_bone_cm3: float = 1.0
    scan_stride_voxels: int = 64
    scan_bone_cm3: float = 1.0
    #: x-y grids of the search, one stride apart in z (the paper scans "across the image" at the top;
    #: searching the whole scan cost up to ~150 passes per scan where a network finds nothing)
    scan_levels: int = 2
    bone_hu: float = 200.0
    centre_tol_mm: float = 2.0
    max_centring: int = 5
    max_level: float = 24.0
    max_vertebrae: int = 25
    step_fraction: float = 0.75
    #: where the first box goes: "bone_mean" (the paper: mean of the bone voxels in the first two slices)
    #: or "bone_peaks" (the ``first_box_candidates`` densest spots of bone in the first
    #: ``first_box_slab_mm``, densities over a ``first_box_window_mm`` square; the network looks at each
    #: and the one where it segments the most vertebra wins)
    first_box: str = "bone_mean"
    first_box_candidates: int = 3
    first_box_slab_mm: float = 10.0
    first_box_window_mm: float = 40.0
    #: "first_slices": the first box centred on the scan's first two slices (the paper); "edge": its
    #: edge on the scan's edge
    first_box_z: str = "first_slices"
    #: with a judge (fix (d)) that calls no bone peak a vertebra, the first box goes where it finds a
    #: vertebra most likely, on a grid this far apart (mm) over the first slices, where there is bone
    #: within the window (0: never; the voxel rule then decides)
    first_box_judge_grid_mm: float = 16.0

    def __post_init__(self):
        if self.first_box not in FIRST_BOX_RULES:
            raise ValueError(f"first_box must be one of {FIRST_BOX_RULES}, got {self.first_box!r}")
        if self.first_box_z not in FIRST_BOX_Z:
            raise ValueError(f"first_box_z must be one of {FIRST_BOX_Z}, got {self.first_box_z!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FoundVertebra:
    """One segmented vertebra: its instance index in ``TraversalResult.instances`` and what came with it."""

    index: int
    level: float
    completeness: float | None
    centroid_zyx: np.ndarray
    z_min: int
    z_max: int
    voxels: int
    passes: int


@dataclass
class TraversalResult:
    """Instance map (0 = background, i + 1 = vertebra i in order of discovery) and the vertebrae found."""

    instances: np.ndarray
    vertebrae: list[FoundVertebra] = field(default_factory=list)
    passes: int = 0
    seconds: float = 0.0
    network_seconds: float = 0.0
    stop_reason: str = ""


#: ``on_spine(centres)``: for (n, 3) voxel indices (z, y, x) of the prepared scan, the probability that
#: each lies on a vertebra, 0 where the judge does not call it one (fix (d)'s context network,
#: `pipeline.context_judge`)
SpineJudge = Callable[[np.ndarray], np.ndarray]


class Traversal:
    """One traversal of ``model`` over ``scan`` in direction ``"down"`` (top-down) or ``"up"`` (bottom-up);
    ``on_spine`` (optional) helps choose the first box (module docstring, step 1)."""

    def __init__(self, model: torch.nn.Module, scan: PreparedScan, config: TraversalConfig, direction: str = "down",
                 on_spine: SpineJudge | None = None):
        if direction not in ("down", "up"):
            raise ValueError(f"direction must be 'down' or 'up', got {direction!r}")
        self.model, self.scan, self.cfg, self.on_spine = model, scan, config, on_spine
        self.sign = -1 if direction == "down" else 1              # z index change when moving along the spine
        self.image = to_network(scan.image_hu)
        self.memory = np.zeros(scan.shape, bool)
        self.instances = np.zeros(scan.shape, np.int16)
        self.voxel_cm3 = scan.spacing_mm ** 3 / 1000.0
        self.passes, self.network_seconds = 0, 0.0
        self.device = next(model.parameters()).device

    # ------------------------------------------------------------------ one network pass
    def segment(self, centre_zyx) -> tuple[np.ndarray, np.ndarray, float, float | None]:
        """Network pass at ``centre_zyx`` → (mask in the patch, patch corner, level, completeness)."""
        size = self.cfg.patch_voxels
        img, corner = crop(self.image, centre_zyx, size, np.float32(0.0))
        mem, _ = crop(self.memory, centre_zyx, size, False)
        x = torch.from_numpy(np.stack([img, mem.astype(np.float32)])[None]).to(self.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self.model(x)
        self.network_seconds += time.perf_counter() - t0
        self.passes += 1
        prob = torch.sigmoid(out["segmentation"])[0, 0].cpu().numpy()
        mask = (prob > self.cfg.threshold) & ~mem
        lo, hi = np.maximum(-corner, 0), np.minimum(np.asarray(self.scan.shape) - corner, size)
        inside = np.zeros_like(mask)
        inside[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
        mask &= inside                                          # nothing outside the scan
        comp, n = ndimage.label(mask)
        if n > 1:
            sizes = np.bincount(comp.ravel())[1:]
            mask = comp == (1 + int(np.argmax(sizes)))
        completeness = None
        if out.get("completeness") is not None:
            completeness = float(torch.sigmoid(out["completeness"])[0])
        return mask, corner, float(out["level"][0]), completeness

    def _centroid(self, mask: np.ndarray, corner: np.ndarray) -> np.ndarray:
        return np.argwhere(mask).mean(0) + corner

    def centre_on_vertebra(self, centre_zyx) -> tuple:
        """Re-centre on the segmented vertebra (step 3); returns (mask, corner, level, completeness, passes)."""
        centre = np.asarray(centre_zyx, float)
        start = self.passes
        for _ in range(self.cfg.max_centring):
            mask, corner, level, completeness = self.segment(centre)
            if mask.sum() * self.voxel_cm3 < self.cfg.min_bone_cm3:
                return mask, corner, level, completeness, self.passes - start
            new = self._centroid(mask, corner)
            new[0] = min(new[0], centre[0]) if self.sign < 0 else max(new[0], centre[0])   # one way only
            moved_mm = float(np.linalg.norm(new - centre)) * self.scan.spacing_mm
            centre = new
            if moved_mm < self.cfg.centre_tol_mm:
                break
        return mask, corner, level, completeness, self.passes - start

    def _first_slab(self, depth: int) -> tuple[np.ndarray, float]:
        """The first ``depth`` slices the walk meets (top-down: the last ones), and the z of the first
        box's centre (``first_box_z``: on the first two slices, or the box's edge on the scan's edge)."""
        nz, half = self.scan.shape[0], self.cfg.patch_voxels // 2
        on_edge = self.cfg.first_box_z == "edge"
        if self.sign < 0:
            return self.scan.image_hu[-depth:], (nz - half if on_edge else nz - 1.5)
        return self.scan.image_hu[:depth], (half if on_edge else 0.5)

    def _first_box_slab(self) -> tuple[np.ndarray, float, int]:
        """The first ``first_box_slab_mm`` the walk meets, the first box's z, and the window (voxels)."""
        spacing = self.scan.spacing_mm
        slab, z = self._first_slab(max(1, int(round(self.cfg.first_box_slab_mm / spacing))))
        return slab, z, max(1, int(round(self.cfg.first_box_window_mm / spacing)))

    def first_centre(self) -> np.ndarray:
        """Step 1: x, y from the bone in the first two slices; z by ``first_box_z``."""
        _, ny, nx = self.scan.shape
        slices, z = self._first_slab(2)
        bone = np.argwhere(slices > self.cfg.bone_hu)
        yx = bone[:, 1:].mean(0) if len(bone) else np.array([(ny - 1) / 2, (nx - 1) / 2])
        return np.array([z, *yx], float)

    def bone_peaks(self) -> list[np.ndarray]:
        """The ``first_box_candidates`` densest spots of bone (> ``bone_hu``) in the first slab, as box
        centres (x, y at the spot; z by ``first_box_z``), densest first."""
        cfg = self.cfg
        slab, z, width = self._first_box_slab()
        density = ndimage.uniform_filter((slab > cfg.bone_hu).mean(0), size=width, mode="constant")
        out = []
        for _ in range(cfg.first_box_candidates):
            y, x = np.unravel_index(int(np.argmax(density)), density.shape)
            if density[y, x] <= 0:
                break
            out.append(np.array([z, y, x], float))
            density[max(0, y - width):y + width + 1, max(0, x - width):x + width + 1] = -1.0   # next spot apart
        return out

    def judge_peak(self) -> np.ndarray | None:
        """Fix (d)'s own candidate: of the points ``first_box_judge_grid_mm`` apart on the first box's
        slices that have bone (> ``bone_hu``) within ``first_box_window_mm``, the one ``on_spine`` finds
        most likely on a vertebra; None if it calls none a vertebra."""
        cfg = self.cfg
        if self.on_spine is None or cfg.first_box_judge_grid_mm <= 0:
            return None
        slab, z, width = self._first_box_slab()
        has_bone = ndimage.maximum_filter((slab > cfg.bone_hu).any(0), size=width, mode="constant")
        step = max(1, int(round(cfg.first_box_judge_grid_mm / self.scan.spacing_mm)))
        yx = np.argwhere(has_bone[step // 2::step, step // 2::step]) * step + step // 2
        if not len(yx):
            return None
        points = np.column_stack([np.full(len(yx), z, float), yx])
        probability = np.asarray(self.on_spine(points), float)
        return points[int(np.argmax(probability))] if probability.max() > 0 else None

    def first_box_centre(self) -> np.ndarray:
        """Step 1 by ``first_box``: the paper's mean of bone, or the bone peak the network likes best
        (the one ``on_spine`` finds most likely on a vertebra, when given and sure enough; when it calls
        no bone peak a vertebra, its own candidate, `judge_peak`)."""
        if self.cfg.first_box == "bone_mean":
            return self.first_centre()
        starts, voxels = [], []
        for centre in self.bone_peaks():
            mask, corner, *_ = self.segment(centre)
            starts.append(self._centroid(mask, corner) if mask.any() else centre)
            voxels.append(int(mask.sum()))
        if self.on_spine is not None:
            if starts:
                probability = np.asarray(self.on_spine(np.array(starts)), float)
                if probability.max() > 0:
                    return starts[int(np.argmax(probability))]
            judged = self.judge_peak()
            if judged is not None:
                mask, corner, *_ = self.segment(judged)
                return self._centroid(mask, corner) if mask.any() else judged
        if not starts:
            return self.first_centre()
        return starts[int(np.argmax(voxels))]                  # ties: the densest candidate

    def scan_for_bone(self, z_start: float) -> np.ndarray | None:
        """Step 2: boxes on an x-y grid from the corner, moving along z, until enough bone is found."""
        nz, ny, nx = self.scan.shape
        stride, half = self.cfg.scan_stride_voxels, self.cfg.patch_voxels // 2
        z, levels = z_start, 0
        while 0 <= z < nz and levels < self.cfg.scan_levels:
            levels += 1
            for y in range(half, max(ny, 2 * half) - half + 1, stride):
                for x in range(half, max(nx, 2 * half) - half + 1, stride):
                    mask, corner, *_ = self.segment((z, y, x))
                    if mask.sum() * self.voxel_cm3 > self.cfg.scan_bone_cm3:
                        return self._centroid(mask, corner)
            z += self.sign * stride
        return None

    # ------------------------------------------------------------------ the walk
    def run(self) -> TraversalResult:
        t0 = time.perf_counter()
        cfg, found, reason = self.cfg, [], "max_vertebrae"
        centre = self.first_box_centre()
        nz = self.scan.shape[0]
        while len(found) < cfg.max_vertebrae:
            before = self.passes
            mask, corner, level, completeness, _ = self.centre_on_vertebra(centre)
            if mask.sum() * self.voxel_cm3 < cfg.min_bone_cm3:
                hit = self.scan_for_bone(centre[0]) if not found else None
                if hit is None:
                    reason = "no_bone"
                    break
                mask, corner, level, completeness, _ = self.centre_on_vertebra(hit)
                if mask.sum() * self.voxel_cm3 < cfg.min_bone_cm3:
                    reason = "no_bone"
                    break
            if found and self.sign * (self._centroid(mask, corner)[0] - found[-1].centroid_zyx[0]) <= 0:
                reason = "behind"
                break
            found.append(self._store(mask, corner, level, completeness, self.passes - before, len(found)))
            v = found[-1]
            if (self.sign < 0 and level > cfg.max_level) or (self.sign > 0 and level < 1.5):
                reason = "level"
                break
            centre = v.centroid_zyx.copy()
            centre[0] += self.sign * cfg.step_fraction * (v.z_max - v.z_min + 1)
            if not 0 <= centre[0] < nz:
                reason = "scan_end"
                break
        return TraversalResult(self.instances, found, self.passes, time.perf_counter() - t0,
                               self.network_seconds, reason)

    def _store(self, mask, corner, level, completeness, passes, index) -> FoundVertebra:
        """Paste the patch mask into the scan-sized memory and instance map (clipped at the borders)."""
        idx = np.argwhere(mask) + corner
        inside = np.all((idx >= 0) & (idx < np.asarray(self.scan.shape)), axis=1)
        idx = idx[inside]
        self.memory[tuple(idx.T)] = True
        self.instances[tuple(idx.T)] = index + 1
        return FoundVertebra(index, level, completeness, idx.mean(0), int(idx[:, 0].min()),
                             int(idx[:, 0].max()), len(idx), passes)


def traverse(model: torch.nn.Module, scan: PreparedScan, config: TraversalConfig = TraversalConfig(),
             direction: str = "down", on_spine: SpineJudge | None = None) -> TraversalResult:
    """Segment the spine of ``scan`` vertebra by vertebra (see module docstring); model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return Traversal(model, scan, config, direction, on_spine).run()
    finally:
        model.train(was_training)
