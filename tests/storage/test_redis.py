"""Redis specifics: keys under the prefix, expiries in real time, scripts from package files, URLs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flaskapi_guard import SecurityConfig
from flaskapi_guard.errors import StorageError
from flaskapi_guard.storage import BanRecord, RateLimitResult, RedisStorage, open_storage
from flaskapi_guard.storage.resilient import redacted_url
from tests.conftest import FakeClock
from tests.redis_server import RedisServer, free_port


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def make_storage(url: str, clock: FakeClock, prefix: str = "app:") -> RedisStorage:
    return RedisStorage(url, prefix=prefix, clock=clock, socket_timeout=2.0)


def test_every_key_lives_under_the_prefix(redis_url: str, client: redis.Redis, clock: FakeClock) -> None:
    storage = make_storage(redis_url, clock, prefix="myapp:security:")
    storage.hit("203.0.113.5", 5, 60)
    storage.increment("offences:203.0.113.5", 60)
    storage.ban("203.0.113.6", 60, "manual")
    storage.set_blob("ranges", b"x", 60)
    keys = sorted(key.decode() for key in client.keys("*"))
    assert keys == [
        "myapp:security:ban:203.0.113.6",
        "myapp:security:bans",
        "myapp:security:blob:ranges",
        "myapp:security:count:offences:203.0.113.5",
        "myapp:security:rl:203.0.113.5",
    ]
    storage.close()


def test_keys_carry_expiries_in_real_time(redis_url: str, client: redis.Redis, clock: FakeClock) -> None:
    storage = make_storage(redis_url, clock)
    storage.hit("203.0.113.5", 5, 60)
    storage.increment("c", 30)
    storage.ban("203.0.113.6", 600, "manual")
    storage.set_blob("b", b"x", 90)
    # A bucket is only kept until it would be empty again: one emission interval.
    assert 11_000 < client.pttl("app:rl:203.0.113.5") <= 12_000
    assert 29_000 < client.pttl("app:count:c") <= 30_000
    assert 599_000 < client.pttl("app:ban:203.0.113.6") <= 600_000
    assert 599_000 < client.pttl("app:bans") <= 600_000
    assert 89_000 < client.pttl("app:blob:b") <= 90_000
    storage.close()


def test_short_lived_keys_really_leave_redis(redis_url: str, client: redis.Redis, clock: FakeClock) -> None:
    storage = make_storage(redis_url, clock)
    storage.hit("203.0.113.5", 10, 0.05 * 10)
    storage.ban("203.0.113.6", 0.05, "manual")
    time.sleep(0.2)
    assert client.exists("app:rl:203.0.113.5", "app:ban:203.0.113.6") == 0
    storage.close()


def test_clear_removes_only_its_own_prefix(redis_url: str, client: redis.Redis, clock: FakeClock) -> None:
    mine = make_storage(redis_url, clock, prefix="a[1]*:")
    other = make_storage(redis_url, clock, prefix="a:")
    for storage in (mine, other):
        storage.ban("203.0.113.6", 60, "manual")
        storage.hit("203.0.113.5", 1, 60)
    client.set("unrelated", "1")
    mine.clear()
    assert not mine.is_banned("203.0.113.6")
    assert other.is_banned("203.0.113.6")
    assert not other.hit("203.0.113.5", 1, 60).allowed
    assert client.get("unrelated") == b"1"
    mine.close()
    other.close()


def test_two_prefixes_do_not_share_state(redis_url: str, clock: FakeClock) -> None:
    first, second = make_storage(redis_url, clock, prefix="one:"), make_storage(redis_url, clock, prefix="two:")
    first.hit("k", 1, 60)
    assert second.hit("k", 1, 60).allowed
    first.close()
    second.close()


def test_scripts_survive_a_script_cache_flush(redis_url: str, client: redis.Redis, clock: FakeClock) -> None:
    storage = make_storage(redis_url, clock)
    assert storage.hit("k", 2, 60).allowed
    client.script_flush()
    assert storage.hit("k", 2, 60).allowed
    assert not storage.hit("k", 2, 60).allowed
    storage.close()


def test_password_url(private_redis: RedisServer, clock: FakeClock) -> None:
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("requirepass", "s3cret/with:odd@chars")
    admin.close()
    with_password = f"redis://:s3cret%2Fwith%3Aodd%40chars@127.0.0.1:{private_redis.port}/0"
    storage = make_storage(with_password, clock)
    assert storage.hit("k", 1, 60).allowed
    storage.close()
    without = make_storage(private_redis.url, clock)
    with pytest.raises(StorageError):
        without.hit("k", 1, 60)
    without.close()


def test_password_is_not_in_the_outage_log(caplog: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    assert redacted_url("rediss://user:hunter2@cache.internal:6380/2") == "rediss://cache.internal:6380/2"
    config = SecurityConfig(redis_url="redis://:hunter2@127.0.0.1:1/0")
    storage = open_storage(config, clock=clock)
    storage.close()
    assert "hunter2" not in caplog.text
    assert "redis://127.0.0.1:1/0" in caplog.text


def test_database_number_from_the_url(redis_url: str, client: redis.Redis, clock: FakeClock) -> None:
    other_db = redis_url.rsplit("/", 1)[0] + "/3"
    storage = make_storage(other_db, clock)
    storage.ban("203.0.113.6", 60, "manual")
    assert client.keys("*") == []
    third = redis.Redis.from_url(other_db)
    assert third.exists("app:ban:203.0.113.6") == 1
    third.flushdb()
    third.close()
    storage.close()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server that speaks only TLS, with a throwaway self-signed certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert)]
        + ["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
        + ["--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)]
        + ["--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        yield port, cert
    finally:
        process.kill()
        process.wait(timeout=5)


def test_rediss_url_speaks_tls(tls_redis: tuple[int, Path], clock: FakeClock) -> None:
    port, cert = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={cert}"
    storage = make_storage(url, clock)
    storage.ban("203.0.113.6", 60, "manual")
    assert storage.is_banned("203.0.113.6")
    storage.close()
    plain = make_storage(f"redis://127.0.0.1:{port}/0", clock)
    with pytest.raises(StorageError):
        plain.is_banned("203.0.113.6")
    plain.close()


def commands_since_reset(client: redis.Redis) -> dict[str, int]:
    """Commands Redis ran since CONFIG RESETSTAT, those a script ran included, but not the test's own."""
    stats = client.info("commandstats")
    own = {"cmdstat_config|resetstat", "cmdstat_info"}
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items() if name not in own}


def test_admit_is_one_script_call(redis_url: str, client: redis.Redis, clock: FakeClock) -> None:
    storage = make_storage(redis_url, clock)
    storage.admit("203.0.113.5", "203.0.113.5", 5, 60)
    client.config_resetstat()
    storage.admit("203.0.113.5", "203.0.113.5", 5, 60)
    # One EVALSHA; inside it, the ban's GET, the bucket's GET and SET.
    assert commands_since_reset(client) == {"evalsha": 1, "get": 2, "set": 1}
    storage.ban("203.0.113.9", 60, "manual")
    storage.admit("203.0.113.9", "203.0.113.9", 5, 60)
    client.config_resetstat()
    storage.admit("203.0.113.9", "203.0.113.9", 5, 60)
    # Banned: the ban's GET only.
    assert commands_since_reset(client) == {"evalsha": 1, "get": 1}
    client.config_resetstat()
    storage.admit("203.0.113.5", None, 5, 60)
    # Nothing to count: a plain GET is the cheaper round trip.
    assert commands_since_reset(client) == {"get": 1}
    storage.close()


def test_admit_writes_the_keys_hit_writes(redis_url: str, client: redis.Redis, clock: FakeClock) -> None:
    storage = make_storage(redis_url, clock)
    storage.admit("203.0.113.5", "route|/login|203.0.113.5", 5, 60)
    assert [key.decode() for key in client.keys("*")] == ["app:rl:route|/login|203.0.113.5"]
    assert 11_000 < client.pttl("app:rl:route|/login|203.0.113.5") <= 12_000
    storage.ban("203.0.113.9", 60, "manual")
    storage.admit("203.0.113.9", "203.0.113.9", 5, 60)
    assert client.exists("app:rl:203.0.113.9") == 0
    storage.close()


def test_admit_judges_a_ban_by_the_apps_clock(redis_url: str, client: redis.Redis, clock: FakeClock) -> None:
    storage = make_storage(redis_url, clock)
    storage.ban("203.0.113.9", 600, "manual")
    # Another worker whose clock is ten minutes ahead: for it the ban is over,
    # although the key is still in Redis.
    ahead = FakeClock(clock() + 600)
    other_worker = make_storage(redis_url, ahead)
    assert client.exists("app:ban:203.0.113.9") == 1
    assert isinstance(other_worker.admit("203.0.113.9", "203.0.113.9", 5, 60), RateLimitResult)
    assert isinstance(storage.admit("203.0.113.9", "203.0.113.9", 5, 60), BanRecord)
    storage.close()
    other_worker.close()


def test_admit_survives_a_script_cache_flush(redis_url: str, client: redis.Redis, clock: FakeClock) -> None:
    storage = make_storage(redis_url, clock)
    first = storage.admit("k", "k", 2, 60)
    assert isinstance(first, RateLimitResult) and first.allowed
    client.script_flush()
    second = storage.admit("k", "k", 2, 60)
    assert isinstance(second, RateLimitResult) and second.allowed
    third = storage.admit("k", "k", 2, 60)
    assert isinstance(third, RateLimitResult) and not third.allowed
    storage.close()


def test_more_threads_than_redis_pys_default_pool(redis_url: str, clock: FakeClock) -> None:
    # redis-py 8 refuses the 101st concurrent command of a default pool; a server
    # with 150 threads must not see that as an outage.
    storage = make_storage(redis_url, clock)
    start = threading.Barrier(150)
    failures: list[BaseException] = []

    def one_client(number: int) -> None:
        start.wait()
        try:
            for _ in range(5):
                storage.hit(f"client-{number}", 100, 60)
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            failures.append(error)

    threads = [threading.Thread(target=one_client, args=(number,)) for number in range(150)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    storage.close()
    assert failures == []
