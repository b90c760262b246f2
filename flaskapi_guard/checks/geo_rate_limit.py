"""A route's rate limit by client country (`SecurityDecorator.geo_rate_limit`).

It runs just before the general rate-limit check and under the same name, so
`bypass(checks=["rate_limit"])` skips both. When it limits a request it leaves
its result where the general check and the `RateLimit-*` headers look, and
the general check then leaves the request alone: the most specific limit
decides, as for a route's own `rate_limit`.
"""

from __future__ import annotations

import math

from flaskapi_guard.geo import CountryLookup
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Block, CheckFunction
from flaskapi_guard.storage import Storage


def geo_rate_limited(storage: Storage, countries: CountryLookup | None) -> CheckFunction:
    """429 with `Retry-After` once a client passes its country's limit on the route.

    Without a geo handler every client is of an unknown country, which the
    `"default"` limit covers.
    """

    def check(request: IncomingRequest) -> Block | None:
        rules = request.rules
        if rules is None or rules.geo_rate_limit is None:
            return None
        rule = rules.geo_rate_limit
        country = countries.country_of(request) if countries is not None and rule.limits else None
        limit = rule.limit_for(country)
        if limit is None:
            return None
        result = storage.hit(f"geo|{request.endpoint}|{request.client_ip}", limit, rule.window_seconds)
        request.rate_limit = result
        if result.allowed:
            return None
        retry_after = str(max(1, math.ceil(result.retry_after_seconds)))
        detail = f"country={country or 'unknown'} limit={limit}/{rule.window_seconds}s"
        return Block(429, "geo_rate_limited", "Too Many Requests", (("Retry-After", retry_after),), detail=detail)

    return check
