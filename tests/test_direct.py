"""The direct method on tiny toy spines: targets, augmentation copies, inference, a whole row, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vertebra import labels as verse
from vertebra.direct import find_l1_on_grid, l1_bmd_hu, load_model, save_weights
from vertebra.direct_targets import HU_MAX, HU_MIN, class_map, load_direct_sample
from vertebra.preprocess import resample_to_shape, window
from vertebra.direct_training import AugmentedCopies, DirectLoss
from vertebra.image import Geometry, Volume
from vertebra.io import write_verse_case
from vertebra.models import UNet3D, UNetConfig

SHAPE = (32, 16, 16)


def toy_spine(seed: int, shape=(60, 24, 24), spacing_mm=4.0):
    """A column of box vertebrae (T8..L5) along z with rib bars on the thoracic ones; L1 height varies."""
    rng = np.random.default_rng(seed)
    ct = np.full(shape, -50, np.int16)
    vert = np.zeros(shape, np.uint8)
    ribs = np.zeros(shape, np.uint8)
    labels = [15, 16, 17, 18, 19, 20, 21, 22, 23, 24]
    top = int(rng.integers(1, 12))
    rib_vertebra = {}
    for i, lab in enumerate(labels[::-1]):  # z grows upward (superior): L5 lowest
        z0 = top + 5 * i
        if z0 + 4 > shape[0]:
            break
        vert[z0:z0 + 4, 10:15, 10:15] = lab
        ct[z0:z0 + 4, 10:15, 10:15] = 250
        if lab <= verse.T12:
            k = lab - 7
            rib_vertebra[k] = lab
            ribs[z0 + 1:z0 + 3, 12, 2:10] = k
            ribs[z0 + 1:z0 + 3, 12, 15:22] = 100 + k
            ct[z0 + 1:z0 + 3, 12, 2:10] = 300
            ct[z0 + 1:z0 + 3, 12, 15:22] = 300
    geometry = Geometry((spacing_mm,) * 3, (0.0, 0.0, 0.0))
    centroids = {}
    image = Volume(ct, geometry)
    for lab in np.unique(vert)[1:]:
        centroids[int(lab)] = image.index_to_world(np.argwhere(vert == lab).mean(0))[0]
    meta = {"case_id": f"toy{seed}", "cohort": "toy", "anomalies": [], "rib_vertebra": rib_vertebra,
            "protocol": "ctc"}
    return image, Volume(vert, geometry), Volume(ribs, geometry), centroids, meta


@pytest.fixture(scope="module")
def toy_cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    out = []
    for seed in range(6):
        image, vert, ribs, centroids, meta = toy_spine(seed)
        out.append(write_verse_case(root, f"toy{seed}", image, vertebrae=vert, ribs=ribs,
                                    centroids_mm=centroids, meta=meta))
    return out


def test_class_maps_of_each_variant():
    _, vert, ribs, _, meta = toy_spine(0)
    v, r = vert.array, ribs.array
    assert set(np.unique(class_map(v, r, meta, "L1"))) == {0, 1}
    two = class_map(v, r, meta, "L1,T12")
    assert ((two == 2) == (v == verse.T12)).all()
    merged = class_map(v, r, meta, "L1,T12+ribs")
    assert (merged == 2).sum() == (v == 19).sum() + np.isin(r, [12, 112]).sum()
    three = class_map(v, r, meta, "L1,T12,ribs")
    assert ((three == 3) == np.isin(r, [12, 112])).all() and ((three == 1) == (v == 20)).all()
    with pytest.raises(ValueError):
        class_map(v, r, meta, "L2")


def test_resample_keeps_extent_and_window_range():
    image, *_ = toy_spine(1)
    grid = resample_to_shape(image, SHAPE, antialias=True)
    assert grid.array.shape == SHAPE
    first = image.index_to_world([[-0.5, -0.5, -0.5]])
    assert np.allclose(grid.index_to_world([[-0.5, -0.5, -0.5]]), first)
    w = window(grid.array, HU_MIN, HU_MAX)
    assert w.min() >= 0 and w.max() <= 1


def test_samples_are_cached_and_identical(toy_cases, tmp_path):
    a = load_direct_sample(toy_cases[0], SHAPE, "L1,T12", "hand", cache=tmp_path)
    b = load_direct_sample(toy_cases[0], SHAPE, "L1,T12", "hand", cache=tmp_path)
    assert len(list((tmp_path / "direct").glob("*.npz"))) == 1
    assert np.array_equal(a.image, b.image) and np.array_equal(a.target, b.target)
    assert set(np.unique(a.target)) <= {0, 1, 2} and (a.target == 1).any()
    assert a.centroids_mm.keys() == b.centroids_mm.keys()


def test_augmented_copies_are_fixed_per_scan_and_copy(toy_cases, tmp_path):
    samples = [load_direct_sample(c, SHAPE, "L1", "hand", cache=tmp_path) for c in toy_cases[:2]]
    copies = AugmentedCopies(samples, n_aug=3, seed=5)
    again = AugmentedCopies(samples, n_aug=3, seed=5)
    img, tgt = copies.copy(1, 2)
    assert np.array_equal(img, again.copy(1, 2)[0]) and np.array_equal(tgt, again.copy(1, 2)[1])
    assert img.shape == SHAPE and tgt.dtype == np.uint8
    sample = copies.batch_sampler(2, seed=0)
    b1, b2 = sample(4), again.batch_sampler(2, seed=0)(4)
    assert b1["image"].shape == (2, 1, *SHAPE) and b1["target"].shape == (2, *SHAPE)
    assert (b1["image"] == b2["image"]).all()


def test_loss_decreases_on_one_batch(toy_cases, tmp_path):
    import torch
    samples = [load_direct_sample(c, SHAPE, "L1", "hand", cache=tmp_path) for c in toy_cases[:2]]
    batch = AugmentedCopies(samples, n_aug=0, seed=0).batch_sampler(2, 0)(0)
    torch.manual_seed(0)
    net = UNet3D(UNetConfig(features=4, dropout=0.0))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    losses = []
    for step in range(5):
        opt.zero_grad()
        loss, terms = DirectLoss(1)(net, batch, step)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] and {"ce", "dice_loss"} <= set(terms)


def test_largest_component_centroid_and_confidence():
    geometry = Geometry((2.0, 2.0, 4.0), (10.0, 0.0, -100.0))
    probs = np.zeros((2, 16, 8, 8), np.float32)
    probs[0] = 1.0
    probs[1, 4:8, 2:5, 2:5], probs[0, 4:8, 2:5, 2:5] = 0.9, 0.1  # the big component
    probs[1, 12, 6, 6], probs[0, 12, 6, 6] = 0.8, 0.2  # a one-voxel rival
    f = find_l1_on_grid(probs, geometry)
    assert f.found and f.n_components == 2 and f.mask.sum() == 36
    assert np.allclose(f.centroid_mm, (10 + 2 * 3, 2 * 3, -100 + 4 * 5.5))
    assert f.z_range_mm == (-100 + 4 * 4 - 2, -100 + 4 * 7 + 2)
    assert np.isclose(f.margin, 1 - 1 / 36) and np.isclose(f.mean_probability, 0.9)
    none = find_l1_on_grid(np.stack([np.ones((4, 4, 4)), np.zeros((4, 4, 4))]), geometry)
    assert not none.found and none.confidence == 0.0


def test_bmd_of_a_uniform_block():
    arr = np.full((20, 20, 20), -1000, np.int16)
    arr[4:16, 4:16, 4:16] = 150
    image = Volume(arr, Geometry((1.0, 1.0, 1.0)))
    assert l1_bmd_hu(image, arr == 150) == 150.0


def test_weights_roundtrip_and_bad_file(tmp_path):
    from vertebra.errors import InputError
    net = UNet3D(UNetConfig(num_classes=2, features=4))
    save_weights(net, tmp_path / "w.pt", classes="L1,T12", shape_zyx=list(SHAPE))
    model, meta = load_model(tmp_path / "w.pt")
    assert meta["classes"] == "L1,T12" and model.config.num_classes == 2
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_model(tmp_path / "bad.pt")
    with pytest.raises(InputError):
        load_model(tmp_path / "missing.pt")


@pytest.mark.slow
def test_a_whole_row_and_the_cli(toy_cases, tmp_path):
    from vertebra.cli import main
    from vertebra.direct import run_row
    params = {"run_id": "toy-row", "classes": "L1", "n_train": 4, "n_aug": 2, "label_source": "hand",
              "scale": "smoke", "seed": 0, "iterations": 4, "features": 4, "cache": str(tmp_path / "cache"),
              "train_cases": toy_cases[:4], "val_cases": toy_cases[4:5], "test_cases": toy_cases[4:]}
    out = tmp_path / "results" / "runs" / "toy-row"
    metrics = run_row(params, out)
    for name in ("params.json", "metrics.json", "per_case.csv", "train_log.csv", "training_curve.png",
                 "provenance.json", "weights.pt"):
        assert (out / name).exists(), name
    assert 0 <= metrics["l1_acc_test"] <= 1 and metrics["n_test"] == 2
    table = (tmp_path / "results" / "table2.csv").read_text(encoding="utf-8")
    assert "toy-row" in table and "smoke" in table

    rc = main(["find-l1", str(toy_cases[5]), "--weights", str(out / "weights.pt"), "--out", str(tmp_path / "o")])
    assert rc == 0
    record = json.loads((tmp_path / "o" / "l1.json").read_text(encoding="utf-8"))
    assert {"l1_centroid_mm", "l1_z_range_mm", "confidence", "l1_bmd_hu", "model", "version"} <= set(record)
    assert main(["find-l1", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "o2")]) == 2


def test_fcnn_slabs_and_a_few_steps(toy_cases, tmp_path):
    from vertebra.direct_fcnn import SlabTask, train_fcnn
    from vertebra.models import FCNNConfig
    from vertebra.train import TrainConfig
    samples = [load_direct_sample(c, SHAPE, "L1", "hand", cache=tmp_path) for c in toy_cases[:3]]
    task = SlabTask(slab_slices=16)
    image, distance = task.slab(samples[0], 0)
    z_top_half = samples[0].geometry.origin_mm[2] + 7.5 * samples[0].geometry.spacing_mm[2]
    assert image.shape == (16, 16, 16) and np.isclose(distance, z_top_half - samples[0].centroids_mm[20][2])
    model, result = train_fcnn(samples[:2], samples[2:], tmp_path / "run",
                               TrainConfig(iterations=3, batch_size=2, validate_every=3),
                               FCNNConfig(features=4), task)
    assert result.steps_done == 3 and result.last_validation["mae_mm_val"] >= 0


@pytest.mark.slow
def test_smoke_scale_row_on_the_phantom(tmp_path):
    """The smoke scale of a Table 2 row, on phantom cohorts, must finish in about two minutes."""
    pytest.importorskip("vertebra.phantom")
    import time
    from vertebra.direct import run_row
    started = time.time()
    metrics = run_row({"run_id": "unet-l1_t12-hand-28", "classes": "L1,T12", "n_train": 28, "n_aug": 256,
                       "label_source": "hand", "scale": "smoke", "cache": str(tmp_path / "cache")},
                      tmp_path / "results" / "runs" / "unet-l1_t12-hand-28")
    params = json.loads((tmp_path / "results" / "runs" / "unet-l1_t12-hand-28" / "params.json").read_text(encoding="utf-8"))
    assert params["effective"]["n_train"] == 5 and params["effective"]["n_val"] == 1  # clamped to the cohort
    assert metrics["n_test"] == 4
    assert time.time() - started < 180


def test_l1_voxels_are_argmax_1_ties_and_nan_included():
    """`find_l1_on_grid` compares the two classes instead of an argmax, with argmax's rules (the first of
    equal values wins, NaN counts as the largest); three classes still go through argmax."""
    from vertebra.direct import _is_argmax_1
    rng = np.random.default_rng(0)
    for classes in (2, 3):
        probs = rng.choice([0.0, 0.25, 0.5, 1.0, np.nan], size=(classes, 6, 7, 8))
        np.testing.assert_array_equal(_is_argmax_1(probs), probs.argmax(0) == 1)
    probs = rng.random((2, 16, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(_is_argmax_1(probs), probs.argmax(0) == 1)
