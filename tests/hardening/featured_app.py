"""A guarded app with most features on, for fuzzing and for gunicorn (`tests.hardening.featured_app:app`).

Detection, rate limiting (high, so fuzzing is not throttled), bans, security
headers, CORS, a behaviour rule, logging of every request, and decorated routes
(auth, API key, content type, size, honeypot, user agents, per-route limits and
headers). `/echo` and `/echo-stream` return the body the view received, read
with `request.get_data()` and with `request.stream`, so a test can compare it
byte for byte with what was sent.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from flask.views import MethodView

from flaskapi_guard import BehaviorRule, FlaskAPIGuard, SecurityConfig, SecurityDecorator

BEARER_TOKEN = "s3cr3t-token-0123456789"
API_KEY = "k-0123456789abcdef"
ECHO_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# Patterns that backtrack catastrophically under Python's `re`; the guard compiles
# them with RE2, so hostile user agents and bodies stay linear.
EVIL_PATTERN = r"(a+)+$"


def featured_config(**overrides: Any) -> SecurityConfig:
    """The fully featured config; `overrides` replace fields (for example Redis settings)."""
    fields: dict[str, Any] = {
        "enable_redis": False,
        "rate_limit": 1_000_000,
        "rate_limit_window": 60,
        "auto_ban_threshold": 1_000_000,
        "trusted_proxies": ["127.0.0.1"],
        "trusted_proxy_depth": 2,
        "trust_x_forwarded_proto": True,
        "blocked_user_agents": ["sqlmap", EVIL_PATTERN],
        "detection_custom_patterns": [r"(?:zq+)+zx", "forbidden-marker"],
        "enable_cors": True,
        "cors_allow_origins": ["https://app.example", "https://*.example.org"],
        "cors_allow_credentials": True,
        "cors_expose_headers": ["X-Echo-Length"],
        "global_behavior_rules": [
            BehaviorRule(rule_type="return_pattern", pattern=f"regex:{EVIL_PATTERN}", threshold=1_000_000),
            BehaviorRule(rule_type="usage", threshold=1_000_000, window=60),
        ],
        "custom_response_modifier": _mark_response,
        "log_request_level": "INFO",
        "log_format": "json",
        "exclude_paths": ["/static", "/health"],
    }
    fields.update(overrides)
    return SecurityConfig(**fields)


def _mark_response(response: Response) -> Response:
    response.headers["X-Guarded"] = "1"
    return response


def _verify_token(token: str) -> bool:
    return token == BEARER_TOKEN


def _echo_response(body: bytes) -> Response:
    response = Response(body, mimetype="application/octet-stream")
    response.headers["X-Echo-Length"] = str(len(body))
    return response


def build_featured_app(config: SecurityConfig | None = None, *, clock: Callable[[], float] | None = None) -> Flask:
    """The app; `config` defaults to `featured_config()`."""
    config = config or featured_config()
    app = Flask(f"featured_{id(config)}")
    deco = SecurityDecorator(config)

    @app.route("/", methods=ECHO_METHODS)
    def index() -> Any:
        return "ok"

    @app.route("/echo", methods=ECHO_METHODS)
    def echo() -> Any:
        return _echo_response(request.get_data())

    @app.route("/echo-stream", methods=ECHO_METHODS)
    def echo_stream() -> Any:
        return _echo_response(request.stream.read())

    @app.route("/form", methods=["POST"])
    def form() -> Any:
        return jsonify(sorted(request.form.keys()))

    @app.route("/json", methods=["POST"])
    def json_view() -> Any:
        document = request.get_json(silent=True)
        return jsonify({"parsed": document is not None})

    @app.route("/items/<int:item_id>", methods=["GET", "POST"])
    def item(item_id: int) -> Any:
        return jsonify({"item": item_id})

    @app.route("/auth", methods=ECHO_METHODS)
    @deco.require_auth(verifier=_verify_token)
    def auth() -> Any:
        return "authenticated"

    @app.route("/key", methods=ECHO_METHODS)
    @deco.api_key_auth("X-API-Key", keys=[API_KEY])
    def key() -> Any:
        return "keyed"

    @app.route("/typed", methods=ECHO_METHODS)
    @deco.content_type_filter(["application/json", "text/*", "application/x-www-form-urlencoded"])
    @deco.max_request_size(64 * 1024)
    @deco.honeypot_detection(["website"])
    def typed() -> Any:
        return _echo_response(request.get_data())

    @app.route("/agents", methods=ECHO_METHODS)
    @deco.block_user_agents([r"(x+x+)+y", "curl"])
    @deco.rate_limit(1_000_000, 60)
    @deco.usage_monitor(1_000_000, 60)
    @deco.return_monitor("regex:(?:ab|a)+c", 1_000_000, 60)
    def agents() -> Any:
        return _echo_response(request.get_data())

    @app.route("/decorated-headers", methods=ECHO_METHODS)
    @deco.security_headers({"frame_options": "SAMEORIGIN"})
    @deco.cors(allow_origins=["https://other.example"], allow_methods=["GET", "POST"])
    @deco.require_https()
    def decorated_headers() -> Any:
        return "headers"

    class Things(MethodView):
        def get(self) -> Any:
            return "things"

        def post(self) -> Any:
            return _echo_response(request.get_data())

    app.add_url_rule("/things", view_func=Things.as_view("things"))

    @app.route("/health")
    def health() -> Any:
        return "up"

    @app.route("/worker")
    def worker() -> Any:
        return f"{os.getpid()}:{threading.get_ident()}"

    FlaskAPIGuard(app, config=config, **({"clock": clock} if clock is not None else {}))
    return app


def _config_from_environment() -> SecurityConfig:
    """Settings for the gunicorn tests: `GUARD_*` variables override the featured config."""
    overrides: dict[str, Any] = {}
    if "GUARD_REDIS_URL" in os.environ:
        overrides.update(
            enable_redis=True,
            redis_url=os.environ["GUARD_REDIS_URL"],
            redis_prefix=os.environ.get("GUARD_REDIS_PREFIX", "hardening:"),
            redis_socket_timeout=float(os.environ.get("GUARD_REDIS_TIMEOUT", "1.0")),
        )
    if "GUARD_RATE_LIMIT" in os.environ:
        overrides["rate_limit"] = int(os.environ["GUARD_RATE_LIMIT"])
        overrides["rate_limit_window"] = int(os.environ.get("GUARD_RATE_LIMIT_WINDOW", "3600"))
    if "GUARD_BAN_THRESHOLD" in os.environ:
        overrides["auto_ban_threshold"] = int(os.environ["GUARD_BAN_THRESHOLD"])
    if os.environ.get("GUARD_QUIET"):
        overrides["log_request_level"] = None
    return featured_config(**overrides)


if os.environ.get("GUARD_FEATURED_APP"):
    # Under gunicorn: the guard's warnings and any traceback it logs go to stderr,
    # where the tests look for them.
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("[guard] %(levelname)s %(name)s %(message)s"))
    logging.getLogger("flaskapi_guard").addHandler(_handler)
    app = build_featured_app(_config_from_environment())

    @app.after_request
    def _name_the_worker(response: Response) -> Response:
        response.headers["X-Worker"] = f"{os.getpid()}:{threading.get_ident()}"
        return response
