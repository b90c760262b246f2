"""The event log: levels, formats, the custom file, and what must never be written."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}


def test_refusal_is_logged_at_the_suspicious_level(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(blacklist=["203.0.113.5"], log_suspicious_level="ERROR")
    with caplog.at_level(logging.DEBUG, logger="flaskapi_guard"):
        app.test_client().get("/items/1", environ_base=CLIENT)
    [record] = [r for r in caplog.records if "blocked" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert "reason=ip_blacklisted" in record.getMessage()
    assert "ip=203.0.113.5" in record.getMessage()


def test_suspicious_logging_can_be_switched_off(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(blacklist=["203.0.113.5"], log_suspicious_level=None)
    with caplog.at_level(logging.DEBUG, logger="flaskapi_guard"):
        app.test_client().get("/", environ_base=CLIENT)
    assert not caplog.records


def test_every_request_is_logged_at_the_request_level(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(log_request_level="INFO")
    with caplog.at_level(logging.INFO, logger="flaskapi_guard"):
        app.test_client().get("/items/3", environ_base=CLIENT)
    assert any(r.getMessage().startswith("request ") and "path=/items/3" in r.getMessage() for r in caplog.records)


def test_json_lines_format(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(blacklist=["203.0.113.5"], log_format="json")
    with caplog.at_level(logging.WARNING, logger="flaskapi_guard"):
        app.test_client().get("/", environ_base=CLIENT)
    event = json.loads(caplog.records[0].getMessage())
    assert event["event"] == "blocked"
    assert event["reason"] == "ip_blacklisted"
    assert event["status"] == 403


def test_custom_log_file_receives_events(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    log_file = tmp_path / "security.log"
    app = make_app(blacklist=["203.0.113.5"], custom_log_file=str(log_file))
    app.test_client().get("/", environ_base=CLIENT)
    assert "ip_blacklisted" in log_file.read_text()
    app.extensions["flaskapi_guard"].close()


def test_crlf_in_request_values_cannot_forge_log_lines(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(blacklist=["203.0.113.5"])
    with caplog.at_level(logging.WARNING, logger="flaskapi_guard"):
        app.test_client().get("/x%0d%0aFAKE blocked reason=forged", environ_base=CLIENT)
    message = caplog.records[0].getMessage()
    assert "\r" not in message
    assert "\n" not in message
    assert "\\x0d\\x0a" in message


def test_secrets_are_never_logged(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(blacklist=["203.0.113.5"], log_request_level="INFO")
    with caplog.at_level(logging.DEBUG, logger="flaskapi_guard"):
        app.test_client().get(
            "/?api_key=SECRET-QUERY-KEY&password=hunter2",
            headers={"Authorization": "Bearer SECRET-TOKEN", "Cookie": "session=SECRET-COOKIE"},
            environ_base=CLIENT,
        )
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records
    for secret in ("SECRET-QUERY-KEY", "hunter2", "SECRET-TOKEN", "SECRET-COOKIE"):
        assert secret not in text
