"""The environment of the processes openrr starts (render servers, converters): an allow-list.

A child never inherits the control plane's environment: that holds the store URL with its password, storage
keys, the TURN credential, a cloud provider's tokens and whatever else the operator exported. Render servers
load models from URLs clients choose and converters parse files clients upload; either may be made to run
code, and an inherited secret would be theirs. A child gets only what the list below names (what Python,
the locale, GL/EGL/Mesa, CUDA and the BLAS/OpenMP thread pools read), plus what openrr itself passes: the
``RenderSpec`` (``SPEC_ENV``), whose ``settings`` carry the one secret a render server needs, the TURN
credential for its own ICE. HTTP(S) proxy variables are left out on purpose (they may carry credentials).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Exact names a child keeps.
ALLOWED_NAMES = frozenset(
    {
        # process basics and Python
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "TZ",
        "LANG",
        "LANGUAGE",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONFAULTHANDLER",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        # TLS trust (a render server calls the control plane back over HTTPS)
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        # GL: a display for GLX, and the threads of Mesa's llvmpipe
        "DISPLAY",
        "XDG_RUNTIME_DIR",
        "LP_NUM_THREADS",
        # CPU thread pools of numpy and friends
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    }
)
# Name prefixes a child keeps: locale, GL/EGL/Mesa/Vulkan, NVIDIA and CUDA, BLAS.
ALLOWED_PREFIXES = (
    "LC_",
    "MESA_",
    "LIBGL_",
    "EGL_",
    "GALLIUM_",
    "__GLX_",
    "__EGL_",
    "__NV_",
    "VK_",
    "NVIDIA_",
    "CUDA_",
    "OPENBLAS_",
)


def allowed(name: str) -> bool:
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


def child_env(
    extra: Mapping[str, str] | None = None, *, source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allowed variables of ``source`` (default: this process's environment), then ``extra``."""
    env = {name: value for name, value in (os.environ if source is None else source).items() if allowed(name)}
    env.update(extra or {})
    env.setdefault("PYTHONUNBUFFERED", "1")  # a child's log lines reach its log file as they are written
    return env
