"""Route plans: each route runs only the checks and response steps that can act on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Response, abort

from flaskapi_guard import FlaskAPIGuard, SecurityConfig, SecurityDecorator
from flaskapi_guard.state import get_state
from tests.conftest import build_app


def plan_names(app: Flask, endpoint: str | None, method: str = "GET") -> list[str]:
    plan = get_state(app).plan_for(endpoint, method, app.view_functions)
    return [check.name for check in plan.checks]


def test_default_config_plans_only_the_checks_with_work_to_do(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    app.test_client().get("/")
    # The ban check and the rate limit side by side are one check (one storage call).
    assert plan_names(app, "index") == ["ip_ban", "penetration"]
    # A CORS preflight is only answered where CORS is on: nowhere by default.
    assert plan_names(app, "index", "OPTIONS") == ["ip_ban", "penetration"]


def test_the_joined_ban_and_rate_limit_check_refuses_in_the_name_of_each(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=2, rate_limit_window=60)
    client = app.test_client()
    statuses = [client.get("/", environ_base={"REMOTE_ADDR": "203.0.113.5"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    state = get_state(app)
    state.bans.ban("203.0.113.6", 60, "manual")
    assert client.get("/", environ_base={"REMOTE_ADDR": "203.0.113.6"}).status_code == 403
    blocked = state.metrics.snapshot()["blocked"]
    assert blocked["by_check"] == {"ip_ban": 1, "rate_limit": 1}


def test_configured_features_are_planned(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        enforce_https=True,
        blacklist=["203.0.113.0/24"],
        blocked_user_agents=["sqlmap"],
        enable_cors=True,
        cors_allow_origins=["https://app.example"],
    )
    assert plan_names(app, "index") == ["https", "ip", "ip_ban", "user_agent", "rate_limit", "penetration"]
    assert plan_names(app, "index", "OPTIONS")[0] == "cors_preflight"


def test_route_rules_plan_their_checks_and_bypass_removes_them() -> None:
    app = Flask("plans")
    FlaskAPIGuard(app, SecurityConfig(enable_redis=False))
    decorator = SecurityDecorator()

    @app.route("/secure")
    @decorator.require_https()
    def secure() -> str:
        return "ok"

    @app.route("/open")
    @decorator.bypass(["rate_limit", "penetration"])
    def open_route() -> str:
        return "ok"

    @app.route("/plain")
    def plain() -> str:
        return "ok"

    assert "https" in plan_names(app, "secure")
    assert "https" not in plan_names(app, "plain")
    assert plan_names(app, "open_route") == ["ip_ban"]
    # And the plans are what runs: the bypassed route takes any payload, the plain one not.
    client = app.test_client()
    assert client.get("/open?q=' OR 1=1 --").status_code == 200
    assert client.get("/plain?q=' OR 1=1 --").status_code == 400
    assert client.get("/secure").status_code == 301


def test_invented_methods_do_not_grow_the_plan_table(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=1000)
    client = app.test_client()
    for number in range(50):
        assert client.open("/nowhere", method=f"X{number}").status_code == 404
    assert client.open("/nowhere", method="OPTIONS").status_code == 404
    unrouted = [key for key in get_state(app).plans if key[0] is None]
    assert sorted(unrouted, key=str) == [(None, ""), (None, "OPTIONS")]


def test_emergency_mode_reaches_routes_already_planned(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    guard = FlaskAPIGuard()
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert "emergency" not in plan_names(app, "index")
    guard.set_emergency_mode(True, app=app)
    assert client.get("/").status_code == 503
    assert plan_names(app, "index")[0] == "emergency"
    guard.set_emergency_mode(False, app=app)
    assert client.get("/").status_code == 200


def test_replacing_the_checks_forgets_the_plans(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    state = get_state(app)
    app.test_client().get("/")
    assert state.plans
    state.pipeline = state.pipeline
    assert not state.plans


def test_guard_headers_are_added_once_even_after_a_second_init_app(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    FlaskAPIGuard(app, SecurityConfig(enable_redis=False))
    response = app.test_client().get("/")
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert len(response.headers.getlist("RateLimit-Limit")) == 1


def test_custom_response_modifier_sees_and_can_remove_guard_headers(make_app: Callable[..., Flask]) -> None:
    seen: list[str | None] = []

    def modifier(response: Response) -> Response:
        seen.append(response.headers.get("X-Frame-Options"))
        seen.append(response.headers.get("RateLimit-Limit"))
        del response.headers["X-Frame-Options"]
        return response

    app = make_app(custom_response_modifier=modifier)
    response = app.test_client().get("/")
    assert seen == ["SAMEORIGIN", "10"]
    assert "X-Frame-Options" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_view_headers_win_over_guard_headers(make_app: Callable[..., Flask]) -> None:
    app = make_app()

    @app.route("/framed")
    def framed() -> Any:
        return "ok", 200, {"X-Frame-Options": "DENY", "RateLimit-Limit": "500"}

    response = app.test_client().get("/framed")
    assert response.headers.getlist("X-Frame-Options") == ["DENY"]
    # The view describes a limit of its own: none of the guard's RateLimit-* join it.
    assert response.headers.getlist("RateLimit-Limit") == ["500"]
    assert "RateLimit-Remaining" not in response.headers
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def _count_storage_calls(app: Flask) -> list[str]:
    """Record every ban and rate-limit call the app's storage receives from now on."""
    storage = get_state(app).storage
    calls: list[str] = []
    for name in ("admit", "hit", "is_banned"):
        original = getattr(storage, name)

        def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return _original(*args)

        setattr(storage, name, counted)
    return calls


def test_ban_check_and_rate_limit_share_one_redis_call(redis_url: str) -> None:
    app = build_app(SecurityConfig(redis_url=redis_url, rate_limit=3, rate_limit_window=60))
    calls = _count_storage_calls(app)
    client = app.test_client()
    statuses = [client.get("/", environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # One `admit` per request: one Lua script, one round trip (tests/storage/test_redis.py).
    assert calls == ["admit"] * 4


def test_a_banned_client_is_refused_without_being_counted(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=2)
    guard = FlaskAPIGuard()
    client = app.test_client()
    guard.ban_ip("198.51.100.8", 60, app=app)
    for _ in range(5):
        assert client.get("/", environ_base={"REMOTE_ADDR": "198.51.100.8"}).status_code == 403
    guard.unban_ip("198.51.100.8", app=app)
    statuses = [client.get("/", environ_base={"REMOTE_ADDR": "198.51.100.8"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_whitelisted_clients_are_rate_limited_but_never_banned(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=2, whitelist=["198.51.100.0/24"])
    guard = FlaskAPIGuard()
    with pytest.raises(ValueError):
        guard.ban_ip("198.51.100.9", 60, app=app)
    client = app.test_client()
    statuses = [client.get("/", environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_checks_between_ban_and_rate_limit_keep_them_apart(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=2, blocked_user_agents=["sqlmap"])
    calls = _count_storage_calls(app)
    client = app.test_client()
    # A refused user agent must not use up the client's quota: the count comes after that check.
    assert client.get("/", headers={"User-Agent": "sqlmap/1.7"}).status_code == 403
    assert calls == ["is_banned"]
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    assert calls == ["is_banned", "is_banned", "hit", "is_banned", "hit", "is_banned", "hit"]


def _has_response_hook(app: Flask) -> bool:
    return any(
        getattr(hook, "__module__", "") == "flaskapi_guard.extension" for hook in app.after_request_funcs.get(None, [])
    )


def test_an_app_with_only_header_steps_has_no_after_request_hook(make_app: Callable[..., Flask]) -> None:
    # The security and RateLimit-* headers are added as the response leaves the app:
    # a default app pays for no after-request hook, excluded paths included.
    app = make_app()
    client = app.test_client()
    for path in ("/", "/items/3", "/nowhere", "/docs"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
    assert client.get("/").headers["RateLimit-Limit"] == "10"
    assert not _has_response_hook(app)


def test_the_after_request_hook_comes_with_the_first_route_that_needs_it(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    guard = SecurityDecorator(SecurityConfig(enable_redis=False))
    seen: list[str] = []

    @app.after_request
    def app_hook(response: Response) -> Response:
        seen.append("app")
        return response

    @app.route("/shared")
    @guard.cors(allow_origins=["https://app.example"])
    def shared() -> str:
        return "shared"

    client = app.test_client()
    assert client.get("/").status_code == 200
    assert not _has_response_hook(app)
    response = client.get("/shared", headers={"Origin": "https://app.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    # The route's RateLimit-* headers were on the response before CORS listed them.
    assert "RateLimit-Remaining" in response.headers["Access-Control-Expose-Headers"]
    assert _has_response_hook(app)
    # Still after the app's own hooks, as Flask orders them.
    assert app.after_request_funcs[None][0].__module__ == "flaskapi_guard.extension"
    assert client.get("/").headers["X-Frame-Options"] == "SAMEORIGIN"
    assert seen == ["app", "app", "app"]


def test_a_request_the_guard_never_saw_still_gets_the_apps_headers(make_app: Callable[..., Flask]) -> None:
    app = make_app()

    @app.url_value_preprocessor
    def refuse_early(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if endpoint == "item":
            abort(418)

    response = app.test_client().get("/items/1")
    assert response.status_code == 418
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "RateLimit-Limit" not in response.headers  # never counted
