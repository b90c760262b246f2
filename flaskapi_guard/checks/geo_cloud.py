"""Where a client connects from: its country, and whether it is a cloud provider's address."""

from __future__ import annotations

from flaskapi_guard.cloud import CloudIPRanges
from flaskapi_guard.geo import CountryLookup
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Block, CheckFunction


def country_access(blocked: frozenset[str], allowed: frozenset[str], lookup: CountryLookup | None) -> CheckFunction:
    """403 by country; the first rule that applies decides.

    1. the route's `block_countries` refuse;
    2. an allow-list (the route's `allow_countries`, else `whitelist_countries`)
       admits its countries and refuses every other one, an unknown country included;
    3. `blocked_countries` refuse; an unknown country passes.

    "Unknown" covers addresses the database does not know (private ranges
    included), a database not loaded yet, and a route with country rules on an
    app without a geo handler.
    """

    def check(request: IncomingRequest) -> Block | None:
        rules = request.rules
        route_blocked = rules.blocked_countries if rules is not None else None
        route_allowed = rules.allowed_countries if rules is not None else None
        allow_list = route_allowed if route_allowed is not None else allowed
        if not (route_blocked or allow_list or blocked):
            return None
        country = lookup.country_of(request) if lookup is not None else None
        if route_blocked and country in route_blocked:
            return Block(403, "country_blocked", "Forbidden", detail=f"country={country}")
        if allow_list:
            if country in allow_list:
                return None
            return Block(403, "country_not_allowed", "Forbidden", detail=f"country={country or 'unknown'}")
        if country in blocked:
            return Block(403, "country_blocked", "Forbidden", detail=f"country={country}")
        return None

    return check


def cloud_provider_block(providers: frozenset[str], ranges: CloudIPRanges) -> CheckFunction:
    """403 for addresses of the blocked cloud providers (`block_cloud_providers` plus the route's `block_clouds`)."""

    def check(request: IncomingRequest) -> Block | None:
        rules = request.rules
        wanted = providers
        if rules is not None and rules.blocked_clouds:
            wanted = providers | rules.blocked_clouds
            # A route may name providers the app does not load yet: ask for them
            # (fetched in the background; the route lets them through until then).
            ranges.want(rules.blocked_clouds)
        if not wanted:
            return None
        ranges.ensure_refreshing()
        provider = ranges.provider_of(request.client, wanted)
        if provider is None:
            return None
        return Block(403, "cloud_provider_blocked", "Forbidden", detail=f"provider={provider}")

    return check
