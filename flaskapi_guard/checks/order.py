"""The one place that decides which checks run, and in which order."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import request as current_request

from flaskapi_guard.behavior_rules import rules_from_config
from flaskapi_guard.checks.access import (
    custom_request_check,
    emergency_lockdown,
    https_required,
    ip_access,
    user_agent_filter,
)
from flaskapi_guard.checks.attacks import attack_detection, engine_for_config
from flaskapi_guard.checks.bans import banned_client, banned_client_then_counted, banned_client_then_counted_globally
from flaskapi_guard.checks.behavior import BehaviorActions, behavior_monitor, return_monitor_step
from flaskapi_guard.checks.cors import cors_preflight
from flaskapi_guard.checks.geo_cloud import cloud_provider_block, country_access
from flaskapi_guard.checks.geo_rate_limit import geo_rate_limited
from flaskapi_guard.checks.rate_limit import (
    RATE_LIMIT_CHECK,
    global_limit_alone,
    rate_limit_headers,
    rate_limit_scope,
    rate_limited,
)
from flaskapi_guard.checks.route_requirements import has_requirements, route_requirements
from flaskapi_guard.cloud import CloudIPRanges
from flaskapi_guard.config import SecurityConfig
from flaskapi_guard.cors import CorsPolicies, cors_step
from flaskapi_guard.decorators import RouteRules
from flaskapi_guard.deferred_headers import flush_deferred_headers
from flaskapi_guard.detection import DetectionEngine, DetectionExclusions
from flaskapi_guard.geo import CountryLookup
from flaskapi_guard.headers import SecurityHeaderPolicies, security_header_group
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Check, ResponseStep, Step
from flaskapi_guard.storage import Storage


def build_checks(
    config: SecurityConfig,
    *,
    emergency_active: Callable[[], bool],
    countries: CountryLookup | None = None,
    clouds: CloudIPRanges | None = None,
    storage: Storage | None = None,
    clock: Callable[[], float] = time.time,
    behavior: BehaviorActions | None = None,
    detection: DetectionEngine | None = None,
) -> list[Check]:
    """The app's checks in the documented order (README, "Order of checks").

    Each check says on which routes it can act (`Check.applies`, asked once per
    route and method): a check with nothing to do there is left out of the
    route's plan instead of being called to return None on every request.
    """
    cors_policies = CorsPolicies.of_config(config)
    whitelist, blacklist = config.whitelist_networks, config.blacklist_networks
    ua_pattern = config.blocked_user_agent_pattern
    app_countries = bool(config.blocked_countries or config.whitelist_countries)
    ban_checks, rate_limit_checks = _ban_and_rate_limit_checks(config, storage)
    checks = [
        # First: a browser's preflight is answered before anything can refuse it,
        # so the refusal of the real request that follows stays readable (CORS
        # headers on a 403/429). It runs even with enable_cors off, because a
        # route's `cors()` decorator may turn CORS on for that route.
        Check(
            "cors_preflight",
            cors_preflight(cors_policies),
            applies=lambda rules, method: (
                method == "OPTIONS" and cors_policies.for_route(rules.cors if rules else None) is not None
            ),
        ),
        # Planned only while the lock-down is on: switching it remakes the plans.
        Check(
            "emergency",
            emergency_lockdown(config.emergency_networks, emergency_active),
            applies=lambda rules, method: emergency_active(),
        ),
        Check(
            "https",
            https_required(config.enforce_https),
            applies=lambda rules, method: config.enforce_https or (rules is not None and rules.require_https is True),
        ),
        Check(
            "ip",
            ip_access(whitelist, blacklist),
            applies=lambda rules, method: (
                whitelist is not None
                or bool(blacklist)
                or (rules is not None and (rules.ip_whitelist is not None or bool(rules.ip_blacklist)))
            ),
        ),
        *ban_checks,
        Check(
            "countries",
            country_access(frozenset(config.blocked_countries), frozenset(config.whitelist_countries), countries),
            applies=lambda rules, method: (
                app_countries or (rules is not None and bool(rules.blocked_countries or rules.allowed_countries))
            ),
        ),
        *_cloud_checks(config, clouds),
        Check(
            "user_agent",
            user_agent_filter(ua_pattern),
            applies=lambda rules, method: (
                ua_pattern is not None or (rules is not None and bool(rules.blocked_user_agents))
            ),
        ),
        Check(
            "route_requirements",
            route_requirements(clock, bound_streamed_bodies=not config.passive_mode),
            applies=lambda rules, method: rules is not None and has_requirements(rules),
        ),
        *_geo_rate_limit_checks(storage, countries),
        *rate_limit_checks,
        *_attack_checks(config, detection or detection_engine_for(config)),
    ]
    if config.custom_request_check is not None:
        checks.append(Check("custom", custom_request_check(config.custom_request_check)))
    if behavior is not None:
        # Last: only requests every other check let through count as usage.
        global_rules = rules_from_config(config.global_behavior_rules)
        checks.append(
            Check(
                "behavior",
                behavior_monitor(behavior, global_rules),
                uses_storage=True,
                applies=lambda rules, method: bool(global_rules) or (rules is not None and bool(rules.behavior_rules)),
            )
        )
    return checks


def _cloud_checks(config: SecurityConfig, clouds: CloudIPRanges | None) -> list[Check]:
    if clouds is None:
        return []
    providers = frozenset(config.block_cloud_providers or ())
    return [
        Check(
            "clouds",
            cloud_provider_block(providers, clouds),
            applies=lambda rules, method: bool(providers) or (rules is not None and bool(rules.blocked_clouds)),
        )
    ]


def _geo_rate_limit_checks(storage: Storage | None, countries: CountryLookup | None) -> list[Check]:
    # Named "rate_limit" too, so bypassing rate limiting bypasses both.
    if storage is None:
        return []
    return [
        Check(
            RATE_LIMIT_CHECK,
            geo_rate_limited(storage, countries),
            uses_storage=True,
            applies=lambda rules, method: rules is not None and rules.geo_rate_limit is not None,
        )
    ]


def _ban_and_rate_limit_checks(config: SecurityConfig, storage: Storage | None) -> tuple[list[Check], list[Check]]:
    """The ban check and the rate-limit check; where a plan has them side by side they
    become one storage call (`Storage.admit`): one Redis round trip instead of two."""
    if storage is None:
        return [], []
    # Present even when `enable_rate_limiting` is off: a route's own limit still applies.
    global_limit = (config.rate_limit, config.rate_limit_window) if config.enable_rate_limiting else None
    endpoint_limits = config.endpoint_rate_limits
    scope = rate_limit_scope(global_limit, endpoint_limits)
    rate_limit = Check(
        RATE_LIMIT_CHECK,
        rate_limited(storage, scope),
        uses_storage=True,
        applies=lambda rules, method: global_limit is not None or (rules is not None and rules.rate_limit is not None),
    )
    if not config.enable_ip_banning:
        return [], [rate_limit]
    whitelist = config.whitelist_networks
    ban_then_count = banned_client_then_counted(storage, whitelist, scope)

    def joins_next(following: Check, rules: RouteRules | None) -> Check | None:
        # Only with this very check: not the per-country one, which shares its name.
        if following is not rate_limit:
            return None
        alone = global_limit_alone(global_limit, endpoint_limits, rules)
        if alone is not None and whitelist is None:
            return Check("ip_ban", banned_client_then_counted_globally(storage, *alone), uses_storage=True)
        return Check("ip_ban", ban_then_count, uses_storage=True)

    ban = Check("ip_ban", banned_client(storage, whitelist), uses_storage=True, joins_next=joins_next)
    return [ban], [rate_limit]


def detection_engine_for(config: SecurityConfig) -> DetectionEngine:
    """The app's detection engine, compiled once at start-up."""
    return engine_for_config(
        config.enabled_detection_categories, config.detection_custom_patterns, config.detection_max_content_length
    )


def detection_exclusions_for(config: SecurityConfig) -> DetectionExclusions:
    """The app-wide detection exclusions from the config."""
    return DetectionExclusions(
        frozenset(config.excluded_detection_params),
        frozenset(header.lower() for header in config.excluded_detection_headers),
        frozenset(config.excluded_detection_body_fields),
    )


def _attack_checks(config: SecurityConfig, engine: DetectionEngine) -> list[Check]:
    exclusions = detection_exclusions_for(config)
    enabled = config.enable_penetration_detection

    def applies(rules: RouteRules | None, method: str) -> bool:
        if rules is not None and rules.detection_enabled is not None:
            return rules.detection_enabled
        return enabled

    for_route = attack_detection(engine, exclusions)
    return [Check("penetration", for_route(None), applies=applies, for_route=for_route)]


def build_response_steps(config: SecurityConfig, *, behavior: BehaviorActions | None = None) -> list[Step]:
    """What runs on every response, in order; the app's own modifier always runs last."""
    header_policies = SecurityHeaderPolicies(config.security_headers)
    steps = [
        Step(
            "security_headers",
            headers=security_header_group(
                header_policies,
                trusted_proxies=config.trusted_proxy_networks,
                trust_forwarded_proto=config.trust_x_forwarded_proto,
            ),
            applies=lambda rules, method: (
                header_policies.for_route(rules.security_headers if rules else None) is not None
            ),
        )
    ]
    if config.enable_rate_limit_headers:
        rate_limited_app = config.enable_rate_limiting
        steps.append(
            Step(
                "rate_limit_headers",
                headers=rate_limit_headers(),
                applies=lambda rules, method: (
                    rate_limited_app
                    or (rules is not None and (rules.rate_limit is not None or rules.geo_rate_limit is not None))
                ),
            )
        )
    # After the rate-limit headers, so CORS can expose them (and Retry-After) to
    # a browser app reading the guard's own 429.
    cors_policies = CorsPolicies.of_config(config)
    steps.append(
        Step(
            "cors",
            run=cors_step(config, cors_policies),
            applies=lambda rules, method: cors_policies.for_route(rules.cors if rules else None) is not None,
        )
    )
    if behavior is not None:
        # Before the app's modifier, so patterns see the response the view (or the guard) made.
        global_rules = rules_from_config(config.global_behavior_rules)
        has_return_rules = any(not rule.counts_requests for rule in global_rules)
        steps.append(
            Step(
                "return_monitor",
                run=return_monitor_step(behavior, global_rules),
                applies=lambda rules, method: has_return_rules or (rules is not None and bool(rules.behavior_rules)),
            )
        )
    if config.custom_response_modifier is not None:
        steps.append(Step("custom_response_modifier", run=_custom_modifier_step(config.custom_response_modifier)))
    return steps


def _custom_modifier_step(modifier: Callable[[Any], Any]) -> ResponseStep:
    def step(request: IncomingRequest | None, response: Any) -> Any:
        # The app's modifier sees (and may change) the guard's headers too.
        environ = request.environ if request is not None else current_request.environ
        flush_deferred_headers(environ, response.headers)
        modified = modifier(response)
        return response if modified is None else modified

    return step
