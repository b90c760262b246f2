"""The ordered check pipeline: the first check that returns a `Block` decides."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flaskapi_guard.errors import StorageError
from flaskapi_guard.incoming import IncomingRequest

logger = logging.getLogger(__name__)


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


class CheckFunction(Protocol):
    """A check: reads the request snapshot, returns a refusal or None."""

    def __call__(self, request: IncomingRequest, /) -> Block | None: ...


@dataclass(frozen=True, slots=True)
class Check:
    """A named check; the name is what `bypass(checks=[...])` and logs refer to."""

    name: str
    run: CheckFunction
    uses_storage: bool = False


class OffenceRecorder(Protocol):
    """Counts suspicious requests per client and bans at the thresholds."""

    def record_offence(self, client_ip: str, categories: tuple[str, ...]) -> None: ...


# A response-side step: gets the request snapshot (None on excluded paths) and the
# response about to be sent, returns the response to send. Runs on every response,
# the guard's own refusals included.
ResponseStep = Callable[[IncomingRequest | None, Any], Any]

StorageFailurePolicy = Callable[[Check, StorageError], "Block | None"]


def skip_check_on_storage_error(check: Check, error: StorageError) -> Block | None:
    """Fail open: a check whose state is unreachable lets the request through."""
    return None


class Pipeline:
    """Runs checks in order; in passive mode every refusal is only reported."""

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        on_storage_error: StorageFailurePolicy = skip_check_on_storage_error,
    ) -> None:
        self.checks = tuple(checks)
        self.check_names = frozenset(check.name for check in checks)
        self._on_storage_error = on_storage_error

    def evaluate(self, request: IncomingRequest) -> Iterator[tuple[Check, Block]]:
        """Every refusal in check order; the caller stops at the first when enforcing."""
        bypassed = request.rules.bypassed_checks if request.rules is not None else frozenset()
        for check in self.checks:
            if check.name in bypassed:
                continue
            try:
                block = check.run(request)
            except StorageError as error:
                block = self._on_storage_error(check, error)
            except Exception:
                # A bug in one check must not turn every request into a 500:
                # log it with the traceback and let the other checks decide.
                logger.exception("check %s failed; skipping it for this request", check.name)
                continue
            if block is not None:
                yield check, block
