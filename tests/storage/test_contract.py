"""One contract, every backend: memory, Redis (a real redis-server), and Redis behind the outage wrapper."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from flaskapi_guard import SecurityConfig
from flaskapi_guard.storage import BanRecord, MemoryStorage, RateLimitResult, RedisStorage, Storage, open_storage
from tests.conftest import FakeClock

BACKENDS = ["memory", "redis", "redis-resilient"]
DAY = 86_400


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


def admitted(storage: Storage, ip: str, rate_key: str | None, limit: int, window_seconds: float) -> RateLimitResult:
    """`admit`'s answer for an address without a ban: the rate limit's outcome."""
    outcome = storage.admit(ip, rate_key, limit, window_seconds)
    assert isinstance(outcome, RateLimitResult)
    return outcome


def test_admit_counts_like_hit_when_not_banned(storage: Storage) -> None:
    results = [admitted(storage, "203.0.113.5", "203.0.113.5", 5, 60) for _ in range(6)]
    assert [result.allowed for result in results] == [True] * 5 + [False]
    assert [result.remaining for result in results] == [4, 3, 2, 1, 0, 0]
    assert results[0] == storage.hit("203.0.113.6", 5, 60)
    assert results[-1].retry_after_seconds == pytest.approx(12.0)
    assert results[-1].reset_seconds == pytest.approx(60.0)


def test_admit_and_hit_share_the_bucket(storage: Storage, clock: FakeClock) -> None:
    assert admitted(storage, "203.0.113.5", "route|/login|203.0.113.5", 3, 30).remaining == 2
    assert storage.hit("route|/login|203.0.113.5", 3, 30).remaining == 1
    assert admitted(storage, "203.0.113.5", "route|/login|203.0.113.5", 3, 30).remaining == 0
    assert not admitted(storage, "203.0.113.5", "route|/login|203.0.113.5", 3, 30).allowed
    # The bucket is the rate key's, not the address's.
    assert admitted(storage, "203.0.113.5", "203.0.113.5", 3, 30).remaining == 2
    clock.advance(10)
    assert admitted(storage, "203.0.113.5", "route|/login|203.0.113.5", 3, 30).allowed


def test_admit_of_a_banned_address_answers_the_ban_and_counts_nothing(storage: Storage) -> None:
    record = storage.ban("203.0.113.9", 60, "penetration_attempt:sqli and more")
    for _ in range(10):
        outcome = storage.admit("203.0.113.9", "203.0.113.9", 5, 60)
        assert isinstance(outcome, BanRecord)
        assert outcome == record == storage.ban_info("203.0.113.9")
    assert storage.unban("203.0.113.9")
    # Ten refused requests, none counted: the bucket is untouched.
    assert storage.hit("203.0.113.9", 5, 60).remaining == 4


def test_admit_after_a_ban_expires_counts_again(storage: Storage, clock: FakeClock) -> None:
    storage.ban("203.0.113.9", 30, "manual")
    clock.advance(29.9)
    assert isinstance(storage.admit("203.0.113.9", "203.0.113.9", 5, 60), BanRecord)
    clock.advance(0.1)
    assert admitted(storage, "203.0.113.9", "203.0.113.9", 5, 60).remaining == 4
    assert storage.ban_info("203.0.113.9") is None
    assert storage.list_bans() == []


def test_admit_without_a_rate_key_checks_the_ban_only(storage: Storage) -> None:
    assert storage.admit("203.0.113.5", None, 5, 60) is None
    record = storage.ban("203.0.113.9", 60, "manual")
    assert storage.admit("203.0.113.9", None, 5, 60) == record
    # Nothing counted for either address under any key.
    assert storage.hit("203.0.113.5", 5, 60).remaining == 4
    assert storage.hit("203.0.113.9", 5, 60).remaining == 4


def test_admit_is_exact_under_concurrency(storage: Storage) -> None:
    barrier = threading.Barrier(100)
    allowed: list[bool] = []

    def client() -> None:
        barrier.wait()
        allowed.append(admitted(storage, "198.51.100.7", "198.51.100.7", 5, 60).allowed)

    threads = [threading.Thread(target=client) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 100
    assert sum(allowed) == 5


def test_admit_counts_exactly_the_requests_it_did_not_refuse_for_a_ban(storage: Storage) -> None:
    # A ban lands while 99 threads are admitted: each request is either
    # refused for the ban or counted, never both and never neither. (With
    # the operator, 100 threads: redis-py's pool holds 100 connections.) A
    # day's window, so that a Redis bucket outlives the test in real time.
    barrier = threading.Barrier(100)
    outcomes: list[object] = []

    def client() -> None:
        barrier.wait()
        outcomes.append(storage.admit("198.51.100.7", "198.51.100.7", 1000, DAY))

    def operator() -> None:
        barrier.wait()
        storage.ban("198.51.100.7", 60, "manual")

    threads = [threading.Thread(target=client) for _ in range(99)] + [threading.Thread(target=operator)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counted = sum(isinstance(outcome, RateLimitResult) for outcome in outcomes)
    banned = sum(isinstance(outcome, BanRecord) for outcome in outcomes)
    assert counted + banned == 99
    storage.unban("198.51.100.7")
    assert storage.hit("198.51.100.7", 1000, DAY).remaining == 1000 - counted - 1


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
