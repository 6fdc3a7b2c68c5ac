"""Re-run the paper: execute the notebooks with papermill for any set of Table 2 rows, then the book.

The plan, in order: `01_synthetic_cohort`, `02_pseudomasks`, `03_direct_l1` once per row of
`vertebra.experiments.DIRECT_ROWS`, `04_instance` once per row of `INSTANCE_ROWS`, then the pages
that read what the rows wrote: `05_ctc_evaluation`, `06_figure2`, `07_figure3`, `08_table2`, and
`09_real_ct` (which shows its committed results, and recomputes nothing, when the real CT is not fetched).

Each run has a *fingerprint*: a hash of the notebook source, its parameters and the source files of
the `vertebra` package that the notebook imports, directly or through other modules
(`imported_package_files`; for the summary pages also of the result files they read). A change to
`vertebra.instance` thus leaves the direct rows' fingerprints alone. A run whose fingerprint matches
its record and whose executed notebook exists is skipped. The executed notebook
is written to a temporary name and renamed, then the record (provenance, fingerprint, status) is
written the same way, so a run that is killed leaves the last finished state and the next call runs
only what is missing.

Where things go (`Workspace.for_scale`): at the quick and paper scales, results in `results/`,
executed notebooks in `book/executed/<notebook>[-<run_id>].ipynb` (what the committed book renders),
records in `results/reproduce/`, the book in `_build/html`. The smoke scale (CI) writes all of that
under the cache (`<cache>/reproduce-smoke/`), so it never overwrites the committed quick results.
Notebooks that declare a `results_dir` parameter receive the workspace's results folder, and those
that declare `jobs` (the data notebooks) the number of worker processes.

Parallelism: the data notebooks run first, one at a time, each spreading its per-scan work over `jobs`
processes; then the rows run `jobs` at a time, the longest first (by the wall time of their last
record); then the summary pages. Every notebook kernel gets `threads` torch/OpenMP threads (default 1,
as the committed quick runs used: results are bit-identical for a given thread count, and the small
quick models use one core each about as well as two).
"""
from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .book import build_book
from .cache import cache_dir
from .errors import InputError
from .experiments import DIRECT_ROWS, INSTANCE_ROWS, ROWS, get_scale
from .parallel import THREAD_VARIABLES, default_jobs
from .results import provenance, read_table2, write_json_atomic

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(__file__).resolve().parent
DATA_NOTEBOOKS = ("01_synthetic_cohort", "02_pseudomasks")
SUMMARY_NOTEBOOKS = ("05_ctc_evaluation", "06_figure2", "07_figure3", "08_table2", "09_real_ct")
#: result files whose content enters the fingerprint of the summary notebooks. Not results/real_ct/:
#: page 09 writes those itself (from the rows' weights, which are inputs here), so hashing them made every
#: summary page look stale right after a full run
SUMMARY_INPUT_GLOBS = ("table2.csv", "runs/*/*.csv", "runs/*/*.json", "runs/*/*.pt", "benchmarks/*.json")


@dataclass(frozen=True)
class NotebookRun:
    """One execution of one notebook: `notebooks/<notebook>.py` with `parameters`."""

    notebook: str
    parameters: dict = field(default_factory=dict)
    run_id: str | None = None

    @property
    def name(self) -> str:
        return f"{self.notebook}-{self.run_id}" if self.run_id else self.notebook

    @property
    def is_summary(self) -> bool:
        return self.notebook in SUMMARY_NOTEBOOKS


@dataclass(frozen=True)
class Workspace:
    """Where one scale's runs read and write (see the module docstring)."""

    root: Path
    results_dir: Path
    executed_dir: Path
    records_dir: Path
    build_dir: Path

    @classmethod
    def for_scale(cls, scale: str, root: Path = REPO_ROOT, cache: Path | None = None) -> "Workspace":
        get_scale(scale)
        if scale == "smoke":
            base = cache_dir(cache) / "reproduce-smoke"
            return cls(root, base / "results", base / "executed", base / "records", base / "book")
        return cls(root, root / "results", root / "book" / "executed", root / "results" / "reproduce", root)


def plan(rows: str = "all", scale: str = "quick", seed: int = 0) -> list[NotebookRun]:
    """The runs for `rows`: 'all', 'direct', 'instance', or comma-separated run_ids / notebook names.

    A selection always keeps the data notebooks (01, 02) before and the summary notebooks (05-08)
    after it; they are skipped when unchanged.
    """
    get_scale(scale)
    common = {"scale": scale, "seed": seed}
    data = [NotebookRun(nb, dict(common)) for nb in DATA_NOTEBOOKS]
    summary = [NotebookRun(nb, dict(common)) for nb in SUMMARY_NOTEBOOKS]
    row_runs = {r.run_id: NotebookRun(r.notebook, r.papermill_parameters(scale, seed), r.run_id)
                for r in ROWS}
    wanted = [w.strip() for w in rows.split(",") if w.strip()]
    if wanted in (["all"], []):
        chosen = list(row_runs.values())
    else:
        groups = {"direct": [r.run_id for r in DIRECT_ROWS], "instance": [r.run_id for r in INSTANCE_ROWS]}
        known = set(row_runs) | set(groups) | set(DATA_NOTEBOOKS) | set(SUMMARY_NOTEBOOKS)
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise InputError(f"unknown rows {unknown}; use all, direct, instance, a notebook name "
                             f"or run_ids among {sorted(row_runs)}")
        ids = [i for w in wanted for i in groups.get(w, [w]) if i in row_runs]
        chosen = [row_runs[i] for i in dict.fromkeys(ids)]
    return data + chosen + summary


def notebook_parameter_names(source: str) -> set[str]:
    """Names assigned in the first cell tagged `parameters` of a jupytext percent source."""
    import jupytext

    nb = jupytext.reads(source, fmt="py:percent")
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            tree = ast.parse(cell.source)
            return {t.id for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(t, ast.Name)}
    return set()


def _hash_files(digest, files, relative_to: Path) -> None:
    for path in files:
        digest.update(str(path.relative_to(relative_to)).encode() + b"\0" + path.read_bytes() + b"\0")


def _module_file(name: str, package_dir: Path) -> Path | None:
    """The source file of module `name` (dotted, starting with the package's name) or None."""
    parts = name.split(".")
    if parts[0] != package_dir.name:
        return None
    path = package_dir.joinpath(*parts[1:])
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(source: str, module: str = "", is_package: bool = False) -> set[str]:
    """Every dotted name that `source` imports, anywhere in it (functions' lazy imports included);
    `from a import b` yields both `a` and `a.b`, since `b` may be a submodule."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                   # relative: resolve against `module`
                parent = module.split(".") if is_package else module.split(".")[:-1]
                parent = parent[:len(parent) - (node.level - 1)]
                base = ".".join(parent + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def imported_package_files(source: str, package_dir: Path | None = None) -> list[Path]:
    """The package's source files a notebook runs: the modules it imports and, transitively, theirs,
    with the `__init__.py` of every package on the way. A source that does not parse gets every file."""
    package_dir = package_dir or PACKAGE_DIR
    try:
        todo = list(_imported_names(source))
    except SyntaxError:
        return sorted(package_dir.rglob("*.py"))
    found: dict[str, Path] = {}
    while todo:
        parts = todo.pop().split(".")
        for i in range(1, len(parts) + 1):                  # importing a.b.c runs a, a.b and a.b.c
            name = ".".join(parts[:i])
            path = _module_file(name, package_dir)
            if path is None or name in found:
                continue
            found[name] = path
            todo.extend(_imported_names(path.read_text(encoding="utf-8"), name, path.name == "__init__.py"))
    return sorted(set(found.values()))


def fingerprint(run: NotebookRun, source: str, ws: Workspace, threads: int = 1) -> str:
    """sha256 of the notebook source, its parameters, the kernel's thread count, the package sources
    it imports (and, for the summary pages, their inputs)."""
    digest = hashlib.sha256(source.encode())
    digest.update(json.dumps(run.parameters, sort_keys=True, default=str).encode())
    digest.update(f"threads={threads}".encode())
    _hash_files(digest, imported_package_files(source), PACKAGE_DIR)
    if run.is_summary:
        inputs = sorted({p for g in SUMMARY_INPUT_GLOBS for p in ws.results_dir.glob(g) if p.is_file()})
        _hash_files(digest, inputs, ws.results_dir)
    return digest.hexdigest()


def tidy_for_book(nb, source: str | None = None, output: str | None = None) -> None:
    """Prepare an executed notebook for the book.

    papermill's record of the (temporary) input and output files is replaced by the notebook's source
    and executed paths relative to the repository (`source`, `output`), so that no machine path is kept.

    Drops widget state and widget views (the book shows the PNG beside them, see `vertebra.viz`),
    hides the default parameters cell (papermill's injected cell below it holds the values used) and
    folds the injected cell's source behind a toggle. Standard-error streams (progress bars,
    warnings that name local paths) are dropped; the book hides them anyway.
    """
    nb.metadata.pop("widgets", None)
    papermill = nb.metadata.get("papermill")
    if papermill is not None:
        papermill["input_path"], papermill["output_path"] = source, output
    for cell in nb.cells:
        if cell.get("outputs"):
            cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream"
                                                            and o.get("name") == "stderr")]
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")
        for output in cell.get("outputs", []):
            output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
            output.get("data", {}).pop("application/vnd.jupyter.widget-state+json", None)


def _relative_to_root(path: Path, root: Path) -> str:
    """A path inside the repository as seen from its root (so executed notebooks name no machine)."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def why_stale(record: dict | None, fp: str, executed: Path) -> str | None:
    """Why a run must run again, or None when its record is current."""
    if not record:
        return "never run"
    if record.get("status") != "ok":
        return f"last run {record.get('status')}"
    if record.get("fingerprint") != fp:
        return "notebook, parameters, imported code or inputs changed"
    if not executed.exists():
        return "executed notebook missing"
    return None


def stale_runs(rows: str = "all", scale: str = "quick", seed: int = 0, *, ws: Workspace | None = None,
               threads: int = 1) -> list[dict]:
    """What `reproduce` would run now, without running it: each run's name and `why` (None: current).
    The summary pages are judged against the results as they are, before any row runs again."""
    ws = ws or Workspace.for_scale(scale)
    report = []
    for run in plan(rows, scale, seed):
        src = ws.root / "notebooks" / f"{run.notebook}.py"
        if not src.exists():
            report.append({"name": run.name, "why": "notebook missing"})
            continue
        fp = fingerprint(run, src.read_text(encoding="utf-8"), ws, threads)
        report.append({"name": run.name, "why": why_stale(_read_record(ws.records_dir / f"{run.name}.json"), fp,
                                                          ws.executed_dir / f"{run.name}.ipynb")})
    return report


def execute(run: NotebookRun, ws: Workspace, *, force: bool = False,
            notebooks_dir: Path | None = None, jobs: int = 1, threads: int = 1) -> dict:
    """Run one notebook unless its fingerprint is unchanged; return its record (with a `status`).

    status: 'ok' (ran), 'skipped' (unchanged), 'missing' (no source yet), 'failed' (raised).
    """
    import jupytext
    import nbformat
    import papermill as pm

    src = (notebooks_dir or ws.root / "notebooks") / f"{run.notebook}.py"
    record_path = ws.records_dir / f"{run.name}.json"
    out = ws.executed_dir / f"{run.name}.ipynb"
    if not src.exists():
        log.warning("%s: notebook %s does not exist yet; skipped", run.name, src.name)
        return {"name": run.name, "status": "missing"}
    source = src.read_text(encoding="utf-8")
    params = dict(run.parameters)
    names = notebook_parameter_names(source)
    if "results_dir" in names:
        params["results_dir"] = _relative_to_root(ws.results_dir, ws.root)
    if "jobs" in names:
        params["jobs"] = int(jobs)
    fp = fingerprint(run, source, ws, threads)
    old = _read_record(record_path)
    if not force and why_stale(old, fp, out) is None:
        return {**old, "status": "skipped"}

    ws.executed_dir.mkdir(parents=True, exist_ok=True)
    # kernels inherit these: idle OpenMP threads sleep rather than spin (spinning made steps 4-14x slower
    # whenever another job shared the cores), and each kernel uses `threads` threads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(int(threads))
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="vertebra-run-") as tmp:
        tmp_in, tmp_out = Path(tmp) / "in.ipynb", Path(tmp) / "out.ipynb"
        nbformat.write(jupytext.reads(source, fmt="py:percent"), tmp_in)
        record = {"name": run.name, "notebook": run.notebook, "run_id": run.run_id, "fingerprint": fp,
                  "executed_notebook": out.name}
        try:
            _run_papermill(pm, tmp_in, tmp_out, params, ws.root, run.name)
        except Exception as exc:  # papermill raises PapermillExecutionError and kernel errors
            failed = cache_dir() / "failed" / f"{run.name}.ipynb"
            failed.parent.mkdir(parents=True, exist_ok=True)
            if tmp_out.exists():
                shutil.copyfile(tmp_out, failed)
            log.error("%s failed: %s (executed notebook: %s)", run.name, str(exc).strip()[:500], failed)
            record.update(provenance(run.parameters.get("seed", 0), params, started),
                          status="failed", error=str(exc).strip()[-2000:])
            write_json_atomic(record_path, record)
            return record
        nb = nbformat.read(tmp_out, as_version=4)
        tidy_for_book(nb, source=_relative_to_root(src, ws.root), output=_relative_to_root(out, ws.root))
        nbformat.write(nb, tmp_out)
        shutil.move(str(tmp_out), str(out.with_suffix(".ipynb.part")))
        out.with_suffix(".ipynb.part").replace(out)
    record.update(provenance(run.parameters.get("seed", 0), params, started), status="ok")
    write_json_atomic(record_path, record)
    return record


def _run_papermill(pm, tmp_in: Path, tmp_out: Path, params: dict, cwd: Path, name: str, attempts: int = 2) -> None:
    """Execute with papermill; a kernel that fails to start or dies (not an error in a cell) is retried
    once: kernels started at the same moment by parallel rows can race for the same local ports."""
    for attempt in range(attempts):
        try:
            pm.execute_notebook(str(tmp_in), str(tmp_out), parameters=params, kernel_name="python3",
                                cwd=str(cwd), progress_bar=False, log_output=False)
            return
        except pm.PapermillExecutionError:
            raise
        except Exception as exc:
            if attempt + 1 == attempts:
                raise
            log.warning("%s: kernel problem (%s); starting it again", name, str(exc).strip()[:200])
            tmp_out.unlink(missing_ok=True)
            time.sleep(1.0 + attempt)


def l1_accuracy(ws: Workspace, run_id: str | None, scale: str) -> float | None:
    for row in read_table2(ws.results_dir / "table2.csv"):
        if run_id and row.get("run_id") == run_id and row.get("scale") == scale and row.get("l1_acc_test"):
            return float(row["l1_acc_test"])
    return None


#: rows whose weights ship inside the package (what `find-l1` and `label-spine` use without --weights):
#: for `label-spine` the fix (b) walk with fix (d)'s levels and fix (e)'s ordering, the instance row that
#: labelled best on the tuning scans (the paper's own row numbers no test spine right at the quick scale)
PACKAGED_WEIGHT_ROWS = {"unet-l1-hand-22": "direct_l1_quick.pt",
                        "instance-fix-edge-context-ordering": "instance_quick.pt"}


def publish_weights(ws: Workspace) -> list[Path]:
    """Copy the quick-scale weights of `PACKAGED_WEIGHT_ROWS` into `vertebra/weights/` (when changed)."""
    copied = []
    for run_id, name in PACKAGED_WEIGHT_ROWS.items():
        source, target = ws.results_dir / "runs" / run_id / "weights.pt", PACKAGE_DIR / "weights" / name
        if not source.is_file():
            continue
        data = source.read_bytes()
        if not target.is_file() or data != target.read_bytes():
            from .results import write_bytes_atomic
            write_bytes_atomic(target, data)
            copied.append(target)
            log.info("packaged weights %s <- results/runs/%s", name, run_id)
    return copied


def _execute_task(task: tuple) -> dict:
    run, ws, force, jobs, threads = task
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return execute(run, ws, force=force, jobs=jobs, threads=threads)


def _last_wall_time(run: NotebookRun, ws: Workspace) -> float:
    record = _read_record(ws.records_dir / f"{run.name}.json") or {}
    return float(record.get("wall_time_s") or 0.0)


def reproduce(rows: str = "all", scale: str = "quick", seed: int = 0, *, force: bool = False,
              book: bool = True, ws: Workspace | None = None, jobs: int | None = None,
              threads: int = 1) -> list[dict]:
    """Run the plan for `rows` at `scale` (skipping unchanged runs), then build the book.

    The data notebooks run one after the other with `jobs` worker processes each; the rows run `jobs`
    at a time (longest first) in separate processes; the summary pages last (module docstring).
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing

    from tqdm.auto import tqdm

    ws = ws or Workspace.for_scale(scale)
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    runs = plan(rows, scale, seed)
    data = [r for r in runs if r.notebook in DATA_NOTEBOOKS]
    summary = [r for r in runs if r.is_summary]
    row_runs = sorted((r for r in runs if r not in data and r not in summary),
                      key=lambda r: -_last_wall_time(r, ws))
    records: dict[str, dict] = {}
    bar = tqdm(total=len(runs), desc=f"reproduce ({scale}, {jobs} jobs)", unit="run")

    def finished(record: dict) -> None:
        records[record["name"]] = record
        bar.set_postfix_str(f"{record['name']}: {record['status']}")
        bar.update()

    for run in data:
        finished(execute(run, ws, force=force, jobs=jobs, threads=threads))
    if jobs > 1 and len(row_runs) > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(jobs, len(row_runs)), mp_context=context) as pool:
            futures = [pool.submit(_execute_task, (run, ws, force, 1, threads)) for run in row_runs]
            for future in as_completed(futures):
                finished(future.result())
    else:
        for run in row_runs:
            finished(execute(run, ws, force=force, jobs=1, threads=threads))
    if scale == "quick":
        publish_weights(ws)
    for run in summary:
        finished(execute(run, ws, force=force, jobs=jobs, threads=threads))
    bar.close()

    ordered = []
    for run in runs:                      # the summary table lists the runs in plan order
        record = records[run.name]
        record["l1_acc_test"] = l1_accuracy(ws, run.run_id, scale)
        ordered.append(record)
    if book:
        started = time.time()
        try:
            build_book(ws.executed_dir, ws.build_dir, results_dir=ws.results_dir,
                       records_dir=ws.records_dir)
            ordered.append({"name": "book", "status": "ok", "wall_time_s": round(time.time() - started, 1)})
        except RuntimeError as exc:
            log.error("%s", exc)
            ordered.append({"name": "book", "status": "failed", "wall_time_s": round(time.time() - started, 1)})
    return ordered


def summary_table(records: list[dict]) -> str:
    """A plain-text table: run, status, wall time (s), L1 accuracy."""
    lines = [f"{'run':<45} {'status':<8} {'wall s':>8} {'L1 acc':>7}"]
    for r in records:
        wall = r.get("wall_time_s")
        acc = r.get("l1_acc_test")
        lines.append(f"{r['name']:<45} {r['status']:<8} {'' if wall is None else f'{wall:.1f}':>8} "
                     f"{'' if acc is None else f'{acc:.2f}':>7}")
    return "\n".join(lines)


def cli_reproduce_arguments(parser) -> None:
    parser.add_argument("--rows", default="all",
                        help="all | direct | instance | comma-separated run_ids or notebook names")
    parser.add_argument("--scale", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="re-run even when nothing changed")
    parser.add_argument("--no-book", action="store_true", help="do not build the book at the end")
    parser.add_argument("--dry-run", action="store_true",
                        help="list which runs are current and which would run, and why; run nothing")
    parser.add_argument("--jobs", type=int, default=None,
                        help="rows run at once, and worker processes of the data notebooks "
                             "(default: the number of cores)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/OpenMP threads per notebook kernel (default 1, as the committed runs; "
                             "results are bit-identical for a given number)")


def cli_reproduce(args) -> int:
    if getattr(args, "dry_run", False):
        report = stale_runs(args.rows, args.scale, args.seed, threads=args.threads)
        for entry in report:
            why = "would run" if args.force else entry["why"]
            print(f"{entry['name']:<50} {'current' if why is None else why}")
        print(f"{sum(e['why'] is not None or args.force for e in report)} of {len(report)} runs would run")
        return 0
    started = time.time()
    records = reproduce(args.rows, args.scale, args.seed, force=args.force, book=not args.no_book,
                        jobs=args.jobs, threads=args.threads)
    print(summary_table(records))
    print(f"total wall time {time.time() - started:.0f} s")
    missing = [r["name"] for r in records if r["status"] == "missing"]
    if missing:
        print(f"missing notebooks (skipped): {', '.join(missing)}")
    return 1 if any(r["status"] == "failed" for r in records) else 0


def cli_book_arguments(parser) -> None:
    parser.add_argument("--scale", default="quick", choices=("smoke", "quick", "paper"),
                        help="whose executed notebooks to render (smoke: the cache's, into the cache)")


def cli_book(args) -> int:
    ws = Workspace.for_scale(args.scale)
    html = build_book(ws.executed_dir, ws.build_dir, results_dir=ws.results_dir,
                       records_dir=ws.records_dir)
    print(f"book: {html / 'index.html'}")
    return 0
