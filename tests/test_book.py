"""The book builds offline without a warning and its HTML fetches nothing from other hosts."""
from pathlib import Path

import pytest
import yaml

from vertebra.book import build_book, external_loads, placeholder_page, stage_sources, toc_files

ROOT = Path(__file__).resolve().parents[1]


def test_config_keeps_the_book_offline_and_unexecuted():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["execute"]["execute_notebooks"] == "off"
    extensions = config["sphinx"]["config"]["extensions"]
    assert "sphinx_thebe" not in extensions and "sphinx.ext.intersphinx" not in extensions
    assert config["launch_buttons"]["thebe"] is False and not config["launch_buttons"]["binderhub_url"]
    assert "dollarmath" not in config["parse"]["myst_enable_extensions"]


def test_every_toc_page_exists_or_is_an_executed_notebook():
    for entry in toc_files(ROOT / "_toc.yml"):
        if not entry.startswith("book/executed/"):
            assert (ROOT / f"{entry}.md").exists(), entry


def test_staging_fills_placeholders_and_generated_tables(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    stage = tmp_path / "stage"
    missing = stage_sources(executed, stage, tmp_path / "results", tmp_path / "records")
    assert "08_table2" in missing
    assert "vertebra reproduce --rows 08_table2" in (stage / "book/executed/08_table2.md").read_text(encoding="utf-8")
    assert "vertebra:benchmarks" not in (stage / "book/performance.md").read_text(encoding="utf-8")
    assert placeholder_page("03_direct_l1-unet-l1-hand-44").count("--rows unet-l1-hand-44") == 1


def test_external_loads_sees_scripts_links_and_css(tmp_path):
    (tmp_path / "a.html").write_text(
        '<a href="https://example.org/paper">cite</a><img src="img.png">'
        '<script src="https://cdn.example.org/x.js"></script><link rel="stylesheet" href="//fonts.example/f.css">'
        '<script>const U = "https://unpkg.com/thebe";</script>')
    (tmp_path / "s.css").write_text("body { background: url('https://x.example/bg.png') }")
    urls = sorted(u for _, u in external_loads(tmp_path))
    assert urls == ["//fonts.example/f.css", "https://cdn.example.org/x.js", "https://unpkg.com/thebe",
                    "https://x.example/bg.png"]


@pytest.mark.slow
def test_book_builds_without_warnings_and_loads_nothing_external(tmp_path):
    html = build_book(ROOT / "book" / "executed", tmp_path, results_dir=ROOT / "results")
    assert (html / "index.html").exists() and (html / "book" / "executed" / "08_table2.html").exists()
    assert external_loads(html) == []
