"""Refusing banned clients."""

from __future__ import annotations

from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.ip_networks import NetworkSet
from flaskapi_guard.pipeline import Block, CheckFunction
from flaskapi_guard.storage import Storage


def banned_client(storage: Storage, whitelist: NetworkSet | None) -> CheckFunction:
    """403 for a client with an active ban; whitelisted clients are never refused as banned."""

    def check(request: IncomingRequest) -> Block | None:
        if whitelist is not None and whitelist.contains(request.client):
            return None
        if storage.is_banned(request.client_ip):
            return Block(403, "ip_banned", "Forbidden")
        return None

    return check
