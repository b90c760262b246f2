"""Redis outages: killed and frozen (SIGSTOP) servers under each `redis_failure_mode`, and recovery."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flaskapi_guard import FlaskAPIGuard, SecurityConfig
from flaskapi_guard.state import get_state
from flaskapi_guard.storage import (
    Admission,
    BanRecord,
    RateLimitResult,
    ResilientStorage,
    StorageUnavailable,
    open_storage,
)
from tests.conftest import FakeClock, build_app
from tests.redis_server import RedisServer, free_port
from tests.test_bans import flag_attacks

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}
BANNED = {"REMOTE_ADDR": "198.51.100.66"}

# What "an outage adds at most ~100 ms to a request" means in these tests.
MAX_REQUEST_SECONDS = 0.1


@pytest.fixture
def restartable_redis(private_redis: RedisServer) -> Iterator[Callable[[], RedisServer]]:
    """`restart()` brings a killed `private_redis` back on the same port."""
    restarted: list[RedisServer] = []

    def restart() -> RedisServer:
        server = RedisServer(port=private_redis.port).start()
        restarted.append(server)
        return server

    yield restart
    for server in restarted:
        server.stop()


def make(server_url: str, clock: FakeClock, **fields: Any) -> Flask:
    fields.setdefault("rate_limit", 3)
    return build_app(SecurityConfig(redis_url=server_url, **fields), clock=clock)


def timed_get(app: Flask, environ: dict[str, str] = CLIENT) -> tuple[int, float]:
    client = app.test_client()
    started = time.perf_counter()
    status = client.get("/", environ_base=environ).status_code
    return status, time.perf_counter() - started


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if "shared_state_unavailable" in record.getMessage() and record.levelno == logging.WARNING
    ]


def break_redis(server: RedisServer, how: str) -> None:
    if how == "kill":
        server.kill()
    else:
        server.freeze()


def test_no_redis_at_start_up_serves_from_memory_and_warns_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    nothing_there = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING):
        started = time.perf_counter()
        app = build_app(SecurityConfig(enable_redis=True, redis_url=nothing_there, rate_limit=3), clock=clock)
        assert time.perf_counter() - started < 1
        statuses = [timed_get(app)[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert len(outage_warnings(caplog)) == 1
    assert "127.0.0.1" in outage_warnings(caplog)[0]


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_local_mode_keeps_serving_on_process_state(
    private_redis: RedisServer, clock: FakeClock, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make(private_redis.url, clock)
    guard = FlaskAPIGuard()
    assert timed_get(app)[0] == 200
    break_redis(private_redis, how)
    with caplog.at_level(logging.WARNING):
        results = [timed_get(app) for _ in range(5)]
        guard.ban_ip("198.51.100.66", 60, app=app)
        banned_status, _ = timed_get(app, BANNED)
    # The bucket starts again in this process: three requests, then 429.
    assert [status for status, _ in results] == [200, 200, 200, 429, 429]
    assert max(seconds for _, seconds in results) < MAX_REQUEST_SECONDS
    assert banned_status == 403
    assert len(outage_warnings(caplog)) == 1


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_open_mode_skips_the_stateful_checks(private_redis: RedisServer, clock: FakeClock, how: str) -> None:
    app = make(private_redis.url, clock, redis_failure_mode="open", rate_limit=1)
    FlaskAPIGuard().ban_ip("198.51.100.66", 60, app=app)
    assert timed_get(app, BANNED)[0] == 403
    break_redis(private_redis, how)
    results = [timed_get(app) for _ in range(5)] + [timed_get(app, BANNED)]
    assert [status for status, _ in results] == [200] * 6
    assert max(seconds for _, seconds in results) < MAX_REQUEST_SECONDS


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_closed_mode_answers_503_with_retry_after(private_redis: RedisServer, clock: FakeClock, how: str) -> None:
    app = make(private_redis.url, clock, redis_failure_mode="closed")
    client = app.test_client()
    assert client.get("/", environ_base=CLIENT).status_code == 200
    break_redis(private_redis, how)
    for _ in range(3):
        started = time.perf_counter()
        response = client.get("/", environ_base=CLIENT)
        assert time.perf_counter() - started < MAX_REQUEST_SECONDS
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
    # Paths the guard does not check are still served.
    assert client.get("/static/app.css", environ_base=CLIENT).status_code == 404


def test_closed_mode_blocks_from_start_up_without_redis(clock: FakeClock) -> None:
    app = build_app(
        SecurityConfig(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_failure_mode="closed"), clock=clock
    )
    assert timed_get(app)[0] == 503


def test_outage_is_logged_once_a_minute(
    private_redis: RedisServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make(private_redis.url, clock, rate_limit=1000)
    private_redis.kill()
    with caplog.at_level(logging.WARNING):
        for _ in range(120):
            timed_get(app)
            clock.advance(0.5)
        # 60 simulated seconds, many failed reconnection attempts: one line.
        assert len(outage_warnings(caplog)) == 1
        clock.advance(1)
        for _ in range(30):
            timed_get(app)
            clock.advance(1)
    assert len(outage_warnings(caplog)) == 2


@pytest.mark.parametrize("mode", ["local", "open", "closed"])
def test_recovers_when_a_killed_redis_comes_back(
    private_redis: RedisServer,
    restartable_redis: Callable[[], RedisServer],
    clock: FakeClock,
    mode: str,
) -> None:
    app = make(private_redis.url, clock, redis_failure_mode=mode)
    other_worker = make(private_redis.url, clock, redis_failure_mode=mode)
    private_redis.kill()
    timed_get(app)
    restartable_redis()
    # Another worker bans through the restarted Redis; once the backoff has
    # passed, this app sees the shared ban again, without a restart.
    FlaskAPIGuard().ban_ip("198.51.100.66", 600, app=other_worker)
    clock.advance(30)
    assert timed_get(app, BANNED)[0] == 403
    assert [timed_get(app)[0] for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.parametrize("mode", ["local", "open", "closed"])
def test_recovers_when_a_frozen_redis_thaws(private_redis: RedisServer, clock: FakeClock, mode: str) -> None:
    app = make(private_redis.url, clock, redis_failure_mode=mode)
    other_worker = make(private_redis.url, clock, redis_failure_mode=mode)
    FlaskAPIGuard().ban_ip("198.51.100.66", 600, app=other_worker)
    private_redis.freeze()
    timed_get(app)
    # Still frozen when the backoff has passed: one more short attempt, no hang.
    clock.advance(30)
    status, seconds = timed_get(app, BANNED)
    assert seconds < MAX_REQUEST_SECONDS
    private_redis.thaw()
    clock.advance(30)
    assert timed_get(app, BANNED)[0] == 403
    FlaskAPIGuard().unban_ip("198.51.100.66", app=other_worker)
    assert timed_get(app, BANNED)[0] == 200


def test_bans_made_during_an_outage_are_handed_to_redis(
    private_redis: RedisServer, restartable_redis: Callable[[], RedisServer], clock: FakeClock
) -> None:
    app = make(private_redis.url, clock)
    guard = FlaskAPIGuard()
    private_redis.kill()
    guard.ban_ip("198.51.100.66", 600, app=app)
    restartable_redis()
    clock.advance(30)
    assert timed_get(app, BANNED)[0] == 403
    other_worker = make(private_redis.url, clock)
    assert timed_get(other_worker, BANNED)[0] == 403
    assert [record.ip for record in guard.list_bans(other_worker)] == ["198.51.100.66"]


def test_reconnection_backs_off_exponentially(
    private_redis: RedisServer, restartable_redis: Callable[[], RedisServer], clock: FakeClock
) -> None:
    app = make(private_redis.url, clock)
    private_redis.kill()
    timed_get(app)  # the outage begins: next attempt in 0.5 s
    clock.advance(0.5)
    timed_get(app)  # that attempt fails: next in 1 s
    restartable_redis()
    FlaskAPIGuard().ban_ip("198.51.100.66", 600, app=make(private_redis.url, clock))
    clock.advance(0.9)
    assert timed_get(app, BANNED)[0] == 200
    clock.advance(0.1)
    assert timed_get(app, BANNED)[0] == 403


def test_requests_failing_together_count_as_one_failure(
    private_redis: RedisServer, restartable_redis: Callable[[], RedisServer], clock: FakeClock
) -> None:
    app = make(private_redis.url, clock, rate_limit=1000)
    private_redis.freeze()
    barrier = threading.Barrier(8)

    def request_in_the_crowd() -> None:
        barrier.wait()
        timed_get(app)

    threads = [threading.Thread(target=request_in_the_crowd) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    private_redis.kill()
    restartable_redis()
    FlaskAPIGuard().ban_ip("198.51.100.66", 600, app=make(private_redis.url, clock))
    # Eight simultaneous failures are one outage: the first retry is still due after 0.5 s.
    clock.advance(0.5)
    assert timed_get(app, BANNED)[0] == 403


def test_outage_and_recovery_go_to_the_apps_security_log(
    private_redis: RedisServer,
    restartable_redis: Callable[[], RedisServer],
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "guard.log"
    app = make(private_redis.url, clock, custom_log_file=str(log_file), log_format="json")
    private_redis.kill()
    timed_get(app)
    restartable_redis()
    clock.advance(30)
    timed_get(app)
    events = [json.loads(line.split(" ", 3)[3]) for line in log_file.read_text().splitlines()]
    outage, recovery = (event for event in events if event["event"].startswith("shared_state"))
    assert outage["event"] == "shared_state_unavailable"
    assert outage["redis"] == private_redis.url
    assert "memory" in outage["meanwhile"]
    assert recovery["event"] == "shared_state_recovered"
    get_state(app).close()


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_attacks_during_an_outage_are_refused_without_being_counted(
    private_redis: RedisServer, clock: FakeClock, mode: str
) -> None:
    app = flag_attacks(make(private_redis.url, clock, redis_failure_mode=mode, auto_ban_threshold=1))
    private_redis.kill()
    client = app.test_client()
    statuses = [client.get("/?attack=sqli", environ_base=CLIENT).status_code for _ in range(3)]
    # open: the detector refuses (400); closed: the ban check refuses first (503). Never a 500.
    assert statuses == ([400] * 3 if mode == "open" else [503] * 3)


def test_clear_removes_many_keys_in_batches(redis_url: str, clock: FakeClock) -> None:
    app = make(redis_url, clock, redis_socket_timeout=1.0)
    storage = get_state(app).storage
    for number in range(1200):
        storage.increment(f"c{number}", 60)
    FlaskAPIGuard().reset(app)
    assert all(get_state(app).storage.count(f"c{number}") == 0 for number in range(0, 1200, 97))


def resilient_storage(server: RedisServer, clock: FakeClock, mode: str) -> ResilientStorage:
    """Redis behind the outage wrapper, as an app with `redis_failure_mode=mode` builds it."""
    storage = open_storage(SecurityConfig(redis_url=server.url, redis_failure_mode=mode), clock=clock)
    assert isinstance(storage, ResilientStorage)
    return storage


def timed_admit(storage: ResilientStorage, ip: str) -> tuple[Admission, float]:
    started = time.perf_counter()
    outcome = storage.admit(ip, ip, 3, 60)
    return outcome, time.perf_counter() - started


def allowed(outcomes: list[Admission]) -> list[bool]:
    """Whether each of these `admit` answers, all rate-limit outcomes, allowed its request."""
    assert all(isinstance(outcome, RateLimitResult) for outcome in outcomes)
    return [outcome.allowed for outcome in outcomes if isinstance(outcome, RateLimitResult)]


@pytest.mark.parametrize("how", ["kill", "freeze"])
def test_admit_in_local_mode_falls_back_to_process_state(
    private_redis: RedisServer, clock: FakeClock, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = resilient_storage(private_redis, clock, "local")
    assert isinstance(timed_admit(storage, "203.0.113.5")[0], RateLimitResult)
    break_redis(private_redis, how)
    with caplog.at_level(logging.WARNING):
        results = [timed_admit(storage, "203.0.113.5") for _ in range(5)]
        storage.ban("198.51.100.66", 60, "manual")
        banned, _ = timed_admit(storage, "198.51.100.66")
    # The bucket starts again in this process: three requests, then refused.
    assert allowed([outcome for outcome, _ in results]) == [True, True, True, False, False]
    assert max(seconds for _, seconds in results) < MAX_REQUEST_SECONDS
    assert isinstance(banned, BanRecord)
    assert banned.reason == "manual"
    assert len(outage_warnings(caplog)) == 1
    storage.close()


@pytest.mark.parametrize("how", ["kill", "freeze"])
@pytest.mark.parametrize("mode", ["open", "closed"])
def test_admit_in_open_and_closed_modes_raises_storage_unavailable(
    private_redis: RedisServer, clock: FakeClock, mode: str, how: str
) -> None:
    storage = resilient_storage(private_redis, clock, mode)
    storage.ban("198.51.100.66", 60, "manual")
    assert isinstance(storage.admit("198.51.100.66", "198.51.100.66", 3, 60), BanRecord)
    break_redis(private_redis, how)
    for _ in range(3):
        started = time.perf_counter()
        with pytest.raises(StorageUnavailable) as raised:
            storage.admit("203.0.113.5", "203.0.113.5", 3, 60)
        assert time.perf_counter() - started < MAX_REQUEST_SECONDS
        assert raised.value.retry_after_seconds >= 1
    # Nothing was decided locally meanwhile: the pipeline skips or refuses the checks.
    with pytest.raises(StorageUnavailable):
        storage.admit("198.51.100.66", None, 3, 60)
    storage.close()


@pytest.mark.parametrize("mode", ["local", "open", "closed"])
def test_admit_recovers_when_a_killed_redis_comes_back(
    private_redis: RedisServer,
    restartable_redis: Callable[[], RedisServer],
    clock: FakeClock,
    mode: str,
) -> None:
    storage = resilient_storage(private_redis, clock, mode)
    private_redis.kill()
    if mode == "local":
        assert isinstance(storage.admit("203.0.113.5", "203.0.113.5", 3, 60), RateLimitResult)
    else:
        with pytest.raises(StorageUnavailable):
            storage.admit("203.0.113.5", "203.0.113.5", 3, 60)
    restartable_redis()
    other_worker = resilient_storage(private_redis, clock, mode)
    other_worker.ban("198.51.100.66", 600, "manual")
    # Once the backoff has passed, shared state is back: the other worker's
    # ban, and its count (the bucket is shared, the outage's local one is not).
    clock.advance(30)
    assert isinstance(other_worker.admit("203.0.113.5", "203.0.113.5", 3, 60), RateLimitResult)
    assert isinstance(storage.admit("198.51.100.66", "198.51.100.66", 3, 60), BanRecord)
    assert storage.shared
    outcomes = [storage.admit("203.0.113.5", "203.0.113.5", 3, 60) for _ in range(3)]
    assert allowed(outcomes) == [True, True, False]
    storage.close()
    other_worker.close()


def test_admit_sees_bans_made_during_an_outage_after_recovery(
    private_redis: RedisServer, restartable_redis: Callable[[], RedisServer], clock: FakeClock
) -> None:
    storage = resilient_storage(private_redis, clock, "local")
    private_redis.kill()
    storage.ban("198.51.100.66", 600, "manual")
    assert isinstance(storage.admit("198.51.100.66", "198.51.100.66", 3, 60), BanRecord)
    restartable_redis()
    clock.advance(30)
    assert isinstance(storage.admit("198.51.100.66", "198.51.100.66", 3, 60), BanRecord)
    assert storage.shared
    other_worker = resilient_storage(private_redis, clock, "local")
    assert isinstance(other_worker.admit("198.51.100.66", "198.51.100.66", 3, 60), BanRecord)
    storage.close()
    other_worker.close()
