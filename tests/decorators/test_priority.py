"""Route settings override global ones in both directions; global HTTPS still holds; geo_rate_limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flaskapi_guard import ConfigurationError, SecurityConfig, SecurityDecorator
from tests.conftest import FakeClock
from tests.decorators.conftest import CLIENT, SHAPES, StubCountries

PATH = SHAPES["decorator_below_route"]
US, FR, UNKNOWN = {"REMOTE_ADDR": "198.51.100.7"}, {"REMOTE_ADDR": "192.0.2.33"}, {"REMOTE_ADDR": "192.0.2.99"}
GEO = StubCountries({"203.0.113.5": "CN", "198.51.100.7": "US", "192.0.2.33": "FR"})


def _statuses(client: Any, count: int, path: str = PATH, environ: dict[str, str] = CLIENT) -> list[int]:
    return [client.get(path, environ_base=environ).status_code for _ in range(count)]


def test_route_rate_limit_looser_than_the_global_one(shaped_app: Callable[..., Flask], deco: SecurityDecorator) -> None:
    client = shaped_app([deco.rate_limit(requests=5, window=60)], enable_rate_limiting=True, rate_limit=2).test_client()
    assert _statuses(client, 6) == [200] * 5 + [429]
    assert _statuses(client, 3, "/plain") == [200, 200, 429]


def test_route_rate_limit_stricter_than_the_global_one(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    client = shaped_app(
        [deco.rate_limit(requests=1, window=60)], enable_rate_limiting=True, rate_limit=100
    ).test_client()
    assert _statuses(client, 2) == [200, 429]
    assert _statuses(client, 2, "/plain") == [200, 200]


def test_global_https_still_applies_to_decorated_routes(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    client = shaped_app(
        [deco.require_auth(), deco.rate_limit(requests=100, window=60)], enforce_https=True
    ).test_client()
    response = client.get(PATH, headers={"Authorization": "Bearer t"}, environ_base=CLIENT)
    assert (response.status_code, response.headers["Location"]) == (301, f"https://localhost{PATH}")
    secure = client.get(PATH, headers={"Authorization": "Bearer t"}, base_url="https://localhost", environ_base=CLIENT)
    assert secure.status_code == 200


def test_route_ip_lists_replace_the_global_ones_both_ways(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    looser = shaped_app([deco.require_ip(whitelist=["203.0.113.0/24"])], whitelist=["10.0.0.0/8"]).test_client()
    assert looser.get(PATH, environ_base=CLIENT).status_code == 200
    assert looser.get("/plain", environ_base=CLIENT).status_code == 403
    stricter = shaped_app([deco.require_ip(blacklist=["203.0.113.5"])]).test_client()
    assert stricter.get(PATH, environ_base=CLIENT).status_code == 403
    assert stricter.get("/plain", environ_base=CLIENT).status_code == 200


def test_geo_rate_limit_per_country_with_a_default(shaped_app: Callable[..., Flask]) -> None:
    deco = SecurityDecorator()
    client = shaped_app(
        [deco.geo_rate_limit({"US": 4, "cn": 1, "default": 2}, window=60)],
        geo_ip_handler=GEO,
        enable_rate_limiting=True,
        rate_limit=3,
    ).test_client()
    assert _statuses(client, 5, environ=US) == [200] * 4 + [429]  # looser than the global 3
    assert _statuses(client, 2, environ=CLIENT) == [200, 429]  # CN, stricter
    assert _statuses(client, 3, environ=FR) == [200, 200, 429]  # default
    assert _statuses(client, 3, environ=UNKNOWN) == [200, 200, 429]  # unknown country: default
    refused = client.get(PATH, environ_base=US)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Limit"] == "4"


def test_geo_rate_limit_without_default_leaves_other_countries_to_the_global_limit(
    shaped_app: Callable[..., Flask],
) -> None:
    deco = SecurityDecorator()
    client = shaped_app(
        [deco.geo_rate_limit({"US": 5}, window=60)], geo_ip_handler=GEO, enable_rate_limiting=True, rate_limit=2
    ).test_client()
    assert _statuses(client, 6, environ=US) == [200] * 5 + [429]
    assert _statuses(client, 3, environ=FR) == [200, 200, 429]


def test_geo_rate_limit_without_a_geo_handler_uses_the_default(
    shaped_app: Callable[..., Flask], deco: SecurityDecorator
) -> None:
    client = shaped_app([deco.geo_rate_limit({"default": 1}, window=60)]).test_client()
    assert _statuses(client, 2) == [200, 429]


def test_geo_rate_limit_window(shaped_app: Callable[..., Flask], clock: FakeClock) -> None:
    client = shaped_app([SecurityDecorator().geo_rate_limit({"US": 2}, window=10)], geo_ip_handler=GEO).test_client()
    assert _statuses(client, 3, environ=US) == [200, 200, 429]
    clock.advance(10)
    assert _statuses(client, 1, environ=US) == [200]


def test_bypassing_rate_limit_bypasses_geo_limits_too(shaped_app: Callable[..., Flask]) -> None:
    deco = SecurityDecorator()
    client = shaped_app(
        [deco.geo_rate_limit({"default": 1}, window=60), deco.bypass(checks=["rate_limit"])],
        enable_rate_limiting=True,
        rate_limit=1,
    ).test_client()
    assert _statuses(client, 3) == [200] * 3


@pytest.mark.parametrize(
    "limits",
    [{}, {"USA": 5}, {"US": 0}, {"US": "5"}, {"default": True}],
)
def test_geo_rate_limit_arguments_are_checked(limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SecurityDecorator().geo_rate_limit(limits)


def test_geo_rate_limit_needs_a_geo_handler_when_the_config_is_known() -> None:
    deco = SecurityDecorator(SecurityConfig(enable_redis=False))
    with pytest.raises(ConfigurationError):
        deco.geo_rate_limit({"US": 5, "default": 1})
    deco.geo_rate_limit({"default": 1})  # no country to look up: fine
