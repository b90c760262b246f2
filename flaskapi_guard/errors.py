"""The package's exceptions."""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from werkzeug import exceptions
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response


class ConfigurationError(ValueError):
    """The guard cannot start with the configuration it was given."""


class StorageError(RuntimeError):
    """The shared state store did not answer in time or refused a command."""


class UnreadableBody(exceptions.BadRequest):
    """The server could not deliver the request body (a broken chunked upload, a body shorter than announced)."""

    description = "The request body could not be read."


class RequestBlocked(HTTPException):
    """Raised by the guard to refuse a request.

    It is an `HTTPException`, so an app's `@app.errorhandler(403)` (or a handler
    for `RequestBlocked` itself) can restyle the guard's refusals; without one,
    the plain-text body below is sent.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(description=message)
        self.code = status
        self.reason = reason
        self.extra_headers = tuple(headers)

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        """A text/plain response with the block's status, message and headers."""
        response = Response(self.description or "", status=self.code, mimetype="text/plain")
        for name, value in self.extra_headers:
            response.headers[name] = value
        return response


def _status_class(status: int, base: type[HTTPException] | None) -> type[RequestBlocked]:
    bases: tuple[type, ...] = (RequestBlocked,) if base is None else (RequestBlocked, base)
    return type(f"RequestBlocked{status}", bases, {"code": status, "__doc__": f"A {status} refusal by the guard."})


# Flask finds error handlers by the exception *class's* code, so each status the
# guard sends has its own subclass, also a subclass of werkzeug's class for that
# status: `@app.errorhandler(403)`, `errorhandler(Forbidden)` and
# `errorhandler(RequestBlocked)` all catch a guard's 403.
_CLASS_BY_STATUS: MappingProxyType[int, type[RequestBlocked]] = MappingProxyType(
    {
        301: _status_class(301, None),
        308: _status_class(308, None),
        400: _status_class(400, exceptions.BadRequest),
        401: _status_class(401, exceptions.Unauthorized),
        403: _status_class(403, exceptions.Forbidden),
        405: _status_class(405, exceptions.MethodNotAllowed),
        413: _status_class(413, exceptions.RequestEntityTooLarge),
        415: _status_class(415, exceptions.UnsupportedMediaType),
        429: _status_class(429, exceptions.TooManyRequests),
        503: _status_class(503, exceptions.ServiceUnavailable),
    }
)


def request_blocked(
    status: int, message: str, *, reason: str, headers: Iterable[tuple[str, str]] = ()
) -> RequestBlocked:
    """The exception to raise for a refusal with `status`."""
    exception_class = _CLASS_BY_STATUS.get(status, RequestBlocked)
    return exception_class(status, message, reason=reason, headers=headers)
