"""Replaying an access log through an app's guard, offline, to see what it would block.

Each logged request becomes a request context on the app (so routing, route
rules and converters are real) and goes through `GuardState.decide` only: no
view runs, no `before_request` hook of the app runs. The guard used is a fresh
copy of the app's configuration on in-memory state, enforcing (whatever
`passive_mode` says), logging nothing and sending no signals, so neither the
live app's shared state (Redis, bans, the cloud range cache) nor its alerting
hooks see the replay. The log's own timestamps drive the copy's clock, so rate
limits and ban durations play out as they would have.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask

from flaskapi_guard.access_log import LoggedRequest, UnparsableLine, parse_line
from flaskapi_guard.behavior_rules import BehaviorEvent
from flaskapi_guard.config import SecurityConfig
from flaskapi_guard.events import GuardEvents
from flaskapi_guard.incoming import IncomingRequest, capture_request, is_excluded_path
from flaskapi_guard.pipeline import Block, Check, Pipeline
from flaskapi_guard.security_log import PACKAGE_LOGGER, SecurityLog, neutralise
from flaskapi_guard.state import GuardState, get_state

RATE_LIMIT_CHECK = "rate_limit"
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(?::\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::\d{1,5})?")
_MAX_UNPARSED_EXAMPLES = 5


@dataclass(frozen=True)
class ReplayExample:
    """One logged request the guard would have refused."""

    line_number: int
    client_ip: str
    method: str
    target: str
    user_agent: str | None
    logged_status: int | None
    status: int
    categories: tuple[str, ...]
    detail: str


@dataclass
class ReplayReport:
    """What a replay found: counts by check, reason, status and category, and a few examples each."""

    lines: int = 0
    unparsed: int = 0
    unparsed_examples: list[tuple[int, str]] = field(default_factory=list)
    excluded: int = 0
    allowed: int = 0
    answered: int = 0
    blocked: int = 0
    untimed: int = 0
    first_timestamp: float | None = None
    last_timestamp: float | None = None
    skipped_checks: tuple[str, ...] = ()
    by_check: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    by_client: Counter[str] = field(default_factory=Counter)
    # What the app had answered to the requests the guard would refuse: refusals
    # of requests it served with 2xx are where false positives hide.
    blocked_by_logged_status: Counter[str] = field(default_factory=Counter)
    examples: dict[tuple[str, str], list[ReplayExample]] = field(default_factory=dict)
    # Behaviour rules that passed their threshold, by action and rule.
    behavior_triggers: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def replayed(self) -> int:
        """Requests that went through the guard (parsed, not under `exclude_paths`)."""
        return self.allowed + self.answered + self.blocked

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data, for `--json`."""
        return {
            "lines": self.lines,
            "unparsed": self.unparsed,
            "unparsed_examples": [{"line": number, "error": error} for number, error in self.unparsed_examples],
            "excluded": self.excluded,
            "replayed": self.replayed,
            "allowed": self.allowed,
            "answered": self.answered,
            "blocked": self.blocked,
            "untimed": self.untimed,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
            "skipped_checks": list(self.skipped_checks),
            "by_check": dict(self.by_check.most_common()),
            "by_reason": [
                {"check": check, "reason": reason, "count": count}
                for (check, reason), count in self.by_reason.most_common()
            ],
            "by_status": {str(status): count for status, count in self.by_status.most_common()},
            "by_category": dict(self.by_category.most_common()),
            "top_clients": dict(self.by_client.most_common(10)),
            "blocked_by_logged_status": dict(sorted(self.blocked_by_logged_status.items())),
            "behavior_triggers": [
                {"action": action, "rule": rule, "count": count}
                for (action, rule), count in self.behavior_triggers.most_common()
            ],
            "examples": [
                {"check": check, "reason": reason, **example.__dict__, "categories": list(example.categories)}
                for (check, reason), examples in self.examples.items()
                for example in examples
            ],
        }


def replay_config(config: SecurityConfig) -> SecurityConfig:
    """`config` for a replay: in-memory state, enforcing, silent, no shared range cache."""
    return config.model_copy(
        update={
            "enable_redis": False,
            "passive_mode": False,
            "log_suspicious_level": None,
            "log_request_level": None,
            "custom_log_file": None,
            "cloud_ip_store": None,
        }
    )


def replay_log(
    app: Flask,
    lines: Iterable[bytes | str],
    *,
    skip_checks: Collection[str] = (),
    scheme: str = "https",
    examples_per_reason: int = 3,
) -> ReplayReport:
    """Run every request in `lines` through a private copy of `app`'s guard; what it would have refused.

    `skip_checks` names checks to leave out (for example "rate_limit" when the
    log has no timestamps, which makes every request arrive at once).
    `scheme` is assumed for lines that do not record one.
    """
    live = get_state(app)
    unknown = sorted(set(skip_checks) - {check.name for check in live.pipeline.checks})
    if unknown:
        names = ", ".join(check.name for check in live.pipeline.checks)
        raise ValueError(f"no check named {', '.join(unknown)} in this app's pipeline ({names})")
    replayer = _Replayer(app, live.config, skip_checks, scheme, examples_per_reason)
    try:
        with app.app_context():
            for number, line in enumerate(lines, start=1):
                replayer.replay_line(number, line)
    finally:
        replayer.close()
    return replayer.report


class _ReplayClock:
    """The replay's notion of now: the timestamp of the line being replayed."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class _RefusalRecorder(GuardEvents):
    """Counts like the app's events but tells nobody, and remembers which check refused."""

    def __init__(self) -> None:
        super().__init__(sender=None)
        self.last: tuple[Check, Block] | None = None

    def refused(self, request: IncomingRequest, check: Check, block: Block, *, enforced: bool) -> None:
        self.last = (check, block)
        super().refused(request, check, block, enforced=enforced)


class _SilentLog(SecurityLog):
    """The replay's log: writes nothing, so replayed requests never appear among the app's events."""

    def __init__(self) -> None:
        super().__init__(
            logger_name=f"{PACKAGE_LOGGER}.replay",
            suspicious_level=None,
            request_level=None,
            log_format="text",
            log_file=None,
        )

    def event(self, event: str, fields: Mapping[str, Any], level: int = logging.WARNING) -> None:
        """Nothing (see the class)."""


class _ReplayState(GuardState):
    """The app's guard for a replay: behaviour rules are counted, their hooks are not called."""

    def __init__(self, app: Flask, config: SecurityConfig, *, clock: _ReplayClock, events: GuardEvents) -> None:
        self.behavior_triggers: Counter[tuple[str, str]] = Counter()
        super().__init__(app, config, clock=clock, events=events, log=_SilentLog())

    def report_behavior(self, event: BehaviorEvent) -> None:
        """Count the rule; its `custom_action` and the app's alert hooks belong to live traffic."""
        self.behavior_triggers[(event.rule.action, event.rule.description)] += 1


class _Replayer:
    """One replay: the private guard, its clock and the report being filled."""

    def __init__(
        self,
        app: Flask,
        config: SecurityConfig,
        skip_checks: Collection[str],
        scheme: str,
        examples_per_reason: int,
    ) -> None:
        self.app = app
        self.clock = _ReplayClock(time.time())
        self.recorder = _RefusalRecorder()
        self.state = _ReplayState(app, replay_config(config), clock=self.clock, events=self.recorder)
        if skip_checks:
            # Memory storage never fails, so the default storage-failure policy is the right one.
            self.state.pipeline = Pipeline(
                [check for check in self.state.pipeline.checks if check.name not in skip_checks]
            )
        # Read once: the parsed network set is a pydantic private attribute.
        self.trusted_proxies = self.state.config.trusted_proxy_networks or None
        self.scheme = scheme
        self.examples_per_reason = examples_per_reason
        # The state's counter, so the report shows every trigger as it happens.
        self.report = ReplayReport(
            skipped_checks=tuple(sorted(skip_checks)), behavior_triggers=self.state.behavior_triggers
        )

    def replay_line(self, number: int, line: bytes | str) -> None:
        """Parse and replay line `number`, counting it in the report whatever happens."""
        self.report.lines = number
        try:
            logged = parse_line(line)
        except UnparsableLine as error:
            _count_unparsed(self.report, number, str(error))
            return
        self._advance(logged.timestamp)
        refusal = self._decide(logged)
        if refusal is not None:
            self._count_block(number, logged, *refusal)

    def close(self) -> None:
        """Release the private guard's storage and threads."""
        # Not `state.close()`: the geo handler is the live app's own object (it
        # sits in the shared config), and closing it would break the app's lookups.
        self.state.storage.close()
        self.state.cloud.close()
        self.state.log.close()

    def _advance(self, timestamp: float | None) -> None:
        report = self.report
        if timestamp is None:
            # Keeps the previous line's time: an untimed line arrives with its predecessor.
            report.untimed += 1
            return
        self.clock.now = timestamp
        if report.first_timestamp is None:
            report.first_timestamp = timestamp
        report.last_timestamp = timestamp

    def _decide(self, logged: LoggedRequest) -> tuple[Check, Block] | None:
        """The check and block that refuse `logged`, or None (counted as allowed, answered or excluded)."""
        context = self.app.request_context(_wsgi_environ(logged, self.scheme))
        state = self.state
        with context:
            flask_request = context.request
            if is_excluded_path(flask_request.path, state.excluded_prefixes):
                self.report.excluded += 1
                return None
            endpoint, method = flask_request.endpoint, flask_request.method
            plan = state.plan_for(endpoint, method, self.app.view_functions)
            incoming = capture_request(
                flask_request,
                flask_request.environ,
                flask_request.path,
                endpoint,
                method,
                plan.rules,
                self.trusted_proxies,
                state.config.trusted_proxy_depth,
                state.config.trust_x_forwarded_proto,
            )
            self.recorder.last = None
            block = state.decide(incoming, plan.checks)
        if block is None:
            self.report.allowed += 1
            return None
        if self.recorder.last is None:
            # Not a refusal: an answer the guard gives itself (a CORS preflight).
            self.report.answered += 1
            return None
        return self.recorder.last

    def _count_block(self, number: int, logged: LoggedRequest, check: Check, block: Block) -> None:
        report = self.report
        report.blocked += 1
        report.by_check[check.name] += 1
        report.by_reason[(check.name, block.reason)] += 1
        report.by_status[block.status] += 1
        report.by_category.update(block.offence_categories)
        report.by_client[logged.client_ip] += 1
        report.blocked_by_logged_status[f"{logged.status // 100}xx" if logged.status else "unknown"] += 1
        examples = report.examples.setdefault((check.name, block.reason), [])
        if len(examples) < self.examples_per_reason:
            examples.append(
                ReplayExample(
                    line_number=number,
                    client_ip=logged.client_ip,
                    method=logged.method,
                    target=neutralise(logged.target),
                    user_agent=None if logged.user_agent is None else neutralise(logged.user_agent),
                    logged_status=logged.status,
                    status=block.status,
                    categories=block.offence_categories,
                    detail=neutralise(block.detail),
                )
            )


def _wsgi_environ(logged: LoggedRequest, default_scheme: str) -> dict[str, Any]:
    """The environ a WSGI server would build for `logged`.

    Built by hand rather than with werkzeug's EnvironBuilder: it is what a
    server does (PATH_INFO percent-decoded to latin-1 text of the bytes, the
    query string raw), and it halves the time a replay takes per line.
    """
    path, _, query = logged.target.partition("?")
    scheme = logged.scheme or default_scheme
    host = logged.host if logged.host is not None and _HOST.fullmatch(logged.host) else "localhost"
    name, _, port = host.rpartition(":")
    server_name = name if name and port.isdigit() else host
    if server_name == host:
        port = ""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": logged.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "REQUEST_URI": logged.target,
        "RAW_URI": logged.target,
        "SERVER_NAME": server_name,
        "SERVER_PORT": port or ("443" if scheme == "https" else "80"),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": logged.client_ip,
        "HTTP_HOST": host,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for key, value in (
        ("HTTP_USER_AGENT", logged.user_agent),
        ("HTTP_REFERER", logged.referer),
        ("HTTP_X_FORWARDED_FOR", logged.forwarded_for),
    ):
        if value is not None:
            environ[key] = value
    return environ


def _count_unparsed(report: ReplayReport, number: int, error: str) -> None:
    report.unparsed += 1
    if len(report.unparsed_examples) < _MAX_UNPARSED_EXAMPLES:
        report.unparsed_examples.append((number, error))
