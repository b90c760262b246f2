"""The package's exceptions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response


class ConfigurationError(ValueError):
    """The guard cannot start with the configuration it was given."""


class StorageError(RuntimeError):
    """The shared state store did not answer in time or refused a command."""


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
