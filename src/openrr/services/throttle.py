"""Token buckets: per account for the STS and the data plane, per client address for failed key checks.

Each bucket holds ``burst`` tokens and refills at ``rate`` tokens per second; a request takes one token or is
refused with the seconds until one is available (the 429's Retry-After). Buckets live in this process: with
several replicas behind a balancer each replica throttles on its own, which only ever makes limits looser.
The defaults let a client poll every second forever, well above the SDK's 5-second cadence.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from openrr.domain.clock import Clock
from openrr.errors import Throttled


class TokenBuckets:
    def __init__(
        self,
        clock: Clock,
        *,
        rate: float,
        burst: int,
        what: str,
        whose: str = "for this account",
        max_keys: int = 100_000,
    ) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self._what = what
        self._whose = whose
        self._max_keys = max_keys
        # key -> (tokens, last refill timestamp); ordered by last use so the idlest key is evicted first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> None:
        """Consume one token for ``key`` or raise Throttled with a whole-second Retry-After (≥ 1)."""
        self._use(key, cost=1.0)

    def check(self, key: str) -> None:
        """Raise Throttled, as ``take`` would, if ``key`` has no token left; consume nothing."""
        self._use(key, cost=0.0)

    def _use(self, key: str, cost: float) -> None:
        if not self.enabled:
            return
        now = self._clock.now().timestamp()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - cost, now)
            self._evict()
            return
        self._buckets[key] = (tokens, now)
        retry_after = max(1, math.ceil((1.0 - tokens) / self.rate))
        raise Throttled(
            f"Too many {self._what} requests {self._whose}; retry after {retry_after} s.",
            retry_after=retry_after,
        )

    def _evict(self) -> None:
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
