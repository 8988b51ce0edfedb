"""The shape of the source tree that the README's architecture section promises, checked.

Layering and cycles are import-linter's job (``[tool.importlinter]`` in pyproject.toml, run by
``scripts/test``); function complexity is ruff's (C90). What neither checks is size: a module that holds
several ideas grows past a few hundred lines long before anyone notices, so the limit is written here.
"""

from __future__ import annotations

from pathlib import Path

import openrr

SRC = Path(openrr.__file__).parent
MAX_LINES = 500


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(SRC.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(SRC.rglob("*.py"))
    }
    over = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines (split them along their seams): {over}"


def test_every_package_says_what_it_holds() -> None:
    bare = [
        str(init.relative_to(SRC.parent))
        for init in sorted(SRC.rglob("__init__.py"))
        if "static" not in init.parts and not init.read_text(encoding="utf-8").lstrip().startswith('"""')
    ]
    assert not bare, f"packages without a docstring saying what they hold: {bare}"
