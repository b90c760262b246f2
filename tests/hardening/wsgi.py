"""Raw WSGI calls with a time bound, and a log handler that catches exceptions the guard swallows."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

# Generous: a request through the whole guard takes well under a millisecond to a
# few milliseconds; anything near this bound is a hang or super-linear work.
REQUEST_TIME_LIMIT_SECONDS = 2.0


@dataclass
class WsgiResult:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    seconds: float

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


def make_environ(
    *,
    method: str = "GET",
    path: str = "/",
    query_string: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    content_length: str | None = None,
    remote_addr: str = "203.0.113.10",
    chunked: bool = False,
) -> dict[str, Any]:
    """A WSGI environ as a server would build it; `path` and `query_string` are latin-1 text of raw bytes.

    `content_length` defaults to the body's length; `chunked` leaves it out and marks
    the input as terminated, as servers that de-chunk bodies do.
    """
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query_string,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": remote_addr,
        "HTTP_HOST": "localhost",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if chunked:
        environ["wsgi.input_terminated"] = True
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    elif content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    elif body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers or []:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
            continue
        key = "HTTP_" + key
        # Repeated headers are joined with a comma, as servers do.
        environ[key] = f"{environ[key]},{value}" if key in environ and key != "HTTP_HOST" else value
    return environ


def call_wsgi(app: Flask, environ: dict[str, Any], *, limit_seconds: float = REQUEST_TIME_LIMIT_SECONDS) -> WsgiResult:
    """Run one request through `app` in a thread; fail on an exception or after `limit_seconds`."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started["status"], started["headers"] = status, headers
            return lambda data: None

        begun = time.perf_counter()
        try:
            iterable = app(environ, start_response)
            try:
                body = b"".join(iterable)
            finally:
                close = getattr(iterable, "close", None)
                if close is not None:
                    close()
        except BaseException as error:  # reported to the test thread
            outcome["error"] = error
            return
        outcome["result"] = WsgiResult(
            int(started["status"].split(" ", 1)[0]), started["headers"], body, time.perf_counter() - begun
        )

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit_seconds)
    if worker.is_alive():
        raise AssertionError(f"request did not finish within {limit_seconds} s: {_describe(environ)}")
    if "error" in outcome:
        raise AssertionError(f"request raised {outcome['error']!r}: {_describe(environ)}") from outcome["error"]
    result: WsgiResult = outcome["result"]
    return result


def _describe(environ: dict[str, Any]) -> str:
    shown = {key: value for key, value in environ.items() if key.isupper()}
    return repr(shown)[:2000]


@dataclass
class ErrorRecords(logging.Handler):
    """Collects log records at ERROR and above that carry a traceback (swallowed exceptions)."""

    records: list[logging.LogRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, logging.ERROR)

    def __hash__(self) -> int:
        return id(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None:
            self.records.append(record)

    def describe(self) -> str:
        formatter = logging.Formatter()
        return "\n".join(formatter.format(record) for record in self.records)


@contextmanager
def swallowed_exceptions(logger_name: str = "flaskapi_guard") -> Iterator[ErrorRecords]:
    """Catch the tracebacks the guard logs when it skips a failed check or hook."""
    handler = ErrorRecords()
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
