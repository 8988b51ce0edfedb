"""The domain and the Store protocol load no database code: importing them pulls in no SQLAlchemy (only
``openrr.store.sql`` needs it). Each import runs in a fresh interpreter, as the test suite has loaded
everything already."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["openrr.domain.session", "openrr.domain.conversion", "openrr.domain.account", "openrr.store.base"],
)
def test_no_sqlalchemy_on_import(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
