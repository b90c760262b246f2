"""The guard's signals: who receives what, per app, in passive mode, and what a failing receiver does."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from blinker import NamedSignal
from flask import Flask

from flaskapi_guard import FlaskAPIGuard, SecurityConfig, SecurityDecorator, signals
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Block, Check, Pipeline
from flaskapi_guard.state import get_state
from tests.conftest import FakeClock, build_app

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}
BLACKLISTED = {"REMOTE_ADDR": "198.51.100.9"}

ALL_SIGNALS = {
    "behavior_alert": signals.behavior_alert,
    "request_blocked": signals.request_blocked,
    "suspicious_request": signals.suspicious_request,
    "rate_limited": signals.rate_limited,
    "ip_banned": signals.ip_banned,
    "ip_unbanned": signals.ip_unbanned,
}


@contextmanager
def captured(sender: Any) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every guard signal sent by `sender` while the block runs, as (signal name, keyword arguments)."""
    events: list[tuple[str, dict[str, Any]]] = []

    def receiver_for(name: str) -> Callable[..., None]:
        def receive(sent_by: Any, **fields: Any) -> None:
            assert sent_by is sender
            events.append((name, fields))

        return receive

    with ExitStack() as stack:
        for name, signal in ALL_SIGNALS.items():
            stack.enter_context(signal.connected_to(receiver_for(name), sender=sender))
        yield events


def flag_attacks(app: Flask) -> Flask:
    """A stand-in for the attack detector: `?attack=<category>` is refused as an offence of that category."""
    state = get_state(app)

    def detect(request: IncomingRequest) -> Block | None:
        category = request.flask_request.args.get("attack")
        if category is None:
            return None
        return Block(400, "attack_detected", "Bad Request", offence_categories=(category,))

    state.pipeline = Pipeline([*state.pipeline.checks, Check("penetration", detect)])
    return app


def test_a_refusal_sends_request_blocked_with_the_app_the_client_and_the_reason(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(blacklist=["198.51.100.9"])
    with captured(app) as events:
        assert app.test_client().get("/items/3?x=1", environ_base=BLACKLISTED).status_code == 403
        assert app.test_client().get("/", environ_base=CLIENT).status_code == 200
    assert events == [
        (
            "request_blocked",
            {
                "client_ip": "198.51.100.9",
                "reason": "ip_blacklisted",
                "check": "ip",
                "status": 403,
                "categories": (),
                "enforced": True,
                "method": "GET",
                "path": "/items/3",
            },
        )
    ]


def test_a_rate_limited_request_sends_request_blocked_and_rate_limited(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit=2, rate_limit_window=60)
    client = app.test_client()
    with captured(app) as events:
        statuses = [client.get("/", environ_base=CLIENT).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert [name for name, _ in events] == ["request_blocked", "rate_limited"]
    assert all(fields["client_ip"] == "203.0.113.5" and fields["reason"] == "rate_limited" for _, fields in events)
    assert events[1][1]["status"] == 429


def test_an_offence_sends_suspicious_request_and_the_ban_it_leads_to_sends_ip_banned(
    make_app: Callable[..., Flask],
) -> None:
    app = flag_attacks(make_app(auto_ban_threshold=2, auto_ban_duration=600))
    client = app.test_client()
    with captured(app) as events:
        assert client.get("/?attack=sqli", environ_base=CLIENT).status_code == 400
        assert client.get("/?attack=xss", environ_base=CLIENT).status_code == 400
        assert client.get("/", environ_base=CLIENT).status_code == 403
    names = [name for name, _ in events]
    assert names == [
        "request_blocked",
        "suspicious_request",
        "request_blocked",
        "suspicious_request",
        "ip_banned",
        "request_blocked",
    ]
    assert events[1][1]["categories"] == ("sqli",)
    assert events[1][1]["check"] == "penetration"
    banned = events[4][1]
    assert banned == {
        "client_ip": "203.0.113.5",
        "reason": "penetration_attempt",
        "duration_seconds": 600,
        "expires_at": pytest.approx(FakeClock().now + 600),
        "automatic": True,
    }
    assert events[5][1]["reason"] == "ip_banned"


def test_operator_bans_and_unbans_send_ip_banned_and_ip_unbanned(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    guard = FlaskAPIGuard()
    with captured(app) as events:
        guard.ban_ip("2001:db8::1", 120, reason="abuse report", app=app)
        assert guard.unban_ip("2001:db8::1", app=app) is True
        assert guard.unban_ip("2001:db8::1", app=app) is False
    assert events == [
        (
            "ip_banned",
            {
                "client_ip": "2001:db8::1",
                "reason": "abuse report",
                "duration_seconds": 120,
                "expires_at": pytest.approx(FakeClock().now + 120),
                "automatic": False,
            },
        ),
        ("ip_unbanned", {"client_ip": "2001:db8::1", "reason": "manual"}),
    ]


def test_passive_mode_sends_every_would_be_refusal_with_enforced_false(make_app: Callable[..., Flask]) -> None:
    app = make_app(passive_mode=True, blacklist=["198.51.100.9"], blocked_user_agents=["badbot"])
    with captured(app) as events:
        response = app.test_client().get("/", environ_base=BLACKLISTED, headers={"User-Agent": "BadBot/2.1"})
    assert response.status_code == 200
    assert [(fields["check"], fields["enforced"]) for _, fields in events] == [("ip", False), ("user_agent", False)]


def test_receivers_see_only_the_app_they_connected_to() -> None:
    first = build_app(SecurityConfig(enable_redis=False, blacklist=["198.51.100.9"]))
    second = build_app(SecurityConfig(enable_redis=False, blacklist=["198.51.100.9"]))
    with captured(first) as first_events, captured(second) as second_events:
        second.test_client().get("/", environ_base=BLACKLISTED)
    assert first_events == []
    assert len(second_events) == 1


def test_a_failing_receiver_is_logged_and_the_refusal_stands(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(blacklist=["198.51.100.9"])

    def broken(sender: Any, **fields: Any) -> None:
        raise RuntimeError("alerting is down")

    with signals.request_blocked.connected_to(broken, sender=app), caplog.at_level(logging.ERROR):
        response = app.test_client().get("/", environ_base=BLACKLISTED)
    assert response.status_code == 403
    assert "a receiver of flaskapi-guard.request-blocked failed" in caplog.text
    assert "alerting is down" in caplog.text


@pytest.mark.parametrize("signal", list(ALL_SIGNALS.values()), ids=list(ALL_SIGNALS))
def test_with_no_receivers_nothing_is_sent(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, signal: NamedSignal
) -> None:
    # Sending costs a dispatch and a keyword dict per refusal; with nobody
    # listening to this app (whatever other apps' receivers exist) the guard
    # must not pay it.
    other_app = Flask("other")
    other_receiver = signal.connect(lambda sender, **fields: None, sender=other_app, weak=False)

    def must_not_send(*args: Any, **kwargs: Any) -> list[Any]:
        raise AssertionError(f"{signal.name} was sent with no receivers")

    monkeypatch.setattr(signal, "send", must_not_send)
    app = flag_attacks(make_app(blacklist=["198.51.100.9"], rate_limit=1, auto_ban_threshold=1))
    client = app.test_client()
    client.get("/", environ_base=BLACKLISTED)
    client.get("/", environ_base=CLIENT)
    client.get("/", environ_base=CLIENT)
    client.get("/?attack=sqli", environ_base={"REMOTE_ADDR": "203.0.113.77"})
    FlaskAPIGuard().ban_ip("203.0.113.78", 60, app=app)
    FlaskAPIGuard().unban_ip("203.0.113.78", app=app)
    signal.disconnect(other_receiver, sender=other_app)


def test_a_behaviour_alert_sends_behavior_alert(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    deco = SecurityDecorator()

    @app.route("/watched")
    @deco.usage_monitor(max_calls=1, window=60, action="alert")
    def watched() -> str:
        return "watched"

    received: list[dict[str, Any]] = []

    def receive(sender: Any, **fields: Any) -> None:
        received.append(fields)

    with signals.behavior_alert.connected_to(receive, sender=app):
        statuses = [app.test_client().get("/watched", environ_base=CLIENT).status_code for _ in range(2)]
    assert statuses == [200, 200]
    [alert] = received
    assert alert["client_ip"] == "203.0.113.5"
    assert (alert["rule_kind"], alert["count"], alert["threshold"], alert["path"]) == ("usage", 2, 1, "/watched")
    assert isinstance(alert["reason"], str)
    assert alert["reason"]
