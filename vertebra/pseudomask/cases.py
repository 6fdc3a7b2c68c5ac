"""Reading what the tool may read from a case folder: the CT and the meta JSON, never a label map."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError


def ct_path(scan: str | Path) -> Path:
    """The CT of `scan`: an image file, a DICOM folder, or a case folder holding one ``*_ct.nii[.gz]``."""
    scan = Path(scan)
    if not scan.exists():
        raise InputError("does not exist", scan)
    if scan.is_dir():
        cts = sorted(scan.glob("*_ct.nii.gz")) + sorted(scan.glob("*_ct.nii"))
        if len(cts) == 1:
            return cts[0]
        if len(cts) > 1:
            raise InputError(f"holds {len(cts)} *_ct.nii.gz files; expected one", scan)
    return scan   # an image file, or a DICOM folder (read_image checks it)


def case_meta(case_dir: str | Path) -> dict:
    """The case's ``*_meta.json`` as a dict ({} when there is none)."""
    case_dir = Path(case_dir)
    metas = sorted(case_dir.glob("*_meta.json")) if case_dir.is_dir() else []
    if not metas:
        return {}
    try:
        return json.loads(metas[0].read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"is not readable JSON ({exc})", metas[0]) from None


def case_id_of(ct: Path) -> str:
    return ct.name.split("_ct.nii")[0].removeprefix("sub-")
