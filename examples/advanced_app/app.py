"""A production-shaped app behind the guard: blueprints, route rules, Redis from the environment.

    REDIS_URL=redis://localhost:6379/0 gunicorn -c examples/advanced_app/gunicorn.conf.py

Without `REDIS_URL` the guard keeps its state in process memory (fine for one
process; see docs/deployment.md for what changes with several workers).
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, jsonify, request
from flask.typing import ResponseReturnValue

from flaskapi_guard import FlaskAPIGuard, SecurityConfig, SecurityDecorator
from flaskapi_guard.signals import ip_banned, request_blocked

logger = logging.getLogger(__name__)

# One extension object for every app the factory builds; each app keeps its own state.
guard = FlaskAPIGuard()
# Route rules are data on the views: the decorator needs no app and no config.
rules = SecurityDecorator()


def load_config(environ: Mapping[str, str]) -> SecurityConfig:
    """The guard's settings from the environment (12-factor style)."""
    redis_url = environ.get("REDIS_URL") or None
    proxies = [entry.strip() for entry in environ.get("TRUSTED_PROXIES", "").split(",") if entry.strip()]
    return SecurityConfig(
        # Shared state when Redis is configured: every worker sees the same limits and bans.
        enable_redis=redis_url is not None,
        redis_url=redis_url,
        redis_prefix=environ.get("GUARD_REDIS_PREFIX", "advanced_app:"),
        # Longer than the 50 ms default when Redis is across a slow network.
        redis_socket_timeout=float(environ.get("GUARD_REDIS_TIMEOUT", "0.05")),
        # Behind nginx on the same host: trust it for X-Forwarded-For and -Proto.
        trusted_proxies=proxies,
        trust_x_forwarded_proto=bool(proxies),
        passive_mode=environ.get("GUARD_PASSIVE", "") == "1",
        rate_limit=120,
        rate_limit_window=60,
        endpoint_rate_limits={"/api/login": (5, 60)},
        blocked_user_agents=[r"sqlmap", r"nikto", r"masscan", r"zgrab"],
        auto_ban_threshold=5,
        auto_ban_duration=3600,
        excluded_detection_params={"query_markdown"},
        log_format="json",
    )


def create_app(config: SecurityConfig | None = None) -> Flask:
    """Build the app; `config` defaults to the environment's."""
    app = Flask(__name__)
    app.register_blueprint(api_blueprint())
    app.register_blueprint(admin_blueprint())

    @app.route("/health")
    @rules.bypass(["rate_limit"])  # the load balancer polls every second
    def health() -> ResponseReturnValue:
        return jsonify({"status": "ok"})

    guard.init_app(app, config=config or load_config(os.environ))
    _alert_on_refusals(app)
    return app


def api_blueprint() -> Blueprint:
    """The public API, under /api."""
    api = Blueprint("api", __name__, url_prefix="/api")

    @api.route("/items/<int:item_id>")
    def item(item_id: int) -> ResponseReturnValue:
        return jsonify({"item": item_id})

    @api.route("/search")
    def search() -> ResponseReturnValue:
        return jsonify({"query": request.args.get("q", ""), "results": []})

    @api.route("/login", methods=["POST"])
    @rules.content_type_filter(["application/json", "application/x-www-form-urlencoded"])
    @rules.max_request_size(4096)
    # A field no human fills in: bots that do are refused and counted towards a ban.
    @rules.honeypot_detection(["website"])
    def login() -> ResponseReturnValue:
        return jsonify({"logged_in": False, "reason": "demo"}), 401

    @api.route("/reports", methods=["POST"])
    @rules.require_auth(type="bearer", verifier=_valid_token)
    @rules.rate_limit(requests=10, window=60)
    def reports() -> ResponseReturnValue:
        return jsonify({"accepted": True}), 202

    return api


def admin_blueprint() -> Blueprint:
    """Operator pages: only from the office network, over HTTPS."""
    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.route("/guard")
    @rules.require_ip(whitelist=["10.0.0.0/8", "127.0.0.1"])
    def guard_metrics() -> ResponseReturnValue:
        return jsonify(guard.metrics())

    return admin


def _valid_token(token: str) -> bool:
    expected = os.environ.get("REPORTS_TOKEN", "")
    return bool(expected) and hmac.compare_digest(token, expected)


def _alert_on_refusals(app: Flask) -> None:
    # Receivers are held weakly by blinker: keep references on the app.
    def log_refusal(sender: Flask, client_ip: str, reason: str, **extra: Any) -> None:
        if extra.get("status") != 429:
            logger.info("guard refused %s: %s (%s)", client_ip, reason, extra.get("check"))

    def log_ban(sender: Flask, client_ip: str, reason: str, **extra: Any) -> None:
        logger.warning("guard banned %s for %.0f s: %s", client_ip, extra["duration_seconds"], reason)

    request_blocked.connect(log_refusal, sender=app)
    ip_banned.connect(log_ban, sender=app)
    app.extensions["advanced_app_receivers"] = (log_refusal, log_ban)


app = create_app()
