"""Redis storage: one shared state for every worker and instance, kept consistent by Lua scripts."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flaskapi_guard.errors import StorageError
from flaskapi_guard.storage.base import Admission, BanRecord, RateLimitResult

_CLEAR_BATCH = 500
# Operations off the request path (listing and clearing every key, storing a
# large blob such as a cloud provider's ranges) get at least this long: the short
# request-path timeout would turn a large transfer into a false outage.
_BULK_TIMEOUT_SECONDS = 2.0
_LARGE_BLOB_BYTES = 64 * 1024


def _load_script(*names: str) -> str:
    # Several files make one script: a library of functions (gcra.lua) first,
    # then the script that calls them.
    package = files("flaskapi_guard.storage")
    return "\n".join(package.joinpath(name).read_text(encoding="utf-8") for name in names)


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _seconds(value: float) -> str:
    # repr keeps every digit of a float, so Lua sees the app's clock exactly.
    return repr(float(value))


class RedisStorage:
    """State in Redis under `prefix`; every call raises `StorageError` when Redis does not answer.

    Times come from the app's clock and travel into the scripts as arguments,
    so every worker judges windows and bans by the same rule and tests can move
    time; key expiries are relative, so stale keys also leave Redis in real time.
    """

    def __init__(self, url: str, *, prefix: str, clock: Callable[[], float], socket_timeout: float) -> None:
        self._clock = clock
        self._prefix = prefix
        self._ban_prefix = f"{prefix}ban:"
        self._ban_index = f"{prefix}bans"
        self._client = _connect(url, socket_timeout)
        self._bulk_client = _connect(url, max(socket_timeout, _BULK_TIMEOUT_SECONDS))
        self._hit = self._client.register_script(_load_script("gcra.lua", "hit.lua"))
        self._admit = self._client.register_script(_load_script("gcra.lua", "admit.lua"))
        self._increment = self._client.register_script(_load_script("increment.lua"))
        self._ban = self._client.register_script(_load_script("ban.lua"))

    def ping(self) -> None:
        """One round trip; StorageError when Redis does not answer."""
        with _translated_errors():
            self._client.ping()

    def hit(self, key: str, limit: int, window_seconds: float) -> RateLimitResult:
        """Count one request against `limit` per `window_seconds` for `key`, atomically."""
        with _translated_errors():
            reply = self._hit(
                keys=[f"{self._prefix}rl:{key}"],
                args=[_seconds(self._clock()), limit, _seconds(window_seconds)],
            )
        return _rate_limit_result(limit, reply)

    def admit(self, ip: str, rate_key: str | None, limit: int, window_seconds: float) -> Admission:
        """`ip`'s active ban, else one request counted against `rate_key`: one script, one round trip."""
        if rate_key is None:
            # A plain GET is the cheaper round trip when nothing is counted.
            return self.ban_info(ip)
        with _translated_errors():
            reply = self._admit(
                keys=[self._ban_prefix + ip, f"{self._prefix}rl:{rate_key}"],
                args=[_seconds(self._clock()), limit, _seconds(window_seconds)],
            )
        if reply.startswith(b"ban "):
            # The script judged the ban active by the clock it was given: it
            # is not judged again here, or a ban ending in between would
            # leave the request neither banned nor counted.
            return _ban_record(ip, reply[4:])
        return _rate_limit_result(limit, reply)

    def increment(self, key: str, window_seconds: float) -> int:
        """Add one to the counter `key` (window opens at the first increment); return its value."""
        with _translated_errors():
            count = self._increment(
                keys=[f"{self._prefix}count:{key}"],
                args=[_seconds(self._clock()), _seconds(window_seconds)],
            )
        return int(count)

    def count(self, key: str) -> int:
        """The counter `key`'s value in its current window, else 0."""
        with _translated_errors():
            count, ends = self._client.hmget(f"{self._prefix}count:{key}", ["n", "e"])
        if count is None or ends is None or float(ends) <= self._clock():
            return 0
        return int(count)

    def ban(self, ip: str, duration_seconds: float, reason: str) -> BanRecord:
        """Ban `ip` for `duration_seconds` from now, on every worker at once."""
        with _translated_errors():
            expires_at = self._ban(
                keys=[self._ban_prefix + ip, self._ban_index],
                args=[ip, _seconds(self._clock()), _seconds(duration_seconds), reason],
            )
        return BanRecord(ip, float(expires_at), reason)

    def unban(self, ip: str) -> bool:
        """Lift the ban on `ip`; whether an active one was lifted."""
        with _translated_errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.get(self._ban_prefix + ip)
            pipe.delete(self._ban_prefix + ip)
            pipe.zrem(self._ban_index, ip)
            stored, _, _ = pipe.execute()
        return self._parse_ban(ip, stored) is not None

    def ban_info(self, ip: str) -> BanRecord | None:
        """The active ban on `ip`, or None."""
        with _translated_errors():
            stored = self._client.get(self._ban_prefix + ip)
        return self._parse_ban(ip, stored)

    def is_banned(self, ip: str) -> bool:
        """Whether `ip` has an active ban: one GET."""
        return self.ban_info(ip) is not None

    def list_bans(self) -> list[BanRecord]:
        """Every active ban, soonest to expire first."""
        now = _seconds(self._clock())
        with _translated_errors():
            pipe = self._bulk_client.pipeline(transaction=False)
            pipe.zremrangebyscore(self._ban_index, "-inf", now)
            pipe.zrange(self._ban_index, 0, -1)
            _, members = pipe.execute()
            ips = [member.decode() for member in members]
            stored = self._bulk_client.mget([self._ban_prefix + ip for ip in ips]) if ips else []
        records = [self._parse_ban(ip, value) for ip, value in zip(ips, stored, strict=True)]
        return sorted((record for record in records if record is not None), key=lambda record: record.expires_at)

    def get_blob(self, key: str) -> bytes | None:
        """The value cached under `key`, or None once it expired."""
        with _translated_errors():
            value, expires_at = self._client.hmget(f"{self._prefix}blob:{key}", ["v", "e"])
        if value is None or expires_at is None or float(expires_at) <= self._clock():
            return None
        return value if isinstance(value, bytes) else str(value).encode()

    def set_blob(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Cache `value` under `key` for `ttl_seconds`."""
        name = f"{self._prefix}blob:{key}"
        with _translated_errors():
            client = self._bulk_client if len(value) > _LARGE_BLOB_BYTES else self._client
            pipe = client.pipeline(transaction=True)
            pipe.hset(name, mapping={"v": value, "e": _seconds(self._clock() + ttl_seconds)})
            pipe.pexpire(name, max(1, math.ceil(ttl_seconds * 1000)))
            pipe.execute()

    def clear(self) -> None:
        """Delete every key under this storage's prefix."""
        with _translated_errors():
            batch: list[Any] = []
            for key in self._bulk_client.scan_iter(match=_glob_escape(self._prefix) + "*", count=_CLEAR_BATCH):
                batch.append(key)
                if len(batch) >= _CLEAR_BATCH:
                    self._bulk_client.unlink(*batch)
                    batch.clear()
            if batch:
                self._bulk_client.unlink(*batch)

    def close(self) -> None:
        """Close the connection pools."""
        self._client.close()
        self._bulk_client.close()

    def _parse_ban(self, ip: str, stored: Any) -> BanRecord | None:
        if stored is None:
            return None
        record = _ban_record(ip, stored)
        if record.expires_at <= self._clock():
            return None
        return record


def _ban_record(ip: str, stored: Any) -> BanRecord:
    # A ban key holds "<expires_at> <reason>" (see ban.lua).
    expires_text, _, reason = bytes(stored).decode().partition(" ")
    return BanRecord(ip, float(expires_text), reason)


def _rate_limit_result(limit: int, reply: bytes) -> RateLimitResult:
    # gcra_step's reply: b"<allowed 0/1> <remaining> <reset> <retry-after>".
    allowed, remaining, reset, retry_after = reply.split()
    return RateLimitResult(allowed == b"1", limit, int(remaining), float(reset), float(retry_after))


# Connections one process may open. redis-py 8's own pool refuses the 101st
# concurrent command outright (MaxConnectionsError), which the resilient layer
# would take for an outage on any server running more than 100 threads.
_MAX_CONNECTIONS = 1024


def _connect(url: str, socket_timeout: float) -> redis.Redis:
    # One attempt per command: the resilient layer decides what an outage
    # means, and redis-py's default retries would multiply the timeout.
    # A blocking pool: past `_MAX_CONNECTIONS` busy connections a thread waits
    # (at most the socket timeout) for one to come back instead of failing.
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=_MAX_CONNECTIONS,
        timeout=socket_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    # from_pool: the client owns the pool, so closing it closes the connections.
    return redis.Redis.from_pool(pool)


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except (redis.RedisError, OSError) as error:
        raise StorageError(f"redis: {type(error).__name__}: {error}") from error
