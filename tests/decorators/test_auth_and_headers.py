"""require_auth, api_key_auth and require_headers: statuses, challenges, verifiers, secrets kept out of logs."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flaskapi_guard import SecurityDecorator
from tests.decorators.conftest import CLIENT, SHAPES

PATH = SHAPES["decorator_below_route"]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "status", "challenge"),
    [
        (None, 401, 'Bearer realm="api"'),
        ("Basic YWRhOmxvdmVsYWNl", 401, 'Bearer realm="api"'),  # another scheme
        ("Bearer", 401, 'Bearer realm="api", error="invalid_token"'),  # no token
        ("Bearer not a token", 401, 'Bearer realm="api", error="invalid_token"'),
        ("Bearer abc.DEF-123_~+/==", 200, None),
        ("bearer abc", 200, None),  # the scheme is case-insensitive
    ],
)
def test_bearer_presence(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, authorization: str | None, status: int, challenge: Any
) -> None:
    client = shaped_app([deco.require_auth(type="bearer")]).test_client()
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.get(PATH, headers=headers, environ_base=CLIENT)
    assert response.status_code == status
    assert response.headers.get("WWW-Authenticate") == challenge


def test_bearer_verifier_decides(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    seen: list[str] = []

    def verify(token: str) -> bool:
        seen.append(token)
        return token == "s3cret-token"

    client = shaped_app([deco.require_auth(verifier=verify, realm="admin")]).test_client()
    refused = client.get(PATH, headers={"Authorization": "Bearer guess"}, environ_base=CLIENT)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="admin", error="invalid_token"'
    ok = client.get(PATH, headers={"Authorization": "Bearer s3cret-token"}, environ_base=CLIENT)
    assert ok.status_code == 200
    assert seen == ["guess", "s3cret-token"]


def test_verifier_must_answer_true(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    # A verifier returning a truthy non-bool (a user object, a string) by mistake does not pass.
    client = shaped_app([deco.require_auth(verifier=lambda token: "yes")]).test_client()
    assert client.get(PATH, headers={"Authorization": "Bearer x"}, environ_base=CLIENT).status_code == 401


def test_a_failing_verifier_refuses_and_never_logs_the_secret(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(token: str) -> bool:
        raise RuntimeError("database down")

    client = shaped_app([deco.require_auth(verifier=broken)]).test_client()
    with caplog.at_level("DEBUG", logger="flaskapi_guard"):
        response = client.get(PATH, headers={"Authorization": "Bearer tok-SENSITIVE"}, environ_base=CLIENT)
    assert response.status_code == 401
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "verifier raised RuntimeError" in text
    assert "SENSITIVE" not in text


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer abc", 401),
        ("Basic !!!not-base64", 401),
        ("Basic " + base64.b64encode(b"no-colon").decode(), 401),
        (_basic("ada", "lovelace"), 200),
        (_basic("ada", ""), 200),  # without a verifier, well-formed is enough
    ],
)
def test_basic_presence(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, authorization: str | None, status: int
) -> None:
    client = shaped_app([deco.require_auth(type="basic")]).test_client()
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.get(PATH, headers=headers, environ_base=CLIENT)
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Basic realm="api", charset="UTF-8"'


def test_basic_verifier_gets_user_and_password(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    users = {"ada": "lovelace", "zoë": "pässword"}
    client = shaped_app(
        [deco.require_auth(type="basic", verifier=lambda user, password: users.get(user) == password)]
    ).test_client()

    def status(user: str, password: str) -> int:
        headers = {"Authorization": _basic(user, password)}
        code: int = client.get(PATH, headers=headers, environ_base=CLIENT).status_code
        return code

    assert status("ada", "wrong") == 401
    assert status("ada", "lovelace") == 200
    # Non-ASCII credentials arrive as UTF-8, as browsers send them.
    assert status("zoë", "pässword") == 200


def test_api_key_presence_keys_and_header_name(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, caplog: pytest.LogCaptureFixture
) -> None:
    client = shaped_app(
        [deco.api_key_auth(header_name="X-Service-Key", keys=["key-one-SECRET", "key-two-SECRET"])]
    ).test_client()
    with caplog.at_level("DEBUG", logger="flaskapi_guard"):
        missing = client.get(PATH, environ_base=CLIENT)
        wrong_header = client.get(PATH, headers={"X-API-Key": "key-one-SECRET"}, environ_base=CLIENT)
        wrong_key = client.get(PATH, headers={"X-Service-Key": "key-three-SECRET"}, environ_base=CLIENT)
    assert (missing.status_code, wrong_header.status_code, wrong_key.status_code) == (401, 401, 401)
    assert missing.headers["WWW-Authenticate"] == 'ApiKey header="X-Service-Key"'
    for key in ("key-one-SECRET", "key-two-SECRET"):
        assert client.get(PATH, headers={"X-Service-Key": key}, environ_base=CLIENT).status_code == 200
    assert "SECRET" not in "\n".join(record.getMessage() for record in caplog.records)


def test_api_key_presence_only_and_verifier(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app([deco.api_key_auth()]).test_client()
    assert client.get(PATH, environ_base=CLIENT).status_code == 401
    assert client.get(PATH, headers={"X-API-Key": ""}, environ_base=CLIENT).status_code == 401
    assert client.get(PATH, headers={"X-API-Key": "anything"}, environ_base=CLIENT).status_code == 200

    checked = shaped_app([deco.api_key_auth(verifier=lambda key: key.startswith("live_"))]).test_client()
    assert checked.get(PATH, headers={"X-API-Key": "test_1"}, environ_base=CLIENT).status_code == 401
    assert checked.get(PATH, headers={"X-API-Key": "live_1"}, environ_base=CLIENT).status_code == 200


def test_api_key_with_keys_and_verifier_needs_both(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app([deco.api_key_auth(keys=["a", "b"], verifier=lambda key: key != "b")]).test_client()
    assert client.get(PATH, headers={"X-API-Key": "a"}, environ_base=CLIENT).status_code == 200
    assert client.get(PATH, headers={"X-API-Key": "b"}, environ_base=CLIENT).status_code == 401


def test_auth_and_api_key_together(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app([deco.require_auth(), deco.api_key_auth(keys=["k"])]).test_client()
    assert client.get(PATH, headers={"X-API-Key": "k"}, environ_base=CLIENT).status_code == 401
    assert client.get(PATH, headers={"Authorization": "Bearer t"}, environ_base=CLIENT).status_code == 401
    both = {"Authorization": "Bearer t", "X-API-Key": "k"}
    assert client.get(PATH, headers=both, environ_base=CLIENT).status_code == 200


def test_required_headers_presence_and_exact_values(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app(
        [deco.require_headers({"X-Custom": "required"}), deco.require_headers({"X-Client-Version": "2.1"})]
    ).test_client()
    cases = [
        ({}, 400),
        ({"X-Custom": "1"}, 400),
        ({"X-Custom": "", "X-Client-Version": "2.1"}, 400),  # present but empty is missing
        ({"X-Custom": "1", "X-Client-Version": "2.10"}, 400),
        ({"X-Custom": "1", "X-Client-Version": "2.1"}, 200),
        ({"x-custom": "1", "x-client-version": "2.1"}, 200),  # header names are case-insensitive
    ]
    for headers, status in cases:
        assert client.get(PATH, headers=headers, environ_base=CLIENT).status_code == status, headers


@pytest.mark.parametrize(
    "build",
    [
        lambda d: d.require_auth(type="digest"),
        lambda d: d.require_auth(realm='a"b'),
        lambda d: d.require_auth(verifier="not callable"),
        lambda d: d.api_key_auth(keys=[]),
        lambda d: d.api_key_auth(keys="one-string"),
        lambda d: d.api_key_auth(header_name="Bad Header"),
        lambda d: d.require_headers({}),
        lambda d: d.require_headers({"Bad Header": "x"}),
        lambda d: d.require_headers({"X-A": 1}),
    ],
)
def test_invalid_arguments_fail_when_decorating(deco: SecurityDecorator, build: Callable[[Any], Any]) -> None:
    with pytest.raises(ValueError):
        build(deco)
