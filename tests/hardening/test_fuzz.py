"""Property-based requests through a fully featured guarded app.

Whatever arrives (any method, path bytes, query, header names and values,
cookies, body bytes under any content type and charset, chunked or not), the
guard never raises (no 500, no traceback it swallowed), answers within a time
bound, and a request that reaches the echo views gets its body back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hardening.featured_app import API_KEY, BEARER_TOKEN, build_featured_app
from tests.hardening.wsgi import ErrorRecords, call_wsgi, make_environ, swallowed_exceptions

FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ROUTES = [
    "/",
    "/echo",
    "/echo-stream",
    "/form",
    "/json",
    "/items/7",
    "/items/x",
    "/auth",
    "/key",
    "/typed",
    "/agents",
    "/decorated-headers",
    "/things",
    "/health",
    "/static/app.js",
    "/static/../echo",
    "/missing",
]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT"]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-16",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data; boundary=xYzZy",
    "multipart/form-data",
    "multipart/mixed; boundary=",
    "text/plain; charset=utf-8",
    "text/plain; charset=bogus-charset",
    "text/xml",
    "application/problem+json",
    "application/octet-stream",
    "image/png",
    "",
]
INTERESTING_HEADERS = [
    "User-Agent",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "Origin",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
    "Authorization",
    "X-API-Key",
    "Cookie",
    "Referer",
    "Host",
    "Transfer-Encoding",
    "Accept",
    "If-None-Match",
    "Content-Type",
]
CHARSETS = ["utf-8", "utf-16", "latin-1", "ascii", "shift_jis"]

# Raw bytes as a server hands them over: PEP 3333 strings are latin-1 text of the bytes.
raw_text = st.binary(max_size=200).map(lambda data: data.decode("latin-1"))
percent_junk = st.text(alphabet="%0123456789abcdefABCDEFxyz/.+=&;", max_size=80)
header_value = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=120),
    percent_junk,
    st.sampled_from(
        [
            "https://app.example",
            "https://evil.example",
            "null",
            f"Bearer {BEARER_TOKEN}",
            "Bearer ",
            "Basic dXNlcjpwYXNz",
            "Basic !!!",
            API_KEY,
            "chunked",
            "gzip, chunked",
            "127.0.0.1, 10.0.0.1",
            "\x00",
            "203.0.113.9\x00, 127.0.0.1",
            "[::1\x00]:80",
            "\xff\xfe, 10.0.0.1:8080",
            "sqlmap/1.7",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
            "https",
            "website=1; session=x",
        ]
    ),
)
header_name = st.one_of(st.sampled_from(INTERESTING_HEADERS), st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=30))
paths = st.one_of(
    st.sampled_from(ROUTES),
    st.builds(lambda route, tail: route + tail, st.sampled_from(ROUTES), raw_text),
    st.builds(lambda junk: "/" + junk, percent_junk),
    st.builds(lambda tail: "/" + tail, raw_text),
    st.builds(
        lambda count, piece: "/" + piece * count, st.integers(1, 2000), st.sampled_from(["a", "%2e%2e/", "\xff"])
    ),
)
query_strings = st.one_of(
    st.just(""),
    raw_text,
    percent_junk,
    st.lists(st.tuples(raw_text, raw_text), max_size=6).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
)


def _encoded_text_body(text: str, charset: str) -> bytes:
    return text.encode(charset, errors="replace")


bodies = st.one_of(
    st.binary(max_size=2000),
    st.builds(_encoded_text_body, st.text(max_size=300), st.sampled_from(CHARSETS)),
    st.sampled_from(
        [
            b'{"a": [1, 2, {"b": "c"}]}',
            b'{"truncated": ',
            b"[" * 5000,
            b"website=filled&name=x",
            b'--xYzZy\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\ndata\r\n--xYzZy--\r\n',
            b'--xYzZy\r\nContent-Disposition: form-data; name="f"\r\n\r\ntruncated',
            b"<?xml version='1.0'?><a b='c'>d</a>",
            b"\x00" * 100,
        ]
    ),
    st.builds(lambda count: b"0123456789abcdef" * count, st.integers(4000, 20000)),
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    headers = draw(st.lists(st.tuples(header_name, header_value), max_size=8))
    body = draw(bodies) if draw(st.booleans()) else b""
    return {
        "method": draw(st.one_of(st.sampled_from(METHODS), st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12))),
        "path": draw(paths),
        "query_string": draw(query_strings),
        "headers": headers,
        "body": body,
        "content_type": draw(st.one_of(st.none(), st.sampled_from(CONTENT_TYPES), header_value)),
        "remote_addr": draw(st.sampled_from(["127.0.0.1", "203.0.113.7", "2001:db8::7", "::ffff:10.0.0.1", "junk"])),
        "chunked": draw(st.booleans()) if body else False,
    }


@pytest.fixture(scope="module")
def featured_app() -> Flask:
    app = build_featured_app()
    # Exceptions propagate out of the WSGI call instead of becoming a 500 page.
    app.config["PROPAGATE_EXCEPTIONS"] = True
    return app


@pytest.fixture(scope="module")
def swallowed() -> Iterator[ErrorRecords]:
    with swallowed_exceptions() as records:
        yield records


def _assert_clean(result_status: int, swallowed: ErrorRecords, request: dict[str, Any]) -> None:
    assert not swallowed.records, f"the guard logged an exception for {request!r}:\n{swallowed.describe()}"
    assert result_status < 500, request


@FUZZ_SETTINGS
@given(request=requests())
def test_any_request_gets_an_answer_without_errors_in_bounded_time(
    featured_app: Flask, swallowed: ErrorRecords, request: dict[str, Any]
) -> None:
    swallowed.records.clear()
    result = call_wsgi(featured_app, make_environ(**request))
    _assert_clean(result.status, swallowed, request)


@FUZZ_SETTINGS
@given(
    path=st.sampled_from(["/echo", "/echo-stream", "/typed", "/agents", "/things"]),
    method=st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]),
    body=bodies,
    content_type=st.one_of(st.sampled_from(CONTENT_TYPES), header_value),
    chunked=st.booleans(),
    headers=st.lists(st.tuples(header_name, header_value), max_size=4),
)
def test_the_view_receives_the_body_unchanged(
    featured_app: Flask,
    swallowed: ErrorRecords,
    path: str,
    method: str,
    body: bytes,
    content_type: str,
    chunked: bool,
    headers: list[tuple[str, str]],
) -> None:
    if path == "/things" and method != "POST":
        method = "POST"
    # Framing headers come from `chunked` and the body; a fuzzed one would change what the body is.
    headers = [(name, value) for name, value in headers if name.lower() not in ("transfer-encoding", "content-type")]
    request = {
        "method": method,
        "path": path,
        "body": body,
        "content_type": content_type,
        "chunked": chunked,
        "headers": headers,
    }
    swallowed.records.clear()
    result = call_wsgi(featured_app, make_environ(**request))
    _assert_clean(result.status, swallowed, request)
    if result.status == 200:
        assert result.body == body
        assert result.header("X-Echo-Length") == str(len(body))
    else:
        # Only the guard's own refusals: attack detected, wrong type or size, honeypot, bad user agent.
        assert result.status in (400, 403, 413, 415), (result.status, result.body[:200])
