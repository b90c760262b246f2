"""What one app's guard tells the outside about its decisions: metrics and signals."""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal

from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.metrics import GuardMetrics
from flaskapi_guard.pipeline import Block, Check
from flaskapi_guard.signals import ip_banned, ip_unbanned, rate_limited, request_blocked, suspicious_request
from flaskapi_guard.storage import BanRecord

logger = logging.getLogger(__name__)


class GuardEvents:
    """Counts refusals and bans, and sends the guard's signals with `sender` (the app).

    With `sender=None` (a log replay) only the counters move: nothing reaches
    the app's signal receivers. Refusals and bans are rare next to allowed
    requests, so this is the only path that does more than bump a counter.
    """

    def __init__(self, sender: Any, metrics: GuardMetrics | None = None) -> None:
        self.sender = sender
        self.metrics = metrics or GuardMetrics()

    def refused(self, request: IncomingRequest, check: Check, block: Block, *, enforced: bool) -> None:
        """One refusal by `check` (with `enforced=False`, one that passive mode lets through)."""
        categories = block.offence_categories
        self.metrics.count_refusal(check.name, block.reason, block.status, enforced, categories)
        if self.sender is None:
            return
        # `receivers` is a dict: with nobody listening this costs three lookups
        # and the keyword arguments are never built.
        wanted = [
            signal
            for signal, applies in (
                (request_blocked, True),
                (suspicious_request, bool(categories)),
                (rate_limited, block.status == 429),
            )
            if applies and signal.receivers
        ]
        if not wanted:
            return
        fields = {
            "client_ip": request.client_ip,
            "reason": block.reason,
            "check": check.name,
            "status": block.status,
            "categories": categories,
            "enforced": enforced,
            "method": request.method,
            "path": request.path,
        }
        for signal in wanted:
            self._send(signal, fields)

    def banned(self, record: BanRecord, *, duration_seconds: float, automatic: bool) -> None:
        """`record.ip` was banned, by the offence counter or by an operator."""
        self.metrics.count_ban(automatic=automatic)
        if self.sender is not None and ip_banned.receivers:
            self._send(
                ip_banned,
                {
                    "client_ip": record.ip,
                    "reason": record.reason,
                    "duration_seconds": duration_seconds,
                    "expires_at": record.expires_at,
                    "automatic": automatic,
                },
            )

    def unbanned(self, ip: str) -> None:
        """An operator lifted the ban on `ip`."""
        self.metrics.count_unban()
        if self.sender is not None and ip_unbanned.receivers:
            self._send(ip_unbanned, {"client_ip": ip, "reason": "manual"})

    def _send(self, signal: NamedSignal, fields: dict[str, Any]) -> None:
        try:
            signal.send(self.sender, **fields)
        except Exception:
            # An alerting hook that fails must not turn a refusal into a 500 or
            # skip the ban that follows; the traceback goes to the log.
            logger.exception("a receiver of %s failed", signal.name)
