"""No URL query string in any log line: SAS tokens, signatures and the like travel in queries.

One mechanism for every logger of a process: ``install()`` wraps the log-record factory, so each record is
redacted when it is made (after the level check, so records nobody will see cost nothing), before any
handler, formatter or in-memory buffer (the render server's inspector log) sees it. That covers openrr's
own lines, uvicorn's access log (whose path argument carries the query), httpx/httpcore request lines, and
tracebacks (formatted now, redacted, and kept as ``exc_text``). Arguments are redacted one by one and keep
their type, since some formatters (uvicorn's) unpack them. ``openrr serve``, every other CLI command, render
servers and converter processes install it at start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

REDACTED = "[redacted]"
# A query string: right after a scheme://... URL or a /path, up to whitespace, a quote, <, > or a fragment.
# "what?" in prose is left alone. Brackets do not end it (they are legal in a query): better a closing
# parenthesis redacted too than a secret half shown.
_QUERY = re.compile(r"(?P<url>(?:\b[A-Za-z][A-Za-z0-9+.-]*://|(?<![\w?])/)[^\s?#\"'<>]*)\?[^\s#\"'<>]+")

_installed: Callable[..., logging.LogRecord] | None = None


def redact(text: str) -> str:
    """``text`` with the query string of every URL or path in it replaced by ``?[redacted]``."""
    if "?" not in text:
        return text
    return _QUERY.sub(lambda m: f"{m['url']}?{REDACTED}", text)


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    args = record.args
    if isinstance(args, tuple):
        record.args = tuple(_redact_arg(a) if not _formats_itself(a) else _redact_object(a) for a in args)
    elif isinstance(args, Mapping):
        record.args = {k: _redact_arg(v) for k, v in args.items()}
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


def _redact_object(value: Any) -> Any:
    """The object itself unless its text holds a query string; then its redacted text."""
    text = str(value)
    redacted = redact(text)
    return value if redacted == text else redacted


def _formats_itself(value: Any) -> bool:
    """An argument whose text is built when the line is formatted (an exception, a URL object): its text is
    taken now so it can be redacted. Numbers and strings keep their type (``%d`` must still work)."""
    return not isinstance(value, str | int | float | bool | bytes | type(None) | tuple | Mapping)


def install() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    global _installed
    if _installed is not None:
        return
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(make(*args, **kwargs))

    _installed = make
    logging.setLogRecordFactory(factory)
