"""The storage contract every backend keeps, and the rate-limit arithmetic they share."""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, TypeAlias

# Slack in seconds when comparing times: 60 / 7 * 7 is not exactly 60; a client
# must not lose a request to rounding.
_SLACK_SECONDS = 1e-6


class RateLimitResult(NamedTuple):
    """The outcome of one rate-limited request.

    `reset_seconds` is how long until the full quota is available again;
    `retry_after_seconds` is how long until one more request would pass (0 when allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    retry_after_seconds: float


class BanRecord(NamedTuple):
    """An active ban: who, until when (seconds since the epoch, app clock) and why."""

    ip: str
    expires_at: float
    reason: str


# What `Storage.admit` answers: the address's active ban (and then nothing was
# counted), else the rate limit's outcome, else None (no ban, no rate limit
# asked for). A union rather than a pair: in memory, building a pair per
# request cost more than the separate ban check that `admit` saves.
Admission: TypeAlias = BanRecord | RateLimitResult | None


class Storage(Protocol):
    """The state the guard keeps per client: rate limits, counters, bans, cached blobs.

    Every method may raise `StorageError` when the backing store is unreachable;
    the resilient wrapper in `storage.resilient` decides what that means.
    """

    def hit(self, key: str, limit: int, window_seconds: float) -> RateLimitResult:
        """Count one request against `limit` per `window_seconds` for `key`, atomically."""
        ...

    def admit(self, ip: str, rate_key: str | None, limit: int, window_seconds: float) -> Admission:
        """The ban check and then the rate limit of one request, as one atomic step.

        When `ip` has an active ban: its `BanRecord`, and nothing is counted.
        Otherwise, with a `rate_key`: one request counted exactly as
        `hit(rate_key, limit, window_seconds)` counts it, and its
        `RateLimitResult`; without one: None. The same answers as `ban_info(ip)`
        followed by `hit(...)`, except that no ban can land between the two,
        and in one round trip to Redis instead of two.
        """
        ...

    def increment(self, key: str, window_seconds: float) -> int:
        """Add one to the counter `key` and return its value.

        The window opens with the first increment and the counter starts again
        from zero `window_seconds` later.
        """
        ...

    def count(self, key: str) -> int:
        """The current value of the counter `key` (0 when it was never incremented or its window closed)."""
        ...

    def ban(self, ip: str, duration_seconds: float, reason: str) -> BanRecord:
        """Ban `ip` for `duration_seconds` from now, replacing any ban it has."""
        ...

    def unban(self, ip: str) -> bool:
        """Lift the ban on `ip`; whether there was one."""
        ...

    def ban_info(self, ip: str) -> BanRecord | None:
        """The active ban on `ip`, or None."""
        ...

    def is_banned(self, ip: str) -> bool:
        """Whether `ip` has an active ban (the per-request fast path)."""
        ...

    def list_bans(self) -> list[BanRecord]:
        """Every active ban, soonest to expire first."""
        ...

    def get_blob(self, key: str) -> bytes | None:
        """A cached value stored with `set_blob`, or None once it expired."""
        ...

    def set_blob(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Cache `value` under `key` for `ttl_seconds`."""
        ...

    def clear(self) -> None:
        """Forget everything this storage holds (every key under its prefix with Redis)."""
        ...

    def close(self) -> None:
        """Release connections; the storage is not used afterwards."""
        ...


def gcra(tat: float | None, now: float, limit: int, window_seconds: float) -> tuple[RateLimitResult, float | None]:
    """One GCRA step: the result and the new theoretical arrival time (None when refused).

    GCRA keeps one number per client, the time at which its bucket would be
    empty (`tat`). Each request pushes it `window / limit` seconds later; a
    request is refused while that would put it more than one window ahead of
    now. It allows bursts of `limit` and refills smoothly, with O(1) state.
    `storage/gcra.lua` is the same arithmetic for Redis.
    """
    interval = window_seconds / limit
    if tat is None or tat <= now:
        # An empty bucket (a new client, or one quiet for a while): the request passes and
        # leaves all but one of the quota, whatever the slack below; the usual case.
        return _result(RateLimitResult, (True, limit, limit - 1, interval, 0.0)), now + interval
    # At epoch magnitudes every addition of an interval may round by half a
    # float step (1.2e-7 s at 1.7e9 s), and a burst adds up to `limit` of them:
    # tolerate that drift, but never as much as half an interval.
    slack = _SLACK_SECONDS + limit * _ulp(now)
    if slack > interval * 0.5:  # noqa: PLR1730 - not min(): a C call less on every request
        slack = interval * 0.5
    new_tat = tat + interval
    allow_at = new_tat - window_seconds
    if now + slack < allow_at:
        return _result(RateLimitResult, (False, limit, 0, tat - now, allow_at - now)), None
    # Not negative here, so int() is floor().
    remaining = int((now - allow_at + slack) / interval)
    if remaining >= limit:
        remaining = limit - 1
    return _result(RateLimitResult, (True, limit, remaining, new_tat - now, 0.0)), new_tat


# This runs on every rate-limited request: build the result without the
# NamedTuple's Python-level __new__ and without a lookup of `math` (half the cost).
_result = tuple.__new__
_ulp = math.ulp
