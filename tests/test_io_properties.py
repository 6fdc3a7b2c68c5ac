"""Property tests: any geometry, any orientation, survives writing, reading and canonicalisation."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings, strategies as st

import vertebra.io as vio
from vertebra.image import Geometry, Volume

PROPERTY = settings(max_examples=25, deadline=None)


@st.composite
def volumes(draw, max_tilt_deg=20.0):
    shape = tuple(draw(st.integers(2, 7)) for _ in range(3))
    spacing = tuple(draw(st.floats(0.3, 5.0)) for _ in range(3))
    origin = tuple(draw(st.floats(-500.0, 500.0)) for _ in range(3))
    perm = draw(st.permutations(range(3)))
    signs = [draw(st.sampled_from((1.0, -1.0))) for _ in range(3)]
    base = np.zeros((3, 3))
    for col, row in enumerate(perm):
        base[row, col] = signs[col]
    axis = np.asarray([draw(st.floats(-1, 1)) for _ in range(3)]) + [0, 0, 1e-3]
    axis /= np.linalg.norm(axis)
    angle = np.radians(draw(st.floats(0.0, max_tilt_deg)))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    tilt = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k      # Rodrigues
    seed = draw(st.integers(0, 2**16))
    array = np.random.default_rng(seed).integers(-1024, 3000, size=shape, dtype=np.int16)
    return Volume(array, Geometry(spacing, origin, (tilt @ base).ravel()))


@PROPERTY
@given(vol=volumes(), suffix=st.sampled_from([".nii.gz", ".nrrd", ".mha"]))
def test_any_geometry_survives_a_file(vol, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        back = vio.read_image(vio.write_image(vol, Path(tmp) / f"v{suffix}"), kind="any")
    np.testing.assert_array_equal(back.array, vol.array)
    atol = 1e-3 if suffix == ".nii.gz" else 1e-9       # NIfTI stores geometry in float32
    np.testing.assert_allclose(back.geometry.spacing_mm, vol.geometry.spacing_mm, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(back.geometry.origin_mm, vol.geometry.origin_mm, atol=atol)
    np.testing.assert_allclose(back.geometry.direction, vol.geometry.direction, atol=atol)


@PROPERTY
@given(vol=volumes())
def test_canonical_round_trip_is_exact_and_keeps_world_positions(vol):
    canon, how = vio.to_canonical(vol)
    assert vio.orientation_code(canon.geometry.direction) == "LPS"
    assert how.oblique_deg <= 20.0 + 1e-6
    back = vio.from_canonical(canon, how)
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.geometry == vol.geometry
    corner = np.array(vol.array.shape) - 1
    for idx in ([0, 0, 0], corner, corner // 2):
        world = vol.index_to_world([idx])
        cidx = np.rint(canon.world_to_index(world)[0]).astype(int)
        np.testing.assert_allclose(canon.world_to_index(world)[0], cidx, atol=1e-6)
        assert canon.array[tuple(cidx)] == vol.array[tuple(idx)]


@PROPERTY
@given(vol=volumes(), data=st.data())
def test_verse_centroids_round_trip_in_world_mm(vol, data):
    labels = data.draw(st.lists(st.sampled_from(sorted(vio.verse_labels.VALID_LABELS)), min_size=1,
                                max_size=5, unique=True))
    extent = np.array(vol.array.shape) - 1
    centroids = {lab: vol.index_to_world([[data.draw(st.floats(0, float(n))) for n in extent]])[0]
                 for lab in labels}
    with tempfile.TemporaryDirectory() as tmp:
        path = vio.write_verse_centroids(Path(tmp) / "c.json", centroids, vol)
        got = vio.read_verse_centroids(path, vol)
    assert set(got) == set(centroids)
    for lab in labels:
        np.testing.assert_allclose(got[lab], centroids[lab], atol=1e-4)
