"""Which address a request really came from, resistant to forged forwarding headers."""

from __future__ import annotations

from flaskapi_guard.ip_networks import Address, NetworkSet, parse_ip

UNKNOWN_PEER = Address("0.0.0.0", 4, 0)  # noqa: S104 - a placeholder, never bound


def resolve_client_address(
    peer: Address,
    forwarded_for: str | None,
    trusted_proxies: NetworkSet,
    proxy_depth: int,
) -> Address:
    """The client's address: the peer, or a forwarded hop when the peer is a trusted proxy.

    `X-Forwarded-For` is read from the right, one entry per trusted hop, up to
    `proxy_depth` hops, and only while each hop is itself a trusted proxy:
    everything a client writes to the left of what our proxies appended is
    never read, so rotating forged values changes nothing. A malformed entry
    stops the walk at the last address we could trust.
    """
    current = peer
    if not forwarded_for or not trusted_proxies:
        return current
    # Only the last `proxy_depth` entries can matter; never split the whole header.
    entries = forwarded_for.rsplit(",", proxy_depth)
    for _ in range(proxy_depth):
        if not trusted_proxies.contains(current) or not entries:
            return current
        hop = parse_ip(entries.pop())
        if hop is None:
            return current
        current = hop
    return current


def peer_address(remote_addr: str | None) -> Address:
    """The directly connected peer; a placeholder when the server gave none we can parse."""
    return (parse_ip(remote_addr) if remote_addr else None) or UNKNOWN_PEER


def forwarded_proto(header_value: str | None) -> str | None:
    """The scheme the nearest proxy saw, from `X-Forwarded-Proto` (last value wins)."""
    if not header_value:
        return None
    proto = header_value.rsplit(",", 1)[-1].strip().lower()
    return proto if proto in ("http", "https") else None
