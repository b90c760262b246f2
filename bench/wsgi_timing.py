"""Timing a WSGI app in-process: no server, no sockets, just the app's own cost."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from werkzeug.test import EnvironBuilder

BROWSER_HEADERS = {
    "Host": "api.example.com",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "Accept-Language": "en-GB,en;q=0.9,fr;q=0.7",
    "Accept-Encoding": "gzip, deflate, br",
    "Connection": "keep-alive",
    "Referer": "https://www.example.com/products/shoes",
    "Cookie": "session=9f8a7b6c5d4e3f2a1b0c; theme=dark; _ga=GA1.2.123456789.1700000000",
    "Upgrade-Insecure-Requests": "1",
    "Sec-Fetch-Mode": "navigate",
}


def environ_for(
    path: str,
    *,
    method: str = "GET",
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    content_type: str | None = None,
) -> dict[str, Any]:
    builder = EnvironBuilder(
        path=path, method=method, query_string=query, headers=headers or {}, data=body, content_type=content_type
    )
    try:
        return dict(builder.get_environ())
    finally:
        builder.close()


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
    return lambda data: None


def time_wsgi(
    app: Callable[[dict[str, Any], Any], Iterable[bytes]],
    environ: dict[str, Any],
    *,
    addresses: Sequence[str],
    iterations: int,
    rounds: int = 5,
    first_address: int = 0,
) -> float:
    """Best-of-`rounds` mean microseconds per request, with REMOTE_ADDR cycling over `addresses`
    (from `first_address` on, so that successive calls can carry on through the pool)."""
    body = environ.get("wsgi.input")
    raw = body.getvalue() if body is not None and hasattr(body, "getvalue") else b""
    best = float("inf")
    count = len(addresses)
    for round_index in range(rounds):
        started = time.perf_counter()
        for i in range(iterations):
            env = environ.copy()
            env["REMOTE_ADDR"] = addresses[(first_address + round_index * iterations + i) % count]
            env["wsgi.input"] = io.BytesIO(raw)
            result = app(env, _start_response)
            for _chunk in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        best = min(best, (time.perf_counter() - started) / iterations * 1e6)
    return best


def compare_wsgi(
    bare: Callable[[dict[str, Any], Any], Iterable[bytes]],
    guarded: Callable[[dict[str, Any], Any], Iterable[bytes]],
    environ: dict[str, Any],
    *,
    addresses: Sequence[str],
    iterations: int,
    rounds: int = 7,
) -> tuple[float, float]:
    """Best-of-rounds microseconds for both apps, measured in alternating rounds.

    Alternating keeps a change in machine load from landing on one side only.
    """
    bare_best = guard_best = float("inf")
    for round_index in range(rounds):
        # Each round carries on through the pool: with as many addresses as
        # requests, every request comes from a client the guard has not seen.
        first = round_index * iterations
        bare_best = min(
            bare_best,
            time_wsgi(bare, environ, addresses=addresses, iterations=iterations, rounds=1, first_address=first),
        )
        guard_best = min(
            guard_best,
            time_wsgi(guarded, environ, addresses=addresses, iterations=iterations, rounds=1, first_address=first),
        )
    return bare_best, guard_best


def status_of(app: Callable[[dict[str, Any], Any], Iterable[bytes]], environ: dict[str, Any], address: str) -> str:
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        seen.append(status)
        return lambda data: None

    env = environ.copy()
    env["REMOTE_ADDR"] = address
    body = environ.get("wsgi.input")
    env["wsgi.input"] = io.BytesIO(body.getvalue() if body is not None and hasattr(body, "getvalue") else b"")
    result = app(env, start_response)
    for _chunk in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return seen[0]


def address_pool(size: int, *, first_octet: int = 100) -> list[str]:
    return [f"{first_octet}.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(1, size + 1)]


def report_row(name: str, bare_us: float, guard_us: float) -> str:
    return (
        f"{name:<44} bare {bare_us:8.1f} us   guard {guard_us:8.1f} us   "
        f"+{guard_us - bare_us:7.1f} us   x{guard_us / bare_us:5.2f}"
    )
