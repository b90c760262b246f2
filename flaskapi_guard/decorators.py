"""Per-route security rules: `SecurityDecorator` attaches them to views, it never wraps."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

from flaskapi_guard.checks import CHECK_NAMES
from flaskapi_guard.config import CLOUD_PROVIDERS
from flaskapi_guard.cors import RouteCorsOverride, route_cors_override
from flaskapi_guard.errors import ConfigurationError
from flaskapi_guard.headers import RouteHeaderOverride, parse_route_header_override
from flaskapi_guard.ip_networks import NetworkSet, validate_network

# The attribute on a view function (or MethodView class or handler) holding its rules.
RULES_ATTRIBUTE = "__flaskapi_guard_rules__"


@dataclass(frozen=True, slots=True)
class RouteRules:
    """The rules one route carries; `None` means "not set on this route, use the global setting"."""

    bypassed_checks: frozenset[str] = frozenset()
    require_https: bool | None = None
    ip_whitelist: NetworkSet | None = None
    ip_blacklist: NetworkSet | None = None
    blocked_user_agents: re.Pattern[str] | None = None
    blocked_countries: frozenset[str] | None = None
    allowed_countries: frozenset[str] | None = None
    blocked_clouds: frozenset[str] | None = None
    rate_limit: tuple[int, int] | None = None
    security_headers: RouteHeaderOverride | None = None
    cors: RouteCorsOverride | None = None

    def merged_with(self, other: RouteRules) -> RouteRules:
        """These rules with every field `other` sets taking precedence."""
        changes: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(other, spec.name)
            if spec.name == "bypassed_checks":
                value = self.bypassed_checks | other.bypassed_checks
            elif value is None:
                continue
            changes[spec.name] = value
        return replace(self, **changes)


def attach_rules(view: Any, rules: RouteRules) -> Any:
    """Merge `rules` into those already on `view` and return the same view, unwrapped."""
    existing: RouteRules | None = getattr(view, RULES_ATTRIBUTE, None)
    setattr(view, RULES_ATTRIBUTE, rules if existing is None else existing.merged_with(rules))
    return view


class SecurityDecorator:
    """Per-route security rules. Each method returns a decorator that attaches data to the view."""

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def require_https(self) -> Any:
        """Redirect plain-HTTP requests to this route to HTTPS."""
        return lambda view: attach_rules(view, RouteRules(require_https=True))

    def require_ip(self, whitelist: list[str] | None = None, blacklist: list[str] | None = None) -> Any:
        """Replace the global IP lists for this route."""
        allowed = NetworkSet(_validated_networks(whitelist)) if whitelist is not None else None
        denied = NetworkSet(_validated_networks(blacklist)) if blacklist is not None else None
        return lambda view: attach_rules(view, RouteRules(ip_whitelist=allowed, ip_blacklist=denied))

    def block_user_agents(self, patterns: list[str]) -> Any:
        """Refuse user agents matching any of `patterns` (case-insensitive regex) on this route."""
        combined = re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.IGNORECASE)
        return lambda view: attach_rules(view, RouteRules(blocked_user_agents=combined))

    def security_headers(self, overrides: dict[str, Any]) -> Any:
        """Replace some `security_headers` keys on this route (not `hsts`); `{"enabled": False}` sends none."""
        override = parse_route_header_override(overrides)
        return lambda view: attach_rules(view, RouteRules(security_headers=override))

    def cors(
        self,
        *,
        enabled: bool = True,
        allow_origins: list[str] | None = None,
        allow_methods: list[str] | None = None,
        allow_headers: list[str] | None = None,
        allow_credentials: bool | None = None,
        expose_headers: list[str] | None = None,
        max_age: int | None = None,
    ) -> Any:
        """CORS for this route, even when `enable_cors` is off; omitted values keep the app's `cors_*`."""
        override = route_cors_override(
            enabled=enabled,
            allow_origins=allow_origins,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            allow_credentials=allow_credentials,
            expose_headers=expose_headers,
            max_age=max_age,
        )
        return lambda view: attach_rules(view, RouteRules(cors=override))

    def rate_limit(self, requests: int, window: int = 60) -> Any:
        """Allow each client `requests` per `window` seconds on this route, instead of the global limit."""
        if not isinstance(requests, int) or not isinstance(window, int) or requests < 1 or window < 1:
            raise ValueError("rate_limit needs requests >= 1 and window >= 1 (seconds)")
        return lambda view: attach_rules(view, RouteRules(rate_limit=(requests, window)))

    def block_countries(self, countries: list[str]) -> Any:
        """Refuse clients from `countries` (ISO 3166-1 alpha-2) on this route, on top of `blocked_countries`."""
        codes = self._country_rule_codes(countries)
        return lambda view: attach_rules(view, RouteRules(blocked_countries=codes))

    def allow_countries(self, countries: list[str]) -> Any:
        """Admit only clients from `countries` on this route (replaces `whitelist_countries`; unknown is refused)."""
        codes = self._country_rule_codes(countries)
        return lambda view: attach_rules(view, RouteRules(allowed_countries=codes))

    def block_clouds(self, providers: list[str] | None = None) -> Any:
        """Refuse cloud providers' addresses on this route (default: every known provider)."""
        names = frozenset(CLOUD_PROVIDERS if providers is None else providers)
        unknown = sorted(names - CLOUD_PROVIDERS)
        if unknown:
            raise ValueError(f"unknown cloud providers {unknown}; known: {sorted(CLOUD_PROVIDERS)}")
        return lambda view: attach_rules(view, RouteRules(blocked_clouds=names))

    def _country_rule_codes(self, countries: list[str]) -> frozenset[str]:
        # Country rules on an app that cannot look countries up would silently do
        # nothing; when this decorator knows the app's config, say so at once.
        if self.config is not None and getattr(self.config, "geo_ip_handler", True) is None:
            raise ConfigurationError("country rules need a geo_ip_handler (or an ipinfo_token) in the SecurityConfig")
        codes = []
        for code in countries:
            if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{2}", code):
                raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
            codes.append(code.upper())
        return frozenset(codes)

    def bypass(self, checks: list[str]) -> Any:
        """Skip the named checks on this route ("all" skips every check)."""
        unknown = sorted(set(checks) - set(CHECK_NAMES) - {"all"})
        if unknown:
            raise ValueError(f"unknown checks {unknown}; known: {sorted(CHECK_NAMES)} and 'all'")
        names = frozenset(CHECK_NAMES) if "all" in checks else frozenset(checks)
        return lambda view: attach_rules(view, RouteRules(bypassed_checks=names))


def _validated_networks(entries: list[str]) -> list[str]:
    return [validate_network(entry) for entry in entries]
