"""Every trained method on the real CT: did it find L1, how far off (mm), how well do the masks overlap.

`evaluate_on_real(case, direct=..., instance=...)` runs each direct U-Net (`vertebra.direct.find_l1`,
what ``vertebra find-l1`` does) and each instance bundle (`vertebra.instance.label_spine`, what
``vertebra label-spine`` does) on the scan and scores them against its reference labels:

* ``l1_found``, ``l1_correct`` (nearest true centroid is L1), ``cc_error_mm`` (|Δz| of the centroids,
  world mm), ``shift`` (-1 = landed on T12, +1 = on L2) — the measures of Table 2 (`vertebra.metrics`);
* ``l1_dice``: Dice of the predicted L1 with the reference L1 on the scan's own grid;
* for the instance method also ``dice_by_level`` (each reference vertebra against the voxels labelled
  the same) and its mean, and the VerSe identification rate.

The real scan's reference labels were made by TotalSegmentator, not by hand: small disagreements at the
borders of a vertebra are those of the reference as much as of the method.
`discover_models(results_dir)` finds the trained rows under ``results/runs/*/weights.pt``.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path

import numpy as np

from .image import Volume
from .labels import L1, name
from .metrics import dice, identification_rate, score_l1

log = logging.getLogger(__name__)


def discover_models(results_dir: str | Path = "results") -> dict[str, dict[str, Path]]:
    """{"direct": {run_id: weights}, "instance": {run_id: weights}} for every row that has weights."""
    found: dict[str, dict[str, Path]] = {"direct": {}, "instance": {}}
    for weights in sorted(Path(results_dir).glob("runs/*/weights.pt")):
        run_id = weights.parent.name
        kind = "instance" if run_id.startswith("instance") else "direct"
        found[kind][run_id] = weights
    return found


def _score(case, method: str, run_id: str, centroid_mm, l1_mask: np.ndarray | None, seconds: float) -> dict:
    rec = score_l1(case.case_id, centroid_mm, case.centroids_mm)
    truth_l1 = case.vertebrae.array == L1
    rec.update({"method": method, "run_id": run_id,
                "pred_z_mm": float(centroid_mm[2]) if centroid_mm is not None else math.nan,
                "true_z_mm": float(case.centroids_mm[L1][2]),
                "l1_dice": dice(l1_mask, truth_l1) if l1_mask is not None else 0.0,
                "closest_name": name(rec["closest_label"]) if rec["closest_label"] is not None else None,
                "seconds": round(seconds, 2)})
    return rec


def direct_on_case(case, weights: str | Path, run_id: str | None = None) -> tuple[dict, Volume]:
    """Run one direct U-Net on a `VerseCase` with reference labels; (record, L1 mask on its grid)."""
    from .direct import find_l1, load_model

    t0 = time.perf_counter()
    model, meta = load_model(weights)
    mask, out = find_l1(case.image, model, meta)
    centroid = out["l1_centroid_mm"] if out["l1_found"] else None
    rec = _score(case, "3D U-Net", run_id or meta.get("run_id", Path(weights).parent.name), centroid,
                 mask.array > 0, time.perf_counter() - t0)
    rec.update({"classes": meta.get("classes"), "confidence": out["confidence"], "l1_bmd_hu": out["l1_bmd_hu"]})
    return rec, mask


def instance_on_case(case, weights: str | Path, run_id: str | None = None) -> tuple[dict, Volume]:
    """Label the spine of a `VerseCase` with one instance bundle; (record, label map on its grid)."""
    from .instance.pipeline import label_spine
    from .instance.levels import is_target
    from .instance.weights import load_bundle

    t0 = time.perf_counter()
    bundle = load_bundle(weights)
    result = label_spine(bundle, case.image)
    l1 = result.l1
    pred = result.mask.array
    truth = case.vertebrae.array
    rec = _score(case, "Instance", run_id or Path(weights).parent.name,
                 None if l1 is None else l1["centroid_mm"], pred == L1, time.perf_counter() - t0)
    by_level = {name(lab): round(dice(pred == lab, truth == lab), 3)
                for lab in sorted(int(v) for v in np.unique(truth) if v and is_target(int(v)))}
    rec.update({"classes": "1 generic class", "n_found": len(result.levels),
                "labels_found": " ".join(v["name"] for v in result.levels),
                "dice_by_level": by_level,
                "mean_dice": float(np.mean(list(by_level.values()))) if by_level else math.nan,
                "id_rate": identification_rate(result.centroids_mm, {k: v for k, v in case.centroids_mm.items()
                                                                   if is_target(k)})})
    return rec, result.mask


def evaluate_on_real(case, direct: dict[str, Path] | None = None, instance: dict[str, Path] | None = None,
                     figures_dir: str | Path | None = None) -> list[dict]:
    """Records of every method on `case` (see the module docstring); one PNG per method in figures_dir."""
    records = []
    jobs = [("direct", run_id, w) for run_id, w in (direct or {}).items()]
    jobs += [("instance", run_id, w) for run_id, w in (instance or {}).items()]
    for kind, run_id, weights in jobs:
        log.info("%s %s on %s", kind, run_id, case.case_id)
        run = direct_on_case if kind == "direct" else instance_on_case
        rec, mask = run(case, weights, run_id)
        rec["weights_sha1"] = hashlib.sha1(Path(weights).read_bytes()).hexdigest()[:12]
        if figures_dir is not None:
            rec["figure"] = f"{run_id}.png"
            write_figure(case, mask, rec, Path(figures_dir) / rec["figure"])
        records.append(rec)
    return records


def write_figure(case, predicted: Volume, record: dict, path: Path) -> Path:
    """A sagittal view that follows the spine (each axial row taken at the x of the reference spine at that
    height, so a scoliotic spine stays in view) and a coronal slice through the true L1: reference L1
    outlined in white, the method's labels coloured (its L1 in red), a line at each L1 centroid height
    (dashed white: truth, yellow: method)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import to_canonical
    from .results import write_bytes_atomic
    from .viz import figure_png, label_cmap

    ct, _ = to_canonical(case.image)
    truth, _ = to_canonical(case.vertebrae)
    pred, _ = to_canonical(predicted)
    k, j, i = np.rint(ct.world_to_index([case.centroids_mm[L1]])[0]).astype(int)
    spine = np.array(sorted(ct.world_to_index(list(case.centroids_mm.values())).tolist()))  # (z, y, x) by z
    zs = np.arange(ct.array.shape[0])
    xs = np.clip(np.rint(np.interp(zs, spine[:, 0], spine[:, 2])).astype(int), 0, ct.array.shape[2] - 1)
    sx, sy, sz = ct.geometry.spacing_mm
    fig, axes = plt.subplots(1, 2, figsize=(8, 5), constrained_layout=True)
    cmap = label_cmap(30)
    views = ((axes[0], lambda a: a[zs, :, xs], sz / sy, "sagittal, along the spine"),
             (axes[1], lambda a: a[:, j, :], sz / sx, "coronal"))
    for ax, cut, aspect, title in views:
        ax.imshow(cut(ct.array), cmap="gray", vmin=-200, vmax=1000, aspect=aspect, origin="lower")
        lab = cut(pred.array).astype(int)
        ax.imshow(np.ma.masked_equal(lab, 0), cmap=cmap, vmin=0, vmax=cmap.N - 1, alpha=0.5, aspect=aspect,
                  origin="lower", interpolation="nearest")
        ax.contour(cut(truth.array) == L1, levels=[0.5], colors="white", linewidths=0.8)
        ax.axhline(k, color="white", ls="--", lw=0.8)
        if record.get("l1_found") and np.isfinite(record.get("pred_z_mm", math.nan)):
            z_idx = (record["pred_z_mm"] - ct.geometry.origin_mm[2]) / sz
            ax.axhline(z_idx, color="yellow", ls="-", lw=1.0)
        ax.set_title(title)
        ax.set_axis_off()
    err = record.get("cc_error_mm", math.nan)
    fig.suptitle(f"{record['run_id']}: L1 {'found' if record['l1_found'] else 'not found'}"
                 + (f", error {err:.1f} mm, on {record['closest_name']}" if record["l1_found"] else ""))
    return write_bytes_atomic(path, figure_png(fig, dpi=90))
