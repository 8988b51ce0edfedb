"""What converts one model: the ``Runner`` seam, and the real one, a converter process per conversion.

Apart from the queue and the job because it is the one place the control plane starts a converter
(``python -m openrr.assets.worker``, see its docstring) and reads back its result; tests put a fake runner in
its place (``Runtime.open(conversion_runner=…)``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Protocol

from openrr.child_env import child_env
from openrr.domain.conversion import CHECK_LOGS, INTERNAL_ERROR, PROCESS_FAILED

WORKER_MODULE = "openrr.assets.worker"


class JobFailed(Exception):
    """A conversion failed: ``code`` and ``message`` are what the API shows; the log says more."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Runner(Protocol):
    async def __call__(
        self, model: Path, output_dir: Path, name: str, log_file: Path, timeout: float
    ) -> None:
        """Convert ``model`` into ``output_dir`` (``name``.arrAsset and the rest), appending to ``log_file``.

        Raises JobFailed.
        """


class SubprocessRunner:
    """Runs ``openrr.assets.worker`` in a child process (see its docstring), under a memory ceiling of
    ``memory_bytes`` when given."""

    def __init__(self, memory_bytes: int | None = None) -> None:
        self.memory_bytes = memory_bytes

    async def __call__(
        self, model: Path, output_dir: Path, name: str, log_file: Path, timeout: float
    ) -> None:
        result_file = output_dir.parent / "worker-result.json"
        job = {
            "input": str(model),
            "outputDir": str(output_dir),
            "outputName": name,
            "resultFile": str(result_file),
            "memoryBytes": self.memory_bytes,
        }
        # The converter handles untrusted files: it gets none of the service's secrets (openrr.child_env).
        env = child_env()
        out = await asyncio.to_thread(log_file.open, "ab")
        with out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                WORKER_MODULE,
                stdin=asyncio.subprocess.PIPE,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=output_dir.parent,
            )
        try:
            await asyncio.wait_for(proc.communicate(json.dumps(job).encode()), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise JobFailed(
                PROCESS_FAILED, f"The conversion did not finish within {timeout:g} s. {CHECK_LOGS}"
            ) from None
        except BaseException:  # cancelled (shutdown): the converter must not outlive its job
            if proc.returncode is None:
                proc.kill()
                await asyncio.shield(proc.wait())
            raise
        _check_outcome(proc.returncode, await asyncio.to_thread(_read_result, result_file))


def _read_result(result_file: Path) -> object:
    try:
        return json.loads(result_file.read_text())
    except (OSError, ValueError):
        return None


def _check_outcome(returncode: int | None, result: object) -> None:
    """Return if the converter succeeded; else raise JobFailed with what the API shows."""
    if returncode == 0 and isinstance(result, dict) and result.get("ok"):
        return
    if isinstance(result, dict) and result.get("ok") is False:
        if result.get("code") == "InternalError":  # the converter's own bug, not the input's fault
            raise JobFailed(INTERNAL_ERROR, f"Unexpected internal server error encountered. {CHECK_LOGS}")
        if result.get("code") == "OutOfMemory":
            raise JobFailed(PROCESS_FAILED, f"{result.get('message')}. {CHECK_LOGS}")
        raise JobFailed(PROCESS_FAILED, f"Invalid input provided: {result.get('message')}. {CHECK_LOGS}")
    raise JobFailed(
        PROCESS_FAILED,
        f"The converter stopped unexpectedly (exit status {returncode}). {CHECK_LOGS}",
    )
