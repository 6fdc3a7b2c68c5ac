"""Results on disk: atomic writes, provenance, and the project's Table 2 file.

Every number the book shows comes from a file written here. Files are written to a temporary name in
the same folder and renamed, so a run that is killed leaves either the old file or the new one.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

#: columns of results/table2.csv: the paper's columns, then what identifies our run
TABLE2_COLUMNS = ("method", "classes", "n_train", "n_aug", "dice_val", "avg_err_test_mm",
                  "med_err_test_mm", "l1_acc_test", "label_source", "scale", "run_id", "n_test", "seed")

DEFAULT_TABLE2 = Path("results") / "table2.csv"

_PACKAGES = ("vertebra", "torch", "numpy", "scipy", "SimpleITK", "scikit-image", "pandas")


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes the file private; results are ordinary files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj) -> Path:
    """JSON with sorted keys and a trailing newline, so that equal content gives equal bytes."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(x):
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


#: folders a reproduction writes, which `git_commit` does not count as changes to the code (it copies
#: the packaged rows' weights into vertebra/weights before the summary pages run)
_RESULT_PATHS = ("results", "book/executed", "vertebra/weights")


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current git commit (with '-dirty' if tracked files other than the results have changes),
    or None outside git. Results (``results/``, the executed notebooks) change while a reproduction
    runs; they do not make the code that wrote them differ from the commit."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(top,exclude){p}" for p in _RESULT_PATHS)],
                               cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def package_versions(names=_PACKAGES) -> dict:
    versions = {"python": sys.version.split()[0]}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


#: the CPU flags that decide how fast bf16 runs (Intel AMX tiles; AVX-512 BF16 dot products)
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """The CPU's model name and its bf16 instruction sets, from ``/proc/cpuinfo`` (Linux).

    Results of this project are bit-identical only on the same kind of CPU, and bf16 speed depends on
    those instruction sets, so every result's provenance and every benchmark result records them; elsewhere the model is
    ``platform.processor()`` and the flags are unknown (None)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return {"model": platform.processor() or platform.machine(), "bf16_flags": None}
    model, flags = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {"model": model or platform.machine(), "bf16_flags": [f for f in BF16_FLAGS if f in flags]}


def cpu_label(cpu: dict) -> str:
    """``AMD EPYC (bf16: avx512_bf16)``: the model and its bf16 instruction sets, for tables."""
    flags = cpu.get("bf16_flags")
    extra = "" if flags is None else f" (bf16: {', '.join(flags) or 'none'})"
    return f"{cpu.get('model')}{extra}"


def device_description() -> str:
    try:
        import torch
        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.get_device_name(0)}"
        threads = torch.get_num_threads()
    except ImportError:
        threads = None
    return f"cpu:{platform.processor() or platform.machine()} ({os.cpu_count()} cores, {threads} torch threads)"


def peak_memory_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB (Linux: ru_maxrss in kB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def provenance(seed: int, params: dict, started: float) -> dict:
    """What made a result: parameters, seed, code version, packages, device, wall time, peak memory.

    `started` is a `time.time()` taken when the run began.
    """
    return {
        "params": params,
        "seed": seed,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "device": device_description(),
        "cpu": cpu_description(),
        "platform": platform.platform(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_time_s": round(time.time() - started, 2),
        "peak_memory_mb": round(peak_memory_mb(), 1),
    }


def read_table2(path: str | Path = DEFAULT_TABLE2) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def update_table2(row: dict, path: str | Path = DEFAULT_TABLE2) -> Path:
    """Insert or replace (by `run_id` and `scale`) one row of results/table2.csv, atomically.

    Rows keep the order of `vertebra.experiments.ROWS`, then any others by run_id.
    """
    missing = [c for c in ("run_id", "scale") if c not in row]
    if missing:
        raise ValueError(f"a Table 2 row needs {missing}")
    unknown = sorted(set(row) - set(TABLE2_COLUMNS))
    if unknown:
        raise ValueError(f"unknown Table 2 columns {unknown}; allowed: {TABLE2_COLUMNS}")
    rows = [r for r in read_table2(path)
            if (r["run_id"], r["scale"]) != (str(row["run_id"]), str(row["scale"]))]
    rows.append({c: "" if row.get(c) is None else row.get(c) for c in TABLE2_COLUMNS})

    from .experiments import ROWS
    order = {r.run_id: i for i, r in enumerate(ROWS)}
    scales = {"paper": 0, "quick": 1, "smoke": 2}
    rows.sort(key=lambda r: (scales.get(r["scale"], 9), order.get(r["run_id"], len(order)), r["run_id"]))

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TABLE2_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())
