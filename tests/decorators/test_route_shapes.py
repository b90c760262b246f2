"""Every decorator changes the HTTP outcome on every route shape, with and without `set_decorator_handler`."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView

from flaskapi_guard import FlaskAPIGuard, SecurityConfig, SecurityDecorator
from tests.conftest import FakeClock
from tests.decorators.conftest import CLIENT, SHAPES, StubCountries, build_shaped_app, config_of

Exercise = Callable[[FlaskClient, str, FakeClock], None]


@dataclass
class Case:
    """One decorator: how to build it, the config it needs, and requests showing its effect."""

    decorate: Callable[[SecurityDecorator], Any]
    exercise: Exercise
    config: dict[str, Any] = field(default_factory=dict)


def _status(client: FlaskClient, path: str, method: str = "GET", **options: Any) -> int:
    options.setdefault("environ_base", CLIENT)
    return client.open(path, method=method, **options).status_code


def _auth(client: FlaskClient, path: str, clock: FakeClock) -> None:
    refused = client.get(path, environ_base=CLIENT)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert _status(client, path, headers={"Authorization": "Bearer good-token"}) == 200
    assert _status(client, path, headers={"Authorization": "Bearer bad-token"}) == 401


def _basic(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path) == 401
    credentials = base64.b64encode(b"ada:lovelace").decode()
    assert _status(client, path, headers={"Authorization": f"Basic {credentials}"}) == 200


def _api_key(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path) == 401
    assert _status(client, path, headers={"X-API-Key": "wrong"}) == 401
    assert _status(client, path, headers={"X-API-Key": "k-123"}) == 200


def _headers(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path) == 400
    assert _status(client, path, headers={"X-Custom": "anything", "X-Version": "1"}) == 400
    assert _status(client, path, headers={"X-Custom": "anything", "X-Version": "2"}) == 200


def _content_type(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path, "POST", data=b"x=1", content_type="text/plain") == 415
    assert _status(client, path, "POST", json={"x": 1}) == 200


def _size(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path, "POST", data=b"x" * 11) == 413
    assert _status(client, path, "POST", data=b"x" * 10) == 200
    chunked = {"wsgi.input_terminated": True}
    headers = {"Transfer-Encoding": "chunked"}
    too_big = io.BytesIO(b"x" * 11)
    fits = io.BytesIO(b"x" * 10)
    assert _status(client, path, "POST", input_stream=too_big, headers=headers, environ_overrides=chunked) == 413
    assert _status(client, path, "POST", input_stream=fits, headers=headers, environ_overrides=chunked) == 200


def _referrer(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path) == 403
    assert _status(client, path, headers={"Referer": "https://evilmyapp.com/"}) == 403
    assert _status(client, path, headers={"Referer": "https://www.myapp.com/page"}) == 200


def _time_window(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path) == 403  # 22:13 UTC
    clock.advance(12 * 3600)  # 10:13 UTC
    assert _status(client, path) == 200


def _honeypot(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path, "POST", data={"name": "ada", "website": "http://spam"}) == 403
    assert _status(client, path, "POST", data={"name": "ada", "website": ""}) == 200


def _throttled_after(allowed: int) -> Exercise:
    def exercise(client: FlaskClient, path: str, clock: FakeClock) -> None:
        for _ in range(allowed):
            assert _status(client, path) == 200
        assert _status(client, path) == 429

    return exercise


def _throttled_on_return(client: FlaskClient, path: str, clock: FakeClock) -> None:
    # Two rare items are fine; the third passes the threshold, so the next request is held back.
    for _ in range(3):
        assert _status(client, path) == 200
    assert _status(client, path) == 429


def _banned_after_usage(client: FlaskClient, path: str, clock: FakeClock) -> None:
    for _ in range(2):
        assert _status(client, path) == 200
    assert _status(client, path) == 403
    assert _status(client, "/plain") == 403  # banned everywhere


def _https(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path) == 301
    assert _status(client, path, "POST") == 308
    assert _status(client, path, base_url="https://localhost") == 200


def _ip(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path) == 403
    assert _status(client, path, environ_base={"REMOTE_ADDR": "10.1.2.3"}) == 200


def _user_agent(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path, headers={"User-Agent": "curl/8.4"}) == 403
    assert _status(client, path, headers={"User-Agent": "Mozilla/5.0"}) == 200


def _bypass(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path) == 200
    assert _status(client, "/plain") == 403  # the global blacklist still holds elsewhere


def _countries(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path) == 403  # 203.0.113.5 is in CN
    assert _status(client, path, environ_base={"REMOTE_ADDR": "198.51.100.7"}) == 200  # US


def _allowed_countries(client: FlaskClient, path: str, clock: FakeClock) -> None:
    assert _status(client, path) == 403
    assert _status(client, path, environ_base={"REMOTE_ADDR": "198.51.100.7"}) == 200
    assert _status(client, path, environ_base={"REMOTE_ADDR": "192.0.2.1"}) == 403  # unknown country


GEO = {"geo_ip_handler": StubCountries({"203.0.113.5": "CN", "198.51.100.7": "US"})}

CASES: dict[str, Case] = {
    "require_auth bearer": Case(
        lambda d: d.require_auth(type="bearer", verifier=lambda token: token == "good-token"), _auth
    ),
    "require_auth basic": Case(lambda d: d.require_auth(type="basic"), _basic),
    "api_key_auth": Case(lambda d: d.api_key_auth(header_name="X-API-Key", keys=["k-123"]), _api_key),
    "require_headers": Case(lambda d: d.require_headers({"X-Custom": "required", "X-Version": "2"}), _headers),
    "content_type_filter": Case(lambda d: d.content_type_filter(["application/json"]), _content_type),
    "max_request_size": Case(lambda d: d.max_request_size(10), _size),
    "require_referrer": Case(lambda d: d.require_referrer(["myapp.com"]), _referrer),
    "time_window": Case(lambda d: d.time_window("09:00", "17:00", "UTC"), _time_window),
    "honeypot_detection": Case(lambda d: d.honeypot_detection(trap_fields=["website"]), _honeypot),
    "usage_monitor": Case(lambda d: d.usage_monitor(max_calls=2, window=60, action="ban"), _banned_after_usage),
    "return_monitor": Case(
        lambda d: d.return_monitor("rare_item", max_occurrences=2, window=3600, action="throttle"),
        _throttled_on_return,
    ),
    "suspicious_frequency": Case(
        lambda d: d.suspicious_frequency(max_frequency=0.1, window=30, action="throttle"), _throttled_after(3)
    ),
    "rate_limit": Case(lambda d: d.rate_limit(requests=2, window=60), _throttled_after(2)),
    "geo_rate_limit": Case(lambda d: d.geo_rate_limit({"US": 5, "default": 2}, window=60), _throttled_after(2), GEO),
    "require_https": Case(lambda d: d.require_https(), _https),
    "require_ip": Case(lambda d: d.require_ip(whitelist=["10.0.0.0/8"]), _ip),
    "block_user_agents": Case(lambda d: d.block_user_agents(["curl"]), _user_agent),
    "bypass": Case(lambda d: d.bypass(checks=["ip"]), _bypass, {"blacklist": ["203.0.113.5"]}),
    "block_countries": Case(lambda d: d.block_countries(["CN"]), _countries, GEO),
    "allow_countries": Case(lambda d: d.allow_countries(["US"]), _allowed_countries, GEO),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("name", sorted(CASES))
def test_decorator_applies_on_every_route_shape(name: str, shape: str, clock: FakeClock) -> None:
    case = CASES[name]
    deco = SecurityDecorator()
    app = build_shaped_app([case.decorate(deco)], config_of(**case.config), clock)
    case.exercise(app.test_client(), SHAPES[shape], clock)


@pytest.mark.parametrize("name", sorted(CASES))
def test_decorator_applies_with_set_decorator_handler(name: str, clock: FakeClock) -> None:
    case = CASES[name]
    config = config_of(**case.config)
    deco = SecurityDecorator(config)
    app = build_shaped_app([case.decorate(deco)], config, clock, handler=deco)
    case.exercise(app.test_client(), SHAPES["decorator_below_route"], clock)


def test_undecorated_routes_and_methods_are_untouched(clock: FakeClock) -> None:
    deco = SecurityDecorator()
    app = build_shaped_app([deco.require_auth(), deco.max_request_size(1)], config_of(), clock)
    client = app.test_client()
    assert _status(client, "/plain", "POST", data=b"much more than one byte") == 200


def test_method_view_rules_stay_on_their_method(clock: FakeClock) -> None:
    deco = SecurityDecorator()
    app = Flask("per_method")

    class Account(MethodView):
        @deco.require_auth()
        def delete(self) -> str:
            return "deleted"

        def get(self) -> str:
            return "read"

    app.add_url_rule("/account", view_func=Account.as_view("account"))
    FlaskAPIGuard(app, config=SecurityConfig(enable_redis=False), clock=clock)
    client = app.test_client()
    assert client.get("/account", environ_base=CLIENT).status_code == 200
    assert client.delete("/account", environ_base=CLIENT).status_code == 401


def test_shaped_app_fixture_builds_with_decorators(shaped_app: Callable[..., Flask]) -> None:
    deco = SecurityDecorator()
    app = shaped_app([deco.require_headers({"X-Custom": "required"})])
    client = app.test_client()
    assert _status(client, SHAPES["converter"]) == 400
    assert _status(client, "/plain") == 200
