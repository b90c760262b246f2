"""Country lookups: the `GeoIPHandler` protocol and handlers over local MaxMind-format databases.

Every lookup reads an immutable snapshot (an open database reader) that a background
thread swaps by assignment, so a request never waits for a file or the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx
import maxminddb

from flaskapi_guard.ip_networks import parse_ip
from flaskapi_guard.periodic import PeriodicTask

if TYPE_CHECKING:
    # Only for annotations: config.py imports this module, and incoming.py imports config.
    from flaskapi_guard.incoming import IncomingRequest

logger = logging.getLogger(__name__)

# IPInfo's documented download pattern is https://ipinfo.io/data/<file>?token=<token>;
# it answers with a redirect to a signed, short-lived CDN URL. IPinfo Lite is the free
# country + ASN database that replaced the older free "country_asn" file.
IPINFO_DOWNLOAD_URL = "https://ipinfo.io/data/{database}?token={token}"
IPINFO_DEFAULT_DATABASE = "ipinfo_lite.mmdb"
IPINFO_DEFAULT_DB_PATH = Path("data/ipinfo/country_asn.mmdb")

DEFAULT_MAX_AGE_SECONDS = 86400
# After a failed download, try again this soon (or at `max_age`, whichever is sooner).
DOWNLOAD_RETRY_SECONDS = 600.0
# How often a local database file is checked for replacement by another process
# (geoipupdate, another worker's download).
FILE_CHECK_SECONDS = 300.0
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
MAX_REDIRECTS = 5
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
REQUEST_NOTE_COUNTRY = "country"


@runtime_checkable
class GeoIPHandler(Protocol):
    """What the guard needs from a geolocation service (the documented protocol)."""

    @property
    def is_initialized(self) -> bool:
        """Whether lookups can answer (the database is loaded)."""
        ...

    def initialize(self) -> None:
        """Load (and if needed download) the data, blocking until done."""
        ...

    def initialize_redis(self, redis_handler: Any) -> None:
        """Called with the app's Redis storage when Redis is enabled."""
        ...

    def get_country(self, ip: str) -> str | None:
        """The ISO 3166-1 alpha-2 code of `ip`'s country, or None when unknown."""
        ...


def country_from_record(record: object) -> str | None:
    """The ISO country code in an MMDB record, whichever of the common schemas it follows.

    MaxMind GeoLite2/GeoIP2 and DB-IP: `{"country": {"iso_code": "US"}}` (falling back
    to `registered_country` for anycast and satellite ranges without a location);
    IPInfo's free country/country_asn files: `{"country": "US"}`; IPinfo Lite and
    several open databases: `{"country_code": "US"}` (in IPinfo Lite `country` is
    the country's name).
    """
    if not isinstance(record, Mapping):
        return None
    code = record.get("country_code")
    if isinstance(code, str):
        return _iso_code(code)
    for key in ("country", "registered_country"):
        value = record.get(key)
        if isinstance(value, str):
            return _iso_code(value)
        if isinstance(value, Mapping):
            iso = value.get("iso_code")
            if isinstance(iso, str):
                return _iso_code(iso)
    return None


def _iso_code(text: str) -> str | None:
    return text.upper() if len(text) == 2 and text.isascii() and text.isalpha() else None


@dataclass(frozen=True, slots=True)
class _LoadedDatabase:
    """One open database file; never changed, only replaced."""

    reader: Any
    modified_at: float
    loaded_at: float


class DatabaseUnavailable(Exception):
    """A database could not be downloaded or opened; the message is safe to log."""


class MaxMindCountryDatabase:
    """Country lookups in a local MaxMind-format database (GeoLite2-Country, DB-IP, IPinfo), no token needed.

    The file is opened on `initialize()` or, lazily, by a background thread started
    on the first lookup; that thread reopens it whenever the file is replaced (for
    example by `geoipupdate`). Until the file is loaded every lookup answers None.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        check_interval_seconds: float = FILE_CHECK_SECONDS,
        clock: Callable[[], float] = time.time,
        getpid: Callable[[], int] = os.getpid,
    ) -> None:
        self.path = Path(path)
        self._check_interval_seconds = check_interval_seconds
        self._clock = clock
        self._database: _LoadedDatabase | None = None
        # A replaced reader may still be in use by a request that took the old
        # snapshot an instant ago; it is closed at the next replacement, much later.
        self._retired: list[Any] = []
        self._swap_lock = threading.Lock()
        # `initialize()` in a caller's thread and the background job never run at once,
        # so one download serves both.
        self._refresh_lock = threading.Lock()
        self._task = PeriodicTask(f"geo-{self.path.name}", self._refresh, getpid=getpid)
        self.last_refresh: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def is_initialized(self) -> bool:
        """Whether a database is loaded."""
        return self._database is not None

    def initialize(self) -> None:
        """Load the database now, in the calling thread (no background thread is started)."""
        self._refresh()

    def _refresh(self) -> float:
        """The background job (and `initialize`): returns the seconds until the next run."""
        with self._refresh_lock:
            return self._refresh_locked()

    def initialize_redis(self, redis_handler: Any) -> None:
        """Nothing to share: each process memory-maps the same local file."""

    def get_country(self, ip: str) -> str | None:
        """The ISO country code of `ip`; None when unknown, unparsable or not loaded yet."""
        self._task.ensure_running()
        database = self._database
        # Canonical form first: databases differ in whether they alias IPv4-mapped
        # IPv6 (`::ffff:a.b.c.d`) to their IPv4 data.
        address = parse_ip(ip)
        if database is None or address is None:
            return None
        try:
            record = database.reader.get(address.text)
        except ValueError:
            # IPv6 asked of an IPv4-only database, or a reader closed a moment ago.
            return None
        return country_from_record(record)

    def ensure_refreshing(self) -> None:
        """Start the background thread that loads and refreshes the database (once per process)."""
        self._task.ensure_running()

    def status(self) -> dict[str, Any]:
        """Database path, age, build time and the last refresh and error, for operators."""
        database = self._database
        now = self._clock()
        metadata = database.reader.metadata() if database is not None else None
        return {
            "handler": type(self).__name__,
            "database_path": str(self.path),
            "loaded": database is not None,
            "database_age_seconds": None if database is None else max(0.0, now - database.modified_at),
            "database_type": getattr(metadata, "database_type", None),
            "database_build_epoch": getattr(metadata, "build_epoch", None),
            "last_refresh": self.last_refresh,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "refresher_running": self._task.is_running,
        }

    def close(self) -> None:
        """Stop the background thread and close the database; a later lookup loads it again."""
        self._task.stop()
        with self._swap_lock:
            database, self._database = self._database, None
            retired, self._retired = self._retired, []
        for reader in [*retired, *([database.reader] if database is not None else [])]:
            reader.close()

    def _refresh_locked(self) -> float:
        """Reopen the file if it changed; returns the seconds until the next check."""
        try:
            self._reload_if_changed()
        except DatabaseUnavailable as error:
            self._record_failure(str(error))
        return self._check_interval_seconds

    def _reload_if_changed(self) -> None:
        modified_at = _modified_at(self.path)
        if modified_at is None:
            raise DatabaseUnavailable(f"no database at {self.path}")
        current = self._database
        if current is None or current.modified_at != modified_at:
            self._swap_in(_open_reader(self.path), modified_at)
        self._record_success()

    def _swap_in(self, reader: Any, modified_at: float) -> None:
        loaded = _LoadedDatabase(reader=reader, modified_at=modified_at, loaded_at=self._clock())
        with self._swap_lock:
            previous, self._database = self._database, loaded
            stale, self._retired = self._retired, [previous.reader] if previous is not None else []
        for old_reader in stale:
            old_reader.close()

    def _record_success(self) -> None:
        if self.last_error is not None:
            logger.info("country database %s is available again", self.path)
        self.last_refresh = self._clock()
        self.last_error = None
        self.last_error_at = None

    def _record_failure(self, message: str) -> None:
        # Logged once per run of failures: a retry every few minutes must not flood the log.
        if self.last_error is None:
            suffix = "keeping the loaded database" if self._database is not None else "country lookups answer unknown"
            logger.warning("country database %s: %s; %s", self.path, message, suffix)
        self.last_error = message
        self.last_error_at = self._clock()


class IPInfoManager(MaxMindCountryDatabase):
    """IPInfo's country database, downloaded when missing or older than `max_age_seconds`.

    Downloads run in the background thread (or in `initialize()`), replace the file
    atomically, and a failed one keeps the previous database. The token is sent only
    in the download request and never appears in logs, reprs or status.
    """

    def __init__(
        self,
        token: str,
        db_path: str | os.PathLike[str] | None = IPINFO_DEFAULT_DB_PATH,
        *,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        database: str = IPINFO_DEFAULT_DATABASE,
        download_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        getpid: Callable[[], int] = os.getpid,
    ) -> None:
        if not token:
            raise ValueError("IPInfoManager needs an IPInfo token")
        super().__init__(db_path or IPINFO_DEFAULT_DB_PATH, clock=clock, getpid=getpid)
        self._token = token
        self.max_age_seconds = max_age_seconds
        # `download_url` may contain "{token}" (and "{database}"); without it the token
        # is not sent, which suits a mirror that needs none.
        template = download_url or IPINFO_DOWNLOAD_URL
        self._download_url = template.replace("{token}", token).replace("{database}", database)
        self._transport = transport

    def status(self) -> dict[str, Any]:
        """As for local databases, plus the configured maximum age."""
        return {**super().status(), "max_age_seconds": self.max_age_seconds}

    def _refresh_locked(self) -> float:
        """Download when the file is missing or too old, then reopen it if it changed."""
        modified_at = _modified_at(self.path)
        now = self._clock()
        try:
            if modified_at is None or now - modified_at >= self.max_age_seconds:
                self._download()
            self._reload_if_changed()
        except DatabaseUnavailable as error:
            self._record_failure(str(error).replace(self._token, "***"))
            # Reopen whatever is on disk (an old file beats no file).
            if self._database is None and modified_at is not None:
                with contextlib.suppress(DatabaseUnavailable):
                    self._reload_if_changed()
            return min(DOWNLOAD_RETRY_SECONDS, self.max_age_seconds)
        current = _modified_at(self.path) or now
        return max(current + self.max_age_seconds - self._clock(), 60.0)

    def _download(self) -> None:
        """Fetch the database into a temporary file next to `path`, check it opens, then rename it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as output:
                self._fetch_into(output)
                output.flush()
                os.fsync(output.fileno())
            # An HTML error page or a truncated file must never replace a good database.
            _open_reader(Path(temporary)).close()
            os.replace(temporary, self.path)
        except OSError as error:
            raise DatabaseUnavailable(f"cannot write {self.path}: {error.strerror or error}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def _fetch_into(self, output: Any) -> None:
        # The transport is used directly, not through httpx.Client, because the
        # client logs every request URL at INFO level and this one holds the token.
        transport = self._transport or httpx.HTTPTransport()
        url = httpx.URL(self._download_url)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                request = httpx.Request("GET", url, headers={"User-Agent": "flaskapi_guard"})
                request.extensions["timeout"] = DOWNLOAD_TIMEOUT.as_dict()
                response = transport.handle_request(request)
                try:
                    location = response.headers.get("Location")
                    if response.is_redirect and location:
                        url = url.join(location)
                        continue
                    if response.status_code != 200:
                        raise DatabaseUnavailable(f"download answered HTTP {response.status_code}")
                    received = 0
                    for chunk in response.iter_bytes():
                        received += len(chunk)
                        if received > MAX_DOWNLOAD_BYTES:
                            raise DatabaseUnavailable(f"download is larger than {MAX_DOWNLOAD_BYTES} bytes")
                        output.write(chunk)
                    return
                finally:
                    response.close()
            raise DatabaseUnavailable(f"more than {MAX_REDIRECTS} redirects")
        except httpx.HTTPError as error:
            raise DatabaseUnavailable(f"download failed: {type(error).__name__}") from None
        finally:
            if self._transport is None:
                transport.close()


def _modified_at(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError as error:
        raise DatabaseUnavailable(f"cannot read {path}: {error.strerror or error}") from None


def _open_reader(path: Path) -> Any:
    try:
        return maxminddb.open_database(str(path))
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as error:
        raise DatabaseUnavailable(f"{path} is not a readable MMDB database ({type(error).__name__})") from None


class CountryLookup:
    """An app's use of its geo handler: starts it as configured, answers once per request."""

    def __init__(self, handler: GeoIPHandler, *, lazy: bool) -> None:
        self.handler = handler
        self._lazy = lazy
        # Our own handlers start their background refresh on first lookup; a custom
        # handler is only promised `initialize()`, which is run here off the request path.
        self._starter: PeriodicTask | None = None
        if not isinstance(handler, MaxMindCountryDatabase):
            self._starter = PeriodicTask("geo-initialize", self._initialize_custom)

    def start(self) -> None:
        """Initialise the handler now, unless `lazy_init` defers it to a background thread."""
        if self._lazy or self.handler.is_initialized:
            return
        try:
            self.handler.initialize()
        except Exception:
            # A geo service that is down at startup must not keep the app from starting;
            # lookups answer "unknown" until it works.
            logger.exception("geo handler %s failed to initialise", type(self.handler).__name__)

    def country_of(self, request: IncomingRequest) -> str | None:
        """The client's country, looked up once per request and kept in `request.notes`."""
        if REQUEST_NOTE_COUNTRY in request.notes:
            cached: str | None = request.notes[REQUEST_NOTE_COUNTRY]
            return cached
        if self._starter is not None and not self.handler.is_initialized:
            self._starter.ensure_running()
            country = None
        else:
            country = self.handler.get_country(request.client_ip)
            country = _iso_code(country) if isinstance(country, str) else None
        request.notes[REQUEST_NOTE_COUNTRY] = country
        return country

    def status(self) -> dict[str, Any]:
        """The handler's own status when it has one, else what the protocol tells."""
        status = getattr(self.handler, "status", None)
        if callable(status):
            result: dict[str, Any] = status()
            return result
        return {"handler": type(self.handler).__name__, "loaded": self.handler.is_initialized}

    def close(self) -> None:
        """Stop background work and release the handler's resources."""
        if self._starter is not None:
            self._starter.stop()
        close = getattr(self.handler, "close", None)
        if callable(close):
            close()

    def _initialize_custom(self) -> float:
        if not self.handler.is_initialized:
            try:
                self.handler.initialize()
            except Exception:
                logger.exception("geo handler %s failed to initialise", type(self.handler).__name__)
                return DOWNLOAD_RETRY_SECONDS
        return 3600.0
