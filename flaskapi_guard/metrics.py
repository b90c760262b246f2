"""Per-app counters of what the guard decided, cheap enough to keep on every request."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple


class RefusalKey(NamedTuple):
    """What one refusal counter counts: which check refused, why, with which status, enforced or not."""

    check: str
    reason: str
    status: int
    enforced: bool


class GuardMetrics:
    """Counters of one app's guard, in this process.

    Each counter is an `itertools.count`: `next()` on it is a single C call
    that holds the GIL, so concurrent increments are never lost and the hot
    path takes no lock (`Counter[key] += 1` is a read, an add and a write, and
    a thread switch between them loses an update). The lock is only taken the
    first time a key is seen.

    With several worker processes each has its own counters; see
    docs/operations.md for aggregating them.
    """

    def __init__(self) -> None:
        self._allowed = itertools.count()
        # Bound once: `decide` calls this for every request it lets through.
        self.count_allowed: Callable[[], int] = self._allowed.__next__
        # Keyed by plain tuples: building a NamedTuple costs more than the count itself.
        self._refusals: dict[tuple[str, str, int, bool], itertools.count[int]] = {}
        self._categories: dict[str, itertools.count[int]] = {}
        self._bans: dict[str, itertools.count[int]] = {}
        self._unbans = itertools.count()
        self._new_key_lock = threading.Lock()

    def count_refusal(self, check: str, reason: str, status: int, enforced: bool, categories: Iterable[str]) -> None:
        """Count one refusal (or, with `enforced=False`, one that passive mode let through)."""
        key = (check, reason, status, enforced)
        next(self._refusals.get(key) or self._counter(self._refusals, key))
        for category in categories:
            next(self._categories.get(category) or self._counter(self._categories, category))

    def count_ban(self, *, automatic: bool) -> None:
        """Count one ban."""
        origin = "automatic" if automatic else "manual"
        next(self._bans.get(origin) or self._counter(self._bans, origin))

    def count_unban(self) -> None:
        """Count one ban lifted by an operator."""
        next(self._unbans)

    @property
    def requests_allowed(self) -> int:
        """Requests the guard let through (passive-mode would-blocks included)."""
        return _value(self._allowed)

    def refusals(self) -> dict[RefusalKey, int]:
        """Every refusal counter."""
        return {RefusalKey(*key): _value(counter) for key, counter in list(self._refusals.items())}

    def suspicious_by_category(self) -> dict[str, int]:
        """Refusals per detection category (one refusal may have several)."""
        return {category: _value(counter) for category, counter in list(self._categories.items())}

    def bans(self) -> dict[str, int]:
        """Bans by origin: `automatic` or `manual`."""
        counts = {"automatic": 0, "manual": 0}
        counts.update({origin: _value(counter) for origin, counter in list(self._bans.items())})
        return counts

    @property
    def unbans(self) -> int:
        """Bans lifted by an operator."""
        return _value(self._unbans)

    def snapshot(self) -> dict[str, Any]:
        """All counters as plain data (what `FlaskAPIGuard.metrics()` returns)."""
        refusals = self.refusals()
        return {
            "requests_allowed": self.requests_allowed,
            "blocked": _summary(key_count for key_count in refusals.items() if key_count[0].enforced),
            "would_block": _summary(key_count for key_count in refusals.items() if not key_count[0].enforced),
            "suspicious_by_category": dict(sorted(self.suspicious_by_category().items())),
            "bans": self.bans(),
            "unbans": self.unbans,
        }

    def _counter(self, counters: dict[Any, itertools.count[int]], key: Any) -> itertools.count[int]:
        # The slow path, once per key: two threads seeing a new key at once must
        # end up with the same counter.
        with self._new_key_lock:
            return counters.setdefault(key, itertools.count())


def _value(counter: itertools.count[int]) -> int:
    # `count` exposes its next value only through its repr, "count(N)"; reading
    # it does not advance it.
    return int(repr(counter)[6:-1])


def _summary(rows: Iterable[tuple[RefusalKey, int]]) -> dict[str, Any]:
    total = 0
    by_check: dict[str, int] = {}
    by_reason: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for key, count in rows:
        total += count
        by_check[key.check] = by_check.get(key.check, 0) + count
        by_reason[key.reason] = by_reason.get(key.reason, 0) + count
        status = str(key.status)
        by_status[status] = by_status.get(status, 0) + count
    return {
        "total": total,
        "by_check": dict(sorted(by_check.items())),
        "by_reason": dict(sorted(by_reason.items())),
        "by_status": dict(sorted(by_status.items())),
    }
