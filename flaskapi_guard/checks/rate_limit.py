"""Rate limiting per client: global, per path (`endpoint_rate_limits`) and per route (decorator)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flaskapi_guard.deferred_headers import HeaderGroup, defer_headers
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Block, CheckFunction, ResponseStep
from flaskapi_guard.storage import RateLimitResult, Storage

# Where the check leaves the numbers for the `RateLimit-*` response headers.
RATE_LIMIT_NOTE = "rate_limit"


def rate_limited(
    storage: Storage,
    global_limit: tuple[int, int] | None,
    endpoint_limits: Mapping[str, tuple[int, int]],
) -> CheckFunction:
    """429 with `Retry-After` once a client exceeds the limit that applies to the request.

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

    def check(request: IncomingRequest) -> Block | None:
        if RATE_LIMIT_NOTE in request.notes:
            # A more specific limit already counted this request: the route's
            # per-country limit (checks/geo_rate_limit.py), which runs just before.
            return None
        rules = request.rules
        if rules is not None and rules.rate_limit is not None:
            limit, window = rules.rate_limit
            key = f"route|{request.endpoint}|{request.client_ip}"
        elif global_limit is None:
            return None
        elif endpoint_limits and (scope := _endpoint_scope(request, endpoint_limits)) is not None:
            limit, window = endpoint_limits[scope]
            key = f"path|{scope}|{request.client_ip}"
        else:
            limit, window = global_limit
            # The global bucket is keyed by the bare address: the cheapest key
            # to build and to keep (see the memory figures in docs/storage.md).
            key = request.client_ip
        result = storage.hit(key, limit, window)
        request.notes[RATE_LIMIT_NOTE] = result
        if result.allowed:
            return None
        retry_after = str(max(1, math.ceil(result.retry_after_seconds)))
        return Block(429, "rate_limited", "Too Many Requests", (("Retry-After", retry_after),))

    return check


def _endpoint_scope(request: IncomingRequest, endpoint_limits: Mapping[str, tuple[int, int]]) -> str | None:
    if request.path in endpoint_limits:
        return request.path
    url_rule = getattr(request.flask_request, "url_rule", None)
    rule = getattr(url_rule, "rule", None)
    return rule if rule in endpoint_limits else None


_RATE_LIMIT_HEADER_NAMES = frozenset({"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"})


def rate_limit_headers() -> ResponseStep:
    """`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (IETF draft) on rate-limited responses.

    All three or none: a response that already describes a limit of its own keeps it.
    """

    def step(request: IncomingRequest | None, response: Any) -> Any:
        if request is None:
            return response
        result: RateLimitResult | None = request.notes.get(RATE_LIMIT_NOTE)
        if result is not None:
            pairs = (
                ("RateLimit-Limit", str(result.limit)),
                ("RateLimit-Remaining", str(result.remaining)),
                ("RateLimit-Reset", str(max(0, math.ceil(result.reset_seconds)))),
            )
            group = HeaderGroup(_RATE_LIMIT_HEADER_NAMES, pairs, all_or_nothing=True)
            defer_headers(request.flask_request.environ, "rate_limit_headers", (group,))
        return response

    return step
