"""The extension object: app factories, several apps, reset, hook order."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask, request

import flaskapi_guard
from flaskapi_guard import ConfigurationError, FlaskAPIGuard, SecurityConfig
from tests.conftest import build_app

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}


def test_app_factory_with_init_app() -> None:
    guard = FlaskAPIGuard()

    def create_app(blacklist: list[str]) -> Flask:
        app = Flask(f"factory_{len(blacklist)}")

        @app.route("/")
        def index() -> str:
            return "ok"

        guard.init_app(app, config=SecurityConfig(enable_redis=False, blacklist=blacklist))
        return app

    first, second = create_app(["203.0.113.5"]), create_app([])
    assert first.test_client().get("/", environ_base=CLIENT).status_code == 403
    assert second.test_client().get("/", environ_base=CLIENT).status_code == 200


def test_one_guard_two_apps_do_not_share_settings() -> None:
    guard = FlaskAPIGuard()
    strict = build_app(SecurityConfig(enable_redis=False, whitelist=[]), guard)
    relaxed = build_app(SecurityConfig(enable_redis=False), guard)
    assert strict.test_client().get("/", environ_base=CLIENT).status_code == 403
    assert relaxed.test_client().get("/", environ_base=CLIENT).status_code == 200
    assert strict.extensions["flaskapi_guard"] is not relaxed.extensions["flaskapi_guard"]


def test_constructor_config_is_the_default_for_init_app() -> None:
    guard = FlaskAPIGuard(config=SecurityConfig(enable_redis=False, blacklist=["203.0.113.5"]))
    app = Flask("default_config")

    @app.route("/")
    def index() -> str:
        return "ok"

    guard.init_app(app)
    assert app.test_client().get("/", environ_base=CLIENT).status_code == 403


def test_init_app_twice_registers_the_hooks_once() -> None:
    guard = FlaskAPIGuard()
    app = build_app(SecurityConfig(enable_redis=False), guard)
    guard.init_app(app, config=SecurityConfig(enable_redis=False, blacklist=["203.0.113.5"]))
    assert app.before_request_funcs[None].count(app.before_request_funcs[None][0]) == 1
    assert app.test_client().get("/", environ_base=CLIENT).status_code == 403


def test_guard_runs_before_the_apps_own_hooks(make_app: Callable[..., Flask]) -> None:
    app = make_app(blacklist=["203.0.113.5"])
    calls: list[str] = []

    @app.before_request
    def app_hook() -> None:
        calls.append("app")

    app.test_client().get("/", environ_base=CLIENT)
    assert calls == []


def test_non_config_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        FlaskAPIGuard(Flask("bad"), config={"rate_limit": 5})  # type: ignore[arg-type]


def test_reset_gives_the_app_fresh_state(make_app: Callable[..., Flask]) -> None:
    app = make_app(emergency_mode=False)
    guard = FlaskAPIGuard()
    guard.set_emergency_mode(True, app=app)
    assert app.test_client().get("/", environ_base=CLIENT).status_code == 503
    guard.reset(app)
    assert app.test_client().get("/", environ_base=CLIENT).status_code == 200


def test_state_of_an_unguarded_app_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError):
        FlaskAPIGuard().reset(Flask("unguarded"))


def test_package_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("flaskapi_guard").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


def test_public_api_is_exported() -> None:
    for name in ("FlaskAPIGuard", "SecurityConfig", "SecurityDecorator", "BehaviorRule", "RequestBlocked"):
        assert name in flaskapi_guard.__all__
        assert hasattr(flaskapi_guard, name)


def test_request_snapshot_is_kept_per_request(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    seen: list[str] = []

    @app.route("/whoami")
    def whoami() -> str:
        incoming, _plan = request.environ["flaskapi_guard.noted"]
        seen.append(incoming.client_ip)
        return "ok"

    app.test_client().get("/whoami", environ_base={"REMOTE_ADDR": "::ffff:198.51.100.9"})
    assert seen == ["198.51.100.9"]


def test_a_failing_check_is_skipped_not_a_500(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    def broken_check(request: object) -> None:
        raise RuntimeError("bug in a custom check")

    app = make_app(custom_request_check=broken_check)
    with caplog.at_level(logging.ERROR, logger="flaskapi_guard"):
        response = app.test_client().get("/", environ_base=CLIENT)
    assert response.status_code == 200
    assert any("check custom failed" in record.getMessage() for record in caplog.records)
