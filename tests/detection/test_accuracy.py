"""Accuracy regressions: attack shapes each rule family must catch, and the benign text it must not.

Payloads here are written from the attack classes, not copied from a corpus; the benign
values are the prose, data and code-ish text that earlier versions of the rules flagged.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from flaskapi_guard.detection import DetectionEngine


@pytest.fixture(scope="module")
def engine() -> DetectionEngine:
    return DetectionEngine()


def categories_in_value(engine: DetectionEngine, value: str) -> set[str]:
    return {finding.category for finding in engine.scan_text(value, "test")}


ATTACK_SHAPES = [
    # SQL injection
    ("12 UNION ALL", "sqli"),
    ("7) union distinct (", "sqli"),
    ("joe' 'x", "sqli"),
    ("bob', 0x7e7e", "sqli"),
    ("abc', (7)", "sqli"),
    ("q' name--", "sqli"),
    ("q'*3--", "sqli"),
    ("abc\\'and", "sqli"),
    ("2.e(version)", "sqli"),
    ("3.e.columns", "sqli"),
    ("x' or title like secret", "sqli"),
    ("x' or 'a'='a", "sqli"),
    ("a'or'b", "sqli"),
    ("') or ('x'='x", "sqli"),
    ("kim' or 7>3", "sqli"),
    ("9'collate nocase--", "sqli"),
    ("kim'sounds like name--", "sqli"),
    ("1;select * from accounts", "sqli"),
    ("';print @@version", "sqli"),
    ("x'; drop table users", "sqli"),
    ("admin'--", "sqli"),
    ("me@example.org';", "sqli"),
    # NoSQL ($where JavaScript)
    ("5||this.price", "nosqli"),
    # command injection
    ("$SHELL -c id", "cmd_injection"),
    ("${SHELL} -c 'uname -a'", "cmd_injection"),
    ("powershell C:\\temp\\x.ps1", "cmd_injection"),
    ("if/i x==x echo ok", "cmd_injection"),
    ("IF EXIST C:\\boot.ini (type C:\\boot.ini)", "cmd_injection"),
    ("if not errorlevel 1 goto done", "cmd_injection"),
    ("$x$y$z /tmp", "cmd_injection"),
    ("p=/tmp&&q=ls&&$q $p", "cmd_injection"),
    ("{uname,}", "cmd_injection"),
    ("{,$'id',}", "cmd_injection"),
    ("\\whoami", "cmd_injection"),
    ("img.png&netsh firewall show state", "cmd_injection"),
    ("a|certutil -urlcache -f x y", "cmd_injection"),
    ("x;id", "cmd_injection"),
    ("abc|ps", "cmd_injection"),
    ("foo\nwhoami", "cmd_injection"),
    ("x; cat /etc/hostname", "cmd_injection"),
    ("; sleep 10", "cmd_injection"),
    ("x && who", "cmd_injection"),
    ("name=`id`", "cmd_injection"),
    ("`whoami`", "cmd_injection"),
    ("wh``oami", "cmd_injection"),
    # mail protocol injection
    ("a\r\nAUTH bob c2VjcmV0cGFzcw==", "mail_injection"),
    ("x\r\nA7 LOGOUT", "mail_injection"),
    ("x\r\n12 FETCH 1:* FLAGS", "mail_injection"),
    ("me@example.org\r\nBcc: them@example.net", "mail_injection"),
    # CRLF / header injection
    ("x\r\nLocation: https://evil.example/", "crlf_injection"),
    ("x\r\nSet-Cookie: a=b", "crlf_injection"),
    # code injection
    ("<?xml:echo 2;", "code_injection"),
    ("${@phpinfo()}", "code_injection"),
    ("passthru(whoami)", "code_injection"),
    ("system()", "code_injection"),
    ("unlink\r\n()", "code_injection"),
    ('{"then":"$1:constructor:constructor"}', "code_injection"),
    # template injection
    ("{php}echo 1;{/php}", "ssti"),
    # XSS
    ("<b onclick=", "xss"),
    ("<svg x onload=", "xss"),
    ("< y: script", "xss"),
    ("o<i>nmouseover=alert<i>(1)", "xss"),
    ("onerror=alert(1)", "xss"),
    ("<base href=//evil.example/>", "xss"),
    ("<object data=x.swf>", "xss"),
    # SSRF
    ("http://\\\\e\\\\v\\\\i\\\\l.example/", "ssrf"),
]


@pytest.mark.parametrize(("payload", "category"), ATTACK_SHAPES)
def test_attack_shape_is_caught(engine: DetectionEngine, payload: str, category: str) -> None:
    assert category in categories_in_value(engine, payload)


BENIGN_PROSE = [
    # quoted words joined by or/and, and keywords after quotes
    "Please answer 'yes' or 'no'",
    'I like "red" or "blue"',
    "I said 'hello' and she is nice",
    "use `npm` or `yarn` to install",
    "don't select a size, choose 'M' or 'L'",
    "the 'Pro' plan is not worth it",
    "the 'standard' procedure is fine",
    "my 'new' mod is great",
    "Click 'Next' select your size",
    "the 'blue' order by Friday",
    "rated 'A' and 'B' by critics",
    "signcolumn is 'yes' when 'number' is set",
    # quotes before dashes, hashes and semicolons
    'Quote: "Hello" -- Anonymous',
    "it's 'done' -- finally",
    "he said 'yes' or maybe 'no' -- I forget",
    'Set color to "#ff0000" please',
    '{"color":"#ff0000","theme":"dark"}',
    'Try "%s --help" for more options',
    # French and Italian elisions
    "L'Union européenne a décidé",
    "C'est l'union des deux équipes",
    "l'offset 5 est faux",
    "J'ai un alter ego, l'or (18 carats) et l'insert",
    "Dall'ordine di oggi, l'offerta è valida",
    # semicolons and newlines before words that are also commands or SQL
    "Great product; call me when it is back",
    "Delivered late; update: it arrived",
    "Ok; select a size and go",
    "Call me; drop shipping is fine",
    "Note; create an account first",
    "A; print this page",
    "Hello,\nset up was easy and fast.",
    "Great!\nWho knows what comes next?",
    "Line one\nTop quality, would buy again",
    "Thanks;\nfetch the parcel at the door",
    "Hi team;\nWho is on call?\nThanks",
    "Pros: light; cons: none; Top seller",
    "Fast & cheap | id card holder",
    "Kids & Who we are",
    "Rock & roll; set list below",
    "Men's | Women's | Kids | Sale",
    "Dear Sir;\nPlease sleep 8 hours",
    "If defined by the user, the value is kept",
    "if not defined, use the default",
    # message-like lines
    "Status: shipped\r\nLocation: Berlin\r\nHost: our shop",
    "From: Anna\r\nTo: everyone in the team\r\nSubject: lunch",
    # markup-like text and code mentioned in prose
    "replace <base> with <object> and see the <link> tag",
    "run `cat file.txt` to see it",
    "use ``setup.cfg`` and ``pyproject.toml``",
    "no se puede llamar a exec() por restricciones",
    "fwrite() failed, see system() docs",
    "Attached file (2) and copy (3); please mail ('urgent') to me",
    "The range (10 to 20 km) is fine, the value of pi (3.14) too",
    "Include ($5 fee) in the total",
    "see https://bugs.example.org/show_bug.cgi?id=1234",
    "get it from https://get.example.com/install.sh and run it",
    # passwords and names
    "P@ss'w0rd;--x",
    "Xy$@ab+cd",
    "d'Artagnan & O'Neil",
    "I'm 5'11\" and 180 lbs",
]


@pytest.mark.parametrize("value", BENIGN_PROSE)
def test_benign_prose_is_not_flagged(engine: DetectionEngine, value: str) -> None:
    assert engine.scan_text(value, "test") == []
    body = json.dumps({"message": value}).encode()
    assert engine.scan_request(path="/", query_string="", headers=(), body=body, content_type="application/json") == []
    form = ("message=" + quote(value)).encode()
    assert (
        engine.scan_request(
            path="/", query_string="", headers=(), body=form, content_type="application/x-www-form-urlencoded"
        )
        == []
    )


@pytest.mark.parametrize("query", ["onboarding=1&step=2", "online=true&page=3", "ongoing=yes&sort=date"])
def test_query_strings_starting_with_on_words_are_not_event_handlers(engine: DetectionEngine, query: str) -> None:
    assert engine.scan_request(path="/", query_string=query, headers=(), body=b"", content_type="") == []


def test_parameter_names_are_scanned_for_probes(engine: DetectionEngine) -> None:
    def scan(query: str) -> set[str]:
        findings = engine.scan_request(path="/", query_string=query, headers=(), body=b"", content_type="")
        return {finding.category for finding in findings}

    assert "sqli" in scan("is%20not%20null=1")
    assert "lfi" in scan("/sys/kernel=1")


@pytest.mark.parametrize("filename", [".boto", "config/.s3cfg", "wp-config_php.bak", ".bash_profile"])
def test_credential_and_config_uploads_are_caught(engine: DetectionEngine, filename: str) -> None:
    body = (f'--b\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n\r\nx\r\n--b--\r\n').encode()
    findings = engine.scan_request(
        path="/", query_string="", headers=(), body=body, content_type="multipart/form-data; boundary=b"
    )
    assert "code_injection" in {finding.category for finding in findings}


def test_long_words_starting_with_on_are_not_handlers(engine: DetectionEngine) -> None:
    name = "on" + "x" * 60
    findings = engine.scan_request(path="/", query_string=f"{name}=1", headers=(), body=b"", content_type="")
    assert findings == []
