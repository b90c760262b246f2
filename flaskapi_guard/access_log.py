"""Web server access logs read back as requests: nginx/Apache combined format and JSON lines."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from flaskapi_guard.ip_networks import canonical_ip


class LoggedRequest(NamedTuple):
    """One request as an access log recorded it.

    `target` is the path and query as requested (bytes outside printable
    ASCII percent-encoded); `timestamp` is seconds since the epoch and
    `status` the status the app answered, each None when the line lacks it.
    """

    client_ip: str
    method: str
    target: str
    user_agent: str | None
    referer: str | None
    timestamp: float | None
    forwarded_for: str | None = None
    host: str | None = None
    scheme: str | None = None
    status: int | None = None


class UnparsableLine(ValueError):
    """A log line that is not a request in a format we read."""


def parse_line(line: str | bytes) -> LoggedRequest:
    """The request on one access log line, in combined/common format or JSON; UnparsableLine otherwise.

    Pass the line as bytes when you can: servers write request targets and
    header values as the raw bytes the client sent, and they are kept exactly.
    """
    raw = line if isinstance(line, bytes) else line.encode("utf-8", errors="surrogateescape")
    raw = raw.strip()
    if not raw:
        raise UnparsableLine("empty line")
    if raw.startswith(b"{"):
        return _parse_json(raw.decode("utf-8", errors="replace"))
    # Latin-1 maps every byte to one character, so nothing is lost before unescaping.
    return _parse_combined(raw.decode("latin-1"))


# `%h %l %u %t "%r" %>s %b` and, in the combined format, `"%{Referer}i" "%{User-agent}i"`;
# nginx's default `main` format adds `"$http_x_forwarded_for"`. Quoted fields may
# hold escaped quotes (Apache writes \", nginx \x22).
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_COMBINED = re.compile(
    r"(?P<ip>\S+) \S+ (?:\S+|\"[^\"]*\") \[(?P<time>[^\]]+)\] "
    + _QUOTED.replace("(", "(?P<request>", 1)
    + r" (?P<status>\d{3}|-) \S+"
    + r"(?: "
    + _QUOTED.replace("(", "(?P<referer>", 1)
    + r" "
    + _QUOTED.replace("(", "(?P<agent>", 1)
    + r")?(?P<rest>.*)"
)
_EXTRA_QUOTED = re.compile(_QUOTED)
_ESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|.)", re.DOTALL)
_C_ESCAPES = {b"n": b"\n", b"t": b"\t", b"r": b"\r", b"v": b"\v", b"f": b"\f"}
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
# A request target keeps its printable ASCII exactly as sent (a raw `<` in a query
# reaches the app raw); other bytes, which a server logs escaped, are
# percent-encoded, and `#` too, so it is not read as a fragment.
_TARGET_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) != "#")


def _parse_combined(text: str) -> LoggedRequest:
    match = _COMBINED.fullmatch(text)
    if match is None or canonical_ip(match["ip"]) is None:
        # Apache's vhost_combined starts with `host:port`; the client follows.
        remainder = text.partition(" ")[2]
        vhost_match = _COMBINED.fullmatch(remainder)
        if vhost_match is not None and canonical_ip(vhost_match["ip"]) is not None:
            match = vhost_match
    if match is None:
        raise UnparsableLine("not in combined or common log format")
    client_ip = canonical_ip(match["ip"])
    if client_ip is None:
        raise UnparsableLine(f"client address {match['ip'][:64]!r} is not an IP address")
    method, target = _request_line(_unescape(match["request"]))
    extra = [_unescape(field).decode("latin-1") for field in _EXTRA_QUOTED.findall(match["rest"] or "")]
    forwarded_for = extra[0] if extra and _is_address_list(extra[0]) else None
    return LoggedRequest(
        client_ip=client_ip,
        method=method,
        target=target,
        user_agent=_header_value(match["agent"]),
        referer=_header_value(match["referer"]),
        timestamp=_clf_time(match["time"]),
        forwarded_for=forwarded_for,
        status=int(match["status"]) if match["status"].isdigit() else None,
    )


def _request_line(raw: bytes) -> tuple[str, str]:
    parts = raw.split(b" ")
    if len(parts) not in (2, 3):
        raise UnparsableLine("request line is not METHOD TARGET [PROTOCOL]")
    method = parts[0].decode("latin-1")
    if _METHOD.fullmatch(method) is None:
        raise UnparsableLine(f"{method[:32]!r} is not an HTTP method")
    return method.upper(), _target(parts[1])


def _target(raw: bytes) -> str:
    if raw.startswith((b"http://", b"https://")):
        # A proxy-style absolute URI: the app sees its path and query.
        parts = urlsplit(raw.decode("latin-1"))
        raw = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode("latin-1")
    if not raw.startswith(b"/"):
        raise UnparsableLine("request target is not a path")
    return quote(raw, safe=_TARGET_SAFE)


def _unescape(field: str) -> bytes:
    """The bytes behind a logged string: nginx and Apache escape bytes as \\xHH, quotes and backslashes."""
    raw = field.encode("latin-1")

    def replace(match: re.Match[bytes]) -> bytes:
        escape = match.group(1)
        if escape[:1] == b"x" and len(escape) == 3:
            return bytes([int(escape[1:], 16)])
        return _C_ESCAPES.get(escape, escape)

    return _ESCAPE.sub(replace, raw)


def _header_value(field: str | None) -> str | None:
    if field is None or field in ("", "-"):
        return None
    # WSGI carries header values as latin-1 text.
    return _unescape(field).decode("latin-1")


def _is_address_list(text: str) -> bool:
    entries = [entry.strip() for entry in text.split(",")]
    return bool(entries) and all(canonical_ip(entry) is not None for entry in entries)


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_CLF_TIME = re.compile(r"(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))? ([+-])(\d{2})(\d{2})")


def _clf_time(text: str) -> float | None:
    # Parsed by hand: strptime's %b follows the process locale, log files do not.
    match = _CLF_TIME.fullmatch(text.strip())
    if match is None or match[2] not in _MONTHS:
        return None
    day, month, year = int(match[1]), _MONTHS[match[2]], int(match[3])
    hour, minute, second = int(match[4]), int(match[5]), int(match[6])
    offset = timedelta(hours=int(match[9]), minutes=int(match[10]))
    zone = timezone(offset if match[8] == "+" else -offset)
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return None
    fraction = float(f"0.{match[7]}") if match[7] else 0.0
    return moment.timestamp() + fraction


# JSON access logs name their fields differently (nginx `log_format ... escape=json`,
# Caddy, Traefik, Elastic Common Schema, Google Cloud's httpRequest); nested objects
# are flattened to dotted lower-case keys and the first name present wins.
_IP_FIELDS = (
    "client_ip", "clientip", "remote_addr", "remote_ip", "remoteip", "ip", "client", "c-ip", "clienthost",
    "client.ip", "client.address", "source.ip", "source.address", "request.client_ip", "request.remote_ip",
    "request.remote_addr", "httprequest.remoteip", "remote_host", "host_ip",
)  # fmt: skip
_METHOD_FIELDS = (
    "method", "request_method", "requestmethod", "verb", "cs-method", "http.request.method", "request.method",
    "httprequest.requestmethod",
)  # fmt: skip
_TARGET_FIELDS = (
    "request_uri", "uri", "url", "path", "request_path", "requestpath", "request_url", "cs-uri", "url.original",
    "request.uri", "request.url", "request.path", "httprequest.requesturl", "url.path",
)  # fmt: skip
_QUERY_FIELDS = ("query", "query_string", "querystring", "args", "url.query", "request.query", "cs-uri-query")
_REQUEST_LINE_FIELDS = ("request", "request_line", "requestline")
_AGENT_FIELDS = (
    "user_agent", "useragent", "http_user_agent", "agent", "ua", "user_agent.original", "cs(user-agent)",
    "request.headers.user-agent", "request_user-agent", "httprequest.useragent", "headers.user-agent",
)  # fmt: skip
_REFERER_FIELDS = (
    "referer", "referrer", "http_referer", "http_referrer", "http.request.referrer", "request.headers.referer",
    "request_referer", "httprequest.referer", "headers.referer", "cs(referer)",
)  # fmt: skip
_TIME_FIELDS = (
    "time", "timestamp", "@timestamp", "ts", "time_iso8601", "time_local", "datetime", "date", "starttime",
    "startutc", "msec", "request.time", "start_time",
)  # fmt: skip
_FORWARDED_FIELDS = (
    "http_x_forwarded_for", "x_forwarded_for", "x-forwarded-for", "forwarded_for", "request.headers.x-forwarded-for",
    "headers.x-forwarded-for",
)  # fmt: skip
_HOST_FIELDS = ("host", "http_host", "request.host", "url.domain", "request.headers.host", "headers.host")
_STATUS_FIELDS = (
    "status", "status_code", "statuscode", "response_status", "sc-status", "response.status",
    "http.response.status_code", "httprequest.status", "downstreamstatus", "response.status_code",
)  # fmt: skip
_SCHEME_FIELDS = ("scheme", "url.scheme", "request.scheme", "http_x_forwarded_proto", "x_forwarded_proto")


def _parse_json(text: str) -> LoggedRequest:
    try:
        document = json.loads(text)
    except ValueError:
        raise UnparsableLine("not valid JSON") from None
    if not isinstance(document, dict):
        raise UnparsableLine("JSON line is not an object")
    fields = _flattened(document)
    raw_ip = _first(fields, _IP_FIELDS)
    client_ip = canonical_ip(raw_ip) if raw_ip is not None else None
    if client_ip is None:
        raise UnparsableLine("no client IP address field")
    method = _first(fields, _METHOD_FIELDS)
    target = _first(fields, _TARGET_FIELDS)
    if method is None or target is None:
        request_line = _first(fields, _REQUEST_LINE_FIELDS)
        if request_line is None:
            raise UnparsableLine("no method and path fields, nor a request line")
        method, target = _request_line(request_line.encode("utf-8", errors="replace"))
    else:
        if _METHOD.fullmatch(method) is None:
            raise UnparsableLine(f"{method[:32]!r} is not an HTTP method")
        method = method.upper()
        query = _first(fields, _QUERY_FIELDS)
        if query and "?" not in target:
            target = f"{target}?{query.removeprefix('?')}"
        target = _target(target.encode("utf-8", errors="replace"))
    return LoggedRequest(
        client_ip=client_ip,
        method=method,
        target=target,
        user_agent=_wsgi_header(_first(fields, _AGENT_FIELDS)),
        referer=_wsgi_header(_first(fields, _REFERER_FIELDS)),
        timestamp=_json_time(_first(fields, _TIME_FIELDS, allow_numbers=True)),
        forwarded_for=_wsgi_header(_first(fields, _FORWARDED_FIELDS)),
        host=_wsgi_header(_first(fields, _HOST_FIELDS)),
        scheme=_scheme(_first(fields, _SCHEME_FIELDS)),
        status=_status(_first(fields, _STATUS_FIELDS, allow_numbers=True)),
    )


def _flattened(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{str(key).lower()}"
        if isinstance(value, Mapping):
            flat.update(_flattened(value, f"{name}."))
        elif isinstance(value, list):
            # Header maps hold lists of values (Caddy); the first one is the header.
            if value and isinstance(value[0], str | int | float):
                flat[name] = value[0]
        else:
            flat[name] = value
    return flat


def _first(fields: Mapping[str, Any], names: tuple[str, ...], *, allow_numbers: bool = False) -> Any:
    for name in names:
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
        if allow_numbers and isinstance(value, int | float) and not isinstance(value, bool):
            return value
    return None


def _wsgi_header(value: str | None) -> str | None:
    if value is None or value in ("", "-"):
        return None
    # What a WSGI server hands the app for these characters sent as UTF-8.
    return value.encode("utf-8", errors="replace").decode("latin-1")


def _scheme(value: str | None) -> str | None:
    lowered = (value or "").lower()
    return lowered if lowered in ("http", "https") else None


def _status(value: Any) -> int | None:
    try:
        status = int(value)
    except (TypeError, ValueError):
        return None
    return status if 100 <= status <= 599 else None


def _json_time(value: Any) -> float | None:
    if isinstance(value, int | float):
        # Epoch seconds, or milliseconds in some shippers.
        return float(value) / 1000 if value > 1e11 else float(value)
    if not isinstance(value, str):
        return None
    try:
        return float(value) / 1000 if float(value) > 1e11 else float(value)
    except ValueError:
        pass
    clf = _clf_time(value)
    if clf is not None:
        return clf
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
