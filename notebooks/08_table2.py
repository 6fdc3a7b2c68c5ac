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

# %% [markdown]
# # Table 2: the paper's numbers and ours
#
# Each line is one row of the paper's Table 2, or one of the rows this project adds to test the
# paper's suggested fixes for the instance method, (a)-(c), and two of its own: (d), each found
# vertebra's level read by a second network from a wide view, and (e), a numbering that lets the walk
# skip or split a vertebra (those rows have no paper numbers). For every metric the
# table gives the paper's value, ours, and the difference (ours minus the paper's):
#
# - `dice_val`: Dice of the L1 mask on the validation scans (for the instance method, of all vertebrae),
# - `avg_err_test_mm`, `med_err_test_mm`: mean and median craniocaudal distance between the predicted
#   and the true L1 centroid on the test scans, in mm,
# - `l1_acc_test`: the fraction of test scans whose predicted L1 lies in the true L1.
#
# Our numbers come from `results/table2.csv`, which each row's notebook updates when it finishes;
# nothing here is typed by hand. Empty cells are rows that have not been run at this scale.

# %%
from vertebra import tables

table = tables.table2(results_dir, scale, seed)
print(f"scale: {scale}; rows run: {int(table['l1_acc_test_ours'].notna().sum())} of {len(table)}")

# %% tags=["table2"]
shown = tables.table2_for_display(table)
shown.style.format(precision=2, na_rep="").set_caption(f"Table 2, paper vs. ours ({scale} scale; Δ = ours - paper)")

# %% [markdown]
# ## Where we agree and where we do not
#
# The paper's comparison has two lessons that do not depend on the exact numbers: more training scans
# help the direct U-Net (with pseudo-labels beating a small set of exact ones), and the instance method
# segments the spine well but names L1 less reliably. The plot puts both accuracies side by side per
# row; read it together with the caveats in the limitations chapter (40 test scans: one scan is 2.5
# percentage points).

# %%
ax = table.set_index("run_id")[["l1_acc_test_paper", "l1_acc_test_ours"]].plot.barh(figsize=(7, 6))
ax.set_xlabel("L1 accuracy on the test scans")
ax.invert_yaxis()
ax.legend(["paper", "ours"], loc="lower right");

# %% [markdown]
# ## Re-running a row
#
# Each row is one execution of a notebook with papermill. The first command needs only jupytext and
# papermill; the second does the same through the project's runner, which also skips the row when
# nothing changed and records its provenance.

# %%
for _, line in table.iterrows():
    print(f"{line['run_id']}\n  {line['command']}\n  {line['reproduce']}\n")
