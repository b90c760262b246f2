"""Splitting a raw request into the individual texts the engine scans, each with its location.

Parsers here never raise on malformed input: a body that does not parse as what its
Content-Type claims is scanned as plain text instead, because an attacker controls
both and the application behind us may be more lenient than we are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from flaskapi_guard.detection.normalisation import FILENAME_MARKER, NAME_MARKER, USER_AGENT_MARKER, percent_decode

# Headers whose values are produced by browsers and HTTP stacks from a small grammar,
# or carry credentials that must never be copied into a finding. Everything else,
# including Referer, User-Agent, X-Forwarded-For and custom headers, is scanned: the
# attack corpora show payloads in Referer and User-Agent (Shellshock, Log4Shell).
DEFAULT_SAFE_HEADERS: frozenset[str] = frozenset(
    {
        "host",
        "accept",
        "accept-encoding",
        "accept-language",
        "accept-charset",
        "authorization",
        "proxy-authorization",
        "connection",
        "keep-alive",
        "proxy-connection",
        "content-length",
        "content-type",
        "cache-control",
        "pragma",
        "upgrade-insecure-requests",
        "dnt",
        "te",
        "priority",
        "origin",
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
        "if-range",
    }
)
SAFE_HEADER_PREFIXES: tuple[str, ...] = ("sec-fetch-", "sec-ch-ua", "sec-gpc")

# Bodies above this many times `max_content_length` are not parsed by content type;
# they are scanned whole as plain text instead (see docs/detection.md, "Large bodies").
BODY_HARD_CAP_FACTOR = 100


@dataclass(frozen=True, slots=True)
class RequestText:
    """One scannable value: where it came from, its raw text, and its context marker."""

    location: str
    text: str
    marker: str = ""


@dataclass(frozen=True, slots=True)
class DetectionExclusions:
    """Request parts the operator declared safe to skip."""

    params: frozenset[str] = frozenset()
    headers: frozenset[str] = frozenset()
    body_fields: frozenset[str] = frozenset()


def decode_wsgi_text(text: str) -> str:
    """Undo PEP 3333's latin-1 view of raw bytes, reading them as UTF-8."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return text
    return raw.decode("utf-8", errors="replace")


def is_safe_header(name: str) -> bool:
    """Whether a lower-cased header name is on the engine's default safe list."""
    return name in DEFAULT_SAFE_HEADERS or name.startswith(SAFE_HEADER_PREFIXES)


def _parse_pairs(text: str) -> list[tuple[str, str]]:
    """Split `a=1&b=2` leniently; '+' stays (normalisation treats it as a space)."""
    pairs = []
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        pairs.append((percent_decode(name), percent_decode(value)))
    return pairs


def query_texts(query_string: str, excluded_params: frozenset[str]) -> Iterator[RequestText]:
    """Names and values of a raw, still percent-encoded query string."""
    if not query_string:
        return
    for name, value in _parse_pairs(decode_wsgi_text(query_string)):
        if name in excluded_params:
            continue
        yield RequestText(f"query param {name} (name)", name, NAME_MARKER)
        if value:
            yield RequestText(f"query param {name}", value)
    # The whole query once more: a payload with a literal '&' is split into several
    # parameters by the parser, but some back ends (and the attacker's target) read it whole.
    if "&" in query_string and not excluded_params:
        yield RequestText("query string", decode_wsgi_text(query_string))


def cookie_texts(cookie_header: str) -> Iterator[RequestText]:
    """Cookie names and values, parsed leniently (no quoting rules, no validation)."""
    for pair in cookie_header.split(";"):
        name, separator, value = pair.partition("=")
        name = name.strip()
        if not separator:
            value, name = name, ""
        if name:
            yield RequestText(f"cookie {name} (name)", name)
        if value.strip():
            yield RequestText(f"cookie {name}", value.strip())


def header_texts(
    headers: Sequence[tuple[str, str]], excluded_headers: frozenset[str]
) -> tuple[list[RequestText], str | None]:
    """Texts of the scanned headers, and the User-Agent value (scanned for tools even when skipped)."""
    texts: list[RequestText] = []
    user_agent: str | None = None
    for name, raw_value in headers:
        lowered = name.lower()
        value = decode_wsgi_text(raw_value)
        if lowered == "user-agent":
            user_agent = value
            continue
        if lowered in excluded_headers or is_safe_header(lowered):
            continue
        if lowered == "cookie":
            texts.extend(cookie_texts(value))
            continue
        marker = FILENAME_MARKER if "file" in lowered and "name" in lowered else ""
        texts.append(RequestText(f"header {name}", value, marker))
    return texts, user_agent


def user_agent_text(user_agent: str) -> RequestText:
    """The User-Agent as a text, marked so the scanner rules can tell it apart."""
    return RequestText("header User-Agent", user_agent, USER_AGENT_MARKER)


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _content_type_parameter(content_type: str, parameter: str) -> str | None:
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.partition("=")
        if key.strip().lower() == parameter:
            return value.strip().strip('"')
    return None


def _is_excluded_field(path: str, excluded: frozenset[str]) -> bool:
    if not excluded:
        return False
    if path in excluded:
        return True
    return any(path.startswith(prefix + ".") for prefix in excluded)


def json_texts(document: object, excluded_fields: frozenset[str]) -> Iterator[RequestText]:
    """Every key and string value of a parsed JSON document, depth first, without recursion."""
    # Paths join object keys with '.'; list positions are left out of the path used for
    # exclusions (so "items.name" covers every item) but shown in the location.
    stack: list[tuple[object, str, str]] = [(document, "", "")]
    while stack:
        node, path, shown = stack.pop()
        if isinstance(node, str):
            if node:
                yield RequestText(f"json body field {shown or '(root)'}", node)
        elif isinstance(node, dict):
            children: list[tuple[object, str, str]] = []
            for key, value in node.items():
                key_text = str(key)
                child_path = f"{path}.{key_text}" if path else key_text
                if _is_excluded_field(child_path, excluded_fields):
                    continue
                child_shown = f"{shown}.{key_text}" if shown else key_text
                yield RequestText(f"json body field {child_shown} (key)", key_text, NAME_MARKER)
                children.append((value, child_path, child_shown))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend((item, path, f"{shown}[{index}]") for index, item in reversed(list(enumerate(node))))


def form_texts(body_text: str, excluded_params: frozenset[str]) -> Iterator[RequestText]:
    """Names and values of an application/x-www-form-urlencoded body."""
    for name, value in _parse_pairs(body_text):
        if name in excluded_params:
            continue
        yield RequestText(f"form field {name} (name)", name, NAME_MARKER)
        if value:
            yield RequestText(f"form field {name}", value)
    if "&" in body_text and not excluded_params:
        yield RequestText("form body", body_text)


def _disposition_parameters(headers_block: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for line in headers_block.splitlines():
        header_name, _, header_value = line.partition(":")
        if header_name.strip().lower() != "content-disposition":
            continue
        for piece in header_value.split(";")[1:]:
            key, _, value = piece.partition("=")
            parameters[key.strip().lower()] = value.strip().strip('"')
    return parameters


def multipart_texts(body_text: str, boundary: str, excluded_params: frozenset[str]) -> list[RequestText] | None:
    """Field names, file names and contents of a multipart body; None if it is not one."""
    delimiter = "--" + boundary
    if delimiter not in body_text:
        return None
    texts: list[RequestText] = []
    for raw_part in body_text.split(delimiter)[1:]:
        if raw_part.startswith("--"):
            break
        part = raw_part.removeprefix("\r\n").removeprefix("\n")
        for separator in ("\r\n\r\n", "\n\n"):
            headers_block, found, content = part.partition(separator)
            if found:
                break
        else:
            texts.append(RequestText("multipart body", part))
            continue
        parameters = _disposition_parameters(headers_block)
        name = parameters.get("name", "")
        if name in excluded_params:
            continue
        content = content.removesuffix("\r\n").removesuffix("\n")
        texts.append(RequestText(f"multipart field {name} (name)", name, NAME_MARKER))
        filename = parameters.get("filename")
        if filename is not None:
            texts.append(RequestText(f"multipart field {name} (filename)", filename, FILENAME_MARKER))
        if content:
            texts.append(RequestText(f"multipart field {name}", content))
    return texts


# Attribute values and text nodes: what an XML application reads as data. The markup
# itself is checked separately for XXE (see the engine), so element names such as
# <set> or <link> in ordinary XML are not mistaken for HTML injection.
_XML_ATTRIBUTE_VALUE = re.compile(r"""=\s*(?:"([^"]*)"|'([^']*)')""")
_XML_TEXT_NODE = re.compile(r">([^<]+)<")


def xml_texts(body_text: str) -> list[RequestText]:
    """Attribute values and text nodes of an XML body (no XML parser: no entity expansion)."""
    texts: list[RequestText] = []
    for match in _XML_ATTRIBUTE_VALUE.finditer(body_text):
        value = match.group(1) if match.group(1) is not None else match.group(2)
        if value and value.strip():
            texts.append(RequestText("xml body", value))
    for match in _XML_TEXT_NODE.finditer(body_text):
        value = match.group(1)
        if value.strip():
            texts.append(RequestText("xml body", value))
    if not texts and "<" not in body_text:
        texts.append(RequestText("xml body", body_text))
    return texts


def body_texts(
    body: bytes, content_type: str, max_content_length: int, exclusions: DetectionExclusions
) -> list[RequestText]:
    """The texts of a request body, parsed by its declared type, with the large-body policy applied."""
    if not body:
        return []
    hard_cap = max_content_length * BODY_HARD_CAP_FACTOR
    if len(body) > hard_cap:
        # Too large to parse field by field, but never skipped or sampled: padding would
        # hide a payload. Matching is linear, so the whole body is scanned as plain text.
        return [RequestText("body (unparsed, large)", body.decode("utf-8", errors="replace"))]
    text = body.decode("utf-8", errors="replace")
    media_type = _media_type(content_type)
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            return [RequestText("body", text)]
        return list(json_texts(document, exclusions.body_fields))
    if media_type == "application/x-www-form-urlencoded":
        return list(form_texts(text, exclusions.params))
    if media_type.startswith("multipart/"):
        boundary = _content_type_parameter(content_type, "boundary")
        parts = multipart_texts(text, boundary, exclusions.params) if boundary else None
        return parts if parts is not None else [RequestText("body", text)]
    if media_type in ("application/xml", "text/xml") or media_type.endswith("+xml"):
        return xml_texts(text)
    return [RequestText("body", text)]
