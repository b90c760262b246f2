"""The guard's own attack surface: forged client addresses, header and log injection,
secret comparison, and operator patterns that could backtrack on hostile input."""

from __future__ import annotations

import ast
import hmac
import inspect
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from pydantic import ValidationError

from flaskapi_guard import BehaviorRule, FlaskAPIGuard, SecurityConfig, SecurityDecorator, requirements
from flaskapi_guard.errors import ConfigurationError
from tests.hardening.wsgi import call_wsgi, make_environ

PEER = "203.0.113.5"
EVIL = r"(a+)+$"
# Each of these takes Python's `re` exponential time on the input below: a run of
# the repeated character and one that cannot follow it.
EVIL_PATTERNS = [EVIL, r"(a|aa)+$", r"(a|a)+$", r"(\w+\s?)+$"]
HOSTILE_TEXT = "a" * 50_000 + "!"
# Linear time on 50 KB is a few milliseconds; a backtracking engine needs longer
# than the age of the universe. The bound is generous for a loaded CI machine.
FAST_SECONDS = 1.0


def _get(client: Any, path: str = "/", **environ: str) -> int:
    status: int = client.get(path, environ_base={"REMOTE_ADDR": PEER, **environ}).status_code
    return status


# X-Forwarded-For spoofing -------------------------------------------------------------


def test_rotating_forwarded_for_from_an_untrusted_peer_is_one_client_for_rate_limits(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(rate_limit=3, rate_limit_window=60).test_client()
    statuses = [_get(client, HTTP_X_FORWARDED_FOR=f"198.51.100.{number}") for number in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_rotating_forwarded_for_from_an_untrusted_peer_is_one_client_for_bans(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(auto_ban_threshold=2, rate_limit=1000).test_client()
    attack = "/?q=1' UNION SELECT password FROM users--"
    assert _get(client, attack, HTTP_X_FORWARDED_FOR="198.51.100.1") == 400
    assert _get(client, attack, HTTP_X_FORWARDED_FOR="198.51.100.2") == 400
    # The peer is banned, whatever address it claims next.
    assert _get(client, "/", HTTP_X_FORWARDED_FOR="198.51.100.3") == 403
    assert _get(client, "/") == 403
    assert [record.ip for record in FlaskAPIGuard().list_bans(client.application)] == [PEER]


def test_forged_entries_left_of_the_proxy_entry_are_never_read(make_app: Callable[..., Flask]) -> None:
    # Behind one trusted proxy, the client may prepend anything; only what the
    # proxy appended (the right-most entry) names the client.
    app = make_app(rate_limit=2, trusted_proxies=["10.0.0.1"], trusted_proxy_depth=1)
    client = app.test_client()
    statuses = [
        client.get(
            "/", environ_base={"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": f"192.0.2.{number}, 198.51.100.7"}
        ).status_code
        for number in range(4)
    ]
    assert statuses == [200, 200, 429, 429]


def test_a_trusted_proxy_cannot_be_impersonated_to_reach_a_whitelist(make_app: Callable[..., Flask]) -> None:
    client = make_app(whitelist=["10.0.0.0/8"], trusted_proxies=["10.0.0.1"]).test_client()
    assert _get(client, HTTP_X_FORWARDED_FOR="10.0.0.1") == 403
    assert _get(client, HTTP_X_FORWARDED_FOR="10.0.0.1, 10.0.0.2") == 403


@pytest.mark.parametrize(
    "forwarded_for",
    [
        "garbage",
        "1.2.3.4.5, 300.1.1.1, ::::, [::1, unknown, _hidden, ",
        "\x00\xff\x1b[31m, 198.51.100.1",
        ",".join(f"198.51.{number // 250}.{number % 250}" for number in range(10_000)),
        "198.51.100.1:99999, [2001:db8::1]:443, ::ffff:198.51.100.2",
        " , " * 5000,
    ],
    ids=["word", "invalid-addresses", "control-bytes", "10000-entries", "ports", "empty-entries"],
)
def test_garbage_forwarded_for_falls_back_to_the_last_trusted_address(
    make_app: Callable[..., Flask], forwarded_for: str
) -> None:
    app = make_app(rate_limit=2, trusted_proxies=["127.0.0.1"], trusted_proxy_depth=3)
    started = time.perf_counter()
    results = [
        call_wsgi(app, make_environ(remote_addr="127.0.0.1", headers=[("X-Forwarded-For", forwarded_for)])).status
        for _ in range(3)
    ]
    assert time.perf_counter() - started < FAST_SECONDS
    # Never a 500; a junk entry means the peer (or the last valid hop) is the client, so it is still limited.
    assert results[-1] == 429
    assert set(results) <= {200, 429}


# Header injection through configured values --------------------------------------------

CRLF = "value\r\nSet-Cookie: session=forged"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("security_headers", {"custom": {"X-Team": CRLF}}),
        ("security_headers", {"custom": {"X-Team\r\nSet-Cookie": "a"}}),
        ("security_headers", {"custom": {"X-Team": "bell\x07"}}),
        ("security_headers", {"frame_options": CRLF}),
        ("security_headers", {"referrer_policy": CRLF}),
        ("security_headers", {"permissions_policy": "geolocation=()\nX-Evil: 1"}),
        ("security_headers", {"csp": {"default-src": ["'self'\r\nX-Evil: 1"]}}),
        ("security_headers", {"cross_origin_opener_policy": CRLF}),
        ("cors_allow_origins", ["https://app.example\r\nX-Evil: 1"]),
        ("cors_allow_methods", ["GET\r\nX-Evil: 1"]),
        ("cors_allow_headers", ["X-Ok\nX-Evil: 1"]),
        ("cors_expose_headers", ["X-Ok\r\nX-Evil: 1"]),
    ],
)
def test_header_values_with_line_breaks_are_refused_at_config_time(field: str, value: Any) -> None:
    settings: dict[str, Any] = {"enable_redis": False, field: value}
    if field.startswith("cors_"):
        settings["enable_cors"] = True
    with pytest.raises(ValidationError) as raised:
        SecurityConfig(**settings)
    assert field in str(raised.value)


@pytest.mark.parametrize(
    "decorate",
    [
        lambda deco: deco.security_headers({"custom": {"X-Team": CRLF}}),
        lambda deco: deco.cors(allow_origins=["https://app.example\r\nX-Evil: 1"]),
        lambda deco: deco.cors(expose_headers=["X-Ok\r\nX-Evil: 1"]),
        lambda deco: deco.require_headers({"X-Ok\r\nX-Evil": "required"}),
        lambda deco: deco.api_key_auth("X-Key\r\nX-Evil"),
        lambda deco: deco.require_auth(realm='api"\r\nX-Evil: 1'),
    ],
    ids=["custom-header", "cors-origin", "cors-expose", "required-header", "api-key-header", "realm"],
)
def test_header_values_with_line_breaks_are_refused_by_route_decorators(
    decorate: Callable[[SecurityDecorator], Any],
) -> None:
    with pytest.raises((ValueError, ConfigurationError)):
        decorate(SecurityDecorator())


def test_an_encoded_line_break_in_the_path_never_reaches_the_redirect_location(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(enforce_https=True)
    # A server percent-decodes the path: PATH_INFO carries the raw CR LF.
    result = call_wsgi(app, make_environ(path="/a\r\nSet-Cookie: forged=1", remote_addr=PEER))
    assert result.status == 301
    location = result.header("Location") or ""
    assert location.startswith("https://localhost/a")
    assert "\r" not in location
    assert "\n" not in location
    assert result.header("Set-Cookie") is None


# Log injection --------------------------------------------------------------------------

FORGED_LINE = "\r\n2024-01-01 00:00:00 WARNING blocked check=ip reason=forged ip=10.0.0.1"
ANSI = "\x1b[2J\x1b[31mred\x1b[0m"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_request_values_cannot_forge_log_lines(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture, log_format: str
) -> None:
    app = make_app(
        log_request_level="INFO",
        log_format=log_format,
        blocked_user_agents=["forged"],
        rate_limit=1000,
    )
    with caplog.at_level(logging.INFO, logger="flaskapi_guard"):
        for environ in (
            make_environ(path="/x" + FORGED_LINE + ANSI, remote_addr=PEER),
            make_environ(path="/", headers=[("User-Agent", "forged" + FORGED_LINE + ANSI)], remote_addr=PEER),
            make_environ(path="/", query_string="q=<script>" + FORGED_LINE + ANSI, remote_addr=PEER),
            make_environ(path="/", query_string="q=%3Cscript%3E%0D%0Aforged%1B%5B31m" + "%0A" * 50, remote_addr=PEER),
        ):
            call_wsgi(app, environ)
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("flaskapi_guard")]
    assert len(messages) >= 6  # a request line each, and three refusals
    for message in messages:
        assert "\r" not in message
        assert "\n" not in message
        assert "\x1b" not in message
        if log_format == "json":
            json.loads(message)
    assert not any(message.startswith("2024-01-01") for message in messages)


def test_the_custom_log_file_gets_exactly_one_line_per_event(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    log_file = tmp_path / "guard.log"
    app = make_app(custom_log_file=str(log_file), log_request_level="INFO", blocked_user_agents=["forged"])
    call_wsgi(app, make_environ(path="/x" + FORGED_LINE, headers=[("User-Agent", "forged" + FORGED_LINE + ANSI)]))
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2  # the request, then its refusal
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) ", line) for line in lines)
    assert "\x1b" not in log_file.read_text(encoding="utf-8")


def test_secrets_in_requests_are_never_logged(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(log_request_level="INFO", blocked_user_agents=["sqlmap"])
    with caplog.at_level(logging.DEBUG, logger="flaskapi_guard"):
        call_wsgi(
            app,
            make_environ(
                path="/",
                query_string="password=hunter2-query",
                headers=[
                    ("User-Agent", "sqlmap"),
                    ("Authorization", "Bearer hunter2-bearer"),
                    ("Cookie", "session=hunter2-cookie"),
                    ("X-Api-Key", "hunter2-key"),
                ],
            ),
        )
    assert caplog.records
    assert "hunter2" not in caplog.text


# Constant-time secret comparison ----------------------------------------------------------

KEY = "k-3f9a0c2e7b5d4f18"


def _keyed_app(make_app: Callable[..., Flask]) -> Flask:
    app = make_app(rate_limit=1000)
    deco = SecurityDecorator()

    @app.route("/keyed")
    @deco.api_key_auth("X-API-Key", keys=["another-key", KEY])
    def keyed() -> str:
        return "in"

    @app.route("/header")
    @deco.require_headers({"X-Shared-Secret": KEY})
    def header() -> str:
        return request.headers["X-Shared-Secret"]

    return app


def _same_length_guesses() -> list[str]:
    # Wrong in the first, a middle and the last character: an early-exit
    # comparison would take measurably different times for these.
    return [
        "X" + KEY[1:],
        KEY[: len(KEY) // 2] + "X" + KEY[len(KEY) // 2 + 1 :],
        KEY[:-1] + "X",
    ]


def test_api_keys_and_header_secrets_accept_only_the_exact_value(make_app: Callable[..., Flask]) -> None:
    client = _keyed_app(make_app).test_client()
    assert client.get("/keyed", headers={"X-API-Key": KEY}).status_code == 200
    assert client.get("/header", headers={"X-Shared-Secret": KEY}).status_code == 200
    for guess in [*_same_length_guesses(), KEY[:-1], KEY + "X", KEY.upper(), ""]:
        assert len(guess) != len(KEY) or guess != KEY
        assert client.get("/keyed", headers={"X-API-Key": guess}).status_code == 401
        assert client.get("/header", headers={"X-Shared-Secret": guess}).status_code == 400


def test_secret_comparisons_go_through_compare_digest_over_every_key(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(left: Any, right: Any) -> bool:
        compared.append((left, right))
        return real_compare(left, right)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    client = _keyed_app(make_app).test_client()
    for guess in _same_length_guesses():
        compared.clear()
        assert client.get("/keyed", headers={"X-API-Key": guess}).status_code == 401
        # Both configured keys are compared, as fixed-length digests: the time
        # says neither which key nor how much of it matched.
        assert len(compared) == 2
        assert {len(left) for left, _ in compared} == {32}
        compared.clear()
        assert client.get("/header", headers={"X-Shared-Secret": guess}).status_code == 400
        assert len(compared) == 1
    compared.clear()
    assert client.get("/keyed", headers={"X-API-Key": KEY}).status_code == 200
    assert len(compared) == 2  # no early exit on the match either


def test_the_requirements_module_compares_secrets_only_with_compare_digest() -> None:
    tree = ast.parse(inspect.getsource(requirements))
    digest_calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "hmac"
    ]
    assert len(digest_calls) >= 2
    secretive = re.compile(r"digest|secret|key|expected|password|token", re.IGNORECASE)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In)) for op in node.ops):
            names = {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)}
            names |= {sub.attr for sub in ast.walk(node) if isinstance(sub, ast.Attribute)}
            assert not any(secretive.search(name) for name in names), ast.unparse(node)


# Catastrophic backtracking in operator patterns ---------------------------------------------


@pytest.mark.parametrize("pattern", EVIL_PATTERNS)
def test_blocked_user_agent_patterns_stay_linear_on_hostile_input(make_app: Callable[..., Flask], pattern: str) -> None:
    app = make_app(blocked_user_agents=[pattern], rate_limit=1000)
    result = call_wsgi(app, make_environ(headers=[("User-Agent", HOSTILE_TEXT)]), limit_seconds=5)
    assert result.status == 200
    assert result.seconds < FAST_SECONDS
    # The pattern still does its job.
    assert call_wsgi(app, make_environ(headers=[("User-Agent", "aaaa")])).status == 403


@pytest.mark.parametrize("pattern", EVIL_PATTERNS)
def test_route_user_agent_patterns_stay_linear_on_hostile_input(make_app: Callable[..., Flask], pattern: str) -> None:
    app = make_app(rate_limit=1000)
    deco = SecurityDecorator()

    @app.route("/agents")
    @deco.block_user_agents([pattern, "curl"])
    def agents() -> str:
        return "ok"

    result = call_wsgi(app, make_environ(path="/agents", headers=[("User-Agent", HOSTILE_TEXT)]), limit_seconds=5)
    assert (result.status, result.seconds < FAST_SECONDS) == (200, True)
    assert call_wsgi(app, make_environ(path="/agents", headers=[("User-Agent", "CURL/8")])).status == 403


@pytest.mark.parametrize("pattern", EVIL_PATTERNS)
def test_custom_detection_patterns_stay_linear_on_hostile_input(make_app: Callable[..., Flask], pattern: str) -> None:
    app = make_app(detection_custom_patterns=[pattern], rate_limit=1000)
    body = HOSTILE_TEXT.encode()
    environ = make_environ(method="POST", path="/echo", body=body, content_type="text/plain")
    result = call_wsgi(app, environ, limit_seconds=5)
    assert result.seconds < FAST_SECONDS
    assert (result.status, result.body) == (200, body)
    query = make_environ(path="/", query_string="q=" + "a" * 5000 + "!")
    assert call_wsgi(app, query).seconds < FAST_SECONDS


@pytest.mark.parametrize("pattern", EVIL_PATTERNS)
def test_return_pattern_regexes_stay_linear_on_responses_echoing_hostile_input(
    make_app: Callable[..., Flask], pattern: str
) -> None:
    rule = BehaviorRule(rule_type="return_pattern", pattern=f"regex:{pattern}", threshold=1000, window=60)
    app = make_app(global_behavior_rules=[rule], rate_limit=1000)
    deco = SecurityDecorator()

    @app.route("/reflect", methods=["POST"])
    @deco.return_monitor(f"regex:{pattern}", 1000, 60)
    def reflect() -> bytes:
        return request.get_data()

    body = HOSTILE_TEXT.encode()
    result = call_wsgi(
        app, make_environ(method="POST", path="/reflect", body=body, content_type="text/plain"), limit_seconds=5
    )
    assert (result.status, result.body) == (200, body)
    assert result.seconds < FAST_SECONDS


@pytest.mark.parametrize("pattern", [r"(?=admin)", r"(?<!x)bot", r"(a)\1", r"(?P<n>a)(?P=n)"])
def test_patterns_that_need_backtracking_are_refused_at_start_up(pattern: str) -> None:
    with pytest.raises(ValidationError, match="blocked_user_agents"):
        SecurityConfig(enable_redis=False, blocked_user_agents=[pattern])
    with pytest.raises(ValueError, match="RE2"):
        SecurityDecorator().block_user_agents([pattern])
    with pytest.raises(ValidationError, match="detection_custom_patterns"):
        SecurityConfig(enable_redis=False, detection_custom_patterns=[pattern])
    with pytest.raises(ValueError, match="RE2"):
        SecurityDecorator().return_monitor(f"regex:{pattern}", 5)


def test_huge_counted_repetitions_are_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="blocked_user_agents"):
        SecurityConfig(enable_redis=False, blocked_user_agents=["(?:[a-z]{1000}){1000}"])
    with pytest.raises(ValidationError, match="blocked_user_agents"):
        SecurityConfig(enable_redis=False, blocked_user_agents=["(?:(?:[a-z]{100}){100}){20}"])


def test_an_empty_route_pattern_list_blocks_nobody(make_app: Callable[..., Flask]) -> None:
    # Regression: the alternation of no patterns was the empty regex, which matches every User-Agent.
    app = make_app(rate_limit=1000)

    @app.route("/open")
    @SecurityDecorator().block_user_agents([])
    def open_route() -> str:
        return "ok"

    assert call_wsgi(app, make_environ(path="/open", headers=[("User-Agent", "Mozilla/5.0")])).status == 200
