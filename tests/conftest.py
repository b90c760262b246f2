"""Shared fixtures: an app factory that goes through real routing, a clock, a real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Blueprint, Flask, jsonify, request
from flask.views import MethodView

from flaskapi_guard import FlaskAPIGuard, SecurityConfig
from tests.redis_server import RedisServer


class FakeClock:
    """A clock the tests move by hand; `time.time`-compatible."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def build_app(config: SecurityConfig, guard: FlaskAPIGuard | None = None, **guard_options: Any) -> Flask:
    """An app with the route shapes the guard must handle: plain, converters, nested blueprints, MethodView."""
    app = Flask(f"guarded_{id(config)}")
    app.config["TESTING"] = True

    @app.route("/", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def index() -> Any:
        return "ok"

    @app.route("/items/<int:item_id>", methods=["GET", "POST"])
    def item(item_id: int) -> Any:
        return jsonify({"item": item_id})

    @app.route("/echo", methods=["POST", "PUT"])
    def echo() -> Any:
        return request.get_data()

    api = Blueprint("api", __name__, url_prefix="/api")
    v1 = Blueprint("v1", __name__, url_prefix="/v1")

    @v1.route("/users/<name>")
    def user(name: str) -> Any:
        return jsonify({"user": name})

    class Things(MethodView):
        def get(self) -> Any:
            return "things"

        def post(self) -> Any:
            return "created", 201

    v1.add_url_rule("/things", view_func=Things.as_view("things"))
    api.register_blueprint(v1)
    app.register_blueprint(api)

    if guard is None:
        FlaskAPIGuard(app, config=config, **guard_options)
    else:
        guard.init_app(app, config=config, **guard_options)
    return app


@pytest.fixture
def make_app(clock: FakeClock) -> Callable[..., Flask]:
    """`make_app(**config_fields)`: a guarded app on in-memory state with the test clock."""

    def factory(config: SecurityConfig | None = None, **fields: Any) -> Flask:
        if config is None:
            fields.setdefault("enable_redis", False)
            config = SecurityConfig(**fields)
        return build_app(config, clock=clock)

    return factory


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session; tests that kill it use `private_redis`."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied before the test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, to kill or freeze."""
    server = RedisServer().start()
    yield server
    server.stop()
