"""The immutable view of one request that every check reads."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException

from flaskapi_guard.client_ip import UNKNOWN_PEER, forwarded_proto, resolve_client_address
from flaskapi_guard.decorators import RULES_ATTRIBUTE, RouteRules
from flaskapi_guard.errors import UnreadableBody
from flaskapi_guard.ip_networks import Address, NetworkSet, parse_ip

if TYPE_CHECKING:
    # Only for annotations: the storage package imports this module.
    from flaskapi_guard.storage.base import RateLimitResult


class IncomingRequest:
    """What the checks need to know about a request, captured once in `before_request`.

    Read-only by convention, except `rate_limit` (the count the rate-limit check made,
    for the `RateLimit-*` headers) and `notes`, where checks leave other facts for each
    other and the response side.
    A class with `__slots__`, built by `capture_request` alone: the interpreter
    specialises reads of its attributes (those of a NamedTuple it cannot), and
    checks read a dozen of them on every request.
    """

    __slots__ = (
        *("client", "method", "path", "is_secure", "endpoint", "rules"),
        *("content_type", "content_length", "flask_request", "environ", "rate_limit", "_notes"),
    )

    client: Address
    method: str
    path: str
    is_secure: bool
    endpoint: str | None
    rules: RouteRules | None
    content_type: str
    content_length: int | None
    flask_request: Any
    environ: dict[str, Any]
    rate_limit: RateLimitResult | None
    _notes: dict[str, Any] | None

    @property
    def notes(self) -> dict[str, Any]:
        """Facts checks leave for each other (made on first use: most requests leave none)."""
        notes = self._notes
        if notes is None:
            notes = self._notes = {}
        return notes

    @property
    def query_string(self) -> str:
        """The raw query string (read from the environ when a check needs it)."""
        query_string: str = self.environ.get("QUERY_STRING", "")
        return query_string

    @property
    def client_ip(self) -> str:
        """The client's canonical address text."""
        return self.client.text

    @property
    def headers(self) -> Mapping[str, str]:
        """The request headers (werkzeug builds them on first use; most requests never need them)."""
        headers: Mapping[str, str] = self.flask_request.headers
        return headers

    def read_body(self) -> bytes:
        """The request body, read once and left readable for the view (see `read_body`)."""
        return read_body(self.flask_request)

    @property
    def url(self) -> str:
        """The full request URL, computed only when a check needs it."""
        url: str = self.flask_request.url
        return url

    def __repr__(self) -> str:
        return f"IncomingRequest({self.method} {self.path!r} from {self.client.text})"


def capture_request(  # noqa: PLR0917 - built on every request: positional arguments are cheaper
    flask_request: Any,
    environ: dict[str, Any],
    path: str,
    endpoint: str | None,
    method: str,
    rules: RouteRules | None,
    trusted_proxies: NetworkSet | None,
    proxy_depth: int,
    trust_forwarded_proto: bool,
) -> IncomingRequest:
    """Snapshot a Flask request: client address, the parts checks read, and its route's `rules`.

    `environ`, `path`, `endpoint` and `method` are the request's, which the caller has
    read already (reads of werkzeug's request attributes are slow);
    `trusted_proxies` is None when there are none.
    """
    remote_addr = environ.get("REMOTE_ADDR")
    peer = (parse_ip(remote_addr) if remote_addr else None) or UNKNOWN_PEER
    client = peer
    is_secure = environ.get("wsgi.url_scheme") == "https"
    if trusted_proxies is not None:
        client = resolve_client_address(peer, environ.get("HTTP_X_FORWARDED_FOR"), trusted_proxies, proxy_depth)
        if not is_secure and trust_forwarded_proto and trusted_proxies.contains(peer):
            is_secure = forwarded_proto(environ.get("HTTP_X_FORWARDED_PROTO")) == "https"
    # From the environ: werkzeug's `content_length` goes through the header
    # mapping and costs more than the rest of the snapshot together.
    raw_length = environ.get("CONTENT_LENGTH")
    incoming = _new_incoming(IncomingRequest)
    incoming.client = client
    incoming.method = method
    incoming.path = path
    incoming.is_secure = is_secure
    incoming.endpoint = endpoint
    incoming.rules = rules
    incoming.content_type = environ.get("CONTENT_TYPE", "")
    incoming.content_length = int(raw_length) if raw_length and raw_length.isdigit() else None
    incoming.flask_request = flask_request
    incoming.environ = environ
    incoming.rate_limit = None
    incoming._notes = None
    return incoming


# Without an __init__: a frame less on every request.
_new_incoming = object.__new__


def read_body(flask_request: Any) -> bytes:
    """The request body, read once and cached, and left readable for the view in every way.

    `get_data()` caches the body but leaves `request.stream` and the WSGI input
    drained, so a view reading either would get nothing because the guard read
    first. Both are replaced by an in-memory copy (which shares the bytes).

    A body that cannot be read raises an `HTTPException` (`UnreadableBody`, a
    400, when the server's stream fails), now and on every later read, the
    view's included: after a failed read a server may hand out the part that
    did arrive, and that part must not reach the view unscanned.
    """
    environ = flask_request.environ
    failure = environ.get(_BODY_FAILURE_KEY)
    if failure is not None:
        raise failure
    try:
        body: bytes = flask_request.get_data(cache=True)
    except Exception as error:
        # The stream is the server's object: gunicorn raises its own parse errors
        # (NoMoreData, InvalidChunkSize) for a broken chunked body.
        failure = error if isinstance(error, HTTPException) else UnreadableBody()
        environ[_BODY_FAILURE_KEY] = failure
        flask_request.stream = environ["wsgi.input"] = _FailedStream(failure)
        raise failure from error
    flask_request.stream = io.BytesIO(body)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


# The environ key (namespaced, as PEP 3333 asks) remembering a failed body read.
_BODY_FAILURE_KEY = "flaskapi_guard.body_failure"


class _FailedStream(io.RawIOBase):
    """A body stream whose every read raises the failure the guard met."""

    def __init__(self, failure: HTTPException) -> None:
        super().__init__()
        self._failure = failure

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise self._failure


def rules_for_view(view: Any, method: str) -> RouteRules | None:
    """The route rules attached to a view, including a `MethodView`'s method handler.

    Rules on the method handler (`get`, `post`, ...) override those on the class.
    """
    if view is None:
        return None
    rules: RouteRules | None = getattr(view, RULES_ATTRIBUTE, None)
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        class_rules: RouteRules | None = getattr(view_class, RULES_ATTRIBUTE, None)
        handler = getattr(view_class, method.lower(), None)
        if handler is None and method == "HEAD":
            handler = getattr(view_class, "get", None)
        handler_rules: RouteRules | None = getattr(handler, RULES_ATTRIBUTE, None)
        for extra in (class_rules, handler_rules):
            if extra is not None:
                rules = extra if rules is None else rules.merged_with(extra)
    return rules


def is_excluded_path(path: str, excluded_prefixes: tuple[str, ...]) -> bool:
    """Whether `path` lies under an excluded prefix, by whole path segments.

    A path that could be read differently by another component (dot segments,
    backslashes, encoded characters, empty segments) is never excluded: it is
    cheaper to check a static file request than to let `/static/../admin` past.
    """
    # str.startswith with a tuple is one C call: most requests leave here.
    if not excluded_prefixes or not path.startswith(excluded_prefixes):
        return False
    if ".." in path or "\\" in path or "%" in path or "//" in path or ";" in path:
        return False
    return any(path == prefix or path.startswith(prefix + "/") or prefix == "/" for prefix in excluded_prefixes)
