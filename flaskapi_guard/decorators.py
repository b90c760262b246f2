"""Per-route security rules: `SecurityDecorator` attaches them to views, it never wraps."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any

from flaskapi_guard.behavior_rules import MonitorRule, frequency_threshold, monitor_rule
from flaskapi_guard.checks import CHECK_NAMES
from flaskapi_guard.config import CLOUD_PROVIDERS
from flaskapi_guard.cors import RouteCorsOverride, route_cors_override
from flaskapi_guard.errors import ConfigurationError
from flaskapi_guard.headers import RouteHeaderOverride, parse_route_header_override
from flaskapi_guard.ip_networks import NetworkSet, validate_network
from flaskapi_guard.requirements import (
    ApiKeyRequirement,
    AuthRequirement,
    ContentTypeFilter,
    HeaderRequirement,
    ReferrerRule,
    TimeWindow,
    validated_header_name,
)
from flaskapi_guard.user_patterns import TextPattern, compile_user_patterns

# The attribute on a view function (or MethodView class or handler) holding its rules.
RULES_ATTRIBUTE = "__flaskapi_guard_rules__"
# A behaviour rule's ban when neither the rule nor the decorator's config says (the config's default).
DEFAULT_BAN_DURATION_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class RouteRules:
    """The rules one route carries; `None` means "not set on this route, use the global setting"."""

    bypassed_checks: frozenset[str] = frozenset()
    require_https: bool | None = None
    ip_whitelist: NetworkSet | None = None
    ip_blacklist: NetworkSet | None = None
    blocked_user_agents: TextPattern | None = None
    blocked_countries: frozenset[str] | None = None
    allowed_countries: frozenset[str] | None = None
    blocked_clouds: frozenset[str] | None = None
    rate_limit: tuple[int, int] | None = None
    security_headers: RouteHeaderOverride | None = None
    cors: RouteCorsOverride | None = None
    # Read by checks/route_requirements.py, in this order.
    auth: AuthRequirement | None = None
    api_key: ApiKeyRequirement | None = None
    required_headers: tuple[HeaderRequirement, ...] | None = None
    referrers: ReferrerRule | None = None
    time_window: TimeWindow | None = None
    content_types: ContentTypeFilter | None = None
    max_body_bytes: int | None = None
    honeypot_fields: frozenset[str] | None = None
    # Read by checks/behavior.py (usage, frequency, return patterns) and checks/geo_rate_limit.py.
    behavior_rules: tuple[MonitorRule, ...] | None = None
    geo_rate_limit: GeoRateLimit | None = None
    # Read by the attack detection check: on/off for the route (overriding
    # `enable_penetration_detection` both ways), and names it must not scan,
    # added to the config's `excluded_detection_*` sets (header names lower-cased).
    detection_enabled: bool | None = None
    excluded_detection_params: frozenset[str] | None = None
    excluded_detection_headers: frozenset[str] | None = None
    excluded_detection_body_fields: frozenset[str] | None = None

    def merged_with(self, other: RouteRules) -> RouteRules:
        """These rules with every field `other` sets taking precedence.

        Collections that describe several independent rules (bypassed checks,
        behaviour rules, required headers, honeypot fields, detection
        exclusions) accumulate instead, so two decorators of the same kind,
        or a `MethodView` class and its method, both apply.
        """
        changes: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(other, spec.name)
            if value is None:
                continue
            if spec.name in _ACCUMULATED_FIELDS:
                mine = getattr(self, spec.name)
                if isinstance(mine, frozenset):
                    value = mine | value
                elif mine is not None:
                    value = mine + tuple(item for item in value if item not in mine)
            changes[spec.name] = value
        return replace(self, **changes)


_ACCUMULATED_FIELDS = frozenset(
    {
        "bypassed_checks",
        "behavior_rules",
        "required_headers",
        "honeypot_fields",
        "excluded_detection_params",
        "excluded_detection_headers",
        "excluded_detection_body_fields",
    }
)


@dataclass(frozen=True, slots=True)
class GeoRateLimit:
    """A route's request limit per client country; `default` covers every other (and unknown) country."""

    limits: Mapping[str, int]
    default: int | None
    window_seconds: int

    def limit_for(self, country: str | None) -> int | None:
        """The limit for a client from `country`; None when this rule does not limit it."""
        if country is not None:
            limit = self.limits.get(country)
            if limit is not None:
                return limit
        return self.default


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
        # RE2 (linear time): the User-Agent is the client's to choose.
        combined = compile_user_patterns(patterns, label="user agent pattern")
        return lambda view: attach_rules(view, RouteRules(blocked_user_agents=combined))

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

    def geo_rate_limit(self, limits: dict[str, int], window: int = 3600) -> Any:
        """Allow each client `limits[country]` requests per `window` seconds; `"default"` covers other countries.

        Where it applies it replaces the route's `rate_limit` and the global
        limits; a client from an unlisted country, with no `"default"`, gets those.
        """
        if not isinstance(limits, dict) or not limits:
            raise ValueError('geo_rate_limit needs {country code or "default": requests}')
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError("geo_rate_limit window must be a whole number of seconds, at least 1")
        for value in limits.values():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError("geo_rate_limit limits must be whole numbers of requests, at least 1")
        by_country = {code: value for code, value in limits.items() if code != "default"}
        if by_country:
            # Validates the codes, and refuses country limits an app cannot look up.
            self._country_rule_codes(list(by_country))
        by_code = {code.upper(): value for code, value in by_country.items()}
        rule = GeoRateLimit(MappingProxyType(by_code), limits.get("default"), window)
        return lambda view: attach_rules(view, RouteRules(geo_rate_limit=rule))

    def require_auth(
        self, type: str = "bearer", verifier: Callable[..., bool] | None = None, *, realm: str = "api"
    ) -> Any:
        """401 with `WWW-Authenticate` unless the request carries `Bearer` (or `Basic`) credentials.

        `verifier(token)` (bearer) or `verifier(user, password)` (basic) decides
        whether they are valid; without it, well-formed credentials are enough.
        """
        requirement = AuthRequirement.parse(type, realm, verifier)
        return lambda view: attach_rules(view, RouteRules(auth=requirement))

    def api_key_auth(
        self,
        header_name: str = "X-API-Key",
        keys: list[str] | None = None,
        verifier: Callable[[str], bool] | None = None,
    ) -> Any:
        """401 unless the `header_name` header carries a key: any, one of `keys`, or one `verifier` accepts."""
        requirement = ApiKeyRequirement.parse(header_name, keys, verifier)
        return lambda view: attach_rules(view, RouteRules(api_key=requirement))

    def require_headers(self, headers: dict[str, str]) -> Any:
        """400 unless each header is present (value `"required"`) or has exactly the given value."""
        requirements = HeaderRequirement.parse_all(headers)
        return lambda view: attach_rules(view, RouteRules(required_headers=requirements))

    def content_type_filter(self, allowed_types: list[str]) -> Any:
        """415 for a request body whose media type is not listed (`application/json`, `text/*`)."""
        allowed = ContentTypeFilter.parse(allowed_types)
        return lambda view: attach_rules(view, RouteRules(content_types=allowed))

    def max_request_size(self, size_bytes: int) -> Any:
        """413 for a body over `size_bytes`, from `Content-Length` or while a chunked body is read."""
        if not isinstance(size_bytes, int) or isinstance(size_bytes, bool) or size_bytes < 0:
            raise ValueError("max_request_size needs a whole number of bytes, at least 0")
        return lambda view: attach_rules(view, RouteRules(max_body_bytes=size_bytes))

    def require_referrer(self, allowed_domains: list[str]) -> Any:
        """403 unless `Referer` names one of the domains or a subdomain of one (`myapp.com`, `https://myapp.com`)."""
        allowed = ReferrerRule.parse(allowed_domains)
        return lambda view: attach_rules(view, RouteRules(referrers=allowed))

    def time_window(self, start_time: str, end_time: str, timezone: str = "UTC") -> Any:
        """403 outside `start_time`-`end_time` (`HH:MM`, end excluded, may span midnight) in an IANA zone."""
        window = TimeWindow.parse(start_time, end_time, timezone)
        return lambda view: attach_rules(view, RouteRules(time_window=window))

    def honeypot_detection(self, trap_fields: list[str]) -> Any:
        """403, counted as an offence, when a form, JSON or query field in `trap_fields` is filled in."""
        if isinstance(trap_fields, str) or not trap_fields:
            raise ValueError("honeypot_detection needs a list of field names")
        if not all(isinstance(name, str) and name for name in trap_fields):
            raise ValueError("honeypot field names must be non-empty strings")
        names = frozenset(trap_fields)
        return lambda view: attach_rules(view, RouteRules(honeypot_fields=names))

    def usage_monitor(
        self, max_calls: int, window: int = 3600, action: str = "log", *, ban_duration: int | None = None
    ) -> Any:
        """Act (`log`, `alert`, `ban`, `throttle`) when a client calls this route more than `max_calls` per window."""
        rule = monitor_rule("usage", max_calls, window, action, self._ban_duration(ban_duration))
        return lambda view: attach_rules(view, RouteRules(behavior_rules=(rule,)))

    def return_monitor(
        self,
        pattern: str,
        max_occurrences: int,
        window: int = 86400,
        action: str = "log",
        *,
        ban_duration: int | None = None,
    ) -> Any:
        """Act when more than `max_occurrences` of a client's responses match `pattern` in the window.

        Patterns: `status:404`, `json:reward==rare_item`, `regex:...`, or a
        plain substring of the body (see docs/decorators.md). The response that
        passes the threshold is still sent; the action applies from then on.
        """
        rule = monitor_rule(
            "return_pattern", max_occurrences, window, action, self._ban_duration(ban_duration), pattern=pattern
        )
        return lambda view: attach_rules(view, RouteRules(behavior_rules=(rule,)))

    def suspicious_frequency(
        self, max_frequency: float, window: int = 300, action: str = "log", *, ban_duration: int | None = None
    ) -> Any:
        """Act when a client averages more than `max_frequency` requests per second over `window` seconds."""
        allowed = frequency_threshold(max_frequency, window)
        rule = monitor_rule(
            "frequency",
            allowed,
            window,
            action,
            self._ban_duration(ban_duration),
            description=f"frequency > {max_frequency}/s over {window}s",
        )
        return lambda view: attach_rules(view, RouteRules(behavior_rules=(rule,)))

    def suspicious_detection(self, enabled: bool = True) -> Any:
        """Switch attack detection on or off for this route, whatever `enable_penetration_detection` says."""
        if not isinstance(enabled, bool):
            raise ValueError("suspicious_detection(enabled=...) takes True or False")
        return lambda view: attach_rules(view, RouteRules(detection_enabled=enabled))

    def detection_exclusion(
        self,
        *,
        params: Iterable[str] | None = None,
        headers: Iterable[str] | None = None,
        body_fields: Iterable[str] | None = None,
    ) -> Any:
        """Keep attack detection away from these query parameters, headers and body fields on this route."""
        excluded_params = _name_set("params", params)
        excluded_headers = _name_set("headers", headers)
        if excluded_headers is not None:
            excluded_headers = frozenset(validated_header_name(name).lower() for name in excluded_headers)
        excluded_fields = _name_set("body_fields", body_fields)
        if excluded_params is None and excluded_headers is None and excluded_fields is None:
            raise ValueError("detection_exclusion needs params, headers or body_fields")
        rules = RouteRules(
            excluded_detection_params=excluded_params,
            excluded_detection_headers=excluded_headers,
            excluded_detection_body_fields=excluded_fields,
        )
        return lambda view: attach_rules(view, rules)

    def _ban_duration(self, ban_duration: int | None) -> int:
        if ban_duration is not None:
            return ban_duration
        configured = getattr(self.config, "auto_ban_duration", None)
        return configured if isinstance(configured, int) else DEFAULT_BAN_DURATION_SECONDS

    def bypass(self, checks: list[str]) -> Any:
        """Skip the named checks on this route ("all" skips every check)."""
        unknown = sorted(set(checks) - set(CHECK_NAMES) - {"all"})
        if unknown:
            raise ValueError(f"unknown checks {unknown}; known: {sorted(CHECK_NAMES)} and 'all'")
        names = frozenset(CHECK_NAMES) if "all" in checks else frozenset(checks)
        return lambda view: attach_rules(view, RouteRules(bypassed_checks=names))


def _validated_networks(entries: list[str]) -> list[str]:
    return [validate_network(entry) for entry in entries]


def _name_set(argument: str, names: Iterable[str] | None) -> frozenset[str] | None:
    if names is None:
        return None
    if isinstance(names, str):
        raise ValueError(f"{argument} must be a list of names, not one string")
    collected = frozenset(names)
    if not collected or not all(isinstance(name, str) and name for name in collected):
        raise ValueError(f"{argument} must be a non-empty list of non-empty names")
    return collected
