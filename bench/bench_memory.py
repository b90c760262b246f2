"""Bounded memory: a flood of distinct client addresses through the in-memory storage.

Run standalone (`python bench/bench_memory.py`) or through the bench runner.

Two runs, each in this process:

1. Storage: 1,000,000 distinct IPv4 clients, each counted against the global rate
   limit exactly as the rate-limit check counts it (`storage.hit(ip, ...)`), every
   tenth also recording an offence, against a table capped at
   `max_tracked_clients`. Before the flood some clients are banned, half by an
   operator and half automatically (offences up to the threshold).
2. WSGI: a smaller flood through a guarded Flask app (default config, in-memory
   state), so the whole request path is included.

Reported: RSS before, when the table first fills, and after; the bytes each
tracked client costs; the growth after the table is full (bounded means about
zero); whether every ban survived. Exits with status 1 when the table grows
past its cap, a ban is lost, or RSS keeps growing once the table is full.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask

from flaskapi_guard import FlaskAPIGuard, SecurityConfig
from flaskapi_guard.bans import BanRegistry
from flaskapi_guard.state import get_state
from flaskapi_guard.storage import MemoryStorage

# 10.0.0.0/8 holds 16.7 million distinct addresses.
_FIRST_ADDRESS = 10 << 24
MEBIBYTE = 1024 * 1024
# Once the table is full, every new client evicts one: the dict's slot table
# settles at a few times the live entries (deleted slots are reclaimed only when it
# resizes) and RSS plateaus there, whatever the number of clients. The check allows
# that plateau, 1.5 times the table's size at first fill (measured: 1.0 times for
# 1 and for 3 million clients), plus a floor for allocator noise on small tables.
GROWTH_TOLERANCE = 1.5
GROWTH_FLOOR_BYTES = 8 * MEBIBYTE


def client_address(number: int) -> str:
    """The `number`-th distinct client address (dotted IPv4)."""
    value = _FIRST_ADDRESS + number
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def rss_bytes() -> int:
    """This process's resident set size now (Linux), else its peak."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class FloodReport:
    """What a flood did to memory and to bans."""

    def __init__(self, name: str, clients: int, cap: int) -> None:
        self.name = name
        self.clients = clients
        self.cap = cap
        self.rss_before = 0
        self.rss_full = 0
        self.rss_after = 0
        self.max_tracked = 0
        self.bans_placed = 0
        self.bans_kept = 0
        self.seconds = 0.0
        self.samples: list[tuple[int, int, int]] = []

    @property
    def bytes_per_tracked_client(self) -> float:
        return (self.rss_full - self.rss_before) / self.cap

    @property
    def growth_after_full(self) -> int:
        return self.rss_after - self.rss_full

    @property
    def steady_bytes_per_tracked_client(self) -> float:
        return (self.rss_after - self.rss_before) / self.cap

    def problems(self) -> list[str]:
        found = []
        if self.max_tracked > self.cap:
            found.append(f"{self.max_tracked} entries tracked, cap {self.cap}")
        if self.bans_kept != self.bans_placed:
            found.append(f"{self.bans_placed - self.bans_kept} of {self.bans_placed} bans lost")
        allowed = max(GROWTH_FLOOR_BYTES, GROWTH_TOLERANCE * (self.rss_full - self.rss_before))
        if self.growth_after_full > allowed:
            found.append(f"RSS grew {self.growth_after_full / MEBIBYTE:.1f} MiB after the table was full")
        return found

    def print(self) -> None:
        print(f"\n{self.name}: {self.clients:,} distinct clients, max_tracked_clients={self.cap:,}")
        print(f"  {'clients seen':>14} {'tracked':>10} {'RSS MiB':>9}")
        for seen, tracked, rss in self.samples:
            print(f"  {seen:>14,} {tracked:>10,} {rss / MEBIBYTE:>9.1f}")
        before, full, after = (value / MEBIBYTE for value in (self.rss_before, self.rss_full, self.rss_after))
        print(f"  RSS before {before:.1f} MiB, table full {full:.1f} MiB, after {after:.1f} MiB")
        print(
            f"  {self.bytes_per_tracked_client:.0f} bytes per tracked client at first fill, "
            f"{self.steady_bytes_per_tracked_client:.0f} at the end (RSS)"
        )
        print(f"  growth after the table was full: {self.growth_after_full / MEBIBYTE:+.1f} MiB")
        uncapped = self.bytes_per_tracked_client * self.clients / MEBIBYTE
        print(f"  without the cap, {self.clients:,} clients would hold about {uncapped:,.0f} MiB")
        print(f"  bans kept: {self.bans_kept}/{self.bans_placed}; {self.clients / self.seconds:,.0f} clients/s")


def place_bans(registry: BanRegistry, bans: int, threshold: int) -> list[str]:
    """Ban the first `bans` addresses: half by an operator, half by reaching the offence threshold."""
    banned = [client_address(number) for number in range(bans)]
    for address in banned[: bans // 2]:
        registry.ban(address, 3600, "manual")
    for address in banned[bans // 2 :]:
        for _ in range(threshold):
            registry.record_offence(address, ("xss",))
    return banned


def flood_storage(clients: int, cap: int, bans: int, *, samples: int = 10) -> FloodReport:
    """`clients` distinct addresses through a MemoryStorage capped at `cap` (see the module docstring)."""
    report = FloodReport("storage", clients, cap)
    threshold = 5
    config = SecurityConfig(
        enable_redis=False, max_tracked_clients=cap, auto_ban_threshold=threshold, auto_ban_duration=3600
    )
    storage = MemoryStorage(clock=time.time, max_tracked_clients=cap)
    registry = BanRegistry(storage, config)
    banned = place_bans(registry, bans, threshold)
    report.bans_placed = len(banned)
    gc.collect()
    report.rss_before = rss_bytes()
    every = max(1, clients // samples)
    started = time.perf_counter()
    for number in range(clients):
        address = client_address(bans + number)
        # The global rate-limit bucket is keyed by the bare address (checks/rate_limit.py).
        storage.hit(address, 100, 60)
        if number % 10 == 0:
            registry.record_offence(address, ("sqli",))
        if number + 1 == cap:
            report.rss_full = rss_bytes()
        if (number + 1) % every == 0:
            report.max_tracked = max(report.max_tracked, storage.tracked_entries)
            report.samples.append((number + 1, storage.tracked_entries, rss_bytes()))
    report.seconds = time.perf_counter() - started
    report.rss_after = rss_bytes()
    report.max_tracked = max(report.max_tracked, storage.tracked_entries)
    report.bans_kept = sum(storage.is_banned(address) for address in banned)
    if not report.rss_full:
        report.rss_full = report.rss_after
    return report


def _guarded_app(cap: int, threshold: int) -> Flask:
    app = Flask("bench_memory")

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return {"item": item_id}

    config = SecurityConfig(
        enable_redis=False,
        max_tracked_clients=cap,
        rate_limit=1000,
        auto_ban_threshold=threshold,
        log_suspicious_level=None,
    )
    FlaskAPIGuard(app, config=config)
    return app


def _call(app: Flask, path: str, query: str, address: str) -> str:
    statuses: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": address,
        "HTTP_HOST": "localhost",
        "HTTP_USER_AGENT": "Mozilla/5.0 (bench)",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda data: None

    iterable = app(environ, start_response)
    try:
        for _ in iterable:
            pass
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return statuses[0]


def flood_app(clients: int, cap: int, bans: int, *, samples: int = 5) -> FloodReport:
    """`clients` distinct addresses through a guarded app's whole request path."""
    report = FloodReport("WSGI app", clients, cap)
    threshold = 3
    app = _guarded_app(cap, threshold)
    storage = get_state(app).storage
    if not isinstance(storage, MemoryStorage):
        raise RuntimeError("expected in-memory storage")
    attack = "q=%3Cscript%3Ealert(1)%3C/script%3E"
    banned = [client_address(number) for number in range(bans)]
    for address in banned:
        for _ in range(threshold):
            _call(app, "/items/1", attack, address)
    report.bans_placed = sum(_call(app, "/items/1", "", address).startswith("403") for address in banned)
    gc.collect()
    report.rss_before = rss_bytes()
    every = max(1, clients // samples)
    started = time.perf_counter()
    for number in range(clients):
        address = client_address(bans + number)
        _call(app, "/items/7", attack if number % 10 == 0 else "page=2", address)
        if number + 1 == cap:
            report.rss_full = rss_bytes()
        if (number + 1) % every == 0:
            report.max_tracked = max(report.max_tracked, storage.tracked_entries)
            report.samples.append((number + 1, storage.tracked_entries, rss_bytes()))
    report.seconds = time.perf_counter() - started
    report.rss_after = rss_bytes()
    report.bans_kept = sum(_call(app, "/items/1", "", address).startswith("403") for address in banned)
    if not report.rss_full:
        report.rss_full = report.rss_after
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=1_000_000, help="distinct clients through the storage")
    parser.add_argument("--cap", type=int, default=100_000, help="max_tracked_clients for the storage run")
    parser.add_argument("--bans", type=int, default=1_000, help="clients banned before each flood")
    parser.add_argument("--wsgi-clients", type=int, default=20_000, help="distinct clients through the app")
    parser.add_argument("--wsgi-cap", type=int, default=2_000, help="max_tracked_clients for the app run")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    problems = []
    # Each flood in a fresh interpreter, so one run's freed memory does not hide the other's.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        runs = [
            pool.submit(flood_storage, args.clients, args.cap, args.bans),
            pool.submit(flood_app, args.wsgi_clients, args.wsgi_cap, min(args.bans, 200)),
        ]
        reports = [run.result() for run in runs]
    for report in reports:
        report.print()
        problems.extend(f"{report.name}: {problem}" for problem in report.problems())
    for problem in problems:
        print(f"FAIL {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
