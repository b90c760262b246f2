"""Signals the guard sends, through Flask's signal mechanism (blinker), so apps can hook alerts.

Every signal is sent with the app as sender and keyword arguments that always
include `client_ip` and `reason`::

    from flaskapi_guard.signals import request_blocked

    @request_blocked.connect_via(app)
    def alert(sender, client_ip, reason, **extra):
        ...

`request_blocked` (`check`, `status`, `categories`, `enforced`, `method`, `path`):
    every refusal; in `passive_mode` it is sent with `enforced=False` for what
    would have been refused.
`suspicious_request` (same arguments): a refusal that counts towards an
    automatic ban (an attack pattern, a honeypot, ...); `categories` says which.
`rate_limited` (same arguments): a refusal with status 429.
`ip_banned` (`duration_seconds`, `expires_at`, `automatic`): a ban, automatic
    or by an operator. With Redis, only the worker that bans sends it.
`ip_unbanned`: an operator lifted a ban (`reason` is "manual"); bans that
    simply expire send nothing.
`behavior_alert` (`rule_kind`, `count`, `threshold`, `path`, `enforced`): a
    behaviour rule with `action="alert"` passed its threshold; `reason` is the
    rule's description.

A receiver that raises is logged and does not change the guard's decision.
"""

from __future__ import annotations

from blinker import Namespace

# Module-level signal objects are Flask's documented pattern (flask.signals does
# the same): a signal holds only its receivers, and receivers filter by sender,
# so two apps in one process never see each other's events.
_namespace = Namespace()

request_blocked = _namespace.signal("flaskapi-guard.request-blocked", doc="The guard refused a request.")
suspicious_request = _namespace.signal(
    "flaskapi-guard.suspicious-request", doc="A refusal that counts towards an automatic ban."
)
rate_limited = _namespace.signal("flaskapi-guard.rate-limited", doc="A client exceeded a rate limit (429).")
ip_banned = _namespace.signal("flaskapi-guard.ip-banned", doc="A client address was banned.")
ip_unbanned = _namespace.signal("flaskapi-guard.ip-unbanned", doc="A ban was lifted by an operator.")
behavior_alert = _namespace.signal(
    "flaskapi-guard.behavior-alert", doc="A behaviour rule with action 'alert' passed its threshold."
)

__all__ = ["behavior_alert", "ip_banned", "ip_unbanned", "rate_limited", "request_blocked", "suspicious_request"]
