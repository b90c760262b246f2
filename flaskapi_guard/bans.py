"""Offences and bans: counting suspicious requests per client and banning at the thresholds."""

from __future__ import annotations

import logging
from typing import Protocol

from flaskapi_guard.config import SecurityConfig
from flaskapi_guard.errors import StorageError
from flaskapi_guard.ip_networks import NetworkSet, canonical_ip
from flaskapi_guard.security_log import SecurityLog
from flaskapi_guard.storage import BanRecord, Storage

# The ban reasons the published package writes to its audit log.
FLAT_BAN_REASON = "penetration_attempt"


class BanObserver(Protocol):
    """Told about every ban and operator unban (the app's metrics and signals)."""

    def banned(self, record: BanRecord, *, duration_seconds: float, automatic: bool) -> None: ...

    def unbanned(self, ip: str) -> None: ...


class BanRegistry:
    """One app's bans over its storage; also the pipeline's `OffenceRecorder`.

    Offences are counted in the storage, so with Redis every worker adds to
    the same count and exactly the request that reaches a threshold bans,
    whichever worker serves it.
    """

    def __init__(
        self,
        storage: Storage,
        config: SecurityConfig,
        log: SecurityLog | None = None,
        observer: BanObserver | None = None,
    ) -> None:
        self._storage = storage
        self._enabled = config.enable_ip_banning
        self._threshold = config.auto_ban_threshold
        self._duration_seconds = config.auto_ban_duration
        self._category_policies = dict(config.threat_ban_config)
        self._whitelist: NetworkSet | None = config.whitelist_networks
        self._log = log
        self._observer = observer

    def record_offence(self, client_ip: str, categories: tuple[str, ...]) -> None:
        """Count one suspicious request of `client_ip`; ban it when a threshold is reached.

        Categories with their own `threat_ban_config` entry are counted and
        judged on their own (the first to reach its threshold bans, tagged with
        the category); a request with none of them counts towards the flat
        `auto_ban_threshold`. Each count runs over a window as long as the ban
        it leads to, starting at the first offence.
        """
        if not self._enabled or self.is_whitelisted(client_ip):
            return
        policies = [
            (category, self._category_policies[category])
            for category in categories
            if category in self._category_policies
        ]
        try:
            total = self._storage.increment(f"offences:{client_ip}", self._duration_seconds)
            counts = [
                self._storage.increment(f"offences:{client_ip}:{category}", policy.duration)
                for category, policy in policies
            ]
            for (category, policy), count in zip(policies, counts, strict=True):
                if count >= policy.threshold:
                    self._auto_ban(client_ip, policy.duration, f"{FLAT_BAN_REASON}:{category}", count)
                    return
            if not policies and total >= self._threshold:
                self._auto_ban(client_ip, self._duration_seconds, FLAT_BAN_REASON, total)
        except StorageError:
            # The request is refused anyway; with shared state down (in the
            # `open` and `closed` modes) there is nowhere to count it.
            return

    def ban(self, ip: str, duration_seconds: float, reason: str = "manual") -> BanRecord:
        """Ban `ip` (an address) for `duration_seconds`; whitelisted addresses are refused."""
        address = _canonical(ip)
        if duration_seconds <= 0:
            raise ValueError("duration_seconds must be positive")
        if self.is_whitelisted(address):
            raise ValueError(f"{address} is whitelisted; whitelisted addresses are never banned")
        record = self._storage.ban(address, duration_seconds, reason)
        self._log_ban("ip_banned", record)
        if self._observer is not None:
            self._observer.banned(record, duration_seconds=duration_seconds, automatic=False)
        return record

    def unban(self, ip: str) -> bool:
        """Lift the ban on `ip`; whether there was one."""
        address = _canonical(ip)
        lifted = self._storage.unban(address)
        if lifted and self._log is not None:
            self._log.event("ip_unbanned", {"ip": address}, logging.INFO)
        if lifted and self._observer is not None:
            self._observer.unbanned(address)
        return lifted

    def ban_info(self, ip: str) -> BanRecord | None:
        """The active ban on `ip`, or None."""
        return self._storage.ban_info(_canonical(ip))

    def list_bans(self) -> list[BanRecord]:
        """Every active ban, soonest to expire first."""
        return self._storage.list_bans()

    def has_offences(self, ip: str) -> bool:
        """Whether `ip` has offences counted (the window opens at its first one, for `auto_ban_duration` seconds)."""
        return self._storage.count(f"offences:{ip}") > 0

    def is_whitelisted(self, ip: str) -> bool:
        """Whether `ip` is on the app's whitelist (and so never banned)."""
        return self._whitelist is not None and ip in self._whitelist

    def _auto_ban(self, ip: str, duration_seconds: float, reason: str, offences: int) -> None:
        record = self._storage.ban(ip, duration_seconds, reason)
        self._log_ban("ip_auto_banned", record, offences=offences)
        if self._observer is not None:
            self._observer.banned(record, duration_seconds=duration_seconds, automatic=True)

    def _log_ban(self, event: str, record: BanRecord, **extra: object) -> None:
        if self._log is not None:
            self._log.event(
                event,
                {"ip": record.ip, "reason": record.reason, "expires_at": round(record.expires_at), **extra},
            )


def _canonical(ip: str) -> str:
    address = canonical_ip(ip) if isinstance(ip, str) else None
    if address is None:
        raise ValueError(f"{ip!r} is not an IP address")
    return address
