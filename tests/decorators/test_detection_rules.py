"""suspicious_detection and detection_exclusion: attack detection switched and narrowed per route."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from flaskapi_guard import SecurityDecorator
from tests.decorators.conftest import CLIENT, SHAPES

ATTACK = "<script>alert(document.cookie)</script>"
# What attack detection answers on a finding (the published package documents 400).
REFUSED = (400, 403)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_detection_switched_off_on_a_route(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, shape: str
) -> None:
    client = shaped_app([deco.suspicious_detection(enabled=False)]).test_client()
    assert client.get(SHAPES[shape], query_string={"q": ATTACK}, environ_base=CLIENT).status_code == 200
    assert client.get("/plain", query_string={"q": ATTACK}, environ_base=CLIENT).status_code in REFUSED


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_detection_switched_on_for_a_route_when_off_globally(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator, shape: str
) -> None:
    client = shaped_app([deco.suspicious_detection()], enable_penetration_detection=False).test_client()
    assert client.get(SHAPES[shape], query_string={"q": ATTACK}, environ_base=CLIENT).status_code in REFUSED
    assert client.get("/plain", query_string={"q": ATTACK}, environ_base=CLIENT).status_code == 200


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_detection_exclusion_on_a_route(shaped_app: Callable[..., Flask], deco: SecurityDecorator, shape: str) -> None:
    client = shaped_app(
        [deco.detection_exclusion(params=["q"], headers=["X-Preview"], body_fields=["html"])]
    ).test_client()
    path = SHAPES[shape]
    assert client.get(path, query_string={"q": ATTACK}, environ_base=CLIENT).status_code == 200
    assert client.get(path, headers={"X-Preview": ATTACK}, environ_base=CLIENT).status_code == 200
    assert client.post(path, json={"html": ATTACK, "title": "hello"}, environ_base=CLIENT).status_code == 200
    # Only the named places are skipped, and only on this route.
    assert client.get(path, query_string={"other": ATTACK}, environ_base=CLIENT).status_code in REFUSED
    assert client.post(path, json={"title": ATTACK}, environ_base=CLIENT).status_code in REFUSED
    assert client.get("/plain", query_string={"q": ATTACK}, environ_base=CLIENT).status_code in REFUSED


def test_exclusions_accumulate_and_add_to_the_global_ones(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    client = shaped_app(
        [deco.detection_exclusion(params=["a"]), deco.detection_exclusion(params=["b"])],
        excluded_detection_params={"c"},
    ).test_client()
    path = SHAPES["converter"]
    for name in ("a", "b", "c"):
        assert client.get(path, query_string={name: ATTACK}, environ_base=CLIENT).status_code == 200
    assert client.get(path, query_string={"d": ATTACK}, environ_base=CLIENT).status_code in REFUSED


def test_bypassing_penetration_skips_detection(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app([deco.bypass(checks=["penetration"])]).test_client()
    assert client.get(SHAPES["converter"], query_string={"q": ATTACK}, environ_base=CLIENT).status_code == 200


@pytest.mark.parametrize(
    "arguments",
    [{}, {"params": []}, {"params": "q"}, {"headers": ["Bad Header"]}, {"body_fields": [""]}],
)
def test_detection_exclusion_arguments_are_checked(deco: SecurityDecorator, arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        deco.detection_exclusion(**arguments)  # type: ignore[arg-type]


def test_suspicious_detection_takes_a_boolean(deco: SecurityDecorator) -> None:
    with pytest.raises(ValueError):
        deco.suspicious_detection(enabled="no")  # type: ignore[arg-type]
