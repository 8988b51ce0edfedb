"""Pixar's USD modules, imported once for the other modules of this package.

``usd-core`` ships no type information: the modules are bound here as plain ``ModuleType`` objects, so
that what comes out of them is ``Any`` (checked by the code that uses it), and the package's modules need
no mypy exception. Importing this module imports ``pxr``: only the USD reader's own modules do.
"""

from __future__ import annotations

import importlib

Ar = importlib.import_module("pxr.Ar")
Gf = importlib.import_module("pxr.Gf")
Sdf = importlib.import_module("pxr.Sdf")
Tf = importlib.import_module("pxr.Tf")
Usd = importlib.import_module("pxr.Usd")
UsdGeom = importlib.import_module("pxr.UsdGeom")
UsdShade = importlib.import_module("pxr.UsdShade")
