"""The render server's idle clock (``settings.idle_stop_s``).

Once armed (when the server is ready), every period without a client that lasts ``limit`` seconds is
reported once; a client coming stops the clock and cancels a report under way, and the clock starts again
when the client leaves. Stopping the server is the control plane's decision, not the clock's. Apart from
the server because it is a small state machine of its own with one timer and one report task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any


class IdleClock:
    """``limit``: seconds without a client before ``report(seconds idle)`` runs (None: never).

    ``busy()`` says whether a client is connected now; ``stopping`` set means nothing is reported any more.
    """

    def __init__(
        self,
        limit: float | None,
        *,
        stopping: asyncio.Event,
        busy: Callable[[], bool],
        report: Callable[[float], Coroutine[Any, Any, None]],
    ) -> None:
        self.limit = limit
        self._stopping = stopping
        self._busy = busy
        self._report = report
        self._armed = False
        self._since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._reporting: asyncio.Task[None] | None = None

    def arm(self) -> None:
        """Once ready: from now on, no client for ``limit`` seconds is reported (once a period)."""
        if self.limit is None:
            return
        self._armed = True
        if not self._busy():
            self.restart()

    def disarm(self) -> None:
        """The server stops: no period runs and none starts again."""
        self._armed = False
        self.stop()

    def restart(self) -> None:
        """No client from now on: a new idle period starts."""
        limit = self.limit
        if not self._armed or limit is None or self._stopping.is_set():
            return
        self.stop()
        self._since = time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(max(0.0, limit), self._due)

    def stop(self) -> None:
        """A client came (or the server stops): this idle period is over, and so is its report."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        report, self._reporting = self._reporting, None
        if report is not None and not report.done():
            report.cancel()

    def _due(self) -> None:
        self._timer = None
        if self._stopping.is_set() or self._busy():
            return
        self._reporting = asyncio.create_task(self._report(time.monotonic() - self._since))
