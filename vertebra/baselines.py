"""Three simple rules for finding L1, and where they fail (the paper's introduction).

- `rib_rule_l1`: "L1 is the first vertebra below the last rib", counting only ribs of at least 4 cm
  (the VerSe'20 convention). Wrong when a 12th rib is rudimentary or absent (it names T12) and when a
  13th rib-bearing vertebra carries a short rib (it names T13).
- `sacrum_count_l1`: "count up five from the sacrum". A vertebra fused to the sacrum (sacralization of
  L5) is counted as sacrum, and a lumbarized S1 adds a free vertebra; both shift the answer by one.
- `bone_threshold`: a plain >= 200 HU threshold calls tagged colonic fluid bone.

The first two read the truth label maps (they test the rule, not a detector); each returns the true
label of the vertebra the rule would call L1, so the rule is right when it returns 20.

>>> import numpy as np
>>> from vertebra.image import Volume
>>> vert = np.zeros((40, 6, 6), np.uint8)
>>> for n, lab in enumerate([26, 24, 23, 22, 21, 20, 19]):
...     vert[n * 5 + 1:n * 5 + 5, 2:4, 2:4] = lab
>>> sacrum_count_l1(Volume(vert))
20
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import labels as L
from .image import Volume

RIB_MIN_MM = 40.0
BONE_THRESHOLD_HU = 200.0


def _world(volume: Volume, mask: np.ndarray) -> np.ndarray:
    return volume.index_to_world(np.argwhere(mask))


def rib_lengths_mm(vertebrae: Volume, ribs: Volume, max_attach_mm: float = 40.0) -> list[dict]:
    """Each rib in the rib map that reaches a visible vertebra: its map value, the vertebra it attaches
    to (nearest vertebra centroid to the rib's medial end, within `max_attach_mm`) and its length
    (farthest distance from that end, mm). Rib fragments cut off from their vertebra by the field of
    view (the front ends of upper ribs) are left out."""
    labels = [int(v) for v in np.unique(vertebrae.array) if v not in (0, L.SACRUM)]
    if not labels:
        return []
    centres = np.array([_world(vertebrae, vertebrae.array == lab).mean(axis=0) for lab in labels])
    out = []
    for value in (int(v) for v in np.unique(ribs.array) if v):
        pts = _world(ribs, ribs.array == value)
        d = np.linalg.norm(pts[:, None, :] - centres[None, :, :], axis=2)
        end, owner = np.unravel_index(np.argmin(d), d.shape)
        if d[end, owner] > max_attach_mm:
            continue
        length = float(np.linalg.norm(pts - pts[end], axis=1).max())
        out.append({"rib": value, "vertebra": labels[owner], "length_mm": length})
    return out


def rib_rule_l1(vertebrae: Volume, ribs: Volume, min_rib_mm: float = RIB_MIN_MM) -> int | None:
    """True label of the first vertebra below the last one with a rib >= `min_rib_mm`; None if the
    scan shows no such rib or nothing below it."""
    ribs_found = [r for r in rib_lengths_mm(vertebrae, ribs) if r["length_mm"] >= min_rib_mm]
    if not ribs_found:
        return None
    present = sorted((int(v) for v in np.unique(vertebrae.array) if v not in (0, L.SACRUM)), key=L.rank)
    last = max((r["vertebra"] for r in ribs_found), key=L.rank)
    below = [lab for lab in present if L.rank(lab) > L.rank(last)]
    return below[0] if below else None


def fused_to_sacrum(vertebrae: Volume, min_contact_mm2: float = 250.0) -> list[int]:
    """Vertebrae whose mask touches the sacrum's over at least `min_contact_mm2` (a bony bridge, as in
    sacralization; a facet joint alone touches less). Contact area ~ voxels next to the sacrum x
    voxel face area."""
    sacrum = vertebrae.array == L.SACRUM
    if not sacrum.any():
        return []
    touch = ndimage.binary_dilation(sacrum, np.ones((3, 3, 3), bool))
    values, counts = np.unique(vertebrae.array[touch & ~sacrum], return_counts=True)
    face_mm2 = float(np.prod(vertebrae.geometry.spacing_mm)) ** (2 / 3)
    return [int(v) for v, c in zip(values, counts) if v and c * face_mm2 >= min_contact_mm2]


def sacrum_count_l1(vertebrae: Volume, min_contact_mm2: float = 250.0) -> int | None:
    """True label of the fifth free vertebra counted up from the sacrum (fused ones count as sacrum);
    None without a sacrum or with fewer than five vertebrae above it."""
    present = [int(v) for v in np.unique(vertebrae.array) if v not in (0, L.SACRUM)]
    if L.SACRUM not in np.unique(vertebrae.array):
        return None
    fused = set(fused_to_sacrum(vertebrae, min_contact_mm2))
    free = sorted((lab for lab in present if lab not in fused), key=L.rank, reverse=True)
    return free[4] if len(free) >= 5 else None


def bone_threshold(ct: Volume, fluid: Volume | None = None, threshold_hu: float = BONE_THRESHOLD_HU) -> dict:
    """Volume (ml) a plain threshold calls bone, and how much of it is tagged fluid (when its mask is known)."""
    bone = ct.array >= threshold_hu
    voxel_ml = float(np.prod(ct.geometry.spacing_mm)) / 1000.0
    out = {"called_bone_ml": float(bone.sum()) * voxel_ml}
    if fluid is not None:
        wrong = bone & (fluid.array > 0)
        out["fluid_called_bone_ml"] = float(wrong.sum()) * voxel_ml
        out["fluid_ml"] = float((fluid.array > 0).sum()) * voxel_ml
        out["fluid_share_of_bone"] = out["fluid_called_bone_ml"] / max(out["called_bone_ml"], 1e-9)
    return out


def rule_results(vertebrae: Volume, ribs: Volume | None = None, ct: Volume | None = None,
                 fluid: Volume | None = None) -> dict:
    """All three rules on one scan: the label each L1 rule picks (None: undefined on this field of
    view) and whether it is right, plus the threshold's volumes."""
    out = {"rib_rule": rib_rule_l1(vertebrae, ribs) if ribs is not None else None,
           "sacrum_count": sacrum_count_l1(vertebrae)}
    for key in ("rib_rule", "sacrum_count"):
        out[f"{key}_correct"] = out[key] == L.L1
    if ct is not None:
        out.update(bone_threshold(ct, fluid))
    return out
