"""Figure 3 of the paper: labelled spines from four cohorts, sagittal and coronal views.

The paper showed four segmentations "randomly chosen" from four datasets (VerSe, two CT colonography
sites, a contrast-enhanced abdominal scan). `pick_cases` draws one case per cohort with a fixed seed;
`figure3` runs the instance method on each and draws, per case, a sagittal and a coronal slice through
the labelled spine (head up, labels in the project's colours, L1 red), each vertebra named at its
centroid. Slices are taken on the prepared isotropic grid, so the aspect is 1.
"""
from __future__ import annotations

import numpy as np

from ..io import read_verse_case
from ..labels import L1
from ..viz import label_cmap
from .pipeline import label_spine
from .scan import HU_MIN
from .weights import InstanceBundle

#: (cohort, what it stands for in the paper's Figure 3)
FIGURE3_COHORTS = (("instance", "spine CT (in-sample, VerSe-like)"), ("ctc_test", "CTC, test site"),
                   ("pseudo", "CTC, training site"), ("hand", "chest-abdomen-pelvis, contrast"))


def pick_cases(cohort_dirs: dict[str, list], seed: int | np.random.Generator = 0) -> dict[str, object]:
    """One case folder per cohort, drawn uniformly (cohorts in the given order) with a generator
    seeded by ``seed`` (or the generator itself)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return {name: dirs[int(rng.integers(len(dirs)))] for name, dirs in cohort_dirs.items()}


def figure3(bundle: InstanceBundle, picked: dict[str, object], captions: dict[str, str] | None = None,
            window_hu=(-100.0, 1200.0)):
    """2 x N panels (sagittal over coronal) of the labelled spine of each picked case; returns the Figure."""
    import matplotlib.pyplot as plt

    captions = captions or dict(FIGURE3_COHORTS)
    fig, axes = plt.subplots(2, len(picked), figsize=(3.2 * len(picked), 8), constrained_layout=True,
                             squeeze=False)
    cmap = label_cmap(30)
    for col, (cohort, case_dir) in enumerate(picked.items()):
        case = read_verse_case(case_dir)
        result = label_spine(bundle, case.image, map_back=False)
        img, lab = result.prepared.image_hu, result.labels_prepared
        centre = np.argwhere(lab > 0).mean(0) if lab.any() else (np.asarray(img.shape) - 1) / 2
        zc, yc, xc = np.round(centre).astype(int)
        views = (("sagittal", img[:, :, xc], lab[:, :, xc], 1), ("coronal", img[:, yc, :], lab[:, yc, :], 2))
        for row, (view, grey, over, axis) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(grey, cmap="gray", vmin=max(window_hu[0], HU_MIN), vmax=window_hu[1], origin="lower",
                      interpolation="nearest")
            ax.imshow(np.ma.masked_equal(over, 0), cmap=cmap, vmin=0, vmax=cmap.N - 1, alpha=0.5,
                      origin="lower", interpolation="nearest")
            for v in result.levels:
                idx = result.prepared.volume(lab).world_to_index([v["centroid_mm"]])[0]
                ax.text(idx[axis], idx[0], v["name"], color="red" if v["label"] == L1 else "white",
                        fontsize=6, ha="center", va="center")
            ax.set_axis_off()
            if row == 0:
                ax.set_title(f"{captions.get(cohort, cohort)}\n{case.case_id}", fontsize=8)
    fig.suptitle("Iterative instance segmentation: four cases drawn at random")
    return fig
