"""The iterative instance segmentation of the whole spine (§2.3 of the paper, after Lessmann et al. 2019).

One 3D U-Net looks at a cubic patch of the scan plus an *instance memory* (the vertebrae already found)
and segments the next vertebra while regressing its level (L1 = 20). A traversal moves the patch along
the spine (`traversal`), re-centring on each vertebra; the regressed levels are turned into one
consistent labelling by maximum likelihood (`ordering`, Eq. 2).

Modules: `levels` (label ↔ aligned level), `scan` (resampling to isotropic voxels, HU window),
`patches` (training patches), `traversal`, `ordering`, `pipeline` (scan → labelled spine),
`weights` (saved models), `evaluation`, `run` (one Table 2 row), `cli` (`vertebra label-spine`).
"""
