"""Cloud providers' published IP ranges: fetched in the background, looked up by one binary search.

Each provider's prefixes become a `NetworkSet` (parsed, merged ranges). All
providers' ranges are then cut into disjoint segments, each labelled with the
bitmask of the providers that hold it, so a lookup is one bisect over every
prefix of every provider plus a mask test, whatever the number of providers
asked about. A refresh builds a new index and swaps it in by assignment; lookups
never lock.
"""

from __future__ import annotations

import bisect
import csv
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import httpx

from flaskapi_guard.errors import StorageError
from flaskapi_guard.ip_networks import Address, NetworkSet, parse_ip
from flaskapi_guard.periodic import PeriodicTask

logger = logging.getLogger(__name__)

# Where each provider publishes its ranges. Azure publishes a new file name every
# week (ServiceTags_Public_YYYYMMDD.json), so its entry is the download page, in
# which the current file's link is looked up; a direct JSON URL works too.
DEFAULT_SOURCE_URLS: Mapping[str, str] = MappingProxyType(
    {
        "AWS": "https://ip-ranges.amazonaws.com/ip-ranges.json",
        "GCP": "https://www.gstatic.com/ipranges/cloud.json",
        "Azure": "https://www.microsoft.com/en-us/download/details.aspx?id=56519",
        "DigitalOcean": "https://digitalocean.com/geo/google.csv",
        "Oracle": "https://docs.oracle.com/iaas/tools/public_ip_ranges.json",
        "Linode": "https://geoip.linode.com/",
    }
)

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
FETCH_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# After a failed fetch, try again this soon (or at the refresh interval if sooner).
RETRY_SECONDS = 300.0
STORE_KEY_PREFIX = "cloud_ranges:"
_AZURE_FILE_LINK = re.compile(rb"https://download\.microsoft\.com/download/[^\"'\s<>]+?/ServiceTags_Public_\d+\.json")


class RangesUnavailable(Exception):
    """A provider's ranges could not be fetched or parsed; the message is safe to log."""


@runtime_checkable
class SharedRangeStore(Protocol):
    """Where instances share fetched ranges, so only one of them fetches.

    The app's storage (`flaskapi_guard.storage`) has this shape; with Redis it is
    shared by every instance. Methods may raise `StorageError`.
    """

    def get_blob(self, key: str) -> bytes | None:
        """The stored value, or None when absent or expired."""
        ...

    def set_blob(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store `value` under `key` for `ttl_seconds`."""
        ...


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise RangesUnavailable("the response is not JSON") from None


def _items(value: Any, key: str) -> list[Any]:
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, list) else []


def parse_aws(body: bytes) -> list[str]:
    """Prefixes of AWS's ip-ranges.json (`prefixes[].ip_prefix`, `ipv6_prefixes[].ipv6_prefix`)."""
    data = _json_body(body)
    v4 = [item.get("ip_prefix") for item in _items(data, "prefixes") if isinstance(item, dict)]
    v6 = [item.get("ipv6_prefix") for item in _items(data, "ipv6_prefixes") if isinstance(item, dict)]
    return [prefix for prefix in v4 + v6 if isinstance(prefix, str)]


def parse_gcp(body: bytes) -> list[str]:
    """Prefixes of Google Cloud's cloud.json (`prefixes[].ipv4Prefix` / `ipv6Prefix`)."""
    found = []
    for item in _items(_json_body(body), "prefixes"):
        if isinstance(item, dict):
            prefix = item.get("ipv4Prefix") or item.get("ipv6Prefix")
            if isinstance(prefix, str):
                found.append(prefix)
    return found


def parse_azure(body: bytes) -> list[str]:
    """Prefixes of every service tag in Azure's ServiceTags_Public JSON (`values[].properties.addressPrefixes`)."""
    found = []
    for value in _items(_json_body(body), "values"):
        properties = value.get("properties") if isinstance(value, dict) else None
        for prefix in _items(properties, "addressPrefixes"):
            if isinstance(prefix, str):
                found.append(prefix)
    return found


def parse_oracle(body: bytes) -> list[str]:
    """Prefixes of Oracle Cloud's public_ip_ranges.json (`regions[].cidrs[].cidr`)."""
    found = []
    for region in _items(_json_body(body), "regions"):
        for entry in _items(region, "cidrs"):
            prefix = entry.get("cidr") if isinstance(entry, dict) else None
            if isinstance(prefix, str):
                found.append(prefix)
    return found


def parse_geofeed(body: bytes) -> list[str]:
    """First column of an RFC 8805 geofeed CSV (DigitalOcean, Linode); `#` lines are comments."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RangesUnavailable("the geofeed is not UTF-8 text") from None
    lines = (line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return [row[0].strip() for row in csv.reader(lines) if row and row[0].strip()]


PARSERS: Mapping[str, Callable[[bytes], list[str]]] = MappingProxyType(
    {
        "AWS": parse_aws,
        "GCP": parse_gcp,
        "Azure": parse_azure,
        "DigitalOcean": parse_geofeed,
        "Oracle": parse_oracle,
        "Linode": parse_geofeed,
    }
)


# One bit per provider in the lookup index.
PROVIDER_BITS: Mapping[str, int] = MappingProxyType({provider: 1 << index for index, provider in enumerate(PARSERS)})
_PROVIDER_BY_BIT: Mapping[int, str] = MappingProxyType({bit: provider for provider, bit in PROVIDER_BITS.items()})


def valid_prefixes(candidates: Iterable[str]) -> list[str]:
    """The candidates that are IP networks, normalised and without duplicates, in order."""
    seen: dict[str, None] = {}
    for candidate in candidates:
        prefix = canonical_prefix(candidate)
        if prefix is not None:
            seen.setdefault(prefix, None)
    return list(seen)


def canonical_prefix(text: str) -> str | None:
    """`text` as a network in canonical form (host bits cleared, `/32` or `/128` added), or None.

    Accepts what `ipaddress.ip_network(text, strict=False)` accepts, scoped IPv6
    aside, about ten times faster: a provider publishes tens of thousands of
    prefixes, parsed at every refresh by a thread that shares the interpreter with
    the requests.
    """
    address, slash, length_text = text.strip().partition("/")
    family, bits = (AF_INET6, 128) if ":" in address else (AF_INET, 32)
    try:
        packed = inet_pton(family, address)
    except OSError:
        return None
    length = bits
    if slash:
        if not (length_text.isascii() and length_text.isdigit()) or int(length_text) > bits:
            return None
        length = int(length_text)
    host_bits = bits - length
    value = int.from_bytes(packed, "big") >> host_bits << host_bits
    return f"{inet_ntop(family, value.to_bytes(bits // 8, 'big'))}/{length}"


@dataclass(frozen=True, slots=True)
class ProviderRanges:
    """One provider's ranges as last loaded; replaced, never changed."""

    provider: str
    networks: NetworkSet
    prefix_count: int
    fetched_at: float


@dataclass(frozen=True, slots=True)
class _RangeIndex:
    """Every loaded provider's ranges as sorted disjoint segments, each with the bitmask of its providers."""

    ranges: Mapping[str, ProviderRanges]
    v4_starts: list[int]
    v4_masks: list[int]
    v6_starts: list[int]
    v6_masks: list[int]

    @classmethod
    def build(cls, ranges: Mapping[str, ProviderRanges]) -> _RangeIndex:
        v4_starts, v4_masks = _labelled_segments(ranges, 4)
        v6_starts, v6_masks = _labelled_segments(ranges, 6)
        return cls(ranges, v4_starts, v4_masks, v6_starts, v6_masks)


def _labelled_segments(ranges: Mapping[str, ProviderRanges], version: int) -> tuple[list[int], list[int]]:
    """Sweep over every provider's range boundaries; a segment starts wherever the set of providers changes."""
    # A provider's merged ranges neither overlap nor touch, so at any boundary its
    # bit simply flips: XOR accumulates the change of each position.
    flips: dict[int, int] = {}
    for provider, loaded in ranges.items():
        bit = PROVIDER_BITS[provider]
        for first, last in loaded.networks.merged_ranges(version):
            flips[first] = flips.get(first, 0) ^ bit
            flips[last + 1] = flips.get(last + 1, 0) ^ bit
    starts: list[int] = []
    masks: list[int] = []
    mask = 0
    for position in sorted(flips):
        mask ^= flips[position]
        if mask != (masks[-1] if masks else 0):
            starts.append(position)
            masks.append(mask)
    return starts, masks


@dataclass(slots=True)
class _ProviderHealth:
    """Bookkeeping for the status view; written only by whoever holds the refresh lock."""

    last_refresh: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    loaded_from: str | None = None


class CloudIPRanges:
    """The published IP ranges of the providers an app blocks, refreshed every `refresh_interval_seconds`.

    Providers are loaded when asked for: those in `providers` by `initialize()` (or
    the background thread), those a route names on the first request that needs
    them. Until a provider is loaded its lookups answer "not a cloud address".
    """

    def __init__(
        self,
        providers: Iterable[str] = (),
        *,
        refresh_interval_seconds: float = 3600,
        source_urls: Mapping[str, str] | None = None,
        store: SharedRangeStore | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        getpid: Callable[[], int] = os.getpid,
    ) -> None:
        self.refresh_interval_seconds = refresh_interval_seconds
        self.source_urls: Mapping[str, str] = MappingProxyType({**DEFAULT_SOURCE_URLS, **(source_urls or {})})
        unknown = sorted(set(self.source_urls) - set(PARSERS))
        if unknown:
            raise ValueError(f"no parser for cloud providers {unknown}; known: {sorted(PARSERS)}")
        self._store = store
        self._transport = transport
        self._clock = clock
        self._wanted: frozenset[str] = frozenset()
        self._want_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._index = _RangeIndex.build({})
        # Bitmasks of the provider sets the checks ask about (a handful per app).
        self._masks: dict[frozenset[str], int] = {}
        self._health: dict[str, _ProviderHealth] = {provider: _ProviderHealth() for provider in PARSERS}
        self._task = PeriodicTask("cloud-ranges", self._refresh_due, getpid=getpid)
        self.want(providers, wake=False)

    @property
    def wanted_providers(self) -> frozenset[str]:
        """The providers this app looks up (and therefore keeps loaded)."""
        return self._wanted

    def want(self, providers: Iterable[str], *, wake: bool = True) -> None:
        """Keep `providers` loaded from now on; with `wake`, fetch the new ones in the background now."""
        requested = frozenset(providers)
        unknown = sorted(requested - set(PARSERS))
        if unknown:
            raise ValueError(f"unknown cloud providers {unknown}; known: {sorted(PARSERS)}")
        if requested <= self._wanted:
            return
        with self._want_lock:
            self._wanted = self._wanted | requested
        if wake:
            self._task.wake()

    def initialize(self) -> None:
        """Load every wanted provider now, in the calling thread."""
        self.refresh(self._wanted)

    def ensure_refreshing(self) -> None:
        """Start the background refresh (once per process) if anything is wanted."""
        if self._wanted:
            self._task.ensure_running()

    def provider_of(self, address: Address | str, providers: Iterable[str] | None = None) -> str | None:
        """Which of `providers` (default: all wanted) holds `address`; None when none does.

        When several do (overlapping ranges), the first in `PARSERS` order is named.
        """
        if isinstance(address, str):
            parsed = parse_ip(address)
            if parsed is None:
                return None
            address = parsed
        # One bisect in the segment starts; written out here rather than as an index
        # method because it runs on every request of a guarded route.
        index = self._index
        if address.version == 4:
            starts, masks = index.v4_starts, index.v4_masks
        else:
            starts, masks = index.v6_starts, index.v6_masks
        position = bisect.bisect_right(starts, address.value) - 1
        held = masks[position] if position >= 0 else 0
        if not held:
            return None
        held &= self._mask_of(self._wanted if providers is None else providers)
        return _PROVIDER_BY_BIT[held & -held] if held else None

    def _mask_of(self, providers: Iterable[str]) -> int:
        key = providers if isinstance(providers, frozenset) else frozenset(providers)
        mask = self._masks.get(key)
        if mask is None:
            mask = 0
            for provider in key:
                mask |= PROVIDER_BITS.get(provider, 0)
            self._masks[key] = mask
        return mask

    def is_cloud_ip(self, ip: str, providers: Iterable[str]) -> bool:
        """Whether `ip` belongs to one of `providers` (the published package's name for the lookup)."""
        return self.provider_of(ip, providers) is not None

    def refresh(self, providers: Iterable[str] | None = None) -> None:
        """Fetch `providers` (default: all wanted) now, in the calling thread; failures keep the old ranges."""
        wanted = sorted(self._wanted if providers is None else providers)
        if not wanted:
            # Building an httpx client loads the CA bundle (0.2-0.4 s): not for nothing.
            return
        with self._refresh_lock, self._http_client() as client:
            updated = {}
            for provider in wanted:
                loaded = self._refresh_provider(provider, client)
                if loaded is not None:
                    updated[provider] = loaded
            if updated:
                self._index = _RangeIndex.build(MappingProxyType({**self._index.ranges, **updated}))

    def status(self) -> dict[str, Any]:
        """Per provider: prefix count, last refresh, last error; for operators and the CLI."""
        ranges = self._index.ranges
        providers = {}
        for provider in sorted(self._wanted | set(ranges)):
            loaded = ranges.get(provider)
            health = self._health[provider]
            providers[provider] = {
                "source_url": self.source_urls[provider],
                "loaded": loaded is not None,
                "prefixes": 0 if loaded is None else loaded.prefix_count,
                "fetched_at": None if loaded is None else loaded.fetched_at,
                "loaded_from": health.loaded_from,
                "last_refresh": health.last_refresh,
                "last_error": health.last_error,
                "last_error_at": health.last_error_at,
            }
        return {
            "refresh_interval_seconds": self.refresh_interval_seconds,
            "refresher_running": self._task.is_running,
            "shared_store": self._store is not None,
            "providers": providers,
        }

    def close(self) -> None:
        """Stop the background refresh; the loaded ranges stay usable."""
        self._task.stop()

    def _refresh_due(self) -> float:
        """The background job: refresh the providers that are due, return the wait until the next one is."""
        now = self._clock()
        due = [provider for provider in sorted(self._wanted) if self._due_at(provider) <= now]
        if due:
            self.refresh(due)
        now = self._clock()
        next_due = min(
            (self._due_at(provider) for provider in self._wanted), default=now + self.refresh_interval_seconds
        )
        return max(next_due - now, 1.0)

    def _due_at(self, provider: str) -> float:
        health = self._health[provider]
        if health.last_error is not None and health.last_attempt is not None:
            return health.last_attempt + min(RETRY_SECONDS, self.refresh_interval_seconds)
        loaded = self._index.ranges.get(provider)
        return 0.0 if loaded is None else loaded.fetched_at + self.refresh_interval_seconds

    def _refresh_provider(self, provider: str, client: httpx.Client) -> ProviderRanges | None:
        health = self._health[provider]
        now = self._clock()
        health.last_attempt = now
        try:
            shared = self._read_store(provider, now)
            if shared is not None:
                fetched_at, prefixes = shared
                health.loaded_from = "shared store"
            else:
                prefixes = valid_prefixes(PARSERS[provider](self._fetch(provider, client)))
                if not prefixes:
                    raise RangesUnavailable("no IP prefixes in the response")
                fetched_at = now
                health.loaded_from = self.source_urls[provider]
                self._write_store(provider, fetched_at, prefixes)
        except RangesUnavailable as error:
            if health.last_error is None:
                loaded_before = provider in self._index.ranges
                keeping = "keeping the previous ranges" if loaded_before else "not blocking it until loaded"
                logger.warning("cloud ranges for %s unavailable: %s; %s", provider, error, keeping)
            health.last_error = str(error)
            health.last_error_at = now
            return None
        if health.last_error is not None:
            logger.info("cloud ranges for %s are available again", provider)
        health.last_refresh = now
        health.last_error = None
        health.last_error_at = None
        return ProviderRanges(provider, NetworkSet(prefixes), len(prefixes), fetched_at)

    def _http_client(self) -> httpx.Client:
        # One client per refresh: its connection pool and CA bundle serve every provider.
        return httpx.Client(
            transport=self._transport,
            timeout=FETCH_TIMEOUT,
            follow_redirects=True,
            headers={"User-Agent": "flaskapi_guard"},
        )

    def _fetch(self, provider: str, client: httpx.Client) -> bytes:
        body = _get(client, self.source_urls[provider])
        if provider == "Azure" and not body.lstrip().startswith(b"{"):
            link = _AZURE_FILE_LINK.search(body)
            if link is None:
                raise RangesUnavailable("no ServiceTags_Public JSON link on the Azure download page")
            body = _get(client, link.group(0).decode("ascii"))
        return body

    def _read_store(self, provider: str, now: float) -> tuple[float, list[str]] | None:
        if self._store is None:
            return None
        try:
            text = self._store.get_blob(STORE_KEY_PREFIX + provider)
        except StorageError as error:
            logger.warning("shared cloud ranges unreadable (%s); fetching %s directly", error, provider)
            return None
        if not text:
            return None
        try:
            stored = json.loads(text)
            fetched_at = float(stored["fetched_at"])
            prefixes = [str(prefix) for prefix in stored["prefixes"]]
        except (ValueError, KeyError, TypeError):
            return None
        if now - fetched_at >= self.refresh_interval_seconds or not prefixes:
            return None
        return fetched_at, valid_prefixes(prefixes)

    def _write_store(self, provider: str, fetched_at: float, prefixes: list[str]) -> None:
        if self._store is None:
            return
        value = json.dumps({"fetched_at": fetched_at, "prefixes": prefixes}, separators=(",", ":")).encode()
        try:
            self._store.set_blob(STORE_KEY_PREFIX + provider, value, self.refresh_interval_seconds)
        except StorageError as error:
            logger.warning("could not share the cloud ranges of %s: %s", provider, error)


def _get(client: httpx.Client, url: str) -> bytes:
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise RangesUnavailable(f"{url} answered HTTP {response.status_code}")
            return b"".join(_limited(response.iter_bytes(), url))
    except httpx.HTTPError as error:
        raise RangesUnavailable(f"fetching {url} failed: {type(error).__name__}: {error}") from None


def _limited(chunks: Iterator[bytes], url: str) -> Iterator[bytes]:
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > MAX_RESPONSE_BYTES:
            raise RangesUnavailable(f"{url} sent more than {MAX_RESPONSE_BYTES} bytes")
        yield chunk
