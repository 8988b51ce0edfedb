"""Prometheus metrics of the control plane, in a registry each ``Runtime`` owns (never the global one).

Only aggregate numbers are exported: labels are session statuses and sizes, route templates, HTTP methods and
statuses, and throttle bucket names; never an account or session id.

- ``openrr_sessions{status}``: sessions in the store by status, counted with one query at each scrape. With
  several replicas on one store every replica reports the same totals (aggregate them with ``max``, not
  ``sum``); per-process gauges kept up to date on each change could not see the other replicas' changes.
  If the store cannot be read, the scrape still succeeds and this metric has no samples.
- ``openrr_session_create_to_ready_seconds{size}``: from a session's creation to its render server's ready
  callback, observed by the replica that handled the callback (so it sums across replicas).
- ``openrr_http_request_duration_seconds{method, route, status}``: every HTTP request, by route *template*.
- ``openrr_throttled_requests_total{bucket}``: requests refused with 429 by the ``data-plane`` or ``sts``
  token buckets.

The request histogram is on the hot path of every request (bench/get_throughput.py), so it is not a
``prometheus_client.Histogram`` (three locks an observation) but a lock-free collector: observations and
scrapes both run on the event loop's thread, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from openrr.domain.session import Size, Status

log = logging.getLogger(__name__)

REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
READY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0)
# A scrape must answer within Prometheus's default scrape timeout (10 s) even when the store hangs.
STORE_TIMEOUT_S = 5.0

# Anything else a client sends as a method is counted as "other": label values must stay a bounded set.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class SessionCounter(Protocol):
    async def count_sessions_by_status(self) -> dict[Status, int]: ...


class RequestHistogram:
    """``openrr_http_request_duration_seconds``: a histogram whose observation is a bisect and two adds."""

    name = "openrr_http_request_duration_seconds"
    documentation = "Time from receiving an HTTP request to the end of its response, by route template."

    def __init__(self, buckets: tuple[float, ...] = REQUEST_BUCKETS) -> None:
        self._bounds = buckets
        self._le = [repr(float(b)) for b in buckets] + ["+Inf"]  # as prometheus_client writes them
        # (method, route, status) -> [count in bucket 0, …, count above the last bound, sum of seconds]
        self._series: dict[tuple[str, str, int], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in _METHODS else "other", route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0.0] * (len(self._bounds) + 2)
        series[bisect_left(self._bounds, seconds)] += 1  # bisect_left: a bucket counts values <= its bound
        series[-1] += seconds

    def describe(self) -> Iterable[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=("method", "route", "status"))

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=("method", "route", "status"))
        for (method, route, status), series in sorted(self._series.items()):
            cumulative, buckets = 0.0, []
            for le, n in zip(self._le, series[:-1], strict=True):
                cumulative += n
                buckets.append((le, cumulative))
            family.add_metric((method, route, str(status)), buckets, series[-1])
        yield family


class _SessionsByStatus:
    """``openrr_sessions``: the counts read from the store by ``Metrics.scrape`` just before exposition."""

    name = "openrr_sessions"
    documentation = (
        "Sessions in the store by status (every replica on one store reports the same totals: use max)."
    )

    def __init__(self) -> None:
        self.counts: Mapping[Status, int] | None = None

    def describe(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=("status",))

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=("status",))
        if self.counts is not None:
            for status in Status:
                family.add_metric((status.value,), self.counts.get(status, 0))
        yield family


class Metrics:
    """The control plane's registry and metrics; one per ``Runtime`` (tests create many in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestHistogram()
        self._sessions = _SessionsByStatus()
        self.registry.register(self.requests)
        self.registry.register(self._sessions)
        self.create_to_ready = Histogram(
            "openrr_session_create_to_ready_seconds",
            "Time from creating a session to its render server reporting ready.",
            ("size",),
            buckets=READY_BUCKETS,
            registry=self.registry,
        )
        self.throttled = Counter(
            "openrr_throttled_requests",
            "Requests refused with 429 Too Many Requests, by token bucket (data-plane or sts).",
            ("bucket",),
            registry=self.registry,
        )
        for size in Size:  # every series exists from the start, at 0: rate() needs no first sample
            self.create_to_ready.labels(size.value)
        # Children made now (so they show 0) and resolved once: labels() validates and locks on every call.
        self._throttled = {bucket: self.throttled.labels(bucket) for bucket in ("data-plane", "sts")}

    def observe_ready(self, size: str, seconds: float) -> None:
        self.create_to_ready.labels(size).observe(max(0.0, seconds))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.observe(method, route, status, seconds)
        if status == 429:  # only throttling answers 429 (api/errors.py)
            self._throttled["sts" if route.endswith("/token") else "data-plane"].inc()

    async def scrape(self, store: SessionCounter) -> bytes:
        """The text exposition, with the session counts read from ``store`` now."""
        try:
            counts: Mapping[Status, int] | None = await asyncio.wait_for(
                store.count_sessions_by_status(), STORE_TIMEOUT_S
            )
        except Exception:
            log.warning("metrics: counting sessions in the store failed", exc_info=True)
            counts = None
        # No await between setting the counts and rendering them: a concurrent scrape cannot interleave.
        self._sessions.counts = counts
        return generate_latest(self.registry)
