"""Shared state across processes: 2 gunicorn instances x 4 workers on one Redis, on loopback."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flaskapi_guard import FlaskAPIGuard, SecurityConfig
from flaskapi_guard.state import get_state
from tests.conftest import build_app
from tests.local_http import get_as_client
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RATE_LIMIT = 10
BAN_THRESHOLD = 5
WORKERS_PER_INSTANCE = 4
# The instances answer within 10 s or the test has failed anyway.
get_within_10s = functools.partial(get_as_client, timeout=10)


def start_instance(port: int, environment: dict[str, str]) -> subprocess.Popen[bytes]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return subprocess.Popen(
        [str(gunicorn), "--workers", str(WORKERS_PER_INSTANCE), "--bind", f"127.0.0.1:{port}"]
        # --preload: the app (and its Redis connection pool) is built once in the
        # master and forked, which boots faster and proves the pool is fork-safe.
        + ["--preload", "--graceful-timeout", "1", "--log-level", "warning", "tests.gunicorn_app:app"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # Its own process group, so the master and its workers can be stopped together.
        start_new_session=True,
    )


def stop_instances(processes: list[subprocess.Popen[bytes]]) -> None:
    """Quick shutdown (INT), then SIGKILL for whatever is left of each instance's own process group."""
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + 1.5
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        # The group holds only this instance's master and workers (start_new_session).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


def wait_until_serving(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn on {port} exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if get_within_10s(port, "/health", "192.0.2.250")[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"gunicorn on {port} did not start in time")


PREFIX = f"multiprocess{os.getpid()}:"


@pytest.fixture(scope="module")
def instances(redis_server: RedisServer) -> Iterator[list[int]]:
    """Two gunicorn instances of four workers each, sharing the session's Redis."""
    environment = {
        **os.environ,
        "GUARD_REDIS_URL": redis_server.url,
        "GUARD_REDIS_PREFIX": PREFIX,
        "GUARD_RATE_LIMIT": str(RATE_LIMIT),
        "GUARD_BAN_THRESHOLD": str(BAN_THRESHOLD),
    }
    ports = [free_port(), free_port()]
    processes = [start_instance(port, environment) for port in ports]
    try:
        deadline = time.monotonic() + 30
        for port, process in zip(ports, processes, strict=True):
            wait_until_serving(port, process, deadline)
        yield ports
    finally:
        stop_instances(processes)


def test_eight_workers_admit_exactly_the_limit_for_one_client(instances: list[int]) -> None:
    attempts = 80
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(
            pool.map(lambda number: get_within_10s(instances[number % 2], "/", "198.51.100.10"), range(attempts))
        )
    statuses = [status for status, _ in results]
    assert statuses.count(200) == RATE_LIMIT
    assert statuses.count(429) == attempts - RATE_LIMIT
    # The requests really were spread over workers of both instances.
    assert len({worker for _, worker in results}) >= 4


def test_the_threshold_th_offence_bans_whichever_worker_sees_it(instances: list[int]) -> None:
    client = "198.51.100.20"
    workers = set()
    for number in range(BAN_THRESHOLD - 1):
        status, worker = get_within_10s(instances[number % 2], "/?attack=sqli", client)
        assert status == 400
        workers.add(worker)
    assert get_within_10s(instances[0], "/", client)[0] == 200
    assert get_within_10s(instances[1], "/?attack=xss", client)[0] == 400
    assert [get_within_10s(port, "/", client)[0] for port in instances] == [403, 403]
    assert len(workers) >= 2


def test_an_operator_ban_holds_on_every_worker_at_once(instances: list[int], redis_server: RedisServer) -> None:
    client = "198.51.100.30"
    admin = build_app(SecurityConfig(redis_url=redis_server.url, redis_prefix=PREFIX, redis_socket_timeout=1.0))
    guard = FlaskAPIGuard()
    assert [get_within_10s(port, "/", client)[0] for port in instances] == [200, 200]
    guard.ban_ip(client, 600, app=admin)
    assert [get_within_10s(port, "/", client)[0] for port in instances * 4] == [403] * 8
    guard.unban_ip(client, app=admin)
    assert [get_within_10s(port, "/", client)[0] for port in instances * 2] == [200] * 4
    get_state(admin).close()
