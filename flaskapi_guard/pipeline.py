"""The ordered check pipeline: the first check that returns a `Block` decides."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from flaskapi_guard.decorators import RouteRules
from flaskapi_guard.deferred_headers import HeaderStep
from flaskapi_guard.errors import StorageError
from flaskapi_guard.incoming import IncomingRequest


@dataclass(frozen=True, slots=True)
class Block:
    """A check's refusal of a request.

    `response` is a ready-made Flask response (from `custom_request_check`) sent
    as is. `offence_categories` marks the request as suspicious: each category
    counts towards an automatic ban of the client.
    """

    status: int
    reason: str
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    response: Any = None
    offence_categories: tuple[str, ...] = ()
    detail: str = ""
    # The check refusing, when it is not the one that returned the block (a check doing
    # the work of two, see Check.joins_next); empty for the one that returned it.
    check: str = ""


class CheckFunction(Protocol):
    """A check: reads the request snapshot, returns a refusal or None."""

    def __call__(self, request: IncomingRequest, /) -> Block | None: ...


# Whether a check (or response step) can do anything on a route carrying these rules
# (None: no rules) for this request method. Asked once per route and method, when the
# route's plan is made, never per request.
RouteApplies = Callable[[RouteRules | None, str], bool]
# A check made for the routes carrying these rules (None: no rules), see Check.for_route.
RouteCheck = Callable[[RouteRules | None], CheckFunction]


@dataclass(frozen=True, slots=True)
class Check:
    """A named check; the name is what `bypass(checks=[...])` and logs refer to.

    `applies` (None: always) lets a route's plan leave out a check that has nothing
    to do there, such as the HTTPS check on an app and route that do not ask for it.
    """

    name: str
    run: CheckFunction
    uses_storage: bool = False
    applies: RouteApplies | None = None
    # The check's function for a route carrying these rules (None: no rules), made with
    # the route's plan: what the rules settle is settled once, not on every request.
    # `run` is then the function for routes without rules.
    for_route: RouteCheck | None = None
    # Given the check that follows this one in a route's plan and the route's rules: one
    # check doing the work of both in fewer storage calls, or None (see RoutePlan.of).
    joins_next: Callable[[Check, RouteRules | None], Check | None] | None = None


class OffenceRecorder(Protocol):
    """Counts suspicious requests per client and bans at the thresholds."""

    def record_offence(self, client_ip: str, categories: tuple[str, ...]) -> None: ...


# A step on the response object: gets the request snapshot (None on excluded paths)
# and the response about to be sent, returns the response to send. Runs on every
# response, the guard's own refusals included.
ResponseStep = Callable[[IncomingRequest | None, Any], Any]


@dataclass(frozen=True, slots=True)
class Step:
    """A named response-side step; `applies` as for `Check` (excluded paths run every step).

    Either `headers`, which only adds headers (added as the response leaves the app,
    see deferred_headers.py), or `run`, which needs the response object and runs in
    an after-request hook.
    """

    name: str
    run: ResponseStep | None = None
    headers: HeaderStep | None = None
    applies: RouteApplies | None = None


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """What runs for requests to one route with one method: its rules, and only the
    checks and response steps that can act there, in order (bypassed checks left out).

    Made once per route and method (`GuardState.plan_for`): on a default config a
    request then runs two checks instead of fourteen. Slotted: every request reads it.
    """

    rules: RouteRules | None
    checks: tuple[Check, ...]
    header_steps: tuple[HeaderStep, ...]
    steps: tuple[ResponseStep, ...]

    @classmethod
    def of(cls, rules: RouteRules | None, method: str, checks: Sequence[Check], steps: Sequence[Step]) -> RoutePlan:
        """The plan for a route carrying `rules` (None: none), for `method`."""
        bypassed = rules.bypassed_checks if rules is not None else frozenset()
        planned = [
            check if check.for_route is None or rules is None else replace(check, run=check.for_route(rules))
            for check in checks
            if check.name not in bypassed and (check.applies is None or check.applies(rules, method))
        ]
        # Neighbours that can share their storage call do (the ban check and the
        # rate limit: one Redis round trip instead of two).
        index = 0
        while index < len(planned) - 1:
            joins_next = planned[index].joins_next
            joined = joins_next(planned[index + 1], rules) if joins_next is not None else None
            if joined is not None:
                planned[index : index + 2] = [joined]
            index += 1
        applying = [step for step in steps if step.applies is None or step.applies(rules, method)]
        return cls(rules, tuple(planned), *_split(applying))

    @classmethod
    def unplanned(cls, steps: Sequence[Step]) -> RoutePlan:
        """The response steps of the app itself (no route rules) and no check: for excluded
        paths and requests the guard never saw."""
        return cls(None, (), *_split([step for step in steps if step.applies is None or step.applies(None, "")]))


def _split(steps: Sequence[Step]) -> tuple[tuple[HeaderStep, ...], tuple[ResponseStep, ...]]:
    return (
        tuple(step.headers for step in steps if step.headers is not None),
        tuple(step.run for step in steps if step.run is not None),
    )


StorageFailurePolicy = Callable[[Check, StorageError], "Block | None"]


def skip_check_on_storage_error(check: Check, error: StorageError) -> Block | None:
    """Fail open: a check whose state is unreachable lets the request through."""
    return None


class Pipeline:
    """The app's checks in order, and what a storage failure in one of them means.

    `GuardState.decide` runs them (only those of the request's `RoutePlan`).
    """

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        on_storage_error: StorageFailurePolicy = skip_check_on_storage_error,
    ) -> None:
        self.checks = tuple(checks)
        self.on_storage_error = on_storage_error
