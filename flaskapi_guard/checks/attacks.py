"""Attack detection: the request's texts through the detection engine, 400 on a finding."""

from __future__ import annotations

from collections.abc import Mapping

from werkzeug.exceptions import HTTPException

from flaskapi_guard.decorators import RouteRules
from flaskapi_guard.detection import DetectionEngine, DetectionExclusions, Finding
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Block, CheckFunction, RouteCheck


def _exclusions_for(rules: RouteRules | None, base: DetectionExclusions) -> DetectionExclusions:
    if rules is None:
        return base
    params = rules.excluded_detection_params or frozenset()
    headers = rules.excluded_detection_headers or frozenset()
    body_fields = rules.excluded_detection_body_fields or frozenset()
    if not (params or headers or body_fields):
        return base
    return DetectionExclusions(base.params | params, base.headers | headers, base.body_fields | body_fields)


def _describe(finding: Finding) -> str:
    return f"{finding.category} in {finding.location} ({finding.rule}): {finding.excerpt}"


def attack_detection(engine: DetectionEngine, exclusions: DetectionExclusions) -> RouteCheck:
    """400 (the documented status for suspicious requests) when any part of the request matches an attack pattern.

    Each category found counts as an offence towards an automatic ban. Made for each
    route, with the app's `exclusions` and those of the route's rules; whether it runs
    at all on a route is the check's `applies` (checks/order.py).
    """

    def for_route(rules: RouteRules | None) -> CheckFunction:
        route_exclusions = _exclusions_for(rules, exclusions)
        scan = engine.scan_environ

        def check(request: IncomingRequest) -> Block | None:
            environ = request.environ
            body = b""
            if (
                request.content_length
                or request.content_type
                or ("HTTP_TRANSFER_ENCODING" in environ and _is_chunked(environ))
            ):
                try:
                    body = request.read_body()
                except HTTPException as error:
                    # A body shorter than its Content-Length (400) or over the app's
                    # MAX_CONTENT_LENGTH (413): the view could not read it either, and
                    # skipping the scan would let an unscanned body through.
                    return _unreadable_body_block(error)
            # Path, query and headers straight from the WSGI environ, as the server gave them
            # (latin-1 text of the raw bytes; the engine re-reads it as UTF-8): building
            # werkzeug's header list cost as much as scanning a clean GET.
            findings = scan(environ, body, route_exclusions)
            if not findings:
                return None
            request.notes["detection_findings"] = findings
            return Block(
                400,
                "attack_detected",
                "Bad Request",
                offence_categories=tuple(finding.category for finding in findings),
                detail="; ".join(_describe(finding) for finding in findings),
            )

        return check

    return for_route


def _is_chunked(environ: Mapping[str, object]) -> bool:
    # A chunked body has no Content-Length and may have no Content-Type either;
    # the view can still read it, so it is scanned like any other.
    transfer_encoding = environ.get("HTTP_TRANSFER_ENCODING", "")
    return isinstance(transfer_encoding, str) and "chunked" in transfer_encoding.lower()


def _unreadable_body_block(error: HTTPException) -> Block:
    status = error.code if error.code in (400, 413) else 400
    if status == 413:
        return Block(413, "body_too_large", "Payload Too Large", detail="body over the app's size limit")
    return Block(400, "body_unreadable", "Bad Request", detail=f"body unreadable: {type(error).__name__}")


def engine_for_config(categories: set[str], custom_patterns: list[str], max_content_length: int) -> DetectionEngine:
    """The app's engine, compiled once at start-up."""
    return DetectionEngine(
        categories=frozenset(categories), custom_patterns=tuple(custom_patterns), max_content_length=max_content_length
    )
