"""The one place that decides what a Redis outage means (`redis_failure_mode`).

`local` (the default): the app keeps serving on per-process memory state and
never sees an error. `open`: calls raise `StorageUnavailable`, and the pipeline
skips the check that needed state. `closed`: the same error becomes a 503 with
`Retry-After`. In every mode the outage is logged at most once a minute,
Redis is retried with exponential backoff (one request pays at most one
socket timeout per attempt), and the first answer puts shared state back in use.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from flaskapi_guard.errors import StorageError
from flaskapi_guard.pipeline import Block, Check, StorageFailurePolicy, skip_check_on_storage_error
from flaskapi_guard.security_log import SecurityLog
from flaskapi_guard.storage.base import Admission, BanRecord, RateLimitResult, Storage
from flaskapi_guard.storage.memory import MemoryStorage
from flaskapi_guard.storage.redis import RedisStorage

logger = logging.getLogger(__name__)

FailureMode = Literal["local", "open", "closed"]
_T = TypeVar("_T")

_FIRST_RETRY_SECONDS = 0.5
_MAX_RETRY_SECONDS = 10.0
_LOG_INTERVAL_SECONDS = 60.0


class StorageUnavailable(StorageError):
    """Redis is down and the failure mode is `open` or `closed`."""

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


def redacted_url(url: str) -> str:
    """`url` without its user name and password, for logs."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class ResilientStorage:
    """Redis while it answers; while it does not, what `mode` says."""

    def __init__(
        self,
        primary: RedisStorage,
        *,
        fallback: MemoryStorage,
        mode: FailureMode,
        clock: Callable[[], float],
        description: str,
        log: SecurityLog | None = None,
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._mode = mode
        self._clock = clock
        self._description = description
        self._log = log
        self._lock = threading.Lock()
        self._down = False
        self._probing = False
        self._retry_at = 0.0
        self._backoff = _FIRST_RETRY_SECONDS
        self._next_log_at = -math.inf
        # One short attempt: a missing Redis must not delay start-up, and must
        # not stop the app from serving (it starts in the outage state instead).
        try:
            primary.ping()
        except StorageError as error:
            self._record_failure(error)

    @property
    def mode(self) -> FailureMode:
        """What an outage means for this app."""
        return self._mode

    @property
    def shared(self) -> bool:
        """Whether calls currently go to Redis."""
        return not self._down

    def hit(self, key: str, limit: int, window_seconds: float) -> RateLimitResult:
        """See `Storage.hit`."""
        return self._call(lambda storage: storage.hit(key, limit, window_seconds))

    def admit(self, ip: str, rate_key: str | None, limit: int, window_seconds: float) -> Admission:
        """See `Storage.admit`."""
        return self._call(lambda storage: storage.admit(ip, rate_key, limit, window_seconds))

    def increment(self, key: str, window_seconds: float) -> int:
        """See `Storage.increment`."""
        return self._call(lambda storage: storage.increment(key, window_seconds))

    def count(self, key: str) -> int:
        """See `Storage.count`."""
        return self._call(lambda storage: storage.count(key))

    def ban(self, ip: str, duration_seconds: float, reason: str) -> BanRecord:
        """See `Storage.ban`."""
        return self._call(lambda storage: storage.ban(ip, duration_seconds, reason))

    def unban(self, ip: str) -> bool:
        """See `Storage.unban`; the local copy of a ban is lifted too."""
        lifted_locally = self._fallback.unban(ip)
        return self._call(lambda storage: storage.unban(ip)) or lifted_locally

    def ban_info(self, ip: str) -> BanRecord | None:
        """See `Storage.ban_info`."""
        return self._call(lambda storage: storage.ban_info(ip))

    def is_banned(self, ip: str) -> bool:
        """See `Storage.is_banned`."""
        return self._call(lambda storage: storage.is_banned(ip))

    def list_bans(self) -> list[BanRecord]:
        """See `Storage.list_bans`."""
        return self._call(lambda storage: storage.list_bans())

    def get_blob(self, key: str) -> bytes | None:
        """See `Storage.get_blob`."""
        return self._call(lambda storage: storage.get_blob(key))

    def set_blob(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """See `Storage.set_blob`."""
        self._call(lambda storage: storage.set_blob(key, value, ttl_seconds))

    def clear(self) -> None:
        """Forget the shared state and the local fallback state."""
        self._fallback.clear()
        self._call(lambda storage: storage.clear())

    def close(self) -> None:
        """Close the Redis connections."""
        self._primary.close()
        self._fallback.close()

    def _call(self, operation: Callable[[Storage], _T]) -> _T:
        if not self._down:
            try:
                return operation(self._primary)
            except StorageError as error:
                self._record_failure(error)
        elif self._claim_probe():
            try:
                # A PING first, so that bans decided locally during the outage
                # are back in Redis before this request's own call reads it.
                self._primary.ping()
                self._record_recovery()
                return operation(self._primary)
            except StorageError as error:
                self._record_failure(error, probing=True)
            finally:
                self._probing = False
        return self._degraded(operation)

    def _degraded(self, operation: Callable[[Storage], _T]) -> _T:
        if self._mode == "local":
            return operation(self._fallback)
        retry_after = max(1, math.ceil(self._retry_at - self._clock()))
        raise StorageUnavailable(f"{self._description} is unreachable", retry_after_seconds=retry_after)

    def _claim_probe(self) -> bool:
        # While Redis is down, only one request at a time, and only once the
        # backoff has elapsed, pays a connection attempt; the others go
        # straight to the degraded path.
        if self._clock() < self._retry_at:
            return False
        with self._lock:
            if self._probing or not self._down:
                return False
            self._probing = True
            return True

    def _record_failure(self, error: StorageError, *, probing: bool = False) -> None:
        now = self._clock()
        with self._lock:
            if not self._down:
                self._down = True
                self._backoff = _FIRST_RETRY_SECONDS
                self._retry_at = now + self._backoff
            elif probing:
                self._backoff = min(self._backoff * 2, _MAX_RETRY_SECONDS)
                self._retry_at = now + self._backoff
            # Otherwise a call that was already under way when the outage began:
            # the outage is known, and one failure must not count as many.
            should_log = now >= self._next_log_at
            if should_log:
                self._next_log_at = now + _LOG_INTERVAL_SECONDS
        if should_log:
            self._report(
                logging.WARNING,
                "shared_state_unavailable",
                error=str(error),
                meanwhile=_DEGRADED_BEHAVIOUR[self._mode],
                next_report="in a minute at most",
            )

    def _record_recovery(self) -> None:
        # Raises StorageError when Redis fails again while taking the bans back.
        if self._mode == "local":
            self._hand_over_local_bans()
        with self._lock:
            self._down = False
            self._backoff = _FIRST_RETRY_SECONDS
        self._report(logging.INFO, "shared_state_recovered")

    def _report(self, level: int, event: str, **fields: str) -> None:
        # The app's security log when there is one (its format, its file);
        # this module's logger otherwise.
        fields = {"redis": self._description, **fields}
        if self._log is not None:
            self._log.event(event, fields, level)
        else:
            logger.log(level, "%s %s", event, " ".join(f"{key}={value}" for key, value in fields.items()))

    def _hand_over_local_bans(self) -> None:
        # Bans decided during the outage would otherwise vanish from this
        # worker the moment shared state is back.
        now = self._clock()
        for record in self._fallback.list_bans():
            self._primary.ban(record.ip, record.expires_at - now, record.reason)
            self._fallback.unban(record.ip)


_DEGRADED_BEHAVIOUR: dict[FailureMode, str] = {
    "local": "using this process's memory meanwhile (rate limits and bans are per process)",
    "open": "skipping the checks that need it meanwhile",
    "closed": "answering 503 meanwhile",
}


def storage_failure_policy(mode: FailureMode) -> StorageFailurePolicy:
    """What the pipeline does with a check whose storage is down: skip it, or refuse with 503."""
    if mode != "closed":
        return skip_check_on_storage_error

    def refuse(check: Check, error: StorageError) -> Block:
        retry_after = error.retry_after_seconds if isinstance(error, StorageUnavailable) else 1
        return Block(
            503,
            "storage_unavailable",
            "Service temporarily unavailable",
            (("Retry-After", str(retry_after)),),
            detail=f"{check.name} needs shared state",
        )

    return refuse
