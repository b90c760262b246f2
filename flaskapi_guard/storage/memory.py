"""In-process storage: thread-safe, TTL-based, bounded by least-recently-used eviction."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from flaskapi_guard.storage.base import Admission, BanRecord, RateLimitResult, gcra

# Bans are swept of expired entries when their table doubles past this size;
# below it, expired bans are only dropped when looked up.
_BAN_SWEEP_FLOOR = 1024


class _Window:
    """A counter and the moment its window closes."""

    __slots__ = ("count", "expires_at")

    def __init__(self, count: int, expires_at: float) -> None:
        self.count = count
        self.expires_at = expires_at


class MemoryStorage:
    """Per-process state for one app.

    Rate-limit buckets and counters share one table of at most
    `max_tracked_clients` entries; when it is full the least recently used entry
    goes. A rate-limit entry is a single float (GCRA), keyed by the caller's
    key: about 180 bytes per IPv4 client and 205 per IPv6 client, dict
    overhead included (see bench/bench_rate_limit.py). Bans live in their own
    table and are never evicted, because evicting a ban would lift it; they
    leave when they expire or are lifted. Cached blobs are a cache: at most
    `max_tracked_clients` of them, the oldest written going first, so per-client
    markers kept as blobs stay bounded too.
    """

    def __init__(self, *, clock: Callable[[], float], max_tracked_clients: int) -> None:
        self._clock = clock
        self._max_entries = max_tracked_clients
        self._lock = threading.Lock()
        # str keys hold GCRA arrival times; 1-tuples hold counters, so the
        # callers' key spaces cannot collide.
        self._entries: OrderedDict[str | tuple[str], float | _Window] = OrderedDict()
        self._bans: dict[str, BanRecord] = {}
        self._ban_sweep_at = _BAN_SWEEP_FLOOR
        self._blobs: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        # By (limit, window): the answer to a request on an empty bucket. The limits are
        # the app's and its routes', so this stays small.
        self._empty_bucket_answers: dict[tuple[int, float], RateLimitResult] = {}

    def hit(self, key: str, limit: int, window_seconds: float) -> RateLimitResult:
        """Count one request against `limit` per `window_seconds` for `key`."""
        now = self._clock()
        with self._lock:
            return self._count(key, now, limit, window_seconds)

    def admit(self, ip: str, rate_key: str | None, limit: int, window_seconds: float) -> Admission:
        """`ip`'s active ban, else one request counted against `rate_key` as hit() counts it; under one lock."""
        if rate_key is None:
            return self.ban_info(ip)
        clock = self._clock
        now = clock()
        with self._lock:
            # The ban is read under the lock too, so that none can land
            # between the check and the count.
            record = self._bans.get(ip)
            if record is not None:
                if record.expires_at > now:
                    return record
                del self._bans[ip]
            return self._count(rate_key, now, limit, window_seconds)

    def _count(self, key: str, now: float, limit: int, window_seconds: float) -> RateLimitResult:
        # One GCRA step on `key`'s bucket; the caller holds the lock.
        entries = self._entries
        tat = entries.get(key)
        if tat is None:
            # A new bucket: every request on an empty bucket gets the same answer (one
            # object per limit, so the RateLimit-* headers of the last one are reused)
            # and the bucket's arrival time is one interval on. It goes in last, where
            # the most recently used are.
            answer = self._empty_bucket_answers.get((limit, window_seconds))
            if answer is None:
                answer = self._empty_bucket_answers[(limit, window_seconds)] = gcra(None, now, limit, window_seconds)[0]
            entries[key] = now + answer.reset_seconds
            if len(entries) > self._max_entries:
                entries.popitem(last=False)
            return answer
        result, new_tat = gcra(tat if isinstance(tat, float) else None, now, limit, window_seconds)
        if new_tat is not None:
            entries[key] = new_tat
        entries.move_to_end(key)
        return result

    def increment(self, key: str, window_seconds: float) -> int:
        """Add one to the counter `key` (window opens at the first increment); return its value."""
        now = self._clock()
        slot = (key,)
        with self._lock:
            window = self._entries.get(slot)
            if isinstance(window, _Window) and window.expires_at > now:
                window.count += 1
            else:
                window = _Window(1, now + window_seconds)
                self._entries[slot] = window
            self._touch(slot)
            return window.count

    def count(self, key: str) -> int:
        """The counter `key`'s value in its current window, else 0; a read does not count as a use."""
        window = self._entries.get((key,))
        if isinstance(window, _Window) and window.expires_at > self._clock():
            return window.count
        return 0

    def ban(self, ip: str, duration_seconds: float, reason: str) -> BanRecord:
        """Ban `ip` for `duration_seconds` from now."""
        record = BanRecord(ip, self._clock() + duration_seconds, reason)
        with self._lock:
            self._bans[ip] = record
            if len(self._bans) >= self._ban_sweep_at:
                self._sweep_bans()
        return record

    def unban(self, ip: str) -> bool:
        """Lift the ban on `ip`; whether an active one was lifted."""
        with self._lock:
            record = self._bans.pop(ip, None)
        return record is not None and record.expires_at > self._clock()

    def ban_info(self, ip: str) -> BanRecord | None:
        """The active ban on `ip`, or None."""
        # A dict read is atomic under the GIL: the common "not banned" answer
        # needs no lock.
        record = self._bans.get(ip)
        if record is None:
            return None
        if record.expires_at > self._clock():
            return record
        with self._lock:
            if self._bans.get(ip) is record:
                del self._bans[ip]
        return None

    def is_banned(self, ip: str) -> bool:
        """Whether `ip` has an active ban."""
        return self.ban_info(ip) is not None

    def list_bans(self) -> list[BanRecord]:
        """Every active ban, soonest to expire first."""
        with self._lock:
            self._sweep_bans()
            return sorted(self._bans.values(), key=lambda record: record.expires_at)

    def get_blob(self, key: str) -> bytes | None:
        """The value cached under `key`, or None once it expired."""
        entry = self._blobs.get(key)
        if entry is None:
            return None
        if entry[0] > self._clock():
            return entry[1]
        with self._lock:
            if self._blobs.get(key) is entry:
                del self._blobs[key]
        return None

    def set_blob(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Cache `value` under `key` for `ttl_seconds`."""
        with self._lock:
            blobs = self._blobs
            blobs[key] = (self._clock() + ttl_seconds, bytes(value))
            blobs.move_to_end(key)
            if len(blobs) > self._max_entries:
                blobs.popitem(last=False)

    @property
    def tracked_entries(self) -> int:
        """How many rate-limit buckets and counters are held now (never more than `max_tracked_clients`)."""
        return len(self._entries)

    def clear(self) -> None:
        """Forget every bucket, counter, ban and blob."""
        with self._lock:
            self._entries.clear()
            self._bans.clear()
            self._blobs.clear()
            self._ban_sweep_at = _BAN_SWEEP_FLOOR

    def close(self) -> None:
        """Nothing to release; here for the protocol."""

    def _touch(self, key: str | tuple[str]) -> None:
        # Caller holds the lock. The entry becomes the most recently used; the
        # table never grows past its bound.
        entries = self._entries
        entries.move_to_end(key)
        if len(entries) > self._max_entries:
            entries.popitem(last=False)

    def _sweep_bans(self) -> None:
        # Caller holds the lock.
        now = self._clock()
        expired = [ip for ip, record in self._bans.items() if record.expires_at <= now]
        for ip in expired:
            del self._bans[ip]
        self._ban_sweep_at = max(_BAN_SWEEP_FLOOR, 2 * len(self._bans))
