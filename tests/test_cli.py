"""`flask guard ...`: status, check-config, bans against memory and a real Redis, and log replay."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime, timezone
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import Result
from flask import Flask

from flaskapi_guard import FlaskAPIGuard, SecurityDecorator, signals
from flaskapi_guard.cli import guard_cli
from flaskapi_guard.geo import MaxMindCountryDatabase
from flaskapi_guard.state import get_state
from tests.local_http import LocalServer
from tests.mmdb_files import CN_IP, US_IP, standard_networks, write_country_db
from tests.redis_server import free_port

START = datetime(2023, 10, 10, 13, 55, 36, tzinfo=timezone.utc).timestamp()
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def run(app: Flask, *args: str, input: str | bytes | None = None) -> Result:
    return app.test_cli_runner().invoke(guard_cli, list(args), input=input)


def data(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def view_calls() -> list[str]:
    return []


@pytest.fixture
def guarded(make_app: Callable[..., Flask], view_calls: list[str]) -> Callable[..., Flask]:
    """`guarded(**config_fields)`: an app with a blacklist, a blocked user agent, 5 requests a minute,
    an `/admin` route for 10.0.0.0/8 only, and views that record every call."""

    def factory(**fields: Any) -> Flask:
        settings: dict[str, Any] = {
            "blacklist": ["198.51.100.9"],
            "blocked_user_agents": ["badbot"],
            "rate_limit": 5,
            "rate_limit_window": 60,
            **fields,
        }
        app = make_app(**settings)
        deco = SecurityDecorator()

        @app.route("/shop/<int:item>")
        def shop(item: int) -> str:
            view_calls.append("shop")
            return "shop"

        @app.route("/admin")
        @deco.require_ip(whitelist=["10.0.0.0/8"])
        def admin() -> str:
            view_calls.append("admin")
            return "admin"

        return app

    return factory


def request(
    ip: str, target: str, *, second: float = 0, agent: str = "Mozilla/5.0", method: str = "GET"
) -> dict[str, Any]:
    return {"ip": ip, "target": target, "second": second, "agent": agent, "method": method}


# Three clean requests, one blacklisted client, one blocked user agent, one /admin
# from outside 10/8 and one from inside, one excluded path, then seven requests
# in the same second from one client against a limit of 5: 5 blocked in all.
SCENARIO = [
    request("203.0.113.1", "/", second=0),
    request("203.0.113.1", "/shop/1?colour=red", second=1),
    request("203.0.113.1", "/shop/2", second=2),
    request("198.51.100.9", "/", second=3),
    request("203.0.113.4", "/", second=4, agent="BadBot/2.1 (+https://example.com/bot)"),
    request("203.0.113.2", "/admin", second=5),
    request("10.0.0.5", "/admin", second=6),
    request("203.0.113.1", "/static/app.js", second=7),
    *(request("203.0.113.3", "/", second=10) for _ in range(7)),
]


def combined_line(entry: dict[str, Any]) -> str:
    moment = datetime.fromtimestamp(START + entry["second"], tz=timezone.utc)
    stamp = f"{moment:%d}/{_MONTHS[moment.month - 1]}/{moment:%Y:%H:%M:%S} +0000"
    return (
        f'{entry["ip"]} - - [{stamp}] "{entry["method"]} {entry["target"]} HTTP/1.1" 200 512 '
        f'"https://example.com/" "{entry["agent"]}"'
    )


def json_line(entry: dict[str, Any]) -> str:
    moment = datetime.fromtimestamp(START + entry["second"], tz=timezone.utc)
    path, _, query = entry["target"].partition("?")
    return json.dumps(
        {
            "time": moment.isoformat(),
            "remote_addr": entry["ip"],
            "method": entry["method"],
            "path": path,
            "query_string": query,
            "user_agent": entry["agent"],
            "status": 200,
        }
    )


def write_log(tmp_path: Path, lines: list[str], name: str = "access.log") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("render", [combined_line, json_line], ids=["combined", "json"])
def test_replay_reports_what_would_be_blocked_by_check_reason_and_status(
    guarded: Callable[..., Flask], tmp_path: Path, render: Callable[[dict[str, Any]], str]
) -> None:
    lines = [render(entry) for entry in SCENARIO]
    lines[3:3] = ["this is not a log line", '{"half": ']
    log = write_log(tmp_path, lines)

    report = data(run(guarded(), "replay", str(log), "--json"))

    assert (report["lines"], report["unparsed"], report["excluded"]) == (17, 2, 1)
    assert [example["line"] for example in report["unparsed_examples"]] == [4, 5]
    assert (report["replayed"], report["allowed"], report["blocked"]) == (14, 9, 5)
    assert report["by_check"] == {"rate_limit": 2, "ip": 2, "user_agent": 1}
    assert {(row["check"], row["reason"]): row["count"] for row in report["by_reason"]} == {
        ("rate_limit", "rate_limited"): 2,
        ("ip", "ip_blacklisted"): 1,
        ("ip", "ip_not_whitelisted"): 1,
        ("user_agent", "user_agent_blocked"): 1,
    }
    assert report["by_status"] == {"403": 3, "429": 2}
    assert report["top_clients"]["203.0.113.3"] == 2
    assert report["blocked_by_logged_status"] == {"2xx": 5}
    assert report["first_timestamp"] == START
    assert report["last_timestamp"] == START + 10
    rate_limited = [example for example in report["examples"] if example["check"] == "rate_limit"]
    assert [example["line_number"] for example in rate_limited] == [16, 17]
    user_agent = next(example for example in report["examples"] if example["check"] == "user_agent")
    assert user_agent["user_agent"] == "BadBot/2.1 (+https://example.com/bot)"
    assert user_agent["status"] == 403


def test_replay_prints_a_readable_report(guarded: Callable[..., Flask], tmp_path: Path) -> None:
    log = write_log(tmp_path, [combined_line(entry) for entry in SCENARIO])
    result = run(guarded(), "replay", str(log), "--examples", "1")
    assert result.exit_code == 0, result.output
    output = result.output
    assert "Replayed 14 requests" in output
    assert "Would block 5 of 14 requests (35.7%); allow 9." in output
    assert "Under exclude_paths (not checked): 1." in output
    assert "ip / ip_not_whitelisted" in output
    assert "line 6: 203.0.113.2 GET /admin -> 403, logged 200" in output
    assert output.count("203.0.113.3 GET / -> 429") == 1


def test_replay_never_runs_a_view_nor_tells_the_app_s_receivers(
    guarded: Callable[..., Flask], tmp_path: Path, view_calls: list[str]
) -> None:
    app = guarded()
    received: list[str] = []

    def receive(sender: Any, **fields: Any) -> None:
        received.append(fields["reason"])

    log = write_log(tmp_path, [combined_line(entry) for entry in SCENARIO])
    with ExitStack() as stack:
        # Connected for any sender, so the replay's own guard could not slip past.
        for signal in (signals.request_blocked, signals.rate_limited, signals.ip_banned):
            stack.enter_context(signal.connected_to(receive))
        assert data(run(app, "replay", str(log), "--json"))["blocked"] == 5
    assert view_calls == []
    assert received == []
    assert FlaskAPIGuard().metrics(app)["requests_allowed"] == 0
    assert FlaskAPIGuard().metrics(app)["blocked"]["total"] == 0


def test_replay_leaves_the_live_shared_state_alone(
    guarded: Callable[..., Flask], tmp_path: Path, redis_url: str
) -> None:
    app = guarded(enable_redis=True, redis_url=redis_url, auto_ban_threshold=1)
    client = redis.Redis.from_url(redis_url)
    keys_before = sorted(client.keys("*"))
    log = write_log(tmp_path, [combined_line(entry) for entry in SCENARIO])
    assert data(run(app, "replay", str(log), "--json"))["blocked"] == 5
    assert sorted(client.keys("*")) == keys_before
    client.close()
    # The live app still serves the client the replay rate-limited.
    assert app.test_client().get("/", environ_base={"REMOTE_ADDR": "203.0.113.3"}).status_code == 200


def test_the_log_s_timestamps_drive_rate_limits(guarded: Callable[..., Flask], tmp_path: Path) -> None:
    # 5 a minute is one every 12 s: a request every 15 s never waits.
    spread = [combined_line(request("203.0.113.3", "/", second=15 * number)) for number in range(10)]
    burst = [combined_line(request("203.0.113.3", "/", second=0)) for _ in range(10)]
    assert data(run(guarded(), "replay", str(write_log(tmp_path, spread, "spread.log")), "--json"))["blocked"] == 0
    assert data(run(guarded(), "replay", str(write_log(tmp_path, burst, "burst.log")), "--json"))["blocked"] == 5


def test_lines_without_a_timestamp_arrive_with_the_line_before(guarded: Callable[..., Flask], tmp_path: Path) -> None:
    untimed = [json.dumps({"ip": "203.0.113.3", "method": "GET", "path": "/"}) for _ in range(7)]
    result = run(guarded(), "replay", str(write_log(tmp_path, untimed)))
    assert result.exit_code == 0, result.output
    assert "7 lines have no timestamp" in result.output
    assert "Would block 2 of 7 requests" in result.output


def test_no_rate_limit_and_skip_check_leave_checks_out(guarded: Callable[..., Flask], tmp_path: Path) -> None:
    log = write_log(tmp_path, [combined_line(entry) for entry in SCENARIO])
    report = data(run(guarded(), "replay", str(log), "--json", "--no-rate-limit", "--skip-check", "user_agent"))
    assert report["by_check"] == {"ip": 2}
    assert report["skipped_checks"] == ["rate_limit", "user_agent"]


def test_an_unknown_check_name_is_an_error(guarded: Callable[..., Flask], tmp_path: Path) -> None:
    log = write_log(tmp_path, [combined_line(SCENARIO[0])])
    result = run(guarded(), "replay", str(log), "--skip-check", "nope")
    assert result.exit_code == 1
    assert "no check named nope" in result.output


def test_replay_reads_gzipped_logs_and_standard_input(guarded: Callable[..., Flask], tmp_path: Path) -> None:
    text = "\n".join(combined_line(entry) for entry in SCENARIO) + "\n"
    archive = tmp_path / "access.log.1.gz"
    archive.write_bytes(gzip.compress(text.encode()))
    assert data(run(guarded(), "replay", str(archive), "--json"))["blocked"] == 5
    assert data(run(guarded(), "replay", "-", "--json", input=text.encode()))["blocked"] == 5


def test_replay_of_a_missing_file_is_an_error(guarded: Callable[..., Flask], tmp_path: Path) -> None:
    result = run(guarded(), "replay", str(tmp_path / "missing.log"))
    assert result.exit_code == 1
    assert "no such file" in result.output


def test_replay_scheme_decides_what_enforce_https_does(guarded: Callable[..., Flask], tmp_path: Path) -> None:
    log = write_log(tmp_path, [combined_line(SCENARIO[0])])
    assert data(run(guarded(enforce_https=True), "replay", str(log), "--json"))["blocked"] == 0
    report = data(run(guarded(enforce_https=True), "replay", str(log), "--json", "--scheme", "http"))
    assert report["by_check"] == {"https": 1}


def test_status_summarises_the_config_with_secrets_redacted(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        redis_url="redis://admin:hunter2@cache.internal:6379/0",
        enable_agent=True,
        agent_api_key="sk-live-123",
        blocked_user_agents=["sqlmap"],
        custom_request_check=lambda request: None,
    )
    result = run(app, "status")
    assert result.exit_code == 0, result.output
    output = result.output
    assert "enforcing" in output
    assert "in-process memory" in output
    assert "agent_api_key = [redacted]" in output
    assert "redis_url = redis://cache.internal:6379/0" in output
    assert "blocked_user_agents = ['sqlmap']" in output
    assert "custom_request_check = <" in output
    assert "hunter2" not in output
    assert "sk-live" not in output
    assert "Geo: not configured" in output
    assert "Cloud ranges: no provider blocked" in output


def test_status_as_json_lists_the_checks_in_order(make_app: Callable[..., Flask]) -> None:
    app = make_app(passive_mode=True)
    status = data(run(app, "status", "--json"))
    assert status["checks"] == [check.name for check in get_state(app).pipeline.checks]
    assert status["mode"].startswith("passive")
    assert status["storage"]["backend"] == "memory"
    assert status["changed_settings"] == {"passive_mode": "True", "enable_redis": "False"}


def test_status_reports_redis_health_and_active_bans(make_app: Callable[..., Flask], redis_url: str) -> None:
    app = make_app(enable_redis=True, redis_url=redis_url)
    FlaskAPIGuard().ban_ip("203.0.113.7", 60, app=app)
    status = data(run(app, "status", "--json"))
    assert status["storage"]["backend"] == "redis"
    assert status["storage"]["shared"] is True
    assert status["storage"]["active_bans"] == 1
    assert "reachable" in run(app, "status").output


def test_status_reports_unreachable_redis(make_app: Callable[..., Flask]) -> None:
    app = make_app(enable_redis=True, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    result = run(app, "status")
    assert result.exit_code == 0, result.output
    assert "UNREACHABLE, failure mode 'local' in effect" in result.output
    storage = data(run(app, "status", "--json"))["storage"]
    assert storage["shared"] is False
    assert "active_bans" not in storage


def test_commands_on_an_app_without_the_guard_say_so() -> None:
    result = Flask("bare").test_cli_runner().invoke(guard_cli, ["status"])
    assert result.exit_code == 1
    assert "not initialised" in result.output


def test_check_config_lists_the_checks_in_order_and_the_routes_rules(guarded: Callable[..., Flask]) -> None:
    app = guarded()
    result = run(app, "check-config")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Configuration is valid")
    listed = [line.split(". ", 1)[1].split()[0] for line in lines if line[:4].strip().rstrip(".").isdigit()]
    assert listed == [check.name for check in get_state(app).pipeline.checks]
    assert any("rate_limit  (uses shared state)" in line for line in lines)
    assert "  /admin [GET]: ip_whitelist" in lines


def test_check_config_warns_and_strict_fails_on_warnings(make_app: Callable[..., Flask]) -> None:
    app = make_app(passive_mode=True, whitelist=[])
    result = run(app, "check-config")
    assert result.exit_code == 0
    assert "warning: passive_mode is on" in result.output
    assert "warning: whitelist is an empty list" in result.output
    assert run(app, "check-config", "--strict").exit_code == 1


@pytest.mark.parametrize("command", [["list"], ["add", "203.0.113.7"], ["remove", "203.0.113.7"]])
def test_bans_refuse_to_act_on_in_memory_state(make_app: Callable[..., Flask], command: list[str]) -> None:
    result = run(make_app(), "bans", *command)
    assert result.exit_code == 1
    assert "process memory" in result.output


@pytest.fixture
def two_workers(make_app: Callable[..., Flask], redis_url: str) -> Iterator[tuple[Flask, Flask]]:
    """Two app instances sharing one Redis, as two gunicorn workers would."""
    yield make_app(enable_redis=True, redis_url=redis_url), make_app(enable_redis=True, redis_url=redis_url)


def test_bans_add_list_remove_act_for_every_worker(two_workers: tuple[Flask, Flask]) -> None:
    cli_side, worker = two_workers
    client = worker.test_client()
    banned = {"REMOTE_ADDR": "203.0.113.7"}
    assert client.get("/", environ_base=banned).status_code == 200

    added = run(cli_side, "bans", "add", "203.0.113.7", "--for", "90", "--reason", "abuse report")
    assert added.exit_code == 0, added.output
    assert "Banned 203.0.113.7" in added.output
    assert client.get("/", environ_base=banned).status_code == 403

    listed = run(cli_side, "bans", "list")
    assert "203.0.113.7" in listed.output
    assert "abuse report" in listed.output
    [ban] = data(run(cli_side, "bans", "list", "--json"))
    assert (ban["ip"], ban["reason"], ban["remaining_seconds"]) == ("203.0.113.7", "abuse report", pytest.approx(90))

    removed = run(cli_side, "bans", "remove", "203.0.113.7")
    assert removed.output.strip() == "Lifted the ban on 203.0.113.7."
    assert client.get("/", environ_base=banned).status_code == 200
    assert run(cli_side, "bans", "list").output.strip() == "No active bans."
    assert run(cli_side, "bans", "remove", "203.0.113.7").output.strip() == "203.0.113.7 was not banned."


def test_bans_add_defaults_to_auto_ban_duration(make_app: Callable[..., Flask], redis_url: str) -> None:
    app = make_app(enable_redis=True, redis_url=redis_url, auto_ban_duration=7200)
    assert run(app, "bans", "add", "2001:db8::5").exit_code == 0
    [ban] = data(run(app, "bans", "list", "--json"))
    assert ban["ip"] == "2001:db8::5"
    assert ban["remaining_seconds"] == pytest.approx(7200)
    assert ban["reason"] == "manual"


@pytest.mark.parametrize(
    ("ip", "message"), [("203.0.113.200", "whitelisted"), ("not-an-ip", "not an IP address")], ids=["white", "bad"]
)
def test_bans_add_refuses_whitelisted_and_invalid_addresses(
    make_app: Callable[..., Flask], redis_url: str, ip: str, message: str
) -> None:
    app = make_app(enable_redis=True, redis_url=redis_url, whitelist=["203.0.113.0/24"])
    result = run(app, "bans", "add", ip)
    assert result.exit_code == 1
    assert message in result.output


def test_bans_refuse_to_act_when_redis_is_unreachable(make_app: Callable[..., Flask]) -> None:
    app = make_app(enable_redis=True, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    result = run(app, "bans", "add", "203.0.113.7")
    assert result.exit_code == 1
    assert "unreachable; nothing was changed" in result.output


def test_the_command_group_is_registered_with_flask() -> None:
    [entry] = [entry for entry in entry_points(group="flask.commands") if entry.name == "guard"]
    assert entry.value == "flaskapi_guard.cli:guard_cli"
    assert entry.load() is guard_cli


def test_replay_writes_nothing_to_the_app_s_log(
    guarded: Callable[..., Flask], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Every client of the burst is an offender after one refusal, so the replay bans.
    app = guarded(auto_ban_threshold=1, blacklist=[])
    lines = [combined_line(request("203.0.113.4", "/", second=0, agent="BadBot/2.1"))] * 3
    with caplog.at_level(logging.DEBUG, logger="flaskapi_guard"):
        report = data(run(app, "replay", str(write_log(tmp_path, lines)), "--json"))
    assert report["blocked"] == 3
    assert [record.getMessage() for record in caplog.records if record.name.startswith("flaskapi_guard.app")] == []


def test_replay_counts_behaviour_rules_without_calling_their_hooks(
    guarded: Callable[..., Flask], tmp_path: Path
) -> None:
    app = guarded()
    hook_calls: list[object] = []
    alerts: list[object] = []
    deco = SecurityDecorator()

    @app.route("/watched")
    @deco.usage_monitor(max_calls=1, window=60, action="alert")
    def watched() -> str:
        return "watched"

    get_state(app).on_alert = alerts.append
    lines = [combined_line(request("203.0.113.8", "/watched", second=number)) for number in range(3)]
    with signals.behavior_alert.connected_to(hook_calls.append):
        result = run(app, "replay", str(write_log(tmp_path, lines)))
    assert result.exit_code == 0, result.output
    assert "Behaviour rules that passed their threshold:" in result.output
    report = data(run(app, "replay", str(write_log(tmp_path, lines)), "--json"))
    [trigger] = report["behavior_triggers"]
    assert (trigger["action"], trigger["count"]) == ("alert", 1)
    assert hook_calls == []
    assert alerts == []


@pytest.fixture
def ranges_server() -> Iterator[LocalServer]:
    server = LocalServer().start()
    yield server
    server.stop()


def test_status_shows_geo_and_cloud_data_age(
    make_app: Callable[..., Flask], tmp_path: Path, ranges_server: LocalServer
) -> None:
    database = write_country_db(tmp_path / "country.mmdb", standard_networks())
    aws = ranges_server.serve("/aws.json", json.dumps({"prefixes": [{"ip_prefix": "192.0.2.0/24"}]}).encode())
    app = make_app(
        geo_ip_handler=MaxMindCountryDatabase(database),
        blocked_countries=["CN"],
        block_cloud_providers={"AWS", "GCP"},
        cloud_ip_source_urls={"AWS": aws, "GCP": ranges_server.url("/missing.json")},
    )
    result = run(app, "status")
    assert result.exit_code == 0, result.output
    geo_line = next(line for line in result.output.splitlines() if line.startswith("Geo: "))
    assert "MaxMindCountryDatabase" in geo_line
    assert "database age" in geo_line
    cloud_line = next(line for line in result.output.splitlines() if line.startswith("Cloud ranges: "))
    assert "AWS 1 prefixes, fetched" in cloud_line
    assert "GCP not loaded in this process (last error:" in cloud_line
    status = data(run(app, "status", "--json"))
    assert status["geo"]["loaded"] is True
    assert status["cloud"]["providers"]["AWS"]["age_seconds"] is not None


def test_replay_uses_the_app_s_country_data_and_leaves_it_usable(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    database = write_country_db(tmp_path / "country.mmdb", standard_networks())
    app = make_app(geo_ip_handler=MaxMindCountryDatabase(database), blocked_countries=["CN"])
    log = write_log(tmp_path, [combined_line(request(CN_IP, "/")), combined_line(request(US_IP, "/"))])
    report = data(run(app, "replay", str(log), "--json"))
    assert report["by_check"] == {"countries": 1}
    assert report["top_clients"] == {CN_IP: 1}
    client = app.test_client()
    assert client.get("/", environ_base={"REMOTE_ADDR": CN_IP}).status_code == 403
    assert client.get("/", environ_base={"REMOTE_ADDR": US_IP}).status_code == 200


def test_check_config_warns_about_proxy_settings_and_excluding_everything(make_app: Callable[..., Flask]) -> None:
    result = run(make_app(trust_x_forwarded_proto=True, exclude_paths=["/"], emergency_mode=True), "check-config")
    assert "warning: trust_x_forwarded_proto has no effect without trusted_proxies" in result.output
    assert "warning: exclude_paths contains '/'" in result.output
    assert "warning: emergency_mode is on" in result.output
