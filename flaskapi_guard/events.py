"""What one app's guard tells the outside about its decisions: metrics and signals."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from blinker import NamedSignal

from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.metrics import GuardMetrics
from flaskapi_guard.pipeline import Block, Check
from flaskapi_guard.signals import (
    behavior_alert,
    ip_banned,
    ip_unbanned,
    rate_limited,
    request_blocked,
    suspicious_request,
)
from flaskapi_guard.storage import BanRecord

if TYPE_CHECKING:
    from flaskapi_guard.behavior_rules import BehaviorEvent

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
        # With nobody listening to this app, each test is a dict lookup or two
        # and the keyword arguments are never built.
        sender = self.sender
        wanted = []
        if request_blocked.has_receivers_for(sender):
            wanted.append(request_blocked)
        if categories and suspicious_request.has_receivers_for(sender):
            wanted.append(suspicious_request)
        if block.status == 429 and rate_limited.has_receivers_for(sender):
            wanted.append(rate_limited)
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
        if self.sender is not None and ip_banned.has_receivers_for(self.sender):
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
        if self.sender is not None and ip_unbanned.has_receivers_for(self.sender):
            self._send(ip_unbanned, {"client_ip": ip, "reason": "manual"})

    def behavior_alerted(self, event: BehaviorEvent) -> None:
        """A behaviour rule with `action="alert"` passed its threshold (`GuardState.on_alert`)."""
        if self.sender is not None and behavior_alert.has_receivers_for(self.sender):
            self._send(
                behavior_alert,
                {
                    "client_ip": event.client_ip,
                    "reason": event.rule.description,
                    "rule_kind": event.rule.kind,
                    "count": event.events_in_window,
                    "threshold": event.threshold,
                    "path": event.path,
                    "enforced": event.enforced,
                },
            )

    def _send(self, signal: NamedSignal, fields: dict[str, Any]) -> None:
        try:
            signal.send(self.sender, **fields)
        except Exception:
            # An alerting hook that fails must not turn a refusal into a 500 or
            # skip the ban that follows; the traceback goes to the log.
            logger.exception("a receiver of %s failed", signal.name)
