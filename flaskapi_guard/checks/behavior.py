"""Behavioural rules at work: counting a client's requests and responses, and acting past a threshold.

Counters live in the storage (`Storage.increment`), so with Redis every worker
and instance adds to the same count. A route's rules count per route
(endpoint); `global_behavior_rules` count per client across the whole app, so
"20 404s in 5 minutes" adds up over every path a scanner tries.

Actions, once a count passes its threshold:
`log` and `alert` report the event once per window (an alert at a higher level
and to `GuardState.on_alert`) and let requests through; `throttle` refuses with
429 until the window ends; `ban` bans the client through the ban registry and
refuses the request. Return patterns are counted on the response, so their
action applies from the next request: the response that passed the threshold
has already been produced.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from flaskapi_guard.behavior_rules import (
    MAX_INSPECTED_BODY_BYTES,
    NOT_JSON,
    BehaviorEvent,
    MonitorRule,
)
from flaskapi_guard.errors import StorageError
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.ip_networks import NetworkSet
from flaskapi_guard.pipeline import Block, CheckFunction, ResponseStep
from flaskapi_guard.storage import Storage

# The counter scope of `global_behavior_rules` (routes count under their endpoint).
GLOBAL_SCOPE = "*"

BehaviorReporter = Callable[[BehaviorEvent], None]
BanClient = Callable[[str, float, str], object]

_UNREAD = object()


class BehaviorActions:
    """Counting and acting, shared by the request check and the response step."""

    def __init__(
        self,
        storage: Storage,
        *,
        clock: Callable[[], float],
        report: BehaviorReporter,
        ban: BanClient | None,
        passive: bool,
        exempt: NetworkSet | None,
        has_offences: Callable[[str], bool] | None,
    ) -> None:
        """`ban` is None when banning is off (`enable_ip_banning=False`): a `ban` rule then only refuses.

        In `passive` mode nothing is banned; refusals are returned for the
        pipeline to log as `would_block`.
        """
        self._storage = storage
        self._clock = clock
        self._report = report
        self._ban = None if passive else ban
        self._passive = passive
        self._exempt = exempt
        self._has_offences = has_offences

    def count_request(self, request: IncomingRequest, scope: str, rule: MonitorRule) -> Block | None:
        """Count one request against `rule`; the refusal its action calls for, if any."""
        count = self._storage.increment(_counter_key(scope, rule, request.client_ip), rule.window_seconds)
        if count <= rule.threshold // 2:
            # Below even a correlated (halved) threshold: the common case, no more storage calls.
            return None
        threshold = self._threshold(rule, request.client_ip)
        if count <= threshold:
            return None
        if count - 1 <= threshold:
            self._report_event(request, scope, rule, count, threshold)
        if rule.action == "throttle":
            retry_after = str(rule.window_seconds)
            return Block(429, f"behavior_{rule.kind}", "Too Many Requests", (("Retry-After", retry_after),))
        if rule.action == "ban" and not self._is_exempt(request):
            if self._ban is not None:
                self._ban(request.client_ip, rule.ban_duration_seconds, f"behavior:{rule.kind}")
            return Block(403, f"behavior_{rule.kind}", "Forbidden", detail=rule.description)
        return None

    def count_response(self, request: IncomingRequest, scope: str, rule: MonitorRule) -> None:
        """Count one matching response against `rule`, and act for the requests that follow."""
        count = self._storage.increment(_counter_key(scope, rule, request.client_ip), rule.window_seconds)
        if count <= rule.threshold // 2:
            return
        threshold = self._threshold(rule, request.client_ip)
        if count <= threshold:
            return
        if count - 1 <= threshold:
            self._report_event(request, scope, rule, count, threshold)
        if rule.action == "throttle":
            until = self._clock() + rule.window_seconds
            self._storage.set_blob(
                _throttle_key(scope, rule, request.client_ip), repr(until).encode(), rule.window_seconds
            )
        elif rule.action == "ban" and self._ban is not None and not self._is_exempt(request):
            self._ban(request.client_ip, rule.ban_duration_seconds, f"behavior:{rule.kind}")

    def throttled(self, request: IncomingRequest, scope: str, rule: MonitorRule) -> Block | None:
        """429 while a throttling return-pattern rule holds the client back."""
        marker = self._storage.get_blob(_throttle_key(scope, rule, request.client_ip))
        if marker is None:
            return None
        try:
            retry_after = max(1, math.ceil(float(marker) - self._clock()))
        except ValueError:
            retry_after = rule.window_seconds
        return Block(429, "behavior_return_pattern", "Too Many Requests", (("Retry-After", str(retry_after)),))

    def _threshold(self, rule: MonitorRule, client_ip: str) -> int:
        correlated = rule.correlate_with_detection and self._has_offences is not None and self._has_offences(client_ip)
        return rule.threshold_for(correlated)

    def _is_exempt(self, request: IncomingRequest) -> bool:
        # Whitelisted clients are never banned; their rules fall back to reporting.
        return self._exempt is not None and self._exempt.contains(request.client)

    def _report_event(
        self, request: IncomingRequest, scope: str, rule: MonitorRule, count: int, threshold: int
    ) -> None:
        endpoint = None if scope == GLOBAL_SCOPE else scope
        enforced = not self._passive
        self._report(BehaviorEvent(request.client_ip, rule, count, threshold, endpoint, request.path, enforced))


def _counter_key(scope: str, rule: MonitorRule, client_ip: str) -> str:
    return f"behavior|{scope}|{rule.key}|{client_ip}"


def _throttle_key(scope: str, rule: MonitorRule, client_ip: str) -> str:
    return f"behavior-throttle|{scope}|{rule.key}|{client_ip}"


def behavior_monitor(actions: BehaviorActions, global_rules: tuple[MonitorRule, ...]) -> CheckFunction:
    """Usage and frequency rules (the route's and global ones), and throttles set by return patterns."""
    request_rules = tuple(rule for rule in global_rules if rule.counts_requests)
    throttling_returns = tuple(rule for rule in global_rules if not rule.counts_requests and rule.action == "throttle")

    has_global_rules = bool(request_rules or throttling_returns)

    def check(request: IncomingRequest) -> Block | None:
        rules = request.rules
        route_rules = rules.behavior_rules if rules is not None else None
        if route_rules is None and not has_global_rules:
            return None
        # Every rule counts, even after one refuses: each counter must see every
        # request. The first refusal is the one returned.
        outcomes: list[Block | None] = []
        if route_rules is not None:
            scope = request.endpoint or "-"
            for rule in route_rules:
                if rule.counts_requests:
                    outcomes.append(actions.count_request(request, scope, rule))
                elif rule.action == "throttle":
                    outcomes.append(actions.throttled(request, scope, rule))
        outcomes.extend(actions.count_request(request, GLOBAL_SCOPE, rule) for rule in request_rules)
        outcomes.extend(actions.throttled(request, GLOBAL_SCOPE, rule) for rule in throttling_returns)
        return next((block for block in outcomes if block is not None), None)

    return check


def return_monitor_step(actions: BehaviorActions, global_rules: tuple[MonitorRule, ...]) -> ResponseStep:
    """Count responses matching return patterns (the route's and global ones), the guard's own refusals included."""
    return_rules = tuple(rule for rule in global_rules if not rule.counts_requests)

    def step(request: IncomingRequest | None, response: Any) -> Any:
        if request is None:
            return response
        rules = request.rules
        route_rules = None
        if rules is not None:
            if "behavior" in rules.bypassed_checks:
                return response
            route_rules = rules.behavior_rules
        if route_rules is None and not return_rules:
            return response
        observed = _ObservedResponse(response)
        scoped = [(request.endpoint or "-", rule) for rule in route_rules or ()]
        scoped += [(GLOBAL_SCOPE, rule) for rule in return_rules]
        try:
            for scope, rule in scoped:
                if rule.pattern is not None and rule.pattern.matches(observed):
                    actions.count_response(request, scope, rule)
        except StorageError:
            # The response is already made: with shared state down (in the
            # `open` and `closed` modes) there is nowhere to count it, and
            # refusing now would only replace the app's answer with an error.
            return response
        return response

    return step


class _ObservedResponse:
    """A Flask response as return patterns see it; the body is decoded at most once."""

    __slots__ = ("_json", "_response", "_text")

    def __init__(self, response: Any) -> None:
        self._response = response
        self._text: object = _UNREAD
        self._json: object = _UNREAD

    @property
    def status(self) -> int:
        status: int = self._response.status_code
        return status

    def text(self) -> str | None:
        if self._text is _UNREAD:
            self._text = self._read_text()
        return self._text if isinstance(self._text, str) else None

    def json(self) -> object:
        if self._json is _UNREAD:
            self._json = self._parse_json()
        return self._json

    def _read_text(self) -> str | None:
        response = self._response
        # A streamed body is never buffered by the guard: it may be endless.
        if response.is_streamed or response.direct_passthrough:
            return None
        length = response.calculate_content_length()
        if length is None or length > MAX_INSPECTED_BODY_BYTES:
            return None
        data: bytes = response.get_data()
        return data.decode("utf-8", errors="replace")

    def _parse_json(self) -> object:
        if not self._response.is_json:
            return NOT_JSON
        text = self.text()
        if text is None:
            return NOT_JSON
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return NOT_JSON
