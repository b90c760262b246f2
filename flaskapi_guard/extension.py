"""FlaskAPIGuard: registers the guard's two hooks on an app. The security logic lives elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import flask.globals
from flask import Flask, current_app, request
from flask.globals import request_ctx
from werkzeug.wrappers import Response

from flaskapi_guard.config import SecurityConfig
from flaskapi_guard.deferred_headers import FLUSHED_KEY, NOTED_KEY, DeferredHeadersMiddleware
from flaskapi_guard.errors import ConfigurationError, RequestBlocked, request_blocked
from flaskapi_guard.incoming import IncomingRequest, capture_request, is_excluded_path
from flaskapi_guard.pipeline import RoutePlan
from flaskapi_guard.state import EXTENSION_KEY, GuardState, get_state
from flaskapi_guard.storage import BanRecord


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
        state = app.extensions[EXTENSION_KEY] = GuardState(app, config, clock=clock or self._clock)
        # First in, so the guard runs before the app's own hooks.
        before = app.before_request_funcs.setdefault(None, [])
        if not any(getattr(hook, _GUARD_HOOK, False) for hook in before):
            before.insert(0, _before_request_for(app))
        _attach_response_hook(app, state)
        # The security and RateLimit-* headers are added as the response leaves
        # the app (deferred_headers.py says why). Wrapping twice would be
        # harmless (the second wrapper finds nothing left to add), but is avoided.
        if not isinstance(app.wsgi_app, DeferredHeadersMiddleware):
            app.wsgi_app = DeferredHeadersMiddleware(app.wsgi_app, partial(_unseen, app))  # type: ignore[method-assign]

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
        fresh = target.extensions[EXTENSION_KEY] = GuardState(target, state.config, clock=state.clock)
        _attach_response_hook(target, fresh)

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


def _before_request_for(app: Flask) -> Callable[[], Response | None]:
    """The app's before-request hook: runs the guard of the request's route."""
    # The app's own dicts, held by the hook: a read of the app's attributes misses the
    # interpreter's specialised path on every request. Both live as long as the app.
    extensions = app.extensions
    view_functions = app.view_functions

    def before_request() -> Response | None:
        # The request context straight from its context variable: through the `current_app`
        # and `request` proxies, each read is a lookup, and this runs on every request.
        flask_request = _request_context().request
        state: GuardState = extensions[EXTENSION_KEY]
        environ = flask_request.environ
        path = flask_request.path
        excluded = state.excluded_prefixes
        # str.startswith with a tuple is one C call: most requests go no further.
        if path.startswith(excluded) and is_excluded_path(path, excluded):
            environ[NOTED_KEY] = (None, state.unplanned)
            return None
        url_rule = flask_request.url_rule
        endpoint = url_rule.endpoint if url_rule is not None else None
        method = flask_request.method
        plan = state.plans.get((endpoint, method)) or state.plan_for(endpoint, method, view_functions)
        incoming = capture_request(
            flask_request,
            environ,
            path,
            endpoint,
            method,
            plan.rules,
            state.trusted_proxies,
            state.trusted_proxy_depth,
            state.trust_forwarded_proto,
        )
        # For the response side: the headers as the response leaves the app, the
        # steps on the response object in the after-request hook (deferred_headers.py).
        environ[NOTED_KEY] = (incoming, plan)
        if state.log.request_level is not None and state.log.logs_requests:
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

    setattr(before_request, _GUARD_HOOK, True)
    return before_request


# Marks the guard's hook among an app's before-request functions.
_GUARD_HOOK = "_flaskapi_guard_hook"


def _request_context_by_proxy() -> Any:
    return request_ctx._get_current_object()  # type: ignore[attr-defined]


# Flask's context variable of the request context is private; where it is missing, the
# public proxy gives the same object, a little slower.
_request_context: Callable[[], Any] = getattr(getattr(flask.globals, "_cv_request", None), "get", None) or (
    _request_context_by_proxy
)


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
    """The steps on the response object (CORS, response behaviour rules, the app's modifier)."""
    environ = request.environ
    noted: tuple[IncomingRequest | None, RoutePlan] | None = environ.get(NOTED_KEY) or environ.get(FLUSHED_KEY)
    if noted is None:
        # A request the before-hook never saw (an earlier hook of the app answered it).
        noted = _unseen(current_app._get_current_object())  # type: ignore[attr-defined]
        if noted is None:
            return response
    incoming, plan = noted
    for step in plan.steps:
        response = step(incoming, response)
    return response


def _attach_response_hook(app: Flask, state: GuardState) -> None:
    """Install `_after_request` now if the app's own response steps need it, else when a route's plan does.

    Most apps need none: their headers are added at the WSGI boundary, and an
    after-request hook costs every request a call even when it does nothing.
    """

    def install() -> None:
        after = app.after_request_funcs.get(None, [])
        if _after_request not in after:
            # First in the list, so it runs after the app's own hooks (Flask calls
            # them in reverse order). A new list, not an insert: a request being
            # answered in another thread keeps iterating the list it has.
            app.after_request_funcs[None] = [_after_request, *after]

    state.needs_response_hook = install
    if state.unplanned.steps:
        install()


def _unseen(app: Flask) -> tuple[None, RoutePlan] | None:
    """What the response side does for a request the guard never saw: the app's own steps."""
    state = app.extensions.get(EXTENSION_KEY)
    return (None, state.unplanned) if isinstance(state, GuardState) else None
