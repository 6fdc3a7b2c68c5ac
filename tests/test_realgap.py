"""The phantom-vs-real measurements on tiny literal volumes, the randomisations, and the real CT (skipped
when it has not been fetched)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from vertebra.datasets import real_ct_available
from vertebra.domain_randomisation import ChestCrop, IntensityJitter, RandomisedCopies, Randomisation
from vertebra.direct_targets import DirectSample
from vertebra.image import Geometry, Volume
from vertebra.phantom_vs_real import gap_table, geodesic_length_mm, rib_lengths
from vertebra.realgap import (CanonicalCase, body_outline, level_spacing, local_std_hu, skin_depth_mm,
                              tissue_hu, vertebral_bodies)

SPACING = (1.0, 1.0, 2.0)  # x, y, z mm


@dataclass
class ToyCase:
    case_id: str
    image: Volume
    vertebrae: Volume
    ribs: Volume | None
    centroids_mm: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def toy_spine(noise_hu: float = 0.0, seed: int = 0) -> ToyCase:
    """A box body of fat around muscle (1 mm voxels, 2 mm slices) and two box vertebrae (T12 over L1),
    16 mm high, 30 mm wide and 16 mm deep, each a
    1-voxel 700 HU shell around a 150 HU core, a straight 'rib' on T12; arrays (z, y, x)."""
    rng = np.random.default_rng(seed)
    shape = (40, 100, 80)
    ct = np.full(shape, -1000.0, np.float32)
    ct[:, 10:95, 10:70] = -100.0                  # fat
    ct[:, 20:85, 20:60] = 50.0                    # muscle, reaching behind the vertebrae
    vert = np.zeros(shape, np.uint8)
    for lab, z0 in ((19, 22), (20, 8)):           # T12 on top (larger z = superior)
        vert[z0:z0 + 8, 25:41, 25:55] = lab       # 16 mm high (8 slices of 2 mm), 16 deep, 30 wide
        ct[z0:z0 + 8, 25:41, 25:55] = 700.0
        ct[z0 + 1:z0 + 7, 26:40, 26:54] = 150.0
    ribs = np.zeros(shape, np.uint8)
    ribs[26, 33, 55:66] = 12                      # 11 voxels along x from T12's side
    ct += noise_hu * rng.standard_normal(shape).astype(np.float32)
    g = Geometry(spacing_mm=SPACING)
    return ToyCase("toy", Volume(ct, g), Volume(vert, g), Volume(ribs, g),
                   meta={"rib_vertebra": {12: 19}, "protocol": "toy"})


def test_bodies_sizes_and_bone_hu():
    case = CanonicalCase.of(toy_spine())
    bodies = vertebral_bodies(case)
    assert [b["name"] for b in bodies] == ["T12", "L1"]
    for b in bodies:
        assert (b["height_mm"], b["width_mm"], b["depth_mm"]) == (16.0, 30.0, 16.0)
        assert b["trabecular_hu"] == 150.0 and b["cortical_hu"] == 700.0
        assert b["complete"]
    (pair,) = level_spacing(bodies)
    assert pair["pair"] == "T12-L1" and pair["dz_mm"] == pytest.approx(28.0)


def test_level_spacing_skips_gaps_and_cut_vertebrae():
    bodies = [{"label": 18, "name": "T11", "centroid_mm": [0, 0, 60], "complete": True},
              {"label": 20, "name": "L1", "centroid_mm": [0, 0, 0], "complete": True},
              {"label": 21, "name": "L2", "centroid_mm": [0, 0, -30], "complete": False}]
    assert level_spacing(bodies) == []


def test_tissue_medians_and_noise():
    clean = tissue_hu(CanonicalCase.of(toy_spine()))
    assert clean["fat_hu"] == -100.0 and clean["muscle_hu"] == 50.0
    assert clean["trabecular_hu"] == 150.0 and clean["noise_fat_hu"] == 0.0
    noisy = tissue_hu(CanonicalCase.of(toy_spine(noise_hu=20.0)))
    assert 15.0 < noisy["noise_fat_hu"] < 25.0          # a 5x5 window's std estimates sigma (slightly low)
    assert math.isnan(noisy["liver_hu"])                  # no T11 in view: no liver heuristic


def test_body_outline_fills_holes_and_skin_depth():
    ct = np.full((3, 20, 20), -1000.0)
    ct[:, 4:16, 4:16] = 0.0
    ct[:, 8:12, 8:12] = -900.0                            # an air pocket (lung) inside the body
    body = body_outline(ct)
    assert body[:, 8:12, 8:12].all() and not body[:, 0, 0].any()
    depth = skin_depth_mm(body, (1.0, 2.0, 2.0))
    assert depth[1, 4, 10] == 2.0 and depth[1, 10, 10] == 12.0


def test_local_std_ignores_windows_that_leave_the_region():
    rng = np.random.default_rng(1)
    ct = np.zeros((2, 30, 30))
    ct[:, :, 15:] = 1000.0                                # an edge that must not count as noise
    ct[:, :, :15] += rng.normal(0, 10.0, (2, 30, 15))
    region = np.zeros(ct.shape, bool)
    region[:, :, :15] = True
    assert 7.0 < local_std_hu(ct, region) < 11.0


def test_geodesic_length_follows_a_bent_rib():
    mask = np.zeros((1, 20, 20), bool)
    mask[0, 2, 2:18] = True                               # 16 voxels along x
    mask[0, 2:18, 17] = True                              # then 16 along y
    length = geodesic_length_mm(mask, (0, 2, 2), (1.0, 1.0, 1.0))
    assert 30.0 <= length <= 33.0                         # the straight-line distance would be ~21
    assert math.isnan(geodesic_length_mm(mask, (0, 10, 10), (1.0, 1.0, 1.0)))


def test_rib_lengths_start_at_their_vertebra():
    lengths = rib_lengths(CanonicalCase.of(toy_spine()), downsample_to_mm=1.0)
    assert set(lengths) == {12} and lengths[12] == pytest.approx(11.0)


def test_gap_table_columns():
    rec = {"tissue": {"fat_hu": -100.0}, "bodies": [], "spacing": [], "ribs_mm": {"12": 100.0, "112": 120.0}}
    other = {"tissue": {"fat_hu": -90.0}, "bodies": [], "spacing": [], "ribs_mm": {}}
    table = gap_table(rec, [other, other]).set_index("quantity")
    assert table.loc["fat (HU)", "phantom_minus_real"] == pytest.approx(10.0)
    assert table.loc["rib 12 length (mm)", "real"] == pytest.approx(110.0)
    assert math.isnan(table.loc["rib 12 length (mm)", "phantom_mean"])


def test_intensity_jitter_is_seeded_and_stays_in_range():
    image = np.linspace(0, 1, 8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8)
    jitter = IntensityJitter(probability=1.0)
    p1, p2 = jitter.sample(np.random.default_rng(3)), jitter.sample(np.random.default_rng(3))
    a, b = (IntensityJitter.apply(image, p, (2.0, 2.0, 2.0)) for p in (p1, p2))
    assert np.array_equal(a, b) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert IntensityJitter.apply(image, {}, (1, 1, 1)) is image


def test_chest_crop_keeps_l1_and_cuts_below_it():
    case = toy_spine()
    case.centroids_mm = {19: (40.0, 33.0, 51.0), 20: (40.0, 33.0, 23.0)}
    crop = ChestCrop(below_l1_mm=(10.0, 10.0)).crop(case, (16, 16, 16), np.random.default_rng(0))
    assert crop is not None and crop.image.shape == (16, 16, 16) and (crop.target == 1).any()
    assert crop.geometry.origin_mm[2] >= 13.0 - 2.0       # nothing below the cut (world z, mm)
    assert ChestCrop(below_l1_mm=(100.0, 100.0)).crop(case, (16, 16, 16), np.random.default_rng(0)) is None


def test_randomised_batches_are_a_function_of_the_step():
    g = Geometry(spacing_mm=(2.0, 2.0, 2.0))
    rng = np.random.default_rng(0)
    samples = [DirectSample(f"c{i}", rng.random((16, 16, 16), dtype=np.float32),
                            (rng.random((16, 16, 16)) > 0.9).astype(np.uint8), g, {}, {}) for i in range(3)]
    copies = RandomisedCopies(samples, [], Randomisation("intensity", intensity=IntensityJitter()))
    sample = copies.batch_sampler(2, seed=5)
    a, b = sample(7), sample(7)
    assert a["image"].shape == (2, 1, 16, 16, 16) and a["target"].shape == (2, 16, 16, 16)
    assert np.array_equal(a["image"].numpy(), b["image"].numpy())


real = pytest.mark.skipif(not real_ct_available(), reason="the real CT is not fetched (vertebra fetch-real-ct)")


@real
@pytest.mark.slow
def test_real_ct_measurements_are_plausible():
    from vertebra.datasets import load_real_ct
    from vertebra.phantom_vs_real import totalseg_tissue_hu

    case = CanonicalCase.of(load_real_ct())
    bodies = {b["name"]: b for b in vertebral_bodies(case)}
    assert 20.0 <= bodies["L1"]["height_mm"] <= 32.0 and 34.0 <= bodies["L1"]["width_mm"] <= 48.0
    tissue = tissue_hu(case, list(bodies.values()))
    reference = totalseg_tissue_hu()
    assert abs(tissue["liver_hu"] - reference["liver_hu"]) < 15       # heuristics agree with the labels
    assert abs(tissue["lung_hu"] - reference["lung_hu"]) < 30
    assert abs(tissue["muscle_hu"] - reference["muscle_hu"]) < 15
    assert -130 < tissue["fat_hu"] < -70


def test_direct_row_on_a_labelled_case_is_scored_and_drawn(tmp_path):
    import torch

    from vertebra.direct import save_weights
    from vertebra.models import UNet3D, UNetConfig
    from vertebra.real_eval import discover_models, evaluate_on_real

    torch.manual_seed(0)
    weights = tmp_path / "runs" / "unet-tiny" / "weights.pt"
    save_weights(UNet3D(UNetConfig(features=4)), weights, classes="L1", shape_zyx=[32, 32, 32],
                 run_id="unet-tiny")
    models = discover_models(tmp_path)
    assert models == {"direct": {"unet-tiny": weights}, "instance": {}}
    case = toy_spine()
    case.centroids_mm = {19: (40.0, 33.0, 51.0), 20: (40.0, 33.0, 23.0)}
    (rec,) = evaluate_on_real(case, models["direct"], figures_dir=tmp_path / "fig")
    assert rec["run_id"] == "unet-tiny" and rec["method"] == "3D U-Net"
    assert 0.0 <= rec["l1_dice"] <= 1.0 and rec["true_z_mm"] == 23.0
    assert rec["l1_correct"] == (rec["closest_label"] == 20)
    assert (tmp_path / "fig" / "unet-tiny.png").read_bytes()[:4] == b"\x89PNG"
