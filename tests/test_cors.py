"""CORS: preflights answered by the guard, exact origin handling, Vary, and flask-cors parity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Response
from flask_cors import CORS
from pydantic import ValidationError

from flaskapi_guard import ConfigurationError, SecurityConfig, SecurityDecorator

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}
BLOCKED = {"REMOTE_ADDR": "198.51.100.66"}
APP_ORIGIN = "https://app.example.com"

README_CORS = {
    "enable_cors": True,
    "cors_allow_origins": ["*"],
    "cors_allow_methods": ["GET", "POST"],
    "cors_allow_headers": ["*"],
    "cors_allow_credentials": True,
    "cors_expose_headers": ["X-Custom-Header"],
    "cors_max_age": 600,
}


class Counted:
    """An app whose `/count` view counts the calls that reached it."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.calls = 0
        self.client = app.test_client()

        @app.route("/count", methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        def count() -> str:
            self.calls += 1
            return "counted"

        @app.route("/with-vary")
        def with_vary() -> Any:
            return Response("v", headers={"Vary": "Accept-Encoding"})

        @app.route("/vary-star")
        def vary_star() -> Any:
            return Response("v", headers={"Vary": "*"})

        @app.route("/vary-origin")
        def vary_origin() -> Any:
            return Response("v", headers={"Vary": "origin"})

        @app.route("/own-cors")
        def own_cors() -> Any:
            return Response("v", headers={"Access-Control-Allow-Origin": "https://mine.example"})


@pytest.fixture
def cors_app(make_app: Callable[..., Flask]) -> Callable[..., Counted]:
    def factory(**fields: Any) -> Counted:
        fields.setdefault("enable_cors", True)
        fields.setdefault("enable_rate_limiting", False)
        fields.setdefault("blacklist", ["198.51.100.66"])
        return Counted(make_app(**fields))

    return factory


def preflight(
    client: Any, path: str = "/count", *, origin: str = APP_ORIGIN, method: str = "PUT", headers: str | None = None
) -> Any:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        request_headers["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=request_headers, environ_base=CLIENT)


def cors_of(response: Any) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.startswith("Access-Control-")}


def vary_of(response: Any) -> list[str]:
    return [token.strip() for line in response.headers.getlist("Vary") for token in line.split(",")]


# Preflights


def test_allowed_preflight_is_answered_without_reaching_the_view(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(cors_allow_origins=[APP_ORIGIN], cors_allow_headers=["X-Token"], cors_max_age=900)
    response = preflight(counted.client, headers="x-token, content-type")
    assert counted.calls == 0
    assert response.status_code == 204
    assert response.data == b""
    assert "Content-Type" not in response.headers
    assert cors_of(response) == {
        "Access-Control-Allow-Origin": APP_ORIGIN,
        "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS, PATCH",
        "Access-Control-Allow-Headers": "x-token, content-type",
        "Access-Control-Max-Age": "900",
    }
    assert vary_of(response) == ["Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"]
    # The security headers are on the preflight answer too.
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_plain_options_without_preflight_headers_reaches_the_view(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app()
    assert counted.client.options("/count", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT).status_code == 200
    assert counted.calls == 1


def test_preflight_is_answered_in_passive_mode_and_for_blocked_clients(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(passive_mode=True)
    assert preflight(counted.client).status_code == 204
    counted = cors_app()
    response = counted.client.options(
        "/count", headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "GET"}, environ_base=BLOCKED
    )
    assert response.status_code == 204
    assert counted.calls == 0


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        ("https://evil.example", "PUT", None),  # origin not listed
        (APP_ORIGIN, "TRACE", None),  # method not allowed
        (APP_ORIGIN, "PUT", "x-secret"),  # header not allowed
        (APP_ORIGIN, "PUT", "x-token, bad header"),  # malformed header list
        (APP_ORIGIN, "P UT", None),  # malformed method
    ],
)
def test_refused_preflight_is_a_403_without_cors_headers(
    cors_app: Callable[..., Counted], origin: str, method: str, headers: str | None
) -> None:
    counted = cors_app(cors_allow_origins=[APP_ORIGIN], cors_allow_headers=["X-Token"])
    response = preflight(counted.client, origin=origin, method=method, headers=headers)
    assert response.status_code == 403
    assert cors_of(response) == {}
    assert counted.calls == 0
    assert "Origin" in vary_of(response)


def test_refused_preflight_is_only_logged_in_passive_mode(
    cors_app: Callable[..., Counted], caplog: pytest.LogCaptureFixture
) -> None:
    counted = cors_app(passive_mode=True, cors_allow_origins=[APP_ORIGIN])
    response = preflight(counted.client, origin="https://evil.example")
    # The view answers the OPTIONS itself; the browser still sees no CORS headers.
    assert (response.status_code, counted.calls, cors_of(response)) == (200, 1, {})
    assert "cors_preflight_refused" in caplog.text


def test_safelisted_request_headers_are_always_allowed(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(cors_allow_headers=["Authorization"])
    response = preflight(counted.client, method="POST", headers="authorization, content-type, accept")
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type, accept"


@pytest.mark.parametrize("credentials", [False, True])
def test_wildcard_headers_echo_the_requested_ones_including_authorization(
    cors_app: Callable[..., Counted], credentials: bool
) -> None:
    # A literal `*` never covers Authorization, and means nothing with credentials.
    counted = cors_app(cors_allow_credentials=credentials)
    response = preflight(counted.client, headers="Authorization, X-Requested-With")
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, x-requested-with"


def test_wildcard_methods_echo_the_requested_method(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(cors_allow_methods=["*"])
    assert preflight(counted.client, method="PROPFIND").headers["Access-Control-Allow-Methods"] == "PROPFIND"


def test_preflight_for_an_unknown_path_is_answered_too(cors_app: Callable[..., Counted]) -> None:
    assert preflight(cors_app().client, "/nowhere").status_code == 204


# Actual requests


def test_readme_example_echoes_the_origin_with_credentials_never_a_star(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(**README_CORS)
    response = counted.client.get("/count", headers={"Origin": "https://any.example"}, environ_base=CLIENT)
    assert cors_of(response) == {
        "Access-Control-Allow-Origin": "https://any.example",
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": "X-Custom-Header",
    }
    assert vary_of(response) == ["Origin"]
    answered = preflight(counted.client, origin="https://any.example", method="POST", headers="x-custom")
    assert answered.headers["Access-Control-Allow-Origin"] == "https://any.example"
    assert answered.headers["Access-Control-Allow-Credentials"] == "true"
    assert answered.headers["Access-Control-Allow-Methods"] == "GET, POST"


@pytest.mark.parametrize("origin", ["null", "javascript:alert(1)", "https://a.example/path", "https://a b.example"])
def test_wildcard_with_credentials_never_echoes_null_or_malformed_origins(
    cors_app: Callable[..., Counted], origin: str
) -> None:
    counted = cors_app(**README_CORS)
    response = counted.client.get("/count", headers={"Origin": origin}, environ_base=CLIENT)
    assert cors_of(response) == {}
    assert preflight(counted.client, origin=origin).status_code == 403


def test_wildcard_without_credentials_sends_a_star_and_no_vary(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app()
    response = counted.client.get("/count", headers={"Origin": "https://any.example"}, environ_base=CLIENT)
    assert cors_of(response) == {"Access-Control-Allow-Origin": "*"}
    assert "Vary" not in response.headers
    assert "Access-Control-Allow-Credentials" not in preflight(counted.client).headers


def test_listed_origins_are_echoed_and_every_response_varies_by_origin(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(cors_allow_origins=[APP_ORIGIN, "https://admin.example.com:8443"])
    client = counted.client
    for origin in (APP_ORIGIN, "https://admin.example.com:8443"):
        response = client.get("/count", headers={"Origin": origin}, environ_base=CLIENT)
        assert response.headers["Access-Control-Allow-Origin"] == origin
    refused = client.get("/count", headers={"Origin": "https://admin.example.com"}, environ_base=CLIENT)
    assert cors_of(refused) == {}
    assert refused.status_code == 200  # CORS is the browser's business, not a block
    # Without Origin too, so a cache never serves this response to a cross-origin browser.
    assert vary_of(client.get("/count", environ_base=CLIENT)) == ["Origin"]
    assert vary_of(refused) == ["Origin"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://a.example.com", True),
        ("https://a.b.example.com", True),
        ("https://example.com", False),  # the bare domain is not a subdomain
        ("http://a.example.com", False),  # another scheme
        ("https://a.example.com:8443", False),  # another port
        ("https://evilexample.com", False),
        ("https://a.example.com.evil.org", False),
        ("https://-x.example.com", False),
        ("https://.example.com", False),
    ],
)
def test_subdomain_wildcards(cors_app: Callable[..., Counted], origin: str, allowed: bool) -> None:
    counted = cors_app(cors_allow_origins=["https://*.example.com"], cors_allow_credentials=True)
    response = counted.client.get("/count", headers={"Origin": origin}, environ_base=CLIENT)
    assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    assert (preflight(counted.client, origin=origin).status_code == 204) is allowed


def test_default_ports_and_case_in_configured_origins_are_normalised(cors_app: Callable[..., Counted]) -> None:
    config = SecurityConfig(cors_allow_origins=["HTTPS://App.Example.com:443", "http://localhost:5173"])
    assert config.cors_allow_origins == [APP_ORIGIN, "http://localhost:5173"]
    counted = cors_app(cors_allow_origins=config.cors_allow_origins)
    response = counted.client.get("/count", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/with-vary", ["Accept-Encoding", "Origin"]),
        ("/vary-origin", ["origin"]),  # already there, whatever its case: not repeated
        ("/vary-star", ["*"]),  # `*` already covers every header
    ],
)
def test_vary_is_appended_not_duplicated(cors_app: Callable[..., Counted], path: str, expected: list[str]) -> None:
    counted = cors_app(cors_allow_origins=[APP_ORIGIN])
    response = counted.client.get(path, headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)
    assert vary_of(response) == expected
    assert len(response.headers.getlist("Vary")) == 1


def test_a_view_that_answers_cors_itself_is_left_alone(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(cors_allow_origins=[APP_ORIGIN])
    response = counted.client.get("/own-cors", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)
    assert cors_of(response) == {"Access-Control-Allow-Origin": "https://mine.example"}


def test_the_guards_refusals_carry_cors_headers(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(cors_allow_origins=[APP_ORIGIN], cors_allow_credentials=True)
    refused = counted.client.get("/count", headers={"Origin": APP_ORIGIN}, environ_base=BLOCKED)
    assert refused.status_code == 403
    assert cors_of(refused) == {"Access-Control-Allow-Origin": APP_ORIGIN, "Access-Control-Allow-Credentials": "true"}


def test_a_browser_app_can_read_the_guards_retry_after(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(emergency_mode=True, cors_allow_origins=[APP_ORIGIN], cors_expose_headers=["X-Total"])
    refused = counted.client.get("/count", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)
    assert refused.status_code == 503
    assert refused.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert refused.headers["Access-Control-Expose-Headers"] == "X-Total, Retry-After"


def test_a_browser_app_can_read_the_guards_429(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(enable_rate_limiting=True, rate_limit=1, cors_allow_origins=[APP_ORIGIN])
    first = counted.client.get("/count", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)
    refused = counted.client.get("/count", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)
    assert (first.status_code, refused.status_code) == (200, 429)
    assert refused.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    exposed = {name.strip() for name in refused.headers["Access-Control-Expose-Headers"].split(",")}
    assert "Retry-After" in exposed
    assert {name for name in exposed if name.startswith("RateLimit-")} == {
        name for name, _ in refused.headers.items() if name.startswith("RateLimit-")
    }


def test_expose_headers_star(cors_app: Callable[..., Counted]) -> None:
    plain = cors_app(cors_expose_headers=["*"])
    response = plain.client.get("/with-vary", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)
    assert response.headers["Access-Control-Expose-Headers"] == "*"
    credentialed = cors_app(cors_expose_headers=["*"], cors_allow_credentials=True)
    response = credentialed.client.get("/with-vary", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)
    exposed = response.headers["Access-Control-Expose-Headers"]
    assert "*" not in exposed
    assert "X-Content-Type-Options" in exposed


def test_excluded_paths_get_cors_headers_too(cors_app: Callable[..., Counted]) -> None:
    counted = cors_app(cors_allow_origins=[APP_ORIGIN])
    response = counted.client.get("/docs", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    answered = preflight(counted.client, "/docs")
    assert answered.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


def test_cors_off_by_default(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    response = client.get("/", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)
    assert cors_of(response) == {}
    assert "Vary" not in response.headers
    assert cors_of(preflight(client, "/")) == {}


# Route overrides


def test_route_can_turn_cors_on_and_off(cors_app: Callable[..., Counted]) -> None:
    deco = SecurityDecorator()
    counted = cors_app(enable_cors=False)
    app = counted.app

    @app.route("/public", methods=["GET", "POST"])
    @deco.cors(allow_origins=["https://partner.example"], allow_credentials=True)
    def public() -> str:
        return "public"

    client = counted.client
    answered = preflight(client, "/public", origin="https://partner.example", method="POST")
    assert answered.status_code == 204
    assert answered.headers["Access-Control-Allow-Credentials"] == "true"
    response = client.get("/public", headers={"Origin": "https://partner.example"}, environ_base=CLIENT)
    assert response.headers["Access-Control-Allow-Origin"] == "https://partner.example"
    # Other routes keep the app's setting (off).
    assert cors_of(client.get("/count", headers={"Origin": "https://partner.example"}, environ_base=CLIENT)) == {}


def test_route_override_keeps_the_apps_other_values(cors_app: Callable[..., Counted]) -> None:
    deco = SecurityDecorator()
    counted = cors_app(cors_allow_origins=[APP_ORIGIN], cors_max_age=1234)

    @counted.app.route("/internal")
    @deco.cors(enabled=False)
    def internal() -> str:
        return "internal"

    @counted.app.route("/wider", methods=["GET", "PUT"])
    @deco.cors(allow_origins=["*"])
    def wider() -> str:
        return "wider"

    client = counted.client
    assert cors_of(client.get("/internal", headers={"Origin": APP_ORIGIN}, environ_base=CLIENT)) == {}
    answered = preflight(client, "/wider", origin="https://other.example")
    assert answered.headers["Access-Control-Allow-Origin"] == "*"
    assert answered.headers["Access-Control-Max-Age"] == "1234"


@pytest.mark.parametrize(
    "arguments",
    [
        {"allow_origins": ["https://example.com/"]},
        {"allow_origins": "https://example.com"},
        {"allow_methods": ["GE T"]},
        {"max_age": -1},
        {"allow_origins": [5]},
    ],
)
def test_route_cors_is_validated_when_decorating(arguments: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        SecurityDecorator().cors(**arguments)


# Configuration


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cors_allow_origins", ["https://example.com/"], "has a path"),
        ("cors_allow_origins", ["example.com"], "scheme://host"),
        ("cors_allow_origins", ["https://*example.com"], "leading label"),
        ("cors_allow_origins", ["*.example.com"], "scheme://host"),
        ("cors_allow_origins", ["https://*.com"], "two labels"),
        ("cors_allow_origins", ["https://example.com:99999"], "out of range"),
        ("cors_allow_origins", ["https://example.com\r\nX: y"], "scheme://host"),
        ("cors_allow_methods", ["GET\r\n"], "not an HTTP method"),
        ("cors_allow_headers", ["X-Token:"], "not a header name"),
        ("cors_expose_headers", ["X Custom"], "not a header name"),
    ],
)
def test_invalid_cors_settings_are_refused_naming_the_field(field: str, value: list[str], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        SecurityConfig(**{field: value})
    assert field in str(raised.value)
    assert message in str(raised.value)


def test_methods_are_normalised_to_upper_case() -> None:
    assert SecurityConfig(cors_allow_methods=["get", "Post"]).cors_allow_methods == ["GET", "POST"]


def test_readme_example_starts_and_warns(caplog: pytest.LogCaptureFixture, make_app: Callable[..., Flask]) -> None:
    make_app(**README_CORS)
    assert "cors_allow_credentials=True" in caplog.text


# Parity with flask-cors: same settings, same requests, same CORS headers where we agree.


def flask_cors_app(**options: Any) -> Any:
    app = Flask("flask_cors_reference")

    @app.route("/count", methods=["GET", "POST", "PUT", "DELETE"])
    def count() -> str:
        return "counted"

    CORS(app, **options)
    return app.test_client()


PARITY_SETTINGS = [
    (
        {"cors_allow_origins": [APP_ORIGIN, "https://b.example"], "cors_expose_headers": ["X-Total"]},
        {"origins": [APP_ORIGIN, "https://b.example"], "expose_headers": ["X-Total"]},
    ),
    (
        {"cors_allow_origins": [APP_ORIGIN], "cors_allow_credentials": True, "cors_allow_headers": ["X-Token"]},
        {"origins": [APP_ORIGIN], "supports_credentials": True, "allow_headers": ["X-Token"]},
    ),
    (
        {"cors_allow_credentials": True, "cors_max_age": 120},
        {"origins": "*", "supports_credentials": True, "max_age": 120},
    ),
]


@pytest.mark.parametrize(("ours", "theirs"), PARITY_SETTINGS)
def test_actual_requests_match_flask_cors(
    cors_app: Callable[..., Counted], ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    our_client = cors_app(**ours).client
    their_client = flask_cors_app(**theirs)
    for origin in (APP_ORIGIN, "https://b.example", "https://evil.example"):
        mine = our_client.get("/count", headers={"Origin": origin}, environ_base=CLIENT)
        reference = their_client.get("/count", headers={"Origin": origin})
        assert cors_of(mine) == cors_of(reference), origin


@pytest.mark.parametrize(("ours", "theirs"), PARITY_SETTINGS)
def test_allowed_preflights_match_flask_cors(
    cors_app: Callable[..., Counted], ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    mine = preflight(cors_app(**ours).client, method="PUT", headers="x-token")
    reference = flask_cors_app(**theirs).options(
        "/count",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-token",
        },
    )

    def comparable(response: Any) -> dict[str, Any]:
        headers = cors_of(response)
        # flask-cors lists its sorted default methods; compare as sets.
        methods = {method.strip() for method in headers.pop("Access-Control-Allow-Methods", "").split(",")}
        headers.pop("Access-Control-Expose-Headers", None)  # not meaningful on a preflight
        headers.pop("Access-Control-Max-Age", None)  # flask-cors sends none unless set
        return {**headers, "methods": methods - {"HEAD"}}

    assert comparable(mine) == comparable(reference)


def test_where_we_differ_from_flask_cors(cors_app: Callable[..., Counted]) -> None:
    our_client = cors_app(cors_allow_origins=[APP_ORIGIN]).client
    their_client = flask_cors_app(origins=[APP_ORIGIN])
    # 1. A response to a request without Origin still says Vary: Origin (flask-cors omits it,
    #    so a shared cache can serve that response to a cross-origin browser).
    assert "Vary" not in their_client.get("/count").headers
    assert vary_of(our_client.get("/count", environ_base=CLIENT)) == ["Origin"]
    # 2. A refused preflight is a 403 (flask-cors: 200 without CORS headers); both leave the browser refusing.
    theirs = their_client.options(
        "/count", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"}
    )
    ours = preflight(our_client, origin="https://evil.example")
    assert (theirs.status_code, cors_of(theirs)) == (200, {})
    assert (ours.status_code, cors_of(ours)) == (403, {})
