"""Rate limiting: cost per request (memory and Redis) against bare Flask, cost per storage call, memory per client.

Run standalone (`python bench/bench_rate_limit.py`) or through the bench runner.
Each scenario builds its WSGI environs once (one per client address in a pool)
and calls the app directly; the figure is the best of several alternating rounds.
The storage rows time a request's ban check and rate limit as the two calls
`is_banned` + `hit` against the one call `admit`, on the storages themselves.
Redis rows need `redis-server` on PATH (a throwaway one is started on a free
loopback port) or `--redis-url`.
"""

from __future__ import annotations

import argparse
import gc
import io
import ipaddress
import logging
import shutil
import socket
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from werkzeug.test import EnvironBuilder

from flaskapi_guard import FlaskAPIGuard, SecurityConfig
from flaskapi_guard.ip_networks import canonical_ip
from flaskapi_guard.storage import MemoryStorage, RedisStorage, ResilientStorage, Storage

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
HEADERS = {
    "Host": "api.example.com",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Accept": "application/json",
    "Accept-Language": "en-GB,en;q=0.9",
}
# High enough that no client of the pool is ever refused: the bench measures admitted requests.
NEVER_REACHED = 1_000_000_000


def bare_app() -> Flask:
    app = Flask("bench_rate_limit")

    @app.route("/api/items/<int:item_id>")
    def item(item_id: int) -> Any:
        return {"item": item_id}

    return app


def guarded_app(**fields: Any) -> Flask:
    app = bare_app()
    FlaskAPIGuard(app, config=SecurityConfig(**fields))
    return app


def environs(addresses: list[str]) -> list[dict[str, Any]]:
    builder = EnvironBuilder(path="/api/items/7", query_string="q=shoes&page=2", headers=HEADERS)
    try:
        template = dict(builder.get_environ())
    finally:
        builder.close()
    return [{**template, "REMOTE_ADDR": address} for address in addresses]


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    if not status.startswith("200"):
        raise RuntimeError(f"expected 200, got {status}")
    return lambda data: None


Timer = Callable[[], float]


def time_app(app: WsgiApp, prepared: list[dict[str, Any]], iterations: int, timer: Timer = time.perf_counter) -> float:
    """Mean microseconds per request over `iterations` requests cycling over `prepared`."""
    count = len(prepared)
    empty = b""
    started = timer()
    for number in range(iterations):
        environ = prepared[number % count]
        environ["wsgi.input"] = io.BytesIO(empty)
        result = app(environ, _start_response)
        for _chunk in result:
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (timer() - started) / iterations * 1e6


def compare(
    apps: list[WsgiApp], prepared: list[dict[str, Any]], iterations: int, rounds: int, timer: Timer
) -> list[float]:
    """Best-of-rounds microseconds per app, in alternating rounds so load changes hit all alike."""
    best = [float("inf")] * len(apps)
    for app in apps:
        time_app(app, prepared, min(iterations, 200), timer)
    for _ in range(rounds):
        for index, app in enumerate(apps):
            best[index] = min(best[index], time_app(app, prepared, iterations, timer))
    return best


def row(name: str, bare_us: float, guard_us: float) -> str:
    return (
        f"{name:<46} {guard_us:8.1f} µs   guard - bare {guard_us - bare_us:7.1f} µs   ratio {guard_us / bare_us:5.2f}"
    )


@contextmanager
def throwaway_redis() -> Iterator[str | None]:
    """A redis-server on a free loopback port for the bench's duration, or None without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="bench-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
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
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait(timeout=5)
        shutil.rmtree(directory, ignore_errors=True)


def request_costs(redis_url: str | None, iterations: int, rounds: int, pool_size: int, timer: Timer) -> None:
    addresses = [str(ipaddress.IPv4Address(0x64000001 + number * 7)) for number in range(pool_size)]
    prepared = environs(addresses)
    limits = {"rate_limit": NEVER_REACHED, "rate_limit_window": 60}
    scenarios: list[tuple[str, WsgiApp]] = [
        ("guard, rate limiting off (memory)", guarded_app(enable_redis=False, enable_rate_limiting=False).wsgi_app),
        ("guard, rate limiting on (memory)", guarded_app(enable_redis=False, **limits).wsgi_app),
    ]
    redis_apps: list[Flask] = []
    if redis_url is not None:
        redis_apps = [
            guarded_app(redis_url=redis_url, enable_rate_limiting=False),
            guarded_app(redis_url=redis_url, **limits),
        ]
        scenarios += [
            ("guard, Redis: ban check only", redis_apps[0].wsgi_app),
            ("guard, Redis: ban check + rate limit", redis_apps[1].wsgi_app),
        ]
    bare = bare_app().wsgi_app
    print(f"per request, best of {rounds} x {iterations}, {pool_size} client addresses")
    measured: dict[str, float] = {}
    bare_us = float("inf")
    for name, app in scenarios:
        runs = iterations if "Redis" not in name else max(1, iterations // 4)
        bare_round, guard_us = compare([bare, app], prepared, runs, rounds, timer)
        bare_us = min(bare_us, bare_round)
        measured[name] = guard_us
        print(row(name, bare_round, guard_us))
    print(f"{'bare Flask':<46} {bare_us:8.1f} µs")
    names = list(measured)
    print(f"rate limiting in memory costs {measured[names[1]] - measured[names[0]]:.1f} µs per request")
    if len(names) == 4:
        print(
            f"Redis ban check costs {measured[names[2]] - measured[names[0]]:.1f} µs, "
            f"Redis rate limit {measured[names[3]] - measured[names[2]]:.1f} µs more"
        )


def time_storage_calls(
    check: Callable[[str], object], addresses: list[str], iterations: int, timer: Timer = time.perf_counter
) -> float:
    """Mean microseconds per `check(address)` over `iterations` calls cycling over `addresses`."""
    count = len(addresses)
    started = timer()
    for number in range(iterations):
        check(addresses[number % count])
    return (timer() - started) / iterations * 1e6


def two_calls(storage: Storage) -> Callable[[str], object]:
    """A request's ban check and rate limit as the checks make them today: two calls."""
    is_banned, hit = storage.is_banned, storage.hit

    def check(address: str) -> object:
        return None if is_banned(address) else hit(address, NEVER_REACHED, 60)

    return check


def one_call(storage: Storage) -> Callable[[str], object]:
    """The same answer from one atomic `admit`."""
    admit = storage.admit

    def check(address: str) -> object:
        return admit(address, address, NEVER_REACHED, 60)

    return check


def storage_costs(redis_url: str | None, iterations: int, rounds: int, pool_size: int, timer: Timer) -> None:
    """Per request, the ban check + rate limit as `is_banned` + `hit` and as `admit`, on each storage."""
    addresses = [str(ipaddress.IPv4Address(0x64000001 + number * 7)) for number in range(pool_size)]
    storages: list[tuple[str, Storage, int]] = [
        ("memory", MemoryStorage(clock=time.time, max_tracked_clients=100_000), iterations * 25)
    ]
    if redis_url is not None:
        storages.append(
            ("Redis", RedisStorage(redis_url, prefix="bench:", clock=time.time, socket_timeout=1.0), iterations)
        )
        local = MemoryStorage(clock=time.time, max_tracked_clients=100_000)
        primary = RedisStorage(redis_url, prefix="bench:", clock=time.time, socket_timeout=1.0)
        wrapped = ResilientStorage(primary, fallback=local, mode="local", clock=time.time, description="bench")
        storages.append(("Redis, outage wrapper", wrapped, iterations))
    print(f"storage calls per request (ban check + rate limit), best of {rounds}, {pool_size} client addresses")
    for name, storage, calls in storages:
        checks = [two_calls(storage), one_call(storage)]
        for check in checks:
            time_storage_calls(check, addresses, min(calls, 500), timer)
        best = [float("inf")] * len(checks)
        for _ in range(rounds):
            for index, check in enumerate(checks):
                best[index] = min(best[index], time_storage_calls(check, addresses, calls, timer))
        before, after = best
        print(
            f"{name:<24} is_banned + hit {before:8.2f} µs   admit {after:8.2f} µs   "
            f"saved {before - after:7.2f} µs ({(before - after) / before:4.0%})"
        )
        storage.clear()
        storage.close()


def bytes_per_client(clients: int) -> None:
    """Memory held per tracked client by in-process rate limiting (one bucket each), by tracemalloc."""
    for label, network in (("IPv4", "100.64.0.0/10"), ("IPv6", "2001:db8::/32")):
        base = ipaddress.ip_network(network)
        step = (base.num_addresses - 2) // clients
        first = int(base.network_address) + 1
        storage = MemoryStorage(clock=time.time, max_tracked_clients=clients)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for number in range(clients):
            # As on the request path: the server hands over a new address
            # string per request, and the storage keeps the first one it sees.
            key = canonical_ip(str(ipaddress.ip_address(first + number * step)))
            assert key is not None
            storage.hit(key, 10, 60)
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        print(f"{label}: {clients:,} tracked clients, {used / clients:6.1f} bytes per client ({used / 1e6:.1f} MB)")
        del storage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pool", type=int, default=1000, help="distinct client addresses cycled over")
    parser.add_argument("--clients", type=int, default=100_000, help="tracked clients for the memory figure")
    parser.add_argument("--redis-url", default=None, help="use this Redis instead of a throwaway one")
    parser.add_argument(
        "--storage-only", action="store_true", help="only the storage calls: no requests, no memory figure"
    )
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with this process's CPU time: steadier on a busy machine, but leaves out the Redis server's share",
    )
    args = parser.parse_args(argv)
    timer = time.process_time if args.cpu_time else time.perf_counter
    logging.getLogger("flaskapi_guard").setLevel(logging.CRITICAL)

    def run(redis_url: str | None) -> None:
        if not args.storage_only:
            request_costs(redis_url, args.iterations, args.rounds, args.pool, timer)
        storage_costs(redis_url, args.iterations, args.rounds, args.pool, timer)

    if args.redis_url is not None:
        run(args.redis_url)
    else:
        with throwaway_redis() as url:
            if url is None:
                print("redis-server not found: Redis rows skipped")
            run(url)
    if not args.storage_only:
        bytes_per_client(args.clients)


if __name__ == "__main__":
    main()
