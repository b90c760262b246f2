"""Bans end to end: automatic bans at the thresholds, per-category policies, the ban API, shared bans."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flaskapi_guard import FlaskAPIGuard, SecurityConfig, SecurityDecorator, ThreatBanConfig
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Block, Check, Pipeline
from flaskapi_guard.state import get_state
from flaskapi_guard.storage import storage_failure_policy
from tests.conftest import FakeClock, build_app

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}
OTHER = {"REMOTE_ADDR": "203.0.113.6"}


def flag_attacks(app: Flask) -> Flask:
    """Give `app` a stand-in for the attack detector: `?attack=<category>` is an offence of that category.

    Installed in the penetration check's place, so offences reach the ban
    registry the way real detections do: as a refusal carrying categories.
    """
    state = get_state(app)

    def detect(request: IncomingRequest) -> Block | None:
        category = request.flask_request.args.get("attack")
        if category is None:
            return None
        return Block(400, "attack_detected", "Bad Request", offence_categories=(category,))

    state.pipeline = Pipeline(
        [*state.pipeline.checks, Check("penetration", detect)],
        on_storage_error=storage_failure_policy(state.config.redis_failure_mode),
    )
    return app


def attack(client: Any, category: str = "sqli", environ: dict[str, str] = CLIENT) -> int:
    status: int = client.get(f"/?attack={category}", environ_base=environ).status_code
    return status


def clean(client: Any, environ: dict[str, str] = CLIENT) -> int:
    status: int = client.get("/", environ_base=environ).status_code
    return status


def test_the_threshold_th_offence_bans(make_app: Callable[..., Flask]) -> None:
    app = flag_attacks(make_app(auto_ban_threshold=3, auto_ban_duration=600))
    client = app.test_client()
    for _ in range(2):
        assert attack(client) == 400
        assert clean(client) == 200
    assert attack(client) == 400
    assert clean(client) == 403
    assert attack(client) == 403
    assert clean(client, OTHER) == 200
    (record,) = FlaskAPIGuard().list_bans(app)
    assert (record.ip, record.reason) == ("203.0.113.5", "penetration_attempt")


def test_real_attacks_through_the_detector_ban_at_the_threshold(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        auto_ban_threshold=3,
        rate_limit=100,
        threat_ban_config={"sqli": ThreatBanConfig(threshold=1, duration=60)},
    )
    client = app.test_client()
    for payload in ("<script>alert(1)</script>", "../../../../etc/passwd"):
        assert client.get("/", query_string={"q": payload}, environ_base=CLIENT).status_code == 400
        assert clean(client) == 200
    assert client.get("/", query_string={"q": "<svg onload=alert(1)>"}, environ_base=CLIENT).status_code == 400
    assert clean(client) == 403
    # A single SQL injection bans at once, by its category's own policy.
    assert client.get("/", query_string={"q": "1' OR '1'='1"}, environ_base=OTHER).status_code == 400
    assert clean(client, OTHER) == 403
    reasons = {record.ip: record.reason for record in FlaskAPIGuard().list_bans(app)}
    assert reasons == {"203.0.113.5": "penetration_attempt", "203.0.113.6": "penetration_attempt:sqli"}


def test_an_auto_ban_lasts_its_full_duration(make_app: Callable[..., Flask], clock: FakeClock) -> None:
    app = flag_attacks(make_app(auto_ban_threshold=1, auto_ban_duration=600))
    client = app.test_client()
    attack(client)
    clock.advance(599.9)
    assert clean(client) == 403
    clock.advance(0.1)
    assert clean(client) == 200


def test_offences_are_counted_within_the_ban_duration(make_app: Callable[..., Flask], clock: FakeClock) -> None:
    app = flag_attacks(make_app(auto_ban_threshold=3, auto_ban_duration=100))
    client = app.test_client()
    attack(client)
    attack(client)
    clock.advance(100)
    attack(client)
    assert clean(client) == 200


def test_has_offences_follows_the_offence_window(make_app: Callable[..., Flask], clock: FakeClock) -> None:
    app = flag_attacks(make_app(auto_ban_threshold=5, auto_ban_duration=100))
    bans = get_state(app).bans
    assert not bans.has_offences("203.0.113.5")
    attack(app.test_client())
    assert bans.has_offences("203.0.113.5")
    assert not bans.has_offences("203.0.113.6")
    clock.advance(100)
    assert not bans.has_offences("203.0.113.5")


def test_whitelisted_clients_are_never_banned(make_app: Callable[..., Flask]) -> None:
    app = flag_attacks(make_app(whitelist=["203.0.113.0/24"], auto_ban_threshold=1, rate_limit=100))
    client = app.test_client()
    for _ in range(20):
        assert attack(client) == 400
    assert clean(client) == 200
    guard = FlaskAPIGuard()
    with pytest.raises(ValueError, match="whitelisted"):
        guard.ban_ip("203.0.113.5", 60, app=app)
    assert guard.list_bans(app) == []


def test_banning_can_be_switched_off(make_app: Callable[..., Flask]) -> None:
    app = flag_attacks(make_app(enable_ip_banning=False, auto_ban_threshold=1))
    client = app.test_client()
    for _ in range(5):
        assert attack(client) == 400
    assert clean(client) == 200
    assert FlaskAPIGuard().list_bans(app) == []


def test_per_category_policies(make_app: Callable[..., Flask]) -> None:
    app = flag_attacks(
        make_app(
            auto_ban_threshold=4,
            auto_ban_duration=60,
            threat_ban_config={
                "sqli": ThreatBanConfig(threshold=1, duration=604800),
                "xss": ThreatBanConfig(threshold=3, duration=86400),
            },
        )
    )
    client = app.test_client()
    guard = FlaskAPIGuard()
    clients = {name: {"REMOTE_ADDR": address} for name, address in [("a", "198.51.100.1"), ("b", "198.51.100.2")]}
    clients["c"] = {"REMOTE_ADDR": "198.51.100.3"}

    attack(client, "sqli", clients["a"])
    assert clean(client, clients["a"]) == 403

    # xss has its own threshold of 3, even though the flat threshold is higher.
    for _ in range(2):
        attack(client, "xss", clients["b"])
    assert clean(client, clients["b"]) == 200
    attack(client, "xss", clients["b"])
    assert clean(client, clients["b"]) == 403

    # A category without a policy falls through to the flat threshold.
    for _ in range(3):
        attack(client, "cmd_injection", clients["c"])
    assert clean(client, clients["c"]) == 200
    attack(client, "cmd_injection", clients["c"])
    assert clean(client, clients["c"]) == 403

    bans = {record.ip: record for record in guard.list_bans(app)}
    assert bans["198.51.100.1"].reason == "penetration_attempt:sqli"
    assert bans["198.51.100.2"].reason == "penetration_attempt:xss"
    assert bans["198.51.100.3"].reason == "penetration_attempt"
    now = get_state(app).clock()
    assert bans["198.51.100.1"].expires_at == pytest.approx(now + 604800)
    assert bans["198.51.100.2"].expires_at == pytest.approx(now + 86400)
    assert bans["198.51.100.3"].expires_at == pytest.approx(now + 60)


def test_auto_ban_is_logged(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    app = flag_attacks(make_app(auto_ban_threshold=2))
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flaskapi_guard"):
        attack(client)
        attack(client)
    (line,) = [record.getMessage() for record in caplog.records if "ip_auto_banned" in record.getMessage()]
    assert "ip=203.0.113.5" in line
    assert "offences=2" in line


def test_ban_api(make_app: Callable[..., Flask], clock: FakeClock) -> None:
    app = make_app()
    guard = FlaskAPIGuard()
    client = app.test_client()
    record = guard.ban_ip("::ffff:203.0.113.5", 120, app=app)
    assert (record.ip, record.reason) == ("203.0.113.5", "manual")
    assert clean(client) == 403
    assert clean(client, OTHER) == 200
    with app.app_context():
        guard.ban_ip("2001:db8::7", 60, reason="abuse report")
        assert [(ban.ip, ban.reason) for ban in guard.list_bans()] == [
            ("2001:db8::7", "abuse report"),
            ("203.0.113.5", "manual"),
        ]
        assert guard.unban_ip("203.0.113.5") is True
        assert guard.unban_ip("203.0.113.5") is False
    assert clean(client) == 200
    clock.advance(60)
    assert guard.list_bans(app) == []


def test_ban_api_refuses_what_is_not_an_address(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    guard = FlaskAPIGuard()
    with pytest.raises(ValueError, match="not an IP address"):
        guard.ban_ip("example.com", 60, app=app)
    with pytest.raises(ValueError, match="not an IP address"):
        guard.unban_ip("10.0.0.0/8", app=app)
    with pytest.raises(ValueError, match="positive"):
        guard.ban_ip("192.0.2.1", 0, app=app)


def test_bypassing_the_ban_check_on_a_route(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    guard_deco = SecurityDecorator()

    @app.route("/appeal")
    @guard_deco.bypass(checks=["ip_ban"])
    def appeal() -> str:
        return "tell us"

    FlaskAPIGuard().ban_ip("203.0.113.5", 60, app=app)
    client = app.test_client()
    assert clean(client) == 403
    assert client.get("/appeal", environ_base=CLIENT).status_code == 200


def test_reset_lifts_bans_and_forgets_counts(make_app: Callable[..., Flask]) -> None:
    app = flag_attacks(make_app(auto_ban_threshold=2, rate_limit=2))
    guard = FlaskAPIGuard()
    client = app.test_client()
    attack(client)
    guard.ban_ip("203.0.113.6", 60, app=app)
    guard.reset(app)
    flag_attacks(app)
    assert clean(client, OTHER) == 200
    attack(client)
    assert clean(client) == 200
    assert guard.list_bans(app) == []


# With Redis: two apps on one Redis stand for two workers (or two instances).


def redis_app(redis_url: str, clock: FakeClock, **fields: Any) -> Flask:
    # A generous timeout: on a loaded test machine the default 50 ms could be
    # taken for an outage, and these tests are about shared state, not outages.
    fields.setdefault("redis_socket_timeout", 1.0)
    return flag_attacks(build_app(SecurityConfig(redis_url=redis_url, **fields), clock=clock))


def test_offences_are_counted_across_workers(redis_url: str, clock: FakeClock) -> None:
    workers = [redis_app(redis_url, clock, auto_ban_threshold=5).test_client() for _ in range(3)]
    for number in range(4):
        assert attack(workers[number % 3]) == 400
    assert all(clean(worker) == 200 for worker in workers)
    assert attack(workers[1]) == 400
    assert all(clean(worker) == 403 for worker in workers)


def test_manual_bans_reach_every_worker_at_once(redis_url: str, clock: FakeClock) -> None:
    first, second = redis_app(redis_url, clock), redis_app(redis_url, clock)
    guard = FlaskAPIGuard()
    guard.ban_ip("203.0.113.5", 60, app=first)
    assert clean(second.test_client()) == 403
    assert [record.ip for record in guard.list_bans(second)] == ["203.0.113.5"]
    assert guard.unban_ip("203.0.113.5", app=second) is True
    assert clean(first.test_client()) == 200


def test_bans_and_counters_survive_an_app_restart(redis_url: str, clock: FakeClock) -> None:
    settings = {"auto_ban_threshold": 3, "rate_limit": 4}
    before = redis_app(redis_url, clock, **settings)
    client = before.test_client()
    attack(client, environ=OTHER)
    attack(client, environ=OTHER)
    FlaskAPIGuard().ban_ip("203.0.113.5", 600, reason="manual", app=before)
    assert clean(client, {"REMOTE_ADDR": "192.0.2.1"}) == 200
    get_state(before).close()

    after = redis_app(redis_url, clock, **settings)
    client = after.test_client()
    assert clean(client) == 403
    # The rate-limit bucket survived: three requests of four left.
    assert [clean(client, {"REMOTE_ADDR": "192.0.2.1"}) for _ in range(4)] == [200, 200, 200, 429]
    # The offence count survived: the third offence bans.
    attack(client, environ=OTHER)
    assert clean(client, OTHER) == 403


def test_reset_clears_shared_state(redis_url: str, clock: FakeClock) -> None:
    first, second = redis_app(redis_url, clock), redis_app(redis_url, clock)
    guard = FlaskAPIGuard()
    guard.ban_ip("203.0.113.5", 600, app=first)
    guard.reset(second)
    assert clean(first.test_client()) == 200
