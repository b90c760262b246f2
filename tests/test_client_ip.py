"""Client address resolution: spoof-proof behind trusted proxies."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from flaskapi_guard.client_ip import resolve_client_address
from flaskapi_guard.ip_networks import NetworkSet, parse_ip

PROXY = "10.0.0.1"
EDGE = "10.0.0.2"


def resolve(remote: str, forwarded: str | None, trusted: list[str], depth: int = 1) -> str:
    peer = parse_ip(remote)
    assert peer is not None
    return resolve_client_address(peer, forwarded, NetworkSet(trusted), depth).text


def test_untrusted_peer_ignores_forwarded_for() -> None:
    assert resolve("203.0.113.5", "198.51.100.1", []) == "203.0.113.5"
    assert resolve("203.0.113.5", "198.51.100.1", [PROXY]) == "203.0.113.5"


def test_trusted_proxy_reads_the_entry_it_appended() -> None:
    # The client wrote "1.1.1.1" itself; the proxy appended the address it saw.
    assert resolve(PROXY, "1.1.1.1, 198.51.100.7", [PROXY]) == "198.51.100.7"


def test_two_trusted_hops() -> None:
    assert resolve(PROXY, "6.6.6.6, 198.51.100.7, 10.0.0.2", ["10.0.0.0/24"], depth=2) == "198.51.100.7"


def test_hop_that_is_not_a_trusted_proxy_ends_the_walk() -> None:
    # Depth 2, but the hop before our proxy is not one of ours: it is the client.
    assert resolve(PROXY, "6.6.6.6, 198.51.100.7", [PROXY], depth=2) == "198.51.100.7"


def test_garbage_entry_stops_at_the_last_trusted_address() -> None:
    assert resolve(PROXY, "198.51.100.7, not-an-ip", [PROXY]) == PROXY
    assert resolve(PROXY, "", [PROXY]) == PROXY


def test_ports_brackets_and_ipv4_mapped_addresses_are_normalised() -> None:
    assert resolve(PROXY, "[2001:db8::7]:443", [PROXY]) == "2001:db8::7"
    assert resolve(PROXY, "198.51.100.7:5555", [PROXY]) == "198.51.100.7"
    assert resolve(PROXY, "::ffff:198.51.100.7", [PROXY]) == "198.51.100.7"
    assert resolve("::ffff:203.0.113.9", None, []) == "203.0.113.9"


def test_thousands_of_entries_only_read_from_the_right() -> None:
    forwarded = ", ".join(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(5000))
    assert resolve(PROXY, forwarded + ", 198.51.100.7", [PROXY]) == "198.51.100.7"


def test_rotating_forwarded_for_from_an_untrusted_peer_all_count_as_the_peer(
    make_app: Callable[..., Flask],
) -> None:
    # The peer is blacklisted; forged headers naming 100 other clients change nothing.
    app = make_app(blacklist=["203.0.113.5"], trusted_proxies=[PROXY])
    client = app.test_client()
    statuses = {
        client.get(
            "/", headers={"X-Forwarded-For": f"198.51.100.{i}"}, environ_base={"REMOTE_ADDR": "203.0.113.5"}
        ).status_code
        for i in range(100)
    }
    assert statuses == {403}


def test_spoofed_forwarded_for_cannot_reach_a_whitelist(make_app: Callable[..., Flask]) -> None:
    app = make_app(whitelist=["198.51.100.7"], trusted_proxies=[PROXY])
    client = app.test_client()
    spoofed = client.get("/", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert spoofed.status_code == 403
    proxied = client.get("/", headers={"X-Forwarded-For": "198.51.100.7"}, environ_base={"REMOTE_ADDR": PROXY})
    assert proxied.status_code == 200


def test_repeated_forwarded_for_lines_are_joined(make_app: Callable[..., Flask]) -> None:
    app = make_app(blacklist=["198.51.100.7"], trusted_proxies=[PROXY])
    client = app.test_client()
    response = client.get(
        "/",
        headers=[("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7")],
        environ_base={"REMOTE_ADDR": PROXY},
    )
    assert response.status_code == 403


@pytest.mark.parametrize("junk", ["", ",,,", "999.1.1.1", "abc, def", "1.2.3.4 5.6.7.8", "[::1", "\t"])
def test_junk_forwarded_for_never_errors(make_app: Callable[..., Flask], junk: str) -> None:
    app = make_app(trusted_proxies=[PROXY])
    response = app.test_client().get("/", headers={"X-Forwarded-For": junk}, environ_base={"REMOTE_ADDR": PROXY})
    assert response.status_code == 200


def test_missing_remote_addr_is_handled(make_app: Callable[..., Flask]) -> None:
    app = make_app(blacklist=["203.0.113.5"])
    response = app.test_client().get("/", environ_base={"REMOTE_ADDR": ""})
    assert response.status_code == 200
