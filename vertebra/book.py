"""Build the book (Jupyter Book 1) from the chapters in `book/` and a folder of executed notebooks.

The book never executes a notebook: `vertebra.reproduce` does that and writes the executed copies;
the build renders them as they are (`execute_notebooks: "off"` in `_config.yml`).

The build works on a staged copy of the sources (`<out>/_build/source`): `_config.yml`, `_toc.yml`,
the chapters of `book/`, and the executed notebooks of the chosen scale. A page the table of contents
names but that has not been executed yet becomes a short placeholder saying how to run it, so the book
builds at any stage with `-W -n --keep-going` (every Sphinx warning is an error). Tables that come
from result files are written into the staged chapters where a marker comment stands:
`<!-- vertebra:benchmarks -->` (results/benchmarks/*.json, flattened), `<!-- vertebra:benchmark-ratios -->`
(when and where each benchmark ran, and its ratios against their goals), `<!-- vertebra:benchmark-plots -->`
(the PNGs the benchmarks wrote, copied beside the page) and `<!-- vertebra:runs -->` (the run records of
`vertebra reproduce`).
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
EXECUTED = "book/executed"


def toc_files(toc_path: Path) -> list[str]:
    """Every `file:` (and `root:`) entry of a Jupyter Book `_toc.yml`, in order."""
    import yaml

    found = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node:
                    found.append(str(node[key]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(toc_path.read_text(encoding="utf-8")))
    return found


def placeholder_page(name: str) -> str:
    notebook, _, run_id = name.partition("-")
    rows = run_id or notebook
    return (f"# {name.replace('_', ' ')}\n\nThis page has not been executed at this scale yet. "
            f"Run it with\n\n```bash\nvertebra reproduce --rows {rows}\n```\n\n"
            f"and build the book again (`vertebra book`).\n")


def _markdown_table(frame) -> str:
    if frame is None or frame.empty:
        return "*No results yet.*"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.tolist()]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def runs_table(records_dir: Path):
    """The run records of `vertebra reproduce` as a DataFrame: run, status, wall time, peak memory."""
    import pandas as pd

    rows = []
    for path in sorted(Path(records_dir).glob("*.json")):
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
        rows.append({"run": r.get("name", path.stem), "status": r.get("status"),
                     "wall_time_s": r.get("wall_time_s"), "peak_memory_mb": r.get("peak_memory_mb"),
                     "device": r.get("device"), "git_commit": str(r.get("git_commit") or "")[:12]})
    return pd.DataFrame(rows)


def _benchmark_results(results_dir: Path) -> list[tuple[str, dict]]:
    found = []
    for path in sorted(Path(results_dir).glob("benchmarks/*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            found.append((path.stem, data))
    return found


def _goal_and_verdict(entry: dict) -> tuple[str, str]:
    """("≤ 1.5", "met") for one entry of a benchmark's ``ratios`` (the contract of `benchmarks`)."""
    goal, value, higher = entry.get("goal"), entry.get("ratio"), entry.get("higher_is_better", True)
    if goal is None or value is None:
        return "-", ""
    met = value >= goal if higher else value <= goal
    return f"{'≥' if higher else '≤'} {goal:g}", "met" if met else "**missed**"


def benchmark_ratios_markdown(results_dir: Path) -> str:
    """Two tables: each benchmark's date, machine and load; then every ratio with its goal and verdict."""
    results = _benchmark_results(results_dir)
    if not results:
        return "*No benchmark results yet: run `make bench`.*"
    runs = ["| benchmark | run (UTC) | machine | load average (1, 5, 15 min) | size |", "|---|---|---|---|---|"]
    ratios = ["| benchmark | metric | ratio | goal | verdict | meaning |", "|---|---|---|---|---|---|"]
    for name, data in results:
        prov = data.get("provenance") or {}
        load = ((data.get("machine_load") or {}).get("before") or {})
        cores = f" on {load['cpu_count']} cores" if load.get("cpu_count") else ""
        loadavg = f"{load['loadavg_1_5_15']}{cores}" if load.get("loadavg_1_5_15") else "not recorded"
        size = "quick" if data.get("quick") else ("full" if "quick" in data else "-")
        runs.append(f"| {name} | {prov.get('started_utc', '-')} | {prov.get('device', '-')} | {loadavg} | {size} |")
        if "skipped" in data:
            ratios.append(f"| {name} | - | - | - | skipped | {data['skipped']} |")
            continue
        if not data.get("ratios"):
            ratios.append(f"| {name} | - | - | - | | no ratios in this result (run `make bench` again) |")
        for entry in data.get("ratios") or []:
            goal, verdict = _goal_and_verdict(entry)
            meaning = str(entry.get("meaning", "")).replace("|", "/")
            ratios.append(f"| {name} | {entry.get('metric')} | {entry.get('ratio', float('nan')):.3g} | {goal} "
                          f"| {verdict} | {meaning} |")
    return "\n".join(runs) + "\n\n" + "\n".join(ratios)


def benchmark_plots_markdown(results_dir: Path, page_dir: Path) -> str:
    """Copy results/benchmarks/*.png to ``page_dir/benchmarks/`` and return one image line for each."""
    plots = sorted(Path(results_dir).glob("benchmarks/*.png"))
    if not plots:
        return "*No benchmark plots yet: run `make bench`.*"
    (page_dir / "benchmarks").mkdir(parents=True, exist_ok=True)
    lines = []
    for png in plots:
        shutil.copy2(png, page_dir / "benchmarks" / png.name)
        lines.append(f"![{png.stem.replace('_', ' ')}](benchmarks/{png.name})")
    return "\n\n".join(lines)


def fill_generated_tables(stage: Path, results_dir: Path, records_dir: Path) -> None:
    from .tables import benchmarks_table

    tables = {"<!-- vertebra:benchmarks -->": lambda: _markdown_table(benchmarks_table(results_dir)),
              "<!-- vertebra:benchmark-ratios -->": lambda: benchmark_ratios_markdown(results_dir),
              "<!-- vertebra:benchmark-plots -->": lambda: benchmark_plots_markdown(results_dir, stage / "book"),
              "<!-- vertebra:runs -->": lambda: _markdown_table(runs_table(records_dir))}
    for page in (stage / "book").rglob("*.md"):
        text = page.read_text(encoding="utf-8")
        for marker, make in tables.items():
            if marker in text:
                text = text.replace(marker, make())
        page.write_text(text, encoding="utf-8")


def stage_sources(executed_dir: Path, stage: Path, results_dir: Path, records_dir: Path,
                  root: Path = REPO_ROOT) -> list[str]:
    """Copy the book's sources and the executed notebooks into `stage`; return placeholder names."""
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, stage / name)
    shutil.copytree(root / "book", stage / "book", ignore=shutil.ignore_patterns("executed", "_build"))
    (stage / EXECUTED).mkdir(parents=True, exist_ok=True)
    for nb in sorted(Path(executed_dir).glob("*.ipynb")):
        shutil.copy2(nb, stage / EXECUTED / nb.name)
    placeholders = []
    for entry in toc_files(stage / "_toc.yml"):
        if entry.startswith(EXECUTED + "/") and not (stage / f"{entry}.ipynb").exists():
            (stage / f"{entry}.md").write_text(placeholder_page(Path(entry).name), encoding="utf-8")
            placeholders.append(Path(entry).name)
    fill_generated_tables(stage, results_dir, records_dir)
    return placeholders


def build_book(executed_dir: str | Path, out_dir: str | Path = REPO_ROOT, *,
               results_dir: str | Path | None = None, records_dir: str | Path | None = None,
               root: Path = REPO_ROOT) -> Path:
    """Render the book into `<out_dir>/_build/html` and return that folder.

    Raises RuntimeError (with the build's last lines) when Jupyter Book reports any warning.
    """
    out_dir = Path(out_dir)
    results_dir = Path(results_dir) if results_dir is not None else root / "results"
    records_dir = Path(records_dir) if records_dir is not None else results_dir / "reproduce"
    stage = out_dir / "_build" / "source"
    placeholders = stage_sources(Path(executed_dir), stage, results_dir, records_dir, root)
    if placeholders:
        log.warning("book: %d pages not executed yet (placeholders): %s", len(placeholders),
                    ", ".join(placeholders))
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter_book.cli.main"]
    cmd += ["build", str(stage), "--path-output", str(out_dir), "--all", "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"the book build failed (exit {proc.returncode}):\n{tail}")
    return out_dir / "_build" / "html"


def external_loads(html_dir: str | Path) -> list[tuple[str, str]]:
    """(page, url) for everything the built HTML would fetch from another host.

    Counted as a fetch: any `src=`, a `<link href>`, a CSS `url(...)` and any http(s) URL inside a
    `<script>`. Plain `<a href>` links (citations, documentation) are not fetches and are allowed.
    """
    import re
    from html.parser import HTMLParser

    remote = re.compile(r"^(https?:)?//", re.I)
    found: list[tuple[str, str]] = []

    class Scan(HTMLParser):
        in_script = False

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            for key in ("src", "data-src", "poster"):
                if attrs.get(key) and remote.match(attrs[key]):
                    found.append((self.page, attrs[key]))
            if tag == "link" and attrs.get("href") and remote.match(attrs["href"]):
                found.append((self.page, attrs["href"]))
            self.in_script = tag == "script"

        def handle_endtag(self, tag):
            self.in_script = False

        def handle_data(self, data):
            if self.in_script:
                found.extend((self.page, u) for u in re.findall(r"https?://[^\s\"'`)]+", data))

    html_dir = Path(html_dir)
    for page in sorted(html_dir.rglob("*.html")):
        scan = Scan()
        scan.page = str(page.relative_to(html_dir))
        scan.feed(page.read_text(errors="replace"))
    for css in sorted(html_dir.rglob("*.css")):
        for url in re.findall(r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)", css.read_text(errors="replace")):
            found.append((str(css.relative_to(html_dir)), url))
    return found
