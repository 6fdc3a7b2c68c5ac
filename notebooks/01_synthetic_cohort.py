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
figure_spacing_mm = 2.0      # voxel size of the example scans shown
baseline_spacing_mm = 4.0    # voxel size of the scans the simple rules run on (rules need no detail)
n_ctc_test = 12              # ctc_test scans for the rules (the paper's set has 40)
n_per_stratum = 4            # anomaly_test scans per stratum
n_anatomies = 5000           # sampled anatomies for the frequency table
results_dir = "results"
build_cohorts = True         # generate the cohorts the Table 2 rows train and test on (into the cache)
jobs = 1                     # worker processes for that (the files are the same for any number)

# %% [markdown]
# # The synthetic CT cohort
#
# Every experiment in this book runs on scans that a program drew, not on patients. That is only
# useful if the drawn scans are difficult for the same reasons real ones are, so this page shows what
# the generator (`vertebra.phantom`) puts into a scan and checks three things:
#
# 1. the scans look like CT of the three kinds the paper used (colonography, chest-abdomen-pelvis, spine);
# 2. the anatomical variants that break vertebra counting occur about as often as the paper says;
# 3. the simple rules one might use instead of a network fail on exactly those variants.
#
# A scan is made in four steps: an *anatomy* is sampled (which vertebrae exist, their sizes, the curve
# of the spine, the ribs, anomalies); a *protocol* decides what part of the body is scanned and how
# the patient lies; the shapes are *rasterised* into Hounsfield units on the requested grid; and the
# *scanner* adds blur, metal streaks and noise. The truth (vertebra labels, rib labels, centroids) comes
# out of the same rasteriser, so it is exact.

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vertebra import labels as L
from vertebra.baselines import rule_results
from vertebra.phantom import ANOMALIES, generate_case, sample_anatomy
from vertebra.phantom.anatomy import AnatomyConfig
from vertebra.phantom.cohorts import COHORTS, cohort_specs, iter_cases
from vertebra.phantom.figures import BONE_WINDOW, three_views
from vertebra.phantom.sites import SITES, TRAINING_SITES, outside_training

figures = Path(results_dir) / "figures"
figures.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## One scan of each protocol
#
# *CT colonography* (`ctc`) starts somewhere between T9 and L1, so the first thoracic vertebra is never
# in view, and ends below the pubic bones; the colon is blown up with gas and the leftover fluid is
# tagged with oral contrast, which is as bright as bone and lies on whichever side is down. Patients
# are scanned lying on their back and on their front; a prone scan is stored with the spine at the top
# of each axial image. The *chest-abdomen-pelvis* scan (`cap`) runs from the neck to the pelvis with
# contrast in the blood. The *spine* scan is narrow and centred on the spine.
#
# In the sagittal and coronal views the true L1 is outlined in orange.

# %%
examples = {
    "ctc": dict(protocol="ctc", site="ctc_train", position="supine"),
    "ctc_prone": dict(protocol="ctc", site="ctc_train", position="prone"),
    "cap": dict(protocol="cap", site="cap_train"),
    "spine": dict(protocol="spine", site="spine_train"),
}
example_cases = {}
for n, (name, kw) in enumerate(examples.items()):
    example_cases[name] = generate_case(np.random.default_rng([seed, 900, n]), spacing_mm=figure_spacing_mm,
                                        anomalies=(), **kw)

for name, case in example_cases.items():
    fig, axes = plt.subplots(1, 4, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1, 1, 1, 1]})
    three_views(case, axes[:3])
    three_views(case, [axes[3]], window=BONE_WINDOW, title="bone window")
    fig.suptitle(f"{name}: {case.meta['protocol']}, {case.meta['position']}, "
                 f"slices {case.meta['spacing_mm'][2]:.1f} mm, noise {case.meta['site']['noise_hu']:.0f} HU")
    fig.tight_layout()
    if name in ("ctc", "cap", "spine"):
        fig.savefig(figures / f"phantom_{name}.png", dpi=110)
    plt.show()

# %% [markdown]
# ## Each anomaly
#
# Each row forces one anomaly on an otherwise normal patient (chest-abdomen-pelvis protocol, so that
# every rib and the sacrum are in view). Things to look for: the sixth lumbar-type vertebra
# (*lumbarization*), a transverse process grown into the sacrum (*sacralization*), a short extra rib
# on a thirteenth thoracic vertebra (*t13*), a stub or no twelfth rib, a flattened body (*fracture*),
# screws and streaks (*metal*), and pale trabecular bone (*low density*).

# %%
fig, axes = plt.subplots(len(ANOMALIES), 3, figsize=(10, 3.1 * len(ANOMALIES)))
for row, anomaly in enumerate(ANOMALIES):
    case = generate_case(np.random.default_rng([seed, 901, row]), protocol="cap", site="cap_train",
                         spacing_mm=figure_spacing_mm, anomalies=(anomaly,))
    label = case.meta["fracture"]["label"] if anomaly == "fracture" else L.L1
    if anomaly == "metal" and case.meta["metal"]["levels"]:
        label = case.meta["metal"]["levels"][0]
    three_views(case, axes[row], label=label, window=BONE_WINDOW, title=anomaly)
fig.tight_layout()
fig.savefig(figures / "phantom_anomalies.png", dpi=80)
plt.show()

# %% [markdown]
# ## How often each anomaly occurs
#
# Anomalies are drawn independently for each scan. Low bone density is not drawn but follows from the
# patient's age (trabecular bone loses about 2 HU a year in this model); a scan counts as low density
# when its trabecular bone is below 100 HU. The table compares the share among sampled anatomies with
# the incidence the paper quotes.

# %%
cfg = AnatomyConfig()
paper = {"lumbarization": cfg.lumbarization, "sacralization": cfg.sacralization, "t13": cfg.t13,
         "rudimentary or absent 12th rib": cfg.short_12th_rib, "fracture": cfg.fracture, "metal": cfg.metal,
         "low_density": None}
sampled = [sample_anatomy(np.random.default_rng([seed, 902, i])) for i in range(n_anatomies)]
share = {a: np.mean([a in s.anomalies for s in sampled]) for a in ANOMALIES}
share["rudimentary or absent 12th rib"] = share.pop("rudimentary_12th_rib") + share.pop("absent_12th_rib")
freq = pd.DataFrame({"paper incidence": paper, "sampled share": share}).loc[list(paper)]
freq["sampled share"] = freq["sampled share"].map(lambda v: f"{100 * v:.1f} %")
freq["paper incidence"] = freq["paper incidence"].map(lambda v: "age-dependent" if v is None or v != v else f"{100 * v:.0f} %")
freq

# %% [markdown]
# ## The cohorts
#
# The paper's datasets become cohorts of the same size and mix of protocols. The test cohort comes from
# a scanner site whose settings lie outside every training site's range, as the paper's 40 test scans
# came from another hospital.

# %%
rows = []
for name in COHORTS:
    specs = cohort_specs(name)
    rows.append({"cohort": name, "scans": len(specs),
                 **{p: sum(s.protocol == p for s in specs) for p in ("ctc", "cap", "spine")},
                 "lumbar only": sum(s.lumbar_only for s in specs), "sites": ", ".join(sorted({s.site for s in specs}))})
pd.DataFrame(rows).set_index("cohort")

# %%
print("ctc_test site outside the training sites in:", ", ".join(outside_training(SITES["ctc_test"])))
pd.DataFrame([SITES[s].__dict__ for s in (*TRAINING_SITES, "ctc_test")]).set_index("name")

# %% [markdown]
# ## Three simple rules, and where they fail
#
# - **Rib rule**: L1 is the first vertebra below the last one carrying a rib of at least 4 cm. On a
#   colonography scan that starts at T12 or lower there may be no such rib in view; the rule then has
#   no answer ("undefined").
# - **Count up from the sacrum**: the fifth free vertebra above the sacrum is L1; a vertebra bridged to
#   the sacrum counts as sacrum.
# - **Bone threshold**: everything at or above 200 HU is bone; the table gives how much tagged fluid
#   that takes in.
#
# They run here on the truth label maps, so their failures are failures of the rule, not of a detector.

# %%
records = []
for cohort_name, n in (("ctc_test", n_ctc_test), ("anomaly_test", n_per_stratum)):
    for case in iter_cases(cohort_name, spacing_mm=baseline_spacing_mm, n=n, seed=seed):
        r = rule_results(case.vertebrae, case.ribs, case.image, case.fluid)
        records.append({"cohort": cohort_name, "stratum": case.meta["stratum"] or "(all)", **r})
rules = pd.DataFrame(records)


def summary(df):
    return pd.Series({
        "scans": len(df),
        "rib rule right": f"{(df.rib_rule == L.L1).mean():.0%}",
        "rib rule undefined": f"{df.rib_rule.isna().mean():.0%}",
        "sacrum count right": f"{(df.sacrum_count == L.L1).mean():.0%}",
        "tagged fluid (ml)": f"{df.fluid_ml.mean():.0f}",
        "fluid called bone": f"{(df.fluid_called_bone_ml.sum() / max(df.fluid_ml.sum(), 1e-9)):.0%}",
        "bone call that is fluid": f"{(df.fluid_called_bone_ml.sum() / df.called_bone_ml.sum()):.1%}",
    })


rules.groupby(["cohort", "stratum"], sort=False)[list(rules.columns[2:])].apply(summary)

# %% [markdown]
# The rib rule is right on normal spines and wrong on every thirteenth-rib, rudimentary- and
# absent-rib scan; counting from the sacrum is wrong on every lumbarized or sacralized scan. On the test
# site, with more tagged fluid, a plain threshold takes nearly all of that fluid for bone. A method
# that finds L1 has to look at the shape of the vertebrae themselves, which is what the networks in
# the next pages learn to do.

# %% [markdown]
# ## The cohorts behind Table 2
#
# The rows of Table 2 train on the `hand`, `pseudo` and `instance` cohorts and are tested on
# `ctc_test`. They are generated here, once, into the cache (`~/.cache/vertebra/phantom-v<version>/`),
# at this scale's voxel size; every scan is drawn from a generator seeded by (seed, cohort, index), so
# the same files come back on any machine and with any number of worker processes. Scans already in
# the cache are reused.

# %%
from vertebra.experiments import get_scale
from vertebra.phantom import cohort

scale_config = get_scale(scale)
built = []
if build_cohorts:
    for cohort_name in ("hand", "pseudo", "instance", "ctc_test"):
        folders = cohort(cohort_name, spacing_mm=scale_config.phantom_spacing_mm,
                         n=scale_config.cohort_sizes[cohort_name], seed=seed, jobs=jobs)
        built.append({"cohort": cohort_name, "scans": len(folders),
                      "voxel (mm)": scale_config.phantom_spacing_mm, "cache folder": "/".join(folders[0].parent.parts[-4:])})
pd.DataFrame(built)
