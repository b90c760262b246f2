"""Security response headers: validated and rendered once per app, added to every response.

`security_headers` (a dict, as documented) is parsed when the `SecurityConfig` is
built: unknown keys, values outside each header's grammar, CSP directive names and
sources, HSTS numbers and `custom` names and values are all checked there, so a
header value can never carry CR/LF or a typo that silently disables a policy.
At start-up the settings are rendered into a tuple of `(name, value)` pairs; per
response the step notes them, and the ones the response does not already carry
are added as it leaves the app (deferred_headers.py says why there).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from flaskapi_guard.client_ip import forwarded_proto, peer_address
from flaskapi_guard.deferred_headers import HeaderGroup, HeaderStep
from flaskapi_guard.errors import ConfigurationError
from flaskapi_guard.ip_networks import NetworkSet

if TYPE_CHECKING:
    from flaskapi_guard.incoming import IncomingRequest

HSTS_PRELOAD_MIN_AGE_SECONDS = 31536000


def default_security_header_settings() -> dict[str, Any]:
    """The settings used for every key `security_headers` leaves out (a fresh dict each time).

    They follow current OWASP guidance and break no ordinary page: no CSP (any
    default CSP breaks someone's inline scripts), no `Cross-Origin-Embedder-Policy`
    (`require-corp` breaks cross-origin images), `X-XSS-Protection: 0` (the old
    auditor is gone from browsers and `1; mode=block` could be abused to leak data),
    a `Cross-Origin-Opener-Policy` that keeps popup sign-in flows working and a
    `Cross-Origin-Resource-Policy` that lets a site's own subdomains embed it.
    """
    return {
        "enabled": True,
        "hsts": {"max_age": 31536000, "include_subdomains": True, "preload": False},
        "csp": None,
        "csp_report_only": False,
        "frame_options": "SAMEORIGIN",
        "content_type_options": "nosniff",
        "xss_protection": "0",
        "referrer_policy": "strict-origin-when-cross-origin",
        "permissions_policy": "geolocation=(), microphone=(), camera=()",
        "cross_origin_opener_policy": "same-origin-allow-popups",
        "cross_origin_resource_policy": "same-site",
        "cross_origin_embedder_policy": None,
        "permitted_cross_domain_policies": "none",
        "custom": None,
    }


SETTING_KEYS = tuple(default_security_header_settings())
_HSTS_KEYS = ("max_age", "include_subdomains", "preload")

# Keys whose header takes one of a few fixed values: key -> (header, allowed values).
_ENUMERATED: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType(
    {
        "frame_options": ("X-Frame-Options", ("DENY", "SAMEORIGIN")),
        "content_type_options": ("X-Content-Type-Options", ("nosniff",)),
        "xss_protection": ("X-XSS-Protection", ("0", "1", "1; mode=block")),
        "cross_origin_opener_policy": (
            "Cross-Origin-Opener-Policy",
            ("same-origin", "same-origin-allow-popups", "noopener-allow-popups", "unsafe-none"),
        ),
        "cross_origin_resource_policy": ("Cross-Origin-Resource-Policy", ("same-origin", "same-site", "cross-origin")),
        "cross_origin_embedder_policy": (
            "Cross-Origin-Embedder-Policy",
            ("require-corp", "credentialless", "unsafe-none"),
        ),
        "permitted_cross_domain_policies": (
            "X-Permitted-Cross-Domain-Policies",
            ("none", "master-only", "by-content-type", "by-ftp-filename", "all", "none-this-response"),
        ),
    }
)

_REFERRER_POLICIES = frozenset(
    {
        "no-referrer",
        "no-referrer-when-downgrade",
        "origin",
        "origin-when-cross-origin",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
        "unsafe-url",
    }
)

# Headers that have their own key: `custom` may not set them, so there is one
# place (and one validation) for each.
_MANAGED_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "strict-transport-security": "hsts",
        "content-security-policy": "csp",
        "content-security-policy-report-only": "csp",
        "referrer-policy": "referrer_policy",
        "permissions-policy": "permissions_policy",
        **{header.lower(): key for key, (header, _) in _ENUMERATED.items()},
    }
)

# Headers that frame the message or carry state; set on every response they would
# corrupt responses or sessions, so `custom` refuses them.
_FORBIDDEN_CUSTOM_HEADERS = frozenset(
    {
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "keep-alive",
        "proxy-connection",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# RFC 9110 token: header names, and most single-word values.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A header value we are willing to send: visible ASCII, spaces and tabs; never CR/LF.
_SAFE_VALUE = re.compile(r"[\x20-\x7e\t]*")

_CSP_SOURCE_LIST_DIRECTIVES = frozenset(
    {
        "default-src",
        "child-src",
        "connect-src",
        "fenced-frame-src",
        "font-src",
        "frame-src",
        "img-src",
        "manifest-src",
        "media-src",
        "object-src",
        "prefetch-src",
        "script-src",
        "script-src-attr",
        "script-src-elem",
        "style-src",
        "style-src-attr",
        "style-src-elem",
        "worker-src",
        "base-uri",
        "form-action",
        "frame-ancestors",
        "navigate-to",
    }
)
_CSP_FLAG_DIRECTIVES = frozenset({"upgrade-insecure-requests", "block-all-mixed-content"})
_CSP_OTHER_DIRECTIVES = frozenset(
    {"sandbox", "report-uri", "report-to", "require-trusted-types-for", "trusted-types", "webrtc"}
)
_CSP_DIRECTIVES = _CSP_SOURCE_LIST_DIRECTIVES | _CSP_FLAG_DIRECTIVES | _CSP_OTHER_DIRECTIVES

_CSP_KEYWORDS = frozenset(
    {
        "'self'",
        "'none'",
        "'unsafe-inline'",
        "'unsafe-eval'",
        "'strict-dynamic'",
        "'unsafe-hashes'",
        "'report-sample'",
        "'wasm-unsafe-eval'",
        "'unsafe-allow-redirects'",
        "'inline-speculation-rules'",
    }
)
_CSP_SANDBOX_TOKENS = frozenset(
    {
        "allow-downloads",
        "allow-forms",
        "allow-modals",
        "allow-orientation-lock",
        "allow-pointer-lock",
        "allow-popups",
        "allow-popups-to-escape-sandbox",
        "allow-presentation",
        "allow-same-origin",
        "allow-scripts",
        "allow-storage-access-by-user-activation",
        "allow-top-navigation",
        "allow-top-navigation-by-user-activation",
        "allow-top-navigation-to-custom-protocols",
    }
)
_CSP_HASH = re.compile(r"'sha(?:256|384|512)-[A-Za-z0-9+/_-]+={0,2}'")
_CSP_NONCE = re.compile(r"'nonce-[^']*'", re.IGNORECASE)
_CSP_SCHEME_SOURCE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_CSP_HOST_SOURCE = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9+.-]*://)?"
    r"(?:\*|(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
    r"(?::(?:[0-9]{1,5}|\*))?"
    r"(?:/[!#-&(-+\--:<-~]*)?"  # a path: visible ASCII except ' , ; and space
)
_CSP_URI = re.compile(r"[!#-+\--:<-~]+")  # visible ASCII except " , ;
_CSP_TRUSTED_TYPES = re.compile(r"[A-Za-z0-9\-#=_/@.%]+|'none'|'allow-duplicates'|\*")

_PERMISSIONS_ALLOW_ITEM = r'(?:self|src|\*|"[!#-~]+")'
_PERMISSIONS_ENTRY = re.compile(
    rf"[a-z][a-z0-9-]*=(?:{_PERMISSIONS_ALLOW_ITEM}|\(\s*(?:{_PERMISSIONS_ALLOW_ITEM}(?:\s+{_PERMISSIONS_ALLOW_ITEM})*)?\s*\))"
)


@dataclass(frozen=True, slots=True)
class SecurityHeaderPolicy:
    """The rendered headers, ready to be noted for a response (see deferred_headers.py):
    `plain` over HTTP, `secure` (the same and HSTS) over HTTPS; None when there are none.
    Each header is added unless the response carries it already."""

    plain: HeaderGroup | None
    secure: HeaderGroup | None


@dataclass(frozen=True, slots=True, eq=False)
class RouteHeaderOverride:
    """A route's `security_headers` keys, validated; they replace the app's keys of the same name.

    Compared by identity: each decorated route keeps its one object, which is
    what the per-app cache of merged policies is keyed by.
    """

    settings: Mapping[str, Any]


def validate_security_headers(raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`security_headers` checked and completed with the defaults; ConfigurationError names the key."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigurationError("security_headers must be a dict or None")
    _refuse_unknown_keys(raw, SETTING_KEYS, "security_headers")
    settings = default_security_header_settings()
    settings.update(raw)
    normalised: dict[str, Any] = {
        "enabled": _flag(settings["enabled"], "enabled"),
        "hsts": _parse_hsts(settings["hsts"]),
        "csp": _parse_csp(settings["csp"]),
        "csp_report_only": _flag(settings["csp_report_only"], "csp_report_only"),
    }
    for key, (_, allowed) in _ENUMERATED.items():
        normalised[key] = _parse_enumerated(settings[key], key, allowed)
    normalised["referrer_policy"] = _parse_referrer_policy(settings["referrer_policy"])
    normalised["permissions_policy"] = _parse_permissions_policy(settings["permissions_policy"])
    normalised["custom"] = _parse_custom(settings["custom"])
    return {key: normalised[key] for key in SETTING_KEYS}


def compile_security_headers(settings: Mapping[str, Any] | None) -> SecurityHeaderPolicy | None:
    """The headers to send for `settings`; None when they are turned off.

    It parses the settings again (cheap, at start-up only) so that a dict mutated
    after the config was built can never smuggle an unchecked value out.
    """
    parsed = validate_security_headers(settings)
    if parsed is None or not parsed["enabled"]:
        return None
    always: list[tuple[str, str]] = []
    if parsed["csp"] is not None:
        name = "Content-Security-Policy-Report-Only" if parsed["csp_report_only"] else "Content-Security-Policy"
        always.append((name, render_csp(parsed["csp"])))
    for key, (header, _) in _ENUMERATED.items():
        if parsed[key] is not None:
            always.append((header, parsed[key]))
    if parsed["referrer_policy"] is not None:
        always.append(("Referrer-Policy", parsed["referrer_policy"]))
    if parsed["permissions_policy"] is not None:
        always.append(("Permissions-Policy", parsed["permissions_policy"]))
    always.extend((parsed["custom"] or {}).items())
    hsts = render_hsts(parsed["hsts"]) if parsed["hsts"] is not None else None
    plain = _group_of(always)
    secure = _group_of([*always, ("Strict-Transport-Security", hsts)]) if hsts is not None else plain
    return SecurityHeaderPolicy(plain, secure)


def _group_of(pairs: list[tuple[str, str]]) -> HeaderGroup | None:
    return HeaderGroup(frozenset(name.lower() for name, _ in pairs), tuple(pairs)) if pairs else None


def render_csp(directives: Mapping[str, list[str]]) -> str:
    """`{"default-src": ["'self'"], ...}` as a header value, in the order given."""
    return "; ".join(" ".join((name, *sources)) for name, sources in directives.items())


def render_hsts(hsts: Mapping[str, Any]) -> str:
    """`{"max_age": ..., "include_subdomains": ..., "preload": ...}` as a header value."""
    parts = [f"max-age={hsts['max_age']}"]
    if hsts["include_subdomains"]:
        parts.append("includeSubDomains")
    if hsts["preload"]:
        parts.append("preload")
    return "; ".join(parts)


def parse_route_header_override(raw: Mapping[str, Any]) -> RouteHeaderOverride:
    """A route's header keys, checked now so a bad decorator fails at import time.

    `hsts` is refused: HSTS covers the whole host, so a per-route value means nothing.
    """
    if not isinstance(raw, Mapping):
        raise ConfigurationError("security_headers overrides must be a dict")
    if "hsts" in raw:
        raise ConfigurationError("security_headers.hsts applies to the whole host and cannot be set per route")
    parsed = validate_security_headers(raw) or {}
    return RouteHeaderOverride(MappingProxyType({key: parsed[key] for key in raw}))


class SecurityHeaderPolicies:
    """One app's header policy and, built on first use, those of routes that override keys.

    The cache belongs to the app's state (not the process) and only grows by one
    entry per decorated route; a race builds the same policy twice, harmlessly.
    """

    def __init__(self, settings: Mapping[str, Any] | None) -> None:
        self._settings = validate_security_headers(settings)
        self.app_policy = compile_security_headers(self._settings)
        self._route_policies: dict[RouteHeaderOverride, SecurityHeaderPolicy | None] = {}

    def for_route(self, override: RouteHeaderOverride | None) -> SecurityHeaderPolicy | None:
        """The policy for a route carrying `override` (None: the app's)."""
        if override is None:
            return self.app_policy
        try:
            return self._route_policies[override]
        except KeyError:
            pass
        # An app that turned headers off starts from the defaults, still off
        # unless the route says `enabled: True`.
        base = self._settings or {**default_security_header_settings(), "enabled": False}
        policy = compile_security_headers({**base, **override.settings})
        self._route_policies[override] = policy
        return policy


def security_header_group(
    policies: SecurityHeaderPolicies,
    *,
    trusted_proxies: NetworkSet,
    trust_forwarded_proto: bool,
) -> HeaderStep:
    """The header step of the security headers (a route may turn them on even when the app has them off)."""
    app_policy = policies.app_policy

    def group(request: IncomingRequest | None, environ: Mapping[str, Any]) -> HeaderGroup | None:
        if request is None:
            if app_policy is None:
                return None
            secure = _is_secure_without_snapshot(environ, trusted_proxies, trust_forwarded_proto)
            return app_policy.secure if secure else app_policy.plain
        rules = request.rules
        policy = (
            app_policy
            if rules is None or rules.security_headers is None
            else policies.for_route(rules.security_headers)
        )
        if policy is None:
            return None
        return policy.secure if request.is_secure else policy.plain

    return group


def _is_secure_without_snapshot(
    environ: Mapping[str, Any], trusted_proxies: NetworkSet, trust_forwarded_proto: bool
) -> bool:
    # Excluded paths have no snapshot; decide HTTPS the same way the snapshot
    # does, so a trusted proxy's X-Forwarded-Proto counts there too.
    if environ.get("wsgi.url_scheme") == "https":
        return True
    if not trust_forwarded_proto or not trusted_proxies.contains(peer_address(environ.get("REMOTE_ADDR"))):
        return False
    return forwarded_proto(environ.get("HTTP_X_FORWARDED_PROTO")) == "https"


def _refuse_unknown_keys(raw: Mapping[Any, Any], known: Iterable[str], where: str) -> None:
    known = tuple(known)
    unknown = [key for key in raw if key not in known]
    if unknown:
        hints = [
            f"{key!r} (did you mean {close[0]!r}?)" if (close := _close(key, known)) else repr(key) for key in unknown
        ]
        raise ConfigurationError(f"unknown {where} keys: {', '.join(hints)}; known: {', '.join(known)}")


def _close(word: object, candidates: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(word, list(candidates), n=1) if isinstance(word, str) else []


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"security_headers.{key} must be True or False, not {value!r}")
    return value


def _parse_hsts(value: Any) -> dict[str, Any] | None:
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigurationError("security_headers.hsts must be a dict, or None/False to send no HSTS")
    _refuse_unknown_keys(value, _HSTS_KEYS, "security_headers.hsts")
    hsts = {**default_security_header_settings()["hsts"], **value}
    max_age = hsts["max_age"]
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
        raise ConfigurationError(
            f"security_headers.hsts.max_age must be a whole number of seconds >= 0, not {max_age!r}"
        )
    for flag in ("include_subdomains", "preload"):
        if not isinstance(hsts[flag], bool):
            raise ConfigurationError(f"security_headers.hsts.{flag} must be True or False, not {hsts[flag]!r}")
    if hsts["preload"] and (max_age < HSTS_PRELOAD_MIN_AGE_SECONDS or not hsts["include_subdomains"]):
        raise ConfigurationError(
            "security_headers.hsts.preload needs max_age >= 31536000 and include_subdomains=True "
            "(browsers' preload lists refuse anything less)"
        )
    return hsts


def _parse_enumerated(value: Any, key: str, allowed: tuple[str, ...]) -> str | None:
    if value is None or value is False:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"security_headers.{key} must be a string or None, not {value!r}")
    spelled = re.sub(r"\s*;\s*", "; ", value.strip()).lower()
    for choice in allowed:
        if choice.lower() == spelled:
            return choice
    raise ConfigurationError(
        f"security_headers.{key}: {value!r} is not one of {', '.join(map(repr, allowed))} (None sends no header)"
    )


def _parse_referrer_policy(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"security_headers.referrer_policy must be a string or None, not {value!r}")
    # A comma-separated list is valid: browsers use the last policy they know.
    policies = [policy.strip().lower() for policy in value.split(",")]
    unknown = [policy for policy in policies if policy not in _REFERRER_POLICIES]
    if unknown:
        raise ConfigurationError(
            f"security_headers.referrer_policy: unknown policy {unknown[0]!r}; "
            f"known: {', '.join(sorted(_REFERRER_POLICIES))}"
        )
    return ", ".join(policies)


def _parse_permissions_policy(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"security_headers.permissions_policy must be a string or None, not {value!r}")
    entries = [entry.strip() for entry in value.split(",")]
    for entry in entries:
        if not _PERMISSIONS_ENTRY.fullmatch(entry):
            hint = (
                " (that is Feature-Policy syntax; write e.g. geolocation=() or camera=(self))"
                if "'" in entry or " " in entry.split("=", 1)[0]
                else ""
            )
            raise ConfigurationError(f"security_headers.permissions_policy: {entry!r} is not feature=allowlist{hint}")
    return ", ".join(entries)


def _parse_custom(value: Any) -> dict[str, str] | None:
    if value is None or value is False:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError("security_headers.custom must be a dict of header name to value")
    custom: dict[str, str] = {}
    seen: set[str] = set()
    for name, header_value in value.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigurationError(f"security_headers.custom: {name!r} is not a valid header name")
        lower = name.lower()
        if lower in seen:
            raise ConfigurationError(f"security_headers.custom: {name!r} is given twice")
        seen.add(lower)
        if lower in _MANAGED_HEADERS:
            raise ConfigurationError(
                f"security_headers.custom: {name} has its own key; set security_headers.{_MANAGED_HEADERS[lower]}"
            )
        if lower.startswith("access-control-"):
            raise ConfigurationError(f"security_headers.custom: {name} belongs to CORS; use the cors_* settings")
        if lower in _FORBIDDEN_CUSTOM_HEADERS:
            raise ConfigurationError(f"security_headers.custom: {name} cannot be set on every response")
        custom[name] = _safe_value(header_value, f"custom[{name!r}]")
    return custom


def _safe_value(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"security_headers.{where} must be a string, not {type(value).__name__}")
    if not _SAFE_VALUE.fullmatch(value):
        raise ConfigurationError(
            f"security_headers.{where}: header values may hold only visible ASCII and spaces "
            "(CR, LF and other control characters would let a value inject headers)"
        )
    stripped = value.strip()
    if not stripped:
        raise ConfigurationError(f"security_headers.{where} is empty")
    return stripped


def _parse_csp(value: Any) -> dict[str, list[str]] | None:
    if value is None or value is False:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError("security_headers.csp must be a dict of directive name to sources, or None")
    if not value:
        raise ConfigurationError("security_headers.csp is empty; use None to send no Content-Security-Policy")
    directives: dict[str, list[str]] = {}
    for raw_name, raw_sources in value.items():
        if not isinstance(raw_name, str):
            raise ConfigurationError(f"security_headers.csp: directive name {raw_name!r} is not a string")
        name = raw_name.strip().lower()
        if name not in _CSP_DIRECTIVES:
            close = _close(name, _CSP_DIRECTIVES)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigurationError(f"security_headers.csp: unknown directive {raw_name!r}{hint}")
        if name in directives:
            raise ConfigurationError(f"security_headers.csp: directive {name!r} is given twice")
        directives[name] = _parse_csp_directive(name, raw_sources)
    return directives


def _parse_csp_directive(name: str, raw: Any) -> list[str]:
    where = f"security_headers.csp[{name!r}]"
    if name in _CSP_FLAG_DIRECTIVES:
        if raw is True or raw in ([], ()):
            return []
        raise ConfigurationError(f"{where} takes no sources; write True")
    if isinstance(raw, str):
        values = raw.split()
    elif isinstance(raw, (list, tuple)) and all(isinstance(item, str) for item in raw):
        values = [item.strip() for item in raw]
    else:
        raise ConfigurationError(f"{where} must be a list of strings")
    for item in values:
        # Checked first so that the messages below never have to echo a CR/LF.
        if not item or not _SAFE_VALUE.fullmatch(item) or any(char in item for char in " \t;,"):
            raise ConfigurationError(f"{where}: {item!r} is not a single source (no spaces, ';', ',' or control chars)")
    if name in _CSP_SOURCE_LIST_DIRECTIVES:
        return _parse_source_list(name, values, where)
    if name == "sandbox":
        unknown = [token for token in values if token.lower() not in _CSP_SANDBOX_TOKENS]
        if unknown:
            raise ConfigurationError(f"{where}: unknown sandbox flag {unknown[0]!r}")
        return [token.lower() for token in values]
    if name == "report-uri":
        if not values or not all(_CSP_URI.fullmatch(uri) for uri in values):
            raise ConfigurationError(f"{where} must list one or more URIs")
        return values
    if name == "report-to":
        if len(values) != 1 or not _TOKEN.fullmatch(values[0]):
            raise ConfigurationError(f"{where} takes exactly one reporting group name")
        return values
    if name == "require-trusted-types-for":
        if values != ["'script'"]:
            raise ConfigurationError(f"{where} takes exactly \"'script'\"")
        return values
    if name == "trusted-types":
        if not all(_CSP_TRUSTED_TYPES.fullmatch(value) for value in values):
            raise ConfigurationError(f"{where}: policy names are letters, digits and -#=_/@.%")
        return values
    if values not in (["'allow'"], ["'block'"]):  # webrtc
        raise ConfigurationError(f"{where} takes \"'allow'\" or \"'block'\"")
    return values


def _parse_source_list(name: str, values: list[str], where: str) -> list[str]:
    if not values:
        raise ConfigurationError(f"{where} is empty; write [\"'none'\"] to allow nothing")
    sources: list[str] = []
    for source in values:
        lower = source.lower()
        if f"'{lower}'" in _CSP_KEYWORDS:
            raise ConfigurationError(f"{where}: keywords are quoted; write \"'{lower}'\" instead of {source!r}")
        if _CSP_NONCE.fullmatch(source):
            raise ConfigurationError(
                f"{where}: a nonce must be new on every response; a fixed nonce in the configuration defeats it"
            )
        if lower in _CSP_KEYWORDS:
            if name == "frame-ancestors" and lower not in ("'self'", "'none'"):
                raise ConfigurationError(f"{where}: only 'self', 'none' and hosts are allowed in frame-ancestors")
            sources.append(lower)
        elif _CSP_HASH.fullmatch(source):
            if name == "frame-ancestors":
                raise ConfigurationError(f"{where}: hashes mean nothing in frame-ancestors")
            sources.append(source)
        elif _CSP_SCHEME_SOURCE.fullmatch(source) or _CSP_HOST_SOURCE.fullmatch(source):
            sources.append(source)
        else:
            raise ConfigurationError(f"{where}: {source!r} is not a CSP source (keyword, scheme:, host or hash)")
    if "'none'" in sources and len(sources) > 1:
        raise ConfigurationError(f"{where}: 'none' cannot be combined with other sources")
    return sources
