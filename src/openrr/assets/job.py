"""What one conversion records as it runs: its log lines (with the time since the start), the warnings
that go to ``result.json`` and the timing of each step, for ``info.json``.

Apart from ``openrr.assets.convert`` because every step of a conversion (reading the input, applying the
settings) writes to it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from openrr.assets.settings import ConversionSettings


@dataclass
class Job:
    """The record of one conversion; ``log`` gets every line as it is said."""

    log: Callable[[str], None]
    started: float = field(default_factory=time.perf_counter)
    lines: list[str] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # The conversion's settings, once read: the FBX reader maps materials as fbxAssumeMetallic says.
    settings: ConversionSettings | None = None

    def say(self, message: str, level: str = "INFO") -> None:
        line = f"[{time.perf_counter() - self.started:8.3f}s] {level}: {message}"
        self.lines.append(line)
        self.log(line)

    def warn(self, code: str, title: str, details: str) -> None:
        self.warnings.append({"warning": code, "title": title, "details": details})
        self.say(f"{title}: {details}", "WARNING")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 4)
