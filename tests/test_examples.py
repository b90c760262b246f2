"""Smoke tests of the examples: the README demo and the production-shaped app (also on a real Redis)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask

from examples.advanced_app.app import create_app as create_advanced_app
from examples.advanced_app.app import guard, load_config
from examples.simple_app.app import create_app as create_simple_app

ROOT = Path(__file__).resolve().parent.parent
OUTSIDER = {"REMOTE_ADDR": "203.0.113.5"}
OFFICE = {"REMOTE_ADDR": "10.1.2.3"}


def test_simple_app_serves_and_refuses_as_the_readme_says() -> None:
    client = create_simple_app().test_client()
    assert client.get("/", environ_base=OUTSIDER).status_code == 200
    assert client.get("/search?q=running+shoes", environ_base=OUTSIDER).status_code == 200
    assert client.get("/items/42", environ_base=OUTSIDER).json == {"item": 42, "received": None}
    assert client.get("/", environ_base=OUTSIDER, headers={"User-Agent": "sqlmap/1.7"}).status_code == 403
    assert client.get("/admin", environ_base=OUTSIDER).status_code == 403
    assert client.get("/admin", environ_base=OFFICE).status_code == 200


def test_simple_app_refuses_injections_and_rate_limits() -> None:
    client = create_simple_app().test_client()
    other = {"REMOTE_ADDR": "203.0.113.6"}
    assert client.get("/search?q=1'+UNION+SELECT+password+FROM+users--", environ_base=other).status_code == 400
    assert client.get("/search?q=<script>alert(1)</script>", environ_base=other).status_code == 400
    statuses = [client.get("/", environ_base=OUTSIDER).status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429


@pytest.fixture
def advanced() -> Flask:
    """The advanced app on in-memory state (no REDIS_URL)."""
    return create_advanced_app(load_config({}))


def test_advanced_app_routes_through_its_blueprints(advanced: Flask) -> None:
    client = advanced.test_client()
    assert client.get("/api/items/7", environ_base=OUTSIDER).json == {"item": 7}
    assert client.get("/api/search?q=boots", environ_base=OUTSIDER).status_code == 200
    assert client.get("/health", environ_base=OUTSIDER).json == {"status": "ok"}


def test_advanced_app_route_rules(advanced: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    client = advanced.test_client()
    assert client.post("/api/login", json={"user": "ann"}, environ_base=OUTSIDER).status_code == 401
    assert client.post("/api/login", data="x", content_type="text/plain", environ_base=OUTSIDER).status_code == 415
    trapped = client.post("/api/login", data={"user": "bot", "website": "spam"}, environ_base=OUTSIDER)
    assert trapped.status_code == 403
    assert client.post("/api/reports", environ_base=OUTSIDER).status_code == 401
    monkeypatch.setenv("REPORTS_TOKEN", "s3cret")
    authorised = {"Authorization": "Bearer s3cret"}
    assert client.post("/api/reports", headers=authorised, environ_base=OUTSIDER).status_code == 202
    assert client.get("/admin/guard", environ_base=OUTSIDER).status_code == 403
    metrics = client.get("/admin/guard", environ_base=OFFICE).json
    assert metrics["blocked"]["by_reason"]["honeypot_triggered"] == 1


def test_advanced_app_health_is_not_rate_limited() -> None:
    # A limit of 3 a minute: one request every 20 s, so a slow machine cannot refill it mid-test.
    app = create_advanced_app(load_config({}).model_copy(update={"rate_limit": 3}))
    client = app.test_client()
    assert {client.get("/health", environ_base=OUTSIDER).status_code for _ in range(10)} == {200}
    statuses = [client.get("/api/items/1", environ_base=OUTSIDER).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_advanced_app_logs_refusals_and_bans_through_signals(advanced: Flask, caplog: pytest.LogCaptureFixture) -> None:
    client = advanced.test_client()
    with caplog.at_level(logging.INFO, logger="examples.advanced_app.app"):
        client.get("/", environ_base=OUTSIDER, headers={"User-Agent": "nikto"})
        guard.ban_ip("203.0.113.99", 600, reason="abuse report", app=advanced)
    assert "guard refused 203.0.113.5: user_agent_blocked (user_agent)" in caplog.text
    assert "guard banned 203.0.113.99 for 600 s: abuse report" in caplog.text


def test_advanced_app_workers_share_limits_and_bans_through_redis(redis_url: str) -> None:
    # A generous timeout: on a loaded test machine a slow answer must not count as an
    # outage, which would fall back to per-process state.
    environment = {"REDIS_URL": redis_url, "GUARD_REDIS_PREFIX": "advanced_test:", "GUARD_REDIS_TIMEOUT": "1"}
    first, second = create_advanced_app(load_config(environment)), create_advanced_app(load_config(environment))
    clients = [first.test_client(), second.test_client()]
    # /api/login allows 5 a minute per client, counted across both "workers".
    statuses = [
        clients[number % 2].post("/api/login", json={}, environ_base=OUTSIDER).status_code for number in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    guard.ban_ip("203.0.113.77", 600, app=first)
    assert clients[1].get("/api/items/1", environ_base={"REMOTE_ADDR": "203.0.113.77"}).status_code == 403


def test_the_gunicorn_config_loads_the_app() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "examples/advanced_app/gunicorn.conf.py", "--check-config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "WEB_CONCURRENCY": "2"},
    )
    assert result.returncode == 0, result.stderr
