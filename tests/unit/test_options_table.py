"""The README's table of ``openrr serve`` options is what the settings' declarations say."""

from __future__ import annotations

from pathlib import Path

from openrr.config.reference import BEGIN, END, rewrite

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_matches_the_settings() -> None:
    readme = README.read_text(encoding="utf-8")
    assert BEGIN in readme
    assert END in readme
    assert rewrite(readme) == readme, "the README's options table is stale: run scripts/options-table"
