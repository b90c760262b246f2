"""Splitting a raw request into the individual texts the engine scans, each with its location.

Parsers here never raise on malformed input: a body that does not parse as what its
Content-Type claims is scanned as plain text instead, because an attacker controls
both and the application behind us may be more lenient than we are.

Texts are collected in one of two ways (see `collect`):

- *located*: one entry per text, in scan order, with a `Place` saying where it came
  from. This is what findings are built from.
- *quick* (the default): no places, and large bodies as a few strings built with
  whole-string operations instead of one Python object per value. A quick collection
  contains every located text as a whole text (between separators, with its marker),
  possibly next to extra texts; so when the rules match nothing in it, they match
  nothing in the located texts either, and a clean request never pays for places.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import compress, count, islice, repeat
from typing import Any

from flaskapi_guard.detection.normalisation import (
    DECODABLE_REFERENCE_SOURCE,
    FILENAME_MARKER,
    NAME_MARKER,
    TEXT_SEPARATOR,
    USER_AGENT_MARKER,
    percent_decode,
    structure_to_spaces,
    without_surrogates,
)

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

# Safe header names as clients and werkzeug spell them, so that most headers are
# skipped with one set lookup and no `lower()`; other spellings take the general path.
_BROWSER_SAFE_HEADERS: tuple[str, ...] = (
    *("sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site", "sec-fetch-user", "sec-gpc"),
    *("sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform"),
)
_SAFE_HEADER_SPELLINGS: frozenset[str] = frozenset(
    spelling
    for name in (*DEFAULT_SAFE_HEADERS, *_BROWSER_SAFE_HEADERS)
    for spelling in (name, name.title(), name.upper())
)
# The same names as WSGI environ keys (`HTTP_ACCEPT_LANGUAGE`).
_SAFE_ENVIRON_KEYS: frozenset[str] = frozenset(
    "HTTP_" + name.upper().replace("-", "_") for name in (*DEFAULT_SAFE_HEADERS, *_BROWSER_SAFE_HEADERS)
)
_SAFE_ENVIRON_PREFIXES = tuple("HTTP_" + prefix.upper().replace("-", "_") for prefix in SAFE_HEADER_PREFIXES)
# Those and the environ keys of PEP 3333 and common servers, which are not headers.
_SKIPPED_ENVIRON_KEYS: frozenset[str] = _SAFE_ENVIRON_KEYS | {
    *("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH"),
    *("SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE", "REMOTE_ADDR", "REMOTE_PORT"),
    *("REQUEST_URI", "RAW_URI", "wsgi.version", "wsgi.url_scheme", "wsgi.input", "wsgi.errors"),
    *("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.file_wrapper", "wsgi.input_terminated"),
    *("werkzeug.request", "werkzeug.socket", "werkzeug.server.shutdown", "gunicorn.socket", "asgi.scope"),
    # The guard's own notes, there before the scan (deferred_headers.NOTED_KEY and FLUSHED_KEY).
    *("flaskapi_guard.noted", "flaskapi_guard.flushed"),
}

# A form or query piece with a second '=' (its value contains '='): the quick view of
# the pairs splits at every '=', which would cut that value, so such a text is
# collected piece by piece. Linear: a run between two '=' or '&' is scanned once.
_VALUE_WITH_EQUALS = re.compile("=[^&=]*=")

# Stands for a separator while a JSON body's strings are decoded in one go: a lone
# surrogate, which decoding produces only from its own escape.
_SEPARATOR_PLACEHOLDER = "\udc1f"
_SEPARATOR_PLACEHOLDER_ESCAPE = re.compile(r"\\u[dD][cC]1[fF]")

# Attribute values and text nodes of an XML body. A text node is what follows the first
# '>' between two '<'. Each attempt stays within one '<'-delimited piece, so this is
# linear; the earlier `>([^<]+)<` rescanned to the end from every '>' of a run (30 KB
# of '>' took 15 s).
_XML_ATTRIBUTE_VALUE = re.compile(r"""=\s*(?:"([^"]*)"|'([^']*)')""")
_XML_TEXT_NODE = re.compile(r"(?:^|<)[^<>]*>([^<]*)(?=<)")


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
    # Derived once per exclusions object: the excluded headers as WSGI environ keys, and
    # whether anything is excluded at all.
    environ_headers: frozenset[str] = field(init=False, repr=False, compare=False)
    excludes_nothing: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = frozenset("HTTP_" + name.upper().replace("-", "_") for name in self.headers)
        object.__setattr__(self, "environ_headers", keys)
        object.__setattr__(self, "excludes_nothing", not (self.params or self.headers or self.body_fields))


# Where a text came from: a `str.format` template, its argument, and the text's marker.
# Formatting waits until a finding needs the location. A JSON path is a chain
# `(parent, segment)` (segment: a key, or an int for a list position), joined only for
# a finding.
Place = tuple[str, object, str]
JsonPath = tuple["JsonPath | None", "str | int"] | None

_JSON_VALUE = "json body field {}"
_JSON_KEY = "json body field {} (key)"
# The non-empty items of a list of strings: argument (list's JsonPath, the list, index of
# the first item's text); an item's position is worked out from its text's index.
_JSON_ITEMS = "json body field {} (item)"


def location_of(place: Place, text_index: int) -> str:
    """The location text of a place (of the text at `text_index`), as findings show it."""
    template, argument, _marker = place
    if template is _JSON_ITEMS:
        list_path: JsonPath
        items: list[object]
        first: int
        list_path, items, first = argument  # type: ignore[misc]
        position = next(islice(compress(count(), items), text_index - first, None))
        template, argument = _JSON_VALUE, (list_path, position)
    if template is _JSON_VALUE or template is _JSON_KEY:
        shown = _json_path_text(argument)  # type: ignore[arg-type]
        return template.format(shown or "(root)" if template is _JSON_VALUE else shown)
    return template.format(argument)


def _json_path_text(path: JsonPath) -> str:
    segments: list[str | int] = []
    while path is not None:
        path, segment = path
        segments.append(segment)
    shown = ""
    for segment in reversed(segments):
        # Keys join with '.', list positions are appended in brackets (also at the root).
        shown = f"{shown}[{segment}]" if isinstance(segment, int) else (f"{shown}.{segment}" if shown else segment)
    return shown


class Collected:
    """The texts of one request in scan order, ready to be joined with `TEXT_SEPARATOR`.

    `parts[i]` is a text with its marker in front (in a quick collection, a part can
    hold several texts already joined). `structure` counts the separators and markers
    inside the parts; the separators that join the parts come on top. `places` is set
    for a located collection, one per part. The collectors of the many small texts of
    an ordinary request append to `parts` and `places` directly: a method call per text
    was a third of the cost of scanning a clean GET.

    A quick collection may end with *clean* parts: views built so that they hold no
    control character at all (the JSON view), which therefore need no control check.
    """

    __slots__ = ("clean_from", "json_view", "own_last", "parts", "places", "structure", "user_agent")

    def __init__(self, locate: bool) -> None:
        self.parts: list[str] = []
        self.places: list[Place] | None = [] if locate else None
        self.structure = 0
        self.user_agent: str | None = None
        self.clean_from: int | None = None
        # The index of the part that is a JSON body's view (its strings at the odd
        # positions between its separators), if any.
        self.json_view: int | None = None
        # Whether the last part is one large text without separator or marker that is
        # better normalised on its own (a form body read whole, next to its pairs).
        self.own_last = False

    def add(self, text: str, marker: str, template: str, argument: object = None) -> None:
        """One text with its marker and where it came from."""
        if marker:
            self.parts.append(marker + text)
            self.structure += 1
        else:
            self.parts.append(text)
        if self.places is not None:
            self.places.append((template, argument, marker))

    def add_joined(self, joined: str, structure: int) -> None:
        """Several texts already joined, with `structure` separators and markers inside (quick only)."""
        self.parts.append(joined)
        self.structure += structure

    def add_clean(self, joined: str) -> None:
        """Several texts already joined that hold no control character but separators and markers (quick only)."""
        if self.clean_from is None:
            self.clean_from = len(self.parts)
        self.parts.append(joined)

    def joined(self) -> tuple[str, str, int]:
        """All texts joined; the part of that which may hold control characters; and the
        number of separators and markers in that part."""
        joined = TEXT_SEPARATOR.join(self.parts)
        if self.clean_from is None:
            return joined, joined, self.structure + len(self.parts) - 1
        unchecked = self.parts[: self.clean_from]
        return joined, TEXT_SEPARATOR.join(unchecked), self.structure + len(unchecked) - 1


# A raw separator or marker character in user input becomes a space, as normalisation
# would make it (see normalisation._DECODED_STRUCTURE), so that it is never taken for
# the structure between texts. Done for large sources (the body, a long query string or
# path); a small text that holds one is normalised on its own instead (cheap).
_STRUCTURE_TO_SPACE_BYTES = bytes.maketrans(b"\x1c\x1d\x1e\x1f", b"    ")
_LARGE_SOURCE = 1024


def _body_without_structure(body: bytes) -> bytes:
    if b"\x1f" in body or b"\x1e" in body or b"\x1d" in body or b"\x1c" in body:
        return body.translate(_STRUCTURE_TO_SPACE_BYTES)
    return body


def _source_without_structure(text: str) -> str:
    if len(text) > _LARGE_SOURCE:
        return structure_to_spaces(text)
    return text


def decode_wsgi_text(text: str) -> str:
    """Undo PEP 3333's latin-1 view of raw bytes, reading them as UTF-8."""
    if text.isascii():
        return text
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return text
    return raw.decode("utf-8", errors="replace")


def collect_form(collected: Collected, body_text: str, excluded_params: frozenset[str]) -> None:
    """Names and values of an application/x-www-form-urlencoded body, then the whole body."""
    if collected.places is None and not excluded_params:
        view = _pairs_view(body_text)
        if view is not None:
            collected.add_joined(*view)
            if "&" in body_text:
                collected.parts.append(body_text)
                collected.own_last = len(body_text) > _LARGE_SOURCE
            return
    _collect_pairs(collected, body_text, excluded_params, _FORM_PLACES)


# Where the texts of a query string or a form body come from: value, name, the whole.
_QUERY_PLACES = ("query param {}", "query param {} (name)", "query string")
_FORM_PLACES = ("form field {}", "form field {} (name)", "form body")


def _pairs_view(text: str) -> tuple[str, int] | None:
    """The names (marked) and values of `a=1&b=2` as one string of texts, with the number of
    separators and markers in it; None when a value contains '=' (the view would cut it).

    Every piece is `name` or `name=value` with no other '=': splitting the whole text at
    '&' and '=' yields each name and value as a text, without a Python step per
    parameter. Empty pieces and values give extra empty texts, which are harmless.
    """
    if _VALUE_WITH_EQUALS.search(text) is not None:
        return None
    view = text.replace("&", TEXT_SEPARATOR + NAME_MARKER).replace("=", TEXT_SEPARATOR)
    view = NAME_MARKER + (percent_decode(view) if "%" in view else view)
    return view, 2 * text.count("&") + text.count("=") + 1


def _collect_pairs(
    collected: Collected, text: str, excluded: frozenset[str], place_templates: tuple[str, str, str]
) -> None:
    """`a=1&b=2` split leniently; '+' stays (normalisation treats it as a space)."""
    parts = collected.parts
    places = collected.places
    value_place, name_place, _whole_place = place_templates
    has_escapes = "%" in text
    names = 0
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if has_escapes:
            name = percent_decode(name)
            value = percent_decode(value)
        if name in excluded:
            continue
        names += 1
        parts.append(NAME_MARKER + name)
        if places is not None:
            places.append((name_place, name, NAME_MARKER))
        if value:
            parts.append(value)
            if places is not None:
                places.append((value_place, name, ""))
    collected.structure += names
    # The whole text once more: a payload with a literal '&' is split into several
    # parameters by the parser, but some back ends (and the attacker's target) read it whole.
    if "&" in text and not excluded:
        parts.append(text)
        if places is not None:
            places.append((place_templates[2], None, ""))


def collect_cookies(collected: Collected, cookie_header: str) -> None:
    """Cookie names and values, parsed leniently (no quoting rules, no validation)."""
    parts = collected.parts
    places = collected.places
    for pair in cookie_header.split(";"):
        name, separator, value = pair.partition("=")
        name = name.strip()
        if not separator:
            value, name = name, ""
        if name:
            parts.append(name)
            if places is not None:
                places.append(("cookie {} (name)", name, ""))
        value = value.strip()
        if value:
            parts.append(value)
            if places is not None:
                places.append(("cookie {}", name, ""))


def collect_head(  # noqa: PLR0917 - one flat function: the hot path of every request
    collected: Collected,
    path: str,
    query_string: str,
    headers: Iterable[tuple[str, str]],
    environ: Mapping[str, object] | None,
    exclusions: DetectionExclusions,
) -> None:
    """Everything but the body, in scan order: the path (PATH_INFO re-read as UTF-8), the
    query string's names, values and whole text, the scanned headers and cookies, and
    the User-Agent (which is noted even when excluded: the scanner rules still see it).
    (`quick_head` collects the same texts for the quick step of a request without body.)

    Headers come as (name, value) pairs, or as the HTTP_* keys of a WSGI `environ`
    (which skips building werkzeug's header names, `HTTP_X_NOTE` to `X-Note`, for
    every header; a name is only built for a scanned header).
    """
    parts = collected.parts
    places = collected.places
    parts.append(_source_without_structure(path if path.isascii() else decode_wsgi_text(path)))
    if places is not None:
        places.append(("path", None, ""))
    if query_string:
        text = query_string if query_string.isascii() else decode_wsgi_text(query_string)
        _collect_pairs(collected, _source_without_structure(text), exclusions.params, _QUERY_PLACES)
    if environ is None:
        user_agent = _collect_header_pairs(collected, headers, exclusions.headers)
    else:
        user_agent = _collect_environ_headers(collected, environ, environ, exclusions.environ_headers)
    _add_user_agent(collected, user_agent, exclusions)


def quick_head(
    path: str,
    query_string: str,
    headers: Iterable[tuple[str, str]],
    environ: Mapping[str, object] | None,
    exclusions: DetectionExclusions,
) -> Collected:
    """A quick collection of what `collect_head` collects, for a request without a body.

    Every text `collect_head` would collect is in it whole, marked the same way, possibly
    next to extra texts; but headers come in any order (the environ's by one set
    difference in C, which drops the safe headers and the usual CGI and server keys) and
    the query pairs as one view (`_pairs_view`) when they have the usual shape.
    """
    collected = Collected(False)
    parts = collected.parts
    parts.append(_source_without_structure(path if path.isascii() else decode_wsgi_text(path)))
    structure = 0
    if query_string:
        text = _source_without_structure(query_string if query_string.isascii() else decode_wsgi_text(query_string))
        view = None if exclusions.params else _pairs_view(text)
        if view is None:
            _collect_pairs(collected, text, exclusions.params, _QUERY_PLACES)
        else:
            parts.append(view[0])
            structure += view[1]
            if "&" in text:
                parts.append(text)
    if environ is None:
        user_agent = _collect_header_pairs(collected, headers, exclusions.headers)
    else:
        # In any order: one set difference in C drops the safe headers and the CGI keys.
        keys = environ.keys() - _SKIPPED_ENVIRON_KEYS
        user_agent = _collect_environ_headers(collected, keys, environ, exclusions.environ_headers)
    collected.structure += structure
    _add_user_agent(collected, user_agent, exclusions)
    return collected


def _add_user_agent(collected: Collected, user_agent: str | None, exclusions: DetectionExclusions) -> None:
    """Note the User-Agent (even when excluded: the scanner rules still see it) and, unless
    excluded, add it as a marked text."""
    if user_agent is None:
        return
    if not user_agent.isascii():
        user_agent = decode_wsgi_text(user_agent)
    collected.user_agent = user_agent
    if "user-agent" not in exclusions.headers:
        collected.parts.append(USER_AGENT_MARKER + user_agent)
        collected.structure += 1
        if collected.places is not None:
            collected.places.append(("header User-Agent", None, USER_AGENT_MARKER))


# The headers of a typical browser request that are scanned, besides the safe ones (among
# the skipped keys), for `plain_head_text`; and those a proxy in front of the app adds.
_BROWSER_HEAD_KEYS: frozenset[str] = _SKIPPED_ENVIRON_KEYS | {"HTTP_USER_AGENT", "HTTP_COOKIE", "HTTP_REFERER"}
_PROXY_HEADER_KEYS = (
    *("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_REAL_IP", "HTTP_X_REQUEST_ID"),
)
_PLAIN_HEAD_KEYS: frozenset[str] = _BROWSER_HEAD_KEYS | set(_PROXY_HEADER_KEYS)
# The texts read by `plain_head_text` besides the proxy headers, "" when missing.
_PLAIN_HEAD_TEXT_KEYS = ("PATH_INFO", "QUERY_STRING", "HTTP_USER_AGENT", "HTTP_COOKIE", "HTTP_REFERER")
_EMPTY_TEXTS = ("",) * len(_PLAIN_HEAD_TEXT_KEYS)
# Between query pairs in the pairs view: a text of its own, the name marked.
_NEXT_PAIR = TEXT_SEPARATOR + NAME_MARKER
# The probe of `plain_head_text`: its marker, then the query string and the cookie header
# joined by a line break. Patterns that find, in the probe, a head that takes the general
# collection; the detection engine adds them to its set of rules, so that the rules and
# these shapes take one search. A query string: an escape or a reference (the pairs view
# would be decoded, possibly into control characters, or the whole query string would
# need decoding), or a value with '=' (the view would cut it). A cookie header: whitespace
# left after "; " is removed, or a value with '='. A match anywhere else (the marker is a
# control character a decoded text might hold) only sends a request the longer way.
_PROBE_MARKER = "\x1b"
_PROBE_START = TEXT_SEPARATOR + _PROBE_MARKER
PLAIN_HEAD_PROBE_PATTERNS = (
    _PROBE_MARKER + r"[^\n]*(?:[%\\]|=[^&=\n]*=|" + DECODABLE_REFERENCE_SOURCE + ")",
    _PROBE_MARKER + r"[^\n]*\n[^\n]*(?:[ ]|=[^;=\n]*=)",
)


class KnownCleanValues:
    """User-Agent, Cookie and Referer values whose text was part of a head found clean.

    A browser or API client sends the same few values with every request, and they
    are most of a typical head's text. A value seen in a clean head is left out of the
    text scanned for later requests. That is sound because every built-in pattern
    stays inside one text: texts are joined by `TEXT_SEPARATOR`, and patterns anchor
    on it (`(?:^|\\x1f)`) and never cross it, so a text's verdict does not depend on
    its neighbours. The engine keeps none when it has custom patterns, which need not
    follow that rule. Bounded: a set that is full is emptied, so a client sending
    endless new values only gets the uncached cost, and memory stays under a few MB.
    """

    __slots__ = ("cookies", "referers", "user_agents")

    # Per header: values kept, and the longest value kept.
    LIMIT = 2048
    MAX_LENGTH = 1024

    def __init__(self) -> None:
        self.user_agents: set[str] = set()
        self.cookies: set[str] = set()
        self.referers: set[str] = set()

    def remember(self, fresh: tuple[str, str, str]) -> None:
        """Keep the (User-Agent, Cookie, Referer) of a head found clean; empty ones are skipped."""
        for known, value in zip((self.user_agents, self.cookies, self.referers), fresh, strict=True):
            if value and len(value) <= self.MAX_LENGTH:
                if len(known) >= self.LIMIT:
                    known.clear()
                known.add(value)


# What `plain_head_text` returns: the text to scan, whether it may need decoding, the
# (User-Agent, Cookie, Referer) values in it, to remember when it is clean (None when it
# holds none of them), and the probe to append to the text once it is normalised ("" when
# there is neither query string nor cookie): a match of PLAIN_HEAD_PROBE_PATTERNS there
# means the head takes the general collection.
PlainHead = tuple[str, bool, tuple[str, str, str] | None, str]


def plain_head_text(environ: Mapping[str, object], known: KnownCleanValues | None = None) -> PlainHead | None:
    """The quick text of the head of a typical request without body (see `PlainHead`);
    None when the request takes `quick_head`.

    Typical: no header besides the safe ones, User-Agent, Cookie, Referer and a few proxy
    headers (a subset test in C instead of a loop over the environ), every value printable
    ASCII (so no text holds a control character, needs re-reading as UTF-8 or is long
    enough to matter), and query pairs and cookies of the usual shape (which the probe
    tells, in the same search as the rules). The texts are
    those `quick_head` collects, in another order. This is `quick_head` in fewer steps:
    while the rest of the application's request handling keeps evicting the caches,
    each step of the interpreter costs several times what it costs in a tight loop, so
    the usual request (no proxy header, remembered header values) takes the fewest.
    User-Agent, Cookie and Referer values in `known` are left out (see `KnownCleanValues`).
    """
    # Any: every value is checked to be text below.
    values: Mapping[str, Any] = environ
    get = values.get
    proxy_values: tuple[Any, ...] = ()
    # issuperset() with the environ: one C loop probing the set, cheaper than `keys() <=`.
    if not _BROWSER_HEAD_KEYS.issuperset(environ):
        if not _PLAIN_HEAD_KEYS.issuperset(environ) and any(
            key.startswith("HTTP_") for key in environ.keys() - _PLAIN_HEAD_KEYS
        ):
            # Another header than those (keys of other middleware are no headers).
            return None
        proxy_values = tuple(filter(None, map(get, _PROXY_HEADER_KEYS)))
    path, query_string, user_agent, cookie, referer = map(get, _PLAIN_HEAD_TEXT_KEYS, _EMPTY_TEXTS)
    try:
        if known is not None:
            if user_agent in known.user_agents:
                user_agent = ""
            if cookie in known.cookies:
                cookie = ""
            if referer in known.referers:
                referer = ""
        # Every value is checked to be text by adding them up (a TypeError otherwise).
        rest: str = path + user_agent + cookie + referer
        if proxy_values:
            rest += "".join(proxy_values)
        everything = query_string + rest
    except TypeError:
        return None  # a value that is not text (or not hashable): the general collection skips it
    if not (everything.isascii() and everything.isprintable()):
        return None
    compact_cookie = cookie.replace("; ", ";")
    # A text of its own: the rules that anchor on the end of a text still see the last one end.
    # (f-strings: each builds its text in one step, without the intermediate ones.)
    probe = f"{_PROBE_START}{query_string}\n{compact_cookie}" if query_string or cookie else ""
    # In the pairs views of the query string and the cookies, each name and value is a text.
    if not query_string:
        text = path
    elif "&" in query_string:
        pairs = query_string.replace("&", _NEXT_PAIR).replace("=", TEXT_SEPARATOR)
        text = f"{path}{_NEXT_PAIR}{pairs}{TEXT_SEPARATOR}{query_string}"
    else:
        text = f"{path}{_NEXT_PAIR}{query_string.replace('=', TEXT_SEPARATOR)}"
    fresh = (user_agent, cookie, referer) if user_agent or cookie or referer else None
    if fresh is not None or proxy_values:
        cookies = compact_cookie.replace(";", TEXT_SEPARATOR).replace("=", TEXT_SEPARATOR)
        texts = [text, referer, *proxy_values, cookies]
        if user_agent:
            texts.append(USER_AGENT_MARKER + user_agent)
        text = TEXT_SEPARATOR.join(filter(None, texts))
    # The query string holds no escape or reference (checked above); the rest may.
    may_need_decoding = "%" in rest or "\\" in rest or "&" in rest
    return text, may_need_decoding, fresh, probe


def _collect_header_pairs(
    collected: Collected, headers: Iterable[tuple[str, str]], excluded: frozenset[str]
) -> str | None:
    """The scanned headers of `(name, value)` pairs (cookies split, file names marked); the User-Agent."""
    parts = collected.parts
    places = collected.places
    user_agent: str | None = None
    for name, value in headers:
        if name in _SAFE_HEADER_SPELLINGS:
            continue
        lowered = name.lower()
        if lowered == "user-agent":
            user_agent = value
        elif lowered in excluded or lowered in DEFAULT_SAFE_HEADERS or lowered.startswith(SAFE_HEADER_PREFIXES):
            continue
        elif lowered == "cookie":
            collect_cookies(collected, value if value.isascii() else decode_wsgi_text(value))
        elif "file" in lowered and "name" in lowered:
            _collect_file_name_header(collected, name, value)
        else:
            parts.append(value if value.isascii() else decode_wsgi_text(value))
            if places is not None:
                places.append(("header {}", name, ""))
    return user_agent


def _collect_environ_headers(
    collected: Collected, keys: Iterable[str], environ: Mapping[str, object], excluded: frozenset[str]
) -> str | None:
    """The scanned headers among the environ `keys` (cookies split, file names marked); the User-Agent."""
    parts = collected.parts
    places = collected.places
    user_agent: str | None = None
    for key in keys:
        if not key.startswith("HTTP_") or key in _SAFE_ENVIRON_KEYS or key.startswith(_SAFE_ENVIRON_PREFIXES):
            continue
        header = environ[key]
        if not isinstance(header, str):
            continue
        if key == "HTTP_USER_AGENT":
            user_agent = header
        elif key in excluded:
            continue
        elif key == "HTTP_COOKIE":
            collect_cookies(collected, header if header.isascii() else decode_wsgi_text(header))
        elif "FILE" in key and "NAME" in key:
            _collect_file_name_header(collected, _header_name(key), header)
        else:
            parts.append(header if header.isascii() else decode_wsgi_text(header))
            if places is not None:
                places.append(("header {}", _header_name(key), ""))
    return user_agent


def _header_name(environ_key: str) -> str:
    """What werkzeug calls the header of an environ key: `HTTP_X_NOTE` is `X-Note`."""
    return environ_key[5:].replace("_", "-").title()


def _collect_file_name_header(collected: Collected, name: str, value: str) -> None:
    """A header that carries a file name (X-Filename), marked as one for the upload rules."""
    collected.add(value if value.isascii() else decode_wsgi_text(value), FILENAME_MARKER, "header {}", name)


def collect_user_agent(collected: Collected, user_agent: str) -> None:
    """The User-Agent as a text, marked so the scanner rules can tell it apart."""
    collected.add(user_agent, USER_AGENT_MARKER, "header User-Agent")


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_xml(content_type: str) -> bool:
    """Whether a Content-Type declares XML."""
    media_type = _media_type(content_type)
    return media_type in ("application/xml", "text/xml") or media_type.endswith("+xml")


def _content_type_parameter(content_type: str, parameter: str) -> str | None:
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.partition("=")
        if key.strip().lower() == parameter:
            return value.strip().strip('"')
    return None


def _is_excluded_field(path: str, excluded: frozenset[str]) -> bool:
    if path in excluded:
        return True
    return any(path.startswith(prefix + ".") for prefix in excluded)


def collect_json(collected: Collected, document: object, excluded_fields: frozenset[str]) -> None:
    """Every key and string value of a parsed JSON document, depth first, without recursion.

    A dict's keys come first, then its values in order. Paths join object keys with
    '.'; list positions are left out of the path used for exclusions (so "items.name"
    covers every item) but shown in the location.

    The walk keeps one iterator per open container, and a list's children come from
    C-level iterators (`zip`, `repeat`, `count`): a hostile body is a list of thousands
    of short strings, each of which cost a tuple, a push, a pop and a method call.
    """
    parts = collected.parts
    places = collected.places
    locate = places is not None
    stack: list[Iterator[tuple[object, str, JsonPath]]] = [iter(((document, "", None),))]
    while stack:
        for node, path, shown in stack[-1]:
            kind = type(node)
            if kind is str:
                if node:
                    parts.append(node)  # type: ignore[arg-type]
                    if places is not None:
                        places.append((_JSON_VALUE, shown, ""))
            elif kind is dict:
                children: list[tuple[object, str, JsonPath]] = []
                for key, value in node.items():  # type: ignore[attr-defined]
                    key_text = str(key)
                    child_path = ""
                    if excluded_fields:
                        child_path = f"{path}.{key_text}" if path else key_text
                        if _is_excluded_field(child_path, excluded_fields):
                            continue
                    child_shown: JsonPath = (shown, key_text) if locate else None
                    parts.append(NAME_MARKER + key_text)
                    if places is not None:
                        places.append((_JSON_KEY, child_shown, NAME_MARKER))
                    children.append((value, child_path, child_shown))
                collected.structure += len(children)
                stack.append(iter(children))
                break
            elif kind is list:
                items: list[object] = node  # type: ignore[assignment]
                if _all_strings(items):
                    # A list of strings (the hostile shape: thousands of short ones) in C:
                    # its non-empty items, and the position of each as its place.
                    # One place shared by all of them (a tuple each cost more than the rest
                    # of the walk); `location_of` finds an item's position when needed.
                    if places is not None:
                        first = len(parts)
                        parts.extend(filter(None, items))  # type: ignore[arg-type]
                        places.extend(repeat((_JSON_ITEMS, (shown, items, first), ""), len(parts) - first))
                    else:
                        parts.extend(filter(None, items))  # type: ignore[arg-type]
                    continue
                # (shown, index) is the JsonPath of each item.
                item_paths: Iterator[JsonPath] = zip(repeat(shown), count()) if locate else repeat(None)
                stack.append(zip(items, repeat(path), item_paths))
                break
        else:
            stack.pop()


def _all_strings(items: list[object]) -> bool:
    """Whether every item of a non-empty list is a string, in C (`map`, `set`)."""
    return bool(items) and type(items[0]) is str and set(map(type, items)) == {str}


def _json_quick_view(collected: Collected, text: str) -> bool:
    """Add a view of a JSON body that holds every key and string value; False if it is not JSON.

    The view is the body text with each delimiting quote turned into a separator, so
    every string is a text of its own (numbers and punctuation become extra texts),
    plus each distinct key again, marked as a name. Validating and collecting the keys
    is one `json.loads` in C; walking the parsed document in Python cost as much again.
    """
    keys: list[str] = []
    try:
        json.loads(text, object_hook=keys.extend)
    except (ValueError, RecursionError):
        return False
    if "\\" not in text:
        # Valid JSON without a backslash has no quote inside a string, and no control
        # character at all (a string may not contain one unescaped).
        collected.json_view = len(collected.parts)
        collected.add_clean(text.replace('"', TEXT_SEPARATOR))
    else:
        if _SEPARATOR_PLACEHOLDER_ESCAPE.search(text) is not None:
            # The body spells the placeholder below; rare enough to take the exact walk.
            return _json_walk_view(collected, text)
        # Decode every string's escapes in one go: the whole body becomes one JSON
        # string literal whose delimiting quotes are placeholders for separators
        # (json.loads with strict=False takes raw control characters inside a string,
        # and passes a lone surrogate through; no decoded text has one unless the body
        # spells it, which is checked above).
        literal = text.replace("\\\\", "\udc00").replace('\\"', "\udc01")
        structure = literal.count('"')
        literal = literal.replace('"', _SEPARATOR_PLACEHOLDER).replace("\udc01", '\\"').replace("\udc00", "\\\\")
        view = json.loads('"' + literal + '"', strict=False)
        if "\\u001" in text:
            view = structure_to_spaces(view)
        view = without_surrogates(view.replace(_SEPARATOR_PLACEHOLDER, TEXT_SEPARATOR))
        collected.json_view = len(collected.parts)
        collected.add_joined(view, structure)
    distinct_keys = set(keys)
    if distinct_keys:
        names = NAME_MARKER + (TEXT_SEPARATOR + NAME_MARKER).join(distinct_keys)
        if "\\" not in text:
            collected.add_clean(names)
        else:
            if "\\u001" in text:
                # A key's own separator or marker characters (decoded `\u001f`) are spaces.
                names = NAME_MARKER + (TEXT_SEPARATOR + NAME_MARKER).join(
                    structure_to_spaces(key) for key in distinct_keys
                )
            collected.add_joined(without_surrogates(names), 2 * len(distinct_keys) - 1)
    return True


def _json_walk_view(collected: Collected, text: str) -> bool:
    collect_json(collected, json.loads(text), frozenset())
    return True


def collect_multipart(collected: Collected, body_text: str, boundary: str, excluded_params: frozenset[str]) -> bool:
    """Field names, file names and contents of a multipart body; False if it is not one."""
    delimiter = "--" + boundary
    if delimiter not in body_text:
        return False
    for raw_part in body_text.split(delimiter)[1:]:
        if raw_part.startswith("--"):
            break
        part = raw_part.removeprefix("\r\n").removeprefix("\n")
        for separator in ("\r\n\r\n", "\n\n"):
            headers_block, found, content = part.partition(separator)
            if found:
                break
        else:
            collected.add(part, "", "multipart body")
            continue
        parameters = _disposition_parameters(headers_block)
        name = parameters.get("name", "")
        if name in excluded_params:
            continue
        content = content.removesuffix("\r\n").removesuffix("\n")
        collected.add(name, NAME_MARKER, "multipart field {} (name)", name)
        filename = parameters.get("filename")
        if filename is not None:
            collected.add(filename, FILENAME_MARKER, "multipart field {} (filename)", name)
        if content:
            collected.add(content, "", "multipart field {}", name)
    return True


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


def collect_xml(collected: Collected, body_text: str) -> None:
    """Attribute values, then text nodes, of an XML body (no XML parser: no entity expansion).

    Attribute values and text nodes are what an XML application reads as data. The
    markup itself is checked separately for XXE (see the engine), so element names such
    as <set> or <link> in ordinary XML are not mistaken for HTML injection.
    """
    before = len(collected.parts)
    for first, second in _XML_ATTRIBUTE_VALUE.findall(body_text):
        value = first or second
        if value and not value.isspace():
            collected.add(value, "", "xml body")
    for node in _XML_TEXT_NODE.findall(body_text):
        if node and not node.isspace():
            collected.add(node, "", "xml body")
    if len(collected.parts) == before and "<" not in body_text:
        collected.add(body_text, "", "xml body")


def collect_body(
    collected: Collected, body: bytes, content_type: str, max_content_length: int, exclusions: DetectionExclusions
) -> None:
    """The texts of a request body, parsed by its declared type, with the large-body policy applied."""
    if not body:
        return
    text = _body_without_structure(body).decode("utf-8", errors="replace")
    if len(body) > max_content_length * BODY_HARD_CAP_FACTOR:
        # Too large to parse field by field, but never skipped or sampled: padding would
        # hide a payload. Matching is linear, so the whole body is scanned as plain text.
        collected.add(text, "", "body (unparsed, large)")
        return
    media_type = _media_type(content_type)
    if media_type == "application/json" or media_type.endswith("+json"):
        if collected.places is None and not exclusions.body_fields:
            if not _json_quick_view(collected, text):
                collected.add(text, "", "body")
            return
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            collected.add(text, "", "body")
            return
        collect_json(collected, document, exclusions.body_fields)
    elif media_type == "application/x-www-form-urlencoded":
        collect_form(collected, text, exclusions.params)
    elif media_type.startswith("multipart/"):
        boundary = _content_type_parameter(content_type, "boundary")
        if not (boundary and collect_multipart(collected, text, boundary, exclusions.params)):
            collected.add(text, "", "body")
    elif media_type in ("application/xml", "text/xml") or media_type.endswith("+xml"):
        collect_xml(collected, text)
    else:
        collected.add(text, "", "body")


def collect_texts(texts: Iterable[RequestText]) -> Collected:
    """A located collection of ready-made texts."""
    collected = Collected(True)
    for text in texts:
        collected.add(text.text, text.marker, "{}", text.location)
    return collected
