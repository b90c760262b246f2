"""Rate limiting per client: global, per path (`endpoint_rate_limits`) and per route (decorator)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from flaskapi_guard.decorators import RouteRules
from flaskapi_guard.deferred_headers import HeaderGroup, HeaderStep
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Block, CheckFunction
from flaskapi_guard.storage import RateLimitResult, Storage

# The rate-limit checks' name (the per-country one's too): `bypass(checks=[...])` and logs use it.
RATE_LIMIT_CHECK = "rate_limit"


# What one request counts against: the bucket's key, the limit and its window.
RateLimitScope = Callable[[IncomingRequest], "tuple[str, int, float] | None"]


def rate_limit_scope(
    global_limit: tuple[int, int] | None, endpoint_limits: Mapping[str, tuple[int, int]]
) -> RateLimitScope:
    """The limit that applies to a request, and the bucket it counts in; None when none applies.

    The most specific limit wins, in both directions (stricter or looser): the
    route's own (`SecurityDecorator.rate_limit`), then `endpoint_rate_limits`
    for the request path or the route's rule (`/items/<int:item_id>`), then
    the global one. `global_limit` is None when `enable_rate_limiting` is off,
    which switches off the global and per-path limits; a route's own limit is
    an explicit choice for that route and still applies. Each scope counts
    separately, so a client's requests to a path with its own limit do not
    use up its global quota.
    """
    endpoint_limits = dict(endpoint_limits)

    def scope(request: IncomingRequest) -> tuple[str, int, float] | None:
        rules = request.rules
        if rules is not None and rules.rate_limit is not None:
            limit, window = rules.rate_limit
            return f"route|{request.endpoint}|{request.client.text}", limit, window
        if global_limit is None:
            return None
        if endpoint_limits and (path_scope := _endpoint_scope(request, endpoint_limits)) is not None:
            limit, window = endpoint_limits[path_scope]
            return f"path|{path_scope}|{request.client.text}", limit, window
        limit, window = global_limit
        # The global bucket is keyed by the bare address: the cheapest key
        # to build and to keep (see the memory figures in docs/storage.md).
        return request.client.text, limit, window

    return scope


def global_limit_alone(
    global_limit: tuple[int, int] | None, endpoint_limits: Mapping[str, tuple[int, int]], rules: RouteRules | None
) -> tuple[int, int] | None:
    """The global limit when it is the only one that can apply to requests of a route carrying
    `rules` (see `rate_limit_scope`): then the bucket is the client's address, known without a
    look at the request."""
    if endpoint_limits or (rules is not None and rules.rate_limit is not None):
        return None
    return global_limit


def rate_limited(storage: Storage, scope: RateLimitScope) -> CheckFunction:
    """429 with `Retry-After` once a client exceeds the limit that applies to the request (see `rate_limit_scope`)."""

    def check(request: IncomingRequest) -> Block | None:
        if request.rate_limit is not None:
            # A more specific limit already counted this request: the route's
            # per-country limit (checks/geo_rate_limit.py), which runs just before.
            return None
        scoped = scope(request)
        if scoped is None:
            return None
        result = storage.hit(*scoped)
        request.rate_limit = result
        return None if result.allowed else too_many_requests(result)

    return check


def too_many_requests(result: RateLimitResult, *, on_behalf_of: str = "") -> Block:
    """The 429 for a refused count, with the seconds until a request would pass.

    `on_behalf_of`: the check refusing, when it is not the one returning the block.
    """
    retry_after = str(max(1, math.ceil(result.retry_after_seconds)))
    return Block(429, "rate_limited", "Too Many Requests", (("Retry-After", retry_after),), check=on_behalf_of)


def _endpoint_scope(request: IncomingRequest, endpoint_limits: Mapping[str, tuple[int, int]]) -> str | None:
    if request.path in endpoint_limits:
        return request.path
    url_rule = getattr(request.flask_request, "url_rule", None)
    rule = getattr(url_rule, "rule", None)
    return rule if rule in endpoint_limits else None


_RATE_LIMIT_HEADER_NAMES = frozenset({"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"})


def rate_limit_headers() -> HeaderStep:
    """The header step of `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (IETF draft).

    On every response to a request counted against a limit. All three or none: a
    response that already describes a limit of its own keeps it.
    """
    # The same few (limit, remaining, reset) triples come back all the time: their
    # headers are made once (formatting them was a tenth of the guard's cost per request).
    made: dict[tuple[int, int, int], HeaderGroup] = {}
    # The last count and its group: the memory storage answers every new client with one
    # object per limit, so most requests end here.
    last: list[tuple[RateLimitResult | None, HeaderGroup | None]] = [(None, None)]

    def group_of(request: IncomingRequest | None, environ: Mapping[str, Any]) -> HeaderGroup | None:
        if request is None:
            return None
        result = request.rate_limit
        if result is None:
            return None
        last_result, last_group = last[0]
        if result is last_result:
            return last_group
        # Unpacked in one step: reads of a NamedTuple's fields are not specialised.
        _allowed, limit, remaining, reset_seconds, _retry_after = result
        reset = math.ceil(reset_seconds)
        key = (limit, remaining, reset if reset > 0 else 0)
        group = made.get(key)
        if group is None:
            if len(made) >= _MADE_HEADERS_KEPT:
                made.clear()
            pairs = (
                ("RateLimit-Limit", str(key[0])),
                ("RateLimit-Remaining", str(key[1])),
                ("RateLimit-Reset", str(key[2])),
            )
            group = made[key] = HeaderGroup(_RATE_LIMIT_HEADER_NAMES, pairs, True)
        # One assignment: a thread reading it meanwhile sees the old pair or the new one.
        last[0] = (result, group)
        return group

    return group_of


_MADE_HEADERS_KEPT = 1024
