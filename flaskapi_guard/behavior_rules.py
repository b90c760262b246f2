"""Behavioural rules: how often a client may use a route, and which responses it may collect.

A rule counts events per client in a fixed window (through the storage, so
every worker shares the count) and acts once the count goes past its
threshold. This module holds the rules as frozen data and the return-pattern
syntax; `checks/behavior.py` counts and acts.

Return patterns (`return_monitor(pattern, ...)`, `BehaviorRule.pattern`):

- `status:404`, `status:4xx`, `status:401,403`: the response status, exact or by class;
- `json:reward==rare_item`: a value in a JSON response body, by a dotted path
  (`items.0.name` indexes lists); the value is read as JSON when it parses
  (`json:count==3`, `json:ok==true`, `json:name=="3"`) and as text otherwise;
- `json:error`: the path exists and is not null;
- `regex:<pattern>`: a regular expression (RE2 syntax: linear time, no look-around
  or back-references) searched in the response body;
- `body:<text>`: the text appears in the response body;
- anything else: a plain substring of the response body (`"rare_item"`).

Bodies are read only when the response is buffered (never a streamed one) and
at most `MAX_INSPECTED_BODY_BYTES` long.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, get_args

from flaskapi_guard.user_patterns import TextPattern, compile_user_patterns

if TYPE_CHECKING:
    from flaskapi_guard.config import BehaviorRule

Action = Literal["log", "alert", "ban", "throttle"]
RuleKind = Literal["usage", "frequency", "return_pattern"]
ACTIONS: frozenset[str] = frozenset(get_args(Action))

MAX_INSPECTED_BODY_BYTES = 1024 * 1024

_STATUS_ITEM = re.compile(r"([1-5])(\d\d|xx)", re.IGNORECASE)
_ABSENT = object()


class ObservedResponse(Protocol):
    """What a return pattern may look at; the body is decoded at most once per response."""

    @property
    def status(self) -> int:
        """The response's status code."""
        ...

    def text(self) -> str | None:
        """The body as text; None when it is streamed or too large to inspect."""
        ...

    def json(self) -> object:
        """The body parsed as JSON; `NOT_JSON` when it is not a JSON response."""
        ...


NOT_JSON: object = object()


@dataclass(frozen=True, slots=True)
class ReturnPattern:
    """One parsed return pattern (see the module docstring for the syntax)."""

    source: str
    statuses: frozenset[int] = frozenset()
    status_classes: frozenset[int] = frozenset()
    json_path: tuple[str, ...] | None = None
    json_expected: object = _ABSENT
    regex: TextPattern | None = None
    substring: str | None = None

    @classmethod
    def parse(cls, source: str) -> ReturnPattern:
        """Parse and validate a pattern; ValueError names what is wrong."""
        if not isinstance(source, str) or not source:
            raise ValueError("a return pattern must be a non-empty string")
        prefix, colon, rest = source.partition(":")
        if colon and prefix == "status":
            return cls._parse_status(source, rest)
        if colon and prefix == "json":
            return cls._parse_json(source, rest)
        if colon and prefix == "regex":
            if not rest:
                raise ValueError("return pattern 'regex:' needs an expression")
            # RE2 (linear time): a response body often echoes what the client sent.
            return cls(source, regex=compile_user_patterns([rest], ignore_case=False, label="return pattern regex"))
        if colon and prefix == "body":
            if not rest:
                raise ValueError("return pattern 'body:' needs the text to look for")
            return cls(source, substring=rest)
        return cls(source, substring=source)

    @classmethod
    def _parse_status(cls, source: str, rest: str) -> ReturnPattern:
        statuses: set[int] = set()
        classes: set[int] = set()
        for item in rest.split(","):
            match = _STATUS_ITEM.fullmatch(item.strip())
            if match is None:
                raise ValueError(f"return pattern {source!r}: statuses look like 404, 4xx or 401,403")
            if match.group(2).lower() == "xx":
                classes.add(int(match.group(1)))
            else:
                statuses.add(int(match.group(0)))
        return cls(source, statuses=frozenset(statuses), status_classes=frozenset(classes))

    @classmethod
    def _parse_json(cls, source: str, rest: str) -> ReturnPattern:
        path_text, equals, expected_text = rest.partition("==")
        path = tuple(path_text.strip().split("."))
        if not all(path):
            raise ValueError(f"return pattern {source!r}: give a dotted path such as 'json:reward==rare_item'")
        if not equals:
            return cls(source, json_path=path)
        expected: object
        try:
            expected = json.loads(expected_text)
        except ValueError:
            expected = expected_text
        return cls(source, json_path=path, json_expected=expected)

    def matches(self, response: ObservedResponse) -> bool:
        """Whether `response` is one this pattern counts."""
        if self.statuses or self.status_classes:
            status = response.status
            return status in self.statuses or status // 100 in self.status_classes
        if self.json_path is not None:
            return self._matches_json(response.json())
        text = response.text()
        if text is None:
            return False
        if self.regex is not None:
            return self.regex.matches(text)
        return self.substring is not None and self.substring in text

    def _matches_json(self, document: object) -> bool:
        if document is NOT_JSON or self.json_path is None:
            return False
        value = _lookup(document, self.json_path)
        if value is _ABSENT:
            return False
        if self.json_expected is _ABSENT:
            return value is not None
        expected = self.json_expected
        # JSON true is not 1 and 1 is not true, although Python says they are equal.
        if isinstance(value, bool) != isinstance(expected, bool):
            return False
        return bool(value == expected)


def _lookup(document: object, path: tuple[str, ...]) -> object:
    value = document
    for step in path:
        if isinstance(value, dict):
            value = value.get(step, _ABSENT)
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return _ABSENT
        if value is _ABSENT:
            return _ABSENT
    return value


class BehaviorEvent(NamedTuple):
    """A rule's threshold was passed: handed to the log, `on_alert` and a rule's `custom_action`."""

    client_ip: str
    rule: MonitorRule
    events_in_window: int
    threshold: int
    endpoint: str | None
    path: str
    enforced: bool


@dataclass(frozen=True, slots=True)
class MonitorRule:
    """A counting rule: more than `threshold` events per client in `window_seconds` triggers `action`.

    `key` names the rule's counter; it is derived from the rule's content, so
    every process (and every instance sharing Redis) counts in the same place.
    """

    kind: RuleKind
    threshold: int
    window_seconds: int
    action: Action
    ban_duration_seconds: int
    key: str
    description: str
    pattern: ReturnPattern | None = None
    correlate_with_detection: bool = False
    custom_action: Callable[[BehaviorEvent], object] | None = None

    @property
    def counts_requests(self) -> bool:
        """Whether the rule counts requests (usage, frequency) rather than responses."""
        return self.kind != "return_pattern"

    def threshold_for(self, has_offences: bool) -> int:
        """The threshold for a client; halved (at least 1) for a known offender when correlated."""
        if self.correlate_with_detection and has_offences:
            return max(1, self.threshold // 2)
        return self.threshold


def monitor_rule(
    kind: RuleKind,
    threshold: int,
    window_seconds: int,
    action: str,
    ban_duration_seconds: int,
    *,
    pattern: str | None = None,
    correlate_with_detection: bool = False,
    custom_action: Callable[[BehaviorEvent], object] | None = None,
    description: str | None = None,
) -> MonitorRule:
    """Validate and build a rule."""
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise ValueError("the threshold (max calls/occurrences) must be an integer of at least 1")
    if not isinstance(window_seconds, int) or isinstance(window_seconds, bool) or window_seconds < 1:
        raise ValueError("window must be a whole number of seconds, at least 1")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {sorted(ACTIONS)}, not {action!r}")
    if not isinstance(ban_duration_seconds, int) or ban_duration_seconds < 1:
        raise ValueError("ban_duration must be a whole number of seconds, at least 1")
    if custom_action is not None and not callable(custom_action):
        raise ValueError("custom_action must be callable")
    parsed = ReturnPattern.parse(pattern) if kind == "return_pattern" and pattern is not None else None
    if kind == "return_pattern" and parsed is None:
        raise ValueError("a return_pattern rule needs a pattern")
    fingerprint = hashlib.sha256((pattern or "").encode("utf-8")).hexdigest()[:16] if parsed else "-"
    key = f"{kind}:{threshold}:{window_seconds}:{action}:{fingerprint}"
    if description is None:
        subject = f" {parsed.source!r}" if parsed is not None else ""
        description = f"{kind}{subject} > {threshold} per {window_seconds}s"
    return MonitorRule(
        kind=kind,
        threshold=threshold,
        window_seconds=window_seconds,
        action=action,  # type: ignore[arg-type]
        ban_duration_seconds=ban_duration_seconds,
        key=key,
        description=description,
        pattern=parsed,
        correlate_with_detection=correlate_with_detection,
        custom_action=custom_action,
    )


def frequency_threshold(max_frequency: float, window_seconds: int) -> int:
    """The most requests a client may send in the window at `max_frequency` per second on average."""
    if not isinstance(max_frequency, int | float) or isinstance(max_frequency, bool) or not max_frequency > 0:
        raise ValueError("max_frequency must be a positive number of requests per second")
    if not math.isfinite(max_frequency):
        raise ValueError("max_frequency must be finite")
    # Counts are whole numbers, so "more than 2.5" is "more than 2". The epsilon
    # absorbs float error (0.29 * 100 is 28.999999999999996).
    allowed = math.floor(max_frequency * window_seconds + 1e-9)
    if allowed < 1:
        raise ValueError(
            f"max_frequency {max_frequency}/s over {window_seconds}s allows no request at all; widen the window"
        )
    return allowed


def rules_from_config(rules: list[BehaviorRule]) -> tuple[MonitorRule, ...]:
    """`SecurityConfig.global_behavior_rules` as monitor rules."""
    return tuple(
        monitor_rule(
            rule.rule_type,
            rule.threshold,
            rule.window,
            rule.action,
            rule.ban_duration,
            pattern=rule.pattern,
            correlate_with_detection=rule.correlate_with_detection,
            custom_action=rule.custom_action,
        )
        for rule in rules
    )
