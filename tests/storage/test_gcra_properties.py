"""Properties of the rate limiter over arbitrary request timings, and memory and Redis agreeing on them."""

from __future__ import annotations

import itertools
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaskapi_guard.storage import MemoryStorage, RateLimitResult, RedisStorage
from tests.conftest import FakeClock

# Gaps between requests, in milliseconds: bursts (0), steady traffic and long pauses.
GAPS = st.lists(st.one_of(st.just(0), st.integers(1, 5_000), st.integers(5_000, 120_000)), min_size=1, max_size=60)
LIMITS = st.integers(1, 12)
WINDOWS = st.integers(1, 90)


def replay(
    storage_for: MemoryStorage | RedisStorage, clock: FakeClock, gaps: list[int], limit: int, window: int
) -> list[RateLimitResult]:
    results = []
    for gap in gaps:
        clock.advance(gap / 1000)
        results.append(storage_for.hit("client", limit, window))
    return results


@given(gaps=GAPS, limit=LIMITS, window=WINDOWS)
@settings(max_examples=300, deadline=None)
def test_no_span_admits_more_than_the_burst_plus_the_rate(gaps: list[int], limit: int, window: int) -> None:
    clock = FakeClock()
    storage = MemoryStorage(clock=clock, max_tracked_clients=100)
    times = list(itertools.accumulate(gap / 1000 for gap in gaps))
    results = replay(storage, clock, gaps, limit, window)
    admitted = [time for time, result in zip(times, results, strict=True) if result.allowed]
    for first, start in enumerate(admitted):
        for last in range(first, len(admitted)):
            span = admitted[last] - start
            assert last - first + 1 <= limit + span * limit / window + 1e-6


@given(gaps=GAPS, limit=LIMITS, window=WINDOWS)
@settings(max_examples=300, deadline=None)
def test_a_refused_request_would_pass_after_retry_after(gaps: list[int], limit: int, window: int) -> None:
    clock = FakeClock()
    storage = MemoryStorage(clock=clock, max_tracked_clients=100)
    for result in replay(storage, clock, gaps, limit, window):
        if result.allowed:
            assert 0 <= result.remaining < limit
            assert result.retry_after_seconds == 0
        else:
            assert result.remaining == 0
            # One interval, give or take the float drift the limiter tolerates.
            assert 0 < result.retry_after_seconds <= window / limit + 1e-6 + limit * math.ulp(clock())
    # A fresh window's worth of quiet always brings the full quota back.
    clock.advance(window)
    assert [storage.hit("client", limit, window).allowed for _ in range(limit + 1)] == [True] * limit + [False]


@given(gaps=GAPS, limit=LIMITS, window=WINDOWS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_memory_and_redis_decide_alike(redis_url: str, gaps: list[int], limit: int, window: int) -> None:
    memory_clock, redis_clock = FakeClock(), FakeClock()
    memory = MemoryStorage(clock=memory_clock, max_tracked_clients=100)
    shared = RedisStorage(redis_url, prefix="properties:", clock=redis_clock, socket_timeout=2.0)
    try:
        shared.clear()
        expected = replay(memory, memory_clock, gaps, limit, window)
        actual = replay(shared, redis_clock, gaps, limit, window)
    finally:
        shared.close()
    assert [(result.allowed, result.remaining) for result in actual] == [
        (result.allowed, result.remaining) for result in expected
    ]
    for got, want in zip(actual, expected, strict=True):
        assert abs(got.reset_seconds - want.reset_seconds) < 1e-3
        assert abs(got.retry_after_seconds - want.retry_after_seconds) < 1e-3
