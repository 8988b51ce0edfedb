"""Where the ``embreex`` wheel keeps the Embree library it bundles: the one internal of embreex we use.

``openrr.render.embree`` calls Embree's C API (public and stable) through ``ctypes`` rather than embreex's
Python API (see that module for why), so it needs the shared library itself. auditwheel puts the
libraries a wheel bundles in ``<package>.libs`` beside the package; that layout is the wheel's, not a
documented interface, hence this module and its test in ``tests/unit/test_compat.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class EmbreeUnavailable(RuntimeError):
    """Embree's library could not be found or loaded (the ``render`` extra installs it)."""


def embree_library() -> Path:
    """The path of the ``libembree4`` shared library inside the installed embreex package."""
    spec = importlib.util.find_spec("embreex")
    if spec is None or spec.origin is None:
        raise EmbreeUnavailable("the embreex package is not installed (pip install 'openrr[render]')")
    libs = Path(spec.origin).parent.parent / "embreex.libs"
    found = sorted(libs.glob("libembree4*.so*"))
    if not found:
        raise EmbreeUnavailable(f"no libembree4 in the embreex package ({libs.name} is empty or missing)")
    return found[0]
