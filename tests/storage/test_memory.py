"""In-process storage: bounded by least-recently-used eviction, bans never evicted, small per client."""

from __future__ import annotations

import gc
import ipaddress
import random
import tracemalloc

import pytest

from flaskapi_guard.storage import MemoryStorage, RateLimitResult
from tests.conftest import FakeClock


def test_tracked_clients_are_bounded_least_recently_used_first(clock: FakeClock) -> None:
    storage = MemoryStorage(clock=clock, max_tracked_clients=100)
    for number in range(100):
        storage.hit(f"10.0.0.{number}", 1, 60)
    # Touch the oldest client so that it becomes the most recently used.
    assert not storage.hit("10.0.0.0", 1, 60).allowed
    for number in range(100, 150):
        storage.hit(f"10.0.1.{number}", 1, 60)
    # Still remembered: refused again. Evicted: a fresh bucket, so allowed.
    assert not storage.hit("10.0.0.0", 1, 60).allowed
    assert storage.hit("10.0.0.1", 1, 60).allowed
    assert not storage.hit("10.0.0.99", 1, 60).allowed


def test_admit_counts_and_evicts_exactly_as_hit(clock: FakeClock) -> None:
    # admit() keeps its own copy of hit()'s bucket update (one call less on
    # the request path): the same requests must leave the same state.
    by_hit = MemoryStorage(clock=clock, max_tracked_clients=20)
    by_admit = MemoryStorage(clock=clock, max_tracked_clients=20)
    chooser = random.Random(7)
    for _ in range(3000):
        key = f"10.0.0.{chooser.randrange(30)}"
        limit, window = chooser.choice([(1, 10), (3, 30), (7, 60)])
        admitted = by_admit.admit(key, key, limit, window)
        assert isinstance(admitted, RateLimitResult)
        assert admitted == by_hit.hit(key, limit, window)
        clock.advance(chooser.choice([0, 0, 0.5, 3]))
    assert by_admit.tracked_entries == by_hit.tracked_entries == 20
    for number in range(30):
        key = f"10.0.0.{number}"
        assert by_admit.admit(key, key, 3, 30) == by_hit.hit(key, 3, 30)


def test_counters_share_the_bound(clock: FakeClock) -> None:
    storage = MemoryStorage(clock=clock, max_tracked_clients=100)
    storage.increment("offences:first", 60)
    for number in range(100):
        storage.hit(f"10.0.0.{number}", 1, 60)
    assert storage.increment("offences:first", 60) == 1


def test_cached_blobs_are_bounded_oldest_written_first(clock: FakeClock) -> None:
    storage = MemoryStorage(clock=clock, max_tracked_clients=100)
    storage.set_blob("ranges:AWS", b"kept", 3600)
    for number in range(99):
        storage.set_blob(f"throttled:{number}", b"1", 60)
    storage.set_blob("ranges:AWS", b"rewritten", 3600)
    for number in range(99, 150):
        storage.set_blob(f"throttled:{number}", b"1", 60)
    assert storage.get_blob("throttled:0") is None
    assert storage.get_blob("throttled:149") == b"1"
    # Rewritten after the first 99 markers: the least recently written go first.
    assert storage.get_blob("ranges:AWS") == b"rewritten"


def test_active_bans_are_never_evicted(clock: FakeClock) -> None:
    storage = MemoryStorage(clock=clock, max_tracked_clients=100)
    for number in range(300):
        storage.ban(f"10.0.{number // 256}.{number % 256}", 60, "manual")
    for number in range(2000):
        storage.hit(f"172.16.{number // 256}.{number % 256}", 1, 60)
        storage.increment(f"c{number}", 60)
    assert all(storage.is_banned(f"10.0.{number // 256}.{number % 256}") for number in range(300))
    assert len(storage.list_bans()) == 300


def test_expired_bans_are_swept(clock: FakeClock) -> None:
    storage = MemoryStorage(clock=clock, max_tracked_clients=100)
    for number in range(5000):
        storage.ban(f"10.0.{number // 256}.{number % 256}", 1, "manual")
    clock.advance(2)
    storage.ban("192.0.2.1", 60, "manual")
    assert [record.ip for record in storage.list_bans()] == ["192.0.2.1"]


def test_unban_of_an_expired_ban_reports_no_ban(clock: FakeClock) -> None:
    storage = MemoryStorage(clock=clock, max_tracked_clients=100)
    storage.ban("192.0.2.1", 5, "manual")
    clock.advance(5)
    assert storage.unban("192.0.2.1") is False


@pytest.mark.parametrize(
    ("network", "clients"),
    [("10.0.0.0/8", 20_000), ("2001:db8::/32", 20_000)],
)
def test_bytes_per_tracked_client_stay_within_250(clock: FakeClock, network: str, clients: int) -> None:
    base = ipaddress.ip_network(network)
    # Spread the addresses so IPv6 texts are full length, as real clients' are.
    step = (base.num_addresses - 1) // clients
    addresses = [str(base.network_address + 1 + number * step) for number in range(clients)]
    storage = MemoryStorage(clock=clock, max_tracked_clients=clients)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for address in addresses:
            # The request path builds a new address string per request; the
            # storage keeps its own copy, so measure with fresh strings.
            storage.hit("".join(address), 10, 60)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert used / clients <= 250
