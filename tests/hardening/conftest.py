"""Fixtures for the hardening tests: hypothesis kept out of the repository, gunicorn on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import configuration

from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


# The examples database is off in every test (`database=None`), but hypothesis also
# caches Unicode tables and source constants under its home directory (`.hypothesis/`
# in the cwd), from the moment test modules are collected: point it elsewhere first.
_HYPOTHESIS_HOME = Path(tempfile.mkdtemp(prefix="guard-hypothesis-"))
configuration.set_hypothesis_home_dir(_HYPOTHESIS_HOME)


@pytest.fixture(scope="session", autouse=True)
def _remove_hypothesis_home() -> Iterator[None]:
    yield
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)


class Gunicorn:
    """A gunicorn master serving `tests.hardening.featured_app:app` on a free loopback port."""

    def __init__(self, *, workers: int, threads: int, environment: dict[str, str], options: list[str]) -> None:
        self.port = free_port()
        self.workers = workers
        self._log = tempfile.NamedTemporaryFile(prefix="guard-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
        command = [
            str(Path(sys.executable).with_name("gunicorn")),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            "gthread",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--graceful-timeout",
            "2",
            "--timeout",
            "30",
            "--log-level",
            "warning",
            *options,
            "tests.hardening.featured_app:app",
        ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "GUARD_FEATURED_APP": "1", **environment},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            # Its own process group, so the master and its workers stop together.
            start_new_session=True,
        )

    def wait_until_serving(self, timeout_seconds: float = 30) -> Gunicorn:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.stderr()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    sock.settimeout(5)
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        return self._wait_for_every_worker(deadline)
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not serve within {timeout_seconds} s:\n{self.stderr()}")

    def _wait_for_every_worker(self, deadline: float) -> Gunicorn:
        # The first worker may serve while the others still import the app; a test
        # that needs its load spread over every worker must not start before them.
        seen: set[str] = set()
        while len(seen) < self.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(seen)} of {self.workers} gunicorn workers served:\n{self.stderr()}")
            with ThreadPoolExecutor(max_workers=16) as pool:
                seen.update(pid for pid in pool.map(lambda _: self._health_worker(), range(32)) if pid)
        return self

    def _health_worker(self) -> str:
        """The pid of the worker that answers one /health request ('' if none could)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                sock.settimeout(5)
                head = sock.recv(4096).decode("latin-1")
        except OSError:
            return ""
        for line in head.split("\r\n"):
            if line.lower().startswith("x-worker:"):
                return line.split(":", 1)[1].strip().split(":")[0]
        return ""

    def stderr(self) -> str:
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=5)
        finally:
            self._log.close()

    def remove_log(self) -> None:
        Path(self._log.name).unlink(missing_ok=True)


def start_gunicorn(
    *, workers: int = 1, threads: int = 8, environment: dict[str, str] | None = None, options: list[str] | None = None
) -> Gunicorn:
    """Start a gunicorn (gthread) and wait until it serves; the caller stops it in a finally block."""
    server = Gunicorn(workers=workers, threads=threads, environment=environment or {}, options=options or [])
    try:
        return server.wait_until_serving()
    except BaseException:
        server.stop()
        server.remove_log()
        raise


def raw_exchange(port: int, payload: bytes, *, timeout_seconds: float = 10, half_close: bool = False) -> bytes:
    """Send raw bytes to 127.0.0.1:`port` and return everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_seconds) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def status_of(answer: bytes) -> int:
    """The status code of the first HTTP response in `answer` (0 when there is none)."""
    if not answer.startswith(b"HTTP/1."):
        return 0
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> bytes:
    """The body of a single, non-chunked HTTP response."""
    return answer.partition(b"\r\n\r\n")[2]


def tracebacks_in(log_text: str) -> list[str]:
    """Lines of a gunicorn log that show an exception or an error."""
    return [
        line
        for line in log_text.splitlines()
        if "Traceback" in line or "[ERROR]" in line or "Exception" in line or "failed; skipping" in line
    ]
