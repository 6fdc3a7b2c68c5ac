"""Geometry survives every round trip: file formats, DICOM series, canonical orientation, VerSe JSON."""
from __future__ import annotations

import doctest
import itertools
import json

import numpy as np
import pytest

import vertebra.io as vio
from bad_inputs import toy_ct, toy_labels, write_dicom_series
from vertebra.errors import InputError
from vertebra.image import Geometry, Volume


def rotation(axis: int, deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def signed_permutations():
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for col, (row, sign) in enumerate(zip(perm, signs)):
                m[row, col] = sign
            yield m


DIRECTIONS = {"LPS": np.eye(3), "RAS": np.diag([-1.0, -1.0, 1.0]),
              "RAI": np.diag([-1.0, -1.0, -1.0]), "oblique": rotation(0, 12) @ rotation(2, -7)}


def with_direction(vol: Volume, d: np.ndarray) -> Volume:
    g = vol.geometry
    return Volume(vol.array, Geometry(g.spacing_mm, g.origin_mm, d.ravel()))


def assert_same_geometry(a: Geometry, b: Geometry, atol=1e-4):
    np.testing.assert_allclose(a.spacing_mm, b.spacing_mm, atol=atol)
    np.testing.assert_allclose(a.origin_mm, b.origin_mm, atol=atol)
    np.testing.assert_allclose(a.direction, b.direction, atol=atol)


def test_doctests_of_io_and_preprocess():
    import vertebra.preprocess
    for module in (vio, vertebra.preprocess):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"])
@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_file_round_trip_keeps_array_and_geometry(tmp_path, suffix, direction):
    vol = with_direction(toy_ct(), DIRECTIONS[direction])
    path = vio.write_image(vol, tmp_path / f"scan{suffix}")
    back = vio.read_image(path)
    np.testing.assert_array_equal(back.array, vol.array)
    assert_same_geometry(back.geometry, vol.geometry)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp left


def test_write_image_like_puts_an_array_on_the_reference_grid(tmp_path):
    ref = with_direction(toy_ct(), DIRECTIONS["oblique"])
    mask = ref.array > 300
    back = vio.read_image(vio.write_image(mask, tmp_path / "mask.nii.gz", like=ref), kind="labels")
    assert back.array.dtype == np.uint8 and back.array.sum() == mask.sum()
    assert_same_geometry(back.geometry, ref.geometry)


@pytest.mark.parametrize("direction", ["LPS", "RAS", "oblique"])
def test_dicom_series_round_trip(tmp_path, direction):
    vol = with_direction(toy_ct(), DIRECTIONS[direction])
    folder = write_dicom_series(vol, tmp_path / "series", "1.2.826.0.1.3680043.2.1125.7")
    back = vio.read_image(folder)
    np.testing.assert_array_equal(back.array, vol.array)
    assert_same_geometry(back.geometry, vol.geometry, atol=1e-3)


@pytest.mark.parametrize("d", list(signed_permutations()), ids=lambda d: vio.orientation_code(d))
def test_canonical_orientation_is_exact_for_all_48_orientations(d):
    vol = Volume(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6),
                 Geometry((0.7, 1.1, 2.5), (3.0, -4.0, 5.0), d.ravel()))
    canon, how = vio.to_canonical(vol)
    assert vio.orientation_code(canon.geometry.direction) == "LPS"
    np.testing.assert_allclose(canon.geometry.direction_matrix, np.eye(3), atol=1e-12)
    assert how.source_code == vio.orientation_code(d) and how.oblique_deg < 1e-6
    # every voxel keeps its value at its world position
    idx = np.argwhere(np.ones(vol.array.shape, bool))
    cidx = np.rint(canon.world_to_index(vol.index_to_world(idx))).astype(int)
    np.testing.assert_array_equal(canon.array[tuple(cidx.T)], vol.array[tuple(idx.T)])
    back = vio.from_canonical(canon, how)
    np.testing.assert_array_equal(back.array, vol.array)
    assert back.geometry == vol.geometry


def test_oblique_scan_canonicalises_to_nearest_axes_and_maps_back():
    d = np.diag([-1.0, 1.0, -1.0]) @ rotation(1, 15)
    vol = with_direction(toy_ct(), d)
    canon, how = vio.to_canonical(vol)
    assert how.source_code == "RPI" and 14.9 < how.oblique_deg < 15.1
    np.testing.assert_allclose(canon.index_to_world([[0, 0, 0]]),
                               vol.index_to_world([[vol.array.shape[0] - 1, 0, vol.array.shape[2] - 1]]))
    back = vio.from_canonical(canon.array > 300, how)
    np.testing.assert_array_equal(back.array, vol.array > 300)
    assert back.geometry == vol.geometry


def test_orientation_codes():
    assert vio.orientation_code(np.eye(3)) == "LPS"
    assert vio.orientation_code(np.diag([-1, -1, 1])) == "RAS"
    assert vio.orientation_code(np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]])) == "PIR"


def _reoriented_xyz(array_xyz: np.ndarray, ref_code: str, code: str) -> np.ndarray:
    """Reorient an (x, y, z) array from axis code `ref_code` to `code` (test's own, plain version)."""
    axes, flips = [], []
    for letter in code:
        a = next(i for i, r in enumerate(ref_code) if vio._LETTER_AXIS[r][0] == vio._LETTER_AXIS[letter][0])
        axes.append(a)
        flips.append(ref_code[a] != letter)
    out = array_xyz.transpose(axes)
    return np.flip(out, [b for b, f in enumerate(flips) if f])


@pytest.mark.parametrize("direction", ["LPS", "RAS", "oblique"])
@pytest.mark.parametrize("code", ["LPS", "RAS", "PIR", "ASL", "IRP"])
def test_verse_centroids_in_any_axis_code(tmp_path, direction, code):
    ref = with_direction(toy_ct(), DIRECTIONS[direction])
    marker = np.zeros(ref.array.shape, bool)
    marker[7, 3, 11] = True
    expected = ref.index_to_world([[7, 3, 11]])[0]
    ref_code = vio.orientation_code(ref.geometry.direction)
    x, y, z = np.argwhere(_reoriented_xyz(marker.T, ref_code, code))[0]
    path = tmp_path / "ctd.json"
    path.write_text(json.dumps([{"direction": list(code)}, {"label": 20, "X": float(x), "Y": float(y), "Z": float(z)},
                                {"label": 19, "X": float("nan"), "Y": 0, "Z": 0}]))
    got = vio.read_verse_centroids(path, ref)
    assert list(got) == [20]
    np.testing.assert_allclose(got[20], expected, atol=1e-9)


def test_verse_centroid_write_read_round_trip(tmp_path):
    ref = with_direction(toy_ct(), DIRECTIONS["RAS"])
    centroids = {20: np.array([1.5, -2.25, 110.0]), 19: np.array([0.0, 3.0, 99.5]), 28: np.array([1.0, 1.0, 105.0])}
    path = vio.write_verse_centroids(tmp_path / "ctd.json", centroids, ref)
    items = json.loads(path.read_text(encoding="utf-8"))
    assert items[0] == {"direction": ["R", "A", "S"]}
    assert [i["label"] for i in items[1:]] == [19, 28, 20]          # craniocaudal order
    assert all(set(i) == {"label", "X", "Y", "Z"} for i in items[1:])
    got = vio.read_verse_centroids(path, ref)
    for label, point in centroids.items():
        np.testing.assert_allclose(got[label], point, atol=1e-5)


def test_verse_centroid_errors_name_file_and_field(tmp_path):
    ref = toy_ct()
    path = tmp_path / "ctd.json"
    for items, fragment in [
        ([{"direction": ["L", "P", "S"]}, {"label": 20, "X": 1, "Y": 2}], "missing field(s) ['Z']"),
        ([{"direction": ["L", "P", "S"]}, {"label": 20, "X": 1, "Y": 2, "Z": 3, "w": 1}], "unexpected field(s) ['w']"),
        ([{"direction": ["L", "L", "S"]}], "three axis codes"),
        ([{"direction": ["L", "P", "S"]}, {"label": 99, "X": 1, "Y": 2, "Z": 3}], "not a VerSe label"),
        ([{"direction": ["L", "P", "S"]}] + [{"label": 20, "X": 1, "Y": 2, "Z": 3}] * 2, "appears twice"),
        ({"label": 20}, "non-empty JSON list"),
    ]:
        path.write_text(json.dumps(items))
        with pytest.raises(InputError) as info:
            vio.read_verse_centroids(path, ref)
        assert fragment in info.value.problem and info.value.path == str(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        vio.read_verse_centroids(path, ref)


def test_verse_case_round_trip_and_tolerance(tmp_path):
    ct = with_direction(toy_ct(), DIRECTIONS["RAS"])
    labels = toy_labels(ct)
    ribs = np.zeros_like(labels)
    ribs[2, 2, 2], ribs[2, 2, 17] = 12, 112
    centroids = {20: ct.index_to_world([[9, 13, 10]])[0]}
    meta = {"case_id": "t1", "rib_vertebra": {12: 19}, "l1_centroid_mm": centroids[20]}
    case_dir = vio.write_verse_case(tmp_path, "t1", ct, vertebrae=labels, ribs=ribs,
                                    centroids_mm=centroids, meta=meta)
    assert case_dir == tmp_path / "sub-t1" and [p.name for p in tmp_path.iterdir()] == ["sub-t1"]
    case = vio.read_verse_case(case_dir)
    assert case.case_id == "t1" and case.path == case_dir
    np.testing.assert_array_equal(case.image.array, ct.array)
    np.testing.assert_array_equal(case.vertebrae.array, labels)
    np.testing.assert_array_equal(case.ribs.array, ribs)
    np.testing.assert_allclose(case.centroids_mm[20], centroids[20], atol=1e-4)
    assert case.meta["rib_vertebra"] == {12: 19}
    # only the CT is required
    bare = vio.read_verse_case(vio.write_verse_case(tmp_path / "bare", "t2", ct))
    assert bare.vertebrae is None and bare.ribs is None and bare.centroids_mm == {} and bare.meta == {}


def test_write_verse_case_is_all_or_nothing(tmp_path):
    ct = toy_ct()
    first = vio.write_verse_case(tmp_path, "a", ct, vertebrae=toy_labels(ct))
    with pytest.raises(InputError, match="outside 0..255"):
        vio.write_verse_case(tmp_path, "a", ct, vertebrae=np.full(ct.array.shape, 300, np.int16))
    with pytest.raises(InputError):
        vio.write_verse_case(tmp_path, "b", ct, vertebrae=np.full(ct.array.shape, -1, np.int16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub-a"]     # old case intact, no debris
    np.testing.assert_array_equal(vio.read_verse_case(first).vertebrae.array, toy_labels(ct))
    vio.write_verse_case(tmp_path, "a", ct)                                # overwrite replaces
    assert vio.read_verse_case(first).vertebrae is None


def test_label_map_on_another_grid_is_refused(tmp_path):
    ct = toy_ct()
    case_dir = vio.write_verse_case(tmp_path, "g", ct)
    other = Volume(toy_labels(ct), Geometry((1.0, 1.0, 1.0)))
    vio.write_image(other, case_dir / "sub-g_seg-vert_msk.nii.gz")
    with pytest.raises(InputError, match="grid"):
        vio.read_verse_case(case_dir)


def test_ct_cast_rules():
    ct = toy_ct().array
    assert vio.as_hu(ct.astype(np.float64)).dtype == np.int16
    assert vio.as_hu(ct.astype(np.int32)).dtype == np.int16
    assert vio.as_hu(ct + np.float32(0.25)).dtype == np.float32
    assert vio.as_label_map(np.array([0.0, 20.0, 19.0])).dtype == np.uint8
    with pytest.raises(InputError, match="non-integer"):
        vio.as_label_map(np.array([0.5, 20.0]))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "float32", "float64"])
@pytest.mark.parametrize("direction", ["RAS", "oblique"])
def test_fast_nifti_gz_read_matches_simpleitk(tmp_path, monkeypatch, dtype, direction):
    """.nii.gz voxels decompressed with ISA-L equal what SimpleITK reads, type and all."""
    pytest.importorskip("isal")
    rng = np.random.default_rng(0)
    array = rng.integers(0, 200, (5, 7, 9)).astype(dtype)
    vol = with_direction(Volume(array, Geometry((0.7, 0.8, 2.5), (1.0, -2.0, 3.0))), DIRECTIONS[direction])
    path = vio.write_image(vol, tmp_path / "scan.nii.gz")
    assert vio._read_nifti_gz_voxels(path, vio.read_image_header(path)) is not None   # the fast path ran
    fast = vio.read_image(path, kind="any")
    monkeypatch.setattr(vio, "_read_nifti_gz_voxels", lambda *a: None)
    slow = vio.read_image(path, kind="any")
    assert fast.array.dtype == slow.array.dtype and fast.array.flags.writeable
    np.testing.assert_array_equal(fast.array, slow.array)
    assert fast.geometry == slow.geometry


def test_fast_nifti_gz_read_leaves_scaled_files_to_simpleitk(tmp_path):
    """A NIfTI with an intensity slope is not read by the fast path (ITK applies the scaling)."""
    pytest.importorskip("isal")
    import gzip
    path = vio.write_image(toy_ct(), tmp_path / "scan.nii.gz")
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[112:116] = np.float32(2.0).tobytes()                   # scl_slope
    path.write_bytes(gzip.compress(bytes(raw)))
    assert vio._read_nifti_gz_voxels(path, vio.read_image_header(path)) is None
    np.testing.assert_array_equal(vio.read_image(path).array, 2.0 * toy_ct().array)


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int16", "uint16", "int32", "uint32", "float32",
                                   "float64"])
@pytest.mark.parametrize("direction", ["LPS", "RAS", "oblique"])
def test_isal_nifti_gz_write_is_what_simpleitk_writes(tmp_path, dtype, direction):
    """`write_image` compresses a .nii.gz with ISA-L; what it holds is byte for byte what SimpleITK writes
    (header and voxels), and SimpleITK reads it back with the same geometry and array."""
    pytest.importorskip("isal")
    import gzip

    import SimpleITK as sitk
    rng = np.random.default_rng(1)
    array = (rng.random((6, 1, 9)) * 90).astype(dtype)
    vol = with_direction(Volume(np.flip(array, 2), Geometry((0.7, 0.8, 2.5), (1.0, -2.0, 3.0))),
                         DIRECTIONS[direction])            # a non-contiguous view, as a mask may be
    assert vio._write_nifti_gz(vol.array.view(np.uint8) if dtype == "bool" else vol.array, vol.geometry,
                               tmp_path / "probe.nii.gz")    # the ISA-L path runs for this type
    ours = vio.write_image(vol, tmp_path / "ours.nii.gz")
    theirs = tmp_path / "theirs.nii.gz"
    sitk.WriteImage(vol.geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(vol.array).astype(
        np.uint8 if dtype == "bool" else dtype))), str(theirs), True)
    assert gzip.decompress(ours.read_bytes()) == gzip.decompress(theirs.read_bytes())
    a, b = sitk.ReadImage(str(ours)), sitk.ReadImage(str(theirs))
    assert (a.GetOrigin(), a.GetSpacing(), a.GetDirection(), a.GetPixelID()) == \
        (b.GetOrigin(), b.GetSpacing(), b.GetDirection(), b.GetPixelID())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.nii.gz", "probe.nii.gz", "theirs.nii.gz"]


@pytest.mark.parametrize("forms", ["both", "qform only", "sform only", "neither", "sform differs", "sheared sform"])
@pytest.mark.parametrize("direction", ["LPS", "RAS", "oblique", "permuted"])
def test_nifti_gz_header_from_decompressed_bytes_is_simpleitks(tmp_path, forms, direction):
    """`read_image` hands SimpleITK only the decompressed header of a .nii.gz: it must say what SimpleITK
    says reading the file itself, whatever the qform/sform codes (ITK's own rules choose between them)."""
    pytest.importorskip("isal")
    nib = pytest.importorskip("nibabel")
    rotation_ = {"LPS": np.diag([-1.0, -1.0, 1.0]), "RAS": np.eye(3),
                 "oblique": rotation(0, 12) @ rotation(2, -7),
                 "permuted": np.array([[0.0, 0, -1], [1, 0, 0], [0, -1, 0]])}[direction]
    affine = np.eye(4)
    affine[:3, :3] = rotation_ * [0.7, 0.8, 2.5]
    affine[:3, 3] = [10.0, -20.0, 30.0]
    other = affine.copy()
    other[:3, 3] += [2.0, -1.0, 3.0]
    if forms == "sheared sform":
        other[0, 1] += 0.3
    image = nib.Nifti1Image(toy_ct().array.T.copy(), affine)
    qform, sform = {"both": (affine, affine), "qform only": (affine, None), "sform only": (None, affine),
                    "neither": (None, None), "sform differs": (affine, other),
                    "sheared sform": (affine, other)}[forms]
    image.set_qform(qform, 0 if qform is None else 1)
    image.set_sform(sform, 0 if sform is None else (4 if forms == "sform differs" else 2))
    path = tmp_path / "scan.nii.gz"
    nib.save(image, path)
    with vio._NiftiGzStream.open(path) as stream:
        header = stream.header()
    assert header is not None and header == vio.read_image_header(path)
    vol = vio.read_image(path)
    assert vol.geometry == header.geometry
    np.testing.assert_array_equal(vol.array, toy_ct().array)


def test_canonical_view_writes_through_to_the_source_grid():
    """A mask built on `canonical_view` of a source-grid array is what `from_canonical` gives."""
    rng = np.random.default_rng(2)
    for d in list(signed_permutations())[::5] + [DIRECTIONS["oblique"]]:
        vol = with_direction(Volume(rng.integers(-5, 5, (4, 5, 6)).astype(np.int16)), d)
        canon, how = vio.to_canonical(vol)
        view_canon, _ = vio.to_canonical(vol, contiguous=False)
        np.testing.assert_array_equal(view_canon.array, canon.array)
        assert view_canon.geometry == canon.geometry
        mask = np.zeros(vol.array.shape, bool)
        view = vio.canonical_view(mask, how)
        view[canon.array > 2] = True
        np.testing.assert_array_equal(mask, vio.from_canonical(canon.array > 2, how).array)
