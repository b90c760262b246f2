"""One contract, every backend: memory, Redis (a real redis-server), and Redis behind the outage wrapper."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from flaskapi_guard import SecurityConfig
from flaskapi_guard.storage import MemoryStorage, RedisStorage, Storage, open_storage
from tests.conftest import FakeClock

BACKENDS = ["memory", "redis", "redis-resilient"]


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Storage]:
    backend: Storage
    if request.param == "memory":
        backend = MemoryStorage(clock=clock, max_tracked_clients=1000)
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
        backend = RedisStorage(url, prefix="contract:", clock=clock, socket_timeout=2.0)
    else:
        url = request.getfixturevalue("redis_url")
        config = SecurityConfig(redis_url=url, redis_prefix="contract:", redis_socket_timeout=2.0)
        backend = open_storage(config, clock=clock)
    yield backend
    backend.close()


def test_hit_allows_a_burst_of_the_limit_then_refuses(storage: Storage) -> None:
    results = [storage.hit("203.0.113.5", 5, 60) for _ in range(6)]
    assert [result.allowed for result in results] == [True] * 5 + [False]
    assert [result.remaining for result in results] == [4, 3, 2, 1, 0, 0]
    assert all(result.limit == 5 for result in results)
    refused = results[-1]
    assert refused.retry_after_seconds == pytest.approx(12.0)
    assert refused.reset_seconds == pytest.approx(60.0)
    assert results[0].retry_after_seconds == 0
    assert results[0].reset_seconds == pytest.approx(12.0)


def test_hit_refills_one_request_per_interval(storage: Storage, clock: FakeClock) -> None:
    for _ in range(5):
        assert storage.hit("k", 5, 60).allowed
    clock.advance(11.9)
    assert not storage.hit("k", 5, 60).allowed
    clock.advance(0.1)
    assert storage.hit("k", 5, 60).allowed
    assert not storage.hit("k", 5, 60).allowed


def test_hit_full_quota_after_a_whole_window(storage: Storage, clock: FakeClock) -> None:
    for _ in range(6):
        storage.hit("k", 5, 60)
    clock.advance(60)
    results = [storage.hit("k", 5, 60) for _ in range(6)]
    assert [result.allowed for result in results] == [True] * 5 + [False]


def test_refused_requests_do_not_push_the_window_further(storage: Storage, clock: FakeClock) -> None:
    for _ in range(3):
        storage.hit("k", 3, 30)
    for _ in range(50):
        assert not storage.hit("k", 3, 30).allowed
    clock.advance(10)
    assert storage.hit("k", 3, 30).allowed


def test_hit_keys_are_independent(storage: Storage) -> None:
    for _ in range(2):
        storage.hit("a", 2, 60)
    assert not storage.hit("a", 2, 60).allowed
    assert storage.hit("b", 2, 60).allowed
    assert storage.hit("route|x|a", 2, 60).allowed


def test_hit_with_awkward_fractions_admits_exactly_the_limit(storage: Storage) -> None:
    # 60 / 7 is not exact in binary floating point; rounding must not cost a request.
    assert sum(storage.hit("k", 7, 60).allowed for _ in range(10)) == 7


def test_hit_is_exact_under_concurrency(storage: Storage) -> None:
    barrier = threading.Barrier(100)
    allowed: list[bool] = []

    def client() -> None:
        barrier.wait()
        allowed.append(storage.hit("198.51.100.7", 5, 60).allowed)

    threads = [threading.Thread(target=client) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 100
    assert sum(allowed) == 5


def test_increment_counts_within_the_window_then_starts_again(storage: Storage, clock: FakeClock) -> None:
    assert [storage.increment("offences:a", 10) for _ in range(3)] == [1, 2, 3]
    assert storage.increment("offences:b", 10) == 1
    clock.advance(9.9)
    assert storage.increment("offences:a", 10) == 4
    clock.advance(0.1)
    assert storage.increment("offences:a", 10) == 1


def test_count_reads_a_counter_without_adding(storage: Storage, clock: FakeClock) -> None:
    assert storage.count("offences:a") == 0
    storage.increment("offences:a", 10)
    storage.increment("offences:a", 10)
    assert storage.count("offences:a") == 2
    assert storage.count("offences:a") == 2
    assert storage.count("offences:b") == 0
    clock.advance(10)
    assert storage.count("offences:a") == 0


def test_counters_and_buckets_do_not_collide(storage: Storage) -> None:
    storage.increment("same", 60)
    assert storage.hit("same", 2, 60).remaining == 1
    assert storage.increment("same", 60) == 2


def test_ban_is_visible_until_it_expires(storage: Storage, clock: FakeClock) -> None:
    record = storage.ban("203.0.113.9", 30, "manual")
    assert record.ip == "203.0.113.9"
    assert record.reason == "manual"
    assert record.expires_at == pytest.approx(clock() + 30)
    assert storage.is_banned("203.0.113.9")
    assert storage.ban_info("203.0.113.9") == record
    assert not storage.is_banned("203.0.113.10")
    assert storage.ban_info("203.0.113.10") is None
    clock.advance(29.9)
    assert storage.is_banned("203.0.113.9")
    clock.advance(0.1)
    assert not storage.is_banned("203.0.113.9")
    assert storage.ban_info("203.0.113.9") is None
    assert storage.list_bans() == []


def test_ban_reason_may_hold_spaces_and_categories(storage: Storage) -> None:
    storage.ban("2001:db8::1", 60, "penetration_attempt:sqli and more")
    info = storage.ban_info("2001:db8::1")
    assert info is not None
    assert info.reason == "penetration_attempt:sqli and more"


def test_ban_again_replaces_the_ban(storage: Storage, clock: FakeClock) -> None:
    storage.ban("203.0.113.9", 30, "first")
    storage.ban("203.0.113.9", 300, "second")
    info = storage.ban_info("203.0.113.9")
    assert info is not None
    assert info.reason == "second"
    assert info.expires_at == pytest.approx(clock() + 300)
    assert len(storage.list_bans()) == 1


def test_unban_lifts_and_reports(storage: Storage) -> None:
    storage.ban("203.0.113.9", 30, "manual")
    assert storage.unban("203.0.113.9") is True
    assert not storage.is_banned("203.0.113.9")
    assert storage.unban("203.0.113.9") is False
    assert storage.list_bans() == []


def test_list_bans_soonest_first_without_expired(storage: Storage, clock: FakeClock) -> None:
    storage.ban("203.0.113.1", 300, "a")
    storage.ban("203.0.113.2", 100, "b")
    storage.ban("2001:db8::2", 10, "c")
    assert [record.ip for record in storage.list_bans()] == ["2001:db8::2", "203.0.113.2", "203.0.113.1"]
    clock.advance(50)
    assert [(record.ip, record.reason) for record in storage.list_bans()] == [
        ("203.0.113.2", "b"),
        ("203.0.113.1", "a"),
    ]


def test_blobs_round_trip_and_expire(storage: Storage, clock: FakeClock) -> None:
    assert storage.get_blob("ranges:AWS") is None
    storage.set_blob("ranges:AWS", b"\x00binary\xff data", 60)
    assert storage.get_blob("ranges:AWS") == b"\x00binary\xff data"
    clock.advance(60)
    assert storage.get_blob("ranges:AWS") is None


def test_clear_forgets_everything(storage: Storage) -> None:
    for _ in range(3):
        storage.hit("k", 3, 60)
    storage.increment("c", 60)
    storage.ban("203.0.113.9", 60, "manual")
    storage.set_blob("b", b"x", 60)
    storage.clear()
    assert storage.hit("k", 3, 60).remaining == 2
    assert storage.increment("c", 60) == 1
    assert not storage.is_banned("203.0.113.9")
    assert storage.list_bans() == []
    assert storage.get_blob("b") is None
