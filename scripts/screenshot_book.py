"""Build the book and photograph pages in headless Chromium, with every other host unreachable.

    python scripts/screenshot_book.py [--scale quick] [--out results/screenshots] [PAGE ...]

PAGE is a path under the built HTML (default: the Table 2 page and the Figure 2 page). Needs the
`chromium` browser (Debian package `chromium`). Host names resolve to nothing, so a page that still
looks complete in the screenshot needs nothing from the network.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from vertebra.book import build_book, external_loads
from vertebra.reproduce import Workspace

DEFAULT_PAGES = ("book/executed/08_table2.html", "book/executed/06_figure2.html")


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("no Chromium found: install the Debian package `chromium`")


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 1800) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
                        f"--window-size={width},{height}", f"--screenshot={png}", html.as_uri()],
                       check=True, capture_output=True, timeout=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", default=list(DEFAULT_PAGES))
    parser.add_argument("--scale", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--out", type=Path, default=Path("results/screenshots"))
    args = parser.parse_args(argv)

    ws = Workspace.for_scale(args.scale)
    with tempfile.TemporaryDirectory(prefix="vertebra-book-") as tmp:
        html = build_book(ws.executed_dir, Path(tmp), results_dir=ws.results_dir, records_dir=ws.records_dir)
        loads = external_loads(html)
        if loads:
            print(f"warning: the book fetches from other hosts: {loads[:5]}")
        args.out.mkdir(parents=True, exist_ok=True)
        for page in args.pages:
            png = args.out / (Path(page).stem + ".png")
            screenshot(html / page, png.resolve())
            print(f"{page} -> {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
