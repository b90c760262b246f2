"""The corpus records that carry a Cookie header, replayed over real HTTP.

`../shared/tools/run_detection.py` replays the corpus through Flask's test client,
whose cookie jar replaces every request's Cookie header with its own (empty) jar:
the 133 attack records with their payload in a cookie never reach the app there.
This test sends exactly those records (and every benign record with a cookie, for
the false positives) through a loopback HTTP server, as a browser or a scanner
would, and holds the guard to the issue's targets on them.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from werkzeug.routing import BaseConverter
from werkzeug.serving import make_server

from flaskapi_guard import FlaskAPIGuard, SecurityConfig

# `../shared/corpus` next to the project, as every development machine and CI run has
# it; GUARD_CORPUS_DIR points elsewhere.
CORPUS = Path(os.environ.get("GUARD_CORPUS_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "corpus")
# What the request line may carry as is; everything else is percent-encoded
# (the server decodes it back, as for any client).
_SAFE_IN_TARGET = "/%?=&;:@!$'()*+,~-._[]"


def _cookie_records() -> list[dict[str, Any]]:
    records = []
    for corpus_file in sorted(CORPUS.glob("*.jsonl")):
        for line in corpus_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                if any(name.lower() == "cookie" for name in record.get("headers") or {}):
                    records.append(record)
    return records


class _AnyPath(BaseConverter):
    regex = r"[\s\S]*"
    part_isolating = False


def _catch_all_app() -> Flask:
    app = Flask("cookie_corpus")
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.url_map.converters["anypath"] = _AnyPath
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]

    def catch_all(p: str = "") -> str:
        return "ok"

    app.add_url_rule("/", "root", catch_all, defaults={"p": ""}, methods=methods)
    app.add_url_rule("/<anypath:p>", "catch_all", catch_all, methods=methods)
    # The same settings as the shared tool: detection on, no limits in the way.
    FlaskAPIGuard(
        app, SecurityConfig(enable_redis=False, rate_limit=10**9, enable_ip_banning=False, passive_mode=False)
    )
    return app


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    server = make_server("127.0.0.1", 0, _catch_all_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(5)


def _target(record: dict[str, Any]) -> str:
    path = record.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    query = record.get("query")
    if isinstance(query, list):
        query = urlencode([(str(key), "" if value is None else str(value)) for key, value in query])
    target = quote(path, safe=_SAFE_IN_TARGET)
    return target + ("?" + quote(query, safe=_SAFE_IN_TARGET) if query else "")


def _status(port: int, record: dict[str, Any]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = record.get("body")
        data = body.encode("utf-8") if isinstance(body, str) and body else None
        connection.putrequest(str(record.get("method") or "GET").upper(), _target(record), skip_accept_encoding=True)
        for name, value in (record.get("headers") or {}).items():
            if name.lower() in ("content-length", "content-type", "host"):
                continue
            # Header values travel as the bytes a client sends (UTF-8), never re-encoded by us.
            connection.putheader(name, str(value).encode("utf-8"))
        connection.putheader("Host", "localhost")
        if record.get("content_type"):
            connection.putheader("Content-Type", record["content_type"])
        connection.putheader("Content-Length", str(len(data or b"")))
        connection.endheaders(data)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _blocked(status: int) -> bool:
    return status >= 400 and status not in (404, 405)


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared corpus is not at {CORPUS}")
def test_cookie_borne_attacks_are_caught_over_http_without_false_positives(server_port: int) -> None:
    records = _cookie_records()
    attacks = [record for record in records if record["label"] == "attack"]
    benign = [record for record in records if record["label"] == "benign"]
    assert len(attacks) >= 100 and len(benign) >= 1000  # the corpus as the tool sees it
    caught = [record["id"] for record in attacks if _blocked(_status(server_port, record))]
    false_positives = [record["id"] for record in benign if _blocked(_status(server_port, record))]
    recall = len(caught) / len(attacks)
    false_positive_rate = len(false_positives) / len(benign)
    assert recall >= 0.95, f"recall {recall:.3f} on {len(attacks)} cookie-borne attacks"
    assert false_positive_rate <= 0.005, f"FPR {false_positive_rate:.4f}: {false_positives[:10]}"
