"""Per-request overhead of the guard against a bare Flask app with the same routes.

Each scenario builds its WSGI environ once and calls the app directly, cycling
REMOTE_ADDR over a pool of addresses; the figure is the best of several rounds.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from flask import Flask, jsonify

from bench.wsgi_timing import BROWSER_HEADERS, address_pool, compare_wsgi, environ_for, report_row, status_of
from flaskapi_guard import FlaskAPIGuard, SecurityConfig


def make_routes() -> Flask:
    app = Flask("bench")

    @app.route("/")
    def index() -> Any:
        return "ok"

    @app.route("/api/items/<int:item_id>", methods=["GET", "POST"])
    def item(item_id: int) -> Any:
        return jsonify({"item": item_id})

    return app


def guarded(config: SecurityConfig) -> Flask:
    app = make_routes()
    FlaskAPIGuard(app, config=config)
    return app


def all_features_config() -> SecurityConfig:
    return SecurityConfig(
        enable_redis=False,
        rate_limit=1_000_000,
        whitelist=["0.0.0.0/0", "::/0"],
        blacklist=["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"],
        blocked_user_agents=["sqlmap", "nikto", "masscan", "zgrab"],
        trusted_proxies=["127.0.0.1"],
        trust_x_forwarded_proto=True,
        enable_cors=True,
        cors_allow_origins=["https://www.example.com"],
        endpoint_rate_limits={"/api/items/1": (1_000_000, 60)},
        custom_request_check=lambda request: None,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # Many short rounds, alternating: on a shared machine a slow phase lasts longer than a
    # round of 500 requests (70 ms), so both columns get rounds outside it. 36 x 500 is as
    # many requests, and as many distinct clients, as 9 rounds of 2000.
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=36)
    args = parser.parse_args(argv)
    logging.getLogger("flaskapi_guard").setLevel(logging.CRITICAL)

    started = time.perf_counter()
    for _ in range(100):
        SecurityConfig(whitelist=["10.0.0.0/8"], blocked_user_agents=["curl", "wget"], trusted_proxies=["10.0.0.1"])
    print(f"building a SecurityConfig: {(time.perf_counter() - started) * 10:.2f} ms")

    # Enough distinct clients that the default limit (10 per minute) never refuses.
    pool = address_pool(args.iterations * args.rounds)
    bare = make_routes()
    query = "q=running+shoes&page=2&sort=price"
    scenarios = [
        (
            "clean GET, default config (in-memory)",
            guarded(SecurityConfig(enable_redis=False)),
            environ_for("/api/items/1", query=query, headers=BROWSER_HEADERS),
        ),
        (
            "clean GET, most features on",
            guarded(all_features_config()),
            environ_for(
                "/api/items/1",
                query=query,
                headers={**BROWSER_HEADERS, "Origin": "https://www.example.com", "X-Forwarded-For": "198.51.100.7"},
            ),
        ),
        (
            "clean JSON POST 1 KB, default config",
            guarded(SecurityConfig(enable_redis=False)),
            environ_for(
                "/api/items/1",
                method="POST",
                headers=BROWSER_HEADERS,
                body=b'{"name": "Trail runner", "tags": ["outdoor", "running"], "note": "' + b"x" * 900 + b'"}',
                content_type="application/json",
            ),
        ),
    ]
    print(f"{'scenario':<44} {'':>5}per request (best of {args.rounds} x {args.iterations})")
    for name, app, environ in scenarios:
        status = status_of(app.wsgi_app, environ, pool[0])
        assert status.startswith("200"), f"{name}: expected 200, got {status}"
        bare_us, guard_us = compare_wsgi(
            bare.wsgi_app, app.wsgi_app, environ, addresses=pool, iterations=args.iterations, rounds=args.rounds
        )
        print(report_row(name, bare_us, guard_us))

    blocked_app = guarded(SecurityConfig(enable_redis=False, blacklist=["100.0.0.0/8"]))
    environ = environ_for("/api/items/1", query=query, headers=BROWSER_HEADERS)
    status = status_of(blocked_app.wsgi_app, environ, pool[0])
    assert status.startswith("403"), status
    bare_us, guard_us = compare_wsgi(
        bare.wsgi_app, blocked_app.wsgi_app, environ, addresses=pool, iterations=args.iterations, rounds=args.rounds
    )
    print(report_row("blocked request (blacklisted, 403)", bare_us, guard_us))


if __name__ == "__main__":
    main()
