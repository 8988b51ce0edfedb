"""Token buckets: bursts, refill, Retry-After, and the SDK's 5-second polling never throttled."""

from __future__ import annotations

import pytest

from openrr.domain.clock import ManualClock
from openrr.errors import Throttled
from openrr.services.throttle import TokenBuckets


def test_burst_then_retry_after(clock: ManualClock) -> None:
    buckets = TokenBuckets(clock, rate=0.5, burst=3, what="test")
    for _ in range(3):
        buckets.take("a")
    with pytest.raises(Throttled) as info:
        buckets.take("a")
    assert info.value.retry_after == 2
    buckets.take("b")  # accounts do not share buckets
    clock.advance(2)
    buckets.take("a")


def test_default_limits_never_throttle_a_client_polling_every_second(clock: ManualClock) -> None:
    # The service defaults (2/s, burst 60): the SDK polls every 5 s, the CLI at most every second.
    buckets = TokenBuckets(clock, rate=2.0, burst=60, what="test")
    for _ in range(10_000):
        buckets.take("a")
        clock.advance(1)


def test_disabled_and_eviction(clock: ManualClock) -> None:
    off = TokenBuckets(clock, rate=0, burst=1, what="test")
    for _ in range(100):
        off.take("a")
    small = TokenBuckets(clock, rate=1, burst=1, what="test", max_keys=2)
    small.take("a")
    small.take("b")
    small.take("c")  # evicts "a", the least recently used
    small.take("a")
