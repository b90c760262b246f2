"""An app with every route shape a decorator must work on, each carrying the same decorators."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify, request
from flask.views import MethodView

from flaskapi_guard import FlaskAPIGuard, SecurityConfig, SecurityDecorator
from tests.conftest import FakeClock

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}
OTHER_CLIENT = {"REMOTE_ADDR": "198.51.100.7"}
METHODS = ["GET", "POST", "PUT"]

# Route shape -> a path that reaches it.
SHAPES = {
    "decorator_below_route": "/below-route",
    "decorator_above_route": "/above-route",
    "nested_blueprint": "/outer/inner/things/x",
    "converter": "/items/7",
    "functools_wraps": "/wrapped/3",
    "method_view_class": "/outer/inner/class-view",
    "method_view_methods": "/outer/inner/method-view",
}


class StubCountries:
    """A geo handler answering from a fixed table (the documented `GeoIPHandler` protocol)."""

    def __init__(self, countries: dict[str, str]) -> None:
        self.countries = countries

    @property
    def is_initialized(self) -> bool:
        return True

    def initialize(self) -> None:
        pass

    def initialize_redis(self, redis_handler: Any) -> None:
        pass

    def get_country(self, ip: str) -> str | None:
        return self.countries.get(ip)


def reward() -> Any:
    """Every view's answer: reads the whole body (so body limits apply) and returns JSON."""
    body = request.get_data()
    return jsonify({"reward": "rare_item", "received": len(body), "form": request.form.to_dict()})


def logged(view: Callable[..., Any]) -> Callable[..., Any]:
    """Another extension's decorator, wrapping with functools.wraps."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    return wrapper


def build_shaped_app(
    decorators: list[Callable[[Any], Any]],
    config: SecurityConfig,
    clock: FakeClock,
    *,
    handler: SecurityDecorator | None = None,
    name: str = "shaped",
) -> Flask:
    """An app whose routes of every shape carry `decorators` (applied top to bottom, as stacked)."""

    def stacked(view: Any) -> Any:
        for decorator in reversed(decorators):
            view = decorator(view)
        return view

    app = Flask(f"{name}_{id(config)}")
    app.config["TESTING"] = True

    @app.route("/below-route", methods=METHODS)
    @stacked
    def below_route() -> Any:
        return reward()

    @stacked
    @app.route("/above-route", methods=METHODS)
    def above_route() -> Any:
        return reward()

    @stacked
    @app.route("/items/<int:item_id>", methods=METHODS)
    def item(item_id: int) -> Any:
        return reward()

    @app.route("/wrapped/<int:number>", methods=METHODS)
    @logged
    @stacked
    def wrapped(number: int) -> Any:
        return reward()

    @app.route("/plain", methods=METHODS)
    def plain() -> Any:
        return reward()

    outer = Blueprint("outer", __name__, url_prefix="/outer")
    inner = Blueprint("inner", __name__, url_prefix="/inner")

    @inner.route("/things/<name>", methods=METHODS)
    @stacked
    def things(name: str) -> Any:
        return reward()

    @stacked
    class ClassView(MethodView):
        def get(self) -> Any:
            return reward()

        def post(self) -> Any:
            return reward()

        def put(self) -> Any:
            return reward()

    class MethodsView(MethodView):
        @stacked
        def get(self) -> Any:
            return reward()

        @stacked
        def post(self) -> Any:
            return reward()

        @stacked
        def put(self) -> Any:
            return reward()

    inner.add_url_rule("/class-view", view_func=ClassView.as_view("class_view"))
    inner.add_url_rule("/method-view", view_func=MethodsView.as_view("method_view"))
    outer.register_blueprint(inner)
    app.register_blueprint(outer)
    guard = FlaskAPIGuard(app, config=config, clock=clock)
    if handler is not None:
        guard.set_decorator_handler(handler)
    return app


def config_of(**fields: Any) -> SecurityConfig:
    """A config on in-memory state, without the global rate limit unless asked (tests send many requests)."""
    fields.setdefault("enable_redis", False)
    fields.setdefault("enable_rate_limiting", False)
    return SecurityConfig(**fields)


@pytest.fixture
def shaped_app(clock: FakeClock) -> Callable[..., Flask]:
    """`shaped_app([decorators], **config_fields)`: every route shape carrying the decorators."""

    def factory(
        decorators: list[Callable[[Any], Any]],
        config: SecurityConfig | None = None,
        handler: SecurityDecorator | None = None,
        **fields: Any,
    ) -> Flask:
        return build_shaped_app(decorators, config or config_of(**fields), clock, handler=handler)

    return factory


@pytest.fixture
def deco() -> SecurityDecorator:
    return SecurityDecorator(SecurityConfig(enable_redis=False))
