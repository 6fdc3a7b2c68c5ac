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
run_id = "instance"
mode = "top-down"
empty_fraction = 0.3
fix_combine_directions = False
fix_edge_patches = False
fix_completeness_head = False
fix_context_levels = False
fix_monotone_ordering = False
scale = "quick"
seed = 0
iterations = None
n_test = None
results_dir = "results"

# %% [markdown]
# # Labelling the whole spine, one vertebra at a time
#
# The second method of the paper does not look for L1 at all. It segments *every* vertebra, from the
# top of the scan downwards, and only at the end decides which one is L1. The network is a 3D U-Net
# that sees a cube of the scan (128 mm on a side in the paper) plus a second input channel, the
# **instance memory**, which marks the vertebrae it has already segmented. Its task is always the same:
# "paint the next vertebra that is not in the memory, and tell me its level". Moving the cube along the
# spine and feeding each result back into the memory walks it down the column.
#
# Three ideas make that walk work, and each lives in its own module of `vertebra.instance`:
#
# * **patches**: training cubes centred on a vertebra (jittered by up to 2 cm), with the vertebrae
#   above it in the memory (top-down), below it (bottom-up), or either (bidirectional); 30 % of the
#   cubes have nothing left to segment, so the network learns when to stop;
# * **traversal**: the first cube is placed on the bone at the top of the scan, then re-centred on what
#   the network segmented until it settles (less than 2 mm of movement, at most five passes); it may
#   only move down the spine, never back up. The paper centres the first cube on the mean of all bone
#   in the top two slices; here the patient table is most of that "bone", so every row starts instead
#   at the densest spot of bone the network segments most (`TraversalConfig.first_box`, see the book's
#   instance chapter for what each rule gives);
# * **ordering**: each vertebra's regressed level is a noisy number; Eq. 2 of the paper turns the list of
#   levels into the most likely run of consecutive labels.
#
# This notebook runs one instance row of Table 2. The paper's row is `instance`; the other three rows
# try the remedies the authors suggested in §3.2 for the weakness they saw (the first vertebra, met with
# an empty memory, was often missed): (a) combine a top-down and a bottom-up model, (b) add training
# cubes whose target sits at the edge with an empty memory, (c) give the network Lessmann's third output,
# a "is this vertebra wholly visible?" classifier. Two more rows go beyond the paper with (d): a second,
# small network reads each found vertebra's level from a coarse view of 256 mm around it, where the
# ribs' end, the bodies' size and the sacrum are in sight, and drops the pieces it does not call a
# vertebra; Eq. 2 then orders those levels (on the plain row's walk, and on fix (b)'s). Two last rows
# add (e) to those two: the levels are numbered by a rule that lets the walk skip a vertebra or cut one
# in two, instead of Eq. 2's unbroken run of consecutive labels.

# %%
import json
from pathlib import Path

import pandas as pd

from vertebra.experiments import get_row, get_scale
from vertebra.instance.levels import label_to_level
from vertebra.instance.run import run_row
from vertebra.losses import InstanceLossConfig, lambda_n

sizes = get_scale(scale)
print("patch:", sizes.instance_patch, "voxels at", sizes.instance_spacing_mm, "mm | features:",
      sizes.instance_features, "| iterations:", iterations or sizes.instance_iterations,
      "| batch:", sizes.instance_batch)

# %% [markdown]
# ## Levels, not names
#
# The network regresses a number, not a class. Following the paper, the numbers are *aligned so that
# L1 is 20*: T12 is 19, L5 is 24, and an empty cube is 0. A spine with a thirteenth rib-bearing vertebra
# keeps L1 at 20 and shifts the thoracic ones (T13 becomes 19, T12 18); a sixth lumbar vertebra is 25.
# In these units every spine is a run of consecutive integers, which is what makes the ordering step a
# one-line search.

# %%
{name: label_to_level(label, has_t13=(name == "T13 spine: T12")) for name, label in
 [("T12", 19), ("L1", 20), ("L5", 24), ("L6", 25), ("T13 spine: T12", 19)]}

# %% [markdown]
# ## The loss (Eq. 1)
#
# $L = \lambda_n \mathrm{FP}_{frac} + \mathrm{FN}_{frac} + \beta\,|p_L - t_L|$. The paper describes FP and
# FN as numbers of voxels; we use soft voxel counts (the probability the network paints outside the
# target, and the probability it leaves out of it) divided by the voxels of a typical vertebra, which
# only rescales the loss. At the last step ($\lambda_n = 1$) a wrong voxel costs the same on either side;
# early on $\lambda_n$ = 0.05 keeps false positives cheap, so the network does not settle for the empty
# mask that the many background voxels would otherwise favour. An empty cube has nothing to miss, so
# only the false positives speak there, and the loss still has a gradient, which a Dice loss would not.
# β = 1000 weighs one level of error against 1000 voxels; divided by the same vertebra size it keeps
# that balance (see `vertebra.losses`). A first version divided FP by the patch's background instead:
# a background voxel then cost ~40x less than a missed vertebra voxel and the networks painted masks
# three to four times the size of the vertebra.
#
# The paper lets $\lambda_n$ end near 1 after 50,000 steps. The quick preset ends it at 0.3
# (`Scale.instance_lambda_end`): after 1,500 steps, with $\lambda_n = 1$, an empty mask was the cheapest
# answer wherever the memory was empty, and no walk got past its first step.

# %%
n_max = iterations or sizes.instance_iterations
cfg = InstanceLossConfig(n_max=n_max, spacing_mm=sizes.instance_spacing_mm, lambda_end=sizes.instance_lambda_end)
print("weight of one level of error:", round(cfg.level_weight, 3))
pd.Series({n: round(lambda_n(n, n_max, end=cfg.lambda_end), 3) for n in range(0, n_max + 1, max(1, n_max // 8))},
          name="lambda_n")

# %% [markdown]
# ## Train, tune, test
#
# `run_row` prepares the `instance` cohort (isotropic voxels, −100..2000 HU), trains with the project's
# one training loop, and picks the output threshold on the held-out validation scans, as the paper
# tuned it: it walks each of them at a few thresholds and keeps the one whose pieces match the true
# vertebrae best, whatever their labels (`walk_dice`; the Dice on validation cubes keeps rising with the
# threshold, but a higher threshold can also make a walk die out). On the same walks it also picks a
# density floor for the masks, beyond the paper (`restrict_to_bone`: a piece keeps only voxels denser
# than the floor, then its largest part; no floor is one of the choices): the quick networks' masks
# spread into the soft tissue round the bone. Then it labels every scan of the CT colonography test
# cohort and scores the vertebra it calls L1.

# %%
out_dir = Path(results_dir) / "runs" / run_id
params = {"run_id": run_id, "mode": mode, "empty_fraction": empty_fraction,
          "fix_combine_directions": fix_combine_directions, "fix_edge_patches": fix_edge_patches,
          "fix_completeness_head": fix_completeness_head, "fix_context_levels": fix_context_levels,
          "fix_monotone_ordering": fix_monotone_ordering, "scale": scale, "seed": seed,
          "iterations": iterations, "n_test": n_test}
metrics = run_row(params, out_dir, table2_path=Path(results_dir) / "table2.csv")
{**{k: metrics[k] for k in ("threshold", "mask_floor_hu", "walk_dice_val", "dice_val", "n_train", "n_test")},
 "walk_dice_val_by_threshold (no floor)": metrics["walk_dice_val_by_threshold"],
 "train_seconds": json.loads((out_dir / "timing.json").read_text(encoding="utf-8"))["train_seconds"]}

# %% [markdown]
# ## The training curve
#
# The three terms of Eq. 1, logged at every step; `dice_val` is the validation Dice at threshold 0.5.

# %%
log = pd.read_csv(out_dir / "train_log.csv")
ax = log.groupby("direction")[["fp_frac", "fn_frac"]].rolling(20, min_periods=1).mean() \
    .reset_index(level=0).drop(columns="direction").plot(figsize=(7, 3), title="soft FP / FN (vertebra volumes)")
ax.set_xlabel("step")

# %% [markdown]
# ## Fix (d): where the levels come from
#
# With `fix_context_levels`, the level of each piece the walk found comes from the context network
# (`vertebra.instance.context`), not from the instance U-Net's head. Its mean error on the validation
# scans' vertebrae (at their true centroids) is below; without the fix the row has none. The level it
# reads is then calibrated on those same validation vertebrae: a straight line from the network's level
# to the true one (scale and offset below), because the network pulls its answers towards the middle
# of the spine and half a level decides which ordering wins (the error after the calibration is
# measured on the scans it was fitted on, so it flatters). The context network learns from the
# row's training scans and the 52 `hand` scans (`n_train_context`); Table 2's `n_train` counts the
# instance network's scans only.
#
# The same network also chooses where the walk starts: of the first-box candidates, the one it finds
# most likely on a vertebra (when one reaches 0.5), instead of the one where the instance network
# segments the most bone; a rib or the sternum seen from above can look more like bone to segment than
# the top vertebra does. So a (d) row's walk is not always its base row's walk; the output threshold is
# still the one tuned on the base row's walks. Each labelled vertebra in `label-spine`'s
# `levels.json` carries both numbers (`level_predicted`, the one the ordering used, and `level_head`)
# and the probability that the piece lies on a vertebra at all.
#
# With `fix_monotone_ordering` (fix (e), which needs (d)) the pieces are not given consecutive levels
# as Eq. 2 demands: the labels only have to descend the spine, a level may be skipped (the walk jumped a
# vertebra) and two pieces may share one (the walk cut a vertebra in two; they become one vertebra),
# each at a fixed cost (`vertebra.instance.ordering.most_likely_monotone_labelling`).

# %%
{"n_train_context": metrics.get("n_train_context"),
 "context_level_mae_val": metrics.get("context_level_mae_val"),
 "context_level_mae_val_calibrated": metrics.get("context_level_mae_val_calibrated"),
 "context_level_calibration": metrics.get("context_level_calibration"),
 "context_iterations": sizes.context_iterations if fix_context_levels else None,
 "ordering": metrics["ordering"]}

# %% [markdown]
# ## Per scan
#
# For each test scan: how many vertebrae the traversal found, the network passes it needed per vertebra,
# the mean Dice over the true vertebrae, the VerSe identification rate, and where L1 landed (`shift`:
# −1 on T12, +1 on L2). The confidence is the log-likelihood margin of the chosen ordering.
#
# The Dice comes three ways. `dice` scores every true vertebra against the piece given its label,
# including the slivers that the scan's first and last slices cut (a sliver the walk merges with its
# neighbour scores 0). `dice_complete` keeps only the vertebrae the scan shows whole, and
# `match_dice_complete` scores each of those against the piece that overlaps it best, whatever its label:
# the quality of the masks apart from the numbering.

# %%
per_case = pd.read_csv(out_dir / "per_case.csv", dtype={"case_id": str})
per_case[[c for c in ("case_id", "n_true", "n_found", "passes_per_vertebra", "dice", "dice_complete",
                      "match_dice_complete", "id_rate", "l1_correct", "cc_error_mm", "shift", "l1_confidence",
                      "anomalies") if c in per_case]].head(15)

# %% [markdown]
# ## By anomaly
#
# The phantom records which anomalies each scan carries. A method that counts from the top should be
# unaffected by a sacralised L5 but fooled by a thirteenth thoracic vertebra; one that reads levels from
# local shape may be fooled by either.

# %%
pd.DataFrame({k: {m: v.get(m) for m in ("n", "l1_acc", "avg_err_mm", "med_err_mm", "dice", "dice_complete",
                                         "match_dice_complete", "id_rate")}
              for k, v in metrics["strata"].items()}).T.round(3)

# %% [markdown]
# ## Against the paper
#
# The paper reports only the plain row (`instance`): Dice 0.85 on validation, 30 % L1 accuracy on the
# test scans, mean and median errors of 65 and 36 mm. The other rows have no paper numbers.

# %%
test = metrics["test"]
try:
    paper = get_row(run_id).paper
except ValueError:
    paper = None
pd.DataFrame({"ours": {"dice_val": metrics["dice_val"], "avg_err_test_mm": test["avg_err_mm"],
                       "med_err_test_mm": test["med_err_mm"], "l1_acc_test": test["l1_acc"]},
              "paper": {k: (paper or {}).get(k) for k in ("dice_val", "avg_err_test_mm", "med_err_test_mm",
                                                         "l1_acc_test")}}).round(3)

# %%
print(json.dumps({k: test[k] for k in ("shift_up_rate", "shift_down_rate", "other_rate")}, indent=1))
