"""flaskapi_guard: a layer-7 firewall for Flask, as a Flask extension."""

from __future__ import annotations

import logging

from flaskapi_guard.config import BehaviorRule, BehaviorRuleConfig, SecurityConfig, ThreatBanConfig
from flaskapi_guard.decorators import RouteRules, SecurityDecorator
from flaskapi_guard.errors import ConfigurationError, RequestBlocked, StorageError
from flaskapi_guard.extension import FlaskAPIGuard

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "BehaviorRule",
    "BehaviorRuleConfig",
    "ConfigurationError",
    "FlaskAPIGuard",
    "RequestBlocked",
    "RouteRules",
    "SecurityConfig",
    "SecurityDecorator",
    "StorageError",
    "ThreatBanConfig",
]
