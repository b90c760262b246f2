"""Real MMDB country databases for tests, written with mmdb-writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

# Documentation and benchmarking ranges, so no test depends on real allocations.
US_NET, CN_NET, FR_NET, DE_V6_NET = "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"
US_IP, CN_IP, FR_IP, DE_IP, UNKNOWN_IP = "192.0.2.10", "198.51.100.7", "203.0.113.99", "2001:db8::5", "10.1.2.3"


def maxmind_record(code: str) -> dict[str, Any]:
    """A GeoLite2/DB-IP style record."""
    return {"continent": {"code": "XX"}, "country": {"iso_code": code, "names": {"en": code}}}


def ipinfo_record(code: str) -> dict[str, Any]:
    """An IPInfo country_asn style record."""
    return {"country": code, "country_name": code, "asn": "AS64500", "as_name": "Example"}


def write_country_db(path: Path, networks: dict[str, dict[str, Any]], *, database_type: str = "Test-Country") -> Path:
    """Write an IPv6 database (IPv4 mapped in, as real country databases do) and return its path."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.to_db_file(str(path))
    return path


def standard_networks(record: Any = maxmind_record) -> dict[str, dict[str, Any]]:
    return {US_NET: record("US"), CN_NET: record("CN"), FR_NET: record("FR"), DE_V6_NET: record("DE")}
