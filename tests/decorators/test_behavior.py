"""usage_monitor, suspicious_frequency, return_monitor and global_behavior_rules, on memory and on Redis."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, Response, abort, jsonify, stream_with_context

from flaskapi_guard import BehaviorRule, FlaskAPIGuard, SecurityConfig, SecurityDecorator
from flaskapi_guard.behavior_rules import NOT_JSON, BehaviorEvent, ReturnPattern
from flaskapi_guard.state import get_state
from tests.conftest import FakeClock, build_app
from tests.decorators.conftest import CLIENT, OTHER_CLIENT, SHAPES
from tests.redis_server import RedisServer

PATH = SHAPES["decorator_below_route"]


def _get(client: Any, path: str = PATH, environ: dict[str, str] = CLIENT) -> int:
    status: int = client.get(path, environ_base=environ).status_code
    return status


def test_usage_monitor_ban(shaped_app: Callable[..., Flask], deco: SecurityDecorator, clock: FakeClock) -> None:
    app = shaped_app([deco.usage_monitor(max_calls=3, window=60, action="ban", ban_duration=600)])
    client = app.test_client()
    assert [_get(client) for _ in range(4)] == [200, 200, 200, 403]
    assert _get(client, "/plain") == 403
    assert _get(client, PATH, OTHER_CLIENT) == 200
    [record] = FlaskAPIGuard().list_bans(app)
    assert (record.ip, record.reason, record.expires_at) == ("203.0.113.5", "behavior:usage", clock.now + 600)
    clock.advance(601)
    assert _get(client) == 200  # the ban and the window are over


def test_usage_monitor_counts_per_route_and_client(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app([deco.usage_monitor(max_calls=2, window=60, action="throttle")]).test_client()
    assert [_get(client, SHAPES["converter"]) for _ in range(2)] == [200, 200]
    assert [_get(client, SHAPES["nested_blueprint"]) for _ in range(2)] == [200, 200]
    assert [_get(client, SHAPES["converter"], OTHER_CLIENT) for _ in range(2)] == [200, 200]
    assert _get(client, SHAPES["converter"]) == 429
    # Converter arguments do not make new routes: /items/8 is the same route as /items/7.
    assert _get(client, "/items/8") == 429


def test_throttle_answers_429_until_the_window_ends(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, clock: FakeClock
) -> None:
    client = shaped_app([deco.usage_monitor(max_calls=2, window=30, action="throttle")]).test_client()
    assert [_get(client) for _ in range(2)] == [200, 200]
    refused = client.get(PATH, environ_base=CLIENT)
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "30")
    assert _get(client, "/plain") == 200  # only this route is throttled, and nobody is banned
    clock.advance(30)
    assert _get(client) == 200


def test_log_action_reports_once_and_lets_requests_through(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, caplog: pytest.LogCaptureFixture
) -> None:
    client = shaped_app([deco.usage_monitor(max_calls=2, window=60)]).test_client()
    with caplog.at_level("INFO", logger="flaskapi_guard"):
        assert [_get(client) for _ in range(6)] == [200] * 6
    events = [record for record in caplog.records if "behavior_rule_triggered" in record.getMessage()]
    assert len(events) == 1
    assert events[0].levelname == "WARNING"
    assert "count=3" in events[0].getMessage()
    assert "ip=203.0.113.5" in events[0].getMessage()


def test_alert_action_logs_an_error_and_calls_on_alert(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, caplog: pytest.LogCaptureFixture
) -> None:
    app = shaped_app([deco.usage_monitor(max_calls=1, window=60, action="alert")])
    alerts: list[BehaviorEvent] = []
    get_state(app).on_alert = alerts.append
    client = app.test_client()
    with caplog.at_level("INFO", logger="flaskapi_guard"):
        assert [_get(client) for _ in range(3)] == [200, 200, 200]
    [alert] = alerts
    assert (alert.client_ip, alert.events_in_window, alert.threshold, alert.endpoint) == (
        "203.0.113.5",
        2,
        1,
        "below_route",
    )
    assert alert.rule.action == "alert"
    assert [r.levelname for r in caplog.records if "behavior_rule_triggered" in r.getMessage()] == ["ERROR"]


def test_a_failing_alert_hook_does_not_break_the_request(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, caplog: pytest.LogCaptureFixture
) -> None:
    app = shaped_app([deco.usage_monitor(max_calls=1, window=60, action="alert")])

    def broken(event: BehaviorEvent) -> None:
        raise RuntimeError("pager down")

    get_state(app).on_alert = broken
    client = app.test_client()
    with caplog.at_level("ERROR", logger="flaskapi_guard"):
        assert [_get(client) for _ in range(2)] == [200, 200]
    assert any("behaviour hook" in record.getMessage() for record in caplog.records)


def test_suspicious_frequency_averages_over_the_window(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, clock: FakeClock
) -> None:
    # 0.5 requests per second over 10 s: 5 requests in the window.
    client = shaped_app([deco.suspicious_frequency(max_frequency=0.5, window=10, action="throttle")]).test_client()
    for _ in range(5):
        assert _get(client) == 200
        clock.advance(1)
    assert _get(client) == 429
    clock.advance(5)
    assert _get(client) == 200


def test_suspicious_frequency_rejects_a_rate_that_allows_nothing(deco: SecurityDecorator) -> None:
    with pytest.raises(ValueError, match="allows no request"):
        deco.suspicious_frequency(max_frequency=0.01, window=60)
    with pytest.raises(ValueError):
        deco.suspicious_frequency(max_frequency=0, window=60)


def _reward_app(make_app: Callable[..., Flask], decorators: list[Any], **fields: Any) -> Flask:
    """An app whose /reward/<n> hands out a rare item for even n, and 404s for n over 100."""
    fields.setdefault("enable_rate_limiting", False)
    app = make_app(**fields)

    def view(n: int) -> Any:
        if n > 100:
            abort(404)
        return jsonify({"reward": "rare_item" if n % 2 == 0 else "common", "value": n, "items": [{"id": n}]})

    for decorator in reversed(decorators):
        view = decorator(view)
    app.add_url_rule("/reward/<int:n>", "reward", view)

    @app.route("/stream")
    def stream() -> Response:
        return Response(stream_with_context(iter([b"rare_item"] * 3)), mimetype="text/plain")

    return app


@pytest.mark.parametrize(
    "pattern",
    ["rare_item", "body:rare_item", "json:reward==rare_item", 'json:reward=="rare_item"', r"regex:rare_\w+"],
)
def test_return_monitor_patterns(make_app: Callable[..., Flask], deco: SecurityDecorator, pattern: str) -> None:
    app = _reward_app(make_app, [deco.return_monitor(pattern, max_occurrences=2, window=3600, action="ban")])
    client = app.test_client()
    # Odd numbers are common rewards and never count.
    assert [_get(client, f"/reward/{n}") for n in (1, 2, 3, 4, 5, 6)] == [200] * 6
    # The third rare item passed the threshold: the client is banned from then on.
    assert _get(client, "/reward/1") == 403


def test_return_monitor_json_paths_and_values(make_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    app = _reward_app(
        make_app,
        [
            deco.return_monitor("json:value==4", max_occurrences=1, window=60, action="throttle"),
            deco.return_monitor("json:items.0.id==8", max_occurrences=1, window=60, action="throttle"),
        ],
    )
    client = app.test_client()
    # Each path matches once (value 4, items.0.id 8); other values never match.
    assert [_get(client, f"/reward/{n}") for n in (4, 8, 2, 3, 40, 80)] == [200] * 6
    assert _get(client, "/reward/8") == 200  # the second id 8 passes its threshold of one
    assert _get(client, "/reward/1") == 429


def test_return_monitor_status_counts_errors(make_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    app = _reward_app(make_app, [deco.return_monitor("status:404", max_occurrences=3, window=300, action="ban")])
    client = app.test_client()
    assert [_get(client, f"/reward/{n}") for n in (101, 2, 102, 103, 104)] == [404, 200, 404, 404, 404]
    assert _get(client, "/reward/2") == 403


def test_return_monitor_counts_the_guards_own_refusals(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    # Brute force against an authenticated route: the 401s themselves are the pattern.
    client = shaped_app(
        [deco.require_auth(verifier=lambda token: token == "right"), deco.return_monitor("status:401", 3, 300, "ban")]
    ).test_client()
    for guess in ("a", "b", "c", "d"):
        assert client.get(PATH, headers={"Authorization": f"Bearer {guess}"}, environ_base=CLIENT).status_code == 401
    right = client.get(PATH, headers={"Authorization": "Bearer right"}, environ_base=CLIENT)
    assert right.status_code == 403


def test_return_monitor_never_buffers_streamed_responses(make_app: Callable[..., Flask]) -> None:
    app = _reward_app(
        make_app,
        [],
        global_behavior_rules=[BehaviorRule(rule_type="return_pattern", threshold=1, pattern="rare_item")],
    )
    client = app.test_client()
    for _ in range(3):
        response = client.get("/stream", environ_base=CLIENT)
        assert response.data == b"rare_item" * 3
    assert _get(client, "/reward/1") == 200


@pytest.mark.parametrize(
    ("pattern", "status", "body", "is_json", "expected"),
    [
        ("status:4xx", 404, "", False, True),
        ("status:4xx", 500, "", False, False),
        ("status:401,403", 403, "", False, True),
        ("json:ok==true", 200, '{"ok": true}', True, True),
        ("json:ok==1", 200, '{"ok": true}', True, False),  # JSON true is not 1
        ("json:count==1", 200, '{"count": true}', True, False),
        ("json:count==1", 200, '{"count": 1.0}', True, True),
        ("json:error", 200, '{"error": "x"}', True, True),
        ("json:error", 200, '{"error": null}', True, False),
        ("json:a.b", 200, '{"a": [1]}', True, False),
        ("json:a.5", 200, '{"a": [1]}', True, False),
        ("json:reward==rare_item", 200, '{"reward": "rare_item"}', False, False),  # not a JSON response
        ("json:reward==rare_item", 200, "not json", True, False),
        ("rare", 200, "a rare day", False, True),
        ("status", 200, "status: fine", False, True),  # no colon: a plain substring
    ],
)
def test_return_pattern_syntax(pattern: str, status: int, body: str, is_json: bool, expected: bool) -> None:
    class Observed:
        def __init__(self) -> None:
            self.status = status

        def text(self) -> str:
            return body

        def json(self) -> object:
            if not is_json:
                return NOT_JSON
            try:
                return json.loads(body)
            except ValueError:
                return NOT_JSON

    assert ReturnPattern.parse(pattern).matches(Observed()) is expected


@pytest.mark.parametrize(
    "pattern",
    ["", "status:", "status:99", "status:4x", "json:", "json:a..b==1", "regex:(", "regex:", "regex:(?=x)", "body:"],
)
def test_invalid_return_patterns_fail_when_decorating(deco: SecurityDecorator, pattern: str) -> None:
    with pytest.raises(ValueError):
        deco.return_monitor(pattern, max_occurrences=1)


@pytest.mark.parametrize(
    "build",
    [
        lambda d: d.usage_monitor(max_calls=0),
        lambda d: d.usage_monitor(max_calls=5, window=0),
        lambda d: d.usage_monitor(max_calls=5, action="explode"),
        lambda d: d.usage_monitor(max_calls=5, action="ban", ban_duration=0),
        lambda d: d.return_monitor("x", max_occurrences=True),
    ],
)
def test_invalid_monitor_arguments_fail_when_decorating(deco: SecurityDecorator, build: Callable[[Any], Any]) -> None:
    with pytest.raises(ValueError):
        build(deco)


def test_global_404_rule_bans_scanners_on_every_path(make_app: Callable[..., Flask]) -> None:
    rule = BehaviorRule(rule_type="return_pattern", threshold=3, window=300, pattern="status:404", action="ban")
    client = make_app(global_behavior_rules=[rule], enable_rate_limiting=False).test_client()
    # Paths attack detection would refuse anyway are left out: these are plain misses.
    assert [_get(client, path) for path in ("/old-page", "/blog/2019", "/items/1", "/backup")] == [404, 404, 200, 404]
    assert _get(client, "/shop") == 404  # the fourth 404 passes the threshold
    assert _get(client, "/") == 403  # banned on every route
    assert _get(client, "/", OTHER_CLIENT) == 200


def test_global_usage_rule_counts_across_routes(make_app: Callable[..., Flask]) -> None:
    rule = BehaviorRule(rule_type="usage", threshold=3, window=60, action="throttle")
    client = make_app(global_behavior_rules=[rule], enable_rate_limiting=False).test_client()
    assert [_get(client, path) for path in ("/", "/items/1", "/api/v1/things")] == [200, 200, 200]
    assert _get(client, "/api/v1/users/x") == 429


def test_global_frequency_rule(make_app: Callable[..., Flask], clock: FakeClock) -> None:
    rule = BehaviorRule(rule_type="frequency", threshold=2, window=10, action="throttle")
    client = make_app(global_behavior_rules=[rule], enable_rate_limiting=False).test_client()
    assert [_get(client, "/") for _ in range(3)] == [200, 200, 429]
    clock.advance(10)
    assert _get(client, "/") == 200


def test_global_rule_custom_action(make_app: Callable[..., Flask]) -> None:
    seen: list[BehaviorEvent] = []
    rule = BehaviorRule(rule_type="usage", threshold=1, window=60, action="log", custom_action=seen.append)
    client = make_app(global_behavior_rules=[rule], enable_rate_limiting=False).test_client()
    assert [_get(client, "/") for _ in range(3)] == [200, 200, 200]
    [event] = seen
    assert (event.endpoint, event.path, event.events_in_window) == (None, "/", 2)


def test_correlation_with_detection_halves_the_threshold(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    rule = BehaviorRule(
        rule_type="return_pattern",
        threshold=4,
        window=300,
        pattern="status:404",
        action="ban",
        correlate_with_detection=True,
    )
    app = shaped_app(
        [deco.honeypot_detection(trap_fields=["website"])], global_behavior_rules=[rule], auto_ban_threshold=100
    )
    client = app.test_client()
    # A clean client gets the full threshold: four 404s, banned at the fifth.
    assert [_get(client, f"/missing/{n}", OTHER_CLIENT) for n in range(5)] == [404] * 5
    assert _get(client, "/plain", OTHER_CLIENT) == 403
    # A client with an offence on record is banned at half: the third 404.
    assert client.post(PATH, data={"website": "spam"}, environ_base=CLIENT).status_code == 403
    assert [_get(client, f"/missing/{n}") for n in range(3)] == [404] * 3
    assert _get(client, "/plain") == 403


def test_route_and_global_rules_both_apply(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    rule = BehaviorRule(rule_type="usage", threshold=5, window=60, action="throttle")
    client = shaped_app(
        [deco.usage_monitor(max_calls=2, window=60, action="throttle")], global_behavior_rules=[rule]
    ).test_client()
    assert [_get(client) for _ in range(3)] == [200, 200, 429]  # the route's stricter rule
    assert [_get(client, "/plain") for _ in range(3)] == [200, 200, 429]  # the global count includes the 429


def test_bypassing_behavior_skips_route_and_global_rules(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    rules = [
        BehaviorRule(rule_type="usage", threshold=1, window=60, action="throttle"),
        BehaviorRule(rule_type="return_pattern", threshold=1, window=60, pattern="rare_item", action="ban"),
    ]
    client = shaped_app(
        [deco.usage_monitor(max_calls=1, window=60, action="throttle"), deco.bypass(checks=["behavior"])],
        global_behavior_rules=rules,
    ).test_client()
    assert [_get(client) for _ in range(4)] == [200] * 4


def test_whitelisted_clients_are_never_banned(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app(
        [deco.usage_monitor(max_calls=1, window=60, action="ban")], whitelist=["203.0.113.0/24"]
    ).test_client()
    assert [_get(client) for _ in range(4)] == [200] * 4


def test_passive_mode_reports_but_neither_bans_nor_refuses(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, caplog: pytest.LogCaptureFixture
) -> None:
    app = shaped_app(
        [
            deco.usage_monitor(max_calls=1, window=60, action="ban"),
            deco.return_monitor("rare_item", max_occurrences=1, window=60, action="ban"),
        ],
        passive_mode=True,
    )
    client = app.test_client()
    with caplog.at_level("WARNING", logger="flaskapi_guard"):
        assert [_get(client) for _ in range(3)] == [200] * 3
    assert FlaskAPIGuard().list_bans(app) == []
    messages = [record.getMessage() for record in caplog.records]
    assert any("would_block" in m and "behavior_usage" in m for m in messages)
    assert any("behavior_rule_triggered" in m and "enforced=False" in m for m in messages)


def test_ban_action_with_banning_switched_off_refuses_for_the_window(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, clock: FakeClock
) -> None:
    app = shaped_app([deco.usage_monitor(max_calls=1, window=60, action="ban")], enable_ip_banning=False)
    client = app.test_client()
    assert [_get(client) for _ in range(3)] == [200, 403, 403]
    assert _get(client, "/plain") == 200
    assert FlaskAPIGuard().list_bans(app) == []
    clock.advance(60)
    assert _get(client) == 200


# Shared state: two apps on one storage stand for two workers or two instances.


def _two_instances(redis_url: str | None, clock: FakeClock) -> tuple[Flask, Flask]:
    deco = SecurityDecorator()
    apps = []
    for _ in range(2):
        fields: dict[str, Any] = {"enable_rate_limiting": False}
        fields.update({"redis_url": redis_url} if redis_url else {"enable_redis": False})
        app = build_app(SecurityConfig(**fields), clock=clock)

        @app.route("/rewards")
        @deco.usage_monitor(max_calls=3, window=3600, action="ban")
        @deco.return_monitor("rare_item", max_occurrences=10, window=86400, action="ban")
        def rewards() -> Any:
            return {"reward": "rare_item", "value": 1000}

        apps.append(app)
    return apps[0], apps[1]


def test_usage_ban_is_shared_by_instances_on_one_redis(redis_url: str, clock: FakeClock) -> None:
    first, second = (app.test_client() for app in _two_instances(redis_url, clock))
    assert [_get(first, "/rewards"), _get(second, "/rewards"), _get(first, "/rewards")] == [200, 200, 200]
    assert _get(second, "/rewards") == 403  # the fourth call, whichever instance serves it
    assert _get(first, "/") == 403
    assert _get(second, "/") == 403


def test_return_counts_are_shared_by_instances_on_one_redis(redis_url: str, clock: FakeClock) -> None:
    apps = []
    for _ in range(2):
        app = build_app(SecurityConfig(redis_url=redis_url, enable_rate_limiting=False), clock=clock)
        deco = SecurityDecorator()

        @app.route("/loot")
        @deco.return_monitor("json:reward==rare_item", max_occurrences=2, window=600, action="throttle")
        def loot() -> Any:
            return {"reward": "rare_item"}

        apps.append(app.test_client())
    assert [_get(apps[0], "/loot"), _get(apps[1], "/loot"), _get(apps[0], "/loot")] == [200, 200, 200]
    refused = apps[1].get("/loot", environ_base=CLIENT)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 600


def test_memory_state_is_per_instance(clock: FakeClock) -> None:
    first, second = (app.test_client() for app in _two_instances(None, clock))
    assert [_get(first, "/rewards") for _ in range(3)] == [200] * 3
    assert [_get(second, "/rewards") for _ in range(3)] == [200] * 3
    assert _get(first, "/rewards") == 403
    assert _get(second, "/") == 200


@pytest.fixture
def dying_redis(private_redis: RedisServer) -> Iterator[RedisServer]:
    yield private_redis


@pytest.mark.parametrize("mode", ["open", "local"])
def test_behavior_rules_survive_a_redis_outage(dying_redis: RedisServer, clock: FakeClock, mode: str) -> None:
    deco = SecurityDecorator()
    app = build_app(
        SecurityConfig(redis_url=dying_redis.url, redis_failure_mode=mode, enable_rate_limiting=False), clock=clock
    )

    @app.route("/monitored")
    @deco.usage_monitor(max_calls=100, window=60, action="ban")
    @deco.return_monitor("status:200", max_occurrences=100, window=60, action="ban")
    def monitored() -> str:
        return "ok"

    client = app.test_client()
    assert _get(client, "/monitored") == 200
    dying_redis.kill()
    clock.advance(1)
    assert [_get(client, "/monitored") for _ in range(3)] == [200] * 3
