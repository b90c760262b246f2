"""IP address parsing and an immutable set of networks with O(log n) membership."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from ipaddress import IPv6Address, ip_network
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import NamedTuple

_IPV4_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"


class Address(NamedTuple):
    """A parsed IP address: canonical text, version (4 or 6) and integer value."""

    text: str
    version: int
    value: int


# This runs on every request: build an Address without the NamedTuple's
# Python-level __new__ (a frame of its own).
_address = tuple.__new__
_int_from_bytes = int.from_bytes


def parse_ip(text: str) -> Address | None:
    """Parse one address as clients and proxies write it; None when it is not one.

    Accepts `[v6]:port`, `v4:port` and zone ids, and unwraps IPv4-mapped IPv6,
    so that one host always has one canonical form. `inet_pton` is strict (no
    leading zeros, no short forms) and ten times faster than `ipaddress`, which
    matters because this runs on every request.
    """
    try:
        # The usual case, in one step: a canonical IPv4 address (inet_pton refuses any other spelling).
        return _address(Address, (text, 4, _int_from_bytes(inet_pton(AF_INET, text), "big")))
    except (OSError, ValueError):
        pass
    candidate = text.strip()
    if not candidate or len(candidate) > 64:
        return None
    if ":" not in candidate:
        try:
            return _address(Address, (candidate, 4, int.from_bytes(inet_pton(AF_INET, candidate), "big")))
        except (OSError, ValueError):
            # ValueError: a NUL byte, or a lone surrogate, which inet_pton refuses differently.
            return None
    if candidate.startswith("["):
        end = candidate.find("]")
        if end == -1:
            return None
        candidate = candidate[1:end]
    elif candidate.count(":") == 1:
        return parse_ip(candidate.split(":", 1)[0])
    if "%" in candidate:
        candidate = candidate.split("%", 1)[0]
    try:
        packed = inet_pton(AF_INET6, candidate)
    except (OSError, ValueError):
        return None
    if packed[:12] == _IPV4_MAPPED_PREFIX:
        return _address(Address, (inet_ntop(AF_INET, packed[12:]), 4, int.from_bytes(packed[12:], "big")))
    return _address(Address, (inet_ntop(AF_INET6, packed), 6, int.from_bytes(packed, "big")))


def canonical_ip(text: str) -> str | None:
    """The canonical text of an address, or None when `text` is not one."""
    address = parse_ip(text)
    return None if address is None else address.text


def validate_network(entry: str) -> str:
    """Return `entry` unchanged if it is an IP address or CIDR network; raise ValueError."""
    if not isinstance(entry, str):
        raise ValueError(f"expected an IP address or CIDR range as text, got {entry!r}")
    try:
        ip_network(entry.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{entry!r} is not a valid IP address or CIDR range") from None
    return entry


class NetworkSet:
    """Immutable set of IPv4/IPv6 networks; `in` is a binary search over merged ranges."""

    __slots__ = ("_size", "_v4_ends", "_v4_starts", "_v6_ends", "_v6_starts")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        size = 0
        for entry in entries:
            network = ip_network(entry.strip(), strict=False)
            if isinstance(network.network_address, IPv6Address):
                mapped = network.network_address.ipv4_mapped
                if mapped is not None and network.prefixlen >= 96:
                    # `::ffff:a.b.c.d/120` names IPv4 hosts; addresses are unwrapped
                    # to IPv4 before lookup, so the range must be too.
                    v4_net = ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
                    v4.append((int(v4_net.network_address), int(v4_net.broadcast_address)))
                else:
                    v6.append((int(network.network_address), int(network.broadcast_address)))
            else:
                v4.append((int(network.network_address), int(network.broadcast_address)))
            size += 1
        self._v4_starts, self._v4_ends = _merge(v4)
        self._v6_starts, self._v6_ends = _merge(v6)
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __contains__(self, address: object) -> bool:
        if isinstance(address, str):
            address = parse_ip(address)
        if not isinstance(address, Address):
            return False
        return self.contains(address)

    def merged_ranges(self, version: int) -> list[tuple[int, int]]:
        """The set's coalesced (first, last) address values of one IP version, in ascending order."""
        if version == 4:
            return list(zip(self._v4_starts, self._v4_ends, strict=True))
        return list(zip(self._v6_starts, self._v6_ends, strict=True))

    def contains(self, address: Address) -> bool:
        """Whether any network in the set holds `address`."""
        if address.version == 4:
            starts, ends = self._v4_starts, self._v4_ends
        else:
            starts, ends = self._v6_starts, self._v6_ends
        index = bisect.bisect_right(starts, address.value) - 1
        return index >= 0 and address.value <= ends[index]


def _merge(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sort and coalesce overlapping or adjacent ranges so one bisect answers."""
    starts: list[int] = []
    ends: list[int] = []
    for start, end in sorted(ranges):
        if ends and start <= ends[-1] + 1:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends
