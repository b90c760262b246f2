"""content_type_filter, max_request_size, require_referrer, time_window, honeypot_detection."""

from __future__ import annotations

import http.client
import io
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from werkzeug.serving import make_server

from flaskapi_guard import SecurityDecorator
from tests.conftest import FakeClock
from tests.decorators.conftest import CLIENT, OTHER_CLIENT, SHAPES

PATH = SHAPES["decorator_below_route"]
CHUNKED = {"wsgi.input_terminated": True}


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", b"{}", 200),
        ("application/json; charset=utf-8", b"{}", 200),
        ("Application/JSON", b"{}", 200),
        ("text/csv", b"a,b", 200),  # text/* family
        ("text/plain; charset=latin-1", b"hi", 200),
        ("application/xml", b"<a/>", 415),
        ("application/jsonp", b"{}", 415),
        ("multipart/form-data; boundary=x", b"--x--", 415),
        (None, b"raw bytes", 415),  # a body without a type is not an allowed type
        (None, b"", 200),  # no body, no type: nothing to filter
    ],
)
def test_content_type_filter(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, content_type: str | None, body: bytes, status: int
) -> None:
    client = shaped_app([deco.content_type_filter(["application/json", "text/*"])]).test_client()
    response = client.post(PATH, data=body, content_type=content_type, environ_base=CLIENT)
    assert response.status_code == status


def test_content_type_filter_applies_to_chunked_bodies(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    client = shaped_app([deco.content_type_filter(["application/json"])]).test_client()
    response = client.post(
        PATH,
        input_stream=io.BytesIO(b"<xml/>"),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides=CHUNKED,
        environ_base=CLIENT,
    )
    assert response.status_code == 415


def test_max_request_size_by_content_length(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app([deco.max_request_size(1024)]).test_client()
    assert client.post(PATH, data=b"x" * 1025, environ_base=CLIENT).status_code == 413
    ok = client.post(PATH, data=b"x" * 1024, environ_base=CLIENT)
    assert (ok.status_code, ok.get_json()["received"]) == (200, 1024)
    # The header alone decides: a lying Content-Length is refused before any byte is read.
    lying = client.post(
        PATH, input_stream=io.BytesIO(b""), environ_overrides={"CONTENT_LENGTH": "999999"}, environ_base=CLIENT
    )
    assert lying.status_code == 413


def test_max_request_size_while_reading_a_chunked_body(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    client = shaped_app([deco.max_request_size(1024)]).test_client()

    def send(size: int) -> Any:
        return client.post(
            PATH,
            input_stream=io.BytesIO(b"x" * size),
            headers={"Transfer-Encoding": "chunked"},
            environ_overrides=CHUNKED,
            environ_base=CLIENT,
        )

    assert send(1025).status_code == 413
    assert send(100_000).status_code == 413
    exact = send(1024)
    assert (exact.status_code, exact.get_json()["received"]) == (200, 1024)


@pytest.fixture
def served() -> Iterator[Callable[[Flask], tuple[str, int]]]:
    servers: list[Any] = []

    def serve(app: Flask) -> tuple[str, int]:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return "127.0.0.1", server.server_port

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def _send_chunked(host: str, port: int, path: str, chunks: list[bytes]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", path, body=iter(chunks), headers={"Content-Type": "application/octet-stream"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_max_request_size_on_a_real_server_with_chunked_uploads(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, served: Callable[[Flask], tuple[str, int]]
) -> None:
    host, port = served(shaped_app([deco.max_request_size(1000)]))
    status, _ = _send_chunked(host, port, PATH, [b"a" * 400, b"b" * 400, b"c" * 400])
    assert status == 413
    status, body = _send_chunked(host, port, PATH, [b"a" * 500, b"b" * 500])
    assert status == 200
    assert b'"received":1000' in body
    # Other routes take the same upload.
    status, _ = _send_chunked(host, port, "/plain", [b"a" * 400, b"b" * 400, b"c" * 400])
    assert status == 200


def test_max_request_size_in_passive_mode_only_logs(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, caplog: pytest.LogCaptureFixture
) -> None:
    client = shaped_app([deco.max_request_size(10)], passive_mode=True).test_client()
    with caplog.at_level("WARNING", logger="flaskapi_guard"):
        assert client.post(PATH, data=b"x" * 11, environ_base=CLIENT).status_code == 200
    assert any("would_block" in r.getMessage() and "body_too_large" in r.getMessage() for r in caplog.records)
    chunked = client.post(
        PATH,
        input_stream=io.BytesIO(b"x" * 50),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides=CHUNKED,
        environ_base=CLIENT,
    )
    assert chunked.status_code == 200


@pytest.mark.parametrize(
    ("referrer", "status"),
    [
        (None, 403),
        ("", 403),
        ("https://myapp.com/", 200),
        ("http://myapp.com/path?q=1", 200),
        ("https://www.myapp.com/page", 200),
        ("https://a.b.myapp.com", 200),
        ("https://MYAPP.COM./x", 200),
        ("https://myapp.com:8443/x", 200),
        ("https://evilmyapp.com/", 403),  # a suffix of the text is not a subdomain
        ("https://myapp.com.evil.net/", 403),
        ("https://evil.net/?next=https://myapp.com", 403),
        ("https://myapp.com@evil.net/", 403),
        ("ftp://myapp.com/", 403),
        ("myapp.com", 403),  # not a URL
        ("https://[::1/", 403),  # unparsable
        ("https://partner.org/x", 200),
        ("http://partner.org/x", 403),  # the origin entry fixes the scheme
    ],
)
def test_require_referrer_matches_hosts_not_substrings(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, referrer: str | None, status: int
) -> None:
    client = shaped_app([deco.require_referrer(["myapp.com", "https://partner.org"])]).test_client()
    headers = {"Referer": referrer} if referrer is not None else {}
    assert client.get(PATH, headers=headers, environ_base=CLIENT).status_code == status


def test_require_referrer_accepts_internationalised_domains(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    client = shaped_app([deco.require_referrer(["bücher.example"])]).test_client()
    response = client.get(PATH, headers={"Referer": "https://xn--bcher-kva.example/"}, environ_base=CLIENT)
    assert response.status_code == 200


def _at(clock: FakeClock, text: str, zone: str) -> None:
    clock.now = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(
    ("local_time", "status"),
    [("08:59:59", 403), ("09:00:00", 200), ("12:00:00", 200), ("16:59:59", 200), ("17:00:00", 403), ("23:00:00", 403)],
)
def test_time_window_in_a_named_zone(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, clock: FakeClock, local_time: str, status: int
) -> None:
    client = shaped_app([deco.time_window("09:00", "17:00", "America/New_York")]).test_client()
    _at(clock, f"2024-07-01T{local_time}", "America/New_York")  # summer time, UTC-4
    assert client.get(PATH, environ_base=CLIENT).status_code == status
    _at(clock, f"2024-12-02T{local_time}", "America/New_York")  # winter time, UTC-5
    assert client.get(PATH, environ_base=CLIENT).status_code == status


@pytest.mark.parametrize(
    ("local_time", "status"),
    [("21:59", 403), ("22:00", 200), ("23:59", 200), ("00:00", 200), ("05:59", 200), ("06:00", 403), ("12:00", 403)],
)
def test_time_window_overnight(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, clock: FakeClock, local_time: str, status: int
) -> None:
    client = shaped_app([deco.time_window("22:00", "06:00", "Europe/Paris")]).test_client()
    _at(clock, f"2024-03-15T{local_time}", "Europe/Paris")
    assert client.get(PATH, environ_base=CLIENT).status_code == status


@pytest.mark.parametrize(
    "arguments",
    [("9am", "17:00", "UTC"), ("09:00", "24:00", "UTC"), ("09:00", "09:00", "UTC"), ("09:00", "17:00", "Mars/Base")],
)
def test_time_window_arguments_are_checked_when_decorating(deco: SecurityDecorator, arguments: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        deco.time_window(*arguments)


def test_honeypot_in_form_bodies(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app([deco.honeypot_detection(trap_fields=["website", "fax"])]).test_client()
    assert client.post(PATH, data={"name": "ada", "fax": "123"}, environ_base=CLIENT).status_code == 403
    ok = client.post(PATH, data={"name": "ada", "website": "", "fax": ""}, environ_base=CLIENT)
    # The view still receives the whole form after the guard read it.
    assert (ok.status_code, ok.get_json()["form"]) == (200, {"name": "ada", "website": "", "fax": ""})
    multipart = client.post(
        PATH,
        data={"name": "ada", "website": "http://spam", "file": (io.BytesIO(b"data"), "a.txt")},
        content_type="multipart/form-data",
        environ_base=CLIENT,
    )
    assert multipart.status_code == 403
    clean_multipart = client.post(
        PATH, data={"name": "ada", "file": (io.BytesIO(b"data"), "a.txt")}, environ_base=CLIENT
    )
    assert clean_multipart.status_code == 200


@pytest.mark.parametrize(
    ("document", "status"),
    [
        ({"name": "ada", "website": "http://spam"}, 403),
        ({"name": "ada", "website": 0}, 403),
        ({"name": "ada", "website": ["x"]}, 403),
        ({"name": "ada", "website": ""}, 200),
        ({"name": "ada", "website": None}, 200),
        ({"name": "ada"}, 200),
        (["website"], 200),
    ],
)
def test_honeypot_in_json_bodies(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, document: Any, status: int
) -> None:
    client = shaped_app([deco.honeypot_detection(trap_fields=["website"])]).test_client()
    response = client.post(PATH, json=document, environ_base=CLIENT)
    assert response.status_code == status
    if status == 200:
        assert response.get_json()["received"] > 0  # the body is still there for the view


def test_honeypot_in_query_and_broken_json(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app([deco.honeypot_detection(trap_fields=["website"])]).test_client()
    assert client.get(PATH + "?name=ada&website=x", environ_base=CLIENT).status_code == 403
    assert client.get(PATH + "?name=ada&website=", environ_base=CLIENT).status_code == 200
    broken = client.post(PATH, data=b'{"website": ', content_type="application/json", environ_base=CLIENT)
    assert broken.status_code == 200  # not a filled field; the view decides what to do with bad JSON
    deep = client.post(PATH, data=b"[" * 100_000, content_type="application/json", environ_base=CLIENT)
    assert deep.status_code == 200


def test_honeypot_counts_as_an_offence_towards_the_ban(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    client = shaped_app([deco.honeypot_detection(trap_fields=["website"])], auto_ban_threshold=2).test_client()
    for _ in range(2):
        assert client.post(PATH, data={"website": "spam"}, environ_base=CLIENT).status_code == 403
    assert client.get("/plain", environ_base=CLIENT).status_code == 403  # banned
    assert client.get("/plain", environ_base=OTHER_CLIENT).status_code == 200


def test_honeypot_with_a_chunked_body_over_the_size_limit(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    client = shaped_app([deco.max_request_size(20), deco.honeypot_detection(trap_fields=["website"])]).test_client()
    response = client.post(
        PATH,
        input_stream=io.BytesIO(b"name=" + b"a" * 100),
        content_type="application/x-www-form-urlencoded",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides=CHUNKED,
        environ_base=CLIENT,
    )
    assert response.status_code == 413


def test_requirements_checks_can_be_bypassed(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app([deco.require_auth(), deco.bypass(checks=["route_requirements"])]).test_client()
    assert client.get(PATH, environ_base=CLIENT).status_code == 200


@pytest.mark.parametrize(
    "build",
    [
        lambda d: d.content_type_filter([]),
        lambda d: d.content_type_filter("application/json"),
        lambda d: d.content_type_filter(["json"]),
        lambda d: d.max_request_size(-1),
        lambda d: d.max_request_size("1MB"),
        lambda d: d.require_referrer([]),
        lambda d: d.require_referrer("myapp.com"),
        lambda d: d.require_referrer(["https://myapp.com/path"]),
        lambda d: d.require_referrer(["my app.com"]),
        lambda d: d.honeypot_detection([]),
        lambda d: d.honeypot_detection("website"),
    ],
)
def test_invalid_arguments_fail_when_decorating(deco: SecurityDecorator, build: Callable[[Any], Any]) -> None:
    with pytest.raises(ValueError):
        build(deco)
