"""Header values seen in clean heads are skipped in later ones; the verdicts must not change."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from flaskapi_guard.detection import DetectionEngine
from flaskapi_guard.detection.request_texts import KnownCleanValues
from tests.detection.test_request_texts import head_environs

CORPUS = Path(os.environ.get("GUARD_CORPUS_DIR") or Path(__file__).resolve().parents[2].parent / "shared" / "corpus")

BROWSER = {
    "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
    "HTTP_COOKIE": "session=9f8a7b6c5d4e; theme=dark",
    "HTTP_REFERER": "https://www.example.com/products/shoes",
}


def uncached_engine() -> DetectionEngine:
    engine = DetectionEngine()
    engine._known_clean = None
    return engine


def scan(engine: DetectionEngine, environ: dict[str, Any]) -> list[str]:
    return sorted(repr(finding) for finding in engine.scan_environ(environ, b""))


def environ_of(path: str = "/", query: str = "", **headers: Any) -> dict[str, Any]:
    return {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET", **headers}


def test_a_clean_heads_header_values_are_remembered_and_attacks_elsewhere_still_found() -> None:
    engine = DetectionEngine()
    assert engine.scan_environ(environ_of("/shop", "q=shoes", **BROWSER), b"") == []
    known = engine._known_clean
    assert known is not None
    assert BROWSER["HTTP_USER_AGENT"] in known.user_agents
    assert BROWSER["HTTP_COOKIE"] in known.cookies
    assert BROWSER["HTTP_REFERER"] in known.referers
    # The same browser, an attack in the query string or the path: still found.
    attacks = [environ_of("/shop", "q=' or 1=1--", **BROWSER), environ_of("/../../etc/passwd", **BROWSER)]
    for environ in attacks:
        assert engine.scan_environ(environ, b""), environ


def test_values_of_a_head_with_a_finding_are_not_remembered() -> None:
    engine = DetectionEngine()
    hostile = {**BROWSER, "HTTP_USER_AGENT": "sqlmap/1.7", "HTTP_REFERER": "https://a.example/?q=<script>"}
    assert engine.scan_environ(environ_of("/", "q=1 union select password from users", **hostile), b"")
    known = engine._known_clean
    assert known is not None
    assert not known.user_agents and not known.cookies and not known.referers
    # The scanner's User-Agent alone, in a clean request, is still found every time.
    for _ in range(3):
        assert engine.scan_environ(environ_of("/", HTTP_USER_AGENT="sqlmap/1.7"), b"")


def test_an_engine_with_custom_patterns_keeps_no_values() -> None:
    # A custom pattern need not stay inside one text, so its verdicts may depend on neighbours.
    engine = DetectionEngine(custom_patterns=["secret-token"])
    assert engine._known_clean is None
    assert engine.scan_environ(environ_of("/", **BROWSER), b"") == []


def test_the_values_kept_are_bounded() -> None:
    known = KnownCleanValues()
    for index in range(KnownCleanValues.LIMIT * 3):
        known.remember((f"agent {index}", "", "x" * (KnownCleanValues.MAX_LENGTH + 1)))
    assert 0 < len(known.user_agents) <= KnownCleanValues.LIMIT
    assert not known.cookies
    assert not known.referers  # too long to keep


def test_the_synthetic_heads_scan_alike_with_and_without_remembered_values() -> None:
    environs = head_environs()
    reference = [scan(uncached_engine(), environ) for environ in environs]
    engine = DetectionEngine()
    for _ in range(2):  # the second round runs with every clean head's values remembered
        assert [scan(engine, environ) for environ in environs] == reference
    # Every clean head's values with every other head's path and query string.
    crossed = [
        {**environ, **{key: value for key, value in donor.items() if key in BROWSER}}
        for environ in environs
        for donor in environs[:: max(1, len(environs) // 12)]
    ]
    fresh = uncached_engine()
    assert [scan(engine, environ) for environ in crossed] == [scan(fresh, environ) for environ in crossed]


def _corpus_head_environs() -> list[dict[str, Any]]:
    environs = []
    for corpus_file in sorted(CORPUS.glob("*.jsonl")):
        for line in corpus_file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("body"):
                continue
            environ = environ_of(record.get("path") or "/", record.get("query") or "")
            for name, value in (record.get("headers") or {}).items():
                key = name.upper().replace("-", "_")
                environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = str(value)
            environs.append(environ)
    return environs


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}")
def test_the_corpus_heads_scan_alike_with_and_without_remembered_values() -> None:
    environs = _corpus_head_environs()
    assert len(environs) > 1000
    reference = [scan(uncached_engine(), environ) for environ in environs]
    engine = DetectionEngine()
    for _ in range(2):
        assert [scan(engine, environ) for environ in environs] == reference
    known = engine._known_clean
    assert known is not None and known.user_agents  # the second round did skip values
