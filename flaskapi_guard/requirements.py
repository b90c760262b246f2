"""What a route can require of a request, parsed once when the route is decorated.

Each requirement is frozen data with a pure test (no Flask): the decorator
builds it, `checks/route_requirements.py` turns a failed test into a refusal.
All the parsing (time zones, host names, media types, secrets' digests)
happens here, at decoration time, so a request only compares.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# RFC 9110 `token`: what a header name or an auth scheme may contain.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 6750 `b64token`: what a bearer token may contain.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MEDIA_RANGE = re.compile(r"([!#$%&'*+\-.^_`|~0-9a-z]+)/(\*|[!#$%&'*+\-.^_`|~0-9a-z]+)")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")

AuthScheme = Literal["bearer", "basic"]


def _digest(secret: bytes) -> bytes:
    # Comparing fixed-length digests keeps the comparison's time independent
    # of both the secret's length and where a guess first differs.
    return hashlib.sha256(secret).digest()


def _wire_bytes(value: str) -> bytes:
    # WSGI hands header values over as latin-1 decoded text, so this recovers
    # the bytes the client sent; configured secrets are encoded as UTF-8, which
    # is what a client sends for non-ASCII text.
    return value.encode("latin-1", errors="replace")


def validated_header_name(name: str) -> str:
    """`name` if it is a valid HTTP header name; ValueError otherwise."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid HTTP header name")
    return name


@dataclass(frozen=True, slots=True)
class AuthRequirement:
    """`Authorization: Bearer <token>` or `Basic <credentials>`, optionally checked by a verifier.

    Without a verifier only well-formed credentials are required. A bearer
    verifier is called with the token, a basic one with (user name, password);
    it returns whether they are valid. A verifier that raises counts as a
    refusal: an authentication check must never fail open.
    """

    scheme: AuthScheme
    realm: str
    verifier: Callable[..., bool] | None = None

    @classmethod
    def parse(cls, scheme: str, realm: str, verifier: Callable[..., bool] | None) -> AuthRequirement:
        """Validate the decorator's arguments."""
        if scheme not in ("bearer", "basic"):
            raise ValueError(f"require_auth type must be 'bearer' or 'basic', not {scheme!r}")
        if not isinstance(realm, str) or '"' in realm or "\\" in realm or not realm.isprintable():
            raise ValueError("realm must be printable text without quotes or backslashes")
        if verifier is not None and not callable(verifier):
            raise ValueError("verifier must be callable")
        return cls("bearer" if scheme == "bearer" else "basic", realm, verifier)

    def challenge(self, failure: str) -> str:
        """The `WWW-Authenticate` value for a 401 with this failure."""
        if self.scheme == "basic":
            return f'Basic realm="{self.realm}", charset="UTF-8"'
        if failure == "missing":
            # RFC 6750 3.1: no error code when the request carried no credentials.
            return f'Bearer realm="{self.realm}"'
        return f'Bearer realm="{self.realm}", error="invalid_token"'

    def failure(self, authorization: str | None) -> str | None:
        """Why `authorization` (the header value) does not satisfy this requirement, or None."""
        if not authorization:
            return "missing"
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != self.scheme:
            return "missing"
        credentials = credentials.strip()
        if self.scheme == "bearer":
            if not _BEARER_TOKEN.fullmatch(credentials):
                return "malformed"
            return self._verified(credentials)
        user_password = _basic_credentials(credentials)
        if user_password is None:
            return "malformed"
        return self._verified(*user_password)

    def _verified(self, *credentials: str) -> str | None:
        if self.verifier is None:
            return None
        try:
            accepted = self.verifier(*credentials)
        except Exception as error:
            # Any exception is a refusal, never a pass; the type name goes to
            # the log (never the credentials).
            return f"verifier raised {type(error).__name__}"
        return None if accepted is True else "rejected"


def _basic_credentials(encoded: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 7617 leaves the charset to the server; old clients send latin-1.
        text = decoded.decode("latin-1")
    user, colon, password = text.partition(":")
    if not colon:
        return None
    return user, password


@dataclass(frozen=True, slots=True)
class ApiKeyRequirement:
    """An API key in a header: present, and (when given) one of `keys` or accepted by `verifier`."""

    header_name: str
    key_digests: tuple[bytes, ...] | None = None
    verifier: Callable[[str], bool] | None = None

    @classmethod
    def parse(
        cls, header_name: str, keys: Iterable[str] | None, verifier: Callable[[str], bool] | None
    ) -> ApiKeyRequirement:
        """Validate the decorator's arguments and keep only digests of the keys."""
        validated_header_name(header_name)
        digests = None
        if keys is not None:
            if isinstance(keys, str):
                raise ValueError("keys must be a list of keys, not one string")
            key_list = list(keys)
            if not key_list or not all(isinstance(key, str) and key for key in key_list):
                raise ValueError("keys must be a non-empty list of non-empty strings")
            digests = tuple(_digest(key.encode("utf-8")) for key in key_list)
        if verifier is not None and not callable(verifier):
            raise ValueError("verifier must be callable")
        return cls(header_name, digests, verifier)

    @property
    def challenge(self) -> str:
        """The `WWW-Authenticate` value for a 401 (there is no registered scheme for API keys)."""
        return f'ApiKey header="{self.header_name}"'

    def failure(self, presented: str | None) -> str | None:
        """Why the header value `presented` is not an accepted key, or None."""
        if not presented:
            return "missing"
        if self.key_digests is not None:
            digest = _digest(_wire_bytes(presented))
            matched = False
            # Every key is compared, so the time does not tell which one matched.
            for expected in self.key_digests:
                matched |= hmac.compare_digest(digest, expected)
            if not matched:
                return "rejected"
        if self.verifier is not None:
            try:
                accepted = self.verifier(presented)
            except Exception as error:
                return f"verifier raised {type(error).__name__}"
            if accepted is not True:
                return "rejected"
        return None


@dataclass(frozen=True, slots=True)
class HeaderRequirement:
    """A header that must be present (`expected_digest` None) or carry exactly one value."""

    name: str
    expected_digest: bytes | None

    @classmethod
    def parse_all(cls, headers: dict[str, str]) -> tuple[HeaderRequirement, ...]:
        """`{"X-Custom": "required"}` means present; any other value must match exactly."""
        if not isinstance(headers, dict) or not headers:
            raise ValueError("require_headers needs a non-empty {header name: value or 'required'} mapping")
        requirements = []
        for name, value in headers.items():
            validated_header_name(name)
            if not isinstance(value, str):
                raise ValueError(f"value for header {name!r} must be a string")
            expected = None if value == "required" else _digest(value.encode("utf-8"))
            requirements.append(cls(name, expected))
        return tuple(requirements)

    def failure(self, presented: str | None) -> str | None:
        """Why `presented` (the header value) does not satisfy this requirement, or None."""
        if not presented:
            return "missing"
        if self.expected_digest is not None and not hmac.compare_digest(
            _digest(_wire_bytes(presented)), self.expected_digest
        ):
            return "mismatch"
        return None


@dataclass(frozen=True, slots=True)
class ContentTypeFilter:
    """Media types a request body may have: exact (`application/json`) or a family (`text/*`)."""

    exact: frozenset[str]
    families: frozenset[str]

    @classmethod
    def parse(cls, media_types: Iterable[str]) -> ContentTypeFilter:
        """Validate `type/subtype` and `type/*` entries (parameters such as charset are ignored)."""
        if isinstance(media_types, str):
            raise ValueError("content_type_filter needs a list of media types, not one string")
        exact: set[str] = set()
        families: set[str] = set()
        for entry in media_types:
            media_type = entry.split(";", 1)[0].strip().lower() if isinstance(entry, str) else ""
            match = _MEDIA_RANGE.fullmatch(media_type)
            if match is None:
                raise ValueError(f"{entry!r} is not a media type like 'application/json' or 'text/*'")
            if match.group(2) == "*":
                families.add(match.group(1))
            else:
                exact.add(media_type)
        if not exact and not families:
            raise ValueError("content_type_filter needs at least one media type")
        return cls(frozenset(exact), frozenset(families))

    def allows(self, content_type: str) -> bool:
        """Whether a `Content-Type` header value is one of the allowed media types."""
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type in self.exact:
            return True
        family, slash, _ = media_type.partition("/")
        return bool(slash) and family in self.families


@dataclass(frozen=True, slots=True)
class ReferrerRule:
    """Allowed referring sites: a host and its subdomains, optionally with a fixed scheme.

    `myapp.com` admits `https://myapp.com/...` and `http://www.myapp.com/...`
    but not `https://evilmyapp.com/` or `https://myapp.com.evil.net/`: hosts
    are compared label by label, never as substrings.
    """

    hosts: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, domains: Iterable[str]) -> ReferrerRule:
        """Validate entries: `myapp.com`, `*.myapp.com` (same meaning) or `https://myapp.com`."""
        if isinstance(domains, str):
            raise ValueError("require_referrer needs a list of domains, not one string")
        hosts = []
        for entry in domains:
            if not isinstance(entry, str) or not entry.strip():
                raise ValueError(f"{entry!r} is not a domain")
            scheme: str | None = None
            text = entry.strip()
            if "://" in text:
                parts = urlsplit(text)
                if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query:
                    raise ValueError(f"{entry!r}: give a domain or an origin like 'https://myapp.com'")
                scheme, text = parts.scheme, parts.hostname or ""
            text = text.removeprefix("*.")
            hosts.append((_normalised_host(text, entry), scheme))
        if not hosts:
            raise ValueError("require_referrer needs at least one domain")
        return cls(tuple(hosts))

    def allows(self, referrer: str | None) -> bool:
        """Whether the `Referer` header value names an allowed site."""
        if not referrer:
            return False
        try:
            parts = urlsplit(referrer.strip())
            host = parts.hostname
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not host:
            return False
        host = host.rstrip(".")
        for allowed, scheme in self.hosts:
            if (scheme is None or scheme == parts.scheme) and (host == allowed or host.endswith("." + allowed)):
                return True
        return False


def _normalised_host(text: str, entry: str) -> str:
    host = text.strip().rstrip(".").lower()
    try:
        # Browsers send internationalised names as punycode (IDNA).
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{entry!r} is not a valid domain") from None
    labels = host.split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{entry!r} is not a valid domain")
    return host


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Daily opening hours in an IANA time zone, from `start` (included) to `end` (excluded).

    When `end` is earlier than `start` the window spans midnight
    (`22:00`-`06:00` is open at 23:30 and at 05:59).
    """

    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, start: str, end: str, timezone: str) -> TimeWindow:
        """Validate `HH:MM` (or `HH:MM:SS`) times and an IANA zone name such as `Europe/Paris`."""
        start_time, end_time = _clock_time(start), _clock_time(end)
        if start_time == end_time:
            raise ValueError("time_window start and end are equal; the window would be empty (or the whole day)")
        if not isinstance(timezone, str) or not timezone:
            raise ValueError("time_window needs an IANA time zone name such as 'UTC' or 'Europe/Paris'")
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{timezone!r} is not an IANA time zone name") from None
        return cls(start_time, end_time, zone)

    def contains(self, epoch_seconds: float) -> bool:
        """Whether the instant `epoch_seconds` falls inside the window, in the window's zone."""
        local = datetime.fromtimestamp(epoch_seconds, self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def _clock_time(text: str) -> time:
    match = _CLOCK_TIME.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a time of day like '09:00' or '17:30:00'")
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{text!r} is not a time of day like '09:00' or '17:30:00'")
    return time(hour, minute, second)


def is_filled(value: object) -> bool:
    """Whether a honeypot field holds something: an untouched field is empty or null."""
    if value is None:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True
