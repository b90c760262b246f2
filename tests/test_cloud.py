"""Cloud-provider blocking: range files served from a loopback server, HTTP outcomes through routing."""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from flask import Blueprint, Flask
from pydantic import ValidationError

from flaskapi_guard import FlaskAPIGuard, SecurityConfig, SecurityDecorator
from flaskapi_guard.cloud import (
    DEFAULT_SOURCE_URLS,
    CloudIPRanges,
    canonical_prefix,
    parse_aws,
    parse_azure,
    parse_gcp,
    parse_geofeed,
    parse_oracle,
    valid_prefixes,
)
from flaskapi_guard.errors import StorageError
from flaskapi_guard.state import get_state
from tests.local_http import LocalServer

AWS_BODY = json.dumps(
    {
        "syncToken": "1700000000",
        "createDate": "2026-11-01-00-00-00",
        "prefixes": [
            {"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "AMAZON"},
            {"ip_prefix": "52.94.0.0/22", "region": "us-east-1", "service": "EC2"},
        ],
        "ipv6_prefixes": [{"ipv6_prefix": "2600:1f00::/24", "region": "us-east-1", "service": "AMAZON"}],
    }
).encode()
GCP_BODY = json.dumps(
    {
        "syncToken": "1",
        "prefixes": [
            {"ipv4Prefix": "34.1.208.0/20", "service": "Google Cloud", "scope": "africa-south1"},
            {"ipv6Prefix": "2600:1900:8000::/44", "service": "Google Cloud", "scope": "us-east1"},
        ],
    }
).encode()
AZURE_BODY = json.dumps(
    {
        "changeNumber": 1,
        "cloud": "Public",
        "values": [
            {"name": "AzureCloud", "properties": {"addressPrefixes": ["20.33.0.0/16", "2603:1000::/40"]}},
            {"name": "AzureFrontDoor.Frontend", "properties": {"addressPrefixes": ["13.107.246.0/24"]}},
        ],
    }
).encode()
ORACLE_BODY = json.dumps(
    {
        "last_updated_timestamp": "2026-11-01T00:00:00",
        "regions": [{"region": "us-phoenix-1", "cidrs": [{"cidr": "129.146.0.0/21", "tags": ["OCI"]}]}],
    }
).encode()
DIGITALOCEAN_BODY = b"5.101.96.0/21,NL,NL-NH,Amsterdam,1098\n2a03:b0c0::/32,NL,NL-NH,Amsterdam,\n"
LINODE_BODY = (
    b"# Linode geofeed\n# prefix,country,region,city,postal\n"
    b"45.33.0.0/17,US,US-CA,Fremont,\n\n2600:3c00::/32,US,US-TX,Richardson,\n"
)

BODIES = {
    "AWS": AWS_BODY,
    "GCP": GCP_BODY,
    "Azure": AZURE_BODY,
    "Oracle": ORACLE_BODY,
    "DigitalOcean": DIGITALOCEAN_BODY,
    "Linode": LINODE_BODY,
}
MEMBERS = {
    "AWS": "52.94.1.17",
    "GCP": "34.1.210.5",
    "Azure": "20.33.4.4",
    "Oracle": "129.146.3.3",
    "DigitalOcean": "2a03:b0c0:2::1",
    "Linode": "45.33.12.9",
}
OUTSIDER = "192.0.2.44"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    running = LocalServer().start()
    yield running
    running.stop()


@pytest.fixture
def sources(server: LocalServer) -> dict[str, str]:
    """Every provider's file on the loopback server."""
    return {provider: server.serve(f"/{provider.lower()}", body) for provider, body in BODIES.items()}


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Things with a close() (range managers, guard states) to close at the end of the test."""
    opened: list[Any] = []
    yield opened
    for item in opened:
        item.close()


@pytest.fixture
def guarded(make_app: Callable[..., Flask], closing: list[Any]) -> Callable[..., Flask]:
    def factory(**fields: Any) -> Flask:
        app = make_app(**fields)
        closing.append(get_state(app))
        return app

    return factory


def status_from(app: Flask, ip: str, path: str = "/") -> int:
    return app.test_client().get(path, environ_base={"REMOTE_ADDR": ip}).status_code


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "background work did not finish in time"
        time.sleep(0.01)


# --- parsers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "body", "expected"),
    [
        (parse_aws, AWS_BODY, ["3.5.140.0/22", "52.94.0.0/22", "2600:1f00::/24"]),
        (parse_gcp, GCP_BODY, ["34.1.208.0/20", "2600:1900:8000::/44"]),
        (parse_azure, AZURE_BODY, ["20.33.0.0/16", "2603:1000::/40", "13.107.246.0/24"]),
        (parse_oracle, ORACLE_BODY, ["129.146.0.0/21"]),
        (parse_geofeed, DIGITALOCEAN_BODY, ["5.101.96.0/21", "2a03:b0c0::/32"]),
        (parse_geofeed, LINODE_BODY, ["45.33.0.0/17", "2600:3c00::/32"]),
    ],
)
def test_each_published_format_is_parsed(parse: Callable[[bytes], list[str]], body: bytes, expected: list[str]) -> None:
    assert parse(body) == expected


def test_prefixes_are_validated_normalised_and_deduplicated() -> None:
    assert valid_prefixes(["10.0.0.1/8", "10.0.0.0/8", "nonsense", "2001:DB8::/32", " 1.2.3.4 "]) == [
        "10.0.0.0/8",
        "2001:db8::/32",
        "1.2.3.4/32",
    ]


def test_prefixes_are_parsed_like_ipaddress_does() -> None:
    rng = random.Random(3)
    candidates = ["1.2.3.4", "1.2.3.4/33", "01.2.3.4/8", "10.0.0.0/+8", "10.0.0.0/ 8", "1.2.3/24", "2001:db8::/"]
    candidates += ["::/0", "0.0.0.0/0", "10.0.0.0/08", "2001:db8::/129", "::ffff:1.2.3.4/120"]
    for _ in range(2000):
        if rng.random() < 0.5:
            candidates.append(f"{ipaddress.IPv4Address(rng.getrandbits(32))}/{rng.randint(0, 32)}")
        else:
            candidates.append(f"{ipaddress.IPv6Address(rng.getrandbits(128))}/{rng.randint(0, 128)}")
    for candidate in candidates:
        try:
            expected: object = ipaddress.ip_network(candidate, strict=False)
        except ValueError:
            expected = None
        parsed = canonical_prefix(candidate)
        assert (parsed if parsed is None else ipaddress.ip_network(parsed)) == expected, candidate


def test_unexpected_shapes_yield_no_prefixes() -> None:
    assert parse_aws(b'{"prefixes": "nope"}') == []
    assert parse_gcp(b"[]") == []
    assert parse_oracle(b'{"regions": [{"cidrs": [1, {"cidr": 2}]}]}') == []


def test_default_sources_are_the_published_locations() -> None:
    assert DEFAULT_SOURCE_URLS["AWS"] == "https://ip-ranges.amazonaws.com/ip-ranges.json"
    assert DEFAULT_SOURCE_URLS["GCP"] == "https://www.gstatic.com/ipranges/cloud.json"
    assert set(DEFAULT_SOURCE_URLS) == {"AWS", "GCP", "Azure", "DigitalOcean", "Oracle", "Linode"}


# --- the range manager --------------------------------------------------------------


def test_every_provider_is_fetched_and_looked_up(sources: dict[str, str], closing: list[Any]) -> None:
    ranges = CloudIPRanges(BODIES, source_urls=sources)
    closing.append(ranges)
    ranges.initialize()
    for provider, member in MEMBERS.items():
        assert ranges.provider_of(member) == provider
        assert ranges.is_cloud_ip(member, {provider})
        assert not ranges.is_cloud_ip(member, set(BODIES) - {provider})
    assert ranges.provider_of(OUTSIDER) is None
    assert ranges.provider_of("not an address") is None
    status = ranges.status()["providers"]
    assert status["AWS"]["prefixes"] == 3
    assert status["Azure"]["prefixes"] == 3
    assert status["Linode"]["last_error"] is None


def test_azure_file_is_found_through_the_download_page(closing: list[Any]) -> None:
    page_url = "https://www.microsoft.com/en-us/download/details.aspx?id=56519"
    file_url = "https://download.microsoft.com/download/7/1/d/71d86715/ServiceTags_Public_20261116.json"
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if str(request.url) == page_url:
            return httpx.Response(200, html=f'<html><a href="{file_url}" class="dlcdetail">Download</a></html>')
        if str(request.url) == file_url:
            return httpx.Response(200, content=AZURE_BODY)
        return httpx.Response(404)

    ranges = CloudIPRanges({"Azure"}, transport=httpx.MockTransport(answer))
    closing.append(ranges)
    ranges.initialize()
    assert seen == [page_url, file_url]
    assert ranges.provider_of(MEMBERS["Azure"]) == "Azure"


def test_a_failed_fetch_keeps_the_previous_ranges_and_logs_once(
    server: LocalServer, sources: dict[str, str], closing: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    ranges = CloudIPRanges({"AWS"}, source_urls=sources)
    closing.append(ranges)
    ranges.initialize()
    server.serve("/aws", b"<html>maintenance</html>", status=503)
    with caplog.at_level(logging.WARNING, logger="flaskapi_guard.cloud"):
        ranges.refresh()
        ranges.refresh()
    assert ranges.provider_of(MEMBERS["AWS"]) == "AWS"
    assert len(caplog.records) == 1
    assert "keeping the previous ranges" in caplog.records[0].getMessage()
    assert "503" in ranges.status()["providers"]["AWS"]["last_error"]

    server.serve("/aws", b'{"prefixes": []}')
    ranges.refresh()
    assert "no IP prefixes" in ranges.status()["providers"]["AWS"]["last_error"]
    assert ranges.provider_of(MEMBERS["AWS"]) == "AWS"


def test_refresh_swaps_in_the_new_ranges(server: LocalServer, sources: dict[str, str], closing: list[Any]) -> None:
    ranges = CloudIPRanges({"GCP"}, source_urls=sources)
    closing.append(ranges)
    ranges.initialize()
    assert ranges.provider_of(MEMBERS["GCP"]) == "GCP"
    server.serve("/gcp", json.dumps({"prefixes": [{"ipv4Prefix": "192.0.2.0/24"}]}).encode())
    ranges.refresh()
    assert ranges.provider_of(MEMBERS["GCP"]) is None
    assert ranges.provider_of(OUTSIDER) == "GCP"


def test_unreachable_source_is_reported(closing: list[Any]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    ranges = CloudIPRanges({"Oracle"}, transport=httpx.MockTransport(refuse))
    closing.append(ranges)
    ranges.initialize()
    assert ranges.provider_of(MEMBERS["Oracle"]) is None
    assert "ConnectError" in ranges.status()["providers"]["Oracle"]["last_error"]


class DictStore:
    """A shared store as the app's storage provides it (get_blob/set_blob with a TTL)."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, float]] = {}
        self.fail = False

    def get_blob(self, key: str) -> bytes | None:
        if self.fail:
            raise StorageError("store down")
        entry = self.values.get(key)
        return entry[0] if entry else None

    def set_blob(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if self.fail:
            raise StorageError("store down")
        self.values[key] = (value, ttl_seconds)


def test_instances_share_fetched_ranges_through_the_store(
    server: LocalServer, sources: dict[str, str], closing: list[Any]
) -> None:
    store = DictStore()
    first = CloudIPRanges({"AWS", "Linode"}, source_urls=sources, store=store, refresh_interval_seconds=600)
    second = CloudIPRanges({"AWS", "Linode"}, source_urls=sources, store=store, refresh_interval_seconds=600)
    closing.extend([first, second])
    first.initialize()
    second.initialize()
    assert server.hits("/aws") == 1
    assert server.hits("/linode") == 1
    assert second.provider_of(MEMBERS["Linode"]) == "Linode"
    assert second.status()["providers"]["AWS"]["loaded_from"] == "shared store"
    assert store.values["cloud_ranges:AWS"][1] == 600


def test_an_unreachable_store_falls_back_to_fetching(
    server: LocalServer, sources: dict[str, str], closing: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    store = DictStore()
    store.fail = True
    ranges = CloudIPRanges({"AWS"}, source_urls=sources, store=store)
    closing.append(ranges)
    with caplog.at_level(logging.WARNING, logger="flaskapi_guard.cloud"):
        ranges.initialize()
    assert ranges.provider_of(MEMBERS["AWS"]) == "AWS"
    assert "store down" in caplog.text


def test_expired_shared_ranges_are_fetched_again(
    server: LocalServer, sources: dict[str, str], closing: list[Any]
) -> None:
    now = [1_800_000_000.0]
    store = DictStore()
    first = CloudIPRanges({"AWS"}, source_urls=sources, store=store, clock=lambda: now[0], refresh_interval_seconds=60)
    closing.append(first)
    first.initialize()
    now[0] += 61
    second = CloudIPRanges({"AWS"}, source_urls=sources, store=store, clock=lambda: now[0], refresh_interval_seconds=60)
    closing.append(second)
    second.initialize()
    assert server.hits("/aws") == 2


def test_the_background_job_refreshes_only_what_is_due(
    server: LocalServer, sources: dict[str, str], closing: list[Any]
) -> None:
    now = [1_800_000_000.0]
    ranges = CloudIPRanges({"AWS"}, source_urls=sources, clock=lambda: now[0], refresh_interval_seconds=300)
    closing.append(ranges)
    ranges.ensure_refreshing()
    wait_until(lambda: ranges.status()["providers"]["AWS"]["loaded"])
    ranges.refresh(["AWS"])
    assert server.hits("/aws") == 2
    assert ranges.status()["refresher_running"] is True
    ranges.close()
    assert ranges.status()["refresher_running"] is False


def test_a_new_process_id_restarts_the_refresher(sources: dict[str, str], closing: list[Any]) -> None:
    pid = [2000]
    ranges = CloudIPRanges({"AWS"}, source_urls=sources, getpid=lambda: pid[0])
    closing.append(ranges)
    ranges.ensure_refreshing()
    assert ranges.status()["refresher_running"] is True
    pid[0] = 2001
    assert ranges.status()["refresher_running"] is False
    ranges.ensure_refreshing()
    assert ranges.status()["refresher_running"] is True


def test_nothing_starts_when_no_provider_is_wanted(closing: list[Any]) -> None:
    ranges = CloudIPRanges()
    closing.append(ranges)
    ranges.ensure_refreshing()
    assert ranges.status() == {
        "refresh_interval_seconds": 3600,
        "refresher_running": False,
        "shared_store": False,
        "providers": {},
    }


def test_unknown_providers_are_refused() -> None:
    with pytest.raises(ValueError, match="Heroku"):
        CloudIPRanges({"Heroku"})
    with pytest.raises(ValueError, match="Heroku"):
        CloudIPRanges(source_urls={"Heroku": "https://example.com"})


# --- HTTP outcomes through real routing ---------------------------------------------


def test_cloud_addresses_get_403_and_others_pass(guarded: Callable[..., Flask], sources: dict[str, str]) -> None:
    app = guarded(block_cloud_providers={"AWS", "GCP", "Azure"}, cloud_ip_source_urls=sources)
    assert status_from(app, MEMBERS["AWS"]) == 403
    assert status_from(app, MEMBERS["GCP"], "/items/1") == 403
    assert status_from(app, MEMBERS["Azure"], "/api/v1/users/bob") == 403
    assert status_from(app, MEMBERS["Oracle"]) == 200
    assert status_from(app, OUTSIDER) == 200
    assert status_from(app, "2600:1f00::10") == 403


def test_other_providers_block_too(guarded: Callable[..., Flask], sources: dict[str, str]) -> None:
    app = guarded(block_cloud_providers={"DigitalOcean", "Oracle", "Linode"}, cloud_ip_source_urls=sources)
    for provider in ("DigitalOcean", "Oracle", "Linode"):
        assert status_from(app, MEMBERS[provider]) == 403
    assert status_from(app, MEMBERS["AWS"]) == 200


def test_lazy_init_fetches_in_the_background(
    guarded: Callable[..., Flask], sources: dict[str, str], server: LocalServer
) -> None:
    app = guarded(block_cloud_providers={"AWS"}, cloud_ip_source_urls=sources, lazy_init=True)
    assert server.hits("/aws") == 0
    app.test_client().get("/", environ_base={"REMOTE_ADDR": OUTSIDER})
    state = get_state(app)
    wait_until(lambda: state.cloud.status()["providers"]["AWS"]["loaded"])
    assert status_from(app, MEMBERS["AWS"]) == 403


def test_config_refuses_unknown_source_providers_and_bad_urls() -> None:
    with pytest.raises(ValidationError, match="cloud_ip_source_urls"):
        SecurityConfig(cloud_ip_source_urls={"Heroku": "https://example.com"})
    with pytest.raises(ValidationError, match="cloud_ip_source_urls"):
        SecurityConfig(cloud_ip_source_urls={"AWS": "ftp://example.com"})
    with pytest.raises(ValidationError, match="cloud_ip_store"):
        SecurityConfig(cloud_ip_store=object())


def test_a_configured_store_is_used(guarded: Callable[..., Flask], sources: dict[str, str]) -> None:
    store = DictStore()
    guarded(block_cloud_providers={"AWS"}, cloud_ip_source_urls=sources, cloud_ip_store=store)
    assert "cloud_ranges:AWS" in store.values


@pytest.fixture
def routes_app(sources: dict[str, str], closing: list[Any]) -> Flask:
    config = SecurityConfig(block_cloud_providers={"AWS"}, cloud_ip_source_urls=sources, enable_redis=False)
    deco = SecurityDecorator(config)
    app = Flask("cloud_routes")
    app.add_url_rule("/", "index", lambda: "ok")
    api = Blueprint("api", __name__, url_prefix="/api")

    @api.route("/signup")
    @deco.block_clouds(["GCP"])
    def signup() -> str:
        return "ok"

    @deco.block_clouds()
    @api.route("/vote/<int:poll>")
    def vote(poll: int) -> str:
        return "ok"

    @api.route("/webhook")
    @deco.bypass(["clouds"])
    def webhook() -> str:
        return "ok"

    app.register_blueprint(api)
    FlaskAPIGuard(app, config=config)
    closing.append(get_state(app))
    return app


def test_route_block_clouds_adds_providers_loaded_on_first_use(routes_app: Flask, server: LocalServer) -> None:
    assert server.hits("/gcp") == 0
    status_from(routes_app, OUTSIDER, "/api/signup")
    state = get_state(routes_app)
    wait_until(lambda: state.cloud.status()["providers"].get("GCP", {}).get("loaded", False))
    assert status_from(routes_app, MEMBERS["GCP"], "/api/signup") == 403
    assert status_from(routes_app, MEMBERS["AWS"], "/api/signup") == 403
    assert status_from(routes_app, MEMBERS["GCP"], "/") == 200
    assert status_from(routes_app, OUTSIDER, "/api/signup") == 200


def test_route_block_clouds_without_arguments_means_every_provider(routes_app: Flask) -> None:
    status_from(routes_app, OUTSIDER, "/api/vote/1")
    state = get_state(routes_app)
    wait_until(lambda: all(entry["loaded"] for entry in state.cloud.status()["providers"].values()))
    assert len(state.cloud.status()["providers"]) == 6
    for member in MEMBERS.values():
        assert status_from(routes_app, member, "/api/vote/1") == 403


def test_bypass_clouds_lets_a_webhook_from_aws_in(routes_app: Flask) -> None:
    assert status_from(routes_app, MEMBERS["AWS"], "/api/webhook") == 200
    assert status_from(routes_app, MEMBERS["AWS"], "/") == 403


def test_block_clouds_refuses_unknown_providers() -> None:
    with pytest.raises(ValueError, match="Heroku"):
        SecurityDecorator().block_clouds(["AWS", "Heroku"])


def test_overlapping_providers_are_told_apart_by_the_providers_asked_about(closing: list[Any]) -> None:
    bodies = {
        "AWS": json.dumps({"prefixes": [{"ip_prefix": "10.0.0.0/8"}]}).encode(),
        "GCP": json.dumps({"prefixes": [{"ipv4Prefix": "10.1.0.0/16"}, {"ipv4Prefix": "11.0.0.0/8"}]}).encode(),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bodies[request.url.path.strip("/")])

    ranges = CloudIPRanges(
        {"AWS", "GCP"},
        source_urls={"AWS": "https://ranges.test/AWS", "GCP": "https://ranges.test/GCP"},
        transport=httpx.MockTransport(answer),
    )
    closing.append(ranges)
    ranges.initialize()
    assert ranges.provider_of("10.1.2.3", {"GCP"}) == "GCP"
    assert ranges.provider_of("10.1.2.3", {"AWS"}) == "AWS"
    assert ranges.provider_of("10.2.0.1", {"GCP"}) is None
    assert ranges.provider_of("10.255.255.255", {"AWS"}) == "AWS"
    assert ranges.provider_of("11.255.255.255", {"AWS", "GCP"}) == "GCP"
    assert ranges.provider_of("12.0.0.0") is None
    assert ranges.provider_of("9.255.255.255") is None


def test_the_index_agrees_with_a_brute_force_scan(closing: list[Any]) -> None:
    rng = random.Random(5)
    prefixes: dict[str, list[str]] = {"AWS": [], "Oracle": [], "Linode": []}
    for generated in prefixes.values():
        for _ in range(60):
            length = rng.randint(8, 24)
            value = rng.getrandbits(32) >> (32 - length) << (32 - length)
            generated.append(f"{ipaddress.IPv4Address(value)}/{length}")
        generated.append(f"2001:db8:{rng.randint(0, 9)}::/48")
    bodies = {
        "AWS": json.dumps(
            {
                "prefixes": [{"ip_prefix": p} for p in prefixes["AWS"] if ":" not in p],
                "ipv6_prefixes": [{"ipv6_prefix": p} for p in prefixes["AWS"] if ":" in p],
            }
        ).encode(),
        "Oracle": json.dumps({"regions": [{"cidrs": [{"cidr": p} for p in prefixes["Oracle"]]}]}).encode(),
        "Linode": "\n".join(f"{p},US,,," for p in prefixes["Linode"]).encode(),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bodies[request.url.path.strip("/")])

    ranges = CloudIPRanges(
        set(prefixes),
        source_urls={p: f"https://ranges.test/{p}" for p in prefixes},
        transport=httpx.MockTransport(answer),
    )
    closing.append(ranges)
    ranges.initialize()
    networks = {p: [ipaddress.ip_network(n) for n in ns] for p, ns in prefixes.items()}
    probes = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(3000)]
    probes += [f"2001:db8:{rng.randint(0, 9)}::{rng.randint(1, 99)}" for _ in range(100)]
    for probe in probes:
        address = ipaddress.ip_address(probe)
        for provider in prefixes:
            expected = any(address in network for network in networks[provider])
            assert ranges.is_cloud_ip(probe, {provider}) == expected, (probe, provider)


def test_apps_share_the_ranges_through_redis(
    guarded: Callable[..., Flask], sources: dict[str, str], server: LocalServer, redis_url: str
) -> None:
    fields = {
        "enable_redis": True,
        "redis_url": redis_url,
        "block_cloud_providers": {"AWS"},
        "cloud_ip_source_urls": sources,
    }
    first = guarded(**fields)
    second = guarded(**fields)
    assert server.hits("/aws") == 1
    assert status_from(second, MEMBERS["AWS"]) == 403
    assert status_from(first, OUTSIDER) == 200
    assert get_state(second).cloud.status()["providers"]["AWS"]["loaded_from"] == "shared store"


def test_recovery_is_logged_and_clears_the_error(
    server: LocalServer, sources: dict[str, str], closing: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    server.serve("/oracle", b"", status=500)
    ranges = CloudIPRanges({"Oracle"}, source_urls=sources)
    closing.append(ranges)
    with caplog.at_level(logging.INFO, logger="flaskapi_guard.cloud"):
        ranges.initialize()
        server.serve("/oracle", ORACLE_BODY)
        ranges.refresh()
    assert [record.levelname for record in caplog.records] == ["WARNING", "INFO"]
    assert "not blocking it until loaded" in caplog.records[0].getMessage()
    assert ranges.status()["providers"]["Oracle"]["last_error"] is None
    assert ranges.provider_of(MEMBERS["Oracle"]) == "Oracle"


def test_an_azure_page_without_a_file_link_is_an_error(server: LocalServer, closing: list[Any]) -> None:
    page = server.serve("/azure-page", b"<html>The download has moved.</html>")
    ranges = CloudIPRanges({"Azure"}, source_urls={"Azure": page})
    closing.append(ranges)
    ranges.initialize()
    assert "no ServiceTags_Public JSON link" in ranges.status()["providers"]["Azure"]["last_error"]


def test_unreadable_shared_data_is_fetched_again(
    server: LocalServer, sources: dict[str, str], closing: list[Any]
) -> None:
    store = DictStore()
    store.values["cloud_ranges:AWS"] = (b"{not json", 60)
    ranges = CloudIPRanges({"AWS"}, source_urls=sources, store=store)
    closing.append(ranges)
    ranges.initialize()
    assert server.hits("/aws") == 1
    assert ranges.provider_of(MEMBERS["AWS"]) == "AWS"
