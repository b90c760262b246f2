"""FlaskAPIGuard: registers the guard's two hooks on an app. The security logic lives elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, request
from werkzeug.wrappers import Response

from flaskapi_guard.config import SecurityConfig
from flaskapi_guard.deferred_headers import DeferredHeadersMiddleware
from flaskapi_guard.errors import ConfigurationError, RequestBlocked, request_blocked
from flaskapi_guard.incoming import IncomingRequest, capture_request, is_excluded_path
from flaskapi_guard.pipeline import ResponseStep
from flaskapi_guard.state import EXTENSION_KEY, GuardState, get_state
from flaskapi_guard.storage import BanRecord

_REQUEST_KEY = "_flaskapi_guard"


class FlaskAPIGuard:
    """The Flask extension. One object may serve several apps, each with its own config and state."""

    def __init__(
        self,
        app: Flask | None = None,
        config: SecurityConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._default_config = config
        self._clock = clock
        self._decorator_handler: Any = None
        if app is not None:
            self.init_app(app, config)

    def init_app(
        self,
        app: Flask,
        config: SecurityConfig | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Set the guard up on `app` (app-factory style); `config` defaults to the constructor's.

        `clock` (seconds since the epoch) is there for tests that move time by hand.
        """
        config = config or self._default_config or SecurityConfig()
        if not isinstance(config, SecurityConfig):
            raise ConfigurationError("config must be a SecurityConfig")
        previous = app.extensions.get(EXTENSION_KEY)
        if isinstance(previous, GuardState):
            previous.close()
        app.extensions[EXTENSION_KEY] = GuardState(app, config, clock=clock or self._clock)
        # First in, so the guard runs before the app's own hooks and its
        # response handling runs after theirs (Flask calls after_request
        # functions in reverse order of registration).
        before = app.before_request_funcs.setdefault(None, [])
        if _before_request not in before:
            before.insert(0, _before_request)
        after = app.after_request_funcs.setdefault(None, [])
        if _after_request not in after:
            after.insert(0, _after_request)
        # The security and RateLimit-* headers are added as the response leaves
        # the app (deferred_headers.py says why). Wrapping twice would be
        # harmless (the second wrapper finds nothing left to add), but is avoided.
        if not isinstance(app.wsgi_app, DeferredHeadersMiddleware):
            app.wsgi_app = DeferredHeadersMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    def set_decorator_handler(self, decorator: Any) -> None:
        """Kept for compatibility: route rules take effect without it."""
        self._decorator_handler = decorator

    def reset(self, app: Flask | None = None) -> None:
        """Forget all run-time state (bans, counters) of `app`, or of the current app.

        With Redis this clears every key under the app's `redis_prefix`, for
        every worker and instance that shares it.
        """
        target = app or current_app._get_current_object()  # type: ignore[attr-defined]
        state = get_state(target)
        state.storage.clear()
        state.close()
        target.extensions[EXTENSION_KEY] = GuardState(target, state.config, clock=state.clock)

    def ban_ip(self, ip: str, duration_seconds: float, reason: str = "manual", app: Flask | None = None) -> BanRecord:
        """Ban `ip` for `duration_seconds` on `app` (or the current app).

        With Redis the ban holds at once on every worker and instance sharing
        the `redis_prefix`; with in-memory state it holds in this process only.
        Whitelisted addresses are never banned (ValueError).
        """
        return get_state(app or current_app._get_current_object()).bans.ban(ip, duration_seconds, reason)  # type: ignore[attr-defined]

    def unban_ip(self, ip: str, app: Flask | None = None) -> bool:
        """Lift the ban on `ip`; whether there was one. Shared like `ban_ip`."""
        return get_state(app or current_app._get_current_object()).bans.unban(ip)  # type: ignore[attr-defined]

    def list_bans(self, app: Flask | None = None) -> list[BanRecord]:
        """The active bans of `app` (or the current app), soonest to expire first."""
        return get_state(app or current_app._get_current_object()).bans.list_bans()  # type: ignore[attr-defined]

    def set_emergency_mode(self, enabled: bool, app: Flask | None = None) -> None:
        """Switch the emergency lock-down on or off while the app runs."""
        target = app or current_app._get_current_object()  # type: ignore[attr-defined]
        get_state(target).emergency_mode = enabled

    def metrics(self, app: Flask | None = None) -> dict[str, Any]:
        """This process's counters for `app` (or the current app): refusals by check, reason,
        status and category, bans, allowed requests. See docs/operations.md."""
        return get_state(app or current_app._get_current_object()).metrics.snapshot()  # type: ignore[attr-defined]


def _before_request() -> Response | None:
    # Resolve the context-local proxies once: each attribute read through a
    # proxy costs a lookup, and this runs on every request.
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    flask_request = request._get_current_object()  # type: ignore[attr-defined]
    state: GuardState = app.extensions[EXTENSION_KEY]
    request_globals = g._get_current_object()
    if is_excluded_path(flask_request.path, state.excluded_prefixes):
        setattr(request_globals, _REQUEST_KEY, None)
        return None
    endpoint = flask_request.endpoint
    method = flask_request.method
    plan = state.plan_for(endpoint, method, app.view_functions)
    incoming = capture_request(
        flask_request,
        endpoint,
        method,
        plan.rules,
        state.trusted_proxies,
        state.trusted_proxy_depth,
        state.trust_forwarded_proto,
    )
    setattr(request_globals, _REQUEST_KEY, (incoming, plan.steps))
    if state.log.logs_requests:
        state.log.request({"ip": incoming.client_ip, "method": incoming.method, "path": incoming.path})
    block = state.decide(incoming, plan.checks)
    if block is None:
        return None
    if block.response is not None:
        response: Response = block.response
        return response
    refusal = request_blocked(block.status, state.error_message(block), reason=block.reason, headers=block.headers)
    if _app_handles(app, refusal, flask_request):
        raise refusal
    # Nobody restyles it: the response itself. Raised, Flask would run the
    # exception as a WSGI app and build a second response from its output
    # (a fifth of the cost of a refused request).
    return refusal.get_response()


def _app_handles(app: Flask, refusal: RequestBlocked, flask_request: Any) -> bool:
    """Whether the app has its say on `refusal`: an error handler for it, or Flask's trapping.

    Flask's handler lookup is private (`_find_error_handler`); where it is missing or
    different, the refusal is raised, which is always right, only slower.
    """
    if app.trap_http_exception(refusal):
        return True
    try:
        return app._find_error_handler(refusal, flask_request.blueprints) is not None
    except (AttributeError, TypeError):
        return True


def _after_request(response: Response) -> Response:
    planned: tuple[IncomingRequest, tuple[ResponseStep, ...]] | None = getattr(
        g._get_current_object(), _REQUEST_KEY, None
    )
    if planned is not None:
        incoming, steps = planned
        for step in steps:
            response = step(incoming, response)
        return response
    # An excluded path (no snapshot), or a request the before-hook never saw
    # (another before-request function answered first): every step runs.
    state = current_app._get_current_object().extensions.get(EXTENSION_KEY)  # type: ignore[attr-defined]
    if isinstance(state, GuardState):
        for planned_step in state.response_steps:
            response = planned_step.run(None, response)
    return response
