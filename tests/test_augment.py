"""Augmentation (vertebra.augment): reproducible, geometry-preserving, replayable."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from vertebra.augment import (Compose, ComposedParams, ElasticDeformation, Flip,
                              RandomElasticDeformation, RandomFlip, RandomRotation, Rotation)
from vertebra.augment.resample import chain, displacement_field, physical_centre_mm, resample
from vertebra.augment.rotation import rotation_matrix
from vertebra.image import Geometry, Volume

# a 20 x 16 x 12 (z, y, x) grid, anisotropic spacing, oblique direction, origin away from 0
_c, _s = np.cos(np.deg2rad(10)), np.sin(np.deg2rad(10))
GEOMETRY = Geometry(spacing_mm=(2.0, 1.5, 2.5), origin_mm=(-30.0, 12.0, 400.0),
                    direction=(_c, -_s, 0.0, _s, _c, 0.0, 0.0, 0.0, 1.0))


@pytest.fixture
def scan() -> tuple[Volume, Volume]:
    """A CT-like int16 image (air, soft tissue, two 'vertebrae') and its uint8 label map."""
    image = np.full((20, 16, 12), -1024, np.int16)
    image[2:18, 2:14, 2:10] = 40
    labels = np.zeros(image.shape, np.uint8)
    labels[4:9, 5:11, 4:8], labels[11:16, 5:11, 4:8] = 20, 19
    image[labels > 0] = 400
    return Volume(image, GEOMETRY), Volume(labels, GEOMETRY)


SAMPLERS = {
    "flip": RandomFlip(axes=("x", "y", "z")),
    "rotation": RandomRotation(max_degrees=20),
    "elastic": RandomElasticDeformation(num_control_points=5, max_displacement_mm=4.0, locked_borders=1),
    "direct": Compose([RandomFlip(axes=("x", "y", "z")), RandomElasticDeformation(),
                       RandomRotation(max_degrees=20)]),
    "instance": Compose([RandomFlip(axes=("x", "y")), RandomElasticDeformation(),
                         RandomRotation(max_degrees=20)]),
}


def _draw_and_apply(sampler, scan, seed):
    params = sampler.sample(np.random.default_rng(seed))
    if not isinstance(params, ComposedParams):
        params = ComposedParams((params,))
    return params, params.apply(*scan)


@pytest.mark.parametrize("name", SAMPLERS)
def test_reproducible_with_a_seed(name, scan):
    (p1, (im1, lab1)), (p2, (im2, lab2)) = (_draw_and_apply(SAMPLERS[name], scan, 7) for _ in "ab")
    assert p1.to_dict() == p2.to_dict()
    np.testing.assert_array_equal(im1.array, im2.array)
    np.testing.assert_array_equal(lab1.array, lab2.array)


@pytest.mark.parametrize("name", SAMPLERS)
def test_shape_dtype_and_geometry_preserved(name, scan):
    for seed in range(3):
        _, (image, labels) = _draw_and_apply(SAMPLERS[name], scan, seed)
        for before, after in zip(scan, (image, labels)):
            assert after.array.shape == before.array.shape
            assert after.array.dtype == before.array.dtype
            assert after.geometry == before.geometry


@pytest.mark.parametrize("name", SAMPLERS)
def test_labels_stay_a_subset_of_the_input_labels(name, scan):
    allowed = set(np.unique(scan[1].array)) | {0}
    for seed in range(3):
        _, (_, labels) = _draw_and_apply(SAMPLERS[name], scan, seed)
        assert set(np.unique(labels.array)) <= allowed


@pytest.mark.parametrize("name", SAMPLERS)
def test_replay_from_to_dict_equals(name, scan):
    params, (image, labels) = _draw_and_apply(SAMPLERS[name], scan, 11)
    replayed = ComposedParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert replayed == params
    image2, labels2 = replayed.apply(*scan)
    np.testing.assert_array_equal(image.array, image2.array)
    np.testing.assert_array_equal(labels.array, labels2.array)


@pytest.mark.parametrize("transform", [
    Flip(axes=()), Rotation(axis=(1, 2, 3), angle_deg=0.0), Rotation(angle_deg=360.0),
    ElasticDeformation(control_point_displacements_mm=np.zeros((5, 6, 7, 3)))])
def test_identity_parameters_give_identity(transform, scan):
    image, labels = ComposedParams((transform,)).apply(*scan)
    np.testing.assert_array_equal(image.array, scan[0].array)
    np.testing.assert_array_equal(labels.array, scan[1].array)


def test_resampling_through_the_identity_is_exact(scan):
    image = resample(scan[0], sitk.Transform(3, sitk.sitkIdentity), is_label=False)
    labels = resample(scan[1], sitk.Transform(3, sitk.sitkIdentity), is_label=True)
    np.testing.assert_array_equal(image.array, scan[0].array)
    np.testing.assert_array_equal(labels.array, scan[1].array)


def test_flip_mirrors_the_array_and_keeps_geometry(scan):
    image, labels = Flip(axes=("x", "z")).apply(*scan)
    np.testing.assert_array_equal(image.array, scan[0].array[::-1, :, ::-1])
    np.testing.assert_array_equal(labels.array, scan[1].array[::-1, :, ::-1])
    twice = Flip(axes=("x", "z")).apply(image, labels)
    np.testing.assert_array_equal(twice[0].array, scan[0].array)


def test_instance_flips_never_touch_z():
    flips = RandomFlip(axes=("x", "y"), flip_probability=1.0)
    assert flips.sample(np.random.default_rng(0)).axes == ("x", "y")
    rng = np.random.default_rng(1)
    assert all("z" not in RandomFlip(axes=("x", "y")).sample(rng).axes for _ in range(50))


def test_rotation_turns_about_the_physical_centre(scan):
    rotation = Rotation(axis=(0.3, -0.2, 1.0), angle_deg=15.0)
    _, labels = rotation.apply(*scan)
    centre = physical_centre_mm(scan[1])
    matrix = rotation_matrix(rotation.axis, rotation.angle_deg)
    for label in (19, 20):
        before = scan[1].index_to_world(np.argwhere(scan[1].array == label)).mean(axis=0)
        after = labels.index_to_world(np.argwhere(labels.array == label)).mean(axis=0)
        expected = centre + matrix @ (before - centre)
        assert np.linalg.norm(after - expected) < 1.0  # mm, well under a voxel


def test_rotation_matrix_right_hand_rule():
    np.testing.assert_allclose(rotation_matrix((0, 0, 1), 90) @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_one_resampling_equals_resampling_in_sequence():
    """On a linear ramp the first interpolation is exact and the second nearly so (the warped ramp is
    smooth), so the composite must match the sequence closely, and differ when the order is swapped."""
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in (24, 20, 16)), indexing="ij")
    ramp = Volume(3.0 * x - 2.0 * y + 1.5 * z, GEOMETRY)
    elastic = ElasticDeformation(control_point_displacements_mm=np.random.default_rng(0).uniform(
        -1.5, 1.5, (5, 5, 5, 3)))
    rotation = Rotation(axis=(1.0, 1.0, 0.2), angle_deg=8.0)
    exact = dict(fill_value=np.nan, field_step_voxels=None)
    once, _ = ComposedParams((elastic, rotation)).apply(ramp, **exact)
    in_sequence, _ = rotation.apply(*elastic.apply(ramp, **exact), fill_value=np.nan)
    # compare away from the border, where ITK's linear interpolator clamps rather than interpolates
    inside = np.zeros(once.array.shape, bool)
    inside[5:-5, 5:-5, 5:-5] = True
    inside &= np.isfinite(once.array) & np.isfinite(in_sequence.array)
    assert inside.sum() > 500
    np.testing.assert_allclose(once.array[inside], in_sequence.array[inside], atol=0.02)
    swapped, _ = ComposedParams((rotation, elastic)).apply(ramp, **exact)
    both = inside & np.isfinite(swapped.array)
    assert np.abs(swapped.array[both] - once.array[both]).max() > 0.1  # order matters


def test_coarse_displacement_field_is_within_a_tenth_of_a_voxel():
    """The default route samples the chain every 4 voxels; away from the rim where the rotated grid
    leaves the image (ITK's B-spline is the identity outside it) it matches the exact chain."""
    volume = Volume(np.zeros((96, 64, 64), np.int16), Geometry(spacing_mm=(2.0, 2.0, 2.0)))
    rng = np.random.default_rng(1)
    rotation = RandomRotation(max_degrees=20).sample(rng)
    exact = chain([RandomElasticDeformation().sample(rng).sitk_transform(volume),
                   rotation.sitk_transform(volume)])
    coarse = displacement_field(exact, volume, step_voxels=4)
    points = volume.index_to_world(rng.uniform(0, np.array(volume.array.shape) - 1, (500, 3)))
    rotated = volume.world_to_index([rotation.sitk_transform(volume).TransformPoint(p.tolist())
                                     for p in points])
    margin = np.minimum(rotated, np.array(volume.array.shape) - 1 - rotated).min(axis=1)
    error_mm = np.array([np.linalg.norm(np.subtract(exact.TransformPoint(p.tolist()),
                                                    coarse.TransformPoint(p.tolist())))
                         for p in points[margin > 6]])
    assert len(error_mm) > 100 and error_mm.max() < 0.2 and error_mm.mean() < 0.06


def test_chain_applies_the_first_transform_last():
    shift_a, shift_b = sitk.TranslationTransform(3, (1, 0, 0)), sitk.ScaleTransform(3, (2, 2, 2))
    # resampling through A then B reads the input at A(B(p))
    assert chain([shift_a, shift_b]).TransformPoint((1, 1, 1)) == (3.0, 2.0, 2.0)


def test_elastic_parameter_layout(scan):
    """(nx, ny, nz, 3) arrays: a constant field shifts every point by it (partition of unity), and a
    field varying along the grid's x index varies along the image's x index axis only."""
    shift = np.broadcast_to(np.array([1.0, -2.0, 3.0]), (6, 5, 7, 3))
    transform = ElasticDeformation(control_point_displacements_mm=shift).sitk_transform(scan[0])
    point = scan[0].index_to_world([[9.5, 7.0, 5.5]])[0]
    np.testing.assert_allclose(np.subtract(transform.TransformPoint(point.tolist()), point),
                               [1.0, -2.0, 3.0], atol=1e-9)
    ramp = np.zeros((6, 5, 7, 3))
    ramp[..., 1] = np.arange(6.0)[:, None, None]
    transform = ElasticDeformation(control_point_displacements_mm=ramp).sitk_transform(scan[0])

    def moved(index_zyx):
        p = scan[0].index_to_world([index_zyx])[0]
        return np.subtract(transform.TransformPoint(p.tolist()), p)

    along_x, along_y = moved([10, 8, 8]) - moved([10, 8, 4]), moved([10, 12, 6]) - moved([10, 4, 6])
    assert along_x[1] > 0.5 and abs(along_y[1]) < 1e-6 and abs(along_x[0]) < 1e-6


def test_elastic_sampling_bounds_and_locked_borders():
    field = RandomElasticDeformation(num_control_points=(7, 8, 9), max_displacement_mm=(1, 2, 3),
                                     locked_borders=2).sample(np.random.default_rng(0))
    d = field.control_point_displacements_mm
    assert d.shape == (7, 8, 9, 3)
    assert np.all(np.abs(d) <= np.array([1, 2, 3]))
    assert not d[:2].any() and not d[-2:].any() and not d[:, :2].any() and not d[:, :, -2:].any()
    assert d[2:-2, 2:-2, 2:-2].any()


def test_fill_value_outside_the_field_of_view(scan):
    image, _ = Rotation(axis=(1, 0, 0), angle_deg=45).apply(scan[0].with_array(
        np.full(scan[0].array.shape, 100, np.int16)), fill_value=-1024)
    assert set(np.unique(image.array)) >= {100, -1024}
    image, _ = Rotation(axis=(1, 0, 0), angle_deg=45).apply(scan[0])
    assert image.array.min() == scan[0].array.min()


@pytest.mark.parametrize("make", [
    lambda: RandomFlip(axes=("w",)), lambda: RandomFlip(axes=("x", "x")),
    lambda: RandomFlip(flip_probability=1.5), lambda: RandomRotation(max_degrees=-1),
    lambda: RandomRotation(max_degrees=float("nan")),
    lambda: RandomElasticDeformation(num_control_points=3),
    lambda: RandomElasticDeformation(num_control_points=5.5),
    lambda: RandomElasticDeformation(max_displacement_mm=-1),
    lambda: RandomElasticDeformation(num_control_points=5, locked_borders=3),
    lambda: Rotation(axis=(0, 0, 0), angle_deg=5), lambda: Flip(axes=("q",)),
    lambda: ElasticDeformation(control_point_displacements_mm=np.zeros((5, 5, 3))),
    lambda: ElasticDeformation(control_point_displacements_mm=np.full((5, 5, 5, 3), np.inf)),
    lambda: ComposedParams.from_dict({"transforms": [{"name": "Shear"}]}),
    lambda: Compose([object()]),
    lambda: Compose([RandomFlip()]).sample(np.random.RandomState(0)),
])
def test_bad_arguments_raise_value_error_naming_the_value(make):
    with pytest.raises(ValueError):
        make()


def test_labels_must_match_the_image(scan):
    with pytest.raises(ValueError, match="do not match"):
        ComposedParams((Rotation(angle_deg=5),)).apply(scan[0], Volume(np.zeros((2, 2, 2), np.uint8)))
