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
run_id = ""  # empty: the direct run with the best L1 accuracy in Table 2

# %% [markdown]
# # Figure 2: L1 as the direct U-Net sees it
#
# The paper's Figure 2 shows the L1 masks of its direct U-Net in three planes, once on a scan from the
# test hospital and once on a held-out scan from the hospital it was trained on. Here the same two
# situations come from the synthetic cohorts: a `ctc_test` scan (the unseen "site") and a `hand`
# scan that every direct row keeps aside for validation.
#
# The weights are those of the direct run with the best L1 accuracy at this scale (or the run named
# in the parameters). Each scan is shown twice: first the predicted mask (red), then the true
# vertebra labels for comparison. Slices pass through the predicted L1 centroid.

# %%
from pathlib import Path

from vertebra import tables
from vertebra.experiments import get_scale

chosen = run_id or tables.best_run(results_dir, scale)
weights = Path(results_dir) / "runs" / str(chosen) / "weights.pt"
print(f"direct run: {chosen or 'none yet'}; weights {'found' if weights.exists() else 'missing'}")

# %%
try:
    from vertebra.direct import find_l1, load_model
    from vertebra.io import read_verse_case
    from vertebra.phantom import cohort
except ImportError as exc:
    cohort = None
    print(f"Figure 2 needs the direct method and the phantom generator, not available here ({exc.name or exc.msg.split(' (')[0]})")

ready = cohort is not None and chosen is not None and weights.exists()
if not ready:
    print("Figure 2 is drawn once a direct row has been run (vertebra reproduce --rows direct).")

# %% [markdown]
# ## The two scans
#
# The test scan is the first of the `ctc_test` cohort; the hold-out scan is the last of the `hand`
# cohort, which no direct row trains on.

# %%
if ready:
    spec = get_scale(scale)
    picks = {
        "CTC test scan (unseen site)":
            cohort("ctc_test", spacing_mm=spec.phantom_spacing_mm, n=spec.cohort_sizes["ctc_test"], seed=0)[0],
        "hold-out scan (training sites)":
            cohort("hand", spacing_mm=spec.phantom_spacing_mm, n=spec.cohort_sizes["hand"], seed=0)[-1],
    }
    model, meta = load_model(weights)
    findings = {}
    for title, folder in picks.items():
        case = read_verse_case(folder)
        mask, record = find_l1(case.image, model, meta)
        findings[title] = (case, mask, record)
        print(f"{title}: {case.case_id}, L1 found {record['l1_found']}, "
              f"centroid {record['l1_centroid_mm']} mm, confidence {record['confidence']}")

# %% [markdown]
# ## Predicted L1 (red) in axial, sagittal and coronal views

# %%
if ready:
    from vertebra.viz import orthoslices

    for title, (case, mask, record) in findings.items():
        predicted = mask.with_array(mask.array.astype("uint8") * 20)  # paint the mask with L1's label
        orthoslices(case.image, predicted, record["l1_centroid_mm"], title=f"{title}: predicted L1")

# %% [markdown]
# ## The truth at the same position
#
# The same slices with the generator's labels (L1 red, the other vertebrae in other colours): a mask
# that sits one vertebra too high or too low shows up as red on the neighbour of the true L1.

# %%
if ready:
    for title, (case, mask, record) in findings.items():
        orthoslices(case.image, case.vertebrae, record["l1_centroid_mm"], title=f"{title}: true labels")
