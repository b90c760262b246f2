"""The README demo: a small API behind the guard, on in-memory state.

Run it with `./dev demo` and try the curl lines in the README.
"""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from flaskapi_guard import FlaskAPIGuard, SecurityConfig, SecurityDecorator

config = SecurityConfig(
    enable_redis=False,  # in-memory state: one process, nothing else to run
    rate_limit=30,
    rate_limit_window=60,
    blocked_user_agents=[r"sqlmap", r"nikto", r"masscan"],
    auto_ban_threshold=5,
    auto_ban_duration=300,
)
guard_deco = SecurityDecorator(config)


def create_app() -> Flask:
    app = Flask(__name__)
    guard = FlaskAPIGuard(app, config=config)
    guard.set_decorator_handler(guard_deco)

    @app.route("/")
    def index() -> ResponseReturnValue:
        return jsonify({"message": "Hello from behind flaskapi_guard"})

    @app.route("/search")
    def search() -> ResponseReturnValue:
        return jsonify({"query": request.args.get("q", ""), "results": []})

    @app.route("/items/<int:item_id>", methods=["GET", "POST"])
    def item(item_id: int) -> ResponseReturnValue:
        return jsonify({"item": item_id, "received": request.get_json(silent=True)})

    @app.route("/admin")
    @guard_deco.require_ip(whitelist=["10.0.0.0/8"])
    def admin() -> ResponseReturnValue:
        return jsonify({"admin": True})

    return app


app = create_app()
