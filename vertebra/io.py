"""Scans in and out: every reader returns the array *and* its geometry, every writer takes both back.

Formats: NIfTI (``.nii``, ``.nii.gz``), NRRD, MetaImage (``.mha``, ``.mhd``) and DICOM series folders,
all through SimpleITK; VerSe-style case folders (CT, vertebra mask, rib mask, centroid JSON, meta JSON).

Arrays are numpy (z, y, x); geometry is ITK (x, y, z), world mm, LPS (see `vertebra.image`). Whatever
is wrong with an input becomes one `InputError` that names the file and the problem, never a traceback
from deep inside SimpleITK. The reader checks, in this order: the file can be parsed; the image is 3D and
scalar; it is not larger than the memory guard (from the header, before any voxel is read); spacing and
direction are sane; voxels are finite; and, for CT, that the intensities look like Hounsfield units.

>>> import numpy as np
>>> vol = Volume(np.zeros((2, 3, 4), np.int16), Geometry(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1)))
>>> orientation_code(vol.geometry.direction)    # index axes point to Right, Anterior, Superior
'RAS'
>>> canon, how = to_canonical(vol)
>>> orientation_code(canon.geometry.direction), how.source_code
('LPS', 'RAS')
>>> bool(np.array_equal(from_canonical(canon, how).array, vol.array))
True
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import labels as verse_labels
from .errors import InputError
from .image import Geometry, Volume

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
#: rib label map: left rib k → k, right rib k → 100 + k, k = 1..13 counted from T1
RIB_LABELS = frozenset(range(1, 14)) | frozenset(range(101, 114))
SPACING_RANGE_MM = (0.05, 20.0)
#: the world axis and sign (LPS) that each orientation letter names
_LETTER_AXIS = {"L": (0, 1), "R": (0, -1), "P": (1, 1), "A": (1, -1), "S": (2, 1), "I": (2, -1)}
_AXIS_LETTER = {v: k for k, v in _LETTER_AXIS.items()}

@dataclass(frozen=True)
class ReadChecks:
    """What the reader accepts. CT heuristics look at the 0.1 % tails of the intensity histogram:
    real CT holds air (-1000 HU) or at least fat (-100 HU) and some bone (> 250 HU)."""

    max_voxels: float = 1.5e9          # memory guard, checked on the header before reading voxels
    spacing_range_mm: tuple[float, float] = SPACING_RANGE_MM
    low_tail_max_hu: float = -50.0     # the lowest 0.1 % of voxels must lie below this (air or fat)
    high_tail_min_hu: float = 250.0    # the highest 0.1 % must reach this (bone)


@dataclass(frozen=True)
class ImageHeader:
    """What a file says about its image before its voxels are read."""

    geometry: Geometry | None
    shape_xyz: tuple[int, ...]
    pixel_type: str
    components: int

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape_xyz, dtype=np.float64))


# ------------------------------------------------------------------ reading and writing images

def _sitk_error(exc: RuntimeError, path) -> InputError:
    text = str(exc)
    if ("Unable to determine ImageIO reader" in text or "not supported" in text.lower()
            or "is not recognized as a NIFTI file" in text):
        return InputError("not an image SimpleITK can read (unknown or corrupt format)", path)
    first = next((ln.strip() for ln in text.splitlines() if "ERROR" in ln or "rror" in ln), text[:200])
    return InputError(f"could not be read (truncated or corrupt file?): {first[:300]}", path)


def _dicom_files(folder: Path, series_uid: str | None) -> list[str]:
    warnings_shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)   # GDCM warns on stderr about empty folders
    try:
        uids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ())
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_shown)
    if not uids:
        raise InputError("folder holds no DICOM series", folder)
    if series_uid is None and len(uids) > 1:
        raise InputError(f"folder holds {len(uids)} DICOM series; choose one with series_uid= "
                         f"(--series-uid): {', '.join(uids)}", folder)
    uid = series_uid or uids[0]
    if uid not in uids:
        raise InputError(f"no DICOM series {uid!r} here; found {', '.join(uids)}", folder)
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))


def read_image_header(path: str | Path, *, series_uid: str | None = None) -> ImageHeader:
    """Size, pixel type and geometry from the header only (no voxels are read).

    For a DICOM folder the size is (columns, rows, number of files) and the geometry is left None
    (it needs every slice's position)."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    reader = sitk.ImageFileReader()
    if path.is_dir():
        files = _dicom_files(path, series_uid)
        reader.SetFileName(files[0])
    else:
        reader.SetFileName(str(path))
        if path.name.lower().endswith((".nii", ".nii.gz")):
            reader.SetImageIO("NiftiImageIO")    # skips asking every ITK format whether it can read it
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise _sitk_error(exc, path) from None
    if path.is_dir():
        size = tuple(int(n) for n in reader.GetSize())
        pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
        return ImageHeader(None, size[:2] + (len(files),), pixel, reader.GetNumberOfComponents())
    return _header_of(reader)


def _header_of(reader: sitk.ImageFileReader) -> ImageHeader:
    """The `ImageHeader` of a file reader after ``ReadImageInformation``."""
    size = tuple(int(n) for n in reader.GetSize())
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    geometry = None
    if reader.GetDimension() == 3:
        try:
            geometry = Geometry(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
        except ValueError:
            geometry = None  # reported by `read_image` with the file name
    return ImageHeader(geometry, size, pixel, reader.GetNumberOfComponents())


def _check_gzip_length(path: Path, header: ImageHeader) -> None:
    """ITK zero-fills a truncated ``.gz`` silently; the gzip trailer (uncompressed size mod 2**32) must
    leave room for the voxels the header promises plus a header of under 1 MB. The stored voxel type
    may be narrower than the one ITK reports (scaled NIfTI: int16 on disk, float32 in memory), so any
    of 1, 2, 4 or 8 bytes a voxel is accepted."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() < 18:
            raise InputError("is too short to be a gzip file", path)
        f.seek(-4, os.SEEK_END)
        stored = int.from_bytes(f.read(4), "little")
    extras = [(stored - header.n_voxels * header.components * b) % 2**32 for b in (1, 2, 4, 8)]
    if min(extras) >= 1_000_000:
        raise InputError("could not be read: the gzip stream is truncated or corrupt (it does not hold "
                         f"the {header.n_voxels} voxels its header promises)", path)


#: NIfTI-1 datatype code → numpy dtype (little-endian) of the types read without SimpleITK
_NIFTI_DTYPES = {2: "u1", 4: "<i2", 8: "<i4", 16: "<f4", 64: "<f8", 256: "i1", 512: "<u2", 768: "<u4"}


def _read_nifti_gz_voxels(path: Path, header: ImageHeader) -> np.ndarray | None:
    """The voxels (z, y, x) of a plain ``.nii.gz``, decompressed with ISA-L (about 3x faster than the
    zlib inside ITK, which dominates reading a CT); None for anything but a little-endian NIfTI-1 3D
    scalar image without intensity scaling, which SimpleITK then reads. The geometry always comes from
    SimpleITK (`read_image_header` or `_NiftiGzStream.header`), so both paths agree on it; they give
    identical arrays (tested)."""
    stream = _NiftiGzStream.open(path)
    if stream is None:               # optional speed-up: SimpleITK reads everything without ISA-L
        return None
    with stream:
        return stream.voxels(header)


class _NiftiGzStream:
    """A ``.nii.gz`` decompressed with ISA-L as it is read: 64 kB of input and at most 1 MB of output
    at a time (a label map can inflate a thousandfold), so that neither the compressed nor the
    decompressed file is held as one more copy of the scan (each costs milliseconds of page faults).
    The first bytes (the header) are kept; the voxel bytes are copied once, into the returned array;
    the whole stream is always decompressed, so its CRC and length are checked."""

    LIMIT = 1 << 20

    def __init__(self, path: Path, file, isal_zlib):
        self.path, self.file, self.zlib = path, file, isal_zlib
        self.inflater = isal_zlib.decompressobj(31)           # 31: gzip wrapper
        self.buffer = bytearray(1 << 16)                      # reused: stays in the cache
        self.data = memoryview(self.buffer)[:0]               # input not yet given to the inflater
        self.head = b""                                       # output kept for the header
        self.consumed = 0                                     # output bytes already taken
        self.full = False                                     # the last piece hit LIMIT

    @classmethod
    def open(cls, path: Path) -> "_NiftiGzStream | None":
        try:
            from isal import isal_zlib
        except ImportError:
            return None
        try:
            return cls(path, open(path, "rb"), isal_zlib)
        except OSError as exc:
            raise InputError(f"could not be read: the gzip stream is truncated or corrupt ({exc})", path) from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def _pieces(self):
        """The remaining output, piece by piece; then the stream must have ended (else InputError)."""
        try:
            while not self.inflater.eof:
                if not self.data and not self.full:   # after a full piece, more output may wait
                    n_read = self.file.readinto(self.buffer)
                    if not n_read:
                        break
                    self.data = memoryview(self.buffer)[:n_read]
                piece = self.inflater.decompress(self.data, self.LIMIT)
                self.data = self.inflater.unconsumed_tail
                self.full = len(piece) == self.LIMIT
                yield piece
        except self.zlib.error as exc:
            raise InputError(f"could not be read: the gzip stream is truncated or corrupt ({exc})",
                             self.path) from None
        except OSError as exc:
            raise InputError(f"could not be read: the gzip stream is truncated or corrupt ({exc})",
                             self.path) from None
        if not self.inflater.eof:
            raise InputError("could not be read: the gzip stream is truncated or corrupt (incomplete or "
                             "truncated stream)", self.path)

    def _head(self, n: int) -> bytes:
        """The first `n` output bytes (fewer if the stream is shorter), kept for `voxels`."""
        if len(self.head) < n and not self.inflater.eof:
            parts = [self.head]
            size = len(self.head)
            for piece in self._pieces():
                parts.append(piece)
                size += len(piece)
                if size >= n:
                    break
            self.head = b"".join(parts)
        return self.head[:n]

    def header(self) -> ImageHeader | None:
        """What `read_image_header` says of the file, from SimpleITK reading only its decompressed
        header (SimpleITK reading the header of a ``.nii.gz`` decompresses far more than the header);
        None for anything but a NIfTI-1 single file (``n+1``), which `read_image_header` then reads."""
        try:
            head = self._head(352)
            if len(head) < 352 or int.from_bytes(head[:4], "little") != 348 or head[344:348] != b"n+1\0":
                return None
            vox_offset = float(np.frombuffer(head, "<f4", 1, 108)[0])
            if not 352 <= vox_offset <= 1 << 20 or vox_offset != int(vox_offset):
                return None
            head = self._head(int(vox_offset))
        except InputError:
            return None                        # reported as before, by SimpleITK or the next read
        if len(head) < vox_offset:
            return None
        folder = tempfile.mkdtemp(prefix=".header.")     # the file's own name, for ITK's warnings
        name = os.path.join(folder, self.path.name[:-3])
        try:
            with open(name, "wb") as f:
                f.write(head)
            reader = sitk.ImageFileReader()
            reader.SetFileName(name)
            reader.SetImageIO("NiftiImageIO")
            reader.ReadImageInformation()
        except (RuntimeError, OSError):
            return None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return _header_of(reader)

    def voxels(self, header: ImageHeader) -> np.ndarray | None:
        """`_read_nifti_gz_voxels` of this stream (from its start: nothing is taken twice)."""
        if self.consumed:
            raise RuntimeError("the voxels of a stream are read once")
        layout = _nifti_layout(self._head(352), header)
        if layout is None:
            for _ in self._pieces():           # not for the fast path: only check the stream
                pass
            return None
        dtype, vox_offset, count = layout
        need = vox_offset + count * dtype.itemsize
        out = np.empty(need, np.uint8)
        filled = min(len(self.head), need)
        out[:filled] = np.frombuffer(self.head, np.uint8, filled)
        self.consumed = len(self.head)
        for piece in self._pieces():
            take = min(len(piece), need - filled)
            if take > 0:
                out[filled:filled + take] = np.frombuffer(piece, np.uint8, take)
                filled += take
        if filled < need:
            raise InputError(f"could not be read: it holds fewer voxels than the {count} its header promises",
                             self.path)
        array = out[vox_offset:].view(dtype).reshape(tuple(header.shape_xyz[:3])[::-1])
        return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def _nifti_layout(raw: bytes, header: ImageHeader) -> tuple[np.dtype, int, int] | None:
    """(voxel dtype, vox_offset, voxel count) of a NIfTI-1 header that the fast path reads, else None."""
    if len(raw) < 352 or int.from_bytes(raw[:4], "little") != 348 or raw[344:348] != b"n+1\0":
        return None
    dim = np.frombuffer(raw, "<i2", 8, 40)
    datatype = int(np.frombuffer(raw, "<i2", 1, 70)[0])
    vox_offset = int(np.frombuffer(raw, "<f4", 1, 108)[0])
    slope, inter = (float(v) for v in np.frombuffer(raw, "<f4", 2, 112))
    shape_xyz = tuple(int(n) for n in dim[1:4])
    if (dim[0] != 3 or datatype not in _NIFTI_DTYPES or slope not in (0.0, 1.0) or inter != 0.0
            or shape_xyz != tuple(header.shape_xyz[:3]) or header.components != 1):
        return None
    return np.dtype(_NIFTI_DTYPES[datatype]), vox_offset, header.n_voxels


def _check_header(header: ImageHeader, path, checks: ReadChecks) -> None:
    dims = len(header.shape_xyz)
    if dims == 4 and header.shape_xyz[3] == 1:
        dims = 3
    if dims != 3:
        raise InputError(f"is {dims}D with size {header.shape_xyz}; a 3D scan is needed", path)
    if header.components != 1:
        raise InputError(f"has {header.components} components per voxel (a vector or colour "
                         "image); a scalar CT is needed", path)
    if min(header.shape_xyz[:3]) < 2:
        if min(header.shape_xyz[:3]) == 0:
            raise InputError(f"is empty (size {header.shape_xyz[:3]})", path)
        raise InputError(f"is a single slice (size {header.shape_xyz[:3]}), effectively 2D", path)
    if header.n_voxels > checks.max_voxels:
        raise InputError(f"has {header.n_voxels:.3g} voxels, above the memory guard of "
                         f"{checks.max_voxels:.3g} (ReadChecks.max_voxels)", path)


def _check_geometry(spacing, origin, direction, path, checks: ReadChecks) -> Geometry:
    """Spacing, origin and direction (ITK order, as the file gives them) → a checked `Geometry`."""
    spacing = np.asarray(spacing, float)
    lo, hi = checks.spacing_range_mm
    if not np.all(np.isfinite(spacing)) or spacing.min() < lo or spacing.max() > hi:
        shown = ", ".join(f"{v:.4g}" for v in spacing)
        raise InputError(f"voxel spacing ({shown}) mm is outside {lo}..{hi} mm", path)
    if not np.all(np.isfinite(origin)):
        raise InputError(f"origin {tuple(origin)} is not finite", path)
    matrix = np.asarray(direction, float).reshape(3, 3)
    if not np.all(np.isfinite(matrix)) or not np.allclose(matrix.T @ matrix, np.eye(3), atol=1e-3):
        raise InputError("direction cosines are not orthonormal", path)
    return Geometry(spacing, origin, direction)


def as_hu(array: np.ndarray, path=None, checks: ReadChecks = ReadChecks()) -> np.ndarray:
    """Cast rule for CT: integers that fit int16 → int16; floats → float32 (kept as float unless
    every value is an integer in int16 range); bool is a mask, not a CT."""
    if array.dtype == bool:
        raise InputError("is a boolean image (a mask?), not a CT in HU", path)
    if array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise InputError(f"{bad} voxels are NaN or infinite", path)
    if array.dtype.kind not in "iuf":
        raise InputError(f"has voxel type {array.dtype}, not a number", path)
    lo, hi = float(array.min()), float(array.max())
    if array.dtype.kind in "iu" or np.array_equal(array, np.round(array)):
        array = array.astype(np.int16, copy=False) if -32768 <= lo and hi <= 32767 else array.astype(np.float32)
    else:
        array = array.astype(np.float32, copy=False)
    sample = array.ravel()[:: max(1, array.size // 131_072)]   # 0.1 % of ~130 k voxels: >= 130 in each tail
    low_tail, high_tail = np.percentile(sample, [0.1, 99.9])
    if low_tail > checks.low_tail_max_hu:
        raise InputError(f"does not look like CT in HU: no air or fat (lowest 0.1 % at {low_tail:.0f},"
                         f" range {lo:.0f}..{hi:.0f}); an MR image, or raw values without the "
                         "rescale intercept (-1024)?", path)
    if high_tail < checks.high_tail_min_hu:
        raise InputError(f"does not look like CT of the trunk: no bone (highest 0.1 % at "
                         f"{high_tail:.0f} HU < {checks.high_tail_min_hu:.0f})", path)
    return array


def as_label_map(array: np.ndarray, path=None, allowed: frozenset[int] | None = None) -> np.ndarray:
    """Cast rule for label maps: integer-valued data in 0..255 → uint8; labels outside `allowed`
    (0 always allowed) → InputError listing them."""
    if array.dtype.kind == "f" and not (np.all(np.isfinite(array)) and np.array_equal(array, np.round(array))):
        raise InputError("label map holds non-integer values", path)
    if array.dtype.kind not in "biuf":
        raise InputError(f"label map has voxel type {array.dtype}", path)
    if array.dtype in (np.uint8, np.bool_):      # bincount is ~10x faster than unique here
        values = np.flatnonzero(np.bincount(array.ravel().view(np.uint8), minlength=2))
    else:
        values = np.unique(array)
    if values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise InputError(f"label map values {values.min()}..{values.max()} are outside 0..255", path)
    if allowed is not None:
        unknown = sorted(int(v) for v in values if v != 0 and int(v) not in allowed)
        if unknown:
            raise InputError(f"label map holds unknown labels {unknown}", path)
    return array.astype(np.uint8, copy=False)


def read_image(path: str | Path, *, kind: str = "ct", series_uid: str | None = None,
               allowed_labels: frozenset[int] | None = None, checks: ReadChecks = ReadChecks()) -> Volume:
    """Read a 3D scan (file or DICOM series folder) with its geometry, in the file's own orientation.

    `kind`: ``"ct"`` (HU checks, cast to int16 or float32), ``"labels"`` (uint8; `allowed_labels`
    limits the values) or ``"any"`` (geometry and finiteness checks only)."""
    if kind not in ("ct", "labels", "any"):
        raise ValueError(f"kind must be 'ct', 'labels' or 'any', got {kind!r}")
    path = Path(path)
    # a .nii.gz is decompressed once, by ISA-L: its header for SimpleITK first, then its voxels
    stream = _NiftiGzStream.open(path) if path.name.lower().endswith(".nii.gz") and path.is_file() else None
    try:
        header = stream.header() if stream is not None else None
        if header is None:                   # not a plain NIfTI-1, or unreadable: as SimpleITK says
            if stream is not None:
                stream.file.close()
                stream = None
            header = read_image_header(path, series_uid=series_uid)
        _check_header(header, path, checks)
        if path.name.lower().endswith(".gz"):
            _check_gzip_length(path, header)
        if path.name.lower().endswith(".nii.gz") and header.geometry is not None:
            g = header.geometry              # checked before the voxels are decompressed
            geometry = _check_geometry(g.spacing_mm, g.origin_mm, g.direction, path, checks)
            fast = stream.voxels(header) if stream is not None else _read_nifti_gz_voxels(path, header)
            if fast is not None:
                return Volume(_cast(fast, kind, path, checks, allowed_labels), geometry)
    finally:
        if stream is not None:
            stream.file.close()
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(_dicom_files(path, series_uid))
            image = reader.Execute()
        else:
            reader = sitk.ImageFileReader()   # one thread: decompression is serial, a second thread only waits
            reader.SetFileName(str(path))
            reader.SetNumberOfThreads(1)
            image = reader.Execute()
    except RuntimeError as exc:
        raise _sitk_error(exc, path) from None
    if image.GetDimension() == 4:
        image = image[:, :, :, 0]
    geometry = _check_geometry(image.GetSpacing(), image.GetOrigin(), image.GetDirection(), path, checks)
    return Volume(_cast(sitk.GetArrayFromImage(image), kind, path, checks, allowed_labels), geometry)


def _cast(array: np.ndarray, kind: str, path, checks: ReadChecks, allowed_labels) -> np.ndarray:
    """`read_image`'s checks and casts on the voxels, by ``kind``."""
    if kind == "ct":
        return as_hu(array, path, checks)
    if kind == "labels":
        return as_label_map(array, path, allowed_labels)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError("holds NaN or infinite voxels", path)
    return array


def _image_suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise ValueError(f"{path}: unknown image extension (use one of {', '.join(IMAGE_SUFFIXES)})")


def write_image(volume: Volume | np.ndarray, path: str | Path, like: Volume | None = None) -> Path:
    """Write atomically; the format follows the extension. With `like`, the array is written on
    `like`'s grid (shapes must match), e.g. a predicted mask back onto its input scan."""
    path = Path(path)
    _image_suffix(path)
    array = volume.array if isinstance(volume, Volume) else np.asarray(volume)
    geometry = like.geometry if like is not None else volume.geometry
    if like is not None and array.shape != like.array.shape:
        raise ValueError(f"array shape {array.shape} differs from the reference {like.array.shape}")
    if array.dtype == bool:
        array = array.view(np.uint8) if array.flags.c_contiguous else array.astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    # written under its final name in a private folder (so .mhd finds its .raw), then renamed
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if not (path.name.lower().endswith(".nii.gz") and _write_nifti_gz(array, geometry, tmp_dir / path.name)):
            image = geometry.apply_to(sitk.GetImageFromArray(np.ascontiguousarray(array)))
            sitk.WriteImage(image, str(tmp_dir / path.name), useCompression=path.suffix == ".gz")
        produced = sorted(tmp_dir.iterdir(), key=lambda p: p.name == path.name)  # header last
        for file in produced:
            os.replace(file, path.parent / file.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def _write_nifti_gz(array: np.ndarray, geometry: Geometry, path: Path) -> bool:
    """Write a ``.nii.gz`` with ISA-L's gzip (several times faster than the zlib inside ITK); False,
    having written nothing, where SimpleITK has to (no ISA-L, a type or size it writes differently).

    The NIfTI header is ITK's own: SimpleITK writes a 2x2x2 image of the same voxel type and geometry
    uncompressed and only its three sizes are changed (nothing else in ITK's header depends on them),
    so the file reads back exactly as SimpleITK's would (tested)."""
    try:
        from isal import isal_zlib
    except ImportError:
        return False
    if (array.ndim != 3 or array.dtype.str.lstrip("<>=|") not in _NIFTI_WRITE_TYPES
            or not array.dtype.isnative or array.size == 0 or max(array.shape) > 32767):
        return False
    template = path.with_name(".header.nii")
    tiny = geometry.apply_to(sitk.GetImageFromArray(np.zeros((2, 2, 2), array.dtype)))
    sitk.WriteImage(tiny, str(template), useCompression=False)
    header = bytearray(template.read_bytes())
    template.unlink()
    vox_offset = int(np.frombuffer(header, "<f4", 1, 108)[0])
    if (len(header) != vox_offset + 8 * array.itemsize or np.frombuffer(header, "<i2", 4, 40).tolist()
            != [3, 2, 2, 2]):
        return False                      # not the NIfTI-1 layout this expects: leave it to SimpleITK
    header = header[:vox_offset]
    header[42:48] = np.array(array.shape[::-1], "<i2").tobytes()          # dim[1..3] = x, y, z sizes
    deflater = isal_zlib.compressobj(2, isal_zlib.DEFLATED, 31)      # ISA-L level 2 (its default)
    with open(path, "wb") as f:
        f.write(deflater.compress(header))
        f.write(deflater.compress(memoryview(np.ascontiguousarray(array)).cast("B")))
        f.write(deflater.flush())
    return True


#: numpy voxel types (byte order aside) that `_write_nifti_gz` writes, as SimpleITK writes them to NIfTI
_NIFTI_WRITE_TYPES = frozenset({"u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8"})


# ------------------------------------------------------------------ canonical orientation

def _nearest_axes(direction) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """For world axis w (x=L, y=P, z=S): the index axis nearest to it and its sign."""
    d = np.asarray(direction, float).reshape(3, 3)
    perm = max(permutations(range(3)), key=lambda p: np.prod([abs(d[w, p[w]]) for w in range(3)]))
    signs = tuple(1 if d[w, perm[w]] >= 0 else -1 for w in range(3))
    return tuple(perm), signs


def orientation_code(direction) -> str:
    """Three letters saying where the x, y, z index axes point (DICOM/nibabel style, e.g. 'LPS',
    'RAS'); oblique directions get the nearest code."""
    perm, signs = _nearest_axes(direction)
    letters = [""] * 3
    for w in range(3):
        letters[perm[w]] = _AXIS_LETTER[(w, signs[w])]
    return "".join(letters)


@dataclass(frozen=True)
class Reorientation:
    """How `to_canonical` permuted and flipped an array, and the grid it came from."""

    source: Geometry
    source_shape_zyx: tuple[int, int, int]
    source_code: str
    transpose_zyx: tuple[int, int, int]   # numpy axes order applied first
    flip_zyx: tuple[int, ...]             # numpy axes flipped after the transpose
    oblique_deg: float                    # angle between the source axes and the nearest LPS axes


def _reoriented(array: np.ndarray, transpose, flips) -> np.ndarray:
    return np.flip(array.transpose(transpose), flips) if flips else array.transpose(transpose)


def to_canonical(volume: Volume, *, contiguous: bool = True) -> tuple[Volume, Reorientation]:
    """Permute and flip (exactly, no interpolation) so that index x, y, z point to L, P, S.

    World positions are unchanged: the new direction is the old one permuted and sign-flipped, so for
    an oblique scan it stays a few degrees off identity (recorded as `oblique_deg`). With
    ``contiguous=False`` the array is a view of the input's (no copy), for a consumer that copies it
    anyway."""
    g = volume.geometry
    d = g.direction_matrix
    perm, signs = _nearest_axes(d)
    transpose = tuple(2 - perm[2 - k] for k in range(3))
    flips = tuple(2 - w for w in range(3) if signs[w] < 0)
    array = _reoriented(volume.array, transpose, flips)
    corner_xyz = [0 if signs[w] > 0 else volume.shape_xyz[perm[w]] - 1 for w in range(3)]
    index_xyz = np.zeros(3)
    for w in range(3):
        index_xyz[perm[w]] = corner_xyz[w]
    origin = np.asarray(g.origin_mm) + d @ (np.asarray(g.spacing_mm) * index_xyz)
    new_d = np.stack([d[:, perm[w]] * signs[w] for w in range(3)], axis=1)
    spacing = tuple(g.spacing_mm[perm[w]] for w in range(3))
    oblique = float(np.degrees(np.arccos(np.clip(np.diag(new_d).min(), -1.0, 1.0))))
    how = Reorientation(g, tuple(volume.array.shape), orientation_code(d), transpose, flips, oblique)
    return Volume(np.ascontiguousarray(array) if contiguous else array, Geometry(spacing, origin, new_d.ravel())), how


def canonical_view(array: np.ndarray, how: Reorientation) -> np.ndarray:
    """A view of an array on the source grid (``how.source_shape_zyx``) in canonical orientation, as
    `to_canonical` would give it, but sharing its memory: what is written into the view lands on the
    source grid, so a mask built through it needs no `from_canonical`."""
    if tuple(array.shape) != tuple(how.source_shape_zyx):
        raise ValueError(f"array shape {array.shape} is not the source shape {how.source_shape_zyx}")
    return _reoriented(array, how.transpose_zyx, how.flip_zyx)


def from_canonical(volume: Volume | np.ndarray, how: Reorientation) -> Volume:
    """Map an array on the canonical grid (e.g. a predicted mask) back onto the source grid, exactly."""
    array = volume.array if isinstance(volume, Volume) else np.asarray(volume)
    expected = tuple(how.source_shape_zyx[a] for a in how.transpose_zyx)
    if array.shape != expected:
        raise ValueError(f"array shape {array.shape} is not the canonical shape {expected}")
    if how.flip_zyx:
        array = np.flip(array, how.flip_zyx)
    return Volume(np.ascontiguousarray(array.transpose(np.argsort(how.transpose_zyx))), how.source)


# ------------------------------------------------------------------ VerSe centroid JSON

def _reference_header(path: Path, reference) -> tuple[Geometry, tuple[int, int, int]]:
    if reference is not None:
        return reference.geometry, tuple(reference.shape_xyz)
    # VerSe naming: sub-X_seg-subreg_ctd.json lies next to sub-X_ct.nii.gz
    stem = path.name.split("_seg-")[0]
    for suffix in (".nii.gz", ".nii"):
        ct = path.parent / f"{stem}_ct{suffix}"
        if ct.exists():
            header = read_image_header(ct)
            if header.geometry is None or len(header.shape_xyz) != 3:
                raise InputError("reference CT has no 3D geometry", ct)
            return header.geometry, header.shape_xyz
    raise InputError("VerSe centroids are voxel coordinates: pass the reference image "
                     f"(no {stem}_ct.nii.gz beside the file)", path)


def _code_of(entry, path) -> str:
    if not isinstance(entry, dict) or set(entry) != {"direction"}:
        raise InputError("first item must be {\"direction\": [three axis codes]}"
                         + ("" if not isinstance(entry, dict) else f", got fields {sorted(entry)}"), path)
    code = "".join(str(c).upper() for c in entry["direction"])
    if len(code) != 3 or any(c not in _LETTER_AXIS for c in code) or \
            len({_LETTER_AXIS[c][0] for c in code}) != 3:
        raise InputError(f"field 'direction' {entry['direction']} is not three axis codes from "
                         "L/R, A/P, S/I", path)
    return code


def read_verse_centroids(path: str | Path, reference: Volume | ImageHeader | None = None
                         ) -> dict[int, np.ndarray]:
    """VerSe'20 centroid JSON → {label: (x, y, z) world mm, LPS}.

    The file lists ``{"direction": [c0, c1, c2]}`` and then ``{"label", "X", "Y", "Z"}`` items whose
    coordinates are voxel indices of the reference image reoriented (permuted and flipped) to that
    axis code. Undoing that reorientation needs the reference grid: pass `reference`, or keep the
    VerSe-named CT beside the file. Entries with NaN coordinates are skipped, as VerSe does."""
    path = Path(path)
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"is not readable JSON ({exc})", path) from None
    if not isinstance(items, list) or not items:
        raise InputError("VerSe centroid file must be a non-empty JSON list", path)
    code = _code_of(items[0], path)
    geometry, shape_xyz = _reference_header(path, reference)
    ref_code = orientation_code(geometry.direction)
    out: dict[int, np.ndarray] = {}
    for n, item in enumerate(items[1:], start=1):
        if not isinstance(item, dict):
            raise InputError(f"item {n} is not an object", path)
        missing = [f for f in ("label", "X", "Y", "Z") if f not in item]
        extra = sorted(set(item) - {"label", "X", "Y", "Z"})
        if missing or extra:
            raise InputError(f"item {n}: " + "; ".join(
                ([f"missing field(s) {missing}"] if missing else [])
                + ([f"unexpected field(s) {extra}"] if extra else [])), path)
        try:
            label = int(item["label"])
            coords = np.array([float(item[k]) for k in ("X", "Y", "Z")])
        except (TypeError, ValueError):
            raise InputError(f"item {n}: 'label', 'X', 'Y', 'Z' must be numbers", path) from None
        if label != item["label"] or label not in verse_labels.VALID_LABELS:
            raise InputError(f"item {n}: field 'label' {item['label']!r} is not a VerSe label", path)
        if np.isnan(coords).any():
            continue
        if label in out:
            raise InputError(f"label {label} appears twice", path)
        index_xyz = np.empty(3)
        for a, letter in enumerate(ref_code):
            world_axis, sign = _LETTER_AXIS[letter]
            b = next(b for b, c in enumerate(code) if _LETTER_AXIS[c][0] == world_axis)
            same = _LETTER_AXIS[code[b]][1] == sign
            index_xyz[a] = coords[b] if same else shape_xyz[a] - 1 - coords[b]
        out[label] = np.asarray(geometry.origin_mm) + geometry.direction_matrix @ (
            np.asarray(geometry.spacing_mm) * index_xyz)
    return out


def write_verse_centroids(path: str | Path, centroids_mm: dict, reference: Volume) -> Path:
    """{label: (x, y, z) world mm} → VerSe'20 JSON in the reference's own axis code and voxel indices."""
    from .results import write_text_atomic

    items: list[dict] = [{"direction": list(orientation_code(reference.geometry.direction))}]
    for label in sorted(centroids_mm, key=verse_labels.rank):
        x, y, z = reference.world_to_index([centroids_mm[label]])[0][::-1]
        items.append({"label": int(label), "X": round(float(x), 6), "Y": round(float(y), 6),
                      "Z": round(float(z), 6)})
    return write_text_atomic(path, "[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n")


# ------------------------------------------------------------------ VerSe case folders

@dataclass
class VerseCase:
    """One scan in VerSe layout. `case_id` is the part after ``sub-``; label maps are None when the
    case has none (real scans, pseudo-mask inputs); centroids are world mm (x, y, z), LPS."""

    case_id: str
    image: Volume
    vertebrae: Volume | None = None
    ribs: Volume | None = None
    centroids_mm: dict[int, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    path: Path | None = None


def case_files(case_dir: str | Path, case_id: str) -> dict[str, Path]:
    """The file names of a case: ct, vertebrae, ribs, centroids, meta."""
    d, s = Path(case_dir), f"sub-{case_id}"
    return {"ct": d / f"{s}_ct.nii.gz", "vertebrae": d / f"{s}_seg-vert_msk.nii.gz",
            "ribs": d / f"{s}_seg-rib_msk.nii.gz", "centroids": d / f"{s}_seg-subreg_ctd.json",
            "meta": d / f"{s}_meta.json"}


def _same_grid(mask: Volume, image: Volume, path) -> None:
    a, b = mask.geometry, image.geometry
    if mask.array.shape != image.array.shape or not (
            np.allclose(a.spacing_mm, b.spacing_mm, atol=1e-4) and np.allclose(a.origin_mm, b.origin_mm, atol=1e-3)
            and np.allclose(a.direction, b.direction, atol=1e-4)):
        raise InputError(f"label map grid {mask.shape_xyz} differs from the CT's {image.shape_xyz} "
                         "(shape, spacing, origin or direction)", path)


def _int_keys(d):
    return {int(k) if str(k).lstrip("-").isdigit() else k: v for k, v in d.items()}


def read_verse_case(case_dir: str | Path, *, checks: ReadChecks = ReadChecks()) -> VerseCase:
    """Read a case folder ``sub-<id>/``; only the CT is required."""
    case_dir = Path(case_dir)
    if not case_dir.is_dir():
        raise InputError("is not a case folder", case_dir)
    cts = sorted(case_dir.glob("*_ct.nii.gz")) + sorted(case_dir.glob("*_ct.nii"))
    if len(cts) != 1:
        raise InputError(f"a case folder holds exactly one *_ct.nii.gz, found {len(cts)}", case_dir)
    case_id = cts[0].name.split("_ct.nii")[0].removeprefix("sub-")
    files = case_files(case_dir, case_id)
    image = read_image(cts[0], kind="ct", checks=checks)
    masks = {}
    for key, allowed in (("vertebrae", verse_labels.VALID_LABELS), ("ribs", RIB_LABELS)):
        masks[key] = None
        if files[key].exists():
            masks[key] = read_image(files[key], kind="labels", allowed_labels=allowed, checks=checks)
            _same_grid(masks[key], image, files[key])
    centroids = read_verse_centroids(files["centroids"], image) if files["centroids"].exists() else {}
    meta = {}
    if files["meta"].exists():
        try:
            meta = json.loads(files["meta"].read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"is not readable JSON ({exc})", files["meta"]) from None
        for key in ("rib_vertebra", "trabecular_hu"):
            if isinstance(meta.get(key), dict):
                meta[key] = _int_keys(meta[key])
    return VerseCase(case_id, image, masks["vertebrae"], masks["ribs"], centroids, meta, case_dir)


def read_scan(path: str | Path, *, series_uid: str | None = None,
              checks: ReadChecks = ReadChecks()) -> Volume:
    """The CT of whatever a command-line user points at: an image file, a DICOM series folder, or a
    VerSe case folder (one holding ``*_ct.nii.gz``; the whole case is read, so its label maps and
    centroid JSON are checked too)."""
    path = Path(path)
    if path.is_dir() and (any(path.glob("*_ct.nii.gz")) or any(path.glob("*_ct.nii"))):
        return read_verse_case(path, checks=checks).image
    return read_image(path, kind="ct", series_uid=series_uid, checks=checks)


def _json_default(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def write_verse_case(root: str | Path, case_id: str, image: Volume, *, vertebrae: Volume | np.ndarray | None = None,
                     ribs: Volume | np.ndarray | None = None, centroids_mm: dict | None = None,
                     meta: dict | None = None) -> Path:
    """Write ``root/sub-<case_id>/`` atomically: the folder is built under a temporary name and
    renamed, so it is either complete or absent. Label maps are written on the CT's grid as uint8;
    `centroids_mm` (world mm, x, y, z) go to VerSe JSON. Returns the case folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"sub-{case_id}"
    tmp = Path(tempfile.mkdtemp(prefix=f".sub-{case_id}.", dir=root))
    try:
        files = case_files(tmp, case_id)
        write_image(image, files["ct"])
        for key, mask in (("vertebrae", vertebrae), ("ribs", ribs)):
            if mask is not None:
                arr = mask.array if isinstance(mask, Volume) else np.asarray(mask)
                write_image(as_label_map(arr, files[key]), files[key], like=image)
        if centroids_mm:
            write_verse_centroids(files["centroids"], centroids_mm, image)
        if meta is not None:
            files["meta"].write_text(json.dumps(meta, indent=2, sort_keys=True, default=_json_default) + "\n",
                                    encoding="utf-8")
        os.chmod(tmp, 0o755)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-sub-{case_id}.", dir=root))
            os.replace(final, old / "case")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
