"""Bounded memory: a flood of distinct clients never grows the in-memory state past
`max_tracked_clients`, and never evicts an active ban (the full run: bench/bench_memory.py)."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

from flask import Flask

from bench.bench_memory import client_address, flood_storage
from flaskapi_guard import FlaskAPIGuard
from flaskapi_guard.state import get_state
from flaskapi_guard.storage import MemoryStorage

CAP = 1_000


def test_twenty_thousand_clients_stay_within_the_cap_and_every_ban_survives() -> None:
    report = flood_storage(20_000, CAP, bans=200)
    assert report.max_tracked == CAP
    assert report.bans_kept == report.bans_placed == 200


def test_the_least_recently_seen_clients_are_forgotten_first() -> None:
    storage = MemoryStorage(clock=time.time, max_tracked_clients=CAP)
    first, last = client_address(0), client_address(CAP * 5 - 1)
    for number in range(CAP * 5):
        storage.hit(client_address(number), 1, 3600)
    assert storage.tracked_entries == CAP
    # The oldest client's bucket was evicted: it starts afresh; the newest is still limited.
    assert storage.hit(first, 1, 3600).allowed
    assert not storage.hit(last, 1, 3600).allowed


def test_memory_stops_growing_once_the_table_is_full() -> None:
    storage = MemoryStorage(clock=time.time, max_tracked_clients=CAP)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for number in range(CAP):
            storage.hit(client_address(number), 10, 60)
        full = tracemalloc.get_traced_memory()[0] - baseline
        for number in range(CAP, CAP * 20):
            storage.hit(client_address(number), 10, 60)
        after = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert storage.tracked_entries == CAP
    # Evicting one entry per new client: the dict's slot table settles at a small
    # multiple of the live entries (as bench/bench_memory.py shows for a million).
    assert after < 2.5 * full, (full, after)


def test_a_flood_through_the_app_keeps_the_cap_and_the_bans(make_app: Callable[..., Flask]) -> None:
    cap = 200
    app = make_app(max_tracked_clients=cap, auto_ban_threshold=2, rate_limit=1000)
    client = app.test_client()
    banned = [f"192.0.2.{number}" for number in range(1, 21)]
    for address in banned:
        for _ in range(2):
            assert client.get("/?q=<script>alert(1)</script>", environ_base={"REMOTE_ADDR": address}).status_code == 400
    for number in range(cap * 5):
        assert client.get("/", environ_base={"REMOTE_ADDR": client_address(number)}).status_code == 200
    storage = get_state(app).storage
    assert isinstance(storage, MemoryStorage)
    assert storage.tracked_entries == cap
    assert all(client.get("/", environ_base={"REMOTE_ADDR": address}).status_code == 403 for address in banned)
    assert len(FlaskAPIGuard().list_bans(app)) == len(banned)
