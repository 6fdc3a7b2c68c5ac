"""The real-scan chapter's three runs, each writing its files under ``results/real_ct/``.

* `measure_gap` — phantom vs real: ``measurements.json`` (every measurement of the real scan, of the real
  scan resampled to the phantom voxel size, and of `cap` phantoms), ``gap.csv`` (`gap_table`), the
  TotalSegmentator check of the tissue heuristics, and ``gap_tissue.png`` / ``gap_views.png``.
* `evaluate_methods` — every trained row on the real scan: ``methods.csv`` / ``methods.json`` and one
  figure per row (`vertebra.real_eval`).
* `randomisation_experiment` — a direct row fine-tuned with each `domain_randomisation.VARIANTS`, scored
  on ``ctc_test`` and on the real scan: ``randomisation.csv`` / ``.json`` and figures.

Phantoms are the `cap` cases of the `hand` cohort (chest-abdomen-pelvis, the protocol closest to a chest
CT), generated in memory from the cohort's seeds, so they are the very scans the direct rows trained on.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from .results import provenance, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def cap_phantoms(n: int, spacing_mm: float = 2.0, seed: int = 0):
    """The first `n` `cap` cases of the `hand` cohort, in memory."""
    from .phantom.cohorts import cohort_specs, make_case

    specs = cohort_specs("hand")
    picked = [i for i, s in enumerate(specs) if s.protocol == "cap"][:n]
    return [make_case("hand", i, specs[i], spacing_mm, seed) for i in picked]


def measure_gap(out_dir: str | Path, n_phantoms: int = 3, spacing_mm: float = 2.0, seed: int = 0) -> dict:
    """Measure the real scan and `n_phantoms` cap phantoms; write the files listed in the module docstring."""
    from .datasets import load_real_ct
    from .phantom_vs_real import gap_table, measure_case, resample_case, totalseg_tissue_hu

    started = time.time()
    out = Path(out_dir)
    real = load_real_ct()
    phantoms = cap_phantoms(n_phantoms, spacing_mm, seed)
    m = {"real": measure_case(real), "real_at_phantom_spacing": measure_case(resample_case(real, spacing_mm)),
         "phantoms": [measure_case(p) for p in phantoms], "totalseg_reference": totalseg_tissue_hu()}
    table = gap_table(m["real"], m["phantoms"])
    same_grid = gap_table(m["real_at_phantom_spacing"], m["phantoms"])
    table.insert(2, "real_at_phantom_spacing", same_grid["real"])
    write_json_atomic(out / "measurements.json", m)
    write_text_atomic(out / "gap.csv", table.round(2).to_csv(index=False))
    _tissue_figure(table, m, out / "gap_tissue.png")
    _views_figure(real, phantoms[0], out / "gap_views.png")
    write_json_atomic(out / "gap_provenance.json", provenance(seed, {"n_phantoms": n_phantoms,
                                                                    "spacing_mm": spacing_mm}, started))
    return m


def _tissue_figure(table, m: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .results import write_bytes_atomic
    from .viz import figure_png

    rows = table[table["quantity"].str.endswith("(HU)")].reset_index(drop=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    y = np.arange(len(rows))
    for ax, keep in ((axes[0], rows["real"].abs() < 300), (axes[1], rows["real"].abs() >= 300)):
        sub = rows[keep]
        yy = y[: len(sub)]
        ax.errorbar(sub["phantom_mean"], yy, xerr=[sub["phantom_mean"] - sub["phantom_min"],
                                                   sub["phantom_max"] - sub["phantom_mean"]],
                    fmt="o", color="C0", label="phantoms (cap): mean, range")
        ax.plot(sub["real"], yy, "s", color="C3", label="real CT (native voxels)")
        ax.plot(sub["real_at_phantom_spacing"], yy, "^", color="C1", label="real CT at phantom voxels")
        ax.set_yticks(yy, sub["quantity"])
        ax.set_xlabel("HU")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Tissue HU and noise: phantom vs real")
    write_bytes_atomic(path, figure_png(fig, dpi=90))


def _views_figure(real, phantom, path: Path) -> None:
    """Coronal slice through L1 of the real scan and of a phantom, the same HU window, same mm scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import to_canonical
    from .labels import L1
    from .results import write_bytes_atomic
    from .viz import figure_png

    fig, axes = plt.subplots(1, 2, figsize=(10, 5.5), constrained_layout=True)
    for ax, case, title in ((axes[0], real, "real chest CT"), (axes[1], phantom, f"phantom {phantom.case_id} (cap)")):
        ct, _ = to_canonical(case.image)
        k, j, i = np.rint(ct.world_to_index([case.centroids_mm[L1]])[0]).astype(int)
        sx, sy, sz = ct.geometry.spacing_mm
        z0, x0 = ct.geometry.origin_mm[2], ct.geometry.origin_mm[0]
        nz, _, nx = ct.array.shape
        ax.imshow(ct.array[:, j, :], cmap="gray", vmin=-200, vmax=1000, origin="lower",
                  extent=(x0, x0 + nx * sx, z0, z0 + nz * sz))
        ax.set_title(title)
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("z (mm)")
    write_bytes_atomic(path, figure_png(fig, dpi=80))


def evaluate_methods(out_dir: str | Path, results_dir: str | Path = "results") -> list[dict]:
    """Run every row with weights under `results_dir` on the real scan; methods.csv / .json + figures."""
    import pandas as pd

    from .datasets import load_real_ct
    from .real_eval import discover_models, evaluate_on_real

    out = Path(out_dir)
    models = discover_models(results_dir)
    records = evaluate_on_real(load_real_ct(), models["direct"], models["instance"], out / "figures")
    write_json_atomic(out / "methods.json", records)
    flat = [{k: v for k, v in r.items() if k != "dice_by_level"} for r in records]
    write_text_atomic(out / "methods.csv", pd.DataFrame(flat).to_csv(index=False) if flat else "run_id\n")
    return records


def randomisation_experiment(base_weights: str | Path, out_dir: str | Path, *, iterations: int = 40,
                             variants=None, n_train: int = 22, n_test: int | None = None,
                             spacing_mm: float = 2.0, seed: int = 0, cache=None) -> list[dict]:
    """Fine-tune `base_weights` with each variant for `iterations` steps; score it on ctc_test and the real
    scan (the base weights unchanged are the first row)."""
    import pandas as pd

    from .cache import cache_dir
    from .datasets import load_real_ct
    from .direct import load_model, save_weights
    from .direct_experiment import evaluate
    from .direct_targets import load_direct_sample
    from .domain_randomisation import VARIANTS, fine_tune
    from .phantom import cohort
    from .real_eval import direct_on_case, write_figure

    started = time.time()
    out = Path(out_dir)
    variants = VARIANTS if variants is None else variants
    base, meta = load_model(base_weights)
    shape = tuple(meta["shape_zyx"])
    hand = cohort("hand", spacing_mm=spacing_mm, n=52, seed=seed, cache=cache, progress=False)[:n_train]
    test = cohort("ctc_test", spacing_mm=spacing_mm, n=n_test or 40, seed=seed, cache=cache, progress=False)
    whole = [load_direct_sample(p, shape, "L1", "hand", cache) for p in hand]
    test_s = [load_direct_sample(p, shape, "L1", "hand", cache) for p in test]
    real = load_real_ct()
    digest = hashlib.sha1(Path(base_weights).read_bytes()).hexdigest()[:10]
    row_params = Path(base_weights).parent / "params.json"
    foreground_weight = float(json.loads(row_params.read_text()).get("foreground_weight") or 1.0) \
        if row_params.exists() else 1.0
    rows = []
    for variant in [None, *variants]:
        name = "base" if variant is None else variant.name
        model = copy.deepcopy(base)
        if variant is not None:
            run_dir = cache_dir(cache) / "real-ct-dr" / f"{digest}-{name}-{iterations}-{seed}"
            fine_tune(model, whole, variant, run_dir, iterations=iterations, case_dirs=hand,
                      foreground_weight=foreground_weight, seed=seed)
        model.eval()
        _, summary = evaluate(model, test_s)
        weights = out / "randomisation" / name / "weights.pt"
        save_weights(model, weights, classes="L1", shape_zyx=list(shape), run_id=f"{meta.get('run_id')}+{name}")
        rec, mask = direct_on_case(real, weights, f"{meta.get('run_id')}+{name}")
        write_figure(real, mask, rec, out / "randomisation" / f"{name}.png")
        rows.append({"variant": name, "iterations": 0 if variant is None else iterations,
                     "ctc_test_l1_acc": summary["l1_acc"], "ctc_test_avg_err_mm": summary["avg_err_mm"],
                     "ctc_test_med_err_mm": summary["med_err_mm"], "ctc_test_dice": summary.get("dice", math.nan),
                     "real_l1_found": rec["l1_found"], "real_l1_correct": rec["l1_correct"],
                     "real_cc_error_mm": rec["cc_error_mm"], "real_on": rec["closest_name"],
                     "real_l1_dice": rec["l1_dice"], "variant_params": None if variant is None else variant.to_dict()})
        log.info("%s: %s", name, rows[-1])
    write_json_atomic(out / "randomisation.json", {"base_weights": str(Path(base_weights).name), "base_run_id":
                                                   meta.get("run_id"), "rows": rows,
                                                   "provenance": provenance(seed, {"iterations": iterations,
                                                                                   "n_train": n_train}, started)})
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "variant_params"} for r in rows])
    write_text_atomic(out / "randomisation.csv", table.to_csv(index=False))
    return rows
