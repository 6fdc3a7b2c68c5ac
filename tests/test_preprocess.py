"""Resampling happens in world space; windows clip and normalise as documented."""
from __future__ import annotations

import numpy as np
import pytest

from bad_inputs import toy_ct, toy_labels
from vertebra import preprocess as pp
from vertebra.image import Geometry, Volume
from vertebra.io import to_canonical


def oblique(vol: Volume, deg: float = 10.0) -> Volume:
    a = np.radians(deg)
    d = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return Volume(vol.array, Geometry(vol.geometry.spacing_mm, vol.geometry.origin_mm, d.ravel()))


def test_paper_values():
    assert pp.DIRECT_WINDOW_HU == (100.0, 1000.0) and pp.INSTANCE_WINDOW_HU == (-100.0, 2000.0)
    assert pp.DIRECT_SHAPE_ZYX == (192, 128, 128) and pp.INSTANCE_SPACING_MM == 1.0


@pytest.mark.parametrize("make", [lambda v: v, oblique])
def test_isotropic_resampling_keeps_the_box_and_world_positions(make):
    vol = make(toy_ct())                                   # spacing (1.5, 1.5, 2.5) mm, 20x20x12
    iso = pp.resample_isotropic(vol, 1.0)
    assert iso.geometry.spacing_mm == (1.0, 1.0, 1.0)
    assert iso.array.shape == (30, 30, 30) and iso.array.dtype == np.float32
    assert iso.geometry.origin_mm == vol.geometry.origin_mm
    assert iso.geometry.direction == vol.geometry.direction
    # a bright point stays where it is in the world
    point = np.zeros(vol.array.shape, np.float32)
    point[6, 10, 10] = 1000.0
    moved = pp.resample_isotropic(vol.with_array(point), 0.5, default_hu=0)
    peak = np.unravel_index(np.argmax(moved.array), moved.array.shape)
    np.testing.assert_allclose(moved.index_to_world([peak])[0], vol.index_to_world([[6, 10, 10]])[0], atol=1e-6)


def test_label_maps_use_nearest_neighbour():
    ct = toy_ct()
    labels = ct.with_array(toy_labels(ct))
    iso = pp.resample_isotropic(labels, 1.0, interpolator="nearest", default_hu=0)
    assert iso.array.dtype == np.uint8
    assert set(np.unique(iso.array)) == set(np.unique(labels.array))


def test_fixed_grid_covers_the_whole_scan_and_comes_back():
    ct = toy_ct(shape_zyx=(24, 20, 20))
    canon, _ = to_canonical(oblique(ct, 5))
    grid = pp.resample_to_shape(canon, (12, 8, 8))
    assert grid.array.shape == (12, 8, 8)
    g, c = grid.geometry, canon.geometry
    np.testing.assert_allclose(np.array(g.spacing_mm) * grid.shape_xyz, np.array(c.spacing_mm) * canon.shape_xyz)
    # the first voxel's outer corner coincides with the scan's outer corner
    corner = lambda v: v.index_to_world([[-0.5, -0.5, -0.5]])[0]
    np.testing.assert_allclose(corner(grid), corner(canon), atol=1e-9)
    labels = canon.with_array(np.zeros(canon.array.shape, np.uint8))
    labels.array[6:18, 4:16, 8:16] = 20
    small = pp.resample_to_shape(labels, (12, 10, 10), interpolator="nearest", default_hu=0)
    back = pp.resample_like(small, labels, interpolator="nearest", default_hu=0)
    assert back.array.shape == labels.array.shape and back.geometry == labels.geometry
    a, b = back.array == 20, labels.array == 20
    dice = 2 * np.sum(a & b) / (a.sum() + b.sum())
    assert dice > 0.9


def test_resample_like_fills_outside_with_air():
    ct = toy_ct()
    shifted = Volume(np.zeros((4, 4, 4), np.int16), Geometry((1, 1, 1), (500.0, 500.0, 500.0)))
    out = pp.resample_like(ct, shifted)
    assert np.all(out.array == pp.AIR_HU)


def test_window_unit_and_zero_mean():
    rng = np.random.default_rng(0)
    hu = rng.integers(-1024, 3000, size=(4, 5, 6))
    unit = pp.window(hu, *pp.DIRECT_WINDOW_HU)
    assert unit.dtype == np.float32 and unit.min() == 0.0 and unit.max() == 1.0
    order = np.argsort(hu, axis=None)
    assert np.all(np.diff(unit.ravel()[order]) >= 0)                 # monotone
    z = pp.window(hu, *pp.INSTANCE_WINDOW_HU, normalise="zero_mean")
    assert abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-5
    assert pp.window(hu, 0, 10, normalise="none").max() == 10
    assert np.all(pp.window(np.full(3, 50), 0, 10, normalise="zero_mean") == 0)
    with pytest.raises(ValueError):
        pp.window(hu, 10, 10)
    with pytest.raises(ValueError):
        pp.window(hu, 0, 10, normalise="minmax")
    with pytest.raises(ValueError):
        pp.resample_isotropic(toy_ct(), 1.0, interpolator="cubic")
