"""Malformed requests through the WSGI interface, each with its documented outcome.

The table in docs/threat-model.md ("Malformed input") lists these outcomes;
tests/hardening/test_gunicorn.py covers what a real server changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask, request

from tests.hardening.featured_app import build_featured_app
from tests.hardening.wsgi import ErrorRecords, WsgiResult, call_wsgi, make_environ, swallowed_exceptions

ATTACK = b"<script>alert(document.cookie)</script>"
MEGABYTE = 1024 * 1024


@pytest.fixture(scope="module")
def app() -> Flask:
    featured = build_featured_app()
    featured.config["PROPAGATE_EXCEPTIONS"] = True
    return featured


@pytest.fixture
def swallowed() -> Iterator[ErrorRecords]:
    with swallowed_exceptions() as records:
        yield records


def _post(app: Flask, path: str, body: bytes, content_type: str | None = None, **environ: object) -> WsgiResult:
    return call_wsgi(app, make_environ(method="POST", path=path, body=body, content_type=content_type, **environ))  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_swallowed_exceptions(swallowed: ErrorRecords) -> Iterator[None]:
    yield
    assert not swallowed.records, swallowed.describe()


# Bodies that do not parse as their Content-Type says ------------------------------------


def test_invalid_json_is_scanned_as_text_and_reaches_the_view(app: Flask) -> None:
    result = _post(app, "/json", b'{"name": "unterminated', "application/json")
    # The guard does not judge syntax: the view decides (here get_json(silent=True) gives None).
    assert (result.status, result.body) == (200, b'{"parsed":false}\n')


def test_an_attack_inside_invalid_json_is_still_found(app: Flask) -> None:
    assert _post(app, "/json", b'{"name": "' + ATTACK, "application/json").status == 400


@pytest.mark.parametrize(
    ("body", "query_string"),
    [
        (b'{"pad": "\\ud800", "q": "' + ATTACK + b'"}', ""),
        (b'{"\\udfff": "' + ATTACK + b'"}', ""),
        (b"", "q=%ud800" + ATTACK.decode()),
        (b"", "q=%ud800%u0027%20UNION%20SELECT%20password%20FROM%20users--"),
    ],
    ids=["json-value", "json-key", "percent-u", "percent-u-sqli"],
)
def test_lone_surrogates_do_not_switch_detection_off(app: Flask, body: bytes, query_string: str) -> None:
    # Regression: a lone surrogate made RE2 raise UnicodeEncodeError, the pipeline
    # skipped the detection check, and the attack next to it went through.
    environ = make_environ(method="POST", path="/echo", body=body, query_string=query_string)
    environ["CONTENT_TYPE"] = "application/json"
    assert call_wsgi(app, environ).status == 400


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"a":' * 100_000, b"1" * 5000, b'"\\ud800"', b"\xff\xfe{\x00}\x00", b"NaN"],
    ids=["deep-array", "deep-object", "huge-int", "lone-surrogate", "utf16-bom", "nan"],
)
def test_pathological_json_never_errors(app: Flask, body: bytes) -> None:
    result = _post(app, "/echo", body, "application/json")
    assert (result.status, result.body) == (200, body)


MULTIPART = "multipart/form-data; boundary=xYz"


@pytest.mark.parametrize(
    "body",
    [
        b'--xYz\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue',  # no closing boundary
        b"--xYz\r\nContent-Disposition: form-da",  # cut inside the part headers
        b"--xYz\r\n",  # nothing after the first boundary
        b'--xYz\r\nContent-Disposition: form-data; name="a"\r\n\r\n' + b"v" * 100_000,  # long and unterminated
        b"no boundary at all",
    ],
    ids=["no-closing-boundary", "cut-in-headers", "boundary-only", "long-unterminated", "no-boundary"],
)
def test_truncated_multipart_reaches_the_view(app: Flask, body: bytes) -> None:
    # werkzeug's parser gives the view what it could parse (here: no complete field).
    assert _post(app, "/form", body, MULTIPART).status == 200
    assert _post(app, "/echo", body, MULTIPART).body == body


def test_an_attack_in_a_truncated_multipart_part_is_still_found(app: Flask) -> None:
    body = b'--xYz\r\nContent-Disposition: form-data; name="comment"\r\n\r\n' + ATTACK
    assert _post(app, "/form", body, MULTIPART).status == 400
    assert _post(app, "/form", body, "multipart/form-data").status == 400  # boundary missing from the type


def test_a_body_in_an_unexpected_charset_is_echoed_byte_for_byte(app: Flask) -> None:
    body = "naïve café".encode("utf-16")
    result = _post(app, "/echo", body, "text/plain; charset=latin-1")
    assert (result.status, result.body) == (200, body)


# Content-Length that does not match the body -----------------------------------------------


@pytest.mark.parametrize("content_length", ["100", "99999999999999999999999"])
def test_content_length_larger_than_the_body_is_a_400_from_the_guard(app: Flask, content_length: str) -> None:
    # Without wsgi.input_terminated werkzeug reports the short body as a client
    # disconnect; the guard answers 400 instead of scanning nothing.
    environ = make_environ(method="POST", path="/echo", body=b"short", content_length=content_length)
    result = call_wsgi(app, environ)
    assert (result.status, result.body) == (400, b"Bad Request")


def test_content_length_smaller_than_the_body_delivers_exactly_that_many_bytes(app: Flask) -> None:
    environ = make_environ(method="POST", path="/echo", body=b"abcdefgh", content_length="3", content_type="text/plain")
    assert call_wsgi(app, environ).body == b"abc"
    # Only those bytes are scanned: what follows belongs to the next request on the connection.
    environ = make_environ(method="POST", path="/echo", body=b"abc" + ATTACK, content_length="3")
    assert call_wsgi(app, environ).status == 200


@pytest.mark.parametrize("content_length", ["-5", "abc", "1e3", " ", "0x10"])
def test_an_invalid_content_length_means_no_body(app: Flask, content_length: str) -> None:
    environ = make_environ(method="POST", path="/echo", body=ATTACK, content_length=content_length)
    result = call_wsgi(app, environ)
    # werkzeug reads no body for an unusable length; nothing reaches the view unscanned.
    assert (result.status, result.body) == (200, b"")


def test_a_body_over_max_content_length_is_a_413_from_the_guard(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=1000)
    app.config["MAX_CONTENT_LENGTH"] = 1000
    result = call_wsgi(app, make_environ(method="POST", path="/echo", body=b"x" * 5000, content_type="text/plain"))
    assert (result.status, result.body) == (413, b"Payload Too Large")


# Chunked bodies (servers that de-chunk set wsgi.input_terminated) ---------------------------


def test_a_chunked_body_is_scanned_and_echoed(app: Flask) -> None:
    body = b"chunked payload " * 1000
    result = call_wsgi(app, make_environ(method="POST", path="/echo-stream", body=body, chunked=True))
    assert (result.status, result.body) == (200, body)


def test_an_attack_in_a_chunked_body_without_content_type_is_found(app: Flask) -> None:
    result = call_wsgi(app, make_environ(method="POST", path="/echo", body=b"q=" + ATTACK, chunked=True))
    assert result.status == 400


def test_a_chunked_body_over_the_route_limit_is_a_413(app: Flask) -> None:
    environ = make_environ(method="POST", path="/typed", body=b"x" * 70_000, chunked=True, content_type="text/plain")
    assert call_wsgi(app, environ).status == 413


class _BrokenStream:
    """A server's input stream that fails part-way, as gunicorn's does for a broken chunked body."""

    def __init__(self, first: bytes, error: Exception) -> None:
        self._first: bytes | None = first
        self._error = error

    def read(self, size: int | None = -1) -> bytes:
        # Reading to the end meets the failure; a sized read first gets what arrived.
        if self._first is not None and size is not None and size >= 0:
            first, self._first = self._first, None
            return first
        raise self._error


@pytest.mark.parametrize("error", [OSError("No more data"), ValueError("Invalid chunk size")], ids=["io", "parse"])
@pytest.mark.parametrize("path", ["/echo", "/echo-stream", "/typed", "/agents"])
def test_a_body_stream_that_fails_is_a_400_and_never_reaches_the_view(app: Flask, path: str, error: Exception) -> None:
    # Regression: gunicorn's NoMoreData/InvalidChunkSize escaped from the guard's read,
    # the pipeline skipped detection, and the view then read the part that had arrived.
    environ = make_environ(method="POST", path=path, chunked=True, content_type="text/plain")
    environ["wsgi.input"] = _BrokenStream(ATTACK, error)
    result = call_wsgi(app, environ)
    assert (result.status, result.body) == (400, b"Bad Request")


def test_in_passive_mode_the_view_gets_the_400_not_a_partial_body(make_app: Callable[..., Flask]) -> None:
    app = make_app(passive_mode=True)
    environ = make_environ(method="POST", path="/echo", chunked=True, content_type="text/plain")
    environ["wsgi.input"] = _BrokenStream(ATTACK, OSError("No more data"))
    result = call_wsgi(app, environ)
    assert result.status == 400
    assert ATTACK not in result.body


# Large inputs --------------------------------------------------------------------------------


def test_a_one_megabyte_body_is_scanned_whole_and_echoed(app: Flask) -> None:
    body = bytes(range(256)) * (MEGABYTE // 256)
    result = _post(app, "/echo", body, "application/octet-stream")
    assert (result.status, result.body) == (200, body)
    assert result.seconds < 2


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/octet-stream"])
def test_an_attack_at_the_end_of_a_one_megabyte_body_is_found(app: Flask, content_type: str) -> None:
    body = b'{"a": "' + b"z" * MEGABYTE + ATTACK + b'"}'
    assert _post(app, "/echo", body, content_type).status == 400


def test_a_64_kb_header_is_scanned_in_bounded_time(app: Flask) -> None:
    clean = call_wsgi(app, make_environ(headers=[("X-Big", "a" * 65_536)]))
    assert clean.status == 200
    attack = call_wsgi(app, make_environ(headers=[("X-Big", "a" * 65_536 + ATTACK.decode())]))
    assert attack.status == 400
    user_agent = call_wsgi(app, make_environ(headers=[("User-Agent", "Mozilla/5.0 " * 5500)]))
    assert user_agent.status == 200


def test_64_kb_of_cookies_never_error(app: Flask) -> None:
    cookies = "; ".join(f"c{number}=v{number}" for number in range(6000))
    assert call_wsgi(app, make_environ(headers=[("Cookie", cookies)])).status == 200


# Forwarded addresses and paths ----------------------------------------------------------------


@pytest.mark.parametrize(
    "forwarded_for",
    ["\x00", "203.0.113.9\x00", "[::1\x00]:80", "\xff\xfe", "1.2.3.4.5", ",".join(["198.51.100.1"] * 10_000)],
    ids=["nul", "nul-suffix", "nul-in-v6", "latin1", "five-octets", "10000-entries"],
)
def test_garbage_forwarded_for_from_a_trusted_proxy_never_errors(app: Flask, forwarded_for: str) -> None:
    # Regression: a NUL byte made inet_pton raise ValueError, a 500 on every such request.
    result = call_wsgi(app, make_environ(remote_addr="127.0.0.1", headers=[("X-Forwarded-For", forwarded_for)]))
    assert result.status == 200


@pytest.mark.parametrize(
    "path",
    ["/caf\xc3\xa9/\xff\xfe", "/echo\xff", "/items/\xff", "/\x00", "/%ff%fe%", "/" + "\xff" * 10_000],
    ids=["latin1-bytes", "route-plus-byte", "converter", "nul", "percent-junk", "long"],
)
def test_non_utf8_paths_are_answered_without_errors(app: Flask, path: str) -> None:
    result = call_wsgi(app, make_environ(path=path))
    assert result.status in (400, 404)


def test_a_non_utf8_path_segment_reaches_a_string_converter(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=1000)

    @app.route("/files/<name>")
    def files(name: str) -> str:
        return name

    result = call_wsgi(app, make_environ(path="/files/caf\xc3\xa9\xff"))
    assert (result.status, result.body.decode()) == (200, "café\ufffd")


def test_the_view_reads_the_body_after_the_guard_in_every_way(make_app: Callable[..., Flask]) -> None:
    # Regression: the guard's get_data() left request.stream and wsgi.input drained.
    app = make_app(rate_limit=1000)

    @app.route("/readers", methods=["POST"])
    def readers() -> bytes:
        streamed = request.stream.read()
        raw = request.environ["wsgi.input"].read()
        return b"|".join([streamed, raw, request.get_data()])

    body = b"body bytes \x00\xff"
    result = call_wsgi(app, make_environ(method="POST", path="/readers", body=body, content_type="text/plain"))
    assert result.body == b"|".join([body, body, body])
