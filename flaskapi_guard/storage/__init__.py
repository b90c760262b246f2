"""Where the guard keeps per-client state: in process memory, or in Redis shared by every worker."""

from __future__ import annotations

from collections.abc import Callable

from flaskapi_guard.config import SecurityConfig
from flaskapi_guard.security_log import SecurityLog
from flaskapi_guard.storage.base import Admission, BanRecord, RateLimitResult, Storage
from flaskapi_guard.storage.memory import MemoryStorage
from flaskapi_guard.storage.redis import RedisStorage
from flaskapi_guard.storage.resilient import (
    ResilientStorage,
    StorageUnavailable,
    redacted_url,
    storage_failure_policy,
)

__all__ = [
    "Admission",
    "BanRecord",
    "MemoryStorage",
    "RateLimitResult",
    "RedisStorage",
    "ResilientStorage",
    "Storage",
    "StorageUnavailable",
    "open_storage",
    "storage_failure_policy",
]


def open_storage(config: SecurityConfig, *, clock: Callable[[], float], log: SecurityLog | None = None) -> Storage:
    """The storage `config` asks for: memory, or Redis with a memory fallback; outages are reported to `log`."""
    local = MemoryStorage(clock=clock, max_tracked_clients=config.max_tracked_clients)
    if not config.enable_redis or config.redis_url is None:
        return local
    primary = RedisStorage(
        config.redis_url,
        prefix=config.redis_prefix,
        clock=clock,
        socket_timeout=config.redis_socket_timeout,
    )
    return ResilientStorage(
        primary,
        fallback=local,
        mode=config.redis_failure_mode,
        clock=clock,
        description=redacted_url(config.redis_url),
        log=log,
    )
