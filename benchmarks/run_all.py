"""Run the performance benchmarks and print one table of ratio vs goal.

    python -m benchmarks.run_all [--quick] [--only augment,unet] [--out results/benchmarks]

Every ``benchmarks/bench_<name>.py`` is discovered and its ``run()`` called (with ``quick=`` and
``out_dir=`` when it takes those arguments; a benchmark that draws a plot writes it into ``out_dir``).
Each result is written atomically, with provenance and the machine's load around the run
(``os.getloadavg()`` before and after: on a shared machine the ratios, not the seconds, are what
compare), to ``<out>/<name>.json``. A benchmark that raises is reported and the others still run; the
exit code is 1 if any raised.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import sys
import time
import traceback
from pathlib import Path

BENCHMARKS_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = Path("results") / "benchmarks"

log = logging.getLogger("benchmarks")


def discover(only: list[str] | None = None) -> list[str]:
    """Names of the benchmarks (``bench_<name>.py``), sorted; `only` keeps the named ones."""
    names = sorted(p.stem[len("bench_"):] for p in BENCHMARKS_DIR.glob("bench_*.py"))
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(f"unknown benchmark(s) {unknown}; found {names}")
        names = [n for n in names if n in only]
    return names


def run_one(name: str, quick: bool, out_dir: Path = DEFAULT_OUT) -> dict:
    module = importlib.import_module(f"benchmarks.bench_{name}")
    accepted = inspect.signature(module.run).parameters
    kwargs = {key: value for key, value in (("quick", quick), ("out_dir", out_dir)) if key in accepted}
    return module.run(**kwargs)


def machine_load() -> dict:
    """The load averages (1, 5, 15 min) and the core count; `loaded` when runnable work exceeded the cores."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not available on this platform
        return {"cpu_count": os.cpu_count(), "loadavg_1_5_15": None, "loaded": None}
    return {"cpu_count": os.cpu_count(), "loadavg_1_5_15": load, "loaded": load[0] > (os.cpu_count() or 1)}


def summary_rows(name: str, result: dict) -> list[tuple]:
    """(benchmark, metric, ratio, goal, verdict) for the table. Results without a ``ratios`` list show
    their top-level keys that name a ratio, with a ``target_...`` key as their goal if any, but no
    verdict, since such a key does not say whether larger is better."""
    if "skipped" in result:
        return [(name, "-", None, None, f"skipped: {result['skipped']}")]
    entries = result.get("ratios")
    if entries is None:
        entries = [{"metric": k, "ratio": v, "goal": result.get(f"target_{k}"), "direction": None}
                   for k, v in result.items()
                   if "ratio" in k and not k.startswith("target_") and isinstance(v, (int, float))]
    rows = []
    for e in entries:
        goal, value = e.get("goal"), e.get("ratio")
        higher_is_better = e.get("higher_is_better", True)
        if goal is None or value is None or "direction" in e:
            verdict = ""
        elif (value >= goal) if higher_is_better else (value <= goal):
            verdict = "met"
        else:
            verdict = "MISSED"
        rows.append((name, e["metric"], value, goal, verdict))
    return rows or [(name, "-", None, None, "no ratio reported (see the JSON)")]


def format_table(rows: list[tuple]) -> str:
    header = ("benchmark", "metric", "ratio", "goal", "")
    cells = [header] + [(b, m, "-" if r is None else f"{r:.2f}", "-" if g is None else f"{g:g}", v)
                        for b, m, r, g, v in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(header))]
    lines = ["  ".join(str(c[i]).ljust(widths[i]) for i in range(len(header))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized runs")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for <name>.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from vertebra.results import provenance, write_json_atomic

    from vertebra.results import cpu_description, cpu_label
    cpu = cpu_description()

    rows, failed = [], []
    for name in discover([n for n in args.only.split(",") if n]):
        log.info("benchmark %s ...", name)
        started = time.time()
        load_before = machine_load()
        try:
            result = run_one(name, args.quick, args.out)
        except Exception:  # one broken benchmark must not hide the others
            log.error("benchmark %s failed:\n%s", name, traceback.format_exc())
            failed.append(name)
            rows.append((name, "-", None, None, "FAILED (see the log)"))
            continue
        result = dict(result)
        load_after = machine_load()
        result["machine_load"] = {"before": load_before, "after": load_after,
                                  "loaded": bool(load_before["loaded"] or load_after["loaded"])}
        result["provenance"] = provenance(0, {"benchmark": name, "quick": args.quick}, started)
        # the machine column of the book's table: which CPU, not only its architecture
        result["provenance"]["cpu"] = cpu
        result["provenance"]["device"] = f"{result['provenance']['device']}, {cpu_label(cpu)}"
        write_json_atomic(args.out / f"{name}.json", result)
        log.info("benchmark %s: %.0f s, wrote %s", name, time.time() - started, args.out / f"{name}.json")
        rows += summary_rows(name, result)
    load = machine_load()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, load average {load['loadavg_1_5_15']} on "
          f"{load['cpu_count']} cores{' (loaded: compare ratios, not seconds)' if load['loaded'] else ''}")
    print(format_table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
