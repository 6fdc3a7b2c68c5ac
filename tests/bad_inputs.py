"""A corpus of bad (and awkward-but-valid) inputs, built on demand into a folder.

Each entry says what kind of trouble it is, where the file is, which loader reads it, and a fragment
the `InputError` message must contain (``None``: the input is awkward but valid and must load).
The IO tests run every entry through `vertebra.io`; the command-line tests can run
``vertebra find-l1`` / ``vertebra label-spine`` over the ``loader == "image"`` entries and expect
exit code 2 with the same fragment on stderr (or success where ``expected`` is None).

    from bad_inputs import build_corpus, load_entry
    for entry in build_corpus(tmp_path):
        ...
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from vertebra import io as vio
from vertebra.errors import InputError
from vertebra.image import Geometry, Volume


@dataclass(frozen=True)
class BadInput:
    kind: str
    path: Path
    expected: str | None        # fragment of the InputError message; None: must load
    loader: str = "image"       # "image": vertebra.io.read_image; "case": read_verse_case


def toy_ct(shape_zyx=(12, 20, 20), seed: int = 0, spacing_mm=(1.5, 1.5, 2.5)) -> Volume:
    """A tiny CT-like volume (HU, int16): air, a body of soft tissue and fat, a bone block, noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape_zyx)
    cy, cx = (shape_zyx[1] - 1) / 2, (shape_zyx[2] - 1) / 2
    r = np.hypot(y - cy, x - cx)
    hu = np.full(shape_zyx, -1000.0)
    hu[r < 0.45 * shape_zyx[1]] = -100.0                      # fat
    hu[r < 0.38 * shape_zyx[1]] = 45.0                        # muscle/organs
    hu[(np.abs(y - cy - 3) < 3) & (np.abs(x - cx) < 3)] = 700.0   # a vertebral body
    hu += rng.normal(0, 10, shape_zyx)
    return Volume(hu.round().astype(np.int16), Geometry(spacing_mm, (-15.0, -15.0, 100.0)))


def toy_labels(ct: Volume) -> np.ndarray:
    lab = np.zeros(ct.array.shape, np.uint8)
    half = ct.array.shape[0] // 2
    bone = ct.array > 400
    lab[:half][bone[:half]] = 19
    lab[half:][bone[half:]] = 20
    return lab


def write_dicom_series(volume: Volume, folder: Path, series_uid: str,
                       study_uid: str = "1.2.826.0.1.3680043.2.1125.1") -> Path:
    """Write `volume` as a CT DICOM series, one file per z slice, with the tags a reader needs to
    rebuild the geometry (position and orientation per slice)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = volume.to_sitk()
    d = volume.geometry.direction
    orientation = "\\".join(f"{v:.10g}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {"0008|0060": "CT", "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL", "0020|000d": study_uid,
                "0020|000e": series_uid, "0008|0018": f"{series_uid}.{k + 1}", "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{p:.10g}" for p in position), "0020|0037": orientation,
                "0018|0050": f"{volume.geometry.spacing_mm[2]:.10g}", "0028|1052": "0", "0028|1053": "1",
                "0010|0010": "PHANTOM^TOY", "0010|0020": "TOY"}
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:04d}.dcm"))
        writer.Execute(sl)
    return folder


def _write(array, path: Path, spacing=(1.5, 1.5, 2.5), direction=None) -> Path:
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 4 and array.shape[-1] == 3)
    if image.GetDimension() == 3:
        image.SetSpacing(spacing)
        if direction is not None:
            image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return path


def _case(root: Path, name: str, ct: Volume, labels=None, centroid_items=None) -> Path:
    case = vio.write_verse_case(root, name, ct, vertebrae=labels)
    if centroid_items is not None:
        (case / f"sub-{name}_seg-subreg_ctd.json").write_text(json.dumps(centroid_items))
    return case


def _oblique_direction(deg: float = 12.0) -> tuple[float, ...]:
    a = np.radians(deg)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    return tuple(rot.ravel())


def build_corpus(root: str | Path) -> list[BadInput]:
    """Write every kind into `root` and list them."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ct = toy_ct()
    hu = ct.array
    out: list[BadInput] = []

    def add(kind, path, expected, loader="image"):
        out.append(BadInput(kind, Path(path), expected, loader))

    good = vio.write_image(ct, root / "good.nii.gz")
    data = good.read_bytes()
    (root / "truncated.nii.gz").write_bytes(data[: len(data) // 2])
    add("truncated gzip", root / "truncated.nii.gz", "could not be read")
    (root / "notes.nii.gz").write_bytes(gzip.compress(b"this is a text file, not a scan\n" * 20))
    add("gzip of a text file named .nii.gz", root / "notes.nii.gz", "not an image")
    (root / "report.pdf").write_bytes(b"%PDF-1.4 not an image\n")
    add("not an image at all", root / "report.pdf", "not an image")
    add("missing file", root / "absent.nii.gz", "no such file")
    add("2D image", _write(hu[5], root / "slice2d.nii.gz"), "is 2D")
    add("4D image", _write(np.stack([hu, hu]), root / "time4d.nii.gz"), "is 4D")
    add("single slice", _write(hu[:1], root / "oneslice.nii.gz"), "single slice")
    rgb = np.repeat(((hu - hu.min()) // 20).astype(np.uint8)[..., None], 3, axis=-1)
    add("vector (RGB) image", _write(rgb, root / "rgb.nrrd"), "components")
    mr = np.clip((hu + 1000) * 1.3, 0, 4000).astype(np.int16)
    add("MR-like intensities (0..4000)", _write(mr, root / "mr_t1.nii.gz"), "does not look like CT")
    add("CT with no bone", _write(np.minimum(hu, 60).astype(np.int16), root / "nobone.nii.gz"), "no bone")
    nan = hu.astype(np.float32)
    nan[3, 4, 5] = np.nan
    add("NaN voxels", _write(nan, root / "nan.mha"), "NaN")   # (ITK's NIfTI reader turns NaN into 0)
    inf = hu.astype(np.float32)
    inf[3, 4, 5] = np.inf
    add("infinite voxels", _write(inf, root / "inf.nrrd"), "infinite")
    add("spacing 0.01 mm", _write(hu, root / "tiny_spacing.nii.gz", spacing=(0.01, 0.01, 0.01)), "spacing")
    add("spacing 50 mm", _write(hu, root / "huge_spacing.mha", spacing=(1.0, 1.0, 50.0)), "spacing")
    add("oblique direction cosines (valid)",
        _write(hu, root / "oblique.nii.gz", direction=_oblique_direction()), None)
    # a header that promises 4e9 voxels; its data file is absent, so only the header can be read
    (root / "giant.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 2000 2000 1000\n"
                                    "ElementSpacing = 0.5 0.5 0.5\nElementType = MET_SHORT\n"
                                    "ElementDataFile = giant.raw\n")
    add("beyond the memory guard (header only)", root / "giant.mhd", "memory guard")
    (root / "empty_dicom").mkdir()
    add("empty DICOM folder", root / "empty_dicom", "no DICOM series")
    two = root / "two_series"
    write_dicom_series(toy_ct(seed=1), two, "1.2.826.0.1.3680043.2.1125.10")
    write_dicom_series(toy_ct(seed=2), two / "second", "1.2.826.0.1.3680043.2.1125.11")
    for f in (two / "second").iterdir():
        f.rename(two / f"b_{f.name}")
    (two / "second").rmdir()
    add("folder with two DICOM series", two, "2 DICOM series")
    add("dtype float64 (valid)", _write(hu.astype(np.float64), root / "float64.nii.gz"), None)
    add("dtype uint16, raw values without intercept",
        _write(np.clip(hu.astype(np.int32) + 1024, 0, None).astype(np.uint16), root / "uint16.nrrd"),
        "rescale intercept")
    add("dtype bool", _write((hu > 300).astype(np.uint8), root / "bool.nii.gz"), "does not look like CT")
    add("dtype bool (in memory)", root / "bool_in_memory", "boolean", loader="array:bool")
    labels = toy_labels(ct)
    head = {"direction": ["L", "P", "S"]}                   # toy_ct's own axis code
    item = {"label": 20, "X": 10.0, "Y": 13.0, "Z": 9.0}    # voxel (x, y, z) in the vertebral body
    add("VerSe JSON missing field", _case(root, "missingfield", ct, labels,
                                          [head, {k: v for k, v in item.items() if k != "Z"}]),
        "missing field(s) ['Z']", loader="case")
    add("VerSe JSON extra field", _case(root, "extrafield", ct, labels, [head, {**item, "score": 0.9}]),
        "unexpected field(s) ['score']", loader="case")
    add("VerSe JSON without direction", _case(root, "nodirection", ct, labels, [item]),
        "direction", loader="case")
    bad_labels = labels.copy()
    bad_labels[0, 0, :3] = (27, 40, 99)
    case = _case(root, "unknownlabels", ct)
    sitk_lab = sitk.GetImageFromArray(bad_labels)
    ct.geometry.apply_to(sitk_lab)
    sitk.WriteImage(sitk_lab, str(case / "sub-unknownlabels_seg-vert_msk.nii.gz"))
    add("label map with unknown labels", case, "unknown labels [27, 40, 99]", loader="case")
    add("valid case (control)", _case(root, "control", ct, labels, [head, item]), None, loader="case")
    return out


def load_entry(entry: BadInput):
    """Run the loader an entry is meant for (raises `InputError` for bad ones)."""
    if entry.loader == "image":
        return vio.read_image(entry.path)
    if entry.loader == "case":
        return vio.read_verse_case(entry.path)
    if entry.loader == "array:bool":
        return vio.as_hu(np.ones((2, 2, 2), bool), entry.path)
    raise ValueError(entry.loader)


def message_table(entries: list[BadInput]) -> list[tuple[str, str]]:
    """(kind, what the loader said) for each entry: the error message, or 'loaded'."""
    rows = []
    for entry in entries:
        try:
            load_entry(entry)
            rows.append((entry.kind, "loaded"))
        except InputError as exc:
            rows.append((entry.kind, exc.problem))
    return rows


if __name__ == "__main__":   # python tests/bad_inputs.py [FOLDER]: build the corpus, print kind → message
    import sys
    import tempfile

    folder = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="bad_inputs_")
    entries = build_corpus(folder)
    for entry, (kind, message) in zip(entries, message_table(entries)):
        print(f"{kind:45s} {entry.path.name:28s} {message}")
