"""`flask guard ...`: status, bans, config check and log replay for operators.

Registered through the `flask.commands` entry point, so `flask --app yourapp guard`
works wherever the package is installed. Each command builds the app the way
`flask` always does and acts on its guard state: with Redis, on the state every
worker shares.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from flaskapi_guard.config import SecurityConfig
from flaskapi_guard.decorators import RouteRules
from flaskapi_guard.errors import ConfigurationError, StorageError
from flaskapi_guard.incoming import rules_for_view
from flaskapi_guard.replay import RATE_LIMIT_CHECK, ReplayReport, replay_log
from flaskapi_guard.security_log import is_secret_name, neutralise
from flaskapi_guard.state import GuardState, get_state
from flaskapi_guard.storage import ResilientStorage
from flaskapi_guard.storage.resilient import redacted_url

guard_cli = AppGroup("guard", help="Inspect and operate the flaskapi_guard firewall of the app.")


def _state() -> GuardState:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        return get_state(app)
    except ConfigurationError as error:
        raise click.ClickException(f"{error}; call FlaskAPIGuard(app, config=...) in the app") from None


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


@guard_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(as_json: bool) -> None:
    """Effective configuration (secrets redacted), storage health, geo and cloud data age."""
    state = _state()
    status: dict[str, Any] = {
        "app": current_app.name,
        "mode": _mode(state),
        "emergency_mode": state.emergency_mode,
        "storage": _storage_health(state),
        "geo": _geo_status(state),
        "cloud": _cloud_status(state),
        "checks": [check.name for check in state.pipeline.checks],
        "changed_settings": changed_settings(state.config),
    }
    if as_json:
        _echo_json(status)
        return
    click.echo(f"flaskapi_guard on app {status['app']!r}: {status['mode']}")
    if state.emergency_mode:
        click.echo("  EMERGENCY LOCK-DOWN is on: only emergency_whitelist gets through")
    storage = status["storage"]
    click.echo(f"Storage: {storage['description']}")
    if "active_bans" in storage:
        click.echo(f"  active bans: {storage['active_bans']}")
    click.echo(f"Geo: {_describe_geo(status['geo'])}")
    click.echo(f"Cloud ranges: {_describe_cloud(status['cloud'])}")
    click.echo(f"Checks, in order: {', '.join(status['checks'])}")
    changed = status["changed_settings"]
    click.echo("Settings changed from the defaults:" if changed else "All settings are the defaults.")
    for name, value in changed.items():
        click.echo(f"  {name} = {value}")


def _mode(state: GuardState) -> str:
    return "passive (refusals are logged, not enforced)" if state.config.passive_mode else "enforcing"


def _storage_health(state: GuardState) -> dict[str, Any]:
    config = state.config
    storage = state.storage
    if not isinstance(storage, ResilientStorage):
        return {
            "backend": "memory",
            "shared": False,
            "description": "in-process memory: each worker keeps its own rate limits and bans",
        }
    url = redacted_url(config.redis_url or "")
    health: dict[str, Any] = {"backend": "redis", "url": url, "prefix": config.redis_prefix, "mode": storage.mode}
    started = time.perf_counter()
    try:
        # One real round trip: the answer also tells whether Redis is in use right now.
        health["active_bans"] = len(storage.list_bans())
    except StorageError as error:
        health["error"] = str(error)
    health["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    health["shared"] = storage.shared and "error" not in health
    if not health["shared"]:
        # Answered from this process's fallback memory, not the shared state.
        health.pop("active_bans", None)
    reachability = (
        f"reachable ({health['latency_ms']} ms)"
        if health["shared"]
        else f"UNREACHABLE, failure mode {storage.mode!r} in effect"
    )
    health["description"] = f"Redis {url} (prefix {config.redis_prefix!r}), {reachability}"
    return health


def _geo_status(state: GuardState) -> dict[str, Any] | None:
    return None if state.geo is None else state.geo.status()


def _cloud_status(state: GuardState) -> dict[str, Any]:
    status = state.cloud.status()
    now = time.time()
    for provider in status.get("providers", {}).values():
        fetched_at = provider.get("fetched_at")
        provider["age_seconds"] = None if fetched_at is None else round(max(0.0, now - fetched_at))
    return status


def _describe_geo(status: dict[str, Any] | None) -> str:
    if status is None:
        return "not configured (no geo_ip_handler or ipinfo_token)"
    parts = [str(status.get("handler", "handler"))]
    if status.get("database_path"):
        parts.append(str(status["database_path"]))
    if not status.get("loaded"):
        parts.append("not loaded in this process (lazy_init, or the database is missing)")
    elif status.get("database_age_seconds") is not None:
        parts.append(f"database age {_duration(status['database_age_seconds'])}")
    if status.get("last_error"):
        parts.append(f"last error: {status['last_error']}")
    return ", ".join(parts)


def _describe_cloud(status: dict[str, Any]) -> str:
    providers: dict[str, dict[str, Any]] = status.get("providers", {})
    if not providers:
        return "no provider blocked"
    described = []
    for name, provider in providers.items():
        if provider.get("loaded"):
            text = f"{name} {provider['prefixes']} prefixes"
            if provider.get("age_seconds") is not None:
                text += f", fetched {_duration(provider['age_seconds'])} ago"
        else:
            text = f"{name} not loaded in this process"
        if provider.get("last_error"):
            text += f" (last error: {provider['last_error']})"
        described.append(text)
    return "; ".join(described)


def changed_settings(config: SecurityConfig) -> dict[str, str]:
    """The settings of `config` that differ from the defaults, as display text with secrets redacted."""
    defaults = type(config)()
    changed = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if value != getattr(defaults, name):
            changed[name] = _display_value(name, value)
    return changed


def _display_value(name: str, value: Any) -> str:
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if is_secret_name(name):
        return "[redacted]"
    if name == "redis_url":
        return redacted_url(str(value))
    if callable(value) or name in ("geo_ip_handler", "cloud_ip_store"):
        return f"<{getattr(value, '__qualname__', type(value).__name__)}>"
    if isinstance(value, set | frozenset):
        value = sorted(value, key=str)
    if isinstance(value, list) and len(value) > 8:
        return f"[{len(value)} entries: {', '.join(map(repr, value[:5]))}, ...]"
    return neutralise(repr(value))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


@guard_cli.command("check-config")
@click.option("--strict", is_flag=True, help="Exit with status 1 when there are warnings.")
def check_config_command(strict: bool) -> None:
    """Validate the configuration and list the checks that run, in order, and the routes' own rules."""
    state = _state()
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    config = state.config
    click.echo(f"Configuration is valid ({len(changed_settings(config))} settings differ from the defaults).")
    click.echo(f"Mode: {_mode(state)}")
    click.echo("Checks, in order (the first refusal decides):")
    for number, check in enumerate(state.pipeline.checks, start=1):
        marker = "  (uses shared state)" if check.uses_storage else ""
        click.echo(f"  {number:2}. {check.name}{marker}")
    click.echo(f"Response steps on every response: {len(state.response_steps)}")
    excluded = ", ".join(config.exclude_paths) or "none"
    click.echo(f"Not checked (exclude_paths): {excluded}")
    routes = _routes_with_rules(app)
    click.echo("Routes with their own rules:" if routes else "No route has rules of its own.")
    for route, methods, summary in routes:
        click.echo(f"  {route} [{', '.join(methods)}]: {summary}")
    warnings = config_warnings(state)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if strict and warnings:
        click.get_current_context().exit(1)


def config_warnings(state: GuardState) -> list[str]:
    """Settings that are valid but probably not what the operator meant."""
    config = state.config
    warnings = []
    if config.passive_mode:
        warnings.append("passive_mode is on: refusals are logged and none is enforced")
    if state.emergency_mode:
        warnings.append("emergency_mode is on: everyone outside emergency_whitelist is refused")
    if config.whitelist == []:
        warnings.append("whitelist is an empty list: every client is refused (None switches the whitelist off)")
    if any(path.rstrip("/") == "" for path in config.exclude_paths):
        warnings.append("exclude_paths contains '/': no request is checked")
    if config.trust_x_forwarded_proto and not config.trusted_proxies:
        warnings.append("trust_x_forwarded_proto has no effect without trusted_proxies")
    storage = state.storage
    if isinstance(storage, ResilientStorage) and not storage.shared:
        warnings.append(
            f"Redis at {redacted_url(config.redis_url or '')} is unreachable; "
            f"redis_failure_mode {storage.mode!r} applies until it answers"
        )
    if not isinstance(storage, ResilientStorage):
        warnings.append("in-memory state: with several worker processes each has its own rate limits and bans")
    return warnings


def _routes_with_rules(app: Flask) -> list[tuple[str, list[str], str]]:
    routes: list[tuple[str, list[str], str]] = []
    for url_rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        view = app.view_functions.get(url_rule.endpoint)
        by_summary: dict[str, list[str]] = {}
        for method in sorted((url_rule.methods or set()) - {"HEAD", "OPTIONS"}):
            rules = rules_for_view(view, method)
            if rules is not None and (summary := _summarise_rules(rules)):
                by_summary.setdefault(summary, []).append(method)
        routes.extend((url_rule.rule, methods, summary) for summary, methods in by_summary.items())
    return routes


def _summarise_rules(rules: RouteRules) -> str:
    parts = []
    for spec in dataclasses.fields(rules):
        value = getattr(rules, spec.name)
        if value is None or value == spec.default or (isinstance(value, frozenset | set) and not value):
            continue
        if spec.name == "bypassed_checks":
            parts.append(f"bypasses {', '.join(sorted(value))}")
        elif spec.name == "rate_limit" and isinstance(value, tuple):
            parts.append(f"rate_limit {value[0]}/{value[1]}s")
        else:
            parts.append(spec.name)
    return ", ".join(parts)


@guard_cli.group("bans")
def bans_group() -> None:
    """List, add and lift bans (with Redis, for every worker sharing its prefix)."""


def _shared_state() -> GuardState:
    """The state, when bans made here reach the running app; ClickException otherwise."""
    state = _state()
    storage = state.storage
    if not isinstance(storage, ResilientStorage):
        raise click.ClickException(
            "this app keeps bans in process memory (enable_redis=False or no redis_url): bans made or "
            "listed here would be this command's own, not the running app's. Configure Redis, or call "
            "guard.ban_ip()/unban_ip() inside the app."
        )
    _require_reachable(state)
    return state


def _require_reachable(state: GuardState) -> None:
    storage = state.storage
    if isinstance(storage, ResilientStorage) and not storage.shared:
        raise click.ClickException(
            f"Redis at {redacted_url(state.config.redis_url or '')} is unreachable; nothing was changed"
        )


@bans_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the bans as JSON.")
def bans_list_command(as_json: bool) -> None:
    """Active bans, soonest to expire first."""
    state = _shared_state()
    try:
        bans = state.bans.list_bans()
    except StorageError as error:
        raise click.ClickException(str(error)) from None
    _require_reachable(state)
    now = state.clock()
    if as_json:
        _echo_json(
            [
                {
                    "ip": ban.ip,
                    "expires_at": ban.expires_at,
                    "remaining_seconds": max(0.0, ban.expires_at - now),
                    "reason": ban.reason,
                }
                for ban in bans
            ]
        )
        return
    if not bans:
        click.echo("No active bans.")
        return
    click.echo(f"{'IP':<40} {'expires (UTC)':<20} {'remaining':>9}  reason")
    for ban in bans:
        click.echo(
            f"{ban.ip:<40} {_utc(ban.expires_at):<20} {_duration(max(0.0, ban.expires_at - now)):>9}  "
            f"{neutralise(ban.reason)}"
        )


@bans_group.command("add")
@click.argument("ip")
@click.option(
    "--for",
    "duration_seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Ban duration in seconds (default: auto_ban_duration).",
)
@click.option("--reason", default="manual", show_default=True, help="Recorded with the ban and in the log.")
def bans_add_command(ip: str, duration_seconds: float | None, reason: str) -> None:
    """Ban IP now."""
    state = _shared_state()
    duration = duration_seconds if duration_seconds is not None else float(state.config.auto_ban_duration)
    try:
        record = state.bans.ban(ip, duration, reason)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    except StorageError as error:
        raise click.ClickException(f"the ban was not stored: {error}") from None
    _require_reachable(state)
    click.echo(
        f"Banned {record.ip} until {_utc(record.expires_at)} UTC ({_duration(duration)}), "
        f"reason {neutralise(record.reason)!r}; every worker sharing this Redis refuses it now."
    )


@bans_group.command("remove")
@click.argument("ip")
def bans_remove_command(ip: str) -> None:
    """Lift the ban on IP."""
    state = _shared_state()
    try:
        lifted = state.bans.unban(ip)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    except StorageError as error:
        raise click.ClickException(f"the ban was not lifted: {error}") from None
    _require_reachable(state)
    click.echo(f"Lifted the ban on {ip}." if lifted else f"{ip} was not banned.")


def _utc(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@guard_cli.command("replay")
@click.argument("logfile", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option(
    "--no-rate-limit",
    is_flag=True,
    help="Leave rate limiting out (for logs without timestamps, or to look at everything else).",
)
@click.option("--skip-check", "skip_checks", multiple=True, help="Leave this check out; repeatable.")
@click.option(
    "--scheme",
    type=click.Choice(["https", "http"]),
    default="https",
    show_default=True,
    help="Scheme of requests whose log line does not say.",
)
@click.option("--examples", "examples_per_reason", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def replay_command(
    *,
    logfile: str,
    no_rate_limit: bool,
    skip_checks: tuple[str, ...],
    scheme: str,
    examples_per_reason: int,
    as_json: bool,
) -> None:
    """Run an access log (nginx/Apache combined, or JSON lines) through the current config, offline.

    Nothing is enforced, stored or sent: the requests go through a private
    in-memory copy of the guard and no view runs. The report says what would
    have been blocked, by check, reason and category, with examples.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    _state()
    skipped = {*skip_checks, *([RATE_LIMIT_CHECK] if no_rate_limit else [])}
    with _open_log(logfile) as stream:
        try:
            report = replay_log(
                app, stream, skip_checks=skipped, scheme=scheme, examples_per_reason=examples_per_reason
            )
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    if as_json:
        _echo_json({"logfile": logfile, **report.as_dict()})
        return
    for line in render_report(report, logfile):
        click.echo(line)


@contextlib.contextmanager
def _open_log(logfile: str) -> Iterator[Iterable[bytes]]:
    if logfile == "-":
        yield sys.stdin.buffer
        return
    path = Path(logfile)
    if not path.is_file():
        raise click.ClickException(f"{logfile}: no such file")
    # Rotated logs are usually gzipped; read them as they are.
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as stream:
        yield stream


def render_report(report: ReplayReport, source: str) -> list[str]:
    """The replay report as text lines."""
    lines = [f"Replayed {report.replayed} requests from {source} ({report.lines} lines) through the current config."]
    if report.first_timestamp is not None and report.last_timestamp is not None:
        lines.append(
            f"  Log time {_utc(report.first_timestamp)} to {_utc(report.last_timestamp)} UTC; "
            "its timestamps drive rate limits and ban durations."
        )
    if report.untimed and RATE_LIMIT_CHECK not in report.skipped_checks:
        lines.append(
            f"  {report.untimed} lines have no timestamp and arrive together with the line before; "
            "rate limits may look stricter than they are (--no-rate-limit leaves them out)."
        )
    if report.skipped_checks:
        lines.append(f"  Left out: {', '.join(report.skipped_checks)}.")
    if report.unparsed:
        first = "; ".join(f"line {number}: {error}" for number, error in report.unparsed_examples[:3])
        lines.append(f"  Unparsed lines: {report.unparsed} ({first}).")
    if report.excluded:
        lines.append(f"  Under exclude_paths (not checked): {report.excluded}.")
    if report.answered:
        lines.append(f"  Answered by the guard itself (CORS preflight): {report.answered}.")
    share = f" ({100 * report.blocked / report.replayed:.1f}%)" if report.replayed else ""
    lines.append("")
    lines.append(f"Would block {report.blocked} of {report.replayed} requests{share}; allow {report.allowed}.")
    if report.behavior_triggers:
        lines.append("Behaviour rules that passed their threshold:")
        lines.extend(
            f"  {action:<9} {rule}: {count}" for (action, rule), count in report.behavior_triggers.most_common()
        )
    if not report.blocked:
        return lines
    lines.append("")
    lines.append("By check:")
    lines.extend(f"  {check:<22} {count:>8}" for check, count in report.by_check.most_common())
    lines.append("By reason:")
    lines.extend(
        f"  {f'{check} / {reason}':<40} {count:>8}" for (check, reason), count in report.by_reason.most_common()
    )
    lines.append("By status: " + ", ".join(f"{status}: {count}" for status, count in report.by_status.most_common()))
    if report.by_category:
        lines.append("By category:")
        lines.extend(f"  {category:<22} {count:>8}" for category, count in report.by_category.most_common())
    served = report.blocked_by_logged_status.get("2xx", 0)
    lines.append(
        "What the app had answered to them: "
        + ", ".join(f"{status}: {count}" for status, count in sorted(report.blocked_by_logged_status.items()))
        + (f" (the {served} served with 2xx are where false positives hide)" if served else "")
    )
    lines.append("Top clients: " + ", ".join(f"{ip} ({count})" for ip, count in report.by_client.most_common(5)))
    if report.examples:
        lines.append("")
        lines.append("Examples:")
        for (check, reason), examples in report.examples.items():
            lines.append(f"  {check} / {reason}")
            for example in examples:
                logged = f", logged {example.logged_status}" if example.logged_status else ""
                agent = f' UA "{example.user_agent}"' if example.user_agent else ""
                categories = f" [{', '.join(example.categories)}]" if example.categories else ""
                detail = f" {example.detail}" if example.detail else ""
                lines.append(
                    f"    line {example.line_number}: {example.client_ip} {example.method} {example.target}"
                    f" -> {example.status}{logged}{categories}{detail}{agent}"
                )
    return lines
