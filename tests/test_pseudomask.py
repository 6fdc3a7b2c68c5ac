"""The pseudo-mask tool (paper §2.1) on small synthetic spines: stacked bodies with a cortical shell,
a dark canal behind them closed by a bony arch, discs between."""
from __future__ import annotations

import numpy as np
import pytest

from vertebra.image import Geometry, Volume


def synthetic_spine(rng: np.random.Generator, *, n_vertebrae: int = 7, spacing_mm: float = 2.0,
                    prone: bool = False, scoliosis_mm: float = 0.0, noise_hu: float = 15.0,
                    trabecular_hu: float = 150.0, confounders: bool = False):
    """A crude lumbar-thoracic spine: (CT Volume, truth labels 1..n from the top, body centres (z, y, x) mm).

    Array axes (z, y, x); z = 0 is the top slice (cranial: LPS index z grows superiorly in world, but
    the tool only needs slice order). Posterior is +y (supine) or -y (prone)."""
    heights = np.linspace(20.0, 27.0, n_vertebrae)
    discs = np.linspace(5.0, 9.0, n_vertebrae)
    length = float(heights.sum() + discs.sum()) + 20.0
    nz, ny, nx = int(length / spacing_mm), int(200 / spacing_mm), int(200 / spacing_mm)
    z, y, x = np.meshgrid(*(np.arange(n) * spacing_mm for n in (nz, ny, nx)), indexing="ij", sparse=True)
    cx = 100.0 + scoliosis_mm * np.sin(np.pi * z / length)
    cy = 135.0 + 6.0 * np.cos(2 * np.pi * z / length)          # canal centre (posterior half of the body)
    ct = np.where(((y - 100) / 80) ** 2 + ((x - 100) / 95) ** 2 < 1, 40.0, -1000.0) + 0 * z
    truth = np.zeros((nz, ny, nx), np.uint8)
    centres = []
    top = 10.0
    for k in range(n_vertebrae):
        z0, z1 = top, top + heights[k]
        width, depth = 30.0 + 2 * k, 22.0 + 1.5 * k
        by = cy - 9.0 - depth / 2                                # body centre (anterior of the canal)
        in_z = (z >= z0) & (z < z1)
        r_body = ((y - by) / (depth / 2)) ** 2 + ((x - cx) / (width / 2)) ** 2
        body = in_z & (r_body < 1)
        shell = body & ((r_body > 0.75) | (z < z0 + 2) | (z >= z1 - 2))
        r_canal = np.hypot(y - cy, x - cx)
        arch = (z >= z0 + 2) & (z < z1 - 2) & (r_canal >= 8) & (r_canal < 13) & (y > cy - 8)
        spinous = (z >= z0 + 3) & (z < z1 + 3) & (y >= cy + 12) & (y < cy + 38) & (np.abs(x - cx) < 3)
        vert = body | arch | spinous
        ct = np.where(vert, 450.0, ct)
        ct = np.where(body & ~shell, trabecular_hu, ct)
        truth[np.broadcast_to(vert, truth.shape)] = k + 1
        disc = (z >= z1) & (z < z1 + discs[k]) & (r_body < 1)
        ct = np.where(disc, 85.0, ct)
        centres.append((0.5 * (z0 + z1), float(np.mean(by)), float(np.mean(cx))))
        top = z1 + discs[k]
    canal = np.hypot(y - cy, x - cx) < 8
    ct = np.where(canal & (ct < 100), 15.0, ct)
    if confounders:
        # a bony ring around fat low in the scan (a pelvis-like hole), a tagged-fluid pool in front of
        # the spine, a band of slices with metal streaks and a band of blank (missing) slices
        ring = np.hypot(y - 120, x - 40)
        low = z > 0.7 * length
        ct = np.where(low & (ring >= 10) & (ring < 14), 500.0, ct)
        ct = np.where(low & (ring < 10), -80.0, ct)
        pool = (np.hypot(y - 55, x - 110) < 18) & (y > 57) & (z > 0.3 * length) & (z < 0.6 * length)
        ct = np.where(pool, 700.0, ct)
        k = int(0.4 * nz)
        ct[k:k + 2] = np.where(np.abs(np.asarray(y) - 100) < 90, 40.0, -1000.0) + np.where(np.abs(x - 100) < 4, 3000.0, 0.0)
    ct = ct + rng.normal(0.0, noise_hu, ct.shape)
    ct = ct.astype(np.int16)
    if confounders:
        ct[int(0.6 * nz):int(0.6 * nz) + 3] = -1024                     # missing slices
    if prone:
        ct, truth = ct[:, ::-1].copy(), truth[:, ::-1].copy()
    geometry = Geometry(spacing_mm=(spacing_mm,) * 3)
    return Volume(ct, geometry), Volume(truth, geometry), np.array(centres)


@pytest.fixture(scope="module")
def spine():
    return synthetic_spine(np.random.default_rng(0))


def test_canal_is_found_behind_the_bodies(spine):
    from vertebra.pseudomask.canal import detect_canal
    from vertebra.pseudomask.centreline import fit_centreline
    ct, _, centres = spine
    cand = detect_canal(ct)
    assert len(cand) >= 10, "the canal should be found in most vertebra slices"
    line = fit_centreline(cand, ct.array.shape, ct.spacing_zyx)
    y_mm = line.yx_index[:, 0] * ct.spacing_zyx[1]
    assert np.all(y_mm > centres[:, 1].max()), "the canal lies posterior (+y) of every body centre"
    assert np.all(line.anterior_yx[:, 0] < -0.9), "the body direction points anterior (-y)"


@pytest.mark.parametrize("kw", [{}, {"prone": True}, {"scoliosis_mm": 15.0, "trabecular_hu": 70.0},
                                {"confounders": True, "prone": True}])
def test_vertebra_count_within_one(kw):
    from vertebra.pseudomask import segment_spine
    ct, truth, _ = synthetic_spine(np.random.default_rng(1), **kw)
    result = segment_spine(ct)
    assert abs(result.n_vertebrae - int(truth.array.max())) <= 1
    assert set(np.unique(result.labels.array)) == set(range(result.n_vertebrae + 1))


def test_alignment_puts_20_on_the_l1_point(spine):
    from vertebra.pseudomask import align_to_l1, segment_spine
    ct, truth, centres = spine
    result = segment_spine(ct)
    l1_world = ct.index_to_world(centres[3] / np.asarray(ct.spacing_zyx))[0]  # call the 4th vertebra L1
    aligned = align_to_l1(result.labels, l1_world).array
    inside = truth.array == 4
    values, counts = np.unique(aligned[inside], return_counts=True)
    assert values[np.argmax(counts)] == 20
    assert 19 in aligned and 21 in aligned


def test_runs_with_the_ct_alone(spine, tmp_path):
    """A case folder with only the CT (no masks, no centroids): the tool and the cache still work."""
    import json
    from vertebra.io import write_image
    from vertebra.pseudomask import training_labels
    ct, _, centres = spine
    case = tmp_path / "sub-x01"
    write_image(ct, case / "sub-x01_ct.nii.gz")
    l1 = ct.index_to_world(centres[3] / np.asarray(ct.spacing_zyx))[0]
    (case / "sub-x01_meta.json").write_text(json.dumps({"l1_centroid_mm": l1.tolist()}))
    labels = training_labels(case, cache=tmp_path / "cache")
    assert labels.array.shape == ct.array.shape and 20 in labels.array
    again = training_labels(case, cache=tmp_path / "cache")        # from the cache
    assert np.array_equal(again.array, labels.array)
    assert not list(case.glob("*msk*")), "the tool writes nothing into the case folder"


def test_bmd_reads_the_trabecular_core():
    from vertebra.pseudomask import segment_spine
    from vertebra.pseudomask.bmd import trabecular_bmd_hu
    ct, _, _ = synthetic_spine(np.random.default_rng(2), trabecular_hu=120.0)
    result = segment_spine(ct)
    hu, n = trabecular_bmd_hu(result.canonical.array, result.watershed.after == 4, result.straightened.frame)
    assert n > 10 and abs(hu - 120.0) < 30.0


def test_quality_counts_splits_and_merges():
    from vertebra.pseudomask.quality import compare_labels
    truth = np.zeros((12, 2, 2), int)
    truth[:4], truth[4:8], truth[8:] = 1, 2, 3
    found = truth.copy()
    found[8:10] = 4                      # vertebra 3 split in two
    found[found == 2] = 1                # vertebrae 1 and 2 merged
    q = compare_labels(found, truth)
    assert (q["over_segmented"], q["under_segmented"], q["vertebrae_found"]) == (1, 1, 3)


def test_cli_writes_labels_and_summary(spine, tmp_path):
    import json
    from vertebra.cli import main
    from vertebra.io import read_image, write_image
    ct, _, centres = spine
    scan = write_image(ct, tmp_path / "scan.nii.gz")
    l1 = ct.index_to_world(centres[3] / np.asarray(ct.spacing_zyx))[0]
    assert main(["pseudomask", str(scan), "--out", str(tmp_path / "out"), "--l1-mm", *map(str, l1)]) == 0
    summary = json.loads((tmp_path / "out" / "scan_pseudomask.json").read_text(encoding="utf-8"))
    assert summary["n_vertebrae"] >= 6
    aligned = read_image(tmp_path / "out" / "scan_pseudo-vert_msk.nii.gz", kind="labels")
    assert 20 in aligned.array
    assert main(["pseudomask", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "o2")]) == 2
