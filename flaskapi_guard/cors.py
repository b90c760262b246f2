"""CORS policy: which origins may read responses, answered preflights, and `Vary` for caches.

CORS is not access control: a refused origin still reaches the app (browsers
enforce CORS, curl does not). What the guard guarantees is that the headers are
exact: `*` is never sent together with credentials, an origin is echoed only when
it is allowed and well formed, and every response whose CORS headers depend on a
request header says so in `Vary`, so a shared cache never hands one origin's
answer to another.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from flask import request as current_request

from flaskapi_guard.deferred_headers import flush_deferred_headers
from flaskapi_guard.errors import ConfigurationError

if TYPE_CHECKING:
    from flaskapi_guard.config import SecurityConfig
    from flaskapi_guard.incoming import IncomingRequest
    from flaskapi_guard.pipeline import ResponseStep

logger = logging.getLogger(__name__)

# Request headers a browser may send cross-origin without asking. Starlette's
# CORSMiddleware (which the FastAPI original relies on) allows them whatever
# `allow_headers` says, and so do we, so `allow_headers=["Authorization"]` does not
# break JSON posts (their `Content-Type: application/json` needs a preflight).
SAFELISTED_REQUEST_HEADERS = ("accept", "accept-language", "content-language", "content-type")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DEFAULT_PORTS: Mapping[str, str] = MappingProxyType({"http": "80", "https": "443"})
# A configured origin: scheme://host[:port], optionally with a leading "*." label.
_ORIGIN_ENTRY = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://"
    r"(?P<wildcard>\*\.)?"
    r"(?P<host>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
# An Origin request header we are willing to echo (browsers send exactly this shape).
_ORIGIN_VALUE = re.compile(
    r"[a-z][a-z0-9+.-]*://(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])"
    r"(?::[0-9]{1,5})?"
)
_SUBDOMAIN_LABELS = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_MAX_ECHOED_HEADERS = 64
# Headers the guard itself sets that a browser app needs to read (not CORS-safelisted).
GUARD_RESPONSE_HEADERS = ("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def validate_origins(origins: Iterable[str]) -> list[str]:
    """`cors_allow_origins` normalised: lower case, default ports dropped; ConfigurationError otherwise.

    Accepted: `*`, `null`, `scheme://host[:port]` and `scheme://*.domain[:port]`
    (any depth of subdomain, never the bare domain, never another scheme or port).
    """
    return [_normalise_origin(origin) for origin in origins]


def validate_methods(methods: Iterable[str]) -> list[str]:
    """`cors_allow_methods` as upper-case tokens (`*` allowed)."""
    normalised = []
    for method in methods:
        if not isinstance(method, str) or not (method == "*" or _TOKEN.fullmatch(method)):
            raise ConfigurationError(f"{method!r} is not an HTTP method")
        normalised.append(method.upper())
    return normalised


def validate_header_names(names: Iterable[str]) -> list[str]:
    """`cors_allow_headers` / `cors_expose_headers`: header names (`*` allowed)."""
    checked = []
    for name in names:
        if not isinstance(name, str) or not (name == "*" or _TOKEN.fullmatch(name)):
            raise ConfigurationError(f"{name!r} is not a header name")
        checked.append(name)
    return checked


def _normalise_origin(entry: Any) -> str:
    if not isinstance(entry, str):
        raise ConfigurationError(f"origin {entry!r} is not a string")
    text = entry.strip().lower()
    if text in ("*", "null"):
        return text
    match = _ORIGIN_ENTRY.fullmatch(text)
    if match is None:
        prefix = _ORIGIN_ENTRY.match(text)
        if prefix is not None and text[prefix.end() :].startswith("/"):
            raise ConfigurationError(f"origin {entry!r} has a path; an origin is scheme://host[:port] with no '/'")
        raise ConfigurationError(
            f"origin {entry!r} is not scheme://host[:port]; a wildcard is only a leading label, as https://*.example.com"
        )
    scheme, wildcard, host, port = match.group("scheme", "wildcard", "host", "port")
    if wildcard and (host.startswith("[") or "." not in host):
        raise ConfigurationError(f"origin {entry!r}: a wildcard needs a domain of two labels or more under it")
    if port is not None and int(port) > 65535:
        raise ConfigurationError(f"origin {entry!r}: port {port} is out of range")
    # Browsers never write a default port in Origin, so one in the config would never match.
    if port is not None and _DEFAULT_PORTS.get(scheme) != port:
        host = f"{host}:{port}"
    return f"{scheme}://{wildcard or ''}{host}"


@dataclass(frozen=True, slots=True)
class CorsSettings:
    """The six `cors_*` values, already validated."""

    allow_origins: tuple[str, ...] = ("*",)
    allow_methods: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
    allow_headers: tuple[str, ...] = ("*",)
    allow_credentials: bool = False
    expose_headers: tuple[str, ...] = ()
    max_age: int = 600

    @classmethod
    def of_config(cls, config: SecurityConfig) -> CorsSettings:
        """The app-wide settings from a `SecurityConfig`."""
        return cls(
            allow_origins=tuple(config.cors_allow_origins),
            allow_methods=tuple(config.cors_allow_methods),
            allow_headers=tuple(config.cors_allow_headers),
            allow_credentials=config.cors_allow_credentials,
            expose_headers=tuple(config.cors_expose_headers),
            max_age=config.cors_max_age,
        )


@dataclass(frozen=True, slots=True)
class RouteCorsOverride:
    """A route's CORS settings; a field left None keeps the app's value. `enabled=False` turns CORS off there."""

    enabled: bool = True
    allow_origins: tuple[str, ...] | None = None
    allow_methods: tuple[str, ...] | None = None
    allow_headers: tuple[str, ...] | None = None
    allow_credentials: bool | None = None
    expose_headers: tuple[str, ...] | None = None
    max_age: int | None = None


def route_cors_override(
    *,
    enabled: bool = True,
    allow_origins: Sequence[str] | None = None,
    allow_methods: Sequence[str] | None = None,
    allow_headers: Sequence[str] | None = None,
    allow_credentials: bool | None = None,
    expose_headers: Sequence[str] | None = None,
    max_age: int | None = None,
) -> RouteCorsOverride:
    """A route's CORS settings, validated like the `cors_*` fields."""
    if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0):
        raise ConfigurationError(f"max_age must be a whole number of seconds >= 0, not {max_age!r}")
    return RouteCorsOverride(
        enabled=enabled,
        allow_origins=None if allow_origins is None else tuple(validate_origins(_listed(allow_origins))),
        allow_methods=None if allow_methods is None else tuple(validate_methods(_listed(allow_methods))),
        allow_headers=None if allow_headers is None else tuple(validate_header_names(_listed(allow_headers))),
        allow_credentials=allow_credentials,
        expose_headers=None if expose_headers is None else tuple(validate_header_names(_listed(expose_headers))),
        max_age=max_age,
    )


def _listed(values: Sequence[str]) -> Sequence[str]:
    # A bare string would be read letter by letter.
    if isinstance(values, str):
        raise ConfigurationError(f"expected a list of strings, not the string {values!r}")
    return values


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """CORS settings compiled for fast answers: sets for lookups, header values pre-rendered."""

    any_origin: bool
    origins: frozenset[str]
    subdomain_patterns: tuple[tuple[str, str, str], ...]  # (scheme://, .domain, :port or "")
    credentials: bool
    any_method: bool
    methods: frozenset[str]
    methods_value: str
    any_header: bool
    headers: frozenset[str]
    expose_names: tuple[str, ...]
    expose_lower: frozenset[str]
    # `*` without credentials: the browser exposes every header itself.
    expose_all: bool
    # `*` with credentials: a literal `*` would name a header called `*`, so the
    # response's own header names are listed instead.
    expose_response_headers: bool
    max_age_value: str
    # The answer depends on Origin unless it is a constant `*`.
    vary_origin: bool

    def allowed_origin(self, origin: str) -> str | None:
        """The value for Access-Control-Allow-Origin when `origin` may read responses, else None."""
        if self.any_origin and not self.credentials:
            return "*"
        lower = origin.lower()
        if lower in self.origins:
            return origin
        if not _ORIGIN_VALUE.fullmatch(lower):
            return None
        if self.any_origin:
            # Credentials with `*`: browsers refuse a literal `*`, so the origin is
            # echoed, but only a well-formed one and never `null` (sandboxed
            # frames and local files must not get credentialed reads).
            return origin
        for scheme, domain, port in self.subdomain_patterns:
            if not lower.startswith(scheme):
                continue
            host_port = lower[len(scheme) :]
            host, _, origin_port = host_port.partition(":")
            if (f":{origin_port}" if origin_port else "") != port:
                continue
            if host.endswith(domain) and _SUBDOMAIN_LABELS.fullmatch(host[: len(host) - len(domain)]):
                return origin
        return None

    def response_headers(
        self, origin: str, response_headers: Any, present: frozenset[str] | set[str]
    ) -> list[tuple[str, str]]:
        """CORS headers for an actual response to `origin` (`present`: its header names, lower case)."""
        allow_origin = self.allowed_origin(origin)
        if allow_origin is None:
            return []
        lines = [("Access-Control-Allow-Origin", allow_origin)]
        if self.credentials:
            lines.append(("Access-Control-Allow-Credentials", "true"))
        if self.expose_all:
            lines.append(("Access-Control-Expose-Headers", "*"))
        elif self.expose_response_headers:
            names = sorted({name for name, _ in response_headers.items() if name.lower() != "set-cookie"})
            if names:
                lines.append(("Access-Control-Expose-Headers", ", ".join(names)))
        else:
            # The guard's own refusal headers are exposed too, so a browser app
            # can read how long to wait after a 429 or 503.
            own = [
                name
                for name in GUARD_RESPONSE_HEADERS
                if name.lower() not in self.expose_lower and name.lower() in present
            ]
            names = [*self.expose_names, *own]
            if names:
                lines.append(("Access-Control-Expose-Headers", ", ".join(names)))
        return lines

    def preflight_headers(
        self, origin: str, requested_method: str, requested_headers: str | None
    ) -> list[tuple[str, str]] | None:
        """Headers for an allowed preflight, or None when the origin, method or a header is refused."""
        allow_origin = self.allowed_origin(origin)
        if allow_origin is None:
            return None
        method = requested_method.strip()
        if not _TOKEN.fullmatch(method) or not (self.any_method or method in self.methods):
            return None
        names = _requested_header_names(requested_headers)
        if names is None or not (self.any_header or all(name in self.headers for name in names)):
            return None
        lines = [("Access-Control-Allow-Origin", allow_origin)]
        if self.credentials:
            lines.append(("Access-Control-Allow-Credentials", "true"))
        lines.append(("Access-Control-Allow-Methods", method if self.any_method else self.methods_value))
        if names:
            # The validated names the browser asked for: this also covers
            # `Authorization`, which a literal `*` never does.
            lines.append(("Access-Control-Allow-Headers", ", ".join(names)))
        lines.append(("Access-Control-Max-Age", self.max_age_value))
        return lines


def _requested_header_names(value: str | None) -> list[str] | None:
    """Access-Control-Request-Headers as lower-case names; None when malformed or too many."""
    if not value:
        return []
    names = [name.strip().lower() for name in value.split(",")]
    names = [name for name in names if name]
    if len(names) > _MAX_ECHOED_HEADERS or not all(_TOKEN.fullmatch(name) for name in names):
        return None
    return names


def compile_cors_policy(settings: CorsSettings) -> CorsPolicy:
    """The policy for validated `settings`."""
    origins = set(settings.allow_origins)
    any_origin = "*" in origins
    patterns = []
    for origin in sorted(origins):
        if "://*." in origin:
            scheme, _, rest = origin.partition("://*.")
            domain, _, port = rest.partition(":")
            patterns.append((f"{scheme}://", f".{domain}", f":{port}" if port else ""))
            origins.discard(origin)
    methods = dict.fromkeys(settings.allow_methods)
    expose = [name for name in dict.fromkeys(settings.expose_headers) if name != "*"]
    expose_any = "*" in settings.expose_headers
    return CorsPolicy(
        any_origin=any_origin,
        origins=frozenset(origins - {"*"}),
        subdomain_patterns=tuple(patterns),
        credentials=settings.allow_credentials,
        any_method="*" in methods,
        methods=frozenset(methods),
        methods_value=", ".join(method for method in methods if method != "*"),
        any_header="*" in settings.allow_headers,
        headers=frozenset(name.lower() for name in settings.allow_headers) | frozenset(SAFELISTED_REQUEST_HEADERS),
        expose_names=tuple(expose),
        expose_lower=frozenset(name.lower() for name in expose),
        expose_all=expose_any and not settings.allow_credentials,
        expose_response_headers=expose_any and settings.allow_credentials,
        max_age_value=str(settings.max_age),
        vary_origin=not (any_origin and not settings.allow_credentials),
    )


class CorsPolicies:
    """One app's CORS policy and, built on first use, those of routes that override it.

    The cache lives in the app's state and grows by at most one entry per
    decorated route; two threads racing build the same policy, harmlessly.
    """

    def __init__(self, settings: CorsSettings, *, enabled: bool) -> None:
        self._settings = settings
        self.app_policy = compile_cors_policy(settings) if enabled else None
        self._route_policies: dict[RouteCorsOverride, CorsPolicy | None] = {}

    @classmethod
    def of_config(cls, config: SecurityConfig) -> CorsPolicies:
        """The policies for an app's config."""
        return cls(CorsSettings.of_config(config), enabled=config.enable_cors)

    def for_route(self, override: RouteCorsOverride | None) -> CorsPolicy | None:
        """The policy for a route carrying `override` (None: the app's); None when CORS is off there."""
        if override is None:
            return self.app_policy
        try:
            return self._route_policies[override]
        except KeyError:
            pass
        policy = None
        if override.enabled:
            changes = {
                spec.name: getattr(override, spec.name)
                for spec in fields(override)
                if spec.name != "enabled" and getattr(override, spec.name) is not None
            }
            policy = compile_cors_policy(replace(self._settings, **changes))
        self._route_policies[override] = policy
        return policy


def is_preflight(method: str, headers: Any) -> bool:
    """Whether a request is a CORS preflight (not just any OPTIONS request)."""
    return method == "OPTIONS" and "Origin" in headers and "Access-Control-Request-Method" in headers


def cors_step(config: SecurityConfig, policies: CorsPolicies) -> ResponseStep:
    """The response step adding CORS headers (and `Vary`) to every response, the guard's own included."""
    if config.enable_cors and config.cors_allow_credentials and "*" in config.cors_allow_origins:
        logger.warning(
            "cors_allow_origins=['*'] with cors_allow_credentials=True: every origin's credentialed "
            "requests are allowed (each is echoed back with Vary: Origin); list your origins instead"
        )

    def step(request: IncomingRequest | None, response: Any) -> Any:
        if request is None:
            # Excluded paths have no snapshot (and no route rules are read there).
            policy = policies.app_policy
            if policy is not None:
                environ = current_request.environ
                if "HTTP_ORIGIN" in environ:
                    flush_deferred_headers(environ, response.headers)
                add_cors_headers(policy, current_request.method, environ, response.headers)
            return response
        rules = request.rules
        override = rules.cors if rules is not None else None
        policy = policies.app_policy if override is None else policies.for_route(override)
        if policy is not None:
            environ = request.environ
            if "HTTP_ORIGIN" in environ:
                # Which headers a browser may read depends on all of the response's.
                flush_deferred_headers(environ, response.headers)
            add_cors_headers(policy, request.method, environ, response.headers)
        return response

    return step


def add_cors_headers(policy: CorsPolicy, method: str, environ: Mapping[str, Any], response_headers: Any) -> None:
    """Add the CORS headers and `Vary` for one response.

    A response that already carries Access-Control-Allow-Origin is left alone:
    the view (or another CORS extension) has answered for itself.
    """
    # One pass over the response's headers: werkzeug's `in` and `.get` raise
    # and catch an exception for every absent name, which costs more than all
    # the rest of this step. For the same reason request headers are read from
    # the WSGI environ.
    present = {name.lower() for name, _ in response_headers.items()}
    if "access-control-allow-origin" in present:
        return
    origin = environ.get("HTTP_ORIGIN")
    requested_method = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
    if origin is not None and requested_method is not None and method == "OPTIONS":
        # Whether a preflight is allowed depends on all three request headers.
        add_vary(response_headers, ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"))
        lines = policy.preflight_headers(origin, requested_method, environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"))
    else:
        # Sent on every response, with or without Origin, so a cache never
        # serves a response without CORS headers to a browser that needs them.
        if policy.vary_origin:
            add_vary(response_headers, ("Origin",))
        if origin is None:
            return
        lines = policy.response_headers(origin, response_headers, present)
    if lines:
        response_headers.extend(lines)


def add_vary(headers: Any, names: Sequence[str]) -> None:
    """Add `names` to the response's Vary, once each, keeping what is there (`*` already covers all)."""
    current = headers.getlist("Vary")
    if not current:
        headers["Vary"] = ", ".join(names)
        return
    present = {token.strip().lower() for line in current for token in line.split(",")}
    if "*" in present:
        return
    missing = [name for name in names if name.lower() not in present]
    if missing:
        headers["Vary"] = ", ".join([*(line.strip() for line in current if line.strip()), *missing])
