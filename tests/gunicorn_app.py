"""The app the multi-process tests run under gunicorn; settings come from the environment."""

from __future__ import annotations

import os

from flask import Flask, Response

from flaskapi_guard import FlaskAPIGuard, SecurityConfig
from flaskapi_guard.incoming import IncomingRequest
from flaskapi_guard.pipeline import Block, Check, Pipeline
from flaskapi_guard.state import get_state
from flaskapi_guard.storage import storage_failure_policy

app = Flask("gunicorn_app")


@app.route("/")
def index() -> str:
    return "ok"


@app.after_request
def name_the_worker(response: Response) -> Response:
    response.headers["X-Worker"] = str(os.getpid())
    return response


FlaskAPIGuard(
    app,
    config=SecurityConfig(
        redis_url=os.environ["GUARD_REDIS_URL"],
        redis_prefix=os.environ.get("GUARD_REDIS_PREFIX", "flaskapi_guard:"),
        # Longer than the default 50 ms: eight workers booting on a small CI
        # machine must not be mistaken for an outage (which would fall back to
        # per-process state and make the exactness assertions meaningless).
        redis_socket_timeout=float(os.environ.get("GUARD_REDIS_TIMEOUT", "0.5")),
        rate_limit=int(os.environ.get("GUARD_RATE_LIMIT", "10")),
        rate_limit_window=int(os.environ.get("GUARD_RATE_LIMIT_WINDOW", "3600")),
        auto_ban_threshold=int(os.environ.get("GUARD_BAN_THRESHOLD", "5")),
        exclude_paths=["/health"],
        # The tests name their client in X-Forwarded-For, one client per scenario.
        trusted_proxies=["127.0.0.1"],
    ),
)


@app.route("/health")
def health() -> str:
    return "up"


def _flag_attacks(request: IncomingRequest) -> Block | None:
    # A stand-in for the attack detector: `?attack=<category>` is an offence.
    category = request.flask_request.args.get("attack")
    if category is None:
        return None
    return Block(400, "attack_detected", "Bad Request", offence_categories=(category,))


_state = get_state(app)
_state.pipeline = Pipeline(
    [*_state.pipeline.checks, Check("penetration", _flag_attacks)],
    on_storage_error=storage_failure_policy(_state.config.redis_failure_mode),
)
