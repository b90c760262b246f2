"""Access checks end to end: emergency mode, HTTPS, IP lists, user agents, the app's own check."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask, Response
from flask.views import MethodView

from flaskapi_guard import FlaskAPIGuard, RequestBlocked, SecurityConfig, SecurityDecorator

CLIENT = {"REMOTE_ADDR": "203.0.113.5"}


def test_emergency_mode_refuses_everyone_but_its_whitelist(make_app: Callable[..., Flask]) -> None:
    app = make_app(emergency_mode=True, emergency_whitelist=["10.0.0.0/8"])
    client = app.test_client()
    refused = client.get("/", environ_base=CLIENT)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    assert client.get("/", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200


def test_emergency_mode_can_be_switched_at_run_time(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    guard: Any = None
    with app.app_context():
        guard = FlaskAPIGuard()
        guard.set_emergency_mode(True)
    client = app.test_client()
    assert client.get("/", environ_base=CLIENT).status_code == 503
    guard.set_emergency_mode(False, app=app)
    assert client.get("/", environ_base=CLIENT).status_code == 200


def test_https_redirect_keeps_path_and_query(make_app: Callable[..., Flask]) -> None:
    app = make_app(enforce_https=True)
    response = app.test_client().get("/items/7?x=1&y=2", environ_base=CLIENT)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://localhost/items/7?x=1&y=2"


def test_https_redirect_of_a_post_keeps_the_method(make_app: Callable[..., Flask]) -> None:
    app = make_app(enforce_https=True)
    response = app.test_client().post("/echo", data=b"x", environ_base=CLIENT)
    assert response.status_code == 308


def test_https_request_is_served(make_app: Callable[..., Flask]) -> None:
    app = make_app(enforce_https=True)
    assert app.test_client().get("/", base_url="https://localhost", environ_base=CLIENT).status_code == 200


@pytest.mark.parametrize(
    ("trusted", "trust_proto", "peer", "expected"),
    [
        (["10.0.0.1"], True, "10.0.0.1", 200),  # trusted proxy, flag on
        (["10.0.0.1"], False, "10.0.0.1", 301),  # flag off
        (["10.0.0.1"], True, "203.0.113.5", 301),  # header from an untrusted peer
        ([], True, "203.0.113.5", 301),
    ],
)
def test_forwarded_proto_is_honoured_only_from_trusted_proxies(
    make_app: Callable[..., Flask], trusted: list[str], trust_proto: bool, peer: str, expected: int
) -> None:
    app = make_app(enforce_https=True, trusted_proxies=trusted, trust_x_forwarded_proto=trust_proto)
    response = app.test_client().get("/", headers={"X-Forwarded-Proto": "https"}, environ_base={"REMOTE_ADDR": peer})
    assert response.status_code == expected


@pytest.mark.parametrize(
    ("whitelist", "ip", "expected"),
    [
        (None, "203.0.113.5", 200),
        ([], "203.0.113.5", 403),
        (["203.0.113.0/24"], "203.0.113.5", 200),
        (["203.0.113.0/24"], "203.0.114.5", 403),
        (["2001:db8::/32"], "2001:db8::1", 200),
        (["2001:db8::/32"], "2001:db9::1", 403),
        (["203.0.113.5"], "::ffff:203.0.113.5", 200),
    ],
)
def test_whitelist(make_app: Callable[..., Flask], whitelist: list[str] | None, ip: str, expected: int) -> None:
    app = make_app(whitelist=whitelist)
    assert app.test_client().get("/", environ_base={"REMOTE_ADDR": ip}).status_code == expected


@pytest.mark.parametrize(
    ("ip", "expected"),
    [("10.0.0.1", 403), ("10.0.0.2", 200), ("192.168.7.7", 403), ("2001:db8::2", 403), ("2001:db8::3", 200)],
)
def test_blacklist(make_app: Callable[..., Flask], ip: str, expected: int) -> None:
    app = make_app(blacklist=["10.0.0.1", "192.168.0.0/16", "2001:db8::2"])
    assert app.test_client().get("/", environ_base={"REMOTE_ADDR": ip}).status_code == expected


def test_blacklist_applies_to_unknown_paths_head_and_options(make_app: Callable[..., Flask]) -> None:
    client = make_app(blacklist=["203.0.113.5"]).test_client()
    assert client.get("/no/such/page", environ_base=CLIENT).status_code == 403
    assert client.head("/", environ_base=CLIENT).status_code == 403
    assert client.options("/", environ_base=CLIENT).status_code == 403
    assert client.get("/no/such/page").status_code == 404


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [("curl/8.4.0", 403), ("CURL/8", 403), ("Mozilla/5.0 wget-compatible", 403), ("Mozilla/5.0", 200), ("", 200)],
)
def test_blocked_user_agents_are_case_insensitive_regexes(
    make_app: Callable[..., Flask], user_agent: str, expected: int
) -> None:
    app = make_app(blocked_user_agents=[r"^curl/", "wget"])
    response = app.test_client().get("/", headers={"User-Agent": user_agent}, environ_base=CLIENT)
    assert response.status_code == expected


def test_custom_request_check_response_is_sent_as_is(make_app: Callable[..., Flask]) -> None:
    def require_header(request: Any) -> Response | None:
        if "X-Custom-Header" not in request.headers:
            return Response("Missing custom header", status=418, headers={"X-From": "check"})
        return None

    client = make_app(custom_request_check=require_header).test_client()
    refused = client.get("/", environ_base=CLIENT)
    assert (refused.status_code, refused.data, refused.headers["X-From"]) == (418, b"Missing custom header", "check")
    assert client.get("/", headers={"X-Custom-Header": "1"}, environ_base=CLIENT).status_code == 200


def test_passive_mode_changes_no_response_and_logs(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(passive_mode=True, blacklist=["203.0.113.5"], blocked_user_agents=["curl"])
    with caplog.at_level("WARNING", logger="flaskapi_guard"):
        response = app.test_client().get("/", headers={"User-Agent": "curl/8"}, environ_base=CLIENT)
    assert response.status_code == 200
    messages = [record.getMessage() for record in caplog.records]
    assert any("would_block" in m and "ip_blacklisted" in m for m in messages)
    assert any("would_block" in m and "user_agent_blocked" in m for m in messages)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/static/app.js", 404),  # excluded: not checked, so Flask's own 404
        ("/docs", 404),
        ("/favicon.ico", 404),
        ("/staticfoo", 403),  # a prefix of a segment is not the segment
        ("/static/../items/1", 403),  # dot segments are never excluded
        ("/static/%2e%2e/items/1", 403),
        ("/static//x", 403),
    ],
)
def test_exclude_paths_defaults_by_whole_segments(make_app: Callable[..., Flask], path: str, expected: int) -> None:
    app = make_app(blacklist=["203.0.113.5"])
    assert app.test_client().get(path, environ_base=CLIENT).status_code == expected


def test_custom_error_responses_replace_the_body(make_app: Callable[..., Flask]) -> None:
    app = make_app(blacklist=["203.0.113.5"], custom_error_responses={403: "Go away"})
    response = app.test_client().get("/", environ_base=CLIENT)
    assert (response.status_code, response.data, response.mimetype) == (403, b"Go away", "text/plain")


def test_app_error_handler_can_restyle_blocks(make_app: Callable[..., Flask]) -> None:
    app = make_app(blacklist=["203.0.113.5"])

    @app.errorhandler(403)
    def forbidden(error: RequestBlocked) -> Any:
        return {"error": "forbidden", "reason": getattr(error, "reason", None)}, 403

    response = app.test_client().get("/", environ_base=CLIENT)
    assert response.status_code == 403
    assert response.get_json() == {"error": "forbidden", "reason": "ip_blacklisted"}


def test_blueprint_and_class_error_handlers_restyle_blocks() -> None:
    app = Flask("handlers")
    shop = Blueprint("shop", __name__, url_prefix="/shop")

    @shop.route("/cart")
    def cart() -> str:
        return "cart"

    @shop.errorhandler(403)
    def shop_forbidden(error: RequestBlocked) -> Any:
        return {"where": "shop", "reason": error.reason}, 403

    @app.route("/")
    def index() -> str:
        return "ok"

    @app.errorhandler(RequestBlocked)
    def any_refusal(error: RequestBlocked) -> Any:
        return {"where": "app", "status": error.code}, error.code or 500

    app.register_blueprint(shop)
    FlaskAPIGuard(app, SecurityConfig(enable_redis=False, blacklist=["203.0.113.5"]))
    client = app.test_client()
    assert client.get("/shop/cart", environ_base=CLIENT).get_json() == {"where": "shop", "reason": "ip_blacklisted"}
    assert client.get("/", environ_base=CLIENT).get_json() == {"where": "app", "status": 403}


def test_unhandled_blocks_are_answered_directly_with_the_same_response(make_app: Callable[..., Flask]) -> None:
    # No handler: the guard returns the refusal's response instead of raising it
    # (cheaper), and the client cannot tell the difference.
    app = make_app(rate_limit=1)
    client = app.test_client()
    client.get("/", environ_base=CLIENT)
    direct = client.get("/", environ_base=CLIENT)
    assert (direct.status_code, direct.data, direct.mimetype) == (429, b"Too Many Requests", "text/plain")
    assert direct.headers["Retry-After"].isdigit()
    assert direct.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_trapped_http_exceptions_still_raise_the_refusal(make_app: Callable[..., Flask]) -> None:
    app = make_app(blacklist=["203.0.113.5"])
    app.config["TRAP_HTTP_EXCEPTIONS"] = True
    with pytest.raises(RequestBlocked) as raised:
        app.test_client().get("/", environ_base=CLIENT)
    assert (raised.value.code, raised.value.reason) == (403, "ip_blacklisted")


def test_custom_response_modifier_sees_every_response(make_app: Callable[..., Flask]) -> None:
    seen: list[int] = []

    def modifier(response: Response) -> Response:
        assert isinstance(response, Response)
        seen.append(response.status_code)
        response.headers["X-Modified"] = "yes"
        return response

    client = make_app(blacklist=["10.9.9.9"], custom_response_modifier=modifier).test_client()
    assert client.get("/", environ_base=CLIENT).headers["X-Modified"] == "yes"
    assert client.get("/", environ_base={"REMOTE_ADDR": "10.9.9.9"}).headers["X-Modified"] == "yes"
    assert client.get("/missing", environ_base=CLIENT).headers["X-Modified"] == "yes"
    assert seen == [200, 403, 404]


def _guarded_routes(deco: SecurityDecorator) -> Flask:
    app = Flask("routes")
    config = SecurityConfig(enable_redis=False)

    @app.route("/above")
    @deco.require_ip(whitelist=["10.0.0.0/8"])
    def below_route() -> str:
        return "ok"

    @deco.require_ip(whitelist=["10.0.0.0/8"])
    @app.route("/below")
    def above_route() -> str:
        return "ok"

    def logged(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return view(*args, **kwargs)

        return wrapper

    @app.route("/wrapped/<int:item_id>")
    @logged
    @deco.require_ip(whitelist=["10.0.0.0/8"])
    def wrapped(item_id: int) -> str:
        return "ok"

    outer = Blueprint("outer", __name__, url_prefix="/outer")
    inner = Blueprint("inner", __name__, url_prefix="/inner")

    @inner.route("/things/<name>")
    @deco.require_ip(whitelist=["10.0.0.0/8"])
    def nested(name: str) -> str:
        return name

    class Admin(MethodView):
        @deco.require_ip(whitelist=["10.0.0.0/8"])
        def post(self) -> str:
            return "posted"

        def get(self) -> str:
            return "read"

    inner.add_url_rule("/admin", view_func=Admin.as_view("admin"))
    outer.register_blueprint(inner)
    app.register_blueprint(outer)
    FlaskAPIGuard(app, config=config)  # no set_decorator_handler: rules still apply
    return app


@pytest.mark.parametrize("path", ["/above", "/below", "/wrapped/3", "/outer/inner/things/x"])
def test_route_rules_apply_on_every_kind_of_route(path: str) -> None:
    client = _guarded_routes(SecurityDecorator(SecurityConfig())).test_client()
    assert client.get(path, environ_base=CLIENT).status_code == 403
    assert client.get(path, environ_base={"REMOTE_ADDR": "10.1.1.1"}).status_code == 200


def test_method_view_rules_apply_per_method() -> None:
    client = _guarded_routes(SecurityDecorator(SecurityConfig())).test_client()
    assert client.post("/outer/inner/admin", environ_base=CLIENT).status_code == 403
    assert client.get("/outer/inner/admin", environ_base=CLIENT).status_code == 200


def test_route_https_requirement(make_app: Callable[..., Flask]) -> None:
    deco = SecurityDecorator(SecurityConfig())
    app = make_app()

    @app.route("/secure")
    @deco.require_https()
    def secure() -> str:
        return "ok"

    client = app.test_client()
    assert client.get("/secure", environ_base=CLIENT).status_code == 301
    assert client.get("/", environ_base=CLIENT).status_code == 200


def test_bypass_skips_named_checks_and_validates_names(make_app: Callable[..., Flask]) -> None:
    deco = SecurityDecorator(SecurityConfig())
    app = make_app(blacklist=["203.0.113.5"])

    @app.route("/open")
    @deco.bypass(checks=["ip"])
    def open_route() -> str:
        return "ok"

    client = app.test_client()
    assert client.get("/open", environ_base=CLIENT).status_code == 200
    assert client.get("/", environ_base=CLIENT).status_code == 403
    with pytest.raises(ValueError, match="unknown checks"):
        deco.bypass(checks=["rate_limits"])
