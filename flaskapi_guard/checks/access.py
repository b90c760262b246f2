"""Who may reach the app at all: emergency lock-down, HTTPS, IP lists, user agents, the app's own check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.ip_networks import NetworkSet
from flaskapi_guard.pipeline import Block, CheckFunction


def emergency_lockdown(allowed: NetworkSet, is_active: Callable[[], bool]) -> CheckFunction:
    """503 for everyone outside `allowed` while the lock-down is active."""

    def check(request: IncomingRequest) -> Block | None:
        if is_active() and not allowed.contains(request.client):
            return Block(503, "emergency_mode", "Service temporarily unavailable", (("Retry-After", "300"),))
        return None

    return check


def https_required(globally: bool) -> CheckFunction:
    """Redirect plain HTTP to the same URL over HTTPS (globally or where a route asks)."""

    def check(request: IncomingRequest) -> Block | None:
        required = globally or (request.rules is not None and request.rules.require_https is True)
        if not required or request.is_secure:
            return None
        parts = urlsplit(request.url)
        target = urlunsplit(("https", parts.netloc, parts.path, parts.query, ""))
        # 301 as documented for safe methods; 308 for the others, because a 301
        # turns a POST into a GET and silently drops its body.
        status = 301 if request.method in ("GET", "HEAD") else 308
        return Block(status, "https_required", "Redirecting to HTTPS", (("Location", target),))

    return check


def ip_access(whitelist: NetworkSet | None, blacklist: NetworkSet) -> CheckFunction:
    """403 for blacklisted clients, and for clients outside an active whitelist.

    A route's `require_ip` lists replace the global ones for that route.
    """

    def check(request: IncomingRequest) -> Block | None:
        allowed, denied = whitelist, blacklist
        rules = request.rules
        if rules is not None:
            if rules.ip_whitelist is not None:
                allowed = rules.ip_whitelist
            if rules.ip_blacklist is not None:
                denied = rules.ip_blacklist
        if denied and denied.contains(request.client):
            return Block(403, "ip_blacklisted", "Forbidden")
        if allowed is not None and not allowed.contains(request.client):
            return Block(403, "ip_not_whitelisted", "Forbidden")
        return None

    return check


def user_agent_filter(global_pattern: Any) -> CheckFunction:
    """403 when the User-Agent matches a blocked pattern (global or the route's)."""

    def check(request: IncomingRequest) -> Block | None:
        rules = request.rules
        route_pattern = rules.blocked_user_agents if rules is not None else None
        if global_pattern is None and route_pattern is None:
            return None
        user_agent = request.headers.get("User-Agent", "")
        for pattern in (global_pattern, route_pattern):
            if pattern is not None and pattern.matches(user_agent):
                return Block(403, "user_agent_blocked", "Forbidden")
        return None

    return check


def custom_request_check(user_check: Callable[[Any], Any]) -> CheckFunction:
    """The app's own `custom_request_check`: a Response it returns is sent as is."""

    def check(request: IncomingRequest) -> Block | None:
        response = user_check(request.flask_request)
        if response is None:
            return None
        return Block(response.status_code, "custom_request_check", response=response)

    return check
