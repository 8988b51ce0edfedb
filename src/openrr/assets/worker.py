"""One conversion in its own process: ``python -m openrr.assets.worker`` (job JSON on stdin).

The control plane downloads the input, starts this process (``openrr.services.conversion_runner``), and
uploads what it wrote. Running the converter here keeps the control plane safe from what a hostile or
broken model can do to a converter (a crash, a hang, runaway memory): the process is killed on timeout and
its failure is the conversion's, not the service's.

Job: ``{"input": PATH, "outputDir": PATH, "outputName": STEM, "resultFile": PATH, "memoryBytes": N|null}``;
``memoryBytes`` is the process's memory ceiling (RLIMIT_DATA, see ``openrr.memory``), set before the
converter is imported: past it the conversion fails with ``OutOfMemory``. The process writes its
log to stdout, and to ``resultFile`` ``{"ok": true}`` or ``{"ok": false, "code", "message"}`` (a
``ConversionFailed``); any other end (no result file, a non-zero exit) is a crash. It exits by itself when the
process that started it dies, so a killed control plane leaves no converter running.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 2  # the input could not be converted: see the result file
EXIT_ORPHANED = 3
OUT_OF_MEMORY = "OutOfMemory"  # the code openrr.assets.convert gives a MemoryError


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(EXIT_ORPHANED)


def _write_result(path: Path, result: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)


def _ceiling(job: dict[str, Any]) -> str:
    limit = job.get("memoryBytes")
    return f" (the converter's memory ceiling is {limit >> 20} MiB: --converter-memory)" if limit else ""


def run(job: dict[str, Any]) -> int:
    from openrr.assets import ConversionFailed
    from openrr.extras import MissingExtra, needs
    from openrr.log_redaction import redact

    result_file = Path(job["resultFile"])

    def log(line: str) -> None:
        print(redact(line), flush=True)  # no URL query string in a log (openrr.log_redaction)

    try:
        with needs("render", "Converting a model"):
            from openrr.assets.convert import convert_model

        # Settings: convert_model reads <model>.ConversionSettings.json (or conversionSettings.json) itself.
        convert_model(Path(job["input"]), Path(job["outputDir"]), job["outputName"], None, log)
    except MissingExtra as exc:  # the operator's to fix: the API says "internal error", the log says which
        log(f"conversion failed: {exc.message}")
        _write_result(result_file, {"ok": False, "code": "InternalError", "message": exc.message})
        return EXIT_FAILED
    except ConversionFailed as exc:
        message = exc.message
        if exc.code == OUT_OF_MEMORY:
            message += _ceiling(job)
        log(f"conversion failed: {message}")
        _write_result(result_file, {"ok": False, "code": exc.code, "message": message})
        return EXIT_FAILED
    except MemoryError:  # outside the converter's own handling (its imports, say)
        message = "the converter ran out of memory" + _ceiling(job)
        log(f"conversion failed: {message}")
        _write_result(result_file, {"ok": False, "code": OUT_OF_MEMORY, "message": message})
        return EXIT_FAILED
    _write_result(result_file, {"ok": True})
    return EXIT_OK


def main() -> int:
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    job = json.loads(sys.stdin.read())
    from openrr.memory import apply_ceiling

    limit = job.get("memoryBytes")
    apply_ceiling(limit if isinstance(limit, int) and limit > 0 else None)
    return run(job)


if __name__ == "__main__":
    sys.exit(main())
