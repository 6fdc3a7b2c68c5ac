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
run_id = "unet-l1-hand-22"
classes = "L1"
n_train = 22
n_aug = 256
label_source = "hand"
scale = "quick"
seed = 0
iterations = None
results_dir = "results"
fcnn_iterations = 0  # > 0: also train the 6-layer FCNN baseline of §3.1 on this row's scans

# %% [markdown]
# # Segmenting L1 directly with a 3D U-Net
#
# The first method of the paper is the blunt one: give a 3D U-Net the *whole* scan, shrunk to a fixed
# grid, and ask it to paint the L1 vertebra. There is no counting of vertebrae and no rule about ribs;
# whatever tells L1 apart from T12 and L2 (the last rib, the shape of the transverse processes, the
# distance to the pelvis) has to be learnt from the examples.
#
# This notebook runs **one row of Table 2**. The parameters above choose the row: which classes the
# network paints (`L1` alone, or L1 together with T12 and the T12 ribs), how many training scans
# (`n_train`), how many fixed augmented versions of each (`n_aug`), and whether the training labels come
# from the truth (`hand`) or from the classical pseudo-mask tool (`pseudo`). `scale` fixes the sizes that
# depend on the computer at hand; `quick` runs on a laptop CPU.

# %%
import json
from pathlib import Path

import pandas as pd

from vertebra.direct import run_row
from vertebra.direct_targets import class_names
from vertebra.experiments import get_row, get_scale

sizes = get_scale(scale)
print("network grid (z, y, x):", sizes.direct_shape_zyx, "| base features:", sizes.direct_features,
      "| iterations:", iterations or sizes.direct_iterations, "| batch:", sizes.direct_batch)
print("foreground classes:", class_names(classes))

# %% [markdown]
# ## What the network sees
#
# Each scan is put in a standard orientation, then resampled so that its whole field of view fills the
# network grid (192 x 128 x 128 voxels in the paper, 64 x 48 x 48 at the quick scale). The voxels are
# therefore far from cubic and differ from scan to scan: a long scan is squeezed more along z than a
# short one. Intensities are clipped to 100-1000 HU, which keeps bone and the bone-bright tagged fluid
# of colonography and drops soft tissue, then scaled to [0, 1].
#
# Augmentation happens on that small grid, where it is cheap: independent flips along x, y and z, a
# B-spline deformation, and a rotation of up to 20 degrees about a random axis. "`n_aug` augmented
# versions per scan" is taken literally: copy *k* of scan *i* is drawn from a generator seeded with
# (seed, *i*, *k*), so the same 256 (or 8) versions exist in every run, and training draws
# (scan, copy) pairs from them.
#
# ## Training and evaluation
#
# `run_row` does the work: it builds the cohorts, trains with the project's one training loop (Adam,
# checkpoints with exact resume, a CSV log), validates on held-out hand-labelled scans, and evaluates on
# the 40 colonography test scans, which come from a site the training data never saw. On each test scan
# the largest connected L1 component is kept; its centroid, in world millimetres, is compared with the
# true vertebra centroids. The prediction counts as correct when the true vertebra nearest to it is L1;
# the error is the craniocaudal distance between the predicted and the true L1 centroids.

# %%
out_dir = Path(results_dir) / "runs" / run_id
params = {"run_id": run_id, "classes": classes, "n_train": n_train, "n_aug": n_aug,
          "label_source": label_source, "scale": scale, "seed": seed, "iterations": iterations}
metrics = run_row(params, out_dir, table2_path=Path(results_dir) / "table2.csv")
{k: v for k, v in metrics.items() if k != "test_summary"}

# %% [markdown]
# ## The training curve
#
# The loss is cross-entropy plus a soft Dice term over the foreground classes (the paper does not say
# which loss the direct network used; this is our choice). The orange points are the Dice of L1 on the
# held-out scans, measured on the network grid.

# %%
from IPython.display import Image

Image(filename=str(out_dir / "training_curve.png"))

# %% [markdown]
# ## Where the predictions went
#
# §3.1 of the paper names the typical failure: L1 "shifted up" onto T12, less often "down" onto L2. The
# `shift` column says, for every test scan, on which vertebra the predicted L1 landed (-1 = T12, 0 = L1,
# +1 = L2, "other" = further away or nothing found). The anomalies column tells whether a scan had a
# transitional vertebra, a missing 12th rib, a fracture or metal.

# %%
per_case = pd.read_csv(out_dir / "per_case.csv", dtype={"case_id": str})
print(per_case["shift"].value_counts().to_string())
per_case[["case_id", "l1_correct", "cc_error_mm", "shift", "confidence", "anomalies"]].head(12)

# %% [markdown]
# ## Against the paper
#
# The paper's numbers for this row, next to ours. At the quick scale the network is smaller, the grid
# coarser and training far shorter than the paper's 100,000 iterations on four GPUs, and the scans are
# synthetic; the comparison is about trends between rows, not about matching the digits.

# %%
summary = metrics["test_summary"]
try:
    paper = get_row(run_id).paper
except ValueError:
    paper = None
pd.DataFrame({"ours": {"dice_val": metrics["dice_val"], "avg_err_test_mm": metrics["avg_err_test_mm"],
                       "med_err_test_mm": metrics["med_err_test_mm"], "l1_acc_test": metrics["l1_acc_test"]},
              "paper": paper or {}}).round(3)

# %%
print(json.dumps({k: summary[k] for k in ("shift_up_rate", "shift_down_rate", "other_rate",
                                          "missing_cases", "wrong_cases")}, indent=1))

# %% [markdown]
# ## The baseline the paper abandoned
#
# Before segmenting L1, the authors tried a plain 6-layer fully convolutional network that looks at a
# slab of the scan and regresses how many millimetres lie between the slab and L1. Its validation error
# stalled at about 30 mm, roughly one vertebra, which is why the paper turned to segmentation. Set
# `fcnn_iterations` above zero to train it on this row's scans; the number to compare is `mae_mm_val`.

# %%
if fcnn_iterations:
    from vertebra.direct_fcnn import run_fcnn_baseline

    fcnn = run_fcnn_baseline(params, out_dir, fcnn_iterations)
    print(fcnn)
