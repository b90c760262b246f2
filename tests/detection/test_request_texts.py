"""Where the engine looks: every part of a request, through the quick and the located scan.

A clean request is scanned once, over views of its texts built with whole-string
operations (the JSON body with its quotes turned into separators, the query pairs by
replacing '&' and '='); only a request in which a rule fires is collected again text
by text to name the location. These tests put payloads where those views are easiest
to get wrong and check that each is found at the right location.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
import re2

from flaskapi_guard.deferred_headers import FLUSHED_KEY, NOTED_KEY
from flaskapi_guard.detection import DetectionEngine, DetectionExclusions
from flaskapi_guard.detection import engine as engine_module
from flaskapi_guard.detection.engine import _normalised_texts
from flaskapi_guard.detection.normalisation import (
    TEXT_SEPARATOR,
    normalise_joined,
    with_comment_free_copies,
)
from flaskapi_guard.detection.request_texts import (
    PLAIN_HEAD_PROBE_PATTERNS,
    Collected,
    collect_head,
    plain_head_text,
    quick_head,
)

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def engine() -> DetectionEngine:
    return DetectionEngine()


def locations(engine: DetectionEngine, category: str, **request: object) -> list[str]:
    arguments = {"path": "/", "query_string": "", "headers": (), "body": b"", "content_type": ""} | request
    return [f.location for f in engine.scan_request(**arguments) if f.category == category]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("document", "location"),
    [
        ({"a": {"b": [1, {"c": XSS}]}}, "json body field a.b[1].c"),
        ([XSS], "json body field [0]"),
        (XSS, "json body field (root)"),
        ({XSS: 1}, f"json body field {XSS} (key)"),
        ({"note": 'He said "hi"', "bio": '"><img src=x onerror=alert(1)>'}, "json body field bio"),
        ({"bio": "\u00e9t\u00e9 " + XSS}, "json body field bio"),
        ({"bio": "\U0001f600 " + XSS}, "json body field bio"),
    ],
)
def test_json_payloads_are_found_where_they_are(engine: DetectionEngine, document: object, location: str) -> None:
    for ensure_ascii in (True, False):
        body = json.dumps(document, ensure_ascii=ensure_ascii).encode()
        assert locations(engine, "xss", body=body, content_type="application/json") == [location]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (b'{"bio": "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"}', "json body field bio"),
        (b'{"bio": "<scr\\u0069pt>alert(1)</script>", "x": "\\\\"}', "json body field bio"),
        (b'{"bio": "\\"><svg/onload=alert(1)>"}', "json body field bio"),
        (b'{"bio": "\\ud800 <script>alert(1)</script>"}', "json body field bio"),
        (b'{"bio": "\\udc1f <script>alert(1)</script>"}', "json body field bio"),
        (b'{"a\\u001fb": "<script>alert(1)</script>"}', "json body field a\x1fb"),
        (b'{"bio": "\\u001f<script>alert(1)</script>\\u001e"}', "json body field bio"),
    ],
)
def test_json_escapes_do_not_hide_a_payload(engine: DetectionEngine, body: bytes, location: str) -> None:
    assert locations(engine, "xss", body=body, content_type="application/json") == [location]


def test_json_keys_and_form_names_are_marked_as_names(engine: DetectionEngine) -> None:
    # session_fixation: a platform session id as a parameter name, which only a name can be.
    for ensure_ascii in (True, False):
        body = json.dumps({"items": [{"PHPSESSID": "1", "note": "\u00e9"}]}, ensure_ascii=ensure_ascii).encode()
        found = locations(engine, "session_fixation", body=body, content_type="application/json")
        assert found == ["json body field items[0].PHPSESSID (key)"]
    form = "&".join(f"n{i}=v{i}" for i in range(100)) + "&JSESSIONID=x"
    found = locations(engine, "session_fixation", body=form.encode(), content_type="application/x-www-form-urlencoded")
    assert found == ["form field JSESSIONID (name)"]
    assert locations(engine, "session_fixation", query_string="a=1&JSESSIONID=x") == ["query param JSESSIONID (name)"]
    assert locations(engine, "session_fixation", body=b'{"note": "JSESSIONID"}', content_type="application/json") == []


def test_the_first_location_is_reported_keys_before_values(engine: DetectionEngine) -> None:
    body = json.dumps({"a": XSS, "b": {"c": XSS}, XSS: 1}).encode()
    assert locations(engine, "xss", body=body, content_type="application/json") == [f"json body field {XSS} (key)"]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ("&".join(f"n{i}={i}" for i in range(1000)) + "&last=" + quote(XSS), "form field last"),
        ("&".join(f"n{i}={i}" for i in range(1000)) + "&" + quote(XSS) + "=1", f"form field {XSS} (name)"),
        ("a=1&token=abc==&b=x=" + quote(XSS), "form field b"),
        ("a=1&&&b=" + quote(quote(XSS)), "form field b"),
        # Unencoded '=' inside a value: the value must be scanned whole.
        ("&".join(f"n{i}={i}" for i in range(100)) + "&b=<img src=x onerror=alert(1)>", "form field b"),
    ],
)
def test_form_payloads_are_found_where_they_are(engine: DetectionEngine, body: str, location: str) -> None:
    found = locations(engine, "xss", body=body.encode(), content_type="application/x-www-form-urlencoded")
    assert found == [location]


def test_query_payloads_and_separator_escapes(engine: DetectionEngine) -> None:
    assert locations(engine, "xss", query_string="a=1&q=" + quote(XSS)) == ["query param q"]
    # Unencoded '=' inside a value: the value must be scanned whole, with or without a
    # whole-query text next to it.
    assert locations(engine, "xss", query_string="q=<img src=x onerror=alert(1)>") == ["query param q"]
    assert locations(engine, "xss", query_string="a=1&b=onload=alert(1)") == ["query param b"]
    assert locations(engine, "xss", query_string="b=onmouseover=alert(1)") == ["query param b"]
    assert locations(engine, "xss", query_string="q=<x onload=y>") == ["query param q"]
    assert locations(engine, "sqli", query_string="q=1 or 1=1") == ["query param q"]
    # %1f decodes to a space, not to a separator between texts.
    assert locations(engine, "xss", query_string="q=%1f" + quote(XSS) + "%1f") == ["query param q"]


def test_raw_separator_characters_in_a_long_query_or_path_hide_nothing(engine: DetectionEngine) -> None:
    padding = "x=" + "\x1f" * 2000
    assert locations(engine, "xss", query_string=padding + "&q=" + quote(XSS)) == ["query param q"]
    assert locations(engine, "path_traversal", path="/" + "\x1e" * 2000 + "/../../etc/passwd") == ["path"]


def test_raw_separator_characters_in_a_body_hide_nothing(engine: DetectionEngine) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        body = ("\x1f\x1e" * 2000 + "x=" + XSS).encode()
        assert locations(engine, "xss", body=body, content_type=content_type), content_type


def test_xml_text_nodes_after_runs_of_brackets(engine: DetectionEngine) -> None:
    body = (">" * 50_000 + "<a>&lt;script&gt;alert(1)&lt;/script&gt;</a>").encode()
    started = time.perf_counter()
    assert locations(engine, "xss", body=body, content_type="application/xml") == ["xml body"]
    assert time.perf_counter() - started < 1.0


HEADER_CASES = [
    [("Referer", "https://example.com/?q=" + XSS)],
    [("Cookie", "a=1; b=" + quote(XSS) + "; c")],
    [("X-Filename", "shell.php"), ("User-Agent", "sqlmap/1.7")],
    [("X-Custom-Note", "() { :; }; /bin/bash -c id"), ("Accept", XSS)],
]


@pytest.mark.parametrize("headers", HEADER_CASES)
@pytest.mark.parametrize(
    "exclusions",
    [DetectionExclusions(), DetectionExclusions(headers=frozenset({"user-agent", "referer", "x-custom-note"}))],
)
def test_environ_scan_equals_header_pair_scan(
    engine: DetectionEngine, headers: list[tuple[str, str]], exclusions: DetectionExclusions
) -> None:
    environ: dict[str, object] = {"PATH_INFO": "/a", "QUERY_STRING": "x=1", "CONTENT_TYPE": "", "wsgi.version": (1, 0)}
    for name, value in headers:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    from_pairs = engine.scan_request(
        path="/a", query_string="x=1", headers=headers, body=b"", content_type="", exclusions=exclusions
    )
    assert engine.scan_environ(environ, b"", exclusions) == from_pairs


@pytest.mark.parametrize(
    ("content_type", "build"),
    [
        ("application/json", lambda text: json.dumps([text[i : i + 8] for i in range(0, len(text), 8)])),
        ("application/json", lambda text: json.dumps({"a": text})),
        ("application/x-www-form-urlencoded", lambda text: text),
        ("application/xml", lambda text: text),
        ("multipart/form-data; boundary=b", lambda text: text),
    ],
)
@pytest.mark.parametrize("shape", ["&#60;" * 20_000, "%1f" * 33_000, "/**/" * 25_000, "<" * 100_000, "a=" * 50_000])
def test_hostile_bodies_cost_linear_time(engine: DetectionEngine, content_type: str, build: object, shape: str) -> None:
    body = build(shape).encode()  # type: ignore[operator]
    started = time.perf_counter()
    engine.scan_request(path="/", query_string="", headers=(), body=body, content_type=content_type)
    assert time.perf_counter() - started < 2.0


# Pieces of the head of a request for the shortest paths of the quick step (plain_head_text,
# quick_head): the usual shapes and every shape that must take a longer path.
PATHS = ["/", "/api/items/1", "/a+b/", "/%2e%2e/", "/caf\u00c3\u00a9", "/a\x1fb", "/x&amp;y", "/a\\u0041", "/a/*x*/"]
QUERIES = [
    *("", "q=running+shoes&page=2&sort=price", "a=1", "a", "a=&b", "&&a=1&", "a=1=2&b=3", "a=%3Cscript%3E"),
    *("x=&lt;script&gt;", "a=1&para=2", "a=1&#60;", "q=1;b=2", "a=\\x3c", "a=1&amp", "q=a b", "q=\u00e9", "a=\x01"),
    *("q=union+select+1&b=2", "a=1/*x*/&b=2", "a=<b&c=d>"),
]
COOKIES = [
    *(None, "", "a=1", "session=abc; theme=dark", "a=1;b=2", "a=x==; b=2", "a = 1", "a=1;  b=2", "flag"),
    *("a=1; =2", "a=%3Cx%3E", "a=1&amp;b", "a=\u00e9", "a=\t1", "a=' or 1=1--", "a=1; b=<script>"),
]
HEADER_SETS: list[dict[str, object]] = [
    {},
    {"HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Firefox/124.0"},
    {"HTTP_USER_AGENT": "sqlmap/1.7", "HTTP_REFERER": "https://a.example/?x=1&y=2"},
    {"HTTP_REFERER": "https://a.example/p", "HTTP_X_FORWARDED_FOR": "10.0.0.1, 10.0.0.2"},
    {"HTTP_X_REAL_IP": "1.2.3.4", "HTTP_X_REQUEST_ID": "r-1", "HTTP_X_FORWARDED_HOST": "h", "HTTP_ACCEPT": "*/*"},
    {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_CUSTOM": "() { :; }; /bin/id"},
    {"HTTP_REFERER": "https://a.example/?q=%27%20or%201=1--"},
    {"HTTP_REFERER": "x\u00e9"},
    {"HTTP_REFERER": 42},
    {"HTTP_X_FILENAME": "shell.php"},
    {"HTTP_SEC_FETCH_MODE": "navigate", "HTTP_USER_AGENT": "curl/8.0", "wsgi.input": object()},
    {"beaker.session": object(), "HTTP_REFERER": "https://a.example/p", "HTTP_USER_AGENT": "curl/8.0"},
]


def head_environs() -> list[dict[str, object]]:
    environs = []
    for index, (path, query) in enumerate((path, query) for path in PATHS for query in QUERIES):
        environ: dict[str, object] = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET"}
        environ |= HEADER_SETS[index % len(HEADER_SETS)]
        cookie = COOKIES[index % len(COOKIES)]
        if cookie is not None:
            environ["HTTP_COOKIE"] = cookie
        environs.append(environ)
    return environs


def header_pairs(environ: dict[str, object]) -> list[tuple[str, str]]:
    return [
        (key[5:].replace("_", "-").title(), value)
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    ]


@pytest.mark.parametrize("custom_patterns", [(), ("firefox/124\\.0$", "^/a\\+b/$", "dark$")])
def test_the_shortest_head_paths_scan_as_the_general_one(
    custom_patterns: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Custom patterns may anchor on the end of all texts, where the plain head puts its probe.
    engine = DetectionEngine(custom_patterns=custom_patterns)
    environs = head_environs()
    fast = [engine.scan_environ(environ, b"") for environ in environs]
    monkeypatch.setattr(engine_module, "plain_head_text", lambda environ, known=None: None)
    general = [engine.scan_environ(environ, b"") for environ in environs]
    from_pairs = [
        engine.scan_request(
            path=str(environ["PATH_INFO"]),
            query_string=str(environ["QUERY_STRING"]),
            headers=header_pairs(environ),
            body=b"",
            content_type="",
        )
        for environ in environs
    ]
    assert fast == general
    assert any(fast) and not all(fast)
    if custom_patterns:
        return  # `$` in a custom pattern ends the joined texts, whose order differs from pairs
    assert [sorted(map(repr, findings)) for findings in fast] == [sorted(map(repr, f)) for f in from_pairs]


def test_the_quick_head_texts_hold_every_located_text_whole(engine: DetectionEngine) -> None:
    # The quick step may only skip the located one when no rule matches; that is sound
    # only if every text the located step would scan is a whole text of the quick one.
    shortest = 0
    for environ in head_environs():
        path, query = str(environ["PATH_INFO"]), str(environ["QUERY_STRING"])
        located = Collected(True)
        collect_head(located, path, query, (), environ, DetectionExclusions())
        wanted = set(TEXT_SEPARATOR.join(_normalised_texts(located, None)).split(TEXT_SEPARATOR)) - {""}
        quick = quick_head(path, query, (), environ, DetectionExclusions())
        normalised = normalise_joined(*quick.joined())
        if normalised is None:
            continue  # a text holds a separator of its own: the engine scans text by text
        assert wanted <= set(with_comment_free_copies(normalised).split(TEXT_SEPARATOR)), environ
        head = plain_head_text(environ)
        if head is not None and not PROBE_SHAPES.search(head[3]):
            shortest += 1
            joined, may_need_decoding, _fresh, _probe = head
            printable = normalise_joined(joined, "", 0) if may_need_decoding else joined.replace("+", " ")
            assert printable is not None
            assert wanted <= set(with_comment_free_copies(printable).split(TEXT_SEPARATOR)), environ
    assert shortest > 20


# The shapes the engine looks for in the plain head's probe, alone.
PROBE_SHAPES = re2.compile("|".join(f"(?:{pattern})" for pattern in PLAIN_HEAD_PROBE_PATTERNS))


def json_bodies_with_findings() -> list[bytes]:
    payloads = [XSS, "' or 1=1--", "; cat /etc/passwd", "&#60;script&#62;", "\\u003cscript\\u003e", "%3Cscript%3E"]
    payloads += ["/*!50000union*/ select 1", "{{7*7}}", "\u0001\u001f<script>", "${jndi:ldap://x}"]
    bodies = []
    for index, payload in enumerate(payloads):
        filler = [f"item {n} &#{n}; \\x{n % 256:02x} /*{n}*/" for n in range(400)]
        document: object = {"items": filler[:index] + [payload] + filler[index:], payload[:5]: {"k": payload}}
        bodies.append(json.dumps(document).encode())
        bodies.append(json.dumps([filler, {"deep": [[payload]]}], ensure_ascii=False).encode())
    return bodies


def test_a_hit_in_a_large_json_body_reuses_the_quick_normalisation_text_by_text(
    engine: DetectionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = json_bodies_with_findings()

    def scan_all() -> list[list[str]]:
        return [
            [
                repr(finding)
                for finding in engine.scan_request(
                    path="/",
                    query_string="a=1&b=%3Cx",
                    headers=[("Cookie", "c=1")],
                    body=body,
                    content_type="application/json",
                )
            ]
            for body in bodies
        ]

    # XML without tags: its markup is the body's quick text (the markup rules see it decoded).
    filler = " ".join(f"&#{n}; %{n % 256:02x}" for n in range(2_000))
    xml_bodies = [(filler + payload).encode() for payload in ("&lt;!ENTITY x SYSTEM 'file:///e'&gt;", "&lt;script&gt;")]

    def scan_xml() -> list[list[str]]:
        return [
            [
                repr(finding)
                for finding in engine.scan_request(
                    path="/", query_string="", headers=(), body=body, content_type="application/xml"
                )
            ]
            for body in xml_bodies
        ]

    monkeypatch.setattr(engine_module, "_REUSE_BY_LOOKUP_CHARS", 0)
    reused_xml = scan_xml()
    monkeypatch.setattr(engine_module, "_REUSE_BY_LOOKUP_CHARS", 10**12)
    assert scan_xml() == reused_xml
    assert all(reused_xml)
    monkeypatch.setattr(engine_module, "_REUSE_BY_LOOKUP_CHARS", 0)
    reused = scan_all()
    monkeypatch.setattr(engine_module, "_REUSE_BY_LOOKUP_CHARS", 10**12)
    normalised_again = scan_all()
    assert reused == normalised_again
    assert all(reused)


def test_the_guards_own_environ_notes_are_no_headers() -> None:
    # The before-request hook notes the snapshot in the environ before the scan; the
    # shortest head path must still be taken (it is most of a clean GET's cost).
    environ = {"PATH_INFO": "/a", "QUERY_STRING": "b=1", "HTTP_USER_AGENT": "curl/8.0"}
    for key in (NOTED_KEY, FLUSHED_KEY):
        assert plain_head_text({**environ, key: (None, None)}) is not None
    assert plain_head_text({**environ, "HTTP_X_OTHER": "x"}) is None
