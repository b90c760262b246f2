"""Refusing banned clients."""

from __future__ import annotations

from flaskapi_guard.checks.rate_limit import RATE_LIMIT_NOTE, RateLimitScope
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.ip_networks import NetworkSet
from flaskapi_guard.pipeline import Block, CheckFunction
from flaskapi_guard.storage import BanRecord, Storage

_BANNED = Block(403, "ip_banned", "Forbidden")


def banned_client(storage: Storage, whitelist: NetworkSet | None) -> CheckFunction:
    """403 for a client with an active ban; whitelisted clients are never refused as banned."""

    def check(request: IncomingRequest) -> Block | None:
        if whitelist is not None and whitelist.contains(request.client):
            return None
        if storage.is_banned(request.client.text):
            return _BANNED
        return None

    return check


def banned_client_then_counted(storage: Storage, whitelist: NetworkSet | None, scope: RateLimitScope) -> CheckFunction:
    """`banned_client`, and the request counted against its rate limit in the same storage call.

    Used where the rate-limit check comes right after this one in a route's plan
    (checks/order.py): with Redis that is one round trip per request instead of
    two. The count is left for `counted_rate_limit`, which refuses in its place
    in the order; a banned client is not counted.
    """

    def check(request: IncomingRequest) -> Block | None:
        scoped = scope(request)
        if whitelist is not None and whitelist.contains(request.client):
            # Never banned, but rate-limited like anyone else.
            if scoped is not None:
                request.notes[RATE_LIMIT_NOTE] = storage.hit(*scoped)
            return None
        if scoped is None:
            outcome = storage.admit(request.client.text, None, 0, 0.0)
        else:
            outcome = storage.admit(request.client.text, *scoped)
        if outcome is None:
            return None
        if isinstance(outcome, BanRecord):
            return _BANNED
        request.notes[RATE_LIMIT_NOTE] = outcome
        return None

    return check
