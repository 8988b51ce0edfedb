"""The render server's log ring buffer: the last records of every logger, for the inspector's ``/log``.

Apart from the inspector because it is attached at process start (``configure_logging``), long before an
inspector exists, and because it knows nothing of HTTP: it is a plain ``logging.Handler``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections import Counter, deque
from typing import Any

LOG_CAPACITY = 1000  # records kept; the page shows the newest 200 of those at the chosen level
LOG_LIMIT_DEFAULT = 200
MAX_LOG_MESSAGE = 8192
LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


@dataclasses.dataclass(frozen=True)
class LogLine:
    seq: int
    time: float  # epoch seconds
    levelno: int
    level: str
    logger: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": round(self.time, 3),
            "level": self.level,
            "logger": self.logger,
            "message": self.message,
        }


class LogBuffer(logging.Handler):
    """A logging handler that keeps the last ``capacity`` records, formatted, for ``/log``.

    Thread-safe: records arrive from any thread (``Handler.handle`` holds the handler's lock around
    :meth:`emit`, and :meth:`lines` takes the same lock).
    """

    def __init__(self, capacity: int = LOG_CAPACITY) -> None:
        super().__init__()
        self.capacity = capacity
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._formatter = logging.Formatter()
        #: records seen since start, per level name (for /metrics)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + self._formatter.formatException(record.exc_info)
            elif record.exc_text:
                message += "\n" + record.exc_text
            if record.stack_info:
                message += "\n" + self._formatter.formatStack(record.stack_info)
        except Exception:  # noqa: BLE001 -- logging's Handler contract: failures go to handleError
            self.handleError(record)
            return
        if len(message) > MAX_LOG_MESSAGE:
            message = message[:MAX_LOG_MESSAGE] + " …"
        self._lines.append(
            LogLine(next(self._seq), record.created, record.levelno, record.levelname, record.name, message)
        )
        self.counts[record.levelname] += 1

    def lines(self, level: int = logging.NOTSET, limit: int = LOG_LIMIT_DEFAULT) -> list[LogLine]:
        """The newest ``limit`` records at or above ``level``, oldest first."""
        self.acquire()
        try:
            kept = list(self._lines)
        finally:
            self.release()
        matching = [line for line in kept if line.levelno >= level]
        return matching[-limit:] if limit > 0 else []


#: the render server's buffer: ``main()`` attaches it to the root logger
LOG_BUFFER = LogBuffer()


def install_log_buffer(logger: logging.Logger | None = None, buffer: LogBuffer = LOG_BUFFER) -> LogBuffer:
    """Attach ``buffer`` to ``logger`` (the root logger by default), once."""
    target = logger if logger is not None else logging.getLogger()
    if buffer not in target.handlers:
        target.addHandler(buffer)
    return buffer
