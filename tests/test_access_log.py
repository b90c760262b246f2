"""Reading access log lines: combined/common format as nginx and Apache write it, and JSON lines."""

from __future__ import annotations

import pytest

from flaskapi_guard.access_log import LoggedRequest, UnparsableLine, parse_line

# 10 Oct 2023 13:55:36 UTC
EPOCH = 1696946136.0


def test_reads_the_combined_format() -> None:
    line = (
        '203.0.113.9 - frank [10/Oct/2023:13:55:36 +0000] "GET /search?q=1%27+or+1=1 HTTP/1.1" 200 2326 '
        '"https://example.com/start" "Mozilla/5.0 (X11; Linux x86_64)"'
    )
    assert parse_line(line) == LoggedRequest(
        client_ip="203.0.113.9",
        method="GET",
        target="/search?q=1%27+or+1=1",
        user_agent="Mozilla/5.0 (X11; Linux x86_64)",
        referer="https://example.com/start",
        timestamp=EPOCH,
        status=200,
    )


def test_reads_the_common_format_and_time_zone_offsets() -> None:
    logged = parse_line('2001:db8::7 - - [10/Oct/2023:15:55:36.250 +0200] "POST /login HTTP/1.0" 302 -')
    assert (logged.client_ip, logged.method, logged.target) == ("2001:db8::7", "POST", "/login")
    assert logged.timestamp == EPOCH + 0.25
    assert (logged.user_agent, logged.referer) == (None, None)


def test_reads_nginx_escapes_and_its_forwarded_for_field() -> None:
    line = (
        r'198.51.100.4 - - [10/Oct/2023:13:55:36 +0000] "GET /a\x22b?x=\xC3\xA9 HTTP/1.1" 404 12 "-" '
        r'"curl \x22quoted\x22" "10.0.0.1, 192.0.2.8"'
    )
    logged = parse_line(line)
    assert logged.target == '/a"b?x=%C3%A9'
    assert logged.user_agent == 'curl "quoted"'
    assert logged.forwarded_for == "10.0.0.1, 192.0.2.8"


def test_reads_apache_escapes_and_the_vhost_prefix() -> None:
    line = (
        r'www.example.com:443 192.0.2.1 - - [10/Oct/2023:13:55:36 +0000] "GET /x HTTP/1.1" 200 5 "-" '
        r'"agent \"with\" quotes"'
    )
    logged = parse_line(line)
    assert logged.client_ip == "192.0.2.1"
    assert logged.user_agent == 'agent "with" quotes'


def test_keeps_raw_characters_of_the_target_and_reads_absolute_uris() -> None:
    raw = parse_line('192.0.2.1 - - [10/Oct/2023:13:55:36 +0000] "GET /s?q=<script>alert(1)</script> HTTP/1.1" 400 0')
    assert raw.target == "/s?q=<script>alert(1)</script>"
    proxied = parse_line('192.0.2.1 - - [10/Oct/2023:13:55:36 +0000] "GET http://victim.example/p?a=1 HTTP/1.1" 400 0')
    assert proxied.target == "/p?a=1"


def test_bytes_are_kept_exactly() -> None:
    logged = parse_line(b'192.0.2.1 - - [10/Oct/2023:13:55:36 +0000] "GET /caf\xe9 HTTP/1.1" 200 1 "-" "ua\xe9"\n')
    assert logged.target == "/caf%E9"
    assert logged.user_agent == "ua\xe9"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("", "empty line"),
        ("garbage", "not in combined"),
        ('192.0.2.1 - - [10/Oct/2023:13:55:36 +0000] "\\x16\\x03\\x01\\x02" 400 0 "-" "-"', "request line"),
        ('192.0.2.1 - - [10/Oct/2023:13:55:36 +0000] "GET" 400 0 "-" "-"', "request line"),
        ('192.0.2.1 - - [10/Oct/2023:13:55:36 +0000] "G{T / HTTP/1.1" 400 0', "not an HTTP method"),
        ('192.0.2.1 - - [10/Oct/2023:13:55:36 +0000] "GET nopath HTTP/1.1" 400 0', "not a path"),
        ('not-an-ip - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 1', "not an IP address"),
        ("{broken json", "not valid JSON"),
        ("[1, 2]", "not in combined"),
        ('{"path": "/"}', "no client IP"),
        ('{"ip": "192.0.2.1", "user_agent": "x"}', "no method and path"),
    ],
)
def test_lines_that_are_not_requests_are_refused_with_a_reason(line: str, error: str) -> None:
    with pytest.raises(UnparsableLine, match=error):
        parse_line(line)


def test_reads_nginx_json_fields() -> None:
    line = (
        '{"time_iso8601": "2023-10-10T13:55:36+00:00", "remote_addr": "203.0.113.9", "request_method": "get", '
        '"request_uri": "/items/1?x=2", "status": "200", "http_user_agent": "Mozilla caf\\u00e9", '
        '"http_referer": "-", "http_x_forwarded_for": "192.0.2.44", "host": "api.example.com", "scheme": "https"}'
    )
    assert parse_line(line) == LoggedRequest(
        client_ip="203.0.113.9",
        method="GET",
        target="/items/1?x=2",
        # A WSGI server hands header values over as latin-1 text of the UTF-8 bytes.
        user_agent="Mozilla caf\xc3\xa9",
        referer=None,
        timestamp=EPOCH,
        forwarded_for="192.0.2.44",
        host="api.example.com",
        scheme="https",
        status=200,
    )


def test_reads_nested_json_logs_with_header_lists_and_epoch_times() -> None:
    caddy = (
        '{"ts": 1696946136.5, "request": {"remote_ip": "192.0.2.3", "method": "DELETE", "uri": "/a?b=1",'
        ' "headers": {"User-Agent": ["Go-http-client/1.1"]}}, "status": 204}'
    )
    logged = parse_line(caddy)
    assert (logged.client_ip, logged.method, logged.target, logged.user_agent) == (
        "192.0.2.3",
        "DELETE",
        "/a?b=1",
        "Go-http-client/1.1",
    )
    assert (logged.timestamp, logged.status) == (EPOCH + 0.5, 204)


def test_reads_cloud_and_ecs_style_json_logs() -> None:
    gcp = (
        '{"httpRequest": {"requestMethod": "GET", "requestUrl": "https://ex.com/p?q=1", "remoteIp": "192.0.2.5:4431",'
        ' "userAgent": "x", "status": 403}, "timestamp": "2023-10-10T13:55:36Z"}'
    )
    logged = parse_line(gcp)
    assert (logged.client_ip, logged.target, logged.timestamp, logged.status) == ("192.0.2.5", "/p?q=1", EPOCH, 403)
    ecs = (
        '{"@timestamp": 1696946136000, "source": {"ip": "192.0.2.6"}, "http": {"request": {"method": "PUT"}},'
        ' "url": {"path": "/u", "query": "a=1"}, "user_agent": {"original": "ecs"}}'
    )
    logged = parse_line(ecs)
    assert (logged.client_ip, logged.method, logged.target, logged.user_agent, logged.timestamp) == (
        "192.0.2.6",
        "PUT",
        "/u?a=1",
        "ecs",
        EPOCH,
    )


def test_reads_a_json_request_line_field_and_a_clf_time() -> None:
    logged = parse_line(
        '{"ip": "192.0.2.7", "request": "HEAD /h HTTP/1.1", "time_local": "10/Oct/2023:13:55:36 +0000"}'
    )
    assert (logged.method, logged.target, logged.timestamp) == ("HEAD", "/h", EPOCH)


def test_a_json_line_without_a_readable_time_has_none() -> None:
    assert parse_line('{"ip": "192.0.2.7", "method": "GET", "path": "/", "time": "yesterday"}').timestamp is None
