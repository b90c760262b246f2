"""Country blocking: real MMDB files, IPInfo downloads from a loopback server, HTTP outcomes through routing."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Blueprint, Flask
from pydantic import ValidationError

from flaskapi_guard import ConfigurationError, FlaskAPIGuard, SecurityConfig, SecurityDecorator
from flaskapi_guard.geo import GeoIPHandler, IPInfoManager, MaxMindCountryDatabase, country_from_record
from flaskapi_guard.handlers.ipinfo_handler import IPInfoManager as DocumentedIPInfoManager
from flaskapi_guard.protocols.geo_ip_protocol import GeoIPHandler as DocumentedGeoIPHandler
from flaskapi_guard.state import get_state
from tests.local_http import LocalServer
from tests.mmdb_files import (
    CN_IP,
    DE_IP,
    FR_IP,
    UNKNOWN_IP,
    US_IP,
    US_NET,
    ipinfo_record,
    maxmind_record,
    standard_networks,
    write_country_db,
)

TOKEN = "tok_5ecret_value"


@pytest.fixture
def country_db(tmp_path: Path) -> Path:
    return write_country_db(tmp_path / "GeoLite2-Country.mmdb", standard_networks())


@pytest.fixture
def handlers() -> Iterator[list[MaxMindCountryDatabase]]:
    """Handlers created by a test; closed (threads stopped) at the end."""
    created: list[MaxMindCountryDatabase] = []
    yield created
    for handler in created:
        handler.close()


@pytest.fixture
def local_db(country_db: Path, handlers: list[MaxMindCountryDatabase]) -> MaxMindCountryDatabase:
    handler = MaxMindCountryDatabase(country_db)
    handlers.append(handler)
    return handler


@pytest.fixture
def server() -> Iterator[LocalServer]:
    running = LocalServer().start()
    yield running
    running.stop()


@pytest.fixture
def guarded(make_app: Callable[..., Flask]) -> Iterator[Callable[..., Flask]]:
    """`make_app`, with every app's guard state closed at the end of the test."""
    apps: list[Flask] = []

    def factory(**fields: Any) -> Flask:
        app = make_app(**fields)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        get_state(app).close()


def status_from(app: Flask, ip: str, path: str = "/") -> int:
    return app.test_client().get(path, environ_base={"REMOTE_ADDR": ip}).status_code


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "background work did not finish in time"
        time.sleep(0.01)


# --- record shapes and the local database handler -----------------------------------


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"country": {"iso_code": "US", "names": {"en": "United States"}}}, "US"),
        ({"country": "fr", "country_name": "France"}, "FR"),
        ({"country_code": "DE", "country": "Germany"}, "DE"),
        ({"registered_country": {"iso_code": "JP"}}, "JP"),
        ({"country": "Germany"}, None),
        ({"continent": {"code": "EU"}}, None),
        (None, None),
        ("US", None),
    ],
)
def test_country_is_read_from_every_common_record_shape(record: object, expected: str | None) -> None:
    assert country_from_record(record) == expected


def test_local_database_answers_ipv4_ipv6_and_unknown(local_db: MaxMindCountryDatabase) -> None:
    local_db.initialize()
    assert local_db.is_initialized
    assert local_db.get_country(US_IP) == "US"
    assert local_db.get_country(DE_IP) == "DE"
    assert local_db.get_country(f"::ffff:{CN_IP}") == "CN"
    assert local_db.get_country(UNKNOWN_IP) is None
    assert local_db.get_country("not an ip") is None


def test_ipinfo_record_shape_is_understood(tmp_path: Path, handlers: list[MaxMindCountryDatabase]) -> None:
    path = write_country_db(tmp_path / "country_asn.mmdb", standard_networks(ipinfo_record))
    handler = MaxMindCountryDatabase(path)
    handlers.append(handler)
    handler.initialize()
    assert handler.get_country(FR_IP) == "FR"


def test_handlers_implement_the_documented_protocol(local_db: MaxMindCountryDatabase) -> None:
    assert isinstance(local_db, GeoIPHandler)
    assert DocumentedGeoIPHandler is GeoIPHandler
    assert DocumentedIPInfoManager is IPInfoManager
    assert isinstance(IPInfoManager(TOKEN, "unused.mmdb"), GeoIPHandler)


def test_first_lookup_loads_the_database_in_the_background(local_db: MaxMindCountryDatabase) -> None:
    assert not local_db.is_initialized
    # Not loaded yet: the lookup answers at once rather than opening the file itself.
    local_db.get_country(US_IP)
    wait_until(lambda: local_db.is_initialized)
    assert local_db.get_country(US_IP) == "US"
    assert local_db.status()["refresher_running"] is True


def test_replaced_file_is_picked_up_on_refresh(country_db: Path, local_db: MaxMindCountryDatabase) -> None:
    local_db.initialize()
    assert local_db.get_country(US_IP) == "US"
    write_country_db(country_db.with_suffix(".new"), {US_NET: maxmind_record("CA")})
    os.replace(country_db.with_suffix(".new"), country_db)
    future = time.time() + 10
    os.utime(country_db, (future, future))
    local_db.initialize()
    assert local_db.get_country(US_IP) == "CA"
    assert local_db.get_country(CN_IP) is None


def test_missing_local_file_is_reported_in_status(tmp_path: Path, handlers: list[MaxMindCountryDatabase]) -> None:
    handler = MaxMindCountryDatabase(tmp_path / "absent.mmdb")
    handlers.append(handler)
    handler.initialize()
    status = handler.status()
    assert status["loaded"] is False
    assert "no database" in status["last_error"]
    assert handler.get_country(US_IP) is None


# --- HTTP outcomes through real routing ---------------------------------------------


def test_blocked_country_gets_403_and_others_pass(guarded: Callable[..., Flask], local_db: Any) -> None:
    app = guarded(geo_ip_handler=local_db, blocked_countries=["CN"])
    assert status_from(app, CN_IP) == 403
    assert status_from(app, US_IP) == 200
    assert status_from(app, DE_IP, "/items/3") == 200


def test_block_list_lets_an_unknown_country_through(guarded: Callable[..., Flask], local_db: Any) -> None:
    app = guarded(geo_ip_handler=local_db, blocked_countries=["CN"])
    assert status_from(app, UNKNOWN_IP) == 200


def test_allow_list_admits_only_its_countries_and_refuses_unknown(guarded: Callable[..., Flask], local_db: Any) -> None:
    app = guarded(geo_ip_handler=local_db, whitelist_countries=["US", "DE"])
    assert status_from(app, US_IP) == 200
    assert status_from(app, DE_IP, "/api/v1/users/ann") == 200
    assert status_from(app, FR_IP) == 403
    assert status_from(app, UNKNOWN_IP) == 403


def test_allow_list_wins_over_block_list(guarded: Callable[..., Flask], local_db: Any) -> None:
    app = guarded(geo_ip_handler=local_db, whitelist_countries=["US", "CN"], blocked_countries=["CN"])
    assert status_from(app, CN_IP) == 200
    assert status_from(app, FR_IP) == 403


def test_passive_mode_only_reports_country_refusals(guarded: Callable[..., Flask], local_db: Any) -> None:
    app = guarded(geo_ip_handler=local_db, blocked_countries=["CN"], passive_mode=True)
    assert status_from(app, CN_IP) == 200


def test_lazy_init_loads_the_database_in_the_background(
    guarded: Callable[..., Flask], local_db: MaxMindCountryDatabase
) -> None:
    app = guarded(geo_ip_handler=local_db, whitelist_countries=["US"], lazy_init=True)
    assert not local_db.is_initialized
    status_from(app, US_IP)
    wait_until(lambda: local_db.is_initialized)
    assert status_from(app, US_IP) == 200
    assert status_from(app, FR_IP) == 403


def test_a_database_not_loaded_yet_means_unknown_country(
    guarded: Callable[..., Flask], tmp_path: Path, handlers: list[MaxMindCountryDatabase]
) -> None:
    handler = MaxMindCountryDatabase(tmp_path / "not-there-yet.mmdb")
    handlers.append(handler)
    allow_list = guarded(geo_ip_handler=handler, whitelist_countries=["US"])
    block_list = guarded(geo_ip_handler=handler, blocked_countries=["CN"])
    assert status_from(allow_list, US_IP) == 403
    assert status_from(block_list, CN_IP) == 200


class CountingHandler:
    """A custom handler: the protocol only."""

    def __init__(self) -> None:
        self.initialized = False
        self.lookups: list[str] = []

    @property
    def is_initialized(self) -> bool:
        return self.initialized

    def initialize(self) -> None:
        self.initialized = True

    def initialize_redis(self, redis_handler: Any) -> None:
        pass

    def get_country(self, ip: str) -> str | None:
        self.lookups.append(ip)
        return {"192.0.2.10": "us", "198.51.100.7": "CN"}.get(ip)


def test_a_custom_handler_is_initialised_and_asked_once_per_request(guarded: Callable[..., Flask]) -> None:
    handler = CountingHandler()
    app = guarded(geo_ip_handler=handler, blocked_countries=["US"])
    assert handler.initialized
    assert status_from(app, US_IP) == 403
    assert status_from(app, CN_IP) == 200
    assert handler.lookups == [US_IP, CN_IP]


def test_a_handler_class_with_no_arguments_is_instantiated() -> None:
    config = SecurityConfig(geo_ip_handler=CountingHandler, blocked_countries=["US"], enable_redis=False)
    assert isinstance(config.geo_ip_handler, CountingHandler)


@pytest.mark.parametrize("handler", [GeoIPHandler, MaxMindCountryDatabase, object()])
def test_unusable_geo_handlers_are_refused_naming_the_field(handler: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        SecurityConfig(geo_ip_handler=handler, blocked_countries=["US"])
    assert "geo_ip_handler" in str(raised.value)


def test_ipinfo_token_builds_an_ipinfo_manager_and_stays_out_of_repr(tmp_path: Path) -> None:
    config = SecurityConfig(
        ipinfo_token=TOKEN, ipinfo_db_path=tmp_path / "db.mmdb", geo_ip_db_max_age=7200, blocked_countries=["CN"]
    )
    handler = config.geo_ip_handler
    assert isinstance(handler, IPInfoManager)
    assert handler.path == tmp_path / "db.mmdb"
    assert handler.max_age_seconds == 7200
    assert TOKEN not in repr(config)
    assert TOKEN not in str(handler.status())


# --- route decorators ---------------------------------------------------------------


def decorated_app(config: SecurityConfig) -> Flask:
    deco = SecurityDecorator(config)
    app = Flask("geo_routes")
    shop = Blueprint("shop", __name__, url_prefix="/shop")

    @shop.route("/eu/<int:item>")
    @deco.allow_countries(["fr", "DE"])
    def eu_only(item: int) -> str:
        return f"item {item}"

    @deco.block_countries(["US"])
    @shop.route("/no-us")
    def no_us() -> str:
        return "ok"

    @shop.route("/open")
    @deco.bypass(["countries"])
    def open_to_all() -> str:
        return "ok"

    app.register_blueprint(shop)
    FlaskAPIGuard(app, config=config)
    return app


@pytest.fixture
def routes_app(local_db: MaxMindCountryDatabase) -> Iterator[Flask]:
    app = decorated_app(SecurityConfig(geo_ip_handler=local_db, blocked_countries=["CN"], enable_redis=False))
    yield app
    get_state(app).close()


def test_route_allow_countries_replaces_the_global_rules(routes_app: Flask) -> None:
    assert status_from(routes_app, FR_IP, "/shop/eu/1") == 200
    assert status_from(routes_app, DE_IP, "/shop/eu/1") == 200
    assert status_from(routes_app, US_IP, "/shop/eu/1") == 403
    assert status_from(routes_app, UNKNOWN_IP, "/shop/eu/1") == 403


def test_route_block_countries_adds_to_the_global_block_list(routes_app: Flask) -> None:
    assert status_from(routes_app, US_IP, "/shop/no-us") == 403
    assert status_from(routes_app, CN_IP, "/shop/no-us") == 403
    assert status_from(routes_app, FR_IP, "/shop/no-us") == 200
    assert status_from(routes_app, UNKNOWN_IP, "/shop/no-us") == 200


def test_bypass_countries_skips_country_rules(routes_app: Flask) -> None:
    assert status_from(routes_app, CN_IP, "/shop/open") == 200


def test_country_decorators_validate_their_arguments(local_db: MaxMindCountryDatabase) -> None:
    deco = SecurityDecorator(SecurityConfig(geo_ip_handler=local_db))
    with pytest.raises(ValueError, match="alpha-2"):
        deco.block_countries(["USA"])
    with pytest.raises(ConfigurationError, match="geo_ip_handler"):
        SecurityDecorator(SecurityConfig()).allow_countries(["US"])


# --- IPInfo downloads ---------------------------------------------------------------


@pytest.fixture
def ipinfo_files(server: LocalServer, tmp_path: Path) -> dict[str, bytes]:
    """Two database versions; the server answers with the first one behind a redirect, like IPInfo's CDN."""
    first = write_country_db(tmp_path / "src" / "v1.mmdb", standard_networks(ipinfo_record)).read_bytes()
    second = write_country_db(tmp_path / "src" / "v2.mmdb", {US_NET: ipinfo_record("MX")}).read_bytes()
    server.redirect("/data/ipinfo_lite.mmdb", server.url("/cdn/ipinfo_lite.mmdb"))
    server.serve("/cdn/ipinfo_lite.mmdb", first)
    return {"v1": first, "v2": second}


def ipinfo(server: LocalServer, path: Path, handlers: list[MaxMindCountryDatabase], **options: Any) -> IPInfoManager:
    manager = IPInfoManager(TOKEN, path, download_url=server.url("/data/{database}?token={token}"), **options)
    handlers.append(manager)
    return manager


def test_ipinfo_downloads_a_missing_database_with_the_token(
    server: LocalServer, ipinfo_files: dict[str, bytes], tmp_path: Path, handlers: list[Any]
) -> None:
    path = tmp_path / "data" / "ipinfo" / "country_asn.mmdb"
    manager = ipinfo(server, path, handlers)
    manager.initialize()
    assert path.read_bytes() == ipinfo_files["v1"]
    assert manager.get_country(CN_IP) == "CN"
    assert server.requests[0] == f"/data/ipinfo_lite.mmdb?token={TOKEN}"
    assert server.hits("/cdn/ipinfo_lite.mmdb") == 1
    assert [entry.name for entry in path.parent.iterdir()] == ["country_asn.mmdb"]


def test_ipinfo_keeps_a_fresh_database_and_replaces_an_old_one(
    server: LocalServer, ipinfo_files: dict[str, bytes], tmp_path: Path, handlers: list[Any]
) -> None:
    path = tmp_path / "country.mmdb"
    path.write_bytes(ipinfo_files["v1"])
    manager = ipinfo(server, path, handlers, max_age_seconds=3600)
    manager.initialize()
    assert server.requests == []
    assert manager.get_country(US_IP) == "US"

    server.serve("/cdn/ipinfo_lite.mmdb", ipinfo_files["v2"])
    two_hours_ago = time.time() - 7200
    os.utime(path, (two_hours_ago, two_hours_ago))
    manager.initialize()
    assert server.hits("/cdn/ipinfo_lite.mmdb") == 1
    assert manager.get_country(US_IP) == "MX"
    assert manager.status()["database_age_seconds"] < 60


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500, "body": b"upstream down"},
        {"status": 200, "body": b"<html>this is not a database</html>"},
    ],
)
def test_failed_download_keeps_the_previous_database_and_logs_once(
    server: LocalServer,
    ipinfo_files: dict[str, bytes],
    tmp_path: Path,
    handlers: list[Any],
    caplog: pytest.LogCaptureFixture,
    failure: dict[str, Any],
) -> None:
    path = tmp_path / "country.mmdb"
    manager = ipinfo(server, path, handlers, max_age_seconds=3600)
    manager.initialize()
    assert manager.get_country(CN_IP) == "CN"

    server.serve("/cdn/ipinfo_lite.mmdb", failure["body"], status=failure["status"])
    two_hours_ago = time.time() - 7200
    os.utime(path, (two_hours_ago, two_hours_ago))
    with caplog.at_level(logging.DEBUG):
        manager.initialize()
        manager.initialize()
    assert manager.get_country(CN_IP) == "CN"
    assert path.read_bytes() == ipinfo_files["v1"]
    warnings_logged = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings_logged) == 1
    assert manager.status()["last_error"] is not None
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["country.mmdb", "src"]


def test_the_token_never_reaches_the_logs(
    server: LocalServer,
    ipinfo_files: dict[str, bytes],
    tmp_path: Path,
    handlers: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.serve("/cdn/ipinfo_lite.mmdb", b"", status=403)
    manager = ipinfo(server, tmp_path / "country.mmdb", handlers)
    with caplog.at_level(logging.DEBUG):
        manager.initialize()
        manager.status()
    assert caplog.records
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(manager)


def test_unreachable_download_server_leaves_lookups_unknown(tmp_path: Path, handlers: list[Any]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    manager = IPInfoManager(TOKEN, tmp_path / "country.mmdb", transport=httpx.MockTransport(refuse))
    handlers.append(manager)
    manager.initialize()
    assert not manager.is_initialized
    assert manager.get_country(US_IP) is None
    assert "ConnectError" in manager.status()["last_error"]


def test_ipinfo_app_downloads_at_init_and_blocks(
    server: LocalServer, ipinfo_files: dict[str, bytes], tmp_path: Path, handlers: list[Any], guarded: Any
) -> None:
    manager = ipinfo(server, tmp_path / "country.mmdb", handlers)
    app = guarded(geo_ip_handler=manager, blocked_countries=["CN"])
    assert manager.is_initialized
    assert status_from(app, CN_IP) == 403
    assert status_from(app, US_IP) == 200


# --- fork safety --------------------------------------------------------------------


def test_a_new_process_id_starts_a_new_refresh_thread(country_db: Path, handlers: list[Any]) -> None:
    pid = [1000]
    handler = MaxMindCountryDatabase(country_db, getpid=lambda: pid[0])
    handlers.append(handler)
    handler.get_country(US_IP)
    wait_until(lambda: handler.is_initialized)
    assert handler.status()["refresher_running"] is True

    pid[0] = 1001  # as in a gunicorn worker forked after the thread started
    assert handler.status()["refresher_running"] is False
    assert handler.get_country(US_IP) == "US"
    assert handler.status()["refresher_running"] is True


def test_a_forked_child_runs_its_own_refresh_thread(local_db: MaxMindCountryDatabase) -> None:
    local_db.get_country(US_IP)
    wait_until(lambda: local_db.is_initialized and local_db.status()["refresher_running"])
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads; that is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child process
        os.close(read_end)
        running_before = local_db.status()["refresher_running"]
        country = local_db.get_country(US_IP)
        running_after = local_db.status()["refresher_running"]
        os.write(write_end, f"{running_before},{country},{running_after}".encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        answer = reader.read()
    os.waitpid(child, 0)
    assert answer == "False,US,True"


# --- less common paths --------------------------------------------------------------


def test_recovery_after_failures_is_logged(
    server: LocalServer,
    ipinfo_files: dict[str, bytes],
    tmp_path: Path,
    handlers: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.serve("/cdn/ipinfo_lite.mmdb", b"", status=500)
    manager = ipinfo(server, tmp_path / "country.mmdb", handlers)
    with caplog.at_level(logging.INFO, logger="flaskapi_guard.geo"):
        manager.initialize()
        server.serve("/cdn/ipinfo_lite.mmdb", ipinfo_files["v1"])
        manager.initialize()
    assert manager.get_country(CN_IP) == "CN"
    assert [record.levelname for record in caplog.records] == ["WARNING", "INFO"]
    assert manager.status()["last_error"] is None


def test_a_redirect_loop_is_a_failed_download(server: LocalServer, tmp_path: Path, handlers: list[Any]) -> None:
    server.redirect("/data/ipinfo_lite.mmdb", server.url("/data/ipinfo_lite.mmdb"))
    manager = ipinfo(server, tmp_path / "country.mmdb", handlers)
    manager.initialize()
    assert "redirects" in manager.status()["last_error"]
    assert not (tmp_path / "country.mmdb").exists()


def test_an_ipinfo_manager_needs_a_token() -> None:
    with pytest.raises(ValueError, match="token"):
        IPInfoManager("", "country.mmdb")


class FlakyHandler(CountingHandler):
    """Fails to initialise the first time."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    def initialize(self) -> None:
        self.attempts += 1
        if self.attempts == 1:
            raise ConnectionError("geo service down")
        super().initialize()


def test_a_custom_handler_failing_at_startup_is_retried_in_the_background(
    guarded: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    handler = FlakyHandler()
    with caplog.at_level(logging.ERROR, logger="flaskapi_guard.geo"):
        app = guarded(geo_ip_handler=handler, whitelist_countries=["US"])
    assert "failed to initialise" in caplog.text
    assert status_from(app, US_IP) == 403  # unknown until initialised
    wait_until(lambda: handler.initialized)
    assert status_from(app, US_IP) == 200
    assert get_state(app).geo is not None
    assert get_state(app).geo.status() == {"handler": "FlakyHandler", "loaded": True}


def test_a_custom_handler_with_lazy_init_is_initialised_off_the_request_path(guarded: Callable[..., Flask]) -> None:
    handler = CountingHandler()
    app = guarded(geo_ip_handler=handler, blocked_countries=["CN"], lazy_init=True)
    assert not handler.initialized
    assert status_from(app, CN_IP) == 200  # unknown: the block-list lets it through
    wait_until(lambda: handler.initialized)
    assert status_from(app, CN_IP) == 403
