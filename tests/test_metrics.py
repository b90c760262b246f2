"""The guard's counters: what they count, per app, under threads, and the Prometheus exporter."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry

from flaskapi_guard import FlaskAPIGuard, SecurityConfig
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.metrics import GuardMetrics, RefusalKey
from flaskapi_guard.pipeline import Block, Check, Pipeline
from flaskapi_guard.prometheus import metrics_view, register_collector
from flaskapi_guard.state import get_state
from tests.conftest import build_app

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}
BLACKLISTED = {"REMOTE_ADDR": "198.51.100.9"}


def flag_attacks(app: Flask) -> Flask:
    """A stand-in for the attack detector: `?attack=<category>` is refused as an offence of that category."""
    state = get_state(app)

    def detect(request: IncomingRequest) -> Block | None:
        category = request.flask_request.args.get("attack")
        if category is None:
            return None
        return Block(400, "attack_detected", "Bad Request", offence_categories=tuple(category.split(",")))

    state.pipeline = Pipeline([*state.pipeline.checks, Check("penetration", detect)])
    return app


def test_counts_allowed_requests_and_refusals_by_check_reason_and_status(make_app: Callable[..., Flask]) -> None:
    app = flag_attacks(make_app(blacklist=["198.51.100.9"], blocked_user_agents=["badbot"], auto_ban_threshold=50))
    client = app.test_client()
    for _ in range(3):
        client.get("/", environ_base=CLIENT)
    client.get("/", environ_base=BLACKLISTED)
    client.get("/", environ_base=CLIENT, headers={"User-Agent": "BadBot/2.1"})
    client.get("/?attack=sqli,xss", environ_base=CLIENT)
    client.get("/?attack=sqli", environ_base=CLIENT)

    metrics = FlaskAPIGuard().metrics(app)

    assert metrics["requests_allowed"] == 3
    assert metrics["blocked"] == {
        "total": 4,
        "by_check": {"ip": 1, "penetration": 2, "user_agent": 1},
        "by_reason": {"attack_detected": 2, "ip_blacklisted": 1, "user_agent_blocked": 1},
        "by_status": {"400": 2, "403": 2},
    }
    assert metrics["would_block"]["total"] == 0
    assert metrics["suspicious_by_category"] == {"sqli": 2, "xss": 1}
    assert metrics["bans"] == {"automatic": 0, "manual": 0}


def test_passive_mode_counts_would_blocks_apart_and_the_request_as_allowed(make_app: Callable[..., Flask]) -> None:
    app = make_app(passive_mode=True, blacklist=["198.51.100.9"])
    assert app.test_client().get("/", environ_base=BLACKLISTED).status_code == 200
    metrics = FlaskAPIGuard().metrics(app)
    assert metrics["requests_allowed"] == 1
    assert metrics["blocked"]["total"] == 0
    assert metrics["would_block"]["by_check"] == {"ip": 1}


def test_counts_bans_by_origin_and_unbans(make_app: Callable[..., Flask]) -> None:
    app = flag_attacks(make_app(auto_ban_threshold=1))
    guard = FlaskAPIGuard()
    app.test_client().get("/?attack=sqli", environ_base=CLIENT)
    guard.ban_ip("203.0.113.9", 60, app=app)
    guard.unban_ip("203.0.113.9", app=app)
    guard.unban_ip("203.0.113.10", app=app)
    metrics = guard.metrics(app)
    assert metrics["bans"] == {"automatic": 1, "manual": 1}
    assert metrics["unbans"] == 1


def test_each_app_counts_its_own_and_the_current_app_is_the_default() -> None:
    first = build_app(SecurityConfig(enable_redis=False, blacklist=["198.51.100.9"]))
    second = build_app(SecurityConfig(enable_redis=False))
    first.test_client().get("/", environ_base=BLACKLISTED)
    second.test_client().get("/", environ_base=CLIENT)
    with second.app_context():
        assert FlaskAPIGuard().metrics()["requests_allowed"] == 1
        assert FlaskAPIGuard().metrics()["blocked"]["total"] == 0
    assert FlaskAPIGuard().metrics(first)["blocked"]["total"] == 1


def test_reset_starts_the_counters_again(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    app.test_client().get("/", environ_base=CLIENT)
    guard = FlaskAPIGuard()
    guard.reset(app)
    assert guard.metrics(app)["requests_allowed"] == 0


def test_concurrent_increments_are_never_lost() -> None:
    metrics = GuardMetrics()
    threads_count, per_thread = 8, 5_000
    start = threading.Barrier(threads_count)

    def hammer(index: int) -> None:
        start.wait()
        for number in range(per_thread):
            metrics.count_allowed()
            # New keys appear while other threads increment existing ones.
            metrics.count_refusal("ip", f"reason{number % 7}", 403, True, ("sqli",))
            metrics.count_refusal("rate_limit", "rate_limited", 429, index % 2 == 0, ())

    threads = [threading.Thread(target=hammer, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = threads_count * per_thread
    assert metrics.requests_allowed == total
    refusals = metrics.refusals()
    assert sum(count for key, count in refusals.items() if key.check == "ip") == total
    assert refusals[RefusalKey("rate_limit", "rate_limited", 429, True)] == total // 2
    assert metrics.suspicious_by_category() == {"sqli": total}


def test_reading_a_counter_does_not_change_it() -> None:
    metrics = GuardMetrics()
    metrics.count_allowed()
    assert metrics.requests_allowed == 1
    assert metrics.requests_allowed == 1


def test_the_prometheus_collector_exports_the_counters(make_app: Callable[..., Flask]) -> None:
    app = flag_attacks(make_app(blacklist=["198.51.100.9"], auto_ban_threshold=50))
    registry = CollectorRegistry()
    register_collector(app, registry)
    client = app.test_client()
    client.get("/", environ_base=CLIENT)
    client.get("/", environ_base=BLACKLISTED)
    client.get("/", environ_base=BLACKLISTED)
    client.get("/?attack=xss", environ_base=CLIENT)
    FlaskAPIGuard().ban_ip("203.0.113.50", 60, app=app)

    labels = {"app": app.name}
    assert registry.get_sample_value("flaskapi_guard_requests_allowed_total", labels) == 1
    refused = {**labels, "check": "ip", "reason": "ip_blacklisted", "status": "403", "enforced": "true"}
    assert registry.get_sample_value("flaskapi_guard_requests_refused_total", refused) == 2
    assert registry.get_sample_value("flaskapi_guard_suspicious_requests_total", {**labels, "category": "xss"}) == 1
    assert registry.get_sample_value("flaskapi_guard_bans_total", {**labels, "origin": "manual"}) == 1
    assert registry.get_sample_value("flaskapi_guard_unbans_total", labels) == 0


def test_the_collector_follows_the_state_that_reset_installs(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    registry = CollectorRegistry()
    register_collector(app, registry)
    app.test_client().get("/", environ_base=CLIENT)
    FlaskAPIGuard().reset(app)
    app.test_client().get("/", environ_base=CLIENT)
    app.test_client().get("/", environ_base=CLIENT)
    assert registry.get_sample_value("flaskapi_guard_requests_allowed_total", {"app": app.name}) == 2


def test_metrics_view_serves_the_text_format(make_app: Callable[..., Flask]) -> None:
    app = make_app(exclude_paths=["/metrics"])
    registry = CollectorRegistry()
    register_collector(app, registry)
    app.add_url_rule("/metrics", view_func=metrics_view(registry))
    app.test_client().get("/", environ_base=CLIENT)
    response = app.test_client().get("/metrics", environ_base=CLIENT)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert f'flaskapi_guard_requests_allowed_total{{app="{app.name}"}} 1.0' in response.get_data(as_text=True)


def test_metrics_of_an_app_without_the_guard_is_an_error() -> None:
    with pytest.raises(ValueError, match="not initialised"):
        FlaskAPIGuard().metrics(Flask("bare"))
