"""The inspector's ``/metrics``: the render server's figures as Prometheus metrics.

A registry of this server's own (never prometheus_client's global one) with the process collector, two
histograms of frame times fed by the tracer, and a collector that reads the server's figures at scrape
time. Numbers only: no names, URLs, log text or client state such as whether a client is connected
(``/metrics`` is open, because Prometheus scrapers cannot present a per-session token). Apart from the
routes because it is the one piece built on prometheus_client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from openrr.render.inspector_status import InspectedServer
from openrr.render.logbuffer import LEVELS
from openrr.render.tracing import Tracer

_SECONDS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class InspectorMetrics:
    """The metrics registry of one render server.

    ``latest_sample`` gives the newest history sample ({} before the first) and ``log_counts`` the log
    records seen per level name; both are called at every scrape, so they may follow a replaced buffer.
    """

    def __init__(
        self,
        server: InspectedServer,
        tracer: Tracer,
        *,
        latest_sample: Callable[[], Mapping[str, Any]],
        log_counts: Callable[[], Mapping[str, int]],
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._render_seconds = Histogram(
            "openrr_render_frame_render_seconds",
            "Time to render a frame on the GL thread (readback included).",
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self._encode_seconds = Histogram(
            "openrr_render_frame_encode_seconds",
            "Time to convert and encode a frame on the encoder thread.",
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ServerCollector(server, tracer, latest_sample, log_counts))

    def observe(self, render_ms: float | None, encode_ms: float) -> None:
        """One frame sent (a ``tracing.FrameObserver``): its render time if it was rendered, its encode."""
        if render_ms is not None:
            self._render_seconds.observe(render_ms / 1000)
        self._encode_seconds.observe(encode_ms / 1000)


class _ServerCollector:
    """The render server's figures at scrape time, as Prometheus metrics (a prometheus_client collector)."""

    def __init__(
        self,
        server: InspectedServer,
        tracer: Tracer,
        latest_sample: Callable[[], Mapping[str, Any]],
        log_counts: Callable[[], Mapping[str, int]],
    ) -> None:
        self.server = server
        self.tracer = tracer
        self.latest_sample = latest_sample
        self.log_counts = log_counts

    def collect(self) -> Iterator[Metric]:
        server, pipeline = self.server, self.server.pipeline
        totals = self.tracer.totals
        client = server.client
        latest = self.latest_sample()
        stats = pipeline.stats()

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"openrr_render_{name}", doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"openrr_render_{name}", doc, value=value)

        yield gauge(
            "uptime_seconds", "Seconds since the render server started.", time.monotonic() - server.started
        )
        # Whether a client is connected, and how many came, is client state: /stats and /history (token).
        yield counter("frames_rendered", "Frames rendered.", pipeline.frames_rendered)
        yield counter("frames_sent", "Video frames encoded and sent.", totals.frames_sent)
        yield counter("keyframes_sent", "Keyframes encoded and sent.", totals.keyframes)
        yield counter("video_sent_bytes", "Encoded video bytes sent.", totals.bytes_sent)
        yield gauge("fps", "Frames sent per second (last sample).", latest.get("fps") or 0.0)
        yield gauge(
            "bitrate_bits_per_second", "Video bits sent per second (last sample).", latest.get("bitrate") or 0
        )
        target = client.track.stats().target_bitrate if client is not None else 0
        yield gauge("target_bitrate_bits_per_second", "The encoder's target bitrate (0: no client).", target)
        yield gauge("polygons", "Polygons in the scene.", stats["polygons"])
        yield gauge("polygons_drawn", "Polygons drawn in the last frame.", stats["polygonsDrawn"])
        yield gauge(
            "polygon_limit_exceeded",
            "1 while the scene is over the size's polygon limit.",
            int(stats["limitExceeded"]),
        )
        yield gauge("models_loaded", "Models loaded.", len(pipeline.models))
        yield gauge("scene_nodes", "Nodes in the scene.", len(pipeline.scene))
        yield gauge("width_pixels", "Video width.", pipeline.width)
        yield gauge("height_pixels", "Video height.", pipeline.height)
        records = CounterMetricFamily("openrr_render_log_records", "Log records, by level.", labels=["level"])
        counts = self.log_counts()
        for level in LEVELS:
            records.add_metric([level.lower()], counts.get(level, 0))
        yield records
