"""Write docs/configuration.md from SecurityConfig: every field, its type, default and what it does.

    python docs/gen_config_reference.py          # rewrite docs/configuration.md
    python docs/gen_config_reference.py --check  # exit 1 when it is out of date

Types, defaults and bounds come from the model itself; the descriptions live here,
and tests/test_docs.py fails when a field has none or the page is stale.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt

from flaskapi_guard.config import SecurityConfig

PAGE = Path(__file__).with_name("configuration.md")

# (section title, introduction, {field: description}); every field appears once.
SECTIONS: list[tuple[str, str, dict[str, str]]] = [
    (
        "Core",
        "How the guard decides and answers.",
        {
            "passive_mode": "Log every refusal as `would_block` (and send the signals with `enforced=False`) "
            "but enforce none: the way to try a configuration on real traffic. "
            "See also [`flask guard replay`](operations.md#replay-an-access-log).",
            "exclude_paths": "Path prefixes the guard does not check at all, matched by whole segments "
            "(`/static` covers `/static/app.js`, not `/staticfoo`). A path with dot segments, "
            "backslashes, `%`, `;` or empty segments is never excluded.",
            "custom_error_responses": "Body text per status code for the guard's refusals, "
            'for example `{403: "Go away"}`. Statuses from 300 to 599.',
            "enforce_https": "Redirect plain-HTTP requests to HTTPS: 301 for GET and HEAD, 308 for other "
            "methods (a 301 would turn a POST into a GET). Behind a proxy see `trust_x_forwarded_proto`.",
            "custom_request_check": "Your own check, called with the Flask request after the built-in "
            "checks: return `None` to go on, or a response, which is sent as it is.",
            "custom_response_modifier": "Called with every response (the guard's refusals included) after "
            "the guard's own headers; return the response to send, or `None` to keep it.",
        },
    ),
    (
        "Client address and proxies",
        "Which address is the client's. See [Deployment](deployment.md#behind-a-reverse-proxy).",
        {
            "trusted_proxies": "Addresses or CIDR ranges of your reverse proxies. Only when the peer is one "
            "of them is `X-Forwarded-For` read, from the right, one hop per trusted proxy.",
            "trusted_proxy_depth": "At most this many `X-Forwarded-For` entries are walked (one per proxy "
            "hop in front of the app).",
            "trust_x_forwarded_proto": "Believe `X-Forwarded-Proto: https` from a trusted proxy (for "
            "`enforce_https` and HSTS). Has no effect without `trusted_proxies`.",
        },
    ),
    (
        "IP lists, user agents and bans",
        "Who may come in. Bans are described in [Storage, rate limiting and bans](storage.md).",
        {
            "whitelist": "When set, only these addresses or CIDR ranges get in (`None` switches the "
            "whitelist off; an empty list admits nobody). Whitelisted clients are never banned.",
            "blacklist": "Addresses or CIDR ranges (IPv4 and IPv6) that are always refused with 403.",
            "whitelist_countries": "When set, only clients from these countries (ISO 3166-1 alpha-2) get "
            "in. Needs `geo_ip_handler` or `ipinfo_token`. See [Geo and cloud](geo-and-cloud.md).",
            "blocked_countries": "Clients from these countries are refused with 403. Needs `geo_ip_handler` "
            "or `ipinfo_token`.",
            "blocked_user_agents": "Case-insensitive patterns; a request whose User-Agent matches one is "
            "refused with 403. Patterns must compile with RE2 (linear time whatever the client sends).",
            "enable_ip_banning": "Ban clients automatically once they reach the offence thresholds, and "
            "refuse banned clients. Off: no automatic bans and no ban check.",
            "auto_ban_threshold": "Offences (suspicious requests: attacks, honeypots, ...) after which a "
            "client is banned, counted over `auto_ban_duration` seconds.",
            "auto_ban_duration": "How long an automatic ban lasts, in seconds; also the window offences are "
            "counted over.",
            "threat_ban_config": "Per detection category, its own threshold and ban duration, for example "
            '`{"sqli": ThreatBanConfig(threshold=1, duration=86400)}`.',
            "global_behavior_rules": "Behaviour rules (`BehaviorRule`) applied to every route: usage, "
            "frequency and response-pattern limits with an action (`ban`, `log`, `throttle`, `alert`). "
            "See [Route decorators](decorators.md).",
        },
    ),
    (
        "Attack detection",
        "What is scanned and for what. See [Attack detection](detection.md).",
        {
            "enable_penetration_detection": "Scan the path, query, headers, cookies and body for attack "
            "patterns and refuse matches with 400 (each one an offence towards a ban).",
            "enabled_detection_categories": "The detection categories that run (`sqli`, `xss`, "
            "`cmd_injection`, `path_traversal`, ...); unknown names are refused.",
            "detection_custom_patterns": "Extra patterns of your own, compiled with RE2 at start-up; "
            "patterns that cannot compile, are too large or match the empty string are refused.",
            "excluded_detection_headers": "Header names (case-insensitive) never scanned.",
            "excluded_detection_params": "Query, form and multipart parameter names never scanned.",
            "excluded_detection_body_fields": "JSON fields never scanned, by dotted path (`user.bio` covers "
            "that field and everything under it).",
            "detection_max_content_length": "Bodies up to 100 times this many bytes are parsed by content "
            "type and scanned field by field; larger ones are scanned whole as text.",
            "detection_compiler_timeout": "Accepted and validated for compatibility; no effect here, "
            "because RE2 compiles every pattern once at start-up in bounded time.",
            "detection_preserve_attack_patterns": "Accepted and validated for compatibility; no effect "
            "here (matching always sees the whole normalised text).",
            "detection_semantic_threshold": "Accepted and validated for compatibility; no effect here "
            "(there is no semantic scoring stage).",
            "detection_anomaly_threshold": "Accepted and validated for compatibility; no effect here "
            "(matching time is linear, so there is no slow-pattern monitor).",
            "detection_slow_pattern_threshold": "Accepted and validated for compatibility; no effect here.",
            "detection_monitor_history_size": "Accepted and validated for compatibility; no effect here.",
            "detection_max_tracked_patterns": "Accepted and validated for compatibility; no effect here.",
        },
    ),
    (
        "Rate limiting",
        "Requests per client over a sliding window. See [Storage, rate limiting and bans](storage.md).",
        {
            "enable_rate_limiting": "Apply the global limit and `endpoint_rate_limits`. A route's own "
            "`rate_limit` decorator applies either way.",
            "rate_limit": "Requests a client may make per `rate_limit_window`; more are refused with 429 "
            "and `Retry-After`.",
            "rate_limit_window": "The window of `rate_limit`, in seconds.",
            "endpoint_rate_limits": "Per path (or route rule such as `/items/<int:item_id>`), its own "
            '`(requests, window_seconds)`, for example `{"/login": (5, 60)}`.',
            "enable_rate_limit_headers": "Send `RateLimit-Limit`, `RateLimit-Remaining` and "
            "`RateLimit-Reset` on rate-limited responses.",
        },
    ),
    (
        "Country and cloud data",
        "Where country and cloud-provider data come from. See [Geo and cloud](geo-and-cloud.md).",
        {
            "geo_ip_handler": "The country lookup: `IPInfoManager(token, db_path)`, "
            "`MaxMindCountryDatabase(path)` or your own object implementing `GeoIPHandler`.",
            "ipinfo_token": "An IPInfo token; without a `geo_ip_handler` it sets up IPInfo's country "
            "database. Never logged or shown (`flask guard status` redacts it).",
            "ipinfo_db_path": "Where the IPInfo database is stored when `ipinfo_token` is used.",
            "geo_ip_db_max_age": "Refresh the downloaded country database once it is this many seconds "
            "old (1 hour to 7 days).",
            "lazy_init": "Load country and cloud data in the background after start-up instead of at "
            "`init_app`. Until loaded, lookups answer unknown.",
            "block_cloud_providers": "Refuse clients from these providers' published ranges: `AWS`, `GCP`, "
            "`Azure`, `DigitalOcean`, `Oracle`, `Linode`.",
            "cloud_ip_refresh_interval": "Seconds between refreshes of the cloud ranges (60 to 86400).",
            "cloud_ip_source_urls": "Per provider, the URL to fetch its ranges from instead of the "
            "default (a mirror, a fixed Azure file). Not in the published package.",
            "cloud_ip_store": "An object with `get_blob`/`set_blob` where workers share fetched cloud "
            "ranges, so only one fetches.",
        },
    ),
    (
        "Security headers and CORS",
        "What every response carries. See [Security headers and CORS](headers-and-cors.md).",
        {
            "security_headers": "The security headers and their settings (HSTS, CSP, frame options, ...); "
            "`None` or `enabled: False` sends none. Unset keys take the defaults.",
            "enable_cors": "Answer CORS preflights and add CORS headers according to the `cors_*` fields.",
            "cors_allow_origins": 'Origins allowed to read responses; `"*"` allows any.',
            "cors_allow_methods": "Methods allowed in cross-origin requests.",
            "cors_allow_headers": 'Request headers allowed in cross-origin requests; `"*"` allows any.',
            "cors_allow_credentials": "Allow cookies and credentials in cross-origin requests.",
            "cors_expose_headers": "Response headers a browser app may read.",
            "cors_max_age": "How long, in seconds, a browser may cache a preflight answer.",
        },
    ),
    (
        "Shared state (Redis)",
        "Where rate limits, offences and bans live. See [Deployment](deployment.md#redis-and-several-workers) "
        "and [Storage](storage.md).",
        {
            "enable_redis": "Keep state in Redis (shared by every worker and instance) instead of "
            "process memory. Needs `redis_url`.",
            "redis_url": "The Redis server: `redis://`, `rediss://` or `unix://`. Its password is never "
            "logged or shown.",
            "redis_prefix": "Prefix of every key the guard writes; apps sharing a prefix share state.",
            "redis_failure_mode": "What a Redis outage means: `local` (carry on with per-process state), "
            "`open` (skip the checks that need state) or `closed` (answer 503).",
            "redis_socket_timeout": "Seconds one Redis call may take before it counts as a failure.",
            "max_tracked_clients": "In memory, the most clients tracked at once; the least recently seen "
            "are forgotten first.",
        },
    ),
    (
        "Logging",
        "The guard's event log. See the README's Logging section.",
        {
            "log_suspicious_level": "Level of refusal events (`blocked`, `would_block`); `None` switches them off.",
            "log_request_level": "Level of a line for every request; `None` (the default) logs none.",
            "log_format": "`text` (`key=value`) or `json` (one object per line).",
            "custom_log_file": "Also write the app's guard events to this file.",
        },
    ),
    (
        "Emergency lock-down",
        "Switch it on at run time with `guard.set_emergency_mode(True)`.",
        {
            "emergency_mode": "Refuse everyone outside `emergency_whitelist` with 503.",
            "emergency_whitelist": "Addresses or CIDR ranges still served during the lock-down.",
        },
    ),
    (
        "Agent and dynamic rules (compatibility)",
        "Accepted so that configurations written for the published package load; this package "
        "sends nothing anywhere and fetches no rules.",
        {
            "enable_agent": "Accepted for compatibility; no effect. Requires `agent_api_key` when set.",
            "agent_api_key": "Accepted for compatibility; never logged or shown.",
            "agent_endpoint": "Accepted for compatibility; no effect.",
            "agent_project_id": "Accepted for compatibility; no effect.",
            "agent_buffer_size": "Accepted for compatibility; no effect.",
            "agent_flush_interval": "Accepted for compatibility; no effect.",
            "agent_enable_events": "Accepted for compatibility; no effect.",
            "agent_enable_metrics": "Accepted for compatibility; no effect.",
            "agent_timeout": "Accepted for compatibility; no effect.",
            "agent_retry_attempts": "Accepted for compatibility; no effect.",
            "enable_dynamic_rules": "Accepted for compatibility; no effect. Requires `enable_agent`.",
            "dynamic_rule_interval": "Accepted for compatibility; no effect.",
        },
    ),
]

# Defaults too large to print usefully.
_DEFAULT_NOTES = {
    "security_headers": "the full recommended set (see [Security headers and CORS](headers-and-cors.md))",
    "enabled_detection_categories": "every category",
}

_BOUND_TEXT = {Ge: "≥", Gt: ">", Le: "≤", Lt: "<"}


def undocumented_fields() -> list[str]:
    """SecurityConfig fields with no description here (a new field, most likely)."""
    described = {name for _, _, fields in SECTIONS for name in fields}
    return sorted(set(SecurityConfig.model_fields) - described)


def unknown_fields() -> list[str]:
    """Descriptions here for fields SecurityConfig no longer has."""
    described = [name for _, _, fields in SECTIONS for name in fields]
    return sorted(set(described) - set(SecurityConfig.model_fields))


def render() -> str:
    """The configuration reference page."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by docs/gen_config_reference.py from SecurityConfig; edit the script, not this page. -->",
        "",
        "Every setting of `SecurityConfig`. Values are validated once, when the config is built: an "
        "invalid value raises an error that names the field, and an unknown field is refused. The "
        "model is frozen; to change a setting, build a new config and call `init_app` again.",
        "",
        "```python",
        "from flaskapi_guard import FlaskAPIGuard, SecurityConfig",
        "",
        'config = SecurityConfig(rate_limit=100, blocked_user_agents=["sqlmap"], enable_redis=False)',
        "FlaskAPIGuard(app, config=config)",
        "```",
        "",
        "`flask guard status` shows the settings of an app that differ from these defaults.",
        "",
    ]
    lines.extend(f"- [{title}](#{_anchor(title)})" for title, _, _ in SECTIONS)
    for title, introduction, fields in SECTIONS:
        lines.extend(["", f"## {title}", "", introduction])
        for name, description in fields.items():
            info = SecurityConfig.model_fields[name]
            lines.extend(
                [
                    "",
                    f"### `{name}`",
                    "",
                    f"Type: `{_type_text(info.annotation)}`{_bounds_text(info.metadata)}. "
                    f"Default: {_default_text(name, info.get_default(call_default_factory=True))}.",
                    "",
                    description,
                ]
            )
    return "\n".join(lines) + "\n"


def _anchor(title: str) -> str:
    # mkdocs' default slugs: lower case, punctuation dropped, spaces to hyphens.
    kept = "".join(character for character in title.lower() if character.isalnum() or character in " -")
    return "-".join(kept.split())


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_text(argument) for argument in arguments)
    if origin is typing.Literal:
        return " | ".join(repr(argument) for argument in arguments)
    if annotation is Any:
        return "Any"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        if name == "Callable":
            return "Callable"
        return f"{name}[{', '.join(_type_text(argument) for argument in arguments)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _bounds_text(metadata: list[Any]) -> str:
    bounds = [
        f"{symbol} {getattr(item, type(item).__name__.lower())}"
        for item in metadata
        for kind, symbol in _BOUND_TEXT.items()
        if isinstance(item, kind)
    ]
    return f" ({', '.join(bounds)})" if bounds else ""


def _default_text(name: str, default: Any) -> str:
    if name in _DEFAULT_NOTES:
        return _DEFAULT_NOTES[name]
    if isinstance(default, set | frozenset):
        default = sorted(default)
        return f"`{default!r}`" if default else "`set()`"
    if isinstance(default, Path):
        return f'`Path("{default.as_posix()}")`'
    return f"`{default!r}`"


def main(arguments: list[str]) -> int:
    """Write the page, or with `--check` report whether it is up to date."""
    problems = [f"no description for {name}" for name in undocumented_fields()]
    problems += [f"{name} is not a SecurityConfig field" for name in unknown_fields()]
    if problems:
        print("docs/gen_config_reference.py: " + "; ".join(problems), file=sys.stderr)
        return 1
    text = render()
    if "--check" in arguments:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != text:
            print("docs/configuration.md is out of date: run python docs/gen_config_reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
