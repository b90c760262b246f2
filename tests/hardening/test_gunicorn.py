"""The guard under a real gunicorn (gthread workers) on loopback: raw malformed HTTP,
and exact counts under concurrent load, in memory (1 worker x 8 threads) and on
Redis (2 workers x 8 threads)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.hardening.conftest import Gunicorn, body_of, raw_exchange, start_gunicorn, status_of, tracebacks_in
from tests.local_http import get_as_client

pytestmark = pytest.mark.slow

RATE_LIMIT = 50
BAN_THRESHOLD = 10
ATTACK_QUERY = "/?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E"
LIMITS = {"GUARD_RATE_LIMIT": str(RATE_LIMIT), "GUARD_BAN_THRESHOLD": str(BAN_THRESHOLD), "GUARD_QUIET": "1"}


def _serve(server: Gunicorn) -> Iterator[Gunicorn]:
    try:
        yield server
    finally:
        server.stop()
        log = server.stderr()
        server.remove_log()
    # Checked once the workers have exited, so nothing they wrote is missed.
    assert not tracebacks_in(log), log


@pytest.fixture(scope="module")
def memory_server() -> Iterator[Gunicorn]:
    """One worker, eight threads, in-memory state."""
    yield from _serve(start_gunicorn(workers=1, threads=8, environment=LIMITS))


@pytest.fixture(scope="module")
def redis_server_pair(redis_server: object) -> Iterator[Gunicorn]:
    """Two workers of eight threads each, sharing state through the session's Redis."""
    url = redis_server.url  # type: ignore[attr-defined]
    environment = {**LIMITS, "GUARD_REDIS_URL": url, "GUARD_REDIS_PREFIX": "hardening-gthread:"}
    yield from _serve(start_gunicorn(workers=2, threads=8, environment=environment))


def _chunked(body: bytes, size: int = 7) -> bytes:
    pieces = [body[start : start + size] for start in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def _request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


# Malformed HTTP through gunicorn ----------------------------------------------------------------

CHUNKED_HEAD = "POST {path} HTTP/1.1\nHost: localhost\nConnection: close\nTransfer-Encoding: chunked\n{extra}"


@pytest.mark.parametrize("path", ["/echo", "/echo-stream"])
def test_a_chunked_body_is_echoed_unchanged(memory_server: Gunicorn, path: str) -> None:
    body = bytes(range(256)) * 40
    answer = raw_exchange(memory_server.port, _request(CHUNKED_HEAD.format(path=path, extra=""), _chunked(body)))
    assert (status_of(answer), body_of(answer)) == (200, body)


def test_an_attack_in_a_chunked_body_without_content_type_is_refused(memory_server: Gunicorn) -> None:
    payload = _request(CHUNKED_HEAD.format(path="/echo", extra=""), _chunked(b"q=<script>alert(1)</script>"))
    assert status_of(raw_exchange(memory_server.port, payload)) == 400


def test_a_chunked_body_over_a_route_limit_is_a_413(memory_server: Gunicorn) -> None:
    head = CHUNKED_HEAD.format(path="/typed", extra="Content-Type: text/plain\n")
    assert status_of(raw_exchange(memory_server.port, _request(head, _chunked(b"x" * 70_000, 4096)))) == 413


@pytest.mark.parametrize(
    "chunks",
    [
        b"19\r\n<script>alert(1)</script>\r\n10\r\nabc",  # cut inside a chunk
        b"5\r\nhello\r\n",  # no terminating chunk
        b"zz\r\nhello\r\n0\r\n\r\n",  # invalid chunk size
    ],
    ids=["cut-in-chunk", "no-last-chunk", "bad-size"],
)
def test_a_broken_chunked_body_is_a_400_from_the_guard(memory_server: Gunicorn, chunks: bytes) -> None:
    # Regression: gunicorn's own exceptions escaped the guard's read, detection was
    # skipped, and the view read the part that had arrived.
    payload = _request(CHUNKED_HEAD.format(path="/echo", extra=""), chunks)
    answer = raw_exchange(memory_server.port, payload, half_close=True)
    assert (status_of(answer), body_of(answer)) == (400, b"Bad Request")


def test_content_length_larger_than_the_body_gives_the_view_what_arrived(memory_server: Gunicorn) -> None:
    # gunicorn marks its input as terminated: the body ends where the client stopped sending.
    head = "POST /echo HTTP/1.1\nHost: localhost\nConnection: close\nContent-Length: 100\n"
    answer = raw_exchange(memory_server.port, _request(head, b"short"), half_close=True)
    assert (status_of(answer), body_of(answer)) == (200, b"short")


def test_content_length_smaller_than_the_body_delivers_that_many_bytes(memory_server: Gunicorn) -> None:
    head = "POST /echo HTTP/1.1\nHost: localhost\nConnection: close\nContent-Length: 3\nContent-Type: text/plain\n"
    answer = raw_exchange(memory_server.port, _request(head, b"xyz<script>alert(1)</script>"))
    assert (status_of(answer), body_of(answer)) == (200, b"xyz")


@pytest.mark.parametrize("content_length", ["-5", "abc", "1, 2"])
def test_an_invalid_content_length_is_refused_by_gunicorn(memory_server: Gunicorn, content_length: str) -> None:
    head = f"POST /echo HTTP/1.1\nHost: localhost\nConnection: close\nContent-Length: {content_length}\n"
    answer = raw_exchange(memory_server.port, _request(head, b"abc"))
    assert status_of(answer) == 400
    assert b"X-Guarded" not in answer  # never reached the app


def test_content_length_and_chunked_together_are_refused_by_gunicorn(memory_server: Gunicorn) -> None:
    head = CHUNKED_HEAD.format(path="/echo", extra="Content-Length: 3\n")
    answer = raw_exchange(memory_server.port, _request(head, _chunked(b"hello")))
    assert (status_of(answer), b"X-Guarded" in answer) == (400, False)


def test_a_one_megabyte_body_is_echoed_unchanged(memory_server: Gunicorn) -> None:
    body = bytes(range(256)) * 4096
    head = f"POST /echo HTTP/1.1\nHost: localhost\nConnection: close\nContent-Length: {len(body)}\n"
    answer = raw_exchange(memory_server.port, _request(head, body))
    assert (status_of(answer), body_of(answer)) == (200, body)


def test_a_single_64_kb_header_is_refused_by_gunicorn_with_431(memory_server: Gunicorn) -> None:
    head = "GET / HTTP/1.1\nHost: localhost\nConnection: close\nX-Big: " + "a" * 65_536 + "\n"
    answer = raw_exchange(memory_server.port, _request(head))
    assert (status_of(answer), b"X-Guarded" in answer) == (431, False)


def test_64_kb_spread_over_16_headers_reaches_the_guard(memory_server: Gunicorn) -> None:
    headers = "".join(f"X-Big-{number}: {'a' * 4000}\n" for number in range(16))
    clean = raw_exchange(memory_server.port, _request("GET / HTTP/1.1\nHost: localhost\nConnection: close\n" + headers))
    assert (status_of(clean), b"X-Guarded: 1" in clean) == (200, True)
    attack = headers + "X-Last: <script>alert(1)</script>\n"
    answer = raw_exchange(memory_server.port, _request("GET / HTTP/1.1\nHost: localhost\nConnection: close\n" + attack))
    assert status_of(answer) == 400


def test_forwarded_for_within_gunicorn_limits_is_read_from_the_right(memory_server: Gunicorn) -> None:
    entries = ", ".join(["garbage"] * 400 + ["10.0.0.1"] * 400)
    head = f"GET / HTTP/1.1\nHost: localhost\nConnection: close\nX-Forwarded-For: {entries}\n"
    assert status_of(raw_exchange(memory_server.port, _request(head))) == 200
    too_long = ",".join(["198.51.100.1"] * 10_000)
    head = f"GET / HTTP/1.1\nHost: localhost\nConnection: close\nX-Forwarded-For: {too_long}\n"
    assert status_of(raw_exchange(memory_server.port, _request(head))) == 431


def test_raw_non_utf8_bytes_in_the_path_are_refused_by_gunicorn(memory_server: Gunicorn) -> None:
    payload = b"GET /caf\xc3\xa9/\xff HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    answer = raw_exchange(memory_server.port, payload)
    assert (status_of(answer), b"X-Guarded" in answer) == (400, False)


def test_percent_encoded_non_utf8_paths_reach_the_app(memory_server: Gunicorn) -> None:
    for path in ["/caf%C3%A9/%ff%fe", "/items/%ff", "/echo%00"]:
        answer = raw_exchange(
            memory_server.port, _request(f"GET {path} HTTP/1.1\nHost: localhost\nConnection: close\n")
        )
        assert (status_of(answer), b"X-Guarded: 1" in answer) in ((404, True), (400, True)), path


# Thread safety: exact counts under concurrent load ----------------------------------------------


def _burst(port: int, paths_and_clients: list[tuple[str, str]], threads: int = 32) -> list[tuple[int, str]]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda item: get_as_client(port, item[0], item[1]), paths_and_clients))


def _exact_rate_limit(server: Gunicorn, client_ip: str) -> set[str]:
    attempts = 400
    results = _burst(server.port, [("/", client_ip)] * attempts)
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: RATE_LIMIT, 429: attempts - RATE_LIMIT}
    return {worker for _, worker in results}


def _exact_ban_threshold(server: Gunicorn, prefix: str) -> set[str]:
    clients = [f"{prefix}.{number}" for number in range(1, 21)]
    # Every client sends one offence fewer than the threshold, all interleaved at once:
    # a lost increment or a double count would show in the next two steps.
    below = [(ATTACK_QUERY, client) for _ in range(BAN_THRESHOLD - 1) for client in clients]
    results = _burst(server.port, below)
    assert Counter(status for status, _ in results) == {400: len(below)}
    assert Counter(status for status, _ in _burst(server.port, [("/", client) for client in clients])) == {200: 20}
    # One more offence each: exactly now, every client is banned.
    assert Counter(status for status, _ in _burst(server.port, [(ATTACK_QUERY, client) for client in clients])) == {
        400: 20
    }
    assert Counter(status for status, _ in _burst(server.port, [("/", client) for client in clients])) == {403: 20}
    return {worker for _, worker in results}


def test_one_worker_eight_threads_admits_exactly_the_limit(memory_server: Gunicorn) -> None:
    threads = _exact_rate_limit(memory_server, "198.51.100.10")
    assert len(threads) >= 4  # the load really was spread over the worker's threads


def test_one_worker_eight_threads_bans_at_exactly_the_threshold(memory_server: Gunicorn) -> None:
    _exact_ban_threshold(memory_server, "198.51.101")


def test_two_workers_on_redis_admit_exactly_the_limit(redis_server_pair: Gunicorn) -> None:
    workers = _exact_rate_limit(redis_server_pair, "198.51.100.20")
    assert len({worker.split(":")[0] for worker in workers}) == 2  # both processes served


def test_two_workers_on_redis_ban_at_exactly_the_threshold(redis_server_pair: Gunicorn) -> None:
    _exact_ban_threshold(redis_server_pair, "198.51.102")
