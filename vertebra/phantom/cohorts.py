"""The paper's datasets as synthetic cohorts, written to the cache, and the `vertebra phantom` command.

| cohort | scans | protocols |
|---|---|---|
| hand | 52 | 37 cap + 15 ctc (the hand-segmented set) |
| pseudo | 257 | 225 ctc + 32 cap (the pseudo-mask set) |
| instance | 62 | 40 spine + 10 lumbar-only spine + 12 cap (the instance-segmentation training set) |
| ctc_test | 40 | ctc at the unseen test site |
| anomaly_test | n per stratum | ctc, each anomaly forced (plus a normal stratum) |

Case i of cohort c with seed s is drawn from ``np.random.default_rng([s, c_index, i])``, so a case does
not depend on n or on the order of generation, and the same name and seed give the same files.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..cache import cache_dir
from ..errors import InputError
from ..io import case_files, write_verse_case
from ..parallel import parallel_map
from .anatomy import ANOMALIES
from .case import GENERATOR_VERSION, PhantomCase, generate_case

log = logging.getLogger(__name__)

#: anomaly_test strata: each anomaly forced alone, and a normal control stratum
STRATA = ("normal",) + ANOMALIES


@dataclass(frozen=True)
class CaseSpec:
    """How to generate case i of a cohort (everything except the random draws)."""

    protocol: str
    site: str
    anomalies: tuple[str, ...] | None = None
    lumbar_only: bool = False
    stratum: str = ""


def _mix(n: int, parts: list[tuple[int, CaseSpec]]) -> list[CaseSpec]:
    """The cohort's composition at the paper's size, repeated/truncated to n cases (stable prefix)."""
    full = [spec for count, spec in parts for _ in range(count)]
    # interleave so that any prefix holds every protocol in about the right share
    order = np.argsort([(i + 0.5) / count for count, _ in parts for i in range(count)], kind="stable")
    full = [full[i] for i in order]
    return [full[i % len(full)] for i in range(n)]


COHORTS = {
    "hand": (52, [(37, CaseSpec("cap", "cap_train")), (15, CaseSpec("ctc", "ctc_train"))]),
    "pseudo": (257, [(225, CaseSpec("ctc", "ctc_train")), (32, CaseSpec("cap", "cap_train"))]),
    "instance": (62, [(40, CaseSpec("spine", "spine_train")), (10, CaseSpec("spine", "spine_train", None, True)),
                      (12, CaseSpec("cap", "cap_train"))]),
    "ctc_test": (40, [(40, CaseSpec("ctc", "ctc_test"))]),
    "anomaly_test": (8, None),
}
COHORT_INDEX = {name: i for i, name in enumerate(COHORTS)}


def cohort_specs(name: str, n: int | None = None) -> list[CaseSpec]:
    """Specs of the cases of a cohort; for anomaly_test, n is per stratum."""
    if name not in COHORTS:
        raise InputError(f"unknown cohort {name!r}; choose one of {sorted(COHORTS)}")
    default, parts = COHORTS[name]
    n = default if n is None else int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if name == "anomaly_test":
        return [CaseSpec("ctc", "ctc_train", () if s == "normal" else (s,), stratum=s)
                for s in STRATA for _ in range(n)]
    return _mix(n, parts)


def cohort_root(name: str, spacing_mm: float, seed: int, cache: str | Path | None = None) -> Path:
    return cache_dir(cache) / f"phantom-v{GENERATOR_VERSION}" / name / f"{spacing_mm:g}mm" / f"seed{seed}"


def case_id(name: str, i: int, spec: CaseSpec) -> str:
    return f"{name.replace('_', '')}{spec.stratum.replace('_', '')}{i:03d}"


def make_case(name: str, i: int, spec: CaseSpec, spacing_mm: float, seed: int) -> PhantomCase:
    """Case i of a cohort in memory (i counts within the stratum for anomaly_test), as `cohort` writes it."""
    cid = case_id(name, i, spec)
    draw = i + (100_000 * STRATA.index(spec.stratum) if spec.stratum else 0)
    key = [int(seed), COHORT_INDEX[name], draw]
    case = generate_case(np.random.default_rng(key), protocol=spec.protocol, site=spec.site,
                         spacing_mm=spacing_mm, anomalies=spec.anomalies, lumbar_only=spec.lumbar_only,
                         case_id=cid, cohort=name, seed=key)
    case.meta["stratum"] = spec.stratum or None
    return case


def iter_cases(name: str, spacing_mm: float = 2.0, n: int | None = None, seed: int = 0,
               progress: bool = True) -> Iterator[PhantomCase]:
    """The cases of a cohort generated in memory (same seeds as the files `cohort` writes), with the
    in-memory extras (e.g. the tagged-fluid mask) that the files do not hold."""
    counts: dict[str, int] = {}
    for spec in tqdm(cohort_specs(name, n), desc=f"phantom {name}", unit="scan", disable=not progress):
        j = counts.get(spec.stratum, 0)
        counts[spec.stratum] = j + 1
        yield make_case(name, j, spec, spacing_mm, seed)


def write_case(root: Path, name: str, i: int, spec: CaseSpec, spacing_mm: float, seed: int) -> Path:
    """Generate case i and write its folder atomically (complete or absent)."""
    case = make_case(name, i, spec, spacing_mm, seed)
    cid, meta = case.case_id, case.meta
    return write_verse_case(root, cid, case.image, vertebrae=case.vertebrae, ribs=case.ribs,
                            centroids_mm=case.centroids_mm, meta=meta)


def _write_case_task(task: tuple) -> Path:
    return write_case(*task)


def _complete(folder: Path, cid: str) -> bool:
    files = case_files(folder, cid)
    return all(files[k].exists() for k in ("ct", "vertebrae", "ribs", "meta"))


def cohort(name: str, spacing_mm: float = 2.0, n: int | None = None, seed: int = 0,
           cache: str | Path | None = None, out: str | Path | None = None, progress: bool = True,
           jobs: int = 1) -> list[Path]:
    """Case folders of a cohort, generating the missing ones (into `out`, or the cache by default).

    Existing complete folders are reused; the result lists folders in case order. With ``jobs`` > 1
    the missing cases are generated in that many processes (`vertebra.parallel`); every case is seeded
    by its own key, so the files are the same either way."""
    if spacing_mm <= 0:
        raise InputError(f"spacing must be positive, got {spacing_mm} mm")
    specs = cohort_specs(name, n)
    root = Path(out) if out is not None else cohort_root(name, spacing_mm, seed, cache)
    root.mkdir(parents=True, exist_ok=True)
    folders = []
    per_stratum = {}
    todo = []
    for i, spec in enumerate(specs):
        j = per_stratum.get(spec.stratum, 0) if name == "anomaly_test" else i
        per_stratum[spec.stratum] = j + 1
        cid = case_id(name, j, spec)
        folder = root / f"sub-{cid}"
        folders.append(folder)
        if not _complete(folder, cid):
            todo.append((j, spec))
    parallel_map(_write_case_task, [(root, name, j, spec, spacing_mm, seed) for j, spec in todo], jobs=jobs,
                 desc=f"phantom {name}", progress=progress)
    log.info("cohort %s: %d cases in %s (%d generated)", name, len(folders), root, len(todo))
    return folders


def cli_phantom_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cohort", required=True, choices=sorted(COHORTS), help="which cohort")
    parser.add_argument("--out", default=None, help="output folder (default: the cache)")
    parser.add_argument("--n", type=int, default=None, help="number of scans (per stratum for anomaly_test)")
    parser.add_argument("--spacing", type=float, default=2.0, help="in-plane voxel size in mm (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")


def cli_phantom(args: argparse.Namespace) -> int:
    folders = cohort(args.cohort, spacing_mm=args.spacing, n=args.n, seed=args.seed, out=args.out, jobs=args.jobs)
    print(f"{len(folders)} cases in {folders[0].parent if folders else args.out}")
    return 0
