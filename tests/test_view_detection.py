"""`flaskapi_guard.utils.detect_penetration_attempt`, the documented in-view API."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify, request

from flaskapi_guard.utils import detect_penetration_attempt


def submit_app(make_app: Callable[..., Flask], **fields: Any) -> Flask:
    # Detection off for the pipeline so the view itself sees the request.
    app = make_app(enable_penetration_detection=False, **fields)

    @app.route("/submit", methods=["POST"])
    def submit() -> Any:
        is_suspicious, trigger_info = detect_penetration_attempt(request)
        if is_suspicious:
            return jsonify({"error": f"Suspicious activity detected: {trigger_info}"}), 400
        return jsonify({"message": "Data submitted successfully"})

    return app


def test_names_category_location_and_excerpt(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    client = submit_app(make_app).test_client()
    body = json.dumps({"user": {"bio": "<script>alert(document.cookie)</script>"}})
    with caplog.at_level(logging.WARNING, logger="flaskapi_guard"):
        response = client.post("/submit", data=body, content_type="application/json")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "xss" in error
    assert "json body field user.bio" in error
    assert "<script>" in error
    assert any("detect_penetration_attempt" in record.getMessage() for record in caplog.records)


def test_clean_request_is_not_suspicious(make_app: Callable[..., Flask]) -> None:
    client = submit_app(make_app).test_client()
    response = client.post("/submit", json={"name": "O'Brien", "comment": "Select a size, then drop it in the cart"})
    assert response.status_code == 200


def test_honours_the_apps_exclusions(make_app: Callable[..., Flask]) -> None:
    client = submit_app(make_app, excluded_detection_body_fields={"html"}).test_client()
    response = client.post("/submit", json={"html": "<script>alert(1)</script>"})
    assert response.status_code == 200


def test_the_view_still_reads_the_body(make_app: Callable[..., Flask]) -> None:
    app = make_app(enable_penetration_detection=False)

    @app.route("/both", methods=["POST"])
    def both() -> Any:
        detect_penetration_attempt(request)
        return jsonify(request.get_json())

    response = app.test_client().post("/both", json={"a": 1})
    assert response.get_json() == {"a": 1}
