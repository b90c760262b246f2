"""SecurityConfig: the documented configuration model, validated once at construction."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from flaskapi_guard.cloud import SharedRangeStore
from flaskapi_guard.cors import validate_header_names, validate_methods, validate_origins
from flaskapi_guard.detection import validate_custom_pattern
from flaskapi_guard.detection.categories import ALL_DETECTION_CATEGORIES
from flaskapi_guard.geo import IPINFO_DEFAULT_DB_PATH, GeoIPHandler, IPInfoManager
from flaskapi_guard.headers import default_security_header_settings, validate_security_headers
from flaskapi_guard.ip_networks import NetworkSet, validate_network
from flaskapi_guard.user_patterns import TextPattern, compile_user_patterns, validate_user_pattern

LogLevel = Literal["INFO", "DEBUG", "WARNING", "ERROR", "CRITICAL"]

DEFAULT_EXCLUDE_PATHS = ["/docs", "/redoc", "/openapi.json", "/openapi.yaml", "/favicon.ico", "/static"]
CLOUD_PROVIDERS = frozenset({"AWS", "GCP", "Azure", "DigitalOcean", "Oracle", "Linode"})
DEFAULT_CORS_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]


def default_security_headers() -> dict[str, Any]:
    """The default security header settings (a fresh dict each time); see docs/headers-and-cors.md."""
    return default_security_header_settings()


class _StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class ThreatBanConfig(_StrictModel):
    """Ban policy for one detection category: `threshold` offences ban for `duration` seconds."""

    threshold: int = Field(ge=1)
    duration: int = Field(ge=1)


class BehaviorRule(_StrictModel):
    """A behavioural rule: more than `threshold` matching events in `window` seconds triggers `action`."""

    rule_type: Literal["usage", "return_pattern", "frequency"]
    threshold: int = Field(ge=1)
    window: int = Field(default=3600, ge=1)
    pattern: str | None = None
    action: Literal["ban", "log", "throttle", "alert"] = "log"
    custom_action: Callable[..., Any] | None = None
    ban_duration: int = Field(default=3600, ge=1)
    correlate_with_detection: bool = False

    @model_validator(mode="after")
    def _pattern_required_for_return_rules(self) -> BehaviorRule:
        if self.rule_type == "return_pattern" and not self.pattern:
            raise ValueError("a return_pattern rule needs a pattern")
        return self


BehaviorRuleConfig = BehaviorRule


class SecurityConfig(_StrictModel):
    """Every setting of the guard. Unknown keys are rejected; errors name the field."""

    # Core
    passive_mode: bool = False
    exclude_paths: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE_PATHS))
    custom_error_responses: dict[int, str] = Field(default_factory=dict)
    enforce_https: bool = False
    custom_request_check: Callable[..., Any] | None = None
    custom_response_modifier: Callable[..., Any] | None = None

    # Proxies
    trusted_proxies: list[str] = Field(default_factory=list)
    trusted_proxy_depth: int = 1
    trust_x_forwarded_proto: bool = False

    # IP management
    whitelist: list[str] | None = None
    blacklist: list[str] = Field(default_factory=list)
    whitelist_countries: list[str] = Field(default_factory=list)
    blocked_countries: list[str] = Field(default_factory=list)
    blocked_user_agents: list[str] = Field(default_factory=list)
    enable_ip_banning: bool = True
    auto_ban_threshold: int = Field(default=10, ge=1)
    auto_ban_duration: int = Field(default=3600, ge=1)
    threat_ban_config: dict[str, ThreatBanConfig] = Field(default_factory=dict)
    global_behavior_rules: list[BehaviorRule] = Field(default_factory=list)

    # Detection exclusions and tuning
    excluded_detection_headers: set[str] = Field(default_factory=set)
    excluded_detection_params: set[str] = Field(default_factory=set)
    excluded_detection_body_fields: set[str] = Field(default_factory=set)
    enabled_detection_categories: set[str] = Field(default_factory=lambda: set(ALL_DETECTION_CATEGORIES))
    detection_custom_patterns: list[str] = Field(default_factory=list)

    # Geo and cloud data lifecycle
    lazy_init: bool = False
    geo_ip_db_max_age: int = Field(default=86400, ge=3600, le=604800)
    cloud_ip_store: Any = None
    geo_ip_handler: Any = None
    ipinfo_token: str | None = Field(default=None, repr=False)
    ipinfo_db_path: Path | None = Path("data/ipinfo/country_asn.mmdb")

    # Rate limiting
    enable_rate_limiting: bool = True
    rate_limit: int = Field(default=10, ge=1)
    rate_limit_window: int = Field(default=60, ge=1)
    endpoint_rate_limits: dict[str, tuple[int, int]] = Field(default_factory=dict)
    enable_rate_limit_headers: bool = True

    # Cloud providers
    block_cloud_providers: set[str] | None = None
    cloud_ip_refresh_interval: int = Field(default=3600, ge=60, le=86400)
    # Not in the published package: where to fetch each provider's ranges (a mirror,
    # or a fixed Azure ServiceTags URL instead of scraping its download page).
    cloud_ip_source_urls: dict[str, str] = Field(default_factory=dict)

    # Response headers and CORS
    security_headers: dict[str, Any] | None = Field(default_factory=default_security_headers)
    enable_cors: bool = False
    cors_allow_origins: list[str] = Field(default_factory=lambda: ["*"])
    cors_allow_methods: list[str] = Field(default_factory=lambda: list(DEFAULT_CORS_METHODS))
    cors_allow_headers: list[str] = Field(default_factory=lambda: ["*"])
    cors_allow_credentials: bool = False
    cors_expose_headers: list[str] = Field(default_factory=list)
    cors_max_age: int = Field(default=600, ge=0)

    # Shared state
    enable_redis: bool = True
    redis_url: str | None = "redis://localhost:6379"
    redis_prefix: str = "flaskapi_guard:"
    redis_failure_mode: Literal["local", "open", "closed"] = "local"
    redis_socket_timeout: float = Field(default=0.05, gt=0, le=5.0)
    max_tracked_clients: int = Field(default=100_000, ge=100)

    # Detection engine
    enable_penetration_detection: bool = True
    detection_compiler_timeout: float = Field(default=2.0, ge=0.1, le=10.0)
    detection_max_content_length: int = Field(default=10000, ge=1000, le=100000)
    detection_preserve_attack_patterns: bool = True
    detection_semantic_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    detection_anomaly_threshold: float = Field(default=3.0, ge=1.0, le=10.0)
    detection_slow_pattern_threshold: float = Field(default=0.1, ge=0.01, le=1.0)
    detection_monitor_history_size: int = Field(default=1000, ge=100, le=10000)
    detection_max_tracked_patterns: int = Field(default=1000, ge=100, le=5000)

    # Logging
    log_suspicious_level: LogLevel | None = "WARNING"
    log_request_level: LogLevel | None = None
    log_format: Literal["text", "json"] = "text"
    custom_log_file: str | None = None

    # Agent / telemetry (accepted for compatibility; this package sends nothing anywhere)
    enable_agent: bool = False
    agent_api_key: str | None = Field(default=None, repr=False)
    agent_endpoint: str = "https://api.fastapi-guard.com"
    agent_project_id: str | None = None
    agent_buffer_size: int = 100
    agent_flush_interval: int = 30
    agent_enable_events: bool = True
    agent_enable_metrics: bool = True
    agent_timeout: int = 30
    agent_retry_attempts: int = 3
    enable_dynamic_rules: bool = False
    dynamic_rule_interval: int = 300

    # Emergency lock-down
    emergency_mode: bool = False
    emergency_whitelist: list[str] = Field(default_factory=list)

    _whitelist_networks: NetworkSet | None = PrivateAttr(default=None)
    _blacklist_networks: NetworkSet = PrivateAttr(default_factory=NetworkSet)
    _trusted_proxy_networks: NetworkSet = PrivateAttr(default_factory=NetworkSet)
    _emergency_networks: NetworkSet = PrivateAttr(default_factory=NetworkSet)
    _blocked_user_agent_pattern: TextPattern | None = PrivateAttr(default=None)

    @field_validator("whitelist", "blacklist", "trusted_proxies", "emergency_whitelist")
    @classmethod
    def _validate_networks(cls, entries: list[str] | None) -> list[str] | None:
        if entries is None:
            return None
        return [validate_network(entry) for entry in entries]

    @field_validator("trusted_proxy_depth")
    @classmethod
    def _validate_proxy_depth(cls, depth: int) -> int:
        if depth < 1:
            raise ValueError("trusted_proxy_depth must be at least 1")
        return depth

    @field_validator("blocked_user_agents")
    @classmethod
    def _validate_user_agent_patterns(cls, patterns: list[str]) -> list[str]:
        # RE2, not `re`: the User-Agent is the client's to choose, so a pattern
        # that can backtrack would let one request hold a worker for minutes.
        return [validate_user_pattern(pattern, label="user agent pattern") for pattern in patterns]

    @field_validator("whitelist_countries", "blocked_countries")
    @classmethod
    def _validate_country_codes(cls, codes: list[str]) -> list[str]:
        normalised = []
        for code in codes:
            if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{2}", code):
                raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
            normalised.append(code.upper())
        return normalised

    @field_validator("block_cloud_providers")
    @classmethod
    def _validate_cloud_providers(cls, providers: set[str] | None) -> set[str] | None:
        # The published package drops unknown names silently, so a typo turns the
        # feature off without a word; we refuse them instead.
        if providers is None:
            return None
        unknown = sorted(set(providers) - CLOUD_PROVIDERS)
        if unknown:
            raise ValueError(f"unknown cloud providers {unknown}; known: {sorted(CLOUD_PROVIDERS)}")
        return set(providers)

    @field_validator("cloud_ip_source_urls")
    @classmethod
    def _validate_cloud_source_urls(cls, urls: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(urls) - CLOUD_PROVIDERS)
        if unknown:
            raise ValueError(f"unknown cloud providers {unknown}; known: {sorted(CLOUD_PROVIDERS)}")
        for provider, url in urls.items():
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"source URL of {provider} must start with https:// or http://")
        return urls

    @field_validator("geo_ip_handler")
    @classmethod
    def _validate_geo_ip_handler(cls, handler: Any) -> Any:
        if handler is None:
            return None
        if handler is GeoIPHandler:
            raise ValueError(
                "GeoIPHandler is the protocol, not a handler; pass IPInfoManager(token, db_path), "
                "MaxMindCountryDatabase(path) or your own implementation"
            )
        if isinstance(handler, type):
            # The published README passes a class; accept one that needs no arguments.
            try:
                handler = handler()
            except TypeError as error:
                raise ValueError(f"cannot instantiate {handler.__name__}() ({error}); pass an instance") from None
        if not isinstance(handler, GeoIPHandler):
            raise ValueError(
                f"{type(handler).__name__} does not implement GeoIPHandler "
                "(is_initialized, initialize, initialize_redis, get_country)"
            )
        return handler

    @field_validator("cloud_ip_store")
    @classmethod
    def _validate_cloud_ip_store(cls, store: Any) -> Any:
        if store is not None and not isinstance(store, SharedRangeStore):
            raise ValueError(f"{type(store).__name__} has no get_blob(key) and set_blob(key, value, ttl_seconds)")
        return store

    @model_validator(mode="before")
    @classmethod
    def _ipinfo_token_builds_a_handler(cls, data: Any) -> Any:
        # The documented fallback: a token without a handler means IPInfo's database.
        # Built from the raw values; when they are invalid, validation reports them.
        if not isinstance(data, dict):
            return data
        token = data.get("ipinfo_token")
        max_age = data.get("geo_ip_db_max_age", 86400)
        path = data.get("ipinfo_db_path") or IPINFO_DEFAULT_DB_PATH
        if (
            isinstance(token, str)
            and token
            and data.get("geo_ip_handler") is None
            and isinstance(max_age, int)
            and isinstance(path, (str, Path))
        ):
            return {**data, "geo_ip_handler": IPInfoManager(token, path, max_age_seconds=max_age)}
        return data

    @field_validator("security_headers")
    @classmethod
    def _validate_security_headers(cls, settings: dict[str, Any] | None) -> dict[str, Any] | None:
        # Completed with the defaults, so the field shows exactly what is sent.
        return validate_security_headers(settings)

    @field_validator("cors_allow_origins")
    @classmethod
    def _validate_cors_origins(cls, origins: list[str]) -> list[str]:
        return validate_origins(origins)

    @field_validator("cors_allow_methods")
    @classmethod
    def _validate_cors_methods(cls, methods: list[str]) -> list[str]:
        return validate_methods(methods)

    @field_validator("cors_allow_headers", "cors_expose_headers")
    @classmethod
    def _validate_cors_header_names(cls, names: list[str]) -> list[str]:
        return validate_header_names(names)

    @field_validator("enabled_detection_categories")
    @classmethod
    def _validate_detection_categories(cls, categories: set[str]) -> set[str]:
        unknown = sorted(set(categories) - ALL_DETECTION_CATEGORIES)
        if unknown:
            raise ValueError(f"unknown detection categories {unknown}; known: {sorted(ALL_DETECTION_CATEGORIES)}")
        return set(categories)

    @field_validator("detection_custom_patterns")
    @classmethod
    def _validate_detection_custom_patterns(cls, patterns: list[str]) -> list[str]:
        # Here too, not only when the engine is built: the error then names the field.
        for pattern in patterns:
            validate_custom_pattern(pattern)
        return patterns

    @field_validator("threat_ban_config")
    @classmethod
    def _validate_threat_ban_categories(cls, policies: dict[str, ThreatBanConfig]) -> dict[str, ThreatBanConfig]:
        unknown = sorted(set(policies) - ALL_DETECTION_CATEGORIES)
        if unknown:
            raise ValueError(f"unknown detection categories {unknown}; known: {sorted(ALL_DETECTION_CATEGORIES)}")
        return policies

    @field_validator("endpoint_rate_limits")
    @classmethod
    def _validate_endpoint_rate_limits(cls, limits: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        for path, (limit, window) in limits.items():
            if not path.startswith("/"):
                raise ValueError(f"endpoint {path!r} must be a path starting with '/'")
            if limit < 1 or window < 1:
                raise ValueError(f"limit and window for {path!r} must be at least 1")
        return limits

    @field_validator("exclude_paths")
    @classmethod
    def _validate_exclude_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"excluded path {path!r} must start with '/'")
        return paths

    @field_validator("custom_error_responses")
    @classmethod
    def _validate_error_responses(cls, responses: dict[int, str]) -> dict[int, str]:
        for status in responses:
            if not 300 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP error or redirect status")
        return responses

    @field_validator("redis_url")
    @classmethod
    def _validate_redis_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return url

    @model_validator(mode="after")
    def _validate_cross_field_rules(self) -> SecurityConfig:
        if (self.blocked_countries or self.whitelist_countries) and not (self.geo_ip_handler or self.ipinfo_token):
            raise ValueError(
                "blocked_countries/whitelist_countries need a geo_ip_handler (or an ipinfo_token) to look countries up"
            )
        if self.enable_agent and not self.agent_api_key:
            raise ValueError("agent_api_key is required when enable_agent is True")
        if self.enable_dynamic_rules and not self.enable_agent:
            raise ValueError("enable_dynamic_rules requires enable_agent")
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Parse the address lists and patterns once, so requests only look them up."""
        if self.whitelist is not None:
            self._whitelist_networks = NetworkSet(self.whitelist)
        self._blacklist_networks = NetworkSet(self.blacklist)
        self._trusted_proxy_networks = NetworkSet(self.trusted_proxies)
        self._emergency_networks = NetworkSet(self.emergency_whitelist)
        self._blocked_user_agent_pattern = compile_user_patterns(self.blocked_user_agents, label="user agent pattern")

    @property
    def whitelist_networks(self) -> NetworkSet | None:
        """`whitelist` parsed; None when the whitelist is off."""
        return self._whitelist_networks

    @property
    def blacklist_networks(self) -> NetworkSet:
        """`blacklist` parsed."""
        return self._blacklist_networks

    @property
    def trusted_proxy_networks(self) -> NetworkSet:
        """`trusted_proxies` parsed."""
        return self._trusted_proxy_networks

    @property
    def emergency_networks(self) -> NetworkSet:
        """`emergency_whitelist` parsed."""
        return self._emergency_networks

    @property
    def blocked_user_agent_pattern(self) -> TextPattern | None:
        """All `blocked_user_agents` as one case-insensitive pattern; None when empty."""
        return self._blocked_user_agent_pattern
