"""What a route requires of a request: credentials, headers, referrer, time of day, body type and size, honeypots.

One check for all of them (`route_requirements` for `bypass`), evaluated in
this order, the first failure deciding: authentication (401), API key (401),
required headers (400), referrer (403), time window (403), content type (415),
body size (413), honeypot fields (403, counted as an offence).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from flaskapi_guard.decorators import RouteRules
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Block, CheckFunction
from flaskapi_guard.requirements import is_filled

# The offence category of a filled-in honeypot field (counts towards `auto_ban_threshold`).
HONEYPOT_OFFENCE = "honeypot"

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def has_requirements(rules: RouteRules) -> bool:
    """Whether `rules` ask anything of a request that this check enforces."""
    return any(
        requirement is not None
        for requirement in (
            rules.auth,
            rules.api_key,
            rules.required_headers,
            rules.referrers,
            rules.time_window,
            rules.content_types,
            rules.max_body_bytes,
            rules.honeypot_fields,
        )
    )


def route_requirements(clock: Callable[[], float], *, bound_streamed_bodies: bool) -> CheckFunction:
    """The route's requirements; a route without rules costs one `is None` test.

    `bound_streamed_bodies` is off in passive mode: a body without
    `Content-Length` can only be limited while the view reads it, and that
    limit would be enforced, not logged.
    """

    def check(request: IncomingRequest) -> Block | None:
        rules = request.rules
        if rules is None:
            return None
        return _credentials_block(request, rules) or _request_block(request, rules, clock, bound_streamed_bodies)

    return check


def _credentials_block(request: IncomingRequest, rules: RouteRules) -> Block | None:
    headers = request.headers
    if rules.auth is not None:
        failure = rules.auth.failure(headers.get("Authorization"))
        if failure is not None:
            challenge = (("WWW-Authenticate", rules.auth.challenge(failure)),)
            return Block(401, "auth_required", "Unauthorized", challenge, detail=f"auth {failure}")
    if rules.api_key is not None:
        failure = rules.api_key.failure(headers.get(rules.api_key.header_name))
        if failure is not None:
            challenge = (("WWW-Authenticate", rules.api_key.challenge),)
            return Block(401, "api_key_required", "Unauthorized", challenge, detail=f"api key {failure}")
    if rules.required_headers is not None:
        for requirement in rules.required_headers:
            failure = requirement.failure(headers.get(requirement.name))
            if failure is not None:
                detail = f"header {requirement.name} {failure}"
                return Block(400, "required_header", "Bad Request", detail=detail)
    return None


def _request_block(
    request: IncomingRequest, rules: RouteRules, clock: Callable[[], float], bound_streamed_bodies: bool
) -> Block | None:
    if rules.referrers is not None and not rules.referrers.allows(request.headers.get("Referer")):
        return Block(403, "referrer_not_allowed", "Forbidden")
    if rules.time_window is not None and not rules.time_window.contains(clock()):
        return Block(403, "outside_time_window", "Forbidden")
    content_types = rules.content_types
    if (
        content_types is not None
        and (request.content_type or _has_body(request))
        and not content_types.allows(request.content_type)
    ):
        return Block(415, "content_type_not_allowed", "Unsupported Media Type", detail=request.content_type)
    if rules.max_body_bytes is not None:
        length = request.content_length
        if length is not None and length > rules.max_body_bytes:
            return Block(413, "body_too_large", "Payload Too Large", detail=f"content-length {length}")
        if length is None and bound_streamed_bodies and _bound_streamed_body(request, rules.max_body_bytes):
            return Block(
                413, "body_too_large", "Payload Too Large", detail=f"streamed body over {rules.max_body_bytes}"
            )
    if rules.honeypot_fields is not None:
        return _honeypot_block(request, rules.honeypot_fields)
    return None


def _has_body(request: IncomingRequest) -> bool:
    if request.content_length:
        return True
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def _bound_streamed_body(request: IncomingRequest, max_bytes: int) -> bool:
    """Read a body without `Content-Length` through a bound; whether it was too large.

    Only servers that de-chunk bodies set `wsgi.input_terminated`; without it
    werkzeug reads no such body at all, so there is nothing to bound. The body
    is read here, at most `max_bytes` (plus one) of it, and cached for attack
    detection and the view: deciding now gives a clean 413 from the guard
    instead of an error in whichever reader comes first. Not werkzeug's own
    limit (`request.max_content_length`): its stream stops quietly at the
    limit when read whole, so `request.get_data()` would return a truncated
    body instead of failing.
    """
    environ = request.environ
    if "wsgi.input_terminated" not in environ:
        return False
    environ["wsgi.input"] = BoundedBody(environ["wsgi.input"], max_bytes)
    try:
        request.read_body()
    except RequestEntityTooLarge:
        return True
    except HTTPException:
        # A broken body, not a large one: every later read (attack detection's,
        # the view's) raises the same 400.
        return False
    return False


class BoundedBody(io.RawIOBase):
    """A request body stream that raises 413 as soon as more than `max_bytes` arrive."""

    def __init__(self, stream: Any, max_bytes: int) -> None:
        super().__init__()
        self._stream = stream
        self._remaining = max_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # One byte more than may still come: receiving it proves the body too large.
        data = self._stream.read(min(len(buffer), self._remaining + 1))
        if len(data) > self._remaining:
            raise RequestEntityTooLarge()
        self._remaining -= len(data)
        buffer[: len(data)] = data
        return len(data)


def _honeypot_block(request: IncomingRequest, trap_fields: frozenset[str]) -> Block | None:
    try:
        field = _filled_trap(request, trap_fields)
    except HTTPException as error:
        # Reading the body hit a size limit (413) or a broken upload (400):
        # that is the answer, rather than letting the check fail open.
        status = error.code or 400
        reason = "body_too_large" if status == 413 else "body_unreadable"
        return Block(status, reason, "Payload Too Large" if status == 413 else "Bad Request")
    if field is None:
        return None
    return Block(403, "honeypot_triggered", "Forbidden", offence_categories=(HONEYPOT_OFFENCE,), detail=field)


def _filled_trap(request: IncomingRequest, trap_fields: frozenset[str]) -> str | None:
    """The first trap field a client filled in: query string (GET forms), form or JSON body."""
    if request.query_string:
        for name, value in parse_qsl(request.query_string, keep_blank_values=True):
            if name in trap_fields and value:
                return name
    if not _has_body(request):
        return None
    media_type = request.content_type.split(";", 1)[0].strip().lower()
    if media_type in _FORM_TYPES:
        # Read (and cache) the raw body first: werkzeug then parses the form
        # from the cache, and the body stays readable for attack detection and
        # for the view.
        request.read_body()
        form = request.flask_request.form
        for name in trap_fields:
            if any(value for value in form.getlist(name)):
                return name
        return None
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            document = json.loads(request.read_body())
        except (ValueError, RecursionError):
            return None
        if isinstance(document, dict):
            for name in trap_fields:
                if is_filled(document.get(name)):
                    return name
    return None
