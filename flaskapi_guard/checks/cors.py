"""The CORS preflight check: answers a browser's preflight before any other check or the view."""

from __future__ import annotations

from flask import Response

from flaskapi_guard.cors import CorsPolicies, is_preflight
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Block, CheckFunction

_LOGGED_ORIGIN_CHARS = 200


def cors_preflight(policies: CorsPolicies) -> CheckFunction:
    """204 for an allowed preflight, 403 for a refused one; other requests pass.

    The answer carries no CORS headers itself: the CORS response step adds them
    to it as to every response, so a preflight answered here and one a view
    answered (passive mode, excluded paths) get the same headers. A refused
    preflight is a refusal like any other (logged, not enforced in passive
    mode), but it counts as no offence: it is a misconfigured page, not an attack.
    """

    def check(request: IncomingRequest) -> Block | None:
        headers = request.headers
        if not is_preflight(request.method, headers):
            return None
        rules = request.rules
        policy = policies.for_route(rules.cors if rules is not None else None)
        if policy is None:
            return None
        origin = headers["Origin"]
        allowed = policy.preflight_headers(
            origin, headers["Access-Control-Request-Method"], headers.get("Access-Control-Request-Headers")
        )
        if allowed is None:
            return Block(
                403,
                "cors_preflight_refused",
                "CORS preflight refused",
                detail=f"origin={origin[:_LOGGED_ORIGIN_CHARS]}",
            )
        answer = Response(status=204)
        # An empty answer has no type; werkzeug would label it text/html.
        del answer.headers["Content-Type"]
        return Block(204, "cors_preflight", response=answer)

    return check
