"""The optional extras of the openrr package, and the error that names the one to install.

``pip install openrr`` is the control plane alone; ``openrr[render]`` (render servers, the converter, the
streaming client), ``openrr[ray]`` (the Ray host) and ``openrr[azure]`` (Azure Blob Storage containers) add
the heavy libraries. Code that imports one of them lazily does it inside ``needs(...)``, so that a machine
without the extra gets ``MissingExtra`` — an ``OpenRRError`` that the API and the CLI already show as a
message — and not an ImportError traceback. It is a module of its own, not part of ``errors``, because it
knows the packaging, not the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from openrr.errors import OpenRRError

# The top-level modules each extra brings (pyproject.toml's [project.optional-dependencies]).
MODULES: dict[str, frozenset[str]] = {
    "render": frozenset({"numpy", "moderngl", "trimesh", "PIL", "av", "aiortc", "DracoPy", "meshoptimizer"}),
    "ray": frozenset({"ray"}),
    "azure": frozenset({"azure"}),
    # the libraries of openrr.assets.readers' formats (each reader names its own)
    "formats": frozenset({"laspy", "lazrs", "pye57", "pyassimp", "OCP", "ifcopenshell", "pxr"}),
}


class MissingExtra(OpenRRError):
    """What was asked for needs an optional extra that is not installed (HTTP 500: the operator's to fix)."""

    def __init__(self, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs openrr's optional dependencies '{extra}', which are not installed here: "
            f"pip install 'openrr[{extra}]'"
        )
        self.extra = extra


@contextmanager
def needs(extra: str, purpose: str) -> Iterator[None]:
    """Turns a failed import of one of ``extra``'s modules in the block into ``MissingExtra``.

    Any other ImportError (a module of openrr itself, a broken installation of something else) passes through
    unchanged: only a missing extra is the operator's choice.
    """
    try:
        yield
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in MODULES[extra]:
            raise
        raise MissingExtra(extra, purpose) from exc
