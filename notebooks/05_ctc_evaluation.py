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
gallery_size = 6

# %% [markdown]
# # Every method on the CTC test scans
#
# Table 2 condenses each run into four numbers. This page opens them up again: which of the test
# scans each run got right, in which direction the wrong ones went, and whether the failures gather
# on the anatomical anomalies the synthetic cohort was built to contain.
#
# The inputs are the per-case files that the method notebooks write, one folder per run under
# `results/runs/`. Runs that have not been executed yet are simply absent from the tables.

# %%
from vertebra import tables
from vertebra.experiments import get_scale

per_case = tables.per_case_results(results_dir)
ctc = per_case[per_case["cohort"] == "ctc_test"]
print(f"{ctc['run_id'].nunique()} runs with per-case results on ctc_test, "
      f"{ctc['case_id'].nunique()} distinct test scans")

# %% [markdown]
# ## Case by case
#
# One row per test scan and one column per run. *correct* means the predicted L1 centroid lies in
# the true L1; *up* and *down* mean the method picked the vertebra above (T12, or T13 when there is
# one) or below (L2); *other* is anything further away; *not found* means no L1 was predicted at all.
# The first columns say which anomalies the scan carries, so a row that fails everywhere can be
# traced to its anatomy.

# %%
tables.case_outcomes(ctc)

# %% [markdown]
# ## Shifted up or down?
#
# The paper reports that its best hand-trained U-Net moved L1 up to T12 in about 15 % of the test
# scans and down to L2 in about 5 %, with a further 5 % of outright failures (§3.1). The same
# counts for every run here:

# %%
shifts = tables.shift_counts(ctc)
shifts

# %% [markdown]
# ## A gallery of failures
#
# For the best direct run, the scans it got wrong: the slices pass through the true L1 (coloured
# labels, L1 in red) and the yellow cross marks where the run put L1. The scans are regenerated from
# the cohort's seed, so this needs the phantom generator.

# %%
best = tables.best_run(results_dir, scale)
ctc = ctc.assign(outcome=tables.outcome(ctc))
failures = ctc[(ctc["run_id"] == best) & (ctc["outcome"] != "correct")] if best else ctc.iloc[:0]
print(f"best direct run: {best}; {len(failures)} failures")

# %%
try:
    from vertebra.io import read_verse_case
    from vertebra.phantom import cohort
except ImportError as exc:
    cohort = None
    print(f"the failure gallery needs the phantom generator, not available here ({exc.name or exc.msg.split(' (')[0]})")

if cohort is not None and len(failures):
    spec = get_scale(scale)
    cases = {p.name.removeprefix("sub-"): p for p in
             cohort("ctc_test", spacing_mm=spec.phantom_spacing_mm, n=spec.cohort_sizes["ctc_test"], seed=0)}
    from vertebra.viz import marked_orthoslices

    for _, row in failures.head(gallery_size).iterrows():
        case = read_verse_case(cases[str(row["case_id"])])
        predicted = [row.get("pred_x_mm"), row.get("pred_y_mm"), row.get("pred_z_mm")]
        marked_orthoslices(case.image, case.vertebrae, predicted,
                           title=f"{row['case_id']}: {row['outcome']} ({row['anomalies'] or 'no anomaly'})")

# %% [markdown]
# ## Accuracy per anomaly
#
# The `anomaly_test` cohort forces one anomaly per stratum, so that accuracy can be read per anomaly
# rather than guessed from a handful of cases. Where the runs wrote per-case results for it, each
# cell below is the fraction of that stratum's scans whose L1 was found correctly; on the CTC test
# scans the same breakdown uses whatever anomalies the draw happened to produce.

# %%
anomaly = per_case[per_case["cohort"] == "anomaly_test"]
if anomaly.empty:
    print("no per-case results on anomaly_test yet; the breakdown below uses the CTC test scans")
tables.accuracy_by_stratum(anomaly if len(anomaly) else ctc)
