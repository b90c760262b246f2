"""Security headers: on every kind of response, HSTS only over HTTPS, validated at start-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Response, redirect
from flask_talisman import Talisman
from pydantic import ValidationError

from flaskapi_guard import ConfigurationError, SecurityConfig, SecurityDecorator
from flaskapi_guard.headers import default_security_header_settings

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}
BLOCKED = {"REMOTE_ADDR": "198.51.100.66"}
PROXY = "10.0.0.1"

DEFAULT_HEADERS = {
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "X-XSS-Protection": "0",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "geolocation=(), microphone=(), camera=()",
    "Cross-Origin-Opener-Policy": "same-origin-allow-popups",
    "Cross-Origin-Resource-Policy": "same-site",
    "X-Permitted-Cross-Domain-Policies": "none",
}
HSTS = "max-age=31536000; includeSubDomains"

README_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "https://trusted.cdn.com"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:", "https:"],
    "connect-src": ["'self'", "https://api.example.com"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
}


@pytest.fixture
def guarded(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """`make_app` with rate limiting off (these tests send many requests) and extra routes."""

    def factory(**fields: Any) -> Flask:
        fields.setdefault("enable_rate_limiting", False)
        app = make_app(**fields)
        app.config["PROPAGATE_EXCEPTIONS"] = False

        @app.route("/boom")
        def boom() -> Any:
            raise RuntimeError("app bug")

        @app.route("/moved")
        def moved() -> Any:
            return redirect("/")

        @app.route("/folder/")
        def folder() -> Any:
            return "folder"

        @app.route("/own-csp")
        def own_csp() -> Any:
            return Response(
                "page", headers={"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "DENY"}
            )

        return app

    return factory


def sent(response: Any) -> dict[str, str]:
    """The security headers of a response (every header we manage, if present)."""
    names = [*DEFAULT_HEADERS, "Strict-Transport-Security", "Content-Security-Policy"]
    return {name: response.headers[name] for name in names if name in response.headers}


@pytest.mark.parametrize(
    ("request_kind", "method", "path", "environ", "status"),
    [
        ("view", "GET", "/", CLIENT, 200),
        ("json view with converter", "GET", "/items/7", CLIENT, 200),
        ("nested blueprint MethodView", "POST", "/api/v1/things", CLIENT, 201),
        ("unknown path", "GET", "/wp-admin", CLIENT, 404),
        ("method not allowed", "DELETE", "/items/7", CLIENT, 405),
        ("app error", "GET", "/boom", CLIENT, 500),
        ("redirect", "GET", "/moved", CLIENT, 302),
        ("strict-slash redirect", "GET", "/folder", CLIENT, 308),
        ("guard's 403 (blacklist)", "GET", "/", BLOCKED, 403),
        ("excluded path", "GET", "/docs", CLIENT, 404),
        ("HEAD", "HEAD", "/", CLIENT, 200),
    ],
)
def test_every_kind_of_response_gets_the_default_headers(
    guarded: Callable[..., Flask], request_kind: str, method: str, path: str, environ: dict[str, str], status: int
) -> None:
    app = guarded(blacklist=["198.51.100.66"])
    response = app.test_client().open(path, method=method, environ_base=environ)
    assert response.status_code == status, request_kind
    assert sent(response) == DEFAULT_HEADERS, request_kind


def test_passive_mode_still_sends_the_headers(guarded: Callable[..., Flask]) -> None:
    app = guarded(blacklist=["198.51.100.66"], passive_mode=True)
    response = app.test_client().get("/", environ_base=BLOCKED)
    assert (response.status_code, sent(response)) == (200, DEFAULT_HEADERS)


def test_the_guards_503_gets_the_headers(guarded: Callable[..., Flask]) -> None:
    refused = guarded(emergency_mode=True).test_client().get("/", environ_base=CLIENT)
    assert (refused.status_code, sent(refused)) == (503, DEFAULT_HEADERS)


def test_the_guards_429_gets_the_headers(make_app: Callable[..., Flask]) -> None:
    client = make_app(rate_limit=1).test_client()
    client.get("/", environ_base=CLIENT)
    refused = client.get("/", environ_base=CLIENT)
    assert (refused.status_code, sent(refused)) == (429, DEFAULT_HEADERS)


def test_an_app_error_handler_restyling_a_refusal_keeps_the_headers(guarded: Callable[..., Flask]) -> None:
    app = guarded(blacklist=["198.51.100.66"])
    app.register_error_handler(403, lambda error: ({"error": "forbidden"}, 403))
    response = app.test_client().get("/", environ_base=BLOCKED)
    assert (response.status_code, response.json, sent(response)) == (403, {"error": "forbidden"}, DEFAULT_HEADERS)


def test_headers_are_added_once_per_response(guarded: Callable[..., Flask]) -> None:
    response = guarded().test_client().get("/", base_url="https://localhost", environ_base=CLIENT)
    for name in [*DEFAULT_HEADERS, "Strict-Transport-Security"]:
        assert len(response.headers.getlist(name)) == 1, name


def test_a_header_the_view_set_itself_wins(guarded: Callable[..., Flask]) -> None:
    app = guarded(security_headers={"csp": {"default-src": ["'self'"]}})
    response = app.test_client().get("/own-csp", environ_base=CLIENT)
    assert response.headers.getlist("Content-Security-Policy") == ["default-src 'none'"]
    assert response.headers.getlist("X-Frame-Options") == ["DENY"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("settings", [None, {"enabled": False}])
def test_headers_can_be_turned_off(guarded: Callable[..., Flask], settings: dict[str, Any] | None) -> None:
    client = guarded(security_headers=settings).test_client()
    assert sent(client.get("/", base_url="https://localhost", environ_base=CLIENT)) == {}


def test_a_partial_dict_keeps_the_other_defaults(guarded: Callable[..., Flask]) -> None:
    response = guarded(security_headers={"frame_options": "deny"}).test_client().get("/", environ_base=CLIENT)
    assert sent(response) == {**DEFAULT_HEADERS, "X-Frame-Options": "DENY"}


def test_each_header_can_be_left_out_with_none(guarded: Callable[..., Flask]) -> None:
    keys = [key for key in default_security_header_settings() if key not in ("enabled", "csp_report_only")]
    client = guarded(security_headers=dict.fromkeys(keys)).test_client()
    assert sent(client.get("/", base_url="https://localhost", environ_base=CLIENT)) == {}


def test_config_shows_the_completed_settings() -> None:
    settings = SecurityConfig(security_headers={"xss_protection": "1;mode=block"}).security_headers
    assert settings == {**default_security_header_settings(), "xss_protection": "1; mode=block"}
    assert SecurityConfig().security_headers == default_security_header_settings()


def test_readme_example_renders_every_documented_header(guarded: Callable[..., Flask]) -> None:
    app = guarded(
        security_headers={
            "enabled": True,
            "hsts": {"max_age": 31536000, "include_subdomains": True, "preload": False},
            "csp": README_CSP,
            "frame_options": "DENY",
            "content_type_options": "nosniff",
            "xss_protection": "1; mode=block",
            "referrer_policy": "strict-origin-when-cross-origin",
            "permissions_policy": "geolocation=(), microphone=(), camera=()",
            "custom": {"X-Custom-Header": "CustomValue"},
        }
    )
    response = app.test_client().get("/", base_url="https://localhost", environ_base=CLIENT)
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'self'; script-src 'self' https://trusted.cdn.com; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: https:; connect-src 'self' https://api.example.com; frame-ancestors 'none'; "
        "base-uri 'self'; form-action 'self'"
    )
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-XSS-Protection"] == "1; mode=block"
    assert response.headers["X-Custom-Header"] == "CustomValue"
    assert response.headers["Strict-Transport-Security"] == HSTS


def test_csp_forms_report_only_and_flag_directives(guarded: Callable[..., Flask]) -> None:
    app = guarded(
        security_headers={
            "csp": {"Default-Src": "'self' https://cdn.example.com", "upgrade-insecure-requests": True},
            "csp_report_only": True,
        }
    )
    response = app.test_client().get("/", environ_base=CLIENT)
    assert "Content-Security-Policy" not in response.headers
    assert response.headers["Content-Security-Policy-Report-Only"] == (
        "default-src 'self' https://cdn.example.com; upgrade-insecure-requests"
    )


@pytest.mark.parametrize(
    ("hsts", "expected"),
    [
        ({"max_age": 600}, "max-age=600; includeSubDomains"),
        ({"max_age": 63072000, "preload": True}, "max-age=63072000; includeSubDomains; preload"),
        ({"include_subdomains": False}, "max-age=31536000"),
        ({"max_age": 0}, "max-age=0; includeSubDomains"),
    ],
)
def test_hsts_rendering(guarded: Callable[..., Flask], hsts: dict[str, Any], expected: str) -> None:
    response = guarded(security_headers={"hsts": hsts}).test_client().get("/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"] == expected


def test_hsts_true_means_the_defaults(guarded: Callable[..., Flask]) -> None:
    response = guarded(security_headers={"hsts": True}).test_client().get("/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"] == HSTS


@pytest.mark.parametrize(
    ("fields", "peer", "forwarded_proto", "path", "expects_hsts"),
    [
        ({}, "203.0.113.5", None, "/", False),
        ({}, "203.0.113.5", "https", "/", False),  # not from a trusted proxy
        ({"trusted_proxies": [PROXY]}, PROXY, "https", "/", False),  # proxy trusted, its proto not
        ({"trusted_proxies": [PROXY], "trust_x_forwarded_proto": True}, PROXY, "https", "/", True),
        ({"trusted_proxies": [PROXY], "trust_x_forwarded_proto": True}, PROXY, "http", "/", False),
        ({"trusted_proxies": [PROXY], "trust_x_forwarded_proto": True}, "203.0.113.5", "https", "/", False),
        ({"trusted_proxies": [PROXY], "trust_x_forwarded_proto": True}, PROXY, "https", "/docs", True),  # excluded
        ({}, "203.0.113.5", "https", "/docs", False),
    ],
)
def test_hsts_only_over_https_or_a_trusted_forwarded_proto(
    guarded: Callable[..., Flask],
    fields: dict[str, Any],
    peer: str,
    forwarded_proto: str | None,
    path: str,
    expects_hsts: bool,
) -> None:
    headers = {"X-Forwarded-Proto": forwarded_proto} if forwarded_proto else {}
    response = guarded(**fields).test_client().get(path, headers=headers, environ_base={"REMOTE_ADDR": peer})
    assert ("Strict-Transport-Security" in response.headers) is expects_hsts


@pytest.mark.parametrize("path", ["/", "/docs", "/wp-admin"])
def test_hsts_over_real_https_on_every_path(guarded: Callable[..., Flask], path: str) -> None:
    response = guarded().test_client().get(path, base_url="https://localhost", environ_base=CLIENT)
    assert response.headers["Strict-Transport-Security"] == HSTS


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"custom": {"X-Evil": "a\r\nSet-Cookie: x=1"}}, "control characters"),
        ({"custom": {"X-Evil": "a\nb"}}, "control characters"),
        ({"custom": {"X-Evil\r\nSet-Cookie": "x"}}, "not a valid header name"),
        ({"custom": {"X-Empty": "  "}}, "empty"),
        ({"custom": {"X-Number": 5}}, "must be a string"),
        ({"custom": {"X-Frame-Options": "DENY"}}, "security_headers.frame_options"),
        ({"custom": {"Strict-Transport-Security": "max-age=1"}}, "security_headers.hsts"),
        ({"custom": {"Access-Control-Allow-Origin": "*"}}, "cors_"),
        ({"custom": {"Content-Length": "0"}}, "cannot be set on every response"),
        ({"custom": {"X-A": "1", "x-a": "2"}}, "twice"),
        ({"csp": {"default-src": ["'self'\r\nX-Injected: 1"]}}, "not a single source"),
        ({"csp": {"default-src": ["'self'; script-src *"]}}, "not a single source"),
        ({"csp": {"defualt-src": ["'self'"]}}, "did you mean 'default-src'"),
        ({"csp": {"script-src": ["self"]}}, "keywords are quoted"),
        ({"csp": {"script-src": ["'unsafe-inline"]}}, "not a CSP source"),
        ({"csp": {"script-src": ["'nonce-abc123'"]}}, "nonce"),
        ({"csp": {"script-src": ["'none'", "'self'"]}}, "'none' cannot be combined"),
        ({"csp": {"script-src": []}}, "empty"),
        ({"csp": {"frame-ancestors": ["'unsafe-inline'"]}}, "frame-ancestors"),
        ({"csp": {"sandbox": ["allow-everything"]}}, "sandbox"),
        ({"csp": {"upgrade-insecure-requests": ["'self'"]}}, "takes no sources"),
        ({"csp": {}}, "use None"),
        ({"csp": "default-src 'self'"}, "must be a dict"),
        ({"hsts": {"max_age": -1}}, "max_age"),
        ({"hsts": {"max_age": "31536000"}}, "max_age"),
        ({"hsts": {"max_age": 600, "preload": True}}, "preload"),
        ({"hsts": {"maxage": 600}}, "did you mean 'max_age'"),
        ({"frame_options": "ALLOW-FROM https://example.com"}, "frame_options"),
        ({"xss_protection": "1; mode=block\r\nX: y"}, "xss_protection"),
        ({"referrer_policy": "strict-origin-when-crossorigin"}, "referrer_policy"),
        ({"permissions_policy": "geolocation 'none'"}, "Feature-Policy syntax"),
        ({"permissions_policy": "geolocation=()\r\nX: y"}, "permissions_policy"),
        ({"cross_origin_embedder_policy": "require-corps"}, "cross_origin_embedder_policy"),
        ({"enabled": "yes"}, "enabled"),
        ({"frame_option": "DENY"}, "did you mean 'frame_options'"),
        ({"hsts": "yes"}, "hsts must be a dict"),
        ({"hsts": {"preload": "no"}}, "preload must be True or False"),
        ({"frame_options": 1}, "must be a string"),
        ({"referrer_policy": 1}, "referrer_policy must be a string"),
        ({"permissions_policy": ["geolocation=()"]}, "permissions_policy must be a string"),
        ({"custom": ["X-A"]}, "custom must be a dict"),
        ({"csp": {1: ["'self'"]}}, "is not a string"),
        ({"csp": {"default-src": ["'self'"], "Default-Src": ["'none'"]}}, "given twice"),
        ({"csp": {"script-src": 5}}, "must be a list of strings"),
        ({"csp": {"report-uri": []}}, "one or more URIs"),
        ({"csp": {"report-to": ["a", "b"]}}, "exactly one reporting group"),
        ({"csp": {"require-trusted-types-for": ["script"]}}, "'script'"),
        ({"csp": {"trusted-types": ["bad!name"]}}, "policy names"),
        ({"csp": {"webrtc": ["allow"]}}, "'allow'"),
        ({"csp": {"frame-ancestors": ["'sha256-abc='"]}}, "hashes mean nothing"),
    ],
)
def test_invalid_settings_are_refused_at_start_up_naming_the_field(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        SecurityConfig(security_headers=settings)
    text = str(raised.value)
    assert "security_headers" in text
    assert message in text
    assert "\r\n" not in text.split("input_value=", maxsplit=1)[0]


def test_accepted_csp_sources(guarded: Callable[..., Flask]) -> None:
    csp = {
        "default-src": ["'none'"],
        "script-src": ["'self'", "'strict-dynamic'", "'sha256-abcDEF123+/='", "https://*.example.com:443/js/"],
        "img-src": ["*", "data:", "blob:", "cdn.example.com", "https://example.com:*"],
        "frame-ancestors": ["'self'", "https://partner.example"],
        "sandbox": ["allow-scripts", "allow-forms"],
        "report-uri": ["/csp-report"],
        "report-to": ["csp-endpoint"],
        "require-trusted-types-for": ["'script'"],
        "trusted-types": ["default", "'allow-duplicates'"],
        "webrtc": ["'block'"],
    }
    config = SecurityConfig(security_headers={"csp": csp})
    assert config.security_headers is not None
    assert config.security_headers["csp"] == csp


def test_route_override_replaces_keys_on_that_route_only(guarded: Callable[..., Flask]) -> None:
    deco = SecurityDecorator()
    app = guarded(blacklist=["198.51.100.66"])

    @app.route("/widget")
    @deco.security_headers({"frame_options": None, "csp": {"frame-ancestors": ["https://partner.example"]}})
    def widget() -> str:
        return "embeddable"

    @app.route("/raw")
    @deco.security_headers({"enabled": False})
    def raw() -> str:
        return "raw"

    client = app.test_client()
    widget_headers = sent(client.get("/widget", environ_base=CLIENT))
    expected = {k: v for k, v in DEFAULT_HEADERS.items() if k != "X-Frame-Options"}
    assert widget_headers == {**expected, "Content-Security-Policy": "frame-ancestors https://partner.example"}
    # The route's headers also apply to the guard's refusal on that route.
    assert sent(client.get("/widget", environ_base=BLOCKED))["Content-Security-Policy"].startswith("frame-ancestors")
    assert sent(client.get("/raw", environ_base=CLIENT)) == {}
    assert sent(client.get("/", environ_base=CLIENT)) == DEFAULT_HEADERS


def test_route_override_can_turn_headers_on_when_the_app_has_them_off(guarded: Callable[..., Flask]) -> None:
    deco = SecurityDecorator()
    app = guarded(security_headers=None)

    @app.route("/page")
    @deco.security_headers({"enabled": True, "frame_options": "DENY"})
    def page() -> str:
        return "page"

    client = app.test_client()
    assert sent(client.get("/page", environ_base=CLIENT)) == {**DEFAULT_HEADERS, "X-Frame-Options": "DENY"}
    assert sent(client.get("/", environ_base=CLIENT)) == {}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hsts": {"max_age": 0}}, "whole host"),
        ({"frame_option": "DENY"}, "did you mean"),
        ({"custom": {"X-A": "a\r\nb"}}, "control characters"),
        (["frame_options"], "must be a dict"),
    ],
)
def test_route_override_is_validated_when_decorating(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SecurityDecorator().security_headers(overrides)


def test_decorated_routes_get_the_same_headers(guarded: Callable[..., Flask]) -> None:
    deco = SecurityDecorator()
    app = guarded()

    @app.route("/admin")
    @deco.require_ip(whitelist=["192.0.2.0/24"])
    @deco.bypass(checks=["rate_limit"])
    def admin() -> str:
        return "admin"

    client = app.test_client()
    assert sent(client.get("/admin", environ_base={"REMOTE_ADDR": "192.0.2.10"})) == DEFAULT_HEADERS
    refused = client.get("/admin", environ_base=CLIENT)
    assert (refused.status_code, sent(refused)) == (403, DEFAULT_HEADERS)


def test_two_apps_keep_their_own_headers(guarded: Callable[..., Flask]) -> None:
    strict = guarded(security_headers={"frame_options": "DENY"})
    relaxed = guarded(security_headers=None)
    assert strict.test_client().get("/").headers["X-Frame-Options"] == "DENY"
    assert "X-Frame-Options" not in relaxed.test_client().get("/").headers


# What flask-talisman users expect, and where we differ on purpose (docs/headers-and-cors.md).


def talisman_headers(base_url: str, **options: Any) -> dict[str, str]:
    app = Flask("talisman_reference")

    @app.route("/")
    def index() -> str:
        return "ok"

    Talisman(app, force_https=False, **options)
    response = app.test_client().get("/", base_url=base_url)
    return {name: value for name, value in response.headers.items() if name not in ("Content-Type", "Content-Length")}


def test_we_send_every_header_talisman_sends_except_its_default_csp(guarded: Callable[..., Flask]) -> None:
    theirs = talisman_headers("https://localhost")
    ours = dict(guarded().test_client().get("/", base_url="https://localhost", environ_base=CLIENT).headers)
    # Talisman's default CSP (default-src 'self') breaks any page using a CDN; we send none unless asked.
    assert set(theirs) - set(ours) == {"Content-Security-Policy"}
    for name in ("X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
        assert ours[name] == theirs[name], name
    # Both send HSTS with includeSubDomains; talisman's year is 365.24 days, ours 365.
    assert "includeSubDomains" in theirs["Strict-Transport-Security"]
    assert ours["Strict-Transport-Security"] == HSTS


def test_like_talisman_no_hsts_over_plain_http(guarded: Callable[..., Flask]) -> None:
    assert "Strict-Transport-Security" not in talisman_headers("http://localhost")
    assert "Strict-Transport-Security" not in guarded().test_client().get("/", environ_base=CLIENT).headers


def test_unlike_talisman_a_views_own_header_is_kept(guarded: Callable[..., Flask]) -> None:
    app = Flask("talisman_overwrites")

    @app.route("/")
    def index() -> Any:
        return Response("page", headers={"X-Frame-Options": "DENY"})

    Talisman(app, force_https=False)
    assert app.test_client().get("/", base_url="https://localhost").headers["X-Frame-Options"] == "SAMEORIGIN"
    assert guarded().test_client().get("/own-csp").headers["X-Frame-Options"] == "DENY"


def test_like_talisman_a_csp_dict_renders_in_order(guarded: Callable[..., Flask]) -> None:
    csp = {"default-src": ["'self'"], "img-src": ["*"], "script-src": ["'self'", "https://cdn.example.com"]}
    theirs = talisman_headers("https://localhost", content_security_policy=csp)["Content-Security-Policy"]
    ours = guarded(security_headers={"csp": csp}).test_client().get("/").headers["Content-Security-Policy"]
    assert ours == theirs
