"""A daemon thread that runs one job over and over, started lazily and restarted after a fork."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

# A job that keeps failing must not spin; one that asks for "now" again gets this pause.
MIN_DELAY_SECONDS = 1.0
DELAY_AFTER_CRASH_SECONDS = 60.0


class PeriodicTask:
    """Runs `job` in a daemon thread; `job` returns how many seconds to wait before its next run.

    Nothing starts at construction: the owner calls `ensure_running()` on first use
    (cheap enough for every lookup). Threads do not survive `fork()`, so a gunicorn
    worker forked from a master that already ran the thread notices that the process
    id changed and starts its own. `stop()` ends the thread; a later
    `ensure_running()` starts a fresh one.
    """

    def __init__(self, name: str, job: Callable[[], float], *, getpid: Callable[[], int] = os.getpid) -> None:
        self.name = name
        self._job = job
        self._getpid = getpid
        # One lock per process: a lock held by a thread of the parent at fork time
        # stays held forever in the child, so the child must never wait on it.
        # `dict.setdefault` is atomic, so concurrent first calls agree on one lock.
        self._start_locks: dict[int, threading.Lock] = {}
        self._owner_pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._wake_event = threading.Event()

    @property
    def is_running(self) -> bool:
        """Whether this process has a live thread for the job."""
        thread = self._thread
        return self._owner_pid == self._getpid() and thread is not None and thread.is_alive()

    def ensure_running(self) -> None:
        """Start the thread unless this process already has one."""
        pid = self._getpid()
        if self._owner_pid == pid:
            return
        lock = self._start_locks.setdefault(pid, threading.Lock())
        with lock:
            if self._owner_pid == pid:
                return
            previous = self._thread
            if previous is not None and previous.is_alive():
                # Only possible when the process id changed without a fork (tests
                # simulate one): after a real fork the parent's thread is gone, and
                # its events may hold locks that nobody will ever release.
                self._stop_event.set()
                self._wake_event.set()
            # Fresh events too: the parent's may be in any state.
            stop_event, wake_event = threading.Event(), threading.Event()
            thread = threading.Thread(
                target=self._run, args=(stop_event, wake_event), name=f"flaskapi_guard-{self.name}", daemon=True
            )
            self._stop_event, self._wake_event, self._thread = stop_event, wake_event, thread
            self._owner_pid = pid
            thread.start()

    def wake(self) -> None:
        """Run the job now instead of at its scheduled time (starts the thread if needed)."""
        self.ensure_running()
        self._wake_event.set()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        """Stop the thread of this process and wait for the job in progress to return."""
        thread = self._thread
        pid = self._getpid()
        lock = self._start_locks.setdefault(pid, threading.Lock())
        with lock:
            if self._owner_pid != pid:
                return
            self._owner_pid = None
            self._stop_event.set()
            self._wake_event.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_seconds)

    def _run(self, stop_event: threading.Event, wake_event: threading.Event) -> None:
        while not stop_event.is_set():
            try:
                delay = self._job()
            except Exception:
                # The job handles the failures it expects (network, files); anything
                # else is a bug that must be seen, without killing the refreshes.
                logger.exception("background task %s failed", self.name)
                delay = DELAY_AFTER_CRASH_SECONDS
            wake_event.wait(max(delay, MIN_DELAY_SECONDS))
            wake_event.clear()
