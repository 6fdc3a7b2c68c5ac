import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings, strategies as st

from vertebra.image import Geometry, Volume


def _rotation(angle_deg: float) -> tuple:
    a = np.deg2rad(angle_deg)
    return tuple(np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]).ravel())


@pytest.mark.parametrize("direction", [
    (1, 0, 0, 0, 1, 0, 0, 0, 1),             # LPS
    (-1, 0, 0, 0, -1, 0, 0, 0, 1),           # RAS
    _rotation(17.0),                          # oblique
])
def test_index_to_world_matches_simpleitk(direction):
    geom = Geometry(spacing_mm=(0.7, 0.8, 2.5), origin_mm=(-10.0, 20.0, -300.0), direction=direction)
    vol = Volume(np.zeros((5, 6, 7), np.int16), geom)
    image = vol.to_sitk()
    for index_xyz in [(0, 0, 0), (6, 5, 4), (3, 1, 2)]:
        expected = image.TransformIndexToPhysicalPoint(index_xyz)
        got = vol.index_to_world([index_xyz[::-1]])[0]
        np.testing.assert_allclose(got, expected, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-500, 500), min_size=3, max_size=3), st.floats(-180, 180))
def test_world_to_index_inverts_index_to_world(point, angle):
    vol = Volume(np.zeros((4, 4, 4)), Geometry((0.6, 0.9, 3.0), (1.0, -2.0, 5.0), _rotation(angle)))
    back = vol.index_to_world(vol.world_to_index([point]))[0]
    np.testing.assert_allclose(back, point, atol=1e-6)


def test_sitk_round_trip_keeps_array_and_geometry():
    geom = Geometry((0.7, 0.7, 3.0), (5.0, 6.0, 7.0), _rotation(30))
    vol = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), geom)
    back = Volume.from_sitk(vol.to_sitk())
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.geometry == geom


def test_bad_geometry_is_rejected_with_the_value():
    with pytest.raises(ValueError, match="spacing"):
        Geometry(spacing_mm=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="3D"):
        Volume(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="3D"):
        Volume.from_sitk(sitk.Image(4, 4, sitk.sitkInt16))
