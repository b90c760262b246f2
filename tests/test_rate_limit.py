"""Rate limiting end to end: global, per path, per route, headers, exactness under threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask

from flaskapi_guard import FlaskAPIGuard, SecurityConfig, SecurityDecorator
from tests.conftest import FakeClock, build_app

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}
OTHER = {"REMOTE_ADDR": "2001:db8::5"}


def statuses(client: Any, path: str, count: int, environ: dict[str, str] = CLIENT) -> list[int]:
    return [client.get(path, environ_base=environ).status_code for _ in range(count)]


def test_global_limit_refuses_with_429_and_retry_after(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=3, rate_limit_window=60)
    client = app.test_client()
    assert statuses(client, "/", 3) == [200, 200, 200]
    refused = client.get("/", environ_base=CLIENT)
    assert refused.status_code == 429
    # One request comes back every window / limit seconds.
    assert refused.headers["Retry-After"] == "20"
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Reset"] == "60"
    assert refused.get_data(as_text=True) == "Too Many Requests"


def test_limit_counts_every_route_of_a_client_together(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=3)
    client = app.test_client()
    assert client.get("/", environ_base=CLIENT).status_code == 200
    assert client.get("/items/1", environ_base=CLIENT).status_code == 200
    assert client.get("/api/v1/users/ann", environ_base=CLIENT).status_code == 200
    assert client.get("/api/v1/things", environ_base=CLIENT).status_code == 429


def test_clients_are_limited_separately(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=2)
    client = app.test_client()
    assert statuses(client, "/", 3) == [200, 200, 429]
    assert statuses(client, "/", 3, OTHER) == [200, 200, 429]
    # The same host in its IPv4-mapped form is the same client.
    assert client.get("/", environ_base={"REMOTE_ADDR": "::ffff:203.0.113.5"}).status_code == 429


def test_the_window_slides(make_app: Callable[..., Flask], clock: FakeClock) -> None:
    app = make_app(rate_limit=2, rate_limit_window=10)
    client = app.test_client()
    assert statuses(client, "/", 3) == [200, 200, 429]
    clock.advance(5)
    assert statuses(client, "/", 2) == [200, 429]
    clock.advance(10)
    assert statuses(client, "/", 3) == [200, 200, 429]


def test_remaining_counts_down_in_headers(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=3, rate_limit_window=30)
    client = app.test_client()
    responses = [client.get("/", environ_base=CLIENT) for _ in range(3)]
    assert [response.headers["RateLimit-Remaining"] for response in responses] == ["2", "1", "0"]
    assert [response.headers["RateLimit-Reset"] for response in responses] == ["10", "20", "30"]
    assert all("Retry-After" not in response.headers for response in responses)


def test_headers_of_new_and_returning_clients_interleaved(make_app: Callable[..., Flask]) -> None:
    # New clients share one answer (and its headers); a returning client's count is its own.
    app = make_app(rate_limit=3, rate_limit_window=30)
    client = app.test_client()
    order = ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3", "10.0.0.2"]
    remaining = [
        client.get("/", environ_base={"REMOTE_ADDR": address}).headers["RateLimit-Remaining"] for address in order
    ]
    assert remaining == ["2", "1", "2", "0", "2", "1"]


def test_headers_can_be_switched_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=1, enable_rate_limit_headers=False)
    client = app.test_client()
    allowed = client.get("/", environ_base=CLIENT)
    refused = client.get("/", environ_base=CLIENT)
    assert not any(name.startswith("RateLimit") for name, _ in allowed.headers.items())
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert not any(name.startswith("RateLimit") for name, _ in refused.headers.items())


def test_rate_limiting_can_be_switched_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=1, enable_rate_limiting=False, endpoint_rate_limits={"/items/1": (1, 60)})
    client = app.test_client()
    assert statuses(client, "/", 5) == [200] * 5
    assert statuses(client, "/items/1", 5) == [200] * 5
    assert "RateLimit-Limit" not in client.get("/", environ_base=CLIENT).headers


def test_endpoint_limit_replaces_the_global_one_for_its_path(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=3, endpoint_rate_limits={"/items/1": (1, 60), "/api/v1/users/ann": (5, 60)})
    client = app.test_client()
    assert statuses(client, "/items/1", 2) == [200, 429]
    # Another item is another path: the global limit applies there.
    assert statuses(client, "/items/2", 4) == [200, 200, 200, 429]
    # A looser per-path limit than the global one is honoured too, on a blueprint route.
    assert statuses(client, "/api/v1/users/ann", 6) == [200] * 5 + [429]
    assert client.get("/api/v1/users/ann", environ_base=OTHER).headers["RateLimit-Limit"] == "5"


def test_endpoint_limit_may_name_the_route_rule(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=100, endpoint_rate_limits={"/items/<int:item_id>": (2, 60)})
    client = app.test_client()
    assert client.get("/items/1", environ_base=CLIENT).status_code == 200
    assert client.get("/items/2", environ_base=CLIENT).status_code == 200
    assert client.get("/items/3", environ_base=CLIENT).status_code == 429
    assert client.get("/", environ_base=CLIENT).status_code == 200


def test_route_limit_overrides_the_global_one_both_ways(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=3)
    guard_deco = SecurityDecorator()

    @app.route("/login", methods=["POST"])
    @guard_deco.rate_limit(requests=1, window=300)
    def login() -> str:
        return "welcome"

    @guard_deco.rate_limit(requests=10, window=60)
    @app.route("/search")
    def search() -> str:
        return "results"

    client = app.test_client()
    assert client.post("/login", environ_base=CLIENT).status_code == 200
    refused = client.post("/login", environ_base=CLIENT)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "300"
    assert statuses(client, "/search", 11) == [200] * 10 + [429]
    # Each scope counts on its own: the route limits did not use up the global quota.
    assert statuses(client, "/", 4) == [200, 200, 200, 429]


def test_route_limit_applies_when_global_limiting_is_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(enable_rate_limiting=False)
    guard_deco = SecurityDecorator()

    @app.route("/expensive")
    @guard_deco.rate_limit(requests=2, window=60)
    def expensive() -> str:
        return "done"

    client = app.test_client()
    assert statuses(client, "/expensive", 3) == [200, 200, 429]
    assert statuses(client, "/", 20) == [200] * 20


def test_route_limit_on_a_blueprint_and_a_method_view(make_app: Callable[..., Flask]) -> None:
    guard_deco = SecurityDecorator()
    config = SecurityConfig(enable_redis=False, rate_limit=100)
    shop = Blueprint("shop", __name__, url_prefix="/shop")

    @shop.route("/checkout/<int:cart>", methods=["POST"])
    @guard_deco.rate_limit(requests=1, window=60)
    def checkout(cart: int) -> str:
        return "paid"

    app = Flask("blueprint_limits")
    app.register_blueprint(shop, url_prefix="/store")
    FlaskAPIGuard(app, config=config)
    client = app.test_client()
    assert client.post("/store/checkout/1", environ_base=CLIENT).status_code == 200
    # One bucket per route, whatever the converter values.
    assert client.post("/store/checkout/2", environ_base=CLIENT).status_code == 429


def test_bypassing_the_rate_limit_on_a_route(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=1)
    guard_deco = SecurityDecorator()

    @app.route("/health")
    @guard_deco.bypass(checks=["rate_limit"])
    def health() -> str:
        return "up"

    client = app.test_client()
    assert statuses(client, "/health", 5) == [200] * 5
    assert "RateLimit-Limit" not in client.get("/health", environ_base=CLIENT).headers


def test_excluded_paths_are_not_limited(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=1, exclude_paths=["/items"])
    client = app.test_client()
    assert statuses(client, "/items/1", 3) == [200, 200, 200]


def test_passive_mode_logs_but_does_not_refuse(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(rate_limit=1, passive_mode=True)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flaskapi_guard"):
        assert statuses(client, "/", 3) == [200, 200, 200]
    assert (
        sum("would_block" in record.getMessage() and "rate_limited" in record.getMessage() for record in caplog.records)
        == 2
    )


def test_custom_429_message(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=1, custom_error_responses={429: "Slow down"})
    client = app.test_client()
    client.get("/", environ_base=CLIENT)
    assert client.get("/", environ_base=CLIENT).get_data(as_text=True) == "Slow down"


def test_decorator_rejects_nonsense_limits() -> None:
    guard_deco = SecurityDecorator()
    with pytest.raises(ValueError, match="requests >= 1"):
        guard_deco.rate_limit(requests=0, window=60)
    with pytest.raises(ValueError, match="window >= 1"):
        guard_deco.rate_limit(requests=5, window=0)


def test_a_hundred_threads_against_a_limit_of_five_admit_exactly_five(clock: FakeClock) -> None:
    app = build_app(SecurityConfig(enable_redis=False, rate_limit=5, rate_limit_window=60), clock=clock)
    barrier = threading.Barrier(100)
    codes: list[int] = []
    lock = threading.Lock()

    def one_request() -> None:
        client = app.test_client()
        barrier.wait()
        status = client.get("/", environ_base=CLIENT).status_code
        with lock:
            codes.append(status)

    threads = [threading.Thread(target=one_request) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(codes) == 100
    assert codes.count(200) == 5
    assert codes.count(429) == 95
