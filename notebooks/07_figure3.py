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
weights = None          # None: the "instance" row's weights in results/, else the packaged ones
run_id = "instance"
results_dir = "results"

# %% [markdown]
# # Figure 3: what the labelled spines look like
#
# Numbers in a table hide *how* a method fails. The paper therefore showed four spines labelled by the
# instance method, one from each of four kinds of scan, picked at random rather than chosen to flatter.
# We do the same: one scan is drawn from each of four synthetic cohorts with a fixed seed, so the
# figure is the same on every machine and nobody chose the cases.
#
# | column | cohort | stands for |
# |---|---|---|
# | 1 | `instance` | the spine-centred scans the model was trained on (VerSe in the paper) |
# | 2 | `ctc_test` | CT colonography from the unseen test site |
# | 3 | `pseudo` | CT colonography from the training sites |
# | 4 | `hand` | chest-abdomen-pelvis scans with contrast |
#
# What to look for: the paper saw trouble with the top-most and bottom-most vertebrae (the first one is
# met with an empty memory, the last one sits next to the sacrum), and labels that are off by one as a
# whole when the regressed levels are off.

# %%
from pathlib import Path

from vertebra.experiments import get_scale
from vertebra.instance.figures import FIGURE3_COHORTS, figure3, pick_cases
from vertebra.instance.weights import DEFAULT_WEIGHTS, load_bundle
from vertebra.phantom import cohort
from vertebra.results import write_bytes_atomic
from vertebra.viz import figure_png

sizes = get_scale(scale)
if weights is None:
    trained = Path(results_dir) / "runs" / run_id / "weights.pt"
    weights = trained if trained.exists() else DEFAULT_WEIGHTS
bundle = load_bundle(weights)
print("weights:", weights, "| trained with:", bundle.params)

# %% [markdown]
# ## Drawing the cases
#
# Each cohort is generated (or read from the cache) at the scale's spacing; a seeded generator picks
# one scan from each.

# %%
cohorts = {name: cohort(name, spacing_mm=sizes.phantom_spacing_mm, n=sizes.cohort_sizes[name], seed=seed)
           for name, _ in FIGURE3_COHORTS}
picked = pick_cases(cohorts, seed)
{name: Path(p).name for name, p in picked.items()}

# %% [markdown]
# ## The figure
#
# Top row sagittal, bottom row coronal, both through the middle of the labelled spine, head up. Each
# vertebra carries the name the ordering step gave it; L1 is red.

# %%
from IPython.display import Image

png = figure_png(figure3(bundle, picked), dpi=110)
out = write_bytes_atomic(Path(results_dir) / "figures" / "figure3.png", png)
print("wrote", out)
Image(data=png)
