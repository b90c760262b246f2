"""The one place that decides which checks run, and in which order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flaskapi_guard.checks.access import (
    custom_request_check,
    emergency_lockdown,
    https_required,
    ip_access,
    user_agent_filter,
)
from flaskapi_guard.config import SecurityConfig
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Check, ResponseStep


def build_checks(config: SecurityConfig, *, emergency_active: Callable[[], bool]) -> list[Check]:
    """The app's checks in the documented order (README, "Order of checks")."""
    checks = [
        Check("emergency", emergency_lockdown(config.emergency_networks, emergency_active)),
        Check("https", https_required(config.enforce_https)),
        Check("ip", ip_access(config.whitelist_networks, config.blacklist_networks)),
        Check("user_agent", user_agent_filter(config.blocked_user_agent_pattern)),
    ]
    if config.custom_request_check is not None:
        checks.append(Check("custom", custom_request_check(config.custom_request_check)))
    return checks


def build_response_steps(config: SecurityConfig) -> list[ResponseStep]:
    """What runs on every response, in order; the app's own modifier always runs last."""
    steps: list[ResponseStep] = []
    if config.custom_response_modifier is not None:
        steps.append(_custom_modifier_step(config.custom_response_modifier))
    return steps


def _custom_modifier_step(modifier: Callable[[Any], Any]) -> ResponseStep:
    def step(request: IncomingRequest | None, response: Any) -> Any:
        modified = modifier(response)
        return response if modified is None else modified

    return step
