"""Orientation: one scan written in LPS, RAS, with a flipped axis and with transposed axes gives the same
L1 through ``vertebra find-l1``, and the output mask lies on each input's own grid, over the right voxels.

The scan is a phantom (`vertebra.phantom.generate_case`, prone, so its own axes point R and A) whose L1
voxels are painted at 1500 HU while every other voxel is capped at 500 HU. A stand-in for the trained
network marks as L1 whatever is brighter than the window's 70 % (about 730 HU), so the answer is fixed by
a rule in world space and the test isolates orientation handling: reading, canonical axes, resampling to
the network grid, the centroid in world mm, and the mask mapped back. The variants are made by
SimpleITK's ``DICOMOrient``, independently of `vertebra.io.to_canonical`.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from vertebra import cli
from vertebra.image import Geometry, Volume
from vertebra.io import orientation_code, read_image, write_image

L1_HU, OTHER_MAX_HU = 1500, 500
#: the stand-in's grid: another shape than the scan's (so resampling both ways is exercised), about as fine
NETWORK_SHAPE_ZYX = [100, 90, 80]
#: LPS as is; RAS (x and y flipped); LPI (z flipped); SLP (axes permuted: the array is transposed)
CODES = ("LPS", "RAS", "LPI", "SLP")


class MarkerRule(torch.nn.Module):
    """Stands in for the U-Net: logits (background, L1) with L1 where the windowed image exceeds 0.7."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))   # `predict_probabilities` asks for a device

    def forward(self, x):                                     # (B, 1, D, H, W) → (B, 2, D, H, W)
        return torch.cat([torch.zeros_like(x), 40.0 * (x - 0.7)], dim=1)


def marked_scan() -> tuple[Volume, np.ndarray]:
    """A prone phantom with L1 painted bright (falls back to a block spine if the phantom is absent).
    Returns the scan and the L1 voxel mask on its grid."""
    try:
        from vertebra.phantom import generate_case
    except ImportError:
        generate_case = None
    if generate_case is not None:
        case = generate_case(np.random.default_rng(3), protocol="ctc", spacing_mm=4.0, anomalies=(),
                             position="prone")
        hu, l1 = case.image.array.astype(np.int16), case.vertebrae.array == 20
        geometry = case.image.geometry
    else:
        z, y, x = np.indices((60, 40, 36))
        hu = np.where(np.hypot(y - 20, x - 18) < 15, 40, -1000).astype(np.int16)
        for k in range(6):                                      # six vertebral bodies, L1 the third
            hu[5 + 9 * k:11 + 9 * k, 22:30, 14:22] = 300
        l1 = np.zeros(hu.shape, bool)
        l1[23:29, 22:30, 14:22] = True
        geometry = Geometry((3.0, 3.0, 4.0), (-120.0, 80.0, -400.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    hu = np.minimum(hu, OTHER_MAX_HU)
    hu[l1] = L1_HU
    return Volume(hu, geometry), l1


def world_centroid(volume: Volume, mask: np.ndarray) -> np.ndarray:
    return volume.index_to_world(np.argwhere(mask).mean(0))[0]


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """{code: (file, its Volume)} for one scan written in each orientation of `CODES`."""
    folder = tmp_path_factory.mktemp("orientations")
    scan, l1 = marked_scan()
    out = {}
    for code in CODES:
        image = sitk.DICOMOrient(scan.to_sitk(), code)
        volume = Volume(sitk.GetArrayFromImage(image), Geometry.from_sitk(image))
        assert orientation_code(volume.geometry.direction) == code
        out[code] = (write_image(volume, folder / f"scan_{code}.nii.gz"), volume)
    return out, world_centroid(scan, l1), int(l1.sum())


@pytest.fixture(scope="module")
def findings(variants, tmp_path_factory):
    """Run ``vertebra find-l1`` on every variant with the stand-in network: {code: (record, mask Volume)}."""
    files, _, _ = variants
    folder = tmp_path_factory.mktemp("find_l1")
    mp = pytest.MonkeyPatch()
    mp.setattr("vertebra.direct.load_model",
               lambda weights: (MarkerRule(), {"shape_zyx": NETWORK_SHAPE_ZYX, "run_id": "marker-rule"}))
    try:
        out = {}
        for code, (path, _) in files.items():
            assert cli.main(["find-l1", str(path), "--out", str(folder / code)]) == 0
            record = json.loads((folder / code / "l1.json").read_text(encoding="utf-8"))
            out[code] = (record, read_image(folder / code / "l1_mask.nii.gz", kind="labels"))
        return out
    finally:
        mp.undo()


def test_the_variants_hold_the_same_world_content(variants):
    files, truth, n_voxels = variants
    arrays = {code: vol.array for code, (_, vol) in files.items()}
    assert np.array_equal(arrays["RAS"], arrays["LPS"][:, ::-1, ::-1])
    assert np.array_equal(arrays["LPI"], arrays["LPS"][::-1])
    assert np.array_equal(arrays["SLP"], arrays["LPS"].transpose(1, 2, 0))   # index x → S, y → L, z → P
    for code, (_, vol) in files.items():
        bright = vol.array == L1_HU
        assert bright.sum() == n_voxels, code
        assert np.allclose(world_centroid(vol, bright), truth, atol=1e-6), code


def test_l1_centroid_agrees_across_orientations(variants, findings):
    _, truth, _ = variants
    centroids = {code: np.array(record["l1_centroid_mm"]) for code, (record, _) in findings.items()}
    for code, c in centroids.items():
        for other, d in centroids.items():
            assert np.linalg.norm(c - d) < 1.0, (code, other, c, d)
        # and it is the right place, not just consistently wrong (measured: 1.0 mm on the phantom)
        assert np.linalg.norm(c - truth) < 4.0, (code, c, truth)
        z_lo, z_hi = findings[code][0]["l1_z_range_mm"]
        assert z_lo < truth[2] < z_hi, code


def test_mask_lies_on_the_input_grid_over_the_marked_voxels(variants, findings):
    files, truth, _ = variants
    for code, (_, scan) in files.items():
        mask = findings[code][1]
        assert mask.array.shape == scan.array.shape, code
        assert np.allclose(mask.geometry.spacing_mm, scan.geometry.spacing_mm), code
        assert np.allclose(mask.geometry.origin_mm, scan.geometry.origin_mm, atol=1e-3), code
        assert np.allclose(mask.geometry.direction, scan.geometry.direction), code
        predicted, marked = mask.array > 0, scan.array == L1_HU
        dice = 2 * (predicted & marked).sum() / (predicted.sum() + marked.sum())
        assert dice > 0.8, (code, dice)
        assert np.linalg.norm(world_centroid(mask, predicted) - truth) < 2.0, code
